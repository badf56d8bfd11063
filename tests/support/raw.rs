//! A raw FastCGI client: records written with [`fcgi_codec::Encoder`], read back with
//! [`fcgi_codec::Decoder`], nothing hidden in between.
//!
//! Tests build the exact bytes a web server (or a broken one) would send with the builders in
//! [`frames`], send them with [`Client::send`], and read what comes back record by record
//! ([`Client::next_frame`]) or a whole response at a time ([`Client::read_reply`]). Every read
//! has a timeout ([`TIMEOUT`] unless set otherwise), so a server that never answers fails the
//! test instead of hanging it.
//!
//! This is deliberately small: a later issue replaces it with a real `fcgi-client` crate.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use fcgi_codec::{Body, Decoder, EndRequest, ProtocolStatus, RecordType, Role};

use crate::addr::Addr;
use crate::http;

/// How long a read or a write may block before the test is failed: long enough for a loaded
/// CI machine, short enough that a hung server fails fast.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// A connected socket, TCP or Unix.
#[derive(Debug)]
pub enum Stream {
    /// A TCP connection.
    Tcp(TcpStream),
    /// A Unix socket connection.
    Unix(UnixStream),
}

impl Stream {
    /// Sets the read and the write timeout.
    pub fn set_timeout(&self, timeout: Duration) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => {
                s.set_read_timeout(Some(timeout))?;
                s.set_write_timeout(Some(timeout))
            }
            Stream::Unix(s) => {
                s.set_read_timeout(Some(timeout))?;
                s.set_write_timeout(Some(timeout))
            }
        }
    }

    /// A second handle on the same socket: one thread writes requests while another reads
    /// the answers (a multiplexing web server does both at once).
    pub fn try_clone(&self) -> io::Result<Stream> {
        match self {
            Stream::Tcp(s) => s.try_clone().map(Stream::Tcp),
            Stream::Unix(s) => s.try_clone().map(Stream::Unix),
        }
    }

    /// Shuts down one or both directions.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.shutdown(how),
            Stream::Unix(s) => s.shutdown(how),
        }
    }
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

/// One record received from the server, owned (the decoder's records borrow its buffer).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    /// The request id; 0 for management records.
    pub request_id: u16,
    /// What it carries.
    pub kind: FrameKind,
}

/// What a received record carries: the types an application sends, and anything else as it came.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FrameKind {
    /// A piece of `FCGI_STDOUT`; empty ends the stream.
    Stdout(Vec<u8>),
    /// A piece of `FCGI_STDERR`; empty ends the stream.
    Stderr(Vec<u8>),
    /// `FCGI_END_REQUEST`.
    EndRequest(EndRequest),
    /// `FCGI_GET_VALUES_RESULT`: its name-value pairs, in order.
    GetValuesResult(Vec<(Vec<u8>, Vec<u8>)>),
    /// `FCGI_UNKNOWN_TYPE`, naming the type the server did not understand.
    UnknownType(RecordType),
    /// Any other record (an application should never send one): its type and content.
    Other(RecordType, Vec<u8>),
}

impl Frame {
    fn from_body(request_id: u16, body: Body<'_>) -> Frame {
        let record_type = body.record_type();
        let kind = match body {
            Body::Stdout(content) => FrameKind::Stdout(content.to_vec()),
            Body::Stderr(content) => FrameKind::Stderr(content.to_vec()),
            Body::EndRequest(end) => FrameKind::EndRequest(end),
            Body::GetValuesResult(pairs) => {
                FrameKind::GetValuesResult(pairs.map(|(n, v)| (n.to_vec(), v.to_vec())).collect())
            }
            Body::UnknownType(unknown) => FrameKind::UnknownType(unknown.record_type),
            Body::BeginRequest(begin) => FrameKind::Other(record_type, begin.encode().to_vec()),
            Body::GetValues(pairs) => FrameKind::Other(record_type, pairs.as_bytes().to_vec()),
            Body::AbortRequest => FrameKind::Other(record_type, Vec::new()),
            Body::Params(content)
            | Body::Stdin(content)
            | Body::Data(content)
            | Body::Unknown { content, .. } => FrameKind::Other(record_type, content.to_vec()),
        };
        Frame { request_id, kind }
    }
}

