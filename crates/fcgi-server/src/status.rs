//! What a running server is doing, for a process manager: requests served, requests running,
//! how long the oldest has run, and which requests ran past a time limit.
//!
//! A prefork worker reports these to its master (busy or idle, alive or stuck); the slow-request
//! limit is how `--request-timeout` finds the requests after which a worker should be recycled.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A snapshot of a server's work, from [`StatusHandle::snapshot`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Status {
    /// Requests whose handler returned, in all.
    pub served: u64,
    /// Requests whose handler is running now.
    pub in_flight: usize,
    /// How long the longest-running handler has been running; `None` when none runs.
    pub oldest: Option<Duration>,
}

/// A request whose handler ran longer than the limit given to [`StatusHandle::set_slow_limit`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SlowRequest {
    /// REQUEST_METHOD, if the web server sent it.
    pub method: Option<String>,
    /// REQUEST_URI, if the web server sent it.
    pub uri: Option<String>,
    /// How long its handler ran.
    pub duration: Duration,
}

/// Reads a server's [`Status`] from any thread; from [`Server::status_handle`].
///
/// ```no_run
/// let server = fcgi_server::Server::builder().build();
/// let status = server.status_handle();
/// status.set_slow_limit(Some(std::time::Duration::from_secs(30)));
/// std::thread::spawn(move || loop {
///     std::thread::sleep(std::time::Duration::from_secs(1));
///     let now = status.snapshot();
///     println!("{} served, {} running", now.served, now.in_flight);
///     for slow in status.take_slow() {
///         println!("{:?} took {:?}", slow.uri, slow.duration);
///     }
/// });
/// server.serve()?;
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// [`Server::status_handle`]: crate::Server::status_handle
#[derive(Clone, Debug, Default)]
pub struct StatusHandle {
    state: Arc<StatusState>,
}

#[derive(Debug, Default)]
pub(crate) struct StatusState {
    served: AtomicU64,
    /// Whether anyone asked for a handle: only then is each running request kept in `running`
    /// (a lock and a map entry per request that a server without a process manager can skip).
    watched: AtomicBool,
    next_id: AtomicU64,
    /// Start of every running handler, by a sequence number: the first entry is the oldest.
    running: Mutex<BTreeMap<u64, Instant>>,
    /// In milliseconds; 0 when there is no limit.
    slow_limit_ms: AtomicU64,
    slow: Mutex<Vec<SlowRequest>>,
}

impl StatusHandle {
    /// What the server is doing now.
    pub fn snapshot(&self) -> Status {
        let running = self.state.running.lock().unwrap_or_else(|p| p.into_inner());
        Status {
            served: self.state.served.load(Ordering::Relaxed),
            in_flight: running.len(),
            oldest: running.values().next().map(Instant::elapsed),
        }
    }

    /// Records every request whose handler runs longer than `limit` (none with `None`), for
    /// [`take_slow`](StatusHandle::take_slow).
    pub fn set_slow_limit(&self, limit: Option<Duration>) {
        let ms = limit.map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1));
        self.state.slow_limit_ms.store(ms, Ordering::Relaxed);
    }

    /// The slow requests finished since the last call.
    pub fn take_slow(&self) -> Vec<SlowRequest> {
        std::mem::take(&mut *self.state.slow.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Marks a handler as running until the returned guard ends.
    pub(crate) fn begin(&self) -> Running {
        let started = Instant::now();
        let id = self.state.watched.load(Ordering::Relaxed).then(|| {
            let id = self.state.next_id.fetch_add(1, Ordering::Relaxed);
            self.state.running.lock().unwrap_or_else(|p| p.into_inner()).insert(id, started);
            id
        });
        Running { state: Arc::clone(&self.state), id, started }
    }

    /// Marks the status as read by someone: running requests are tracked from now on.
    pub(crate) fn watch(&self) {
        self.state.watched.store(true, Ordering::Relaxed);
    }
}

/// A running handler; dropping it (even in a panic) counts it as served.
pub(crate) struct Running {
    state: Arc<StatusState>,
    /// Its key in `running`, when running requests are tracked.
    id: Option<u64>,
    started: Instant,
}

impl Running {
    /// Ends the handler's run, recording it when it was slow.
    pub(crate) fn end(self, method: Option<&str>, uri: Option<&str>) {
        let duration = self.started.elapsed();
        let limit = self.state.slow_limit_ms.load(Ordering::Relaxed);
        if limit > 0 && duration >= Duration::from_millis(limit) {
            self.state.slow.lock().unwrap_or_else(|p| p.into_inner()).push(SlowRequest {
                method: method.map(str::to_owned),
                uri: uri.map(str::to_owned),
                duration,
            });
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(id) = self.id {
            self.state.running.lock().unwrap_or_else(|p| p.into_inner()).remove(&id);
        }
        self.state.served.fetch_add(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_running_and_served_and_keeps_slow_requests() {
        let status = StatusHandle::default();
        status.watch();
        status.set_slow_limit(Some(Duration::from_millis(20)));
        let fast = status.begin();
        let slow = status.begin();
        let now = status.snapshot();
        assert_eq!((now.served, now.in_flight), (0, 2));
        assert!(now.oldest.is_some());
        fast.end(Some("GET"), Some("/fast"));
        std::thread::sleep(Duration::from_millis(30));
        slow.end(Some("GET"), Some("/slow"));
        let now = status.snapshot();
        assert_eq!((now.served, now.in_flight, now.oldest), (2, 0, None));
        let slow = status.take_slow();
        assert_eq!(slow.len(), 1);
        assert_eq!(slow[0].uri.as_deref(), Some("/slow"));
        assert!(status.take_slow().is_empty());
    }
}
