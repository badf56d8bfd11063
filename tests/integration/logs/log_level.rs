//! `--log-level debug` prints debug lines from the binary under test: the debug build with
//! `cargo test`, the release build that ships with `cargo test --release` (slog leaves debug
//! lines out of a release build unless told otherwise; the binary's Cargo.toml tells it).

use std::time::Duration;

use fcgi_tests::addr::Transport;
use fcgi_tests::nginx::scratch;
use fcgi_tests::process::{wait_until, FcgiServe};
use fcgi_tests::raw::Client;
use serde_json::Value;

/// The JSON lines of `log` at `level`.
fn lines_at(log: &str, level: &str) -> Vec<Value> {
    log.lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|line| line["level"] == level)
        .collect()
}

#[test]
fn log_level_debug_prints_debug_lines() {
    let dir = scratch();
    let args = ["--log-level", "debug", "--log-format", "json"];
    let serve = FcgiServe::start(dir.path(), "debug", "hello", Transport::Unix, &args);
    let reply = Client::connect(serve.addr()).simple_request(&[("REQUEST_METHOD", "GET")], b"");
    reply.assert_complete(200);
    // A connection's acceptance is a debug line.
    let accepted =
        || lines_at(&serve.log(), "DEBG").iter().any(|line| line["msg"] == "connection accepted");
    assert!(wait_until(Duration::from_secs(10), accepted), "no debug line:\n{}", serve.log());
}

#[test]
fn log_level_info_prints_no_debug_line() {
    let dir = scratch();
    let args = ["--log-level", "info", "--log-format", "json", "--access-log"];
    let serve = FcgiServe::start(dir.path(), "info", "hello", Transport::Unix, &args);
    let reply = Client::connect(serve.addr()).simple_request(&[("REQUEST_METHOD", "GET")], b"");
    reply.assert_complete(200);
    // The request's record is logged after its connection's debug line would have been.
    let recorded = || lines_at(&serve.log(), "INFO").iter().any(|line| line["msg"] == "request");
    assert!(wait_until(Duration::from_secs(10), recorded), "{}", serve.log());
    assert!(lines_at(&serve.log(), "DEBG").is_empty(), "{}", serve.log());
}
