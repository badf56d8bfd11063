//! The read side of one connection: records in, requests out.
//!
//! The monitor thread owns this state and calls [`Connection::on_readable`] whenever the socket
//! has bytes. It decodes records and routes them: params to the request's params decoder,
//! body streams to the request's spool, aborts to the request's flag, management records to
//! immediate answers. When a request's params are complete, its handler goes to the pool. None
//! of this blocks, so one thread serves every connection's input.

use std::io;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use fcgi_codec::{
    management, BeginRequest, Body, Decoder, Encoder, Pairs, ParamsDecoder, ParamsError,
    ProtocolStatus, Record, Role,
};
use slog::{debug, warn, Logger};

use crate::context::Context;
use crate::job;
use crate::request::{Request, RequestShared};
use crate::response::{canned, end_only, Response};
use crate::spool::{Spool, SpoolError};
use crate::wire::Wire;

/// Why a connection is closed.
#[derive(Debug)]
pub(crate) enum Close {
    /// The web server closed its side.
    PeerClosed,
    /// Reading or writing failed.
    Io(io::Error),
    /// The web server broke the protocol; the message says how.
    Protocol(String),
}

/// One request on the connection, from BEGIN_REQUEST until its END_REQUEST is written.
#[derive(Debug)]
enum Slot {
    /// Params still arriving.
    Reading { begin: BeginRequest, params: ParamsDecoder, shared: Arc<RequestShared> },
    /// The handler has it; the connection only feeds its spools.
    Running(Arc<RequestShared>),
}

impl Slot {
    fn shared(&self) -> &Arc<RequestShared> {
        match self {
            Slot::Reading { shared, .. } | Slot::Running(shared) => shared,
        }
    }

    fn is_finished(&self) -> bool {
        matches!(self, Slot::Running(shared) if shared.finished.load(Ordering::Acquire))
    }

    /// Finished, and its END_REQUEST written: the connection may forget it.
    fn is_answered(&self) -> bool {
        matches!(self, Slot::Running(shared) if shared.answered.load(Ordering::Acquire))
    }
}

/// The read side of a connection.
#[derive(Debug)]
pub(crate) struct Connection {
    decoder: Decoder,
    demux: Demux,
    pub(crate) last_read: Instant,
    /// Whether the monitor watches the socket for writability (answers are queued).
    pub(crate) watching_writes: bool,
}

/// Everything but the decoder, so that a record borrowed from the decoder can be routed.
#[derive(Debug)]
struct Demux {
    wire: Arc<Wire>,
    slots: Vec<(u16, Slot)>,
    log: Logger,
    /// Accepted past `max_conns`: every request is answered OVERLOADED and the connection ends.
    over_limit: bool,
    /// Requests whose params are complete, handed to the pool once the records read with them
    /// are routed (see `start_ready`).
    ready: Vec<Ready>,
}

/// A reader that remembers how many bytes it was asked for.
struct Measured<R> {
    inner: R,
    asked: usize,
}

impl<R: io::Read> io::Read for Measured<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.asked = buf.len();
        self.inner.read(buf)
    }
}

/// A request ready for the pool.
struct Ready {
    id: u16,
    begin: BeginRequest,
    shared: Arc<RequestShared>,
    job: job::Job,
}

impl std::fmt::Debug for Ready {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ready").field("id", &self.id).finish_non_exhaustive()
    }
}

impl Connection {
    pub(crate) fn new(wire: Arc<Wire>, log: Logger, over_limit: bool) -> Connection {
        Connection {
            decoder: Decoder::new(),
            demux: Demux { wire, slots: Vec::new(), log, over_limit, ready: Vec::new() },
            last_read: Instant::now(),
            watching_writes: false,
        }
    }

    pub(crate) fn wire(&self) -> &Arc<Wire> {
        &self.demux.wire
    }

    pub(crate) fn log(&self) -> &Logger {
        &self.demux.log
    }

