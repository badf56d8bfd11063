//! The descriptor and socket calls that the listeners, the accepted connections and the
//! hand-off socket share, in one place: each is a thin, checked wrapper of one system call
//! (the event set's own are in `epoll.rs`).

use std::io;
use std::os::fd::{BorrowedFd, RawFd};

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

/// Whether the connected socket `fd` has bytes waiting to be read, without taking them: a
/// socket closed with unread input resets the connection (TCP), which can cost the peer the
/// end of an answer it has not read yet. The end of the stream is not input.
pub(crate) fn has_input(fd: BorrowedFd<'_>) -> io::Result<bool> {
    let flags = rustix::net::RecvFlags::PEEK | rustix::net::RecvFlags::DONTWAIT;
    match rustix::net::recv(fd, &mut [0u8; 1], flags) {
        Ok((n, _)) => Ok(n > 0),
        Err(rustix::io::Errno::AGAIN) => Ok(false),
        Err(e) => Err(e.into()),
    }
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

/// The id of user `name` in the user database (`/etc/passwd`, or what NSS reads); a number
/// is taken as the id itself. For a socket's owner ([`ListenOptions::socket_owner`]).
///
/// [`ListenOptions::socket_owner`]: crate::ListenOptions::socket_owner
///
/// ```
/// assert_eq!(fcgi_server::user_id("root").unwrap(), 0);
/// assert_eq!(fcgi_server::user_id("1234").unwrap(), 1234);
/// assert!(fcgi_server::user_id("no-such-user-here").is_err());
/// ```
pub fn user_id(name: &str) -> io::Result<u32> {
    lookup_id(name, "user", |c_name, buf, found| {
        // SAFETY: an all-zero passwd is valid for getpwnam_r to fill.
        let mut entry: libc::passwd = unsafe { std::mem::zeroed() };
        let mut result = std::ptr::null_mut();
        // SAFETY: the name is NUL-terminated, the record and the buffer are ours and sized as
        // given, and `result` points to our record or is null when the call returns.
        let rc = unsafe {
            libc::getpwnam_r(c_name, &mut entry, buf.as_mut_ptr().cast(), buf.len(), &mut result)
        };
        *found = (!result.is_null()).then_some(entry.pw_uid);
        rc
    })
}

/// The id of group `name` in the group database (`/etc/group`, or what NSS reads); a number
/// is taken as the id itself. For a socket's group ([`ListenOptions::socket_owner`]).
///
/// [`ListenOptions::socket_owner`]: crate::ListenOptions::socket_owner
///
/// ```
/// assert_eq!(fcgi_server::group_id("root").unwrap(), 0);
/// assert!(fcgi_server::group_id("no-such-group-here").is_err());
/// ```
pub fn group_id(name: &str) -> io::Result<u32> {
    lookup_id(name, "group", |c_name, buf, found| {
        // SAFETY: an all-zero group is valid for getgrnam_r to fill.
        let mut entry: libc::group = unsafe { std::mem::zeroed() };
        let mut result = std::ptr::null_mut();
        // SAFETY: as in `user_id`.
        let rc = unsafe {
            libc::getgrnam_r(c_name, &mut entry, buf.as_mut_ptr().cast(), buf.len(), &mut result)
        };
        *found = (!result.is_null()).then_some(entry.gr_gid);
        rc
    })
}

/// `name` as a number, or looked up by `call` (a `get*nam_r`, which returns 0 or an errno and
/// sets the id it found), with a larger buffer while it says `ERANGE`.
fn lookup_id(
    name: &str,
    what: &str,
    mut call: impl FnMut(*const libc::c_char, &mut [u8], &mut Option<u32>) -> libc::c_int,
) -> io::Result<u32> {
    /// The records' strings fit in this many bytes but in odd databases; twice that is tried
    /// up to a mebibyte.
    const FIRST_BUFFER: usize = 1024;
    if let Ok(id) = name.parse() {
        return Ok(id);
    }
    let c_name = std::ffi::CString::new(name).map_err(|_| {
        io::Error::new(io::ErrorKind::InvalidInput, format!("the {what} name {name:?} has a NUL"))
    })?;
    let mut buf = vec![0u8; FIRST_BUFFER];
    loop {
        let mut found = None;
        match call(c_name.as_ptr(), &mut buf, &mut found) {
            libc::ERANGE if buf.len() < 1 << 20 => buf.resize(buf.len() * 2, 0),
            0 => {
                return found.ok_or_else(|| {
                    io::Error::new(io::ErrorKind::NotFound, format!("there is no {what} {name:?}"))
                })
            }
            errno => return Err(io::Error::from_raw_os_error(errno)),
        }
    }
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
    fn input_is_seen_without_being_taken() {
        use std::io::{Read, Write};
        use std::os::fd::AsFd;
        let (mut a, mut b) = UnixStream::pair().unwrap();
        // Blocking sockets too: the look never waits.
        assert!(!has_input(a.as_fd()).unwrap(), "nothing sent yet");
        b.write_all(b"xy").unwrap();
        assert!(has_input(a.as_fd()).unwrap());
        assert!(has_input(a.as_fd()).unwrap(), "a look takes nothing");
        let mut buf = [0u8; 2];
        a.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"xy");
        assert!(!has_input(a.as_fd()).unwrap(), "all read");
        drop(b);
        assert!(!has_input(a.as_fd()).unwrap(), "the end of the stream is not input");
    }

    #[test]
    fn signal_actions_read_as_they_are() {
        // Nothing can catch or ignore KILL.
        assert_eq!(signal_action(libc::SIGKILL).unwrap(), SignalAction::Default);
        assert!(signal_action(-1).is_err());
    }
}
