//! model.glb: every example part's GLB passes the Khronos glTF validator
//! (from npm, installed by `scripts/dev setup`) with no errors, holds the
//! STL's triangles within its bounds, and `cadloop render` reads it back.

mod common;

use std::path::{Path, PathBuf};

use common::gltf::{glb_json, validate};
use common::{assert_exit, cadloop, text};
use serde_json::Value;

fn examples() -> Vec<PathBuf> {
    common::files_in("freecad-scripts/examples", "py")
}

/// Triangle count and bounds of a binary STL.
fn stl_facts(path: &Path) -> (u64, [f32; 3], [f32; 3]) {
    let bytes = std::fs::read(path).unwrap();
    let count = u32::from_le_bytes(bytes[80..84].try_into().unwrap()) as u64;
    let (mut min, mut max) = ([f32::INFINITY; 3], [f32::NEG_INFINITY; 3]);
    for t in 0..count as usize {
        let facet = &bytes[84 + t * 50..84 + (t + 1) * 50];
        for corner in 0..3 {
            for axis in 0..3 {
                let at = 12 + corner * 12 + axis * 4;
                let v = f32::from_le_bytes(facet[at..at + 4].try_into().unwrap());
                min[axis] = min[axis].min(v);
                max[axis] = max[axis].max(v);
            }
        }
    }
    (count, min, max)
}

/// The JSON chunk of a GLB.
#[test]
fn every_example_part_has_a_valid_glb_that_matches_its_stl() {
    let dir = tempfile::tempdir().unwrap();
    let parts = examples();
    assert!(parts.len() >= 20, "{parts:?}");
    for script in parts {
        let name = script.file_stem().unwrap().to_string_lossy().into_owned();
        let out_dir = dir.path().join(&name);
        common::exec_script(dir.path(), &script, &out_dir, &["--size", "64"]);
        let glb = out_dir.join("model.glb");
        let report = validate(&glb);
        let issues = &report["issues"];
        assert_eq!(issues["numErrors"], 0, "{name}: {issues:#}");
        assert_eq!(issues["numWarnings"], 0, "{name}: {issues:#}");

        // One mesh, the STL's; for a result of named parts, a mesh for each,
        // each part's STL.
        let result: Value =
            serde_json::from_slice(&std::fs::read(out_dir.join("result.json")).unwrap()).unwrap();
        let parts: Vec<&str> = result["facts"]["parts"]
            .as_array()
            .map(|a| a.iter().map(|p| p["name"].as_str().unwrap()).collect())
            .unwrap_or_default();
        let stls: Vec<PathBuf> = if parts.is_empty() {
            vec![out_dir.join("model.stl")]
        } else {
            cadloop::mesh::part_file_names(parts.iter().copied())
                .iter()
                .map(|f| out_dir.join("parts").join(f))
                .collect()
        };
        let json = glb_json(&glb);
        let mut triangles = 0;
        let (mut min, mut max) = ([f32::INFINITY; 3], [f32::NEG_INFINITY; 3]);
        for (index, stl) in stls.iter().enumerate() {
            let (count, lo, hi) = stl_facts(stl);
            triangles += count;
            let position = &json["accessors"][2 * index];
            for axis in 0..3 {
                assert_eq!(
                    position["min"][axis].as_f64().unwrap() as f32,
                    lo[axis],
                    "{name}"
                );
                assert_eq!(
                    position["max"][axis].as_f64().unwrap() as f32,
                    hi[axis],
                    "{name}"
                );
                min[axis] = min[axis].min(lo[axis]);
                max[axis] = max[axis].max(hi[axis]);
            }
        }
        assert_eq!(report["info"]["totalTriangleCount"], triangles, "{name}");
        assert_eq!(report["info"]["totalVertexCount"], triangles * 3, "{name}");
        if !parts.is_empty() {
            // A node for each part, named, with its own coloured material.
            let names: Vec<&str> = json["nodes"][0]["children"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| {
                    json["nodes"][i.as_u64().unwrap() as usize]["name"]
                        .as_str()
                        .unwrap()
                })
                .collect();
            assert_eq!(names, parts, "{name}");
            assert_eq!(
                json["materials"].as_array().unwrap().len(),
                parts.len(),
                "{name}"
            );
        }
        // Metres for glTF; the part's millimetres (the STL's extent) in the extras.
        assert_eq!(
            json["nodes"][0]["scale"],
            serde_json::json!([0.001, 0.001, 0.001])
        );
        let size = &json["asset"]["extras"]["size_mm"];
        for axis in 0..3 {
            let stl = f64::from(max[axis]) - f64::from(min[axis]);
            let got = size[axis].as_f64().unwrap();
            assert!((got - stl).abs() < 1e-9, "{name}: {got} vs {stl}");
        }
    }
}

#[test]
fn render_reads_a_glb_back_in_the_parts_frame() {
    let dir = tempfile::tempdir().unwrap();
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("freecad-scripts/examples/l_bracket.py");
    let out = cadloop(
        dir.path(),
        &["exec", script.to_str().unwrap(), "--out", "part"],
    );
    assert_exit(&out, 0);
    let out = cadloop(
        dir.path(),
        &["render", "part/model.glb", "--out", "from_glb"],
    );
    assert_exit(&out, 0);
    let out = cadloop(
        dir.path(),
        &["render", "part/model.stl", "--out", "from_stl"],
    );
    assert_exit(&out, 0);
    // The same triangles in the same place give the same pictures.
    for view in ["front", "top", "iso"] {
        let glb = image::open(dir.path().join(format!("from_glb/views/{view}.png")))
            .unwrap()
            .to_rgb8();
        let stl = image::open(dir.path().join(format!("from_stl/views/{view}.png")))
            .unwrap()
            .to_rgb8();
        let differing = glb
            .pixels()
            .zip(stl.pixels())
            .filter(|(a, b)| a != b)
            .count();
        assert!(
            differing * 1000 < (glb.width() * glb.height()) as usize,
            "{view}: {differing} pixels differ"
        );
    }
    std::fs::write(dir.path().join("bad.glb"), b"not a glb").unwrap();
    let out = cadloop(dir.path(), &["render", "bad.glb", "--out", "bad"]);
    assert_exit(&out, 2);
    assert!(
        text(&out.stderr).contains("bad.glb is not a usable binary glTF file"),
        "{}",
        text(&out.stderr)
    );
}
