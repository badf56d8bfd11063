//! One request relayed to one program process over its connection: the request's records
//! written (begin, params, the body that has arrived whole, the Filter role's data) while
//! the answer is read (stdout parsed for the CGI header block, then streamed into the
//! response; stderr passed on to the web server and to the log), both in one loop so that
//! neither side can block the other (writes never wait; a `poll` covers both while there is
//! more to send, and once all is sent the blocking read, bounded by `SO_RCVTIMEO`, is the
//! wait); the deadline and the web server's abort enforced between reads.

use std::io::{self, Read, Write};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use fcgi_codec::cgi_header::{Disposition, HeaderParser, Progress};
use fcgi_codec::{BeginRequest, Body, Decoder, Encoder, ProtocolStatus, StreamKind};
use fcgi_server::{Request, Response, Role};
use slog::{info, Logger};

use crate::lines::Lines;
use crate::sys;

/// The request id we use on a program's connection: one request at a time per process.
const ID: u16 = 1;
/// Bytes of the body read and framed at a time.
const CHUNK: usize = 64 * 1024;
/// How often a relay waiting on its program looks whether the web server aborted.
pub(crate) const ABORT_CHECK: Duration = Duration::from_millis(200);
/// The body bytes kept to send again when the program turns out never to have taken the
/// request (it stopped by itself): a larger body is not sent twice, and such a request fails.
pub(crate) const REPLAY_MAX: usize = 64 * 1024;

/// How a relay ended.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// The kept connection had been closed by the program: the request's first write found
    /// it so, and nothing of it reached the program (a new connection takes it).
    Stale,
    /// The program answered the request whole. `reusable`: its connection can take the next.
    Complete { reusable: bool },
    /// The connection ended (or could not be written) before a byte of the answer came:
    /// whether the program took the request is for its exit to tell.
    NoAnswer { error: String, replayable: bool },
    /// The program failed the request: it wrote what is not FastCGI, or a header block that
    /// is not valid, or its connection broke after the answer began.
    /// `retire`: why the process must go (`"garbage"`, `"broken"`), if it must.
    Failed { why: String, retire: Option<&'static str> },
    /// The request ran past its deadline.
    TimedOut,
    /// The web server aborted the request (or went away); `ended`: how the program took it.
    Aborted { ended: Ended },
    /// Writing the response failed: the web server is gone.
    /// `ended`: how the program took it (its answer was read and dropped).
    ClientGone { error: io::Error, ended: Ended },
}

/// What the program did with a request the web server gave up on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Ended {
    /// It ended the request (END_REQUEST): it answered it.
    Answered,
    /// It closed the connection without ending it (php-cgi does when the abort reaches it
    /// before it read the request whole): done with it, though not an answer. It runs on, and
    /// takes the next request on a new connection.
    Closed,
    /// Neither within the grace: it may still be at work on it.
    Running,
}

/// What a relay needs besides the request and the response.
pub(crate) struct Relay<'a> {
    /// The program's connection, non-blocking.
    pub(crate) conn: &'a mut UnixStream,
    /// The connection was kept from an earlier request (the program may have closed it since).
    pub(crate) reused: bool,
    pub(crate) keep_conn: bool,
    pub(crate) deadline: Option<Instant>,
    pub(crate) kill_grace: Duration,
    /// The body sent so far, while it fits [`REPLAY_MAX`]; replayed first on a retry.
    pub(crate) replay: &'a mut Replay,
    pub(crate) pid: u32,
    pub(crate) log: &'a Logger,
}

/// The body's first bytes, kept in case the request must go to another process.
#[derive(Debug, Default)]
pub(crate) struct Replay {
    bytes: Vec<u8>,
    /// More than `REPLAY_MAX` was read: the body cannot be sent again.
    overflowed: bool,
    /// The body was read to its end (all of it is in `bytes`, unless overflowed).
    complete: bool,
}

/// The request's records still to go out.
struct Outgoing<'r> {
    buf: Vec<u8>,
    at: usize,
    body: BodySource,
    /// The body's end has been framed.
    done: bool,
    data: Option<&'r mut fcgi_server::Body>,
    /// The buffer body bytes are read into (allocated at the first read).
    chunk: Vec<u8>,
    /// The body's CONTENT_LENGTH, 0 if none.
    expect: usize,
}

/// Where the body's bytes come from: what an earlier attempt kept, then the request.
struct BodySource {
    replayed: usize,
    reader: fcgi_server::Body,
}

