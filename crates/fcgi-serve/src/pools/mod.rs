//! The master of a file's pools: `fcgi serve --config FILE` of a file with `[NAME]` sections,
//! without `--pool`. It checks every pool, writes the pid file, and runs each pool's own
//! master ([`child`]: this binary again with `--pool NAME`), so that the pools share nothing
//! but their log: each has its processes, queue, memory and limits, and one that crashes,
//! hangs or is overloaded leaves the others as they were.
//!
//! A pool, as this master sees it:
//!
//! ```text
//!                 started              READY=1
//!   waiting ─────────────▶ starting ─────────────▶ serving ◀───────┐
//!      ▲                      │                     │  HUP         │ READY=1
//!      │ back-off        exited│                     ▼              │
//!      └──────────────── exited ◀──────────────── reloading ───────┘
//! ```
//!
//! A pool master that exits unasked is started again, at once the first time and then after a
//! doubling delay (100 ms up to 30 s) while it keeps dying young, for ever: a pool that cannot
//! start never stops the others, and comes back by itself once what broke it is fixed.
//!
//! Signals: TERM and INT drain every pool and stop (a second one stops them at once, as it
//! does a pool's master), QUIT stops them at once; USR1 reopens this master's log and every
//! pool's logs; HUP re-reads the file and, if every pool in it passes the check, applies
//! [`plan`]'s change to each pool (unchanged pools are not touched); an invalid file is
//! refused whole and the pools keep running. USR2, TTIN and TTOU concern one pool: they are
//! for its master's pid. systemd hears `READY=1` once every pool serves; the sockets of a
//! systemd socket unit go each to the pool whose `listen` names its address ([`child`]).

mod child;
mod plan;

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use std::os::fd::{AsRawFd, RawFd};

use clap::Command;
use fcgi_prefork::backoff::Backoff;
use fcgi_prefork::notify::{Notifier, State};
use fcgi_server::{ListenAddr, Listener};
use slog::{error, info, warn, Logger};

use crate::app::App;
use crate::config_file::{self, ConfigError, PoolOptions};
use crate::logging::{self, LogFormat, LogLevel, LogTarget};
use crate::validate::{self, Validated};
use crate::{setup, title, Failure};
use signal_hook::consts::{
    SIGHUP, SIGINT, SIGKILL, SIGQUIT, SIGTERM, SIGTTIN, SIGTTOU, SIGUSR1, SIGUSR2,
};

pub(crate) use child::ENV_MASTER;
use child::{PoolMaster, Said};
use plan::Change;

/// The longest this master sleeps: how soon it sees a pool master's word or exit.
const TICK: Duration = Duration::from_millis(100);
/// How long past the graceful timeout a stopping pool master may take before it is killed:
/// its own master kills its workers at the graceful timeout, and then exits.
const KILL_AFTER: Duration = Duration::from_secs(10);

/// What a file's pools share, from their check: the master's log, and how long a stop drains.
#[derive(Debug)]
pub(crate) struct Checked {
    pub(crate) warnings: Vec<String>,
    log_file: Option<PathBuf>,
    log_format: LogFormat,
    log_level: LogLevel,
    graceful_timeout: Duration,
}

