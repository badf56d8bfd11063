//! What can be wrong with bytes from the peer.
//!
//! Two levels, kept apart because they call for different answers:
//! - [`DecodeError`]: the record stream itself is broken. Framing cannot be trusted any more,
//!   so the connection has to close.
//! - [`ParamsError`]: one request's params stream is malformed or over a limit. That request is
//!   answered with an error; the connection and its other requests go on.
//!
//! Both come from the peer. Misuse of this crate's API by the caller is never reported through
//! them.

use std::fmt;

use crate::RecordType;

/// The record stream from the peer is broken.
///
/// Once a [`Decoder`](crate::Decoder) has returned one of these it returns the same error from
/// then on: a stream whose framing was wrong once cannot be resynchronised.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// The header's version byte is not `FCGI_VERSION_1`. Usually this means the peer does not
    /// speak FastCGI at all (an HTTP request sent to a FastCGI port, say).
    UnsupportedVersion {
        /// The version byte that came.
        version: u8,
    },
    /// A record whose body has a fixed size (`FCGI_BEGIN_REQUEST`, `FCGI_ABORT_REQUEST`,
    /// `FCGI_END_REQUEST`, `FCGI_UNKNOWN_TYPE`) came with another content length.
    BodyLength {
        /// The record's type.
        record_type: RecordType,
        /// The record's request id.
        request_id: u16,
        /// The length the spec gives this body.
        expected: usize,
        /// The content length the header gave.
        actual: usize,
    },
    /// The name-value pairs of a `FCGI_GET_VALUES` or `FCGI_GET_VALUES_RESULT` record do not fit
    /// its body.
    Pairs {
        /// The record's type.
        record_type: RecordType,
        /// What is wrong with the pairs.
        error: PairError,
    },
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::UnsupportedVersion { version } => {
                write!(f, "unsupported FastCGI version {version} (only version 1 exists)")
            }
            DecodeError::BodyLength { record_type, request_id, expected, actual } => write!(
                f,
                "{record_type:?} record for request {request_id} has a {actual}-byte body; \
                 the spec gives it {expected} bytes"
            ),
            DecodeError::Pairs { record_type, error } => {
                write!(f, "malformed name-value pairs in a {record_type:?} record: {error}")
            }
        }
    }
}

impl std::error::Error for DecodeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            DecodeError::Pairs { error, .. } => Some(error),
            _ => None,
        }
    }
}

/// Name-value pairs that do not fit the body that carries them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PairError {
    /// The body ends in the middle of a pair's lengths.
    TruncatedLength {
        /// Where the pair starts in the body.
        offset: usize,
    },
    /// A pair's lengths claim more bytes than the body has left.
    PairLongerThanInput {
        /// Where the pair starts in the body.
        offset: usize,
        /// The name length the pair claims.
        name_len: usize,
        /// The value length the pair claims.
        value_len: usize,
        /// The bytes the body has after the pair's lengths.
        available: usize,
    },
}

impl fmt::Display for PairError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PairError::TruncatedLength { offset } => {
                write!(f, "the body ends inside the lengths of the pair at byte {offset}")
            }
            PairError::PairLongerThanInput { offset, name_len, value_len, available } => write!(
                f,
                "the pair at byte {offset} claims a {name_len}-byte name and a {value_len}-byte \
                 value, but only {available} bytes follow"
            ),
        }
    }
}

impl std::error::Error for PairError {}

/// One request's `FCGI_PARAMS` stream is malformed or over a limit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ParamsError {
    /// The stream, or a pair it announces, goes past
    /// [`ParamsLimits::max_len`](crate::ParamsLimits::max_len). Reported as soon as a pair's
    /// lengths claim too much, before its bytes arrive.
    TooLarge {
        /// Bytes the stream has reached, or would reach with the announced pair.
        len: usize,
        /// The limit in force.
        limit: usize,
    },
    /// The stream carries more pairs than
    /// [`ParamsLimits::max_pairs`](crate::ParamsLimits::max_pairs).
    TooManyPairs {
        /// The limit in force.
        limit: usize,
    },
    /// The stream ended in the middle of a pair's lengths.
    TruncatedLength {
        /// Where the pair starts in the stream.
        offset: usize,
    },
    /// The stream ended before a pair's name and value were complete: the pair is longer than
    /// its stream.
    PairLongerThanStream {
        /// Where the pair starts in the stream.
        offset: usize,
        /// The name length the pair claims.
        name_len: usize,
        /// The value length the pair claims.
        value_len: usize,
        /// The bytes the stream had after the pair's lengths.
        available: usize,
    },
}

impl fmt::Display for ParamsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParamsError::TooLarge { len, limit } => {
                write!(f, "params stream reaches {len} bytes, over the {limit}-byte limit")
            }
            ParamsError::TooManyPairs { limit } => {
                write!(f, "params stream has more than {limit} name-value pairs")
            }
            ParamsError::TruncatedLength { offset } => {
                write!(f, "params stream ends inside the lengths of the pair at byte {offset}")
            }
            ParamsError::PairLongerThanStream { offset, name_len, value_len, available } => {
                write!(
                    f,
                    "the params pair at byte {offset} claims a {name_len}-byte name and a \
                     {value_len}-byte value, but the stream ends {available} bytes later"
                )
            }
        }
    }
}

impl std::error::Error for ParamsError {}
