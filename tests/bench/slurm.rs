//! Slurm throughput: items per minute of `cadloop batch` as a job array of
//! 1, 2 and 4 tasks (one item in flight per task, submitted with
//! `scripts/slurm/submit` to a one-node Slurm started here), beside
//! `cadloop batch --jobs N` alone on the same machine with the same N, and
//! beside N times the 1-task array (linear scaling), all measured in this
//! run. A scripted OpenAI-compatible server answers every request after a
//! fixed delay (the LLM's latency), so the tasks overlap their waits the way
//! real ones do. The node claims 4 CPUs so 4 tasks can run at once, whatever
//! the machine has; the cores the machine has are printed.
//!
//! `cargo bench --bench slurm` (as root, after `scripts/dev setup`).

#[path = "../common/command.rs"]
mod command;
#[path = "../common/llm_server.rs"]
#[allow(dead_code)]
mod llm_server;
#[path = "../common/slurm.rs"]
#[allow(dead_code)]
mod slurm;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use command::cadloop_command;
use llm_server::{Scripted, ScriptedLlm};

const DELAY: Duration = Duration::from_secs(1);
const ITEMS: usize = 24;

fn main() {
    let cluster =
        slurm::Slurm::start(4).unwrap_or_else(|why| panic!("cannot start Slurm here: {why}"));
    let server = ScriptedLlm::responding(DELAY, |_| {
        Scripted::Reply("```python\nimport Part\nresult = Part.makeBox(10, 20, 30)\n```".into())
    });
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    println!(
        "slurm throughput: {ITEMS} items, LLM latency {:.1} s, one item in flight per task, {cores} cores",
        DELAY.as_secs_f64()
    );
    println!(
        "{:>5} {:>14} {:>14} {:>10} {:>17} {:>10}",
        "tasks", "array items/m", "batch items/m", "vs batch", "linear (N×1 task)", "of linear"
    );
    let mut one_task = None;
    for tasks in [1usize, 2, 4] {
        let array = per_minute(array_run(&cluster, &server, tasks));
        let alone = per_minute(batch_run(&server, tasks));
        let linear = *one_task.get_or_insert(array) * tasks as f64;
        println!(
            "{tasks:>5} {array:>14.1} {alone:>14.1} {:>9.0}% {linear:>17.1} {:>9.0}%",
            array / alone * 100.0,
            array / linear * 100.0
        );
    }
}

fn per_minute(elapsed: Duration) -> f64 {
    ITEMS as f64 / elapsed.as_secs_f64() * 60.0
}

fn prompts(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("prompts.txt");
    let lines: String = (0..ITEMS).map(|i| format!("part {i}: a box\n")).collect();
    std::fs::write(&path, lines).unwrap();
    path
}

/// A `tasks`-task array over the prompts, from submission to the last task's end.
fn array_run(cluster: &slurm::Slurm, server: &ScriptedLlm, tasks: usize) -> Duration {
    let dir = tempfile::tempdir().unwrap();
    let input = prompts(dir.path());
    let out = dir.path().join("out");
    let started = Instant::now();
    let status = Command::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/slurm/submit"))
        .args([
            "batch",
            input.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ])
        .args([
            "--tasks",
            &tasks.to_string(),
            "--jobs",
            "1",
            "--cadloop",
            env!("CARGO_BIN_EXE_cadloop"),
        ])
        .args(["--sbatch", "--cpus-per-task=1 --mem=0 --time=30"])
        .args([
            "--",
            "--base-url",
            &server.url(),
            "--model",
            "m",
            "--max-refines",
            "0",
        ])
        .env("SLURM_CONF", &cluster.conf)
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "submit failed");
    let job = std::fs::read_to_string(out.join("logs/last-job")).unwrap();
    cluster.wait(job.trim(), Duration::from_secs(1800));
    let elapsed = started.elapsed();
    let finished = std::fs::read_dir(&out)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("results"))
        .map(|e| std::fs::read_to_string(e.path()).unwrap().lines().count())
        .sum::<usize>();
    assert_eq!(finished, ITEMS, "the array did not finish every item");
    elapsed
}

/// `cadloop batch --jobs N` alone, from start to exit.
fn batch_run(server: &ScriptedLlm, jobs: usize) -> Duration {
    let dir = tempfile::tempdir().unwrap();
    let input = prompts(dir.path());
    let started = Instant::now();
    let status = cadloop_command(dir.path())
        .args(["-q", "batch", input.to_str().unwrap(), "--out", "out"])
        .args([
            "--jobs",
            &jobs.to_string(),
            "--base-url",
            &server.url(),
            "--model",
            "m",
            "--max-refines",
            "0",
        ])
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "cadloop batch failed");
    started.elapsed()
}
