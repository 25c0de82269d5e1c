//! `cadloop refine RUN_DIR CHANGE`: a follow-up change to a run made earlier.

use anyhow::{bail, Context};

use crate::cli::{GlobalArgs, RefineArgs};
use crate::pipeline::Watch;
use crate::progress;
use crate::run::RunDir;

use super::settings::Settings;
use super::{read_request, report_run, start_attempt, ExitStatus};

/// `cadloop refine RUN_DIR CHANGE`.
pub async fn refine(global: &GlobalArgs, args: &RefineArgs) -> anyhow::Result<ExitStatus> {
    let change = read_request(
        args.change.as_deref(),
        args.change_file.as_deref(),
        ("CHANGE", "--change-file", "change"),
        "say what to change, e.g. \"make the hole 8 mm\"",
    )?;
    let dir = &args.run_dir;
    let (run_dir, record) = RunDir::open(dir)?;
    let from = start_attempt(&record, args.from_attempt)?;
    if record.status == crate::report::RunStatus::Running {
        tracing::warn!(
            "run.json says its last request never finished (the process was stopped); it stays recorded as it is"
        );
    }
    let setup = Settings::read(global)?.one_run(&args.run)?;
    let (engine, settings) = match setup.start_one_run().await? {
        Ok(started) => started,
        Err(cause) => {
            eprintln!(
                "{}: before the change started; {} is as it was",
                cause.describe(),
                dir.display()
            );
            return Ok(ExitStatus::Interrupted(cause));
        }
    };
    let requests = record.requests.len();
    let bar = progress::spinner(!global.quiet && !args.run.json);
    let result = engine
        .refine(
            &run_dir,
            record,
            &change,
            from,
            settings,
            &Watch::showing(&bar),
        )
        .await;
    progress::finish(&bar);
    engine.shutdown().await;
    let result = result.with_context(|| format!("the run in {} could not go on", dir.display()))?;
    let not_applied = result.record.requests.len() == requests;
    if let (Some(cause), true) = (result.interrupted, not_applied) {
        eprintln!(
            "{}: before the change made an attempt; {} is as it was",
            cause.describe(),
            dir.display()
        );
        return Ok(ExitStatus::Interrupted(cause));
    }
    if let (Some(err), true) = (&result.llm_error, not_applied) {
        let mut message = crate::error_chain(err);
        if let Some(hint) = err.hint() {
            message.push_str(&format!("\n  hint: {hint}"));
        }
        message.push_str(&format!(
            "\n  the change was not applied; {} is as it was",
            dir.display()
        ));
        bail!(message);
    }
    report_run(dir, &result, args.run.json)
}
