//! The end of a request: its result chosen, its files copied to the top of
//! the run folder, its outcome recorded.

use crate::report::RunStatus;

use super::decide;
use super::{PipelineError, Run};

impl Run<'_> {
    /// Picks the request's result, copies its files to the top of the run
    /// folder, and sets the outcome.
    pub(super) fn finish(&mut self, reason: String) -> Result<(), PipelineError> {
        let request = self.request;
        let mine = self.record.attempts.iter().filter(|a| a.request == request);
        let (chosen, outcome) = decide::choose_result(mine);
        tracing::info!(outcome = outcome.as_str(), reason = %reason, "run finished");
        let current = self.current();
        current.chosen = chosen.clone();
        current.outcome = outcome;
        current.stop_reason = reason.clone();
        if chosen.is_none() && self.record.requests.len() > 1 && self.without_llm() {
            // A failed tweak leaves the run's earlier result, files and page as they were.
            self.record.status = RunStatus::Finished;
            return Ok(());
        }
        self.dir.promote(chosen.as_ref().map(|c| c.attempt))?;
        self.record.chosen = chosen;
        self.record.outcome = outcome;
        self.record.stop_reason = reason;
        self.record.status = RunStatus::Finished;
        Ok(())
    }
}
