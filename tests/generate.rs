//! `cadloop generate` end to end: the real binary, real FreeCAD, the tiny
//! captioner under real ONNX Runtime, and real HTTP to a scripted
//! OpenAI-compatible server on 127.0.0.1.

mod common;

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use common::llm_server::{gap, reply, status, Scripted, ScriptedLlm};
use common::parts::{
    fenced, generate_with, step_volume, tiny_captioner, BUGGY, PROMPT, RIGHT, TOO_LONG,
};
use common::{assert_exit, cadloop, run_json, text};
use serde_json::Value;

fn generate(dir: &Path, server: &ScriptedLlm, extra: &[&str]) -> Output {
    generate_with(dir, server, PROMPT, extra)
}

#[test]
fn the_loop_repairs_an_error_refines_a_mismatch_and_stops_on_match() {
    let server = ScriptedLlm::start(vec![
        reply(&format!("Here is the part:\n{}", fenced(BUGGY))),
        reply(&fenced(TOO_LONG)),
        reply(&format!(
            "VERDICT: MISMATCH\nThe block is 50 mm long; 40 mm was asked for.\n{}",
            fenced(RIGHT)
        )),
        reply("VERDICT: MATCH\nSize and hole agree."),
    ]);
    let dir = tempfile::tempdir().unwrap();
    let captioner = tiny_captioner();
    let out = generate(
        dir.path(),
        &server,
        &["--captioner", captioner.to_str().unwrap()],
    );
    assert_exit(&out, 0);
    assert_eq!(server.left(), 0);
    let stdout = text(&out.stdout);
    assert!(
        stdout.starts_with("match: run (3 attempts, 1 repair, 1 refine;"),
        "{stdout}"
    );

    let run = dir.path().join("run");
    let record = run_json(&dir.path().join("run"));
    assert_eq!(record["status"], "finished");
    assert_eq!(record["outcome"], "match");
    assert_eq!(record["critique_basis"], "captions-and-geometry");
    assert_eq!(record["final"]["attempt"], 3);
    assert_eq!(record["llm_calls"], 4);
    let attempts = record["attempts"].as_array().unwrap();
    let stages: Vec<&str> = attempts
        .iter()
        .map(|a| a["stage"].as_str().unwrap())
        .collect();
    assert_eq!(stages, ["generate", "repair", "rewrite"]);
    assert_eq!(attempts[0]["result"]["outcome"], "error");
    assert_eq!(attempts[0]["result"]["kind"], "exception");
    assert_eq!(attempts[0]["result"]["line"], 5);
    assert_eq!(attempts[1]["parent"], 1);
    assert_eq!(attempts[1]["critique"]["verdict"], "mismatch");
    assert_eq!(attempts[1]["critique"]["rewrite_used"], true);
    assert_eq!(attempts[2]["round"], 1);
    assert_eq!(attempts[2]["critique"]["verdict"], "match");
    assert_eq!(attempts[2]["code"], RIGHT);
    let tokens = record["usage"]["total_tokens"].as_u64().unwrap();
    assert!(tokens > 0, "{tokens}");
    for stage in ["llm_ms", "exec_ms", "render_ms", "caption_ms", "total_ms"] {
        assert!(record["timings"][stage].as_f64().unwrap() > 0.0, "{stage}");
    }

    // The repair prompt carries the traceback, its line, and the numbered code.
    let requests = server.requests();
    assert_eq!(requests.len(), 4);
    assert_eq!(requests[0].body["model"], "scripted-coder");
    assert!(requests[0].last_user().contains(PROMPT));
    let repair = requests[1].last_user();
    assert!(
        repair.contains("NameError: name 'hole' is not defined"),
        "{repair}"
    );
    assert!(repair.contains("at line 5"), "{repair}");
    assert!(repair.contains("5 | result = block.cut(hole)"), "{repair}");

    // The refine prompt carries the seven captions of attempt 2 and its size.
    let refine = requests[2].last_user();
    let captions: Value =
        serde_json::from_slice(&std::fs::read(run.join("attempts/02/captions.json")).unwrap())
            .unwrap();
    let captions = captions.as_array().unwrap();
    assert_eq!(captions.len(), 7);
    for (caption, view) in captions
        .iter()
        .zip(["front", "back", "left", "right", "top", "bottom", "iso"])
    {
        assert_eq!(caption["view"], view);
        let line = format!("- {view}: \"{}\"", caption["text"].as_str().unwrap());
        assert!(refine.contains(&line), "{line} not in\n{refine}");
    }
    assert!(refine.contains("bounding box: 50 × 20 × 10 mm"), "{refine}");
    assert!(refine.contains(PROMPT), "{refine}");
    assert!(requests[3]
        .last_user()
        .contains("bounding box: 40 × 20 × 10 mm"));

    // The run folder.
    for file in [
        "model.step",
        "model.stl",
        "model.FCStd",
        "sheet.png",
        "run.json",
        "transcript.jsonl",
        "attempts/01/code.py",
        "attempts/01/result.json",
        "attempts/02/feedback.md",
        "attempts/02/views/iso.png",
        "attempts/03/captions.json",
        "attempts/03/model.step",
    ] {
        assert!(run.join(file).is_file(), "{file} is missing");
    }
    for view in ["front", "back", "left", "right", "top", "bottom", "iso"] {
        assert!(run.join(format!("views/{view}.png")).is_file(), "{view}");
    }
    assert!(!run.join("attempts/01/model.step").exists());
    assert_eq!(
        std::fs::read_to_string(run.join("attempts/01/code.py")).unwrap(),
        BUGGY
    );
    let feedback = std::fs::read_to_string(run.join("attempts/02/feedback.md")).unwrap();
    assert!(feedback.contains("Verdict: MISMATCH"), "{feedback}");
    assert!(feedback.contains("40 mm was asked for"), "{feedback}");
    let transcript = std::fs::read_to_string(run.join("transcript.jsonl")).unwrap();
    let exchanges: Vec<Value> = transcript
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let purposes: Vec<&str> = exchanges
        .iter()
        .map(|e| e["purpose"].as_str().unwrap())
        .collect();
    assert_eq!(purposes, ["generate", "repair", "critique", "critique"]);
    assert_eq!(
        exchanges[1]["messages"][1]["content"].as_str().unwrap(),
        repair
    );

    // The top-level STEP is the final code's solid: 40·20·10 − π·3²·10.
    let expected = 8000.0 - std::f64::consts::PI * 90.0;
    let volume = step_volume(&run.join("model.step"));
    assert!((volume - expected).abs() < 0.01, "{volume} vs {expected}");
}

