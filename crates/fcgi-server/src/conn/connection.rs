//! The read side of one connection: records in, requests out.
//!
//! The thread that took the socket's event (see `reactor.rs`) holds this state and calls
//! [`Connection::on_readable`]. It decodes records and routes them: params to the request's
//! params decoder, body streams to the request's spool, aborts to the request's flag,
//! management records to immediate answers. When a request's params are complete, its
//! handler is run by the reading thread or goes to the pool. None of the reading blocks, so
//! the monitor can read for every connection while all workers run requests.

use std::io;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use fcgi_codec::{
    BeginRequest, Body, Decoder, Encoder, ParamsDecoder, ParamsError, ProtocolStatus, Record, Role,
};
use slog::{debug, warn, Logger};

use crate::conn::budget::{Charge, PARAMS_INCLUDED, REQUEST_COST};
use crate::conn::demux::{self, Action, Answer, Event, Phase, Refusal, Start, StartFacts, Timer};
use crate::conn::slot::{InputClock, Slot, Slots, Stage};
use crate::conn::spool::{Spool, SpoolError};
use crate::io::writer::{Replied, Writer};
use crate::work::context::Context;
use crate::work::handler::Handlers;
use crate::work::job::Job;
use crate::work::request::{Request, RequestShared, TakenOver};
use crate::work::response::{aborted_end, canned, Response};

/// Reads one connection gets in a row before its socket goes behind the others that are
/// ready: a peer that keeps its socket full (a large body, thousands of records) must not
/// hold a reading thread (least of all the monitor, when it reads for every connection).
/// A read takes at most the decoder's buffer ([`Decoder::DEFAULT_MAX_BUFFER`]), so a turn
/// reads at most 16 of those.
const READS_PER_TURN: usize = 16;

thread_local! {
    /// The reading thread's decoder, lent to each connection it reads for the length of the
    /// read turn: its buffer (4 KiB for a usual request, up to [`Decoder::DEFAULT_MAX_BUFFER`]
    /// for a large body) is the thread's, not every connection's.
    static SPARE_DECODER: std::cell::Cell<Option<Decoder>> = const { std::cell::Cell::new(None) };
}

/// Where a read turn ended.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Turn {
    /// The socket is empty: the next bytes will be a new event.
    Drained,
    /// The turn's reads are used up and the socket may hold more: come back after the others.
    More,
    /// The answers queued for the web server passed their bound (`writer::MAX_PENDING`): the
    /// connection is not read until they drain. Whole records may wait in the decoder; they
    /// are routed first when reading resumes.
    Paused,
}

/// Why a connection is closed.
#[derive(Debug)]
pub(crate) enum Close {
    /// The web server closed its side.
    PeerClosed,
    /// Reading or writing failed.
    Io(io::Error),
    /// The web server broke the protocol; the message says how.
    Protocol(String),
    /// A record was begun and not finished within the read timeout.
    PartialRecord,
    /// The web server read none of its answers for the write timeout.
    NotReading,
}

/// The read side of a connection.
#[derive(Debug)]
pub(crate) struct Connection {
    /// Only while a record is unfinished: between records the connection has none, and reads
    /// go through the reading thread's own (see [`SPARE_DECODER`]).
    decoder: Option<Decoder>,
    demux: Demux,
    pub(crate) last_read: Instant,
    /// Whether the socket is watched for writability (answers are queued).
    pub(crate) watching_writes: bool,
    /// Not read for now: its queued answers passed their bound ([`Turn::Paused`]).
    pub(crate) paused: bool,
}

