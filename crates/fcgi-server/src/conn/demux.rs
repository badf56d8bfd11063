//! The demultiplexing of one connection's requests, as pure decisions: a record (or a timer)
//! and the phase of the request it names in, an [`Action`] out. `connection.rs` carries the
//! actions out (the spools, the pool, the answers on the wire); nothing here does I/O, so
//! every rule is a row of a table test. `fuzz/fuzz_targets/connection.rs` drives it through a
//! served connection with arbitrary record sequences, and checks the answers against the spec.
//!
//! A request id's [`Phase`] on its connection (the stages of `slot.rs`, as routing sees them):
//!
//! ```text
//!            BEGIN_REQUEST (role served, within the limits)
//!   ┌──────┐ ─────────────────────────────────────────────▶ ┌────────┐
//!   │ Free │                                                │ Params │──┐ FCGI_STDIN, FCGI_DATA:
//!   └──────┘ ◀──────── answered by the connection ───────── └────────┘◀─┘ spooled already
//!      ▲  ▲  (refused, bad params, abort, timeouts)  │           │ empty FCGI_PARAMS
//!      │  │                                          │           ▼
//!      │  │                                          │      ┌────────┐ body complete ┌─────────┐
//!      │  └──────────────────────────────────────────┴──────│  Body  │──────────────▶│ Running │
//!      │                                                    └────────┘   (or at once └─────────┘
//!      │  END_REQUEST written                                             for a handler  │
//!      │                             ┌──────────┐   handler returns       that streams)  │
//!      └─────────────────────────────│ Returned │◀───────────────────────────────────────┘
//!                                    └──────────┘  (a new BEGIN_REQUEST may reuse the id)
//! ```
//!
//! The rules, from the FastCGI spec and from what web servers do:
//! - BEGIN_REQUEST for an id that is open (Params, Body, Running) breaks the protocol: the
//!   connection closes. For a Free or Returned id it opens a request, unless its role has no
//!   handler (500 with UNKNOWN_ROLE: a web server that ignores the protocol status must not see
//!   an empty success), the connection is past `max_conns` (503, and the connection ends), or
//!   `max_conn_requests` are open on it (503).
//! - Params go to a request in Params; an empty record ends them. Body records (STDIN, DATA)
//!   go to a request that has not returned, whatever its phase: a web server may send the body
//!   before the params end.
//! - ABORT_REQUEST stops a request that has not returned: a running handler answers it, else
//!   the connection does, with END_REQUEST alone.
//! - Records for an id that is not open, output streams and unknown types on a request id are
//!   ignored; management records (id 0) are answered whatever the phase.

use fcgi_codec::{management, Encoder, Pairs};

/// Where a request id stands on its connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Phase {
    /// No request open with this id.
    Free,
    /// Begun; its params are still arriving.
    Params,
    /// Its params are complete; its body is still arriving, and its handler waits for it.
    Body,
    /// Handed to the pool: queued, or its handler at work.
    Running,
    /// Its handler returned; its END_REQUEST is on the way out. The id may be reused.
    Returned,
}

impl Phase {
    /// A request is open with this id: its handler has not returned.
    pub(crate) fn is_open(self) -> bool {
        matches!(self, Phase::Params | Phase::Body | Phase::Running)
    }
}

/// What a record says, with what the decision needs to know beside its request's phase.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Event {
    /// FCGI_BEGIN_REQUEST.
    Begin {
        /// A handler serves its role.
        served: bool,
        /// The connection was accepted past `max_conns`.
        over_limit: bool,
        /// `max_conn_requests` requests are open on the connection (Returned ones not
        /// counted).
        conn_full: bool,
    },
    /// FCGI_PARAMS (an empty one ends the stream).
    Params,
    /// FCGI_STDIN (`data` false) or FCGI_DATA (`data` true); an empty one ends its stream.
    Body {
        /// The Filter role's second stream.
        data: bool,
    },
    /// FCGI_ABORT_REQUEST.
    Abort,
    /// FCGI_GET_VALUES (request id 0).
    GetValues,
    /// Any other management record (request id 0): answered FCGI_UNKNOWN_TYPE.
    UnknownManagement,
    /// A record that means nothing to an application (an output stream, an unknown type on a
    /// request id).
    Other,
}

/// What the connection does for a record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Action {
    /// The web server broke the protocol: the connection closes.
    Violation,
    /// The connection answers the request in a handler's place, and forgets it.
    Answer(Answer),
    /// A new request opens, in Params (the memory budget may still refuse it: [`Answer`]
    /// [`Refusal::Budget`]).
    Open,
    /// The record's params go to the request (an empty record ends them).
    Params,
    /// The record's bytes go to the request's body stream (an empty record ends it).
    Body {
        /// FCGI_DATA rather than FCGI_STDIN.
        data: bool,
    },
    /// The request is aborted; `answered` when no handler runs, so the connection answers it
    /// with END_REQUEST alone and forgets it.
    Abort {
        /// The connection answers for it.
        answered: bool,
    },
    /// The answer to FCGI_GET_VALUES.
    Values,
    /// FCGI_UNKNOWN_TYPE for the record's type.
    UnknownType,
    /// Nothing.
    Ignore,
}

