//! `fcgi-fallback-log`: a server built with no logger of its own, so that fcgi-server logs
//! through its fallback (warnings and errors on standard error), for
//! tests/integration/logs/log_forging.rs.
//!
//! ```text
//! fcgi-fallback-log SOCKET
//! ```
//!
//! By SCRIPT_NAME: `/fail` fails with an error that quotes the request's URI (logged as
//! "handler failed"), `/slow` runs 600 ms, past the 100 ms slow-request limit (logged as a
//! slow request, with its method, URI, remote address and script); anything else answers at
//! once.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use fcgi_server::{Config, ListenOptions, Listener, Request, Response, Server};

fn handle(request: &mut Request, response: &mut Response) -> Result<(), fcgi_server::Error> {
    match request.script_name() {
        Some("/fail") => {
            let uri = request.request_uri().unwrap_or("-");
            Err(format!("nothing at {uri}").into())
        }
        Some("/slow") => {
            std::thread::sleep(Duration::from_millis(600));
            response.write_all(b"slept")?;
            Ok(())
        }
        _ => {
            response.write_all(b"ok")?;
            Ok(())
        }
    }
}

fn main() -> ExitCode {
    let Some(socket) = std::env::args().nth(1) else {
        eprintln!("usage: fcgi-fallback-log SOCKET");
        return ExitCode::from(2);
    };
    let listener = match format!("unix:{socket}").parse() {
        Ok(addr) => Listener::bind(&addr, &ListenOptions::default()),
        Err(e) => {
            eprintln!("fcgi-fallback-log: {e}");
            return ExitCode::from(2);
        }
    };
    let listener = match listener {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("fcgi-fallback-log: {e}");
            return ExitCode::FAILURE;
        }
    };
    let config = Config { slow_request: Some(Duration::from_millis(100)), ..Config::default() };
    let server = Server::builder().config(config).listener(listener).responder(handle).build();
    match server.serve() {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("fcgi-fallback-log: {e}");
            ExitCode::FAILURE
        }
    }
}
