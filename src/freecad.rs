//! The worker side of the executor: `cadloop worker` embeds Python through
//! pyo3, imports FreeCAD once and serves jobs from the supervisor until told to
//! stop or its pipe closes.
//!
//! Before Python starts, the protocol pipes are moved off fds 0 and 1 to
//! close-on-exec descriptors; fd 0 becomes /dev/null and, during a job, fds 1
//! and 2 point at the job folder's `output.txt`. So whatever the generated code
//! (or FreeCAD, or a C library) prints lands in that file and can never corrupt
//! a frame. One thread (this one) owns the interpreter for the process's life.
//!
//! The Python half lives in `freecad-scripts/`: `cadloop_harness.py` runs a
//! job with the modules beside it ([`PYTHON_MODULES`]), all compiled into
//! the binary so a worker needs no source tree.

use std::ffi::CString;
use std::fs::{self, File};
use std::io::{BufReader, BufWriter};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use pyo3::exceptions::PyMemoryError;
use pyo3::prelude::*;
use pyo3::types::PyModule;

use crate::checks::CheckCall;
use crate::executor::protocol::{read_frame, write_frame, FrameError, Reply, Request};
use crate::executor::sandbox;
use crate::executor::{
    CapturedOutput, ErrorKind, ExecReport, Outcome, AREA_ENV, DEFAULT_FREECAD_LIB, FREECAD_LIB_ENV,
    MODEL_FILES, OUTPUT_FILE, STAGING_DIR,
};
use crate::mesh::Mesh;

/// The worker's Python side, compiled into the binary and imported in this
/// order (each imports only those before it); the last is the harness.
const PYTHON_MODULES: [(&std::ffi::CStr, &str); 10] = [
    (
        c"cadloop_job",
        include_str!("../freecad-scripts/cadloop_job.py"),
    ),
    (
        c"cadloop_diagnose",
        include_str!("../freecad-scripts/cadloop_diagnose.py"),
    ),
    (
        c"cadloop_macro",
        include_str!("../freecad-scripts/cadloop_macro.py"),
    ),
    (
        c"cadloop_params",
        include_str!("../freecad-scripts/cadloop_params.py"),
    ),
    (
        c"cadloop_code",
        include_str!("../freecad-scripts/cadloop_code.py"),
    ),
    (
        c"cadloop_measure",
        include_str!("../freecad-scripts/cadloop_measure.py"),
    ),
    (
        c"cadloop_parts",
        include_str!("../freecad-scripts/cadloop_parts.py"),
    ),
    (
        c"cadloop_result",
        include_str!("../freecad-scripts/cadloop_result.py"),
    ),
    (
        c"cadloop_checks",
        include_str!("../freecad-scripts/cadloop_checks.py"),
    ),
    (
        c"cadloop_harness",
        include_str!("../freecad-scripts/cadloop_harness.py"),
    ),
];

/// The descriptors a worker keeps for itself.
struct Channels {
    requests: BufReader<File>,
    replies: BufWriter<File>,
    /// The worker's own stderr, restored onto fds 1 and 2 after each job.
    log: OwnedFd,
}

impl Channels {
    /// Moves the pipes off fds 0/1 and points fd 0 at /dev/null, fd 1 at the log.
    fn take() -> std::io::Result<Channels> {
        let requests = std::io::stdin().as_fd().try_clone_to_owned()?;
        let replies = std::io::stdout().as_fd().try_clone_to_owned()?;
        let log = std::io::stderr().as_fd().try_clone_to_owned()?;
        let null = File::open("/dev/null")?;
        nix::unistd::dup2_stdin(&null)?;
        nix::unistd::dup2_stdout(&log)?;
        Ok(Channels {
            requests: BufReader::new(File::from(requests)),
            replies: BufWriter::new(File::from(replies)),
            log,
        })
    }

    fn capture_into(&self, file: &File) -> std::io::Result<()> {
        nix::unistd::dup2_stdout(file)?;
        nix::unistd::dup2_stderr(file)?;
        Ok(())
    }

