//! Checks: a request's measurable requirements, written by the LLM before any
//! code exists and tested on every attempt that builds.
//!
//! Stage in the flow: the generate reply carries a ```checks block
//! (`CHECKS = [bbox(40, 20, 10), holes(6, count=1, through=True)]`) before its
//! script. [`Checks::parse`] reads it here as data: calls of the library's
//! functions with literal arguments, nothing else, so no text the LLM writes
//! for checks is ever run as code. The executor sends the calls with each job
//! and the harness (`freecad-scripts/cadloop_checks.py`) runs them on the
//! built shape in the sandboxed worker; the results come back in the
//! [`crate::executor::ExecReport`]. The critique sees the failing ones, and
//! an attempt with a failing check cannot be the run's MATCH.

mod parse;

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The check library: each function's name and its parameters in order
/// (the shape is implied), the required ones first, `required` of them.
pub const LIBRARY: &[Signature] = &[
    sig("bbox", &["x", "y", "z", "tol", "sorted"], 0),
    sig("position", &["min", "max", "center", "tol"], 0),
    sig("volume", &["value", "rel"], 1),
    sig("area", &["value", "rel"], 1),
    sig("solids", &["count"], 0),
    sig("valid", &[], 0),
    sig("faces", &["kind", "count", "min", "max"], 0),
    sig(
        "holes",
        &["diameter", "count", "through", "axis", "depth", "tol"],
        1,
    ),
    sig(
        "axis_distance",
        &["diameter_a", "diameter_b", "distance", "tol"],
        3,
    ),
    sig("wall", &["thickness", "at", "direction", "tol"], 2),
    sig("symmetric", &["plane", "at", "rel"], 1),
    between("clearance", &["part_a", "part_b", "min"], 3),
    between("interference", &["part_a", "part_b", "max"], 2),
];

/// The keyword that turns a check onto one named part of a result of
/// several (`bbox(30, 30, 4, part="lid")`); every check but those between
/// two parts takes it.
pub const PART: &str = "part";

/// More checks than this in one list is not a reading of a request.
pub const MAX_CHECKS: usize = 40;

/// One library function's parameters.
#[derive(Debug, Clone, Copy)]
pub struct Signature {
    pub name: &'static str,
    pub params: &'static [&'static str],
    pub required: usize,
    /// It takes [`PART`] by keyword.
    pub on_part: bool,
}

const fn sig(name: &'static str, params: &'static [&'static str], required: usize) -> Signature {
    Signature {
        name,
        params,
        required,
        on_part: true,
    }
}

/// A check between two named parts.
const fn between(
    name: &'static str,
    params: &'static [&'static str],
    required: usize,
) -> Signature {
    Signature {
        name,
        params,
        required,
        on_part: false,
    }
}

/// One check as written: the function, its arguments by name, and where it
/// stands in the list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckCall {
    pub name: String,
    pub args: BTreeMap<String, Value>,
    /// The call as the LLM wrote it, e.g. `holes(diameter=6, through=True)`.
    pub call: String,
    /// The comment after it on its line, if any (what it stands for).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub comment: String,
}

/// A request's checks: the text the LLM wrote and the calls read from it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Checks {
    pub source: String,
    pub calls: Vec<CheckCall>,
}

/// How a check ended on a shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckStatus {
    Pass,
    Fail,
    /// The check could not be applied (a bad argument, a measurement FreeCAD refused).
    Error,
}

impl CheckStatus {
    /// The word run.json and the prompts use.
    pub fn as_str(self) -> &'static str {
        match self {
            CheckStatus::Pass => "pass",
            CheckStatus::Fail => "fail",
            CheckStatus::Error => "error",
        }
    }
}

/// One check's result on an attempt's shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckResult {
    pub call: String,
    pub status: CheckStatus,
    pub measured: String,
    pub expected: String,
    /// The result in one sentence, measured against expected.
    pub message: String,
    /// How long the check took, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ms: Option<f64>,
}

/// Passed and total checks of an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tally {
    pub passed: u32,
    pub total: u32,
}

impl Tally {
    /// Counts the passing checks among `results`.
    pub fn of(results: &[CheckResult]) -> Tally {
        Tally {
            passed: results
                .iter()
                .filter(|r| r.status == CheckStatus::Pass)
                .count() as u32,
            total: results.len() as u32,
        }
    }

    /// Whether every check passed (true when there are none).
    pub fn all_pass(self) -> bool {
        self.passed == self.total
    }

    /// The share passed, 1.0 with no checks.
    pub fn rate(self) -> f64 {
        if self.total == 0 {
            1.0
        } else {
            f64::from(self.passed) / f64::from(self.total)
        }
    }
}

impl fmt::Display for Tally {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "checks: {}/{}", self.passed, self.total)
    }
}

/// The failing checks of an attempt, one "- " line each, for the prompts.
pub fn describe_failures(results: &[CheckResult]) -> String {
    results
        .iter()
        .filter(|r| r.status != CheckStatus::Pass)
        .map(|r| format!("- `{}`: {}", r.call, r.message))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Checks that cannot be read, with where and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("checks, line {line}: {message}")]
pub struct ChecksError {
    pub line: u32,
    pub message: String,
    /// The text as written.
    pub written: String,
}

impl Checks {
    /// Reads `CHECKS = [call, …]` (or a bare list): calls of the library's
    /// functions whose arguments are numbers (with + - * / and brackets),
    /// strings, True, False, None, and tuples or lists of these.
    pub fn parse(source: &str) -> Result<Checks, ChecksError> {
        let written = |err: ChecksError| ChecksError {
            written: source.to_string(),
            ..err
        };
        let calls = parse::calls(source).map_err(written)?;
        Ok(Checks {
            source: source.trim_end().to_string() + "\n",
            calls,
        })
    }
}

/// Checks as the prompts list them, one "- " line each.
pub fn describe(calls: &[CheckCall]) -> String {
    calls
        .iter()
        .map(|c| {
            if c.comment.is_empty() {
                format!("- `{}`", c.call)
            } else {
                format!("- `{}` ({})", c.call, c.comment)
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tally_counts_passes_and_names_what_failed() {
        let result = |status, call: &str| CheckResult {
            call: call.into(),
            status,
            measured: "10".into(),
            expected: "12".into(),
            message: format!("{call} said {}", status.as_str()),
            ms: None,
        };
        let results = [
            result(CheckStatus::Pass, "bbox(30, 30, 30)"),
            result(CheckStatus::Fail, "holes(12)"),
            result(CheckStatus::Error, "wall(2, at=(0, 0))"),
        ];
        let tally = Tally::of(&results);
        assert_eq!(tally.to_string(), "checks: 1/3");
        assert!(!tally.all_pass());
        let failures = describe_failures(&results);
        assert_eq!(
            failures,
            "- `holes(12)`: holes(12) said fail\n- `wall(2, at=(0, 0))`: wall(2, at=(0, 0)) said error"
        );
        assert!(Tally::of(&[]).all_pass());
    }
}
