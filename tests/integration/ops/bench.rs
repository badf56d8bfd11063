//! `fcgi bench` against `fcgi serve --app hello` and against a real PHP-FPM: the counts it
//! reports, its percentile lines, its JSON, and its exit statuses.
//!
//! Each test has its own temporary directory, sockets and processes, so they run in parallel.
//! The PHP-FPM test needs `php-fpm` (`tests/deps.sh` installs it); without it it says so and
//! passes.

use std::process::Command;

use fcgi_tests::addr::{Addr, Transport};
use fcgi_tests::php::PhpFpm;
use fcgi_tests::process::{fcgi_bin, FcgiServe};

/// What one `fcgi bench` run gave.
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    /// Asserts exit status 0, `completed` requests that succeeded and no errors, and the
    /// percentile lines; returns the report.
    fn assert_clean(&self, completed: u64) -> &str {
        let context = format!("stdout:\n{}\nstderr:\n{}", self.stdout, self.stderr);
        assert_eq!(self.code, Some(0), "{context}");
        let counts = format!("requests:    {completed} completed, 0 errors, in ");
        assert!(self.stdout.contains(&counts), "no {counts:?} in {context}");
        for line in ["  p50:", "  p90:", "  p99:", "  p99.9:"] {
            assert!(self.stdout.lines().any(|l| l.starts_with(line)), "no {line:?} in {context}");
        }
        let errors = "errors:      connect 0, protocol 0, status 0, overloaded 0, timeout 0";
        assert!(self.stdout.contains(errors), "{context}");
        &self.stdout
    }

    /// Asserts exit status `code` and `needle` on stderr.
    fn assert_fails(&self, code: i32, needle: &str) {
        let context = format!("stdout:\n{}\nstderr:\n{}", self.stdout, self.stderr);
        assert_eq!(self.code, Some(code), "{context}");
        assert!(self.stderr.contains(needle), "stderr lacks {needle:?}: {context}");
    }
}

/// Runs `fcgi bench --timeout 10 ARGS...`.
fn fcgi_bench(args: &[&str]) -> Run {
    let output = Command::new(fcgi_bin())
        .args(["bench", "--timeout", "10"])
        .args(args)
        .output()
        .expect("fcgi bench runs");
    Run {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// `--connect` for a server's address.
fn connect_arg(addr: &Addr) -> String {
    match addr {
        Addr::Tcp(addr) => format!("tcp:{addr}"),
        Addr::Unix(path) => format!("unix:{}", path.display()),
    }
}

/// A number from the report line that starts with `prefix`, e.g. `opened:      4 connections`.
fn number_after(report: &str, prefix: &str) -> f64 {
    let line = report.lines().find(|l| l.starts_with(prefix)).expect("the line is there");
    let rest = line[prefix.len()..].trim_start();
    let number: String = rest.chars().take_while(|c| c.is_ascii_digit() || *c == '.').collect();
    number.parse().unwrap_or_else(|_| panic!("no number in {line:?}"))
}

#[test]
fn counts_and_percentiles_against_fcgi_serve() {
    let dir = tempfile::tempdir().unwrap();
    let hello = FcgiServe::start(dir.path(), "hello", "hello", Transport::Unix, &[]);
    let connect = connect_arg(hello.addr());

    // A connection per request: 200 of them.
    let run = fcgi_bench(&["--connect", &connect, "-n", "200", "/hello"]);
    let report = run.assert_clean(200);
    assert!(report.contains("(a new connection per request)"), "{report}");
    assert_eq!(number_after(report, "opened:"), 200.0, "{report}");

    // Four kept connections, four requests in flight on each.
    let run = fcgi_bench(&[
        "--connect",
        &connect,
        "--keep-conn",
        "--mpx",
        "4",
        "-c",
        "4",
        "-n",
        "200",
        "/",
    ]);
    let report = run.assert_clean(200);
    assert!(report.contains("4 (kept, 4 requests in flight on each)"), "{report}");
    assert!(number_after(report, "opened:") <= 4.0, "{report}");

    // A body, over TCP, and the JSON report.
    let tcp = FcgiServe::start(dir.path(), "tcp", "hello", Transport::Tcp, &[]);
    let connect = connect_arg(tcp.addr());
    let run = fcgi_bench(&[
        "--connect",
        &connect,
        "--keep-conn",
        "--body",
        "100000",
        "-n",
        "20",
        "--json",
        "/",
    ]);
    assert_eq!(run.code, Some(0), "{}{}", run.stdout, run.stderr);
    let json = run.stdout.trim();
    assert!(json.starts_with('{') && json.ends_with('}'), "{json}");
    for field in ["\"completed\": 20,", "\"errors\": 0,", "\"p99.9\": ", "\"body\": 100000,"] {
        assert!(json.contains(field), "no {field} in {json}");
    }
}

#[test]
fn counts_and_percentiles_against_php_fpm() {
    let Some(php) = PhpFpm::start() else { return };
    let (connect, script) = (php.connect_arg(), php.script());
    let run = fcgi_bench(&["--connect", &connect, "-c", "2", "-n", "200", &script]);
    run.assert_clean(200);
    // PHP-FPM keeps a connection when asked: no more connections than threads.
    let run = fcgi_bench(&["--connect", &connect, "-c", "2", "--keep-conn", "-n", "200", &script]);
    let report = run.assert_clean(200);
    assert!(number_after(report, "opened:") <= 2.0, "{report}");
}

#[test]
fn failures_and_usage_errors() {
    let dir = tempfile::tempdir().unwrap();
    let nowhere = format!("unix:{}", dir.path().join("nobody.sock").display());
    // Nothing succeeded: exit 1, the errors counted by kind.
    let run = fcgi_bench(&["--connect", &nowhere, "-n", "5", "/"]);
    run.assert_fails(1, "no request succeeded");
    assert!(run.stdout.contains("errors:      connect 5, protocol 0"), "{}", run.stdout);

    let hello = FcgiServe::start(dir.path(), "hello", "hello", Transport::Unix, &[]);
    let connect = connect_arg(hello.addr());
    fcgi_bench(&["-n", "1", "/"]).assert_fails(2, "--connect");
    fcgi_bench(&["--connect", &connect, "--mpx", "2", "/"]).assert_fails(2, "--keep-conn");
    fcgi_bench(&["--connect", &connect, "-n", "1", "-d", "1", "/"])
        .assert_fails(2, "cannot be used");
    fcgi_bench(&["--connect", &connect, "-d", "soon", "/"]).assert_fails(2, "not a duration");
    fcgi_bench(&["--connect", &connect, "-c", "0", "/"]).assert_fails(2, "at least 1");
}
