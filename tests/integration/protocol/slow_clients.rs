//! Slow and idle clients stall no one: a request sent in 20 pieces 200 ms apart is answered
//! while other connections are served (the one test where time is waited out, being its
//! subject), a web server that never reads its answers is cut off after the write timeout, and
//! answers queued behind a writer blocked on a full socket arrive whole.

use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use fcgi_codec::{ProtocolStatus, Role};
use fcgi_server::{Config, Request, Response};
use fcgi_tests::addr::Transport;
use fcgi_tests::inproc::{self, TestServer};
use fcgi_tests::process::wait_until;
use fcgi_tests::raw::{frames, FrameKind};
use fcgi_tests::settings::scaled;

use super::common::{assert_echo, echo, echo_server, HandlerResult, SIGNAL};

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
