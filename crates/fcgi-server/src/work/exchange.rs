//! [`Exchange`]: one request and its response, owned, with the end of the request (END_REQUEST,
//! the counters, the access line) done when it is finished, on whatever thread that is.

use std::any::Any;
use std::borrow::Cow;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use slog::{debug, error, info, Logger};

use crate::status::{RequestFacts, Running, ThreadMark};
use crate::work::access::{AccessRecord, Outcome};
use crate::work::context::Context;
use crate::work::error::Error;
use crate::{Request, Response, ACCESS_TAG};

/// A request and its response, owned by the handler that took them with
/// [`Handler::handle_owned`](crate::Handler::handle_owned): it may keep them past its return
/// (hand them to a task of its own, on any thread) and end the request when it is done.
///
/// [`finish`](Exchange::finish) ends it with what the handler returned, exactly as if
/// [`Handler::handle`](crate::Handler::handle) had returned it: all input waited for, the
/// response completed (or answered 500 for an error before any output went out, or cut short
/// after), END_REQUEST, the status page's counters, the access line.
/// [`finish_panicked`](Exchange::finish_panicked) ends it as a handler that panicked.
/// Dropped without either, it ends as a failed handler (500, or cut short): never as a
/// success, since nobody said the response was whole.
///
/// Until it ends, the request counts as running: the server's drain waits for it.
///
/// ```
/// use std::io::Write;
/// use fcgi_server::{Exchange, Handler, Request, Response};
///
/// /// Answers on a thread of its own: the pool's thread is free at once.
/// struct Later;
///
/// impl Handler for Later {
///     fn handle(&self, _: &mut Request, _: &mut Response) -> Result<(), fcgi_server::Error> {
///         unreachable!("handle_owned is what the server calls")
///     }
///
///     fn handle_owned(&self, mut exchange: Exchange) {
///         std::thread::spawn(move || {
///             let written = exchange.response().write_all(b"Hello, later!");
///             exchange.finish(written.map_err(Into::into));
///         });
///     }
/// }
/// # fn is_handler<H: Handler>(_: H) {}
/// # is_handler(Later);
/// ```
pub struct Exchange {
    /// `None` once ended.
    parts: Option<Parts>,
}

struct Parts {
    ctx: Arc<Context>,
    request: Request,
    response: Response,
    log: Logger,
    running: Running,
    started: Instant,
}

/// How the handler's part ended.
enum Handled {
    Returned(Result<(), Error>),
    Panicked(Box<dyn Any + Send>),
}

impl Exchange {
    /// Takes `request` from the queue and marks it running: `None` when it waited past the
    /// queue timeout and its connection answered it already (logged here).
    pub(crate) fn begin(
        ctx: Arc<Context>,
        request: Request,
        response: Response,
        log: Logger,
    ) -> Option<Exchange> {
        if !request.shared().take() {
            if ctx.config.access_log {
                access_line(&ctx, &log, &request, 503, 0, Duration::ZERO, Outcome::QueueTimeout);
            }
            return None;
        }
        let started = Instant::now();
        let running = ctx.status.begin(|| {
            let length = request.content_length().unwrap_or(0);
            RequestFacts::from_params(|name| request.param_str(name), length)
        });
        Some(Exchange { parts: Some(Parts { ctx, request, response, log, running, started }) })
    }

    fn parts(&self) -> &Parts {
        self.parts.as_ref().expect("an exchange has its parts until it ends")
    }

    fn parts_mut(&mut self) -> &mut Parts {
        self.parts.as_mut().expect("an exchange has its parts until it ends")
    }

    /// The request: params, body.
    pub fn request(&mut self) -> &mut Request {
        &mut self.parts_mut().request
    }

    /// The response, to write to.
    pub fn response(&mut self) -> &mut Response {
        &mut self.parts_mut().response
    }

    /// Both at once, as [`Handler::handle`](crate::Handler::handle) takes them.
    pub fn split(&mut self) -> (&mut Request, &mut Response) {
        let parts = self.parts_mut();
        (&mut parts.request, &mut parts.response)
    }

    /// The server's context, for the status page.
    pub(crate) fn context(&self) -> &Arc<Context> {
        &self.parts().ctx
    }

    /// The mark this request left on the status page's entry of the thread that began it,
    /// for that thread to clear when it lets go of the request.
    pub(crate) fn thread_mark(&self) -> ThreadMark {
        self.parts().running.thread_mark()
    }

