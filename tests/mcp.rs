//! `cadloop mcp` through a real client: the official Python SDK (`mcp`,
//! installed into .venv by scripts/dev setup) talks to the real binary over
//! stdio or streamable HTTP and calls its tools and reads its resources
//! (tests/mcp/client.py); the loop's LLM is the scripted server.

mod common;

use std::io::BufRead;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::http::request;
use common::llm_server::{Scripted, ScriptedLlm};
use common::parts::{fenced, part_writer, PROMPT, RIGHT};
use common::{run_json, text};
use serde_json::{json, Value};

/// How client.py starts `cadloop -q mcp --runs RUNS EXTRA…` over stdio.
fn stdio(runs: &Path, extra: &[&str]) -> Value {
    let mut command = vec![
        env!("CARGO_BIN_EXE_cadloop").to_string(),
        "-q".into(),
        "mcp".into(),
        "--runs".into(),
        runs.display().to_string(),
    ];
    command.extend(extra.iter().map(|a| a.to_string()));
    json!({ "command": command })
}

/// What client.py saw, connected as `connect` says, taking `steps`: the
/// tools, and each step's result.
fn session(connect: Value, steps: Value) -> Value {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let scratch = tempfile::tempdir().unwrap();
    let steps_file = scratch.path().join("steps.json");
    std::fs::write(&steps_file, steps.to_string()).unwrap();
    let out = Command::new(root.join(".venv/bin/python"))
        .arg(root.join("tests/mcp/client.py"))
        .arg(connect.to_string())
        .arg(format!("@{}", steps_file.display()))
        .current_dir(scratch.path())
        .env_remove("CADLOOP_CONFIG")
        .env_remove("OPENAI_API_KEY")
        .env_remove("OPENAI_BASE_URL")
        .output()
        .expect("the venv's python runs (scripts/dev setup installs the mcp package)");
    assert!(
        out.status.success(),
        "the MCP client failed:\n{}",
        text(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out.stdout)))
}

const BLOCK: &str = "import FreeCAD as App\nimport Part\n\nWIDTH = 40  # block length, mm\nHOLE_D = 6  # hole diameter, mm\n\nblock = Part.makeBox(WIDTH, 20, 10)\nhole = Part.makeCylinder(HOLE_D / 2, 10, App.Vector(WIDTH / 2, 10, 0))\nresult = block.cut(hole)\n";

