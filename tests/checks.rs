//! The check library on real FreeCAD solids with known answers, run as the
//! loop runs it: read from the LLM's text by `checks::Checks::parse`, sent
//! with the job to a sandboxed worker, run on the shape the code built.

mod common;

use cadloop::checks::{CheckResult, CheckStatus, Checks};
use cadloop::executor::{Job, Pool};

/// A 50 × 50 × 5 plate with four 5 mm through holes on a 30 mm square
/// (centred on the plate) and one 8 mm blind hole, 3 mm deep, in the middle.
const PLATE: &str = "import FreeCAD as App
import Part
V = App.Vector
plate = Part.makeBox(50, 50, 5)
for x, y in [(10, 10), (40, 10), (10, 40), (40, 40)]:
    plate = plate.cut(Part.makeCylinder(2.5, 5, V(x, y, 0)))
result = plate.cut(Part.makeCylinder(4, 3, V(25, 25, 2)))
";

/// A 30 mm cube with a 10 mm hole through it along Z.
const CUBE_10: &str = "import FreeCAD as App
import Part
result = Part.makeBox(30, 30, 30).cut(Part.makeCylinder(5, 30, App.Vector(15, 15, 0)))
";

/// An open box, 40 × 30 × 20, walls 2 mm thick, floor 3 mm, off centre in X.
const TRAY: &str = "import FreeCAD as App
import Part
outer = Part.makeBox(40, 30, 20, App.Vector(-10, 0, 0))
inner = Part.makeBox(36, 26, 17, App.Vector(-8, 2, 3))
result = outer.cut(inner)
";

/// A block with a drilled (cone-tipped) blind hole and a cross hole along X
/// that a Z hole cuts in two.
const DRILLED: &str = "import FreeCAD as App
import Part
V = App.Vector
block = Part.makeBox(20, 20, 20)
drill = Part.makeCylinder(3, 10, V(5, 4, 10)).fuse(Part.makeCone(0, 3, 1.8, V(5, 4, 8.2)))
bore = Part.makeCylinder(3, 20, V(14, 10, 0))
cross = Part.makeCylinder(2, 20, V(0, 10, 10), V(1, 0, 0))
result = block.cut(drill).cut(bore).cut(cross)
";

/// A Z, 10 × 10 × 2: its centre of mass is on the YZ plane through its
/// middle, yet it is not mirror-symmetric about it (only about its centre).
const ZED: &str = "import FreeCAD
import Part
V = FreeCAD.Vector
bottom = Part.makeBox(6, 2, 2)
stem = Part.makeBox(2, 10, 2, V(4, 0, 0))
top = Part.makeBox(6, 2, 2, V(4, 8, 0))
result = bottom.fuse([stem, top]).removeSplitter()
";

/// A cylinder boss on a plate (a round feature that is not a hole) and a
/// half ball standing out of its top.
const BOSS: &str = "import FreeCAD as App
import Part
V = App.Vector
plate = Part.makeBox(60, 20, 4)
boss = Part.makeCylinder(6, 10, V(15, 10, 4))
ball = Part.makeSphere(3, V(45, 10, 4))
result = plate.fuse([boss, ball])
";

async fn check(pool: &Pool, code: &str, checks: &str) -> Vec<CheckResult> {
    let checks = Checks::parse(checks).expect("the test's checks parse");
    let dir = tempfile::tempdir().unwrap();
    let output = pool
        .run(Job {
            code: code.into(),
            dir: dir.path().to_path_buf(),
            timeout: None,
            inputs: Vec::new(),
            checks: checks.calls.clone(),
        })
        .await
        .unwrap();
    assert!(output.report.is_ok(), "{:?}", output.report.outcome);
    let results = output.report.checks;
    assert_eq!(results.len(), checks.calls.len());
    for (result, call) in results.iter().zip(&checks.calls) {
        assert_eq!(result.call, call.call);
    }
    results
}

/// Asserts that a check's sentence holds `words`.
fn says(result: &CheckResult, words: &str) {
    assert!(result.message.contains(words), "{}", result.message);
}

fn statuses(results: &[CheckResult]) -> Vec<CheckStatus> {
    results.iter().map(|r| r.status).collect()
}

use CheckStatus::{Error, Fail, Pass};

