//! The CGI response header block (RFC 3875 section 6): an incremental parser that is fed the
//! program's stdout as it arrives, and what the parsed block asks the gateway to do.
//!
//! Pure: no I/O. Lines end with LF or CRLF; the block ends with an empty line. Never panics on
//! any input; the block is capped at [`MAX_HEADER_BYTES`].

use std::fmt;

/// The largest header block accepted from a program, in bytes. Far above any real CGI header
/// block (git http-backend writes about 200 bytes), and small enough that a program writing
/// garbage without a blank line is stopped before it costs memory. nginx's own default for a
/// FastCGI header block (`fastcgi_buffer_size`) is 4 or 8 KiB.
pub const MAX_HEADER_BYTES: usize = 64 * 1024;

/// Why a program's header block is not valid.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HeaderError {
    /// No empty line within [`MAX_HEADER_BYTES`].
    TooLarge,
    /// The block is empty: the program's first line is blank.
    Empty,
    /// A line that is not `Name: value` (nor, on the first line, an `HTTP/1.x NNN` status
    /// line).
    BadLine(String),
    /// A `Status` that is not a three-digit code from 100 to 599.
    BadStatus(String),
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
            HeaderError::BadLine(line) => write!(f, "not a header line: {line:?}"),
            HeaderError::BadStatus(value) => write!(f, "not a valid Status: {value:?}"),
            HeaderError::Duplicate(name) => write!(f, "{name} given twice"),
        }
    }
}

impl std::error::Error for HeaderError {}

/// A parsed header block.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Head {
    /// `Status` (or an NPH program's `HTTP/1.1 NNN` first line): the code.
    pub status: Option<u16>,
    /// `Location`, as given.
    pub location: Option<String>,
    /// Every other header, in order, `Content-Type` among them. Values that are not UTF-8 are
    /// converted lossily (the `fcgi_server::Response` API takes `&str`).
    pub headers: Vec<(String, String)>,
}

/// What a header block asks for (RFC 3875 section 6.2).
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
    /// What this block asks for. A `Location` that starts with one `/` and comes without a
    /// `Status` is a local redirect; any other `Location` is a client redirect (302 unless a
    /// `Status` says otherwise); without a `Location`, a document (200 unless a `Status` says
    /// otherwise).
    pub fn disposition(&self) -> Disposition {
        match (&self.location, self.status) {
            (Some(location), None) if is_local_path(location) => {
                Disposition::LocalRedirect { path: location.clone() }
            }
            (Some(_), status) => Disposition::Document { status: status.unwrap_or(302) },
            (None, status) => Disposition::Document { status: status.unwrap_or(200) },
        }
    }

    /// The value of header `name` (case-insensitive) among the others.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// An absolute path (`/x`), not a network-path reference (`//host/x`), which names another
/// server.
fn is_local_path(location: &str) -> bool {
    location.starts_with('/') && !location.starts_with("//")
}

/// The result of feeding bytes to a [`HeaderParser`].
#[derive(Debug, PartialEq, Eq)]
pub enum Progress {
    /// The block is not complete yet: feed more.
    Partial,
    /// The block is complete; `body` holds what followed it in the bytes fed so far.
    Complete {
        /// The header block.
        head: Head,
        /// The first bytes of the body.
        body: Vec<u8>,
    },
}

/// Collects a program's output until its header block is complete, then parses it.
///
/// ```
/// use fcgi_cgi::headers::{Disposition, HeaderParser, Progress};
///
/// let mut parser = HeaderParser::new();
/// assert_eq!(parser.push(b"Content-Type: text/plain\r\nSta").unwrap(), Progress::Partial);
/// let Progress::Complete { head, body } = parser.push(b"tus: 404 Gone\r\n\r\nno such thing").unwrap()
/// else { panic!("the block is complete") };
/// assert_eq!(head.disposition(), Disposition::Document { status: 404 });
/// assert_eq!(head.header("content-type"), Some("text/plain"));
/// assert_eq!(body, b"no such thing");
/// ```
#[derive(Debug, Default)]
pub struct HeaderParser {
    buf: Vec<u8>,
    /// Where to resume the search for the empty line: everything before it has been searched.
    searched: usize,
}

impl HeaderParser {
    /// A parser that has seen nothing.
    pub fn new() -> HeaderParser {
        HeaderParser::default()
    }