/// Everything but the decoder, so that a record borrowed from the decoder can be routed.
#[derive(Debug)]
struct Demux {
    writer: Arc<Writer>,
    /// Where its requests go, by role.
    handlers: Arc<Handlers>,
    /// The open requests, by id: a lookup per record costs the same with 1 or 65,535 open.
    slots: Slots,
    log: Logger,
    /// Accepted past `max_conns`: every request is answered OVERLOADED and the connection ends.
    over_limit: bool,
    /// Requests whose params are complete, handed to the pool once the records read with them
    /// are routed (see `start_ready`).
    ready: Vec<Ready>,
    /// When the records being routed were read.
    now: Instant,
    /// Refusals already logged at warning level on this connection: a peer that opens
    /// thousands of requests past a limit gets one warning, not thousands.
    warned: Vec<Refusal>,
    /// An answer just queued took the queue past its bound: route no more records this turn.
    backlogged: bool,
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

/// A request whose params are complete, for `start_ready`.
struct Ready {
    id: u16,
    job: Job,
    /// Its handler streams its body: it starts whether the body is all in or not.
    starts_early: bool,
}

impl std::fmt::Debug for Ready {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ready").field("id", &self.id).finish_non_exhaustive()
    }
}

impl Connection {
    pub(crate) fn new(
        writer: Arc<Writer>,
        handlers: Arc<Handlers>,
        log: Logger,
        over_limit: bool,
    ) -> Connection {
        let now = Instant::now();
        Connection {
            decoder: None,
            demux: Demux {
                writer,
                handlers,
                slots: Slots::default(),
                log,
                over_limit,
                ready: Vec::new(),
                now,
                warned: Vec::new(),
                backlogged: false,
            },
            last_read: now,
            watching_writes: false,
            paused: false,
        }
    }

    pub(crate) fn writer(&self) -> &Arc<Writer> {
        &self.demux.writer
    }

    pub(crate) fn log(&self) -> &Logger {
        &self.demux.log
    }

    /// Reads everything the socket has, and acts on every whole record in it.
    ///
    /// Reading stops at a short read, unless `closing` (the peer hung up or the socket failed):
    /// a read that did not fill the buffer emptied the socket, and re-arming the socket in the
    /// event set reports any byte that arrives later. That spares one read per request that
    /// would only say "would block". After [`READS_PER_TURN`] reads it stops with
    /// [`Turn::More`], and the socket goes behind the others that are ready. Once the answers
    /// queued for the web server pass their bound, it stops with [`Turn::Paused`], the records
    /// not yet routed left in the decoder for the turn that resumes.
    ///
    /// With `keep` (`Some(None)`), the first request made ready here is not handed to the
    /// pool but left in it, for the calling thread to run once it has let go of the
    /// connection; it is counted active already. It is left there on an error too: the
    /// caller runs it all the same (it finds itself aborted, and ends at once).
    pub(crate) fn on_readable(
        &mut self,
        ctx: &Arc<Context>,
        closing: bool,
        keep: Option<&mut Option<Job>>,
    ) -> Result<Turn, Close> {
        // Between records the decoder holds nothing of the connection's: the thread's own
        // serves, and goes back to the thread if the turn ends at a record boundary. So a
        // connection that served its request and waits for the next holds no buffer at all.
        let mut decoder = self
            .decoder
            .take()
            .or_else(|| SPARE_DECODER.with(|spare| spare.take()))
            .unwrap_or_default();
        let result = self.read_turn(&mut decoder, ctx, closing, keep);
        if result.is_ok() && decoder.is_empty() {
            SPARE_DECODER.with(|spare| spare.set(Some(decoder)));
        } else {
            self.decoder = Some(decoder);
        }
        self.demux.forget_answered();
        result
    }

