//! Older CPU classes presented to a process by captioner/cpu_as.c (CPUID
//! faulting hides this machine's newer features), so that the kernels ONNX
//! Runtime picks for each class run, natively, on this one machine.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// Each class cpu_as.c presents, with the integer path `cadloop doctor`
/// names for it.
pub const CLASSES: [(&str, &str); 4] = [
    ("avx2", "AVX2"),
    ("avx512", "AVX-512 without VNNI"),
    ("avx-vnni", "AVX-VNNI"),
    ("avx512-vnni", "AVX-512 VNNI"),
];

/// cpu_as.c built for this test process.
fn library() -> &'static Path {
    static LIBRARY: OnceLock<PathBuf> = OnceLock::new();
    LIBRARY.get_or_init(|| {
        let library = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("cpu_as-{}.so", std::process::id()));
        let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("captioner/cpu_as.c");
        let built = Command::new("cc")
            .args(["-O2", "-shared", "-fPIC", "-o"])
            .arg(&library)
            .arg(&source)
            .output()
            .expect("cc runs (scripts/dev setup needs gcc)");
        assert!(built.status.success(), "{}", super::text(&built.stderr));
        library
    })
}

/// Makes `command` see `class`'s CPU ("native": this machine's own).
pub fn present(command: &mut Command, class: &str) {
    command
        .env("LD_PRELOAD", library())
        .env("CADLOOP_CPU_AS", class);
}

/// The classes this machine can present: it has their features and can
/// fault on cpuid (a probe runs `true` as each). On a machine that cannot,
/// only "native" runs, and the tests say so.
pub fn classes() -> Vec<&'static str> {
    let mut found = vec!["native"];
    for (class, _) in CLASSES {
        let mut probe = Command::new("true");
        present(&mut probe, class);
        let out = probe.output().expect("true runs");
        if out.status.success() {
            found.push(class);
        } else {
            eprintln!(
                "this machine cannot present {class}: {}",
                super::text(&out.stderr).trim()
            );
        }
    }
    eprintln!("CPU classes tested: {}", found.join(", "));
    found
}

/// Whether a presented class's u8×s8 kernels sum pairs of products in 16
/// bits, so that full-range int8 weights would saturate there.
pub fn saturates(class: &str) -> bool {
    matches!(class, "avx2" | "avx512")
}

/// The integer path `cadloop doctor` should name for a presented class.
pub fn expected_path(class: &str) -> Option<&'static str> {
    CLASSES
        .iter()
        .find(|(c, _)| *c == class)
        .map(|(_, path)| *path)
}
