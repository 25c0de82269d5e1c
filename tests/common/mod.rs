//! Helpers shared by the integration tests: a real pool of real FreeCAD
//! workers (the `cadloop` binary under test), each job in its own temp dir.

#![allow(dead_code)]

pub mod command;
pub mod cpu;
pub mod gltf;
pub mod http;
pub mod llm_server;
pub mod local_model;
pub mod memory;
pub mod parts;
pub mod python;
pub mod slurm;
pub mod studio;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use cadloop::executor::{ExecutorSettings, Job, JobOutput, Pool};

pub fn settings(workers: usize) -> ExecutorSettings {
    ExecutorSettings {
        workers,
        memory_limit_mib: 2048,
        ..ExecutorSettings::with_defaults(PathBuf::from(env!("CARGO_BIN_EXE_cadloop")))
    }
}

pub async fn pool(workers: usize) -> Pool {
    Pool::start(settings(workers))
        .await
        .expect("the pool starts (is FreeCAD installed?)")
}

/// A pool whose harness lets any import through, to test what the OS-level
/// sandbox and the supervisor do with code that uses os, sys or ctypes.
pub async fn pool_without_import_check(workers: usize) -> Pool {
    let settings = ExecutorSettings {
        allowed_imports: Vec::new(),
        ..settings(workers)
    };
    Pool::start(settings).await.expect("the pool starts")
}

/// Runs `code` in a fresh temp folder; the folder lives as long as the returned guard.
pub async fn run(pool: &Pool, code: &str) -> (JobOutput, tempfile::TempDir) {
    run_with_timeout(pool, code, None).await
}

pub async fn run_with_timeout(
    pool: &Pool,
    code: &str,
    timeout: Option<Duration>,
) -> (JobOutput, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let output = pool
        .run(Job {
            code: code.to_string(),
            dir: dir.path().to_path_buf(),
            timeout,
            inputs: Vec::new(),
            checks: Vec::new(),
        })
        .await
        .expect("the executor itself works");
    (output, dir)
}

pub const BOX_MINUS_CYLINDER: &str = "\
import FreeCAD as App
import Part
box = Part.makeBox(20, 10, 5)
hole = Part.makeCylinder(2, 5, App.Vector(10, 5, 0))
result = box.cut(hole)
";

/// Runs the `cadloop` binary in `dir`, free of the caller's settings.
pub fn cadloop(dir: &Path, args: &[&str]) -> Output {
    command::cadloop_command(dir)
        .args(args)
        .output()
        .expect("cadloop runs")
}

/// The files in `dir` (a path inside this checkout) with `extension`, sorted.
pub fn files_in(dir: &str, extension: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == extension))
        .collect();
    files.sort();
    files
}

/// A JSON file, parsed (the test fails on a missing or broken one).
pub fn read_json(path: &Path) -> serde_json::Value {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A run folder's `run.json`, parsed.
pub fn run_json(run: &Path) -> serde_json::Value {
    read_json(&run.join("run.json"))
}

/// Polls `done` every 20 ms until it holds, failing after two minutes with `what`.
pub fn wait_until(what: &str, done: impl Fn() -> bool) {
    let started = std::time::Instant::now();
    while !done() {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "waited too long for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Asserts the exit status, showing stderr when it differs.
pub fn assert_exit(out: &Output, code: i32) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "stdout:\n{}\nstderr:\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
}

/// `cadloop exec SCRIPT --out OUT EXTRA...` in `dir`, which must succeed;
/// gives OUT's result.json.
pub fn exec_script(dir: &Path, script: &Path, out: &Path, extra: &[&str]) -> serde_json::Value {
    let mut args = vec![
        "exec",
        script.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    assert_exit(&cadloop(dir, &args), 0);
    read_json(&out.join("result.json"))
}

/// Runs a command that must be refused (exit 2) and returns its stderr.
pub fn refusal(dir: &Path, args: &[&str]) -> String {
    let out = cadloop(dir, args);
    assert_exit(&out, 2);
    text(&out.stderr)
}

/// The browser: `CADLOOP_CHROMIUM`, else `chromium` on the PATH (scripts/dev setup installs it).
pub fn chromium() -> PathBuf {
    if let Some(path) = std::env::var_os("CADLOOP_CHROMIUM") {
        return PathBuf::from(path);
    }
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("chromium"))
            .find(|p| p.is_file())
    });
    found.expect("chromium is not installed: run scripts/dev setup (apt-get install chromium)")
}
