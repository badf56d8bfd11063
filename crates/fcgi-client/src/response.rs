//! What comes back: a head, a body read as it arrives, stderr, and how the request ended.

use std::io::{self, Read};

use fcgi_codec::{DecodeError, EndRequest, ProtocolStatus};

use crate::link::Link;
use crate::{Ending, Error, ResponseHead};

/// A response being received: its head has come, its body is read from it (it implements
/// [`Read`]) as records arrive, and [`finish`](Response::finish) reads to the end of the
/// request.
///
/// It borrows the connection. Dropped before its end, it leaves the rest of its records to be
/// read and discarded before the connection's next request is sent.
///
/// ```no_run
/// use fcgi_client::{Connection, Request};
///
/// let mut conn = Connection::connect(&"unix:/run/fcgi.sock".parse()?)?;
/// let mut response = conn.request(Request::new().param("REQUEST_METHOD", "GET"))?;
/// if response.status() == 200 {
///     std::io::copy(&mut response, &mut std::io::stdout())?;
/// }
/// let finished = response.finish()?;
/// println!("app status {}", finished.end.app_status);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Response<'c> {
    link: &'c mut Link,
    id: u16,
    head: ResponseHead,
    /// `finish` or `into_reply` has taken the end.
    done: bool,
    /// Body bytes taken from the slot so far (read, kept or discarded).
    body_bytes: u64,
    /// The response was cut short ([`Error::CutShort`]): returned once the bytes that came
    /// before the end are read.
    cut: Option<Error>,
}

/// How a request ended: what [`Response::finish`] returns.
///
/// ```
/// use fcgi_client::{Finished, EndRequest};
///
/// let finished = Finished { request_id: 1, end: EndRequest::complete(0), stderr: Vec::new() };
/// assert!(finished.is_complete());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finished {
    /// The request id it had.
    pub request_id: u16,
    /// The `FCGI_END_REQUEST` body: application status and protocol status.
    pub end: EndRequest,
    /// Everything the application wrote to `FCGI_STDERR`.
    pub stderr: Vec<u8>,
}

impl Finished {
    /// Whether the server ran the request to completion (`FCGI_REQUEST_COMPLETE`).
    ///
    /// ```
    /// use fcgi_client::{EndRequest, Finished, ProtocolStatus};
    ///
    /// let end = EndRequest { app_status: 0, protocol_status: ProtocolStatus::Overloaded };
    /// assert!(!Finished { request_id: 1, end, stderr: Vec::new() }.is_complete());
    /// ```
    pub fn is_complete(&self) -> bool {
        self.end.protocol_status == ProtocolStatus::RequestComplete
    }
}

/// A whole response in memory: from [`Connection::receive`](crate::Connection::receive),
/// [`Connection::multiplex`](crate::Connection::multiplex) or [`Response::into_reply`].
///
/// ```
/// use fcgi_client::{EndRequest, Reply, ResponseHead};
///
/// let (head, _) = ResponseHead::parse(b"Status: 201\r\n\r\n")?.unwrap();
/// let reply = Reply { request_id: 1, head, body: b"made".to_vec(), stderr: Vec::new(), end: EndRequest::complete(0) };
/// assert_eq!(reply.status(), 201);
/// assert!(reply.is_complete());
/// # Ok::<(), fcgi_client::HeadError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    /// The request id it had.
    pub request_id: u16,
    /// Status and headers.
    pub head: ResponseHead,
    /// The body: `FCGI_STDOUT` after the head.
    pub body: Vec<u8>,
    /// Everything the application wrote to `FCGI_STDERR`.
    pub stderr: Vec<u8>,
    /// How the request ended.
    pub end: EndRequest,
}

impl Reply {
    /// The HTTP status.
    ///
    /// ```
    /// # use fcgi_client::{EndRequest, Reply, ResponseHead};
    /// # let (head, _) = ResponseHead::parse(b"\n")?.unwrap();
    /// # let reply = Reply { request_id: 1, head, body: vec![], stderr: vec![], end: EndRequest::complete(0) };
    /// assert_eq!(reply.status(), 200);
    /// # Ok::<(), fcgi_client::HeadError>(())
    /// ```
    pub fn status(&self) -> u16 {
        self.head.status
    }

    /// Whether the server ran the request to completion (`FCGI_REQUEST_COMPLETE`).
    ///
    /// ```
    /// # use fcgi_client::{EndRequest, Reply, ResponseHead};
    /// # let (head, _) = ResponseHead::parse(b"\n")?.unwrap();
    /// # let reply = Reply { request_id: 1, head, body: vec![], stderr: vec![], end: EndRequest::complete(0) };
    /// assert!(reply.is_complete());
    /// # Ok::<(), fcgi_client::HeadError>(())
    /// ```
    pub fn is_complete(&self) -> bool {
        self.end.protocol_status == ProtocolStatus::RequestComplete
    }
}

