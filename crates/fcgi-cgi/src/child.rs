//! Starting a program and making sure it is reaped: [`Child`] kills the program's process group
//! and waits for it on every path out (a return, an error, a panic), so that no zombie can be
//! left behind.

use std::ffi::OsString;
use std::io;
use std::os::fd::RawFd;
use std::os::unix::process::CommandExt;
use std::process::{ChildStderr, ChildStdin, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};

use crate::env::Vars;
use crate::resolve::Script;
use crate::sys;

/// A signal for [`Child::signal_group`] (rustix's, as fcgi-cgi sends it).
pub use crate::sys::{tie_to_parent, Signal};

/// The pipe size asked for the program's stdout. Linux's default is 64 KiB; a larger pipe lets a
/// program that writes a large response run ahead of us with fewer wake-ups on both sides. 1 MiB
/// is the most an unprivileged process may ask (`/proc/sys/fs/pipe-max-size`); we ask for less
/// so as not to hit the per-user pipe quota (`pipe-user-pages-soft`) with many requests at once.
const STDOUT_PIPE_SIZE: usize = 256 * 1024;

/// Whether programs die with the server: see [`die_with_server`].
static DIE_WITH_SERVER: AtomicBool = AtomicBool::new(false);

/// Makes every program started from now on get SIGKILL when the server dies
/// (`PR_SET_PDEATHSIG`), for a server with no master to clean up after it: killed, it would
/// otherwise leave its programs running under init.
///
/// Off by default, for its cost: with it on, std's `Command` cannot use `posix_spawn` (a
/// `pre_exec` closure forces a `fork`, which copies the server's page tables and holds its
/// memory map lock meanwhile). Measured with `fcgi bench --keep-conn` on a script that prints one line
/// (release build, 2 cores): 650-720 requests/s with `posix_spawn` against 430-500 with it
/// on one connection, 1,500-1,700 against 730-800 on four. A prefork worker does not need
/// it: its master is the subreaper of the worker's programs and kills their process groups
/// when the worker dies, descendants included; nor does a systemd unit, whose cgroup is
/// killed when its main process dies.
///
/// Limits, from the kernel's rules: the signal comes when the *thread* that started the
/// program ends, which is the request's handler thread, and that thread reaps its program
/// before the request ends (the [`Child`] guard), so the signal never comes early; it reaches
/// the program only, not what the program started (the settings are not inherited across
/// `fork`); and it is cleared when the program executes a set-user-ID or set-group-ID binary.
pub fn die_with_server(enabled: bool) {
    DIE_WITH_SERVER.store(enabled, Ordering::Relaxed);
}

/// What to start: the program, its command line and environment, and whether it gets a body.
#[derive(Debug)]
pub struct Launch<'a> {
    /// The program (already resolved and checked).
    pub script: &'a Script,
    /// The request's meta-variables.
    pub vars: &'a Vars,
    /// `--pass-env` values from our own environment.
    pub pass_env: &'a [(OsString, OsString)],
    /// Arguments after argv\[0\] (RFC 3875 section 4.4, only with `--cgi-argv`).
    pub args: &'a [OsString],
    /// Whether stdin is a pipe for the request body; without, it is `/dev/null`.
    pub body: bool,
}

/// A running program, its pipes taken out.
#[derive(Debug)]
pub struct Spawned {
    /// The guard that reaps it.
    pub child: Child,
    /// Its stdin, when it gets a body.
    pub stdin: Option<ChildStdin>,
    /// Its stdout: the response.
    pub stdout: ChildStdout,
    /// Its stderr: log lines.
    pub stderr: ChildStderr,
}

