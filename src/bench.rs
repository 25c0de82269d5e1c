//! Benchmarks: datasets with (or without) reference meshes, scored with
//! `metrics`, summarised in tables.
//!
//! Stage in the flow: `cadloop bench DATASET` loads the cases here
//! ([`load_dataset`]), runs them through the batch engine, then
//! [`score_case`] scores each item's model (read by the executor's
//! `MeshLoader`) against its reference;
//! `cadloop bench score` does the same for another system's `<id>.stl` files.
//! [`report`] turns the scored cases into `bench.json` and `bench.md`.
//!
//! Dataset layouts:
//! - CADPrompt: a folder of `<id>/` folders with
//!   `Natural_Language_Descriptions_Prompt.txt` (or `…_with_specific_measurements.txt`,
//!   `--variant measurements`) and `Ground_Truth.stl`; an optional `strata.csv`
//!   (`id,semantic_complexity,mesh_complexity`) beside them. Its prompts ask
//!   for CadQuery, which is rewritten to FreeCAD.
//! - A text file, one prompt per line (Query2CAD): no references.
//! - JSONL: `id`, `prompt`, optional `reference` (STL, OBJ or STEP; relative
//!   to the file).

use crate::checks::Tally;
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::batch::{self, InputFormat, InputOptions, Item, Problem};
use crate::mesh::Mesh;
use crate::metrics::{self, MetricSettings, Scores};
use crate::report::{index, RunRecord};

pub const PROMPT_FILE: &str = "Natural_Language_Descriptions_Prompt.txt";
pub const MEASUREMENTS_PROMPT_FILE: &str =
    "Natural_Language_Descriptions_Prompt_with_specific_measurements.txt";
pub const REFERENCE_FILE: &str = "Ground_Truth.stl";
pub const STRATA_FILE: &str = "strata.csv";

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("cannot read {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: {message}", path.display())]
    Dataset { path: PathBuf, message: String },
    #[error("{} is not a usable strata table (id, then one column per stratification)", path.display())]
    Strata {
        path: PathBuf,
        #[source]
        source: csv::Error,
    },
    #[error(transparent)]
    Batch(#[from] batch::BatchError),
}

/// Which CADPrompt prompt to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Variant {
    Plain,
    Measurements,
}

/// One benchmark case.
#[derive(Debug, Clone, PartialEq)]
pub struct Case {
    pub item: Item,
    pub reference: Option<PathBuf>,
    /// Stratum names by table column (e.g. semantic_complexity → Simple).
    pub strata: BTreeMap<String, String>,
}

/// Loads a dataset: a CADPrompt folder, a JSONL file, or a text file of prompts.
pub fn load_dataset(
    path: &Path,
    variant: Variant,
) -> Result<(Vec<Case>, Vec<Problem>), BenchError> {
    if path.is_dir() {
        return load_cadprompt(path, variant);
    }
    let format = InputFormat::of(path);
    let options = InputOptions {
        format: if format == InputFormat::Jsonl {
            InputFormat::Jsonl
        } else {
            InputFormat::Text
        },
        id_column: String::new(),
        prompt_column: String::new(),
    };
    let (items, problems) = batch::read_items(path, &options)?;
    let base = path.parent().unwrap_or(Path::new("."));
    let cases = items
        .into_iter()
        .map(|mut item| {
            let reference = match item.extra.remove("reference") {
                Some(serde_json::Value::String(r)) => Some(base.join(r)),
                _ => None,
            };
            Case {
                item,
                reference,
                strata: BTreeMap::new(),
            }
        })
        .collect();
    Ok((cases, problems))
}

