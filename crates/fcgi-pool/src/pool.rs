//! [`Pool`]: handing jobs to threads, spawning threads, shutting down.

use std::fmt;
use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError};
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;

use crate::error::{RejectReason, Rejected};
use crate::shared::{Message, Settings, Shared};
use crate::state::{self, Admission, Limits, Refusal};
use crate::stats::{bump, to_usize, ShutdownReport, Stats};
use crate::worker::{self, spawn, spawn_more, Role};

/// The largest channel allocated up front (24 bytes a slot): past it, the channel grows.
const ARRAY_CHANNEL_MAX: usize = 1 << 16;

/// A pool of worker threads with flup's `minSpare` / `maxSpare` / `maxThreads` semantics.
///
/// Built by [`Pool::builder`]. Share it between submitting threads with an `Arc` (every
/// method takes `&self`). Dropping it shuts it down (see [`Pool::shutdown`]), waiting at most
/// the builder's [`drop_timeout`](crate::Builder::drop_timeout).
///
/// ```
/// use std::sync::mpsc;
/// use fcgi_pool::Pool;
///
/// let pool = Pool::builder().min_spare(2).max_spare(4).max_threads(16).build()?;
/// let (done, results) = mpsc::channel();
/// for n in 0..4 {
///     let done = done.clone();
///     pool.execute(move || done.send(n * n).unwrap()).expect("room in the queue");
/// }
/// let mut squares: Vec<i32> = results.iter().take(4).collect();
/// squares.sort();
/// assert_eq!(squares, [0, 1, 4, 9]);
/// # Ok::<(), fcgi_pool::BuildError>(())
/// ```
pub struct Pool {
    shared: Arc<Shared>,
    sender: Sender<Message>,
}

impl fmt::Debug for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("limits", &self.shared.limits)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl Pool {
    /// Called by `Builder::build` with validated limits: starts the `min_spare` threads.
    pub(crate) fn start(limits: Limits, settings: Settings) -> Result<Pool, crate::BuildError> {
        // A preallocated (array) channel costs less per message than a growing (list) one:
        // use it when the bound is small enough to allocate up front. It is never full, so
        // `send` never blocks; the extra `cap` slots are a margin, not a need.
        let bound = state::channel_bound(&limits) + limits.cap;
        let (sender, receiver) = match usize::try_from(bound) {
            Ok(bound) if bound <= ARRAY_CHANNEL_MAX => crossbeam_channel::bounded(bound),
            _ => crossbeam_channel::unbounded(),
        };
        let shared = Arc::new(Shared::new(limits, settings, receiver));
        #[cfg(test)]
        tests::LAST_BUILT.with(|last| *last.borrow_mut() = Some(Arc::downgrade(&shared)));
        // If a spawn fails, dropping `pool` shuts down and joins the threads already started.
        let pool = Pool { shared, sender };
        for started in 0..limits.min_spare {
            if let Err(err) = spawn(&pool.shared, Role::Idle) {
                for _ in started..limits.min_spare {
                    pool.shared.thread_gone(state::receiver_lost);
                }
                return Err(crate::BuildError::Spawn(err));
            }
        }
        Ok(pool)
    }

    /// Runs `job` now on an idle thread, or on a new one if the pool is below `max_threads`;
    /// otherwise hands it straight back. Never blocks and never queues: this is flup's
    /// `addJob(job, allowQueuing=False)`, for a server that answers "overloaded" at once.
    ///
    /// Handing a job to an idle thread is one atomic compare-and-swap and one channel send;
    /// the job is boxed only once it is accepted. If that leaves fewer than `min_spare` idle
    /// threads, the calling thread then starts new ones (after the job was sent, so the job
    /// does not wait for them).
    ///
    /// # Errors
    ///
    /// [`Rejected`], holding the job, with [`RejectReason::AllBusy`] when every one of the
    /// `max_threads` threads is busy, [`RejectReason::ShuttingDown`] after
    /// [`Pool::shutdown`], or [`RejectReason::SpawnFailed`] when a new thread was needed and
    /// the system refused it.
    ///
    /// ```
    /// use std::sync::mpsc;
    /// use fcgi_pool::{Pool, RejectReason};
    ///
    /// let pool = Pool::builder().min_spare(1).max_spare(1).max_threads(1).build()?;
    /// let (release, wait) = mpsc::channel::<()>();
    /// pool.try_execute(move || { let _ = wait.recv(); }).expect("one idle thread");
    ///
    /// // The only thread is busy: the next job comes straight back.
    /// let rejected = pool.try_execute(|| println!("never runs here")).unwrap_err();
    /// assert_eq!(rejected.reason(), RejectReason::AllBusy);
    /// drop(release);
    /// # Ok::<(), fcgi_pool::BuildError>(())
    /// ```
    pub fn try_execute<F>(&self, job: F) -> Result<(), Rejected<F>>
    where
        F: FnOnce() + Send + 'static,
    {
        self.submit(job, false)
    }

