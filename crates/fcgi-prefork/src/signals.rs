//! The master's signals, read from a `signalfd` in its poll loop.
//!
//! The master blocks the signals it handles and reads them from a descriptor, so it installs
//! no signal handler and starts no thread: nothing about them can break across `fork`. A child
//! closes the descriptor and restores the original mask before anything else runs, so a worker
//! (or an upgraded binary) starts with the dispositions it would have had without a master.

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// The signals the master acts on.
pub(crate) const HANDLED: [libc::c_int; 9] = [
    libc::SIGTERM,
    libc::SIGINT,
    libc::SIGQUIT,
    libc::SIGHUP,
    libc::SIGUSR1,
    libc::SIGUSR2,
    libc::SIGTTIN,
    libc::SIGTTOU,
    libc::SIGCHLD,
];

/// The blocked signals and the descriptor they arrive on.
#[derive(Debug)]
pub(crate) struct SignalFd {
    file: File,
    original: libc::sigset_t,
}

impl SignalFd {
    /// Blocks [`HANDLED`] and opens the descriptor that receives them.
    pub(crate) fn new() -> io::Result<SignalFd> {
        // SAFETY: the sets are zeroed plain data initialised by sigemptyset before use; the
        // calls only read and write them.
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            let mut original: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            for signal in HANDLED {
                libc::sigaddset(&mut set, signal);
            }
            if libc::pthread_sigmask(libc::SIG_BLOCK, &set, &mut original) != 0 {
                return Err(io::Error::last_os_error());
            }
            // A master started by an upgrade inherits these blocked (exec keeps the mask):
            // what children get back must have them unblocked all the same.
            for signal in HANDLED {
                libc::sigdelset(&mut original, signal);
            }
            let fd = libc::signalfd(-1, &set, libc::SFD_CLOEXEC | libc::SFD_NONBLOCK);
            if fd < 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(SignalFd { file: File::from(OwnedFd::from_raw_fd(fd)), original })
        }
    }

    pub(crate) fn raw_fd(&self) -> libc::c_int {
        self.file.as_raw_fd()
    }

    /// The signals that arrived, in order; empty when none is pending.
    pub(crate) fn pending(&mut self) -> Vec<libc::c_int> {
        let mut signals = Vec::new();
        let size = std::mem::size_of::<libc::signalfd_siginfo>();
        let mut buf = vec![0u8; size * 8];
        loop {
            match self.file.read(&mut buf) {
                Ok(n) if n >= size => {
                    for chunk in buf[..n].chunks_exact(size) {
                        // ssi_signo is the first field: a u32 in native order.
                        let signo = u32::from_ne_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
                        signals.push(libc::c_int::try_from(signo).unwrap_or(0));
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                _ => return signals,
            }
        }
    }

    /// The mask children get: the one the process started with, minus the master's signals.
    pub(crate) fn child_mask(&self) -> libc::sigset_t {
        self.original
    }

    /// In a freshly forked child: give up the descriptor and unblock what the master blocked.
    pub(crate) fn release_in_child(self) {
        let original = self.original;
        drop(self.file);
        restore_mask(&original);
    }
}

/// Sets the calling thread's signal mask.
pub(crate) fn restore_mask(mask: &libc::sigset_t) {
    // SAFETY: `mask` is an initialised signal set; a null old-set pointer is allowed.
    unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, mask, std::ptr::null_mut()) };
}

/// A signal's conventional name, for the logs (its number when it has none here).
///
/// ```
/// assert_eq!(fcgi_prefork::signal_name(libc::SIGHUP), "HUP");
/// assert_eq!(fcgi_prefork::signal_name(64), "64");
/// ```
pub fn name(signal: libc::c_int) -> String {
    let name = match signal {
        libc::SIGTERM => "TERM",
        libc::SIGINT => "INT",
        libc::SIGQUIT => "QUIT",
        libc::SIGHUP => "HUP",
        libc::SIGUSR1 => "USR1",
        libc::SIGUSR2 => "USR2",
        libc::SIGTTIN => "TTIN",
        libc::SIGTTOU => "TTOU",
        libc::SIGCHLD => "CHLD",
        libc::SIGKILL => "KILL",
        libc::SIGSEGV => "SEGV",
        libc::SIGABRT => "ABRT",
        libc::SIGBUS => "BUS",
        libc::SIGPIPE => "PIPE",
        other => return other.to_string(),
    };
    name.to_owned()
}

/// Sends `signal` to `pid`; a process already gone is not an error.
///
/// ```no_run
/// fcgi_prefork::send_signal(12345, libc::SIGHUP);
/// ```
pub fn send(pid: libc::pid_t, signal: libc::c_int) {
    // SAFETY: kill(2) has no memory effects.
    unsafe { libc::kill(pid, signal) };
}
