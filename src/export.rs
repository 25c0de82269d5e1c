//! Training data from runs (`cadloop export-data`): each request's dialogue
//! with the LLM as it saw it (the system prompt, the request, each script,
//! FreeCAD's errors and the repairs, the critiques with captions, facts and
//! failing checks, the rewrites), kept only when execution verified its
//! final script, as OpenAI fine-tuning or ShareGPT records.
//!
//! Stage in the flow: after the loop, over what it left: run.json and
//! transcript.jsonl. They are read as JSON values, field by field, so the
//! run formats of earlier cadloops (format 1 had no requests, and called a
//! rewrite `refine`) read as well as today's.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::{json, Value};

use crate::report::{RUN_FILE, TRANSCRIPT_FILE};

/// The layout of the records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// `{"messages": [{"role", "content"}]}`, as OpenAI's fine-tuning takes it.
    Openai,
    /// `{"conversations": [{"from", "value"}]}` (system, human, gpt).
    Sharegpt,
}

/// Which turns a record holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Turns {
    /// Every exchange that led to the final script, in order.
    All,
    /// The request and the final, verified script: one pair.
    Final,
}

/// What execution must have verified for a record to be kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Only {
    /// A valid solid, every check passed, and the critique said MATCH.
    Match,
    /// A valid solid and at least one check, all passed (any verdict).
    Passed,
    /// A valid solid.
    Any,
}

/// What to export, and how.
#[derive(Debug, Clone)]
pub struct Options {
    pub format: Format,
    pub turns: Turns,
    pub only: Only,
    /// Source ids (a batch item's id, a run folder's name) left out.
    pub exclude: HashSet<String>,
}

/// One run folder found: its id and where it is.
#[derive(Debug, Clone, PartialEq)]
pub struct Source {
    pub id: String,
    pub dir: PathBuf,
}

/// What an export read, kept and left out.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Stats {
    pub runs_read: u64,
    pub requests_read: u64,
    pub records: u64,
    /// Requests left out, by reason.
    pub left_out: BTreeMap<String, u64>,
    /// Messages in the kept records.
    pub turns: u64,
    /// Tokens the kept requests' LLM calls took.
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    /// Repairs (after a FreeCAD error) and rewrites (after a critique) on
    /// the way to the kept records' final scripts.
    pub repairs: u64,
    pub rewrites: u64,
    pub repairs_per_record: f64,
    /// Checks of the requests read: of their final attempts, how many passed.
    pub checks_passed: u64,
    pub checks_total: u64,
    /// `checks_passed / checks_total` (0 without checks).
    pub check_pass_rate: f64,
}

/// The run folders under `paths`: a run folder itself, the items of a batch
/// or bench folder, or the runs (and batch items) in a folder of runs.
/// A path that holds none is an error naming it.
pub fn find_sources(paths: &[PathBuf]) -> anyhow::Result<Vec<Source>> {
    let mut found = Vec::new();
    for path in paths {
        let before = found.len();
        collect(path, &mut found, 0);
        if found.len() == before {
            anyhow::bail!(
                "{} holds no run (no run.json in it, in its items/ or in the folders in it): \
                 give run folders, batch or bench output folders, or a folder of runs",
                path.display()
            );
        }
    }
    Ok(found)
}

fn collect(dir: &Path, found: &mut Vec<Source>, depth: u32) {
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| dir.display().to_string());
    if dir.join(RUN_FILE).is_file() {
        found.push(Source {
            // A batch item is known by its id, a run by its folder's name.
            id: name,
            dir: dir.to_path_buf(),
        });
        return;
    }
    let items = dir.join(crate::batch::ITEMS_DIR);
    let mut children: Vec<PathBuf> = if items.is_dir() {
        entries(&items)
    } else if depth < 1 {
        entries(dir)
    } else {
        Vec::new()
    };
    children.sort();
    for child in children {
        if child.is_dir() {
            collect(&child, found, depth + 1);
        }
    }
}

fn entries(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .collect()
}

