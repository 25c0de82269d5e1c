//! A real single-node Slurm cluster for the tests: `munged`, `slurmctld` and
//! `slurmd` from Debian's packages, started as root without systemd, with
//! every file (key, sockets, state, spool, logs, configuration) in a
//! temporary folder. Dropping it cancels every job, stops the daemons and
//! removes the folder, also when a test fails.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

pub struct Slurm {
    pub dir: tempfile::TempDir,
    pub conf: PathBuf,
}

/// A TCP port nobody listens on now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn run(program: &str, args: &[&str], env: &[(&str, &Path)]) -> Result<Output, String> {
    let mut command = Command::new(program);
    command.args(args);
    for (k, v) in env {
        command.env(k, v);
    }
    command
        .output()
        .map_err(|e| format!("cannot run {program}: {e} (is slurm-wlm/munge installed? scripts/dev setup installs them)"))
}

fn checked(program: &str, args: &[&str], env: &[(&str, &Path)]) -> Result<Output, String> {
    let out = run(program, args, env)?;
    if out.status.success() {
        Ok(out)
    } else {
        Err(format!(
            "{program} {} failed: {}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

impl Slurm {
    /// Starts the cluster with `cpus` CPUs on its one node, or says why it cannot.
    pub fn start(cpus: usize) -> Result<Slurm, String> {
        if !nix::unistd::Uid::effective().is_root() {
            return Err("starting munged, slurmctld and slurmd without systemd needs root".into());
        }
        let dir = tempfile::Builder::new()
            .prefix("cadloop-slurm-")
            .tempdir()
            .map_err(|e| e.to_string())?;
        let d = dir.path();
        for sub in ["state", "spool", "log"] {
            std::fs::create_dir(d.join(sub)).map_err(|e| e.to_string())?;
        }
        let key = d.join("munge.key");
        checked(
            "mungekey",
            &[
                "--create",
                "--force",
                &format!("--keyfile={}", key.display()),
            ],
            &[],
        )?;
        let socket = d.join("munge.socket");
        checked(
            "munged",
            &[
                &format!("--key-file={}", key.display()),
                &format!("--socket={}", socket.display()),
                &format!("--pid-file={}", d.join("munged.pid").display()),
                &format!("--log-file={}", d.join("log/munged.log").display()),
                &format!("--seed-file={}", d.join("munge.seed").display()),
                "--force",
            ],
            &[],
        )?;
        let actual = std::thread::available_parallelism().map_or(1, |n| n.get());
        let conf = d.join("slurm.conf");
        let text = format!(
            "ClusterName=cadloop-test
SlurmctldHost=localhost
SlurmctldPort={ctld}
SlurmdPort={slurmd}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket={socket},cred_expire=15
CredType=cred/munge
StateSaveLocation={d}/state
SlurmdSpoolDir={d}/spool
SlurmctldPidFile={d}/slurmctld.pid
SlurmdPidFile={d}/slurmd.pid
SlurmctldLogFile={d}/log/slurmctld.log
SlurmdLogFile={d}/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
ReturnToService=2
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
{overrides}AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/filetxt
JobCompLoc={d}/jobcomp.txt
MinJobAge=3600
NodeName=localhost CPUs={cpus} State=UNKNOWN
PartitionName=test Nodes=localhost Default=YES MaxTime=INFINITE State=UP
",
            ctld = free_port(),
            slurmd = free_port(),
            socket = socket.display(),
            d = d.display(),
            // More CPUs than the machine has: slurmd must be told to accept the configuration.
            overrides = if cpus > actual {
                "SlurmdParameters=config_overrides\n"
            } else {
                ""
            },
        );
        std::fs::write(&conf, text).map_err(|e| e.to_string())?;
        let slurm = Slurm { dir, conf };
        let conf_s = slurm.conf.display().to_string();
        checked("slurmctld", &["-f", &conf_s], &[])?;
        checked("slurmd", &["-N", "localhost", "-f", &conf_s], &[])?;
        let started = Instant::now();
        loop {
            let state = slurm.command("sinfo", &["-h", "-o", "%T"])?;
            if String::from_utf8_lossy(&state.stdout).trim() == "idle" {
                return Ok(slurm);
            }
            if started.elapsed() > Duration::from_secs(60) {
                return Err(format!(
                    "the Slurm node did not become idle: {}\n{}",
                    String::from_utf8_lossy(&state.stdout),
                    slurm.log("slurmctld")
                ));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Runs a Slurm command against this cluster.
    pub fn command(&self, program: &str, args: &[&str]) -> Result<Output, String> {
        run(program, args, &[("SLURM_CONF", &self.conf)])
    }

    /// A daemon's log, for failure messages.
    pub fn log(&self, daemon: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("log/{daemon}.log")))
            .unwrap_or_default()
    }

    /// The job completion log's lines.
    pub fn completions(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.path().join("jobcomp.txt"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// Waits until no task of `job` is pending or running.
    pub fn wait(&self, job: &str, limit: Duration) {
        let started = Instant::now();
        loop {
            let out = self
                .command("squeue", &["-h", "-j", job, "-o", "%i %T"])
                .unwrap();
            let listed = String::from_utf8_lossy(&out.stdout).trim().to_string();
            // A busy controller can make squeue fail with nothing listed:
            // only a squeue that answered says the job is gone.
            if out.status.success() && listed.is_empty() {
                return;
            }
            assert!(
                started.elapsed() < limit,
                "job {job} still queued after {limit:?}: {listed}\n{}",
                self.log("slurmctld")
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    fn stop(&self, daemon: &str) {
        let pid_file = self.dir.path().join(format!("{daemon}.pid"));
        let Some(pid) = std::fs::read_to_string(&pid_file)
            .ok()
            .and_then(|p| p.trim().parse::<i32>().ok())
        else {
            return;
        };
        let pid = nix::unistd::Pid::from_raw(pid);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let started = Instant::now();
        while nix::sys::signal::kill(pid, None).is_ok()
            && started.elapsed() < Duration::from_secs(10)
        {
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
    }
}

impl Drop for Slurm {
    fn drop(&mut self) {
        let _ = self.command("scancel", &["--user=root"]);
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(15) {
            match self.command("squeue", &["-h"]) {
                Ok(out) if !out.stdout.is_empty() => std::thread::sleep(Duration::from_millis(200)),
                _ => break,
            }
        }
        for daemon in ["slurmd", "slurmctld", "munged"] {
            self.stop(daemon);
        }
    }
}
