//! `fcgi serve --app exec -- php-cgi` under test, for the operator's side of `--app exec`
//! (tests/integration/exec/ops.rs, tests/integration/exec/scale.rs): a PHP script that says which
//! program process answered and what body it got, the fcgi-rs master and its serving worker, the
//! program processes as the status page and /proc show them, and the JSON log's events.
//!
//! The process tree is `fcgi master` → `fcgi worker` (which owns the public socket) → one
//! `php-cgi` per program process, each listening on a socket of its own.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use fcgi_codec::Role;
use serde_json::Value;

use crate::http::HttpResponse;
use crate::master::{alive, children, Served};
use crate::nginx::{Nginx, Site};
use crate::process::{fcgi_bin, wait_until};
use crate::raw::{frames, Client, Reply};

/// Debian's php-cgi (package php-cgi, php8.2-cgi on bookworm).
pub const PHP_CGI: &str = "/usr/bin/php-cgi";

/// The script: `pid=PID len=N md5=HEX`, the program process that ran it and the body it read.
/// `?sleep=MS` makes it take that long; `?err=TOKEN` writes a line with TOKEN to FCGI_STDERR
/// (`error_log`, as PHP does under FastCGI) and one to its own fd 2.
pub const SCRIPT: &str = r#"<?php
if (isset($_GET['sleep'])) { usleep((int)$_GET['sleep'] * 1000); }
if (isset($_GET['err'])) {
    error_log("fcgi-stderr " . $_GET['err']);
    file_put_contents('php://stderr', "fd2 " . $_GET['err'] . "\n");
}
$body = file_get_contents('php://input');
echo "pid=", getmypid(), " len=", strlen($body), " md5=", md5($body), "\n";
"#;

/// The script's URI under the document root (nginx's `fcgi-cgi.conf` maps `/cgi-bin/`, and
/// `fcgi-exec.conf` any `.php`, to a file there).
pub const SCRIPT_URI: &str = "/cgi-bin/index.php";

/// The status page's path, as every server here is started with.
pub const STATUS_PATH: &str = "/status";

/// Whether php-cgi is installed; if not, says so (a failure under `FCGI_TEST_STRICT`).
pub fn installed() -> bool {
    if Path::new(PHP_CGI).exists() {
        return true;
    }
    crate::settings::skip(&format!(
        "{PHP_CGI} is missing: run tests/deps.sh (Debian package php-cgi) for the --app exec tests"
    ));
    false
}

/// One answer of the script, its line parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    /// The HTTP status.
    pub status: u16,
    /// The php-cgi process that ran it.
    pub pid: u32,
    /// The length of the body it read.
    pub len: usize,
    /// The md5 of that body, in hex.
    pub md5: String,
}

impl Answer {
    /// Parses the script's line; an error names the status and the whole body.
    pub fn parse(status: u16, body: &str) -> Result<Answer, String> {
        let field = |name: &str| {
            body.split_whitespace().find_map(|w| w.strip_prefix(name)?.strip_prefix('='))
        };
        let parsed = (|| {
            Some(Answer {
                status,
                pid: field("pid")?.parse().ok()?,
                len: field("len")?.parse().ok()?,
                md5: field("md5")?.to_owned(),
            })
        })();
        parsed.ok_or_else(|| format!("status {status}, not the script's answer: {body:?}"))
    }

    /// An HTTP response from nginx, parsed.
    pub fn of_http(response: &HttpResponse) -> Result<Answer, String> {
        Answer::parse(response.status, &response.body_text())
    }
}

/// The md5 of `bytes` in hex, from coreutils' `md5sum` (what PHP's `md5()` prints).
pub fn md5_hex(bytes: &[u8]) -> String {
    let mut child = Command::new("md5sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("md5sum (coreutils) runs");
    child.stdin.take().expect("piped").write_all(bytes).expect("md5sum reads");
    let output = child.wait_with_output().expect("md5sum answers");
    String::from_utf8_lossy(&output.stdout).split_whitespace().next().unwrap_or("").to_owned()
}

/// Whether `pid` is a live php-cgi process (a pid reused by another program is not).
pub fn is_php_cgi(pid: u32) -> bool {
    alive(pid)
        && fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "php-cgi")
}

