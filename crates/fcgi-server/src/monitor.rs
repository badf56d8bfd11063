//! The monitor: one thread that accepts connections and reads every one of them.
//!
//! Idle keep-alive connections sit in epoll here and hold no pool thread; that is the whole
//! point. A readable socket is read and decoded on this thread without blocking, and only a
//! request whose params are complete takes a pool thread, for its handler. So 10,000 idle
//! connections cost 10,000 descriptors and a few hundred bytes each, and the pool's threads all
//! go to work.

use std::collections::HashMap;
use std::io;
use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use slog::{debug, error, info, o, warn};

use crate::connection::{Close, Connection, Turn};
use crate::context::Context;
use crate::listener::Listener;
use crate::server::ShutdownState;
use crate::wire::Wire;

pub(crate) const WAKER: Token = Token(0);
/// Listener `i` has token `i + 1`; connections come after, numbered from here, never reused.
const FIRST_LISTENER: usize = 1;

/// How often timeouts are checked, and how often while draining.
const SWEEP: Duration = Duration::from_secs(1);
const DRAIN_SWEEP: Duration = Duration::from_millis(20);
/// While draining, how long a connection accepted but not yet read from is kept for its first
/// request: the web server connected to send one, and closing it now would fail that request
/// (a web server retries a request only on a connection it had kept, not on a fresh one).
const DRAIN_FRESH_GRACE: Duration = Duration::from_secs(1);

pub(crate) struct Monitor {
    pub(crate) poll: Poll,
    pub(crate) listeners: Vec<Listener>,
    pub(crate) ctx: Arc<Context>,
    pub(crate) shutdown: Arc<ShutdownState>,
    pub(crate) allow: Option<Vec<IpAddr>>,
}

/// What `serve` did, told when it returns.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ServeReport {
    /// Requests answered by a handler.
    pub requests: u64,
    /// Requests still running when the graceful timeout ran out.
    pub unfinished: usize,
}

struct State {
    conns: HashMap<usize, Connection>,
    /// Tokens below this are listeners'.
    first_connection: usize,
    next_token: usize,
    accepting: bool,
    /// Set when an accept failed for lack of descriptors or memory: retried at the next sweep.
    accept_backoff: bool,
    drain_deadline: Option<Instant>,
    /// Connections accepted and not yet readable, with when they were accepted.
    fresh: HashMap<usize, Instant>,
    /// Connections whose read turn ended with bytes possibly left (and whether the peer had
    /// hung up): read again after the events at hand, without waiting for a new event.
    more: Vec<(usize, bool)>,
}

impl Monitor {
    pub(crate) fn run(mut self) -> io::Result<ServeReport> {
        for (i, listener) in self.listeners.iter().enumerate() {
            listener.set_nonblocking(true)?;
            self.poll.registry().register(
                &mut SourceFd(&listener.raw_fd()),
                Token(FIRST_LISTENER + i),
                Interest::READABLE,
            )?;
        }
        let mut state = State {
            conns: HashMap::new(),
            first_connection: FIRST_LISTENER + self.listeners.len(),
            next_token: FIRST_LISTENER + self.listeners.len(),
            accepting: true,
            accept_backoff: false,
            drain_deadline: None,
            fresh: HashMap::new(),
            more: Vec::new(),
        };
        let mut events = Events::with_capacity(1024);
        let mut next_sweep = Instant::now() + SWEEP;
        loop {
            let timeout = if state.more.is_empty() {
                next_sweep.saturating_duration_since(Instant::now())
            } else {
                Duration::ZERO
            };
            let more = std::mem::take(&mut state.more);
            if let Err(e) = self.poll.poll(&mut events, Some(timeout)) {
                if e.kind() != io::ErrorKind::Interrupted {
                    return Err(e);
                }
            }
            for event in events.iter() {
                match event.token() {
                    WAKER => {}
                    Token(t) if t < state.first_connection => {
                        if state.accepting {
                            self.accept(&mut state, t - FIRST_LISTENER);
                        }
                    }
                    Token(t) => self.ready(
                        &mut state,
                        t,
                        event.is_writable(),
                        event.is_read_closed() || event.is_error(),
                    ),
                }
            }
            for (token, closing) in more {
                self.ready(&mut state, token, false, closing);
            }
            if state.drain_deadline.is_none() {
                if let Some(deadline) = self.shutdown.deadline() {
                    self.begin_drain(&mut state, deadline);
                }
            }
            let now = Instant::now();
            if now >= next_sweep {
                self.sweep(&mut state, now);
                next_sweep = now + if state.drain_deadline.is_some() { DRAIN_SWEEP } else { SWEEP };
            }
            if let Some(deadline) = state.drain_deadline {
                let active = self.ctx.counters.active.load(Ordering::Acquire);
                // Connections left are awaited first requests or requests still arriving.
                if (active == 0 && state.conns.is_empty()) || now >= deadline {
                    return Ok(self.finish(&mut state, deadline));
                }
            }
        }
    }

