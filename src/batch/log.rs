//! The results logs: one JSON line per finished item, appended under a
//! lock and synced; read back to know what is finished.

use std::collections::HashSet;
use std::io::BufRead;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::files::JsonLines;
use crate::report::RunSummary;

use super::{BatchError, RESULTS_FILE};
/// The results log of a shard (or of the whole batch when `shard` is `None`).
pub fn results_file(shard: Option<(u32, u32)>) -> String {
    match shard {
        None => RESULTS_FILE.to_string(),
        Some((k, n)) => format!("results.shard-{k}-of-{n}.jsonl"),
    }
}

/// Every results log in an output folder.
pub(super) fn result_logs(out: &Path) -> Result<Vec<PathBuf>, BatchError> {
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
                Err(source) => {
                    return Err(BatchError::Results {
                        path: path.clone(),
                        line: i + 1,
                        source,
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
    file: JsonLines,
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
        let file = JsonLines::open(&path).map_err(io(&path))?;
        Ok(ResultsLog {
            path,
            file,
            _lock: lock,
        })
    }

    /// The log file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one record as one line in one write, and syncs it to disk.
    pub fn append(&mut self, record: &ResultRecord) -> Result<(), BatchError> {
        self.file
            .append_durably(record)
            .map_err(|source| BatchError::Output {
                path: self.path.clone(),
                source,
            })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::io::Write as _;

    use super::*;
    use crate::batch::summarize;

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

    #[test]
    fn the_summary_gives_the_share_of_checks_passed_over_the_items_that_ran_them() {
        let dir = tempfile::tempdir().unwrap();
        let record = |id: &str, checks: serde_json::Value| {
            ResultRecord {
            id: id.into(),
            line: 1,
            shard: None,
            summary: serde_json::from_value(serde_json::json!({
                "out": format!("items/{id}"), "outcome": "mismatch", "stop_reason": "", "attempts": 1,
                "repairs": 0, "refines": 0, "final_attempt": 1, "verdict": null, "files": [],
                "seconds": 1.0, "llm_calls": 1, "tokens": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
                "checks": checks
            }))
            .unwrap(),
            extra: Default::default(),
        }
        };
        let mut log = ResultsLog::open(dir.path(), None).unwrap();
        log.append(&record("a", serde_json::json!({"passed": 2, "total": 2})))
            .unwrap();
        log.append(&record("b", serde_json::json!({"passed": 1, "total": 4})))
            .unwrap();
        log.append(&record("c", serde_json::Value::Null)).unwrap();
        drop(log);
        let summary = summarize(dir.path()).unwrap();
        assert_eq!((summary.with_checks, summary.all_checks_pass), (2, 1));
        assert_eq!(summary.checks_pass_rate, Some(0.625));
        assert_eq!(
            crate::batch::checks_line(&summary),
            "2 results ran checks: 62.5 % of checks passed, 1 passed all"
        );
    }
}
