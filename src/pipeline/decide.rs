//! The loop's decisions, as pure functions of what happened: what comes after
//! a failed execution or a critique, what to remind the LLM of, and which attempt
//! is a request's result. The steps in the other files act on them.

use crate::checks::Tally;
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

/// Attempt `number` built no solid. `repairs`: repairs made so far for this
/// piece of code. `round`: the refine round (0: the request's first script).
/// `change`: the request is a follow-up change, not the prompt. `without_llm`:
/// the request runs code without the LLM (a tweak, given code).
pub fn after_failure(
    number: u32,
    repairs: u32,
    round: u32,
    change: bool,
    without_llm: bool,
    budget: Budget,
) -> AfterFailure {
    if without_llm {
        return AfterFailure::Finish(format!(
            "the code failed (attempt {number}) and there is no LLM to repair it; the run's result is unchanged"
        ));
    }
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

/// What comes after an attempt that built a solid and was looked at.
#[derive(Debug, PartialEq, Eq)]
pub enum AfterLook {
    /// The LLM compares the views, captions and facts with the request.
    Judge,
    /// No critique: the reason the loop ends.
    Finish(String),
}

/// Attempt `number` was rendered and captioned; `without_llm` as for
/// [`after_failure`].
pub fn after_look(number: u32, without_llm: bool, budget: Budget) -> AfterLook {
    if without_llm {
        AfterLook::Finish(format!(
            "attempt {number} rebuilt the part with the new values"
        ))
    } else if budget.max_refines == 0 {
        AfterLook::Finish("no critique asked for (--max-refines 0)".into())
    } else {
        AfterLook::Judge
    }
}

/// What a critique reply lacks, to ask for once: a verdict, or the rewrite
/// a mismatch (or a MATCH that failing checks overrule) needs while refine
/// rounds are left.
pub fn missing_from_critique(
    verdict: Option<Verdict>,
    overruled: bool,
    has_code: bool,
    round: u32,
    budget: Budget,
) -> Option<Want> {
    let rounds_left = round < budget.max_refines;
    match (verdict, has_code) {
        (None, _) => Some(Want::Verdict),
        (Some(Verdict::Match), false) if overruled && rounds_left => Some(Want::Checks),
        (Some(Verdict::Mismatch), false) if rounds_left => Some(Want::Code),
        _ => None,
    }
}

/// The verdict the loop acts on: a MATCH that failing checks overrule is a mismatch.
pub fn effective_verdict(verdict: Option<Verdict>, overruled: bool) -> Option<Verdict> {
    match verdict {
        Some(Verdict::Match) if overruled => Some(Verdict::Mismatch),
        other => other,
    }
}

/// Whether a critique's rewrite is run: a mismatch, with code, while refine
/// rounds are left.
pub fn uses_rewrite(verdict: Option<Verdict>, has_code: bool, round: u32, budget: Budget) -> bool {
    verdict == Some(Verdict::Mismatch) && has_code && round < budget.max_refines
}

/// Why the loop ends after a critique that is not followed by a rewrite;
/// `overruled`: the tally of the checks that overrule a MATCH.
pub fn end_after_critique(
    verdict: Option<Verdict>,
    overruled: Option<Tally>,
    attempt: u32,
    round: u32,
    budget: Budget,
) -> String {
    if let (Some(Verdict::Match), Some(tally)) = (verdict, overruled) {
        let failing = tally.total - tally.passed;
        let why = if round >= budget.max_refines {
            "the refine budget is spent"
        } else {
            "no rewrite was given, even when reminded"
        };
        return format!(
            "attempt {attempt} was judged to match, but {failing} of its {} checks fail{}; {why}",
            tally.total,
            if failing == 1 { "s" } else { "" }
        );
    }
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
/// match with every check passing, else, of those that built a solid and
/// were rendered (a run stopped by a signal can end with a solid not looked
/// at yet, which has no views to show), the one that passes the largest
/// share of its checks, the last of equals; else none.
pub fn choose_result<'a>(
    attempts: impl DoubleEndedIterator<Item = &'a AttemptRecord> + Clone,
) -> (Option<Choice>, RunOutcome) {
    let matched = attempts.clone().rev().find(|a| a.matched());
    if let Some(a) = matched {
        let why = "the last attempt judged to match the prompt";
        return (Some(choice(a, why)), RunOutcome::Match);
    }
    let rate = |a: &AttemptRecord| a.checks().map_or(1.0, Tally::rate);
    let looked_at = attempts.filter(|a| a.executed() && a.timings.render_ms.is_some());
    let last = looked_at.clone().next_back().map(|a| a.number);
    let executed = looked_at.fold(None::<&AttemptRecord>, |best, a| match best {
        Some(b) if rate(b) > rate(a) => Some(b),
        _ => Some(a),
    });
    match executed {
        Some(a) if Some(a.number) != last => (
            Some(choice(
                a,
                &format!(
                    "no attempt was judged to match; this one passes the most checks ({})",
                    a.checks().map(|t| t.to_string()).unwrap_or_default()
                ),
            )),
            RunOutcome::Mismatch,
        ),
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
    use crate::executor::{BoundingBox, ErrorKind, ExecReport, GeometryFacts, Outcome};
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
                    parts: Vec::new(),
                    pairs: Vec::new(),
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
            result: ExecReport::of(outcome),
            captions: None,
            critique: verdict.map(|v| CritiqueRecord {
                verdict: Some(v),
                stated: true,
                feedback: String::new(),
                rewrite_used: false,
                overruled: false,
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
        assert_eq!(
            after_failure(3, 1, 0, false, false, BUDGET),
            AfterFailure::Repair
        );
        assert_eq!(
            after_failure(3, 2, 0, false, false, BUDGET),
            AfterFailure::Finish("2 repairs did not make the first script work".into())
        );
        assert_eq!(
            after_failure(3, 2, 0, true, false, BUDGET),
            AfterFailure::Finish("2 repairs did not make the changed script work".into())
        );
        assert_eq!(
            after_failure(3, 2, 1, false, false, BUDGET),
            AfterFailure::Finish(
                "2 repairs did not make the rewrite of refine round 1 work".into()
            )
        );
        let none = Budget {
            max_repairs: 0,
            max_refines: 1,
        };
        assert!(matches!(
            after_failure(3, 0, 0, false, false, none),
            AfterFailure::Finish(reason) if reason.contains("--max-repairs 0")
        ));
        // Code run without the LLM (a tweak) is never repaired.
        assert_eq!(
            after_failure(3, 0, 0, true, true, BUDGET),
            AfterFailure::Finish(
                "the code failed (attempt 3) and there is no LLM to repair it; the run's result is unchanged"
                    .into()
            )
        );
    }

    #[test]
    fn a_built_attempt_is_judged_unless_there_is_no_llm_or_no_critique() {
        assert_eq!(after_look(2, false, BUDGET), AfterLook::Judge);
        assert_eq!(
            after_look(2, true, BUDGET),
            AfterLook::Finish("attempt 2 rebuilt the part with the new values".into())
        );
        let none = Budget {
            max_repairs: 2,
            max_refines: 0,
        };
        assert_eq!(
            after_look(2, false, none),
            AfterLook::Finish("no critique asked for (--max-refines 0)".into())
        );
    }

    #[test]
    fn the_llm_is_reminded_of_a_missing_verdict_or_a_missing_rewrite_only_while_rounds_are_left() {
        let mismatch = Some(Verdict::Mismatch);
        assert_eq!(
            missing_from_critique(None, false, true, 0, BUDGET),
            Some(Want::Verdict)
        );
        assert_eq!(
            missing_from_critique(mismatch, false, false, 0, BUDGET),
            Some(Want::Code)
        );
        assert_eq!(
            missing_from_critique(mismatch, false, false, 1, BUDGET),
            None
        );
        assert_eq!(
            missing_from_critique(mismatch, false, true, 0, BUDGET),
            None
        );
        assert_eq!(
            missing_from_critique(Some(Verdict::Match), false, false, 0, BUDGET),
            None
        );
        assert!(uses_rewrite(mismatch, true, 0, BUDGET));
        assert!(!uses_rewrite(mismatch, true, 1, BUDGET));
        assert!(!uses_rewrite(Some(Verdict::Match), true, 0, BUDGET));
    }

    #[test]
    fn a_match_with_failing_checks_is_overruled_and_asks_for_a_fix_while_rounds_are_left() {
        let matched = Some(Verdict::Match);
        assert_eq!(effective_verdict(matched, true), Some(Verdict::Mismatch));
        assert_eq!(effective_verdict(matched, false), matched);
        assert_eq!(
            missing_from_critique(matched, true, false, 0, BUDGET),
            Some(Want::Checks)
        );
        assert_eq!(missing_from_critique(matched, true, false, 1, BUDGET), None);
        assert_eq!(missing_from_critique(matched, true, true, 0, BUDGET), None);
        assert!(uses_rewrite(
            effective_verdict(matched, true),
            true,
            0,
            BUDGET
        ));
        let tally = Tally {
            passed: 4,
            total: 5,
        };
        assert_eq!(
            end_after_critique(matched, Some(tally), 2, 1, BUDGET),
            "attempt 2 was judged to match, but 1 of its 5 checks fails; the refine budget is spent"
        );
    }

    fn with_checks(
        mut attempt: AttemptRecord,
        passed: usize,
        total: usize,
        overruled: bool,
    ) -> AttemptRecord {
        attempt.result.checks = (0..total)
            .map(|i| crate::checks::CheckResult {
                call: format!("valid() # {i}"),
                status: if i < passed {
                    crate::checks::CheckStatus::Pass
                } else {
                    crate::checks::CheckStatus::Fail
                },
                measured: String::new(),
                expected: String::new(),
                message: String::new(),
                ms: None,
            })
            .collect();
        if let Some(c) = attempt.critique.as_mut() {
            c.overruled = overruled;
        }
        attempt
    }

    #[test]
    fn an_overruled_match_is_not_the_result_and_the_attempt_passing_most_checks_is() {
        let mismatch = Some(Verdict::Mismatch);
        let attempts = [
            with_checks(attempt(1, true, true, mismatch), 2, 3, false),
            with_checks(attempt(2, true, true, Some(Verdict::Match)), 1, 3, true),
        ];
        let (chosen, outcome) = choose_result(attempts.iter());
        let chosen = chosen.unwrap();
        assert_eq!((chosen.attempt, outcome), (1, RunOutcome::Mismatch));
        assert!(
            chosen.why.contains("passes the most checks (checks: 2/3)"),
            "{}",
            chosen.why
        );

        let attempts = [
            with_checks(attempt(1, true, true, mismatch), 2, 3, false),
            with_checks(attempt(2, true, true, Some(Verdict::Match)), 3, 3, false),
        ];
        let (chosen, outcome) = choose_result(attempts.iter());
        assert_eq!((chosen.unwrap().attempt, outcome), (2, RunOutcome::Match));
    }

    #[test]
    fn the_loop_ends_with_a_reason_for_each_verdict() {
        assert_eq!(
            end_after_critique(Some(Verdict::Match), None, 3, 0, BUDGET),
            "attempt 3 was judged to match the prompt"
        );
        assert!(
            end_after_critique(Some(Verdict::Mismatch), None, 3, 1, BUDGET)
                .starts_with("refine budget spent (1 round)")
        );
        assert!(
            end_after_critique(Some(Verdict::Mismatch), None, 3, 0, BUDGET).contains("no rewrite")
        );
        assert!(end_after_critique(None, None, 3, 0, BUDGET).contains("no verdict"));
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
