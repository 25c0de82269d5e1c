//! Results of several named parts, end to end: the real binary, real
//! FreeCAD, real HTTP to a scripted OpenAI-compatible server. A box and its
//! lid go through the loop and come out as named, coloured parts in every
//! file (STEP products, GLB nodes, an STL each, FCStd objects), checked part
//! by part, drawn in their colours, and tweaked; a hinge whose bores are
//! narrower than its pin is found to interfere, and its fix keeps a clearance.

mod common;

use std::path::{Path, PathBuf};

use common::gltf::{glb_json, validate};
use common::llm_server::{reply, ScriptedLlm};
use common::parts::{fenced, generate_with, read_in_freecad};
use common::{assert_exit, cadloop, run_json, text};
use serde_json::Value;

const BOX_WITH_LID: &str = include_str!("../freecad-scripts/examples/box_with_lid.py");
const HINGE: &str = include_str!("../freecad-scripts/examples/hinge.py");

const BOX_CHECKS: &str = "```checks\nCHECKS = [\n    bbox(60, 40, 33),\n    bbox(60, 40, 30, part=\"box\"),\n    bbox(60, 40, 5, part=\"lid\"),  # plate and lip\n    position(min=(0, 0, 28), part=\"lid\"),\n    interference(\"box\", \"lid\"),  # it rests on the box\n]\n```";

const HINGE_CHECKS: &str = "```checks\nCHECKS = [\n    clearance(\"pin\", \"leaf a\", 0.15),\n    clearance(\"pin\", \"leaf b\", 0.15),\n    interference(\"leaf a\", \"leaf b\"),\n    bbox(4, 40, 4, part=\"pin\"),\n]\n```";

use common::parts::check_statuses as statuses;

