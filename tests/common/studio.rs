//! The studio (`cadloop serve`) as the tests run it: the real binary on a
//! free port in a folder, spoken to over plain HTTP.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use serde_json::Value;

use super::http::{request, Reply};

/// A studio process, killed when dropped.
pub struct Studio {
    child: Child,
    /// `127.0.0.1:PORT` (or the bound address).
    pub addr: String,
    /// The URL it printed (with the token, when it needs one).
    pub url: String,
}

impl Drop for Studio {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Studio {
    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

pub fn start(dir: &Path, extra: &[&str]) -> Studio {
    let mut child = Command::new(env!("CARGO_BIN_EXE_cadloop"))
        .args(["-q", "serve", "--runs", "runs", "--port", "0"])
        .args(extra)
        .current_dir(dir)
        .env_remove("CADLOOP_CONFIG")
        .env_remove("CADLOOP_CAPTIONER")
        .env_remove("OPENAI_API_KEY")
        .env_remove("OPENAI_BASE_URL")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("cadloop serve starts");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap_or_else(|| panic!("no URL in {line:?}"))
        .to_string();
    let addr = url
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap()
        .to_string();
    Studio { child, addr, url }
}

pub fn get(studio: &Studio, path: &str) -> Reply {
    request(&studio.addr, "GET", path, &[("Host", &studio.addr)], b"")
}

pub fn post(studio: &Studio, path: &str, body: &str) -> Reply {
    let origin = format!("http://{}", studio.addr);
    request(
        &studio.addr,
        "POST",
        path,
        &[
            ("Host", &studio.addr),
            ("Origin", &origin),
            ("Content-Type", "application/json"),
        ],
        body.as_bytes(),
    )
}

/// The states a run's event stream sent until it ended.
pub fn follow(studio: &Studio, id: &str) -> Vec<Value> {
    let events = get(studio, &format!("/api/runs/{id}/events"));
    assert_eq!(events.status, 200, "{}", events.text());
    events
        .text()
        .lines()
        .filter_map(|line| line.strip_prefix("data:"))
        .map(|data| serde_json::from_str(data.trim()).unwrap())
        .collect()
}
