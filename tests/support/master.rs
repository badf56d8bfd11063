//! A prefork master under test (`fcgi serve --workers N`, or the `fcgi-sleepy` test server on
//! the fcgi-prefork library): started in a test's directory, its workers read from /proc, its
//! signals sent by PID.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::addr::Addr;
use crate::nginx::{Nginx, Site};
use crate::process::{fcgi_bin, wait_until, Guarded, START_TIMEOUT};
use crate::wrk::Wrk;

/// The children of `pid`, from /proc (field 4 of /proc/PID/stat is the parent), zombies left
/// out, in order.
pub fn children(pid: u32) -> Vec<u32> {
    let mut found: Vec<u32> = crate::process::children_of(pid)
        .into_iter()
        .filter(|&(_, state)| state != 'Z')
        .map(|(child, _)| child)
        .collect();
    found.sort_unstable();
    found
}

/// Whether `pid` is a live process (not gone, not a zombie).
pub fn alive(pid: u32) -> bool {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let state = stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().next());
    matches!(state, Some(s) if s != "Z" && s != "X")
}

/// Sends `signal` to `pid`.
pub fn signal(pid: u32, signal: libc::c_int) {
    let pid = libc::pid_t::try_from(pid).expect("pid fits");
    // SAFETY: kill(2) has no memory effects.
    unsafe { libc::kill(pid, signal) };
}

/// The pid a pid file holds.
pub fn read_pid(path: &Path) -> Option<u32> {
    fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// The `fcgi-sleepy` test server, built beside the `fcgi` binary.
pub fn sleepy_bin() -> PathBuf {
    let bin = fcgi_bin().with_file_name("fcgi-sleepy");
    assert!(bin.exists(), "{} is missing: `cargo build --workspace --bins`", bin.display());
    bin
}

/// A process this test did not start as its child (an upgraded master): TERM, then KILL, on
/// drop.
#[derive(Debug)]
pub struct Adopted(pub u32);

impl Drop for Adopted {
    fn drop(&mut self) {
        if alive(self.0) {
            signal(self.0, libc::SIGTERM);
            if !wait_until(Duration::from_secs(10), || !alive(self.0)) {
                signal(self.0, libc::SIGKILL);
            }
        }
    }
}

/// A master under test: its process, its socket, its log and pid file.
#[derive(Debug)]
pub struct Served {
    /// The master process.
    pub process: Guarded,
    /// Its Unix socket.
    pub socket: PathBuf,
    /// Its standard output and error.
    pub log: PathBuf,
    /// Its pid file.
    pub pid_file: PathBuf,
}

impl Served {
    /// Starts `command` (its log `dir/NAME.log`) and waits until `workers` children run and
    /// the socket `dir/NAME.sock` accepts.
    pub fn start(dir: &Path, name: &str, mut command: Command, workers: usize) -> Served {
        let log = dir.join(format!("{name}.log"));
        let socket = dir.join(format!("{name}.sock"));
        let pid_file = dir.join(format!("{name}.pid"));
        command.env("NO_COLOR", "1");
        let mut process = Guarded::spawn(name, command, &log);
        let pid = process.pid();
        let up = wait_until(START_TIMEOUT, || {
            !process.is_running()
                || (children(pid).len() >= workers && Addr::Unix(socket.clone()).accepts())
        });
        let served = Served { process, socket, log, pid_file };
        assert!(up, "{name} did not start {workers} workers:\n{}", served.log_text());
        served
    }

    /// `fcgi serve --app hello --listen unix:DIR/NAME.sock --pid-file DIR/NAME.pid EXTRA...`.
    pub fn fcgi(dir: &Path, name: &str, extra: &[&str], workers: usize) -> Served {
        let mut command = Command::new(fcgi_bin());
        command.args(["serve", "--app", "hello", "--listen"]);
        command.arg(format!("unix:{}", dir.join(format!("{name}.sock")).display()));
        command.arg("--pid-file").arg(dir.join(format!("{name}.pid")));
        command.args(extra);
        Served::start(dir, name, command, workers)
    }

    /// `fcgi-sleepy unix:DIR/NAME.sock pid_file=DIR/NAME.pid SETTINGS...`.
    pub fn sleepy(dir: &Path, name: &str, settings: &[&str], workers: usize) -> Served {
        let mut command = Command::new(sleepy_bin());
        command.arg(format!("unix:{}", dir.join(format!("{name}.sock")).display()));
        command.arg(format!("pid_file={}", dir.join(format!("{name}.pid")).display()));
        command.args(settings);
        Served::start(dir, name, command, workers)
    }

    /// Sends USR2 and waits until a new master has written the pid file and this one has
    /// exited: the new master, stopped when the guard drops (its pid is the guard's `.0`).
    pub fn upgrade(&mut self) -> Adopted {
        let old = self.pid();
        signal(old, libc::SIGUSR2);
        let mut new_master = 0;
        let handed = wait_until(Duration::from_secs(15), || {
            new_master = read_pid(&self.pid_file).unwrap_or(0);
            new_master != 0 && new_master != old && !self.process.is_running()
        });
        let guard = Adopted(new_master);
        assert!(handed, "no handover to a new master:\n{}", self.log_text());
        guard
    }

    /// The master's pid.
    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// Its workers' pids, in order.
    pub fn workers(&self) -> Vec<u32> {
        children(self.pid())
    }

    /// What it logged so far.
    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Its socket's address.
    pub fn addr(&self) -> Addr {
        Addr::Unix(self.socket.clone())
    }

    /// nginx in front of it, with kept connections (`nginx/fcgi-keepalive.conf`).
    pub fn nginx(&self, dir: &Path) -> Nginx {
        Nginx::start(dir, Site::Keepalive, &self.addr().site_vars())
    }

    /// Waits until the sleepy app logged that a request with `query` started in a worker.
    pub fn wait_started(&self, query: &str) -> bool {
        let needle = format!("request started: ?{query}");
        wait_until(Duration::from_secs(10), || self.log_text().contains(&needle))
    }

    /// Waits until a worker of `pid` logged that it serves (fcgi-server's "serving" line).
    pub fn wait_serving(&self, pid: u32, timeout: Duration) -> bool {
        let needle = format!("pid: {pid}");
        wait_until(timeout, || {
            self.log_text().lines().any(|l| l.contains("INFO serving") && l.contains(&needle))
        })
    }
}

/// wrk's report held to no failure and a floor of requests.
pub fn assert_clean(wrk: &Wrk, at_least: u64) {
    assert_eq!(wrk.failures(), 0, "wrk saw failures:\n{}", wrk.output);
    assert!(wrk.requests() >= at_least, "too few requests:\n{}", wrk.output);
}

/// Sends one request straight to the socket with `fcgi request`; its exit status and output.
pub fn fcgi_request(socket: &Path, path: &str, timeout_s: u32) -> (Option<i32>, String) {
    let output = Command::new(fcgi_bin())
        .args(["request", "--timeout", &timeout_s.to_string(), "--connect"])
        .arg(format!("unix:{}", socket.display()))
        .arg(path)
        .output()
        .expect("fcgi request runs");
    let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
    text += &String::from_utf8_lossy(&output.stderr);
    (output.status.code(), text)
}
