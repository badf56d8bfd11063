//! The timeout's second enforcer: one thread per gateway that signals the process groups of runs
//! past their deadline, whatever their pumps are blocked on.
//!
//! The pump checks the deadline itself between reads, but it can block where it cannot look:
//! the response's first flush (or a large write) waits until the request body has fully
//! arrived, which a slow web server or client may stretch past any timeout, and a write waits
//! while the web server reads slowly. So each run with a timeout registers its [`Group`] here
//! ([`Watchdog::watch`]); the watchdog sends the pump's own signals at the pump's own times
//! (SIGTERM just after the deadline, SIGKILL after the grace), and the [`Group`] both go
//! through sends SIGTERM once and never signals a group whose leader has been reaped.
//!
//! One thread for all runs rather than one per run: a thread per request cost about a tenth of
//! the throughput of a trivial CGI script on a busy two-core machine. Registering costs a lock
//! and a `BTreeMap` insert; the thread sleeps until the earliest deadline, and is woken only
//! when a new one comes first (with one `--cgi-timeout` for all, only when nothing else is
//! registered).

use std::collections::BTreeMap;
use std::io;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use fcgi_server::AbortSignal;
use slog::{warn, Logger};

use crate::child::Child;
use crate::feed::CHECK_EVERY;
use crate::sys::{self, Signal};

/// How long after the deadline the watchdog acts: the pump wakes at the deadline itself, so
/// when it is free it always signals first and the watchdog only steps in for a pump that is
/// blocked. Two of the pump's check periods.
const SLACK: Duration = CHECK_EVERY.saturating_mul(2);

/// The program's process group, as the pump and the watchdog signal it: SIGTERM at most once,
/// and nothing at all once the group's leader is reaped (its id may then be someone else's).
#[derive(Debug)]
pub(crate) struct Group {
    state: Mutex<GroupState>,
}

#[derive(Debug)]
struct GroupState {
    /// The group's id (its leader's pid), until the leader is reaped.
    pgid: Option<u32>,
    terminated: bool,
}

impl Group {
    /// The group that `child` leads.
    pub(crate) fn new(child: &Child) -> Group {
        Group { state: Mutex::new(GroupState { pgid: Some(child.id()), terminated: false }) }
    }

    fn lock(&self) -> MutexGuard<'_, GroupState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// SIGTERM, unless it went out already or the leader is reaped; returns whether it went
    /// out now.
    pub(crate) fn terminate(&self) -> bool {
        let mut state = self.lock();
        if state.terminated || state.pgid.is_none() {
            return false;
        }
        state.terminated = true;
        signal(state.pgid, Signal::TERM);
        true
    }

    /// SIGKILL, unless the leader is reaped.
    pub(crate) fn kill(&self) {
        signal(self.lock().pgid, Signal::KILL);
    }

    /// No signal goes out from now on: the run is over, and whoever reaps the leader next may
    /// do it without this lock.
    pub(crate) fn forget(&self) {
        self.lock().pgid = None;
    }

    /// Runs `reap` (which may reap the leader; it returns whether it did) with signals held
    /// off, and forgets the group if it did.
    pub(crate) fn reaping<T>(&self, reap: impl FnOnce() -> (T, bool)) -> T {
        let mut state = self.lock();
        let (result, reaped) = reap();
        if reaped {
            state.pgid = None;
        }
        result
    }
}

fn signal(pgid: Option<u32>, signal: Signal) {
    // The group exists while its leader is unreaped, which the caller's lock guarantees.
    if let Some(pgid) = pgid {
        sys::signal_group(pgid, signal);
    }
}

/// The gateway's watchdog: a thread, started at the first [`watch`](Watchdog::watch), that
/// stops the groups of runs past their deadline. Dropping it stops the thread.
#[derive(Debug)]
pub(crate) struct Watchdog {
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

#[derive(Debug)]
struct Shared {
    timers: Mutex<Timers>,
    /// Signalled when a timer comes before all others, and when the watchdog stops.
    changed: Condvar,
    log: Logger,
}

#[derive(Debug, Default)]
struct Timers {
    next_id: u64,
    /// What to do when, keyed by time and run (ids keep equal times apart).
    due: BTreeMap<(Instant, u64), Timer>,
    stopping: bool,
}

#[derive(Debug)]
struct Timer {
    group: Arc<Group>,
    /// The request, whose input (if it still arrives) is given up on at the deadline, so
    /// that a pump waiting for it goes on and the request ends on time (504 if nothing went
    /// out).
    input: Option<AbortSignal>,
    /// SIGTERM now, then SIGKILL this much later; `None` for the SIGKILL itself.
    grace: Option<Duration>,
    script: String,
}

/// A run's registration with the [`Watchdog`]: its timers are removed when it is dropped.
#[derive(Debug)]
pub(crate) struct Watch<'a> {
    watchdog: &'a Watchdog,
    keys: [(Instant, u64); 2],
}

impl Watchdog {
    /// A watchdog that logs to `log`; its thread starts when it is first needed.
    pub(crate) fn new(log: Logger) -> Watchdog {
        let shared = Shared { timers: Mutex::default(), changed: Condvar::new(), log };
        Watchdog { shared: Arc::new(shared), thread: Mutex::new(None) }
    }