/// Checks every pool of a config file as `--pool NAME` would run it (`argv`, the serve
/// options, with `--pool NAME` added), each with a `--listen` of its own and no two on one
/// socket. Each error is a line of its own: a bad line of the shared part once, every other
/// error with its pool (`[www] ...`).
pub(crate) fn check<A: App>(
    command: &Command,
    app: &A,
    argv: &[OsString],
    pools: &[String],
) -> Result<Checked, Vec<String>> {
    let (mut errors, mut warnings) = (Vec::<String>::new(), Vec::new());
    let mut sockets: BTreeMap<String, &str> = BTreeMap::new();
    let mut shared = None;
    for pool in pools {
        let argv: Vec<OsString> =
            argv.iter().cloned().chain(["--pool".into(), pool.into()]).collect();
        match validate::validated(command, app, &argv) {
            Ok(Validated { loaded, warnings: found }) => {
                warnings.extend(found.into_iter().map(|w| format!("[{pool}] {}", w.message)));
                let args = &loaded.args;
                if args.listen.is_empty() {
                    errors.push(format!(
                        "[{pool}] no --listen: each pool of a file names its own socket (a \
                         pool that inherits its sockets is checked with --pool {pool} --check)"
                    ));
                }
                for listen in &args.listen {
                    if let Some(other) = sockets.insert(listen.to_string(), pool) {
                        errors.push(format!(
                            "[{pool}] --listen {listen}: pool [{other}] listens there too"
                        ));
                    }
                }
                shared.get_or_insert_with(|| Checked {
                    warnings: Vec::new(),
                    log_file: args.process.log_file.clone(),
                    log_format: args.log_format,
                    log_level: args.log_level,
                    graceful_timeout: Duration::from_secs(args.graceful_timeout),
                });
            }
            Err(found) => {
                for error in found {
                    let text = match error {
                        ConfigError::Line { .. } => error.to_string(),
                        _ => format!("[{pool}] {error}"),
                    };
                    if !errors.contains(&text) {
                        errors.push(text);
                    }
                }
            }
        }
    }
    match shared {
        Some(mut checked) if errors.is_empty() => {
            checked.warnings = warnings;
            Ok(checked)
        }
        _ => Err(errors),
    }
}

/// Runs the master of the pools of the file at `path` (`pools`, its sections) until it stops:
/// `argv` are the serve options, `pid_file` the command line's `--pid-file`.
pub(crate) fn run<A: App>(
    program: &str,
    command: &Command,
    app: &A,
    argv: &[OsString],
    path: &Path,
    pools: &[String],
    pid_file: Option<PathBuf>,
) -> Result<(), Failure> {
    let usage = |lines: Vec<String>| Failure::Usage(lines.join(&format!("\n{program}: ")));
    let checked = check(command, app, argv, pools).map_err(usage)?;
    let lines = |errors: Vec<ConfigError>| errors.iter().map(ToString::to_string).collect();
    let (options, file_pid) =
        config_file::pool_options(path).map_err(|errors| usage(lines(errors)))?;
    let pid_file = pid_file.or(file_pid);
    if let Some(path) = &pid_file {
        setup::refuse_live_pid_file(path, program)?;
    }
    let target = LogTarget::open(checked.log_file.as_deref()).map_err(|e| {
        let shown = checked.log_file.as_deref().unwrap_or(Path::new("-")).display().to_string();
        Failure::Runtime(format!("cannot open the log file {shown}: {e}"))
    })?;
    // Switchable: a reload may change the shared log format or level.
    let current = Arc::new(Mutex::new(logging::sync_logger(
        checked.log_format,
        checked.log_level,
        &target,
        "pools",
    )));
    let log = Logger::root(logging::Switchable(Arc::clone(&current)), slog::o!());
    for warning in &checked.warnings {
        warn!(log, "{warning}");
    }
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    title::set(program, title::Role::Pools { pools: &pools.join(", ") });
    let exe = std::env::current_exe()
        .map_err(|e| Failure::Runtime(format!("cannot find this program's file: {e}")))?;
    let inherited = Listener::from_systemd().map_err(|e| Failure::Runtime(e.to_string()))?;
    let signals = signals().map_err(|e| Failure::Runtime(format!("cannot handle signals: {e}")))?;
    if let Some(path) = &pid_file {
        fcgi_prefork::pidfile::write(path).map_err(|e| {
            Failure::Runtime(format!("cannot write the pid file {}: {e}", path.display()))
        })?;
    }
    let notify = Notifier::from_env().unwrap_or_else(|e| {
        warn!(log, "cannot notify systemd: NOTIFY_SOCKET is unusable"; "error" => %e);
        Notifier::default()
    });
    info!(log, "starting the pools"; "pools" => pools.join(", "), "config" => %path.display());
    let mut master = Pools {
        log,
        target,
        notify,
        exe,
        args,
        graceful: checked.graceful_timeout,
        logging: (checked.log_format, checked.log_level, current),
        log_file: checked.log_file.clone(),
        inherited,
        options: Vec::new(),
        slots: BTreeMap::new(),
        retiring: Vec::new(),
        generation: 0,
        stopping: None,
        announced: false,
    };
    master.apply(options);
    master.unclaimed_sockets();
    let reload = || -> Result<(Checked, Vec<PoolOptions>), Vec<String>> {
        let pools = config_file::pools(path).map_err(lines)?;
        if pools.is_empty() {
            return Err(vec![format!("{} holds no pools any more", path.display())]);
        }
        let checked = check(command, app, argv, &pools)?;
        let (options, _) = config_file::pool_options(path).map_err(lines)?;
        Ok((checked, options))
    };
    master.serve(&signals, reload);
    if let Some(path) = &pid_file {
        fcgi_prefork::pidfile::remove_if_ours(path);
    }
    Ok(())
}

