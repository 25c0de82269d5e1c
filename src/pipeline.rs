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
//! Budgets, per request: at most `max_repairs` repairs for each piece of code
//! the LLM writes from scratch, changes or rewrites (the request's first
//! script and each refine round), and at most `max_refines` refine rounds.
//! The result is the request's last attempt judged MATCH, else its last
//! attempt that built a valid solid.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use indicatif::ProgressBar;
use tracing::Instrument;

use crate::caption::{Captioner, Decoding};
use crate::config::Budget;
use crate::critique::{self, Verdict};
use crate::executor::{ExecutorError, Job, Pool, MODEL_FILES};
use crate::files;
use crate::interrupt::{Cause, Interrupt};
use crate::llm::{LlmClient, LlmError, Message, Usage};
use crate::mesh::Mesh;
use crate::prompts::{
    self, EditContext, ErrorContext, PromptError, Prompts, RefineContext, RepairContext,
    SystemContext, ViewCaption, Want,
};
use crate::render::{self, RenderError, RenderSettings, View};
use crate::report::{
    html, AttemptRecord, AttemptTimings, CaptionRecord, Choice, CritiqueBasis, CritiqueRecord,
    Exchange, RequestKind, RequestRecord, RunOutcome, RunRecord, RunSettings, RunStatus,
    RunTimings, Stage, RUN_FILE, RUN_FORMAT, TRANSCRIPT_FILE,
};

/// A loaded captioner, shared by runs (one caption job at a time).
#[derive(Clone)]
pub struct SharedCaptioner {
    pub dir: PathBuf,
    pub model: Arc<Mutex<Captioner>>,
    pub decoding: Decoding,
}

/// Everything a run needs, built once.
pub struct Engine {
    pub llm: LlmClient,
    pub prompts: Prompts,
    pub pool: Arc<Pool>,
    pub captioner: Option<SharedCaptioner>,
    pub render: RenderSettings,
    pub font: Arc<ab_glyph::FontVec>,
    pub budget: Budget,
    /// Modules the system prompt tells the LLM it may import.
    pub allowed_modules: Vec<String>,
    /// One render at a time, first come first served. A render already uses
    /// every core; renders run side by side would share the cores and all
    /// finish late together, keeping concurrent runs in lockstep.
    pub render_gate: tokio::sync::Semaphore,
    /// Raised to stop every run at its next wait (an LLM call, a FreeCAD job,
    /// a render); each records what it did and why it stopped.
    pub interrupt: Interrupt,
}

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
    #[error("a background task failed: {0}")]
    Task(String),
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
    Ask {
        stage: Stage,
        messages: Vec<Message>,
        parent: Option<u32>,
        round: u32,
        repairs: u32,
    },
    /// Run code the LLM wrote.
    Execute {
        code: String,
        stage: Stage,
        parent: Option<u32>,
        round: u32,
        repairs: u32,
        usage: Usage,
        llm_ms: f64,
    },
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

/// Code from the LLM, with what it cost.
struct Answer {
    code: Option<String>,
    usage: Usage,
    llm_ms: f64,
}

impl Engine {
    /// Runs the loop for `prompt`, writing into `out` (an existing, empty, absolute folder).
    pub async fn run(
        &self,
        prompt: &str,
        out: &Path,
        settings: RunSettings,
        progress: &ProgressBar,
    ) -> Result<RunResult, PipelineError> {
        let record = RunRecord {
            format: RUN_FORMAT,
            cadloop_version: env!("CARGO_PKG_VERSION").to_string(),
            status: RunStatus::Running,
            prompt: prompt.to_string(),
            settings: settings.clone(),
            requests: vec![new_request(
                1,
                RequestKind::Generate,
                prompt,
                None,
                settings,
            )],
            attempts: Vec::new(),
            chosen: None,
            outcome: RunOutcome::Pending,
            stop_reason: String::new(),
            critique_basis: self.critique_basis(),
            usage: Usage::default(),
            llm_calls: 0,
            timings: RunTimings::default(),
            error: None,
        };
        let run = self.start_run(out, record, progress)?;
        let first = run.ask_generate(prompt)?;
        run.go(first).await
    }

