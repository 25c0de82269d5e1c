//! The loop, as an explicit state machine: generate → execute → (error →
//! repair) → render → caption → critique → (mismatch → execute the rewrite)
//! → finish. It owns the stop rules and budgets and writes the run directory.
//!
//! Stage in the flow: the top. `commands::generate` builds an [`Engine`] (LLM
//! client, prompts, executor pool, captioner) and calls [`Engine::run`] once;
//! the batch command shares one engine between many runs. `cadloop refine`
//! calls [`Engine::refine`], which goes through the same loop for a follow-up
//! change, adding attempts to an existing run folder.
//!
//! Words, one per idea: a *critique* compares a built part with the request
//! (prompts/critique.md); a *rewrite* is the code a critique sends back when
//! they differ; a *refine round* is one critique and its rewrite, budgeted by
//! `--max-refines`; an *edit* is code changed as a person asked in words (a
//! request of kind edit, made by `cadloop refine` or the studio's change box);
//! a *tweak* is new parameter values, no LLM.
//!
//! Budgets, per request: at most `max_repairs` repairs for each piece of code
//! the LLM writes from scratch, changes or rewrites (the request's first
//! script and each refine round), and at most `max_refines` refine rounds.
//! The result is the request's last attempt judged MATCH, else its last
//! attempt that built a valid solid.
//!
//! Here: a run's state and the step dispatch (`Run::drive`). `engine`: the
//! [`Engine`], started once from checked settings, and the settings a run
//! records. `requests`: the four ways a request starts (a prompt, given
//! code, a change in words, new parameter values); `change`: which attempt a
//! change starts from and how a tweak is built, for every front end. One
//! file per step: `ask` (the LLM, with one reminder), `execute` (FreeCAD),
//! `check` (the requirement checks), `look` (render and caption), `judge`
//! (the critique), `finish` (the result); `decide` holds the decisions
//! between them as pure functions.

mod ask;
mod change;
mod check;
mod decide;
mod engine;
mod execute;
mod finish;
mod judge;
mod look;
mod requests;

pub use change::{
    asked_budget, assignments, request_text, start_attempt, why_no_result, StartAttemptError,
    Tweak, MAX_REQUEST_CHARS,
};
pub use engine::{Engine, EngineSettings, StartError};

use std::path::{Path, PathBuf};
use std::time::Instant;

use indicatif::ProgressBar;
use tracing::Instrument;

use crate::config::Budget;
use crate::error_chain;
use crate::executor::ExecutorError;
use crate::files;
use crate::interrupt::{Cause, Interrupt};
use crate::llm::{LlmError, Message, Usage};
use crate::mesh::Mesh;
use crate::prompts::PromptError;
use crate::render::RenderError;
use crate::report::{
    AttemptRecord, Exchange, Purpose, RequestKind, RequestRecord, RunRecord, RunStatus, Stage,
};
use crate::run::{RunDir, RunDirError, Snapshot};

use decide::{AfterFailure, AfterLook};

