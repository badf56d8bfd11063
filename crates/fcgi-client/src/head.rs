//! The CGI response head at the front of `FCGI_STDOUT`: header lines up to an empty line, the
//! status taken from `Status:` (RFC 3875, section 6.3).
//!
//! Parsed by [`fcgi_codec::cgi_header`], with the rules of [`fcgi_codec::http`]: the same
//! parser and rules as the CGI gateway's, and the ones `fcgi_server::Response` writes by. One
//! difference, on purpose: an empty head is accepted here (status 200, no headers), as nginx
//! accepts it from a FastCGI server, where the gateway refuses it from a CGI program.

use std::fmt;

use fcgi_codec::cgi_header::{self, HeaderError};

/// Largest response head read, in bytes, its empty line included: 64 KiB
/// ([`cgi_header::MAX_HEADER_BYTES`]), eight times nginx's default `fastcgi_buffer_size` (4 or
/// 8 KiB), which is all nginx itself accepts for the headers of a FastCGI response. A server
/// that sends more without an empty line is not sending a head.
pub const MAX_HEAD_LEN: usize = cgi_header::MAX_HEADER_BYTES;

/// The status, reason and header lines of a CGI response.
///
/// The status comes from the `Status:` header; without one it is 302 when there is a
/// `Location:` header (a redirect, RFC 3875 section 6.2.3) and 200 otherwise. `Status:` itself
/// is not kept in [`headers`](ResponseHead::headers).
///
/// ```
/// use fcgi_client::ResponseHead;
///
/// let stdout = b"Status: 404 Not Found\r\nContent-Type: text/html\r\n\r\n<h1>gone</h1>";
/// let (head, len) = ResponseHead::parse(stdout)?.expect("the head is complete");
/// assert_eq!(head.status, 404);
/// assert_eq!(head.reason.as_deref(), Some("Not Found"));
/// assert_eq!(head.header("content-type"), Some("text/html"));
/// assert_eq!(&stdout[len..], b"<h1>gone</h1>");
///
/// // Not all of the head has come yet: no head, and no error either.
/// assert_eq!(ResponseHead::parse(b"Content-Type: text/pl")?, None);
/// # Ok::<(), fcgi_client::HeadError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResponseHead {
    /// The HTTP status code.
    pub status: u16,
    /// The reason phrase after the code in `Status:`, if there was one.
    pub reason: Option<String>,
    /// The header lines other than `Status:`, in order, names as sent, values trimmed (bytes
    /// that are not UTF-8 replaced by U+FFFD).
    pub headers: Vec<(String, String)>,
}

/// Why the front of `FCGI_STDOUT` is not a CGI response head.
///
/// ```
/// use fcgi_client::{HeadError, ResponseHead};
///
/// assert_eq!(
///     ResponseHead::parse(b"Status: two hundred\n\n"),
///     Err(HeadError::Status { value: "two hundred".into() }),
/// );
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HeadError {
    /// More than [`MAX_HEAD_LEN`] bytes came without the empty line that ends the head.
    TooLong {
        /// The limit in force.
        limit: usize,
    },
    /// A line is not `Name: value` (a name of token characters, a value without CR, LF or
    /// NUL).
    Line {
        /// Which line, from 1.
        line: usize,
        /// The line, lossily decoded and cut to 80 characters.
        text: String,
    },
    /// `Status:` is not a three-digit code from 100 to 599 and an optional reason phrase.
    Status {
        /// The header's value.
        value: String,
    },
    /// `Status:` or `Location:` came twice.
    Duplicate {
        /// Which.
        name: &'static str,
    },
    /// The stream ended before the empty line that ends the head.
    Incomplete {
        /// Bytes of head that had come.
        len: usize,
    },
}

impl fmt::Display for HeadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HeadError::TooLong { limit } => {
                write!(f, "the response head runs past {limit} bytes without an empty line")
            }
            HeadError::Line { line, text } => {
                write!(f, "line {line} of the response head is not `Name: value`: {text:?}")
            }
            HeadError::Status { value } => {
                write!(f, "`Status: {value}` is not a status code from 100 to 599 and a reason")
            }
            HeadError::Duplicate { name } => write!(f, "the response head has {name} twice"),
            HeadError::Incomplete { len } => write!(
                f,
                "the response ended after {len} bytes of head, before the empty line that ends it"
            ),
        }
    }
}