/// The records of all `sources`, and what was read, kept and left out.
pub fn export(sources: &[Source], options: &Options) -> (Vec<Value>, Stats) {
    let mut stats = Stats::default();
    let mut records = Vec::new();
    let mut seen = HashSet::new();
    for source in sources {
        stats.runs_read += 1;
        let run = match read_json(&source.dir.join(RUN_FILE)) {
            Ok(run) => run,
            Err(why) => {
                tracing::warn!(run = %source.dir.display(), "{why}");
                leave_out(&mut stats, "run.json unreadable");
                continue;
            }
        };
        let transcript = read_transcript(&source.dir.join(TRANSCRIPT_FILE));
        for request in requests(&run) {
            stats.requests_read += 1;
            match record(source, &run, &request, transcript.as_deref(), options) {
                Err(reason) => leave_out(&mut stats, reason),
                Ok(found) => {
                    stats.checks_passed += found.checks.0;
                    stats.checks_total += found.checks.1;
                    if let Some(reason) = found.refused {
                        leave_out(&mut stats, reason);
                        continue;
                    }
                    if options.exclude.contains(&source.id) {
                        leave_out(&mut stats, "excluded id");
                        continue;
                    }
                    let key = (normalise(&request.text), found.code.clone());
                    if !seen.insert(key) {
                        leave_out(&mut stats, "duplicate (same request, same final script)");
                        continue;
                    }
                    stats.records += 1;
                    stats.turns += found.turns;
                    stats.repairs += found.repairs;
                    stats.rewrites += found.rewrites;
                    stats.prompt_tokens += found.usage.0;
                    stats.completion_tokens += found.usage.1;
                    records.push(found.value);
                }
            }
        }
    }
    if stats.records > 0 {
        stats.repairs_per_record = stats.repairs as f64 / stats.records as f64;
    }
    if stats.checks_total > 0 {
        stats.check_pass_rate = stats.checks_passed as f64 / stats.checks_total as f64;
    }
    (records, stats)
}

fn leave_out(stats: &mut Stats, reason: &str) {
    *stats.left_out.entry(reason.to_string()).or_default() += 1;
}

fn normalise(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn read_json(path: &Path) -> Result<Value, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    serde_json::from_slice(&bytes).map_err(|e| format!("{} is not JSON: {e}", path.display()))
}

/// The transcript's exchanges, in call order; `None` when there is none.
/// A line that does not read (cut short by a kill) is left out.
fn read_transcript(path: &Path) -> Option<Vec<Value>> {
    let text = std::fs::read_to_string(path).ok()?;
    let mut calls: Vec<Value> = text
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect();
    calls.sort_by_key(|c| c["call"].as_u64().unwrap_or(0));
    Some(calls)
}

/// One request of a run, as the export needs it.
#[derive(Debug, Clone)]
struct Request {
    number: u64,
    kind: String,
    text: String,
    /// Its result attempt, if any.
    chosen: Option<u64>,
    /// The checks in force (their text), if any.
    checks: Option<String>,
    /// Its LLM calls' tokens: prompt, completion.
    usage: (u64, u64),
}

/// A run's requests; a format-1 run (no requests) is one: its prompt.
fn requests(run: &Value) -> Vec<Request> {
    let tokens = |usage: &Value| {
        (
            usage["prompt_tokens"].as_u64().unwrap_or(0),
            usage["completion_tokens"].as_u64().unwrap_or(0),
        )
    };
    match run["requests"].as_array() {
        Some(list) if !list.is_empty() => list
            .iter()
            .map(|r| Request {
                number: r["number"].as_u64().unwrap_or(1),
                kind: r["kind"].as_str().unwrap_or("generate").to_string(),
                text: r["text"].as_str().unwrap_or("").to_string(),
                chosen: r["final"]["attempt"].as_u64(),
                checks: r["checks"]
                    .as_array()
                    .and_then(|all| {
                        all.iter()
                            .rev()
                            .find(|c| c["error"].is_null() && c["source"].is_string())
                    })
                    .and_then(|c| c["source"].as_str())
                    .map(str::to_string),
                usage: tokens(&r["usage"]),
            })
            .collect(),
        _ => vec![Request {
            number: 1,
            kind: "generate".into(),
            text: run["prompt"].as_str().unwrap_or("").to_string(),
            chosen: run["final"]["attempt"].as_u64(),
            checks: None,
            usage: tokens(&run["usage"]),
        }],
    }
}

