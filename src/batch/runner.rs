//! Running the items: `--jobs` at a time on one shared engine. A drain
//! (the first Ctrl-C) takes no new items and gives those in flight the grace
//! period; then the engine's interrupt stops them, and each records that it
//! stopped (none is logged as finished, so a rerun does them).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use indicatif::ProgressBar;
use tokio::task::JoinSet;
use tracing::Instrument;

use crate::interrupt::Cause;
use crate::pipeline::{Engine, PipelineError, RunResult, Watch};
use crate::report::{RunSettings, RunSummary};
use crate::run::RunDir;

use super::{BatchError, Item, ResultRecord, ResultsLog, ITEMS_DIR};

/// How long items in flight may go on after the first Ctrl-C, unless
/// `--grace` says otherwise (batches and benchmarks alike).
pub const DEFAULT_GRACE: Duration = Duration::from_secs(120);

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

/// Where and how the items run.
pub struct Batch<'a> {
    pub engine: Arc<Engine>,
    /// The batch's output folder; items go to `items/<safe id>`.
    pub out: &'a Path,
    pub settings: RunSettings,
    /// Items at a time.
    pub jobs: usize,
    pub shard: Option<(u32, u32)>,
    /// How long items in flight may go on after a drain ([`DEFAULT_GRACE`]
    /// unless the user says).
    pub grace: Duration,
}

/// Stop taking new items after this many items in a row ended with an LLM
/// endpoint error (at least this many, or twice the jobs).
const ENDPOINT_FAILURES_TO_STOP: usize = 4;

/// Runs `items`, appending each finished one to `log`.
pub async fn run(
    batch: Batch<'_>,
    items: Vec<Item>,
    log: ResultsLog,
    progress: Progress,
) -> Result<BatchOutcome, BatchError> {
    progress.bar.set_length(items.len() as u64);
    let runner = Runner {
        total: items.len(),
        batch,
        log,
        progress,
        outcome: BatchOutcome::default(),
        running: JoinSet::new(),
        endpoint_failures: 0,
        started: Instant::now(),
        last_log: Instant::now(),
        grace_ends: None,
    };
    runner.go(items).await
}

type Ended = (Item, Result<RunResult, PipelineError>);
type Running = JoinSet<Ended>;

/// What ended a wait of the runner. Lives for one turn of the loop, so the
/// size of a finished run's result in it costs nothing worth boxing.
#[allow(clippy::large_enum_variant)]
enum Event {
    Ended(Option<Result<Ended, tokio::task::JoinError>>),
    GraceOver,
    /// A drain, or time for a progress line: look again.
    Other,
}

struct Runner<'a> {
    batch: Batch<'a>,
    log: ResultsLog,
    progress: Progress,
    total: usize,
    outcome: BatchOutcome,
    running: Running,
    /// LLM endpoint failures in a row.
    endpoint_failures: usize,
    started: Instant,
    last_log: Instant,
    /// Set when the drain is first seen.
    grace_ends: Option<tokio::time::Instant>,
}

