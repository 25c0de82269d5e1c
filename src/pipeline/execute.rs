//! Running an attempt's code in a FreeCAD worker and recording what came back.

use crate::executor::Job;
use crate::mesh::Mesh;
use crate::report::{AttemptRecord, AttemptTimings};

use crate::run::attempt_path;

use super::{write_json, Execute, Run, Stop};

impl Run<'_> {
    /// Runs `run.code` as attempt `number` and records it (not yet in the
    /// run); with the solid's mesh when it built one, else the mesh of the
    /// shape the worker refused when there is one to draw.
    pub(super) async fn execute(
        &mut self,
        number: u32,
        run: Execute,
    ) -> Result<(AttemptRecord, Option<Mesh>, Option<Mesh>), Stop> {
        let Execute {
            code,
            stage,
            parent,
            round,
            usage,
            llm_ms,
            changes,
            ..
        } = run;
        let dir = self.attempt_dir(number);
        let output = self
            .engine
            .pool
            .run(Job {
                code: code.clone(),
                dir: dir.clone(),
                timeout: None,
                inputs: Vec::new(),
                checks: self.checks_now(),
            })
            .await?;
        let report = output.report;
        write_json(&dir.join(crate::run::RESULT_FILE), &report)?;
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
            changes,
            usage,
            timings: AttemptTimings {
                llm_ms,
                exec_ms,
                ..Default::default()
            },
        };
        Ok((attempt, output.mesh, output.refused))
    }
}