    /// Like [`Pool::try_execute`], but when every thread is busy and the pool is at
    /// `max_threads`, the job waits in a FIFO queue of [`queue_capacity`](crate::Builder::queue_capacity)
    /// jobs for the next thread to finish: flup's `addJob(job, allowQueuing=True)`. Never
    /// blocks either.
    ///
    /// # Errors
    ///
    /// [`Rejected`], holding the job, with [`RejectReason::QueueFull`] when the queue is full,
    /// [`RejectReason::ShuttingDown`] after [`Pool::shutdown`], or
    /// [`RejectReason::SpawnFailed`] when a new thread was needed and the system refused it.
    pub fn execute<F>(&self, job: F) -> Result<(), Rejected<F>>
    where
        F: FnOnce() + Send + 'static,
    {
        self.submit(job, true)
    }

    fn submit<F>(&self, job: F, may_queue: bool) -> Result<(), Rejected<F>>
    where
        F: FnOnce() + Send + 'static,
    {
        let shared = &*self.shared;
        match shared.state.update(|c| state::admit(c, &shared.limits, may_queue)) {
            Admission::Claimed { spares } => {
                self.send(Message::Run(Box::new(job)));
                if spares > 0 {
                    spawn_more(&self.shared, 0, spares);
                }
                shared.check_idle();
                Ok(())
            }
            Admission::Spawn { committed, spares } => {
                if let Err(err) = spawn(&self.shared, Role::Committed) {
                    // Nothing was sent for that thread: it simply never was.
                    shared.thread_gone(state::thread_left);
                    for _ in 1..committed + spares {
                        shared.thread_gone(state::receiver_lost);
                    }
                    return Err(self.reject(RejectReason::SpawnFailed(err.kind()), job));
                }
                self.send(Message::Run(Box::new(job)));
                spawn_more(&self.shared, committed - 1, spares);
                shared.check_idle();
                Ok(())
            }
            Admission::Queued => {
                self.send(Message::Run(Box::new(job)));
                shared.check_idle();
                Ok(())
            }
            Admission::Refused(refusal) => {
                let reason = match refusal {
                    Refusal::AllBusy => RejectReason::AllBusy,
                    Refusal::QueueFull => RejectReason::QueueFull,
                    Refusal::ShuttingDown => RejectReason::ShuttingDown,
                };
                Err(self.reject(reason, job))
            }
        }
    }

    fn reject<F>(&self, reason: RejectReason, job: F) -> Rejected<F> {
        bump(&self.shared.totals.rejected);
        Rejected::new(reason, job)
    }

    /// Sends `message` and wakes the source, for every message, queued jobs and jobs for a
    /// thread just spawned included, though their threads take them from the channel without
    /// waiting in the source: messages are not addressed, so a thread claimed while idle may
    /// find its job taken by a spawned one and wait in the source again, and only a wake with
    /// the next message brings it back for that one. A wake that nobody needed is dropped by
    /// whoever takes it (fcgi-server's monitor: `monitor.rs`).
    fn send(&self, message: Message) {
        // Cannot fail: `shared` holds a receiver for as long as `self` exists.
        let _ = self.sender.send(message);
        self.shared.wake_source();
    }

    /// A lock-free snapshot of the pool's counts and totals.
    pub fn stats(&self) -> Stats {
        self.shared.totals.snapshot(self.shared.state.load())
    }