fn part_names(facts: &Value) -> Vec<String> {
    facts["parts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_string())
        .collect()
}

/// Pixels of `image` for which `pick` holds.
fn count(image: &image::RgbImage, pick: impl Fn([u8; 3]) -> bool) -> usize {
    image.pixels().filter(|p| pick(p.0)).count()
}

fn part_stl(run: &Path, file: &str) -> cadloop::mesh::Mesh {
    let path: PathBuf = run.join("parts").join(file);
    cadloop::mesh::read_stl(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn a_box_and_its_lid_come_out_as_named_coloured_parts_in_every_file_and_tweak_as_one() {
    let server = ScriptedLlm::start(vec![
        reply(&format!("{BOX_CHECKS}\n\n{}", fenced(BOX_WITH_LID))),
        reply("VERDICT: MATCH\nA grey box with a red lid on it."),
    ]);
    let dir = tempfile::tempdir().unwrap();
    let prompt = "a 60 x 40 x 30 mm box with 2 mm walls and a separate 3 mm lid with a lip";
    let out = generate_with(dir.path(), &server, prompt, &[]);
    assert_exit(&out, 0);
    let run = dir.path().join("run");
    let record = run_json(&run);
    assert_eq!(record["outcome"], "match", "{record}");
    let attempt = &record["attempts"][0];
    let facts = &attempt["result"]["facts"];

    // The parts, named and coloured as the code says; each checked alone.
    assert_eq!(part_names(facts), ["box", "lid"]);
    assert_eq!(facts["parts"][0]["color"], "#7f8c9d");
    assert_eq!(facts["parts"][1]["color"], "#c0392b");
    assert_eq!(facts["parts"][1]["bbox"]["size"][2].as_f64().unwrap(), 5.0);
    assert_eq!(facts["pairs"][0]["overlap"].as_f64().unwrap(), 0.0);
    assert_eq!(
        statuses(attempt),
        ["pass"; 5],
        "{}",
        attempt["result"]["checks"]
    );

    // The system prompt teaches parts; the critique names them.
    let seen = server.requests();
    let system = seen[0].messages()[0]["content"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        system.contains("interference(part_a, part_b, max=0)"),
        "{system}"
    );
    assert!(
        system.contains("result = {\"box\": box, \"lid\": lid}"),
        "{system}"
    );
    let critique = seen[1].last_user();
    assert!(critique.contains("2 named parts"), "{critique}");
    assert!(
        critique.contains("\"lid\" (#c0392b): 60 × 40 × 5 mm"),
        "{critique}"
    );
    assert!(
        critique.contains("\"box\" and \"lid\": touch"),
        "{critique}"
    );

    // An STL for each part, holding that part's volume.
    for (index, file) in ["box.stl", "lid.stl"].iter().enumerate() {
        let mesh = part_stl(&run, file);
        let want = facts["parts"][index]["volume"].as_f64().unwrap();
        let got = mesh.signed_volume();
        assert!((got - want).abs() < want * 0.01, "{file}: {got} vs {want}");
    }
    // model.stl is still the one model: the union.
    let union = cadloop::mesh::read_stl(&run.join("model.stl")).unwrap();
    let volume = facts["volume"].as_f64().unwrap();
    assert!((union.signed_volume() - volume).abs() < volume * 0.01);

    // model.step: an assembly whose products are named after the parts, and
    // which reads back as both parts.
    let step = std::fs::read_to_string(run.join("model.step")).unwrap();
    for name in ["box", "lid"] {
        assert!(
            step.contains(&format!("PRODUCT('{name}'")),
            "no product {name}"
        );
    }
    let read = read_in_freecad(
        &run.join("model.step"),
        "import FreeCAD\nimport Part\nresult = Part.read('model.step')\n",
    );
    let read_volume = read.facts().unwrap().volume;
    assert!(
        (read_volume - volume).abs() < volume * 0.01,
        "{read_volume}"
    );

    // model.FCStd: an object for each part, which FreeCAD opens as such.
    let read = read_in_freecad(
        &run.join("model.FCStd"),
        "import os\nimport FreeCAD\nimport Part\ndoc = FreeCAD.openDocument(os.path.abspath('model.FCStd'))\n\
         result = {o.Label: o for o in doc.Objects if o.TypeId == 'Part::Feature'}\n",
    );
    assert!(read.is_ok(), "{read:?}");
    let read_facts = serde_json::to_value(read.facts().unwrap()).unwrap();
    assert_eq!(part_names(&read_facts), ["box", "lid"]);

    // model.glb: valid, a named node per part with its colour.
    let report = validate(&run.join("model.glb"));
    assert_eq!(report["issues"]["numErrors"], 0, "{report:#}");
    assert_eq!(report["issues"]["numWarnings"], 0, "{report:#}");
    let gltf = glb_json(&run.join("model.glb"));
    assert_eq!(gltf["nodes"][0]["children"], serde_json::json!([1, 2]));
    assert_eq!(gltf["nodes"][1]["name"], "box");
    assert_eq!(gltf["nodes"][2]["name"], "lid");
    let red = gltf["materials"][gltf["meshes"][1]["primitives"][0]["material"]
        .as_u64()
        .unwrap() as usize]["pbrMetallicRoughness"]["baseColorFactor"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_f64().unwrap())
        .collect::<Vec<_>>();
    assert!(red[0] > 0.4 && red[1] < 0.1 && red[2] < 0.1, "{red:?}");

    // The views draw each part in its colour: the red lid from above, the
    // grey box's sides below it.
    let iso = image::open(run.join("views/iso.png")).unwrap().to_rgb8();
    let reddish = count(&iso, |[r, g, b]| {
        i32::from(r) > i32::from(g) + 60 && i32::from(r) > i32::from(b) + 60
    });
    let greyish = count(&iso, |[r, g, b]| {
        b > r && b < 235 && i32::from(b) - i32::from(r) < 60 && g > r.saturating_sub(5)
    });
    assert!(reddish > 2_000, "red lid pixels: {reddish}");
    assert!(greyish > 2_000, "grey box pixels: {greyish}");
    let top = image::open(run.join("views/top.png")).unwrap().to_rgb8();
    let bottom = image::open(run.join("views/bottom.png")).unwrap().to_rgb8();
    let red_of = |image: &image::RgbImage| {
        count(image, |[r, g, b]| {
            i32::from(r) > i32::from(g) + 60 && i32::from(r) > i32::from(b) + 60
        })
    };
    assert!(
        red_of(&top) > 10 * red_of(&bottom).max(1),
        "the lid is seen from above"
    );

    // A tweak rebuilds every part and runs their checks again.
    let out = cadloop(dir.path(), &["tweak", "run", "LID_T=6"]);
    assert_exit(&out, 0);
    assert!(
        text(&out.stdout).contains("checks: 3/5"),
        "{}",
        text(&out.stdout)
    );
    let record = run_json(&run);
    let tweaked = &record["attempts"][1];
    assert_eq!(tweaked["stage"], "tweak");
    let facts = &tweaked["result"]["facts"];
    assert_eq!(part_names(facts), ["box", "lid"]);
    assert_eq!(facts["parts"][1]["bbox"]["size"][2].as_f64().unwrap(), 8.0);
    assert_eq!(
        statuses(tweaked),
        ["fail", "pass", "fail", "pass", "pass"],
        "{}",
        tweaked["result"]["checks"]
    );
    let lid = part_stl(&record_dir(&run, tweaked), "lid.stl");
    let top_z = lid.vertices.iter().map(|v| v[2]).fold(f32::MIN, f32::max);
    assert_eq!(top_z, 36.0);
}

/// An attempt's folder in `run`.
fn record_dir(run: &Path, attempt: &Value) -> PathBuf {
    run.join(attempt["dir"].as_str().unwrap())
}

#[test]
fn a_pin_tighter_than_its_bores_is_found_to_interfere_and_the_fix_keeps_its_clearance() {
    // A bore smaller than the pin.
    let thick = HINGE.replace("CLEARANCE = 0.2  #", "CLEARANCE = -0.1  #");
    assert_ne!(thick, HINGE);
    let server = ScriptedLlm::start(vec![
        reply(&format!("{HINGE_CHECKS}\n\n{}", fenced(&thick))),
        reply(&format!(
            "VERDICT: MISMATCH\nThe pin overlaps both knuckles.\n{}",
            fenced(HINGE)
        )),
        reply("VERDICT: MATCH"),
    ]);
    let dir = tempfile::tempdir().unwrap();
    let prompt = "a hinge: two 30 x 20 x 3 mm leaves on a 4 mm pin, 0.2 mm clearance";
    let out = generate_with(dir.path(), &server, prompt, &["--max-refines", "2"]);
    assert_exit(&out, 0);
    let run = dir.path().join("run");
    let record = run_json(&run);
    let attempts = record["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2, "{record}");

    // The thick pin overlaps both leaves: measured, noted and failed.
    let first = &attempts[0]["result"];
    assert_eq!(part_names(&first["facts"]), ["leaf a", "leaf b", "pin"]);
    let overlaps: Vec<(String, f64)> = first["facts"]["pairs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["overlap"].as_f64().unwrap() > 0.0)
        .map(|p| {
            (
                format!(
                    "{} {}",
                    p["parts"][0].as_str().unwrap(),
                    p["parts"][1].as_str().unwrap()
                ),
                p["overlap"].as_f64().unwrap(),
            )
        })
        .collect();
    let names: Vec<&str> = overlaps.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["leaf a pin", "leaf b pin"], "{overlaps:?}");
    // Each knuckle's ring between the bore (⌀3.8) and the pin (⌀4), 20 mm long.
    let ring = std::f64::consts::PI * (2.0f64.powi(2) - 1.9f64.powi(2)) * 20.0;
    for (_, volume) in &overlaps {
        assert!((volume - ring).abs() < ring * 0.02, "{volume} vs {ring}");
    }
    let kinds: Vec<&str> = first["diagnosis"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["interference", "interference"]);
    assert_eq!(statuses(&attempts[0]), ["fail", "fail", "pass", "pass"]);
    let clearance = &first["checks"][0];
    assert!(
        clearance["message"]
            .as_str()
            .unwrap()
            .contains("overlap by"),
        "{clearance}"
    );
    // The critique is told which parts overlap and by how much.
    let critique = server.requests()[1].last_user();
    assert!(
        critique.contains("\"leaf a\" and \"pin\": OVERLAP by"),
        "{critique}"
    );
    assert!(
        critique.contains("interference: parts 'leaf a' and 'pin' overlap"),
        "{critique}"
    );

    // The fix: every check passes, 0.2 mm between the pin and each leaf.
    let second = &attempts[1]["result"];
    assert_eq!(statuses(&attempts[1]), ["pass"; 4]);
    assert_eq!(second["checks"][0]["measured"], "0.2 mm");
    assert!(second["diagnosis"].is_null(), "{}", second["diagnosis"]);
    assert_eq!(record["final"]["attempt"], 2);
    let mut files: Vec<String> = std::fs::read_dir(run.join("parts"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    assert_eq!(files, ["leaf-a.stl", "leaf-b.stl", "pin.stl"]);
    // The pin's colour, given on its view, is the pin's in the views.
    assert_eq!(second["facts"]["parts"][2]["color"], "#d9a621");
    let front = image::open(run.join("views/front.png")).unwrap().to_rgb8();
    let golden = count(&front, |[r, g, b]| r > 150 && g > 100 && b < 80);
    assert!(golden > 100, "pin pixels in the front view: {golden}");
}

#[test]
fn a_lid_left_floating_above_its_box_is_noted_with_the_gap_and_the_page_lists_the_parts() {
    let dir = tempfile::tempdir().unwrap();
    let raised = BOX_WITH_LID.replace(
        "result = {",
        "lid.translate(App.Vector(0, 0, 20))\nresult = {",
    );
    assert_ne!(raised, BOX_WITH_LID);
    let script = dir.path().join("raised.py");
    std::fs::write(&script, raised).unwrap();
    let result = common::exec_script(dir.path(), &script, &dir.path().join("out"), &[]);
    assert_eq!(result["outcome"], "ok", "{result}");
    // The lip hangs 2 mm below the plate: 18 mm of air between them.
    assert_eq!(
        result["facts"]["pairs"][0]["gap"].as_f64().unwrap().round(),
        18.0
    );
    let notes: Vec<(&str, &str)> = result["diagnosis"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d["kind"].as_str().unwrap(), d["message"].as_str().unwrap()))
        .collect();
    assert_eq!(
        notes,
        [(
            "part-apart",
            "part 'box' is 18 mm from the nearest other part ('lid')"
        )]
    );
    // The report's facts list each part with its colour.
    let page = std::fs::read_to_string(dir.path().join("out/report.html")).unwrap();
    assert!(
        page.contains("background: #c0392b\"></span> part lid</th><td>60.00 × 40.00 × 5.00 mm"),
        "{page}"
    );
}
