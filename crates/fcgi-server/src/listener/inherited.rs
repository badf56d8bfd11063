//! Descriptors this process inherited across `exec`, taken by their numbers, and the check
//! that one is a listening socket.

use std::convert::Infallible;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};

use rustix::net::AddressFamily;

use super::error::ListenError;
use crate::sys::{self, Claim};

/// Takes a descriptor this process inherited across `exec`, by its number, as
/// [`Listener::inherited`] takes a listening socket: only one that is not close-on-exec (so
/// that no `File`, socket or earlier taker of this process owns it), marked close-on-exec as it
/// is taken. For the other descriptors a process manager hands across `exec` (a pipe, a
/// hand-off socket), named in a variable of the environment.
///
/// ```no_run
/// let fd: i32 = std::env::var("MY_PIPE_FD")?.parse()?;
/// let pipe = std::fs::File::from(fcgi_server::take_inherited(fd)?);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn take_inherited(fd: RawFd) -> io::Result<OwnedFd> {
    sys::claim_inherited(fd, |_| Ok::<(), Infallible>(())).map_err(|e| match e {
        Claim::Taken => io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("descriptor {fd} was not inherited, or is taken already"),
        ),
        Claim::Io(e) => e,
        Claim::Unfit(never) => match never {},
    })
}

/// The address family of `fd` if it is a listening TCP or Unix stream socket.
pub(super) fn check_listening(fd: BorrowedFd<'_>) -> Result<AddressFamily, ListenError> {
    let refuse = |reason: String| ListenError::NotListening { fd: fd.as_raw_fd(), reason };
    let family = sys::socket_family(fd).map_err(|e| refuse(e.to_string()))?;
    if !matches!(family, AddressFamily::UNIX | AddressFamily::INET | AddressFamily::INET6) {
        return Err(refuse(format!("unsupported address family {}", family.as_raw())));
    }
    if !sys::is_listening(fd).map_err(|e| refuse(e.to_string()))? {
        return Err(refuse("the socket is not listening".into()));
    }
    Ok(family)
}

#[cfg(test)]
pub(super) mod tests {
    use std::os::fd::IntoRawFd;
    use std::os::unix::net::UnixListener;

    use super::*;
    use crate::Listener;

    pub(in crate::listener) fn cloexec(fd: RawFd) -> bool {
        sys::is_cloexec(fd).unwrap()
    }

    /// `socket`'s descriptor as a parent that meant it to be inherited leaves it: not
    /// close-on-exec; its number, owned by nothing in this process.
    pub(in crate::listener) fn inheritable(socket: impl Into<OwnedFd>) -> RawFd {
        let fd: OwnedFd = socket.into();
        rustix::io::fcntl_setfd(&fd, rustix::io::FdFlags::empty()).unwrap();
        fd.into_raw_fd()
    }

    #[test]
    fn a_descriptor_some_owner_of_this_process_holds_is_never_taken_by_number() {
        let dir = tempfile::tempdir().unwrap();
        let owned = UnixListener::bind(dir.path().join("s")).unwrap();
        let file = std::fs::File::open("/dev/null").unwrap();
        for fd in [owned.as_raw_fd(), file.as_raw_fd()] {
            assert!(matches!(Listener::inherited(fd), Err(ListenError::NotInherited { .. })));
        }
        // Both still work: nothing else closed their descriptors.
        assert!(owned.local_addr().is_ok());
        assert!(file.metadata().is_ok());
        // Given as an OwnedFd, the same socket is taken: its owner handed it over.
        let listener = Listener::from_fd(owned.into()).unwrap();
        assert!(listener.to_string().contains("unix"), "{listener}");
    }

    #[test]
    fn an_inherited_descriptor_that_is_not_listening_is_refused_and_left_open() {
        let fd = inheritable(std::os::unix::net::UnixStream::pair().unwrap().0);
        assert!(matches!(Listener::inherited(fd), Err(ListenError::NotListening { .. })));
        // Still open, and still not taken: taking it as any descriptor closes it once.
        assert!(!cloexec(fd));
        drop(take_inherited(fd).unwrap());
    }

    #[test]
    fn any_inherited_descriptor_is_taken_once_and_an_owned_one_never() {
        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        let owned = a.try_clone().unwrap();
        let fd = inheritable(a);
        let taken = take_inherited(fd).unwrap();
        assert!(cloexec(fd), "marked as it is taken");
        assert_eq!(take_inherited(fd).unwrap_err().kind(), io::ErrorKind::InvalidInput);
        assert!(take_inherited(owned.as_raw_fd()).is_err(), "a stream this process owns");
        drop(taken);
    }
}
