//! Disks that fill up or turn read-only under a run: a small tmpfs of its
//! own per test (mounting one needs root, as the Slurm test does; without
//! it the test fails and says so). What must hold: a clear "No space left
//! on device" or "Read-only file system" message, exit 2, and run.json and
//! the results log whole: the old or the new, never half.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use common::llm_server::{Scripted, ScriptedLlm};
use common::parts::{fenced, RIGHT};
use common::{assert_exit, cadloop, text};
use serde_json::Value;

/// A tmpfs of `kib` KiB mounted on a fresh folder, unmounted when dropped.
struct TmpFs {
    dir: tempfile::TempDir,
}

impl TmpFs {
    fn mount(kib: u32) -> TmpFs {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={kib}k"), "tmpfs"])
            .arg(dir.path())
            .output()
            .expect("mount runs");
        assert!(
            out.status.success(),
            "these tests mount a small tmpfs, which needs root: {}",
            text(&out.stderr)
        );
        TmpFs { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Bytes still free.
    fn free(&self) -> u64 {
        let stat = nix::sys::statvfs::statvfs(self.path()).unwrap();
        stat.blocks_available() * stat.fragment_size()
    }

    /// Fills the file system until `leave` bytes are free.
    fn fill(&self, leave: u64) -> PathBuf {
        let filler = self.path().join(format!("filler-{}", self.free()));
        let size = self.free().saturating_sub(leave);
        let _ = std::fs::write(&filler, vec![0u8; size as usize]);
        filler
    }

    fn read_only(&self) {
        let out = Command::new("mount")
            .args(["-o", "remount,ro"])
            .arg(self.path())
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
    }
}

impl Drop for TmpFs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(self.path()).status();
    }
}

/// An endpoint that writes the block with a hole for every request for
/// code, and a cube of side N for "side N".
fn writer() -> ScriptedLlm {
    ScriptedLlm::responding(Duration::ZERO, |seen| {
        let ask = seen.last_user();
        if ask.contains("VERDICT: MATCH") {
            return Scripted::Reply("VERDICT: MATCH".into());
        }
        Scripted::Reply(fenced(RIGHT))
    })
}

fn loop_args(server: &str) -> Vec<&str> {
    vec![
        "--base-url",
        server,
        "--model",
        "m",
        "--max-refines",
        "0",
        "--max-repairs",
        "0",
    ]
}

fn generate(dir: &Path, server: &ScriptedLlm, out: &Path) -> Output {
    let url = server.url();
    let out = out.to_str().unwrap();
    let mut args = vec!["generate", "a 40 x 20 x 10 mm block", "--out", out];
    args.extend(loop_args(&url));
    cadloop(dir, &args)
}

fn refine(dir: &Path, server: &ScriptedLlm, run: &Path) -> Output {
    let url = server.url();
    let run = run.to_str().unwrap();
    let mut args = vec!["refine", run, "make it taller"];
    args.extend(loop_args(&url));
    cadloop(dir, &args)
}

fn record(run: &Path) -> Value {
    let bytes = std::fs::read(run.join("run.json")).unwrap();
    serde_json::from_slice(&bytes).unwrap_or_else(|e| {
        panic!(
            "run.json is not whole: {e}: {}",
            String::from_utf8_lossy(&bytes)
        )
    })
}

fn says_no_space(out: &Output) {
    assert_exit(out, 2);
    let said = text(&out.stderr);
    assert!(said.contains("No space left on device"), "{said}");
    assert!(!said.contains("panicked"), "{said}");
}

#[test]
fn a_disk_that_fills_during_a_run_stops_it_with_the_reason_and_a_whole_record() {
    let server = writer();
    let work = tempfile::tempdir().unwrap();
    let disk = TmpFs::mount(1024);
    // Room for the record and the first files, not for the views.
    disk.fill(160 * 1024);
    let run = disk.path().join("run");
    let out = generate(work.path(), &server, &run);
    says_no_space(&out);
    let record = record(&run);
    assert_eq!(record["status"], "stopped", "{record}");
    assert!(
        record["error"]
            .as_str()
            .unwrap()
            .contains("No space left on device"),
        "{record}"
    );
    // No temporary file is left half-written beside run.json.
    let leftovers: Vec<String> = std::fs::read_dir(&run)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

/// A finished run on an 8 MiB tmpfs of its own.
struct Made {
    server: ScriptedLlm,
    work: tempfile::TempDir,
    disk: TmpFs,
    run: PathBuf,
    /// Its run.json as written.
    before: Vec<u8>,
}

fn made_run() -> Made {
    let server = writer();
    let work = tempfile::tempdir().unwrap();
    let disk = TmpFs::mount(8 * 1024);
    let run = disk.path().join("run");
    assert_exit(&generate(work.path(), &server, &run), 0);
    let before = std::fs::read(run.join("run.json")).unwrap();
    Made {
        server,
        work,
        disk,
        run,
        before,
    }
}

#[test]
fn a_change_on_a_full_disk_says_so_and_leaves_the_run_as_it_was() {
    let Made {
        server,
        work,
        disk,
        run,
        before,
    } = made_run();
    disk.fill(0);
    let out = refine(work.path(), &server, &run);
    says_no_space(&out);
    assert_eq!(std::fs::read(run.join("run.json")).unwrap(), before);
    assert_eq!(record(&run)["attempts"].as_array().unwrap().len(), 1);
}

#[test]
fn a_read_only_runs_folder_is_refused_with_the_reason_and_changes_nothing() {
    let Made {
        server,
        work,
        disk,
        run,
        before,
    } = made_run();
    disk.read_only();
    for out in [
        refine(work.path(), &server, &run),
        generate(work.path(), &server, &disk.path().join("another")),
    ] {
        assert_exit(&out, 2);
        let said = text(&out.stderr);
        assert!(said.contains("Read-only file system"), "{said}");
    }
    assert_eq!(std::fs::read(run.join("run.json")).unwrap(), before);
}

#[test]
fn a_batch_on_a_disk_that_fills_keeps_its_results_log_whole() {
    let server = writer();
    let work = tempfile::tempdir().unwrap();
    let disk = TmpFs::mount(2 * 1024);
    let input = work.path().join("input.jsonl");
    let lines: String = (1..=12)
        .map(|n| format!("{{\"id\": \"b{n}\", \"prompt\": \"a block, number {n}\"}}\n"))
        .collect();
    std::fs::write(&input, lines).unwrap();
    let url = server.url();
    let out_dir = disk.path().join("out");
    let mut args = vec![
        "batch",
        input.to_str().unwrap(),
        "--out",
        out_dir.to_str().unwrap(),
        "--jobs",
        "1",
    ];
    args.extend(loop_args(&url));
    let out = cadloop(work.path(), &args);
    let said = text(&out.stderr);
    assert!(!said.contains("panicked"), "{said}");
    assert_ne!(
        out.status.code(),
        Some(0),
        "2 MiB cannot hold 12 runs: {said}"
    );
    assert!(said.contains("No space left on device"), "{said}");
    // Every line of the results log is a whole record, whatever was cut.
    let log = std::fs::read_to_string(out_dir.join("results.jsonl")).unwrap_or_default();
    for line in log.lines() {
        serde_json::from_str::<Value>(line)
            .unwrap_or_else(|e| panic!("a results line is not whole: {e}: {line:?}"));
    }
}
