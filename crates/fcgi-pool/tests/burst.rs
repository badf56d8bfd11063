//! Bursts: the worked example of the crate documentation (50 jobs on `min_spare = 2,
//! max_spare = 4, max_threads = 16`) step by step, and the pool shrinking back to `max_spare`
//! after bursts without ever going below `min_spare`.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use common::{wait_until, Gate, PATIENCE};
use fcgi_pool::{Pool, RejectReason};

fn example_pool(grace: Duration) -> Pool {
    Pool::builder()
        .min_spare(2)
        .max_spare(4)
        .max_threads(16)
        .queue_capacity(64)
        .idle_grace(grace)
        .build()
        .unwrap()
}

/// (threads, idle, busy, queued)
fn shape(pool: &Pool) -> (usize, usize, usize, usize) {
    let s = pool.stats();
    (s.threads, s.idle, s.busy, s.queued)
}

#[test]
fn the_worked_example_burst_of_50_with_try_execute() {
    let pool = example_pool(Duration::from_millis(30));
    assert_eq!(shape(&pool), (2, 2, 0, 0), "a new pool starts with min_spare threads");
    let mut gate = Gate::new();
    let mut rejected = 0;
    for job in 1..=50 {
        match pool.try_execute(gate.job(job)) {
            Ok(()) => {}
            Err(refused) => {
                assert_eq!(refused.reason(), RejectReason::AllBusy);
                rejected += 1;
            }
        }
        let expected = match job {
            // Each job takes an idle thread and one is spawned to keep two idle.
            1..=14 => (2 + job, 2, job, 0),
            // At the cap: the last two idle threads are taken, none spawned.
            15 => (16, 1, 15, 0),
            // All 16 busy: every further job is handed back.
            _ => (16, 0, 16, 0),
        };
        assert_eq!(shape(&pool), expected, "after job {job}");
    }
    assert_eq!(rejected, 34);
    gate.started(16);
    assert!(pool.all_busy());

    // The jobs finish: 16 idle threads, 12 of them above max_spare; after the grace period
    // those 12 retire and 4 stay.
    gate.open();
    assert!(wait_until(PATIENCE, || shape(&pool) == (4, 4, 0, 0)), "{:?}", pool.stats());
    let stats = pool.stats();
    assert_eq!((stats.spawned, stats.retired, stats.completed), (16, 12, 16));
}

#[test]
fn the_worked_example_burst_of_50_with_execute_queues_the_overflow() {
    let pool = example_pool(Duration::from_millis(30));
    let mut gate = Gate::new();
    for job in 1..=50 {
        pool.execute(gate.job(job)).unwrap();
    }
    // 16 run, 34 wait in the queue.
    assert_eq!(shape(&pool), (16, 0, 16, 34));
    let mut first: Vec<_> = gate.started(16);
    first.sort_unstable();
    assert_eq!(first, (1..=16).collect::<Vec<_>>());
    gate.open();
    // (Their FIFO order is checked with one thread in rules.rs; with 16 threads finishing at
    // once, the order in which the jobs report starting is up to the scheduler.)
    let mut rest = gate.started(34);
    rest.sort_unstable();
    assert_eq!(rest, (17..=50).collect::<Vec<_>>());
    assert!(wait_until(PATIENCE, || shape(&pool) == (4, 4, 0, 0)), "{:?}", pool.stats());
    assert_eq!(pool.stats().completed, 50);
}

#[test]
fn the_pool_shrinks_back_to_max_spare_after_bursts_and_never_below_min_spare() {
    let pool = Arc::new(example_pool(Duration::from_millis(10)));
    // Sample the thread count all along: it must never drop below min_spare.
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (pool, stop) = (Arc::clone(&pool), Arc::clone(&stop));
        thread::spawn(move || {
            let mut fewest = usize::MAX;
            while !stop.load(Ordering::Relaxed) {
                fewest = fewest.min(pool.stats().threads);
                thread::sleep(Duration::from_micros(200));
            }
            fewest
        })
    };
    for round in 0..3 {
        let mut gate = Gate::new();
        let size = 10 + 2 * round; // up to 14 jobs: 16 threads, the cap
        for job in 0..size {
            pool.try_execute(gate.job(job)).unwrap();
        }
        gate.started(size);
        assert_eq!(shape(&pool), (size + 2, 2, size, 0), "round {round}");
        gate.open();
        assert!(wait_until(PATIENCE, || shape(&pool) == (4, 4, 0, 0)), "{:?}", pool.stats());
    }
    stop.store(true, Ordering::Relaxed);
    let fewest = sampler.join().unwrap();
    assert!(fewest >= 2, "the pool went below min_spare: {fewest} threads");
    // No burst ran into the cap, so nothing was rejected.
    assert_eq!(pool.stats().rejected, 0);
}
