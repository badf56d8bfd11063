//! The cost of handing a job to a thread: fcgi-pool against a thread per job and against a
//! plain crossbeam-channel worker loop with as many threads, in one criterion group.
//!
//! - `latency-*/*`: from the submitting call (`try_execute`, `send`, `thread::spawn`) to the
//!   first instruction of the job, one job at a time, with an idle thread waiting: still
//!   spinning from the previous job ("hot"), or parked ("parked").
//! - `jobs-*/*`: a batch of 1,000 empty jobs, submitted as fast as possible, until the last
//!   one has run: queued (`execute` against an unbounded channel), or handed off only to a
//!   waiting thread (`try_execute` against a channel of capacity 0), or a thread each.
//!
//! Run with `cargo bench -p fcgi-pool --bench handoff`; the figures are in docs/BENCHMARKS.md.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use crossbeam_channel::{Receiver, Sender};
use fcgi_pool::Pool;

/// Worker threads, for the pool and for the plain loop.
const THREADS: usize = 4;
/// Jobs per throughput batch.
const BATCH: usize = 1000;

type Job = Box<dyn FnOnce() + Send + 'static>;

/// The baselines: `THREADS` threads receiving boxed jobs from one channel, either unbounded
/// (jobs queue, like `execute`) or of capacity 0 (a job is taken only by a thread already
/// waiting, like `try_execute`).
struct ChannelLoop {
    sender: Option<Sender<Job>>,
    threads: Vec<JoinHandle<()>>,
}

impl ChannelLoop {
    fn new(threads: usize, capacity: Option<usize>) -> Self {
        let (sender, receiver) = match capacity {
            None => crossbeam_channel::unbounded::<Job>(),
            Some(capacity) => crossbeam_channel::bounded::<Job>(capacity),
        };
        let threads = (0..threads)
            .map(|_| {
                let receiver = receiver.clone();
                thread::spawn(move || {
                    while let Ok(job) = receiver.recv() {
                        job();
                    }
                })
            })
            .collect();
        ChannelLoop { sender: Some(sender), threads }
    }

    fn send(&self, job: impl FnOnce() + Send + 'static) {
        self.sender.as_ref().unwrap().send(Box::new(job)).unwrap();
    }

    /// Offers the job until a waiting thread takes it (yielding between offers).
    fn hand_off(&self, job: impl FnOnce() + Send + 'static) {
        let mut job: Job = Box::new(job);
        while let Err(refused) = self.sender.as_ref().unwrap().try_send(job) {
            job = refused.into_inner();
            thread::yield_now();
        }
    }
}

impl Drop for ChannelLoop {
    fn drop(&mut self) {
        self.sender = None;
        for thread in self.threads.drain(..) {
            thread.join().unwrap();
        }
    }
}

fn pool() -> Pool {
    Pool::builder()
        .min_spare(THREADS)
        .max_spare(THREADS)
        .max_threads(THREADS)
        .queue_capacity(BATCH)
        .build()
        .unwrap()
}

/// The job of the latency benchmarks: report when it starts, then that it is finished.
fn report_start(
    started: Sender<Instant>,
    finished: Arc<AtomicBool>,
) -> impl FnOnce() + Send + 'static {
    move || {
        started.send(Instant::now()).unwrap();
        finished.store(true, Ordering::Release);
    }
}

/// Times `iters` hand-offs, one at a time: `submit` gets a job that reports when it starts.
///
/// Before each hand-off (untimed), the loop waits until the previous job has returned and
/// `settled` holds (for the pool: its thread is counted idle again), then, if `gap` is set,
/// spins that long so that the worker threads have stopped spinning and parked.
fn latency<J>(
    iters: u64,
    gap: Option<Duration>,
    make: impl Fn(Sender<Instant>, Arc<AtomicBool>) -> J,
    settled: impl Fn() -> bool,
    mut submit: impl FnMut(J),
) -> Duration {
    let (started_tx, started): (Sender<Instant>, Receiver<Instant>) = crossbeam_channel::bounded(1);
    let finished = Arc::new(AtomicBool::new(true));
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        while !(finished.load(Ordering::Acquire) && settled()) {
            std::hint::spin_loop();
        }
        if let Some(gap) = gap {
            let until = Instant::now() + gap;
            while Instant::now() < until {
                std::hint::spin_loop();
            }
        }
        finished.store(false, Ordering::Relaxed);
        let job = make(started_tx.clone(), Arc::clone(&finished));
        let submitted = Instant::now();
        submit(job);
        total += started.recv().unwrap() - submitted;
    }
    total
}

