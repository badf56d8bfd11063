//! [`Builder`]: the pool's knobs, their defaults, and their validation.

use std::sync::Arc;
use std::time::Duration;

use crate::error::BuildError;
use crate::pool::Pool;
use crate::shared::Settings;
use crate::source::{Source, SourceHandle};
use crate::state::{Limits, FIELD_MAX};

/// The largest `max_threads` accepted (the pool counts threads in 21 bits). `max_threads(0)`,
/// "no cap", means this many.
pub const MAX_THREADS_LIMIT: usize = 2_097_151;
/// The largest `queue_capacity` accepted.
pub const MAX_QUEUE_CAPACITY: usize = 2_097_151;
const _: () =
    assert!(MAX_THREADS_LIMIT as u64 == FIELD_MAX && MAX_QUEUE_CAPACITY as u64 == FIELD_MAX);

/// Default `min_spare`: one thread always ready, as in flup.
pub const DEFAULT_MIN_SPARE: usize = 1;
/// Default `max_spare`: flup's.
pub const DEFAULT_MAX_SPARE: usize = 5;
/// Default `max_threads`: a cap, so that an overloaded server answers "overloaded" instead of
/// starting threads until the machine gives out.
pub const DEFAULT_MAX_THREADS: usize = 64;
/// Default `queue_capacity`: one waiting job per possible thread.
pub const DEFAULT_QUEUE_CAPACITY: usize = 64;
/// Default `idle_grace`: how long a surplus idle thread waits before it retires.
///
/// Ten seconds, chosen by measurement (docs/BENCHMARKS.md, "Idle grace period"). Under
/// bursty load with realistic gaps (a page and its assets, then a user's think time of
/// seconds), every grace period shorter than the gaps respawns threads for nearly every burst:
/// 86 threads spawned per 100 jobs with flup's immediate retirement, 24 to 59 with 2 s, 17 to
/// 28 with 5 s, 5.5 to 8 with 10 s. Each spawn costs about 60 µs on the submitting thread,
/// which in the server is the one accepting connections. Keeping a thread costs about 9 KiB of
/// resident memory and no CPU: idle threads at or below `max_spare` wait without a timeout,
/// and a surplus thread wakes once, at the end of its grace period. So the longest period
/// measured is also the cheapest; it is tokio's and php-fpm's `process_idle_timeout` too.
/// A pool whose jobs leave large stacks or thread-local caches behind may want less.
pub const DEFAULT_IDLE_GRACE: Duration = Duration::from_secs(10);
/// Default `drop_timeout`: how long dropping a pool waits for its jobs.
pub const DEFAULT_DROP_TIMEOUT: Duration = Duration::from_secs(10);

/// Configures and builds a [`Pool`]. Start from [`Pool::builder`].
///
/// The three sizing knobs are `min_spare`, `max_spare` and `max_threads`; the crate
/// documentation walks through what they do to a burst of jobs. Nothing is started until
/// [`Builder::build`], so a builder may be made before `fork()` and built after it.
///
/// ```
/// use std::time::Duration;
/// use fcgi_pool::Pool;
///
/// let pool = Pool::builder()
///     .min_spare(2)
///     .max_spare(4)
///     .max_threads(16)
///     .queue_capacity(32)
///     .idle_grace(Duration::from_secs(2))
///     .stack_size(256 * 1024)
///     .build()?;
/// assert_eq!(pool.stats().threads, 2);
/// # Ok::<(), fcgi_pool::BuildError>(())
/// ```
#[derive(Clone, Debug)]
#[must_use = "a builder does nothing until `build` is called"]
pub struct Builder {
    /// Idle threads kept ready; also the number started by `build`.
    pub(crate) min_spare: usize,
    /// Idle threads kept past the grace period; the surplus retires.
    pub(crate) max_spare: usize,
    /// Hard cap on threads; 0 means no cap.
    pub(crate) max_threads: usize,
    /// Jobs [`Pool::execute`] may queue while every thread is busy.
    pub(crate) queue_capacity: usize,
    /// How long a surplus idle thread waits before retiring.
    pub(crate) idle_grace: Duration,
    /// Stack size of each worker thread; `None` for the standard library's default.
    pub(crate) stack_size: Option<usize>,
    /// How long `Drop` lets running and queued jobs finish.
    pub(crate) drop_timeout: Duration,
    /// Where idle threads wait for work of their own, if anywhere but the channel.
    pub(crate) source: Option<SourceHandle>,
}

impl Default for Builder {
    fn default() -> Self {
        Builder {
            min_spare: DEFAULT_MIN_SPARE,
            max_spare: DEFAULT_MAX_SPARE,
            max_threads: DEFAULT_MAX_THREADS,
            queue_capacity: DEFAULT_QUEUE_CAPACITY,
            idle_grace: DEFAULT_IDLE_GRACE,
            stack_size: None,
            drop_timeout: DEFAULT_DROP_TIMEOUT,
            source: None,
        }
    }
}

// `Pool::builder` lives here, beside what it returns, so that the pool's module needs nothing
// of the builder's: the builder starts a pool, never the other way round.
impl Pool {
    /// A [`Builder`] with the default knobs.
    pub fn builder() -> Builder {
        Builder::new()
    }
}

impl Builder {
    /// A builder with the defaults (the `DEFAULT_*` constants of this crate).
    pub fn new() -> Self {
        Self::default()
    }

