//! The end of a request: its result chosen, its files copied to the top of
//! the run folder, its outcome recorded.

use std::path::PathBuf;

use crate::executor::MODEL_FILES;
use crate::files;
use crate::render::View;
use crate::report::RunStatus;

use super::decide;
use super::{copy, PipelineError, Run};

impl Run<'_> {
    /// Picks the request's result, copies its files to the top of the run
    /// folder, and sets the outcome.
    pub(super) fn finish(&mut self, reason: String) -> Result<(), PipelineError> {
        let request = self.request;
        let mine = self.record.attempts.iter().filter(|a| a.request == request);
        let (chosen, outcome) = decide::choose_result(mine);
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
}
