//! The FastCGI 1.0 wire format: records in, records out.
//!
//! This crate is the codec of fcgi-rs and nothing else: no sockets, no threads, no allocation
//! that a peer can drive past a limit. It never panics, whatever bytes it is given.
//!
//! # Decoding
//!
//! Bytes go into a [`Decoder`] as they arrive, cut anywhere; whole records come out, their
//! bodies borrowed from the decoder's buffer. "Not enough bytes yet" is `Ok(None)`, not an error.
//! A request's `FCGI_PARAMS` stream goes through a [`ParamsDecoder`], because a name-value pair
//! may straddle two records.
//!
//! ```
//! use fcgi_codec::{Body, Decoder, Encoder, ParamsDecoder, ParamsLimits, Role, StreamKind};
//!
//! // What a web server sends for `GET /hello`, here built with our own encoder.
//! let mut wire = Vec::new();
//! let encoder = Encoder::new();
//! encoder.begin_request(&mut wire, 1, &fcgi_codec::BeginRequest::new(Role::Responder, true))?;
//! encoder.params(&mut wire, 1, [("REQUEST_METHOD", "GET"), ("SCRIPT_NAME", "/hello")])?;
//! encoder.end_stream(&mut wire, StreamKind::Stdin, 1)?;
//!
//! let mut decoder = Decoder::new();
//! let mut params = ParamsDecoder::new(ParamsLimits::default());
//! let mut done = None;
//! for piece in wire.chunks(7) {
//!     decoder.feed(piece);
//!     while let Some(record) = decoder.decode()? {
//!         match record.body {
//!             Body::BeginRequest(begin) => assert_eq!(begin.role, Role::Responder),
//!             Body::Params(b"") => done = Some(std::mem::replace(
//!                 &mut params,
//!                 ParamsDecoder::new(ParamsLimits::default()),
//!             ).finish()?),
//!             Body::Params(chunk) => params.push(chunk)?,
//!             Body::Stdin(body) => assert!(body.is_empty()),
//!             other => panic!("unexpected {other:?}"),
//!         }
//!     }
//! }
//! let params = done.expect("the params stream ended");
//! assert_eq!(params.get(b"SCRIPT_NAME"), Some(&b"/hello"[..]));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Encoding
//!
//! An [`Encoder`] writes records to a `Vec<u8>` or any [`std::io::Write`], cuts stream data
//! over 65,535 bytes into several records, and pads to 8-byte boundaries (the spec's
//! recommendation; [`Encoder::with_padding`] turns it off).
//!
//! ```
//! use fcgi_codec::{EndRequest, Encoder, StreamKind};
//!
//! let encoder = Encoder::new();
//! let mut out = Vec::new();
//! encoder.stream(&mut out, StreamKind::Stdout, 1, b"Status: 200 OK\r\n\r\nhi")?;
//! encoder.end_stream(&mut out, StreamKind::Stdout, 1)?; // always end the stream
//! encoder.end_request(&mut out, 1, &EndRequest::complete(0))?;
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! # Design
//!
//! - [`Header`] is a plain value: 8 bytes in, 8 bytes out, every byte pattern accepted; types,
//!   roles and statuses this crate does not know are kept (`Unknown(n)`), never lost.
//! - [`Record::decode`] is the whole decoder, pure: a buffer in, `Ok(None)` or a record and the
//!   bytes it took out. The version is checked as soon as the header is there, so a peer that
//!   does not speak FastCGI is caught at its first 8 bytes.
//! - [`Decoder`] adds the buffer: it grows by doubling as bytes arrive (4 KiB first), up to a
//!   fixed maximum of at least one whole record, and can be released when a connection is idle.
//! - [`ParamsDecoder`] keeps the stream in one buffer and indexes its pairs as they complete,
//!   checking each pair's claimed length against [`ParamsLimits`] before its bytes come.
//! - [`http`] and [`cgi_header`] are the one set of rules for the CGI response head that the
//!   server writes, the CGI gateway reads from its programs and the client reads from servers:
//!   status codes and reason phrases, header names and values, and the incremental parser.
//! - Errors come in two kinds ([`DecodeError`] breaks the connection, [`ParamsError`] only the
//!   request), each variant saying where and by how much.

// The codec must never panic on input: no unwrap, no silent truncation.
#![warn(clippy::unwrap_used, clippy::expect_used, clippy::cast_possible_truncation)]
#![forbid(unsafe_code)]

pub mod cgi_header;
pub mod http;
pub mod management;

mod address;
mod begin_request;
mod decoder;
mod encoder;
mod end_request;
mod error;
mod header;
mod name_value;
mod params;
mod record;
mod unknown_type;

pub use address::{Address, ParseAddressError};
pub use begin_request::{BeginRequest, Role};
pub use decoder::Decoder;
pub use encoder::{Encoder, StreamKind};
pub use end_request::{EndRequest, ProtocolStatus};
pub use error::{DecodeError, PairError, ParamsError};
pub use header::{
    Header, RecordType, HEADER_LEN, MAX_CONTENT_LEN, MAX_PADDING_LEN, MAX_RECORD_LEN,
    NULL_REQUEST_ID, VERSION_1,
};
pub use name_value::{encode_pair, encoded_pair_len, Pairs, MAX_PAIR_PART_LEN};
pub use params::{Params, ParamsDecoder, ParamsIter, ParamsLimits};
pub use record::{Body, Record};
pub use unknown_type::UnknownType;
