//! `fcgi serve --app exec` running a FastCGI program that cannot start or cannot serve, behind
//! a real nginx (`fcgi_tests::exec`): one that exits at once (a missing configuration) is
//! restarted with growing delays, forever, while requests get a 503 at once and fcgi-rs stays
//! up and idle; the log and the status page say why; once the program is fixed it recovers by
//! itself. One that closes its listening socket is replaced, with the same back-off. And what a
//! program writes on its standard error, or in FCGI_STDERR records, reaches the log.
//!
//! The log is read as JSON (`--log-format json`), by its `event` and other fields.

use std::time::{Duration, Instant};

use fcgi_tests::exec::{answered_by, Stack};
use fcgi_tests::master::children;
use fcgi_tests::nginx::scratch;
use fcgi_tests::process::{cpu_seconds_of, wait_until};
use fcgi_tests::settings::scaled;
use serde_json::Value;

/// CPU seconds used by fcgi-rs: its master and the master's children (its serving worker),
/// not the program processes (the worker's children, whose time is not in the worker's).
fn fcgi_cpu(master: u32) -> f64 {
    cpu_seconds_of(master) + children(master).into_iter().map(cpu_seconds_of).sum::<f64>()
}

/// The `delay_ms` of each `program-restart-delayed` event so far.
fn delays(stack: &Stack) -> Vec<u64> {
    let events = stack.events("program-restart-delayed");
    events.iter().map(|e| e["delay_ms"].as_u64().expect("delay_ms is a number")).collect()
}

#[test]
fn a_program_that_cannot_start_is_retried_with_growing_delays_answered_503_and_recovers() {
    let dir = scratch();
    let fixed = dir.path().join("fixed");
    let fixed_arg = fixed.to_str().expect("a UTF-8 temporary path");
    let mut stack = Stack::start(
        dir.path(),
        &["--workers", "1", "--status-path", "/status"],
        &["--mode", "exit-at-start", "--unless-file", fixed_arg],
    );
    let master = stack.serve.process().pid();
    let looping = wait_until(Duration::from_secs(10), || delays(&stack).len() >= 2);
    assert!(looping, "no restart delayed:\n{}", stack.logs());
    let (cpu_before, since) = (fcgi_cpu(master), Instant::now());

    // Meanwhile: 503 at once, with a Retry-After.
    for n in 0..5 {
        let started = Instant::now();
        let response = stack.get("/");
        let took = started.elapsed();
        assert_eq!(response.status, 503, "request {n}: {}\n{}", response.body_text(), stack.logs());
        assert!(response.header("Retry-After").is_some(), "{:?}", response.headers);
        assert!(took < scaled(Duration::from_millis(500)), "request {n} answered after {took:?}");
    }
    // The status page says why no program process runs.
    let status = stack.get("/status?json");
    assert_eq!(status.status, 200, "{}", status.body_text());
    let status: Value = serde_json::from_slice(&status.body).expect("the status page's JSON");
    let down = status["fcgi-rs"]["program down"].as_str().unwrap_or_default();
    assert!(down.contains("cannot start: config missing"), "{status}");

    // The delays double from 100 ms (the first restart is at once, and not logged as delayed),
    // each saying how the program ended and its last line.
    // Over a second at least, so that a loop with no delay would show in the CPU used.
    let six = wait_until(Duration::from_secs(15), || {
        delays(&stack).len() >= 5 && since.elapsed() >= Duration::from_secs(1)
    });
    assert!(six, "{:?}\n{}", delays(&stack), stack.logs());
    let (cpu_after, looped) = (fcgi_cpu(master), since.elapsed());
    // fcgi-rs idles while it waits: a twentieth of a core at most (measured: 0.01 s in
    // 1.4 s; restarts 1 ms apart took 0.19 s in 1.1 s).
    let cpu = cpu_after - cpu_before;
    assert!(cpu < 0.05 * looped.as_secs_f64() + 0.05, "{cpu:.2} s of CPU in {looped:?}");
    assert!(stack.serve.process().is_running(), "fcgi-rs died:\n{}", stack.logs());
    assert_eq!(delays(&stack)[..5], [100, 200, 400, 800, 1600], "{}", stack.logs());
    for (n, event) in stack.events("program-restart-delayed").iter().enumerate() {
        assert_eq!(event["failures"], n as u64 + 2, "{event}");
        let reason = event["reason"].as_str().unwrap_or_default();
        assert!(reason.contains("cannot start: config missing"), "{event}");
        assert!(reason.contains("status 1"), "{event}");
    }
    let stderr = stack.events("program-stderr");
    assert!(
        stderr.iter().any(|e| e["line"].as_str().unwrap_or("").contains("cannot start")),
        "the program's own line is not in the log:\n{}",
        stack.logs()
    );

    // Fixed: served again at the next restart, within the delay it was waiting out.
    std::fs::write(&fixed, "").expect("the flag file");
    let fixed_at = Instant::now();
    let longest = delays(&stack).into_iter().max().unwrap_or(0);
    let mut response = None;
    let recovered = wait_until(Duration::from_millis(longest + 2000), || {
        response = stack.nginx.get("/").ok().filter(|r| r.status == 200);
        response.is_some()
    });
    let recovered_after = fixed_at.elapsed();
    assert!(recovered, "not served {recovered_after:?} after the fix:\n{}", stack.logs());
    let pid = answered_by(&response.expect("a 200"));
    let started = stack.events("program-started");
    assert!(started.iter().any(|e| e["program_pid"] == pid), "{pid} was never started");
    let before = delays(&stack).len();
    for _ in 0..5 {
        assert_eq!(stack.ok("/"), pid, "the recovered process serves on");
    }
    assert_eq!(delays(&stack).len(), before, "restarts delayed after the recovery");
    eprintln!(
        "delays {:?}; {cpu:.2} s of CPU in {looped:?}; served {recovered_after:?} after the \
         fix",
        delays(&stack)
    );
}

