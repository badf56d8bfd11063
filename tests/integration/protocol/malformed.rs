//! Malformed input and protocol errors, each on a connection of its own while a well-behaved
//! one is mid-request: a bad version, a header or a body cut short, an absurd pair length,
//! params before BEGIN_REQUEST, a mebibyte of garbage, a BEGIN_REQUEST for a request still open.
//! Each ends that connection only (or that request, with a 431), and the others are served on.

use std::sync::mpsc;
use std::time::Duration;

use fcgi_codec::{RecordType, Role, StreamKind};
use fcgi_server::{streaming, Request, Response};
use fcgi_tests::data::pattern;
use fcgi_tests::inproc::{self, TestServer};
use fcgi_tests::raw::{frames, Client};

use super::common::{assert_echo, echo, echo_server, HandlerResult, SIGNAL};

/// Starts a request on a good connection, runs `bad` against a fresh connection, then checks
/// that the good request completes, the good connection serves another, a new connection is
/// served, and the server stops with nothing left running.
fn malformed(bad: impl FnOnce(&TestServer, Client)) {
    let server = echo_server();
    let mut good = server.connect();
    assert_echo(&mut good, "before", b"");
    // Mid-request while the bad input arrives: params in, body not yet.
    good.send_begin(1, Role::Responder, true);
    good.send_params(1, &[("SAY", "during")]);
    good.send_ok(&frames::stream(StreamKind::Stdin, 1, b"first half, "));

    bad(&server, server.connect());

    good.send_stdin(1, b"second half");
    let reply = good.read_reply(1);
    reply.assert_complete(200);
    assert_eq!(reply.body_text(), "during:first half, second half");
    assert_echo(&mut good, "after", b"");
    assert_echo(&mut server.connect(), "new connection", b"");
    drop(good);
    let report = server.stop(Duration::from_secs(5));
    assert_eq!(report.unfinished, 0, "a request of the bad connection was left running");
}

#[test]
fn malformed_bad_version_closes_that_connection_only() {
    malformed(|server, mut bad| {
        let mut begin = frames::begin(1, Role::Responder, true);
        begin[0] = 2;
        bad.send_ok(&begin);
        assert_eq!(bad.read_until_closed().unwrap(), Vec::new());
        assert!(server.logs().contains("unsupported FastCGI version 2"), "{:?}", server.logs());
    });
}

#[test]
fn malformed_truncated_header_then_close() {
    malformed(|_, mut bad| {
        bad.send_ok(&frames::begin(1, Role::Responder, true)[..3]);
        bad.shutdown_write();
        assert_eq!(bad.read_until_closed().unwrap(), Vec::new());
    });
}

#[test]
fn malformed_truncated_body_then_close() {
    malformed(|_, mut bad| {
        // A whole request head, so its handler runs and waits for the body...
        let mut wire = frames::begin(1, Role::Responder, true);
        wire.extend(frames::params(1, &[("SAY", "cut short")]));
        // ...and a STDIN record that announces 100 bytes and brings 10.
        wire.extend(&frames::record(RecordType::Stdin, 1, &[b'x'; 100])[..8 + 10]);
        bad.send_ok(&wire);
        bad.shutdown_write();
        // The handler's body read fails and it is let go (`malformed` checks that).
        assert!(bad.read_until_closed().unwrap().iter().all(|frame| frame.request_id == 1));
    });
}

#[test]
fn malformed_absurd_pair_length_gets_431_and_the_connection_survives() {
    malformed(|server, mut bad| {
        bad.send_begin(1, Role::Responder, true);
        // A name of 2^31 - 1 bytes announced in the first bytes of the stream.
        bad.send_ok(&frames::record(
            RecordType::Params,
            1,
            &[0xff, 0xff, 0xff, 0xff, 0x01, b'A', b'B'],
        ));
        let reply = bad.read_reply(1);
        reply.assert_complete(431);
        // The rest of that request is ignored; the connection serves the next one.
        bad.send_ok(&frames::end(StreamKind::Params, 1));
        bad.send_stdin(1, b"");
        assert_echo(&mut bad, "survived", b"");
        assert!(server.logs().contains("params refused"));
    });
}

#[test]
fn malformed_params_before_begin_request_are_ignored() {
    malformed(|_, mut bad| {
        // A params stream and body for request 1 before its BEGIN_REQUEST...
        bad.send_params(1, &[("SAY", "smuggled")]);
        bad.send_ok(&frames::stream(StreamKind::Stdin, 1, b"smuggled body "));
        // ...are not merged into the request that then begins.
        bad.send_ok(&frames::request(1, Role::Responder, true, &[], b"real body"));
        let reply = bad.read_reply(1);
        reply.assert_complete(200);
        assert_eq!(reply.body_text(), ":real body");
    });
}

#[test]
fn malformed_one_mebibyte_of_garbage_closes_that_connection_only() {
    malformed(|_, mut bad| {
        let mut garbage = pattern(1 << 20, 0x5eed);
        garbage[0] = 1; // Past the version check of the first header, at least.
                        // The server may close before it has read it all: a failed write is expected.
        let _ = bad.send(&garbage);
        bad.shutdown_write();
        let closed = bad.read_until_closed();
        assert!(closed.is_ok(), "the garbage connection was not closed: {closed:?}");
    });
}

#[test]
fn duplicate_begin_request_closes_that_connection_only() {
    let (started_tx, started) = mpsc::channel::<()>();
    let handler = move |request: &mut Request, response: &mut Response| -> HandlerResult {
        if request.param_str("MODE") == Some("signal") {
            started_tx.send(()).expect("the test waits");
        }
        echo(request, response)
    };
    let server =
        TestServer::start(inproc::config(), |b| b.handler(Role::Responder, streaming(handler)));
    // A request on another connection, waiting for its body throughout.
    let mut other = server.connect();
    other.send_begin(1, Role::Responder, true);
    other.send_params(1, &[("SAY", "other")]);

    // Request 1 still reading its params, begun again.
    let mut reading = server.connect();
    reading.send_begin(1, Role::Responder, true);
    reading.send_ok(&frames::stream(StreamKind::Params, 1, &frames::pairs(&[("SAY", "a")])));
    reading.send_begin(1, Role::Responder, true);
    assert_eq!(reading.read_until_closed().unwrap(), Vec::new());

    // Request 1 with its handler running (waiting for the body), begun again.
    let mut running = server.connect();
    running.send_begin(1, Role::Responder, true);
    running.send_params(1, &[("MODE", "signal")]);
    started.recv_timeout(SIGNAL).expect("the handler started");
    running.send_begin(1, Role::Responder, true);
    let closed = running.read_until_closed().unwrap();
    assert!(
        closed.iter().all(|frame| frame.request_id == 1),
        "only request 1's end may come before the close: {closed:?}"
    );
    assert!(server.logs().contains("which is still open"), "{:?}", server.logs().lines());

    other.send_stdin(1, b"unaffected");
    let reply = other.read_reply(1);
    reply.assert_complete(200);
    assert_eq!(reply.body, b"other:unaffected");
    let report = server.stop(Duration::from_secs(5));
    assert_eq!(report.unfinished, 0, "the handler of the closed connection was let go");
}
