//! The studio: cold start to the first page; a tweak from the request to
//! the new mesh fetched (what the viewer loads) on every example part,
//! without captions; memory (the server and its FreeCAD workers) with four
//! runs open. Goal: tweak ≤ 250 ms median. The baseline in the same run is
//! `cadloop tweak` from the command line on the same parts and values,
//! which starts a FreeCAD worker each time.
//!
//! `cargo bench --bench studio` (set-up first: `scripts/dev setup`).

#[path = "../common/command.rs"]
mod command;
#[path = "../common/http.rs"]
#[allow(dead_code)]
mod http;
#[path = "../common/memory.rs"]
mod memory;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use command::cadloop_command;

const ROUNDS: usize = 3;

struct Server {
    child: Child,
    addr: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One request as the studio's own page would send it (its Host and Origin).
fn request(addr: &str, method: &str, path: &str, body: &str) -> (u16, Vec<u8>) {
    let origin = format!("http://{addr}");
    let headers = [
        ("Host", addr),
        ("Origin", origin.as_str()),
        ("Content-Type", "application/json"),
    ];
    let reply = http::request(addr, method, path, &headers, body.as_bytes());
    (reply.status, reply.body)
}

fn json(body: &[u8]) -> serde_json::Value {
    serde_json::from_slice(body).unwrap()
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_cadloop"))
        .args(["-q", "serve", "--runs", "runs", "--port", "0"])
        .current_dir(dir.path())
        .env_remove("CADLOOP_CONFIG")
        .env_remove("CADLOOP_CAPTIONER")
        .env_remove("OPENAI_API_KEY")
        .env_remove("OPENAI_BASE_URL")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .split("http://")
        .nth(1)
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_string();
    let server = Server { child, addr };
    let (status, _) = request(&server.addr, "GET", "/", "");
    assert_eq!(status, 200);
    let cold = started.elapsed().as_secs_f64() * 1e3;
    println!("studio: cold start to the first page {cold:.0} ms");

    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("freecad-scripts/examples");
    let mut names: Vec<String> = std::fs::read_dir(&examples)
        .unwrap()
        .filter_map(|e| Some(e.ok()?.path().file_stem()?.to_str()?.to_string()))
        .collect();
    names.sort();
    println!(
        "{:<18} {:>22} {:>9} {:>9} {:>7}",
        "part", "change", "studio", "cli", "ratio"
    );
    let (mut studio_all, mut cli_all) = (Vec::new(), Vec::new());
    for (i, name) in names.iter().enumerate() {
        let (status, body) = request(&server.addr, "POST", &format!("/api/examples/{name}"), "");
        assert_eq!(status, 200, "{name}: {}", String::from_utf8_lossy(&body));
        let state = json(&body);
        let first = &state["parameters"][0];
        let (param, value) = (
            first["name"].as_str().unwrap().to_string(),
            first["value"].as_f64().unwrap(),
        );
        let values: Vec<String> = (1..=ROUNDS)
            .map(|r| {
                let v = value * (1.0 + 0.05 * r as f64);
                if first["kind"] == "int" {
                    (v.round() as i64 + r as i64).to_string()
                } else {
                    format!("{v:.2}")
                }
            })
            .collect();
        let mut times = Vec::new();
        for v in &values {
            let clock = Instant::now();
            let body = format!(r#"{{"values": {{"{param}": "{v}"}}}}"#);
            let (status, reply) = request(
                &server.addr,
                "POST",
                &format!("/api/runs/{name}/tweak"),
                &body,
            );
            assert_eq!(status, 200, "{name}: {}", String::from_utf8_lossy(&reply));
            let model = json(&reply)["model"].as_str().unwrap().to_string();
            let (status, glb) = request(&server.addr, "GET", &model, "");
            assert!(status == 200 && glb.len() > 12);
            times.push(clock.elapsed().as_secs_f64() * 1e3);
        }
        let mut cli_times = Vec::new();
        for v in &values {
            let clock = Instant::now();
            let status = cadloop_command(dir.path())
                .args([
                    "-q",
                    "tweak",
                    &format!("runs/{name}"),
                    &format!("{param}={v}"),
                    "--from-attempt",
                    "1",
                ])
                .stdout(Stdio::null())
                .status()
                .unwrap();
            assert!(status.success());
            cli_times.push(clock.elapsed().as_secs_f64() * 1e3);
        }
        let (s, c) = (median(times), median(cli_times));
        println!(
            "{name:<18} {:>22} {s:>9.0} {c:>9.0} {:>6.2}x",
            format!("{param} → {}", values[0]),
            c / s
        );
        studio_all.push(s);
        cli_all.push(c);
        if i == 3 {
            println!(
                "memory with 4 runs open: {:.0} MiB (server and FreeCAD workers)",
                memory::tree_rss_mib(server.child.id())
            );
        }
    }
    let (s, c) = (median(studio_all), median(cli_all));
    println!("median: studio tweak {s:.0} ms (request to mesh fetched), cadloop tweak {c:.0} ms, ratio {:.2}x", c / s);
    println!("goal: studio tweak ≤ 250 ms median");
}
