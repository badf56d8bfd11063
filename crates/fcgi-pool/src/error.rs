//! What can go wrong: building a pool ([`BuildError`]) and handing it a job ([`Rejected`]).

use std::fmt;
use std::io;

/// Why [`Builder::build`](crate::Builder::build) refused to build a pool.
///
/// Every invalid combination of knobs is reported here, with the values that clash, before any
/// thread is started. The last variant is the only one that depends on the machine.
///
/// ```
/// use fcgi_pool::{BuildError, Pool};
///
/// let err = Pool::builder().min_spare(8).max_spare(4).build().unwrap_err();
/// assert!(matches!(err, BuildError::MinSpareAboveMaxSpare { min_spare: 8, max_spare: 4 }));
/// assert_eq!(err.to_string(), "min_spare (8) is above max_spare (4)");
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum BuildError {
    /// `min_spare` is above `max_spare`: the pool would spawn threads only to retire them.
    MinSpareAboveMaxSpare {
        /// The `min_spare` asked for.
        min_spare: usize,
        /// The `max_spare` asked for.
        max_spare: usize,
    },
    /// `max_spare` is above `max_threads`: that many threads can never be idle.
    MaxSpareAboveMaxThreads {
        /// The `max_spare` asked for.
        max_spare: usize,
        /// The `max_threads` asked for.
        max_threads: usize,
    },
    /// `min_spare == 0` with `max_threads == 0` (no cap): nothing would bound the pool and no
    /// thread would be ready for the first job; that is a thread per job, not a pool.
    NoSpareThreadsAndNoCap,
    /// `max_threads` is above what the pool can count ([`MAX_THREADS_LIMIT`](crate::MAX_THREADS_LIMIT)).
    MaxThreadsTooLarge {
        /// The `max_threads` asked for.
        max_threads: usize,
        /// The largest value accepted.
        limit: usize,
    },
    /// `queue_capacity` is above what the pool can count
    /// ([`MAX_QUEUE_CAPACITY`](crate::MAX_QUEUE_CAPACITY)).
    QueueCapacityTooLarge {
        /// The `queue_capacity` asked for.
        queue_capacity: usize,
        /// The largest value accepted.
        limit: usize,
    },
    /// The operating system refused to start one of the `min_spare` threads. The threads
    /// already started have been stopped and joined.
    Spawn(io::Error),
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BuildError::MinSpareAboveMaxSpare { min_spare, max_spare } => {
                write!(f, "min_spare ({min_spare}) is above max_spare ({max_spare})")
            }
            BuildError::MaxSpareAboveMaxThreads { max_spare, max_threads } => {
                write!(f, "max_spare ({max_spare}) is above max_threads ({max_threads})")
            }
            BuildError::NoSpareThreadsAndNoCap => {
                f.write_str("min_spare is 0 and max_threads is 0 (no cap): set at least one")
            }
            BuildError::MaxThreadsTooLarge { max_threads, limit } => {
                write!(f, "max_threads ({max_threads}) is above the limit of {limit}")
            }
            BuildError::QueueCapacityTooLarge { queue_capacity, limit } => {
                write!(f, "queue_capacity ({queue_capacity}) is above the limit of {limit}")
            }
            BuildError::Spawn(err) => write!(f, "could not start a worker thread: {err}"),
        }
    }
}

impl std::error::Error for BuildError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            BuildError::Spawn(err) => Some(err),
            _ => None,
        }
    }
}

/// Why a job was handed back.
///
/// ```
/// use fcgi_pool::RejectReason;
///
/// assert_eq!(RejectReason::AllBusy.to_string(), "all worker threads are busy");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RejectReason {
    /// [`Pool::try_execute`](crate::Pool::try_execute): every thread is busy and the pool is at
    /// `max_threads`. The server answers "overloaded".
    AllBusy,
    /// [`Pool::execute`](crate::Pool::execute): every thread is busy, the pool is at
    /// `max_threads`, and the queue holds `queue_capacity` jobs already.
    QueueFull,
    /// [`Pool::shutdown`](crate::Pool::shutdown) has been called.
    ShuttingDown,
    /// No thread was free and the operating system refused to start one (out of memory, or
    /// over the process's thread limit); the kind of the `io::Error` it returned.
    SpawnFailed(io::ErrorKind),
}

impl fmt::Display for RejectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RejectReason::AllBusy => f.write_str("all worker threads are busy"),
            RejectReason::QueueFull => {
                f.write_str("all worker threads are busy and the queue is full")
            }
            RejectReason::ShuttingDown => f.write_str("the pool is shutting down"),
            RejectReason::SpawnFailed(kind) => write!(f, "could not start a worker thread: {kind}"),
        }
    }
}

/// A job the pool did not take, handed back with the reason, like crossbeam's
/// `TrySendError::Full(T)`.
///
/// `J` is the caller's own closure type: a refused job was never boxed, so taking it back
/// costs nothing and the caller can run it, retry it, or answer "overloaded" with what it
/// captured (say, the connection).
///
/// ```
/// use fcgi_pool::{Pool, RejectReason};
///
/// let pool = Pool::builder().min_spare(0).max_spare(0).max_threads(1).build()?;
/// pool.shutdown(std::time::Duration::from_secs(1));
/// let connection = String::from("a connection");
/// let rejected = pool.try_execute(move || drop(connection)).unwrap_err();
/// assert_eq!(rejected.reason(), RejectReason::ShuttingDown);
/// let job = rejected.into_job();
/// job(); // run it here instead, or drop it
/// # Ok::<(), fcgi_pool::BuildError>(())
/// ```
pub struct Rejected<J> {
    reason: RejectReason,
    job: J,
}

impl<J> Rejected<J> {
    pub(crate) fn new(reason: RejectReason, job: J) -> Self {
        Rejected { reason, job }
    }

    /// Why the job was refused.
    pub fn reason(&self) -> RejectReason {
        self.reason
    }

    /// The job, given back untouched.
    pub fn into_job(self) -> J {
        self.job
    }

    /// Both halves at once.
    pub fn into_parts(self) -> (RejectReason, J) {
        (self.reason, self.job)
    }
}

impl<J> fmt::Debug for Rejected<J> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Rejected").field("reason", &self.reason).finish_non_exhaustive()
    }
}

impl<J> fmt::Display for Rejected<J> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "job rejected: {}", self.reason)
    }
}

impl<J> std::error::Error for Rejected<J> {}
