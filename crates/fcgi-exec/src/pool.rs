//! The program processes: who is idle, handing them to requests and taking them back
//! ([`Pool::acquire`], [`Pool::release`]), and the supervisor thread that starts, reaps,
//! stops and listens to them.
//!
//! Requests and the supervisor share one [`State`] under a mutex. Requests wait on its
//! condition variable for an idle process; the supervisor sleeps in `poll` on a wake pipe,
//! the programs' output pipes and their pidfds, and on each turn reaps what exited, logs
//! output lines, and applies the [`scale`](crate::scale) plan. Every process is started by
//! the supervisor thread: `PR_SET_PDEATHSIG` fires when the thread that forked dies, and this
//! one lives as long as the pool.

use std::collections::{HashMap, VecDeque};
use std::ffi::OsString;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{Child, ExitStatus};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use fcgi_prefork::backoff::Backoff;
use slog::{error, info, warn, Logger};

use crate::config::ExecConfig;
use crate::lines::Lines;
use crate::process::{Current, Exit, Last, Proc, ProcState};
use crate::scale::{self, Counts};
use crate::spawn::{self, SocketDir, Spawned};
use crate::sys::{self, Signal};

/// The longest the supervisor sleeps without a reason: the dynamic and on-demand models'
/// timers are in seconds, and a kernel without pidfds is looked at this often.
const TICK: Duration = Duration::from_millis(250);
/// Exits remembered for requests that ask how their process ended.
const EXITS_KEPT: usize = 256;

/// Why no process could be had.
#[derive(Debug)]
pub(crate) enum Unavailable {
    /// Every process stayed busy until the deadline.
    Busy,
    /// No process runs, and the next start waits out a back-off: why the last one failed.
    Down(String),
    /// The pool is shutting down.
    Stopping,
}

/// A process lent to one request.
#[derive(Debug)]
pub(crate) struct Lease {
    pub(crate) pid: u32,
    pub(crate) socket: PathBuf,
    /// Its kept connection, if it has one.
    pub(crate) conn: Option<UnixStream>,
    pub(crate) since: Instant,
}

/// How a lease comes back.
#[derive(Debug)]
pub(crate) enum Release {
    /// The request is done and the process can take another; its connection, if it can be
    /// kept. `answered`: the process answered the request whole.
    Done { conn: Option<UnixStream>, answered: bool },
    /// The process must go (garbage, a timeout, an abort it ignored): stop it.
    Retire(&'static str),
}

/// What the status page shows of one process.
#[derive(Clone, Debug)]
pub struct ProcessInfo {
    /// Its pid.
    pub pid: u32,
    /// `Idle`, `Running` or `Finishing` (being stopped), as PHP-FPM names them.
    pub state: &'static str,
    /// Requests it served (answered, or failed on).
    pub requests: u64,
    /// When it started.
    pub started: SystemTime,
    /// The running request's method, URI and time so far; else the last one's.
    pub request: Option<(String, String, Duration)>,
    /// The last finished request's duration, CPU share (percent) and the memory after it.
    pub last: Option<(Duration, f64, u64)>,
}

/// The pool's counters, PHP-FPM's meaning: the processes are the program processes.
#[derive(Clone, Debug, Default)]
pub struct PoolStatus {
    /// The process model (`static`, `dynamic`, `ondemand`).
    pub model: &'static str,
    /// Processes running, those being stopped included.
    pub total: usize,
    /// Idle ones.
    pub idle: usize,
    /// Busy ones.
    pub active: usize,
    /// The most busy at once since the start.
    pub max_active: usize,
    /// Times a request found every process busy with no room to start one.
    pub max_children_reached: u64,
    /// Requests waiting for a process now.
    pub waiting: usize,
    /// The most that waited at once.
    pub max_waiting: usize,
    /// Why the program cannot run, while it cannot (its last exit, and its last output line).
    pub down: Option<String>,
    /// Each process.
    pub processes: Vec<ProcessInfo>,
}

struct State {
    procs: Vec<Proc>,
    waiting: usize,
    shutting_down: bool,
    first: bool,
    backoff: Backoff,
    not_before: Option<Instant>,
    /// Why the last process that failed did, with its last output line.
    failure: Option<String>,
    exits: VecDeque<(u32, ExitStatus)>,
    last_stop: Instant,
    next_slot: u64,
    max_active: usize,
    max_children_reached: u64,
    max_waiting: usize,
    /// TERM went out to these; KILL at the instant.
    kills: Vec<(u32, Instant)>,
}

impl State {
    fn counts(&self) -> Counts {
        let alive = self.procs.iter().filter(|p| p.is_alive()).count();
        let idle = self.procs.iter().filter(|p| p.state == ProcState::Idle).count();
        Counts { alive, idle, waiting: self.waiting, first: self.first }
    }