#[test]
fn a_reply_without_code_gets_one_reminder() {
    let server = ScriptedLlm::start(vec![
        reply("Sure! A block with a hole is a classic part."),
        reply(&fenced(RIGHT)),
    ]);
    let dir = tempfile::tempdir().unwrap();
    let out = generate(dir.path(), &server, &["--max-refines", "0"]);
    assert_exit(&out, 0);
    let requests = server.requests();
    assert_eq!(requests.len(), 2);
    let messages = requests[1].messages();
    assert_eq!(messages.len(), 4, "{messages:?}");
    assert_eq!(messages[2]["role"], "assistant");
    assert!(requests[1].last_user().contains("no complete script"));
    let record = run_json(&dir.path().join("run"));
    assert_eq!(record["outcome"], "unverified");
    assert_eq!(record["attempts"].as_array().unwrap().len(), 1);
    assert_eq!(record["llm_calls"], 2);
}

#[test]
fn server_errors_are_retried_and_retry_after_is_honoured() {
    let server = ScriptedLlm::start(vec![
        status(500, "overloaded"),
        status(503, "{\"error\": {\"message\": \"try later\"}}"),
        reply(&fenced(RIGHT)),
        Scripted::Status {
            status: 429,
            headers: vec![("retry-after", "2".into())],
            body: "{\"error\": {\"message\": \"rate limited\", \"type\": \"rate_limit\"}}".into(),
        },
        reply("VERDICT: MATCH"),
    ]);
    let dir = tempfile::tempdir().unwrap();
    let out = generate(dir.path(), &server, &["--max-refines", "1"]);
    assert_exit(&out, 0);
    let requests = server.requests();
    assert_eq!(requests.len(), 5);
    // The first retry waits 0.5–1 s; Retry-After asked for 2.
    let waited = gap(&requests[3], &requests[4]);
    assert!(waited >= Duration::from_millis(1950), "{waited:?}");
    assert!(gap(&requests[0], &requests[1]) < Duration::from_millis(1500));

    let record = run_json(&dir.path().join("run"));
    assert_eq!(record["outcome"], "match");
    // Without a captioner the critique sees the geometry only, and says so.
    assert_eq!(record["critique_basis"], "geometry");
    assert!(requests[4].last_user().contains("No image captioner"));
    let transcript = std::fs::read_to_string(dir.path().join("run/transcript.jsonl")).unwrap();
    let retries: Vec<u64> = transcript
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["reply"]["retries"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(retries, [2, 1]);
}

#[test]
fn a_connection_dropped_mid_reply_and_a_cut_body_are_retried() {
    let server = ScriptedLlm::start(vec![
        Scripted::Dropped(fenced(RIGHT)),
        Scripted::CutJson(fenced(RIGHT)),
        reply(&fenced(RIGHT)),
    ]);
    let dir = tempfile::tempdir().unwrap();
    let out = generate(dir.path(), &server, &["--max-refines", "0"]);
    assert_exit(&out, 0);
    assert_eq!(server.requests().len(), 3);
    let record = run_json(&dir.path().join("run"));
    assert_eq!(record["outcome"], "unverified");
    let transcript = std::fs::read_to_string(dir.path().join("run/transcript.jsonl")).unwrap();
    let first: Value = serde_json::from_str(transcript.lines().next().unwrap()).unwrap();
    assert_eq!(first["reply"]["retries"], 2, "{first}");

    // Out of retries, a cut stream says it broke off, and a cut whole
    // reply what came back.
    for (flags, says) in [
        (&["--retries", "1"][..], "broke off its reply (2 tries)"),
        (&["--retries", "1", "--no-stream"][..], "cannot read"),
    ] {
        let server = ScriptedLlm::start(vec![
            Scripted::CutJson(fenced(RIGHT)),
            Scripted::CutJson(fenced(RIGHT)),
        ]);
        let dir = tempfile::tempdir().unwrap();
        let out = generate(dir.path(), &server, flags);
        assert_exit(&out, 2);
        let said = text(&out.stderr);
        assert!(said.contains(says), "{flags:?}: {said}");
        assert_eq!(server.requests().len(), 2);
        let streamed = server.requests().iter().all(|r| r.body["stream"] == true);
        assert_eq!(streamed, !flags.contains(&"--no-stream"), "{flags:?}");
    }
}

/// Runs `generate` through `server` and checks it stops with exit 2, its
/// message holding each of `words`.
fn stops_saying(server: &ScriptedLlm, words: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let out = generate(dir.path(), server, &["--max-refines", "0"]);
    assert_exit(&out, 2);
    let said = text(&out.stderr);
    for words in words {
        assert!(said.contains(words), "{words}: {said}");
    }
}

#[test]
fn the_servers_context_window_bounds_the_prompt_and_the_reply() {
    // A window the system prompt alone overflows: nothing is sent.
    let server = ScriptedLlm::start(vec![reply(&fenced(RIGHT))]).with_window(1024);
    stops_saying(
        &server,
        &[
            "context window of 1024 tokens",
            "GET /props",
            "--ctx-size",
            "about ",
        ],
    );
    assert!(server.requests().is_empty());

    // A window that fits: the reply's budget is what the prompt leaves.
    let server = ScriptedLlm::start(vec![reply(&fenced(RIGHT))]).with_window(6000);
    let dir = tempfile::tempdir().unwrap();
    let out = generate(
        dir.path(),
        &server,
        &["--max-refines", "0", "--max-tokens", "50000"],
    );
    assert_exit(&out, 0);
    let sent = &server.requests()[0].body;
    let budget = sent["max_tokens"].as_u64().unwrap();
    let prompt: usize = server.requests()[0]
        .messages()
        .iter()
        .map(|m| m["content"].as_str().unwrap().len())
        .sum();
    assert!(
        budget + (prompt / 4) as u64 <= 6000,
        "{budget} + {prompt} chars"
    );
    assert!(budget > 1000, "{budget}");
}

#[test]
fn ollamas_num_ctx_bounds_the_prompt_and_its_default_is_watched_for_cuts() {
    let server = ScriptedLlm::start(vec![reply(&fenced(RIGHT))])
        .like_ollama("num_ctx 1024\nstop \"<|im_end|>\"");
    stops_saying(
        &server,
        &[
            "Ollama's context window of 1024 tokens",
            "num_ctx",
            "OLLAMA_CONTEXT_LENGTH",
        ],
    );
    assert!(server.requests().is_empty());

    // No num_ctx: the server's own window is unknown; a cut prompt is caught.
    let server = ScriptedLlm::start(vec![Scripted::ReadOnly(fenced(RIGHT), 600)]).like_ollama("");
    stops_saying(
        &server,
        &["Ollama at", "read only 600 tokens", "OLLAMA_CONTEXT_LENGTH"],
    );
}

#[test]
fn a_prompt_the_server_cut_without_a_word_stops_the_run() {
    let server = ScriptedLlm::start(vec![Scripted::ReadOnly(fenced(RIGHT), 200)]);
    stops_saying(
        &server,
        &[
            "read only 200 tokens of a prompt of about",
            "without saying so",
        ],
    );
}

#[test]
fn a_reply_with_two_code_blocks_runs_the_last() {
    let first = "import Part\nraise RuntimeError('draft')\n";
    let server = ScriptedLlm::start(vec![reply(&format!(
        "A first try:\n{}\nBetter:\n{}\n",
        fenced(first),
        fenced(RIGHT)
    ))]);
    let dir = tempfile::tempdir().unwrap();
    let out = generate(dir.path(), &server, &["--max-refines", "0", "--json"]);
    assert_exit(&out, 0);
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["outcome"], "unverified");
    assert_eq!(summary["attempts"], 1);
    assert_eq!(summary["final_attempt"], 1);
    assert!(summary["tokens"]["total_tokens"].as_u64().unwrap() > 0);
    let record = run_json(&dir.path().join("run"));
    assert_eq!(record["attempts"][0]["code"], RIGHT);
}

