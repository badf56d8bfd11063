//! What a handler writes: a status, headers, and a streaming body; and the canned answers the
//! server gives itself (overloaded, bad request, ...).

use std::io::{self, Write};
use std::sync::Arc;

use fcgi_codec::{Encoder, EndRequest, ProtocolStatus, StreamKind};

use crate::conn::spool::SpoolError;
use crate::io::writer::Writer;
use crate::work::request::RequestShared;

/// Encoded output is written to the socket once this much has gathered (or at a flush, or at
/// the end). 64 KiB matches the largest record and nginx's default `fastcgi_buffers`.
const FLUSH_AT: usize = 64 * 1024;
/// END_REQUEST's `appStatus` for a request the web server aborted (FCGI_ABORT_REQUEST, or its
/// connection gone): it did not complete. The spec has the application answer an abort with
/// FCGI_REQUEST_COMPLETE and an `appStatus` of its role's choosing, the Responder's being the
/// exit status a CGI program would have given; a program that gave up on its work exits 1
/// (`EXIT_FAILURE`). The protocol status stays FCGI_REQUEST_COMPLETE: the others say
/// something else (overloaded, unknown role, no multiplexing), and a web server that reads
/// them would take the abort for a refusal. nginx, Apache, lighttpd and HAProxy ignore both
/// fields (docs/FAILURES.md), and the one of them that sends aborts (HAProxy) has given up on
/// the response already; the value is for peers and captures that do look.
pub(crate) const ABORTED_APP_STATUS: u32 = 1;

/// A write at least this large goes out at once from the caller's buffer (`sendmsg` with the
/// record header and padding around it) instead of being copied into ours: for large bodies
/// that copy was a tenth of the server's CPU time. Smaller writes gather, so that many small
/// ones still make few records and few system calls.
const DIRECT_AT: usize = 16 * 1024;

/// The response to one request: CGI-style headers, then a body written through [`Write`].
///
/// Headers go out with the first body write (or [`flush`](Write::flush)); after that, setting
/// a header is an error. Nothing reaches the web server before the request's input has fully
/// arrived: nginx stops sending a request body once it sees response headers, so a handler
/// that answered early would never get the rest. A handler may still write early; its first
/// flush waits while the server spools the body (to disk, past the memory threshold). Writes are buffered and pushed to the web server in 64 KiB pieces,
/// waiting while it reads slowly (that is the backpressure). The server ends the response when
/// the handler returns: the handler never writes the FastCGI end of stream itself.
///
/// Once the web server aborts the request (FCGI_ABORT_REQUEST, or its connection goes),
/// writes and flushes fail with `ConnectionAborted`: a handler that streams stops at its next
/// write. Nothing more of the response goes out; what was buffered is dropped, and the
/// request ends with FCGI_END_REQUEST saying that it did not complete (`appStatus` 1).
///
/// ```
/// use std::io::Write;
/// use fcgi_server::{Request, Response};
///
/// fn not_found(_: &mut Request, response: &mut Response) -> Result<(), fcgi_server::Error> {
///     response.set_status(404);
///     response.header("Content-Type", "text/plain")?;
///     response.write_all(b"no such page\n")?;
///     response.write_stderr(b"someone asked for a page that is not there\n")?;
///     Ok(())
/// }
/// ```
#[derive(Debug)]
pub struct Response {
    writer: Arc<Writer>,
    /// The request's shared state: its input streams, and whether it was aborted.
    request: Arc<RequestShared>,
    /// Set once the input streams are complete (or stopped): writes need not wait for them.
    input_done: bool,
    /// The request's input stopped before its end (over the limit, a spool failure, too
    /// slow): the answer is an error status, and the handler's output is dropped.
    refused: bool,
    /// Some output has gone to the web server: the answer can no longer be replaced.
    flushed: bool,
    id: u16,
    encoder: Encoder,
    status: u16,
    headers: Vec<u8>,
    headers_sent: bool,
    out: Vec<u8>,
    body_bytes: u64,
    stderr_used: bool,
    /// Some FCGI_STDERR has gone to the web server: the stream must be ended.
    stderr_sent: bool,
}

