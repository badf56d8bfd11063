//! The server: listeners, handlers and a configuration, put to work by [`Server::serve`].

use std::fmt;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use signal_hook::consts::{SIGINT, SIGTERM};
use slog::{info, warn, Logger};

use crate::config::{web_server_addrs_from_env, Config};
use crate::conn::budget::Budget;
use crate::conn::spool::SpoolConfig;
use crate::io::handoff::Handoff;
use crate::io::listener::Listener;
use crate::serve::monitor::{Monitor, ServeReport};
use crate::serve::reactor::Reactor;
use crate::serve::shutdown::{ShutdownHandle, ShutdownState};
use crate::status::page;
use crate::status::{PoolGauges, StatusHandle};
use crate::work::access::AccessLog;
use crate::work::context::{Context, Counters};
use crate::work::handler::{Handler, Handlers};
use crate::{Error, Request, Response, Role};

/// A FastCGI server, ready to serve.
///
/// Building one binds nothing and starts no thread: listeners are made beforehand (so that a
/// process manager can bind, then fork), and threads start in [`serve`](Server::serve).
///
/// ```no_run
/// use std::io::Write;
/// use fcgi_server::{Config, ListenOptions, Listener, Server};
///
/// let listener = Listener::bind(&"127.0.0.1:9000".parse()?, &ListenOptions::default())?;
/// let server = Server::builder()
///     .listener(listener)
///     .config(Config { max_threads: 32, ..Config::default() })
///     .responder(|_request, response| {
///         response.header("Content-Type", "text/plain")?;
///         response.write_all(b"Hello, world!")?;
///         Ok(())
///     })
///     .build();
/// let stop = server.shutdown_handle();
/// // SIGTERM and SIGINT stop it (see `ServerBuilder::handle_signals`), and so does, from any
/// // thread: stop.shutdown(std::time::Duration::from_secs(30));
/// let report = server.serve()?;
/// println!("served {} requests", report.requests);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Server {
    listeners: Vec<Listener>,
    config: Config,
    handlers: Handlers,
    log: Logger,
    slow_log: Logger,
    access_log: Option<Arc<dyn AccessLog>>,
    shutdown: Arc<ShutdownState>,
    status: StatusHandle,
    handoff: Option<Handoff>,
    handle_signals: bool,
}

impl fmt::Debug for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Server")
            .field("listeners", &self.listeners)
            .field("config", &self.config)
            .field("handoff", &self.handoff)
            .field("handle_signals", &self.handle_signals)
            .finish()
    }
}

/// Builds a [`Server`]; see there for an example.
pub struct ServerBuilder {
    listeners: Vec<Listener>,
    config: Config,
    handlers: Handlers,
    log: Option<Logger>,
    slow_log: Option<Logger>,
    access_log: Option<Arc<dyn AccessLog>>,
    handle_signals: bool,
    app_processes: Option<crate::AppProcessSource>,
}

impl Default for ServerBuilder {
    fn default() -> Self {
        ServerBuilder {
            listeners: Vec::new(),
            config: Config::default(),
            handlers: Handlers::default(),
            log: None,
            slow_log: None,
            access_log: None,
            handle_signals: true,
            app_processes: None,
        }
    }
}

impl ServerBuilder {
    /// Adds a listening socket; a server may have several.
    pub fn listener(mut self, listener: Listener) -> Self {
        self.listeners.push(listener);
        self
    }

