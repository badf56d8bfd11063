//! The HTTP rules a CGI response head shares with HTTP (RFC 9110): status codes and their
//! reason phrases, what a header field's name and value may hold, and the `Status` field.
//!
//! One set of rules for every part of fcgi-rs that reads or writes a CGI head: the parser in
//! [`crate::cgi_header`] (used by the CGI gateway and the client), and the server's
//! `Response::header`. Pure functions on bytes, tested as tables.
//!
//! ```
//! use fcgi_codec::http;
//!
//! assert_eq!(http::reason(415), Some("Unsupported Media Type"));
//! assert_eq!(http::phrase(299), Some("Successful")); // unregistered: its class
//! assert!(http::check_name(b"X-Request-Id").is_ok());
//! assert!(http::check_value(b"a\r\nSet-Cookie: x").is_err());
//! let status = http::parse_status(b"404 Not Found")?;
//! assert_eq!((status.code, status.reason), (404, Some(&b"Not Found"[..])));
//! # Ok::<(), http::StatusError>(())
//! ```

use std::fmt;
use std::ops::RangeInclusive;

/// The status codes a response may carry: RFC 9110 section 15 (a three-digit integer whose
/// first digit is the class, 1xx to 5xx; "values outside the range 100..599 are invalid") and
/// RFC 3875 section 6.3.3 (`Status` is a 3-digit code).
pub const STATUS_CODES: RangeInclusive<u16> = 100..=599;

/// Whether `code` is a status a response may carry (in [`STATUS_CODES`]).
pub fn is_status(code: u16) -> bool {
    STATUS_CODES.contains(&code)
}

/// The reason phrase of a status code in the IANA HTTP Status Code Registry, in RFC 9110's
/// wording (413 "Content Too Large", 422 "Unprocessable Content"); `None` for a code that is
/// not registered.
///
/// Two registered codes are "(Unused)" in the registry. 306 keeps that description (nobody
/// sends it). 418 gets "I'm a teapot" (RFC 2324, RFC 7168) instead: applications do send it on
/// purpose, and "(Unused)" would tell their users nothing.
///
/// ```
/// assert_eq!(fcgi_codec::http::reason(429), Some("Too Many Requests"));
/// assert_eq!(fcgi_codec::http::reason(299), None); // unregistered: see `phrase`
/// ```
pub fn reason(code: u16) -> Option<&'static str> {
    let phrase = match code {
        100 => "Continue",
        101 => "Switching Protocols",
        102 => "Processing",
        103 => "Early Hints",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        203 => "Non-Authoritative Information",
        204 => "No Content",
        205 => "Reset Content",
        206 => "Partial Content",
        207 => "Multi-Status",
        208 => "Already Reported",
        226 => "IM Used",
        300 => "Multiple Choices",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        305 => "Use Proxy",
        306 => "(Unused)",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        402 => "Payment Required",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        411 => "Length Required",
        412 => "Precondition Failed",
        413 => "Content Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        416 => "Range Not Satisfiable",
        417 => "Expectation Failed",
        418 => "I'm a teapot",
        421 => "Misdirected Request",
        422 => "Unprocessable Content",
        423 => "Locked",
        424 => "Failed Dependency",
        425 => "Too Early",
        426 => "Upgrade Required",
        428 => "Precondition Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        451 => "Unavailable For Legal Reasons",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        506 => "Variant Also Negotiates",
        507 => "Insufficient Storage",
        508 => "Loop Detected",
        510 => "Not Extended",
        511 => "Network Authentication Required",
        _ => return None,
    };
    Some(phrase)
}

/// The name of a status code's class (RFC 9110 section 15): "Informational", "Successful",
/// "Redirection", "Client Error", "Server Error"; `None` outside [`STATUS_CODES`].
pub fn class_reason(code: u16) -> Option<&'static str> {
    match code {
        100..=199 => Some("Informational"),
        200..=299 => Some("Successful"),
        300..=399 => Some("Redirection"),
        400..=499 => Some("Client Error"),
        500..=599 => Some("Server Error"),
        _ => None,
    }
}

