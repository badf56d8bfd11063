//! FCGI_ABORT_REQUEST stops a running response: after the abort no more STDOUT goes out (past
//! what was already on its way), the handler's writes fail, an `http` service's future and
//! response body are dropped, and FCGI_END_REQUEST says the request did not complete
//! (FCGI_REQUEST_COMPLETE, `appStatus` 1). The connection serves on.
//!
//! Each test of a response streams a long one (10 s if nothing stopped it) from a server in
//! this process to a raw client (`support/raw.rs`), aborts it once some of it has arrived, and
//! bounds how long the response goes on after that. The last three abort a request before it
//! answers: a running handler sees the abort, its read of a body still arriving fails, and a
//! request aborted before its params end runs no handler; each still gets its END_REQUEST.

use std::io::{self, Read, Write};

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::routing::get;
use axum::Router;
use fcgi_codec::{EndRequest, ProtocolStatus, Role, StreamKind};
use fcgi_server::{streaming, Config, Request, Response};
use fcgi_tests::inproc::{self, TestServer};
use fcgi_tests::process::wait_until;
use fcgi_tests::raw::{frames, Client, FrameKind};

use super::common::{assert_echo, barrier, echo, HandlerResult};

/// How long a response may go on after its abort was sent: the abort is read at once, and a
/// streaming handler notices it at its next write (every 20 ms here).
const STOPS_WITHIN: Duration = Duration::from_secs(1);
/// How long a test waits for something it caused.
const SIGNAL: Duration = Duration::from_secs(10);
/// How long each stream would run if nothing stopped it.
const STREAM_FOR: Duration = Duration::from_secs(10);
/// The pause between two pieces of a stream.
const PACE: Duration = Duration::from_millis(20);

/// END_REQUEST's appStatus for a request that did not complete.
const ABORTED: u32 = 1;

/// Sets its flag when dropped: what tells the test that a future or a body was dropped.
struct Dropped(Arc<AtomicBool>);

