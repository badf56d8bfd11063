//! Where the FastCGI server listens: `unix:/path`, `tcp:HOST:PORT` or bare `HOST:PORT`.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

/// The address of a FastCGI server, written as `fcgi serve --listen` and nginx's
/// `fastcgi_pass` write it.
///
/// ```
/// use fcgi_client::Address;
///
/// assert_eq!("unix:/run/php/php-fpm.sock".parse(), Ok(Address::Unix("/run/php/php-fpm.sock".into())));
/// assert_eq!("127.0.0.1:9000".parse(), Ok(Address::Tcp("127.0.0.1:9000".into())));
/// assert_eq!("tcp:[::1]:9000".parse(), Ok(Address::Tcp("[::1]:9000".into())));
/// assert_eq!("tcp:localhost:9000".parse::<Address>().unwrap().to_string(), "tcp:localhost:9000");
/// assert!("9000".parse::<Address>().is_err());
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Address {
    /// A TCP address, `HOST:PORT`; IPv6 hosts in brackets. Resolved when connecting, and every
    /// address the name resolves to is tried in turn.
    Tcp(String),
    /// A Unix socket path.
    Unix(PathBuf),
}

/// Why an [`Address`] could not be read from text.
///
/// ```
/// use fcgi_client::Address;
///
/// let error = "unix:".parse::<Address>().unwrap_err();
/// assert!(error.to_string().contains("the socket path is empty"));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseAddressError {
    input: String,
    reason: &'static str,
}

impl fmt::Display for ParseAddressError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid FastCGI address {:?}: {} (expected unix:/path, tcp:HOST:PORT or HOST:PORT)",
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
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_that_parse() {
        assert_eq!("unix:rel.sock".parse(), Ok(Address::Unix("rel.sock".into())));
        assert_eq!("localhost:0".parse(), Ok(Address::Tcp("localhost:0".into())));
        assert_eq!("tcp:10.0.0.1:65535".parse(), Ok(Address::Tcp("10.0.0.1:65535".into())));
    }

    #[test]
    fn forms_that_do_not() {
        for bad in ["", "tcp:", ":9000", "host:", "host:65536", "host:port"] {
            assert!(bad.parse::<Address>().is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn display_round_trips() {
        for text in ["unix:/run/a.sock", "tcp:127.0.0.1:9000", "tcp:[::1]:9000"] {
            let addr: Address = text.parse().unwrap();
            assert_eq!(addr.to_string(), text);
            assert_eq!(addr.to_string().parse::<Address>().unwrap(), addr);
        }
    }
}
