//! Listening sockets: TCP, Unix, inherited descriptors; and the streams they accept.
//!
//! Creating listeners is kept apart from serving on them, and starts no thread: a process
//! manager can bind first, `fork()`, and let each child serve the same sockets.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

use rustix::net::SocketFlags;

use crate::sys;
use crate::ListenAddr;

/// How to create a listening socket.
///
/// ```
/// use fcgi_server::ListenOptions;
///
/// let options = ListenOptions { socket_mode: Some(0o660), ..ListenOptions::default() };
/// assert_eq!(options.backlog, ListenOptions::DEFAULT_BACKLOG);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListenOptions {
    /// Connections the kernel queues before `accept` (capped by `net.core.somaxconn`).
    pub backlog: i32,
    /// Permissions of a Unix socket file; `None` keeps what the umask gives. Set (as the owner
    /// is) before the file appears at its path: see [`Listener::bind`].
    pub socket_mode: Option<u32>,
    /// Owner (user id, group id) of a Unix socket file; `None` in either keeps it as created.
    /// Changing the user needs privileges; changing the group needs membership in it.
    pub socket_owner: (Option<u32>, Option<u32>),
}

impl ListenOptions {
    /// 1,024: enough for a burst from nginx opening connections faster than we accept, and the
    /// kernel's own cap (`somaxconn`, 4,096 on current kernels) bounds it anyway.
    pub const DEFAULT_BACKLOG: i32 = 1024;
}

impl Default for ListenOptions {
    fn default() -> Self {
        ListenOptions {
            backlog: Self::DEFAULT_BACKLOG,
            socket_mode: None,
            socket_owner: (None, None),
        }
    }
}

/// Why a listening socket could not be had.
///
/// It converts into an [`io::Error`] of the kind that says what happened
/// ([`AddrInUse`](io::ErrorKind::AddrInUse), [`PermissionDenied`](io::ErrorKind::PermissionDenied),
/// ...), so that `?` works in a function that returns [`io::Result`]. Its `Debug` (what
/// `main` prints for an error it returns) is the same sentence as its `Display`; `{:#?}`
/// shows the fields.
///
/// ```
/// use fcgi_server::{ListenOptions, Listener};
///
/// let taken = std::net::TcpListener::bind("127.0.0.1:0")?;
/// let addr = format!("tcp:{}", taken.local_addr()?).parse()?;
/// let error: std::io::Error = Listener::bind(&addr, &ListenOptions::default()).unwrap_err().into();
/// assert_eq!(error.kind(), std::io::ErrorKind::AddrInUse);
/// assert!(format!("{error:?}").contains(&format!("cannot listen on {addr}")));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub enum ListenError {
    /// The TCP address did not resolve.
    Resolve {
        /// The address as given.
        addr: String,
        /// What the resolver said.
        source: io::Error,
    },
    /// `bind` or `listen` failed.
    Bind {
        /// The address as given.
        addr: ListenAddr,
        /// What the system said.
        source: io::Error,
    },
    /// A Unix socket path is taken by a socket that a live process listens on.
    InUse {
        /// The socket path.
        path: PathBuf,
    },
    /// A Unix socket path is taken by something that is not a socket; it is left alone.
    NotASocket {
        /// The path.
        path: PathBuf,
    },
    /// The socket file's permissions or owner could not be set.
    Chmod {
        /// The socket path.
        path: PathBuf,
        /// What the system said.
        source: io::Error,
    },
    /// A descriptor named by number is not one this process inherited: it is close-on-exec,
    /// so this process opened it itself, or took it already (see [`Listener::inherited`]).
    NotInherited {
        /// The descriptor.
        fd: RawFd,
    },
    /// An inherited descriptor is not a listening stream socket.
    NotListening {
        /// The descriptor.
        fd: RawFd,
        /// Why it was refused.
        reason: String,
    },
}

impl fmt::Display for ListenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ListenError::Resolve { addr, source } => write!(f, "cannot resolve {addr}: {source}"),
            ListenError::Bind { addr, source } => write!(f, "cannot listen on {addr}: {source}"),
            ListenError::InUse { path } => write!(
                f,
                "{} is a socket another process is listening on; stop it or choose another path",
                path.display()
            ),
            ListenError::NotASocket { path } => write!(
                f,
                "{} exists and is not a socket; it was left alone, remove it or choose another path",
                path.display()
            ),
            ListenError::Chmod { path, source } => {
                write!(f, "cannot set the mode or owner of {}: {source}", path.display())
            }
            ListenError::NotInherited { fd } => write!(
                f,
                "descriptor {fd} was not inherited: it is close-on-exec, so this process opened \
                 it, or listens on it already (each fd:N can be listened on once)"
            ),
            ListenError::NotListening { fd, reason } => {
                write!(f, "descriptor {fd} is not a listening socket: {reason}")
            }
        }
    }
}

