//! Rendering real FreeCAD parts, through the library and through the binary.

mod common;

use cadloop::render::{self, RenderSettings, View};
use common::{assert_exit, cadloop, refusal};

const BLOCK_WITH_HOLE: &str = include_str!("../freecad-scripts/examples/block_with_hole.py");

fn is_background(image: &image::RgbImage, x: u32, y: u32) -> bool {
    image.get_pixel(x, y).0 == [255, 255, 255]
}

#[tokio::test]
async fn a_through_hole_shows_the_background_along_its_axis_only() {
    let pool = common::pool(1).await;
    let (output, _dir) = common::run(&pool, BLOCK_WITH_HOLE).await;
    pool.shutdown().await;
    let views = render::render(&output.mesh.expect("a mesh"), &RenderSettings::default()).unwrap();
    // The 6 mm hole is vertical, in the middle of the 40 × 20 block: about 50 px across from above.
    for view in [View::Top, View::Bottom] {
        let image = views.get(view);
        for (dx, dy) in [(0, 0), (-12, 0), (12, 0), (0, -12), (0, 12)] {
            assert!(
                is_background(image, (192 + dx) as u32, (192 + dy) as u32),
                "{view:?} sees through the hole"
            );
        }
        assert!(
            !is_background(image, 192 + 40, 192),
            "{view:?}: solid beside the hole"
        );
    }
    for view in [View::Front, View::Right, View::Iso] {
        assert!(
            !is_background(views.get(view), 192, 192),
            "{view:?} does not see through the block"
        );
    }
}

#[test]
fn exec_renders_views_and_render_reads_step_and_stl() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("part.py"), BLOCK_WITH_HOLE).unwrap();
    let out = cadloop(
        dir.path(),
        &["exec", "part.py", "--out", "run", "--size", "128"],
    );
    assert_exit(&out, 0);
    let run = dir.path().join("run");
    for view in View::ALL {
        let image = image::open(run.join("views").join(format!("{}.png", view.name()))).unwrap();
        assert_eq!((image.width(), image.height()), (128, 128));
    }
    assert!(run.join("sheet.png").is_file());

    for (model, folder) in [
        ("run/model.stl", "stl"),
        ("run/model.step", "step"),
        ("run/model.FCStd", "fcstd"),
    ] {
        assert_exit(
            &cadloop(
                dir.path(),
                &["render", model, "--out", folder, "--size", "128"],
            ),
            0,
        );
    }
    // The same part from three files: the top views agree (the hole is see-through in each).
    for folder in ["stl", "step", "fcstd"].map(|f| dir.path().join(f)) {
        let top = image::open(folder.join("views/top.png")).unwrap().to_rgb8();
        assert!(is_background(&top, 64, 64), "{}", folder.display());
        assert!(!is_background(&top, 64 + 20, 64), "{}", folder.display());
    }

    // A failing script in the same folder removes the old views with the old models.
    std::fs::write(dir.path().join("bad.py"), "raise ValueError('no')\n").unwrap();
    assert_eq!(
        cadloop(dir.path(), &["exec", "bad.py", "--out", "run"])
            .status
            .code(),
        Some(1)
    );
    assert!(!run.join("views/front.png").exists() && !run.join("sheet.png").exists());
}

#[test]
fn bad_models_are_refused_with_exit_two_and_nothing_written() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("cut.stl"), [0u8; 90]).unwrap();
    let stderr = refusal(dir.path(), &["render", "cut.stl", "--out", "views"]);
    assert!(
        stderr.contains("cut.stl") && stderr.contains("truncated"),
        "{stderr}"
    );

    std::fs::write(dir.path().join("part.obj"), "v 0 0 0\n").unwrap();
    let stderr = refusal(dir.path(), &["render", "part.obj", "--out", "views"]);
    assert!(stderr.contains("cannot render a .obj file"), "{stderr}");

    std::fs::write(
        dir.path().join("broken.step"),
        "ISO-10303-21;\nnot really\n",
    )
    .unwrap();
    let stderr = refusal(dir.path(), &["render", "broken.step", "--out", "views"]);
    assert!(stderr.contains("FreeCAD could not mesh"), "{stderr}");
    assert!(!dir.path().join("views").exists());
}
