//! The master's signals, read from a `signalfd` in its poll loop.
//!
//! The master blocks the signals it handles and reads them from a descriptor, so it installs
//! no signal handler and starts no thread: nothing about them can break across `fork`. A child
//! closes the descriptor and restores the original mask before anything else runs, so a worker
//! (or an upgraded binary) starts with the dispositions it would have had without a master.

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, BorrowedFd};

use crate::sys::{self, Signal, SignalSet};

/// The signals the master acts on.
pub(crate) const HANDLED: [Signal; 9] = [
    Signal::TERM,
    Signal::INT,
    Signal::QUIT,
    Signal::HUP,
    Signal::USR1,
    Signal::USR2,
    Signal::TTIN,
    Signal::TTOU,
    Signal::CHILD,
];

/// The blocked signals and the descriptor they arrive on.
#[derive(Debug)]
pub(crate) struct SignalFd {
    file: File,
    original: SignalSet,
}

impl SignalFd {
    /// Blocks [`HANDLED`] and opens the descriptor that receives them.
    pub(crate) fn new() -> io::Result<SignalFd> {
        let set = SignalSet::of(&HANDLED);
        let mut original = sys::block_signals(&set)?;
        // A master started by an upgrade inherits these blocked (exec keeps the mask):
        // what children get back must have them unblocked all the same.
        for signal in HANDLED {
            original.set(signal, false);
        }
        let file = File::from(sys::signalfd(&set)?);
        Ok(SignalFd { file, original })
    }

    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }

    /// The signals that arrived, in order; empty when none is pending.
    pub(crate) fn pending(&mut self) -> Vec<i32> {
        let mut signals = Vec::new();
        let size = sys::SIGNALFD_RECORD;
        let mut buf = vec![0u8; size * 8];
        loop {
            match self.file.read(&mut buf) {
                Ok(n) if n >= size => {
                    for chunk in buf[..n].chunks_exact(size) {
                        // ssi_signo is the first field: a u32 in native order.
                        let signo = u32::from_ne_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
                        signals.push(i32::try_from(signo).unwrap_or(0));
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                _ => return signals,
            }
        }
    }

    /// The mask children get: the one the process started with, minus the master's signals.
    pub(crate) fn child_mask(&self) -> SignalSet {
        self.original
    }

    /// In a freshly forked child: give up the descriptor and unblock what the master blocked.
    pub(crate) fn release_in_child(self) {
        let original = self.original;
        drop(self.file);
        // Ignored on purpose: setting the mask fails only for an invalid request (EINVAL),
        // and this one is SIG_SETMASK with a set made by sigemptyset.
        let _ = sys::set_signal_mask(&original);
    }
}

/// A signal's conventional name, for the logs (its number when it has none here).
///
/// ```
/// assert_eq!(fcgi_prefork::signal_name(1), "HUP"); // SIGHUP on Linux
/// assert_eq!(fcgi_prefork::signal_name(64), "64");
/// ```
pub fn name(signal: i32) -> String {
    let name = match Signal::from_named_raw(signal) {
        Some(Signal::TERM) => "TERM",
        Some(Signal::INT) => "INT",
        Some(Signal::QUIT) => "QUIT",
        Some(Signal::HUP) => "HUP",
        Some(Signal::USR1) => "USR1",
        Some(Signal::USR2) => "USR2",
        Some(Signal::TTIN) => "TTIN",
        Some(Signal::TTOU) => "TTOU",
        Some(Signal::CHILD) => "CHLD",
        Some(Signal::KILL) => "KILL",
        Some(Signal::SEGV) => "SEGV",
        Some(Signal::ABORT) => "ABRT",
        Some(Signal::BUS) => "BUS",
        Some(Signal::PIPE) => "PIPE",
        _ => return signal.to_string(),
    };
    name.to_owned()
}

/// Sends `signal` to `pid`, both as `kill(2)` takes them; a process already gone is not an
/// error.
///
/// ```no_run
/// fcgi_prefork::send_signal(12345, 1); // SIGHUP on Linux
/// ```
pub fn send(pid: i32, signal: i32) {
    sys::kill_raw(pid, signal);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_numbers() {
        assert_eq!(name(Signal::TERM.as_raw()), "TERM");
        assert_eq!(name(Signal::CHILD.as_raw()), "CHLD");
        assert_eq!(name(Signal::ABORT.as_raw()), "ABRT");
        assert_eq!(name(0), "0");
        assert_eq!(name(64), "64");
    }
}
