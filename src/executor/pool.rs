//! The pool of warm workers: at most `workers` jobs at once (a semaphore),
//! idle workers reused, a dead or worn-out worker replaced in the background
//! while its slot stays taken, so the next job finds a warm one.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tracing::Instrument;

use super::worker::{describe_status, Finished, Lost, Worker};
use super::{
    CapturedOutput, ErrorKind, ExecReport, ExecutorError, ExecutorSettings, Job, JobOutput,
    Outcome, CODE_FILE, MODEL_FILES, OUTPUT_FILE,
};
use crate::mesh::{Mesh, PARTS_DIR};

/// A pool of FreeCAD worker processes. Cheap to share behind an `Arc`.
pub struct Pool {
    settings: ExecutorSettings,
    idle: Arc<Mutex<Vec<Worker>>>,
    slots: Arc<Semaphore>,
    next_id: Arc<AtomicU64>,
    versions: (String, String),
    sandbox: String,
}

impl Pool {
    /// Starts `settings.workers` workers at once and waits until all are ready.
    pub async fn start(settings: ExecutorSettings) -> Result<Pool, ExecutorError> {
        let count = settings.workers.max(1);
        let swept = super::area::sweep_stale(&std::env::temp_dir());
        if !swept.is_empty() {
            tracing::info!(
                count = swept.len(),
                "removed the areas of workers whose cadloop was killed"
            );
        }
        let mut starting = JoinSet::new();
        for id in 0..count as u64 {
            let settings = settings.clone();
            starting.spawn(async move { Worker::spawn(&settings, id).await });
        }
        let mut workers = Vec::with_capacity(count);
        while let Some(joined) = starting.join_next().await {
            let worker = joined.map_err(ExecutorError::Starting)??;
            workers.push(worker);
        }
        let versions = (
            workers[0].freecad_version.clone(),
            workers[0].python_version.clone(),
        );
        let sandbox = workers[0].sandbox.clone();
        tracing::info!(workers = count, freecad = %versions.0, python = %versions.1, "executor pool ready");
        tracing::info!("worker sandbox: {sandbox}");
        Ok(Pool {
            slots: Arc::new(Semaphore::new(count)),
            idle: Arc::new(Mutex::new(workers)),
            next_id: Arc::new(AtomicU64::new(count as u64)),
            settings,
            versions,
            sandbox,
        })
    }

    /// FreeCAD's and the embedded Python's versions, as the workers report them.
    pub fn versions(&self) -> (&str, &str) {
        (&self.versions.0, &self.versions.1)
    }

    /// What the kernel enforced of the workers' sandbox, in words.
    pub fn sandbox(&self) -> &str {
        &self.sandbox
    }

