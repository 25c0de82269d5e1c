//! `cadloop tweak`: new parameter values rebuilt without the LLM, end to end
//! (the real binary, real FreeCAD; the run made by `generate` against a
//! scripted OpenAI-compatible server, the tweaks with no endpoint at all).

mod common;

use std::f64::consts::PI;
use std::path::Path;

use common::llm_server::{reply, ScriptedLlm};
use common::parts::{fenced, generate_with, step_volume, tiny_captioner};
use common::{assert_exit, cadloop, run_json, text};
use serde_json::Value;

const PROMPT: &str = "a 30 mm square plate, 4.5 mm thick, with a 10 mm bore in the middle";

/// The part as the system prompt asks for it: every dimension named at the top.
const PARAMETRIC: &str = "import FreeCAD as App
import Part

SIDE = 30  # square plate side, mm
THICKNESS = 4.5  # plate thickness, mm
BORE_D = 10.0  # centre bore diameter, mm

plate = Part.makeBox(SIDE, SIDE, THICKNESS)
bore = Part.makeCylinder(BORE_D / 2, THICKNESS, App.Vector(SIDE / 2, SIDE / 2, 0))
result = plate.cut(bore)
";

fn volume(side: f64, thickness: f64, bore_d: f64) -> f64 {
    side * side * thickness - PI * (bore_d / 2.0).powi(2) * thickness
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
    assert!(listed.contains("SIDE      = 30"), "{listed}");
    assert!(listed.contains("# centre bore diameter, mm"), "{listed}");

    // No endpoint is configured in the tweak's environment (cadloop() clears it).
    let out = tweak(
        dir.path(),
        &[
            "SIDE=35",
            "BORE_D=12",
            "--captioner",
            tiny_captioner().to_str().unwrap(),
        ],
    );
    assert_exit(&out, 0);
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("parameters  SIDE=35 THICKNESS=4.5 BORE_D=12.0"),
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
            {"name": "SIDE", "from": 30, "to": 35},
            {"name": "BORE_D", "from": 10.0, "to": 12.0}
        ])
    );
    assert_eq!(tweaked["usage"]["total_tokens"], 0);
    assert_eq!(tweaked["captions"].as_array().map(Vec::len), Some(7));
    let request = &record["requests"][1];
    assert_eq!(request["kind"], "tweak");
    assert_eq!(request["text"], "SIDE=35 BORE_D=12.0");
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
            ("SIDE".to_string(), serde_json::json!(35)),
            ("THICKNESS".to_string(), serde_json::json!(4.5)),
            ("BORE_D".to_string(), serde_json::json!(12.0)),
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
                "SIDE = 30  # square plate side, mm",
                "SIDE = 35  # square plate side, mm"
            ),
            (
                "BORE_D = 10.0  # centre bore diameter, mm",
                "BORE_D = 12.0  # centre bore diameter, mm"
            ),
        ]
    );
    assert!(code.ends_with('\n') && code.len() == PARAMETRIC.len());

    // The top-level model is the new part, as FreeCAD measures it.
    let measured = step_volume(&run.join("model.step"));
    let expected = volume(35.0, 4.5, 12.0);
    assert!(
        (measured - expected).abs() < 1e-6 * expected,
        "{measured} vs {expected}"
    );

    // The page lists the parameters and what the tweak changed.
    let page = std::fs::read_to_string(run.join("report.html")).unwrap();
    assert!(page.contains("THICKNESS"), "the page lists parameters");
    assert!(page.contains("SIDE 30 → 35"), "the page shows the change");

    // A second tweak from attempt 1 starts from its values, not the result's.
    let out = tweak(dir.path(), &["BORE_D=4", "--from-attempt", "1", "--json"]);
    assert_exit(&out, 0);
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["final_attempt"], 3);
    let measured = step_volume(&run.join("model.step"));
    let expected = volume(30.0, 4.5, 4.0);
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
            "no parameter is named DEPTH; the parameters are SIDE, THICKNESS, BORE_D",
        ),
        (
            vec!["SIDE=2,5"],
            "SIDE is int: \"2,5\" is not a finite number",
        ),
        (
            vec!["THICKNESS=wide"],
            "THICKNESS is float: \"wide\" is not a finite number",
        ),
        (vec!["SIDE"], "is not NAME=VALUE"),
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
    let out = tweak(dir.path(), &["SIDE=45"]);
    assert_exit(&out, 2);
    assert!(
        text(&out.stderr).contains("another cadloop is working"),
        "{}",
        text(&out.stderr)
    );
    drop(held);
    assert_eq!(result_files(&run), before);

    // Values FreeCAD cannot build: the attempt is recorded, the result kept.
    let out = tweak(dir.path(), &["THICKNESS=0"]);
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
    let out = tweak(dir.path(), &["SIDE=45"]);
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

