//! Benchmark: a warm `cadloop worker` against a cold `freecadcmd` process per
//! script, on the 20 example parts in `freecad-scripts/examples/`, in one run.
//!
//! Both sides do the same Python work through the same harness (run the code,
//! measure, export STEP and FCStd, tessellate); the warm side also writes
//! model.stl and ships the mesh over its pipe, so the comparison, if anything,
//! favours the baseline. Prints per-job medians and their ratio.
//!
//! Run with `cargo bench --bench executor` (or `scripts/dev bench`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use cadloop::executor::{ExecutorSettings, Job, Pool};

const ROUNDS: usize = 3;

fn examples() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("freecad-scripts/examples");
    let mut scripts: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("freecad-scripts/examples")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "py"))
        .collect();
    scripts.sort();
    scripts
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

/// One cold `freecadcmd` run of the harness on `script`; returns wall seconds.
fn cold_run(script: &Path, out: &Path) -> f64 {
    std::fs::create_dir_all(out).unwrap();
    let harness_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("freecad-scripts");
    let wrapper = out.join("wrapper.py");
    std::fs::write(
        &wrapper,
        format!(
            "import sys\nsys.path.insert(0, {harness:?})\nimport FreeCAD\nimport cadloop_harness\n\
             cadloop_harness.add_module_paths()\ncode = open({script:?}).read()\nreport, v, i = cadloop_harness.run_job(code, {out:?})\n\
             open({result:?}, 'w').write(report)\n",
            harness = harness_dir.to_str().unwrap(),
            script = script.to_str().unwrap(),
            out = out.to_str().unwrap(),
            result = out.join("result.json").to_str().unwrap(),
        ),
    )
    .unwrap();
    let start = Instant::now();
    let status = Command::new("freecadcmd")
        .arg(&wrapper)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .expect("freecadcmd runs (apt-get install freecad-python3)");
    let secs = start.elapsed().as_secs_f64();
    let report = std::fs::read_to_string(out.join("result.json")).unwrap_or_default();
    assert!(
        status.success() && report.contains("\"outcome\": \"ok\""),
        "freecadcmd failed on {}: {report}",
        script.display()
    );
    secs
}

fn main() {
    // `cargo bench` passes flags such as --bench; this benchmark takes none.
    let scripts = examples();
    assert_eq!(scripts.len(), 20, "the benchmark uses the 20 example parts");
    let scratch = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();

    let settings = ExecutorSettings {
        workers: 1,
        timeout: Duration::from_secs(120),
        jobs_per_worker: 10_000,
        ..ExecutorSettings::with_defaults(PathBuf::from(env!("CARGO_BIN_EXE_cadloop")))
    };
    let mut warm = Vec::new();
    let mut warm_by_script = vec![Vec::new(); scripts.len()];
    runtime.block_on(async {
        let pool = Pool::start(settings).await.expect("pool starts");
        for round in 0..ROUNDS {
            for (i, script) in scripts.iter().enumerate() {
                let code = std::fs::read_to_string(script).unwrap();
                let dir = scratch.path().join(format!("warm-{round}-{i}"));
                let start = Instant::now();
                let output = pool
                    .run(Job {
                        code,
                        dir,
                        timeout: None,
                        inputs: Vec::new(),
                        checks: Vec::new(),
                    })
                    .await
                    .unwrap();
                let secs = start.elapsed().as_secs_f64();
                assert!(
                    output.report.is_ok(),
                    "{}: {:?}",
                    script.display(),
                    output.report.outcome
                );
                warm.push(secs);
                warm_by_script[i].push(secs);
            }
        }
        pool.shutdown().await;
    });

    let mut cold = Vec::new();
    let mut cold_by_script = vec![Vec::new(); scripts.len()];
    for round in 0..ROUNDS {
        for (i, script) in scripts.iter().enumerate() {
            let secs = cold_run(script, &scratch.path().join(format!("cold-{round}-{i}")));
            cold.push(secs);
            cold_by_script[i].push(secs);
        }
    }

    println!(
        "executor benchmark: {} scripts × {ROUNDS} rounds, one process at a time",
        scripts.len()
    );
    println!(
        "{:<24} {:>10} {:>10} {:>8}",
        "script", "warm ms", "cold ms", "ratio"
    );
    for (i, script) in scripts.iter().enumerate() {
        let w = median(&mut warm_by_script[i]);
        let c = median(&mut cold_by_script[i]);
        let name = script.file_stem().unwrap().to_string_lossy();
        println!(
            "{name:<24} {:>10.1} {:>10.1} {:>7.1}×",
            w * 1e3,
            c * 1e3,
            c / w
        );
    }
    let warm_median = median(&mut warm);
    let cold_median = median(&mut cold);
    println!(
        "median per job: warm cadloop worker {:.1} ms, cold freecadcmd {:.1} ms, ratio {:.1}× (goal ≥ 10×, warm ≤ 100 ms)",
        warm_median * 1e3,
        cold_median * 1e3,
        cold_median / warm_median
    );
}
