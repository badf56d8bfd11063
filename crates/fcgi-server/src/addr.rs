//! Where to listen: `unix:/path`, `tcp:HOST:PORT` (or bare `HOST:PORT`), or `fd:N`.

use std::fmt;
use std::io;
use std::os::fd::RawFd;
use std::path::PathBuf;
use std::str::FromStr;

/// A listening address, as operators write it on the command line.
///
/// ```
/// use fcgi_server::ListenAddr;
///
/// assert_eq!("unix:/run/fcgi.sock".parse(), Ok(ListenAddr::Unix("/run/fcgi.sock".into())));
/// assert_eq!("127.0.0.1:9000".parse(), Ok(ListenAddr::Tcp("127.0.0.1:9000".into())));
/// assert_eq!("tcp:[::1]:9000".parse(), Ok(ListenAddr::Tcp("[::1]:9000".into())));
/// assert_eq!("fd:0".parse(), Ok(ListenAddr::Fd(0)));
/// assert!("9000".parse::<ListenAddr>().is_err());
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ListenAddr {
    /// A TCP address, `HOST:PORT`; IPv6 hosts in brackets. Resolved when bound.
    Tcp(String),
    /// A Unix socket path.
    Unix(PathBuf),
    /// An inherited listening descriptor: `fd:0` is `FCGI_LISTENSOCK_FILENO`, the socket a web
    /// server or `spawn-fcgi` hands to the application it starts.
    Fd(RawFd),
}

/// Why a listening address could not be read.
///
/// It converts into an [`io::Error`] of kind [`InvalidInput`](io::ErrorKind::InvalidInput),
/// so that `?` works in a function that returns [`io::Result`]; its `Debug` (what `main`
/// prints for an error it returns) is the same sentence as its `Display`.
///
/// ```
/// use fcgi_server::ListenAddr;
///
/// let error = "9000".parse::<ListenAddr>().unwrap_err();
/// assert_eq!(format!("{error:?}"), error.to_string());
/// let error = std::io::Error::from(error);
/// assert_eq!(error.kind(), std::io::ErrorKind::InvalidInput);
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct ParseAddrError {
    input: String,
    reason: &'static str,
}

impl fmt::Debug for ParseAddrError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if f.alternate() {
            f.debug_struct("ParseAddrError")
                .field("input", &self.input)
                .field("reason", &self.reason)
                .finish()
        } else {
            fmt::Display::fmt(self, f)
        }
    }
}

impl From<ParseAddrError> for io::Error {
    /// An [`io::ErrorKind::InvalidInput`] error with the [`ParseAddrError`] inside.
    fn from(error: ParseAddrError) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidInput, error)
    }
}

impl fmt::Display for ParseAddrError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid listen address {:?}: {} (expected unix:/path, tcp:HOST:PORT, HOST:PORT or fd:N)",
            self.input, self.reason
        )
    }
}

impl std::error::Error for ParseAddrError {}

impl FromStr for ListenAddr {
    type Err = ParseAddrError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let error = |reason| ParseAddrError { input: input.to_owned(), reason };
        if let Some(path) = input.strip_prefix("unix:") {
            if path.is_empty() {
                return Err(error("the socket path is empty"));
            }
            return Ok(ListenAddr::Unix(PathBuf::from(path)));
        }
        if let Some(fd) = input.strip_prefix("fd:") {
            return fd
                .parse::<RawFd>()
                .ok()
                .filter(|fd| *fd >= 0)
                .map(ListenAddr::Fd)
                .ok_or_else(|| error("the descriptor is not a non-negative number"));
        }
        let hostport = input.strip_prefix("tcp:").unwrap_or(input);
        match hostport.rsplit_once(':') {
            Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => {
                Ok(ListenAddr::Tcp(hostport.to_owned()))
            }
            _ => Err(error("a TCP address needs HOST:PORT with a port from 0 to 65535")),
        }
    }
}

impl fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ListenAddr::Tcp(hostport) => write!(f, "tcp:{hostport}"),
            ListenAddr::Unix(path) => write!(f, "unix:{}", path.display()),
            ListenAddr::Fd(fd) => write!(f, "fd:{fd}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_address_reads_as_a_sentence_in_every_form() {
        let error = "unix:".parse::<ListenAddr>().unwrap_err();
        let sentence = "invalid listen address \"unix:\": the socket path is empty (expected \
                        unix:/path, tcp:HOST:PORT, HOST:PORT or fd:N)";
        assert_eq!(error.to_string(), sentence);
        assert_eq!(format!("{error:?}"), sentence, "what main prints for a Box<dyn Error>");
        assert!(format!("{error:#?}").contains("reason: \"the socket path is empty\""));
        let io = io::Error::from(error.clone());
        assert_eq!(io.kind(), io::ErrorKind::InvalidInput);
        assert_eq!(io.to_string(), sentence);
        // What main prints for an io::Result: the sentence, unquoted, inside.
        assert_eq!(
            format!("{io:?}"),
            format!("Custom {{ kind: InvalidInput, error: {sentence} }}")
        );
        let inner = io.into_inner().unwrap();
        assert_eq!(inner.downcast_ref::<ParseAddrError>(), Some(&error));
    }
}
