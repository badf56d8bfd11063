//! The binary upgrade (USR2): the listening sockets handed to a new master by descriptor
//! inheritance, and the new master's word that it is serving.
//!
//! The old master forks and executes its own binary again (the file at the path it was started
//! from, so a new build installed there is what runs) with the same arguments, the listening
//! descriptors left open across `exec`, and two variables: [`ENV_FDS`], their numbers, and
//! [`ENV_READY`], the write end of a pipe. The new master adopts the sockets (never binding
//! or unlinking a Unix socket file, so the path always answers) and, once its workers serve,
//! writes one byte on the pipe. The old master then retires its workers gracefully and exits;
//! if instead the pipe closes without that byte, the new master failed and the old one goes on.
//!
//! Two more things cross: for each Unix socket file the old master would have removed, its
//! path ([`path_var`]: the socket's own name is not always that path, since a socket with a
//! mode or owner is bound elsewhere and renamed into place), so that the new master removes the
//! right file when it stops; and one end of a hand-off socket ([`ENV_HANDOFF`]), on which the
//! old master passes on its retiring workers' kept connections.

use std::ffi::OsString;
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::RawFd;
use std::path::PathBuf;

use fcgi_server::{Handoff, ListenError, Listener};

/// The numbers of the inherited listening descriptors, comma-separated.
pub const ENV_FDS: &str = "FCGI_PREFORK_FDS";
/// The descriptor on which the new master says it is serving.
pub const ENV_READY: &str = "FCGI_PREFORK_READY_FD";
/// The descriptor of the new master's end of the hand-off socket from the old one.
pub const ENV_HANDOFF: &str = "FCGI_PREFORK_HANDOFF_FD";
/// What [`path_var`] names begin with.
const ENV_PATH_PREFIX: &str = "FCGI_PREFORK_PATH_";

/// The variable that holds the socket file of inherited listening descriptor `fd`
/// (`FCGI_PREFORK_PATH_3`): the path the old master bound it at, and would have removed.
pub fn path_var(fd: RawFd) -> String {
    format!("{ENV_PATH_PREFIX}{fd}")
}

/// The listening sockets an upgrading master handed over, or `None` when this process was not
/// started by a USR2 upgrade. The variable is removed, so that workers and later upgrades do not
/// see it; the process becomes responsible for the sockets' files (it removes them on exit, as
/// their creator would have).
///
/// ```no_run
/// let listeners = match fcgi_prefork::inherited_listeners()? {
///     Some(inherited) => inherited,
///     None => vec![fcgi_server::Listener::bind(
///         &"unix:/run/app.sock".parse()?,
///         &fcgi_server::ListenOptions::default(),
///     )?],
/// };
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn inherited_listeners() -> Result<Option<Vec<Listener>>, ListenError> {
    let Some(list) = std::env::var_os(ENV_FDS) else { return Ok(None) };
    std::env::remove_var(ENV_FDS);
    let list = list.to_string_lossy().into_owned();
    let mut listeners = Vec::new();
    for item in list.split(',').filter(|s| !s.is_empty()) {
        let fd: RawFd = item.trim().parse().map_err(|_| ListenError::NotListening {
            fd: -1,
            reason: format!("{ENV_FDS} holds {item:?}, not a descriptor number"),
        })?;
        // Adopting marks it close-on-exec again: only the next upgrade clears it.
        let mut listener = Listener::inherited(fd)?;
        let var = path_var(fd);
        match std::env::var_os(&var) {
            Some(path) => {
                std::env::remove_var(&var);
                listener.own_socket_file_at(PathBuf::from(path));
            }
            // From an old master that did not say: the socket's own name.
            None => listener.own_socket_file(),
        }
        listeners.push(listener);
    }
    Ok(Some(listeners))
}

/// The new master's end of the hand-off socket from the old master, when this process was
/// started by an upgrade. The variable is removed, as [`ENV_FDS`] is.
pub(crate) fn handoff_from_old_master() -> Option<Handoff> {
    let value: Option<OsString> = std::env::var_os(ENV_HANDOFF);
    std::env::remove_var(ENV_HANDOFF);
    let fd: RawFd = value?.to_str()?.parse().ok()?;
    // `from_fd` refuses it if it is not a hand-off socket.
    Handoff::from_fd(fcgi_server::take_inherited(fd).ok()?).ok()
}

/// The pipe to the old master, when this process is the new master of an upgrade.
pub(crate) fn ready_pipe() -> Option<File> {
    let value = std::env::var(ENV_READY).ok();
    std::env::remove_var(ENV_READY);
    let fd: RawFd = value?.parse().ok()?;
    Some(File::from(fcgi_server::take_inherited(fd).ok()?))
}

/// Tells the old master that this one is serving.
pub(crate) fn say_ready(mut pipe: File) -> io::Result<()> {
    pipe.write_all(b"R")
}
