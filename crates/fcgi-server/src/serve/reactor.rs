//! The event set every waiting thread shares: listeners and connections, each handled by the
//! thread that took its event, start to end.
//!
//! # Who does what
//!
//! - **Workers** (the pool's `fcgi-worker-N` threads), when idle, wait in the one epoll set
//!   ([`fcgi_pool::Source::wait`]); the kernel gives each event to one of them (the one that
//!   waited last, which is the one whose cache is warm). A worker that takes a connection's
//!   event counts itself busy (as if the pool had handed it a job, spares topped up alike),
//!   reads and decodes the connection, re-arms it, and then **runs the request it completed
//!   itself**: no hand-off, no second thread woken. Other requests completed by the same read
//!   (multiplexing) go to the pool as before. A listener's event is an accept loop.
//! - The **monitor** (the thread in [`Server::serve`](crate::Server::serve)) keeps time
//!   (timeouts, draining) and stands in for the workers when none is idle: then it waits in
//!   the set too, and hands what it reads to the pool, which queues it for the next thread
//!   (with the queue timeout) or answers 503 OVERLOADED at once. So a request never waits
//!   unread because every thread runs a handler, and an idle connection never holds a thread.
//!
//! # One connection, one thread at a time
//!
//! Sockets are registered one-shot (`epoll.rs`): the thread that took the event owns the
//! socket until it re-arms it, and the lock on the connection's read state is only ever
//! contended by the monitor's sweep. The thread re-arms before it runs the request, so that
//! the rest of the connection's input (a streamed body, an abort, another multiplexed
//! request) is read by whichever thread is free meanwhile.
//!
//! ```text
//!   idle worker ──epoll event──▶ claims itself busy ──▶ reads, decodes, routes (conn lock)
//!        ▲                                                   │ re-arms the socket
//!        │                                                   ▼
//!        └────────── back to idle ◀─────────── runs the request it completed
//!
//!   monitor: parked ──no idle worker──▶ waits in the set, reads, hands requests to the pool
//!            (queue or 503) ──an idle worker again──▶ parked; every second: the sweep
//! ```

use std::collections::HashMap;
use std::io;
use std::net::IpAddr;
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::thread::Thread;
use std::time::{Duration, Instant};

use fcgi_pool::{Source, Wait};
use slog::{debug, error, o, warn};

use crate::conn::connection::{Close, Connection, Turn};
use crate::conn::refusals::{Refusals, Summary, Whose};
use crate::io::epoll::{event_of, Epoll, Event, EventFd, Interest, RawEvent, NO_EVENT};
use crate::io::handoff::Handoff;
use crate::io::listener::{Listener, Stream};
use crate::io::writer::Writer;
use crate::sys;
use crate::work::context::Context;
use crate::work::handler::Handlers;
use crate::work::job::Job;

/// The pool's wake-ups (see [`Source::wake`]).
pub(crate) const WAKE: u64 = 0;
/// Listener `i` has token `i + 1`; then the hand-off socket; connections come after,
/// numbered on, never reused.
const FIRST_LISTENER: u64 = 1;

/// Connections one thread accepts in a row: enough for a burst, few enough that the thread
/// soon reads the first of them.
const ACCEPTS_PER_TURN: usize = 64;

/// What became of an idle connection offered to the hand-off socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Handed {
    /// It is the other process's now.
    Over,
    /// Not now (the socket's buffer is full, a few hundred connections in flight; or an answer
    /// is still queued): it stays, served here, and is offered again at the next sweep.
    Later,
    /// There is no hand-off (none, or its other end is gone): closed as without one.
    Never,
}

/// Whether a connection being closed is armed in the set (the closer did not take its event).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum InSet {
    /// Armed, or may be: it is taken out.
    Maybe,
    /// Disarmed (the closer took its event) or never added: closing the descriptor is enough.
    No,
}

/// While draining with no hand-off, how long a connection accepted but not yet read from is
/// kept for its first request: the web server connected to send one, and closing it now would
/// fail that request (a web server retries a request only on a connection it had kept, not on
/// a fresh one).
pub(crate) const DRAIN_FRESH_GRACE: Duration = Duration::from_secs(1);

