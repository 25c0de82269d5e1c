//! The records a run leaves behind: `run.json` (serde types here),
//! `transcript.jsonl` (the LLM exchanges, one per line) and `report.html`
//! (the run as a page, [`html`]); batch and bench folders' `index.html` ([`index`]).
//!
//! Stage in the flow: `pipeline` fills a [`RunRecord`] as it goes and writes
//! it after every attempt, so a run that is stopped midway still says what it
//! did; `refine`, batch and bench read these records back.
// The run folder's records are a contract with their readers: every
// public item, field and variant says what it holds.
#![deny(missing_docs)]

mod diff;
pub mod html;
pub mod index;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::critique::Verdict;
use crate::executor::{ExecReport, Outcome, MODEL_FILES};
use crate::llm::{Message, Reply, Usage};
use crate::render::{SHEET_FILE, VIEWS_DIR};

/// The version of the run.json layout; bumped when a field changes meaning.
/// Format 2 added the chain of requests (`requests`, `attempts[].request`).
pub const RUN_FORMAT: u32 = 2;
/// A run's record, in its folder.
pub const RUN_FILE: &str = "run.json";
/// Every LLM exchange of a run, one JSON line each.
pub const TRANSCRIPT_FILE: &str = "transcript.jsonl";

/// `run.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// The layout's version ([`RUN_FORMAT`]); a reader refuses another.
    pub format: u32,
    /// The cadloop that wrote the record.
    pub cadloop_version: String,
    /// "running" while the loop goes on, then "finished" (or "stopped" after
    /// an error or a signal; `error` says which).
    pub status: RunStatus,
    /// The first request; the follow-up changes are in `requests`.
    pub prompt: String,
    /// The settings of the latest request.
    pub settings: RunSettings,
    /// The prompt, then each follow-up change (`cadloop refine`), in order.
    pub requests: Vec<RequestRecord>,
    /// Every attempt of every request, in order.
    pub attempts: Vec<AttemptRecord>,
    /// The attempt whose model is the run's result (for the latest request), and why.
    #[serde(rename = "final")]
    pub chosen: Option<Choice>,
    /// The latest request's result in one word.
    pub outcome: RunOutcome,
    /// Why the loop stopped.
    pub stop_reason: String,
    /// What the critique could see: captions and geometry, or geometry alone.
    pub critique_basis: CritiqueBasis,
    /// Tokens of every LLM call of the run.
    pub usage: Usage,
    /// How many LLM calls the run made, reminders included.
    pub llm_calls: u32,
    /// Each LLM call's timing, in order (`transcript.jsonl` holds the texts).
    #[serde(default)]
    pub calls: Vec<CallRecord>,
    /// Where the run's time went.
    pub timings: RunTimings,
    /// The error that ended the run early (the LLM endpoint failing, say).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl RunRecord {
    /// Attempt `number`, counted from 1 as run.json counts them, when the
    /// record holds it (for numbers from outside: a flag, a request body).
    pub fn find_attempt(&self, number: u32) -> Option<&AttemptRecord> {
        self.attempts.get((number as usize).checked_sub(1)?)
    }

    /// Attempt `number`, which the record holds: numbers the loop took from
    /// the record itself.
    pub fn attempt(&self, number: u32) -> &AttemptRecord {
        self.find_attempt(number)
            .unwrap_or_else(|| panic!("run.json holds no attempt {number}"))
    }

    /// Attempt `number`, to change; panics when there is none (numbers come from the record).
    pub fn attempt_mut(&mut self, number: u32) -> &mut AttemptRecord {
        let index = (number as usize).wrapping_sub(1);
        self.attempts
            .get_mut(index)
            .unwrap_or_else(|| panic!("run.json holds no attempt {number}"))
    }

    /// Request `number`, counted from 1, which the record holds.
    pub fn request(&self, number: u32) -> &RequestRecord {
        self.requests
            .get((number as usize).wrapping_sub(1))
            .unwrap_or_else(|| panic!("run.json holds no request {number}"))
    }

    /// The attempt that is the run's result, if any.
    pub fn chosen_attempt(&self) -> Option<&AttemptRecord> {
        self.chosen
            .as_ref()
            .and_then(|c| self.find_attempt(c.attempt))
    }

    /// The latest request's last attempt, when that request chose no result
    /// and the attempt failed (a tweak whose values FreeCAD could not build).
    pub fn latest_failed_attempt(&self) -> Option<&AttemptRecord> {
        let request = self.requests.last().filter(|r| r.chosen.is_none())?;
        self.attempts
            .iter()
            .rfind(|a| a.request == request.number)
            .filter(|a| !a.executed())
    }
}

