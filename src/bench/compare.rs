//! Two bench folders on the same cases, side by side: per metric the paired
//! differences (B − A) with a paired bootstrap interval and the Wilcoxon
//! signed-rank p-value, and the cases that changed most. This is how a
//! prompt, a model or a loop setting is shown to help, or not.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::batch;
use crate::metrics::{Metric, Protocol};

use super::stats::{self, Estimate};
use super::{BenchReport, CaseScore};

/// How many cases the comparison lists as changed most.
const MOST_CHANGED: usize = 10;

/// Paired differences of one figure over the cases both folders scored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Paired {
    pub cases: usize,
    pub mean_a: f64,
    pub mean_b: f64,
    /// Mean of B − A, with its paired bootstrap interval.
    pub mean_difference: Estimate,
    pub median_difference: Estimate,
    /// Wilcoxon signed-rank, two-sided; `None` when no case differs.
    pub wilcoxon_p: Option<f64>,
    /// Cases where B is better, where A is, and where they are equal.
    pub b_better: usize,
    pub a_better: usize,
    pub equal: usize,
}

/// One case's change in the headline metric.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Change {
    pub id: String,
    pub a: f64,
    pub b: f64,
    pub difference: f64,
}

/// `cadloop bench compare A B`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    pub a: String,
    pub b: String,
    pub protocol: Protocol,
    #[serde(default = "super::table::first_version")]
    pub protocol_version: u32,
    pub paired: usize,
    pub only_a: Vec<String>,
    pub only_b: Vec<String>,
    pub metrics: BTreeMap<Metric, Paired>,
    /// Valid model made (1) or not (0).
    pub compile: Option<Paired>,
    /// Success (1) or not (0); `None` when success does not apply to both.
    pub success: Option<Paired>,
    /// The headline metric's biggest changes, largest first.
    pub changed: Vec<Change>,
}

/// Two bench reports could not be compared.
#[derive(Debug, thiserror::Error)]
pub enum CompareError {
    #[error("{a} was scored with protocol {pa} and {b} with {pb}: their numbers do not compare; score both with the same --protocol")]
    Protocol {
        a: String,
        b: String,
        pa: &'static str,
        pb: &'static str,
    },
    #[error("{a} was scored with {pa} and {b} with {pb}: their numbers do not compare; score {older} again with `cadloop bench` (or `cadloop bench score`), which scores with this cadloop's protocols")]
    Version {
        a: String,
        b: String,
        pa: String,
        pb: String,
        older: String,
    },
    #[error("{a} and {b} were scored with different settings ({what}): their numbers do not compare; score both with the same --samples, --sampling and --align")]
    Settings { a: String, b: String, what: String },
    #[error("{a} and {b} have no case in common (cases are paired by id)")]
    NoCommonCase { a: String, b: String },
}