    /// Messages sent to threads that have not received them yet, queued jobs aside: jobs
    /// (or exits) on their way to a thread claimed for them. With a [`Source`](crate::Source), such a thread
    /// may still be waiting there for its wake; a server thread that waits in the same source
    /// without being a pool thread should stay out of it meanwhile, or it may take the wake
    /// meant for the pool's thread. A snapshot, racy by nature: for deciding when to look again.
    pub fn undelivered(&self) -> usize {
        let queued = to_usize(self.shared.state.load().queued);
        self.shared.receiver.len().saturating_sub(queued)
    }

    /// `true` when every one of the `max_threads` threads is busy, so that
    /// [`Pool::try_execute`] would hand a job back with [`RejectReason::AllBusy`] (also after
    /// shutdown). One atomic load: a hint for a server deciding whether to accept another
    /// connection, which may be stale by the time it acts on it. `try_execute` itself is the
    /// exact test.
    pub fn all_busy(&self) -> bool {
        let c = self.shared.state.load();
        c.shutdown || (c.idle == 0 && c.threads >= self.shared.limits.cap)
    }

    /// Stops taking jobs, lets running and queued jobs finish until `timeout` has passed,
    /// joins the threads, and reports what did not finish in time.
    ///
    /// From the moment it is called, [`Pool::try_execute`] and [`Pool::execute`] hand jobs
    /// back with [`RejectReason::ShuttingDown`]. Idle threads exit at once; busy threads
    /// finish their job, then run queued jobs until the queue is empty, then exit. If the
    /// deadline passes first, the jobs still queued are dropped without running and the
    /// threads still busy are detached (each exits when its job returns); the
    /// [`ShutdownReport`] counts both. Returns as soon as every thread has exited.
    ///
    /// Calling it again, from any thread, is safe: it waits again for the threads still
    /// running. Dropping the pool calls it with the builder's
    /// [`drop_timeout`](crate::Builder::drop_timeout). Called from one of the pool's own jobs it
    /// cannot join its own thread, so it returns at the deadline with that thread counted in
    /// `running`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use fcgi_pool::{Pool, RejectReason};
    ///
    /// let pool = Pool::builder().build()?;
    /// pool.execute(|| std::thread::sleep(Duration::from_millis(10))).unwrap();
    /// let report = pool.shutdown(Duration::from_secs(5));
    /// assert!(report.is_complete());
    /// assert_eq!(pool.stats().threads, 0);
    /// let late = pool.try_execute(|| ()).unwrap_err();
    /// assert_eq!(late.reason(), RejectReason::ShuttingDown);
    /// # Ok::<(), fcgi_pool::BuildError>(())
    /// ```
    pub fn shutdown(&self, timeout: Duration) -> ShutdownReport {
        let shared = &*self.shared;
        let deadline = Instant::now().checked_add(timeout);
        let idle = shared.state.apply(state::begin_shutdown);
        shared.exits_pending.fetch_add(idle, Ordering::SeqCst);
        for _ in 0..idle {
            self.send(Message::Exit);
        }

        let mut handles = shared.handles();
        let mut timed_out = false;
        while shared.state.load().threads > 0 {
            match deadline {
                None => {
                    handles = shared.exited.wait(handles).unwrap_or_else(PoisonError::into_inner);
                }
                Some(deadline) => {
                    let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                        timed_out = true;
                        break;
                    };
                    handles = shared
                        .exited
                        .wait_timeout(handles, left)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0;
                }
            }
        }
        // Join outside the lock: an exiting thread takes it to notify.
        let started = std::mem::take(&mut *handles);
        drop(handles);

