//! int8 captions on every CPU class this machine can present
//! (captioner/cpu_as.c hides newer features, so ONNX Runtime picks that
//! class's kernels and runs them here): an int8 folder gives the captions it
//! gives on this machine's own CPU, whether its weights keep export.py's
//! headroom or use the full range, and `cadloop doctor` names each class's
//! integer path.

mod common;

use std::path::Path;

use common::python::quantized_copy;
use common::{assert_exit, text};
use serde_json::Value;

/// The two int8 folders of the tiny fixture: export.py's, and one quantised
/// with full-range weights as exports were before.
fn int8_folders(dir: &Path) -> [std::path::PathBuf; 2] {
    let fixture = common::parts::tiny_captioner();
    let headroom = dir.join("int8");
    let full_range = dir.join("int8-full-range");
    quantized_copy(dir, &fixture, &headroom, false);
    quantized_copy(dir, &fixture, &full_range, true);
    [headroom, full_range]
}

fn cadloop_as(dir: &Path, class: &str, args: &[&str]) -> std::process::Output {
    let mut command = common::command::cadloop_command(dir);
    common::cpu::present(&mut command, class);
    command.args(args).output().expect("cadloop runs")
}

/// Greedy captions of the fixture's two images, with their scores.
fn captions(dir: &Path, folder: &Path, class: &str) -> (Vec<(String, f64)>, String) {
    let fixture = common::parts::tiny_captioner();
    let out = cadloop_as(
        dir,
        class,
        &[
            "caption",
            fixture.join("test.png").to_str().unwrap(),
            fixture.join("green.png").to_str().unwrap(),
            "--captioner",
            folder.to_str().unwrap(),
            "--beams",
            "1",
            "--json",
        ],
    );
    assert_exit(&out, 0);
    let listed: Value = serde_json::from_slice(&out.stdout).unwrap();
    let captions = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["caption"].as_str().unwrap().to_string(),
                c["score"].as_f64().unwrap(),
            )
        })
        .collect();
    (captions, text(&out.stderr))
}

#[test]
fn int8_captions_are_the_same_on_every_cpu_class() {
    let dir = tempfile::tempdir().unwrap();
    let [headroom, full_range] = int8_folders(dir.path());
    let classes = common::cpu::classes();
    for folder in [&headroom, &full_range] {
        let (own, _) = captions(dir.path(), folder, "native");
        for &class in &classes {
            let (seen, log) = captions(dir.path(), folder, class);
            for ((a, score_a), (b, score_b)) in own.iter().zip(&seen) {
                // The integer products are exact on every class; only the
                // float kernels around them differ, in the last digits.
                assert_eq!(a, b, "{} as {class}", folder.display());
                assert!(
                    (score_a - score_b).abs() < 1e-4,
                    "{} as {class}: score {score_a} here, {score_b} as {class}",
                    folder.display()
                );
            }
            // Full-range weights on a class whose kernels saturate run on
            // slower exact ones, and the log says how to get the fast ones.
            let saturates = common::cpu::saturates(class);
            let warned = log.matches("export the folder again").count();
            let expected = usize::from(saturates && folder == &full_range);
            assert_eq!(warned, expected, "{} as {class}:\n{log}", folder.display());
        }
    }
}

#[test]
fn doctor_names_the_integer_path_of_each_cpu_class() {
    let dir = tempfile::tempdir().unwrap();
    let [headroom, full_range] = int8_folders(dir.path());
    for class in common::cpu::classes() {
        for folder in [&headroom, &full_range] {
            let out = cadloop_as(
                dir.path(),
                class,
                &["doctor", "--captioner", folder.to_str().unwrap()],
            );
            let report = text(&out.stdout);
            let line = |part: &str| {
                report
                    .lines()
                    .find(|l| l.split_whitespace().nth(1) == Some(part))
                    .unwrap_or_else(|| panic!("no {part} line as {class}:\n{report}"))
                    .to_string()
            };
            let cpu = line("CPU");
            assert!(cpu.starts_with("ok "), "{cpu}");
            if let Some(path) = common::cpu::expected_path(class) {
                assert!(
                    cpu.contains(&format!("int8 products on {path} kernels")),
                    "as {class}: {cpu}"
                );
            }
            let saturates = common::cpu::saturates(class);
            assert_eq!(
                cpu.contains("pairs of products summed in 16 bits"),
                saturates,
                "as {class}: {cpu}"
            );
            let captioner = line("captioner");
            let warns = saturates && folder == &full_range;
            assert_eq!(
                captioner.starts_with("warn "),
                warns,
                "{} as {class}: {captioner}",
                folder.display()
            );
            if warns {
                assert!(
                    captioner.contains("captioner/export.py --quantize int8"),
                    "{captioner}"
                );
            }
        }
    }
}
