//! One request's life on its connection, from BEGIN_REQUEST until its END_REQUEST is written,
//! and the decisions about it that need no I/O (when its input is overdue, when it waited too
//! long for a thread), as pure functions.
//!
//! ```text
//!  BEGIN_REQUEST
//!       │
//!       ▼
//!  ┌─────────┐ params end ┌──────────┐ input complete ┌─────────┐ handler returns ┌──────────┐
//!  │ Reading │───────────▶│ Spooling │───────────────▶│ Running │────────────────▶│ answered │
//!  └─────────┘            └──────────┘                └─────────┘  END_REQUEST    └──────────┘
//!       │  │                   │    ▲  at once, for a      │        written:        (forgotten)
//!       │  └───────────────────┼────┘  handler that        │        the id is free
//!       │                      │       streams its body    │
//!       │ params refused,      │ body failed,              │ queue timeout (not yet taken):
//!       │ input overdue,       │ input overdue,            │ answered 503 by the connection;
//!       │ abort, over budget   │ abort                     │ input overdue: its spools fail
//!       ▼                      ▼                           ▼ (the handler answers 408)
//!    answered by the connection (4xx/5xx, or END_REQUEST alone), forgotten
//! ```
//!
//! - **Reading**: params still arriving; only the connection holds the request.
//! - **Spooling**: params complete, the body still arriving into its spool; no thread is held.
//!   A handler that does not read its body as it arrives (most: see
//!   [`Handler::streams_body`](crate::Handler::streams_body)) starts only once it is all there,
//!   so a peer that trickles bodies holds no thread.
//! - **Running**: handed to the pool: queued, then run by a thread, which writes END_REQUEST.
//!
//! Every state with input still owed is subject to [`InputClock::overdue`]: a request must
//! receive its input at a minimum rate, measured on its own bytes only.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fcgi_codec::{BeginRequest, ParamsDecoder};

use crate::budget::Charge;
use crate::demux::Phase;
use crate::job::Job;
use crate::request::RequestShared;

/// A connection's open requests, by id: a lookup per record costs the same with 1 or 65,535
/// open.
pub(crate) type Slots = HashMap<u16, Slot, BuildHasherDefault<IdHasher>>;

/// The hash of a request id: a multiplication (Fibonacci hashing), not SipHash. Ids are the
/// peer's choice, but a table of at most `max_conn_requests` entries has no worst case worth
/// defending, and this is on every record's path.
#[derive(Default)]
pub(crate) struct IdHasher(u64);

/// 2^64 divided by the golden ratio: consecutive ids land far apart.
const FIBONACCI: u64 = 0x9E37_79B9_7F4A_7C15;

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(*byte)).wrapping_mul(FIBONACCI);
        }
    }

    fn write_u16(&mut self, id: u16) {
        self.0 = u64::from(id).wrapping_mul(FIBONACCI);
    }
}

/// One open request on a connection.
#[derive(Debug)]
pub(crate) struct Slot {
    pub(crate) begin: BeginRequest,
    pub(crate) shared: Arc<RequestShared>,
    pub(crate) stage: Stage,
    pub(crate) clock: InputClock,
}

/// Where the request is in its life (see the module's drawing).
#[derive(Debug)]
pub(crate) enum Stage {
    /// Params still arriving, with what they cost against the memory budget so far.
    Reading { params: ParamsDecoder, charge: Charge },
    /// Params complete; the handler waits for the body to be whole.
    Spooling(Box<Job>),
    /// Handed to the pool at this instant.
    Running { queued_at: Instant },
}

impl Slot {
    /// Where the request stands, as the connection's routing sees it.
    pub(crate) fn phase(&self) -> Phase {
        match self.stage {
            Stage::Reading { .. } => Phase::Params,
            Stage::Spooling(_) => Phase::Body,
            Stage::Running { .. } if self.is_finished() => Phase::Returned,
            Stage::Running { .. } => Phase::Running,
        }
    }

    /// Whether the web server still owes this request input (params, body or data).
    pub(crate) fn awaits_input(&self) -> bool {
        match self.stage {
            Stage::Reading { .. } | Stage::Spooling(_) => true,
            Stage::Running { .. } => !self.is_finished() && !self.shared.input_complete(),
        }
    }

    /// The handler has returned: nothing more is routed to the request.
    pub(crate) fn is_finished(&self) -> bool {
        matches!(self.stage, Stage::Running { .. })
            && self.shared.finished.load(std::sync::atomic::Ordering::Acquire)
    }