/// Messages taken from the hand-off socket in one turn, as accepts are.
const HANDED_PER_TURN: usize = ACCEPTS_PER_TURN;

/// A connection's read side, and what the set needs to know of it.
#[derive(Debug)]
pub(crate) struct Entry {
    state: Mutex<ConnState>,
}

#[derive(Debug)]
struct ConnState {
    conn: Connection,
    /// Closed by whoever held it last: an event taken just before is ignored.
    closed: bool,
    /// When it was accepted, until its first event.
    accepted: Option<Instant>,
    /// Whether its socket is in the set. A connection accepted and read at once joins it only
    /// when that read re-arms it: one `epoll_ctl` instead of an add and a re-arm.
    in_set: bool,
}

impl Entry {
    fn lock(&self) -> MutexGuard<'_, ConnState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The shared event set and everything in it.
pub(crate) struct Reactor {
    epoll: Epoll,
    waker: EventFd,
    /// Set once the context exists (the context's pool is built with this reactor).
    ctx: OnceLock<Arc<Context>>,
    /// The app's handlers, by role, which every connection's requests go to.
    handlers: Arc<Handlers>,
    /// The listeners, by index; taken out when draining begins.
    listeners: Mutex<Vec<Option<Arc<Listener>>>>,
    /// Where idle connections go when draining, and connections come from to be served (see
    /// `handoff.rs`); `handoff_open` is cleared once the other end is gone.
    handoff: Option<Handoff>,
    handoff_open: AtomicBool,
    handoff_token: u64,
    first_connection: u64,
    next_token: AtomicU64,
    accepting: AtomicBool,
    /// Set when an accept failed for lack of descriptors or memory: that listener is left
    /// disarmed, and the sweep re-arms it.
    accept_backoff: AtomicBool,
    draining: AtomicBool,
    /// Set by the monitor, under the table's lock, once nothing is left to serve: from then on
    /// no connection is registered (the process is about to exit).
    done: AtomicBool,
    conns: Mutex<HashMap<u64, Arc<Entry>>>,
    allow: Option<Vec<IpAddr>>,
    /// Peers the allow-list refused, counted so that each is logged once per window.
    refusals: Mutex<Refusals>,
    /// The monitor, woken when no worker is idle.
    monitor: OnceLock<Thread>,
}

impl std::fmt::Debug for Reactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reactor").field("epoll", &self.epoll).finish_non_exhaustive()
    }
}

impl Reactor {
    pub(crate) fn new(
        listeners: Vec<Listener>,
        allow: Option<Vec<IpAddr>>,
        handoff: Option<Handoff>,
        handlers: Arc<Handlers>,
    ) -> io::Result<Reactor> {
        let epoll = Epoll::new()?;
        let waker = EventFd::new()?;
        epoll.add_waker(&waker, WAKE)?;
        let handoff_token = FIRST_LISTENER + listeners.len() as u64;
        let first_connection = handoff_token + 1;
        Ok(Reactor {
            epoll,
            waker,
            ctx: OnceLock::new(),
            handlers,
            listeners: Mutex::new(listeners.into_iter().map(|l| Some(Arc::new(l))).collect()),
            handoff_open: AtomicBool::new(handoff.is_some()),
            handoff,
            handoff_token,
            first_connection,
            next_token: AtomicU64::new(first_connection),
            accepting: AtomicBool::new(true),
            accept_backoff: AtomicBool::new(false),
            draining: AtomicBool::new(false),
            done: AtomicBool::new(false),
            conns: Mutex::new(HashMap::new()),
            allow,
            refusals: Mutex::new(Refusals::default()),
            monitor: OnceLock::new(),
        })
    }

