//! One record, decoded from a buffer that holds it whole, its body borrowed from that buffer.

use crate::error::DecodeError;
use crate::header::{Header, HEADER_LEN, VERSION_1};
use crate::{BeginRequest, EndRequest, Pairs, RecordType, UnknownType};

/// A decoded record: which request it belongs to, and what it carries.
///
/// ```
/// use fcgi_codec::{Body, Record};
///
/// // FCGI_STDIN for request 1: 5 bytes of content, 3 of padding.
/// let wire = b"\x01\x05\x00\x01\x00\x05\x03\x00hello\0\0\0";
/// let (record, len) = Record::decode(wire).unwrap().unwrap();
/// assert_eq!(len, wire.len());
/// assert_eq!(record, Record { request_id: 1, body: Body::Stdin(b"hello") });
///
/// // Fewer bytes than the record needs is not an error: there is just no record yet.
/// assert_eq!(Record::decode(&wire[..10]), Ok(None));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record<'a> {
    /// The request this record belongs to; 0 for management records.
    pub request_id: u16,
    /// What the record carries.
    pub body: Body<'a>,
}

/// What a record carries, by type. Stream contents borrow from the decoder's buffer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Body<'a> {
    /// `FCGI_BEGIN_REQUEST`.
    BeginRequest(BeginRequest),
    /// `FCGI_ABORT_REQUEST`.
    AbortRequest,
    /// `FCGI_END_REQUEST`.
    EndRequest(EndRequest),
    /// A piece of the `FCGI_PARAMS` stream; empty ends the stream. Pairs may straddle pieces:
    /// decode them with [`ParamsDecoder`](crate::ParamsDecoder).
    Params(&'a [u8]),
    /// A piece of the `FCGI_STDIN` stream; empty ends the stream.
    Stdin(&'a [u8]),
    /// A piece of the `FCGI_STDOUT` stream; empty ends the stream.
    Stdout(&'a [u8]),
    /// A piece of the `FCGI_STDERR` stream; empty ends the stream.
    Stderr(&'a [u8]),
    /// A piece of the `FCGI_DATA` stream; empty ends the stream.
    Data(&'a [u8]),
    /// `FCGI_GET_VALUES`: the names asked for (their values are empty).
    GetValues(Pairs<'a>),
    /// `FCGI_GET_VALUES_RESULT`: the names and values known.
    GetValuesResult(Pairs<'a>),
    /// `FCGI_UNKNOWN_TYPE`.
    UnknownType(UnknownType),
    /// A type this crate does not know, with its content as it came.
    Unknown {
        /// The type byte.
        record_type: u8,
        /// The record's content, padding left out.
        content: &'a [u8],
    },
}

impl Body<'_> {
    /// The record type that carries this body.
    ///
    /// ```
    /// use fcgi_codec::{Body, RecordType};
    ///
    /// assert_eq!(Body::Stdout(b"").record_type(), RecordType::Stdout);
    /// assert_eq!(Body::Unknown { record_type: 99, content: b"" }.record_type(), RecordType::Unknown(99));
    /// ```
    pub fn record_type(&self) -> RecordType {
        match self {
            Body::BeginRequest(_) => RecordType::BeginRequest,
            Body::AbortRequest => RecordType::AbortRequest,
            Body::EndRequest(_) => RecordType::EndRequest,
            Body::Params(_) => RecordType::Params,
            Body::Stdin(_) => RecordType::Stdin,
            Body::Stdout(_) => RecordType::Stdout,
            Body::Stderr(_) => RecordType::Stderr,
            Body::Data(_) => RecordType::Data,
            Body::GetValues(_) => RecordType::GetValues,
            Body::GetValuesResult(_) => RecordType::GetValuesResult,
            Body::UnknownType(_) => RecordType::UnknownType,
            Body::Unknown { record_type, .. } => RecordType::from(*record_type),
        }
    }
}

impl<'a> Record<'a> {
    /// Decodes the record at the front of `buf`.
    ///
    /// Returns `Ok(None)` while `buf` holds less than the whole record, and the record with the
    /// number of bytes it took (padding included) once it is complete. A bad version is reported
    /// as soon as the header is there, before the body arrives.
    pub fn decode(buf: &'a [u8]) -> Result<Option<(Record<'a>, usize)>, DecodeError> {
        let Some(head) = buf.first_chunk::<HEADER_LEN>() else {
            return Ok(None);
        };
        let header = Header::parse(head);
        if header.version != VERSION_1 {
            return Err(DecodeError::UnsupportedVersion { version: header.version });
        }
        let len = header.record_len();
        let content_end = HEADER_LEN + usize::from(header.content_length);
        let (Some(content), true) = (buf.get(HEADER_LEN..content_end), buf.len() >= len) else {
            return Ok(None);
        };
        let body = Body::decode(&header, content)?;
        Ok(Some((Record { request_id: header.request_id, body }, len)))
    }

    /// Whether this is a management record (request id 0), which belongs to the connection
    /// rather than to a request.
    pub fn is_management(&self) -> bool {
        self.request_id == crate::NULL_REQUEST_ID
    }
}

impl<'a> Body<'a> {
    fn decode(header: &Header, content: &'a [u8]) -> Result<Body<'a>, DecodeError> {
        let body = match header.record_type {
            RecordType::BeginRequest => {
                Body::BeginRequest(BeginRequest::parse(fixed(header, content)?))
            }
            RecordType::AbortRequest => {
                fixed::<0>(header, content)?;
                Body::AbortRequest
            }
            RecordType::EndRequest => Body::EndRequest(EndRequest::parse(fixed(header, content)?)),
            RecordType::Params => Body::Params(content),
            RecordType::Stdin => Body::Stdin(content),
            RecordType::Stdout => Body::Stdout(content),
            RecordType::Stderr => Body::Stderr(content),
            RecordType::Data => Body::Data(content),
            RecordType::GetValues => Body::GetValues(pairs(header, content)?),
            RecordType::GetValuesResult => Body::GetValuesResult(pairs(header, content)?),
            RecordType::UnknownType => {
                Body::UnknownType(UnknownType::parse(fixed(header, content)?))
            }
            RecordType::Unknown(record_type) => Body::Unknown { record_type, content },
        };
        Ok(body)
    }
}

/// The content of a record whose body has a fixed length `N`.
fn fixed<'a, const N: usize>(
    header: &Header,
    content: &'a [u8],
) -> Result<&'a [u8; N], DecodeError> {
    content.try_into().map_err(|_| DecodeError::BodyLength {
        record_type: header.record_type,
        request_id: header.request_id,
        expected: N,
        actual: content.len(),
    })
}

fn pairs<'a>(header: &Header, content: &'a [u8]) -> Result<Pairs<'a>, DecodeError> {
    Pairs::parse(content)
        .map_err(|error| DecodeError::Pairs { record_type: header.record_type, error })
}
