//! Listening sockets: TCP, Unix, inherited descriptors; and the streams they accept.
//!
//! This file has the [`Listener`], how it is made and what can go wrong; `socket_file.rs`
//! the Unix socket file's life, `inherited.rs` taking descriptors by number, `stream.rs` the
//! accepted connection.
//!
//! Creating listeners is kept apart from serving on them, and starts no thread: a process
//! manager can bind first, `fork()`, and let each child serve the same sockets.

mod error;
mod inherited;
mod options;
mod socket_file;
mod stream;

use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

use rustix::net::{AddressFamily, SocketFlags};

pub use self::error::ListenError;
pub use self::inherited::take_inherited;
pub use self::options::ListenOptions;
pub(crate) use self::stream::Stream;
use crate::sys::{self, Claim};
use crate::ListenAddr;
use inherited::check_listening;
use socket_file::bind_unix;

/// A listening socket.
///
/// A Unix socket file that this process created is removed when the listener is dropped, by
/// the process that created it only (not by children it forked), and only if the file there is
/// still the one it created.
///
/// ```no_run
/// use fcgi_server::{ListenAddr, ListenOptions, Listener};
///
/// let listener = Listener::bind(&"unix:/tmp/app.sock".parse()?, &ListenOptions::default())?;
/// println!("listening on {listener}");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Listener {
    socket: Socket,
    name: String,
    /// The socket file to remove on drop: path, (device, inode), and the creating process.
    owned_path: Option<(PathBuf, (u64, u64), u32)>,
}

#[derive(Debug)]
enum Socket {
    Tcp(TcpListener),
    Unix(UnixListener),
}

impl Listener {
    /// Creates a listening socket at `addr`.
    ///
    /// A Unix socket with a mode or an owner to set is bound in a private directory beside
    /// its path, set there, then renamed into place: nothing is ever done by path at the
    /// target once it exists, so a symlink swapped in there is never followed. A stale socket
    /// file at the path is removed first; a live one, or anything that is not a socket, is
    /// refused, and so is anything that appears at the path while binding.
    pub fn bind(addr: &ListenAddr, options: &ListenOptions) -> Result<Listener, ListenError> {
        let bind_error = |source| ListenError::Bind { addr: addr.clone(), source };
        let listener = match addr {
            ListenAddr::Tcp(hostport) => {
                let addrs: Vec<SocketAddr> = hostport
                    .to_socket_addrs()
                    .map_err(|source| ListenError::Resolve { addr: hostport.clone(), source })?
                    .collect();
                let tcp = TcpListener::bind(&addrs[..]).map_err(bind_error)?;
                let name =
                    tcp.local_addr().map_or_else(|_| addr.to_string(), |a| format!("tcp:{a}"));
                Listener { socket: Socket::Tcp(tcp), name, owned_path: None }
            }
            ListenAddr::Unix(path) => {
                let (unix, identity) = bind_unix(path, options, |_| {})?;
                Listener {
                    socket: Socket::Unix(unix),
                    name: addr.to_string(),
                    owned_path: Some((path.clone(), identity, std::process::id())),
                }
            }
            ListenAddr::Fd(fd) => return Listener::inherited(*fd),
        };
        // std listens with a fixed backlog of 128; listening again on a listening socket only
        // changes it.
        rustix::net::listen(listener.fd(), options.backlog).map_err(|e| bind_error(e.into()))?;
        Ok(listener)
    }

