//! Why a listening socket could not be had, one variant per step, each with its context.

use std::fmt;
use std::io;
use std::os::fd::RawFd;
use std::path::PathBuf;

use crate::ListenAddr;

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
