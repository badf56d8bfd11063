//! The `FCGI_PARAMS` stream of one request, decoded as it arrives.
//!
//! The spec lets a name-value pair straddle two `FCGI_PARAMS` records, so pairs are read from the
//! stream, not from each record. The stream's bytes are kept in one buffer, in wire form, and the
//! pairs are an index into it: no copy per name or value, one allocation for the whole stream.

use crate::error::ParamsError;
use crate::name_value::PairHead;

/// Limits on one request's params stream. Every check happens as bytes arrive, and a pair whose
/// lengths claim too much is refused before its bytes come.
///
/// ```
/// use fcgi_codec::ParamsLimits;
///
/// let limits = ParamsLimits { max_len: 16 * 1024, ..ParamsLimits::default() };
/// assert_eq!(limits.max_pairs, ParamsLimits::DEFAULT_MAX_PAIRS);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ParamsLimits {
    /// Largest params stream, in bytes on the wire (lengths, names and values).
    pub max_len: usize,
    /// Most name-value pairs in one stream.
    pub max_pairs: usize,
}

impl ParamsLimits {
    /// 64 KiB: nginx's default header buffers (`large_client_header_buffers 4 8k`) plus its
    /// `fastcgi_params` come to about 33 KiB at the very most; twice that leaves room for long
    /// cookies and custom params while bounding what a peer can make us hold.
    pub const DEFAULT_MAX_LEN: usize = 64 * 1024;

    /// 1,024 pairs: nginx sends about 30 params plus one per request header, and caps headers
    /// far below this; each pair costs 24 bytes of index, so the index stays under 24 KiB.
    pub const DEFAULT_MAX_PAIRS: usize = 1024;
}

impl Default for ParamsLimits {
    fn default() -> Self {
        ParamsLimits { max_len: Self::DEFAULT_MAX_LEN, max_pairs: Self::DEFAULT_MAX_PAIRS }
    }
}

/// Where one pair's name and value lie in the stream buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Span {
    name_start: usize,
    name_len: usize,
    value_len: usize,
}

impl Span {
    fn name<'a>(&self, bytes: &'a [u8]) -> &'a [u8] {
        bytes.get(self.name_start..self.name_start + self.name_len).unwrap_or_default()
    }

    fn value<'a>(&self, bytes: &'a [u8]) -> &'a [u8] {
        let start = self.name_start + self.name_len;
        bytes.get(start..start + self.value_len).unwrap_or_default()
    }
}

/// Decodes one request's params stream, record by record.
///
/// Feed it the content of each `FCGI_PARAMS` record with [`push`](ParamsDecoder::push), and call
/// [`finish`](ParamsDecoder::finish) when the empty record that ends the stream arrives.
///
/// ```
/// use fcgi_codec::{encode_pair, ParamsDecoder, ParamsLimits};
///
/// let mut stream = Vec::new();
/// encode_pair(&mut stream, b"REQUEST_METHOD", b"GET").unwrap();
/// encode_pair(&mut stream, b"SCRIPT_NAME", b"/index.php").unwrap();
///
/// // The records may cut the stream anywhere, even inside a pair.
/// let mut decoder = ParamsDecoder::new(ParamsLimits::default());
/// decoder.push(&stream[..5]).unwrap();
/// decoder.push(&stream[5..]).unwrap();
/// let params = decoder.finish().unwrap();
///
/// assert_eq!(params.get(b"SCRIPT_NAME"), Some(&b"/index.php"[..]));
/// assert_eq!(params.len(), 2);
/// ```
#[derive(Clone, Debug)]
pub struct ParamsDecoder {
    bytes: Vec<u8>,
    spans: Vec<Span>,
    /// Bytes of `bytes` that form complete pairs, all indexed in `spans`.
    parsed: usize,
    limits: ParamsLimits,
}

