//! Stopping on request: SIGINT (Ctrl-C) and SIGTERM (Slurm's time limit, a
//! Kubernetes pod ending) become one shared flag that the loop waits on next
//! to its LLM calls and FreeCAD jobs, so a run stops at once and still leaves
//! a record of what it did instead of a folder that says "running" forever.

use std::sync::Arc;

use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;

/// Why the work was told to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// SIGINT, usually Ctrl-C.
    Sigint,
    /// SIGTERM: a scheduler or service manager ending the job.
    Sigterm,
    /// A batch's grace period after Ctrl-C ran out.
    GraceOver,
    /// Asked for by the user (the studio's stop button, or a newer change).
    Asked,
}

impl Cause {
    /// In words, for run.json and the logs.
    pub fn describe(self) -> &'static str {
        match self {
            Cause::Sigint => "interrupted by Ctrl-C (SIGINT)",
            Cause::Sigterm => "stopped by SIGTERM",
            Cause::GraceOver => "stopped when the grace period after Ctrl-C ran out",
            Cause::Asked => "stopped on request",
        }
    }

    /// The shell's status for a process ended by this signal (128 + number).
    pub fn exit_code(self) -> u8 {
        match self {
            Cause::Sigint | Cause::GraceOver | Cause::Asked => 130,
            Cause::Sigterm => 143,
        }
    }
}

/// A stop request that every clone sees. Raised once; the first cause stays.
/// For many runs at once there is a softer request first: drain (take no new
/// work, let what runs finish).
#[derive(Debug, Clone)]
pub struct Interrupt {
    cause: Arc<watch::Sender<Option<Cause>>>,
    drain: Arc<watch::Sender<bool>>,
}

impl Default for Interrupt {
    fn default() -> Self {
        Interrupt {
            cause: Arc::new(watch::channel(None).0),
            drain: Arc::new(watch::channel(false).0),
        }
    }
}

impl Interrupt {
    /// Asks everything holding a clone to stop (and to drain). A later cause
    /// does not replace the first.
    pub fn raise(&self, cause: Cause) {
        self.drain.send_replace(true);
        self.cause.send_if_modified(|now| match now {
            Some(_) => false,
            None => {
                *now = Some(cause);
                true
            }
        });
    }

    /// Asks for no new work; what runs goes on.
    pub fn drain(&self) {
        self.drain.send_replace(true);
    }

    /// Whether, and why, a stop was asked for.
    pub fn raised(&self) -> Option<Cause> {
        *self.cause.borrow()
    }

    /// Whether new work should be left alone (a drain or a stop was asked for).
    pub fn draining(&self) -> bool {
        *self.drain.borrow()
    }

    /// Waits until a stop is asked for.
    pub async fn wait(&self) -> Cause {
        let mut seen = self.cause.subscribe();
        let cause = match seen.wait_for(Option::is_some).await {
            Ok(cause) => *cause,
            // The sender lives in `self`, so it cannot be gone while we wait.
            Err(_) => None,
        };
        match cause {
            Some(cause) => cause,
            None => std::future::pending().await,
        }
    }

    /// Waits until a drain (or a stop) is asked for.
    pub async fn wait_drain(&self) {
        let mut seen = self.drain.subscribe();
        if seen.wait_for(|draining| *draining).await.is_err() {
            std::future::pending::<()>().await;
        }
    }

    /// An interrupt raised by the first SIGINT or SIGTERM this process gets
    /// (the handlers stay installed, so later ones change nothing).
    pub fn on_signals() -> std::io::Result<Interrupt> {
        Interrupt::listen(false)
    }

    /// For many runs at once: the first SIGINT only drains; a second SIGINT,
    /// or SIGTERM, raises the interrupt.
    pub fn on_signals_draining() -> std::io::Result<Interrupt> {
        Interrupt::listen(true)
    }

    fn listen(drain_first: bool) -> std::io::Result<Interrupt> {
        let interrupt = Interrupt::default();
        let mut sigint = signal(SignalKind::interrupt())?;
        let mut sigterm = signal(SignalKind::terminate())?;
        let raised = interrupt.clone();
        tokio::spawn(async move {
            // The handlers stay installed after the interrupt is raised, so a
            // further signal cannot kill the process half-way through
            // writing its records.
            loop {
                let cause = tokio::select! {
                    _ = sigint.recv() => Cause::Sigint,
                    _ = sigterm.recv() => Cause::Sigterm,
                };
                if raised.raised().is_some() {
                    continue;
                }
                if drain_first && cause == Cause::Sigint && !raised.draining() {
                    raised.drain();
                    tracing::warn!(
                        "Ctrl-C: finishing the work in flight; press Ctrl-C again to stop it at once"
                    );
                    continue;
                }
                tracing::warn!("{}: stopping and recording what was done", cause.describe());
                raised.raise(cause);
            }
        });
        Ok(interrupt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_first_cause_stays_and_every_clone_sees_it() {
        let interrupt = Interrupt::default();
        let clone = interrupt.clone();
        assert_eq!(clone.raised(), None);
        let waiting = tokio::spawn(async move { clone.wait().await });
        tokio::task::yield_now().await;
        interrupt.raise(Cause::Sigterm);
        interrupt.raise(Cause::Sigint);
        assert_eq!(waiting.await.unwrap(), Cause::Sigterm);
        assert_eq!(interrupt.raised(), Some(Cause::Sigterm));
        // Waiting after the fact returns at once.
        assert_eq!(interrupt.wait().await, Cause::Sigterm);
        assert!(interrupt.draining(), "a stop drains too");
    }

    #[tokio::test]
    async fn a_drain_is_seen_by_every_clone_and_is_not_a_stop() {
        let interrupt = Interrupt::default();
        let clone = interrupt.clone();
        let waiting = tokio::spawn(async move { clone.wait_drain().await });
        tokio::task::yield_now().await;
        assert!(!interrupt.draining());
        interrupt.drain();
        waiting.await.unwrap();
        assert!(interrupt.draining());
        assert_eq!(interrupt.raised(), None);
    }
}
