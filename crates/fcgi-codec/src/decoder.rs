//! The incremental decoder: bytes in as they arrive, split anywhere; records out, borrowed.

use std::io::{self, Read};

use crate::error::DecodeError;
use crate::header::MAX_RECORD_LEN;
use crate::Record;

/// Decodes a stream of records from bytes that arrive in pieces of any size.
///
/// The decoder owns a buffer that grows only as bytes arrive, never because a header claims a
/// length, and never past its maximum (by default [`Decoder::DEFAULT_MAX_BUFFER`]; never less
/// than one whole record, [`MAX_RECORD_LEN`]). Records are handed out borrowing from that buffer,
/// so a body is never copied.
///
/// ```
/// use fcgi_codec::{Body, Decoder, Role};
///
/// let wire: &[u8] = &[
///     1, 1, 0, 1, 0, 8, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0, // BEGIN_REQUEST: responder, keep-conn
///     1, 5, 0, 1, 0, 0, 0, 0,                         // STDIN: empty, the end of the body
/// ];
/// let mut decoder = Decoder::new();
/// // One byte at a time is fine: a record comes out once it is whole.
/// let mut records = Vec::new();
/// for byte in wire {
///     assert_eq!(decoder.feed(std::slice::from_ref(byte)), 1);
///     while let Some(record) = decoder.decode().unwrap() {
///         records.push(record.body.record_type());
///     }
/// }
/// assert_eq!(records.len(), 2);
/// assert!(decoder.is_empty());
/// ```
#[derive(Debug)]
pub struct Decoder {
    /// Storage; `buf.len()` is the capacity in use, bytes `start..end` are buffered input.
    buf: Vec<u8>,
    start: usize,
    end: usize,
    max_buffer: usize,
    /// Set once the stream has proved broken: every later call reports it again.
    error: Option<DecodeError>,
}

impl Default for Decoder {
    fn default() -> Self {
        Decoder::new()
    }
}

impl Decoder {
    /// 128 KiB: room for one largest record and then some, so that a read rarely has to stop
    /// short of a record boundary.
    pub const DEFAULT_MAX_BUFFER: usize = 128 * 1024;

    /// First allocation: a typical request from nginx (BEGIN_REQUEST, params, empty STDIN) is
    /// about 1 KiB, so most connections never need more than this.
    const INITIAL_BUFFER: usize = 4 * 1024;

    /// A decoder with the default maximum buffer. Allocates nothing until bytes arrive.
    pub fn new() -> Decoder {
        Decoder::with_max_buffer(Self::DEFAULT_MAX_BUFFER)
    }

    /// A decoder that buffers at most `max_buffer` bytes (raised to [`MAX_RECORD_LEN`] if lower).
    pub fn with_max_buffer(max_buffer: usize) -> Decoder {
        Decoder {
            buf: Vec::new(),
            start: 0,
            end: 0,
            max_buffer: max_buffer.max(MAX_RECORD_LEN),
            error: None,
        }
    }