/// The phrase to send after `code`: its registered [`reason`], else its [`class_reason`], so
/// that an unregistered code still reads sensibly (`299 Successful`); `None` only outside
/// [`STATUS_CODES`]. A client treats an unknown code as the `x00` of its class (RFC 9110
/// section 15), which is what the class name says.
pub fn phrase(code: u16) -> Option<&'static str> {
    reason(code).or_else(|| class_reason(code))
}

/// What is wrong with a header field's name or value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldError {
    /// A header line without the colon that ends the name.
    NoColon,
    /// The name is empty.
    EmptyName,
    /// A byte of the name is not a token character (RFC 9110 section 5.6.2): a space, a
    /// separator such as `(` or `"`, a control byte or a byte above 0x7e.
    NameByte {
        /// Its offset in the name.
        at: usize,
        /// The byte.
        byte: u8,
    },
    /// The value holds a CR, LF or NUL: bytes that would end or cut the header block (RFC 9110
    /// section 5.5 says a recipient must refuse or replace them).
    ValueByte {
        /// Its offset in the value.
        at: usize,
        /// The byte.
        byte: u8,
    },
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FieldError::NoColon => f.write_str("no colon after the name"),
            FieldError::EmptyName => f.write_str("the name is empty"),
            FieldError::NameByte { at, byte } => {
                write!(f, "byte {at} of the name ({byte:#04x}) is not a token character")
            }
            FieldError::ValueByte { at, byte } => {
                write!(f, "byte {at} of the value ({byte:#04x}) is a CR, LF or NUL")
            }
        }
    }
}

impl std::error::Error for FieldError {}

/// A token character (RFC 9110 section 5.6.2): what a header name is made of.
pub fn is_tchar(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte)
}

/// Checks a header name: a non-empty token (RFC 9110 section 5.1).
pub fn check_name(name: &[u8]) -> Result<(), FieldError> {
    if name.is_empty() {
        return Err(FieldError::EmptyName);
    }
    match name.iter().position(|&b| !is_tchar(b)) {
        Some(at) => Err(FieldError::NameByte { at, byte: name[at] }),
        None => Ok(()),
    }
}

/// Checks a header value: no CR, LF or NUL. Everything else is allowed, bytes above 0x7f
/// (obs-text) among them, so that a value passes through as the application wrote it.
pub fn check_value(value: &[u8]) -> Result<(), FieldError> {
    match value.iter().position(|&b| matches!(b, b'\r' | b'\n' | 0)) {
        Some(at) => Err(FieldError::ValueByte { at, byte: value[at] }),
        None => Ok(()),
    }
}

/// `value` without leading and trailing spaces and tabs (RFC 9110 section 5.5: OWS around a
/// field value is not part of it).
pub fn trim_ows(mut value: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = value {
        value = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = value {
        value = rest;
    }
    value
}

/// A parsed `Status` field value (RFC 3875 section 6.3.3): `404` or `404 Not Found`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Status<'a> {
    /// The code, in [`STATUS_CODES`].
    pub code: u16,
    /// The reason phrase after it, without the spaces around it; `None` when there is none.
    pub reason: Option<&'a [u8]>,
}

/// Why a `Status` value is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatusError {
    /// It does not start with three digits followed by its end, a space or a tab (or it holds
    /// a CR, LF or NUL).
    Malformed,
    /// Three digits, but not a code in [`STATUS_CODES`].
    OutOfRange {
        /// The code.
        code: u16,
    },
}

impl fmt::Display for StatusError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StatusError::Malformed => f.write_str("not a three-digit code and a reason phrase"),
            StatusError::OutOfRange { code } => write!(
                f,
                "{code:03} is not a status code from {} to {}",
                STATUS_CODES.start(),
                STATUS_CODES.end()
            ),
        }
    }
}

impl std::error::Error for StatusError {}

