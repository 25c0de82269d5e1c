//! The critique: what was asked against what was built. Puts the geometry
//! facts into words for the critique prompt, and reads the LLM's verdict and
//! rewrite out of its reply.
//!
//! Stage in the flow: after `render` and `caption`, `pipeline` fills the refine
//! prompt with [`describe_facts`] and the captions; the reply comes back here
//! ([`read_critique`]) and decides whether the loop stops (MATCH) or runs the
//! rewritten code (MISMATCH).

use serde::{Deserialize, Serialize};

use crate::executor::{Defect, GeometryFacts, Ignored, Severity};
use crate::llm::{Lines, ReplyText};

/// The LLM's judgement of an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Match,
    Mismatch,
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Verdict {
    /// The word the critique prompt asks for and run.json keeps.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Match => "match",
            Verdict::Mismatch => "mismatch",
        }
    }
}

/// A critique reply, read.
#[derive(Debug, Clone, PartialEq)]
pub struct Critique {
    /// `None` when the reply states no verdict and has no code.
    pub verdict: Option<Verdict>,
    /// Whether the reply said the verdict (a rewrite without one counts as a mismatch).
    pub stated: bool,
    /// The reasons: the reply without its verdict line and code block.
    pub feedback: String,
    pub code: Option<String>,
    /// New checks for the request: the text of the reply's checks block.
    pub checks: Option<String>,
    /// Why the checks changed: the text after `CHECKS CHANGED:` on a line
    /// of its own outside code (`None` when there is none, or it is empty).
    pub checks_reason: Option<String>,
}

/// Reads a critique reply. The verdict is looked for on a line of its own
/// ("VERDICT: MATCH", any case, Markdown emphasis or heading marks around it,
/// ':' or '-' or '=' after the word), first among the first three non-empty
/// lines, then anywhere. A reply with code but no verdict is a mismatch.
pub fn read_critique(reply: &str) -> Critique {
    let text = ReplyText::new(reply);
    let code = text.code();
    let verdicts: Vec<(usize, Verdict)> = text
        .statements("verdict", Lines::All)
        .into_iter()
        .filter_map(|(i, rest)| verdict_of(&rest).map(|v| (i, v)))
        .collect();
    let first_three: Vec<usize> = text
        .lines()
        .iter()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .take(3)
        .map(|(i, _)| i)
        .collect();
    let found = verdicts
        .iter()
        .find(|(i, _)| first_three.contains(i))
        .or(verdicts.first())
        .copied();
    let (verdict, stated) = match (found, &code) {
        (Some((_, v)), _) => (Some(v), true),
        (None, Some(_)) => (Some(Verdict::Mismatch), false),
        (None, None) => (None, false),
    };
    let checks_reason = text
        .statements("checks changed", Lines::Prose)
        .into_iter()
        .next()
        .map(|(_, reason)| reason)
        .filter(|reason| !reason.is_empty());
    Critique {
        verdict,
        stated,
        feedback: text.prose_without(found.map(|(i, _)| i)),
        code,
        checks: text.checks().map(str::to_string),
        checks_reason,
    }
}

/// The verdict the words after "verdict" state, if they state one.
fn verdict_of(rest: &str) -> Option<Verdict> {
    let word: String = rest
        .to_ascii_lowercase()
        .chars()
        .take_while(|c| c.is_ascii_alphabetic() || *c == ' ' || *c == '-')
        .collect();
    let word = word.trim().replace(['-', ' '], "");
    if word.starts_with("mismatch") || word.starts_with("nomatch") || word.starts_with("notamatch")
    {
        Some(Verdict::Mismatch)
    } else if word.starts_with("match") {
        Some(Verdict::Match)
    } else {
        None
    }
}

