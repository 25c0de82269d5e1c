//! cadloop turns a sentence into a CAD model and checks its own work: an LLM
//! writes FreeCAD Python, worker processes run it, the result is rendered,
//! captioned and compared with the prompt, and the loop refines it.
//!
//! # Layout
//! - [`batch`]: many prompts: input files, shards, the results log, bounded concurrency.
//! - [`bench`]: benchmark datasets, per-case scores, summary tables.
//! - [`caption`]: BLIP under ONNX Runtime: captions for the rendered views.
//! - [`checks`]: the requirement checks the LLM writes, read as data and tallied.
//! - [`cli`]: the command line (clap types only).
//! - [`config`]: checked settings from flags, environment and `cadloop.toml`.
//! - [`commands`]: one file per subcommand (doctor included), on top of the modules below.
//! - [`critique`]: geometry facts in words; the verdict and rewrite read from a reply.
//! - [`executor`]: the supervisor's pool of `cadloop worker` processes.
//! - [`files`]: output files written whole or not at all.
//! - [`glb`]: the mesh as binary glTF (model.glb), written and read.
//! - [`freecad`]: the worker side: embedded Python, FreeCAD, the harness.
//! - [`interrupt`]: SIGINT and SIGTERM as one stop request the loop waits on.
//! - [`llm`]: the OpenAI-compatible client, retries, code extraction.
//! - [`mesh`]: the triangle mesh passed from the executor onwards, and its STL files.
//! - [`metrics`]: point-cloud distance, Hausdorff, IoGT and voxel IoU against a reference.
//! - [`params`]: a script's named number constants, and the tweak that rewrites them.
//! - [`pipeline`]: the loop as a state machine: generate, execute, repair, look, refine.
//! - [`progress`]: the live progress line on a terminal.
//! - [`prompts`]: the prompt templates of `prompts/`, filled.
//! - [`report`]: the run record (`run.json`) and the LLM transcript.
//! - [`run`]: the run folder as a type: its lock, layout, record, transcript and result.
//! - [`studio`]: `cadloop serve`, the local web app: pages, viewer, tweak API, guard.
//! - [`render`]: seven orthographic views and a contact sheet, on the CPU.

pub mod batch;
pub mod bench;
pub mod caption;
pub mod checks;
pub mod cli;
pub mod commands;
pub mod config;
pub mod critique;
pub mod executor;
pub mod export;
pub mod files;
pub mod freecad;
pub mod glb;
pub mod interrupt;
pub mod llm;
pub mod mcp;
pub mod mesh;
pub mod metrics;
pub mod params;
pub mod pipeline;
pub mod progress;
pub mod prompts;
pub mod render;
pub mod report;
pub mod run;
pub mod studio;

/// An error and its causes on one line, `outer: cause: root cause`, for
/// records and reports that keep errors as text.
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