    /// Reads everything the socket has, and acts on every whole record in it.
    ///
    /// Reading stops at a short read, unless `closing` (the peer hung up or the socket failed):
    /// a read that did not fill the buffer emptied the socket, and with edge-triggered epoll
    /// any byte that arrives later is a new event. That spares one read per request that
    /// would only say "would block".
    pub(crate) fn on_readable(&mut self, ctx: &Arc<Context>, closing: bool) -> Result<(), Close> {
        loop {
            let mut reader = Measured { inner: self.demux.wire.stream(), asked: 0 };
            match self.decoder.read_from(&mut reader) {
                Ok(0) => return Err(Close::PeerClosed),
                Ok(n) => {
                    let emptied = n < reader.asked && !closing;
                    self.last_read = Instant::now();
                    while let Some(record) =
                        self.decoder.decode().map_err(|e| Close::Protocol(e.to_string()))?
                    {
                        self.demux.on_record(record, ctx)?;
                    }
                    self.demux.start_ready(ctx)?;
                    if emptied {
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Close::Io(e)),
            }
        }
        self.demux.slots.retain(|(_, slot)| !slot.is_answered());
        if self.demux.slots.is_empty() {
            // An idle connection keeps no buffer: 10,000 of them cost little.
            self.decoder.release_buffer();
        }
        Ok(())
    }

    /// No request open or still being answered, and no partial record: the connection is
    /// waiting for the web server.
    pub(crate) fn is_idle(&mut self) -> bool {
        self.demux.slots.retain(|(_, slot)| !slot.is_answered());
        self.demux.slots.is_empty() && self.decoder.is_empty()
    }

    /// Some input is still owed by the web server: a partial record, params still coming, or a
    /// body stream not yet ended. A connection in this state is subject to the read timeout.
    pub(crate) fn awaits_input(&self) -> bool {
        !self.decoder.is_empty()
            || self.demux.slots.iter().any(|(_, slot)| match slot {
                Slot::Reading { .. } => true,
                Slot::Running(shared) => {
                    !shared.finished.load(Ordering::Acquire)
                        && (!shared.stdin.is_ended()
                            || shared.data.as_ref().is_some_and(|data| !data.is_ended()))
                }
            })
    }

    /// The connection is going away: every request still open is aborted, so that handlers
    /// waiting for input wake up and stop.
    pub(crate) fn abort_all(&mut self) {
        for (_, slot) in self.demux.slots.drain(..) {
            abort(slot.shared());
        }
    }
}

fn abort(shared: &RequestShared) {
    shared.aborted.store(true, Ordering::Release);
    shared.stdin.fail(SpoolError::Aborted);
    if let Some(data) = &shared.data {
        data.fail(SpoolError::Aborted);
    }
}

impl Demux {
    fn on_record(&mut self, record: Record<'_>, ctx: &Arc<Context>) -> Result<(), Close> {
        let id = record.request_id;
        if record.is_management() {
            return match record.body {
                Body::GetValues(names) => self.reply(&get_values_result(names, ctx)),
                other => {
                    debug!(self.log, "unknown management record"; "type" => ?other.record_type());
                    let mut out = Vec::with_capacity(16);
                    let _ = Encoder::new().unknown_type(&mut out, other.record_type());
                    self.reply(&out)
                }
            };
        }
        match record.body {
            Body::BeginRequest(begin) => self.begin(id, begin, ctx),
            Body::Params(chunk) => self.params(id, chunk, ctx),
            Body::Stdin(chunk) => {
                if let Some(shared) = self.shared(id) {
                    let spool = Arc::clone(&shared.stdin);
                    self.feed(id, &spool, chunk);
                }
                Ok(())
            }
            Body::Data(chunk) => {
                if let Some(spool) = self.shared(id).and_then(|shared| shared.data.clone()) {
                    self.feed(id, &spool, chunk);
                }
                Ok(())
            }
            Body::AbortRequest => self.abort_request(id),
            // Output streams and unknown types on a request id mean nothing to an application.
            _ => Ok(()),
        }
    }

    fn position(&self, id: u16) -> Option<usize> {
        self.slots.iter().position(|(slot_id, slot)| *slot_id == id && !slot.is_finished())
    }

    fn shared(&self, id: u16) -> Option<&Arc<RequestShared>> {
        self.position(id).map(|i| self.slots[i].1.shared())
    }