impl fmt::Debug for ListenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !f.alternate() {
            // What `fn main() -> Result<(), Box<dyn Error>>` prints: the sentence.
            return fmt::Display::fmt(self, f);
        }
        match self {
            ListenError::Resolve { addr, source } => {
                f.debug_struct("Resolve").field("addr", addr).field("source", source).finish()
            }
            ListenError::Bind { addr, source } => {
                f.debug_struct("Bind").field("addr", addr).field("source", source).finish()
            }
            ListenError::InUse { path } => f.debug_struct("InUse").field("path", path).finish(),
            ListenError::NotASocket { path } => {
                f.debug_struct("NotASocket").field("path", path).finish()
            }
            ListenError::Chmod { path, source } => {
                f.debug_struct("Chmod").field("path", path).field("source", source).finish()
            }
            ListenError::NotInherited { fd } => {
                f.debug_struct("NotInherited").field("fd", fd).finish()
            }
            ListenError::NotListening { fd, reason } => {
                f.debug_struct("NotListening").field("fd", fd).field("reason", reason).finish()
            }
        }
    }
}

impl ListenError {
    /// The [`io::ErrorKind`] that says what happened: the system's where it gave one, else
    /// the nearest.
    fn kind(&self) -> io::ErrorKind {
        match self {
            ListenError::Resolve { source, .. }
            | ListenError::Bind { source, .. }
            | ListenError::Chmod { source, .. } => source.kind(),
            ListenError::InUse { .. } => io::ErrorKind::AddrInUse,
            ListenError::NotASocket { .. } => io::ErrorKind::AlreadyExists,
            ListenError::NotInherited { .. } | ListenError::NotListening { .. } => {
                io::ErrorKind::InvalidInput
            }
        }
    }
}

impl From<ListenError> for io::Error {
    /// An [`io::Error`] of the kind that says what happened (see [`ListenError`]), with the
    /// [`ListenError`] inside: `get_ref` and `into_inner` give it back.
    fn from(error: ListenError) -> io::Error {
        io::Error::new(error.kind(), error)
    }
}