    fn proc_mut(&mut self, pid: u32) -> Option<&mut Proc> {
        self.procs.iter_mut().find(|p| p.pid == pid)
    }
}

struct Shared {
    state: Mutex<State>,
    changed: Condvar,
    /// Requests waiting for an idle process sleep on this: a release wakes one of them (every
    /// waiter woken for one process would cost a context switch each, per request).
    idle: Condvar,
    /// Written to wake the supervisor.
    wake: File,
    config: ExecConfig,
    program: PathBuf,
    env: Vec<(OsString, OsString)>,
    dir: SocketDir,
    /// Whether to read each process's CPU and memory after its requests (for the status page).
    measure: bool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn wake(&self) {
        let _ = (&self.wake).write(&[1]);
    }

    fn log(&self) -> &Logger {
        &self.config.logger
    }

    /// Marks `pid` stopping and sends it TERM (KILL follows after the grace).
    fn stop(&self, state: &mut State, pid: u32, reason: &'static str) {
        let Some(proc) = state.proc_mut(pid) else { return };
        if proc.state == ProcState::Stopping {
            return;
        }
        proc.state = ProcState::Stopping;
        proc.stop_reason = Some(reason);
        proc.conn = None;
        info!(self.log(), "program stopped"; "event" => "program-stopped", "program_pid" => pid,
            "reason" => reason);
        sys::signal_group(pid, Signal::TERM);
        state.kills.push((pid, Instant::now() + self.config.kill_grace));
    }
}

impl Shared {
    /// Logs the exit of `proc` (removed from the pool) and decides what it means: a
    /// process that worked and then stopped by itself (php-cgi's own request limit), or one
    /// we stopped, or one that crashed on a request (a request of death: the next requests
    /// must still be served) is replaced at once; one that never worked earns a delay.
    fn finish_exit(&self, state: &mut State, proc: Proc, exit: Exit) {
        let log = self.log();
        let Exit { status, slot, last_line, lifetime } = exit;
        info!(log, "program exited"; "event" => "program-exited", "program_pid" => proc.pid,
            "slot" => slot, "exit" => short(status), "requests" => proc.requests);
        let fault = match proc.stop_reason {
            Some("garbage") => Some("wrote what is not FastCGI"),
            Some("no-listener") => Some("does not accept connections on fd 0"),
            Some(_) => return,
            None => None,
        };
        let crashed_on_request = proc.died_busy && status.signal().is_some();
        let clean = status.code() == Some(0) && proc.served;
        if clean || crashed_on_request || state.shutting_down {
            return;
        }
        let exit = describe(status);
        // One that ran a while (killed by an operator, say) is no crash loop, served or not.
        let delay = state.backoff.crashed(lifetime);
        let why = match (fault, last_line.is_empty()) {
            (Some(fault), _) => format!("the program {fault}"),
            (None, true) => format!("the program {exit}"),
            (None, false) => format!("the program {exit}; its last output: {last_line}"),
        };
        error!(log, "program failed"; "program_pid" => proc.pid, "reason" => &why);
        self.delay(state, delay, why);
    }

    /// Holds the next start back by `delay`, saying why.
    fn delay(&self, state: &mut State, delay: Duration, why: String) {
        state.not_before = Some(Instant::now() + delay);
        if !delay.is_zero() {
            warn!(self.log(), "program restart delayed"; "event" => "program-restart-delayed",
                "delay_ms" => delay.as_millis() as u64, "failures" => state.backoff.failures(),
                "reason" => &why);
        }
        state.failure = Some(why);
    }
}

/// The program processes of one [`Exec`](crate::Exec).
pub(crate) struct Pool {
    shared: Arc<Shared>,
    supervisor: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool").field("program", &self.shared.program).finish_non_exhaustive()
    }
}

