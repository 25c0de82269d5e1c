//! One case scored: the result against its reference under the protocol,
//! what shape-agnostic baselines score against the same reference, the
//! absolute errors normalising hides, and what the run cost.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::checks::Tally;
use crate::critique::Verdict;
use crate::mesh::Mesh;
use crate::metrics::{self, Absolute, Baselines, MetricSettings, Scores};
use crate::report::{AttemptRecord, CritiqueRecord, RunRecord, Stage};

use super::Case;

/// One case's figures in bench.json.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaseScore {
    pub id: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub strata: BTreeMap<String, String>,
    /// The run's outcome (match, mismatch, unverified, failed), "missing",
    /// or, for another system's mesh (`bench score`), "given".
    pub outcome: String,
    /// A valid model was made.
    pub compiled: bool,
    /// A valid solid judged to match by refine round r, for r = 0 (the first
    /// generation and its repairs), 1, 2, 3; `None` without a run record
    /// (another system's meshes): success does not apply.
    #[serde(default)]
    pub success_by_round: Option<[bool; 4]>,
    pub repairs: usize,
    /// What the run spent; `None` without a run record.
    #[serde(default)]
    pub cost: Option<Cost>,
    /// Against the reference, under the protocol; `None` when the case has
    /// no reference. A case without a model has the protocol's failure
    /// scores (none at all under text2cad, which leaves it out).
    #[serde(default)]
    pub scores: Option<Scores>,
    /// Size and volume against the reference, when both meshes exist.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub absolute: Option<Absolute>,
    /// What the baselines score against this case's reference.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baselines: Option<Baselines>,
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

impl CaseScore {
    /// Whether the case succeeded (a valid solid judged to match, its
    /// checks passing); `None` when success does not apply.
    pub fn success(&self) -> Option<bool> {
        self.success_by_round
            .map(|rounds| rounds[3] || self.outcome == "match")
    }
}

/// What one run spent.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Cost {
    pub llm_calls: u32,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    /// Wall time of the run.
    pub seconds: f64,
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
    let failed = || settings.protocol.failed();
    // The reference is sampled once for the result and the baselines.
    let prepared = reference.map(|r| metrics::Reference::new(r, settings));
    let scores = prepared.as_ref().map(|prepared| match model {
        Some(model) if compiled => prepared
            .as_ref()
            .map_err(Clone::clone)
            .and_then(|prepared| prepared.score(model))
            .unwrap_or_else(|err| {
                tracing::warn!(case = %case.item.id, "cannot score: {err}");
                failed()
            }),
        _ => failed(),
    });
    let absolute = match (model, reference) {
        (Some(model), Some(reference)) if compiled => metrics::absolute(model, reference).ok(),
        _ => None,
    };
    let baselines = prepared.and_then(|r| match r.and_then(|r| r.baselines()) {
        Ok(b) => Some(b),
        Err(err) => {
            tracing::warn!(case = %case.item.id, "no baselines: {err}");
            None
        }
    });
    CaseScore {
        id: case.item.id.clone(),
        strata: case.strata.clone(),
        outcome: match record {
            Some(r) => r.outcome.as_str().to_string(),
            None if model.is_some() => "given".to_string(),
            None => "missing".to_string(),
        },
        compiled,
        success_by_round: record.map(success_by_round),
        repairs: record.map_or(0, |r| {
            r.attempts
                .iter()
                .filter(|a| a.stage == Stage::Repair)
                .count()
        }),
        cost: record.map(|r| Cost {
            llm_calls: r.llm_calls,
            prompt_tokens: r.usage.prompt_tokens,
            completion_tokens: r.usage.completion_tokens,
            seconds: r.timings.total_ms / 1e3,
        }),
        scores,
        absolute,
        baselines,
        parameters: record
            .and_then(RunRecord::chosen_attempt)
            .map(|a| a.result.parameters.clone())
            .unwrap_or_default(),
        checks: record
            .and_then(RunRecord::chosen_attempt)
            .and_then(AttemptRecord::checks),
        match_verdicts: record.map_or(0, |r| count_matches(r, |_| true)),
        overruled_matches: record.map_or(0, |r| count_matches(r, |c| c.overruled)),
    }
}

/// Whether a valid solid judged to match came by refine round 0, 1, 2, 3.
fn success_by_round(record: &RunRecord) -> [bool; 4] {
    let mut by_round = [false; 4];
    for attempt in &record.attempts {
        if attempt.executed() && attempt.matched() {
            for (r, flag) in by_round.iter_mut().enumerate() {
                *flag |= attempt.round as usize <= r;
            }
        }
    }
    by_round
}

/// The run's MATCH verdicts that `which` picks.
fn count_matches(record: &RunRecord, which: impl Fn(&CritiqueRecord) -> bool) -> u32 {
    record
        .attempts
        .iter()
        .filter_map(|a| a.critique.as_ref())
        .filter(|c| c.verdict == Some(Verdict::Match) && which(c))
        .count() as u32
}
