//! Reading an LLM reply: the one place that knows how a reply is laid out.
//!
//! A reply is Markdown: prose lines and fenced blocks, split once by
//! [`ReplyText::new`]. The script is the last Python block
//! ([`ReplyText::code`]); a request's checks come in a block of their own
//! (```checks, or a Python block that only assigns `CHECKS`:
//! [`ReplyText::checks`]); a critique states its verdict and a change of the
//! checks on lines of their own, `VERDICT: MATCH`, `CHECKS CHANGED: why`
//! ([`ReplyText::statements`]). What the words mean is the caller's: the
//! critique reads the verdict, the checks parse their block.

/// Languages a fenced block may be labelled with and still be taken as the code.
const CODE_LABELS: [&str; 4] = ["python", "py", "python3", "freecad"];

/// The fence labels a checks block may carry.
const CHECKS_LABELS: [&str; 2] = ["checks", "check"];

/// A reply's text, split into fenced blocks and prose lines.
pub struct ReplyText<'a> {
    lines: Vec<&'a str>,
    blocks: Vec<Block>,
    /// For each line, whether it is prose: outside every fence, and not one.
    prose: Vec<bool>,
}

/// Which lines [`ReplyText::statements`] looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lines {
    /// Prose only: a statement inside a code block is code.
    Prose,
    /// Every line, fenced ones too (some models fence their whole answer).
    All,
}

