//! The master's relay of kept connections: a worker that retires passes each idle connection
//! to the master (see `fcgi_server::Handoff`), and the master passes it to a worker that
//! serves, so that no connection a web server keeps is ever closed by a reload, a recycle or
//! a scale-down.
//!
//! ```text
//!   retiring worker ──idle connection──▶ master (held) ──▶ a serving worker of the current
//!                                          │                generation (round robin)
//!                                          ├─ stopping, after a USR2 handover: the new master
//!                                          └─ stopping for good: closed, as a worker would
//! ```
//!
//! Each worker has a `SOCK_SEQPACKET` pair of its own: the master keeps one end, the worker
//! serves the other (it both sends and receives on it). A connection the master cannot place
//! at once (every worker is starting, or their queues are full) is held, and tried again at
//! each turn of the loop, for up to the graceful timeout: as long as it would have waited in
//! the worker that retired. Whatever the web server writes into a held connection waits in the
//! kernel meanwhile.

use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

use fcgi_server::Handoff;
use slog::{debug, warn, Logger};

use super::proc::{Phase, Proc};

/// A connection the master holds on its way to a worker.
struct Held {
    fd: OwnedFd,
    since: Instant,
}

/// The relay's state: the connections held, and where they may go besides the workers.
#[derive(Default)]
pub(super) struct Relay {
    /// Kept connections retiring workers passed on, not yet placed.
    held: VecDeque<Held>,
    /// Where the round robin of passed-on connections goes next.
    next_target: usize,
    /// The new master of an upgrade under way or done: where connections go once this one
    /// stops.
    pub(super) successor: Option<Handoff>,
    /// The old master, when this one was started by an upgrade.
    pub(super) predecessor: Option<Handoff>,
}

/// Where the connections the master receives go now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Route {
    /// To the workers of the current generation that serve.
    Workers,
    /// To the new master of a USR2 upgrade, which serves them with its own workers.
    Successor,
    /// Closed: the server stops, and nobody is left to serve them.
    Close,
}

/// Where received connections go: to the workers while serving; when stopping, to the new
/// master if this one handed over to it (and it still listens), else nowhere.
pub(super) fn route(stopping: bool, successor: bool) -> Route {
    match (stopping, successor) {
        (false, _) => Route::Workers,
        (true, true) => Route::Successor,
        (true, false) => Route::Close,
    }
}

/// Of the held connections (oldest first, by when they arrived), how many have waited
/// `limit` or more and are to be closed.
pub(super) fn expired(
    since: impl IntoIterator<Item = Instant>,
    now: Instant,
    limit: Duration,
) -> usize {
    since.into_iter().take_while(|&t| now.saturating_duration_since(t) >= limit).count()
}

impl Relay {
    /// A relay that also takes what `predecessor` (the old master of an upgrade) passes on.
    pub(super) fn new(predecessor: Option<Handoff>) -> Relay {
        Relay { predecessor, ..Relay::default() }
    }

    /// Whether no connection waits to be placed.
    pub(super) fn is_empty(&self) -> bool {
        self.held.is_empty()
    }

    /// The descriptors the relay waits on: each worker's end, and the old master's after an
    /// upgrade.
    pub(super) fn fds<'a>(&'a self, procs: &'a [Proc]) -> Vec<BorrowedFd<'a>> {
        let workers = procs.iter().filter_map(|p| p.handoff.as_ref());
        workers.chain(self.predecessor.as_ref()).map(AsFd::as_fd).collect()
    }

    /// Holds every connection waiting on `handoff` (a worker's end); false once its other end
    /// is gone.
    pub(super) fn receive(&mut self, handoff: &Handoff, now: Instant) -> bool {
        receive_all(handoff, &mut self.held, now)
    }