/// A batch of empty jobs (each only counts itself done) and a way to wait for all of them.
struct Batch {
    left: Arc<AtomicUsize>,
    done_tx: Sender<()>,
    done: Receiver<()>,
}

impl Batch {
    fn new() -> Self {
        let (done_tx, done) = crossbeam_channel::bounded(1);
        Batch { left: Arc::new(AtomicUsize::new(0)), done_tx, done }
    }

    fn start(&self) {
        self.left.store(BATCH, Ordering::SeqCst);
    }

    fn job(&self) -> impl FnOnce() + Send + 'static {
        let (left, done) = (Arc::clone(&self.left), self.done_tx.clone());
        move || {
            if left.fetch_sub(1, Ordering::AcqRel) == 1 {
                done.send(()).unwrap();
            }
        }
    }

    fn wait(&self) {
        self.done.recv().unwrap();
    }
}

fn handoff(c: &mut Criterion) {
    let mut group = c.benchmark_group("handoff");
    group.sample_size(50).warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(4));

    // Latency, with the worker threads still spinning from the previous job ("hot") and with
    // them parked ("parked": 50 µs after the previous job, which costs a futex wake).
    group.throughput(Throughput::Elements(1));
    for (name, gap) in [("hot", None), ("parked", Some(Duration::from_micros(50)))] {
        if gap.is_some() {
            group.measurement_time(Duration::from_secs(2));
        }
        {
            let pool = pool();
            // Every hand-off finds an idle thread, never `AllBusy`.
            let settled = || pool.stats().idle == THREADS;
            group.bench_function(format!("latency-{name}/fcgi-pool-try_execute"), |b| {
                b.iter_custom(|iters| {
                    latency(iters, gap, report_start, settled, |job| pool.try_execute(job).unwrap())
                })
            });
        }
        {
            let workers = ChannelLoop::new(THREADS, None);
            group.bench_function(format!("latency-{name}/channel-loop"), |b| {
                b.iter_custom(|iters| {
                    latency(iters, gap, report_start, || true, |job| workers.send(job))
                })
            });
        }
    }
    group.bench_function("latency/thread-spawn", |b| {
        b.iter_custom(|iters| {
            let mut handles = Vec::new();
            let total = latency(
                iters,
                None,
                report_start,
                || true,
                |job| {
                    handles.push(thread::spawn(job));
                },
            );
            for handle in handles {
                handle.join().unwrap();
            }
            total
        })
    });
    group.measurement_time(Duration::from_secs(4));

    // Jobs per second: batches of empty jobs. "queued": every job is accepted at once and
    // waits for a thread (`execute`, against an unbounded channel). "handoff": every job must
    // find a waiting thread, offered again until one does (`try_execute`, against a channel
    // of capacity 0 and `try_send`).
    group.throughput(Throughput::Elements(BATCH as u64));
    let batch = Batch::new();
    {
        let pool = pool();
        group.bench_function("jobs-queued/fcgi-pool-execute", |b| {
            b.iter(|| {
                batch.start();
                for _ in 0..BATCH {
                    pool.execute(batch.job()).unwrap();
                }
                batch.wait();
            })
        });
        group.bench_function("jobs-handoff/fcgi-pool-try_execute", |b| {
            b.iter(|| {
                batch.start();
                for _ in 0..BATCH {
                    let mut job = batch.job();
                    while let Err(rejected) = pool.try_execute(job) {
                        job = rejected.into_job();
                        thread::yield_now();
                    }
                }
                batch.wait();
            })
        });
    }
    {
        let workers = ChannelLoop::new(THREADS, None);
        group.bench_function("jobs-queued/channel-loop", |b| {
            b.iter(|| {
                batch.start();
                for _ in 0..BATCH {
                    workers.send(batch.job());
                }
                batch.wait();
            })
        });
    }
    {
        let workers = ChannelLoop::new(THREADS, Some(0));
        group.bench_function("jobs-handoff/channel-loop-rendezvous", |b| {
            b.iter(|| {
                batch.start();
                for _ in 0..BATCH {
                    workers.hand_off(batch.job());
                }
                batch.wait();
            })
        });
    }
    group.sample_size(10);
    group.bench_function("jobs/thread-spawn", |b| {
        b.iter(|| {
            batch.start();
            let handles: Vec<_> = (0..BATCH).map(|_| thread::spawn(batch.job())).collect();
            batch.wait();
            for handle in handles {
                handle.join().unwrap();
            }
        })
    });
    group.finish();
}

criterion_group!(benches, handoff);
criterion_main!(benches);
