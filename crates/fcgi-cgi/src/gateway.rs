//! The handler: resolve, spawn, feed, pump, reap, and answer what went wrong; local redirects
//! run the whole again.

use std::ffi::OsString;
use std::io;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use fcgi_server::{Handler, Request, Response};
use slog::{debug, info, warn, Logger};

use crate::child::{self, Launch, Spawned};
use crate::config::{CgiConfig, ConfigError};
use crate::env::{pass_env_values, Vars};
use crate::feed::BodyState;
use crate::pump::{self, Head, Limits, Stop};
use crate::redirect::{self, RedirectError, MAX_LOCAL_REDIRECTS};
use crate::resolve::resolve;
use crate::sys::Errno;
use crate::uri::query_argv;
use crate::watchdog::{Group, Watchdog};

/// A CGI/1.1 gateway: an [`fcgi_server::Handler`] that runs, for each request, the program the
/// web server names, and answers with what it prints.
///
/// ```no_run
/// use fcgi_cgi::{CgiConfig, Gateway};
/// use fcgi_server::{ListenOptions, Listener, Role, Server};
///
/// let gateway = Gateway::new(CgiConfig {
///     root: Some("/usr/lib/cgi-bin".into()),
///     ..CgiConfig::default()
/// })?;
/// let listener = Listener::bind(&"unix:/run/cgi.sock".parse()?, &ListenOptions::default())?;
/// Server::builder().listener(listener).handler(Role::Responder, gateway).build().serve()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Gateway {
    root: Option<PathBuf>,
    timeout: Option<Duration>,
    kill_grace: Duration,
    pass_env: Vec<(OsString, OsString)>,
    argv_from_query: bool,
    /// Stops the programs of runs past the timeout while their pumps are blocked.
    watchdog: Watchdog,
    log: Logger,
}

/// What one run of a program ended with.
enum Outcome {
    /// The request is answered (well or badly).
    Done,
    /// The program asked for a local redirect to this location.
    LocalRedirect(String),
}

impl Gateway {
    /// A gateway with `config`: the root is resolved now (so that it is compared with resolved
    /// script paths), and the `--pass-env` values are read now. Descriptors the process
    /// inherited without close-on-exec get the flag now, so that programs inherit only their
    /// stdin, stdout and stderr ([`child::close_inherited_on_exec`]).
    pub fn new(config: CgiConfig) -> Result<Gateway, ConfigError> {
        let root = match config.root {
            Some(root) => {
                let resolved =
                    std::fs::canonicalize(&root).map_err(|e| ConfigError::Root(root.clone(), e))?;
                if !resolved.is_dir() {
                    return Err(ConfigError::RootNotDirectory(root));
                }
                Some(resolved)
            }
            None => None,
        };
        let marked = child::close_inherited_on_exec();
        if marked > 0 {
            debug!(config.logger, "inherited descriptors marked close-on-exec"; "count" => marked);
        }
        Ok(Gateway {
            root,
            timeout: config.timeout.filter(|t| !t.is_zero()),
            kill_grace: config.kill_grace,
            pass_env: pass_env_values(&config.pass_env),
            argv_from_query: config.argv_from_query,
            watchdog: Watchdog::new(config.logger.clone()),
            log: config.logger,
        })
    }