    /// Applies a follow-up change to a finished run in `out` (its record
    /// already read and checked), starting from attempt `from`, which built a
    /// solid. The new attempts are added after the existing ones.
    pub async fn refine(
        &self,
        out: &Path,
        mut record: RunRecord,
        change: &str,
        from: u32,
        settings: RunSettings,
        progress: &ProgressBar,
    ) -> Result<RunResult, PipelineError> {
        let before = Before {
            transcript_len: std::fs::metadata(out.join(TRANSCRIPT_FILE))
                .ok()
                .map(|m| m.len()),
            record: record.clone(),
        };
        let number = record.requests.len() as u32 + 1;
        record.requests.push(new_request(
            number,
            RequestKind::Refine,
            change,
            Some(from),
            settings.clone(),
        ));
        record.settings = settings;
        record.status = RunStatus::Running;
        record.outcome = RunOutcome::Pending;
        record.stop_reason = String::new();
        record.error = None;
        record.critique_basis = self.critique_basis();
        let mut run = self.start_run(out, record, progress)?;
        run.before = Some(before);
        let first = run.ask_edit(from, change)?;
        run.go(first).await
    }

    fn critique_basis(&self) -> CritiqueBasis {
        if self.captioner.is_some() {
            CritiqueBasis::CaptionsAndGeometry
        } else {
            CritiqueBasis::Geometry
        }
    }

    fn start_run<'a>(
        &'a self,
        out: &Path,
        record: RunRecord,
        progress: &'a ProgressBar,
    ) -> Result<Run<'a>, PipelineError> {
        let system = self.prompts.system(&SystemContext {
            allowed_modules: self.allowed_modules.clone(),
        })?;
        let mut run = Run {
            engine: self,
            out: out.to_path_buf(),
            system,
            started: Instant::now(),
            earlier_ms: record.timings.total_ms,
            progress,
            calls: record.llm_calls,
            request: record.requests.len() as u32,
            record,
            before: None,
        };
        run.save()?;
        Ok(run)
    }
}

fn new_request(
    number: u32,
    kind: RequestKind,
    text: &str,
    from_attempt: Option<u32>,
    settings: RunSettings,
) -> RequestRecord {
    RequestRecord {
        number,
        kind,
        text: text.to_string(),
        from_attempt,
        attempts: Vec::new(),
        chosen: None,
        outcome: RunOutcome::Pending,
        stop_reason: String::new(),
        settings,
        usage: Usage::default(),
        llm_calls: 0,
        total_ms: 0.0,
    }
}

