//! An app author's binary (`fcgi-myapp`, an axum app through `fcgi_http::run`) run as an
//! operator runs `fcgi serve`: a binary upgrade (USR2) under POSTs, a reload (HUP) that
//! re-reads the config file and one that meets a broken file, `--max-requests` recycling,
//! graceful and fast stops with a request running, `--user`, systemd's socket activation,
//! and the exit statuses of the failures an operator meets first.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use fcgi_tests::master::{alive, assert_clean, fcgi_request, read_pid, signal, Served};
use fcgi_tests::nginx::scratch;
use fcgi_tests::process::{fcgi_bin, wait_until, Guarded, START_TIMEOUT};
use fcgi_tests::settings::skip;
use fcgi_tests::wrk::Wrk;

/// How long a command that exits at once (a refusal) may take.
const EXIT_TIMEOUT: Duration = Duration::from_secs(10);
/// What `/sleep` is asked to take when a fast stop is to cut it: longer than the master waits
/// before it kills a worker that ignores a fast stop (fcgi-prefork's kill grace), so that a
/// worker that does not stop at once fails the test however the master ends it.
const LONG_SLEEP_MS: u64 = 20_000;
/// What `/sleep` is asked to take when a graceful stop is to let it finish.
const SHORT_SLEEP_MS: u64 = 2_000;

/// `fcgi-myapp`, built beside `fcgi`.
fn myapp() -> PathBuf {
    let bin = fcgi_bin().with_file_name("fcgi-myapp");
    assert!(bin.exists(), "{} is missing: `cargo build --workspace --bins`", bin.display());
    bin
}

/// `fcgi-myapp --listen unix:DIR/NAME.sock --pid-file DIR/NAME.pid --log-format json EXTRA...`.
fn command(dir: &Path, name: &str, extra: &[&str]) -> Command {
    command_of(&myapp(), dir, name, extra)
}

/// [`command`] with another binary.
fn command_of(binary: &Path, dir: &Path, name: &str, extra: &[&str]) -> Command {
    let mut command = Command::new(binary);
    command.arg("--listen").arg(format!("unix:{}", dir.join(format!("{name}.sock")).display()));
    command.arg("--pid-file").arg(dir.join(format!("{name}.pid")));
    command.args(["--log-format", "json"]).args(extra);
    command
}

/// What `fcgi-myapp ARGS` said (stdout and stderr) and its exit code, for commands that exit.
fn said(args: &[&str]) -> (Option<i32>, String) {
    let dir = scratch();
    let log = dir.path().join("said");
    let mut command = Command::new(myapp());
    command.args(args);
    let mut process = Guarded::spawn("fcgi-myapp", command, &log);
    let status = process.wait_exit(EXIT_TIMEOUT);
    drop(process);
    (status.and_then(|s| s.code()), fs::read_to_string(&log).unwrap_or_default())
}

/// The first string of `/proc/PID/cmdline`, as `ps -o args` shows it: the process title.
fn cmdline(pid: u32) -> String {
    let raw = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let end = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
    String::from_utf8_lossy(&raw[..end]).into_owned()
}

/// The inodes of the sockets process `pid` holds open (`socket:[N]` in /proc/PID/fd).
fn socket_inodes(pid: u32) -> BTreeSet<u64> {
    let Ok(entries) = fs::read_dir(format!("/proc/{pid}/fd")) else { return BTreeSet::new() };
    entries
        .filter_map(Result::ok)
        .filter_map(|entry| fs::read_link(entry.path()).ok())
        .filter_map(|target| {
            let target = target.to_string_lossy().into_owned();
            target.strip_prefix("socket:[")?.strip_suffix(']')?.parse().ok()
        })
        .collect()
}

/// The JSON lines of a log (others, such as a panic's, are left out).
fn json_lines(text: &str) -> Vec<serde_json::Value> {
    text.lines().filter_map(|line| serde_json::from_str(line).ok()).collect()
}

/// Waits until `served` runs `wanted` workers, none of them in `before`.
fn replaced(served: &Served, before: &[u32], wanted: usize) -> bool {
    wait_until(Duration::from_secs(20), || {
        let now = served.workers();
        now.len() == wanted && now.iter().all(|pid| !before.contains(pid))
    })
}

