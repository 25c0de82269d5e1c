//! `cadloop export-data`: runs → verified training dialogues (JSON lines),
//! with a summary on stderr and in FILE.stats.json.

use anyhow::Context;

use super::ExitStatus;
use crate::cli::ExportDataArgs;
use crate::export::{self, Options};

pub fn export_data(args: &ExportDataArgs) -> anyhow::Result<ExitStatus> {
    let exclude = match &args.exclude_ids {
        Some(path) => export::read_ids(path)?,
        None => Default::default(),
    };
    let sources = export::find_sources(&args.sources)?;
    let options = Options {
        format: args.format,
        turns: args.turns,
        only: args.only,
        exclude,
    };
    let (records, stats) = export::export(&sources, &options);
    let mut lines = Vec::new();
    for record in &records {
        serde_json::to_writer(&mut lines, record).expect("a JSON value serialises");
        lines.push(b'\n');
    }
    let stats_path = {
        let mut name = args.out.as_os_str().to_owned();
        name.push(".stats.json");
        std::path::PathBuf::from(name)
    };
    crate::files::write_atomically(&args.out, &lines)
        .with_context(|| format!("cannot write {}", args.out.display()))?;
    let stats_json = serde_json::to_vec_pretty(&stats).expect("stats serialise");
    crate::files::write_atomically(&stats_path, &stats_json)
        .with_context(|| format!("cannot write {}", stats_path.display()))?;

    let mut said = format!(
        "{} records → {} ({} runs, {} requests read; {} turns; {} repairs and {} rewrites, {:.2} repairs a record; tokens {} in, {} out)",
        stats.records,
        args.out.display(),
        stats.runs_read,
        stats.requests_read,
        stats.turns,
        stats.repairs,
        stats.rewrites,
        stats.repairs_per_record,
        stats.prompt_tokens,
        stats.completion_tokens,
    );
    if stats.checks_total > 0 {
        said.push_str(&format!(
            "\nchecks of the requests read: {} of {} passed ({:.0} %)",
            stats.checks_passed,
            stats.checks_total,
            stats.check_pass_rate * 100.0
        ));
    }
    for (reason, count) in &stats.left_out {
        said.push_str(&format!("\nleft out: {count} × {reason}"));
    }
    eprintln!("{said}\nsummary: {}", stats_path.display());
    Ok(ExitStatus::Success)
}
