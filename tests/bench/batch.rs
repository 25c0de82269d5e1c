//! Batch throughput: how well `cadloop batch --jobs N` overlaps LLM waits
//! with FreeCAD work. A scripted OpenAI-compatible server answers every
//! request after a fixed delay; each item is one LLM call (a cube), one
//! FreeCAD run and one render. For --jobs 1, 4 and 16 it prints items per
//! second achieved and the ratio to the ideal, from figures measured in the
//! same run: min(jobs / (delay + work), cores / cpu), where `work` is the mean
//! FreeCAD + render wall time per item in the --jobs 1 run (no contention) and
//! `cpu` the CPU time per item (cadloop and its workers) of the run itself.
//!
//! `cargo bench --bench batch` (set-up first: `scripts/dev setup`).

#[path = "../common/command.rs"]
mod command;
#[path = "../common/llm_server.rs"]
#[allow(dead_code)]
mod llm_server;

use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use command::cadloop_command;
use llm_server::{Scripted, ScriptedLlm};

const DELAY: Duration = Duration::from_secs(1);
const WAVES: usize = 10;

fn main() {
    let server = ScriptedLlm::responding(DELAY, |seen| {
        let ask = seen.last_user();
        let side = ask
            .split("side ")
            .nth(1)
            .and_then(|r| r.split(' ').next())
            .and_then(|n| n.parse::<u32>().ok())
            .unwrap_or(10);
        Scripted::Reply(format!(
            "```python\nimport Part\nresult = Part.makeBox({side}, {side}, {side})\n```"
        ))
    });
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let (clock_instant, clock_system) = (Instant::now(), SystemTime::now());
    println!(
        "batch throughput: LLM delay {:.1} s, {WAVES} waves of items per run, {cores} cores",
        DELAY.as_secs_f64()
    );
    println!(
        "{:>5} {:>6} {:>9} {:>9} {:>9} {:>9} {:>8}",
        "jobs", "items", "work ms", "cpu ms", "items/s", "ideal/s", "ratio"
    );
    let mut baseline_work = None;
    for jobs in [1usize, 4, 16] {
        let items = (WAVES * jobs).max(6);
        let dir = tempfile::tempdir().unwrap();
        let input: String = (0..items)
            .map(|i| {
                format!(
                    "{{\"id\": \"b{i}\", \"prompt\": \"a cube of side {} mm\"}}\n",
                    5 + i % 20
                )
            })
            .collect();
        std::fs::write(dir.path().join("input.jsonl"), input).unwrap();
        let first_request = server.requests().len();
        let cpu_before = children_cpu_secs();
        let status = cadloop_command(dir.path())
            .args([
                "-q",
                "batch",
                "input.jsonl",
                "--out",
                "out",
                "--base-url",
                &server.url(),
                "--model",
                "m",
                "--max-refines",
                "0",
                "--jobs",
                &jobs.to_string(),
            ])
            .stdout(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "cadloop batch failed");
        let cpu = (children_cpu_secs() - cpu_before) / items as f64;
        let requests = server.requests();
        let start = clock_system + requests[first_request].at.duration_since(clock_instant);
        let results = dir.path().join("out/results.jsonl");
        let end = std::fs::metadata(&results).unwrap().modified().unwrap();
        let span = end.duration_since(start).unwrap().as_secs_f64();
        let work = *baseline_work.get_or_insert(mean_work_secs(&dir.path().join("out/items")));
        let achieved = items as f64 / span;
        let ideal = (jobs as f64 / (DELAY.as_secs_f64() + work)).min(cores as f64 / cpu);
        println!(
            "{jobs:>5} {items:>6} {:>9.0} {:>9.0} {achieved:>9.2} {ideal:>9.2} {:>7.0}%",
            work * 1e3,
            cpu * 1e3,
            achieved / ideal * 100.0
        );
    }
    println!("goal: ratio ≥ 90% at --jobs 16");
}

/// CPU seconds used by finished child processes (cadloop, and its workers,
/// which it reaps).
fn children_cpu_secs() -> f64 {
    let usage =
        nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_CHILDREN).unwrap();
    let secs = |t: nix::sys::time::TimeVal| t.tv_sec() as f64 + t.tv_usec() as f64 / 1e6;
    secs(usage.user_time()) + secs(usage.system_time())
}

/// Mean FreeCAD + render seconds per item, from the items' run.json.
fn mean_work_secs(items: &Path) -> f64 {
    let mut total = 0.0;
    let mut count = 0;
    for entry in std::fs::read_dir(items).unwrap().flatten() {
        let run: serde_json::Value =
            serde_json::from_slice(&std::fs::read(entry.path().join("run.json")).unwrap()).unwrap();
        let timings = &run["timings"];
        total += timings["exec_ms"].as_f64().unwrap_or(0.0)
            + timings["render_ms"].as_f64().unwrap_or(0.0);
        count += 1;
    }
    total / 1e3 / f64::from(count.max(1))
}
