//! `cadloop bench` end to end: references written by FreeCAD, runs against
//! a scripted OpenAI-compatible server, scores read back from bench.json.

mod common;

use std::time::Duration;

use common::llm_server::{Scripted, ScriptedLlm};
use common::{assert_exit, cadloop, read_json};
use serde_json::Value;

const BOX: &str = "import Part\nresult = Part.makeBox(30, 20, 10)\n";
const CYLINDER: &str = "import Part\nresult = Part.makeCylinder(10, 30)\n";

#[test]
fn each_protocol_scores_the_cases_beside_its_baselines_and_compare_pairs_them() {
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
            "--protocol",
            "cadloop",
            "--price-in",
            "2.5",
            "--price-out",
            "10",
        ],
    );
    assert_exit(&out, 0);
    let report = read_json(&dir.path().join("bench/bench.json"));
    assert_eq!(report["protocol"], "cadloop");
    assert_eq!(report["modified"], false);
    let case = |id: &str| case_of(&report, id);
    let right = case("right");
    assert!(right["scores"]["pcd"].as_f64().unwrap() < 1e-9, "{right}");
    assert_eq!(right["scores"]["iou"], 1.0);
    assert_eq!(
        right["success_by_round"],
        serde_json::json!([true, true, true, true])
    );
    assert_eq!(
        right["absolute"]["size_error"],
        serde_json::json!([0.0, 0.0, 0.0])
    );
    assert!((right["absolute"]["volume_ratio"].as_f64().unwrap() - 1.0).abs() < 1e-6);
    assert!(right["cost"]["llm_calls"].as_u64().unwrap() >= 2, "{right}");
    let wrong = case("wrong");
    assert!(wrong["scores"]["pcd"].as_f64().unwrap() > 0.05, "{wrong}");
    assert!(wrong["scores"]["iou"].as_f64().unwrap() < 0.9, "{wrong}");
    let broken = case("broken");
    assert_eq!(broken["compiled"], false);
    assert_eq!(broken["scores"]["pcd"].as_f64().unwrap(), 3f64.sqrt());
    assert_eq!(broken["scores"]["iogt"], 0.0);
    let overall = &report["overall"];
    let compile = overall["compile_rate"]["value"].as_f64().unwrap();
    assert!((compile - 2.0 / 3.0).abs() < 1e-9, "{compile}");
    let ci = &overall["compile_rate"]["ci"];
    assert!(ci[0].as_f64().unwrap() <= compile && compile <= ci[1].as_f64().unwrap());
    // Every case's baselines, summarised: the cube does worse than the noise floor.
    let cube = overall["baselines"]["cube"]["pcd"]["median"]["value"]
        .as_f64()
        .unwrap();
    let floor = overall["baselines"]["noise"]["pcd"]["median"]["value"]
        .as_f64()
        .unwrap();
    assert!(floor < cube, "{overall}");
    let cost = &overall["cost"];
    let money = (cost["prompt_tokens"].as_f64().unwrap() * 2.5
        + cost["completion_tokens"].as_f64().unwrap() * 10.0)
        / 1e6;
    assert!(
        (cost["money"].as_f64().unwrap() - money).abs() < 1e-12,
        "{cost}"
    );
    let md = std::fs::read_to_string(dir.path().join("bench/bench.md")).unwrap();
    assert!(md.contains("Protocol **cadloop version 1**"), "{md}");
    assert!(md.contains("| a fixed cube |"), "{md}");
    assert!(md.contains("At the given prices"), "{md}");
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
            wrong["scores"]["pcd"].as_f64().unwrap()
        )),
        "{index}"
    );
    assert!(dir.path().join("bench/cases/right/result.png").is_file());
    assert!(dir.path().join("bench/cases/right/reference.png").is_file());
    let page = std::fs::read_to_string(dir.path().join("bench/cases/wrong/case.md")).unwrap();
    assert!(page.contains("| the reference's bounding box |"), "{page}");

    // Scoring the same meshes again, as another system's output, gives the same numbers.
    std::fs::create_dir(dir.path().join("theirs")).unwrap();
    for id in ["right", "wrong"] {
        std::fs::copy(
            dir.path().join(format!("bench/items/{id}/model.stl")),
            dir.path().join(format!("theirs/{id}.stl")),
        )
        .unwrap();
    }
    let score = |out: &str, protocol: &str| {
        let out = bench_score(
            dir.path(),
            ["theirs", "dataset.jsonl", out],
            &["--protocol", protocol],
        );
        assert_exit(&out, 0);
        out
    };
    score("scored", "cadloop");
    let again = read_json(&dir.path().join("scored/bench.json"));
    let again_case = |id: &str| case_of(&again, id);
    assert_eq!(again_case("wrong")["scores"]["pcd"], wrong["scores"]["pcd"]);
    assert_eq!(
        again_case("broken")["scores"]["pcd"].as_f64().unwrap(),
        3f64.sqrt()
    );
    assert_eq!(again_case("wrong")["outcome"], "given");
    assert!(
        again["overall"]["success_rate"].is_null(),
        "success does not apply"
    );
    let md = std::fs::read_to_string(dir.path().join("scored/bench.md")).unwrap();
    assert!(md.contains("Success does not apply"), "{md}");
    assert!(md.contains("| n/a |"), "{md}");

    // CADPrompt's protocol: a perfect result scores the noise floor, a failure 1.73.
    score("scored-cadprompt", "cadprompt");
    let cp = read_json(&dir.path().join("scored-cadprompt/bench.json"));
    let right = case_of(&cp, "right");
    let pcd = right["scores"]["pcd"].as_f64().unwrap();
    let floor = right["baselines"]["noise"]["pcd"].as_f64().unwrap();
    assert!(pcd > 0.0 && pcd < 2.0 * floor, "{right}");
    assert_eq!(case_of(&cp, "broken")["scores"]["pcd"], 1.73);
    assert!(
        right["scores"].get("iou").is_none(),
        "CADPrompt reports no IoU"
    );

    // Text2CAD's: a failure is left out and counted as invalid.
    score("scored-text2cad", "text2cad");
    let t2c = read_json(&dir.path().join("scored-text2cad/bench.json"));
    assert_eq!(case_of(&t2c, "broken")["scores"], serde_json::json!({}));
    assert_eq!(t2c["overall"]["metrics"]["cd"]["cases"], 2);
    let md = std::fs::read_to_string(dir.path().join("scored-text2cad/bench.md")).unwrap();
    assert!(md.contains("Invalidity ratio 33.3 %"), "{md}");

    // Compare: the same meshes differ by nothing; other protocols do not compare.
    let out = cadloop(
        dir.path(),
        &["bench", "compare", "bench", "scored", "--out", "cmp"],
    );
    assert_exit(&out, 0);
    let cmp = read_json(&dir.path().join("cmp/compare.json"));
    assert_eq!(cmp["paired"], 3);
    assert_eq!(cmp["metrics"]["pcd"]["equal"], 3);
    assert!(cmp["success"].is_null(), "{cmp}");
    let out = cadloop(
        dir.path(),
        &["bench", "compare", "scored", "scored-cadprompt"],
    );
    assert_exit(&out, 2);
    assert!(
        common::text(&out.stderr).contains("do not compare"),
        "{}",
        common::text(&out.stderr)
    );

    // A folder an earlier cadloop scored under cadprompt's first revision
    // (its bench.json has no protocol_version): scoring it again says so.
    let old = dir.path().join("scored-cadprompt/bench.json");
    let mut earlier = read_json(&old);
    assert_eq!(earlier["protocol_version"], 2);
    assert_eq!(earlier["settings"]["sampling"], "poisson");
    earlier.as_object_mut().unwrap().remove("protocol_version");
    std::fs::write(&old, earlier.to_string()).unwrap();
    let out = score("scored-cadprompt", "cadprompt");
    let said = common::text(&out.stderr);
    assert!(
        said.contains("was scored with cadprompt version 1")
            && said.contains("now scored with cadprompt version 2")
            && said.contains("Poisson disk"),
        "{said}"
    );
    let rescored = read_json(&old);
    assert_eq!(
        rescored["rescored_from"],
        serde_json::json!({"protocol": "cadprompt", "version": 1})
    );
    let md = std::fs::read_to_string(dir.path().join("scored-cadprompt/bench.md")).unwrap();
    assert!(
        md.contains("Protocol **cadprompt version 2**")
            && md.contains("evenly spaced (Poisson disk)")
            && md.contains("scored before with cadprompt version 1")
            && md.contains("Against the published procedure"),
        "{md}"
    );
    // Scored again with the same revision: nothing to say.
    let out = score("scored-cadprompt", "cadprompt");
    assert!(!common::text(&out.stderr).contains("was scored with"));
    assert!(read_json(&old).get("rescored_from").is_none());
}