/// One request of the run: the prompt (`generate`) or a follow-up change (`refine`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestRecord {
    /// 1 for the prompt, 2, 3, … for the changes.
    pub number: u32,
    /// What the request asked for.
    pub kind: RequestKind,
    /// The prompt, or the change in words (for a tweak, its new values as `NAME=value`).
    pub text: String,
    /// The attempt whose code the change started from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_attempt: Option<u32>,
    /// The attempts made for this request.
    pub attempts: Vec<u32>,
    /// The attempt whose model is the request's result, and why.
    #[serde(rename = "final")]
    pub chosen: Option<Choice>,
    /// The request's result in one word.
    pub outcome: RunOutcome,
    /// Why the request's loop stopped.
    pub stop_reason: String,
    /// The settings the request ran with.
    pub settings: RunSettings,
    /// Tokens of the request's LLM calls.
    pub usage: Usage,
    /// How many LLM calls the request made.
    pub llm_calls: u32,
    /// Milliseconds from the request's start to its end.
    pub total_ms: f64,
    /// The request's checks as written, then each change of them, in order;
    /// the last is the one in force.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<ChecksRecord>,
}

/// A request's checks as written with its first script, or as changed after
/// a critique (with the LLM's reason), or carried over by a tweak.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChecksRecord {
    /// The attempt whose LLM reply wrote them (or, for a tweak, its attempt).
    pub attempt: u32,
    /// The list as written; empty when the reply had none that could be read.
    pub source: String,
    /// The calls read from `source`.
    pub calls: Vec<crate::checks::CheckCall>,
    /// Why the checks were changed (or where a tweak's came from); `None` for
    /// the request's first checks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Why the reply's checks could not be used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl RequestRecord {
    /// The checks in force: the last ones that could be read.
    pub fn checks_in_force(&self) -> &[crate::checks::CheckCall] {
        self.checks
            .iter()
            .rev()
            .find(|c| c.error.is_none())
            .map_or(&[], |c| c.calls.as_slice())
    }
}

/// What a request asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RequestKind {
    /// The first request: the prompt.
    Generate,
    /// A change in words to a finished run (`cadloop refine`, the studio's
    /// change box); its attempts are edits (run.json before this name: "refine").
    #[serde(alias = "refine")]
    Edit,
    /// New parameter values, applied without the LLM (`cadloop tweak`).
    Tweak,
    /// Code given as it is, run without the LLM (the studio's examples).
    Given,
}

/// Whether a run is going on, done, or was stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    /// The loop is going on (or the process running it was killed).
    Running,
    /// The loop ended by itself.
    Finished,
    /// The loop was stopped: a signal, a stop button, an error.
    Stopped,
}

/// The run's result in one word.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RunOutcome {
    /// Not decided yet (the run is going on).
    Pending,
    /// A model was built and judged to match the prompt.
    Match,
    /// A model was built, but the last critique found a mismatch.
    Mismatch,
    /// A model was built and not judged (no refine rounds, or no verdict).
    Unverified,
    /// No attempt produced a valid solid.
    Failed,
}

impl std::fmt::Display for RunOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl RunOutcome {
    /// The word run.json and the summaries use.
    pub fn as_str(self) -> &'static str {
        match self {
            RunOutcome::Pending => "pending",
            RunOutcome::Match => "match",
            RunOutcome::Mismatch => "mismatch",
            RunOutcome::Unverified => "unverified",
            RunOutcome::Failed => "failed",
        }
    }

    /// Whether the run produced a model.
    pub fn has_model(self) -> bool {
        matches!(
            self,
            RunOutcome::Match | RunOutcome::Mismatch | RunOutcome::Unverified
        )
    }
}

/// What the critique could see.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CritiqueBasis {
    /// The critique saw the views' captions and the geometry facts.
    CaptionsAndGeometry,
    /// The critique saw the geometry facts only (no captioner).
    Geometry,
}

