//! cadloop against a real local LLM server: llama-cpp-python serving
//! SmolLM2-135M-Instruct (tests/common/local_model.rs). The model is far too
//! small to write good parts; these tests are about the conversation: the
//! requests it takes, the replies cadloop reads (streamed, held to their
//! layout by a grammar), the window it has, a change in words and a studio
//! run through it.

mod common;

use std::path::Path;
use std::process::Output;

use common::llm_server::{reply, ScriptedLlm};
use common::local_model::{LocalModel, MODEL};
use common::parts::{fenced, generate_with, PROMPT, RIGHT};
use common::studio::{follow, post, start};
use common::{assert_exit, cadloop, run_json, text};

/// One call for code, and its reminder when the reply has none: the
/// model's most likely reply, no repair, no critique.
const QUICK: &[&str] = &[
    "--temperature",
    "0",
    "--max-repairs",
    "0",
    "--max-refines",
    "0",
];

/// `cadloop generate "a 20 mm cube"` through `server` into `DIR/run`.
fn generate_cube(dir: &Path, server: &LocalModel, extra: &[&str]) -> Output {
    let url = server.url();
    let mut args = vec![
        "generate",
        "a 20 mm cube",
        "--base-url",
        &url,
        "--model",
        MODEL,
    ];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["--out", "run"]);
    cadloop(dir, &args)
}

#[test]
fn a_run_talks_to_a_real_local_server_to_the_end() {
    let server = LocalModel::start(4096);
    let dir = tempfile::tempdir().unwrap();
    let out = generate_cube(
        dir.path(),
        &server,
        &[&["--max-tokens", "300"], QUICK].concat(),
    );
    // Whatever the model wrote, the run ends with a record: a part (0) or
    // attempts that failed (1), never a failure to talk (2).
    let said = format!("{}\n{}", text(&out.stdout), text(&out.stderr));
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "{said}\n{}",
        server.logs()
    );
    let record = run_json(&dir.path().join("run"));
    let calls = record["llm_calls"].as_u64().unwrap();
    assert!(calls >= 1, "{record}");
    let transcript = std::fs::read_to_string(dir.path().join("run/transcript.jsonl")).unwrap();
    let replies: Vec<serde_json::Value> = transcript
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(replies.len() as u64, calls);
    for (exchange, call) in replies.iter().zip(record["calls"].as_array().unwrap()) {
        let reply = &exchange["reply"];
        let content = reply["content"].as_str().unwrap();
        assert!(!content.is_empty(), "{reply}");
        assert!(
            reply["usage"]["completion_tokens"].as_u64().unwrap() <= 300,
            "{reply}"
        );
        // Streamed, and timed: the first token, then the rate.
        assert_eq!(call["streamed"], true, "{call}");
        assert!(call["first_token_ms"].as_f64().unwrap() > 0.0, "{call}");
        assert!(call["tokens_per_second"].as_f64().unwrap() > 0.0, "{call}");
        // Held to the layout asked for: the first reply opens with its
        // checks, a reminder for code with the script.
        match exchange["purpose"].as_str().unwrap() {
            "generate" => {
                assert_eq!(reply["constrained"], "grammar", "{reply}");
                assert!(content.starts_with("```checks\n"), "{content}");
                if reply["finish_reason"] == "stop" {
                    assert!(content.contains("```\n```python\n"), "{content}");
                    assert!(content.trim_end().ends_with("```"), "{content}");
                }
            }
            "reminder" => {
                assert_eq!(reply["constrained"], "grammar", "{reply}");
                assert!(content.starts_with("```python\n"), "{content}");
            }
            _ => {}
        }
    }
}

