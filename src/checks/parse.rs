//! Reading a list of checks: a small lexer and a recursive-descent parser for
//! `CHECKS = [call, …]`, where a call names a library function and its
//! arguments are literals. Nothing else is accepted, and nothing is run.

use std::collections::BTreeMap;

use serde_json::Value;

use super::{CheckCall, ChecksError, Signature, LIBRARY, MAX_CHECKS};

/// The calls of `source`, each with its arguments by name.
pub(super) fn calls(source: &str) -> Result<Vec<CheckCall>, ChecksError> {
    let tokens = lex(source)?;
    let mut parser = Parser {
        source,
        tokens: &tokens,
        at: 0,
    };
    parser.file()
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
            c if c.is_ascii_digit()
                || (c == '.' && bytes.get(i + 1).is_some_and(u8::is_ascii_digit)) =>
            {
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
    // The end is placed on the last line that holds anything: a trailing
    // newline or blank lines would otherwise name a line past the text.
    tokens.push(Token {
        tok: Tok::End,
        line: tokens.last().map_or(1, |t| t.line),
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
        if b.is_ascii_digit() || b == b'_' || b == b'.' || b == b'e' || b == b'E' || exponent_sign {
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
            self.error(
                &token,
                format!("expected `{c}` {what}, found {}", shown(&token.tok)),
            )
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
                    format!(
                        "the checks must be one list, `CHECKS = [...]`; found `{}`",
                        shown(&token.tok)
                    ),
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
            return self.error(
                &rest,
                "only one `CHECKS = [...]` list may be given, with nothing after it",
            );
        }
        Ok(calls)
    }

    fn call(&mut self) -> Result<CheckCall, ChecksError> {
        let head = self.next();
        let Tok::Name(name) = &head.tok else {
            return self.error(
                &head,
                format!(
                    "expected a check such as `bbox(...)`, found {}",
                    shown(&head.tok)
                ),
            );
        };
        let Some(signature) = LIBRARY.iter().find(|s| s.name == name) else {
            return self.error(
                &head,
                format!("`{name}` is not a check; the checks are {}", names()),
            );
        };
        self.expect('(', &format!("after `{name}`"))?;
        let args = self.arguments(signature)?;
        let end = self.tokens[self.at - 1].end;
        if let Some(missing) = signature.params[..signature.required]
            .iter()
            .find(|p| !args.contains_key(**p))
        {
            return self.error(
                &head,
                format!(
                    "{name}() needs `{missing}`; its arguments are {}",
                    params(signature)
                ),
            );
        }
        Ok(CheckCall {
            name: name.clone(),
            args,
            call: self.source[head.start..end]
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" "),
            comment: self.comment_on(self.tokens[self.at - 1].line),
        })
    }

    /// A call's arguments up to its closing bracket, by parameter name.
    fn arguments(&mut self, signature: &Signature) -> Result<BTreeMap<String, Value>, ChecksError> {
        let name = signature.name;
        let mut args = BTreeMap::new();
        let mut positional = 0usize;
        while !self.eat(')') {
            let at = self.peek().clone();
            let param = match self.keyword() {
                Some(word)
                    if signature.params.contains(&word.as_str())
                        || (signature.on_part && word == super::PART) =>
                {
                    word
                }
                Some(word) => {
                    return self.error(
                        &at,
                        format!(
                            "{name}() has no argument `{word}`; its arguments are {}",
                            params(signature)
                        ),
                    )
                }
                None if positional < args.len() => {
                    return self.error(
                        &at,
                        format!("in {name}(), a value without a name follows a named one"),
                    );
                }
                None => match signature.params.get(positional) {
                    Some(param) => {
                        positional += 1;
                        param.to_string()
                    }
                    None => {
                        return self.error(
                            &at,
                            format!(
                                "{name}() takes at most {} values; its arguments are {}",
                                signature.params.len(),
                                params(signature)
                            ),
                        )
                    }
                },
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
        Ok(args)
    }

    /// `NAME =` ahead: takes both and gives the name.
    fn keyword(&mut self) -> Option<String> {
        let mut ahead = self.tokens[self.at..]
            .iter()
            .filter(|t| !matches!(t.tok, Tok::Comment(_)));
        match (ahead.next().map(|t| &t.tok), ahead.next().map(|t| &t.tok)) {
            (Some(Tok::Name(word)), Some(Tok::Punct('='))) => {
                let word = word.clone();
                self.next();
                self.next();
                Some(word)
            }
            _ => None,
        }
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
        self.operations(['+', '-'], Self::term)
    }

    fn term(&mut self) -> Result<Value, ChecksError> {
        self.operations(['*', '/'], Self::factor)
    }

    /// Operands joined by either of `ops`, left to right.
    fn operations(
        &mut self,
        ops: [char; 2],
        operand: fn(&mut Self) -> Result<Value, ChecksError>,
    ) -> Result<Value, ChecksError> {
        let mut value = operand(self)?;
        loop {
            let op = match self.peek().tok {
                Tok::Punct(c) if ops.contains(&c) => c,
                _ => return Ok(value),
            };
            let at = self.next();
            let right = operand(self)?;
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
            Tok::Name(n) => self.error(
                &token,
                format!("`{n}` is not a value here: use numbers, strings, True, False or None"),
            ),
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
    LIBRARY
        .iter()
        .map(|s| s.name)
        .collect::<Vec<_>>()
        .join(", ")
}

fn params(signature: &Signature) -> String {
    let mut names: Vec<String> = signature.params.iter().map(|p| p.to_string()).collect();
    if signature.on_part {
        names.push(format!("{}= (by name)", super::PART));
    }
    names.join(", ")
}

#[cfg(test)]
mod tests {
    use super::super::Checks;
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
    fn any_check_may_name_a_part_by_keyword_and_the_checks_between_parts_take_two() {
        let source = "CHECKS = [bbox(60, 40, 5, part=\"lid\"), holes(4, part='leaf a'),\n  clearance('pin', 'leaf a', 0.15), interference(part_a='box', part_b='lid')]";
        let calls = Checks::parse(source).unwrap().calls;
        assert_eq!(calls[0].args["part"], json!("lid"));
        assert_eq!(calls[0].args["z"], json!(5));
        assert_eq!(calls[1].args["part"], json!("leaf a"));
        assert_eq!(calls[2].args["part_b"], json!("leaf a"));
        assert_eq!(calls[2].args["min"], json!(0.15));
        assert_eq!(calls[3].args.len(), 2);
        for (source, said) in [
            // A part is named, never given by position.
            (
                "[valid('lid')]",
                "valid() takes at most 0 values; its arguments are part= (by name)",
            ),
            (
                "[clearance('a', 'b', 1, part='a')]",
                "clearance() has no argument `part`",
            ),
            ("[interference('a')]", "interference() needs `part_b`"),
        ] {
            let err = Checks::parse(source).unwrap_err().to_string();
            assert!(err.contains(said), "{source}: {err}");
        }
    }

    #[test]
    fn anything_but_literal_calls_of_the_library_is_refused_with_its_line() {
        let cases = [
            (
                "CHECKS = [__import__('os').system('x')]",
                1,
                "`__import__` is not a check",
            ),
            (
                "CHECKS = [\n  bbox(40),\n  open('x')\n]",
                3,
                "`open` is not a check",
            ),
            (
                "CHECKS = [holes(dia=3)]",
                1,
                "holes() has no argument `dia`",
            ),
            ("CHECKS = [holes(count=3)]", 1, "holes() needs `diameter`"),
            (
                "CHECKS = [bbox(1, 2, 3, 4, 5, 6)]",
                1,
                "takes at most 5 values",
            ),
            (
                "CHECKS = [bbox(x=1, 2)]",
                1,
                "without a name follows a named one",
            ),
            ("CHECKS = [bbox(x=L)]", 1, "`L` is not a value here"),
            ("CHECKS = [bbox(1, x=2)]", 1, "`x` twice"),
            ("import os\nCHECKS = []", 1, "must be one list"),
            ("CHECKS = [valid()]\nCHECKS = []", 2, "only one"),
            ("CHECKS = [bbox(1 / 0)]", 1, "division by zero"),
            (
                "CHECKS = [bbox(\n  # a comment\n  z=1,\n  q=2)]",
                4,
                "no argument `q`",
            ),
            ("CHECKS = [bbox('a' + 1)]", 1, "numbers only"),
            ("CHECKS = [bbox(1); valid()]", 1, "found `;`"),
            ("CHECKS = [bbox(1) $ 2]", 1, "unexpected `$`"),
            ("CHECKS = [bbox('open)]", 1, "not closed"),
            ("CHECKS = [bbox(1)", 1, "to close the list"),
            ("CHECKS = [\n  bbox(1),\n\n\n", 2, "found the end"),
            ("\n", 1, "to open the list"),
        ];
        for (source, line, words) in cases {
            let err = Checks::parse(source).unwrap_err();
            assert_eq!(err.line, line, "{source}: {err}");
            assert!(err.to_string().contains(words), "{source}: {err}");
        }
    }
}
