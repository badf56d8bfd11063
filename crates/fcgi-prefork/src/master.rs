//! The master: forks the workers, supervises them, and acts on signals, in one thread.
//!
//! The loop wakes on a signal (its `signalfd`), a worker's report, or a 50 ms tick, and then
//! in this order: acts on signals, reads reports, reaps exited children, checks for hung
//! workers, and brings the number of workers to what the process model wants.

use std::ffi::OsString;
use std::fs::File;
use std::os::fd::AsFd;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use fcgi_server::{Handoff, Listener};
use slog::{error, info, warn, Logger};

use crate::backoff::{self, Place};
use crate::error::Error;
use crate::heartbeat::{self, Beat, BeatReader};
use crate::notify::{Notifier, State};
use crate::pidfile;
use crate::policy::{self, Bounds, Census, Decision};
use crate::scoreboard::Scoreboard;
use crate::settings::{ProcessModel, Settings};
use crate::signals::{self, SignalFd};
use crate::sys::{self, Forked, Signal};
use crate::upgrade;
use crate::worker::Worker;
use crate::workload::Workload;

mod handover;
mod orphans;
mod proc;
mod relay;

use handover::{Upgrade, Word};
use proc::{Phase, Proc};
use relay::Relay;

/// Scoreboard slots beyond twice the workers (a reload runs the old and the new side by side):
/// room for TTIN and for workers that take long to exit.
const BOARD_SPARE_SLOTS: usize = 8;
/// At least this many slots: 64 slots are 21 KiB, and leave room to grow a small pool.
const BOARD_MIN_SLOTS: usize = 64;

/// The longest the master sleeps: how soon it notices timeouts that no event announces.
const TICK: Duration = Duration::from_millis(50);
/// The dynamic model retires at most one idle worker this often (as PHP-FPM does), so that a
/// lull between two bursts does not empty the pool.
const SCALE_DOWN_EVERY: Duration = Duration::from_secs(1);

/// The prefork master; see the [crate docs](crate) for its signals and its life cycle.
pub struct Master {
    settings: Settings,
    listeners: Vec<Listener>,
    log: Logger,
    pid_file: Option<PathBuf>,
    exe: PathBuf,
    args: Vec<OsString>,
    /// Set when this master was started by an upgrade: where to say it serves.
    ready: Option<File>,
    /// Every worker's counters, for the status page; `None` if the mapping failed.
    board: Option<Scoreboard>,
    /// systemd's notification socket, if any (`Type=notify`).
    notify: Notifier,
    /// Set when this master was started by an upgrade: where the old master passes on the
    /// kept connections of its retiring workers.
    predecessor: Option<Handoff>,
    /// Whether USR2 upgrades the binary (see [`Master::upgrades`]).
    upgrades: bool,
}

impl std::fmt::Debug for Master {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Master")
            .field("settings", &self.settings)
            .field("listeners", &self.listeners)
            .field("pid_file", &self.pid_file)
            .finish()
    }
}

impl Master {
    /// A master for `listeners` (made beforehand: [`crate::inherited_listeners`] after an
    /// upgrade). Call it before any thread starts: the master forks, and a forked child gets
    /// only the forking thread. `log` must not need a thread either (a synchronous drain).
    pub fn new(settings: Settings, listeners: Vec<Listener>, log: Logger) -> Result<Master, Error> {
        settings.validate().map_err(Error::Settings)?;
        // The path as it is now: after a new binary is installed there, /proc/self/exe names
        // the old, deleted file, and this path the new one.
        let exe = std::env::current_exe().map_err(Error::Exe)?;
        let slots = (2 * settings.workers.max(settings.max_workers) + BOARD_SPARE_SLOTS)
            .max(BOARD_MIN_SLOTS);
        let board = match Scoreboard::new(slots) {
            Ok(board) => Some(board),
            Err(e) => {
                warn!(log, "cannot map the scoreboard; each worker's status page counts only \
                    itself"; "error" => %e);
                None
            }
        };
        let notify = Notifier::from_env().unwrap_or_else(|e| {
            warn!(log, "cannot notify systemd: NOTIFY_SOCKET is unusable"; "error" => %e);
            Notifier::default()
        });
        Ok(Master {
            board,
            settings,
            listeners,
            log,
            pid_file: None,
            exe,
            args: std::env::args_os().skip(1).collect(),
            ready: upgrade::ready_pipe(),
            predecessor: upgrade::handoff_from_old_master(),
            notify,
            upgrades: true,
        })
    }

