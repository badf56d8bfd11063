//! The shipped systemd units (dist/systemd), tested without a running systemd: the socket
//! handed over by `systemd-socket-activate` as systemd does it (LISTEN_FDS), the service's
//! readiness notifications read from a NOTIFY_SOCKET this test binds, and the unit files
//! checked by `systemd-analyze verify` and `systemd-analyze security --offline`; and a socket
//! unit of several sockets in front of a master of pools, each socket reaching its pool.

use std::fs;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use fcgi_tests::nginx::scratch;
use fcgi_tests::process::{fcgi_bin, wait_until, Guarded, START_TIMEOUT};

/// How long a notification may take to come.
const NOTIFY_TIMEOUT: Duration = Duration::from_secs(15);
/// The worst `systemd-analyze security` exposure the shipped service may have, in its tenths
/// (the scale of `--threshold`): 2.0, well inside "OK" (the unit scores 1.4 as shipped).
const EXPOSURE_THRESHOLD: &str = "20";

/// The repository's dist/systemd directory.
fn units_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../dist/systemd")
}

/// The value of `key=` in a unit file (the first such line).
fn unit_value(unit: &str, key: &str) -> String {
    let text = fs::read_to_string(units_dir().join(unit)).expect("the unit file");
    let prefix = format!("{key}=");
    text.lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no {key}= in {unit}"))
        .to_owned()
}

/// A tool of the Debian package `systemd` (tests/deps.sh installs it).
fn systemd_tool(name: &str) -> PathBuf {
    let path = Path::new("/usr/bin").join(name);
    assert!(path.exists(), "{} is missing: run `make deps` (package systemd)", path.display());
    path
}

/// The unit's ExecStart, with the binary and the config file moved: `fcgi_bin()` and `config`.
fn exec_start(config: &Path) -> Vec<String> {
    let line = unit_value("fcgi.service", "ExecStart");
    let mut words = line.split_whitespace();
    let binary = words.next().expect("a binary");
    assert!(binary.ends_with("/fcgi"), "ExecStart runs fcgi: {line}");
    let mut argv = vec![fcgi_bin().display().to_string()];
    argv.extend(words.map(|w| match w {
        "/etc/fcgi-rs/serve.conf" => config.display().to_string(),
        other => other.to_owned(),
    }));
    argv
}

/// A notification socket, as systemd binds it for a service, read with a timeout.
struct NotifySocket {
    socket: UnixDatagram,
    path: PathBuf,
    /// Every message received so far.
    received: Vec<String>,
}

impl NotifySocket {
    fn bind(dir: &Path) -> NotifySocket {
        let path = dir.join("notify.sock");
        let socket = UnixDatagram::bind(&path).expect("the notify socket");
        socket.set_read_timeout(Some(Duration::from_millis(100))).expect("a read timeout");
        NotifySocket { socket, path, received: Vec::new() }
    }

    /// Waits for the next message that has the line `field`; returns it.
    fn expect(&mut self, field: &str) -> String {
        let deadline = Instant::now() + NOTIFY_TIMEOUT;
        let mut buf = [0; 4096];
        while Instant::now() < deadline {
            let Ok(n) = self.socket.recv(&mut buf) else { continue };
            let message = String::from_utf8_lossy(&buf[..n]).into_owned();
            self.received.push(message.clone());
            if message.lines().any(|line| line == field) {
                return message;
            }
        }
        panic!("no {field} within {NOTIFY_TIMEOUT:?}; received: {:?}", self.received)
    }
}

/// `fcgi request` against `socket`: its exit status and output.
fn fcgi_request(socket: &Path) -> (bool, String) {
    let output = Command::new(fcgi_bin())
        .args(["request", "--timeout", "5", "--connect"])
        .arg(format!("unix:{}", socket.display()))
        .arg("/")
        .output()
        .expect("fcgi request runs");
    (output.status.success(), String::from_utf8_lossy(&output.stdout).into_owned())
}