    /// Runs the program `vars` name, once. `first` is false for a local redirect's run, which
    /// gets no body.
    fn run(
        &self,
        request: &mut Request,
        response: &mut Response,
        vars: &Vars,
        first: bool,
        deadline: Option<Instant>,
    ) -> Result<Outcome, fcgi_server::Error> {
        let script = match resolve(vars, self.root.as_deref()) {
            Ok(script) => script,
            Err(e) => {
                warn!(self.log, "CGI request refused: {e}"; "status" => e.status(),
                      "uri" => request.request_uri().unwrap_or(""));
                response.fail(e.status());
                return Ok(Outcome::Done);
            }
        };
        let args = match (self.argv_from_query, vars.get("QUERY_STRING")) {
            (true, Some(query)) => query_argv(query),
            _ => Vec::new(),
        };
        let launch = Launch {
            script: &script,
            vars,
            pass_env: &self.pass_env,
            args: &args,
            body: first && has_body(vars),
        };
        let Spawned { mut child, stdin, stdout, stderr } = match child::spawn(&launch) {
            Ok(spawned) => spawned,
            Err(e) => {
                let status = spawn_failure_status(&e);
                warn!(self.log, "cannot start the CGI program: {e}"; "script" => &script.name,
                      "path" => %script.path.display(), "status" => status);
                response.fail(status);
                return Ok(Outcome::Done);
            }
        };
        debug!(self.log, "CGI program started"; "script" => &script.name, "pid" => child.id());
        // The slow log and the status page name the program a slow request runs.
        request.note_child(child.id());
        let limits = Limits { deadline, kill_grace: self.kill_grace };
        // Shared with the gateway's watchdog, which stops the group on time even while the pump
        // is blocked (on the request body, or on the web server).
        let group = Arc::new(Group::new(&child));
        let watch = deadline.and_then(|deadline| {
            let input = Some(request.abort_signal());
            match self.watchdog.watch(&group, input, deadline, self.kill_grace, &script.name) {
                Ok(watch) => Some(watch),
                Err(e) => {
                    // The pump still enforces the timeout, except while it is blocked.
                    warn!(self.log, "cannot start the timeout thread: {e}";
                          "script" => &script.name);
                    None
                }
            }
        });
        let body = BodyState::default();

        // The feeder borrows the request: the pump watches for an abort through this.
        let abort = request.abort_signal();
        let is_aborted = || abort.is_aborted();
        let pump = |child: &mut child::Child, response: &mut Response, fed: Option<&BodyState>| {
            pump::pump(
                child,
                &group,
                (stdout, stderr),
                response,
                &is_aborted,
                fed,
                limits,
                &self.log,
                &script.name,
            )
        };
        let report = match stdin {
            None => pump(&mut child, response, None),
            Some(stdin) => thread::scope(|scope| {
                let (stop_tx, stop_rx) = mpsc::channel::<()>();
                let body = &body;
                let feeder = thread::Builder::new()
                    .name("fcgi-cgi-stdin".into())
                    .spawn_scoped(scope, move || {
                        crate::feed::feed(request.body(), stdin, body, &stop_rx)
                    });
                if let Err(e) = &feeder {
                    // The stdin pipe went with the closure: the program sees an empty body.
                    warn!(self.log, "cannot start a thread for the request body: {e}";
                          "script" => &script.name);
                }
                let report = pump(&mut child, response, feeder.is_ok().then_some(body));
                // The feeder stops once it sees this hang up.
                drop(stop_tx);
                report
            }),
        };
        // No signal may go out once the pump is done: the guard below may reap the program
        // outside the group's lock.
        group.forget();
        drop(watch);
        // Reaped already; this only settles the guard.
        drop(child);

        let exit = report.status.map_or_else(|| "unknown".to_owned(), |s| s.to_string());
        let name = script.name.as_str();
        match (report.head, report.stop) {
            (_, Some(Stop::Aborted)) => {
                info!(self.log, "request aborted; the CGI program was stopped";
                      "script" => name, "exit" => exit);
                Ok(Outcome::Done)
            }
            (_, Some(Stop::BodyFailed(e))) => {
                // Killed before it could read an end of file: it never took the body for whole.
                let status = e.status();
                if response.fail(status) {
                    warn!(self.log, "the request body could not be read whole ({e}); the CGI \
                        program was killed and the request answered {status}";
                        "script" => name, "status" => status, "body_error" => %e);
                    return Ok(Outcome::Done);
                }
                Err(cut_short(name, &format!("the request body could not be read whole ({e})")))
            }
            (_, Some(Stop::ResponseFailed(e))) => {
                info!(self.log, "the web server went away; the CGI program was killed";
                      "script" => name, "error" => %e);
                Err(e.into())
            }
            (Head::None, Some(Stop::TimedOut)) => {
                warn!(self.log, "CGI program ran past the timeout before its header; answered 504";
                      "script" => name, "exit" => exit);
                response.fail(504);
                Ok(Outcome::Done)
            }
            (Head::None, Some(Stop::BadHeader(e))) => {
                warn!(self.log, "CGI program sent an invalid header block: {e}; answered 502";
                      "script" => name, "exit" => exit);
                response.fail(502);
                Ok(Outcome::Done)
            }
            (Head::None, stop) => {
                let detail = match stop {
                    Some(Stop::Io(e)) => format!(" (reading its output failed: {e})"),
                    _ => String::new(),
                };
                warn!(self.log, "CGI program exited without a header{detail}; answered 502 \
                    (its stderr is logged above)"; "script" => name, "exit" => exit);
                response.fail(502);
                Ok(Outcome::Done)
            }
            // Its header went out (or at least into the response): if the response can still be
            // replaced, it is; else the web server must learn that it failed, which the server
            // does for a handler that returns an error after its output went out.
            (Head::Sent, Some(Stop::TimedOut)) => {
                if response.fail(504) {
                    warn!(self.log, "CGI program ran past the timeout and was stopped; answered \
                        504"; "script" => name, "exit" => exit);
                    return Ok(Outcome::Done);
                }
                Err(cut_short(name, "it ran past the timeout and was stopped"))
            }
            (Head::Sent, _) if report.status.is_some_and(|s| s.signal().is_some()) => {
                if response.fail(502) {
                    warn!(self.log, "CGI program was killed by a signal; answered 502";
                          "script" => name, "exit" => exit);
                    return Ok(Outcome::Done);
                }
                Err(cut_short(name, &format!("it was killed ({exit})")))
            }
            (Head::Sent, _) => {
                debug!(self.log, "CGI program done"; "script" => name, "exit" => exit);
                Ok(Outcome::Done)
            }
            (Head::LocalRedirect(_), Some(Stop::TimedOut)) => {
                warn!(self.log, "CGI program ran past the timeout after a local redirect; \
                    answered 504"; "script" => name, "exit" => exit);
                response.fail(504);
                Ok(Outcome::Done)
            }
            (Head::LocalRedirect(location), _) => Ok(Outcome::LocalRedirect(location)),
        }
    }
}

