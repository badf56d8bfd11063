//! A [`Server`] running in the test process: bound to `127.0.0.1:0` or a Unix socket in a
//! temporary directory, serving on its own thread, stopped and joined when dropped.
//!
//! Tests of nginx put one behind it: [`TestServer::addr`] is where to point nginx
//! ([`Addr::nginx`], [`Addr::site_vars`]).
//!
//! ```no_run
//! use fcgi_tests::inproc::{self, TestServer};
//!
//! let server = TestServer::start(inproc::config(), |b| b.responder(inproc::hello));
//! let reply = server.connect().simple_request(&[], b"");
//! assert_eq!(reply.body, b"Hello, world!");
//! ```

use std::fmt;
use std::io::{self, Write as _};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use fcgi_server::{
    Config, ListenOptions, Listener, Request, Response, ServeReport, Server, ServerBuilder,
    ShutdownHandle,
};
use slog::{o, Drain, Key, Logger, OwnedKVList, Record, Serializer, KV};
use tempfile::TempDir;

use crate::addr::{Addr, Transport};
use crate::process::wait_until;
use crate::raw::Client;

/// How long dropping a server waits for `serve` to return before leaving its thread behind.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// The configuration tests start from: the defaults, with a small pool (1 to 4 idle threads,
/// 8 at most) so that many servers can run side by side.
pub fn config() -> Config {
    Config { min_spare: 1, max_spare: 4, max_threads: 8, queue: 64, ..Config::default() }
}

/// A handler answering `Hello, world!` as text/plain, as the `hello` app of `fcgi serve` does.
pub fn hello(_: &mut Request, response: &mut Response) -> Result<(), fcgi_server::Error> {
    response.header("Content-Type", "text/plain")?;
    response.write_all(b"Hello, world!")?;
    Ok(())
}

/// The log lines of a server, collected in memory: `LEVEL message; key=value, ...`.
#[derive(Clone, Debug, Default)]
pub struct Logs {
    lines: Arc<Mutex<Vec<String>>>,
}

impl Logs {
    fn lock(&self) -> MutexGuard<'_, Vec<String>> {
        self.lines.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A logger whose every record (debug level included) becomes a line here.
    pub fn logger(&self) -> Logger {
        Logger::root(Collect { logs: self.clone() }.fuse(), o!())
    }

    /// Every line so far.
    pub fn lines(&self) -> Vec<String> {
        self.lock().clone()
    }

    /// Whether some line contains `needle`.
    pub fn contains(&self, needle: &str) -> bool {
        self.lock().iter().any(|line| line.contains(needle))
    }
}

/// The slog drain behind [`Logs::logger`].
struct Collect {
    logs: Logs,
}

impl Drain for Collect {
    type Ok = ();
    type Err = slog::Never;

    fn log(&self, record: &Record<'_>, values: &OwnedKVList) -> Result<(), slog::Never> {
        let mut line =
            LineSerializer(format!("{} {}", record.level().as_short_str(), record.msg()));
        let _ = record.kv().serialize(record, &mut line);
        let _ = values.serialize(record, &mut line);
        self.logs.lock().push(line.0);
        Ok(())
    }
}

struct LineSerializer(String);

impl Serializer for LineSerializer {
    fn emit_arguments(&mut self, key: Key, value: &fmt::Arguments<'_>) -> slog::Result {
        use fmt::Write as _;
        let _ = write!(self.0, "; {key}={value}");
        Ok(())
    }
}

/// A server serving on a thread of the test process.
///
/// Dropping it asks the server to stop at once and waits (at most 10 s) for `serve` to
/// return; if the test is failing, the server's log is printed first.
pub struct TestServer {
    addr: Addr,
    stop: ShutdownHandle,
    thread: Option<JoinHandle<io::Result<ServeReport>>>,
    logs: Logs,
    /// Holds the Unix socket, if any; removed last.
    dir: TempDir,
}

