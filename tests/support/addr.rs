//! Where the servers under test listen: [`Addr`], a loopback TCP address or a Unix socket, in
//! every form the tests need it (to connect, to bind, for `fcgi serve --listen`, for nginx),
//! and [`Transport`], the kind of address a test asks for.

use std::io;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use fcgi_server::ListenAddr;

use crate::raw::{Stream, TIMEOUT};

/// Attempts at a free port: another process may take the one [`free_port`] picked before the
/// server binds it.
pub const PORT_ATTEMPTS: usize = 5;

/// A free TCP port on 127.0.0.1, as the kernel picks one. Free when asked, that is: the caller
/// binds it later and retries on a clash (at most [`PORT_ATTEMPTS`] times).
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a free loopback port");
    listener.local_addr().expect("the port bound").port()
}

/// Starts a server on a port [`free_port`] picked, up to [`PORT_ATTEMPTS`] times: `attempt`
/// picks the port and starts the server, or fails with what the server logged; `is_clash` tells
/// whether that log shows that another process took the port first, the one failure worth
/// another attempt. Returns the server, or the log of the last attempt.
pub fn retry_on_port_clash<T>(
    mut attempt: impl FnMut() -> Result<T, String>,
    is_clash: impl Fn(&str) -> bool,
) -> Result<T, String> {
    let mut last_log = String::new();
    for _ in 0..PORT_ATTEMPTS {
        match attempt() {
            Ok(server) => return Ok(server),
            Err(log) => last_log = log,
        }
        if !is_clash(&last_log) {
            break;
        }
    }
    Err(last_log)
}

/// Where a server listens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Addr {
    /// A TCP address: loopback, in these tests (see [`Addr::loopback`]).
    Tcp(SocketAddr),
    /// A Unix socket path.
    Unix(PathBuf),
}

impl Addr {
    /// `port` on 127.0.0.1; port 0 lets the kernel pick one when it is bound.
    pub fn loopback(port: u16) -> Addr {
        Addr::Tcp(SocketAddr::from((Ipv4Addr::LOCALHOST, port)))
    }

    /// Opens a connection, with [`TIMEOUT`] (scaled: [`crate::settings`]) on reads and writes.
    pub fn connect(&self) -> io::Result<Stream> {
        let stream = match self {
            Addr::Tcp(addr) => {
                Stream::Tcp(TcpStream::connect_timeout(addr, crate::settings::scaled(TIMEOUT))?)
            }
            Addr::Unix(path) => Stream::Unix(UnixStream::connect(path)?),
        };
        stream.set_timeout(crate::settings::scaled(TIMEOUT))?;
        Ok(stream)
    }

    /// Whether something accepts connections there.
    pub fn accepts(&self) -> bool {
        self.connect().is_ok()
    }

    /// The address as [`fcgi_server::Listener::bind`] takes it.
    pub fn listen_addr(&self) -> ListenAddr {
        match self {
            Addr::Tcp(addr) => ListenAddr::Tcp(addr.to_string()),
            Addr::Unix(path) => ListenAddr::Unix(path.clone()),
        }
    }

    /// The address as `fcgi serve --listen` takes it: `tcp:HOST:PORT` or `unix:PATH`.
    pub fn listen_arg(&self) -> String {
        self.listen_addr().to_string()
    }

    /// The address as nginx writes it (`fastcgi_pass`, `server`): `HOST:PORT` or `unix:PATH`.
    pub fn nginx(&self) -> String {
        match self {
            Addr::Tcp(addr) => addr.to_string(),
            Addr::Unix(path) => format!("unix:{}", path.display()),
        }
    }

    /// The socket path, for a Unix socket.
    pub fn socket_path(&self) -> Option<&Path> {
        match self {
            Addr::Unix(path) => Some(path),
            Addr::Tcp(_) => None,
        }
    }

    /// The placeholders of the single-backend site files in `nginx/`, filled for this address:
    /// `@FCGI_ADDR@` (nginx's form) and `@FCGI_SOCKET@` (the path; empty over TCP).
    pub fn site_vars(&self) -> [(&'static str, String); 2] {
        let socket = self.socket_path().map(|p| p.display().to_string()).unwrap_or_default();
        [("FCGI_ADDR", self.nginx()), ("FCGI_SOCKET", socket)]
    }
}

/// Which kind of socket a server listens on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// A Unix socket in a directory of the test's.
    Unix,
    /// A TCP port on 127.0.0.1.
    Tcp,
}

impl Transport {
    /// A fresh address of this kind for a server called `name`: `dir/NAME.sock`, or a free
    /// loopback port.
    pub fn addr(self, dir: &Path, name: &str) -> Addr {
        match self {
            Transport::Unix => Addr::Unix(dir.join(format!("{name}.sock"))),
            Transport::Tcp => Addr::loopback(free_port()),
        }
    }
}