/// Compares bench report `b` with `a`, case by case.
pub fn compare(
    a: &BenchReport,
    b: &BenchReport,
    a_name: &str,
    b_name: &str,
) -> Result<Comparison, CompareError> {
    if a.protocol != b.protocol {
        return Err(CompareError::Protocol {
            a: a_name.into(),
            b: b_name.into(),
            pa: a.protocol.as_str(),
            pb: b.protocol.as_str(),
        });
    }
    if a.protocol_version != b.protocol_version {
        return Err(CompareError::Version {
            a: a_name.into(),
            b: b_name.into(),
            pa: a.scored_by().to_string(),
            pb: b.scored_by().to_string(),
            older: if a.protocol_version < b.protocol_version {
                a_name
            } else {
                b_name
            }
            .into(),
        });
    }
    let (sa, sb) = (&a.settings, &b.settings);
    let mut differ = Vec::new();
    if sa.samples != sb.samples {
        differ.push(format!("{} and {} points", sa.samples, sb.samples));
    }
    if sa.sampling != sb.sampling {
        differ.push(format!(
            "{} and {} sampling",
            sa.sampling.as_str(),
            sb.sampling.as_str()
        ));
    }
    if sa.align != sb.align {
        differ.push("one aligned, one not".to_string());
    }
    if !differ.is_empty() {
        return Err(CompareError::Settings {
            a: a_name.into(),
            b: b_name.into(),
            what: differ.join(", "),
        });
    }
    let in_b: HashMap<&str, &CaseScore> = b.cases.iter().map(|c| (c.id.as_str(), c)).collect();
    let in_a: HashMap<&str, &CaseScore> = a.cases.iter().map(|c| (c.id.as_str(), c)).collect();
    let pairs: Vec<(&CaseScore, &CaseScore)> = a
        .cases
        .iter()
        .filter_map(|x| in_b.get(x.id.as_str()).map(|y| (x, *y)))
        .collect();
    if pairs.is_empty() {
        return Err(CompareError::NoCommonCase {
            a: a_name.into(),
            b: b_name.into(),
        });
    }
    let metrics: BTreeMap<Metric, Paired> = a
        .protocol
        .metrics()
        .iter()
        .filter_map(|&m| {
            let values: Vec<(f64, f64)> = pairs
                .iter()
                .filter_map(|(x, y)| Some((x.scores.as_ref()?.get(m)?, y.scores.as_ref()?.get(m)?)))
                .collect();
            paired(&values, m.lower_is_better()).map(|p| (m, p))
        })
        .collect();
    let flag = |f: bool| f64::from(u8::from(f));
    let compile: Vec<(f64, f64)> = pairs
        .iter()
        .map(|(x, y)| (flag(x.compiled), flag(y.compiled)))
        .collect();
    let success: Vec<(f64, f64)> = pairs
        .iter()
        .filter_map(|(x, y)| Some((flag(x.success()?), flag(y.success()?))))
        .collect();
    Ok(Comparison {
        a: a_name.into(),
        b: b_name.into(),
        protocol: a.protocol,
        protocol_version: a.protocol_version,
        paired: pairs.len(),
        only_a: a
            .cases
            .iter()
            .filter(|c| !in_b.contains_key(c.id.as_str()))
            .map(|c| c.id.clone())
            .collect(),
        only_b: b
            .cases
            .iter()
            .filter(|c| !in_a.contains_key(c.id.as_str()))
            .map(|c| c.id.clone())
            .collect(),
        metrics,
        compile: paired(&compile, false),
        success: paired(&success, false),
        changed: most_changed(&pairs, a.protocol.metrics()[0]),
    })
}

/// Paired figures of (A, B) values; `lower_is_better` says which side wins.
fn paired(values: &[(f64, f64)], lower_is_better: bool) -> Option<Paired> {
    let differences: Vec<f64> = values.iter().map(|(a, b)| b - a).collect();
    let better = |d: f64| if lower_is_better { d < 0.0 } else { d > 0.0 };
    Some(Paired {
        cases: values.len(),
        mean_a: stats::mean(&values.iter().map(|v| v.0).collect::<Vec<_>>())?,
        mean_b: stats::mean(&values.iter().map(|v| v.1).collect::<Vec<_>>())?,
        mean_difference: stats::bootstrap(&differences, stats::mean)?,
        median_difference: stats::bootstrap(&differences, stats::median)?,
        wilcoxon_p: stats::wilcoxon(&differences),
        b_better: differences.iter().filter(|d| better(**d)).count(),
        a_better: differences
            .iter()
            .filter(|d| **d != 0.0 && !better(**d))
            .count(),
        equal: differences.iter().filter(|d| **d == 0.0).count(),
    })
}

fn most_changed(pairs: &[(&CaseScore, &CaseScore)], metric: Metric) -> Vec<Change> {
    let mut changes: Vec<Change> = pairs
        .iter()
        .filter_map(|(x, y)| {
            let (a, b) = (
                x.scores.as_ref()?.get(metric)?,
                y.scores.as_ref()?.get(metric)?,
            );
            Some(Change {
                id: x.id.clone(),
                a,
                b,
                difference: b - a,
            })
        })
        .filter(|c| c.difference != 0.0)
        .collect();
    changes.sort_by(|p, q| q.difference.abs().total_cmp(&p.difference.abs()));
    changes.truncate(MOST_CHANGED);
    changes
}

