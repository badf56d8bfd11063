//! The status page and the ping under what peers send: the text formats escape each value (a
//! URI with a line feed cannot start a line, or a process entry, of its own); `full` keeps at
//! most [`FACT_MAX_BYTES`] of each request string, so that a scrape stays small whatever the
//! peers send; every answer carries one Content-Type; and an Authorizer request for the status
//! or ping path is the app's to answer, not an "authorized" 200. Servers in the test process,
//! real sockets, raw FastCGI records.

use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use fcgi_server::{Config, Request, Response, Role, FACT_MAX_BYTES};
use fcgi_tests::inproc::{self, TestServer};
use fcgi_tests::process::wait_until;
use fcgi_tests::raw::{frames, Client, Reply};
use serde_json::Value;

/// Handlers that wait until the test lets them go (30 s at most), counting those waiting.
#[derive(Default)]
struct Gate {
    waiting: AtomicUsize,
    open: Mutex<bool>,
    opened: Condvar,
}

impl Gate {
    fn pass(&self) {
        self.waiting.fetch_add(1, Ordering::SeqCst);
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut open = self.open.lock().unwrap();
        while !*open && Instant::now() < deadline {
            open = self.opened.wait_timeout(open, Duration::from_millis(100)).unwrap().0;
        }
    }

    fn open(&self) {
        *self.open.lock().unwrap() = true;
        self.opened.notify_all();
    }
}

/// A server with the status page at `/status` and the ping at `/ping`, up to `threads`
/// threads, whose app holds each request at the gate.
fn gated_server(threads: usize) -> (TestServer, Arc<Gate>) {
    let gate = Arc::new(Gate::default());
    let config = Config {
        status_path: Some("/status".into()),
        ping_path: Some("/ping".into()),
        max_threads: threads,
        ..inproc::config()
    };
    let held = Arc::clone(&gate);
    let server = TestServer::start(config, move |builder| {
        builder.responder(move |_: &mut Request, response: &mut Response| {
            held.pass();
            response.write_all(b"done")?;
            Ok(())
        })
    });
    (server, gate)
}

/// Starts a request with `params` on a connection of its own, without reading its answer.
fn hold(server: &TestServer, params: &[(&str, &str)]) -> Client {
    let mut client = server.connect();
    client.send_ok(&frames::request(1, Role::Responder, true, params, b""));
    client
}

/// Asks `path` with `query` in `role`.
fn ask(server: &TestServer, role: Role, path: &str, query: &str) -> Reply {
    let params = [("SCRIPT_NAME", path), ("REQUEST_URI", path), ("QUERY_STRING", query)];
    let mut client = server.connect();
    client.send_ok(&frames::request(1, role, true, &params, b""));
    client.read_reply(1)
}

/// What a peer sends: the controls that end lines or drive terminals, a backslash, and a
/// line that reads as a process entry of the text format.
const FORGED: &str =
    "/a\n\n************************\npid:                  1\r\x1b[2J\x00\x7f\u{85}\u{2028}\\";

/// The text format's field names (FPM's, and fcgi-rs's own).
fn is_field_name(name: &str) -> bool {
    const NAMES: [&str; 29] = [
        "pool",
        "process manager",
        "start time",
        "start since",
        "accepted conn",
        "listen queue",
        "max listen queue",
        "listen queue len",
        "idle processes",
        "active processes",
        "total processes",
        "max active processes",
        "max children reached",
        "slow requests",
        "pid",
        "state",
        "requests",
        "request duration",
        "request method",
        "request URI",
        "content length",
        "user",
        "script",
        "last request cpu",
        "last request memory",
        "fcgi-rs thread",
        "fcgi-rs responses 1xx",
        "fcgi-rs responses 2xx",
        "fcgi-rs responses 3xx",
    ];
    NAMES.contains(&name) || (name.starts_with("fcgi-rs ") && !name.contains(['\\', '*']))
}

#[test]
fn full_text_escapes_what_a_peer_sent_and_keeps_a_line_per_field() {
    let (server, gate) = gated_server(8);
    let params = [
        ("SCRIPT_NAME", "/app"),
        ("REQUEST_METHOD", FORGED),
        ("REQUEST_URI", FORGED),
        ("REMOTE_USER", FORGED),
        ("SCRIPT_FILENAME", FORGED),
    ];
    let held = hold(&server, &params);
    assert!(wait_until(Duration::from_secs(10), || gate.waiting.load(Ordering::SeqCst) == 1));

    let page = ask(&server, Role::Responder, "/status", "full");
    page.assert_complete(200);
    let text = page.body_text();
    let mut entries = 0;
    for line in text.lines() {
        assert!(!line.chars().any(|c| c.is_control() || c == '\u{2028}'), "{line:?} in\n{text}");
        if line == "************************" {
            entries += 1;
            continue;
        }
        if line.is_empty() {
            continue;
        }
        let (name, _) = line.split_once(": ").unwrap_or_else(|| panic!("{line:?} in\n{text}"));
        assert!(is_field_name(name.trim_end()), "{line:?} is no field of the page:\n{text}");
    }
    let escaped = "/a\\x0A\\x0A************************\\x0Apid:                  1\\x0D\\x1B[2J\
                   \\x00\\x7F\\xC2\\x85\\xE2\\x80\\xA8\\x5C";
    for name in ["request method", "request URI", "user", "script"] {
        let expected = format!("\n{:<21} {escaped}\n", format!("{name}:"));
        assert!(text.contains(&expected), "{expected:?} in\n{text}");
    }
    // One entry per thread that ran a request: this one, and the one answering the page.
    assert!((1..=8).contains(&entries), "{entries} entries:\n{text}");

    let json = ask(&server, Role::Responder, "/status", "json&full");
    json.assert_complete(200);
    let body = json.body_text();
    assert!(!body.chars().any(|c| c.is_control() || c == '\u{2028}'), "{body:?}");
    let parsed: Value = serde_json::from_str(&body).expect("the page is JSON");
    let uris: Vec<&str> = parsed["processes"]
        .as_array()
        .expect("processes")
        .iter()
        .filter_map(|p| p["request uri"].as_str())
        .collect();
    assert!(uris.contains(&FORGED), "the URI read back whole: {uris:?}");
    gate.open();
    drop(held);
}

