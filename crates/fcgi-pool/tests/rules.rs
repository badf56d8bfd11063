//! One test per rule of the pool: the three knobs, `try_execute`, `execute`, panics,
//! shutdown, stats, thread names and stack size. Jobs are held and released with channels;
//! every wait is bounded.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use common::{wait_until, Gate, PATIENCE};
use fcgi_pool::{BuildError, Pool, RejectReason, Stats};

/// A grace period no test outlasts: idle threads never retire during the test.
const FOREVER: Duration = Duration::from_secs(3600);
/// A short grace period, for tests that watch threads retire.
const SHORT: Duration = Duration::from_millis(20);

fn counts(stats: Stats) -> (usize, usize, usize) {
    (stats.threads, stats.idle, stats.busy)
}

#[test]
fn build_rejects_each_invalid_combination_with_an_error() {
    let err = Pool::builder().min_spare(5).max_spare(4).build().unwrap_err();
    assert!(matches!(err, BuildError::MinSpareAboveMaxSpare { min_spare: 5, max_spare: 4 }));

    let err = Pool::builder().max_spare(20).max_threads(16).build().unwrap_err();
    assert!(matches!(err, BuildError::MaxSpareAboveMaxThreads { max_spare: 20, max_threads: 16 }));
    assert_eq!(err.to_string(), "max_spare (20) is above max_threads (16)");

    let err = Pool::builder().min_spare(0).max_spare(4).max_threads(0).build().unwrap_err();
    assert!(matches!(err, BuildError::NoSpareThreadsAndNoCap));

    let err = Pool::builder().max_threads(usize::MAX).build().unwrap_err();
    assert!(matches!(err, BuildError::MaxThreadsTooLarge { max_threads: usize::MAX, .. }));

    let err = Pool::builder().queue_capacity(usize::MAX).build().unwrap_err();
    assert!(matches!(err, BuildError::QueueCapacityTooLarge { .. }));

    // The edges are valid: a fixed-size pool, and a pool with no spare threads at all.
    Pool::builder().min_spare(4).max_spare(4).max_threads(4).build().unwrap();
    Pool::builder().min_spare(0).max_spare(0).max_threads(1).build().unwrap();
}

#[test]
fn build_reports_a_refused_thread_as_an_error() {
    // No system can map a 1 PiB stack: the first spawn fails.
    let err = Pool::builder().min_spare(2).max_spare(2).stack_size(1 << 50).build().unwrap_err();
    assert!(matches!(err, BuildError::Spawn(_)), "{err:?}");
}

#[test]
fn a_new_pool_starts_with_min_spare_idle_threads() {
    let pool = Pool::builder().min_spare(3).max_spare(5).max_threads(8).build().unwrap();
    let stats = pool.stats();
    assert_eq!(counts(stats), (3, 3, 0));
    assert_eq!(stats.spawned, 3);
}

#[test]
fn threads_are_named_and_get_the_configured_stack_size() {
    let pool = Pool::builder().min_spare(1).max_spare(1).max_threads(1).stack_size(32 << 20);
    let pool = pool.build().unwrap();
    let (tx, rx) = mpsc::channel();
    pool.try_execute(move || {
        // 4 MiB of locals (copied more than once in a debug build): overflows the default
        // 2 MiB stack, fits in 32 MiB.
        let big = std::hint::black_box([1u8; 4 << 20]);
        let name = std::thread::current().name().map(str::to_owned);
        tx.send((name, big.iter().map(|&b| usize::from(b)).sum::<usize>())).unwrap();
    })
    .unwrap();
    let (name, sum) = rx.recv_timeout(PATIENCE).unwrap();
    assert_eq!(name.as_deref(), Some("fcgi-worker-1"));
    assert_eq!(sum, 4 << 20);
}

#[test]
fn taking_an_idle_thread_tops_the_idle_count_back_up_to_min_spare() {
    let pool = Pool::builder().min_spare(2).max_spare(4).max_threads(16).idle_grace(FOREVER);
    let pool = pool.build().unwrap();
    let mut gate = Gate::new();
    pool.try_execute(gate.job(0)).unwrap();
    assert_eq!(gate.next_started(), 0);
    // One busy, and the one idle thread left was topped up to two.
    assert_eq!(counts(pool.stats()), (3, 2, 1));
    pool.try_execute(gate.job(1)).unwrap();
    assert_eq!(gate.next_started(), 1);
    assert_eq!(counts(pool.stats()), (4, 2, 2));
    assert_eq!(pool.stats().spawned, 4);
    gate.open();
}