    fn read_turn(
        &mut self,
        decoder: &mut Decoder,
        ctx: &Arc<Context>,
        closing: bool,
        mut keep: Option<&mut Option<Job>>,
    ) -> Result<Turn, Close> {
        self.demux.backlogged = false;
        if !decoder.is_empty() {
            // Records left unrouted by a paused turn come before anything new.
            self.demux.now = Instant::now();
            if self.route(decoder, ctx, keep.as_deref_mut())? {
                return Ok(Turn::Paused);
            }
        }
        for reads in 1.. {
            if reads > READS_PER_TURN {
                return Ok(Turn::More);
            }
            let mut reader = Measured { inner: self.demux.writer.stream(), asked: 0 };
            match decoder.read_from(&mut reader) {
                Ok(0) => return Err(Close::PeerClosed),
                Ok(n) => {
                    let emptied = n < reader.asked && !closing;
                    self.last_read = Instant::now();
                    self.demux.now = self.last_read;
                    if self.route(decoder, ctx, keep.as_deref_mut())? {
                        return Ok(Turn::Paused);
                    }
                    if emptied {
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Close::Io(e)),
            }
        }
        Ok(Turn::Drained)
    }

    /// Acts on the whole records in `decoder`, and starts the requests they complete. Stops
    /// early, the rest left in the decoder, at the record whose answer took the queue of
    /// answers past its bound; returns whether it did.
    fn route(
        &mut self,
        decoder: &mut Decoder,
        ctx: &Arc<Context>,
        keep: Option<&mut Option<Job>>,
    ) -> Result<bool, Close> {
        while !self.demux.backlogged {
            let Some(record) = decoder.decode().map_err(|e| Close::Protocol(e.to_string()))? else {
                break;
            };
            self.demux.on_record(record, ctx)?;
        }
        self.demux.start_ready(ctx, keep)?;
        Ok(self.demux.backlogged)
    }

    /// No request open or still being answered, no answer queued, and no partial record: the
    /// connection is waiting for the web server.
    pub(crate) fn is_idle(&mut self) -> bool {
        self.demux.forget_answered();
        self.demux.slots.is_empty()
            && self.decoder.as_ref().is_none_or(Decoder::is_empty)
            && !self.demux.writer.has_pending()
    }

    /// The connection is idle (see [`is_idle`](Connection::is_idle)): it lets go of what it
    /// allocated while busy, above all the decoder's buffer. A request usually ends after the
    /// read that brought it (its handler runs after), so the read itself rarely sees the
    /// connection idle; the sweep does, within a second.
    pub(crate) fn shrink(&mut self) {
        if self.decoder.as_ref().is_some_and(Decoder::is_empty) {
            self.decoder = None;
        }
        self.demux.slots.shrink_to_fit();
        self.demux.ready.shrink_to_fit();
        self.demux.writer.shrink();
    }

    /// The monitor's periodic look at a busy connection: a partial record left unfinished for
    /// the read timeout closes it; each request whose input is overdue is answered `408`, each
    /// that waited past the queue timeout `503`, each past the request timeout `504` (or cut
    /// short). Requests are timed on their own input, so bytes for one request never keep
    /// another alive.
    ///
    /// While the connection is paused for its queued answers, its input is not judged: what
    /// the web server sent waits unread on this side, and the queue has a deadline of its own
    /// (`Writer::stalled`).
    pub(crate) fn sweep(&mut self, now: Instant, ctx: &Context) -> Result<(), Close> {
        let config = &ctx.config;
        if !self.paused
            && !self.decoder.as_ref().is_none_or(Decoder::is_empty)
            && now.saturating_duration_since(self.last_read) >= config.read_timeout
        {
            return Err(Close::PartialRecord);
        }
        self.demux.forget_answered();
        let passed: Vec<(u16, Timer)> = self
            .demux
            .slots
            .iter()
            .filter_map(|(id, slot)| {
                let timer = demux::timer(
                    slot.past_request_timeout(now, config.request_timeout),
                    slot.waited_too_long(now, config.queue_timeout),
                    slot.awaits_input()
                        && slot.clock.overdue(now, config.read_timeout, config.min_input_rate),
                    self.paused,
                );
                Some((*id, timer?))
            })
            .collect();
        for (id, timer) in passed {
            match timer {
                Timer::Queue => self.demux.queue_timeout(id, ctx)?,
                Timer::Input => self.demux.input_overdue(id, ctx)?,
                Timer::Request => self.demux.request_timeout(id, ctx)?,
            }
        }
        Ok(())
    }

    /// The connection is going away: every request still open is aborted, so that handlers
    /// waiting for input wake up and stop.
    pub(crate) fn abort_all(&mut self) {
        for (_, slot) in self.demux.slots.drain() {
            slot.shared.abort();
        }
    }
}

impl Demux {
    fn on_record(&mut self, record: Record<'_>, ctx: &Arc<Context>) -> Result<(), Close> {
        let id = record.request_id;
        let (phase, event) = if record.is_management() {
            let event = match record.body {
                Body::GetValues(_) => Event::GetValues,
                _ => Event::UnknownManagement,
            };
            (Phase::Free, event)
        } else {
            (self.phase(id), self.event(&record.body, ctx))
        };
        match (demux::route(phase, event), record.body) {
            (Action::Violation, _) => {
                Err(Close::Protocol(format!("BEGIN_REQUEST for request {id}, which is still open")))
            }
            (Action::Answer(answer), Body::BeginRequest(begin)) => {
                self.answer(id, begin, answer, ctx)
            }
            (Action::Open, Body::BeginRequest(begin)) => self.open(id, begin, ctx),
            (Action::Params, Body::Params(chunk)) => self.params(id, chunk, ctx),
            (Action::Body { data }, Body::Stdin(chunk) | Body::Data(chunk)) => {
                self.input(id, data, chunk)
            }
            (Action::Abort { answered }, _) => self.abort_request(id, answered),
            (Action::Values, Body::GetValues(names)) => {
                let answer =
                    demux::values(names, ctx.config.max_conns, ctx.config.max_conn_requests);
                self.reply(&answer)
            }
            (Action::UnknownType, other) => {
                debug!(self.log, "unknown management record"; "type" => ?other.record_type());
                let mut out = Vec::with_capacity(16);
                let _ = Encoder::new().unknown_type(&mut out, other.record_type());
                self.reply(&out)
            }
            // Action::Ignore; the other pairs `route` never makes.
            _ => Ok(()),
        }
    }

