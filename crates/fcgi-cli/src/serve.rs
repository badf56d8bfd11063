//! `fcgi serve`: listeners, the app, the server, and the signals that stop it.

use std::time::Duration;

use fcgi_server::{Listener, Server};
use signal_hook::consts::{SIGINT, SIGQUIT, SIGTERM};
use slog::{info, warn, Logger};

use crate::args::ServeArgs;
use crate::{apps, limits, logging, Failure};

/// Runs `fcgi serve` as one process until a signal stops it.
pub(crate) fn run(args: ServeArgs) -> Result<(), Failure> {
    let config = args.config().map_err(Failure::Usage)?;
    let listeners = listeners(&args)?;
    // The logger's thread starts only now, after the sockets exist: a process manager forks
    // before this point.
    let (log, log_guard) = logging::logger(args.log_format, args.log_level);
    match limits::raise_nofile() {
        Ok(limit) if usize::try_from(limit).unwrap_or(usize::MAX) < args.max_conns + 64 => {
            warn!(log,
            "the descriptor limit is below --max-conns; connections past it will be refused";
            "nofile" => limit, "max_conns" => args.max_conns)
        }
        Ok(_) => {}
        Err(e) => warn!(log, "cannot raise the descriptor limit"; "error" => %e),
    }
    let server = server(&args, config, listeners, &log)?;

    let stop = server.shutdown_handle();
    let grace = Duration::from_secs(args.graceful_timeout);
    let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGINT, SIGQUIT])
        .map_err(|e| Failure::Runtime(format!("cannot install signal handlers: {e}")))?;
    let signal_log = log.clone();
    std::thread::Builder::new()
        .name("fcgi-signals".into())
        .spawn(move || {
            let mut stopping = false;
            for signal in signals.forever() {
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
        })
        .map_err(|e| Failure::Runtime(format!("cannot start the signal thread: {e}")))?;

    let report = server.serve().map_err(|e| Failure::Runtime(format!("server failed: {e}")))?;
    drop(log_guard);
    if report.unfinished > 0 {
        eprintln!("fcgi: {} requests were cut short by the graceful timeout", report.unfinished);
    }
    Ok(())
}

/// The server for `args`: its config, the listeners, and the app, built anew in each process
/// that serves (the app is made after any fork, never inherited).
pub(crate) fn server(
    args: &ServeArgs,
    config: fcgi_server::Config,
    listeners: Vec<Listener>,
    log: &Logger,
) -> Result<Server, Failure> {
    let builder = Server::builder().config(config).logger(log.clone());
    let builder = listeners.into_iter().fold(builder, |b, l| b.listener(l));
    Ok(apps::install(args, builder, log).map_err(Failure::Usage)?.build())
}

/// The listening sockets: `--listen`, else systemd's, else fd 0.
pub(crate) fn listeners(args: &ServeArgs) -> Result<Vec<Listener>, Failure> {
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
