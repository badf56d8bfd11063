//! `fcgi request` and the `fcgi-client` crate: the command against `fcgi serve --app hello`
//! and `--app echo` and against a real PHP-FPM, and the client's kept, multiplexed and
//! streamed connections against a server in the test process.
//!
//! Each test has its own temporary directory, sockets and processes, so they run in parallel.
//! The PHP-FPM tests need `php-fpm` (`tests/deps.sh` installs it); without it they say so and
//! pass.

use std::io::{Cursor, Read, Write};
use std::process::{Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use fcgi_client::{Connection, Error, ProtocolStatus, Request, Timeouts};
use fcgi_tests::addr::{Addr, Transport};
use fcgi_tests::data::{assert_same_bytes, pattern};
use fcgi_tests::inproc::{self, TestServer};
use fcgi_tests::php::PhpFpm;
use fcgi_tests::process::{fcgi_bin, FcgiServe};

/// What one `fcgi request` run gave.
struct Run {
    code: Option<i32>,
    stdout: Vec<u8>,
    stderr: String,
}

impl Run {
    fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// Asserts exit status 0, showing everything otherwise.
    fn assert_ok(&self) -> &Run {
        assert_eq!(self.code, Some(0), "stdout:\n{}\nstderr:\n{}", self.stdout_text(), self.stderr);
        self
    }

    /// Asserts exit status `code` and a one-line error on stderr containing `needle`.
    fn assert_fails(&self, code: i32, needle: &str) {
        assert_eq!(
            self.code,
            Some(code),
            "stdout:\n{}\nstderr:\n{}",
            self.stdout_text(),
            self.stderr
        );
        assert!(self.stderr.contains(needle), "stderr lacks {needle:?}:\n{}", self.stderr);
    }

    /// The stdout lines.
    fn lines(&self) -> Vec<String> {
        self.stdout_text().lines().map(str::to_owned).collect()
    }
}

/// Runs `fcgi request --timeout 10 ARGS...`, with `stdin` on its standard input.
fn fcgi_request(args: &[&str], stdin: &[u8]) -> Run {
    let mut child = Command::new(fcgi_bin())
        .args(["request", "--timeout", "10"])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("fcgi request starts");
    let mut input = child.stdin.take().expect("a stdin pipe");
    let stdin = stdin.to_vec();
    // A thread of its own, so that a large body and the output cannot block each other.
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&stdin);
    });
    let output = child.wait_with_output().expect("fcgi request runs");
    writer.join().expect("the stdin writer does not panic");
    Run {
        code: output.status.code(),
        stdout: output.stdout,
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// `--connect` for a server's address.
fn connect_arg(addr: &Addr) -> String {
    match addr {
        Addr::Tcp(addr) => format!("tcp:{addr}"),
        Addr::Unix(path) => format!("unix:{}", path.display()),
    }
}

/// The client's address for a server's.
fn client_addr(addr: &Addr) -> fcgi_client::Address {
    connect_arg(addr).parse().expect("a test server's address is valid")
}

#[test]
fn get_prints_the_cgi_params_derived_from_the_script_path() {
    let dir = tempfile::tempdir().unwrap();
    let echo = FcgiServe::start(dir.path(), "echo", "echo", Transport::Unix, &[]);
    let connect = connect_arg(echo.addr());
    let run = fcgi_request(
        &[
            "--connect",
            &connect,
            "--param",
            "SERVER_NAME=example.org",
            "--param",
            "HTTP_X_EXTRA=1=2",
            "/srv/www/app.php?a=1&b=two",
        ],
        b"",
    );
    let lines = run.assert_ok().lines();
    for expected in [
        "GATEWAY_INTERFACE=CGI/1.1",
        "QUERY_STRING=a=1&b=two",
        "REMOTE_ADDR=127.0.0.1",
        "REQUEST_METHOD=GET",
        "REQUEST_URI=/srv/www/app.php?a=1&b=two",
        "SCRIPT_FILENAME=/srv/www/app.php",
        "SCRIPT_NAME=/srv/www/app.php",
        "SERVER_PORT=80",
        "SERVER_PROTOCOL=HTTP/1.1",
        concat!("SERVER_SOFTWARE=fcgi-rs/", env!("CARGO_PKG_VERSION")),
        // --param replaces a derived param, and adds a new one (split at the first '=').
        "SERVER_NAME=example.org",
        "HTTP_X_EXTRA=1=2",
    ] {
        assert!(lines.iter().any(|l| l == expected), "no {expected:?} in {lines:#?}");
    }
    assert_eq!(lines.iter().filter(|l| l.starts_with("SERVER_NAME=")).count(), 1);
    assert!(!lines.iter().any(|l| l.starts_with("CONTENT_LENGTH=")), "a GET has no body");
}

#[test]
fn post_with_stdin_file_echoes_the_body_over_tcp() {
    let dir = tempfile::tempdir().unwrap();
    let echo = FcgiServe::start(dir.path(), "echo", "echo", Transport::Tcp, &[]);
    // Several records' worth, binary.
    let body = pattern(300_000, 7);
    let file = dir.path().join("body.bin");
    std::fs::write(&file, &body).unwrap();
    let connect = connect_arg(echo.addr());
    let run = fcgi_request(
        &[
            "--connect",
            &connect,
            "--stdin",
            file.to_str().unwrap(),
            "--param",
            "CONTENT_TYPE=application/x-test",
            "/upload",
        ],
        b"",
    );
    assert_same_bytes(&run.assert_ok().stdout, &body, "the echoed body");
}

#[test]
fn stdin_dash_is_spooled_and_counted_and_method_overrides() {
    let dir = tempfile::tempdir().unwrap();
    let echo = FcgiServe::start(dir.path(), "echo", "echo", Transport::Unix, &[]);
    let connect = connect_arg(echo.addr());
    // PUT: echo answers with the body itself.
    let run =
        fcgi_request(&["--connect", &connect, "--stdin", "-", "--method", "PUT", "/x"], b"ab");
    assert_eq!(run.assert_ok().stdout, b"ab");
    // GET with a body: echo lists the params, CONTENT_LENGTH counted from the spooled input.
    let body = pattern(70_000, 1);
    let run =
        fcgi_request(&["--connect", &connect, "--stdin", "-", "--method", "GET", "/x"], &body);
    let lines = run.assert_ok().lines();
    assert!(lines.iter().any(|l| l == "CONTENT_LENGTH=70000"), "{lines:#?}");
    assert!(lines.iter().any(|l| l == "REQUEST_METHOD=GET"), "{lines:#?}");
    // Without --method, a body makes it a POST.
    let run = fcgi_request(&["--connect", &connect, "--stdin", "-", "-i", "/x"], b"posted");
    assert!(run.assert_ok().stdout_text().ends_with("\n\nposted"), "{}", run.stdout_text());
    assert!(run.stdout_text().contains("Content-Type: application/octet-stream\n"));
}

#[test]
fn include_shows_the_status_and_headers_first() {
    let dir = tempfile::tempdir().unwrap();
    let hello = FcgiServe::start(dir.path(), "hello", "hello", Transport::Unix, &[]);
    let connect = connect_arg(hello.addr());
    let run = fcgi_request(&["--connect", &connect, "-i", "/hello"], b"");
    let text = run.assert_ok().stdout_text();
    assert!(text.starts_with("Status: 200"), "{text}");
    assert!(text.contains("\nContent-Type: text/plain\n"), "{text}");
    assert!(text.ends_with("\n\nHello, world!"), "{text}");
    // Without -i, the body alone.
    let run = fcgi_request(&["--connect", &connect, "/hello"], b"");
    assert_eq!(run.assert_ok().stdout, b"Hello, world!");
}

#[test]
fn expect_status_is_a_health_check() {
    let dir = tempfile::tempdir().unwrap();
    let hello = FcgiServe::start(dir.path(), "hello", "hello", Transport::Tcp, &[]);
    let connect = connect_arg(hello.addr());
    fcgi_request(&["--connect", &connect, "--expect-status", "200", "/"], b"").assert_ok();
    let run = fcgi_request(&["--connect", &connect, "--expect-status", "404", "/"], b"");
    run.assert_fails(1, "expected status 404, got 200");
    assert_eq!(run.stderr.lines().count(), 1, "one line: {}", run.stderr);
    assert_eq!(run.stdout, b"Hello, world!", "the body is still printed");
}

#[test]
fn get_values_shows_the_configured_values() {
    let dir = tempfile::tempdir().unwrap();
    let extra = ["--max-conns", "7", "--max-threads", "3", "--max-conn-requests", "8"];
    let hello = FcgiServe::start(dir.path(), "hello", "hello", Transport::Unix, &extra);
    let connect = connect_arg(hello.addr());
    let run = fcgi_request(&["--connect", &connect, "--get-values"], b"");
    // FCGI_MAX_REQS is how many requests one connection may have open.
    assert_eq!(
        run.assert_ok().lines(),
        ["FCGI_MAX_CONNS=7", "FCGI_MAX_REQS=8", "FCGI_MPXS_CONNS=1"]
    );
    // With a script too: the values, then the response.
    let run = fcgi_request(&["--connect", &connect, "--get-values", "/"], b"");
    assert!(run.assert_ok().stdout_text().ends_with("FCGI_MPXS_CONNS=1\nHello, world!"));
}

#[test]
fn failures_exit_1_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let nowhere = dir.path().join("nobody.sock");
    let run = fcgi_request(&["--connect", &format!("unix:{}", nowhere.display()), "/"], b"");
    run.assert_fails(1, &format!("cannot connect to unix:{}", nowhere.display()));
    assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);

    // `fcgi serve` has no authorizer: FCGI_UNKNOWN_ROLE, not a complete response.
    let hello = FcgiServe::start(dir.path(), "hello", "hello", Transport::Unix, &[]);
    let connect = connect_arg(hello.addr());
    let run = fcgi_request(&["--connect", &connect, "--role", "authorizer", "/"], b"");
    run.assert_fails(1, "FCGI_UNKNOWN_ROLE");
}

