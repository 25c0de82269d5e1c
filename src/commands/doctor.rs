//! `cadloop doctor`: checks each part of the environment (FreeCAD, the
//! embedded interpreter, ONNX Runtime, the CPU's integer kernels, the sheet's
//! font, the captioner, the LLM settings) and, for what is missing, prints
//! the command that fixes it.
//! Required parts fail the check (exit 2); optional ones only warn.

use std::fmt;
use std::io::Write as _;
use std::time::Instant;

use crate::cli::{DoctorArgs, GlobalArgs, LimitArgs};
use crate::executor::{ExecutorSettings, Pool};

use super::settings::{no_captioner_hint, Settings};
use super::ExitStatus;

/// How a doctor line came out.
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

/// Runs every check; starting a real worker is part of it. The settings are
/// resolved as the other commands resolve them, from the same flags,
/// environment variables and file.
pub async fn checks(global: &GlobalArgs, args: &DoctorArgs) -> Vec<Check> {
    let mut out = Vec::new();
    // A broken file is reported here; the later checks then use the defaults.
    let settings = Settings::read(global).unwrap_or_else(|err| {
        out.push(check("settings", Status::Fail, format!("{err:#}")));
        Settings::defaults()
    });
    match settings.exec(&LimitArgs::default(), None, Some(1)) {
        Err(err) => out.push(check("settings", Status::Fail, format!("{err:#}"))),
        Ok(exec) => out.extend(freecad_checks(exec.executor).await),
    }
    out.push(match crate::caption::find_onnxruntime() {
        Ok(path) => check("onnxruntime", Status::Ok, path.display().to_string()),
        Err(err) => check("onnxruntime", Status::Fail, err.to_string()),
    });
    out.push(cpu_check());
    out.push(match crate::render::load_font() {
        Ok(_) => check("font", Status::Ok, "found for the contact sheet's labels"),
        Err(err) => check("font", Status::Fail, crate::error_chain(&err)),
    });
    out.push(captioner_check(&settings, args));
    out.push(llm_check(&settings, args));
    out
}

/// FreeCAD's modules, then a real worker: the interpreter and the sandbox.
async fn freecad_checks(settings: ExecutorSettings) -> Vec<Check> {
    let module = settings.freecad_lib.join("FreeCAD.so");
    if !module.is_file() {
        return vec![check(
            "FreeCAD",
            Status::Fail,
            format!(
                "{} not found; install it with `sudo apt-get install freecad-python3`",
                module.display()
            ),
        )];
    }
    let mut out = vec![check(
        "FreeCAD",
        Status::Ok,
        format!("modules in {}", settings.freecad_lib.display()),
    )];
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
        Err(err) => out.push(check("interpreter", Status::Fail, crate::error_chain(&err))),
    }
    out
}

/// The CPU features that decide ONNX Runtime's int8 kernels, the kernels it
/// takes, and whether int8 captioning is advised here.
fn cpu_check() -> Check {
    let path = crate::caption::cpu::IntegerPath::detect();
    let features = crate::caption::cpu::features();
    let features = if features.is_empty() {
        "none of AVX2, AVX-512, VNNI, AMX".to_string()
    } else {
        features.join(", ")
    };
    check(
        "CPU",
        Status::Ok,
        format!(
            "{} with {features}; int8 products on {path} kernels: {}",
            std::env::consts::ARCH,
            path.advice()
        ),
    )
}

/// Loads the configured captioner model for real (ONNX Runtime included).
fn captioner_check(settings: &Settings, args: &DoctorArgs) -> Check {
    let dir = match settings.caption(args.captioner.as_deref(), None) {
        Err(err) => return check("captioner", Status::Fail, format!("{err:#}")),
        Ok(None) => {
            return check(
                "captioner",
                Status::Warn,
                format!("no captioner model configured: {}", no_captioner_hint()),
            )
        }
        Ok(Some(captioner)) => captioner.model,
    };
    match crate::caption::Captioner::load(&dir, 1) {
        Ok(model) => {
            let m = model.manifest();
            let described = format!(
                "{} ({} decoder layers, {}² images, vocabulary {})",
                dir.display(),
                m.layers,
                m.image_size,
                m.vocab_size
            );
            if model.exact_u8u8() {
                check(
                    "captioner",
                    Status::Warn,
                    format!(
                        "{described}: its int8 weights use the full range, which this CPU's \
                         kernels would saturate, so it runs on slower exact ones; export it again \
                         with captioner/export.py --quantize int8"
                    ),
                )
            } else {
                check("captioner", Status::Ok, described)
            }
        }
        Err(err) => check("captioner", Status::Fail, crate::error_chain(&err)),
    }
}

/// The LLM settings as `generate` would resolve them (no request is sent).
fn llm_check(settings: &Settings, args: &DoctorArgs) -> Check {
    match settings.llm(&args.endpoint) {
        Ok(llm) => check(
            "LLM",
            Status::Ok,
            format!(
                "endpoint {}, model {}, API key {}",
                llm.endpoint(),
                llm.model,
                if llm.api_key.is_some() {
                    "set"
                } else {
                    "unset"
                }
            ),
        ),
        Err(err) => check("LLM", Status::Warn, one_line(&format!("{err:#}"))),
    }
}

/// `cadloop doctor`.
pub async fn run(global: &GlobalArgs, args: &DoctorArgs) -> anyhow::Result<ExitStatus> {
    let checks = checks(global, args).await;
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

/// A message on one line of the report: its lines and indents joined by single spaces.
fn one_line(message: &str) -> String {
    message.split_whitespace().collect::<Vec<_>>().join(" ")
}