fn load_cadprompt(dir: &Path, variant: Variant) -> Result<(Vec<Case>, Vec<Problem>), BenchError> {
    let read_dir = std::fs::read_dir(dir).map_err(|source| BenchError::Read {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut ids: Vec<String> = read_dir
        .flatten()
        .filter(|e| e.path().is_dir())
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .collect();
    ids.sort();
    let strata = read_strata(&dir.join(STRATA_FILE))?;
    let prompt_file = match variant {
        Variant::Plain => PROMPT_FILE,
        Variant::Measurements => MEASUREMENTS_PROMPT_FILE,
    };
    let mut cases = Vec::new();
    let mut problems = Vec::new();
    for (n, id) in ids.iter().enumerate() {
        let case_dir = dir.join(id);
        let prompt = match std::fs::read_to_string(case_dir.join(prompt_file)) {
            Ok(text) if !text.trim().is_empty() => freecad_prompt(text.trim()),
            _ => {
                problems.push(Problem {
                    line: n + 1,
                    message: format!("{id}/{prompt_file} is missing or empty"),
                });
                continue;
            }
        };
        let reference = case_dir.join(REFERENCE_FILE);
        cases.push(Case {
            item: Item {
                id: id.clone(),
                dir_name: batch::safe_dir_name(id),
                prompt,
                line: n + 1,
                extra: serde_json::Map::new(),
            },
            reference: reference.is_file().then_some(reference),
            strata: strata.get(id).cloned().unwrap_or_default(),
        });
    }
    if cases.is_empty() {
        return Err(BenchError::Dataset {
            path: dir.to_path_buf(),
            message: format!("no case folder holds {prompt_file}; is this a CADPrompt folder?"),
        });
    }
    Ok((cases, problems))
}

/// `strata.csv`: id, then one column per stratification.
fn read_strata(path: &Path) -> Result<HashMap<String, BTreeMap<String, String>>, BenchError> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Ok(HashMap::new());
    };
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let headers: Vec<String> = reader
        .headers()
        .map_err(|source| BenchError::Strata {
            path: path.to_path_buf(),
            source,
        })?
        .iter()
        .map(str::to_string)
        .collect();
    let mut out = HashMap::new();
    for record in reader.records() {
        let record = record.map_err(|source| BenchError::Strata {
            path: path.to_path_buf(),
            source,
        })?;
        let Some(id) = record.get(0) else { continue };
        let strata = headers
            .iter()
            .zip(record.iter())
            .skip(1)
            .map(|(h, v)| (h.clone(), v.to_string()))
            .collect();
        out.insert(id.to_string(), strata);
    }
    Ok(out)
}

/// CADPrompt's prompts ask for CadQuery; cadloop writes FreeCAD.
pub fn freecad_prompt(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let lower = text.to_ascii_lowercase();
    let mut at = 0;
    while let Some(found) = lower[at..].find("cadquery") {
        let start = at + found;
        out.push_str(&text[at..start]);
        out.push_str("FreeCAD");
        at = start + "cadquery".len();
    }
    out.push_str(&text[at..]);
    out
}

/// One scored case, as bench.json lists it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CaseScore {
    pub id: String,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub strata: BTreeMap<String, String>,
    /// The run's outcome (match, mismatch, unverified, failed), or "missing".
    pub outcome: String,
    /// A valid solid was built.
    pub compiled: bool,
    /// A valid solid judged to match by refine round r, for r = 0 (the first
    /// generation and its repairs), 1, 2, 3.
    pub success_by_round: [bool; 4],
    pub repairs: usize,
    pub tokens: u64,
    pub seconds: f64,
    /// Against the reference; `None` when the case has none.
    #[serde(flatten)]
    pub scores: Option<Scores>,
    /// The result's parameters, the dimensions as the LLM named them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parameters: Vec<crate::params::Parameter>,
    /// The result's checks, passed of run; `None` when it ran none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checks: Option<Tally>,
    /// MATCH verdicts the LLM gave in the run, and how many of them failing
    /// checks overruled.
    #[serde(default)]
    pub match_verdicts: u32,
    #[serde(default)]
    pub overruled_matches: u32,
}