/// A number of a status page object; panics naming the key if it is missing.
#[track_caller]
pub fn number(status: &Value, key: &str) -> u64 {
    status[key].as_u64().unwrap_or_else(|| panic!("no number {key:?} on the status page: {status}"))
}

/// `fcgi serve --app exec ... -- php-cgi -n`, with the script in its document root.
#[derive(Debug)]
pub struct PhpExec {
    /// The fcgi-rs master (its log, socket and pid file in the test's directory).
    pub served: Served,
    /// The document root: `cgi-bin/index.php` is [`SCRIPT`].
    pub root: PathBuf,
}

impl PhpExec {
    /// The command line of [`start`](PhpExec::start), to start otherwise (`--check`, say).
    pub fn command(dir: &Path, name: &str, extra: &[&str], program: bool) -> Command {
        let mut command = Command::new(fcgi_bin());
        command.args(["serve", "--listen"]);
        command.arg(format!("unix:{}", dir.join(format!("{name}.sock")).display()));
        command.arg("--pid-file").arg(dir.join(format!("{name}.pid")));
        command.args(["--log-format", "json", "--status-path", STATUS_PATH]);
        command.args(extra);
        if program {
            // -n: no php.ini, so that the machine's settings cannot change what is seen.
            command.args(["--app", "exec", "--", PHP_CGI, "-n"]);
        }
        command
    }

    /// Writes the script under `dir/www`, starts fcgi-rs named `name` with `extra` options
    /// (`program`: `--app exec -- php-cgi -n` follows them; else `extra` says the app, as
    /// `--config FILE` does), and waits until its worker accepts.
    pub fn start(dir: &Path, name: &str, extra: &[&str], program: bool) -> PhpExec {
        let root = dir.join("www");
        fs::create_dir_all(root.join("cgi-bin")).expect("the document root");
        fs::write(root.join("cgi-bin/index.php"), SCRIPT).expect("the script written");
        let served = Served::start(dir, name, PhpExec::command(dir, name, extra, program), 1);
        PhpExec { served, root }
    }

    /// The script's path, as SCRIPT_FILENAME names it.
    pub fn script(&self) -> String {
        self.root.join("cgi-bin/index.php").display().to_string()
    }

    /// nginx with `site` in front of it (its `@DOCUMENT_ROOT@` the script's root), `http_extra`
    /// added to its http block.
    pub fn nginx(&self, dir: &Path, site: Site, http_extra: &str) -> Nginx {
        let [addr, socket] = self.served.addr().site_vars();
        let root = ("DOCUMENT_ROOT", self.root.display().to_string());
        Nginx::start_with(dir, site, &[addr, socket, root], http_extra)
    }

    /// Runs the script with `query` straight on fcgi-rs's socket, a new connection: a POST of
    /// `body` if there is one. The answer, or why there is none.
    pub fn request(&self, query: &str, body: &[u8]) -> Result<Answer, String> {
        let reply = self.raw(&self.script_params(query, body.len()), body)?;
        Answer::parse(reply.status, &reply.body_text())
    }

    /// The CGI params of the script with `query` and a body of `len` bytes.
    pub fn script_params(&self, query: &str, len: usize) -> Vec<(String, String)> {
        let uri = format!("{SCRIPT_URI}?{query}");
        let method = if len > 0 { "POST" } else { "GET" };
        let mut params = vec![
            ("SCRIPT_FILENAME".to_owned(), self.script()),
            ("SCRIPT_NAME".to_owned(), SCRIPT_URI.to_owned()),
            ("REQUEST_URI".to_owned(), uri),
            ("QUERY_STRING".to_owned(), query.to_owned()),
            ("REQUEST_METHOD".to_owned(), method.to_owned()),
            ("SERVER_PROTOCOL".to_owned(), "HTTP/1.1".to_owned()),
            ("GATEWAY_INTERFACE".to_owned(), "CGI/1.1".to_owned()),
            ("REDIRECT_STATUS".to_owned(), "200".to_owned()),
        ];
        if len > 0 {
            params.push(("CONTENT_LENGTH".to_owned(), len.to_string()));
            params.push(("CONTENT_TYPE".to_owned(), "application/octet-stream".to_owned()));
        }
        params
    }