    /// Puts the reactor to work: the context is known, the calling thread is the monitor,
    /// and the listeners go into the set.
    pub(crate) fn start(&self, ctx: Arc<Context>) -> io::Result<()> {
        let _ = self.ctx.set(ctx);
        let _ = self.monitor.set(std::thread::current());
        for (i, listener) in self.listeners().iter().enumerate() {
            if let Some(listener) = listener {
                listener.set_nonblocking(true)?;
                self.epoll.add(listener.fd(), FIRST_LISTENER + i as u64, Interest::Read)?;
            }
        }
        if let Some(handoff) = &self.handoff {
            self.epoll.add(handoff, self.handoff_token, Interest::Read)?;
        }
        Ok(())
    }

    fn listeners(&self) -> MutexGuard<'_, Vec<Option<Arc<Listener>>>> {
        self.listeners.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn conns(&self) -> MutexGuard<'_, HashMap<u64, Arc<Entry>>> {
        self.conns.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// While draining: whether nothing is left to serve (no connection, no request running or
    /// queued); if so, no connection is registered from now on, so that none arrives (a
    /// thread in the middle of an accept or a hand-off) after the server decided to stop.
    pub(crate) fn finish_if_empty(&self, active: &AtomicUsize) -> bool {
        let conns = self.conns();
        if conns.is_empty() && active.load(Ordering::Acquire) == 0 {
            self.done.store(true, Ordering::Release);
            return true;
        }
        false
    }

    /// Wakes a worker waiting in the set (the monitor passing on a wake it took).
    pub(crate) fn wake_one(&self) {
        self.waker.wake();
    }

