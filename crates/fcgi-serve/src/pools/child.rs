//! One pool's master, as the master of all pools starts and watches it: this binary run again
//! with the same arguments and `--pool NAME`, so that it reads its own section of the file (at
//! start and on each HUP) and is, to its workers, the same prefork master as one run by hand.
//!
//! Sockets that systemd handed this master (socket activation) reach the pool whose `listen`
//! names their address: the descriptor is left open across the exec and named on the command
//! line (`--listen fd:N`, which wins over the file's `listen` lines).
//!
//! It is told three things by its environment: [`ENV_MASTER`] (it runs under a master of
//! pools: it writes no pid file, and leaves USR2 to that master), and a `NOTIFY_SOCKET` of its
//! own, on which it says when it serves, as it would to systemd. It dies with the master of
//! pools (`PR_SET_PDEATHSIG`): killed, even with SIGKILL, that master leaves no pool running;
//! each pool master gets TERM, drains, and removes its socket files.

use std::ffi::OsString;
use std::io;
use std::os::fd::RawFd;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::path::Path;
use std::process::{Child, Command, ExitStatus};
use std::time::Instant;

/// Set in a pool master's environment to the master of pools' pid.
pub(crate) const ENV_MASTER: &str = "FCGI_POOLS_MASTER";

/// What a pool master said on its notification socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Said {
    /// Its workers serve (at start, and after a reload).
    Ready,
    /// It reloads.
    Reloading,
    /// It stops.
    Stopping,
}

/// A running pool master.
#[derive(Debug)]
pub(crate) struct PoolMaster {
    child: Child,
    /// When it was started.
    pub(crate) started: Instant,
    /// Whether it said it serves, and has not said since that it reloads or stops.
    pub(crate) ready: bool,
    notify: UnixDatagram,
}

impl PoolMaster {
    /// Starts the master of `pool`: `exe` with `args` (this process's, less its name),
    /// `--pool NAME` and `extra`; the descriptors `inherited` (sockets this master was given,
    /// named in `extra` as `--listen fd:N`) stay open across the exec, in that child alone.
    /// `generation` makes its notification socket's name unique.
    pub(crate) fn start(
        exe: &Path,
        args: &[OsString],
        pool: &str,
        generation: u64,
        (extra, inherited): (&[OsString], &[RawFd]),
    ) -> io::Result<PoolMaster> {
        let master = std::process::id();
        // Abstract: nothing to remove, and gone with this process.
        let name = format!("fcgi-rs/pools/{master}/{generation}/{pool}");
        let notify = UnixDatagram::bind_addr(&SocketAddr::from_abstract_name(name.as_bytes())?)?;
        notify.set_nonblocking(true)?;
        let mut command = Command::new(exe);
        command
            .args(args)
            .arg("--pool")
            .arg(pool)
            .args(extra)
            .env(ENV_MASTER, master.to_string())
            .env(fcgi_prefork::notify::ENV_SOCKET, format!("@{name}"))
            // Inherited sockets are this master's to share out, not each pool's to take.
            .env_remove("LISTEN_FDS")
            .env_remove("LISTEN_PID")
            .env_remove("LISTEN_FDNAMES");
        crate::sys::prepare_pool_master(&mut command, inherited.to_vec());
        let child = command.spawn()?;
        Ok(PoolMaster { child, started: Instant::now(), ready: false, notify })
    }

    /// Its process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends it `signal`.
    pub(crate) fn signal(&self, signal: i32) {
        // The pid is our unreaped child's: it cannot name another process.
        if let Ok(pid) = i32::try_from(self.child.id()) {
            fcgi_prefork::send_signal(pid, signal);
        }
    }

    /// How it ended, once it has (the child is reaped).
    pub(crate) fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// What it said since the last call, in order; `ready` follows.
    pub(crate) fn said(&mut self) -> Vec<Said> {
        let mut said = Vec::new();
        let mut buf = [0u8; 4096];
        while let Ok(n) = self.notify.recv(&mut buf) {
            let text = String::from_utf8_lossy(&buf[..n]);
            for line in text.lines() {
                let event = match line {
                    "READY=1" => Said::Ready,
                    "RELOADING=1" => Said::Reloading,
                    "STOPPING=1" => Said::Stopping,
                    _ => continue,
                };
                self.ready = event == Said::Ready;
                said.push(event);
            }
        }
        said
    }
}
