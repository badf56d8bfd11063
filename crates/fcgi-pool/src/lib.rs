//! A pool of worker threads with flup's `minSpare` / `maxSpare` / `maxThreads` semantics, made
//! precise: the thread pool of the fcgi-rs application server.
//!
//! The server hands each request to the pool as a closure. The pool runs it on a thread that
//! is already waiting, so no request pays for starting a thread; it keeps a few such threads
//! ready, lets surplus ones go after a burst, and never runs more threads than a hard cap. When
//! every thread is busy it says so at once, so the server can answer "overloaded" instead of
//! letting requests pile up.
//!
//! ```
//! use fcgi_pool::{Pool, RejectReason};
//!
//! let pool = Pool::builder().min_spare(2).max_spare(4).max_threads(16).build()?;
//! match pool.try_execute(|| println!("serving a request")) {
//!     Ok(()) => {}
//!     Err(rejected) if rejected.reason() == RejectReason::AllBusy => {
//!         let _request = rejected.into_job(); // answer "503 overloaded" with it
//!     }
//!     Err(rejected) => eprintln!("{rejected}"),
//! }
//! # Ok::<(), fcgi_pool::BuildError>(())
//! ```
//!
//! # The three knobs
//!
//! - **`min_spare`**: the pool keeps at least this many *idle* threads ready. A new pool
//!   starts with `min_spare` threads. Whenever a job takes an idle thread and fewer than
//!   `min_spare` remain idle, the submitting call starts new threads to make up the
//!   difference (after handing the job over, so the job does not wait for them), but never
//!   past `max_threads`.
//! - **`max_spare`**: when more than `max_spare` threads are idle, the surplus retire, each
//!   once it has been idle for the grace period ([`Builder::idle_grace`], default
//!   [`DEFAULT_IDLE_GRACE`], 10 s). Since `max_spare >= min_spare`, retiring never takes the
//!   pool below `min_spare` idle threads. flup retires at once, which under bursty load
//!   kills threads only to start them again for the next burst; the grace period bridges the
//!   gaps between bursts. The default is the measured best of the periods up to 10 s
//!   (docs/BENCHMARKS.md has the measurement; [`DEFAULT_IDLE_GRACE`] sums it up).
//! - **`max_threads`**: a hard cap on threads, busy and idle together. `0` means no cap, as
//!   in Rocket.
//!
//! Invalid combinations (`min_spare > max_spare`, `max_spare > max_threads`,
//! `min_spare == 0` with no cap, values too large to count) are a [`BuildError`] from
//! [`Builder::build`], never a panic.
//!
//! # A worked example: a burst of 50 jobs
//!
//! Take `min_spare = 2`, `max_spare = 4`, `max_threads = 16`, and a burst of 50 jobs that
//! arrive faster than any of them finishes:
//!
//! | step | threads | idle | busy | what happens |
//! |---|---|---|---|---|
//! | `build()` | 2 | 2 | 0 | the pool starts `min_spare` threads |
//! | job 1 | 3 | 2 | 1 | it takes an idle thread; 1 idle is below `min_spare`, so one is spawned |
//! | jobs 2 to 14 | 4 to 16 | 2 | 2 to 14 | the same for each job: one thread taken, one spawned |
//! | job 15 | 16 | 1 | 15 | it takes an idle thread; the pool is at the cap, nothing is spawned |
//! | job 16 | 16 | 0 | 16 | it takes the last idle thread |
//! | jobs 17 to 50 | 16 | 0 | 16 | `try_execute` hands each back at once (34 × [`RejectReason::AllBusy`]); `execute` queues them instead (34 queued, if `queue_capacity >= 34`) |
//! | the jobs finish | 16 | 16 | 0 | with `execute`, each thread runs queued jobs until the queue is empty, then goes idle |
//! | grace period later | 4 | 4 | 0 | 16 idle is 12 more than `max_spare`: 12 threads retire, 4 stay |
//! | the next burst | 4, 4, then +1 per job | 3, 2, then 2 | 1, 2, ... | the first two jobs take spare threads without spawning; from the third on, each spawns one, as job 1 did |
//!
//! The same, run (this is a test):
//!
//! ```
//! use std::time::Duration;
//! use fcgi_pool::Pool;
//!
//! let pool = Pool::builder()
//!     .min_spare(2)
//!     .max_spare(4)
//!     .max_threads(16)
//!     .idle_grace(Duration::from_millis(50))
//!     .build()?;
//! let shape = |pool: &Pool| {
//!     let s = pool.stats();
//!     (s.threads, s.idle, s.busy)
//! };
//! assert_eq!(shape(&pool), (2, 2, 0));
//!
//! // Jobs that wait until `release` is dropped: none finishes during the burst.
//! let (release, wait) = crossbeam_channel::bounded::<()>(0);
//! let mut handed_back = 0;
//! for job in 1..=50 {
//!     let wait = wait.clone();
//!     if pool.try_execute(move || { let _ = wait.recv(); }).is_err() {
//!         handed_back += 1;
//!     }
//!     match job {
//!         1 => assert_eq!(shape(&pool), (3, 2, 1)),
//!         14 => assert_eq!(shape(&pool), (16, 2, 14)),
//!         15 => assert_eq!(shape(&pool), (16, 1, 15)),
//!         16 => assert_eq!(shape(&pool), (16, 0, 16)),
//!         _ => {}
//!     }
//! }
//! assert_eq!(handed_back, 34);
//!
//! // The burst ends; after the grace period the pool is back to max_spare idle threads.
//! drop(release);
//! let deadline = std::time::Instant::now() + Duration::from_secs(10);
//! while shape(&pool) != (4, 4, 0) && std::time::Instant::now() < deadline {
//!     std::thread::sleep(Duration::from_millis(5));
//! }
//! assert_eq!(shape(&pool), (4, 4, 0));
//! assert_eq!(pool.stats().retired, 12);
//! # Ok::<(), fcgi_pool::BuildError>(())
//! ```
//!
//! # `try_execute` or `execute`
//!
//! Both never block, and both box the job only once it is accepted: a refused job comes back
//! in a [`Rejected`] as the caller's own closure, at no cost.
//!
//! - [`Pool::try_execute`] (flup's `addJob(job, allowQueuing=False)`) runs the job now, on an
//!   idle thread or a newly spawned one, or hands it back when all `max_threads` threads are
//!   busy. Use it where waiting is worse than refusing: a server that would rather answer
//!   "503 overloaded" at once than hold a connection in a queue. [`Pool::all_busy`] answers
//!   the same question with one atomic load, before there is a job to offer.
//! - [`Pool::execute`] (`allowQueuing=True`) lets the job wait in a FIFO queue of
//!   [`Builder::queue_capacity`] jobs when all threads are busy, and hands it back only when
//!   that queue is full. Use it to absorb short bursts above `max_threads`.
//!
//! # Panics in jobs
//!
//! A job that panics does not take its thread, or the pool, down: the panic is caught,
//! counted in [`Stats::panicked`], and the thread goes back to work. The thread count and the
//! spare count are unchanged.
//!
//! # Shutting down
//!
//! [`Pool::shutdown`] stops taking jobs (they come back as
//! [`RejectReason::ShuttingDown`]), lets the running and queued jobs finish until a deadline,
//! joins the threads, and returns a [`ShutdownReport`] of what did not finish in time: jobs
//! still running (their threads are detached, not killed) and queued jobs dropped unrun.
//! It is safe to call twice, from any thread. Dropping the pool calls it with
//! [`Builder::drop_timeout`].
//!
//! # Threads
//!
//! Workers are named `fcgi-worker-1`, `fcgi-worker-2`, ... and their stack size is
//! [`Builder::stack_size`]. No thread exists before [`Builder::build`]: there is no global or
//! lazily started pool, so a process may `fork()` safely before building its pools.
//!
//! # Watching it
//!
//! [`Pool::stats`] is a lock-free snapshot (a handful of atomic loads) of the nine numbers
//! of [`Stats`]: threads, idle, busy, queued, and the totals spawned, retired, completed,
//! panicked and rejected.
//!
//! # Design
//!
//! The counts that decisions depend on (threads, idle, queued, shutting down) live in one
//! atomic word, changed by compare-and-swap; jobs travel through one crossbeam channel; each
//! message in that channel is paired with exactly one thread committed to receive it. The
//! worker's state machine, the invariants and why they hold are in `DESIGN.md` beside this
//! crate's `Cargo.toml`.

#![forbid(unsafe_code)]

mod builder;
mod error;
mod pool;
mod shared;
mod source;
mod state;
mod stats;
mod worker;

pub use builder::{
    Builder, DEFAULT_DROP_TIMEOUT, DEFAULT_IDLE_GRACE, DEFAULT_MAX_SPARE, DEFAULT_MAX_THREADS,
    DEFAULT_MIN_SPARE, DEFAULT_QUEUE_CAPACITY, MAX_QUEUE_CAPACITY, MAX_THREADS_LIMIT,
};
pub use error::{BuildError, RejectReason, Rejected};
pub use pool::Pool;
pub use source::{Source, Wait};
pub use stats::{ShutdownReport, Stats};
