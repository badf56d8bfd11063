//! The status page and the ping as a layer over the app's Responder, put in place when the
//! server is built ([`with_pages`]): a request for one of the paths is answered here, every
//! other goes on to the app, and the pool sees one handler like any other.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use super::{answer, route, Page};
use crate::config::Config;
use crate::work::error::Error;
use crate::work::handler::{Handler, Handlers};
use crate::{Exchange, Request, Response};

/// The app's Responder, with the paths answered in front of it.
struct Pages {
    app: Arc<dyn Handler>,
    status_path: Option<String>,
    ping_path: Option<String>,
}

impl Pages {
    fn page(&self, request: &Request) -> Option<Page> {
        route(
            request.role(),
            request.script_name(),
            self.status_path.as_deref(),
            self.ping_path.as_deref(),
        )
    }
}

impl Handler for Pages {
    fn handle(&self, request: &mut Request, response: &mut Response) -> Result<(), Error> {
        self.app.handle(request, response)
    }

    fn handle_owned(&self, mut exchange: Exchange) {
        let Some(page) = self.page(exchange.request()) else {
            return self.app.handle_owned(exchange);
        };
        let ctx = Arc::clone(exchange.context());
        let answered = catch_unwind(AssertUnwindSafe(|| {
            let (request, response) = exchange.split();
            answer(page, &ctx, request, response)
        }));
        match answered {
            Ok(result) => exchange.finish(result),
            Err(panic) => exchange.finish_panicked(panic),
        }
    }

    fn streams_body(&self) -> bool {
        self.app.streams_body()
    }

    fn is_monitoring(&self, request: &Request) -> bool {
        self.page(request).is_some() || self.app.is_monitoring(request)
    }
}

/// `handlers` with the status page and the ping in front of the Responder, when `config` names
/// a path for either (and there is a Responder: a server without one refuses the role, pages
/// included). Without a path, the handlers as they are: no request pays for a look-up.
pub(crate) fn with_pages(mut handlers: Handlers, config: &Config) -> Handlers {
    if config.status_path.is_none() && config.ping_path.is_none() {
        return handlers;
    }
    if let Some(app) = handlers.responder.take() {
        handlers.responder = Some(Arc::new(Pages {
            app,
            status_path: config.status_path.clone(),
            ping_path: config.ping_path.clone(),
        }));
    }
    handlers
}