    /// Runs a job on a warm worker. Writes `code.py` into the job folder first.
    /// Whatever the code does, the result is a report; `Err` means the executor
    /// itself could not work (job folder unwritable, no worker could start).
    pub async fn run(&self, job: Job) -> Result<JobOutput, ExecutorError> {
        let started = Instant::now();
        prepare_dir(&job)?;
        let permit = self
            .slots
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| ExecutorError::Closed)?;
        let pooled = self.idle.lock().expect("pool lock").pop();
        let mut worker = match pooled {
            Some(worker) => worker,
            None => {
                Worker::spawn(&self.settings, self.next_id.fetch_add(1, Ordering::Relaxed)).await?
            }
        };
        let timeout = job.timeout.unwrap_or(self.settings.timeout);
        let span = tracing::debug_span!("job", worker = worker.id, dir = %job.dir.display());
        let area = worker.job_area();
        let result = match clear_dir(&area).and_then(|()| copy_inputs(&job.inputs, &area)) {
            Ok(()) => {
                worker
                    .run(&job.code, &job.checks, &area, timeout)
                    .instrument(span)
                    .await
            }
            Err(err) => {
                self.idle.lock().expect("pool lock").push(worker);
                return Err(err);
            }
        };
        // The worker made the files in its own area; they move to the job's folder.
        let collected = collect_outputs(&area, &job.dir);
        let output = match result {
            Ok(Finished {
                report,
                vertices,
                indices,
            }) => {
                let recycle = worker.jobs >= self.settings.jobs_per_worker
                    || report.error_kind() == Some(ErrorKind::OutOfMemory);
                if recycle {
                    self.replace(worker, permit);
                } else {
                    self.idle.lock().expect("pool lock").push(worker);
                    drop(permit);
                }
                let (mesh, refused) = if report.is_ok() {
                    let mut mesh =
                        Mesh::from_le_bytes(&vertices, &indices).map_err(ExecutorError::Mesh)?;
                    // An ok report means a valid solid, tessellated with outward normals.
                    mesh.closed = true;
                    let layout = report.facts().map(|f| f.part_layout()).unwrap_or_default();
                    mesh.split_parts(&layout).map_err(ExecutorError::Mesh)?;
                    write_part_files(&job.dir, &mesh)?;
                    (Some(mesh), None)
                } else {
                    (None, refused_mesh(&report, &vertices, &indices))
                };
                JobOutput {
                    report,
                    mesh,
                    refused,
                }
            }
            Err(lost) => {
                tracing::warn!(
                    worker = worker.id,
                    ?lost,
                    "worker lost; starting a replacement"
                );
                self.replace(worker, permit);
                JobOutput {
                    report: lost_report(&lost, &job, timeout),
                    mesh: None,
                    refused: None,
                }
            }
        };
        collected?;
        let mut output = output;
        output.report.timings.total_ms = Some(started.elapsed().as_secs_f64() * 1000.0);
        Ok(output)
    }

    /// Retires a worker and starts its successor; the slot stays taken until it is ready.
    fn replace(&self, old: Worker, permit: OwnedSemaphorePermit) {
        let settings = self.settings.clone();
        let idle = self.idle.clone();
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        tokio::spawn(async move {
            old.shutdown().await;
            match Worker::spawn(&settings, id).await {
                Ok(worker) => idle.lock().expect("pool lock").push(worker),
                // The next job will try to start one itself and report the error.
                Err(err) => {
                    tracing::warn!(worker = id, "could not start a replacement worker: {err}")
                }
            }
            drop(permit);
        });
    }

    /// Stops every idle worker. Jobs still running finish first.
    pub async fn shutdown(&self) {
        let all = self
            .slots
            .acquire_many(self.settings.workers.max(1) as u32)
            .await;
        let workers: Vec<Worker> = std::mem::take(&mut *self.idle.lock().expect("pool lock"));
        for worker in workers {
            worker.shutdown().await;
        }
        drop(all);
        self.slots.close();
    }
}

/// Creates the job's folder, writes code.py and removes the models and output
/// of an earlier job there, so the folder never mixes two runs.
fn prepare_dir(job: &Job) -> Result<(), ExecutorError> {
    let err = |source| ExecutorError::JobDir {
        dir: job.dir.clone(),
        source,
    };
    std::fs::create_dir_all(&job.dir).map_err(err)?;
    for name in MODEL_FILES.iter().chain([&OUTPUT_FILE]) {
        crate::files::remove_file_if_present(&job.dir.join(name)).map_err(err)?;
    }
    crate::files::remove_dir_if_present(&job.dir.join(PARTS_DIR)).map_err(err)?;
    std::fs::write(job.dir.join(CODE_FILE), &job.code).map_err(err)
}

/// A result of several parts: each part's STL in the job's `parts/` folder.
fn write_part_files(dir: &Path, mesh: &Mesh) -> Result<(), ExecutorError> {
    if mesh.parts.is_empty() {
        return Ok(());
    }
    let parts = dir.join(PARTS_DIR);
    std::fs::create_dir_all(&parts).map_err(|source| ExecutorError::JobDir {
        dir: parts.clone(),
        source,
    })?;
    mesh.write_part_stls(&parts).map_err(ExecutorError::Mesh)
}