impl std::error::Error for HeadError {}

impl Default for ResponseHead {
    /// Status 200 and no headers: what an empty head (`"\r\n"`) means.
    ///
    /// ```
    /// use fcgi_client::ResponseHead;
    ///
    /// assert_eq!(ResponseHead::parse(b"\r\n").unwrap(), Some((ResponseHead::default(), 2)));
    /// ```
    fn default() -> Self {
        ResponseHead { status: 200, reason: None, headers: Vec::new() }
    }
}

impl ResponseHead {
    /// Reads the head at the front of `buf`.
    ///
    /// Returns `Ok(None)` while the empty line that ends the head has not come, and the head
    /// with the bytes it took (the empty line included) once it has. Lines may end in `\r\n`
    /// or `\n`.
    pub fn parse(buf: &[u8]) -> Result<Option<(ResponseHead, usize)>, HeadError> {
        match cgi_header::parse_head(buf) {
            Ok(None) => Ok(None),
            Ok(Some((head, len))) => {
                let status = head.status_or_default();
                Ok(Some((ResponseHead { status, reason: head.reason, headers: head.headers }, len)))
            }
            // The empty line came first: `\n` or `\r\n`.
            Err(HeaderError::Empty) => {
                Ok(Some((ResponseHead::default(), if buf.starts_with(b"\n") { 1 } else { 2 })))
            }
            Err(HeaderError::TooLarge) => Err(HeadError::TooLong { limit: MAX_HEAD_LEN }),
            Err(HeaderError::BadLine { line, text, .. }) => Err(HeadError::Line { line, text }),
            Err(HeaderError::BadStatus { value, .. }) => Err(HeadError::Status { value }),
            Err(HeaderError::Duplicate(name)) => Err(HeadError::Duplicate { name }),
        }
    }

    /// The value of the first header called `name`, compared without regard to case.
    ///
    /// ```
    /// use fcgi_client::ResponseHead;
    ///
    /// let (head, _) = ResponseHead::parse(b"X-A: 1\nx-a: 2\n\n").unwrap().unwrap();
    /// assert_eq!(head.header("X-a"), Some("1"));
    /// assert_eq!(head.header("Status"), None);
    /// ```
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(buf: &[u8]) -> (ResponseHead, usize) {
        ResponseHead::parse(buf).unwrap().expect("a complete head")
    }

    #[test]
    fn status_defaults_to_200() {
        let (head, len) = parse(b"Content-Type: text/plain\r\n\r\nbody");
        assert_eq!((head.status, head.reason), (200, None));
        assert_eq!(head.headers, [("Content-Type".to_owned(), "text/plain".to_owned())]);
        assert_eq!(len, 28);
    }

    #[test]
    fn status_header_sets_code_and_reason_and_is_not_listed() {
        let (head, _) = parse(b"status:   503   Service Unavailable \nRetry-After: 5\n\n");
        assert_eq!(head.status, 503);
        assert_eq!(head.reason.as_deref(), Some("Service Unavailable"));
        assert_eq!(head.header("Status"), None);
        assert_eq!(head.header("retry-after"), Some("5"));
    }

    #[test]
    fn code_without_reason() {
        let (head, _) = parse(b"Status: 204\r\n\r\n");
        assert_eq!((head.status, head.reason), (204, None));
    }

    #[test]
    fn location_without_status_is_a_redirect() {
        assert_eq!(parse(b"Location: http://example.com/\n\n").0.status, 302);
        assert_eq!(parse(b"Location: /x\nStatus: 301\n\n").0.status, 301);
    }

    #[test]
    fn mixed_line_endings_and_empty_values() {
        let (head, len) = parse(b"A: 1\nB:\r\nC:\t x \t\n\r\n");
        let values: Vec<&str> = head.headers.iter().map(|(_, v)| v.as_str()).collect();
        assert_eq!(values, ["1", "", "x"]);
        assert_eq!(len, 19);
    }

