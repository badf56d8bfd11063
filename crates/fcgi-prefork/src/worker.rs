//! The worker's side: serve, report to the master, and retire when told or when due.

use std::fs::File;
use std::hash::{BuildHasher, Hasher};
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use fcgi_server::{Handoff, Listener, ServeReport, Server, StatusHandle};
use signal_hook::consts::{SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGTTIN, SIGTTOU, SIGUSR1, SIGUSR2};
use slog::{debug, info, warn, Logger};

use crate::heartbeat::{self, Beat, FLAG_RETIRING};
use crate::scoreboard::{Peers, Scoreboard};
use crate::settings::{ProcessModel, Settings};

/// How often the worker checks its request count and slow requests: the precision of
/// `max_requests` and of the recycling after a slow request.
const CHECK_EVERY: Duration = Duration::from_millis(20);

/// One worker, as [`Workload::run_worker`](crate::Workload::run_worker) receives it in the
/// forked child: the listening sockets to serve, and the link to the master.
///
/// Build the app and a [`Server`] on [`take_listeners`](Worker::take_listeners), then hand the
/// server to [`serve`](Worker::serve), which reports to the master and honours its signals.
pub struct Worker {
    id: u64,
    generation: u64,
    listeners: Vec<Listener>,
    settings: Settings,
    beat: File,
    reopen: Option<Box<dyn Fn() + Send>>,
    /// The scoreboard and this worker's slot on it.
    board: Option<(Scoreboard, usize)>,
    /// The worker's end of its hand-off socket to the master.
    handoff: Option<Handoff>,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("id", &self.id)
            .field("generation", &self.generation)
            .field("listeners", &self.listeners)
            .finish()
    }
}

impl Worker {
    pub(crate) fn new(
        id: u64,
        generation: u64,
        listeners: Vec<Listener>,
        settings: Settings,
        beat: File,
        handoff: Option<Handoff>,
        board: Option<(Scoreboard, usize)>,
    ) -> Worker {
        Worker { id, generation, listeners, settings, beat, reopen: None, board, handoff }
    }

    /// This worker's number: 1 for the first the master started, counting up, never reused.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The configuration generation: 0 at start, one more after each reload.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The master's settings this worker was started with.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The listening sockets, shared with the master and the other workers.
    pub fn take_listeners(&mut self) -> Vec<Listener> {
        std::mem::take(&mut self.listeners)
    }

    /// Runs `reopen` when the worker gets SIGUSR1 (the master forwards it): where a worker
    /// reopens its log files after rotation.
    pub fn on_reopen_logs(&mut self, reopen: impl Fn() + Send + 'static) {
        self.reopen = Some(Box::new(reopen));
    }

