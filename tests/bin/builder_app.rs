//! `fcgi-builder-app`: a server as an application writes one with `Server::builder()` and
//! nothing more (no logger, no signal handling of its own), for
//! tests/integration/app/builder_app.rs.
//!
//! ```text
//! fcgi-builder-app SOCKET [--access-log]
//! ```
//!
//! By SCRIPT_NAME: `/hold` creates `SOCKET.running`, then waits (10 s at most) for
//! `SOCKET.release` to exist and answers `released`; `/fail-after-header` sends its header and
//! 1,000 bytes and `the database went away` on FCGI_STDERR, then fails; anything else
//! answers `ok`. With `--access-log`, [`Config::access_log`] is on.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use fcgi_server::{Config, ListenOptions, Listener, Request, Response, Server};

fn handle(
    socket: &std::path::Path,
    request: &mut Request,
    response: &mut Response,
) -> Result<(), fcgi_server::Error> {
    let sibling = |suffix: &str| {
        let mut path = socket.as_os_str().to_owned();
        path.push(suffix);
        PathBuf::from(path)
    };
    match request.script_name() {
        Some("/hold") => {
            std::fs::write(sibling(".running"), "")?;
            let release = sibling(".release");
            let deadline = Instant::now() + Duration::from_secs(10);
            while !release.exists() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            response.write_all(b"released")?;
            Ok(())
        }
        Some("/fail-after-header") => {
            response.header("Content-Type", "text/plain")?;
            response.write_all(&[b'x'; 1000])?;
            response.write_stderr(b"the database went away\n")?;
            response.flush()?;
            Err("the database went away".into())
        }
        _ => {
            response.write_all(b"ok")?;
            Ok(())
        }
    }
}

fn main() -> std::io::Result<ExitCode> {
    let mut args = std::env::args().skip(1);
    let Some(socket) = args.next().map(PathBuf::from) else {
        eprintln!("usage: fcgi-builder-app SOCKET [--access-log]");
        return Ok(ExitCode::from(2));
    };
    let access_log = args.next().as_deref() == Some("--access-log");
    // `?` on the bind error: main prints it as a sentence (ListenError's Debug).
    let listener =
        Listener::bind(&format!("unix:{}", socket.display()).parse()?, &ListenOptions::default())?;
    let config = Config { access_log, ..Config::default() };
    let path = socket.clone();
    let server = Server::builder()
        .listener(listener)
        .config(config)
        .responder(move |request, response| handle(&path, request, response))
        .build();
    let report = server.serve()?;
    println!("served {} requests, {} unfinished", report.requests, report.unfinished);
    Ok(ExitCode::SUCCESS)
}
