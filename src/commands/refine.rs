//! `cadloop refine RUN_DIR CHANGE`: a follow-up change to a run made earlier.

use anyhow::{bail, Context};

use crate::cli::{GlobalArgs, RefineArgs};
use crate::executor::Outcome;
use crate::progress;
use crate::run::RunDir;

use super::settings::Settings;
use super::{read_request, report_run, ExitStatus};

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
        .refine(&run_dir, record, &change, from, settings, &bar)
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

/// The attempt a change starts from: the one asked for, else the run's result.
fn start_attempt(record: &crate::report::RunRecord, asked: Option<u32>) -> anyhow::Result<u32> {
    let built: Vec<String> = record
        .attempts
        .iter()
        .filter(|a| a.executed())
        .map(|a| a.number.to_string())
        .collect();
    let choose = if built.is_empty() {
        "no attempt of this run built a solid, so there is nothing to change; start again with `cadloop generate`".to_string()
    } else {
        format!(
            "choose one that built a solid with --from-attempt N: {}",
            built.join(", ")
        )
    };
    let n = match (asked, &record.chosen) {
        (Some(n), _) => n,
        (None, Some(choice)) => return Ok(choice.attempt),
        (None, None) => bail!("the run has no result to start from; {choose}"),
    };
    let Some(attempt) = record.attempts.get((n as usize).wrapping_sub(1)) else {
        bail!(
            "--from-attempt {n}: the run has attempts 1 to {}; {choose}",
            record.attempts.len()
        );
    };
    if let Outcome::Error { kind, line, .. } = &attempt.result.outcome {
        let at = line.map(|l| format!(" at line {l}")).unwrap_or_default();
        bail!("--from-attempt {n}: that attempt built no solid (it failed: {kind}{at}); {choose}");
    }
    Ok(n)
}
