//! HTTP-style messages: a small HTTP/1.1 client over [`std::net::TcpStream`] ([`get`],
//! [`post`], [`HttpStream`]: one request per connection, with timeouts), and the header
//! parsing it shares with the CGI responses of [`crate::raw::Reply`].

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// How long the HTTP client waits for one read or write.
const IO_TIMEOUT: Duration = Duration::from_secs(30);

/// Where `needle` first occurs in `haystack`.
pub(crate) fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|window| window == needle)
}

/// Splits a message at the blank line that ends its header block: the header lines (the
/// blank line left out) and what follows. `None` if the header block is not complete.
pub(crate) fn split_head(message: &[u8]) -> Option<(&[u8], &[u8])> {
    // A CGI head may be empty (no headers: status 200, RFC 3875 section 6.3.3).
    if let Some(body) = message.strip_prefix(b"\r\n") {
        return Some((&[], body));
    }
    find(message, b"\r\n\r\n").map(|end| (&message[..end], &message[end + 4..]))
}

/// `Name: value` header lines as trimmed pairs, in order; a line without a colon is skipped.
pub(crate) fn parse_headers<'a>(lines: impl Iterator<Item = &'a str>) -> Vec<(String, String)> {
    lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_owned(), value.trim().to_owned()))
        .collect()
}

/// The value of the first header called `name` (case-insensitive).
pub(crate) fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
}

/// An HTTP response: status, headers in order, and the body (chunked encoding undone).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpResponse {
    /// The status code.
    pub status: u16,
    /// Header names and values, as sent.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// The first header called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }

    /// The body as text, for messages.
    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// One HTTP/1.1 request on its own connection (`Connection: close`), written in parts.
#[derive(Debug)]
pub struct HttpStream {
    stream: TcpStream,
}

impl HttpStream {
    /// Connects to 127.0.0.1:`port`, with read and write timeouts.
    pub fn connect(port: u16) -> io::Result<HttpStream> {
        let stream = TcpStream::connect(("127.0.0.1", port))?;
        stream.set_read_timeout(Some(crate::settings::scaled(IO_TIMEOUT)))?;
        stream.set_write_timeout(Some(crate::settings::scaled(IO_TIMEOUT)))?;
        Ok(HttpStream { stream })
    }

    /// Sends the request line and headers; `body_len` becomes `Content-Length`.
    pub fn send_head(
        &mut self,
        method: &str,
        path: &str,
        content_type: Option<&str>,
        body_len: Option<usize>,
    ) -> io::Result<()> {
        let mut head =
            format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
        if let Some(content_type) = content_type {
            head += &format!("Content-Type: {content_type}\r\n");
        }
        if let Some(len) = body_len {
            head += &format!("Content-Length: {len}\r\n");
        }
        head += "\r\n";
        self.stream.write_all(head.as_bytes())
    }

    /// Sends (part of) the body.
    pub fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes)
    }

    /// Reads the whole response, until the server closes the connection. (The write side stays
    /// open: nginx takes a half-closed connection for a client that went away, and answers
    /// nothing.)
    pub fn read_response(mut self) -> io::Result<HttpResponse> {
        let mut raw = Vec::new();
        self.stream.read_to_end(&mut raw)?;
        parse_response(&raw)
    }
}

/// `GET path` from 127.0.0.1:`port`.
pub fn get(port: u16, path: &str) -> io::Result<HttpResponse> {
    let mut stream = HttpStream::connect(port)?;
    stream.send_head("GET", path, None, None)?;
    stream.read_response()
}

/// `POST path` with `body` to 127.0.0.1:`port`.
pub fn post(port: u16, path: &str, content_type: &str, body: &[u8]) -> io::Result<HttpResponse> {
    let mut stream = HttpStream::connect(port)?;
    stream.send_head("POST", path, Some(content_type), Some(body.len()))?;
    stream.send(body)?;
    stream.read_response()
}

fn bad(message: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message.into())
}

/// Parses a whole HTTP/1.x response: status line, headers, and a body that is chunked, has a
/// Content-Length, or runs to the end.
pub fn parse_response(raw: &[u8]) -> io::Result<HttpResponse> {
    let (head, rest) =
        split_head(raw).ok_or_else(|| bad(format!("no complete header in {} bytes", raw.len())))?;
    let head = std::str::from_utf8(head).map_err(|_| bad("header is not UTF-8"))?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| bad(format!("bad status line {status_line:?}")))?;
    let mut response = HttpResponse { status, headers: parse_headers(lines), body: Vec::new() };
    let chunked = response
        .header("Transfer-Encoding")
        .is_some_and(|te| te.to_ascii_lowercase().contains("chunked"));
    response.body = if chunked {
        dechunk(rest)?
    } else if let Some(len) = response.header("Content-Length") {
        let len: usize = len.parse().map_err(|_| bad(format!("Content-Length {len:?}")))?;
        if rest.len() < len {
            return Err(bad(format!("body cut short: {} of {len} bytes", rest.len())));
        }
        rest[..len].to_vec()
    } else {
        rest.to_vec()
    };
    Ok(response)
}

fn dechunk(mut rest: &[u8]) -> io::Result<Vec<u8>> {
    let mut body = Vec::with_capacity(rest.len());
    loop {
        let line_end =
            find(rest, b"\r\n").ok_or_else(|| bad("chunked body cut short (no chunk size)"))?;
        let size_text = std::str::from_utf8(&rest[..line_end]).map_err(|_| bad("chunk size"))?;
        let size_text = size_text.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|_| bad(format!("chunk size {size_text:?}")))?;
        rest = &rest[line_end + 2..];
        if size == 0 {
            return Ok(body);
        }
        if rest.len() < size + 2 {
            return Err(bad(format!("chunk cut short: {} of {size} bytes", rest.len())));
        }
        body.extend_from_slice(&rest[..size]);
        rest = &rest[size + 2..];
    }
}
