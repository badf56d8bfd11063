//! One process, no master: it binds, serves, and stops on TERM, INT or QUIT; USR1 reopens its
//! logs; HUP, USR2, TTIN and TTOU, which need a master, are logged and ignored.

use std::collections::BTreeSet;
use std::time::Duration;

use fcgi_prefork::notify::{Notifier, State};
use signal_hook::consts::{SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGTTIN, SIGTTOU, SIGUSR1, SIGUSR2};
use slog::{error, info, warn};

use crate::app::App;
use crate::checks::Problem;
use crate::options::ServeArgs;
use crate::setup::{self, Run};
use crate::{logging, title, Failure};

/// Serves in this process until a signal stops it.
pub(crate) fn run<A: App>(
    run: &Run<A>,
    args: ServeArgs<A::Options>,
    given: &BTreeSet<String>,
    config: fcgi_server::Config,
    warnings: Vec<Problem>,
) -> Result<(), Failure> {
    let privileges = setup::privileges(&args)?;
    let listeners = setup::listeners(&args, privileges.as_ref())?;
    let target = setup::log_target(&args)?;
    let access = setup::access_target(&args)?;
    let slow = setup::slow_target(&args)?;
    let app_name = title::app_in_pool(&run.app.name(&args.app), args.process.pool.as_deref());
    title::set(&run.name, title::Role::Serve { app: &app_name });
    // The logger's thread starts only now, after the sockets exist.
    let (log, log_guard) = logging::logger(args.log_format, args.log_level, &target);
    let log = logging::in_pool(log, args.process.pool.as_deref());
    let (access_log, access_guard) = setup::with_access_log(&log, access.clone(), &args);
    setup::started(run, &args, given, &warnings, &listeners, privileges.as_ref(), &log)?;
    let logs = setup::RequestLogs { slow: slow.as_ref(), access: access_log };
    let server = setup::server(&run.app, &args, given, config, listeners, &log, logs)?;
    if let Some(path) = &args.process.pid_file {
        fcgi_prefork::pidfile::write(path).map_err(|e| {
            Failure::Runtime(format!("cannot write the pid file {}: {e}", path.display()))
        })?;
    }
    // Sockets bound, log, access log and pid file open: from here on, the chosen user.
    let keep_chroot = run.app.chroots_programs(&args.app);
    if let Err(e) = setup::drop_privileges(privileges.as_ref(), keep_chroot, &log) {
        if let Some(path) = &args.process.pid_file {
            fcgi_prefork::pidfile::remove_if_ours(path);
        }
        return Err(Failure::Runtime(e));
    }
    let notifier = Notifier::from_env().unwrap_or_else(|e| {
        warn!(log, "cannot notify systemd: NOTIFY_SOCKET is unusable"; "error" => %e);
        Notifier::default()
    });
    // The sockets listen already: connections queue until serve() accepts them.
    let status = format!("serving: a single process, pid {}", std::process::id());
    if let Err(e) = notifier.notify(State::Ready, &status) {
        warn!(log, "cannot notify systemd"; "error" => %e);
    }

    let stop = server.shutdown_handle();
    let grace = Duration::from_secs(args.graceful_timeout);
    let mut signals = signal_hook::iterator::Signals::new([
        SIGTERM, SIGINT, SIGQUIT, SIGUSR1, SIGHUP, SIGUSR2, SIGTTIN, SIGTTOU,
    ])
    .map_err(|e| Failure::Runtime(format!("cannot install signal handlers: {e}")))?;
    let signal_log = log.clone();
    std::thread::Builder::new()
        .name("fcgi-signals".into())
        .spawn(move || {
            let mut stopping = false;
            for signal in signals.forever() {
                match signal {
                    SIGTERM | SIGINT | SIGQUIT => {
                        // TERM and INT drain; a second one, or QUIT, stops at once.
                        if signal == SIGQUIT || stopping {
                            warn!(signal_log, "fast stop"; "signal" => signal);
                            stop.shutdown(Duration::ZERO);
                        } else {
                            info!(signal_log, "graceful stop"; "signal" => signal, "grace_s" => grace.as_secs());
                            if let Err(e) = notifier.notify(State::Stopping, "stopping: draining") {
                                warn!(signal_log, "cannot notify systemd"; "error" => %e);
                            }
                            stop.shutdown(grace);
                            stopping = true;
                        }
                    }
                    SIGUSR1 => {
                        match target.reopen() {
                            Ok(()) => info!(signal_log, "log file reopened"),
                            Err(e) => error!(signal_log, "cannot reopen the log file"; "error" => %e),
                        }
                        setup::reopen_access_log(access.as_ref(), &signal_log);
                        setup::reopen_slow_log(slow.as_ref(), &signal_log);
                    }
                    _ => warn!(signal_log,
                        "signal ignored: reloads, upgrades and worker counts need a master \
                         (--workers 2+ or --master)"; "signal" => signal),
                }
            }
        })
        .map_err(|e| Failure::Runtime(format!("cannot start the signal thread: {e}")))?;

    let report = server.serve().map_err(|e| Failure::Runtime(format!("server failed: {e}")));
    if let Some(path) = &args.process.pid_file {
        fcgi_prefork::pidfile::remove_if_ours(path);
    }
    let report = report?;
    drop(access_guard);
    drop(log_guard);
    if report.unfinished > 0 {
        eprintln!(
            "{}: {} requests were cut short by the graceful timeout",
            &run.name, report.unfinished
        );
    }
    Ok(())
}