#[test]
fn a_run_whose_every_attempt_fails_exits_1_and_keeps_them_all() {
    let server = ScriptedLlm::start(vec![
        reply(&fenced(BUGGY)),
        reply(&fenced("import Part\nresult = Part.makeBox(0, 1, 1)\n")),
        reply(&fenced("import Part\nresult = 42\n")),
    ]);
    let dir = tempfile::tempdir().unwrap();
    let out = generate(dir.path(), &server, &["--max-repairs", "2"]);
    assert_exit(&out, 1);
    let stdout = text(&out.stdout);
    assert!(
        stdout.starts_with("failed: run (3 attempts, 2 repairs"),
        "{stdout}"
    );
    assert!(
        stdout.contains("2 repairs did not make the first script work"),
        "{stdout}"
    );
    let record = run_json(&dir.path().join("run"));
    assert_eq!(record["outcome"], "failed");
    assert!(record["final"].is_null());
    let run = dir.path().join("run");
    for n in ["01", "02", "03"] {
        assert!(run.join(format!("attempts/{n}/code.py")).is_file());
        let result: Value = serde_json::from_slice(
            &std::fs::read(run.join(format!("attempts/{n}/result.json"))).unwrap(),
        )
        .unwrap();
        assert_eq!(result["outcome"], "error", "{n}");
    }
    assert!(!run.join("model.step").exists());
    assert!(!run.join("views").exists());
}