impl Pool {
    /// Starts the supervisor, which starts the processes the scale wants.
    pub(crate) fn start(
        config: ExecConfig,
        program: PathBuf,
        env: Vec<(OsString, OsString)>,
        measure: bool,
    ) -> io::Result<Pool> {
        let dir = SocketDir::new(&config.socket_dir)?;
        let (wake_read, wake_write) = sys::wake_pipe()?;
        let state = State {
            procs: Vec::new(),
            waiting: 0,
            shutting_down: false,
            first: true,
            backoff: Backoff::default(),
            not_before: None,
            failure: None,
            exits: VecDeque::new(),
            last_stop: Instant::now(),
            next_slot: 1,
            max_active: 0,
            max_children_reached: 0,
            max_waiting: 0,
            kills: Vec::new(),
        };
        let shared = Arc::new(Shared {
            state: Mutex::new(state),
            changed: Condvar::new(),
            idle: Condvar::new(),
            wake: File::from(wake_write),
            config,
            program,
            env,
            dir,
            measure,
        });
        let supervisor = {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name("fcgi-exec".into())
                .spawn(move || Supervisor::new(shared, File::from(wake_read)).run())?
        };
        Ok(Pool { shared, supervisor: Some(supervisor) })
    }

    /// An idle process for a request (`method`, `uri`), waiting for one until `deadline`.
    pub(crate) fn acquire(
        &self,
        deadline: Option<Instant>,
        method: &str,
        uri: &str,
    ) -> Result<Lease, Unavailable> {
        let shared = &self.shared;
        let mut state = shared.lock();
        let mut counted = false;
        let result = loop {
            if state.shutting_down {
                break Err(Unavailable::Stopping);
            }
            // The most recently idle first: its connection and caches are warm, and the
            // others can reach their idle timeout.
            let pick = state
                .procs
                .iter_mut()
                .filter(|p| p.state == ProcState::Idle)
                .max_by_key(|p| p.idle_since);
            if let Some(proc) = pick {
                proc.state = ProcState::Busy;
                let now = Instant::now();
                proc.current =
                    Some(Current { method: method.to_owned(), uri: uri.to_owned(), since: now });
                let lease = Lease {
                    pid: proc.pid,
                    socket: proc.socket.clone(),
                    conn: proc.conn.take(),
                    since: now,
                };
                let active = state.procs.iter().filter(|p| p.state == ProcState::Busy).count();
                state.max_active = state.max_active.max(active);
                break Ok(lease);
            }
            let counts = state.counts();
            let delayed = state.not_before.is_some_and(|t| t > Instant::now());
            if counts.alive == 0 && delayed {
                let why =
                    state.failure.clone().unwrap_or_else(|| "the program is not running".into());
                break Err(Unavailable::Down(why));
            }
            if !counted {
                counted = true;
                state.waiting += 1;
                state.max_waiting = state.max_waiting.max(state.waiting);
                if counts.alive >= shared.config.scale.max() {
                    state.max_children_reached += 1;
                } else {
                    // There is room: the scale may start one for it.
                    shared.wake();
                }
            }
            state = match deadline {
                None => shared.idle.wait(state).unwrap_or_else(|p| p.into_inner()),
                Some(deadline) => {
                    let now = Instant::now();
                    if now >= deadline {
                        // A release's wake-up may have come to this one as it gave up: pass
                        // it on.
                        shared.idle.notify_one();
                        break Err(Unavailable::Busy);
                    }
                    shared
                        .idle
                        .wait_timeout(state, deadline - now)
                        .unwrap_or_else(|p| p.into_inner())
                        .0
                }
            };
        };
        if counted {
            state.waiting -= 1;
        }
        result
    }

