//! `cadloop mcp` through a real client: the official Python SDK (`mcp`,
//! installed into .venv by scripts/dev setup) starts the real binary over
//! stdio and calls its tools (tests/mcp/client.py).

mod common;

use std::path::Path;
use std::process::Command;

use common::text;
use serde_json::{json, Value};

/// What client.py saw: the tools, and each call's result.
fn session(runs: &Path, calls: Value) -> Value {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new(root.join(".venv/bin/python"))
        .arg(root.join("tests/mcp/client.py"))
        .arg(env!("CARGO_BIN_EXE_cadloop"))
        .arg(runs)
        .arg(calls.to_string())
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

fn is_png(image: &Value) {
    assert_eq!(image["mime"], "image/png", "{image}");
    assert_eq!(image["head"], "89504e470d0a1a0a", "{image}");
}

#[test]
fn an_agent_builds_tweaks_and_looks_at_a_part_over_stdio() {
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path().join("runs");
    let seen = session(
        &runs,
        json!([
            ["build", {"code": BLOCK, "description": "a block with a hole"}],
            ["tweak", {"run": "a-block-with-a-hole", "values": {"WIDTH": 50, "HOLE_D": "8"}}],
            ["views", {"run": "a-block-with-a-hole", "names": ["top", "iso"]}],
            ["runs", {}],
            ["check", {"run": "a-block-with-a-hole",
                       "checks": "CHECKS = [bbox(50, 20, 10), holes(8, count=1, through=True), volume(1000)]"}],
            ["check", {"run": "a-block-with-a-hole", "checks": "CHECKS = [boxes(3)]"}],
            ["tweak", {"run": "a-block-with-a-hole", "values": {"DEPTH": 3}}],
            ["views", {"run": "no-such-run"}],
            ["views", {"run": "../.."}],
        ]),
    );
    assert_eq!(seen["server"], "cadloop");
    let tools = &seen["tools"];
    for name in ["build", "tweak", "views", "check", "runs"] {
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
    for refused in &calls[7..] {
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
        &runs,
        json!([
            ["build", {"code": "import Part\n\nresult = Part.makeBox(10, 10\n"}],
            ["build", {"code": "import Part\nresult = Part.makeBox(10, 10, 10).cut(missing)\n"}],
            ["build", {"code": escape, "description": "escape"}],
            ["build", {"code": "   "}],
        ]),
    );
    let calls = seen["calls"].as_array().unwrap();
    let syntax = &calls[0];
    assert_eq!(syntax["error"], true);
    assert_eq!(syntax["structured"]["error"]["kind"], "syntax", "{syntax}");
    assert_eq!(syntax["structured"]["error"]["line"], 3, "{syntax}");
    assert!(syntax["texts"][0].as_str().unwrap().contains("at line 3"));
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
}