/// A whole response to one request, as read by [`Client::read_reply`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    /// The request it answers.
    pub request_id: u16,
    /// The `FCGI_STDOUT` stream, joined.
    pub stdout: Vec<u8>,
    /// Content length of every non-empty `FCGI_STDOUT` record, in order.
    pub stdout_records: Vec<usize>,
    /// Whether the empty record that ends `FCGI_STDOUT` came.
    pub stdout_ended: bool,
    /// The `FCGI_STDERR` stream, joined.
    pub stderr: Vec<u8>,
    /// Whether the empty record that ends `FCGI_STDERR` came.
    pub stderr_ended: bool,
    /// The `FCGI_END_REQUEST` that closed the response.
    pub end: EndRequest,
    /// The HTTP status: the `Status` header's code, 200 for a header block without one, 0
    /// when the response has no header block at all (an END_REQUEST alone, say).
    pub status: u16,
    /// The CGI headers, in order, `Status` included.
    pub headers: Vec<(String, String)>,
    /// What follows the header block.
    pub body: Vec<u8>,
}

impl Reply {
    fn new(request_id: u16, stdout: Vec<u8>, stderr: Vec<u8>, end: EndRequest) -> Reply {
        let (headers, body, status) = match http::split_head(&stdout) {
            Some((head, body)) => {
                let headers = http::parse_headers(String::from_utf8_lossy(head).split("\r\n"));
                let status = http::header(&headers, "Status")
                    .map_or(Some(200), |value| {
                        value.split_whitespace().next().and_then(|code| code.parse().ok())
                    })
                    .unwrap_or(0);
                (headers, body.to_vec(), status)
            }
            None => (Vec::new(), stdout.clone(), 0),
        };
        Reply {
            request_id,
            stdout,
            stdout_records: Vec::new(),
            stdout_ended: false,
            stderr,
            stderr_ended: false,
            end,
            status,
            headers,
            body,
        }
    }

    /// The value of header `name` (case-insensitive), if the response has it.
    pub fn header(&self, name: &str) -> Option<&str> {
        http::header(&self.headers, name)
    }

    /// The body as text (lossy).
    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Panics unless this is a complete, well-formed response with `status`: STDOUT ended,
    /// STDERR ended if it was used, and END_REQUEST `FCGI_REQUEST_COMPLETE`.
    #[track_caller]
    pub fn assert_complete(&self, status: u16) {
        assert!(self.stdout_ended, "request {}: STDOUT was not ended: {self:?}", self.request_id);
        assert!(
            self.stderr.is_empty() || self.stderr_ended,
            "request {}: STDERR was used but not ended: {self:?}",
            self.request_id
        );
        assert_eq!(
            self.end.protocol_status,
            ProtocolStatus::RequestComplete,
            "request {}: {self:?}",
            self.request_id
        );
        assert_eq!(self.status, status, "request {}: {}", self.request_id, self.body_text());
    }
}

/// A FastCGI connection, driven record by record.
#[derive(Debug)]
pub struct Client {
    stream: Stream,
    decoder: Decoder,
    /// Records read while looking for another request's: handed out first by `next_frame`.
    pending: VecDeque<Frame>,
}

impl Client {
    /// Connects to `addr`, or panics.
    pub fn connect(addr: &Addr) -> Client {
        Client::try_connect(addr).unwrap_or_else(|e| panic!("cannot connect to {addr:?}: {e}"))
    }

    /// Connects to `addr`.
    pub fn try_connect(addr: &Addr) -> io::Result<Client> {
        let stream = addr.connect()?;
        Ok(Client { stream, decoder: Decoder::new(), pending: VecDeque::new() })
    }

    /// The socket, to set options or shut a direction down.
    pub fn stream(&self) -> &Stream {
        &self.stream
    }

    /// Sets the read and write timeout (default [`TIMEOUT`]).
    pub fn set_timeout(&self, timeout: Duration) {
        self.stream.set_timeout(timeout).expect("setting a socket timeout");
    }

