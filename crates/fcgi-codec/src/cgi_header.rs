//! The CGI response head (RFC 3875 section 6): header lines up to an empty line, at the front
//! of a CGI program's stdout or a FastCGI application's `FCGI_STDOUT`.
//!
//! One parser for fcgi-rs: the CGI gateway feeds a program's output to a [`HeaderParser`] as
//! it arrives; the FastCGI client calls [`parse_head`] on what it has received. Names, values
//! and `Status` follow the rules of [`crate::http`], which the server's `Response::header`
//! applies too.
//!
//! Pure: no I/O. Lines end with LF or CRLF; the head ends with an empty line and is at most
//! [`MAX_HEADER_BYTES`] long, that empty line included. Never panics on any input.
//!
//! ```
//! use fcgi_codec::cgi_header::{parse_head, Disposition};
//!
//! let stdout = b"Status: 404 Not Found\r\nContent-Type: text/html\r\n\r\n<h1>gone</h1>";
//! let (head, len) = parse_head(stdout)?.expect("the head is complete");
//! assert_eq!((head.status, head.reason.as_deref()), (Some(404), Some("Not Found")));
//! assert_eq!(head.header("content-type"), Some("text/html"));
//! assert_eq!(head.disposition(), Disposition::Document { status: 404 });
//! assert_eq!(&stdout[len..], b"<h1>gone</h1>");
//!
//! // Not all of the head has come yet: no head, and no error either.
//! assert_eq!(parse_head(b"Content-Type: text/pl")?, None);
//! # Ok::<(), fcgi_codec::cgi_header::HeaderError>(())
//! ```

use std::fmt;

use crate::http::{self, FieldError, StatusError};

/// The largest head accepted, in bytes, its empty line included. Far above any real CGI head
/// (git http-backend writes about 200 bytes) and eight times nginx's default
/// `fastcgi_buffer_size` (4 or 8 KiB), which is all nginx itself accepts for a FastCGI head;
/// small enough that a peer writing garbage without an empty line is stopped before it costs
/// memory.
pub const MAX_HEADER_BYTES: usize = 64 * 1024;

/// How much of a bad line an error quotes, in characters: enough to recognise it, not 64 KiB
/// of it in a log line.
const EXCERPT_CHARS: usize = 80;

/// Why a head is not valid.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HeaderError {
    /// No empty line within [`MAX_HEADER_BYTES`].
    TooLarge,
    /// The head is empty: the first line is blank. RFC 3875 section 6.2 wants at least one
    /// header; whether to accept an empty head anyway is the caller's choice (the FastCGI
    /// client does, as nginx does; the CGI gateway does not).
    Empty,
    /// A line that is not `Name: value` (nor, on the first line, an `HTTP/1.x NNN` status
    /// line).
    BadLine {
        /// Which line, from 1.
        line: usize,
        /// The line, decoded lossily and cut to 80 characters.
        text: String,
        /// What is wrong with it.
        why: FieldError,
    },
    /// A `Status` (or NPH status line) that is not a three-digit code from 100 to 599 and an
    /// optional reason phrase.
    BadStatus {
        /// The field's value (for an NPH line, what follows the version), decoded lossily.
        value: String,
        /// What is wrong with it.
        why: StatusError,
    },
    /// `Status` or `Location` given twice.
    Duplicate(&'static str),
}

impl fmt::Display for HeaderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HeaderError::TooLarge => {
                write!(f, "no end of the header block within {MAX_HEADER_BYTES} bytes")
            }
            HeaderError::Empty => f.write_str("the header block is empty"),
            HeaderError::BadLine { line, text, why } => {
                write!(f, "line {line} is not a header line ({why}): {text:?}")
            }
            HeaderError::BadStatus { value, why } => {
                write!(f, "not a valid Status ({why}): {value:?}")
            }
            HeaderError::Duplicate(name) => write!(f, "{name} given twice"),
        }
    }
}

impl std::error::Error for HeaderError {}

