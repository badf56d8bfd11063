//! The steps of setting up a run that the single process and the master both take: the
//! listening sockets, the log files, privileges, the descriptor limit, the pid file, and the
//! server each process that serves builds.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::{Args, Command};
use fcgi_server::{AccessLog, Listener, Server};
use slog::{error, info, warn, Logger};

use crate::app::App;
use crate::checks::Problem;
use crate::logging::access_log::{self, AccessFormat};
use crate::logging::{self, LogTarget};
use crate::options::ServeArgs;
use crate::privileges::{self, Privileges};
use crate::{limits, validate, Failure};

/// What every step of a run needs beside the options: the program's name (which messages and
/// titles start with), its command line (read again on a reload), and the app.
pub(crate) struct Run<A> {
    pub(crate) name: String,
    /// The serve command's definition.
    pub(crate) command: Command,
    /// The words before the serve options, the program's name included (`fcgi serve`: 2).
    pub(crate) skip: usize,
    pub(crate) app: A,
}

impl<A> Run<A> {
    /// The serve options of this process's command line, as at start.
    pub(crate) fn argv(&self) -> Vec<std::ffi::OsString> {
        std::env::args_os().skip(self.skip).collect()
    }
}

/// The steps once the sockets exist and the log is open, in the single process and the
/// master alike: the warnings logged, the app's own start-up check (its error refuses to
/// start, exit status 2), the log files handed to `--user`, the descriptor limit raised.
pub(crate) fn started<A: App>(
    run: &Run<A>,
    args: &ServeArgs<A::Options>,
    given: &BTreeSet<String>,
    warnings: &[Problem],
    listeners: &[Listener],
    privileges: Option<&Privileges>,
    log: &Logger,
) -> Result<(), Failure> {
    log_warnings(warnings, log);
    run.app
        .started(&args.app, &validate::serving(args, given), listeners, log)
        .map_err(Failure::Usage)?;
    give_log_files(args, privileges, log);
    raise_nofile(args, log);
    Ok(())
}

/// Logs the warnings of [`crate::validate::validated`], each with its option in the field
/// `option`.
pub(crate) fn log_warnings(warnings: &[Problem], log: &Logger) {
    for warning in warnings {
        warn!(log, "an option does nothing here"; "option" => &warning.option,
            "detail" => &warning.message);
    }
}

/// Refuses to start when the pid file names a live process of this program (another server
/// runs with this configuration, and overwriting its pid file would leave it unreachable by
/// its scripts). A pid file that names no process, or a process of another program (a reused
/// pid), is stale and overwritten. The master that started this one (an upgrade, USR2) does
/// not count.
pub(crate) fn refuse_live_pid_file(path: &Path, program: &str) -> Result<(), Failure> {
    let Some(pid) = fcgi_prefork::pidfile::read(path) else { return Ok(()) };
    let parent = std::os::unix::process::parent_id();
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
        own.as_deref().and_then(Path::file_name).and_then(|n| n.to_str()).unwrap_or(program);
    if is_ours(exe_name, comm.as_deref().map(str::trim), own_name, program) {
        return Err(Failure::Usage(format!(
            "the pid file {} names a running {program} process (pid {pid}): another server \
             runs with it; stop that one, or give another --pid-file",
            path.display()
        )));
    }
    Ok(())
}

/// Whether a process with this executable file name (from /proc/PID/exe, if readable) and
/// command name (/proc/PID/comm) is a server of this program, its binary named `own_name` and
/// its titles starting with `program` (`fcgi: worker 3`, `fcgi worker 3`).
fn is_ours(exe_name: Option<&str>, comm: Option<&str>, own_name: &str, program: &str) -> bool {
    // The kernel keeps the first 15 bytes of the name in comm.
    let own_comm: String = own_name.chars().take(15).collect();
    let exe_name = exe_name.map(|n| n.trim_end_matches(" (deleted)"));
    // A process title (`fcgi: worker 3`) may have replaced the name; other programs whose name
    // starts with ours (fcgiwrap) are not us.
    let titled = |c: &str| {
        c.strip_prefix(program).is_some_and(|rest| rest.starts_with(':') || rest.starts_with(' '))
    };
    exe_name == Some(own_name) || comm.is_some_and(|c| c == own_comm || titled(c))
}

