//! Tables over cases: rates, medians and means with their bootstrap
//! intervals, the baselines' figures on the same cases, absolute errors and
//! cost; overall and per stratum. [`report`] makes bench.json of them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::checks::Tally;
use crate::metrics::{Metric, MetricSettings, Protocol, BASELINES};

use super::stats::{self, Estimate};
use super::CaseScore;

/// A metric over the cases that have it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MetricSummary {
    pub cases: usize,
    pub median: Estimate,
    pub mean: Estimate,
    pub iqr: f64,
}

impl MetricSummary {
    fn of(values: &[f64]) -> Option<MetricSummary> {
        Some(MetricSummary {
            cases: values.len(),
            median: stats::bootstrap(values, stats::median)?,
            mean: stats::bootstrap(values, stats::mean)?,
            iqr: stats::iqr(values)?,
        })
    }
}

/// Prices in money per million tokens (`--price-in`, `--price-out`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Price {
    pub input: f64,
    pub output: f64,
}

/// What the runs spent.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CostSummary {
    pub runs: usize,
    pub llm_calls: u64,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub seconds: f64,
    /// Mean wall time per run, with its interval.
    pub seconds_per_case: Estimate,
    /// With prices given: the whole bench, and per run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub money: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub money_per_case: Option<f64>,
}

/// Size and volume against the references, over the cases with both meshes.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AbsoluteSummary {
    pub cases: usize,
    /// Median of |result − reference| of the sorted sizes, largest side first,
    /// in the references' units.
    pub median_size_error: [f64; 3],
    /// Median volume ratio (result ÷ reference), over the cases with both volumes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_ratio: Option<Estimate>,
    /// Share of those whose volume is within 10 % of the reference's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_within_10_percent: Option<f64>,
}

/// Summary figures over a set of cases.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Table {
    pub cases: usize,
    /// Cases with a valid model (1 − the invalidity ratio).
    pub compile_rate: Estimate,
    /// A valid model judged to match, checks passing; `None` when no case
    /// has a run record (another system's meshes).
    #[serde(default)]
    pub success_rate: Option<Estimate>,
    #[serde(default)]
    pub success_by_round: Option<[f64; 4]>,
    pub mean_repairs: f64,
    /// The protocol's metrics over the cases that have them.
    pub metrics: BTreeMap<Metric, MetricSummary>,
    /// The same metrics for each baseline, on the same cases.
    pub baselines: BTreeMap<String, BTreeMap<Metric, MetricSummary>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub absolute: Option<AbsoluteSummary>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost: Option<CostSummary>,
    /// Of the cases whose result ran checks: how many, the mean share of
    /// checks passed, and the share passing all of them.
    pub cases_with_checks: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checks_pass_rate: Option<Estimate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub all_checks_pass: Option<Estimate>,
    /// MATCH verdicts given, and the share of them with failing checks.
    pub match_verdicts: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overruled_match_rate: Option<f64>,
}

/// The summary table of `cases` under `protocol`: rates, metric statistics and, with a price, costs.
pub fn table(cases: &[&CaseScore], protocol: Protocol, price: Option<Price>) -> Table {
    let n = cases.len().max(1) as f64;
    let compiled: Vec<bool> = cases.iter().map(|c| c.compiled).collect();
    let successes: Vec<bool> = cases.iter().filter_map(|c| c.success()).collect();
    let ran: Vec<&[bool; 4]> = cases
        .iter()
        .filter_map(|c| c.success_by_round.as_ref())
        .collect();
    let metric_values = |m: Metric, scores: &dyn Fn(&CaseScore) -> Option<f64>| {
        let values: Vec<f64> = cases.iter().filter_map(|c| scores(c)).collect();
        MetricSummary::of(&values).map(|s| (m, s))
    };
    let metrics = protocol
        .metrics()
        .iter()
        .filter_map(|&m| metric_values(m, &|c| c.scores.as_ref()?.get(m)))
        .collect();
    let baselines = BASELINES
        .iter()
        .map(|(name, _)| {
            let by_metric = protocol
                .metrics()
                .iter()
                .filter_map(|&m| metric_values(m, &|c| c.baselines.as_ref()?.get(name)?.get(m)))
                .collect();
            (name.to_string(), by_metric)
        })
        .collect();
    let checked: Vec<Tally> = cases.iter().filter_map(|c| c.checks).collect();
    let match_verdicts = cases.iter().map(|c| c.match_verdicts).sum::<u32>();
    Table {
        cases: cases.len(),
        compile_rate: stats::rate(&compiled).unwrap_or(Estimate {
            value: 0.0,
            ci: [0.0, 0.0],
        }),
        success_rate: stats::rate(&successes),
        success_by_round: (!ran.is_empty()).then(|| {
            [0, 1, 2, 3].map(|r| ran.iter().filter(|s| s[r]).count() as f64 / ran.len() as f64)
        }),
        mean_repairs: cases.iter().map(|c| c.repairs as f64).sum::<f64>() / n,
        metrics,
        baselines,
        absolute: absolute_summary(cases),
        cost: cost_summary(cases, price),
        cases_with_checks: checked.len(),
        checks_pass_rate: stats::bootstrap(
            &checked.iter().map(|t| t.rate()).collect::<Vec<_>>(),
            stats::mean,
        ),
        all_checks_pass: stats::rate(&checked.iter().map(|t| t.all_pass()).collect::<Vec<_>>()),
        match_verdicts,
        overruled_match_rate: (match_verdicts > 0).then(|| {
            f64::from(cases.iter().map(|c| c.overruled_matches).sum::<u32>())
                / f64::from(match_verdicts)
        }),
    }
}

