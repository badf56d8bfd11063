//! The pool's side of a request: begin it and hand it to its handler, which ends it (see
//! [`Exchange`]); a monitoring probe ([`Handler::is_monitoring`]) runs beside a busy pool.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use slog::Logger;

use crate::exchange::Exchange;
use crate::handler::Handler;
use crate::{Request, Response};

/// Clears its flag when dropped.
struct Free<'a>(&'a std::sync::atomic::AtomicBool);

impl Drop for Free<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

fn take(slot: &Mutex<Option<Job>>) -> Option<Job> {
    slot.lock().unwrap_or_else(|p| p.into_inner()).take()
}

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
    /// Runs a monitoring probe (the status page, the ping, an app's own health check) on a
    /// thread of its own when every pool thread is busy, so that monitoring sees a saturated
    /// server (an app whose threads all wait on its program processes) at once instead of
    /// queueing behind it; one such thread at a time, so that the wire cannot make more. Any
    /// other request, or a probe while one is being answered so, is given back, to be queued.
    pub(crate) fn run_aside(self) -> Option<Job> {
        if !self.handler.is_monitoring(&self.request) {
            return Some(self);
        }
        let ctx = Arc::clone(&self.ctx);
        if ctx.page_aside.swap(true, Ordering::AcqRel) {
            return Some(self);
        }
        // Shared with the thread, so that the job comes back if the thread cannot start.
        let slot = Arc::new(Mutex::new(Some(self)));
        let taken = Arc::clone(&slot);
        let spawned = std::thread::Builder::new().name("fcgi-page".into()).spawn(move || {
            if let Some(job) = take(&taken) {
                let ctx = Arc::clone(&job.ctx);
                // Free again however the page ends, a panic included.
                let _free = Free(&ctx.page_aside);
                job.run();
            }
        });
        if spawned.is_ok() {
            return None;
        }
        ctx.page_aside.store(false, Ordering::Release);
        take(&slot)
    }

    pub(crate) fn run(self) {
        let Job { ctx, handler, request, response, log } = self;
        // It waited past the queue timeout, and its connection answered it.
        let Some(mut exchange) = Exchange::begin(ctx, request, response, log) else { return };
        // A request aborted while it waited in the queue is answered without running.
        if exchange.request().is_aborted() {
            exchange.finish(Ok(()));
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
