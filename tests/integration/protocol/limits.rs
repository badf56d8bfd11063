//! The bounds a peer meets, one at a time, against a server in the test process: requests per
//! connection, the size of params (431) and of a body (413), the memory budget, per-request input
//! deadlines, the queue timeout, GET_VALUES of any size, and failures that must not pass for
//! success. Each test would fail on a server without the bound;
//! tests/integration/protocol/abuse.rs runs the same attacks at scale against `fcgi serve`.

use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use fcgi_codec::{ProtocolStatus, Role, StreamKind};
use fcgi_server::{streaming, Config, ParamsLimits, Request, Response};
use fcgi_tests::inproc::{self, TestServer};
use fcgi_tests::raw::{frames, Client, FrameKind};
use fcgi_tests::settings::scaled;

use super::common::{assert_echo, echo, HandlerResult};

/// Begins request `id` and sends part of its params, never their end.
fn open_unfinished(client: &mut Client, id: u16, params: &[(&str, &str)]) {
    client.send_begin(id, Role::Responder, true);
    client.send_ok(&frames::stream(StreamKind::Params, id, &frames::pairs(params)));
}

/// Ends request `id`'s params and body.
fn finish(client: &mut Client, id: u16, params: &[(&str, &str)], body: &[u8]) {
    let mut out = frames::stream(StreamKind::Params, id, &frames::pairs(params));
    out.extend(frames::end(StreamKind::Params, id));
    out.extend(frames::stdin(id, body));
    client.send_ok(&out);
}

#[test]
fn requests_past_the_per_connection_cap_get_503_and_the_connection_lives_on() {
    let config = Config { max_conn_requests: 4, ..inproc::config() };
    let server = TestServer::start(config, |b| b.responder(echo));
    let mut client = server.connect();
    for id in 1..=4 {
        open_unfinished(&mut client, id, &[("SAY", "open")]);
    }
    open_unfinished(&mut client, 5, &[]);
    let refused = client.read_reply(5);
    assert_eq!(refused.end.protocol_status, ProtocolStatus::Overloaded);
    assert_eq!(refused.status, 503);
    assert!(refused.header("Retry-After").is_some());

    // The four open requests go on, and once one is done its place is free.
    finish(&mut client, 1, &[], b"one");
    let reply = client.read_reply(1);
    reply.assert_complete(200);
    assert_eq!(reply.body, b"open:one");
    open_unfinished(&mut client, 5, &[("SAY", "five")]);
    finish(&mut client, 5, &[], b"");
    assert_eq!(client.read_reply(5).body, b"five:");
    assert!(server.logs().contains("too many requests open on one connection"));
}

#[test]
fn params_past_the_memory_budget_get_503_and_the_budget_comes_back() {
    let big = "x".repeat(50_000);
    let config = Config { memory_budget: 80_000, ..inproc::config() };
    let server = TestServer::start(config, |b| b.responder(echo));
    let mut first = server.connect();
    open_unfinished(&mut first, 1, &[("BIG", &big)]);
    // Read (and charged) before the second connection's: two connections are read in no
    // set order.
    first.barrier();
    // Another connection's params do not fit beside the first's: refused, not held.
    let mut second = server.connect();
    open_unfinished(&mut second, 1, &[("BIG", &big)]);
    let refused = second.read_reply(1);
    assert_eq!((refused.status, refused.end.protocol_status), (503, ProtocolStatus::Overloaded));

    finish(&mut first, 1, &[("SAY", "first")], b"");
    assert_eq!(first.read_reply(1).body, b"first:");
    // The first request's params were given back with it.
    let mut third = server.connect();
    open_unfinished(&mut third, 1, &[("BIG", &big)]);
    finish(&mut third, 1, &[("SAY", "third")], b"");
    third.read_reply(1).assert_complete(200);
}

/// Whether this process has a file open under `dir`: how the test sees a spooled body.
fn has_open_file_under(dir: &Path) -> bool {
    std::fs::read_dir("/proc/self/fd")
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .filter_map(|entry| std::fs::read_link(entry.path()).ok())
        .any(|target| target.starts_with(dir))
}

#[test]
fn bodies_past_the_memory_budget_go_to_disk_whole() {
    let spool = tempfile::tempdir().unwrap();
    let config = Config {
        memory_budget: 64 * 1024,
        spool_memory: 1024 * 1024,
        spool_dir: Some(spool.path().to_owned()),
        ..inproc::config()
    };
    let server = TestServer::start(config, |b| b.responder(echo));
    let mut client = server.connect();
    // The in-memory threshold would take it, the budget does not: to disk, nothing lost.
    let body = fcgi_tests::data::pattern(300 * 1024, 7);
    client.send_begin(1, Role::Responder, true);
    client.send_ok(&frames::stream(StreamKind::Stdin, 1, &body));
    let spooled = fcgi_tests::process::wait_until(Duration::from_secs(5), || {
        has_open_file_under(spool.path())
    });
    assert!(spooled, "the body went to a file in --spool-dir");
    finish(&mut client, 1, &[("SAY", "big")], b"");
    let reply = client.read_reply(1);
    reply.assert_complete(200);
    assert_eq!(&reply.body[..4], b"big:");
    assert!(reply.body[4..] == body[..], "the body came back whole");
}