    /// END_REQUEST is written: the connection may forget the request.
    pub(crate) fn is_answered(&self) -> bool {
        matches!(self.stage, Stage::Running { .. })
            && self.shared.answered.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Queued for a thread for longer than `timeout` (and not yet taken).
    pub(crate) fn waited_too_long(&self, now: Instant, timeout: Option<Duration>) -> bool {
        match (self.stage_queued_at(), timeout) {
            (Some(queued_at), Some(timeout)) => {
                now.saturating_duration_since(queued_at) >= timeout && self.shared.is_queued()
            }
            _ => false,
        }
    }

    /// Running (queued or with its handler at work) for `limit` or more since it was handed to
    /// the pool, and not answered yet: the request timeout's, for the server to answer.
    pub(crate) fn past_request_timeout(&self, now: Instant, limit: Option<Duration>) -> bool {
        match (self.stage_queued_at(), limit) {
            (Some(queued_at), Some(limit)) => {
                now.saturating_duration_since(queued_at) >= limit
                    && !self.is_finished()
                    && !self.shared.is_taken_over()
            }
            _ => false,
        }
    }

    fn stage_queued_at(&self) -> Option<Instant> {
        match self.stage {
            Stage::Running { queued_at } => Some(queued_at),
            _ => None,
        }
    }
}

/// How a request's input has arrived: when it began, when its last byte came, how many.
#[derive(Clone, Copy, Debug)]
pub(crate) struct InputClock {
    began: Instant,
    last: Instant,
    received: u64,
}

impl InputClock {
    pub(crate) fn new(now: Instant) -> InputClock {
        InputClock { began: now, last: now, received: 0 }
    }

    /// Some of this request's own input arrived (an empty record ends a stream: it counts as
    /// progress too).
    pub(crate) fn record(&mut self, now: Instant, bytes: usize) {
        self.last = now;
        self.received = self.received.saturating_add(bytes as u64);
    }

    /// When this request's input is overdue: `read_timeout` after its last byte, or, with a
    /// minimum rate, `read_timeout` plus a second per `min_rate` bytes received after it began
    /// (Apache `mod_reqtimeout`'s `body=N,MinRate=R`), whichever comes first.
    pub(crate) fn deadline(&self, read_timeout: Duration, min_rate: u64) -> Instant {
        let quiet = self.last + read_timeout;
        if min_rate == 0 {
            return quiet;
        }
        let earned = Duration::from_millis(self.received.saturating_mul(1000) / min_rate);
        // A deadline past what an Instant can hold is no deadline: only silence counts then.
        match self.began.checked_add(read_timeout.saturating_add(earned)) {
            Some(by_rate) => quiet.min(by_rate),
            None => quiet,
        }
    }

    /// Whether the input is overdue at `now`.
    pub(crate) fn overdue(&self, now: Instant, read_timeout: Duration, min_rate: u64) -> bool {
        now >= self.deadline(read_timeout, min_rate)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_deadlines_as_a_table() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        // (received bytes, seconds after t0 of the last byte, min rate, deadline in ms after t0)
        let table: [(u64, u64, u64, u64); 7] = [
            // Nothing received: the read timeout from the start.
            (0, 0, 500, 60_000),
            // A steady trickle of one byte every 2 s: the rate rule ends it just past 60 s,
            // however often a byte comes.
            (30, 59, 500, 60_060),
            // A fast upload: 10 MB in 10 s has earned 20,000 s, so only silence ends it.
            (10_000_000, 10, 500, 70_000),
            // 5,000 bytes: 10 s earned on top of the 60.
            (5_000, 65, 500, 70_000),
            // Silence after 1 MB: 60 s after the last byte.
            (1_000_000, 30, 500, 90_000),
            // No rate: only silence counts.
            (1, 1, 0, 61_000),
            // An allowance past what time can hold: silence alone.
            (u64::MAX, 0, 1, 60_000),
        ];
        for (received, last, rate, want) in table {
            let clock = InputClock { began: t0, last: t0 + s(last), received };
            assert_eq!(
                clock.deadline(s(60), rate),
                t0 + Duration::from_millis(want),
                "received {received}, last at {last} s, rate {rate}"
            );
        }
    }

    #[test]
    fn recording_input_moves_the_clock() {
        let t0 = Instant::now();
        let mut clock = InputClock::new(t0);
        assert!(!clock.overdue(t0 + Duration::from_secs(59), Duration::from_secs(60), 0));
        clock.record(t0 + Duration::from_secs(59), 1);
        assert!(!clock.overdue(t0 + Duration::from_secs(100), Duration::from_secs(60), 0));
        assert!(clock.overdue(t0 + Duration::from_secs(100), Duration::from_secs(60), 500));
    }
}