/// The geometry facts as the critique prompt and the record put them: one
/// "- " line per fact, sizes in mm to 0.01.
pub fn describe_facts(facts: &GeometryFacts) -> String {
    let [cx, cy, cz] = facts.center_of_mass;
    let mut lines = vec![
        format!("- bounding box: {}", extent(&facts.bbox, " (X × Y × Z)")),
        format!(
            "- volume: {} mm³; surface area: {} mm²",
            mm(facts.volume),
            mm(facts.area)
        ),
        format!(
            "- {} {}, {}",
            facts.solids,
            if facts.solids == 1 { "solid" } else { "solids" },
            if facts.valid {
                "valid"
            } else {
                "NOT valid (self-intersecting or open)"
            }
        ),
    ];
    let kinds: Vec<String> = facts
        .face_types
        .iter()
        .map(|(kind, n)| format!("{n} {}", face_word(kind, *n)))
        .collect();
    lines.push(format!(
        "- {} faces ({}), {} edges, {} vertices",
        facts.faces,
        if kinds.is_empty() {
            "none typed".to_string()
        } else {
            kinds.join(", ")
        },
        facts.edges,
        facts.vertices
    ));
    lines.push(format!(
        "- centre of mass: ({}, {}, {}) mm",
        mm(cx),
        mm(cy),
        mm(cz)
    ));
    if !facts.parts.is_empty() {
        lines.push(format!(
            "- {} named parts (the facts above are of them all together; the views colour each):",
            facts.parts.len()
        ));
        for part in &facts.parts {
            lines.push(format!(
                "  - {:?} ({}): {}; volume {} mm³{}",
                part.name,
                part.color,
                extent(&part.bbox, ""),
                mm(part.volume),
                if part.solids == 1 {
                    String::new()
                } else {
                    format!("; {} solids", part.solids)
                }
            ));
        }
        for pair in &facts.pairs {
            let [a, b] = &pair.parts;
            let relation = if pair.overlap > 0.0 {
                format!("OVERLAP by {} mm³ (interference)", mm(pair.overlap))
            } else if pair.gap >= 0.005 {
                format!("{} mm apart", mm(pair.gap))
            } else if pair.gap > 0.0 {
                format!("{:.2e} mm apart", pair.gap)
            } else {
                "touch".to_string()
            };
            lines.push(format!("  - {a:?} and {b:?}: {relation}"));
        }
    }
    lines.join("\n")
}

/// "40 × 20 × 10 mm`axes`, from (0, 0, 0) to (40, 20, 10)".
fn extent(bbox: &crate::executor::BoundingBox, axes: &str) -> String {
    let [x, y, z] = bbox.size.map(mm);
    let [x0, y0, z0] = bbox.min.map(mm);
    let [x1, y1, z1] = bbox.max.map(mm);
    format!("{x} × {y} × {z} mm{axes}, from ({x0}, {y0}, {z0}) to ({x1}, {y1}, {z1})")
}

/// A length to 0.01 mm, without trailing zeros and without "-0".
fn mm(value: f64) -> String {
    let text = format!("{value:.2}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    if text == "-0" {
        "0".to_string()
    } else {
        text.to_string()
    }
}

/// OCC's surface type names, as words.
fn face_word(kind: &str, n: u32) -> String {
    let word = match kind {
        "Plane" => "planar",
        "Cylinder" => "cylindrical",
        "Cone" => "conical",
        "Sphere" => "spherical",
        "Toroid" => "toroidal",
        "BSplineSurface" | "BezierSurface" => "free-form",
        "SurfaceOfRevolution" => "revolved",
        "SurfaceOfExtrusion" => "extruded",
        "OffsetSurface" => "offset",
        other => return format!("{other} face{}", if n == 1 { "" } else { "s" }),
    };
    word.to_string()
}

/// The attempt's lines that did nothing here (GUI calls, saves outside the
/// job), for the critique, so the rewrite can drop them; `None` when there
/// were none.
pub fn describe_ignored(ignored: &[Ignored]) -> Option<String> {
    if ignored.is_empty() {
        return None;
    }
    let lines: Vec<String> = ignored
        .iter()
        .map(|i| match i.line {
            Some(n) => format!("line {n} `{}`", i.call),
            None => format!("`{}`", i.call),
        })
        .collect();
    Some(format!(
        "- lines that did nothing here (cadloop runs FreeCAD without a GUI and saves the model itself; leave them out): {}",
        lines.join(", ")
    ))
}

