//! The `cadloop` binary under test as a command, free of the caller's
//! settings: shared by the tests' helpers and the benchmarks (which include
//! this file on its own).

#![allow(dead_code)]

use std::path::Path;
use std::process::Command;

use cadloop::config::env;

/// `cadloop` to run in `dir`, with none of the caller's cadloop, LLM, log or
/// terminal settings.
pub fn cadloop_command(dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_cadloop"));
    command
        .current_dir(dir)
        .env_remove(env::CONFIG)
        .env_remove(env::CAPTIONER)
        .env_remove(env::BASE_URL)
        .env_remove(env::API_KEY)
        .env_remove(env::MODEL)
        .env_remove("RUST_LOG")
        .env_remove("COLUMNS");
    command
}
