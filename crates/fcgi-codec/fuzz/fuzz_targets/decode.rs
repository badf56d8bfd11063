//! Arbitrary bytes, cut into arbitrary pieces, through the record decoder and every body parser.
//!
//! Asserts: no panic; the decoder's buffer never passes its maximum; each params stream stays
//! within its limits; every record that decodes re-encodes to bytes that decode to the same record.
#![no_main]

use fcgi_codec::{Body, Decoder, Encoder, ParamsDecoder, ParamsLimits, Record};
use libfuzzer_sys::fuzz_target;

const LIMITS: ParamsLimits = ParamsLimits { max_len: 4096, max_pairs: 64 };

fuzz_target!(|input: &[u8]| {
    // The first byte sets the piece size (1 to 256 bytes), so splits vary with the input.
    let Some((&split, wire)) = input.split_first() else { return };
    let piece_len = usize::from(split) + 1;

    let mut decoder = Decoder::new();
    let mut params = ParamsDecoder::new(LIMITS);
    for piece in wire.chunks(piece_len) {
        let mut rest = piece;
        while !rest.is_empty() {
            let taken = decoder.feed(rest);
            rest = &rest[taken..];
            assert!(decoder.allocated() <= Decoder::DEFAULT_MAX_BUFFER);
            loop {
                let record = match decoder.decode() {
                    Ok(Some(record)) => record,
                    Ok(None) => break,
                    Err(_) => return,
                };
                check_round_trip(&record);
                match record.body {
                    Body::Params(b"") => {
                        let done = std::mem::replace(&mut params, ParamsDecoder::new(LIMITS));
                        if let Ok(decoded) = done.finish() {
                            assert!(decoded.len() <= LIMITS.max_pairs);
                            assert!(decoded.as_bytes().len() <= LIMITS.max_len);
                            for (name, _) in decoded.iter() {
                                assert!(decoded.get(name).is_some());
                            }
                        }
                    }
                    Body::Params(chunk) => {
                        if params.push(chunk).is_err() {
                            params = ParamsDecoder::new(LIMITS);
                        }
                        assert!(params.len() <= LIMITS.max_len);
                    }
                    Body::GetValues(pairs) | Body::GetValuesResult(pairs) => {
                        let total: usize = pairs.map(|(n, v)| n.len() + v.len()).sum();
                        assert!(total <= fcgi_codec::MAX_CONTENT_LEN);
                    }
                    _ => {}
                }
            }
            if taken == 0 {
                // Only possible with whole records left undecoded, which the loop above drains.
                unreachable!("decoder refused bytes with no record to hand out");
            }
        }
    }
});

fn check_round_trip(record: &Record<'_>) {
    let mut again = Vec::new();
    Encoder::new().record(&mut again, record).expect("a decoded record fits one record");
    let (decoded, len) = Record::decode(&again).expect("re-encoded bytes decode").expect("whole");
    assert_eq!(len, again.len());
    assert_eq!(&decoded, record);
}