impl fmt::Debug for TestServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestServer").field("addr", &self.addr).finish_non_exhaustive()
    }
}

impl TestServer {
    /// Starts a server on TCP loopback with `config`; `install` adds its handlers.
    pub fn start(config: Config, install: impl FnOnce(ServerBuilder) -> ServerBuilder) -> Self {
        TestServer::start_on(Transport::Tcp, config, install)
    }

    /// Starts a server on `transport` (`127.0.0.1:0`, or a socket `fcgi.sock` in the server's
    /// temporary directory) with `config`; `install` adds its handlers.
    pub fn start_on(
        transport: Transport,
        config: Config,
        install: impl FnOnce(ServerBuilder) -> ServerBuilder,
    ) -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory for the server");
        let wanted = match transport {
            // Port 0: the kernel picks, so there is no clash to retry.
            Transport::Tcp => Addr::loopback(0),
            Transport::Unix => transport.addr(dir.path(), "fcgi"),
        };
        let listen = wanted.listen_addr();
        let listener = Listener::bind(&listen, &ListenOptions::default())
            .unwrap_or_else(|e| panic!("cannot listen on {listen}: {e}"));
        // The port bound, if the kernel picked it.
        let addr = listener.tcp_addr().map_or(wanted, Addr::Tcp);
        let logs = Logs::default();
        let builder = Server::builder().listener(listener).config(config).logger(logs.logger());
        let server = install(builder).build();
        let stop = server.shutdown_handle();
        let thread = std::thread::Builder::new()
            .name("fcgi-monitor".into())
            .spawn(move || server.serve())
            .expect("a thread for the server");
        TestServer { addr, stop, thread: Some(thread), logs, dir }
    }

    /// Where the server listens (for a server started on [`Transport::Unix`],
    /// [`Addr::socket_path`] is its socket file).
    pub fn addr(&self) -> &Addr {
        &self.addr
    }

    /// The server's temporary directory (its Unix socket lives there).
    pub fn dir(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }

    /// A new raw connection to the server.
    pub fn connect(&self) -> Client {
        Client::connect(&self.addr)
    }

    /// The handle that stops the server.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        self.stop.clone()
    }

    /// The server's log so far.
    pub fn logs(&self) -> &Logs {
        &self.logs
    }

    /// Whether `serve` is still running.
    pub fn is_running(&self) -> bool {
        self.thread.as_ref().is_some_and(|thread| !thread.is_finished())
    }

    /// Waits up to `timeout` for `serve` to return (after a [`ShutdownHandle::shutdown`]), and
    /// returns its report; `None` if it is still running.
    pub fn wait_stopped(&mut self, timeout: Duration) -> Option<ServeReport> {
        if !wait_until(timeout, || !self.is_running()) {
            return None;
        }
        let thread = self.thread.take()?;
        match thread.join() {
            Ok(Ok(report)) => Some(report),
            Ok(Err(e)) => panic!("serve failed: {e}"),
            Err(_) => panic!("the server's thread panicked"),
        }
    }

    /// Stops the server with `grace` for running requests, and returns what `serve` reported.
    pub fn stop(mut self, grace: Duration) -> ServeReport {
        self.stop.shutdown(grace);
        let report = self.wait_stopped(grace + STOP_TIMEOUT);
        report.unwrap_or_else(|| panic!("the server did not stop within {grace:?} + 10 s"))
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let mut err = io::stderr().lock();
            let _ = writeln!(err, "--- log of the server on {:?} ---", self.addr);
            for line in self.logs.lines() {
                let _ = writeln!(err, "{line}");
            }
        }
        if self.thread.is_some() {
            self.stop.shutdown(Duration::ZERO);
            if !wait_until(STOP_TIMEOUT, || !self.is_running()) {
                eprintln!("the server on {:?} did not stop; its thread is left behind", self.addr);
                return;
            }
            if let Some(thread) = self.thread.take() {
                let _ = thread.join();
            }
        }
    }
}
