//! Output files written whole or not at all: through a temporary file in the
//! same folder, synced, then renamed over the target, so a reader (or a crash)
//! never meets half a result.json or half a PNG. Also the removal of output
//! files that may not be there, and the media type a run's file is served as.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// Replaces `path` with `bytes` atomically; the file gets ordinary 0644
/// permissions (temporary files are created private).
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(0o644))?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// Writes pretty JSON (and a final newline) atomically.
pub fn write_json_atomically(path: &Path, value: &impl serde::Serialize) -> std::io::Result<()> {
    let mut json = serde_json::to_vec_pretty(value).map_err(std::io::Error::other)?;
    json.push(b'\n');
    write_atomically(path, &json)
}

/// Removes the file at `path`; a file that is not there is fine.
pub fn remove_file_if_present(path: &Path) -> std::io::Result<()> {
    match std::fs::remove_file(path) {
        Err(err) if err.kind() != std::io::ErrorKind::NotFound => Err(err),
        _ => Ok(()),
    }
}

/// Removes the folder `path` and all it holds; a folder that is not there
/// is no error.
pub fn remove_dir_if_present(path: &Path) -> std::io::Result<()> {
    match std::fs::remove_dir_all(path) {
        Err(err) if err.kind() != std::io::ErrorKind::NotFound => Err(err),
        _ => Ok(()),
    }
}

/// Copies `from` to `to` atomically (through a temporary file beside `to`).
pub fn copy_atomically(from: &Path, to: &Path) -> std::io::Result<()> {
    write_atomically(to, &std::fs::read(from)?)
}

/// Appends `value` as one JSON line to `path` (the transcript); see [`JsonLines`].
pub fn append_json_line(path: &Path, value: &impl serde::Serialize) -> std::io::Result<()> {
    JsonLines::open(path)?.append(value)
}

/// A JSON-lines file open for appending (the transcript, the batch results
/// logs, LLM recordings). Each value goes in a single write, so concurrent
/// appenders in O_APPEND mode never interleave within a line.
pub struct JsonLines {
    file: std::fs::File,
}

impl JsonLines {
    /// Opens `path` for appending, creating it when missing.
    pub fn open(path: &Path) -> std::io::Result<JsonLines> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        Ok(JsonLines { file })
    }

    /// Appends `value` as one line.
    pub fn append(&mut self, value: &impl serde::Serialize) -> std::io::Result<()> {
        let mut line = serde_json::to_vec(value).map_err(std::io::Error::other)?;
        line.push(b'\n');
        std::io::Write::write_all(&mut self.file, &line)
    }

    /// Appends `value` and waits until it is on disk.
    pub fn append_durably(&mut self, value: &impl serde::Serialize) -> std::io::Result<()> {
        self.append(value)?;
        self.file.sync_data()
    }
}

/// The media type a run's file is served as (by the studio, and as an MCP
/// resource), from its extension.
pub fn media_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()).unwrap_or("") {
        "js" => "text/javascript; charset=utf-8",
        "json" => "application/json",
        "html" => "text/html; charset=utf-8",
        "png" => "image/png",
        "glb" => "model/gltf-binary",
        "stl" => "model/stl",
        "step" => "model/step",
        // FreeCAD's documents are zip archives.
        "FCStd" => "application/zip",
        "py" | "md" | "txt" | "jsonl" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}