    /// Writes the master's pid to `path` while it runs (see the crate docs for upgrades).
    pub fn pid_file(mut self, path: PathBuf) -> Master {
        self.pid_file = Some(path);
        self
    }

    /// Whether USR2 upgrades the binary (by default it does). A master whose own parent
    /// supervises it (one pool of several under one master) says no: the new binary would be
    /// started by this master and outlive it, out of its supervisor's sight; USR2 is then
    /// logged and ignored, and the supervisor restarts the pool instead.
    ///
    /// ```no_run
    /// # let (settings, log) = (fcgi_prefork::Settings::default(), slog::Logger::root(slog::Discard, slog::o!()));
    /// let master = fcgi_prefork::Master::new(settings, Vec::new(), log)?.upgrades(false);
    /// # Ok::<(), fcgi_prefork::Error>(())
    /// ```
    pub fn upgrades(mut self, upgrades: bool) -> Master {
        self.upgrades = upgrades;
        self
    }

    /// Runs until TERM, INT or QUIT (or an upgrade's handover) and the workers have exited.
    pub fn run(mut self, workload: &mut dyn Workload) -> Result<(), Error> {
        let signals = SignalFd::new().map_err(Error::Signals)?;
        if let Err(e) = sys::become_subreaper() {
            warn!(self.log, "cannot become the subreaper of the workers' programs; those a \
                dead worker leaves go to init"; "error" => %e);
        }
        if let Some(path) = &self.pid_file {
            pidfile::write(path).map_err(|source| Error::PidFile { path: path.clone(), source })?;
        }
        let target = self.settings.workers;
        let relay = Relay::new(self.predecessor.take());
        let mut running = Running {
            master: self,
            signals: Some(signals),
            procs: Vec::new(),
            next_id: 1,
            generation: 0,
            target,
            places: Vec::new(),
            next_spawn: Instant::now(),
            last_scale_down: Instant::now(),
            stopping: None,
            upgrade: None,
            handed_over: false,
            new_masters: Vec::new(),
            ready_pending: true,
            relay,
        };
        info!(running.master.log, "master started";
            "workers" => running.master.settings.workers,
            "model" => format!("{:?}", running.master.settings.model).to_lowercase(),
            "listeners" => running.master.listeners.len());
        running.main_loop(workload);
        running.exit();
        Ok(())
    }
}

struct Stopping {
    fast: bool,
}

/// The running master's state, for one [`Master::run`]: its workers and what it is in the
/// middle of.
struct Running {
    master: Master,
    signals: Option<SignalFd>,
    procs: Vec<Proc>,
    next_id: u64,
    generation: u64,
    /// Static: how many workers; dynamic: where the bounds start (TTIN/TTOU move it).
    target: usize,
    /// The pool's places and their crash back-off (see `backoff.rs`), by index.
    places: Vec<Place>,
    /// No fork before this instant (after a failed fork or pipe).
    next_spawn: Instant,
    last_scale_down: Instant,
    stopping: Option<Stopping>,
    upgrade: Option<Upgrade>,
    /// A new master took over: keep the socket files when exiting.
    handed_over: bool,
    /// New masters this one started (USR2), still its children: never taken for orphans.
    new_masters: Vec<i32>,
    /// systemd is still to hear READY=1: at start, and after RELOADING=1.
    ready_pending: bool,
    /// Kept connections retiring workers passed on, on their way to a worker or to the new
    /// master (see `relay.rs`).
    relay: Relay,
}

