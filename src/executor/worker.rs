//! One `cadloop worker` process as the supervisor sees it: spawned with limits
//! and a scrubbed environment, fed one job at a time, killed on timeout.
//!
//! Limits are set in the child between fork and exec, so they hold before
//! Python or any generated code runs: an address-space cap (RLIMIT_AS), a
//! file-size cap, no core dumps, death with the parent, and its own process
//! group so a kill also takes anything the code started.

use crate::checks::CheckCall;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use nix::sys::resource::{setrlimit, Resource};
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

use super::area::Area;
use super::protocol::{self, FrameError, Reply, Request};
use super::{
    ExecReport, ExecutorError, ExecutorSettings, ALLOWED_IMPORTS_ENV, AREA_ENV, FREECAD_LIB_ENV,
};

/// No single file a script writes (its printed output included) may exceed this.
const FILE_SIZE_LIMIT: u64 = 2 * 1024 * 1024 * 1024;
/// How long a worker gets to dump its Python stack after SIGUSR1, before SIGKILL.
const STACK_DUMP_GRACE: Duration = Duration::from_millis(150);
/// The only environment variables a worker inherits (no API keys, no user secrets).
const INHERITED_ENV: [&str; 2] = ["RUST_LOG", "RUST_BACKTRACE"];

/// A worker process that has reported ready.
pub struct Worker {
    pub id: u64,
    pub jobs: u32,
    pub freecad_version: String,
    pub python_version: String,
    /// What the kernel enforced of the sandbox, as the worker reported it.
    pub sandbox: String,
    child: Child,
    pid: i32,
    requests: ChildStdin,
    replies: ChildStdout,
    /// The worker's area: `job/` (where each job's files are made), `home/`
    /// and `tmp/`; the only place the sandbox lets it write. Removed with the worker.
    area: Area,
}

/// A finished exchange: the worker's report and mesh bytes.
pub struct Finished {
    pub report: ExecReport,
    pub vertices: Vec<u8>,
    pub indices: Vec<u8>,
}

/// A job that did not come back.
#[derive(Debug)]
pub enum Lost {
    /// The job ran past its time and the worker was killed.
    TimedOut,
    /// The worker died; its exit status (None if it could not be collected).
    Died(Option<ExitStatus>),
    /// The worker answered with something that is not a report.
    Protocol(String),
}

impl Worker {
    /// Starts a worker and waits until FreeCAD is imported.
    pub async fn spawn(settings: &ExecutorSettings, id: u64) -> Result<Worker, ExecutorError> {
        let spawn_err = |source| ExecutorError::Spawn {
            exe: settings.worker_exe.clone(),
            source,
        };
        let area = Area::create().map_err(spawn_err)?;
        let memory_bytes = settings.memory_limit_mib.saturating_mul(1024 * 1024);
        let mut command = worker_command(settings, &area, memory_bytes);
        let mut child = command.spawn().map_err(|source| ExecutorError::Spawn {
            exe: settings.worker_exe.clone(),
            source,
        })?;
        let pid = child.id().map(|p| p as i32).unwrap_or(0);
        let requests = child.stdin.take().expect("stdin is piped");
        let mut replies = child.stdout.take().expect("stdout is piped");
        let stderr = child.stderr.take().expect("stderr is piped");
        tokio::spawn(forward_log(id, stderr));

        let ready = tokio::time::timeout(settings.startup_timeout, protocol::receive(&mut replies));
        let (freecad_version, python_version, sandbox) = match ready.await {
            Ok(Ok((
                Reply::Ready {
                    freecad,
                    python,
                    sandbox,
                },
                _,
            ))) => (freecad, python, sandbox),
            Ok(Ok((Reply::Fatal { message }, _))) => {
                return Err(ExecutorError::Startup { message });
            }
            Ok(Ok((other, _))) => {
                return Err(ExecutorError::Protocol(format!(
                    "expected ready, got {other:?}"
                )))
            }
            Ok(Err(err)) => {
                let status = child.wait().await.ok();
                let message = match status {
                    Some(status) => {
                        format!(
                            "the worker exited ({}) before it was ready: {err}",
                            describe_status(status)
                        )
                    }
                    None => format!("the worker's pipe failed: {err}"),
                };
                let hint = if status.and_then(|s| s.signal()).is_some() || memory_bytes < 512 << 20
                {
                    "; if the memory limit is small, raise it (--memory-limit)"
                } else {
                    ""
                };
                return Err(ExecutorError::Startup {
                    message: format!("{message}{hint}"),
                });
            }
            Err(_) => {
                let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
                return Err(ExecutorError::StartupTimeout(settings.startup_timeout));
            }
        };
        tracing::debug!(worker = id, pid, freecad = %freecad_version, "worker ready");
        Ok(Worker {
            id,
            jobs: 0,
            freecad_version,
            python_version,
            child,
            pid,
            requests,
            replies,
            sandbox,
            area,
        })
    }

    /// The folder where the worker makes a job's files.
    pub fn job_area(&self) -> PathBuf {
        self.area.path().join("job")
    }

