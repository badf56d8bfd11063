//! Helpers for this crate's unit tests.

use std::thread;
use std::time::{Duration, Instant};

/// Polls `condition` every 10 ms until it holds or `timeout` passes; returns whether it held.
/// A test waits for what it expects this way rather than sleeping for a guessed time.
pub(crate) fn wait_until(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while !condition() {
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(10));
    }
    true
}
