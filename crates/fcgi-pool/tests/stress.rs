//! Stress: a million tiny jobs from eight submitting threads, each run exactly once, with the
//! pool's thread count sampled all along and never above `max_threads`.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use common::PATIENCE;
use fcgi_pool::{Pool, RejectReason};

const JOBS: usize = 1_000_000;
const SUBMITTERS: usize = 8;
const MAX_THREADS: usize = 8;

#[test]
fn a_million_tiny_jobs_from_eight_threads_each_run_exactly_once() {
    let started = Instant::now();
    // A 1 ms grace period and a small max_spare make threads retire and respawn all along,
    // so the cap is tested under churn too.
    let pool = Pool::builder()
        .min_spare(1)
        .max_spare(2)
        .max_threads(MAX_THREADS)
        .queue_capacity(1024)
        .idle_grace(Duration::from_millis(1))
        .build()
        .unwrap();
    let pool = Arc::new(pool);
    let runs: Arc<Vec<AtomicU8>> = Arc::new((0..JOBS).map(|_| AtomicU8::new(0)).collect());

    // Sample the thread count until the jobs are all submitted and done.
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (pool, done) = (Arc::clone(&pool), Arc::clone(&done));
        thread::spawn(move || {
            let (mut samples, mut most) = (0usize, 0usize);
            while !done.load(Ordering::Relaxed) {
                let stats = pool.stats();
                assert!(stats.threads <= MAX_THREADS, "over the cap: {stats:?}");
                assert_eq!(stats.busy + stats.idle, stats.threads);
                most = most.max(stats.threads);
                samples += 1;
                thread::sleep(Duration::from_micros(200));
            }
            (samples, most)
        })
    };

    let full = Arc::new(AtomicUsize::new(0));
    let gate = Arc::new(Barrier::new(SUBMITTERS));
    let submitters: Vec<_> = (0..SUBMITTERS)
        .map(|s| {
            let (pool, runs, gate, full) =
                (Arc::clone(&pool), Arc::clone(&runs), Arc::clone(&gate), Arc::clone(&full));
            thread::spawn(move || {
                gate.wait();
                for i in (s..JOBS).step_by(SUBMITTERS) {
                    let runs = Arc::clone(&runs);
                    let mut job = move || {
                        runs[i].fetch_add(1, Ordering::Relaxed);
                    };
                    // A full queue hands the job back: offer it again until it is taken.
                    loop {
                        match pool.execute(job) {
                            Ok(()) => break,
                            Err(rejected) => {
                                assert_eq!(rejected.reason(), RejectReason::QueueFull);
                                full.fetch_add(1, Ordering::Relaxed);
                                job = rejected.into_job();
                                thread::yield_now();
                            }
                        }
                    }
                }
            })
        })
        .collect();
    for submitter in submitters {
        submitter.join().unwrap();
    }
    let report = pool.shutdown(PATIENCE);
    done.store(true, Ordering::Relaxed);
    let (samples, most) = sampler.join().unwrap();

    assert!(report.is_complete(), "{report:?}");
    let stats = pool.stats();
    assert_eq!(stats.completed, JOBS as u64);
    assert_eq!(stats.panicked, 0);
    let wrong: Vec<_> = (0..JOBS).filter(|&i| runs[i].load(Ordering::Relaxed) != 1).collect();
    assert!(wrong.is_empty(), "{} jobs did not run exactly once, first {}", wrong.len(), wrong[0]);
    assert!(samples > 10, "the sampler ran ({samples} samples)");
    eprintln!(
        "{JOBS} jobs in {:.2?}: {samples} samples, at most {most} threads, {} spawned, {} retired, \
         {} queue-full retries",
        started.elapsed(),
        stats.spawned,
        stats.retired,
        full.load(Ordering::Relaxed),
    );
}
