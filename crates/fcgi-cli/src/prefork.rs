//! `fcgi serve` with a master: the listeners made once, then fcgi-prefork forks workers that
//! each build the app from the serve arguments; HUP re-reads them (and `--config`).

use std::ffi::OsString;
use std::sync::{Arc, Mutex};

use fcgi_prefork::{Master, Settings, Worker, Workload};
use slog::{error, o, warn, Drain, Logger, OwnedKVList, Record};

use crate::args::ServeArgs;
use crate::checks::Problem;
use crate::logging::{self, LogTarget};
use crate::{serve, Failure};

/// Runs the master until it stops.
pub(crate) fn run(args: ServeArgs, warnings: Vec<Problem>) -> Result<(), Failure> {
    let settings = args.process.settings(args.graceful_timeout).map_err(Failure::Usage)?;
    let listeners = serve::listeners(&args)?;
    let exposure = serve::cgi_exposure(&args, &listeners)?;
    let target = serve::log_target(&args)?;
    // Synchronous: the master must have no thread when it forks. Switchable: a reload may
    // change the format or the level, for the master as for the workers.
    let current =
        Arc::new(Mutex::new(logging::sync_logger(args.log_format, args.log_level, &target)));
    let log = Logger::root(Switchable(Arc::clone(&current)), o!());
    serve::log_warnings(&warnings, &log);
    serve::warn_unconfined(exposure, &log);
    serve::raise_nofile(&args, &log);
    let mut master = Master::new(settings, listeners, log.clone())
        .map_err(|e| Failure::Runtime(e.to_string()))?;
    if let Some(path) = &args.process.pid_file {
        master = master.pid_file(path.clone());
    }
    let mut workload = ServeWorkload { args, target, log, current };
    master.run(&mut workload).map_err(|e| Failure::Runtime(e.to_string()))
}

/// A drain that writes through whichever logger is current: the master's logger, which the
/// fcgi-prefork master holds for its whole life, follows a reload's new format and level.
struct Switchable(Arc<Mutex<Logger>>);

impl Drain for Switchable {
    type Ok = ();
    type Err = slog::Never;

    fn log(&self, record: &Record<'_>, values: &OwnedKVList) -> Result<(), slog::Never> {
        // The master has one thread, so the lock is never contended; a poisoned one still
        // holds a usable logger.
        let current = self.0.lock().unwrap_or_else(|p| p.into_inner()).clone();
        Drain::log(&current, record, values)
    }
}

struct ServeWorkload {
    args: ServeArgs,
    target: LogTarget,
    log: Logger,
    /// The logger [`Switchable`] writes through.
    current: Arc<Mutex<Logger>>,
}

impl Workload for ServeWorkload {
    fn run_worker(&mut self, mut worker: Worker) -> i32 {
        let args = &self.args;
        // The worker's own log file handle and logger thread, made after the fork.
        let target = match LogTarget::open(args.process.log_file.as_deref()) {
            Ok(target) => target,
            Err(e) => {
                error!(self.log, "worker cannot open the log file"; "error" => %e);
                return 3;
            }
        };
        let (log, guard) = logging::logger(args.log_format, args.log_level, &target);
        let log = log.new(o!("worker" => worker.id()));
        let reopen_log = log.clone();
        worker.on_reopen_logs(move || {
            if let Err(e) = target.reopen() {
                error!(reopen_log, "cannot reopen the log file"; "error" => %e);
            }
        });
        let code = match args.config() {
            Err(e) => {
                error!(log, "invalid server options"; "error" => e);
                2
            }
            Ok(config) => match serve::server(args, config, worker.take_listeners(), &log) {
                Err(Failure::Usage(e) | Failure::Runtime(e)) => {
                    error!(log, "cannot build the app"; "error" => e);
                    2
                }
                Ok(server) => match worker.serve(server, &log) {
                    Ok(_) => 0,
                    Err(e) => {
                        error!(log, "worker failed"; "error" => %e);
                        1
                    }
                },
            },
        };
        drop(guard);
        code
    }

    fn reload(&mut self, _current: &Settings) -> Result<Settings, String> {
        let argv: Vec<OsString> = std::env::args_os().collect();
        let validated = serve::validated(&argv).map_err(|errors| {
            errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
        })?;
        let args = validated.loaded.args;
        let settings = args.process.settings(args.graceful_timeout)?;
        if (args.log_format, args.log_level) != (self.args.log_format, self.args.log_level) {
            let log = logging::sync_logger(args.log_format, args.log_level, &self.target);
            *self.current.lock().unwrap_or_else(|p| p.into_inner()) = log;
        }
        serve::log_warnings(&validated.warnings, &self.log);
        if args.listen != self.args.listen || args.listen_options() != self.args.listen_options() {
            warn!(
                self.log,
                "the listening sockets change only with a binary upgrade (USR2); \
                kept as they are"
            );
        }
        if args.process.log_file != self.args.process.log_file
            || args.process.pid_file != self.args.process.pid_file
        {
            warn!(self.log, "--log-file and --pid-file change only with a restart or USR2");
        }
        self.args = args;
        Ok(settings)
    }

    fn reopen_logs(&mut self) {
        if let Err(e) = self.target.reopen() {
            error!(self.log, "cannot reopen the log file"; "error" => %e);
        }
    }
}
