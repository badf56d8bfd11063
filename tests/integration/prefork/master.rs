//! The prefork master (`fcgi serve --workers N` and the fcgi-prefork library through the
//! `fcgi-sleepy` test server): reloads and upgrades under load through a real nginx with no
//! failed request, crash and hang recovery, graceful stop, request limits, worker counts from
//! the process table, the dynamic model, and systemd's socket activation.
//!
//! Load comes from wrk through nginx's keepalive site (`nginx/fcgi-keepalive.conf`); a run
//! passes only when wrk reports neither non-2xx answers nor socket errors.

use std::fs;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use fcgi_tests::master::{alive, assert_clean, children, fcgi_request, read_pid, signal, Served};
use fcgi_tests::nginx::scratch;
use fcgi_tests::process::{fcgi_bin, wait_until, Guarded, START_TIMEOUT};
use fcgi_tests::wrk::Wrk;

/// Watches that a path exists, every millisecond, until stopped; counts the times it did not.
struct FileWatch {
    stop: Arc<AtomicBool>,
    missing: Arc<AtomicUsize>,
    thread: thread::JoinHandle<()>,
}

impl FileWatch {
    fn start(path: PathBuf) -> FileWatch {
        let stop = Arc::new(AtomicBool::new(false));
        let missing = Arc::new(AtomicUsize::new(0));
        let (s, m) = (Arc::clone(&stop), Arc::clone(&missing));
        let thread = thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                if fs::symlink_metadata(&path).is_err() {
                    m.fetch_add(1, Ordering::Relaxed);
                }
                thread::sleep(Duration::from_millis(1));
            }
        });
        FileWatch { stop, missing, thread }
    }

    fn finish(self) -> usize {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().expect("the watcher");
        self.missing.load(Ordering::Relaxed)
    }
}

#[test]
fn hup_reloads_and_a_usr2_upgrade_under_load_fail_no_request() {
    let dir = scratch();
    let config = dir.path().join("serve.conf");
    fs::write(&config, "# the process options a reload re-reads\nworkers = 4\n").expect("config");
    let config_arg = config.display().to_string();
    let mut served = Served::fcgi(dir.path(), "fcgi", &["--config", &config_arg], 4);
    let nginx = served.nginx(dir.path());
    let watch = FileWatch::start(served.socket.clone());
    let wrk = Wrk::start(nginx.port(), 32, 20, "/");

    let master = served.pid();
    for round in 1..=3 {
        // Each reload meets load on kept connections.
        assert!(nginx.wait_requests(3_000, Duration::from_secs(10)), "no load through nginx");
        let before = served.workers();
        let wanted = if round == 1 { 4 } else { 3 };
        if round == 2 {
            fs::write(&config, "workers = 3\n").expect("config");
        }
        signal(master, libc::SIGHUP);
        let replaced = wait_until(Duration::from_secs(10), || {
            let now = served.workers();
            now.len() == wanted && now.iter().all(|pid| !before.contains(pid))
        });
        assert!(
            replaced,
            "HUP {round}: workers {before:?} -> {:?}\n{}",
            served.workers(),
            served.log_text()
        );
    }

    assert!(nginx.wait_requests(2_000, Duration::from_secs(10)), "no load through nginx");
    let oldbin = PathBuf::from(format!("{}.oldbin", served.pid_file.display()));
    let new_guard = served.upgrade();
    let new_master = new_guard.0;
    let old_status = served.process.wait_exit(Duration::from_secs(1)).and_then(|s| s.code());
    assert_eq!(old_status, Some(0), "the old master exits 0:\n{}", served.log_text());
    assert!(!oldbin.exists(), "the old master removes PIDFILE.oldbin");
    assert!(wait_until(Duration::from_secs(5), || children(new_master).len() == 3));

    let wrk = wrk.join().expect("wrk thread");
    let missing = watch.finish();
    assert_clean(&wrk, 1000);
    assert_eq!(missing, 0, "the socket file was missing {missing} times");
    let log = served.log_text();
    assert!(log.contains("upgrade: the new master serves"), "{log}");
    assert!(log.contains("master exiting, how: handed over"), "{log}");
    eprintln!("reloads and upgrade: {} requests, 0 failures", wrk.requests());

    // The new master stops like any other, and removes the socket file it inherited.
    signal(new_master, libc::SIGTERM);
    assert!(wait_until(Duration::from_secs(10), || !alive(new_master)), "{}", served.log_text());
    assert!(!served.socket.exists(), "the new master removes the socket file");
    assert!(!served.pid_file.exists(), "the new master removes the pid file");
}

