//! The subcommands, one file each: resolve the settings, call the library,
//! print, return an [`ExitStatus`]. Errors here are `anyhow` with context;
//! `main.rs` prints them and exits 2.
//!
//! - [`exec`], [`render`], [`caption`]: one script, one model, some images.
//! - [`generate`], [`refine`]: one run of the loop, new or continued;
//!   [`tweak`]: new parameter values for a run, no LLM.
//! - [`batch`], [`bench`]: many runs (bench also scores them).
//! - [`export_data`]: training data from runs.
//! - [`serve`]: the studio, a local web app over a runs folder.
//! - [`doctor`]: the environment, checked.
//! - [`settings`]: each command family's settings, resolved once.

pub mod batch;
pub mod bench;
pub mod caption;
pub mod captions_dataset;
pub mod doctor;
pub mod exec;
pub mod export_data;
pub mod generate;
pub mod mcp;
pub mod refine;
pub mod render;
pub mod serve;
pub mod settings;
pub mod tweak;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};

use crate::files;
use crate::interrupt::Cause;
use crate::report::RunSummary;

/// How a command ended, and so the process's exit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    /// It did what was asked (0).
    Success,
    /// The generated or given code built no model (1).
    Failed,
    /// Usage or environment errors, or work cut short by them (2).
    Error,
    /// A signal stopped it (130 for SIGINT, 143 for SIGTERM).
    Interrupted(Cause),
}

impl From<ExitStatus> for ExitCode {
    fn from(status: ExitStatus) -> ExitCode {
        match status {
            ExitStatus::Success => ExitCode::SUCCESS,
            ExitStatus::Failed => ExitCode::from(1),
            ExitStatus::Error => ExitCode::from(2),
            ExitStatus::Interrupted(cause) => ExitCode::from(cause.exit_code()),
        }
    }
}

fn read_script(path: &Path) -> anyhow::Result<String> {
    read_text(path, "script")
}

/// A UTF-8 text file (`what`: a script, a prompt); one that is not UTF-8 is
/// refused with where it goes wrong.
fn read_text(path: &Path, what: &str) -> anyhow::Result<String> {
    let bytes = std::fs::read(path)
        .with_context(|| format!("cannot read the {what} {}", path.display()))?;
    match String::from_utf8(bytes) {
        Ok(code) => Ok(code),
        Err(err) => {
            let at = err.utf8_error().valid_up_to();
            let line = err.as_bytes()[..at].iter().filter(|&&b| b == b'\n').count() + 1;
            bail!(
                "{} is not UTF-8 text (bad byte at offset {at}, line {line}); save it as UTF-8",
                path.display()
            )
        }
    }
}

/// Checks that `--out` may be used: a new folder, an empty one, or an earlier
/// output (it has a result.json), so no file of the user's is overwritten.
pub fn check_out_dir(dir: &Path) -> anyhow::Result<()> {
    check_out(
        dir,
        Some(crate::run::RESULT_FILE),
        " and is not an earlier cadloop output (no result.json); choose a new or empty folder",
    )
}

/// `--out DIR` must not be a file, and a folder holding files must hold
/// `earlier` (an output this command may write over); `refusal` ends the
/// message "--out DIR already holds files" for one that holds other files.
pub(super) fn check_out(dir: &Path, earlier: Option<&str>, refusal: &str) -> anyhow::Result<()> {
    if dir.exists() && !dir.is_dir() {
        bail!(
            "--out {} exists and is not a folder; choose another path",
            dir.display()
        );
    }
    let reusable = earlier.is_some_and(|file| dir.join(file).exists());
    if dir.is_dir() && !reusable {
        let mut entries = std::fs::read_dir(dir)
            .with_context(|| format!("cannot read the folder {}", dir.display()))?;
        if entries.next().is_some() {
            bail!("--out {} already holds files{refusal}", dir.display());
        }
    }
    Ok(())
}

/// Creates the (checked) output folder and returns its absolute path: workers run elsewhere.
pub fn create_out_dir(dir: &Path) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create the folder {}", dir.display()))?;
    dir.canonicalize()
        .with_context(|| format!("cannot resolve the folder {}", dir.display()))
}

/// Writes JSON through a temporary file and a rename, so a reader never sees half of it.
pub fn write_json_atomically(path: &Path, value: &impl serde::Serialize) -> anyhow::Result<()> {
    files::write_json_atomically(path, value)
        .with_context(|| format!("cannot write {}", path.display()))
}

/// Prints a run's summary (or its error) and gives the exit status.
fn report_run(
    shown: &Path,
    result: &crate::pipeline::RunResult,
    json: bool,
) -> anyhow::Result<ExitStatus> {
    let record = &result.record;
    if let (Some(cause), false) = (result.interrupted, shown.exists()) {
        eprintln!(
            "{}: before the first attempt; nothing was kept",
            cause.describe()
        );
        return Ok(ExitStatus::Interrupted(cause));
    }
    if let Some(err) = &result.llm_error {
        if !record.outcome.has_model() {
            let mut message = record
                .error
                .clone()
                .unwrap_or_else(|| crate::error_chain(err));
            if let Some(hint) = err.hint() {
                message.push_str(&format!("\n  hint: {hint}"));
            }
            if shown.exists() {
                message.push_str(&format!(
                    "\n  the attempts so far are in {}",
                    shown.display()
                ));
            }
            bail!(message);
        }
    }
    let summary = RunSummary::of(shown, record);
    let mut stdout = std::io::stdout().lock();
    if json {
        serde_json::to_writer_pretty(&mut stdout, &summary)?;
        writeln!(stdout)?;
    } else {
        write!(stdout, "{}", summary.text(record))?;
    }
    if let Some(cause) = result.interrupted {
        eprintln!(
            "{}: the run stopped early; {} records what was done, and `cadloop refine` can go on from it",
            cause.describe(),
            shown.join(crate::report::RUN_FILE).display()
        );
        return Ok(ExitStatus::Interrupted(cause));
    }
    Ok(if record.outcome.has_model() {
        ExitStatus::Success
    } else {
        ExitStatus::Failed
    })
}

/// Text from an argument, standard input ("-") or a file; never empty.
/// `names`: the argument, the file flag, and what the text is.
fn read_request(
    arg: Option<&str>,
    file: Option<&Path>,
    names: (&str, &str, &str),
    example: &str,
) -> anyhow::Result<String> {
    let (arg_name, file_flag, what) = names;
    let (text, from) = match (arg, file) {
        (Some("-"), _) => {
            let mut text = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut text).with_context(|| {
                format!("cannot read the {what} from standard input (is it UTF-8 text?)")
            })?;
            (text, "standard input".to_string())
        }
        (Some(p), _) => (p.to_string(), format!("the {arg_name} argument")),
        (None, Some(path)) => (read_text(path, what)?, path.display().to_string()),
        (None, None) => bail!("give the {what} as {arg_name} or {file_flag} FILE"),
    };
    let text = text.trim().to_string();
    if text.is_empty() {
        bail!("the {what} ({from}) is empty; {example}");
    }
    let most = crate::pipeline::MAX_REQUEST_CHARS;
    if text.chars().count() > most {
        bail!("the {what} ({from}) is longer than {most} characters; shorten it");
    }
    Ok(text)
}

/// The attempt a change starts from (the library's rule), refused in the
/// command line's words.
pub(super) fn start_attempt(
    record: &crate::report::RunRecord,
    asked: Option<u32>,
) -> anyhow::Result<u32> {
    crate::pipeline::start_attempt(record, asked)
        .map_err(|err| anyhow::anyhow!(err.explain("--from-attempt")))
}
