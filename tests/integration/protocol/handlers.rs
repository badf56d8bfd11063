//! What a handler's output becomes on the wire: a panic is a 500 before any output and a
//! response cut short after it, and the server goes on; stderr is a terminated FCGI_STDERR
//! stream; STDOUT over 65,535 bytes is split into records; empty output still ends STDOUT, and
//! empty writes send no record. A web server that hangs up mid-response is logged as gone, not
//! as a failure of the handler.

use std::io::{self, Write};
use std::sync::Once;
use std::time::Duration;

use fcgi_codec::Role;
use fcgi_server::{Request, Response};
use fcgi_tests::data::pattern;
use fcgi_tests::inproc::{self, TestServer};
use fcgi_tests::process::wait_until;
use fcgi_tests::raw::frames;

use super::common::HandlerResult;

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