#[test]
fn the_shipped_units_start_reload_and_stop_with_notifications_under_socket_activation() {
    let dir = scratch();
    // The config as shipped, in a copy (it names no path to move).
    let config = dir.path().join("serve.conf");
    fs::copy(units_dir().join("serve.conf"), &config).expect("serve.conf copied");
    let socket_path = dir.path().join(
        Path::new(&unit_value("fcgi.socket", "ListenStream")).file_name().expect("a socket path"),
    );
    let mut notify = NotifySocket::bind(dir.path());

    // ExecStartPre: the config checks out.
    let check = unit_value("fcgi.service", "ExecStartPre");
    let mut words = check.split_whitespace();
    assert!(words.next().is_some_and(|w| w.ends_with("/fcgi")), "{check}");
    let args: Vec<String> = words
        .map(|w| match w {
            "/etc/fcgi-rs/serve.conf" => config.display().to_string(),
            other => other.to_owned(),
        })
        .collect();
    assert!(args.iter().any(|a| a == "--check"), "ExecStartPre checks the config: {check}");
    let output = Command::new(fcgi_bin()).args(&args).output().expect("fcgi serve --check runs");
    assert!(
        output.status.success() && String::from_utf8_lossy(&output.stdout).contains("ok"),
        "{check}: {}",
        String::from_utf8_lossy(&output.stderr)
    );

    let mut command = Command::new(systemd_tool("systemd-socket-activate"));
    command
        .arg("--listen")
        .arg(&socket_path)
        .arg(format!("--setenv=NOTIFY_SOCKET={}", notify.path.display()))
        .args(exec_start(&config));
    let mut service = Guarded::spawn("fcgi.service", command, &dir.path().join("service.log"));
    let log = || fs::read_to_string(dir.path().join("service.log")).unwrap_or_default();
    assert!(
        wait_until(START_TIMEOUT, || socket_path.exists()),
        "systemd-socket-activate did not listen:\n{}",
        log()
    );
    // systemd-socket-activate executes the service at the first connection, as the service's
    // own process (so this pid is fcgi's master, as $MAINPID would be).
    let (ok, body) = fcgi_request(&socket_path);
    assert!(ok && body.contains("Hello"), "the first request: {body}\n{}", log());
    let ready = notify.expect("READY=1");
    assert!(ready.contains("STATUS=serving: 4 workers"), "{ready}");
    assert!(service.is_running(), "{}", log());

    service.signal(libc::SIGHUP);
    let reloading = notify.expect("RELOADING=1");
    assert!(reloading.lines().any(|l| l.starts_with("MONOTONIC_USEC=")), "{reloading}");
    let ready = notify.expect("READY=1");
    assert!(ready.contains("generation 1"), "READY=1 after the new workers serve: {ready}");
    let (ok, body) = fcgi_request(&socket_path);
    assert!(ok && body.contains("Hello"), "after the reload: {body}");

    service.signal(libc::SIGTERM);
    notify.expect("STOPPING=1");
    let status = service.wait_exit(Duration::from_secs(40)).expect("the service stops");
    assert!(status.success(), "{status:?}\n{}", log());
    let order: Vec<&str> =
        notify.received.iter().filter_map(|m| m.lines().find(|l| l.ends_with("=1"))).collect();
    assert_eq!(order, ["READY=1", "RELOADING=1", "READY=1", "STOPPING=1"]);
}

#[test]
fn a_single_process_notifies_an_abstract_socket() {
    let dir = scratch();
    let name = format!("fcgi-test-notify-{}", std::process::id());
    let addr =
        <std::os::unix::net::SocketAddr as std::os::linux::net::SocketAddrExt>::from_abstract_name(
            name.as_bytes(),
        )
        .expect("an abstract address");
    let notify = UnixDatagram::bind_addr(&addr).expect("the abstract notify socket");
    notify.set_read_timeout(Some(Duration::from_millis(100))).expect("a read timeout");
    let socket = dir.path().join("single.sock");
    let mut command = Command::new(fcgi_bin());
    command
        .args(["serve", "--app", "hello", "--listen"])
        .arg(format!("unix:{}", socket.display()))
        .env("NOTIFY_SOCKET", format!("@{name}"));
    let mut service = Guarded::spawn("single", command, &dir.path().join("single.log"));
    let mut received = Vec::new();
    let mut next = |field: &str| {
        let deadline = Instant::now() + NOTIFY_TIMEOUT;
        let mut buf = [0; 4096];
        while Instant::now() < deadline {
            if let Ok(n) = notify.recv(&mut buf) {
                let message = String::from_utf8_lossy(&buf[..n]).into_owned();
                received.push(message.clone());
                if message.lines().any(|l| l == field) {
                    return message;
                }
            }
        }
        panic!("no {field}; received {received:?}")
    };
    let ready = next("READY=1");
    assert!(ready.contains("STATUS=serving: a single process"), "{ready}");
    let (ok, _) = fcgi_request(&socket);
    assert!(ok, "it serves once ready");
    service.signal(libc::SIGTERM);
    next("STOPPING=1");
    assert!(service.wait_exit(Duration::from_secs(10)).is_some_and(|s| s.success()));
}

