//! A worker as the master knows it: its process, its reports, and where it is in its life.

use std::time::Instant;

use fcgi_server::Handoff;

use crate::heartbeat::{Beat, BeatReader};

/// Where a worker is in its life, as the master sees it (see the crate docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Phase {
    /// Forked, no report yet.
    Starting,
    Serving,
    /// Asked to stop (or stopping on its own), to be killed at the instant.
    Retiring {
        kill_at: Instant,
        killed: bool,
    },
}

/// A worker, as the master knows it.
pub(super) struct Proc {
    pub(super) pid: i32,
    pub(super) id: u64,
    pub(super) generation: u64,
    pub(super) reader: Option<BeatReader>,
    pub(super) started: Instant,
    pub(super) last_beat: Instant,
    pub(super) beat: Beat,
    pub(super) busy: bool,
    pub(super) phase: Phase,
    /// Its slot on the scoreboard.
    pub(super) slot: Option<usize>,
    /// Its place in the pool, for the crash back-off.
    pub(super) place: usize,
    /// The master's end of its hand-off socket (see `relay.rs`).
    pub(super) handoff: Option<Handoff>,
    /// Whether it takes connections: not once it began to drain (its end refuses them).
    pub(super) takes_connections: bool,
}
