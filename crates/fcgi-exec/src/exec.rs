//! [`Exec`]: the handler that gives each request, once its body is whole, to an idle program
//! process, and answers for the program when it fails.

use std::ffi::OsString;
use std::os::unix::net::UnixStream;
use std::os::unix::process::ExitStatusExt;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use fcgi_server::{Handler, Request, Response};
use slog::{error, warn, Logger};

use crate::config::{resolve_program, ConfigError, ExecConfig};
use crate::pool::{Pool, PoolStatus, Release, Unavailable};
use crate::relay::{Ended, Outcome, Relay, Replay};
use crate::sys;

/// Attempts per request: a program that stops by itself (its own request limit) without
/// taking a request sends it on to another; more than this many in a row is a failure.
const ATTEMPTS: usize = 3;
/// How long a request waits to learn how its program ended, once its connection broke.
const EXIT_WAIT: Duration = Duration::from_millis(500);
/// Kept connections found closed in a row that tell a program which closes them all.
const CLOSED_IN_A_ROW: u32 = 3;
/// The same on a kept connection: a crash is reaped within a millisecond or two (the
/// supervisor wakes on the process's pidfd); a program that merely closed it goes on running.
const REUSED_EXIT_WAIT: Duration = Duration::from_millis(50);
/// The `Retry-After` of a `503` while the program cannot run or every process stays busy.
const RETRY_AFTER: &str = "1";

/// Runs a FastCGI program in processes of its own and serves each request with one of them.
///
/// ```no_run
/// use fcgi_exec::{Exec, ExecConfig, Scale};
/// use fcgi_server::{ListenOptions, Listener, Role, Server};
///
/// let log = slog::Logger::root(slog::Discard, slog::o!());
/// let mut config = ExecConfig::new("/usr/bin/php-cgi", log);
/// config.scale = Scale::Static { processes: 4 };
/// let exec = Exec::start(config)?;
/// let listener = Listener::bind(&"unix:/run/php.sock".parse()?, &ListenOptions::default())?;
/// Server::builder().listener(listener).handler(Role::Responder, exec).build().serve()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Exec {
    pool: Pool,
    /// Keep a connection per process (FCGI_KEEP_CONN); turned off for good once the program
    /// is seen to close kept connections (libfcgi programs built on `FCGI_Accept` do).
    keep_conn: AtomicBool,
    /// Kept connections found closed by the program since one was last reused well.
    closed_in_a_row: AtomicU32,
    request_timeout: Option<Duration>,
    queue_timeout: Option<Duration>,
    kill_grace: Duration,
    log: Logger,
}

impl Exec {
    /// Checks `config` ([`check`]) and starts the processes its scale wants.
    pub fn start(config: ExecConfig) -> Result<Exec, ConfigError> {
        Exec::start_measured(config, false)
    }

    /// [`start`](Exec::start), reading each process's CPU and memory after each request when
    /// `measure` (the status page's `last request cpu` and `last request memory`; a read of
    /// /proc per request).
    pub fn start_measured(config: ExecConfig, measure: bool) -> Result<Exec, ConfigError> {
        let program = check(&config)?;
        let env = environment(&config.pass_env);
        // Inherited descriptors without close-on-exec would reach every program.
        fcgi_cgi::child::close_inherited_on_exec();
        let exec = Exec {
            keep_conn: AtomicBool::new(config.keep_conn),
            closed_in_a_row: AtomicU32::new(0),
            request_timeout: config.request_timeout,
            queue_timeout: config.queue_timeout,
            kill_grace: config.kill_grace,
            log: config.logger.clone(),
            pool: Pool::start(config.clone(), program, env, measure)
                .map_err(|e| ConfigError::SocketDir(config.socket_dir.clone(), e))?,
        };
        Ok(exec)
    }

    /// The program processes now, for a status page.
    pub fn status(&self) -> PoolStatus {
        self.pool.status()
    }