    /// Sends a job and waits for it, at most `timeout`. On any loss the worker is dead.
    pub async fn run(
        &mut self,
        code: &str,
        checks: &[CheckCall],
        dir: &Path,
        timeout: Duration,
    ) -> Result<Finished, Lost> {
        self.jobs += 1;
        let request = Request::Run {
            code: code.to_string(),
            dir: dir.to_path_buf(),
            checks: checks.to_vec(),
        };
        let exchange = async {
            protocol::send(&mut self.requests, &request).await?;
            protocol::receive::<Reply>(&mut self.replies).await
        };
        match tokio::time::timeout(timeout, exchange).await {
            Ok(Ok((
                Reply::Done {
                    report,
                    vertex_bytes,
                    index_bytes,
                },
                mut payload,
            ))) => {
                if payload.len() as u64 != vertex_bytes + index_bytes {
                    self.kill().await;
                    return Err(Lost::Protocol(format!(
                        "payload of {} bytes, header says {}",
                        payload.len(),
                        vertex_bytes + index_bytes
                    )));
                }
                let indices = payload.split_off(vertex_bytes as usize);
                Ok(Finished {
                    report: *report,
                    vertices: payload,
                    indices,
                })
            }
            Ok(Ok((other, _))) => {
                self.kill().await;
                Err(Lost::Protocol(format!(
                    "expected a finished job, got {other:?}"
                )))
            }
            Ok(Err(FrameError::Closed | FrameError::Io(_))) => Err(Lost::Died(self.reap().await)),
            Ok(Err(err)) => {
                self.kill().await;
                Err(Lost::Protocol(err.to_string()))
            }
            Err(_) => {
                // Ask Python where it is (faulthandler writes the stack into
                // the job's output file), then kill the whole process group.
                let _ = killpg(Pid::from_raw(self.pid), Signal::SIGUSR1);
                tokio::time::sleep(STACK_DUMP_GRACE).await;
                self.kill().await;
                Err(Lost::TimedOut)
            }
        }
    }

    /// Asks the worker to exit; kills it if it does not within a second.
    pub async fn shutdown(mut self) {
        let _ = protocol::send(&mut self.requests, &Request::Shutdown).await;
        if tokio::time::timeout(Duration::from_secs(1), self.child.wait())
            .await
            .is_err()
        {
            self.kill().await;
        }
    }

    async fn kill(&mut self) {
        let _ = killpg(Pid::from_raw(self.pid), Signal::SIGKILL);
        let _ = self.child.wait().await;
    }

    /// Collects the exit status of a worker whose pipe closed.
    async fn reap(&mut self) -> Option<ExitStatus> {
        match tokio::time::timeout(Duration::from_secs(5), self.child.wait()).await {
            Ok(status) => {
                // Anything the code left running in the group goes too.
                let _ = killpg(Pid::from_raw(self.pid), Signal::SIGKILL);
                status.ok()
            }
            Err(_) => {
                self.kill().await;
                None
            }
        }
    }
}

/// The `cadloop worker` command: a scrubbed environment, pipes, its own
/// process group, and limits set between fork and exec, so they hold before
/// Python or any generated code runs.
fn worker_command(settings: &ExecutorSettings, area: &Area, memory_bytes: u64) -> Command {
    let mut command = Command::new(&settings.worker_exe);
    command
        .arg("worker")
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env(AREA_ENV, area.path())
        .env("HOME", area.path().join("home"))
        .env("TMPDIR", area.path().join("tmp"))
        .env("LANG", "C.UTF-8")
        .env("LC_ALL", "C.UTF-8")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("PYTHONNOUSERSITE", "1")
        .env("PYTHONHASHSEED", "0")
        .env(FREECAD_LIB_ENV, &settings.freecad_lib)
        .env(ALLOWED_IMPORTS_ENV, settings.allowed_imports.join(","))
        .envs(
            INHERITED_ENV
                .iter()
                .filter_map(|k| std::env::var_os(k).map(|v| (*k, v))),
        )
        .current_dir(area.path().join("job"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    // SAFETY: between fork and exec only async-signal-safe calls are made
    // (setrlimit and prctl are plain syscalls; no allocation).
    unsafe {
        command.pre_exec(move || {
            setrlimit(Resource::RLIMIT_AS, memory_bytes, memory_bytes)?;
            setrlimit(Resource::RLIMIT_FSIZE, FILE_SIZE_LIMIT, FILE_SIZE_LIMIT)?;
            setrlimit(Resource::RLIMIT_CORE, 0, 0)?;
            nix::sys::prctl::set_pdeathsig(Signal::SIGKILL)?;
            Ok(())
        });
    }
    command
}

/// Exit status in words: "exit status 3" or "signal SIGSEGV".
pub fn describe_status(status: ExitStatus) -> String {
    if let Some(signal) = status.signal() {
        match Signal::try_from(signal) {
            Ok(sig) => format!("signal {}", sig.as_str()),
            Err(_) => format!("signal {signal}"),
        }
    } else {
        format!("exit status {}", status.code().unwrap_or(-1))
    }
}

/// The worker's own log lines (not the code's output) go to our tracing.
async fn forward_log(id: u64, stderr: tokio::process::ChildStderr) {
    let mut lines = BufReader::new(stderr).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        tracing::debug!(worker = id, "{line}");
    }
}
