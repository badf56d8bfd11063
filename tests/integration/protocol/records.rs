//! Protocol tests over real sockets with a raw-record client.
//!
//! Each test starts its own server in this process (`support/inproc.rs`); the one that counts
//! the threads and memory of idle connections in the real `fcgi` binary is a binary of its own,
//! tests/idle_connections.rs. The client is `support/raw.rs`: it writes exactly the records a
//! test builds and reads records back with a timeout, so a server that never answers fails a
//! test instead of hanging it.
//! Waits are bounded: channels with timeouts, [`wait_until`], read timeouts. Time is only
//! waited out where it is the subject: a request sent in 20 pieces 200 ms apart, a 1 s request
//! during a graceful stop, and the second a draining server takes to sweep its connections.

use std::io::{self, Read, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, Once};
use std::time::{Duration, Instant};

use fcgi_codec::{ProtocolStatus, RecordType, Role, StreamKind};
use fcgi_server::{streaming, Config, ParamsLimits, Request, Response};
use fcgi_tests::addr::Transport;
use fcgi_tests::data::{fnv1a, fnv1a_continue, pattern, FNV1A_OFFSET};
use fcgi_tests::inproc::{self, TestServer};
use fcgi_tests::process::wait_until;
use fcgi_tests::raw::{frames, Client, Frame, FrameKind};
use fcgi_tests::settings::scaled;

type HandlerResult = Result<(), fcgi_server::Error>;

/// How long a test waits for something a handler signals.
const SIGNAL: Duration = Duration::from_secs(10);

/// Answers the `SAY` param (empty if absent), a colon, and the request body.
fn echo(request: &mut Request, response: &mut Response) -> HandlerResult {
    let mut body = Vec::new();
    request.body().read_to_end(&mut body)?;
    response.header("Content-Type", "text/plain")?;
    response.write_all(request.param("SAY").unwrap_or_default())?;
    response.write_all(b":")?;
    response.write_all(&body)?;
    Ok(())
}

fn echo_server() -> TestServer {
    TestServer::start(inproc::config(), |b| b.responder(echo))
}

/// A request `SAY`ing `say`, with `body`, on a kept connection; checks the echo.
#[track_caller]
fn assert_echo(client: &mut Client, say: &str, body: &[u8]) {
    let reply = client.simple_request(&[("SAY", say)], body);
    reply.assert_complete(200);
    let mut expected = format!("{say}:").into_bytes();
    expected.extend_from_slice(body);
    assert_eq!(reply.body_text(), String::from_utf8_lossy(&expected));
}

/// How the panics that tests cause on purpose begin.
const DELIBERATE: &str = "a deliberate panic";

/// Keeps the panics that handlers raise on purpose out of the test output (they would print a
/// message and, with RUST_BACKTRACE set, a backtrace); every other panic is reported as usual.
fn quiet_deliberate_panics() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        fcgi_tests::panics::quiet(|info| {
            let payload = info.payload();
            let message = payload
                .downcast_ref::<&str>()
                .copied()
                .or_else(|| payload.downcast_ref::<String>().map(String::as_str));
            message.is_some_and(|m| m.starts_with(DELIBERATE))
        });
    });
}

/// Sends GET_VALUES and reads the next record, which must be its answer: everything sent
/// before it has been acted on, and nothing was answered for it.
#[track_caller]
fn barrier(client: &mut Client) {
    let frame = client.barrier();
    assert_eq!(
        frame,
        Frame {
            request_id: 0,
            kind: FrameKind::GetValuesResult(vec![(b"FCGI_MPXS_CONNS".to_vec(), b"1".to_vec())])
        },
        "records sent before the barrier were answered"
    );
}

// ---------------------------------------------------------------------------------------------
// FCGI_KEEP_CONN

#[test]
fn keep_conn_serves_1000_sequential_requests_on_one_connection() {
    let server = echo_server();
    let mut client = server.connect();
    let started = Instant::now();
    for i in 0..1000 {
        // Request id 1 every time, as nginx does.
        assert_echo(&mut client, &i.to_string(), b"");
    }
    eprintln!("1,000 kept-connection requests in {:?}", started.elapsed());
}

#[test]
fn without_keep_conn_the_server_closes_after_end_request() {
    let server = echo_server();
    let mut client = server.connect();
    client.send_ok(&frames::request(1, Role::Responder, false, &[("SAY", "once")], b"body"));
    let reply = client.read_reply(1);
    reply.assert_complete(200);
    assert_eq!(reply.body, b"once:body");
    // Nothing after END_REQUEST, and the end of the stream (not a timeout).
    assert_eq!(client.next_frame().unwrap(), None);
}

#[test]
fn without_keep_conn_the_thread_that_answered_closes_the_connection() {
    // The web server keeps its end open after END_REQUEST: the server closes the connection
    // itself, on the thread that ran the request, rather than when the web server's close
    // wakes a thread for it.
    let server = TestServer::start(inproc::config(), |b| b.responder(inproc::hello));
    let mut client = server.connect();
    client.send_ok(&frames::request(1, Role::Responder, false, &[], b""));
    client.read_reply(1).assert_complete(200);
    assert!(
        wait_until(SIGNAL, || server.logs().contains("why=answered its last request")),
        "the connection was not closed by the server: {:#?}",
        server.logs().lines()
    );
    drop(client);
}

