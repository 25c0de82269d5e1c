//! Where a change to a finished run starts, and a tweak built from new
//! values: the rules every front end (the command line, the studio) uses,
//! so that none of them writes its own.

use crate::config::Budget;
use crate::executor::Outcome;
use crate::params::{self, Assignment, TweakError};
use crate::report::{RunRecord, RunSettings};

/// Why a change cannot start from the attempt asked for (or from the run's result).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StartAttemptError {
    #[error("the run has no result to start from")]
    NoResult { built: Vec<u32> },
    #[error("attempt {asked}: the run has attempts 1 to {attempts}")]
    NoSuchAttempt {
        asked: u32,
        attempts: usize,
        built: Vec<u32>,
    },
    #[error("attempt {asked}: that attempt built no solid (it failed: {kind}{at})")]
    NotBuilt {
        asked: u32,
        kind: String,
        at: String,
        built: Vec<u32>,
    },
}

impl StartAttemptError {
    /// The whole message, naming the front end's own way to choose an
    /// attempt (`flag`: "--from-attempt" or "from_attempt") and the
    /// attempts that can be chosen.
    pub fn explain(&self, flag: &str) -> String {
        let (what, built) = match self {
            StartAttemptError::NoResult { built } => (self.to_string(), built),
            StartAttemptError::NoSuchAttempt {
                asked,
                attempts,
                built,
            } => (
                format!("{flag} {asked}: the run has attempts 1 to {attempts}"),
                built,
            ),
            StartAttemptError::NotBuilt {
                asked,
                kind,
                at,
                built,
            } => (
                format!("{flag} {asked}: that attempt built no solid (it failed: {kind}{at})"),
                built,
            ),
        };
        let choose = if built.is_empty() {
            "no attempt of this run built a solid, so there is nothing to change; start again with `cadloop generate`".to_string()
        } else {
            let numbers: Vec<String> = built.iter().map(u32::to_string).collect();
            format!(
                "choose one that built a solid with {flag} N: {}",
                numbers.join(", ")
            )
        };
        format!("{what}; {choose}")
    }
}

/// The attempt a change starts from: the one asked for, else the run's
/// result. It must have built a solid.
pub fn start_attempt(record: &RunRecord, asked: Option<u32>) -> Result<u32, StartAttemptError> {
    let built: Vec<u32> = record
        .attempts
        .iter()
        .filter(|a| a.executed())
        .map(|a| a.number)
        .collect();
    let asked = match (asked, &record.chosen) {
        (Some(n), _) => n,
        (None, Some(choice)) => return Ok(choice.attempt),
        (None, None) => return Err(StartAttemptError::NoResult { built }),
    };
    let Some(attempt) = record.find_attempt(asked) else {
        return Err(StartAttemptError::NoSuchAttempt {
            asked,
            attempts: record.attempts.len(),
            built,
        });
    };
    if let Outcome::Error { kind, line, .. } = &attempt.result.outcome {
        return Err(StartAttemptError::NotBuilt {
            asked,
            kind: kind.to_string(),
            at: line.map(|l| format!(" at line {l}")).unwrap_or_default(),
            built,
        });
    }
    Ok(asked)
}

/// New parameter values for a finished run's attempt `from`.
#[derive(Debug, Clone)]
pub struct Tweak {
    pub from: u32,
    /// Attempt `from`'s code with the new values.
    pub code: String,
    pub changes: Vec<crate::params::Change>,
}

impl Tweak {
    /// New values for attempt `from` of `record` (see [`start_attempt`]):
    /// its code with the values written in. Every value is checked before
    /// anything starts, so a refusal changes nothing.
    pub fn new(record: &RunRecord, from: u32, values: &[Assignment]) -> Result<Tweak, TweakError> {
        let attempt = record.attempt(from);
        let (code, changes) = params::apply(&attempt.code, &attempt.result.parameters, values)?;
        Ok(Tweak {
            from,
            code,
            changes,
        })
    }
}

/// Parameter values as front ends take them in JSON: NAME → a number, or
/// its text ("12.5", "6"), read as `cadloop tweak NAME=VALUE` reads it.
pub fn assignments(
    values: &std::collections::HashMap<String, serde_json::Value>,
) -> Result<Vec<Assignment>, TweakError> {
    values
        .iter()
        .map(|(name, value)| match value {
            serde_json::Value::String(text) => Assignment::new(name, text),
            other => Assignment::new(name, &other.to_string()),
        })
        .collect()
}

/// Why the latest request of `record` has no result: the error of its
/// latest failed attempt; `None` when it has one.
pub fn why_no_result(record: &RunRecord) -> Option<String> {
    if record.requests.last().is_none_or(|r| r.chosen.is_some()) {
        return None;
    }
    let failed = record
        .latest_failed_attempt()
        .and_then(|a| match &a.result.outcome {
            Outcome::Error { message, .. } => Some(message.clone()),
            Outcome::Ok { .. } => None,
        });
    Some(failed.unwrap_or_else(|| "no attempt built a solid".into()))
}

/// The longest prompt or change in words a front end passes on.
pub const MAX_REQUEST_CHARS: usize = 20_000;

/// A prompt or change in words as a front end takes it (`what` names it in
/// the refusal): trimmed, not empty, at most [`MAX_REQUEST_CHARS`].
pub fn request_text(text: &str, what: &str) -> Result<String, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err(format!("the {what} is empty"));
    }
    if text.chars().count() > MAX_REQUEST_CHARS {
        return Err(format!(
            "the {what} is longer than {MAX_REQUEST_CHARS} characters"
        ));
    }
    Ok(text.to_string())
}

/// The budget of a new run whose request asked for its own repairs or
/// refine rounds (the studio's New run box, MCP's `generate`), each within
/// the limit the command line has; `settings` record it.
pub fn asked_budget(
    settings: &mut RunSettings,
    max_repairs: Option<u32>,
    max_refines: Option<u32>,
) -> Result<Budget, String> {
    let mut budget = Budget {
        max_repairs: settings.max_repairs,
        max_refines: settings.max_refines,
    };
    for (asked, into, name) in [
        (max_repairs, &mut budget.max_repairs, "max_repairs"),
        (max_refines, &mut budget.max_refines, "max_refines"),
    ] {
        match asked {
            Some(n) if n > crate::config::MAX_ROUNDS => {
                return Err(format!(
                    "{name} {n} is out of range; use 0 to {}",
                    crate::config::MAX_ROUNDS
                ))
            }
            Some(n) => *into = n,
            None => {}
        }
    }
    (settings.max_repairs, settings.max_refines) = (budget.max_repairs, budget.max_refines);
    Ok(budget)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_names_the_front_ends_own_way_to_choose() {
        let not_built = StartAttemptError::NotBuilt {
            asked: 1,
            kind: "exception".into(),
            at: " at line 5".into(),
            built: vec![2, 3],
        };
        assert_eq!(
            not_built.explain("--from-attempt"),
            "--from-attempt 1: that attempt built no solid (it failed: exception at line 5); \
             choose one that built a solid with --from-attempt N: 2, 3"
        );
        let missing = StartAttemptError::NoSuchAttempt {
            asked: 7,
            attempts: 3,
            built: vec![2],
        };
        assert_eq!(
            missing.explain("from_attempt"),
            "from_attempt 7: the run has attempts 1 to 3; choose one that built a solid with from_attempt N: 2"
        );
        let nothing = StartAttemptError::NoResult { built: Vec::new() };
        assert!(nothing
            .explain("--from-attempt")
            .ends_with("no attempt of this run built a solid, so there is nothing to change; start again with `cadloop generate`"));
    }
}
