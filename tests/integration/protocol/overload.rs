//! Overload: with every thread busy and no queue, a request is answered at once with a 503,
//! `Retry-After` and FCGI_OVERLOADED, and a connection over `max_conns` gets the same and is
//! ended; each is served again once there is room. The queue timeout is in limits.rs, a peer
//! over FCGI_MAX_REQS in multiplexing.rs.

use std::io::Write;
use std::sync::mpsc;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use fcgi_codec::{ProtocolStatus, Role};
use fcgi_server::{Config, Request, Response};
use fcgi_tests::inproc::{self, TestServer};
use fcgi_tests::process::wait_until;
use fcgi_tests::raw::frames;
use fcgi_tests::settings::scaled;

use super::common::{assert_echo, echo, HandlerResult, SIGNAL};

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