/// Starts the program.
///
/// ```no_run
/// use fcgi_cgi::child::{spawn, Launch};
/// use fcgi_cgi::env::Vars;
/// use fcgi_cgi::resolve::resolve;
///
/// let vars = Vars::from_pairs(&[("SCRIPT_FILENAME", "/usr/lib/cgi-bin/hello.sh")]);
/// let script = resolve(&vars, None)?;
/// let launch = Launch { script: &script, vars: &vars, pass_env: &[], args: &[], body: false };
/// let mut spawned = spawn(&launch)?;
/// // ... read spawned.stdout and spawned.stderr ...
/// let status = spawned.child.kill_and_reap()?; // also what dropping it does
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// `std::process::Command` spawns with `posix_spawn` on glibc (clone with `CLONE_VM |
/// CLONE_VFORK`, then execve: no copy of our address space, no shell) as long as nothing forces
/// a `fork`: no `pre_exec`, no uid or gid change. `env_clear` + `envs`, `current_dir` and
/// `process_group` all have posix_spawn equivalents (`posix_spawn_file_actions_addchdir_np`,
/// `POSIX_SPAWN_SETPGROUP`). Checked with `strace -f -e trace=clone,clone3,vfork,fork,execve`
/// on Debian 12 (glibc 2.36): one `clone3` with `CLONE_VM|CLONE_VFORK` and one `execve` per
/// request. std also resets SIGPIPE to its default in the child (we ignore it, as every Rust
/// program does), so a program writing to a closed pipe dies the usual death.
///
/// The program leads a process group of its own, so that a timeout or an abort reaches whatever
/// it started too. Every descriptor of ours is close-on-exec (std's pipes and sockets,
/// fcgi-server's listeners and spool files): it inherits only its 0, 1 and 2.
pub fn spawn(launch: &Launch<'_>) -> io::Result<Spawned> {
    let mut command = Command::new(&launch.script.path);
    command
        .args(launch.args)
        .env_clear()
        .envs(launch.vars.iter())
        .envs(launch.pass_env.iter().map(|(n, v)| (n, v)))
        .current_dir(&launch.script.dir)
        .process_group(0)
        .stdin(if launch.body { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if DIE_WITH_SERVER.load(Ordering::Relaxed) {
        sys::die_with_parent(&mut command);
    }
    let mut child = command.spawn()?;
    let (stdin, stdout, stderr) = (child.stdin.take(), child.stdout.take(), child.stderr.take());
    let child = Child { child, reaped: None };
    let (Some(stdout), Some(stderr)) = (stdout, stderr) else {
        // Cannot happen with piped stdio; the guard reaps the program.
        return Err(io::Error::other("the program's pipes are missing"));
    };
    // Failure (an old kernel, the quota) only leaves the default size.
    let _ = sys::set_pipe_size(&stdout, STDOUT_PIPE_SIZE);
    Ok(Spawned { child, stdin, stdout, stderr })
}

/// A started program that is reaped, whatever happens: dropping it unreaped kills its process
/// group with SIGKILL and waits.
#[derive(Debug)]
pub struct Child {
    child: std::process::Child,
    reaped: Option<ExitStatus>,
}

impl Child {
    /// The process id (also its process group id).
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Sends `signal` to the program's process group: the program and whatever it started that
    /// stayed in its group. Does nothing once the program is reaped, when its id may belong to
    /// someone else.
    pub fn signal_group(&self, signal: Signal) {
        // The group exists at least as long as its leader is unreaped.
        if self.reaped.is_none() {
            sys::signal_group(self.child.id(), signal);
        }
    }

    /// The exit status, if the program has exited (it is then reaped).
    pub fn try_wait(&mut self) -> io::Result<Option<ExitStatus>> {
        if self.reaped.is_none() {
            self.reaped = self.child.try_wait()?;
        }
        Ok(self.reaped)
    }

    /// Kills the process group (SIGKILL) and waits for the program.
    pub fn kill_and_reap(&mut self) -> io::Result<ExitStatus> {
        if let Some(status) = self.reaped {
            return Ok(status);
        }
        self.signal_group(Signal::KILL);
        let status = self.child.wait()?;
        self.reaped = Some(status);
        Ok(status)
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.kill_and_reap();
    }
}

/// Marks every descriptor above 2 of this process close-on-exec. Ours all are already; this is
/// for those the process inherited from whoever started it (a shell, a supervisor, a test
/// harness) without the flag, which would otherwise pass on to every program. Returns how many
/// it had to mark. Reads `/proc/self/fd`; without /proc it does nothing.
pub fn close_inherited_on_exec() -> usize {
    let Ok(entries) = std::fs::read_dir("/proc/self/fd") else { return 0 };
    // Collected first: the listing's own descriptor is among them while it is open.
    let fds: Vec<RawFd> = entries
        .filter_map(Result::ok)
        .filter_map(|entry| entry.file_name().to_str().and_then(|name| name.parse().ok()))
        .filter(|&fd| fd > 2)
        .collect();
    // The listing's own descriptor is closed by now: marking it fails, and is not counted.
    fds.into_iter().filter(|&fd| sys::mark_close_on_exec(fd)).count()
}
