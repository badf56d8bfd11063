//! How FastCGI addresses are written: `unix:/path`, `tcp:HOST:PORT` (or bare `HOST:PORT`), or
//! `fd:N`, as `fcgi serve --listen`, `fcgi request --connect` and nginx's `fastcgi_pass`
//! write them. One grammar for the server that listens and the client that connects.

use std::fmt;
use std::io;
use std::os::fd::RawFd;
use std::path::PathBuf;
use std::str::FromStr;

/// Where a FastCGI server listens, and so where a client connects.
///
/// ```
/// use fcgi_codec::Address;
///
/// assert_eq!("unix:/run/fcgi.sock".parse(), Ok(Address::Unix("/run/fcgi.sock".into())));
/// assert_eq!("127.0.0.1:9000".parse(), Ok(Address::Tcp("127.0.0.1:9000".into())));
/// assert_eq!("tcp:[::1]:9000".parse(), Ok(Address::Tcp("[::1]:9000".into())));
/// assert_eq!("fd:0".parse(), Ok(Address::Fd(0)));
/// assert_eq!("tcp:localhost:9000".parse::<Address>().unwrap().to_string(), "tcp:localhost:9000");
/// assert!("9000".parse::<Address>().is_err());
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Address {
    /// A TCP address, `HOST:PORT`; IPv6 hosts in brackets. Resolved when bound or connected
    /// (a client tries every address the name resolves to in turn).
    Tcp(String),
    /// A Unix socket path.
    Unix(PathBuf),
    /// An inherited listening descriptor, for a server: `fd:0` is `FCGI_LISTENSOCK_FILENO`,
    /// the socket a web server or `spawn-fcgi` hands to the application it starts. A client
    /// cannot connect to one.
    Fd(RawFd),
}

/// Why an [`Address`] could not be read from text.
///
/// It converts into an [`io::Error`] of kind [`InvalidInput`](io::ErrorKind::InvalidInput),
/// so that `?` works in a function that returns [`io::Result`]; its `Debug` (what `main`
/// prints for an error it returns) is the same sentence as its `Display`.
///
/// ```
/// use fcgi_codec::Address;
///
/// let error = "unix:".parse::<Address>().unwrap_err();
/// assert!(error.to_string().contains("the socket path is empty"));
/// assert_eq!(format!("{error:?}"), error.to_string());
/// let error = std::io::Error::from(error);
/// assert_eq!(error.kind(), std::io::ErrorKind::InvalidInput);
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct ParseAddressError {
    input: String,
    reason: &'static str,
}

impl fmt::Debug for ParseAddressError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if f.alternate() {
            f.debug_struct("ParseAddressError")
                .field("input", &self.input)
                .field("reason", &self.reason)
                .finish()
        } else {
            fmt::Display::fmt(self, f)
        }
    }
}

impl From<ParseAddressError> for io::Error {
    /// An [`io::ErrorKind::InvalidInput`] error with the [`ParseAddressError`] inside.
    fn from(error: ParseAddressError) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidInput, error)
    }
}

impl fmt::Display for ParseAddressError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid FastCGI address {:?}: {} (expected unix:/path, tcp:HOST:PORT, HOST:PORT or fd:N)",
            self.input, self.reason
        )
    }
}

impl std::error::Error for ParseAddressError {}

impl FromStr for Address {
    type Err = ParseAddressError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let error = |reason| ParseAddressError { input: input.to_owned(), reason };
        if let Some(path) = input.strip_prefix("unix:") {
            if path.is_empty() {
                return Err(error("the socket path is empty"));
            }
            return Ok(Address::Unix(PathBuf::from(path)));
        }
        if let Some(fd) = input.strip_prefix("fd:") {
            return fd
                .parse::<RawFd>()
                .ok()
                .filter(|fd| *fd >= 0)
                .map(Address::Fd)
                .ok_or_else(|| error("the descriptor is not a non-negative number"));
        }
        let hostport = input.strip_prefix("tcp:").unwrap_or(input);
        match hostport.rsplit_once(':') {
            Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => {
                Ok(Address::Tcp(hostport.to_owned()))
            }
            _ => Err(error("a TCP address needs HOST:PORT with a port from 0 to 65535")),
        }
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Address::Tcp(hostport) => write!(f, "tcp:{hostport}"),
            Address::Unix(path) => write!(f, "unix:{}", path.display()),
            Address::Fd(fd) => write!(f, "fd:{fd}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_as_a_table() {
        let table: [(&str, Option<Address>); 16] = [
            ("unix:/run/a.sock", Some(Address::Unix("/run/a.sock".into()))),
            ("unix:rel.sock", Some(Address::Unix("rel.sock".into()))),
            ("localhost:0", Some(Address::Tcp("localhost:0".into()))),
            ("tcp:10.0.0.1:65535", Some(Address::Tcp("10.0.0.1:65535".into()))),
            ("tcp:[::1]:9000", Some(Address::Tcp("[::1]:9000".into()))),
            ("fd:0", Some(Address::Fd(0))),
            ("fd:17", Some(Address::Fd(17))),
            ("", None),
            ("unix:", None),
            ("tcp:", None),
            (":9000", None),
            ("host:", None),
            ("host:65536", None),
            ("host:port", None),
            ("fd:-1", None),
            ("fd:x", None),
        ];
        for (text, want) in table {
            assert_eq!(text.parse::<Address>().ok(), want, "{text:?}");
        }
    }

    #[test]
    fn display_round_trips() {
        for text in ["unix:/run/a.sock", "tcp:127.0.0.1:9000", "tcp:[::1]:9000", "fd:3"] {
            let addr: Address = text.parse().unwrap();
            assert_eq!(addr.to_string(), text);
            assert_eq!(addr.to_string().parse::<Address>().unwrap(), addr);
        }
    }

    #[test]
    fn a_bad_address_reads_as_a_sentence_in_every_form() {
        let error = "unix:".parse::<Address>().unwrap_err();
        let sentence = "invalid FastCGI address \"unix:\": the socket path is empty (expected \
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
        assert_eq!(inner.downcast_ref::<ParseAddressError>(), Some(&error));
    }
}
