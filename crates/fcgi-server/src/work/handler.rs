//! The `Handler` trait: where application code lives.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use fcgi_codec::Role;

use crate::work::error::Error;
use crate::{Exchange, Request, Response};

/// Application code: answers one request at a time, on a pool thread.
///
/// Any `Fn(&mut Request, &mut Response) -> Result<(), Error>` that is `Send + Sync` is a
/// handler. A handler that panics is answered with 500 (if no header went out), logged with its
/// request, and affects nothing else.
///
/// # When a handler fails after its response began
///
/// Returning `Err` (or panicking) before any output went out replaces the response with a
/// plain `500`. After output went out (a flush, a large write, 64 KiB buffered), the status and
/// part of the body are with the web server, and a FastCGI application has no way to take
/// them back. What it can do is make sure the web server does not pass the part on as the
/// whole: the server sends no `END_REQUEST`, writes a record no FastCGI client accepts (version
/// 0), and closes the connection. The failure is logged at error level with the URI and
/// `cut_short=true`.
///
/// Why this signal: nginx ignores END_REQUEST's `appStatus` and `protocolStatus`, and with its
/// default `fastcgi_keep_conn off` it takes a plain close for a normal end; an invalid record is
/// an upstream error for it in every mode, over TCP and Unix sockets, and its client sees a
/// truncated response (or, if nginx was still buffering, none). What Apache, lighttpd and
/// HAProxy make of it is measured in `docs/FAILURES.md`. On a connection that multiplexes
/// requests (HAProxy), the other requests on it fail too.
///
/// So a handler that streams should return the error, not swallow it:
///
/// ```
/// use std::io::Write;
/// use fcgi_server::{Request, Response};
///
/// fn report(_: &mut Request, response: &mut Response) -> Result<(), fcgi_server::Error> {
///     response.header("Content-Type", "text/csv")?;
///     for row in 0..3 {
///         writeln!(response, "{row},ok")?;
///         response.flush()?; // the rows go out as they are made
///     }
///     // A row that cannot be made now must not end in a response that looks complete.
///     Err("the database went away at row 3".into())
/// }
/// ```
///
/// ```
/// use std::io::Write;
/// use fcgi_server::{Handler, Request, Response};
///
/// struct Hello;
///
/// impl Handler for Hello {
///     fn handle(&self, _: &mut Request, response: &mut Response) -> Result<(), fcgi_server::Error> {
///         response.header("Content-Type", "text/plain")?;
///         response.write_all(b"Hello, world!")?;
///         Ok(())
///     }
/// }
///
/// // A closure works too.
/// let echo_method = |request: &mut Request, response: &mut Response| -> Result<(), fcgi_server::Error> {
///     response.write_all(request.method().unwrap_or("?").as_bytes())?;
///     Ok(())
/// };
/// # fn is_handler<H: Handler>(_: H) {}
/// # is_handler(Hello);
/// # is_handler(echo_method);
/// ```
pub trait Handler: Send + Sync + 'static {
    /// Answers `request` through `response`.
    fn handle(&self, request: &mut Request, response: &mut Response) -> Result<(), Error>;

    /// Takes the request along: what the server calls, on the pool thread that took the
    /// request. The default runs [`handle`](Handler::handle) right here and ends the request
    /// with what it returned (or with its panic), so a handler that only answers in `handle`
    /// needs nothing more.
    ///
    /// A handler that answers elsewhere (an async bridge polling a future on a runtime, a
    /// thread of its own) keeps the [`Exchange`] and returns at once: the pool thread is free
    /// for the next request, and the request ends when the exchange is finished (or dropped,
    /// as a failure). What bounds such requests is then the handler's business, not the
    /// pool's: fcgi-http, say, counts them against a limit of its own and makes the pool
    /// thread wait when it is reached, so that excess requests queue in the pool (and get 503
    /// past the queue) as they do for blocking handlers.
    ///
    /// The status page and the ping are answered before this is called (a layer in front of
    /// the Responder, put there when the server is built), and a request aborted while it was
    /// queued never reaches it.
    ///
    /// ```
    /// use fcgi_server::{Exchange, Handler, Request, Response};
    ///
    /// struct Logged<H>(H);
    ///
    /// impl<H: Handler> Handler for Logged<H> {
    ///     fn handle(&self, request: &mut Request, response: &mut Response) -> Result<(), fcgi_server::Error> {
    ///         self.0.handle(request, response)
    ///     }
    ///
    ///     fn handle_owned(&self, mut exchange: Exchange) {
    ///         eprintln!("{:?} begins", exchange.request().request_uri());
    ///         self.0.handle_owned(exchange);
    ///     }
    /// }
    /// # fn is_handler<H: Handler>(_: H) {}
    /// # is_handler(Logged(|_: &mut Request, _: &mut Response| -> Result<(), fcgi_server::Error> { Ok(()) }));
    /// ```
    fn handle_owned(&self, mut exchange: Exchange) {
        let (request, response) = exchange.split();
        match catch_unwind(AssertUnwindSafe(|| self.handle(request, response))) {
            Ok(result) => exchange.finish(result),
            Err(panic) => exchange.finish_panicked(panic),
        }
    }

    /// Whether the handler starts as soon as the params are in and reads the body as it
    /// arrives (`true`), or starts once the whole body is spooled (`false`, the default).
    ///
    /// Starting early only pays for a handler that passes the body on as it comes (the CGI
    /// gateway feeds it to a program): its response cannot go out before the body is in
    /// anyway (nginx reads no response before it has sent the whole body). It costs a pool
    /// thread for as long as the body takes to arrive, which a slow or hostile peer can make
    /// long (bounded by `Config::read_timeout` and `Config::min_input_rate`); a handler that
    /// starts late holds no thread while the body trickles in.
    ///
    /// ```
    /// use fcgi_server::{Handler, Request, Response};
    ///
    /// struct Forward;
    ///
    /// impl Handler for Forward {
    ///     fn handle(&self, request: &mut Request, _: &mut Response) -> Result<(), fcgi_server::Error> {
    ///         std::io::copy(request.body(), &mut std::io::sink())?; // as it arrives
    ///         Ok(())
    ///     }
    ///
    ///     fn streams_body(&self) -> bool {
    ///         true
    ///     }
    /// }
    /// # fn is_handler<H: Handler>(_: H) {}
    /// # is_handler(Forward);
    /// ```
    fn streams_body(&self) -> bool {
        false
    }

    /// Whether `request` is a monitoring probe (a health check, a status page) that must be
    /// answered at once when every pool thread is busy, on a thread of its own, rather than
    /// queue behind the work it reports on: monitoring should see a saturated server as it is.
    /// One such request runs beside the pool at a time; the default is `false`. The server's
    /// own status page and ping are probes already.
    ///
    /// ```
    /// use fcgi_server::{Handler, Request, Response};
    ///
    /// struct App;
    ///
    /// impl Handler for App {
    ///     fn handle(&self, _: &mut Request, response: &mut Response) -> Result<(), fcgi_server::Error> {
    ///         response.write_all(b"ok")?;
    ///         Ok(())
    ///     }
    ///
    ///     fn is_monitoring(&self, request: &Request) -> bool {
    ///         request.script_name() == Some("/healthz")
    ///     }
    /// }
    /// # use std::io::Write;
    /// # fn is_handler<H: Handler>(_: H) {}
    /// # is_handler(App);
    /// ```
    fn is_monitoring(&self, request: &Request) -> bool {
        let _ = request;
        false
    }
}