impl Relay<'_> {
    /// Relays `request`, writing the answer into `response`.
    pub(crate) fn run(&mut self, request: &mut Request, response: &mut Response) -> Outcome {
        let encoder = Encoder::new();
        let mut head = Vec::with_capacity(64 + request.params().as_bytes().len());
        let begin = BeginRequest::new(request.role(), self.keep_conn);
        let _ = encoder.begin_request(&mut head, ID, &begin);
        let _ = encoder.stream(&mut head, StreamKind::Params, ID, request.params().as_bytes());
        let _ = encoder.end_stream(&mut head, StreamKind::Params, ID);
        let role = request.role();
        let abort = request.abort_signal();
        let body = request.body_reader();
        let expect = usize::try_from(request.content_length().unwrap_or(0)).unwrap_or(CHUNK);
        let mut out = Outgoing {
            buf: head,
            at: 0,
            body: BodySource { replayed: 0, reader: body },
            done: false,
            data: if role == Role::Filter { request.data() } else { None },
            chunk: Vec::new(),
            expect,
        };
        let mut answer = Answer::new(self.pid, self.log);
        let mut aborted_at: Option<Instant> = None;
        // The web server went away while the answer came: the rest is read and dropped, so
        // that the program, if it ends the request in time, is kept.
        let mut gone: Option<io::Error> = None;
        let aborted = |ended: Ended, gone: &mut Option<io::Error>| match gone.take() {
            Some(error) => Outcome::ClientGone { error, ended },
            None => Outcome::Aborted { ended },
        };
        let mut write_error: Option<String> = None;
        // Whether a write may go without waiting: a fresh request's records fit the socket's
        // buffer, so they go before the first poll, which then waits for the answer alone.
        let mut writable = true;
        loop {
            // Top the outgoing buffer up, from the replay and the body.
            // Topped up while little is pending: a GET's begin, params and the end of its
            // empty body go out in one write (libfcgi answers from the params alone, and would
            // take a separate end of FCGI_STDIN for the start of a bad next request).
            if out.buf.len() - out.at < CHUNK && !out.done {
                if let Err(e) = out.refill(&encoder, self.replay) {
                    // The spool is gone (the request was aborted while we read it).
                    return Outcome::Failed {
                        why: format!("cannot read the request body: {e}"),
                        retire: Some("abort"),
                    };
                }
            }
            let want_write = out.at < out.buf.len();
            let now = Instant::now();
            if let Some(deadline) = self.deadline {
                if now >= deadline && aborted_at.is_none() {
                    return Outcome::TimedOut;
                }
            }
            if aborted_at.is_none() && (abort.is_aborted() || gone.is_some()) {
                // Passed on; the program's answer goes nowhere from now on.
                let mut abort = Vec::new();
                let _ = encoder.abort_request(&mut abort, ID);
                out.buf.drain(..out.at);
                out.at = 0;
                out.buf.extend_from_slice(&abort);
                out.done = true;
                aborted_at = Some(now);
                answer.sink.discard = true;
            }
            if let Some(at) = aborted_at {
                if now >= at + self.kill_grace {
                    return aborted(Ended::Running, &mut gone);
                }
            }
            if want_write && writable {
                match sys::send_now(self.conn, &out.buf[out.at..]) {
                    // More to frame and send, or the answer to wait for: round again.
                    Ok(n) if n > 0 => {
                        out.at += n;
                        continue;
                    }
                    Ok(_) => writable = false,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => writable = false,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    // Its first write on a kept connection: the program had closed it while
                    // idle (a Unix socket refuses a write to a closed peer at once), so
                    // nothing went; no poll before each request is needed to learn it. What
                    // of the body was read for this write is in the replay (one chunk).
                    Err(e)
                        if self.reused
                            && out.at == 0
                            && is_closed(&e)
                            && self.replay.can_replay() =>
                    {
                        return Outcome::Stale
                    }
                    Err(e) => {
                        // It no longer reads. Whether it answered is for its side of the
                        // connection to say: php-cgi answers a GET before it reads the end of
                        // FCGI_STDIN, and then exits at its PHP_FCGI_MAX_REQUESTS, so a
                        // failed write is no proof that the request was not run.
                        out.buf.clear();
                        out.at = 0;
                        out.done = true;
                        write_error = Some(e.to_string());
                        continue;
                    }
                }
            }
            let timeout =
                [self.deadline.map(|d| d.saturating_duration_since(now)), Some(ABORT_CHECK)]
                    .into_iter()
                    .flatten()
                    .min()
                    .unwrap_or(ABORT_CHECK);
            // With nothing left to send, the answer is waited for in the read itself (the
            // connection's receive timeout is ABORT_CHECK): one system call, not a poll and a
            // read. A nearer deadline, or writes to make, need the poll.
            let readable = if !want_write && timeout >= ABORT_CHECK {
                true
            } else {
                let ready = sys::poll_one(self.conn.as_fd(), want_write, timeout);
                // The next round's write goes (or learns why it cannot).
                writable |= ready.writable;
                ready.readable
            };
            if readable {
                match answer.read(self.conn, response) {
                    Ok(Some(end)) => {
                        if aborted_at.is_some() {
                            return aborted(Ended::Answered, &mut gone);
                        }
                        return end;
                    }
                    Ok(None) => {
                        // What the program wrote goes on at once: a response streams as the
                        // program writes it (a progress page, a long report), and the web
                        // server's backpressure reaches the program.
                        if std::mem::take(&mut answer.sink.dirty) {
                            if let Err(e) = response.flush() {
                                gone = Some(e);
                            }
                        }
                    }
                    Err(ReadEnd::Eof(error)) => {
                        if aborted_at.is_some() {
                            return aborted(Ended::Closed, &mut gone);
                        }
                        if answer.nothing_yet() {
                            return Outcome::NoAnswer {
                                error: write_error.unwrap_or(error),
                                replayable: self.replay.can_replay(),
                            };
                        }
                        return Outcome::Failed {
                            why: format!(
                                "the program's connection ended before its answer did: {error}"
                            ),
                            retire: Some("broken"),
                        };
                    }
                    Err(ReadEnd::Garbage(why)) => {
                        return Outcome::Failed { why, retire: Some("garbage") }
                    }
                    Err(ReadEnd::BadHeader(why)) => return Outcome::Failed { why, retire: None },
                    Err(ReadEnd::Client(e)) => gone = Some(e),
                }
            }
        }
    }
}