#[test]
fn usr2_execs_the_app_binary_again_with_its_argv_and_no_post_fails() {
    let dir = scratch();
    let extra = ["--workers", "3", "--status-path", "/status"];
    let mut served = Served::start(dir.path(), "up", command(dir.path(), "up", &extra), 3);
    let nginx = served.nginx(dir.path());
    let old = served.pid();
    let sockets = socket_inodes(old);
    let socket_file = fs::metadata(&served.socket).expect("the socket file").ino();

    let wrk = Wrk::post(nginx.port(), 16, 8, "/pid", dir.path());
    assert!(nginx.wait_requests(500, Duration::from_secs(10)), "no load through nginx");
    let new_master = served.upgrade();
    let new = new_master.0;
    let wrk = wrk.join().expect("wrk thread");
    assert_eq!(wrk.failures(), 0, "{}\nnginx: {}", wrk.output, nginx.error_log());
    assert_clean(&wrk, 1_000);
    eprintln!("POSTs through USR2: {} requests, 0 failures", wrk.requests());

    // The same binary, as the same command line made it: its title counts the `--workers`
    // of the argv, and it wrote the argv's pid file.
    let exe = fs::read_link(format!("/proc/{new}/exe")).expect("the new master's exe");
    assert_eq!(exe, myapp(), "the new master runs the app binary");
    assert_eq!(cmdline(new), "fcgi-myapp: master [3 workers]");
    assert!(wait_until(Duration::from_secs(10), || fcgi_tests::master::children(new).len() == 3));
    assert_eq!(read_pid(&served.pid_file), Some(new));
    // No socket closed: the new master holds the listening socket the old one had, and the
    // socket file is the one bound at start.
    assert!(
        !socket_inodes(new).is_disjoint(&sockets),
        "the new master holds none of the old one's sockets {sockets:?}"
    );
    assert_eq!(fs::metadata(&served.socket).expect("the socket file").ino(), socket_file);
    let status = nginx.get("/status?json").expect("GET /status");
    let page: serde_json::Value = serde_json::from_slice(&status.body).expect("json");
    assert_eq!(page["fcgi-rs"]["workers"], 3, "the argv's --status-path and --workers: {page}");

    signal(new, libc::SIGTERM);
    assert!(wait_until(Duration::from_secs(15), || !alive(new)), "{}", served.log_text());
}

#[test]
fn usr2_runs_the_binary_deployed_at_its_path_since() {
    // A deploy as package managers do it: the new build renamed over the running one's path.
    let dir = scratch();
    let installed = dir.path().join("myapp");
    fs::copy(myapp(), &installed).expect("myapp installed");
    let command = command_of(&installed, dir.path(), "deploy", &["--workers", "2"]);
    let mut served = Served::start(dir.path(), "deploy", command, 2);
    let (code, body) = fcgi_request(&served.socket, "/hello", 5);
    assert_eq!((code, body.trim()), (Some(0), "Hello, world!"), "{}", served.log_text());

    let next = dir.path().join("myapp.next");
    fs::copy(fcgi_bin().with_file_name("fcgi-handler-app"), &next).expect("the next build");
    fs::rename(&next, &installed).expect("deployed");
    let new_master = served.upgrade();
    let new = new_master.0;
    let exe = fs::read_link(format!("/proc/{new}/exe")).expect("the new master's exe");
    assert_eq!(exe, installed, "the new master runs the file now at the path");
    assert_eq!(cmdline(new), "myapp: master [2 workers]", "named by its path, as before");
    let (code, body) = fcgi_request(&served.socket, "/", 5);
    assert_eq!(code, Some(0), "{body}\n{}", served.log_text());
    assert!(body.contains("served by "), "the deployed build answers: {body}");
}