/// The settings a run used, secrets left out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSettings {
    /// `None` for a tweak, which asks no LLM.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub llm: Option<LlmRecord>,
    /// Repairs allowed for each script the LLM writes (`--max-repairs`).
    pub max_repairs: u32,
    /// Critique rounds allowed (`--max-refines`).
    pub max_refines: u32,
    /// The captioner model folder; `None` when the critique saw geometry only.
    pub captioner: Option<String>,
    /// Beams the captioner decoded with; `None` without a captioner.
    pub caption_beams: Option<usize>,
    /// The views' size in pixels (square).
    pub view_size: u32,
    /// How long one script may run, in seconds.
    pub exec_timeout_secs: f64,
    /// The worker's memory limit, in MiB.
    pub memory_limit_mib: u64,
    /// Where each prompt template came from ("built-in" or a path).
    pub prompts: Vec<(String, String)>,
    /// Whether the LLM wrote checks and every attempt ran them (`--checks`).
    #[serde(default)]
    pub checks: bool,
}

/// The LLM endpoint a run used, secrets left out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LlmRecord {
    /// The endpoint, without credentials.
    pub base_url: String,
    /// The model asked for.
    pub model: String,
    /// The sampling temperature sent; `None`: the server's default.
    pub temperature: Option<f32>,
    /// The reply length limit sent; `None`: the server's default.
    pub max_tokens: Option<u32>,
    /// How long one request may take, in seconds.
    pub request_timeout_secs: f64,
    /// How often a failed request is tried again.
    pub retries: u32,
    /// Whether replies were asked for as streams.
    #[serde(default)]
    pub stream: bool,
    /// When requests for code were held to their layout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub constrain: Option<crate::llm::Constrain>,
}

/// What produced an attempt's code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    /// Written from the prompt.
    Generate,
    /// A fix of code that failed.
    Repair,
    /// A rewrite after a critique found a mismatch (run.json before this
    /// name: "refine").
    #[serde(alias = "refine")]
    Rewrite,
    /// An edit: earlier code changed as a person asked in words (`cadloop
    /// refine`, the studio's change box).
    Edit,
    /// Earlier code with new parameter values (`cadloop tweak`), no LLM.
    Tweak,
    /// Code given as it is, not written by the LLM.
    Given,
}

impl Stage {
    /// The word run.json and the report use.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Generate => "generate",
            Stage::Repair => "repair",
            Stage::Rewrite => "rewrite",
            Stage::Edit => "edit",
            Stage::Tweak => "tweak",
            Stage::Given => "given",
        }
    }
}

/// One run of generated code: `attempts/NN/`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttemptRecord {
    /// 1, 2, …: the folder is `attempts/NN` with two digits or more.
    pub number: u32,
    /// The request (1: the prompt, 2…: follow-up changes) the attempt served.
    pub request: u32,
    /// What produced the code.
    pub stage: Stage,
    /// Refine round that produced the code (0: the request's first script and its repairs).
    pub round: u32,
    /// The attempt this one repairs or rewrites.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<u32>,
    /// The attempt's folder, relative to the run folder (`attempts/NN`).
    pub dir: String,
    /// The code that ran (also the folder's `code.py`).
    pub code: String,
    /// What running it gave (also the folder's `result.json`).
    pub result: ExecReport,
    /// The views' captions (also `captions.json`); `None` when none were made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub captions: Option<Vec<CaptionRecord>>,
    /// The critique of the attempt, when it had one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub critique: Option<CritiqueRecord>,
    /// A tweak's new parameter values.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<crate::params::Change>,
    /// Tokens of the LLM calls that wrote this code.
    pub usage: Usage,
    /// Where the attempt's time went.
    pub timings: AttemptTimings,
}

impl AttemptRecord {
    /// Passed and total checks, when the attempt ran any.
    pub fn checks(&self) -> Option<crate::checks::Tally> {
        let results = &self.result.checks;
        (!results.is_empty()).then(|| crate::checks::Tally::of(results))
    }

    /// Whether the LLM judged this attempt a match and no check overruled it.
    pub fn matched(&self) -> bool {
        self.critique
            .as_ref()
            .is_some_and(|c| c.verdict == Some(Verdict::Match) && !c.overruled)
    }