/// Scores a case from its run record (if any) and model (if any).
pub fn score_case(
    case: &Case,
    record: Option<&RunRecord>,
    model: Option<&Mesh>,
    reference: Option<&Mesh>,
    settings: &MetricSettings,
) -> CaseScore {
    let compiled = model.is_some() && record.is_none_or(|r| r.outcome.has_model());
    let mut success_by_round = [false; 4];
    if let Some(record) = record {
        for attempt in &record.attempts {
            if attempt.executed() && attempt.matched() {
                for (r, flag) in success_by_round.iter_mut().enumerate() {
                    *flag |= attempt.round as usize <= r;
                }
            }
        }
    }
    let scores = reference.map(|reference| match model {
        Some(model) if compiled => {
            metrics::score(model, reference, settings).unwrap_or_else(|_| Scores::failed())
        }
        _ => Scores::failed(),
    });
    CaseScore {
        id: case.item.id.clone(),
        strata: case.strata.clone(),
        outcome: record
            .map_or(
                if model.is_some() {
                    "unverified"
                } else {
                    "missing"
                },
                |r| r.outcome.as_str(),
            )
            .to_string(),
        compiled,
        success_by_round,
        repairs: record.map_or(0, |r| {
            r.attempts
                .iter()
                .filter(|a| a.stage == crate::report::Stage::Repair)
                .count()
        }),
        tokens: record.map_or(0, |r| r.usage.total_tokens),
        seconds: record.map_or(0.0, |r| r.timings.total_ms / 1e3),
        scores,
        parameters: record.map(result_parameters).unwrap_or_default(),
        checks: record.and_then(result_checks),
        match_verdicts: record.map_or(0, |r| count_critiques(r, |_| true)),
        overruled_matches: record.map_or(0, |r| count_critiques(r, |c| c.overruled)),
    }
}

/// The checks of a run's result, passed of run.
fn result_checks(record: &RunRecord) -> Option<Tally> {
    record
        .chosen
        .as_ref()
        .and_then(|c| record.attempts.get(c.attempt as usize - 1))
        .and_then(crate::report::AttemptRecord::checks)
}

/// The run's MATCH verdicts that `which` picks.
fn count_critiques(
    record: &RunRecord,
    which: impl Fn(&crate::report::CritiqueRecord) -> bool,
) -> u32 {
    record
        .attempts
        .iter()
        .filter_map(|a| a.critique.as_ref())
        .filter(|c| c.verdict == Some(crate::critique::Verdict::Match) && which(c))
        .count() as u32
}

/// The parameters of a run's result.
fn result_parameters(record: &RunRecord) -> Vec<crate::params::Parameter> {
    record
        .chosen
        .as_ref()
        .and_then(|c| record.attempts.get(c.attempt as usize - 1))
        .map(|a| a.result.parameters.clone())
        .unwrap_or_default()
}

/// Reads a batch item's run record and model, when they exist.
pub fn read_item(dir: &Path) -> (Option<RunRecord>, Option<PathBuf>) {
    // Through report's reader, so a run.json of another format counts as none.
    let record = crate::report::read_run(dir).ok();
    let model = dir.join("model.stl");
    let has_model = record.as_ref().is_some_and(|r| r.outcome.has_model());
    (record, (has_model && model.is_file()).then_some(model))
}

/// Summary figures over a set of cases.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Table {
    pub cases: usize,
    pub compile_rate: f64,
    pub success_rate: f64,
    /// Success after the first generation, then after 1, 2, 3 refine rounds.
    pub success_by_round: [f64; 4],
    pub mean_repairs: f64,
    pub mean_tokens: f64,
    pub mean_seconds: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub median_pcd: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mean_pcd: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub median_hausdorff: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mean_iogt: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mean_iou: Option<f64>,
    /// Of the cases whose result ran checks: how many, the mean share of
    /// checks passed, and the share passing all of them.
    pub cases_with_checks: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checks_pass_rate: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub all_checks_pass: Option<f64>,
    /// MATCH verdicts given, and the share of them with failing checks.
    pub match_verdicts: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub overruled_match_rate: Option<f64>,
}

