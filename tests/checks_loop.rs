//! Checks in the loop, end to end: the real binary, real FreeCAD, real HTTP
//! to a scripted OpenAI-compatible server. The checks come with the first
//! script, fail with measured numbers, reach the critique, overrule a wrong
//! MATCH, can be changed with a reason, and run again on a tweak.

mod common;

use common::llm_server::{reply, ScriptedLlm};
use common::parts::generate_with;
use common::{assert_exit, cadloop, run_json, text};
use serde_json::Value;

const CUBE_PROMPT: &str = "a 30 mm cube with a 12 mm hole through it";

const CHECKS_12: &str =
    "```checks\nCHECKS = [\n    bbox(30, 30, 30),\n    holes(12, count=1, through=True),  # the hole\n]\n```";

/// The cube with a hole of diameter `d`, as a parametric script.
fn cube_with_hole(d: u32) -> String {
    format!(
        "```python\nimport FreeCAD as App\nimport Part\n\nSIDE = 30  # cube side, mm\nHOLE_D = {d}  # hole diameter, mm\n\ncube = Part.makeBox(SIDE, SIDE, SIDE)\nresult = cube.cut(Part.makeCylinder(HOLE_D / 2, SIDE, App.Vector(SIDE / 2, SIDE / 2, 0)))\n```"
    )
}

use common::parts::check_statuses as statuses;

