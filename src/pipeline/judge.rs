//! The critique: the LLM compares the attempt (captions, geometry facts,
//! checks, code) with what was asked, gives a verdict and maybe a rewrite or
//! a reasoned change of the checks. A MATCH with a failing check is
//! overruled: the attempt cannot be the run's match.

use crate::checks::{self, Checks, Tally};
use crate::critique::{self, Verdict};
use crate::llm::Message;
use crate::prompts::{self, CritiqueContext, ViewCaption, Want};
use crate::report::{CritiqueRecord, Purpose, Stage};

use super::decide;
use super::{write_file, Execute, PipelineError, Run, Step, Stop};

impl Run<'_> {
    /// The critique request: what was asked, the attempt's facts, checks, captions and code.
    fn critique_messages(&self, number: u32, round: u32) -> Result<Vec<Message>, PipelineError> {
        let attempt = self.record.attempt(number);
        let mut facts = attempt
            .result
            .facts()
            .map(critique::describe_facts)
            .unwrap_or_default();
        let said = [
            critique::describe_notes(&attempt.result.diagnosis),
            critique::describe_ignored(&attempt.result.ignored),
        ];
        for line in said.into_iter().flatten() {
            facts.push('\n');
            facts.push_str(&line);
        }
        let captions = attempt.captions.as_ref().map(|cs| {
            cs.iter()
                .map(|c| ViewCaption {
                    view: c.view.name().to_string(),
                    text: c.text.clone(),
                })
                .collect()
        });
        let text = self.engine.prompts.critique(&CritiqueContext {
            prompt: &self.asked(),
            facts,
            captions,
            numbered_code: prompts::number_lines(&attempt.code),
            last_round: round >= self.budget().max_refines,
            checks: self.checks_context(number),
        })?;
        Ok(vec![Message::system(&self.system), Message::user(text)])
    }

    fn tally(&self, number: u32) -> Tally {
        Tally::of(&self.record.attempt(number).result.checks)
    }

    /// The critique of an attempt, and what the loop does next.
    pub(super) async fn judge(&mut self, number: u32, round: u32) -> Result<Step, Stop> {
        let budget = self.budget();
        let messages = self.critique_messages(number, round)?;
        let failing = !self.tally(number).all_pass();
        let checks_on = self.engine.checks;
        let lacking = |reply: &str| {
            let c = critique::read_critique(reply);
            let changes_checks = checks_on && c.checks_reason.is_some();
            let overruled = c.verdict == Some(Verdict::Match) && failing && !changes_checks;
            decide::missing_from_critique(c.verdict, overruled, c.code.is_some(), round, budget)
        };
        let failures = checks::describe_failures(&self.record.attempt(number).result.checks);
        let answer = self
            .ask_with_reminder(messages, Purpose::Critique, number, lacking, &failures)
            .await?;
        let (usage, llm_ms) = (answer.usage, answer.llm_ms);
        let first = critique::read_critique(&answer.first);
        let again = answer
            .reminded
            .map(|(want, text)| (want, critique::read_critique(&text)));
        if checks_on {
            // The reminder's checks, when it gave some, else the first reply's.
            let latest = again
                .as_ref()
                .map(|(_, c)| c)
                .filter(|c| c.checks.is_some())
                .unwrap_or(&first);
            self.change_checks(number, latest).await?;
        }
        let critique = combine(first, again);
        let tally = self.tally(number);
        let overruled = critique.verdict == Some(Verdict::Match) && !tally.all_pass();
        let verdict = decide::effective_verdict(critique.verdict, overruled);
        let rewrite = critique
            .code
            .clone()
            .filter(|_| decide::uses_rewrite(verdict, true, round, budget));
        let feedback_file = self.attempt_dir(number).join(crate::run::FEEDBACK_FILE);
        write_file(
            &feedback_file,
            feedback_markdown(&critique, overruled.then_some(tally)).as_bytes(),
        )?;
        tracing::info!(
            attempt = number,
            verdict = critique.verdict.map_or("none", Verdict::as_str),
            overruled,
            "critique"
        );
        let attempt = self.attempt_mut(number);
        attempt.timings.critique_ms = Some(llm_ms);
        attempt.critique = Some(CritiqueRecord {
            verdict: critique.verdict,
            stated: critique.stated,
            feedback: critique.feedback.clone(),
            rewrite_used: rewrite.is_some(),
            overruled,
            usage,
            llm_ms,
        });
        Ok(match rewrite {
            Some(code) => Step::Execute(Execute {
                changes: Vec::new(),
                code,
                stage: Stage::Rewrite,
                parent: Some(number),
                round: round + 1,
                repairs: 0,
                usage,
                llm_ms,
            }),
            None => Step::Finish {
                reason: decide::end_after_critique(
                    critique.verdict,
                    overruled.then_some(tally),
                    number,
                    round,
                    budget,
                ),
            },
        })
    }

    /// Takes a change of the checks from a critique reply (a ```checks
    /// block with `CHECKS CHANGED: reason`), records
    /// it and checks attempt `number` again. A block without a reason, or
    /// one that cannot be read, is recorded as refused and changes nothing.
    async fn change_checks(
        &mut self,
        number: u32,
        reading: &critique::Critique,
    ) -> Result<(), Stop> {
        let Some(written) = reading.checks.as_deref() else {
            return Ok(());
        };
        let block = Checks::parse(written);
        let reason = reading.checks_reason.clone();
        let refused = match (&block, &reason) {
            (Ok(_), Some(_)) => None,
            (Err(err), _) => Some(err.to_string()),
            (Ok(_), None) => Some(
                "the new checks came without a `CHECKS CHANGED: <why>` line, so the earlier ones stay".into(),
            ),
        };
        match refused {
            None => {
                tracing::info!(
                    attempt = number,
                    reason = reason.as_deref().unwrap_or(""),
                    "the checks were changed"
                );
                self.record_checks(number, Some(block), reason);
                self.recheck(number).await
            }
            Some(why) => {
                let written = match block {
                    Ok(checks) => checks.source,
                    Err(err) => err.written,
                };
                self.refuse_checks(number, written, reason, why);
                Ok(())
            }
        }
    }
}