#[test]
fn a_batch_runs_its_items_through_a_real_local_server() {
    let server = LocalModel::start(4096);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("prompts.txt"),
        "a 20 mm cube\na cylinder 10 mm across and 30 mm tall\n",
    )
    .unwrap();
    let url = server.url();
    let out = cadloop(
        dir.path(),
        &[
            "batch",
            "prompts.txt",
            "--out",
            "out",
            "--base-url",
            &url,
            "--model",
            MODEL,
            "--max-tokens",
            "300",
            "--max-repairs",
            "0",
            "--max-refines",
            "0",
            "--jobs",
            "1",
            // Whole replies: llama-cpp-python counts a streamed reply's
            // prompt nowhere, a whole one in its usage.
            "--no-stream",
        ],
    );
    let said = format!("{}\n{}", text(&out.stdout), text(&out.stderr));
    assert!(matches!(out.status.code(), Some(0 | 1)), "{said}");
    let results = std::fs::read_to_string(dir.path().join("out/results.jsonl")).unwrap();
    let records: Vec<serde_json::Value> = results
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records.len(), 2, "{results}");
    for record in &records {
        // Each item talked to the model; none stopped on the connection.
        assert!(record["llm_calls"].as_u64().unwrap() >= 1, "{record}");
        assert_ne!(record["outcome"], "error", "{record}");
        let transcript = dir
            .path()
            .join("out")
            .join(record["out"].as_str().unwrap())
            .join("transcript.jsonl");
        let transcript = std::fs::read_to_string(&transcript).unwrap();
        for line in transcript.lines() {
            let reply = &serde_json::from_str::<serde_json::Value>(line).unwrap()["reply"];
            // The server counted the whole prompt: nothing was cut.
            assert!(
                reply["usage"]["prompt_tokens"].as_u64().unwrap() > 500,
                "{reply}"
            );
            assert_eq!(reply["streamed"], serde_json::Value::Null, "{reply}");
        }
    }
}

#[test]
fn a_window_too_small_for_the_prompt_names_the_window_and_the_fix() {
    let server = LocalModel::start(512);
    let dir = tempfile::tempdir().unwrap();
    let out = generate_cube(dir.path(), &server, &[]);
    assert_exit(&out, 2);
    let said = text(&out.stderr);
    assert!(said.contains("context window of 512 tokens"), "{said}");
    assert!(said.contains("llama-cpp-python"), "{said}");
    assert!(said.contains("--n_ctx"), "the fix: {said}");
}

#[test]
fn a_change_in_words_and_a_studio_run_talk_to_a_real_local_server() {
    let server = LocalModel::start(4096);
    let url = server.url();
    let loop_flags = [&["--max-tokens", "200"], QUICK].concat();
    // A part made first (the scripted server writes it); the change in
    // words goes to the real model.
    let scripted = ScriptedLlm::start(vec![reply(&fenced(RIGHT))]);
    let dir = tempfile::tempdir().unwrap();
    assert_exit(
        &generate_with(dir.path(), &scripted, PROMPT, &["--max-refines", "0"]),
        0,
    );
    let mut args = vec![
        "refine",
        "run",
        "make the hole 8 mm",
        "--base-url",
        &url,
        "--model",
        MODEL,
    ];
    args.extend_from_slice(&loop_flags);
    let out = cadloop(dir.path(), &args);
    let said = format!("{}\n{}", text(&out.stdout), text(&out.stderr));
    assert!(matches!(out.status.code(), Some(0 | 1)), "{said}");
    let record = run_json(&dir.path().join("run"));
    assert_eq!(record["requests"][1]["text"], "make the hole 8 mm");
    let calls = record["calls"].as_array().unwrap();
    let edit = calls
        .iter()
        .find(|c| c["purpose"] == "edit")
        .unwrap_or_else(|| panic!("no edit call: {calls:?}"));
    assert_eq!(edit["streamed"], true, "{edit}");
    assert_eq!(edit["constrained"], "grammar", "{edit}");

    // A run started in the studio: its page is sent the reply as it is written.
    let studio = start(
        dir.path(),
        &[&["--base-url", &url, "--model", MODEL][..], &loop_flags].concat(),
    );
    let started = post(
        &studio,
        "/api/runs",
        &serde_json::json!({"prompt": "a 20 mm cube"}).to_string(),
    );
    assert_eq!(started.status, 200, "{}", started.text());
    let id = started.json()["id"].as_str().unwrap().to_string();
    let states = follow(&studio, &id);
    let last = states.last().unwrap();
    assert_ne!(last["status"], "running", "{last}");
    assert_eq!(last["run_error"], serde_json::Value::Null, "{last}");
    let written: Vec<&serde_json::Value> = states
        .iter()
        .map(|s| &s["writing"])
        .filter(|w| !w.is_null())
        .collect();
    // SmolLM2 writes a few tokens a second and the page is sent each
    // change: several states show the reply growing, held to its layout.
    assert!(written.len() >= 2, "{written:?}");
    for w in &written {
        assert!(w["text"].as_str().unwrap().starts_with("```"), "{w}");
    }
    let counts: Vec<u64> = written
        .iter()
        .map(|w| w["tokens"].as_u64().unwrap())
        .collect();
    assert!(counts.windows(2).any(|p| p[1] > p[0]), "{counts:?}");
}
