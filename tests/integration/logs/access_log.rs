//! `--access-log FILE`: a line per request in a file of its own, in each format; reopened on
//! USR1 after logrotate's rename (under a master, by every worker); failed requests logged too.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use fcgi_tests::addr::Transport;
use fcgi_tests::nginx::scratch;
use fcgi_tests::process::{children_of, fcgi_bin, wait_until, FcgiServe};
use fcgi_tests::settings::skip;

/// Sends a request for `script` with `params` through `fcgi request`; its body (empty if it
/// failed).
fn request(serve: &FcgiServe, script: &str, params: &[&str], extra: &[&str]) -> Vec<u8> {
    let mut command = Command::new(fcgi_bin());
    command.args(["request", "--timeout", "10", "--connect", &serve.addr().listen_arg()]);
    for param in params {
        command.args(["--param", param]);
    }
    command.args(extra).arg(script);
    command.output().expect("fcgi request runs").stdout
}

/// The lines of `path` once it has at least `n` (or whatever it has after 10 s).
fn lines(path: &Path, n: usize) -> Vec<String> {
    let read = || fs::read_to_string(path).unwrap_or_default();
    wait_until(Duration::from_secs(10), || read().lines().count() >= n);
    read().lines().map(str::to_owned).collect()
}

/// Whether process `pid` has the file at `path` open.
fn holds_open(pid: u32, path: &Path) -> bool {
    let Ok(entries) = fs::read_dir(format!("/proc/{pid}/fd")) else { return false };
    entries.filter_map(Result::ok).any(|e| fs::read_link(e.path()).is_ok_and(|t| t == path))
}

/// A CGI program killed by a signal after its header and some of its body went out (the pause
/// lets the gateway pass the header on first, so that the response is cut short, not a 502).
const KILLED_SCRIPT: &str =
    "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\npartial\\n'\nsleep 0.3\nkill -9 $$\n";

/// Params of a request as nginx sends them: the client's address and nginx's `$request_id`.
const PARAMS: [&str; 3] =
    ["REMOTE_ADDR=192.0.2.9", "REQUEST_ID=4f2a9c", "HTTP_USER_AGENT=curl/8.0 \"test\""];

/// Starts `fcgi serve --app hello` with the access log in `dir/access.log` and `extra`.
fn serve_with_access_log(dir: &Path, name: &str, extra: &[&str]) -> FcgiServe {
    let log = dir.join("access.log");
    let mut args = vec!["--log-format", "json", "--access-log", log.to_str().unwrap()];
    args.extend_from_slice(extra);
    FcgiServe::start(dir, name, "hello", Transport::Unix, &args)
}

