//! The `cadloop` binary under test as a command, free of the caller's
//! settings: shared by the tests' helpers and the benchmarks (which include
//! this file on its own).

#![allow(dead_code)]

use std::path::Path;
use std::process::Command;

/// `cadloop` to run in `dir`, with none of the caller's cadloop, LLM, log or
/// terminal settings.
pub fn cadloop_command(dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_cadloop"));
    command
        .current_dir(dir)
        .env_remove("CADLOOP_CONFIG")
        .env_remove("CADLOOP_CAPTIONER")
        .env_remove("RUST_LOG")
        .env_remove("OPENAI_BASE_URL")
        .env_remove("OPENAI_API_KEY")
        .env_remove("CADLOOP_MODEL")
        .env_remove("COLUMNS");
    command
}