fn absolute_summary(cases: &[&CaseScore]) -> Option<AbsoluteSummary> {
    let found: Vec<_> = cases.iter().filter_map(|c| c.absolute).collect();
    if found.is_empty() {
        return None;
    }
    let axis = |k: usize| {
        let errors: Vec<f64> = found.iter().map(|a| a.size_error[k].abs()).collect();
        stats::median(&errors).unwrap_or(0.0)
    };
    let ratios: Vec<f64> = found.iter().filter_map(|a| a.volume_ratio).collect();
    Some(AbsoluteSummary {
        cases: found.len(),
        median_size_error: [axis(0), axis(1), axis(2)],
        volume_ratio: stats::bootstrap(&ratios, stats::median),
        volume_within_10_percent: (!ratios.is_empty()).then(|| {
            ratios.iter().filter(|r| (**r - 1.0).abs() <= 0.1).count() as f64 / ratios.len() as f64
        }),
    })
}

fn cost_summary(cases: &[&CaseScore], price: Option<Price>) -> Option<CostSummary> {
    let costs: Vec<_> = cases.iter().filter_map(|c| c.cost).collect();
    let seconds: Vec<f64> = costs.iter().map(|c| c.seconds).collect();
    let prompt_tokens = costs.iter().map(|c| c.prompt_tokens).sum::<u64>();
    let completion_tokens = costs.iter().map(|c| c.completion_tokens).sum::<u64>();
    let money =
        price.map(|p| (prompt_tokens as f64 * p.input + completion_tokens as f64 * p.output) / 1e6);
    Some(CostSummary {
        runs: costs.len(),
        llm_calls: costs.iter().map(|c| u64::from(c.llm_calls)).sum(),
        prompt_tokens,
        completion_tokens,
        seconds: seconds.iter().sum(),
        seconds_per_case: stats::bootstrap(&seconds, stats::mean)?,
        money,
        money_per_case: money.map(|m| m / costs.len() as f64),
    })
}

/// bench.json.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BenchReport {
    pub dataset: String,
    pub protocol: Protocol,
    /// The protocol's revision that scored the cases ([`Protocol::version`]);
    /// a bench.json without one was scored by revision 1.
    #[serde(default = "first_version")]
    pub protocol_version: u32,
    /// What scored this folder before, when it was scored again under
    /// another protocol or revision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rescored_from: Option<ScoredBy>,
    /// Every metric setting; `modified` when one differs from the protocol's own.
    pub settings: MetricSettings,
    pub modified: bool,
    /// How the intervals were drawn.
    pub bootstrap: Bootstrap,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price: Option<Price>,
    pub overall: Table,
    /// Per stratification column, per stratum.
    pub strata: BTreeMap<String, BTreeMap<String, Table>>,
    pub cases: Vec<CaseScore>,
}

pub(super) fn first_version() -> u32 {
    1
}

/// A protocol and its revision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScoredBy {
    pub protocol: Protocol,
    pub version: u32,
}

impl std::fmt::Display for ScoredBy {
    /// "cadprompt version 2".
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} version {}", self.protocol.as_str(), self.version)
    }
}

impl BenchReport {
    /// The protocol and revision that scored the cases.
    pub fn scored_by(&self) -> ScoredBy {
        ScoredBy {
            protocol: self.protocol,
            version: self.protocol_version,
        }
    }
}

impl ScoredBy {
    /// What scored a bench.json, read field by field so that any earlier
    /// cadloop's file reads; `None` when it is not a bench.json.
    pub fn of_json(report: &serde_json::Value) -> Option<ScoredBy> {
        let protocol = serde_json::from_value(report.get("protocol")?.clone()).ok()?;
        let version = report
            .get("protocol_version")
            .map_or(Some(1), |v| v.as_u64())?;
        Some(ScoredBy {
            protocol,
            version: u32::try_from(version).ok()?,
        })
    }
}

/// The bootstrap's settings, recorded with the intervals they made.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Bootstrap {
    pub resamples: usize,
    pub seed: u64,
    pub level: f64,
}

/// The whole bench report: the table over all cases, one per stratum, and the cases.
pub fn report(
    dataset: &str,
    settings: &MetricSettings,
    price: Option<Price>,
    cases: Vec<CaseScore>,
) -> BenchReport {
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
    let protocol = settings.protocol;
    BenchReport {
        dataset: dataset.to_string(),
        protocol,
        protocol_version: protocol.version(),
        rescored_from: None,
        settings: *settings,
        modified: settings.modified(),
        bootstrap: Bootstrap {
            resamples: stats::RESAMPLES,
            seed: stats::BOOTSTRAP_SEED,
            level: 0.95,
        },
        price,
        overall: table(&all, protocol, price),
        strata: strata
            .into_iter()
            .map(|(column, groups)| {
                let tables = groups
                    .into_iter()
                    .map(|(k, v)| (k, table(&v, protocol, price)))
                    .collect();
                (column, tables)
            })
            .collect(),
        cases,
    }
}