impl ParamsDecoder {
    /// A decoder for one stream, under `limits`.
    pub fn new(limits: ParamsLimits) -> ParamsDecoder {
        ParamsDecoder { bytes: Vec::new(), spans: Vec::new(), parsed: 0, limits }
    }

    /// Takes the content of one `FCGI_PARAMS` record.
    ///
    /// After an error the stream is lost: answer the request with an error and drop the decoder.
    pub fn push(&mut self, chunk: &[u8]) -> Result<(), ParamsError> {
        let len = self.bytes.len().saturating_add(chunk.len());
        if len > self.limits.max_len {
            return Err(ParamsError::TooLarge { len, limit: self.limits.max_len });
        }
        self.bytes.extend_from_slice(chunk);
        while let Some(head) = self.bytes.get(self.parsed..).and_then(PairHead::parse) {
            let end = self.parsed.saturating_add(head.pair_len());
            if end > self.limits.max_len {
                return Err(ParamsError::TooLarge { len: end, limit: self.limits.max_len });
            }
            if end > self.bytes.len() {
                break;
            }
            if self.spans.len() >= self.limits.max_pairs {
                return Err(ParamsError::TooManyPairs { limit: self.limits.max_pairs });
            }
            self.spans.push(Span {
                name_start: self.parsed + head.head_len,
                name_len: head.name_len,
                value_len: head.value_len,
            });
            self.parsed = end;
        }
        Ok(())
    }

    /// Bytes of the stream received so far.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Whether no byte of the stream has arrived yet.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// Ends the stream (its empty record has arrived) and hands over the params.
    pub fn finish(self) -> Result<Params, ParamsError> {
        let rest = self.bytes.get(self.parsed..).unwrap_or_default();
        if !rest.is_empty() {
            let offset = self.parsed;
            return Err(match PairHead::parse(rest) {
                None => ParamsError::TruncatedLength { offset },
                Some(head) => ParamsError::PairLongerThanStream {
                    offset,
                    name_len: head.name_len,
                    value_len: head.value_len,
                    available: rest.len() - head.head_len,
                },
            });
        }
        Ok(Params { bytes: self.bytes, spans: self.spans })
    }
}

/// The params of one request: CGI variables and the like, as byte strings.
///
/// Names are compared byte for byte. Where a name comes twice, [`get`](Params::get) returns the
/// last value, as PHP-FPM does, and [`iter`](Params::iter) yields both.
///
/// ```
/// use fcgi_codec::{encode_pair, ParamsDecoder, ParamsLimits};
///
/// let mut stream = Vec::new();
/// encode_pair(&mut stream, b"QUERY_STRING", b"a=1").unwrap();
/// let mut decoder = ParamsDecoder::new(ParamsLimits::default());
/// decoder.push(&stream).unwrap();
/// let params = decoder.finish().unwrap();
///
/// for (name, value) in params.iter() {
///     assert_eq!((name, value), (&b"QUERY_STRING"[..], &b"a=1"[..]));
/// }
/// assert_eq!(params.get(b"PATH_INFO"), None);
/// ```
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Params {
    bytes: Vec<u8>,
    spans: Vec<Span>,
}

impl Params {
    /// The value of `name`, if the stream carried it (the last one, if it came twice).
    pub fn get(&self, name: &[u8]) -> Option<&[u8]> {
        self.spans
            .iter()
            .rev()
            .find(|span| span.name(&self.bytes) == name)
            .map(|span| span.value(&self.bytes))
    }

    /// Every pair, in the order they came.
    pub fn iter(&self) -> ParamsIter<'_> {
        ParamsIter { bytes: &self.bytes, spans: self.spans.iter() }
    }

    /// How many pairs there are.
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// The stream as it came on the wire: lengths, names and values.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }
}

impl std::fmt::Debug for Params {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map()
            .entries(
                self.iter().map(|(n, v)| (String::from_utf8_lossy(n), String::from_utf8_lossy(v))),
            )
            .finish()
    }
}