#[tokio::test]
async fn every_check_gives_the_known_answer_on_known_solids() {
    let pool = common::pool(1).await;

    let plate = check(
        &pool,
        PLATE,
        "CHECKS = [
            holes(5, count=4, through=True, axis='z'),
            holes(5, count=3),
            holes(8, count=1, through=False, depth=3),
            holes(8, through=True),
            axis_distance(5, 5, 30),
            axis_distance(5, 8, 21.213),
            axis_distance(5, 5, 25),
            faces('cylinder', count=5),
            faces(count=12),
            bbox(50, 50, 5),
            bbox(5, 50, 50),
            bbox(5, 50, 50, sorted=True),
            position(min=(0, 0, 0), center=(25, 25, None)),
            position(max=(50, 50, 10)),
        ]",
    )
    .await;
    assert_eq!(
        statuses(&plate),
        [Pass, Fail, Pass, Fail, Pass, Pass, Fail, Pass, Pass, Pass, Fail, Pass, Pass, Fail]
    );
    says(&plate[1], "4 hole(s) match, expected 3");
    assert_eq!(
        plate[0].measured,
        "4 × ⌀5 through along Z, 1 × ⌀8 blind 3 deep along Z"
    );
    assert_eq!(
        plate[6].measured, "30 mm",
        "the nearest pair to 25 is a side"
    );
    says(&plate[10], "X = 50 mm, expected 5 ± 0.1");
    assert!(
        plate[13]
            .message
            .contains("max z = 5 mm, expected 10 ± 0.1"),
        "{}",
        plate[13].message
    );

    // The cube of the issue: a 10 mm hole where 12 was asked.
    let cube = check(
        &pool,
        CUBE_10,
        "CHECKS = [bbox(30, 30, 30), holes(diameter=12, count=1, through=True), holes(10, count=1, through=True, axis='z'), holes(10, axis='x'), volume(27000 - 3.14159265 * 25 * 30, rel=0.001), volume(27000), area(6 * 900, rel=0.5), solids(1), solids(2), valid(), symmetric('yz'), symmetric('xy', at=0)]",
    )
    .await;
    assert_eq!(
        statuses(&cube),
        [Pass, Fail, Pass, Fail, Pass, Fail, Pass, Pass, Fail, Pass, Pass, Fail]
    );
    assert_eq!(cube[1].measured, "1 × ⌀10 through along Z");
    assert!(
        cube[1].message.contains(
            "expected 1 through hole(s) of ⌀12 ± 0.1; holes found: 1 × ⌀10 through along Z"
        ),
        "{}",
        cube[1].message
    );
    says(&cube[5], "(-8.7 %)");
    assert!(
        cube[11]
            .message
            .contains("centre of mass 15 mm off the plane: at least 50 % of the volume"),
        "{}",
        cube[11].message
    );
    assert!(cube.iter().all(|c| c.ms.is_some_and(|ms| ms >= 0.0)));

    let tray = check(
        &pool,
        TRAY,
        "CHECKS = [wall(2, at=(-9, 15, 10), direction='x'), wall(3, at=(10, 15, 1)), wall(3, at=(10, 15, 10)), wall(2, at=(10, 1, 5), direction=(0, 1, 0)), wall(5, at=(-9, 15, 10), direction='x'), symmetric('xz'), symmetric('yz'), symmetric('yz', at=10), bbox(40, 30, 20), position(min=(-10, 0, 0))]",
    )
    .await;
    assert_eq!(
        statuses(&tray),
        [Pass, Pass, Pass, Pass, Fail, Pass, Pass, Pass, Pass, Pass]
    );
    assert_eq!(tray[2].measured, "3 mm");
    assert!(
        tray[2]
            .message
            .contains("the point is in air; nearest material 7 mm away"),
        "{}",
        tray[2].message
    );
    says(&tray[4], "wall 2 mm thick, expected 5");

    let drilled = check(
        &pool,
        DRILLED,
        "CHECKS = [holes(6, count=1, through=False, depth=10), holes(6, count=1, through=True), holes(4, count=1, through=True, axis='x'), holes(6, count=2)]",
    )
    .await;
    assert_eq!(statuses(&drilled), [Pass, Pass, Pass, Pass]);

    let zed = check(
        &pool,
        ZED,
        "CHECKS = [symmetric('yz'), symmetric('xz'), symmetric('xy')]",
    )
    .await;
    assert_eq!(statuses(&zed), [Fail, Fail, Pass]);
    assert!(
        zed[0].measured.contains("(from its moments)"),
        "{}",
        zed[0].measured
    );

    let boss = check(
        &pool,
        BOSS,
        "CHECKS = [holes(12), axis_distance(12, 12, 0), faces('sphere', count=1), faces('cylinder', min=1, max=1), solids(), bbox(60, 20, 14)]",
    )
    .await;
    assert_eq!(statuses(&boss), [Fail, Fail, Pass, Pass, Pass, Pass]);
    says(&boss[0], "holes found: none");
    pool.shutdown().await;
}