    /// Where request `id` stands.
    fn phase(&self, id: u16) -> Phase {
        self.slots.get(&id).map_or(Phase::Free, Slot::phase)
    }

    /// What a record on a request id says, for [`demux::route`].
    fn event(&self, body: &Body<'_>, ctx: &Context) -> Event {
        match body {
            Body::BeginRequest(begin) => {
                let max = ctx.config.max_conn_requests;
                // A request whose handler returned is not open any more, though its
                // END_REQUEST may still be on its way out: the web server may send the next as
                // soon as it reads it.
                let conn_full = self.slots.len() >= max
                    && self.slots.values().filter(|slot| !slot.is_finished()).count() >= max;
                Event::Begin {
                    served: self.handlers.for_role(begin.role).is_some(),
                    over_limit: self.over_limit,
                    conn_full,
                }
            }
            Body::Params(_) => Event::Params,
            Body::Stdin(_) => Event::Body { data: false },
            Body::Data(_) => Event::Body { data: true },
            Body::AbortRequest => Event::Abort,
            // Output streams and unknown types on a request id mean nothing to an application.
            _ => Event::Other,
        }
    }

    fn forget_answered(&mut self) {
        self.slots.retain(|_, slot| !slot.is_answered());
    }

    /// Answers from the reading thread: queued if the socket cannot take them now, never
    /// waited for. A queue past its bound ends the routing of this turn (backpressure).
    fn reply(&mut self, bytes: &[u8]) -> Result<(), Close> {
        if self.writer.reply(bytes).map_err(Close::Io)? == Replied::Full {
            self.backlogged = true;
        }
        Ok(())
    }

    fn end_if_not_kept(&self, begin: BeginRequest) -> Result<(), Close> {
        if !begin.keep_conn() {
            self.writer.finish_writes();
        }
        Ok(())
    }