impl Response {
    pub(crate) fn new(writer: Arc<Writer>, id: u16, input: Arc<RequestShared>) -> Response {
        Response {
            writer,
            request: input,
            input_done: false,
            refused: false,
            flushed: false,
            id,
            encoder: Encoder::new(),
            status: 200,
            headers: Vec::new(),
            headers_sent: false,
            out: Vec::new(),
            body_bytes: 0,
            stderr_used: false,
            stderr_sent: false,
        }
    }

    /// Whether the web server aborted the request: see [`Request::is_aborted`](crate::Request::is_aborted).
    fn is_aborted(&self) -> bool {
        self.request.aborted.load(std::sync::atomic::Ordering::Acquire)
    }

    pub(crate) fn writer(&self) -> &Arc<Writer> {
        &self.writer
    }

    /// Sets the HTTP status (200 unless set). Has no effect once the headers are sent.
    ///
    /// A code outside 100 to 599 ([`fcgi_codec::http::STATUS_CODES`]) is not an HTTP status
    /// (RFC 9110 section 15) and is never sent. It is taken as the handler's bug: the status
    /// becomes 500 and a line saying why goes to `FCGI_STDERR` (the web server's error log).
    /// To have such a code refused instead, set the status with `header("Status", ...)`, which
    /// returns an error for it.
    pub fn set_status(&mut self, status: u16) {
        if self.headers_sent {
            return;
        }
        if fcgi_codec::http::is_status(status) {
            self.status = status;
        } else {
            self.status = 500;
            let line = format!("set_status({status}): not a status code from 100 to 599; 500\n");
            // Only buffered here: an error would come back at the next write anyway.
            let _ = self.write_stderr(line.as_bytes());
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// Adds a response header.
    ///
    /// Fails once the headers are sent, and for a name or value the CGI header parsers refuse
    /// (the rules of [`fcgi_codec::http`]): a name that is not an HTTP token (empty, or with a
    /// space, colon, separator, control or non-ASCII character), a value with a CR, LF or NUL.
    /// A `Status` header sets the status instead: its value must be a code from 100 to 599,
    /// optionally followed by a reason phrase (which is not kept: the server sends the
    /// registered phrase).
    pub fn header(&mut self, name: impl AsRef<str>, value: impl AsRef<str>) -> io::Result<()> {
        self.header_bytes(name.as_ref(), value.as_ref().as_bytes())
    }

    /// [`header`](Response::header) with a value that need not be UTF-8: HTTP lets a field
    /// value carry other bytes (`obs-text`, RFC 9110 section 5.5), which web servers pass on
    /// as they are, and which an `http::HeaderValue` may hold. The same rules apply otherwise.
    ///
    /// ```
    /// # fn f(response: &mut fcgi_server::Response) -> std::io::Result<()> {
    /// // "café.txt" in Latin-1, as an old client expects it.
    /// response.header_bytes("Content-Disposition", b"attachment; filename=\"caf\xe9.txt\"")?;
    /// # Ok(()) }
    /// ```
    pub fn header_bytes(&mut self, name: &str, value: &[u8]) -> io::Result<()> {
        use fcgi_codec::http;
        if self.headers_sent {
            return Err(invalid(format!("header {name} set after the headers were sent")));
        }
        if let Err(e) = http::check_name(name.as_bytes()) {
            return Err(invalid(format!("header name {name:?} is not valid: {e}")));
        }
        if let Err(e) = http::check_value(value) {
            return Err(invalid(format!("the value of header {name} is not valid: {e}")));
        }
        if name.eq_ignore_ascii_case("status") {
            let status = http::parse_status(value).map_err(|e| {
                invalid(format!("status {:?} is not valid: {e}", String::from_utf8_lossy(value)))
            })?;
            self.status = status.code;
            return Ok(());
        }
        self.headers.extend_from_slice(name.as_bytes());
        self.headers.extend_from_slice(b": ");
        self.headers.extend_from_slice(value);
        self.headers.extend_from_slice(b"\r\n");
        Ok(())
    }

    /// For the Authorizer role: a `Variable-NAME` header, which the web server passes on to the
    /// request it authorizes (nginx: `$upstream_http_variable_name`).
    pub fn variable(&mut self, name: &str, value: &str) -> io::Result<()> {
        self.header(format!("Variable-{name}"), value)
    }

    /// Whether the request was answered with an error status for its input (over the limit,
    /// not stored, too slow, or given up on): the handler's output is dropped, and its writes
    /// fail.
    pub fn is_refused(&self) -> bool {
        self.refused
    }

    /// Whether the headers have gone out (after which the status and headers are fixed).
    pub fn headers_sent(&self) -> bool {
        self.headers_sent
    }

    /// Body bytes written so far.
    pub fn body_bytes(&self) -> u64 {
        self.body_bytes
    }

    /// Writes to `FCGI_STDERR`: the web server logs it (nginx: its error log). Fails once
    /// the request is aborted.
    pub fn write_stderr(&mut self, message: &[u8]) -> io::Result<()> {
        if self.is_aborted() {
            return Err(aborted());
        }
        self.stderr_used |= !message.is_empty();
        self.encoder.stream(&mut self.out, StreamKind::Stderr, self.id, message)?;
        self.flush_if_full()
    }

    fn send_headers(&mut self) {
        if self.headers_sent {
            return;
        }
        self.headers_sent = true;
        let mut block = Vec::with_capacity(self.headers.len() + 40);
        // 200 is CGI's default (RFC 3875 section 6.3.3): no Status line, which some web
        // servers (Caddy) would pass on to the client as a header of its own.
        if self.status != 200 {
            block.extend_from_slice(
                format!("Status: {} {}\r\n", self.status, reason(self.status)).as_bytes(),
            );
        }
        block.extend_from_slice(&self.headers);
        block.extend_from_slice(b"\r\n");
        // Headers and the first body bytes usually share one record.
        let _ = self.encoder.stream(&mut self.out, StreamKind::Stdout, self.id, &block);
    }

    fn flush_if_full(&mut self) -> io::Result<()> {
        if self.out.len() >= FLUSH_AT {
            self.flush_out()
        } else {
            Ok(())
        }
    }

    fn flush_out(&mut self) -> io::Result<()> {
        if self.out.is_empty() {
            return Ok(());
        }
        self.send(&[]).map(drop)
    }

    /// Writes what is buffered and then `content` as one STDOUT record, framed around the
    /// caller's bytes rather than copied into the buffer. Returns whether `content` went out:
    /// not if the request was refused meanwhile (its body over the limit), in which case only
    /// the refusal did.
    fn send(&mut self, content: &[u8]) -> io::Result<bool> {
        if let Some(status) = self.wait_for_input() {
            // Nothing has gone out yet, so the failed input can still be answered properly.
            self.replace_with(status, &[]);
        }
        if !self.request.start_output() {
            // Answered by the server past the request timeout: nothing more of ours goes out.
            self.out.clear();
            return Err(timed_out());
        }
        self.flushed = true;
        self.stderr_sent |= self.stderr_used;
        let result = if content.is_empty() || self.refused {
            self.writer.write_all(&self.out).map(|()| false)
        } else {
            let (header, padding) =
                self.encoder.frame(StreamKind::Stdout, self.id, content.len())?;
            self.writer.write_all_parts(&mut [&self.out, &header, content, padding]).map(|()| true)
        };
        self.out.clear();
        result
    }

    /// Waits until the request's input streams have all arrived (or stopped): only then may
    /// anything go to the web server. Returns the error status when the input stopped short
    /// (413 over the limit, 503 when the spool failed, 408 too slow), the first time that is
    /// seen; the request is then answered with it whatever the handler does. A body cut
    /// short is never answered as if it had been whole.
    pub(crate) fn wait_for_input(&mut self) -> Option<u16> {
        if self.input_done {
            return None;
        }
        self.input_done = true;
        let input = &self.request;
        input.stdin.wait_complete();
        if let Some(data) = &input.data {
            data.wait_complete();
        }
        let status = input.input_error().as_ref().and_then(SpoolError::status);
        self.refused |= status.is_some();
        status
    }

    /// Answers `status` with a one-line plain-text body (`504 Gateway Timeout`), in place of
    /// whatever was written so far, if none of it has gone to the web server yet. Returns
    /// whether it did; once output has gone out, the answer can no longer change.
    ///
    /// This is also how the server answers a handler that failed (500) or panicked.
    ///
    /// ```
    /// use fcgi_server::{Request, Response};
    ///
    /// fn upstream(_: &mut Request, response: &mut Response) -> Result<(), fcgi_server::Error> {
    ///     // The backend this handler asks did not answer in time.
    ///     response.fail(504);
    ///     Ok(())
    /// }
    /// ```
    pub fn fail(&mut self, status: u16) -> bool {
        self.fail_with(status, &[])
    }

    /// [`fail`](Response::fail) with headers of its own beside `Content-Type`: a `503`'s
    /// `Retry-After`, say. A header that is not valid is left out.
    ///
    /// ```
    /// use fcgi_server::{Request, Response};
    ///
    /// fn upstream(_: &mut Request, response: &mut Response) -> Result<(), fcgi_server::Error> {
    ///     // Every backend is busy: try again in a second.
    ///     response.fail_with(503, &[("Retry-After", "1")]);
    ///     Ok(())
    /// }
    /// ```
    pub fn fail_with(&mut self, status: u16, headers: &[(&str, &str)]) -> bool {
        if self.flushed {
            return false;
        }
        self.replace_with(status, headers);
        true
    }

    /// Drops the buffered output (nothing of it has gone out) for a plain-text `status`
    /// answer, with `extra` headers.
    fn replace_with(&mut self, status: u16, extra: &[(&str, &str)]) {
        self.out.clear();
        self.headers.clear();
        self.headers.extend_from_slice(b"Content-Type: text/plain\r\n");
        for (name, value) in extra {
            if fcgi_codec::http::check_name(name.as_bytes()).is_ok()
                && fcgi_codec::http::check_value(value.as_bytes()).is_ok()
            {
                self.headers.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
            }
        }
        // An answer that is an error must be sent as one: a code no client knows becomes 500.
        self.status = if fcgi_codec::http::is_status(status) { status } else { 500 };
        self.headers_sent = false;
        self.stderr_used = false;
        self.body_bytes = 0;
        self.send_headers();
        let body = format!("{} {}\n", self.status, reason(self.status));
        let _ = self.encoder.stream(&mut self.out, StreamKind::Stdout, self.id, body.as_bytes());
        self.body_bytes = body.len() as u64;
    }

    /// Ends a response that failed after some of it went out, so that the web server sees a
    /// failure rather than a short response it would pass on as complete: no END_REQUEST, an
    /// invalid record, and the connection closed (see [`Writer::break_off`]).
    pub(crate) fn cut_short(self) {
        // Past the request timeout the server has ended the request already.
        if !self.request.is_taken_over() {
            self.writer.break_off(self.id);
        }
    }

    /// Ends the response: headers if none went out, the end of STDOUT (and of STDERR, if used),
    /// and END_REQUEST, in one write where they fit.
    pub(crate) fn finish(mut self, app_status: u32) -> io::Result<u64> {
        self.send_headers();
        self.end(self.stderr_used, app_status)?;
        self.flush_out()?;
        Ok(self.body_bytes)
    }

    /// Encodes the end of the response into `out`: STDOUT's end, STDERR's if `stderr` was
    /// used, and END_REQUEST with `app_status`.
    fn end(&mut self, stderr: bool, app_status: u32) -> io::Result<()> {
        self.encoder.end_stream(&mut self.out, StreamKind::Stdout, self.id)?;
        if stderr {
            self.encoder.end_stream(&mut self.out, StreamKind::Stderr, self.id)?;
        }
        self.encoder.end_request(&mut self.out, self.id, &EndRequest::complete(app_status))
    }

    /// Ends the response to a request the web server aborted: nothing more of it goes out
    /// (what was buffered is dropped), its streams are ended, and END_REQUEST says that it did
    /// not complete ([`ABORTED_APP_STATUS`]). Returns the body bytes that had gone out.
    pub(crate) fn finish_aborted(mut self) -> io::Result<u64> {
        self.out.clear();
        self.end(self.stderr_sent, ABORTED_APP_STATUS)?;
        // No wait for input: an abort has stopped it.
        self.input_done = true;
        self.writer.write_all(&self.out)?;
        Ok(if self.flushed { self.body_bytes } else { 0 })
    }
}

impl Write for Response {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.refused {
            return Err(refused());
        }
        if self.is_aborted() {
            return Err(aborted());
        }
        self.send_headers();
        if buf.len() >= DIRECT_AT {
            // One record's worth, sent from the caller's buffer.
            let take = buf.len().min(self.encoder.max_chunk());
            if !self.send(&buf[..take])? {
                return Err(refused());
            }
            self.body_bytes += take as u64;
            return Ok(take);
        }
        self.encoder.stream(&mut self.out, StreamKind::Stdout, self.id, buf)?;
        self.body_bytes += buf.len() as u64;
        self.flush_if_full()?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.is_aborted() {
            return Err(aborted());
        }
        self.send_headers();
        self.flush_out()
    }
}

/// The error writes get once the web server aborted the request.
fn aborted() -> io::Error {
    io::Error::new(io::ErrorKind::ConnectionAborted, "the web server aborted the request")
}

/// The error writes get once the request was answered with an error for its input.
fn refused() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        "the request's input failed (over the limit, not stored, or too slow); the request was \
         answered with an error status",
    )
}

