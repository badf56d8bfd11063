//! An app author's binary with all of `fcgi serve`: an axum app through `fcgi_http::run`
//! (`fcgi-myapp`) and a Handler app through `fcgi_serve::run` (`fcgi-handler-app`), run as an
//! operator runs `fcgi serve`: `--help`, `--check` with a config file, `generate man`,
//! workers behind nginx with the status page, a reload (HUP) under POSTs, process titles, and
//! the exit statuses.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use fcgi_tests::master::{fcgi_request, signal, Served};
use fcgi_tests::nginx::{scratch, Nginx, Site};
use fcgi_tests::process::{fcgi_bin, wait_until, Guarded};

/// How long a command that exits at once (`--check`, a refusal) may take.
const EXIT_TIMEOUT: Duration = Duration::from_secs(10);

/// A test binary built beside `fcgi`.
fn bin(name: &str) -> PathBuf {
    let bin = fcgi_bin().with_file_name(name);
    assert!(bin.exists(), "{} is missing: `cargo build --workspace --bins`", bin.display());
    bin
}

/// What `BINARY ARGS` said (stdout and stderr) and its exit code, for commands that exit.
fn said(binary: &str, args: &[&str]) -> (Option<i32>, String) {
    let dir = scratch();
    let log = dir.path().join("said");
    let mut command = Command::new(bin(binary));
    command.args(args);
    let mut process = Guarded::spawn(binary, command, &log);
    let status = process.wait_exit(EXIT_TIMEOUT);
    drop(process);
    (status.and_then(|s| s.code()), fs::read_to_string(&log).unwrap_or_default())
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    fs::write(&path, text).expect("written");
    path.display().to_string()
}

#[test]
fn the_binary_takes_fcgi_serves_options_less_its_apps() {
    let (code, help) = said("fcgi-myapp", &["--help"]);
    assert_eq!(code, Some(0), "{help}");
    for option in ["--listen", "--workers", "--config", "--check", "--status-path", "--user"] {
        assert!(help.contains(option), "--help lists {option}:\n{help}");
    }
    for option in ["--app", "--cgi-root"] {
        assert!(!help.contains(option), "--help lists no {option}:\n{help}");
    }
    assert!(help.contains("Usage: fcgi-myapp"), "{help}");

    let (code, text) = said("fcgi-myapp", &["--app", "hello"]);
    assert_eq!(code, Some(2), "an option of fcgi serve's apps is unknown here: {text}");
}

#[test]
fn run_inside_a_tokio_runtime_refuses_saying_why() {
    let dir = scratch();
    let socket = dir.path().join("never.sock");
    let log = dir.path().join("said");
    let mut command = Command::new(bin("fcgi-myapp"));
    command.env("FCGI_MYAPP_IN_RUNTIME", "1");
    command.arg("--listen").arg(format!("unix:{}", socket.display()));
    let mut process = Guarded::spawn("myapp", command, &log);
    let status = process.wait_exit(EXIT_TIMEOUT);
    let text = fs::read_to_string(&log).unwrap_or_default();
    assert_eq!(status.and_then(|s| s.code()), Some(2), "exits, never hangs: {text}");
    assert!(text.contains("inside a tokio runtime"), "{text}");
    assert!(!socket.exists(), "nothing was bound");
}

#[test]
fn check_reads_the_config_file_and_names_each_bad_line() {
    let dir = scratch();
    let good = write(dir.path(), "good.conf", "workers = 2\nstatus-path = /status\n");
    let (code, text) = said("fcgi-myapp", &["--config", &good, "--check"]);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("fcgi-myapp: configuration ok"), "{text}");

    let bad = write(dir.path(), "bad.conf", "workers = four\n# fine\napp = hello\n");
    let (code, text) = said("fcgi-myapp", &["--config", &bad, "--check"]);
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains("bad.conf:1:") && text.contains("--workers"), "{text}");
    assert!(text.contains("bad.conf:3:") && text.contains("unknown option `app`"), "{text}");
    assert!(text.contains("fcgi-myapp --help"), "the message names the binary: {text}");
}

