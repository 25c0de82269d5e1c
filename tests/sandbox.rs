//! Escape attempts, each run as generated code: each must fail, be reported
//! as a sandbox violation, and leave the pool able to run the next job.
//! Most run with the import check off, so they test the OS-level sandbox.

mod common;

use std::io::Read;

use cadloop::executor::{ErrorKind, Outcome, Pool};
use common::{pool, pool_without_import_check, run, BOX_MINUS_CYLINDER};

fn string_literal(text: &str) -> String {
    serde_json::to_string(text).unwrap()
}

/// Runs `code` and asserts a sandbox violation, then a normal job.
async fn assert_blocked(pool: &Pool, what: &str, code: &str) -> String {
    let (output, _dir) = run(pool, code).await;
    let message = match &output.report.outcome {
        Outcome::Error { kind, message, .. } => {
            assert_eq!(*kind, ErrorKind::Sandbox, "{what}: {message}");
            message.clone()
        }
        Outcome::Ok { .. } => panic!("{what} was not blocked"),
    };
    let (next, _dir) = run(pool, BOX_MINUS_CYLINDER).await;
    assert!(
        next.report.is_ok(),
        "after {what}: {:?}",
        next.report.outcome
    );
    message
}

#[tokio::test]
async fn files_outside_the_job_folder_can_be_neither_read_nor_written() {
    let pool = pool_without_import_check(1).await;
    let secrets = tempfile::tempdir().unwrap();
    let ssh = secrets.path().join(".ssh");
    std::fs::create_dir(&ssh).unwrap();
    std::fs::write(ssh.join("id_ed25519"), "PRIVATE KEY").unwrap();
    let key = string_literal(ssh.join("id_ed25519").to_str().unwrap());
    let project_file = string_literal(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"));
    let home = string_literal(&std::env::var("HOME").unwrap_or_else(|_| "/root".into()));
    let job = tempfile::tempdir().unwrap();
    let parent = string_literal(
        job.path()
            .parent()
            .unwrap()
            .join("escaped.txt")
            .to_str()
            .unwrap(),
    );
    let attempts = [
        ("read /etc/shadow", "open('/etc/shadow').read()".to_string()),
        ("read a private key", format!("open({key}).read()")),
        (
            "list a .ssh folder",
            format!(
                "import os\nos.listdir({})",
                string_literal(ssh.to_str().unwrap())
            ),
        ),
        (
            "read the project's files",
            format!("open({project_file}).read()"),
        ),
        (
            "read the parent's environment",
            "import os\nopen(f'/proc/{os.getppid()}/environ').read()".to_string(),
        ),
        ("write /tmp/x", "open('/tmp/x', 'w').write('x')".to_string()),
        (
            "write into $HOME",
            format!("open({home} + '/cadloop-escape', 'w').write('x')"),
        ),
        (
            "write next to the job folder",
            format!("open({parent}, 'w').write('x')"),
        ),
    ];
    for (what, code) in &attempts {
        let message = assert_blocked(&pool, what, code).await;
        assert!(message.contains("PermissionError"), "{what}: {message}");
        assert!(
            message.contains("may only build geometry"),
            "{what}: {message}"
        );
    }
    assert!(
        !std::path::Path::new("/tmp/x").exists()
            || std::fs::read_to_string("/tmp/x").unwrap() != "x"
    );
    assert!(!job.path().parent().unwrap().join("escaped.txt").exists());
    pool.shutdown().await;
}

#[tokio::test]
async fn no_network_connection_even_to_localhost() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    listener.set_nonblocking(true).unwrap();
    let pool = pool_without_import_check(1).await;
    let code = format!("import socket\ns = socket.create_connection(('127.0.0.1', {port}), timeout=2)\ns.sendall(b'hi')\n");
    assert_blocked(&pool, "a TCP connection", &code).await;
    let udp = "import socket\nsocket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b'x', ('127.0.0.1', 9))\n";
    assert_blocked(&pool, "a UDP datagram", udp).await;
    match listener.accept() {
        Ok((mut stream, _)) => {
            let mut got = Vec::new();
            let _ = stream.read_to_end(&mut got);
            panic!("the listener was reached: {got:?}");
        }
        Err(err) => assert_eq!(err.kind(), std::io::ErrorKind::WouldBlock),
    }
    pool.shutdown().await;
}

