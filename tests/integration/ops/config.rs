//! `fcgi serve`'s configuration as an operator meets it: `--config` alone, `--check`, the
//! command line winning over the file, inline comments, byte sizes, options that do nothing,
//! a HUP that changes the master's log format, a pid file that names a live server, and a file
//! of pools, each served with `--pool NAME`.

use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use fcgi_tests::nginx::scratch;
use fcgi_tests::process::{fcgi_bin, wait_until, Guarded, START_TIMEOUT};

/// How long `fcgi serve --check`, or a refused start, may take to exit.
const EXIT_TIMEOUT: Duration = Duration::from_secs(10);

/// What `fcgi serve ARGS` said (standard output and error) and how it exited (`None`: still
/// running after [`EXIT_TIMEOUT`], then stopped), for `--check` and refusals, which exit at once.
struct Run {
    code: Option<i32>,
    said: String,
}

fn serve(args: &[&str]) -> Run {
    let dir = scratch();
    let log = dir.path().join("said");
    let mut command = Command::new(fcgi_bin());
    command.arg("serve").args(args);
    let mut process = Guarded::spawn("serve", command, &log);
    let status = process.wait_exit(EXIT_TIMEOUT);
    drop(process);
    Run { code: status.and_then(|s| s.code()), said: read(&log) }
}

/// Writes `text` to `dir/name` and returns its path as a string.
fn file(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    fs::write(&path, text).expect("written");
    path.display().to_string()
}

/// Starts `fcgi serve ARGS` and waits until `socket` accepts connections.
fn start(dir: &Path, name: &str, args: &[&str], socket: &Path) -> Guarded {
    let mut command = Command::new(fcgi_bin());
    command.arg("serve").args(args);
    let log = dir.join(format!("{name}.out"));
    let mut process = Guarded::spawn(name, command, &log);
    let up = wait_until(START_TIMEOUT, || {
        !process.is_running() || std::os::unix::net::UnixStream::connect(socket).is_ok()
    });
    assert!(up && process.is_running(), "{name} did not start:\n{}", read(&log));
    process
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_default()
}

/// `fcgi request` to `socket` for `/`, with `body` (POST) if given: (exit ok, stdout with -i).
fn request(socket: &Path, body: Option<&Path>) -> (bool, String) {
    let mut command = Command::new(fcgi_bin());
    command.args(["request", "-i", "--timeout", "5", "--connect"]);
    command.arg(format!("unix:{}", socket.display()));
    if let Some(body) = body {
        command.arg("--stdin").arg(body);
    }
    let output = command.arg("/").output().expect("fcgi request runs");
    (output.status.success(), String::from_utf8_lossy(&output.stdout).into_owned())
}

#[test]
fn check_says_ok_for_the_shipped_config_and_binds_nothing() {
    let dir = scratch();
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("../dist/systemd/serve.conf");
    let socket = dir.path().join("never.sock");
    let listen = format!("unix:{}", socket.display());
    let output =
        serve(&["--config", shipped.to_str().expect("utf-8"), "--listen", &listen, "--check"]);
    assert_eq!(output.code, Some(0), "{}", output.said);
    assert!(output.said.contains("configuration ok"));
    assert!(!socket.exists(), "--check bound {}", socket.display());
}

#[test]
fn check_reports_every_error_with_its_line_and_exits_2() {
    let dir = scratch();
    let config = file(
        dir.path(),
        "bad.conf",
        "app = hello\nworkers = four\n# fine\ncgi-root = /srv/cgi   # not for hello\nnosuch = 1\n",
    );
    let output = serve(&["--config", &config, "--check"]);
    assert_eq!(output.code, Some(2));
    let text = output.said.clone();
    for (line, what) in [(2, "--workers"), (4, "--cgi-root"), (5, "nosuch")] {
        let prefix = format!("bad.conf:{line}: ");
        assert!(
            text.lines().any(|l| l.contains(&prefix) && l.contains(what)),
            "no error for line {line} ({what}) in:\n{text}"
        );
    }
}

#[test]
fn the_config_file_alone_suffices() {
    let dir = scratch();
    let socket = dir.path().join("alone.sock");
    let config = file(
        dir.path(),
        "alone.conf",
        &format!(
            "app = hello   # every option may come from here\nlisten = unix:{}\n",
            socket.display()
        ),
    );
    let _server = start(dir.path(), "alone", &["--config", &config], &socket);
    let (ok, response) = request(&socket, None);
    assert!(ok && response.contains("Hello"), "{response}");
}

#[test]
fn the_command_line_replaces_the_files_listen_list() {
    let dir = scratch();
    let from_file = dir.path().join("file.sock");
    let from_command_line = dir.path().join("cli.sock");
    let config =
        file(dir.path(), "listen.conf", &format!("listen = unix:{}\n", from_file.display()));
    let listen = format!("unix:{}", from_command_line.display());
    let args = ["--app", "hello", "--config", &config, "--listen", &listen];
    let _server = start(dir.path(), "listen", &args, &from_command_line);
    assert!(!from_file.exists(), "the file's --listen was bound as well");
}