    fn accept(&mut self, state: &mut State, index: usize) {
        let Some(listener) = self.listeners.get(index) else { return };
        loop {
            let (stream, peer) = match listener.accept() {
                Ok(accepted) => accepted,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
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
                    error!(self.ctx.log, "accept failed; retrying at the next sweep"; "listener" => %listener, "error" => %e);
                    state.accept_backoff = true;
                    return;
                }
            };
            if let (Some(allow), Some(ip)) = (&self.allow, peer) {
                if !allow.contains(&ip.to_canonical()) {
                    warn!(self.ctx.log, "connection refused: peer not allowed"; "peer" => %ip, "listener" => %listener);
                    continue;
                }
            }
            if let Err(e) = stream.set_nonblocking(true) {
                warn!(self.ctx.log, "cannot make a connection non-blocking"; "error" => %e);
                continue;
            }
            let token = state.next_token;
            state.next_token += 1;
            let open = self.ctx.counters.connections.fetch_add(1, Ordering::AcqRel) + 1;
            let over_limit = open > self.ctx.config.max_conns;
            let fd = stream.raw_fd();
            let log = self.ctx.log.new(o!("conn" => token));
            if let Err(e) =
                self.poll.registry().register(&mut SourceFd(&fd), Token(token), Interest::READABLE)
            {
                warn!(log, "cannot watch a connection"; "error" => %e);
                self.ctx.counters.connections.fetch_sub(1, Ordering::AcqRel);
                continue;
            }
            debug!(log, "connection accepted"; "peer" => peer.map(|ip| ip.to_string()), "over_limit" => over_limit);
            let wire = Arc::new(Wire::new(stream, self.ctx.config.write_timeout));
            state.conns.insert(token, Connection::new(wire, log, over_limit));
            state.fresh.insert(token, Instant::now());
        }
    }

    fn ready(&mut self, state: &mut State, token: usize, writable: bool, closing: bool) {
        state.fresh.remove(&token);
        let Some(conn) = state.conns.get_mut(&token) else { return };
        let mut result = Ok(());
        if writable {
            result = conn.wire().flush_pending().map(drop).map_err(Close::Io);
        }
        // Edge-triggered: read whenever anything happened, until the socket would block.
        if result.is_ok() {
            result = conn.on_readable(&self.ctx, closing).map(|turn| {
                if turn == Turn::More && !state.more.iter().any(|(t, _)| *t == token) {
                    state.more.push((token, closing));
                }
            });
        }
        if result.is_ok() {
            // Answers the socket could not take wait for it to turn writable.
            let want_writes = conn.wire().has_pending();
            if want_writes != conn.watching_writes {
                let interest = if want_writes {
                    Interest::READABLE | Interest::WRITABLE
                } else {
                    Interest::READABLE
                };
                let fd = conn.wire().stream().raw_fd();
                if let Err(e) =
                    self.poll.registry().reregister(&mut SourceFd(&fd), Token(token), interest)
                {
                    result = Err(Close::Io(e));
                }
                conn.watching_writes = want_writes;
            }
        }
        match result {
            Ok(()) => {
                if state.drain_deadline.is_some() && conn.is_idle() {
                    self.close(state, token, "server draining");
                }
            }
            Err(close) => self.closed(state, token, close),
        }
    }

    /// Closes a connection for `close`, logged as it deserves.
    fn closed(&mut self, state: &mut State, token: usize, close: Close) {
        let Some(conn) = state.conns.get(&token) else { return };
        let why = match close {
            Close::PeerClosed => "closed by the web server",
            Close::Io(e) => {
                debug!(conn.log(), "connection failed"; "error" => %e);
                "i/o error"
            }
            Close::Protocol(message) => {
                warn!(conn.log(), "protocol error; connection closed"; "error" => message);
                "protocol error"
            }
            Close::PartialRecord => {
                warn!(conn.log(), "read timeout: a record was begun and never finished; connection closed";
                    "timeout_s" => self.ctx.config.read_timeout.as_secs());
                "read timeout"
            }
        };
        self.close(state, token, why);
    }

    fn close(&mut self, state: &mut State, token: usize, why: &str) {
        state.fresh.remove(&token);
        let Some(mut conn) = state.conns.remove(&token) else { return };
        let _ = self.poll.registry().deregister(&mut SourceFd(&conn.wire().stream().raw_fd()));
        debug!(conn.log(), "connection closed"; "why" => why);
        conn.abort_all();
        conn.wire().close();
        self.ctx.counters.connections.fetch_sub(1, Ordering::AcqRel);
    }

    fn sweep(&mut self, state: &mut State, now: Instant) {
        if state.accept_backoff && state.accepting {
            state.accept_backoff = false;
            for index in 0..self.listeners.len() {
                self.accept(state, index);
            }
        }
        let config = &self.ctx.config;
        let draining = state.drain_deadline.is_some();
        let mut expired = Vec::new();
        for (token, conn) in state.conns.iter_mut() {
            let quiet = now.saturating_duration_since(conn.last_read);
            let awaited = state.fresh.get(token).is_some_and(|t| now - *t < DRAIN_FRESH_GRACE);
            if conn.is_idle() {
                if (draining && !awaited) || quiet >= config.idle_timeout || conn.wire().is_broken()
                {
                    expired.push((*token, Ok("idle")));
                }
            } else if let Err(close) = conn.sweep(now, &self.ctx) {
                expired.push((*token, Err(close)));
            }
        }
        for (token, why) in expired {
            match why {
                Ok(why) => self.close(state, token, why),
                Err(close) => self.closed(state, token, close),
            }
        }
    }

    fn begin_drain(&mut self, state: &mut State, deadline: Instant) {
        let active = self.ctx.counters.active.load(Ordering::Acquire);
        info!(self.ctx.log, "graceful stop: no new connections, finishing requests";
            "in_flight" => active,
            "grace_s" => format!("{:.1}", deadline.saturating_duration_since(Instant::now()).as_secs_f64()));
        for listener in &self.listeners {
            let _ = self.poll.registry().deregister(&mut SourceFd(&listener.raw_fd()));
        }
        // Dropping the listeners closes them and removes our Unix socket files.
        self.listeners.clear();
        state.accepting = false;
        state.drain_deadline = Some(deadline);
        self.sweep(state, Instant::now());
    }

    fn finish(&mut self, state: &mut State, deadline: Instant) -> ServeReport {
        let unfinished = self.ctx.counters.active.load(Ordering::Acquire);
        if unfinished > 0 {
            warn!(self.ctx.log, "graceful timeout reached; requests cut short"; "unfinished" => unfinished);
        }
        let tokens: Vec<usize> = state.conns.keys().copied().collect();
        for token in tokens {
            self.close(state, token, "server stopped");
        }
        let left =
            deadline.saturating_duration_since(Instant::now()).max(Duration::from_millis(100));
        let report = self.ctx.pool.shutdown(left);
        ServeReport {
            requests: self.ctx.counters.requests.load(Ordering::Relaxed),
            unfinished: unfinished.max(report.unfinished()),
        }
    }
}