    /// Relays the request until it is answered, going on to another process when one stopped
    /// without taking it.
    fn serve(
        &self,
        request: &mut Request,
        response: &mut Response,
    ) -> Result<(), fcgi_server::Error> {
        let started = Instant::now();
        let deadline = self.request_timeout.map(|t| started + t);
        let queue_deadline = self.queue_timeout.map(|t| started + t);
        let method = request.method().unwrap_or("").to_owned();
        let uri = request.request_uri().unwrap_or("").to_owned();
        let mut replay = Replay::default();
        'attempts: for attempt in 1..=ATTEMPTS {
            let wait_until = match (queue_deadline, deadline) {
                (Some(q), Some(d)) => Some(q.min(d)),
                (q, d) => q.or(d),
            };
            let mut lease = match self.pool.acquire(wait_until, &method, &uri) {
                Ok(lease) => lease,
                Err(Unavailable::Down(why)) => {
                    warn!(self.log, "no program process runs: answered 503"; "reason" => &why,
                        "uri" => &uri);
                    response.fail_with(503, &[("Retry-After", RETRY_AFTER)]);
                    return Ok(());
                }
                Err(Unavailable::Busy) => {
                    if deadline.is_some_and(|d| Instant::now() >= d) {
                        response.fail(504);
                    } else {
                        response.fail_with(503, &[("Retry-After", RETRY_AFTER)]);
                    }
                    return Ok(());
                }
                Err(Unavailable::Stopping) => {
                    response.fail_with(503, &[("Retry-After", RETRY_AFTER)]);
                    return Ok(());
                }
            };
            request.note_child(lease.pid);
            // The kept connection first; if the program had closed it, a new one, once.
            // `reused`: the request went on a kept connection.
            let mut kept = lease.conn.take();
            let (outcome, conn, reused) = loop {
                let reusing = kept.is_some();
                let conn = match kept.take() {
                    Some(conn) => Ok(conn),
                    None => connect(&lease.socket),
                };
                let mut conn = match conn {
                    Ok(conn) => conn,
                    Err(e) => {
                        // Nothing listens on its socket: it exited, or it closed fd 0 (not a
                        // FastCGI program, or one that cannot accept). The request was never
                        // sent; a live process that does not listen is replaced.
                        let pid = lease.pid;
                        let gone = self.pool.exit_of(pid, Duration::ZERO).is_some();
                        if !gone {
                            error!(self.log, "the program does not accept connections on fd 0 \
                                (it closed it, or it is not a FastCGI program): replaced";
                                "program_pid" => pid, "error" => %e);
                        }
                        self.pool.release(lease, Release::Retire("no-listener"));
                        if attempt == ATTEMPTS {
                            response.fail(502);
                            return Ok(());
                        }
                        continue 'attempts;
                    }
                };
                let outcome = Relay {
                    conn: &mut conn,
                    reused: reusing,
                    keep_conn: self.keep_conn.load(Ordering::Relaxed),
                    deadline,
                    kill_grace: self.kill_grace,
                    replay: &mut replay,
                    pid: lease.pid,
                    log: &self.log,
                }
                .run(request, response);
                if let Outcome::Stale = outcome {
                    // Closed by a program that goes on running (not one that exits at its own
                    // request limit, as php-cgi does): it does not keep connections.
                    if self.pool.exit_of(lease.pid, Duration::ZERO).is_none() {
                        self.stop_keeping();
                    }
                    continue;
                }
                break (outcome, conn, reusing);
            };
            let pid = lease.pid;
            match outcome {
                Outcome::Stale => unreachable!("a closed kept connection is replaced above"),
                Outcome::Complete { reusable } => {
                    if reused {
                        self.closed_in_a_row.store(0, Ordering::Relaxed);
                    }
                    let keep = (self.keep_conn.load(Ordering::Relaxed) && reusable).then_some(conn);
                    self.pool.release(lease, Release::Done { conn: keep, answered: true });
                    return Ok(());
                }
                Outcome::NoAnswer { error, replayable } => {
                    // Its exit is learnt while the lease is out, so that it is known to have
                    // died on a request (see `Pool::release`).
                    let never_took_it = self.never_took_it(pid, reused);
                    if reused && never_took_it && self.pool.exit_of(pid, Duration::ZERO).is_none() {
                        // It closed the kept connection as the request came, and runs on.
                        self.stop_keeping();
                    }
                    self.pool.release(lease, Release::Done { conn: None, answered: false });
                    if replayable && attempt < ATTEMPTS && never_took_it {
                        continue;
                    }
                    error!(self.log, "the program failed before answering: 502";
                        "program_pid" => pid, "error" => &error, "uri" => &uri);
                    response.fail(502);
                    return Ok(());
                }
                Outcome::Failed { why, retire } => {
                    error!(self.log, "the program failed the request"; "program_pid" => pid,
                        "error" => &why, "uri" => &uri);
                    let how = match retire {
                        Some(reason) => Release::Retire(reason),
                        None => Release::Done { conn: None, answered: true },
                    };
                    self.pool.release(lease, how);
                    return self.failed(response, why);
                }
                Outcome::TimedOut => {
                    error!(self.log, "request timed out: its program is stopped"; "program_pid" => pid,
                        "uri" => &uri, "timeout_s" => self.request_timeout.map_or(0, |t| t.as_secs()));
                    self.pool.release(lease, Release::Retire("timeout"));
                    if response.fail(504) {
                        return Ok(());
                    }
                    return Err(fcgi_server::Error::from(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        "the request timed out after its answer began",
                    )));
                }
                Outcome::Aborted { ended } => {
                    self.pool.release(lease, after_abort(ended));
                    return Ok(());
                }
                Outcome::ClientGone { error, ended } => {
                    // The answer had nowhere to go.
                    self.pool.release(lease, after_abort(ended));
                    return Err(fcgi_server::Error::from(error));
                }
            }
        }
        response.fail(502);
        Ok(())
    }

    /// A kept connection was found closed by a program that runs on; three in a row (with no
    /// kept connection reused well between) and a connection per request is opened from now
    /// on: the program closes kept ones. (One now and then is a program that is about to
    /// exit at its own request limit.)
    fn stop_keeping(&self) {
        if self.closed_in_a_row.fetch_add(1, Ordering::Relaxed) + 1 < CLOSED_IN_A_ROW {
            return;
        }
        if self.keep_conn.swap(false, Ordering::Relaxed) {
            warn!(self.log, "the program closes kept connections (it ignores FCGI_KEEP_CONN): \
                a connection per request from now on (--program-connection per-request says so \
                at start)"; "event" => "program-closes-kept-connections");
        }
    }

    /// Whether the process `pid`, whose connection ended with no answer, never took the
    /// request: it exited by itself (not by a signal) with status 0, or before it had ever
    /// answered one (a program that cannot start), or the connection was a kept one that it
    /// had closed while idle. Then the request may go to another process.
    fn never_took_it(&self, pid: u32, reused: bool) -> bool {
        // A kept connection that the program closed while idle: it usually still runs, so
        // waiting long for its exit would only delay the request.
        let wait = if reused { REUSED_EXIT_WAIT } else { EXIT_WAIT };
        match self.pool.exit_of(pid, wait) {
            Some(status) => {
                status.signal().is_none()
                    && (status.code() == Some(0) || !self.pool.has_served(pid))
            }
            None => reused,
        }
    }

    /// Answers for a program that failed the request: 502 if nothing went out yet, else the
    /// response is cut short (the error makes the server end it as failed).
    fn failed(&self, response: &mut Response, why: String) -> Result<(), fcgi_server::Error> {
        if response.fail(502) {
            return Ok(());
        }
        Err(fcgi_server::Error::from(std::io::Error::other(why)))
    }
}

