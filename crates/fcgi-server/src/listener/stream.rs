//! An accepted connection, TCP or Unix, read and written as one type.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;

use rustix::net::{AddressFamily, SendAncillaryBuffer, SendFlags};

use crate::sys;

/// An accepted connection.
#[derive(Debug)]
pub(crate) enum Stream {
    /// Over TCP.
    Tcp(TcpStream),
    /// Over a Unix socket.
    Unix(UnixStream),
}

impl Stream {
    /// A connection received as a descriptor (through the hand-off socket), as the stream its
    /// address family calls for.
    pub(crate) fn from_fd(fd: OwnedFd) -> io::Result<Stream> {
        match sys::socket_family(fd.as_fd())? {
            AddressFamily::UNIX => Ok(Stream::Unix(UnixStream::from(fd))),
            AddressFamily::INET | AddressFamily::INET6 => Ok(Stream::Tcp(TcpStream::from(fd))),
            other => Err(io::Error::other(format!("address family {}", other.as_raw()))),
        }
    }

    pub(crate) fn set_nonblocking(&self, nonblocking: bool) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.set_nonblocking(nonblocking),
            Stream::Unix(s) => s.set_nonblocking(nonblocking),
        }
    }

    pub(crate) fn shutdown(&self, how: std::net::Shutdown) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.shutdown(how),
            Stream::Unix(s) => s.shutdown(how),
        }
    }

    /// Writes without ever raising SIGPIPE, whatever the process's signal disposition: a peer
    /// that went away is an `EPIPE` error, never a dead process.
    pub(crate) fn send(&self, bytes: &[u8]) -> io::Result<usize> {
        Ok(rustix::net::send(self, bytes, SendFlags::NOSIGNAL)?)
    }

    /// [`send`](Stream::send) of several buffers in one system call (`sendmsg`), so that large
    /// content goes out from where it lies, framed by a header and padding, without a copy.
    pub(crate) fn send_vectored(&self, parts: &[io::IoSlice<'_>]) -> io::Result<usize> {
        let parts = &parts[..parts.len().min(MAX_IOV)];
        let mut no_control = SendAncillaryBuffer::default();
        Ok(rustix::net::sendmsg(self, parts, &mut no_control, SendFlags::NOSIGNAL)?)
    }
}

/// The most buffers one `sendmsg` takes (Linux's `UIO_MAXIOV`).
const MAX_IOV: usize = 1024;

impl AsFd for Stream {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            Stream::Tcp(s) => s.as_fd(),
            Stream::Unix(s) => s.as_fd(),
        }
    }
}

impl Read for &Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => (&*s).read(buf),
            Stream::Unix(s) => (&*s).read(buf),
        }
    }
}

impl Write for &Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.send(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peer_gone_is_an_error_never_a_signal() {
        let (ours, theirs) = UnixStream::pair().unwrap();
        let stream = Stream::Unix(ours);
        drop(theirs);
        // EPIPE, as the caller is told. (That no SIGPIPE comes is MSG_NOSIGNAL's part; the
        // test harness ignores SIGPIPE anyway, so this shows the error, not the signal.)
        assert_eq!(stream.send(b"x").unwrap_err().kind(), io::ErrorKind::BrokenPipe);
        let parts = [io::IoSlice::new(b"a")];
        assert_eq!(stream.send_vectored(&parts).unwrap_err().kind(), io::ErrorKind::BrokenPipe);
    }

    #[test]
    fn buffers_go_out_in_order_and_a_handed_descriptor_is_the_stream_it_was() {
        let (ours, mut theirs) = UnixStream::pair().unwrap();
        let stream = Stream::from_fd(OwnedFd::from(ours)).unwrap();
        assert!(matches!(stream, Stream::Unix(_)));
        let parts = [io::IoSlice::new(b"head"), io::IoSlice::new(b""), io::IoSlice::new(b"body")];
        assert_eq!(stream.send_vectored(&parts).unwrap(), 8);
        let mut got = [0u8; 8];
        theirs.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"headbody");
        let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(tcp.local_addr().unwrap()).unwrap();
        assert!(matches!(Stream::from_fd(client.into()).unwrap(), Stream::Tcp(_)));
        let file = std::fs::File::open("/dev/null").unwrap();
        assert!(Stream::from_fd(file.into()).is_err(), "not a socket");
    }
}
