//! The FastCGI conformance of a libfcgi program behind `fcgi serve --app exec`: the raw-record
//! checks of tests/integration/protocol/ (kept connections, multiplexing, GET_VALUES,
//! ABORT_REQUEST, unknown record types and roles, inactive request ids, padding, a bad version),
//! pointed at an address instead of a server of the test's own, and run against fcgi-rs in front of
//! the C program of `tests/programs/app.c`. A libfcgi program fails parts of them on its own;
//! behind fcgi-rs, every check passes.
//!
//! The second test runs the same checks against that program alone under `spawn-fcgi` and only
//! prints which pass: it is the contrast, and it shows that the checks can fail. Measured on
//! Debian 12 (libfcgi 2.4.2,
//! `cargo test -p fcgi-tests --test integration exec::conformance -- --nocapture`), the program
//! alone fails 6 of the 14:
//! - padding after BEGIN_REQUEST is not skipped: the request loses its params;
//! - it says FCGI_MPXS_CONNS 0 and answers a second request id with CANT_MPX_CONN (the spec
//!   allows a server that does not multiplex; fcgi-rs multiplexes, so behind it the check
//!   requires it);
//! - an unknown management record type, an unknown role, and ABORT_REQUEST while the body
//!   arrives each make it close the connection, with no UNKNOWN_TYPE or END_REQUEST;
//! - ABORT_REQUEST before the params end gets no answer at all (the read times out).
//!
//! On some runs it fails more, by timing: an ABORT_REQUEST that reaches it while it still reads
//! the body of the request it aborts makes it close the connection (about half the runs here);
//! and once in about ten runs, the request after the bad-version connection went unanswered
//! for the 2 s the contrast waits.
//!
//! Each check takes a fresh connection, and panics on failure; the runner gives each a thread of
//! its own, so that a failure is reported by name and the other checks still run.

use std::path::Path;
use std::process::Command;
use std::sync::Once;
use std::time::Duration;

use fcgi_codec::{Header, ProtocolStatus, RecordType, Role, StreamKind};
use fcgi_tests::addr::Addr;
use fcgi_tests::data::pattern;
use fcgi_tests::nginx::scratch;
use fcgi_tests::process::{wait_until, Guarded, START_TIMEOUT};
use fcgi_tests::programs::{compile_libfcgi_program, find_program, Answer, ExecServe, Program};
use fcgi_tests::raw::{frames, Client, Frame, FrameKind, Reply, TIMEOUT};
use fcgi_tests::settings::{scaled, skip};

/// A FastCGI server under test, and how long one read from it may wait.
#[derive(Clone, Debug)]
struct Peer {
    addr: Addr,
    timeout: Duration,
}

impl Peer {
    fn connect(&self) -> Client {
        let client = Client::connect(&self.addr);
        client.set_timeout(self.timeout);
        client
    }
}

/// A check: what a conforming server does, and the code that fails (panics) if it does not.
type Check = (&'static str, fn(&Peer));

const CHECKS: &[Check] = &[
    ("a kept connection serves 50 requests in turn", kept_connection),
    ("without FCGI_KEEP_CONN the connection ends after END_REQUEST", closes_without_keep_conn),
    ("a name-value pair cut between two PARAMS records is read whole", pair_across_records),
    ("records with padding are read past it", padded_records),
    ("GET_VALUES is answered at once, with the three known names", get_values),
    ("GET_VALUES between a request's records is answered at once", get_values_mid_request),
    ("interleaved requests on one connection each get their answer", multiplexing),
    ("unknown management record types get UNKNOWN_TYPE", unknown_types),
    ("an unknown role gets END_REQUEST with UNKNOWN_ROLE", unknown_role),
    ("ABORT_REQUEST before the params end gets END_REQUEST", abort_in_params),
    ("ABORT_REQUEST while the body arrives gets END_REQUEST", abort_in_body),
    ("ABORT_REQUEST of a request being answered gets one END_REQUEST", abort_running),
    ("records for request ids not begun are ignored", inactive_ids),
    ("a record of version 0 ends that connection, and the server goes on", bad_version),
];

/// The params of a Responder request to the program, tagged with `query`.
fn params(query: &str, body: &[u8]) -> Vec<(&'static str, String)> {
    let method = if body.is_empty() { "GET" } else { "POST" };
    vec![
        ("REQUEST_METHOD", method.to_owned()),
        ("QUERY_STRING", query.to_owned()),
        ("CONTENT_LENGTH", body.len().to_string()),
    ]
}

fn borrowed<'a>(pairs: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    pairs.iter().map(|(name, value)| (*name, value.as_str())).collect()
}

