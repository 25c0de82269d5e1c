//! `cadloop batch` on a real Slurm cluster (single node, started by the test
//! itself): a 2-task job array submitted with `scripts/slurm/submit`, the
//! shards merged by `batch summary`; then a task stopped midway the way a
//! time limit stops it (SIGINT to the batch shell), requeued by the array
//! script, and resumed with nothing done twice.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::llm_server::{Scripted, ScriptedLlm};
use common::slurm::Slurm;
use common::{assert_exit, cadloop, text};
use serde_json::Value;

const ITEMS: usize = 16;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// An endpoint that answers every prompt with a box, after `delay`.
fn box_writer(delay: Duration) -> ScriptedLlm {
    ScriptedLlm::responding(delay, |_| {
        Scripted::Reply("```python\nimport Part\nresult = Part.makeBox(10, 20, 30)\n```".into())
    })
}

/// 16 prompts, one per line.
fn prompts(dir: &Path) -> PathBuf {
    let path = dir.join("prompts.txt");
    let lines: String = (0..ITEMS)
        .map(|i| format!("part {i}: a 10 x 20 x 30 mm box\n"))
        .collect();
    std::fs::write(&path, lines).unwrap();
    path
}

/// `scripts/slurm/submit batch INPUT --out OUT --tasks 2 …`: the job id.
fn submit(slurm: &Slurm, input: &Path, out: &Path, server: &ScriptedLlm) -> String {
    let url = server.url();
    let output = Command::new(repo().join("scripts/slurm/submit"))
        .args([
            "batch",
            input.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--tasks",
            "2",
        ])
        .args([
            "--cadloop",
            env!("CARGO_BIN_EXE_cadloop"),
            "--jobs",
            "1",
            "--grace",
            "60",
        ])
        .args(["--sbatch", "--cpus-per-task=1 --mem=0 --time=10"])
        .args([
            "--",
            "--base-url",
            &url,
            "--model",
            "m",
            "--max-refines",
            "0",
            "--max-repairs",
            "0",
        ])
        .env("SLURM_CONF", &slurm.conf)
        .env_remove("OPENAI_API_KEY")
        .output()
        .unwrap();
    assert_exit(&output, 0);
    let said = text(&output.stdout);
    assert!(said.contains("watch     squeue -j"), "{said}");
    assert!(said.contains("batch summary"), "{said}");
    std::fs::read_to_string(out.join("logs/last-job"))
        .unwrap()
        .trim()
        .to_string()
}

/// Every record of every shard's results log, by id (counting repeats).
fn recorded(out: &Path) -> BTreeMap<String, usize> {
    let mut ids = BTreeMap::new();
    for entry in std::fs::read_dir(out).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if !(name.starts_with("results") && name.ends_with(".jsonl")) {
            continue;
        }
        for line in std::fs::read_to_string(&path).unwrap().lines() {
            let record: Value = serde_json::from_str(line).unwrap();
            *ids.entry(record["id"].as_str().unwrap().to_string())
                .or_default() += 1;
        }
    }
    ids
}

/// The completion log's lines for `job`, by array task.
fn completions(slurm: &Slurm, job: &str) -> Vec<(String, String)> {
    slurm
        .completions()
        .into_iter()
        .filter(|l| l.contains(&format!("ArrayJobId={job} ")))
        .map(|l| {
            let field = |name: &str| {
                l.split_whitespace()
                    .find_map(|f| f.strip_prefix(&format!("{name}=")))
                    .unwrap_or_default()
                    .to_string()
            };
            (
                field("ArrayTaskId"),
                format!("{} {}", field("JobState"), field("ExitCode")),
            )
        })
        .collect()
}

fn log_of(out: &Path, job: &str, task: u32) -> String {
    std::fs::read_to_string(out.join(format!("logs/cadloop-{job}_{task}.log"))).unwrap_or_default()
}

