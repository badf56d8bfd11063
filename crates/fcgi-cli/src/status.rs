//! `fcgi status --config FILE [POOL]`: each pool of a config file as its own sockets answer,
//! from the command line: whether it is up, and with a `status-path` its status page's
//! counters (as PHP-FPM's `pm.status_path` shows them), and whether the master of the pid file
//! runs. Nothing is read from the processes but what any client of their sockets may ask.

use std::fmt::Write as _;
use std::time::Duration;

use fcgi_client::{Address, Connection, Request, Timeouts};
use serde_json::Value;

use crate::args::{RequestRole, StatusArgs};
use crate::request::cgi_params;
use crate::Failure;

/// The status page's fields shown, in FPM's order.
const FIELDS: [&str; 11] = [
    "process manager",
    "start since",
    "accepted conn",
    "listen queue",
    "max listen queue",
    "idle processes",
    "active processes",
    "total processes",
    "max active processes",
    "max children reached",
    "slow requests",
];

/// The most of an answer read: a status page (without `full`) is a few KiB.
const MAX_PAGE: usize = 1 << 20;

/// How one pool answered.
#[derive(Debug, PartialEq)]
enum State {
    /// Its status page, parsed.
    Status(Value),
    /// Its ping answered, or (with neither path) a connection was accepted.
    Up(&'static str),
    /// It could not be reached, or answered wrong.
    Down(String),
    /// No address a client can reach (its sockets are inherited).
    Unknown(&'static str),
}

pub(crate) fn run(args: StatusArgs) -> Result<(), Failure> {
    let (pools, pid_file) = fcgi_serve::configured_pools(&args.config).map_err(Failure::Usage)?;
    let chosen: Vec<_> = match &args.pool {
        Some(name) => {
            let pool = pools.iter().find(|pool| &pool.name == name).ok_or_else(|| {
                let names: Vec<&str> = pools.iter().map(|pool| pool.name.as_str()).collect();
                Failure::Usage(format!(
                    "no pool [{name}] in {} (its pools: {})",
                    args.config.display(),
                    names.join(", ")
                ))
            })?;
            vec![pool.clone()]
        }
        None => pools,
    };
    let timeout = Duration::from_secs(args.timeout);
    let mut out = String::new();
    if let Some(path) = &pid_file {
        let _ = writeln!(out, "master: {}", master_state(path));
    }
    let mut down = 0;
    for pool in &chosen {
        let addr = pool.listen.first().map(String::as_str);
        let state = match addr {
            None => State::Unknown("no listen address: its sockets are inherited"),
            Some(addr) => {
                query(addr, pool.status_path.as_deref(), pool.ping_path.as_deref(), timeout)
            }
        };
        if matches!(state, State::Down(_)) {
            down += 1;
        }
        out += &describe(&pool.name, addr.unwrap_or("-"), &state);
    }
    print!("{out}");
    match down {
        0 => Ok(()),
        n => Err(Failure::Runtime(format!("{n} of {} pools down", chosen.len()))),
    }
}

/// Asks the pool at `addr`: its status page (json) if it has one, else its ping, else only
/// whether it accepts a connection.
fn query(addr: &str, status: Option<&str>, ping: Option<&str>, timeout: Duration) -> State {
    let address: Address = match addr.parse() {
        Ok(address) => address,
        Err(_) => return State::Unknown("not an address a client can connect to"),
    };
    let mut conn = match Connection::connect_with(&address, Timeouts::all(timeout)) {
        Ok(conn) => conn,
        Err(e) => return State::Down(e.to_string()),
    };
    let path = match (status, ping) {
        (Some(status), _) => format!("{status}?json"),
        (None, Some(ping)) => ping.to_owned(),
        (None, None) => {
            return State::Up("accepts connections; no status-path or ping-path to ask")
        }
    };
    let params = cgi_params(&path, None, RequestRole::Responder, &[], None);
    let mut response = match conn.request(Request::new().params(params)) {
        Ok(response) => response,
        Err(e) => return State::Down(e.to_string()),
    };
    let code = response.status();
    let mut body = Vec::new();
    let mut buf = [0; 16 * 1024];
    loop {
        match response.read_body(&mut buf) {
            Ok(0) => break,
            // A status page is a few KiB: a peer that sends more is not one, and is not read
            // to its end.
            Ok(n) if body.len() + n > MAX_PAGE => {
                return State::Down(format!(
                    "{path}: more than {MAX_PAGE} bytes, not a status page"
                ))
            }
            Ok(n) => body.extend_from_slice(&buf[..n]),
            Err(e) => return State::Down(e.to_string()),
        }
    }
    if code != 200 {
        return State::Down(format!("{path} answered {code}"));
    }
    if status.is_none() {
        return State::Up("ping answered");
    }
    match serde_json::from_slice(&body) {
        Ok(page) => State::Status(page),
        Err(e) => State::Down(format!("{path}: not a status page ({e})")),
    }
}

/// A pool's lines: `[NAME] STATE: ADDR`, then its counters.
fn describe(name: &str, addr: &str, state: &State) -> String {
    let mut out = String::new();
    match state {
        State::Status(page) => {
            let _ = writeln!(out, "[{name}] up: {addr}");
            for field in FIELDS {
                let value = match &page[field] {
                    Value::String(text) => text.clone(),
                    Value::Null => "-".to_owned(),
                    other => other.to_string(),
                };
                let _ = writeln!(out, "    {:<22}{value}", format!("{field}:"));
            }
        }
        State::Up(how) => {
            let _ = writeln!(out, "[{name}] up: {addr} ({how})");
        }
        State::Down(why) => {
            let _ = writeln!(out, "[{name}] down: {addr} ({why})");
        }
        State::Unknown(why) => {
            let _ = writeln!(out, "[{name}] unknown: {addr} ({why})");
        }
    }
    out
}

/// Whether the pid file names a running process.
fn master_state(path: &std::path::Path) -> String {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) => return format!("not running ({}: {e})", path.display()),
    };
    let Ok(pid) = text.trim().parse::<u32>() else {
        return format!("unknown ({} holds no pid)", path.display());
    };
    if let Ok(comm) = std::fs::read_to_string(format!("/proc/{pid}/comm")) {
        format!("pid {pid}, running ({})", comm.trim())
    } else {
        format!("not running ({} names pid {pid}, which is gone)", path.display())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_state_is_one_line_and_the_page_fpms_fields() {
        let page =
            serde_json::json!({"pool": "www", "process manager": "static", "accepted conn": 7});
        let text = describe("www", "unix:/run/www.sock", &State::Status(page));
        assert!(text.starts_with("[www] up: unix:/run/www.sock\n"), "{text}");
        assert!(text.contains("\n    process manager:      static\n"), "{text}");
        assert!(text.contains("\n    accepted conn:        7\n"), "{text}");
        assert!(text.contains("\n    slow requests:        -\n"), "{text}");
        let down = describe("git", "unix:/x", &State::Down("refused".into()));
        assert_eq!(down, "[git] down: unix:/x (refused)\n");
    }
}
