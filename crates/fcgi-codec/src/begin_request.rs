//! `FCGI_BEGIN_REQUEST`: the role the application plays, and whether to keep the connection.

use byteorder::{BigEndian, ByteOrder};

/// The role the web server asks the application to play for one request.
///
/// Values this crate does not know are kept in [`Role::Unknown`], so that a server can answer
/// them with `FCGI_UNKNOWN_ROLE`.
///
/// ```
/// use fcgi_codec::Role;
///
/// assert_eq!(Role::from(2), Role::Authorizer);
/// assert_eq!(Role::from(9), Role::Unknown(9));
/// assert_eq!(u16::from(Role::Filter), 3);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// `FCGI_RESPONDER` (1): the CGI/1.1 role, answering a request with a response.
    Responder,
    /// `FCGI_AUTHORIZER` (2): answers whether a request may go on (200) or not.
    Authorizer,
    /// `FCGI_FILTER` (3): a responder with a second input stream, `FCGI_DATA`.
    Filter,
    /// Any other value, kept as it came.
    Unknown(u16),
}

impl From<u16> for Role {
    fn from(value: u16) -> Self {
        match value {
            1 => Role::Responder,
            2 => Role::Authorizer,
            3 => Role::Filter,
            other => Role::Unknown(other),
        }
    }
}

impl From<Role> for u16 {
    fn from(role: Role) -> Self {
        match role {
            Role::Responder => 1,
            Role::Authorizer => 2,
            Role::Filter => 3,
            Role::Unknown(other) => other,
        }
    }
}

/// The body of an `FCGI_BEGIN_REQUEST` record: 8 bytes on the wire.
///
/// ```
/// use fcgi_codec::{BeginRequest, Role};
///
/// let body = BeginRequest::parse(&[0, 1, 1, 0, 0, 0, 0, 0]);
/// assert_eq!(body.role, Role::Responder);
/// assert!(body.keep_conn());
/// assert_eq!(body.encode(), [0, 1, 1, 0, 0, 0, 0, 0]);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BeginRequest {
    /// The role asked for.
    pub role: Role,
    /// The flags byte, kept whole so that bits this crate does not know survive a round trip.
    pub flags: u8,
}

impl BeginRequest {
    /// Length of the body on the wire.
    pub const LEN: usize = 8;

    /// `FCGI_KEEP_CONN`: the web server keeps the connection open after the request ends.
    pub const KEEP_CONN: u8 = 1;

    /// A body for `role`, with `FCGI_KEEP_CONN` set when `keep_conn` is.
    pub fn new(role: Role, keep_conn: bool) -> BeginRequest {
        BeginRequest { role, flags: if keep_conn { Self::KEEP_CONN } else { 0 } }
    }

    /// Whether the web server keeps the connection after this request: without the flag the
    /// application closes it once the request has ended.
    pub fn keep_conn(&self) -> bool {
        self.flags & Self::KEEP_CONN != 0
    }

    /// Reads the body from its 8 wire bytes (the 5 reserved bytes are ignored).
    pub fn parse(bytes: &[u8; Self::LEN]) -> BeginRequest {
        BeginRequest { role: Role::from(BigEndian::read_u16(&bytes[0..2])), flags: bytes[2] }
    }

    /// The 8 wire bytes of this body.
    pub fn encode(&self) -> [u8; Self::LEN] {
        let mut bytes = [0u8; Self::LEN];
        BigEndian::write_u16(&mut bytes[0..2], u16::from(self.role));
        bytes[2] = self.flags;
        bytes
    }
}