/// A whole request, its records as `frames::request` writes them.
fn request(id: u16, keep_conn: bool, query: &str, body: &[u8]) -> Vec<u8> {
    frames::request(id, Role::Responder, keep_conn, &borrowed(&params(query, body)), body)
}

/// Panics unless `reply` is the program's complete answer to a request tagged `query` that
/// sent `body`.
#[track_caller]
fn assert_answer(reply: &Reply, query: &str, body: &[u8]) {
    reply.assert_complete(200);
    let answer = Answer::parse(&reply.body_text());
    assert_eq!(answer.hello, Program::Libfcgi.hello());
    assert_eq!(answer.query, query, "{answer:?}");
    answer.assert_body(body);
}

/// A request on `client` (kept connection, id 1), and its answer checked.
#[track_caller]
fn assert_served(client: &mut Client, query: &str, body: &[u8]) {
    client.send_ok(&request(1, true, query, body));
    let reply = client.read_reply(1);
    assert_answer(&reply, query, body);
}

/// The pairs of a GET_VALUES_RESULT, as text.
#[track_caller]
fn values(frame: Frame) -> Vec<(String, String)> {
    assert_eq!(frame.request_id, 0, "{frame:?}");
    let FrameKind::GetValuesResult(pairs) = frame.kind else {
        panic!("expected GET_VALUES_RESULT, got {frame:?}");
    };
    let text = |bytes: Vec<u8>| String::from_utf8_lossy(&bytes).into_owned();
    pairs.into_iter().map(|(name, value)| (text(name), text(value))).collect()
}

fn kept_connection(peer: &Peer) {
    let mut client = peer.connect();
    for i in 0..50 {
        assert_served(&mut client, &format!("i={i}"), format!("body {i}").as_bytes());
    }
}

fn closes_without_keep_conn(peer: &Peer) {
    let mut client = peer.connect();
    client.send_ok(&request(1, false, "once", b"body"));
    assert_answer(&client.read_reply(1), "once", b"body");
    // Nothing after END_REQUEST, and the end of the stream: not a timeout, not a reset.
    assert_eq!(client.next_frame().unwrap(), None);
}

fn pair_across_records(peer: &Peer) {
    let mut client = peer.connect();
    let pairs = frames::pairs(&borrowed(&params("cut", b"")));
    client.send_begin(1, Role::Responder, true);
    // Inside the first pair's name, then inside the second pair's value.
    for part in [&pairs[..3], &pairs[3..30], &pairs[30..]] {
        client.send_ok(&frames::stream(StreamKind::Params, 1, part));
    }
    client.send_ok(&frames::end(StreamKind::Params, 1));
    client.send_stdin(1, b"");
    assert_answer(&client.read_reply(1), "cut", b"");
}

/// One record with `padding` bytes of padding after its content.
fn padded(record_type: RecordType, id: u16, content: &[u8], padding: u8) -> Vec<u8> {
    let length = u16::try_from(content.len()).expect("a short record");
    let header = Header { padding_length: padding, ..Header::new(record_type, id, length) };
    let mut out = header.encode().to_vec();
    out.extend_from_slice(content);
    out.extend(std::iter::repeat_n(0xAA, usize::from(padding)));
    out
}

