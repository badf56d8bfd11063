//! What the process does with signals, and how its threads are scheduled.

use std::ffi::c_int;
use std::io;

/// What a process does with a signal, as `sigaction` tells.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SignalAction {
    /// The default action (for TERM and INT: the process ends).
    Default,
    /// Ignored (`SIG_IGN`): what `nohup` and a shell's background jobs are given.
    Ignored,
    /// A handler of the process's own.
    Handled,
}

/// What the process does with `signal` now; changes nothing. libc: rustix has no safe
/// `sigaction`.
pub(crate) fn signal_action(signal: c_int) -> io::Result<SignalAction> {
    // SAFETY: an all-zero sigaction is valid; with a null new action, sigaction only writes
    // the current one into `old`, which we own.
    let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
    // SAFETY: see above.
    if unsafe { libc::sigaction(signal, std::ptr::null(), &mut old) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(match old.sa_sigaction {
        libc::SIG_DFL => SignalAction::Default,
        libc::SIG_IGN => SignalAction::Ignored,
        _ => SignalAction::Handled,
    })
}

/// Asks the scheduler not to let the calling thread preempt the running one when it wakes
/// (`SCHED_BATCH`, which needs no privilege; the nice value is kept). Best effort: a system
/// that refuses leaves the thread as it was. libc: rustix has no `sched_setscheduler`.
///
/// Why: a worker wakes for each request the web server writes, on a machine where the web
/// server runs too. Allowed to preempt, it preempts the web server at each request, and
/// nginx, the bottleneck, spends more CPU a request. Without wake-up preemption the worker
/// runs when nginx yields the CPU, by which time nginx has written more requests (DESIGN.md
/// has the numbers). Handlers run under it too, and what they start (threads, a CGI program)
/// inherits it.
pub(crate) fn no_wakeup_preemption() {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: `param` lives for the call, which only reads it; 0 is the calling thread.
    // Refused, the thread keeps its policy: the result is ignored on purpose (best effort).
    let _ = unsafe { libc::sched_setscheduler(0, libc::SCHED_BATCH, &param) };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signal_actions_read_as_they_are() {
        // Nothing can catch or ignore KILL.
        assert_eq!(signal_action(libc::SIGKILL).unwrap(), SignalAction::Default);
        assert!(signal_action(-1).is_err());
    }

    #[test]
    fn a_thread_gives_up_wakeup_preemption() {
        std::thread::spawn(|| {
            no_wakeup_preemption();
            // SAFETY: sched_getscheduler takes no pointer; 0 is the calling thread.
            assert_eq!(unsafe { libc::sched_getscheduler(0) }, libc::SCHED_BATCH);
        })
        .join()
        .unwrap();
    }
}