impl<'c> Response<'c> {
    /// The response to `id`, whose head came; `failed`: the read that brought it failed
    /// after it.
    pub(crate) fn new(
        link: &'c mut Link,
        id: u16,
        head: ResponseHead,
        failed: Option<Error>,
    ) -> Response<'c> {
        let mut response = Response { link, id, head, done: false, body_bytes: 0, cut: None };
        response.cut = failed.map(|error| response.cut_short(error));
        response
    }

    /// The request id.
    ///
    /// ```no_run
    /// # let mut conn = fcgi_client::Connection::connect(&"unix:/run/fcgi.sock".parse()?)?;
    /// let response = conn.request(fcgi_client::Request::new())?;
    /// assert_eq!(response.request_id(), 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn request_id(&self) -> u16 {
        self.id
    }

    /// Status and headers.
    ///
    /// ```no_run
    /// # let mut conn = fcgi_client::Connection::connect(&"unix:/run/fcgi.sock".parse()?)?;
    /// let response = conn.request(fcgi_client::Request::new())?;
    /// for (name, value) in &response.head().headers {
    ///     println!("{name}: {value}");
    /// }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn head(&self) -> &ResponseHead {
        &self.head
    }

    /// The HTTP status: from `Status:`, else 302 with `Location:`, else 200.
    ///
    /// ```no_run
    /// # let mut conn = fcgi_client::Connection::connect(&"unix:/run/fcgi.sock".parse()?)?;
    /// let response = conn.request(fcgi_client::Request::new())?;
    /// assert_eq!(response.status(), 200);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn status(&self) -> u16 {
        self.head.status
    }

    /// The first header called `name`, compared without regard to case.
    ///
    /// ```no_run
    /// # let mut conn = fcgi_client::Connection::connect(&"unix:/run/fcgi.sock".parse()?)?;
    /// let response = conn.request(fcgi_client::Request::new())?;
    /// assert_eq!(response.header("content-type"), Some("text/plain"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.header(name)
    }

    /// What the application has written to `FCGI_STDERR` so far.
    ///
    /// ```no_run
    /// # let mut conn = fcgi_client::Connection::connect(&"unix:/run/fcgi.sock".parse()?)?;
    /// let response = conn.request(fcgi_client::Request::new())?;
    /// eprint!("{}", String::from_utf8_lossy(response.stderr()));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn stderr(&self) -> &[u8] {
        self.link.slots.get(&self.id).map_or(&[], |slot| slot.stderr.as_slice())
    }

    /// Reads body bytes into `buf`, waiting for the server if none are buffered; `Ok(0)` at
    /// the end of the body. The same as [`Read::read`], with this crate's [`Error`].
    ///
    /// ```no_run
    /// # let mut conn = fcgi_client::Connection::connect(&"unix:/run/fcgi.sock".parse()?)?;
    /// let mut response = conn.request(fcgi_client::Request::new())?;
    /// let mut buf = [0; 8192];
    /// let mut total = 0;
    /// loop {
    ///     match response.read_body(&mut buf)? {
    ///         0 => break,
    ///         n => total += n,
    ///     }
    /// }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn read_body(&mut self, buf: &mut [u8]) -> Result<usize, Error> {
        loop {
            let Some(slot) = self.link.slots.get_mut(&self.id) else { return Ok(0) };
            let pending = &slot.stdout[slot.read_pos..];
            if !pending.is_empty() {
                let n = pending.len().min(buf.len());
                buf[..n].copy_from_slice(&pending[..n]);
                slot.read_pos += n;
                self.body_bytes += n as u64;
                return Ok(n);
            }
            if slot.body_done() || buf.is_empty() {
                return Ok(0);
            }
            if let Some(cut) = self.cut.take() {
                return Err(cut);
            }
            if let Err(error) = self.pump() {
                // What came before the end is read first.
                self.cut = Some(error);
            }
        }
    }

    /// Reads once from the connection; a failure that cuts the response short after its head
    /// becomes [`Error::CutShort`].
    fn pump(&mut self) -> Result<(), Error> {
        self.link.pump("reading the response").map_err(|error| self.cut_short(error))
    }

    /// `error`, which ended this response after its head, as [`Error::CutShort`] where it is
    /// the server breaking the response off.
    fn cut_short(&mut self, error: Error) -> Error {
        let ending = match error {
            Error::Protocol(error @ DecodeError::UnsupportedVersion { .. }) => {
                Ending::InvalidRecord(error)
            }
            Error::Closed { .. } => Ending::Closed,
            other => return other,
        };
        let slot = self.link.slots.get_mut(&self.id);
        let pending = slot.as_ref().map_or(0, |slot| slot.stdout.len() - slot.read_pos);
        Error::CutShort {
            request_id: self.id,
            body_bytes: self.body_bytes + pending as u64,
            ending,
            stderr: slot.map(|slot| std::mem::take(&mut slot.stderr)).unwrap_or_default(),
        }
    }

    /// Reads the rest of the body, discarding it, and waits for the end of the request.
    ///
    /// ```no_run
    /// # let mut conn = fcgi_client::Connection::connect(&"unix:/run/fcgi.sock".parse()?)?;
    /// let finished = conn.request(fcgi_client::Request::new())?.finish()?;
    /// assert!(finished.is_complete());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn finish(mut self) -> Result<Finished, Error> {
        self.end(None)
    }

    /// Reads the rest of the body into memory, and the end of the request.
    ///
    /// ```no_run
    /// # let mut conn = fcgi_client::Connection::connect(&"unix:/run/fcgi.sock".parse()?)?;
    /// let reply = conn.request(fcgi_client::Request::new())?.into_reply()?;
    /// println!("{}", String::from_utf8_lossy(&reply.body));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn into_reply(mut self) -> Result<Reply, Error> {
        let mut body = Vec::new();
        let finished = self.end(Some(&mut body))?;
        Ok(Reply {
            request_id: finished.request_id,
            head: std::mem::take(&mut self.head),
            body,
            stderr: finished.stderr,
            end: finished.end,
        })
    }

    /// Reads to the end of the request, the rest of the body into `keep` if given.
    fn end(&mut self, mut keep: Option<&mut Vec<u8>>) -> Result<Finished, Error> {
        loop {
            let Some(slot) = self.link.slots.get_mut(&self.id) else {
                return Err(Error::NotInFlight { request_id: self.id });
            };
            if let Some(keep) = keep.as_deref_mut() {
                keep.extend_from_slice(&slot.stdout[slot.read_pos..]);
            }
            self.body_bytes += (slot.stdout.len() - slot.read_pos) as u64;
            slot.read_pos = slot.stdout.len();
            if let Some(end) = slot.end {
                let stderr = std::mem::take(&mut slot.stderr);
                self.link.forget(self.id);
                self.done = true;
                return Ok(Finished { request_id: self.id, end, stderr });
            }
            if let Some(cut) = self.cut.take() {
                return Err(cut);
            }
            self.pump()?;
        }
    }
}

