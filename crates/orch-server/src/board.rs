//! What the service knows of its tasks in flight, in memory: who runs, at
//! which stage and attempt, who waits (and holds no worker), who is being
//! cancelled. The store keeps the durable account; this is what `/queue`
//! and `/status` show and what the scheduler counts.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Mutex, MutexGuard};

use tokio::sync::{watch, Notify};

/// A task taken by a worker.
pub(crate) struct Live {
    pub(crate) stage: Option<String>,
    pub(crate) attempt: Option<i64>,
    /// A producer is running (between `AttemptStarted` and
    /// `AttemptFinished`).
    pub(crate) attempt_running: bool,
    /// Waiting for a serial stage: (stage, reason). A waiting task holds no
    /// worker.
    pub(crate) waiting: Option<(String, String)>,
    /// The engine's cancel signal for this task.
    pub(crate) cancel: watch::Sender<bool>,
    /// Cancelled through the API (not by a drain).
    pub(crate) cancel_requested: bool,
    /// Tells the engine a stop is a cancel, not an interruption: set
    /// (through [`Live::cancel_for_good`]) before `cancel` turns.
    pub(crate) for_good: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Live {
    /// Cancels the task for good (the API, or another service's request):
    /// the engine is told it is a cancel before it is stopped.
    pub(crate) fn cancel_for_good(&mut self) {
        self.cancel_requested = true;
        self.for_good
            .store(true, std::sync::atomic::Ordering::SeqCst);
        let _ = self.cancel.send(true);
    }
}

#[derive(Default)]
pub(crate) struct BoardState {
    pub(crate) running: BTreeMap<String, Live>,
    /// Cancelled before the scheduler started them.
    pub(crate) cancel_before_start: BTreeSet<String>,
    pub(crate) draining: bool,
}

impl BoardState {
    /// Tasks that hold a worker: running, not waiting.
    pub(crate) fn busy(&self) -> usize {
        self.running
            .values()
            .filter(|l| l.waiting.is_none())
            .count()
    }
}

/// The board, and the scheduler's wake-up.
#[derive(Default)]
pub(crate) struct Board {
    state: Mutex<BoardState>,
    /// Something changed that may let the scheduler take a task.
    pub(crate) wake: Notify,
}

impl Board {
    /// The state; a panic elsewhere while it was held leaves it usable.
    pub(crate) fn lock(&self) -> MutexGuard<'_, BoardState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn wake(&self) {
        self.wake.notify_one();
    }
}
