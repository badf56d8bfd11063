//! Property tests: whatever is encoded decodes to the same thing, however the byte stream is cut.

use fcgi_codec::{
    encode_pair, BeginRequest, Body, Decoder, Encoder, EndRequest, Pairs, ParamsDecoder,
    ParamsLimits, ProtocolStatus, Record, RecordType, Role, StreamKind, UnknownType,
};
use proptest::prelude::*;

/// A record that owns its body, so that proptest can generate it.
#[derive(Clone, Debug)]
enum OwnedBody {
    Begin { role: u16, flags: u8 },
    Abort,
    End { app_status: u32, protocol_status: u8 },
    Stream { kind: u8, content: Vec<u8> },
    Pairs { kind: u8, encoded: Vec<u8> },
    UnknownType(u8),
    Unknown { kind: u8, content: Vec<u8> },
}

impl OwnedBody {
    fn borrow(&self) -> Body<'_> {
        match self {
            OwnedBody::Begin { role, flags } => {
                Body::BeginRequest(BeginRequest { role: Role::from(*role), flags: *flags })
            }
            OwnedBody::Abort => Body::AbortRequest,
            OwnedBody::End { app_status, protocol_status } => Body::EndRequest(EndRequest {
                app_status: *app_status,
                protocol_status: ProtocolStatus::from(*protocol_status),
            }),
            OwnedBody::Stream { kind, content } => match stream_kind(*kind) {
                StreamKind::Params => Body::Params(content),
                StreamKind::Stdin => Body::Stdin(content),
                StreamKind::Stdout => Body::Stdout(content),
                StreamKind::Stderr => Body::Stderr(content),
                StreamKind::Data => Body::Data(content),
            },
            OwnedBody::Pairs { kind, encoded } => {
                let pairs = Pairs::parse(encoded).unwrap();
                if *kind == 9 {
                    Body::GetValues(pairs)
                } else {
                    Body::GetValuesResult(pairs)
                }
            }
            OwnedBody::UnknownType(kind) => {
                Body::UnknownType(UnknownType { record_type: RecordType::from(*kind) })
            }
            OwnedBody::Unknown { kind, content } => Body::Unknown { record_type: *kind, content },
        }
    }
}

fn stream_kind(kind: u8) -> StreamKind {
    match kind {
        4 => StreamKind::Params,
        5 => StreamKind::Stdin,
        6 => StreamKind::Stdout,
        7 => StreamKind::Stderr,
        _ => StreamKind::Data,
    }
}

fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..max)
}

/// Names and values around the 127/128 boundary where lengths switch from one byte to four.
fn pair_part() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![bytes(8), bytes(300)]
}

fn pairs() -> impl Strategy<Value = Vec<(Vec<u8>, Vec<u8>)>> {
    prop::collection::vec((pair_part(), pair_part()), 0..12)
}

fn encode_pairs(pairs: &[(Vec<u8>, Vec<u8>)]) -> Vec<u8> {
    let mut encoded = Vec::new();
    for (name, value) in pairs {
        encode_pair(&mut encoded, name, value).unwrap();
    }
    encoded
}

fn owned_body() -> impl Strategy<Value = OwnedBody> {
    prop_oneof![
        (any::<u16>(), any::<u8>()).prop_map(|(role, flags)| OwnedBody::Begin { role, flags }),
        Just(OwnedBody::Abort),
        (any::<u32>(), any::<u8>()).prop_map(|(app_status, protocol_status)| OwnedBody::End {
            app_status,
            protocol_status
        }),
        (4u8..=8, prop_oneof![bytes(64), bytes(70_000)])
            .prop_map(|(kind, content)| OwnedBody::Stream { kind, content }),
        (9u8..=10, pairs()).prop_map(|(kind, pairs)| {
            let mut encoded = encode_pairs(&pairs);
            encoded.truncate(usize::from(u16::MAX) & !7);
            // Truncation may cut a pair: keep only whole pairs.
            let whole = Pairs::parse(&encoded).map(|_| encoded.len()).unwrap_or(0);
            encoded.truncate(whole);
            OwnedBody::Pairs { kind, encoded }
        }),
        any::<u8>().prop_map(OwnedBody::UnknownType),
        (12u8.., bytes(64)).prop_map(|(kind, content)| OwnedBody::Unknown { kind, content }),
    ]
}

/// Byte offsets at which to cut a stream of `len` bytes, from fractions.
fn cuts(len: usize, fractions: &[f64]) -> Vec<usize> {
    let mut cuts: Vec<usize> = fractions.iter().map(|f| (f * len as f64) as usize).collect();
    cuts.push(len);
    cuts.sort_unstable();
    cuts
}

