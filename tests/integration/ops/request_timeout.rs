//! `--request-timeout` is how long the web server waits, as PHP-FPM's
//! `request_terminate_timeout`: at that moment the request is answered, `504` if nothing of it
//! was sent, cut short so that the client sees it otherwise, whatever the graceful timeout;
//! then the worker retires, and a new one serves. Through nginx's kept connections
//! (`nginx/fcgi-keepalive.conf`), where a cut shows as curl's exit 18.

use std::process::Command;
use std::time::{Duration, Instant};

use fcgi_tests::master::{fcgi_request, Served};
use fcgi_tests::nginx::scratch;
use fcgi_tests::process::wait_until;

/// Waits until a worker other than the `old` ones serves, and returns its pid (the body says
/// who answered). The old ones may linger, retiring, for as long as their requests run.
fn a_new_worker_serves(served: &Served, old: &[u32]) -> u32 {
    let mut new = 0;
    let found = wait_until(Duration::from_secs(10), || {
        new = served.workers().into_iter().find(|p| !old.contains(p)).unwrap_or(0);
        new != 0
    });
    assert!(found, "no replacement for {old:?}:\n{}", served.log_text());
    let (code, body) = fcgi_request(&served.socket, "/x", 10);
    assert_eq!(code, Some(0), "{body}");
    assert!(body.ends_with(&new.to_string()), "answered by {new}, not {old:?}: {body}");
    new
}

#[test]
fn a_request_past_the_request_timeout_is_answered_then_its_worker_retires() {
    let dir = scratch();
    let settings = ["workers=1", "request_timeout_ms=1000", "graceful_ms=30000"];
    let mut served = Served::sleepy(dir.path(), "sleepy", &settings, 1);
    let nginx = served.nginx(dir.path());
    let first = served.workers()[0];

    // Nothing sent yet: 504 at the timeout, not when the handler (10 s) or the graceful
    // timeout (30 s) ends.
    let started = Instant::now();
    let response = fcgi_tests::http::get(nginx.port(), "/x?ms=10000").expect("an answer");
    let answered_after = started.elapsed();
    assert_eq!(response.status, 504, "{}\n{}", response.body_text(), served.log_text());
    assert!(answered_after >= Duration::from_millis(900), "{answered_after:?}");
    assert!(answered_after < Duration::from_secs(3), "{answered_after:?}");
    a_new_worker_serves(&served, &[first]);

    // Part of it sent: cut short, so that the client sees a truncated answer (curl's 18),
    // not a short one that looks whole.
    let started = Instant::now();
    let url = format!("http://127.0.0.1:{}/x?part_then_hang", nginx.port());
    let curl = Command::new("curl")
        .args(["-sS", "-m", "20", "-o", "/dev/null", "-w", "%{http_code} %{size_download}"])
        .arg(&url)
        .output()
        .expect("curl runs");
    let cut_after = started.elapsed();
    let written = String::from_utf8_lossy(&curl.stdout).into_owned();
    assert_eq!(curl.status.code(), Some(18), "{written}\n{}", served.log_text());
    assert_eq!(written, "200 1000", "the header and the part sent arrived");
    assert!(cut_after >= Duration::from_millis(900), "{cut_after:?}");
    assert!(cut_after < Duration::from_secs(3), "{cut_after:?}");
    // Whichever worker it reached (the retiring one answers what arrives on a kept connection
    // before it hands the connection over), a worker that is not retiring serves next.
    let (code, body) = fcgi_request(&served.socket, "/x", 10);
    assert_eq!(code, Some(0), "{body}");
    assert!(!body.ends_with(&first.to_string()), "answered by the retiring {first}: {body}");
    eprintln!("504 after {answered_after:?}; cut short after {cut_after:?}");
    // Stopped at once: the hung handlers would hold a graceful stop for 30 s.
    served.process.signal(libc::SIGQUIT);
    assert!(served.process.wait_exit(Duration::from_secs(10)).is_some());
}
