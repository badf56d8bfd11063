//! Starting one program process: its listening socket, bound in our private directory and
//! handed over on fd 0 (FCGI_LISTENSOCK_FILENO, as spawn-fcgi, mod_fcgid and PHP-FPM do), its
//! output on a pipe of ours, a process group of its own, death with its parent, its limits and
//! its chroot.

use std::ffi::OsString;
use std::fs::File;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use crate::config::ExecConfig;
use crate::sys::{self, ChildSetup, Resource};

/// The listen backlog of each program's socket: one process serves one connection at a time,
/// and at most one request per process is ever sent to it by us; a few more cover a reconnect.
const BACKLOG: i32 = 16;

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
    sys::listen(&listener, BACKLOG)?;
    let (read, write) = sys::pipe()?;
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
    let chroot = match &config.chroot {
        Some(dir) => {
            Some(std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()).map_err(|_| {
                io::Error::new(io::ErrorKind::InvalidInput, "the chroot path has a NUL byte")
            })?)
        }
        None => None,
    };
    let limits = [(Resource::Nofile, config.rlimit_nofile), (Resource::Core, config.rlimit_core)]
        .into_iter()
        .filter_map(|(resource, value)| Some((resource, value?)))
        .collect();
    sys::prepare_child(&mut command, ChildSetup { limits, chroot });
    let child = command.spawn()?;
    sys::set_nonblocking(&read)?;
    let pidfd = sys::pidfd_open(child.id());
    Ok(Spawned { child, output: File::from(read), pidfd })
}