    fn restore(&self) {
        // Failing to point fds back at our own stderr only loses log lines.
        let _ = nix::unistd::dup2_stdout(&self.log);
        let _ = nix::unistd::dup2_stderr(&self.log);
    }

    fn reply(&mut self, reply: &Reply, payload: &[&[u8]]) -> Result<(), FrameError> {
        write_frame(&mut self.replies, reply, payload)
    }
}

/// The entry point of `cadloop worker`.
pub fn serve() -> ExitCode {
    // Only the pipes (fds 0 and 1) and the log (fd 2) may come from the parent.
    // SAFETY: close_range only closes descriptors; none above 2 is in use yet.
    unsafe { nix::libc::syscall(nix::libc::SYS_close_range, 3u32, u32::MAX, 0u32) };
    let mut channels = match Channels::take() {
        Ok(channels) => channels,
        Err(err) => {
            eprintln!("cadloop worker: cannot set up its pipes: {err}");
            return ExitCode::from(2);
        }
    };
    let Some(area) = std::env::var_os(AREA_ENV) else {
        let message = format!("{AREA_ENV} is not set: workers are started by cadloop itself");
        let _ = channels.reply(&Reply::Fatal { message }, &[]);
        return ExitCode::from(2);
    };
    let protections = sandbox::enter(Path::new(&area));
    Python::attach(|py| {
        let harness = match start_interpreter(py) {
            Ok(started) => started,
            Err(message) => {
                let _ = channels.reply(&Reply::Fatal { message }, &[]);
                return ExitCode::from(2);
            }
        };
        let (freecad, python) = harness.versions;
        let ready = Reply::Ready {
            freecad,
            python,
            sandbox: protections.to_string(),
        };
        if channels.reply(&ready, &[]).is_err() {
            return ExitCode::from(2);
        }
        loop {
            let request = match read_frame::<Request>(&mut channels.requests) {
                Ok((request, _)) => request,
                Err(FrameError::Closed) => return ExitCode::SUCCESS,
                Err(err) => {
                    eprintln!("cadloop worker: bad request: {err}");
                    return ExitCode::from(2);
                }
            };
            match request {
                Request::Shutdown => return ExitCode::SUCCESS,
                Request::Run { code, dir, checks } => {
                    let job = HarnessJob {
                        code: &code,
                        dir: &dir,
                        checks: &checks,
                    };
                    let (report, vertices, indices) = run_job(py, &harness.module, &channels, &job);
                    let done = Reply::Done {
                        report: Box::new(report),
                        vertex_bytes: vertices.len() as u64,
                        index_bytes: indices.len() as u64,
                    };
                    if channels.reply(&done, &[&vertices, &indices]).is_err() {
                        return ExitCode::from(2);
                    }
                }
            }
        }
    })
}

struct Harness<'py> {
    module: Bound<'py, PyModule>,
    versions: (String, String),
}

