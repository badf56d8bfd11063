//! The master's side of a binary upgrade (USR2): starting the new binary with the listening
//! sockets, and reading its word on whether it serves; the master then hands over or carries
//! on (see [`crate::upgrade`]).

use std::ffi::OsString;
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, RawFd};
use std::path::Path;
use std::process::Command;

use fcgi_server::{Handoff, Listener};
use slog::{error, info, warn, Logger};

use crate::heartbeat;
use crate::pidfile;
use crate::sys::{self, SignalSet};
use crate::upgrade::{self, ENV_FDS, ENV_HANDOFF, ENV_READY};

/// An upgrade under way: the new master, and the pipe on which it will say it serves.
pub(super) struct Upgrade {
    pub(super) pid: i32,
    pub(super) ready: ReadyPipe,
}

/// The old master's end of the upgrade's pipe, on which the new master says it serves.
pub(super) struct ReadyPipe(pub(super) File);

/// What the new master has said so far on its pipe.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Word {
    /// Nothing yet.
    Awaited,
    /// It serves: this master may retire.
    Serves,
    /// It never will: why.
    Failed(String),
}

impl Upgrade {
    /// Starts the binary at `exe` (the new one, installed there) with this master's `args`
    /// and `listeners`, and `mask`, the signal mask a child starts with; this master's
    /// `pid_file` is moved aside meanwhile. The upgrade, with the hand-off socket on which
    /// this master passes on its kept connections once the new one serves (`None` if it
    /// cannot be made); `None` when the new binary did not start (logged, and the pid file put
    /// back).
    pub(super) fn start(
        exe: &Path,
        args: &[OsString],
        listeners: &[Listener],
        pid_file: Option<&Path>,
        mask: Option<SignalSet>,
        log: &Logger,
    ) -> Option<(Upgrade, Option<Handoff>)> {
        let (ready_read, ready_write) = match heartbeat::pipe() {
            Ok(pipe) => pipe,
            Err(e) => {
                error!(log, "upgrade failed: cannot make a pipe"; "error" => %e);
                return None;
            }
        };
        // Where this master passes on kept connections once the new one serves.
        let (successor, handoff_end) = match Handoff::pair() {
            Ok((ours, theirs)) => (Some(ours), Some(theirs)),
            Err(e) => {
                warn!(log, "cannot make a hand-off socket for the new master; the kept \
                    connections of this one's workers will be closed"; "error" => %e);
                (None, None)
            }
        };
        let fds: Vec<RawFd> = listeners.iter().map(AsRawFd::as_raw_fd).collect();
        let list = fds.iter().map(ToString::to_string).collect::<Vec<_>>().join(",");
        let ready_fd = ready_write.as_raw_fd();
        if let Some(path) = pid_file {
            if let Err(e) = std::fs::rename(path, pidfile::oldbin(path)) {
                warn!(log, "cannot move the pid file aside"; "path" => %path.display(), "error" => %e);
            }
        }
        let mut command = Command::new(exe);
        command
            .args(args)
            .env(ENV_FDS, &list)
            .env(ENV_READY, ready_fd.to_string())
            .env_remove("LISTEN_FDS")
            .env_remove("LISTEN_PID")
            .env_remove("LISTEN_FDNAMES");
        for listener in listeners {
            if let Some(path) = listener.socket_file() {
                command.env(upgrade::path_var(listener.as_raw_fd()), path);
            }
        }
        let mut inherit = fds.clone();
        inherit.push(ready_fd);
        if let Some(end) = &handoff_end {
            command.env(ENV_HANDOFF, end.as_raw_fd().to_string());
            inherit.push(end.as_raw_fd());
        }
        match sys::spawn_inheriting(&mut command, inherit, mask) {
            Ok(child) => {
                let pid = i32::try_from(child.id()).unwrap_or(-1);
                info!(log, "upgrade: new master started; waiting until it serves";
                    "worker_pid" => pid, "exe" => %exe.display(), "fds" => list);
                Some((Upgrade { pid, ready: ReadyPipe(ready_read) }, successor))
            }
            Err(e) => {
                error!(log, "upgrade failed: cannot start the new binary"; "exe" => %exe.display(), "error" => %e);
                restore_pid_file(pid_file);
                None
            }
        }
    }

    /// Reads the new master's pipe, without waiting.
    pub(super) fn word(&mut self) -> Word {
        let mut byte = [0; 1];
        match self.ready.0.read(&mut byte) {
            Ok(1) => Word::Serves,
            Ok(_) => Word::Failed("the new master closed its pipe before it served".to_owned()),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Word::Awaited,
            Err(e) => Word::Failed(format!("reading the new master's pipe failed: {e}")),
        }
    }
}

/// Puts the pid file moved aside for an upgrade back at `pid_file`, if it is still this
/// master's.
pub(super) fn restore_pid_file(pid_file: Option<&Path>) {
    if let Some(path) = pid_file {
        let oldbin = pidfile::oldbin(path);
        if pidfile::read(&oldbin) == Some(std::process::id()) {
            let _ = std::fs::rename(&oldbin, path);
        }
    }
}
