//! `fcgi serve --app exec` running `fcgi-fault-program` (`tests/bin/fault_program.rs`), a
//! FastCGI program that fails as its arguments say, behind a real nginx with kept connections
//! (`nginx/fcgi-keepalive.conf`): what `tests/integration/exec/faults.rs` and
//! `tests/integration/exec/start_faults.rs` start, and how they read the answers and the JSON log.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::addr::Transport;
use crate::http::HttpResponse;
use crate::nginx::{Nginx, Site};
use crate::process::{fcgi_bin, wait_until, FcgiServe};

/// `fcgi serve --app exec ... -- fcgi-fault-program ...` and nginx in front of it.
#[derive(Debug)]
pub struct Stack {
    /// fcgi-rs.
    pub serve: FcgiServe,
    /// nginx, with `nginx/fcgi-keepalive.conf`.
    pub nginx: Nginx,
}

impl Stack {
    /// Starts fcgi-rs with the serve `options` and the fault program with `program`'s
    /// arguments, and nginx in front.
    pub fn start(dir: &Path, options: &[&str], program: &[&str]) -> Stack {
        let bin = fcgi_bin().with_file_name("fcgi-fault-program");
        assert!(bin.exists(), "{} is missing: `cargo build -p fcgi-tests --bins`", bin.display());
        let bin = bin.to_str().expect("a UTF-8 target path").to_owned();
        let mut extra = vec!["--log-format", "json"];
        extra.extend_from_slice(options);
        extra.extend_from_slice(&["--", &bin]);
        extra.extend_from_slice(program);
        let serve = FcgiServe::start(dir, "exec", "exec", Transport::Unix, &extra);
        let nginx = Nginx::start(dir, Site::Keepalive, &serve.addr().site_vars());
        Stack { serve, nginx }
    }

    /// fcgi-rs's log and nginx's error log, for a failure's message.
    pub fn logs(&self) -> String {
        format!("fcgi-rs:\n{}\nnginx:\n{}", self.serve.log(), self.nginx.error_log())
    }

    /// `GET path` through nginx.
    pub fn get(&self, path: &str) -> HttpResponse {
        self.nginx.get(path).unwrap_or_else(|e| panic!("GET {path}: {e}\n{}", self.logs()))
    }

    /// `GET path`, which must be answered 200 by the program: the pid that answered.
    pub fn ok(&self, path: &str) -> u32 {
        let response = self.get(path);
        assert_eq!(response.status, 200, "GET {path}: {}\n{}", response.body_text(), self.logs());
        answered_by(&response)
    }

    /// The log's lines whose `event` is `event`, in order.
    pub fn events(&self, event: &str) -> Vec<Value> {
        let log = self.serve.log();
        let lines = log.lines().filter_map(|line| serde_json::from_str::<Value>(line).ok());
        lines.filter(|line| line["event"] == event).collect()
    }

    /// Waits until the log has an `event` line for program `pid`, and returns it.
    pub fn wait_event(&self, event: &str, pid: u32) -> Value {
        let mut found = None;
        wait_until(Duration::from_secs(10), || {
            found = self.events(event).into_iter().find(|e| e["program_pid"] == pid);
            found.is_some()
        });
        found.unwrap_or_else(|| panic!("no {event} for program {pid}:\n{}", self.logs()))
    }

    /// `curl URL` through nginx: curl's exit code, and `STATUS BYTES` (the status and the
    /// body bytes received).
    pub fn curl(&self, path: &str) -> (Option<i32>, String) {
        let url = format!("http://127.0.0.1:{}{path}", self.nginx.port());
        let curl = Command::new("curl")
            .args(["-sS", "-m", "20", "-o", "/dev/null", "-w", "%{http_code} %{size_download}"])
            .arg(&url)
            .output()
            .expect("curl runs");
        (curl.status.code(), String::from_utf8_lossy(&curl.stdout).into_owned())
    }
}

/// The program process that answered, from the `ok` body's first line `pid=PID ...`.
pub fn answered_by(response: &HttpResponse) -> u32 {
    let body = response.body_text();
    let pid = body.strip_prefix("pid=").and_then(|rest| rest.split(' ').next());
    pid.and_then(|pid| pid.parse().ok()).unwrap_or_else(|| panic!("not an ok body: {body}"))
}

/// The `requests=K` of an `ok` body: the requests its process has answered, this one too.
pub fn requests_of(response: &HttpResponse) -> u64 {
    let body = response.body_text();
    let field = body.split_whitespace().find_map(|word| word.strip_prefix("requests="));
    field.and_then(|k| k.parse().ok()).unwrap_or_else(|| panic!("not an ok body: {body}"))
}