/// Parses a `Status` field value: optional spaces, three digits (100 to 599), then the end or
/// spaces and a reason phrase. The same rule whoever reads or sets a status.
///
/// ```
/// use fcgi_codec::http::{parse_status, StatusError};
///
/// let status = parse_status(b"404 Not Here")?;
/// assert_eq!((status.code, status.reason), (404, Some(&b"Not Here"[..])));
/// assert_eq!(parse_status(b"42").unwrap_err(), StatusError::Malformed);
/// # Ok::<(), StatusError>(())
/// ```
pub fn parse_status(value: &[u8]) -> Result<Status<'_>, StatusError> {
    if check_value(value).is_err() {
        return Err(StatusError::Malformed);
    }
    let value = trim_ows(value);
    let (digits, rest) = match value {
        [a, b, c, rest @ ..] if [a, b, c].iter().all(|d| d.is_ascii_digit()) => {
            ([*a, *b, *c], rest)
        }
        _ => return Err(StatusError::Malformed),
    };
    if !matches!(rest.first(), None | Some(b' ' | b'\t')) {
        return Err(StatusError::Malformed);
    }
    let code = digits.iter().fold(0u16, |code, d| code * 10 + u16::from(d - b'0'));
    if !is_status(code) {
        return Err(StatusError::OutOfRange { code });
    }
    let reason = trim_ows(rest);
    Ok(Status { code, reason: (!reason.is_empty()).then_some(reason) })
}