impl Running {
    /// Runs until stopping is asked for and every worker has exited.
    fn main_loop(&mut self, workload: &mut dyn Workload) {
        loop {
            self.wait();
            let pending = self.signals.as_mut().map(SignalFd::pending).unwrap_or_default();
            for signal in pending {
                self.on_signal(signal, workload);
            }
            self.read_reports();
            self.check_upgrade();
            let limit = self.master.settings.graceful_timeout;
            let stopping = self.stopping.is_some();
            self.relay.relay(&mut self.procs, self.generation, stopping, &self.master.log, limit);
            self.reap();
            self.check_hung();
            match &self.stopping {
                // Connections still held wait for the new master's queue (at most the
                // graceful timeout).
                Some(_) if self.procs.is_empty() && self.relay.is_empty() => return,
                Some(_) => {}
                None => self.reconcile(workload),
            }
            self.say_ready_if_serving();
            self.notify_ready_if_serving();
        }
    }

    /// Tells systemd `state`; a failure is logged, never fatal.
    fn notify(&self, state: State, status: &str) {
        if let Err(e) = self.master.notify.notify(state, status) {
            warn!(self.master.log, "cannot notify systemd"; "error" => %e, "state" => ?state);
        }
    }

    /// Workers of the current generation that serve.
    fn serving_now(&self) -> usize {
        self.procs
            .iter()
            .filter(|p| p.generation == self.generation && p.phase == Phase::Serving)
            .count()
    }

    /// READY=1 once the current generation serves in full (at start, and after a reload).
    fn notify_ready_if_serving(&mut self) {
        if !self.ready_pending || self.stopping.is_some() {
            return;
        }
        let serving = self.serving_now();
        if serving >= self.wanted_minimum() {
            self.ready_pending = false;
            let settings = &self.master.settings;
            let model = format!("{:?}", settings.model).to_lowercase();
            let status = format!(
                "serving: {serving} workers ({model}), generation {}, pid {}",
                self.generation,
                std::process::id()
            );
            self.notify(State::Ready, &status);
        }
    }

    /// Starts the new binary of a USR2 upgrade, unless one is under way or done.
    fn start_upgrade(&mut self) {
        let master = &self.master;
        if self.upgrade.is_some() || self.handed_over {
            warn!(master.log, "an upgrade is already under way; USR2 ignored");
            return;
        }
        let mask = self.signals.as_ref().map(SignalFd::child_mask);
        let pid_file = master.pid_file.as_deref();
        let started = Upgrade::start(
            &master.exe,
            &master.args,
            &master.listeners,
            pid_file,
            mask,
            &master.log,
        );
        if let Some((upgrade, successor)) = started {
            self.new_masters.push(upgrade.pid);
            self.upgrade = Some(upgrade);
            self.relay.successor = successor;
        }
    }

    /// Hands over once the new master of an upgrade serves: this one retires gracefully.
    fn check_upgrade(&mut self) {
        let Some(upgrade) = &mut self.upgrade else { return };
        match upgrade.word() {
            Word::Awaited => {}
            Word::Serves => {
                let pid = upgrade.pid;
                self.upgrade = None;
                self.handed_over = true;
                info!(self.master.log, "upgrade: the new master serves; retiring this one gracefully"; "new_pid" => pid);
                for listener in &mut self.master.listeners {
                    listener.keep_socket_file();
                }
                self.stop(false);
            }
            Word::Failed(why) => self.upgrade_failed(&why),
        }
    }

    /// Gives up the upgrade under way, if any: this master goes on serving.
    fn upgrade_failed(&mut self, why: &str) {
        if let Some(upgrade) = self.upgrade.take() {
            self.relay.successor = None;
            handover::restore_pid_file(self.master.pid_file.as_deref());
            error!(self.master.log, "upgrade failed; this master goes on serving";
                "why" => why, "new_pid" => upgrade.pid);
        }
    }

    /// Tells the old master of an upgrade that this one serves, once the current generation
    /// serves in full.
    fn say_ready_if_serving(&mut self) {
        if self.master.ready.is_none() || self.stopping.is_some() {
            return;
        }
        if self.serving_now() >= self.wanted_minimum() {
            if let Some(pipe) = self.master.ready.take() {
                match upgrade::say_ready(pipe) {
                    Ok(()) => info!(self.master.log, "upgrade: serving; the old master may retire"),
                    Err(e) => {
                        warn!(self.master.log, "cannot tell the old master we serve"; "error" => %e)
                    }
                }
            }
        }
    }