#[test]
fn an_unreachable_endpoint_exits_2_names_the_url_and_leaves_nothing() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}/v1");
    let dir = tempfile::tempdir().unwrap();
    let out = cadloop(
        dir.path(),
        &[
            "generate",
            PROMPT,
            "--base-url",
            &url,
            "--model",
            "m",
            "--retries",
            "1",
            "--out",
            "run",
        ],
    );
    assert_exit(&out, 2);
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(&format!("cannot reach the LLM endpoint {url} (2 tries)")),
        "{stderr}"
    );
    assert!(stderr.contains("--base-url"), "{stderr}");
    assert!(!dir.path().join("run").exists());
}

#[test]
fn no_endpoint_stops_at_once_with_both_ways_to_configure_one() {
    let dir = tempfile::tempdir().unwrap();
    let out = cadloop(dir.path(), &["generate", PROMPT]);
    assert_exit(&out, 2);
    let stderr = text(&out.stderr);
    assert!(stderr.contains("export OPENAI_API_KEY"), "{stderr}");
    assert!(
        stderr.contains("--base-url http://127.0.0.1:11434/v1 --model"),
        "{stderr}"
    );
    assert!(!dir.path().join("runs").exists());
}

#[test]
fn a_reply_that_is_not_a_chat_completion_is_an_error_not_a_crash() {
    let server = ScriptedLlm::start(vec![Scripted::Raw("<html>proxy login</html>".into())]);
    let dir = tempfile::tempdir().unwrap();
    let out = generate(dir.path(), &server, &[]);
    assert_exit(&out, 2);
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("sent a reply cadloop cannot read"),
        "{stderr}"
    );
    assert!(stderr.contains("proxy login"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn a_bad_prompt_or_folder_is_refused_before_any_request() {
    let server = ScriptedLlm::start(Vec::new());
    let dir = tempfile::tempdir().unwrap();
    let url = server.url();
    let base = ["--base-url", url.as_str(), "--model", "m"];
    let out = cadloop(dir.path(), &[&["generate", "   "][..], &base].concat());
    assert_exit(&out, 2);
    assert!(text(&out.stderr).contains("prompt (the PROMPT argument) is empty"));

    std::fs::create_dir(dir.path().join("taken")).unwrap();
    std::fs::write(dir.path().join("taken/notes.txt"), "mine").unwrap();
    let out = cadloop(
        dir.path(),
        &[&["generate", PROMPT, "--out", "taken"][..], &base].concat(),
    );
    assert_exit(&out, 2);
    assert!(text(&out.stderr).contains("already holds files"));
    assert_eq!(
        std::fs::read_to_string(dir.path().join("taken/notes.txt")).unwrap(),
        "mine"
    );
    assert!(server.requests().is_empty());
}

#[test]
fn a_spent_refine_budget_keeps_the_last_solid_and_says_it_still_differs() {
    let server = ScriptedLlm::start(vec![
        reply(&fenced(TOO_LONG)),
        reply(&format!(
            "VERDICT: MISMATCH\nToo long.\n{}",
            fenced(TOO_LONG)
        )),
        reply("VERDICT: MISMATCH\nStill 50 mm long."),
    ]);
    let dir = tempfile::tempdir().unwrap();
    let out = generate(dir.path(), &server, &["--max-refines", "1"]);
    assert_exit(&out, 0);
    let requests = server.requests();
    assert_eq!(requests.len(), 3);
    // The first critique may ask for a rewrite; the last one only for a verdict.
    assert!(requests[1].last_user().contains("give the whole corrected"));
    assert!(requests[2].last_user().contains("no new script is needed"));
    let record = run_json(&dir.path().join("run"));
    assert_eq!(record["outcome"], "mismatch");
    assert_eq!(record["final"]["attempt"], 2);
    assert!(record["stop_reason"]
        .as_str()
        .unwrap()
        .starts_with("refine budget spent (1 round)"));
    assert_eq!(record["attempts"][1]["critique"]["rewrite_used"], false);
    assert!(dir.path().join("run/model.step").is_file());
}

/// run.json without what may differ between two runs of the same exchanges:
/// times and where the replies came from.
fn comparable(mut record: Value) -> Value {
    fn strip(value: &mut Value) {
        match value {
            Value::Object(map) => {
                map.remove("timings");
                map.remove("total_ms");
                map.remove("settings");
                map.values_mut().for_each(strip);
            }
            Value::Array(items) => items.iter_mut().for_each(strip),
            _ => {}
        }
    }
    strip(&mut record);
    record
}

#[test]
fn a_recorded_run_replays_offline_to_the_same_record_and_model() {
    let server = ScriptedLlm::start(vec![
        reply(&fenced(BUGGY)),
        reply(&fenced(TOO_LONG)),
        reply(&format!("VERDICT: MISMATCH\nToo long.\n{}", fenced(RIGHT))),
        reply("VERDICT: MATCH"),
    ]);
    let dir = tempfile::tempdir().unwrap();
    let captioner = tiny_captioner();
    let captioner = captioner.to_str().unwrap();
    let out = generate(
        dir.path(),
        &server,
        &["--captioner", captioner, "--record", "exchanges.jsonl"],
    );
    assert_exit(&out, 0);
    let recorded = std::fs::read_to_string(dir.path().join("exchanges.jsonl")).unwrap();
    assert_eq!(recorded.lines().count(), 4);

    // No endpoint at all: every reply comes from the recording.
    let out = cadloop(
        dir.path(),
        &[
            "generate",
            PROMPT,
            "--replay",
            "exchanges.jsonl",
            "--captioner",
            captioner,
            "--out",
            "again",
        ],
    );
    assert_exit(&out, 0);
    assert_eq!(server.requests().len(), 4, "the replay sent nothing");
    let first = comparable(run_json(&dir.path().join("run")));
    let second: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("again/run.json")).unwrap()).unwrap();
    assert_eq!(first, comparable(second));
    let volume = |run: &str| step_volume(&dir.path().join(run).join("model.step"));
    assert_eq!(volume("run"), volume("again"));

    // A request the recording does not hold is named.
    let out = cadloop(
        dir.path(),
        &[
            "generate",
            "a sphere of 10 mm",
            "--replay",
            "exchanges.jsonl",
            "--out",
            "other",
        ],
    );
    assert_exit(&out, 2);
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("no recorded reply for the request that begins"),
        "{stderr}"
    );
    assert!(stderr.contains("a sphere of 10 mm"), "{stderr}");
}

