//! The heavy loads of a test binary, one at a time: a test that puts a machine-filling load on a
//! server and judges it by time or memory (an attack beside a good client, wrk through nginx to
//! several hosts) takes [`exclusive`] for as long as the load runs.
//!
//! The tests of one binary run side by side (one thread per core); two such loads side by side
//! on a 2-core machine would starve each other, and the bounds they check would measure the
//! other load. Tests with a light load, or none, do not wait.

use std::sync::{Mutex, MutexGuard};

/// Held by the one heavy load running.
static HEAVY: Mutex<()> = Mutex::new(());

/// Waits until no other heavy load of this test process runs; the load may run while the guard
/// is held. A test that failed while holding it does not stop the others (the lock is taken
/// back from a poisoned mutex).
pub fn exclusive() -> MutexGuard<'static, ()> {
    HEAVY.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
