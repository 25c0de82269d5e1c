//! `cadloop mcp` against the command line for the same work, on every
//! example part: `build` of the part over one stdio session (the official
//! Python SDK's client, tests/mcp/client.py; time from request to answer)
//! against `cadloop exec` of its script (process start to exit), and `tweak`
//! of its first parameter made 10 % larger over the session against
//! `cadloop tweak` of the same run folder. The server keeps its FreeCAD
//! workers warm; each command starts its own. `build` also renders the
//! seven views and writes the run, which `exec` does not. Prints each
//! part's times, the medians and the ratios command / MCP measured in this
//! run.
//!
//! `cargo bench --bench mcp` (set-up first: `scripts/dev setup`).

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use serde_json::{json, Value};

#[path = "parts.rs"]
mod parts;

use parts::{examples, first_parameter, larger, median};

fn timed(command: &mut Command) -> f64 {
    let started = Instant::now();
    let out = command.output().unwrap();
    assert!(
        out.status.success(),
        "{:?}: {}",
        command,
        String::from_utf8_lossy(&out.stderr)
    );
    started.elapsed().as_secs_f64() * 1e3
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let cadloop = root.join("target/release/cadloop");
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path().join("runs");
    let parts = examples();
    let mut calls = Vec::new();
    for (name, code) in &parts {
        calls.push(json!(["build", {"code": code, "description": name}]));
    }
    let tweaks: Vec<(&String, (String, Value))> = parts
        .iter()
        .filter_map(|(name, code)| {
            let (parameter, value) = first_parameter(code)?;
            Some((
                name,
                (parameter, serde_json::from_str(&larger(&value)).ok()?),
            ))
        })
        .collect();
    for (name, (parameter, value)) in &tweaks {
        let run = name.replace('_', "-");
        calls.push(json!(["tweak", {"run": run, "values": {parameter.as_str(): value}}]));
    }
    let out = Command::new(root.join(".venv/bin/python"))
        .arg(root.join("tests/mcp/client.py"))
        .arg(json!({"command": [cadloop, "-q", "mcp", "--runs", runs]}).to_string())
        .arg(Value::from(calls).to_string())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let seen: Value = serde_json::from_slice(&out.stdout).unwrap();
    let answered = seen["calls"].as_array().unwrap();
    for call in answered {
        assert_eq!(call["error"], false, "{call}");
    }

    println!("part                  build (MCP)  exec (command)   tweak (MCP)  tweak (command)");
    let (mut build, mut exec, mut tweak_mcp, mut tweak_cli) = (vec![], vec![], vec![], vec![]);
    for (i, (name, _)) in parts.iter().enumerate() {
        let script = root
            .join("freecad-scripts/examples")
            .join(format!("{name}.py"));
        let exec_ms = timed(
            Command::new(&cadloop)
                .args(["-q", "exec"])
                .arg(&script)
                .arg("--out")
                .arg(dir.path().join("exec").join(name)),
        );
        let build_ms = answered[i]["ms"].as_f64().unwrap();
        build.push(build_ms);
        exec.push(exec_ms);
        let tweak = tweaks.iter().position(|(n, _)| *n == name);
        let (mcp_ms, cli_ms) = match tweak {
            Some(t) => {
                let (parameter, value) = &tweaks[t].1;
                let mcp_ms = answered[parts.len() + t]["ms"].as_f64().unwrap();
                let cli_ms = timed(
                    Command::new(&cadloop)
                        .args(["-q", "tweak"])
                        .arg(runs.join(name.replace('_', "-")))
                        .arg(format!("{parameter}={value}")),
                );
                tweak_mcp.push(mcp_ms);
                tweak_cli.push(cli_ms);
                (format!("{mcp_ms:9.0} ms"), format!("{cli_ms:9.0} ms"))
            }
            None => ("-".into(), "-".into()),
        };
        println!("{name:20} {build_ms:9.0} ms  {exec_ms:11.0} ms  {mcp_ms:>12}  {cli_ms:>15}");
    }
    let (b, e, tm, tc) = (
        median(build),
        median(exec),
        median(tweak_mcp),
        median(tweak_cli),
    );
    println!("median               {b:9.0} ms  {e:11.0} ms  {tm:9.0} ms  {tc:12.0} ms");
    println!(
        "command / MCP: exec vs build {:.2}×, tweak {:.2}×",
        e / b,
        tc / tm
    );
}
