//! `FCGI_UNKNOWN_TYPE`: the answer to a management record the application does not know.

use crate::RecordType;

/// The body of an `FCGI_UNKNOWN_TYPE` record: 8 bytes on the wire, naming the type that was not
/// understood.
///
/// ```
/// use fcgi_codec::{RecordType, UnknownType};
///
/// let body = UnknownType { record_type: RecordType::Unknown(42) };
/// assert_eq!(body.encode(), [42, 0, 0, 0, 0, 0, 0, 0]);
/// assert_eq!(UnknownType::parse(&body.encode()), body);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UnknownType {
    /// The type the application did not understand.
    pub record_type: RecordType,
}

impl UnknownType {
    /// Length of the body on the wire.
    pub const LEN: usize = 8;

    /// Reads the body from its 8 wire bytes (the 7 reserved bytes are ignored).
    pub fn parse(bytes: &[u8; Self::LEN]) -> UnknownType {
        UnknownType { record_type: RecordType::from(bytes[0]) }
    }

    /// The 8 wire bytes of this body.
    pub fn encode(&self) -> [u8; Self::LEN] {
        let mut bytes = [0u8; Self::LEN];
        bytes[0] = u8::from(self.record_type);
        bytes
    }
}