    /// Takes a lease back.
    pub(crate) fn release(&self, lease: Lease, how: Release) {
        let shared = &self.shared;
        let measure = shared.measure;
        let stat = measure.then(|| read_stat(lease.pid));
        let mut state = shared.lock();
        let shutting_down = state.shutting_down;
        let Some(proc) = state.proc_mut(lease.pid) else { return };
        proc.current = None;
        if let Some(stat) = stat {
            proc.last = Some(stat.last_request(proc.cpu_ticks, lease.since.elapsed()));
            proc.cpu_ticks = stat.cpu_ticks;
        }
        let stop = match how {
            Release::Retire(reason) => {
                // It had the request (it timed out on it, or answered it badly), unless it
                // was not listening.
                proc.requests += u64::from(reason != "no-listener");
                Some(reason)
            }
            Release::Done { conn, answered } => {
                // Requests it answered: one it never took (it stopped first) went elsewhere.
                proc.requests += u64::from(answered);
                proc.served |= answered;
                if proc.state == ProcState::Busy {
                    proc.state = ProcState::Idle;
                    proc.idle_since = Instant::now();
                    proc.conn = conn;
                }
                if shutting_down {
                    Some("stop")
                } else if proc.is_spent() {
                    Some("max-requests")
                } else {
                    None
                }
            }
        };
        if proc.served {
            state.backoff.reset();
            state.failure = None;
        }
        let exited = state.proc_mut(lease.pid).and_then(|p| p.exited.take());
        if let Some(exit) = exited {
            // It exited while this request was on it: decided now that what it served is
            // known (its pid may belong to another process by now: no signal for it).
            if let Some(index) = state.procs.iter().position(|p| p.pid == lease.pid) {
                let mut proc = state.procs.remove(index);
                proc.died_busy = true;
                proc.stop_reason =
                    proc.stop_reason.or(stop.filter(|r| matches!(*r, "garbage" | "no-listener")));
                shared.finish_exit(&mut state, proc, exit);
            }
            shared.wake();
        } else if let Some(reason) = stop {
            shared.stop(&mut state, lease.pid, reason);
            shared.wake();
        } else if state.waiting > 0 {
            // One process is idle again: one waiting request can have it. (Waiters count
            // themselves under the lock before they sleep, so none is missed; with none, the
            // wake-up would be a system call for nobody.)
            drop(state);
            shared.idle.notify_one();
        }
    }

