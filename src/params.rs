//! A script's parameters: the named number constants at its top
//! (`LENGTH = 40  # block length, mm`), which the harness finds with
//! Python's `ast` and reports in result.json. `cadloop tweak` changes them
//! here, by rewriting only the literals of those lines, so the part is
//! rebuilt without asking the LLM.

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};

/// One parameter as the harness reported it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Parameter {
    pub name: String,
    /// The value as written (an integer stays one).
    pub value: serde_json::Number,
    pub kind: Kind,
    /// The line of code.py.
    pub line: u32,
    /// The literal's byte range in its line (the sign included).
    pub span: [usize; 2],
    /// The literal as written.
    pub text: String,
    /// The line's comment, e.g. "block length, mm".
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub comment: String,
    /// For an integer the script uses as a count, its first such use
    /// ("`range(...)` at line 12"): it stays whole. Any other number takes
    /// decimals.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<String>,
}

/// Whether a parameter's literal is an integer or a float.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Int,
    Float,
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::Int => "int",
            Kind::Float => "float",
        })
    }
}

/// One value a tweak changed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Change {
    pub name: String,
    pub from: serde_json::Number,
    pub to: serde_json::Number,
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} → {}", self.name, self.from, self.to)
    }
}

/// `NAME=VALUE` as given on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    pub name: String,
    pub value: String,
}

/// New parameter values that cannot be applied.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TweakError {
    #[error("{0:?} is not NAME=VALUE; give e.g. LENGTH=45")]
    NotAnAssignment(String),
    #[error("{0} is given twice; give each parameter once")]
    Twice(String),
    #[error("the code has no parameters to change (no `NAME = number` lines at its top); use `cadloop refine` to change it")]
    NoParameters,
    #[error("no parameter is named {name}; the parameters are {known}")]
    Unknown { name: String, known: String },
    #[error("{name} is a count (used in {why}): {value:?} is not a whole number")]
    NotWhole {
        name: String,
        value: String,
        why: String,
    },
    #[error("{name} is {kind}: {value:?} is not {expected}")]
    WrongKind {
        name: String,
        kind: Kind,
        value: String,
        expected: &'static str,
    },
    #[error("line {line} of the code no longer holds {name}'s value {text:?} where its record says; the run folder was changed by hand")]
    Mismatch {
        name: String,
        line: u32,
        text: String,
    },
}

impl Assignment {
    /// Reads `NAME=VALUE` (spaces around either side allowed).
    pub fn parse(arg: &str) -> Result<Assignment, TweakError> {
        let Some((name, value)) = arg.split_once('=') else {
            return Err(TweakError::NotAnAssignment(arg.to_string()));
        };
        Assignment::new(name, value)
    }

    /// A value for the parameter `name`, as text (a number's literal, or
    /// `true`/`false`); its kind is checked when it is applied.
    pub fn new(name: &str, value: &str) -> Result<Assignment, TweakError> {
        let (name, value) = (name.trim(), value.trim());
        let identifier = name
            .chars()
            .next()
            .is_some_and(|c| c.is_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_alphanumeric() || c == '_');
        if !identifier || value.is_empty() {
            return Err(TweakError::NotAnAssignment(format!("{name}={value}")));
        }
        Ok(Assignment {
            name: name.to_string(),
            value: value.to_string(),
        })
    }
}

/// The names, for messages: "LENGTH, WIDTH, HOLE_D".
pub fn names(parameters: &[Parameter]) -> String {
    parameters
        .iter()
        .map(|p| p.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The new literal for `value`, checked against the parameter's kind.
fn literal(parameter: &Parameter, value: &str) -> Result<(String, serde_json::Number), TweakError> {
    let wrong = |expected| TweakError::WrongKind {
        name: parameter.name.clone(),
        kind: parameter.kind,
        value: value.to_string(),
        expected,
    };
    let plain = value.strip_prefix('+').unwrap_or(value);
    if let Ok(n) = plain.parse::<i64>() {
        if parameter.kind == Kind::Int {
            return Ok((n.to_string(), n.into()));
        }
    }
    let shaped = !plain.is_empty()
        && plain
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '.' | '-' | 'e' | 'E' | '+'));
    let x: f64 = match plain.parse() {
        Ok(x) if shaped && f64::is_finite(x) => x,
        _ => return Err(wrong("a finite number")),
    };
    let x = if x == 0.0 { 0.0 } else { x };
    if parameter.kind == Kind::Int {
        if let Some(why) = &parameter.count {
            return Err(TweakError::NotWhole {
                name: parameter.name.clone(),
                value: value.to_string(),
                why: why.clone(),
            });
        }
        // A dimension written whole takes decimals; a whole value stays an integer.
        if x.fract() == 0.0 && x.abs() < 9e15 {
            let n = x as i64;
            return Ok((n.to_string(), n.into()));
        }
    }
    // Written so Python reads a float again: 45 becomes 45.0.
    let text = if x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{x:.1}")
    } else {
        format!("{x}")
    };
    let number = serde_json::Number::from_f64(x).ok_or_else(|| wrong("a finite number"))?;
    Ok((text, number))
}