    /// The next complete record, if the buffered bytes hold one.
    ///
    /// `Ok(None)` means more bytes are needed. After an error the stream cannot be trusted any
    /// more and every later call returns the same error.
    pub fn decode(&mut self) -> Result<Option<Record<'_>>, DecodeError> {
        if let Some(error) = &self.error {
            return Err(error.clone());
        }
        let input = self.buf.get(self.start..self.end).unwrap_or_default();
        match Record::decode(input) {
            Ok(Some((record, len))) => {
                self.start += len;
                Ok(Some(record))
            }
            Ok(None) => Ok(None),
            Err(error) => {
                self.error = Some(error.clone());
                Err(error)
            }
        }
    }

    /// Copies as much of `bytes` into the buffer as fits, and returns how much that was.
    ///
    /// Less than all of `bytes` is taken only when the buffer is full of whole records not yet
    /// decoded: call [`decode`](Decoder::decode) until it returns `Ok(None)`, then feed the rest.
    pub fn feed(&mut self, bytes: &[u8]) -> usize {
        let spare = self.spare();
        let n = spare.len().min(bytes.len());
        spare[..n].copy_from_slice(&bytes[..n]);
        self.end += n;
        n
    }

    /// Reads once from `src` straight into the buffer, and returns what `read` returned:
    /// `Ok(0)` is the end of the stream (or a buffer full of undecoded records), and a
    /// non-blocking source's `WouldBlock` comes back as it is.
    pub fn read_from<R: Read + ?Sized>(&mut self, src: &mut R) -> io::Result<usize> {
        let n = src.read(self.spare())?;
        self.end += n;
        Ok(n)
    }

    /// Bytes received but not yet handed out as records.
    pub fn buffered(&self) -> usize {
        self.end - self.start
    }

    /// Whether the decoder stands at a record boundary with nothing buffered: where a peer may
    /// close the connection cleanly.
    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }

    /// Bytes the buffer holds allocated now.
    pub fn allocated(&self) -> usize {
        self.buf.capacity()
    }

    /// Frees the buffer if nothing is buffered; an idle connection then costs no buffer at all.
    pub fn release_buffer(&mut self) {
        if self.is_empty() {
            self.buf = Vec::new();
            self.start = 0;
            self.end = 0;
        }
    }

    /// Free space at the end of the buffer, made by moving buffered bytes to the front and
    /// growing (doubling, up to the maximum) only when that is not enough.
    fn spare(&mut self) -> &mut [u8] {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
        if self.end == self.buf.len() {
            if self.start > 0 {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            }
            if self.end == self.buf.len() && self.buf.len() < self.max_buffer {
                let grown = (self.buf.len() * 2).clamp(Self::INITIAL_BUFFER, self.max_buffer);
                self.buf.resize(grown, 0);
            }
        }
        self.buf.get_mut(self.end..).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Body;

    fn stdin(request_id: u16, content: &[u8]) -> Vec<u8> {
        let mut wire = vec![1, 5];
        wire.extend_from_slice(&request_id.to_be_bytes());
        wire.extend_from_slice(&u16::try_from(content.len()).unwrap().to_be_bytes());
        wire.extend_from_slice(&[0, 0]);
        wire.extend_from_slice(content);
        wire
    }

    #[test]
    fn buffer_grows_with_arrived_bytes_not_claimed_length() {
        let mut decoder = Decoder::new();
        // A header claiming 65,535 bytes of content: only the header has arrived.
        decoder.feed(&[1, 5, 0, 1, 0xff, 0xff, 0, 0]);
        assert_eq!(decoder.decode(), Ok(None));
        assert_eq!(decoder.allocated(), Decoder::INITIAL_BUFFER);
    }

    #[test]
    fn buffer_never_exceeds_its_maximum() {
        let mut decoder = Decoder::new();
        let record = stdin(1, &[7; 65_535]);
        let mut wire = Vec::new();
        for _ in 0..4 {
            wire.extend_from_slice(&record);
        }
        let mut offset = 0;
        let mut decoded = 0;
        while offset < wire.len() {
            offset += decoder.feed(&wire[offset..]);
            assert!(decoder.allocated() <= Decoder::DEFAULT_MAX_BUFFER);
            while let Some(record) = decoder.decode().unwrap() {
                assert_eq!(record.body, Body::Stdin(&[7; 65_535][..]));
                decoded += 1;
            }
        }
        assert_eq!(decoded, 4);
    }

    #[test]
    fn error_is_sticky() {
        let mut decoder = Decoder::new();
        decoder.feed(b"GET / HTTP/1.1\r\n");
        let first = decoder.decode().unwrap_err();
        assert_eq!(first, DecodeError::UnsupportedVersion { version: b'G' });
        decoder.feed(&stdin(1, b"fine"));
        assert_eq!(decoder.decode().unwrap_err(), first);
    }

    #[test]
    fn release_buffer_only_when_empty() {
        let mut decoder = Decoder::new();
        decoder.feed(&[1, 5]);
        decoder.release_buffer();
        assert!(decoder.allocated() > 0, "a partial header is kept");
        decoder.feed(&[0, 1, 0, 0, 0, 0]);
        assert!(decoder.decode().unwrap().is_some());
        decoder.release_buffer();
        assert_eq!(decoder.allocated(), 0);
    }

    #[test]
    fn read_from_reads_into_the_buffer() {
        let wire = stdin(3, b"abc");
        let mut decoder = Decoder::new();
        let mut src = &wire[..];
        assert_eq!(decoder.read_from(&mut src).unwrap(), wire.len());
        let record = decoder.decode().unwrap().unwrap();
        assert_eq!(record, Record { request_id: 3, body: Body::Stdin(b"abc") });
        assert_eq!(decoder.read_from(&mut src).unwrap(), 0);
    }
}
