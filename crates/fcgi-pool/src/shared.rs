//! What a [`Pool`](crate::Pool) and its worker threads share: the counts, the channel of
//! [`Message`]s, the totals and the join handles. The pool submits and shuts down through it,
//! each worker reads and accounts through it; neither reaches into the other.

use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, RwLock};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::Receiver;
use crossbeam_utils::CachePadded;

use crate::source::Source;
use crate::state::{Counts, Limits, StateWord};
use crate::stats::Totals;

/// A job, once the pool has taken it.
pub(crate) type Job = Box<dyn FnOnce() + Send + 'static>;

/// What travels from submitters to workers. Each message is paired with exactly one receive
/// that some thread has committed to (see DESIGN.md), so no message waits for a thread that
/// is not coming.
pub(crate) enum Message {
    /// Run this job.
    Run(Job),
    /// Exit: sent by `shutdown` once for every idle thread.
    Exit,
}

/// Everything the pool and its workers share.
pub(crate) struct Shared {
    /// Threads, idle, queued, shutting down: see `state.rs`.
    /// On its own cache line: it is the one location every submission and every job writes.
    pub(crate) state: CachePadded<StateWord>,
    pub(crate) limits: Limits,
    pub(crate) idle_grace: Duration,
    pub(crate) totals: Totals,
    /// Set when a shutdown deadline passes: workers drop the jobs they receive after that.
    pub(crate) abandon: AtomicBool,
    /// `Exit` messages sent and not yet received: threads that are idle, not running a job,
    /// even though shutdown no longer counts them in `idle`.
    pub(crate) exits_pending: AtomicU64,
    /// Every worker receives from this one receiver (the pool holds the only sender).
    pub(crate) receiver: Receiver<Message>,
    /// Join handles of the threads started and not yet reaped; also the lock for `exited`.
    handles: Mutex<Vec<JoinHandle<()>>>,
    /// Notified whenever `threads` goes down, for `shutdown` to wait on.
    pub(crate) exited: Condvar,
    pub(crate) stack_size: Option<usize>,
    pub(crate) drop_timeout: Duration,
    /// Numbers the threads: `fcgi-worker-1`, `fcgi-worker-2`, ...
    pub(crate) names: AtomicU64,
    /// Where idle threads wait, if not on the channel (see `source.rs`). Let go of by
    /// `shutdown` once the threads are gone: the source usually holds what holds the pool.
    pub(crate) source: RwLock<Option<Arc<dyn Source>>>,
}

/// The builder's knobs that the pool and its threads keep, besides the [`Limits`].
pub(crate) struct Settings {
    pub(crate) idle_grace: Duration,
    pub(crate) stack_size: Option<usize>,
    pub(crate) drop_timeout: Duration,
    pub(crate) source: Option<Arc<dyn Source>>,
}

impl Shared {
    /// The state of a pool whose `min_spare` threads are counted (idle) and about to start.
    pub(crate) fn new(limits: Limits, settings: Settings, receiver: Receiver<Message>) -> Shared {
        let initial = Counts {
            threads: limits.min_spare,
            idle: limits.min_spare,
            queued: 0,
            shutdown: false,
        };
        Shared {
            state: CachePadded::new(StateWord::new(initial)),
            limits,
            idle_grace: settings.idle_grace,
            totals: Totals::default(),
            abandon: AtomicBool::new(false),
            exits_pending: AtomicU64::new(0),
            receiver,
            handles: Mutex::new(Vec::new()),
            exited: Condvar::new(),
            stack_size: settings.stack_size,
            drop_timeout: settings.drop_timeout,
            names: AtomicU64::new(0),
            source: RwLock::new(settings.source),
        }
    }

    /// The join handles of the threads started and not yet reaped, locked.
    pub(crate) fn handles(&self) -> MutexGuard<'_, Vec<JoinHandle<()>>> {
        // The lock guards no invariant a panic could break; a poisoned one is still usable.
        self.handles.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Applies a transition that removes a thread from the counts, then wakes `shutdown`.
    pub(crate) fn thread_gone(&self, transition: fn(Counts) -> Counts) {
        self.state.apply(|c| (transition(c), ()));
        self.notify_exit();
    }

    /// The source idle threads wait in, if any.
    pub(crate) fn source(&self) -> Option<Arc<dyn Source>> {
        self.source.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// After a message was sent: a thread waiting in the source must come and look.
    pub(crate) fn wake_source(&self) {
        let source = self.source.read().unwrap_or_else(PoisonError::into_inner);
        if let Some(source) = &*source {
            source.wake();
        }
    }

    /// After a claim: tells the source when no idle thread is left.
    pub(crate) fn check_idle(&self) {
        if self.state.load().idle == 0 {
            let source = self.source.read().unwrap_or_else(PoisonError::into_inner);
            if let Some(source) = &*source {
                source.no_idle();
            }
        }
    }

    /// Wakes a `shutdown` waiting for `threads` to reach zero. Call after the count went down.
    pub(crate) fn notify_exit(&self) {
        // Notifying under the lock, after the count went down, means a `shutdown` that checked
        // the count under the same lock cannot miss it.
        let _handles = self.handles();
        self.exited.notify_all();
    }
}
