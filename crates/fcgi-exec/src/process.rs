//! One program process as the pool knows it, and the states it goes through.
//!
//! ```text
//!            started (its socket listens before it runs: it is idle at once)
//!               │
//!               ▼
//!   ┌──────▶  Idle  ─────── acquire ──────▶  Busy
//!   │           │                              │
//!   └───────────┼──────── release ─────────────┤
//!               │ surplus, idle too long,      │ retire: --max-requests reached, garbage,
//!               │ shutdown                     │ timed out, an abort it ignored, a reload
//!               ▼                              ▼
//!            Stopping  ◀───────────────────────┘
//!               │ TERM sent; KILL after the grace
//!               ▼
//!            (exited: removed; the scale starts a replacement)
//! ```
//!
//! A process may exit in any state (it crashed, or it stopped by itself after its own request
//! limit, as php-cgi does): the supervisor removes it when it reaps it, and a request that was
//! on it learns so from its connection.

use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::ExitStatus;
use std::time::{Duration, Instant, SystemTime};

/// How a process ended, kept until its exit is decided.
#[derive(Debug)]
pub(crate) struct Exit {
    pub(crate) status: ExitStatus,
    pub(crate) slot: u64,
    pub(crate) last_line: String,
    pub(crate) lifetime: Duration,
}

/// Where a process is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ProcState {
    /// Waiting for a request.
    Idle,
    /// A request is on it.
    Busy,
    /// Being stopped: TERM was sent (or is about to be), and nothing more goes to it.
    Stopping,
}

/// The request a busy process serves, for the status page.
#[derive(Clone, Debug)]
pub(crate) struct Current {
    pub(crate) method: String,
    pub(crate) uri: String,
    pub(crate) since: Instant,
}

/// What the last finished request cost, for the status page.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Last {
    pub(crate) duration: Duration,
    /// CPU seconds the process used during it, as a share of its duration (PHP-FPM's
    /// "last request cpu", in percent).
    pub(crate) cpu_percent: f64,
    /// The process's resident memory after it, in bytes.
    pub(crate) memory: u64,
}

/// One program process.
#[derive(Debug)]
pub(crate) struct Proc {
    pub(crate) pid: u32,
    pub(crate) socket: PathBuf,
    pub(crate) state: ProcState,
    /// Requests it has served (answered, or failed on).
    pub(crate) requests: u64,
    /// After this many requests it is retired (0: never).
    pub(crate) limit: u64,
    pub(crate) started_wall: SystemTime,
    /// Since when it has been idle (meaningful while idle).
    pub(crate) idle_since: Instant,
    /// The kept connection to it, while idle.
    pub(crate) conn: Option<UnixStream>,
    pub(crate) current: Option<Current>,
    pub(crate) last: Option<Last>,
    /// Its CPU ticks at its last release (for the next request's share).
    pub(crate) cpu_ticks: u64,
    /// It answered at least one request whole: it works.
    pub(crate) served: bool,
    /// Why we stop it, once we do.
    pub(crate) stop_reason: Option<&'static str>,
    /// It exited while a request was on it: reaped, and decided when the lease comes back.
    pub(crate) exited: Option<Exit>,
    /// It exited while a request was on it.
    pub(crate) died_busy: bool,
}

impl Proc {
    pub(crate) fn new(pid: u32, socket: PathBuf, limit: u64) -> Proc {
        let now = Instant::now();
        Proc {
            pid,
            socket,
            state: ProcState::Idle,
            requests: 0,
            limit,
            started_wall: SystemTime::now(),
            idle_since: now,
            conn: None,
            current: None,
            last: None,
            cpu_ticks: 0,
            served: false,
            stop_reason: None,
            exited: None,
            died_busy: false,
        }
    }

    /// Counts toward the scale: running, and not being stopped.
    pub(crate) fn is_alive(&self) -> bool {
        self.state != ProcState::Stopping
    }

    /// Its request limit is reached.
    pub(crate) fn is_spent(&self) -> bool {
        self.limit > 0 && self.requests >= self.limit
    }
}
