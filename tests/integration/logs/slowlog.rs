//! The slow log (`--slow-request SECS`): a request still running past the limit is logged once,
//! while it runs, with its method, URI, remote address, elapsed time, pid and thread, to the
//! log or to `--slow-log FILE`, and counted in the status page's "slow requests". The slow
//! request is a CGI program that sleeps, asked for with `fcgi request`.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::thread;
use std::time::{Duration, Instant};

use fcgi_tests::addr::Transport;
use fcgi_tests::nginx::scratch;
use fcgi_tests::process::{fcgi_bin, wait_until, FcgiServe};

/// How long the program sleeps: far past the limit, so that "logged while it still runs" is
/// not a matter of milliseconds.
const SLEEP_SECS: u64 = 3;
/// The slow-request limit given to the server.
const LIMIT: &str = "0.5";

/// A CGI directory with `sleep.sh`, which sleeps, then answers.
fn cgi_root(dir: &Path) -> PathBuf {
    let root = dir.join("cgi-bin");
    fs::create_dir(&root).expect("mkdir");
    let script = root.join("sleep.sh");
    fs::write(
        &script,
        format!(
            "#!/bin/sh\necho $$ > {}\nsleep {SLEEP_SECS}\nprintf 'Content-Type: text/plain\\r\\n\\r\\nawake\\n'\n",
            dir.join("sleep.pid").display()
        ),
    )
    .expect("write the script");
    fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).expect("chmod");
    root
}

/// `fcgi request` for `path` against `server`.
fn request(server: &FcgiServe, path: &str) -> Output {
    Command::new(fcgi_bin())
        .args(["request", "--connect", &server.addr().listen_arg(), "--timeout", "30", path])
        .output()
        .expect("fcgi request runs")
}

/// The JSON lines of `text` whose "msg" starts with "slow request".
fn slow_lines(text: &str) -> Vec<String> {
    text.lines().filter(|line| line.contains("\"msg\":\"slow request")).map(str::to_owned).collect()
}

/// The value of a JSON field in a line written by slog-json (flat, one line per record).
fn field<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    let key = format!("\"{name}\":");
    let rest = &line[line.find(&key)? + key.len()..];
    let end = if let Some(quoted) = rest.strip_prefix('"') {
        return quoted.split('"').next();
    } else {
        rest.find([',', '}']).unwrap_or(rest.len())
    };
    Some(&rest[..end])
}

/// Runs the slow program and checks that `read_log` shows one slow line before it ends;
/// returns that line.
fn slow_request_is_logged_while_it_runs(slow_log: Option<&Path>, dir: &Path) -> String {
    let root = cgi_root(dir);
    let root_arg = root.to_str().expect("UTF-8").to_owned();
    let mut args = vec![
        "--cgi-root",
        root_arg.as_str(),
        "--slow-request",
        LIMIT,
        "--log-format",
        "json",
        "--status-path",
        "/status",
    ];
    let slow_log_arg = slow_log.map(|p| p.to_str().expect("UTF-8").to_owned());
    if let Some(path) = &slow_log_arg {
        args.extend(["--slow-log", path.as_str()]);
    }
    let server = FcgiServe::start(dir, "fcgi", "cgi", Transport::Unix, &args);
    let script = root.join("sleep.sh");
    let script_path = format!("{}?q=1", script.display());
    let started = Instant::now();
    let running = {
        let (addr, path) = (server.addr().listen_arg(), script_path.clone());
        thread::spawn(move || {
            let out = Command::new(fcgi_bin())
                .args(["request", "--connect", &addr, "--timeout", "30", &path])
                .output()
                .expect("fcgi request runs");
            (out, Instant::now())
        })
    };
    let read_log = || match slow_log {
        Some(path) => fs::read_to_string(path).unwrap_or_default(),
        None => server.log(),
    };
    let logged =
        wait_until(Duration::from_secs(SLEEP_SECS + 5), || !slow_lines(&read_log()).is_empty());
    let logged_at = Instant::now();
    assert!(logged, "no slow line:\n{}", read_log());
    let (out, ended_at) = running.join().expect("the request thread");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "awake\n");
    assert!(
        logged_at < ended_at,
        "the line came after the request ended ({:?} vs {:?} after the start)",
        logged_at - started,
        ended_at - started
    );
    assert!(ended_at - logged_at > Duration::from_secs(1), "logged only just before the end");

    let lines = slow_lines(&read_log());
    assert_eq!(lines.len(), 1, "one line per slow request: {lines:?}");
    let line = lines[0].clone();
    let status = request(&server, "/status");
    let page = String::from_utf8_lossy(&status.stdout).into_owned();
    assert!(page.contains("\nslow requests:        1\n"), "{page}");
    line
}

#[test]
fn a_slow_request_is_logged_to_the_log_while_it_runs_and_counted() {
    let dir = scratch();
    let line = slow_request_is_logged_while_it_runs(None, dir.path());
    assert_eq!(field(&line, "method"), Some("GET"));
    assert!(field(&line, "uri").is_some_and(|uri| uri.ends_with("sleep.sh?q=1")), "{line}");
    assert_eq!(field(&line, "remote_addr"), Some("127.0.0.1"));
    let elapsed: u64 =
        field(&line, "elapsed_ms").and_then(|ms| ms.parse().ok()).expect("elapsed_ms");
    assert!((500..3000).contains(&elapsed), "{line}");
    assert!(field(&line, "pid").is_some_and(|pid| pid.parse::<u32>().is_ok()), "{line}");
    assert!(field(&line, "thread").is_some_and(|t| t.starts_with("fcgi-worker")), "{line}");
    // The CGI program that runs: the script wrote its own pid.
    let script_pid = fs::read_to_string(dir.path().join("sleep.pid")).expect("the script's pid");
    assert_eq!(field(&line, "child_pid"), Some(script_pid.trim()), "{line}");
}

#[test]
fn slow_log_sends_the_lines_to_their_own_file() {
    let dir = scratch();
    let file = dir.path().join("slow.log");
    let line = slow_request_is_logged_while_it_runs(Some(&file), dir.path());
    assert!(field(&line, "tid").is_some(), "{line}");
    let main_log = fs::read_to_string(dir.path().join("fcgi.log")).unwrap_or_default();
    assert!(slow_lines(&main_log).is_empty(), "slow lines in the main log too:\n{main_log}");
}
