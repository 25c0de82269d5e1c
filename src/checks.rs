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
];

/// More checks than this in one list is not a reading of a request.
pub const MAX_CHECKS: usize = 40;

/// One library function's parameters.
#[derive(Debug, Clone, Copy)]
pub struct Signature {
    pub name: &'static str,
    pub params: &'static [&'static str],
    pub required: usize,
}

const fn sig(name: &'static str, params: &'static [&'static str], required: usize) -> Signature {
    Signature {
        name,
        params,
        required,
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
    pub fn of(results: &[CheckResult]) -> Tally {
        Tally {
            passed: results
                .iter()
                .filter(|r| r.status == CheckStatus::Pass)
                .count() as u32,
            total: results.len() as u32,
        }
    }

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

/// The fence labels a checks block may carry.
const LABELS: [&str; 2] = ["checks", "check"];

/// Whether a fenced block is a checks block: labelled so, or a Python block
/// that only assigns `CHECKS`.
pub fn is_checks_block(label: &str, body: &str) -> bool {
    LABELS.contains(&label) || starts_with_checks(body)
}

fn starts_with_checks(body: &str) -> bool {
    body.lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'))
        .is_some_and(|l| {
            l.strip_prefix("CHECKS")
                .is_some_and(|rest| rest.trim_start().starts_with('='))
        })
}

/// The reason a critique gives for changing the checks: the text after
/// `CHECKS CHANGED:` on a line of its own (any case, Markdown marks around
/// it), outside code blocks. `None` when there is no such line or it is empty.
pub fn change_reason(reply: &str) -> Option<String> {
    let mut in_fence = false;
    for line in reply.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("```") || trimmed.starts_with("~~~") {
            in_fence = !in_fence;
            continue;
        }
        if in_fence {
            continue;
        }
        let cleaned: String = line
            .chars()
            .filter(|c| !matches!(c, '*' | '_' | '`' | '#' | '>'))
            .collect();
        let cleaned = cleaned.trim();
        let lower = cleaned.to_ascii_lowercase();
        if let Some(rest) = lower.strip_prefix("checks changed") {
            let reason = cleaned[cleaned.len() - rest.len()..]
                .trim_start_matches([':', '-', '—', ' '])
                .trim();
            return (!reason.is_empty()).then(|| reason.to_string());
        }
    }
    None
}

/// The checks block of a reply, read: `None` when the reply has none.
pub fn from_reply(reply: &str) -> Option<Result<Checks, ChecksError>> {
    let body = crate::llm::fenced_blocks(reply)
        .into_iter()
        .find(|b| is_checks_block(&b.label, &b.body))?
        .body;
    Some(Checks::parse(&body))
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
        let tokens = lex(source).map_err(written)?;
        let mut parser = Parser {
            source,
            tokens: &tokens,
            at: 0,
        };
        let calls = parser.file().map_err(written)?;
        Ok(Checks {
            source: source.trim_end().to_string() + "\n",
            calls,
        })
    }

    pub fn is_empty(&self) -> bool {
        self.calls.is_empty()
    }

    /// The calls as the prompts list them, one "- " line each.
    pub fn describe(&self) -> String {
        self.calls
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
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Name(String),
    Int(i64),
    Float(f64),
    Str(String),
    Punct(char),
    Comment(String),
    End,
}

#[derive(Debug, Clone)]
struct Token {
    tok: Tok,
    line: u32,
    /// Byte offsets in the source.
    start: usize,
    end: usize,
}

fn lex(source: &str) -> Result<Vec<Token>, ChecksError> {
    let mut tokens = Vec::new();
    let bytes = source.as_bytes();
    let (mut i, mut line) = (0usize, 1u32);
    let fail = |line, message: String| {
        Err(ChecksError {
            line,
            message,
            written: String::new(),
        })
    };
    while i < bytes.len() {
        let c = source[i..].chars().next().expect("in bounds");
        let start = i;
        let tok = match c {
            '\n' => {
                line += 1;
                i += 1;
                continue;
            }
            c if c.is_whitespace() => {
                i += c.len_utf8();
                continue;
            }
            '#' => {
                let end = source[i..].find('\n').map_or(source.len(), |n| i + n);
                i = end;
                Tok::Comment(source[start + 1..end].trim().to_string())
            }
            c if c.is_ascii_alphabetic() || c == '_' => {
                while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                    i += 1;
                }
                Tok::Name(source[start..i].to_string())
            }
            c if c.is_ascii_digit() || (c == '.' && bytes.get(i + 1).is_some_and(u8::is_ascii_digit)) => {
                i = number_end(bytes, i);
                let text = source[start..i].replace('_', "");
                match text.parse::<i64>() {
                    Ok(n) => Tok::Int(n),
                    Err(_) => match text.parse::<f64>() {
                        Ok(x) if x.is_finite() => Tok::Float(x),
                        _ => return fail(line, format!("`{text}` is not a number")),
                    },
                }
            }
            '"' | '\'' => {
                let close = source[i + 1..].find([c, '\n']).map(|n| i + 1 + n);
                match close {
                    Some(end) if bytes[end] == c as u8 => {
                        i = end + 1;
                        Tok::Str(source[start + 1..end].to_string())
                    }
                    _ => return fail(line, "a string is not closed on its line".into()),
                }
            }
            '(' | ')' | '[' | ']' | ',' | '=' | '+' | '-' | '*' | '/' | '.' | ';' | ':' => {
                i += 1;
                Tok::Punct(c)
            }
            other => return fail(line, format!("unexpected `{other}`")),
        };
        tokens.push(Token {
            tok,
            line,
            start,
            end: i,
        });
    }
    tokens.push(Token {
        tok: Tok::End,
        line,
        start: source.len(),
        end: source.len(),
    });
    Ok(tokens)
}

/// The end of a number literal starting at `i` (digits, `_`, `.`, an exponent).
fn number_end(bytes: &[u8], mut i: usize) -> usize {
    while i < bytes.len() {
        let b = bytes[i];
        let exponent_sign = (b == b'+' || b == b'-') && matches!(bytes[i - 1], b'e' | b'E');
        if b.is_ascii_digit() || b == b'_' || b == b'.' || b == b'e' || b == b'E' || exponent_sign
        {
            i += 1;
        } else {
            break;
        }
    }
    i
}

struct Parser<'a> {
    source: &'a str,
    tokens: &'a [Token],
    at: usize,
}