impl Drop for Dropped {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// What came of a response after its abort.
#[derive(Debug)]
struct AfterAbort {
    /// STDOUT bytes that arrived after the abort was sent.
    late_stdout: usize,
    /// When the last of them came, after the abort.
    last_stdout: Option<Duration>,
    /// When END_REQUEST came, after the abort.
    ended_after: Duration,
    /// Whether STDOUT was ended (its empty record) before END_REQUEST.
    stdout_ended: bool,
    end: EndRequest,
}

/// Sends a request for a stream on `client`, waits for `pieces` STDOUT records of it, aborts
/// it, and reads what follows up to its END_REQUEST.
fn stream_then_abort(client: &mut Client, params: &[(&str, &str)], pieces: usize) -> AfterAbort {
    client.send_ok(&frames::request(1, Role::Responder, true, params, b""));
    let mut seen = 0;
    while seen < pieces {
        match client.expect_frame().kind {
            FrameKind::Stdout(bytes) if !bytes.is_empty() => seen += 1,
            FrameKind::EndRequest(end) => panic!("the stream ended before the abort: {end:?}"),
            _ => {}
        }
    }
    client.send_abort(1);
    let aborted = Instant::now();
    let (mut late_stdout, mut last_stdout, mut stdout_ended) = (0, None, false);
    loop {
        let frame = client.expect_frame();
        assert_eq!(frame.request_id, 1, "{frame:?}");
        match frame.kind {
            FrameKind::Stdout(bytes) if bytes.is_empty() => stdout_ended = true,
            FrameKind::Stdout(bytes) => {
                late_stdout += bytes.len();
                last_stdout = Some(aborted.elapsed());
                assert!(
                    aborted.elapsed() < STOPS_WITHIN * 3,
                    "STDOUT goes on {:?} after the abort",
                    aborted.elapsed()
                );
            }
            FrameKind::Stderr(_) => {}
            FrameKind::EndRequest(end) => {
                return AfterAbort {
                    late_stdout,
                    last_stdout,
                    ended_after: aborted.elapsed(),
                    stdout_ended,
                    end,
                }
            }
            other => panic!("unexpected record {other:?}"),
        }
    }
}

#[track_caller]
fn assert_stopped(after: &AfterAbort) {
    assert!(
        after.ended_after < STOPS_WITHIN,
        "ended {:?} after the abort: {after:?}",
        after.ended_after
    );
    assert!(after.last_stdout.is_none_or(|t| t < STOPS_WITHIN), "{after:?}");
    // What was on its way when the abort came: a few pieces, not the rest of the stream.
    assert!(after.late_stdout < 4096, "{} bytes after the abort: {after:?}", after.late_stdout);
    assert!(after.stdout_ended, "STDOUT was not ended: {after:?}");
    assert_eq!(after.end, EndRequest::complete(ABORTED), "{after:?}");
}

/// The connection serves the next request as ever.
#[track_caller]
fn assert_serves_on(client: &mut Client, params: &[(&str, &str)]) {
    let reply = client.simple_request(params, b"");
    reply.assert_complete(200);
    assert_eq!(reply.end.app_status, 0);
}

#[test]
fn an_abort_stops_a_streaming_handler_at_its_next_write() {
    let (failed_tx, failed) = mpsc::channel::<io::ErrorKind>();
    let handler = move |request: &mut Request, response: &mut Response| {
        if request.param_str("MODE") != Some("stream") {
            return inproc::hello(request, response);
        }
        let started = Instant::now();
        while started.elapsed() < STREAM_FOR {
            let wrote = response
                .write_all(format!("tick at {:?}\n", started.elapsed()).as_bytes())
                .and_then(|()| response.flush());
            if let Err(e) = wrote {
                failed_tx.send(e.kind()).expect("the test waits");
                return Err(e.into());
            }
            std::thread::sleep(PACE);
        }
        Ok(())
    };
    let config = Config { access_log: true, ..inproc::config() };
    let server = TestServer::start(config, |b| b.responder(handler));
    let mut client = server.connect();
    let after = stream_then_abort(&mut client, &[("MODE", "stream")], 5);
    assert_stopped(&after);
    let kind = failed.recv_timeout(SIGNAL).expect("the handler's write failed");
    assert_eq!(kind, io::ErrorKind::ConnectionAborted);
    eprintln!("after the abort: {after:?}");

    assert_serves_on(&mut client, &[]);
    // The access log says how it ended, and nothing was logged as a failure.
    let logged = wait_until(SIGNAL, || server.logs().contains("outcome=aborted"));
    assert!(logged, "{:?}", server.logs().lines());
    assert!(
        !server.logs().lines().iter().any(|l| l.starts_with("ERRO")),
        "{:?}",
        server.logs().lines()
    );
    let report = server.stop(Duration::from_secs(5));
    assert_eq!(report.unfinished, 0);
}

#[test]
fn an_abort_before_the_handler_runs_ends_the_request_as_not_completed() {
    let server = TestServer::start(inproc::config(), |b| b.responder(inproc::hello));
    let mut client = server.connect();
    client.send_begin(1, Role::Responder, true);
    client.send_ok(&frames::stream(StreamKind::Params, 1, &frames::pairs(&[("A", "b")])));
    client.send_abort(1);
    let reply = client.read_reply(1);
    assert_eq!(reply.end, EndRequest::complete(ABORTED), "{reply:?}");
    assert!(reply.stdout.is_empty(), "{reply:?}");
    assert_eq!(reply.end.protocol_status, ProtocolStatus::RequestComplete);
    assert_serves_on(&mut client, &[]);
}

/// An axum app: `/sleep` answers after 10 s, `/stream` streams for 10 s; each flips its flag
/// when its future (`/sleep`) or its body (`/stream`) is dropped, and sets `started` when it
/// begins.
fn app(started: Arc<AtomicBool>, dropped: Arc<AtomicBool>) -> Router {
    let (started_sleep, dropped_sleep) = (Arc::clone(&started), Arc::clone(&dropped));
    let sleep = move || {
        let (started, dropped) = (Arc::clone(&started_sleep), Arc::clone(&dropped_sleep));
        async move {
            let _guard = Dropped(dropped);
            started.store(true, Ordering::SeqCst);
            tokio::time::sleep(STREAM_FOR).await;
            "too late"
        }
    };
    let stream = move || {
        let (started, dropped) = (Arc::clone(&started), Arc::clone(&dropped));
        async move {
            started.store(true, Ordering::SeqCst);
            let guard = Dropped(dropped);
            let begun = Instant::now();
            let lines = futures_util::stream::unfold((guard, 0u32), move |(guard, i)| async move {
                if begun.elapsed() >= STREAM_FOR {
                    return None;
                }
                if i > 0 {
                    tokio::time::sleep(PACE).await;
                }
                let line = Bytes::from(format!("line {i}\n"));
                Some((Ok::<_, io::Error>(line), (guard, i + 1)))
            });
            ([("X-Accel-Buffering", "no")], Body::from_stream(lines))
        }
    };
    Router::new()
        .route("/sleep", get(sleep))
        .route("/stream", get(stream))
        .route("/hello", get(|| async { "hello" }))
}

fn http_server(started: &Arc<AtomicBool>, dropped: &Arc<AtomicBool>) -> TestServer {
    let service = fcgi_http::Service::new(app(Arc::clone(started), Arc::clone(dropped)));
    TestServer::start(inproc::config(), |b| b.handler(Role::Responder, service))
}

#[test]
fn an_abort_drops_the_response_body_of_an_http_service() {
    let (started, dropped) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicBool::new(false)));
    let server = http_server(&started, &dropped);
    let mut client = server.connect();
    let after =
        stream_then_abort(&mut client, &[("REQUEST_METHOD", "GET"), ("REQUEST_URI", "/stream")], 5);
    assert!(started.load(Ordering::SeqCst));
    assert_stopped(&after);
    assert!(dropped.load(Ordering::SeqCst), "the body was not dropped by the END_REQUEST");
    assert_serves_on(&mut client, &[("REQUEST_METHOD", "GET"), ("REQUEST_URI", "/hello")]);
}

