//! `fcgi serve --app exec` running a FastCGI program that fails, behind a real nginx with kept
//! connections (`nginx/fcgi-keepalive.conf`): each fault of `fcgi-fault-program`
//! (`tests/bin/fault_program.rs`) and what the web server's client must see. A program that dies
//! before its answer: 502, and a new process serves the next requests. One that dies in the middle:
//! the response is cut short (curl's exit 18), never complete-looking. One that exits by itself
//! after N requests (php-cgi's PHP_FCGI_MAX_REQUESTS): no request fails. One that hangs: 504 at
//! `--request-timeout`, and it is replaced. One that writes what is not FastCGI: 502, and it is
//! replaced. One that closes kept connections: no request fails, and it gets a connection per
//! request. One that closes its connection on an abort runs on. One that cannot start:
//! `tests/integration/exec/start_faults.rs`.
//!
//! The log is read as JSON (`--log-format json`), by its `event` and other fields.

use std::io::Write;
use std::time::{Duration, Instant};

use fcgi_tests::exec::{answered_by, requests_of, Stack};
use fcgi_tests::nginx::scratch;
use fcgi_tests::process::wait_until;

#[test]
fn a_program_that_dies_before_answering_gets_a_502_and_a_replacement_that_serves() {
    let dir = scratch();
    // Each process answers one request, then dies of SIGKILL on the next, before any output.
    let mut stack =
        Stack::start(dir.path(), &["--workers", "1"], &["--mode", "crash-before", "--after", "1"]);
    let mut seen = Vec::new();
    for round in 0..3 {
        let pid = stack.ok("/");
        assert!(!seen.contains(&pid), "round {round}: {pid} answered again: {seen:?}");
        seen.push(pid);
        let response = stack.get("/");
        assert_eq!(
            response.status,
            502,
            "round {round}: {}\n{}",
            response.body_text(),
            stack.logs()
        );
        let exited = stack.wait_event("program-exited", pid);
        assert_eq!(exited["exit"], "signal 9", "{exited}");
    }
    // The replacements came at once (a process that served, then crashed, earns no delay),
    // and fcgi-rs itself still runs.
    assert!(stack.events("program-restart-delayed").is_empty(), "{}", stack.logs());
    let pid = stack.ok("/");
    assert!(!seen.contains(&pid), "{pid} answered after its death: {seen:?}");
    assert!(stack.serve.process().is_running(), "fcgi-rs died:\n{}", stack.logs());
}

#[test]
fn requests_of_death_in_a_row_leave_ordinary_requests_served() {
    let dir = scratch();
    // A request that kills whichever process takes it, three times in a row: each is a 502,
    // and an ordinary request right after is served, not refused for a back-off (as
    // tests/integration/prefork/backoff.rs holds the prefork master to).
    let stack = Stack::start(dir.path(), &["--workers", "1"], &["--mode", "ok"]);
    let first = stack.ok("/");
    for round in 0..3 {
        let response = stack.get("/?mode=crash-before");
        assert_eq!(
            response.status,
            502,
            "round {round}: {}\n{}",
            response.body_text(),
            stack.logs()
        );
    }
    let started = Instant::now();
    let response = stack.get("/");
    let served_after = started.elapsed();
    assert_eq!(response.status, 200, "{}\n{}", response.body_text(), stack.logs());
    assert_ne!(answered_by(&response), first);
    assert!(
        served_after < fcgi_tests::settings::scaled(Duration::from_secs(2)),
        "{served_after:?}"
    );
}