    /// Bytes fed so far and kept (only before the block is complete).
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Feeds the next bytes of the program's stdout.
    pub fn push(&mut self, chunk: &[u8]) -> Result<Progress, HeaderError> {
        // Never keep more than the limit, plus the few bytes that may end the block.
        let room = (MAX_HEADER_BYTES + 2).saturating_sub(self.buf.len());
        self.buf.extend_from_slice(&chunk[..chunk.len().min(room)]);
        match find_end(&self.buf, self.searched) {
            Some((block_end, body_start)) => {
                if block_end > MAX_HEADER_BYTES {
                    return Err(HeaderError::TooLarge);
                }
                let head = parse_block(&self.buf[..block_end])?;
                let mut body = self.buf.split_off(body_start);
                if chunk.len() > room {
                    body.extend_from_slice(&chunk[room..]);
                }
                self.buf.clear();
                Ok(Progress::Complete { head, body })
            }
            None if self.buf.len() > MAX_HEADER_BYTES => Err(HeaderError::TooLarge),
            None => {
                // The end may straddle this chunk and the next: search again from the last
                // line start at the earliest.
                self.searched = self.buf.len().saturating_sub(2);
                Ok(Progress::Partial)
            }
        }
    }
}

/// Where the header block ends: the end of its last line (before the empty line), and where the
/// body starts. The empty line may be LF or CRLF, as may the line before it.
fn find_end(buf: &[u8], from: usize) -> Option<(usize, usize)> {
    if from == 0 {
        // An empty first line: an empty block, which the parser then refuses.
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

/// Parses the header lines (each ending with LF or CRLF; `block` ends after the last one).
fn parse_block(block: &[u8]) -> Result<Head, HeaderError> {
    let mut head = Head::default();
    let mut lines = block.split(|&b| b == b'\n').filter(|line| !line.is_empty()).peekable();
    let mut first = true;
    if lines.peek().is_none() {
        return Err(HeaderError::Empty);
    }
    for raw in lines {
        let line = raw.strip_suffix(b"\r").unwrap_or(raw);
        if first && line.starts_with(b"HTTP/") {
            // An NPH program's status line: `HTTP/1.1 200 OK`. Its code counts as a Status.
            first = false;
            let text = String::from_utf8_lossy(line);
            let code = text.split(' ').nth(1).unwrap_or_default();
            head.status = Some(parse_status(code)?);
            continue;
        }
        first = false;
        let colon = line.iter().position(|&b| b == b':');
        let Some(colon) = colon.filter(|&at| at > 0 && line[..at].iter().all(|&b| is_tchar(b)))
        else {
            return Err(HeaderError::BadLine(String::from_utf8_lossy(line).into_owned()));
        };
        let value = trim(&line[colon + 1..]);
        if value.iter().any(|&b| b == b'\r' || b == 0) {
            return Err(HeaderError::BadLine(String::from_utf8_lossy(line).into_owned()));
        }
        // The name is ASCII (checked above).
        let name = String::from_utf8_lossy(&line[..colon]).into_owned();
        let value = String::from_utf8_lossy(value).into_owned();
        if name.eq_ignore_ascii_case("status") {
            if head.status.is_some() {
                return Err(HeaderError::Duplicate("Status"));
            }
            head.status = Some(parse_status(value.split(' ').next().unwrap_or_default())?);
        } else if name.eq_ignore_ascii_case("location") {
            if head.location.is_some() {
                return Err(HeaderError::Duplicate("Location"));
            }
            head.location = Some(value);
        } else {
            head.headers.push((name, value));
        }
    }
    Ok(head)
}

fn parse_status(code: &str) -> Result<u16, HeaderError> {
    code.parse()
        .ok()
        .filter(|c| (100..=599).contains(c) && code.len() == 3)
        .ok_or_else(|| HeaderError::BadStatus(code.to_owned()))
}

/// A character of an HTTP token (RFC 9110 section 5.6.2): what a header name is made of.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn trim(mut value: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = value {
        value = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = value {
        value = rest;
    }
    value
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
            assert_eq!(head.headers, [("A".into(), "1".into()), ("B".into(), "2".into())]);
            assert_eq!(body, b"body", "{block:?}");
        }
    }

    #[test]
    fn status_sets_the_code_and_is_not_passed_on() {
        let (head, _) = complete(b"Status: 404 Not Found\r\nContent-Type: text/plain\r\n\r\n");
        assert_eq!(head.disposition(), Disposition::Document { status: 404 });
        assert!(head.header("Status").is_none());
        let (head, _) = complete(b"status:201\n\n");
        assert_eq!(head.status, Some(201));
    }

    #[test]
    fn bad_statuses_are_refused() {
        for block in
            [&b"Status: 99\n\n"[..], b"Status: 600 x\n\n", b"Status: abc\n\n", b"Status:\n\n"]
        {
            assert!(matches!(parse(block), Err(HeaderError::BadStatus(_))), "{block:?}");
        }
        assert_eq!(parse(b"Status: 200\nStatus: 404\n\n"), Err(HeaderError::Duplicate("Status")));
    }

    #[test]
    fn local_and_client_redirects() {
        let (head, _) = complete(b"Location: /other/script?x=1\n\n");
        assert_eq!(
            head.disposition(),
            Disposition::LocalRedirect { path: "/other/script?x=1".into() }
        );
        let (head, _) = complete(b"Location: https://example.com/\n\n");
        assert_eq!(head.disposition(), Disposition::Document { status: 302 });
        assert_eq!(head.location.as_deref(), Some("https://example.com/"));
        let (head, _) = complete(b"Location: //example.com/\n\n");
        assert_eq!(head.disposition(), Disposition::Document { status: 302 });
        let (head, _) = complete(b"Status: 301\nLocation: /moved\n\n");
        assert_eq!(head.disposition(), Disposition::Document { status: 301 });
    }

    #[test]
    fn an_nph_status_line_counts_as_status() {
        let (head, body) =
            complete(b"HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\n\r\nno");
        assert_eq!(head.disposition(), Disposition::Document { status: 403 });
        assert_eq!(body, b"no");
    }

    #[test]
    fn malformed_blocks_are_refused() {
        assert_eq!(parse(b"\n\nbody"), Err(HeaderError::Empty));
        assert_eq!(parse(b"\r\nbody"), Err(HeaderError::Empty));
        for block in [&b"hello world\n\n"[..], b": x\n\n", b"Bad Name: x\n\n", b"A: 1\rB: 2\n\n"] {
            assert!(matches!(parse(block), Err(HeaderError::BadLine(_))), "{block:?}");
        }
    }

    #[test]
    fn every_prefix_is_partial_and_every_split_gives_the_same_result() {
        let block = b"Status: 200 OK\r\nContent-Type: text/plain\r\nX-A: b\r\n\r\nthe body";
        let end = block.len() - b"the body".len();
        for cut in 0..end - 1 {
            assert_eq!(parse(&block[..cut]), Ok(Progress::Partial), "prefix {cut}");
        }
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
    fn the_block_is_capped() {
        let mut parser = HeaderParser::new();
        let line = b"X-Filler: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n";
        let mut result = Ok(Progress::Partial);
        while result == Ok(Progress::Partial) {
            result = parser.push(line);
            assert!(parser.buffered() <= MAX_HEADER_BYTES + 2);
        }
        assert_eq!(result, Err(HeaderError::TooLarge));
        // No newline at all.
        let mut parser = HeaderParser::new();
        assert_eq!(parser.push(&vec![b'a'; MAX_HEADER_BYTES + 10]), Err(HeaderError::TooLarge));
    }

    #[test]
    fn a_large_body_after_the_block_is_kept_whole() {
        let mut input = b"Content-Type: application/octet-stream\n\n".to_vec();
        input.extend(std::iter::repeat_n(7u8, 3 * MAX_HEADER_BYTES));
        let (_, body) = complete(&input);
        assert_eq!(body.len(), 3 * MAX_HEADER_BYTES);
    }

    proptest! {
        #[test]
        fn never_panics_and_stays_bounded(chunks in proptest::collection::vec(
            proptest::collection::vec(any::<u8>(), 0..300), 0..20)) {
            let mut parser = HeaderParser::new();
            for chunk in &chunks {
                match parser.push(chunk) {
                    Ok(Progress::Partial) => prop_assert!(parser.buffered() <= MAX_HEADER_BYTES + 2),
                    Ok(Progress::Complete { .. }) | Err(_) => break,
                }
            }
        }

        #[test]
        fn valid_blocks_parse_the_same_at_any_split(
            names in proptest::collection::vec("[A-Za-z][A-Za-z0-9-]{0,15}", 1..6),
            values in proptest::collection::vec("[ -~]{0,30}", 6),
            crlf in any::<bool>(),
            cut in 0usize..400,
        ) {
            let eol = if crlf { "\r\n" } else { "\n" };
            let mut text = String::new();
            for (name, value) in names.iter().zip(&values) {
                let name = if name.eq_ignore_ascii_case("status") || name.eq_ignore_ascii_case("location") {
                    "X-Other"
                } else {
                    name
                };
                text += &format!("{name}: {value}{eol}");
            }
            text += eol;
            text += "body";
            let bytes = text.as_bytes();
            let whole = parse(bytes).unwrap();
            let cut = cut.min(bytes.len());
            let mut parser = HeaderParser::new();
            let split = match parser.push(&bytes[..cut]).unwrap() {
                Progress::Partial => parser.push(&bytes[cut..]).unwrap(),
                Progress::Complete { head, mut body } => {
                    body.extend_from_slice(&bytes[cut..]);
                    Progress::Complete { head, body }
                }
            };
            prop_assert_eq!(split, whole);
        }
    }
}