    /// Takes what the workers (and the old master) passed on, and places it: with the workers
    /// of `generation` that serve, or, once `stopping`, with the new master or nowhere. A
    /// connection held for `limit` (the graceful timeout) is closed.
    pub(super) fn relay(
        &mut self,
        procs: &mut [Proc],
        generation: u64,
        stopping: bool,
        log: &Logger,
        limit: Duration,
    ) {
        let now = Instant::now();
        for proc in procs.iter_mut() {
            if let Some(handoff) = &proc.handoff {
                if !receive_all(handoff, &mut self.held, now) {
                    proc.handoff = None;
                }
            }
        }
        if let Some(predecessor) = &self.predecessor {
            if !receive_all(predecessor, &mut self.held, now) {
                self.predecessor = None;
            }
        }
        if self.held.is_empty() {
            return;
        }
        match route(stopping, self.successor.is_some()) {
            Route::Close => {
                debug!(log, "stopping: closing the connections workers passed on";
                    "connections" => self.held.len());
                self.held.clear();
            }
            Route::Successor => self.pass_to_successor(log),
            Route::Workers => self.pass_to_workers(procs, generation),
        }
        let gone = expired(self.held.iter().map(|h| h.since), Instant::now(), limit);
        if gone > 0 {
            warn!(log, "no worker took kept connections within the graceful timeout; \
                closing them"; "connections" => gone, "graceful_timeout_ms" => limit.as_millis());
            self.held.drain(..gone);
        }
    }

    /// Round robin over `generation`'s serving workers, a batch at a time (fewer messages,
    /// fewer system calls); a worker whose socket buffer is full is skipped, one that refuses
    /// (draining, or gone) is not tried again.
    fn pass_to_workers(&mut self, procs: &mut [Proc], generation: u64) {
        while !self.held.is_empty() {
            let targets: Vec<usize> = (0..procs.len())
                .filter(|&i| {
                    let p = &procs[i];
                    p.generation == generation && p.phase == Phase::Serving && p.takes_connections
                })
                .collect();
            if targets.is_empty() {
                return;
            }
            let mut placed = 0;
            for k in 0..targets.len() {
                let i = targets[(self.next_target + k) % targets.len()];
                let Some(handoff) = &procs[i].handoff else { continue };
                match send_front(&self.held, handoff) {
                    Ok(sent) => {
                        self.next_target = (self.next_target + k + 1) % targets.len();
                        placed = sent;
                        break;
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    // Draining (or gone): it refuses them, but may still pass some back.
                    Err(_) => procs[i].takes_connections = false,
                }
            }
            if placed == 0 {
                return;
            }
            self.held.drain(..placed);
        }
    }

    fn pass_to_successor(&mut self, log: &Logger) {
        while !self.held.is_empty() {
            let Some(successor) = &self.successor else { return };
            match send_front(&self.held, successor) {
                Ok(sent) => {
                    self.held.drain(..sent);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) => {
                    warn!(log, "the new master takes no connections; closing those \
                        held"; "error" => %e, "connections" => self.held.len());
                    self.successor = None;
                    self.held.clear();
                    return;
                }
            }
        }
    }
}

/// Sends the first of the `held` connections (a batch: at most [`Handoff::MAX_BATCH`]) through
/// `handoff`: how many went, all of the batch or none.
fn send_front(held: &VecDeque<Held>, handoff: &Handoff) -> io::Result<usize> {
    let fds: Vec<BorrowedFd<'_>> =
        held.iter().take(Handoff::MAX_BATCH).map(|h| h.fd.as_fd()).collect();
    handoff.send_batch(&fds).map(|()| fds.len())
}

/// Moves every connection waiting on `handoff` into `held`; false once its other end is gone.
fn receive_all(handoff: &Handoff, held: &mut VecDeque<Held>, now: Instant) -> bool {
    loop {
        match handoff.receive() {
            Ok(Some(fds)) => held.extend(fds.into_iter().map(|fd| Held { fd, since: now })),
            Ok(None) => return false,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
            Err(_) => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_go_to_workers_then_to_the_new_master_or_nowhere() {
        let cases = [
            (false, false, Route::Workers),
            (false, true, Route::Workers),
            (true, true, Route::Successor),
            (true, false, Route::Close),
        ];
        for (stopping, successor, expected) in cases {
            assert_eq!(route(stopping, successor), expected, "{stopping} {successor}");
        }
    }

    #[test]
    fn only_connections_held_past_the_limit_expire() {
        let now = Instant::now();
        let s = Duration::from_secs;
        let at = |ago: u64| now.checked_sub(s(ago)).unwrap_or(now);
        let cases: [(&[u64], usize); 4] =
            [(&[], 0), (&[1, 0], 0), (&[30, 29, 1], 1), (&[40, 31, 30], 3)];
        for (ages, expected) in cases {
            assert_eq!(expired(ages.iter().map(|&a| at(a)), now, s(30)), expected, "{ages:?}");
        }
    }
}
