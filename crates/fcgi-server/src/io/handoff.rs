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
//! What is in flight is bounded by the sender's socket buffer (`net.core.wmem_default`;
//! docs/FAILURES.md says how many messages that holds): past it a send would block, and is
//! refused with `WouldBlock` for the caller to try again.

use std::io::{self, IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};

use rustix::net::{
    AddressFamily, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags, Shutdown, SocketFlags, SocketType,
};

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
        let flags = SocketFlags::CLOEXEC | SocketFlags::NONBLOCK;
        let (a, b) =
            rustix::net::socketpair(AddressFamily::UNIX, SocketType::SEQPACKET, flags, None)?;
        Ok((Handoff { socket: a }, Handoff { socket: b }))
    }

    /// An end inherited from another process (the descriptor of a [`Handoff`] end it left
    /// open across `exec`). It is made non-blocking and close-on-exec; a descriptor that is
    /// not a `SOCK_SEQPACKET` socket is refused.
    pub fn from_fd(fd: OwnedFd) -> io::Result<Handoff> {
        if rustix::net::sockopt::socket_type(&fd)? != SocketType::SEQPACKET {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "not a SOCK_SEQPACKET socket"));
        }
        sys::set_nonblocking(&fd)?;
        sys::set_cloexec(&fd)?;
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
        let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS))];
        let mut control = SendAncillaryBuffer::new(&mut space);
        // The buffer holds MAX_FDS descriptors, and there are at most that many.
        if !control.push(SendAncillaryMessage::ScmRights(connections)) {
            return Err(io::Error::other("the descriptors do not fit in one message"));
        }
        let iov = [IoSlice::new(&[TAG])];
        let flags = SendFlags::NOSIGNAL | SendFlags::DONTWAIT;
        rustix::io::retry_on_intr(|| {
            rustix::net::sendmsg(&self.socket, &iov, &mut control, flags)
        })?;
        Ok(())
    }

    /// Takes one message from the other end: the connections it carried (usually one), or
    /// `None` once the other end is closed. Never waits: [`io::ErrorKind::WouldBlock`] when
    /// nothing is there. The descriptors come close-on-exec.
    pub fn receive(&self) -> io::Result<Option<Vec<OwnedFd>>> {
        let mut byte = [0u8; 1];
        let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS))];
        let mut control = RecvAncillaryBuffer::new(&mut space);
        let flags = RecvFlags::CMSG_CLOEXEC | RecvFlags::DONTWAIT;
        let received = rustix::io::retry_on_intr(|| {
            rustix::net::recvmsg(
                &self.socket,
                &mut [IoSliceMut::new(&mut byte)],
                &mut control,
                flags,
            )
        })?;
        let mut fds = Vec::new();
        for message in control.drain() {
            if let RecvAncillaryMessage::ScmRights(rights) = message {
                fds.extend(rights);
            }
        }
        if received.bytes == 0 && fds.is_empty() {
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
        Ok(rustix::net::shutdown(&self.socket, Shutdown::Read)?)
    }
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
        assert!(sys::is_cloexec(theirs.as_raw_fd()).unwrap(), "received close-on-exec");
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