#[test]
fn a_body_that_cannot_be_spooled_is_answered_503_and_never_reaches_the_handler() {
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = {
        let calls = Arc::clone(&calls);
        move |request: &mut Request, response: &mut Response| -> HandlerResult {
            calls.fetch_add(1, Ordering::SeqCst);
            echo(request, response)
        }
    };
    let config = Config {
        spool_memory: 1024,
        spool_dir: Some("/nonexistent/fcgi-rs-spool".into()),
        ..inproc::config()
    };
    let server = TestServer::start(config.clone(), |b| b.responder(counted));
    let mut client = server.connect();
    let reply = client.simple_request(&[], &[7; 100_000]);
    reply.assert_complete(503);
    assert_eq!(calls.load(Ordering::SeqCst), 0, "the handler never saw a truncated body");
    // A handler that reads as the body arrives sees an error, and the answer is still 503.
    let streaming_server =
        TestServer::start(config, |b| b.handler(Role::Responder, streaming(echo)));
    let reply = streaming_server.connect().simple_request(&[], &[7; 100_000]);
    reply.assert_complete(503);
    // Small bodies, in memory, are fine.
    client.simple_request(&[("SAY", "small")], b"ok").assert_complete(200);
}

#[test]
fn a_request_whose_input_stalls_gets_408_though_others_on_its_connection_send() {
    let config =
        Config { read_timeout: Duration::from_secs(1), min_input_rate: 0, ..inproc::config() };
    let server = TestServer::start(config, |b| b.handler(Role::Responder, streaming(echo)));
    let mut client = server.connect();
    open_unfinished(&mut client, 1, &[("SAY", "stalled")]);
    client.send_begin(2, Role::Responder, true);
    client.send_params(2, &[("SAY", "busy")]);
    // Request 2's body keeps the connection busy: a byte every 200 ms for 3 s.
    let started = Instant::now();
    let mut sent = Vec::new();
    let mut stalled = None;
    client.set_timeout(Duration::from_millis(200));
    while started.elapsed() < Duration::from_secs(3) {
        client.send_ok(&frames::stream(StreamKind::Stdin, 2, b"."));
        sent.push(b'.');
        if stalled.is_none() {
            if let Ok(frame) = client.next_frame_for(1) {
                stalled = Some((frame, started.elapsed()));
            }
        }
    }
    client.set_timeout(scaled(Duration::from_secs(10)));
    let (frame, after) = match stalled {
        Some(found) => found,
        None => (client.next_frame_for(1).expect("request 1 answered"), started.elapsed()),
    };
    assert!(matches!(frame.kind, FrameKind::Stdout(ref out) if out.starts_with(b"Status: 408")));
    assert!(after < Duration::from_secs(3), "408 after {after:?}, while request 2 still sent");
    client.send_ok(&frames::end(StreamKind::Stdin, 2));
    let reply = client.read_reply(2);
    reply.assert_complete(200);
    assert_eq!(reply.body, [b"busy:".as_slice(), &sent].concat());
}

#[test]
fn a_steady_trickle_is_ended_by_the_minimum_rate() {
    let config =
        Config { read_timeout: Duration::from_secs(2), min_input_rate: 1000, ..inproc::config() };
    let server = TestServer::start(config, |b| b.responder(echo));
    let mut client = server.connect();
    client.send_begin(1, Role::Responder, true);
    client.send_params(1, &[]);
    client.set_timeout(Duration::from_millis(300));
    let started = Instant::now();
    // Never silent for the read timeout, yet far below 1,000 bytes per second.
    let answered = loop {
        assert!(started.elapsed() < scaled(Duration::from_secs(8)), "the trickle was never ended");
        if client.send(&frames::stream(StreamKind::Stdin, 1, b"..")).is_err() {
            break client.try_read_reply(1);
        }
        match client.try_read_reply(1) {
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => continue,
            other => break other,
        }
    };
    let reply = answered.expect("a response");
    reply.assert_complete(408);
    assert!(started.elapsed() >= Duration::from_secs(2), "not before the read timeout");
}

