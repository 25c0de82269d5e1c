//! `cadloop batch` end to end: the real binary and real FreeCAD, with a
//! scripted OpenAI-compatible server on 127.0.0.1 answering by content.

mod common;

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::llm_server::{Scripted, ScriptedLlm, Seen};
use common::{assert_exit, cadloop, text, wait_until};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::Value;

/// Answers like a model that builds a cube of the side the prompt names
/// ("side N mm"), writes failing code for prompts that say "broken", and
/// accepts every solid it is shown.
fn cube_writer(seen: &Seen) -> Scripted {
    let ask = seen.last_user();
    if ask.contains("VERDICT: MATCH") {
        return Scripted::Reply("VERDICT: MATCH".into());
    }
    if ask.contains("broken") {
        return Scripted::Reply(
            "```python\nimport Part\nresult = Part.makeBox(0, 1, 1)\n```".into(),
        );
    }
    let side: u32 = ask
        .split("side ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(1);
    Scripted::Reply(format!(
        "```python\nimport Part\n\nSIDE = {side}  # cube side, mm\n\nresult = Part.makeBox(SIDE, SIDE, SIDE)\n```"
    ))
}

fn jsonl(ids: impl IntoIterator<Item = (String, String)>) -> String {
    ids.into_iter()
        .map(|(id, prompt)| {
            format!(
                "{}\n",
                serde_json::json!({"id": id, "prompt": prompt, "set": "test"})
            )
        })
        .collect()
}

fn cubes(n: u32) -> Vec<(String, String)> {
    (1..=n)
        .map(|i| {
            let prompt = if i % 7 == 0 {
                format!("a broken cube number {i}")
            } else {
                format!("a cube of side {i} mm")
            };
            (format!("cube-{i:02}"), prompt)
        })
        .collect()
}

fn batch_args<'a>(server: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "batch",
        "input.jsonl",
        "--out",
        "out",
        "--base-url",
        server,
        "--model",
        "m",
        "--max-repairs",
        "1",
    ];
    args.extend_from_slice(extra);
    args
}

fn records(dir: &Path, file: &str) -> Vec<Value> {
    std::fs::read_to_string(dir.join("out").join(file))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("every line is a whole record"))
        .collect()
}

#[test]
fn thirty_items_with_four_jobs_are_each_recorded_once() {
    let server = ScriptedLlm::responding(Duration::ZERO, cube_writer);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("input.jsonl"), jsonl(cubes(30))).unwrap();
    let url = server.url();
    let out = cadloop(
        dir.path(),
        &batch_args(&url, &["--jobs", "4", "--max-refines", "1"]),
    );
    assert_exit(&out, 0);
    assert!(
        text(&out.stdout).contains("batch: 30 finished (4 without a model)"),
        "{}",
        text(&out.stdout)
    );

    let records = records(dir.path(), "results.jsonl");
    assert_eq!(records.len(), 30);
    let ids: BTreeSet<&str> = records.iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 30);
    for record in &records {
        let id = record["id"].as_str().unwrap();
        let n: u32 = id.trim_start_matches("cube-").parse().unwrap();
        let expected = if n.is_multiple_of(7) {
            "failed"
        } else {
            "match"
        };
        assert_eq!(record["outcome"], expected, "{record}");
        assert_eq!(record["extra"]["set"], "test", "extra fields are kept");
        assert_eq!(record["out"], format!("items/{id}"));
        let run: Value = serde_json::from_slice(
            &std::fs::read(dir.path().join("out").join(format!("items/{id}/run.json"))).unwrap(),
        )
        .unwrap();
        assert_eq!(run["outcome"], expected);
        if expected == "match" {
            let size = &run["attempts"][0]["result"]["facts"]["bbox"]["size"];
            assert_eq!(size[0].as_f64().unwrap(), f64::from(n), "{id}");
            // The record carries the result's parameters.
            let side = &record["parameters"][0];
            assert_eq!(
                (&side["name"], &side["value"]),
                (&Value::from("SIDE"), &Value::from(n)),
                "{record}"
            );
            assert_eq!(side["comment"], "cube side, mm");
        } else {
            assert_eq!(record["attempts"], 2);
        }
    }

    let summary = cadloop(dir.path(), &["batch", "summary", "out", "--json"]);
    assert_exit(&summary, 0);
    let summary: Value = serde_json::from_slice(&summary.stdout).unwrap();
    assert_eq!(summary["items"], 30);
    assert_eq!(summary["outcomes"]["match"], 26);
    assert_eq!(summary["outcomes"]["failed"], 4);

    // A rerun finds nothing to do and sends nothing.
    let before = server.requests().len();
    let again = cadloop(
        dir.path(),
        &batch_args(&url, &["--jobs", "4", "--max-refines", "1"]),
    );
    assert_exit(&again, 0);
    assert!(text(&again.stdout).contains("nothing to do"));
    assert_eq!(server.requests().len(), before);
}

