//! What every connection and every request of one server shares.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize};
use std::sync::Arc;

use fcgi_pool::Pool;
use slog::Logger;

use crate::config::Config;
use crate::conn::budget::Budget;
use crate::conn::spool::SpoolConfig;
use crate::status::StatusHandle;
use crate::work::access::AccessLog;

/// Counts the server keeps for itself: open connections against `max_conns`, unfinished
/// requests for draining, answered ones for the [`ServeReport`](crate::ServeReport). What the
/// status page shows is kept in [`StatusHandle`].
#[derive(Debug, Default)]
pub(crate) struct Counters {
    /// Connections open now.
    pub(crate) connections: AtomicUsize,
    /// Requests whose handler is running or queued.
    pub(crate) active: AtomicUsize,
    /// Requests answered by a handler, in all.
    pub(crate) requests: AtomicU64,
}

pub(crate) struct Context {
    pub(crate) config: Config,
    pub(crate) pool: Pool,
    pub(crate) log: Logger,
    pub(crate) counters: Counters,
    /// What a process manager reads: running handlers and their age.
    pub(crate) status: StatusHandle,
    pub(crate) spool: SpoolConfig,
    /// What unfinished requests may hold in memory, all together (`Config::memory_budget`).
    pub(crate) budget: Arc<Budget>,
    /// The `Retry-After` header line of overload answers, made once.
    pub(crate) retry_after: String,
    /// The TCP listening sockets, whose accept queue the status page reads from the kernel.
    pub(crate) tcp_listen_fds: Vec<std::os::fd::RawFd>,
    /// The longest accept queue the status page has seen.
    pub(crate) max_listen_queue: AtomicU64,
    /// A status or ping page is being answered on a thread of its own, beside the pool
    /// (`Job::run_aside`): one at a time.
    pub(crate) page_aside: AtomicBool,
    /// Where access records go instead of the log ([`ServerBuilder::access_log`]).
    ///
    /// [`ServerBuilder::access_log`]: crate::ServerBuilder::access_log
    pub(crate) access_log: Option<Arc<dyn AccessLog>>,
}