    /// Whether the attempt's code ran and built a valid result.
    pub fn executed(&self) -> bool {
        self.result.is_ok()
    }
}

/// One view's caption: `captions.json`, one per view.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaptionRecord {
    /// Which of the seven views.
    pub view: crate::render::View,
    /// The caption.
    pub text: String,
    /// The caption's mean token log-probability (higher: surer).
    pub score: f32,
}

/// The critique of an attempt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CritiqueRecord {
    /// `None`: the LLM gave neither a verdict nor code, even when reminded.
    pub verdict: Option<Verdict>,
    /// Whether the verdict was stated, or inferred from a rewrite without one.
    pub stated: bool,
    /// The reasons: the reply without its verdict line and code (also `feedback.md`).
    pub feedback: String,
    /// Whether the rewrite ran (it does not after a MATCH or when the budget is spent).
    pub rewrite_used: bool,
    /// The verdict was MATCH but checks failed, so the attempt cannot be the match.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub overruled: bool,
    /// Tokens of the critique call (and its reminder).
    pub usage: Usage,
    /// How long the critique call took.
    pub llm_ms: f64,
}

/// Milliseconds per stage of one attempt.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AttemptTimings {
    /// Asking the LLM for this code.
    pub llm_ms: f64,
    /// Running it in FreeCAD.
    pub exec_ms: f64,
    /// Rendering the views, when it built.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub render_ms: Option<f64>,
    /// Captioning the views, when they were captioned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caption_ms: Option<f64>,
    /// The critique call, when there was one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub critique_ms: Option<f64>,
}

/// Where a run's time went, in milliseconds, over all its attempts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunTimings {
    /// From the run's start to its end.
    pub total_ms: f64,
    /// Waiting for the LLM.
    pub llm_ms: f64,
    /// Running scripts in FreeCAD.
    pub exec_ms: f64,
    /// Rendering views.
    pub render_ms: f64,
    /// Captioning views.
    pub caption_ms: f64,
}

/// The attempt whose model is the result, and why it was chosen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Choice {
    /// The attempt's number.
    pub attempt: u32,
    /// Why it is the result, in words ("the last attempt judged to match the prompt", …).
    pub why: String,
}

/// What an LLM call was for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Purpose {
    /// Code from the prompt.
    Generate,
    /// A fix of code that failed.
    Repair,
    /// Earlier code changed as a person asked in words.
    Edit,
    /// The comparison of a built part with the request, with a rewrite when
    /// they differ (transcripts before this name: "refine").
    #[serde(alias = "refine")]
    Critique,
    /// The same question again, reminding of what the reply lacked.
    Reminder,
}

impl Purpose {
    /// The call that asks for code at `stage`. Rewrites come inside a
    /// critique's reply, and tweaks and given code ask nothing, so only
    /// generate, repair and edit are asked this way.
    pub fn asking_for(stage: Stage) -> Purpose {
        match stage {
            Stage::Repair => Purpose::Repair,
            Stage::Edit => Purpose::Edit,
            Stage::Generate | Stage::Rewrite | Stage::Tweak | Stage::Given => Purpose::Generate,
        }
    }

    /// The word run.json and the transcript use.
    pub fn as_str(self) -> &'static str {
        match self {
            Purpose::Generate => "generate",
            Purpose::Repair => "repair",
            Purpose::Edit => "edit",
            Purpose::Critique => "critique",
            Purpose::Reminder => "reminder",
        }
    }
}

/// One LLM call's timing and form, as run.json lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallRecord {
    /// 1, 2, … as in the transcript.
    pub call: u32,
    /// What the call was for.
    pub purpose: Purpose,
    /// The attempt the call wrote code for or judged.
    pub attempt: u32,
    /// The whole call, retries included.
    pub ms: f64,
    /// Whether the reply came as a stream of tokens.
    pub streamed: bool,
    /// Time to the first token of a streamed reply.
    pub first_token_ms: Option<f64>,
    /// Tokens a second after the first, of a streamed reply.
    pub tokens_per_second: Option<f64>,
    /// The reply's tokens, as the server counted them (or its chunks).
    pub completion_tokens: u64,
    /// How the reply was held to its layout ("grammar"), when it was.
    pub constrained: Option<String>,
    /// Failed tries before the reply.
    pub retries: u32,
}

