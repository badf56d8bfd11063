//! `fcgi-sleepy`: a prefork FastCGI server written the way an app author uses fcgi-prefork,
//! with a handler whose duration the request chooses. The process tests use it for slow and
//! hung requests, which the built-in apps of `fcgi serve` do not make.
//!
//! ```text
//! fcgi-sleepy SOCKET [NAME=VALUE...]
//!   workers=N model=static|dynamic min_spare=N max_spare=N max_workers=N
//!   worker_timeout_ms=N graceful_ms=N request_timeout_ms=N kill_grace_ms=N pid_file=PATH
//! ```
//!
//! Requests: `?ms=N` answers after N ms; `?hang` never answers; `?part_then_hang` sends its
//! header and 1,000 bytes, then never ends; `?die` kills the worker that serves it (a request
//! of death: abort, as a crash in native code would); anything else at once. The body says
//! which worker (pid) answered.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use fcgi_prefork::{Master, ProcessModel, Settings, Worker, Workload};
use fcgi_server::{ListenOptions, Listener, Request, Response, Server};
use slog::{o, Drain, Logger};

struct Sleepy {
    log: Logger,
}

impl Workload for Sleepy {
    fn run_worker(&mut self, mut worker: Worker) -> i32 {
        let builder =
            worker.take_listeners().into_iter().fold(Server::builder(), |b, l| b.listener(l));
        let server =
            builder.logger(self.log.new(o!("worker" => worker.id()))).responder(handle).build();
        match worker.serve(server, &self.log) {
            Ok(_) => 0,
            Err(_) => 1,
        }
    }
}

fn handle(request: &mut Request, response: &mut Response) -> Result<(), fcgi_server::Error> {
    let query = request.param_str("QUERY_STRING").unwrap_or_default().to_owned();
    // Tests wait for this line to know that a request is running in a worker.
    eprintln!("request started: ?{query}");
    let has = |word: &str| query.split('&').any(|pair| pair == word);
    if has("die") {
        std::process::abort();
    }
    if has("part_then_hang") {
        response.header("Content-Type", "text/plain")?;
        response.write_all(&[b'x'; 1000])?;
        response.flush()?;
    }
    if has("hang") || has("part_then_hang") {
        loop {
            std::thread::sleep(Duration::from_secs(3600));
        }
    }
    let ms = query
        .split('&')
        .find_map(|pair| pair.strip_prefix("ms="))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    std::thread::sleep(Duration::from_millis(ms));
    response.header("Content-Type", "text/plain")?;
    write!(response, "slept {ms} ms in {}", std::process::id())?;
    Ok(())
}

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let Some(socket) = args.next() else {
        eprintln!("usage: fcgi-sleepy SOCKET [NAME=VALUE...]");
        return ExitCode::from(2);
    };
    let mut settings = Settings::default();
    let mut pid_file = None;
    for arg in args {
        let Some((name, value)) = arg.split_once('=') else {
            eprintln!("not NAME=VALUE: {arg}");
            return ExitCode::from(2);
        };
        let number = || value.parse::<u64>().unwrap_or(0);
        let ms = || Duration::from_millis(number());
        let count = || usize::try_from(number()).unwrap_or(0);
        match name {
            "workers" => settings.workers = count(),
            "model" => {
                settings.model =
                    if value == "dynamic" { ProcessModel::Dynamic } else { ProcessModel::Static }
            }
            "min_spare" => settings.min_spare = count(),
            "max_spare" => settings.max_spare = count(),
            "max_workers" => settings.max_workers = count(),
            "worker_timeout_ms" => settings.worker_timeout = ms(),
            "graceful_ms" => settings.graceful_timeout = ms(),
            "request_timeout_ms" => settings.request_timeout = Some(ms()),
            "kill_grace_ms" => settings.kill_grace = ms(),
            "pid_file" => pid_file = Some(PathBuf::from(value)),
            _ => {
                eprintln!("unknown setting: {name}");
                return ExitCode::from(2);
            }
        }
    }
    // Synchronous: the master forks, and must have no thread.
    let decorator = slog_term::PlainSyncDecorator::new(std::io::stderr());
    let log = Logger::root(
        slog_term::FullFormat::new(decorator).build().fuse(),
        o!("pid" => std::process::id()),
    );
    let listeners = match fcgi_prefork::inherited_listeners() {
        Ok(Some(inherited)) => inherited,
        Ok(None) => match socket.parse().map_err(|e| format!("{e}")).and_then(|addr| {
            Listener::bind(&addr, &ListenOptions::default()).map_err(|e| e.to_string())
        }) {
            Ok(listener) => vec![listener],
            Err(e) => {
                eprintln!("fcgi-sleepy: {e}");
                return ExitCode::FAILURE;
            }
        },
        Err(e) => {
            eprintln!("fcgi-sleepy: {e}");
            return ExitCode::FAILURE;
        }
    };
    let master = match Master::new(settings, listeners, log.clone()) {
        Ok(master) => master,
        Err(e) => {
            eprintln!("fcgi-sleepy: {e}");
            return ExitCode::from(2);
        }
    };
    let master = match pid_file {
        Some(path) => master.pid_file(path),
        None => master,
    };
    match master.run(&mut Sleepy { log }) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("fcgi-sleepy: {e}");
            ExitCode::FAILURE
        }
    }
}
