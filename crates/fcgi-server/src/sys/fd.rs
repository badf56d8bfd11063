//! Descriptor flags, and taking an inherited descriptor by its number.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use rustix::fs::OFlags;
use rustix::io::FdFlags;

/// Sets `FD_CLOEXEC` on `fd`.
pub(crate) fn set_cloexec(fd: impl AsFd) -> io::Result<()> {
    let flags = rustix::io::fcntl_getfd(&fd)?;
    Ok(rustix::io::fcntl_setfd(&fd, flags | FdFlags::CLOEXEC)?)
}

/// Sets `O_NONBLOCK` on `fd`.
pub(crate) fn set_nonblocking(fd: impl AsFd) -> io::Result<()> {
    let flags = rustix::fs::fcntl_getfl(&fd)?;
    Ok(rustix::fs::fcntl_setfl(&fd, flags | OFlags::NONBLOCK)?)
}

/// Whether the descriptor numbered `fd` is marked close-on-exec. A bare number, which may
/// be closed or owned by nothing yet (an inherited one): libc's `fcntl` takes any number and
/// reports one that is not open as `EBADF`, where rustix's would need a `BorrowedFd`, which
/// only an open descriptor may be.
pub(crate) fn is_cloexec(fd: RawFd) -> io::Result<bool> {
    // SAFETY: F_GETFD takes no pointer and reads a flag; any number is valid to ask about.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
    if flags < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(flags & libc::FD_CLOEXEC != 0)
}

/// Why [`claim_inherited`] took nothing.
#[derive(Debug)]
pub(crate) enum Claim<E> {
    /// The descriptor is close-on-exec: owned in this process, or taken already.
    Taken,
    /// `check` refused it.
    Unfit(E),
    /// It could not be looked at (not open), or not marked close-on-exec.
    Io(io::Error),
}

/// The descriptor numbered `fd`, if this process inherited it across `exec` and `check`
/// accepts it: one not marked close-on-exec, marked so as it is taken. A refused one is left
/// open and not taken.
///
/// Every descriptor this process opens through the standard library (or rustix, or this
/// crate) is close-on-exec, so one that is not was inherited and has no owner here; taking it
/// marks it, under a lock, so that it is taken once and the `OwnedFd` is its only owner.
pub(crate) fn claim_inherited<E>(
    fd: RawFd,
    check: impl FnOnce(BorrowedFd<'_>) -> Result<(), E>,
) -> Result<OwnedFd, Claim<E>> {
    // One thread at a time looks and claims: two threads taking the same number must not both
    // find it unclaimed.
    static CLAIMING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _claiming = CLAIMING.lock().unwrap_or_else(|p| p.into_inner());
    if is_cloexec(fd).map_err(Claim::Io)? {
        return Err(Claim::Taken);
    }
    // SAFETY: `fd` is open (F_GETFD just answered for it) and owned by nothing in this
    // process (it is not close-on-exec; see above), so nothing closes it while it is
    // borrowed here, under the lock.
    let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
    check(borrowed).map_err(Claim::Unfit)?;
    set_cloexec(borrowed).map_err(Claim::Io)?;
    // SAFETY: as above: open, inherited across exec for this process and owned by nothing
    // here; marked close-on-exec just now, under the lock, so no later claim takes it again
    // and this OwnedFd becomes its only owner.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

#[cfg(test)]
mod tests {
    use std::os::fd::{AsRawFd, IntoRawFd};
    use std::os::unix::net::{UnixListener, UnixStream};

    use super::*;

    #[test]
    fn flags_read_back_as_set() {
        let dir = tempfile::tempdir().unwrap();
        let listener = UnixListener::bind(dir.path().join("s")).unwrap();
        assert!(is_cloexec(listener.as_raw_fd()).unwrap(), "std opens descriptors close-on-exec");
        rustix::io::fcntl_setfd(&listener, FdFlags::empty()).unwrap();
        assert!(!is_cloexec(listener.as_raw_fd()).unwrap());
        set_cloexec(&listener).unwrap();
        assert!(is_cloexec(listener.as_raw_fd()).unwrap());
        let (a, _b) = UnixStream::pair().unwrap();
        set_nonblocking(&a).unwrap();
        let mut buf = [0u8; 1];
        let read = std::io::Read::read(&mut &a, &mut buf);
        assert_eq!(read.unwrap_err().kind(), io::ErrorKind::WouldBlock);
        assert!(is_cloexec(-1).is_err());
    }

    #[test]
    fn an_inherited_descriptor_is_claimed_once_and_a_refused_one_is_left_open() {
        let (a, _b) = UnixStream::pair().unwrap();
        rustix::io::fcntl_setfd(&a, FdFlags::empty()).unwrap();
        let fd = a.into_raw_fd();
        let refused = claim_inherited(fd, |_| Err("no"));
        assert!(matches!(refused, Err(Claim::Unfit("no"))));
        assert!(!is_cloexec(fd).unwrap(), "refused: open, and not taken");
        let owned = claim_inherited::<()>(fd, |_| Ok(())).unwrap();
        assert!(is_cloexec(fd).unwrap(), "marked as it is taken");
        assert!(matches!(claim_inherited::<()>(fd, |_| Ok(())), Err(Claim::Taken)));
        drop(owned);
    }
}
