//! The worker's sandbox, entered by `cadloop worker` before Python starts and
//! kept for the process's life (neither layer can be undone).
//!
//! - Landlock (filesystem, TCP, signals): read-only access to the system's
//!   libraries and Python/FreeCAD installation, read-write access to the
//!   worker's own area (job folder, HOME, TMPDIR) and nothing else; no TCP
//!   bind or connect; no signals to processes outside the sandbox. Applied
//!   best-effort: an older kernel enforces what it knows, and the worker says
//!   what was enforced.
//! - seccomp: creating processes (fork, vfork, non-thread clone, exec),
//!   opening non-Unix sockets and io_uring (which would bypass the socket
//!   check) kill the worker with SIGSYS, which the supervisor reports as a
//!   sandbox violation. Threads stay allowed: OpenCASCADE uses them.
//!
//! Generated code runs only after both are in place, so even code that gets
//! past the harness's import check (`__import__`, `importlib`, ctypes) meets
//! the kernel's rules.

use std::collections::BTreeMap;
use std::path::Path;

use landlock::{
    path_beneath_rules, Access, AccessFs, AccessNet, RulesetAttr, RulesetCreatedAttr,
    RulesetStatus, Scope, ABI,
};
use nix::libc;
use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};

/// What the worker may read (besides its own area): the system's libraries,
/// the Python and FreeCAD installation, and the few files they consult
/// (FreeCAD looks up the user's name and home; /etc/passwd holds no secrets).
const READ_ONLY: [&str; 15] = [
    "/usr",
    "/lib",
    "/lib64",
    "/etc/ld.so.cache",
    "/etc/localtime",
    "/etc/nsswitch.conf",
    "/etc/passwd",
    "/etc/group",
    "/etc/python3.11",
    "/proc/self",
    "/sys/devices/system/cpu",
    "/dev/urandom",
    "/dev/random",
    "/dev/zero",
    "/dev/null",
];

/// The newest Landlock ABI this code was written and tested against.
const LANDLOCK_ABI: ABI = ABI::V7;

/// What the kernel enforced, in words, for logs and `cadloop doctor`.
#[derive(Debug, Clone)]
pub struct Protections {
    pub landlock: String,
    pub seccomp: String,
}

impl std::fmt::Display for Protections {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "landlock: {}; seccomp: {}", self.landlock, self.seccomp)
    }
}

/// Restricts this process for good. `area` is the only folder it may write.
pub fn enter(area: &Path) -> Protections {
    let landlock = match restrict_filesystem_and_network(area) {
        Ok(RulesetStatus::FullyEnforced) => "fully enforced".to_string(),
        Ok(RulesetStatus::PartiallyEnforced) => {
            "partly enforced (this kernel lacks some Landlock features)".to_string()
        }
        Ok(RulesetStatus::NotEnforced) => {
            "not enforced (this kernel has no Landlock; files and TCP are unprotected)".to_string()
        }
        Err(err) => format!("failed: {err}"),
    };
    let seccomp = match restrict_syscalls() {
        Ok(()) => "process creation, non-Unix sockets and io_uring blocked".to_string(),
        Err(err) => format!("failed: {err}"),
    };
    Protections { landlock, seccomp }
}

fn restrict_filesystem_and_network(area: &Path) -> Result<RulesetStatus, landlock::RulesetError> {
    let abi = LANDLOCK_ABI;
    let status = landlock::Ruleset::default()
        .handle_access(AccessFs::from_all(abi))?
        .handle_access(AccessNet::from_all(abi))?
        .scope(Scope::from_all(abi))?
        .create()?
        .add_rules(path_beneath_rules(READ_ONLY, AccessFs::from_read(abi)))?
        .add_rules(path_beneath_rules(["/dev/null"], AccessFs::from_all(abi)))?
        .add_rules(path_beneath_rules([area], AccessFs::from_all(abi)))?
        .restrict_self()?;
    Ok(status.ruleset)
}

fn restrict_syscalls() -> Result<(), seccompiler::Error> {
    let arch: TargetArch = std::env::consts::ARCH.try_into()?;
    let mut kill: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    for syscall in [
        libc::SYS_execve,
        libc::SYS_execveat,
        libc::SYS_fork,
        libc::SYS_vfork,
        libc::SYS_io_uring_setup,
        libc::SYS_io_uring_enter,
        libc::SYS_io_uring_register,
    ] {
        kill.insert(syscall, vec![]);
    }
    // clone without CLONE_THREAD makes a process; with it, a thread.
    let thread = libc::CLONE_THREAD as u64;
    kill.insert(
        libc::SYS_clone,
        vec![SeccompRule::new(vec![SeccompCondition::new(
            0,
            SeccompCmpArgLen::Qword,
            SeccompCmpOp::MaskedEq(thread),
            0,
        )?])?],
    );
    let unix = libc::AF_UNIX as u64;
    for syscall in [libc::SYS_socket, libc::SYS_socketpair] {
        kill.insert(
            syscall,
            vec![SeccompRule::new(vec![SeccompCondition::new(
                0,
                SeccompCmpArgLen::Dword,
                SeccompCmpOp::Ne,
                unix,
            )?])?],
        );
    }
    let kill_filter =
        SeccompFilter::new(kill, SeccompAction::Allow, SeccompAction::KillProcess, arch)?;
    // clone3 hides its flags behind a pointer: say it does not exist, and the
    // C library falls back to clone, whose flags the filter above can read.
    let clone3 = SeccompFilter::new(
        BTreeMap::from([(libc::SYS_clone3, vec![])]),
        SeccompAction::Allow,
        SeccompAction::Errno(libc::ENOSYS as u32),
        arch,
    )?;
    for filter in [kill_filter, clone3] {
        let program: BpfProgram = filter.try_into()?;
        seccompiler::apply_filter(&program)?;
    }
    Ok(())
}
