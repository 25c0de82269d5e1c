//! The run folder as a type: every command that writes runs (generate,
//! refine, batch, bench) goes through a [`RunDir`], which holds the folder's
//! lock for as long as it lives and knows the layout:
//!
//! ```text
//! run.json  report.html  transcript.jsonl
//! model.step  model.stl  model.FCStd  views/*.png  sheet.png   (the result)
//! parts/NAME.stl                     (a result of several named parts)
//! attempts/NN/   code.py, result.json, models, views/, sheet.png, captions.json, feedback.md
//! ```
//!
//! Stage in the flow: under `pipeline`, which records each step through it;
//! over `report` (the record and its page) and `files` (whole-file writes).

use std::fs::File;
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};

use crate::executor::MODEL_FILES;
use crate::files;
use crate::mesh::PARTS_DIR;
use crate::render::{View, SHEET_FILE, VIEWS_DIR};
use crate::report::{html, read_run, Exchange, RunFileError, RunRecord, RUN_FILE, TRANSCRIPT_FILE};

/// Where the attempts live, relative to the run folder.
pub const ATTEMPTS_DIR: &str = "attempts";
/// An attempt's (or `cadloop exec`'s) record of its job: outcome, facts, parameters, checks.
pub const RESULT_FILE: &str = "result.json";
/// An attempt's captions, one per view.
pub const CAPTIONS_FILE: &str = "captions.json";
/// The critique's feedback to the LLM for an attempt.
pub const FEEDBACK_FILE: &str = "feedback.md";

/// A folder name from the first words of `text`: lower case, `-` between
/// words, at most 48 characters; "run" when it has none.
pub fn slug(text: &str) -> String {
    let mut slug = String::new();
    for word in text
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .take(8)
    {
        if slug.len() + word.len() > 48 {
            break;
        }
        if !slug.is_empty() {
            slug.push('-');
        }
        slug.push_str(&word.to_ascii_lowercase());
    }
    if slug.is_empty() {
        slug.push_str("run");
    }
    slug
}

/// `base/name`, or `base/name-2`, `-3`, … when that holds files already.
pub fn free_folder(base: &Path, name: &str) -> PathBuf {
    let taken =
        |p: &Path| p.exists() && std::fs::read_dir(p).map_or(true, |mut e| e.next().is_some());
    let mut dir = base.join(name);
    let mut n = 2;
    while taken(&dir) {
        dir = base.join(format!("{name}-{n}"));
        n += 1;
    }
    dir
}

/// `attempts/NN`, relative to the run folder.
pub fn attempt_path(number: u32) -> String {
    format!("{ATTEMPTS_DIR}/{number:02}")
}

