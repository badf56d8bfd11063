//! Passing open connections from one process to another (`SCM_RIGHTS` over a Unix socket),
//! so that a server that drains need not close the connections a web server keeps.
//!
//! Why: a connection nginx keeps (`keepalive` upstream, `fastcgi_keep_conn on`) is nginx's to
//! reuse at any moment. A server that closes it while idle races nginx writing the next
//! request into it; nginx retries a GET that meets the close on another connection, never a
//! POST (it is not idempotent), which fails with 502. A connection handed on is never closed:
//! the socket stays open throughout, and whatever nginx writes into it meanwhile waits in the
//! kernel until the process that received it reads it. See docs/FAILURES.md for the
//! measurements.
//!
//! The channel is a `SOCK_SEQPACKET` socket pair, both ends non-blocking and close-on-exec:
//! each message is one byte and up to [`Handoff::MAX_BATCH`] descriptors, so a message either
//! arrives whole or not at all, and the end of the other side is seen as the end of the stream.
//! What is in flight is bounded by the sender's socket buffer (`net.core.wmem_default`: 278
//! one-connection messages with Linux's defaults, measured): past it a send would block, and is
//! refused with `WouldBlock` for the caller to try again.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use crate::sys;

/// The byte each message carries (a message with descriptors needs at least one).
const TAG: u8 = b'C';
/// Descriptors one received message may carry.
const MAX_FDS: usize = Handoff::MAX_BATCH;

/// One end of a channel over which connections are handed from process to process.
///
/// [`Server::set_handoff`](crate::Server::set_handoff) gives a server one end: when it drains
/// (a graceful stop), it passes each idle connection through it instead of closing it, and it
/// serves, as if it had accepted them, the connections that arrive from the other end. The
/// process at the other end decides where they go: fcgi-prefork's master sends them to a worker
/// that serves, or closes them when the whole server stops.
///
/// ```
/// use fcgi_server::Handoff;
///
/// let (here, there) = Handoff::pair()?;
/// let (a, _b) = std::os::unix::net::UnixStream::pair()?;
/// here.send(&a)?;
/// drop(a); // `there` holds the connection now
/// let received = there.receive()?.expect("a message");
/// assert_eq!(received.len(), 1);
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
pub struct Handoff {
    socket: OwnedFd,
}

impl Handoff {
    /// The most connections one [`send_batch`](Handoff::send_batch) passes in one message.
    pub const MAX_BATCH: usize = 16;

    /// A connected pair of ends.
    pub fn pair() -> io::Result<(Handoff, Handoff)> {
        let mut fds = [0; 2];
        let kind = libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK;
        // SAFETY: socketpair writes two descriptors into the array we own.
        if unsafe { libc::socketpair(libc::AF_UNIX, kind, 0, fds.as_mut_ptr()) } != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: both descriptors were just made, and nothing else owns them.
        let (a, b) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        Ok((Handoff { socket: a }, Handoff { socket: b }))
    }

