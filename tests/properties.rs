//! Generated input, never a panic: properties of the parts that read what
//! users and LLMs write (proptest; a failing case shrinks to its smallest
//! and is kept in tests/properties.proptest-regressions, which proptest
//! reads back first on every later run).
//!
//! - `params::apply`: any new values give a script where only the
//!   parameters' literals changed, each to a number Python reads as the
//!   recorded value; every such script parses (checked by Python itself).
//! - the checks parser: any text is read or refused with a line inside it.
//! - code extraction from replies: any text is read; code fenced among any
//!   prose comes back as written.
//! - run.json: any prompt, change or code (NUL bytes, controls, any script)
//!   is written and read back the same.

mod common;

use std::sync::Mutex;

use cadloop::checks::Checks;
use cadloop::llm::ReplyText;
use cadloop::params::{apply, Assignment, Kind, Parameter};
use proptest::prelude::*;
use proptest::strategy::ValueTree;

/// A script `apply` wrote, and each parameter's value in it.
type Written = (String, Vec<(String, f64)>);

/// Scripts `apply` wrote, for Python to parse at the end.
static WRITTEN: Mutex<Vec<Written>> = Mutex::new(Vec::new());

/// One parameter line as the generator writes it.
#[derive(Debug, Clone)]
struct Line {
    name: String,
    literal: String,
    kind: Kind,
    comment: String,
    count: bool,
}

fn literal() -> impl Strategy<Value = (String, Kind)> {
    prop_oneof![
        (-100_000i64..100_000).prop_map(|n| (n.to_string(), Kind::Int)),
        (-1e6f64..1e6).prop_map(|x| {
            let text = format!("{x}");
            let text = if text.contains('.') || text.contains('e') {
                text
            } else {
                format!("{text}.0")
            };
            (text, Kind::Float)
        }),
        Just(("1e-3".to_string(), Kind::Float)),
        Just(("0.5".to_string(), Kind::Float)),
    ]
}

fn lines() -> impl Strategy<Value = Vec<Line>> {
    prop::collection::vec(
        (
            "[A-Z][A-Z0-9_]{0,12}",
            literal(),
            "[a-z ,]{0,20}",
            any::<bool>(),
        ),
        1..6,
    )
    .prop_map(|raw| {
        let mut seen = std::collections::BTreeSet::new();
        raw.into_iter()
            .filter(|(name, ..)| seen.insert(name.clone()))
            .map(|(name, (literal, kind), comment, count)| Line {
                name,
                literal,
                kind,
                comment: comment.trim().to_string(),
                count: count && kind == Kind::Int,
            })
            .collect()
    })
}

/// A value as a user or an agent might give it.
fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<i64>().prop_map(|n| n.to_string()),
        any::<f64>().prop_map(|x| x.to_string()),
        (-1e9f64..1e9).prop_map(|x| format!("{x:e}")),
        (-1000i32..1000).prop_map(|n| format!("+{n}")),
        "[0-9.eE+-]{1,12}",
        "\\PC{0,8}",
        Just("nan".to_string()),
        Just("inf".to_string()),
        Just("1e999".to_string()),
        Just("-0".to_string()),
    ]
}

