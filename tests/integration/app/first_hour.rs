//! An application's first hour: `fcgi_server::serve` in one call (the `hello` example of
//! fcgi-server, run as a real process), the request helpers (`path`, `query`, `header_str`),
//! and warnings on standard error when no logger was given.

use std::fs;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use fcgi_codec::{Role, StreamKind};
use fcgi_server::{Request, Response};
use fcgi_tests::addr::Addr;
use fcgi_tests::inproc::{self, TestServer};
use fcgi_tests::nginx::scratch;
use fcgi_tests::process::{wait_until, Guarded};
use fcgi_tests::raw::{frames, Client};

/// The `hello` example, built with the tests (`cargo test --all-targets` builds examples).
fn hello_example() -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable has a path");
    let debug = exe.parent().and_then(|deps| deps.parent()).expect("target/<profile>");
    let bin = debug.join("examples").join("hello");
    assert!(bin.exists(), "{} is missing: `cargo build --examples -p fcgi-server`", bin.display());
    bin
}

#[test]
fn the_hello_example_serves_and_drains_on_term() {
    let dir = scratch();
    let socket = dir.path().join("hello.sock");
    let mut command = Command::new(hello_example());
    command.arg(format!("unix:{}", socket.display()));
    let log = dir.path().join("hello.log");
    let mut hello = Guarded::spawn("hello example", command, &log);
    let addr = Addr::Unix(socket.clone());
    assert!(wait_until(Duration::from_secs(10), || addr.accepts()), "it never listened");

    let mut client = Client::connect(&addr);
    let reply = client.simple_request(&[("QUERY_STRING", "name=fcgi+rs%21")], b"");
    reply.assert_complete(200);
    assert_eq!(reply.body_text(), "Hello, fcgi rs!!");

    // No logger was given: a warning still reaches standard error.
    let mut bad = Client::connect(&addr);
    bad.send_begin(1, Role::Responder, true);
    bad.send_ok(&frames::stream(StreamKind::Params, 1, &[0x80, 0, 0, 9]));
    bad.send_ok(&frames::end(StreamKind::Params, 1));
    assert_eq!(bad.read_reply(1).status, 400);
    let warned = wait_until(Duration::from_secs(5), || {
        fs::read_to_string(&log).unwrap_or_default().contains("WARN: params refused")
    });
    assert!(warned, "{}", fs::read_to_string(&log).unwrap_or_default());

    hello.signal(libc::SIGTERM);
    let status = hello.wait_exit(Duration::from_secs(10)).expect("it stopped on TERM");
    assert!(status.success(), "{status:?}");
    assert!(!socket.exists(), "its socket file is removed");
}

#[test]
fn path_query_and_headers_need_no_hand_parsing() {
    let describe =
        |request: &mut Request, response: &mut Response| -> Result<(), fcgi_server::Error> {
            use std::io::Write;
            write!(
                response,
                "{}|{:?}|{:?}|{:?}",
                request.path(),
                request.query(),
                request.query_value("page"),
                request.header_str("Accept")
            )?;
            Ok(())
        };
    let server = TestServer::start(inproc::config(), |b| b.responder(describe));
    let mut client = server.connect();
    let params = [
        ("REQUEST_URI", "/items/7?q=a+b&page=2"),
        ("QUERY_STRING", "q=a+b&page=2"),
        ("HTTP_ACCEPT", "application/json"),
    ];
    let reply = client.simple_request(&params, b"");
    assert_eq!(
        reply.body_text(),
        r#"/items/7|[("q", "a b"), ("page", "2")]|Some("2")|Some("application/json")"#
    );
    // Without REQUEST_URI: SCRIPT_NAME and PATH_INFO.
    let params = [("SCRIPT_NAME", "/app"), ("PATH_INFO", "/x")];
    assert_eq!(client.simple_request(&params, b"").body_text(), "/app/x|[]|None|None");
}