#[test]
fn a_trickled_body_holds_no_thread() {
    // Three threads, all started: one may be reading the trickler's records and one the
    // request at hand, and a third is still free; eight held bodies would hold all three.
    let config =
        Config { min_spare: 3, max_spare: 3, max_threads: 3, queue: 0, ..inproc::config() };
    let server = TestServer::start(config, |b| b.responder(inproc::hello));
    let mut trickler = server.connect();
    for id in 1..=8 {
        trickler.send_begin(id, Role::Responder, true);
        trickler.send_params(id, &[]);
        trickler.send_ok(&frames::stream(StreamKind::Stdin, id, b"a"));
    }
    // Every body is still arriving; a handler that does not stream has not started, so the
    // threads are free for others (with no queue, a busy pool would answer 503 at once).
    for _ in 0..5 {
        server.connect().simple_request(&[], b"").assert_complete(200);
    }
    // One at a time: with no queue, three threads serve three at once.
    for id in 1..=8 {
        trickler.send_ok(&frames::end(StreamKind::Stdin, id));
        trickler.read_reply(id).assert_complete(200);
    }
}

#[test]
fn a_request_that_waited_past_the_queue_timeout_gets_503_overloaded() {
    let (release_tx, release) = mpsc::channel::<()>();
    let release = Mutex::new(release);
    let calls = Arc::new(AtomicUsize::new(0));
    let handler = {
        let calls = Arc::clone(&calls);
        move |request: &mut Request, response: &mut Response| -> HandlerResult {
            calls.fetch_add(1, Ordering::SeqCst);
            if request.param_str("MODE") == Some("block") {
                let _ = release.lock().unwrap().recv_timeout(Duration::from_secs(20));
            }
            response.write_all(b"done")?;
            Ok(())
        }
    };
    let config = Config {
        min_spare: 1,
        max_spare: 1,
        max_threads: 1,
        queue: 4,
        queue_timeout: Some(Duration::from_secs(1)),
        ..inproc::config()
    };
    let server = TestServer::start(config, |b| b.responder(handler));
    let mut blocker = server.connect();
    blocker.send_ok(&frames::request(1, Role::Responder, true, &[("MODE", "block")], b""));
    assert!(fcgi_tests::process::wait_until(Duration::from_secs(5), || {
        calls.load(Ordering::SeqCst) == 1
    }));
    let started = Instant::now();
    let mut waiting = server.connect();
    let reply = waiting.simple_request(&[], b"");
    let waited = started.elapsed();
    assert_eq!((reply.status, reply.end.protocol_status), (503, ProtocolStatus::Overloaded));
    assert!(reply.header("Retry-After").is_some());
    assert!(
        waited >= Duration::from_secs(1) && waited < scaled(Duration::from_secs(5)),
        "{waited:?}"
    );

    release_tx.send(()).unwrap();
    blocker.read_reply(1).assert_complete(200);
    // The expired request never runs; the thread is free for the next one.
    waiting.simple_request(&[], b"").assert_complete(200);
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert!(server.logs().contains("request waited too long for a thread"));
}

#[test]
fn get_values_with_thousands_of_names_is_answered_with_each_known_name_once() {
    let server = TestServer::start(inproc::config(), |b| b.responder(echo));
    let mut client = server.connect();
    let names: Vec<&str> = (0..3200)
        .map(|i| if i % 2 == 0 { "FCGI_MAX_CONNS" } else { "FCGI_NOT_A_VARIABLE" })
        .chain(["FCGI_MPXS_CONNS"])
        .collect();
    client.send_get_values(&names);
    let FrameKind::GetValuesResult(pairs) = client.expect_frame().kind else {
        panic!("expected GET_VALUES_RESULT");
    };
    let names: Vec<&[u8]> = pairs.iter().map(|(name, _)| name.as_slice()).collect();
    assert_eq!(names, [b"FCGI_MAX_CONNS".as_slice(), b"FCGI_MPXS_CONNS"]);
    client.simple_request(&[], b"").assert_complete(200);
}

#[test]
fn a_handler_that_fails_after_its_header_cuts_the_response_short() {
    let handler = |_: &mut Request, response: &mut Response| -> HandlerResult {
        response.write_all(b"the start of a page")?;
        response.flush()?;
        Err("the database went away".into())
    };
    let server = TestServer::start(inproc::config(), |b| b.responder(handler));
    let mut client = server.connect();
    client.send_ok(&frames::request(1, Role::Responder, true, &[("REQUEST_URI", "/page")], b""));
    let error = client.try_read_reply(1).expect_err("no END_REQUEST for a failed response");
    assert_eq!(error.kind(), std::io::ErrorKind::InvalidData, "{error}");
    assert!(server.logs().lines().iter().any(|line| line.starts_with("ERRO handler failed")
        && line.contains("cut_short=true")
        && line.contains("uri=/page")));
}

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