pub fn table(cases: &[&CaseScore]) -> Table {
    let n = cases.len().max(1) as f64;
    let share = |f: &dyn Fn(&CaseScore) -> bool| cases.iter().filter(|c| f(c)).count() as f64 / n;
    let scored: Vec<Scores> = cases.iter().filter_map(|c| c.scores).collect();
    let values = |f: fn(&Scores) -> f64| -> Vec<f64> { scored.iter().map(f).collect() };
    let mean = |v: Vec<f64>| (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64);
    let median = |mut v: Vec<f64>| {
        (!v.is_empty()).then(|| {
            v.sort_by(f64::total_cmp);
            let m = v.len() / 2;
            if v.len() % 2 == 0 {
                (v[m - 1] + v[m]) / 2.0
            } else {
                v[m]
            }
        })
    };
    let checked: Vec<Tally> = cases.iter().filter_map(|c| c.checks).collect();
    let match_verdicts = cases.iter().map(|c| c.match_verdicts).sum::<u32>();
    Table {
        cases: cases.len(),
        compile_rate: share(&|c| c.compiled),
        success_rate: share(&|c| c.success_by_round[3] || c.outcome == "match"),
        success_by_round: [0, 1, 2, 3].map(|r| share(&|c| c.success_by_round[r])),
        mean_repairs: cases.iter().map(|c| c.repairs as f64).sum::<f64>() / n,
        mean_tokens: cases.iter().map(|c| c.tokens as f64).sum::<f64>() / n,
        mean_seconds: cases.iter().map(|c| c.seconds).sum::<f64>() / n,
        median_pcd: median(values(|s| s.pcd)),
        mean_pcd: mean(values(|s| s.pcd)),
        median_hausdorff: median(values(|s| s.hausdorff)),
        mean_iogt: mean(values(|s| s.iogt)),
        mean_iou: mean(values(|s| s.iou)),
        cases_with_checks: checked.len(),
        checks_pass_rate: mean(checked.iter().map(|t| t.rate()).collect()),
        all_checks_pass: mean(
            checked
                .iter()
                .map(|t| if t.all_pass() { 1.0 } else { 0.0 })
                .collect(),
        ),
        match_verdicts,
        overruled_match_rate: (match_verdicts > 0).then(|| {
            f64::from(cases.iter().map(|c| c.overruled_matches).sum::<u32>())
                / f64::from(match_verdicts)
        }),
    }
}

/// bench.json.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BenchReport {
    pub dataset: String,
    pub samples: usize,
    pub seed: u64,
    pub align: metrics::Align,
    pub voxels: usize,
    pub overall: Table,
    /// Per stratification column, per stratum.
    pub strata: BTreeMap<String, BTreeMap<String, Table>>,
    pub cases: Vec<CaseScore>,
}

pub fn report(dataset: &str, settings: &MetricSettings, cases: Vec<CaseScore>) -> BenchReport {
    let all: Vec<&CaseScore> = cases.iter().collect();
    let mut strata: BTreeMap<String, BTreeMap<String, Vec<&CaseScore>>> = BTreeMap::new();
    for case in &cases {
        for (column, value) in &case.strata {
            strata
                .entry(column.clone())
                .or_default()
                .entry(value.clone())
                .or_default()
                .push(case);
        }
    }
    BenchReport {
        dataset: dataset.to_string(),
        samples: settings.samples,
        seed: settings.seed,
        align: settings.align,
        voxels: settings.voxels,
        overall: table(&all),
        strata: strata
            .into_iter()
            .map(|(column, groups)| {
                (
                    column,
                    groups.into_iter().map(|(k, v)| (k, table(&v))).collect(),
                )
            })
            .collect(),
        cases,
    }
}

