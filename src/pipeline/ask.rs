//! Asking the LLM: the first script of a request, a repair, and the one
//! reminder when a reply lacks what was asked for. Every call goes to the
//! transcript and the run's counts.

use crate::checks::{Checks, ChecksError};
use crate::critique;
use crate::executor::Outcome;
use crate::llm::{self, Form, Message, Partial, Reply, ReplyText, Usage};
use crate::prompts::{self, EditContext, ErrorContext, RepairContext, Want};
use crate::report::{AttemptRecord, CallRecord, Exchange, Purpose, Stage};

use super::{Ask, PipelineError, Run, Step, Stop};

/// Code from the LLM, with what it cost.
pub(super) struct Answer {
    pub code: Option<String>,
    /// The reply's checks block, read; `None` when it had none.
    pub checks: Option<Result<Checks, ChecksError>>,
    pub usage: Usage,
    pub llm_ms: f64,
}

/// A reply, and the reply to the reminder when one was needed.
pub(super) struct Asked {
    pub first: String,
    pub reminded: Option<(Want, String)>,
    pub usage: Usage,
    pub llm_ms: f64,
}

impl Run<'_> {
    pub(super) fn ask_generate(&self, prompt: &str) -> Result<Step, PipelineError> {
        Ok(Step::Ask(Ask {
            stage: Stage::Generate,
            messages: vec![
                Message::system(&self.system),
                Message::user(self.engine.prompts.generate(prompt, self.engine.checks)?),
            ],
            parent: None,
            round: 0,
            repairs: 0,
        }))
    }

    /// The first step of a follow-up change: the starting code, its facts and the change.
    pub(super) fn ask_edit(&self, from: u32, change: &str) -> Result<Step, PipelineError> {
        let start = self.record.attempt(from);
        let earlier: Vec<String> = self
            .edits()
            .split_last()
            .map_or(Vec::new(), |(_, e)| e.to_vec());
        let so_far = prompts::with_edits(&self.record.prompt, &earlier);
        let text = self.engine.prompts.edit(&EditContext {
            prompt: &so_far,
            request: change,
            facts: start
                .result
                .facts()
                .map(critique::describe_facts)
                .unwrap_or_default(),
            numbered_code: prompts::number_lines(&start.code),
            checks: self.engine.checks,
        })?;
        Ok(Step::Ask(Ask {
            stage: Stage::Edit,
            messages: vec![Message::system(&self.system), Message::user(text)],
            parent: Some(from),
            round: 0,
            repairs: 0,
        }))
    }

    /// The follow-up changes that led to the current request, oldest first:
    /// the request, the request its starting attempt served, and so on back
    /// to the prompt. A change made from an earlier attempt leaves out the
    /// changes made after that attempt.
    fn edits(&self) -> Vec<String> {
        let mut chain = Vec::new();
        let mut number = self.request;
        while number > 1 {
            let request = self.record.request(number);
            chain.push(request.text.clone());
            let before = request
                .from_attempt
                .and_then(|a| self.record.attempts.get(a as usize - 1))
                .map_or(1, |a| a.request);
            if before >= number {
                break;
            }
            number = before;
        }
        chain.reverse();
        chain
    }

    /// What the part should be now: the prompt and the changes so far.
    pub(super) fn asked(&self) -> String {
        prompts::with_edits(&self.record.prompt, &self.edits())
    }

    /// The layout a call for `purpose` asks its reply in; `want`: what a
    /// reminder asks for.
    fn form(&self, purpose: Purpose, want: Option<Want>) -> Form {
        match (purpose, want) {
            (Purpose::Generate | Purpose::Edit, _) if self.engine.checks => Form::ChecksAndCode,
            (Purpose::Generate | Purpose::Edit | Purpose::Repair, _) => Form::Code,
            (Purpose::Reminder, Some(Want::Code)) => Form::Code,
            _ => Form::Free,
        }
    }

    /// One LLM call, logged to the transcript and counted. While a reply
    /// streams, the progress line counts its tokens and their rate, and
    /// the watch holds its text.
    async fn call(
        &mut self,
        messages: &[Message],
        purpose: Purpose,
        attempt: u32,
        want: Option<Want>,
    ) -> Result<Reply, Stop> {
        let llm = self
            .engine
            .llm
            .as_ref()
            .ok_or(Stop::Pipeline(PipelineError::NoLlm))?;
        let stage = self.watch.progress.message();
        let (progress, writing) = (&self.watch.progress, &self.watch.writing);
        let on_text = |p: Partial<'_>| {
            let rate = p
                .tokens_per_second
                .map(|r| format!(" · {r:.1} tok/s"))
                .unwrap_or_default();
            progress.set_message(format!("{stage} · {} tokens{rate}", p.tokens));
            writing.set(Some(super::Written {
                text: p.text.to_string(),
                tokens: p.tokens,
                tokens_per_second: p.tokens_per_second,
            }));
        };
        let ask = llm::Ask {
            messages,
            model: self.watch.model.as_deref(),
            form: self.form(purpose, want),
            reminder: purpose == Purpose::Reminder,
            on_text: Some(&on_text),
        };
        let reply = llm.ask(&ask).await;
        self.watch.writing.set(None);
        self.watch.progress.set_message(stage);
        let reply = reply.map_err(Stop::Llm)?;
        self.calls += 1;
        self.record.llm_calls = self.calls;
        self.record.usage += reply.usage;
        self.current().usage += reply.usage;
        self.current().llm_calls += 1;
        self.record.timings.llm_ms += reply.elapsed_ms;
        self.record
            .calls
            .push(CallRecord::of(self.calls, purpose, attempt, &reply));
        tracing::info!(
            purpose = purpose.as_str(),
            attempt,
            tokens = reply.usage.total_tokens,
            retries = reply.retries,
            ms = reply.elapsed_ms as u64,
            first_token_ms = reply.first_token_ms.map(|ms| ms as u64),
            tokens_per_second = reply.tokens_per_second.map(|r| (r * 10.0).round() / 10.0),
            "LLM replied"
        );
        let exchange = Exchange {
            call: self.calls,
            purpose,
            attempt,
            messages: messages.to_vec(),
            reply: reply.clone(),
        };
        self.append_transcript(&exchange)?;
        Ok(reply)
    }

    /// One call and, when `missing` finds the reply lacking, one reminder
    /// for what it lacks, in the same conversation. `failures`: the failing
    /// checks, which a [`Want::Checks`] reminder names.
    pub(super) async fn ask_with_reminder(
        &mut self,
        mut messages: Vec<Message>,
        purpose: Purpose,
        attempt: u32,
        missing: impl Fn(&str) -> Option<Want>,
        failures: &str,
    ) -> Result<Asked, Stop> {
        let reply = self.call(&messages, purpose, attempt, None).await?;
        let mut asked = Asked {
            first: reply.content.clone(),
            reminded: None,
            usage: reply.usage,
            llm_ms: reply.elapsed_ms,
        };
        if let Some(want) = missing(&reply.content) {
            tracing::warn!(
                attempt,
                ?want,
                "the reply is incomplete; reminding the LLM once"
            );
            messages.push(Message::assistant(reply.content));
            messages.push(Message::user(self.engine.prompts.reminder(want, failures)?));
            let again = self
                .call(&messages, Purpose::Reminder, attempt, Some(want))
                .await?;
            asked.usage += again.usage;
            asked.llm_ms += again.elapsed_ms;
            asked.reminded = Some((want, again.content));
        }
        Ok(asked)
    }

    /// Asks for code; when the reply has none, asks once more with a reminder.
    pub(super) async fn ask_code(
        &mut self,
        messages: Vec<Message>,
        purpose: Purpose,
        attempt: u32,
    ) -> Result<Answer, Stop> {
        let no_code = |text: &str| ReplyText::new(text).code().is_none().then_some(Want::Code);
        let asked = self
            .ask_with_reminder(messages, purpose, attempt, no_code, "")
            .await?;
        let first = ReplyText::new(&asked.first);
        let second = asked
            .reminded
            .as_ref()
            .map(|(_, text)| ReplyText::new(text));
        let code = first
            .code()
            .or_else(|| second.as_ref().and_then(ReplyText::code));
        let checks = first
            .checks()
            .or_else(|| second.as_ref().and_then(ReplyText::checks))
            .map(Checks::parse);
        Ok(Answer {
            code,
            checks,
            usage: asked.usage,
            llm_ms: asked.llm_ms,
        })
    }

    pub(super) fn repair_messages(
        &self,
        attempt: &AttemptRecord,
    ) -> Result<Vec<Message>, PipelineError> {
        let Outcome::Error {
            kind,
            message,
            line,
            ..
        } = &attempt.result.outcome
        else {
            unreachable!("only failed attempts are repaired");
        };
        let text = self.engine.prompts.repair(&RepairContext {
            prompt: &self.asked(),
            numbered_code: prompts::number_lines(&attempt.code),
            error: ErrorContext {
                kind: kind.to_string(),
                message: message.clone(),
                line: *line,
            },
            output: attempt.result.output.text.trim().to_string(),
            checks: self.checks_text(),
        })?;
        Ok(vec![Message::system(&self.system), Message::user(text)])
    }
}