#[test]
fn usage_errors_exit_2() {
    fcgi_request(&["/"], b"").assert_fails(2, "--connect");
    fcgi_request(&["--connect", "unix:/x.sock"], b"").assert_fails(2, "SCRIPT_PATH");
    fcgi_request(&["--connect", "nowhere", "/"], b"").assert_fails(2, "invalid FastCGI address");
    fcgi_request(&["--connect", "unix:/x.sock", "--param", "NOEQUALS", "/"], b"")
        .assert_fails(2, "NAME=VALUE");
    fcgi_request(&["--connect", "unix:/x.sock", "--role", "authorizer", "--stdin", "-", "/"], b"")
        .assert_fails(2, "authorizer");
}

// --- PHP-FPM ---------------------------------------------------------------------------------

#[test]
fn php_fpm_get_and_post() {
    let Some(php) = PhpFpm::start() else { return };
    let (connect, script) = (php.connect_arg(), php.script());

    let run = fcgi_request(&["--connect", &connect, "-i", "--expect-status", "200", &script], b"");
    let text = run.assert_ok().stdout_text();
    assert!(text.starts_with("Status: 200"), "{text}");
    assert!(text.contains("\nX-Test: yes\n"), "{text}");
    assert!(text.ends_with("\n\nphp says hello; method=GET; body=\n"), "{text}");
    assert!(run.stderr.contains("hello from php on stderr"), "FCGI_STDERR: {:?}", run.stderr);

    let body = php.path("body.txt");
    std::fs::write(&body, "name=value&x=1").unwrap();
    let run = fcgi_request(
        &[
            "--connect",
            &connect,
            "--stdin",
            body.to_str().unwrap(),
            "--param",
            "CONTENT_TYPE=application/x-www-form-urlencoded",
            &format!("{script}?q=1"),
        ],
        b"",
    );
    assert_eq!(run.assert_ok().stdout_text(), "php says hello; method=POST; body=name=value&x=1\n");
}