/// Imports FreeCAD (before anything else: a bare `import Part` crashes) and the harness.
fn start_interpreter(py: Python<'_>) -> Result<Harness<'_>, String> {
    let lib = std::env::var_os(FREECAD_LIB_ENV)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_FREECAD_LIB));
    let describe = |err: PyErr| python_error_text(py, &err);
    let sys = py.import("sys").map_err(describe)?;
    sys.getattr("path")
        .and_then(|path| path.call_method1("append", (lib.to_string_lossy().as_ref(),)))
        .map_err(describe)?;
    sys.setattr("argv", vec!["code.py"]).map_err(describe)?;
    if let Err(err) = py.import("FreeCAD") {
        return Err(format!(
            "cannot import FreeCAD from {}: {}; install it with `sudo apt-get install freecad-python3` \
             (or set [executor] freecad_lib in cadloop.toml)",
            lib.display(),
            python_error_text(py, &err).trim()
        ));
    }
    // Tracebacks of fatal signals (and of SIGUSR1, sent before a timeout kill)
    // go to fd 2, the job's output file, so the supervisor can say where it was.
    py.run(
        c"import faulthandler, signal\nfaulthandler.enable()\nfaulthandler.register(signal.SIGUSR1, all_threads=False)\n",
        None,
        None,
    )
    .map_err(describe)?;
    prepare_thread_for_freecad(py).map_err(describe)?;
    let mut module = None;
    for (name, source) in PYTHON_MODULES {
        let file =
            CString::new(format!("{}.py", name.to_string_lossy())).map_err(|e| e.to_string())?;
        let source = CString::new(source).map_err(|e| e.to_string())?;
        module = Some(PyModule::from_code(py, &source, &file, name).map_err(describe)?);
    }
    let module = module.expect("the harness is the last module");
    module.call_method0("add_module_paths").map_err(describe)?;
    let versions_json: String = module
        .call_method0("versions")
        .and_then(|v| v.extract())
        .map_err(describe)?;
    let versions: serde_json::Value =
        serde_json::from_str(&versions_json).map_err(|e| e.to_string())?;
    let field = |name: &str| versions[name].as_str().unwrap_or("unknown").to_string();
    Ok(Harness {
        versions: (field("freecad"), field("python")),
        module,
    })
}

/// Gives this thread what FreeCAD's C++ error paths assume an interpreter
/// thread already has, so they raise Python exceptions instead of aborting.
///
/// Python makes a thread's repr-recursion list (`Py_ReprEnter`) on the first
/// repr of a list, tuple or dict in that thread. Several FreeCAD constructors
/// (`Sketcher.Constraint('EllipseMajorRadius', 'Ellipse', 50)` among them)
/// repr their arguments for the message while their parsing error is still
/// set; on a thread without that list the repr fails, PyCXX throws
/// `Py::Exception`, nothing catches it and the process aborts ("terminate
/// called after throwing an instance of 'Py::Exception'"). FreeCAD's own
/// console and GUI have made such reprs by the time a macro runs, so there
/// the same line raises FreeCAD's `TypeError`. One repr here does the same.
fn prepare_thread_for_freecad(py: Python<'_>) -> PyResult<()> {
    py.run(c"repr([()])\n", None, None)
}

/// A Python exception as the text Python would print.
fn python_error_text(py: Python<'_>, err: &PyErr) -> String {
    let formatted = py.import("traceback").and_then(|tb| {
        tb.call_method1(
            "format_exception",
            (err.get_type(py), err.value(py), err.traceback(py)),
        )
        .and_then(|lines| lines.extract::<Vec<String>>())
    });
    match formatted {
        Ok(lines) => lines.concat(),
        Err(_) => err.to_string(),
    }
}

fn error_report(kind: ErrorKind, message: String) -> ExecReport {
    ExecReport::of(Outcome::Error {
        kind,
        message,
        line: None,
        facts: None,
    })
}

/// A job's report, and its mesh's vertex and index bytes.
type JobResult = (ExecReport, Vec<u8>, Vec<u8>);

/// One job as the harness takes it.
struct HarnessJob<'a> {
    code: &'a str,
    dir: &'a Path,
    checks: &'a [CheckCall],
}

