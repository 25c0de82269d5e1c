//! Totals over every shard's results log, and the batch folder's index page.

use std::collections::HashSet;
use std::path::Path;

use serde::Serialize;

use crate::report::index;

use super::log::{read_results, result_logs};
use super::{BatchError, ResultRecord};
/// Totals over every shard's results.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    pub items: usize,
    pub with_model: usize,
    pub success_rate: f64,
    pub outcomes: std::collections::BTreeMap<String, usize>,
    pub mean_attempts: f64,
    pub mean_repairs: f64,
    pub mean_refines: f64,
    pub total_tokens: u64,
    pub mean_tokens: f64,
    pub total_seconds: f64,
    pub mean_seconds: f64,
    /// Items whose result ran checks, the mean share of checks they passed,
    /// and how many passed all.
    pub with_checks: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checks_pass_rate: Option<f64>,
    pub all_checks_pass: usize,
    /// Records of an id seen in more than one log (the first is counted).
    pub duplicates: usize,
    pub logs: Vec<String>,
}

/// `index.html` of a batch folder: one row per id (the first record of an
/// id counts, as in [`summarize`]), linking to the item's report.
pub fn index(out: &Path, summary: &Summary) -> Result<index::Index, BatchError> {
    let mut seen = HashSet::new();
    let rows = read_results(out)?
        .into_iter()
        .filter(|r| seen.insert(r.id.clone()))
        .map(|r| {
            let relative = r.summary.out.to_string_lossy().into_owned();
            let prompt = crate::report::read_run(&out.join(&relative))
                .map(|record| record.prompt)
                .unwrap_or_default();
            index::IndexRow::for_run(
                out,
                &relative,
                &r.id,
                &prompt,
                r.summary.outcome.as_str(),
                r.summary.attempts,
            )
        })
        .collect();
    Ok(index::Index {
        kind: "cadloop batch".into(),
        title: out
            .file_name()
            .map_or("batch".into(), |n| n.to_string_lossy().into_owned()),
        summary: vec![
            format!(
                "{} items, {:.1} % with a model ({}); {}",
                summary.items,
                summary.success_rate * 100.0,
                summary.with_model,
                summary
                    .outcomes
                    .iter()
                    .map(|(k, v)| format!("{k} {v}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            checks_line(summary),
            format!(
                "per item {:.2} attempts, {:.0} tokens, {:.1} s · from {}",
                summary.mean_attempts,
                summary.mean_tokens,
                summary.mean_seconds,
                summary.logs.join(", ")
            ),
        ],
        metrics: Vec::new(),
        rows,
    })
}

/// The checks in one line: how many results ran them and passed them.
pub fn checks_line(summary: &Summary) -> String {
    match summary.checks_pass_rate {
        Some(rate) => format!(
            "{} results ran checks: {:.1} % of checks passed, {} passed all",
            summary.with_checks,
            rate * 100.0,
            summary.all_checks_pass
        ),
        None => "no result ran checks".into(),
    }
}

/// Merges every results log in `out`.
pub fn summarize(out: &Path) -> Result<Summary, BatchError> {
    let logs = result_logs(out)?;
    let records = read_results(out)?;
    let mut seen = HashSet::new();
    let mut duplicates = 0;
    let unique: Vec<&ResultRecord> = records
        .iter()
        .filter(|r| {
            let new = seen.insert(r.id.clone());
            duplicates += usize::from(!new);
            new
        })
        .collect();
    let n = unique.len();
    let mean = |f: &dyn Fn(&ResultRecord) -> f64| {
        if n == 0 {
            0.0
        } else {
            unique.iter().map(|r| f(r)).sum::<f64>() / n as f64
        }
    };
    let mut outcomes = std::collections::BTreeMap::new();
    for r in &unique {
        *outcomes.entry(r.summary.outcome.to_string()).or_insert(0) += 1;
    }
    let with_model = unique
        .iter()
        .filter(|r| r.summary.outcome.has_model())
        .count();
    let total_tokens: u64 = unique.iter().map(|r| r.summary.tokens.total_tokens).sum();
    let total_seconds: f64 = unique.iter().map(|r| r.summary.seconds).sum();
    let checked: Vec<crate::checks::Tally> =
        unique.iter().filter_map(|r| r.summary.checks).collect();
    Ok(Summary {
        items: n,
        with_model,
        success_rate: if n == 0 {
            0.0
        } else {
            with_model as f64 / n as f64
        },
        outcomes,
        mean_attempts: mean(&|r| r.summary.attempts as f64),
        mean_repairs: mean(&|r| r.summary.repairs as f64),
        mean_refines: mean(&|r| r.summary.refines as f64),
        total_tokens,
        mean_tokens: mean(&|r| r.summary.tokens.total_tokens as f64),
        total_seconds,
        mean_seconds: mean(&|r| r.summary.seconds),
        with_checks: checked.len(),
        checks_pass_rate: (!checked.is_empty())
            .then(|| checked.iter().map(|t| t.rate()).sum::<f64>() / checked.len() as f64),
        all_checks_pass: checked.iter().filter(|t| t.all_pass()).count(),
        duplicates,
        logs: logs
            .iter()
            .map(|p| {
                p.file_name()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect(),
    })
}
