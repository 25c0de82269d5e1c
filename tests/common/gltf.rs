//! model.glb as its consumers read it: the Khronos validator's report
//! (from npm, installed by `scripts/dev setup`) and the file's JSON chunk.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

/// The validator's report on `glb`.
pub fn validate(glb: &Path) -> Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/gltf/validate.mjs");
    let out = Command::new("node")
        .arg(script)
        .arg(glb)
        .output()
        .expect("node runs (scripts/dev setup installs it)");
    assert!(
        out.status.success(),
        "the validator failed: {}",
        super::text(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("the validator prints JSON")
}

/// The JSON chunk of a GLB file.
pub fn glb_json(path: &Path) -> Value {
    let bytes = std::fs::read(path).unwrap();
    let length = u32::from_le_bytes(bytes[12..16].try_into().unwrap()) as usize;
    assert_eq!(&bytes[16..20], b"JSON");
    serde_json::from_slice(&bytes[20..20 + length]).unwrap()
}