    fn raw(&self, params: &[(String, String)], body: &[u8]) -> Result<Reply, String> {
        let pairs: Vec<(&str, &str)> = params.iter().map(|(n, v)| (&**n, &**v)).collect();
        let mut client = Client::try_connect(&self.served.addr()).map_err(|e| e.to_string())?;
        client.set_timeout(crate::settings::scaled(Duration::from_secs(30)));
        let request = frames::request(1, Role::Responder, false, &pairs, body);
        client.send(&request).map_err(|e| format!("sending: {e}"))?;
        client.try_read_reply(1).map_err(|e| format!("reading the answer: {e}"))
    }

    /// The status page, `?json` or `?full&json`, parsed.
    pub fn status(&self, query: &str) -> Value {
        let uri = format!("{STATUS_PATH}?{query}");
        let params = [
            ("SCRIPT_NAME", STATUS_PATH),
            ("REQUEST_URI", &*uri),
            ("QUERY_STRING", query),
            ("REQUEST_METHOD", "GET"),
        ]
        .map(|(n, v)| (n.to_owned(), v.to_owned()));
        let reply = self.raw(&params, b"").unwrap_or_else(|e| {
            panic!("the status page did not answer: {e}\n{}", self.served.log_text())
        });
        serde_json::from_slice(&reply.body).unwrap_or_else(|e| {
            panic!("status page ?{query} is not JSON ({e}): {}", reply.body_text())
        })
    }

    /// The program pids the status page lists (`?full&json`), in order.
    pub fn programs(&self) -> Vec<u32> {
        let status = self.status("full&json");
        let mut pids: Vec<u32> = status["processes"]
            .as_array()
            .unwrap_or_else(|| panic!("no \"processes\" on the status page: {status}"))
            .iter()
            .filter_map(|p| p["pid"].as_u64().and_then(|pid| u32::try_from(pid).ok()))
            .collect();
        pids.sort_unstable();
        pids
    }

    /// Waits until the status page counts `total` program processes, `idle` of them idle;
    /// their pids, or `None` if that did not happen in time.
    pub fn wait_programs(&self, total: u64, idle: u64, timeout: Duration) -> Option<Vec<u32>> {
        let mut pids = Vec::new();
        let settled = wait_until(timeout, || {
            let status = self.status("full&json");
            pids = status["processes"]
                .as_array()
                .map(|all| all.iter().filter_map(|p| p["pid"].as_u64()).map(|p| p as u32).collect())
                .unwrap_or_default();
            pids.sort_unstable();
            number(&status, "total processes") == total
                && number(&status, "idle processes") == idle
                && pids.len() as u64 == total
        });
        settled.then_some(pids)
    }

    /// The serving worker of the master (the first, if a reload has two).
    pub fn worker(&self) -> Option<u32> {
        self.served.workers().first().copied()
    }

    /// The php-cgi processes that are children of fcgi-rs's workers, from /proc, in order.
    pub fn program_children(&self) -> Vec<u32> {
        let mut pids: Vec<u32> = self
            .served
            .workers()
            .into_iter()
            .flat_map(children)
            .filter(|&pid| is_php_cgi(pid))
            .collect();
        pids.sort_unstable();
        pids
    }

    /// The JSON log's lines, parsed (lines that are not JSON left out).
    pub fn log_lines(&self) -> Vec<Value> {
        self.served.log_text().lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
    }

    /// The log lines with `event` = `event`.
    pub fn events(&self, event: &str) -> Vec<Value> {
        self.log_lines().into_iter().filter(|l| l["event"] == event).collect()
    }
}
