//! `fcgi serve`: listeners, the app, the server, and the signals that stop it, in one process;
//! or, with a master (`--workers 2+` and the other process options), through [`crate::prefork`].

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use fcgi_prefork::notify::{Notifier, State};

use fcgi_server::{Listener, Server};
use signal_hook::consts::{SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGTTIN, SIGTTOU, SIGUSR1, SIGUSR2};
use slog::{error, info, warn, Logger};

use crate::access_log::{self, AccessFormat};
use crate::apps::cgi::{exposure, Exposure, OPEN_REFUSED};
use crate::args::{App, ServeArgs};
use crate::checks::{self, Problem, Severity};
use crate::config_file::{self, ConfigError, Loaded};
use crate::logging::LogTarget;
use crate::privileges::{self, Privileges};
use crate::{apps, limits, logging, prefork, title, Failure};

/// Runs `fcgi serve`: as one process, or as a master and its workers; with `--check`, only
/// checks the options. The command line is read again here, with its `--config` file.
pub(crate) fn run() -> Result<(), Failure> {
    let argv: Vec<OsString> = std::env::args_os().collect();
    let Validated { loaded, warnings } = validated(&argv).map_err(usage)?;
    let args = loaded.args;
    if args.check {
        return check(&args, &warnings);
    }
    let config = args.config().map_err(Failure::Usage)?;
    if let Some(path) = &args.process.pid_file {
        refuse_live_pid_file(path)?;
    }
    if args.process.wants_master() {
        return prefork::run(args, warnings);
    }
    single(args, config, warnings)
}

/// The `serve` options with their warnings, checked as far as can be without binding.
pub(crate) struct Validated {
    pub(crate) loaded: Loaded,
    pub(crate) warnings: Vec<Problem>,
}

/// Loads and checks the `serve` options of `argv`: every error found (each bad line of the
/// config file; else options that do nothing, contradictory limits, an unusable spool
/// directory), or the options and their warnings. At start and on each HUP.
pub(crate) fn validated(argv: &[OsString]) -> Result<Validated, Vec<ConfigError>> {
    let mut loaded = config_file::load(argv)?;
    let mut errors = std::mem::take(&mut loaded.line_errors);
    let args = &loaded.args;
    let mut warnings = Vec::new();
    for mut problem in checks::ineffective(args, &loaded.given) {
        match problem.severity {
            Severity::Error => errors.push(loaded.error(problem.message)),
            Severity::Warning => {
                problem.message = loaded.error(problem.message).to_string();
                warnings.push(problem);
            }
        }
    }
    if let Err(e) = args.config() {
        errors.push(loaded.error(e));
    }
    if args.process.wants_master() && args.process.workers > 0 {
        if let Err(e) = args.process.settings(args.graceful_timeout) {
            errors.push(loaded.error(e));
        }
    }
    if let Some(dir) = &args.spool_dir {
        if let Err(e) = check_spool_dir(dir) {
            errors.push(loaded.error(e));
        }
    }
    if args.app == App::Cgi && !args.listen.is_empty() {
        // The gateway's exposure, from the addresses alone (inherited sockets are checked
        // when adopted).
        let tcp = args.listen.iter().any(|a| matches!(a, fcgi_server::ListenAddr::Tcp(_)));
        let allow_list = !args.allow.is_empty()
            || fcgi_server::web_server_addrs_from_env().is_some_and(|(a, _)| !a.is_empty());
        if exposure(args.cgi.cgi_root.is_some(), tcp, allow_list) == Exposure::Open {
            errors.push(loaded.error(OPEN_REFUSED));
        }
    }
    if errors.is_empty() {
        Ok(Validated { loaded, warnings })
    } else {
        Err(errors)
    }
}

/// Every error on a line of its own, for exit status 2.
fn usage(errors: Vec<ConfigError>) -> Failure {
    let mut errors = errors;
    // In the order of the file's lines; errors that no line caused first.
    errors.sort_by_key(ConfigError::line);
    let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
    Failure::Usage(lines.join("\nfcgi: "))
}

/// `--check`: the options passed [`validated`]; say so, with the warnings, and bind nothing.
fn check(args: &ServeArgs, warnings: &[Problem]) -> Result<(), Failure> {
    for warning in warnings {
        eprintln!("fcgi: warning: {}", warning.message);
    }
    match &args.process.config {
        Some(path) => println!("fcgi: configuration ok ({})", path.display()),
        None => println!("fcgi: configuration ok"),
    }
    Ok(())
}

/// Logs the warnings of [`validated`], each with its option in the field `option`.
pub(crate) fn log_warnings(warnings: &[Problem], log: &Logger) {
    for warning in warnings {
        warn!(log, "an option does nothing here"; "option" => &warning.option,
            "detail" => &warning.message);
    }
}

