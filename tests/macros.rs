//! Macros written the way LLMs write them for FreeCAD's GUI (GUI lines,
//! several documents, `from FreeCAD import Base`, Sketcher and PartDesign
//! bodies, `Part.show` of intermediate shapes, exports, wrong API calls),
//! in `tests/fixtures/macros/`. Each runs in the real FreeCAD GUI
//! (`reference_runner.py`, under a virtual X server) and through
//! `cadloop exec`; both must agree: the same solid volume to 0.1 %, or the
//! same exception class at the same line, or no solid in either.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{cadloop, text};
use serde_json::Value;

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/macros")
}

fn macro_files() -> Vec<PathBuf> {
    common::files_in("tests/fixtures/macros", "FCMacro")
}

/// Runs every macro in FreeCAD's GUI; one record per macro file name.
fn reference_results(work: &Path) -> BTreeMap<String, Value> {
    let out = work.join("reference.jsonl");
    let home = work.join("home");
    let cwd = work.join("cwd");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::create_dir_all(&cwd).unwrap();
    let status = Command::new("timeout")
        .args(["600", "xvfb-run", "--auto-servernum", "freecad"])
        .arg(corpus_dir().join("reference_runner.py"))
        .env("CADLOOP_MACROS", corpus_dir())
        .env("CADLOOP_MACROS_OUT", &out)
        .env("CADLOOP_MACROS_WORK", &cwd)
        .env("HOME", &home)
        .env("XDG_CONFIG_HOME", home.join(".config"))
        .env("XDG_DATA_HOME", home.join(".local/share"))
        // The GUI's web view refuses to start as root without this.
        .env("QTWEBENGINE_DISABLE_SANDBOX", "1")
        .current_dir(&cwd)
        .output()
        .expect("xvfb-run and freecad are installed (scripts/dev setup)");
    let lines = std::fs::read_to_string(&out).unwrap_or_default();
    assert!(
        lines.contains("\"done\": true"),
        "the reference runner did not finish ({}):\n{lines}\nstderr:\n{}",
        status.status,
        text(&status.stderr)
    );
    lines
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter_map(|v| Some((v.get("macro")?.as_str()?.to_string(), v.clone())))
        .collect()
}

fn exec(path: &Path, work: &Path) -> Value {
    let out_dir = work.join(path.file_stem().unwrap());
    let out = cadloop(
        work,
        &[
            "exec",
            path.to_str().unwrap(),
            "--out",
            out_dir.to_str().unwrap(),
            "--json",
        ],
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{}: no result.json on stdout ({e}); exit {:?}\nstderr:\n{}",
            path.display(),
            out.status,
            text(&out.stderr)
        )
    })
}

/// Why cadloop's result differs from FreeCAD's, or None when they agree.
fn disagreement(reference: &Value, ours: &Value) -> Option<String> {
    let kind = ours["kind"].as_str().unwrap_or("");
    let message = ours["message"].as_str().unwrap_or("");
    match reference["outcome"].as_str() {
        Some("ok") => {
            let want = reference["volume"].as_f64().unwrap();
            if ours["outcome"] != "ok" {
                return Some(format!(
                    "FreeCAD built {want:.3} mm³, cadloop failed ({kind}): {message}"
                ));
            }
            let got = ours["facts"]["volume"].as_f64().unwrap();
            ((got - want).abs() > 1e-3 * want)
                .then(|| format!("volume {got:.3} mm³, FreeCAD's {want:.3} mm³"))
        }
        Some("error") => {
            let class = reference["class"].as_str().unwrap();
            let line = reference["line"].as_u64();
            if ours["outcome"] == "ok" {
                return Some(format!(
                    "FreeCAD raised {class} at line {line:?}, cadloop built a solid"
                ));
            }
            let names_class = message.contains(&format!("{class}:"));
            let same_line = ours["line"].as_u64() == line;
            (!names_class || !same_line || !matches!(kind, "exception" | "syntax")).then(|| {
                format!(
                    "FreeCAD raised {class} at line {line:?}; cadloop: {kind} at line {:?}: {message}",
                    ours["line"].as_u64()
                )
            })
        }
        Some("no-solid") => (ours["outcome"] == "ok" || kind == "crashed")
            .then(|| format!("FreeCAD shows no valid solid; cadloop: {}", ours["outcome"])),
        _ => Some(format!("the reference runner failed: {reference}")),
    }
}

#[test]
fn llm_style_macros_build_in_cadloop_as_in_freecads_gui() {
    let macros = macro_files();
    assert!(macros.len() >= 30, "only {} macros", macros.len());
    let work = tempfile::tempdir().unwrap();
    let reference = reference_results(work.path());
    let mut problems = Vec::new();
    let mut outcomes = BTreeMap::<String, usize>::new();
    for path in &macros {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let Some(want) = reference.get(&name) else {
            problems.push(format!("{name}: no reference result"));
            continue;
        };
        *outcomes
            .entry(want["outcome"].as_str().unwrap_or("?").to_string())
            .or_default() += 1;
        let ours = exec(path, work.path());
        if let Some(why) = disagreement(want, &ours) {
            problems.push(format!("{name}: {why}"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    // The corpus exercises all three outcomes, most of it building a solid.
    assert!(
        outcomes.get("ok").copied().unwrap_or(0) >= 20,
        "{outcomes:?}"
    );
    assert!(
        outcomes.get("error").copied().unwrap_or(0) >= 5,
        "{outcomes:?}"
    );
    assert!(outcomes.contains_key("no-solid"), "{outcomes:?}");
}

#[test]
fn exec_lists_what_a_macro_asked_of_the_gui_in_result_json_and_the_report() {
    let work = tempfile::tempdir().unwrap();
    let macro_path = corpus_dir().join("09_exports_outside.FCMacro");
    let gui_macro = corpus_dir().join("01_box_hole_gui.FCMacro");
    for (path, kind, line, call) in [
        (&gui_macro, "gui", 31, "Gui.SendMsgToActiveView()"),
        (&macro_path, "write", 16, "Bushing.saveAs("),
    ] {
        let result = exec(path, work.path());
        assert_eq!(result["outcome"], "ok", "{result}");
        let ignored = result["ignored"].as_array().expect("ignored lines");
        let entry = ignored
            .iter()
            .find(|i| i["line"] == line)
            .unwrap_or_else(|| panic!("line {line} not listed: {ignored:?}"));
        assert_eq!(entry["kind"], kind);
        assert!(entry["call"].as_str().unwrap().starts_with(call), "{entry}");

        let out_dir = work.path().join(path.file_stem().unwrap());
        let saved: Value =
            serde_json::from_str(&std::fs::read_to_string(out_dir.join("result.json")).unwrap())
                .unwrap();
        assert_eq!(saved["ignored"], result["ignored"]);
        let page = std::fs::read_to_string(out_dir.join("report.html")).unwrap();
        assert!(page.contains("Left out"), "no Left out section");
        assert!(page.contains(&format!("<td class=\"num\">{line}</td>")));
    }
    let page = std::fs::read_to_string(work.path().join("01_box_hole_gui/report.html")).unwrap();
    assert!(page.contains("Gui.SendMsgToActiveView(&quot;ViewFit&quot;)"));
}
