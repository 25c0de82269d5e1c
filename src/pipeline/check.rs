//! The request's checks in the loop: recorded as the LLM wrote them with the
//! request's first script, sent with every job, shown in the prompts, and,
//! when a critique argues that one misreads the request, changed with the
//! reason and run again on the attempt it judged.

use crate::checks::{self, CheckCall, Checks, ChecksError};
use crate::prompts::ChecksContext;
use crate::report::ChecksRecord;

use super::{write_json, PipelineError, Run, Stop};

/// The folder, inside an attempt's, where its code runs again for new checks.
const RECHECK_DIR: &str = "recheck";

impl Run<'_> {
    /// Records the checks a reply carried (`None`: it had none) for the
    /// current request; `reason`: why they replace the earlier ones.
    pub(super) fn record_checks(
        &mut self,
        attempt: u32,
        checks: Option<Result<Checks, ChecksError>>,
        reason: Option<String>,
    ) {
        match checks {
            Some(Ok(checks)) => self.current().checks.push(ChecksRecord {
                attempt,
                source: checks.source,
                calls: checks.calls,
                reason,
                error: None,
            }),
            Some(Err(err)) => {
                let why = err.to_string();
                self.refuse_checks(attempt, err.written, reason, why);
            }
            None => self.refuse_checks(
                attempt,
                String::new(),
                reason,
                "the reply gave no ```checks block".into(),
            ),
        }
    }

    /// Records checks that are not put in force: as written, and why.
    pub(super) fn refuse_checks(
        &mut self,
        attempt: u32,
        source: String,
        reason: Option<String>,
        why: String,
    ) {
        tracing::warn!(attempt, %why, "checks not put in force");
        self.current().checks.push(ChecksRecord {
            attempt,
            source,
            calls: Vec::new(),
            reason,
            error: Some(why),
        });
    }

    /// The checks every job of the current request runs.
    pub(super) fn checks_now(&self) -> Vec<CheckCall> {
        self.record.request(self.request).checks_in_force().to_vec()
    }

    /// The checks in force as the prompts list them; empty when none.
    pub(super) fn checks_text(&self) -> String {
        checks::describe(self.record.request(self.request).checks_in_force())
    }

    /// What the critique of attempt `number` is told of the checks.
    pub(super) fn checks_context(&self, number: u32) -> ChecksContext {
        let attempt = self.record.attempt(number);
        let request = self.record.request(self.request);
        let tally = checks::Tally::of(&attempt.result.checks);
        let problem = match request.checks.last() {
            Some(last) if last.error.is_some() && request.checks_in_force().is_empty() => {
                last.error.clone().unwrap_or_default()
            }
            _ => String::new(),
        };
        ChecksContext {
            on: self.engine.checks,
            passed: tally.passed,
            total: tally.total,
            failures: checks::describe_failures(&attempt.result.checks),
            problem,
        }
    }

    /// Runs attempt `number`'s code again with the checks now in force and
    /// replaces its check results (after the LLM changed the checks).
    pub(super) async fn recheck(&mut self, number: u32) -> Result<(), Stop> {
        let dir = self.attempt_dir(number);
        let scratch = dir.join(RECHECK_DIR);
        let report = self
            .engine
            .check(
                self.record.attempt(number).code.clone(),
                self.checks_now(),
                &scratch,
            )
            .await?;
        std::fs::remove_dir_all(&scratch).map_err(|source| PipelineError::Write {
            path: scratch.clone(),
            source,
        })?;
        if !report.is_ok() {
            tracing::warn!(
                attempt = number,
                "the code did not build again for the new checks; its results stay as they were"
            );
            return Ok(());
        }
        let attempt = self.attempt_mut(number);
        attempt.result.checks = report.checks;
        attempt.result.timings.checks_ms = report.timings.checks_ms;
        let result = attempt.result.clone();
        write_json(&dir.join(crate::run::RESULT_FILE), &result)?;
        Ok(())
    }
}