/// The signals this master handles, each sent on the channel as it arrives.
fn signals() -> std::io::Result<mpsc::Receiver<i32>> {
    use signal_hook::consts::*;
    let mut signals = signal_hook::iterator::Signals::new([
        SIGTERM, SIGINT, SIGQUIT, SIGHUP, SIGUSR1, SIGUSR2, SIGTTIN, SIGTTOU, SIGCHLD,
    ])?;
    let (send, receive) = mpsc::channel();
    std::thread::Builder::new().name("fcgi-signals".into()).spawn(move || {
        for signal in signals.forever() {
            if send.send(signal).is_err() {
                return;
            }
        }
    })?;
    Ok(receive)
}

/// One pool's place: its master, or when it is to start the next one.
#[derive(Debug, Default)]
struct Slot {
    master: Option<PoolMaster>,
    backoff: Backoff,
    /// Not to be started before this instant (after a crash).
    not_before: Option<Instant>,
    /// The pid of the old master that must exit first (it holds a socket this one binds).
    after: Option<u32>,
    /// The old master, serving until this one does.
    old: Option<PoolMaster>,
}

/// A pool master told to stop (its pool removed or replaced), until it exits.
#[derive(Debug)]
struct Retiring {
    pool: String,
    master: PoolMaster,
    /// When it was told.
    since: Instant,
    /// Whether it was killed for outliving the graceful timeout.
    killed: bool,
}

/// Tells `master` of `pool` to drain and stop (TERM), and keeps it in `retiring` until it
/// exits.
fn retire(retiring: &mut Vec<Retiring>, pool: &str, master: PoolMaster) {
    master.signal(SIGTERM);
    retiring.push(Retiring { pool: pool.to_owned(), master, since: Instant::now(), killed: false });
}

/// The master of the pools, running.
struct Pools {
    log: Logger,
    target: LogTarget,
    notify: Notifier,
    exe: PathBuf,
    /// This process's arguments less its name: each pool master's, before `--pool NAME`.
    args: Vec<OsString>,
    graceful: Duration,
    /// The log format and level this master's lines have, and the logger [`Switchable`]
    /// writes through.
    logging: (LogFormat, LogLevel, Arc<Mutex<Logger>>),
    /// The log file opened at start.
    log_file: Option<PathBuf>,
    /// The sockets systemd handed over, each for the pool whose `listen` names its address.
    inherited: Vec<Listener>,
    /// The pools' options as they run.
    options: Vec<PoolOptions>,
    slots: BTreeMap<String, Slot>,
    /// Masters told to stop (a pool removed or replaced), until they exit.
    retiring: Vec<Retiring>,
    generation: u64,
    /// When TERM, INT or QUIT came.
    stopping: Option<Instant>,
    /// Whether every pool serves, as last told to systemd.
    announced: bool,
}

