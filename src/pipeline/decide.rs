//! The loop's decisions, as pure functions of what happened: what comes after
//! a failed execution or a critique, what to remind the LLM of, and which attempt
//! is a request's result. The steps in the other files act on them.

use crate::config::Budget;
use crate::critique::Verdict;
use crate::prompts::Want;
use crate::report::{AttemptRecord, Choice, RunOutcome};

/// What comes after an attempt that built no solid.
#[derive(Debug, PartialEq, Eq)]
pub enum AfterFailure {
    /// The budget allows another repair.
    Repair,
    /// No repair is left; the reason the loop ends.
    Finish(String),
}

/// `repairs`: repairs made so far for this piece of code. `round`: the refine
/// round (0: the request's first script). `change`: the request is a
/// follow-up change, not the prompt.
pub fn after_failure(repairs: u32, round: u32, change: bool, budget: Budget) -> AfterFailure {
    if repairs < budget.max_repairs {
        return AfterFailure::Repair;
    }
    if budget.max_repairs == 0 {
        return AfterFailure::Finish(
            "the code failed and no repairs are allowed (--max-repairs 0)".into(),
        );
    }
    let what = match (round, change) {
        (0, true) => "the changed script".to_string(),
        (0, false) => "the first script".to_string(),
        _ => format!("the rewrite of refine round {round}"),
    };
    AfterFailure::Finish(format!(
        "{} repairs did not make {what} work",
        budget.max_repairs
    ))
}

/// What a critique reply lacks, to ask for once: a verdict, or the rewrite
/// a mismatch needs while refine rounds are left.
pub fn missing_from_critique(
    verdict: Option<Verdict>,
    has_code: bool,
    round: u32,
    budget: Budget,
) -> Option<Want> {
    match (verdict, has_code) {
        (None, _) => Some(Want::Verdict),
        (Some(Verdict::Mismatch), false) if round < budget.max_refines => Some(Want::Code),
        _ => None,
    }
}

/// Whether a critique's rewrite is run: a mismatch, with code, while refine
/// rounds are left.
pub fn uses_rewrite(verdict: Option<Verdict>, has_code: bool, round: u32, budget: Budget) -> bool {
    verdict == Some(Verdict::Mismatch) && has_code && round < budget.max_refines
}

/// Why the loop ends after a critique that is not followed by a rewrite.
pub fn end_after_critique(
    verdict: Option<Verdict>,
    attempt: u32,
    round: u32,
    budget: Budget,
) -> String {
    match verdict {
        Some(Verdict::Match) => format!("attempt {attempt} was judged to match the prompt"),
        Some(Verdict::Mismatch) if round >= budget.max_refines => format!(
            "refine budget spent ({} round{}) and the last attempt still differs from the prompt",
            budget.max_refines,
            if budget.max_refines == 1 { "" } else { "s" }
        ),
        Some(Verdict::Mismatch) => {
            "the critique found a mismatch but gave no rewrite, even when reminded".into()
        }
        None => "the critique gave no verdict, even when reminded".into(),
    }
}

/// A request's result among its attempts (in order): the last one judged to
/// match, else the last one that built a solid and was rendered (a run
/// stopped by a signal can end with a solid not looked at yet, which has no
/// views to show), else none.
pub fn choose_result<'a>(
    attempts: impl DoubleEndedIterator<Item = &'a AttemptRecord> + Clone,
) -> (Option<Choice>, RunOutcome) {
    let matched = attempts.clone().rev().find(|a| {
        a.critique
            .as_ref()
            .is_some_and(|c| c.verdict == Some(Verdict::Match))
    });
    if let Some(a) = matched {
        let why = "the last attempt judged to match the prompt";
        return (Some(choice(a, why)), RunOutcome::Match);
    }
    let executed = attempts
        .rev()
        .find(|a| a.executed() && a.timings.render_ms.is_some());
    match executed {
        Some(a) if a.critique.as_ref().and_then(|c| c.verdict).is_some() => (
            Some(choice(
                a,
                "no attempt was judged to match; this is the last one that built a valid solid",
            )),
            RunOutcome::Mismatch,
        ),
        Some(a) => (
            Some(choice(
                a,
                "the last attempt that built a valid solid (not judged)",
            )),
            RunOutcome::Unverified,
        ),
        None => (None, RunOutcome::Failed),
    }
}