/// An answer the connection writes itself, before any handler output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Answer {
    /// No handler for the role: 500 and UNKNOWN_ROLE.
    UnknownRole,
    /// The connection is past `max_conns`: 503 and OVERLOADED, and the connection ends
    /// whatever FCGI_KEEP_CONN says.
    OverMaxConns,
    /// 503 with `Retry-After` and OVERLOADED, for a limit.
    Refused(Refusal),
}

/// Why the connection answered a request `503` itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// `max_conn_requests` requests are open on this connection.
    ConnRequests,
    /// The memory budget of all unfinished requests is spent.
    Budget,
    /// Every thread is busy and the queue is full.
    QueueFull,
    /// It waited in the queue past `queue_timeout`.
    QueueTimeout,
}

impl Refusal {
    /// The log line's message.
    pub(crate) fn message(self) -> &'static str {
        match self {
            Refusal::ConnRequests => {
                "too many requests open on one connection; request answered 503"
            }
            Refusal::Budget => "memory budget of unfinished requests spent; request answered 503",
            Refusal::QueueFull => "all threads busy and the queue full; request answered 503",
            Refusal::QueueTimeout => "request waited too long for a thread; answered 503",
        }
    }

    /// The name of the limit, the log line's `limit` field.
    pub(crate) fn limit(self) -> &'static str {
        match self {
            Refusal::ConnRequests => "max_conn_requests",
            Refusal::Budget => "memory_budget",
            Refusal::QueueFull => "queue",
            Refusal::QueueTimeout => "queue_timeout",
        }
    }
}

/// The action for `event` on a request in `phase` (see the module's rules).
///
/// ```ignore
/// assert_eq!(route(Phase::Running, Event::Abort), Action::Abort { answered: false });
/// ```
pub(crate) fn route(phase: Phase, event: Event) -> Action {
    match event {
        Event::GetValues => Action::Values,
        Event::UnknownManagement => Action::UnknownType,
        Event::Other => Action::Ignore,
        Event::Begin { .. } if phase.is_open() => Action::Violation,
        Event::Begin { served: false, .. } => Action::Answer(Answer::UnknownRole),
        Event::Begin { over_limit: true, .. } => Action::Answer(Answer::OverMaxConns),
        Event::Begin { conn_full: true, .. } => {
            Action::Answer(Answer::Refused(Refusal::ConnRequests))
        }
        Event::Begin { .. } => Action::Open,
        Event::Params if phase == Phase::Params => Action::Params,
        Event::Body { data } if phase.is_open() => Action::Body { data },
        Event::Abort if phase.is_open() => Action::Abort { answered: phase != Phase::Running },
        Event::Params | Event::Body { .. } | Event::Abort => Action::Ignore,
    }
}

/// How a request whose params are complete (or whose body just completed) starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Start {
    /// Its handler waits in Body, holding no thread, until its body is whole.
    Wait,
    /// Its input failed before its handler started: the connection answers why.
    Fail,
    /// The reading thread runs it itself, once it has let go of the connection.
    Here,
    /// A pool thread runs it; `aside` when every thread is busy (it queues, or is refused).
    Pool {
        /// Every thread was busy: FPM's "max children reached".
        aside: bool,
    },
}

/// What [`start`] weighs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct StartFacts {
    /// Its handler reads its body as it arrives, so it starts whether the body is in or not.
    pub(crate) streams_body: bool,
    /// The body (and data, for a Filter) is all in.
    pub(crate) input_complete: bool,
    /// The body stopped with an error (too large, spool failed, timed out, aborted).
    pub(crate) input_failed: bool,
    /// The reading thread may run one request itself and has none yet.
    pub(crate) here_free: bool,
    /// Every pool thread is busy.
    pub(crate) all_busy: bool,
}

/// How a ready request starts: not before its body is whole unless its handler streams it, and
/// never with a failed body.
///
/// ```ignore
/// let facts = StartFacts { input_complete: true, ..StartFacts::default() };
/// assert_eq!(start(facts), Start::Pool { aside: false });
/// ```
pub(crate) fn start(facts: StartFacts) -> Start {
    if !facts.streams_body {
        if !facts.input_complete {
            return Start::Wait;
        }
        if facts.input_failed {
            return Start::Fail;
        }
    }
    if facts.here_free {
        Start::Here
    } else {
        Start::Pool { aside: facts.all_busy }
    }
}

