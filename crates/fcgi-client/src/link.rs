//! A connection's socket and what has come on it: each read files every whole record into
//! its request's slot or the connection's, for the connection and its responses to take.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::time::Duration;

use fcgi_codec::{Body, Decoder, EndRequest, Record, RecordType};

use crate::Error;

/// A connected socket, TCP or Unix.
#[derive(Debug)]
pub(crate) enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.read(buf),
            Stream::Unix(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.write(buf),
            Stream::Unix(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// What has come for one request in flight.
#[derive(Debug, Default)]
pub(crate) struct Slot {
    /// `FCGI_STDOUT` received and not yet read: bytes `read_pos..`.
    pub(crate) stdout: Vec<u8>,
    pub(crate) read_pos: usize,
    /// The empty `FCGI_STDOUT` record came (PHP-FPM never sends it: END_REQUEST ends it too).
    pub(crate) stdout_ended: bool,
    pub(crate) stderr: Vec<u8>,
    pub(crate) end: Option<EndRequest>,
    pub(crate) keep_conn: bool,
    /// The caller dropped its response unfinished: discard its output, forget it at its end.
    pub(crate) abandoned: bool,
}

impl Slot {
    /// Whether the body has no more bytes to come.
    pub(crate) fn body_done(&self) -> bool {
        self.stdout_ended || self.end.is_some()
    }
}

/// The read side of a connection, and the socket its requests are written to: what a
/// [`Response`](crate::Response) borrows to read its body.
#[derive(Debug)]
pub(crate) struct Link {
    pub(crate) stream: Stream,
    /// How long each read may block, for the error a timeout becomes.
    pub(crate) read_timeout: Option<Duration>,
    pub(crate) decoder: Decoder,
    pub(crate) slots: HashMap<u16, Slot>,
    /// An `FCGI_GET_VALUES_RESULT` not yet handed out.
    pub(crate) values: Option<Vec<(String, String)>>,
    /// The server answered `FCGI_GET_VALUES` with `FCGI_UNKNOWN_TYPE`.
    pub(crate) values_unknown: bool,
    pub(crate) usable: bool,
}

impl Link {
    /// Forgets request `id`, whose end has come; a request that did not keep the connection
    /// leaves it unusable.
    pub(crate) fn forget(&mut self, id: u16) {
        if let Some(slot) = self.slots.remove(&id) {
            if !slot.keep_conn {
                self.usable = false;
            }
        }
    }

    /// Marks the connection unusable if `result` is an error.
    pub(crate) fn check<T>(&mut self, result: Result<T, Error>) -> Result<T, Error> {
        if result.is_err() {
            self.usable = false;
        }
        result
    }

    /// Reads once from the socket and sorts every whole record that came into its slot.
    pub(crate) fn pump(&mut self, during: &'static str) -> Result<(), Error> {
        let result = self.pump_inner(during);
        self.check(result)
    }

    fn pump_inner(&mut self, during: &'static str) -> Result<(), Error> {
        let n = loop {
            match self.decoder.read_from(&mut self.stream) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(io_error(e, during, self.read_timeout)),
            }
        };
        if n == 0 {
            return Err(Error::Closed { during });
        }
        let Link { decoder, slots, values, values_unknown, .. } = self;
        while let Some(record) = decoder.decode().map_err(Error::Protocol)? {
            dispatch(record, slots, values, values_unknown)?;
        }
        Ok(())
    }
}

/// Files one record from the server.
fn dispatch(
    record: Record<'_>,
    slots: &mut HashMap<u16, Slot>,
    values: &mut Option<Vec<(String, String)>>,
    values_unknown: &mut bool,
) -> Result<(), Error> {
    let id = record.request_id;
    let unexpected = |record_type| Error::UnexpectedRecord { record_type, request_id: id };
    match record.body {
        Body::Stdout(bytes) | Body::Stderr(bytes) if id != 0 => {
            let is_stdout = matches!(record.body, Body::Stdout(_));
            // Records for ids not in flight are ignored, as the spec has servers do.
            let Some(slot) = slots.get_mut(&id) else { return Ok(()) };
            match (is_stdout, bytes.is_empty()) {
                (true, true) => slot.stdout_ended = true,
                (true, false) if !slot.abandoned => {
                    if slot.read_pos == slot.stdout.len() {
                        slot.stdout.clear();
                        slot.read_pos = 0;
                    }
                    slot.stdout.extend_from_slice(bytes);
                }
                (false, false) if !slot.abandoned => slot.stderr.extend_from_slice(bytes),
                _ => {}
            }
        }
        Body::EndRequest(end) if id != 0 => {
            if let Some(slot) = slots.get_mut(&id) {
                slot.end = Some(end);
                if slot.abandoned {
                    slots.remove(&id);
                }
            }
        }
        Body::GetValuesResult(pairs) if id == 0 => {
            let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
            *values = Some(pairs.map(|(name, value)| (text(name), text(value))).collect());
        }
        Body::UnknownType(unknown) if id == 0 => {
            if unknown.record_type != RecordType::GetValues {
                return Err(unexpected(RecordType::UnknownType));
            }
            *values_unknown = true;
        }
        other => return Err(unexpected(other.record_type())),
    }
    Ok(())
}

/// An I/O error as the client reports it: a timeout, the peer gone, or the error itself.
pub(crate) fn io_error(error: io::Error, during: &'static str, timeout: Option<Duration>) -> Error {
    match error.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => {
            Error::Timeout { during, after: timeout.unwrap_or_default() }
        }
        io::ErrorKind::BrokenPipe
        | io::ErrorKind::ConnectionReset
        | io::ErrorKind::ConnectionAborted
        | io::ErrorKind::UnexpectedEof => Error::Closed { during },
        _ => Error::Io { during, source: error },
    }
}