/// Empties a worker's job area before a job. The folder itself stays: it is
/// the worker's working directory.
fn clear_dir(dir: &Path) -> Result<(), ExecutorError> {
    let err = |source| ExecutorError::JobDir {
        dir: dir.to_path_buf(),
        source,
    };
    for entry in std::fs::read_dir(dir).map_err(err)? {
        let path = entry.map_err(err)?.path();
        let removed = if path.is_dir() && !path.is_symlink() {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
        removed.map_err(err)?;
    }
    Ok(())
}

/// Copies a job's input files into the worker's area, under their file names.
fn copy_inputs(inputs: &[PathBuf], area: &Path) -> Result<(), ExecutorError> {
    for input in inputs {
        let err = |source| ExecutorError::Input {
            path: input.clone(),
            source,
        };
        let name = input.file_name().ok_or_else(|| {
            err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "not a file name",
            ))
        })?;
        std::fs::copy(input, area.join(name)).map_err(err)?;
    }
    Ok(())
}

/// Moves the files a job leaves (models, printed output) from the worker's
/// area into the job's folder; anything else the code wrote stays behind and
/// goes with the area. A rename where possible, else a copy through a
/// temporary name, so no half-copied model appears under its real name.
fn collect_outputs(area: &Path, dir: &Path) -> Result<(), ExecutorError> {
    let err = |source| ExecutorError::JobDir {
        dir: dir.to_path_buf(),
        source,
    };
    for name in MODEL_FILES.iter().chain([&OUTPUT_FILE]) {
        let from = area.join(name);
        // Only regular files: a symlink the code planted (say to a secret)
        // must not turn into a copy of its target in the user's folder.
        match std::fs::symlink_metadata(&from) {
            Ok(meta) if meta.file_type().is_file() => {}
            _ => continue,
        }
        let to = dir.join(name);
        if std::fs::rename(&from, &to).is_err() {
            let partial = dir.join(format!(".{name}.partial"));
            std::fs::copy(&from, &partial).map_err(err)?;
            std::fs::rename(&partial, &to).map_err(err)?;
        }
    }
    Ok(())
}

/// The report for a job whose worker timed out, crashed or broke the protocol.
fn lost_report(lost: &Lost, job: &Job, timeout: Duration) -> ExecReport {
    let output = CapturedOutput::read(&job.dir.join(OUTPUT_FILE)).unwrap_or_default();
    let line = innermost_code_line(&output.text);
    let at = line
        .map(|n| {
            format!(
                " (it was at {CODE_FILE} line {n}: {})",
                source_line(&job.code, n)
            )
        })
        .unwrap_or_default();
    let allocation = allocation_failure(&output.text);
    let (kind, message) = match lost {
        Lost::TimedOut => (
            ErrorKind::Timeout,
            format!(
                "the script did not finish within {:.0} s and was stopped{at}; look for an endless loop \
                 or an operation that is far too expensive (thousands of booleans or fillets)",
                timeout.as_secs_f64()
            ),
        ),
        Lost::Died(Some(status)) if killed_by(*status, nix::libc::SIGSYS) => (
            ErrorKind::Sandbox,
            format!(
                "the script tried to start a process or open a network connection{at}, which the sandbox \
                 forbids: generated code may only build geometry with FreeCAD"
            ),
        ),
        Lost::Died(Some(status)) if killed_by(*status, nix::libc::SIGKILL) => (
            ErrorKind::OutOfMemory,
            format!(
                "the worker was killed by SIGKILL{at}, most likely by the kernel for using too much memory; \
                 build the part with fewer or simpler operations"
            ),
        ),
        Lost::Died(Some(_)) if allocation.is_some() => (
            ErrorKind::OutOfMemory,
            format!(
                "the worker ran out of memory{at} (\"{}\"); build the part with fewer or simpler \
                 operations (fuse fewer shapes at once, fewer features), or give it more with \
                 --memory-limit",
                allocation.unwrap_or_default()
            ),
        ),
        Lost::Died(Some(status))
            if std::os::unix::process::ExitStatusExt::signal(status).is_some()
                || fatal_error(&output.text).is_some() =>
        {
            let cause = fatal_error(&output.text).unwrap_or_else(|| describe_status(*status));
            (
                ErrorKind::Crashed,
                format!(
                    "the FreeCAD interpreter crashed ({cause}){at}; avoid ctypes and low-level calls, \
                     and check the inputs of the operation on that line"
                ),
            )
        }
        Lost::Died(Some(status)) => (
            ErrorKind::Crashed,
            format!(
                "the script ended the interpreter process ({}){at}; do not call os._exit or \
                 similar: let the script end and leave the part in `result`",
                describe_status(*status)
            ),
        ),
        Lost::Died(None) => (
            ErrorKind::Crashed,
            format!("the worker process stopped answering{at}"),
        ),
        Lost::Protocol(detail) => (
            ErrorKind::Crashed,
            format!("the worker sent a broken reply ({detail}){at}"),
        ),
    };
    ExecReport {
        output,
        ..ExecReport::of(Outcome::Error {
            kind,
            message,
            line,
            facts: None,
        })
    }
}