#[test]
fn php_fpm_health_checks() {
    let Some(php) = PhpFpm::start() else { return };
    let connect = php.connect_arg();
    // PHP-FPM's own ping page: SCRIPT_NAME equal to ping.path.
    let run = fcgi_request(&["--connect", &connect, "--expect-status", "200", "/ping"], b"");
    assert_eq!(run.assert_ok().stdout, b"pong");
    // A script that is not there: PHP-FPM answers 404, which is no health.
    let missing = php.path("missing.php");
    let run = fcgi_request(
        &["--connect", &connect, "--expect-status", "200", missing.to_str().unwrap()],
        b"",
    );
    run.assert_fails(1, "expected status 200, got 404");
    assert!(run.stderr.contains("Primary script unknown"), "FCGI_STDERR: {}", run.stderr);
}

#[test]
fn php_fpm_get_values() {
    let Some(php) = PhpFpm::start() else { return };
    let run = fcgi_request(&["--connect", &php.connect_arg(), "--get-values"], b"");
    // PHP-FPM answers only FCGI_MPXS_CONNS, and does not multiplex.
    let lines = run.assert_ok().lines();
    assert!(lines.iter().any(|l| l == "FCGI_MPXS_CONNS=0"), "{lines:?}");
    assert!(lines.iter().all(|l| l.starts_with("FCGI_") && l.contains('=')), "{lines:?}");
}