impl Parser<'_> {
    /// The next token that is not a comment.
    fn peek(&self) -> &Token {
        self.tokens[self.at..]
            .iter()
            .find(|t| !matches!(t.tok, Tok::Comment(_)))
            .expect("ends with End")
    }

    fn next(&mut self) -> Token {
        while matches!(self.tokens[self.at].tok, Tok::Comment(_)) {
            self.at += 1;
        }
        let token = self.tokens[self.at].clone();
        if token.tok != Tok::End {
            self.at += 1;
        }
        token
    }

    fn error<T>(&self, token: &Token, message: impl Into<String>) -> Result<T, ChecksError> {
        Err(ChecksError {
            line: token.line,
            message: message.into(),
            written: String::new(),
        })
    }

    fn expect(&mut self, c: char, what: &str) -> Result<Token, ChecksError> {
        let token = self.next();
        if token.tok == Tok::Punct(c) {
            Ok(token)
        } else {
            self.error(&token, format!("expected `{c}` {what}, found {}", shown(&token.tok)))
        }
    }

    fn eat(&mut self, c: char) -> bool {
        if self.peek().tok == Tok::Punct(c) {
            self.next();
            true
        } else {
            false
        }
    }

    /// `CHECKS = [call, …]`, or the bare list.
    fn file(&mut self) -> Result<Vec<CheckCall>, ChecksError> {
        if let Tok::Name(name) = self.peek().tok.clone() {
            let token = self.next();
            if name != "CHECKS" {
                return self.error(
                    &token,
                    format!("the checks must be one list, `CHECKS = [...]`; found `{}`", shown(&token.tok)),
                );
            }
            self.expect('=', "after CHECKS")?;
        }
        self.expect('[', "to open the list of checks")?;
        let mut calls = Vec::new();
        while !self.eat(']') {
            calls.push(self.call()?);
            if calls.len() > MAX_CHECKS {
                return self.error(self.peek(), format!("more than {MAX_CHECKS} checks"));
            }
            if !self.eat(',') {
                self.expect(']', "to close the list of checks (or `,` between checks)")?;
                break;
            }
        }
        let rest = self.next();
        if rest.tok != Tok::End {
            return self.error(&rest, "only one `CHECKS = [...]` list may be given, with nothing after it");
        }
        Ok(calls)
    }

    fn call(&mut self) -> Result<CheckCall, ChecksError> {
        let head = self.next();
        let Tok::Name(name) = &head.tok else {
            return self.error(&head, format!("expected a check such as `bbox(...)`, found {}", shown(&head.tok)));
        };
        let Some(signature) = LIBRARY.iter().find(|s| s.name == name) else {
            return self.error(&head, format!("`{name}` is not a check; the checks are {}", names()));
        };
        self.expect('(', &format!("after `{name}`"))?;
        let mut args = BTreeMap::new();
        let mut positional = 0usize;
        while !self.eat(')') {
            let keyword = match (&self.peek().tok, self.tokens.get(self.at + 1).map(|t| &t.tok)) {
                (Tok::Name(word), Some(Tok::Punct('='))) => Some(word.clone()),
                _ => None,
            };
            let at = self.peek().clone();
            let param = match keyword {
                Some(word) => {
                    self.next();
                    self.next();
                    if !signature.params.contains(&word.as_str()) {
                        return self.error(&at, format!("{name}() has no argument `{word}`; its arguments are {}", params(signature)));
                    }
                    word
                }
                None if !args.is_empty() && positional < args.len() => {
                    return self.error(&at, format!("in {name}(), a value without a name follows a named one"));
                }
                None => {
                    let Some(&param) = signature.params.get(positional) else {
                        return self.error(&at, format!("{name}() takes at most {} values; its arguments are {}", signature.params.len(), params(signature)));
                    };
                    positional += 1;
                    param.to_string()
                }
            };
            let value = self.expr()?;
            if args.insert(param.clone(), value).is_some() {
                return self.error(&at, format!("{name}() is given `{param}` twice"));
            }
            if !self.eat(',') {
                self.expect(')', &format!("to close {name}(...)"))?;
                break;
            }
        }
        let end = self.tokens[self.at - 1].end;
        if let Some(missing) = signature.params[..signature.required]
            .iter()
            .find(|p| !args.contains_key(**p))
        {
            return self.error(&head, format!("{name}() needs `{missing}`; its arguments are {}", params(signature)));
        }
        Ok(CheckCall {
            name: name.clone(),
            args,
            call: self.source[head.start..end].split_whitespace().collect::<Vec<_>>().join(" "),
            comment: self.comment_on(self.tokens[self.at - 1].line),
        })
    }

    /// The comment on `line`, if any.
    fn comment_on(&self, line: u32) -> String {
        self.tokens
            .iter()
            .find_map(|t| match &t.tok {
                Tok::Comment(text) if t.line == line => Some(text.clone()),
                _ => None,
            })
            .unwrap_or_default()
    }

    /// A value: sums and products of numbers, or a string, a constant, a tuple or a list.
    fn expr(&mut self) -> Result<Value, ChecksError> {
        let mut value = self.term()?;
        loop {
            let op = match self.peek().tok {
                Tok::Punct(c @ ('+' | '-')) => c,
                _ => return Ok(value),
            };
            let at = self.next();
            let right = self.term()?;
            value = self.arithmetic(&at, op, value, right)?;
        }
    }

    fn term(&mut self) -> Result<Value, ChecksError> {
        let mut value = self.factor()?;
        loop {
            let op = match self.peek().tok {
                Tok::Punct(c @ ('*' | '/')) => c,
                _ => return Ok(value),
            };
            let at = self.next();
            let right = self.factor()?;
            value = self.arithmetic(&at, op, value, right)?;
        }
    }

    fn factor(&mut self) -> Result<Value, ChecksError> {
        let token = self.next();
        match &token.tok {
            Tok::Punct(c @ ('-' | '+')) => {
                let inner = self.factor()?;
                let sign = if *c == '-' { -1 } else { 1 };
                self.arithmetic(&token, '*', Value::from(sign), inner)
            }
            Tok::Int(n) => Ok(Value::from(*n)),
            Tok::Float(x) => Ok(Value::from(*x)),
            Tok::Str(s) => Ok(Value::from(s.clone())),
            Tok::Name(n) if n == "True" => Ok(Value::Bool(true)),
            Tok::Name(n) if n == "False" => Ok(Value::Bool(false)),
            Tok::Name(n) if n == "None" => Ok(Value::Null),
            Tok::Punct(open @ ('(' | '[')) => {
                let close = if *open == '(' { ')' } else { ']' };
                let mut items = Vec::new();
                let mut comma = false;
                while !self.eat(close) {
                    items.push(self.expr()?);
                    comma = self.eat(',');
                    if !comma {
                        self.expect(close, "to close the brackets")?;
                        break;
                    }
                }
                // `(2 + 3)` is a number; `(2, 3)` and `[2]` are sequences.
                if *open == '(' && items.len() == 1 && !comma {
                    Ok(items.pop().expect("one item"))
                } else {
                    Ok(Value::Array(items))
                }
            }
            Tok::Name(n) => self.error(&token, format!("`{n}` is not a value here: use numbers, strings, True, False or None")),
            other => self.error(&token, format!("expected a value, found {}", shown(other))),
        }
    }

    fn arithmetic(&self, at: &Token, op: char, a: Value, b: Value) -> Result<Value, ChecksError> {
        let (Some(x), Some(y)) = (a.as_f64(), b.as_f64()) else {
            return self.error(at, format!("`{op}` works on numbers only"));
        };
        if let (Some(i), Some(j), true) = (a.as_i64(), b.as_i64(), op != '/') {
            let exact = match op {
                '+' => i.checked_add(j),
                '-' => i.checked_sub(j),
                _ => i.checked_mul(j),
            };
            if let Some(n) = exact {
                return Ok(Value::from(n));
            }
        }
        let value = match op {
            '+' => x + y,
            '-' => x - y,
            '*' => x * y,
            _ if y == 0.0 => return self.error(at, "division by zero"),
            _ => x / y,
        };
        Ok(Value::from(value))
    }
}