    /// Answers a BEGIN_REQUEST in a handler's place.
    fn answer(
        &mut self,
        id: u16,
        begin: BeginRequest,
        answer: Answer,
        ctx: &Context,
    ) -> Result<(), Close> {
        match answer {
            Answer::UnknownRole => {
                debug!(self.log, "role not served"; "req" => id, "role" => ?begin.role);
                self.reply(&canned(id, 500, "", ProtocolStatus::UnknownRole))?;
                self.end_if_not_kept(begin)
            }
            Answer::OverMaxConns => {
                warn!(self.log, "connection over max_conns; request refused with 503";
                    "req" => id, "max_conns" => ctx.config.max_conns);
                ctx.status.overloaded(false);
                self.reply(&canned(id, 503, &ctx.retry_after, ProtocolStatus::Overloaded))?;
                self.writer.finish_writes();
                Ok(())
            }
            Answer::Refused(why) => self.refuse(id, begin, why, ctx),
        }
    }

    /// Opens request `id` in Params, if the memory budget allows one more. A slot of a request
    /// whose handler returned (its END_REQUEST on the way) gives its place to the new one.
    fn open(&mut self, id: u16, begin: BeginRequest, ctx: &Arc<Context>) -> Result<(), Close> {
        let mut charge = Charge::new(&ctx.budget);
        if !charge.grow(REQUEST_COST) {
            return self.refuse(id, begin, Refusal::Budget, ctx);
        }
        let spool = || Arc::new(Spool::new(ctx.spool.clone()));
        let shared =
            Arc::new(RequestShared::new(spool(), (begin.role == Role::Filter).then(spool)));
        let params = ParamsDecoder::new(ctx.config.params_limits);
        let stage = Stage::Reading { params, charge };
        self.slots.insert(id, Slot { begin, shared, stage, clock: InputClock::new(self.now) });
        Ok(())
    }

    /// Answers a request `503` with `Retry-After` and OVERLOADED, for `why`; the connection
    /// lives on. The request is not (or no longer) in `slots`.
    fn refuse(
        &mut self,
        id: u16,
        begin: BeginRequest,
        why: Refusal,
        ctx: &Context,
    ) -> Result<(), Close> {
        ctx.status.overloaded(why == Refusal::QueueTimeout);
        if self.warned.contains(&why) {
            debug!(self.log, "{}", why.message(); "req" => id, "limit" => why.limit());
        } else {
            self.warned.push(why);
            warn!(self.log, "{}", why.message(); "req" => id, "limit" => why.limit(),
                "max_conn_requests" => ctx.config.max_conn_requests,
                "memory_budget" => ctx.config.memory_budget,
                "max_threads" => ctx.config.max_threads, "queue" => ctx.config.queue,
                "queue_timeout_ms" => ctx.config.queue_timeout.map(|t| t.as_millis()));
        }
        self.reply(&canned(id, 503, &ctx.retry_after, ProtocolStatus::Overloaded))?;
        self.end_if_not_kept(begin)
    }

    fn params(&mut self, id: u16, chunk: &[u8], ctx: &Arc<Context>) -> Result<(), Close> {
        let now = self.now;
        let Some(slot) = self.slots.get_mut(&id) else { return Ok(()) };
        let Stage::Reading { params, charge } = &mut slot.stage else { return Ok(()) };
        slot.clock.record(now, chunk.len());
        let pushed = if chunk.is_empty() {
            None
        } else if !charge.grow(params_cost(params.len(), chunk.len())) {
            Some(Err(None))
        } else {
            Some(params.push(chunk).map_err(Some))
        };
        if let Some(Ok(())) = pushed {
            return Ok(());
        }
        // The params are done with, one way or another. The slot stays where it is (moving a
        // slot costs a copy of it): Running from now on, unless the params failed.
        let stage = std::mem::replace(&mut slot.stage, Stage::Running { queued_at: now });
        let Stage::Reading { params, charge } = stage else { return Ok(()) };
        let result = match pushed {
            Some(Err(error)) => Err(error),
            _ => params.finish().map_err(Some),
        };
        let (begin, shared) = (slot.begin, Arc::clone(&slot.shared));
        match result {
            Ok(params) => {
                if begin.role == Role::Authorizer {
                    // An Authorizer has no body: the spec gives it FCGI_PARAMS only, and
                    // Apache's mod_authnz_fcgi sends no FCGI_STDIN at all (lighttpd sends an
                    // empty one, which finds the stream ended and changes nothing). Its input
                    // is complete once its params are.
                    shared.stdin.finish();
                }
                self.dispatch(id, begin, params, shared, charge, ctx);
                Ok(())
            }
            Err(error) => {
                self.slots.remove(&id);
                match error {
                    Some(error) => self.bad_params(id, begin, &shared, &error, ctx),
                    None => {
                        shared.abort();
                        self.refuse(id, begin, Refusal::Budget, ctx)
                    }
                }
            }
        }
    }