impl std::error::Error for ListenError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ListenError::Resolve { source, .. }
            | ListenError::Bind { source, .. }
            | ListenError::Chmod { source, .. } => Some(source),
            _ => None,
        }
    }
}

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
        sys::set_backlog(listener.raw_fd(), options.backlog).map_err(bind_error)?;
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
        let family = check_listening(raw)?;
        sys::set_cloexec(raw).map_err(|e| ListenError::NotListening {
            fd: raw,
            reason: format!("cannot mark it close-on-exec: {e}"),
        })?;
        let socket = match family {
            libc::AF_UNIX => Socket::Unix(UnixListener::from(fd)),
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
            claim_inherited(fd, |fd| check_listening(fd).map(drop)).map_err(|e| match e {
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
        match &self.socket {
            Socket::Tcp(tcp) => tcp.as_raw_fd(),
            Socket::Unix(unix) => unix.as_raw_fd(),
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
            let still_ours = std::fs::symlink_metadata(path)
                .is_ok_and(|m| m.file_type().is_socket() && (m.dev(), m.ino()) == *identity);
            if *pid == std::process::id() && still_ours {
                let _ = std::fs::remove_file(path);
            }
        }
    }
}

/// Binds a Unix socket at `path`, with the mode and owner of `options`, and returns it with
/// the identity (device, inode) of its file. `after_bind` runs as soon as the socket exists:
/// the tests plant a symlink there.
///
/// Nothing is done by path at `path` once the socket is bound: in a directory others can
/// write, the file there can be swapped for a symlink at any time, and a `chmod` or `chown`
/// by path would follow it (a 0600 file of root's made 0666 and given away). So with a mode
/// or an owner to set, the socket is bound in a private directory made beside the target
/// (mode 0700, so only we can touch what is in it), its mode and owner are set there, and it
/// is moved into place with `rename`, which acts on the name itself and never follows a
/// symlink. `fchmod` is no help: on Linux it does not change a socket file's mode. The move
/// refuses to replace anything that appeared at the path since the stale socket was removed
/// (`RENAME_NOREPLACE`), so a live socket bound meanwhile, or a symlink planted there, makes
/// the bind fail instead of being replaced.
fn bind_unix(
    path: &PathBuf,
    options: &ListenOptions,
    after_bind: impl FnOnce(&Path),
) -> Result<(UnixListener, (u64, u64)), ListenError> {
    let bind_error = |source| ListenError::Bind { addr: ListenAddr::Unix(path.clone()), source };
    remove_stale_socket(path)?;
    if options.socket_mode.is_none() && options.socket_owner == (None, None) {
        let unix = UnixListener::bind(path).map_err(bind_error)?;
        after_bind(path);
        // lstat: the identity of whatever is at the path, never of a symlink's target.
        let identity =
            std::fs::symlink_metadata(path).map(|m| (m.dev(), m.ino())).map_err(bind_error)?;
        return Ok((unix, identity));
    }
    let parent = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    // A short name, as the socket's path in it must fit in sun_path (108 bytes) too.
    let private = tempfile::Builder::new()
        .prefix(PRIVATE_DIR_PREFIX)
        .rand_bytes(6)
        .tempdir_in(parent)
        .map_err(bind_error)?;
    let staged = private.path().join("s");
    let unix = UnixListener::bind(&staged).map_err(bind_error)?;
    after_bind(path);
    let chmod_error = |source| ListenError::Chmod { path: path.clone(), source };
    if let Some(mode) = options.socket_mode {
        std::fs::set_permissions(&staged, std::fs::Permissions::from_mode(mode))
            .map_err(chmod_error)?;
    }
    if options.socket_owner != (None, None) {
        let (uid, gid) = options.socket_owner;
        std::os::unix::fs::lchown(&staged, uid, gid).map_err(chmod_error)?;
    }
    // A rename keeps the inode: the identity read here is the file's at `path`.
    let identity =
        std::fs::symlink_metadata(&staged).map(|m| (m.dev(), m.ino())).map_err(bind_error)?;
    rename_noreplace(&staged, path).map_err(bind_error)?;
    // The directory is empty now; dropping it removes it.
    drop(private);
    Ok((unix, identity))
}

/// The private directory's name starts with this, then 6 random characters: short, hidden
/// from a plain `ls`, and telling whose it is if a crash leaves one behind.
const PRIVATE_DIR_PREFIX: &str = ".fcgi-";

/// Moves `from` to `to` unless something is at `to` (`renameat2` with `RENAME_NOREPLACE`);
/// on a file system without that flag, a plain rename, which does not follow a symlink at `to`
/// either.
fn rename_noreplace(from: &Path, to: &Path) -> io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let c_path = |p: &Path| {
        std::ffi::CString::new(p.as_os_str().as_bytes())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a path with a NUL byte"))
    };
    let (from_c, to_c) = (c_path(from)?, c_path(to)?);
    // SAFETY: both are NUL-terminated strings that live across the call; renameat2 only reads
    // them.
    let rc = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            from_c.as_ptr(),
            libc::AT_FDCWD,
            to_c.as_ptr(),
            libc::RENAME_NOREPLACE,
        )
    };
    if rc == 0 {
        return Ok(());
    }
    let error = io::Error::last_os_error();
    match error.raw_os_error() {
        Some(libc::EINVAL) | Some(libc::ENOSYS) => std::fs::rename(from, to),
        _ => Err(error),
    }
}

/// Removes a socket file nobody listens on; refuses a live socket or anything that is not a socket.
fn remove_stale_socket(path: &Path) -> Result<(), ListenError> {
    let Ok(meta) = std::fs::symlink_metadata(path) else { return Ok(()) };
    if !meta.file_type().is_socket() {
        return Err(ListenError::NotASocket { path: path.to_path_buf() });
    }
    match UnixStream::connect(path) {
        Ok(_) => Err(ListenError::InUse { path: path.to_path_buf() }),
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => std::fs::remove_file(path)
            .map_err(|source| ListenError::Bind {
                addr: ListenAddr::Unix(path.to_path_buf()),
                source,
            }),
        Err(source) => {
            Err(ListenError::Bind { addr: ListenAddr::Unix(path.to_path_buf()), source })
        }
    }
}

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
    claim_inherited(fd, |_| Ok(())).map_err(|e| match e {
        Claim::Taken => io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("descriptor {fd} was not inherited, or is taken already"),
        ),
        Claim::Io(e) => e,
        Claim::Unfit(e) => io::Error::other(e.to_string()),
    })
}

