//! Multiplexing: requests of any id whose records are interleaved on one connection each get
//! their own response. A multiplexing web server that sends more requests than
//! `FCGI_MAX_REQS` at once: the ones over the limit are refused (`503`, `FCGI_OVERLOADED`), and
//! a peer that reads its answers keeps its connection however many it pipelines, while one that
//! reads none of them is cut off after the write timeout.
//!
//! The client is `support/raw.rs`; in the pipelined tests its socket is shared by two threads:
//! one writes the requests as fast as the server takes them, the other reads the answers as they
//! come. Every wait is bounded (read timeouts, [`wait_until`], a deadline on each loop).

use std::collections::HashMap;
use std::io::Write;
use std::time::{Duration, Instant};

use fcgi_codec::{ProtocolStatus, Role, StreamKind};
use fcgi_server::Config;
use fcgi_tests::addr::Transport;
use fcgi_tests::data::pattern;
use fcgi_tests::inproc::{self, TestServer};
use fcgi_tests::process::wait_until;
use fcgi_tests::raw::{frames, Client, FrameKind};

use super::common::{assert_echo, echo_server};

/// Requests pipelined on one connection.
const PIPELINED: u16 = 2_000;
/// `FCGI_MAX_REQS` of the server under test: far below what the peer sends.
const MAX_REQS: usize = 4;
/// How long a whole pipelined run may take, on a loaded machine.
const RUN_DEADLINE: Duration = Duration::from_secs(60);
/// A slow reader's pause after each record: far slower than the server answers, far faster
/// than the write timeout.
const SLOW_PACE: Duration = Duration::from_millis(2);

fn config() -> Config {
    Config { max_conn_requests: MAX_REQS, ..inproc::config() }
}

/// Requests `first..=last`, each a whole Responder request on a kept connection.
fn pipelined(first: u16, last: u16) -> Vec<u8> {
    let mut out = Vec::new();
    for id in first..=last {
        out.extend(frames::request(id, Role::Responder, true, &[("SCRIPT_NAME", "/hello")], b""));
    }
    out
}

/// How the requests of one run were answered.
#[derive(Debug, Default)]
struct Tally {
    /// Answered by the handler.
    served: usize,
    /// Refused with `FCGI_OVERLOADED`.
    refused: usize,
    /// The END_REQUESTs of each id: one each, or the test fails.
    ends: HashMap<u16, usize>,
}

/// Reads records until every one of `ids` has its END_REQUEST (or the deadline passes, or the
/// connection ends); the first `slow_for` records with a pause of [`SLOW_PACE`] after each.
fn read_answers(
    client: &mut Client,
    ids: u16,
    deadline: Instant,
    slow_for: usize,
) -> Result<Tally, String> {
    let mut tally = Tally::default();
    let mut statuses: HashMap<u16, Vec<u8>> = HashMap::new();
    for read in 0.. {
        if tally.ends.len() == usize::from(ids) {
            break;
        }
        if read < slow_for {
            std::thread::sleep(SLOW_PACE);
        }
        if Instant::now() > deadline {
            return Err(format!("{} of {ids} answered before the deadline", tally.ends.len()));
        }
        let frame = match client.next_frame() {
            Ok(Some(frame)) => frame,
            Ok(None) => {
                return Err(format!("the connection ended after {} answers", tally.ends.len()))
            }
            Err(e) => return Err(format!("after {} answers: {e}", tally.ends.len())),
        };
        match frame.kind {
            FrameKind::Stdout(bytes) => {
                statuses.entry(frame.request_id).or_default().extend_from_slice(&bytes)
            }
            FrameKind::EndRequest(end) => {
                *tally.ends.entry(frame.request_id).or_default() += 1;
                let stdout = statuses.remove(&frame.request_id).unwrap_or_default();
                match end.protocol_status {
                    ProtocolStatus::RequestComplete => {
                        assert!(
                            stdout.ends_with(b"Hello, world!"),
                            "request {}: {:?}",
                            frame.request_id,
                            String::from_utf8_lossy(&stdout)
                        );
                        tally.served += 1;
                    }
                    ProtocolStatus::Overloaded => {
                        assert!(stdout.starts_with(b"Status: 503"), "request {}", frame.request_id);
                        tally.refused += 1;
                    }
                    other => panic!("request {}: {other:?}", frame.request_id),
                }
            }
            FrameKind::Stderr(_) => {}
            other => panic!("unexpected record {other:?}"),
        }
    }
    Ok(tally)
}