fn padded_records(peer: &Peer) {
    let mut client = peer.connect();
    let body = b"a padded body";
    let begin = frames::begin(1, Role::Responder, true);
    let mut wire = padded(RecordType::BeginRequest, 1, &begin[8..], 3);
    wire.extend(padded(RecordType::Params, 1, &frames::pairs(&borrowed(&params("pad", body))), 5));
    wire.extend(padded(RecordType::Params, 1, b"", 7));
    wire.extend(padded(RecordType::Stdin, 1, body, 255));
    wire.extend(padded(RecordType::Stdin, 1, b"", 1));
    client.send_ok(&wire);
    assert_answer(&client.read_reply(1), "pad", body);
    client.barrier();
}

fn get_values(peer: &Peer) {
    let mut client = peer.connect();
    // On a fresh connection, and nothing sent after it: the answer must not wait for more.
    client.send_get_values(&[
        "FCGI_MAX_CONNS",
        "FCGI_NOT_A_VARIABLE",
        "FCGI_MAX_REQS",
        "FCGI_MPXS_CONNS",
    ]);
    let answered = values(client.expect_frame());
    let names: Vec<&str> = answered.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(names, ["FCGI_MAX_CONNS", "FCGI_MAX_REQS", "FCGI_MPXS_CONNS"], "{answered:?}");
    for (name, value) in &answered {
        assert!(
            value.parse::<u32>().is_ok_and(|n| n > 0 || name == "FCGI_MPXS_CONNS"),
            "{name}={value}"
        );
    }
    // Asking for nothing known gets an empty answer, not silence.
    client.send_get_values(&["FCGI_NOT_A_VARIABLE"]);
    assert_eq!(values(client.expect_frame()), Vec::new());
    assert_served(&mut client, "after", b"");
}

fn get_values_mid_request(peer: &Peer) {
    let mut client = peer.connect();
    let pairs = frames::pairs(&borrowed(&params("straddling", b"half and half")));
    client.send_begin(1, Role::Responder, true);
    client.send_ok(&frames::stream(StreamKind::Params, 1, &pairs[..6]));
    // Mid-request, mid-pair: answered now, before the request is complete.
    client.barrier();
    client.send_ok(&frames::stream(StreamKind::Params, 1, &pairs[6..]));
    client.send_ok(&frames::end(StreamKind::Params, 1));
    client.send_ok(&frames::stream(StreamKind::Stdin, 1, b"half"));
    client.barrier();
    client.send_stdin(1, b" and half");
    assert_answer(&client.read_reply(1), "straddling", b"half and half");
}

fn multiplexing(peer: &Peer) {
    let mut client = peer.connect();
    client.send_get_values(&["FCGI_MPXS_CONNS"]);
    let said = values(client.expect_frame());
    assert_eq!(said, [("FCGI_MPXS_CONNS".to_owned(), "1".to_owned())], "it says it multiplexes");
    // Any u16 id, the largest too; one body over 64 KiB, so that its STDIN takes records.
    let ids: [u16; 8] = [1, 2, 7, 255, 256, 4096, 65534, 65535];
    let body_of = |id: u16| {
        pattern(if id == 4096 { 150_000 } else { 100 + usize::from(id % 1000) }, id.into())
    };
    let streams: Vec<Vec<Vec<u8>>> = ids
        .iter()
        .map(|&id| {
            let body = body_of(id);
            let pairs = frames::pairs(&borrowed(&params(&format!("id={id}"), &body)));
            let mut records = vec![
                frames::begin(id, Role::Responder, true),
                frames::stream(StreamKind::Params, id, &pairs[..3]),
                frames::stream(StreamKind::Params, id, &pairs[3..]),
                frames::end(StreamKind::Params, id),
            ];
            records.extend(body.chunks(40_000).map(|c| frames::stream(StreamKind::Stdin, id, c)));
            records.push(frames::end(StreamKind::Stdin, id));
            records
        })
        .collect();
    // The records of all eight sent round-robin.
    client.send_ok(&frames::round_robin(streams));
    // Read in an order unrelated to the order sent: each answer is its own request's.
    for &id in ids.iter().rev() {
        assert_answer(&client.read_reply(id), &format!("id={id}"), &body_of(id));
    }
    assert_served(&mut client, "after", b"");
}

