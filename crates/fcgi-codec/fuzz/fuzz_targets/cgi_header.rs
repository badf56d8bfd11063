//! Arbitrary bytes, cut into arbitrary pieces, through the CGI response-head parser.
//!
//! Asserts: no panic; the incremental parser never keeps more than `MAX_HEADER_BYTES`; it agrees
//! with `parse_head` on the whole input; what is accepted follows the shared rules, and a head
//! that parses writes out and parses back to the same head.
#![no_main]

use fcgi_codec::cgi_header::{parse_head, HeaderParser, Progress, MAX_HEADER_BYTES};
use fcgi_codec::http;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    // The first byte sets the piece size (1 to 256 bytes), so splits vary with the input.
    let Some((&split, stdout)) = input.split_first() else { return };
    let piece_len = usize::from(split) + 1;

    let whole = parse_head(stdout);
    let mut parser = HeaderParser::new();
    let mut result = Ok(Progress::Partial);
    let mut fed = 0;
    for piece in stdout.chunks(piece_len) {
        result = parser.push(piece);
        fed += piece.len();
        match &result {
            Ok(Progress::Partial) => assert!(parser.buffered() <= MAX_HEADER_BYTES),
            _ => break,
        }
    }
    match (&whole, result) {
        (Ok(Some((head, len))), Ok(Progress::Complete { head: pushed, body })) => {
            assert_eq!(head, &pushed);
            assert_eq!(body, &stdout[*len..fed]);
        }
        (Ok(None), Ok(Progress::Partial)) => {}
        (Err(error), Err(pushed)) => assert_eq!(error, &pushed),
        (whole, pushed) => panic!("parse_head gave {whole:?}, HeaderParser {pushed:?}"),
    }

    let Ok(Some((head, len))) = whole else { return };
    assert!(len <= MAX_HEADER_BYTES);
    if let Some(status) = head.status {
        assert!(http::is_status(status));
    }
    for (name, value) in &head.headers {
        assert!(http::check_name(name.as_bytes()).is_ok(), "{name:?}");
        assert!(http::check_value(value.as_bytes()).is_ok(), "{value:?}");
        assert_eq!(http::trim_ows(value.as_bytes()), value.as_bytes());
    }
    let mut out = Vec::new();
    head.write_to(&mut out);
    assert_eq!(parse_head(&out), Ok(Some((head.clone(), out.len()))));
});