    /// Sleeps until a signal, a report, or the tick.
    fn wait(&mut self) {
        let mut fds = Vec::with_capacity(self.procs.len() + 2);
        if let Some(signals) = &self.signals {
            fds.push(signals.fd());
        }
        if let Some(upgrade) = &self.upgrade {
            fds.push(upgrade.ready.0.as_fd());
        }
        for proc in &self.procs {
            if let Some(reader) = &proc.reader {
                fds.push(reader.file().as_fd());
            }
        }
        fds.extend(self.relay.fds(&self.procs));
        sys::poll_readable(&fds, TICK);
    }

    fn on_signal(&mut self, signal: i32, workload: &mut dyn Workload) {
        let log = self.master.log.clone();
        match Signal::from_named_raw(signal) {
            Some(Signal::CHILD) => {}
            Some(Signal::TERM | Signal::INT) => match &self.stopping {
                None => {
                    info!(log, "graceful stop"; "signal" => signals::name(signal),
                        "grace_s" => self.master.settings.graceful_timeout.as_secs());
                    self.stop(false);
                }
                // A second one: as QUIT.
                Some(s) if !s.fast => {
                    warn!(log, "fast stop"; "signal" => signals::name(signal));
                    self.stop(true);
                }
                Some(_) => {}
            },
            Some(Signal::QUIT) => {
                warn!(log, "fast stop"; "signal" => "QUIT");
                self.stop(true);
            }
            Some(Signal::HUP) if self.stopping.is_none() => self.reload(workload),
            Some(Signal::USR1) => {
                workload.reopen_logs();
                info!(log, "log files reopened; telling the workers");
                for proc in &self.procs {
                    sys::kill(proc.pid, Signal::USR1);
                }
            }
            Some(Signal::USR2) if !self.master.upgrades => {
                warn!(log, "USR2 ignored: this master's supervisor upgrades it (restart the pool)");
            }
            Some(Signal::USR2) if self.stopping.is_none() => self.start_upgrade(),
            Some(Signal::TTIN | Signal::TTOU) if self.stopping.is_none() => {
                let more = signal == Signal::TTIN.as_raw();
                let settings = &mut self.master.settings;
                match settings.model {
                    ProcessModel::Static => {
                        self.target = if more {
                            self.target + 1
                        } else {
                            self.target.saturating_sub(1).max(1)
                        };
                        info!(log, "worker count changed"; "signal" => signals::name(signal), "workers" => self.target);
                    }
                    ProcessModel::Dynamic => {
                        settings.max_workers = if more {
                            settings.max_workers + 1
                        } else {
                            settings.max_workers.saturating_sub(1).max(settings.max_spare).max(1)
                        };
                        info!(log, "worker cap changed"; "signal" => signals::name(signal), "max_workers" => settings.max_workers);
                    }
                }
            }
            _ => info!(log, "signal ignored while stopping"; "signal" => signals::name(signal)),
        }
    }

    fn stop(&mut self, fast: bool) {
        if self.stopping.is_none() {
            let status = format!("stopping: {} workers draining", self.procs.len());
            self.notify(State::Stopping, &status);
        }
        self.stopping = Some(Stopping { fast });
        let settings = &self.master.settings;
        let wait = if fast {
            settings.kill_grace
        } else {
            settings.graceful_timeout + settings.kill_grace
        };
        let kill_at = Instant::now() + wait;
        let signal = if fast { Signal::QUIT } else { Signal::TERM };
        for proc in &mut self.procs {
            // A fast stop also reaches workers already retiring.
            if fast || !matches!(proc.phase, Phase::Retiring { .. }) {
                sys::kill(proc.pid, signal);
                proc.phase = Phase::Retiring { kill_at, killed: false };
            }
        }
        // Close this master's copies of the listening sockets: the workers close theirs as they
        // begin to drain, so the sockets close now, as a single process's do. Kept open, they
        // would go on taking connections into a backlog that nobody accepts from until the last
        // worker exits: a web server's new requests would wait out the drain and then fail,
        // instead of being refused at once and sent to another host. Nothing spawns a worker
        // while stopping; a socket file this master created goes now (after a handover it is
        // kept, and the new master holds the socket).
        self.master.listeners.clear();
    }