    /// Writes `bytes` whole: any record, or anything at all.
    pub fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes)
    }

    /// Writes `bytes` whole, or panics (the server is expected to be reading).
    #[track_caller]
    pub fn send_ok(&mut self, bytes: &[u8]) {
        if let Err(e) = self.send(bytes) {
            panic!("cannot send {} bytes: {e}", bytes.len());
        }
    }

    /// Sends `FCGI_BEGIN_REQUEST`.
    #[track_caller]
    pub fn send_begin(&mut self, id: u16, role: Role, keep_conn: bool) {
        self.send_ok(&frames::begin(id, role, keep_conn));
    }

    /// Sends a whole `FCGI_PARAMS` stream, its end included.
    #[track_caller]
    pub fn send_params(&mut self, id: u16, pairs: &[(&str, &str)]) {
        self.send_ok(&frames::params(id, pairs));
    }

    /// Sends a whole `FCGI_STDIN` stream (`body`, then its end).
    #[track_caller]
    pub fn send_stdin(&mut self, id: u16, body: &[u8]) {
        self.send_ok(&frames::stdin(id, body));
    }

    /// Sends `FCGI_ABORT_REQUEST`.
    #[track_caller]
    pub fn send_abort(&mut self, id: u16) {
        self.send_ok(&frames::abort(id));
    }

    /// Sends `FCGI_GET_VALUES` asking for `names`.
    #[track_caller]
    pub fn send_get_values(&mut self, names: &[&str]) {
        self.send_ok(&frames::get_values(names));
    }

    /// Sends a Responder request with `FCGI_KEEP_CONN` and reads its response.
    #[track_caller]
    pub fn simple_request(&mut self, params: &[(&str, &str)], body: &[u8]) -> Reply {
        self.send_ok(&frames::request(1, Role::Responder, true, params, body));
        self.read_reply(1)
    }

    /// Closes our sending side: the server sees the end of the stream.
    pub fn shutdown_write(&self) {
        // Failing means the connection is gone already, which the reads that follow will show.
        let _ = self.stream.shutdown(Shutdown::Write);
    }

    /// The next record from the server (first those set aside by [`read_reply`](Self::read_reply)).
    ///
    /// `Ok(None)` is a clean end of the stream, at a record boundary. The end of the stream
    /// inside a record is `UnexpectedEof`, a broken record `InvalidData`, and no byte for the
    /// timeout `TimedOut`.
    pub fn next_frame(&mut self) -> io::Result<Option<Frame>> {
        if let Some(frame) = self.pending.pop_front() {
            return Ok(Some(frame));
        }
        loop {
            match self.decoder.decode() {
                Ok(Some(record)) => {
                    return Ok(Some(Frame::from_body(record.request_id, record.body)))
                }
                Ok(None) => {}
                Err(e) => return Err(io::Error::new(io::ErrorKind::InvalidData, e.to_string())),
            }
            match self.decoder.read_from(&mut self.stream) {
                Ok(0) if self.decoder.is_empty() => return Ok(None),
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!(
                            "the stream ended inside a record ({} bytes)",
                            self.decoder.buffered()
                        ),
                    ))
                }
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e)
                    if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) =>
                {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "no record from the server within the timeout",
                    ))
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Sends GET_VALUES (for FCGI_MPXS_CONNS) and reads the next record, which must be its
    /// answer: everything sent before it on this connection has been read and acted on, and
    /// nothing was answered for it. Returns that answer.
    #[track_caller]
    pub fn barrier(&mut self) -> Frame {
        self.send_get_values(&["FCGI_MPXS_CONNS"]);
        let frame = self.expect_frame();
        assert!(
            frame.request_id == 0 && matches!(frame.kind, FrameKind::GetValuesResult(_)),
            "records sent before GET_VALUES were answered: {frame:?}"
        );
        frame
    }

    /// Sends management records (request id 0) of types no server knows, and of known types
    /// that make no sense on id 0, and checks that each one is answered FCGI_UNKNOWN_TYPE
    /// naming its type. The connection goes on: the caller checks that it still serves.
    #[track_caller]
    pub fn check_unknown_management_types(&mut self) {
        let cases: [(u8, &[u8], RecordType); 5] = [
            (42, b"whatever", RecordType::Unknown(42)),
            (255, &[0; 300], RecordType::Unknown(255)),
            (0, b"", RecordType::Unknown(0)),
            // Known types that make no sense as management records.
            (6, b"stdout on id 0", RecordType::Stdout),
            (5, b"", RecordType::Stdin),
        ];
        for (type_byte, content, named) in cases {
            self.send_ok(&frames::record(type_byte, 0, content));
            let frame = self.expect_frame();
            assert_eq!(
                frame,
                Frame { request_id: 0, kind: FrameKind::UnknownType(named) },
                "type {type_byte}"
            );
        }
    }

    /// The next record, which must come; panics on the end of the stream or a timeout.
    #[track_caller]
    pub fn expect_frame(&mut self) -> Frame {
        match self.next_frame() {
            Ok(Some(frame)) => frame,
            Ok(None) => panic!("the server closed the connection; a record was expected"),
            Err(e) => panic!("no record from the server: {e}"),
        }
    }

    /// The next record with request id `id`; records of other ids met on the way are kept for
    /// later calls, in order.
    pub fn next_frame_for(&mut self, id: u16) -> io::Result<Frame> {
        if let Some(at) = self.pending.iter().position(|f| f.request_id == id) {
            return Ok(self.pending.remove(at).expect("the position was just found"));
        }
        loop {
            let frame = match self.read_socket_frame()? {
                Some(frame) => frame,
                None => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!("the server closed the connection; a record for {id} was expected"),
                    ))
                }
            };
            if frame.request_id == id {
                return Ok(frame);
            }
            self.pending.push_back(frame);
        }
    }

    fn read_socket_frame(&mut self) -> io::Result<Option<Frame>> {
        let pending = std::mem::take(&mut self.pending);
        let frame = self.next_frame();
        self.pending = pending;
        frame
    }

    /// Reads the response to request `id` up to its END_REQUEST, and checks that its streams
    /// are well formed: no record after a stream's end, and no empty record except that end.
    /// Records of other requests met on the way are kept for later reads. Panics on a
    /// malformed response, the end of the stream, or a timeout.
    #[track_caller]
    pub fn read_reply(&mut self, id: u16) -> Reply {
        match self.try_read_reply(id) {
            Ok(reply) => reply,
            Err(e) => panic!("no complete response to request {id}: {e}"),
        }
    }

    /// [`read_reply`](Self::read_reply), reporting a closed connection or a timeout as an
    /// error instead of panicking (a malformed response still panics).
    #[track_caller]
    pub fn try_read_reply(&mut self, id: u16) -> io::Result<Reply> {
        let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
        let mut stdout_records = Vec::new();
        let (mut stdout_ended, mut stderr_ended) = (false, false);
        loop {
            let frame = self.next_frame_for(id)?;
            match frame.kind {
                FrameKind::Stdout(content) => {
                    assert!(!stdout_ended, "request {id}: a STDOUT record after the end of STDOUT");
                    if content.is_empty() {
                        stdout_ended = true;
                    } else {
                        stdout_records.push(content.len());
                        stdout.extend_from_slice(&content);
                    }
                }
                FrameKind::Stderr(content) => {
                    assert!(!stderr_ended, "request {id}: a STDERR record after the end of STDERR");
                    if content.is_empty() {
                        assert!(!stderr.is_empty(), "request {id}: STDERR ended but never used");
                        stderr_ended = true;
                    } else {
                        stderr.extend_from_slice(&content);
                    }
                }
                FrameKind::EndRequest(end) => {
                    let mut reply = Reply::new(id, stdout, stderr, end);
                    reply.stdout_records = stdout_records;
                    reply.stdout_ended = stdout_ended;
                    reply.stderr_ended = stderr_ended;
                    return Ok(reply);
                }
                other => panic!("request {id}: unexpected record {other:?}"),
            }
        }
    }

    /// Reads until the server closes the connection, and returns the records that came first.
    /// A reset counts as closed. Fails if the connection stays open for the timeout.
    pub fn read_until_closed(&mut self) -> io::Result<Vec<Frame>> {
        let mut frames = Vec::new();
        loop {
            match self.next_frame() {
                Ok(Some(frame)) => frames.push(frame),
                Ok(None) => return Ok(frames),
                Err(e) if is_closed(&e) => return Ok(frames),
                Err(e) => return Err(e),
            }
        }
    }
}