    /// Answers a request whose params are malformed or too large; it is forgotten already.
    fn bad_params(
        &mut self,
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
        shared.abort();
        self.reply(&canned(id, status, "", ProtocolStatus::RequestComplete))?;
        self.end_if_not_kept(begin)
    }

    /// The params are complete (its slot says Running already): the job goes to
    /// `start_ready`, which hands it to the pool once the records read with it are routed, or
    /// parks it in Spooling if its body is still on the way and its handler does not stream.
    fn dispatch(
        &mut self,
        id: u16,
        begin: BeginRequest,
        params: fcgi_codec::Params,
        shared: Arc<RequestShared>,
        charge: Charge,
        ctx: &Arc<Context>,
    ) {
        let Some(handler) = self.handlers.for_role(begin.role).cloned() else { return };
        let starts_early = handler.streams_body();
        let response = Response::new(Arc::clone(&self.writer), id, Arc::clone(&shared));
        let request = Request::new(begin.role, id, begin.keep_conn(), params, shared, charge);
        // The connection's logger, not a child per request: most requests never log, and a
        // child logger is an allocation on every one of them. Job's lines name the request.
        let log = self.log.clone();
        let job = Job { ctx: Arc::clone(ctx), handler, request, response, log };
        self.ready.push(Ready { id, job, starts_early });
    }

    /// A piece of a body stream (`data`: the Filter role's FCGI_DATA) for request `id`.
    fn input(&mut self, id: u16, data: bool, chunk: &[u8]) -> Result<(), Close> {
        let now = self.now;
        let Some(slot) = self.slots.get_mut(&id) else { return Ok(()) };
        slot.clock.record(now, chunk.len());
        let spool =
            if data { slot.shared.data.clone() } else { Some(Arc::clone(&slot.shared.stdin)) };
        let spooling = matches!(slot.stage, Stage::Spooling(_));
        let Some(spool) = spool else { return Ok(()) };
        if chunk.is_empty() {
            spool.finish();
        } else if let Some(error) = spool.push(chunk) {
            match error {
                SpoolError::TooLarge { limit } => {
                    warn!(self.log, "request body over the limit; the request gets 413";
                        "req" => id, "limit" => "max_body", "max_body" => limit)
                }
                error => {
                    warn!(self.log, "request body spool failed; the request gets 503";
                        "req" => id, "error" => ?error)
                }
            }
        }
        if spooling {
            self.spooled(id);
        }
        Ok(())
    }

    /// A request in `Spooling` whose input may be complete: back to `start_ready`, which
    /// hands it to the pool or answers the error its input stopped with.
    fn spooled(&mut self, id: u16) {
        let now = self.now;
        let Some(slot) = self.slots.get_mut(&id) else { return };
        if !matches!(slot.stage, Stage::Spooling(_)) || !slot.shared.input_complete() {
            return;
        }
        let Stage::Spooling(job) =
            std::mem::replace(&mut slot.stage, Stage::Running { queued_at: now })
        else {
            return;
        };
        self.ready.push(Ready { id, job: *job, starts_early: false });
    }

