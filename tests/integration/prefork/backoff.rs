//! The crash back-off of the prefork master, per place in the pool: a request that kills
//! whichever worker serves it (a "request of death") must never leave the pool without a
//! worker for longer than one respawn, however many times it comes.

use std::time::{Duration, Instant};

use fcgi_tests::master::{fcgi_request, Served};
use fcgi_tests::nginx::scratch;

#[test]
fn after_nine_crashes_in_a_row_a_request_is_served_within_one_respawn() {
    // One worker: every crash empties the pool. Two: the crashes spread over both places.
    for workers in [1, 2] {
        nine_crashes_then_a_request(workers);
    }
}

fn nine_crashes_then_a_request(workers: usize) {
    let dir = scratch();
    let setting = format!("workers={workers}");
    let served = Served::sleepy(dir.path(), "sleepy", &[&setting], workers);
    let started = Instant::now();
    for round in 1..=9 {
        // Each kills the worker that takes it; the next waits in the socket's backlog for a
        // worker, if none is left.
        let (code, body) = fcgi_request(&served.socket, "/x?die", 30);
        assert_ne!(code, Some(0), "round {round}: the request of death got an answer: {body}");
    }
    let crashed_at = Instant::now();
    let crashing = crashed_at - started;
    let (code, body) = fcgi_request(&served.socket, "/x", 10);
    let served_after = crashed_at.elapsed();
    assert_eq!(code, Some(0), "{body}\n{}", served.log_text());
    assert!(body.starts_with("slept 0 ms"), "{body}");
    // One respawn (a fork, the app built, the first report) takes tens of milliseconds; a
    // back-off shared by the pool held every respawn 12.8 s after 9 crashes.
    assert!(served_after < Duration::from_secs(2), "{workers}: served after {served_after:?}");
    eprintln!(
        "{workers} workers: 9 crashes in a row in {crashing:?}, then a request served after \
         {served_after:?}"
    );
}
