//! What can go wrong talking to a FastCGI server.

use std::fmt;
use std::io;
use std::time::Duration;

use fcgi_codec::{DecodeError, EndRequest, ProtocolStatus, RecordType};

use crate::{Address, HeadError};

/// Why a request, or the connection it ran on, failed.
///
/// Every variant but [`Error::NoResponse`], [`Error::Busy`] and [`Error::NotInFlight`] leaves
/// the connection unusable: [`Connection::is_usable`](crate::Connection::is_usable) turns
/// false and the next request on it fails with [`Error::Unusable`].
///
/// ```
/// use fcgi_client::{Connection, Error};
///
/// // Nothing listens on this path.
/// match Connection::connect(&"unix:/nonexistent/fcgi.sock".parse()?) {
///     Err(error @ Error::Connect { .. }) => {
///         assert!(error.to_string().starts_with("cannot connect to unix:/nonexistent/fcgi.sock"));
///     }
///     other => panic!("{other:?}"),
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The connection could not be opened (refused, no such socket, no such host, ...).
    Connect {
        /// Where we tried to connect.
        addr: Address,
        /// What the system said (for a name that resolved to several addresses, the last).
        source: io::Error,
    },
    /// A read or write took longer than its timeout. (Connecting too long is an
    /// [`Error::Connect`] whose source is [`io::ErrorKind::TimedOut`], so that it names the
    /// address.)
    Timeout {
        /// What was being done: `"connecting"`, `"sending the request"`, `"reading the
        /// response"`.
        during: &'static str,
        /// The timeout that ran out.
        after: Duration,
    },
    /// Reading or writing the socket failed (a reset, a broken pipe, ...).
    Io {
        /// What was being done.
        during: &'static str,
        /// What the system said.
        source: io::Error,
    },
    /// The server closed the connection before the response, or the answer waited for, was
    /// complete.
    Closed {
        /// What was being waited for.
        during: &'static str,
    },
    /// The server sent bytes that are not FastCGI records (the codec's verdict).
    Protocol(DecodeError),
    /// The server sent a record a server never sends (`FCGI_BEGIN_REQUEST`, `FCGI_PARAMS`,
    /// ...), or `FCGI_UNKNOWN_TYPE` for a record type the client did not send.
    UnexpectedRecord {
        /// The record's type.
        record_type: RecordType,
        /// The record's request id.
        request_id: u16,
    },
    /// The server does not know `FCGI_GET_VALUES`: it answered with `FCGI_UNKNOWN_TYPE`.
    GetValuesUnsupported,
    /// The front of `FCGI_STDOUT` is not a CGI response head.
    Head {
        /// The request.
        request_id: u16,
        /// What is wrong with it.
        source: HeadError,
    },
    /// The request ended (`FCGI_END_REQUEST`) before any response head: the server refused it
    /// (see `end.protocol_status`: overloaded, cannot multiplex, unknown role) or its
    /// application wrote nothing.
    NoResponse {
        /// The request.
        request_id: u16,
        /// How the request ended.
        end: EndRequest,
        /// What the application wrote to `FCGI_STDERR`.
        stderr: Vec<u8>,
    },
    /// The response was cut short after its head: the application failed after sending its
    /// header, and the server, unable to send an error status any more, broke the response
    /// off so that it cannot pass for a whole one. fcgi-rs does it with an invalid record
    /// (version 0) and a close, where other servers close the connection without
    /// `FCGI_END_REQUEST` ([`Ending`] says which). Not the server breaking the protocol: the
    /// way it reports a failure it can no longer answer with a status.
    ///
    /// ```
    /// use fcgi_client::{Ending, Error};
    ///
    /// let error = Error::CutShort { request_id: 1, body_bytes: 5, ending: Ending::Closed, stderr: Vec::new() };
    /// assert!(error.to_string().starts_with("the application failed after sending its header"));
    /// ```
    CutShort {
        /// The request.
        request_id: u16,
        /// Body bytes received (after the head) before the end.
        body_bytes: u64,
        /// How the response ended.
        ending: Ending,
        /// What the application wrote to `FCGI_STDERR`.
        stderr: Vec<u8>,
    },
    /// Reading the request body from the caller's reader failed. The request was aborted
    /// (`FCGI_ABORT_REQUEST`) but the connection is left unusable, since the server may have
    /// answered in part.
    Body(io::Error),
    /// Every request id (1 to 65,535) is in flight on this connection.
    Busy,
    /// A response was asked for a request id that is not in flight: never sent, or its
    /// response already read (or refused, [`Error::NoResponse`]).
    NotInFlight {
        /// The request id asked for.
        request_id: u16,
    },
    /// The connection cannot take another request: it broke earlier, or the last request did
    /// not ask to keep it (`FCGI_KEEP_CONN` off), so the server closes it.
    Unusable,
}

/// How a response cut short ended ([`Error::CutShort`]).
///
/// ```
/// use fcgi_client::Ending;
///
/// assert_eq!(Ending::Closed.to_string(), "the server closed the connection without FCGI_END_REQUEST");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Ending {
    /// The server sent a record of another FastCGI version, then closed the connection: how
    /// fcgi-rs breaks off a response (nginx and Apache reject the record, so their clients see
    /// the failure).
    InvalidRecord(DecodeError),
    /// The server closed (or reset) the connection without `FCGI_END_REQUEST`.
    Closed,
}

