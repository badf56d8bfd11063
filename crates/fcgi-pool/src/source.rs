//! Work that idle threads find for themselves: what lets a server's event loop live in the
//! pool's own threads.
//!
//! Without a source, an idle thread waits on the pool's channel for a job that a submitter
//! hands it. With one ([`Builder::source`](crate::Builder::source)), an idle thread waits in
//! [`Source::wait`] instead, typically `epoll_wait` on a set of sockets shared by all idle
//! threads. What it finds there it handles itself ([`Source::handle`]), on the same thread,
//! with no hand-off: that is the point. Jobs handed to the pool still reach idle threads:
//! after each message the pool calls [`Source::wake`], which makes one waiting thread return
//! [`Wait::Woken`] and look at the channel.
//!
//! A thread that finds work counts as busy while it handles it, exactly as if a job had been
//! handed to it: it claims itself out of `idle` (topping the spares up to `min_spare`, within
//! `max_threads`), and goes back to `idle` after. Only when no idle thread is left to claim
//! (every one is owed a job already handed to the pool, or the pool is shutting down) is it
//! told not to run anything long ([`Source::handle`]'s `may_run` is `false`): it must hand
//! what it found to the pool instead, and then receive the job it is owed.

use std::fmt;
use std::time::Duration;

/// What [`Source::wait`] came back with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wait {
    /// Work, named by a token the source understands: pass it to [`Source::handle`].
    Work(u64),
    /// [`Source::wake`] was called (or the wait was interrupted): look at the channel.
    Woken,
    /// The timeout passed with nothing to do.
    TimedOut,
}

/// Where idle threads wait for work besides the pool's own jobs. See the module docs.
pub trait Source: Send + Sync + 'static {
    /// Waits for work, at most `timeout` (`None`: without a limit).
    fn wait(&self, timeout: Option<Duration>) -> Wait;

    /// Makes one thread that waits in [`wait`](Source::wait) (or the next to call it) return
    /// [`Wait::Woken`]. Wakes may be merged: one `Woken` for several calls is enough, because
    /// a woken thread that leaves messages in the channel wakes another.
    fn wake(&self);

    /// Handles the work [`wait`](Source::wait) found. With `may_run`, the thread is counted
    /// busy for it and may take as long as it needs (run a request); without, it must not wait
    /// for anything (no thread may be left for the pool's own jobs).
    fn handle(&self, work: u64, may_run: bool);

    /// Called once on each pool thread as it starts, before it waits or runs anything: for a
    /// server to set its threads up (their scheduling policy, say).
    fn thread_started(&self) {}

    /// No idle thread is left: every thread is busy, or owed a job. A server whose own thread
    /// stands in for the idle ones then (to read its sockets while all threads run requests)
    /// wakes it here. Called after the claim that took the last idle thread.
    fn no_idle(&self) {}
}

/// A source as the builder keeps it: shared, and printable.
#[derive(Clone)]
pub(crate) struct SourceHandle(pub(crate) std::sync::Arc<dyn Source>);

impl fmt::Debug for SourceHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Source")
    }
}