#[test]
fn a_failing_check_reaches_the_critique_overrules_a_match_and_the_fixed_attempt_is_the_result() {
    let server = ScriptedLlm::start(vec![
        // Checks first, then a script with a 10 mm hole.
        reply(&format!("{CHECKS_12}\n\n{}", cube_with_hole(10))),
        // The critique wrongly says MATCH, without a rewrite …
        reply("VERDICT: MATCH\nLooks like a cube with a hole."),
        // … so it is reminded of the failing check and fixes the script.
        reply(&format!(
            "Right, the hole is too small.\n{}",
            cube_with_hole(12)
        )),
        reply("VERDICT: MATCH"),
    ]);
    let dir = tempfile::tempdir().unwrap();
    let out = generate_with(dir.path(), &server, CUBE_PROMPT, &[]);
    assert_exit(&out, 0);
    let stdout = text(&out.stdout);
    assert!(
        stdout.starts_with("match (checks: 2/2): run (2 attempts"),
        "{stdout}"
    );
    assert!(stdout.contains("  checks      2 of 2 pass"), "{stdout}");

    let seen = server.requests();
    assert_eq!(seen.len(), 4, "generate, critique, reminder, critique");
    let system = seen[0].messages()[0]["content"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        system.contains("holes(diameter, count=None, through=None"),
        "{system}"
    );
    assert!(
        seen[0].last_user().contains("```checks block"),
        "{}",
        seen[0].last_user()
    );
    // The critique carries the measured diameter against the expected one.
    let critique = seen[1].last_user();
    assert!(critique.contains("1 of 2 pass"), "{critique}");
    assert!(
        critique.contains(
            "- `holes(12, count=1, through=True)`: 0 hole(s) match, expected 1 through hole(s) of ⌀12 ± 0.1; holes found: 1 × ⌀10 through along Z"
        ),
        "{critique}"
    );
    let reminder = seen[2].last_user();
    assert!(reminder.contains("These checks fail"), "{reminder}");
    assert!(reminder.contains("holes found: 1 × ⌀10"), "{reminder}");
    assert!(
        seen[3].last_user().contains("2 of 2 pass"),
        "{}",
        seen[3].last_user()
    );

    let run = dir.path().join("run");
    let record = run_json(&run);
    assert_eq!(record["outcome"], "match");
    assert_eq!(record["final"]["attempt"], 2);
    assert_eq!(record["settings"]["checks"], true);
    let checks = &record["requests"][0]["checks"];
    assert_eq!(checks.as_array().unwrap().len(), 1);
    assert_eq!(checks[0]["attempt"], 1);
    assert_eq!(checks[0]["calls"][1]["name"], "holes");
    assert_eq!(checks[0]["calls"][1]["comment"], "the hole");
    let first = &record["attempts"][0];
    assert_eq!(statuses(first), ["pass", "fail"]);
    assert_eq!(
        first["result"]["checks"][1]["measured"],
        "1 × ⌀10 through along Z"
    );
    assert_eq!(first["critique"]["verdict"], "match");
    assert_eq!(first["critique"]["overruled"], true);
    assert_eq!(first["critique"]["rewrite_used"], true);
    assert_eq!(statuses(&record["attempts"][1]), ["pass", "pass"]);
    assert!(record["attempts"][1]["critique"].get("overruled").is_none());

    // result.json, feedback.md and the page say the same.
    let result: Value =
        serde_json::from_slice(&std::fs::read(run.join("attempts/01/result.json")).unwrap())
            .unwrap();
    assert_eq!(result["checks"][1]["status"], "fail");
    let feedback = std::fs::read_to_string(run.join("attempts/01/feedback.md")).unwrap();
    assert!(
        feedback.contains("Overruled by the checks (checks: 1/2)"),
        "{feedback}"
    );
    let page = std::fs::read_to_string(run.join("report.html")).unwrap();
    assert!(
        page.contains("<h2>Checks</h2>"),
        "the page lists the checks"
    );
    assert!(page.contains("checks: 2&#x2f;2"), "{page}");
    assert!(page.contains("checks: 1&#x2f;2"));
    assert!(page.contains("overruled: a check fails"));
    assert!(page.contains("<span class=\"tag fail\">fail</span>"));

    // A tweak runs the checks again on the new values.
    let out = cadloop(dir.path(), &["tweak", "run", "HOLE_D=8"]);
    assert_exit(&out, 0);
    let stdout = text(&out.stdout);
    assert!(stdout.contains("checks: 1/2"), "{stdout}");
    let record = run_json(&run);
    let tweak = &record["requests"][1];
    assert_eq!(tweak["kind"], "tweak");
    assert_eq!(tweak["checks"][0]["attempt"], 3);
    assert!(tweak["checks"][0]["reason"]
        .as_str()
        .unwrap()
        .contains("the checks of request 1"));
    assert_eq!(statuses(&record["attempts"][2]), ["pass", "fail"]);
    assert_eq!(
        record["attempts"][2]["result"]["checks"][1]["measured"],
        "1 × ⌀8 through along Z"
    );
}

#[test]
fn the_llm_may_change_a_check_that_misreads_the_request_with_a_reason() {
    let server = ScriptedLlm::start(vec![
        // The checks misread "10 mm" as 12; the script is right.
        reply(&format!("{CHECKS_12}\n{}", cube_with_hole(10))),
        reply(
            "VERDICT: MATCH\nCHECKS CHANGED: the request asks for a 10 mm hole; the check said 12\n```checks\nCHECKS = [bbox(30, 30, 30), holes(10, count=1, through=True)]\n```",
        ),
    ]);
    let dir = tempfile::tempdir().unwrap();
    let out = generate_with(
        dir.path(),
        &server,
        "a 30 mm cube with a 10 mm hole through it",
        &[],
    );
    assert_exit(&out, 0);
    let stdout = text(&out.stdout);
    assert!(
        stdout.starts_with("match (checks: 2/2): run (1 attempt"),
        "{stdout}"
    );
    assert_eq!(
        server.requests().len(),
        2,
        "no reminder: the change came with its reason"
    );

    let run = dir.path().join("run");
    let record = run_json(&run);
    let checks = record["requests"][0]["checks"].as_array().unwrap().clone();
    assert_eq!(checks.len(), 2);
    assert_eq!(
        checks[1]["reason"],
        "the request asks for a 10 mm hole; the check said 12"
    );
    assert_eq!(checks[1]["calls"][1]["args"]["diameter"], 10);
    let first = &record["attempts"][0];
    assert_eq!(
        statuses(first),
        ["pass", "pass"],
        "checked again with the new list"
    );
    assert!(first["critique"].get("overruled").is_none());
    assert!(!run.join("attempts/01/recheck").exists());
    let result: Value =
        serde_json::from_slice(&std::fs::read(run.join("attempts/01/result.json")).unwrap())
            .unwrap();
    assert_eq!(
        result["checks"][1]["call"],
        "holes(10, count=1, through=True)"
    );
    let page = std::fs::read_to_string(run.join("report.html")).unwrap();
    assert!(
        page.contains("changed after attempt 1: the request asks for a 10 mm hole"),
        "{page}"
    );
}

