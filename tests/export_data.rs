//! `cadloop export-data`, end to end: runs made by the real binary against a
//! scripted OpenAI-compatible server (one right first time, one repaired
//! after a FreeCAD error, one whose checks fail while the critique says
//! MATCH, one never judged, one the same as the first), exported in both
//! formats: the right records kept for the right reasons, the dialogue as
//! the LLM saw it, the formats as their consumers take them, duplicates and
//! excluded ids left out, and the API key nowhere.

mod common;

use std::path::Path;

use common::llm_server::{reply, ScriptedLlm};
use common::parts::{fenced, BUGGY, RIGHT, TOO_LONG};
use common::{assert_exit, text};
use serde_json::Value;

const PROMPT: &str = "a 40 x 20 x 10 mm block with a 6 mm hole through the middle";
const CHECKS: &str = "```checks\nCHECKS = [bbox(40, 20, 10), holes(6, count=1, through=True)]\n```";
const SECRET: &str = "sk-cadloop-test-0123456789abcdef";

/// `cadloop generate` into `runs/NAME` against a server scripted with `replies`.
fn run(dir: &Path, name: &str, prompt: &str, replies: Vec<String>, extra: &[&str]) {
    let server = ScriptedLlm::start(replies.iter().map(|r| reply(r)).collect());
    let url = server.url();
    let out_dir = format!("runs/{name}");
    let mut args = vec![
        "generate",
        prompt,
        "--base-url",
        &url,
        "--model",
        "scripted-coder",
        "--out",
        &out_dir,
    ];
    args.extend_from_slice(extra);
    let out = common::command::cadloop_command(dir)
        .env(cadloop::config::env::API_KEY, SECRET)
        .args(&args)
        .output()
        .unwrap();
    assert!(
        out.status.code() == Some(0),
        "{name}: {}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
}

fn lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn export(dir: &Path, args: &[&str]) -> (Vec<Value>, Value, String) {
    let mut all = vec!["export-data"];
    all.extend_from_slice(args);
    let out = common::cadloop(dir, &all);
    assert_exit(&out, 0);
    let file = dir.join(args[args.iter().position(|a| *a == "--out").unwrap() + 1]);
    let stats_name = format!("{}.stats.json", file.display());
    let stats = common::read_json(Path::new(&stats_name));
    (lines(&file), stats, text(&out.stderr))
}

fn ids(records: &[Value]) -> Vec<&str> {
    records.iter().map(|r| r["id"].as_str().unwrap()).collect()
}

#[test]
fn runs_become_verified_dialogues_in_either_format_without_duplicates_excluded_ids_or_keys() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let first = format!("{CHECKS}\n\n{}", fenced(RIGHT));
    // Right first time, judged MATCH.
    run(
        d,
        "right",
        PROMPT,
        vec![first.clone(), "VERDICT: MATCH".into()],
        &[],
    );
    // A script that raises, repaired, judged MATCH (asked in other words:
    // the same request with the same final script would be a duplicate).
    run(
        d,
        "repaired",
        "a 40 x 20 x 10 mm block, a 6 mm hole through its centre",
        vec![
            format!("{CHECKS}\n\n{}", fenced(BUGGY)),
            fenced(RIGHT),
            "VERDICT: MATCH".into(),
        ],
        &[],
    );
    // 50 mm long: the size check fails; the critique's MATCH is overruled
    // twice.
    run(
        d,
        "overruled",
        PROMPT,
        vec![
            format!("{CHECKS}\n\n{}", fenced(TOO_LONG)),
            "VERDICT: MATCH".into(),
            "VERDICT: MATCH".into(),
        ],
        &["--max-refines", "1"],
    );
    // Never judged.
    run(
        d,
        "unjudged",
        "a block 40 by 20 by 10 mm with a 6 mm through hole",
        vec![first.clone()],
        &["--max-refines", "0"],
    );
    // The first again, word for word.
    run(
        d,
        "twice",
        PROMPT,
        vec![first, "VERDICT: MATCH".into()],
        &[],
    );

    // The default: built, every check passed, judged MATCH.
    let (records, stats, said) = export(d, &["runs", "--out", "data.jsonl"]);
    assert_eq!(ids(&records), ["repaired", "right"], "{said}");
    assert_eq!(stats["runs_read"], 5);
    assert_eq!(stats["records"], 2);
    assert_eq!(stats["left_out"]["checks failing"], 1, "{stats}");
    assert_eq!(stats["left_out"]["not judged MATCH"], 1, "{stats}");
    assert_eq!(
        stats["left_out"]["duplicate (same request, same final script)"], 1,
        "{stats}"
    );
    assert_eq!(stats["repairs"], 1);
    assert_eq!(stats["repairs_per_record"], 0.5);
    // The five requests' final checks: all passed but the overruled run's size.
    assert_eq!(
        (&stats["checks_passed"], &stats["checks_total"]),
        (&Value::from(9), &Value::from(10))
    );
    assert!(said.contains("2 records → data.jsonl"), "{said}");
    assert!(said.contains("left out: 1 × checks failing"), "{said}");

    // OpenAI's chat fine-tuning format: messages of known roles with string
    // content, a system message first, user and assistant turns taking
    // turns after it, ending with the assistant.
    for record in &records {
        let messages = record["messages"].as_array().unwrap();
        assert_eq!(messages[0]["role"], "system");
        for (i, m) in messages.iter().enumerate().skip(1) {
            let want = if i % 2 == 1 { "user" } else { "assistant" };
            assert_eq!(m["role"], want, "{record}");
            assert!(m["content"].is_string() && !m["content"].as_str().unwrap().is_empty());
            assert_eq!(m.as_object().unwrap().len(), 2, "{m}");
        }
        assert_eq!(messages.last().unwrap()["role"], "assistant");
        assert_eq!(record["model"], "scripted-coder");
        assert_eq!(record["verified"]["outcome"], "ok");
        assert_eq!(record["verified"]["verdict"], "match");
        assert_eq!(record["verified"]["checks"]["passed"], 2);
        assert_eq!(
            record["verified"]["bbox"],
            serde_json::json!([40.0, 20.0, 10.0])
        );
    }
    // The repaired run's dialogue: the request, the script that raised,
    // FreeCAD's error as the LLM was shown it, and the fix.
    let repaired = records[0]["messages"].as_array().unwrap();
    assert_eq!(repaired.len(), 5, "{repaired:?}");
    assert!(repaired[1]["content"]
        .as_str()
        .unwrap()
        .contains("a 6 mm hole through its centre"));
    assert!(repaired[2]["content"]
        .as_str()
        .unwrap()
        .contains("result = block.cut(hole)"));
    let error = repaired[3]["content"].as_str().unwrap();
    assert!(
        error.contains("NameError") && error.contains("hole"),
        "{error}"
    );
    assert!(repaired[4]["content"]
        .as_str()
        .unwrap()
        .contains("makeCylinder(3"));
    assert_eq!(records[0]["verified"]["attempts"], 2);

    // Looser: any valid solid; the final turn only; ShareGPT.
    let (records, stats, _) = export(
        d,
        &[
            "runs",
            "--out",
            "any.jsonl",
            "--only",
            "any",
            "--turns",
            "final",
            "--format",
            "sharegpt",
        ],
    );
    assert_eq!(
        ids(&records),
        ["overruled", "repaired", "right", "unjudged"],
        "{stats}"
    );
    for record in &records {
        let turns = record["conversations"].as_array().unwrap();
        let from: Vec<&str> = turns.iter().map(|t| t["from"].as_str().unwrap()).collect();
        assert_eq!(from, ["system", "human", "gpt"], "{record}");
        let answer = turns[2]["value"].as_str().unwrap();
        assert!(
            answer.starts_with("```checks\nCHECKS = [bbox(40, 20, 10)"),
            "{answer}"
        );
        assert!(answer.contains("```python\nimport FreeCAD"), "{answer}");
    }
    assert_eq!(records[0]["verified"]["overruled"], true);
    // The repaired run's final pair is the request and the fixed script alone.
    let pair = records[1]["conversations"][2]["value"].as_str().unwrap();
    assert!(pair.contains("makeCylinder(3") && !pair.contains("NameError"));

    // --only passed: checks ran and all passed, whatever the verdict.
    let (records, _, _) = export(d, &["runs", "--out", "passed.jsonl", "--only", "passed"]);
    assert_eq!(ids(&records), ["repaired", "right", "unjudged"]);

    // Excluded ids (a benchmark's list) are left out.
    std::fs::write(d.join("test-ids.txt"), "# held out\nrepaired\n").unwrap();
    let (records, stats, _) = export(
        d,
        &[
            "runs",
            "--out",
            "clean.jsonl",
            "--exclude-ids",
            "test-ids.txt",
        ],
    );
    assert_eq!(ids(&records), ["right"]);
    assert_eq!(stats["left_out"]["excluded id"], 1);

    // The API key the runs were made with is in no file.
    for file in [
        "data.jsonl",
        "any.jsonl",
        "passed.jsonl",
        "clean.jsonl",
        "data.jsonl.stats.json",
    ] {
        let bytes = std::fs::read_to_string(d.join(file)).unwrap();
        assert!(!bytes.contains(SECRET), "{file} holds the key");
    }
    for entry in walk(&d.join("runs")) {
        let bytes = std::fs::read(&entry).unwrap();
        assert!(
            !bytes.windows(SECRET.len()).any(|w| w == SECRET.as_bytes()),
            "{} holds the key",
            entry.display()
        );
    }
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}

