//! `cadloop tweak`: new parameter values rebuilt without the LLM, end to end
//! (the real binary, real FreeCAD; the run made by `generate` against a
//! scripted OpenAI-compatible server, the tweaks with no endpoint at all).

mod common;

use std::f64::consts::PI;
use std::path::Path;

use common::llm_server::{reply, ScriptedLlm};
use common::parts::{fenced, generate_with, step_volume, tiny_captioner};
use common::{assert_exit, cadloop, text};
use serde_json::Value;

const PROMPT: &str = "a 40 x 20 x 10 mm block with a 6 mm hole through the middle";

/// The part as the system prompt asks for it: every dimension named at the top.
const PARAMETRIC: &str = "import FreeCAD as App
import Part

LENGTH = 40  # block length along X, mm
WIDTH = 20.0  # block width along Y, mm
HEIGHT = 10  # block height, mm
HOLE_D = 6.0  # through-hole diameter, mm

block = Part.makeBox(LENGTH, WIDTH, HEIGHT)
hole = Part.makeCylinder(HOLE_D / 2, HEIGHT, App.Vector(LENGTH / 2, WIDTH / 2, 0))
result = block.cut(hole)
";

fn volume(length: f64, width: f64, height: f64, hole_d: f64) -> f64 {
    length * width * height - PI * (hole_d / 2.0).powi(2) * height
}

fn run_json(run: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(run.join("run.json")).unwrap()).unwrap()
}

fn tweak(dir: &Path, args: &[&str]) -> std::process::Output {
    let mut all = vec!["tweak", "run"];
    all.extend_from_slice(args);
    cadloop(dir, &all)
}

/// The bytes of every file that says what the run's result is.
fn result_files(run: &Path) -> Vec<(String, Vec<u8>)> {
    [
        "run.json",
        "report.html",
        "model.step",
        "model.stl",
        "model.glb",
        "sheet.png",
    ]
    .iter()
    .map(|name| {
        (
            name.to_string(),
            std::fs::read(run.join(name)).unwrap_or_default(),
        )
    })
    .collect()
}

#[test]
fn a_tweak_rebuilds_with_new_values_and_touches_only_their_lines() {
    let server = ScriptedLlm::start(vec![reply(&fenced(PARAMETRIC)), reply("VERDICT: MATCH")]);
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    assert_exit(&generate_with(dir.path(), &server, PROMPT, &[]), 0);
    assert_eq!(server.left(), 0);
    drop(server);

    let listed = tweak(dir.path(), &["--list"]);
    assert_exit(&listed, 0);
    let listed = text(&listed.stdout);
    assert!(listed.contains("LENGTH = 40"), "{listed}");
    assert!(listed.contains("# through-hole diameter, mm"), "{listed}");

    // No endpoint is configured in the tweak's environment (cadloop() clears it).
    let out = tweak(
        dir.path(),
        &[
            "LENGTH=45",
            "HOLE_D=8",
            "--captioner",
            tiny_captioner().to_str().unwrap(),
        ],
    );
    assert_exit(&out, 0);
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("parameters  LENGTH=45 WIDTH=20.0 HEIGHT=10 HOLE_D=8.0"),
        "{stdout}"
    );

    let record = run_json(&run);
    let attempts = record["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2);
    let tweaked = &attempts[1];
    assert_eq!(tweaked["stage"], "tweak");
    assert_eq!(tweaked["parent"], 1);
    assert_eq!(tweaked["request"], 2);
    assert_eq!(
        tweaked["changes"],
        serde_json::json!([
            {"name": "LENGTH", "from": 40, "to": 45},
            {"name": "HOLE_D", "from": 6.0, "to": 8.0}
        ])
    );
    assert_eq!(tweaked["usage"]["total_tokens"], 0);
    assert_eq!(tweaked["captions"].as_array().map(Vec::len), Some(7));
    let request = &record["requests"][1];
    assert_eq!(request["kind"], "tweak");
    assert_eq!(request["text"], "LENGTH=45 HOLE_D=8.0");
    assert_eq!(request["from_attempt"], 1);
    assert_eq!(request["llm_calls"], 0);
    assert_eq!(record["final"]["attempt"], 2);
    assert_eq!(record["llm_calls"], 2, "the tweak asked nothing");
    assert_eq!(record["settings"]["llm"]["model"], "scripted-coder");
    let values: Vec<(String, Value)> = tweaked["result"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["name"].as_str().unwrap().to_string(), p["value"].clone()))
        .collect();
    assert_eq!(
        values,
        [
            ("LENGTH".to_string(), serde_json::json!(45)),
            ("WIDTH".to_string(), serde_json::json!(20.0)),
            ("HEIGHT".to_string(), serde_json::json!(10)),
            ("HOLE_D".to_string(), serde_json::json!(8.0)),
        ]
    );

    // Only the two literal lines differ.
    let old: Vec<&str> = PARAMETRIC.lines().collect();
    let code = std::fs::read_to_string(run.join("attempts/02/code.py")).unwrap();
    let new: Vec<&str> = code.lines().collect();
    assert_eq!(old.len(), new.len());
    let differing: Vec<(&str, &str)> = old
        .iter()
        .zip(&new)
        .filter(|(a, b)| a != b)
        .map(|(a, b)| (*a, *b))
        .collect();
    assert_eq!(
        differing,
        [
            (
                "LENGTH = 40  # block length along X, mm",
                "LENGTH = 45  # block length along X, mm"
            ),
            (
                "HOLE_D = 6.0  # through-hole diameter, mm",
                "HOLE_D = 8.0  # through-hole diameter, mm"
            ),
        ]
    );
    assert!(code.ends_with('\n') && code.len() == PARAMETRIC.len());

    // The top-level model is the new part, as FreeCAD measures it.
    let measured = step_volume(&run.join("model.step"));
    let expected = volume(45.0, 20.0, 10.0, 8.0);
    assert!(
        (measured - expected).abs() < 1e-6 * expected,
        "{measured} vs {expected}"
    );

    // The page lists the parameters and what the tweak changed.
    let page = std::fs::read_to_string(run.join("report.html")).unwrap();
    assert!(page.contains("HOLE_D"), "the page lists parameters");
    assert!(page.contains("LENGTH 40 → 45"), "the page shows the change");

    // A second tweak from attempt 1 starts from its values, not the result's.
    let out = tweak(dir.path(), &["WIDTH=25", "--from-attempt", "1", "--json"]);
    assert_exit(&out, 0);
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["final_attempt"], 3);
    let measured = step_volume(&run.join("model.step"));
    let expected = volume(40.0, 25.0, 10.0, 6.0);
    assert!(
        (measured - expected).abs() < 1e-6 * expected,
        "{measured} vs {expected}"
    );
}

