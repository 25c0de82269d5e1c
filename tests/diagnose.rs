//! Diagnoses on a corpus of failing scripts (`tests/fixtures/failing/`),
//! each the kind of mistake LLM-written FreeCAD code makes. Each script's
//! first line says what the worker must find:
//! `# expect: OUTCOME DEFECT [healed] [line=N]`, OUTCOME being "ok" or an
//! error kind. The test prints the share named with their line.

mod common;

use std::path::{Path, PathBuf};

use cadloop::executor::{Defect, ErrorKind, Outcome, Severity};
use cadloop::mesh::Mesh;
use common::llm_server::{Scripted, ScriptedLlm};
use common::parts::{fenced, generate_with};
use common::{assert_exit, pool, run, run_json};

/// What a corpus script's first line expects.
#[derive(Debug)]
struct Expected {
    /// `None`: the script builds (its defect is a note).
    error: Option<ErrorKind>,
    defect: String,
    healed: bool,
    line: Option<u32>,
}

fn expected(script: &Path, code: &str) -> Expected {
    let head = code
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("# expect: "))
        .unwrap_or_else(|| panic!("{} has no `# expect:` line", script.display()));
    let words: Vec<&str> = head.split_whitespace().collect();
    let error = match words[0] {
        "ok" => None,
        word => Some(serde_json::from_value(serde_json::json!(word)).unwrap()),
    };
    Expected {
        error,
        defect: words[1].to_string(),
        healed: words.contains(&"healed"),
        line: words
            .iter()
            .find_map(|w| w.strip_prefix("line="))
            .map(|n| n.parse().unwrap()),
    }
}