#[test]
fn php_fpm_kept_connection_serves_several_requests() {
    let Some(php) = PhpFpm::start() else { return };
    let mut conn = Connection::connect(&php.connect_arg().parse().unwrap()).unwrap();
    let script = php.script();
    for method in ["GET", "POST", "GET"] {
        let request = Request::new()
            .params([("SCRIPT_FILENAME", script.as_str()), ("REQUEST_METHOD", method)])
            .param("CONTENT_LENGTH", "3")
            .stdin(&b"abc"[..]);
        let reply = conn.request(request).unwrap().into_reply().unwrap();
        assert_eq!(reply.status(), 200);
        assert!(reply.is_complete());
        let expected = format!("php says hello; method={method}; body=abc\n");
        assert_eq!(String::from_utf8_lossy(&reply.body), expected);
        assert!(String::from_utf8_lossy(&reply.stderr).contains("hello from php on stderr"));
        assert!(conn.is_usable());
    }
}

// --- The client crate against a server in the test process -------------------------------------

/// Lines of a test server's log that record an accepted connection.
fn accepted(server: &TestServer) -> usize {
    server.logs().lines().iter().filter(|line| line.contains("connection accepted")).count()
}

#[test]
fn client_reuses_a_kept_connection() {
    let server = TestServer::start_on(Transport::Unix, inproc::config(), |b| {
        b.responder(|request: &mut fcgi_server::Request, response: &mut fcgi_server::Response| {
            let query = request.query_string().unwrap_or_default().to_owned();
            response.header("X-Request-Id", request.request_id().to_string())?;
            response.write_all(query.as_bytes())?;
            Ok(())
        })
    });
    let mut conn = Connection::connect(&client_addr(server.addr())).unwrap();
    for i in 0..5 {
        let query = format!("n={i}");
        let response = conn.request(Request::new().param("QUERY_STRING", &query)).unwrap();
        assert_eq!(response.request_id(), 1, "one at a time, as nginx: always id 1");
        assert_eq!(response.header("x-request-id"), Some("1"));
        let reply = response.into_reply().unwrap();
        assert_eq!(reply.body, query.as_bytes());
        assert!(reply.is_complete());
        assert!(conn.is_usable());
    }
    assert_eq!(accepted(&server), 1, "five requests, one connection");

    // Without FCGI_KEEP_CONN the server closes it: the client knows and refuses to reuse it.
    let finished = conn.request(Request::new().keep_conn(false)).unwrap().finish().unwrap();
    assert!(finished.is_complete());
    assert!(!conn.is_usable());
    assert!(matches!(conn.request(Request::new()), Err(Error::Unusable)));
}