/// A request's record, or why it has none.
struct Found {
    value: Value,
    code: String,
    turns: u64,
    repairs: u64,
    rewrites: u64,
    usage: (u64, u64),
    /// Its final attempt's checks: passed, total.
    checks: (u64, u64),
    /// Why execution did not verify it enough for `--only`.
    refused: Option<&'static str>,
}

fn record(
    source: &Source,
    run: &Value,
    request: &Request,
    transcript: Option<&[Value]>,
    options: &Options,
) -> Result<Found, &'static str> {
    if !matches!(request.kind.as_str(), "generate" | "edit" | "refine") {
        return Err("not written by the LLM (a tweak or given code)");
    }
    let attempts = run["attempts"]
        .as_array()
        .ok_or("run.json has no attempts")?;
    let attempt = |n: u64| attempts.get((n as usize).checked_sub(1)?);
    let chosen = request
        .chosen
        .ok_or("no result (no attempt built a solid)")?;
    let last = attempt(chosen).ok_or("run.json does not add up")?;
    let stage = |a: &Value| a["stage"].as_str().unwrap_or("").to_string();
    if matches!(stage(last).as_str(), "tweak" | "given") {
        return Err("not written by the LLM (a tweak or given code)");
    }
    // The final attempt's ancestors within the request, oldest first.
    let mut chain = vec![last];
    let mut at = last;
    while let Some(parent) = at["parent"].as_u64() {
        let Some(previous) = attempt(parent) else {
            break;
        };
        let same_request =
            previous["request"].as_u64().unwrap_or(1) == last["request"].as_u64().unwrap_or(1);
        if !same_request || matches!(stage(at).as_str(), "edit") {
            break;
        }
        chain.push(previous);
        at = previous;
    }
    chain.reverse();

    let result = &last["result"];
    let built = result["outcome"] == "ok";
    let checks = result["checks"].as_array().cloned().unwrap_or_default();
    let passed = checks.iter().filter(|c| c["status"] == "pass").count() as u64;
    let total = checks.len() as u64;
    let critique = &last["critique"];
    let verdict = critique["verdict"].as_str().map(str::to_string);
    let matched = verdict.as_deref() == Some("match") && critique["overruled"] != true;
    let refused = if !built {
        Some("not built")
    } else {
        match options.only {
            Only::Any => None,
            Only::Passed if total == 0 => Some("no checks"),
            Only::Passed | Only::Match if passed < total => Some("checks failing"),
            Only::Match if !matched => Some("not judged MATCH"),
            _ => None,
        }
    };
    let code = last["code"].as_str().unwrap_or("").to_string();
    let transcript = transcript.ok_or("no transcript.jsonl")?;
    let messages = match options.turns {
        Turns::All => dialogue(&chain, transcript).ok_or("the transcript lacks an exchange")?,
        Turns::Final => {
            let first = chain[0]["number"].as_u64().unwrap_or(1);
            let opening = opening(first, transcript).ok_or("the transcript lacks an exchange")?;
            let mut reply = String::new();
            if let Some(checks) = &request.checks {
                reply.push_str(&format!("```checks\n{}\n```\n\n", checks.trim_end()));
            }
            reply.push_str(&format!("```python\n{}\n```", code.trim_end()));
            let mut messages = opening;
            messages.push(message("assistant", &reply));
            messages
        }
    };
    let count = |name: &str| chain.iter().filter(|a| stage(a) == name).count() as u64;
    let facts = &result["facts"];
    let evidence = json!({
        "outcome": result["outcome"],
        "run_outcome": run["outcome"],
        "checks": {"passed": passed, "total": total},
        "verdict": verdict,
        "overruled": critique["overruled"] == true,
        "volume": facts["volume"],
        "bbox": facts["bbox"]["size"],
        "attempt": chosen,
        "attempts": chain.len(),
    });
    let model = run["settings"]["llm"]["model"].clone();
    let turns = messages.len() as u64;
    let value = match options.format {
        Format::Openai => json!({
            "messages": messages,
            "id": source.id,
            "request": request.number,
            "model": model,
            "verified": evidence,
        }),
        Format::Sharegpt => json!({
            "conversations": messages.iter().map(|m| json!({
                "from": match m["role"].as_str() {
                    Some("system") => "system",
                    Some("user") => "human",
                    _ => "gpt",
                },
                "value": m["content"],
            })).collect::<Vec<_>>(),
            "id": source.id,
            "request": request.number,
            "model": model,
            "verified": evidence,
        }),
    };
    Ok(Found {
        value,
        code,
        turns,
        repairs: count("repair"),
        rewrites: count("rewrite") + count("refine"),
        usage: request.usage,
        checks: (passed, total),
        refused,
    })
}