impl Replay {
    fn can_replay(&self) -> bool {
        !self.overflowed
    }
}

impl Outgoing<'_> {
    /// Frames the next piece of the body (or its end, then the data's) after what is still
    /// to go out.
    fn refill(&mut self, encoder: &Encoder, replay: &mut Replay) -> io::Result<()> {
        self.buf.drain(..self.at);
        self.at = 0;
        if self.chunk.is_empty() {
            // As large as the body says it is: a GET's costs no 64 KiB.
            self.chunk = vec![0u8; self.expect.clamp(512, CHUNK)];
        }
        let chunk = &mut self.chunk;
        // What an earlier attempt read goes again first.
        if self.body.replayed < replay.bytes.len() {
            let end = replay.bytes.len().min(self.body.replayed + CHUNK);
            encoder.stream(
                &mut self.buf,
                StreamKind::Stdin,
                ID,
                &replay.bytes[self.body.replayed..end],
            )?;
            self.body.replayed = end;
            return Ok(());
        }
        if !replay.complete {
            let n = read_some(&mut self.body.reader, chunk)?;
            if n > 0 {
                if !replay.overflowed && replay.bytes.len() + n <= REPLAY_MAX {
                    replay.bytes.extend_from_slice(&chunk[..n]);
                    self.body.replayed = replay.bytes.len();
                } else {
                    replay.overflowed = true;
                    replay.bytes = Vec::new();
                }
                encoder.stream(&mut self.buf, StreamKind::Stdin, ID, &chunk[..n])?;
                return Ok(());
            }
            replay.complete = true;
        }
        encoder.end_stream(&mut self.buf, StreamKind::Stdin, ID)?;
        if let Some(data) = self.data.as_deref_mut() {
            loop {
                let n = read_some(data, chunk)?;
                if n == 0 {
                    break;
                }
                encoder.stream(&mut self.buf, StreamKind::Data, ID, &chunk[..n])?;
            }
            encoder.end_stream(&mut self.buf, StreamKind::Data, ID)?;
        }
        self.done = true;
        Ok(())
    }
}

/// A write error that says the other end had closed the connection.
fn is_closed(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset | io::ErrorKind::NotConnected
    )
}

fn read_some(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match reader.read(buf) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

/// Why reading the answer stopped short.
enum ReadEnd {
    /// The connection ended (or broke).
    Eof(String),
    /// Bytes that are not FastCGI records for our request.
    Garbage(String),
    /// The CGI header block is not valid.
    BadHeader(String),
    /// The response could not be written.
    Client(io::Error),
}

/// The answer coming back.
struct Answer<'l> {
    decoder: Decoder,
    /// Bytes of the answer received (records of any kind).
    received: u64,
    sink: Sink<'l>,
}

/// Where the answer's streams go.
struct Sink<'l> {
    parser: Option<HeaderParser>,
    /// The answer goes nowhere (the request was aborted).
    discard: bool,
    stderr_line: Lines,
    /// Body bytes went into the response since its last flush.
    dirty: bool,
    pid: u32,
    log: &'l Logger,
}