#[test]
fn a_killed_worker_is_replaced_within_a_second() {
    let dir = scratch();
    let served = Served::fcgi(dir.path(), "fcgi", &["--workers", "4"], 4);
    let nginx = served.nginx(dir.path());
    let wrk = Wrk::start(nginx.port(), 32, 4, "/");
    assert!(nginx.wait_requests(1_000, Duration::from_secs(10)), "no load through nginx");
    let before = served.workers();
    let victim = before[0];
    signal(victim, libc::SIGKILL);
    let killed_at = Instant::now();
    let mut replacement = 0;
    let replaced = wait_until(Duration::from_secs(1), || {
        let now = served.workers();
        if let Some(new) = now.iter().find(|p| !before.contains(p)) {
            replacement = *new;
        }
        replacement != 0 && now.len() == 4
    });
    assert!(replaced, "no replacement within 1 s: {:?}\n{}", served.workers(), served.log_text());
    let remaining = Duration::from_secs(1).saturating_sub(killed_at.elapsed());
    assert!(
        served.wait_serving(replacement, remaining),
        "the replacement did not serve within 1 s"
    );
    let serving_after = killed_at.elapsed();

    let wrk = wrk.join().expect("wrk thread");
    // Only what the killed worker held may fail: at most one request per connection to it.
    assert!(wrk.failures() <= 32, "{}", wrk.output);
    assert!(wrk.requests() > 1000, "{}", wrk.output);
    let log = served.log_text();
    assert!(log.contains("worker died; replacing it"), "{log}");
    assert!(log.contains("killed by signal KILL"), "{log}");
    eprintln!(
        "kill -9: replacement serving after {:?}; {} requests, {} failed",
        serving_after,
        wrk.requests(),
        wrk.failures()
    );
}

#[test]
fn a_hung_request_is_answered_at_the_request_timeout_and_its_worker_retires() {
    let dir = scratch();
    let settings =
        ["workers=2", "request_timeout_ms=1000", "kill_grace_ms=1000", "graceful_ms=1000"];
    let served = Served::sleepy(dir.path(), "sleepy", &settings, 2);
    let before = served.workers();
    let socket = served.socket.clone();
    let started = Instant::now();
    let hung = thread::spawn(move || {
        let answer = fcgi_request(&socket, "/x?hang", 20);
        (answer, started.elapsed())
    });
    // Requests on the other worker go on meanwhile.
    for _ in 0..10 {
        let (code, body) = fcgi_request(&served.socket, "/x?ms=50", 10);
        assert_eq!(code, Some(0), "{body}");
    }
    let ((code, body), answered_after) = hung.join().expect("the hung request");
    // Answered by the server at the request timeout, not after the grace as well
    // (tests/integration/ops/request_timeout.rs has it through nginx).
    assert_eq!(code, Some(0), "{body}");
    assert!(body.contains("504 Gateway Timeout"), "{body}");
    assert!(answered_after >= Duration::from_millis(900), "{answered_after:?}");
    assert!(answered_after < Duration::from_secs(2), "{answered_after:?}");
    let replaced = wait_until(Duration::from_secs(5), || {
        let now = served.workers();
        now.len() == 2 && now.iter().any(|p| !before.contains(p))
    });
    assert!(replaced, "{:?} -> {:?}\n{}", before, served.workers(), served.log_text());
    let log = served.log_text();
    assert!(log.contains("a request is running past the request timeout"), "{log}");
    // Its handler, still hung, held the retiring worker until the graceful timeout.
    assert!(log.contains("requests cut short"), "after the graceful timeout: {log}");
    assert!(!log.contains("worker hung"), "its heartbeat went on: {log}");
    let (code, body) = fcgi_request(&served.socket, "/x", 10);
    assert_eq!(code, Some(0), "{body}");
}

