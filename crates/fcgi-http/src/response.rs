//! An `http::Response` written out as the FastCGI response: status, headers, then the body
//! frame by frame as the service yields it.

use std::future::poll_fn;
use std::io::Write;
use std::pin::pin;
use std::task::Poll;

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
/// instead of chunking.
pub(crate) fn write_head(
    out: &mut fcgi_server::Response,
    method: &Method,
    status: StatusCode,
    headers: &HeaderMap,
    exact_len: Option<u64>,
) -> Result<(), fcgi_server::Error> {
    out.set_status(status.as_u16());
    for (name, value) in headers {
        if is_passed_on(name) {
            out.header_bytes(name.as_str(), value.as_bytes())?;
        }
    }
    let bodiless = status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED;
    if let Some(len) = exact_len {
        if !headers.contains_key(CONTENT_LENGTH) && method != Method::HEAD && !bodiless {
            out.header("Content-Length", len.to_string())?;
        }
    }
    Ok(())
}

/// Writes `body` to `out` as it comes: each data frame is written when the body yields it,
/// and whatever is written goes to the web server (a flush) whenever the body has no next
/// frame ready (it returns `Pending`), so a frame never waits in a buffer for the next one.
/// Frames that come back to back are written together, in records of up to 64 KiB (the
/// response's own buffering). Writes wait while the web server reads slowly: that is the
/// backpressure, and it holds only this request's thread. Trailers are dropped (FastCGI has
/// no place for them).
///
/// An error of the body, or of a write, is returned: the handler returns it, and fcgi-server
/// answers 500 if nothing went out yet, or else cuts the response short so that the web
/// server does not pass a part on as the whole.
pub(crate) async fn write_body<B>(
    out: &mut fcgi_server::Response,
    body: B,
) -> Result<(), fcgi_server::Error>
where
    B: HttpBody,
    B::Error: Into<fcgi_server::Error>,
{
    let mut body = pin!(body);
    // Bytes (or the header) written but not yet flushed.
    let mut unflushed = !out.headers_sent();
    loop {
        let frame = poll_fn(|cx| match body.as_mut().poll_frame(cx) {
            Poll::Pending if unflushed => match out.flush() {
                Ok(()) => {
                    unflushed = false;
                    Poll::Pending
                }
                Err(e) => Poll::Ready(Some(Err(e.into()))),
            },
            Poll::Pending => Poll::Pending,
            Poll::Ready(frame) => Poll::Ready(frame.map(|frame| frame.map_err(Into::into))),
        })
        .await;
        match frame {
            None => return Ok(()),
            Some(Err(e)) => return Err(e),
            Some(Ok(frame)) => {
                if let Ok(mut data) = frame.into_data() {
                    while data.has_remaining() {
                        let chunk = data.chunk();
                        out.write_all(chunk)?;
                        let written = chunk.len();
                        data.advance(written);
                        unflushed = true;
                    }
                }
            }
        }
    }
}
