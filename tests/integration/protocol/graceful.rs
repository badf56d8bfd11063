//! Graceful shutdown over a Unix socket: the server removes its socket file and accepts no more
//! connections, finishes the request in flight, closes the kept connection and returns; and
//! while the end of a response waits for the web server to read it, the draining server does
//! not take the connection for idle. Time is waited out where it is the subject: a 1 s request
//! during the stop, and the second a draining server takes to sweep its connections.

use std::io::Write;
use std::sync::mpsc;
use std::time::Duration;

use fcgi_codec::Role;
use fcgi_server::{Request, Response};
use fcgi_tests::addr::Transport;
use fcgi_tests::inproc::{self, TestServer};
use fcgi_tests::process::wait_until;
use fcgi_tests::raw::{frames, Client};

use super::common::{HandlerResult, SIGNAL};

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