#[test]
fn a_program_that_dies_in_the_middle_of_its_answer_is_cut_short_never_complete() {
    let dir = scratch();
    let stack = Stack::start(dir.path(), &["--workers", "1"], &["--mode", "ok"]);
    let first = stack.ok("/");
    // More than fcgi-rs buffers (a header and 300,000 bytes), then `_exit(1)`: curl sees a
    // transfer closed short (18).
    let (code, written) = stack.curl("/?mode=crash-during&bytes=300000");
    assert_eq!(code, Some(18), "curl: {written}\n{}", stack.logs());
    assert!(written.starts_with("200 "), "{written}");
    let exited = stack.wait_event("program-exited", first);
    assert_eq!(exited["exit"], "status 1", "{exited}");
    // Each crash is followed by an ordinary request (a new process serves it), so that no
    // crash counts as the second in a row.
    assert_ne!(stack.ok("/"), first, "answered by the process that died");
    // A header and 1,000 bytes, a pause of 100 ms (the web server could have them), then
    // `_exit(1)`: cut short all the same, with what had been sent.
    let (code, written) = stack.curl("/?mode=crash-during");
    assert_eq!(code, Some(18), "curl: {written}\n{}", stack.logs());
    assert_eq!(written, "200 1000", "the header and the part sent arrived");
    stack.ok("/");
    // And so our own client sees it: the chunked body never ends.
    let error = stack.nginx.get("/?mode=crash-during").expect_err("a cut response looked whole");
    assert!(error.to_string().contains("cut short"), "{error}");
    stack.ok("/");
}

#[test]
fn a_program_that_exits_after_n_requests_by_itself_fails_no_request() {
    let dir = scratch();
    // Each process exits 0 right after its third END_REQUEST, as php-cgi with
    // PHP_FCGI_MAX_REQUESTS=3 does; fcgi-rs keeps its connection to it meanwhile.
    const N: u64 = 3;
    let after = N.to_string();
    let stack =
        Stack::start(dir.path(), &["--workers", "2"], &["--mode", "exit-after", "--after", &after]);
    let mut pids = Vec::new();
    // One at a time, 10 times N, and then from 3 clients at once.
    for n in 0..10 * N {
        let response = stack.get("/");
        assert_eq!(response.status, 200, "request {n}: {}\n{}", response.body_text(), stack.logs());
        assert!(requests_of(&response) <= N, "{}", response.body_text());
        pids.push(answered_by(&response));
    }
    let clients: Vec<_> = (0..3)
        .map(|_| {
            let port = stack.nginx.port();
            std::thread::spawn(move || {
                (0..10).map(|_| fcgi_tests::http::get(port, "/")).collect::<Vec<_>>()
            })
        })
        .collect();
    for client in clients {
        for response in client.join().expect("a client thread") {
            let response = response.unwrap_or_else(|e| panic!("{e}\n{}", stack.logs()));
            assert_eq!(response.status, 200, "{}\n{}", response.body_text(), stack.logs());
            pids.push(answered_by(&response));
        }
    }
    let mut distinct = pids.clone();
    distinct.sort_unstable();
    distinct.dedup();
    for pid in &distinct {
        let served = pids.iter().filter(|p| *p == pid).count() as u64;
        assert!(served <= N, "{pid} answered {served} requests, past its {N}");
    }
    assert!(distinct.len() as u64 >= 60 / N, "only {} processes answered", distinct.len());
    // Each stopped by itself, cleanly, after its N: replaced at once, no back-off.
    let exits = stack.events("program-exited");
    assert!(!exits.is_empty(), "{}", stack.logs());
    for exit in &exits {
        assert_eq!(exit["exit"], "status 0", "{exit}");
        // `requests`: those it served, N, each answered whole (the client saw N bodies
        // with its pid, at most).
        assert_eq!(exit["requests"], N, "{exit}\n{}", stack.logs());
    }
    assert!(stack.events("program-restart-delayed").is_empty(), "{}", stack.logs());
}

#[test]
fn a_program_that_hangs_gets_a_504_at_the_request_timeout_and_is_replaced() {
    let dir = scratch();
    let stack = Stack::start(
        dir.path(),
        &["--workers", "1", "--request-timeout", "1"],
        &["--mode", "hang", "--after", "1"],
    );
    let first = stack.ok("/");
    let started = Instant::now();
    let response = stack.get("/");
    let answered_after = started.elapsed();
    assert_eq!(response.status, 504, "{}\n{}", response.body_text(), stack.logs());
    assert!(answered_after >= Duration::from_millis(900), "{answered_after:?}");
    assert!(
        answered_after < fcgi_tests::settings::scaled(Duration::from_secs(3)),
        "{answered_after:?}"
    );
    let stopped = stack.wait_event("program-stopped", first);
    assert_eq!(stopped["reason"], "timeout", "{stopped}");
    stack.wait_event("program-exited", first);
    let next = stack.ok("/");
    assert_ne!(next, first, "answered by the process that hung");
    eprintln!("504 after {answered_after:?}");
}

