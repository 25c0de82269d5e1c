//! The executor against real FreeCAD: results, error reports, and a pool that
//! survives whatever the generated code does.

mod common;

use std::time::Duration;

use cadloop::executor::{ErrorKind, Job, Outcome};
use common::{pool, pool_without_import_check, run, run_with_timeout, BOX_MINUS_CYLINDER};

fn error_of(outcome: &Outcome) -> (ErrorKind, &str, Option<u32>) {
    match outcome {
        Outcome::Error {
            kind,
            message,
            line,
            ..
        } => (*kind, message.as_str(), *line),
        Outcome::Ok { .. } => panic!("expected an error, got {outcome:?}"),
    }
}

#[tokio::test]
async fn box_minus_cylinder_has_the_right_volume_and_its_step_reimports_the_same() {
    let pool = pool(1).await;
    let (output, dir) = run(&pool, BOX_MINUS_CYLINDER).await;
    let facts = output.report.facts().expect("facts").clone();
    assert!(output.report.is_ok(), "{:?}", output.report);
    let expected = 20.0 * 10.0 * 5.0 - std::f64::consts::PI * 4.0 * 5.0;
    assert!(
        (facts.volume - 937.17).abs() < 0.01,
        "volume {}",
        facts.volume
    );
    assert!((facts.volume - expected).abs() < 1e-6);
    assert!(facts.valid);
    assert_eq!(facts.solids, 1);
    assert_eq!(facts.faces, 7);
    assert_eq!(facts.face_types.get("Cylinder"), Some(&1));
    assert_eq!(facts.bbox.size, [20.0, 10.0, 5.0]);
    for (got, want) in facts.center_of_mass.iter().zip([10.0, 5.0, 2.5]) {
        assert!(
            (got - want).abs() < 1e-6,
            "centre of mass {:?}",
            facts.center_of_mass
        );
    }
    for name in ["model.step", "model.stl", "model.FCStd", "code.py"] {
        assert!(dir.path().join(name).is_file(), "{name} missing");
    }
    assert!(!dir.path().join(".staging").exists());

    let mesh = output.mesh.expect("a mesh");
    assert_eq!(
        mesh.triangles.len() as u64,
        facts.tessellation.unwrap().triangles
    );
    let mut stl = std::fs::File::open(dir.path().join("model.stl")).unwrap();
    assert_eq!(
        stl_io::read_stl(&mut stl).unwrap().faces.len(),
        mesh.triangles.len()
    );
    // The mesh encloses (nearly) the solid's volume: divergence theorem over the triangles.
    let mesh_volume: f64 = mesh
        .triangles
        .iter()
        .map(|t| {
            let [a, b, c] = t.map(|i| mesh.vertices[i as usize].map(f64::from));
            (a[0] * (b[1] * c[2] - b[2] * c[1]) - a[1] * (b[0] * c[2] - b[2] * c[0])
                + a[2] * (b[0] * c[1] - b[1] * c[0]))
                / 6.0
        })
        .sum();
    assert!(
        (mesh_volume - facts.volume).abs() / facts.volume < 0.01,
        "mesh volume {mesh_volume}"
    );

    // The sandbox lets a job read only its own folder: the STEP file goes in as an input.
    let step = dir.path().join("model.step");
    let again_dir = tempfile::tempdir().unwrap();
    let again = pool
        .run(Job {
            code: "import Part\nresult = Part.read('model.step')\n".into(),
            dir: again_dir.path().to_path_buf(),
            timeout: None,
            inputs: vec![step],
            checks: Vec::new(),
        })
        .await
        .unwrap();
    let volume = again.report.facts().expect("re-imported facts").volume;
    assert!(
        (volume - facts.volume).abs() < 1e-3,
        "re-imported volume {volume}"
    );
    pool.shutdown().await;
}

#[tokio::test]
async fn a_syntax_error_names_its_line_and_quotes_it() {
    let pool = pool(1).await;
    let code = "import Part\nx = 1\nbox = Part.makeBox(1, 1,\nresult = box\n";
    let (output, _dir) = run(&pool, code).await;
    let (kind, message, line) = error_of(&output.report.outcome);
    assert_eq!(kind, ErrorKind::Syntax);
    assert_eq!(line, Some(3), "{message}");
    assert!(message.contains("code.py, line 3"), "{message}");
    assert!(message.contains("box = Part.makeBox(1, 1,"), "{message}");
    pool.shutdown().await;
}