impl<'a> ReplyText<'a> {
    /// Splits `text` into its complete fenced blocks and its prose lines. A
    /// fence that is never closed makes no block, and the lines after it are
    /// not prose.
    pub fn new(text: &'a str) -> ReplyText<'a> {
        let lines: Vec<&str> = text.lines().collect();
        let mut blocks = Vec::new();
        let mut prose = vec![false; lines.len()];
        let mut open: Option<(char, usize, String, Vec<&str>)> = None;
        for (i, line) in lines.iter().enumerate() {
            match (&mut open, fence_of(line)) {
                (None, Some((ch, len, info))) => {
                    open = Some((ch, len, label_of(info), Vec::new()));
                }
                (Some((ch, len, _, _)), Some((c, l, info)))
                    if c == *ch && l >= *len && info.is_empty() =>
                {
                    let (_, _, label, body) = open.take().expect("matched Some");
                    blocks.push(Block {
                        label,
                        body: ensure_newline(&body.join("\n")),
                    });
                }
                (Some((_, _, _, body)), _) => body.push(line),
                (None, None) => prose[i] = true,
            }
        }
        ReplyText {
            lines,
            blocks,
            prose,
        }
    }

    /// The reply's lines, fences and all.
    pub fn lines(&self) -> &[&'a str] {
        &self.lines
    }

    /// The FreeCAD Python: the last complete fenced block labelled python
    /// (or py, python3, freecad), else the last complete unlabelled block,
    /// leaving out a checks block. A reply with no fence at all is taken
    /// whole when it starts like a script (an import, a comment). `None` when
    /// there is no code.
    pub fn code(&self) -> Option<String> {
        let blocks: Vec<&Block> = self.blocks.iter().filter(|b| !b.is_checks()).collect();
        let labelled = blocks
            .iter()
            .rev()
            .find(|b| CODE_LABELS.contains(&b.label.as_str()));
        let unlabelled = blocks.iter().rev().find(|b| b.label.is_empty());
        if let Some(block) = labelled.or(unlabelled) {
            return Some(block.body.clone()).filter(|code| !code.trim().is_empty());
        }
        let has_fence = self.lines.iter().any(|l| fence_of(l).is_some());
        let first = self
            .lines
            .iter()
            .map(|l| l.trim())
            .find(|l| !l.is_empty())?;
        let looks_like_code =
            first.starts_with("import ") || first.starts_with("from ") || first.starts_with('#');
        (!has_fence && looks_like_code).then(|| ensure_newline(self.lines.join("\n").trim()))
    }

    /// The text of the first checks block, if the reply has one.
    pub fn checks(&self) -> Option<&str> {
        self.blocks
            .iter()
            .find(|b| b.is_checks())
            .map(|b| b.body.as_str())
    }

    /// The lines that state `word` (any case; Markdown emphasis, heading,
    /// quote and code marks around it do not count), in order: each line's
    /// index, and what follows the word, with the marks taken out and the
    /// separators `:` `-` `=` `—` before it trimmed.
    pub fn statements(&self, word: &str, lines: Lines) -> Vec<(usize, String)> {
        self.lines
            .iter()
            .enumerate()
            .filter(|(i, _)| lines == Lines::All || self.prose[*i])
            .filter_map(|(i, line)| {
                let cleaned: String = line
                    .chars()
                    .filter(|c| !matches!(c, '*' | '_' | '`' | '#' | '>'))
                    .collect();
                let cleaned = cleaned.trim();
                let head = cleaned.get(..word.len())?;
                if !head.eq_ignore_ascii_case(word) {
                    return None;
                }
                let rest = cleaned[word.len()..]
                    .trim_start()
                    .trim_start_matches([':', '-', '=', '—'])
                    .trim();
                Some((i, rest.to_string()))
            })
            .collect()
    }

    /// The prose, without line `leave_out`, trimmed.
    pub fn prose_without(&self, leave_out: Option<usize>) -> String {
        self.lines
            .iter()
            .enumerate()
            .filter(|(i, _)| self.prose[*i] && Some(*i) != leave_out)
            .map(|(_, l)| *l)
            .collect::<Vec<_>>()
            .join("\n")
            .trim()
            .to_string()
    }
}

/// A complete fenced block of a reply: its language label (lower case) and text.
struct Block {
    label: String,
    body: String,
}

impl Block {
    /// Whether the block holds a request's checks: labelled so, or a block
    /// whose first statement assigns `CHECKS`.
    fn is_checks(&self) -> bool {
        CHECKS_LABELS.contains(&self.label.as_str()) || starts_with_checks(&self.body)
    }
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

/// A fence's info string's first word, lower case, without `{.` `}`.
fn label_of(info: &str) -> String {
    info.split_whitespace()
        .next()
        .unwrap_or("")
        .trim_start_matches('{')
        .trim_start_matches('.')
        .trim_end_matches('}')
        .to_ascii_lowercase()
}

/// A fence line: its character, its length and the info string after it.
fn fence_of(line: &str) -> Option<(char, usize, &str)> {
    let indent = line.len() - line.trim_start_matches(' ').len();
    if indent > 3 {
        return None;
    }
    let rest = &line[indent..];
    let ch = rest.chars().next().filter(|&c| c == '`' || c == '~')?;
    let len = rest.chars().take_while(|&c| c == ch).count();
    (len >= 3).then(|| (ch, len, rest[len..].trim()))
}

fn ensure_newline(code: &str) -> String {
    let mut code = code.to_string();
    if !code.ends_with('\n') {
        code.push('\n');
    }
    code
}

#[cfg(test)]
mod tests {
    use super::*;

    fn extract_code(reply: &str) -> Option<String> {
        ReplyText::new(reply).code()
    }

    #[test]
    fn the_last_complete_python_block_wins() {
        let reply = "First try:\n```python\nresult = 1\n```\nBetter:\n```python\nimport Part\nresult = Part.makeBox(1, 2, 3)\n```\nDone.";
        assert_eq!(
            extract_code(reply).unwrap(),
            "import Part\nresult = Part.makeBox(1, 2, 3)\n"
        );
    }