impl Runner<'_> {
    async fn go(mut self, items: Vec<Item>) -> Result<BatchOutcome, BatchError> {
        let mut queue = items.into_iter();
        loop {
            self.fill(&mut queue)?;
            self.notice_drain();
            if self.running.is_empty() {
                break;
            }
            self.wait_for_next().await?;
            self.show_progress();
        }
        if let Some(cause) = self.batch.engine.interrupt().raised() {
            self.outcome.stopped = Some(cause.describe().into());
        }
        self.outcome.skipped = self.total - self.outcome.finished - self.outcome.errored;
        Ok(self.outcome)
    }

    /// Starts items while slots are free, unless draining or stopped early.
    fn fill(&mut self, queue: &mut impl Iterator<Item = Item>) -> Result<(), BatchError> {
        while self.running.len() < self.batch.jobs.max(1)
            && !self.batch.engine.interrupt().draining()
            && self.outcome.stopped.is_none()
        {
            let Some(item) = queue.next() else { break };
            self.start(item)?;
        }
        Ok(())
    }

    fn start(&mut self, item: Item) -> Result<(), BatchError> {
        let dir = self.batch.out.join(ITEMS_DIR).join(&item.dir_name);
        let output = |source| BatchError::Output {
            path: dir.clone(),
            source,
        };
        // A folder left by an unfinished earlier run is started afresh.
        if dir.exists() {
            std::fs::remove_dir_all(&dir).map_err(output)?;
        }
        let run_dir = RunDir::create(&dir)?;
        let engine = self.batch.engine.clone();
        let settings = self.batch.settings.clone();
        let span = tracing::info_span!("item", id = %item.id);
        self.running.spawn(
            async move {
                let result = engine
                    .run(
                        &item.prompt,
                        &run_dir,
                        settings,
                        &Watch::showing(&ProgressBar::hidden()),
                    )
                    .await;
                (item, result)
            }
            .instrument(span),
        );
        Ok(())
    }

    /// The first time a drain is seen: the grace period starts.
    fn notice_drain(&mut self) {
        if self.grace_ends.is_some() || !self.batch.engine.interrupt().draining() {
            return;
        }
        let grace = self.batch.grace;
        self.grace_ends = Some(tokio::time::Instant::now() + grace);
        self.outcome
            .stopped
            .get_or_insert_with(|| Cause::Sigint.describe().into());
        if !self.running.is_empty() {
            tracing::warn!(
                in_flight = self.running.len(),
                grace_secs = grace.as_secs(),
                "stopping: no new items; waiting for the ones in flight"
            );
        }
    }

    /// Waits for an item to end, a drain, the grace period's end, or the
    /// next progress line.
    async fn wait_for_next(&mut self) -> Result<(), BatchError> {
        let interrupt = self.batch.engine.interrupt().clone();
        let grace_ends = self.grace_ends;
        let log_at = self.progress.log_every.map(|every| self.last_log + every);
        let drained = async {
            match grace_ends {
                None => interrupt.wait_drain().await,
                Some(_) => std::future::pending().await,
            }
        };
        let grace_over = async {
            match grace_ends {
                // Once the interrupt is raised the items stop by themselves.
                Some(at) if interrupt.raised().is_none() => tokio::time::sleep_until(at).await,
                _ => std::future::pending().await,
            }
        };
        let log_due = async {
            match log_at {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        };
        let event = tokio::select! {
            joined = self.running.join_next() => Event::Ended(joined),
            () = drained => Event::Other,
            () = grace_over => Event::GraceOver,
            () = log_due => Event::Other,
        };
        match event {
            Event::Ended(Some(Ok((item, result)))) => self.record(item, result)?,
            Event::Ended(Some(Err(err))) => {
                tracing::error!("an item's task failed: {err}");
                self.outcome.errored += 1;
            }
            Event::GraceOver => {
                tracing::warn!(
                    in_flight = self.running.len(),
                    "grace period over; stopping the items in flight (a rerun does them)"
                );
                interrupt.raise(Cause::GraceOver);
            }
            Event::Ended(None) | Event::Other => {}
        }
        Ok(())
    }

    /// Records how an item ended: finished ones go to the results log.
    fn record(
        &mut self,
        item: Item,
        result: Result<RunResult, PipelineError>,
    ) -> Result<(), BatchError> {
        match result {
            // Stopped by a signal: unfinished, so a rerun does it afresh.
            Ok(result) if result.interrupted.is_some() => {
                tracing::warn!(id = %item.id, "stopped before it finished; a rerun does it");
                return Ok(());
            }
            Ok(result) if result.llm_error.is_none() => {
                self.endpoint_failures = 0;
                let folder = Path::new(ITEMS_DIR).join(&item.dir_name);
                let failed = !result.record.outcome.has_model();
                self.log.append(&ResultRecord {
                    id: item.id.clone(),
                    line: item.line,
                    shard: self.batch.shard.map(|(k, n)| format!("{k}/{n}")),
                    summary: RunSummary::of(&folder, &result.record),
                    extra: item.extra.clone(),
                })?;
                self.outcome.finished += 1;
                self.outcome.failed += usize::from(failed);
            }
            Ok(result) => {
                self.endpoint_failures += 1;
                self.outcome.errored += 1;
                let message = result.record.error.unwrap_or_default();
                tracing::error!(id = %item.id, "the LLM endpoint failed; the item stays unfinished: {message}");
                let limit = ENDPOINT_FAILURES_TO_STOP.max(2 * self.batch.jobs);
                if self.endpoint_failures >= limit && self.outcome.stopped.is_none() {
                    self.outcome.stopped = Some(format!(
                        "{} items in a row failed at the LLM endpoint (last: {message})",
                        self.endpoint_failures
                    ));
                }
            }
            Err(err) => {
                self.outcome.errored += 1;
                tracing::error!(id = %item.id, "cadloop failed on this item; it stays unfinished: {:#}", anyhow::Error::from(err));
            }
        }
        self.progress.bar.inc(1);
        Ok(())
    }

    fn show_progress(&mut self) {
        let failed = self.outcome.failed + self.outcome.errored;
        let in_flight = self.running.len();
        self.progress
            .bar
            .set_message(format!("{failed} failed · {in_flight} in flight"));
        let Some(every) = self.progress.log_every else {
            return;
        };
        if self.last_log.elapsed() < every {
            return;
        }
        self.last_log = Instant::now();
        let done = self.outcome.finished + self.outcome.errored;
        let rate = done as f64 / self.started.elapsed().as_secs_f64().max(1e-3);
        let eta = if rate > 0.0 {
            (self.total - done) as f64 / rate
        } else {
            f64::NAN
        };
        tracing::info!(
            "batch: {done}/{} done, {failed} failed, {in_flight} in flight, {rate:.2} items/s, ETA {eta:.0} s",
            self.total
        );
    }
}