#[test]
fn full_keeps_a_kilobyte_of_each_request_string_whatever_the_peers_send() {
    // All threads but four hold a request with 30 KB strings (the pages need threads too).
    const THREADS: usize = 64;
    const HELD: usize = THREADS - 4;
    let (server, gate) = gated_server(THREADS);
    let uri = format!("/{}", "u".repeat(30_000));
    let script = format!("/{}", "s".repeat(30_000));
    let user = "r".repeat(4_000);
    let params = [
        ("SCRIPT_NAME", "/app"),
        ("REQUEST_METHOD", "GET"),
        ("REQUEST_URI", uri.as_str()),
        ("SCRIPT_FILENAME", script.as_str()),
        ("REMOTE_USER", user.as_str()),
    ];
    let held: Vec<Client> = (0..HELD).map(|_| hold(&server, &params)).collect();
    let all_held =
        wait_until(Duration::from_secs(20), || gate.waiting.load(Ordering::SeqCst) == HELD);
    assert!(all_held, "{} of {HELD} held", gate.waiting.load(Ordering::SeqCst));

    let text = ask(&server, Role::Responder, "/status", "full");
    text.assert_complete(200);
    let json = ask(&server, Role::Responder, "/status", "json&full");
    json.assert_complete(200);
    eprintln!(
        "{HELD} requests with 30 KB URIs and scripts: ?full is {} bytes, ?json&full {} bytes",
        text.body.len(),
        json.body.len()
    );
    // Each entry: three strings of at most a kilobyte, and its other fields.
    let bound = HELD * (3 * FACT_MAX_BYTES + 1024) + 4096;
    assert!(text.body.len() < bound, "?full: {} bytes, past {bound}", text.body.len());
    assert!(json.body.len() < bound, "?json&full: {} bytes, past {bound}", json.body.len());
    let parsed: Value = serde_json::from_slice(&json.body).expect("JSON");
    let processes = parsed["processes"].as_array().expect("processes");
    let held_entries: Vec<&Value> = processes
        .iter()
        .filter(|p| p["request uri"].as_str().is_some_and(|u| u.starts_with("/u")))
        .collect();
    assert_eq!(held_entries.len(), HELD, "one entry per held request");
    for entry in held_entries {
        assert_eq!(entry["request uri"].as_str(), Some(&uri[..FACT_MAX_BYTES]));
        assert_eq!(entry["script"].as_str(), Some(&script[..FACT_MAX_BYTES]));
        assert_eq!(entry["user"].as_str(), Some(&user[..FACT_MAX_BYTES]));
    }
    gate.open();
    drop(held);
}

#[test]
fn every_answer_carries_one_content_type() {
    let (server, gate) = gated_server(8);
    gate.open();
    let table = [
        ("/status", "", "text/plain"),
        ("/status", "full", "text/plain"),
        ("/status", "json", "application/json"),
        ("/status", "json&full", "application/json"),
        ("/status", "openmetrics", "application/openmetrics-text; version=1.0.0; charset=utf-8"),
        ("/ping", "", "text/plain"),
    ];
    for (path, query, content_type) in table {
        let reply = ask(&server, Role::Responder, path, query);
        reply.assert_complete(200);
        let types: Vec<&str> = reply
            .headers
            .iter()
            .filter(|(name, _)| name.eq_ignore_ascii_case("Content-Type"))
            .map(|(_, value)| value.as_str())
            .collect();
        assert_eq!(types, [content_type], "{path}?{query}: {:?}", reply.headers);
    }
}

/// The check an Authorizer app makes: a token, or 401.
fn check(request: &mut Request, response: &mut Response) -> Result<(), fcgi_server::Error> {
    if request.role() == Role::Authorizer {
        if request.header_str("Authorization") != Some("Bearer let-me-in") {
            response.set_status(401);
        }
        return Ok(());
    }
    response.write_all(b"the app")?;
    Ok(())
}

#[test]
fn an_authorizer_request_for_the_status_or_ping_path_is_the_apps_to_answer() {
    let config = Config {
        status_path: Some("/status".into()),
        ping_path: Some("/ping".into()),
        ..inproc::config()
    };
    let server = TestServer::start(config, |builder| builder.responder_and_authorizer(check));
    for path in ["/status", "/ping"] {
        let reply = ask(&server, Role::Authorizer, path, "");
        reply.assert_complete(401);
        let reply = ask(&server, Role::Responder, path, "");
        reply.assert_complete(200);
        assert_ne!(reply.body_text(), "the app", "{path}: the Responder gets the page");
    }
}