/// A body length as CGI's `CONTENT_LENGTH` and HTTP's `Content-Length` write it: one or more
/// ASCII digits and nothing else (no sign, no space, no second value; RFC 3875 section 4.1.2,
/// RFC 9110 section 8.6), that fit a `u64`. Anything else is no length: a request whose
/// framing is in doubt is refused, as an HTTP server refuses such a `Content-Length`.
///
/// ```
/// use fcgi_codec::http::parse_content_length;
///
/// assert_eq!(parse_content_length(b"1024"), Some(1024));
/// assert_eq!(parse_content_length(b"+5"), None);
/// assert_eq!(parse_content_length(b""), None);
/// ```
pub fn parse_content_length(value: &[u8]) -> Option<u64> {
    if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(value).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The IANA HTTP Status Code Registry, as of RFC 9110 and the RFCs it lists.
    const REGISTERED: &[u16] = &[
        100, 101, 102, 103, //
        200, 201, 202, 203, 204, 205, 206, 207, 208, 226, //
        300, 301, 302, 303, 304, 305, 306, 307, 308, //
        400, 401, 402, 403, 404, 405, 406, 407, 408, 409, 410, 411, 412, 413, 414, 415, 416, 417,
        418, 421, 422, 423, 424, 425, 426, 428, 429, 431, 451, //
        500, 501, 502, 503, 504, 505, 506, 507, 508, 510, 511,
    ];

    #[test]
    fn every_registered_code_has_its_phrase_and_no_other_has_one() {
        for code in 0..=u16::MAX {
            let phrase = reason(code);
            assert_eq!(phrase.is_some(), REGISTERED.contains(&code), "{code}: {phrase:?}");
        }
        for (code, expected) in [
            (100, "Continue"),
            (103, "Early Hints"),
            (207, "Multi-Status"),
            (226, "IM Used"),
            (308, "Permanent Redirect"),
            (413, "Content Too Large"),
            (415, "Unsupported Media Type"),
            (418, "I'm a teapot"),
            (421, "Misdirected Request"),
            (422, "Unprocessable Content"),
            (425, "Too Early"),
            (451, "Unavailable For Legal Reasons"),
            (508, "Loop Detected"),
            (511, "Network Authentication Required"),
        ] {
            assert_eq!(reason(code), Some(expected), "{code}");
        }
    }

    #[test]
    fn every_code_in_range_has_a_phrase_and_none_says_unknown() {
        for code in 0..=u16::MAX {
            let phrase = phrase(code);
            assert_eq!(phrase.is_some(), is_status(code), "{code}");
            if let Some(phrase) = phrase {
                assert!(!phrase.to_ascii_lowercase().contains("unknown"), "{code}: {phrase}");
                assert!(check_value(phrase.as_bytes()).is_ok() && !phrase.is_empty());
            }
        }
        for (code, class) in [
            (199, "Informational"),
            (299, "Successful"),
            (309, "Redirection"),
            (419, "Client Error"),
            (599, "Server Error"),
        ] {
            assert_eq!(phrase(code), Some(class), "{code}");
        }
        assert_eq!(phrase(99), None);
        assert_eq!(phrase(600), None);
    }

    #[test]
    fn names_are_tokens() {
        for good in [&b"Content-Type"[..], b"x", b"X-A_b.c~1", b"!#$%&'*+-.^_`|~"] {
            assert_eq!(check_name(good), Ok(()), "{good:?}");
        }
        for (bad, error) in [
            (&b""[..], FieldError::EmptyName),
            (b"Bad Name", FieldError::NameByte { at: 3, byte: b' ' }),
            (b"A:", FieldError::NameByte { at: 1, byte: b':' }),
            (b"(x)", FieldError::NameByte { at: 0, byte: b'(' }),
            (b"a\"", FieldError::NameByte { at: 1, byte: b'"' }),
            (b"a\tb", FieldError::NameByte { at: 1, byte: b'\t' }),
            (b"\x7f", FieldError::NameByte { at: 0, byte: 0x7f }),
            (b"caf\xc3\xa9", FieldError::NameByte { at: 3, byte: 0xc3 }),
            (b"a\r\n", FieldError::NameByte { at: 1, byte: b'\r' }),
        ] {
            assert_eq!(check_name(bad), Err(error), "{bad:?}");
        }
    }

    #[test]
    fn values_refuse_cr_lf_and_nul_only() {
        for good in [&b""[..], b"text/html; charset=utf-8", b"a\tb", b"caf\xc3\xa9 \xff", b"\x01"] {
            assert_eq!(check_value(good), Ok(()), "{good:?}");
        }
        for (bad, at, byte) in
            [(&b"a\rb"[..], 1, b'\r'), (b"a\nb", 1, b'\n'), (b"\0", 0, 0), (b"x\r\n", 1, b'\r')]
        {
            assert_eq!(check_value(bad), Err(FieldError::ValueByte { at, byte }), "{bad:?}");
        }
    }

    #[test]
    fn status_values() {
        for (value, code, reason) in [
            (&b"200"[..], 200, None),
            (b"404 Not Found", 404, Some(&b"Not Found"[..])),
            (b"  503   Service Unavailable  ", 503, Some(b"Service Unavailable")),
            (b"100", 100, None),
            (b"599 x", 599, Some(b"x")),
            (b"201\tCreated", 201, Some(b"Created")),
            (b"299 ", 299, None),
            (b"200 \xff", 200, Some(b"\xff")),
        ] {
            assert_eq!(parse_status(value), Ok(Status { code, reason }), "{value:?}");
        }
        for (value, error) in [
            (&b""[..], StatusError::Malformed),
            (b"20", StatusError::Malformed),
            (b"2000", StatusError::Malformed),
            (b"200OK", StatusError::Malformed),
            (b"abc OK", StatusError::Malformed),
            (b"+20", StatusError::Malformed),
            (b"two hundred", StatusError::Malformed),
            (b"200 OK\r", StatusError::Malformed),
            (b"200 \0", StatusError::Malformed),
            (b"099", StatusError::OutOfRange { code: 99 }),
            (b"000", StatusError::OutOfRange { code: 0 }),
            (b"600 x", StatusError::OutOfRange { code: 600 }),
            (b"999", StatusError::OutOfRange { code: 999 }),
        ] {
            assert_eq!(parse_status(value), Err(error), "{value:?}");
        }
    }

    #[test]
    fn ows_is_trimmed_on_both_sides() {
        assert_eq!(trim_ows(b" \t a b \t "), b"a b");
        assert_eq!(trim_ows(b"   "), b"");
        assert_eq!(trim_ows(b"x"), b"x");
    }

    #[test]
    fn content_lengths_as_a_table() {
        let table: &[(&[u8], Option<u64>)] = &[
            (b"0", Some(0)),
            (b"42", Some(42)),
            (b"007", Some(7)),
            (b"18446744073709551615", Some(u64::MAX)),
            (b"18446744073709551616", None),
            (b"", None),
            (b"+5", None),
            (b"-1", None),
            (b" 5", None),
            (b"5 ", None),
            (b"5, 5", None),
            (b"5 5", None),
            (b"0x10", None),
            (b"1e3", None),
            (b"\xd9\xa3", None),
        ];
        for (value, want) in table {
            assert_eq!(parse_content_length(value), *want, "{:?}", String::from_utf8_lossy(value));
        }
    }
}