/// Whether an I/O error means the peer closed or reset the connection.
pub fn is_closed(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::UnexpectedEof
    )
}

/// Builders for the bytes a web server sends, shared by every test (as h2's
/// `tests/h2-support/src/frames.rs`). Each returns whole records, ready for [`Client::send`].
pub mod frames {
    use fcgi_codec::{encode_pair, BeginRequest, Encoder, Header, RecordType, Role, StreamKind};

    /// `FCGI_BEGIN_REQUEST` for `id`.
    pub fn begin(id: u16, role: Role, keep_conn: bool) -> Vec<u8> {
        let mut out = Vec::new();
        let _ = Encoder::new().begin_request(&mut out, id, &BeginRequest::new(role, keep_conn));
        out
    }

    /// `FCGI_BEGIN_REQUEST` with a raw role number (unknown roles included).
    pub fn begin_role(id: u16, role: u16, keep_conn: bool) -> Vec<u8> {
        begin(id, Role::from(role), keep_conn)
    }

    /// The name-value encoding of `pairs`: the content of a params stream.
    pub fn pairs(pairs: &[(&str, &str)]) -> Vec<u8> {
        let mut out = Vec::new();
        for (name, value) in pairs {
            encode_pair(&mut out, name.as_bytes(), value.as_bytes()).expect("pairs this short fit");
        }
        out
    }