/// A deadline a request passed, found by the connection's sweep.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Timer {
    /// It ran (queued or at work) past `request_timeout`: 504, or cut short.
    Request,
    /// It waited for a thread past `queue_timeout`: 503.
    Queue,
    /// Its input is overdue (`read_timeout`, `min_input_rate`): 408.
    Input,
}

/// The deadline a request is held to first, of those it passed: the request timeout bounds
/// everything, a queued request is not owed input, and input is judged only while the
/// connection is read (a paused connection's input waits unread on this side).
///
/// ```ignore
/// assert_eq!(timer(false, true, true, false), Some(Timer::Queue));
/// ```
pub(crate) fn timer(
    past_request: bool,
    waited_queue: bool,
    input_overdue: bool,
    paused: bool,
) -> Option<Timer> {
    if past_request {
        Some(Timer::Request)
    } else if waited_queue {
        Some(Timer::Queue)
    } else if input_overdue && !paused {
        Some(Timer::Input)
    } else {
        None
    }
}

/// The FCGI_GET_VALUES_RESULT record for the names a GET_VALUES record asks for: each name
/// fcgi-rs knows, once, with its value (`max_conns`, `max_reqs`, and multiplexing on); names it
/// does not know are left out, as the spec says. However many names the record holds, the
/// answer is at most three pairs, so it always fits one record.
///
/// ```ignore
/// let answer = values(pairs_of(&[b"FCGI_MPXS_CONNS"]), 1024, 64);
/// ```
pub(crate) fn values(names: Pairs<'_>, max_conns: usize, max_reqs: usize) -> Vec<u8> {
    let max_conns = max_conns.to_string();
    let max_reqs = max_reqs.to_string();
    let known: [(&[u8], &[u8]); 3] = [
        (management::MAX_CONNS, max_conns.as_bytes()),
        (management::MAX_REQS, max_reqs.as_bytes()),
        (management::MPXS_CONNS, b"1"),
    ];
    let mut asked = [false; 3];
    for (name, _) in names {
        if let Some(i) = known.iter().position(|(known, _)| *known == name) {
            asked[i] = true;
        }
    }
    let answer = known.iter().zip(asked).filter(|(_, asked)| *asked).map(|((n, v), _)| (*n, *v));
    let mut out = Vec::with_capacity(64);
    let _ = Encoder::new().get_values_result(&mut out, answer);
    out
}

#[cfg(test)]
mod tests {
    use fcgi_codec::{Body, Decoder, Record};

    use super::*;

    /// Name-value pairs, owned.
    type Owned = Vec<(Vec<u8>, Vec<u8>)>;

    /// The pairs of the GET_VALUES_RESULT record `values` makes for a GET_VALUES of `names`.
    fn answered(names: &[&[u8]]) -> Owned {
        let mut asked = Vec::new();
        Encoder::new().get_values(&mut asked, names.iter().copied()).unwrap();
        let mut decoder = Decoder::new();
        decoder.feed(&asked);
        let Some(Record { body: Body::GetValues(pairs), .. }) = decoder.decode().unwrap() else {
            panic!("a GET_VALUES record")
        };
        let answer = values(pairs, 1024, 64);
        let mut decoder = Decoder::new();
        decoder.feed(&answer);
        let Some(Record { body: Body::GetValuesResult(pairs), .. }) = decoder.decode().unwrap()
        else {
            panic!("a GET_VALUES_RESULT record")
        };
        pairs.map(|(n, v)| (n.to_vec(), v.to_vec())).collect()
    }

    #[test]
    fn values_as_a_table() {
        let pair = |n: &[u8], v: &[u8]| (n.to_vec(), v.to_vec());
        let table: [(&[&[u8]], Owned); 5] = [
            (&[], vec![]),
            (&[b"FCGI_MPXS_CONNS"], vec![pair(b"FCGI_MPXS_CONNS", b"1")]),
            // In fcgi-rs's order, each once, whatever was asked and how often.
            (
                &[b"FCGI_MAX_REQS", b"FCGI_MAX_CONNS", b"FCGI_MAX_REQS"],
                vec![pair(b"FCGI_MAX_CONNS", b"1024"), pair(b"FCGI_MAX_REQS", b"64")],
            ),
            // Names fcgi-rs does not know are left out.
            (&[b"FCGI_NOPE", b"fcgi_mpxs_conns"], vec![]),
            (
                &[b"FCGI_MPXS_CONNS", b"X", b"FCGI_MAX_CONNS", b"FCGI_MAX_REQS"],
                vec![
                    pair(b"FCGI_MAX_CONNS", b"1024"),
                    pair(b"FCGI_MAX_REQS", b"64"),
                    pair(b"FCGI_MPXS_CONNS", b"1"),
                ],
            ),
        ];
        for (names, want) in table {
            assert_eq!(answered(names), want, "{names:?}");
        }
    }

