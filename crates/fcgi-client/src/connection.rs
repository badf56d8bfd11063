//! One connection to a FastCGI server: requests out, records in, demultiplexed by request id.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use fcgi_codec::{BeginRequest, Decoder, Encoder, Role, StreamKind};

use crate::link::{self, Link, Slot, Stream};
use crate::{Address, Error, Reply, Request, Response, ResponseHead};

/// How long connecting, each read and each write may block. `None` (or zero) waits forever.
///
/// ```
/// use std::time::Duration;
/// use fcgi_client::Timeouts;
///
/// let quick = Timeouts { read: Some(Duration::from_secs(2)), ..Timeouts::default() };
/// assert_eq!(quick.connect, Some(Timeouts::DEFAULT_CONNECT));
/// assert_eq!(Timeouts::all(Duration::from_secs(5)).write, Some(Duration::from_secs(5)));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// Connecting (per address a TCP name resolves to; name resolution itself is not bounded).
    pub connect: Option<Duration>,
    /// Each read from the server: the longest the server may stay silent while a response or
    /// a management answer is awaited.
    pub read: Option<Duration>,
    /// Each write to the server: the longest the server may leave the request unread.
    pub write: Option<Duration>,
}

impl Timeouts {
    /// 10 s: a listening server accepts in microseconds; this only has to outlast a full
    /// listen backlog on a loaded machine.
    pub const DEFAULT_CONNECT: Duration = Duration::from_secs(10);
    /// 60 s: nginx's `fastcgi_read_timeout` default.
    pub const DEFAULT_READ: Duration = Duration::from_secs(60);
    /// 60 s: nginx's `fastcgi_send_timeout` default.
    pub const DEFAULT_WRITE: Duration = Duration::from_secs(60);

    /// The same timeout for connecting, reading and writing.
    pub fn all(timeout: Duration) -> Timeouts {
        Timeouts { connect: Some(timeout), read: Some(timeout), write: Some(timeout) }
    }
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Some(Self::DEFAULT_CONNECT),
            read: Some(Self::DEFAULT_READ),
            write: Some(Self::DEFAULT_WRITE),
        }
    }
}

/// Zero means no timeout, as it does for the command line; std refuses a zero timeout.
fn nonzero(timeout: Option<Duration>) -> Option<Duration> {
    timeout.filter(|t| !t.is_zero())
}

/// Most bytes buffered before they are written: one full record and its header.
const WRITE_BUFFER: usize = 64 * 1024;

/// Largest chunk of a body read at once: the largest record content that needs no padding,
/// so that each read becomes exactly one record.
const BODY_CHUNK: usize = 65_528;

/// A connection to a FastCGI server.
///
/// One request at a time ([`request`](Connection::request)), as nginx does: the response is
/// streamed, and with `FCGI_KEEP_CONN` (the default) the connection serves the next request.
/// Or several at once ([`send`](Connection::send) then [`receive`](Connection::receive), or
/// [`multiplex`](Connection::multiplex)), as HAProxy does with `mpxs-conns`: each gets its own
/// request id, and the records that come back are sorted by id. Only servers that advertise
/// `FCGI_MPXS_CONNS=1` ([`get_values`](Connection::get_values)) take several at once; PHP-FPM
/// and libfcgi do not.
///
/// A request is written whole (params, then its body to the end) before its response is read,
/// as nginx does: the server must read the body while it answers, or spool it.
///
/// ```no_run
/// use std::io::Read;
/// use fcgi_client::{Connection, Request};
///
/// let mut conn = Connection::connect(&"unix:/run/php/php8.2-fpm.sock".parse()?)?;
/// for page in ["/srv/www/index.php", "/srv/www/about.php"] {
///     // The same connection, kept between requests.
///     let request = Request::new().params([("SCRIPT_FILENAME", page), ("REQUEST_METHOD", "GET")]);
///     let mut response = conn.request(request)?;
///     println!("{page}: {} {:?}", response.status(), response.header("Content-Type"));
///     let mut body = String::new();
///     response.read_to_string(&mut body)?;
///     let finished = response.finish()?;
///     assert!(finished.is_complete());
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Connection {
    addr: Address,
    timeouts: Timeouts,
    encoder: Encoder,
    /// The socket, and the records that came on it.
    link: Link,
}