    fn reload(&mut self, workload: &mut dyn Workload) {
        // Before the reload reads anything: systemd's notify-reload waits for RELOADING=1,
        // then for READY=1 (sent when the new workers serve, or now if the reload fails).
        self.notify(State::Reloading, "reloading: re-reading the configuration");
        match workload
            .reload(&self.master.settings)
            .and_then(|s| s.validate().map(|()| s).map_err(|e| e.to_string()))
        {
            Ok(settings) => {
                self.generation += 1;
                self.target = settings.workers;
                self.master.settings = settings;
                self.places.clear();
                self.next_spawn = Instant::now();
                self.ready_pending = true;
                info!(self.master.log, "reloading: starting new workers, then retiring the old ones";
                    "generation" => self.generation, "workers" => self.target);
            }
            Err(e) => {
                error!(self.master.log, "reload failed; the running workers go on"; "error" => &e);
                let status = format!("serving; the last reload failed: {e}");
                self.notify(State::Ready, &status);
            }
        }
    }

    fn read_reports(&mut self) {
        let now = Instant::now();
        let settings = &self.master.settings;
        for proc in &mut self.procs {
            let Some(reader) = &mut proc.reader else { continue };
            let received = reader.read_available();
            if received.garbled {
                warn!(self.master.log, "a worker wrote something that is not a report"; "worker" => proc.id);
            }
            if let Some(last) = received.beats.last() {
                proc.busy = last.in_flight > 0 || last.served > proc.beat.served;
                proc.beat = *last;
                proc.last_beat = now;
                if proc.phase == Phase::Starting {
                    proc.phase = Phase::Serving;
                }
                if last.retiring() && !matches!(proc.phase, Phase::Retiring { .. }) {
                    // Retiring on its own: replaced now, not counted as a crash.
                    let kill_at = now + settings.graceful_timeout + settings.kill_grace;
                    proc.phase = Phase::Retiring { kill_at, killed: false };
                }
            }
            if received.closed {
                proc.reader = None;
            }
        }
    }

    fn reap(&mut self) {
        // What the workers reported before they exited, first: a worker that died serving may
        // have said so a moment before (see `Worker::serve`'s first report).
        self.read_reports();
        // Whether to look for orphans once all is reaped: after a worker's exit, and after an
        // orphan's, whose own children (that left its process group) have just come here.
        let mut sweep = false;
        while let Some((pid, status)) = sys::reap_any() {
            let how = describe_exit(status);
            if self.upgrade.as_ref().is_some_and(|u| u.pid == pid) {
                self.upgrade_failed(&format!("the new master {how} before it served"));
            }
            let new_master = self.new_masters.contains(&pid);
            self.new_masters.retain(|&p| p != pid);
            let Some(index) = self.procs.iter().position(|p| p.pid == pid) else {
                sweep |= !new_master;
                continue;
            };
            sweep = true;
            let proc = self.procs.swap_remove(index);
            // The last connections it passed on may still wait in its socket: it hands them
            // over and exits at once, possibly since the relay last read.
            if let Some(handoff) = &proc.handoff {
                self.relay.receive(handoff, Instant::now());
            }
            if let (Some(board), Some(slot)) = (&self.master.board, proc.slot) {
                board.retire(slot);
            }
            let lifetime = proc.started.elapsed();
            let expected = matches!(proc.phase, Phase::Retiring { .. }) || self.stopping.is_some();
            let log = &self.master.log;
            if expected {
                info!(log, "worker exited"; "worker" => proc.id, "worker_pid" => pid, "status" => how,
                    "served" => proc.beat.served);
            } else {
                let serving = proc.phase == Phase::Serving;
                let (delay, crashes) = if proc.generation == self.generation {
                    let place = place_mut(&mut self.places, proc.place);
                    (place.crashed(lifetime, serving, Instant::now()), place.backoff.failures())
                } else {
                    (Duration::ZERO, 0)
                };
                warn!(log, "worker died; replacing it"; "worker" => proc.id, "worker_pid" => pid,
                    "status" => how, "lived_ms" => lifetime.as_millis(), "place" => proc.place,
                    "died_serving" => serving, "crashes_in_a_row" => crashes,
                    "respawn_in_ms" => delay.as_millis());
            }
        }
        if sweep {
            self.kill_orphans();
        }
    }

