//! `cadloop tweak RUN_DIR NAME=VALUE...`: new parameter values for a run's
//! part, rebuilt without the LLM.

use std::fmt::Write as _;
use std::io::Write as _;

use anyhow::Context;

use crate::cli::{GlobalArgs, TweakArgs};
use crate::params::{Assignment, Parameter};
use crate::pipeline::{Tweak, Watch};
use crate::progress;
use crate::report::RunRecord;
use crate::run::RunDir;

use super::settings::Settings;
use super::{report_run, start_attempt, ExitStatus};

/// `cadloop tweak RUN_DIR NAME=VALUE...` and `cadloop tweak RUN_DIR --list`.
pub async fn tweak(global: &GlobalArgs, args: &TweakArgs) -> anyhow::Result<ExitStatus> {
    let dir = &args.run_dir;
    let (run_dir, record) = RunDir::open(dir)?;
    let from = start_attempt(&record, args.from_attempt)?;
    if args.list {
        print_parameters(&record.attempt(from).result.parameters, from, args.json)?;
        return Ok(ExitStatus::Success);
    }
    // Every value is checked before anything starts, so a refusal changes nothing.
    let assignments = match args
        .values
        .iter()
        .map(|v| Assignment::parse(v))
        .collect::<Result<Vec<_>, _>>()
    {
        Ok(assignments) => assignments,
        Err(err) => return Ok(refuse(&err.to_string(), dir)),
    };
    let tweak = match Tweak::new(&record, from, &assignments) {
        Ok(tweak) => tweak,
        Err(err) => return Ok(refuse(&err.to_string(), dir)),
    };
    let setup = Settings::read(global)?.tweak(args.captioner.as_deref(), &args.limits)?;
    let (engine, settings) = match setup.start_one_run().await? {
        Ok(started) => started,
        Err(cause) => {
            eprintln!(
                "{}: before the tweak started; {} is as it was",
                cause.describe(),
                dir.display()
            );
            return Ok(ExitStatus::Interrupted(cause));
        }
    };
    let bar = progress::spinner(!global.quiet && !args.json);
    let result = engine
        .tweak(&run_dir, record, tweak, settings, &Watch::showing(&bar))
        .await;
    progress::finish(&bar);
    engine.shutdown().await;
    let result = result.with_context(|| format!("the run in {} could not go on", dir.display()))?;
    if result.interrupted.is_none() {
        if let Some(message) = failed_tweak(&result.record) {
            eprintln!("error: {message}");
            eprintln!(
                "  the failed attempt is recorded; the run's result is unchanged in {}",
                dir.display()
            );
            return Ok(ExitStatus::Failed);
        }
    }
    report_run(dir, &result, args.json)
}

/// Says why a tweak was refused; the run is untouched.
fn refuse(message: &str, dir: &std::path::Path) -> ExitStatus {
    eprintln!("error: {message}");
    eprintln!("  nothing was changed in {}", dir.display());
    ExitStatus::Failed
}

/// The error of the last request's attempt, when the tweak built no solid.
fn failed_tweak(record: &RunRecord) -> Option<String> {
    let attempt = record.latest_failed_attempt()?;
    let crate::executor::Outcome::Error {
        kind,
        message,
        line,
        ..
    } = &attempt.result.outcome
    else {
        return None;
    };
    let at = line.map(|l| format!(" at line {l}")).unwrap_or_default();
    Some(format!(
        "the new values made the code fail (attempt {}, {kind}{at}):\n{}",
        attempt.number,
        message
            .lines()
            .map(|l| format!("  {l}"))
            .collect::<Vec<_>>()
            .join("\n")
    ))
}

/// `--list`: one line per parameter, or JSON.
fn print_parameters(parameters: &[Parameter], from: u32, json: bool) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    if json {
        serde_json::to_writer_pretty(&mut stdout, parameters)?;
        writeln!(stdout)?;
        return Ok(());
    }
    if parameters.is_empty() {
        writeln!(
            stdout,
            "attempt {from} has no parameters (no `NAME = number` lines at the top of its code)"
        )?;
        return Ok(());
    }
    let width = parameters.iter().map(|p| p.name.len()).max().unwrap_or(0);
    let mut text = format!("parameters of attempt {from}:\n");
    for p in parameters {
        let _ = write!(
            text,
            "  {:<width$} = {:<10} {:<5} line {}",
            p.name,
            p.text,
            p.kind.to_string(),
            p.line
        );
        if !p.comment.is_empty() {
            let _ = write!(text, "  # {}", p.comment);
        }
        text.push('\n');
    }
    write!(stdout, "{text}")?;
    Ok(())
}