/// A script written as a GUI macro builds; the critique hears which of its
/// lines did nothing, so the rewrite can leave them out.
#[test]
fn gui_lines_of_a_generated_script_reach_the_critique_by_line() {
    let macro_style = format!(
        "import FreeCADGui as Gui\n{RIGHT}Gui.SendMsgToActiveView(\"ViewFit\")\n\
         App.ActiveDocument.saveAs(\"/tmp/bracket.FCStd\")\n"
    );
    let server = ScriptedLlm::start(vec![
        reply(&fenced(&macro_style)),
        reply("VERDICT: MATCH\nSize and hole agree."),
    ]);
    let dir = tempfile::tempdir().unwrap();
    let out = generate(dir.path(), &server, &[]);
    assert_exit(&out, 0);
    let requests = server.requests();
    let critique = requests[1].last_user();
    assert!(
        critique.contains("lines that did nothing here"),
        "{critique}"
    );
    assert!(
        critique.contains("line 8 `Gui.SendMsgToActiveView()`"),
        "{critique}"
    );
    assert!(
        critique.contains("line 9 `cadloop_job.saveAs('/tmp/bracket.FCStd')`"),
        "{critique}"
    );
    let record = run_json(&dir.path().join("run"));
    let ignored = record["attempts"][0]["result"]["ignored"]
        .as_array()
        .unwrap();
    assert_eq!(ignored.len(), 2, "{ignored:?}");
}