    /// Kills what a worker that exited left running: its programs (CGI scripts and whatever
    /// they started), re-parented to this master, which is their subreaper. Each one's process
    /// group gets SIGKILL (its own pid alone if it shares the master's group); the loop reaps
    /// them as they die. A worker that exits normally has reaped its programs already, so this
    /// finds them only after a crash, a kill, or requests cut short by the graceful timeout
    /// (and any daemon a program left behind on purpose: see the README).
    fn kill_orphans(&mut self) {
        let workers: Vec<i32> = self.procs.iter().map(|p| p.pid).collect();
        let mut spared = workers;
        spared.extend(self.new_masters.iter().copied());
        spared.extend(self.upgrade.as_ref().map(|u| u.pid));
        let children = orphans::children_of(std::process::id());
        let own_group = sys::process_group();
        let targets = orphans::targets(&children, &spared, own_group);
        if targets.is_empty() {
            return;
        }
        let pids: Vec<i32> =
            children.iter().map(|c| c.pid).filter(|p| !spared.contains(p)).collect();
        warn!(self.master.log, "killing the programs a worker left running";
            "pids" => format!("{pids:?}"), "targets" => format!("{targets:?}"));
        for target in targets {
            sys::kill(target, Signal::KILL);
        }
    }

    fn check_hung(&mut self) {
        let now = Instant::now();
        let settings = &self.master.settings;
        for proc in &mut self.procs {
            match proc.phase {
                Phase::Starting | Phase::Serving => {
                    // Silence alone: a long request is no sign of a hang (its heartbeat goes
                    // on), and is the request timeout's business, which retires gracefully.
                    let silent = now.saturating_duration_since(proc.last_beat);
                    if silent > settings.worker_timeout {
                        let why = format!("no report for {} ms", silent.as_millis());
                        warn!(self.master.log, "worker hung; sending TERM, then KILL";
                            "worker" => proc.id, "worker_pid" => proc.pid, "why" => why,
                            "timeout_ms" => settings.worker_timeout.as_millis(),
                            "oldest_request_ms" => proc.beat.oldest().map(|t| t.as_millis()),
                            "kill_in_ms" => settings.kill_grace.as_millis());
                        sys::kill(proc.pid, Signal::TERM);
                        proc.phase =
                            Phase::Retiring { kill_at: now + settings.kill_grace, killed: false };
                    }
                }
                Phase::Retiring { kill_at, killed: false } if now >= kill_at => {
                    warn!(self.master.log, "worker did not stop in time; killing it";
                        "worker" => proc.id, "worker_pid" => proc.pid);
                    sys::kill(proc.pid, Signal::KILL);
                    proc.phase = Phase::Retiring { kill_at, killed: true };
                }
                Phase::Retiring { .. } => {}
            }
        }
    }

