//! Serving with a master: the listeners made once, then fcgi-prefork forks workers that each
//! install the app's handlers from the serve options; HUP re-reads them (and `--config`).

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use fcgi_prefork::{Master, ProcessModel, Settings, Worker, Workload};
use slog::{error, o, warn, Logger};

use crate::app::App;
use crate::checks::Problem;
use crate::logging::{self, LogTarget};
use crate::options::ServeArgs;
use crate::privileges::{self, Privileges};
use crate::setup::{self, Run};
use crate::{title, validate, Failure};

/// Runs the master until it stops.
pub(crate) fn run<A: App>(
    run: Run<A>,
    args: ServeArgs<A::Options>,
    given: &BTreeSet<String>,
    warnings: Vec<Problem>,
    under_master: bool,
) -> Result<(), Failure> {
    let programs = run.app.runs_programs(&args.app);
    let settings =
        args.process.settings(args.graceful_timeout, programs).map_err(Failure::Usage)?;
    let privileges = setup::privileges(&args)?;
    let listeners = setup::listeners(&args, privileges.as_ref())?;
    let target = setup::log_target(&args)?;
    // Opened here, as root, to fail at start if it cannot be (and to create it); each worker
    // opens its own handle after the fork, as it does for the log file.
    drop(setup::access_target(&args)?);
    drop(setup::slow_target(&args)?);
    set_master_title(&run, &args, &settings);
    // Synchronous: the master must have no thread when it forks. Switchable: a reload may
    // change the format or the level, for the master as for the workers.
    let log = logging::sync_logger(args.log_format, args.log_level, &target, "master");
    let current = Arc::new(Mutex::new(logging::in_pool(log, args.process.pool.as_deref())));
    let log = Logger::root(logging::Switchable(Arc::clone(&current)), o!());
    setup::started(&run, &args, given, &warnings, &listeners, privileges.as_ref(), &log)?;
    // Under a master of pools, that master restarts the pool for a new binary.
    let mut master = Master::new(settings, listeners, log.clone())
        .map_err(|e| Failure::Runtime(e.to_string()))?
        .upgrades(!under_master);
    if let Some(path) = &args.process.pid_file {
        master = master.pid_file(path.clone());
    }
    let given = given.clone();
    let mut workload = ServeWorkload { run, args, given, target, log, current, privileges };
    master.run(&mut workload).map_err(|e| Failure::Runtime(e.to_string()))
}

struct ServeWorkload<A: App> {
    run: Run<A>,
    args: ServeArgs<A::Options>,
    /// The options given explicitly, with `args`.
    given: BTreeSet<String>,
    target: LogTarget,
    log: Logger,
    /// The logger [`Switchable`] writes through.
    current: Arc<Mutex<Logger>>,
    /// What each worker switches to once its log files are open (the master stays root).
    privileges: Option<Privileges>,
}

/// `4 workers`, or for the dynamic model its cap: `up to 8 workers`; for an app that runs
/// programs, its one serving worker.
fn workers_label(settings: &Settings, programs: bool) -> String {
    match settings.model {
        _ if programs => "1 worker".into(),
        ProcessModel::Static if settings.workers == 1 => "1 worker".into(),
        ProcessModel::Static => format!("{} workers", settings.workers),
        ProcessModel::Dynamic => format!("up to {} workers", settings.max_workers),
    }
}

fn set_master_title<A: App>(run: &Run<A>, args: &ServeArgs<A::Options>, settings: &Settings) {
    let workers = workers_label(settings, run.app.runs_programs(&args.app));
    let app = title::app_in_pool(&run.app.name(&args.app), args.process.pool.as_deref());
    title::set(&run.name, title::Role::Master { app: &app, workers: &workers });
}

