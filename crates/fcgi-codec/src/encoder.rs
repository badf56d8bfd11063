//! Writing records: to a caller's `Vec<u8>` or any other [`io::Write`].

use std::io::{self, Write};

use crate::header::{Header, HEADER_LEN, MAX_CONTENT_LEN};
use crate::name_value::encode_pair;
use crate::{BeginRequest, Body, EndRequest, Record, RecordType, UnknownType};

/// The five stream record types: each stream is a run of non-empty records ended by an empty one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StreamKind {
    /// `FCGI_PARAMS`, web server to application.
    Params,
    /// `FCGI_STDIN`, web server to application.
    Stdin,
    /// `FCGI_DATA`, web server to application (Filter role).
    Data,
    /// `FCGI_STDOUT`, application to web server.
    Stdout,
    /// `FCGI_STDERR`, application to web server.
    Stderr,
}

impl From<StreamKind> for RecordType {
    fn from(kind: StreamKind) -> Self {
        match kind {
            StreamKind::Params => RecordType::Params,
            StreamKind::Stdin => RecordType::Stdin,
            StreamKind::Data => RecordType::Data,
            StreamKind::Stdout => RecordType::Stdout,
            StreamKind::Stderr => RecordType::Stderr,
        }
    }
}

/// The name-value pairs as one body.
fn encode_pairs<I, N, V>(pairs: I) -> io::Result<Vec<u8>>
where
    I: IntoIterator<Item = (N, V)>,
    N: AsRef<[u8]>,
    V: AsRef<[u8]>,
{
    let mut body = Vec::new();
    for (name, value) in pairs {
        encode_pair(&mut body, name.as_ref(), value.as_ref())?;
    }
    Ok(body)
}

/// Zero bytes to pad records with.
const PADDING: [u8; 8] = [0; 8];

/// Writes records.
///
/// Every method writes whole records to any [`io::Write`]; a `Vec<u8>` never fails. When the
/// destination is a socket, wrap it in a [`BufWriter`](std::io::BufWriter) or encode into a
/// `Vec<u8>` first: each record is written as header, content and padding.
///
/// By default records are padded to a multiple of 8 bytes, as the spec recommends; stream data
/// is then cut into records of 65,528 bytes, the largest multiple of 8 a record can carry, so
/// that only the last record of a long write needs padding.
///
/// ```
/// use fcgi_codec::{EndRequest, Encoder, StreamKind};
///
/// let encoder = Encoder::new();
/// let mut out = Vec::new();
/// encoder.stream(&mut out, StreamKind::Stdout, 1, b"Content-Type: text/plain\r\n\r\nHello, world!").unwrap();
/// encoder.end_stream(&mut out, StreamKind::Stdout, 1).unwrap();
/// encoder.end_request(&mut out, 1, &EndRequest::complete(0)).unwrap();
/// // 41 bytes of STDOUT padded to 48, an empty STDOUT record, and END_REQUEST.
/// assert_eq!(out.len(), (8 + 48) + 8 + (8 + 8));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Encoder {
    pad: bool,
}

impl Default for Encoder {
    fn default() -> Self {
        Encoder::new()
    }
}

impl Encoder {
    /// An encoder that pads records to 8-byte boundaries.
    pub const fn new() -> Encoder {
        Encoder { pad: true }
    }

    /// An encoder that pads records to 8-byte boundaries when `pad` is true, and writes no
    /// padding at all otherwise.
    pub const fn with_padding(pad: bool) -> Encoder {
        Encoder { pad }
    }

    /// Largest content this encoder puts in one stream record.
    pub const fn max_chunk(&self) -> usize {
        if self.pad {
            MAX_CONTENT_LEN & !7
        } else {
            MAX_CONTENT_LEN
        }
    }

    /// Bytes that [`stream`](Encoder::stream) writes for `len` bytes of data.
    ///
    /// ```
    /// use fcgi_codec::Encoder;
    ///
    /// assert_eq!(Encoder::new().stream_len(13), 8 + 16);
    /// assert_eq!(Encoder::with_padding(false).stream_len(13), 8 + 13);
    /// assert_eq!(Encoder::new().stream_len(0), 0);
    /// ```
    pub fn stream_len(&self, len: usize) -> usize {
        let chunk = self.max_chunk();
        let full = len / chunk;
        let last = len % chunk;
        let mut total = full * (8 + chunk + self.padding(chunk));
        if last > 0 {
            total += 8 + last + self.padding(last);
        }
        total
    }

