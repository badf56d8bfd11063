//! Every record type against byte vectors written out by hand from the FastCGI 1.0 spec
//! (section 8, "Types and Constants", and the layouts of sections 3 to 6), not from our encoder.

use fcgi_codec::{
    BeginRequest, Body, DecodeError, Decoder, Encoder, EndRequest, Pairs, ParamsDecoder,
    ParamsLimits, ProtocolStatus, Record, RecordType, Role, StreamKind, UnknownType,
};

/// Decodes `wire`, which must be exactly one record, and checks it re-encodes to the same bytes
/// (without padding, which the vectors do not use).
fn one_record(wire: &[u8]) -> Record<'_> {
    let (record, len) = Record::decode(wire).unwrap().expect("a whole record");
    assert_eq!(len, wire.len(), "the record takes every byte");
    let mut again = Vec::new();
    Encoder::with_padding(false).record(&mut again, &record).unwrap();
    assert_eq!(again, wire, "re-encodes to the same bytes");
    record
}

#[test]
fn begin_request_responder_keep_conn() {
    // FCGI_BeginRequestRecord: header {1, FCGI_BEGIN_REQUEST=1, requestId=1, contentLength=8,
    // paddingLength=0, reserved}, body {roleB1=0, roleB0=FCGI_RESPONDER=1, flags=FCGI_KEEP_CONN=1,
    // reserved[5]}.
    let wire = [1, 1, 0, 1, 0, 8, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0];
    let record = one_record(&wire);
    assert_eq!(record.request_id, 1);
    let Body::BeginRequest(begin) = record.body else { panic!("{record:?}") };
    assert_eq!(begin.role, Role::Responder);
    assert!(begin.keep_conn());
}

#[test]
fn begin_request_roles_and_flags() {
    for (role_byte, role) in [(1, Role::Responder), (2, Role::Authorizer), (3, Role::Filter)] {
        let wire = [1, 1, 0x12, 0x34, 0, 8, 0, 0, 0, role_byte, 0, 0, 0, 0, 0, 0];
        let record = one_record(&wire);
        assert_eq!(record.request_id, 0x1234);
        assert_eq!(record.body, Body::BeginRequest(BeginRequest { role, flags: 0 }));
    }
    // An unknown role (0x0100 = 256) and an unknown flag bit survive decoding.
    let wire = [1, 1, 0, 7, 0, 8, 0, 0, 1, 0, 0x81, 0, 0, 0, 0, 0];
    let Body::BeginRequest(begin) = one_record(&wire).body else { panic!() };
    assert_eq!(begin.role, Role::Unknown(256));
    assert!(begin.keep_conn());
    assert_eq!(begin.flags, 0x81);
}

#[test]
fn abort_request() {
    // FCGI_ABORT_REQUEST = 2, no body.
    let record = one_record(&[1, 2, 0, 5, 0, 0, 0, 0]);
    assert_eq!(record, Record { request_id: 5, body: Body::AbortRequest });
}

#[test]
fn end_request_each_protocol_status() {
    // FCGI_EndRequestBody: appStatusB3..B0, protocolStatus, reserved[3].
    let cases = [
        (0, ProtocolStatus::RequestComplete),
        (1, ProtocolStatus::CantMpxConn),
        (2, ProtocolStatus::Overloaded),
        (3, ProtocolStatus::UnknownRole),
        (200, ProtocolStatus::Unknown(200)),
    ];
    for (status_byte, protocol_status) in cases {
        let wire = [1, 3, 0, 1, 0, 8, 0, 0, 0xde, 0xad, 0xbe, 0xef, status_byte, 0, 0, 0];
        let record = one_record(&wire);
        assert_eq!(
            record.body,
            Body::EndRequest(EndRequest { app_status: 0xdead_beef, protocol_status })
        );
    }
}

#[test]
fn params_stream_records() {
    // FCGI_PARAMS = 4: nameLengthB0=11, valueLengthB0=10, "SCRIPT_NAME", "/index.php".
    let mut wire = vec![1, 4, 0, 1, 0, 23, 0, 0, 11, 10];
    wire.extend_from_slice(b"SCRIPT_NAME/index.php");
    let record = one_record(&wire);
    let Body::Params(chunk) = record.body else { panic!() };
    let mut params = ParamsDecoder::new(ParamsLimits::default());
    params.push(chunk).unwrap();
    // The empty FCGI_PARAMS record ends the stream.
    assert_eq!(one_record(&[1, 4, 0, 1, 0, 0, 0, 0]).body, Body::Params(b""));
    let params = params.finish().unwrap();
    assert_eq!(params.get(b"SCRIPT_NAME"), Some(&b"/index.php"[..]));
}