/// The units copied to `dir`, with every `/usr/local/bin/fcgi` and `/etc/fcgi-rs/serve.conf`
/// pointed at the built binary and a copy of the shipped config (`systemd-analyze verify`
/// checks that each command exists).
fn units_for_analysis(dir: &Path) -> (PathBuf, PathBuf) {
    let config = dir.join("serve.conf");
    fs::copy(units_dir().join("serve.conf"), &config).expect("serve.conf copied");
    let mut paths = Vec::new();
    for unit in ["fcgi.socket", "fcgi.service"] {
        let text = fs::read_to_string(units_dir().join(unit)).expect("the unit");
        let text = text
            .replace("/usr/local/bin/fcgi", &fcgi_bin().display().to_string())
            .replace("/etc/fcgi-rs/serve.conf", &config.display().to_string());
        let path = dir.join(unit);
        fs::write(&path, text).expect("the unit copied");
        paths.push(path);
    }
    (paths.remove(0), paths.remove(0))
}

#[test]
fn the_shipped_units_pass_systemd_analyze_verify() {
    let dir = scratch();
    let (socket, service) = units_for_analysis(dir.path());
    let output = Command::new(systemd_tool("systemd-analyze"))
        .arg("verify")
        .args([&socket, &service])
        .output()
        .expect("systemd-analyze runs");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success() && said.trim().is_empty(), "{:?}: {said}", output.status);
}

#[test]
fn the_shipped_service_is_hardened() {
    let dir = scratch();
    let (_, service) = units_for_analysis(dir.path());
    let output = Command::new(systemd_tool("systemd-analyze"))
        .args(["security", "--offline=yes", "--no-pager"])
        .arg(format!("--threshold={EXPOSURE_THRESHOLD}"))
        .arg(&service)
        .output()
        .expect("systemd-analyze runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let overall = stdout.lines().find(|l| l.contains("Overall exposure level")).unwrap_or("");
    assert!(
        output.status.success(),
        "exposure above {EXPOSURE_THRESHOLD} tenths: {overall}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // What CGI rules out is said in the unit, not just left out.
    let unit = fs::read_to_string(units_dir().join("fcgi.service")).expect("the unit");
    assert!(unit.contains("MemoryDenyWriteExecute"), "the unit says why it is not set");
}

#[test]
fn a_socket_unit_hands_each_pool_its_socket_by_address() {
    let dir = scratch();
    let mut notify = NotifySocket::bind(dir.path());
    let sockets = [dir.path().join("www.sock"), dir.path().join("git.sock")];
    let config = dir.path().join("pools.conf");
    let mut text = "log-format = json\n".to_owned();
    // In the file's order git first: the sockets' order (www is fd 3) is not the pools'.
    for (pool, socket) in [("git", &sockets[1]), ("www", &sockets[0])] {
        text += &format!("[{pool}]\napp = hello\nlisten = unix:{}\n", socket.display());
    }
    fs::write(&config, text).expect("the config file");
    let mut command = Command::new(systemd_tool("systemd-socket-activate"));
    for socket in &sockets {
        command.arg("--listen").arg(socket);
    }
    command
        .arg(format!("--setenv=NOTIFY_SOCKET={}", notify.path.display()))
        .arg(fcgi_bin())
        .args(["serve", "--config"])
        .arg(&config);
    let log = dir.path().join("service.log");
    let mut service = Guarded::spawn("pools.service", command, &log);
    let text = || fs::read_to_string(&log).unwrap_or_default();
    assert!(wait_until(START_TIMEOUT, || sockets.iter().all(|s| s.exists())), "{}", text());
    // The first connection starts the master, which starts every pool.
    for socket in &sockets {
        let (ok, body) = fcgi_request(socket);
        assert!(ok && body.contains("Hello"), "{}: {body}\n{}", socket.display(), text());
    }
    let ready = notify.expect("READY=1");
    assert!(ready.contains("STATUS=2 pools serving"), "{ready}");
    // Each pool serves the descriptor whose address its listen names, and binds nothing.
    let listening: Vec<serde_json::Value> = text()
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|line| line["msg"] == "listening")
        .collect();
    for (pool, socket, fd) in [("www", &sockets[0], 3), ("git", &sockets[1], 4)] {
        let on = format!("fd:{fd} (unix:{})", socket.display());
        assert!(
            listening.iter().any(|line| line["pool"] == pool && line["on"] == on.as_str()),
            "[{pool}] does not listen on {on}: {listening:?}"
        );
    }
    service.signal(libc::SIGTERM);
    notify.expect("STOPPING=1");
    let status = service.wait_exit(Duration::from_secs(40)).expect("the master stops");
    assert_eq!(status.code(), Some(0), "{}", text());
}