/// Refuses to start when the pid file names a live fcgi process (another server runs with this
/// configuration, and overwriting its pid file would leave it unreachable by its scripts). A
/// pid file that names no process, or a process that is no fcgi (a reused pid), is stale and
/// overwritten. The master that started this one (an upgrade, USR2) does not count.
fn refuse_live_pid_file(path: &Path) -> Result<(), Failure> {
    let Some(pid) = fcgi_prefork::pidfile::read(path) else { return Ok(()) };
    // SAFETY: getppid has no memory effects.
    let parent = u32::try_from(unsafe { libc::getppid() }).unwrap_or(0);
    if pid == std::process::id() || pid == parent {
        return Ok(());
    }
    let proc = PathBuf::from(format!("/proc/{pid}"));
    if !proc.exists() {
        return Ok(());
    }
    let exe = std::fs::read_link(proc.join("exe")).ok();
    let exe_name = exe.as_deref().and_then(Path::file_name).and_then(|n| n.to_str());
    let comm = std::fs::read_to_string(proc.join("comm")).ok();
    let own = std::env::current_exe().ok();
    let own_name =
        own.as_deref().and_then(Path::file_name).and_then(|n| n.to_str()).unwrap_or("fcgi");
    if is_fcgi(exe_name, comm.as_deref().map(str::trim), own_name) {
        return Err(Failure::Usage(format!(
            "the pid file {} names a running fcgi process (pid {pid}): another server runs \
             with it; stop that one, or give another --pid-file",
            path.display()
        )));
    }
    Ok(())
}

/// Whether a process with this executable file name (from /proc/PID/exe, if readable) and
/// command name (/proc/PID/comm) is an fcgi server, this binary being named `own_name`.
fn is_fcgi(exe_name: Option<&str>, comm: Option<&str>, own_name: &str) -> bool {
    // The kernel keeps the first 15 bytes of the name in comm.
    let own_comm: String = own_name.chars().take(15).collect();
    let exe_name = exe_name.map(|n| n.trim_end_matches(" (deleted)"));
    // A process title (`fcgi: worker 3`) may have replaced the name; other programs whose name
    // starts with fcgi (fcgiwrap) are not us.
    exe_name == Some(own_name)
        || comm.is_some_and(|c| c == own_comm || c.starts_with("fcgi:") || c.starts_with("fcgi "))
}