/// The critique of the first reply and, when one was needed, of the reply to
/// the reminder: a verdict asked again replaces the first; a rewrite asked
/// for joins the first reply's verdict.
fn combine(
    first: critique::Critique,
    again: Option<(Want, critique::Critique)>,
) -> critique::Critique {
    match again {
        None => first,
        Some((Want::Verdict, second)) => second,
        Some((Want::Code | Want::Checks, second)) => critique::Critique {
            code: second.code,
            feedback: [first.feedback, second.feedback]
                .into_iter()
                .filter(|f| !f.is_empty())
                .collect::<Vec<_>>()
                .join("\n\n"),
            ..first
        },
    }
}

/// The critique as `feedback.md`; `overruled`: the failing checks' tally
/// when they overrule a MATCH.
fn feedback_markdown(critique: &critique::Critique, overruled: Option<Tally>) -> String {
    let verdict = match (critique.verdict, critique.stated) {
        (Some(v), true) => v.as_str().to_uppercase(),
        (Some(v), false) => format!(
            "{} (no verdict line; a rewrite was given)",
            v.as_str().to_uppercase()
        ),
        (None, _) => "none given".to_string(),
    };
    let mut text = format!("# Critique\n\nVerdict: {verdict}\n");
    if let Some(tally) = overruled {
        text.push_str(&format!(
            "\nOverruled by the checks ({tally}): an attempt with a failing check is not a match.\n"
        ));
    }
    if !critique.feedback.is_empty() {
        text.push('\n');
        text.push_str(&critique.feedback);
        text.push('\n');
    }
    text
}