    const PHASES: [Phase; 5] =
        [Phase::Free, Phase::Params, Phase::Body, Phase::Running, Phase::Returned];

    fn begin(served: bool, over_limit: bool, conn_full: bool) -> Event {
        Event::Begin { served, over_limit, conn_full }
    }

    #[test]
    fn records_route_as_a_table() {
        use Action as A;
        let refused = A::Answer(Answer::Refused(Refusal::ConnRequests));
        let table: &[(Event, [Action; 5])] = &[
            // phases:                Free, Params, Body, Running, Returned
            (
                begin(true, false, false),
                [A::Open, A::Violation, A::Violation, A::Violation, A::Open],
            ),
            (
                begin(false, false, false),
                [
                    A::Answer(Answer::UnknownRole),
                    A::Violation,
                    A::Violation,
                    A::Violation,
                    A::Answer(Answer::UnknownRole),
                ],
            ),
            (
                begin(true, true, false),
                [
                    A::Answer(Answer::OverMaxConns),
                    A::Violation,
                    A::Violation,
                    A::Violation,
                    A::Answer(Answer::OverMaxConns),
                ],
            ),
            (
                begin(true, false, true),
                [refused, A::Violation, A::Violation, A::Violation, refused],
            ),
            // No role served outranks the limits: the answer says what the peer can fix.
            (
                begin(false, true, true),
                [
                    A::Answer(Answer::UnknownRole),
                    A::Violation,
                    A::Violation,
                    A::Violation,
                    A::Answer(Answer::UnknownRole),
                ],
            ),
            (Event::Params, [A::Ignore, A::Params, A::Ignore, A::Ignore, A::Ignore]),
            (
                Event::Body { data: false },
                [
                    A::Ignore,
                    A::Body { data: false },
                    A::Body { data: false },
                    A::Body { data: false },
                    A::Ignore,
                ],
            ),
            (
                Event::Body { data: true },
                [
                    A::Ignore,
                    A::Body { data: true },
                    A::Body { data: true },
                    A::Body { data: true },
                    A::Ignore,
                ],
            ),
            (
                Event::Abort,
                [
                    A::Ignore,
                    A::Abort { answered: true },
                    A::Abort { answered: true },
                    A::Abort { answered: false },
                    A::Ignore,
                ],
            ),
            (Event::GetValues, [A::Values; 5]),
            (Event::UnknownManagement, [A::UnknownType; 5]),
            (Event::Other, [A::Ignore; 5]),
        ];
        for (event, actions) in table {
            for (phase, want) in PHASES.iter().zip(actions) {
                assert_eq!(route(*phase, *event), *want, "{event:?} in {phase:?}");
            }
        }
    }

    #[test]
    fn starts_as_a_table() {
        // (streams body, input complete, input failed, here free, all busy, start)
        let table: [(bool, bool, bool, bool, bool, Start); 10] = [
            (false, false, false, false, false, Start::Wait),
            (false, false, false, true, true, Start::Wait),
            // One stream failed while the other (a Filter's FCGI_DATA) is still arriving.
            (false, false, true, false, false, Start::Wait),
            (false, true, true, true, false, Start::Fail),
            (false, true, false, true, false, Start::Here),
            (false, true, false, false, false, Start::Pool { aside: false }),
            (false, true, false, false, true, Start::Pool { aside: true }),
            // A handler that streams starts at once, and sees a failed body itself.
            (true, false, false, false, false, Start::Pool { aside: false }),
            (true, false, true, true, false, Start::Here),
            (true, true, true, false, true, Start::Pool { aside: true }),
        ];
        for (streams_body, input_complete, input_failed, here_free, all_busy, want) in table {
            let facts =
                StartFacts { streams_body, input_complete, input_failed, here_free, all_busy };
            assert_eq!(start(facts), want, "{facts:?}");
        }
    }

    #[test]
    fn timers_as_a_table() {
        // (past the request timeout, past the queue timeout, input overdue, paused, timer)
        let table: [(bool, bool, bool, bool, Option<Timer>); 8] = [
            (false, false, false, false, None),
            (true, true, true, false, Some(Timer::Request)),
            (true, false, false, true, Some(Timer::Request)),
            (false, true, true, false, Some(Timer::Queue)),
            (false, true, false, true, Some(Timer::Queue)),
            (false, false, true, false, Some(Timer::Input)),
            (false, false, true, true, None),
            (false, false, false, true, None),
        ];
        for (request, queue, input, paused, want) in table {
            assert_eq!(
                timer(request, queue, input, paused),
                want,
                "{request} {queue} {input} {paused}"
            );
        }
    }
}