#[tokio::test]
async fn a_check_that_cannot_be_applied_is_an_error_and_the_rest_still_run() {
    let pool = common::pool(1).await;
    let results = check(
        &pool,
        CUBE_10,
        "CHECKS = [holes('six'), faces('hexagon', count=1), bbox(), wall(2, at=(1, 2)), symmetric('ab'), bbox(30, 30, 30)]",
    )
    .await;
    assert_eq!(
        statuses(&results),
        [Error, Error, Error, Error, Error, Pass]
    );
    says(&results[0], "diameter must be a number");
    says(&results[1], "kind must be one of");
    says(&results[3], "at must be three values");
    pool.shutdown().await;
}

#[tokio::test]
async fn code_that_tampers_with_the_check_library_cannot_make_its_checks_pass() {
    // Generated code runs in the same interpreter before the checks; the
    // import check keeps it from reaching the library by name.
    let pool = common::pool(1).await;
    let dir = tempfile::tempdir().unwrap();
    let code = "import cadloop_checks\ncadloop_checks.LIBRARY.clear()\nimport Part\nresult = Part.makeBox(1, 1, 1)\n";
    let output = pool
        .run(Job {
            code: code.into(),
            dir: dir.path().to_path_buf(),
            timeout: None,
            inputs: Vec::new(),
            checks: Checks::parse("CHECKS = [bbox(30, 30, 30)]").unwrap().calls,
        })
        .await
        .unwrap();
    assert_eq!(
        output.report.error_kind(),
        Some(cadloop::executor::ErrorKind::Sandbox)
    );
    assert!(output.report.checks.is_empty());
    pool.shutdown().await;
}

#[test]
fn exec_runs_a_checks_file_and_refuses_a_bad_one_with_its_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("cube.py"), CUBE_10).unwrap();
    // `cadloop exec cube.py --out OUT --checks NAME` with `checks` in NAME.
    let exec = |name: &str, checks: &str, out: &str| {
        std::fs::write(dir.path().join(name), checks).unwrap();
        common::cadloop(
            dir.path(),
            &["exec", "cube.py", "--out", out, "--checks", name],
        )
    };
    let out = exec(
        "checks.txt",
        "CHECKS = [\n    bbox(30, 30, 30),\n    holes(12, through=True),\n]\n",
        "o",
    );
    common::assert_exit(&out, 0);
    let stdout = common::text(&out.stdout);
    assert!(stdout.contains("  checks: 1/2"), "{stdout}");
    assert!(
        stdout.contains("fail  holes(12, through=True): 0 hole(s) match"),
        "{stdout}"
    );
    let result: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("o/result.json")).unwrap()).unwrap();
    assert_eq!(result["checks"][0]["status"], "pass");
    assert!(result["timings"]["checks_ms"].as_f64().is_some());

    let out = exec(
        "bad.txt",
        "CHECKS = [\n    bbox(30, 30, 30),\n    import_module('os'),\n]\n",
        "o2",
    );
    common::assert_exit(&out, 2);
    let stderr = common::text(&out.stderr);
    assert!(
        stderr.contains("bad.txt, line 3: `import_module` is not a check"),
        "{stderr}"
    );
    assert!(!dir.path().join("o2").exists(), "nothing is written");
}

#[tokio::test]
async fn checks_on_parts_find_them_by_name_and_say_which_parts_there_are() {
    let pool = common::pool(1).await;
    let parts = "import FreeCAD as App
import Part
V = App.Vector
result = {'Base': Part.makeBox(40, 40, 10), 'peg': Part.makeCylinder(3, 20, V(20, 20, 10)),
          'ring': Part.makeCylinder(8, 2, V(20, 20, 30)).cut(Part.makeCylinder(4, 2, V(20, 20, 30)))}
";
    let results = check(
        &pool,
        parts,
        "CHECKS = [bbox(40, 40, 10, part='base'), bbox(6, 6, 20, part='peg'), holes(8, count=1, part='ring'), \
         holes(8, part='base'), clearance('peg', 'ring', 0.5), interference('base', 'peg'), \
         clearance('base', 'peg', 0.1), bbox(1, part='handle'), interference('peg', 'lid')]",
    )
    .await;
    assert_eq!(
        statuses(&results),
        [Pass, Pass, Pass, Fail, Pass, Pass, Fail, Error, Error]
    );
    says(&results[4], "the gap between 'peg' and 'ring' is 1 mm");
    says(&results[6], "is 0 mm; it must be at least 0.1 mm");
    says(
        &results[7],
        "there is no part named 'handle'; the parts are 'Base', 'peg', 'ring'",
    );
    says(&results[8], "there is no part named 'lid'");
    // A single part has no parts to name.
    let results = check(
        &pool,
        CUBE_10,
        "CHECKS = [bbox(10, part='lid'), interference('a', 'b')]",
    )
    .await;
    assert_eq!(statuses(&results), [Error, Error]);
    says(&results[0], "the result has no named parts");
    pool.shutdown().await;
}