#[test]
fn the_combined_line() {
    let dir = scratch();
    let serve = serve_with_access_log(dir.path(), "combined", &[]);
    let body = request(&serve, "/hello?x=1", &PARAMS, &[]);
    assert!(!body.is_empty());
    let lines = lines(&dir.path().join("access.log"), 1);
    assert_eq!(lines.len(), 1, "{lines:?}");
    let line = &lines[0];
    // `192.0.2.9 - - [27/Nov/2026:09:50:00 +0000] "GET /hello?x=1 HTTP/1.1" 200 14 "-"
    // "curl/8.0 \x22test\x22" 0.001 4f2a9c ok`
    assert!(line.starts_with("192.0.2.9 - - ["), "{line}");
    let after_time = &line[line.find("] ").expect("a time") + 2..];
    let expected_head = format!(
        "\"GET /hello?x=1 HTTP/1.1\" 200 {} \"-\" \"curl/8.0 \\x22test\\x22\" ",
        body.len()
    );
    assert!(after_time.starts_with(&expected_head), "{line}");
    let tail: Vec<&str> = after_time[expected_head.len()..].split(' ').collect();
    assert_eq!(tail.len(), 3, "{line}");
    assert!(tail[0].parse::<f64>().is_ok(), "the duration in seconds: {line}");
    assert_eq!(&tail[1..], ["4f2a9c", "ok"], "{line}");
    // The request's record went to the file only, not also to the main log.
    assert!(!serve.log().contains(r#""msg":"request""#), "{}", serve.log());
}

#[test]
fn the_json_line() {
    let dir = scratch();
    let serve = serve_with_access_log(dir.path(), "json", &["--access-log-format", "json"]);
    let body = request(&serve, "/hello?x=1", &PARAMS, &[]);
    let lines = lines(&dir.path().join("access.log"), 1);
    let line = &lines[0];
    assert!(line.starts_with("{\"time\":\"") && line.ends_with('}'), "{line}");
    for field in [
        r#""remote":"192.0.2.9""#.to_owned(),
        r#""method":"GET""#.to_owned(),
        r#""uri":"/hello?x=1""#.to_owned(),
        r#""query":"x=1""#.to_owned(),
        r#""status":200"#.to_owned(),
        format!(r#""bytes":{}"#, body.len()),
        r#""request_id":"4f2a9c""#.to_owned(),
        r#""user_agent":"curl/8.0 \"test\"""#.to_owned(),
        r#""outcome":"ok""#.to_owned(),
        r#""duration_us":"#.to_owned(),
    ] {
        assert!(line.contains(&field), "{field} in {line}");
    }
}

#[test]
fn a_php_fpm_style_template() {
    let dir = scratch();
    let format = "%R %m %r %s %b %L %{REMOTE_ADDR}e %Q%q %%";
    let serve = serve_with_access_log(dir.path(), "template", &["--access-log-format", format]);
    let body = request(&serve, "/hello?x=1", &PARAMS, &[]);
    // Without REQUEST_ID: the process's own id, PID-N.
    request(&serve, "/again", &["REMOTE_ADDR=192.0.2.10"], &[]);
    let lines = lines(&dir.path().join("access.log"), 2);
    assert_eq!(
        lines[0],
        format!("192.0.2.9 GET /hello?x=1 200 {} 4f2a9c 192.0.2.9 ?x=1 %", body.len())
    );
    let fields: Vec<&str> = lines[1].split(' ').collect();
    assert_eq!(fields[..4], ["192.0.2.10", "GET", "/again", "200"], "{}", lines[1]);
    let (pid, n) = fields[5].split_once('-').expect("PID-N");
    assert!(pid.parse::<u32>().is_ok() && n.parse::<u64>().is_ok(), "{}", lines[1]);
}

#[test]
fn a_bad_template_is_refused_at_start() {
    let dir = scratch();
    let out = Command::new(fcgi_bin())
        .args(["serve", "--app", "hello", "--listen"])
        .arg(format!("unix:{}", dir.path().join("bad.sock").display()))
        .args(["--access-log", "/dev/null", "--access-log-format", "%R %Z"])
        .output()
        .expect("fcgi serve runs");
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn usr1_reopens_the_file_in_every_worker_after_a_rename() {
    rotate(&[]);
}

#[test]
fn usr1_reopens_the_file_in_workers_that_dropped_privileges() {
    // SAFETY: geteuid cannot fail and touches no memory.
    if unsafe { libc::geteuid() } != 0 {
        return skip("--user needs root (CI runs the tests as root)");
    }
    // The directory stays root's (0755): the workers, as nobody, cannot create the new file;
    // the master does, and hands it to them.
    rotate(&["--user", "nobody", "--group", "nogroup"]);
}

/// Requests, logrotate's rename, USR1, requests: the first in the old file, the rest in the new.
fn rotate(extra: &[&str]) {
    let dir = scratch();
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
    let mut args = vec!["--workers", "2"];
    args.extend_from_slice(extra);
    let mut serve = serve_with_access_log(dir.path(), "rotate", &args);
    let path = dir.path().join("access.log");
    let rotated = dir.path().join("access.log.1");
    // Enough requests that both workers most likely wrote one before the rename.
    for _ in 0..6 {
        request(&serve, "/before", &PARAMS, &[]);
    }
    assert_eq!(lines(&path, 6).len(), 6);
    fs::rename(&path, &rotated).expect("rename, as logrotate does");
    serve.process().signal(libc::SIGUSR1);
    assert!(wait_until(Duration::from_secs(10), || path.exists()), "the file made anew");
    // Every worker has reopened once it holds the new file open (/proc/PID/fd names the old
    // one access.log.1).
    let master = serve.process().pid();
    let reopened = wait_until(Duration::from_secs(10), || {
        let workers = children_of(master);
        workers.len() == 2 && workers.iter().all(|(pid, _)| holds_open(*pid, &path))
    });
    assert!(reopened, "both workers reopened:\n{}", serve.log());
    for _ in 0..6 {
        request(&serve, "/after", &PARAMS, &[]);
    }
    let new = lines(&path, 6);
    assert_eq!(new.len(), 6, "{new:?}");
    assert!(new.iter().all(|l| l.contains("/after")), "{new:?}");
    let old = fs::read_to_string(&rotated).expect("the rotated file");
    assert_eq!(old.lines().count(), 6, "{old}");
    assert!(old.lines().all(|l| l.contains("/before")), "{old}");
}

#[test]
fn failed_requests_get_a_line() {
    let dir = scratch();
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
    // A CGI program killed after its header went out: the response is cut short.
    let killed = dir.path().join("killed.sh");
    fs::write(&killed, KILLED_SCRIPT).expect("script");
    fs::set_permissions(&killed, fs::Permissions::from_mode(0o755)).expect("chmod");
    let body = dir.path().join("body");
    fs::write(&body, [b'x'; 100]).expect("body");
    let log = dir.path().join("access.log");
    let root = dir.path().to_str().unwrap();
    let serve = FcgiServe::start(
        dir.path(),
        "failed",
        "cgi",
        Transport::Unix,
        &[
            "--cgi-root",
            root,
            "--max-body",
            "10",
            "--access-log",
            log.to_str().unwrap(),
            "--access-log-format",
            "%s %m %r %L",
        ],
    );
    let killed = killed.to_str().unwrap();
    request(&serve, killed, &["REQUEST_ID=killed"], &[]);
    // A body past --max-body: 413.
    request(&serve, killed, &["REQUEST_ID=too-large"], &["--stdin", body.to_str().unwrap()]);
    let lines = lines(&log, 2);
    assert_eq!(lines.len(), 2, "{lines:?}");
    // 200 and cut short, or 502 should the program have died before its header was read.
    assert!(
        lines.contains(&format!("200 GET {killed} killed"))
            || lines.contains(&format!("502 GET {killed} killed")),
        "{lines:?}"
    );
    assert!(lines.contains(&format!("413 POST {killed} too-large")), "{lines:?}");
}

#[test]
fn failed_requests_say_how_they_ended() {
    let dir = scratch();
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
    let killed = dir.path().join("killed.sh");
    fs::write(&killed, KILLED_SCRIPT).expect("script");
    fs::set_permissions(&killed, fs::Permissions::from_mode(0o755)).expect("chmod");
    let log = dir.path().join("access.log");
    let root = dir.path().to_str().unwrap();
    let serve = FcgiServe::start(
        dir.path(),
        "outcome",
        "cgi",
        Transport::Unix,
        &["--cgi-root", root, "--access-log", log.to_str().unwrap(), "--access-log-format", "json"],
    );
    request(&serve, killed.to_str().unwrap(), &[], &[]);
    let lines = lines(&log, 1);
    assert!(lines[0].contains(r#""outcome":"cut_short""#), "{lines:?}");
}

#[test]
fn an_access_log_that_cannot_be_written_never_fails_a_request() {
    // /dev/full refuses every write with ENOSPC, as a full disk does.
    let dir = scratch();
    let serve = FcgiServe::start(
        dir.path(),
        "full",
        "hello",
        Transport::Unix,
        &["--access-log", "/dev/full", "--log-format", "json"],
    );
    for _ in 0..50 {
        assert!(!request(&serve, "/hello", &PARAMS, &[]).is_empty(), "answered");
    }
    let mut serve = serve;
    assert!(serve.process().is_running(), "{}", serve.log());
}
