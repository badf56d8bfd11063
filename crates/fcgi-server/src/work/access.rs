//! What the server says about each request it ran, for an access log: an [`AccessRecord`], with
//! how the request ended as an [`Outcome`], handed to the [`AccessLog`] given to
//! [`ServerBuilder::access_log`](crate::ServerBuilder::access_log), or logged as a record tagged
//! [`ACCESS_TAG`](crate::ACCESS_TAG) when none is given.

use std::borrow::Cow;
use std::time::Duration;

/// How a request ended, for its access log line.
///
/// ```
/// use fcgi_server::Outcome;
///
/// assert_eq!(Outcome::CutShort.as_str(), "cut_short");
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Outcome {
    /// Answered in full.
    #[default]
    Ok,
    /// The web server aborted it (FCGI_ABORT_REQUEST).
    Aborted,
    /// Its body stopped before its end (over the limit, the spool failed, too slow): answered
    /// with the status that says why.
    InputFailed,
    /// The web server closed the connection before the response was written.
    PeerGone,
    /// The handler failed before any of its response went out: answered 500.
    HandlerError,
    /// The handler panicked before any of its response went out: answered 500.
    Panic,
    /// The handler failed or panicked after some of its response went out: cut short, so that
    /// the web server shows it as failed.
    CutShort,
    /// The response was complete, but could not be delivered.
    NotDelivered,
    /// It waited past the queue timeout, and its connection answered it 503.
    QueueTimeout,
}

impl Outcome {
    /// The outcome as the access log writes it: `ok`, `aborted`, `input_failed`, `peer_gone`,
    /// `handler_error`, `panic`, `cut_short`, `not_delivered`, `queue_timeout`.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Aborted => "aborted",
            Outcome::InputFailed => "input_failed",
            Outcome::PeerGone => "peer_gone",
            Outcome::HandlerError => "handler_error",
            Outcome::Panic => "panic",
            Outcome::CutShort => "cut_short",
            Outcome::NotDelivered => "not_delivered",
            Outcome::QueueTimeout => "queue_timeout",
        }
    }
}

/// One request as its access log line tells it: the params a line shows, borrowed from the
/// request, and what the server did with it.
///
/// ```
/// use std::time::Duration;
/// use fcgi_server::{AccessRecord, Outcome};
///
/// let record = AccessRecord {
///     method: Some("GET"),
///     uri: Some("/"),
///     status: 200,
///     duration: Duration::from_millis(2),
///     request_id: "4711-1",
///     outcome: Outcome::Ok,
///     ..AccessRecord::default()
/// };
/// assert_eq!(record.outcome.as_str(), "ok");
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AccessRecord<'a> {
    /// REQUEST_METHOD.
    pub method: Option<&'a str>,
    /// REQUEST_URI.
    pub uri: Option<&'a str>,
    /// REMOTE_ADDR.
    pub remote: Option<&'a str>,
    /// REMOTE_USER.
    pub user: Option<&'a str>,
    /// QUERY_STRING, when not empty.
    pub query: Option<&'a str>,
    /// SCRIPT_FILENAME (bytes that are not UTF-8 replaced).
    pub script: Option<Cow<'a, str>>,
    /// SERVER_PROTOCOL.
    pub protocol: Option<&'a str>,
    /// HTTP_REFERER.
    pub referer: Option<&'a str>,
    /// HTTP_USER_AGENT.
    pub user_agent: Option<&'a str>,
    /// CONTENT_LENGTH, when it is a length.
    pub content_length: Option<u64>,
    /// The response's status.
    pub status: u16,
    /// Body bytes sent.
    pub bytes: u64,
    /// From the moment a thread took it to its end.
    pub duration: Duration,
    /// The web server's id for it (REQUEST_ID, or an `X-Request-Id` header), else `PID-N`.
    pub request_id: &'a str,
    /// How it ended.
    pub outcome: Outcome,
    /// The program process that served it (`--app exec`, `--app cgi`), if one did.
    pub program_pid: Option<u32>,
}

/// Where a server's access records go, instead of its log: a file's writer, say. Called on the
/// thread that ran the request, once the response is written: it must not block for long
/// (queue the line, write it elsewhere).
///
/// ```
/// use std::sync::{Arc, Mutex};
/// use fcgi_server::{AccessLog, AccessRecord, Server};
///
/// #[derive(Default)]
/// struct Statuses(Mutex<Vec<u16>>);
///
/// impl AccessLog for Statuses {
///     fn log(&self, record: &AccessRecord<'_>) {
///         self.0.lock().unwrap().push(record.status);
///     }
/// }
///
/// let _builder = Server::builder().access_log(Arc::new(Statuses::default()));
/// ```
pub trait AccessLog: Send + Sync {
    /// Takes one request's record.
    fn log(&self, record: &AccessRecord<'_>);
}
