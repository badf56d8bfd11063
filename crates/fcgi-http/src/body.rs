//! The request body, as an `http_body::Body` that reads the FastCGI request's body a piece at
//! a time.

use std::fmt;
use std::io::{self, Read};
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http_body::{Frame, SizeHint};

/// The most a body frame carries: one FastCGI record's worth, and what fcgi-server reads
/// from its spool file at a time. A 1 GiB upload costs this much memory at a time (and the
/// spool's threshold), however fast the service reads it.
pub const FRAME_SIZE: usize = 64 * 1024;

/// The body of a request, handed to the service as [`http::Request<Body>`](http::Request).
///
/// It reads the FastCGI request's body (`FCGI_STDIN`) a frame of at most [`FRAME_SIZE`] bytes
/// at a time, as the service polls it; nothing is read ahead and nothing is gathered, so a
/// service that streams the body (axum's `Body::into_data_stream`, `http_body_util`'s
/// `BodyStream`) runs in bounded memory whatever the size, and one that collects it (axum's
/// `Json`, `Bytes` and `String` extractors) holds exactly what it asked for.
///
/// fcgi-server has the whole body spooled (in memory up to `Config::spool_memory`, past that
/// in an unlinked temporary file) before the service starts (see the crate's `DESIGN.md` for
/// why), so a poll never waits for the network: it is a copy from memory or a file read, and
/// never returns `Pending`. That also holds if the service moves the body into a task of its
/// own on the runtime.
///
/// `size_hint` is exact when the web server sent `CONTENT_LENGTH` (nginx does for every body
/// it buffered, chunked ones included).
///
/// ```
/// use http_body_util::BodyExt;
///
/// # async fn f(request: http::Request<fcgi_http::Body>) -> Result<(), fcgi_http::BodyError> {
/// let mut body = request.into_body();
/// let mut bytes = 0;
/// while let Some(frame) = body.frame().await {
///     bytes += frame?.into_data().map_or(0, |data| data.len());
/// }
/// # Ok(()) }
/// ```
pub struct Body {
    reader: Option<fcgi_server::Body>,
    /// Bytes still to come, from `CONTENT_LENGTH`.
    remaining: Option<u64>,
}

impl Body {
    /// The body that `reader` reads; `content_length` is the web server's `CONTENT_LENGTH`,
    /// if it sent one. [`Service`](crate::Service) makes one per request from
    /// [`fcgi_server::Request::body_reader`]; this is for handlers of your own.
    ///
    /// ```
    /// # fn f(request: &fcgi_server::Request) {
    /// let body = fcgi_http::Body::new(request.body_reader(), request.content_length());
    /// # }
    /// ```
    pub fn new(reader: fcgi_server::Body, content_length: Option<u64>) -> Body {
        let reader = (content_length != Some(0)).then_some(reader);
        Body { reader, remaining: content_length }
    }

    /// A body with nothing in it: for tests of a service, say.
    ///
    /// ```
    /// use http_body::Body as _;
    ///
    /// assert!(fcgi_http::Body::empty().is_end_stream());
    /// ```
    pub fn empty() -> Body {
        Body { reader: None, remaining: Some(0) }
    }

    /// Reads the next frame: at most [`FRAME_SIZE`] bytes, fewer if `CONTENT_LENGTH` says
    /// fewer are left. `None` at the end.
    fn read_frame(&mut self) -> Option<Result<Bytes, BodyError>> {
        let reader = self.reader.as_mut()?;
        let want = match self.remaining {
            Some(left) => usize::try_from(left).map_or(FRAME_SIZE, |left| left.min(FRAME_SIZE)),
            None => FRAME_SIZE,
        };
        let mut buf = BytesMut::zeroed(want);
        loop {
            match reader.read(&mut buf) {
                Ok(0) => {
                    self.reader = None;
                    return match self.remaining {
                        Some(left) if left > 0 => Some(Err(BodyError(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            format!("the body ended {left} bytes short of its CONTENT_LENGTH"),
                        )))),
                        _ => None,
                    };
                }
                Ok(n) => {
                    buf.truncate(n);
                    if let Some(left) = &mut self.remaining {
                        *left = left.saturating_sub(n as u64);
                        if *left == 0 {
                            // The end, known without another read: `is_end_stream` says so.
                            self.reader = None;
                        }
                    }
                    return Some(Ok(buf.freeze()));
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    self.reader = None;
                    return Some(Err(BodyError(e)));
                }
            }
        }
    }
}

impl http_body::Body for Body {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        Poll::Ready(self.get_mut().read_frame().map(|read| read.map(Frame::data)))
    }

    fn is_end_stream(&self) -> bool {
        self.reader.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        match (&self.reader, self.remaining) {
            (None, _) => SizeHint::with_exact(0),
            (Some(_), Some(left)) => SizeHint::with_exact(left),
            (Some(_), None) => SizeHint::default(),
        }
    }
}

impl Default for Body {
    fn default() -> Body {
        Body::empty()
    }
}

impl fmt::Debug for Body {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Body")
            .field("ended", &self.reader.is_none())
            .field("remaining", &self.remaining)
            .finish()
    }
}

/// Why the request body could not be read: the web server aborted the request, the body
/// passed `Config::max_body`, or the spool file could not be read. fcgi-server answers such
/// a request itself (413, 503, or nothing for an abort) whatever the service does.
#[derive(Debug)]
pub struct BodyError(io::Error);

impl BodyError {
    /// What went wrong, as an I/O error kind (`ConnectionAborted` for an abort, `InvalidData`
    /// past the limit, `TimedOut` for a body that came too slowly).
    pub fn kind(&self) -> io::ErrorKind {
        self.0.kind()
    }
}

impl fmt::Display for BodyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the request body could not be read: {}", self.0)
    }
}

impl std::error::Error for BodyError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

impl From<BodyError> for io::Error {
    fn from(error: BodyError) -> io::Error {
        error.0
    }
}