    /// Adds listening sockets: all of `listeners`, as [`listener`](ServerBuilder::listener)
    /// does one.
    ///
    /// ```no_run
    /// use fcgi_server::{ListenOptions, Listener, Server};
    ///
    /// let addrs = ["unix:/run/app.sock", "127.0.0.1:9000"];
    /// let listeners = addrs
    ///     .iter()
    ///     .map(|addr| Listener::bind(&addr.parse()?, &ListenOptions::default()).map_err(Into::into))
    ///     .collect::<Result<Vec<_>, Box<dyn std::error::Error>>>()?;
    /// let builder = Server::builder().listeners(listeners);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn listeners(mut self, listeners: impl IntoIterator<Item = Listener>) -> Self {
        self.listeners.extend(listeners);
        self
    }

    /// Sets the configuration (default: [`Config::default`]).
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    /// Serves the Responder role with the closure `handler`, whose argument types need no
    /// annotation. A type that implements [`Handler`] (or a [`streaming`](crate::streaming)
    /// closure) goes to [`handler`](ServerBuilder::handler) instead.
    ///
    /// ```
    /// use std::io::Write;
    /// use fcgi_server::Server;
    ///
    /// let _builder = Server::builder().responder(|request, response| {
    ///     write!(response, "You asked for {}", request.path())?;
    ///     Ok(())
    /// });
    /// ```
    pub fn responder<F>(self, handler: F) -> Self
    where
        F: Fn(&mut Request, &mut Response) -> Result<(), Error> + Send + Sync + 'static,
    {
        self.handler(Role::Responder, handler)
    }

    /// Serves the Authorizer role with the closure `handler`; see
    /// [`responder`](ServerBuilder::responder).
    pub fn authorizer<F>(self, handler: F) -> Self
    where
        F: Fn(&mut Request, &mut Response) -> Result<(), Error> + Send + Sync + 'static,
    {
        self.handler(Role::Authorizer, handler)
    }

    /// Serves `role` with `handler`, any type that implements [`Handler`]: a struct of
    /// your own, a [`streaming`](crate::streaming) closure, an `Arc` shared by several roles.
    /// A role served twice keeps the last handler; [`Role::Unknown`] is never served (FastCGI
    /// 1.0 has three roles), so giving it a handler does nothing.
    ///
    /// ```
    /// use std::io::Read;
    /// use fcgi_server::{streaming, Role, Server};
    ///
    /// let count = streaming(|request, response| {
    ///     let mut piece = [0u8; 4096];
    ///     let mut total = 0;
    ///     loop {
    ///         match request.body().read(&mut piece)? {
    ///             0 => break,
    ///             n => total += n,
    ///         }
    ///     }
    ///     response.header("Content-Type", "text/plain")?;
    ///     std::io::Write::write_all(response, format!("{total} bytes").as_bytes())?;
    ///     Ok(())
    /// });
    /// let _builder = Server::builder().handler(Role::Responder, count);
    /// ```
    pub fn handler(mut self, role: Role, handler: impl Handler) -> Self {
        let handler: Arc<dyn Handler> = Arc::new(handler);
        match role {
            Role::Responder => self.handlers.responder = Some(handler),
            Role::Authorizer => self.handlers.authorizer = Some(handler),
            Role::Filter => self.handlers.filter = Some(handler),
            Role::Unknown(_) => {}
        }
        self
    }

    /// Serves both the Authorizer and the Responder role with `handler`: what an access check
    /// needs to work behind every web server. lighttpd (`"mode" => "authorizer"`) and Apache
    /// send the Authorizer role; nginx's `auth_request` sends its subrequest as an ordinary
    /// Responder request (the check's location is its SCRIPT_NAME), so an app that serves only
    /// the Authorizer role would answer it UNKNOWN_ROLE. The handler tells them apart with
    /// [`Request::role`](crate::Request::role) where it must; in both, `200` allows (with
    /// `Variable-NAME` headers for the authorized request: [`Response::variable`]) and any
    /// other status is the client's answer.
    ///
    /// ```no_run
    /// use fcgi_server::{ListenOptions, Listener, Server};
    ///
    /// let listener = Listener::bind(&"127.0.0.1:9000".parse()?, &ListenOptions::default())?;
    /// let server = Server::builder().listener(listener).responder_and_authorizer(|request, response| {
    ///     if request.header_str("Authorization") == Some("Bearer let-me-in") {
    ///         response.variable("USER", "alice")?; // 200: allowed
    ///     } else {
    ///         response.set_status(401);
    ///     }
    ///     Ok(())
    /// });
    /// server.build().serve()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// A type that implements [`Handler`] serves both roles as an `Arc`, given to
    /// [`handler`](ServerBuilder::handler) once per role.
    ///
    /// [`Response::variable`]: crate::Response::variable
    pub fn responder_and_authorizer<F>(self, handler: F) -> Self
    where
        F: Fn(&mut Request, &mut Response) -> Result<(), Error> + Send + Sync + 'static,
    {
        let handler = Arc::new(handler);
        self.handler(Role::Responder, Arc::clone(&handler)).handler(Role::Authorizer, handler)
    }

    /// Serves the Filter role with the closure `handler`; see
    /// [`responder`](ServerBuilder::responder).
    pub fn filter<F>(self, handler: F) -> Self
    where
        F: Fn(&mut Request, &mut Response) -> Result<(), Error> + Send + Sync + 'static,
    {
        self.handler(Role::Filter, handler)
    }

    /// Logs through `log`. The default: warnings, errors and (with [`Config::access_log`])
    /// access lines on standard error, a line each; with the `tracing` feature, every record
    /// as a `tracing` event, to the process's subscriber (see the crate's README).
    pub fn logger(mut self, log: Logger) -> Self {
        self.log = Some(log);
        self
    }

    /// Logs slow requests ([`Config::slow_request`]) through `log` (default: the server's log).
    pub fn slow_logger(mut self, log: Logger) -> Self {
        self.slow_log = Some(log);
        self
    }

    /// Hands each request's access record ([`Config::access_log`]) to `access` instead of the
    /// log: a writer that formats lines for a file of their own takes them typed, with no
    /// log record in between.
    pub fn access_log(mut self, access: Arc<dyn AccessLog>) -> Self {
        self.access_log = Some(access);
        self
    }

    /// Whether [`serve`](Server::serve) answers SIGTERM and SIGINT (default: yes). The first
    /// of them stops the server gracefully, as a [`ShutdownHandle`] does with
    /// [`Config::graceful_timeout`]: no new connections, running requests finish, Unix socket
    /// files are removed, and `serve` returns. Any after it stops the server at once, requests
    /// still running cut short. A signal ignored when `serve` begins (`nohup`, a background
    /// job's SIGINT) stays ignored; once `serve` returns, TERM and INT do again what they did
    /// before.
    ///
    /// Turn it off in an application that handles these signals itself (a process manager, a
    /// runtime with its own signal handling) and stops the server through its
    /// [`shutdown_handle`](Server::shutdown_handle): both would act on each signal, and the
    /// earlier deadline wins.
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use fcgi_server::{ListenOptions, Listener, Server};
    ///
    /// let listener = Listener::bind(&"unix:/run/app.sock".parse()?, &ListenOptions::default())?;
    /// let server = Server::builder()
    ///     .listener(listener)
    ///     .responder(|_request, _response| Ok(()))
    ///     .handle_signals(false)
    ///     .build();
    /// let stop = server.shutdown_handle();
    /// // The application's own signal handling calls stop.shutdown(Duration::from_secs(10)).
    /// server.serve()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn handle_signals(mut self, on: bool) -> Self {
        self.handle_signals = on;
        self
    }

    /// Shows the app's own processes on the status page in place of the server's threads
    /// (`fcgi-exec` does, for its program processes): `source` is asked each time the page
    /// is read.
    ///
    /// ```
    /// use fcgi_server::{AppProcesses, Server};
    ///
    /// let server = Server::builder()
    ///     .processes(Box::new(|| AppProcesses { model: "static", idle: 4, ..AppProcesses::default() }))
    ///     .build();
    /// ```
    pub fn processes(mut self, source: crate::AppProcessSource) -> Self {
        self.app_processes = Some(source);
        self
    }

    /// The server.
    pub fn build(self) -> Server {
        let log = self.log.unwrap_or_else(crate::log::default_logger);
        let status = StatusHandle::default();
        if let Some(source) = self.app_processes {
            status.set_app_processes(source);
        }
        if self.config.status_path.is_some() || self.config.slow_request.is_some() {
            // Both need each running request's facts.
            status.watch();
        }
        Server {
            listeners: self.listeners,
            config: self.config,
            handlers: self.handlers,
            slow_log: self.slow_log.unwrap_or_else(|| log.clone()),
            access_log: self.access_log,
            log,
            shutdown: Arc::new(ShutdownState::default()),
            status,
            handoff: None,
            handle_signals: self.handle_signals,
        }
    }
}

