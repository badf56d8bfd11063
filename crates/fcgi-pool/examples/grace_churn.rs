//! The measurement behind `DEFAULT_IDLE_GRACE`: thread churn under bursty load for several
//! idle grace periods.
//!
//! Each grace period gets its own pool (`min_spare = 2, max_spare = 4, max_threads = 64`)
//! and its own driver thread; every driver replays the same pseudo-random arrival schedule,
//! so all pools see the same load at the same time. The schedule is bursts of 5 to 30 requests
//! (each sleeps 1 to 5 ms, like a request waiting on I/O), separated by gaps drawn from one
//! of two workloads:
//!
//! - `interactive`: 70 % of gaps exponential with mean 300 ms (a page's assets, several
//!   users at once), 30 % exponential with mean 5 s (think time);
//! - `sparse`: all gaps exponential with mean 3 s.
//!
//! For each grace period it prints the threads spawned (churn), the time the submitting
//! thread spent in `try_execute` (spawning happens there), the time from `try_execute` to
//! the job starting, and the surplus thread-seconds (threads idle above `max_spare`,
//! integrated over time): the memory cost of a longer grace period.
//!
//! Run: `cargo run --release -p fcgi-pool --example grace_churn -- [seconds per workload]`
//! (default 60).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use fcgi_pool::Pool;

const GRACES_MS: [u64; 8] = [0, 10, 100, 500, 1000, 2000, 5000, 10000];

/// A small deterministic generator (xorshift64*), so every pool sees the same schedule.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn range(&mut self, low: u64, high: u64) -> u64 {
        low + self.next() % (high - low + 1)
    }

    fn exponential(&mut self, mean: Duration) -> Duration {
        mean.mul_f64(-(1.0 - self.unit()).ln())
    }
}

/// One burst: when it starts (from the beginning of the run) and its jobs' durations.
struct Burst {
    at: Duration,
    jobs: Vec<Duration>,
}

fn schedule(workload: &str, length: Duration) -> Vec<Burst> {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut at = Duration::ZERO;
    let mut bursts = Vec::new();
    while at < length {
        let size = rng.range(5, 30);
        let jobs = (0..size).map(|_| Duration::from_micros(rng.range(1000, 5000))).collect();
        bursts.push(Burst { at, jobs });
        let gap = match workload {
            "interactive" if rng.unit() < 0.7 => rng.exponential(Duration::from_millis(300)),
            "interactive" => rng.exponential(Duration::from_secs(5)),
            _ => rng.exponential(Duration::from_secs(3)),
        };
        at += gap;
    }
    bursts
}

