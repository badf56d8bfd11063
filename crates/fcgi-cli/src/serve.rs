//! `fcgi serve`: listeners, the app, the server, and the signals that stop it, in one process;
//! or, with a master (`--workers 2+` and the other process options), through [`crate::prefork`].

use std::path::Path;
use std::time::Duration;

use fcgi_server::{Listener, Server};
use signal_hook::consts::{SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGTTIN, SIGTTOU, SIGUSR1, SIGUSR2};
use slog::{error, info, warn, Logger};

use crate::apps::cgi::{exposure, Exposure, OPEN_REFUSED};
use crate::args::{App, ServeArgs};
use crate::logging::LogTarget;
use crate::{apps, config_file, limits, logging, prefork, Failure};

/// Runs `fcgi serve`: as one process, or as a master and its workers.
pub(crate) fn run(args: ServeArgs) -> Result<(), Failure> {
    let args = match args.process.config {
        Some(_) => config_file::serve_args().map_err(Failure::Usage)?,
        None => args,
    };
    let config = args.config().map_err(Failure::Usage)?;
    if let Some(dir) = &args.spool_dir {
        check_spool_dir(dir).map_err(Failure::Usage)?;
    }
    if args.process.wants_master() {
        return prefork::run(args);
    }
    single(args, config)
}

/// One process: it accepts and serves; TERM, INT, QUIT and USR1 as for a master, and HUP, USR2,
/// TTIN and TTOU (which need a master) logged and ignored.
fn single(args: ServeArgs, config: fcgi_server::Config) -> Result<(), Failure> {
    let listeners = listeners(&args)?;
    let exposure = cgi_exposure(&args, &listeners)?;
    let target = log_target(&args)?;
    // The logger's thread starts only now, after the sockets exist.
    let (log, log_guard) = logging::logger(args.log_format, args.log_level, &target);
    warn_unconfined(exposure, &log);
    raise_nofile(&args, &log);
    let server = server(&args, config, listeners, &log)?;
    if let Some(path) = &args.process.pid_file {
        fcgi_prefork::pidfile::write(path).map_err(|e| {
            Failure::Runtime(format!("cannot write the pid file {}: {e}", path.display()))
        })?;
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
                            stop.shutdown(grace);
                            stopping = true;
                        }
                    }
                    SIGUSR1 => match target.reopen() {
                        Ok(()) => info!(signal_log, "log file reopened"),
                        Err(e) => error!(signal_log, "cannot reopen the log file"; "error" => %e),
                    },
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
    drop(log_guard);
    if report.unfinished > 0 {
        eprintln!("fcgi: {} requests were cut short by the graceful timeout", report.unfinished);
    }
    Ok(())
}

/// Whether `--spool-dir` can hold request bodies: it exists, is a directory, and a file can be
/// created in it (and removed). Checked at start, because the spool only needs it for the first
/// body past `--spool-memory`, and then every such request would fail.
pub(crate) fn check_spool_dir(dir: &Path) -> Result<(), String> {
    let shown = dir.display();
    let meta = std::fs::metadata(dir).map_err(|e| format!("--spool-dir {shown}: {e}"))?;
    if !meta.is_dir() {
        return Err(format!("--spool-dir {shown}: not a directory"));
    }
    let probe = dir.join(format!(".fcgi-spool-check-{}", std::process::id()));
    std::fs::OpenOptions::new().write(true).create_new(true).open(&probe).map_err(|e| {
        format!("--spool-dir {shown}: not writable (cannot create a file in it: {e})")
    })?;
    std::fs::remove_file(&probe)
        .map_err(|e| format!("--spool-dir {shown}: cannot remove a file created in it: {e}"))
}