impl Server {
    /// A builder with no listener, no handler and the default configuration.
    pub fn builder() -> ServerBuilder {
        ServerBuilder::default()
    }

    /// A handle that stops the server from any thread.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        self.shutdown.handle()
    }

    /// A handle that reads what the server is doing (requests served, running, the oldest's
    /// age) from any thread: what a process manager's heartbeat reports. Running requests are
    /// tracked once a handle has been asked for (a server nobody watches skips that work), so
    /// ask before [`serve`](Server::serve).
    pub fn status_handle(&self) -> StatusHandle {
        self.status.watch();
        self.status.clone()
    }

    /// Hands idle connections over through `handoff` when draining, instead of closing them,
    /// and serves the connections that arrive through it: for a process manager whose
    /// processes take over each other's connections (fcgi-prefork's [`Worker::serve`] sets
    /// its own). A connection the web server keeps then never closes under it when this server
    /// stops or reloads: closing an idle kept connection races the web server writing the next
    /// request into it, which nginx does not retry for a POST. When the other end is gone or
    /// full, idle connections are closed as without it.
    ///
    /// [`Worker::serve`]: https://docs.rs/fcgi-prefork/latest/fcgi_prefork/struct.Worker.html#method.serve
    pub fn set_handoff(&mut self, handoff: Handoff) {
        self.handoff = Some(handoff);
    }

    /// Sets [`Config::request_timeout`], for a process manager that owns the limit
    /// (fcgi-prefork's `Worker::serve` sets its `Settings::request_timeout`).
    pub fn set_request_timeout(&mut self, limit: Option<Duration>) {
        self.config.request_timeout = limit;
    }

    /// Sets whether [`serve`](Server::serve) answers SIGTERM and SIGINT, as
    /// [`ServerBuilder::handle_signals`] does: for a process manager that handles them itself
    /// and is handed servers built by the application (fcgi-prefork's `Worker::serve` turns
    /// it off).
    ///
    /// ```no_run
    /// # let mut server = fcgi_server::Server::builder().build();
    /// server.set_handle_signals(false);
    /// ```
    pub fn set_handle_signals(&mut self, on: bool) {
        self.handle_signals = on;
    }

    /// Serves until a [`ShutdownHandle`] stops the server (or, unless turned off, SIGTERM or
    /// SIGINT: see [`ServerBuilder::handle_signals`]), then returns what it did.
    ///
    /// Starts the pool's threads, which accept and read connections and run their requests;
    /// the calling thread becomes the monitor, which keeps time and reads while no pool thread
    /// is idle.
    pub fn serve(self) -> io::Result<ServeReport> {
        // First, so that a signal that comes while the server starts stops it too.
        self.shutdown.set_monitor(std::thread::current());
        let _signals = if self.handle_signals {
            Some(SignalWatch::start(
                self.shutdown_handle(),
                self.config.graceful_timeout,
                self.log.clone(),
            )?)
        } else {
            None
        };
        let config = self.config;
        let mut allow = config.allow.clone();
        if let Some((addrs, bad)) = web_server_addrs_from_env() {
            for entry in bad {
                warn!(self.log, "FCGI_WEB_SERVER_ADDRS entry is not an IP address; ignored"; "entry" => entry);
            }
            allow.get_or_insert_with(Vec::new).extend(addrs);
        }
        if let Some(allow) = &mut allow {
            for addr in allow.iter_mut() {
                *addr = addr.to_canonical();
            }
        }

        for listener in &self.listeners {
            info!(self.log, "listening"; "on" => %listener);
        }
        info!(self.log, "serving";
            "min_spare" => config.min_spare, "max_spare" => config.max_spare,
            "max_threads" => config.max_threads, "queue" => config.queue, "max_conns" => config.max_conns,
            "queue_timeout_ms" => config.queue_timeout.map(|t| t.as_millis()),
            "max_conn_requests" => config.max_conn_requests, "memory_budget" => config.memory_budget,
            "allow" => allow.as_ref().map(|a| format!("{a:?}")));

        let tcp_listen_fds =
            self.listeners.iter().filter(|l| l.is_tcp()).map(Listener::raw_fd).collect();
        // The status page and the ping answer in front of the app: a layer chosen here, once.
        let handlers = Arc::new(page::layer::with_pages(self.handlers, &config));
        // The pool's idle threads wait in the reactor's set (see reactor.rs).
        let reactor = Arc::new(Reactor::new(self.listeners, allow, self.handoff, handlers)?);
        let pool = fcgi_pool::Builder::new()
            .min_spare(config.min_spare)
            .max_spare(config.max_spare)
            .max_threads(config.max_threads)
            .queue_capacity(config.queue)
            .source(Arc::clone(&reactor) as Arc<dyn fcgi_pool::Source>)
            .build()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;

        let budget = Budget::new(config.memory_budget);
        let (max_threads, queue) = (config.max_threads, config.queue);
        let slow_request = config.slow_request;
        let ctx = Arc::new(Context {
            spool: SpoolConfig {
                memory: config.spool_memory,
                dir: config.spool_dir.clone(),
                limit: config.max_body,
                budget: Arc::clone(&budget),
                status: self.status.clone(),
            },
            budget,
            retry_after: format!("Retry-After: {}\r\n", config.retry_after),
            config,
            pool,
            log: self.log.clone(),
            counters: Counters::default(),
            status: self.status,
            tcp_listen_fds,
            max_listen_queue: AtomicU64::new(0),
            page_aside: AtomicBool::new(false),
            access_log: self.access_log.clone(),
        });
        let weak = Arc::downgrade(&ctx);
        ctx.status.serving(PoolGauges {
            // Weak: the status is the context's, and must not keep it alive.
            stats: Box::new(move || weak.upgrade().map(|c| c.pool.stats()).unwrap_or_default()),
            max_threads,
            queue,
        });
        let slow_watch = slow_request
            .map(|limit| SlowWatch::start(ctx.status.clone(), limit, self.slow_log.clone()))
            .transpose()?;
        let monitor = Monitor { reactor, ctx, shutdown: Arc::clone(&self.shutdown) };
        let report = monitor.run();
        drop(slow_watch);
        let report = report?;
        info!(self.log, "stopped"; "requests" => report.requests, "unfinished" => report.unfinished);
        Ok(report)
    }
}

