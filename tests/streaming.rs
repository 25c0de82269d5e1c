//! How cadloop asks: replies streamed token by token (timed in run.json, a
//! quiet stream stopped with a message), whole replies where a server
//! refuses or ignores streams, and the grammar that holds requests for
//! code to their layout on llama.cpp servers, dropped where refused. The
//! real binary against the scripted server on 127.0.0.1.

mod common;

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use common::llm_server::{reply, status, Scripted, ScriptedLlm, Streams};
use common::parts::{fenced, generate_with, PROMPT, RIGHT};
use common::{assert_exit, run_json, text};
use serde_json::Value;

fn generate(dir: &Path, server: &ScriptedLlm, extra: &[&str]) -> Output {
    let mut args = vec!["--max-refines", "0"];
    args.extend_from_slice(extra);
    generate_with(dir, server, PROMPT, &args)
}

#[test]
fn a_streamed_reply_is_timed_in_run_json_and_a_quiet_one_stops_the_run() {
    let server = ScriptedLlm::start(vec![reply(&fenced(RIGHT))])
        .streaming(Streams::Sent(Duration::from_millis(5)));
    let dir = tempfile::tempdir().unwrap();
    let out = generate(dir.path(), &server, &[]);
    assert_exit(&out, 0);
    let asked = &server.requests()[0].body;
    assert_eq!(asked["stream"], true, "{asked}");
    assert_eq!(asked["stream_options"]["include_usage"], true, "{asked}");
    let record = run_json(&dir.path().join("run"));
    let call = &record["calls"][0];
    assert_eq!(call["streamed"], true, "{call}");
    assert_eq!(call["purpose"], "generate", "{call}");
    let first = call["first_token_ms"].as_f64().unwrap();
    let rate = call["tokens_per_second"].as_f64().unwrap();
    let ms = call["ms"].as_f64().unwrap();
    // The server sends a chunk every 5 ms: the first after 10 ms at least
    // (the role's chunk, then the text's), and no more than 200 a second.
    assert!(first >= 10.0 && first < ms, "{call}");
    assert!(rate > 0.0 && rate <= 200.0, "{call}");
    // The server's usage (four characters a token) is the reply's count.
    assert_eq!(
        call["completion_tokens"],
        fenced(RIGHT).len() as u64 / 4,
        "{call}"
    );
    assert_eq!(record["attempts"][0]["code"], RIGHT);

    // A stream that goes quiet stops the run after the idle time, saying so.
    let server = ScriptedLlm::start(vec![Scripted::Quiet("```python\nimport Part\n".into())]);
    let dir = tempfile::tempdir().unwrap();
    let out = generate(dir.path(), &server, &["--idle-timeout", "1"]);
    assert_exit(&out, 2);
    let said = text(&out.stderr);
    for words in [
        "sent no token for 1 s",
        "tokens of the reply had come",
        "--idle-timeout",
    ] {
        assert!(said.contains(words), "{words}: {said}");
    }
    assert_eq!(server.requests().len(), 1, "a quiet stream is not retried");
}

#[test]
fn a_stream_that_keeps_coming_outlasts_the_request_timeout_a_whole_reply_does_not() {
    // A reply streamed over about two seconds, with a one-second request
    // limit: read to its end in one request, as a slow local model's is.
    let chunks = fenced(RIGHT).len() as u64 / 4;
    let server = ScriptedLlm::start(vec![reply(&fenced(RIGHT))])
        .streaming(Streams::Sent(Duration::from_millis(2000 / chunks + 1)));
    let dir = tempfile::tempdir().unwrap();
    let out = generate(dir.path(), &server, &["--request-timeout", "1"]);
    assert_exit(&out, 0);
    assert_eq!(server.requests().len(), 1, "{}", text(&out.stderr));
    let record = run_json(&dir.path().join("run"));
    let call = &record["calls"][0];
    assert_eq!(call["streamed"], true, "{call}");
    assert!(call["ms"].as_f64().unwrap() > 1500.0, "{call}");
    assert_eq!(record["attempts"][0]["code"], RIGHT);

    // A whole reply that takes longer than the limit is a timeout, tried
    // again, then named with the limit.
    let server = ScriptedLlm::responding(Duration::from_secs(3), |_| reply(&fenced(RIGHT)));
    let dir = tempfile::tempdir().unwrap();
    let out = generate(
        dir.path(),
        &server,
        &["--no-stream", "--request-timeout", "1", "--retries", "1"],
    );
    assert_exit(&out, 2);
    let said = text(&out.stderr);
    assert!(
        said.contains("did not answer within 1s (2 tries)"),
        "{said}"
    );
    assert_eq!(server.requests().len(), 2, "{said}");
}

/// Whether each request the server saw asked for a stream.
fn asked_streams(server: &ScriptedLlm) -> Vec<bool> {
    server
        .requests()
        .iter()
        .map(|r| r.body["stream"] == true)
        .collect()
}

