//! cadloop against a real local LLM server: llama-cpp-python serving
//! SmolLM2-135M-Instruct (tests/common/local_model.rs). The model is far too
//! small to write good parts; these tests are about the conversation: the
//! requests it takes, the replies cadloop reads, the window it has.

mod common;

use std::path::Path;
use std::process::Output;

use common::local_model::{LocalModel, MODEL};
use common::{assert_exit, cadloop, run_json, text};

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
        &[
            "--max-tokens",
            "300",
            "--temperature",
            "0",
            "--max-repairs",
            "1",
            "--max-refines",
            "0",
        ],
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
    for exchange in &replies {
        let reply = &exchange["reply"];
        assert!(!reply["content"].as_str().unwrap().is_empty(), "{reply}");
        // The server counted the whole prompt: nothing was cut.
        assert!(
            reply["usage"]["prompt_tokens"].as_u64().unwrap() > 500,
            "{reply}"
        );
        assert!(
            reply["usage"]["completion_tokens"].as_u64().unwrap() <= 300,
            "{reply}"
        );
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