#[test]
fn a_batch_folder_a_format_one_run_and_bad_input_are_each_handled() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // A batch output's items are runs, known by their ids.
    run(
        d,
        "one",
        PROMPT,
        vec![
            format!("{CHECKS}\n\n{}", fenced(RIGHT)),
            "VERDICT: MATCH".into(),
        ],
        &[],
    );
    std::fs::create_dir_all(d.join("batch/items")).unwrap();
    std::fs::rename(d.join("runs/one"), d.join("batch/items/00000042")).unwrap();
    // A run written by a cadloop of run format 1: no requests, a rewrite
    // called `refine`.
    let old = d.join("old");
    std::fs::create_dir_all(&old).unwrap();
    std::fs::write(
        old.join("run.json"),
        serde_json::json!({
            "format": 1, "prompt": "a 10 mm cube", "outcome": "match",
            "settings": {"llm": {"model": "old-model"}},
            "final": {"attempt": 2, "why": "matched"},
            "usage": {"prompt_tokens": 30, "completion_tokens": 20},
            "attempts": [
                {"number": 1, "stage": "generate", "round": 0, "code": "result = Part.makeBox(10, 10, 9)\n",
                 "result": {"outcome": "ok", "facts": {"volume": 900.0, "bbox": {"size": [10, 10, 9]}}},
                 "critique": {"verdict": "mismatch"}},
                {"number": 2, "stage": "refine", "round": 1, "parent": 1, "code": "result = Part.makeBox(10, 10, 10)\n",
                 "result": {"outcome": "ok", "facts": {"volume": 1000.0, "bbox": {"size": [10, 10, 10]}}},
                 "critique": {"verdict": "match"}}
            ]
        })
        .to_string(),
    )
    .unwrap();
    let exchange = |call: u32, purpose: &str, attempt: u32, user: &str, answer: &str| {
        serde_json::json!({"call": call, "purpose": purpose, "attempt": attempt,
            "messages": [{"role": "system", "content": "You write FreeCAD."}, {"role": "user", "content": user}],
            "reply": {"content": answer}})
        .to_string()
    };
    std::fs::write(
        old.join("transcript.jsonl"),
        [
            exchange(
                1,
                "generate",
                1,
                "a 10 mm cube",
                "```python\nresult = Part.makeBox(10, 10, 9)\n```",
            ),
            exchange(
                2,
                "refine",
                1,
                "It is 9 mm tall.",
                "VERDICT: MISMATCH\n```python\nresult = Part.makeBox(10, 10, 10)\n```",
            ),
            exchange(3, "refine", 2, "Judge it.", "VERDICT: MATCH"),
        ]
        .join("\n"),
    )
    .unwrap();
    let (records, stats, _) = export(d, &["batch", "old", "--out", "both.jsonl"]);
    assert_eq!(ids(&records), ["00000042", "old"], "{stats}");
    let old_chat: Vec<&str> = records[1]["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["content"].as_str().unwrap())
        .collect();
    assert_eq!(
        old_chat,
        [
            "You write FreeCAD.",
            "a 10 mm cube",
            "```python\nresult = Part.makeBox(10, 10, 9)\n```",
            "It is 9 mm tall.",
            "VERDICT: MISMATCH\n```python\nresult = Part.makeBox(10, 10, 10)\n```"
        ]
    );
    assert_eq!(records[1]["model"], "old-model");
    assert_eq!(stats["rewrites"], 1);

    // Nothing to read, a bad ids file: exit 2 naming the file, nothing written.
    std::fs::create_dir_all(d.join("empty")).unwrap();
    let out = common::cadloop(d, &["export-data", "empty", "--out", "x.jsonl"]);
    assert_exit(&out, 2);
    assert!(
        text(&out.stderr).contains("empty holds no run"),
        "{}",
        text(&out.stderr)
    );
    std::fs::write(d.join("ids.json"), "[\"a\", ").unwrap();
    let out = common::cadloop(
        d,
        &[
            "export-data",
            "batch",
            "--out",
            "x.jsonl",
            "--exclude-ids",
            "ids.json",
        ],
    );
    assert_exit(&out, 2);
    assert!(
        text(&out.stderr).contains("ids.json starts like a JSON list"),
        "{}",
        text(&out.stderr)
    );
    assert!(!d.join("x.jsonl").exists());
}