#[test]
fn params_four_byte_lengths() {
    // A 300-byte value: valueLengthB3 has its top bit set, (B3 & 0x7f) << 24 | B2 << 16 | B1 << 8
    // | B0 = 0x0000012c = 300.
    let mut stream = vec![4, 0x80, 0x00, 0x01, 0x2c];
    stream.extend_from_slice(b"HTTP");
    stream.extend_from_slice(&[b'v'; 300]);
    let mut params = ParamsDecoder::new(ParamsLimits::default());
    params.push(&stream).unwrap();
    let params = params.finish().unwrap();
    assert_eq!(params.get(b"HTTP").map(<[u8]>::len), Some(300));
}

#[test]
fn each_input_and_output_stream_type() {
    let cases = [
        (4, Body::Params(b"abc")),
        (5, Body::Stdin(b"abc")),
        (6, Body::Stdout(b"abc")),
        (7, Body::Stderr(b"abc")),
        (8, Body::Data(b"abc")),
    ];
    for (type_byte, body) in cases {
        let wire = [1, type_byte, 0, 9, 0, 3, 0, 0, b'a', b'b', b'c'];
        assert_eq!(one_record(&wire), Record { request_id: 9, body });
    }
}

#[test]
fn padding_is_skipped_whatever_its_bytes() {
    // FCGI_STDOUT with 5 bytes of content and 3 of padding, the padding not zero.
    let wire = [1, 6, 0, 1, 0, 5, 3, 0, b'h', b'e', b'l', b'l', b'o', 0xaa, 0xbb, 0xcc];
    let (record, len) = Record::decode(&wire).unwrap().unwrap();
    assert_eq!(len, 16);
    assert_eq!(record.body, Body::Stdout(b"hello"));
}

#[test]
fn get_values_and_result() {
    // FCGI_GET_VALUES = 9 on request id 0; names with empty values.
    let mut wire = vec![1, 9, 0, 0, 0, 48, 0, 0];
    wire.extend_from_slice(b"\x0e\x00FCGI_MAX_CONNS\x0d\x00FCGI_MAX_REQS\x0f\x00FCGI_MPXS_CONNS");
    let record = one_record(&wire);
    assert!(record.is_management());
    let Body::GetValues(names) = record.body else { panic!() };
    let names: Vec<_> = names.map(|(name, value)| (name.to_vec(), value.len())).collect();
    assert_eq!(
        names,
        [
            (b"FCGI_MAX_CONNS".to_vec(), 0),
            (b"FCGI_MAX_REQS".to_vec(), 0),
            (b"FCGI_MPXS_CONNS".to_vec(), 0)
        ]
    );

    // FCGI_GET_VALUES_RESULT = 10.
    let mut wire = vec![1, 10, 0, 0, 0, 18, 0, 0];
    wire.extend_from_slice(b"\x0f\x01FCGI_MPXS_CONNS1");
    let Body::GetValuesResult(pairs) = one_record(&wire).body else { panic!() };
    assert_eq!(pairs.collect::<Vec<_>>(), [(&b"FCGI_MPXS_CONNS"[..], &b"1"[..])]);
}

#[test]
fn unknown_type_reply_and_unknown_types() {
    // FCGI_UNKNOWN_TYPE = 11: body {type, reserved[7]}.
    let record = one_record(&[1, 11, 0, 0, 0, 8, 0, 0, 42, 0, 0, 0, 0, 0, 0, 0]);
    assert_eq!(
        record.body,
        Body::UnknownType(UnknownType { record_type: RecordType::Unknown(42) })
    );
    // A type the spec does not define is kept, with its content.
    let record = one_record(&[1, 42, 0, 0, 0, 2, 0, 0, 7, 7]);
    assert_eq!(record.body, Body::Unknown { record_type: 42, content: &[7, 7] });
}

#[test]
fn version_other_than_one_is_refused_at_the_header() {
    for version in [0u8, 2, 255] {
        // Only the header has arrived: the error does not wait for the body.
        let wire = [version, 5, 0, 1, 0xff, 0xff, 0, 0];
        assert_eq!(Record::decode(&wire), Err(DecodeError::UnsupportedVersion { version }));
    }
}

#[test]
fn fixed_bodies_of_the_wrong_length_are_refused() {
    let cases: [(&[u8], RecordType, usize, usize); 4] = [
        (&[1, 1, 0, 1, 0, 4, 0, 0, 0, 1, 0, 0], RecordType::BeginRequest, 8, 4),
        (&[1, 2, 0, 1, 0, 1, 0, 0, 0], RecordType::AbortRequest, 0, 1),
        (&[1, 3, 0, 1, 0, 0, 0, 0], RecordType::EndRequest, 8, 0),
        (&[1, 11, 0, 0, 0, 9, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0], RecordType::UnknownType, 8, 9),
    ];
    for (wire, record_type, expected, actual) in cases {
        let request_id = u16::from(wire[3]);
        assert_eq!(
            Record::decode(wire),
            Err(DecodeError::BodyLength { record_type, request_id, expected, actual })
        );
    }
}

