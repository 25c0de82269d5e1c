//! Many prompts through the loop: JSONL, CSV (Text2CAD's annotations) or a
//! plain list in; bounded concurrency over one shared engine; a results log
//! that makes runs resumable and shardable.
//!
//! Stage in the flow: on top of `pipeline`. `commands::batch` reads the input
//! with [`read_items`], keeps its shard ([`shard`]) minus what earlier runs
//! finished ([`finished_ids`]), and hands the rest to [`run`], which runs
//! `--jobs` items at a time on one [`Engine`] (one FreeCAD pool, one
//! captioner) and appends a [`ResultRecord`] per finished item.
//!
//! The results log is the only record of what is finished: one JSON line per
//! item, written with a single `write` on an `O_APPEND` file and synced before
//! the item counts as done. An item is finished when its loop reached one of
//! its own stop rules (whatever the outcome); an item cut short by the LLM
//! endpoint or by cadloop itself is left unrecorded, so a rerun does it again.
//! Each shard has its own log (`results.jsonl`, or `results.shard-K-of-N.jsonl`)
//! and its own lock, so shards on many machines can share one output folder.

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, Write as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use indicatif::ProgressBar;
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tracing::Instrument;

use crate::interrupt::Cause;
use crate::pipeline::{Engine, PipelineError};
use crate::report::html;
use crate::report::{RunSettings, RunSummary};

/// The results log of a whole (unsharded) batch.
pub const RESULTS_FILE: &str = "results.jsonl";
/// Each item's run folder is `items/<safe id>`.
pub const ITEMS_DIR: &str = "items";
/// Longest folder name made from an id (a hash suffix keeps long ids apart).
const MAX_DIR_NAME: usize = 80;

#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    #[error("cannot read the input {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: {message}", path.display())]
    Input { path: PathBuf, message: String },
    #[error("{}: {count} malformed line(s) and --strict is set:\n{list}", path.display())]
    Strict {
        path: PathBuf,
        count: usize,
        list: String,
    },
    #[error("--shard {0:?}: give K/N with 0 ≤ K < N, e.g. 0/4 (K counts from 0)")]
    Shard(String),
    #[error("{} is being written by another cadloop batch with the same shard (lock {}); wait for it or use another --out", out.display(), lock.display())]
    Locked { out: PathBuf, lock: PathBuf },
    #[error("cannot use the output folder {}", path.display())]
    Output {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: line {line} is not a result record: {message}", path.display())]
    Results {
        path: PathBuf,
        line: usize,
        message: String,
    },
}

/// Which kind of file the input is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputFormat {
    Jsonl,
    Csv,
    Text,
}

impl InputFormat {
    /// By extension: .jsonl/.ndjson, .csv, anything else is a plain list.
    pub fn of(path: &Path) -> InputFormat {
        match path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            Some("jsonl" | "ndjson") => InputFormat::Jsonl,
            Some("csv") => InputFormat::Csv,
            _ => InputFormat::Text,
        }
    }
}

/// How to read the input.
#[derive(Debug, Clone)]
pub struct InputOptions {
    pub format: InputFormat,
    /// CSV: the id column.
    pub id_column: String,
    /// CSV: the prompt column.
    pub prompt_column: String,
}

/// One prompt to run.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    pub id: String,
    /// The folder name under `items/`.
    pub dir_name: String,
    pub prompt: String,
    /// The input line (1-based) it came from.
    pub line: usize,
    /// JSONL fields besides `id` and `prompt`, kept in the result record.
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// A line that was skipped, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    pub line: usize,
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