#[derive(Default)]
struct Outcome {
    jobs: usize,
    rejected: usize,
    submit: Vec<Duration>,
    start: Vec<Duration>,
    spawned: u64,
    surplus_thread_seconds: f64,
    peak: usize,
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

fn drive(grace: Duration, bursts: &[Burst]) -> Outcome {
    let pool = Arc::new(
        Pool::builder()
            .min_spare(2)
            .max_spare(4)
            .max_threads(64)
            .idle_grace(grace)
            .build()
            .expect("valid pool"),
    );
    // Sample the surplus idle threads every 10 ms.
    let running = Arc::new(AtomicBool::new(true));
    let sampler = {
        let (pool, running) = (Arc::clone(&pool), Arc::clone(&running));
        thread::spawn(move || {
            let (mut surplus, mut peak) = (0.0, 0);
            let tick = Duration::from_millis(10);
            while running.load(Ordering::Relaxed) {
                let stats = pool.stats();
                surplus += stats.idle.saturating_sub(4) as f64 * tick.as_secs_f64();
                peak = peak.max(stats.threads);
                thread::sleep(tick);
            }
            (surplus, peak)
        })
    };
    let starts = Arc::new(Mutex::new(Vec::new()));
    let mut outcome = Outcome::default();
    let begin = Instant::now();
    for burst in bursts {
        if let Some(wait) = burst.at.checked_sub(begin.elapsed()) {
            thread::sleep(wait);
        }
        for &work in &burst.jobs {
            let starts = Arc::clone(&starts);
            let submitted = Instant::now();
            let job = move || {
                let latency = submitted.elapsed();
                starts.lock().expect("not poisoned").push(latency);
                thread::sleep(work);
            };
            let accepted = pool.try_execute(job).is_ok();
            outcome.submit.push(submitted.elapsed());
            outcome.jobs += 1;
            outcome.rejected += usize::from(!accepted);
        }
    }
    let _ = pool.shutdown(Duration::from_secs(10));
    running.store(false, Ordering::Relaxed);
    let (surplus, peak) = sampler.join().expect("sampler");
    outcome.surplus_thread_seconds = surplus;
    outcome.peak = peak;
    outcome.spawned = pool.stats().spawned;
    outcome.start = std::mem::take(&mut *starts.lock().expect("not poisoned"));
    outcome
}

/// The resident memory of this process, from `/proc/self/status` (Linux), in KiB.
fn rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// What one side of the trade costs: starting a thread (time from `try_execute` on a pool with
/// no idle thread to the job starting, which includes the spawn), and keeping one idle
/// (resident memory per idle thread).
fn costs() {
    const N: usize = 200;
    let pool = Pool::builder().min_spare(0).max_spare(N).max_threads(N).build().expect("pool");
    let (tx, rx) = std::sync::mpsc::channel();
    // Each job holds its thread until `release` is dropped, so each submission spawns.
    let (release, hold) = crossbeam_channel::bounded::<()>(0);
    let mut spawn = Duration::ZERO;
    for _ in 0..N {
        let (tx, hold) = (tx.clone(), hold.clone());
        let submitted = Instant::now();
        let job = move || {
            tx.send(submitted.elapsed()).expect("main waits");
            let _ = hold.recv();
        };
        pool.try_execute(job).expect("room for a new thread");
        spawn += rx.recv().expect("job ran");
    }
    assert_eq!(pool.stats().spawned, N as u64);
    drop(release);
    let before = rss_kib();
    let idle = Pool::builder().min_spare(N).max_spare(N).max_threads(N).build().expect("pool");
    // Let every idle thread reach its wait.
    thread::sleep(Duration::from_millis(200));
    let after = rss_kib();
    println!(
        "cost of a spawn (try_execute to job start on a new thread): {:.1?} on average over {N}",
        spawn / u32::try_from(N).unwrap_or(1)
    );
    if let (Some(before), Some(after)) = (before, after) {
        println!(
            "resident memory per idle thread: {} KiB",
            after.saturating_sub(before) / N as u64
        );
    }
    drop(idle);
}

fn main() {
    costs();
    let seconds = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(60);
    let length = Duration::from_secs(seconds);
    for workload in ["interactive", "sparse"] {
        let bursts = schedule(workload, length);
        let jobs: usize = bursts.iter().map(|b| b.jobs.len()).sum();
        println!("\nworkload {workload}: {} bursts, {jobs} jobs in {seconds} s", bursts.len());
        let bursts = Arc::new(bursts);
        let drivers: Vec<_> = GRACES_MS
            .iter()
            .map(|&ms| {
                let bursts = Arc::clone(&bursts);
                thread::spawn(move || (ms, drive(Duration::from_millis(ms), &bursts)))
            })
            .collect();
        println!(
            "| grace | threads spawned | spawned per 100 jobs | try_execute p50 / p99 / max \
             | job start p50 / p99 | surplus thread-seconds | peak threads | rejected |"
        );
        println!("|---|---|---|---|---|---|---|---|");
        for driver in drivers {
            let (ms, mut o) = driver.join().expect("driver");
            o.submit.sort_unstable();
            o.start.sort_unstable();
            println!(
                "| {ms} ms | {} | {:.1} | {:.1?} / {:.1?} / {:.1?} | {:.1?} / {:.1?} | {:.1} | {} | {} |",
                o.spawned,
                100.0 * o.spawned as f64 / o.jobs as f64,
                percentile(&o.submit, 0.5),
                percentile(&o.submit, 0.99),
                o.submit.last().copied().unwrap_or_default(),
                percentile(&o.start, 0.5),
                percentile(&o.start, 0.99),
                o.surplus_thread_seconds,
                o.peak,
                o.rejected,
            );
        }
    }
}