/// The script and its parameters as the worker would record them.
fn script(lines: &[Line], crlf: bool, bom: bool) -> (String, Vec<Parameter>) {
    let nl = if crlf { "\r\n" } else { "\n" };
    let mut code = String::new();
    if bom {
        code.push('\u{feff}');
    }
    code.push_str(&format!("import FreeCAD as App{nl}import Part{nl}{nl}"));
    let mut parameters = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let head = format!("{} = ", line.name);
        let comment = if line.comment.is_empty() {
            String::new()
        } else {
            format!("  # {}", line.comment)
        };
        code.push_str(&format!("{head}{}{comment}{nl}", line.literal));
        let value: serde_json::Number = match line.kind {
            Kind::Int => line.literal.parse::<i64>().unwrap().into(),
            Kind::Float => serde_json::Number::from_f64(line.literal.parse().unwrap()).unwrap(),
        };
        parameters.push(Parameter {
            name: line.name.clone(),
            value,
            kind: line.kind,
            line: 4 + i as u32,
            span: [head.len(), head.len() + line.literal.len()],
            text: line.literal.clone(),
            comment: line.comment.clone(),
            count: line.count.then(|| "`range(...)` at line 9".to_string()),
        });
    }
    let sum = lines
        .iter()
        .map(|l| format!("abs({})", l.name))
        .collect::<Vec<_>>()
        .join(" + ");
    code.push_str(&format!("{nl}result = Part.makeBox(1 + {sum}, 1, 1){nl}"));
    (code, parameters)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn a_tweak_changes_only_the_literals_it_names(
        lines in lines(),
        crlf in any::<bool>(),
        bom in any::<bool>(),
        values in prop::collection::vec((0usize..8, value()), 0..6),
    ) {
        let (code, parameters) = script(&lines, crlf, bom);
        let assignments: Vec<Assignment> = values
            .iter()
            .filter_map(|(i, v)| {
                let name = &lines[i % lines.len()].name;
                Assignment::new(name, v).ok()
            })
            .collect();
        let Ok((written, changes)) = apply(&code, &parameters, &assignments) else {
            // Refused (a name twice, a wrong kind, not a number): nothing to check.
            return Ok(());
        };
        prop_assert_eq!(changes.len(), assignments.len());
        // Every line but the changed parameters' is byte for byte the same;
        // on a changed line only the literal differs.
        let old: Vec<&str> = code.split_inclusive('\n').collect();
        let new: Vec<&str> = written.split_inclusive('\n').collect();
        prop_assert_eq!(old.len(), new.len());
        let mut values = Vec::new();
        for (n, (before, after)) in old.iter().zip(&new).enumerate() {
            let Some(p) = parameters.iter().find(|p| p.line as usize == n + 1) else {
                prop_assert_eq!(before, after);
                continue;
            };
            let skip = if n == 0 && bom { 3 } else { 0 };
            let [from, to] = p.span.map(|c| c + skip);
            prop_assert_eq!(&before[..from], &after[..from]);
            let tail = &before[to..];
            prop_assert!(after.ends_with(tail), "{before:?} -> {after:?}");
            let literal = &after[from..after.len() - tail.len()];
            let number: f64 = literal.parse().map_err(|_| {
                TestCaseError::fail(format!("{literal:?} is not a number"))
            })?;
            if let Some(change) = changes.iter().find(|c| c.name == p.name) {
                prop_assert_eq!(number, change.to.as_f64().unwrap());
                if p.kind == Kind::Int && p.count.is_some() {
                    prop_assert!(!literal.contains(['.', 'e', 'E']), "a count stays whole: {literal}");
                }
            } else {
                prop_assert_eq!(literal, p.text.as_str());
            }
            values.push((p.name.clone(), number));
        }
        WRITTEN.lock().unwrap().push((written, values));
    }

    #[test]
    fn any_checks_text_is_read_or_refused_at_a_line_inside_it(source in "\\PC{0,200}|(CHECKS = \\[)?[a-z_(),=. 0-9\"\n-]{0,120}\\]?") {
        if let Err(err) = Checks::parse(&source) {
            let lines = source.lines().count().max(1) as u32;
            prop_assert!((1..=lines).contains(&err.line), "line {} of {lines}: {err}", err.line);
            prop_assert!(!err.message.is_empty());
        }
    }

    #[test]
    fn checks_built_from_the_library_read_back(
        x in 0.1f64..1000.0,
        d in 0.1f64..100.0,
        count in 0u32..50,
        through in any::<bool>(),
    ) {
        let source = format!(
            "CHECKS = [\n    bbox({x}, None, {x}),  # the size\n    holes({d}, count={count}, through={}),\n    valid(),\n]\n",
            if through { "True" } else { "False" }
        );
        let checks = Checks::parse(&source).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(checks.calls.len(), 3);
    }

    #[test]
    fn code_fenced_among_any_prose_comes_back_as_written(
        before in "\\PC{0,80}",
        after in "\\PC{0,80}",
        body in prop::collection::vec("[a-zA-Z0-9_ =()+.*,#]{0,40}", 1..12),
    ) {
        let code = body.join("\n") + "\n";
        prop_assume!(!code.trim().is_empty());
        // Prose before the block holds no fence characters.
        let before = before.replace(['`', '~'], "");
        let reply = format!("{before}\n```python\n{code}```\n{after}");
        let _ = ReplyText::new(&after).code();
        let read = ReplyText::new(&reply).code();
        if !after.contains("```") && !after.contains("~~~") {
            // Blank lines at the end of the block are not kept.
            prop_assert_eq!(read.as_deref().map(str::trim_end), Some(code.trim_end()));
        }
    }

    #[test]
    fn any_reply_text_is_read_without_a_panic(text in "(\\PC|\n|`|~){0,300}") {
        let reply = ReplyText::new(&text);
        let _ = reply.code();
        let _ = reply.checks();
        let _ = reply.prose_without(None);
    }
}

