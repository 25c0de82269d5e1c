//! The code in a reply: fenced blocks found, the last Python one taken.

/// Languages a fenced block may be labelled with and still be taken as the code.
const CODE_LABELS: [&str; 4] = ["python", "py", "python3", "freecad"];

/// The FreeCAD Python in a reply: the last complete fenced block labelled
/// python (or py, python3), else the last complete unlabelled block, leaving
/// out a block of checks ([`crate::checks`]). A reply
/// with no fence at all is taken whole when it starts like a script (an
/// import, a comment). `None` when there is no code.
pub fn extract_code(reply: &str) -> Option<String> {
    let mut blocks = fenced_blocks(reply);
    // A request's checks come in a block of their own, which is not the script.
    blocks.retain(|b| !crate::checks::is_checks_block(&b.label, &b.body));
    let labelled = blocks
        .iter()
        .rev()
        .find(|b| CODE_LABELS.contains(&b.label.as_str()));
    let unlabelled = blocks.iter().rev().find(|b| b.label.is_empty());
    if let Some(block) = labelled.or(unlabelled) {
        return Some(block.body.clone()).filter(|code| !code.trim().is_empty());
    }
    let has_fence = reply.lines().any(|l| fence_of(l).is_some());
    let first = reply.lines().map(str::trim).find(|l| !l.is_empty())?;
    let looks_like_code =
        first.starts_with("import ") || first.starts_with("from ") || first.starts_with('#');
    (!has_fence && looks_like_code).then(|| ensure_newline(reply.trim()))
}

/// A complete fenced block of a reply: its language label (lower case) and text.
pub struct Block {
    pub label: String,
    pub body: String,
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

/// The complete fenced blocks of a Markdown text, in order.
pub fn fenced_blocks(text: &str) -> Vec<Block> {
    let mut blocks = Vec::new();
    let mut open: Option<(char, usize, String, Vec<&str>)> = None;
    for line in text.lines() {
        match (&mut open, fence_of(line)) {
            (None, Some((ch, len, info))) => {
                let label = info
                    .split_whitespace()
                    .next()
                    .unwrap_or("")
                    .trim_start_matches('{')
                    .trim_start_matches('.')
                    .trim_end_matches('}')
                    .to_ascii_lowercase();
                open = Some((ch, len, label, Vec::new()));
            }
            (Some((ch, len, _, _)), Some((c, l, info)))
                if c == *ch && l >= *len && info.is_empty() =>
            {
                let (_, _, label, lines) = open.take().expect("matched Some");
                blocks.push(Block {
                    label,
                    body: ensure_newline(&lines.join("\n")),
                });
            }
            (Some((_, _, _, lines)), _) => lines.push(line),
            (None, None) => {}
        }
    }
    blocks
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