/// Feeds `wire` to a decoder in the pieces that `cuts` marks; returns what each record
/// re-encodes to, for comparison with the originals.
fn decode_in_pieces(wire: &[u8], cuts: &[usize]) -> Vec<Vec<u8>> {
    let mut decoder = Decoder::new();
    let mut decoded = Vec::new();
    let mut at = 0;
    for &cut in cuts {
        let mut piece = &wire[at..cut];
        while !piece.is_empty() {
            piece = &piece[decoder.feed(piece)..];
            while let Some(record) = decoder.decode().unwrap() {
                let mut again = Vec::new();
                Encoder::with_padding(false).record(&mut again, &record).unwrap();
                decoded.push(again);
            }
        }
        at = cut;
    }
    assert!(decoder.is_empty(), "no bytes left over");
    decoded
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn records_round_trip_through_any_split(
        records in prop::collection::vec((any::<u16>(), owned_body()), 1..8),
        pad in any::<bool>(),
        fractions in prop::collection::vec(0.0..1.0f64, 0..16),
    ) {
        let encoder = Encoder::with_padding(pad);
        let mut wire = Vec::new();
        let mut expected = Vec::new();
        for (request_id, body) in &records {
            let record = Record { request_id: *request_id, body: body.borrow() };
            // Stream content is written with `stream`, which splits what one record cannot hold.
            if let OwnedBody::Stream { kind, content } = body {
                let kind = stream_kind(*kind);
                encoder.stream(&mut wire, kind, *request_id, content).unwrap();
                for chunk in content.chunks(encoder.max_chunk()) {
                    let mut one = Vec::new();
                    Encoder::with_padding(false).stream(&mut one, kind, *request_id, chunk).unwrap();
                    expected.push(one);
                }
                if content.is_empty() {
                    let mut one = Vec::new();
                    encoder.end_stream(&mut wire, kind, *request_id).unwrap();
                    Encoder::with_padding(false).end_stream(&mut one, kind, *request_id).unwrap();
                    expected.push(one);
                }
                continue;
            }
            encoder.record(&mut wire, &record).unwrap();
            let mut one = Vec::new();
            Encoder::with_padding(false).record(&mut one, &record).unwrap();
            expected.push(one);
        }
        let decoded = decode_in_pieces(&wire, &cuts(wire.len(), &fractions));
        prop_assert_eq!(decoded, expected);
    }

    #[test]
    fn a_framed_record_is_byte_for_byte_what_stream_encodes(
        kind in 4u8..9,
        id in any::<u16>(),
        len in 0usize..70_000,
        pad in any::<bool>(),
    ) {
        let encoder = Encoder::with_padding(pad);
        let content = vec![0xA5; len];
        match encoder.frame(stream_kind(kind), id, len) {
            Ok((header, padding)) => {
                prop_assert!(len > 0 && len <= encoder.max_chunk());
                let mut framed = header.to_vec();
                framed.extend_from_slice(&content);
                framed.extend_from_slice(padding);
                let mut encoded = Vec::new();
                encoder.stream(&mut encoded, stream_kind(kind), id, &content).unwrap();
                prop_assert_eq!(framed, encoded);
            }
            Err(_) => prop_assert!(len == 0 || len > encoder.max_chunk()),
        }
    }

    #[test]
    fn one_byte_at_a_time(records in prop::collection::vec((any::<u16>(), owned_body()), 1..4)) {
        let mut wire = Vec::new();
        let mut count = 0;
        for (request_id, body) in &records {
            let record = Record { request_id: *request_id, body: body.borrow() };
            if Encoder::new().record(&mut wire, &record).is_ok() {
                count += 1;
            }
        }
        let every_byte: Vec<usize> = (1..=wire.len()).collect();
        prop_assert_eq!(decode_in_pieces(&wire, &every_byte).len(), count);
    }

    #[test]
    fn params_stream_round_trips_over_any_record_boundaries(
        pairs in pairs(),
        fractions in prop::collection::vec(0.0..1.0f64, 0..16),
    ) {
        let stream = encode_pairs(&pairs);
        let mut decoder = ParamsDecoder::new(ParamsLimits::default());
        let mut at = 0;
        for cut in cuts(stream.len(), &fractions) {
            decoder.push(&stream[at..cut]).unwrap();
            at = cut;
        }
        let params = decoder.finish().unwrap();
        let decoded: Vec<(Vec<u8>, Vec<u8>)> =
            params.iter().map(|(n, v)| (n.to_vec(), v.to_vec())).collect();
        prop_assert_eq!(decoded, pairs);
        prop_assert_eq!(params.as_bytes(), &stream[..]);
    }

    #[test]
    fn params_encoded_by_the_encoder_decode_from_its_records(pairs in pairs(), pad in any::<bool>()) {
        let mut wire = Vec::new();
        Encoder::with_padding(pad).params(&mut wire, 3, pairs.iter().map(|(n, v)| (n, v))).unwrap();
        let mut decoder = Decoder::new();
        decoder.feed(&wire);
        let mut params = ParamsDecoder::new(ParamsLimits::default());
        let mut ended = false;
        while let Some(record) = decoder.decode().unwrap() {
            prop_assert_eq!(record.request_id, 3);
            match record.body {
                Body::Params(b"") => ended = true,
                Body::Params(chunk) => params.push(chunk).unwrap(),
                other => prop_assert!(false, "unexpected {:?}", other),
            }
        }
        prop_assert!(ended);
        prop_assert_eq!(params.finish().unwrap().len(), pairs.len());
    }

    #[test]
    fn truncated_params_stream_is_an_error_never_a_panic(
        pairs in pairs().prop_filter("non-empty", |p| !p.is_empty()),
        cut in 0.0..1.0f64,
    ) {
        let stream = encode_pairs(&pairs);
        let cut = ((cut * stream.len() as f64) as usize).min(stream.len() - 1);
        let mut decoder = ParamsDecoder::new(ParamsLimits::default());
        decoder.push(&stream[..cut]).unwrap();
        // Cutting exactly on a pair boundary leaves a valid, shorter stream.
        if let Ok(params) = decoder.finish() {
            prop_assert!(params.len() < pairs.len());
        }
    }

    #[test]
    fn params_limits_hold_for_any_input(
        input in bytes(4096),
        max_len in 0usize..2048,
        max_pairs in 0usize..64,
    ) {
        let mut decoder = ParamsDecoder::new(ParamsLimits { max_len, max_pairs });
        for chunk in input.chunks(97) {
            if decoder.push(chunk).is_err() {
                return Ok(());
            }
            prop_assert!(decoder.len() <= max_len);
        }
        if let Ok(params) = decoder.finish() {
            prop_assert!(params.len() <= max_pairs);
            prop_assert!(params.as_bytes().len() <= max_len);
        }
    }
}