#[test]
fn every_tweaked_script_parses_in_python_with_its_values() {
    // Runs after the property above in the same process only by chance;
    // it makes its own cases when it runs first.
    if WRITTEN.lock().unwrap().is_empty() {
        let mut runner = proptest::test_runner::TestRunner::deterministic();
        let strategy = (lines(), prop::collection::vec((0usize..8, value()), 1..6));
        for _ in 0..200 {
            let (lines, values) = strategy.new_tree(&mut runner).unwrap().current();
            let (code, parameters) = script(&lines, false, false);
            let assignments: Vec<Assignment> = values
                .iter()
                .filter_map(|(i, v)| Assignment::new(&lines[i % lines.len()].name, v).ok())
                .collect();
            if let Ok((written, changes)) = apply(&code, &parameters, &assignments) {
                let values = parameters
                    .iter()
                    .map(|p| {
                        let value = changes
                            .iter()
                            .find(|c| c.name == p.name)
                            .map_or_else(|| p.value.as_f64().unwrap(), |c| c.to.as_f64().unwrap());
                        (p.name.clone(), value)
                    })
                    .collect();
                WRITTEN.lock().unwrap().push((written, values));
            }
        }
    }
    let written = WRITTEN.lock().unwrap().clone();
    assert!(
        written.len() > 20,
        "too few tweaked scripts: {}",
        written.len()
    );
    let cases: Vec<serde_json::Value> = written
        .iter()
        .map(|(code, values)| serde_json::json!({"code": code, "values": values}))
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cases.json");
    std::fs::write(&file, serde_json::to_vec(&cases).unwrap()).unwrap();
    let check = "import ast, json, math, sys\n\
        bad = []\n\
        for case in json.load(open(sys.argv[1])):\n\
        \x20   code = case['code'].lstrip('\\ufeff')\n\
        \x20   try:\n\
        \x20       tree = ast.parse(code)\n\
        \x20   except SyntaxError as e:\n\
        \x20       bad.append((code, str(e))); continue\n\
        \x20   found = {n.targets[0].id: ast.literal_eval(n.value) for n in tree.body if isinstance(n, ast.Assign) and isinstance(n.targets[0], ast.Name) and n.targets[0].id != 'result'}\n\
        \x20   for name, value in case['values']:\n\
        \x20       if not math.isclose(found[name], value, rel_tol=0, abs_tol=0):\n\
        \x20           bad.append((code, f'{name} is {found[name]!r}, recorded {value!r}'))\n\
        print(json.dumps(bad[:5])); sys.exit(1 if bad else 0)\n";
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(check)
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn run_json_keeps_any_text_whole() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let server = common::llm_server::ScriptedLlm::start(vec![common::llm_server::reply(
        &common::parts::fenced(common::parts::RIGHT),
    )]);
    let made = common::parts::generate_with(
        dir.path(),
        &server,
        common::parts::PROMPT,
        &["--max-refines", "0"],
    );
    common::assert_exit(&made, 0);
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig::with_cases(64));
    runner
        .run(
            &(
                "\\PC{0,40}|[\\x00-\\x1f\u{7f}\u{2028}\u{feff}\u{10ffff}]{1,20}",
                "(.|\n){0,200}",
            ),
            |(text, code)| {
                let mut record = cadloop::report::read_run(&run).unwrap();
                record.prompt = text.clone();
                record.requests[0].text = text.clone();
                record.attempts[0].code = code.clone();
                cadloop::files::write_json_atomically(&run.join("run.json"), &record).unwrap();
                let back = cadloop::report::read_run(&run).unwrap();
                prop_assert_eq!(&back.prompt, &text);
                prop_assert_eq!(&back.requests[0].text, &text);
                prop_assert_eq!(&back.attempts[0].code, &code);
                Ok(())
            },
        )
        .unwrap();
}