/// What the worker noticed or healed in the accepted solid (solids that
/// overlap without a fuse, pieces apart, a solid that was inside out), for
/// the critique, each with its fix; `None` when nothing was.
pub fn describe_notes(diagnosis: &[Defect]) -> Option<String> {
    let lines: Vec<String> = diagnosis
        .iter()
        .filter(|d| d.severity == Severity::Note)
        .map(|d| format!("- noticed: {}", d.with_fix()))
        .collect();
    (!lines.is_empty()).then(|| lines.join("\n"))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::executor::BoundingBox;

    #[test]
    fn verdicts_are_read_tolerantly() {
        for (reply, verdict) in [
            ("VERDICT: MATCH\nLooks right.", Verdict::Match),
            ("verdict: match", Verdict::Match),
            ("**Verdict:** MATCH", Verdict::Match),
            (
                "## Verdict - Mismatch\nThe hole is missing.",
                Verdict::Mismatch,
            ),
            ("VERDICT:MISMATCH", Verdict::Mismatch),
            ("Verdict: no match", Verdict::Mismatch),
            ("`VERDICT: MATCH`", Verdict::Match),
            ("Let me compare.\n\nVERDICT = MISMATCH", Verdict::Mismatch),
        ] {
            let critique = read_critique(reply);
            assert_eq!(critique.verdict, Some(verdict), "{reply:?}");
            assert!(critique.stated, "{reply:?}");
        }
    }

    #[test]
    fn a_late_verdict_line_counts_but_prose_mentioning_the_word_does_not() {
        let reply = "The part has the hole.\nThe size is right.\nThe walls are right.\nAll good.\nVERDICT: MATCH";
        assert_eq!(read_critique(reply).verdict, Some(Verdict::Match));
        let prose = "I will now give my verdict after checking.\nIt is a good part.";
        assert_eq!(read_critique(prose).verdict, None);
    }

    #[test]
    fn code_without_a_verdict_is_a_mismatch_and_the_feedback_leaves_out_code_and_verdict() {
        let reply = "The hole should be 8 mm.\n```python\nresult = 1\n```\n";
        let critique = read_critique(reply);
        assert_eq!(critique.verdict, Some(Verdict::Mismatch));
        assert!(!critique.stated);
        assert_eq!(critique.code.as_deref(), Some("result = 1\n"));
        assert_eq!(critique.feedback, "The hole should be 8 mm.");

        let full = "VERDICT: MISMATCH\nThe block is 40 mm long, not 50.\n\n```python\nresult = 2\n```\nThat fixes it.";
        let critique = read_critique(full);
        assert_eq!(critique.verdict, Some(Verdict::Mismatch));
        assert_eq!(
            critique.feedback,
            "The block is 40 mm long, not 50.\n\nThat fixes it."
        );
    }

    #[test]
    fn a_change_of_checks_states_its_reason_on_a_line_of_its_own() {
        let reply = "VERDICT: MATCH\n**CHECKS CHANGED:** the request asks for a 6 mm hole, not 12\n```checks\nCHECKS = [holes(6)]\n```";
        let critique = read_critique(reply);
        assert_eq!(
            critique.checks_reason.as_deref(),
            Some("the request asks for a 6 mm hole, not 12")
        );
        assert_eq!(critique.checks.as_deref(), Some("CHECKS = [holes(6)]\n"));
        for without in [
            "checks changed:   \n",
            "```python\n# CHECKS CHANGED: no\n```",
            "VERDICT: MATCH",
        ] {
            assert_eq!(read_critique(without).checks_reason, None, "{without:?}");
        }
    }

    #[test]
    fn facts_in_words() {
        let facts = GeometryFacts {
            valid: true,
            solids: 1,
            shells: 1,
            faces: 7,
            edges: 15,
            vertices: 10,
            volume: 7717.2566,
            area: 2931.9469,
            bbox: BoundingBox {
                min: [0.0, -0.0000001, 0.0],
                max: [40.0, 20.0, 10.0],
                size: [40.0, 20.0, 10.0],
            },
            center_of_mass: [20.0, 10.0, 5.0],
            face_types: BTreeMap::from([("Cylinder".to_string(), 1), ("Plane".to_string(), 6)]),
            tessellation: None,
            parts: Vec::new(),
            pairs: Vec::new(),
        };
        assert_eq!(
            describe_facts(&facts),
            "- bounding box: 40 × 20 × 10 mm (X × Y × Z), from (0, 0, 0) to (40, 20, 10)\n\
             - volume: 7717.26 mm³; surface area: 2931.95 mm²\n\
             - 1 solid, valid\n\
             - 7 faces (1 cylindrical, 6 planar), 15 edges, 10 vertices\n\
             - centre of mass: (20, 10, 5) mm"
        );
    }

    #[test]
    fn lines_left_out_are_listed_for_the_critique_with_their_numbers() {
        use crate::executor::IgnoredKind;
        assert_eq!(describe_ignored(&[]), None);
        let ignored = [
            Ignored {
                kind: IgnoredKind::Gui,
                line: Some(12),
                call: "Gui.SendMsgToActiveView()".into(),
                detail: String::new(),
            },
            Ignored {
                kind: IgnoredKind::Write,
                line: None,
                call: "doc.saveAs('/tmp/x.FCStd')".into(),
                detail: String::new(),
            },
        ];
        let text = describe_ignored(&ignored).unwrap();
        assert!(
            text.contains("line 12 `Gui.SendMsgToActiveView()`"),
            "{text}"
        );
        assert!(text.ends_with("`doc.saveAs('/tmp/x.FCStd')`"), "{text}");
    }
}