    /// Answers a request whose input stopped before its handler started: nothing has gone
    /// out, so the status says why (413, 503, 408), or END_REQUEST alone after an abort.
    fn input_failed(&mut self, id: u16, error: &SpoolError) -> Result<(), Close> {
        let Some(slot) = self.slots.remove(&id) else { return Ok(()) };
        match error.status() {
            Some(status) => self.reply(&canned(id, status, "", ProtocolStatus::RequestComplete))?,
            None => self.reply(&aborted_end(id))?,
        }
        self.end_if_not_kept(slot.begin)
    }

    /// Hands the requests made ready by the records just read to the pool, or the first of
    /// them to `keep`, for the reading thread to run (see [`Connection::on_readable`]).
    ///
    /// Not one by one as their params end: nginx sends a GET's params and its empty body in one
    /// write, and a handler started before the body's end was routed would wait for it at
    /// once, which costs a sleep and a wake-up per request.
    ///
    /// A handler that does not stream its body waits in `Spooling`, holding no thread, until
    /// the body is all in; a body that failed is answered here, and the handler never sees it.
    fn start_ready(
        &mut self,
        ctx: &Arc<Context>,
        mut keep: Option<&mut Option<Job>>,
    ) -> Result<(), Close> {
        for Ready { id, job, starts_early } in std::mem::take(&mut self.ready) {
            let slot = self.slots.get(&id);
            if slot.is_none() && !starts_early {
                continue;
            }
            // Each fact only where the decision reads it: the others cost a look at shared
            // state on every request.
            let input_complete = !starts_early && slot.is_some_and(|s| s.shared.input_complete());
            let here_free = matches!(keep.as_deref(), Some(None));
            let facts = StartFacts {
                streams_body: starts_early,
                input_complete,
                input_failed: input_complete
                    && slot.is_some_and(|s| s.shared.input_error().is_some()),
                here_free,
                all_busy: !here_free && ctx.pool.all_busy(),
            };
            match demux::start(facts) {
                Start::Wait => {
                    if let Some(slot) = self.slots.get_mut(&id) {
                        slot.stage = Stage::Spooling(Box::new(job));
                    }
                }
                Start::Fail => {
                    drop(job);
                    let error = self.slots.get(&id).and_then(|s| s.shared.input_error());
                    if let Some(error) = error {
                        self.input_failed(id, &error)?;
                    }
                }
                Start::Here => {
                    ctx.counters.active.fetch_add(1, Ordering::AcqRel);
                    if let Some(kept) = keep.as_deref_mut() {
                        // The reading thread runs it itself: no hand-off.
                        *kept = Some(job);
                    }
                }
                Start::Pool { aside } => {
                    ctx.counters.active.fetch_add(1, Ordering::AcqRel);
                    let job = if aside {
                        let Some(job) = job.run_aside() else { continue };
                        // It queues, or is refused: FPM's "max children reached".
                        ctx.status.all_busy();
                        job
                    } else {
                        job
                    };
                    let Err(rejected) = ctx.pool.execute(move || job.run()) else { continue };
                    drop(rejected);
                    ctx.counters.active.fetch_sub(1, Ordering::AcqRel);
                    if let Some(slot) = self.slots.remove(&id) {
                        slot.shared.abort();
                        self.refuse(id, slot.begin, Refusal::QueueFull, ctx)?;
                    }
                }
            }
        }
        Ok(())
    }

    /// A request waited in the queue past `queue_timeout`: answered `503` here, unless a
    /// thread took it meanwhile.
    fn queue_timeout(&mut self, id: u16, ctx: &Context) -> Result<(), Close> {
        let Some(slot) = self.slots.get(&id) else { return Ok(()) };
        if !slot.shared.expire() {
            return Ok(());
        }
        let Some(slot) = self.slots.remove(&id) else { return Ok(()) };
        // The thread that takes the job later drops it: it is ours to answer and count.
        ctx.counters.active.fetch_sub(1, Ordering::AcqRel);
        slot.shared.abort();
        self.refuse(id, slot.begin, Refusal::QueueTimeout, ctx)
    }