#[tokio::test]
async fn no_new_processes() {
    let pool = pool_without_import_check(1).await;
    let marker = tempfile::tempdir().unwrap();
    let touched = marker.path().join("ran");
    let touch = string_literal(&format!("touch {}", touched.display()));
    let attempts = [
        (
            "subprocess",
            format!("import subprocess\nsubprocess.run(['sh', '-c', {touch}])\n"),
        ),
        (
            "os.fork",
            "import os\nif os.fork() == 0:\n    os._exit(0)\n".to_string(),
        ),
        (
            "ctypes system()",
            format!("import ctypes\nctypes.CDLL(None).system({touch}.encode())\n"),
        ),
        ("os.system", format!("import os\nos.system({touch})\n")),
    ];
    for (what, code) in &attempts {
        let message = assert_blocked(&pool, what, code).await;
        assert!(message.contains("start a process"), "{what}: {message}");
    }
    assert!(!touched.exists(), "a command ran");
    pool.shutdown().await;
}

#[tokio::test]
async fn the_import_check_names_the_line_and_its_bypasses_meet_the_os_sandbox() {
    let pool = pool(1).await;
    let message = assert_blocked(
        &pool,
        "import socket",
        "import Part\nimport socket\nsocket.create_connection(('127.0.0.1', 80))\n",
    )
    .await;
    assert!(message.contains("line 2"), "{message}");
    assert!(
        message.contains("module 'socket' is not allowed"),
        "{message}"
    );
    assert!(message.contains("FreeCAD"), "{message}");
    let message = assert_blocked(
        &pool,
        "from subprocess import",
        "from subprocess import run\n",
    )
    .await;
    assert!(message.contains("'subprocess'"), "{message}");

    let bypasses = [
        ("__import__", "__import__('os').listdir('/root')"),
        ("importlib", "import Part\nlib = __import__('importlib')\nlib.import_module('os').listdir('/etc/ssl/private')"),
        ("builtins getattr", "getattr(__builtins__, '__import__')('subprocess').run(['true'])"),
        ("open via builtins", "getattr(__builtins__, 'open')('/etc/shadow').read()"),
    ];
    for (what, code) in bypasses {
        assert_blocked(&pool, what, code).await;
    }
    pool.shutdown().await;
}

#[tokio::test]
async fn a_normal_script_still_builds_exports_and_prints() {
    let pool = pool(1).await;
    let code = "import math\nimport FreeCAD as App\nimport Part\nprint('building', math.pi)\n\
                result = Part.makeBox(10, 10, 10).cut(Part.makeCylinder(2, 10, App.Vector(5, 5, 0)))\n";
    let (output, dir) = run(&pool, code).await;
    assert!(output.report.is_ok(), "{:?}", output.report.outcome);
    assert!(output.report.output.text.contains("building 3.14"));
    for name in ["model.step", "model.stl", "model.FCStd", "output.txt"] {
        assert!(dir.path().join(name).is_file(), "{name}");
    }
    assert!(
        pool.sandbox().contains("landlock: fully enforced"),
        "{}",
        pool.sandbox()
    );
    pool.shutdown().await;
}

#[tokio::test]
async fn a_symlink_planted_in_the_job_folder_never_reaches_the_users_folder() {
    let pool = pool_without_import_check(1).await;
    let code =
        "import os, Part\nos.remove('output.txt')\nos.symlink('/etc/passwd', 'output.txt')\n\
                os.symlink('/etc/passwd', 'model.FCStd.link')\nresult = Part.makeBox(1, 1, 1)\n";
    let (output, dir) = run(&pool, code).await;
    assert!(output.report.is_ok(), "{:?}", output.report.outcome);
    let planted = dir.path().join("output.txt");
    assert!(
        std::fs::symlink_metadata(&planted).is_err(),
        "the planted link was moved"
    );
    assert!(!dir.path().join("model.FCStd.link").exists());
    assert!(dir.path().join("model.FCStd").is_file());
    pool.shutdown().await;
}