#[test]
fn hup_rereads_the_config_file_and_keeps_the_workers_when_it_is_broken() {
    let dir = scratch();
    let config = dir.path().join("app.conf");
    fs::write(&config, "workers = 2\n").expect("written");
    let config_arg = config.display().to_string();
    let command = command(dir.path(), "conf", &["--config", &config_arg]);
    let served = Served::start(dir.path(), "conf", command, 2);
    let master = served.pid();

    fs::write(&config, "# three now\nworkers = 3\n").expect("written");
    let before = served.workers();
    signal(master, libc::SIGHUP);
    assert!(replaced(&served, &before, 3), "HUP read workers = 3:\n{}", served.log_text());
    assert_eq!(cmdline(master), "fcgi-myapp: master [3 workers]");

    fs::write(&config, "workers = four\n").expect("written");
    let running = served.workers();
    let errors_before =
        json_lines(&served.log_text()).iter().filter(|l| l["level"] == "ERRO").count();
    signal(master, libc::SIGHUP);
    let mut why = String::new();
    let logged = wait_until(Duration::from_secs(10), || {
        let errors: Vec<_> = json_lines(&served.log_text())
            .into_iter()
            .filter(|l| l["level"] == "ERRO" && l["pid"] == master)
            .collect();
        if let Some(error) = errors.get(errors_before) {
            why = error["error"].as_str().unwrap_or_default().to_owned();
        }
        !why.is_empty()
    });
    assert!(logged, "the failed reload is logged with an error field:\n{}", served.log_text());
    assert!(why.contains("app.conf:1"), "the error names the file's line: {why}");
    // The reload was refused before any fork: the same workers serve.
    assert_eq!(served.workers(), running, "{}", served.log_text());
    let (code, body) = fcgi_request(&served.socket, "/hello", 5);
    assert_eq!(code, Some(0), "{body}");
    assert!(alive(master));
}

#[test]
fn max_requests_recycles_the_workers_with_no_failed_post() {
    const LIMIT: u64 = 10;
    let dir = scratch();
    let limit = LIMIT.to_string();
    let extra = ["--workers", "2", "--max-requests", &limit];
    let served = Served::start(dir.path(), "recycle", command(dir.path(), "recycle", &extra), 2);
    let nginx = served.nginx(dir.path());

    // Until four workers answered: the first two, and two that replaced them.
    let mut answered: BTreeMap<u32, u64> = BTreeMap::new();
    let mut posts = 0;
    while answered.len() < 4 && posts < 200 * LIMIT {
        let post = nginx.post("/pid", "text/plain", b"x").expect("POST /pid");
        assert_eq!(
            post.status,
            200,
            "POST {posts}: {}\nnginx: {}",
            post.body_text(),
            nginx.error_log()
        );
        *answered.entry(post.body_text().trim().parse().expect("a pid")).or_default() += 1;
        posts += 1;
    }
    eprintln!("{posts} POSTs, answers per worker pid with --max-requests {LIMIT}: {answered:?}");
    assert!(answered.len() >= 4, "the workers were recycled: {answered:?}");
    let retired: Vec<_> = json_lines(&served.log_text())
        .into_iter()
        .filter(|l| l["limit"] == LIMIT && l["served"].is_u64())
        .collect();
    assert!(retired.len() >= 2, "workers retired at the limit:\n{}", served.log_text());
    for line in &retired {
        assert!(line["served"].as_u64() >= Some(LIMIT), "not before the limit: {line}");
        let pid = line["pid"].as_u64().and_then(|p| u32::try_from(p).ok()).expect("a pid");
        assert!(answered.get(&pid) >= Some(&LIMIT), "{pid} answered {answered:?}");
    }
}

/// Starts `GET /sleep?ms=MS` on its own thread, and waits until a worker runs it (the status
/// page counts a busy thread beside its own).
fn sleeping_request(served: &Served, ms: u64) -> thread::JoinHandle<(Option<i32>, String)> {
    let socket = served.socket.clone();
    let path = format!("/sleep?ms={ms}");
    let timeout = u32::try_from(ms / 1000 + 10).expect("a timeout");
    let request = thread::spawn(move || fcgi_request(&socket, &path, timeout));
    let running = wait_until(Duration::from_secs(10), || {
        let (_, body) = fcgi_request(&served.socket, "/status?json", 5);
        let start = body.find('{').unwrap_or(0);
        serde_json::from_str::<serde_json::Value>(&body[start..])
            .is_ok_and(|page| page["active processes"].as_u64() >= Some(2))
    });
    assert!(running, "the sleeping request runs:\n{}", served.log_text());
    request
}

/// Waits until a worker of `served` logged the graceful stop with a request in flight.
fn draining(served: &Served) -> bool {
    wait_until(Duration::from_secs(10), || {
        json_lines(&served.log_text()).iter().any(|l| l["in_flight"].as_u64() >= Some(1))
    })
}

