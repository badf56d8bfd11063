//! The echo server that most protocol tests in this directory run against, and the checks they
//! make on it: one place for what they share, so that each file keeps to its subject.
//!
//! Each test starts its own server in this process (`support/inproc.rs`); the one that counts
//! the threads and memory of idle connections in the real `fcgi` binary is a binary of its own,
//! tests/idle_connections.rs. The client is `support/raw.rs`: it writes exactly the records a
//! test builds and reads records back with a timeout, so a server that never answers fails a
//! test instead of hanging it.
//! Waits are bounded: channels with timeouts, [`wait_until`](fcgi_tests::process::wait_until),
//! read timeouts. Time is only waited out where it is the subject, and the file says so: a
//! request sent in 20 pieces 200 ms apart (slow_clients.rs), a 1 s request during a graceful
//! stop, and the second a draining server takes to sweep its connections (graceful.rs).

use std::io::{Read, Write};
use std::time::Duration;

use fcgi_server::{Request, Response};
use fcgi_tests::inproc::{self, TestServer};
use fcgi_tests::raw::{Client, Frame, FrameKind};

/// What a handler of these tests returns.
pub(super) type HandlerResult = Result<(), fcgi_server::Error>;

/// How long a test waits for something a handler signals.
pub(super) const SIGNAL: Duration = Duration::from_secs(10);

/// Answers the `SAY` param (empty if absent), a colon, and the request body.
pub(super) fn echo(request: &mut Request, response: &mut Response) -> HandlerResult {
    let mut body = Vec::new();
    request.body().read_to_end(&mut body)?;
    response.header("Content-Type", "text/plain")?;
    response.write_all(request.param("SAY").unwrap_or_default())?;
    response.write_all(b":")?;
    response.write_all(&body)?;
    Ok(())
}

/// A server in this process whose Responder is [`echo`], with the tests' configuration.
pub(super) fn echo_server() -> TestServer {
    TestServer::start(inproc::config(), |b| b.responder(echo))
}

/// A request `SAY`ing `say`, with `body`, on a kept connection; checks the echo.
#[track_caller]
pub(super) fn assert_echo(client: &mut Client, say: &str, body: &[u8]) {
    let reply = client.simple_request(&[("SAY", say)], body);
    reply.assert_complete(200);
    let mut expected = format!("{say}:").into_bytes();
    expected.extend_from_slice(body);
    assert_eq!(reply.body_text(), String::from_utf8_lossy(&expected));
}

/// Sends GET_VALUES and reads the next record, which must be its answer: everything sent
/// before it has been acted on, and nothing was answered for it.
#[track_caller]
pub(super) fn barrier(client: &mut Client) {
    let frame = client.barrier();
    assert_eq!(
        frame,
        Frame {
            request_id: 0,
            kind: FrameKind::GetValuesResult(vec![(b"FCGI_MPXS_CONNS".to_vec(), b"1".to_vec())])
        },
        "records sent before the barrier were answered"
    );
}