/// Why [`claim_inherited`] took nothing.
enum Claim {
    /// The descriptor is close-on-exec: owned in this process, or taken already.
    Taken,
    /// `check` refused it.
    Unfit(ListenError),
    /// It could not be looked at (not open).
    Io(io::Error),
}

/// The inherited descriptor `fd`, if it is one and `check` accepts it (a refused one is left
/// open and not taken).
fn claim_inherited(
    fd: RawFd,
    check: impl FnOnce(RawFd) -> Result<(), ListenError>,
) -> Result<OwnedFd, Claim> {
    // One thread at a time looks and claims: two threads taking the same number must not both
    // find it unclaimed.
    static CLAIMING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _claiming = CLAIMING.lock().unwrap_or_else(|p| p.into_inner());
    if sys::is_cloexec(fd).map_err(Claim::Io)? {
        return Err(Claim::Taken);
    }
    check(fd).map_err(Claim::Unfit)?;
    sys::set_cloexec(fd).map_err(Claim::Io)?;
    // SAFETY: the descriptor is open, and was not close-on-exec: no owner in this process made
    // it (the standard library opens every descriptor close-on-exec) nor took it (taking marks
    // it, just above, under the lock), so it was inherited across exec for this process, and
    // the OwnedFd becomes its only owner.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The address family of `fd` if it is a listening TCP or Unix stream socket.
fn check_listening(fd: RawFd) -> Result<libc::c_int, ListenError> {
    let refuse = |reason: String| ListenError::NotListening { fd, reason };
    let family = sys::socket_family(fd).map_err(|e| refuse(e.to_string()))?;
    if !matches!(family, libc::AF_UNIX | libc::AF_INET | libc::AF_INET6) {
        return Err(refuse(format!("unsupported address family {family}")));
    }
    if sys::socket_option(fd, libc::SO_ACCEPTCONN).map_err(|e| refuse(e.to_string()))? == 0 {
        return Err(refuse("the socket is not listening".into()));
    }
    Ok(family)
}

/// An accepted connection.
#[derive(Debug)]
pub(crate) enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Stream {
    /// A connection received as a descriptor (through the hand-off socket), as the stream its
    /// address family calls for.
    pub(crate) fn from_fd(fd: OwnedFd) -> io::Result<Stream> {
        match sys::socket_family(fd.as_raw_fd())? {
            libc::AF_UNIX => Ok(Stream::Unix(UnixStream::from(fd))),
            libc::AF_INET | libc::AF_INET6 => Ok(Stream::Tcp(TcpStream::from(fd))),
            other => Err(io::Error::other(format!("address family {other}"))),
        }
    }

    pub(crate) fn raw_fd(&self) -> RawFd {
        match self {
            Stream::Tcp(s) => s.as_raw_fd(),
            Stream::Unix(s) => s.as_raw_fd(),
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
        // SAFETY: the pointer and length describe the caller's live slice.
        let n = unsafe {
            libc::send(self.raw_fd(), bytes.as_ptr().cast(), bytes.len(), libc::MSG_NOSIGNAL)
        };
        usize::try_from(n).map_err(|_| io::Error::last_os_error())
    }

    /// [`send`](Stream::send) of several buffers in one system call (`sendmsg`), so that large
    /// content goes out from where it lies, framed by a header and padding, without a copy.
    pub(crate) fn send_vectored(&self, parts: &[io::IoSlice<'_>]) -> io::Result<usize> {
        // SAFETY: an all-zero msghdr is valid (no name, no control data).
        let mut message: libc::msghdr = unsafe { std::mem::zeroed() };
        // IoSlice is guaranteed to be ABI-compatible with iovec on Unix.
        message.msg_iov = parts.as_ptr().cast_mut().cast();
        message.msg_iovlen = parts.len().min(MAX_IOV) as _;
        // SAFETY: the iovecs describe the caller's live slices, which sendmsg only reads.
        let n = unsafe { libc::sendmsg(self.raw_fd(), &message, libc::MSG_NOSIGNAL) };
        usize::try_from(n).map_err(|_| io::Error::last_os_error())
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
    use std::os::fd::IntoRawFd;

    use super::*;

    fn cloexec(fd: RawFd) -> bool {
        sys::is_cloexec(fd).unwrap()
    }

    /// A listening socket left as a parent that meant it to be inherited leaves it: not
    /// close-on-exec; its number, owned by nothing in this process.
    fn inheritable_listener(dir: &Path) -> RawFd {
        let fd = UnixListener::bind(dir.join("s")).unwrap().into_raw_fd();
        // SAFETY: F_SETFD on the descriptor just made, which nothing owns any more.
        unsafe { libc::fcntl(fd, libc::F_SETFD, 0) };
        fd
    }

    #[test]
    fn an_inherited_descriptor_is_taken_once_and_marked_close_on_exec() {
        let dir = tempfile::tempdir().unwrap();
        let fd = inheritable_listener(dir.path());
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
        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        let fd = a.into_raw_fd();
        // SAFETY: F_SETFD on the descriptor just released, as an inherited one would be.
        unsafe { libc::fcntl(fd, libc::F_SETFD, 0) };
        assert!(matches!(Listener::inherited(fd), Err(ListenError::NotListening { .. })));
        // Still open, and still not taken.
        assert!(!cloexec(fd));
        // SAFETY: the descriptor released above, closed once here.
        drop(unsafe { OwnedFd::from_raw_fd(fd) });
    }

    #[test]
    fn any_inherited_descriptor_is_taken_once_and_an_owned_one_never() {
        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        let owned = a.try_clone().unwrap();
        let fd = a.into_raw_fd();
        // SAFETY: F_SETFD on the descriptor just released, as an inherited one would be.
        unsafe { libc::fcntl(fd, libc::F_SETFD, 0) };
        let taken = take_inherited(fd).unwrap();
        assert!(cloexec(fd), "marked as it is taken");
        assert_eq!(take_inherited(fd).unwrap_err().kind(), io::ErrorKind::InvalidInput);
        assert!(take_inherited(owned.as_raw_fd()).is_err(), "a stream this process owns");
        drop(taken);
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

#[cfg(test)]
mod socket_file_tests {
    use std::os::unix::fs::symlink;

    use super::*;

    fn mode(meta: &std::fs::Metadata) -> u32 {
        meta.mode() & 0o7777
    }

    #[test]
    fn a_socket_is_bound_with_its_mode_and_nothing_is_left_beside_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.sock");
        // SAFETY: geteuid has no memory effects.
        let root = unsafe { libc::geteuid() } == 0;
        let owner = if root { (Some(65534), None) } else { (None, None) };
        let options =
            ListenOptions { socket_mode: Some(0o640), socket_owner: owner, ..Default::default() };
        let listener = Listener::bind(&ListenAddr::Unix(path.clone()), &options).unwrap();
        let meta = std::fs::symlink_metadata(&path).unwrap();
        assert!(meta.file_type().is_socket());
        assert_eq!(mode(&meta), 0o640);
        if root {
            assert_eq!(meta.uid(), 65534);
        }
        let entries: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(entries.len(), 1, "only the socket is left in the directory");
        assert!(UnixStream::connect(&path).is_ok(), "it listens at the path");
        drop(listener);
        assert!(!path.exists(), "the socket file is removed on drop");
    }

    /// The attack: in a directory others can write, the socket at the path is swapped for a
    /// symlink to a file of ours right after bind. Whatever the mode and owner asked, that file
    /// must stay as it was: nothing is done by path once the socket is bound.
    #[test]
    fn a_symlink_swapped_in_after_bind_is_never_followed() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "secret").unwrap();
        std::fs::set_permissions(&victim, std::fs::Permissions::from_mode(0o600)).unwrap();
        let before = std::fs::metadata(&victim).unwrap();
        let path = dir.path().join("app.sock");
        // SAFETY: geteuid has no memory effects.
        let root = unsafe { libc::geteuid() } == 0;
        // As root, a real change of owner (to nobody); otherwise the group we are in already.
        let owner = if root { (Some(65534), Some(65534)) } else { (None, Some(before.gid())) };
        let options =
            ListenOptions { socket_mode: Some(0o666), socket_owner: owner, ..Default::default() };
        let result = bind_unix(&path, &options, |bound| {
            let _ = std::fs::remove_file(bound);
            symlink(&victim, bound).unwrap();
        });
        let after = std::fs::metadata(&victim).unwrap();
        assert_eq!(mode(&after), 0o600, "the symlink's target got the socket's mode");
        assert_eq!((after.uid(), after.gid()), (before.uid(), before.gid()), "and its owner");
        // Either the symlink made binding fail, or the socket replaced it: never followed.
        if let Ok((_unix, _)) = result {
            let meta = std::fs::symlink_metadata(&path).unwrap();
            assert!(meta.file_type().is_socket());
        }
    }
}
