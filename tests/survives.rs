//! What cadloop survives, beyond the tests of each part: LLM servers that
//! misbehave in ways the loop's own tests do not script, and hostile input
//! at the front doors (the command line and the MCP server). Each test is
//! a row of the README's table "What cadloop survives".

mod common;

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use common::command::cadloop_command;
use common::llm_server::{gap, reply, Scripted, ScriptedLlm};
use common::parts::{fenced, generate_with, PROMPT, RIGHT};
use common::{assert_exit, cadloop, run_json, text};

fn generate(dir: &Path, server: &ScriptedLlm, extra: &[&str]) -> Output {
    let mut args = vec!["--max-refines", "0"];
    args.extend_from_slice(extra);
    generate_with(dir, server, PROMPT, &args)
}

fn rate_limited(seconds: u32) -> Scripted {
    Scripted::Status {
        status: 429,
        headers: vec![("retry-after", seconds.to_string())],
        body: "{\"error\": {\"message\": \"rate limited\", \"type\": \"rate_limit\"}}".into(),
    }
}

#[test]
fn a_storm_of_429s_is_waited_out_as_asked_and_past_the_retries_named() {
    // Four refusals in a row, each asking for a second's pause: waited
    // out, then the reply is used.
    let mut script: Vec<Scripted> = (0..4).map(|_| rate_limited(1)).collect();
    script.push(reply(&fenced(RIGHT)));
    let server = ScriptedLlm::start(script);
    let dir = tempfile::tempdir().unwrap();
    let out = generate(dir.path(), &server, &["--retries", "5"]);
    assert_exit(&out, 0);
    let requests = server.requests();
    assert_eq!(requests.len(), 5);
    for pair in requests.windows(2) {
        let waited = gap(&pair[0], &pair[1]);
        assert!(waited >= Duration::from_millis(950), "{waited:?}");
    }
    assert_eq!(
        run_json(&dir.path().join("run"))["attempts"][0]["code"],
        RIGHT
    );

    // More refusals than retries: the run stops, naming the status and the
    // tries, and leaves no run folder behind.
    let server = ScriptedLlm::start((0..3).map(|_| rate_limited(1)).collect());
    let dir = tempfile::tempdir().unwrap();
    let out = generate(dir.path(), &server, &["--retries", "2"]);
    assert_exit(&out, 2);
    let said = text(&out.stderr);
    assert!(said.contains("429") && said.contains("3 tries"), "{said}");
    assert!(said.contains("rate limited"), "{said}");
    assert!(!said.contains("panicked"), "{said}");
}

#[test]
fn a_reply_without_choices_or_with_an_html_page_is_named_not_a_crash() {
    for (body, says) in [
        (
            r#"{"id": "x", "object": "chat.completion", "choices": []}"#,
            "no choices",
        ),
        (
            "<!doctype html><title>502 Bad Gateway</title>",
            "502 Bad Gateway",
        ),
        ("", "cannot read"),
    ] {
        let server = ScriptedLlm::start(vec![Scripted::Raw(body.into())]);
        let dir = tempfile::tempdir().unwrap();
        let out = generate(dir.path(), &server, &[]);
        assert_exit(&out, 2);
        let said = text(&out.stderr);
        assert!(said.contains(says), "{body}: {said}");
        assert!(
            said.contains(&server.url()),
            "the endpoint is named: {said}"
        );
        assert!(!said.contains("panicked"), "{said}");
    }
}