/// A parsed head.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Head {
    /// `Status` (or an NPH program's `HTTP/1.1 NNN` first line): the code, in
    /// [`http::STATUS_CODES`]. `None` when the head has no `Status`: the CGI default applies
    /// (see [`status_or_default`](Head::status_or_default)).
    pub status: Option<u16>,
    /// The reason phrase after the code, if there was one, decoded lossily.
    pub reason: Option<String>,
    /// Every header other than `Status`, in order, names as sent, values without the spaces
    /// around them; `Location` and `Content-Type` among them. Values that are not UTF-8 are
    /// converted lossily (U+FFFD): the `fcgi_server::Response` API takes `&str`.
    pub headers: Vec<(String, String)>,
}

/// What a head asks a CGI gateway to do (RFC 3875 section 6.2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Disposition {
    /// A document (6.2.1), or a client redirect with a document (6.2.4): send the status and
    /// the headers, then the body.
    Document {
        /// `Status`, 200 by default, 302 by default when there is a `Location`.
        status: u16,
    },
    /// A local redirect (6.2.2): `Location` is a path on this server and there is no `Status`.
    /// The gateway answers with what that path gives to a GET.
    LocalRedirect {
        /// The path, with its query string if any.
        path: String,
    },
}

impl Head {
    /// The status: `Status` if given, else 302 when there is a `Location` (a redirect, RFC
    /// 3875 section 6.2.3), else 200.
    ///
    /// ```
    /// use fcgi_codec::cgi_header::parse_head;
    ///
    /// let (head, _) = parse_head(b"Location: https://example.com/\n\n")?.unwrap();
    /// assert_eq!((head.status, head.status_or_default()), (None, 302));
    /// # Ok::<(), fcgi_codec::cgi_header::HeaderError>(())
    /// ```
    pub fn status_or_default(&self) -> u16 {
        match (self.status, self.location()) {
            (Some(status), _) => status,
            (None, Some(_)) => 302,
            (None, None) => 200,
        }
    }

    /// What this head asks for. A `Location` that starts with one `/` and comes without a
    /// `Status` is a local redirect; anything else is a document with
    /// [`status_or_default`](Head::status_or_default).
    pub fn disposition(&self) -> Disposition {
        match (self.location(), self.status) {
            (Some(location), None) if is_local_path(location) => {
                Disposition::LocalRedirect { path: location.to_owned() }
            }
            _ => Disposition::Document { status: self.status_or_default() },
        }
    }

    /// The `Location` header's value, if there is one.
    pub fn location(&self) -> Option<&str> {
        self.header("Location")
    }

    /// The value of the first header called `name` (case-insensitive); `Status` is not among
    /// the headers.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// Writes the head as CRLF lines and the empty line that ends it: `Status` first when the
    /// head has one, then the headers in order. A head that [`parse_head`] returned comes back
    /// the same from parsing these bytes. Nothing is checked: a head built by hand with a CR
    /// in a value writes a broken block.
    ///
    /// ```
    /// use fcgi_codec::cgi_header::Head;
    ///
    /// let head = Head {
    ///     status: Some(404),
    ///     reason: None,
    ///     headers: vec![("Content-Type".into(), "text/plain".into())],
    /// };
    /// let mut out = Vec::new();
    /// head.write_to(&mut out);
    /// assert_eq!(out, b"Status: 404\r\nContent-Type: text/plain\r\n\r\n");
    /// ```
    pub fn write_to(&self, dst: &mut Vec<u8>) {
        if let Some(code) = self.status {
            dst.extend_from_slice(format!("Status: {code}").as_bytes());
            if let Some(reason) = &self.reason {
                dst.push(b' ');
                dst.extend_from_slice(reason.as_bytes());
            }
            dst.extend_from_slice(b"\r\n");
        }
        for (name, value) in &self.headers {
            dst.extend_from_slice(name.as_bytes());
            dst.extend_from_slice(b": ");
            dst.extend_from_slice(value.as_bytes());
            dst.extend_from_slice(b"\r\n");
        }
        dst.extend_from_slice(b"\r\n");
    }
}

/// An absolute path (`/x`), not a network-path reference (`//host/x`), which names another
/// server.
fn is_local_path(location: &str) -> bool {
    location.starts_with('/') && !location.starts_with("//")
}

