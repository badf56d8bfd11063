//! Helpers shared by the integration tests: bounded waits and gates that hold jobs.

#![allow(dead_code, unreachable_pub)] // each test file uses some of these

use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};

/// How long any test waits for a condition before failing: generous, for a noisy 2-core
/// machine; a passing test never waits this long.
pub const PATIENCE: Duration = Duration::from_secs(10);

/// Polls `condition` every millisecond until it holds or `timeout` passes; returns whether it
/// held. A bounded wait for a condition, not a sleep standing in for synchronization.
pub fn wait_until(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if condition() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(1));
    }
}

/// Holds jobs until it is opened (or dropped): each job made by [`Gate::job`] reports that it
/// started, then blocks until the gate opens.
pub struct Gate {
    open: Option<Sender<()>>,
    closed: Receiver<()>,
    started_tx: Sender<usize>,
    started: Receiver<usize>,
}

impl Gate {
    pub fn new() -> Self {
        let (open, closed) = crossbeam_channel::bounded(0);
        let (started_tx, started) = crossbeam_channel::unbounded();
        Gate { open: Some(open), closed, started_tx, started }
    }

    /// A job that sends `id` when it starts, then waits for the gate.
    pub fn job(&self, id: usize) -> impl FnOnce() + Send + 'static {
        let closed = self.closed.clone();
        let started = self.started_tx.clone();
        move || {
            let _ = started.send(id);
            // Returns with an error once the gate's sender is dropped.
            let _ = closed.recv();
        }
    }

    /// Waits (bounded) for the next job to start and returns its id.
    pub fn next_started(&self) -> usize {
        self.started.recv_timeout(PATIENCE).expect("a held job should have started")
    }

    /// Waits (bounded) for `n` jobs to start and returns their ids in starting order.
    pub fn started(&self, n: usize) -> Vec<usize> {
        (0..n).map(|_| self.next_started()).collect()
    }

    /// `true` if no other job starts within `window` (used only to check a negative).
    pub fn none_started_within(&self, window: Duration) -> bool {
        self.started.recv_timeout(window).is_err()
    }

    /// Releases every held job, now and later.
    pub fn open(&mut self) {
        self.open = None;
    }
}
