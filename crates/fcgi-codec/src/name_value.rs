//! Name-value pairs: the body format of `FCGI_PARAMS`, `FCGI_GET_VALUES` and
//! `FCGI_GET_VALUES_RESULT`.
//!
//! Each pair is a name length, a value length, the name and the value. A length below 128 takes
//! one byte; a longer one takes four, big-endian, with the top bit of the first byte set, so no
//! length exceeds 2^31 − 1. Names and values are bytes, not text: nothing here assumes UTF-8 or
//! stops at a NUL.

use std::io;

use byteorder::{BigEndian, ByteOrder};

use crate::error::PairError;

/// Longest name or value a pair can carry: 2^31 − 1 bytes, the largest four-byte length.
pub const MAX_PAIR_PART_LEN: usize = 0x7fff_ffff;

/// Lengths of one pair, read from the front of a buffer before its name and value have arrived.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct PairHead {
    /// Bytes the two lengths took (2 to 8).
    pub(crate) head_len: usize,
    /// Length of the name.
    pub(crate) name_len: usize,
    /// Length of the value.
    pub(crate) value_len: usize,
}

impl PairHead {
    /// Reads the two lengths at the front of `buf`; `None` while they have not all arrived.
    pub(crate) fn parse(buf: &[u8]) -> Option<PairHead> {
        let (name_len, name_head) = read_len(buf)?;
        let (value_len, value_head) = read_len(buf.get(name_head..)?)?;
        Some(PairHead { head_len: name_head + value_head, name_len, value_len })
    }

    /// Length of the whole pair: lengths, name and value. The parts are each below 2^31, so the
    /// sum cannot overflow a 64-bit `usize`; it saturates elsewhere rather than wrap.
    pub(crate) fn pair_len(&self) -> usize {
        self.head_len.saturating_add(self.name_len).saturating_add(self.value_len)
    }
}

/// Reads one length: `None` while its bytes have not all arrived.
fn read_len(buf: &[u8]) -> Option<(usize, usize)> {
    let first = *buf.first()?;
    if first & 0x80 == 0 {
        return Some((usize::from(first), 1));
    }
    let bytes = buf.get(..4)?;
    let len = BigEndian::read_u32(bytes) & 0x7fff_ffff;
    // A u32 always fits a usize on the 32- and 64-bit targets this crate supports.
    Some((len as usize, 4))
}

/// Bytes that one length takes on the wire.
fn len_of_len(len: usize) -> usize {
    if len < 0x80 {
        1
    } else {
        4
    }
}

fn write_len(dst: &mut Vec<u8>, len: usize) {
    match u8::try_from(len) {
        Ok(byte) if byte < 0x80 => dst.push(byte),
        _ => {
            let mut bytes = [0u8; 4];
            // Callers check MAX_PAIR_PART_LEN first, so the value fits 31 bits.
            BigEndian::write_u32(&mut bytes, u32::try_from(len).unwrap_or(u32::MAX) | 0x8000_0000);
            dst.extend_from_slice(&bytes);
        }
    }
}

/// Length of a pair on the wire.
///
/// ```
/// use fcgi_codec::encoded_pair_len;
///
/// assert_eq!(encoded_pair_len(b"SCRIPT_NAME", b"/index.php"), 2 + 11 + 10);
/// assert_eq!(encoded_pair_len(b"X", &[b'y'; 200]), 1 + 4 + 1 + 200);
/// ```
pub fn encoded_pair_len(name: &[u8], value: &[u8]) -> usize {
    len_of_len(name.len()) + len_of_len(value.len()) + name.len() + value.len()
}

/// Appends one pair to `dst`.
///
/// A name or value longer than [`MAX_PAIR_PART_LEN`] cannot be written and is an
/// [`io::ErrorKind::InvalidInput`] error; `dst` is then left unchanged.
///
/// ```
/// use fcgi_codec::encode_pair;
///
/// let mut body = Vec::new();
/// encode_pair(&mut body, b"REQUEST_METHOD", b"GET").unwrap();
/// assert_eq!(body, b"\x0e\x03REQUEST_METHODGET");
/// ```
pub fn encode_pair(dst: &mut Vec<u8>, name: &[u8], value: &[u8]) -> io::Result<()> {
    for part in [name, value] {
        if part.len() > MAX_PAIR_PART_LEN {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "a FastCGI name or value of {} bytes exceeds the {MAX_PAIR_PART_LEN}-byte maximum",
                    part.len()
                ),
            ));
        }
    }
    dst.reserve(encoded_pair_len(name, value));
    write_len(dst, name.len());
    write_len(dst, value.len());
    dst.extend_from_slice(name);
    dst.extend_from_slice(value);
    Ok(())
}