    /// Ends the request with what the handler returned: `Ok` for a complete response, `Err`
    /// for a failure (500 if nothing went out yet, else the response is cut short). See
    /// [`Handler`](crate::Handler) for what the web server is told in each case.
    pub fn finish(mut self, result: Result<(), Error>) {
        if let Some(parts) = self.parts.take() {
            parts.end(Handled::Returned(result));
        }
    }

    /// Ends the request as a handler that panicked with `payload` (what
    /// [`std::panic::catch_unwind`] returned): logged with the panic's message, answered 500
    /// if nothing went out yet, else cut short.
    pub fn finish_panicked(mut self, payload: Box<dyn Any + Send>) {
        if let Some(parts) = self.parts.take() {
            parts.end(Handled::Panicked(payload));
        }
    }
}

impl Drop for Exchange {
    fn drop(&mut self) {
        let Some(parts) = self.parts.take() else { return };
        let outcome = if std::thread::panicking() {
            Handled::Panicked(Box::new("the handler panicked while it held the request"))
        } else {
            Handled::Returned(Err("the handler dropped the request without finishing it".into()))
        };
        parts.end(outcome);
    }
}

impl fmt::Debug for Exchange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let request = self.parts.as_ref().map(|parts| &parts.request);
        f.debug_struct("Exchange").field("request", &request).finish_non_exhaustive()
    }
}

impl Parts {
    fn end(self, outcome: Handled) {
        let Parts { ctx, mut request, mut response, log, running, started } = self;
        let shared = request.shared();
        // The connection routes input to this request until it is marked finished, and the web
        // server may reuse its id the moment it reads END_REQUEST: so first all input, then
        // the mark, then END_REQUEST.
        let input_failed = response.wait_for_input();
        // The web server gave up on the request (FCGI_ABORT_REQUEST): nothing more goes out,
        // and END_REQUEST says it did not complete. A connection that went away is told
        // nothing at all, and is logged as gone (below).
        let aborted = request.is_aborted() && !response.writer().is_broken();
        // Set when the handler failed after some of its response went out: the web server
        // must be told, or it would pass the truncated response on as whole.
        let mut cut_short = false;
        // How it ended, for the access log.
        let mut ending = if request.is_aborted() { Outcome::Aborted } else { Outcome::Ok };
        match (input_failed, outcome) {
            // Its input stopped (over the limit, spool failure, too slow): nothing has gone
            // out yet, and the answer says why.
            (Some(status), _) => {
                response.fail(status);
                ending = Outcome::InputFailed;
            }
            (None, Handled::Returned(Ok(()))) => {}
            // Its writes failed because of the abort, as they should: it stopped.
            (None, Handled::Returned(Err(e))) if aborted => {
                debug!(log, "handler stopped: the web server aborted the request";
                    "req" => request.request_id(), "error" => %e, "uri" => request.request_uri());
            }
            // Answered with an error status for its input at the first flush: complete, and
            // the handler's failure to write after that is no news.
            (None, Handled::Returned(Err(e))) if response.is_refused() => {
                debug!(log, "handler stopped after its request was refused";
                    "req" => request.request_id(), "error" => %e, "status" => response.status());
            }
            // The web server closed the connection (its client went away, or it stopped):
            // nothing failed here, and nobody is left to answer.
            (None, Handled::Returned(Err(e)))
                if response.writer().is_broken() || is_peer_gone(&*e) =>
            {
                info!(log, "the web server went away before the response was written";
                    "req" => request.request_id(), "error" => %e, "uri" => request.request_uri());
                ending = Outcome::PeerGone;
            }
            (None, Handled::Returned(Err(e))) => {
                cut_short = !response.fail(500);
                ending = if cut_short { Outcome::CutShort } else { Outcome::HandlerError };
                error!(log, "handler failed"; "req" => request.request_id(), "error" => %e,
                    "uri" => request.request_uri(), "cut_short" => cut_short);
            }
            (None, Handled::Panicked(panic)) => {
                let message = panic
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "a non-string panic payload".to_owned());
                // After an abort nobody reads the answer: it ends as aborted, not cut short.
                cut_short = !aborted && !response.fail(500);
                ending = if cut_short { Outcome::CutShort } else { Outcome::Panic };
                error!(log, "handler panicked"; "req" => request.request_id(), "panic" => message,
                    "uri" => request.request_uri(), "cut_short" => cut_short);
            }
        }
        let status = response.status();
        running.end(request.method(), request.request_uri(), status);
        let body_bytes = response.body_bytes();
        let writer = Arc::clone(response.writer());
        request.release();
        shared.finished.store(true, Ordering::Release);
        let delivered = if aborted {
            response.finish_aborted()
        } else if cut_short {
            response.cut_short();
            Err(std::io::Error::other("the response was cut short"))
        } else {
            response.finish(0)
        };
        shared.answered.store(true, Ordering::Release);
        if !request.keep_conn() {
            writer.finish_writes();
        }
        ctx.counters.active.fetch_sub(1, Ordering::AcqRel);
        ctx.counters.requests.fetch_add(1, Ordering::Relaxed);
        if let Err(e) = &delivered {
            debug!(log, "response not delivered"; "req" => request.request_id(), "error" => %e);
            if ending == Outcome::Ok {
                ending = Outcome::NotDelivered;
            }
        }
        if ctx.config.access_log {
            let bytes = delivered.unwrap_or(body_bytes);
            access_line(&ctx, &log, &request, status, bytes, started.elapsed(), ending);
        }
    }
}