fn message(role: &str, content: &str) -> Value {
    json!({"role": role, "content": content})
}

/// The exchanges of attempt `n`: those that wrote its code, and those that
/// judged it (from its critique on).
fn exchanges(n: u64, transcript: &[Value]) -> (Vec<&Value>, Vec<&Value>) {
    let mine: Vec<&Value> = transcript
        .iter()
        .filter(|c| c["attempt"].as_u64() == Some(n))
        .collect();
    let judged_from = mine
        .iter()
        .position(|c| matches!(c["purpose"].as_str(), Some("critique" | "refine")))
        .unwrap_or(mine.len());
    let (wrote, judged) = mine.split_at(judged_from);
    (wrote.to_vec(), judged.to_vec())
}

/// The messages that opened attempt `first`'s request, without the reply.
fn opening(first: u64, transcript: &[Value]) -> Option<Vec<Value>> {
    let (wrote, _) = exchanges(first, transcript);
    let call = wrote.first()?;
    let messages = call["messages"].as_array()?;
    // The system prompt and the request, before any reminder.
    Some(
        messages
            .iter()
            .take_while(|m| m["role"] != "assistant")
            .map(|m| {
                message(
                    m["role"].as_str().unwrap_or("user"),
                    m["content"].as_str().unwrap_or(""),
                )
            })
            .collect(),
    )
}

/// The chat that led through `chain` (oldest first) to its last script: for
/// each attempt, the exchange that wrote it (the last, a reminder holding
/// the earlier turn), its messages as sent (the system prompt once) and the
/// reply.
fn dialogue(chain: &[&Value], transcript: &[Value]) -> Option<Vec<Value>> {
    let mut out: Vec<Value> = Vec::new();
    for attempt in chain {
        let number = attempt["number"].as_u64()?;
        let stage = attempt["stage"].as_str().unwrap_or("");
        let call = if matches!(stage, "rewrite" | "refine") {
            // A rewrite comes in the reply to its parent's critique.
            let (_, judged) = exchanges(attempt["parent"].as_u64()?, transcript);
            *judged.last()?
        } else {
            let (wrote, _) = exchanges(number, transcript);
            *wrote.last()?
        };
        for m in call["messages"].as_array()? {
            let role = m["role"].as_str().unwrap_or("user");
            if role == "system" && !out.is_empty() {
                continue;
            }
            out.push(message(role, m["content"].as_str().unwrap_or("")));
        }
        out.push(message(
            "assistant",
            call["reply"]["content"].as_str().unwrap_or(""),
        ));
    }
    Some(out)
}

/// Reads an `--exclude-ids` file: one id a line; blank lines and `#`
/// comments skipped; a JSON list of strings is taken too.
pub fn read_ids(path: &Path) -> anyhow::Result<HashSet<String>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("cannot read the ids file {}: {e}", path.display()))?;
    if text.trim_start().starts_with('[') {
        let ids: Vec<Value> = serde_json::from_str(&text).map_err(|e| {
            anyhow::anyhow!(
                "{} starts like a JSON list but is not one (line {}): {e}; give a list of ids, or one id a line",
                path.display(),
                e.line()
            )
        })?;
        return Ok(ids
            .iter()
            .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string))
            .collect());
    }
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect())
}