    /// An end inherited from another process (the descriptor of a [`Handoff`] end it left
    /// open across `exec`). It is made non-blocking and close-on-exec; a descriptor that is
    /// not a `SOCK_SEQPACKET` socket is refused.
    pub fn from_fd(fd: OwnedFd) -> io::Result<Handoff> {
        let raw = fd.as_raw_fd();
        if sys::socket_option(raw, libc::SO_TYPE)? != libc::SOCK_SEQPACKET {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "not a SOCK_SEQPACKET socket"));
        }
        sys::set_nonblocking(raw)?;
        sys::set_cloexec(raw)?;
        Ok(Handoff { socket: fd })
    }

    /// Passes `connection` to the other end; the caller may close its own descriptor once
    /// this returns `Ok`. Never waits: [`io::ErrorKind::WouldBlock`] when the other end's
    /// queue is full (try again later), another error (`EPIPE`) when it is gone.
    pub fn send(&self, connection: &impl AsFd) -> io::Result<()> {
        self.send_batch(&[connection.as_fd()])
    }

    /// [`send`](Handoff::send) of several connections (at most [`MAX_BATCH`](Handoff::MAX_BATCH))
    /// in one message: all of them go, or none.
    pub fn send_batch(&self, connections: &[BorrowedFd<'_>]) -> io::Result<()> {
        if connections.is_empty() || connections.len() > Self::MAX_BATCH {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "1 to MAX_BATCH connections"));
        }
        let bytes = std::mem::size_of_val(connections) as u32;
        let mut byte = [TAG];
        let mut iov = libc::iovec { iov_base: byte.as_mut_ptr().cast(), iov_len: 1 };
        // SAFETY: CMSG_SPACE only computes a size.
        let mut control = vec![0u8; unsafe { libc::CMSG_SPACE(bytes) } as usize];
        let message = message(&mut iov, &mut control);
        // SAFETY: the control buffer has room for one header and the descriptors (CMSG_SPACE),
        // so CMSG_FIRSTHDR is non-null and CMSG_DATA has room for each of them.
        unsafe {
            let header = libc::CMSG_FIRSTHDR(&message);
            (*header).cmsg_level = libc::SOL_SOCKET;
            (*header).cmsg_type = libc::SCM_RIGHTS;
            (*header).cmsg_len = libc::CMSG_LEN(bytes) as _;
            let data = libc::CMSG_DATA(header).cast::<RawFd>();
            for (i, fd) in connections.iter().enumerate() {
                std::ptr::write_unaligned(data.add(i), fd.as_raw_fd());
            }
        }
        let flags = libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT;
        // SAFETY: the message describes buffers that live across the call.
        sys::retry(|| unsafe { libc::sendmsg(self.socket.as_raw_fd(), &message, flags) }).map(drop)
    }

    /// Takes one message from the other end: the connections it carried (usually one), or
    /// `None` once the other end is closed. Never waits: [`io::ErrorKind::WouldBlock`] when
    /// nothing is there. The descriptors come close-on-exec.
    pub fn receive(&self) -> io::Result<Option<Vec<OwnedFd>>> {
        let mut byte = [0u8; 1];
        let mut iov = libc::iovec { iov_base: byte.as_mut_ptr().cast(), iov_len: 1 };
        let fds_bytes = (MAX_FDS * std::mem::size_of::<RawFd>()) as u32;
        // SAFETY: CMSG_SPACE only computes a size.
        let mut control = vec![0u8; unsafe { libc::CMSG_SPACE(fds_bytes) } as usize];
        let mut message = message(&mut iov, &mut control);
        let flags = libc::MSG_CMSG_CLOEXEC | libc::MSG_DONTWAIT;
        // SAFETY: the message describes buffers that live across the call; recvmsg writes at
        // most their lengths.
        let n =
            sys::retry(|| unsafe { libc::recvmsg(self.socket.as_raw_fd(), &mut message, flags) })?;
        let mut fds = Vec::new();
        // SAFETY: the kernel filled in the control buffer up to msg_controllen; the CMSG
        // macros walk only the headers inside it, and each SCM_RIGHTS header's data holds
        // (cmsg_len - CMSG_LEN(0)) / 4 descriptors, now ours.
        unsafe {
            let mut header = libc::CMSG_FIRSTHDR(&message);
            while !header.is_null() {
                if (*header).cmsg_level == libc::SOL_SOCKET
                    && (*header).cmsg_type == libc::SCM_RIGHTS
                {
                    let data = libc::CMSG_DATA(header).cast::<RawFd>();
                    let bytes = (*header).cmsg_len as usize - libc::CMSG_LEN(0) as usize;
                    for i in 0..bytes / std::mem::size_of::<RawFd>() {
                        let fd = std::ptr::read_unaligned(data.add(i));
                        fds.push(OwnedFd::from_raw_fd(fd));
                    }
                }
                header = libc::CMSG_NXTHDR(&message, header);
            }
        }
        if n == 0 && fds.is_empty() {
            // Every message carries a byte: nothing at all is the end of the other side.
            return Ok(None);
        }
        Ok(Some(fds))
    }
}

impl Handoff {
    /// Takes no more connections: the other end's [`send`](Handoff::send) fails from now on
    /// (`EPIPE`), so that it places them elsewhere. What was sent before is still there to
    /// [`receive`](Handoff::receive); this end can still send.
    pub fn stop_receiving(&self) -> io::Result<()> {
        // SAFETY: shutdown on a socket we own.
        if unsafe { libc::shutdown(self.socket.as_raw_fd(), libc::SHUT_RD) } == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }
}

