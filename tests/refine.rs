//! `cadloop refine`: follow-up changes to a run folder, end to end (the real
//! binary, real FreeCAD, real HTTP to a scripted OpenAI-compatible server).

mod common;

use std::collections::BTreeMap;
use std::f64::consts::PI;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::llm_server::{reply, ScriptedLlm};
use common::parts::{fenced, generate_with, step_volume, BUGGY, PROMPT, RIGHT, TOO_LONG};
use common::{assert_exit, cadloop, refusal, run_json, text, wait_until};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::Value;

/// RIGHT with an 8 mm hole.
const HOLE_8: &str = "import FreeCAD as App
import Part

block = Part.makeBox(40, 20, 10)
hole = Part.makeCylinder(4, 10, App.Vector(20, 10, 0))
result = block.cut(hole)
";

/// RIGHT, 60 mm long.
const LONG_60: &str = "import FreeCAD as App
import Part

block = Part.makeBox(60, 20, 10)
hole = Part.makeCylinder(3, 10, App.Vector(30, 10, 0))
result = block.cut(hole)
";

/// `cadloop generate PROMPT --out run` against `server`.
fn generate(dir: &Path, server: &ScriptedLlm) {
    assert_exit(&generate_with(dir, server, PROMPT, &[]), 0);
}

fn refine(dir: &Path, server: &ScriptedLlm, args: &[&str]) -> std::process::Output {
    let url = server.url();
    let mut all = vec!["refine", "run", "--base-url", &url, "--model", "m"];
    all.extend_from_slice(args);
    cadloop(dir, &all)
}