#[test]
fn a_batch_killed_with_sigkill_resumes_without_redoing_or_duplicating() {
    let server = ScriptedLlm::responding(Duration::from_millis(300), cube_writer);
    let dir = tempfile::tempdir().unwrap();
    let items: Vec<(String, String)> = (1..=12)
        .map(|i| {
            (
                format!("k{i}"),
                format!("a cube of side {i} mm, item k{i}."),
            )
        })
        .collect();
    std::fs::write(dir.path().join("input.jsonl"), jsonl(items.clone())).unwrap();
    let url = server.url();
    let mut child = Command::new(env!("CARGO_BIN_EXE_cadloop"))
        .args(batch_args(&url, &["--jobs", "2", "--max-refines", "1"]))
        .current_dir(dir.path())
        .env_remove("CADLOOP_CONFIG")
        .env_remove("CADLOOP_CAPTIONER")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_until("three results", || {
        records(dir.path(), "results.jsonl").len() >= 3
    });
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let finished: BTreeSet<String> = records(dir.path(), "results.jsonl")
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect();
    assert!(finished.len() < 12, "the batch was killed before the end");

    let before = server.requests().len();
    let out = cadloop(
        dir.path(),
        &batch_args(&url, &["--jobs", "3", "--max-refines", "1"]),
    );
    assert_exit(&out, 0);
    // Nothing finished before the kill was asked for again.
    for request in &server.requests()[before..] {
        let ask = request.last_user();
        for id in &finished {
            assert!(!ask.contains(&format!("item {id}.")), "{id} was redone");
        }
    }
    let records = records(dir.path(), "results.jsonl");
    let mut count: HashMap<String, usize> = HashMap::new();
    for record in &records {
        *count
            .entry(record["id"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    assert_eq!(count.len(), 12, "{count:?}");
    assert!(count.values().all(|&n| n == 1), "{count:?}");
}

#[test]
fn ctrl_c_then_sigterm_stops_the_items_in_flight_and_records_them_as_stopped() {
    // Five seconds a reply, two replies an item: items are in flight for a while.
    let server = ScriptedLlm::responding(Duration::from_secs(5), cube_writer);
    let dir = tempfile::tempdir().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("input.jsonl"), jsonl(cubes(6))).unwrap();
    let url = server.url();
    let child = Command::new(env!("CARGO_BIN_EXE_cadloop"))
        .args(batch_args(&url, &["--jobs", "2", "--max-refines", "1"]))
        .current_dir(dir.path())
        .env_remove("CADLOOP_CONFIG")
        .env_remove("CADLOOP_CAPTIONER")
        .env("TMPDIR", tmp.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_until("a first result", || {
        !records(dir.path(), "results.jsonl").is_empty()
    });
    // Ctrl-C only stops new items; SIGTERM then stops those in flight.
    let pid = Pid::from_raw(child.id() as i32);
    kill(pid, Signal::SIGINT).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    kill(pid, Signal::SIGTERM).unwrap();
    let out = child.wait_with_output().unwrap();
    // Stopped by SIGTERM: 128 + 15, as generate and refine exit.
    assert_exit(&out, 143);
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("stopped early: stopped by SIGTERM; rerun the same command"),
        "{stderr}"
    );

    let finished: BTreeSet<String> = records(dir.path(), "results.jsonl")
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect();
    let mut stopped = 0;
    for entry in std::fs::read_dir(dir.path().join("out/items")).unwrap() {
        let item = entry.unwrap().path();
        let id = item.file_name().unwrap().to_string_lossy().into_owned();
        let run: Value =
            serde_json::from_slice(&std::fs::read(item.join("run.json")).unwrap()).unwrap();
        if finished.contains(&id) {
            assert_eq!(run["status"], "finished", "{id}");
        } else {
            assert_eq!(run["status"], "stopped", "{id}");
            assert_eq!(run["error"], "stopped by SIGTERM", "{id}");
            stopped += 1;
        }
    }
    assert!(stopped >= 1, "an item was in flight when SIGTERM came");
    assert!(finished.len() < 6);
    let left: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().collect();
    assert!(left.is_empty(), "worker areas left behind: {left:?}");
}

#[test]
fn two_shards_cover_the_input_exactly_once() {
    let server = ScriptedLlm::responding(Duration::ZERO, cube_writer);
    let dir = tempfile::tempdir().unwrap();
    let items: Vec<(String, String)> = (1..=10)
        .map(|i| (format!("s{i}"), format!("a cube of side {i} mm")))
        .collect();
    std::fs::write(dir.path().join("input.jsonl"), jsonl(items)).unwrap();
    let url = server.url();
    for k in ["0/2", "1/2"] {
        let out = cadloop(
            dir.path(),
            &batch_args(&url, &["--shard", k, "--max-refines", "0"]),
        );
        assert_exit(&out, 0);
    }
    let first: BTreeSet<String> = records(dir.path(), "results.shard-0-of-2.jsonl")
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect();
    let second: BTreeSet<String> = records(dir.path(), "results.shard-1-of-2.jsonl")
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(first.len(), 5);
    assert_eq!(second.len(), 5);
    assert!(first.is_disjoint(&second));
    assert_eq!(first.union(&second).count(), 10);
    let summary = cadloop(dir.path(), &["batch", "summary", "out"]);
    assert_exit(&summary, 0);
    let summary = text(&summary.stdout);
    assert!(
        summary.starts_with("10 items from results.shard-0-of-2.jsonl, results.shard-1-of-2.jsonl"),
        "{summary}"
    );
    assert!(summary.contains("success     100.0 %"), "{summary}");

    // One index over both shards, each row linking to the item's page and sheet.
    let index = std::fs::read_to_string(dir.path().join("out/index.html"))
        .unwrap()
        .replace("&#x2f;", "/"); // minijinja escapes slashes too
    for i in 1..=10 {
        assert!(
            index.contains(&format!("<a href=\"items/s{i}/report.html\">s{i}</a>")),
            "s{i} in {index}"
        );
        assert!(index.contains(&format!("src=\"items/s{i}/sheet.png\"")));
        assert!(dir
            .path()
            .join(format!("out/items/s{i}/report.html"))
            .is_file());
    }
    assert!(index.contains("a cube of side 7 mm"));
}

#[test]
fn malformed_lines_are_reported_with_numbers_and_strict_refuses_them() {
    let server = ScriptedLlm::responding(Duration::ZERO, cube_writer);
    let dir = tempfile::tempdir().unwrap();
    let input = "{\"id\": \"a\", \"prompt\": \"a cube of side 3 mm\"}\n\
                 {\"id\": \"b\", \"prompt\": \n\
                 {\"id\": \"a\", \"prompt\": \"a cube of side 4 mm\"}\n\
                 {\"id\": \"../c\", \"prompt\": \"a cube of side 5 mm\"}\n\
                 {\"id\": \"d\"}\n";
    std::fs::write(dir.path().join("input.jsonl"), input).unwrap();
    let url = server.url();
    let strict = cadloop(dir.path(), &batch_args(&url, &["--strict"]));
    assert_exit(&strict, 2);
    let stderr = text(&strict.stderr);
    assert!(
        stderr.contains("3 malformed line(s) and --strict is set"),
        "{stderr}"
    );
    assert!(stderr.contains("line 2: not JSON"), "{stderr}");
    assert!(
        stderr.contains("line 3: the id \"a\" was already used on line 1"),
        "{stderr}"
    );
    assert!(stderr.contains("line 5: no \"prompt\" field"), "{stderr}");
    assert!(!dir.path().join("out").exists());
    assert!(server.requests().is_empty());

    let out = cadloop(dir.path(), &batch_args(&url, &["--max-refines", "0"]));
    assert_exit(&out, 0);
    let stderr = text(&out.stderr);
    assert!(stderr.contains("input.jsonl: line 2: not JSON"), "{stderr}");
    let records = records(dir.path(), "results.jsonl");
    let ids: BTreeSet<&str> = records.iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(ids, BTreeSet::from(["a", "../c"]));
    // The id with a path in it stays inside items/.
    let folder = records.iter().find(|r| r["id"] == "../c").unwrap()["out"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        folder.starts_with("items/_.._c-")
            || folder.starts_with("items/.._c-")
            || folder.starts_with("items/_c-"),
        "{folder}"
    );
    assert!(dir
        .path()
        .join("out")
        .join(&folder)
        .join("run.json")
        .is_file());
}

#[test]
fn a_text2cad_csv_runs_the_chosen_level() {
    let server = ScriptedLlm::responding(Duration::ZERO, cube_writer);
    let dir = tempfile::tempdir().unwrap();
    let csv = "uid,abstract,beginner,intermediate,expert\n\
               0000/00001234,a cube,a small cube,\"a cube of side 6 mm, solid\",\"Create a cube: side 6 mm.\"\n\
               0001/00004321,a box,a box,a cube of side 8 mm,A cube.\n";
    std::fs::write(dir.path().join("text2cad.csv"), csv).unwrap();
    let url = server.url();
    let out = cadloop(
        dir.path(),
        &[
            "batch",
            "text2cad.csv",
            "--out",
            "out",
            "--base-url",
            &url,
            "--model",
            "m",
            "--level",
            "intermediate",
            "--max-refines",
            "0",
        ],
    );
    assert_exit(&out, 0);
    let records = records(dir.path(), "results.jsonl");
    assert_eq!(records.len(), 2);
    let first = records.iter().find(|r| r["id"] == "0000/00001234").unwrap();
    assert_eq!(first["extra"]["column"], "intermediate");
    let run: Value = serde_json::from_slice(
        &std::fs::read(
            dir.path()
                .join("out")
                .join(first["out"].as_str().unwrap())
                .join("run.json"),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(run["prompt"], "a cube of side 6 mm, solid");
    assert_eq!(
        run["attempts"][0]["result"]["facts"]["bbox"]["size"][0],
        6.0
    );
}