impl Connection {
    /// Connects to `addr` with the default [`Timeouts`].
    ///
    /// ```no_run
    /// let conn = fcgi_client::Connection::connect(&"127.0.0.1:9000".parse()?)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn connect(addr: &Address) -> Result<Connection, Error> {
        Connection::connect_with(addr, Timeouts::default())
    }

    /// Connects to `addr` with `timeouts`. A TCP name is resolved and each of its addresses
    /// tried in turn; connecting that takes longer than `timeouts.connect` is an
    /// [`Error::Connect`] whose source is [`io::ErrorKind::TimedOut`].
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use fcgi_client::{Connection, Timeouts};
    ///
    /// let addr = "unix:/run/fcgi.sock".parse()?;
    /// let conn = Connection::connect_with(&addr, Timeouts::all(Duration::from_secs(3)))?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn connect_with(addr: &Address, timeouts: Timeouts) -> Result<Connection, Error> {
        let connect_error = |source| Error::Connect { addr: addr.clone(), source };
        let stream = match addr {
            Address::Unix(path) => Stream::Unix(UnixStream::connect(path).map_err(connect_error)?),
            Address::Tcp(hostport) => Stream::Tcp(
                connect_tcp(hostport, nonzero(timeouts.connect)).map_err(connect_error)?,
            ),
            Address::Fd(_) => {
                return Err(connect_error(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "fd:N is a descriptor a server listens on; a client connects to unix:PATH \
                     or HOST:PORT",
                )))
            }
        };
        let (read, write) = (nonzero(timeouts.read), nonzero(timeouts.write));
        let set = match &stream {
            Stream::Tcp(s) => {
                s.set_nodelay(true).and(s.set_read_timeout(read)).and(s.set_write_timeout(write))
            }
            Stream::Unix(s) => s.set_read_timeout(read).and(s.set_write_timeout(write)),
        };
        set.map_err(connect_error)?;
        Ok(Connection {
            addr: addr.clone(),
            timeouts,
            encoder: Encoder::new(),
            link: Link {
                stream,
                read_timeout: read,
                decoder: Decoder::new(),
                slots: HashMap::new(),
                values: None,
                values_unknown: false,
                usable: true,
            },
        })
    }

    /// Where this connection goes.
    ///
    /// ```no_run
    /// let addr: fcgi_client::Address = "unix:/run/fcgi.sock".parse()?;
    /// let conn = fcgi_client::Connection::connect(&addr)?;
    /// assert_eq!(conn.addr(), &addr);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn addr(&self) -> &Address {
        &self.addr
    }

    /// Whether the connection can take another request: nothing has broken it, and every
    /// request finished so far asked to keep it. (The server may still have closed it since;
    /// the next request then fails with [`Error::Closed`] or [`Error::Io`].)
    ///
    /// ```no_run
    /// use fcgi_client::{Connection, Request};
    ///
    /// let mut conn = Connection::connect(&"unix:/run/fcgi.sock".parse()?)?;
    /// conn.request(Request::new().keep_conn(false))?.finish()?;
    /// assert!(!conn.is_usable());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn is_usable(&self) -> bool {
        self.link.usable
    }

    /// Requests sent whose end has not been read yet (dropped, unfinished responses included).
    ///
    /// ```no_run
    /// use fcgi_client::{Connection, Request};
    ///
    /// let mut conn = Connection::connect(&"unix:/run/fcgi.sock".parse()?)?;
    /// let id = conn.send(Request::new())?;
    /// assert_eq!(conn.in_flight(), 1);
    /// conn.receive(id)?;
    /// assert_eq!(conn.in_flight(), 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn in_flight(&self) -> usize {
        self.link.slots.len()
    }

    /// Sends `request` and returns its response once its head has come; the body is then
    /// read from the [`Response`] as it arrives.
    ///
    /// The request gets the lowest request id not in flight: 1, when requests go one at a
    /// time, as nginx sends them.
    ///
    /// ```no_run
    /// use fcgi_client::{Connection, Request};
    ///
    /// let mut conn = Connection::connect(&"tcp:127.0.0.1:9000".parse()?)?;
    /// let mut response = conn.request(Request::new().param("SCRIPT_FILENAME", "/srv/www/big.php"))?;
    /// std::io::copy(&mut response, &mut std::io::stdout())?;
    /// let finished = response.finish()?;
    /// eprint!("{}", String::from_utf8_lossy(&finished.stderr));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn request(&mut self, request: Request<'_>) -> Result<Response<'_>, Error> {
        let id = self.send(request)?;
        self.response(id)
    }

    /// Sends `request` (params and the whole body) without waiting for its response, and
    /// returns its request id, for [`response`](Connection::response) or
    /// [`receive`](Connection::receive) later. Send several before receiving to multiplex
    /// them, on a server that does (`FCGI_MPXS_CONNS=1`).
    ///
    /// Responses dropped unfinished are read to their end first, so that their ids are free.
    ///
    /// ```no_run
    /// use fcgi_client::{Connection, Request};
    ///
    /// let mut conn = Connection::connect(&"unix:/run/fcgi.sock".parse()?)?;
    /// let slow = conn.send(Request::new().param("SCRIPT_NAME", "/slow"))?;
    /// let fast = conn.send(Request::new().param("SCRIPT_NAME", "/fast"))?;
    /// assert_ne!(slow, fast);
    /// let fast = conn.receive(fast)?; // the slow one's records are kept aside meanwhile
    /// let slow = conn.receive(slow)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn send(&mut self, request: Request<'_>) -> Result<u16, Error> {
        if !self.link.usable {
            return Err(Error::Unusable);
        }
        while self.link.slots.values().any(|slot| slot.abandoned) {
            self.link.pump("finishing a response dropped unread")?;
        }
        let id = (1..=u16::MAX).find(|id| !self.link.slots.contains_key(id)).ok_or(Error::Busy)?;
        self.link.slots.insert(id, Slot { keep_conn: request.keep_conn, ..Slot::default() });
        match self.write_request(id, request) {
            Ok(()) => Ok(id),
            Err(error) => {
                self.link.slots.remove(&id);
                self.link.usable = false;
                Err(error)
            }
        }
    }

    /// The response to request `id` (from [`send`](Connection::send)), once its head has
    /// come, its body to be read as it arrives.
    ///
    /// A request that ends without a head is an [`Error::NoResponse`] that carries its end
    /// (overloaded, say) and stderr; the connection stays usable.
    ///
    /// ```no_run
    /// use std::io::Read;
    /// use fcgi_client::{Connection, Request};
    ///
    /// let mut conn = Connection::connect(&"unix:/run/fcgi.sock".parse()?)?;
    /// let id = conn.send(Request::new())?;
    /// let mut response = conn.response(id)?;
    /// let mut body = Vec::new();
    /// response.read_to_end(&mut body)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn response(&mut self, id: u16) -> Result<Response<'_>, Error> {
        // A read that ends in a failure files the records before it first: a head among them
        // makes a response, which reports the failure after its body.
        let mut failed = None;
        loop {
            let slot = self.link.slots.get_mut(&id).ok_or(Error::NotInFlight { request_id: id })?;
            let pending = &slot.stdout[slot.read_pos..];
            match ResponseHead::parse(pending) {
                Ok(Some((head, len))) => {
                    slot.read_pos += len;
                    return Ok(Response::new(&mut self.link, id, head, failed));
                }
                Ok(None) if slot.body_done() && !pending.is_empty() => {
                    let source = crate::HeadError::Incomplete { len: pending.len() };
                    return Err(self.head_error(id, source));
                }
                Ok(None) => {}
                Err(source) => return Err(self.head_error(id, source)),
            }
            if let Some(end) = slot.end {
                let stderr = std::mem::take(&mut slot.stderr);
                self.link.forget(id);
                return Err(Error::NoResponse { request_id: id, end, stderr });
            }
            if let Some(error) = failed {
                return Err(error);
            }
            failed = self.link.pump("reading the response").err();
        }
    }

    /// The whole response to request `id` (from [`send`](Connection::send)), body and
    /// stderr in memory.
    ///
    /// ```no_run
    /// use fcgi_client::{Connection, Request};
    ///
    /// let mut conn = Connection::connect(&"unix:/run/fcgi.sock".parse()?)?;
    /// let id = conn.send(Request::new())?;
    /// let reply = conn.receive(id)?;
    /// println!("{} ({} bytes)", reply.head.status, reply.body.len());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn receive(&mut self, id: u16) -> Result<Reply, Error> {
        self.response(id)?.into_reply()
    }

    /// Sends every request, then receives every response: several requests at once on one
    /// connection, each with its own id, the replies in the order of the requests.
    ///
    /// Only for a server that multiplexes (`FCGI_MPXS_CONNS=1`): others answer the second
    /// request with `FCGI_CANT_MPX_CONN` (an [`Error::NoResponse`]) or break the connection.
    ///
    /// ```no_run
    /// use fcgi_client::{Connection, Request};
    ///
    /// let mut conn = Connection::connect(&"unix:/run/fcgi.sock".parse()?)?;
    /// let pages = ["/a", "/b", "/c"];
    /// let replies = conn.multiplex(pages.map(|p| Request::new().param("SCRIPT_NAME", p)))?;
    /// assert_eq!(replies.len(), 3);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn multiplex<'a>(
        &mut self,
        requests: impl IntoIterator<Item = Request<'a>>,
    ) -> Result<Vec<Reply>, Error> {
        let ids: Vec<u16> = requests.into_iter().map(|r| self.send(r)).collect::<Result<_, _>>()?;
        ids.into_iter().map(|id| self.receive(id)).collect()
    }

    /// Asks the server for its management variables with `FCGI_GET_VALUES` and returns the
    /// answer: the names it knows, with their values, in its order. The spec's names are in
    /// [`fcgi_codec::management`]: `FCGI_MAX_CONNS`, `FCGI_MAX_REQS`, `FCGI_MPXS_CONNS`.
    ///
    /// PHP-FPM closes the connection after answering: connect anew for a request.
    ///
    /// ```no_run
    /// use fcgi_client::{management, Connection};
    ///
    /// let mut conn = Connection::connect(&"unix:/run/fcgi.sock".parse()?)?;
    /// let values = conn.get_values([management::MAX_CONNS, management::MPXS_CONNS])?;
    /// for (name, value) in values {
    ///     println!("{name}={value}");
    /// }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn get_values<I, N>(&mut self, names: I) -> Result<Vec<(String, String)>, Error>
    where
        I: IntoIterator<Item = N>,
        N: AsRef<[u8]>,
    {
        if !self.link.usable {
            return Err(Error::Unusable);
        }
        self.link.values = None;
        self.link.values_unknown = false;
        let mut out = Vec::new();
        let written = self.encoder.get_values(&mut out, names);
        let written = written.map_err(|source| Error::Io { during: "encoding the names", source });
        let sent = written.and_then(|()| self.write_out(&out));
        self.link.check(sent)?;
        loop {
            if let Some(values) = self.link.values.take() {
                return Ok(values);
            }
            if self.link.values_unknown {
                return Err(Error::GetValuesUnsupported);
            }
            self.link.pump("waiting for FCGI_GET_VALUES_RESULT")?;
        }
    }

    fn head_error(&mut self, id: u16, source: crate::HeadError) -> Error {
        // The rest of the response cannot be made sense of; the connection goes with it.
        self.link.slots.remove(&id);
        self.link.usable = false;
        Error::Head { request_id: id, source }
    }

    /// Writes begin, params, the body and (Filter) the data, aborting the request if reading
    /// the caller's body fails.
    fn write_request(&mut self, id: u16, request: Request<'_>) -> Result<(), Error> {
        let encode_error = |source| Error::Io { during: "encoding the request", source };
        let mut out = Vec::with_capacity(WRITE_BUFFER);
        let begin = BeginRequest::new(request.role, request.keep_conn);
        self.encoder.begin_request(&mut out, id, &begin).map_err(encode_error)?;
        self.encoder
            .params(&mut out, id, request.params.iter().map(|(n, v)| (n, v)))
            .map_err(encode_error)?;
        let data = match (request.role, request.data) {
            (_, Some(data)) => Some(data),
            (Role::Filter, None) => Some(Box::new(io::empty()) as Box<dyn Read>),
            (_, None) => None,
        };
        let streams = [(StreamKind::Stdin, request.stdin), (StreamKind::Data, data)];
        for (kind, body) in streams {
            if kind == StreamKind::Data && body.is_none() {
                continue;
            }
            if let Some(body) = body {
                if let Err(error) = self.write_body(id, kind, body, &mut out) {
                    if matches!(error, Error::Body(_)) {
                        out.clear();
                        let _ = self.encoder.abort_request(&mut out, id);
                        let _ = self.write_out(&out);
                    }
                    return Err(error);
                }
            }
            self.encoder.end_stream(&mut out, kind, id).map_err(encode_error)?;
        }
        self.write_out(&out)
    }

    /// Streams `body` as records of `kind`, writing `out` out whenever it fills.
    fn write_body(
        &mut self,
        id: u16,
        kind: StreamKind,
        mut body: Box<dyn Read + '_>,
        out: &mut Vec<u8>,
    ) -> Result<(), Error> {
        let mut chunk = vec![0; BODY_CHUNK];
        loop {
            let n = match body.read(&mut chunk) {
                Ok(0) => return Ok(()),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Error::Body(e)),
            };
            self.encoder
                .stream(out, kind, id, &chunk[..n])
                .map_err(|source| Error::Io { during: "encoding the body", source })?;
            if out.len() >= WRITE_BUFFER {
                self.write_out(out)?;
                out.clear();
            }
        }
    }

    fn write_out(&mut self, bytes: &[u8]) -> Result<(), Error> {
        let during = "sending the request";
        self.link
            .stream
            .write_all(bytes)
            .map_err(|e| link::io_error(e, during, self.timeouts.write))
    }
}

fn connect_tcp(hostport: &str, timeout: Option<Duration>) -> io::Result<TcpStream> {
    let mut last = None;
    for addr in hostport.to_socket_addrs()? {
        let attempt = match timeout {
            Some(timeout) => TcpStream::connect_timeout(&addr, timeout),
            None => TcpStream::connect(addr),
        };
        match attempt {
            Ok(stream) => return Ok(stream),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| {
        io::Error::new(io::ErrorKind::NotFound, format!("{hostport} resolves to no address"))
    }))
}
