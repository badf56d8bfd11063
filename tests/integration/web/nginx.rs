//! End-to-end tests through a real nginx, started from the configurations in `nginx/` (so that
//! the files users copy cannot rot), in front of the real `fcgi serve` binary or, where a test
//! needs a handler of its own, an in-process `fcgi_server::Server`.
//!
//! Each test has its own temporary directory and loopback ports, so they run in parallel.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use fcgi_server::{Config, Request, Response};
use fcgi_tests::addr::Transport;
use fcgi_tests::data::{assert_same_bytes, pattern};
use fcgi_tests::http::{self, HttpStream};
use fcgi_tests::inproc::TestServer;
use fcgi_tests::nginx::{scratch, Nginx, Site};
use fcgi_tests::process::{wait_until, FcgiServe};

const MIB: usize = 1024 * 1024;

/// Lines of an `fcgi serve --log-level debug --log-format json` log that record an accepted
/// connection: the one event with the field `over_limit`.
fn accepted_connections(log: &str) -> usize {
    log.lines().filter(|line| line.starts_with('{') && line.contains("\"over_limit\":")).count()
}

/// Starts `fcgi serve --app hello` on `transport` and nginx with `site` in front of it, sends
/// `requests` sequential GETs, checks every answer, and returns how many connections fcgi-rs
/// accepted (the harness's own readiness probe is one of them), counted in its log once it
/// has stopped (its log is written by a thread of its own, flushed on exit).
fn hello_through(site: Site, transport: Transport, requests: usize) -> usize {
    let dir = scratch();
    let args = ["--log-level", "debug", "--log-format", "json"];
    let mut fcgi = FcgiServe::start(dir.path(), "fcgi", "hello", transport, &args);
    let nginx = Nginx::start(dir.path(), site, &fcgi.addr().site_vars());
    for i in 0..requests {
        let response = nginx.get(&format!("/hello?n={i}")).expect("GET through nginx");
        assert_eq!(response.status, 200, "request {i}: {}", response.body_text());
        assert_eq!(response.body, b"Hello, world!", "request {i}");
        assert_eq!(response.header("Content-Type"), Some("text/plain"), "request {i}");
    }
    drop(nginx);
    assert!(fcgi.stop(Duration::from_secs(10)).is_some_and(|s| s.success()), "{}", fcgi.log());
    let accepted = accepted_connections(&fcgi.log());
    eprintln!("{site:?} over {transport:?}: {requests} requests, {accepted} connections accepted");
    accepted
}

#[test]
fn hello_over_a_unix_socket() {
    // Without keepalive nginx opens a connection per request: 5 requests, 5 connections.
    let accepted = hello_through(Site::Unix, Transport::Unix, 5);
    assert_eq!(accepted, 6, "connections for 5 requests and a probe");
}

#[test]
fn hello_over_tcp() {
    let accepted = hello_through(Site::Tcp, Transport::Tcp, 5);
    assert_eq!(accepted, 6, "connections for 5 requests and a probe");
}

#[test]
fn hello_with_keepalive_over_a_unix_socket_reuses_connections() {
    // 200 sequential requests through one nginx worker need one kept connection; the probe is
    // another. A few more would still be keepalive at work; one per request would not.
    let accepted = hello_through(Site::Keepalive, Transport::Unix, 200);
    assert!(accepted <= 4, "{accepted} connections for 200 requests: keepalive is not working");
}

#[test]
fn hello_with_keepalive_over_tcp_reuses_connections() {
    let accepted = hello_through(Site::Keepalive, Transport::Tcp, 200);
    assert!(accepted <= 4, "{accepted} connections for 200 requests: keepalive is not working");
}

/// Starts `fcgi serve --app echo` on a Unix socket in `dir`, spooling request bodies to
/// `dir/spool`; returns it and the spool directory.
fn echo_spooling_in(dir: &Path) -> (FcgiServe, PathBuf) {
    let spool = dir.join("spool");
    std::fs::create_dir(&spool).expect("the spool directory");
    let spool_arg = spool.to_str().expect("a UTF-8 temporary path");
    let fcgi = FcgiServe::start(dir, "fcgi", "echo", Transport::Unix, &["--spool-dir", spool_arg]);
    (fcgi, spool)
}