#[test]
fn byte_sizes_take_suffixes_in_the_file_and_on_the_command_line() {
    let dir = scratch();
    let body = dir.path().join("body");
    fs::write(&body, vec![b'x'; 2048]).expect("a 2 KiB body");
    let small = dir.path().join("small.bin");
    fs::write(&small, vec![b'x'; 512]).expect("a small body");
    let file_socket = dir.path().join("sizes.sock");
    let config = file(
        dir.path(),
        "sizes.conf",
        &format!("app = echo\nmax-body = 1K # bytes\nlisten = unix:{}\n", file_socket.display()),
    );
    let cli_socket = dir.path().join("cli.sock");
    let listen = format!("unix:{}", cli_socket.display());
    let servers = [
        (start(dir.path(), "sizes", &["--config", &config], &file_socket), &file_socket),
        (
            start(
                dir.path(),
                "cli",
                &["--app", "echo", "--max-body", "1K", "--listen", &listen],
                &cli_socket,
            ),
            &cli_socket,
        ),
    ];
    for (_server, socket) in &servers {
        let (_, response) = request(socket, Some(&body));
        assert!(response.starts_with("Status: 413"), "2 KiB past 1K: {response}");
        let (ok, response) = request(socket, Some(&small));
        assert!(ok && response.contains("Status: 200"), "512 bytes: {response}");
    }
}

#[test]
fn options_that_do_nothing_are_refused_naming_the_option() {
    let cases: [(&[&str], &str); 5] = [
        (&["--app", "hello", "--cgi-root", "/srv/cgi"], "--cgi-root"),
        // Two listeners on one inherited descriptor would be two owners closing it.
        (
            &["--app", "hello", "--listen", "fd:3", "--listen", "fd:3"],
            "--listen fd:3 is given twice",
        ),
        (&["--app", "hello", "--max-requests-jitter", "100"], "--max-requests-jitter"),
        (&["--app", "hello", "--listen", "127.0.0.1:1", "--socket-mode", "660"], "--socket-mode"),
        (&["--app", "hello", "--workers", "0"], "--workers"),
    ];
    for (args, option) in cases {
        let output = serve(args);
        let text = output.said.clone();
        assert_eq!(output.code, Some(2), "fcgi serve {args:?}: {text}");
        assert!(text.contains(option), "fcgi serve {args:?} names {option}: {text}");
    }
    // What would fail the start fails --check too (a systemd unit's ExecStartPre).
    let cases: [(&[&str], &str); 3] = [
        (&["--app", "hello", "--user", "no-such-user-here", "--check"], "--user no-such-user-here"),
        (&["--app", "hello", "--group", "no-such-group-here", "--check"], "--group"),
        (&["--app", "hello", "--listen", "unix:/no-such-dir/a.sock", "--check"], "/no-such-dir"),
    ];
    for (args, option) in cases {
        let output = serve(args);
        let text = output.said.clone();
        assert_eq!(output.code, Some(2), "fcgi serve {args:?}: {text}");
        assert!(text.contains(option), "fcgi serve {args:?} names {option}: {text}");
    }
    // A warning, not an error, where the socket's owner may have meant it: no --listen.
    let output = serve(&["--app", "hello", "--backlog", "64", "--check"]);
    assert_eq!(output.code, Some(0), "{}", output.said);
    assert!(output.said.contains("warning: --backlog"), "{}", output.said);
}

/// The JSON log lines of `text` with the master's role.
fn master_json_lines(text: &str) -> usize {
    text.lines().filter(|l| l.starts_with('{') && l.contains("\"role\":\"master\"")).count()
}

#[test]
fn hup_applies_a_new_log_format_to_the_master_too() {
    let dir = scratch();
    let socket = dir.path().join("format.sock");
    let log = dir.path().join("format.log");
    let common = format!(
        "master = true\nlisten = unix:{}\nlog-file = {}\n",
        socket.display(),
        log.display()
    );
    let config = file(dir.path(), "format.conf", &format!("{common}log-format = term\n"));
    let server = start(dir.path(), "format", &["--app", "hello", "--config", &config], &socket);
    assert_eq!(master_json_lines(&read(&log)), 0, "term lines first:\n{}", read(&log));
    fs::write(&config, format!("{common}log-format = json\n")).expect("the new format");
    server.signal(libc::SIGHUP);
    assert!(
        wait_until(Duration::from_secs(10), || master_json_lines(&read(&log)) > 0),
        "no JSON line from the master after the reload:\n{}",
        read(&log)
    );
}