/// A message of one byte (`iov`) and the control data in `control`, for sendmsg or recvmsg.
fn message(iov: &mut libc::iovec, control: &mut [u8]) -> libc::msghdr {
    // SAFETY: an all-zero msghdr is valid (no name, no buffers); the fields set below point at
    // the caller's buffers, which outlive the call the message is for.
    let mut message: libc::msghdr = unsafe { std::mem::zeroed() };
    message.msg_iov = iov;
    message.msg_iovlen = 1;
    message.msg_control = control.as_mut_ptr().cast();
    message.msg_controllen = control.len() as _;
    message
}

impl AsRawFd for Handoff {
    fn as_raw_fd(&self) -> RawFd {
        self.socket.as_raw_fd()
    }
}

impl AsFd for Handoff {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.socket.as_fd()
    }
}

impl From<Handoff> for OwnedFd {
    fn from(handoff: Handoff) -> OwnedFd {
        handoff.socket
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::os::unix::net::UnixStream;

    use super::*;

    #[test]
    fn a_connection_crosses_with_what_waits_in_it() {
        let (here, there) = Handoff::pair().unwrap();
        let (mut ours, mut peer) = UnixStream::pair().unwrap();
        ours.write_all(b"before").unwrap();
        here.send(&ours).unwrap();
        drop(ours);
        // What the peer writes after the hand-off waits for the receiver.
        peer.write_all(b"after").unwrap();
        let mut fds = there.receive().unwrap().unwrap();
        assert_eq!(fds.len(), 1);
        let mut theirs = UnixStream::from(fds.remove(0));
        let mut got = [0; 5];
        theirs.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"after");
        let mut got = [0; 6];
        peer.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"before");
        // SAFETY: F_GETFD reads a flag of a descriptor this test owns.
        let flags = unsafe { libc::fcntl(theirs.as_raw_fd(), libc::F_GETFD) };
        assert_ne!(flags & libc::FD_CLOEXEC, 0, "received close-on-exec");
    }

    #[test]
    fn nothing_waiting_would_block_and_a_closed_end_is_none() {
        let (here, there) = Handoff::pair().unwrap();
        let error = there.receive().unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::WouldBlock);
        drop(here);
        assert!(there.receive().unwrap().is_none());
        let (a, _b) = UnixStream::pair().unwrap();
        assert!(there.send(&a).is_err(), "the other end is gone");
    }

    #[test]
    fn an_end_that_stops_receiving_refuses_new_ones_and_keeps_those_sent() {
        let (here, there) = Handoff::pair().unwrap();
        let (a, _b) = UnixStream::pair().unwrap();
        here.send(&a).unwrap();
        there.stop_receiving().unwrap();
        assert!(here.send(&a).is_err(), "refused once it stopped receiving");
        assert_eq!(there.receive().unwrap().unwrap().len(), 1, "sent before: still there");
        // And it still sends.
        there.send(&a).unwrap();
        assert_eq!(here.receive().unwrap().unwrap().len(), 1);
    }

    #[test]
    fn a_batch_crosses_in_one_message() {
        let (here, there) = Handoff::pair().unwrap();
        let pairs: Vec<(UnixStream, UnixStream)> =
            (0..Handoff::MAX_BATCH).map(|_| UnixStream::pair().unwrap()).collect();
        let fds: Vec<BorrowedFd<'_>> = pairs.iter().map(|(a, _)| a.as_fd()).collect();
        here.send_batch(&fds).unwrap();
        assert_eq!(there.receive().unwrap().unwrap().len(), Handoff::MAX_BATCH);
        assert!(here.send_batch(&[]).is_err());
    }

    #[test]
    fn only_a_seqpacket_socket_is_adopted() {
        let (a, _b) = UnixStream::pair().unwrap();
        assert!(Handoff::from_fd(OwnedFd::from(a)).is_err());
        let (here, there) = Handoff::pair().unwrap();
        let adopted = Handoff::from_fd(OwnedFd::from(here)).unwrap();
        let (c, _d) = UnixStream::pair().unwrap();
        adopted.send(&c).unwrap();
        assert_eq!(there.receive().unwrap().unwrap().len(), 1);
    }
}