/// The URIs of a `{"resources": true}` step's answer.
fn listed_uris(listed: &Value) -> Vec<&str> {
    listed["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["uri"].as_str().unwrap())
        .collect()
}

fn is_png(image: &Value) {
    assert_eq!(image["mime"], "image/png", "{image}");
    assert_eq!(image["head"], "89504e470d0a1a0a", "{image}");
}

#[test]
fn an_agent_builds_tweaks_and_looks_at_a_part_over_stdio() {
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path().join("runs");
    let seen = session(
        stdio(&runs, &[]),
        json!([
            ["build", {"code": BLOCK, "description": "a block with a hole",
                       "checks": "CHECKS = [bbox(40, 20, 10), holes(6, count=1, through=True), holes(5)]"}],
            ["tweak", {"run": "a-block-with-a-hole", "values": {"WIDTH": 50, "HOLE_D": "8"}}],
            ["views", {"run": "a-block-with-a-hole", "names": ["top", "iso"]}],
            ["runs", {}],
            ["check", {"run": "a-block-with-a-hole",
                       "checks": "CHECKS = [bbox(50, 20, 10), holes(8, count=1, through=True), volume(1000)]"}],
            ["check", {"run": "a-block-with-a-hole", "checks": "CHECKS = [boxes(3)]"}],
            ["tweak", {"run": "a-block-with-a-hole", "values": {"DEPTH": 3}}],
            ["views", {"run": "no-such-run"}],
            ["views", {"run": "../.."}],
            {"resources": true},
            {"read": "cadloop://guide"},
            {"read": "cadloop://runs/a-block-with-a-hole/model.step"},
            {"read": "cadloop://runs/a-block-with-a-hole/model.glb"},
            {"read": "cadloop://runs/a-block-with-a-hole/run.json"},
            {"read": "cadloop://runs/a-block-with-a-hole/../../secret"},
            {"read": "cadloop://runs/../model.step"},
            {"read": "cadloop://runs/no-such-run/model.step"},
        ]),
    );
    assert_eq!(seen["server"], "cadloop");
    let tools = &seen["tools"];
    for name in [
        "build", "tweak", "views", "check", "generate", "refine", "runs",
    ] {
        assert!(
            tools[name]["description"]
                .as_str()
                .is_some_and(|d| d.len() > 40),
            "{name}: {tools}"
        );
    }
    assert_eq!(tools["build"]["input"]["required"], json!(["code"]));
    assert!(tools["build"]["input"]["properties"]["code"]["description"]
        .as_str()
        .unwrap()
        .contains("result"));

    let calls = seen["calls"].as_array().unwrap();
    // build: the facts of a 40 × 20 × 10 block less a 6 mm hole, its
    // parameters, a summary and the contact sheet.
    let built = &calls[0];
    assert_eq!(built["error"], false, "{built}");
    let facts = &built["structured"]["facts"];
    assert_eq!(facts["size"], json!([40.0, 20.0, 10.0]), "{facts}");
    let volume = facts["volume"].as_f64().unwrap();
    let expected = 8000.0 - std::f64::consts::PI * 9.0 * 10.0;
    assert!((volume - expected).abs() < 1.0, "{volume} vs {expected}");
    assert_eq!(facts["face_types"]["Cylinder"], 1, "{facts}");
    assert_eq!(facts["valid"], true);
    let names: Vec<&str> = built["structured"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["WIDTH", "HOLE_D"]);
    assert!(built["texts"][0]
        .as_str()
        .unwrap()
        .contains("40.00 × 20.00 × 10.00"));
    assert_eq!(built["images"].as_array().unwrap().len(), 1);
    is_png(&built["images"][0]);
    // The checks given with the code ran on it: the size and the 6 mm hole
    // pass, a 5 mm hole is not there; the text names the failure.
    let checks = &built["structured"]["checks"];
    assert_eq!(
        (&checks["passed"], &checks["total"]),
        (&json!(2), &json!(3)),
        "{checks}"
    );
    assert_eq!(checks["results"][2]["status"], "fail", "{checks}");
    let said = built["texts"][0].as_str().unwrap();
    assert!(
        said.contains("checks: 2/3 passed") && said.contains("holes(5)"),
        "{said}"
    );
    // The run is a run folder as the studio and the report read it.
    let folder = runs.join("a-block-with-a-hole");
    for file in ["run.json", "report.html", "attempts/01/model.step"] {
        assert!(folder.join(file).is_file(), "{file}");
    }

    // tweak: the new values, numbers or their text, rebuild it.
    let tweaked = &calls[1];
    assert_eq!(tweaked["error"], false, "{tweaked}");
    assert_eq!(
        tweaked["structured"]["facts"]["size"],
        json!([50.0, 20.0, 10.0])
    );
    let volume = tweaked["structured"]["facts"]["volume"].as_f64().unwrap();
    let expected = 10_000.0 - std::f64::consts::PI * 16.0 * 10.0;
    assert!((volume - expected).abs() < 1.0, "{volume} vs {expected}");
    assert_eq!(tweaked["structured"]["attempt"], 2);
    // The build's checks run again on the new values: now the size and the
    // 6 mm hole fail.
    assert_eq!(tweaked["structured"]["checks"]["passed"], 0, "{tweaked}");

    // views: the ones asked for, of the tweaked part.
    let views = &calls[2];
    assert_eq!(
        views["texts"],
        json!(["top view of attempt 2", "iso view of attempt 2"])
    );
    for image in views["images"].as_array().unwrap() {
        is_png(image);
    }

    // runs: the run, with its outcome.
    let listed = &calls[3]["structured"]["runs"];
    assert_eq!(listed[0]["run"], "a-block-with-a-hole", "{listed}");
    assert_eq!(listed[0]["prompt"], "a block with a hole");
    assert_eq!(listed[0]["attempts"], 2, "{listed}");

    // check: the tweaked part's size and hole pass, a wrong volume fails,
    // and the run is not changed.
    let checked = &calls[4]["structured"];
    assert_eq!(
        (&checked["passed"], &checked["total"]),
        (&json!(2), &json!(3)),
        "{checked}"
    );
    let statuses: Vec<&str> = checked["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["pass", "pass", "fail"], "{checked}");
    assert!(calls[4]["texts"][0]
        .as_str()
        .unwrap()
        .starts_with("checks: 2/3"));
    let unknown_check = &calls[5];
    assert_eq!(unknown_check["error"], true);
    assert!(
        unknown_check["texts"][0]
            .as_str()
            .unwrap()
            .contains("boxes"),
        "{unknown_check}"
    );

    // Refusals are tool errors that say what to do; nothing changed.
    let unknown = &calls[6];
    assert_eq!(unknown["error"], true);
    assert!(
        unknown["texts"][0].as_str().unwrap().contains("DEPTH"),
        "{unknown}"
    );
    for refused in &calls[7..9] {
        assert_eq!(refused["error"], true, "{refused}");
        assert!(
            refused["texts"][0]
                .as_str()
                .unwrap()
                .contains("`runs` lists them"),
            "{refused}"
        );
    }
    let record: Value =
        serde_json::from_slice(&std::fs::read(folder.join("run.json")).unwrap()).unwrap();
    assert_eq!(record["attempts"].as_array().unwrap().len(), 2);

    // Resources: the guide, and the run's files, each with its type.
    let listed = &calls[9];
    let uris = listed_uris(listed);
    for uri in [
        "cadloop://guide",
        "cadloop://runs/a-block-with-a-hole/model.step",
        "cadloop://runs/a-block-with-a-hole/model.FCStd",
        "cadloop://runs/a-block-with-a-hole/report.html",
    ] {
        assert!(uris.contains(&uri), "{uri}: {listed}");
    }
    assert_eq!(listed["templates"], json!(["cadloop://runs/{run}/{file}"]));
    // The guide is the loop's rules told for the tools: how to call build,
    // the cheat sheet, the check library; not the loop's reply layout.
    let guide = calls[10]["contents"][0]["text"].as_str().unwrap();
    for words in [
        "`build`",
        "Part.makeCylinder",
        "holes(diameter",
        "LENGTH = 40",
    ] {
        assert!(guide.contains(words), "{words}: {guide}");
    }
    assert!(!guide.contains("Reply with"), "{guide}");
    let step = &calls[11]["contents"][0];
    assert_eq!(step["mime"], "model/step", "{step}");
    assert!(step["text"].as_str().unwrap().starts_with("ISO-10303-21"));
    let glb = &calls[12]["contents"][0];
    assert_eq!(
        glb["blob_head"].as_str().unwrap()[..8],
        *"676c5446",
        "{glb}"
    );
    assert_eq!(
        glb["blob_bytes"].as_u64().unwrap(),
        std::fs::metadata(folder.join("model.glb")).unwrap().len()
    );
    let record_read: Value =
        serde_json::from_str(calls[13]["contents"][0]["text"].as_str().unwrap()).unwrap();
    assert_eq!(record_read["attempts"].as_array().unwrap().len(), 2);
    // Nothing outside a run's listed files can be read.
    for refused in &calls[14..17] {
        assert!(refused["raised"].is_string(), "{refused}");
        assert!(refused.get("contents").is_none(), "{refused}");
    }
}

#[test]
fn broken_code_names_its_line_and_an_escape_stays_in_the_sandbox() {
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path().join("runs");
    let outside = dir.path().join("escaped.txt");
    let escape = format!(
        "import Part\nopen({:?}, 'w').write('out')\nresult = Part.makeBox(1, 1, 1)\n",
        outside.to_str().unwrap()
    );
    let seen = session(
        stdio(&runs, &[]),
        json!([
            ["build", {"code": "import Part\n\nresult = Part.makeBox(10, 10\n"}],
            ["build", {"code": "import Part\nresult = Part.makeBox(10, 10, 10).cut(missing)\n"}],
            ["build", {"code": escape, "description": "escape"}],
            ["build", {"code": "   "}],
            ["generate", {"prompt": "a 20 mm cube"}],
            ["refine", {"run": "escape", "change": "make it 2 mm"}],
        ]),
    );
    let calls = seen["calls"].as_array().unwrap();
    let syntax = &calls[0];
    assert_eq!(syntax["error"], true);
    assert_eq!(syntax["structured"]["error"]["kind"], "syntax", "{syntax}");
    assert_eq!(syntax["structured"]["error"]["line"], 3, "{syntax}");
    assert!(syntax["texts"][0].as_str().unwrap().contains("at line 3"));
    // With what to do about it.
    let hint = syntax["structured"]["error"]["hint"].as_str().unwrap();
    assert!(hint.contains("syntax"), "{hint}");
    assert!(syntax["texts"][0]
        .as_str()
        .unwrap()
        .contains(&format!("hint: {hint}")));
    let name = &calls[1]["structured"]["error"];
    assert_eq!(name["line"], 2, "{name}");
    assert!(
        name["message"].as_str().unwrap().contains("missing"),
        "{name}"
    );
    // The write outside the job folder fails in the worker: the file is
    // not there, and the reply says only that the code failed.
    let escaped = &calls[2];
    assert_eq!(escaped["error"], true, "{escaped}");
    assert_eq!(escaped["structured"]["error"]["line"], 2, "{escaped}");
    assert!(!outside.exists());
    let empty = &calls[3];
    assert_eq!(empty["error"], true);
    assert!(empty["texts"][0].as_str().unwrap().contains("empty"));
    // Without an LLM endpoint the loop's tools say how to configure one,
    // and that the rest needs none.
    for needs_llm in &calls[4..6] {
        assert_eq!(needs_llm["error"], true, "{needs_llm}");
        let said = needs_llm["texts"][0].as_str().unwrap();
        assert!(
            said.contains("--base-url") && said.contains("call build"),
            "{said}"
        );
    }
}

#[test]
fn generate_and_refine_run_the_loop_with_progress_and_a_cancel_stops_it() {
    let server = part_writer(RIGHT, RIGHT.replace("makeCylinder(3,", "makeCylinder(4,"));
    let url = server.url();
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path().join("runs");
    let id = cadloop::run::slug(PROMPT);
    let seen = session(
        stdio(&runs, &["--base-url", &url, "--model", "m"]),
        json!([
            ["generate", {"prompt": PROMPT, "max_refines": 1}],
            ["refine", {"run": id, "change": "make the hole 8 mm"}],
            ["generate", {"prompt": PROMPT, "max_repairs": 99}],
        ]),
    );
    let calls = seen["calls"].as_array().unwrap();
    let made = &calls[0];
    assert_eq!(made["error"], false, "{made}");
    let result = &made["structured"];
    assert_eq!(result["run"], id.as_str());
    assert_eq!(result["outcome"], "match", "{result}");
    assert_eq!(result["code"], RIGHT);
    assert_eq!(result["checks"]["passed"], 2, "{result}");
    assert!(made["texts"][0].as_str().unwrap().contains("```python"));
    is_png(&made["images"][0]);
    // Progress came while it ran: the loop's stages, in order, counted up.
    let progress = made["progress"].as_array().unwrap();
    assert!(
        progress
            .iter()
            .any(|p| p["message"].as_str().unwrap().contains("asking the LLM")),
        "{progress:?}"
    );
    let counts: Vec<f64> = progress
        .iter()
        .map(|p| p["progress"].as_f64().unwrap())
        .collect();
    assert!(counts.windows(2).all(|w| w[1] > w[0]), "{counts:?}");

    // The change in words rebuilt it with the 8 mm hole.
    let changed = &calls[1]["structured"];
    assert_eq!(calls[1]["error"], false, "{}", calls[1]);
    let volume = changed["facts"]["volume"].as_f64().unwrap();
    let expected = 8000.0 - std::f64::consts::PI * 16.0 * 10.0;
    assert!((volume - expected).abs() < 1.0, "{volume} vs {expected}");
    assert!(changed["code"]
        .as_str()
        .unwrap()
        .contains("makeCylinder(4,"));
    let record = run_json(&runs.join(&id));
    assert_eq!(record["requests"][1]["text"], "make the hole 8 mm");
    assert!(
        calls[2]["texts"][0]
            .as_str()
            .unwrap()
            .contains("max_repairs 99"),
        "{}",
        calls[2]
    );

    // A slow endpoint: the client gives up after two seconds and cancels;
    // the run stops as the studio's stop button stops it, and the server
    // goes on serving.
    let slow = ScriptedLlm::responding(Duration::from_secs(60), |_| Scripted::Reply(fenced(RIGHT)));
    let slow_url = slow.url();
    let runs = dir.path().join("slow");
    let seen = session(
        stdio(&runs, &["--base-url", &slow_url, "--model", "m"]),
        json!([
            {"tool": "generate", "arguments": {"prompt": "a slow cube"}, "cancel_after": 2},
            {"wait_for": runs.join("a-slow-cube/run.json"), "contains": "stopped on request"},
            ["runs", {}],
        ]),
    );
    let calls = seen["calls"].as_array().unwrap();
    assert!(calls[0]["raised"].is_string(), "{}", calls[0]);
    assert_eq!(
        calls[1]["found"], true,
        "the run was not stopped: {}",
        calls[1]
    );
    let listed = &calls[2]["structured"]["runs"][0];
    assert_eq!(listed["run"], "a-slow-cube", "{listed}");
    let record = run_json(&runs.join("a-slow-cube"));
    assert_eq!(record["status"], "stopped", "{record}");
    assert_eq!(slow.requests().len(), 1);
}

/// `cadloop mcp --http ADDR` running, and the URL it printed.
struct Http {
    child: Child,
    url: String,
    /// Kept open: the server prints more after the URL.
    _stdout: std::io::BufReader<std::process::ChildStdout>,
}

impl Http {
    fn start(runs: &Path, addr: &str, extra: &[&str]) -> Http {
        let mut child = Command::new(env!("CARGO_BIN_EXE_cadloop"))
            .args(["-q", "mcp", "--runs"])
            .arg(runs)
            .args(["--http", addr])
            .args(extra)
            .env_remove("CADLOOP_CONFIG")
            .env_remove("OPENAI_API_KEY")
            .env_remove("OPENAI_BASE_URL")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
        stdout.read_line(&mut line).unwrap();
        let url = line
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .unwrap_or_else(|| panic!("no URL printed: {line:?}"))
            .to_string();
        Http {
            child,
            url,
            _stdout: stdout,
        }
    }

    /// `host:port` of the URL.
    fn addr(&self) -> String {
        self.url["http://".len()..]
            .split('/')
            .next()
            .unwrap()
            .to_string()
    }
}

impl Drop for Http {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An MCP `initialize` request, as a client posts it.
const INITIALIZE: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#;

#[test]
fn over_http_the_tools_work_behind_the_studios_guard() {
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path().join("runs");
    // An endpoint that writes the part for "a cube", and answers "a slow
    // cube" only after a minute.
    let llm = ScriptedLlm::responding(Duration::ZERO, |seen| {
        if seen.last_user().contains("a slow cube") {
            std::thread::sleep(Duration::from_secs(60));
        }
        Scripted::Reply(fenced(RIGHT))
    });
    let llm_url = llm.url();
    let server = Http::start(
        &runs,
        "127.0.0.1:0",
        &["--base-url", &llm_url, "--model", "m", "--max-refines", "0"],
    );
    assert!(server.url.ends_with("/mcp"), "{}", server.url);
    let seen = session(
        json!({"url": server.url}),
        json!([
            ["build", {"code": BLOCK, "description": "over http"}],
            ["views", {"run": "over-http", "names": ["front"]}],
            {"read": "cadloop://runs/over-http/model.step"},
            ["generate", {"prompt": "a cube"}],
            {"tool": "generate", "arguments": {"prompt": "a slow cube"}, "cancel_after": 2},
            {"wait_for": runs.join("a-slow-cube/run.json"), "contains": "stopped on request"},
        ]),
    );
    let calls = seen["calls"].as_array().unwrap();
    assert_eq!(
        calls[0]["structured"]["facts"]["size"],
        json!([40.0, 20.0, 10.0])
    );
    is_png(&calls[1]["images"][0]);
    assert!(calls[2]["contents"][0]["text"]
        .as_str()
        .unwrap()
        .starts_with("ISO-10303-21"));
    let generated = &calls[3];
    assert_eq!(generated["error"], false, "{generated}");
    assert_eq!(generated["structured"]["code"], RIGHT);
    assert!(
        !generated["progress"].as_array().unwrap().is_empty(),
        "{generated}"
    );
    assert!(calls[4]["raised"].is_string(), "{}", calls[4]);
    assert_eq!(
        calls[5]["found"], true,
        "the run was not stopped: {}",
        calls[5]
    );

    // Another Host (DNS rebinding) or a web page's Origin, even on a read, is refused.
    let addr = server.addr();
    let json_post = [
        ("Content-Type", "application/json"),
        ("Accept", "application/json, text/event-stream"),
    ];
    let refused = |headers: &[(&str, &str)], method: &str| {
        let mut all: Vec<(&str, &str)> = headers.to_vec();
        all.extend_from_slice(&json_post);
        request(&addr, method, "/mcp", &all, INITIALIZE.as_bytes())
    };
    let port = addr.rsplit(':').next().unwrap();
    let evil_host = format!("evil.example:{port}");
    let reply = refused(&[("Host", &evil_host)], "POST");
    assert_eq!(reply.status, 403, "{}", reply.text());
    for method in ["POST", "GET"] {
        let reply = refused(
            &[("Host", &addr), ("Origin", "http://evil.example")],
            method,
        );
        assert_eq!(reply.status, 403, "{method}: {}", reply.text());
    }
    // The server's own origin is let through.
    let own = format!("http://{addr}");
    let reply = refused(&[("Host", &addr), ("Origin", &own)], "POST");
    assert_eq!(reply.status, 200, "{}", reply.text());
    drop(server);

    // On a non-loopback address nothing passes without the printed token;
    // a client sends it as a bearer token.
    let remote = Http::start(&runs, "0.0.0.0:0", &[]);
    let token = remote
        .url
        .split("token=")
        .nth(1)
        .expect("the URL carries a token")
        .to_string();
    let port = remote.addr().rsplit(':').next().unwrap().to_string();
    let local = format!("localhost:{port}");
    let reply = request(
        &local,
        "POST",
        "/mcp",
        &[&[("Host", local.as_str())][..], &json_post].concat(),
        INITIALIZE.as_bytes(),
    );
    assert_eq!(reply.status, 401, "{}", reply.text());
    assert!(
        reply.text().contains("Authorization: Bearer"),
        "{}",
        reply.text()
    );
    let seen = session(
        json!({"url": format!("http://{local}/mcp"), "headers": {"Authorization": format!("Bearer {token}")}}),
        json!([["runs", {}]]),
    );
    let listed: Vec<&str> = seen["calls"][0]["structured"]["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["run"].as_str().unwrap())
        .collect();
    assert!(listed.contains(&"over-http"), "{listed:?}");
}

#[test]
fn resources_come_in_pages_that_list_every_run_once() {
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path().join("runs");
    let seen = session(
        stdio(&runs, &[]),
        json!([["build", {"code": BLOCK, "description": "a block"}]]),
    );
    let built = &seen["calls"][0];
    assert_eq!(built["error"], false, "{built}");
    let id = built["structured"]["run"].as_str().unwrap().to_string();
    // A runs folder used for a while: 64 more runs, copies of the first.
    for n in 0..64 {
        let copied = Command::new("cp")
            .arg("-r")
            .arg(runs.join(&id))
            .arg(runs.join(format!("copy-{n}")))
            .status()
            .unwrap();
        assert!(copied.success());
    }
    // The first page's cursor names the 50th run by id; a run made before
    // the second page is asked for (its id sorts first) changes nothing there.
    let mut ids: Vec<String> = std::fs::read_dir(&runs)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    ids.sort();
    let second_page = format!("after:{}", ids[49]);
    let seen = session(
        stdio(&runs, &[]),
        json!([
            {"resources": true},
            ["build", {"code": BLOCK, "description": "a 0 new block"}],
            {"resources_from": second_page},
            {"resources_from": "50"},
            {"resources_from": "a cursor from elsewhere"},
        ]),
    );
    let calls = seen["calls"].as_array().unwrap();
    let listed = &calls[0];
    let uris = listed_uris(listed);
    // Fifty runs a page, by id: two pages for 65; the guide on the first.
    let pages = listed["pages"].as_array().unwrap();
    assert_eq!(pages.len(), 2, "{pages:?}");
    assert_eq!(uris[0], "cadloop://guide");
    let files_per_run = (uris.len() - 1) / 65;
    assert!(files_per_run >= 6, "{files_per_run}: {uris:?}");
    assert_eq!(pages[0], 1 + 50 * files_per_run);
    assert_eq!(pages[1], 15 * files_per_run);
    // Each run's record exactly once, no URI twice.
    let records: Vec<&&str> = uris.iter().filter(|u| u.ends_with("/run.json")).collect();
    assert_eq!(records.len(), 65);
    let mut unique = uris.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), uris.len());
    let later = &calls[2];
    let later_uris: Vec<&str> = later["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u.as_str().unwrap())
        .collect();
    assert_eq!(later_uris, uris[1 + 50 * files_per_run..], "{later}");
    assert!(later["next"].is_null(), "{later}");
    for bad in &calls[3..5] {
        let raised = bad["raised"].as_str().unwrap_or_else(|| panic!("{bad}"));
        assert!(
            raised.contains("is not a cursor of resources/list"),
            "{raised}"
        );
    }
}

#[test]
fn hostile_arguments_are_refused_or_kept_inside_the_runs_folder() {
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path().join("runs");
    let llm = ScriptedLlm::start(Vec::new());
    let url = llm.url();
    let big = "a 20 mm cube. ".repeat(75_000);
    let seen = session(
        stdio(&runs, &["--base-url", &url, "--model", "m"]),
        json!([
            ["generate", {"prompt": big}],
            ["generate", {"prompt": "  \n\t "}],
            ["build", {"code": BLOCK, "description": "../../escaped\u{0}/..\\x"}],
            ["tweak", {"run": "../runs", "values": {"WIDTH": 1}}],
            ["tweak", {"run": "a/b", "values": {"WIDTH": 1}}],
            ["tweak", {"run": "", "values": {"WIDTH": 1}}],
            ["tweak", {"run": "x\u{0}y", "values": {"WIDTH": 1}}],
            ["views", {"run": "escaped-x", "names": ["../../etc/passwd"]}],
            ["check", {"run": "escaped-x", "checks": "CHECKS = [__import__('os')]"}],
            {"read": "cadloop://runs/%2e%2e/run.json"},
            {"read": "cadloop://runs/escaped-x/../../../etc/passwd"},
        ]),
    );
    let calls = seen["calls"].as_array().unwrap();
    let said = |i: usize| calls[i]["texts"][0].as_str().unwrap_or("").to_string();
    assert_eq!(calls[0]["error"], true);
    assert!(
        said(0).contains("longer than 20000 characters"),
        "{}",
        said(0)
    );
    assert!(said(1).contains("empty"), "{}", said(1));
    assert!(llm.requests().is_empty(), "nothing reached the LLM");
    // The description names a folder inside the runs folder, and nothing else.
    let built = &calls[2];
    assert_eq!(built["error"], false, "{built}");
    let id = built["structured"]["run"].as_str().unwrap();
    assert!(runs.join(id).join("run.json").is_file(), "{id}");
    assert!(
        !id.contains(['/', '\\', '\0']) && !id.starts_with('.'),
        "{id}"
    );
    assert!(!dir.path().join("escaped").exists());
    for refused in &calls[3..7] {
        assert_eq!(refused["error"], true, "{refused}");
        let text = refused["texts"][0].as_str().unwrap();
        assert!(text.contains("`runs` lists them"), "{text}");
    }
    assert!(said(7).contains("there is no view"), "{}", said(7));
    assert_eq!(calls[8]["error"], true, "{}", calls[8]);
    for read in &calls[9..11] {
        assert!(read["raised"].is_string(), "{read}");
    }
    // Only the one run was made.
    let made: Vec<_> = std::fs::read_dir(&runs).unwrap().collect();
    assert_eq!(made.len(), 1, "{made:?}");
}

#[test]
fn an_agent_building_parts_is_told_each_part_and_where_two_overlap() {
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path().join("runs");
    let hinge = include_str!("../freecad-scripts/examples/hinge.py")
        .replace("CLEARANCE = 0.2  #", "CLEARANCE = -0.1  #");
    let seen = session(
        stdio(&runs, &[]),
        json!([
            ["build", {"code": hinge, "description": "a hinge",
                       "checks": "CHECKS = [clearance('pin', 'leaf a', 0.15), bbox(4, 40, 4, part='pin')]"}],
            ["tweak", {"run": "a-hinge", "values": {"CLEARANCE": 0.2}}],
            {"resources": true},
            {"read": "cadloop://runs/a-hinge/parts/pin.stl"},
            {"read": "cadloop://runs/a-hinge/parts/../run.json"},
            {"read": "cadloop://runs/a-hinge/parts/handle.stl"},
        ]),
    );
    let calls = seen["calls"].as_array().unwrap();
    let built = &calls[0]["structured"];
    let names: Vec<&str> = built["facts"]["parts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["leaf a", "leaf b", "pin"], "{built}");
    assert_eq!(built["facts"]["parts"][2]["size"], json!([4.0, 40.0, 4.0]));
    let overlapping = built["facts"]["pairs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["overlap"].as_f64().unwrap() > 0.0)
        .count();
    assert_eq!(overlapping, 2, "{built}");
    assert_eq!(built["checks"]["passed"], 1, "{built}");
    let said = calls[0]["texts"][0].as_str().unwrap();
    assert!(
        said.contains("part \"pin\" #d9a621: 4.00 × 40.00 × 4.00 mm"),
        "{said}"
    );
    assert!(
        said.contains("noticed: interference: parts 'leaf a' and 'pin' overlap"),
        "{said}"
    );
    // The clearance given back: no overlap, the check passes.
    let tweaked = &calls[1]["structured"];
    assert_eq!(tweaked["checks"]["passed"], 2, "{tweaked}");
    assert!(tweaked["notes"].is_null(), "{tweaked}");
    // Each part's STL is a resource.
    let uris = listed_uris(&calls[2]);
    for part in ["leaf-a", "leaf-b", "pin"] {
        let uri = format!("cadloop://runs/a-hinge/parts/{part}.stl");
        assert!(uris.contains(&uri.as_str()), "{uri}: {uris:?}");
    }
    let pin = &calls[3]["contents"][0];
    assert_eq!(
        pin["blob_bytes"].as_u64().unwrap(),
        std::fs::metadata(runs.join("a-hinge/parts/pin.stl"))
            .unwrap()
            .len(),
        "{pin}"
    );
    for refused in &calls[4..6] {
        assert!(refused["raised"].is_string(), "{refused}");
    }
}