fn choice(attempt: &AttemptRecord, why: &str) -> Choice {
    Choice {
        attempt: attempt.number,
        why: why.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::executor::{
        BoundingBox, CapturedOutput, ErrorKind, ExecReport, GeometryFacts, Outcome, Timings,
    };
    use crate::report::{AttemptTimings, CritiqueRecord, Stage};

    const BUDGET: Budget = Budget {
        max_repairs: 2,
        max_refines: 1,
    };

    fn attempt(
        number: u32,
        built: bool,
        rendered: bool,
        verdict: Option<Verdict>,
    ) -> AttemptRecord {
        let outcome = if built {
            Outcome::Ok {
                facts: GeometryFacts {
                    valid: true,
                    solids: 1,
                    shells: 1,
                    faces: 6,
                    edges: 12,
                    vertices: 8,
                    volume: 1.0,
                    area: 6.0,
                    bbox: BoundingBox {
                        min: [0.0; 3],
                        max: [1.0; 3],
                        size: [1.0; 3],
                    },
                    center_of_mass: [0.5; 3],
                    face_types: Default::default(),
                    tessellation: None,
                },
            }
        } else {
            Outcome::Error {
                kind: ErrorKind::Exception,
                message: "boom".into(),
                line: Some(1),
                facts: None,
            }
        };
        AttemptRecord {
            changes: Vec::new(),
            number,
            request: 1,
            stage: Stage::Generate,
            round: 0,
            parent: None,
            dir: format!("attempts/{number:02}"),
            code: String::new(),
            result: ExecReport {
                outcome,
                timings: Timings::default(),
                output: CapturedOutput::default(),
                ignored: Vec::new(),
                parameters: Vec::new(),
            },
            captions: None,
            critique: verdict.map(|v| CritiqueRecord {
                verdict: Some(v),
                stated: true,
                feedback: String::new(),
                rewrite_used: false,
                usage: Default::default(),
                llm_ms: 0.0,
            }),
            usage: Default::default(),
            timings: AttemptTimings {
                render_ms: rendered.then_some(1.0),
                ..Default::default()
            },
        }
    }

    #[test]
    fn a_failed_attempt_is_repaired_until_the_budget_is_spent() {
        assert_eq!(after_failure(1, 0, false, BUDGET), AfterFailure::Repair);
        assert_eq!(
            after_failure(2, 0, false, BUDGET),
            AfterFailure::Finish("2 repairs did not make the first script work".into())
        );
        assert_eq!(
            after_failure(2, 0, true, BUDGET),
            AfterFailure::Finish("2 repairs did not make the changed script work".into())
        );
        assert_eq!(
            after_failure(2, 1, false, BUDGET),
            AfterFailure::Finish(
                "2 repairs did not make the rewrite of refine round 1 work".into()
            )
        );
        let none = Budget {
            max_repairs: 0,
            max_refines: 1,
        };
        assert!(matches!(
            after_failure(0, 0, false, none),
            AfterFailure::Finish(reason) if reason.contains("--max-repairs 0")
        ));
    }

    #[test]
    fn the_llm_is_reminded_of_a_missing_verdict_or_a_missing_rewrite_only_while_rounds_are_left() {
        let mismatch = Some(Verdict::Mismatch);
        assert_eq!(
            missing_from_critique(None, true, 0, BUDGET),
            Some(Want::Verdict)
        );
        assert_eq!(
            missing_from_critique(mismatch, false, 0, BUDGET),
            Some(Want::Code)
        );
        assert_eq!(missing_from_critique(mismatch, false, 1, BUDGET), None);
        assert_eq!(missing_from_critique(mismatch, true, 0, BUDGET), None);
        assert_eq!(
            missing_from_critique(Some(Verdict::Match), false, 0, BUDGET),
            None
        );
        assert!(uses_rewrite(mismatch, true, 0, BUDGET));
        assert!(!uses_rewrite(mismatch, true, 1, BUDGET));
        assert!(!uses_rewrite(Some(Verdict::Match), true, 0, BUDGET));
    }

    #[test]
    fn the_loop_ends_with_a_reason_for_each_verdict() {
        assert_eq!(
            end_after_critique(Some(Verdict::Match), 3, 0, BUDGET),
            "attempt 3 was judged to match the prompt"
        );
        assert!(end_after_critique(Some(Verdict::Mismatch), 3, 1, BUDGET)
            .starts_with("refine budget spent (1 round)"));
        assert!(end_after_critique(Some(Verdict::Mismatch), 3, 0, BUDGET).contains("no rewrite"));
        assert!(end_after_critique(None, 3, 0, BUDGET).contains("no verdict"));
    }

    #[test]
    fn the_result_is_the_last_match_else_the_last_rendered_solid() {
        let mismatch = Some(Verdict::Mismatch);
        let attempts = [
            attempt(1, true, true, Some(Verdict::Match)),
            attempt(2, true, true, mismatch),
            attempt(3, false, false, None),
        ];
        let (chosen, outcome) = choose_result(attempts.iter());
        assert_eq!((chosen.unwrap().attempt, outcome), (1, RunOutcome::Match));

        let attempts = [
            attempt(1, true, true, mismatch),
            attempt(2, true, false, None),
        ];
        let (chosen, outcome) = choose_result(attempts.iter());
        assert_eq!(
            (chosen.unwrap().attempt, outcome),
            (1, RunOutcome::Mismatch)
        );

        let attempts = [attempt(1, false, false, None), attempt(2, true, true, None)];
        let (chosen, outcome) = choose_result(attempts.iter());
        assert_eq!(
            (chosen.unwrap().attempt, outcome),
            (2, RunOutcome::Unverified)
        );

        let attempts = [attempt(1, false, false, None)];
        assert_eq!(choose_result(attempts.iter()), (None, RunOutcome::Failed));
    }
}