/// The name-value pairs of one complete body (a `FCGI_GET_VALUES` or `FCGI_GET_VALUES_RESULT`
/// record), borrowed from it and checked whole before the first pair is handed out.
///
/// For the `FCGI_PARAMS` stream, whose pairs may straddle records, use
/// [`ParamsDecoder`](crate::ParamsDecoder) instead.
///
/// ```
/// use fcgi_codec::Pairs;
///
/// let pairs = Pairs::parse(b"\x0e\x00FCGI_MAX_CONNS\x0d\x00FCGI_MAX_REQS").unwrap();
/// let names: Vec<&[u8]> = pairs.map(|(name, _)| name).collect();
/// assert_eq!(names, [&b"FCGI_MAX_CONNS"[..], b"FCGI_MAX_REQS"]);
///
/// // A pair claiming more bytes than the body has is an error, not a short read.
/// assert!(Pairs::parse(b"\x0e\x05FCGI_MAX_CONNS").is_err());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pairs<'a> {
    rest: &'a [u8],
}

impl<'a> Pairs<'a> {
    /// Checks that `body` is a whole number of well-formed pairs.
    pub fn parse(body: &'a [u8]) -> Result<Pairs<'a>, PairError> {
        let mut offset = 0;
        while let Some(rest) = body.get(offset..).filter(|rest| !rest.is_empty()) {
            let head = PairHead::parse(rest).ok_or(PairError::TruncatedLength { offset })?;
            if head.pair_len() > rest.len() {
                return Err(PairError::PairLongerThanInput {
                    offset,
                    name_len: head.name_len,
                    value_len: head.value_len,
                    available: rest.len() - head.head_len,
                });
            }
            offset += head.pair_len();
        }
        Ok(Pairs { rest: body })
    }

    /// The body these pairs were read from.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.rest
    }
}

impl<'a> Iterator for Pairs<'a> {
    type Item = (&'a [u8], &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        // `parse` checked every pair, so a short buffer here only means the end.
        let head = PairHead::parse(self.rest)?;
        let name_end = head.head_len + head.name_len;
        let name = self.rest.get(head.head_len..name_end)?;
        let value = self.rest.get(name_end..head.pair_len())?;
        self.rest = self.rest.get(head.pair_len()..)?;
        Some((name, value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_switch_to_four_bytes_at_128() {
        let mut body = Vec::new();
        encode_pair(&mut body, &[b'n'; 127], &[b'v'; 128]).unwrap();
        assert_eq!(body[0], 127);
        assert_eq!(&body[1..5], &[0x80, 0, 0, 128]);
        assert_eq!(body.len(), encoded_pair_len(&[b'n'; 127], &[b'v'; 128]));
    }

    #[test]
    fn four_byte_length_ignores_the_top_bit() {
        // 0xff ff ff ff: the top bit marks the long form, the rest is 2^31 - 1.
        let head = PairHead::parse(&[0xff, 0xff, 0xff, 0xff, 0x00]).unwrap();
        assert_eq!(head.name_len, MAX_PAIR_PART_LEN);
        assert_eq!(head.value_len, 0);
        assert_eq!(head.head_len, 5);
    }

    #[test]
    fn partial_lengths_are_not_a_head() {
        assert_eq!(PairHead::parse(&[]), None);
        assert_eq!(PairHead::parse(&[3]), None);
        assert_eq!(PairHead::parse(&[0x80, 0, 0]), None);
        assert_eq!(PairHead::parse(&[0x80, 0, 0, 1, 0x80]), None);
    }

    #[test]
    fn names_and_values_are_bytes() {
        let mut body = Vec::new();
        encode_pair(&mut body, b"A\0B", b"\xff\0\xfe").unwrap();
        let pairs: Vec<_> = Pairs::parse(&body).unwrap().collect();
        assert_eq!(pairs, [(&b"A\0B"[..], &b"\xff\0\xfe"[..])]);
    }

    #[test]
    fn truncated_length_names_its_offset() {
        assert_eq!(
            Pairs::parse(b"\x01\x01ab\x81\x00"),
            Err(PairError::TruncatedLength { offset: 4 })
        );
    }
}