    fn padding(&self, content_len: usize) -> usize {
        if self.pad {
            content_len.wrapping_neg() & 7
        } else {
            0
        }
    }

    /// The header and the padding that frame `len` bytes of `kind` content as one record, for
    /// a writer that sends the content from where it lies (`writev`) instead of copying it:
    /// the header, the content, then the padding make the same bytes as
    /// [`stream`](Encoder::stream). Fails when `len` is 0 (an empty record ends a stream) or
    /// over [`max_chunk`](Encoder::max_chunk).
    ///
    /// ```
    /// use fcgi_codec::{Encoder, StreamKind};
    ///
    /// let encoder = Encoder::new();
    /// let (header, padding) = encoder.frame(StreamKind::Stdout, 1, 13)?;
    /// let mut framed = header.to_vec();
    /// framed.extend_from_slice(b"Hello, world!");
    /// framed.extend_from_slice(padding);
    ///
    /// let mut encoded = Vec::new();
    /// encoder.stream(&mut encoded, StreamKind::Stdout, 1, b"Hello, world!")?;
    /// assert_eq!(framed, encoded);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn frame(
        &self,
        kind: StreamKind,
        request_id: u16,
        len: usize,
    ) -> io::Result<([u8; HEADER_LEN], &'static [u8])> {
        let content_length = u16::try_from(len)
            .ok()
            .filter(|&n| n > 0 && usize::from(n) <= self.max_chunk())
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("one record frames 1 to {} bytes, not {len}", self.max_chunk()),
                )
            })?;
        let padding = self.padding(len);
        let mut header = Header::new(kind.into(), request_id, content_length);
        header.padding_length = u8::try_from(padding).unwrap_or(0);
        Ok((header.encode(), &PADDING[..padding]))
    }

    /// Writes one record whose content is at most [`MAX_CONTENT_LEN`] bytes.
    fn write_record<W: Write + ?Sized>(
        &self,
        dst: &mut W,
        record_type: RecordType,
        request_id: u16,
        content: &[u8],
    ) -> io::Result<()> {
        let content_length = u16::try_from(content.len()).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "a {record_type:?} record cannot carry {} bytes (at most {MAX_CONTENT_LEN})",
                    content.len()
                ),
            )
        })?;
        let padding = self.padding(content.len());
        let mut header = Header::new(record_type, request_id, content_length);
        header.padding_length = u8::try_from(padding).unwrap_or(0);
        dst.write_all(&header.encode())?;
        dst.write_all(content)?;
        dst.write_all(&PADDING[..padding])
    }

    /// Writes `FCGI_BEGIN_REQUEST`.
    pub fn begin_request<W: Write + ?Sized>(
        &self,
        dst: &mut W,
        request_id: u16,
        body: &BeginRequest,
    ) -> io::Result<()> {
        self.write_record(dst, RecordType::BeginRequest, request_id, &body.encode())
    }

    /// Writes `FCGI_ABORT_REQUEST`.
    pub fn abort_request<W: Write + ?Sized>(&self, dst: &mut W, request_id: u16) -> io::Result<()> {
        self.write_record(dst, RecordType::AbortRequest, request_id, &[])
    }

    /// Writes `FCGI_END_REQUEST`.
    pub fn end_request<W: Write + ?Sized>(
        &self,
        dst: &mut W,
        request_id: u16,
        body: &EndRequest,
    ) -> io::Result<()> {
        self.write_record(dst, RecordType::EndRequest, request_id, &body.encode())
    }

    /// Writes `data` as records of stream `kind`, as many as it takes.
    ///
    /// Empty `data` writes nothing: an empty record would end the stream, which only
    /// [`end_stream`](Encoder::end_stream) does.
    pub fn stream<W: Write + ?Sized>(
        &self,
        dst: &mut W,
        kind: StreamKind,
        request_id: u16,
        data: &[u8],
    ) -> io::Result<()> {
        for chunk in data.chunks(self.max_chunk()) {
            self.write_record(dst, kind.into(), request_id, chunk)?;
        }
        Ok(())
    }

    /// Writes the empty record that ends stream `kind`.
    pub fn end_stream<W: Write + ?Sized>(
        &self,
        dst: &mut W,
        kind: StreamKind,
        request_id: u16,
    ) -> io::Result<()> {
        self.write_record(dst, kind.into(), request_id, &[])
    }

    /// Writes a whole `FCGI_PARAMS` stream: the pairs, over as many records as they take, and
    /// the empty record that ends it.
    ///
    /// ```
    /// use fcgi_codec::Encoder;
    ///
    /// let mut out = Vec::new();
    /// Encoder::new().params(&mut out, 1, [("REQUEST_METHOD", "GET"), ("SCRIPT_NAME", "/")]).unwrap();
    /// // 33 bytes of pairs padded to 40, then the empty record that ends the stream.
    /// assert_eq!(out.len(), 8 + 40 + 8);
    /// ```
    pub fn params<W, I, N, V>(&self, dst: &mut W, request_id: u16, pairs: I) -> io::Result<()>
    where
        W: Write + ?Sized,
        I: IntoIterator<Item = (N, V)>,
        N: AsRef<[u8]>,
        V: AsRef<[u8]>,
    {
        let body = encode_pairs(pairs)?;
        self.stream(dst, StreamKind::Params, request_id, &body)?;
        self.end_stream(dst, StreamKind::Params, request_id)
    }

    /// Writes `FCGI_GET_VALUES` asking for `names`.
    pub fn get_values<W, I, N>(&self, dst: &mut W, names: I) -> io::Result<()>
    where
        W: Write + ?Sized,
        I: IntoIterator<Item = N>,
        N: AsRef<[u8]>,
    {
        let empty: &[u8] = &[];
        self.pairs_record(dst, RecordType::GetValues, names.into_iter().map(|name| (name, empty)))
    }

    /// Writes `FCGI_GET_VALUES_RESULT` with `pairs`. The answer must fit one record.
    pub fn get_values_result<W, I, N, V>(&self, dst: &mut W, pairs: I) -> io::Result<()>
    where
        W: Write + ?Sized,
        I: IntoIterator<Item = (N, V)>,
        N: AsRef<[u8]>,
        V: AsRef<[u8]>,
    {
        self.pairs_record(dst, RecordType::GetValuesResult, pairs)
    }

    fn pairs_record<W, I, N, V>(
        &self,
        dst: &mut W,
        record_type: RecordType,
        pairs: I,
    ) -> io::Result<()>
    where
        W: Write + ?Sized,
        I: IntoIterator<Item = (N, V)>,
        N: AsRef<[u8]>,
        V: AsRef<[u8]>,
    {
        let body = encode_pairs(pairs)?;
        self.write_record(dst, record_type, crate::NULL_REQUEST_ID, &body)
    }

    /// Writes `FCGI_UNKNOWN_TYPE`, the answer to a management record of a type not understood.
    pub fn unknown_type<W: Write + ?Sized>(
        &self,
        dst: &mut W,
        record_type: RecordType,
    ) -> io::Result<()> {
        let body = UnknownType { record_type };
        self.write_record(dst, RecordType::UnknownType, crate::NULL_REQUEST_ID, &body.encode())
    }

    /// Writes `record` as exactly one record, whatever its type: the inverse of
    /// [`Record::decode`]. Stream content over [`MAX_CONTENT_LEN`] bytes is an
    /// [`io::ErrorKind::InvalidInput`] error here; [`stream`](Encoder::stream) splits it instead.
    pub fn record<W: Write + ?Sized>(&self, dst: &mut W, record: &Record<'_>) -> io::Result<()> {
        let id = record.request_id;
        let kind = record.body.record_type();
        match &record.body {
            Body::BeginRequest(body) => self.begin_request(dst, id, body),
            Body::AbortRequest => self.abort_request(dst, id),
            Body::EndRequest(body) => self.end_request(dst, id, body),
            Body::UnknownType(body) => self.write_record(dst, kind, id, &body.encode()),
            Body::GetValues(pairs) | Body::GetValuesResult(pairs) => {
                self.write_record(dst, kind, id, pairs.as_bytes())
            }
            Body::Params(content)
            | Body::Stdin(content)
            | Body::Stdout(content)
            | Body::Stderr(content)
            | Body::Data(content)
            | Body::Unknown { content, .. } => self.write_record(dst, kind, id, content),
        }
    }
}