    #[test]
    fn a_labelled_block_beats_an_unlabelled_one_and_other_languages_are_not_code() {
        let reply =
            "```python\nresult = 1\n```\n```\nsome output\n```\n```bash\nfreecadcmd x.py\n```";
        assert_eq!(extract_code(reply).unwrap(), "result = 1\n");
        let unlabelled = "Here:\n```\nimport Part\nresult = Part.makeSphere(2)\n```";
        assert_eq!(
            extract_code(unlabelled).unwrap(),
            "import Part\nresult = Part.makeSphere(2)\n"
        );
        assert_eq!(extract_code("```bash\nls\n```"), None);
        let checks_after = "```python\nresult = 1\n```\n```python\nCHECKS = [valid()]\n```";
        assert_eq!(extract_code(checks_after).unwrap(), "result = 1\n");
    }

    #[test]
    fn an_unclosed_block_is_not_taken_but_a_closed_one_before_it_is() {
        assert_eq!(extract_code("```python\nresult = Part.makeBox(1,"), None);
        let reply = "```py\nresult = 2\n```\nAnd then ```python\nresult = ";
        // The second fence is not at a line start, so it is text.
        assert_eq!(extract_code(reply).unwrap(), "result = 2\n");
        let truncated = "```python\nresult = 2\n```\n```python\nresult = Part.make";
        assert_eq!(extract_code(truncated).unwrap(), "result = 2\n");
    }

    #[test]
    fn fences_may_be_tildes_longer_indented_or_carry_attributes() {
        let reply = "~~~Python\nresult = 3\n~~~\n";
        assert_eq!(extract_code(reply).unwrap(), "result = 3\n");
        let nested = "````python\nprint('```')\nresult = 4\n````";
        assert_eq!(extract_code(nested).unwrap(), "print('```')\nresult = 4\n");
        let attrs = "  ```{.python title=\"part\"}\nresult = 5\n  ```";
        assert_eq!(extract_code(attrs).unwrap(), "result = 5\n");
    }

    #[test]
    fn the_checks_block_is_found_by_its_label_or_its_assignment() {
        let reply = "Checks first:\n```checks\nCHECKS = [bbox(30, 30, 30)]\n```\n```python\nimport Part\nresult = Part.makeBox(30, 30, 30)\n```";
        let text = ReplyText::new(reply);
        assert_eq!(text.checks(), Some("CHECKS = [bbox(30, 30, 30)]\n"));
        assert_eq!(
            text.code().unwrap(),
            "import Part\nresult = Part.makeBox(30, 30, 30)\n"
        );
        let in_python =
            "```python\n# the checks\nCHECKS = [valid()]\n```\n```python\nresult = 1\n```";
        assert_eq!(
            ReplyText::new(in_python).checks(),
            Some("# the checks\nCHECKS = [valid()]\n")
        );
        assert_eq!(ReplyText::new("```python\nresult = 1\n```").checks(), None);
    }

    #[test]
    fn statements_are_lines_of_their_own_and_prose_leaves_out_code() {
        let reply = "**Verdict:** MATCH\nThe hole is right.\n```python\n# Verdict: no\nresult = 1\n```\nverdicts are fun";
        let text = ReplyText::new(reply);
        assert_eq!(
            text.statements("verdict", Lines::Prose),
            vec![(0, "MATCH".to_string()), (6, "s are fun".to_string())]
        );
        assert_eq!(text.statements("verdict", Lines::All).len(), 3);
        assert_eq!(
            text.prose_without(Some(0)),
            "The hole is right.\nverdicts are fun"
        );
        let unclosed = ReplyText::new("Fine.\n```python\nVERDICT: MATCH");
        assert!(unclosed.statements("verdict", Lines::Prose).is_empty());
        assert_eq!(unclosed.prose_without(None), "Fine.");
    }

    #[test]
    fn prose_has_no_code_and_bare_scripts_are_taken_whole() {
        assert_eq!(extract_code("I cannot help with that."), None);
        assert_eq!(extract_code(""), None);
        assert_eq!(extract_code("```python\n\n```"), None);
        assert_eq!(
            extract_code("import Part\nresult = Part.makeBox(1, 1, 1)").unwrap(),
            "import Part\nresult = Part.makeBox(1, 1, 1)\n"
        );
    }
}
