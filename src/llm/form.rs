//! Holding a reply to the layout cadloop asks for, where the server can.
//!
//! A request for code asks for fenced blocks (` ```checks ` then
//! ` ```python `, or the Python alone). Servers built on llama.cpp
//! (`llama-server`, llama-cpp-python) take a GBNF grammar with the request
//! and sample only tokens it allows, so the reply cannot leave out a block,
//! write prose instead of code, or forget to close a fence. The grammar is
//! over the fenced layout itself, so the code stays code: no JSON string
//! escapes for the model to get wrong.
//!
//! Other servers constrain output only to JSON (OpenAI's `json_schema`,
//! Ollama's `format`, vLLM's guided decoding); their replies are left free.

use serde::{Deserialize, Serialize};

use super::window::ServerKind;

/// The layout a reply is asked for in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    /// Anything: prose, a verdict, a critique.
    Free,
    /// One ```python block.
    Code,
    /// A ```checks block, then one ```python block.
    ChecksAndCode,
}

/// When a reply is held to its layout (`--constrain`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Constrain {
    /// No reply is held to its layout.
    Never,
    /// Only the reminder after a reply that lacked the code.
    Reminders,
    /// Every request for code.
    #[default]
    Always,
}

/// A line inside a block: empty, or not starting with a backtick (which
/// would open the closing fence).
const LINE: &str = "line ::= ([^`\\n] [^\\n]*)? \"\\n\"\n";
const CODE: &str = "code ::= \"```python\\n\" line+ \"```\" \"\\n\"?\n";
const CHECKS: &str = "checks ::= \"```checks\\n\" line+ \"```\\n\"\n";

impl Form {
    /// The GBNF grammar of this layout, `None` for a free reply.
    pub fn grammar(self) -> Option<String> {
        match self {
            Form::Free => None,
            Form::Code => Some(format!("root ::= code\n{CODE}{LINE}")),
            Form::ChecksAndCode => Some(format!("root ::= checks code\n{CHECKS}{CODE}{LINE}")),
        }
    }
}

/// Whether the server takes a GBNF `grammar` field with a chat request.
pub fn takes_grammar(kind: ServerKind) -> bool {
    matches!(kind, ServerKind::LlamaServer | ServerKind::LlamaCppPython)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::ReplyText;

    #[test]
    fn the_grammar_names_every_rule_it_uses() {
        for form in [Form::Code, Form::ChecksAndCode] {
            let grammar = form.grammar().unwrap();
            let defined: Vec<&str> = grammar
                .lines()
                .filter_map(|l| l.split_once(" ::= ").map(|(name, _)| name))
                .collect();
            assert_eq!(defined[0], "root", "{grammar}");
            for rule in ["code", "line"] {
                assert!(defined.contains(&rule), "{form:?}: {grammar}");
            }
            assert_eq!(
                defined.contains(&"checks"),
                form == Form::ChecksAndCode,
                "{grammar}"
            );
        }
        assert_eq!(Form::Free.grammar(), None);
    }

    /// A reply the grammar allows is one the reader takes apart as asked.
    #[test]
    fn a_reply_in_the_layout_reads_back() {
        let reply = "```checks\nsize x == 40 ± 0.5\n```\n```python\nimport Part\n\nresult = Part.makeBox(40, 20, 10)\n```\n";
        let text = ReplyText::new(reply);
        assert_eq!(
            text.code().as_deref(),
            Some("import Part\n\nresult = Part.makeBox(40, 20, 10)\n")
        );
        assert_eq!(text.checks(), Some("size x == 40 ± 0.5\n"));
    }
}