/// `index.html` of a bench folder: one row per case with its scores,
/// linking to the run's report (when the run is here) and the case page.
pub fn index(out: &Path, report: &BenchReport, cases: &[Case]) -> index::Index {
    let scores: HashMap<&str, &CaseScore> =
        report.cases.iter().map(|c| (c.id.as_str(), c)).collect();
    let fmt = |v: f64| format!("{v:.4}");
    let rows = cases
        .iter()
        .map(|case| {
            let relative = format!("{}/{}", batch::ITEMS_DIR, case.item.dir_name);
            let score = scores.get(case.item.id.as_str());
            let record = crate::report::read_run(&out.join(&relative)).ok();
            let mut row = index::IndexRow::for_run(
                out,
                &relative,
                &case.item.id,
                &case.item.prompt,
                score.map_or("missing", |s| s.outcome.as_str()),
                record.as_ref().map_or(0, |r| r.attempts.len()),
            );
            let case_dir = format!("cases/{}", case.item.dir_name);
            if out.join(&case_dir).join("case.md").is_file() {
                row.links.push(index::Link {
                    name: "comparison".into(),
                    href: format!("{case_dir}/case.md"),
                });
            }
            if row.thumbnail.is_none() && out.join(&case_dir).join("result.png").is_file() {
                row.thumbnail = Some(format!("{case_dir}/result.png"));
            }
            row.metrics = match score.and_then(|s| s.scores.as_ref()) {
                Some(s) => vec![fmt(s.pcd), fmt(s.hausdorff), fmt(s.iogt), fmt(s.iou)],
                None => vec!["–".into(); 4],
            };
            row
        })
        .collect();
    let t = &report.overall;
    let mut summary = vec![format!(
        "{} cases · compiled {:.1} % · success {:.1} % · {:.2} repairs, {:.0} tokens, {:.1} s per case",
        t.cases,
        t.compile_rate * 100.0,
        t.success_rate * 100.0,
        t.mean_repairs,
        t.mean_tokens,
        t.mean_seconds
    )];
    if let (Some(pcd), Some(iou)) = (t.median_pcd, t.mean_iou) {
        summary.push(format!(
            "median PCD {pcd:.4} · mean IoU {iou:.4} · the full tables are in bench.md"
        ));
    }
    if let Some(rate) = t.checks_pass_rate {
        summary.push(format!(
            "checks: {:.1} % passed over {} results · {} MATCH verdicts, {:.1} % of them with failing checks",
            rate * 100.0,
            t.cases_with_checks,
            t.match_verdicts,
            t.overruled_match_rate.unwrap_or(0.0) * 100.0
        ));
    }
    index::Index {
        kind: "cadloop bench".into(),
        title: report.dataset.clone(),
        summary,
        metrics: ["PCD", "Hausdorff", "IoGT", "IoU"]
            .map(String::from)
            .to_vec(),
        rows,
    }
}

/// bench.md: the tables.
pub fn markdown(report: &BenchReport) -> String {
    let mut md = format!(
        "# cadloop bench: {}\n\n{} cases; metrics on {} points per surface (seed {}), alignment {}, IoU on {}³ voxels.\n\n",
        report.dataset,
        report.overall.cases,
        report.samples,
        report.seed,
        match report.align { metrics::Align::Icp => "ICP", metrics::Align::None => "none" },
        report.voxels
    );
    let header = "| set | cases | compile | success | checks passed | median PCD | mean PCD | median Hausdorff | mean IoGT | mean IoU |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n";
    let row = |name: &str, t: &Table| {
        let f = |v: Option<f64>| v.map_or("–".to_string(), |v| format!("{v:.3}"));
        let checks = t.checks_pass_rate.map_or("–".to_string(), |r| {
            format!("{:.1} % ({} cases)", r * 100.0, t.cases_with_checks)
        });
        format!(
            "| {name} | {} | {:.1} % | {:.1} % | {checks} | {} | {} | {} | {} | {} |\n",
            t.cases,
            t.compile_rate * 100.0,
            t.success_rate * 100.0,
            f(t.median_pcd),
            f(t.mean_pcd),
            f(t.median_hausdorff),
            f(t.mean_iogt),
            f(t.mean_iou)
        )
    };
    md.push_str("## Overall\n\n");
    md.push_str(header);
    md.push_str(&row("all", &report.overall));
    for (column, groups) in &report.strata {
        let _ = write!(md, "\n## By {column}\n\n{header}");
        for (name, t) in groups {
            md.push_str(&row(name, t));
        }
    }
    md.push_str("\n## Success by refine round\n\n| after | success |\n| --- | ---: |\n");
    for (r, share) in report.overall.success_by_round.iter().enumerate() {
        let label = if r == 0 {
            "first generation".to_string()
        } else {
            format!("{r} refine round{}", if r == 1 { "" } else { "s" })
        };
        let _ = writeln!(md, "| {label} | {:.1} % |", share * 100.0);
    }
    let _ = write!(
        md,
        "\nPer case: {:.2} repairs, {:.0} tokens, {:.1} s on average.\n",
        report.overall.mean_repairs, report.overall.mean_tokens, report.overall.mean_seconds
    );
    md.push_str(&checks_markdown(&report.overall));
    md
}