#[test]
fn a_program_that_closes_its_listening_socket_is_replaced_with_a_back_off() {
    let dir = scratch();
    let mut stack = Stack::start(dir.path(), &["--workers", "1"], &["--mode", "close-fd0"]);
    // Every request is answered, never by the program and never left waiting; each process
    // that does not listen is stopped, and its replacements come later and later.
    let mut statuses = Vec::new();
    let enough = wait_until(Duration::from_secs(15), || {
        let started = Instant::now();
        let response = stack.get("/");
        let took = started.elapsed();
        assert!(took < scaled(Duration::from_secs(2)), "answered after {took:?}");
        assert!([502, 503].contains(&response.status), "{}", response.body_text());
        statuses.push(response.status);
        delays(&stack).len() >= 3
    });
    assert!(enough, "{statuses:?} {:?}\n{}", delays(&stack), stack.logs());
    let delays = delays(&stack);
    assert!(delays.windows(2).all(|w| w[0] < w[1]), "delays that do not grow: {delays:?}");
    let stopped = stack.events("program-stopped");
    assert!(stopped.iter().any(|e| e["reason"] == "no-listener"), "{}", stack.logs());
    assert!(stack.serve.process().is_running(), "fcgi-rs died:\n{}", stack.logs());
    eprintln!("answers {statuses:?}, delays {delays:?}");
}

#[test]
fn what_a_program_writes_on_stderr_and_in_fcgi_stderr_records_is_logged() {
    let dir = scratch();
    let stack = Stack::start(dir.path(), &["--workers", "1"], &["--mode", "stderr"]);
    let pid = stack.ok("/");
    let lines = |pid: u32| -> Vec<String> {
        let events = stack.events("program-stderr").into_iter();
        let mine = events.filter(|e| e["program_pid"] == pid);
        mine.map(|e| e["line"].as_str().unwrap_or_default().to_owned()).collect()
    };
    let expected = [
        format!("fault-program: started pid={pid}"),
        format!("fault-program: request 1 pid={pid}"),
        "fcgi-stderr: request 1".to_owned(),
    ];
    let all = wait_until(Duration::from_secs(10), || {
        let lines = lines(pid);
        expected.iter().all(|line| lines.contains(line))
    });
    assert!(all, "{:?}, not {expected:?}:\n{}", lines(pid), stack.logs());
    // The FCGI_STDERR record reached the web server too, as a FastCGI program's would.
    let nginx_saw = wait_until(Duration::from_secs(5), || {
        stack.nginx.error_log().contains("fcgi-stderr: request 1")
    });
    assert!(nginx_saw, "{}", stack.nginx.error_log());
}
