//! `cadloop generate PROMPT`: one run of the loop into a new folder.

use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::cli::{GenerateArgs, GlobalArgs};
use crate::pipeline::Watch;
use crate::progress;
use crate::run::RunDir;

use super::settings::Settings;
use super::{read_request, report_run, ExitStatus};

/// `cadloop generate PROMPT`.
pub async fn generate(global: &GlobalArgs, args: &GenerateArgs) -> anyhow::Result<ExitStatus> {
    let prompt = read_prompt(args)?;
    let setup = Settings::read(global)?.one_run(&args.run)?;
    let shown = match &args.out {
        Some(dir) => {
            check_run_dir(dir)?;
            dir.clone()
        }
        None => default_run_dir(&prompt),
    };
    let (engine, settings) = match setup.start_one_run().await? {
        Ok(started) => started,
        Err(cause) => {
            eprintln!(
                "{}: before the run started; nothing was written",
                cause.describe()
            );
            return Ok(ExitStatus::Interrupted(cause));
        }
    };
    let created = !shown.exists();
    let run_dir = RunDir::create(&shown)?;
    let out = run_dir.path();
    let bar = progress::spinner(!global.quiet && !args.run.json);
    let result = engine
        .run(&prompt, &run_dir, settings, &Watch::showing(&bar))
        .await;
    progress::finish(&bar);
    engine.shutdown().await;
    let result = result.with_context(|| format!("the run in {} could not go on", out.display()))?;
    let ended_early = result.llm_error.is_some() || result.interrupted.is_some();
    if ended_early && result.record.attempts.is_empty() && created {
        // Nothing happened worth keeping: leave no folder behind.
        let _ = std::fs::remove_dir_all(out);
    }
    report_run(&shown, &result, args.run.json)
}

/// The prompt from the argument, standard input ("-") or --prompt-file; never empty.
fn read_prompt(args: &GenerateArgs) -> anyhow::Result<String> {
    read_request(
        args.prompt.as_deref(),
        args.prompt_file.as_deref(),
        ("PROMPT", "--prompt-file", "prompt"),
        "describe the part, e.g. \"a 40 x 20 x 10 mm block with a 6 mm hole\"",
    )
}

/// A run folder must be new or empty: a run never mixes its attempts with another's.
fn check_run_dir(dir: &Path) -> anyhow::Result<()> {
    super::check_out(
        dir,
        None,
        "; choose a new or empty folder (leave --out out for a fresh one under runs/)",
    )
}

/// `runs/<first words of the prompt>`, with -2, -3, … when taken.
fn default_run_dir(prompt: &str) -> PathBuf {
    crate::run::free_folder(Path::new("runs"), &crate::run::slug(prompt))
}
