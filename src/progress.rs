//! The live one-line progress display on a terminal, and the log writer that
//! keeps log lines from tearing it: while a bar is shown, each log line is
//! printed above it.

use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

static ACTIVE: Mutex<Option<ProgressBar>> = Mutex::new(None);

/// A spinner with a message on stderr when it is a terminal, else a hidden
/// bar (log lines say the same things).
pub fn spinner(enabled: bool) -> ProgressBar {
    if !(enabled && std::io::stderr().is_terminal()) {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new_spinner();
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg} · {elapsed}")
            .expect("a fixed template")
            .tick_chars("⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏ "),
    );
    bar.enable_steady_tick(Duration::from_millis(120));
    *ACTIVE.lock().unwrap_or_else(|p| p.into_inner()) = Some(bar.clone());
    bar
}

/// A counting bar for many items on stderr when it is a terminal, else `None`
/// (the caller logs status lines instead).
pub fn counter(len: u64, enabled: bool) -> Option<ProgressBar> {
    if !(enabled && std::io::stderr().is_terminal()) {
        return None;
    }
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{bar:30}] {pos}/{len} done · {msg} · {per_sec} · ETA {eta}",
        )
        .expect("a fixed template")
        .progress_chars("=> "),
    );
    bar.enable_steady_tick(Duration::from_millis(250));
    *ACTIVE.lock().unwrap_or_else(|p| p.into_inner()) = Some(bar.clone());
    Some(bar)
}

/// Removes the bar from the terminal; later log lines print plainly.
pub fn finish(bar: &ProgressBar) {
    bar.finish_and_clear();
    *ACTIVE.lock().unwrap_or_else(|p| p.into_inner()) = None;
}

/// stderr for tracing, writing above the progress bar when one is shown.
pub struct LogWriter;

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let bar = ACTIVE.lock().unwrap_or_else(|p| p.into_inner()).clone();
        match bar {
            Some(bar) => bar.suspend(|| std::io::stderr().write_all(buf))?,
            None => std::io::stderr().write_all(buf)?,
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}
