//! Starting and stopping real processes (any command as a [`Guarded`] child, the `fcgi`
//! binary as an [`FcgiServe`]), looking at them in /proc, and waiting for bounded conditions.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::addr::{retry_on_port_clash, Addr, Transport};

/// How long a server process may take to start listening.
pub const START_TIMEOUT: Duration = Duration::from_secs(10);

/// The `fcgi` binary of this workspace, built by `cargo test --workspace` before any test runs.
pub fn fcgi_bin() -> PathBuf {
    // Test executables live in target/<profile>/deps; the binary one level up.
    let exe = std::env::current_exe().expect("the test executable has a path");
    let dir = exe.parent().and_then(Path::parent).expect("target/<profile>");
    let bin = dir.join("fcgi");
    assert!(
        bin.exists(),
        "{} is missing: build it first (`cargo build -p fcgi-cli`, or `make test`)",
        bin.display()
    );
    bin
}

/// Polls `condition` every 10 ms until it holds or `timeout` passes; returns whether it held.
/// The timeout is an upper bound, scaled by `FCGI_TEST_TIME_SCALE` ([`crate::settings`]).
pub fn wait_until(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + crate::settings::scaled(timeout);
    loop {
        if condition() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A child process that is stopped (TERM, then KILL after 5 s) when dropped.
#[derive(Debug)]
pub struct Guarded {
    child: Option<Child>,
    name: String,
}

impl Guarded {
    /// Starts `command` with its output sent to `log` (appended).
    pub fn spawn(name: &str, mut command: Command, log: &Path) -> Guarded {
        let out = fs::OpenOptions::new().create(true).append(true).open(log).expect("log file");
        let err = out.try_clone().expect("log file");
        command.stdin(Stdio::null()).stdout(out).stderr(err);
        let child = command.spawn().unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        Guarded { child: Some(child), name: name.to_owned() }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// Sends `signal` to the process.
    pub fn signal(&self, signal: libc::c_int) {
        let pid = libc::pid_t::try_from(self.pid()).expect("pid fits");
        // SAFETY: kill(2) on our own child's pid has no memory effects.
        unsafe { libc::kill(pid, signal) };
    }

    /// Waits up to `timeout` for the process to exit; its exit status, if it did.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let child = self.child.as_mut()?;
        let mut exited = None;
        wait_until(timeout, || {
            exited = child.try_wait().ok().flatten();
            exited.is_some()
        });
        if exited.is_some() {
            self.child = None;
        }
        exited
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        self.child.as_mut().is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Resident memory of the process, in KiB (from /proc).
    pub fn rss_kib(&self) -> u64 {
        proc_status_field(self.pid(), "VmRSS:")
    }

    /// Peak resident memory of the process, in KiB (from /proc).
    pub fn peak_rss_kib(&self) -> u64 {
        proc_status_field(self.pid(), "VmHWM:")
    }

    /// CPU time the process has used, user and system, all its threads (from /proc).
    pub fn cpu_seconds(&self) -> f64 {
        cpu_seconds_of(self.pid())
    }

    /// Threads of the process (from /proc).
    pub fn threads(&self) -> u64 {
        proc_status_field(self.pid(), "Threads:")
    }

    /// The entries of /proc/PID/fd: one per open file descriptor of the process.
    fn fd_entries(&self) -> io::Result<fs::ReadDir> {
        fs::read_dir(format!("/proc/{}/fd", self.pid()))
    }

    /// Open file descriptors of the process (from /proc).
    pub fn open_fds(&self) -> usize {
        self.fd_entries().map_or(0, Iterator::count)
    }

    /// Whether the process has a file open under `dir` (deleted or not), from /proc: how a
    /// test sees that a request body is being spooled.
    pub fn has_open_file_under(&self, dir: &Path) -> bool {
        let Ok(entries) = self.fd_entries() else { return false };
        entries
            .filter_map(Result::ok)
            .filter_map(|entry| fs::read_link(entry.path()).ok())
            .any(|target| target.starts_with(dir))
    }
}

/// CPU time process `pid` has used, user and system, all its threads, not counting its
/// children (from /proc); 0 if it is gone.
pub fn cpu_seconds_of(pid: u32) -> f64 {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The fields after the command name, which is in parentheses and may hold spaces:
    // utime and stime are the 12th and 13th of them, in clock ticks.
    let fields: Vec<&str> =
        stat.rsplit_once(')').map_or(vec![], |(_, rest)| rest.split_whitespace().collect());
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok()).unwrap_or(0);
    // SAFETY: sysconf has no preconditions.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    (ticks(11) + ticks(12)) as f64 / per_second
}

/// A number from a line of /proc/PID/status (`VmRSS:  1234 kB`); 0 if there is none.
fn proc_status_field(pid: u32, field: &str) -> u64 {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix(field))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

impl Drop for Guarded {
    fn drop(&mut self) {
        if self.child.is_some() {
            self.signal(libc::SIGTERM);
            if self.wait_exit(Duration::from_secs(5)).is_none() {
                if let Some(child) = self.child.as_mut() {
                    eprintln!("{} did not stop on SIGTERM; killing it", self.name);
                    let _ = child.kill();
                    let _ = child.wait();
                }
            }
        }
    }
}

/// A running `fcgi serve`, stopped (TERM, then KILL) when dropped.
#[derive(Debug)]
pub struct FcgiServe {
    addr: Addr,
    log: PathBuf,
    process: Guarded,
}

impl FcgiServe {
    /// Starts `fcgi serve --app APP --listen ADDR EXTRA...`, named `name` (its log is
    /// `dir/NAME.log`, its socket `dir/NAME.sock`), and waits until it accepts connections.
    pub fn start(dir: &Path, name: &str, app: &str, transport: Transport, extra: &[&str]) -> Self {
        FcgiServe::start_with_env(dir, name, app, transport, extra, &[])
    }

    /// As [`start`](FcgiServe::start), with `env` added to the process's environment.
    pub fn start_with_env(
        dir: &Path,
        name: &str,
        app: &str,
        transport: Transport,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Self {
        let log = dir.join(format!("{name}.log"));
        let started = retry_on_port_clash(
            || {
                let addr = transport.addr(dir, name);
                let mut command = Command::new(fcgi_bin());
                command.args(["serve", "--app", app, "--listen"]);
                command.arg(addr.listen_arg()).args(extra);
                command.envs(env.iter().copied());
                let mut process = Guarded::spawn(name, command, &log);
                let up = wait_until(START_TIMEOUT, || !process.is_running() || addr.accepts());
                if up && process.is_running() {
                    return Ok(FcgiServe { addr, log: log.clone(), process });
                }
                Err(fs::read_to_string(&log).unwrap_or_default())
            },
            |log| transport == Transport::Tcp && log.contains("in use"),
        );
        started.unwrap_or_else(|log| panic!("fcgi serve ({name}) did not start listening:\n{log}"))
    }

    /// Where it listens.
    pub fn addr(&self) -> &Addr {
        &self.addr
    }

    /// What it logged so far (stdout and stderr).
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The process.
    pub fn process(&mut self) -> &mut Guarded {
        &mut self.process
    }

    /// Stops it gracefully (TERM) and waits up to `timeout` for it to exit, so that every
    /// line it logs is in [`log`](FcgiServe::log) (the logging thread flushes on exit): its
    /// exit status, if it exited.
    pub fn stop(&mut self, timeout: Duration) -> Option<ExitStatus> {
        self.process.signal(libc::SIGTERM);
        self.process.wait_exit(timeout)
    }
}

/// The children of process `pid`, from /proc: each one's PID and state letter (`Z` for a zombie).
pub fn children_of(pid: u32) -> Vec<(u32, char)> {
    let Ok(entries) = fs::read_dir("/proc") else { return Vec::new() };
    entries
        .filter_map(Result::ok)
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|child| {
            let stat = fs::read_to_string(format!("/proc/{child}/stat")).ok()?;
            // The command name (field 2) may hold spaces: the fields after it follow the last ')'.
            let rest = &stat[stat.rfind(')')? + 2..];
            let mut fields = rest.split(' ');
            let state = fields.next()?.chars().next()?;
            let parent: u32 = fields.next()?.parse().ok()?;
            (parent == pid).then_some((child, state))
        })
        .collect()
}

/// Whether process `pid` exists (a zombie counts).
pub fn process_exists(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}
