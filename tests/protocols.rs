//! `cadloop bench score` reproduces the published evaluation procedures:
//! on the same meshes, its medians agree with those of the procedures
//! written again in Python with the libraries their authors' scripts use
//! (tests/protocols/published.py: Open3D's Poisson-disk sampler,
//! scikit-learn's nearest neighbours, SciPy's k-d tree).
//!
//! The references are the parts the project's examples make, put into
//! DeepCAD's frame (scaled about the origin until the largest coordinate is
//! 0.75), as CADPrompt's and Text2CAD's references are. Each is answered
//! three ways: far (the same 10 × 20 × 30 mm block for every case, which
//! both procedures must bring into their frame), near (the reference turned
//! 5° and moved by 3 % of its size) and exact (the reference itself).
//! Each side scores every answer set under several seeds; the medians are
//! averaged over the seeds, so the comparison measures the procedures, not
//! one draw of points.

mod common;

use std::path::Path;
use std::process::Command;

use cadloop::mesh::{read_stl, Mesh};
use common::{assert_exit, cadloop};
use serde_json::{json, Value};

/// Seeds each side scores with.
const SEEDS: [u64; 5] = [0, 1, 2, 3, 4];

/// PCD, Hausdorff and CD: relative; IoGT: absolute.
const RELATIVE: f64 = 0.03;
const IOGT: f64 = 0.01;

const ANSWERS: [&str; 3] = ["far", "near", "exact"];

#[test]
fn cadprompt_medians_agree_with_the_published_procedure() {
    agree("cadprompt", &["pcd", "hausdorff", "iogt"]);
}

#[test]
fn text2cad_medians_agree_with_deepcads_published_evaluation() {
    agree("text2cad", &["cd"]);
}

fn agree(protocol: &str, metrics: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let ids = make_cases(dir.path());
    let mut failures = Vec::new();
    let mut table = String::new();
    for answer in ANSWERS {
        let ours = cadloop_medians(dir.path(), protocol, answer);
        let theirs = published_medians(dir.path(), protocol, answer, &ids);
        for &metric in metrics {
            let (a, b) = (
                ours[metric].as_f64().unwrap(),
                theirs[metric].as_f64().unwrap(),
            );
            let off = if metric == "iogt" {
                (a - b).abs()
            } else {
                (a - b).abs() / b
            };
            let limit = if metric == "iogt" { IOGT } else { RELATIVE };
            table += &format!(
                "{protocol} {answer:5} {metric:9} cadloop {a:.5}  published {b:.5}  {}\n",
                if metric == "iogt" {
                    format!("off {off:.4}")
                } else {
                    format!("off {:+.1} %", (a - b) / b * 100.0)
                }
            );
            if off > limit {
                failures.push(format!("{answer} {metric}: {a} vs {b}"));
            }
        }
    }
    eprint!("{table}");
    assert!(
        failures.is_empty(),
        "{protocol} departs from the published procedure: {failures:?}\n{table}"
    );
}

/// The references (refs/ID.stl), the three answer sets (ANSWER/ID.stl) and
/// dataset.jsonl in `dir`; gives the case ids.
fn make_cases(dir: &Path) -> Vec<String> {
    let scripts = common::files_in("freecad-scripts/examples", "py");
    assert!(scripts.len() >= 20, "{} examples", scripts.len());
    for folder in ["refs", "far", "near", "exact"] {
        std::fs::create_dir_all(dir.join(folder)).unwrap();
    }
    let block = Mesh::cuboid([0.0; 3], [10.0, 20.0, 30.0]);
    let mut ids = Vec::new();
    let mut dataset = String::new();
    for script in &scripts {
        let id = script.file_stem().unwrap().to_str().unwrap().to_string();
        let built = format!("built-{id}");
        assert_exit(
            &cadloop(dir, &["exec", script.to_str().unwrap(), "--out", &built]),
            0,
        );
        let reference = deepcad_frame(&read_stl(&dir.join(&built).join("model.stl")).unwrap());
        let stl = |folder: &str| dir.join(folder).join(format!("{id}.stl"));
        reference.write_stl(&stl("refs")).unwrap();
        reference.write_stl(&stl("exact")).unwrap();
        turned_and_moved(&reference)
            .write_stl(&stl("near"))
            .unwrap();
        block.write_stl(&stl("far")).unwrap();
        dataset += &format!(
            "{}\n",
            json!({"id": id, "prompt": format!("the part of {id}.py"), "reference": format!("refs/{id}.stl")})
        );
        ids.push(id);
    }
    std::fs::write(dir.join("dataset.jsonl"), dataset).unwrap();
    ids
}

