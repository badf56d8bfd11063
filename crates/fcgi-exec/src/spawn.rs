//! Starting one program process: its listening socket, bound in our private directory and
//! handed over on fd 0 (FCGI_LISTENSOCK_FILENO, as spawn-fcgi, mod_fcgid and PHP-FPM do), its
//! output on a pipe of ours, a process group of its own, death with its parent, its limits and
//! its chroot.

use std::ffi::OsString;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use crate::config::ExecConfig;

/// The listen backlog of each program's socket: one process serves one connection at a time,
/// and at most one request per process is ever sent to it by us; a few more cover a reconnect.
const BACKLOG: libc::c_int = 16;

/// The private directory the program sockets live in (mode 0700: no other user can reach a
/// program past fcgi-rs), removed with everything in it when dropped.
#[derive(Debug)]
pub(crate) struct SocketDir {
    path: PathBuf,
}

impl SocketDir {
    /// A new directory `fcgi-exec.PID.N` in `parent`.
    pub(crate) fn new(parent: &Path) -> io::Result<SocketDir> {
        use std::sync::atomic::{AtomicU32, Ordering};
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = parent.join(format!("fcgi-exec.{}.{n}", std::process::id()));
        // Left over by a process of the same pid that was killed: ours to clear.
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir(&path)?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o700))?;
        Ok(SocketDir { path })
    }

    /// The socket file of the process in `slot`.
    pub(crate) fn socket(&self, slot: u64) -> PathBuf {
        self.path.join(format!("{slot}.sock"))
    }
}

impl Drop for SocketDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// A started program process.
#[derive(Debug)]
pub(crate) struct Spawned {
    pub(crate) child: Child,
    /// The read end of its stdout and stderr (non-blocking).
    pub(crate) output: File,
    /// Readable once it has exited (`pidfd_open`); `None` where the kernel has no pidfds, and
    /// the supervisor then looks on a timer.
    pub(crate) pidfd: Option<OwnedFd>,
}

/// Starts the program of `config` listening on `socket`, with the environment `env`.
pub(crate) fn spawn(
    config: &ExecConfig,
    program: &Path,
    socket: &Path,
    env: &[(OsString, OsString)],
) -> io::Result<Spawned> {
    let _ = std::fs::remove_file(socket);
    let listener = UnixListener::bind(socket)?;
    // SAFETY: listen on a socket we own changes only its backlog.
    if unsafe { libc::listen(listener.as_raw_fd(), BACKLOG) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let (read, write) = pipe()?;
    let mut command = Command::new(program);
    command
        .args(&config.args)
        .env_clear()
        .envs(env.iter().map(|(n, v)| (n, v)))
        .stdin(Stdio::from(OwnedFd::from(listener)))
        .stdout(Stdio::from(write.try_clone()?))
        .stderr(Stdio::from(write));
    if config.chroot.is_none() {
        // A relative program path, and relative paths in its arguments, mean what they meant
        // where fcgi-rs was started.
        if let Ok(dir) = std::env::current_dir() {
            command.current_dir(dir);
        }
    }
    let limits = Limits::of(config);
    let chroot = match &config.chroot {
        Some(dir) => {
            Some(std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()).map_err(|_| {
                io::Error::new(io::ErrorKind::InvalidInput, "the chroot path has a NUL byte")
            })?)
        }
        None => None,
    };
    let parent = std::process::id();
    // SAFETY: between fork and exec the closure makes only async-signal-safe system calls on
    // values prepared before the fork; it allocates nothing.
    unsafe {
        command.pre_exec(move || {
            // Its own process group: signals for it (TERM, KILL) reach whatever it forked
            // (php-cgi's PHP_FCGI_CHILDREN), and a terminal's Ctrl-C is ours to pass on.
            if libc::setpgid(0, 0) != 0 {
                return Err(io::Error::last_os_error());
            }
            // Dies with the supervisor thread's process: nothing of ours outlives fcgi-rs.
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) != 0 {
                return Err(io::Error::last_os_error());
            }
            // The parent died before the line above: die now.
            if libc::getppid() as u32 != parent {
                libc::_exit(1);
            }
            limits.apply()?;
            if let Some(dir) = &chroot {
                if libc::chroot(dir.as_ptr()) != 0 || libc::chdir(c"/".as_ptr()) != 0 {
                    return Err(io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    let child = command.spawn()?;
    set_nonblocking(read.as_raw_fd());
    let pidfd = pidfd_open(child.id());
    Ok(Spawned { child, output: File::from(read), pidfd })
}

/// The resource limits a program starts with.
#[derive(Clone, Copy, Debug)]
struct Limits {
    nofile: Option<u64>,
    core: Option<u64>,
}

impl Limits {
    fn of(config: &ExecConfig) -> Limits {
        Limits { nofile: config.rlimit_nofile, core: config.rlimit_core }
    }

    /// Sets them (soft and hard) in the child, before exec.
    fn apply(&self) -> io::Result<()> {
        for (resource, value) in
            [(libc::RLIMIT_NOFILE, self.nofile), (libc::RLIMIT_CORE, self.core)]
        {
            let Some(value) = value else { continue };
            let limit =
                libc::rlimit { rlim_cur: value as libc::rlim_t, rlim_max: value as libc::rlim_t };
            // SAFETY: setrlimit reads the struct we pass.
            if unsafe { libc::setrlimit(resource, &limit) } != 0 {
                return Err(io::Error::last_os_error());
            }
        }
        Ok(())
    }
}

/// Whether a limit of `value` can be set by this process: at most its hard limit, unless it
/// may raise that (root).
pub(crate) fn check_limit(resource: libc::__rlimit_resource_t, value: u64) -> Result<(), u64> {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes the struct we pass.
    if unsafe { libc::getrlimit(resource, &mut limit) } != 0 {
        return Ok(());
    }
    // SAFETY: geteuid cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    let hard = limit.rlim_max;
    if root || limit.rlim_max == libc::RLIM_INFINITY || value <= hard {
        Ok(())
    } else {
        Err(hard)
    }
}

fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: pipe2 writes two descriptors into the array, which we then own.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both descriptors are new and ours alone.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

fn set_nonblocking(fd: libc::c_int) {
    // SAFETY: fcntl on a descriptor we own changes only its flags.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        if flags >= 0 {
            libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK);
        }
    }
}

fn pidfd_open(pid: u32) -> Option<OwnedFd> {
    // SAFETY: pidfd_open returns a new descriptor (ours) or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    // SAFETY: a non-negative result is a descriptor we now own.
    (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd as libc::c_int) })
}

/// Sends `signal` to the process group `pid` leads (it made its own at start).
pub(crate) fn signal_group(pid: u32, signal: libc::c_int) {
    // SAFETY: kill with a negative pid signals that group; an error (it is gone) is ignored.
    unsafe {
        libc::kill(-(pid as libc::pid_t), signal);
    }
}