#[test]
fn a_32_mib_upload_is_echoed_intact_with_bounded_server_memory() {
    let dir = scratch();
    let (mut fcgi, _spool) = echo_spooling_in(dir.path());
    let nginx = Nginx::start(dir.path(), Site::Unix, &fcgi.addr().site_vars());

    // A small request first, so that the pool's threads and buffers exist before measuring.
    let warm = nginx.post("/warm", "text/plain", b"warm up").unwrap();
    assert_eq!((warm.status, warm.body.as_slice()), (200, &b"warm up"[..]));
    let before = fcgi.process().rss_kib();

    let body = pattern(32 * MIB, 32);
    let response = nginx.post("/upload", "application/octet-stream", &body).unwrap();
    assert_eq!(response.status, 200, "{}", String::from_utf8_lossy(&response.body[..200]));
    assert_eq!(response.header("Content-Type"), Some("application/octet-stream"));
    assert_same_bytes(&response.body, &body, "32 MiB echoed through nginx");

    let after = fcgi.process().rss_kib();
    let peak = fcgi.process().peak_rss_kib();
    eprintln!(
        "fcgi serve RSS around a 32 MiB upload: before {before} KiB, after {after} KiB, \
         peak {peak} KiB"
    );
    assert!(before > 0 && after > 0, "RSS not readable: {before} / {after}");
    let limit = 32 * 1024;
    assert!(after.saturating_sub(before) < limit, "RSS grew {before} -> {after} KiB");
    assert!(peak.saturating_sub(before) < limit, "RSS peaked at {peak} KiB from {before} KiB");
}

#[test]
fn a_10_mib_response_arrives_intact_over_a_kept_connection() {
    let dir = scratch();
    let body = Arc::new(pattern(10 * MIB, 10));
    let served = Arc::clone(&body);
    let handler =
        move |_: &mut Request, response: &mut Response| -> Result<(), fcgi_server::Error> {
            response.header("Content-Type", "application/octet-stream")?;
            response.write_all(&served)?;
            Ok(())
        };
    let server = TestServer::start_on(Transport::Tcp, Config::default(), |b| b.responder(handler));
    let nginx = Nginx::start(dir.path(), Site::Keepalive, &server.addr().site_vars());
    for attempt in 0..2 {
        // The second goes over the connection the first left open, after a 10 MiB answer.
        let response = nginx.get("/big").unwrap();
        assert_eq!(response.status, 200, "attempt {attempt}");
        assert_same_bytes(&response.body, &body, "10 MiB response through nginx");
    }
}

#[test]
fn handler_stderr_reaches_the_nginx_error_log() {
    // The built-in apps write nothing to FCGI_STDERR, so a handler of the test's own does.
    let dir = scratch();
    let marker = format!("fcgi-rs stderr marker {}", std::process::id());
    let line = marker.clone();
    let handler =
        move |_: &mut Request, response: &mut Response| -> Result<(), fcgi_server::Error> {
            response.write_stderr(format!("{line}\n").as_bytes())?;
            response.header("Content-Type", "text/plain")?;
            response.write_all(b"logged")?;
            Ok(())
        };
    let server = TestServer::start_on(Transport::Unix, Config::default(), |b| b.responder(handler));
    let nginx = Nginx::start(dir.path(), Site::Unix, &server.addr().site_vars());
    let response = nginx.get("/log").unwrap();
    assert_eq!((response.status, response.body.as_slice()), (200, &b"logged"[..]));
    let logged = wait_until(Duration::from_secs(2), || nginx.error_log().contains(&marker));
    assert!(logged, "{marker:?} is not in nginx's error log:\n{}", nginx.error_log());
    assert!(
        nginx.error_log().contains("FastCGI sent in stderr"),
        "nginx did not log it as FastCGI stderr:\n{}",
        nginx.error_log()
    );
}

/// Holds handlers until the test lets them go, and counts those that arrived.
#[derive(Debug, Default)]
struct Gate {
    state: Mutex<(usize, bool)>,
    changed: Condvar,
}

