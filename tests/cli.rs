//! The `cadloop` binary as a user runs it: exit codes, files, messages.

mod common;

use std::process::Command;

use common::{assert_exit, cadloop, refusal, text};

#[test]
fn exec_writes_result_and_models_and_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("part.py"), common::BOX_MINUS_CYLINDER).unwrap();
    let out = cadloop(dir.path(), &["exec", "part.py", "--out", "run"]);
    assert_exit(&out, 0);
    let stdout = text(&out.stdout);
    assert!(stdout.contains("volume 937.17 mm³"), "{stdout}");
    assert!(stdout.contains("20.00 × 10.00 × 5.00 mm"), "{stdout}");
    let result: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("run/result.json")).unwrap())
            .unwrap();
    assert_eq!(result["outcome"], "ok");
    assert_eq!(result["facts"]["solids"], 1);
    for name in ["model.step", "model.stl", "model.FCStd", "code.py"] {
        assert!(dir.path().join("run").join(name).is_file(), "{name}");
    }
}

#[test]
fn a_failing_script_exits_one_and_clears_the_previous_models() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("good.py"), common::BOX_MINUS_CYLINDER).unwrap();
    std::fs::write(
        dir.path().join("bad.py"),
        "import Part\nresult = Part.makeBox(1, 2)\n",
    )
    .unwrap();
    assert_eq!(
        cadloop(dir.path(), &["exec", "good.py", "--out", "run"])
            .status
            .code(),
        Some(0)
    );
    let out = cadloop(dir.path(), &["exec", "bad.py", "--out", "run", "--json"]);
    assert_exit(&out, 1);
    let printed: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("--json prints the report");
    assert_eq!(printed["outcome"], "error");
    assert_eq!(printed["kind"], "exception");
    assert_eq!(printed["line"], 2);
    let saved: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("run/result.json")).unwrap())
            .unwrap();
    assert_eq!(saved["kind"], "exception");
    assert!(
        !dir.path().join("run/model.step").exists(),
        "a stale model would contradict result.json"
    );
}

/// Makes `path` look untouched for an hour.
fn age(path: &std::path::Path) {
    let an_hour_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
    std::fs::File::open(path)
        .unwrap()
        .set_modified(an_hour_ago)
        .unwrap();
}

#[test]
fn a_worker_area_left_by_a_killed_cadloop_is_removed_by_the_next_one() {
    let dir = tempfile::tempdir().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let area = |name: &str| tmp.path().join(format!("cadloop-worker-{name}"));
    for name in ["stale", "held", "young"] {
        std::fs::create_dir_all(area(name).join("home/.cache")).unwrap();
        std::fs::create_dir_all(area(name).join("job")).unwrap();
        std::fs::write(area(name).join("job/code.py"), "x = 1\n").unwrap();
    }
    age(&area("stale"));
    age(&area("held"));
    // A live cadloop holds its areas locked.
    let _held = nix::fcntl::Flock::lock(
        std::fs::File::open(area("held")).unwrap(),
        nix::fcntl::FlockArg::LockExclusiveNonblock,
    )
    .unwrap();
    // Not a folder of ours: a link named like one, pointing elsewhere.
    let elsewhere = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(elsewhere.path(), area("link")).unwrap();
    std::fs::create_dir(tmp.path().join("other")).unwrap();
    age(&tmp.path().join("other"));

    std::fs::write(dir.path().join("part.py"), common::BOX_MINUS_CYLINDER).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_cadloop"))
        .args(["exec", "part.py", "--out", "run"])
        .current_dir(dir.path())
        .env_remove("CADLOOP_CONFIG")
        .env("TMPDIR", tmp.path())
        .output()
        .unwrap();
    assert_exit(&out, 0);
    let mut left: Vec<String> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    // The stale area went; the held and young ones, the link and the
    // unrelated folder stayed; the run's own area went with its worker.
    assert_eq!(
        left,
        [
            "cadloop-worker-held",
            "cadloop-worker-link",
            "cadloop-worker-young",
            "other"
        ]
    );
    assert!(area("held").join("job/code.py").is_file());
    assert!(elsewhere.path().exists());
}

#[test]
fn a_timeout_flag_stops_a_slow_script() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("slow.py"), "import time\ntime.sleep(30)\n").unwrap();
    let out = cadloop(
        dir.path(),
        &["exec", "slow.py", "--out", "run", "--timeout", "1"],
    );
    assert_exit(&out, 1);
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("failed (timeout) at code.py line 2"),
        "{stdout}"
    );
}