/// The comparison as Markdown; `a_dir` and `b_dir` prefix the links to the case pages.
pub fn markdown(c: &Comparison, a_dir: &str, b_dir: &str) -> String {
    let mut md = format!(
        "# cadloop bench compare\n\nA = {}, B = {}; protocol {} version {}; {} cases paired by id",
        c.a,
        c.b,
        c.protocol.as_str(),
        c.protocol_version,
        c.paired
    );
    if !c.only_a.is_empty() || !c.only_b.is_empty() {
        let _ = write!(
            md,
            " ({} only in A, {} only in B, left out)",
            c.only_a.len(),
            c.only_b.len()
        );
    }
    md.push_str(".\nDifferences are B − A; intervals are 95 % paired bootstrap intervals; p is the two-sided Wilcoxon signed-rank test.\n\n");
    md.push_str("| figure | A mean | B mean | mean B − A [95 % CI] | median B − A [95 % CI] | p | B better / A better / equal |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: |\n");
    let mut rows: Vec<(String, &Paired)> = c
        .metrics
        .iter()
        .map(|(m, p)| {
            (
                format!(
                    "{} ({} is better)",
                    m.label(),
                    if m.lower_is_better() {
                        "lower"
                    } else {
                        "higher"
                    }
                ),
                p,
            )
        })
        .collect();
    rows.extend(c.compile.as_ref().map(|p| ("compile rate".to_string(), p)));
    rows.extend(c.success.as_ref().map(|p| ("success rate".to_string(), p)));
    for (name, p) in rows {
        let _ = writeln!(
            md,
            "| {name} | {:.4} | {:.4} | {} | {} | {} | {} / {} / {} |",
            p.mean_a,
            p.mean_b,
            p.mean_difference.text(4),
            p.median_difference.text(4),
            p.wilcoxon_p.map_or("–".to_string(), p_value),
            p.b_better,
            p.a_better,
            p.equal
        );
    }
    if !c.changed.is_empty() {
        let metric = c.protocol.metrics()[0];
        let _ = write!(
            md,
            "\n## Changed most ({})\n\n| case | A | B | B − A | pages |\n| --- | ---: | ---: | ---: | --- |\n",
            metric.label()
        );
        for change in &c.changed {
            let dir = batch::safe_dir_name(&change.id);
            let _ = writeln!(
                md,
                "| {} | {:.4} | {:.4} | {:+.4} | [A]({a_dir}/cases/{dir}/case.md) · [B]({b_dir}/cases/{dir}/case.md) |",
                change.id, change.a, change.b, change.difference
            );
        }
    }
    md
}

