//! The CGI response header block (RFC 3875 section 6): an incremental parser that is fed the
//! program's stdout as it arrives, and what the parsed block asks the gateway to do.
//!
//! The parser and its rules live in [`fcgi_codec::cgi_header`] and [`fcgi_codec::http`], shared
//! with the FastCGI client and with `fcgi_server::Response::header`, so that what the gateway
//! accepts from a program is exactly what it can pass on. They are re-exported here under the
//! names the gateway has always used. Pure: no I/O. Lines end with LF or CRLF; the block ends
//! with an empty line; an empty block is refused ([`HeaderError::Empty`]); the block is capped
//! at [`MAX_HEADER_BYTES`], its empty line included. Never panics on any input.
//!
//! ```
//! use fcgi_cgi::headers::{Disposition, HeaderParser, Progress};
//!
//! let mut parser = HeaderParser::new();
//! assert_eq!(parser.push(b"Content-Type: text/plain\r\nSta").unwrap(), Progress::Partial);
//! let Progress::Complete { head, body } = parser.push(b"tus: 404 Gone\r\n\r\nno such thing").unwrap()
//! else { panic!("the block is complete") };
//! assert_eq!(head.disposition(), Disposition::Document { status: 404 });
//! assert_eq!(head.header("content-type"), Some("text/plain"));
//! assert_eq!(body, b"no such thing");
//! ```

pub use fcgi_codec::cgi_header::{
    Disposition, Head, HeaderError, HeaderParser, Progress, MAX_HEADER_BYTES,
};
