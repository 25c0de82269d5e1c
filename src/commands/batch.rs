//! `cadloop batch INPUT --out DIR` and `cadloop batch summary DIR`.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};

use crate::batch::{self, InputFormat, InputOptions, ResultsLog};
use crate::cli::{BatchAction, BatchArgs, BatchFormat, GlobalArgs};
use crate::interrupt::{Cause, Interrupt};
use crate::progress;
use crate::report::index;

use super::settings::{LoopSettings, Settings};
use super::ExitStatus;

/// `cadloop batch INPUT --out DIR` and `cadloop batch summary DIR`.
pub async fn batch(global: &GlobalArgs, args: &BatchArgs) -> anyhow::Result<ExitStatus> {
    if let Some(BatchAction::Summary { dir, json }) = &args.action {
        return batch_summary(dir, *json);
    }
    let (Some(input), Some(out)) = (&args.input, &args.out) else {
        bail!("give the INPUT file and --out DIR");
    };
    let settings = Settings::read(global)?;
    let run = BatchRun::new(
        out,
        args.shard.as_deref(),
        args.jobs,
        args.grace
            .map_or(crate::batch::DEFAULT_GRACE, Duration::from_secs),
        global.quiet,
    )?;
    let format = match args.format {
        Some(BatchFormat::Jsonl) => InputFormat::Jsonl,
        Some(BatchFormat::Csv) => InputFormat::Csv,
        Some(BatchFormat::Text) => InputFormat::Text,
        None => InputFormat::of(input),
    };
    let options = InputOptions {
        format,
        id_column: args.id_column.clone(),
        prompt_column: args
            .prompt_column
            .clone()
            .unwrap_or_else(|| args.level.column().to_string()),
    };
    let (items, problems) = batch::read_items(input, &options)?;
    if !problems.is_empty() {
        if args.strict {
            return Err(batch::BatchError::Strict {
                path: input.clone(),
                count: problems.len(),
                list: problems
                    .iter()
                    .map(|p| format!("  {p}"))
                    .collect::<Vec<_>>()
                    .join("\n"),
            }
            .into());
        }
        for problem in &problems {
            tracing::warn!("{}: {problem}; skipped", input.display());
        }
    }
    if items.is_empty() {
        bail!("{} holds no usable prompt", input.display());
    }
    let read = items.len();
    let setup = settings.run_loop(&args.llm, &args.budget, &args.limits, None)?;
    tracing::info!(read, skipped_lines = problems.len(), "batch input");
    let (outcome, interrupted, log_path) = match run.go(setup, items).await? {
        Some(done) => done,
        None => return Ok(ExitStatus::Success),
    };
    write_batch_index(out)?;
    println!(
        "batch: {} finished ({} without a model), {} cut short, {} not started → {}",
        outcome.finished,
        outcome.failed,
        outcome.errored,
        outcome.skipped,
        log_path.display()
    );
    Ok(batch_exit(&outcome, interrupted))
}

/// 130/143 when a signal stopped the batch (even if the items in flight
/// finished), else 2 when items were cut short or the batch stopped early.
pub(super) fn batch_exit(outcome: &batch::BatchOutcome, interrupted: Option<Cause>) -> ExitStatus {
    if let Some(reason) = &outcome.stopped {
        eprintln!("stopped early: {reason}; rerun the same command to go on");
    }
    if let Some(cause) = interrupted {
        ExitStatus::Interrupted(cause)
    } else if outcome.errored > 0 || outcome.stopped.is_some() {
        ExitStatus::Error
    } else {
        ExitStatus::Success
    }
}

/// Where and how a batch runs: shared by `batch` and `bench`.
pub(super) struct BatchRun {
    out: PathBuf,
    shard: Option<(u32, u32)>,
    jobs: usize,
    grace: Duration,
    quiet: bool,
}

impl BatchRun {
    /// Checks `--shard K/N` and `--jobs` (default 4).
    pub(super) fn new(
        out: &Path,
        shard: Option<&str>,
        jobs: Option<usize>,
        grace: Duration,
        quiet: bool,
    ) -> anyhow::Result<BatchRun> {
        let shard = shard.map(batch::parse_shard).transpose()?;
        let jobs = jobs.unwrap_or(4);
        if !(1..=256).contains(&jobs) {
            bail!("--jobs {jobs} is out of range; use 1 to 256");
        }
        Ok(BatchRun {
            out: out.to_path_buf(),
            shard,
            jobs,
            grace,
            quiet,
        })
    }