fn overshooting_peer_keeps_its_connection(transport: Transport) {
    let server = TestServer::start_on(transport, config(), |b| b.responder(inproc::hello));
    let mut client = server.connect();
    let mut writer = client.stream().try_clone().expect("a second handle on the socket");
    let requests = pipelined(1, PIPELINED);
    let started = Instant::now();
    let sender = std::thread::spawn(move || writer.write_all(&requests));

    // Another web server's connection, served beside it all along.
    let mut good = server.connect();
    let good_client = std::thread::spawn(move || {
        let (mut served, mut slowest) = (0u32, Duration::ZERO);
        let until = Instant::now() + Duration::from_secs(2);
        while Instant::now() < until {
            let asked = Instant::now();
            good.simple_request(&[], b"").assert_complete(200);
            slowest = slowest.max(asked.elapsed());
            served += 1;
        }
        (served, slowest)
    });

    let tally = read_answers(&mut client, PIPELINED, started + RUN_DEADLINE, 0);
    let took = started.elapsed();
    let sent = sender.join().expect("the writing thread");
    let tally = tally.unwrap_or_else(|e| panic!("{e} (sending: {sent:?})"));
    sent.expect("every request was taken");
    assert!(tally.ends.values().all(|&n| n == 1), "an END_REQUEST twice: {tally:?}");
    assert_eq!(tally.served + tally.refused, usize::from(PIPELINED));
    assert!(tally.refused > 0, "the peer never went over FCGI_MAX_REQS: {tally:?}");
    eprintln!(
        "{transport:?}: {PIPELINED} pipelined requests answered in {took:?}: {} served, {} \
         refused",
        tally.served, tally.refused
    );

    // The connection is still there, and serves the next request.
    let reply = client.simple_request(&[], b"");
    reply.assert_complete(200);

    let (served, slowest) = good_client.join().expect("the other client");
    eprintln!(
        "{transport:?}: the other connection meanwhile: {served} requests, slowest {slowest:?}"
    );
    assert!(slowest < Duration::from_secs(1), "a request of the other connection took {slowest:?}");
}

#[test]
fn a_peer_over_max_reqs_that_reads_its_answers_gets_every_one_on_unix() {
    overshooting_peer_keeps_its_connection(Transport::Unix);
}

#[test]
fn a_peer_over_max_reqs_that_reads_its_answers_gets_every_one_on_tcp() {
    overshooting_peer_keeps_its_connection(Transport::Tcp);
}

#[test]
fn a_peer_over_max_reqs_that_reads_slowly_gets_every_answer() {
    let server = TestServer::start_on(Transport::Unix, config(), |b| b.responder(inproc::hello));
    let mut client = server.connect();
    let mut writer = client.stream().try_clone().expect("a second handle on the socket");
    let sender = std::thread::spawn(move || writer.write_all(&pipelined(1, PIPELINED)));
    // 1,000 records read slowly (2 s and more in all), the rest at full speed.
    let tally = read_answers(&mut client, PIPELINED, Instant::now() + RUN_DEADLINE, 1_000);
    let sent = sender.join().expect("the writing thread");
    let tally = tally.unwrap_or_else(|e| panic!("{e} (sending: {sent:?})"));
    sent.expect("every request was taken");
    assert_eq!(tally.served + tally.refused, usize::from(PIPELINED));
    client.simple_request(&[], b"").assert_complete(200);
}

#[test]
fn a_peer_over_max_reqs_that_never_reads_is_closed_after_the_write_timeout() {
    let write_timeout = Duration::from_secs(1);
    let config = Config { write_timeout, ..config() };
    let server = TestServer::start_on(Transport::Unix, config, |b| b.responder(inproc::hello));
    let mut client = server.connect();
    // Far more than the socket buffers and the server's bound on queued answers hold, and
    // never a byte read.
    let flood = pipelined(1, u16::MAX);
    let started = Instant::now();
    let sent = client.send(&flood);
    if let Err(e) = &sent {
        assert!(fcgi_tests::raw::is_closed(e), "the flood failed otherwise: {e}");
    }
    let closed = client.read_until_closed();
    assert!(closed.is_ok(), "the connection was not closed: {:?}", closed.map(|f| f.len()));
    let took = started.elapsed();
    assert!(took >= write_timeout, "closed after {took:?}, before the write timeout");
    let warned = wait_until(Duration::from_secs(5), || {
        server
            .logs()
            .lines()
            .iter()
            .any(|line| line.starts_with("WARN") && line.contains("limit=write_timeout"))
    });
    assert!(warned, "no warning: {:?}", server.logs().lines());

    // Others are served as ever.
    server.connect().simple_request(&[], b"").assert_complete(200);
}

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
    let streams: Vec<Vec<Vec<u8>>> = ids
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
            records
        })
        .collect();
    client.send_ok(&frames::round_robin(streams));

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