#[test]
fn generate_man_writes_the_binarys_own_page() {
    let dir = scratch();
    let pages = dir.path().join("man");
    let (code, text) = said("fcgi-myapp", &["generate", "man", pages.to_str().expect("utf-8")]);
    assert_eq!(code, Some(0), "{text}");
    let page = fs::read_to_string(pages.join("fcgi-myapp.1")).expect("fcgi-myapp.1");
    assert!(page.contains("\\-\\-workers") && page.contains("\\-\\-config"), "{page}");
}

/// The first line of `/proc/PID/cmdline`, as `ps -o args` shows it.
fn cmdline(pid: u32) -> String {
    let raw = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let end = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
    String::from_utf8_lossy(&raw[..end]).into_owned()
}

#[test]
fn an_axum_app_runs_with_workers_a_status_page_and_reloads() {
    let dir = scratch();
    let socket = dir.path().join("myapp.sock");
    let mut command = Command::new(bin("fcgi-myapp"));
    command.arg("--listen").arg(format!("unix:{}", socket.display()));
    command.arg("--pid-file").arg(dir.path().join("myapp.pid"));
    command.args(["--workers", "2", "--status-path", "/status", "--log-format", "json"]);
    let mut served = Served::start(dir.path(), "myapp", command, 2);
    let nginx = Nginx::start(dir.path(), Site::Status, &served.addr().site_vars());

    let hello = nginx.get("/hello").expect("GET /hello");
    assert_eq!((hello.status, hello.body_text().as_str()), (200, "Hello, world!"));
    let status = nginx.get("/status?json").expect("GET /status");
    assert_eq!(status.status, 200, "{}", status.body_text());
    let page: serde_json::Value = serde_json::from_slice(&status.body).expect("json");
    assert_eq!(page["fcgi-rs"]["workers"], 2, "{page}");

    let master = served.pid();
    assert!(cmdline(master).starts_with("fcgi-myapp: master"), "{}", cmdline(master));
    let before = served.workers();
    for worker in &before {
        assert!(cmdline(*worker).starts_with("fcgi-myapp: worker"), "{}", cmdline(*worker));
    }

    // A reload replaces every worker; requests keep being answered meanwhile, POSTs included.
    signal(master, libc::SIGHUP);
    let mut answered = 0;
    let replaced = wait_until(Duration::from_secs(20), || {
        let post = nginx.post("/items", "application/json", b"{}").expect("POST during reload");
        assert_ne!(post.status, 502, "a POST failed during the reload");
        answered += 1;
        let now = served.workers();
        now.len() == 2 && now.iter().all(|pid| !before.contains(pid))
    });
    assert!(replaced, "HUP replaced the workers:\n{}", served.log_text());
    assert!(answered > 0);
    let (code, body) = fcgi_request(&socket, "/pid", 5);
    assert_eq!(code, Some(0), "{body}");

    signal(master, libc::SIGTERM);
    let status = served.process.wait_exit(Duration::from_secs(15));
    assert_eq!(status.and_then(|s| s.code()), Some(0), "{}", served.log_text());
    assert!(!socket.exists(), "the socket file is removed on the way out");
}

#[test]
fn a_handler_app_serves_as_one_process_and_stops_on_term() {
    let dir = scratch();
    let socket = dir.path().join("handler.sock");
    let mut command = Command::new(bin("fcgi-handler-app"));
    command.arg("--listen").arg(format!("unix:{}", socket.display()));
    command.args(["--access-log", "--log-format", "json"]);
    let mut served = Served::start(dir.path(), "handler", command, 0);
    let (code, body) = fcgi_request(&socket, "/", 5);
    assert_eq!(code, Some(0), "{body}");
    assert!(body.contains(&format!("served by {}", served.pid())), "{body}");
    let logged = wait_until(Duration::from_secs(5), || {
        served.log_text().lines().any(|line| {
            serde_json::from_str::<serde_json::Value>(line)
                .is_ok_and(|v| v["outcome"] == "ok" && v["status"] == 200)
        })
    });
    assert!(logged, "an access line:\n{}", served.log_text());
    assert!(cmdline(served.pid()).starts_with("fcgi-handler-app: serve"));

    signal(served.pid(), libc::SIGTERM);
    let status = served.process.wait_exit(Duration::from_secs(15));
    assert_eq!(status.and_then(|s| s.code()), Some(0), "{}", served.log_text());
}
