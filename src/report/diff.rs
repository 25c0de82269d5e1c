//! The diff an attempt's page shows against the attempt it came from.

use serde::Serialize;

/// Lines of unchanged code shown around each change in a diff.
const DIFF_CONTEXT: usize = 3;

#[derive(Debug, Serialize)]
pub(super) struct DiffLine {
    /// add, del, same, or hunk (the @@ line).
    tag: &'static str,
    text: String,
}

/// A unified diff, as lines tagged for colouring.
pub(super) fn lines(old: &str, new: &str) -> Vec<DiffLine> {
    let diff = similar::TextDiff::from_lines(old, new);
    let mut lines = Vec::new();
    for group in diff.grouped_ops(DIFF_CONTEXT) {
        let (Some(first), Some(last)) = (group.first(), group.last()) else {
            continue;
        };
        let old_range = first.old_range().start..last.old_range().end;
        let new_range = first.new_range().start..last.new_range().end;
        lines.push(DiffLine {
            tag: "hunk",
            text: format!(
                "@@ -{},{} +{},{} @@",
                old_range.start + 1,
                old_range.len(),
                new_range.start + 1,
                new_range.len()
            ),
        });
        for op in &group {
            for change in diff.iter_changes(op) {
                let (tag, sign) = match change.tag() {
                    similar::ChangeTag::Delete => ("del", '-'),
                    similar::ChangeTag::Insert => ("add", '+'),
                    similar::ChangeTag::Equal => ("same", ' '),
                };
                let text = change.value().trim_end_matches(['\n', '\r']);
                lines.push(DiffLine {
                    tag,
                    text: format!("{sign} {text}"),
                });
            }
        }
    }
    if lines.is_empty() {
        lines.push(DiffLine {
            tag: "same",
            text: "(the code is unchanged)".into(),
        });
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diffs_show_hunks_with_context_and_signs() {
        let old = "a = 1\nb = 2\nc = 3\nd = 4\ne = 5\nf = 6\ng = 7\nh = 8\n";
        let new = "a = 1\nb = 2\nc = 3\nd = 40\ne = 5\nf = 6\ng = 7\nh = 8\ni = 9\n";
        let text: Vec<String> = lines(old, new)
            .iter()
            .map(|l| format!("{}|{}", l.tag, l.text))
            .collect();
        assert_eq!(
            text,
            [
                "hunk|@@ -1,8 +1,9 @@",
                "same|  a = 1",
                "same|  b = 2",
                "same|  c = 3",
                "del|- d = 4",
                "add|+ d = 40",
                "same|  e = 5",
                "same|  f = 6",
                "same|  g = 7",
                "same|  h = 8",
                "add|+ i = 9",
            ]
        );
        assert_eq!(lines(old, old)[0].text, "(the code is unchanged)");
    }
}
