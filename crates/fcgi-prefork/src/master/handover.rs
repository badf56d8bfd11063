//! The master's side of a binary upgrade (USR2): starting the new binary with the listening
//! sockets, waiting for its word, and handing over or carrying on (see [`crate::upgrade`]).

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, RawFd};
use std::process::Command;

use fcgi_server::Handoff;
use slog::{error, info, warn};

use super::Run;
use crate::heartbeat;
use crate::pidfile;
use crate::signals::SignalFd;
use crate::sys;
use crate::upgrade::{self, ENV_FDS, ENV_HANDOFF, ENV_READY};

/// An upgrade under way: the new master, and the pipe on which it will say it serves.
pub(super) struct Upgrade {
    pub(super) pid: i32,
    pub(super) ready: ReadyPipe,
}

/// The old master's end of the upgrade's pipe, on which the new master says it serves.
pub(super) struct ReadyPipe(pub(super) File);

impl Run {
    pub(super) fn start_upgrade(&mut self) {
        let log = self.master.log.clone();
        if self.upgrade.is_some() || self.handed_over {
            warn!(log, "an upgrade is already under way; USR2 ignored");
            return;
        }
        let (ready_read, ready_write) = match heartbeat::pipe() {
            Ok(pipe) => pipe,
            Err(e) => return error!(log, "upgrade failed: cannot make a pipe"; "error" => %e),
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
        let fds: Vec<RawFd> = self.master.listeners.iter().map(AsRawFd::as_raw_fd).collect();
        let list = fds.iter().map(ToString::to_string).collect::<Vec<_>>().join(",");
        let ready_fd = ready_write.as_raw_fd();
        if let Some(path) = &self.master.pid_file {
            if let Err(e) = std::fs::rename(path, pidfile::oldbin(path)) {
                warn!(log, "cannot move the pid file aside"; "path" => %path.display(), "error" => %e);
            }
        }
        let mut command = Command::new(&self.master.exe);
        command
            .args(&self.master.args)
            .env(ENV_FDS, &list)
            .env(ENV_READY, ready_fd.to_string())
            .env_remove("LISTEN_FDS")
            .env_remove("LISTEN_PID")
            .env_remove("LISTEN_FDNAMES");
        for listener in &self.master.listeners {
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
        let mask = self.signals.as_ref().map(SignalFd::child_mask);
        match sys::spawn_inheriting(&mut command, inherit, mask) {
            Ok(child) => {
                let pid = i32::try_from(child.id()).unwrap_or(-1);
                info!(log, "upgrade: new master started; waiting until it serves";
                    "worker_pid" => pid, "exe" => %self.master.exe.display(), "fds" => list);
                self.upgrade = Some(Upgrade { pid, ready: ReadyPipe(ready_read) });
                self.new_masters.push(pid);
                self.relay.successor = successor;
            }
            Err(e) => {
                error!(log, "upgrade failed: cannot start the new binary"; "exe" => %self.master.exe.display(), "error" => %e);
                self.restore_pid_file();
            }
        }
    }

    pub(super) fn check_upgrade(&mut self) {
        let Some(upgrade) = &mut self.upgrade else { return };
        let mut byte = [0; 1];
        match upgrade.ready.0.read(&mut byte) {
            Ok(1) => {
                let pid = upgrade.pid;
                self.upgrade = None;
                self.handed_over = true;
                info!(self.master.log, "upgrade: the new master serves; retiring this one gracefully"; "new_pid" => pid);
                for listener in &mut self.master.listeners {
                    listener.keep_socket_file();
                }
                self.stop(false);
            }
            Ok(_) => self.upgrade_failed("the new master closed its pipe before it served"),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => self.upgrade_failed(&format!("reading the new master's pipe failed: {e}")),
        }
    }

    pub(super) fn upgrade_failed(&mut self, why: &str) {
        if let Some(upgrade) = self.upgrade.take() {
            self.relay.successor = None;
            self.restore_pid_file();
            error!(self.master.log, "upgrade failed; this master goes on serving";
                "why" => why, "new_pid" => upgrade.pid);
        }
    }

    fn restore_pid_file(&self) {
        if let Some(path) = &self.master.pid_file {
            let oldbin = pidfile::oldbin(path);
            if pidfile::read(&oldbin) == Some(std::process::id()) {
                let _ = std::fs::rename(&oldbin, path);
            }
        }
    }

    pub(super) fn say_ready_if_serving(&mut self) {
        if self.master.ready.is_none() || self.stopping.is_some() {
            return;
        }
        if self.serving_now() >= self.wanted_minimum() {
            if let Some(pipe) = self.master.ready.take() {
                match upgrade::say_ready(pipe) {
                    Ok(()) => info!(self.master.log, "upgrade: serving; the old master may retire"),
                    Err(e) => {
                        warn!(self.master.log, "cannot tell the old master we serve"; "error" => %e)
                    }
                }
            }
        }
    }
}