/// Runs one job in the harness; never fails: every failure becomes a report.
fn run_job(
    py: Python<'_>,
    harness: &Bound<'_, PyModule>,
    channels: &Channels,
    job: &HarnessJob<'_>,
) -> JobResult {
    let dir = job.dir;
    let staging = dir.join(STAGING_DIR);
    let output_path = dir.join(OUTPUT_FILE);
    // The supervisor empties the folder before each job (inputs may then be
    // copied in, even under a model's name); only a stale staging area goes.
    let _ = fs::remove_dir_all(&staging);
    let capture = match File::create(&output_path) {
        Ok(file) => file,
        Err(err) => {
            let message = format!("cannot write {}: {err}", output_path.display());
            return (
                error_report(ErrorKind::Crashed, message),
                Vec::new(),
                Vec::new(),
            );
        }
    };
    let called = call_harness(py, harness, channels, &capture, job);
    channels.restore();
    drop(capture);

    let (mut report, vertices, indices) = match called {
        Ok(finished) => finished,
        Err((kind, message)) => (error_report(kind, message), Vec::new(), Vec::new()),
    };
    report.output = CapturedOutput::read(&output_path).unwrap_or_default();
    if report.output.bytes == 0 {
        let _ = fs::remove_file(&output_path);
    }
    if report.is_ok() {
        let layout = report.facts().map(|f| f.part_layout()).unwrap_or_default();
        if let Err(message) = finish_exports(&staging, dir, &vertices, &indices, &layout) {
            report.outcome = Outcome::Error {
                kind: ErrorKind::Crashed,
                message,
                line: None,
                facts: report.facts().cloned(),
            };
        }
    }
    let _ = fs::remove_dir_all(&staging);
    // A refused shape's mesh comes back too (the harness sends one only
    // for a shape it built and refused), for views that show what is wrong.
    let refused = matches!(
        report.error_kind(),
        Some(ErrorKind::InvalidShape | ErrorKind::NoSolid)
    );
    if report.is_ok() || refused {
        (report, vertices, indices)
    } else {
        (report, Vec::new(), Vec::new())
    }
}

/// Runs the job in the harness with the output captured into `capture`.
/// `Err`: the harness itself failed (not the code), as (kind, message).
fn call_harness(
    py: Python<'_>,
    harness: &Bound<'_, PyModule>,
    channels: &Channels,
    capture: &File,
    job: &HarnessJob<'_>,
) -> Result<JobResult, (ErrorKind, String)> {
    let checks = serde_json::to_string(job.checks)
        .map_err(|e| (ErrorKind::Crashed, format!("cannot send the checks: {e}")))?;
    channels.capture_into(capture).map_err(|e| {
        (
            ErrorKind::Crashed,
            format!("cannot capture the output: {e}"),
        )
    })?;
    let (json, vertices, indices) = harness
        .call_method1(
            "run_job",
            (job.code, job.dir.to_string_lossy().as_ref(), checks),
        )
        .and_then(|r| r.extract::<(String, Vec<u8>, Vec<u8>)>())
        .map_err(|err| {
            if err.is_instance_of::<PyMemoryError>(py) {
                let message = "the worker ran out of memory while measuring or exporting \
                               the result; build a simpler part";
                (ErrorKind::OutOfMemory, message.to_string())
            } else {
                let text = python_error_text(py, &err);
                (ErrorKind::Crashed, format!("the harness failed:\n{text}"))
            }
        })?;
    let report = serde_json::from_str::<ExecReport>(&json).map_err(|e| {
        (
            ErrorKind::Crashed,
            format!("the harness sent a bad report: {e}"),
        )
    })?;
    Ok((report, vertices, indices))
}

/// Writes model.stl (the union) and model.glb (a node for each part, if
/// several) next to the staged STEP and FCStd, then moves all four into place.
fn finish_exports(
    staging: &Path,
    dir: &Path,
    vertices: &[u8],
    indices: &[u8],
    parts: &[crate::mesh::PartLayout],
) -> Result<(), String> {
    let mut mesh = Mesh::from_le_bytes(vertices, indices).map_err(|e| format!("bad mesh: {e}"))?;
    mesh.split_parts(parts)
        .map_err(|e| format!("bad mesh: {e}"))?;
    mesh.write_stl(&staging.join("model.stl"))
        .map_err(|e| crate::error_chain(&e))?;
    crate::glb::write(&mesh, &staging.join("model.glb")).map_err(|e| crate::error_chain(&e))?;
    for name in MODEL_FILES {
        fs::rename(staging.join(name), dir.join(name))
            .map_err(|e| format!("could not move {name} into {}: {e}", dir.display()))?;
    }
    Ok(())
}