    /// Brings the workers to what the model wants, and retires an old generation once the new
    /// one serves.
    fn reconcile(&mut self, workload: &mut dyn Workload) {
        let now = Instant::now();
        let generation = self.generation;
        let live: Vec<usize> = (0..self.procs.len())
            .filter(|&i| {
                let p = &self.procs[i];
                p.generation == generation && !matches!(p.phase, Phase::Retiring { .. })
            })
            .collect();
        let starting = live.iter().filter(|&&i| self.procs[i].phase == Phase::Starting).count();
        let settings = &self.master.settings;
        let (spawn, retire) = match settings.model {
            ProcessModel::Static => {
                (self.target.saturating_sub(live.len()), live.len().saturating_sub(self.target))
            }
            ProcessModel::Dynamic => {
                let busy = live
                    .iter()
                    .filter(|&&i| {
                        let p = &self.procs[i];
                        p.phase == Phase::Serving && p.busy
                    })
                    .count();
                let census = Census { idle: live.len() - starting - busy, busy, starting };
                let bounds = Bounds {
                    min_spare: settings.min_spare,
                    max_spare: settings.max_spare,
                    max_workers: settings.max_workers,
                };
                match policy::decide(census, bounds) {
                    Decision::Spawn(n) => (n, 0),
                    Decision::Retire(n)
                        if now.duration_since(self.last_scale_down) >= SCALE_DOWN_EVERY =>
                    {
                        (0, n.min(1))
                    }
                    _ => (0, 0),
                }
            }
        };
        if retire > 0 {
            // The longest-lived idle ones first: they hold the most of whatever leaks.
            let mut candidates: Vec<usize> = live
                .iter()
                .copied()
                .filter(|&i| settings.model == ProcessModel::Static || !self.procs[i].busy)
                .collect();
            candidates.sort_by_key(|&i| self.procs[i].id);
            for &i in candidates.iter().take(retire) {
                self.retire(i, "fewer workers wanted");
            }
            self.last_scale_down = now;
        }
        if spawn > 0 && now >= self.next_spawn {
            // The places the live workers do not hold, lowest first, as many as are wanted.
            let held: Vec<usize> = live.iter().map(|&i| self.procs[i].place).collect();
            let free: Vec<(usize, Place)> = (0..)
                .filter(|place| !held.contains(place))
                .take(spawn)
                .map(|place| (place, self.places.get(place).copied().unwrap_or_default()))
                .collect();
            let (fill, empty_pool) = backoff::places_to_fill(&free, live.len(), spawn, now);
            if empty_pool {
                info!(self.master.log, "no worker left: replacing one at once despite its \
                    back-off (it had served)"; "place" => fill.first().copied());
            }
            for place in fill {
                if self.spawn(workload, place).is_none() {
                    break;
                }
            }
        }
        // The new generation serves in full: the old one goes.
        let new_ready = starting == 0 && !live.is_empty() && live.len() >= self.wanted_minimum();
        if new_ready {
            let old: Vec<usize> = (0..self.procs.len())
                .filter(|&i| {
                    let p = &self.procs[i];
                    p.generation != generation && !matches!(p.phase, Phase::Retiring { .. })
                })
                .collect();
            for i in old {
                self.retire(i, "reload");
            }
        }
    }

    /// How many workers of the current generation must serve before an old one retires or
    /// an upgraded master says it serves.
    fn wanted_minimum(&self) -> usize {
        match self.master.settings.model {
            ProcessModel::Static => self.target,
            ProcessModel::Dynamic => self.master.settings.min_spare.min(self.target).max(1),
        }
    }

    fn retire(&mut self, index: usize, why: &str) {
        let settings = &self.master.settings;
        let proc = &mut self.procs[index];
        info!(self.master.log, "retiring a worker gracefully"; "worker" => proc.id, "worker_pid" => proc.pid, "why" => why);
        sys::kill(proc.pid, Signal::TERM);
        proc.phase = Phase::Retiring {
            kill_at: Instant::now() + settings.graceful_timeout + settings.kill_grace,
            killed: false,
        };
    }

