//! The descriptor and socket calls that the listeners, the accepted connections and the
//! hand-off socket share, in one place: each is a thin, checked wrapper of one system call
//! (the event set's own are in `epoll.rs`).

use std::io;
use std::os::fd::RawFd;

/// Sets the listen backlog of the listening socket `fd`. std listens with a fixed backlog of
/// 128; listening again on a listening socket only changes it.
pub(crate) fn set_backlog(fd: RawFd, backlog: i32) -> io::Result<()> {
    // SAFETY: listen(2) on a descriptor the caller owns; it takes no memory and no ownership.
    check(unsafe { libc::listen(fd, backlog) }).map(drop)
}

/// Sets `FD_CLOEXEC` on `fd`.
pub(crate) fn set_cloexec(fd: RawFd) -> io::Result<()> {
    // SAFETY: fcntl with flag arguments only; an invalid descriptor is reported as an error.
    let flags = check(unsafe { libc::fcntl(fd, libc::F_GETFD) })?;
    // SAFETY: as above.
    check(unsafe { libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC) }).map(drop)
}

/// Whether `fd` is marked close-on-exec.
pub(crate) fn is_cloexec(fd: RawFd) -> io::Result<bool> {
    // SAFETY: F_GETFD reads a flag; an invalid descriptor is reported as an error.
    let flags = check(unsafe { libc::fcntl(fd, libc::F_GETFD) })?;
    Ok(flags & libc::FD_CLOEXEC != 0)
}

/// Sets `O_NONBLOCK` on `fd`.
pub(crate) fn set_nonblocking(fd: RawFd) -> io::Result<()> {
    // SAFETY: fcntl with flag arguments only; an invalid descriptor is reported as an error.
    let flags = check(unsafe { libc::fcntl(fd, libc::F_GETFL) })?;
    // SAFETY: as above.
    check(unsafe { libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) }).map(drop)
}

/// The address family (`AF_UNIX`, `AF_INET`, ...) of the socket `fd`, listening or connected.
pub(crate) fn socket_family(fd: RawFd) -> io::Result<libc::c_int> {
    // SAFETY: an all-zero sockaddr_storage is valid; getsockname writes at most `len` bytes
    // into it.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: see above; the pointer and length describe `storage`, which we own.
    check(unsafe {
        libc::getsockname(fd, (&mut storage as *mut libc::sockaddr_storage).cast(), &mut len)
    })?;
    Ok(libc::c_int::from(storage.ss_family))
}

/// The `SOL_SOCKET` option `option` of `fd`, as an integer (`SO_TYPE`, `SO_ACCEPTCONN`, ...).
pub(crate) fn socket_option(fd: RawFd, option: libc::c_int) -> io::Result<libc::c_int> {
    let mut value: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into `value`, which we own.
    check(unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            option,
            (&mut value as *mut libc::c_int).cast(),
            &mut len,
        )
    })?;
    Ok(value)
}

/// Calls `call` again while it fails with `EINTR`: its result, or the error it ended with.
pub(crate) fn retry(mut call: impl FnMut() -> isize) -> io::Result<usize> {
    loop {
        let n = call();
        if n >= 0 {
            return Ok(n as usize);
        }
        let error = io::Error::last_os_error();
        if error.kind() != io::ErrorKind::Interrupted {
            return Err(error);
        }
    }
}

/// What a process does with a signal, as `sigaction` tells.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SignalAction {
    /// The default action (for TERM and INT: the process ends).
    Default,
    /// Ignored (`SIG_IGN`): what `nohup` and a shell's background jobs are given.
    Ignored,
    /// A handler of the process's own.
    Handled,
}

/// What the process does with `signal` now; changes nothing.
pub(crate) fn signal_action(signal: libc::c_int) -> io::Result<SignalAction> {
    // SAFETY: an all-zero sigaction is valid; with a null new action, sigaction only writes
    // the current one into `old`, which we own.
    let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
    // SAFETY: see above.
    check(unsafe { libc::sigaction(signal, std::ptr::null(), &mut old) })?;
    Ok(match old.sa_sigaction {
        libc::SIG_DFL => SignalAction::Default,
        libc::SIG_IGN => SignalAction::Ignored,
        _ => SignalAction::Handled,
    })
}

/// A system call's `int` result: the value, or the error `errno` says.
fn check(rc: libc::c_int) -> io::Result<libc::c_int> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsRawFd;
    use std::os::unix::net::{UnixListener, UnixStream};

    use super::*;

    #[test]
    fn flags_and_options_read_back_as_set() {
        let dir = tempfile::tempdir().unwrap();
        let listener = UnixListener::bind(dir.path().join("s")).unwrap();
        let fd = listener.as_raw_fd();
        assert!(is_cloexec(fd).unwrap(), "std opens descriptors close-on-exec");
        assert_eq!(socket_family(fd).unwrap(), libc::AF_UNIX);
        assert_eq!(socket_option(fd, libc::SO_ACCEPTCONN).unwrap(), 1);
        assert_eq!(socket_option(fd, libc::SO_TYPE).unwrap(), libc::SOCK_STREAM);
        set_backlog(fd, 16).unwrap();
        let (a, _b) = UnixStream::pair().unwrap();
        assert_eq!(socket_option(a.as_raw_fd(), libc::SO_ACCEPTCONN).unwrap(), 0);
        set_nonblocking(a.as_raw_fd()).unwrap();
        let mut buf = [0u8; 1];
        let read = std::io::Read::read(&mut &a, &mut buf);
        assert_eq!(read.unwrap_err().kind(), io::ErrorKind::WouldBlock);
        assert!(socket_family(-1).is_err() && is_cloexec(-1).is_err() && set_cloexec(-1).is_err());
    }

    #[test]
    fn signal_actions_read_as_they_are() {
        // Nothing can catch or ignore KILL.
        assert_eq!(signal_action(libc::SIGKILL).unwrap(), SignalAction::Default);
        assert!(signal_action(-1).is_err());
    }
}
