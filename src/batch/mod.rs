//! Many prompts through the loop: JSONL, CSV (Text2CAD's annotations) or a
//! plain list in; bounded concurrency over one shared engine; a results log
//! that makes runs resumable and shardable.
//!
//! Stage in the flow: on top of `pipeline`. `commands::batch` reads the input
//! with [`read_items`], keeps its shard ([`shard`]) minus what earlier runs
//! finished ([`finished_ids`]), and hands the rest to [`run`], which runs
//! `--jobs` items at a time on one [`Engine`](crate::pipeline::Engine) (one FreeCAD pool, one
//! captioner) and appends a [`ResultRecord`] per finished item.
//!
//! The results log is the only record of what is finished: one JSON line per
//! item, written with a single `write` on an `O_APPEND` file and synced before
//! the item counts as done. An item is finished when its loop reached one of
//! its own stop rules (whatever the outcome); an item cut short by the LLM
//! endpoint or by cadloop itself is left unrecorded, so a rerun does it again.
//! Each shard has its own log (`results.jsonl`, or `results.shard-K-of-N.jsonl`)
//! and its own lock, so shards on many machines can share one output folder.
//!
//! - `input`: the input files (JSONL, CSV, text), ids and their folder names, shards.
//! - `log`: the results logs: append under a lock, read back, what is finished.
//! - `runner`: `--jobs` items at a time on one engine, draining on Ctrl-C.
//! - `summary`: totals over every shard's log, and the folder's `index.html`.

mod input;
mod log;
mod runner;
mod summary;

use std::path::PathBuf;

pub use input::{
    parse_shard, read_items, safe_dir_name, shard, InputFormat, InputOptions, Item, Problem,
};
pub use log::{finished_ids, read_results, results_file, ResultRecord, ResultsLog};
pub use runner::{run, Batch, BatchOutcome, Progress, DEFAULT_GRACE};
pub use summary::{checks_line, index, summarize, Summary};

/// The results log of a whole (unsharded) batch.
pub const RESULTS_FILE: &str = "results.jsonl";
/// Each item's run folder is `items/<safe id>`.
pub const ITEMS_DIR: &str = "items";

/// A batch could not start or go on (not an item's failure: those are logged).
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
    #[error(transparent)]
    Run(#[from] crate::run::RunDirError),
    #[error("{}: line {line} is not a result record (remove the line, or the file, to redo those items)", path.display())]
    Results {
        path: PathBuf,
        line: usize,
        #[source]
        source: serde_json::Error,
    },
}