/// The longest the slow-request check sleeps: a slow request is logged at most this late.
const SLOW_CHECK_MAX: Duration = Duration::from_millis(250);
/// The shortest: a tiny limit (a test's) does not turn the check into a busy loop.
const SLOW_CHECK_MIN: Duration = Duration::from_millis(10);

/// The thread that logs each request once it has run past [`Config::slow_request`], while it
/// still runs (as PHP-FPM's slow log): a tenth of the limit late at most, within the bounds
/// above. Stops when dropped.
struct SlowWatch {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl SlowWatch {
    fn start(status: StatusHandle, limit: Duration, log: Logger) -> io::Result<SlowWatch> {
        let stop = Arc::new(AtomicBool::new(false));
        let every = (limit / 10).clamp(SLOW_CHECK_MIN, SLOW_CHECK_MAX);
        let thread = {
            let stop = Arc::clone(&stop);
            std::thread::Builder::new().name("fcgi-slowlog".into()).spawn(move || {
                let pid = std::process::id();
                while !stop.load(Ordering::Acquire) {
                    for slow in status.take_newly_slow(limit) {
                        warn!(log, "slow request: still running past the slow-request limit";
                            "method" => slow.request.method, "uri" => slow.request.uri,
                            "remote_addr" => slow.request.remote,
                            "script" => slow.request.script,
                            "child_pid" => slow.request.child_pid,
                            "elapsed_ms" => slow.elapsed.as_millis(),
                            "limit_ms" => limit.as_millis(),
                            "pid" => pid, "thread" => slow.thread, "tid" => slow.tid);
                    }
                    std::thread::park_timeout(every);
                }
            })?
        };
        Ok(SlowWatch { stop, thread: Some(thread) })
    }
}

impl Drop for SlowWatch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            thread.thread().unpark();
            let _ = thread.join();
        }
    }
}