fn corpus() -> Vec<PathBuf> {
    common::files_in("tests/fixtures/failing", "py")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_failing_script_is_told_its_defect_where_and_how_to_fix_it() {
    let pool = pool(2).await;
    let scripts = corpus();
    assert!(scripts.len() >= 12, "the corpus: {scripts:?}");
    let mut named_with_line = 0;
    let mut with_line = 0;
    for script in &scripts {
        let code = std::fs::read_to_string(script).unwrap();
        let want = expected(script, &code);
        let (output, _dir) = run(&pool, &code).await;
        let report = output.report;
        let name = script.file_name().unwrap().to_string_lossy();
        let found: Vec<&Defect> = report
            .diagnosis
            .iter()
            .filter(|d| d.kind == want.defect)
            .collect();
        assert!(
            !found.is_empty(),
            "{name}: no {} in {:#?}",
            want.defect,
            report.diagnosis
        );
        let defect = found[0];
        assert!(!defect.hint.is_empty(), "{name}: a hint");
        marks_lie_in_the_gap(&name, &output.refused, &report.diagnosis);
        match (&report.outcome, want.error) {
            (Outcome::Ok { .. }, None) => {
                assert_eq!(defect.severity, Severity::Note, "{name}");
                assert_eq!(defect.healed, want.healed, "{name}");
            }
            (
                Outcome::Error {
                    kind,
                    message,
                    line,
                    ..
                },
                Some(wanted),
            ) => {
                assert_eq!(*kind, wanted, "{name}: {message}");
                assert_eq!(defect.severity, Severity::Error, "{name}");
                // The LLM reads the message: the fix is in it, not only in the data.
                assert!(
                    message.contains(&defect.hint),
                    "{name}: the hint is in the message: {message}"
                );
                if let Some(expected_line) = want.line {
                    with_line += 1;
                    assert_eq!(*line, Some(expected_line), "{name}: {message}");
                    assert_eq!(defect.line, Some(expected_line), "{name}");
                    if message.contains(&format!("line {expected_line}")) {
                        named_with_line += 1;
                    }
                }
            }
            (outcome, wanted) => panic!("{name}: expected {wanted:?}, got {outcome:?}"),
        }
    }
    println!(
        "diagnosis: {}/{} scripts named their defect; {named_with_line}/{with_line} of those with a line named it",
        scripts.len(),
        scripts.len()
    );
    assert_eq!(named_with_line, with_line);
    pool.shutdown().await;
}

/// A refused shape with a gap comes back as a mesh whose marked polylines
/// (its free edges, the edges that would close its profiles) lie inside the
/// gap defects' boxes; one without a gap has nothing marked.
fn marks_lie_in_the_gap(name: &str, refused: &Option<Mesh>, diagnosis: &[Defect]) {
    let gaps: Vec<_> = diagnosis
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .filter(|d| d.kind == "open-shell" || d.kind == "open-profile")
        .collect();
    let Some(mesh) = refused else {
        assert!(
            gaps.is_empty(),
            "{name}: a refused open shape comes back to be drawn"
        );
        return;
    };
    assert!(!mesh.triangles.is_empty(), "{name}");
    if gaps.is_empty() {
        assert!(mesh.marked.is_empty(), "{name}: {:?}", mesh.marked);
        return;
    }
    assert!(!mesh.marked.is_empty(), "{name}: the gap is marked");
    let inside = |p: &[f32; 3]| {
        gaps.iter().any(|d| {
            let region = d.region.as_ref().expect("a gap says where it is");
            (0..3).all(|k| {
                let slack = 1e-3 * (1.0 + region.max[k].abs());
                (p[k] as f64) >= region.min[k] - slack && (p[k] as f64) <= region.max[k] + slack
            })
        })
    };
    for point in mesh.marked.iter().flatten() {
        assert!(
            inside(point),
            "{name}: {point:?} is outside the gap: {gaps:#?}"
        );
    }
}

#[test]
fn exec_draws_a_refused_open_shape_with_its_gap_in_red() {
    let dir = tempfile::tempdir().unwrap();
    // `cadloop exec SCRIPT --out DIR/NAME`: its output and the folder.
    let exec = |script: &Path, name: &str| {
        let out = dir.path().join(name);
        let args = [
            "exec",
            script.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ];
        (common::cadloop(dir.path(), &args), out)
    };
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/failing/open_triangle_prism.py");
    let (said, out) = exec(&script, "out");
    assert_exit(&said, 1);
    let said = common::text(&said.stdout);
    assert!(said.contains("its free edges in red"), "{said}");
    // The top view looks down on the open side: the missing edge is drawn.
    let top = image::open(out.join("views/top.png")).unwrap().to_rgb8();
    assert!(red_pixels(&top) > 100, "{}", red_pixels(&top));
    let sheet = image::open(out.join("sheet.png")).unwrap().to_rgb8();
    assert!(red_pixels(&sheet) > 500);

    // A valid solid has nothing drawn in red.
    let good = dir.path().join("good.py");
    std::fs::write(&good, "import Part\nresult = Part.makeBox(30, 20, 10)\n").unwrap();
    let (said, out) = exec(&good, "good");
    assert_exit(&said, 0);
    let sheet = image::open(out.join("sheet.png")).unwrap().to_rgb8();
    assert_eq!(red_pixels(&sheet), 0);
}

/// Pixels near the marks' red, which neither shading nor lines come near.
fn red_pixels(image: &image::RgbImage) -> usize {
    let [r, g, b] = cadloop::render::MARK.map(i32::from);
    image
        .pixels()
        .filter(|p| {
            let [pr, pg, pb] = p.0.map(i32::from);
            (pr - r).abs() + (pg - g).abs() + (pb - b).abs() < 60
        })
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inside_out_solid_is_reversed_exactly_and_nothing_else_is_healed() {
    let pool = pool(1).await;
    let inside_out =
        "import Part\nsolid = Part.makeBox(30, 20, 10)\nsolid.reverse()\nresult = solid\n";
    let (output, _dir) = run(&pool, inside_out).await;
    let Outcome::Ok { facts } = &output.report.outcome else {
        panic!("{:?}", output.report.outcome);
    };
    // The sign flips; the size and the place stay.
    assert!((facts.volume - 6000.0).abs() < 1e-6, "{}", facts.volume);
    assert_eq!(facts.bbox.min, [0.0, 0.0, 0.0]);
    assert_eq!(facts.bbox.max, [30.0, 20.0, 10.0]);
    let mesh = output.mesh.expect("a mesh");
    assert!(
        (mesh.signed_volume() - 6000.0).abs() < 1.0,
        "the mesh faces outwards: {}",
        mesh.signed_volume()
    );
    assert!(output.report.diagnosis[0].healed);

    // An open shell is not closed up: it stays refused.
    let open = "import FreeCAD as App\nimport Part\nw = Part.makePolygon([App.Vector(0,0,0), App.Vector(10,0,0), App.Vector(5,8,0)])\nresult = Part.Face(w).extrude(App.Vector(0,0,5))\n";
    let (output, _dir) = run(&pool, open).await;
    assert_eq!(output.report.error_kind(), Some(ErrorKind::InvalidShape));
    assert!(output.report.diagnosis.iter().all(|d| !d.healed));
    pool.shutdown().await;
}

#[test]
fn the_critique_is_told_what_was_noticed_in_an_accepted_solid() {
    let bracket = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/failing/bracket_compound_overlap.py"),
    )
    .unwrap();
    let server = ScriptedLlm::responding(std::time::Duration::ZERO, move |seen| {
        if seen.last_user().contains("VERDICT: MATCH") {
            Scripted::Reply("VERDICT: MATCH".into())
        } else {
            Scripted::Reply(fenced(&bracket))
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let out = generate_with(dir.path(), &server, "an L bracket", &["--max-refines", "1"]);
    assert_exit(&out, 0);
    let critique = server
        .requests()
        .into_iter()
        .map(|seen| seen.last_user())
        .find(|text| text.contains("VERDICT: MATCH"))
        .expect("a critique request");
    assert!(
        critique.contains("noticed: overlapping: 2 of the 2 solids overlap"),
        "{critique}"
    );
    assert!(critique.contains("multiFuse"), "the fix: {critique}");
}

/// A failing script, the words of its fix an LLM would follow, and the
/// script after following them.
struct Case {
    broken: &'static str,
    fix_says: &'static str,
    fixed: &'static str,
}

const CASES: [Case; 4] = [
    Case {
        broken: "import FreeCAD as App\nimport Part\nSIDE = 30\nw = Part.makePolygon([App.Vector(0, 0, 0), App.Vector(SIDE, 0, 0), App.Vector(SIDE / 2, 26, 0)])\nresult = Part.Face(w).extrude(App.Vector(0, 0, 12))\n",
        fix_says: "closed wire only when the last point repeats the first",
        fixed: "import FreeCAD as App\nimport Part\nSIDE = 30\nw = Part.makePolygon([App.Vector(0, 0, 0), App.Vector(SIDE, 0, 0), App.Vector(SIDE / 2, 26, 0), App.Vector(0, 0, 0)])\nresult = Part.Face(w).extrude(App.Vector(0, 0, 12))\n",
    },
    Case {
        broken: "import Part\nplate = Part.makeBox(60, 40, 4)\nresult = plate.makeFillet(5, plate.Edges)\n",
        fix_says: "the shortest edge of the shape is 4 mm; use a fillet smaller than half of it",
        fixed: "import Part\nplate = Part.makeBox(60, 40, 4)\nresult = plate.makeFillet(1.5, plate.Edges)\n",
    },
    Case {
        broken: "import FreeCAD as App\nimport Part\nplate = Part.makeBox(60, 40, 5)\nhole = Part.makeCircle(4, App.Vector(30, 20, 0), App.Vector(0, 0, 1))\nresult = plate.cut(hole)\n",
        fix_says: "use `Part.makeCylinder` rather than `Part.makeCircle` for a hole",
        fixed: "import FreeCAD as App\nimport Part\nplate = Part.makeBox(60, 40, 5)\nhole = Part.makeCylinder(4, 5, App.Vector(30, 20, 0), App.Vector(0, 0, 1))\nresult = plate.cut(hole)\n",
    },
    Case {
        broken: "import Part\nresult = Part.makeTorus(25, 50)\n",
        fix_says: "needs r < R: the first argument is the ring radius",
        fixed: "import Part\nresult = Part.makeTorus(50, 25)\n",
    },
];

#[test]
fn told_the_fix_a_literal_llm_repairs_in_one_round() {
    let mut repaired = 0;
    for case in &CASES {
        // It writes the broken script, and the fixed one only when the
        // repair prompt says the fix.
        let server = ScriptedLlm::responding(std::time::Duration::ZERO, |seen| {
            let asked = seen.last_user();
            let code = if asked.contains(case.fix_says) {
                case.fixed
            } else {
                case.broken
            };
            Scripted::Reply(fenced(code))
        });
        let dir = tempfile::tempdir().unwrap();
        let out = generate_with(
            dir.path(),
            &server,
            "a part",
            &["--max-repairs", "1", "--max-refines", "0"],
        );
        let record = run_json(&dir.path().join("run"));
        assert_exit(&out, 0);
        let stages: Vec<&str> = record["attempts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["stage"].as_str().unwrap())
            .collect();
        assert_eq!(stages, ["generate", "repair"], "{}", case.fix_says);
        assert_eq!(record["outcome"], "unverified", "{}", case.fix_says);
        // The open prism's refused attempt is drawn, its gap in red, for the report.
        if case.fix_says.contains("closed wire") {
            let first = &record["attempts"][0];
            assert!(first["timings"]["render_ms"].is_number(), "{first}");
            let sheet = dir
                .path()
                .join("run")
                .join(first["dir"].as_str().unwrap())
                .join("sheet.png");
            let sheet = image::open(&sheet).unwrap().to_rgb8();
            assert!(red_pixels(&sheet) > 500);
            assert!(first["captions"].is_null(), "nothing is judged on it");
        }
        repaired += 1;
    }
    println!("repaired in one round: {repaired}/{}", CASES.len());
}