#[test]
fn topping_up_min_spare_never_passes_max_threads() {
    let pool = Pool::builder().min_spare(3).max_spare(3).max_threads(4).idle_grace(FOREVER);
    let pool = pool.build().unwrap();
    let mut gate = Gate::new();
    for id in 0..4 {
        pool.try_execute(gate.job(id)).unwrap();
    }
    gate.started(4);
    assert_eq!(counts(pool.stats()), (4, 0, 4));
    assert_eq!(pool.stats().spawned, 4);
    gate.open();
}

#[test]
fn max_threads_zero_means_no_cap() {
    let pool = Pool::builder().min_spare(1).max_spare(1).max_threads(0).idle_grace(FOREVER);
    let pool = pool.build().unwrap();
    let mut gate = Gate::new();
    for id in 0..40 {
        pool.try_execute(gate.job(id)).unwrap();
    }
    gate.started(40);
    assert_eq!(counts(pool.stats()), (41, 1, 40));
    assert!(!pool.all_busy());
    gate.open();
}

#[test]
fn surplus_idle_threads_retire_after_the_grace_period() {
    let pool = Pool::builder().min_spare(1).max_spare(2).max_threads(8).idle_grace(SHORT);
    let pool = pool.build().unwrap();
    let mut gate = Gate::new();
    for id in 0..6 {
        pool.try_execute(gate.job(id)).unwrap();
    }
    gate.started(6);
    assert_eq!(counts(pool.stats()), (7, 1, 6));
    gate.open();
    // Seven idle threads, two may stay: five retire.
    assert!(wait_until(PATIENCE, || counts(pool.stats()) == (2, 2, 0)), "{:?}", pool.stats());
    assert_eq!(pool.stats().retired, 5);
}

#[test]
fn idle_threads_do_not_retire_before_the_grace_period() {
    let pool = Pool::builder().min_spare(1).max_spare(2).max_threads(8).idle_grace(FOREVER);
    let pool = pool.build().unwrap();
    let mut gate = Gate::new();
    for id in 0..6 {
        pool.try_execute(gate.job(id)).unwrap();
    }
    gate.started(6);
    gate.open();
    assert!(wait_until(PATIENCE, || pool.stats().completed == 6));
    assert!(wait_until(PATIENCE, || pool.stats().idle == 7));
    // Seven idle, five of them surplus, but none has waited an hour.
    assert_eq!(pool.stats().retired, 0);
    assert_eq!(pool.stats().threads, 7);
}

#[test]
fn a_zero_grace_period_retires_surplus_threads_at_once() {
    let pool = Pool::builder().min_spare(0).max_spare(1).max_threads(8).idle_grace(Duration::ZERO);
    let pool = pool.build().unwrap();
    let mut gate = Gate::new();
    for id in 0..5 {
        pool.try_execute(gate.job(id)).unwrap();
    }
    gate.started(5);
    gate.open();
    assert!(wait_until(PATIENCE, || counts(pool.stats()) == (1, 1, 0)), "{:?}", pool.stats());
    assert_eq!(pool.stats().retired, 4);
}

#[test]
fn try_execute_runs_now_or_hands_the_job_back_when_all_are_busy() {
    let pool = Pool::builder().min_spare(1).max_spare(1).max_threads(2).idle_grace(FOREVER);
    let pool = pool.build().unwrap();
    let mut gate = Gate::new();
    // The idle thread, then a newly spawned one.
    pool.try_execute(gate.job(0)).unwrap();
    pool.try_execute(gate.job(1)).unwrap();
    gate.started(2);
    assert!(pool.all_busy());
    let ran = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&ran);
    let rejected = pool
        .try_execute(move || {
            counter.fetch_add(1, Ordering::SeqCst);
        })
        .unwrap_err();
    assert_eq!(rejected.reason(), RejectReason::AllBusy);
    assert_eq!(pool.stats().queued, 0, "try_execute never queues");
    // The job comes back untouched, to run (or answer "overloaded") here.
    (rejected.into_job())();
    assert_eq!(ran.load(Ordering::SeqCst), 1);
    assert_eq!(pool.stats().rejected, 1);
    gate.open();
    assert!(wait_until(PATIENCE, || !pool.all_busy()));
    pool.try_execute(|| ()).unwrap();
}