#[test]
fn term_lets_an_in_flight_request_finish_then_exits_zero_and_removes_the_socket() {
    let dir = scratch();
    let mut served = Served::sleepy(dir.path(), "sleepy", &["workers=2"], 2);
    let nginx = served.nginx(dir.path());
    let port = nginx.port();
    let request = thread::spawn(move || fcgi_tests::http::get(port, "/x?ms=2000"));
    assert!(served.wait_started("ms=2000"), "{}", served.log_text());
    let stopped_at = Instant::now();
    served.process.signal(libc::SIGTERM);
    let response = request.join().expect("the request").expect("an answer");
    assert_eq!(response.status, 200, "{}", served.log_text());
    assert!(response.body_text().starts_with("slept 2000 ms"), "{}", response.body_text());
    let status = served.process.wait_exit(Duration::from_secs(10)).expect("the master exits");
    assert_eq!(status.code(), Some(0), "{}", served.log_text());
    assert!(stopped_at.elapsed() >= Duration::from_millis(1400), "it waited for the request");
    assert!(!served.socket.exists(), "the socket file is removed");
    assert!(!served.pid_file.exists(), "the pid file is removed");
}

#[test]
fn max_requests_recycles_workers_under_load_without_a_failure() {
    let dir = scratch();
    let extra = ["--workers", "2", "--max-requests", "100", "--max-requests-jitter", "20"];
    let served = Served::fcgi(dir.path(), "fcgi", &extra, 2);
    let nginx = served.nginx(dir.path());
    let wrk = Wrk::start(nginx.port(), 32, 5, "/").join().expect("wrk thread");
    assert_eq!(wrk.failures(), 0, "{}\nnginx: {}", wrk.output, nginx.error_log());
    assert_clean(&wrk, 1000);
    let log = served.log_text();
    let retired = log.matches("request limit reached").count();
    assert!(retired >= 5, "only {retired} workers retired:\n{}", wrk.output);
    assert!(wait_until(Duration::from_secs(5), || served.workers().len() == 2));
    eprintln!("max-requests: {} requests, {retired} workers recycled, 0 failures", wrk.requests());
}

#[test]
fn a_slow_request_gets_its_worker_recycled_and_is_logged() {
    let dir = scratch();
    let served = Served::sleepy(dir.path(), "sleepy", &["workers=1", "request_timeout_ms=300"], 1);
    let pid = served.workers()[0];
    let (code, body) = fcgi_request(&served.socket, "/slow/page?ms=500", 10);
    assert_eq!(code, Some(0), "{body}");
    assert!(body.contains("504 Gateway Timeout"), "answered at the request timeout: {body}");
    assert!(
        wait_until(Duration::from_secs(5), || !served.workers().contains(&pid)),
        "{}",
        served.log_text()
    );
    assert!(wait_until(Duration::from_secs(5), || served.workers().len() == 1));
    let log = served.log_text();
    assert!(log.contains("a request ran past the request timeout"), "{log}");
    assert!(log.contains("/slow/page?ms=500"), "the log names the request: {log}");
}

#[test]
fn ttin_and_ttou_change_the_worker_count() {
    let dir = scratch();
    let served = Served::fcgi(dir.path(), "fcgi", &["--workers", "2"], 2);
    for (sig, wanted) in
        [(libc::SIGTTIN, 3), (libc::SIGTTIN, 4), (libc::SIGTTOU, 3), (libc::SIGTTOU, 2)]
    {
        signal(served.pid(), sig);
        let reached = wait_until(Duration::from_secs(5), || served.workers().len() == wanted);
        assert!(reached, "wanted {wanted}, have {:?}\n{}", served.workers(), served.log_text());
    }
    let (code, body) = fcgi_request(&served.socket, "/", 10);
    assert_eq!(code, Some(0), "{body}");
}

