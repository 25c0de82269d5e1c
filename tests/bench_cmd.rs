//! `cadloop bench` end to end: references written by FreeCAD, runs against
//! a scripted OpenAI-compatible server, scores read back from bench.json.

mod common;

use std::time::Duration;

use common::llm_server::{Scripted, ScriptedLlm};
use common::{assert_exit, cadloop};
use serde_json::Value;

const BOX: &str = "import Part\nresult = Part.makeBox(30, 20, 10)\n";
const CYLINDER: &str = "import Part\nresult = Part.makeCylinder(10, 30)\n";

#[test]
fn the_matching_case_scores_zero_the_wrong_one_does_not_and_the_failed_one_scores_as_cadprompt() {
    let dir = tempfile::tempdir().unwrap();
    for (name, code) in [("box", BOX), ("cylinder", CYLINDER)] {
        std::fs::write(dir.path().join(format!("{name}.py")), code).unwrap();
        let out = cadloop(
            dir.path(),
            &[
                "exec",
                &format!("{name}.py"),
                "--out",
                &format!("ref-{name}"),
            ],
        );
        assert_exit(&out, 0);
    }
    let dataset = [
        (
            "right",
            "part right: a 30 x 20 x 10 box",
            "ref-box/model.stl",
        ),
        (
            "wrong",
            "part wrong: a cylinder, 20 across and 30 tall",
            "ref-cylinder/model.stl",
        ),
        ("broken", "part broken: a box", "ref-box/model.stl"),
    ]
    .iter()
    .map(|(id, prompt, reference)| {
        format!(
            "{}\n",
            serde_json::json!({"id": id, "prompt": prompt, "reference": reference})
        )
    })
    .collect::<String>();
    std::fs::write(dir.path().join("dataset.jsonl"), dataset).unwrap();

    let server = ScriptedLlm::responding(Duration::ZERO, |seen| {
        let ask = seen.last_user();
        let code = if ask.contains("VERDICT: MATCH") {
            return Scripted::Reply("VERDICT: MATCH".into());
        } else if ask.contains("part broken") {
            "import Part\nresult = Part.makeBox(0, 1, 1)\n"
        } else {
            BOX
        };
        Scripted::Reply(format!("```python\n{code}```"))
    });
    let url = server.url();
    let out = cadloop(
        dir.path(),
        &[
            "bench",
            "dataset.jsonl",
            "--out",
            "bench",
            "--base-url",
            &url,
            "--model",
            "m",
            "--max-repairs",
            "0",
            "--max-refines",
            "1",
        ],
    );
    assert_exit(&out, 0);
    let report = read_json(&dir.path().join("bench/bench.json"));
    let case = |id: &str| case_of(&report, id);
    let right = case("right");
    assert!(right["pcd"].as_f64().unwrap() < 1e-9, "{right}");
    assert_eq!(right["iou"], 1.0);
    assert_eq!(
        right["success_by_round"],
        serde_json::json!([true, true, true, true])
    );
    let wrong = case("wrong");
    assert!(wrong["pcd"].as_f64().unwrap() > 0.05, "{wrong}");
    assert!(wrong["iou"].as_f64().unwrap() < 0.9, "{wrong}");
    let broken = case("broken");
    assert_eq!(broken["compiled"], false);
    assert_eq!(broken["pcd"].as_f64().unwrap(), 3f64.sqrt());
    assert_eq!(broken["iogt"], 0.0);
    let compile = report["overall"]["compile_rate"].as_f64().unwrap();
    assert!((compile - 2.0 / 3.0).abs() < 1e-9, "{compile}");
    assert!(dir.path().join("bench/bench.md").is_file());
    let index = std::fs::read_to_string(dir.path().join("bench/index.html"))
        .unwrap()
        .replace("&#x2f;", "/"); // minijinja escapes slashes too
    assert!(
        index.contains("<a href=\"items/right/report.html\">right</a>"),
        "{index}"
    );
    assert!(index.contains("href=\"cases/wrong/case.md\""), "{index}");
    assert!(index.contains("<th class=\"num\">IoU</th>"), "{index}");
    assert!(
        index.contains(&format!(
            "<td class=\"num\">{:.4}</td>",
            wrong["pcd"].as_f64().unwrap()
        )),
        "{index}"
    );
    assert!(dir.path().join("bench/cases/right/result.png").is_file());
    assert!(dir.path().join("bench/cases/right/reference.png").is_file());

    // Scoring the same meshes again, as another system's output, gives the same numbers.
    std::fs::create_dir(dir.path().join("theirs")).unwrap();
    std::fs::copy(
        dir.path().join("bench/items/right/model.stl"),
        dir.path().join("theirs/right.stl"),
    )
    .unwrap();
    std::fs::copy(
        dir.path().join("bench/items/wrong/model.stl"),
        dir.path().join("theirs/wrong.stl"),
    )
    .unwrap();
    let out = cadloop(
        dir.path(),
        &[
            "bench",
            "score",
            "theirs",
            "--references",
            "dataset.jsonl",
            "--out",
            "scored",
        ],
    );
    assert_exit(&out, 0);
    let again = read_json(&dir.path().join("scored/bench.json"));
    let again_case = |id: &str| case_of(&again, id);
    assert_eq!(again_case("wrong")["pcd"], wrong["pcd"]);
    assert_eq!(again_case("broken")["pcd"].as_f64().unwrap(), 3f64.sqrt());
}

fn read_json(path: &std::path::Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// The case with this id in a bench.json.
fn case_of(report: &Value, id: &str) -> Value {
    report["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == id)
        .unwrap()
        .clone()
}