/// The request's access record, for every request that reached the pool, finished or not:
/// to the server's [`AccessLog`](crate::AccessLog) if it has one, else to its log as a record
/// tagged [`ACCESS_TAG`] (which the binary can send to a file of its own).
fn access_line(
    ctx: &Context,
    log: &Logger,
    request: &Request,
    status: u16,
    bytes: u64,
    duration: Duration,
    outcome: Outcome,
) {
    let request_id = request_id(request);
    let record = AccessRecord {
        method: request.method(),
        uri: request.request_uri(),
        remote: request.remote_addr(),
        user: request.param_str("REMOTE_USER"),
        query: request.query_string(),
        script: request.script_filename().map(String::from_utf8_lossy),
        protocol: request.param_str("SERVER_PROTOCOL"),
        referer: request.param_str("HTTP_REFERER"),
        user_agent: request.param_str("HTTP_USER_AGENT"),
        content_length: request.content_length(),
        status,
        bytes,
        duration,
        request_id: &request_id,
        outcome,
        program_pid: request.child(),
    };
    match &ctx.access_log {
        Some(access) => access.log(&record),
        None => info!(log, #ACCESS_TAG, "request";
            "req" => request.request_id(),
            "method" => record.method,
            "uri" => record.uri,
            "status" => status,
            "bytes" => bytes,
            "ms" => format!("{:.3}", duration.as_secs_f64() * 1000.0),
            "duration_us" => u64::try_from(duration.as_micros()).unwrap_or(u64::MAX),
            "remote" => record.remote,
            "user" => record.user,
            "query" => record.query,
            "script" => record.script.as_deref(),
            "protocol" => record.protocol,
            "referer" => record.referer,
            "user_agent" => record.user_agent,
            "content_length" => record.content_length,
            "request_id" => record.request_id,
            "outcome" => outcome.as_str(),
            "program_pid" => record.program_pid),
    }
}

/// Requests this process logged without an id of the web server's (per process: the pid goes
/// with it).
static NEXT_REQUEST_ID: AtomicU64 = AtomicU64::new(1);

/// The request's id: the web server's when it sends one (`fastcgi_param REQUEST_ID
/// $request_id;`, or an `X-Request-Id` header), else `PID-N` from a counter of this process.
fn request_id(request: &Request) -> Cow<'_, str> {
    match request.param_str("REQUEST_ID").or_else(|| request.param_str("HTTP_X_REQUEST_ID")) {
        Some(id) if !id.is_empty() => Cow::Borrowed(id),
        _ => Cow::Owned(format!(
            "{}-{}",
            std::process::id(),
            NEXT_REQUEST_ID.fetch_add(1, Ordering::Relaxed)
        )),
    }
}

/// Whether a handler's error says that the web server's side of the connection is gone.
fn is_peer_gone(error: &(dyn std::error::Error + 'static)) -> bool {
    error.downcast_ref::<std::io::Error>().is_some_and(|e| {
        matches!(
            e.kind(),
            std::io::ErrorKind::BrokenPipe
                | std::io::ErrorKind::ConnectionReset
                | std::io::ErrorKind::ConnectionAborted
        )
    })
}