#[test]
fn execute_queues_in_order_when_all_are_busy_and_hands_back_when_the_queue_is_full() {
    let pool = Pool::builder().min_spare(1).max_spare(1).max_threads(1).queue_capacity(3);
    let pool = pool.idle_grace(FOREVER).build().unwrap();
    let mut gate = Gate::new();
    pool.execute(gate.job(0)).unwrap();
    assert_eq!(gate.next_started(), 0);
    for id in 1..4 {
        pool.execute(gate.job(id)).unwrap();
    }
    assert_eq!(pool.stats().queued, 3);
    let rejected = pool.execute(gate.job(99)).unwrap_err();
    assert_eq!(rejected.reason(), RejectReason::QueueFull);
    assert!(gate.none_started_within(Duration::from_millis(20)), "queued jobs wait");
    gate.open();
    assert_eq!(gate.started(3), [1, 2, 3]);
    assert!(wait_until(PATIENCE, || pool.stats().completed == 4));
    assert_eq!(pool.stats().queued, 0);
}

#[test]
fn a_panicking_job_is_caught_and_counted_and_the_pool_keeps_its_spares() {
    let pool = Pool::builder().min_spare(2).max_spare(2).max_threads(2).idle_grace(FOREVER);
    let pool = pool.build().unwrap();
    pool.try_execute(|| panic!("a job panics (this message is expected)")).unwrap();
    // `resume_unwind` panics without printing.
    pool.try_execute(|| std::panic::resume_unwind(Box::new(7))).unwrap();
    assert!(wait_until(PATIENCE, || pool.stats().panicked == 2));
    assert!(wait_until(PATIENCE, || counts(pool.stats()) == (2, 2, 0)), "{:?}", pool.stats());
    assert_eq!(pool.stats().spawned, 2, "no thread was lost or replaced");
    // Both threads still take work.
    let mut gate = Gate::new();
    pool.try_execute(gate.job(0)).unwrap();
    pool.try_execute(gate.job(1)).unwrap();
    gate.started(2);
    gate.open();
    assert!(wait_until(PATIENCE, || pool.stats().completed == 2));
}

#[test]
fn shutdown_lets_running_and_queued_jobs_finish_then_joins() {
    let pool = Pool::builder().min_spare(1).max_spare(1).max_threads(2).queue_capacity(4);
    let pool = Arc::new(pool.idle_grace(FOREVER).build().unwrap());
    let mut gate = Gate::new();
    pool.execute(gate.job(0)).unwrap();
    pool.execute(gate.job(1)).unwrap();
    gate.started(2);
    let done = Arc::new(AtomicUsize::new(0));
    for _ in 0..4 {
        let done = Arc::clone(&done);
        pool.execute(move || {
            done.fetch_add(1, Ordering::SeqCst);
        })
        .unwrap();
    }
    let stopper = Arc::clone(&pool);
    let report = std::thread::spawn(move || stopper.shutdown(PATIENCE));
    // Shutdown has begun once new jobs are refused.
    assert!(wait_until(PATIENCE, || pool.try_execute(|| ()).is_err()));
    gate.open();
    let report = report.join().unwrap();
    assert!(report.is_complete(), "{report:?}");
    assert_eq!(done.load(Ordering::SeqCst), 4, "queued jobs ran");
    assert_eq!(counts(pool.stats()), (0, 0, 0));
    assert_eq!(pool.stats().completed, 6);
}

