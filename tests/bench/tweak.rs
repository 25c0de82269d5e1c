//! `cadloop tweak` against `cadloop refine` for the same change, on every
//! example part: the first parameter of the part made 10 % larger. Times run
//! from command start to exit (models, views, run.json and page written),
//! no captioner. Refine asks a scripted OpenAI-compatible server that
//! answers at once with the changed code, with `--max-refines 0` (no
//! critique): the floor of any LLM round trip. Prints the median of three
//! runs per part, the median over the parts, and the ratio refine / tweak
//! measured in this run. Goal: tweak ≤ 150 ms for a typical part. The
//! tweak's time is split into the run itself (its request's `total_ms` in
//! run.json: FreeCAD, the views, the records) and the rest (process and
//! FreeCAD worker start-up, shut-down).
//!
//! `cargo bench --bench tweak` (set-up first: `scripts/dev setup`).

#[path = "../common/llm_server.rs"]
#[allow(dead_code)]
mod llm_server;
#[path = "parts.rs"]
mod parts;

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use llm_server::{Scripted, ScriptedLlm};
use parts::{examples, first_parameter, larger, median};

const ROUNDS: usize = 3;

/// `code` with `name`'s value set to `value`.
fn with_value(code: &str, name: &str, value: &str) -> String {
    code.lines()
        .map(|line| match line.split_once(" = ") {
            Some((n, rest)) if n == name => {
                let comment = rest
                    .split_once('#')
                    .map(|(_, c)| format!("  #{c}"))
                    .unwrap_or_default();
                format!("{n} = {value}{comment}")
            }
            _ => line.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

fn cadloop(dir: &Path, args: &[&str]) -> f64 {
    let started = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_cadloop"))
        .arg("-q")
        .args(args)
        .current_dir(dir)
        .env_remove("CADLOOP_CONFIG")
        .env_remove("CADLOOP_CAPTIONER")
        .output()
        .unwrap();
    let ms = started.elapsed().as_secs_f64() * 1e3;
    assert!(
        out.status.success(),
        "cadloop {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    ms
}

/// The latest request's own time, from run.json.
fn last_request_ms(run: &Path) -> f64 {
    let record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.join("run.json")).unwrap()).unwrap();
    let requests = record["requests"].as_array().unwrap();
    requests.last().unwrap()["total_ms"].as_f64().unwrap()
}

fn main() {
    let parts = examples();
    let codes = parts.clone();
    // "part NAME." → its code; "retune NAME: PARAM=VALUE" → the code with that value.
    let server = ScriptedLlm::responding(std::time::Duration::ZERO, move |seen| {
        let ask = seen.last_user();
        let code = if let Some(at) = ask.find("retune ") {
            let change = ask[at + 7..].lines().next().unwrap_or("");
            let (part, assignment) = change.split_once(": ").unwrap_or(("", ""));
            let (name, value) = assignment.split_once('=').unwrap_or(("", ""));
            with_value(&codes[part], name, value)
        } else {
            let part = codes
                .keys()
                .find(|k| ask.contains(&format!("part {k}.")))
                .expect("the prompt names a part");
            codes[part].clone()
        };
        Scripted::Reply(format!("```python\n{code}```"))
    });
    let url = server.url();
    // The scripted endpoint, and no critique: one LLM call per command.
    let llm = ["--base-url", &url, "--model", "m", "--max-refines", "0"];
    println!(
        "tweak vs refine (instant LLM, no critique, no captioner): median of {ROUNDS} runs, ms"
    );
    println!(
        "{:<18} {:>22} {:>9} {:>7} {:>8} {:>9} {:>7}",
        "part", "change", "tweak", "in run", "start-up", "refine", "ratio"
    );
    let (mut tweaks, mut refines, mut in_runs) = (Vec::new(), Vec::new(), Vec::new());
    for (part, code) in &parts {
        let Some((name, value)) = first_parameter(code) else {
            println!("{part:<18} (no parameters)");
            continue;
        };
        let dir = tempfile::tempdir().unwrap();
        let prompt = format!("part {part}.");
        cadloop(
            dir.path(),
            &[&["generate", &prompt, "--out", "run"], &llm[..]].concat(),
        );
        let new_value = larger(&value);
        let assignment = format!("{name}={new_value}");
        let (mut tweak_ms, mut refine_ms, mut in_run_ms) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..ROUNDS {
            tweak_ms.push(cadloop(
                dir.path(),
                &["tweak", "run", &assignment, "--from-attempt", "1"],
            ));
            in_run_ms.push(last_request_ms(&dir.path().join("run")));
            let change = format!("retune {part}: {assignment}");
            refine_ms.push(cadloop(
                dir.path(),
                &[&["refine", "run", &change, "--from-attempt", "1"], &llm[..]].concat(),
            ));
        }
        let (t, r, in_run) = (median(tweak_ms), median(refine_ms), median(in_run_ms));
        println!(
            "{part:<18} {:>22} {t:>9.0} {in_run:>7.0} {:>8.0} {r:>9.0} {:>6.2}x",
            format!("{name} {value}→{new_value}"),
            t - in_run,
            r / t
        );
        tweaks.push(t);
        refines.push(r);
        in_runs.push(in_run);
    }
    let parts_run = refines.len();
    let (t, r, in_run) = (median(tweaks), median(refines), median(in_runs));
    println!(
        "median over {} parts: tweak {t:.0} ms, refine {r:.0} ms, refine / tweak {:.2}x",
        parts_run,
        r / t
    );
    println!(
        "tweak's run itself (FreeCAD, views, records): median {in_run:.0} ms; the rest is start-up"
    );
    println!("goal: tweak ≤ 150 ms for a typical part");
}