impl Gate {
    fn lock(&self) -> std::sync::MutexGuard<'_, (usize, bool)> {
        self.state.lock().expect("the gate's lock (a handler panicked holding it)")
    }

    fn enter_and_wait(&self) {
        let mut state = self.lock();
        state.0 += 1;
        self.changed.notify_all();
        // Bounded, so that a failed test cannot hang its server's shutdown.
        let released = self.changed.wait_timeout_while(state, Duration::from_secs(20), |s| !s.1);
        drop(released.expect("the gate's lock"));
    }

    fn wait_entered(&self, n: usize) -> bool {
        let state = self.lock();
        let waited = self.changed.wait_timeout_while(state, Duration::from_secs(10), |s| s.0 < n);
        let (state, _) = waited.expect("the gate's lock");
        state.0 >= n
    }

    fn release(&self) {
        self.lock().1 = true;
        self.changed.notify_all();
    }
}

#[test]
fn overload_reaches_the_client_as_503_with_retry_after() {
    let dir = scratch();
    let gate = Arc::new(Gate::default());
    let held = Arc::clone(&gate);
    // One thread, no queue: while one request runs, the next is refused at once.
    let config =
        Config { min_spare: 1, max_spare: 1, max_threads: 1, queue: 0, ..Config::default() };
    let handler =
        move |_: &mut Request, response: &mut Response| -> Result<(), fcgi_server::Error> {
            held.enter_and_wait();
            response.header("Content-Type", "text/plain")?;
            response.write_all(b"finally")?;
            Ok(())
        };
    let server = TestServer::start_on(Transport::Tcp, config, |b| b.responder(handler));
    let nginx = Nginx::start(dir.path(), Site::Tcp, &server.addr().site_vars());
    let port = nginx.port();
    let first = std::thread::spawn(move || http::get(port, "/slow"));
    assert!(gate.wait_entered(1), "the first request never reached its handler");

    let refused = nginx.get("/refused").unwrap();
    gate.release();
    assert_eq!(refused.status, 503, "{}", refused.body_text());
    assert_eq!(refused.header("Retry-After"), Some("1"), "{:?}", refused.headers);

    let first = first.join().unwrap().unwrap();
    assert_eq!((first.status, first.body.as_slice()), (200, &b"finally"[..]));
}

#[test]
fn sigterm_lets_an_in_flight_request_finish_then_exits_0_and_removes_the_socket() {
    let dir = scratch();
    let (mut fcgi, spool) = echo_spooling_in(dir.path());
    let socket = fcgi.addr().socket_path().unwrap().to_path_buf();
    // nginx normally reads a whole request body before it passes the request on, and then the
    // exchange with fcgi-rs takes a blink: too short to signal reliably in the middle of it.
    // Streaming the body instead lets the test hold the request open at fcgi-rs for as long as
    // it likes, by sending half the body and waiting.
    let nginx = Nginx::start_with(
        dir.path(),
        Site::Unix,
        &fcgi.addr().site_vars(),
        "    fastcgi_request_buffering off;",
    );

    let body = pattern(32 * MIB, 7);
    let (first_half, second_half) = body.split_at(16 * MIB);
    let mut upload = HttpStream::connect(nginx.port()).unwrap();
    upload.send_head("POST", "/drain", Some("application/octet-stream"), Some(body.len())).unwrap();
    upload.send(first_half).unwrap();
    // The body spills to a file in the spool directory once past 256 KiB: by then the request
    // is under way at fcgi-rs (its params came first), and it cannot end before the rest.
    let spooling =
        wait_until(Duration::from_secs(10), || fcgi.process().has_open_file_under(&spool));
    assert!(spooling, "fcgi-rs never started spooling the body:\n{}", fcgi.log());

    fcgi.process().signal(libc::SIGTERM);
    // Draining: new connections are refused (the socket file is gone), the request goes on.
    assert!(wait_until(Duration::from_secs(5), || !socket.exists()), "socket still there");
    let refused = nginx.get("/new").unwrap();
    assert_eq!(refused.status, 502, "a new request during the drain: {}", refused.body_text());
    // It does not exit meanwhile: watched for 300 ms, it is still there.
    let exited = wait_until(Duration::from_millis(300), || !fcgi.process().is_running());
    assert!(!exited, "fcgi-rs exited with a request in flight");

    upload.send(second_half).unwrap();
    let response = upload.read_response().unwrap();
    assert_eq!(response.status, 200, "{}", fcgi.log());
    assert_same_bytes(&response.body, &body, "32 MiB echoed across SIGTERM");

    let status = fcgi.process().wait_exit(Duration::from_secs(10));
    let status = status.unwrap_or_else(|| panic!("fcgi-rs did not exit:\n{}", fcgi.log()));
    assert_eq!(status.code(), Some(0), "exit status; log:\n{}", fcgi.log());
    assert!(!socket.exists(), "{} left behind", socket.display());
}