        let mut report = ShutdownReport::default();
        if timed_out {
            shared.abandon.store(true, Ordering::SeqCst);
            report.dropped = self.drop_queue();
            let threads = shared.state.load().threads;
            let exiting = shared.exits_pending.load(Ordering::SeqCst);
            report.running = to_usize(threads.saturating_sub(exiting));
        }
        let mut unfinished = Vec::new();
        for handle in started {
            if !timed_out || handle.is_finished() {
                // A worker catches its jobs' panics, so this is `Ok`; either way it is gone.
                let _ = handle.join();
            } else {
                unfinished.push(handle);
            }
        }
        // Keep the handles of detached threads, for a later call to join.
        shared.handles().extend(unfinished);
        // No thread waits in the source any more: a detached one only finishes its job, and
        // keeps its own reference.
        *shared.source.write().unwrap_or_else(PoisonError::into_inner) = None;
        report
    }

    /// After the deadline: takes every queued job nobody reserved and drops it unrun. Returns
    /// how many there were.
    fn drop_queue(&self) -> usize {
        let queued = self.shared.state.apply(state::take_queue);
        let mut dropped = 0;
        for _ in 0..queued {
            // Taking the reservations makes this thread the receiver those messages were
            // waiting for; each was sent right after its reservation, so it is there or about
            // to be. (If this receives an `Exit`, the thread it was for receives a job instead
            // and, the pool having abandoned its jobs, drops it and exits.)
            match self.shared.receiver.recv_timeout(Duration::from_secs(1)) {
                Ok(Message::Run(job)) => {
                    worker::drop_quietly(job);
                    dropped += 1;
                }
                Ok(Message::Exit) => {
                    self.shared.exits_pending.fetch_sub(1, Ordering::SeqCst);
                    dropped += 1;
                }
                Err(_) => break,
            }
        }
        dropped
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.shutdown(self.shared.drop_timeout);
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::sync::mpsc;
    use std::sync::Weak;

    use super::*;
    use crate::worker::spawn_failures::allow_spawns;
    use crate::BuildError;

    thread_local! {
        /// The state of the last pool this thread built.
        pub(super) static LAST_BUILT: RefCell<Option<Weak<Shared>>> = const { RefCell::new(None) };
    }

    fn shape(pool: &Pool) -> (usize, usize, usize) {
        let stats = pool.stats();
        (stats.threads, stats.idle, stats.busy)
    }

    #[test]
    fn a_spawn_failure_during_build_stops_and_joins_the_threads_already_started() {
        allow_spawns(Some(2));
        let err = Pool::builder().min_spare(4).max_spare(4).build().unwrap_err();
        allow_spawns(None);
        assert!(matches!(err, BuildError::Spawn(_)), "{err:?}");
        // The two threads started have exited and been joined: nothing holds the state.
        let last = LAST_BUILT.with(|last| last.borrow_mut().take()).unwrap();
        assert!(last.upgrade().is_none(), "a worker thread outlived the failed build");
    }

    #[test]
    fn failed_spare_spawns_leave_the_counts_consistent() {
        let pool = Pool::builder().min_spare(2).max_spare(4).max_threads(16).build().unwrap();
        let (release, hold) = crossbeam_channel::bounded::<()>(0);
        let (started_tx, started) = mpsc::channel();
        let job = || {
            let (hold, started_tx) = (hold.clone(), started_tx.clone());
            move || {
                started_tx.send(()).unwrap();
                let _ = hold.recv();
            }
        };
        allow_spawns(Some(0));
        // Takes an idle thread; the spare to replace it fails: one fewer spare.
        pool.try_execute(job()).unwrap();
        assert_eq!(shape(&pool), (2, 1, 1));
        // Takes the last idle thread; both spares fail.
        pool.try_execute(job()).unwrap();
        assert_eq!(shape(&pool), (2, 0, 2));
        // No idle thread, and the new thread fails: the job comes back.
        let rejected = pool.try_execute(job()).unwrap_err();
        assert!(matches!(rejected.reason(), RejectReason::SpawnFailed(_)));
        assert_eq!(shape(&pool), (2, 0, 2));
        for _ in 0..2 {
            started.recv_timeout(Duration::from_secs(10)).unwrap();
        }
        // Spawning works again: the pool grows back.
        allow_spawns(None);
        pool.try_execute(job()).unwrap();
        assert_eq!(shape(&pool), (5, 2, 3));
        started.recv_timeout(Duration::from_secs(10)).unwrap();
        drop(release);
        assert!(pool.shutdown(Duration::from_secs(10)).is_complete());
    }
}