impl Handler for Exec {
    fn handle(
        &self,
        request: &mut Request,
        response: &mut Response,
    ) -> Result<(), fcgi_server::Error> {
        // The whole body first: a slow client holds no program process.
        if !request.wait_for_input() {
            return Ok(());
        }
        self.serve(request, response)
    }
}

/// What becomes of a process whose request the web server gave up on: one that ended it or
/// closed its connection is kept (the connection, maybe mid-record, is not), but only an
/// answer counts as one (a process that dies on every abort must not pass for one that
/// works); one still at it when the grace ran out is replaced.
fn after_abort(ended: Ended) -> Release {
    match ended {
        Ended::Answered => Release::Done { conn: None, answered: true },
        Ended::Closed => Release::Done { conn: None, answered: false },
        Ended::Running => Release::Retire("abort"),
    }
}

/// A new connection to a program process's socket, set up once for every request it carries:
/// the relay's writes never wait (`MSG_DONTWAIT`), and its reads wait for the answer at most
/// [`ABORT_CHECK`](crate::relay::ABORT_CHECK) at a time (`SO_RCVTIMEO`), so that a read is
/// both the wait and the answer, and the relay still looks at the time and the web server's
/// abort between them.
fn connect(socket: &std::path::Path) -> std::io::Result<UnixStream> {
    let conn = UnixStream::connect(socket)?;
    conn.set_read_timeout(Some(crate::relay::ABORT_CHECK))?;
    Ok(conn)
}

