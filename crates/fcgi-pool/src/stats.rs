//! Lock-free counters and the snapshots made from them: [`Stats`] and [`ShutdownReport`].

use std::sync::atomic::{AtomicU64, Ordering};

use crossbeam_utils::CachePadded;

use crate::state::Counts;

/// A snapshot of a pool, from [`Pool::stats`](crate::Pool::stats).
///
/// Taking one costs a handful of atomic loads and no lock, so a status page may take one per
/// request. `threads`, `idle`, `busy` and `queued` come from one load of the pool's state word
/// and are consistent with each other (`busy + idle == threads`); the five totals are each
/// exact but loaded one after another, so they may be a job or two apart.
///
/// ```
/// use fcgi_pool::Pool;
///
/// let pool = Pool::builder().min_spare(2).max_spare(4).max_threads(8).build()?;
/// let stats = pool.stats();
/// assert_eq!((stats.threads, stats.idle, stats.busy), (2, 2, 0));
/// assert_eq!(stats.spawned, 2);
/// # Ok::<(), fcgi_pool::BuildError>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Worker threads alive, including any being started. Never above `max_threads`.
    pub threads: usize,
    /// Threads waiting for a job that no job has claimed yet.
    pub idle: usize,
    /// Threads running a job or about to receive one: `threads - idle`.
    pub busy: usize,
    /// Jobs waiting in the queue for a thread (only [`Pool::execute`](crate::Pool::execute)
    /// queues).
    pub queued: usize,
    /// Threads started since the pool was built.
    pub spawned: u64,
    /// Threads that exited because they were idle past the grace period while more than
    /// `max_spare` threads were idle (threads stopped by shutdown are not counted).
    pub retired: u64,
    /// Jobs that ran and returned.
    pub completed: u64,
    /// Jobs that ran and panicked (the panic was caught; the thread lives on).
    pub panicked: u64,
    /// Jobs handed back by [`Pool::try_execute`](crate::Pool::try_execute) or
    /// [`Pool::execute`](crate::Pool::execute), whatever the reason.
    pub rejected: u64,
}

/// How many cache lines `completed` is spread over.
const COMPLETED_STRIPES: usize = 8;

/// The totals, each on its own cache line so that workers bumping `completed` do not slow
/// submitters bumping `rejected`. `completed`, bumped once per job by every worker, is further
/// striped: each worker bumps its own stripe (by thread number), and a snapshot adds them up.
/// One shared counter cost a tenth of the pool's time in the throughput benchmark.
#[derive(Debug, Default)]
pub(crate) struct Totals {
    pub(crate) spawned: CachePadded<AtomicU64>,
    pub(crate) retired: CachePadded<AtomicU64>,
    completed: [CachePadded<AtomicU64>; COMPLETED_STRIPES],
    pub(crate) panicked: CachePadded<AtomicU64>,
    pub(crate) rejected: CachePadded<AtomicU64>,
}

/// Adds one to a total. The totals order nothing, so `Relaxed` is enough.
pub(crate) fn bump(total: &AtomicU64) {
    total.fetch_add(1, Ordering::Relaxed);
}

impl Totals {
    /// The `completed` stripe for the worker thread with this number.
    pub(crate) fn completed(&self, worker: u64) -> &AtomicU64 {
        let stripe = usize::try_from(worker % COMPLETED_STRIPES as u64).unwrap_or(0);
        &self.completed[stripe]
    }

    pub(crate) fn snapshot(&self, counts: Counts) -> Stats {
        let load = |total: &AtomicU64| total.load(Ordering::Relaxed);
        Stats {
            threads: to_usize(counts.threads),
            idle: to_usize(counts.idle),
            busy: to_usize(counts.busy()),
            queued: to_usize(counts.queued),
            spawned: load(&self.spawned),
            retired: load(&self.retired),
            completed: self.completed.iter().map(|stripe| load(stripe)).sum(),
            panicked: load(&self.panicked),
            rejected: load(&self.rejected),
        }
    }
}

/// Counts are at most 21 bits wide, so they always fit.
pub(crate) fn to_usize(count: u64) -> usize {
    usize::try_from(count).unwrap_or(usize::MAX)
}

/// What [`Pool::shutdown`](crate::Pool::shutdown) could not finish before its deadline.
///
/// ```
/// use std::time::Duration;
/// use fcgi_pool::Pool;
///
/// let pool = Pool::builder().min_spare(1).max_spare(1).max_threads(1).build()?;
/// pool.try_execute(|| ()).unwrap();
/// let report = pool.shutdown(Duration::from_secs(5));
/// assert!(report.is_complete());
/// assert_eq!(report.unfinished(), 0);
/// # Ok::<(), fcgi_pool::BuildError>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ShutdownReport {
    /// Worker threads still alive at the deadline: each is running a job (or, in a narrow
    /// race, just picking one up or exiting). They are detached, not killed: each exits as
    /// soon as its job returns, and drops unrun any queued job it then picks up.
    pub running: usize,
    /// Queued jobs that had not started by the deadline. They were dropped without running
    /// (dropping a job drops what it captured, for example closing a connection).
    pub dropped: usize,
}

impl ShutdownReport {
    /// Jobs that did not finish in time: `running + dropped`.
    pub fn unfinished(&self) -> usize {
        self.running + self.dropped
    }

    /// Every running and queued job finished and every thread was joined.
    pub fn is_complete(&self) -> bool {
        self.unfinished() == 0
    }
}