impl<A: App> Workload for ServeWorkload<A> {
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
        let access = match setup::access_target(args) {
            Ok(access) => access,
            Err(Failure::Usage(e) | Failure::Runtime(e)) => {
                error!(self.log, "worker cannot open the access log"; "error" => e);
                return 3;
            }
        };
        let slow = match setup::slow_target(args) {
            Ok(slow) => slow,
            Err(Failure::Usage(e) | Failure::Runtime(e)) => {
                error!(self.log, "worker cannot open the slow log"; "error" => e);
                return 3;
            }
        };
        let app = title::app_in_pool(&self.run.app.name(&args.app), args.process.pool.as_deref());
        title::set(&self.run.name, title::Role::Worker { id: worker.id(), app: &app });
        let (log, guard) = logging::logger(args.log_format, args.log_level, &target);
        let log = logging::in_pool(log, args.process.pool.as_deref());
        let (access_log, access_guard) = setup::with_access_log(&log, access.clone(), args);
        let log = log.new(o!("worker" => worker.id()));
        // Log files open: from here on (the app included), the chosen user.
        let keep_chroot = self.run.app.chroots_programs(&args.app);
        if let Err(e) = setup::drop_privileges(self.privileges.as_ref(), keep_chroot, &log) {
            error!(log, "worker cannot drop privileges"; "error" => e);
            drop(access_guard);
            drop(guard);
            return 2;
        }
        let reopen_log = log.clone();
        let (reopen_slow, slow) = (slow.clone(), slow.as_ref());
        worker.on_reopen_logs(move || {
            if let Err(e) = target.reopen() {
                error!(reopen_log, "cannot reopen the log file"; "error" => %e);
            }
            setup::reopen_access_log(access.as_ref(), &reopen_log);
            setup::reopen_slow_log(reopen_slow.as_ref(), &reopen_log);
        });
        let code = match args.config() {
            Err(e) => {
                error!(log, "invalid server options"; "error" => e);
                2
            }
            Ok(config) => match setup::server(
                &self.run.app,
                args,
                &self.given,
                config,
                worker.take_listeners(),
                &log,
                setup::RequestLogs { slow, access: access_log },
            ) {
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
        drop(access_guard);
        drop(guard);
        code
    }

    fn reload(&mut self, _current: &Settings) -> Result<Settings, String> {
        let argv = self.run.argv();
        let validated =
            validate::validated(&self.run.command, &self.run.app, &argv).map_err(|errors| {
                errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
            })?;
        let (args, given) = (validated.loaded.args, validated.loaded.given);
        let programs = self.run.app.runs_programs(&args.app);
        let settings = args.process.settings(args.graceful_timeout, programs)?;
        let privileges = privileges::resolve(args.user.as_deref(), args.group.as_deref())
            .map_err(|e| e.to_string())?;
        if (args.log_format, args.log_level) != (self.args.log_format, self.args.log_level) {
            let log = logging::sync_logger(args.log_format, args.log_level, &self.target, "master");
            let log = logging::in_pool(log, args.process.pool.as_deref());
            *self.current.lock().unwrap_or_else(|p| p.into_inner()) = log;
        }
        setup::log_warnings(&validated.warnings, &self.log);
        if args.listen != self.args.listen
            || args.listen_options(None) != self.args.listen_options(None)
        {
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
        if args.access_log != self.args.access_log {
            // Each new worker opens the file; the master only checks that it can be.
            if let Err(Failure::Usage(e) | Failure::Runtime(e)) = setup::access_target(&args) {
                return Err(e);
            }
        }
        set_master_title(&self.run, &args, &settings);
        self.privileges = privileges;
        self.args = args;
        self.given = given;
        Ok(settings)
    }

    fn reopen_logs(&mut self) {
        if let Err(e) = self.target.reopen() {
            error!(self.log, "cannot reopen the log file"; "error" => %e);
        }
        if self.privileges.is_some() {
            // The workers reopen as --user, and may not create files where logs live: the
            // master (root) creates the access and slow logs' new files and hands them to the
            // user first, before it forwards USR1 to them.
            if let Err(Failure::Usage(e) | Failure::Runtime(e)) = setup::access_target(&self.args) {
                error!(self.log, "cannot reopen the access log"; "error" => e);
            }
            if let Err(Failure::Usage(e) | Failure::Runtime(e)) = setup::slow_target(&self.args) {
                error!(self.log, "cannot reopen the slow log"; "error" => e);
            }
            setup::give_log_files(&self.args, self.privileges.as_ref(), &self.log);
        }
    }
}
