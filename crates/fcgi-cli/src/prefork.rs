//! `fcgi serve` with a master: the listeners made once, then fcgi-prefork forks workers that
//! each build the app from the serve arguments; HUP re-reads them (and `--config`).

use fcgi_prefork::{Master, Settings, Worker, Workload};
use slog::{error, o, warn, Logger};

use crate::args::ServeArgs;
use crate::logging::{self, LogTarget};
use crate::{config_file, serve, Failure};

/// Runs the master until it stops.
pub(crate) fn run(args: ServeArgs) -> Result<(), Failure> {
    let settings = args.process.settings(args.graceful_timeout).map_err(Failure::Usage)?;
    let listeners = serve::listeners(&args)?;
    let exposure = serve::cgi_exposure(&args, &listeners)?;
    let target = serve::log_target(&args)?;
    // Synchronous: the master must have no thread when it forks.
    let log = logging::sync_logger(args.log_format, args.log_level, &target);
    serve::warn_unconfined(exposure, &log);
    serve::raise_nofile(&args, &log);
    let mut master = Master::new(settings, listeners, log.clone())
        .map_err(|e| Failure::Runtime(e.to_string()))?;
    if let Some(path) = &args.process.pid_file {
        master = master.pid_file(path.clone());
    }
    let mut workload = ServeWorkload { args, target, log };
    master.run(&mut workload).map_err(|e| Failure::Runtime(e.to_string()))
}

struct ServeWorkload {
    args: ServeArgs,
    target: LogTarget,
    log: Logger,
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
        let args = config_file::serve_args()?;
        args.config()?;
        let settings = args.process.settings(args.graceful_timeout)?;
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
