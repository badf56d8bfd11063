//! Faults around the server that must not take it down: a log that cannot be written (standard
//! error into a pipe nobody reads any more, as `fcgi serve ... 2>&1 | head -c1` leaves it; a
//! log file on a full disk, `/dev/full`), in the single process and under a master.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fcgi_tests::addr::Addr;
use fcgi_tests::nginx::scratch;
use fcgi_tests::process::{children_of, fcgi_bin, wait_until, START_TIMEOUT};

/// Requests each test sends once the log has failed: every one must be answered.
const REQUESTS: usize = 10;

/// How the server's log fails.
#[derive(Clone, Copy, Debug)]
enum BrokenLog {
    /// Standard output and error are a pipe whose read end is closed: every write is EPIPE
    /// (and would be SIGPIPE, were it not ignored).
    ClosedPipe,
    /// `--log-file DIR/NAME.log`, a symlink to `/dev/full`: every write is ENOSPC, until the
    /// test puts a real file there and sends USR1 (the disk has room again).
    FullDisk,
}

/// A `fcgi serve` whose log cannot be written; stopped by PID (TERM, then KILL) on drop.
struct Server {
    child: Child,
    socket: PathBuf,
}

impl Server {
    /// `fcgi serve --app hello --listen unix:DIR/NAME.sock --log-level debug EXTRA...`, its
    /// log broken as `broken` says; waits until it accepts (or has exited).
    fn start(dir: &Path, name: &str, broken: BrokenLog, extra: &[&str]) -> Server {
        let socket = dir.join(format!("{name}.sock"));
        let mut command = Command::new(fcgi_bin());
        command.args(["serve", "--app", "hello", "--log-level", "debug", "--listen"]);
        command.arg(format!("unix:{}", socket.display())).args(extra).stdin(Stdio::null());
        match broken {
            BrokenLog::ClosedPipe => command.stdout(Stdio::piped()).stderr(Stdio::piped()),
            BrokenLog::FullDisk => {
                let log = dir.join(format!("{name}.log"));
                std::os::unix::fs::symlink("/dev/full", &log).expect("a symlink to /dev/full");
                command.arg("--log-file").arg(&log).stdout(Stdio::null()).stderr(
                    fs::File::create(dir.join(format!("{name}.stderr"))).expect("stderr file"),
                )
            }
        };
        let mut child = command.spawn().expect("fcgi serve starts");
        // The reader goes away at once: `| head -c1` without even the first byte.
        drop(child.stdout.take());
        drop(child.stderr.take());
        let mut server = Server { child, socket };
        let addr = Addr::Unix(server.socket.clone());
        wait_until(START_TIMEOUT, || !server.running() || addr.accepts());
        server
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Sends one request with `fcgi request`: whether it got an answer, and its output.
    fn request(&self) -> (bool, String) {
        let output = Command::new(fcgi_bin())
            .args(["request", "--timeout", "10", "--connect"])
            .arg(format!("unix:{}", self.socket.display()))
            .arg("/")
            .output()
            .expect("fcgi request runs");
        let text = String::from_utf8_lossy(&output.stdout).into_owned()
            + &String::from_utf8_lossy(&output.stderr);
        (output.status.success(), text)
    }

    /// Asserts that the server is up and answers [`REQUESTS`] requests, and that it still runs
    /// after them.
    fn assert_serves(&mut self, what: &str) {
        assert!(self.running(), "{what}: the server died: {:?}", self.child.try_wait());
        for n in 0..REQUESTS {
            let (answered, output) = self.request();
            assert!(answered, "{what}: request {n} failed: {output}");
        }
        assert!(self.running(), "{what}: the server died after the requests");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.running() {
            let pid = libc::pid_t::try_from(self.pid()).expect("pid fits");
            // SAFETY: kill(2) on our own child's pid has no memory effects.
            unsafe { libc::kill(pid, libc::SIGTERM) };
            if !wait_until(Duration::from_secs(10), || !self.running()) {
                let _ = self.child.kill();
            }
        }
        let _ = self.child.wait();
    }
}

/// Whether process `pid` ignores SIGPIPE (bit 13 of SigIgn in /proc/PID/status): a write to
/// a closed pipe must be an EPIPE error, not its death.
fn ignores_sigpipe(pid: u32) -> bool {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let mask = status
        .lines()
        .find_map(|line| line.strip_prefix("SigIgn:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .unwrap_or(0);
    mask & (1 << (libc::SIGPIPE - 1)) != 0
}

/// The live workers of master `pid`.
fn workers(pid: u32) -> Vec<u32> {
    children_of(pid).into_iter().filter(|&(_, state)| state != 'Z').map(|(p, _)| p).collect()
}

#[test]
fn a_single_process_logging_into_a_closed_pipe_keeps_serving() {
    let dir = scratch();
    for format in ["term", "json"] {
        let name = format!("single-{format}");
        let mut server =
            Server::start(dir.path(), &name, BrokenLog::ClosedPipe, &["--log-format", format]);
        server.assert_serves(&name);
        assert!(ignores_sigpipe(server.pid()), "{name}: SIGPIPE is not ignored");
    }
}

#[test]
fn a_master_and_its_workers_logging_into_a_closed_pipe_keep_serving() {
    let dir = scratch();
    for format in ["term", "json"] {
        let name = format!("master-{format}");
        let extra = ["--workers", "2", "--log-format", format];
        let mut server = Server::start(dir.path(), &name, BrokenLog::ClosedPipe, &extra);
        let master = server.pid();
        let two = wait_until(START_TIMEOUT, || workers(master).len() == 2);
        assert!(two && server.running(), "{name}: no master with 2 workers");
        server.assert_serves(&name);
        assert!(ignores_sigpipe(master), "{name}: the master does not ignore SIGPIPE");
        for worker in workers(master) {
            assert!(ignores_sigpipe(worker), "{name}: worker {worker} does not ignore SIGPIPE");
        }
        // Every line the master logs fails: a worker's death and replacement too.
        let victim = workers(master)[0];
        // SAFETY: kill(2) has no memory effects; the pid is a live worker of our child.
        unsafe { libc::kill(libc::pid_t::try_from(victim).expect("pid"), libc::SIGKILL) };
        let replaced = wait_until(Duration::from_secs(10), || {
            let now = workers(master);
            now.len() == 2 && !now.contains(&victim)
        });
        assert!(replaced, "{name}: the killed worker was not replaced");
        server.assert_serves(&name);
    }
}

/// The number in field `name` of a JSON log line (`"name":123`), if it has one.
fn number_field(line: &str, name: &str) -> Option<u64> {
    let key = format!("\"{name}\":");
    let rest = &line[line.find(&key)? + key.len()..];
    let end = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
    rest[..end].parse().ok()
}

#[test]
fn a_log_on_a_full_disk_loses_lines_not_the_server_and_says_how_many_once_it_has_room() {
    let dir = scratch();
    // The processes that log: the single process; the master and its two workers.
    for (name, extra, processes) in [
        ("single", &["--log-format", "json"][..], 1),
        ("master", &["--workers", "2", "--log-format", "json"][..], 3),
    ] {
        let mut server = Server::start(dir.path(), name, BrokenLog::FullDisk, extra);
        if processes > 1 {
            let master = server.pid();
            let two = wait_until(START_TIMEOUT, || workers(master).len() == 2);
            assert!(two && server.running(), "{name}: no master with 2 workers");
        }
        server.assert_serves(name);

        // Room again: a real file at the path, and USR1 to reopen it (the master forwards it).
        let log = dir.path().join(format!("{name}.log"));
        fs::remove_file(&log).expect("remove the symlink");
        fs::write(&log, "").expect("the log file");
        let pid = libc::pid_t::try_from(server.pid()).expect("pid fits");
        // SAFETY: kill(2) on our own child's pid has no memory effects.
        unsafe { libc::kill(pid, libc::SIGUSR1) };
        let mut reporters = Vec::new();
        let reported = wait_until(Duration::from_secs(10), || {
            let _ = server.request();
            let text = fs::read_to_string(&log).unwrap_or_default();
            reporters = text
                .lines()
                .filter(|line| number_field(line, "dropped").is_some_and(|n| n > 0))
                .filter_map(|line| number_field(line, "pid"))
                .collect();
            reporters.sort_unstable();
            reporters.dedup();
            reporters.len() >= processes
        });
        let text = fs::read_to_string(&log).unwrap_or_default();
        assert!(reported, "{name}: dropped lines reported by {reporters:?} only:\n{text}");
        server.assert_serves(name);
    }
}
