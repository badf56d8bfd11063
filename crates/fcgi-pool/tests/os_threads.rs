//! The pool's threads as the operating system sees them (Linux `/proc/self/task`). One test in
//! its own binary, so no other test's threads are counted.
//!
//! - No thread exists before `build` (the process manager forks before building pools).
//! - `build` starts exactly `min_spare` threads, named `fcgi-worker-N`.
//! - Under a burst, the OS never sees more than `max_threads` of them.
//! - After `shutdown`, none is left: they were joined.

#![cfg(target_os = "linux")]

mod common;

use std::fs;

use common::{wait_until, Gate, PATIENCE};
use fcgi_pool::Pool;

/// How many threads of this process have a name starting with `fcgi-worker`.
fn worker_threads() -> usize {
    let tasks = fs::read_dir("/proc/self/task").unwrap();
    tasks
        .filter_map(|task| fs::read_to_string(task.ok()?.path().join("comm")).ok())
        .filter(|comm| comm.starts_with("fcgi-worker"))
        .count()
}

#[test]
fn threads_exist_only_from_build_to_shutdown_and_never_above_the_cap() {
    let builder = Pool::builder().min_spare(3).max_spare(4).max_threads(8).queue_capacity(100);
    assert_eq!(worker_threads(), 0, "a builder starts nothing");

    let pool = builder.build().unwrap();
    assert!(wait_until(PATIENCE, || worker_threads() == 3), "{}", worker_threads());

    let mut gate = Gate::new();
    let mut most = 0;
    for job in 0..100 {
        pool.execute(gate.job(job)).unwrap();
        most = most.max(worker_threads());
    }
    gate.started(8);
    most = most.max(worker_threads());
    assert_eq!(worker_threads(), 8);
    gate.open();
    // The 92 queued jobs start as threads free up; watch the thread count meanwhile.
    for _ in 8..100 {
        gate.next_started();
        most = most.max(worker_threads());
    }
    assert!(wait_until(PATIENCE, || pool.stats().completed == 100));
    assert!(most <= 8, "{most} threads seen, max_threads is 8");

    assert!(pool.shutdown(PATIENCE).is_complete());
    assert_eq!(worker_threads(), 0, "shutdown joined every thread");
}