    /// Answers from the monitor: queued if the socket cannot take them now, never waited for.
    fn reply(&self, bytes: &[u8]) -> Result<(), Close> {
        self.wire.reply(bytes).map(drop).map_err(Close::Io)
    }

    fn feed(&self, id: u16, spool: &Spool, chunk: &[u8]) {
        if chunk.is_empty() {
            spool.finish();
        } else if let Some(SpoolError::TooLarge { limit }) = spool.push(chunk) {
            warn!(self.log, "request body over the limit; the request gets 413";
                "req" => id, "limit" => "max_body", "max_body" => limit);
        } else if let Some(SpoolError::Io(message)) = spool.error() {
            warn!(self.log, "request body spool failed"; "req" => id, "error" => message);
        }
    }

    fn begin(&mut self, id: u16, begin: BeginRequest, ctx: &Arc<Context>) -> Result<(), Close> {
        self.slots.retain(|(_, slot)| !slot.is_answered());
        if self.position(id).is_some() {
            return Err(Close::Protocol(format!(
                "BEGIN_REQUEST for request {id}, which is still open"
            )));
        }
        if ctx.handlers.for_role(begin.role).is_none() {
            debug!(self.log, "role not served"; "req" => id, "role" => ?begin.role);
            self.reply(&end_only(id, ProtocolStatus::UnknownRole))?;
            return self.end_if_not_kept(begin);
        }
        if self.over_limit {
            warn!(self.log, "connection over max_conns; request refused with 503";
                "req" => id, "max_conns" => ctx.config.max_conns);
            ctx.counters.overloaded.fetch_add(1, Ordering::Relaxed);
            self.reply(&canned(id, 503, &ctx.retry_after, ProtocolStatus::Overloaded))?;
            self.wire.finish_writes();
            return Ok(());
        }
        let spool = || Arc::new(Spool::new(ctx.spool.clone()));
        let shared = Arc::new(RequestShared {
            stdin: spool(),
            data: (begin.role == Role::Filter).then(spool),
            aborted: Default::default(),
            finished: Default::default(),
            answered: Default::default(),
        });
        let params = ParamsDecoder::new(ctx.config.params_limits);
        self.slots.push((id, Slot::Reading { begin, params, shared }));
        Ok(())
    }

    fn end_if_not_kept(&self, begin: BeginRequest) -> Result<(), Close> {
        if !begin.keep_conn() {
            self.wire.finish_writes();
        }
        Ok(())
    }

    fn params(&mut self, id: u16, chunk: &[u8], ctx: &Arc<Context>) -> Result<(), Close> {
        let Some(index) = self.position(id) else { return Ok(()) };
        let Slot::Reading { params, .. } = &mut self.slots[index].1 else { return Ok(()) };
        let pushed = if chunk.is_empty() { None } else { Some(params.push(chunk)) };
        if let Some(Ok(())) = pushed {
            return Ok(());
        }
        let (_, slot) = self.slots.swap_remove(index);
        let Slot::Reading { begin, params, shared } = slot else { return Ok(()) };
        let result = match pushed {
            Some(Err(error)) => Err(error),
            _ => params.finish(),
        };
        match result {
            Ok(params) => self.dispatch(id, begin, params, shared, ctx),
            Err(error) => self.refuse(id, begin, &shared, &error, ctx),
        }
    }

    /// Answers a request whose params are malformed or too large; it is forgotten already.
    fn refuse(
        &self,
        id: u16,
        begin: BeginRequest,
        shared: &RequestShared,
        error: &ParamsError,
        ctx: &Context,
    ) -> Result<(), Close> {
        let status = match error {
            ParamsError::TooLarge { .. } | ParamsError::TooManyPairs { .. } => 431,
            _ => 400,
        };
        warn!(self.log, "params refused"; "req" => id, "status" => status, "error" => %error,
            "max_len" => ctx.config.params_limits.max_len,
            "max_pairs" => ctx.config.params_limits.max_pairs);
        abort(shared);
        self.reply(&canned(id, status, "", ProtocolStatus::RequestComplete))?;
        self.end_if_not_kept(begin)
    }