fn shown(tok: &Tok) -> String {
    match tok {
        Tok::Name(n) => format!("`{n}`"),
        Tok::Int(n) => format!("`{n}`"),
        Tok::Float(x) => format!("`{x}`"),
        Tok::Str(s) => format!("'{s}'"),
        Tok::Punct(c) => format!("`{c}`"),
        Tok::Comment(_) => "a comment".into(),
        Tok::End => "the end".into(),
    }
}

fn names() -> String {
    LIBRARY.iter().map(|s| s.name).collect::<Vec<_>>().join(", ")
}

fn params(signature: &Signature) -> String {
    if signature.params.is_empty() {
        "none".into()
    } else {
        signature.params.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_list_of_calls_is_read_as_data_with_names_for_every_argument() {
        let source = "CHECKS = [\n    bbox(30, 30, 30, tol=0.2),  # the cube\n    holes(diameter=12, count=1, through=True, axis='z'),\n    wall(2, at=(0, -5.5, 2 * 3), direction=\"x\"),\n    axis_distance(5, 5, 30 * 2 / 4 + 0.5),\n    position(min=(0, 0, None)),\n]\n";
        let checks = Checks::parse(source).unwrap();
        let calls = &checks.calls;
        assert_eq!(calls.len(), 5);
        assert_eq!(calls[0].name, "bbox");
        assert_eq!(calls[0].args["x"], json!(30));
        assert_eq!(calls[0].args["tol"], json!(0.2));
        assert_eq!(calls[0].comment, "the cube");
        assert_eq!(calls[0].call, "bbox(30, 30, 30, tol=0.2)");
        assert_eq!(calls[1].args["through"], json!(true));
        assert_eq!(calls[1].args["axis"], json!("z"));
        assert_eq!(calls[1].comment, "");
        assert_eq!(calls[2].args["at"], json!([0, -5.5, 6]));
        assert_eq!(calls[3].args["distance"], json!(15.5));
        assert_eq!(calls[4].args["min"], json!([0, 0, null]));
        assert_eq!(Checks::parse("CHECKS = []").unwrap().calls.len(), 0);
        assert_eq!(Checks::parse("[valid()]").unwrap().calls[0].name, "valid");
    }

    #[test]
    fn anything_but_literal_calls_of_the_library_is_refused_with_its_line() {
        let cases = [
            ("CHECKS = [__import__('os').system('x')]", 1, "`__import__` is not a check"),
            ("CHECKS = [\n  bbox(40),\n  open('x')\n]", 3, "`open` is not a check"),
            ("CHECKS = [holes(dia=3)]", 1, "holes() has no argument `dia`"),
            ("CHECKS = [holes(count=3)]", 1, "holes() needs `diameter`"),
            ("CHECKS = [bbox(1, 2, 3, 4, 5, 6)]", 1, "takes at most 5 values"),
            ("CHECKS = [bbox(x=1, 2)]", 1, "without a name follows a named one"),
            ("CHECKS = [bbox(x=L)]", 1, "`L` is not a value here"),
            ("CHECKS = [bbox(1, x=2)]", 1, "`x` twice"),
            ("import os\nCHECKS = []", 1, "must be one list"),
            ("CHECKS = [valid()]\nCHECKS = []", 2, "only one"),
            ("CHECKS = [bbox(1 / 0)]", 1, "division by zero"),
            ("CHECKS = [bbox('a' + 1)]", 1, "numbers only"),
            ("CHECKS = [bbox(1); valid()]", 1, "found `;`"),
            ("CHECKS = [bbox(1) $ 2]", 1, "unexpected `$`"),
            ("CHECKS = [bbox('open)]", 1, "not closed"),
            ("CHECKS = [bbox(1)", 1, "to close the list"),
        ];
        for (source, line, words) in cases {
            let err = Checks::parse(source).unwrap_err();
            assert_eq!(err.line, line, "{source}: {err}");
            assert!(err.to_string().contains(words), "{source}: {err}");
        }
    }

    #[test]
    fn the_checks_block_of_a_reply_is_found_by_its_label_or_its_assignment() {
        let reply = "Checks first:\n```checks\nCHECKS = [bbox(30, 30, 30)]\n```\n```python\nimport Part\nresult = Part.makeBox(30, 30, 30)\n```";
        let checks = from_reply(reply).unwrap().unwrap();
        assert_eq!(checks.calls[0].name, "bbox");
        let in_python = "```python\n# the checks\nCHECKS = [valid()]\n```\n```python\nresult = 1\n```";
        assert_eq!(from_reply(in_python).unwrap().unwrap().calls[0].name, "valid");
        assert!(from_reply("```python\nresult = 1\n```").is_none());
        assert!(from_reply("```checks\nCHECKS = [nope()]\n```").unwrap().is_err());
    }

    #[test]
    fn a_change_of_checks_states_its_reason_on_a_line_of_its_own() {
        let reply = "VERDICT: MATCH\n**CHECKS CHANGED:** the request asks for a 6 mm hole, not 12\n```checks\nCHECKS = [holes(6)]\n```";
        assert_eq!(
            change_reason(reply).unwrap(),
            "the request asks for a 6 mm hole, not 12"
        );
        assert_eq!(change_reason("checks changed:   \n"), None);
        assert_eq!(change_reason("```python\n# CHECKS CHANGED: no\n```"), None);
        assert_eq!(change_reason("VERDICT: MATCH"), None);
    }

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