/// Scaled about the origin until the largest coordinate is 0.75.
fn deepcad_frame(mesh: &Mesh) -> Mesh {
    let largest = mesh
        .vertices
        .iter()
        .flatten()
        .fold(0f32, |m, c| m.max(c.abs()));
    map(mesh, |p| p.map(|c| c * 0.75 / f64::from(largest)))
}

/// Turned 5° about a slanted axis through its box's centre, then moved by
/// 3 % of its longest side.
fn turned_and_moved(mesh: &Mesh) -> Mesh {
    let (lo, hi) = mesh.bounds().unwrap();
    let (lo, hi) = (lo.map(f64::from), hi.map(f64::from));
    let centre = [0, 1, 2].map(|k| (lo[k] + hi[k]) / 2.0);
    let longest = (0..3).map(|k| hi[k] - lo[k]).fold(0.0, f64::max);
    let axis = nalgebra::Unit::new_normalize(nalgebra::Vector3::new(1.0, 2.0, 3.0));
    let turn = nalgebra::Rotation3::from_axis_angle(&axis, 5f64.to_radians());
    let shift = nalgebra::Vector3::new(1.0, -0.5, 0.25) * 0.03 * longest;
    map(mesh, |p| {
        let c = nalgebra::Vector3::from(centre);
        let q = turn * (nalgebra::Vector3::from(p) - c) + c + shift;
        [q.x, q.y, q.z]
    })
}

fn map(mesh: &Mesh, f: impl Fn([f64; 3]) -> [f64; 3]) -> Mesh {
    Mesh {
        vertices: mesh
            .vertices
            .iter()
            .map(|v| f(v.map(f64::from)).map(|c| c as f32))
            .collect(),
        ..mesh.clone()
    }
}

/// `cadloop bench score ANSWER` under `protocol`: each metric's median,
/// averaged over the seeds.
fn cadloop_medians(dir: &Path, protocol: &str, answer: &str) -> Value {
    let mut sums = serde_json::Map::new();
    for seed in SEEDS {
        let out = format!("scored-{protocol}-{answer}-{seed}");
        assert_exit(
            &cadloop(
                dir,
                &[
                    "bench",
                    "score",
                    answer,
                    "--references",
                    "dataset.jsonl",
                    "--out",
                    &out,
                    "--protocol",
                    protocol,
                    "--seed",
                    &seed.to_string(),
                    "--quiet",
                ],
            ),
            0,
        );
        let report = common::read_json(&dir.join(&out).join("bench.json"));
        assert_eq!(report["protocol"], protocol);
        assert_eq!(report["modified"], false);
        for (metric, summary) in report["overall"]["metrics"].as_object().unwrap() {
            let median = summary["median"]["value"].as_f64().unwrap();
            let sum = sums.entry(metric.clone()).or_insert(json!(0.0));
            *sum = json!(sum.as_f64().unwrap() + median / SEEDS.len() as f64);
        }
    }
    Value::Object(sums)
}

/// The Python procedure's medians, averaged over the seeds.
fn published_medians(dir: &Path, protocol: &str, answer: &str, ids: &[String]) -> Value {
    let cases: Vec<Value> = ids
        .iter()
        .map(|id| {
            json!({
                "id": id,
                "reference": dir.join("refs").join(format!("{id}.stl")),
                "result": dir.join(answer).join(format!("{id}.stl")),
            })
        })
        .collect();
    let file = dir.join(format!("cases-{answer}.json"));
    std::fs::write(&file, serde_json::to_string(&cases).unwrap()).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/protocols/published.py");
    let output = Command::new(common::python::venv_python_with(&[
        "open3d", "sklearn", "scipy",
    ]))
    .current_dir(dir)
    .env("OMP_NUM_THREADS", "1")
    .arg(script)
    .arg(protocol)
    .arg(&file)
    .args(SEEDS.map(|s| s.to_string()))
    .output()
    .unwrap();
    assert!(
        output.status.success(),
        "published.py failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let result: Value = serde_json::from_slice(&output.stdout).unwrap();
    let runs = result["runs"].as_array().unwrap();
    assert_eq!(runs.len(), SEEDS.len());
    let mut means = serde_json::Map::new();
    for metric in runs[0]["medians"].as_object().unwrap().keys() {
        let mean = runs
            .iter()
            .map(|r| r["medians"][metric].as_f64().unwrap())
            .sum::<f64>()
            / runs.len() as f64;
        means.insert(metric.clone(), json!(mean));
    }
    Value::Object(means)
}