impl Handler for Gateway {
    /// The body goes to the program as it arrives (a `git push` streams into
    /// `git http-backend`); `--cgi-timeout` bounds the whole run, waits for the body included.
    fn streams_body(&self) -> bool {
        true
    }

    fn handle(
        &self,
        request: &mut Request,
        response: &mut Response,
    ) -> Result<(), fcgi_server::Error> {
        let deadline = self.timeout.map(|timeout| Instant::now() + timeout);
        let (mut vars, dropped) = Vars::from_params(request.params());
        if !dropped.is_empty() {
            let names: Vec<String> =
                dropped.iter().map(|(name, why)| format!("{name} ({})", why.as_str())).collect();
            debug!(self.log, "params not passed to the CGI program";
                   "dropped" => names.join(", "), "count" => dropped.len(),
                   "uri" => request.request_uri().unwrap_or(""));
        }
        let mut first = true;
        for hop in 0..=MAX_LOCAL_REDIRECTS + 1 {
            let location = match self.run(request, response, &vars, first, deadline)? {
                Outcome::Done => return Ok(()),
                Outcome::LocalRedirect(location) => location,
            };
            let next = if hop == MAX_LOCAL_REDIRECTS {
                Err(RedirectError::TooMany(location.clone()))
            } else {
                redirect::follow(&vars, &location, self.root.as_deref())
            };
            match next {
                Ok(next) => {
                    debug!(self.log, "following a local redirect"; "to" => &location);
                    vars = next;
                    first = false;
                }
                Err(e) => {
                    warn!(self.log, "{e}; answered 500"; "uri" => request.request_uri().unwrap_or(""));
                    response.fail(500);
                    return Ok(());
                }
            }
        }
        Ok(())
    }
}

/// Whether the request has a body for the program's stdin: a `CONTENT_LENGTH` above 0, or none
/// at all on a method that may carry one (a chunked upload that nginx passes on unbuffered).
fn has_body(vars: &Vars) -> bool {
    match vars.get_str("CONTENT_LENGTH").filter(|n| !n.is_empty()) {
        Some(length) => length.trim().parse::<u64>().map_or(true, |n| n > 0),
        None => !matches!(vars.get("REQUEST_METHOD"), Some(b"GET" | b"HEAD") | None),
    }
}

/// The error for a run that failed after its response began to go out: the server cuts the
/// response short so that the web server does not take it for complete.
fn cut_short(script: &str, why: &str) -> fcgi_server::Error {
    format!("CGI program {script} failed after its response began: {why}").into()
}

/// The status for a program that cannot be started: not ours to execute is 403; out of
/// processes, descriptors or memory is 503 (try again later); anything else (a missing
/// interpreter on the `#!` line, a file that is no program) is 502.
fn spawn_failure_status(e: &io::Error) -> u16 {
    match Errno::from_io_error(e) {
        Some(Errno::ACCESS | Errno::PERM) => 403,
        Some(Errno::AGAIN | Errno::MFILE | Errno::NFILE | Errno::NOMEM) => 503,
        _ => 502,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn which_requests_have_a_body() {
        let vars = |pairs: &[(&str, &str)]| Vars::from_pairs(pairs);
        assert!(has_body(&vars(&[("REQUEST_METHOD", "POST"), ("CONTENT_LENGTH", "10")])));
        assert!(!has_body(&vars(&[("REQUEST_METHOD", "POST"), ("CONTENT_LENGTH", "0")])));
        assert!(!has_body(&vars(&[("REQUEST_METHOD", "GET"), ("CONTENT_LENGTH", "")])));
        assert!(has_body(&vars(&[("REQUEST_METHOD", "PUT")])));
        assert!(!has_body(&vars(&[("REQUEST_METHOD", "HEAD")])));
    }

    #[test]
    fn spawn_failures() {
        assert_eq!(spawn_failure_status(&io::Error::from(Errno::ACCESS)), 403);
        assert_eq!(spawn_failure_status(&io::Error::from(Errno::AGAIN)), 503);
        assert_eq!(spawn_failure_status(&io::Error::from(Errno::NOENT)), 502);
        assert_eq!(spawn_failure_status(&io::Error::from(Errno::NOEXEC)), 502);
    }
}
