//! What the executor does with FreeCAD code written for the GUI: GUI lines
//! ignored and noted, visibility honoured, results found in any document,
//! writes outside the job skipped, and FreeCAD's C++ errors raised as Python
//! exceptions rather than aborting the worker.

mod common;

use cadloop::executor::{ErrorKind, Ignored, IgnoredKind, Job, Outcome};
use common::{pool, run};

fn volume(output: &cadloop::executor::JobOutput) -> f64 {
    assert!(output.report.is_ok(), "{:?}", output.report.outcome);
    output.report.facts().unwrap().volume
}

fn assert_volume(output: &cadloop::executor::JobOutput, want: f64) {
    let got = volume(output);
    assert!(
        (got - want).abs() <= 1e-9 * want,
        "volume {got}, want {want}"
    );
}

fn noted(ignored: &[Ignored], kind: IgnoredKind, line: u32) -> &Ignored {
    ignored
        .iter()
        .find(|i| i.kind == kind && i.line == Some(line))
        .unwrap_or_else(|| panic!("nothing noted at line {line}: {ignored:#?}"))
}

/// Regression: `Sketcher.Constraint('EllipseMajorRadius', 'Ellipse', 50)`
/// aborted the worker ("terminate called after throwing an instance of
/// 'Py::Exception'") where FreeCAD raises TypeError.
#[tokio::test]
async fn a_freecad_error_raised_from_cpp_is_a_python_exception_not_a_crash() {
    let pool = pool(1).await;
    let code = "import FreeCAD as App\nimport Part, Sketcher\n\
                sk = App.ActiveDocument.addObject('Sketcher::SketchObject', 'Sketch')\n\
                sk.addGeometry(Part.Ellipse(App.Vector(0, 0, 0), 50, 20))\n\
                sk.addConstraint(Sketcher.Constraint('EllipseMajorRadius', 'Ellipse', 50))\n\
                result = Part.makeBox(1, 1, 1)\n";
    let (output, _dir) = run(&pool, code).await;
    match &output.report.outcome {
        Outcome::Error {
            kind,
            message,
            line,
            ..
        } => {
            assert_eq!(*kind, ErrorKind::Exception, "{message}");
            assert!(
                message.contains("TypeError: Invalid parameters"),
                "{message}"
            );
            assert_eq!(*line, Some(5), "{message}");
        }
        ok => panic!("expected FreeCAD's TypeError, got {ok:?}"),
    }
    let (next, _dir) = run(&pool, common::BOX_MINUS_CYLINDER).await;
    assert!(next.report.is_ok(), "{:?}", next.report.outcome);
    pool.shutdown().await;
}

#[tokio::test]
async fn gui_lines_do_nothing_and_are_noted_with_their_lines() {
    let pool = pool(1).await;
    let code = r#"import FreeCAD as App
import FreeCADGui
import FreeCADGui as G2
from FreeCADGui import Selection
import PartGui, ImportGui
import Part
box = App.ActiveDocument.addObject("Part::Box", "Box")
box.ViewObject.ShapeColor = (1.0, 0.0, 0.0)
Gui.activeDocument().activeView().viewAxometric()
for i in range(50):
    Gui.SendMsgToActiveView("ViewFit")
FreeCADGui.ActiveDocument.ActiveView.saveImage("shot.png", 100, 100, "White")
assert Selection.getSelection() == [] and G2 is FreeCADGui is Gui
App.ActiveDocument.recompute()
"#;
    let (output, _dir) = run(&pool, code).await;
    assert_volume(&output, 1000.0);
    let ignored = &output.report.ignored;
    assert!(noted(ignored, IgnoredKind::Gui, 8)
        .call
        .contains("Box.ViewObject.ShapeColor"));
    assert_eq!(
        noted(ignored, IgnoredKind::Gui, 9).call,
        "Gui.activeDocument().activeView().viewAxometric()"
    );
    assert_eq!(
        noted(ignored, IgnoredKind::Gui, 11).call,
        "Gui.SendMsgToActiveView()"
    );
    assert!(noted(ignored, IgnoredKind::Gui, 12)
        .call
        .contains("saveImage"));
    assert_eq!(
        ignored.len(),
        4,
        "a call in a loop is noted once: {ignored:#?}"
    );

    // The notes are the job's own: the next job starts with none.
    let (next, _dir) = run(&pool, "import Part\nresult = Part.makeBox(1, 1, 1)\n").await;
    assert_volume(&next, 1.0);
    assert!(next.report.ignored.is_empty());
    pool.shutdown().await;
}

#[tokio::test]
async fn visibility_set_through_the_gui_decides_which_solids_count() {
    let pool = pool(1).await;
    let code = r#"import FreeCAD as App
import Part
Part.show(Part.makeBox(10, 10, 10), "Stock")
Gui.ActiveDocument.getObject("Stock").Visibility = False
Part.show(Part.makeBox(1, 2, 3), "Tool")
App.ActiveDocument.Tool.ViewObject.hide()
Part.show(Part.makeBox(2, 2, 2), "Kept")
Part.show(Part.makeBox(4, 4, 4, App.Vector(50, 0, 0)), "Other")
Gui.ActiveDocument.hide("Other")
assert not App.ActiveDocument.Other.ViewObject.Visibility
Part.show(Part.makeBox(3, 3, 3, App.Vector(0, 50, 0)), "Third")
FreeCADGui.ActiveDocument.Third.Visibility = False
"#;
    let (output, _dir) = run(&pool, code).await;
    assert_volume(&output, 8.0);
    assert!(
        output.report.ignored.is_empty(),
        "{:#?}",
        output.report.ignored
    );
    pool.shutdown().await;
}