    /// Takes over a listening descriptor the caller owns, as an [`OwnedFd`].
    ///
    /// The descriptor must be a listening TCP or Unix stream socket; anything else is refused,
    /// and closed with the `OwnedFd`. The listener is marked close-on-exec, like every socket
    /// this process makes itself: whoever made it may not have, and programs the app starts
    /// (CGI scripts, say) must not inherit the listening socket. A descriptor named by
    /// number, as `fd:N` on a command line, goes to [`Listener::inherited`] instead.
    ///
    /// ```
    /// use fcgi_server::Listener;
    ///
    /// let std_listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    /// let listener = Listener::from_fd(std_listener.into())?;
    /// assert!(listener.tcp_addr().is_some());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_fd(fd: OwnedFd) -> Result<Listener, ListenError> {
        let raw = fd.as_raw_fd();
        let family = check_listening(fd.as_fd())?;
        sys::set_cloexec(&fd).map_err(|e| ListenError::NotListening {
            fd: raw,
            reason: format!("cannot mark it close-on-exec: {e}"),
        })?;
        let socket = match family {
            AddressFamily::UNIX => Socket::Unix(UnixListener::from(fd)),
            _ => Socket::Tcp(TcpListener::from(fd)),
        };
        let name = match &socket {
            Socket::Tcp(tcp) => {
                tcp.local_addr().map_or(format!("fd:{raw}"), |a| format!("fd:{raw} (tcp:{a})"))
            }
            Socket::Unix(unix) => {
                match unix.local_addr().ok().and_then(|a| a.as_pathname().map(Path::to_path_buf)) {
                    Some(path) => format!("fd:{raw} (unix:{})", path.display()),
                    None => format!("fd:{raw} (unix)"),
                }
            }
        };
        Ok(Listener { socket, name, owned_path: None })
    }

    /// Takes over a listening descriptor this process inherited across `exec`, by its number:
    /// `0` is `FCGI_LISTENSOCK_FILENO` (what a web server or `spawn-fcgi` hands over),
    /// `fd:N` on a command line, systemd's and an upgrading master's sockets.
    ///
    /// Only a descriptor that came across `exec` is taken: one not marked close-on-exec. Every
    /// descriptor this process opens through the standard library is close-on-exec, and
    /// taking one marks it so: a descriptor that some `File` or socket of this process owns
    /// is refused ([`ListenError::NotInherited`]), and so is one taken already (`fd:3` given
    /// twice), so that no two owners ever close the same descriptor. What is not a listening
    /// stream socket (a terminal on fd 0, when the program was not started by a web server) is
    /// refused and left open.
    ///
    /// ```no_run
    /// // Started by spawn-fcgi, which leaves the listening socket on descriptor 0.
    /// let listener = fcgi_server::Listener::inherited(0)?;
    /// # Ok::<(), fcgi_server::ListenError>(())
    /// ```
    pub fn inherited(fd: RawFd) -> Result<Listener, ListenError> {
        let owned =
            sys::claim_inherited(fd, |fd| check_listening(fd).map(drop)).map_err(|e| match e {
                Claim::Taken => ListenError::NotInherited { fd },
                Claim::Unfit(e) => e,
                Claim::Io(e) => ListenError::NotListening { fd, reason: e.to_string() },
            })?;
        Listener::from_fd(owned)
    }

    /// The listening sockets systemd passed with socket activation (`LISTEN_FDS`, starting at
    /// descriptor 3), or none when this process was not socket-activated.
    ///
    /// The variables (`LISTEN_PID`, `LISTEN_FDS`, `LISTEN_FDNAMES`) are removed, as
    /// `sd_listen_fds(1)` does: the sockets are taken once, and programs this process starts
    /// do not take the variables for theirs.
    pub fn from_systemd() -> Result<Vec<Listener>, ListenError> {
        let for_us = std::env::var("LISTEN_PID")
            .ok()
            .and_then(|pid| pid.parse::<u32>().ok())
            .is_some_and(|pid| pid == std::process::id());
        let count = std::env::var("LISTEN_FDS").ok().and_then(|n| n.parse::<RawFd>().ok());
        for name in ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"] {
            std::env::remove_var(name);
        }
        match (for_us, count) {
            (true, Some(count)) => {
                (3..3_i32.saturating_add(count)).map(Listener::inherited).collect()
            }
            _ => Ok(Vec::new()),
        }
    }

    /// The TCP address bound, for a listener on TCP (useful after binding port 0).
    pub fn tcp_addr(&self) -> Option<SocketAddr> {
        match &self.socket {
            Socket::Tcp(tcp) => tcp.local_addr().ok(),
            Socket::Unix(_) => None,
        }
    }

    /// Whether peers arrive over TCP (and so have addresses an allow-list can check).
    pub fn is_tcp(&self) -> bool {
        matches!(self.socket, Socket::Tcp(_))
    }

    /// Leaves the Unix socket file in place when this listener is dropped: for a process that
    /// hands its socket on to another program (a binary upgrade), which then owns the file.
    pub fn keep_socket_file(&mut self) {
        self.owned_path = None;
    }

    /// Makes this process remove the listener's Unix socket file when the listener is dropped,
    /// as if it had bound it: for a socket inherited from the process that created it (a binary
    /// upgrade), never for one a service manager owns. Does nothing for TCP, for an abstract or
    /// unnamed Unix socket, or when the path no longer holds a socket.
    pub fn own_socket_file(&mut self) {
        let Socket::Unix(unix) = &self.socket else { return };
        let Some(path) =
            unix.local_addr().ok().and_then(|a| a.as_pathname().map(Path::to_path_buf))
        else {
            return;
        };
        if let Ok(meta) = std::fs::symlink_metadata(&path) {
            if meta.file_type().is_socket() {
                self.owned_path = Some((path, (meta.dev(), meta.ino()), std::process::id()));
            }
        }
    }

    /// Makes this process remove the Unix socket file at `path` when the listener is dropped:
    /// [`own_socket_file`](Listener::own_socket_file) for a socket whose own name is not its
    /// path (one bound with a mode or an owner is bound in a private directory and renamed
    /// into place), from the path its creator gave (fcgi-prefork's upgrade passes it on). Does
    /// nothing for TCP, or when `path` does not hold a socket.
    pub fn own_socket_file_at(&mut self, path: PathBuf) {
        let Socket::Unix(_) = &self.socket else { return };
        if let Ok(meta) = std::fs::symlink_metadata(&path) {
            if meta.file_type().is_socket() {
                self.name = format!(
                    "{} (unix:{})",
                    self.name.split(' ').next().unwrap_or_default(),
                    path.display()
                );
                self.owned_path = Some((path, (meta.dev(), meta.ino()), std::process::id()));
            }
        }
    }

    /// Whether this is the socket `addr` names: a Unix socket bound at that path, or a TCP
    /// socket bound to an address `addr` resolves to. How a master that inherits sockets
    /// (systemd's socket activation) tells which configured address each one is.
    ///
    /// ```no_run
    /// let addr: fcgi_server::ListenAddr = "unix:/run/fcgi-rs/www.sock".parse()?;
    /// for listener in fcgi_server::Listener::from_systemd()? {
    ///     println!("{}", if listener.serves(&addr) { "www's socket" } else { "another" });
    /// }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn serves(&self, addr: &ListenAddr) -> bool {
        match (&self.socket, addr) {
            (Socket::Unix(unix), ListenAddr::Unix(path)) => {
                unix.local_addr().ok().and_then(|a| a.as_pathname().map(|p| p == path))
                    == Some(true)
            }
            (Socket::Tcp(tcp), ListenAddr::Tcp(hostport)) => {
                let Ok(local) = tcp.local_addr() else { return false };
                hostport.to_socket_addrs().is_ok_and(|mut addrs| addrs.any(|a| a == local))
            }
            _ => false,
        }
    }

    /// The Unix socket file this listener removes when dropped, if any: the path it was bound
    /// at (or given by [`own_socket_file_at`](Listener::own_socket_file_at)).
    pub fn socket_file(&self) -> Option<&Path> {
        self.owned_path.as_ref().map(|(path, _, _)| path.as_path())
    }

    pub(crate) fn raw_fd(&self) -> RawFd {
        self.fd().as_raw_fd()
    }

    /// The listening socket's descriptor, for the event set.
    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        match &self.socket {
            Socket::Tcp(tcp) => tcp.as_fd(),
            Socket::Unix(unix) => unix.as_fd(),
        }
    }

    pub(crate) fn set_nonblocking(&self, nonblocking: bool) -> io::Result<()> {
        match &self.socket {
            Socket::Tcp(tcp) => tcp.set_nonblocking(nonblocking),
            Socket::Unix(unix) => unix.set_nonblocking(nonblocking),
        }
    }

    /// Accepts one connection, non-blocking and close-on-exec from the start (`accept4`: no
    /// second call to make it non-blocking), with the peer's IP address for TCP.
    pub(crate) fn accept(&self) -> io::Result<(Stream, Option<IpAddr>)> {
        let flags = SocketFlags::NONBLOCK | SocketFlags::CLOEXEC;
        match &self.socket {
            Socket::Tcp(tcp) => {
                let (fd, peer) = rustix::net::acceptfrom_with(tcp, flags)?;
                let peer = peer.and_then(|addr| SocketAddr::try_from(addr).ok());
                let stream = TcpStream::from(fd);
                // Responses are written whole; Nagle would only delay the last record.
                stream.set_nodelay(true)?;
                Ok((Stream::Tcp(stream), peer.map(|addr| addr.ip())))
            }
            Socket::Unix(unix) => {
                Ok((Stream::Unix(UnixStream::from(rustix::net::accept_with(unix, flags)?)), None))
            }
        }
    }
}

