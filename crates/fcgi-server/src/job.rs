//! The pool's side of a request: begin it, route it (the status page, the ping) or hand it to
//! its handler, which ends it (see [`Exchange`]).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use slog::Logger;

use crate::exchange::Exchange;
use crate::handler::Handler;
use crate::status_page;
use crate::{Request, Response};

/// One request handed to the pool.
pub(crate) struct Job {
    pub(crate) ctx: Arc<crate::context::Context>,
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
        let Job { ctx, handler, request, response, log } = self;
        // It waited past the queue timeout, and its connection answered it.
        let Some(mut exchange) = Exchange::begin(ctx, request, response, log) else { return };
        // A request aborted while it waited in the queue is answered without running.
        if exchange.request().is_aborted() {
            exchange.finish(Ok(()));
            return;
        }
        // The status page and the ping, whatever the app: one param lookup, and only when
        // a path is configured.
        let ctx = Arc::clone(exchange.context());
        let page = if ctx.config.status_path.is_some() || ctx.config.ping_path.is_some() {
            let request = exchange.request();
            status_page::route(
                request.role(),
                request.script_name(),
                ctx.config.status_path.as_deref(),
                ctx.config.ping_path.as_deref(),
            )
        } else {
            None
        };
        if let Some(page) = page {
            let answered = catch_unwind(AssertUnwindSafe(|| {
                let (request, response) = exchange.split();
                status_page::answer(page, &ctx, request, response)
            }));
            match answered {
                Ok(result) => exchange.finish(result),
                Err(panic) => exchange.finish_panicked(panic),
            }
            return;
        }
        let mark = exchange.thread_mark();
        // A handler that panics while it holds the exchange has it dropped in the unwind,
        // which ends the request as a panic; the pool thread lives on.
        let _ = catch_unwind(AssertUnwindSafe(|| handler.handle_owned(exchange)));
        // This thread is free now, whether the request ended or went on elsewhere.
        mark.release();
    }
}