/// A p-value to three significant digits, small ones in exponent form.
fn p_value(p: f64) -> String {
    if p < 0.001 {
        format!("{p:.2e}")
    } else {
        format!("{p:.3}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{MetricSettings, Scores};

    fn case(id: usize, pcd: f64) -> CaseScore {
        CaseScore {
            id: format!("case{id:03}"),
            strata: BTreeMap::new(),
            outcome: "match".into(),
            compiled: true,
            success_by_round: Some([true; 4]),
            repairs: 0,
            cost: None,
            scores: Some(Scores(BTreeMap::from([
                (Metric::Pcd, pcd),
                (Metric::Hausdorff, pcd * 2.0),
                (Metric::Iogt, 0.9),
            ]))),
            absolute: None,
            baselines: None,
            parameters: Vec::new(),
            checks: None,
            match_verdicts: 1,
            overruled_matches: 0,
        }
    }

    fn bench(cases: Vec<CaseScore>) -> BenchReport {
        super::super::report(
            "synthetic",
            &MetricSettings::of(Protocol::Cadprompt),
            None,
            cases,
        )
    }

    /// 60 cases whose PCD spreads over [0.05, 0.35).
    fn spread(i: usize) -> f64 {
        0.05 + 0.3 * ((i * 37) % 60) as f64 / 60.0
    }

    #[test]
    fn a_known_shift_gives_an_interval_that_excludes_zero() {
        let a = bench((0..60).map(|i| case(i, spread(i))).collect());
        // B is better by 0.02 on every case, give or take a little.
        let b = bench(
            (0..60)
                .map(|i| case(i, spread(i) - 0.02 + 0.004 * ((i % 5) as f64 - 2.0)))
                .collect(),
        );
        let c = compare(&a, &b, "A", "B").unwrap();
        let pcd = &c.metrics[&Metric::Pcd];
        assert_eq!(pcd.cases, 60);
        assert!((pcd.mean_difference.value + 0.02).abs() < 1e-9, "{pcd:?}");
        assert!(
            pcd.mean_difference.ci[1] < 0.0,
            "the interval excludes 0: {pcd:?}"
        );
        assert!(pcd.wilcoxon_p.unwrap() < 1e-6, "{pcd:?}");
        assert_eq!((pcd.b_better, pcd.a_better), (60, 0));
        assert_eq!(c.changed.len(), MOST_CHANGED);
        let md = markdown(&c, "runs/a", "runs/b");
        assert!(md.contains("[A](runs/a/cases/case"), "{md}");
    }

    #[test]
    fn identical_results_give_an_interval_that_contains_zero() {
        let a = bench((0..60).map(|i| case(i, spread(i))).collect());
        let c = compare(&a, &a.clone(), "A", "A again").unwrap();
        let pcd = &c.metrics[&Metric::Pcd];
        assert_eq!(pcd.mean_difference.ci, [0.0, 0.0]);
        assert_eq!(pcd.wilcoxon_p, None, "no case differs");
        assert_eq!(pcd.equal, 60);
        // Noise without a shift: the interval holds 0.
        let b = bench(
            (0..60)
                .map(|i| case(i, spread(i) + 0.01 * if i % 2 == 0 { 1.0 } else { -1.0 }))
                .collect(),
        );
        let c = compare(&a, &b, "A", "B").unwrap();
        let pcd = &c.metrics[&Metric::Pcd];
        assert!(
            pcd.mean_difference.ci[0] <= 0.0 && pcd.mean_difference.ci[1] >= 0.0,
            "{pcd:?}"
        );
        assert!(pcd.wilcoxon_p.unwrap() > 0.5, "{pcd:?}");
    }

    #[test]
    fn different_protocols_or_no_common_case_are_refused() {
        let a = bench(vec![case(1, 0.1)]);
        let mut b = a.clone();
        b.protocol = Protocol::Text2cad;
        let err = compare(&a, &b, "A", "B").unwrap_err().to_string();
        assert!(
            err.contains("protocol cadprompt") && err.contains("text2cad"),
            "{err}"
        );
        let other = bench(vec![case(2, 0.1)]);
        assert!(compare(&a, &other, "A", "B").is_err());
    }

    #[test]
    fn other_revisions_or_settings_of_one_protocol_are_refused() {
        let a = bench(vec![case(1, 0.1)]);
        // A folder scored by an earlier cadloop, read from its bench.json.
        let mut text = serde_json::to_value(&a).unwrap();
        text.as_object_mut().unwrap().remove("protocol_version");
        let old: BenchReport = serde_json::from_value(text).unwrap();
        assert_eq!(old.protocol_version, 1);
        let err = compare(&old, &a, "old", "new").unwrap_err().to_string();
        assert!(
            err.contains("cadprompt version 1")
                && err.contains("cadprompt version 2")
                && err.contains("score old again"),
            "{err}"
        );
        let mut uniform = a.clone();
        uniform.settings.sampling = crate::metrics::Sampling::Uniform;
        let err = compare(&a, &uniform, "A", "B").unwrap_err().to_string();
        assert!(err.contains("poisson and uniform sampling"), "{err}");
        assert!(compare(&a, &a.clone(), "A", "B").is_ok());
    }
}