/// One process: it accepts and serves; TERM, INT, QUIT and USR1 as for a master, and HUP, USR2,
/// TTIN and TTOU (which need a master) logged and ignored.
fn single(
    args: ServeArgs,
    config: fcgi_server::Config,
    warnings: Vec<Problem>,
) -> Result<(), Failure> {
    let privileges = privileges(&args)?;
    let listeners = listeners(&args)?;
    let exposure = cgi_exposure(&args, &listeners)?;
    let target = log_target(&args)?;
    let access = access_target(&args)?;
    let slow = slow_target(&args)?;
    title::set(title::Role::Serve { app: app_name(&args) });
    // The logger's thread starts only now, after the sockets exist.
    let (log, log_guard) = logging::logger(args.log_format, args.log_level, &target);
    let (log, access_guard) = with_access_log(log, access.clone(), &args);
    log_warnings(&warnings, &log);
    warn_unconfined(exposure, &log);
    warn_cgi_as_root(&args, &log);
    give_log_files(&args, privileges.as_ref(), &log);
    raise_nofile(&args, &log);
    let server = server(&args, config, listeners, &log, slow.as_ref())?;
    if let Some(path) = &args.process.pid_file {
        fcgi_prefork::pidfile::write(path).map_err(|e| {
            Failure::Runtime(format!("cannot write the pid file {}: {e}", path.display()))
        })?;
    }
    // Sockets bound, log, access log and pid file open: from here on, the chosen user.
    if let Err(e) = drop_privileges(privileges.as_ref(), &log) {
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
                        reopen_access_log(access.as_ref(), &signal_log);
                        reopen_slow_log(slow.as_ref(), &signal_log);
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
/// that serves (the app is made after any fork, never inherited); its slow lines go to `slow`
/// when there is a `--slow-log` file.
pub(crate) fn server(
    args: &ServeArgs,
    config: fcgi_server::Config,
    listeners: Vec<Listener>,
    log: &Logger,
    slow: Option<&LogTarget>,
) -> Result<Server, Failure> {
    // The signals are this process's own (`serve`): --graceful-timeout, QUIT, USR1.
    let mut builder = Server::builder().config(config).logger(log.clone()).handle_signals(false);
    if let Some(target) = slow {
        builder = builder.slow_logger(logging::file_logger(args.log_format, target));
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
    Listener::inherited(0).map(|l| vec![l]).map_err(|e| {
        Failure::Usage(format!(
            "no --listen given, and {e} (start under a web server or spawn-fcgi, or pass --listen)"
        ))
    })
}

/// The identity `--user` and `--group` name (resolved now, before anything is bound: an unknown
/// name or a non-root process asked to switch is a usage error, exit status 2).
pub(crate) fn privileges(args: &ServeArgs) -> Result<Option<Privileges>, Failure> {
    privileges::resolve(args.user.as_deref(), args.group.as_deref())
        .map_err(|e| Failure::Usage(e.to_string()))
}

/// Switches to `privileges`, if any, and logs it.
pub(crate) fn drop_privileges(privileges: Option<&Privileges>, log: &Logger) -> Result<(), String> {
    let Some(privileges) = privileges else { return Ok(()) };
    privileges.drop_now().map_err(|e| e.to_string())?;
    info!(log, "privileges dropped"; "user" => &privileges.user, "uid" => privileges.uid,
        "gid" => privileges.gid, "groups" => format!("{:?}", privileges.groups));
    Ok(())
}

/// The start-up warning for CGI programs that would run as root.
pub(crate) fn warn_cgi_as_root(args: &ServeArgs, log: &Logger) {
    // SAFETY: geteuid cannot fail and touches no memory of ours.
    let euid = unsafe { libc::geteuid() };
    if privileges::warns_cgi_as_root(euid, args.app == App::Cgi, args.user.is_some()) {
        warn!(log, "running as root with the CGI gateway and no --user: every CGI program \
            will run as root (give --user, e.g. --user www-data)"; "uid" => euid);
    }
}

/// The app's name as given on the command line (`hello`), for process titles.
pub(crate) fn app_name(args: &ServeArgs) -> &'static str {
    match args.app {
        App::Hello => "hello",
        App::Echo => "echo",
        App::Cgi => "cgi",
    }
}

/// The file `--access-log FILE` names, opened for appending (as root, before the switch), or
/// `None` when the access log goes to the main log or is off.
pub(crate) fn access_target(args: &ServeArgs) -> Result<Option<LogTarget>, Failure> {
    let Some(Some(path)) = &args.access_log else { return Ok(None) };
    LogTarget::open(Some(path)).map(Some).map_err(|e| {
        Failure::Runtime(format!("cannot open the access log {}: {e}", path.display()))
    })
}

/// The file `--slow-log FILE` names, opened for appending (as root, before the switch, as the
/// access log), or `None` when slow lines go to the main log.
pub(crate) fn slow_target(args: &ServeArgs) -> Result<Option<LogTarget>, Failure> {
    let Some(path) = &args.slow_log else { return Ok(None) };
    LogTarget::open(Some(path))
        .map(Some)
        .map_err(|e| Failure::Runtime(format!("cannot open the slow log {}: {e}", path.display())))
}

/// `log` with the request records sent to `access`, when there is a file; the guard flushes
/// its queue when dropped.
pub(crate) fn with_access_log(
    log: Logger,
    access: Option<LogTarget>,
    args: &ServeArgs,
) -> (Logger, Option<slog_async::AsyncGuard>) {
    match access {
        None => (log, None),
        Some(target) => {
            let format: AccessFormat = args.access_log_format.clone();
            let (log, guard) = access_log::attach(log, target, format);
            (log, Some(guard))
        }
    }
}

/// Reopens the access log's file (USR1), logging the outcome.
pub(crate) fn reopen_access_log(access: Option<&LogTarget>, log: &Logger) {
    let Some(access) = access else { return };
    match access.reopen() {
        Ok(()) => info!(log, "access log reopened"),
        Err(e) => error!(log, "cannot reopen the access log"; "error" => %e),
    }
}

/// Reopens the slow log's file (USR1), logging the outcome.
pub(crate) fn reopen_slow_log(slow: Option<&LogTarget>, log: &Logger) {
    let Some(slow) = slow else { return };
    match slow.reopen() {
        Ok(()) => info!(log, "slow log reopened"),
        Err(e) => error!(log, "cannot reopen the slow log"; "error" => %e),
    }
}

/// Hands the log file, the access log and the slow log files to the user `--user` names (regular files only),
/// so that the process, once switched, can open them again on USR1. As nginx does for its
/// workers: the user can then write its own logs, which it does anyway.
pub(crate) fn give_log_files(args: &ServeArgs, privileges: Option<&Privileges>, log: &Logger) {
    let Some(privileges) = privileges else { return };
    let access = match &args.access_log {
        Some(Some(path)) => Some(path.as_path()),
        _ => None,
    };
    let slow = args.slow_log.as_deref();
    for path in [args.process.log_file.as_deref(), access, slow].into_iter().flatten() {
        if !std::fs::metadata(path).is_ok_and(|m| m.is_file()) {
            continue;
        }
        if let Err(e) = std::os::unix::fs::chown(path, Some(privileges.uid), Some(privileges.gid)) {
            warn!(log, "cannot give a log file to --user; reopening it on USR1 may fail";
                "path" => %path.display(), "error" => %e);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn which_processes_are_fcgi() {
        let cases = [
            (Some("fcgi"), Some("fcgi"), "fcgi", true),
            (Some("fcgi (deleted)"), Some("fcgi"), "fcgi", true),
            (None, Some("fcgi: master"), "fcgi", true),
            (None, Some("fcgi-rs-custom-"), "fcgi-rs-custom-build", true),
            (Some("bash"), Some("bash"), "fcgi", false),
            (None, None, "fcgi", false),
            (Some("sleep"), Some("sleep"), "fcgi", false),
            (Some("fcgiwrap"), Some("fcgiwrap"), "fcgi", false),
        ];
        for (exe, comm, own, expected) in cases {
            assert_eq!(is_fcgi(exe, comm, own), expected, "{exe:?} {comm:?} {own}");
        }
    }
}