    #[test]
    fn every_prefix_of_a_head_is_partial() {
        let full = b"Status: 200 OK\r\nContent-Type: text/plain\r\nX-Y: z\r\n\r\n";
        for cut in 0..full.len() {
            assert_eq!(ResponseHead::parse(&full[..cut]), Ok(None), "cut at {cut}");
        }
        assert_eq!(parse(full).1, full.len());
    }

    #[test]
    fn head_with_no_headers() {
        let (head, len) = parse(b"\r\nbody");
        assert_eq!((head.status, head.headers.len(), len), (200, 0, 2));
    }

    #[test]
    fn malformed_lines_are_errors() {
        for (bad, line) in [
            (&b"no colon here\n\n"[..], 1),
            (b"A: 1\n: empty name\n\n", 2),
            (b"Bad Name: x\n\n", 1),
            (b"A: 1\n continued\n\n", 2),
        ] {
            match ResponseHead::parse(bad) {
                Err(HeadError::Line { line: n, .. }) => assert_eq!(n, line, "{bad:?}"),
                other => panic!("{bad:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn bad_status_codes() {
        for value in ["", "20", "2000", "abc OK", "099", "+20"] {
            let head = format!("Status: {value}\n\n");
            assert!(
                matches!(ResponseHead::parse(head.as_bytes()), Err(HeadError::Status { .. })),
                "{value:?}"
            );
        }
    }

    #[test]
    fn head_over_the_limit() {
        let endless = vec![b'a'; MAX_HEAD_LEN + 1];
        assert_eq!(ResponseHead::parse(&endless), Err(HeadError::TooLong { limit: MAX_HEAD_LEN }));
        let mut lines = Vec::new();
        while lines.len() <= MAX_HEAD_LEN {
            lines.extend_from_slice(b"X-Long: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n");
        }
        lines.push(b'\n');
        assert_eq!(ResponseHead::parse(&lines), Err(HeadError::TooLong { limit: MAX_HEAD_LEN }));
        // Just under the limit is fine.
        let mut fits = b"X: ".to_vec();
        fits.resize(MAX_HEAD_LEN - 2, b'v');
        fits.extend_from_slice(b"\n\n");
        assert_eq!(parse(&fits).1, MAX_HEAD_LEN);
    }

    /// The rules the CGI gateway and the server apply hold here too: no code past 599 (600,
    /// 999) or below 100, names of token characters only (not `X(y)`), no NUL in a value, no
    /// second `Status` or `Location`.
    #[test]
    fn the_shared_rules_apply() {
        for value in ["600", "999 Nine", "000"] {
            let head = format!("Status: {value}\n\n");
            assert_eq!(
                ResponseHead::parse(head.as_bytes()),
                Err(HeadError::Status { value: value.to_owned() }),
            );
        }
        for (bad, line) in [(&b"X(y): 1\n\n"[..], 1), (b"A: 1\nX-Nul: a\0b\n\n", 2)] {
            assert!(
                matches!(ResponseHead::parse(bad), Err(HeadError::Line { line: n, .. }) if n == line),
                "{bad:?}"
            );
        }
        assert_eq!(
            ResponseHead::parse(b"Status: 200\nStatus: 404\n\n"),
            Err(HeadError::Duplicate { name: "Status" })
        );
        assert_eq!(
            ResponseHead::parse(b"Location: /a\nLocation: /b\n\n"),
            Err(HeadError::Duplicate { name: "Location" })
        );
        // obs-text passes (lossily), and a teapot keeps its phrase.
        let (head, _) = parse(b"Status: 418 I'm a teapot\nX-Obs: caf\xc3\xa9\n\n");
        assert_eq!((head.status, head.reason.as_deref()), (418, Some("I'm a teapot")));
        assert_eq!(head.header("x-obs"), Some("caf\u{e9}"));
    }

    #[test]
    fn invalid_utf8_is_replaced_not_refused() {
        let (head, _) = parse(b"X-Bin: \xff\xfe\n\n");
        assert_eq!(head.header("X-Bin"), Some("\u{fffd}\u{fffd}"));
    }
}