    /// A whole `FCGI_PARAMS` stream for `id`: `pairs` in as many records as they take, and
    /// the empty record that ends the stream.
    pub fn params(id: u16, pairs: &[(&str, &str)]) -> Vec<u8> {
        let mut out = stream(StreamKind::Params, id, &self::pairs(pairs));
        out.extend(end(StreamKind::Params, id));
        out
    }

    /// `data` as records of stream `kind` (none for empty data), without the end.
    pub fn stream(kind: StreamKind, id: u16, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let _ = Encoder::new().stream(&mut out, kind, id, data);
        out
    }

    /// The empty record that ends stream `kind`.
    pub fn end(kind: StreamKind, id: u16) -> Vec<u8> {
        let mut out = Vec::new();
        let _ = Encoder::new().end_stream(&mut out, kind, id);
        out
    }

    /// A whole `FCGI_STDIN` stream: `body`, then its end.
    pub fn stdin(id: u16, body: &[u8]) -> Vec<u8> {
        let mut out = stream(StreamKind::Stdin, id, body);
        out.extend(end(StreamKind::Stdin, id));
        out
    }

    /// A whole `FCGI_DATA` stream (Filter role): `data`, then its end.
    pub fn data(id: u16, data: &[u8]) -> Vec<u8> {
        let mut out = stream(StreamKind::Data, id, data);
        out.extend(end(StreamKind::Data, id));
        out
    }

    /// `FCGI_ABORT_REQUEST` for `id`.
    pub fn abort(id: u16) -> Vec<u8> {
        let mut out = Vec::new();
        let _ = Encoder::new().abort_request(&mut out, id);
        out
    }

    /// `FCGI_GET_VALUES` asking for `names`.
    pub fn get_values(names: &[&str]) -> Vec<u8> {
        let mut out = Vec::new();
        let _ = Encoder::new().get_values(&mut out, names);
        out
    }

    /// One record of any type (a [`RecordType`] or a raw type byte), with `content` as it is
    /// and no padding: for the records the encoder would not write (unknown types, output
    /// streams sent to the server, the largest content of 65,535 bytes).
    pub fn record(record_type: impl Into<RecordType>, id: u16, content: &[u8]) -> Vec<u8> {
        let len = u16::try_from(content.len()).expect("a record carries at most 65,535 bytes");
        let mut out = Header::new(record_type.into(), id, len).encode().to_vec();
        out.extend_from_slice(content);
        out
    }

    /// Every kind of record a server must ignore for `id` when no request `id` is open: params,
    /// a body, data, an abort, an output stream and an unknown type, none of them begun.
    pub fn for_no_request(id: u16) -> Vec<u8> {
        let mut out = params(id, &[("QUERY_STRING", "nobody asked")]);
        out.extend(stdin(id, b"body for nobody"));
        out.extend(data(id, b"data for nobody"));
        out.extend(abort(id));
        out.extend(record(RecordType::Stdout, id, b"stdout sent to the application"));
        out.extend(record(42, id, b"an unknown type on a request id"));
        out
    }

    /// Several requests' records interleaved on one connection: the first record of each
    /// request in turn, then the second of each, and so on (a request whose records ran out
    /// drops out).
    pub fn round_robin(requests: Vec<Vec<Vec<u8>>>) -> Vec<u8> {
        let mut requests: Vec<_> = requests.into_iter().map(Vec::into_iter).collect();
        let mut out = Vec::new();
        loop {
            let mut any = false;
            for record in requests.iter_mut().filter_map(Iterator::next) {
                out.extend(record);
                any = true;
            }
            if !any {
                return out;
            }
        }
    }

    /// A whole request: BEGIN_REQUEST, the params stream, and the body as the STDIN stream.
    pub fn request(
        id: u16,
        role: Role,
        keep_conn: bool,
        params: &[(&str, &str)],
        body: &[u8],
    ) -> Vec<u8> {
        let mut out = begin(id, role, keep_conn);
        out.extend(self::params(id, params));
        out.extend(stdin(id, body));
        out
    }
}