    /// How `pid` ended, waiting up to `wait` for the supervisor to reap it; `None` if it
    /// still runs.
    pub(crate) fn exit_of(&self, pid: u32, wait: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + wait;
        let mut state = self.shared.lock();
        loop {
            if let Some((_, status)) = state.exits.iter().find(|(p, _)| *p == pid) {
                return Some(*status);
            }
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            state = self
                .shared
                .changed
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    /// Whether `pid` had answered a request whole before.
    pub(crate) fn has_served(&self, pid: u32) -> bool {
        self.shared.lock().procs.iter().any(|p| p.pid == pid && p.served)
    }

    /// The counters and processes, for the status page.
    pub(crate) fn status(&self) -> PoolStatus {
        let state = self.shared.lock();
        let now = Instant::now();
        let processes = state
            .procs
            .iter()
            .map(|p| ProcessInfo {
                pid: p.pid,
                state: match p.state {
                    ProcState::Idle => "Idle",
                    ProcState::Busy => "Running",
                    ProcState::Stopping => "Finishing",
                },
                requests: p.requests,
                started: p.started_wall,
                request: p
                    .current
                    .as_ref()
                    .map(|c| (c.method.clone(), c.uri.clone(), now.duration_since(c.since))),
                last: p.last.map(|l| (l.duration, l.cpu_percent, l.memory)),
            })
            .collect::<Vec<_>>();
        let delayed = state.not_before.is_some_and(|t| t > now);
        PoolStatus {
            model: self.shared.config.scale.name(),
            total: processes.len(),
            idle: state.procs.iter().filter(|p| p.state == ProcState::Idle).count(),
            active: state.procs.iter().filter(|p| p.state == ProcState::Busy).count(),
            max_active: state.max_active,
            max_children_reached: state.max_children_reached,
            waiting: state.waiting,
            max_waiting: state.max_waiting,
            down: (delayed && state.counts().alive == 0).then(|| state.failure.clone()).flatten(),
            processes,
        }
    }

    /// Stops every process: TERM now, KILL after the grace, and waits for them.
    pub(crate) fn shutdown(&mut self) {
        {
            let mut state = self.shared.lock();
            state.shutting_down = true;
            let idle: Vec<u32> =
                state.procs.iter().filter(|p| p.state != ProcState::Busy).map(|p| p.pid).collect();
            for pid in idle {
                self.shared.stop(&mut state, pid, "stop");
            }
        }
        self.shared.changed.notify_all();
        self.shared.idle.notify_all();
        self.shared.wake();
        if let Some(supervisor) = self.supervisor.take() {
            let _ = supervisor.join();
        }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// What /proc says of a process: its CPU time so far and its resident memory.
#[derive(Clone, Copy, Debug)]
struct Stat {
    cpu_ticks: u64,
    rss_bytes: u64,
}

impl Stat {
    /// The last request's figures, `before` being the CPU ticks at the release before it
    /// (the process idles between requests, so the difference is the request's).
    fn last_request(&self, before: u64, duration: Duration) -> Last {
        let hz = sys::clock_ticks_per_second() as f64;
        let used = self.cpu_ticks.saturating_sub(before) as f64 / hz;
        let secs = duration.as_secs_f64();
        let cpu_percent = if secs > 0.0 { (used / secs * 100.0).min(100.0 * 64.0) } else { 0.0 };
        Last { duration, cpu_percent, memory: self.rss_bytes }
    }
}

/// `pid`'s [`Stat`] (zeros when /proc cannot tell).
fn read_stat(pid: u32) -> Stat {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command (which may hold spaces), from the last ')'.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let field = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok()).unwrap_or(0);
    let page = sys::page_size();
    // utime and stime are the line's fields 14 and 15, rss its 24th: 11, 12 and 21 after
    // the command.
    Stat { cpu_ticks: field(11) + field(12), rss_bytes: field(21) * page }
}

/// A running process as the supervisor holds it.
struct Running {
    child: Child,
    output: File,
    pidfd: Option<OwnedFd>,
    /// The output line being collected, and the last whole one (for a failure's reason).
    lines: Lines,
    last_line: String,
    slot: u64,
    started: Instant,
}

struct Supervisor {
    shared: Arc<Shared>,
    wake: File,
    running: HashMap<u32, Running>,
}

impl Supervisor {
    fn new(shared: Arc<Shared>, wake: File) -> Supervisor {
        Supervisor { shared, wake, running: HashMap::new() }
    }

    fn log(&self) -> Logger {
        self.shared.config.logger.clone()
    }

    fn run(mut self) {
        loop {
            self.reap();
            if !self.turn() {
                break;
            }
            self.sleep();
            self.read_output();
        }
        // Whatever is left (a KILL that has not been reaped yet): kill and reap it.
        for (pid, mut running) in self.running.drain() {
            sys::signal_group(pid, Signal::KILL);
            let _ = running.child.wait();
        }
    }

    /// One turn: KILLs due, the scale's plan. False once the pool is shut down and empty.
    fn turn(&mut self) -> bool {
        let shared = Arc::clone(&self.shared);
        let mut state = shared.lock();
        let now = Instant::now();
        state.kills.retain(|&(pid, at)| {
            if at <= now {
                warn!(shared.log(), "program did not stop in time: killed"; "program_pid" => pid);
                sys::signal_group(pid, Signal::KILL);
                false
            } else {
                true
            }
        });
        if state.shutting_down {
            let busy_done: Vec<u32> =
                state.procs.iter().filter(|p| p.state == ProcState::Idle).map(|p| p.pid).collect();
            for pid in busy_done {
                shared.stop(&mut state, pid, "stop");
            }
            return !(state.procs.is_empty() && self.running.is_empty());
        }
        let idle_for: Vec<Duration> = state
            .procs
            .iter()
            .filter(|p| p.state == ProcState::Idle)
            .map(|p| now.duration_since(p.idle_since))
            .collect();
        let plan = scale::plan(
            &shared.config.scale,
            state.counts(),
            &idle_for,
            now.duration_since(state.last_stop),
        );
        if plan.stop > 0 {
            let mut idle: Vec<(Instant, u32)> = state
                .procs
                .iter()
                .filter(|p| p.state == ProcState::Idle)
                .map(|p| (p.idle_since, p.pid))
                .collect();
            idle.sort();
            for (_, pid) in idle.into_iter().take(plan.stop) {
                shared.stop(&mut state, pid, "idle");
            }
            state.last_stop = now;
        }
        let may_start = state.not_before.is_none_or(|t| t <= now);
        if plan.start == 0 || !may_start {
            return true;
        }
        state.first = false;
        let slots: Vec<u64> = (0..plan.start as u64).map(|i| state.next_slot + i).collect();
        state.next_slot += plan.start as u64;
        drop(state);
        // Started without the lock: requests go on being served meanwhile.
        let mut started = Vec::new();
        let mut failure = None;
        for slot in slots {
            let socket = shared.dir.socket(slot);
            match spawn::spawn(&shared.config, &shared.program, &socket, &shared.env) {
                Ok(spawned) => started.push((slot, socket, spawned)),
                Err(e) => {
                    failure = Some(format!("cannot start {}: {e}", shared.program.display()));
                    break;
                }
            }
        }
        let mut state = shared.lock();
        for (slot, socket, Spawned { child, output, pidfd }) in started {
            let pid = child.id();
            let limit = request_limit(&shared.config, pid);
            info!(shared.log(), "program started"; "event" => "program-started", "program_pid" => pid,
                "slot" => slot);
            state.procs.push(Proc::new(pid, socket, limit));
            self.running.insert(
                pid,
                Running {
                    child,
                    output,
                    pidfd,
                    lines: Lines::default(),
                    last_line: String::new(),
                    slot,
                    started: Instant::now(),
                },
            );
        }
        if let Some(why) = failure {
            let delay = state.backoff.crashed(Duration::ZERO);
            shared.delay(&mut state, delay, why);
        }
        drop(state);
        // New idle processes, or a failure that waiting requests must hear of.
        shared.idle.notify_all();
        true
    }

    /// Reaps every process that exited, and decides what its exit means.
    fn reap(&mut self) {
        let exited: Vec<(u32, ExitStatus)> = self
            .running
            .iter_mut()
            .filter_map(|(&pid, running)| match running.child.try_wait() {
                Ok(Some(status)) => Some((pid, status)),
                _ => None,
            })
            .collect();
        if exited.is_empty() {
            return;
        }
        let shared = Arc::clone(&self.shared);
        let log = self.log();
        let mut state = shared.lock();
        for (pid, status) in exited {
            let Some(mut running) = self.running.remove(&pid) else { continue };
            // What it wrote last, before it went.
            drain_output(&mut running, pid, &log);
            flush_line(&mut running, pid, &log);
            state.kills.retain(|(p, _)| *p != pid);
            state.exits.push_back((pid, status));
            if state.exits.len() > EXITS_KEPT {
                state.exits.pop_front();
            }
            let exit = Exit {
                status,
                slot: running.slot,
                last_line: std::mem::take(&mut running.last_line),
                lifetime: running.started.elapsed(),
            };
            let Some(index) = state.procs.iter().position(|p| p.pid == pid) else { continue };
            if state.procs[index].state == ProcState::Busy {
                // Its request is still being relayed: what it served is known once the
                // lease comes back, and the exit is decided then (see `Pool::release`).
                state.procs[index].exited = Some(exit);
                continue;
            }
            let proc = state.procs.remove(index);
            shared.finish_exit(&mut state, proc, exit);
        }
        drop(state);
        shared.changed.notify_all();
        // Waiting requests learn whether the program is down now.
        shared.idle.notify_all();
    }

    /// Sleeps until a process writes or exits, we are woken, or the next timer.
    fn sleep(&mut self) {
        let mut fds = vec![self.wake.as_fd()];
        for running in self.running.values() {
            fds.push(running.output.as_fd());
            if let Some(pidfd) = &running.pidfd {
                fds.push(pidfd.as_fd());
            }
        }
        let timeout = {
            let state = self.shared.lock();
            let now = Instant::now();
            let next_kill =
                state.kills.iter().map(|&(_, at)| at.saturating_duration_since(now)).min();
            let next_start = state.not_before.map(|t| t.saturating_duration_since(now));
            [Some(TICK), next_kill, next_start].into_iter().flatten().min().unwrap_or(TICK)
        };
        sys::poll_readable(&fds, timeout);
        let mut sink = [0u8; 64];
        while matches!(self.wake.read(&mut sink), Ok(n) if n > 0) {}
    }

    /// Logs the whole lines the processes wrote.
    fn read_output(&mut self) {
        let log = self.log();
        for (&pid, running) in self.running.iter_mut() {
            drain_output(running, pid, &log);
        }
    }
}

/// Reads what `running` wrote (its pipe is non-blocking) and logs each whole line.
fn drain_output(running: &mut Running, pid: u32, log: &Logger) {
    let mut buf = [0u8; 8192];
    loop {
        match running.output.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                let last = &mut running.last_line;
                running.lines.push(&buf[..n], |line| log_output(log, pid, line, last));
            }
        }
    }
}

/// Logs what `running` wrote after its last line break (it exited mid-line).
fn flush_line(running: &mut Running, pid: u32, log: &Logger) {
    let last = &mut running.last_line;
    running.lines.flush(|line| log_output(log, pid, line, last));
}

/// One output line in our log; kept as `last`, for a failure's reason.
fn log_output(log: &Logger, pid: u32, line: String, last: &mut String) {
    info!(log, "program output"; "event" => "program-stderr", "program_pid" => pid, "line" => &line);
    *last = line;
}

/// `status 3`, or `signal 9`: the log's `exit` field.
fn short(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("status {code}"),
        (_, Some(signal)) => format!("signal {signal}"),
        _ => "unknown".into(),
    }
}