#[test]
fn a_server_that_refuses_or_ignores_streams_gets_whole_replies() {
    // Refused: asked again whole, and never asked for a stream again.
    let server = ScriptedLlm::start(vec![
        reply("A block with a hole is a classic part."),
        reply(&fenced(RIGHT)),
    ])
    .streaming(Streams::Refused);
    let dir = tempfile::tempdir().unwrap();
    let out = generate(dir.path(), &server, &[]);
    assert_exit(&out, 0);
    assert_eq!(asked_streams(&server), [true, false, false]);
    let record = run_json(&dir.path().join("run"));
    assert_eq!(record["llm_calls"], 2);
    assert_eq!(record["calls"][1]["streamed"], false);
    assert_eq!(record["calls"][1]["first_token_ms"], Value::Null);
    assert!(text(&out.stderr).contains("refuses to stream"));

    // A stream that ends before it begins: asked again whole, from then on.
    let server = ScriptedLlm::start(vec![
        Scripted::Empty,
        reply("A classic part."),
        reply(&fenced(RIGHT)),
    ]);
    let dir = tempfile::tempdir().unwrap();
    let out = generate(dir.path(), &server, &[]);
    assert_exit(&out, 0);
    assert_eq!(asked_streams(&server), [true, false, false]);
    assert!(text(&out.stderr).contains("ended a stream before it began"));

    // Ignored: the whole JSON reply to a request for a stream is read.
    let server = ScriptedLlm::start(vec![reply(&fenced(RIGHT))]).streaming(Streams::Ignored);
    let dir = tempfile::tempdir().unwrap();
    let out = generate(dir.path(), &server, &[]);
    assert_exit(&out, 0);
    assert_eq!(server.requests().len(), 1);
    let record = run_json(&dir.path().join("run"));
    assert_eq!(record["attempts"][0]["code"], RIGHT);
    assert_eq!(record["calls"][0]["streamed"], false);
}

/// The grammar a request carried, if any.
fn grammar(body: &Value) -> Option<String> {
    body["grammar"].as_str().map(str::to_string)
}

#[test]
fn requests_for_code_carry_the_layouts_grammar_on_llama_cpp_servers_only() {
    // llama-server (it answers GET /props): the first request asks for the
    // checks and the code, the repair for the code alone, the critique is free.
    let server = ScriptedLlm::start(vec![
        reply(&fenced("import Part\nresult = Part.makeBox(40, 20, 10\n")),
        reply(&fenced(RIGHT)),
        reply("VERDICT: MATCH\nIt agrees."),
    ])
    .with_window(32_768);
    let dir = tempfile::tempdir().unwrap();
    let out = generate_with(dir.path(), &server, PROMPT, &["--max-refines", "1"]);
    assert_exit(&out, 0);
    let requests = server.requests();
    assert_eq!(requests.len(), 3);
    let first = grammar(&requests[0].body).expect("the first request carries a grammar");
    assert!(
        first.contains("```checks") && first.contains("```python"),
        "{first}"
    );
    let repair = grammar(&requests[1].body).expect("the repair carries a grammar");
    assert!(
        !repair.contains("```checks") && repair.contains("```python"),
        "{repair}"
    );
    assert_eq!(grammar(&requests[2].body), None, "the critique is free");
    let record = run_json(&dir.path().join("run"));
    assert_eq!(record["calls"][0]["constrained"], "grammar");
    assert_eq!(record["calls"][2]["constrained"], Value::Null);
    assert_eq!(record["settings"]["llm"]["constrain"], "always");

    // --constrain never, or a server not known to take a grammar: none is sent.
    for (server, flags) in [
        (
            ScriptedLlm::start(vec![reply(&fenced(RIGHT))]).with_window(32_768),
            &["--constrain", "never"][..],
        ),
        (ScriptedLlm::start(vec![reply(&fenced(RIGHT))]), &[][..]),
    ] {
        let dir = tempfile::tempdir().unwrap();
        assert_exit(&generate(dir.path(), &server, flags), 0);
        assert_eq!(grammar(&server.requests()[0].body), None, "{flags:?}");
    }

    // --constrain reminders: only the reminder after a reply without code.
    let server = ScriptedLlm::start(vec![reply("A classic part."), reply(&fenced(RIGHT))])
        .with_window(32_768);
    let dir = tempfile::tempdir().unwrap();
    assert_exit(
        &generate(dir.path(), &server, &["--constrain", "reminders"]),
        0,
    );
    let requests = server.requests();
    assert_eq!(grammar(&requests[0].body), None);
    assert!(grammar(&requests[1].body).is_some_and(|g| g.contains("```python")));
}

#[test]
fn a_server_that_refuses_the_grammar_is_asked_without_it_from_then_on() {
    let server = ScriptedLlm::responding(Duration::ZERO, |seen| {
        if seen.body.get("grammar").is_some() {
            return status(
                400,
                r#"{"error": {"message": "failed to parse grammar", "type": "invalid_request_error"}}"#,
            );
        }
        match seen.last_user().contains("no complete script") {
            true => reply(&fenced(RIGHT)),
            false => reply("A classic part."),
        }
    })
    .with_window(32_768);
    let dir = tempfile::tempdir().unwrap();
    let out = generate(dir.path(), &server, &[]);
    assert_exit(&out, 0);
    let carried: Vec<bool> = server
        .requests()
        .iter()
        .map(|r| grammar(&r.body).is_some())
        .collect();
    // The first request with it, again without it, then the reminder without.
    assert_eq!(carried, [true, false, false], "{carried:?}");
    assert!(text(&out.stderr).contains("refuses the reply's grammar"));
    let record = run_json(&dir.path().join("run"));
    assert_eq!(record["calls"][0]["constrained"], Value::Null);
}