#[test]
fn a_run_refined_twice_keeps_every_attempt_and_records_the_chain() {
    let server = ScriptedLlm::start(vec![
        // generate: attempt 1
        reply(&fenced(RIGHT)),
        reply("VERDICT: MATCH"),
        // refine 1 (from the result, attempt 1): attempt 2
        reply(&format!("Here it is:\n{}", fenced(HOLE_8))),
        reply("VERDICT: MATCH\nThe hole is 8 mm now."),
        // refine 2 (from attempt 1): attempt 3 fails, attempt 4 repairs it
        reply(&fenced(BUGGY)),
        reply(&fenced(LONG_60)),
        reply("VERDICT: MATCH"),
    ]);
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    generate(dir.path(), &server);

    let out = refine(dir.path(), &server, &["make the hole 8 mm"]);
    assert_exit(&out, 0);
    let stdout = text(&out.stdout);
    assert!(
        stdout.starts_with("match (change 1): run (1 attempt, 0 repairs, 0 refines;"),
        "{stdout}"
    );
    let seen = server.requests();
    let edit = seen[2].last_user();
    assert!(edit.contains(PROMPT), "{edit}");
    assert!(
        edit.contains("4 | block = Part.makeBox(40, 20, 10)"),
        "{edit}"
    );
    assert!(
        edit.contains("Now change the part as follows:\n\nmake the hole 8 mm"),
        "{edit}"
    );
    // The critique judges against the prompt and the change.
    let critique = seen[3].last_user();
    assert!(critique.contains(PROMPT), "{critique}");
    assert!(critique.contains("1. make the hole 8 mm"), "{critique}");

    let out = refine(
        dir.path(),
        &server,
        &["make the block 60 mm long", "--from-attempt", "1"],
    );
    assert_exit(&out, 0);
    assert_eq!(server.left(), 0);
    let seen = server.requests();
    // From attempt 1, the 8 mm hole is not part of what is asked.
    let edit = seen[4].last_user();
    assert!(edit.contains("make the block 60 mm long"), "{edit}");
    assert!(!edit.contains("8 mm"), "{edit}");
    let repair = seen[5].last_user();
    assert!(repair.contains("1. make the block 60 mm long"), "{repair}");
    assert!(repair.contains("NameError"), "{repair}");

    let record = run_json(&run);
    assert_eq!(record["format"], 2);
    assert_eq!(record["prompt"], PROMPT);
    assert_eq!(record["status"], "finished");
    let requests = record["requests"].as_array().unwrap();
    let summary: Vec<(String, String, Value, Value, Value)> = requests
        .iter()
        .map(|r| {
            (
                r["kind"].as_str().unwrap().to_string(),
                r["text"].as_str().unwrap().to_string(),
                r["from_attempt"].clone(),
                r["attempts"].clone(),
                r["final"]["attempt"].clone(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (
                "generate".into(),
                PROMPT.into(),
                Value::Null,
                serde_json::json!([1]),
                1.into()
            ),
            (
                "edit".into(),
                "make the hole 8 mm".into(),
                1.into(),
                serde_json::json!([2]),
                2.into()
            ),
            (
                "edit".into(),
                "make the block 60 mm long".into(),
                1.into(),
                serde_json::json!([3, 4]),
                4.into()
            ),
        ]
    );
    let stages: Vec<(&str, u64, Value)> = record["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["stage"].as_str().unwrap(),
                a["request"].as_u64().unwrap(),
                a["parent"].clone(),
            )
        })
        .collect();
    assert_eq!(
        stages,
        [
            ("generate", 1, Value::Null),
            ("edit", 2, 1.into()),
            ("edit", 3, 1.into()),
            ("repair", 3, 3.into()),
        ]
    );
    assert_eq!(record["final"]["attempt"], 4);
    assert_eq!(record["outcome"], "match");
    assert_eq!(record["llm_calls"], 7);

    // Each step's STEP file is the solid its code builds; the top level is the last result.
    let volume = |path: &str| step_volume(&run.join(path));
    let expected = [
        ("attempts/01/model.step", 8000.0 - PI * 9.0 * 10.0),
        ("attempts/02/model.step", 8000.0 - PI * 16.0 * 10.0),
        ("attempts/04/model.step", 12000.0 - PI * 9.0 * 10.0),
        ("model.step", 12000.0 - PI * 9.0 * 10.0),
    ];
    for (path, want) in expected {
        let got = volume(path);
        assert!((got - want).abs() < 1e-3 * want, "{path}: {got} vs {want}");
    }
    for (n, code) in [(1, RIGHT), (2, HOLE_8), (4, LONG_60)] {
        let file = run.join(format!("attempts/{n:02}/code.py"));
        assert_eq!(std::fs::read_to_string(file).unwrap(), code);
    }
    assert!(!run.join("attempts/03/model.step").exists());

    // The transcript goes on numbering the calls.
    let transcript = std::fs::read_to_string(run.join("transcript.jsonl")).unwrap();
    let calls: Vec<u64> = transcript
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["call"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(calls, [1, 2, 3, 4, 5, 6, 7]);

    // The page shows the chain.
    let page = std::fs::read_to_string(run.join("report.html")).unwrap();
    assert!(page.contains("make the hole 8 mm"));
    assert!(page.contains("make the block 60 mm long"));
    assert!(page.contains("id=\"attempt-4\""));
}

/// Every file under `dir` with a hash of its bytes.
fn snapshot(dir: &Path) -> BTreeMap<String, u32> {
    let mut files = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let name = path.strip_prefix(dir).unwrap().display().to_string();
                files.insert(name, crc32fast::hash(&std::fs::read(&path).unwrap()));
            }
        }
    }
    files
}

fn assert_unchanged(run: &Path, before: &BTreeMap<String, u32>) {
    let now = snapshot(run);
    let changed: Vec<&String> = before
        .keys()
        .chain(now.keys())
        .filter(|k| before.get(*k) != now.get(*k))
        .collect();
    assert!(changed.is_empty(), "changed: {changed:?}");
}

