//! The monitor: the thread that called [`Server::serve`](crate::Server::serve). It keeps time
//! for every connection, drains, and reads connections itself only while no worker is idle
//! to read them (see `reactor.rs` for who does what).
//!
//! ```text
//!            ┌────────────────────── a worker is idle ───────────────────────┐
//!            ▼                                                               │
//!   ┌──────────────────┐  no worker idle (a claim took the last: unpark)  ┌──┴──────────────┐
//!   │ Parked           │─────────────────────────────────────────────────▶│ Standing in     │
//!   │ (until the sweep │                                                  │ (waits in the   │
//!   │  or a wake)      │◀── shutdown asked (unpark), or a second passed ──│  set; requests  │
//!   └──────────────────┘                                                  │  go to the pool)│
//!            │  every second (20 ms draining): the sweep                  └─────────────────┘
//!            ▼                                                                 ▲      │ a job on its way
//!   timeouts, idle connections closed, accept retried;             delivered  │      ▼ to a worker
//!   draining: done when nothing is left                          ┌─────────────┴──────────┐
//!                                                                │ Stepping aside (1 ms)  │
//!                                                                └────────────────────────┘
//! ```

use std::io;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use slog::{info, warn};

use crate::context::Context;
use crate::reactor::{Reactor, WAKE};
use crate::shutdown::ShutdownState;

/// How often timeouts are checked, and how often while draining.
const SWEEP: Duration = Duration::from_secs(1);
const DRAIN_SWEEP: Duration = Duration::from_millis(20);
/// The most often the sweep runs for a short request timeout: it looks at every connection.
const MIN_SWEEP: Duration = Duration::from_millis(50);
/// The longest the monitor waits in the set at a time while it stands in: a shutdown asked
/// meanwhile (which unparks it, and cannot reach it in `epoll_wait`) is seen this late at most.
const STAND_IN_WAIT: Duration = Duration::from_millis(50);
/// Events the monitor takes at a time while it stands in.
const STAND_IN_EVENTS: usize = 16;
/// While a job is on its way to a worker (see `Pool::undelivered`), how long the monitor
/// stays out of the set before it looks again.
const PASS_ON: Duration = Duration::from_millis(1);

pub(crate) struct Monitor {
    pub(crate) reactor: Arc<Reactor>,
    pub(crate) ctx: Arc<Context>,
    pub(crate) shutdown: Arc<ShutdownState>,
}

/// What `serve` did, told when it returns.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ServeReport {
    /// Requests answered by a handler.
    pub requests: u64,
    /// Requests still running when the graceful timeout ran out.
    pub unfinished: usize,
}

impl Monitor {
    pub(crate) fn run(self) -> io::Result<ServeReport> {
        self.reactor.start(Arc::clone(&self.ctx))?;
        let mut events = [crate::epoll::NO_EVENT; STAND_IN_EVENTS];
        // With a request timeout, often enough that a request is answered within a quarter of
        // it past the limit.
        let every =
            self.ctx.config.request_timeout.map_or(SWEEP, |t| (t / 4).clamp(MIN_SWEEP, SWEEP));
        let mut next_sweep = Instant::now() + every;
        let mut drain_deadline = None;
        loop {
            // First, before any wait: a shutdown asked before this thread first parked (while
            // the server started) unparked nobody, and one asked since is seen at once.
            match (drain_deadline, self.shutdown.deadline()) {
                (None, Some(deadline)) => {
                    self.begin_drain(deadline);
                    drain_deadline = Some(deadline);
                    // The drain's pace from now on, not the second planned before.
                    next_sweep = Instant::now() + DRAIN_SWEEP;
                }
                // A later stop may ask for less time (a second signal: at once).
                (Some(_), Some(deadline)) => drain_deadline = Some(deadline),
                _ => {}
            }
            if let Some(deadline) = drain_deadline {
                // Connections left are awaited first requests, requests still arriving, or
                // connections to hand over.
                if Instant::now() >= deadline
                    || self.reactor.finish_if_empty(&self.ctx.counters.active)
                {
                    return Ok(self.finish(deadline));
                }
            }
            let until_sweep = next_sweep.saturating_duration_since(Instant::now());
            let idle = self.ctx.pool.stats().idle;
            if idle == 0 && self.ctx.pool.undelivered() == 0 {
                // STANDING IN: no worker waits in the set.
                for event in self.reactor.wait(&mut events, until_sweep.min(STAND_IN_WAIT))? {
                    if event.token == WAKE {
                        // A worker's, if a job still waits for its thread: pass it on, and the
                        // next turn stays out of its way. Otherwise nobody needs it (a queued
                        // job, or one for a thread just started, is taken from the channel
                        // without a wake): passed on, it would come straight back to this
                        // loop and keep it spinning while every worker is busy.
                        if self.ctx.pool.undelivered() > 0 {
                            self.reactor.wake_one();
                        }
                    } else {
                        self.reactor.handle_event(event, None);
                    }
                }
            } else if idle == 0 {
                // STEPPING ASIDE: a job is on its way to a worker that waits in the set for
                // its wake; waiting there too, we could take the wake, and the worker, woken
                // for nothing, would sleep on with its job undelivered.
                std::thread::park_timeout(PASS_ON.min(until_sweep));
            } else {
                // PARKED: the workers read; a claim that takes the last idle one unparks us.
                std::thread::park_timeout(until_sweep);
            }
            let now = Instant::now();
            if now >= next_sweep {
                self.reactor.sweep(now);
                next_sweep = now + if drain_deadline.is_some() { DRAIN_SWEEP } else { every };
            }
        }
    }

    fn begin_drain(&self, deadline: Instant) {
        let active = self.ctx.counters.active.load(Ordering::Acquire);
        info!(self.ctx.log, "graceful stop: no new connections, finishing requests";
            "in_flight" => active,
            "grace_s" => format!("{:.1}", deadline.saturating_duration_since(Instant::now()).as_secs_f64()));
        self.reactor.stop_accepting();
        self.reactor.sweep(Instant::now());
    }

    fn finish(&self, deadline: Instant) -> ServeReport {
        let unfinished = self.ctx.counters.active.load(Ordering::Acquire);
        if unfinished > 0 {
            warn!(self.ctx.log, "graceful timeout reached; requests cut short"; "unfinished" => unfinished);
        }
        self.reactor.close_all("server stopped");
        let left =
            deadline.saturating_duration_since(Instant::now()).max(Duration::from_millis(100));
        let report = self.ctx.pool.shutdown(left);
        ServeReport {
            requests: self.ctx.counters.requests.load(Ordering::Relaxed),
            unfinished: unfinished.max(report.unfinished()),
        }
    }
}