/// `cadloop bench score RESULTS --references DATASET --out OUT FLAGS…` in `dir`.
fn bench_score(
    dir: &std::path::Path,
    [results, dataset, out]: [&str; 3],
    flags: &[&str],
) -> std::process::Output {
    let mut args = vec![
        "bench",
        "score",
        results,
        "--references",
        dataset,
        "--out",
        out,
    ];
    args.extend_from_slice(flags);
    cadloop(dir, &args)
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

/// A reference's triangles, read with the STL crate (not cadloop's reader).
fn read_reference(path: &std::path::Path) -> cadloop::mesh::Mesh {
    let mut file = std::fs::File::open(path).unwrap();
    let stl = stl_io::read_stl(&mut file).unwrap();
    cadloop::mesh::Mesh {
        vertices: stl.vertices.iter().map(|v| [v[0], v[1], v[2]]).collect(),
        triangles: stl
            .faces
            .iter()
            .map(|f| f.vertices.map(|i| i as u32))
            .collect(),
        closed: false,
        marked: Vec::new(),
        parts: Vec::new(),
    }
}

/// An axis-aligned box as 12 triangles, built here rather than by cadloop.
fn box_mesh(lo: [f32; 3], hi: [f32; 3]) -> cadloop::mesh::Mesh {
    let mut vertices = Vec::new();
    for z in [lo[2], hi[2]] {
        for y in [lo[1], hi[1]] {
            for x in [lo[0], hi[0]] {
                vertices.push([x, y, z]);
            }
        }
    }
    let faces = [
        [0, 1, 3, 2],
        [4, 6, 7, 5],
        [0, 4, 5, 1],
        [2, 3, 7, 6],
        [0, 2, 6, 4],
        [1, 5, 7, 3],
    ];
    let triangles = faces
        .iter()
        .flat_map(|f| [[f[0], f[2], f[1]], [f[0], f[3], f[2]]])
        .collect();
    cadloop::mesh::Mesh {
        vertices,
        triangles,
        closed: true,
        marked: Vec::new(),
        parts: Vec::new(),
    }
}

#[test]
fn the_cube_and_bounding_box_baselines_match_an_independent_computation() {
    use cadloop::metrics::{score, Metric, MetricSettings, Protocol};
    let dir = tempfile::tempdir().unwrap();
    let dataset = common::parts::reference_dataset(dir.path());
    // A system that answers every prompt with the same 10 × 20 × 30 block.
    std::fs::write(
        dir.path().join("block.py"),
        "import Part\nresult = Part.makeBox(10, 20, 30)\n",
    )
    .unwrap();
    assert_exit(
        &cadloop(dir.path(), &["exec", "block.py", "--out", "block"]),
        0,
    );
    let (cases, _) =
        cadloop::bench::load_dataset(&dataset, cadloop::bench::Variant::Plain).unwrap();
    std::fs::create_dir(dir.path().join("constant")).unwrap();
    for case in &cases {
        std::fs::copy(
            dir.path().join("block/model.stl"),
            dir.path().join(format!("constant/{}.stl", case.item.id)),
        )
        .unwrap();
    }
    let out = bench_score(
        dir.path(),
        ["constant", dataset.to_str().unwrap(), "scored"],
        &[],
    );
    assert_exit(&out, 0);
    let report = read_json(&dir.path().join("scored/bench.json"));
    assert_eq!(
        report["protocol"], "cadprompt",
        "the published protocol is the default"
    );
    let settings = MetricSettings::of(Protocol::Cadprompt);
    for case in &cases {
        let reference = read_reference(case.reference.as_ref().unwrap());
        let (lo, hi) = reference.bounds().unwrap();
        let recorded = case_of(&report, &case.item.id);
        for (name, lo, hi) in [("cube", [0.0; 3], [1.0; 3]), ("bbox", lo, hi)] {
            // Boxes triangulated as cadloop's: the same points, the same scores.
            let same = score(&cadloop::mesh::Mesh::cuboid(lo, hi), &reference, &settings).unwrap();
            // Boxes triangulated here: the points fall on other triangles,
            // so the distance agrees to the sampling's noise only (the
            // Hausdorff distance, a maximum, and ICP's local minimum can
            // move more).
            let other = score(&box_mesh(lo, hi), &reference, &settings).unwrap();
            for m in [Metric::Pcd, Metric::Hausdorff, Metric::Iogt] {
                let recorded = recorded["baselines"][name][m.key()].as_f64().unwrap();
                assert_eq!(
                    recorded,
                    same.get(m).unwrap(),
                    "{} {name} {m:?}",
                    case.item.id
                );
            }
            let (recorded, other) = (
                recorded["baselines"][name]["pcd"].as_f64().unwrap(),
                other.get(Metric::Pcd).unwrap(),
            );
            assert!(
                (recorded - other).abs() <= 0.25 * other,
                "{} {name}: {recorded} vs {other}",
                case.item.id
            );
        }
    }
    // Shape-agnostic answers are told apart from knowing the size: the
    // reference's box scores far better than the constant block or a cube,
    // and the noise floor better still.
    let overall = &report["overall"];
    let median = |v: &Value| v["pcd"]["median"]["value"].as_f64().unwrap();
    let baseline = |name: &str| median(&overall["baselines"][name]);
    let (system, cube, bbox, noise) = (
        median(&overall["metrics"]),
        baseline("cube"),
        baseline("bbox"),
        baseline("noise"),
    );
    assert!(
        noise < bbox && bbox < system && bbox < cube,
        "noise {noise}, box {bbox}, block {system}, cube {cube}"
    );
}

#[test]
fn metric_settings_out_of_range_are_refused_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("theirs")).unwrap();
    std::fs::write(
        dir.path().join("dataset.jsonl"),
        "{\"id\": \"a\", \"prompt\": \"a box\"}\n",
    )
    .unwrap();
    for (flags, says) in [
        (&["--samples", "5"][..], "use 10 to 1000000"),
        (
            &["--samples", "200000"][..],
            "too many for Poisson-disk points (at most 100000); use fewer, or --sampling uniform",
        ),
        (&["--voxels", "300"][..], "use 8 to 256"),
    ] {
        let out = bench_score(dir.path(), ["theirs", "dataset.jsonl", "scored"], flags);
        assert_exit(&out, 2);
        assert!(
            common::text(&out.stderr).contains(says),
            "{flags:?}: {}",
            common::text(&out.stderr)
        );
        assert!(!dir.path().join("scored").exists(), "{flags:?}");
    }
    // Uniform points may be that many.
    let out = bench_score(
        dir.path(),
        ["theirs", "dataset.jsonl", "scored"],
        &["--samples", "200000", "--sampling", "uniform"],
    );
    assert_exit(&out, 0);
}