    /// Forks one worker into `place`; `None` when fork failed.
    fn spawn(&mut self, workload: &mut dyn Workload, place: usize) -> Option<()> {
        let log = self.master.log.clone();
        let (read, write) = match heartbeat::pipe() {
            Ok(pipe) => pipe,
            Err(e) => {
                error!(log, "cannot make a heartbeat pipe; retrying"; "error" => %e);
                self.next_spawn = Instant::now() + Duration::from_secs(1);
                return None;
            }
        };
        let (handoff, worker_handoff) = match Handoff::pair() {
            Ok((ours, theirs)) => (Some(ours), Some(theirs)),
            Err(e) => {
                warn!(log, "cannot make a hand-off socket; this worker will close its kept \
                    connections when it retires"; "error" => %e);
                (None, None)
            }
        };
        let id = self.next_id;
        self.next_id += 1;
        let slot = self.master.board.as_ref().and_then(|board| {
            (1..=board.capacity()).find(|slot| self.procs.iter().all(|p| p.slot != Some(*slot)))
        });
        if slot.is_none() && self.master.board.is_some() {
            warn!(log, "the scoreboard is full; the new worker is left off the status page";
                "worker" => id);
        }
        // The master is single-threaded (it starts no thread and requires none before it), so
        // the child is a complete copy; it runs only the worker and then exits.
        let pid = match sys::fork() {
            Ok(Forked::Parent(pid)) => pid,
            Ok(Forked::Child) => {
                self.become_worker(id, read, write, worker_handoff, slot, workload)
            }
            Err(e) => {
                error!(log, "fork failed; retrying in a second"; "error" => %e);
                self.next_spawn = Instant::now() + Duration::from_secs(1);
                return None;
            }
        };
        drop(write);
        drop(worker_handoff);
        let now = Instant::now();
        self.procs.push(Proc {
            pid,
            id,
            generation: self.generation,
            reader: Some(BeatReader::new(read)),
            started: now,
            last_beat: now,
            beat: Beat { oldest_ms: u32::MAX, ..Beat::default() },
            busy: false,
            phase: Phase::Starting,
            slot,
            place,
            takes_connections: handoff.is_some(),
            handoff,
        });
        info!(log, "worker started"; "worker" => id, "worker_pid" => pid, "generation" => self.generation);
        Some(())
    }

    /// In the forked child: drop the master's descriptors, restore the signal mask, run the
    /// worker, exit. Never returns.
    fn become_worker(
        &mut self,
        id: u64,
        read: File,
        write: File,
        handoff: Option<Handoff>,
        slot: Option<usize>,
        workload: &mut dyn Workload,
    ) -> ! {
        drop(read);
        // Other workers' pipes: holding their read ends would hide the master's death from them.
        // Their hand-off ends go with them, and the connections held: a copy here would keep
        // each one open after the worker that gets it closes it.
        for proc in self.procs.drain(..) {
            drop(proc.reader);
            drop(proc.handoff);
        }
        self.relay = Relay::default();
        self.upgrade = None;
        self.master.ready = None;
        if let Some(signals) = self.signals.take() {
            signals.release_in_child();
        }
        let worker = Worker::new(
            id,
            self.generation,
            std::mem::take(&mut self.master.listeners),
            self.master.settings.clone(),
            write,
            handoff,
            self.master.board.clone().zip(slot),
        );
        let code = catch_unwind(AssertUnwindSafe(|| workload.run_worker(worker))).unwrap_or(101);
        std::process::exit(code)
    }

    fn exit(&mut self) {
        if let Some(path) = &self.master.pid_file {
            pidfile::remove_if_ours(path);
            pidfile::remove_if_ours(&pidfile::oldbin(path));
        }
        let how = if self.handed_over { "handed over to the new master" } else { "stopped" };
        info!(self.master.log, "master exiting"; "how" => how);
        // Dropping the listeners removes the socket files this master created (unless handed
        // over).
        self.master.listeners.clear();
    }
}

/// The state of `place`, made as the pool grows.
fn place_mut(places: &mut Vec<Place>, place: usize) -> &mut Place {
    if places.len() <= place {
        places.resize(place + 1, Place::default());
    }
    &mut places[place]
}

/// "exited with status 3", "killed by signal KILL".
fn describe_exit(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    if let Some(code) = status.code() {
        format!("exited with status {code}")
    } else if let Some(signal) = status.signal() {
        let core = if status.core_dumped() { " (core dumped)" } else { "" };
        format!("killed by signal {}{core}", signals::name(signal))
    } else {
        format!("ended with wait status {}", status.into_raw())
    }
}
