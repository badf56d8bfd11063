//! Arbitrary bytes as one request's params stream, cut into arbitrary records.
//!
//! Asserts: no panic; limits hold; a stream that decodes re-encodes to the same bytes.
#![no_main]

use fcgi_codec::{encode_pair, ParamsDecoder, ParamsLimits};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    let Some((&split, stream)) = input.split_first() else { return };
    let limits = ParamsLimits { max_len: 8192, max_pairs: 128 };
    let mut decoder = ParamsDecoder::new(limits);
    for chunk in stream.chunks(usize::from(split) + 1) {
        if decoder.push(chunk).is_err() {
            return;
        }
        assert!(decoder.len() <= limits.max_len);
    }
    let Ok(params) = decoder.finish() else { return };
    assert!(params.len() <= limits.max_pairs);
    let mut again = Vec::new();
    for (name, value) in params.iter() {
        encode_pair(&mut again, name, value).unwrap();
    }
    // The same pairs, though a length may have come in the long form where one byte would do.
    assert!(again.len() <= stream.len());
    assert_eq!(again.len() == stream.len(), again == stream);
});