#[test]
fn malformed_get_values_is_refused() {
    // A name length of 5 with only 2 bytes left in the body.
    let wire = [1, 9, 0, 0, 0, 4, 0, 0, 5, 0, b'A', b'B'];
    assert!(matches!(
        Record::decode(&wire),
        Err(DecodeError::Pairs { record_type: RecordType::GetValues, .. })
    ));
}

#[test]
fn every_prefix_of_a_record_is_incomplete() {
    let wire = [1, 6, 0, 1, 0, 5, 3, 0, b'h', b'e', b'l', b'l', b'o', 0, 0, 0];
    for end in 0..wire.len() {
        assert_eq!(Record::decode(&wire[..end]), Ok(None), "prefix of {end} bytes");
    }
}

#[test]
fn encoder_writes_what_the_spec_shows() {
    let encoder = Encoder::with_padding(false);
    let mut out = Vec::new();
    encoder.begin_request(&mut out, 1, &BeginRequest::new(Role::Filter, false)).unwrap();
    assert_eq!(out, [1, 1, 0, 1, 0, 8, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0]);

    out.clear();
    encoder.end_request(&mut out, 258, &EndRequest::complete(1)).unwrap();
    assert_eq!(out, [1, 3, 1, 2, 0, 8, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0]);

    out.clear();
    encoder.unknown_type(&mut out, RecordType::Unknown(77)).unwrap();
    assert_eq!(out, [1, 11, 0, 0, 0, 8, 0, 0, 77, 0, 0, 0, 0, 0, 0, 0]);

    out.clear();
    encoder.end_stream(&mut out, StreamKind::Stdout, 1).unwrap();
    assert_eq!(out, [1, 6, 0, 1, 0, 0, 0, 0]);

    out.clear();
    encoder.get_values_result(&mut out, [(b"FCGI_MPXS_CONNS", b"1")]).unwrap();
    let mut expected = vec![1, 10, 0, 0, 0, 18, 0, 0];
    expected.extend_from_slice(b"\x0f\x01FCGI_MPXS_CONNS1");
    assert_eq!(out, expected);

    out.clear();
    encoder.get_values(&mut out, [b"FCGI_MAX_REQS"]).unwrap();
    let mut expected = vec![1, 9, 0, 0, 0, 15, 0, 0];
    expected.extend_from_slice(b"\x0d\x00FCGI_MAX_REQS");
    assert_eq!(out, expected);
}

#[test]
fn padded_records_end_on_eight_byte_boundaries() {
    let mut out = Vec::new();
    Encoder::new().stream(&mut out, StreamKind::Stdout, 1, b"Hello, world!").unwrap();
    // 13 bytes of content, 3 of padding: the header says so.
    assert_eq!(&out[..8], &[1, 6, 0, 1, 0, 13, 3, 0]);
    assert_eq!(out.len(), 24);
    assert_eq!(&out[21..], &[0, 0, 0]);
}

#[test]
fn long_stream_data_is_split_into_several_records() {
    let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    for encoder in [Encoder::new(), Encoder::with_padding(false)] {
        let mut out = Vec::new();
        encoder.stream(&mut out, StreamKind::Stdout, 1, &data).unwrap();
        assert_eq!(out.len(), encoder.stream_len(data.len()));

        let mut decoder = Decoder::new();
        let mut joined = Vec::new();
        let mut records = 0;
        let mut rest = &out[..];
        while !rest.is_empty() {
            rest = &rest[decoder.feed(rest)..];
            while let Some(record) = decoder.decode().unwrap() {
                let Body::Stdout(chunk) = record.body else { panic!() };
                assert!(!chunk.is_empty() && chunk.len() <= encoder.max_chunk());
                joined.extend_from_slice(chunk);
                records += 1;
            }
        }
        assert_eq!(records, data.len().div_ceil(encoder.max_chunk()));
        assert_eq!(joined, data);
    }
}

#[test]
fn empty_write_is_no_record() {
    let mut out = Vec::new();
    Encoder::new().stream(&mut out, StreamKind::Stdout, 1, b"").unwrap();
    assert!(out.is_empty(), "an empty record would end the stream");
}

#[test]
fn oversized_single_record_is_a_caller_error() {
    let big = vec![0u8; 70_000];
    let record = Record { request_id: 1, body: Body::Stdout(&big) };
    let err = Encoder::new().record(&mut Vec::new(), &record).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
}

#[test]
fn pairs_iterate_in_order() {
    let pairs = Pairs::parse(b"\x01\x02abc\x00\x00").unwrap();
    assert_eq!(pairs.collect::<Vec<_>>(), [(&b"a"[..], &b"bc"[..]), (&b""[..], &b""[..])]);
}