#[test]
fn hostile_prompt_files_get_a_clear_refusal_or_a_whole_record() {
    let server = ScriptedLlm::start(vec![reply(&fenced(RIGHT)), reply(&fenced(RIGHT))]);
    let url = server.url();
    let dir = tempfile::tempdir().unwrap();
    let run = |file: &str, out: &str| {
        cadloop(
            dir.path(),
            &[
                "generate",
                "--prompt-file",
                file,
                "--base-url",
                &url,
                "--model",
                "m",
                "--max-refines",
                "0",
                "--out",
                out,
            ],
        )
    };
    // Not UTF-8: refused, naming the file, before any request.
    std::fs::write(dir.path().join("latin1.txt"), b"a 20 mm W\xfcrfel\n").unwrap();
    let out = run("latin1.txt", "latin1");
    assert_exit(&out, 2);
    let said = text(&out.stderr);
    assert!(
        said.contains("latin1.txt") && said.contains("UTF-8"),
        "{said}"
    );
    assert!(!dir.path().join("latin1").exists());

    // Empty, or blank: refused.
    std::fs::write(dir.path().join("blank.txt"), " \n\t\n").unwrap();
    let out = run("blank.txt", "blank");
    assert_exit(&out, 2);
    assert!(!dir.path().join("blank").exists());

    // NUL bytes, controls and a line separator: taken as they are, and
    // run.json keeps them whole.
    let odd = "a 40 x 20 x 10 mm block\u{0}with a 6 mm hole\u{7}\u{2028}through the middle";
    std::fs::write(dir.path().join("odd.txt"), odd).unwrap();
    let out = run("odd.txt", "odd");
    assert_exit(&out, 0);
    assert_eq!(run_json(&dir.path().join("odd"))["prompt"], odd);
    assert_eq!(server.requests().len(), 1);
    assert!(server.requests()[0].last_user().contains(odd));

    // A megabyte of prompt: refused with the limit, before any request.
    let big = "a 20 mm cube. ".repeat(75_000);
    std::fs::write(dir.path().join("big.txt"), &big).unwrap();
    let out = run("big.txt", "big");
    assert_exit(&out, 2);
    let said = text(&out.stderr);
    assert!(said.contains("longer than 20000 characters"), "{said}");
    assert!(!dir.path().join("big").exists());
    assert_eq!(server.requests().len(), 1);
}

#[test]
fn cadloop_killed_at_any_moment_leaves_run_json_whole_and_the_folder_free() {
    // Each answer comes after 100 ms: a run (code, critique, rewrite,
    // critique) writes run.json a dozen times in about two seconds.
    let server = ScriptedLlm::responding(Duration::from_millis(100), |seen| {
        let ask = seen.last_user();
        if ask.contains("VERDICT: MATCH") {
            let verdict = if ask.contains("makeBox(40, 20, 12)") {
                "VERDICT: MATCH"
            } else {
                "VERDICT: MISMATCH\nIt should be 12 mm tall."
            };
            Scripted::Reply(verdict.into())
        } else if seen.messages().len() > 2 {
            Scripted::Reply(fenced(
                &RIGHT.replace("makeBox(40, 20, 10)", "makeBox(40, 20, 12)"),
            ))
        } else {
            Scripted::Reply(fenced(RIGHT))
        }
    });
    let url = server.url();
    let dir = tempfile::tempdir().unwrap();
    let mut recorded = 0;
    for trial in 0..24u64 {
        let out = format!("run-{trial}");
        let mut child = cadloop_command(dir.path())
            .args(["-q", "generate", PROMPT, "--base-url", &url, "--model", "m"])
            .args(["--max-refines", "2", "--out", &out])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(100 + trial * 90));
        let _ = child.kill();
        let _ = child.wait();
        let run = dir.path().join(&out);
        if !run.join("run.json").exists() {
            continue;
        }
        recorded += 1;
        // Old or new, never half; and the folder is not left locked.
        let record = cadloop::report::read_run(&run)
            .unwrap_or_else(|e| panic!("trial {trial}: {}", cadloop::error_chain(&e)));
        assert!(!record.requests.is_empty());
        if let Err(err) = cadloop::run::RunDir::open(&run) {
            panic!("trial {trial}: {}", cadloop::error_chain(&err));
        }
    }
    assert!(
        recorded >= 12,
        "only {recorded} of 24 kills came after run.json was written"
    );
}