#[test]
fn dynamic_grows_under_a_burst_and_shrinks_after_it() {
    let dir = scratch();
    let settings = ["workers=1", "model=dynamic", "min_spare=1", "max_spare=2", "max_workers=5"];
    let served = Served::sleepy(dir.path(), "sleepy", &settings, 1);
    let socket = served.socket.clone();
    let burst = thread::spawn(move || {
        Command::new(fcgi_bin())
            .args(["bench", "-q", "-c", "24", "-d", "4s", "--connect"])
            .arg(format!("unix:{}", socket.display()))
            .arg("/x?ms=100")
            .output()
            .expect("fcgi bench runs")
    });
    let mut most = 0;
    wait_until(Duration::from_secs(4), || {
        most = most.max(served.workers().len());
        most == 5
    });
    let output = burst.join().expect("the burst");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stdout));
    assert_eq!(most, 5, "grew only to {most}:\n{}", served.log_text());
    let shrunk = wait_until(Duration::from_secs(8), || served.workers().len() <= 2);
    assert!(shrunk, "still {:?}\n{}", served.workers(), served.log_text());
    assert!(!served.workers().is_empty());
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("0 errors"), "{stdout}");
}

#[test]
fn socket_activated_fds_are_adopted_with_several_workers() {
    let dir = scratch();
    let socket = dir.path().join("activated.sock");
    let listener = std::os::unix::net::UnixListener::bind(&socket).expect("bind as systemd would");
    let fd = listener.as_raw_fd();
    let log = dir.path().join("activated.log");
    // systemd passes the sockets from fd 3 and sets LISTEN_PID to the service's own pid, which
    // only the started process knows: a shell sets it, then becomes fcgi.
    let mut command = Command::new("/bin/sh");
    command
        .arg("-c")
        .arg("LISTEN_PID=$$ LISTEN_FDS=1 exec \"$0\" serve --app hello --workers 2")
        .arg(fcgi_bin());
    // SAFETY: dup2 and fcntl in the child before exec, on our listener's descriptor; a copy
    // made by dup2 is not close-on-exec, and fd 3 itself must be made so.
    unsafe {
        command.pre_exec(move || {
            let rc = if fd == 3 { libc::fcntl(3, libc::F_SETFD, 0) } else { libc::dup2(fd, 3) };
            if rc < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut process = Guarded::spawn("activated", command, &log);
    let pid = process.pid();
    let up = wait_until(START_TIMEOUT, || children(pid).len() == 2);
    let text = || fs::read_to_string(&log).unwrap_or_default();
    assert!(up, "{}", text());
    let (code, body) = fcgi_request(&socket, "/", 10);
    assert_eq!(code, Some(0), "{body}");
    assert_eq!(body, "Hello, world!");
    process.signal(libc::SIGTERM);
    let status = process.wait_exit(Duration::from_secs(10)).expect("it stops");
    assert_eq!(status.code(), Some(0), "{}", text());
    assert!(socket.exists(), "a socket systemd owns is left in place");
    assert!(text().contains("master exiting"), "{}", text());
}

#[test]
fn a_failed_upgrade_leaves_the_old_master_serving() {
    let dir = scratch();
    // A copy of the binary that the "upgrade" then replaces with one that cannot start.
    let exe = dir.path().join("fcgi");
    fs::copy(fcgi_bin(), &exe).expect("copy the fcgi binary");
    let mut command = Command::new(&exe);
    command.args(["serve", "--app", "hello", "--workers", "2", "--listen"]);
    command.arg(format!("unix:{}", dir.path().join("fcgi.sock").display()));
    command.arg("--pid-file").arg(dir.path().join("fcgi.pid"));
    let mut served = Served::start(dir.path(), "fcgi", command, 2);
    let broken = dir.path().join("fcgi.new");
    fs::write(&broken, "#!/bin/sh\nexit 1\n").expect("a broken binary");
    fs::set_permissions(&broken, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("make it executable");
    fs::rename(&broken, &exe).expect("install it");

    served.process.signal(libc::SIGUSR2);
    let logged = wait_until(Duration::from_secs(10), || {
        served.log_text().contains("upgrade failed; this master goes on serving")
    });
    assert!(logged, "{}", served.log_text());
    let master = served.pid();
    let restored =
        wait_until(Duration::from_secs(2), || read_pid(&served.pid_file) == Some(master));
    assert!(restored, "the pid file is moved back");
    assert!(!PathBuf::from(format!("{}.oldbin", served.pid_file.display())).exists());
    assert!(served.process.is_running());
    let (code, body) = fcgi_request(&served.socket, "/", 10);
    assert_eq!((code, body.as_str()), (Some(0), "Hello, world!"));
    assert_eq!(served.workers().len(), 2);
}

#[test]
fn usr1_reopens_the_log_file_in_the_single_process_and_in_every_worker() {
    for (name, extra, workers) in [("single", &[][..], 0), ("master", &["--workers", "2"][..], 2)] {
        let dir = scratch();
        let log_file = dir.path().join("fcgi-rs.log");
        let log_arg = log_file.display().to_string();
        let mut args = vec!["--log-file", log_arg.as_str()];
        args.extend_from_slice(extra);
        let served = Served::fcgi(dir.path(), name, &args, workers);
        assert!(wait_until(Duration::from_secs(5), || {
            fs::read_to_string(&log_file).is_ok_and(|text| text.contains("serving"))
        }));
        // As logrotate does: move the file away, then ask for a new one.
        let rotated = dir.path().join("fcgi-rs.log.1");
        fs::rename(&log_file, &rotated).expect("rotate");
        served.process.signal(libc::SIGUSR1);
        let wanted = if workers == 0 { 1 } else { workers };
        let reopened = wait_until(Duration::from_secs(5), || {
            let text = fs::read_to_string(&log_file).unwrap_or_default();
            text.lines().filter(|l| l.contains("reopened")).count() >= wanted
        });
        let text = fs::read_to_string(&log_file).unwrap_or_default();
        assert!(reopened, "{name}: the new file holds:\n{text}\nstderr:\n{}", served.log_text());
        if workers > 0 {
            assert!(text.contains("log files reopened; telling the workers"), "{text}");
        }
        let (code, body) = fcgi_request(&served.socket, "/", 10);
        assert_eq!(code, Some(0), "{body}");
    }
}

#[test]
fn quit_stops_at_once_without_waiting_for_requests() {
    let dir = scratch();
    let mut served = Served::sleepy(dir.path(), "sleepy", &["workers=2", "graceful_ms=30000"], 2);
    let socket = served.socket.clone();
    let request = thread::spawn(move || fcgi_request(&socket, "/x?ms=10000", 20));
    assert!(served.wait_started("ms=10000"), "{}", served.log_text());
    let quit_at = Instant::now();
    served.process.signal(libc::SIGQUIT);
    let status = served.process.wait_exit(Duration::from_secs(5)).expect("the master exits");
    assert_eq!(status.code(), Some(0), "{}", served.log_text());
    assert!(quit_at.elapsed() < Duration::from_secs(3), "{:?}", quit_at.elapsed());
    let (code, _) = request.join().expect("the request");
    assert_eq!(code, Some(1), "the running request was cut short");
    assert!(!served.socket.exists());
}

#[test]
fn after_an_upgrade_term_removes_a_socket_file_bound_with_a_mode() {
    // A socket with a mode is bound in a private directory and renamed into place: its own
    // name is not its path, so the new master must be told the path by the old one.
    let dir = scratch();
    let mut served =
        Served::fcgi(dir.path(), "fcgi", &["--workers", "2", "--socket-mode", "660"], 2);
    let new_guard = served.upgrade();
    let new_master = new_guard.0;
    assert!(served.socket.exists(), "the socket file stays through the upgrade");
    let (code, body) = fcgi_request(&served.socket, "/", 10);
    assert_eq!((code, body.as_str()), (Some(0), "Hello, world!"));
    signal(new_master, libc::SIGTERM);
    assert!(wait_until(Duration::from_secs(10), || !alive(new_master)), "{}", served.log_text());
    assert!(!served.socket.exists(), "the new master removes the socket file");
    let log = served.log_text();
    assert!(!log.contains(".fcgi-"), "the new master names the socket by its path:\n{log}");
}