/// bench.md's paragraph on the checks: how often results pass them, and how
/// often the LLM said MATCH while checks failed.
fn checks_markdown(t: &Table) -> String {
    let mut md = String::from("\n## Checks\n\n");
    match (t.checks_pass_rate, t.all_checks_pass) {
        (Some(rate), Some(all)) => {
            let _ = writeln!(
                md,
                "{} of {} results ran checks written from their prompts; they passed {:.1} % of them on average, and {:.1} % of those results passed all.",
                t.cases_with_checks,
                t.cases,
                rate * 100.0,
                all * 100.0
            );
        }
        _ => md.push_str("No result ran checks.\n"),
    }
    match t.overruled_match_rate {
        Some(rate) => {
            let _ = writeln!(
                md,
                "The LLM judged an attempt a MATCH {} times; {:.1} % of those attempts failed a check, so the verdict did not stand.",
                t.match_verdicts,
                rate * 100.0
            );
        }
        None => md.push_str("The LLM gave no MATCH verdict.\n"),
    }
    md
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cadquery_becomes_freecad_in_any_case() {
        assert_eq!(
            freecad_prompt("write a python code using CADquery to create a disc. Use cadQuery."),
            "write a python code using FreeCAD to create a disc. Use FreeCAD."
        );
    }

    #[test]
    fn a_cadprompt_folder_with_strata_loads() {
        let dir = tempfile::tempdir().unwrap();
        for (id, prompt) in [
            ("00000001", "using CADQuery make a disc"),
            ("00000002", "a plate"),
        ] {
            std::fs::create_dir(dir.path().join(id)).unwrap();
            std::fs::write(dir.path().join(id).join(PROMPT_FILE), prompt).unwrap();
            std::fs::write(
                dir.path().join(id).join(MEASUREMENTS_PROMPT_FILE),
                format!("{prompt}, 10 mm"),
            )
            .unwrap();
        }
        std::fs::write(
            dir.path().join("00000001").join(REFERENCE_FILE),
            "solid x\nendsolid x\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join(STRATA_FILE),
            "id,semantic_complexity,mesh_complexity\n00000001,Simple,Complex\n",
        )
        .unwrap();
        let (cases, problems) = load_dataset(dir.path(), Variant::Measurements).unwrap();
        assert!(problems.is_empty());
        assert_eq!(cases.len(), 2);
        assert_eq!(cases[0].item.prompt, "using FreeCAD make a disc, 10 mm");
        assert!(cases[0].reference.is_some() && cases[1].reference.is_none());
        assert_eq!(cases[0].strata["semantic_complexity"], "Simple");
        assert!(cases[1].strata.is_empty());
    }

    #[test]
    fn tables_count_compiles_successes_and_take_medians() {
        let case = |id: &str, compiled: bool, rounds: [bool; 4], pcd: f64| CaseScore {
            id: id.into(),
            strata: BTreeMap::new(),
            outcome: if rounds[3] {
                "match"
            } else if compiled {
                "mismatch"
            } else {
                "failed"
            }
            .into(),
            compiled,
            success_by_round: rounds,
            repairs: 1,
            tokens: 100,
            seconds: 2.0,
            scores: Some(Scores {
                pcd,
                hausdorff: pcd * 2.0,
                iogt: 1.0,
                iou: 0.5,
            }),
            parameters: Vec::new(),
            checks: Some(Tally {
                passed: if compiled { 2 } else { 0 },
                total: 2,
            }),
            match_verdicts: u32::from(rounds[3]),
            overruled_matches: 0,
        };
        let cases = [
            case("a", true, [true; 4], 0.1),
            case("b", true, [false, true, true, true], 0.3),
            case("c", false, [false; 4], 3f64.sqrt()),
        ];
        let t = table(&cases.iter().collect::<Vec<_>>());
        assert!((t.compile_rate - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!(
            t.success_by_round,
            [1.0 / 3.0, 2.0 / 3.0, 2.0 / 3.0, 2.0 / 3.0]
        );
        assert_eq!(t.median_pcd, Some(0.3));
        assert_eq!(t.cases_with_checks, 3);
        assert!((t.checks_pass_rate.unwrap() - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!(t.match_verdicts, 2);
        assert_eq!(t.overruled_match_rate, Some(0.0));
        assert!((t.mean_pcd.unwrap() - (0.4 + 3f64.sqrt()) / 3.0).abs() < 1e-12);
    }
}