/// Byte offsets where each line starts, with Python's line breaks
/// (`\r\n`, `\r`, `\n`), as the harness numbered them.
fn line_starts(code: &str) -> Vec<usize> {
    let bytes = code.as_bytes();
    let mut starts = vec![0];
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\r' if bytes.get(i + 1) == Some(&b'\n') => {
                starts.push(i + 2);
                i += 2;
                continue;
            }
            b'\r' | b'\n' => starts.push(i + 1),
            _ => {}
        }
        i += 1;
    }
    starts
}

/// `code` with the assigned parameters' literals replaced and every other
/// byte kept, and what changed.
pub fn apply(
    code: &str,
    parameters: &[Parameter],
    assignments: &[Assignment],
) -> Result<(String, Vec<Change>), TweakError> {
    if parameters.is_empty() {
        return Err(TweakError::NoParameters);
    }
    let mut seen = BTreeSet::new();
    let mut edits = Vec::with_capacity(assignments.len());
    let starts = line_starts(code);
    // The harness reads the code without a byte-order mark.
    let bom = if code.starts_with('\u{feff}') { 3 } else { 0 };
    for assignment in assignments {
        if !seen.insert(assignment.name.as_str()) {
            return Err(TweakError::Twice(assignment.name.clone()));
        }
        let parameter = parameters
            .iter()
            .find(|p| p.name == assignment.name)
            .ok_or_else(|| TweakError::Unknown {
                name: assignment.name.clone(),
                known: names(parameters),
            })?;
        let (text, number) = literal(parameter, &assignment.value)?;
        let mismatch = || TweakError::Mismatch {
            name: parameter.name.clone(),
            line: parameter.line,
            text: parameter.text.clone(),
        };
        let line_start = *starts
            .get((parameter.line as usize).wrapping_sub(1))
            .ok_or_else(mismatch)?
            + if parameter.line == 1 { bom } else { 0 };
        let [from, to] = parameter.span.map(|col| line_start + col);
        if code.get(from..to) != Some(parameter.text.as_str()) {
            return Err(mismatch());
        }
        edits.push((
            from..to,
            text,
            Change {
                name: parameter.name.clone(),
                from: parameter.value.clone(),
                to: number,
            },
        ));
    }
    edits.sort_by_key(|(range, _, _)| range.start);
    let mut out = String::with_capacity(code.len() + 16);
    let mut at = 0;
    for (range, text, _) in &edits {
        out.push_str(&code[at..range.start]);
        out.push_str(text);
        at = range.end;
    }
    out.push_str(&code[at..]);
    let mut changes: Vec<Change> = edits.into_iter().map(|(_, _, change)| change).collect();
    changes.sort_by_key(|c| {
        parameters
            .iter()
            .position(|p| p.name == c.name)
            .unwrap_or(usize::MAX)
    });
    Ok((out, changes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parameter(
        name: &str,
        value: serde_json::Number,
        kind: Kind,
        line: u32,
        span: [usize; 2],
        text: &str,
    ) -> Parameter {
        Parameter {
            name: name.into(),
            value,
            kind,
            line,
            span,
            text: text.into(),
            comment: String::new(),
            count: None,
        }
    }

    fn assign(arg: &str) -> Assignment {
        Assignment::parse(arg).unwrap()
    }

    const CODE: &str = "import Part\r\nLENGTH = 40  # mm\r\nHOLES = 4\nOFFSET = -2.5 # mm\n\nresult = Part.makeBox(LENGTH, 20, 10)\n";

    fn params() -> Vec<Parameter> {
        vec![
            parameter("LENGTH", 40.into(), Kind::Int, 2, [9, 11], "40"),
            parameter("HOLES", 4.into(), Kind::Int, 3, [8, 9], "4"),
            parameter(
                "OFFSET",
                serde_json::Number::from_f64(-2.5).unwrap(),
                Kind::Float,
                4,
                [9, 13],
                "-2.5",
            ),
        ]
    }

    #[test]
    fn only_the_literals_change_and_every_other_byte_stays() {
        let (code, changes) = apply(
            CODE,
            &params(),
            &[assign("OFFSET=3"), assign("LENGTH = 45")],
        )
        .unwrap();
        assert_eq!(
            code,
            "import Part\r\nLENGTH = 45  # mm\r\nHOLES = 4\nOFFSET = 3.0 # mm\n\nresult = Part.makeBox(LENGTH, 20, 10)\n"
        );
        let shown: Vec<String> = changes.iter().map(ToString::to_string).collect();
        assert_eq!(shown, ["LENGTH 40 → 45", "OFFSET -2.5 → 3.0"]);
        let (code, _) = apply(CODE, &params(), &[assign("OFFSET=-0.125")]).unwrap();
        assert!(code.contains("OFFSET = -0.125 # mm\n"), "{code}");
    }

    #[test]
    fn a_dimension_written_whole_takes_decimals_and_stays_whole_when_whole() {
        let (code, changes) = apply(
            CODE,
            &params(),
            &[assign("LENGTH=50.5"), assign("HOLES=6.0")],
        )
        .unwrap();
        assert!(code.contains("LENGTH = 50.5  # mm\r\n"), "{code}");
        assert!(code.contains("HOLES = 6\n"), "{code}");
        let shown: Vec<String> = changes.iter().map(ToString::to_string).collect();
        assert_eq!(shown, ["LENGTH 40 → 50.5", "HOLES 4 → 6"]);
    }

    #[test]
    fn several_literals_on_one_line_change_together() {
        let code = "L, W = 40, 20.5  # mm\n";
        let p = [
            parameter("L", 40.into(), Kind::Int, 1, [7, 9], "40"),
            parameter(
                "W",
                serde_json::Number::from_f64(20.5).unwrap(),
                Kind::Float,
                1,
                [11, 15],
                "20.5",
            ),
        ];
        let (out, _) = apply(code, &p, &[assign("W=7.25"), assign("L=100")]).unwrap();
        assert_eq!(out, "L, W = 100, 7.25  # mm\n");
    }

    #[test]
    fn a_byte_order_mark_shifts_the_first_line_only() {
        let code = "\u{feff}WIDTH = 8\nresult = None\n";
        let p = [parameter("WIDTH", 8.into(), Kind::Int, 1, [8, 9], "8")];
        let (out, _) = apply(code, &p, &[assign("WIDTH=12")]).unwrap();
        assert_eq!(out, "\u{feff}WIDTH = 12\nresult = None\n");
    }

    #[test]
    fn refusals_name_the_problem() {
        let p = params();
        let err = |args: &[&str]| {
            let assignments: Vec<Assignment> = args.iter().map(|a| assign(a)).collect();
            apply(CODE, &p, &assignments).unwrap_err().to_string()
        };
        assert!(err(&["WIDTH=3"])
            .contains("no parameter is named WIDTH; the parameters are LENGTH, HOLES, OFFSET"));
        let mut counted = p.clone();
        counted[1].count = Some("`range(...)` at line 6".into());
        let assignments = [assign("HOLES=4.5")];
        assert_eq!(
            apply(CODE, &counted, &assignments).unwrap_err().to_string(),
            "HOLES is a count (used in `range(...)` at line 6): \"4.5\" is not a whole number"
        );
        assert!(err(&["LENGTH=wide"]).contains("LENGTH is int: \"wide\" is not a finite number"));
        assert!(err(&["OFFSET=nan"]).contains("not a finite number"));
        assert!(err(&["OFFSET=inf"]).contains("not a finite number"));
        assert!(err(&["OFFSET=1e400"]).contains("not a finite number"));
        assert!(err(&["LENGTH=1", "LENGTH=2"]).contains("given twice"));
        assert_eq!(
            apply(CODE, &[], &[assign("A=1")]).unwrap_err(),
            TweakError::NoParameters
        );
        let moved = [parameter("LENGTH", 40.into(), Kind::Int, 3, [9, 11], "40")];
        assert!(matches!(
            apply(CODE, &moved, &[assign("LENGTH=1")]).unwrap_err(),
            TweakError::Mismatch { .. }
        ));
        for bad in ["LENGTH", "=4", "2X=4", "LENGTH="] {
            assert!(Assignment::parse(bad).is_err(), "{bad}");
        }
    }
}