#[test]
fn usage_and_environment_errors_exit_two_with_a_fix() {
    let dir = tempfile::tempdir().unwrap();
    let stderr = refusal(dir.path(), &["exec", "missing.py", "--out", "run"]);
    assert!(
        stderr.contains("cannot read the script missing.py"),
        "{stderr}"
    );
    assert!(
        !dir.path().join("run").exists(),
        "nothing is written for a bad invocation"
    );

    std::fs::write(dir.path().join("latin1.py"), b"# caf\xe9\nimport Part\n").unwrap();
    let stderr = refusal(dir.path(), &["exec", "latin1.py", "--out", "run"]);
    assert!(
        stderr.contains("not UTF-8 text (bad byte at offset 5, line 1)"),
        "{stderr}"
    );

    std::fs::write(dir.path().join("ok.py"), common::BOX_MINUS_CYLINDER).unwrap();
    let stderr = refusal(
        dir.path(),
        &["exec", "ok.py", "--out", "run", "--memory-limit", "64"],
    );
    assert!(stderr.contains("at least 256"), "{stderr}");

    let stderr = refusal(dir.path(), &["exec", "ok.py"]);
    assert!(
        stderr.contains("--out"),
        "clap names the missing --out: {stderr}"
    );

    // The working folder holds the user's own files: it is not an output folder.
    let stderr = refusal(dir.path(), &["exec", "ok.py", "--out", "."]);
    assert!(stderr.contains("not an earlier cadloop output"), "{stderr}");
    assert!(!dir.path().join("code.py").exists() && !dir.path().join("result.json").exists());
}

#[test]
fn a_missing_freecad_says_how_to_install_it() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ok.py"), common::BOX_MINUS_CYLINDER).unwrap();
    std::fs::write(
        dir.path().join("cadloop.toml"),
        "[executor]\nfreecad_lib = \"/nonexistent/freecad\"\n",
    )
    .unwrap();
    let stderr = refusal(dir.path(), &["exec", "ok.py", "--out", "run"]);
    assert!(
        stderr.contains("cannot import FreeCAD from /nonexistent/freecad"),
        "{stderr}"
    );
    assert!(
        stderr.contains("apt-get install freecad-python3"),
        "{stderr}"
    );
}

#[test]
fn a_bad_settings_file_names_the_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ok.py"), common::BOX_MINUS_CYLINDER).unwrap();
    std::fs::write(
        dir.path().join("cadloop.toml"),
        "[executor]\nworkers = \"two\"\n",
    )
    .unwrap();
    let stderr = refusal(dir.path(), &["exec", "ok.py", "--out", "run"]);
    assert!(
        stderr.contains("cadloop.toml") && stderr.contains("line 2"),
        "{stderr}"
    );
}

#[test]
fn doctor_reports_each_part_and_fails_on_a_missing_onnxruntime() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_cadloop"))
        .arg("doctor")
        .current_dir(dir.path())
        .env("ORT_DYLIB_PATH", "/nonexistent/libonnxruntime.so")
        .output()
        .unwrap();
    let stdout = text(&out.stdout);
    assert!(stdout.contains("ok    FreeCAD"), "{stdout}");
    assert!(
        stdout.contains("ok    interpreter  FreeCAD 0.20"),
        "{stdout}"
    );
    assert!(
        stdout.contains("FAIL  onnxruntime  ORT_DYLIB_PATH names /nonexistent"),
        "{stdout}"
    );
    assert!(
        stdout.contains("ok    sandbox      landlock: fully enforced"),
        "{stdout}"
    );
    assert!(
        stdout.contains("captioner") && stdout.contains("LLM"),
        "{stdout}"
    );
    assert_exit(&out, 2);
}

#[test]
fn help_lists_every_command_with_its_own_help_but_not_the_internal_worker() {
    let dir = tempfile::tempdir().unwrap();
    let out = cadloop(dir.path(), &["--help"]);
    assert_exit(&out, 0);
    let stdout = text(&out.stdout);
    // The command names: the first word of each line of the Commands section
    // that starts one (a description running on starts with more spaces).
    let listed: Vec<&str> = stdout
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| !l.is_empty())
        .filter(|l| l.starts_with("  ") && !l.starts_with("   "))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(
        listed,
        [
            "generate",
            "refine",
            "tweak",
            "serve",
            "mcp",
            "batch",
            "bench",
            "exec",
            "render",
            "captions-dataset",
            "export-data",
            "caption",
            "doctor",
            "help"
        ],
        "{stdout}"
    );
    for command in listed.iter().filter(|c| **c != "help") {
        let out = cadloop(dir.path(), &[command, "--help"]);
        assert_exit(&out, 0);
        let help = text(&out.stdout);
        assert!(
            help.contains(&format!("Usage: cadloop {command}")),
            "{command}: {help}"
        );
    }
    // The worker is there for the supervisor, not listed for people.
    let out = cadloop(dir.path(), &["worker", "--help"]);
    assert_exit(&out, 0);
}

#[test]
fn generate_help_lists_every_flag_with_its_default() {
    let dir = tempfile::tempdir().unwrap();
    let out = cadloop(dir.path(), &["generate", "--help"]);
    assert_exit(&out, 0);
    insta::assert_snapshot!(text(&out.stdout));
}