/// `exited with status 3`, or `was killed by signal 9`.
pub(crate) fn describe(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with status {code}"),
        (_, Some(signal)) => format!("was killed by signal {signal}"),
        _ => "exited".into(),
    }
}

/// The request limit of a new process: `--max-requests` plus its share of the jitter.
fn request_limit(config: &ExecConfig, pid: u32) -> u64 {
    if config.max_requests == 0 {
        return 0;
    }
    let jitter = match config.max_requests_jitter {
        0 => 0,
        j => {
            let seed = u64::from(pid)
                ^ SystemTime::now()
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos() as u64);
            // A cheap mix of the seed (splitmix64's finaliser): spread enough for this.
            let mut x = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
            x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            (x ^ (x >> 31)) % (j + 1)
        }
    };
    config.max_requests + jitter
}

impl From<PoolStatus> for fcgi_server::AppProcesses {
    fn from(status: PoolStatus) -> fcgi_server::AppProcesses {
        let unix =
            |t: SystemTime| t.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let finishing = status.processes.iter().filter(|p| p.state == "Finishing").count();
        fcgi_server::AppProcesses {
            model: status.model,
            idle: status.idle as u64,
            active: status.active as u64,
            finishing: finishing as u64,
            max_active: status.max_active as u64,
            max_children_reached: status.max_children_reached,
            waiting: status.waiting as u64,
            max_waiting: status.max_waiting as u64,
            down: status.down,
            processes: status
                .processes
                .into_iter()
                .map(|p| {
                    let (method, uri, duration) = match (p.request, p.last) {
                        (Some((method, uri, age)), _) => (Some(method), Some(uri), age),
                        (None, Some((duration, _, _))) => (None, None, duration),
                        (None, None) => (None, None, Duration::ZERO),
                    };
                    let (cpu, memory) = p.last.map_or((0.0, 0), |(_, cpu, memory)| (cpu, memory));
                    fcgi_server::AppProcess {
                        pid: u64::from(p.pid),
                        state: p.state,
                        start_unix: unix(p.started),
                        requests: p.requests,
                        duration,
                        method,
                        uri,
                        last_cpu_percent: cpu,
                        last_memory: memory,
                    }
                })
                .collect(),
        }
    }
}