fn unknown_types(peer: &Peer) {
    let mut client = peer.connect();
    client.check_unknown_management_types();
    assert_served(&mut client, "still served", b"");
}

fn unknown_role(peer: &Peer) {
    let mut client = peer.connect();
    // Role 9 is no role at all; the web server may send the rest before it sees the refusal.
    client.send_ok(&frames::begin_role(1, 9, true));
    client.send_params(1, &[("REQUEST_METHOD", "GET")]);
    client.send_stdin(1, b"ignored");
    let reply = client.read_reply(1);
    assert_eq!(reply.end.protocol_status, ProtocolStatus::UnknownRole, "{reply:?}");
    client.barrier();
    assert_served(&mut client, "responder", b"");
}

fn abort_in_params(peer: &Peer) {
    let mut client = peer.connect();
    client.send_begin(1, Role::Responder, true);
    client.send_ok(&frames::stream(
        StreamKind::Params,
        1,
        &frames::pairs(&[("QUERY_STRING", "never")]),
    ));
    client.send_abort(1);
    let reply = client.read_reply(1);
    assert_eq!(reply.end.protocol_status, ProtocolStatus::RequestComplete, "{reply:?}");
    // The rest of the aborted request comes late: it belongs to no request and is ignored.
    client.send_ok(&frames::end(StreamKind::Params, 1));
    client.send_stdin(1, b"late");
    client.barrier();
    assert_served(&mut client, "next", b"");
}

fn abort_in_body(peer: &Peer) {
    let mut client = peer.connect();
    let body = b"the first part of a body, and more to come";
    client.send_begin(1, Role::Responder, true);
    client.send_params(1, &borrowed(&params("cut short", body)));
    client.send_ok(&frames::stream(StreamKind::Stdin, 1, &body[..20]));
    client.send_abort(1);
    let reply = client.read_reply(1);
    assert_eq!(reply.end.protocol_status, ProtocolStatus::RequestComplete, "{reply:?}");
    client.barrier();
    assert_served(&mut client, "next", b"");
}

fn abort_running(peer: &Peer) {
    let mut client = peer.connect();
    // A whole request that keeps the program busy, aborted while it runs.
    client.send_ok(&request(1, true, "sleep_ms=500", b""));
    client.send_abort(1);
    // Exactly one END_REQUEST (read_reply stops at the first; the barrier finds no second),
    // with well-formed streams before it.
    let reply = client.read_reply(1);
    assert!(reply.stdout.is_empty() || reply.stdout_ended, "{reply:?}");
    client.barrier();
    assert_served(&mut client, "next", b"");
}

fn inactive_ids(peer: &Peer) {
    let mut client = peer.connect();
    client.send_ok(&frames::for_no_request(77));
    // Nothing was answered for any of it, and request 77, begun for real now, starts clean.
    client.barrier();
    client.send_ok(&request(77, true, "real", b"real"));
    assert_answer(&client.read_reply(77), "real", b"real");
}

fn bad_version(peer: &Peer) {
    let mut bad = peer.connect();
    let mut record = frames::request(1, Role::Responder, true, &[], b"");
    record[0] = 0;
    bad.send_ok(&record);
    let frames = bad.read_until_closed().expect("the connection ends");
    assert!(frames.is_empty(), "answered a record of version 0: {frames:?}");
    assert_served(&mut peer.connect(), "after the bad one", b"");
}

/// Checks run on a thread named this way panic on purpose when they fail: the runner reports
/// them, so the panic hook stays quiet about them.
const CHECK_THREAD: &str = "check: ";

fn quiet_check_panics() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        fcgi_tests::panics::quiet(|_| {
            std::thread::current().name().is_some_and(|n| n.starts_with(CHECK_THREAD))
        });
    });
}

