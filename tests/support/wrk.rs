//! Load from wrk (tests/deps.sh installs it) against a loopback port, with its summary parsed:
//! requests completed, non-2xx/3xx answers and socket errors.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread;

/// wrk's script for [`Wrk::post`].
const POST_SCRIPT: &str = r#"wrk.method = "POST"
wrk.body = string.rep("x", 1000)
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
"#;

/// What one wrk run reported.
#[derive(Debug)]
pub struct Wrk {
    /// wrk's standard output and error, for assertion messages.
    pub output: String,
}

impl Wrk {
    /// Runs `wrk -t2 -cCONNS -dSECS --timeout 10s http://127.0.0.1:PORT/PATH` on a thread of
    /// its own; join the handle for the report.
    pub fn start(port: u16, conns: u32, seconds: u32, path: &str) -> thread::JoinHandle<Wrk> {
        Wrk::run(port, conns, seconds, path, None)
    }

    /// As [`start`](Wrk::start), every request a POST with a 1,000-byte form body: nginx
    /// retries a GET that meets a connection closing under it on another connection, never a
    /// POST (it is not idempotent), so POSTs show every such failure. The script goes in `dir`.
    pub fn post(
        port: u16,
        conns: u32,
        seconds: u32,
        path: &str,
        dir: &Path,
    ) -> thread::JoinHandle<Wrk> {
        let script = dir.join("post.lua");
        std::fs::write(&script, POST_SCRIPT).expect("write wrk's script");
        Wrk::run(port, conns, seconds, path, Some(script))
    }

    fn run(
        port: u16,
        conns: u32,
        seconds: u32,
        path: &str,
        script: Option<PathBuf>,
    ) -> thread::JoinHandle<Wrk> {
        let url = format!("http://127.0.0.1:{port}{path}");
        thread::spawn(move || {
            let mut command = Command::new("wrk");
            command.args([
                "-t2",
                &format!("-c{conns}"),
                &format!("-d{seconds}s"),
                "--timeout",
                "10s",
            ]);
            if let Some(script) = &script {
                command.arg("-s").arg(script);
            }
            let output = command.arg(&url).output().expect("wrk runs (tests/deps.sh installs it)");
            let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
            text += &String::from_utf8_lossy(&output.stderr);
            Wrk { output: text }
        })
    }

    /// Requests completed (`N requests in 6.00s`); 0 if wrk printed no summary.
    pub fn requests(&self) -> u64 {
        self.output
            .lines()
            .find(|l| l.contains(" requests in "))
            .and_then(|l| l.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    }

    /// Answers other than 2xx and 3xx (wrk prints the line only when there are some).
    pub fn non_2xx(&self) -> u64 {
        self.output
            .lines()
            .find_map(|l| l.trim().strip_prefix("Non-2xx or 3xx responses:"))
            .map_or(0, |n| n.trim().parse().unwrap_or(u64::MAX / 2))
    }

    /// Socket errors of every kind: connect, read, write, timeout (wrk prints the line only
    /// when there are some).
    pub fn socket_errors(&self) -> u64 {
        self.output.lines().find_map(|l| l.trim().strip_prefix("Socket errors:")).map_or(
            0,
            |rest| {
                rest.split(',')
                    .filter_map(|part| part.split_whitespace().last())
                    .map(|n| n.parse::<u64>().unwrap_or(u64::MAX / 4))
                    .sum()
            },
        )
    }

    /// Failed requests as a client sees them: non-2xx/3xx answers plus socket errors.
    pub fn failures(&self) -> u64 {
        self.non_2xx() + self.socket_errors()
    }
}

#[cfg(test)]
mod tests {
    use super::Wrk;

    #[test]
    fn summaries_are_parsed() {
        let clean = "Running 6s test @ http://127.0.0.1:1/\n  2 threads and 16 connections\n\
                     12345 requests in 6.00s, 1.2MB read\nRequests/sec: 2057.5\n";
        let failed = "  120 requests in 6.00s, 1.2MB read\n  \
                      Socket errors: connect 0, read 3, write 1, timeout 2\n  \
                      Non-2xx or 3xx responses: 4\n";
        let cases = [(clean, 12345, 0, 0), (failed, 120, 4, 6), ("", 0, 0, 0)];
        for (output, requests, non_2xx, socket_errors) in cases {
            let wrk = Wrk { output: output.to_owned() };
            assert_eq!(wrk.requests(), requests, "{output}");
            assert_eq!(wrk.non_2xx(), non_2xx, "{output}");
            assert_eq!(wrk.socket_errors(), socket_errors, "{output}");
            assert_eq!(wrk.failures(), non_2xx + socket_errors, "{output}");
        }
    }
}
