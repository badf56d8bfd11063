//! Stopping a server from outside it: [`ShutdownHandle`], and the state it shares with the
//! server's monitor thread, which reads the deadline and is woken when one is set.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Stops a running [`Server`](crate::Server) gracefully: it stops accepting, closes idle
/// connections (or hands them over, with [`Server::set_handoff`](crate::Server::set_handoff)),
/// lets running requests finish for up to the grace period, then returns from `serve`. Without
/// a hand-off, a connection accepted but not yet read from is kept up to a second for the
/// request the web server opened it for, so that another process sharing the listening socket
/// can take over without a failure.
///
/// ```no_run
/// # let server = fcgi_server::Server::builder().build();
/// let stop = server.shutdown_handle();
/// std::thread::spawn(move || {
///     std::thread::sleep(std::time::Duration::from_secs(60));
///     stop.shutdown(std::time::Duration::from_secs(10));
/// });
/// server.serve()?;
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct ShutdownHandle {
    state: Arc<ShutdownState>,
}

impl ShutdownHandle {
    /// Asks the server to stop within `grace`. Safe to call more than once: the earliest
    /// deadline wins.
    pub fn shutdown(&self, grace: Duration) {
        let deadline = Instant::now() + grace;
        {
            let mut current = self.state.deadline.lock().unwrap_or_else(|p| p.into_inner());
            *current = Some(current.map_or(deadline, |d| d.min(deadline)));
        }
        if let Some(monitor) = self.state.monitor.get() {
            monitor.unpark();
        }
    }
}

/// What a server and its [`ShutdownHandle`]s share: the deadline asked for, and the thread to
/// wake when one is.
#[derive(Debug, Default)]
pub(crate) struct ShutdownState {
    deadline: Mutex<Option<Instant>>,
    /// The thread serving, woken to begin draining.
    monitor: OnceLock<std::thread::Thread>,
}

impl ShutdownState {
    /// The earliest deadline asked for, if a shutdown was.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        *self.deadline.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Names the thread that serves, for a shutdown to wake. Only the first call counts: a
    /// server serves once.
    pub(crate) fn set_monitor(&self, thread: std::thread::Thread) {
        let _ = self.monitor.set(thread);
    }

    /// A handle that asks this state for a shutdown.
    pub(crate) fn handle(self: &Arc<Self>) -> ShutdownHandle {
        ShutdownHandle { state: Arc::clone(self) }
    }
}