/// The loop itself failed (not the generated code, not the LLM).
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(transparent)]
    Executor(#[from] ExecutorError),
    #[error(transparent)]
    Render(#[from] RenderError),
    #[error("captioning failed")]
    Caption(#[from] crate::caption::CaptionError),
    #[error(transparent)]
    Prompt(#[from] PromptError),
    #[error("cannot write {}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Run(#[from] RunDirError),
    #[error("the {0} task failed")]
    Task(&'static str, #[source] tokio::task::JoinError),
    #[error("the render queue was closed")]
    RenderGate(#[from] tokio::sync::AcquireError),
    #[error("this engine was started without an LLM (for tweaks)")]
    NoLlm,
}

/// How a caller follows, stops and adjusts one run: the progress line it
/// shows, a stop of its own besides the engine's (the studio's stop
/// button), and budgets or a model of the endpoint other than the engine's.
#[derive(Debug, Clone)]
pub struct Watch {
    pub progress: ProgressBar,
    pub stop: Interrupt,
    pub budget: Option<Budget>,
    pub model: Option<String>,
    /// The reply the LLM is writing now, while it streams.
    pub writing: Writing,
}

impl Watch {
    /// Shows progress on `progress`; stops only with the engine; the engine's budgets and model.
    pub fn showing(progress: &ProgressBar) -> Watch {
        Watch {
            progress: progress.clone(),
            stop: Interrupt::default(),
            budget: None,
            model: None,
            writing: Writing::default(),
        }
    }
}

/// A streamed reply as far as it has come, shared with whoever shows it
/// (the studio's run page).
#[derive(Debug, Clone, Default)]
pub struct Writing(std::sync::Arc<std::sync::Mutex<Option<Written>>>);

/// What [`Writing`] holds.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Written {
    pub text: String,
    pub tokens: u64,
    pub tokens_per_second: Option<f64>,
}

impl Writing {
    /// The reply so far, while one streams.
    pub fn now(&self) -> Option<Written> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn set(&self, written: Option<Written>) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = written;
    }
}

/// A finished (or stopped) run.
#[derive(Debug)]
pub struct RunResult {
    pub record: RunRecord,
    /// Set when the LLM endpoint failed and ended the run early.
    pub llm_error: Option<LlmError>,
    /// Set when the run was told to stop (a signal) before it ended by itself.
    pub interrupted: Option<Cause>,
}

/// The step the loop takes next.
enum Step {
    /// Ask the LLM for code (a first generation or a repair).
    Ask(Ask),
    /// Run code the LLM wrote.
    Execute(Execute),
    /// Render and caption an attempt that built a solid.
    Look {
        attempt: u32,
        mesh: Mesh,
        round: u32,
    },
    /// Ask the LLM whether the attempt matches the prompt.
    Judge {
        attempt: u32,
        round: u32,
    },
    Finish {
        reason: String,
    },
}

/// A request for code, and where it stands in the loop.
struct Ask {
    stage: Stage,
    messages: Vec<Message>,
    parent: Option<u32>,
    round: u32,
    /// Repairs made so far for the code this one repairs or replaces.
    repairs: u32,
}

/// Code to run, and what it cost to get.
struct Execute {
    code: String,
    /// A tweak's new parameter values.
    changes: Vec<crate::params::Change>,
    stage: Stage,
    parent: Option<u32>,
    round: u32,
    repairs: u32,
    usage: Usage,
    llm_ms: f64,
}

impl Execute {
    /// Code supplied without the LLM (given, or tweaked): nothing spent on it.
    fn supplied(
        code: String,
        stage: Stage,
        parent: Option<u32>,
        changes: Vec<crate::params::Change>,
    ) -> Execute {
        Execute {
            code,
            changes,
            stage,
            parent,
            round: 0,
            repairs: 0,
            usage: Usage::default(),
            llm_ms: 0.0,
        }
    }
}

impl Run<'_> {
    /// Drives the loop from `first` to the end and records how it ended.
    async fn go(mut self, first: Step) -> Result<RunResult, PipelineError> {
        let interrupt = self.engine.interrupt.clone();
        let stop = self.watch.stop.clone();
        let driven = {
            let drive = self.drive(first);
            tokio::select! {
                biased;
                cause = interrupt.wait() => Err(Stop::Interrupted(cause)),
                cause = stop.wait() => Err(Stop::Interrupted(cause)),
                driven = drive => driven,
            }
        };
        let (llm_error, interrupted) = match driven {
            Ok(()) => (None, None),
            Err(Stop::Llm(err)) => (Some(err), None),
            Err(Stop::Interrupted(cause)) => (None, Some(cause)),
            Err(Stop::Pipeline(err)) => {
                // Leave a record that says the run did not finish, and why.
                self.record.status = RunStatus::Stopped;
                self.record.error = Some(error_chain(&err));
                self.record.stop_reason = "cadloop itself failed".into();
                let _ = self.save();
                return Err(err);
            }
        };
        if interrupted.is_some() {
            self.remove_unrecorded_attempt()?;
        }
        let untouched = self.record.request(self.request).attempts.is_empty();
        let ended_early = llm_error.is_some() || interrupted.is_some();
        if let (true, Some(before), true) = (ended_early, self.before.take(), untouched) {
            // The change never got going: leave the run as it was.
            self.record = self.dir.restore(before)?;
            return Ok(RunResult {
                record: self.record,
                llm_error,
                interrupted,
            });
        }
        let early = match (&llm_error, interrupted) {
            (Some(err), _) => Some((
                error_chain(err),
                format!("the LLM endpoint failed: {}", error_chain(err)),
            )),
            (None, Some(cause)) => {
                Some((cause.describe().to_string(), cause.describe().to_string()))
            }
            (None, None) => None,
        };
        if let Some((error, reason)) = early {
            self.record.error = Some(error);
            self.finish(reason)?;
            self.record.status = RunStatus::Stopped;
            self.save()?;
        }
        Ok(RunResult {
            record: self.record,
            llm_error,
            interrupted,
        })
    }

    /// An attempt cut short before it was recorded leaves its folder (the
    /// code, maybe a model) that run.json does not know; it goes, so the run
    /// can be refined later.
    fn remove_unrecorded_attempt(&self) -> Result<(), PipelineError> {
        Ok(self.dir.remove_attempt(self.next_number())?)
    }
}

/// Why `drive` returned early.
enum Stop {
    Llm(LlmError),
    Pipeline(PipelineError),
    Interrupted(Cause),
}

impl<E: Into<PipelineError>> From<E> for Stop {
    fn from(err: E) -> Stop {
        Stop::Pipeline(err.into())
    }
}

/// One run in progress.
struct Run<'a> {
    engine: &'a Engine,
    dir: &'a RunDir,
    system: String,
    /// When this request started; `earlier_ms` is the time of the earlier ones.
    started: Instant,
    earlier_ms: f64,
    watch: &'a Watch,
    /// LLM calls so far in the whole run (numbers the transcript).
    calls: u32,
    /// The request being worked on (1: the prompt).
    request: u32,
    record: RunRecord,
    /// For a follow-up change: the run as it was, restored when the LLM
    /// fails or a signal stops it before the change made any attempt.
    before: Option<Snapshot>,
}

impl Run<'_> {
    fn current(&mut self) -> &mut RequestRecord {
        let i = self.request as usize - 1;
        &mut self.record.requests[i]
    }

    /// The state machine's loop: ask → execute → (failed: ask for a repair)
    /// → look → judge → (mismatch: execute the rewrite) → finish.
    async fn drive(&mut self, mut step: Step) -> Result<(), Stop> {
        loop {
            step = match step {
                Step::Ask(ask) => self.ask_step(ask).await?,
                Step::Execute(execute) => self.execute_step(execute).await?,
                Step::Look {
                    attempt,
                    mesh,
                    round,
                } => {
                    self.look(attempt, mesh)
                        .instrument(tracing::info_span!("look", attempt))
                        .await?;
                    self.save()?;
                    match decide::after_look(attempt, self.without_llm(), self.budget()) {
                        AfterLook::Judge => Step::Judge { attempt, round },
                        AfterLook::Finish(reason) => Step::Finish { reason },
                    }
                }
                Step::Judge { attempt, round } => {
                    self.status(attempt, "asking the LLM to compare");
                    let next = self
                        .judge(attempt, round)
                        .instrument(tracing::info_span!("critique", attempt, round))
                        .await?;
                    self.save()?;
                    next
                }
                Step::Finish { reason } => {
                    self.finish(reason)?;
                    self.save()?;
                    return Ok(());
                }
            };
        }
    }

    /// Asks for code; a reply without any (even when reminded) ends the loop.
    async fn ask_step(&mut self, ask: Ask) -> Result<Step, Stop> {
        let number = self.next_number();
        let stage = ask.stage.as_str();
        self.status(number, &format!("asking the LLM ({stage})"));
        let answer = self
            .ask_code(ask.messages, Purpose::asking_for(ask.stage), number)
            .instrument(tracing::info_span!("llm", attempt = number, stage))
            .await?;
        if matches!(ask.stage, Stage::Generate | Stage::Edit) && self.engine.checks {
            self.record_checks(number, answer.checks.clone(), None);
        }
        Ok(match answer.code {
            Some(code) => Step::Execute(Execute {
                changes: Vec::new(),
                code,
                stage: ask.stage,
                parent: ask.parent,
                round: ask.round,
                repairs: ask.repairs,
                usage: answer.usage,
                llm_ms: answer.llm_ms,
            }),
            None => Step::Finish {
                reason: format!(
                    "the LLM replied without code to the {stage} request, even when reminded"
                ),
            },
        })
    }

    /// Runs the code as the next attempt; a solid is looked at, a failure
    /// repaired while the budget allows.
    async fn execute_step(&mut self, run: Execute) -> Result<Step, Stop> {
        let number = self.next_number();
        self.status(number, "running FreeCAD");
        let (round, repairs) = (run.round, run.repairs);
        let (attempt, mesh, refused) = self
            .execute(number, run)
            .instrument(tracing::info_span!("exec", attempt = number))
            .await?;
        let budget = self.budget();
        let next = match mesh {
            Some(mesh) => Step::Look {
                attempt: number,
                mesh,
                round,
            },
            None => match decide::after_failure(
                number,
                repairs,
                round,
                self.request > 1,
                self.without_llm(),
                budget,
            ) {
                AfterFailure::Repair => Step::Ask(Ask {
                    stage: Stage::Repair,
                    messages: self.repair_messages(&attempt)?,
                    parent: Some(number),
                    round,
                    repairs: repairs + 1,
                }),
                AfterFailure::Finish(reason) => Step::Finish { reason },
            },
        };
        self.record.attempts.push(attempt);
        self.current().attempts.push(number);
        if let Some(refused) = refused {
            self.draw_refused(number, refused).await?;
        }
        self.save()?;
        Ok(next)
    }

    /// Whether this request runs code without the LLM (a tweak, or code
    /// given as it is): no repair, no critique.
    fn without_llm(&self) -> bool {
        matches!(
            self.record.request(self.request).kind,
            RequestKind::Tweak | RequestKind::Given
        )
    }

    /// This run's budgets: the caller's, else the engine's.
    fn budget(&self) -> Budget {
        self.watch.budget.unwrap_or(self.engine.budget)
    }

    fn next_number(&self) -> u32 {
        self.record.attempts.len() as u32 + 1
    }

    fn status(&self, attempt: u32, what: &str) {
        self.watch
            .progress
            .set_message(format!("attempt {attempt} · {what}"));
    }

    fn attempt_dir(&self, number: u32) -> PathBuf {
        self.dir.attempt_dir(number)
    }

    fn attempt_mut(&mut self, number: u32) -> &mut AttemptRecord {
        self.record.attempt_mut(number)
    }

    /// Writes run.json, then the page that shows it.
    fn save(&mut self) -> Result<(), PipelineError> {
        let ms = self.started.elapsed().as_secs_f64() * 1e3;
        self.current().total_ms = ms;
        self.record.timings.total_ms = self.earlier_ms + ms;
        self.write_files()
    }

    fn write_files(&self) -> Result<(), PipelineError> {
        Ok(self.dir.save(&self.record)?)
    }

    fn append_transcript(&self, exchange: &Exchange) -> Result<(), PipelineError> {
        Ok(self.dir.append_transcript(exchange)?)
    }
}

fn write_json(path: &Path, value: &impl serde::Serialize) -> Result<(), PipelineError> {
    files::write_json_atomically(path, value).map_err(|source| PipelineError::Write {
        path: path.to_path_buf(),
        source,
    })
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<(), PipelineError> {
    files::write_atomically(path, bytes).map_err(|source| PipelineError::Write {
        path: path.to_path_buf(),
        source,
    })
}