#[test]
fn a_bad_start_or_a_damaged_record_is_refused_and_changes_nothing() {
    let server = ScriptedLlm::start(vec![
        reply(&fenced(BUGGY)),
        reply(&fenced(RIGHT)),
        reply("VERDICT: MATCH"),
    ]);
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    generate(dir.path(), &server);
    let before = snapshot(&run);
    let url = server.url();
    let args = |extra: &[&'static str]| {
        let mut all = vec![
            "refine",
            "run",
            "make it taller",
            "--base-url",
            &url,
            "--model",
            "m",
        ];
        all.extend_from_slice(extra);
        all.iter().map(|s| s.to_string()).collect::<Vec<_>>()
    };
    let refused = |extra: &[&'static str]| {
        let all = args(extra);
        let all: Vec<&str> = all.iter().map(String::as_str).collect();
        refusal(dir.path(), &all)
    };

    let err = refused(&["--from-attempt", "1"]);
    assert!(
        err.contains(
            "--from-attempt 1: that attempt built no solid (it failed: exception at line 5)"
        ),
        "{err}"
    );
    assert!(err.contains("--from-attempt N: 2"), "{err}");
    let err = refused(&["--from-attempt", "7"]);
    assert!(err.contains("the run has attempts 1 to 2"), "{err}");
    let err = refusal(dir.path(), &["refine", "nowhere", "x"]);
    assert!(err.contains("nowhere is not a folder"), "{err}");
    let err = refusal(dir.path(), &["refine", "run", "  "]);
    assert!(
        err.contains("the change (the CHANGE argument) is empty"),
        "{err}"
    );
    assert_unchanged(&run, &before);

    // A damaged run.json: named with its line, and left as it is.
    let good = std::fs::read(run.join("run.json")).unwrap();
    let cut = &good[..good.len() / 2];
    std::fs::write(run.join("run.json"), cut).unwrap();
    let err = refused(&[]);
    assert!(err.contains("run.json is damaged at line"), "{err}");
    assert!(err.contains("nothing was changed"), "{err}");
    assert_eq!(std::fs::read(run.join("run.json")).unwrap(), cut);

    // A run folder from an older cadloop.
    let mut old: Value = serde_json::from_slice(&good).unwrap();
    old["format"] = 1.into();
    old["cadloop_version"] = "0.0.9".into();
    std::fs::write(run.join("run.json"), serde_json::to_vec(&old).unwrap()).unwrap();
    let err = refused(&[]);
    assert!(
        err.contains("was written by cadloop 0.0.9 (run format 1)"),
        "{err}"
    );

    // A record whose result points nowhere.
    let mut odd: Value = serde_json::from_slice(&good).unwrap();
    odd["final"]["attempt"] = 9.into();
    std::fs::write(run.join("run.json"), serde_json::to_vec(&odd).unwrap()).unwrap();
    let err = refused(&[]);
    assert!(
        err.contains("the result is attempt 9, but 2 attempts are recorded"),
        "{err}"
    );

    std::fs::write(run.join("run.json"), &good).unwrap();
    assert_unchanged(&run, &before);
    assert_eq!(server.requests().len(), 3, "no refusal reached the LLM");

    // An endpoint that cannot be reached leaves the run as it was.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let nowhere = format!("http://127.0.0.1:{port}/v1");
    let err = refusal(
        dir.path(),
        &[
            "refine",
            "run",
            "make it taller",
            "--base-url",
            &nowhere,
            "--model",
            "m",
            "--retries",
            "0",
        ],
    );
    assert!(err.contains(&nowhere), "{err}");
    assert!(
        err.contains("the change was not applied; run is as it was"),
        "{err}"
    );
    assert_unchanged(&run, &before);
}

