//! `cadloop doctor`: checks each part of the environment (FreeCAD, the
//! embedded interpreter, ONNX Runtime, the sheet's font, the captioner, the
//! LLM settings) and, for what is missing, prints the command that fixes it.
//! Required parts fail the check (exit 2); optional ones only warn.

use std::fmt;
use std::io::Write as _;
use std::time::Instant;

use crate::cli::GlobalArgs;
use crate::config::{self, ExecutorFlags};
use crate::executor::Pool;

use super::ExitStatus;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Ok,
    Warn,
    Fail,
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(match self {
            Status::Ok => "ok",
            Status::Warn => "warn",
            Status::Fail => "FAIL",
        })
    }
}

/// One line of the doctor's report.
#[derive(Debug, Clone)]
pub struct Check {
    pub part: &'static str,
    pub status: Status,
    pub detail: String,
}

fn check(part: &'static str, status: Status, detail: impl Into<String>) -> Check {
    Check {
        part,
        status,
        detail: detail.into(),
    }
}

/// Runs every check; starting a real worker is part of it.
pub async fn checks(global: &GlobalArgs) -> Vec<Check> {
    let mut out = Vec::new();
    // Read once; a broken file is reported here and the later checks use defaults.
    let file = config::load_file(global.config.as_deref()).map(|(file, _)| file);
    let settings = file
        .as_ref()
        .map_err(|e| format!("{e:#}"))
        .and_then(|file| {
            let flags = ExecutorFlags {
                workers: Some(1),
                ..Default::default()
            };
            config::executor_settings(&file.executor, &flags).map_err(|e| e.to_string())
        });
    let (captioner, llm) = file
        .map(|file| (file.captioner, file.llm))
        .unwrap_or_default();
    match settings {
        Err(message) => out.push(check("settings", Status::Fail, message)),
        Ok(settings) => {
            let module = settings.freecad_lib.join("FreeCAD.so");
            if module.is_file() {
                out.push(check(
                    "FreeCAD",
                    Status::Ok,
                    format!("modules in {}", settings.freecad_lib.display()),
                ));
                let started = Instant::now();
                match Pool::start(settings).await {
                    Ok(pool) => {
                        let (freecad, python) = pool.versions();
                        out.push(check(
                            "interpreter",
                            Status::Ok,
                            format!(
                                "FreeCAD {freecad} on embedded Python {python}; a worker started in {:.2} s",
                                started.elapsed().as_secs_f64()
                            ),
                        ));
                        let sandbox = pool.sandbox().to_string();
                        let complete = sandbox.contains("landlock: fully enforced")
                            && !sandbox.contains("seccomp: failed");
                        out.push(check(
                            "sandbox",
                            if complete { Status::Ok } else { Status::Warn },
                            sandbox,
                        ));
                        pool.shutdown().await;
                    }
                    Err(err) => out.push(check("interpreter", Status::Fail, format!("{err}"))),
                }
            } else {
                out.push(check(
                    "FreeCAD",
                    Status::Fail,
                    format!(
                        "{} not found; install it with `sudo apt-get install freecad-python3`",
                        module.display()
                    ),
                ));
            }
        }
    }
    out.push(match crate::caption::find_onnxruntime() {
        Ok(path) => check("onnxruntime", Status::Ok, path.display().to_string()),
        Err(err) => check("onnxruntime", Status::Fail, err.to_string()),
    });
    out.push(match crate::render::load_font() {
        Ok(_) => check("font", Status::Ok, "found for the contact sheet's labels"),
        Err(err) => check("font", Status::Fail, err.to_string()),
    });
    out.push(captioner_check(&captioner));
    out.push(llm_check(&llm));
    out
}

/// Loads the configured captioner model for real (ONNX Runtime included).
fn captioner_check(file: &config::CaptionerFile) -> Check {
    let flag = std::env::var_os(config::env::CAPTIONER).map(std::path::PathBuf::from);
    let Some(dir) = config::captioner_dir(flag.as_deref(), file) else {
        return check(
            "captioner",
            Status::Warn,
            "no captioner model configured (CADLOOP_CAPTIONER or [captioner] model); \
             make one with captioner/export.py, see captioner/README.md",
        );
    };
    match crate::caption::Captioner::load(&dir, 1) {
        Ok(model) => {
            let m = model.manifest();
            check(
                "captioner",
                Status::Ok,
                format!(
                    "{} ({} decoder layers, {}² images, vocabulary {})",
                    dir.display(),
                    m.layers,
                    m.image_size,
                    m.vocab_size
                ),
            )
        }
        Err(err) => check("captioner", Status::Fail, err.to_string()),
    }
}

/// The LLM settings as `generate` would resolve them (no request is sent).
fn llm_check(file: &config::LlmFile) -> Check {
    let flags = config::LlmFlags {
        base_url: std::env::var(config::env::BASE_URL).ok(),
        model: std::env::var(config::env::MODEL).ok(),
        ..Default::default()
    };
    let key = config::api_key_from_env();
    let has_key = key.is_some();
    match config::llm_settings(file, &flags, key) {
        Ok(settings) => check(
            "LLM",
            Status::Ok,
            format!(
                "endpoint {}, model {}, API key {}",
                settings.endpoint(),
                settings.model,
                if has_key { "set" } else { "unset" }
            ),
        ),
        Err(err) => check("LLM", Status::Warn, err.to_string().replace('\n', " ")),
    }
}

/// `cadloop doctor`.
pub async fn run(global: &GlobalArgs) -> anyhow::Result<ExitStatus> {
    let checks = checks(global).await;
    let mut stdout = std::io::stdout().lock();
    for c in &checks {
        writeln!(stdout, "{:<5} {:<12} {}", c.status, c.part, c.detail)?;
    }
    Ok(if checks.iter().any(|c| c.status == Status::Fail) {
        ExitStatus::Error
    } else {
        ExitStatus::Success
    })
}