impl Run<'_> {
    /// Drives the loop from `first` to the end and records how it ended.
    async fn go(mut self, first: Step) -> Result<RunResult, PipelineError> {
        let interrupt = self.engine.interrupt.clone();
        let driven = {
            let drive = self.drive(first);
            tokio::select! {
                biased;
                cause = interrupt.wait() => Err(Stop::Interrupted(cause)),
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
        let untouched = self.record.requests[self.request as usize - 1]
            .attempts
            .is_empty();
        let ended_early = llm_error.is_some() || interrupted.is_some();
        if let (true, Some(before), true) = (ended_early, self.before.take(), untouched) {
            // The change never got going: leave the run as it was.
            before.restore_transcript(&self.out)?;
            self.record = before.record;
            self.write_files()?;
            return Ok(RunResult {
                record: self.record,
                llm_error,
                interrupted,
            });
        }
        let early = match (&llm_error, interrupted) {
            (Some(err), _) => Some((
                error_chain(err),
                format!("the LLM endpoint failed: {err:#}"),
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
        let dir = self.attempt_dir(self.next_number());
        match std::fs::remove_dir_all(&dir) {
            Err(err) if err.kind() != std::io::ErrorKind::NotFound => Err(PipelineError::Write {
                path: dir,
                source: err,
            }),
            _ => Ok(()),
        }
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

fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// One run in progress.
struct Run<'a> {
    engine: &'a Engine,
    out: PathBuf,
    system: String,
    /// When this request started; `earlier_ms` is the time of the earlier ones.
    started: Instant,
    earlier_ms: f64,
    progress: &'a ProgressBar,
    /// LLM calls so far in the whole run (numbers the transcript).
    calls: u32,
    /// The request being worked on (1: the prompt).
    request: u32,
    record: RunRecord,
    /// For a follow-up change: the run as it was, restored when the LLM
    /// fails or a signal stops it before the change made any attempt.
    before: Option<Before>,
}

/// What a follow-up change restores when it makes no attempt.
struct Before {
    record: RunRecord,
    /// The transcript's length in bytes, if there was one: the calls of the
    /// change are cut off.
    transcript_len: Option<u64>,
}

impl Before {
    /// Cuts the transcript in `out` back to what it was.
    fn restore_transcript(&self, out: &Path) -> Result<(), PipelineError> {
        let transcript = out.join(TRANSCRIPT_FILE);
        let restored = match self.transcript_len {
            Some(len) => std::fs::OpenOptions::new()
                .write(true)
                .open(&transcript)
                .and_then(|file| file.set_len(len)),
            None => files::remove_file_if_present(&transcript),
        };
        restored.map_err(|source| PipelineError::Write {
            path: transcript,
            source,
        })
    }
}

impl Run<'_> {
    fn ask_generate(&self, prompt: &str) -> Result<Step, PipelineError> {
        Ok(Step::Ask {
            stage: Stage::Generate,
            messages: vec![
                Message::system(&self.system),
                Message::user(self.engine.prompts.generate(prompt)?),
            ],
            parent: None,
            round: 0,
            repairs: 0,
        })
    }

    /// The first step of a follow-up change: the starting code, its facts and the change.
    fn ask_edit(&self, from: u32, change: &str) -> Result<Step, PipelineError> {
        let start = &self.record.attempts[from as usize - 1];
        let earlier: Vec<String> = self
            .edits()
            .split_last()
            .map_or(Vec::new(), |(_, e)| e.to_vec());
        let so_far = prompts::with_edits(&self.record.prompt, &earlier);
        let text = self.engine.prompts.edit(&EditContext {
            prompt: &so_far,
            request: change,
            facts: start
                .result
                .facts()
                .map(critique::describe_facts)
                .unwrap_or_default(),
            numbered_code: prompts::number_lines(&start.code),
        })?;
        Ok(Step::Ask {
            stage: Stage::Edit,
            messages: vec![Message::system(&self.system), Message::user(text)],
            parent: Some(from),
            round: 0,
            repairs: 0,
        })
    }

    /// The follow-up changes that led to the current request, oldest first:
    /// the request, the request its starting attempt served, and so on back
    /// to the prompt. A change made from an earlier attempt leaves out the
    /// changes made after that attempt.
    fn edits(&self) -> Vec<String> {
        let mut chain = Vec::new();
        let mut number = self.request;
        while number > 1 {
            let request = &self.record.requests[number as usize - 1];
            chain.push(request.text.clone());
            let before = request
                .from_attempt
                .and_then(|a| self.record.attempts.get(a as usize - 1))
                .map_or(1, |a| a.request);
            if before >= number {
                break;
            }
            number = before;
        }
        chain.reverse();
        chain
    }

    /// What the part should be now: the prompt and the changes so far.
    fn asked(&self) -> String {
        prompts::with_edits(&self.record.prompt, &self.edits())
    }

    fn current(&mut self) -> &mut RequestRecord {
        let i = self.request as usize - 1;
        &mut self.record.requests[i]
    }

    /// The state machine's loop.
    async fn drive(&mut self, mut step: Step) -> Result<(), Stop> {
        let budget = self.engine.budget;
        loop {
            step = match step {
                Step::Ask {
                    stage,
                    messages,
                    parent,
                    round,
                    repairs,
                } => {
                    let number = self.next_number();
                    self.status(number, &format!("asking the LLM ({})", stage.as_str()));
                    let answer = self
                        .ask_code(messages, stage.as_str(), number)
                        .instrument(tracing::info_span!(
                            "llm",
                            attempt = number,
                            stage = stage.as_str()
                        ))
                        .await?;
                    match answer.code {
                        Some(code) => Step::Execute {
                            code,
                            stage,
                            parent,
                            round,
                            repairs,
                            usage: answer.usage,
                            llm_ms: answer.llm_ms,
                        },
                        None => Step::Finish {
                            reason: format!(
                                "the LLM replied without code to the {} request, even when reminded",
                                stage.as_str()
                            ),
                        },
                    }
                }
                Step::Execute {
                    code,
                    stage,
                    parent,
                    round,
                    repairs,
                    usage,
                    llm_ms,
                } => {
                    let number = self.next_number();
                    self.status(number, "running FreeCAD");
                    let (attempt, mesh) = self
                        .execute(number, code, stage, parent, round, usage, llm_ms)
                        .instrument(tracing::info_span!("exec", attempt = number))
                        .await?;
                    let next = match (mesh, &attempt.result.outcome) {
                        (Some(mesh), _) => Step::Look {
                            attempt: number,
                            mesh,
                            round,
                        },
                        (None, _) if repairs < budget.max_repairs => {
                            let messages = self.repair_messages(&attempt)?;
                            Step::Ask {
                                stage: Stage::Repair,
                                messages,
                                parent: Some(number),
                                round,
                                repairs: repairs + 1,
                            }
                        }
                        (None, _) => Step::Finish {
                            reason: if budget.max_repairs == 0 {
                                "the code failed and no repairs are allowed (--max-repairs 0)"
                                    .into()
                            } else {
                                format!(
                                    "{} repairs did not make {} work",
                                    budget.max_repairs,
                                    if round == 0 && self.request > 1 {
                                        "the changed script".to_string()
                                    } else if round == 0 {
                                        "the first script".to_string()
                                    } else {
                                        format!("the rewrite of refine round {round}")
                                    }
                                )
                            },
                        },
                    };
                    self.record.attempts.push(attempt);
                    self.current().attempts.push(number);
                    self.save()?;
                    next
                }
                Step::Look {
                    attempt,
                    mesh,
                    round,
                } => {
                    self.look(attempt, mesh)
                        .instrument(tracing::info_span!("look", attempt))
                        .await?;
                    self.save()?;
                    if budget.max_refines == 0 {
                        Step::Finish {
                            reason: "no critique asked for (--max-refines 0)".into(),
                        }
                    } else {
                        Step::Judge { attempt, round }
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

    fn next_number(&self) -> u32 {
        self.record.attempts.len() as u32 + 1
    }

    fn status(&self, attempt: u32, what: &str) {
        self.progress
            .set_message(format!("attempt {attempt} · {what}"));
    }

    fn attempt_dir(&self, number: u32) -> PathBuf {
        self.out.join(attempt_path(number))
    }

    /// One LLM call, logged to the transcript and counted.
    async fn call(
        &mut self,
        messages: &[Message],
        purpose: &str,
        attempt: u32,
    ) -> Result<crate::llm::Reply, Stop> {
        let reply = self.engine.llm.chat(messages).await.map_err(Stop::Llm)?;
        self.calls += 1;
        self.record.llm_calls = self.calls;
        self.record.usage += reply.usage;
        self.current().usage += reply.usage;
        self.current().llm_calls += 1;
        self.record.timings.llm_ms += reply.elapsed_ms;
        tracing::info!(
            purpose,
            attempt,
            tokens = reply.usage.total_tokens,
            retries = reply.retries,
            ms = reply.elapsed_ms as u64,
            "LLM replied"
        );
        let exchange = Exchange {
            call: self.calls,
            purpose: purpose.to_string(),
            attempt,
            messages: messages.to_vec(),
            reply: reply.clone(),
        };
        self.append_transcript(&exchange)?;
        Ok(reply)
    }

    /// Asks for code; when the reply has none, asks once more with a reminder.
    async fn ask_code(
        &mut self,
        mut messages: Vec<Message>,
        purpose: &str,
        attempt: u32,
    ) -> Result<Answer, Stop> {
        let mut usage = Usage::default();
        let mut llm_ms = 0.0;
        let reply = self.call(&messages, purpose, attempt).await?;
        usage += reply.usage;
        llm_ms += reply.elapsed_ms;
        let mut code = crate::llm::extract_code(&reply.content);
        if code.is_none() {
            tracing::warn!(attempt, "the reply has no code; reminding the LLM once");
            messages.push(Message::assistant(reply.content));
            messages.push(Message::user(self.engine.prompts.reminder(Want::Code)?));
            let again = self.call(&messages, "reminder", attempt).await?;
            usage += again.usage;
            llm_ms += again.elapsed_ms;
            code = crate::llm::extract_code(&again.content);
        }
        Ok(Answer {
            code,
            usage,
            llm_ms,
        })
    }

    #[allow(clippy::too_many_arguments)]
    async fn execute(
        &mut self,
        number: u32,
        code: String,
        stage: Stage,
        parent: Option<u32>,
        round: u32,
        usage: Usage,
        llm_ms: f64,
    ) -> Result<(AttemptRecord, Option<Mesh>), Stop> {
        let dir = self.attempt_dir(number);
        let output = self
            .engine
            .pool
            .run(Job {
                code: code.clone(),
                dir: dir.clone(),
                timeout: None,
                inputs: Vec::new(),
            })
            .await?;
        let report = output.report;
        write_json(&dir.join("result.json"), &report)?;
        let exec_ms = report.timings.total_ms.unwrap_or(0.0);
        self.record.timings.exec_ms += exec_ms;
        match report.error_kind() {
            None => tracing::info!(attempt = number, "the code built a valid solid"),
            Some(kind) => tracing::info!(attempt = number, %kind, "the code failed"),
        }
        let attempt = AttemptRecord {
            number,
            request: self.request,
            stage,
            round,
            parent,
            dir: attempt_path(number),
            code,
            result: report,
            captions: None,
            critique: None,
            usage,
            timings: AttemptTimings {
                llm_ms,
                exec_ms,
                ..Default::default()
            },
        };
        Ok((attempt, output.mesh))
    }

    fn repair_messages(&self, attempt: &AttemptRecord) -> Result<Vec<Message>, PipelineError> {
        let crate::executor::Outcome::Error {
            kind,
            message,
            line,
            ..
        } = &attempt.result.outcome
        else {
            unreachable!("only failed attempts are repaired");
        };
        let text = self.engine.prompts.repair(&RepairContext {
            prompt: &self.asked(),
            numbered_code: prompts::number_lines(&attempt.code),
            error: ErrorContext {
                kind: kind.to_string(),
                message: message.clone(),
                line: *line,
            },
            output: attempt.result.output.text.trim().to_string(),
        })?;
        Ok(vec![Message::system(&self.system), Message::user(text)])
    }

    /// Renders the attempt's views and sheet into its folder and captions them.
    async fn look(&mut self, number: u32, mesh: Mesh) -> Result<(), Stop> {
        self.status(number, "rendering");
        let dir = self.attempt_dir(number);
        let settings = self.engine.render.clone();
        let font = self.engine.font.clone();
        let started = Instant::now();
        let gate = self
            .engine
            .render_gate
            .acquire()
            .await
            .map_err(|e| PipelineError::Task(e.to_string()))?;
        let (views, sheet) = tokio::task::spawn_blocking(move || -> Result<_, RenderError> {
            let views = render::render(&mesh, &settings)?;
            let sheet = render::contact_sheet(&views, &font);
            Ok((views, sheet))
        })
        .await
        .map_err(|e| PipelineError::Task(e.to_string()))??;
        drop(gate);
        let views = tokio::task::spawn_blocking(move || -> Result<render::Views, RenderError> {
            render::write_views(&dir, &views, &sheet)?;
            Ok(views)
        })
        .await
        .map_err(|e| PipelineError::Task(e.to_string()))??;
        let render_ms = started.elapsed().as_secs_f64() * 1e3;
        self.record.timings.render_ms += render_ms;

        let mut caption_ms = None;
        let mut captions = None;
        if let Some(captioner) = self.engine.captioner.clone() {
            self.status(number, "captioning");
            let started = Instant::now();
            let images: Vec<_> = views.images.iter().map(|(_, img)| img.clone()).collect();
            let texts = tokio::task::spawn_blocking(move || {
                let mut model = captioner
                    .model
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                model.caption(&images, &captioner.decoding)
            })
            .await
            .map_err(|e| PipelineError::Task(e.to_string()))??;
            let ms = started.elapsed().as_secs_f64() * 1e3;
            self.record.timings.caption_ms += ms;
            caption_ms = Some(ms);
            let records: Vec<CaptionRecord> = View::ALL
                .iter()
                .zip(texts)
                .map(|(view, c)| CaptionRecord {
                    view: view.name().to_string(),
                    text: c.text,
                    score: c.score,
                })
                .collect();
            write_json(&self.attempt_dir(number).join("captions.json"), &records)?;
            captions = Some(records);
        }
        let attempt = self.attempt_mut(number);
        attempt.timings.render_ms = Some(render_ms);
        attempt.timings.caption_ms = caption_ms;
        attempt.captions = captions;
        Ok(())
    }

    fn attempt_mut(&mut self, number: u32) -> &mut AttemptRecord {
        &mut self.record.attempts[number as usize - 1]
    }

    /// The critique of an attempt, and what the loop does next.
    async fn judge(&mut self, number: u32, round: u32) -> Result<Step, Stop> {
        let attempt = &self.record.attempts[number as usize - 1];
        let facts = attempt
            .result
            .facts()
            .map(critique::describe_facts)
            .unwrap_or_default();
        let captions = attempt.captions.as_ref().map(|cs| {
            cs.iter()
                .map(|c| ViewCaption {
                    view: c.view.clone(),
                    text: c.text.clone(),
                })
                .collect()
        });
        let asked = self.asked();
        let text = self.engine.prompts.refine(&RefineContext {
            prompt: &asked,
            facts,
            captions,
            numbered_code: prompts::number_lines(&attempt.code),
            last_round: round >= self.engine.budget.max_refines,
        })?;
        let mut messages = vec![Message::system(&self.system), Message::user(text)];
        let reply = self.call(&messages, "refine", number).await?;
        let mut usage = reply.usage;
        let mut llm_ms = reply.elapsed_ms;
        let mut critique = critique::read_critique(&reply.content);
        // One reminder, for whichever part is missing.
        let missing = match (critique.verdict, &critique.code) {
            (None, _) => Some(Want::Verdict),
            (Some(Verdict::Mismatch), None) if round < self.engine.budget.max_refines => {
                Some(Want::Code)
            }
            _ => None,
        };
        if let Some(want) = missing {
            tracing::warn!(
                attempt = number,
                ?want,
                "the critique is incomplete; reminding the LLM once"
            );
            messages.push(Message::assistant(reply.content));
            messages.push(Message::user(self.engine.prompts.reminder(want)?));
            let again = self.call(&messages, "reminder", number).await?;
            usage += again.usage;
            llm_ms += again.elapsed_ms;
            let second = critique::read_critique(&again.content);
            critique = match want {
                Want::Verdict => second,
                Want::Code => critique::Critique {
                    code: second.code,
                    feedback: [critique.feedback, second.feedback]
                        .into_iter()
                        .filter(|f| !f.is_empty())
                        .collect::<Vec<_>>()
                        .join("\n\n"),
                    ..critique
                },
            };
        }
        let rewrite = match (critique.verdict, critique.code.clone()) {
            (Some(Verdict::Mismatch), Some(code)) if round < self.engine.budget.max_refines => {
                Some(code)
            }
            _ => None,
        };
        let feedback_file = self.attempt_dir(number).join("feedback.md");
        write_file(&feedback_file, feedback_markdown(&critique).as_bytes())?;
        tracing::info!(
            attempt = number,
            verdict = critique.verdict.map_or("none", Verdict::as_str),
            "critique"
        );
        let attempt = self.attempt_mut(number);
        attempt.timings.critique_ms = Some(llm_ms);
        attempt.critique = Some(CritiqueRecord {
            verdict: critique.verdict,
            stated: critique.stated,
            feedback: critique.feedback.clone(),
            rewrite_used: rewrite.is_some(),
            usage,
            llm_ms,
        });
        Ok(match (critique.verdict, rewrite) {
            (Some(Verdict::Match), _) => Step::Finish {
                reason: format!("attempt {number} was judged to match the prompt"),
            },
            (Some(Verdict::Mismatch), Some(code)) => Step::Execute {
                code,
                stage: Stage::Refine,
                parent: Some(number),
                round: round + 1,
                repairs: 0,
                usage,
                llm_ms,
            },
            (Some(Verdict::Mismatch), None) if round >= self.engine.budget.max_refines => {
                Step::Finish {
                    reason: format!(
                        "refine budget spent ({} round{}) and the last attempt still differs from the prompt",
                        self.engine.budget.max_refines,
                        if self.engine.budget.max_refines == 1 { "" } else { "s" }
                    ),
                }
            }
            (Some(Verdict::Mismatch), None) => Step::Finish {
                reason: "the critique found a mismatch but gave no rewrite, even when reminded"
                    .into(),
            },
            (None, _) => Step::Finish {
                reason: "the critique gave no verdict, even when reminded".into(),
            },
        })
    }

    /// Picks the request's result, copies its files to the top of the run
    /// folder, and sets the outcome.
    fn finish(&mut self, reason: String) -> Result<(), PipelineError> {
        let request = self.request;
        let mine = || {
            self.record
                .attempts
                .iter()
                .rev()
                .filter(move |a| a.request == request)
        };
        let matched = mine().find(|a| {
            a.critique
                .as_ref()
                .is_some_and(|c| c.verdict == Some(Verdict::Match))
        });
        // Rendered too: a run stopped by a signal can end with an attempt
        // that built a solid but was not looked at yet; it has no views to show.
        let executed = mine().find(|a| a.executed() && a.timings.render_ms.is_some());
        let (chosen, outcome) = match (matched, executed) {
            (Some(a), _) => (
                Some(Choice {
                    attempt: a.number,
                    why: "the last attempt judged to match the prompt".into(),
                }),
                RunOutcome::Match,
            ),
            (None, Some(a)) => {
                let outcome = match a.critique.as_ref().and_then(|c| c.verdict) {
                    Some(_) => RunOutcome::Mismatch,
                    None => RunOutcome::Unverified,
                };
                let why = match outcome {
                    RunOutcome::Mismatch => {
                        "no attempt was judged to match; this is the last one that built a valid solid"
                    }
                    _ => "the last attempt that built a valid solid (not judged)",
                };
                (
                    Some(Choice {
                        attempt: a.number,
                        why: why.into(),
                    }),
                    outcome,
                )
            }
            (None, None) => (None, RunOutcome::Failed),
        };
        self.remove_top_level_results()?;
        if let Some(choice) = &chosen {
            let from = self.attempt_dir(choice.attempt);
            for name in MODEL_FILES {
                copy(&from.join(name), &self.out.join(name))?;
            }
            let views = self.out.join("views");
            std::fs::create_dir_all(&views).map_err(|source| PipelineError::Write {
                path: views.clone(),
                source,
            })?;
            for view in View::ALL {
                let name = format!("{}.png", view.name());
                copy(&from.join("views").join(&name), &views.join(&name))?;
            }
            copy(&from.join("sheet.png"), &self.out.join("sheet.png"))?;
        }
        tracing::info!(outcome = outcome.as_str(), reason = %reason, "run finished");
        let current = self.current();
        current.chosen = chosen.clone();
        current.outcome = outcome;
        current.stop_reason = reason.clone();
        self.record.chosen = chosen;
        self.record.outcome = outcome;
        self.record.stop_reason = reason;
        self.record.status = RunStatus::Finished;
        Ok(())
    }

    /// The top-level models and views describe the chosen attempt only.
    fn remove_top_level_results(&self) -> Result<(), PipelineError> {
        let mut paths: Vec<PathBuf> = MODEL_FILES.iter().map(|n| self.out.join(n)).collect();
        paths.push(self.out.join("sheet.png"));
        paths.extend(
            View::ALL
                .iter()
                .map(|v| self.out.join("views").join(format!("{}.png", v.name()))),
        );
        for path in paths {
            files::remove_file_if_present(&path)
                .map_err(|source| PipelineError::Write { path, source })?;
        }
        Ok(())
    }

    /// Writes run.json, then the page that shows it.
    fn save(&mut self) -> Result<(), PipelineError> {
        let ms = self.started.elapsed().as_secs_f64() * 1e3;
        self.current().total_ms = ms;
        self.record.timings.total_ms = self.earlier_ms + ms;
        self.write_files()
    }

    fn write_files(&self) -> Result<(), PipelineError> {
        write_json(&self.out.join(RUN_FILE), &self.record)?;
        html::write_run_page(&self.out, &self.record).map_err(|source| PipelineError::Write {
            path: self.out.join(html::REPORT_FILE),
            source,
        })
    }

    fn append_transcript(&self, exchange: &Exchange) -> Result<(), PipelineError> {
        let path = self.out.join(TRANSCRIPT_FILE);
        let mut line = serde_json::to_vec(exchange).map_err(|e| PipelineError::Write {
            path: path.clone(),
            source: std::io::Error::other(e),
        })?;
        line.push(b'\n');
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .and_then(|mut file| file.write_all(&line))
            .map_err(|source| PipelineError::Write { path, source })
    }
}

/// `attempts/NN`, relative to the run folder.
pub fn attempt_path(number: u32) -> String {
    format!("attempts/{number:02}")
}

/// The critique as `feedback.md`.
fn feedback_markdown(critique: &critique::Critique) -> String {
    let verdict = match (critique.verdict, critique.stated) {
        (Some(v), true) => v.as_str().to_uppercase(),
        (Some(v), false) => format!(
            "{} (no verdict line; a rewrite was given)",
            v.as_str().to_uppercase()
        ),
        (None, _) => "none given".to_string(),
    };
    let mut text = format!("# Critique\n\nVerdict: {verdict}\n");
    if !critique.feedback.is_empty() {
        text.push('\n');
        text.push_str(&critique.feedback);
        text.push('\n');
    }
    text
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

fn copy(from: &Path, to: &Path) -> Result<(), PipelineError> {
    files::copy_atomically(from, to).map_err(|source| PipelineError::Write {
        path: to.to_path_buf(),
        source,
    })
}
