//! Benchmark: `cadloop bench score` on 200 cases under the cadprompt
//! protocol, its Poisson-disk points (the published sampler) against
//! uniform points (what the protocol drew before revision 2) as the
//! baseline measured in the same run. The goal: within 2× of the baseline.
//!
//! The references are the parts the project's examples make; each case is
//! answered with its reference turned by a few degrees and moved.
//!
//! Run with `cargo bench --bench scoring` (or `scripts/dev bench`).

mod parts;

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use cadloop::mesh::{read_stl, Mesh};
use parts::{examples, median};

const CASES: usize = 200;
const ROUNDS: usize = 3;

fn cadloop(dir: &Path, args: &[&str]) {
    let out = Command::new(env!("CARGO_BIN_EXE_cadloop"))
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "cadloop {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The example parts' meshes.
fn example_parts(dir: &Path) -> Vec<Mesh> {
    examples()
        .into_iter()
        .map(|(name, code)| {
            let script = dir.join(format!("{name}.py"));
            std::fs::write(&script, code).unwrap();
            let out = format!("part-{name}");
            cadloop(
                dir,
                &["exec", script.to_str().unwrap(), "--out", &out, "--quiet"],
            );
            read_stl(&dir.join(out).join("model.stl")).unwrap()
        })
        .collect()
}

/// Turned `degrees` about z and moved along x by `shift`.
fn turned(mesh: &Mesh, degrees: f32, shift: f32) -> Mesh {
    let (s, c) = degrees.to_radians().sin_cos();
    Mesh {
        vertices: mesh
            .vertices
            .iter()
            .map(|v| [c * v[0] - s * v[1] + shift, s * v[0] + c * v[1], v[2]])
            .collect(),
        ..mesh.clone()
    }
}

/// Median seconds of `rounds` runs of `bench score` with `extra` flags.
fn time_scoring(dir: &Path, extra: &[&str], rounds: usize) -> f64 {
    let runs: Vec<f64> = (0..rounds)
        .map(|round| {
            let out = format!("scored-{}-{round}", extra.join("-"));
            let mut args = vec![
                "bench",
                "score",
                "answers",
                "--references",
                "dataset.jsonl",
                "--out",
                &out,
                "--quiet",
            ];
            args.extend_from_slice(extra);
            let start = Instant::now();
            cadloop(dir, &args);
            start.elapsed().as_secs_f64()
        })
        .collect();
    median(runs)
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let parts = example_parts(dir.path());
    for folder in ["refs", "answers"] {
        std::fs::create_dir_all(dir.path().join(folder)).unwrap();
    }
    let mut dataset = String::new();
    for case in 0..CASES {
        let part = &parts[case % parts.len()];
        let id = format!("case-{case:03}");
        part.write_stl(&dir.path().join(format!("refs/{id}.stl")))
            .unwrap();
        turned(part, 2.0 + (case % 7) as f32, 0.5)
            .write_stl(&dir.path().join(format!("answers/{id}.stl")))
            .unwrap();
        dataset += &format!(
            "{}\n",
            serde_json::json!({"id": id, "prompt": id, "reference": format!("refs/{id}.stl")})
        );
    }
    std::fs::write(dir.path().join("dataset.jsonl"), dataset).unwrap();
    println!(
        "scoring benchmark: `cadloop bench score` of {CASES} cases (each with its three baselines and its case page) under cadprompt; median of {ROUNDS} runs"
    );
    let uniform = time_scoring(dir.path(), &["--sampling", "uniform"], ROUNDS);
    let poisson = time_scoring(dir.path(), &[], ROUNDS);
    println!(
        "  uniform points (baseline): {uniform:6.2} s, {:.2} s per 20 cases",
        uniform / CASES as f64 * 20.0
    );
    println!(
        "  Poisson-disk points:       {poisson:6.2} s, {:.2} s per 20 cases",
        poisson / CASES as f64 * 20.0
    );
    println!("  ratio {:.2}× the baseline (goal ≤ 2×)", poisson / uniform);
}