    /// Runs this shard's unfinished items. `None` when none was left to do.
    pub(super) async fn go(
        &self,
        setup: LoopSettings,
        items: Vec<batch::Item>,
    ) -> anyhow::Result<Option<(batch::BatchOutcome, Option<Cause>, PathBuf)>> {
        let mine = match self.shard {
            Some((k, n)) => batch::shard(items, k, n),
            None => items,
        };
        std::fs::create_dir_all(&self.out)
            .with_context(|| format!("cannot create the folder {}", self.out.display()))?;
        let out = self.out.canonicalize()?;
        let log = ResultsLog::open(&out, self.shard)?;
        let finished = batch::finished_ids(&out)?;
        let in_shard = mine.len();
        let todo: Vec<batch::Item> = mine
            .into_iter()
            .filter(|i| !finished.contains(&i.id))
            .collect();
        tracing::info!(
            in_shard,
            already_finished = in_shard - todo.len(),
            to_do = todo.len(),
            "batch items"
        );
        if todo.is_empty() {
            println!(
                "nothing to do: all {in_shard} items are finished in {}",
                out.display()
            );
            return Ok(None);
        }
        let interrupt = Interrupt::on_signals_draining()?;
        let (engine, settings) = setup.start(interrupt.clone()).await?;
        let engine = Arc::new(engine);
        let bar = progress::counter(todo.len() as u64, !self.quiet);
        let progress = batch::Progress {
            log_every: bar.is_none().then_some(Duration::from_secs(30)),
            bar: bar.clone().unwrap_or_else(indicatif::ProgressBar::hidden),
        };
        let log_path = log.path().to_path_buf();
        let run = batch::Batch {
            engine: engine.clone(),
            out: &out,
            settings,
            jobs: self.jobs,
            shard: self.shard,
            grace: self.grace,
        };
        let outcome = batch::run(run, todo, log, progress).await;
        if let Some(bar) = &bar {
            progress::finish(bar);
        }
        engine.shutdown().await;
        // The first Ctrl-C only drains; a second one, SIGTERM or the grace
        // period's end raise the interrupt with their own cause.
        let interrupted = match (interrupt.raised(), interrupt.draining()) {
            (Some(cause), _) => Some(cause),
            (None, true) => Some(Cause::Sigint),
            (None, false) => None,
        };
        Ok(Some((outcome?, interrupted, log_path)))
    }
}

/// Rewrites OUT/index.html from every results log there.
fn write_batch_index(out: &Path) -> anyhow::Result<()> {
    let summary = batch::summarize(out)?;
    let index = batch::index(out, &summary)?;
    index::write_index(out, &index)
        .with_context(|| format!("cannot write {}", out.join(index::INDEX_FILE).display()))
}

fn batch_summary(dir: &Path, json: bool) -> anyhow::Result<ExitStatus> {
    if !dir.is_dir() {
        bail!("{} is not a batch output folder", dir.display());
    }
    let summary = batch::summarize(dir)?;
    if summary.logs.is_empty() {
        bail!(
            "{} holds no results*.jsonl; is it a batch output folder?",
            dir.display()
        );
    }
    write_batch_index(dir)?;
    let mut stdout = std::io::stdout().lock();
    if json {
        serde_json::to_writer_pretty(&mut stdout, &summary)?;
        writeln!(stdout)?;
        return Ok(ExitStatus::Success);
    }
    writeln!(
        stdout,
        "{} items from {}",
        summary.items,
        summary.logs.join(", ")
    )?;
    writeln!(
        stdout,
        "  success     {:.1} % ({} with a model)",
        summary.success_rate * 100.0,
        summary.with_model
    )?;
    let outcomes: Vec<String> = summary
        .outcomes
        .iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect();
    writeln!(stdout, "  outcomes    {}", outcomes.join(", "))?;
    writeln!(
        stdout,
        "  checks      {}",
        crate::batch::checks_line(&summary)
    )?;
    writeln!(
        stdout,
        "  per item    {:.2} attempts, {:.2} repairs, {:.2} refines, {:.0} tokens, {:.1} s",
        summary.mean_attempts,
        summary.mean_repairs,
        summary.mean_refines,
        summary.mean_tokens,
        summary.mean_seconds
    )?;
    writeln!(
        stdout,
        "  in all      {} tokens, {:.1} s of item time",
        summary.total_tokens, summary.total_seconds
    )?;
    if summary.duplicates > 0 {
        writeln!(
            stdout,
            "  duplicates  {} records of ids already counted (ignored)",
            summary.duplicates
        )?;
    }
    Ok(ExitStatus::Success)
}