#[test]
fn a_second_term_stops_at_once_while_a_request_runs() {
    for workers in ["1", "2"] {
        let dir = scratch();
        let extra = ["--workers", workers, "--status-path", "/status"];
        let mut served = Served::start(dir.path(), "fast", command(dir.path(), "fast", &extra), 0);
        let request = sleeping_request(&served, LONG_SLEEP_MS);
        let started = Instant::now();
        served.process.signal(libc::SIGTERM);
        // Both TERMs would make one pending signal if sent at once: the first is seen first.
        assert!(draining(&served), "the first TERM drains:\n{}", served.log_text());
        served.process.signal(libc::SIGTERM);
        let status = served.process.wait_exit(Duration::from_secs(30));
        let took = started.elapsed();
        assert!(status.is_some(), "--workers {workers}: the process exits:\n{}", served.log_text());
        eprintln!("--workers {workers}: second TERM: exited {status:?} {took:?} after the first");
        assert!(
            took < Duration::from_secs(3),
            "--workers {workers}: the second TERM stops at once, not after {took:?}:\n{}",
            served.log_text()
        );
        let (code, body) = request.join().expect("the request thread");
        assert!(code != Some(0) || !body.contains("slept"), "the request was cut: {code:?} {body}");
    }
}

#[test]
fn a_single_term_lets_the_running_request_finish() {
    let dir = scratch();
    let extra = ["--workers", "2", "--status-path", "/status"];
    let mut served = Served::start(dir.path(), "drain", command(dir.path(), "drain", &extra), 2);
    let request = sleeping_request(&served, SHORT_SLEEP_MS);
    signal(served.pid(), libc::SIGTERM);
    assert!(draining(&served), "TERM drains:\n{}", served.log_text());
    let (code, body) = request.join().expect("the request thread");
    assert_eq!(code, Some(0), "the request finished: {body}\n{}", served.log_text());
    assert!(body.contains("slept"), "{body}");
    let status = served.process.wait_exit(Duration::from_secs(15));
    assert_eq!(status.and_then(|s| s.code()), Some(0), "{}", served.log_text());
}

/// The four ids (real, effective, saved, filesystem) of `/proc/PID/status`'s `Uid:` line.
fn uids(pid: u32) -> Vec<u32> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("Uid:"))
        .map(|rest| rest.split_whitespace().filter_map(|n| n.parse().ok()).collect())
        .unwrap_or_default()
}

#[test]
fn with_user_nobody_the_workers_serve_as_nobody_and_the_master_stays_root() {
    // SAFETY: geteuid cannot fail and touches no memory.
    if unsafe { libc::geteuid() } != 0 {
        return skip("switching users needs root (CI runs the tests as root)");
    }
    // SAFETY: the record is read at once, on this thread.
    let nobody = unsafe {
        let entry = libc::getpwnam(c"nobody".as_ptr());
        (!entry.is_null()).then(|| (*entry).pw_uid)
    };
    let Some(nobody) = nobody else { return skip("no user nobody on this machine") };
    let dir = scratch();
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
    let extra = ["--workers", "2", "--user", "nobody"];
    let served = Served::start(dir.path(), "user", command(dir.path(), "user", &extra), 2);
    let mut workers = Vec::new();
    let switched = wait_until(Duration::from_secs(10), || {
        workers = served.workers();
        workers.len() == 2 && workers.iter().all(|&pid| uids(pid) == [nobody; 4])
    });
    assert!(switched, "workers {workers:?} run as uid {nobody}:\n{}", served.log_text());
    assert_eq!(uids(served.pid()), [0; 4], "the master stays root");
    let (code, body) = fcgi_request(&served.socket, "/pid", 5);
    assert_eq!(code, Some(0), "{body}");
    let pid: u32 = body.lines().last().unwrap_or_default().trim().parse().expect("a pid");
    assert!(workers.contains(&pid), "a worker answered: {pid} {workers:?}");
}

