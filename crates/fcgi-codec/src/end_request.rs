//! `FCGI_END_REQUEST`: how a request ended.

use byteorder::{BigEndian, ByteOrder};

/// The protocol-level outcome of a request.
///
/// ```
/// use fcgi_codec::ProtocolStatus;
///
/// assert_eq!(ProtocolStatus::from(2), ProtocolStatus::Overloaded);
/// assert_eq!(u8::from(ProtocolStatus::Unknown(7)), 7);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ProtocolStatus {
    /// `FCGI_REQUEST_COMPLETE` (0): the request ran; see the application status.
    RequestComplete,
    /// `FCGI_CANT_MPX_CONN` (1): the application does not multiplex and the connection is busy.
    CantMpxConn,
    /// `FCGI_OVERLOADED` (2): the application is out of a resource (threads, connections).
    Overloaded,
    /// `FCGI_UNKNOWN_ROLE` (3): the application does not play the role asked for.
    UnknownRole,
    /// Any other value, kept as it came.
    Unknown(u8),
}

impl From<u8> for ProtocolStatus {
    fn from(value: u8) -> Self {
        match value {
            0 => ProtocolStatus::RequestComplete,
            1 => ProtocolStatus::CantMpxConn,
            2 => ProtocolStatus::Overloaded,
            3 => ProtocolStatus::UnknownRole,
            other => ProtocolStatus::Unknown(other),
        }
    }
}

impl From<ProtocolStatus> for u8 {
    fn from(status: ProtocolStatus) -> Self {
        match status {
            ProtocolStatus::RequestComplete => 0,
            ProtocolStatus::CantMpxConn => 1,
            ProtocolStatus::Overloaded => 2,
            ProtocolStatus::UnknownRole => 3,
            ProtocolStatus::Unknown(other) => other,
        }
    }
}

/// The body of an `FCGI_END_REQUEST` record: 8 bytes on the wire.
///
/// ```
/// use fcgi_codec::{EndRequest, ProtocolStatus};
///
/// let body = EndRequest::parse(&[0, 0, 0, 1, 2, 0, 0, 0]);
/// assert_eq!(body.app_status, 1);
/// assert_eq!(body.protocol_status, ProtocolStatus::Overloaded);
/// assert_eq!(EndRequest::complete(0).encode(), [0; 8]);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EndRequest {
    /// The application's exit status, as a CGI program's would be.
    pub app_status: u32,
    /// The protocol-level outcome.
    pub protocol_status: ProtocolStatus,
}

impl EndRequest {
    /// Length of the body on the wire.
    pub const LEN: usize = 8;

    /// A request that ran to completion with the given application status.
    pub fn complete(app_status: u32) -> EndRequest {
        EndRequest { app_status, protocol_status: ProtocolStatus::RequestComplete }
    }

    /// Reads the body from its 8 wire bytes (the 3 reserved bytes are ignored).
    pub fn parse(bytes: &[u8; Self::LEN]) -> EndRequest {
        EndRequest {
            app_status: BigEndian::read_u32(&bytes[0..4]),
            protocol_status: ProtocolStatus::from(bytes[4]),
        }
    }

    /// The 8 wire bytes of this body.
    pub fn encode(&self) -> [u8; Self::LEN] {
        let mut bytes = [0u8; Self::LEN];
        BigEndian::write_u32(&mut bytes[0..4], self.app_status);
        bytes[4] = u8::from(self.protocol_status);
        bytes
    }
}