/// Holds handlers until `count` of them run at once (or 10 s pass): proof that requests run
/// side by side.
#[derive(Default)]
struct Rendezvous {
    arrived: Mutex<usize>,
    all_here: Condvar,
}

impl Rendezvous {
    /// Waits for the others; whether all came.
    fn meet(&self, count: usize) -> bool {
        let mut arrived = self.arrived.lock().expect("no handler panicked holding the lock");
        *arrived += 1;
        self.all_here.notify_all();
        let (arrived, timeout) = self
            .all_here
            .wait_timeout_while(arrived, Duration::from_secs(10), |n| *n < count)
            .expect("no handler panicked holding the lock");
        drop(arrived);
        !timeout.timed_out()
    }
}

#[test]
fn client_multiplexes_requests_on_one_connection() {
    const REQUESTS: usize = 3;
    let rendezvous = Arc::new(Rendezvous::default());
    let meeting = Arc::clone(&rendezvous);
    let server = TestServer::start(inproc::config(), move |b| {
        b.responder(
            move |request: &mut fcgi_server::Request, response: &mut fcgi_server::Response| {
                let seed: u64 = request.query_string().unwrap_or("0").parse().unwrap_or(0);
                if !meeting.meet(REQUESTS) {
                    response.set_status(504);
                }
                // Large and in pieces, so that the three responses' records interleave.
                for piece in pattern(200_000, seed).chunks(10_000) {
                    response.write_all(piece)?;
                }
                response.write_stderr(format!("done {seed}").as_bytes())?;
                Ok(())
            },
        )
    });
    let mut conn = Connection::connect(&client_addr(server.addr())).unwrap();
    let values = conn.get_values(fcgi_client::STANDARD_VALUES).unwrap();
    assert!(values.contains(&("FCGI_MPXS_CONNS".into(), "1".into())), "{values:?}");

    // All sent before any is read; received in the reverse order.
    let ids: Vec<u16> = (0..REQUESTS)
        .map(|seed| conn.send(Request::new().param("QUERY_STRING", seed.to_string())).unwrap())
        .collect();
    assert_eq!(ids, [1, 2, 3], "distinct ids, the lowest free ones");
    assert_eq!(conn.in_flight(), REQUESTS);
    for (seed, id) in ids.iter().enumerate().rev() {
        let reply = conn.receive(*id).unwrap();
        assert_eq!(reply.status(), 200, "request {id} ran alone: not multiplexed");
        assert_same_bytes(&reply.body, &pattern(200_000, seed as u64), "a multiplexed body");
        assert_eq!(reply.stderr, format!("done {seed}").as_bytes());
    }
    assert_eq!(conn.in_flight(), 0);

    // The same through `multiplex`, replies in request order.
    let replies = conn
        .multiplex((0..REQUESTS).map(|seed| Request::new().param("QUERY_STRING", seed.to_string())))
        .unwrap();
    for (seed, reply) in replies.iter().enumerate() {
        assert_same_bytes(&reply.body, &pattern(200_000, seed as u64), "a multiplexed body");
    }
    assert_eq!(accepted(&server), 1);
}

