//! What an `http` service sees of a request's params through fcgi-http, when the web server
//! spells them in ways nginx does not: the header params it drops are dropped in every
//! spelling, and a `CONTENT_LENGTH` that is no number is a `400`, never a header.
//!
//! The requests are raw records (`support/raw.rs`), to an in-process server whose handler is
//! `fcgi_http::Service` around an axum app that answers with the headers it was given.

use axum::routing::any;
use axum::Router;
use fcgi_codec::{Role, StreamKind};
use fcgi_tests::inproc::{self, TestServer};
use fcgi_tests::raw::{frames, Reply};

/// Answers with the request's headers, one `name: value` a line, in order.
fn headers_app() -> Router {
    async fn echo(request: axum::http::Request<axum::body::Body>) -> String {
        let mut out = String::new();
        for (name, value) in request.headers() {
            out.push_str(&format!("{name}: {}\n", String::from_utf8_lossy(value.as_bytes())));
        }
        out
    }
    Router::new().route("/headers", any(echo))
}

fn server() -> TestServer {
    TestServer::start(inproc::config(), |builder| {
        builder.handler(Role::Responder, fcgi_http::Service::new(headers_app()))
    })
}

/// One request to `/headers` with `params` besides the method and URI, and `body`.
fn request(server: &TestServer, params: &[(&str, &str)], body: &[u8]) -> Reply {
    let mut all = vec![("REQUEST_METHOD", "POST"), ("REQUEST_URI", "/headers")];
    all.extend_from_slice(params);
    let mut client = server.connect();
    client.send_begin(1, Role::Responder, false);
    client.send_ok(&frames::stream(StreamKind::Params, 1, &frames::pairs(&all)));
    client.send_ok(&frames::end(StreamKind::Params, 1));
    client.send_stdin(1, body);
    client.read_reply(1)
}

#[test]
fn hop_by_hop_and_proxy_headers_are_dropped_in_any_spelling() {
    let server = server();
    let reply = request(
        &server,
        &[
            ("HTTP_transfer_encoding", "chunked"),
            ("HTTP_Proxy", "http://192.0.2.1:3128"),
            ("HTTP_Connection", "keep-alive, Upgrade"),
            ("HTTP_Upgrade", "websocket"),
            ("HTTP_keep_alive", "timeout=5"),
            ("HTTP_te", "trailers"),
            ("HTTP_Content_Length", "1000"),
            ("HTTP_X_Forwarded_For", "192.0.2.7"),
            ("CONTENT_LENGTH", "5"),
        ],
        b"hello",
    );
    reply.assert_complete(200);
    assert_eq!(reply.body_text(), "x-forwarded-for: 192.0.2.7\ncontent-length: 5\n");
}

#[test]
fn a_content_length_that_is_no_number_gets_400_and_the_reason_on_stderr() {
    let server = server();
    for length in ["+5", "5, 5", " 5", "0x5", "5 bytes"] {
        let reply = request(&server, &[("CONTENT_LENGTH", length)], b"hello");
        reply.assert_complete(400);
        let stderr = String::from_utf8_lossy(&reply.stderr);
        assert!(stderr.contains("is not a decimal number of bytes"), "{length:?}: {stderr}");
        assert!(!reply.body_text().contains("content-length"), "{length:?}: {reply:?}");
    }
    // A plain number is the body's length.
    let reply = request(&server, &[("CONTENT_LENGTH", "5")], b"hello");
    reply.assert_complete(200);
    assert_eq!(reply.body_text(), "content-length: 5\n");
}