    /// Waits in the set for up to `events.len()` events. For the monitor.
    pub(crate) fn wait<'e>(
        &self,
        events: &'e mut [RawEvent],
        timeout: Duration,
    ) -> io::Result<impl Iterator<Item = Event> + 'e> {
        let n = self.epoll.wait(events, Some(timeout))?;
        Ok(events[..n].iter().map(event_of))
    }

    /// Handles one event: accepts, or reads a connection. With `keep`, a request completed by
    /// the read is left there for the caller to run, after the connection is let go of; the
    /// connection read is returned, for [`after_job`](Reactor::after_job), with whether it
    /// was told to end already (a refusal's answer). Whether the request left to run is its
    /// last, its own FCGI_KEEP_CONN says (`Source::handle`).
    pub(crate) fn handle_event(
        &self,
        event: Event,
        keep: Option<&mut Option<Job>>,
    ) -> Option<(u64, bool)> {
        let ctx = self.ctx.get()?;
        if event.token == WAKE {
            return None;
        }
        if event.token == self.handoff_token {
            self.receive_handed(ctx);
            return None;
        }
        if event.token < self.first_connection {
            if !self.accepting.load(Ordering::Acquire) {
                return None;
            }
            return self.accept(ctx, (event.token - FIRST_LISTENER) as usize, keep);
        }
        let entry = self.conns().get(&event.token).cloned()?;
        let finishing = self.read(ctx, event, &entry, keep);
        Some((event.token, finishing))
    }

    /// Reads a connection whose event this thread took, and re-arms it (or closes it); whether
    /// it stays open with its last request come.
    fn read(
        &self,
        ctx: &Arc<Context>,
        event: Event,
        entry: &Entry,
        keep: Option<&mut Option<Job>>,
    ) -> bool {
        let mut state = entry.lock();
        if state.closed {
            return false;
        }
        let conn = &mut state.conn;
        let mut result = Ok(Turn::Drained);
        if event.writable || conn.paused {
            result = conn.writer().flush_pending().map(|_| Turn::Drained).map_err(Close::Io);
        }
        if result.is_ok() {
            if conn.paused && !conn.writer().may_resume() {
                // Still too many answers waiting: the socket stays unread.
                result = Ok(Turn::Paused);
            } else {
                if conn.paused {
                    // Its input waited on this side: the timers of its input start again.
                    conn.paused = false;
                    conn.last_read = Instant::now();
                }
                // Turn::More needs nothing here: re-arming puts the socket behind the others.
                result = conn.on_readable(ctx, event.closing, keep);
            }
        }
        let last_read = state.conn.last_read;
        if state.accepted.is_some_and(|accepted| last_read > accepted) {
            state.accepted = None;
        }
        if let Ok(turn) = result {
            let awaited = state.accepted.is_some();
            let conn = &mut state.conn;
            conn.paused = turn == Turn::Paused;
            // Answers the socket could not take wait for it to turn writable.
            let want_writes = conn.writer().has_pending();
            conn.watching_writes = want_writes;
            if self.draining.load(Ordering::Acquire) && conn.is_idle() {
                match self.hand_off(ctx, event.token, &mut state) {
                    Handed::Over => return false,
                    Handed::Never if !awaited => {
                        self.close(ctx, event.token, &mut state, InSet::No, "server draining");
                        return false;
                    }
                    Handed::Never | Handed::Later => {}
                }
            }
            // Backpressure: a paused connection is watched for room to write its answers
            // only; its web server's requests wait in the socket meanwhile.
            let interest = match (state.conn.paused, want_writes) {
                (true, _) => Interest::Write,
                (false, true) => Interest::ReadWrite,
                (false, false) => Interest::Read,
            };
            let stream = state.conn.writer().stream();
            let armed = if state.in_set {
                self.epoll.rearm(stream, event.token, interest)
            } else {
                self.epoll.add(stream, event.token, interest)
            };
            state.in_set |= armed.is_ok();
            result = armed.map(|()| turn).map_err(Close::Io);
        }
        match result {
            Ok(_) => state.conn.writer().is_finishing(),
            Err(close) => {
                // Not re-armed: the event taken was its last.
                self.closed(ctx, event.token, &mut state, InSet::No, close);
                false
            }
        }
    }

    /// Accepts a connection and reads it at once: a web server sends its request as soon as
    /// it is connected, so that read usually finds it, and the request runs here (with
    /// `keep`), with no event and no other thread in between.
    ///
    /// While other threads are idle, one connection per event: the listener, re-armed at
    /// once, is the next idle thread's, which accepts the next connection in parallel. When
    /// none is idle, all the connections waiting (up to [`ACCEPTS_PER_TURN`]): the listener's
    /// next event would wait behind every connection's that is ready, and one accept per turn
    /// then left new connections in the kernel's queue for seconds (256 connections against 4
    /// threads). The ones not read here go into the set armed, reported at once if their
    /// request is there already.
    fn accept(
        &self,
        ctx: &Arc<Context>,
        index: usize,
        keep: Option<&mut Option<Job>>,
    ) -> Option<(u64, bool)> {
        let listener = self.listeners().get(index).cloned().flatten()?;
        let token_of_listener = FIRST_LISTENER + index as u64;
        let mut first = None;
        let mut backoff = false;
        let turn = if ctx.pool.stats().idle == 0 { ACCEPTS_PER_TURN } else { 1 };
        for _ in 0..turn {
            let (stream, peer) = match listener.accept() {
                Ok(accepted) => accepted,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::Interrupted | io::ErrorKind::ConnectionAborted
                    ) =>
                {
                    continue
                }
                Err(e) => {
                    // Out of descriptors or memory: leave the queue to the kernel and retry soon.
                    error!(ctx.log, "accept failed; retrying at the next sweep"; "listener" => %listener, "error" => %e);
                    self.accept_backoff.store(true, Ordering::Release);
                    backoff = true;
                    break;
                }
            };
            if let (Some(allow), Some(ip)) = (&self.allow, peer) {
                if !allow.contains(&ip.to_canonical()) {
                    self.refused(ctx, ip.to_canonical(), index);
                    continue;
                }
            }
            let peer = peer.map(|ip| ip.to_string());
            // The first joins the set when the read below arms it.
            let Some(registered) = self.register(ctx, stream, peer, first.is_some()) else {
                continue;
            };
            if first.is_none() {
                first = Some(registered);
            }
        }
        if !backoff {
            self.rearm_listener(&listener, token_of_listener);
        }
        let (token, entry) = first?;
        let finishing =
            self.read(ctx, Event { token, writable: false, closing: false }, &entry, keep);
        Some((token, finishing))
    }

    /// Puts a new connection (accepted, or handed over; non-blocking) in the table, and in
    /// the set armed if `armed` (else the caller reads it and arms it); `None` if it could not
    /// be watched, or the server is done (it is closed).
    fn register(
        &self,
        ctx: &Arc<Context>,
        stream: Stream,
        peer: Option<String>,
        armed: bool,
    ) -> Option<(u64, Arc<Entry>)> {
        // The table's lock orders this against the monitor's last look (`finish_if_empty`): a
        // connection is either in the table then, or refused here.
        let mut conns = self.conns();
        if self.done.load(Ordering::Acquire) {
            return None;
        }
        let token = self.next_token.fetch_add(1, Ordering::Relaxed);
        let open = ctx.counters.connections.fetch_add(1, Ordering::AcqRel) + 1;
        let over_limit = open > ctx.config.max_conns;
        let log = ctx.log.new(o!("conn" => token));
        debug!(log, "connection accepted"; "peer" => peer, "over_limit" => over_limit);
        let writer = Arc::new(Writer::new(stream, ctx.config.write_timeout));
        let entry = Arc::new(Entry {
            state: Mutex::new(ConnState {
                // A second handle on the writer, to register its socket below without the
                // connection's lock: a reference count, no system call.
                conn: Connection::new(
                    Arc::clone(&writer),
                    Arc::clone(&self.handlers),
                    log,
                    over_limit,
                ),
                closed: false,
                accepted: Some(Instant::now()),
                in_set: armed,
            }),
        });
        // In the table before it is in the set: its first event may come at once.
        conns.insert(token, Arc::clone(&entry));
        drop(conns);
        if !armed {
            return Some((token, entry));
        }
        if let Err(e) = self.epoll.add(writer.stream(), token, Interest::Read) {
            let mut state = entry.lock();
            warn!(state.conn.log(), "cannot watch a connection"; "error" => %e);
            self.close(ctx, token, &mut state, InSet::No, "cannot watch");
            return None;
        }
        Some((token, entry))
    }

    /// Serves the connections that came through the hand-off socket, as if accepted: armed, so
    /// that a request already waiting in one is reported at once.
    fn receive_handed(&self, ctx: &Arc<Context>) {
        let Some(handoff) = &self.handoff else { return };
        for _ in 0..HANDED_PER_TURN {
            match handoff.receive() {
                Ok(Some(fds)) => {
                    for fd in fds {
                        // Draining: straight back, for the other end to place elsewhere.
                        if self.draining.load(Ordering::Acquire) && handoff.send(&fd).is_ok() {
                            continue;
                        }
                        // Non-blocking as the sender left it, unless another program sent it.
                        match Stream::from_fd(fd).and_then(|s| s.set_nonblocking(true).map(|()| s))
                        {
                            Ok(stream) => {
                                let _ =
                                    self.register(ctx, stream, Some("handed over".into()), true);
                            }
                            Err(e) => {
                                warn!(ctx.log, "a descriptor handed over is not a connection; closed";
                                    "error" => %e)
                            }
                        }
                    }
                }
                Ok(None) if self.draining.load(Ordering::Acquire) => return,
                Ok(None) => {
                    // The other end (the master) is gone: nothing comes in, nothing goes out.
                    self.handoff_open.store(false, Ordering::Release);
                    let _ = self.epoll.delete(handoff);
                    return;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    warn!(ctx.log, "reading the hand-off socket failed"; "error" => %e);
                    break;
                }
            }
        }
        if !self.draining.load(Ordering::Acquire) {
            let _ = self.epoll.rearm(handoff, self.handoff_token, Interest::Read);
        }
    }

    /// Passes an idle connection on through the hand-off socket instead of closing it (see
    /// [`Handed`]; the connection is left as it is unless it went over). The caller holds the
    /// connection's lock and has seen it idle: no request open, no record begun. The socket
    /// itself stays open throughout: what the web server writes into it meanwhile waits in the
    /// kernel for the process that receives it.
    fn hand_off(&self, ctx: &Context, token: u64, state: &mut ConnState) -> Handed {
        let Some(handoff) = &self.handoff else { return Handed::Never };
        if state.closed || !self.handoff_open.load(Ordering::Acquire) {
            return Handed::Never;
        }
        let writer = state.conn.writer();
        // A connection that failed is closed; one with answers still queued waits for them.
        if writer.is_broken() {
            return Handed::Never;
        }
        if writer.has_pending() {
            return Handed::Later;
        }
        match handoff.send(writer.stream()) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Handed::Later,
            Err(e) => {
                debug!(ctx.log, "the hand-off socket does not take connections; closing them";
                    "error" => %e);
                self.handoff_open.store(false, Ordering::Release);
                return Handed::Never;
            }
        }
        // The open file lives on in the other process: the set would go on watching it
        // (a set entry goes only when the last descriptor of the file closes).
        let _ = self.epoll.delete(state.conn.writer().stream());
        state.closed = true;
        self.conns().remove(&token);
        debug!(state.conn.log(), "connection handed over");
        // Never shut down: the socket is the receiver's now. Our descriptor closes when the
        // entry is dropped.
        ctx.counters.connections.fetch_sub(1, Ordering::AcqRel);
        Handed::Over
    }

    /// Right after a request this thread ran, its connection, if that left it idle (its
    /// END_REQUEST out): closed at once when the request was its last (FCGI_KEEP_CONN clear),
    /// rather than when the web server's close wakes a thread for it; while draining, handed
    /// over at once rather than at the next sweep. A kept connection outside draining, the
    /// usual case, costs nothing here: `finishing` says whether the request was its last.
    /// With `finishing`, the answer went out without our side shut down
    /// ([`Writer::defer_shutdown`]): closed here, or shut down here.
    fn after_job(&self, token: u64, finishing: bool) {
        if !finishing && !self.draining.load(Ordering::Acquire) {
            return;
        }
        let Some(ctx) = self.ctx.get() else { return };
        let Some(entry) = self.conns().get(&token).cloned() else { return };
        let mut state = entry.lock();
        if state.closed {
            return;
        }
        let idle = state.conn.is_idle();
        let writer = state.conn.writer();
        if idle && writer.is_finishing() {
            // Input after the last request (an abort of it, a web server's mistake) is left to
            // the reading thread, which takes it in before the close.
            if !sys::has_input(writer.stream().as_fd()).unwrap_or(true) {
                self.close(ctx, token, &mut state, InSet::No, "answered its last request");
                return;
            }
        }
        if finishing {
            // Not closed here: our side is shut down as it would have been without the
            // deferral, and the web server's close ends it.
            writer.end_deferred();
        }
        if !idle || writer.is_finishing() {
            return;
        }
        if self.draining.load(Ordering::Acquire) {
            // Later or never: the sweep sees to it.
            let _ = self.hand_off(ctx, token, &mut state);
        }
    }

    fn rearm_listener(&self, listener: &Listener, token: u64) {
        // Draining may have begun meanwhile: then the listener is out of the set, and this fails.
        let _ = self.epoll.rearm(listener.fd(), token, Interest::Read);
    }

    /// Closes a connection for `close`, logged as it deserves.
    fn closed(
        &self,
        ctx: &Context,
        token: u64,
        state: &mut ConnState,
        in_set: InSet,
        close: Close,
    ) {
        // A connection whose web server stopped reading is closed by whoever notices first:
        // the sweep, a handler whose write timed out, or the reading thread that then finds
        // the socket shut; each time, it is closed for not reading.
        let close = if state.conn.writer().timed_out() { Close::NotReading } else { close };
        let why = match close {
            Close::PeerClosed => "closed by the web server",
            Close::Io(e) => {
                debug!(state.conn.log(), "connection failed"; "error" => %e);
                "i/o error"
            }
            Close::Protocol(message) => {
                warn!(state.conn.log(), "protocol error; connection closed"; "error" => message);
                "protocol error"
            }
            Close::PartialRecord => {
                warn!(state.conn.log(), "read timeout: a record was begun and never finished; connection closed";
                    "timeout_s" => ctx.config.read_timeout.as_secs());
                "read timeout"
            }
            Close::NotReading => {
                warn!(state.conn.log(), "the web server does not read its answers; connection closed";
                    "limit" => "write_timeout",
                    "write_timeout_s" => ctx.config.write_timeout.as_secs_f64(),
                    "pending_bytes" => state.conn.writer().pending_len());
                "not reading"
            }
        };
        self.close(ctx, token, state, in_set, why);
    }

    fn close(&self, ctx: &Context, token: u64, state: &mut ConnState, in_set: InSet, why: &str) {
        if state.closed {
            return;
        }
        state.closed = true;
        let conn = &mut state.conn;
        if in_set == InSet::Maybe {
            let _ = self.epoll.delete(conn.writer().stream());
        }
        self.conns().remove(&token);
        debug!(conn.log(), "connection closed"; "why" => why);
        // Broken before aborted: a handler that sees its request aborted tells an abort from a
        // connection gone by the wire (job.rs). With no request open there is no handler
        // writing to stop, and the descriptor's close (the entry's drop) ends the connection.
        if conn.is_idle() {
            conn.writer().mark_broken();
        } else {
            conn.writer().close();
        }
        conn.abort_all();
        ctx.counters.connections.fetch_sub(1, Ordering::AcqRel);
    }

    /// Logs a peer the allow-list refused, unless it was logged within the window; the line
    /// counts the refusals that had none ([`Refusals`]).
    fn refused(&self, ctx: &Context, ip: IpAddr, index: usize) {
        let line = self.refusals.lock().unwrap_or_else(PoisonError::into_inner).refused(
            ip,
            Instant::now(),
            index,
        );
        if let Some(line) = line {
            self.log_refused(ctx, &line);
        }
    }

    /// Logs the refusals that had no line, for peers whose window is over.
    fn log_refusals(&self, ctx: &Context, now: Instant) {
        let lines = {
            let mut refusals = self.refusals.lock().unwrap_or_else(PoisonError::into_inner);
            if refusals.is_empty() {
                return;
            }
            refusals.sweep(now)
        };
        for line in lines {
            self.log_refused(ctx, &line);
        }
    }

    /// One line of refusals: a peer's, or the shared count of the peers past the table.
    fn log_refused(&self, ctx: &Context, line: &Summary) {
        let listener = self.listeners().get(line.listener).cloned().flatten();
        let listener = listener.map_or_else(|| "-".to_owned(), |l| l.to_string());
        match line.whose {
            Whose::Peer(ip) => warn!(ctx.log, "connection refused: peer not allowed";
                "peer" => %ip, "listener" => listener, "refused" => line.refused),
            Whose::Others => warn!(ctx.log,
                "connections refused: peers not allowed (too many to count each)";
                "listener" => listener, "refused" => line.refused, "peers" => "others"),
        }
    }

    /// The monitor's periodic look at every connection: idle ones past the idle timeout (or
    /// all idle ones, draining) are closed, busy ones checked for their timeouts; and the
    /// refused peers' counts that are due.
    pub(crate) fn sweep(&self, now: Instant) {
        let Some(ctx) = self.ctx.get() else { return };
        if self.allow.is_some() {
            self.log_refusals(ctx, now);
        }
        if self.accepting.load(Ordering::Acquire)
            && self.accept_backoff.swap(false, Ordering::AcqRel)
        {
            for (i, listener) in self.listeners().iter().enumerate() {
                if let Some(listener) = listener {
                    // Re-arming reports the connections waiting in the queue.
                    let _ =
                        self.epoll.rearm(listener.fd(), FIRST_LISTENER + i as u64, Interest::Read);
                }
            }
        }
        let config = &ctx.config;
        let draining = self.draining.load(Ordering::Acquire);
        // Not under the table's lock: a connection's lock is taken before the table's.
        let entries: Vec<(u64, Arc<Entry>)> =
            self.conns().iter().map(|(token, entry)| (*token, Arc::clone(entry))).collect();
        for (token, entry) in entries {
            let mut state = entry.lock();
            if state.closed {
                continue;
            }
            let quiet = now.saturating_duration_since(state.conn.last_read);
            let awaited = state.accepted.is_some_and(|t| now - t < DRAIN_FRESH_GRACE);
            if state.conn.writer().stalled(now) || state.conn.writer().timed_out() {
                self.closed(ctx, token, &mut state, InSet::Maybe, Close::NotReading);
            } else if state.conn.is_idle() {
                let handed =
                    if draining { self.hand_off(ctx, token, &mut state) } else { Handed::Never };
                if handed == Handed::Over {
                    continue;
                }
                if (draining && !awaited && handed == Handed::Never)
                    || quiet >= config.idle_timeout
                    || state.conn.writer().is_broken()
                {
                    self.close(ctx, token, &mut state, InSet::Maybe, "idle");
                } else {
                    state.conn.shrink();
                }
            } else if let Err(close) = state.conn.sweep(now, ctx) {
                self.closed(ctx, token, &mut state, InSet::Maybe, close);
            }
        }
    }

    /// Draining begins: no more connections; idle ones are handed over (or closed) as they
    /// are seen.
    pub(crate) fn stop_accepting(&self) {
        self.accepting.store(false, Ordering::Release);
        self.draining.store(true, Ordering::Release);
        if let (Some(handoff), Some(ctx)) = (&self.handoff, self.ctx.get()) {
            // No more connections from the other end either: it places them elsewhere from
            // now on. Those already sent are taken in, to be handed back at the sweep.
            let _ = self.epoll.delete(handoff);
            let _ = handoff.stop_receiving();
            self.receive_handed(ctx);
        }
        let mut listeners = self.listeners();
        for listener in listeners.iter_mut() {
            if let Some(listener) = listener.take() {
                let _ = self.epoll.delete(listener.fd());
                // Dropping the last reference closes it and removes our Unix socket file.
            }
        }
    }

    /// Closes every connection left.
    pub(crate) fn close_all(&self, why: &str) {
        let Some(ctx) = self.ctx.get() else { return };
        let entries: Vec<(u64, Arc<Entry>)> =
            self.conns().iter().map(|(token, entry)| (*token, Arc::clone(entry))).collect();
        for (token, entry) in entries {
            self.close(ctx, token, &mut entry.lock(), InSet::Maybe, why);
        }
    }
}

