//! The critique: the LLM compares the attempt (captions, geometry facts,
//! code) with what was asked, gives a verdict and maybe a rewrite.

use crate::critique::{self, Verdict};
use crate::llm::Message;
use crate::prompts::{self, RefineContext, ViewCaption, Want};
use crate::report::{CritiqueRecord, Stage};

use super::decide;
use super::{write_file, Execute, PipelineError, Run, Step, Stop};

impl Run<'_> {
    /// The critique request: what was asked, the attempt's facts, captions and code.
    fn critique_messages(&self, number: u32, round: u32) -> Result<Vec<Message>, PipelineError> {
        let attempt = &self.record.attempts[number as usize - 1];
        let mut facts = attempt
            .result
            .facts()
            .map(critique::describe_facts)
            .unwrap_or_default();
        if let Some(left_out) = critique::describe_ignored(&attempt.result.ignored) {
            facts.push('\n');
            facts.push_str(&left_out);
        }
        let captions = attempt.captions.as_ref().map(|cs| {
            cs.iter()
                .map(|c| ViewCaption {
                    view: c.view.clone(),
                    text: c.text.clone(),
                })
                .collect()
        });
        let text = self.engine.prompts.refine(&RefineContext {
            prompt: &self.asked(),
            facts,
            captions,
            numbered_code: prompts::number_lines(&attempt.code),
            last_round: round >= self.budget().max_refines,
        })?;
        Ok(vec![Message::system(&self.system), Message::user(text)])
    }

    /// The critique of an attempt, and what the loop does next.
    pub(super) async fn judge(&mut self, number: u32, round: u32) -> Result<Step, Stop> {
        let budget = self.budget();
        let messages = self.critique_messages(number, round)?;
        let lacking = |reply: &str| {
            let c = critique::read_critique(reply);
            decide::missing_from_critique(c.verdict, c.code.is_some(), round, budget)
        };
        let answer = self
            .ask_with_reminder(messages, "refine", number, lacking)
            .await?;
        let mut critique = critique::read_critique(&answer.first);
        critique = match answer.reminded {
            None => critique,
            Some((Want::Verdict, again)) => critique::read_critique(&again),
            // Asked for the rewrite only: the first reply's verdict stands.
            Some((Want::Code, again)) => {
                let second = critique::read_critique(&again);
                critique::Critique {
                    code: second.code,
                    feedback: [critique.feedback, second.feedback]
                        .into_iter()
                        .filter(|f| !f.is_empty())
                        .collect::<Vec<_>>()
                        .join("\n\n"),
                    ..critique
                }
            }
        };
        let (usage, llm_ms) = (answer.usage, answer.llm_ms);
        let rewrite = critique
            .code
            .clone()
            .filter(|_| decide::uses_rewrite(critique.verdict, true, round, budget));
        let feedback_file = self.attempt_dir(number).join("feedback.md");
        write_file(&feedback_file, feedback_markdown(&critique).as_bytes())?;
        tracing::info!(
            attempt = number,
            verdict = critique.verdict.map_or("none", Verdict::as_str),
            "critique"
        );
        let attempt = self.attempt_mut(number);
        attempt.timings.critique_ms = Some(llm_ms);
        attempt.critique = Some(CritiqueRecord {
            verdict: critique.verdict,
            stated: critique.stated,
            feedback: critique.feedback.clone(),
            rewrite_used: rewrite.is_some(),
            usage,
            llm_ms,
        });
        Ok(match rewrite {
            Some(code) => Step::Execute(Execute {
                changes: Vec::new(),
                code,
                stage: Stage::Refine,
                parent: Some(number),
                round: round + 1,
                repairs: 0,
                usage,
                llm_ms,
            }),
            None => Step::Finish {
                reason: decide::end_after_critique(critique.verdict, number, round, budget),
            },
        })
    }
}

/// The critique as `feedback.md`.
fn feedback_markdown(critique: &critique::Critique) -> String {
    let verdict = match (critique.verdict, critique.stated) {
        (Some(v), true) => v.as_str().to_uppercase(),
        (Some(v), false) => format!(
            "{} (no verdict line; a rewrite was given)",
            v.as_str().to_uppercase()
        ),
        (None, _) => "none given".to_string(),
    };
    let mut text = format!("# Critique\n\nVerdict: {verdict}\n");
    if !critique.feedback.is_empty() {
        text.push('\n');
        text.push_str(&critique.feedback);
        text.push('\n');
    }
    text
}
