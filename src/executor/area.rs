//! A worker's area: the temporary folder (`job/`, `home/`, `tmp/`) that is
//! the only place its sandbox lets it write. The supervisor removes it with
//! the worker; a supervisor killed outright (SIGKILL, the OOM killer) cannot,
//! so each area is locked by the supervisor that made it, and the next pool
//! to start removes the areas nobody holds any more.

use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use nix::fcntl::{Flock, FlockArg};

/// The prefix of an area's folder name in the temporary folder.
const PREFIX: &str = "cadloop-worker-";
/// The folders made in each area.
const DIRS: [&str; 3] = ["job", "home", "tmp"];
/// Areas younger than this are left alone: one may be between being made
/// and being locked by the supervisor starting it.
const YOUNGEST_STALE: Duration = Duration::from_secs(60);

/// An area, removed when dropped; locked while it exists.
pub struct Area {
    // Declared first so the folder goes before the lock is released.
    dir: tempfile::TempDir,
    _lock: Flock<File>,
}

impl Area {
    /// Makes a new area in the temporary folder and locks it.
    pub fn create() -> std::io::Result<Area> {
        let dir = tempfile::Builder::new().prefix(PREFIX).tempdir()?;
        let lock = Flock::lock(File::open(dir.path())?, FlockArg::LockExclusiveNonblock)
            .map_err(|(_, errno)| std::io::Error::from(errno))?;
        for sub in DIRS {
            std::fs::create_dir(dir.path().join(sub))?;
        }
        Ok(Area { dir, _lock: lock })
    }

    /// The job folder's path.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

/// Removes this user's areas in `tmp` that no running supervisor holds and
/// that are older than a minute. Returns the folders removed.
pub fn sweep_stale(tmp: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(tmp) else {
        return Vec::new();
    };
    let me = nix::unistd::geteuid().as_raw();
    let now = SystemTime::now();
    let mut removed = Vec::new();
    for entry in entries.flatten() {
        if !entry.file_name().to_string_lossy().starts_with(PREFIX) {
            continue;
        }
        let path = entry.path();
        // symlink_metadata: a link named like an area is not followed.
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        let old = meta
            .modified()
            .ok()
            .and_then(|at| now.duration_since(at).ok())
            .is_some_and(|age| age >= YOUNGEST_STALE);
        if !meta.is_dir() || meta.uid() != me || !old {
            continue;
        }
        let Ok(handle) = File::open(&path) else {
            continue;
        };
        // Held while the folder is removed, so no one else sweeps it twice.
        let Ok(_held) = Flock::lock(handle, FlockArg::LockExclusiveNonblock) else {
            continue;
        };
        match std::fs::remove_dir_all(&path) {
            Ok(()) => removed.push(path),
            Err(err) => {
                tracing::debug!(path = %path.display(), "cannot remove a stale worker area: {err}")
            }
        }
    }
    removed
}