#[test]
fn shutdown_reports_what_misses_the_deadline_and_drops_queued_jobs() {
    let pool = Pool::builder().min_spare(1).max_spare(1).max_threads(1).queue_capacity(4);
    let pool = pool.idle_grace(FOREVER).build().unwrap();
    let mut gate = Gate::new();
    pool.execute(gate.job(0)).unwrap();
    gate.started(1);
    // Three queued jobs that must never run; their captures are dropped.
    let ran = Arc::new(AtomicUsize::new(0));
    for _ in 0..3 {
        let ran = Arc::clone(&ran);
        pool.execute(move || {
            ran.fetch_add(1, Ordering::SeqCst);
        })
        .unwrap();
    }
    let report = pool.shutdown(Duration::from_millis(50));
    assert_eq!(report.running, 1);
    assert_eq!(report.dropped, 3);
    assert_eq!(report.unfinished(), 4);
    assert_eq!(Arc::strong_count(&ran), 1, "the dropped jobs' captures were freed");
    // The stuck job finishes later; its thread exits, and a second shutdown joins it.
    gate.open();
    let again = pool.shutdown(PATIENCE);
    assert!(again.is_complete(), "{again:?}");
    assert_eq!(ran.load(Ordering::SeqCst), 0);
    assert_eq!(pool.stats().threads, 0);
}

#[test]
fn shutdown_twice_is_safe_and_refuses_new_jobs() {
    let pool = Pool::builder().min_spare(3).max_spare(3).max_threads(4).build().unwrap();
    // Idle threads are not running jobs, even with no time to wait for them.
    assert!(pool.shutdown(Duration::ZERO).is_complete());
    assert!(pool.shutdown(PATIENCE).is_complete());
    assert_eq!(pool.stats().threads, 0);
    for reason in
        [pool.try_execute(|| ()).unwrap_err().reason(), pool.execute(|| ()).unwrap_err().reason()]
    {
        assert_eq!(reason, RejectReason::ShuttingDown);
    }
    assert!(pool.all_busy());
}

#[test]
fn dropping_the_pool_waits_for_running_and_queued_jobs() {
    let done = Arc::new(AtomicUsize::new(0));
    let (started_tx, started) = mpsc::channel();
    let (release, wait) = crossbeam_channel::bounded::<()>(0);
    {
        let pool = Pool::builder().min_spare(1).max_spare(1).max_threads(1).build().unwrap();
        pool.execute(move || {
            started_tx.send(()).unwrap();
            let _ = wait.recv();
        })
        .unwrap();
        let counter = Arc::clone(&done);
        pool.execute(move || {
            counter.fetch_add(1, Ordering::SeqCst);
        })
        .unwrap();
        started.recv_timeout(PATIENCE).unwrap();
        drop(release);
        // `pool` drops here: it must run the queued job before returning.
    }
    assert_eq!(done.load(Ordering::SeqCst), 1);
}

#[test]
fn a_refused_spawn_hands_the_job_back() {
    let pool = Pool::builder().min_spare(0).max_spare(0).max_threads(2).stack_size(1 << 50);
    let pool = pool.build().unwrap();
    let rejected = pool.try_execute(|| ()).unwrap_err();
    assert!(matches!(rejected.reason(), RejectReason::SpawnFailed(_)), "{rejected:?}");
    assert_eq!(counts(pool.stats()), (0, 0, 0), "the reserved thread was uncounted");
    assert_eq!(pool.stats().rejected, 1);
    assert!(pool.shutdown(PATIENCE).is_complete());
}

#[test]
fn stats_count_every_event() {
    let pool = Pool::builder().min_spare(1).max_spare(1).max_threads(2).queue_capacity(0);
    let pool = pool.idle_grace(SHORT).build().unwrap();
    let mut gate = Gate::new();
    pool.try_execute(gate.job(0)).unwrap();
    pool.try_execute(gate.job(1)).unwrap();
    gate.started(2);
    assert!(pool.try_execute(|| ()).is_err());
    assert!(pool.execute(|| ()).is_err(), "a queue of 0 holds nothing");
    gate.open();
    // Two idle threads, one surplus: it retires after the short grace period.
    assert!(wait_until(PATIENCE, || pool.stats().retired == 1));
    // The job takes the last idle thread, so a spare is spawned.
    pool.execute(|| panic!("counted (this message is expected)")).unwrap();
    assert!(wait_until(PATIENCE, || pool.stats().panicked == 1));
    assert!(wait_until(PATIENCE, || pool.stats().retired == 2));
    let stats = pool.stats();
    assert_eq!((stats.threads, stats.idle, stats.busy, stats.queued), (1, 1, 0, 0));
    assert_eq!(stats.completed, 2);
    assert_eq!(stats.spawned, 3);
    assert_eq!(stats.rejected, 2);
    assert_eq!(stats.busy + stats.idle, stats.threads);
}