/// Starts `cadloop ARGS` in `dir` with its own temporary folder `tmp`, where
/// the FreeCAD workers make their areas.
fn spawn_cadloop(dir: &Path, tmp: &Path, args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_cadloop"))
        .args(args)
        .current_dir(dir)
        .env_remove("CADLOOP_CONFIG")
        .env_remove("CADLOOP_CAPTIONER")
        .env_remove("OPENAI_BASE_URL")
        .env_remove("OPENAI_API_KEY")
        .env("TMPDIR", tmp)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// What is left in `tmp`: the workers' areas must all be gone.
fn leftovers(tmp: &Path) -> Vec<String> {
    std::fs::read_dir(tmp)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn ctrl_c_during_the_critique_keeps_the_built_attempt_and_refine_goes_on() {
    // Each reply takes 2 s: time enough to send SIGINT while the critique is asked.
    let server = ScriptedLlm::responding(Duration::from_secs(2), |seen| {
        reply(&fenced(
            if seen
                .last_user()
                .contains("A script was run and built a solid")
            {
                RIGHT
            } else {
                TOO_LONG
            },
        ))
    });
    let dir = tempfile::tempdir().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let url = server.url();
    let child = spawn_cadloop(
        dir.path(),
        tmp.path(),
        &[
            "generate",
            PROMPT,
            "--base-url",
            &url,
            "--model",
            "m",
            "--out",
            "run",
        ],
    );
    wait_until("the critique request", || server.requests().len() == 2);
    kill(Pid::from_raw(child.id() as i32), Signal::SIGINT).unwrap();
    let out = child.wait_with_output().unwrap();
    assert_exit(&out, 130);
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("interrupted by Ctrl-C (SIGINT)"),
        "{stderr}"
    );
    assert!(stderr.contains("cadloop refine"), "{stderr}");
    assert_eq!(server.requests().len(), 2, "no call after the signal");
    assert_eq!(leftovers(tmp.path()), Vec::<String>::new());

    let record = run_json(&run);
    assert_eq!(record["status"], "stopped");
    assert_eq!(record["error"], "interrupted by Ctrl-C (SIGINT)");
    assert_eq!(record["stop_reason"], "interrupted by Ctrl-C (SIGINT)");
    assert_eq!(record["outcome"], "unverified");
    assert_eq!(record["final"]["attempt"], 1);
    assert_eq!(record["attempts"].as_array().unwrap().len(), 1);
    assert!(record["attempts"][0]["critique"].is_null());
    assert_eq!(record["requests"][0]["outcome"], "unverified");
    // The built attempt is the result: 50 x 20 x 10 less the 6 mm hole.
    let too_long = 50.0 * 20.0 * 10.0 - PI * 9.0 * 10.0;
    assert!((step_volume(&run.join("model.step")) - too_long).abs() < 1e-3);
    assert!(run.join("sheet.png").is_file());
    let page = std::fs::read_to_string(run.join("report.html")).unwrap();
    assert!(page.contains("interrupted by Ctrl-C (SIGINT)"));
    assert!(!page.contains("still going"));

    let fix = ScriptedLlm::start(vec![reply(&fenced(RIGHT)), reply("VERDICT: MATCH")]);
    let out = refine(dir.path(), &fix, &["make it 40 mm long"]);
    assert_exit(&out, 0);
    let record = run_json(&run);
    assert_eq!(record["status"], "finished");
    assert!(record.get("error").is_none());
    assert_eq!(record["final"]["attempt"], 2);
    assert_eq!(record["requests"][1]["from_attempt"], 1);
}

#[test]
fn sigterm_while_freecad_runs_a_change_leaves_the_run_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    generate(
        dir.path(),
        &ScriptedLlm::start(vec![reply(&fenced(RIGHT)), reply("VERDICT: MATCH")]),
    );
    let before = snapshot(&run);
    let slow = ScriptedLlm::start(vec![reply(&fenced(
        "import time\nimport Part\ntime.sleep(60)\nresult = Part.makeBox(1, 1, 1)\n",
    ))]);
    let url = slow.url();
    let child = spawn_cadloop(
        dir.path(),
        tmp.path(),
        &[
            "refine",
            "run",
            "make it wait",
            "--base-url",
            &url,
            "--model",
            "m",
        ],
    );
    // The supervisor writes code.py just before it hands the job to a worker.
    wait_until("the job", || run.join("attempts/02/code.py").exists());
    std::thread::sleep(Duration::from_millis(300));
    let signalled = Instant::now();
    kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        signalled.elapsed() < Duration::from_secs(30),
        "it stopped at once, not after the 60 s script"
    );
    assert_exit(&out, 143);
    let stderr = text(&out.stderr);
    assert!(stderr.contains("stopped by SIGTERM"), "{stderr}");
    assert!(stderr.contains("is as it was"), "{stderr}");
    assert_unchanged(&run, &before);
    assert_eq!(leftovers(tmp.path()), Vec::<String>::new());
}