impl CallRecord {
    /// Call number `call`'s record, from its reply.
    pub fn of(call: u32, purpose: Purpose, attempt: u32, reply: &crate::llm::Reply) -> CallRecord {
        CallRecord {
            call,
            purpose,
            attempt,
            ms: reply.elapsed_ms,
            streamed: reply.streamed,
            first_token_ms: reply.first_token_ms,
            tokens_per_second: reply.tokens_per_second,
            completion_tokens: reply.usage.completion_tokens,
            constrained: reply.constrained.clone(),
            retries: reply.retries,
        }
    }
}

/// One LLM call, as `transcript.jsonl` holds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Exchange {
    /// 1, 2, … in the order sent.
    pub call: u32,
    /// What the call was for.
    pub purpose: Purpose,
    /// The attempt the call wrote code for or judged.
    pub attempt: u32,
    /// The messages sent.
    pub messages: Vec<Message>,
    /// The reply, with its token counts and time.
    pub reply: Reply,
}

/// The summary's lines on the result: its solid and its checks.
fn result_lines(text: &mut String, chosen: &AttemptRecord) {
    if let Some(facts) = chosen.result.facts() {
        let [x, y, z] = facts.bbox.size;
        let _ = writeln!(
            text,
            "  solid       {x:.2} × {y:.2} × {z:.2} mm, volume {:.2} mm³, {} solid{}",
            facts.volume,
            facts.solids,
            if facts.solids == 1 { "" } else { "s" }
        );
    }
    if let Some(tally) = chosen.checks() {
        let failing = crate::checks::describe_failures(&chosen.result.checks);
        let _ = writeln!(
            text,
            "  checks      {} of {} pass",
            tally.passed, tally.total
        );
        for line in failing.lines() {
            let _ = writeln!(text, "              {}", line.trim_start_matches("- "));
        }
    }
}

/// What `generate` prints: a few lines, or this as JSON with --json.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSummary {
    /// The run folder.
    pub out: PathBuf,
    /// The request summed up: 1 for the prompt, 2… for follow-up changes.
    #[serde(default = "first_request")]
    pub request: u32,
    /// The request's result in one word.
    pub outcome: RunOutcome,
    /// Why the loop stopped.
    pub stop_reason: String,
    /// Attempts the request made.
    pub attempts: usize,
    /// Of them, repairs.
    pub repairs: usize,
    /// Of them, rewrites after a critique.
    pub refines: usize,
    /// The number of the attempt whose model is the result.
    pub final_attempt: Option<u32>,
    /// The critique's verdict on the result, when it had one.
    pub verdict: Option<Verdict>,
    /// The files the run folder holds, relative to it.
    pub files: Vec<String>,
    /// Seconds the request took.
    pub seconds: f64,
    /// LLM calls the request made.
    pub llm_calls: u32,
    /// Tokens of those calls.
    pub tokens: crate::llm::Usage,
    /// The error that ended the run early, if one did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The result's parameters (the named numbers `cadloop tweak` changes).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parameters: Vec<crate::params::Parameter>,
    /// The result's checks passed and run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checks: Option<crate::checks::Tally>,
}