#[test]
fn a_pid_file_naming_a_live_server_is_not_overwritten() {
    let dir = scratch();
    let pid_file = dir.path().join("fcgi.pid");
    let pid_arg = pid_file.display().to_string();
    let first = dir.path().join("first.sock");
    let listen = format!("unix:{}", first.display());
    let server = start(
        dir.path(),
        "first",
        &["--app", "hello", "--listen", &listen, "--pid-file", &pid_arg],
        &first,
    );
    assert!(wait_until(START_TIMEOUT, || pid_file.exists()), "the pid file is written");
    let pid = server.pid().to_string();
    assert_eq!(read(&pid_file).trim(), pid);

    let second = dir.path().join("second.sock");
    let listen = format!("unix:{}", second.display());
    let output = serve(&["--app", "hello", "--listen", &listen, "--pid-file", &pid_arg]);
    let text = output.said.clone();
    assert_eq!(output.code, Some(2), "{text}");
    assert!(text.contains(&pid_arg) && text.contains(&pid), "names the file and the pid: {text}");
    assert_eq!(read(&pid_file).trim(), pid, "the pid file is left alone");
    assert!(!second.exists(), "nothing was bound");

    // A stale one (a pid that is no fcgi: this test) is overwritten.
    let stale = dir.path().join("stale.pid");
    fs::write(&stale, format!("{}\n", std::process::id())).expect("a stale pid file");
    let third = dir.path().join("third.sock");
    let listen = format!("unix:{}", third.display());
    let stale_arg = stale.display().to_string();
    let third_server = start(
        dir.path(),
        "third",
        &["--app", "hello", "--listen", &listen, "--pid-file", &stale_arg],
        &third,
    );
    let third_pid = third_server.pid().to_string();
    assert!(wait_until(START_TIMEOUT, || read(&stale).trim() == third_pid), "overwritten");
}

/// A file of two pools, [www] and [git], on sockets of their own in `dir`, sharing a log
/// format; git's shows its status page at `/`, which names its pool.
fn pools_file(dir: &Path, git_socket: &Path) -> String {
    let www = dir.join("www.sock");
    let text = format!(
        "log-format = json   # shared by every pool\n\n[www]\napp = hello\nlisten = unix:{}\n\n\
         [git]\napp = hello\nstatus-path = /\nlisten = unix:{}\n",
        www.display(),
        git_socket.display()
    );
    file(dir, "pools.conf", &text)
}

#[test]
fn each_pool_of_a_file_is_served_on_its_own_with_pool() {
    let dir = scratch();
    let (www, git) = (dir.path().join("www.sock"), dir.path().join("git.sock"));
    let config = pools_file(dir.path(), &git);
    let _www = start(dir.path(), "www", &["--config", &config, "--pool", "www"], &www);
    let _git = start(dir.path(), "git", &["--config", &config, "--pool", "git"], &git);
    let (ok, response) = request(&www, None);
    assert!(ok && response.contains("Hello"), "[www] serves its app: {response}");
    let (ok, response) = request(&git, None);
    let pool = response.lines().find(|line| line.starts_with("pool:"));
    assert!(ok && pool.is_some_and(|line| line.ends_with(" git")), "[git]'s name: {response}");
    // The shared part applies to both: JSON lines, each naming its pool.
    for pool in ["www", "git"] {
        let log = read(&dir.path().join(format!("{pool}.out")));
        let first = log.lines().next().unwrap_or_default();
        let line: serde_json::Value = serde_json::from_str(first).unwrap_or_default();
        assert_eq!(line["pool"], pool, "not a JSON line of [{pool}]: {first}");
    }
}

#[test]
fn check_of_a_file_with_pools_checks_every_pool() {
    let dir = scratch();
    let git = dir.path().join("git.sock");
    let config = pools_file(dir.path(), &git);
    let output = serve(&["--config", &config, "--check"]);
    assert_eq!(output.code, Some(0), "{}", output.said);
    assert!(output.said.contains("pools www, git"), "{}", output.said);
    assert!(!git.exists(), "--check bound {}", git.display());
    let output = serve(&["--config", &config, "--pool", "svn"]);
    assert_eq!(output.code, Some(2), "{}", output.said);
    assert!(output.said.contains("no such pool"), "{}", output.said);

    let bad = file(
        dir.path(),
        "bad.conf",
        "workers = 2\n[a]\napp = hello\nlisten = unix:/run/a.sock\n[b]\napp = hello\n\
         listen = unix:/run/b.sock\n[a]\nmax-body = 1Q\n[c]\n",
    );
    let output = serve(&["--config", &bad, "--check"]);
    assert_eq!(output.code, Some(2), "{}", output.said);
    let text = &output.said;
    for (line, what) in
        [(1, "`workers`"), (8, "already defined"), (9, "--max-body"), (10, "no option")]
    {
        let prefix = format!("bad.conf:{line}: ");
        let found = text.lines().filter(|l| l.contains(&prefix) && l.contains(what)).count();
        assert_eq!(found, 1, "one error for line {line} ({what}) in:\n{text}");
    }
    let clash = file(
        dir.path(),
        "clash.conf",
        "[a]\napp = hello\nlisten = unix:/run/one.sock\n[b]\napp = hello\nlisten = unix:/run/one.sock\n\
         [c]\napp = hello\n",
    );
    let output = serve(&["--config", &clash, "--check"]);
    assert_eq!(output.code, Some(2), "{}", output.said);
    assert!(output.said.contains("[b] --listen unix:/run/one.sock: pool [a]"), "{}", output.said);
    assert!(output.said.contains("[c] no --listen"), "{}", output.said);
    // One pool alone may inherit its sockets (a socket unit of its own).
    let output = serve(&["--config", &clash, "--pool", "c", "--check"]);
    assert_eq!(output.code, Some(0), "{}", output.said);
}