/// Reads every item of the input; malformed lines become [`Problem`]s.
pub fn read_items(
    path: &Path,
    options: &InputOptions,
) -> Result<(Vec<Item>, Vec<Problem>), BatchError> {
    let bytes = std::fs::read(path).map_err(|source| BatchError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let mut problems = Vec::new();
    let raw = match options.format {
        InputFormat::Jsonl => read_jsonl(&bytes, &mut problems),
        InputFormat::Text => read_text(&bytes, &mut problems),
        InputFormat::Csv => read_csv(path, &bytes, options, &mut problems)?,
    };
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut names: HashMap<String, String> = HashMap::new();
    let mut items = Vec::new();
    for (line, id, prompt, extra) in raw {
        let id = id.trim().to_string();
        if id.is_empty() {
            problems.push(Problem {
                line,
                message: "the id is empty".into(),
            });
            continue;
        }
        let prompt = prompt.trim().to_string();
        if prompt.is_empty() {
            problems.push(Problem {
                line,
                message: format!("the prompt of {id:?} is empty"),
            });
            continue;
        }
        if let Some(first) = seen.get(&id) {
            problems.push(Problem {
                line,
                message: format!(
                    "the id {id:?} was already used on line {first}; ids must be unique"
                ),
            });
            continue;
        }
        let dir_name = safe_dir_name(&id);
        // Names are case-folded for the check, for case-insensitive file systems.
        if let Some(other) = names.get(&dir_name.to_lowercase()) {
            problems.push(Problem {
                line,
                message: format!(
                    "the id {id:?} maps to the same folder name as {other:?}; rename one"
                ),
            });
            continue;
        }
        seen.insert(id.clone(), line);
        names.insert(dir_name.to_lowercase(), id.clone());
        items.push(Item {
            id,
            dir_name,
            prompt,
            line,
            extra,
        });
    }
    problems.sort_by_key(|p| p.line);
    Ok((items, problems))
}

type RawItem = (
    usize,
    String,
    String,
    serde_json::Map<String, serde_json::Value>,
);

/// Lines of a file as text, 1-based; invalid UTF-8 lines are problems.
fn text_lines<'a>(bytes: &'a [u8], problems: &mut Vec<Problem>) -> Vec<(usize, &'a str)> {
    let mut lines = Vec::new();
    for (i, raw) in bytes.split(|&b| b == b'\n').enumerate() {
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        match std::str::from_utf8(raw) {
            Ok(text) => lines.push((i + 1, text)),
            Err(err) => problems.push(Problem {
                line: i + 1,
                message: format!(
                    "not UTF-8 text (bad byte at column {}); save the file as UTF-8",
                    err.valid_up_to() + 1
                ),
            }),
        }
    }
    lines
}

fn read_jsonl(bytes: &[u8], problems: &mut Vec<Problem>) -> Vec<RawItem> {
    let mut items = Vec::new();
    for (line, text) in text_lines(bytes, problems) {
        let text = text.trim_start_matches('\u{feff}');
        if text.trim().is_empty() {
            continue;
        }
        let value: serde_json::Value = match serde_json::from_str(text) {
            Ok(value) => value,
            Err(err) => {
                problems.push(Problem {
                    line,
                    message: format!("not JSON: {err}"),
                });
                continue;
            }
        };
        let serde_json::Value::Object(mut fields) = value else {
            problems.push(Problem {
                line,
                message: "not a JSON object; write {\"id\": …, \"prompt\": …}".into(),
            });
            continue;
        };
        let id = match fields.remove("id") {
            Some(serde_json::Value::String(s)) => s,
            Some(serde_json::Value::Number(n)) => n.to_string(),
            Some(_) => {
                problems.push(Problem {
                    line,
                    message: "\"id\" must be a string or a number".into(),
                });
                continue;
            }
            None => {
                problems.push(Problem {
                    line,
                    message: "no \"id\" field".into(),
                });
                continue;
            }
        };
        let prompt = match fields.remove("prompt") {
            Some(serde_json::Value::String(s)) => s,
            Some(_) => {
                problems.push(Problem {
                    line,
                    message: "\"prompt\" must be a string".into(),
                });
                continue;
            }
            None => {
                problems.push(Problem {
                    line,
                    message: "no \"prompt\" field".into(),
                });
                continue;
            }
        };
        items.push((line, id, prompt, fields));
    }
    items
}

fn read_text(bytes: &[u8], problems: &mut Vec<Problem>) -> Vec<RawItem> {
    text_lines(bytes, problems)
        .into_iter()
        .filter(|(_, text)| !text.trim().is_empty())
        .map(|(line, text)| {
            let text = text.trim_start_matches('\u{feff}');
            (
                line,
                line.to_string(),
                text.to_string(),
                serde_json::Map::new(),
            )
        })
        .collect()
}