#[tokio::test]
async fn a_name_error_points_at_the_line_inside_the_function_and_suggests_the_name() {
    let pool = pool(1).await;
    let code = "import Part\n\ndef make():\n    return Part.makeBox(lenght, 2, 3)\n\nlength = 3\nresult = make()\n";
    let (output, _dir) = run(&pool, code).await;
    let (kind, message, line) = error_of(&output.report.outcome);
    assert_eq!(kind, ErrorKind::Exception);
    assert_eq!(line, Some(4), "{message}");
    assert!(
        message.contains("code.py, line 7: result = make()"),
        "{message}"
    );
    assert!(
        message.contains("code.py, line 4, in make: return Part.makeBox(lenght, 2, 3)"),
        "{message}"
    );
    assert!(
        message.contains("NameError: name 'lenght' is not defined"),
        "{message}"
    );
    assert!(message.contains("Did you mean: 'length'?"), "{message}");
    assert!(
        !message.contains("cadloop_harness"),
        "harness frames leak: {message}"
    );
    pool.shutdown().await;
}

#[tokio::test]
async fn a_failed_recompute_is_reported_with_the_feature_and_freecads_reason() {
    let pool = pool(1).await;
    let code = "import FreeCAD\ndoc = FreeCAD.ActiveDocument\nb = doc.addObject('Part::Box', 'B')\n\
                f = doc.addObject('Part::Fillet', 'RoundEdge')\nf.Base = b\nf.Edges = [(1, 50.0, 50.0)]\n";
    let (output, _dir) = run(&pool, code).await;
    let (kind, message, _) = error_of(&output.report.outcome);
    assert_eq!(kind, ErrorKind::Exception);
    assert!(message.contains("RoundEdge (Part::Fillet)"), "{message}");
    pool.shutdown().await;
}

#[tokio::test]
async fn empty_code_and_a_lone_face_give_no_solid() {
    let pool = pool(1).await;
    let (output, dir) = run(&pool, "").await;
    assert_eq!(error_of(&output.report.outcome).0, ErrorKind::NoSolid);
    assert!(!dir.path().join("model.step").exists());
    let face = "import Part\nresult = Part.makePlane(10, 10)\n";
    let (output, _dir) = run(&pool, face).await;
    let (kind, message, _) = error_of(&output.report.outcome);
    assert_eq!(kind, ErrorKind::NoSolid);
    assert!(message.contains("no solid"), "{message}");
    pool.shutdown().await;
}

#[tokio::test]
async fn without_result_the_visible_unconsumed_solids_are_taken() {
    let pool = pool(1).await;
    // The cut's operands stay visible in a headless document; only the cut counts.
    let code = "import FreeCAD as App\ndoc = App.ActiveDocument\nbox = doc.addObject('Part::Box', 'Block')\n\
                hole = doc.addObject('Part::Cylinder', 'Hole')\nhole.Radius = 2\nhole.Height = 10\n\
                hole.Placement.Base = App.Vector(5, 5, 0)\ncut = doc.addObject('Part::Cut', 'Cut')\n\
                cut.Base = box\ncut.Tool = hole\nextra = doc.addObject('Part::Box', 'Far')\n\
                extra.Placement.Base = App.Vector(100, 0, 0)\n";
    let (output, _dir) = run(&pool, code).await;
    let facts = output.report.facts().expect("ok");
    let cut = 1000.0 - std::f64::consts::PI * 4.0 * 10.0;
    assert!(
        (facts.volume - (cut + 1000.0)).abs() < 1e-6,
        "volume {}",
        facts.volume
    );
    assert_eq!(facts.solids, 2);
    pool.shutdown().await;
}

#[tokio::test]
async fn prints_are_captured_and_never_reach_the_protocol() {
    let pool = pool_without_import_check(1).await;
    let code =
        "import os, sys\nimport Part\nprint('x' * (1024 * 1024))\nos.write(1, b'raw fd 1\\n')\n\
                sys.stderr.write('to stderr\\n')\nresult = Part.makeBox(1, 2, 3)\n";
    let (output, dir) = run(&pool, code).await;
    assert!(output.report.is_ok(), "{:?}", output.report.outcome);
    let captured = &output.report.output;
    assert!(captured.truncated);
    assert!(captured.bytes > 1024 * 1024);
    assert!(captured.text.len() < 16 * 1024);
    let whole = std::fs::read_to_string(dir.path().join("output.txt")).unwrap();
    assert!(whole.contains("raw fd 1") && whole.contains("to stderr"));
    assert!(captured.text.contains("to stderr"), "the tail is kept");
    pool.shutdown().await;
}

#[tokio::test]
async fn the_worker_environment_carries_no_secrets() {
    std::env::set_var("OPENAI_API_KEY", "sk-test-secret");
    let pool = pool_without_import_check(1).await;
    let code = "import os, Part\nassert 'OPENAI_API_KEY' not in os.environ, 'leaked'\n\
                assert not any('sk-test' in v for v in os.environ.values()), 'leaked'\n\
                result = Part.makeBox(1, 1, 1)\n";
    let (output, _dir) = run(&pool, code).await;
    assert!(output.report.is_ok(), "{:?}", output.report.outcome);
    pool.shutdown().await;
}