impl Read for Response<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.read_body(buf).map_err(io::Error::from)
    }
}

impl Drop for Response<'_> {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let Some(slot) = self.link.slots.get_mut(&self.id) else { return };
        if slot.end.is_some() {
            self.link.forget(self.id);
        } else {
            if !slot.keep_conn {
                // The server closes the connection after this request anyway.
                self.link.usable = false;
            }
            slot.abandoned = true;
            slot.stdout = Vec::new();
            slot.read_pos = 0;
            slot.stderr = Vec::new();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::TcpListener;

    use fcgi_codec::{Encoder, RecordType, StreamKind};

    use crate::{Connection, Ending, Error, Request};

    /// A server that answers one request with `head_and_body` on STDOUT, then `then`, then
    /// closes: the error reading the response gives.
    fn cut_after(head_and_body: &[u8], then: &[u8]) -> Error {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = format!("tcp:{}", listener.local_addr().unwrap()).parse().unwrap();
        let mut answer = Vec::new();
        Encoder::new().stream(&mut answer, StreamKind::Stdout, 1, head_and_body).unwrap();
        answer.extend_from_slice(then);
        let server = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            // The request is small: one read takes it, and the answer goes in one write.
            let mut request = [0; 4096];
            let _ = stream.read(&mut request).unwrap();
            stream.write_all(&answer).unwrap();
        });
        let mut conn = Connection::connect(&addr).unwrap();
        let mut response = conn.request(Request::new()).unwrap();
        let mut body = Vec::new();
        let error = response.read_to_end(&mut body).unwrap_err();
        assert_eq!(body, b"hello", "the body that came is read before the error");
        server.join().unwrap();
        Error::from_io(error)
    }

    #[test]
    fn a_response_broken_off_after_its_head_is_cut_short_not_a_protocol_error() {
        let closed = cut_after(b"Status: 200\r\n\r\nhello", b"");
        assert!(
            matches!(
                closed,
                Error::CutShort { request_id: 1, body_bytes: 5, ending: Ending::Closed, .. }
            ),
            "{closed:?}"
        );
        // fcgi-rs's break: a header of version 0 (here in the same read as the head).
        let invalid = [0, RecordType::Stderr.into(), 0, 1, 0, 0, 0, 0];
        let broken = cut_after(b"Status: 200\r\n\r\nhello", &invalid);
        match &broken {
            Error::CutShort {
                request_id: 1,
                body_bytes: 5,
                ending: Ending::InvalidRecord(_),
                ..
            } => {}
            other => panic!("{other:?}"),
        }
        assert_eq!(
            broken.to_string(),
            "the application failed after sending its header: request 1 was cut short after 5 \
             body bytes; the server broke the response off with a record of FastCGI version 0 \
             and closed the connection, as fcgi-rs does"
        );
    }
}
