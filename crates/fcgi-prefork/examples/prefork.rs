//! An app served by a prefork master: 4 workers (`WORKERS` changes it), each building the app
//! anew from `GREETING`; `kill -HUP` the master re-reads both and replaces the workers without
//! failing a request, TERM drains, USR2 upgrades the binary.
//!
//! `GREETING=Hi cargo run -p fcgi-prefork --example prefork -- unix:/tmp/prefork.sock`
use std::io::Write;

use fcgi_prefork::{Master, Settings, Worker, Workload};
use fcgi_server::{ListenOptions, Listener, Server};
use slog::{o, Drain, Logger};

struct App {
    greeting: String,
    log: Logger,
}

impl Workload for App {
    fn run_worker(&mut self, mut worker: Worker) -> i32 {
        let greeting = self.greeting.clone();
        let listeners = worker.take_listeners();
        let server = Server::builder()
            .listeners(listeners)
            .responder(move |_request, response| {
                write!(response, "{greeting} from worker {}", std::process::id())?;
                Ok(())
            })
            .build();
        match worker.serve(server, &self.log) {
            Ok(_) => 0,
            Err(_) => 1,
        }
    }

    fn reload(&mut self, _current: &Settings) -> Result<Settings, String> {
        self.greeting = greeting();
        settings()
    }
}

fn greeting() -> String {
    std::env::var("GREETING").unwrap_or_else(|_| "Hello".into())
}

fn settings() -> Result<Settings, String> {
    let workers = std::env::var("WORKERS").ok().and_then(|n| n.parse().ok()).unwrap_or(4);
    Ok(Settings { workers, ..Settings::default() })
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "unix:/tmp/prefork.sock".into());
    // Synchronous: the master forks, and must have started no thread.
    let log = Logger::root(
        std::sync::Mutex::new(slog_json::Json::default(std::io::stderr())).fuse(),
        o!(),
    );
    let listeners = match fcgi_prefork::inherited_listeners()? {
        Some(inherited) => inherited, // after a USR2 upgrade
        None => vec![Listener::bind(&addr.parse()?, &ListenOptions::default())?],
    };
    let master = Master::new(settings()?, listeners, log.clone())?;
    master.run(&mut App { greeting: greeting(), log })?;
    Ok(())
}