/// The programs' environment: `PATH` (ours, or the usual one), and the `--pass-env` names.
fn environment(pass_env: &[String]) -> Vec<(OsString, OsString)> {
    let mut env = fcgi_cgi::env::pass_env_values(pass_env);
    if !env.iter().any(|(name, _)| name == "PATH") {
        let path =
            std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into());
        env.push(("PATH".into(), path));
    }
    env
}

/// Checks what can be checked before any process runs: the scale, the program (it exists
/// and is executable: found in `PATH`, inside the chroot when there is one), the chroot, the
/// limits. Returns the program's path.
///
/// ```
/// let log = slog::Logger::root(slog::Discard, slog::o!());
/// let config = fcgi_exec::ExecConfig::new("/nonexistent/php-cgi", log);
/// let err = fcgi_exec::check(&config).unwrap_err().to_string();
/// assert!(err.contains("/nonexistent/php-cgi"), "{err}");
/// ```
pub fn check(config: &ExecConfig) -> Result<std::path::PathBuf, ConfigError> {
    config.scale.validate()?;
    if let Some(dir) = &config.chroot {
        if !dir.is_dir() {
            return Err(ConfigError::Chroot(format!(
                "--chroot {}: not a directory",
                dir.display()
            )));
        }
        if !sys::may_chroot() {
            return Err(ConfigError::Chroot(format!(
                "--chroot {} needs fcgi-rs started as root (with --user, the programs then \
                 run as that user inside DIR; without, as root), or leave --chroot out",
                dir.display()
            )));
        }
    }
    for (name, resource, value) in [
        ("--rlimit-nofile", sys::Resource::Nofile, config.rlimit_nofile),
        ("--rlimit-core", sys::Resource::Core, config.rlimit_core),
    ] {
        let Some(value) = value else { continue };
        if let Err(hard) = sys::check_limit(resource, value) {
            return Err(ConfigError::Limit(format!(
                "{name} {value} is above this process's hard limit ({hard}), which only root \
                 may raise: lower it, or raise the hard limit (ulimit -H, LimitNOFILE= or \
                 LimitCORE= in a systemd unit)"
            )));
        }
    }
    let path = environment(&config.pass_env)
        .into_iter()
        .find(|(name, _)| name == "PATH")
        .map(|(_, value)| value);
    resolve_program(&config.program, path.as_deref(), config.chroot.as_deref())
}