#[test]
fn refusals_and_failing_values_leave_the_result_as_it_was() {
    let server = ScriptedLlm::start(vec![reply(&fenced(PARAMETRIC)), reply("VERDICT: MATCH")]);
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    assert_exit(&generate_with(dir.path(), &server, PROMPT, &[]), 0);
    let before = result_files(&run);

    for (args, says) in [
        (
            vec!["DEPTH=3"],
            "no parameter is named DEPTH; the parameters are LENGTH, WIDTH, HEIGHT, HOLE_D",
        ),
        (
            vec!["HEIGHT=2.5"],
            "HEIGHT is int: \"2.5\" is not a whole number",
        ),
        (
            vec!["WIDTH=wide"],
            "WIDTH is float: \"wide\" is not a finite number",
        ),
        (vec!["LENGTH"], "is not NAME=VALUE"),
    ] {
        let out = tweak(dir.path(), &args);
        assert_exit(&out, 1);
        let stderr = text(&out.stderr);
        assert!(stderr.contains(says), "{args:?}: {stderr}");
        assert!(stderr.contains("nothing was changed"), "{stderr}");
        assert_eq!(result_files(&run), before, "{args:?} changed the run");
    }

    // A folder in use is refused before anything is read.
    let lock = std::fs::File::open(&run).unwrap();
    let held = nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusiveNonblock).unwrap();
    let out = tweak(dir.path(), &["LENGTH=45"]);
    assert_exit(&out, 2);
    assert!(
        text(&out.stderr).contains("another cadloop is working"),
        "{}",
        text(&out.stderr)
    );
    drop(held);
    assert_eq!(result_files(&run), before);

    // Values FreeCAD cannot build: the attempt is recorded, the result kept.
    let out = tweak(dir.path(), &["HEIGHT=0"]);
    assert_exit(&out, 1);
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("the new values made the code fail (attempt 2"),
        "{stderr}"
    );
    let record = run_json(&run);
    assert_eq!(record["attempts"].as_array().unwrap().len(), 2);
    assert_eq!(record["attempts"][1]["result"]["outcome"], "error");
    assert_eq!(record["requests"][1]["outcome"], "failed");
    assert_eq!(record["final"]["attempt"], 1);
    assert_eq!(record["outcome"], "match");
    for (name, bytes) in result_files(&run) {
        if name != "run.json" && name != "report.html" {
            let old = &before.iter().find(|(n, _)| *n == name).unwrap().1;
            assert_eq!(&bytes, old, "{name} changed");
        }
    }
}

#[test]
fn a_run_without_parameters_cannot_be_tweaked() {
    let plain = "import Part\nresult = Part.makeBox(40, 20, 10)\n";
    let server = ScriptedLlm::start(vec![reply(&fenced(plain)), reply("VERDICT: MATCH")]);
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    assert_exit(&generate_with(dir.path(), &server, PROMPT, &[]), 0);
    let before = result_files(&run);
    let out = tweak(dir.path(), &["LENGTH=45"]);
    assert_exit(&out, 1);
    assert!(
        text(&out.stderr).contains("has no parameters"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(result_files(&run), before);
    let listed = tweak(dir.path(), &["--list"]);
    assert_exit(&listed, 0);
    assert!(text(&listed.stdout).contains("has no parameters"));
}