/// Each hostile script gives its own error kind, and the very next job on the
/// same one-worker pool succeeds.
#[tokio::test]
async fn hostile_scripts_fail_alone_and_the_pool_recovers() {
    let pool = pool_without_import_check(1).await;
    let cases: [(&str, &str, ErrorKind); 4] = [
        (
            "segfault",
            "import ctypes\nimport Part\nctypes.string_at(0)\n",
            ErrorKind::Crashed,
        ),
        ("os._exit", "import os\nos._exit(3)\n", ErrorKind::Crashed),
        (
            "endless loop",
            "import Part\nn = 0\nwhile True:\n    n += 1\n",
            ErrorKind::Timeout,
        ),
        (
            "allocation past the limit",
            "import Part\nblob = bytearray(8 * 1024 ** 3)\n",
            ErrorKind::OutOfMemory,
        ),
    ];
    for (name, code, want) in cases {
        let (output, _dir) = run_with_timeout(&pool, code, Some(Duration::from_secs(2))).await;
        let (kind, message, line) = error_of(&output.report.outcome);
        assert_eq!(kind, want, "{name}: {message}");
        match name {
            "segfault" => {
                assert!(message.contains("Segmentation fault"), "{message}");
                assert_eq!(line, Some(3), "{message}");
            }
            "os._exit" => assert!(message.contains("exit status 3"), "{message}"),
            "endless loop" => assert!(matches!(line, Some(3 | 4)), "{message}"),
            _ => assert_eq!(line, Some(2), "{message}"),
        }
        let (next, _dir) = run(&pool, BOX_MINUS_CYLINDER).await;
        assert!(
            next.report.is_ok(),
            "after {name}: {:?}",
            next.report.outcome
        );
    }
    pool.shutdown().await;
}

#[tokio::test]
async fn eight_jobs_on_a_pool_of_two_all_finish() {
    let pool = std::sync::Arc::new(pool(2).await);
    let mut jobs = tokio::task::JoinSet::new();
    for i in 0..8 {
        let pool = pool.clone();
        jobs.spawn(async move {
            let code = format!("import Part\nresult = Part.makeBox({}, 2, 3)\n", i + 1);
            let (output, _dir) = run(&pool, &code).await;
            (i, output.report)
        });
    }
    let mut seen = Vec::new();
    while let Some(joined) = jobs.join_next().await {
        let (i, report) = joined.unwrap();
        let volume = report.facts().expect("ok").volume;
        assert!((volume - 6.0 * (i + 1) as f64).abs() < 1e-9);
        seen.push(i);
    }
    seen.sort();
    assert_eq!(seen, (0..8).collect::<Vec<_>>());
    pool.shutdown().await;
}

#[tokio::test]
async fn jobs_do_not_see_each_others_names_or_documents() {
    let pool = pool(1).await;
    let first = "import FreeCAD, Part\nleftover = 42\nFreeCAD.newDocument('Extra')\nresult = Part.makeBox(1, 1, 1)\n";
    let (output, _dir) = run(&pool, first).await;
    assert!(output.report.is_ok());
    let second = "import FreeCAD, Part\nassert 'leftover' not in globals()\n\
                  assert 'Extra' not in FreeCAD.listDocuments()\nassert len(FreeCAD.ActiveDocument.Objects) == 0\n\
                  result = Part.makeBox(1, 1, 1)\n";
    let (output, _dir) = run(&pool, second).await;
    assert!(output.report.is_ok(), "{:?}", output.report.outcome);
    pool.shutdown().await;
}

#[tokio::test]
async fn a_partdesign_body_padded_from_a_sketch_is_the_result() {
    let pool = pool(1).await;
    let code = "\
import FreeCAD as App
import Part, Sketcher, PartDesign
doc = App.ActiveDocument
body = doc.addObject('PartDesign::Body', 'Body')
sketch = body.newObject('Sketcher::SketchObject', 'Profile')
sketch.Support = (doc.getObject('XY_Plane'), [''])
sketch.MapMode = 'FlatFace'
corners = [App.Vector(0, 0, 0), App.Vector(20, 0, 0), App.Vector(20, 10, 0), App.Vector(0, 10, 0)]
for i in range(4):
    sketch.addGeometry(Part.LineSegment(corners[i], corners[(i + 1) % 4]), False)
pad = body.newObject('PartDesign::Pad', 'Pad')
pad.Profile = sketch
pad.Length = 5
doc.recompute()
";
    let (output, _dir) = run(&pool, code).await;
    let facts = output
        .report
        .facts()
        .unwrap_or_else(|| panic!("{:?}", output.report.outcome));
    assert!(
        (facts.volume - 1000.0).abs() < 1e-6,
        "volume {}",
        facts.volume
    );
    assert_eq!(facts.bbox.size, [20.0, 10.0, 5.0]);
    pool.shutdown().await;
}