fn killed_by(status: std::process::ExitStatus, signal: i32) -> bool {
    std::os::unix::process::ExitStatusExt::signal(&status) == Some(signal)
}

/// What faulthandler says killed the interpreter ("Segmentation fault", "Aborted").
/// FreeCAD's own crash handler turns signals into `exit(1)`, so the status alone hides them.
fn fatal_error(output: &str) -> Option<String> {
    let marker = "Fatal Python error: ";
    let at = output.rfind(marker)? + marker.len();
    Some(output[at..].lines().next()?.trim().to_string())
}

/// The line where the worker's output says an allocation failed: glibc,
/// C++ and OpenCASCADE say so in their own words when a process reaches its
/// memory limit, and the process then aborts or exits.
fn allocation_failure(output: &str) -> Option<&str> {
    // Lower case, as each line is compared.
    const SIGNS: [&str; 5] = [
        "cannot allocate memory",
        "std::bad_alloc",
        "standard_outofmemory",
        "memoryerror",
        "out of memory",
    ];
    output
        .lines()
        .find(|line| {
            let lower = line.to_ascii_lowercase();
            SIGNS.iter().any(|sign| lower.contains(sign))
        })
        .map(str::trim)
}

/// The innermost `code.py` frame of a faulthandler dump (it prints innermost first).
fn innermost_code_line(output: &str) -> Option<u32> {
    let marker = format!("File \"{CODE_FILE}\", line ");
    let start = output.rfind("most recent call first")?;
    let rest = &output[start..];
    let at = rest.find(&marker)? + marker.len();
    let digits: String = rest[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

fn source_line(code: &str, line: u32) -> String {
    code.lines()
        .nth(line.saturating_sub(1) as usize)
        .unwrap_or("")
        .trim()
        .to_string()
}

/// The mesh of a shape the worker refused, its free edges marked; `None`
/// when the worker sent none. Only a help for the eye: a mesh that cannot be
/// read is left out, not an error.
fn refused_mesh(report: &ExecReport, vertices: &[u8], indices: &[u8]) -> Option<Mesh> {
    if indices.is_empty() {
        return None;
    }
    match Mesh::from_le_bytes(vertices, indices) {
        Ok(mut mesh) => {
            mesh.marked = report.free_edges.clone();
            Some(mesh)
        }
        Err(err) => {
            tracing::warn!(error = %err, "the refused shape's mesh cannot be read; no views of it");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_innermost_code_frame_of_the_last_dump_is_found() {
        let dump = "hello\nFatal Python error: Segmentation fault\n\nCurrent thread 0x01 (most recent call first):\n  \
                    File \"/usr/lib/python3.11/ctypes/__init__.py\", line 519 in string_at\n  \
                    File \"code.py\", line 7 in crash\n  File \"code.py\", line 9 in <module>\n";
        assert_eq!(innermost_code_line(dump), Some(7));
        assert_eq!(
            innermost_code_line("no dump here, File \"code.py\", line 3"),
            None
        );
    }
}