#[test]
fn systemd_socket_activation_hands_the_app_binary_its_socket() {
    let activate = Path::new("/usr/bin/systemd-socket-activate");
    assert!(activate.exists(), "{} is missing: run `make deps`", activate.display());
    let dir = scratch();
    let socket = dir.path().join("activated.sock");
    let notify_path = dir.path().join("notify.sock");
    let notify = UnixDatagram::bind(&notify_path).expect("the notify socket");
    notify.set_read_timeout(Some(Duration::from_millis(100))).expect("a read timeout");
    let mut command = Command::new(activate);
    command.arg("--listen").arg(&socket);
    command.arg(format!("--setenv=NOTIFY_SOCKET={}", notify_path.display()));
    command.arg(myapp()).args(["--workers", "2", "--log-format", "json"]);
    let log = dir.path().join("activated.log");
    let mut service = Guarded::spawn("systemd-socket-activate", command, &log);
    let log = || fs::read_to_string(&log).unwrap_or_default();
    assert!(wait_until(START_TIMEOUT, || socket.exists()), "no socket:\n{}", log());
    let bound = fs::metadata(&socket).expect("the socket file").ino();

    // systemd-socket-activate executes the app at the first connection, in its own process.
    let (code, body) = fcgi_request(&socket, "/hello", 10);
    assert_eq!(code, Some(0), "{body}\n{}", log());
    assert!(body.contains("Hello, world!"), "{body}");
    let mut ready = String::new();
    let mut buf = [0; 4096];
    let notified = wait_until(Duration::from_secs(15), || {
        if let Ok(n) = notify.recv(&mut buf) {
            ready = String::from_utf8_lossy(&buf[..n]).into_owned();
        }
        ready.lines().any(|l| l == "READY=1")
    });
    assert!(notified, "READY=1 ({ready:?}):\n{}", log());
    let master = service.pid();
    let exe = fs::read_link(format!("/proc/{master}/exe")).expect("exe");
    assert_eq!(exe, myapp(), "the activated process is the app");
    assert_eq!(cmdline(master), "fcgi-myapp: master [2 workers]");
    assert_eq!(fcgi_tests::master::children(master).len(), 2);
    // The app took systemd's socket and bound none of its own.
    assert_eq!(fs::metadata(&socket).expect("the socket file").ino(), bound);
    assert!(!json_lines(&log()).iter().any(|l| l["on"].is_string() && l["level"] == "ERRO"));

    service.signal(libc::SIGTERM);
    let status = service.wait_exit(Duration::from_secs(20));
    assert_eq!(status.and_then(|s| s.code()), Some(0), "{}", log());
}

#[test]
fn exit_statuses_an_operator_meets_first() {
    // A bind that fails (the address is another's): 1, in a sentence that starts with the
    // binary's name, single process and master alike.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
    let addr = taken.local_addr().expect("its address").to_string();
    for workers in ["1", "2"] {
        let (code, text) = said(&["--listen", &addr, "--workers", workers]);
        assert_eq!(code, Some(1), "--workers {workers}: {text}");
        let line = text.lines().find(|l| l.contains(&addr));
        assert!(line.is_some_and(|l| l.starts_with("fcgi-myapp: ")), "--workers {workers}: {text}");
    }
    // A socket in a directory that does not exist: found before anything starts (as by
    // --check), 2, naming the directory.
    let (code, text) = said(&["--listen", "unix:/nonexistent-dir/app.sock"]);
    assert_eq!(code, Some(2), "{text}");
    assert!(text.starts_with("fcgi-myapp: ") && text.contains("/nonexistent-dir"), "{text}");
    let (code, text) = said(&["--no-such-option"]);
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains("--no-such-option") && text.contains("fcgi-myapp"), "{text}");

    // A pid file that names a running app: 2, and the running one is untouched.
    let dir = scratch();
    let served = Served::start(dir.path(), "pid", command(dir.path(), "pid", &[]), 0);
    let written = wait_until(Duration::from_secs(5), || read_pid(&served.pid_file).is_some());
    assert!(written, "the pid file:\n{}", served.log_text());
    let pid_file = served.pid_file.display().to_string();
    let other = format!("unix:{}", dir.path().join("other.sock").display());
    let (code, text) = said(&["--listen", &other, "--pid-file", &pid_file]);
    assert_eq!(code, Some(2), "{text}");
    assert!(text.starts_with("fcgi-myapp: ") && text.contains(&pid_file), "{text}");
    assert_eq!(read_pid(&served.pid_file), Some(served.pid()));
    assert!(!dir.path().join("other.sock").exists(), "the refused one bound nothing");
}