impl<'a> IntoIterator for &'a Params {
    type Item = (&'a [u8], &'a [u8]);
    type IntoIter = ParamsIter<'a>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

/// Iterator over the pairs of [`Params`], from [`Params::iter`].
#[derive(Clone, Debug)]
pub struct ParamsIter<'a> {
    bytes: &'a [u8],
    spans: std::slice::Iter<'a, Span>,
}

impl<'a> Iterator for ParamsIter<'a> {
    type Item = (&'a [u8], &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        self.spans.next().map(|span| (span.name(self.bytes), span.value(self.bytes)))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.spans.size_hint()
    }
}

impl ExactSizeIterator for ParamsIter<'_> {}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(max_len: usize, max_pairs: usize) -> ParamsLimits {
        ParamsLimits { max_len, max_pairs }
    }

    #[test]
    fn pair_straddling_records_is_joined() {
        let stream = b"\x04\x05HOSTlocal";
        for cut in 0..=stream.len() {
            let mut decoder = ParamsDecoder::new(ParamsLimits::default());
            decoder.push(&stream[..cut]).unwrap();
            decoder.push(&stream[cut..]).unwrap();
            let params = decoder.finish().unwrap();
            assert_eq!(params.get(b"HOST"), Some(&b"local"[..]), "cut at {cut}");
        }
    }

    #[test]
    fn absurd_length_is_refused_before_its_bytes_arrive() {
        let mut decoder = ParamsDecoder::new(ParamsLimits::default());
        // Name length 2^31 - 1, announced in the first 5 bytes.
        let err = decoder.push(&[0xff, 0xff, 0xff, 0xff, 0x00]).unwrap_err();
        assert_eq!(err, ParamsError::TooLarge { len: 5 + 0x7fff_ffff, limit: 64 * 1024 });
        assert!(decoder.bytes.capacity() < 1024, "nothing was reserved for the claimed length");
    }

    #[test]
    fn stream_over_the_limit_is_refused() {
        let mut decoder = ParamsDecoder::new(limits(8, 10));
        decoder.push(b"\x01\x01ab").unwrap();
        assert_eq!(
            decoder.push(b"\x01\x01cd\x00"),
            Err(ParamsError::TooLarge { len: 9, limit: 8 })
        );
    }

    #[test]
    fn too_many_pairs_is_refused() {
        let mut decoder = ParamsDecoder::new(limits(1024, 2));
        assert_eq!(
            decoder.push(b"\x00\x00\x00\x00\x00\x00"),
            Err(ParamsError::TooManyPairs { limit: 2 })
        );
    }

    #[test]
    fn stream_ending_inside_lengths_is_a_truncated_pair() {
        let mut decoder = ParamsDecoder::new(ParamsLimits::default());
        decoder.push(b"\x01\x01ab\x80\x00").unwrap();
        assert_eq!(decoder.finish(), Err(ParamsError::TruncatedLength { offset: 4 }));
    }

    #[test]
    fn stream_ending_inside_a_value_is_a_pair_longer_than_its_stream() {
        let mut decoder = ParamsDecoder::new(ParamsLimits::default());
        decoder.push(b"\x01\x05abc").unwrap();
        assert_eq!(
            decoder.finish(),
            Err(ParamsError::PairLongerThanStream {
                offset: 0,
                name_len: 1,
                value_len: 5,
                available: 3
            })
        );
    }

    #[test]
    fn last_duplicate_wins_and_both_are_listed() {
        let mut decoder = ParamsDecoder::new(ParamsLimits::default());
        decoder.push(b"\x01\x01a1\x01\x01a2").unwrap();
        let params = decoder.finish().unwrap();
        assert_eq!(params.get(b"a"), Some(&b"2"[..]));
        assert_eq!(params.iter().count(), 2);
    }

    #[test]
    fn empty_stream_is_no_params() {
        let params = ParamsDecoder::new(ParamsLimits::default()).finish().unwrap();
        assert!(params.is_empty());
        assert_eq!(params.get(b""), None);
    }
}
