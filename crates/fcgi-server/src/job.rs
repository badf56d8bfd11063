//! The pool's side of a request: run the handler, then end the response, whatever happened.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering;
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
            return;
        }
        let started = Instant::now();
        let running = ctx.status.begin(|| RequestFacts::of(&request));
        // The status page and the ping, whatever the app: one param lookup, and only when
        // a path is configured.
        let page = if ctx.config.status_path.is_some() || ctx.config.ping_path.is_some() {
            status_page::route(
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
        // Set when the handler failed after some of its response went out: the web server
        // must be told, or it would pass the truncated response on as whole.
        let mut cut_short = false;
        match (input_failed, outcome) {
            // Its input stopped (over the limit, spool failure, too slow): nothing has gone
            // out yet, and the answer says why.
            (Some(status), _) => {
                response.fail(status);
            }
            (None, Ok(Ok(()))) => {}
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
            }
            (None, Ok(Err(e))) => {
                cut_short = !response.fail(500);
                error!(log, "handler failed"; "req" => request.request_id(), "error" => %e,
                    "uri" => request.request_uri(), "cut_short" => cut_short);
            }
            (None, Err(panic)) => {
                let message = panic
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "a non-string panic payload".to_owned());
                cut_short = !response.fail(500);
                error!(log, "handler panicked"; "req" => request.request_id(), "panic" => message,
                    "uri" => request.request_uri(), "cut_short" => cut_short);
            }
        }
        let status = response.status();
        running.end(request.method(), request.request_uri(), status);
        let wire = Arc::clone(response.wire());
        request.release();
        shared.finished.store(true, Ordering::Release);
        let delivered = if cut_short {
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
        match delivered {
            Ok(bytes) if ctx.config.access_log => info!(log, "request";
                "req" => request.request_id(),
                "method" => request.method(),
                "uri" => request.request_uri(),
                "status" => status,
                "bytes" => bytes,
                "ms" => format!("{:.3}", started.elapsed().as_secs_f64() * 1000.0)),
            Ok(_) => {}
            Err(e) => {
                debug!(log, "response not delivered"; "req" => request.request_id(), "error" => %e)
            }
        }
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
