//! The pool's side of a request: run the handler, then end the response, whatever happened.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use slog::{debug, error, info, Logger};

use crate::context::Context;
use crate::handler::Handler;
use crate::status::RequestFacts;
use crate::status_page;
use crate::{Request, Response};

/// One request handed to the pool.
pub(crate) struct Job {
    pub(crate) ctx: Arc<Context>,
    pub(crate) handler: Arc<dyn Handler>,
    pub(crate) request: Request,
    pub(crate) response: Response,
    pub(crate) log: Logger,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job").field("request", &self.request).finish_non_exhaustive()
    }
}

impl Job {
    pub(crate) fn run(self) {
        let Job { ctx, handler, mut request, mut response, log } = self;
        let shared = request.shared();
        if !shared.take() {
            // It waited past the queue timeout, and its connection answered it.
            if ctx.config.access_log {
                access_line(&log, &request, 503, 0, std::time::Duration::ZERO, "queue_timeout");
            }
            return;
        }
        let started = Instant::now();
        let running = ctx.status.begin(|| RequestFacts::of(&request));
        // The status page and the ping, whatever the app: one param lookup, and only when
        // a path is configured.
        let page = if ctx.config.status_path.is_some() || ctx.config.ping_path.is_some() {
            status_page::route(
                request.role(),
                request.script_name(),
                ctx.config.status_path.as_deref(),
                ctx.config.ping_path.as_deref(),
            )
        } else {
            None
        };
        // A request aborted while it waited in the queue is answered without running.
        let outcome = if request.is_aborted() {
            Ok(Ok(()))
        } else if let Some(page) = page {
            catch_unwind(AssertUnwindSafe(|| {
                status_page::answer(page, &ctx, &request, &mut response)
            }))
        } else {
            catch_unwind(AssertUnwindSafe(|| handler.handle(&mut request, &mut response)))
        };
        // The connection routes input to this request until it is marked finished, and the web
        // server may reuse its id the moment it reads END_REQUEST: so first all input, then
        // the mark, then END_REQUEST.
        let input_failed = response.wait_for_input();
        // The web server gave up on the request (FCGI_ABORT_REQUEST): nothing more goes out,
        // and END_REQUEST says it did not complete. A connection that went away is told
        // nothing at all, and is logged as gone (below).
        let aborted = request.is_aborted() && !response.wire().is_broken();
        // Set when the handler failed after some of its response went out: the web server
        // must be told, or it would pass the truncated response on as whole.
        let mut cut_short = false;
        // How it ended, for the access log.
        let mut ending = if request.is_aborted() { "aborted" } else { "ok" };
        match (input_failed, outcome) {
            // Its input stopped (over the limit, spool failure, too slow): nothing has gone
            // out yet, and the answer says why.
            (Some(status), _) => {
                response.fail(status);
                ending = "input_failed";
            }
            (None, Ok(Ok(()))) => {}
            // Its writes failed because of the abort, as they should: it stopped.
            (None, Ok(Err(e))) if aborted => {
                debug!(log, "handler stopped: the web server aborted the request";
                    "req" => request.request_id(), "error" => %e, "uri" => request.request_uri());
            }
            // Answered with an error status for its input at the first flush: complete, and
            // the handler's failure to write after that is no news.
            (None, Ok(Err(e))) if response.is_refused() => {
                debug!(log, "handler stopped after its request was refused";
                    "req" => request.request_id(), "error" => %e, "status" => response.status());
            }
            // The web server closed the connection (its client went away, or it stopped):
            // nothing failed here, and nobody is left to answer.
            (None, Ok(Err(e))) if response.wire().is_broken() || is_peer_gone(&*e) => {
                info!(log, "the web server went away before the response was written";
                    "req" => request.request_id(), "error" => %e, "uri" => request.request_uri());
                ending = "peer_gone";
            }
            (None, Ok(Err(e))) => {
                cut_short = !response.fail(500);
                ending = if cut_short { "cut_short" } else { "handler_error" };
                error!(log, "handler failed"; "req" => request.request_id(), "error" => %e,
                    "uri" => request.request_uri(), "cut_short" => cut_short);
            }
            (None, Err(panic)) => {
                let message = panic
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "a non-string panic payload".to_owned());
                // After an abort nobody reads the answer: it ends as aborted, not cut short.
                cut_short = !aborted && !response.fail(500);
                ending = if cut_short { "cut_short" } else { "panic" };
                error!(log, "handler panicked"; "req" => request.request_id(), "panic" => message,
                    "uri" => request.request_uri(), "cut_short" => cut_short);
            }
        }
        let status = response.status();
        running.end(request.method(), request.request_uri(), status);
        let body_bytes = response.body_bytes();
        let wire = Arc::clone(response.wire());
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
            wire.finish_writes();
        }
        ctx.counters.active.fetch_sub(1, Ordering::AcqRel);
        ctx.counters.requests.fetch_add(1, Ordering::Relaxed);
        if let Err(e) = &delivered {
            debug!(log, "response not delivered"; "req" => request.request_id(), "error" => %e);
            if ending == "ok" {
                ending = "not_delivered";
            }
        }
        if ctx.config.access_log {
            let bytes = delivered.unwrap_or(body_bytes);
            access_line(&log, &request, status, bytes, started.elapsed(), ending);
        }
    }
}

/// The request's access log line: a record tagged `access` (which the binary can send to a
/// file of its own), for every request that reached the pool, finished or not; `outcome` says
/// how it ended (`ok`, `aborted`, `input_failed`, `peer_gone`, `handler_error`, `panic`,
/// `cut_short`, `not_delivered`, `queue_timeout`).
fn access_line(
    log: &Logger,
    request: &Request,
    status: u16,
    bytes: u64,
    elapsed: std::time::Duration,
    outcome: &str,
) {
    info!(log, #"access", "request";
        "req" => request.request_id(),
        "method" => request.method(),
        "uri" => request.request_uri(),
        "status" => status,
        "bytes" => bytes,
        "ms" => format!("{:.3}", elapsed.as_secs_f64() * 1000.0),
        "duration_us" => u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX),
        "remote" => request.remote_addr(),
        "user" => request.param_str("REMOTE_USER"),
        "query" => request.query_string(),
        "script" => request.script_filename().map(String::from_utf8_lossy).as_deref(),
        "protocol" => request.param_str("SERVER_PROTOCOL"),
        "referer" => request.param_str("HTTP_REFERER"),
        "user_agent" => request.param_str("HTTP_USER_AGENT"),
        "content_length" => request.content_length(),
        "request_id" => request_id(request),
        "outcome" => outcome);
}

/// Requests this process logged without an id of the web server's (per process: the pid goes
/// with it).
static NEXT_REQUEST_ID: AtomicU64 = AtomicU64::new(1);

/// The request's id: the web server's when it sends one (`fastcgi_param REQUEST_ID
/// $request_id;`, or an `X-Request-Id` header), else `PID-N` from a counter of this process.
fn request_id(request: &Request) -> String {
    match request.param_str("REQUEST_ID").or_else(|| request.param_str("HTTP_X_REQUEST_ID")) {
        Some(id) if !id.is_empty() => id.to_owned(),
        _ => format!("{}-{}", std::process::id(), NEXT_REQUEST_ID.fetch_add(1, Ordering::Relaxed)),
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