#[test]
fn a_program_that_answers_with_garbage_gets_a_502_and_is_replaced() {
    let dir = scratch();
    // Its second answer is an HTTP response, not FastCGI records.
    let stack =
        Stack::start(dir.path(), &["--workers", "1"], &["--mode", "garbage", "--after", "1"]);
    let first = stack.ok("/");
    let response = stack.get("/");
    assert_eq!(response.status, 502, "{}\n{}", response.body_text(), stack.logs());
    assert!(!response.body_text().contains("hello"), "the garbage reached the client");
    let stopped = stack.wait_event("program-stopped", first);
    assert_eq!(stopped["reason"], "garbage", "{stopped}");
    for _ in 0..3 {
        let next = stack.ok("/?mode=ok");
        assert_ne!(next, first, "answered by the process that wrote garbage");
    }
}

#[test]
fn a_program_that_closes_kept_connections_fails_no_request_and_gets_one_per_request() {
    let dir = scratch();
    // Each connection serves one request and is closed by the program, FCGI_KEEP_CONN or
    // not: every kept one fcgi-rs reuses turns out closed at its first write.
    let stack = Stack::start(dir.path(), &["--workers", "1"], &["--mode", "close-kept"]);
    let port = stack.nginx.port();
    for n in 0..10usize {
        // Bodies too: one found closed is sent again, whole, on the new connection.
        let body = vec![b'a' + (n % 26) as u8; 1000 * n];
        let response = fcgi_tests::http::post(port, "/", "text/plain", &body)
            .unwrap_or_else(|e| panic!("request {n}: {e}\n{}", stack.logs()));
        assert_eq!(response.status, 200, "request {n}: {}\n{}", response.body_text(), stack.logs());
        let text = response.body_text();
        assert!(text.contains(&format!("body_len={}", body.len())), "request {n}: {text}");
        assert!(response.body.ends_with(&body), "request {n}: the body came back changed");
    }
    // Seen three times in a row, once said; the one process served them all.
    let said = stack.events("program-closes-kept-connections");
    assert_eq!(said.len(), 1, "{}", stack.logs());
    assert!(stack.events("program-exited").is_empty(), "{}", stack.logs());
}

#[test]
fn a_program_that_closes_its_connection_on_an_abort_runs_on() {
    let dir = scratch();
    let stack = Stack::start(dir.path(), &["--workers", "1"], &["--mode", "ok"]);
    let pid = stack.ok("/");
    // The client leaves while the program has its request: nginx closes its connection to
    // fcgi-rs, which passes ABORT_REQUEST on, and the program closes the connection
    // unanswered (as php-cgi does when one reaches it before it read its request whole).
    let port = stack.nginx.port();
    let mut client = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect to nginx");
    client
        .write_all(b"GET /?mode=close-on-abort&ms=10000 HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .expect("send the request");
    let said = |text: &str| {
        let lines = stack.events("program-stderr");
        lines.iter().any(|e| e["line"].as_str().is_some_and(|line| line.contains(text)))
    };
    let waiting = wait_until(Duration::from_secs(10), || said("waiting for an abort"));
    assert!(waiting, "the program never had the request:\n{}", stack.logs());
    drop(client);
    let closed = wait_until(Duration::from_secs(10), || said("closed unanswered"));
    assert!(closed, "no abort reached the program:\n{}", stack.logs());
    // Done with the request, and alive: it serves the next one, and nothing stopped it.
    assert_eq!(stack.ok("/"), pid, "{}", stack.logs());
    assert!(stack.events("program-stopped").is_empty(), "{}", stack.logs());
}