impl RunSummary {
    /// The summary of the run's latest request (the whole run when it had one).
    pub fn of(out: &Path, record: &RunRecord) -> RunSummary {
        let request = record.requests.last();
        let mine: Vec<&AttemptRecord> = match request {
            Some(r) => record
                .attempts
                .iter()
                .filter(|a| a.request == r.number)
                .collect(),
            None => record.attempts.iter().collect(),
        };
        let count = |stage| mine.iter().filter(|a| a.stage == stage).count();
        let chosen = record.chosen_attempt();
        let mut files = vec![
            RUN_FILE.to_string(),
            TRANSCRIPT_FILE.to_string(),
            html::REPORT_FILE.to_string(),
        ];
        if record.outcome.has_model() {
            files.extend(MODEL_FILES.iter().map(|f| f.to_string()));
            files.extend([format!("{VIEWS_DIR}/"), SHEET_FILE.to_string()]);
        }
        RunSummary {
            out: out.to_path_buf(),
            request: request.map_or(1, |r| r.number),
            outcome: record.outcome,
            stop_reason: record.stop_reason.clone(),
            attempts: mine.len(),
            repairs: count(Stage::Repair),
            refines: count(Stage::Rewrite),
            final_attempt: record.chosen.as_ref().map(|c| c.attempt),
            verdict: chosen
                .and_then(|a| a.critique.as_ref())
                .and_then(|c| c.verdict),
            files,
            seconds: request.map_or(record.timings.total_ms, |r| r.total_ms) / 1000.0,
            llm_calls: request.map_or(record.llm_calls, |r| r.llm_calls),
            tokens: request.map_or(record.usage, |r| r.usage),
            error: record.error.clone(),
            parameters: chosen
                .map(|a| a.result.parameters.clone())
                .unwrap_or_default(),
            checks: chosen.and_then(AttemptRecord::checks),
        }
    }

    /// The summary as `generate` prints it.
    pub fn text(&self, record: &RunRecord) -> String {
        let mut text = String::new();
        let notes: Vec<String> = (self.request > 1)
            .then(|| format!("change {}", self.request - 1))
            .into_iter()
            .chain(self.checks.map(|t| t.to_string()))
            .collect();
        let change = if notes.is_empty() {
            String::new()
        } else {
            format!(" ({})", notes.join(", "))
        };
        let _ = writeln!(
            text,
            "{}{change}: {} ({} attempt{}, {} repair{}, {} refine{}; {:.1} s, {} LLM calls, {} tokens)",
            self.outcome,
            self.out.display(),
            self.attempts,
            plural(self.attempts),
            self.repairs,
            plural(self.repairs),
            self.refines,
            plural(self.refines),
            self.seconds,
            self.llm_calls,
            self.tokens.total_tokens
        );
        let _ = writeln!(text, "  stopped     {}", self.stop_reason);
        match (&record.chosen, self.final_attempt) {
            (Some(choice), Some(n)) => {
                let _ = writeln!(text, "  result      attempt {n}: {}", choice.why);
                result_lines(&mut text, record.attempt(n));
            }
            _ => {
                if let Some(last) = record.attempts.last() {
                    if let Outcome::Error {
                        kind,
                        message,
                        line,
                        ..
                    } = &last.result.outcome
                    {
                        let at = line.map(|l| format!(" at line {l}")).unwrap_or_default();
                        let first = message.lines().last().unwrap_or("");
                        let _ = writeln!(text, "  last error  {kind}{at}: {first}");
                    }
                }
            }
        }
        if !self.parameters.is_empty() {
            let values: Vec<String> = self
                .parameters
                .iter()
                .map(|p| format!("{}={}", p.name, p.text))
                .collect();
            let _ = writeln!(text, "  parameters  {}", values.join(" "));
        }
        if let Some(error) = &self.error {
            let _ = writeln!(text, "  LLM error   {error}");
        }
        let _ = writeln!(text, "  files       {}", self.files.join(", "));
        let _ = writeln!(
            text,
            "  report      {}",
            self.out.join(html::REPORT_FILE).display()
        );
        let _ = writeln!(
            text,
            "  attempts    {}",
            self.out.join("attempts").display()
        );
        text
    }
}

fn first_request() -> u32 {
    1
}