#[test]
fn new_checks_without_a_reason_change_nothing_and_unreadable_checks_are_said() {
    let server = ScriptedLlm::start(vec![
        // Checks that call something outside the library.
        reply(&format!(
            "```checks\nCHECKS = [bbox(30, 30, 30), open('/etc/passwd')]\n```\n{}",
            cube_with_hole(10)
        )),
        // The critique adds checks, but without the reason line: refused.
        reply("VERDICT: MATCH\n```checks\nCHECKS = [bbox(1, 1, 1)]\n```"),
    ]);
    let dir = tempfile::tempdir().unwrap();
    let out = generate_with(dir.path(), &server, CUBE_PROMPT, &["--max-refines", "1"]);
    assert_exit(&out, 0);
    let seen = server.requests();
    let critique = seen[1].last_user();
    assert!(
        critique.contains(
            "No checks are in force for this request: checks, line 1: `open` is not a check"
        ),
        "{critique}"
    );
    let record = run_json(&dir.path().join("run"));
    let checks = record["requests"][0]["checks"].as_array().unwrap().clone();
    assert_eq!(checks.len(), 2);
    assert!(checks[0]["error"]
        .as_str()
        .unwrap()
        .contains("`open` is not a check"));
    assert!(checks[0]["source"]
        .as_str()
        .unwrap()
        .contains("open('/etc/passwd')"));
    assert!(checks[1]["error"]
        .as_str()
        .unwrap()
        .contains("without a `CHECKS CHANGED"));
    assert!(record["attempts"][0]["result"].get("checks").is_none());
    assert_eq!(
        record["outcome"], "match",
        "no checks in force: the verdict stands"
    );
}

#[test]
fn with_checks_off_none_are_asked_for_or_run() {
    let server = ScriptedLlm::start(vec![
        reply(&format!("{CHECKS_12}\n{}", cube_with_hole(10))),
        reply("VERDICT: MATCH"),
    ]);
    let dir = tempfile::tempdir().unwrap();
    let out = generate_with(dir.path(), &server, CUBE_PROMPT, &["--checks", "off"]);
    assert_exit(&out, 0);
    let stdout = text(&out.stdout);
    assert!(stdout.starts_with("match: run (1 attempt"), "{stdout}");
    let seen = server.requests();
    let system = seen[0].messages()[0]["content"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(!system.contains("holes(diameter"), "{system}");
    assert!(
        !seen[0].last_user().contains("checks"),
        "{}",
        seen[0].last_user()
    );
    assert!(!seen[1].last_user().contains("CHECKS CHANGED"));
    let record = run_json(&dir.path().join("run"));
    assert_eq!(record["settings"]["checks"], false);
    assert!(record["requests"][0].get("checks").is_none());
    assert!(record["attempts"][0]["result"].get("checks").is_none());

    let bad = cadloop(dir.path(), &["generate", "x", "--checks", "maybe"]);
    assert_exit(&bad, 2);
    assert!(
        text(&bad.stderr).contains("possible values: on, off"),
        "{}",
        text(&bad.stderr)
    );
}