#[test]
fn an_abort_drops_the_future_of_an_http_service_that_waits() {
    let (started, dropped) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicBool::new(false)));
    let server = http_server(&started, &dropped);
    let mut client = server.connect();
    let params = [("REQUEST_METHOD", "GET"), ("REQUEST_URI", "/sleep")];
    client.send_ok(&frames::request(1, Role::Responder, true, &params, b""));
    assert!(wait_until(SIGNAL, || started.load(Ordering::SeqCst)), "the service never started");
    client.send_abort(1);
    let aborted = Instant::now();
    let gone = wait_until(SIGNAL, || dropped.load(Ordering::SeqCst));
    let took = aborted.elapsed();
    assert!(gone && took < STOPS_WITHIN, "the future was dropped after {took:?} (dropped: {gone})");
    let reply = client.read_reply(1);
    let took = aborted.elapsed();
    assert!(took < STOPS_WITHIN, "END_REQUEST {took:?} after the abort");
    assert_eq!(reply.end, EndRequest::complete(ABORTED), "{reply:?}");
    assert!(reply.body.is_empty() && !reply.body_text().contains("too late"), "{reply:?}");
    assert_serves_on(&mut client, &[("REQUEST_METHOD", "GET"), ("REQUEST_URI", "/hello")]);
}

#[test]
fn a_connection_closed_mid_response_drops_the_future_of_an_http_service() {
    // The web server went away (nginx closes its connection when its client does): no
    // abort record, and the future is dropped all the same.
    let (started, dropped) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicBool::new(false)));
    let server = http_server(&started, &dropped);
    let mut client = server.connect();
    let params = [("REQUEST_METHOD", "GET"), ("REQUEST_URI", "/sleep")];
    client.send_ok(&frames::request(1, Role::Responder, false, &params, b""));
    assert!(wait_until(SIGNAL, || started.load(Ordering::SeqCst)), "the service never started");
    drop(client);
    let closed = Instant::now();
    let gone = wait_until(SIGNAL, || dropped.load(Ordering::SeqCst));
    let took = closed.elapsed();
    assert!(gone && took < STOPS_WITHIN, "the future was dropped after {took:?} (dropped: {gone})");
    let mut other = server.connect();
    assert_serves_on(&mut other, &[("REQUEST_METHOD", "GET"), ("REQUEST_URI", "/hello")]);
}

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