    /// A request's input is overdue: before its handler runs, answered `408` here; a running
    /// handler's body reads fail, and it is answered `408` when it returns.
    fn input_overdue(&mut self, id: u16, ctx: &Context) -> Result<(), Close> {
        let Some(slot) = self.slots.get(&id) else { return Ok(()) };
        warn!(self.log, "request input timed out; answered 408"; "req" => id,
            "read_timeout_s" => ctx.config.read_timeout.as_secs(),
            "min_input_rate" => ctx.config.min_input_rate);
        slot.shared.fail_input(SpoolError::TimedOut);
        if matches!(slot.stage, Stage::Running { .. }) {
            return Ok(());
        }
        let Some(slot) = self.slots.remove(&id) else { return Ok(()) };
        self.reply(&canned(id, 408, "", ProtocolStatus::RequestComplete))?;
        self.end_if_not_kept(slot.begin)
    }

    /// A request ran past the request timeout: the server answers it in the handler's place,
    /// `504` if nothing of it went out (and its id is free again: the web server may send the
    /// next request on this connection), else cut short, which ends the connection.
    fn request_timeout(&mut self, id: u16, ctx: &Context) -> Result<(), Close> {
        let Some(slot) = self.slots.get(&id) else { return Ok(()) };
        let Some(taken) = slot.shared.take_over() else { return Ok(()) };
        if slot.shared.expire() {
            // Still queued: the thread that takes it later drops it.
            ctx.counters.active.fetch_sub(1, Ordering::AcqRel);
        }
        let limit_ms = ctx.config.request_timeout.map(|t| t.as_millis());
        match taken {
            TakenOver::Unanswered => {
                warn!(self.log, "request ran past the request timeout; answered 504";
                    "req" => id, "limit" => "request_timeout", "request_timeout_ms" => limit_ms);
                let Some(slot) = self.slots.remove(&id) else { return Ok(()) };
                slot.shared.abort();
                self.reply(&canned(id, 504, "", ProtocolStatus::RequestComplete))?;
                self.end_if_not_kept(slot.begin)
            }
            TakenOver::Started => {
                warn!(self.log, "request ran past the request timeout after its response began; \
                    cut short"; "req" => id, "limit" => "request_timeout",
                    "request_timeout_ms" => limit_ms);
                slot.shared.abort();
                // Breaking off waits for a record the handler is writing (up to the write
                // timeout): not on the thread that sweeps every connection.
                let writer = Arc::clone(&self.writer);
                let spawned = std::thread::Builder::new()
                    .name("fcgi-cut-short".into())
                    .spawn(move || writer.break_off(id));
                if spawned.is_err() {
                    self.writer.close();
                }
                Ok(())
            }
        }
    }

    /// The web server aborted request `id`; `answered`: no handler runs, so the connection
    /// answers for it (a running handler's END_REQUEST comes when it returns, which the abort
    /// hurries along).
    fn abort_request(&mut self, id: u16, answered: bool) -> Result<(), Close> {
        let Some(slot) = self.slots.get(&id) else { return Ok(()) };
        debug!(self.log, "request aborted by the web server"; "req" => id);
        slot.shared.abort();
        if !answered {
            return Ok(());
        }
        let Some(slot) = self.slots.remove(&id) else { return Ok(()) };
        self.reply(&aborted_end(id))?;
        self.end_if_not_kept(slot.begin)
    }
}

/// What `more` bytes of params cost against the budget on top of `held`: the first
/// [`PARAMS_INCLUDED`] are paid for by [`REQUEST_COST`], so a usual request takes the budget
/// once.
fn params_cost(held: usize, more: usize) -> usize {
    let over = |len: usize| len.saturating_sub(PARAMS_INCLUDED);
    over(held.saturating_add(more)) - over(held)
}