/// What counts as a parameter, as the executor reads it.
#[test]
fn parameters_are_the_number_literals_at_the_top_of_the_script() {
    let script = "\"\"\"A block.\"\"\"
import FreeCAD as App
import Part
from FreeCAD import Vector

L, W = 40, 20.5  # block, mm
H: float = +10.0  # height, mm
R = 3  # first try
import math
R = 4  # hole radius, mm
FLAG = True
LATE = 7  # after a statement that is not a number: not a parameter
block = Part.makeBox(L, W, H)
result = block.cut(Part.makeCylinder(R, H, Vector(L / 2, W / 2, 0)))
";
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("part.py"), script).unwrap();
    let out = cadloop(dir.path(), &["exec", "part.py", "--out", "out", "--json"]);
    assert_exit(&out, 0);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let found: Vec<(String, Value, String, u64, String)> = report["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap().to_string(),
                p["value"].clone(),
                p["kind"].as_str().unwrap().to_string(),
                p["line"].as_u64().unwrap(),
                p["text"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let row = |n: &str, v: Value, k: &str, l: u64, t: &str| {
        (n.to_string(), v, k.to_string(), l, t.to_string())
    };
    assert_eq!(
        found,
        [
            row("L", 40.into(), "int", 6, "40"),
            row("W", 20.5.into(), "float", 6, "20.5"),
            row("H", 10.0.into(), "float", 7, "+10.0"),
            row("R", 4.into(), "int", 10, "4"),
        ]
    );
    assert_eq!(report["parameters"][3]["comment"], "hole radius, mm");
}

#[test]
fn every_example_in_the_system_prompt_builds_and_names_its_dimensions() {
    let dir = tempfile::tempdir().unwrap();
    let prompt =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("prompts/system.md"))
            .unwrap();
    let examples: Vec<&str> = prompt
        .split("```python\n")
        .skip(1)
        .map(|rest| rest.split("```").next().unwrap())
        .collect();
    assert_eq!(examples.len(), 5, "the system prompt's examples");
    for (i, code) in examples.iter().enumerate() {
        let script = dir.path().join(format!("example{i}.py"));
        std::fs::write(&script, code).unwrap();
        let out_dir = dir.path().join(format!("example{i}"));
        let result = common::exec_script(dir.path(), &script, &out_dir, &[]);
        assert_eq!(result["outcome"], "ok", "example {i}: {result}");
        // The rules ask for every dimension as a named constant at the top.
        let parameters = result["parameters"].as_array().unwrap();
        assert!(
            parameters.len() >= 3,
            "example {i} names {parameters:?}:\n{code}"
        );
        // The assembly example is a result of named parts.
        if code.contains("result = {") {
            assert_eq!(
                result["facts"]["parts"].as_array().map(Vec::len),
                Some(2),
                "{result}"
            );
        }
    }
}

/// A plate with holes along it: LENGTH is a dimension written whole, HOLES a count.
const WITH_HOLES: &str = "import FreeCAD as App
import Part

LENGTH = 60  # plate length, mm
HOLES = 3  # holes along the plate

plate = Part.makeBox(LENGTH, 20, 5)
for i in range(HOLES):
    plate = plate.cut(Part.makeCylinder(2, 5, App.Vector(LENGTH * (i + 1) / (HOLES + 1), 10, 0)))
result = plate
";

#[test]
fn a_dimension_written_whole_takes_decimals_and_a_count_stays_whole_saying_why() {
    let server = ScriptedLlm::start(vec![reply(&fenced(WITH_HOLES)), reply("VERDICT: MATCH")]);
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    assert_exit(
        &generate_with(dir.path(), &server, "a plate with 3 holes", &[]),
        0,
    );

    let listed = tweak(dir.path(), &["--list", "--json"]);
    assert_exit(&listed, 0);
    let listed: Value = serde_json::from_slice(&listed.stdout).unwrap();
    let parameters = listed["parameters"]
        .as_array()
        .unwrap_or_else(|| listed.as_array().unwrap());
    let holes = parameters.iter().find(|p| p["name"] == "HOLES").unwrap();
    assert_eq!(holes["count"], "`range(...)` at line 8", "{listed}");
    let length = parameters.iter().find(|p| p["name"] == "LENGTH").unwrap();
    assert!(length.get("count").is_none(), "{listed}");

    let before = result_files(&run);
    let out = tweak(dir.path(), &["HOLES=2.5"]);
    assert_exit(&out, 1);
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(
            "HOLES is a count (used in `range(...)` at line 8): \"2.5\" is not a whole number"
        ),
        "{stderr}"
    );
    assert_eq!(result_files(&run), before, "a refusal changes nothing");

    let out = tweak(dir.path(), &["LENGTH=60.5"]);
    assert_exit(&out, 0);
    let record = run_json(&run);
    let last = record["attempts"].as_array().unwrap().last().unwrap();
    assert!(last["code"]
        .as_str()
        .unwrap()
        .contains("LENGTH = 60.5  # plate length, mm"));
    let size = &last["result"]["facts"]["bbox"]["size"];
    assert!((size[0].as_f64().unwrap() - 60.5).abs() < 1e-6, "{size}");
}