    fn dispatch(
        &mut self,
        id: u16,
        begin: BeginRequest,
        params: fcgi_codec::Params,
        shared: Arc<RequestShared>,
        ctx: &Arc<Context>,
    ) -> Result<(), Close> {
        let Some(handler) = ctx.handlers.for_role(begin.role).cloned() else { return Ok(()) };
        let request = Request::new(begin.role, id, begin.keep_conn(), params, Arc::clone(&shared));
        let response = Response::new(Arc::clone(&self.wire), id, Arc::clone(&shared));
        // The connection's logger, not a child per request: most requests never log, and a
        // child logger is an allocation on every one of them. Job's lines name the request.
        let log = self.log.clone();
        let job = job::Job { ctx: Arc::clone(ctx), handler, request, response, log };
        self.slots.push((id, Slot::Running(Arc::clone(&shared))));
        self.ready.push(Ready { id, begin, shared, job });
        Ok(())
    }

    /// Hands the requests made ready by the records just read to the pool.
    ///
    /// Not one by one as their params end: nginx sends a GET's params and its empty body in one
    /// write, and a handler started before the body's end was routed would wait for it at
    /// once, which costs a sleep and a wake-up per request.
    fn start_ready(&mut self, ctx: &Arc<Context>) -> Result<(), Close> {
        for Ready { id, begin, shared, job } in std::mem::take(&mut self.ready) {
            ctx.counters.active.fetch_add(1, Ordering::AcqRel);
            let Err(rejected) = ctx.pool.execute(move || job.run()) else { continue };
            drop(rejected);
            ctx.counters.active.fetch_sub(1, Ordering::AcqRel);
            self.slots.retain(|(slot_id, _)| *slot_id != id);
            self.overloaded(id, begin, &shared, ctx)?;
        }
        Ok(())
    }

    /// Answers a request the pool has no room for: 503 with `Retry-After`, and OVERLOADED.
    fn overloaded(
        &self,
        id: u16,
        begin: BeginRequest,
        shared: &RequestShared,
        ctx: &Context,
    ) -> Result<(), Close> {
        ctx.counters.overloaded.fetch_add(1, Ordering::Relaxed);
        warn!(self.log, "all threads busy and the queue full; request answered 503";
            "req" => id, "max_threads" => ctx.config.max_threads, "queue" => ctx.config.queue);
        abort(shared);
        self.reply(&canned(id, 503, &ctx.retry_after, ProtocolStatus::Overloaded))?;
        self.end_if_not_kept(begin)
    }

    fn abort_request(&mut self, id: u16) -> Result<(), Close> {
        let Some(index) = self.position(id) else { return Ok(()) };
        debug!(self.log, "request aborted by the web server"; "req" => id);
        abort(self.slots[index].1.shared());
        if let Slot::Reading { begin, .. } = &self.slots[index].1 {
            // No handler runs yet: answer for it. A running handler's END_REQUEST comes when it
            // returns, which the abort hurries along.
            let begin = *begin;
            self.slots.swap_remove(index);
            self.reply(&end_only(id, ProtocolStatus::RequestComplete))?;
            return self.end_if_not_kept(begin);
        }
        Ok(())
    }
}

/// The answer to FCGI_GET_VALUES: the names asked for that we know, with their values.
fn get_values_result(names: Pairs<'_>, ctx: &Context) -> Vec<u8> {
    let max_conns = ctx.config.max_conns.to_string();
    let max_reqs = (ctx.config.max_threads + ctx.config.queue).to_string();
    let known: [(&[u8], &[u8]); 3] = [
        (management::MAX_CONNS, max_conns.as_bytes()),
        (management::MAX_REQS, max_reqs.as_bytes()),
        (management::MPXS_CONNS, b"1"),
    ];
    let answer = names.filter_map(|(name, _)| known.iter().find(|(known, _)| *known == name));
    let mut out = Vec::with_capacity(64);
    let _ = Encoder::new().get_values_result(&mut out, answer.map(|(n, v)| (*n, *v)));
    out
}