#[test]
fn an_array_runs_both_shards_and_a_stopped_task_resumes_after_its_requeue() {
    let slurm = Slurm::start(2).unwrap_or_else(|why| panic!("cannot start Slurm here: {why}"));
    let clock = Instant::now();
    let work = tempfile::tempdir().unwrap();
    let input = prompts(work.path());

    // Both shards, side by side, into one folder.
    let server = box_writer(Duration::ZERO);
    let out = work.path().join("out");
    let job = submit(&slurm, &input, &out, &server);
    slurm.wait(&job, Duration::from_secs(300));
    let mut done = completions(&slurm, &job);
    done.sort();
    assert_eq!(
        done,
        [
            ("0".to_string(), "COMPLETED 0:0".to_string()),
            ("1".to_string(), "COMPLETED 0:0".to_string())
        ],
        "{}\n{}",
        log_of(&out, &job, 0),
        log_of(&out, &job, 1)
    );
    for task in 0..2 {
        assert!(log_of(&out, &job, task).contains(&format!("task {task} of 2")));
    }
    let ids = recorded(&out);
    assert_eq!(ids.len(), ITEMS, "{ids:?}");
    assert!(ids.values().all(|&n| n == 1), "{ids:?}");
    assert!(
        out.join("results.shard-0-of-2.jsonl").is_file()
            && out.join("results.shard-1-of-2.jsonl").is_file()
    );
    let summary = cadloop(work.path(), &["batch", "summary", out.to_str().unwrap()]);
    assert_exit(&summary, 0);
    let said = text(&summary.stdout);
    assert!(
        said.contains(&format!(
            "{ITEMS} items from results.shard-0-of-2.jsonl, results.shard-1-of-2.jsonl"
        )),
        "{said}"
    );
    assert!(!said.contains("duplicates"), "{said}");
    let index = std::fs::read_to_string(out.join("index.html"))
        .unwrap()
        .replace("&#x2f;", "/");
    let items: Vec<String> = std::fs::read_dir(out.join("items"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(items.len(), ITEMS);
    for item in &items {
        assert!(
            index.contains(&format!("items/{item}/report.html")),
            "{item} is not in the index"
        );
    }

    eprintln!("two shards done after {:?}", clock.elapsed());
    // A slow endpoint: task 0 is stopped midway as a time limit stops it,
    // requeues itself, and the rerun does only what is left.
    let slow = box_writer(Duration::from_millis(1500));
    let out = work.path().join("preempted");
    let job = submit(&slurm, &input, &out, &slow);
    let shard0 = out.join("results.shard-0-of-2.jsonl");
    let started = Instant::now();
    while std::fs::read_to_string(&shard0).map_or(0, |t| t.lines().count()) < 2 {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "task 0 never finished two items"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let stop = slurm
        .command("scancel", &["--signal=INT", "--batch", &format!("{job}_0")])
        .unwrap();
    assert!(stop.status.success(), "{}", text(&stop.stderr));
    eprintln!("task 0 told to stop after {:?}", clock.elapsed());
    // A requeue is a cancel and a new pending task, held until the job
    // credential of the first run has expired (the test cluster's
    // `cred_expire`, 15 s): squeue may list nothing for a moment before the
    // rerun starts. The array is over once the rerun has logged and nothing
    // is queued.
    let started = Instant::now();
    loop {
        slurm.wait(&job, Duration::from_secs(300));
        if log_of(&out, &job, 0).contains("restart 1") {
            slurm.wait(&job, Duration::from_secs(300));
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(180),
            "task 0 did not run again after its requeue:\n{}",
            log_of(&out, &job, 0)
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    eprintln!("the array ended after {:?}", clock.elapsed());
    let log = log_of(&out, &job, 0);
    assert!(log.contains("cadloop exited with status 130"), "{log}");
    assert!(log.contains("requeueing to finish the shard"), "{log}");
    assert!(
        log.contains("restart 1"),
        "the task ran again after its requeue:\n{log}"
    );
    let states: Vec<String> = completions(&slurm, &job)
        .into_iter()
        .filter(|(task, _)| task == "0")
        .map(|(_, state)| state)
        .collect();
    assert_eq!(
        states.last().map(String::as_str),
        Some("COMPLETED 0:0"),
        "{states:?}"
    );
    let ids = recorded(&out);
    assert_eq!(ids.len(), ITEMS, "{ids:?}");
    assert!(ids.values().all(|&n| n == 1), "nothing done twice: {ids:?}");
    // And no item was run again: each run folder holds one generation.
    for entry in std::fs::read_dir(out.join("items")).unwrap() {
        let run: Value =
            serde_json::from_slice(&std::fs::read(entry.unwrap().path().join("run.json")).unwrap())
                .unwrap();
        assert_eq!(run["requests"].as_array().unwrap().len(), 1, "{run}");
        assert_eq!(run["llm_calls"], 1, "{run}");
    }
}
