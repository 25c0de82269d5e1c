//! Parts and run helpers shared by the loop's tests (generate, refine,
//! report, the studio, the MCP server).

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use cadloop::executor::Job;

use super::llm_server::{Scripted, ScriptedLlm, Streams};

pub const BUGGY: &str = "import FreeCAD as App
import Part

block = Part.makeBox(40, 20, 10)
result = block.cut(hole)
";

/// Builds, but 50 mm long instead of 40.
pub const TOO_LONG: &str = "import FreeCAD as App
import Part

block = Part.makeBox(50, 20, 10)
hole = Part.makeCylinder(3, 10, App.Vector(25, 10, 0))
result = block.cut(hole)
";

pub const RIGHT: &str = "import FreeCAD as App
import Part

block = Part.makeBox(40, 20, 10)
hole = Part.makeCylinder(3, 10, App.Vector(20, 10, 0))
result = block.cut(hole)
";

pub const PROMPT: &str = "a 40 x 20 x 10 mm block with a 6 mm hole through the middle";

pub fn fenced(code: &str) -> String {
    format!("```python\n{code}```")
}

pub fn tiny_captioner() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny-blip")
}

/// The statuses of a run.json attempt's checks, in order.
pub fn check_statuses(attempt: &serde_json::Value) -> Vec<String> {
    attempt["result"]["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["status"].as_str().unwrap().to_string())
        .collect()
}

/// The volume of a STEP file, measured by FreeCAD in a worker.
pub fn step_volume(step: &Path) -> f64 {
    read_in_freecad(
        step,
        "import FreeCAD\nimport Part\nresult = Part.read('model.step')\n",
    )
    .facts()
    .expect("the STEP file reads")
    .volume
}

/// Runs `code` in a worker with `file` in its folder (code that reads it
/// and leaves what it read as `result`); the job's report.
pub fn read_in_freecad(file: &Path, code: &str) -> cadloop::executor::ExecReport {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let pool = super::pool(1).await;
        let scratch = tempfile::tempdir().unwrap();
        let output = pool
            .run(Job {
                code: code.into(),
                dir: scratch.path().to_path_buf(),
                timeout: None,
                inputs: vec![file.to_path_buf()],
                checks: Vec::new(),
            })
            .await
            .unwrap();
        pool.shutdown().await;
        output.report
    })
}

/// `cadloop generate PROMPT --base-url SERVER --model scripted-coder --out run EXTRA…` in `dir`.
pub fn generate_with(dir: &Path, server: &ScriptedLlm, prompt: &str, extra: &[&str]) -> Output {
    let url = server.url();
    let mut args = vec![
        "generate",
        prompt,
        "--base-url",
        &url,
        "--model",
        "scripted-coder",
        "--out",
        "run",
    ];
    args.extend_from_slice(extra);
    super::cadloop(dir, &args)
}

/// CADPrompt's development cases when this machine has them (they are read
/// in place, never copied; `CADLOOP_DEV_DATASET` names another folder), else
/// a dataset of parts FreeCAD makes here.
pub fn reference_dataset(dir: &std::path::Path) -> std::path::PathBuf {
    let dev = std::env::var_os("CADLOOP_DEV_DATASET").map_or_else(
        || {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../shared/datasets/cadprompt-dev")
        },
        std::path::PathBuf::from,
    );
    if dev.is_dir() {
        return dev;
    }
    eprintln!("{} is not here: using parts made by FreeCAD", dev.display());
    let parts = [
        ("plate", "a rectangular plate with a round hole in the middle", "import FreeCAD\nimport Part\nresult = Part.makeBox(40, 30, 4).cut(Part.makeCylinder(5, 4, FreeCAD.Vector(20, 15, 0)))\n"),
        ("shaft", "a long cylindrical shaft with a wider collar at one end", "import Part\nresult = Part.makeCylinder(5, 60).fuse(Part.makeCylinder(8, 10))\n"),
        ("bracket", "an l shaped bracket made of two flat plates", "import Part\nresult = Part.makeBox(50, 30, 5).fuse(Part.makeBox(5, 30, 40))\n"),
        ("washer", "a thin round washer with a large hole", "import Part\nresult = Part.makeCylinder(15, 2).cut(Part.makeCylinder(7, 2))\n"),
        ("tube", "a tall hollow tube", "import Part\nresult = Part.makeCylinder(10, 50).cut(Part.makeCylinder(8, 50))\n"),
        ("block", "a cube with a slot cut across the top", "import FreeCAD\nimport Part\nresult = Part.makeBox(30, 30, 30).cut(Part.makeBox(30, 8, 10, FreeCAD.Vector(0, 11, 20)))\n"),
    ];
    let mut lines = String::new();
    for (id, prompt, code) in parts {
        std::fs::write(dir.join(format!("{id}.py")), code).unwrap();
        super::assert_exit(
            &super::cadloop(
                dir,
                &["exec", &format!("{id}.py"), "--out", &format!("ref-{id}")],
            ),
            0,
        );
        lines += &format!(
            "{}\n",
            serde_json::json!({"id": id, "prompt": prompt, "reference": format!("ref-{id}/model.stl")})
        );
    }
    std::fs::write(dir.join("parts.jsonl"), lines).unwrap();
    dir.join("parts.jsonl")
}

/// The checks `part_writer` writes with its first script.
pub const CHECKS: &str =
    "```checks\nCHECKS = [bbox(40, 20, 10), holes(6, count=1, through=True)]\n```";

/// An endpoint that writes `code` (after the checks of a 40 × 20 × 10 block
/// with a 6 mm hole), and `changed` when asked to make the hole 8 mm, and
/// accepts every part; it answers after 400 ms and streams a chunk every
/// 5 ms, so the stages and the code being written can be seen as they pass.
pub fn part_writer(code: &'static str, changed: String) -> ScriptedLlm {
    ScriptedLlm::responding(Duration::from_millis(400), move |seen| {
        let ask = seen.last_user();
        if ask.contains("VERDICT: MATCH") {
            Scripted::Reply("VERDICT: MATCH".into())
        } else if ask.contains("make the hole 8 mm") {
            Scripted::Reply(fenced(&changed))
        } else {
            Scripted::Reply(format!("{CHECKS}\n{}", fenced(code)))
        }
    })
    .streaming(Streams::Sent(Duration::from_millis(5)))
}