/// Where the logs go (`--log-file`, else standard error).
pub(crate) fn log_target<O: Args>(args: &ServeArgs<O>) -> Result<LogTarget, Failure> {
    LogTarget::open(args.process.log_file.as_deref()).map_err(|e| {
        let path = args.process.log_file.as_deref().unwrap_or(std::path::Path::new("-"));
        Failure::Runtime(format!("cannot open the log file {}: {e}", path.display()))
    })
}

/// Raises the descriptor limit, warning when it stays below what --max-conns needs.
pub(crate) fn raise_nofile<O: Args>(args: &ServeArgs<O>, log: &Logger) {
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

/// The server for `args`: its config, the listeners, and the app's handlers, installed anew in
/// each process that serves (the app is made after any fork, never inherited); its slow
/// lines go to `slow` when there is a `--slow-log` file.
pub(crate) fn server<A: App>(
    app: &A,
    args: &ServeArgs<A::Options>,
    given: &BTreeSet<String>,
    mut config: fcgi_server::Config,
    listeners: Vec<Listener>,
    log: &Logger,
    logs: RequestLogs<'_>,
) -> Result<Server, Failure> {
    let RequestLogs { slow, access } = logs;
    let programs = app.runs_programs(&args.app);
    if programs && !given.contains("max-threads") {
        let processes = validate::processes(args, given);
        // Spare counts given on the command line must stay valid (`--min-spare 8` alone).
        let spare = [("min-spare", config.min_spare), ("max-spare", config.max_spare)]
            .into_iter()
            .filter(|(name, _)| given.contains(*name))
            .map(|(_, n)| n)
            .max();
        config.max_threads = program_threads(processes.max(), spare);
        if !given.contains("max-spare") {
            config.max_spare = config.max_spare.min(config.max_threads);
        }
        if !given.contains("min-spare") {
            config.min_spare = config.min_spare.min(config.max_spare);
        }
    }
    // The signals are this process's own (single.rs, or the worker's): --graceful-timeout,
    // QUIT, USR1, HUP.
    let mut builder = Server::builder().config(config).logger(log.clone()).handle_signals(false);
    if let Some(access) = access {
        builder = builder.access_log(access);
    }
    if let Some(target) = slow {
        let slow_log = logging::file_logger(args.log_format, target);
        builder = builder.slow_logger(logging::in_pool(slow_log, args.process.pool.as_deref()));
    }
    let builder = listeners.into_iter().fold(builder, |b, l| b.listener(l));
    let builder = if programs {
        let processes = validate::processes(args, given);
        app.install_programs(&args.app, &processes, builder, log)
    } else {
        app.install(&args.app, builder, log)
    };
    Ok(builder.map_err(Failure::Usage)?.build())
}

/// The threads for an app that runs up to `programs` program processes, when --max-threads
/// is not given: one per process. A request holds a thread only while its program answers it
/// (its body is whole before it starts); a thread more would take a request only to wait for
/// a process, and the waiting turns into a sleep and a wake-up per request once the processes
/// are all busy (measured: 10-15 % of the requests/s through nginx with one spare). Requests
/// beyond wait in the server's queue instead, where a thread that frees takes the next
/// without sleeping, as they would in PHP-FPM's listen queue (which the status page shows).
/// At least the larger of a given `--min-spare` and `--max-spare`, neither of which may
/// exceed the threads.
fn program_threads(programs: usize, spare: Option<usize>) -> usize {
    programs.max(spare.unwrap_or(0)).max(1)
}

/// The listening sockets: those an upgrading master handed over, else `--listen` (made for
/// the `privileges` the server switches to: [`ServeArgs::listen_options`]), else systemd's,
/// else fd 0.
pub(crate) fn listeners<O: Args>(
    args: &ServeArgs<O>,
    privileges: Option<&Privileges>,
) -> Result<Vec<Listener>, Failure> {
    if let Some(inherited) =
        fcgi_prefork::inherited_listeners().map_err(|e| Failure::Runtime(e.to_string()))?
    {
        return Ok(inherited);
    }
    let options = args.listen_options(privileges.map(|p| (p.uid, p.gid)));
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
pub(crate) fn privileges<O: Args>(args: &ServeArgs<O>) -> Result<Option<Privileges>, Failure> {
    privileges::resolve(args.user.as_deref(), args.group.as_deref())
        .map_err(|e| Failure::Usage(e.to_string()))
}

/// Switches to `privileges`, if any (keeping CAP_SYS_CHROOT when `keep_chroot`: see
/// [`Privileges::drop_now`]), and logs it.
pub(crate) fn drop_privileges(
    privileges: Option<&Privileges>,
    keep_chroot: bool,
    log: &Logger,
) -> Result<(), String> {
    let Some(privileges) = privileges else { return Ok(()) };
    privileges.drop_now(keep_chroot).map_err(|e| e.to_string())?;
    info!(log, "privileges dropped"; "user" => &privileges.user, "uid" => privileges.uid,
        "gid" => privileges.gid, "groups" => format!("{:?}", privileges.groups),
        "kept" => if keep_chroot && privileges.uid != 0 { "CAP_SYS_CHROOT" } else { "" });
    Ok(())
}

/// The file `--access-log FILE` names, opened for appending (as root, before the switch), or
/// `None` when the access log goes to the main log or is off.
pub(crate) fn access_target<O: Args>(args: &ServeArgs<O>) -> Result<Option<LogTarget>, Failure> {
    let Some(Some(path)) = &args.access_log else { return Ok(None) };
    LogTarget::open(Some(path)).map(Some).map_err(|e| {
        Failure::Runtime(format!("cannot open the access log {}: {e}", path.display()))
    })
}

/// The logs of requests a server writes beside its main log, when they have files of their
/// own: the slow log's file, and the access log ([`with_access_log`]).
pub(crate) struct RequestLogs<'a> {
    pub(crate) slow: Option<&'a LogTarget>,
    pub(crate) access: Option<Arc<dyn AccessLog>>,
}

/// The file `--slow-log FILE` names, opened for appending (as root, before the switch, as the
/// access log), or `None` when slow lines go to the main log.
pub(crate) fn slow_target<O: Args>(args: &ServeArgs<O>) -> Result<Option<LogTarget>, Failure> {
    let Some(path) = &args.slow_log else { return Ok(None) };
    LogTarget::open(Some(path))
        .map(Some)
        .map_err(|e| Failure::Runtime(format!("cannot open the slow log {}: {e}", path.display())))
}

/// The access log that writes the request records to `access`, when there is a file (lost
/// lines reported to `log`); the guard flushes its queue when dropped. Without a file the
/// server logs the records to `log` itself.
pub(crate) fn with_access_log<O: Args>(
    log: &Logger,
    access: Option<LogTarget>,
    args: &ServeArgs<O>,
) -> (Option<Arc<dyn AccessLog>>, Option<slog_async::AsyncGuard>) {
    match access {
        None => (None, None),
        Some(target) => {
            let format: AccessFormat = args.access_log_format.clone();
            let (access, guard) = access_log::attach(log.clone(), target, format);
            (Some(access), Some(guard))
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
pub(crate) fn give_log_files<O: Args>(
    args: &ServeArgs<O>,
    privileges: Option<&Privileges>,
    log: &Logger,
) {
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
            assert_eq!(is_ours(exe, comm, own, "fcgi"), expected, "{exe:?} {comm:?} {own}");
        }
    }

    #[test]
    fn threads_for_program_processes() {
        // (programs, the larger given --min-spare or --max-spare, threads)
        let cases = [
            (1, None, 1),
            (4, None, 4),
            (64, None, 64),
            (4, Some(16), 16),
            (4, Some(2), 4),
            (0, None, 1),
        ];
        for (programs, spare, expected) in cases {
            assert_eq!(program_threads(programs, spare), expected, "{programs} {spare:?}");
        }
    }
}
