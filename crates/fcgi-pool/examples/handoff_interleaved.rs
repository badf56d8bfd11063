//! The `jobs-queued` comparison of `benches/handoff.rs`, interleaved: batches of 1,000 empty
//! jobs alternate between fcgi-pool's `execute` and a plain crossbeam-channel worker loop
//! with as many threads, so that both see the same machine at the same time. Criterion runs
//! each benchmark for seconds on end, and on a shared machine the load shifts between two
//! benchmarks often move their ratio by more than the difference being measured.
//!
//! Run: `cargo run --release -p fcgi-pool --example handoff_interleaved -- [rounds]`
//! (default 3,000 rounds). Prints the median batch time of each and their ratio.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use fcgi_pool::Pool;

const THREADS: usize = 4;
const BATCH: usize = 1000;

type Job = Box<dyn FnOnce() + Send + 'static>;

fn main() {
    let rounds: usize = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(3000);

    let (sender, receiver) = crossbeam_channel::unbounded::<Job>();
    let workers: Vec<_> = (0..THREADS)
        .map(|_| {
            let receiver = receiver.clone();
            thread::spawn(move || {
                while let Ok(job) = receiver.recv() {
                    job();
                }
            })
        })
        .collect();
    let pool = Pool::builder()
        .min_spare(THREADS)
        .max_spare(THREADS)
        .max_threads(THREADS)
        .queue_capacity(BATCH)
        .build()
        .expect("a valid pool");

    // Each job counts itself done; the last one of a batch says so.
    let left = Arc::new(AtomicUsize::new(0));
    let (done_tx, done) = crossbeam_channel::bounded::<()>(1);
    let job = || {
        let (left, done_tx) = (Arc::clone(&left), done_tx.clone());
        move || {
            if left.fetch_sub(1, Ordering::AcqRel) == 1 {
                done_tx.send(()).expect("main waits");
            }
        }
    };

    let (mut pooled, mut plain) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        left.store(BATCH, Ordering::SeqCst);
        let start = Instant::now();
        for _ in 0..BATCH {
            if pool.execute(job()).is_err() {
                panic!("the queue holds a whole batch");
            }
        }
        done.recv().expect("batch done");
        pooled.push(start.elapsed());

        left.store(BATCH, Ordering::SeqCst);
        let start = Instant::now();
        for _ in 0..BATCH {
            sender.send(Box::new(job())).expect("workers alive");
        }
        done.recv().expect("batch done");
        plain.push(start.elapsed());
    }
    drop(sender);
    for worker in workers {
        worker.join().expect("worker");
    }

    let median = |times: &mut Vec<Duration>| {
        times.sort_unstable();
        times[times.len() / 2]
    };
    let (pooled, plain) = (median(&mut pooled), median(&mut plain));
    println!(
        "{rounds} rounds of {BATCH} empty jobs, {THREADS} threads: fcgi-pool execute {pooled:.1?}, \
         channel loop {plain:.1?} (medians): ratio {:.2}",
        pooled.as_secs_f64() / plain.as_secs_f64()
    );
}