/// The thread that answers SIGTERM and SIGINT while a server serves (see
/// [`ServerBuilder::handle_signals`]): the first drains, any after it stops at once. Stops
/// when dropped.
struct SignalWatch {
    handle: signal_hook::iterator::Handle,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl SignalWatch {
    fn start(stop: ShutdownHandle, grace: Duration, log: Logger) -> io::Result<SignalWatch> {
        let mut signals = signal_hook::iterator::Signals::new(handled_signals()?)?;
        let handle = signals.handle();
        let thread = std::thread::Builder::new().name("fcgi-signals".into()).spawn(move || {
            let mut draining = false;
            for signal in signals.forever() {
                let name = if signal == SIGTERM { "TERM" } else { "INT" };
                if draining {
                    warn!(log, "stopping at once: a second signal while draining"; "signal" => name);
                    stop.shutdown(Duration::ZERO);
                } else {
                    info!(log, "graceful stop"; "signal" => name, "grace_s" => grace.as_secs_f64());
                    stop.shutdown(grace);
                    draining = true;
                }
            }
        });
        let thread = match thread {
            Ok(thread) => thread,
            Err(e) => {
                handle.close();
                return Err(e);
            }
        };
        serving_with_signals(true);
        Ok(SignalWatch { handle, thread: Some(thread) })
    }
}

impl Drop for SignalWatch {
    fn drop(&mut self) {
        self.handle.close();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        serving_with_signals(false);
    }
}

/// What the process did with TERM and INT before a server first handled them, and how many
/// servers handle them now.
struct SignalRegistry {
    /// The signals servers handle: TERM and INT, less those ignored at first.
    handled: Vec<std::ffi::c_int>,
    /// Set while no server handles signals: those whose action was the default get it again
    /// (signal-hook keeps its handler installed once it has one).
    default_again: Arc<AtomicBool>,
    serving: usize,
}

static SIGNALS: Mutex<Option<SignalRegistry>> = Mutex::new(None);

/// The signals a server handles; looked up, and the default actions kept for later, by the
/// first server to handle any.
fn handled_signals() -> io::Result<Vec<std::ffi::c_int>> {
    let mut registry = SIGNALS.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(registry) = &*registry {
        return Ok(registry.handled.clone());
    }
    let default_again = Arc::new(AtomicBool::new(false));
    let mut handled = Vec::new();
    for signal in [SIGTERM, SIGINT] {
        match crate::sys::signal_action(signal)? {
            crate::sys::SignalAction::Ignored => continue,
            crate::sys::SignalAction::Default => {
                signal_hook::flag::register_conditional_default(
                    signal,
                    Arc::clone(&default_again),
                )?;
            }
            crate::sys::SignalAction::Handled => {}
        }
        handled.push(signal);
    }
    *registry = Some(SignalRegistry { handled: handled.clone(), default_again, serving: 0 });
    Ok(handled)
}

/// Counts a server that begins (`true`) or ends (`false`) handling signals; when none is
/// left, the signals whose action was the default get it back.
fn serving_with_signals(begins: bool) {
    let mut registry = SIGNALS.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(registry) = &mut *registry {
        if begins {
            registry.serving += 1;
        } else {
            registry.serving = registry.serving.saturating_sub(1);
        }
        registry.default_again.store(registry.serving == 0, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;
    use crate::ListenOptions;

    /// An idle server asked to stop while it starts (before its monitor first waits) stops
    /// at once, not at the monitor's first sweep.
    #[test]
    fn a_stop_asked_before_serving_begins_is_seen_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let addr = crate::ListenAddr::Unix(dir.path().join("s"));
        let listener = Listener::bind(&addr, &ListenOptions::default()).unwrap();
        let server = Server::builder()
            .listener(listener)
            .responder(|_, _| Ok(()))
            .handle_signals(false)
            .build();
        server.shutdown_handle().shutdown(Duration::from_secs(30));
        let started = Instant::now();
        let report = server.serve().unwrap();
        let took = started.elapsed();
        assert_eq!(report, ServeReport::default());
        // The sweep comes a second after serving begins; stopping takes milliseconds.
        assert!(took < Duration::from_millis(500), "took {took:?}");
        assert!(!dir.path().join("s").exists(), "the socket file is removed");
    }
}