impl<F> Handler for F
where
    F: Fn(&mut Request, &mut Response) -> Result<(), Error> + Send + Sync + 'static,
{
    fn handle(&self, request: &mut Request, response: &mut Response) -> Result<(), Error> {
        self(request, response)
    }
}

/// A shared handler is a handler: one value may serve several roles (see
/// [`ServerBuilder::responder_and_authorizer`](crate::ServerBuilder::responder_and_authorizer)).
impl<H: Handler + ?Sized> Handler for Arc<H> {
    fn handle(&self, request: &mut Request, response: &mut Response) -> Result<(), Error> {
        (**self).handle(request, response)
    }

    fn handle_owned(&self, exchange: Exchange) {
        (**self).handle_owned(exchange)
    }

    fn streams_body(&self) -> bool {
        (**self).streams_body()
    }

    fn is_monitoring(&self, request: &Request) -> bool {
        (**self).is_monitoring(request)
    }
}

/// The closure `handler`, started as soon as the params are in so that it reads the body as
/// it arrives ([`Handler::streams_body`]); its argument types need no annotation. A type of
/// your own says it in its `streams_body`, or is wrapped as `Streaming(handler)`.
///
/// ```
/// use std::io::Read;
/// use fcgi_server::{streaming, Role, Server};
///
/// let count = streaming(|request, _response| {
///     let mut piece = [0u8; 4096];
///     while request.body().read(&mut piece)? > 0 {} // each piece as it comes
///     Ok(())
/// });
/// let _builder = Server::builder().handler(Role::Responder, count);
/// ```
pub fn streaming<F>(handler: F) -> Streaming<F>
where
    F: Fn(&mut Request, &mut Response) -> Result<(), Error> + Send + Sync + 'static,
{
    Streaming(handler)
}

/// A handler that reads its body as it arrives; see [`streaming`].
#[derive(Clone, Copy, Debug)]
pub struct Streaming<H>(pub H);

impl<H: Handler> Handler for Streaming<H> {
    fn handle(&self, request: &mut Request, response: &mut Response) -> Result<(), Error> {
        self.0.handle(request, response)
    }

    fn handle_owned(&self, exchange: Exchange) {
        self.0.handle_owned(exchange)
    }

    fn streams_body(&self) -> bool {
        true
    }

    fn is_monitoring(&self, request: &Request) -> bool {
        self.0.is_monitoring(request)
    }
}

/// One handler per role; a role without one is refused with `FCGI_UNKNOWN_ROLE`.
#[derive(Clone, Default)]
pub(crate) struct Handlers {
    pub(crate) responder: Option<Arc<dyn Handler>>,
    pub(crate) authorizer: Option<Arc<dyn Handler>>,
    pub(crate) filter: Option<Arc<dyn Handler>>,
}

impl std::fmt::Debug for Handlers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handlers")
            .field("responder", &self.responder.is_some())
            .field("authorizer", &self.authorizer.is_some())
            .field("filter", &self.filter.is_some())
            .finish()
    }
}

impl Handlers {
    pub(crate) fn for_role(&self, role: Role) -> Option<&Arc<dyn Handler>> {
        match role {
            Role::Responder => self.responder.as_ref(),
            Role::Authorizer => self.authorizer.as_ref(),
            Role::Filter => self.filter.as_ref(),
            Role::Unknown(_) => None,
        }
    }
}