/// How confined the CGI gateway is (see [`Exposure`]); an error when it would be open to
/// anyone, which `fcgi serve` refuses at start (exit status 2).
pub(crate) fn cgi_exposure(args: &ServeArgs, listeners: &[Listener]) -> Result<Exposure, Failure> {
    if args.app != App::Cgi {
        return Ok(Exposure::Confined);
    }
    let tcp = listeners.iter().any(Listener::is_tcp);
    let allow_list = !args.allow.is_empty()
        || fcgi_server::web_server_addrs_from_env().is_some_and(|(addrs, _)| !addrs.is_empty());
    match exposure(args.cgi.cgi_root.is_some(), tcp, allow_list) {
        Exposure::Open => Err(Failure::Usage(OPEN_REFUSED.to_owned())),
        other => Ok(other),
    }
}

/// The start-up warning for a gateway without `--cgi-root`.
pub(crate) fn warn_unconfined(exposure: Exposure, log: &Logger) {
    if exposure == Exposure::Unconfined {
        warn!(log, "the CGI gateway has no --cgi-root: any executable file a peer names may run \
            (give --cgi-root DIR, or --cgi-root / to say so on purpose)";
            "cgi_root" => "none", "confinement" => "none");
    }
}

/// Where the logs go (`--log-file`, else standard error).
pub(crate) fn log_target(args: &ServeArgs) -> Result<LogTarget, Failure> {
    LogTarget::open(args.process.log_file.as_deref()).map_err(|e| {
        let path = args.process.log_file.as_deref().unwrap_or(std::path::Path::new("-"));
        Failure::Runtime(format!("cannot open the log file {}: {e}", path.display()))
    })
}

/// Raises the descriptor limit, warning when it stays below what --max-conns needs.
pub(crate) fn raise_nofile(args: &ServeArgs, log: &Logger) {
    match limits::raise_nofile() {
        Ok(limit) if usize::try_from(limit).unwrap_or(usize::MAX) < args.max_conns + 64 => {
            warn!(log,
            "the descriptor limit is below --max-conns; connections past it will be refused";
            "nofile" => limit, "max_conns" => args.max_conns)
        }
        Ok(_) => {}
        Err(e) => warn!(log, "cannot raise the descriptor limit"; "error" => %e),
    }
}

/// The server for `args`: its config, the listeners, and the app, built anew in each process
/// that serves (the app is made after any fork, never inherited).
pub(crate) fn server(
    args: &ServeArgs,
    config: fcgi_server::Config,
    listeners: Vec<Listener>,
    log: &Logger,
) -> Result<Server, Failure> {
    let mut builder = Server::builder().config(config).logger(log.clone());
    if let Some(path) = &args.slow_log {
        let target = LogTarget::open(Some(path)).map_err(|e| {
            Failure::Runtime(format!("cannot open the slow log {}: {e}", path.display()))
        })?;
        builder = builder.slow_logger(logging::file_logger(args.log_format, &target));
    }
    let builder = listeners.into_iter().fold(builder, |b, l| b.listener(l));
    Ok(apps::install(args, builder, log).map_err(Failure::Usage)?.build())
}

/// The listening sockets: those an upgrading master handed over, else `--listen`, else
/// systemd's, else fd 0.
pub(crate) fn listeners(args: &ServeArgs) -> Result<Vec<Listener>, Failure> {
    if let Some(inherited) =
        fcgi_prefork::inherited_listeners().map_err(|e| Failure::Runtime(e.to_string()))?
    {
        return Ok(inherited);
    }
    let options = args.listen_options();
    if !args.listen.is_empty() {
        return args
            .listen
            .iter()
            .map(|addr| Listener::bind(addr, &options).map_err(|e| Failure::Runtime(e.to_string())))
            .collect();
    }
    let inherited = Listener::from_systemd().map_err(|e| Failure::Runtime(e.to_string()))?;
    if !inherited.is_empty() {
        return Ok(inherited);
    }
    Listener::from_fd(0).map(|l| vec![l]).map_err(|e| {
        Failure::Usage(format!(
            "no --listen given, and {e} (start under a web server or spawn-fcgi, or pass --listen)"
        ))
    })
}