impl<'l> Answer<'l> {
    fn new(pid: u32, log: &'l Logger) -> Answer<'l> {
        Answer {
            decoder: Decoder::new(),
            received: 0,
            sink: Sink {
                parser: Some(HeaderParser::new()),
                discard: false,
                stderr_line: Lines::default(),
                dirty: false,
                pid,
                log,
            },
        }
    }

    fn nothing_yet(&self) -> bool {
        self.received == 0
    }

    /// Reads what is there and handles every whole record: `Some` once the request ended.
    fn read(
        &mut self,
        conn: &mut UnixStream,
        response: &mut Response,
    ) -> Result<Option<Outcome>, ReadEnd> {
        match self.decoder.read_from(conn) {
            Ok(0) => return Err(ReadEnd::Eof("closed by the program".into())),
            Ok(n) => self.received += n as u64,
            // Nothing new: the records already buffered are still to be handled (a stop in
            // the middle of them, the web server gone, left some).
            Err(e)
                if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted) => {}
            Err(e) => return Err(ReadEnd::Eof(e.to_string())),
        }
        let Answer { decoder, sink, .. } = self;
        loop {
            let record = match decoder.decode() {
                Ok(Some(record)) => record,
                Ok(None) => return Ok(None),
                Err(e) => {
                    return Err(ReadEnd::Garbage(format!(
                        "the program sent what is not FastCGI: {e}"
                    )))
                }
            };
            if record.request_id != ID && !record.is_management() {
                continue;
            }
            match record.body {
                // Its end: the answer ends with END_REQUEST, which PHP-FPM-style programs
                // send without it.
                Body::Stdout([]) => {}
                Body::Stdout(bytes) => {
                    if !sink.discard {
                        sink.stdout(bytes, response)?;
                    }
                }
                Body::Stderr(bytes) => {
                    if !sink.discard && !bytes.is_empty() {
                        // To the web server as the program sent it, and to our log by lines.
                        response.write_stderr(bytes).map_err(ReadEnd::Client)?;
                    }
                    sink.stderr(bytes);
                }
                Body::EndRequest(end) => {
                    sink.flush_stderr();
                    if end.protocol_status != ProtocolStatus::RequestComplete {
                        // The program refused it (overloaded, a role it does not play).
                        if sink.parser.is_some() && !sink.discard {
                            response.fail(502);
                        }
                        return Ok(Some(Outcome::Complete { reusable: false }));
                    }
                    if sink.parser.is_some() && !sink.discard {
                        return Err(ReadEnd::BadHeader(
                            "the program ended the request without a complete header block".into(),
                        ));
                    }
                    return Ok(Some(Outcome::Complete { reusable: decoder.is_empty() }));
                }
                // Management answers (GET_VALUES_RESULT, UNKNOWN_TYPE) are not for a request.
                Body::GetValuesResult(_) | Body::UnknownType(_) => {}
                _ => {
                    return Err(ReadEnd::Garbage(format!(
                        "the program sent a {:?} record, which only a web server sends",
                        record.body.record_type()
                    )))
                }
            }
        }
    }
}

impl Sink<'_> {
    fn stdout(&mut self, bytes: &[u8], response: &mut Response) -> Result<(), ReadEnd> {
        let Some(parser) = self.parser.as_mut() else {
            self.dirty = true;
            return response.write_all(bytes).map_err(ReadEnd::Client);
        };
        match parser.push(bytes) {
            Ok(Progress::Partial) => Ok(()),
            Err(e) => {
                Err(ReadEnd::BadHeader(format!("the program's header block is not valid: {e}")))
            }
            Ok(Progress::Complete { head, body }) => {
                let status = match head.disposition() {
                    Disposition::Document { status } => status,
                    // A FastCGI responder's local redirect is the web server's to follow:
                    // nginx and Apache take a Location without a Status as a 302.
                    Disposition::LocalRedirect { .. } => 302,
                };
                response.set_status(status);
                for (name, value) in &head.headers {
                    response.header(name, value).map_err(ReadEnd::Client)?;
                }
                response.write_all(&body).map_err(ReadEnd::Client)?;
                self.dirty = true;
                self.parser = None;
                Ok(())
            }
        }
    }

    fn stderr(&mut self, bytes: &[u8]) {
        let (log, pid) = (self.log, self.pid);
        self.stderr_line.push(bytes, |line| log_stderr(log, pid, &line));
    }

    fn flush_stderr(&mut self) {
        let (log, pid) = (self.log, self.pid);
        self.stderr_line.flush(|line| log_stderr(log, pid, &line));
    }
}

/// One FCGI_STDERR line in our log.
fn log_stderr(log: &Logger, pid: u32, line: &str) {
    info!(log, "program stderr"; "event" => "program-stderr", "program_pid" => pid,
        "line" => line, "stream" => "FCGI_STDERR");
}