/// A run folder could not be created, opened, locked or written.
#[derive(Debug, thiserror::Error)]
pub enum RunDirError {
    #[error("another cadloop is working on {}; wait for it to finish", .0.display())]
    Busy(PathBuf),
    #[error("cannot lock the run folder {}", path.display())]
    Lock {
        path: PathBuf,
        #[source]
        source: nix::errno::Errno,
    },
    #[error("{} is not a folder; give the run folder `cadloop generate` wrote (its path is in the summary)", .0.display())]
    NotARun(PathBuf),
    #[error(transparent)]
    Record(#[from] RunFileError),
    #[error("cannot use the run folder {}", path.display())]
    Folder {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write {}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// A run folder, locked against other cadloops while this value lives (an
/// advisory lock on the folder itself, released however the process ends).
#[derive(Debug)]
pub struct RunDir {
    path: PathBuf,
    _lock: Flock<File>,
}

/// What a follow-up change restores when it makes no attempt: the record,
/// and the transcript's length (its new calls are cut off).
pub struct Snapshot {
    pub record: RunRecord,
    transcript_len: Option<u64>,
}

impl RunDir {
    /// Makes `path` (a new or empty folder; callers check which) the folder
    /// of a new run.
    pub fn create(path: &Path) -> Result<RunDir, RunDirError> {
        let folder = |source| RunDirError::Folder {
            path: path.to_path_buf(),
            source,
        };
        std::fs::create_dir_all(path).map_err(folder)?;
        RunDir::lock(&path.canonicalize().map_err(folder)?)
    }

    /// An existing run: locked, its run.json read and checked, and the
    /// folder of its next attempt free.
    pub fn open(path: &Path) -> Result<(RunDir, RunRecord), RunDirError> {
        if !path.is_dir() {
            return Err(RunDirError::NotARun(path.to_path_buf()));
        }
        let absolute = path.canonicalize().map_err(|source| RunDirError::Folder {
            path: path.to_path_buf(),
            source,
        })?;
        let dir = RunDir::lock(&absolute)?;
        let record = read_run(&absolute)?;
        dir.set_aside_unrecorded(record.attempts.len() as u32)?;
        Ok((dir, record))
    }

    /// Moves attempt folders past the `recorded` ones out of the way, as
    /// `attempts/NN.unrecorded`: what a cadloop killed in the middle of an
    /// attempt (or a hand) left there. Nothing is deleted, and the next
    /// attempt gets its number free.
    fn set_aside_unrecorded(&self, recorded: u32) -> Result<(), RunDirError> {
        for number in recorded + 1.. {
            let found = self.attempt_dir(number);
            if !found.exists() {
                break;
            }
            let mut aside = found.with_extension("unrecorded");
            let mut n = 2;
            while aside.exists() {
                aside = found.with_extension(format!("unrecorded-{n}"));
                n += 1;
            }
            std::fs::rename(&found, &aside).map_err(|source| RunDirError::Write {
                path: aside.clone(),
                source,
            })?;
            tracing::warn!(
                "{} was not in run.json (left by a cadloop that was stopped in the middle of it?); kept as {}",
                found.display(),
                aside.display()
            );
        }
        Ok(())
    }

    fn lock(path: &Path) -> Result<RunDir, RunDirError> {
        let handle = File::open(path).map_err(|source| RunDirError::Folder {
            path: path.to_path_buf(),
            source,
        })?;
        let lock =
            Flock::lock(handle, FlockArg::LockExclusiveNonblock).map_err(
                |(_, errno)| match errno {
                    nix::errno::Errno::EWOULDBLOCK => RunDirError::Busy(path.to_path_buf()),
                    source => RunDirError::Lock {
                        path: path.to_path_buf(),
                        source,
                    },
                },
            )?;
        Ok(RunDir {
            path: path.to_path_buf(),
            _lock: lock,
        })
    }

    /// The folder's absolute path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Attempt `number`'s folder, `attempts/NN`.
    pub fn attempt_dir(&self, number: u32) -> PathBuf {
        self.path.join(attempt_path(number))
    }

    /// Writes run.json, then the page that shows it.
    pub fn save(&self, record: &RunRecord) -> Result<(), RunDirError> {
        let run_file = self.path.join(RUN_FILE);
        files::write_json_atomically(&run_file, record).map_err(|source| RunDirError::Write {
            path: run_file,
            source,
        })?;
        html::write_run_page(&self.path, record).map_err(|source| RunDirError::Write {
            path: self.path.join(html::REPORT_FILE),
            source,
        })
    }

    /// Adds one LLM exchange to transcript.jsonl.
    pub fn append_transcript(&self, exchange: &Exchange) -> Result<(), RunDirError> {
        let path = self.path.join(TRANSCRIPT_FILE);
        files::append_json_line(&path, exchange)
            .map_err(|source| RunDirError::Write { path, source })
    }

    /// The run as it is now, for [`RunDir::restore`].
    pub fn snapshot(&self, record: &RunRecord) -> Snapshot {
        Snapshot {
            record: record.clone(),
            transcript_len: std::fs::metadata(self.path.join(TRANSCRIPT_FILE))
                .ok()
                .map(|m| m.len()),
        }
    }

    /// Puts the run back as it was at `snapshot` (the transcript cut back,
    /// run.json and the page rewritten) and gives its record.
    pub fn restore(&self, snapshot: Snapshot) -> Result<RunRecord, RunDirError> {
        let transcript = self.path.join(TRANSCRIPT_FILE);
        let restored = match snapshot.transcript_len {
            Some(len) => std::fs::OpenOptions::new()
                .write(true)
                .open(&transcript)
                .and_then(|file| file.set_len(len)),
            None => files::remove_file_if_present(&transcript),
        };
        restored.map_err(|source| RunDirError::Write {
            path: transcript,
            source,
        })?;
        self.save(&snapshot.record)?;
        Ok(snapshot.record)
    }

    /// Removes an attempt's folder (one cut short before it was recorded).
    pub fn remove_attempt(&self, number: u32) -> Result<(), RunDirError> {
        let dir = self.attempt_dir(number);
        files::remove_dir_if_present(&dir)
            .map_err(|source| RunDirError::Write { path: dir, source })
    }

    /// Makes `attempt`'s models, views and sheet the run's result (the top
    /// of the folder); `None` leaves no result there.
    pub fn promote(&self, attempt: Option<u32>) -> Result<(), RunDirError> {
        for path in self.result_files() {
            files::remove_file_if_present(&path)
                .map_err(|source| RunDirError::Write { path, source })?;
        }
        let parts = self.path.join(PARTS_DIR);
        files::remove_dir_if_present(&parts).map_err(|source| RunDirError::Write {
            path: parts.clone(),
            source,
        })?;
        let Some(number) = attempt else {
            return Ok(());
        };
        let from = self.attempt_dir(number);
        let views = self.path.join(VIEWS_DIR);
        std::fs::create_dir_all(&views).map_err(|source| RunDirError::Write {
            path: views.clone(),
            source,
        })?;
        for (relative, to) in self.result_relative().iter().zip(self.result_files()) {
            files::copy_atomically(&from.join(relative), &to)
                .map_err(|source| RunDirError::Write { path: to, source })?;
        }
        // A result of several parts: their STLs.
        let Ok(entries) = std::fs::read_dir(from.join(PARTS_DIR)) else {
            return Ok(());
        };
        std::fs::create_dir_all(&parts).map_err(|source| RunDirError::Write {
            path: parts.clone(),
            source,
        })?;
        for entry in entries.flatten() {
            let to = parts.join(entry.file_name());
            files::copy_atomically(&entry.path(), &to)
                .map_err(|source| RunDirError::Write { path: to, source })?;
        }
        Ok(())
    }

    /// The result's files, relative to a run or attempt folder.
    fn result_relative(&self) -> Vec<PathBuf> {
        let mut names: Vec<PathBuf> = MODEL_FILES.iter().map(PathBuf::from).collect();
        names.extend(
            View::ALL
                .iter()
                .map(|v| Path::new(VIEWS_DIR).join(format!("{}.png", v.name()))),
        );
        names.push(PathBuf::from(SHEET_FILE));
        names
    }

    fn result_files(&self) -> Vec<PathBuf> {
        self.result_relative()
            .iter()
            .map(|name| self.path.join(name))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_folder_is_held_by_one_cadloop_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run");
        let run = RunDir::create(&path).unwrap();
        assert!(matches!(RunDir::create(&path), Err(RunDirError::Busy(_))));
        drop(run);
        RunDir::create(&path).expect("free again once the first is gone");
    }

    #[test]
    fn opening_needs_a_folder_and_its_run_json() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nothing");
        assert!(matches!(
            RunDir::open(&missing),
            Err(RunDirError::NotARun(_))
        ));
        assert!(matches!(
            RunDir::open(dir.path()),
            Err(RunDirError::Record(RunFileError::Missing { .. }))
        ));
    }
}