fn read_csv(
    path: &Path,
    bytes: &[u8],
    options: &InputOptions,
    problems: &mut Vec<Problem>,
) -> Result<Vec<RawItem>, BatchError> {
    let bytes = bytes.strip_prefix("\u{feff}".as_bytes()).unwrap_or(bytes);
    let mut reader = csv::ReaderBuilder::new().flexible(true).from_reader(bytes);
    let headers = reader.byte_headers().map_err(|e| BatchError::Input {
        path: path.to_path_buf(),
        message: format!("cannot read the header line: {e}"),
    })?;
    let headers: Vec<String> = headers
        .iter()
        .map(|h| String::from_utf8_lossy(h).trim().to_string())
        .collect();
    let column = |name: &str, flag: &str| {
        headers
            .iter()
            .position(|h| h == name)
            .ok_or_else(|| BatchError::Input {
                path: path.to_path_buf(),
                message: format!(
                    "no column {name:?} (the columns are {}); choose one with {flag}",
                    headers
                        .iter()
                        .map(|h| format!("{h:?}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            })
    };
    let id_at = column(&options.id_column, "--id-column")?;
    let prompt_at = column(&options.prompt_column, "--prompt-column or --level")?;
    let mut items = Vec::new();
    for record in reader.byte_records() {
        let record = match record {
            Ok(record) => record,
            Err(err) => {
                let line = err.position().map_or(0, |p| p.line() as usize);
                problems.push(Problem {
                    line,
                    message: format!("not valid CSV: {err}"),
                });
                continue;
            }
        };
        let line = record.position().map_or(0, |p| p.line() as usize);
        let field = |at: usize| record.get(at).map(std::str::from_utf8);
        match (field(id_at), field(prompt_at)) {
            (Some(Ok(id)), Some(Ok(prompt))) => {
                let mut extra = serde_json::Map::new();
                extra.insert("column".into(), options.prompt_column.clone().into());
                items.push((line, id.to_string(), prompt.to_string(), extra));
            }
            (None, _) | (_, None) => problems.push(Problem {
                line,
                message: format!(
                    "the row has {} fields, too few for the id and prompt columns",
                    record.len()
                ),
            }),
            _ => problems.push(Problem {
                line,
                message: "not UTF-8 text; save the file as UTF-8".into(),
            }),
        }
    }
    Ok(items)
}

/// A folder name for an id: letters, digits, '.', '_' and '-' kept, anything
/// else replaced by '_'. When anything was replaced, the name would start with
/// a dot, or it is long, a hash of the id is appended, so different ids never
/// share a folder ("0000/0001" → "0000_0001-3f2a9c1e").
pub fn safe_dir_name(id: &str) -> String {
    let mut name: String = id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let changed = name != id || name.starts_with('.') || name.len() > MAX_DIR_NAME;
    if changed {
        name = name
            .trim_start_matches('.')
            .chars()
            .take(MAX_DIR_NAME - 9)
            .collect();
        name = format!("{name}-{:08x}", stable_hash(id) as u32);
    }
    name
}

/// FNV-1a: the same on every machine and release, unlike std's hasher.
fn stable_hash(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// `K/N` → (K, N).
pub fn parse_shard(text: &str) -> Result<(u32, u32), BatchError> {
    let bad = || BatchError::Shard(text.to_string());
    let (k, n) = text.split_once('/').ok_or_else(bad)?;
    let k: u32 = k.trim().parse().map_err(|_| bad())?;
    let n: u32 = n.trim().parse().map_err(|_| bad())?;
    if n == 0 || k >= n {
        return Err(bad());
    }
    Ok((k, n))
}

/// Shard `k` of `n`: the items ranked by a hash of their id, every n-th from
/// the k-th. The same ids give the same shards in any input order, and shard
/// sizes differ by at most one.
pub fn shard(mut items: Vec<Item>, k: u32, n: u32) -> Vec<Item> {
    items.sort_by(|a, b| (stable_hash(&a.id), &a.id).cmp(&(stable_hash(&b.id), &b.id)));
    let mut mine: Vec<Item> = items
        .into_iter()
        .enumerate()
        .filter(|(rank, _)| *rank as u64 % u64::from(n) == u64::from(k))
        .map(|(_, item)| item)
        .collect();
    mine.sort_by_key(|item| item.line);
    mine
}

/// The results log of a shard (or of the whole batch when `shard` is `None`).
pub fn results_file(shard: Option<(u32, u32)>) -> String {
    match shard {
        None => RESULTS_FILE.to_string(),
        Some((k, n)) => format!("results.shard-{k}-of-{n}.jsonl"),
    }
}

/// Every results log in an output folder.
fn result_logs(out: &Path) -> Result<Vec<PathBuf>, BatchError> {
    let entries = match std::fs::read_dir(out) {
        Ok(entries) => entries,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(BatchError::Output {
                path: out.to_path_buf(),
                source,
            })
        }
    };
    let mut logs: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("results") && n.ends_with(".jsonl"))
        })
        .collect();
    logs.sort();
    Ok(logs)
}

/// One finished item, as a line of the results log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResultRecord {
    pub id: String,
    /// The input line it came from.
    pub line: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<String>,
    #[serde(flatten)]
    pub summary: RunSummary,
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// Reads every record of every results log. A last line cut short (a crash
/// mid-write on a full disk) is ignored: its item was never finished.
pub fn read_results(out: &Path) -> Result<Vec<ResultRecord>, BatchError> {
    let mut records = Vec::new();
    for path in result_logs(out)? {
        let file = std::fs::File::open(&path).map_err(|source| BatchError::Output {
            path: path.clone(),
            source,
        })?;
        let mut lines = std::io::BufReader::new(file)
            .split(b'\n')
            .enumerate()
            .peekable();
        while let Some((i, line)) = lines.next() {
            let line = line.map_err(|source| BatchError::Output {
                path: path.clone(),
                source,
            })?;
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            match serde_json::from_slice::<ResultRecord>(&line) {
                Ok(record) => records.push(record),
                Err(_) if lines.peek().is_none() => {
                    tracing::warn!(file = %path.display(), line = i + 1, "ignoring a torn last line");
                }
                Err(err) => {
                    return Err(BatchError::Results {
                        path: path.clone(),
                        line: i + 1,
                        message: err.to_string(),
                    })
                }
            }
        }
    }
    Ok(records)
}

/// Ids recorded as finished in any results log of `out`.
pub fn finished_ids(out: &Path) -> Result<HashSet<String>, BatchError> {
    Ok(read_results(out)?.into_iter().map(|r| r.id).collect())
}

/// The append-only results log of this process, held under a lock.
pub struct ResultsLog {
    path: PathBuf,
    file: std::fs::File,
    _lock: nix::fcntl::Flock<std::fs::File>,
}

impl ResultsLog {
    /// Opens (creating) this shard's log and takes its lock; a torn last line
    /// left by a crash is cut off first, so appends start on a fresh line.
    pub fn open(out: &Path, shard: Option<(u32, u32)>) -> Result<ResultsLog, BatchError> {
        let name = results_file(shard);
        let lock_path = out.join(format!(".{name}.lock"));
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| BatchError::Output { path, source }
        };
        let lock_file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io(&lock_path))?;
        let lock = nix::fcntl::Flock::lock(lock_file, nix::fcntl::FlockArg::LockExclusiveNonblock)
            .map_err(|_| BatchError::Locked {
                out: out.to_path_buf(),
                lock: lock_path.clone(),
            })?;
        let path = out.join(name);
        if let Ok(bytes) = std::fs::read(&path) {
            if !bytes.is_empty() && !bytes.ends_with(b"\n") {
                let keep = bytes
                    .iter()
                    .rposition(|&b| b == b'\n')
                    .map_or(0, |at| at + 1);
                tracing::warn!(file = %path.display(), "cutting off a torn last line left by an earlier crash");
                let file = std::fs::OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .map_err(io(&path))?;
                file.set_len(keep as u64).map_err(io(&path))?;
                file.sync_all().map_err(io(&path))?;
            }
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(io(&path))?;
        Ok(ResultsLog {
            path,
            file,
            _lock: lock,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one record as one line in one write, and syncs it to disk.
    pub fn append(&mut self, record: &ResultRecord) -> Result<(), BatchError> {
        let err = |source| BatchError::Output {
            path: self.path.clone(),
            source,
        };
        let mut line = serde_json::to_vec(record).map_err(|e| err(std::io::Error::other(e)))?;
        line.push(b'\n');
        self.file.write_all(&line).map_err(err)?;
        self.file.sync_data().map_err(err)
    }
}

/// What a batch run did.
#[derive(Debug, Default)]
pub struct BatchOutcome {
    /// Items recorded in the results log.
    pub finished: usize,
    /// Finished items that produced no model.
    pub failed: usize,
    /// Items cut short by the LLM endpoint or cadloop (not recorded; a rerun does them).
    pub errored: usize,
    /// Items never started (stopped early).
    pub skipped: usize,
    /// Why the batch stopped before the end, if it did.
    pub stopped: Option<String>,
}

/// How the runner reports progress.
pub struct Progress {
    pub bar: ProgressBar,
    /// Log a status line this often (when no bar is shown).
    pub log_every: Option<Duration>,
}

/// Stop taking new items after this many items in a row ended with an LLM
/// endpoint error (at least this many, or twice the jobs).
const ENDPOINT_FAILURES_TO_STOP: usize = 4;

/// Runs `items`, `jobs` at a time. `stop` is raised (by Ctrl-C) to take no
/// new items; in-flight ones finish within `grace`, then the engine's
/// interrupt stops them (each records that it stopped; none is logged as
/// finished, so a rerun does them).
#[allow(clippy::too_many_arguments)]
pub async fn run(
    engine: Arc<Engine>,
    items: Vec<Item>,
    out: &Path,
    settings: RunSettings,
    jobs: usize,
    mut log: ResultsLog,
    shard: Option<(u32, u32)>,
    progress: Progress,
    stop: Arc<AtomicBool>,
    grace: Duration,
) -> Result<BatchOutcome, BatchError> {
    let total = items.len();
    let slots = Arc::new(Semaphore::new(jobs.max(1)));
    let in_flight = Arc::new(AtomicUsize::new(0));
    let mut outcome = BatchOutcome::default();
    let mut running: JoinSet<(Item, Result<crate::pipeline::RunResult, PipelineError>)> =
        JoinSet::new();
    let mut queue = items.into_iter();
    let started = Instant::now();
    let mut last_log = Instant::now();
    let mut endpoint_failures = 0usize;
    let endpoint_limit = ENDPOINT_FAILURES_TO_STOP.max(2 * jobs);
    let shard_name = shard.map(|(k, n)| format!("{k}/{n}"));
    progress.bar.set_length(total as u64);
    let mut stop_deadline: Option<tokio::time::Instant> = None;
    loop {
        // Fill free slots unless told to stop.
        while !stop.load(Ordering::SeqCst) && outcome.stopped.is_none() {
            let Ok(permit) = slots.clone().try_acquire_owned() else {
                break;
            };
            let Some(item) = queue.next() else { break };
            let dir = out.join(ITEMS_DIR).join(&item.dir_name);
            // A folder left by an unfinished earlier run is started afresh.
            if dir.exists() {
                std::fs::remove_dir_all(&dir).map_err(|source| BatchError::Output {
                    path: dir.clone(),
                    source,
                })?;
            }
            std::fs::create_dir_all(&dir).map_err(|source| BatchError::Output {
                path: dir.clone(),
                source,
            })?;
            let engine = engine.clone();
            let settings = settings.clone();
            let in_flight = in_flight.clone();
            in_flight.fetch_add(1, Ordering::SeqCst);
            let span = tracing::info_span!("item", id = %item.id);
            running.spawn(
                async move {
                    let result = engine
                        .run(&item.prompt, &dir, settings, &ProgressBar::hidden())
                        .await;
                    in_flight.fetch_sub(1, Ordering::SeqCst);
                    drop(permit);
                    (item, result)
                }
                .instrument(span),
            );
        }
        if stop.load(Ordering::SeqCst) && stop_deadline.is_none() {
            stop_deadline = Some(tokio::time::Instant::now() + grace);
            outcome
                .stopped
                .get_or_insert_with(|| Cause::Sigint.describe().into());
            if !running.is_empty() {
                tracing::warn!(
                    in_flight = running.len(),
                    grace_secs = grace.as_secs(),
                    "stopping: no new items; waiting for the ones in flight"
                );
            }
        }
        if running.is_empty() {
            break;
        }
        let tick = tokio::time::sleep(Duration::from_millis(500));
        let deadline = async {
            match stop_deadline {
                // Once the interrupt is raised the items stop by themselves.
                Some(at) if engine.interrupt().raised().is_none() => {
                    tokio::time::sleep_until(at).await
                }
                _ => std::future::pending().await,
            }
        };
        tokio::select! {
            joined = running.join_next() => {
                let Some(joined) = joined else { continue };
                let (item, result) = match joined {
                    Ok(pair) => pair,
                    Err(err) => {
                        tracing::error!("an item's task failed: {err}");
                        outcome.errored += 1;
                        continue;
                    }
                };
                match result {
                    // Stopped by a signal: unfinished, so a rerun does it afresh.
                    Ok(result) if result.interrupted.is_some() => {
                        tracing::warn!(id = %item.id, "stopped before it finished; a rerun does it");
                    }
                    Ok(result) if result.llm_error.is_none() => {
                        endpoint_failures = 0;
                        let summary = RunSummary::of(&Path::new(ITEMS_DIR).join(&item.dir_name), &result.record);
                        let failed = !result.record.outcome.has_model();
                        log.append(&ResultRecord {
                            id: item.id.clone(),
                            line: item.line,
                            shard: shard_name.clone(),
                            summary,
                            extra: item.extra.clone(),
                        })?;
                        outcome.finished += 1;
                        outcome.failed += usize::from(failed);
                        progress.bar.inc(1);
                    }
                    Ok(result) => {
                        endpoint_failures += 1;
                        outcome.errored += 1;
                        let message = result.record.error.unwrap_or_default();
                        tracing::error!(id = %item.id, "the LLM endpoint failed; the item stays unfinished: {message}");
                        if endpoint_failures >= endpoint_limit && outcome.stopped.is_none() {
                            outcome.stopped = Some(format!(
                                "{endpoint_failures} items in a row failed at the LLM endpoint (last: {message})"
                            ));
                        }
                        progress.bar.inc(1);
                    }
                    Err(err) => {
                        outcome.errored += 1;
                        tracing::error!(id = %item.id, "cadloop failed on this item; it stays unfinished: {:#}", anyhow::Error::from(err));
                        progress.bar.inc(1);
                    }
                }
            }
            _ = tick => {}
            _ = deadline => {
                tracing::warn!(in_flight = running.len(), "grace period over; stopping the items in flight (a rerun does them)");
                engine.interrupt().raise(Cause::GraceOver);
            }
        }
        let done = outcome.finished + outcome.errored;
        progress.bar.set_message(format!(
            "{} failed · {} in flight",
            outcome.failed + outcome.errored,
            in_flight.load(Ordering::SeqCst)
        ));
        if let Some(every) = progress.log_every {
            if last_log.elapsed() >= every {
                last_log = Instant::now();
                let rate = done as f64 / started.elapsed().as_secs_f64().max(1e-3);
                let eta = if rate > 0.0 {
                    (total - done) as f64 / rate
                } else {
                    f64::NAN
                };
                tracing::info!(
                    "batch: {done}/{total} done, {} failed, {} in flight, {rate:.2} items/s, ETA {eta:.0} s",
                    outcome.failed + outcome.errored,
                    in_flight.load(Ordering::SeqCst)
                );
            }
        }
    }
    if let Some(cause) = engine.interrupt().raised() {
        outcome.stopped = Some(cause.describe().into());
    }
    outcome.skipped = total - outcome.finished - outcome.errored;
    Ok(outcome)
}

/// Totals over every shard's results.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    pub items: usize,
    pub with_model: usize,
    pub success_rate: f64,
    pub outcomes: std::collections::BTreeMap<String, usize>,
    pub mean_attempts: f64,
    pub mean_repairs: f64,
    pub mean_refines: f64,
    pub total_tokens: u64,
    pub mean_tokens: f64,
    pub total_seconds: f64,
    pub mean_seconds: f64,
    /// Records of an id seen in more than one log (the first is counted).
    pub duplicates: usize,
    pub logs: Vec<String>,
}

/// Merges every results log in `out`.
/// `index.html` of a batch folder: one row per id (the first record of an
/// id counts, as in [`summarize`]), linking to the item's report.
pub fn index(out: &Path, summary: &Summary) -> Result<html::Index, BatchError> {
    let mut seen = HashSet::new();
    let rows = read_results(out)?
        .into_iter()
        .filter(|r| seen.insert(r.id.clone()))
        .map(|r| {
            let relative = r.summary.out.to_string_lossy().into_owned();
            let prompt = crate::report::read_run(&out.join(&relative))
                .map(|record| record.prompt)
                .unwrap_or_default();
            html::IndexRow::for_run(
                out,
                &relative,
                &r.id,
                &prompt,
                &r.summary.outcome,
                r.summary.attempts,
            )
        })
        .collect();
    Ok(html::Index {
        kind: "cadloop batch".into(),
        title: out
            .file_name()
            .map_or("batch".into(), |n| n.to_string_lossy().into_owned()),
        summary: vec![
            format!(
                "{} items, {:.1} % with a model ({}); {}",
                summary.items,
                summary.success_rate * 100.0,
                summary.with_model,
                summary
                    .outcomes
                    .iter()
                    .map(|(k, v)| format!("{k} {v}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            format!(
                "per item {:.2} attempts, {:.0} tokens, {:.1} s · from {}",
                summary.mean_attempts,
                summary.mean_tokens,
                summary.mean_seconds,
                summary.logs.join(", ")
            ),
        ],
        metrics: Vec::new(),
        rows,
    })
}

pub fn summarize(out: &Path) -> Result<Summary, BatchError> {
    let logs = result_logs(out)?;
    let records = read_results(out)?;
    let mut seen = HashSet::new();
    let mut duplicates = 0;
    let unique: Vec<&ResultRecord> = records
        .iter()
        .filter(|r| {
            let new = seen.insert(r.id.clone());
            duplicates += usize::from(!new);
            new
        })
        .collect();
    let n = unique.len();
    let mean = |f: &dyn Fn(&ResultRecord) -> f64| {
        if n == 0 {
            0.0
        } else {
            unique.iter().map(|r| f(r)).sum::<f64>() / n as f64
        }
    };
    let mut outcomes = std::collections::BTreeMap::new();
    for r in &unique {
        *outcomes.entry(r.summary.outcome.clone()).or_insert(0) += 1;
    }
    let with_model = unique
        .iter()
        .filter(|r| r.summary.outcome != "failed")
        .count();
    let total_tokens: u64 = unique.iter().map(|r| r.summary.tokens.total_tokens).sum();
    let total_seconds: f64 = unique.iter().map(|r| r.summary.seconds).sum();
    Ok(Summary {
        items: n,
        with_model,
        success_rate: if n == 0 {
            0.0
        } else {
            with_model as f64 / n as f64
        },
        outcomes,
        mean_attempts: mean(&|r| r.summary.attempts as f64),
        mean_repairs: mean(&|r| r.summary.repairs as f64),
        mean_refines: mean(&|r| r.summary.refines as f64),
        total_tokens,
        mean_tokens: mean(&|r| r.summary.tokens.total_tokens as f64),
        total_seconds,
        mean_seconds: mean(&|r| r.summary.seconds),
        duplicates,
        logs: logs
            .iter()
            .map(|p| {
                p.file_name()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items_of(format: InputFormat, text: &[u8]) -> (Vec<Item>, Vec<Problem>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("input");
        std::fs::write(&path, text).unwrap();
        read_items(
            &path,
            &InputOptions {
                format,
                id_column: "uid".into(),
                prompt_column: "expert".into(),
            },
        )
        .unwrap()
    }

    #[test]
    fn jsonl_lines_are_read_and_malformed_ones_reported_with_their_numbers() {
        let mut text = b"{\"id\": \"a\", \"prompt\": \"a cube\", \"level\": 2}\n\n\
            {\"id\": 7, \"prompt\": \"a ball\"}\n\
            not json\n\
            {\"prompt\": \"no id\"}\n\
            {\"id\": \"b\", \"prompt\": \"  \"}\n\
            {\"id\": \"a\", \"prompt\": \"again\"}\n\
            [1, 2]\n"
            .to_vec();
        text.extend_from_slice(b"{\"id\": \"c\", \"prompt\": \"caf\xe9\"}\n");
        let (items, problems) = items_of(InputFormat::Jsonl, &text);
        let ids: Vec<&str> = items.iter().map(|i| i.id.as_str()).collect();
        assert_eq!(ids, ["a", "7"]);
        assert_eq!(items[0].extra["level"], 2);
        assert_eq!(items[1].line, 3);
        let lines: Vec<usize> = problems.iter().map(|p| p.line).collect();
        assert_eq!(lines, [4, 5, 6, 7, 8, 9], "{problems:?}");
        let text: Vec<String> = problems.iter().map(ToString::to_string).collect();
        assert!(text[0].starts_with("line 4: not JSON"), "{text:?}");
        assert!(text[1].contains("no \"id\""), "{text:?}");
        assert!(text[2].contains("empty"), "{text:?}");
        assert!(text[3].contains("already used on line 1"), "{text:?}");
        assert!(text[4].contains("not a JSON object"), "{text:?}");
        assert!(text[5].contains("not UTF-8"), "{text:?}");
    }

    #[test]
    fn csv_uses_text2cad_columns_and_names_the_columns_when_one_is_missing() {
        let text = b"uid,abstract,beginner,intermediate,expert\n\
            0000/00001234,a plate,a flat plate,\"a plate, 2 holes\",\"Create a plate 40 mm wide, with two 4 mm holes\"\n\
            0000/00005678,a ring,a ring,a ring,\n";
        let (items, problems) = items_of(InputFormat::Csv, text);
        assert_eq!(items.len(), 1);
        assert_eq!(items[0].id, "0000/00001234");
        assert_eq!(
            items[0].prompt,
            "Create a plate 40 mm wide, with two 4 mm holes"
        );
        assert_eq!(items[0].line, 2);
        assert!(
            items[0].dir_name.starts_with("0000_00001234-"),
            "{}",
            items[0].dir_name
        );
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].line, 3);

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.csv");
        std::fs::write(&path, text).unwrap();
        let err = read_items(
            &path,
            &InputOptions {
                format: InputFormat::Csv,
                id_column: "uid".into(),
                prompt_column: "advanced".into(),
            },
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("no column \"advanced\""), "{err}");
        assert!(err.contains("\"expert\""), "{err}");
    }

    #[test]
    fn plain_text_ids_are_line_numbers() {
        let (items, problems) = items_of(InputFormat::Text, b"a cube\n\n  a ball  \n");
        assert!(problems.is_empty());
        assert_eq!(
            items
                .iter()
                .map(|i| (i.id.as_str(), i.prompt.as_str()))
                .collect::<Vec<_>>(),
            [("1", "a cube"), ("3", "a ball")]
        );
    }

    #[test]
    fn ids_become_safe_distinct_folder_names() {
        assert_eq!(safe_dir_name("part-7_b.v2"), "part-7_b.v2");
        for id in [
            "../../etc",
            "a/b",
            "a b",
            ".hidden",
            "..",
            "x\0y",
            &"long".repeat(40),
        ] {
            let name = safe_dir_name(id);
            assert!(
                !name.contains('/') && !name.starts_with('.') && !name.is_empty(),
                "{id:?} → {name}"
            );
            assert!(name.len() <= MAX_DIR_NAME, "{name}");
            assert!(
                name.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c)),
                "{name}"
            );
        }
        assert_ne!(safe_dir_name("a/b"), safe_dir_name("a b"));
        assert_ne!(safe_dir_name("a/b"), safe_dir_name("a_b"));
    }

    #[test]
    fn shards_cover_every_item_once_are_balanced_and_ignore_input_order() {
        let items: Vec<Item> = (0..103)
            .map(|i| Item {
                id: format!("id{i}"),
                dir_name: format!("id{i}"),
                prompt: "p".into(),
                line: i + 1,
                extra: Default::default(),
            })
            .collect();
        let mut reversed = items.clone();
        reversed.reverse();
        let mut all = Vec::new();
        for k in 0..4 {
            let part: Vec<String> = shard(items.clone(), k, 4)
                .into_iter()
                .map(|i| i.id)
                .collect();
            let again: Vec<String> = shard(reversed.clone(), k, 4)
                .into_iter()
                .map(|i| i.id)
                .collect();
            let mut a = part.clone();
            let mut b = again;
            a.sort();
            b.sort();
            assert_eq!(a, b);
            assert!((25..=26).contains(&part.len()), "{}", part.len());
            all.extend(part);
        }
        all.sort();
        let mut expected: Vec<String> = items.into_iter().map(|i| i.id).collect();
        expected.sort();
        assert_eq!(all, expected);
        assert_eq!(parse_shard("3/8").unwrap(), (3, 8));
        for bad in ["8/8", "1", "a/2", "0/0"] {
            assert!(parse_shard(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_torn_last_line_is_cut_off_and_never_counted() {
        let dir = tempfile::tempdir().unwrap();
        let record = |id: &str| {
            ResultRecord {
            id: id.into(),
            line: 1,
            shard: None,
            summary: serde_json::from_value(serde_json::json!({
                "out": "items/x", "outcome": "match", "stop_reason": "", "attempts": 1, "repairs": 0,
                "refines": 0, "final_attempt": 1, "verdict": "match", "files": [], "seconds": 1.0,
                "llm_calls": 2, "tokens": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}
            }))
            .unwrap(),
            extra: Default::default(),
        }
        };
        {
            let mut log = ResultsLog::open(dir.path(), None).unwrap();
            log.append(&record("a")).unwrap();
            assert!(
                ResultsLog::open(dir.path(), None).is_err(),
                "the lock holds"
            );
        }
        let path = dir.path().join(RESULTS_FILE);
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        file.write_all(b"{\"id\": \"b\", \"outc").unwrap();
        assert_eq!(
            finished_ids(dir.path()).unwrap(),
            HashSet::from(["a".to_string()])
        );
        let mut log = ResultsLog::open(dir.path(), None).unwrap();
        log.append(&record("c")).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 2, "{text}");
        let summary = summarize(dir.path()).unwrap();
        assert_eq!(
            (summary.items, summary.with_model, summary.total_tokens),
            (2, 2, 4)
        );
    }
}