impl Pools {
    /// Runs until every pool master has exited after a stop.
    fn serve(
        &mut self,
        signals: &mpsc::Receiver<i32>,
        mut reload: impl FnMut() -> Result<(Checked, Vec<PoolOptions>), Vec<String>>,
    ) {
        loop {
            match signals.recv_timeout(TICK) {
                Ok(signal) => self.on_signal(signal, &mut reload),
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                // The signal thread is gone: stop as for TERM rather than run deaf.
                Err(mpsc::RecvTimeoutError::Disconnected) if self.stopping.is_none() => {
                    self.stop(SIGTERM)
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => std::thread::sleep(TICK),
            }
            self.reap();
            self.listen();
            if self.stopping.is_some() {
                if self.slots.values().all(|slot| slot.master.is_none() && slot.old.is_none())
                    && self.retiring.is_empty()
                {
                    info!(self.log, "every pool has stopped");
                    return;
                }
                self.kill_late();
            } else {
                self.start_due();
                self.announce();
            }
        }
    }

    fn on_signal(
        &mut self,
        signal: i32,
        reload: &mut impl FnMut() -> Result<(Checked, Vec<PoolOptions>), Vec<String>>,
    ) {
        match signal {
            SIGTERM | SIGINT | SIGQUIT => self.stop(signal),
            SIGHUP if self.stopping.is_none() => {
                info!(self.log, "reloading: re-reading the config file");
                self.say(State::Reloading, "reloading");
                self.announced = false;
                match reload() {
                    Ok((checked, options)) => {
                        self.take_shared(&checked);
                        for warning in &checked.warnings {
                            warn!(self.log, "{warning}");
                        }
                        self.apply(options);
                    }
                    Err(errors) => {
                        error!(self.log, "reload refused: the config file is invalid; the pools \
                            run as they were"; "errors" => errors.join("; "));
                    }
                }
            }
            SIGUSR1 => {
                if let Err(e) = self.target.reopen() {
                    error!(self.log, "cannot reopen the log file"; "error" => %e);
                }
                info!(self.log, "log files reopened; telling the pools");
                self.each_master(|master| master.signal(SIGUSR1));
            }
            SIGUSR2 | SIGTTIN | SIGTTOU => {
                let pids: Vec<String> = self
                    .slots
                    .iter()
                    .filter_map(|(name, slot)| {
                        Some(format!("{name}={}", slot.master.as_ref()?.pid()))
                    })
                    .collect();
                warn!(self.log, "signal ignored: it concerns one pool; send it to that pool's \
                    master"; "signal" => fcgi_prefork::signal_name(signal), "masters" => pids.join(" "));
            }
            _ => {}
        }
    }

    /// Takes the shared options of a reloaded file: the log format and level, and the
    /// graceful timeout; the log file stays the one opened at start, as for any master.
    fn take_shared(&mut self, checked: &Checked) {
        self.graceful = checked.graceful_timeout;
        if checked.log_file != self.log_file {
            warn!(self.log, "--log-file changes only with a restart; kept as it is");
        }
        let (format, level, current) = &mut self.logging;
        if (*format, *level) != (checked.log_format, checked.log_level) {
            (*format, *level) = (checked.log_format, checked.log_level);
            let log = logging::sync_logger(*format, *level, &self.target, "pools");
            *current.lock().unwrap_or_else(|p| p.into_inner()) = log;
        }
    }

    /// Every pool master, current and retiring.
    fn each_master(&self, mut f: impl FnMut(&PoolMaster)) {
        for slot in self.slots.values() {
            slot.master.iter().chain(slot.old.iter()).for_each(&mut f);
        }
        self.retiring.iter().for_each(|old| f(&old.master));
    }

    /// Stops every pool: TERM and INT drain (twice: at once), QUIT stops at once.
    fn stop(&mut self, signal: i32) {
        let again = self.stopping.is_some();
        let (how, forward) = match signal {
            SIGQUIT => ("fast stop", SIGQUIT),
            _ if again => ("fast stop", SIGTERM),
            _ => ("graceful stop", SIGTERM),
        };
        if forward == SIGTERM && !again {
            info!(self.log, "{how}"; "signal" => fcgi_prefork::signal_name(signal));
        } else {
            warn!(self.log, "{how}"; "signal" => fcgi_prefork::signal_name(signal));
        }
        if !again {
            self.say(State::Stopping, how);
            self.stopping = Some(Instant::now());
        }
        self.each_master(|master| master.signal(forward));
    }

    /// Applies a checked file's pools: the first time, every pool starts.
    fn apply(&mut self, options: Vec<PoolOptions>) {
        for (name, change) in plan::plan(&self.options, &options) {
            let log = self.log.new(slog::o!("pool" => name.clone()));
            match change {
                Change::Keep => {}
                Change::Start => {
                    self.slots.insert(name, Slot::default());
                }
                Change::Reload => {
                    info!(log, "pool changed: reloading it");
                    let slot = self.slots.entry(name).or_default();
                    // A pool waiting out a back-off reads the file when it starts.
                    if let Some(master) = &mut slot.master {
                        // Serving again once it says so after the reload.
                        master.ready = false;
                        master.signal(SIGHUP);
                    }
                }
                Change::Replace { after_old } => {
                    info!(log, "pool's sockets changed: replacing its master";
                        "after_old" => after_old);
                    let slot = self.slots.entry(name.clone()).or_default();
                    slot.backoff = Backoff::default();
                    slot.not_before = None;
                    if let Some(old) = slot.master.take() {
                        if after_old {
                            slot.after = Some(old.pid());
                            retire(&mut self.retiring, &name, old);
                        } else if let Some(older) = slot.old.replace(old) {
                            retire(&mut self.retiring, &name, older);
                        }
                    }
                }
                Change::Stop => {
                    info!(log, "pool removed: stopping it");
                    if let Some(slot) = self.slots.remove(&name) {
                        for master in slot.master.into_iter().chain(slot.old) {
                            retire(&mut self.retiring, &name, master);
                        }
                    }
                }
            }
        }
        self.options = options;
    }

    /// Notes the pool masters that exited; those that were not asked to wait their back-off.
    fn reap(&mut self) {
        let stopping = self.stopping.is_some();
        for (name, slot) in &mut self.slots {
            let log = self.log.new(slog::o!("pool" => name.clone()));
            if let Some(status) = slot.old.as_mut().and_then(PoolMaster::exited) {
                warn!(log, "the old master of a replaced pool exited before its successor \
                    served"; "status" => %status);
                slot.old = None;
            }
            let Some(status) = slot.master.as_mut().and_then(PoolMaster::exited) else { continue };
            let master = slot.master.take().expect("an exited master");
            if stopping {
                info!(log, "pool stopped"; "status" => %status);
                continue;
            }
            let delay = slot.backoff.crashed(master.started.elapsed());
            slot.not_before = Some(Instant::now() + delay);
            error!(log, "pool master exited; starting it again"; "status" => %status,
                "delay_ms" => delay.as_millis() as u64, "crashes" => slot.backoff.failures());
        }
        let late = self.graceful + KILL_AFTER;
        self.retiring.retain_mut(|old| {
            if let Some(status) = old.master.exited() {
                info!(self.log, "pool master retired"; "pool" => old.pool.clone(), "status" => %status);
                return false;
            }
            // Its own master stops its workers at the graceful timeout: one still running
            // long after is stuck, and would hold its processes and sockets for ever.
            if !old.killed && old.since.elapsed() >= late {
                warn!(self.log, "a retiring pool master outlived its graceful timeout: killing it";
                    "pool" => old.pool.clone(), "master" => old.master.pid());
                old.master.signal(SIGKILL);
                old.killed = true;
            }
            true
        });
    }

    /// Reads what each pool master said; a new master that serves lets its old one go.
    fn listen(&mut self) {
        for (name, slot) in &mut self.slots {
            let Some(master) = slot.master.as_mut() else { continue };
            for said in master.said() {
                if said != Said::Ready {
                    continue;
                }
                info!(self.log, "pool serving"; "pool" => name.clone(), "master" => master.pid());
                if let Some(old) = slot.old.take() {
                    retire(&mut self.retiring, name, old);
                }
            }
        }
    }

    /// Starts each pool master that is due: none running, its back-off over, and no old
    /// master left holding its sockets.
    fn start_due(&mut self) {
        let now = Instant::now();
        for (name, slot) in &mut self.slots {
            let held = slot
                .after
                .is_some_and(|pid| self.retiring.iter().any(|old| old.master.pid() == pid));
            if slot.master.is_some() || held || slot.not_before.is_some_and(|at| at > now) {
                continue;
            }
            slot.after = None;
            self.generation += 1;
            let (extra, fds) = sockets_of(&self.options, name, &self.inherited);
            match PoolMaster::start(&self.exe, &self.args, name, self.generation, (&extra, &fds)) {
                Ok(master) => {
                    info!(self.log, "pool master started"; "pool" => name.clone(),
                        "master" => master.pid());
                    slot.master = Some(master);
                }
                Err(e) => {
                    let delay = slot.backoff.crashed(Duration::ZERO).max(TICK);
                    slot.not_before = Some(now + delay);
                    error!(self.log, "cannot start the pool's master"; "pool" => name.clone(),
                        "error" => %e, "delay_ms" => delay.as_millis() as u64);
                }
            }
        }
    }

    /// Warns of each inherited socket that no pool's `listen` names: it stays open, unused.
    fn unclaimed_sockets(&self) {
        for listener in &self.inherited {
            let claimed = self.options.iter().any(|(_, options)| {
                listen_addrs(options)
                    .iter()
                    .any(|(_, addr)| addr.as_ref().is_some_and(|a| listener.serves(a)))
            });
            if !claimed {
                warn!(self.log, "an inherited socket matches no pool's listen; it is not served";
                    "socket" => listener.to_string());
            }
        }
    }

    /// Tells systemd (and the log) once every pool serves, at start and after a reload.
    fn announce(&mut self) {
        let serving = self.slots.values().all(|slot| slot.master.as_ref().is_some_and(|m| m.ready));
        if serving && !self.announced {
            self.announced = true;
            let status = format!("{} pools serving", self.slots.len());
            info!(self.log, "every pool serves"; "pools" => self.slots.len());
            self.say(State::Ready, &status);
        }
    }

    /// Kills the pool masters still running long after a stop began.
    fn kill_late(&mut self) {
        let Some(since) = self.stopping else { return };
        if since.elapsed() < self.graceful + KILL_AFTER {
            return;
        }
        warn!(self.log, "pool masters still running past the graceful timeout: killing them");
        self.each_master(|master| master.signal(SIGKILL));
        // Killed once: the next ticks only reap.
        self.stopping = Some(Instant::now());
    }

    fn say(&self, state: State, status: &str) {
        if let Err(e) = self.notify.notify(state, status) {
            warn!(self.log, "cannot notify systemd"; "error" => %e);
        }
    }
}

/// A pool's `listen` values, each with the address it names (`None`: unreadable).
fn listen_addrs(options: &[(String, Option<String>)]) -> Vec<(&str, Option<ListenAddr>)> {
    options
        .iter()
        .filter(|(name, _)| name == "listen")
        .filter_map(|(_, value)| value.as_deref())
        .map(|value| (value, value.parse().ok()))
        .collect()
}

/// The command-line words and descriptors that give `pool` the inherited sockets its `listen`
/// lines name: none when it names none (it binds its own); else a `--listen` for each of its
/// addresses, `fd:N` for an inherited one, which wins over the file's lines.
fn sockets_of(
    options: &[PoolOptions],
    pool: &str,
    inherited: &[Listener],
) -> (Vec<OsString>, Vec<RawFd>) {
    let Some((_, options)) = options.iter().find(|(name, _)| name == pool) else {
        return (Vec::new(), Vec::new());
    };
    let (mut words, mut fds) = (Vec::new(), Vec::new());
    for (value, addr) in listen_addrs(options) {
        let found = addr.and_then(|addr| inherited.iter().find(|l| l.serves(&addr)));
        match found {
            Some(listener) => {
                fds.push(listener.as_raw_fd());
                words.push(format!("--listen=fd:{}", listener.as_raw_fd()).into());
            }
            None => words.push(format!("--listen={value}").into()),
        }
    }
    if fds.is_empty() {
        return (Vec::new(), Vec::new());
    }
    (words, fds)
}
