//! The 8-byte record header and the record type byte.

use byteorder::{BigEndian, ByteOrder};

/// `FCGI_VERSION_1`: the only protocol version there is.
pub const VERSION_1: u8 = 1;

/// Length of a record header on the wire.
pub const HEADER_LEN: usize = 8;

/// Largest content a single record can carry: the header's content length is a `u16`.
pub const MAX_CONTENT_LEN: usize = u16::MAX as usize;

/// Largest padding a single record can carry: the header's padding length is a `u8`.
pub const MAX_PADDING_LEN: usize = u8::MAX as usize;

/// Largest record on the wire: header, content and padding all at their maximum.
pub const MAX_RECORD_LEN: usize = HEADER_LEN + MAX_CONTENT_LEN + MAX_PADDING_LEN;

/// `FCGI_NULL_REQUEST_ID`: the request id of management records.
pub const NULL_REQUEST_ID: u16 = 0;

/// The type byte of a record.
///
/// Every byte value is accepted: types this crate does not know are kept in
/// [`RecordType::Unknown`], so that a server can answer them with an `FCGI_UNKNOWN_TYPE` record
/// that names them.
///
/// ```
/// use fcgi_codec::RecordType;
///
/// assert_eq!(RecordType::from(5), RecordType::Stdin);
/// assert_eq!(RecordType::from(42), RecordType::Unknown(42));
/// assert_eq!(u8::from(RecordType::Unknown(42)), 42);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RecordType {
    /// `FCGI_BEGIN_REQUEST` (1): starts a request.
    BeginRequest,
    /// `FCGI_ABORT_REQUEST` (2): the web server gives up on a request.
    AbortRequest,
    /// `FCGI_END_REQUEST` (3): the application has finished a request.
    EndRequest,
    /// `FCGI_PARAMS` (4): the stream of name-value pairs (CGI variables).
    Params,
    /// `FCGI_STDIN` (5): the request body stream.
    Stdin,
    /// `FCGI_STDOUT` (6): the response stream.
    Stdout,
    /// `FCGI_STDERR` (7): the error stream.
    Stderr,
    /// `FCGI_DATA` (8): the Filter role's second input stream.
    Data,
    /// `FCGI_GET_VALUES` (9): a management query for the application's variables.
    GetValues,
    /// `FCGI_GET_VALUES_RESULT` (10): the answer to [`RecordType::GetValues`].
    GetValuesResult,
    /// `FCGI_UNKNOWN_TYPE` (11): the answer to a management record of an unknown type.
    UnknownType,
    /// Any other type byte, kept as it came.
    Unknown(u8),
}

impl From<u8> for RecordType {
    fn from(byte: u8) -> Self {
        match byte {
            1 => RecordType::BeginRequest,
            2 => RecordType::AbortRequest,
            3 => RecordType::EndRequest,
            4 => RecordType::Params,
            5 => RecordType::Stdin,
            6 => RecordType::Stdout,
            7 => RecordType::Stderr,
            8 => RecordType::Data,
            9 => RecordType::GetValues,
            10 => RecordType::GetValuesResult,
            11 => RecordType::UnknownType,
            other => RecordType::Unknown(other),
        }
    }
}

impl From<RecordType> for u8 {
    fn from(kind: RecordType) -> Self {
        match kind {
            RecordType::BeginRequest => 1,
            RecordType::AbortRequest => 2,
            RecordType::EndRequest => 3,
            RecordType::Params => 4,
            RecordType::Stdin => 5,
            RecordType::Stdout => 6,
            RecordType::Stderr => 7,
            RecordType::Data => 8,
            RecordType::GetValues => 9,
            RecordType::GetValuesResult => 10,
            RecordType::UnknownType => 11,
            RecordType::Unknown(other) => other,
        }
    }
}

/// A record header, as it stands on the wire.
///
/// ```
/// use fcgi_codec::{Header, RecordType};
///
/// // An FCGI_STDIN record for request 1 with 5 bytes of content and 3 of padding.
/// let header = Header::parse(&[1, 5, 0, 1, 0, 5, 3, 0]);
/// assert_eq!(header.record_type, RecordType::Stdin);
/// assert_eq!(header.request_id, 1);
/// assert_eq!(header.record_len(), 8 + 5 + 3);
/// assert_eq!(header.encode(), [1, 5, 0, 1, 0, 5, 3, 0]);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// Protocol version; [`VERSION_1`] is the only valid one.
    pub version: u8,
    /// What the record carries.
    pub record_type: RecordType,
    /// The request this record belongs to; [`NULL_REQUEST_ID`] for management records.
    pub request_id: u16,
    /// Bytes of content after the header.
    pub content_length: u16,
    /// Bytes of padding after the content, which receivers skip.
    pub padding_length: u8,
}

impl Header {
    /// A version-1 header.
    pub fn new(record_type: RecordType, request_id: u16, content_length: u16) -> Header {
        Header { version: VERSION_1, record_type, request_id, content_length, padding_length: 0 }
    }

    /// Reads a header from its 8 wire bytes. Every byte pattern is a header; whether its version
    /// is acceptable is for the decoder to say.
    pub fn parse(bytes: &[u8; HEADER_LEN]) -> Header {
        Header {
            version: bytes[0],
            record_type: RecordType::from(bytes[1]),
            request_id: BigEndian::read_u16(&bytes[2..4]),
            content_length: BigEndian::read_u16(&bytes[4..6]),
            padding_length: bytes[6],
        }
    }

    /// The 8 wire bytes of this header (the reserved byte is zero).
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut bytes = [0u8; HEADER_LEN];
        bytes[0] = self.version;
        bytes[1] = u8::from(self.record_type);
        BigEndian::write_u16(&mut bytes[2..4], self.request_id);
        BigEndian::write_u16(&mut bytes[4..6], self.content_length);
        bytes[6] = self.padding_length;
        bytes
    }

    /// Length of the whole record on the wire: header, content and padding.
    pub fn record_len(&self) -> usize {
        HEADER_LEN + usize::from(self.content_length) + usize::from(self.padding_length)
    }
}