/// Reads the head at the front of `buf`: `Ok(None)` while the empty line that ends it has not
/// come, else the head and the bytes it took (its empty line included). The body follows.
///
/// ```
/// use fcgi_codec::cgi_header::parse_head;
///
/// let output = b"Status: 201 Created\r\nLocation: /items/7\r\n\r\n{}";
/// let (head, taken) = parse_head(output)?.expect("the head is complete");
/// assert_eq!((head.status, head.location()), (Some(201), Some("/items/7")));
/// assert_eq!(&output[taken..], b"{}");
/// assert!(parse_head(b"Content-Type: text/plain\r\n")?.is_none()); // not yet
/// # Ok::<(), fcgi_codec::cgi_header::HeaderError>(())
/// ```
pub fn parse_head(buf: &[u8]) -> Result<Option<(Head, usize)>, HeaderError> {
    parse_from(buf, 0)
}

/// [`parse_head`], the search for the end resumed at `from` (everything before it has been
/// searched and holds no end).
fn parse_from(buf: &[u8], from: usize) -> Result<Option<(Head, usize)>, HeaderError> {
    match find_end(buf, from) {
        Some((_, body_start)) if body_start > MAX_HEADER_BYTES => Err(HeaderError::TooLarge),
        Some((block_end, body_start)) => Ok(Some((parse_block(&buf[..block_end])?, body_start))),
        // Any end still to come would take the head past the limit.
        None if buf.len() >= MAX_HEADER_BYTES => Err(HeaderError::TooLarge),
        None => Ok(None),
    }
}

/// The result of feeding bytes to a [`HeaderParser`].
#[derive(Debug, PartialEq, Eq)]
pub enum Progress {
    /// The head is not complete yet: feed more.
    Partial,
    /// The head is complete; `body` holds what followed it in the bytes fed so far.
    Complete {
        /// The head.
        head: Head,
        /// The first bytes of the body.
        body: Vec<u8>,
    },
}

/// Collects output until its head is complete, then parses it: for a stream that comes in
/// pieces and is not kept (a CGI program's stdout). An empty head is an error
/// ([`HeaderError::Empty`]).
///
/// ```
/// use fcgi_codec::cgi_header::{Disposition, HeaderParser, Progress};
///
/// let mut parser = HeaderParser::new();
/// assert_eq!(parser.push(b"Content-Type: text/plain\r\nSta").unwrap(), Progress::Partial);
/// let Progress::Complete { head, body } = parser.push(b"tus: 404 Gone\r\n\r\nno such thing").unwrap()
/// else { panic!("the head is complete") };
/// assert_eq!(head.disposition(), Disposition::Document { status: 404 });
/// assert_eq!(head.header("content-type"), Some("text/plain"));
/// assert_eq!(body, b"no such thing");
/// ```
#[derive(Debug, Default)]
pub struct HeaderParser {
    /// The head so far: at most [`MAX_HEADER_BYTES`].
    buf: Vec<u8>,
    /// Where to resume the search for the empty line: everything before it has been searched.
    searched: usize,
}

impl HeaderParser {
    /// A parser that has seen nothing.
    pub fn new() -> HeaderParser {
        HeaderParser::default()
    }

    /// Bytes fed so far and kept (only before the head is complete); at most
    /// [`MAX_HEADER_BYTES`].
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Feeds the next bytes.
    pub fn push(&mut self, chunk: &[u8]) -> Result<Progress, HeaderError> {
        // Never keep more than the limit: a head that fits ends within it.
        let room = MAX_HEADER_BYTES.saturating_sub(self.buf.len());
        let (kept, rest) = chunk.split_at(chunk.len().min(room));
        self.buf.extend_from_slice(kept);
        match parse_from(&self.buf, self.searched)? {
            Some((head, len)) => {
                let mut body = self.buf.split_off(len);
                body.extend_from_slice(rest);
                self.buf = Vec::new();
                self.searched = 0;
                Ok(Progress::Complete { head, body })
            }
            None => {
                // The end may straddle this chunk and the next: search again from the last
                // line start at the earliest.
                self.searched = self.buf.len().saturating_sub(2);
                Ok(Progress::Partial)
            }
        }
    }
}