    /// The pool keeps at least this many idle threads ready (default
    /// [`DEFAULT_MIN_SPARE`]). `build` starts this many; whenever a job takes an idle thread
    /// and fewer than `min_spare` remain idle, the pool starts more, never past `max_threads`.
    pub fn min_spare(mut self, threads: usize) -> Self {
        self.min_spare = threads;
        self
    }

    /// When more than this many threads are idle, the surplus retire once they have been idle
    /// for the [grace period](Builder::idle_grace) (default [`DEFAULT_MAX_SPARE`]). Must be at
    /// least `min_spare`, so the pool never shrinks below `min_spare` idle threads.
    pub fn max_spare(mut self, threads: usize) -> Self {
        self.max_spare = threads;
        self
    }

    /// Hard cap on threads, busy and idle together (default [`DEFAULT_MAX_THREADS`]). When
    /// all of them are busy, [`Pool::try_execute`] hands the job back at once. `0` means no
    /// cap, as in Rocket (then `min_spare` must be at least 1).
    pub fn max_threads(mut self, threads: usize) -> Self {
        self.max_threads = threads;
        self
    }

    /// How many jobs [`Pool::execute`] may queue while all `max_threads` threads are busy
    /// (default [`DEFAULT_QUEUE_CAPACITY`]); past that it hands jobs back.
    /// [`Pool::try_execute`] never queues.
    pub fn queue_capacity(mut self, jobs: usize) -> Self {
        self.queue_capacity = jobs;
        self
    }

    /// How long an idle thread waits before it retires, if it is then surplus (more than
    /// `max_spare` idle). Default [`DEFAULT_IDLE_GRACE`], whose documentation says why.
    /// `Duration::ZERO` retires surplus threads the moment they go idle, as flup does.
    pub fn idle_grace(mut self, grace: Duration) -> Self {
        self.idle_grace = grace;
        self
    }

    /// Stack size of each worker thread, in bytes (default: the standard library's, 2 MiB
    /// unless `RUST_MIN_STACK` says otherwise). The system may round it up.
    pub fn stack_size(mut self, bytes: usize) -> Self {
        self.stack_size = Some(bytes);
        self
    }

    /// How long dropping the pool waits for running and queued jobs, as
    /// [`Pool::shutdown`] does (default [`DEFAULT_DROP_TIMEOUT`]). Threads still busy after
    /// that are detached rather than waited for.
    pub fn drop_timeout(mut self, timeout: Duration) -> Self {
        self.drop_timeout = timeout;
        self
    }

    /// Idle threads wait in `source` for work of their own, and handle it on the spot (see
    /// [`Source`]). Default: none, they wait for jobs only.
    pub fn source(mut self, source: Arc<dyn Source>) -> Self {
        self.source = Some(SourceHandle(source));
        self
    }

    /// Checks the knobs and starts the pool with `min_spare` idle threads.
    ///
    /// # Errors
    ///
    /// An invalid combination of knobs (see [`BuildError`]), found before any thread is
    /// started; or [`BuildError::Spawn`] if the system refused a thread, in which case the
    /// threads already started are stopped and joined first.
    pub fn build(&self) -> Result<Pool, BuildError> {
        let settings = Settings {
            idle_grace: self.idle_grace,
            stack_size: self.stack_size,
            drop_timeout: self.drop_timeout,
            source: self.source.as_ref().map(|handle| Arc::clone(&handle.0)),
        };
        Pool::start(self.limits()?, settings)
    }

    /// Validates the knobs into the form the state machine uses.
    pub(crate) fn limits(&self) -> Result<Limits, BuildError> {
        let Builder { min_spare, max_spare, max_threads, queue_capacity, .. } = *self;
        if max_threads > MAX_THREADS_LIMIT {
            return Err(BuildError::MaxThreadsTooLarge { max_threads, limit: MAX_THREADS_LIMIT });
        }
        if queue_capacity > MAX_QUEUE_CAPACITY {
            return Err(BuildError::QueueCapacityTooLarge {
                queue_capacity,
                limit: MAX_QUEUE_CAPACITY,
            });
        }
        if min_spare == 0 && max_threads == 0 {
            return Err(BuildError::NoSpareThreadsAndNoCap);
        }
        if min_spare > max_spare {
            return Err(BuildError::MinSpareAboveMaxSpare { min_spare, max_spare });
        }
        let cap = if max_threads == 0 { MAX_THREADS_LIMIT } else { max_threads };
        if max_spare > cap {
            return Err(BuildError::MaxSpareAboveMaxThreads { max_spare, max_threads: cap });
        }
        // Every value is now at most 21 bits wide.
        let count = |n: usize| u64::try_from(n).unwrap_or(FIELD_MAX);
        Ok(Limits {
            min_spare: count(min_spare),
            max_spare: count(max_spare),
            cap: count(cap),
            queue_capacity: count(queue_capacity),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        let limits = Builder::new().limits().unwrap();
        assert_eq!(limits, Limits { min_spare: 1, max_spare: 5, cap: 64, queue_capacity: 64 });
    }

    #[test]
    fn no_cap_means_the_counting_limit() {
        let limits = Builder::new().max_threads(0).limits().unwrap();
        assert_eq!(limits.cap, FIELD_MAX);
    }
}
