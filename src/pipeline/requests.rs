//! How a request starts: a new run from a prompt ([`Engine::run`]) or from
//! code given as it is ([`Engine::run_given`]), a change in words
//! ([`Engine::refine`]) or new parameter values ([`Engine::tweak`]) for a
//! finished run. Each builds or extends the run's record and hands the
//! first step to the loop.

use std::time::Instant;

use crate::llm::Usage;
use crate::prompts::SystemContext;
use crate::report::{
    ChecksRecord, CritiqueBasis, RequestKind, RequestRecord, RunOutcome, RunRecord, RunSettings,
    RunStatus, RunTimings, Stage, RUN_FORMAT,
};
use crate::run::RunDir;

use super::{Engine, Execute, PipelineError, Run, RunResult, Step, Tweak, Watch};

impl Engine {
    /// Runs the loop for `prompt`, writing into `dir` (a new or empty run folder).
    pub async fn run(
        &self,
        prompt: &str,
        dir: &RunDir,
        settings: RunSettings,
        watch: &Watch,
    ) -> Result<RunResult, PipelineError> {
        let record = self.new_record(prompt, RequestKind::Generate, settings);
        let run = self.start_run(dir, record, watch)?;
        let first = run.ask_generate(prompt)?;
        run.go(first).await
    }

    /// Runs `code`, given as it is, as the first attempt of a new run in
    /// `dir` (a new or empty run folder): no LLM, no repair, no critique.
    /// `prompt` says what the code builds; `checks`, when given, are the
    /// request's, run on the solid as the LLM's would be.
    pub async fn run_given(
        &self,
        prompt: &str,
        code: String,
        checks: Option<crate::checks::Checks>,
        dir: &RunDir,
        settings: RunSettings,
        watch: &Watch,
    ) -> Result<RunResult, PipelineError> {
        let mut record = self.new_record(prompt, RequestKind::Given, settings);
        if let Some(checks) = checks {
            record.requests[0].checks.push(ChecksRecord {
                attempt: 1,
                source: checks.source,
                calls: checks.calls,
                reason: None,
                error: None,
            });
        }
        let run = self.start_run(dir, record, watch)?;
        run.go(Step::Execute(Execute::supplied(
            code,
            Stage::Given,
            None,
            Vec::new(),
        )))
        .await
    }

    /// A new run's record, with its first request.
    fn new_record(&self, prompt: &str, kind: RequestKind, settings: RunSettings) -> RunRecord {
        let mut record = RunRecord {
            format: RUN_FORMAT,
            cadloop_version: env!("CARGO_PKG_VERSION").to_string(),
            status: RunStatus::Running,
            prompt: prompt.to_string(),
            settings: settings.clone(),
            requests: Vec::new(),
            attempts: Vec::new(),
            chosen: None,
            outcome: RunOutcome::Pending,
            stop_reason: String::new(),
            critique_basis: self.critique_basis(),
            usage: Usage::default(),
            llm_calls: 0,
            calls: Vec::new(),
            timings: RunTimings::default(),
            error: None,
        };
        add_request(&mut record, kind, prompt, None, settings);
        record
    }

    /// Applies a follow-up change to a finished run in `dir` (its record
    /// already read and checked), starting from attempt `from`, which built a
    /// solid. The new attempts are added after the existing ones.
    pub async fn refine(
        &self,
        dir: &RunDir,
        mut record: RunRecord,
        change: &str,
        from: u32,
        settings: RunSettings,
        watch: &Watch,
    ) -> Result<RunResult, PipelineError> {
        let before = dir.snapshot(&record);
        add_request(
            &mut record,
            RequestKind::Edit,
            change,
            Some(from),
            settings.clone(),
        );
        record.settings = settings;
        record.status = RunStatus::Running;
        record.outcome = RunOutcome::Pending;
        record.stop_reason = String::new();
        record.error = None;
        record.critique_basis = self.critique_basis();
        let mut run = self.start_run(dir, record, watch)?;
        run.before = Some(before);
        let first = run.ask_edit(from, change)?;
        run.go(first).await
    }

    /// Runs `code` (attempt `from`'s with new parameter values) as a new
    /// attempt of a finished run in `dir`: no LLM, no repair, no critique;
    /// rendered and captioned like any attempt. When it fails, the run's
    /// result stays as it was.
    pub async fn tweak(
        &self,
        dir: &RunDir,
        mut record: RunRecord,
        tweak: Tweak,
        settings: RunSettings,
        watch: &Watch,
    ) -> Result<RunResult, PipelineError> {
        let before = dir.snapshot(&record);
        // The checks of the request the starting attempt served run again on the new values.
        let served = record.attempt(tweak.from).request;
        let carried = record
            .request(served)
            .checks
            .iter()
            .rev()
            .find(|c| c.error.is_none())
            .cloned();
        let text = tweak
            .changes
            .iter()
            .map(|c| format!("{}={}", c.name, c.to))
            .collect::<Vec<_>>()
            .join(" ");
        add_request(
            &mut record,
            RequestKind::Tweak,
            &text,
            Some(tweak.from),
            settings.clone(),
        );
        if let Some(checks) = carried {
            let next = record.attempts.len() as u32 + 1;
            let last = record.requests.last_mut().expect("just added");
            last.checks.push(ChecksRecord {
                attempt: next,
                reason: Some(format!(
                    "the checks of request {served}, run again on the new values"
                )),
                ..checks
            });
        }
        // The run keeps naming the LLM that wrote its code.
        let llm = record.settings.llm.take();
        record.settings = RunSettings {
            llm: settings.llm.or(llm),
            ..settings
        };
        record.status = RunStatus::Running;
        let mut run = self.start_run(dir, record, watch)?;
        run.before = Some(before);
        run.go(Step::Execute(Execute::supplied(
            tweak.code,
            Stage::Tweak,
            Some(tweak.from),
            tweak.changes,
        )))
        .await
    }

    pub(super) fn critique_basis(&self) -> CritiqueBasis {
        if self.captioner.is_some() {
            CritiqueBasis::CaptionsAndGeometry
        } else {
            CritiqueBasis::Geometry
        }
    }

    pub(super) fn start_run<'a>(
        &'a self,
        dir: &'a RunDir,
        record: RunRecord,
        watch: &'a Watch,
    ) -> Result<Run<'a>, PipelineError> {
        let system = self.prompts.system(&SystemContext {
            allowed_modules: self.allowed_modules.clone(),
            checks: self.checks,
            agent: false,
        })?;
        let mut run = Run {
            engine: self,
            dir,
            system,
            started: Instant::now(),
            earlier_ms: record.timings.total_ms,
            watch,
            calls: record.llm_calls,
            request: record.requests.len() as u32,
            record,
            before: None,
        };
        run.save()?;
        Ok(run)
    }
}

/// Adds the next request to `record`.
fn add_request(
    record: &mut RunRecord,
    kind: RequestKind,
    text: &str,
    from_attempt: Option<u32>,
    settings: RunSettings,
) {
    record.requests.push(RequestRecord {
        number: record.requests.len() as u32 + 1,
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
        checks: Vec::new(),
    });
}
