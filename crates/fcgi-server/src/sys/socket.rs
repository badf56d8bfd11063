//! What the listeners, the accepted connections and the status page ask of a socket.

use std::io;
use std::os::fd::{BorrowedFd, RawFd};

use rustix::net::AddressFamily;

/// The address family (`AF_UNIX`, `AF_INET`, ...) of the socket `fd`, listening or connected.
pub(crate) fn socket_family(fd: BorrowedFd<'_>) -> io::Result<AddressFamily> {
    Ok(rustix::net::sockopt::socket_domain(fd)?)
}

/// Whether the socket `fd` is listening (`SO_ACCEPTCONN`).
pub(crate) fn is_listening(fd: BorrowedFd<'_>) -> io::Result<bool> {
    Ok(rustix::net::sockopt::socket_acceptconn(fd)?)
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

/// The listen queue of the TCP listening socket `fd`, from `TCP_INFO`: (connections waiting
/// to be accepted, backlog), which Linux gives in `tcpi_unacked` and `tcpi_sacked` for a
/// socket in LISTEN state. `None` when the kernel does not say (not a TCP socket, closed).
///
/// libc: rustix has no `TCP_INFO`. A bare number, as the status page keeps them: getsockopt
/// takes any number and reports one that is not open as an error.
pub(crate) fn tcp_listen_queue(fd: RawFd) -> Option<(u32, u32)> {
    // SAFETY: tcp_info is plain old data, for which all zeroes is a valid value.
    let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut size = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    // SAFETY: the pointer and the size describe `info`, ours, and getsockopt writes at most
    // `size` bytes there.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            std::ptr::addr_of_mut!(info).cast(),
            &mut size,
        )
    };
    (rc == 0).then_some((info.tcpi_unacked, info.tcpi_sacked))
}

#[cfg(test)]
mod tests {
    use std::os::fd::{AsFd, AsRawFd};
    use std::os::unix::net::{UnixListener, UnixStream};

    use super::*;

    #[test]
    fn a_socket_says_its_family_and_whether_it_listens() {
        let dir = tempfile::tempdir().unwrap();
        let listener = UnixListener::bind(dir.path().join("s")).unwrap();
        assert_eq!(socket_family(listener.as_fd()).unwrap(), AddressFamily::UNIX);
        assert!(is_listening(listener.as_fd()).unwrap());
        let (a, _b) = UnixStream::pair().unwrap();
        assert!(!is_listening(a.as_fd()).unwrap());
        let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        assert_eq!(socket_family(tcp.as_fd()).unwrap(), AddressFamily::INET);
        let file = std::fs::File::open("/dev/null").unwrap();
        assert!(socket_family(file.as_fd()).is_err() && is_listening(file.as_fd()).is_err());
    }

    #[test]
    fn input_is_seen_without_being_taken() {
        use std::io::{Read, Write};
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
    fn a_tcp_listener_reports_its_queue() {
        let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        assert!(matches!(tcp_listen_queue(tcp.as_raw_fd()), Some((0, backlog)) if backlog > 0));
        let _waiting = std::net::TcpStream::connect(tcp.local_addr().unwrap()).unwrap();
        // The handshake's last step may still be on its way over loopback.
        let waiting = (0..500).find(|_| {
            let queued = tcp_listen_queue(tcp.as_raw_fd()).is_some_and(|(now, _)| now == 1);
            if !queued {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            queued
        });
        assert!(waiting.is_some(), "one connection waits to be accepted");
        let (a, _b) = UnixStream::pair().unwrap();
        assert_eq!(tcp_listen_queue(a.as_raw_fd()), None);
    }
}