/// Where the head ends: the end of its last line (before the empty line), and where the body
/// starts. The empty line may be LF or CRLF, as may the line before it.
fn find_end(buf: &[u8], from: usize) -> Option<(usize, usize)> {
    if from == 0 {
        // An empty first line: an empty head.
        if buf.starts_with(b"\n") {
            return Some((0, 1));
        }
        if buf.starts_with(b"\r\n") {
            return Some((0, 2));
        }
    }
    let mut at = from;
    while let Some(offset) = buf.get(at..)?.iter().position(|&b| b == b'\n') {
        let newline = at + offset;
        let rest = &buf[newline + 1..];
        if rest.starts_with(b"\n") {
            return Some((newline + 1, newline + 2));
        }
        if rest.starts_with(b"\r\n") {
            return Some((newline + 1, newline + 3));
        }
        at = newline + 1;
    }
    None
}

/// Parses the header lines: `block` is every line of the head but the empty one, each ending
/// with LF or CRLF.
fn parse_block(block: &[u8]) -> Result<Head, HeaderError> {
    let Some(block) = block.strip_suffix(b"\n") else { return Err(HeaderError::Empty) };
    let mut head = Head::default();
    for (index, raw) in block.split(|&b| b == b'\n').enumerate() {
        let line = raw.strip_suffix(b"\r").unwrap_or(raw);
        let bad_line = |why| HeaderError::BadLine { line: index + 1, text: excerpt(line), why };
        if index == 0 && line.starts_with(b"HTTP/") {
            // An NPH program's status line: `HTTP/1.1 200 OK`. Its code counts as a Status.
            http::check_value(line).map_err(bad_line)?;
            let value = line.iter().position(|&b| b == b' ').map_or(&b""[..], |at| &line[at..]);
            set_status(&mut head, value)?;
            continue;
        }
        let colon =
            line.iter().position(|&b| b == b':').ok_or_else(|| bad_line(FieldError::NoColon))?;
        let (name, value) = (&line[..colon], http::trim_ows(&line[colon + 1..]));
        http::check_name(name).map_err(bad_line)?;
        http::check_value(value).map_err(bad_line)?;
        if name.eq_ignore_ascii_case(b"status") {
            set_status(&mut head, value)?;
            continue;
        }
        if name.eq_ignore_ascii_case(b"location") && head.location().is_some() {
            return Err(HeaderError::Duplicate("Location"));
        }
        // The name is ASCII (checked above).
        let name = String::from_utf8_lossy(name).into_owned();
        head.headers.push((name, String::from_utf8_lossy(value).into_owned()));
    }
    Ok(head)
}

/// Sets the head's status from a `Status` value, once.
fn set_status(head: &mut Head, value: &[u8]) -> Result<(), HeaderError> {
    if head.status.is_some() {
        return Err(HeaderError::Duplicate("Status"));
    }
    let status = http::parse_status(value).map_err(|why| HeaderError::BadStatus {
        value: String::from_utf8_lossy(http::trim_ows(value)).into_owned(),
        why,
    })?;
    head.status = Some(status.code);
    head.reason = status.reason.map(|reason| String::from_utf8_lossy(reason).into_owned());
    Ok(())
}