    /// Serves `server` until the master retires this worker, or it retires itself (after its
    /// request limit, or once a request ran past the request timeout), and reports to the
    /// master meanwhile. TERM and INT drain gracefully, QUIT stops at once.
    ///
    /// While it drains, the server passes each idle connection to the master, which gives it
    /// to a worker that serves (or closes it if the whole server stops): a connection the web
    /// server keeps is never closed under it by a reload or a recycle
    /// ([`Server::set_handoff`]).
    pub fn serve(self, mut server: Server, log: &Logger) -> io::Result<ServeReport> {
        let Worker { settings, beat, reopen, board, handoff, .. } = self;
        if let Some(handoff) = handoff {
            server.set_handoff(handoff);
        }
        // The signals are the worker's (below): the master's TERM drains with its grace.
        server.set_handle_signals(false);
        // The server answers a request past the limit; this retires the worker (below).
        server.set_request_timeout(settings.request_timeout);
        let status = server.status_handle();
        if let Some((board, _)) = &board {
            let model = match settings.model {
                ProcessModel::Static => "static",
                ProcessModel::Dynamic => "dynamic",
            };
            status.set_peers(Box::new(Peers { board: board.clone(), model }));
        }
        status.set_slow_limit(settings.request_timeout);
        let stop = server.shutdown_handle();
        let grace = settings.graceful_timeout;
        let done = Arc::new(AtomicBool::new(false));
        let stopping = Arc::new(AtomicBool::new(false));

        let mut signals = signal_hook::iterator::Signals::new([
            SIGTERM, SIGINT, SIGQUIT, SIGUSR1, SIGHUP, SIGUSR2, SIGTTIN, SIGTTOU,
        ])?;
        let signal_handle = signals.handle();
        let signal_thread = {
            let (stop, stopping, log) = (stop.clone(), Arc::clone(&stopping), log.clone());
            thread::Builder::new().name("fcgi-worker-signals".into()).spawn(move || {
                for signal in signals.forever() {
                    match signal {
                        SIGTERM | SIGINT => {
                            stopping.store(true, Ordering::Release);
                            stop.shutdown(grace);
                        }
                        SIGQUIT => {
                            stopping.store(true, Ordering::Release);
                            stop.shutdown(Duration::ZERO);
                        }
                        SIGUSR1 => {
                            if let Some(reopen) = &reopen {
                                reopen();
                            }
                            info!(log, "log files reopened");
                        }
                        // The master's signals: a worker that gets them ignores them rather
                        // than dying (USR2) or stopping (TTIN, TTOU), their defaults.
                        _ => {}
                    }
                }
            })?
        };

        let limit = request_limit(&settings);
        // The first report goes out from this thread, before anything is accepted: a worker
        // that its first request kills has said it was serving by then, so the master counts
        // the crash as a serving one and refills a pool left empty at once.
        let mut beat = beat;
        let first = Beat { oldest_ms: u32::MAX, ..Beat::default() };
        if let Err(e) = heartbeat::send(&mut beat, &first) {
            debug!(log, "the first report to the master failed"; "error" => %e);
        }
        let heartbeat_thread = {
            let (done, stopping, log) = (Arc::clone(&done), Arc::clone(&stopping), log.clone());
            let interval = settings.heartbeat_interval();
            let mut beat_pipe = beat;
            thread::Builder::new().name("fcgi-heartbeat".into()).spawn(move || {
                let mut next_beat = Instant::now();
                let mut retiring = false;
                let mut master_alive = true;
                while !done.load(Ordering::Acquire) {
                    if let Some((board, slot)) = &board {
                        board.write(*slot, &status.metrics());
                    }
                    let may_retire = !retiring && !stopping.load(Ordering::Acquire);
                    let mut retire = false;
                    if may_retire {
                        let now = status.snapshot();
                        if limit > 0 && now.served >= limit {
                            info!(log, "request limit reached; retiring gracefully";
                                "served" => now.served, "limit" => limit);
                            retire = true;
                        }
                        if let Some(ms) = past_request_timeout(now.oldest, settings.request_timeout)
                        {
                            // Still running: it and the others get the graceful timeout to
                            // finish, while a new worker takes the new requests.
                            warn!(log, "a request is running past the request timeout; \
                                retiring gracefully";
                                "ms" => ms, "timeout_ms" => settings.request_timeout.map(|t| t.as_millis()),
                                "graceful_timeout_ms" => grace.as_millis());
                            retire = true;
                        }
                    }
                    // Logged even while retiring or stopping: the log names every slow one.
                    if log_slow(&log, &status, settings.request_timeout) > 0 {
                        retire |= may_retire;
                    }
                    if retire {
                        retiring = true;
                        stop.shutdown(grace);
                        next_beat = Instant::now();
                    }
                    if master_alive && Instant::now() >= next_beat {
                        let now = status.snapshot();
                        let flags = if retiring || stopping.load(Ordering::Acquire) {
                            FLAG_RETIRING
                        } else {
                            0
                        };
                        let report = Beat {
                            served: now.served,
                            in_flight: u32::try_from(now.in_flight).unwrap_or(u32::MAX),
                            oldest_ms: now.oldest.map_or(u32::MAX, |age| {
                                u32::try_from(age.as_millis()).unwrap_or(u32::MAX - 1)
                            }),
                            flags,
                        };
                        if let Err(e) = heartbeat::send(&mut beat_pipe, &report) {
                            // The master is gone: nobody would replace or supervise us.
                            warn!(log, "the master is gone; stopping gracefully"; "error" => %e);
                            master_alive = false;
                            stop.shutdown(grace);
                        }
                        next_beat += interval;
                    }
                    thread::sleep(CHECK_EVERY);
                }
                // Those that finished as the server stopped.
                log_slow(&log, &status, settings.request_timeout);
                // The last counts, which the master adds to the totals once this worker exits.
                if let Some((board, slot)) = &board {
                    board.write(*slot, &status.metrics());
                }
            })?
        };

        let report = server.serve();
        done.store(true, Ordering::Release);
        signal_handle.close();
        let _ = heartbeat_thread.join();
        let _ = signal_thread.join();
        report
    }
}

/// Logs the requests that finished past the request timeout since the last call (each names
/// its method and URI); how many there were.
fn log_slow(log: &Logger, status: &StatusHandle, timeout: Option<Duration>) -> usize {
    let slow = status.take_slow();
    for request in &slow {
        warn!(log, "a request ran past the request timeout";
            "method" => &request.method, "uri" => &request.uri,
            "ms" => request.duration.as_millis(),
            "timeout_ms" => timeout.map(|t| t.as_millis()));
    }
    slow.len()
}

/// How long the oldest running request has run, in ms, when that is past the request timeout.
fn past_request_timeout(oldest: Option<Duration>, timeout: Option<Duration>) -> Option<u128> {
    match (oldest, timeout) {
        (Some(oldest), Some(timeout)) if oldest > timeout => Some(oldest.as_millis()),
        _ => None,
    }
}

/// `max_requests` plus this worker's own share of the jitter; 0 for no limit.
fn request_limit(settings: &Settings) -> u64 {
    if settings.max_requests == 0 {
        return 0;
    }
    let jitter = match settings.max_requests_jitter {
        0 => 0,
        span => {
            // A random number from the standard library's per-process hash seed and the pid.
            let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
            hasher.write_u32(std::process::id());
            hasher.finish() % (span + 1)
        }
    };
    settings.max_requests.saturating_add(jitter)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_running_request_past_the_request_timeout_retires_the_worker() {
        let s = Duration::from_secs;
        let cases = [
            (None, None, None),
            (Some(s(100)), None, None),
            (None, Some(s(10)), None),
            (Some(s(10)), Some(s(10)), None),
            (Some(s(11)), Some(s(10)), Some(11_000)),
        ];
        for (oldest, timeout, expected) in cases {
            assert_eq!(past_request_timeout(oldest, timeout), expected, "{oldest:?} {timeout:?}");
        }
    }

    #[test]
    fn the_request_limit_stays_within_the_jitter() {
        assert_eq!(request_limit(&Settings::default()), 0);
        let settings =
            Settings { max_requests: 100, max_requests_jitter: 10, ..Settings::default() };
        for _ in 0..50 {
            assert!((100..=110).contains(&request_limit(&settings)));
        }
        let exact = Settings { max_requests: 100, ..Settings::default() };
        assert_eq!(request_limit(&exact), 100);
    }
}