/// A handler that writes the request body back, and a word on stderr.
fn copy_back(
    request: &mut fcgi_server::Request,
    response: &mut fcgi_server::Response,
) -> Result<(), fcgi_server::Error> {
    std::io::copy(request.body(), response)?;
    response.write_stderr(b"copied")?;
    Ok(())
}

#[test]
fn client_streams_large_bodies_both_ways() {
    let server = TestServer::start(inproc::config(), |b| b.responder(copy_back));
    let mut conn = Connection::connect(&client_addr(server.addr())).unwrap();
    let body = pattern(3 * 1024 * 1024, 11);
    let request = Request::new()
        .params([("REQUEST_METHOD", "PUT"), ("CONTENT_LENGTH", &body.len().to_string())])
        .stdin(Cursor::new(&body));
    let mut response = conn.request(request).unwrap();
    // Read in odd small pieces, as a streaming consumer would.
    let mut got = Vec::new();
    let mut buf = [0u8; 1000];
    loop {
        match response.read(&mut buf).unwrap() {
            0 => break,
            n => got.extend_from_slice(&buf[..n]),
        }
    }
    let finished = response.finish().unwrap();
    assert_same_bytes(&got, &body, "3 MiB through the echo handler");
    assert_eq!(finished.stderr, b"copied");
    assert_eq!(finished.end.protocol_status, ProtocolStatus::RequestComplete);
}

#[test]
fn client_drains_a_dropped_response_before_the_next_request() {
    let server = TestServer::start(inproc::config(), |b| b.responder(copy_back));
    let mut conn = Connection::connect(&client_addr(server.addr())).unwrap();
    let big = pattern(1024 * 1024, 3);
    let mut response = conn.request(Request::new().stdin(Cursor::new(&big))).unwrap();
    let mut first = [0u8; 10];
    response.read_exact(&mut first).unwrap();
    assert_eq!(first, big[..10]);
    drop(response);
    assert_eq!(conn.in_flight(), 1, "the dropped response's end has not come yet");
    let reply = conn.request(Request::new().stdin(&b"small"[..])).unwrap().into_reply().unwrap();
    assert_eq!(reply.request_id, 1, "the dropped request's id is free again");
    assert_eq!(reply.body, b"small");
    assert_eq!(accepted(&server), 1);
}

#[test]
fn client_times_out_on_a_silent_server() {
    let server = TestServer::start(inproc::config(), |b| {
        b.responder(|_: &mut fcgi_server::Request, response: &mut fcgi_server::Response| {
            std::thread::sleep(Duration::from_secs(2));
            response.write_all(b"late")?;
            Ok(())
        })
    });
    let timeouts = Timeouts { read: Some(Duration::from_millis(200)), ..Timeouts::default() };
    let mut conn = Connection::connect_with(&client_addr(server.addr()), timeouts).unwrap();
    match conn.request(Request::new()) {
        Err(Error::Timeout { during, after }) => {
            assert_eq!(during, "reading the response");
            assert_eq!(after, Duration::from_millis(200));
        }
        other => panic!("expected a timeout, got {other:?}"),
    }
    assert!(!conn.is_usable(), "a timed-out connection is in an unknown state");
}

#[test]
fn client_reports_a_refusal_with_its_protocol_status() {
    // No authorizer installed: a 500 (for web servers that ignore the protocol status) and
    // FCGI_UNKNOWN_ROLE, and the connection goes on.
    let server = TestServer::start(inproc::config(), |b| b.responder(inproc::hello));
    let mut conn = Connection::connect(&client_addr(server.addr())).unwrap();
    let refused = conn.request(Request::new().role(fcgi_client::Role::Authorizer)).unwrap();
    let refused = refused.into_reply().unwrap();
    assert_eq!(refused.end.protocol_status, ProtocolStatus::UnknownRole);
    assert_eq!(refused.status(), 500);
    assert!(conn.is_usable());
    let reply = conn.request(Request::new()).unwrap().into_reply().unwrap();
    assert_eq!(reply.body, b"Hello, world!");
}