/// The error writes get once the server answered the request itself, past the request timeout.
fn timed_out() -> io::Error {
    io::Error::new(
        io::ErrorKind::TimedOut,
        "the request ran past the request timeout and was answered by the server",
    )
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, message)
}

/// A whole answer the server gives by itself: status, a plain-text body, the ends of STDOUT,
/// and END_REQUEST with `protocol_status`.
pub(crate) fn canned(
    id: u16,
    status: u16,
    extra_headers: &str,
    protocol_status: ProtocolStatus,
) -> Vec<u8> {
    let encoder = Encoder::new();
    let text = format!(
        "Status: {status} {reason}\r\nContent-Type: text/plain\r\n{extra_headers}\r\n{status} {reason}\n",
        reason = reason(status)
    );
    let mut out = Vec::with_capacity(text.len() + 48);
    // Writing to a Vec cannot fail.
    let _ = encoder.stream(&mut out, StreamKind::Stdout, id, text.as_bytes());
    let _ = encoder.end_stream(&mut out, StreamKind::Stdout, id);
    let _ = encoder.end_request(&mut out, id, &EndRequest { app_status: 0, protocol_status });
    out
}

/// END_REQUEST alone, for a request aborted before its handler ran: it did not complete
/// ([`ABORTED_APP_STATUS`]).
pub(crate) fn aborted_end(id: u16) -> Vec<u8> {
    let mut out = Vec::with_capacity(16);
    let _ = Encoder::new().end_request(&mut out, id, &EndRequest::complete(ABORTED_APP_STATUS));
    out
}

/// The reason phrase sent after `status`: the registered one
/// ([`fcgi_codec::http::reason`], all of the IANA registry), else the name of its class
/// (`299 Successful`); never "Unknown". Empty only for a code outside 100 to 599, which
/// `set_status` and `header` never let through.
///
/// A response with the default status, 200, has no `Status` line at all (RFC 3875 section
/// 6.3.3; `fcgi_codec::cgi_header::Head` with `status: None`).
pub(crate) fn reason(status: u16) -> &'static str {
    fcgi_codec::http::phrase(status).unwrap_or_default()
}
