//! The project's venv Python (scripts/dev setup) and the captioner's scripts.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The venv's interpreter, checked for the packages the captioner's scripts need.
pub fn python() -> PathBuf {
    venv_python_with(&["torch", "transformers", "sacrebleu", "onnxruntime"])
}

/// The venv's interpreter, checked for `modules` (which scripts/dev setup installs).
pub fn venv_python_with(modules: &[&str]) -> PathBuf {
    let python = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
    let ready = Command::new(&python)
        .args(["-c", &format!("import {}", modules.join(", "))])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ready,
        "{} lacks one of {}: run scripts/dev setup",
        python.display(),
        modules.join(", ")
    );
    python
}

/// A file of `captioner/`.
pub fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("captioner")
        .join(name)
}

/// The venv's Python on one core, in `dir`: tests run side by side, and
/// torch's threads slow each other down badly when they oversubscribe.
pub fn python_command(dir: &Path) -> Command {
    let mut command = Command::new(python());
    command
        .current_dir(dir)
        .env("PYTHONHASHSEED", "0")
        .env("OMP_NUM_THREADS", "1");
    command
}

pub fn run_python(dir: &Path, args: &[&str]) -> Output {
    python_command(dir)
        .args(args)
        .output()
        .expect("python runs")
}

/// Copies a captioner folder to `out` and quantises its graphs to int8:
/// as captioner/export.py does (weights within ±64, recorded in the
/// manifest), or, with `full_range`, as exports before it did (weights in
/// -127..127, no record).
pub fn quantized_copy(dir: &Path, folder: &Path, out: &Path, full_range: bool) {
    std::fs::create_dir_all(out).unwrap();
    for file in std::fs::read_dir(folder).unwrap().flatten() {
        std::fs::copy(file.path(), out.join(file.file_name())).unwrap();
    }
    let code = if full_range {
        // From the copies in `out`: the quantiser writes scratch files beside
        // its input, which tests running side by side must not share.
        format!(
            "import os\n\
             from onnxruntime.quantization import QuantType, quantize_dynamic\n\
             for name in ('vision.onnx', 'decoder_init.onnx', 'decoder_step.onnx'):\n    \
             path = {out:?} + '/' + name\n    \
             quantize_dynamic(path, path + '.int8', weight_type=QuantType.QInt8, per_channel=True)\n    \
             os.replace(path + '.int8', path)\n",
            out = out.to_str().unwrap()
        )
    } else {
        format!(
            "import sys; sys.path.insert(0, {:?}); import export; export.quantize({:?})",
            script("").to_str().unwrap(),
            out.to_str().unwrap()
        )
    };
    let done = run_python(dir, &["-c", &code]);
    super::assert_exit(&done, 0);
}