    /// Stops `group` (SIGTERM, then SIGKILL after `grace`) if the run is not over by
    /// `deadline`, until the returned [`Watch`] is dropped. Fails only when the watchdog's
    /// thread cannot be started.
    pub(crate) fn watch(
        &self,
        group: &Arc<Group>,
        input: Option<AbortSignal>,
        deadline: Instant,
        grace: Duration,
        script: &str,
    ) -> io::Result<Watch<'_>> {
        self.start()?;
        let at = deadline + SLACK;
        let mut timers = self.shared.lock();
        let id = timers.next_id;
        timers.next_id += 1;
        let timer =
            Timer { group: Arc::clone(group), input, grace: Some(grace), script: script.into() };
        timers.due.insert((at, id), timer);
        let first = timers.due.first_key_value().is_some_and(|(&key, _)| key == (at, id));
        drop(timers);
        if first {
            self.shared.changed.notify_one();
        }
        Ok(Watch { watchdog: self, keys: [(at, id), (at + grace, id)] })
    }

    fn start(&self) -> io::Result<()> {
        let mut thread = self.thread.lock().unwrap_or_else(PoisonError::into_inner);
        if thread.is_none() {
            let shared = Arc::clone(&self.shared);
            let handle = thread::Builder::new()
                .name("fcgi-cgi-timeout".into())
                .spawn(move || shared.run())?;
            *thread = Some(handle);
        }
        Ok(())
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.shared.lock().stopping = true;
        self.shared.changed.notify_one();
        let thread = self.thread.get_mut().unwrap_or_else(PoisonError::into_inner).take();
        if let Some(thread) = thread {
            let _ = thread.join();
        }
    }
}

impl Drop for Watch<'_> {
    fn drop(&mut self) {
        let mut timers = self.watchdog.shared.lock();
        for key in &self.keys {
            timers.due.remove(key);
        }
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Timers> {
        self.timers.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The thread: sleeps until the earliest timer, fires it (signals go out without the
    /// timers' lock, since a group's lock may be held by a pump that is reaping), repeats.
    fn run(&self) {
        let mut timers = self.lock();
        loop {
            if timers.stopping {
                return;
            }
            let now = Instant::now();
            let next = timers.due.first_key_value().map(|(&(at, _), _)| at);
            match next {
                None => {
                    timers = self.changed.wait(timers).unwrap_or_else(PoisonError::into_inner);
                }
                Some(at) if at > now => {
                    timers = self
                        .changed
                        .wait_timeout(timers, at - now)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0;
                }
                Some(_) => {
                    let Some(((at, id), timer)) = timers.due.pop_first() else { continue };
                    if let Some(grace) = timer.grace {
                        timers.due.insert((at + grace, id), timer.clone_for_kill());
                    }
                    drop(timers);
                    self.fire(&timer);
                    timers = self.lock();
                }
            }
        }
    }

    fn fire(&self, timer: &Timer) {
        match timer.grace {
            Some(_) => {
                if let Some(input) = &timer.input {
                    input.time_out();
                }
                if timer.group.terminate() {
                    // The pump would have sent it first had it been free to: it is waiting on
                    // the request body (the response cannot go out before it) or on the web
                    // server, and the timeout covers those waits too.
                    warn!(self.log, "CGI program ran past the timeout while the gateway waited \
                        for the web server (the request body, or room to write); stopped";
                        "script" => &timer.script, "stopped_by" => "watchdog");
                }
            }
            None => timer.group.kill(),
        }
    }
}

impl Timer {
    fn clone_for_kill(&self) -> Timer {
        Timer {
            group: Arc::clone(&self.group),
            input: None,
            grace: None,
            script: self.script.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::wait_until;
    use std::os::unix::process::{CommandExt, ExitStatusExt};
    use std::process::Command;

    fn sleeper(script: &str) -> std::process::Child {
        Command::new("/bin/sh").args(["-c", script]).process_group(0).spawn().unwrap()
    }

    #[test]
    fn a_program_past_its_deadline_gets_sigterm_then_sigkill() {
        let watchdog = Watchdog::new(Logger::root(slog::Discard, slog::o!()));
        // Ignores SIGTERM: only the SIGKILL after the grace stops it.
        let mut child = sleeper("trap '' TERM; sleep 30; sleep 30");
        let pgid = child.id();
        let group = Arc::new(Group {
            state: Mutex::new(GroupState { pgid: Some(pgid), terminated: false }),
        });
        let started = Instant::now();
        let grace = Duration::from_millis(300);
        let watch = watchdog.watch(&group, None, started + Duration::from_millis(200), grace, "t");
        let watch = watch.unwrap();
        let mut status = None;
        assert!(wait_until(Duration::from_secs(10), || {
            status = child.try_wait().unwrap();
            status.is_some()
        }));
        let took = started.elapsed();
        assert!(group.lock().terminated, "no SIGTERM went out");
        assert!(took >= Duration::from_millis(500), "killed before the grace: {took:?}");
        assert_eq!(status.unwrap().signal(), Some(Signal::KILL.as_raw()));
        drop(watch);
        assert!(watchdog.shared.lock().due.is_empty());
    }

    #[test]
    fn a_run_over_in_time_is_left_alone_and_forgotten() {
        let watchdog = Watchdog::new(Logger::root(slog::Discard, slog::o!()));
        let mut child = sleeper("sleep 30");
        let pgid = child.id();
        let group = Arc::new(Group {
            state: Mutex::new(GroupState { pgid: Some(pgid), terminated: false }),
        });
        let far = Instant::now() + Duration::from_secs(3600);
        let watch = watchdog.watch(&group, None, far, Duration::from_secs(1), "t").unwrap();
        assert_eq!(watchdog.shared.lock().due.len(), 1);
        drop(watch);
        assert!(watchdog.shared.lock().due.is_empty());
        assert!(child.try_wait().unwrap().is_none(), "signalled although the run was over");
        child.kill().unwrap();
        child.wait().unwrap();
    }
}