/// Requests that one `fcgi serve --access-log --log-format json` instance logged.
fn served(fcgi: &FcgiServe) -> usize {
    fcgi.log().lines().filter(|line| line.contains(r#""msg":"request""#)).count()
}

#[test]
fn the_upstream_spreads_requests_and_survives_a_stopped_instance() {
    let dir = scratch();
    let args = ["--access-log", "--log-format", "json"];
    let mut a = FcgiServe::start(dir.path(), "a", "hello", Transport::Unix, &args);
    let b = FcgiServe::start(dir.path(), "b", "hello", Transport::Unix, &args);
    let (addr_a, addr_b) = (a.addr().nginx(), b.addr().nginx());
    let nginx = Nginx::start(
        dir.path(),
        Site::Upstream,
        &[("FCGI_ADDR_1", &addr_a), ("FCGI_ADDR_2", &addr_b)],
    );

    let hello = |what: &str| {
        let response = nginx.get("/").unwrap();
        assert_eq!(
            (response.status, response.body.as_slice()),
            (200, &b"Hello, world!"[..]),
            "{what}"
        );
    };
    for _ in 0..20 {
        hello("both up");
    }
    let total = |a: &FcgiServe, b: &FcgiServe| served(a) + served(b);
    assert!(wait_until(Duration::from_secs(2), || total(&a, &b) == 20), "{}", total(&a, &b));
    let (by_a, by_b) = (served(&a), served(&b));
    assert!(by_a > 0 && by_b > 0, "one instance got everything: a {by_a}, b {by_b}");

    a.process().signal(libc::SIGTERM);
    let status = a.process().wait_exit(Duration::from_secs(10)).expect("instance a exits");
    assert!(status.success(), "instance a: {status}");
    for _ in 0..20 {
        hello("a stopped");
    }
    assert!(
        wait_until(Duration::from_secs(2), || served(&b) == by_b + 20),
        "b served {}",
        served(&b)
    );
}

/// What `fcgi_server::Request`'s docs say nginx sends (`include fastcgi_params`), checked
/// against the real nginx: the raw request line in REQUEST_URI (and so in `path()`), the
/// normalized path in DOCUMENT_URI and SCRIPT_NAME.
#[test]
fn nginx_sends_the_params_the_request_docs_describe() {
    let dir = scratch();
    let handler = |request: &mut Request,
                   response: &mut Response|
     -> Result<(), fcgi_server::Error> {
        for name in ["REQUEST_URI", "DOCUMENT_URI", "SCRIPT_NAME", "QUERY_STRING", "PATH_INFO"] {
            let value = request.param_str(name).unwrap_or("(not sent)");
            writeln!(response, "{name}={value}")?;
        }
        writeln!(response, "path()={}", request.path())?;
        Ok(())
    };
    let server = TestServer::start_on(Transport::Unix, Config::default(), |b| b.responder(handler));
    let nginx = Nginx::start(dir.path(), Site::Unix, &server.addr().site_vars());
    let cases = [
        (
            "/items/7%20x?q=a+b",
            "REQUEST_URI=/items/7%20x?q=a+b\nDOCUMENT_URI=/items/7 x\nSCRIPT_NAME=/items/7 x\n\
             QUERY_STRING=q=a+b\nPATH_INFO=(not sent)\npath()=/items/7%20x\n",
        ),
        (
            "/a//b/../c?x=1",
            "REQUEST_URI=/a//b/../c?x=1\nDOCUMENT_URI=/a/c\nSCRIPT_NAME=/a/c\n\
             QUERY_STRING=x=1\nPATH_INFO=(not sent)\npath()=/a//b/../c\n",
        ),
    ];
    for (uri, expected) in cases {
        let response = nginx.get(uri).unwrap();
        assert_eq!(response.status, 200, "{uri}");
        assert_eq!(String::from_utf8_lossy(&response.body), expected, "{uri}");
    }
}
