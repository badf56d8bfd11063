//! `fcgi-handler-app`: a `fcgi_server::Handler` app with all of `fcgi serve`, through
//! `fcgi_serve::run`. It answers which process served it.

use std::io::Write;
use std::process::ExitCode;

use fcgi_server::{Error, Handler, Request, Response};

/// Answers `served by PID`.
struct Pid;

impl Handler for Pid {
    fn handle(&self, _: &mut Request, response: &mut Response) -> Result<(), Error> {
        response.header("Content-Type", "text/plain")?;
        write!(response, "served by {}", std::process::id())?;
        Ok(())
    }
}

fn main() -> ExitCode {
    fcgi_serve::run(|| Pid)
}