impl Source for Reactor {
    fn wait(&self, timeout: Option<Duration>) -> Wait {
        let mut events = [NO_EVENT];
        match self.epoll.wait(&mut events, timeout) {
            Ok(1) => {
                let event = event_of(&events[0]);
                if event.token == WAKE {
                    Wait::Woken
                } else {
                    Wait::Work(event.pack())
                }
            }
            Ok(_) if timeout.is_some() => Wait::TimedOut,
            Ok(_) => Wait::Woken,
            Err(e) => {
                // Not expected of a valid set; a pause, so that it cannot spin.
                if let Some(ctx) = self.ctx.get() {
                    error!(ctx.log, "epoll_wait failed"; "error" => %e);
                }
                std::thread::sleep(Duration::from_millis(100));
                Wait::Woken
            }
        }
    }

    fn wake(&self) {
        self.waker.wake();
    }

    fn handle(&self, work: u64, may_run: bool) {
        let mut kept = None;
        let event = Event::unpack(work);
        let read = self.handle_event(event, may_run.then_some(&mut kept));
        if let (Some(job), Some((token, finishing))) = (kept, read) {
            // The connection's end is known once the request is answered: the read can tell
            // only of a refusal's.
            let finishing = finishing || !job.request.keep_conn();
            if finishing {
                // after_job closes the connection, or ends the deferral.
                job.response.writer().defer_shutdown();
            }
            job.run();
            self.after_job(token, finishing);
        }
    }

    fn thread_started(&self) {
        crate::sys::no_wakeup_preemption();
    }

    fn no_idle(&self) {
        if let Some(monitor) = self.monitor.get() {
            monitor.unpark();
        }
    }
}