/// Why a run folder's `run.json` cannot be used (each variant's message
/// says what and how to fix it).
#[allow(missing_docs)]
#[derive(Debug, thiserror::Error)]
pub enum RunFileError {
    #[error("{} has no run.json; is it a folder `cadloop generate` wrote?", dir.display())]
    Missing { dir: PathBuf },
    #[error("cannot read {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} is damaged at line {line}, column {column}: {message}; nothing was changed (restore it from a copy, or start a new run with `cadloop generate`)", path.display())]
    Damaged {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{} was written by cadloop {version} (run format {format}); this cadloop reads format {RUN_FORMAT} only, so start a new run with `cadloop generate`", path.display())]
    OldFormat {
        path: PathBuf,
        format: u64,
        version: String,
    },
    #[error("{} does not add up: {what}; nothing was changed (restore it from a copy, or start a new run with `cadloop generate`)", path.display())]
    Inconsistent { path: PathBuf, what: String },
    #[error("{} was written by a newer cadloop ({version}, run format {format}); update cadloop to read it", path.display())]
    NewFormat {
        path: PathBuf,
        format: u64,
        version: String,
    },
}

/// Reads and checks `dir/run.json`.
pub fn read_run(dir: &Path) -> Result<RunRecord, RunFileError> {
    let path = dir.join(RUN_FILE);
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            return Err(RunFileError::Missing {
                dir: dir.to_path_buf(),
            })
        }
        Err(source) => return Err(RunFileError::Read { path, source }),
    };
    let damaged = |err: serde_json::Error| RunFileError::Damaged {
        path: path.clone(),
        line: err.line(),
        column: err.column(),
        message: err
            .to_string()
            .split(" at line ")
            .next()
            .unwrap_or("")
            .to_string(),
    };
    // The format first, so an old or new layout is named as such rather than
    // reported as a missing field.
    let value: serde_json::Value = serde_json::from_slice(&bytes).map_err(damaged)?;
    let format = value.get("format").and_then(serde_json::Value::as_u64);
    let version = value
        .get("cadloop_version")
        .and_then(serde_json::Value::as_str)
        .unwrap_or("unknown")
        .to_string();
    match format {
        Some(f) if f < u64::from(RUN_FORMAT) => {
            return Err(RunFileError::OldFormat {
                path,
                format: f,
                version,
            })
        }
        Some(f) if f > u64::from(RUN_FORMAT) => {
            return Err(RunFileError::NewFormat {
                path,
                format: f,
                version,
            })
        }
        _ => {}
    }
    let record: RunRecord = serde_json::from_slice(&bytes).map_err(damaged)?;
    check_record(&record).map_err(|what| RunFileError::Inconsistent { path, what })?;
    Ok(record)
}

/// The cross-references within a record: attempt and request numbers, the result.
fn check_record(record: &RunRecord) -> Result<(), String> {
    for (i, attempt) in record.attempts.iter().enumerate() {
        let n = i as u32 + 1;
        if attempt.number != n {
            return Err(format!("attempt {n} is numbered {}", attempt.number));
        }
        if attempt.request == 0 || attempt.request as usize > record.requests.len() {
            return Err(format!(
                "attempt {n} belongs to request {}, which is not recorded",
                attempt.request
            ));
        }
        if attempt.parent.is_some_and(|p| p == 0 || p >= n) {
            return Err(format!("attempt {n} names a later attempt as its parent"));
        }
    }
    if record.requests.is_empty() {
        return Err("no request is recorded".into());
    }
    for (i, request) in record.requests.iter().enumerate() {
        if request.number as usize != i + 1 {
            return Err(format!("request {} is numbered {}", i + 1, request.number));
        }
    }
    let count = record.attempts.len() as u32;
    if let Some(choice) = &record.chosen {
        if choice.attempt == 0 || choice.attempt > count {
            return Err(format!(
                "the result is attempt {}, but {count} attempts are recorded",
                choice.attempt
            ));
        }
    }
    Ok(())
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_written_before_the_names_changed_still_read() {
        let read = |text: &str| serde_json::from_str::<serde_json::Value>(text).unwrap();
        let stage: Stage = serde_json::from_value(read(r#""refine""#)).unwrap();
        assert_eq!(stage, Stage::Rewrite);
        let kind: RequestKind = serde_json::from_value(read(r#""refine""#)).unwrap();
        assert_eq!(kind, RequestKind::Edit);
        let purpose: Purpose = serde_json::from_value(read(r#""refine""#)).unwrap();
        assert_eq!(purpose, Purpose::Critique);
        // And are written with the new names.
        assert_eq!(
            serde_json::to_string(&Stage::Rewrite).unwrap(),
            r#""rewrite""#
        );
        assert_eq!(
            serde_json::to_string(&RequestKind::Edit).unwrap(),
            r#""edit""#
        );
        assert_eq!(
            serde_json::to_string(&Purpose::Critique).unwrap(),
            r#""critique""#
        );
        assert_eq!(Stage::Rewrite.as_str(), "rewrite");
        assert_eq!(Purpose::asking_for(Stage::Repair), Purpose::Repair);
    }
}