#[tokio::test]
async fn solids_in_new_documents_count_and_every_document_is_closed_after_the_job() {
    let pool = pool(1).await;
    let code = r#"import FreeCAD as App
import Part
a = App.newDocument("Sketches")
a.addObject("Part::Feature", "Guide").Shape = Part.makeCircle(5)
b = App.newDocument("Part")
App.setActiveDocument("Part")
App.ActiveDocument = App.getDocument("Part")
Part.show(Part.makeCylinder(5, 10))
c = App.newDocument("Extra")
box = c.addObject("Part::Box", "Box")
box.Placement = App.Placement(App.Vector(20, 0, 0), App.Rotation())
"#;
    let (output, _dir) = run(&pool, code).await;
    let want = std::f64::consts::PI * 25.0 * 10.0 + 1000.0;
    assert_volume(&output, want);

    let code = "import FreeCAD as App, Part\n\
                assert list(App.listDocuments()) == ['cadloop_job'], App.listDocuments()\n\
                result = Part.makeBox(1, 1, 1)\n";
    let (next, _dir) = run(&pool, code).await;
    assert_volume(&next, 1.0);
    pool.shutdown().await;
}

#[tokio::test]
async fn writes_outside_the_job_are_skipped_and_noted_inside_it_they_happen() {
    let pool = pool(1).await;
    let outside = tempfile::tempdir().unwrap();
    let target = outside.path().join("part.FCStd");
    let code = format!(
        r#"import FreeCAD as App
import Part, Mesh, Import
doc = App.newDocument("Bushing")
obj = doc.addObject("Part::Feature", "Bushing")
obj.Shape = Part.makeCylinder(12, 20).cut(Part.makeCylinder(8, 20))
doc.saveAs({target:?})
doc.save()
Part.export([obj], "/tmp/cadloop-test-bushing.step")
obj.Shape.exportStl("~/bushing.stl")
Mesh.export([obj], "../escape.stl")
Import.export([obj], "C:/Users/me/bushing.step")
obj.Shape.exportStep("inside.step")
Import.export([obj], "sub.step")
assert Part.read("inside.step").Volume > 0
assert Part.read("sub.step").Volume > 0
obj.Shape.exportStep(b"/tmp/cadloop-test-bytes.step")
"#
    );
    let (output, _dir) = run(&pool, &code).await;
    let want = std::f64::consts::PI * (144.0 - 64.0) * 20.0;
    assert_volume(&output, want);
    assert!(!target.exists(), "a save outside the job folder happened");
    assert!(!std::path::Path::new("/tmp/cadloop-test-bushing.step").exists());
    let ignored = &output.report.ignored;
    for line in 6..=11 {
        let note = noted(ignored, IgnoredKind::Write, line);
        assert!(
            note.detail.contains("cadloop saves the model itself"),
            "{note:?}"
        );
    }
    // A path given as bytes is judged like a string.
    assert!(noted(ignored, IgnoredKind::Write, 16)
        .call
        .contains("cadloop-test-bytes"));
    assert_eq!(ignored.len(), 7, "{ignored:#?}");
    pool.shutdown().await;
}

/// model.FCStd is the document the result lives in, history and all.
#[tokio::test]
async fn the_fcstd_keeps_the_parametric_history_of_the_result_document() {
    let pool = pool(1).await;
    let code = r#"import FreeCAD as App
doc = App.newDocument("Stand")
body = doc.addObject("PartDesign::Body", "Body")
base = doc.addObject("PartDesign::AdditiveBox", "Base")
body.addObject(base)
bore = doc.addObject("PartDesign::SubtractiveCylinder", "Bore")
body.addObject(bore)
bore.Radius = 2
bore.Placement = App.Placement(App.Vector(5, 5, 0), App.Rotation())
doc.recompute()
"#;
    let (output, dir) = run(&pool, code).await;
    let want = 1000.0 - std::f64::consts::PI * 4.0 * 10.0;
    assert_volume(&output, want);
    let check = "import FreeCAD as App\ndoc = App.openDocument('model.FCStd')\n\
                 assert doc.getObject('Bore').TypeId == 'PartDesign::SubtractiveCylinder'\n\
                 result = doc.getObject('Body')\n";
    let reopened = pool
        .run(Job {
            code: check.to_string(),
            dir: dir.path().join("check"),
            timeout: None,
            inputs: vec![dir.path().join("model.FCStd")],
            checks: Vec::new(),
        })
        .await
        .unwrap();
    assert_volume(&reopened, want);
    pool.shutdown().await;
}

#[tokio::test]
async fn a_result_variable_that_is_no_shape_falls_back_to_what_the_documents_show() {
    let pool = pool(1).await;
    let code = "import FreeCAD as App, Part\nPart.show(Part.makeBox(2, 3, 4))\n\
                result = App.ActiveDocument.recompute()\n";
    let (output, _dir) = run(&pool, code).await;
    assert_volume(&output, 24.0);
    let (bad, _dir) = run(&pool, "result = 'done'\n").await;
    assert_eq!(bad.report.error_kind(), Some(ErrorKind::NoSolid));
    pool.shutdown().await;
}
