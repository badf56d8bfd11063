//! Codec throughput: a typical request from nginx decoded, a typical response encoded, and a
//! large response body encoded. Run with `cargo bench -p fcgi-codec`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use fcgi_codec::{
    BeginRequest, Body, Decoder, Encoder, EndRequest, ParamsDecoder, ParamsLimits, Role, StreamKind,
};

/// What nginx sends for `GET /index.php?page=2` with `include fastcgi.conf;` and the headers of
/// a common browser: BEGIN_REQUEST, 30 params in one record, the params terminator, and the
/// empty STDIN record.
fn nginx_request() -> Vec<u8> {
    let params: [(&str, &str); 30] = [
        ("SCRIPT_FILENAME", "/var/www/html/index.php"),
        ("QUERY_STRING", "page=2"),
        ("REQUEST_METHOD", "GET"),
        ("CONTENT_TYPE", ""),
        ("CONTENT_LENGTH", ""),
        ("SCRIPT_NAME", "/index.php"),
        ("REQUEST_URI", "/index.php?page=2"),
        ("DOCUMENT_URI", "/index.php"),
        ("DOCUMENT_ROOT", "/var/www/html"),
        ("SERVER_PROTOCOL", "HTTP/1.1"),
        ("REQUEST_SCHEME", "http"),
        ("GATEWAY_INTERFACE", "CGI/1.1"),
        ("SERVER_SOFTWARE", "nginx/1.22.1"),
        ("REMOTE_ADDR", "127.0.0.1"),
        ("REMOTE_PORT", "52814"),
        ("SERVER_ADDR", "127.0.0.1"),
        ("SERVER_PORT", "8080"),
        ("SERVER_NAME", "localhost"),
        ("REDIRECT_STATUS", "200"),
        ("PATH_INFO", ""),
        ("HTTP_HOST", "localhost:8080"),
        (
            "HTTP_USER_AGENT",
            "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
        ),
        ("HTTP_ACCEPT", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"),
        ("HTTP_ACCEPT_LANGUAGE", "en-US,en;q=0.5"),
        ("HTTP_ACCEPT_ENCODING", "gzip, deflate, br, zstd"),
        ("HTTP_CONNECTION", "keep-alive"),
        ("HTTP_UPGRADE_INSECURE_REQUESTS", "1"),
        ("HTTP_SEC_FETCH_DEST", "document"),
        ("HTTP_SEC_FETCH_MODE", "navigate"),
        ("HTTP_COOKIE", "session=8f14e45fceea167a5a36dedd4bea2543; theme=dark"),
    ];
    let encoder = Encoder::new();
    let mut wire = Vec::new();
    encoder.begin_request(&mut wire, 1, &BeginRequest::new(Role::Responder, true)).unwrap();
    encoder.params(&mut wire, 1, params).unwrap();
    encoder.end_stream(&mut wire, StreamKind::Stdin, 1).unwrap();
    wire
}

/// Decodes one whole request the way a connection does, and looks up what a router would.
fn decode_request(decoder: &mut Decoder, wire: &[u8]) -> usize {
    decoder.feed(wire);
    let mut params = ParamsDecoder::new(ParamsLimits::default());
    let mut found = 0;
    while let Some(record) = decoder.decode().unwrap() {
        match record.body {
            Body::BeginRequest(begin) => found += usize::from(begin.keep_conn()),
            Body::Params(b"") => {
                let done =
                    std::mem::replace(&mut params, ParamsDecoder::new(ParamsLimits::default()));
                let params = done.finish().unwrap();
                found += params.get(b"REQUEST_METHOD").map_or(0, <[u8]>::len);
                found += params.get(b"SCRIPT_FILENAME").map_or(0, <[u8]>::len);
            }
            Body::Params(chunk) => params.push(chunk).unwrap(),
            Body::Stdin(body) => found += body.len(),
            _ => unreachable!(),
        }
    }
    found
}

fn encode_response(out: &mut Vec<u8>) {
    let encoder = Encoder::new();
    out.clear();
    encoder
        .stream(out, StreamKind::Stdout, 1, b"Content-Type: text/plain\r\n\r\nHello, world!")
        .unwrap();
    encoder.end_stream(out, StreamKind::Stdout, 1).unwrap();
    encoder.end_request(out, 1, &EndRequest::complete(0)).unwrap();
}

fn codec(c: &mut Criterion) {
    let wire = nginx_request();
    let mut group = c.benchmark_group("codec");
    group.throughput(Throughput::Elements(1));
    group.bench_function("decode typical nginx request", |b| {
        let mut decoder = Decoder::new();
        b.iter(|| decode_request(&mut decoder, black_box(&wire)))
    });
    group.bench_function("encode typical response", |b| {
        let mut out = Vec::with_capacity(256);
        b.iter(|| {
            encode_response(&mut out);
            black_box(out.len())
        })
    });

    let body = vec![b'x'; 1 << 20];
    group.throughput(Throughput::Bytes(body.len() as u64));
    group.bench_function("encode 1 MiB STDOUT", |b| {
        let encoder = Encoder::new();
        let mut out = Vec::with_capacity(encoder.stream_len(body.len()));
        b.iter(|| {
            out.clear();
            encoder.stream(&mut out, StreamKind::Stdout, 1, black_box(&body)).unwrap();
            black_box(out.len())
        })
    });
    group.finish();
}

criterion_group!(benches, codec);
criterion_main!(benches);