#[test]
fn without_keep_conn_input_after_the_request_costs_nothing_of_the_answer() {
    // Over TCP, where a socket closed with unread input resets the connection and can take
    // the end of the answer with it: a record after the request is taken in (or the close
    // waits for it), and the answer arrives whole, then the end of the stream.
    let (sent, wait) = mpsc::channel::<()>();
    let wait = Mutex::new(wait);
    let server = TestServer::start(inproc::config(), move |b| {
        b.responder(move |request: &mut Request, response: &mut Response| {
            let _ = wait.lock().unwrap().recv_timeout(SIGNAL);
            echo(request, response)
        })
    });
    for round in 0..20 {
        let mut client = server.connect();
        let mut bytes = frames::request(1, Role::Responder, false, &[("SAY", "once")], b"body");
        // A management record, sent before the answer is read.
        bytes.extend_from_slice(&frames::get_values(&["FCGI_MPXS_CONNS"]));
        client.send_ok(&bytes);
        sent.send(()).unwrap();
        let frames = client
            .read_until_closed()
            .unwrap_or_else(|e| panic!("round {round}: the connection broke: {e}"));
        let stdout: Vec<u8> = frames
            .iter()
            .filter(|f| f.request_id == 1)
            .filter_map(|f| match &f.kind {
                FrameKind::Stdout(content) => Some(content.clone()),
                _ => None,
            })
            .flatten()
            .collect();
        let text = String::from_utf8_lossy(&stdout);
        assert!(text.ends_with("\r\n\r\nonce:body"), "round {round}: the answer: {text:?}");
        assert!(
            frames.iter().any(|f| matches!(f.kind, FrameKind::EndRequest(_))),
            "round {round}: no END_REQUEST: {frames:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Multiplexing

#[test]
fn multiplexed_interleaved_requests_each_get_their_own_response() {
    let server = echo_server();
    let mut client = server.connect();
    // Any u16 id (edge case 5), including the largest.
    let ids: [u16; 8] = [1, 2, 7, 255, 256, 4096, 65534, 65535];
    let body_of = |id: u16| -> Vec<u8> {
        // One body over 64 KiB, so that its STDIN takes several records.
        let len = if id == 4096 { 150_000 } else { 100 + usize::from(id % 1000) };
        pattern(len, u64::from(id) + 1)
    };
    // Each request as a list of records, then all of them sent round-robin.
    let mut streams: Vec<Vec<Vec<u8>>> = ids
        .iter()
        .map(|&id| {
            let say = format!("request-{id}");
            let pairs = frames::pairs(&[("SAY", &say), ("REQUEST_METHOD", "POST")]);
            // The params cut inside the first pair: it straddles two records (edge case 2).
            let mut records = vec![
                frames::begin(id, Role::Responder, true),
                frames::stream(StreamKind::Params, id, &pairs[..3]),
                frames::stream(StreamKind::Params, id, &pairs[3..]),
                frames::end(StreamKind::Params, id),
            ];
            for chunk in body_of(id).chunks(40_000) {
                records.push(frames::stream(StreamKind::Stdin, id, chunk));
            }
            records.push(frames::end(StreamKind::Stdin, id));
            records.reverse();
            records
        })
        .collect();
    let mut wire = Vec::new();
    while streams.iter().any(|records| !records.is_empty()) {
        for records in &mut streams {
            if let Some(record) = records.pop() {
                wire.extend(record);
            }
        }
    }
    client.send_ok(&wire);

    // Read the answers in an order unrelated to the order sent; `read_reply` keeps the
    // records of other ids aside and checks each stream's shape.
    for &id in ids.iter().rev() {
        let reply = client.read_reply(id);
        reply.assert_complete(200);
        let mut expected = format!("request-{id}:").into_bytes();
        expected.extend(body_of(id));
        assert!(reply.body == expected, "request {id}: wrong body ({} bytes)", reply.body.len());
    }
    // The connection is still good afterwards.
    assert_echo(&mut client, "after", b"");
}

// ---------------------------------------------------------------------------------------------
// Management records

#[test]
fn get_values_answers_the_known_names_with_the_configured_values() {
    let config = Config {
        max_conns: 123,
        min_spare: 1,
        max_spare: 2,
        max_threads: 5,
        queue: 7,
        max_conn_requests: 12,
        ..inproc::config()
    };
    let server = TestServer::start(config, |b| b.responder(echo));
    let mut client = server.connect();
    client.send_get_values(&[
        "FCGI_MAX_CONNS",
        "FCGI_NOT_A_VARIABLE",
        "FCGI_MAX_REQS",
        "FCGI_MPXS_CONNS",
    ]);
    let frame = client.expect_frame();
    assert_eq!(frame.request_id, 0);
    let FrameKind::GetValuesResult(pairs) = frame.kind else {
        panic!("expected GET_VALUES_RESULT, got {frame:?}");
    };
    let pairs: Vec<(String, String)> = pairs
        .into_iter()
        .map(|(n, v)| (String::from_utf8(n).unwrap(), String::from_utf8(v).unwrap()))
        .collect();
    let expected = [("FCGI_MAX_CONNS", "123"), ("FCGI_MAX_REQS", "12"), ("FCGI_MPXS_CONNS", "1")];
    let expected: Vec<(String, String)> =
        expected.iter().map(|(n, v)| ((*n).to_owned(), (*v).to_owned())).collect();
    assert_eq!(pairs, expected, "FCGI_MAX_REQS is max_conn_requests; the unknown name is left out");

    // Asking for nothing known gets an empty answer, not silence.
    client.send_get_values(&["FCGI_NOT_A_VARIABLE"]);
    assert_eq!(client.expect_frame().kind, FrameKind::GetValuesResult(Vec::new()));
    assert_echo(&mut client, "after", b"");
}

#[test]
fn get_values_between_a_requests_records_is_answered_at_once() {
    let server = echo_server();
    let mut client = server.connect();
    let pairs = frames::pairs(&[("SAY", "straddling the management record")]);
    client.send_begin(1, Role::Responder, true);
    client.send_ok(&frames::stream(StreamKind::Params, 1, &pairs[..6]));
    // Mid-request, mid-pair: answered now, before the request is complete.
    barrier(&mut client);
    client.send_ok(&frames::stream(StreamKind::Params, 1, &pairs[6..]));
    client.send_ok(&frames::end(StreamKind::Params, 1));
    client.send_ok(&frames::stream(StreamKind::Stdin, 1, b"half"));
    barrier(&mut client);
    client.send_ok(&frames::stdin(1, b" and half"));
    let reply = client.read_reply(1);
    reply.assert_complete(200);
    assert_eq!(reply.body_text(), "straddling the management record:half and half");
}

#[test]
fn unknown_management_types_get_unknown_type_and_the_connection_goes_on() {
    let server = echo_server();
    let mut client = server.connect();
    client.check_unknown_management_types();
    assert_echo(&mut client, "still served", b"");
}

// ---------------------------------------------------------------------------------------------
// FCGI_ABORT_REQUEST

#[test]
fn abort_reaches_a_running_handler_and_the_request_still_ends() {
    let (started_tx, started) = mpsc::channel::<()>();
    let (observed_tx, observed) = mpsc::channel::<bool>();
    let handler = move |request: &mut Request, response: &mut Response| -> HandlerResult {
        if request.param("MODE") == Some(b"spin") {
            started_tx.send(()).expect("the test waits");
            // Bounded: a server that never delivers the abort fails the test, not hangs it.
            let aborted = wait_until(SIGNAL, || request.is_aborted());
            observed_tx.send(aborted).expect("the test waits");
            return Ok(());
        }
        echo(request, response)
    };
    let server = TestServer::start(inproc::config(), |b| b.responder(handler));
    let mut client = server.connect();
    client.send_ok(&frames::request(1, Role::Responder, true, &[("MODE", "spin")], b""));
    started.recv_timeout(SIGNAL).expect("the handler started");
    client.send_abort(1);
    assert!(observed.recv_timeout(SIGNAL).expect("the handler returned"), "abort not seen");
    let reply = client.read_reply(1);
    assert_eq!(reply.end.protocol_status, ProtocolStatus::RequestComplete);
    assert!(reply.stdout_ended, "the response is still well formed: {reply:?}");

    // The thread and the connection are back in service.
    assert_echo(&mut client, "next", b"on the same connection");
    let report = server.stop(Duration::from_secs(5));
    assert_eq!(report.unfinished, 0);
    assert_eq!(report.requests, 2);
}

#[test]
fn abort_before_the_params_end_gets_end_request_and_runs_no_handler() {
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&calls);
    let handler = move |request: &mut Request, response: &mut Response| -> HandlerResult {
        counted.fetch_add(1, Ordering::SeqCst);
        echo(request, response)
    };
    let server = TestServer::start(inproc::config(), |b| b.responder(handler));
    let mut client = server.connect();
    client.send_begin(1, Role::Responder, true);
    client.send_ok(&frames::stream(StreamKind::Params, 1, &frames::pairs(&[("SAY", "never")])));
    client.send_abort(1);
    let reply = client.read_reply(1);
    assert_eq!(reply.end.protocol_status, ProtocolStatus::RequestComplete);
    assert!(reply.stdout.is_empty(), "no handler ran, so no output: {reply:?}");
    // The rest of the aborted request comes late: it belongs to no request and is ignored.
    client.send_ok(&frames::end(StreamKind::Params, 1));
    client.send_ok(&frames::stdin(1, b"late"));
    barrier(&mut client);
    assert_eq!(calls.load(Ordering::SeqCst), 0);

    assert_echo(&mut client, "next", b"");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    let report = server.stop(Duration::from_secs(5));
    assert_eq!((report.requests, report.unfinished), (1, 0));
}

#[test]
fn abort_while_the_body_arrives_fails_the_handlers_read() {
    let (started_tx, started) = mpsc::channel::<()>();
    let (read_tx, read_result) = mpsc::channel::<io::ErrorKind>();
    let handler = move |request: &mut Request, _: &mut Response| -> HandlerResult {
        started_tx.send(()).expect("the test waits");
        let mut body = Vec::new();
        let error = request.body().read_to_end(&mut body).expect_err("the body never ends");
        read_tx.send(error.kind()).expect("the test waits");
        Err(error.into())
    };
    let server =
        TestServer::start(inproc::config(), |b| b.handler(Role::Responder, streaming(handler)));
    let mut client = server.connect();
    client.send_begin(1, Role::Responder, true);
    client.send_params(1, &[]);
    client.send_ok(&frames::stream(StreamKind::Stdin, 1, b"the first part of a body"));
    started.recv_timeout(SIGNAL).expect("the handler started");
    client.send_abort(1);
    let kind = read_result.recv_timeout(SIGNAL).expect("the handler's read returned");
    assert_eq!(kind, io::ErrorKind::ConnectionAborted);
    let reply = client.read_reply(1);
    assert_eq!(reply.end.protocol_status, ProtocolStatus::RequestComplete);
    assert!(reply.stdout_ended);
    let report = server.stop(Duration::from_secs(5));
    assert_eq!(report.unfinished, 0, "the aborted request left nothing running");
}

// ---------------------------------------------------------------------------------------------
// Roles and request ids

#[test]
fn unknown_role_and_a_role_without_handler_get_unknown_role() {
    let server = echo_server();
    let mut client = server.connect();
    // Role 9 is no role at all; Filter and Authorizer have no handler on this server.
    for (id, role) in [(1, 9), (2, 3), (3, 2)] {
        client.send_ok(&frames::begin_role(id, role, true));
        // The web server may send the rest before it sees the refusal: it is ignored.
        client.send_params(id, &[("SAY", "ignored")]);
        client.send_stdin(id, b"ignored");
        let reply = client.read_reply(id);
        assert_eq!(reply.end.protocol_status, ProtocolStatus::UnknownRole, "role {role}");
        // And a 500 before it, for web servers that ignore the protocol status.
        assert_eq!(reply.status, 500, "role {role}: {reply:?}");
    }
    barrier(&mut client);
    assert_echo(&mut client, "responder", b"still served");

    // Without FCGI_KEEP_CONN the refusal also ends the connection.
    let mut once = server.connect();
    once.send_ok(&frames::begin_role(1, 9, false));
    assert_eq!(once.read_reply(1).end.protocol_status, ProtocolStatus::UnknownRole);
    assert_eq!(once.read_until_closed().unwrap(), Vec::new());
}

#[test]
fn records_for_inactive_request_ids_are_ignored() {
    let server = echo_server();
    let mut client = server.connect();
    client.send_ok(&frames::for_no_request(77));
    // Nothing was answered for any of it...
    barrier(&mut client);
    // ...and request 77, begun for real now, starts clean.
    client.send_ok(&frames::request(77, Role::Responder, true, &[], b"real"));
    let reply = client.read_reply(77);
    reply.assert_complete(200);
    assert_eq!(reply.body, b":real");
}

// ---------------------------------------------------------------------------------------------
// Malformed input: each on its own connection, while a well-behaved one is mid-request.

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

// ---------------------------------------------------------------------------------------------
// Limits

#[test]
fn params_over_the_configured_limit_get_431() {
    let config = Config {
        params_limits: ParamsLimits { max_len: 1024, ..ParamsLimits::default() },
        ..inproc::config()
    };
    let server = TestServer::start(config, |b| b.responder(echo));
    let mut client = server.connect();
    let long = "x".repeat(2000);
    let reply = client.simple_request(&[("SAY", &long)], b"");
    reply.assert_complete(431);
    // Just under the limit is fine, on the same connection.
    assert_echo(&mut client, &"y".repeat(1000), b"");
}

#[test]
fn body_over_max_body_gets_413() {
    let config = Config { max_body: Some(1000), ..inproc::config() };
    let server = TestServer::start(config, |b| b.responder(echo));
    let mut client = server.connect();
    let reply = client.simple_request(&[("SAY", "big")], &[b'b'; 5000]);
    reply.assert_complete(413);
    assert!(!reply.body_text().contains("big:"), "the handler's output was replaced");
    // Exactly the limit is fine, on the same connection.
    assert_echo(&mut client, "at the limit", &[b'a'; 1000]);
}

#[test]
fn body_over_max_body_gets_413_even_when_the_handler_ignores_the_body() {
    let config = Config { max_body: Some(1000), ..inproc::config() };
    let server = TestServer::start(config, |b| b.responder(inproc::hello));
    let mut client = server.connect();
    // The handler answers without reading: nothing goes out before the body has arrived, so
    // the excess is still answered.
    client.simple_request(&[], &[b'b'; 5000]).assert_complete(413);
    client.simple_request(&[], &[b'b'; 1000]).assert_complete(200);
}

// ---------------------------------------------------------------------------------------------
// Slow and idle clients

#[test]
fn slow_client_is_answered_and_others_are_served_meanwhile() {
    let server = echo_server();
    let mut slow = server.connect();
    let wire = frames::request(1, Role::Responder, false, &[("SAY", "slow")], b"");
    let (done, slow_reply) = mpsc::channel();
    std::thread::spawn(move || {
        let pieces = 20;
        for piece in wire.chunks(wire.len().div_ceil(pieces)) {
            slow.send_ok(piece);
            // The subject of the test: one piece every 200 ms.
            std::thread::sleep(Duration::from_millis(200));
        }
        let _ = done.send(slow.read_reply(1));
    });

    // A request on another connection every 50 ms or so, until the slow one is answered.
    let mut fast = server.connect();
    let (mut served, mut slowest) = (0, Duration::ZERO);
    let reply = loop {
        let started = Instant::now();
        assert_echo(&mut fast, "fast", b"");
        slowest = slowest.max(started.elapsed());
        served += 1;
        match slow_reply.recv_timeout(Duration::from_millis(50)) {
            Ok(reply) => break reply,
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => panic!("the slow client failed"),
        }
    };
    reply.assert_complete(200);
    assert_eq!(reply.body, b"slow:");
    eprintln!(
        "while a request came in 20 pieces 200 ms apart: {served} others, slowest {slowest:?}"
    );
    assert!(served >= 10, "only {served} requests served meanwhile");
    assert!(slowest < scaled(Duration::from_secs(1)), "a request took {slowest:?}");
}

#[test]
fn a_web_server_that_never_reads_its_answers_cannot_stall_the_others() {
    // Its connection stops being read once its answers pile up, and is closed when it has
    // read none of them for the write timeout: shorter than the flood's own send timeout.
    let config = Config { write_timeout: Duration::from_secs(2), ..inproc::config() };
    let server = TestServer::start_on(Transport::Unix, config, |b| b.responder(echo));
    let mut hog = server.connect();
    // 200,000 GET_VALUES (11 MB), whose answers are never read: far more than socket buffers.
    let flood =
        frames::get_values(&["FCGI_MAX_CONNS", "FCGI_MAX_REQS", "FCGI_MPXS_CONNS"]).repeat(200_000);
    let sender = std::thread::spawn(move || {
        let sent = hog.send(&flood);
        (hog, sent)
    });

    let mut other = server.connect();
    let (mut served, mut slowest) = (0, Duration::ZERO);
    while served < 5 || !sender.is_finished() {
        let started = Instant::now();
        assert_echo(&mut other, "other", b"");
        slowest = slowest.max(started.elapsed());
        served += 1;
    }
    assert!(
        slowest < scaled(Duration::from_secs(1)),
        "a request took {slowest:?} during the flood"
    );

    // Its answers piling up, the server gave up on the connection instead of queueing them
    // without bound (or waiting on it).
    let (mut hog, sent) = sender.join().expect("the flooding thread");
    match sent {
        Ok(()) => {
            let closed = hog.read_until_closed();
            assert!(closed.is_ok(), "the connection was not closed: {:?}", closed.map(|f| f.len()));
        }
        Err(e) => assert!(fcgi_tests::raw::is_closed(&e), "the flood failed otherwise: {e}"),
    }
    // The server closes the connection first and logs why after: wait for the line.
    let logged =
        wait_until(Duration::from_secs(5), || server.logs().contains("does not read its answers"));
    assert!(logged, "{:?}", server.logs().lines());
}

#[test]
fn answers_queued_behind_a_blocked_writer_arrive_whole_and_stall_nobody() {
    const CHUNK: usize = 64 * 1024;
    const CHUNKS: usize = 128;
    let chunks_begun = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&chunks_begun);
    let handler = move |request: &mut Request, response: &mut Response| -> HandlerResult {
        if request.param_str("MODE") != Some("big") {
            return echo(request, response);
        }
        let chunk = vec![b'x'; CHUNK];
        for _ in 0..CHUNKS {
            counter.fetch_add(1, Ordering::SeqCst);
            response.write_all(&chunk)?;
        }
        Ok(())
    };
    let server = TestServer::start_on(Transport::Unix, inproc::config(), |b| b.responder(handler));
    let mut stuck = server.connect();
    stuck.send_ok(&frames::request(1, Role::Responder, true, &[("MODE", "big")], b""));
    // Wait for the handler to stop making progress: the socket is full and it waits for us
    // to read, holding the connection's write lock.
    let (mut last, mut since) = (0, Instant::now());
    let blocked = wait_until(SIGNAL, || {
        let begun = chunks_begun.load(Ordering::SeqCst);
        if begun != last {
            (last, since) = (begun, Instant::now());
        }
        begun >= 2 && since.elapsed() >= Duration::from_millis(100)
    });
    assert!(blocked, "the handler did not start writing, or never blocked ({last} chunks)");
    // Answers the monitor gives on that same connection meanwhile...
    stuck.send_get_values(&["FCGI_MPXS_CONNS"]);
    stuck.send_ok(&frames::begin_role(2, 9, true));
    // ...do not make it wait: other connections are served at once.
    let mut other = server.connect();
    for _ in 0..5 {
        let started = Instant::now();
        assert_echo(&mut other, "other", b"");
        let took = started.elapsed();
        assert!(took < scaled(Duration::from_secs(1)), "a request took {took:?}");
    }
    assert!(chunks_begun.load(Ordering::SeqCst) < CHUNKS, "the handler was never blocked");

    // Reading now, everything arrives, each record whole between the big response's records.
    let reply = stuck.read_reply(1);
    reply.assert_complete(200);
    assert_eq!(reply.body.len(), CHUNK * CHUNKS);
    assert!(reply.body.iter().all(|&b| b == b'x'), "the big response was corrupted");
    let frame = stuck.next_frame_for(0).unwrap();
    let expected = vec![(b"FCGI_MPXS_CONNS".to_vec(), b"1".to_vec())];
    assert_eq!(frame.kind, FrameKind::GetValuesResult(expected));
    assert_eq!(stuck.read_reply(2).end.protocol_status, ProtocolStatus::UnknownRole);
}

// ---------------------------------------------------------------------------------------------
// Overload

#[test]
fn overload_answers_503_overloaded_at_once() {
    let (started_tx, started) = mpsc::channel::<()>();
    let (release, released) = mpsc::channel::<()>();
    let released = Mutex::new(released);
    let handler = move |_: &mut Request, response: &mut Response| -> HandlerResult {
        started_tx.send(()).expect("the test waits");
        let released = released.lock().expect("one handler at a time").recv_timeout(SIGNAL);
        released.map_err(|_| "the test never released the handler")?;
        response.write_all(b"released")?;
        Ok(())
    };
    let config =
        Config { min_spare: 1, max_spare: 1, max_threads: 1, queue: 0, ..inproc::config() };
    let server = TestServer::start(config, |b| b.responder(handler));
    let mut first = server.connect();
    first.send_ok(&frames::request(1, Role::Responder, true, &[], b""));
    started.recv_timeout(SIGNAL).expect("the first handler started");

    let mut second = server.connect();
    let sent = Instant::now();
    let reply = second.simple_request(&[], b"");
    let waited = sent.elapsed();
    assert_eq!(reply.end.protocol_status, ProtocolStatus::Overloaded);
    assert_eq!(reply.status, 503);
    assert_eq!(reply.header("Retry-After"), Some("1"));
    assert!(reply.stdout_ended);
    assert!(waited < scaled(Duration::from_secs(1)), "the 503 took {waited:?}");

    release.send(()).unwrap();
    let reply = first.read_reply(1);
    reply.assert_complete(200);
    assert_eq!(reply.body, b"released");
    // The thread is free again (once it is back from writing the first answer): the refused
    // connection is served now.
    release.send(()).unwrap();
    let served = wait_until(Duration::from_secs(5), || {
        let reply = second.simple_request(&[], b"");
        reply.end.protocol_status == ProtocolStatus::RequestComplete && reply.status == 200
    });
    assert!(served, "the refused connection was never served");
}

#[test]
fn connections_over_max_conns_get_503_overloaded() {
    let config = Config { max_conns: 1, ..inproc::config() };
    let server = TestServer::start(config, |b| b.responder(echo));
    let mut first = server.connect();
    assert_echo(&mut first, "first", b"");
    let mut second = server.connect();
    let reply = second.simple_request(&[], b"");
    assert_eq!(reply.end.protocol_status, ProtocolStatus::Overloaded);
    assert_eq!(reply.status, 503);
    assert_eq!(second.read_until_closed().unwrap(), Vec::new(), "the extra connection is ended");
    assert_echo(&mut first, "first, still", b"");

    // Once the first goes, its place is free again.
    drop((first, second));
    let served = wait_until(Duration::from_secs(5), || {
        let reply = server.connect().simple_request(&[("SAY", "third")], b"");
        reply.end.protocol_status == ProtocolStatus::RequestComplete && reply.body == b"third:"
    });
    assert!(served, "a connection was refused after the others closed");
}

// ---------------------------------------------------------------------------------------------
// Handlers: panics, stderr, output streams

#[test]
fn panicking_handler_answers_500_and_the_server_goes_on() {
    quiet_deliberate_panics();
    let handler = |request: &mut Request, response: &mut Response| -> HandlerResult {
        match request.param_str("MODE") {
            Some("panic") => panic!("{DELIBERATE}, before any output"),
            Some("late") => {
                response.write_all(b"partial")?;
                response.flush()?;
                panic!("{DELIBERATE}, after the headers went out");
            }
            _ => response.write_all(b"fine")?,
        }
        Ok(())
    };
    let server = TestServer::start(inproc::config(), |b| b.responder(handler));
    let mut client = server.connect();
    let reply = client.simple_request(&[("MODE", "panic")], b"");
    reply.assert_complete(500);
    assert_eq!(reply.body_text(), "500 Internal Server Error\n");
    assert!(server.logs().contains("handler panicked"));

    // Headers already sent: the web server must not take the start of the response for all
    // of it. No END_REQUEST: an invalid record, and the connection closed.
    let mut late = server.connect();
    late.send_ok(&frames::request(1, Role::Responder, true, &[("MODE", "late")], b""));
    let error = late.try_read_reply(1).expect_err("a response cut short is not complete");
    assert_eq!(error.kind(), io::ErrorKind::InvalidData, "{error}");

    let reply = client.simple_request(&[], b"");
    reply.assert_complete(200);
    assert_eq!(reply.body, b"fine");
}

#[test]
fn handler_stderr_is_sent_as_a_terminated_stderr_stream() {
    let handler = |_: &mut Request, response: &mut Response| -> HandlerResult {
        response.write_stderr(b"first warning\n")?;
        response.write_all(b"body")?;
        response.write_stderr(b"")?; // writes nothing, and does not end the stream
        response.write_stderr(b"second warning\n")?;
        Ok(())
    };
    let server = TestServer::start(inproc::config(), |b| b.responder(handler));
    let reply = server.connect().simple_request(&[], b"");
    reply.assert_complete(200);
    assert_eq!(reply.body, b"body");
    assert_eq!(reply.stderr, b"first warning\nsecond warning\n");
    assert!(reply.stderr_ended, "STDERR was not ended");
}

#[test]
fn stdout_over_65535_bytes_is_split_into_records() {
    let big = pattern(200_000, 42);
    let payload = big.clone();
    let handler = move |_: &mut Request, response: &mut Response| -> HandlerResult {
        response.write_all(&payload)?;
        Ok(())
    };
    let server = TestServer::start(inproc::config(), |b| b.responder(handler));
    let reply = server.connect().simple_request(&[], b"");
    reply.assert_complete(200);
    assert!(reply.body == big, "the body came back altered ({} bytes)", reply.body.len());
    assert!(reply.stdout_records.len() >= 4, "records: {:?}", reply.stdout_records);
    assert!(reply.stdout_records.iter().all(|&len| len > 0 && len <= 65_535));
}

#[test]
fn empty_output_still_ends_stdout_and_empty_writes_send_no_record() {
    let handler = |request: &mut Request, response: &mut Response| -> HandlerResult {
        if request.param_str("MODE") == Some("writes") {
            // An empty record would end STDOUT early (edge case 1): none may be sent.
            response.write_all(b"")?;
            response.flush()?;
            response.write_all(b"a")?;
            response.write_all(b"")?;
            response.flush()?;
            response.write_all(b"b")?;
        }
        Ok(())
    };
    let server = TestServer::start(inproc::config(), |b| b.responder(handler));
    let mut client = server.connect();
    let reply = client.simple_request(&[], b"");
    reply.assert_complete(200);
    assert!(reply.body.is_empty());
    assert!(reply.stdout_ended, "STDOUT must be ended even when nothing was written");

    let reply = client.simple_request(&[("MODE", "writes")], b"");
    reply.assert_complete(200);
    assert_eq!(reply.body, b"ab");
}

// ---------------------------------------------------------------------------------------------
// Protocol errors

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

// ---------------------------------------------------------------------------------------------
// Roles

#[test]
fn authorizer_variables_become_variable_headers() {
    let handler = |request: &mut Request, response: &mut Response| -> HandlerResult {
        if request.param("HTTP_AUTHORIZATION") == Some(b"Bearer good") {
            response.variable("USER", "bob")?;
        } else {
            response.set_status(403);
        }
        Ok(())
    };
    let server = TestServer::start(inproc::config(), |b| b.authorizer(handler));
    let mut client = server.connect();
    let params = [("HTTP_AUTHORIZATION", "Bearer good"), ("REQUEST_URI", "/private")];
    client.send_ok(&frames::request(1, Role::Authorizer, true, &params, b""));
    let reply = client.read_reply(1);
    reply.assert_complete(200);
    assert_eq!(reply.header("Variable-USER"), Some("bob"));

    client.send_ok(&frames::request(1, Role::Authorizer, true, &[("REQUEST_URI", "/x")], b""));
    let reply = client.read_reply(1);
    reply.assert_complete(403);
    assert_eq!(reply.header("Variable-USER"), None);
}

#[test]
fn filter_reads_data_after_stdin() {
    let handler = |request: &mut Request, response: &mut Response| -> HandlerResult {
        let mut stdin = String::new();
        request.body().read_to_string(&mut stdin)?;
        let mut data = String::new();
        request.data().ok_or("a Filter request has FCGI_DATA")?.read_to_string(&mut data)?;
        let length = request.param_str("FCGI_DATA_LENGTH").unwrap_or("?").to_owned();
        write!(response, "stdin={stdin};data={data};length={length}")?;
        Ok(())
    };
    let server = TestServer::start(inproc::config(), |b| b.filter(handler));
    let mut client = server.connect();
    let file = "the file to filter";
    let length = file.len().to_string();
    let params = [("FCGI_DATA_LENGTH", length.as_str()), ("FCGI_DATA_LAST_MOD", "0")];
    let mut wire = frames::request(1, Role::Filter, true, &params, b"the body");
    wire.extend(frames::data(1, file.as_bytes()));
    client.send_ok(&wire);
    let reply = client.read_reply(1);
    reply.assert_complete(200);
    assert_eq!(reply.body_text(), format!("stdin=the body;data={file};length={}", file.len()));
}

// ---------------------------------------------------------------------------------------------
// Large bodies

#[test]
fn two_mebibyte_body_spooled_to_disk_is_read_intact() {
    let handler = |request: &mut Request, response: &mut Response| -> HandlerResult {
        let (mut len, mut hash) = (0usize, FNV1A_OFFSET);
        let mut buf = [0u8; 7000];
        loop {
            match request.body().read(&mut buf)? {
                0 => break,
                n => {
                    len += n;
                    hash = fnv1a_continue(hash, &buf[..n]);
                }
            }
        }
        write!(response, "len={len} fnv={hash:016x}")?;
        Ok(())
    };
    let spool = tempfile::tempdir().unwrap();
    let config = Config {
        spool_memory: 16 * 1024,
        spool_dir: Some(spool.path().to_path_buf()),
        ..inproc::config()
    };
    let server = TestServer::start(config, |b| b.responder(handler));
    let body = pattern(2 << 20, 7);
    let mut client = server.connect();
    client.send_begin(1, Role::Responder, true);
    client.send_params(1, &[("CONTENT_LENGTH", &body.len().to_string())]);
    // Records of 65,535 bytes, the largest there are.
    for chunk in body.chunks(65_535) {
        client.send_ok(&frames::record(RecordType::Stdin, 1, chunk));
    }
    client.send_ok(&frames::end(StreamKind::Stdin, 1));
    let reply = client.read_reply(1);
    reply.assert_complete(200);
    assert_eq!(reply.body_text(), format!("len={} fnv={:016x}", body.len(), fnv1a(&body)));
}

// ---------------------------------------------------------------------------------------------
// Graceful shutdown

#[test]
fn graceful_shutdown_finishes_the_request_in_flight_and_removes_the_socket() {
    let (started_tx, started) = mpsc::channel::<()>();
    let handler = move |_: &mut Request, response: &mut Response| -> HandlerResult {
        started_tx.send(()).expect("the test waits");
        // The subject of the test: a request that takes a second.
        std::thread::sleep(Duration::from_secs(1));
        response.write_all(b"finished")?;
        Ok(())
    };
    let mut server =
        TestServer::start_on(Transport::Unix, inproc::config(), |b| b.responder(handler));
    let socket = server.addr().socket_path().expect("a Unix socket").to_path_buf();
    assert!(socket.exists());
    let mut client = server.connect();
    client.send_ok(&frames::request(1, Role::Responder, true, &[], b""));
    started.recv_timeout(SIGNAL).expect("the handler started");

    server.shutdown_handle().shutdown(Duration::from_secs(10));
    assert!(
        wait_until(Duration::from_secs(5), || !socket.exists()),
        "the socket file is still there"
    );
    assert!(Client::try_connect(server.addr()).is_err(), "a new connection was accepted");
    let reply = client.read_reply(1);
    reply.assert_complete(200);
    assert_eq!(reply.body, b"finished");
    // The kept connection is closed once its request is done, and serve() returns.
    assert_eq!(client.read_until_closed().unwrap(), Vec::new());
    let report = server.wait_stopped(Duration::from_secs(5)).expect("serve() returned");
    assert_eq!((report.requests, report.unfinished), (1, 0));
}

#[test]
fn graceful_shutdown_waits_for_the_end_of_a_response_the_web_server_has_not_read() {
    const CHUNK: usize = 64 * 1024;
    let (started_tx, started) = mpsc::channel::<()>();
    let (returned_tx, returned) = mpsc::channel::<()>();
    let handler = move |_: &mut Request, response: &mut Response| -> HandlerResult {
        started_tx.send(()).expect("the test waits");
        // 192 KiB: most of what a Unix socket holds (about 228 KiB with Linux's defaults), so
        // these writes need not wait for the web server to read.
        for _ in 0..3 {
            response.write_all(&[b'x'; CHUNK])?;
        }
        // Under the server's 64 KiB flush threshold: written only after the handler returns,
        // into a full socket, so the response's last records wait for the web server to read.
        response.write_all(&[b'y'; CHUNK - 4096])?;
        returned_tx.send(()).expect("the test waits");
        Ok(())
    };
    let mut server =
        TestServer::start_on(Transport::Unix, inproc::config(), |b| b.responder(handler));
    let mut client = server.connect();
    client.send_ok(&frames::request(1, Role::Responder, true, &[], b""));
    started.recv_timeout(SIGNAL).expect("the handler started");
    server.shutdown_handle().shutdown(Duration::from_secs(10));
    // If the socket holds less than it usually does, the handler waits for us to read: go on.
    let _ = returned.recv_timeout(Duration::from_secs(2));
    // The subject of the test: while the end of the response waits for the web server, the
    // draining server (which checks its connections every 20 ms, after at most a second) must
    // not take the connection for idle. Give it the time to go wrong.
    let closed =
        wait_until(Duration::from_millis(1500), || server.logs().contains("connection closed"));
    let reply = client.read_reply(1);
    reply.assert_complete(200);
    assert_eq!(reply.body.len(), 4 * CHUNK - 4096);
    assert!(!closed, "the connection was closed before its response was delivered");
    let report = server.wait_stopped(Duration::from_secs(5)).expect("serve() returned");
    assert_eq!((report.requests, report.unfinished), (1, 0));
}

#[test]
fn a_web_server_that_hangs_up_mid_response_is_logged_as_gone_not_as_a_handler_failure() {
    let server = TestServer::start(inproc::config(), |b| {
        b.responder(|_: &mut Request, response: &mut Response| -> Result<(), fcgi_server::Error> {
            response.header("Content-Type", "application/octet-stream")?;
            // Far more than the socket buffers: writing fails once the peer has gone.
            for _ in 0..1024 {
                response.write_all(&[b'x'; 64 * 1024])?;
            }
            Ok(())
        })
    });
    let mut client = server.connect();
    client.send_ok(&frames::request(1, Role::Responder, false, &[], b""));
    client.expect_frame();
    drop(client);
    assert!(
        wait_until(Duration::from_secs(10), || server.logs().contains("went away")),
        "{:?}",
        server.logs().lines()
    );
    assert!(!server.logs().contains("handler failed"), "{:?}", server.logs().lines());
}

#[test]
fn large_writes_sent_from_the_handlers_buffer_arrive_intact_and_in_order() {
    // Writes of every size around the direct-send threshold (16 KiB) and the record limit,
    // interleaved with small ones that gather in the server's buffer, and stderr between them.
    const SIZES: [usize; 9] = [1, 16 * 1024 - 1, 16 * 1024, 65_528, 65_529, 100_000, 7, 200_003, 3];
    let server = TestServer::start(inproc::config(), |b| {
        b.responder(|_: &mut Request, response: &mut Response| -> Result<(), fcgi_server::Error> {
            response.header("Content-Type", "application/octet-stream")?;
            let body = pattern(SIZES.iter().sum::<usize>() * 8, 7);
            let mut at = 0;
            for round in 0..8 {
                for size in SIZES {
                    response.write_all(&body[at..at + size])?;
                    at += size;
                }
                response.write_stderr(format!("round {round}\n").as_bytes())?;
            }
            Ok(())
        })
    });
    let mut client = server.connect();
    client.send_ok(&frames::request(1, Role::Responder, false, &[], b""));
    let reply = client.read_reply(1);
    reply.assert_complete(200);
    let expected = pattern(SIZES.iter().sum::<usize>() * 8, 7);
    assert_eq!(reply.body.len(), expected.len());
    assert_eq!(fnv1a(&reply.body), fnv1a(&expected), "the body differs");
    let stderr = String::from_utf8_lossy(&reply.stderr).into_owned();
    assert_eq!(stderr.lines().count(), 8, "{stderr}");
}