fn excerpt(line: &[u8]) -> String {
    String::from_utf8_lossy(line).chars().take(EXCERPT_CHARS).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parse(bytes: &[u8]) -> Result<Progress, HeaderError> {
        HeaderParser::new().push(bytes)
    }

    fn complete(bytes: &[u8]) -> (Head, Vec<u8>) {
        match parse(bytes) {
            Ok(Progress::Complete { head, body }) => (head, body),
            other => panic!("{:?}: {other:?}", String::from_utf8_lossy(bytes)),
        }
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter().map(|(n, v)| ((*n).to_owned(), (*v).to_owned())).collect()
    }

    /// The shared rules, line by line: what a head line may be, and what it gives.
    #[test]
    fn the_rules_for_one_line() {
        enum Expect {
            Header(&'static str, &'static str),
            Status(u16, Option<&'static str>),
            BadLine(FieldError),
            BadStatus(StatusError),
        }
        use Expect::*;
        for (line, expect) in [
            (&b"Content-Type: text/html"[..], Header("Content-Type", "text/html")),
            (b"x:y", Header("x", "y")),
            (b"X-Empty:", Header("X-Empty", "")),
            (b"X-Ws: \t a b \t ", Header("X-Ws", "a b")),
            (b"X-Colon: a: b", Header("X-Colon", "a: b")),
            (b"X-Obs: caf\xc3\xa9", Header("X-Obs", "caf\u{e9}")),
            (b"X-Bin: \xff", Header("X-Bin", "\u{fffd}")),
            (b"X-Ctl: a\x01b", Header("X-Ctl", "a\u{1}b")),
            (b"!#$%&'*+-.^_`|~: t", Header("!#$%&'*+-.^_`|~", "t")),
            (b"Status: 200", Status(200, None)),
            (b"status:   503   Service Unavailable ", Status(503, Some("Service Unavailable"))),
            (b"STATUS: 415 Unsupported Media Type", Status(415, Some("Unsupported Media Type"))),
            (b"HTTP/1.1 403 Forbidden", Status(403, Some("Forbidden"))),
            (b"HTTP/1.0  204", Status(204, None)),
            (b"no colon here", BadLine(FieldError::NoColon)),
            (b": x", BadLine(FieldError::EmptyName)),
            (b"Bad Name: x", BadLine(FieldError::NameByte { at: 3, byte: b' ' })),
            (b"Name : x", BadLine(FieldError::NameByte { at: 4, byte: b' ' })),
            (b" folded: x", BadLine(FieldError::NameByte { at: 0, byte: b' ' })),
            (b"(x): y", BadLine(FieldError::NameByte { at: 0, byte: b'(' })),
            (b"caf\xc3\xa9: y", BadLine(FieldError::NameByte { at: 3, byte: 0xc3 })),
            (b"A: 1\rB: 2", BadLine(FieldError::ValueByte { at: 1, byte: b'\r' })),
            (b"A: x\0y", BadLine(FieldError::ValueByte { at: 1, byte: 0 })),
            (b"HTTP/1.1 200\0", BadLine(FieldError::ValueByte { at: 12, byte: 0 })),
            (b"Status: 99", BadStatus(StatusError::Malformed)),
            (b"Status: 600 x", BadStatus(StatusError::OutOfRange { code: 600 })),
            (b"Status: 099", BadStatus(StatusError::OutOfRange { code: 99 })),
            (b"Status: abc", BadStatus(StatusError::Malformed)),
            (b"Status:", BadStatus(StatusError::Malformed)),
            (b"Status: 200OK", BadStatus(StatusError::Malformed)),
            (b"HTTP/1.1", BadStatus(StatusError::Malformed)),
            (b"HTTP/1.1 1000 x", BadStatus(StatusError::Malformed)),
        ] {
            for eol in ["\n", "\r\n"] {
                let mut block = line.to_vec();
                block.extend_from_slice(eol.as_bytes());
                block.extend_from_slice(eol.as_bytes());
                let shown = String::from_utf8_lossy(&block);
                let result = parse_head(&block);
                match &expect {
                    Header(name, value) => {
                        let (head, len) = result.unwrap().unwrap();
                        assert_eq!((head.status, len), (None, block.len()), "{shown:?}");
                        assert_eq!(head.headers, pairs(&[(name, value)]), "{shown:?}");
                    }
                    Status(code, reason) => {
                        let (head, _) = result.unwrap().unwrap();
                        assert_eq!(head.status, Some(*code), "{shown:?}");
                        assert_eq!(head.reason.as_deref(), *reason, "{shown:?}");
                        assert!(head.headers.is_empty(), "{shown:?}");
                    }
                    BadLine(why) => match result {
                        Err(HeaderError::BadLine { line: 1, why: got, .. }) => {
                            assert_eq!(got, *why, "{shown:?}")
                        }
                        other => panic!("{shown:?}: {other:?}"),
                    },
                    BadStatus(why) => match result {
                        Err(HeaderError::BadStatus { why: got, .. }) => {
                            assert_eq!(got, *why, "{shown:?}")
                        }
                        other => panic!("{shown:?}: {other:?}"),
                    },
                }
            }
        }
    }

    #[test]
    fn a_document_without_status_is_200() {
        let (head, body) = complete(b"Content-Type: text/html\n\n<p>hi</p>");
        assert_eq!(head.disposition(), Disposition::Document { status: 200 });
        assert_eq!(head.header("Content-Type"), Some("text/html"));
        assert_eq!(body, b"<p>hi</p>");
    }

    #[test]
    fn crlf_lf_and_mixed_line_ends() {
        for block in [
            &b"A: 1\r\nB: 2\r\n\r\nbody"[..],
            b"A: 1\nB: 2\n\nbody",
            b"A: 1\r\nB: 2\n\r\nbody",
            b"A: 1\nB: 2\r\n\nbody",
        ] {
            let (head, body) = complete(block);
            assert_eq!(head.headers, pairs(&[("A", "1"), ("B", "2")]));
            assert_eq!(body, b"body", "{block:?}");
        }
    }

    #[test]
    fn status_sets_the_code_and_is_not_passed_on() {
        let (head, _) = complete(b"Status: 404 Not Found\r\nContent-Type: text/plain\r\n\r\n");
        assert_eq!(head.disposition(), Disposition::Document { status: 404 });
        assert_eq!(head.reason.as_deref(), Some("Not Found"));
        assert!(head.header("Status").is_none());
        let (head, _) = complete(b"status:201\n\n");
        assert_eq!((head.status, head.reason), (Some(201), None));
    }

    #[test]
    fn bad_and_repeated_statuses_are_refused() {
        for block in
            [&b"Status: 99\n\n"[..], b"Status: 600 x\n\n", b"Status: abc\n\n", b"Status:\n\n"]
        {
            assert!(matches!(parse(block), Err(HeaderError::BadStatus { .. })), "{block:?}");
        }
        assert_eq!(parse(b"Status: 200\nStatus: 404\n\n"), Err(HeaderError::Duplicate("Status")));
        assert_eq!(
            parse(b"HTTP/1.1 200 OK\nStatus: 404\n\n"),
            Err(HeaderError::Duplicate("Status"))
        );
        assert_eq!(
            parse(b"Location: /a\nlocation: /b\n\n"),
            Err(HeaderError::Duplicate("Location"))
        );
    }

    #[test]
    fn local_and_client_redirects() {
        let (head, _) = complete(b"Location: /other/script?x=1\n\n");
        assert_eq!(
            head.disposition(),
            Disposition::LocalRedirect { path: "/other/script?x=1".into() }
        );
        assert_eq!(head.status_or_default(), 302);
        let (head, _) = complete(b"Location: https://example.com/\n\n");
        assert_eq!(head.disposition(), Disposition::Document { status: 302 });
        assert_eq!(head.location(), Some("https://example.com/"));
        let (head, _) = complete(b"Location: //example.com/\n\n");
        assert_eq!(head.disposition(), Disposition::Document { status: 302 });
        let (head, _) = complete(b"Status: 301\nLocation: /moved\n\n");
        assert_eq!(head.disposition(), Disposition::Document { status: 301 });
        // Location stays among the headers, in its place.
        let (head, _) = complete(b"X-A: 1\nLocation: /moved\nX-B: 2\n\n");
        assert_eq!(head.headers, pairs(&[("X-A", "1"), ("Location", "/moved"), ("X-B", "2")]));
    }

    #[test]
    fn an_nph_status_line_counts_as_status() {
        let (head, body) =
            complete(b"HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\n\r\nno");
        assert_eq!(head.disposition(), Disposition::Document { status: 403 });
        assert_eq!(head.reason.as_deref(), Some("Forbidden"));
        assert_eq!(body, b"no");
        // Only as the first line.
        assert!(matches!(
            parse(b"A: 1\nHTTP/1.1 200 OK\n\n"),
            Err(HeaderError::BadLine { line: 2, why: FieldError::NoColon, .. })
        ));
    }

    #[test]
    fn malformed_blocks_are_refused() {
        assert_eq!(parse(b"\n\nbody"), Err(HeaderError::Empty));
        assert_eq!(parse(b"\r\nbody"), Err(HeaderError::Empty));
        assert_eq!(parse_head(b"\n"), Err(HeaderError::Empty));
        for block in [&b"hello world\n\n"[..], b": x\n\n", b"Bad Name: x\n\n", b"A: 1\rB: 2\n\n"] {
            assert!(matches!(parse(block), Err(HeaderError::BadLine { .. })), "{block:?}");
        }
        // The line number and an excerpt, not the whole line.
        let mut long = b"A: 1\nB: 2\n".to_vec();
        long.extend(std::iter::repeat_n(b'x', 1000));
        long.extend_from_slice(b"\n\n");
        match parse(&long) {
            Err(HeaderError::BadLine { line: 3, text, why: FieldError::NoColon }) => {
                assert_eq!(text.len(), EXCERPT_CHARS)
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn every_prefix_is_partial_and_every_split_gives_the_same_result() {
        let block = b"Status: 200 OK\r\nContent-Type: text/plain\r\nX-A: b\r\n\r\nthe body";
        let end = block.len() - b"the body".len();
        for cut in 0..end {
            assert_eq!(parse(&block[..cut]), Ok(Progress::Partial), "prefix {cut}");
            assert_eq!(parse_head(&block[..cut]), Ok(None), "prefix {cut}");
        }
        assert_eq!(parse_head(block).unwrap().unwrap().1, end);
        let whole = complete(block);
        for cut in 0..block.len() {
            let mut parser = HeaderParser::new();
            let first = parser.push(&block[..cut]).unwrap();
            let result = match first {
                Progress::Complete { head, body } => {
                    let mut body = body;
                    body.extend_from_slice(&block[cut..]);
                    (head, body)
                }
                Progress::Partial => match parser.push(&block[cut..]).unwrap() {
                    Progress::Complete { head, body } => (head, body),
                    Progress::Partial => panic!("incomplete after cut {cut}"),
                },
            };
            assert_eq!(result, whole, "cut at {cut}");
        }
    }

    #[test]
    fn byte_by_byte_feeding_finds_the_end() {
        for block in [&b"A: 1\r\n\r\nx"[..], b"A: 1\n\nx", b"A: 1\r\n\nx", b"\r\nx", b"\nx"] {
            let mut parser = HeaderParser::new();
            let mut result = Ok(Progress::Partial);
            for (at, byte) in block.iter().enumerate() {
                result = parser.push(std::slice::from_ref(byte));
                if result != Ok(Progress::Partial) {
                    assert_eq!(at, block.len() - 2, "{block:?}");
                    break;
                }
            }
            let head = |progress| match progress {
                Ok(Progress::Complete { head, .. }) => Ok(head),
                other => Err(other),
            };
            assert_eq!(head(result), head(HeaderParser::new().push(block)), "{block:?}");
        }
    }

    #[test]
    fn the_head_is_capped() {
        let mut parser = HeaderParser::new();
        let line = b"X-Filler: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n";
        let mut result = Ok(Progress::Partial);
        while result == Ok(Progress::Partial) {
            result = parser.push(line);
            assert!(parser.buffered() <= MAX_HEADER_BYTES);
        }
        assert_eq!(result, Err(HeaderError::TooLarge));
        // No newline at all.
        let mut parser = HeaderParser::new();
        assert_eq!(parser.push(&vec![b'a'; MAX_HEADER_BYTES + 10]), Err(HeaderError::TooLarge));
        assert_eq!(parse_head(&vec![b'a'; MAX_HEADER_BYTES]), Err(HeaderError::TooLarge));
        assert_eq!(parse_head(&vec![b'a'; MAX_HEADER_BYTES - 1]), Ok(None));
        // A head of exactly the limit, its empty line included, fits; one byte more does not.
        for (eol, extra) in [("\n", 0), ("\r\n", 0), ("\n", 1), ("\r\n", 1)] {
            let mut head = b"X: ".to_vec();
            head.resize(MAX_HEADER_BYTES + extra - 2 * eol.len(), b'v');
            head.extend_from_slice(eol.as_bytes());
            head.extend_from_slice(eol.as_bytes());
            let mut input = head.clone();
            input.extend_from_slice(b"body");
            let expected =
                if extra == 0 { Ok(input.len() - 4) } else { Err(HeaderError::TooLarge) };
            assert_eq!(parse_head(&input).map(|h| h.unwrap().1), expected);
            let whole = HeaderParser::new().push(&input).map(|p| match p {
                Progress::Complete { body, .. } => body,
                Progress::Partial => panic!("partial"),
            });
            assert_eq!(whole, expected.map(|_| b"body".to_vec()), "{eol:?} {extra}");
        }
    }

    #[test]
    fn a_large_body_after_the_head_is_kept_whole() {
        let mut input = b"Content-Type: application/octet-stream\n\n".to_vec();
        input.extend(std::iter::repeat_n(7u8, 3 * MAX_HEADER_BYTES));
        let (_, body) = complete(&input);
        assert_eq!(body.len(), 3 * MAX_HEADER_BYTES);
    }

    /// One head line, made mostly of what makes lines interesting: the special names, token
    /// and non-token bytes, spaces, CR, NUL and obs-text.
    fn line() -> impl Strategy<Value = Vec<u8>> {
        let name = prop_oneof![
            1 => Just(b"Status".to_vec()),
            1 => Just(b"Location".to_vec()),
            1 => Just(b"HTTP/1.1".to_vec()),
            8 => "[A-Za-z0-9-]{1,8}".prop_map(String::into_bytes),
            1 => proptest::collection::vec(any::<u8>(), 0..4),
        ];
        let byte = prop_oneof![
            40 => proptest::sample::select(b"0123456789 \tabz/:".to_vec()),
            1 => Just(b'\r'),
            1 => Just(0u8),
            2 => Just(0xffu8),
            1 => any::<u8>(),
        ];
        let value = prop_oneof![
            3 => proptest::collection::vec(byte, 0..10),
            2 => "[ \t]*[1-6][0-9]{2}([ \t]+[A-Za-z ]{0,8})?".prop_map(String::into_bytes),
        ];
        let sep = prop_oneof![
            3 => Just(b": ".to_vec()),
            2 => Just(b":".to_vec()),
            1 => Just(b" ".to_vec()),
        ];
        let eol = prop_oneof![Just(b"\n".to_vec()), Just(b"\r\n".to_vec())];
        (name, sep, value, eol).prop_map(|(name, sep, value, eol)| [name, sep, value, eol].concat())
    }

    proptest! {
        // About a quarter of the generated heads are accepted: enough cases that a few hundred
        // round-trip.
        #![proptest_config(ProptestConfig::with_cases(1024))]

        #[test]
        fn never_panics_and_stays_bounded(chunks in proptest::collection::vec(
            proptest::collection::vec(any::<u8>(), 0..300), 0..20)) {
            let mut parser = HeaderParser::new();
            for chunk in &chunks {
                match parser.push(chunk) {
                    Ok(Progress::Partial) => prop_assert!(parser.buffered() <= MAX_HEADER_BYTES),
                    Ok(Progress::Complete { .. }) | Err(_) => break,
                }
            }
            let whole = chunks.concat();
            if let Ok(Some((_, len))) = parse_head(&whole) {
                prop_assert!(len <= MAX_HEADER_BYTES.min(whole.len()));
            }
        }

        /// Whatever is accepted writes out and parses back to the same head, and the
        /// incremental parser agrees with `parse_head` at any split.
        #[test]
        fn what_is_accepted_round_trips(
            lines in proptest::collection::vec(line(), 0..6),
            last_eol in prop_oneof![Just(&b"\n"[..]), Just(&b"\r\n"[..])],
            cut in 0usize..200,
        ) {
            let mut input = lines.concat();
            input.extend_from_slice(last_eol);
            input.extend_from_slice(b"body");
            let parsed = parse_head(&input);
            let cut = cut.min(input.len());
            let mut parser = HeaderParser::new();
            let split = parser.push(&input[..cut]).and_then(|first| match first {
                Progress::Partial => parser.push(&input[cut..]),
                Progress::Complete { head, mut body } => {
                    body.extend_from_slice(&input[cut..]);
                    Ok(Progress::Complete { head, body })
                }
            });
            match &parsed {
                Ok(Some((head, len))) => {
                    prop_assert_eq!(
                        &split,
                        &Ok(Progress::Complete { head: head.clone(), body: input[*len..].to_vec() })
                    );
                    if let Some(status) = head.status {
                        prop_assert!(http::is_status(status));
                    }
                    let mut out = Vec::new();
                    head.write_to(&mut out);
                    let again = parse_head(&out);
                    prop_assert_eq!(again, Ok(Some((head.clone(), out.len()))));
                }
                Ok(None) => prop_assert!(false, "the input ends with an empty line"),
                Err(e) => prop_assert_eq!(split.as_ref().map_err(|e| e.clone()).err(), Some(e.clone())),
            }
        }
    }
}