impl fmt::Display for Ending {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ending::InvalidRecord(DecodeError::UnsupportedVersion { version }) => write!(
                f,
                "the server broke the response off with a record of FastCGI version {version} \
                 and closed the connection, as fcgi-rs does"
            ),
            Ending::InvalidRecord(error) => write!(
                f,
                "the server broke the response off with an invalid record ({error}) and closed \
                 the connection"
            ),
            Ending::Closed => {
                write!(f, "the server closed the connection without FCGI_END_REQUEST")
            }
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Connect { addr, source } => write!(f, "cannot connect to {addr}: {source}"),
            Error::Timeout { during, after } => {
                write!(f, "timed out after {:.1} s {during}", after.as_secs_f64())
            }
            Error::Io { during, source } => write!(f, "{during} failed: {source}"),
            Error::Closed { during } => write!(f, "the server closed the connection {during}"),
            Error::Protocol(error) => write!(f, "the server broke the FastCGI protocol: {error}"),
            Error::UnexpectedRecord { record_type, request_id } => write!(
                f,
                "the server sent an unexpected {record_type:?} record (request id {request_id})"
            ),
            Error::GetValuesUnsupported => {
                write!(f, "the server does not know FCGI_GET_VALUES (it answered UNKNOWN_TYPE)")
            }
            Error::Head { request_id, source } => {
                write!(f, "bad response head for request {request_id}: {source}")
            }
            Error::NoResponse { request_id, end, stderr } => {
                write!(
                    f,
                    "request {request_id} ended without a response: {} (app status {})",
                    describe(end.protocol_status),
                    end.app_status
                )?;
                let stderr = String::from_utf8_lossy(stderr);
                match stderr.trim() {
                    "" => Ok(()),
                    text => write!(f, "; stderr: {}", text.lines().next().unwrap_or_default()),
                }
            }
            Error::CutShort { request_id, body_bytes, ending, stderr } => {
                write!(
                    f,
                    "the application failed after sending its header: request {request_id} was \
                     cut short after {body_bytes} body bytes; {ending}"
                )?;
                let stderr = String::from_utf8_lossy(stderr);
                match stderr.trim() {
                    "" => Ok(()),
                    text => write!(f, "; stderr: {}", text.lines().next().unwrap_or_default()),
                }
            }
            Error::Body(source) => write!(f, "reading the request body failed: {source}"),
            Error::Busy => write!(f, "all 65,535 request ids are in flight on this connection"),
            Error::NotInFlight { request_id } => {
                write!(f, "request {request_id} is not in flight on this connection")
            }
            Error::Unusable => write!(
                f,
                "the connection cannot be reused: it broke earlier or was not kept (KEEP_CONN off)"
            ),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Connect { source, .. } | Error::Io { source, .. } | Error::Body(source) => {
                Some(source)
            }
            Error::Protocol(error) => Some(error),
            Error::Head { source, .. } => Some(source),
            _ => None,
        }
    }
}

impl From<Error> for io::Error {
    /// For [`Read`](std::io::Read) on a response: a timeout becomes
    /// [`io::ErrorKind::TimedOut`], the server closing early or cutting the response short
    /// [`io::ErrorKind::UnexpectedEof`], everything else [`io::ErrorKind::Other`]; the [`Error`] is kept inside, and
    /// [`Error::from_io`] gets it back.
    fn from(error: Error) -> io::Error {
        let kind = match &error {
            Error::Timeout { .. } => io::ErrorKind::TimedOut,
            Error::Closed { .. } | Error::CutShort { .. } => io::ErrorKind::UnexpectedEof,
            Error::Io { source, .. } => source.kind(),
            _ => io::ErrorKind::Other,
        };
        io::Error::new(kind, error)
    }
}

impl Error {
    /// The [`Error`] inside an [`io::Error`] that a response's [`Read`](std::io::Read)
    /// returned; any other `io::Error` becomes [`Error::Io`] during `"reading the response"`.
    ///
    /// ```
    /// use fcgi_client::Error;
    ///
    /// let io: std::io::Error = Error::Closed { during: "reading the response" }.into();
    /// assert!(matches!(Error::from_io(io), Error::Closed { .. }));
    /// ```
    pub fn from_io(error: io::Error) -> Error {
        if error.get_ref().is_some_and(|inner| inner.is::<Error>()) {
            if let Some(inner) = error.into_inner() {
                if let Ok(error) = inner.downcast::<Error>() {
                    return *error;
                }
            }
            // Unreachable: the check above saw an Error inside.
            return Error::Closed { during: "reading the response" };
        }
        Error::Io { during: "reading the response", source: error }
    }
}

/// A protocol status in words, for messages.
///
/// ```
/// use fcgi_client::{describe, ProtocolStatus};
///
/// assert_eq!(describe(ProtocolStatus::Overloaded), "the server is overloaded (FCGI_OVERLOADED)");
/// ```
pub fn describe(status: ProtocolStatus) -> String {
    match status {
        ProtocolStatus::RequestComplete => "complete (FCGI_REQUEST_COMPLETE)".into(),
        ProtocolStatus::CantMpxConn => {
            "the server does not multiplex requests on a connection (FCGI_CANT_MPX_CONN)".into()
        }
        ProtocolStatus::Overloaded => "the server is overloaded (FCGI_OVERLOADED)".into(),
        ProtocolStatus::UnknownRole => {
            "the server does not play the role asked for (FCGI_UNKNOWN_ROLE)".into()
        }
        ProtocolStatus::Unknown(n) => format!("unknown protocol status {n}"),
    }
}
