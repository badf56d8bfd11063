//! An `http::Response` written out as the FastCGI response: status, headers, then the body
//! frame by frame as the service yields it.

use std::io::Write;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Buf;
use http::header::{CONNECTION, CONTENT_LENGTH, TRANSFER_ENCODING};
use http::{HeaderMap, Method, StatusCode};
use http_body::Body as HttpBody;

/// Response headers that are not passed on:
/// - `Status`: a CGI response header of its own (it sets the status, which comes from the
///   `http::Response` here), never sent to the client.
/// - `Connection`, `Transfer-Encoding`: the framing of one hop; the web server frames the
///   body for its client itself (RFC 3875 section 6.3.4; nginx chunks an HTTP/1.1 response
///   without a length), and a `Transfer-Encoding: chunked` passed on over plain bytes would
///   make the client misread the body.
fn is_passed_on(name: &http::HeaderName) -> bool {
    name != CONNECTION && name != TRANSFER_ENCODING && name.as_str() != "status"
}

/// Writes `head` (status and headers) to `out`; the body follows with [`write_body`].
///
/// The status goes out as CGI's `Status:` line, except 200, CGI's default, which has none
/// (`fcgi_server::Response` does that). `Content-Length` is added when the service gave none
/// and the body knows its exact size (as hyper does), except for a `HEAD` request and for
/// the statuses that have no body (1xx, 204, 304): the web server then passes the length on
/// instead of chunking. A 1xx or 204 response goes out without one even if the service gave
/// one, as hyper sends it.
pub(crate) fn write_head(
    out: &mut fcgi_server::Response,
    method: &Method,
    status: StatusCode,
    headers: &HeaderMap,
    exact_len: Option<u64>,
) -> Result<(), fcgi_server::Error> {
    out.set_status(status.as_u16());
    // RFC 9110 section 8.6: no Content-Length in a 1xx or 204 response. axum puts one
    // (`0`) on every response; hyper drops it for these, and so does the bridge.
    let no_length = status.is_informational() || status == StatusCode::NO_CONTENT;
    for (name, value) in headers {
        if is_passed_on(name) && !(no_length && name == CONTENT_LENGTH) {
            out.header_bytes(name.as_str(), value.as_bytes())?;
        }
    }
    let bodiless = no_length || status == StatusCode::NOT_MODIFIED;
    if let Some(len) = exact_len {
        if !headers.contains_key(CONTENT_LENGTH) && method != Method::HEAD && !bodiless {
            out.header("Content-Length", len.to_string())?;
        }
    }
    Ok(())
}

/// Writes `body` to `out` as it comes, as far as it is ready: each data frame is written when
/// the body yields it, and whatever is written goes to the web server (a flush) whenever the
/// body has no next frame ready (it returns `Pending`), so a frame never waits in a buffer for
/// the next one. Frames that come back to back are written together, in records of up to 64
/// KiB (the response's own buffering). `unflushed` says whether bytes (or the header) wait to
/// be flushed, between polls. Writes wait while the web server reads slowly: that is the
/// backpressure. Trailers are dropped (FastCGI has no place for them).
///
/// `Ready` at the end of the body, or with the first error of the body or of a write: the
/// request then ends as a failed handler, and fcgi-server answers 500 if nothing went out
/// yet, or else cuts the response short so that the web server does not pass a part on as
/// the whole.
pub(crate) fn poll_write_body<B>(
    out: &mut fcgi_server::Response,
    mut body: Pin<&mut B>,
    unflushed: &mut bool,
    cx: &mut Context<'_>,
) -> Poll<Result<(), fcgi_server::Error>>
where
    B: HttpBody,
    B::Error: Into<fcgi_server::Error>,
{
    loop {
        match body.as_mut().poll_frame(cx) {
            Poll::Pending => {
                if *unflushed {
                    if let Err(e) = out.flush() {
                        return Poll::Ready(Err(e.into()));
                    }
                    *unflushed = false;
                }
                return Poll::Pending;
            }
            Poll::Ready(None) => return Poll::Ready(Ok(())),
            Poll::Ready(Some(Err(e))) => return Poll::Ready(Err(e.into())),
            Poll::Ready(Some(Ok(frame))) => {
                if let Ok(mut data) = frame.into_data() {
                    while data.has_remaining() {
                        let chunk = data.chunk();
                        if let Err(e) = out.write_all(chunk) {
                            return Poll::Ready(Err(e.into()));
                        }
                        let written = chunk.len();
                        data.advance(written);
                        *unflushed = true;
                    }
                }
            }
        }
    }
}