impl AsRawFd for Listener {
    fn as_raw_fd(&self) -> RawFd {
        self.raw_fd()
    }
}

impl fmt::Display for Listener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        if let Some((path, identity, pid)) = &self.owned_path {
            // Only by the process that bound it: children it forked share the listener.
            if *pid == std::process::id() {
                socket_file::remove_if_ours(path, *identity);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::inherited::tests::{cloexec, inheritable};
    use super::*;

    #[test]
    fn an_inherited_descriptor_is_taken_once_and_marked_close_on_exec() {
        let dir = tempfile::tempdir().unwrap();
        let fd = inheritable(UnixListener::bind(dir.path().join("s")).unwrap());
        assert!(!cloexec(fd));
        let listener = Listener::inherited(fd).unwrap();
        assert!(cloexec(fd));
        assert_eq!(listener.raw_fd(), fd);
        // Named again (`--listen fd:N` twice): refused, the first listener keeps it.
        let again = Listener::inherited(fd).unwrap_err();
        assert!(matches!(again, ListenError::NotInherited { fd: n } if n == fd), "{again}");
        assert!(again.to_string().contains("once"), "{again}");
        drop(listener);
    }

    /// Each bind error as `main` prints it: the sentence, in `Display`, in `Debug`, and
    /// inside the `io::Error` it converts into, whose kind says what happened.
    #[test]
    fn bind_errors_read_as_sentences_and_keep_their_kind() {
        let dir = tempfile::tempdir().unwrap();
        let options = ListenOptions::default();
        let taken = TcpListener::bind("127.0.0.1:0").unwrap();
        let tcp: ListenAddr = format!("tcp:{}", taken.local_addr().unwrap()).parse().unwrap();
        let socket = dir.path().join("live.sock");
        let _live = Listener::bind(&ListenAddr::Unix(socket.clone()), &options).unwrap();
        let file = dir.path().join("file");
        std::fs::write(&file, "").unwrap();
        let missing = ListenAddr::Unix(dir.path().join("no/such/dir.sock"));
        let cases = [
            (tcp.clone(), io::ErrorKind::AddrInUse, format!("cannot listen on {tcp}: ")),
            (
                ListenAddr::Unix(socket.clone()),
                io::ErrorKind::AddrInUse,
                format!("{} is a socket another process is listening on", socket.display()),
            ),
            (
                ListenAddr::Unix(file.clone()),
                io::ErrorKind::AlreadyExists,
                format!("{} exists and is not a socket", file.display()),
            ),
            (missing.clone(), io::ErrorKind::NotFound, format!("cannot listen on {missing}: ")),
        ];
        for (addr, kind, start) in cases {
            let error = Listener::bind(&addr, &options).unwrap_err();
            let sentence = error.to_string();
            assert!(sentence.starts_with(&start), "{addr}: {sentence}");
            assert_eq!(format!("{error:?}"), sentence, "{addr}: Debug is the sentence");
            assert!(format!("{error:#?}").contains('{'), "{addr}: {{:#?}} has the fields");
            let io = io::Error::from(error);
            assert_eq!(io.kind(), kind, "{addr}: {sentence}");
            assert_eq!(io.to_string(), sentence);
            assert!(format!("{io:?}").contains(&format!("error: {sentence} }}")), "{io:?}");
            assert!(io.get_ref().is_some_and(|inner| inner.is::<ListenError>()));
        }
    }

    #[test]
    fn an_owned_descriptor_that_is_not_listening_is_refused() {
        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        assert!(matches!(Listener::from_fd(a.into()), Err(ListenError::NotListening { .. })));
    }

    #[test]
    fn a_listener_serves_the_address_it_is_bound_to_and_no_other() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sock");
        let unix =
            Listener::bind(&ListenAddr::Unix(path.clone()), &ListenOptions::default()).unwrap();
        let tcp =
            Listener::bind(&"127.0.0.1:0".parse().unwrap(), &ListenOptions::default()).unwrap();
        let port = tcp.tcp_addr().unwrap().port();
        let other = ListenAddr::Unix(dir.path().join("other.sock"));
        let cases = [
            (&unix, ListenAddr::Unix(path.clone()), true),
            (&unix, other, false),
            (&unix, ListenAddr::Tcp(format!("127.0.0.1:{port}")), false),
            (&tcp, ListenAddr::Tcp(format!("127.0.0.1:{port}")), true),
            (&tcp, ListenAddr::Tcp(format!("localhost:{port}")), true),
            (&tcp, ListenAddr::Tcp(format!("127.0.0.1:{}", port.wrapping_add(1))), false),
            (&tcp, ListenAddr::Unix(path), false),
        ];
        for (listener, addr, expected) in cases {
            assert_eq!(listener.serves(&addr), expected, "{} serves {addr}", listener.name);
        }
    }

    #[test]
    fn systemd_variables_are_taken_once() {
        // Not for this process: nothing taken, and the variables are gone all the same.
        std::env::set_var("LISTEN_PID", "1");
        std::env::set_var("LISTEN_FDS", "1");
        std::env::set_var("LISTEN_FDNAMES", "fcgi");
        assert!(Listener::from_systemd().unwrap().is_empty());
        for name in ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"] {
            assert!(std::env::var_os(name).is_none(), "{name} is left");
        }
    }
}