/// Runs every check against `peer`, one after another: each one's name, and its failure.
fn run_checks(peer: &Peer) -> Vec<(&'static str, Option<String>)> {
    quiet_check_panics();
    CHECKS
        .iter()
        .map(|&(name, check)| {
            let peer = peer.clone();
            let thread = std::thread::Builder::new().name(format!("{CHECK_THREAD}{name}"));
            let outcome = thread.spawn(move || check(&peer)).expect("a check thread").join();
            let failure = outcome.err().map(|payload| {
                let text = payload.downcast_ref::<String>().cloned();
                text.or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                    .unwrap_or_else(|| "a panic without a message".to_owned())
            });
            (name, failure)
        })
        .collect()
}

/// The outcome of each check, a line each.
fn table(outcomes: &[(&'static str, Option<String>)]) -> String {
    let line = |(name, failure): &(&str, Option<String>)| match failure {
        None => format!("  pass  {name}\n"),
        Some(why) => format!("  FAIL  {name}: {}\n", why.lines().next().unwrap_or_default()),
    };
    outcomes.iter().map(line).collect()
}

#[test]
fn a_libfcgi_program_behind_fcgi_rs_passes_every_check() {
    let dir = scratch();
    let launch = match Program::Libfcgi.prepare(dir.path()) {
        Ok(launch) => launch,
        Err(why) => return skip(&why),
    };
    let exec = ExecServe::start(dir.path(), "exec", &launch, 2, &[], &[]);
    let peer = Peer { addr: exec.addr().clone(), timeout: scaled(TIMEOUT) };
    let outcomes = run_checks(&peer);
    eprintln!("behind fcgi serve --app exec:\n{}", table(&outcomes));
    let failed: Vec<_> = outcomes.iter().filter(|(_, failure)| failure.is_some()).collect();
    assert!(failed.is_empty(), "{failed:#?}\nfcgi serve's log:\n{}", exec.serve.log());
}

/// `spawn-fcgi -n -s SOCKET -- PROGRAM`: spawn-fcgi binds the socket and becomes the program
/// (one process, this test's child), as a web server's FastCGI setup starts it.
fn spawn_fcgi(dir: &Path, program: &Path) -> Option<(Guarded, Addr)> {
    let Some(spawn_fcgi) = find_program("spawn-fcgi") else {
        skip("spawn-fcgi is missing: run tests/deps.sh (Debian package spawn-fcgi)");
        return None;
    };
    let socket = dir.join("alone.sock");
    let mut command = Command::new(spawn_fcgi);
    command.arg("-n").arg("-s").arg(&socket).arg("--").arg(program);
    let mut process = Guarded::spawn("spawn-fcgi", command, &dir.join("spawn-fcgi.log"));
    let addr = Addr::Unix(socket);
    let up = wait_until(START_TIMEOUT, || !process.is_running() || addr.accepts());
    assert!(up && process.is_running(), "spawn-fcgi did not start the program");
    Some((process, addr))
}

/// The contrast: the same checks against the same program with no fcgi-rs in front, printed
/// and never failed (what a program alone does is not fcgi-rs's to fix).
#[test]
fn the_checks_against_the_libfcgi_program_alone_only_print() {
    let dir = scratch();
    let program = match compile_libfcgi_program(dir.path()) {
        Ok(program) => program,
        Err(why) => return skip(&why),
    };
    let Some((_process, addr)) = spawn_fcgi(dir.path(), &program) else { return };
    // A check it fails may wait out a read: a short one keeps the contrast quick.
    let outcomes = run_checks(&Peer { addr, timeout: scaled(Duration::from_secs(2)) });
    let failed = outcomes.iter().filter(|(_, failure)| failure.is_some()).count();
    eprintln!(
        "the libfcgi program alone, under spawn-fcgi: {failed} of {} checks fail\n{}",
        outcomes.len(),
        table(&outcomes)
    );
}
