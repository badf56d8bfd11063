//! [`Service`]: a tower service as an fcgi-server `Handler`, and the runtime its futures use.

use std::fmt;
use std::future::{poll_fn, Future};
use std::io;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll, Waker};

use http::Method;
use http_body::Body as HttpBody;
use tokio::runtime::{Handle, Runtime, RuntimeFlavor};

use crate::body::Body;
use crate::in_flight::{InFlight, Permit};
use crate::request::request_from_params;
use crate::response::{poll_write_body, write_head};

/// Requests whose futures may be in flight at once in one [`Service`] by default; see
/// [`Service::max_in_flight`].
///
/// 1,024: as many as fcgi-server lets wait for a thread (`Config::DEFAULT_QUEUE`), so a burst
/// the server would queue runs instead, and a request that waits on a timer or a socket costs
/// its future and its buffers (kilobytes), not a thread. The bound is there for the app that
/// waits on something stuck (a database that stopped answering): its requests pile up to
/// here, then wait in the pool's queue, and past that queue's timeout get `503` with
/// `Retry-After`, instead of gathering without end.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 1024;

/// The shared runtime, started at the first request (not before: a prefork master that
/// builds its handler before it forks must not own threads its workers lack). A worker per
/// CPU, as `#[tokio::main]` gives: they run the requests' futures once these wait.
fn shared_runtime() -> &'static Handle {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .thread_name("fcgi-http-rt")
                .enable_all()
                .build()
                .expect("the tokio runtime of fcgi-http starts")
        })
        .handle()
}

/// Why a runtime cannot run a [`Service`]'s futures: a current-thread runtime runs its tasks
/// only inside its own `block_on`, and the thread in that `block_on` is the one that would
/// sit in `serve` (`#[tokio::main(flavor = "current_thread")]`): every request that waits
/// would wait for ever. `None` for a runtime that can.
pub(crate) fn unusable_runtime(runtime: &Handle) -> Option<io::Error> {
    (runtime.runtime_flavor() == RuntimeFlavor::CurrentThread).then(|| {
        io::Error::new(
            io::ErrorKind::Unsupported,
            "fcgi_http::serve was called inside a current-thread tokio runtime \
             (#[tokio::main(flavor = \"current_thread\")]), whose tasks run only while its \
             thread awaits, and that thread would serve requests instead: a request that \
             awaits anything would never be answered. Use the multi-thread runtime \
             (#[tokio::main], or Runtime::new()), or call serve outside any runtime and let \
             fcgi-http start its own",
        )
    })
}

/// A tower service (an axum `Router`, or anything that takes `http::Request<Body>` and gives
/// an `http::Response`) as an fcgi-server [`Handler`](fcgi_server::Handler): for
/// [`ServerBuilder::handler`](fcgi_server::ServerBuilder::handler), a prefork worker, or
/// [`fcgi_server::serve_handler`]. [`serve`](crate::serve) is this plus a listener.
///
/// # How a request runs
///
/// On the fcgi-server pool thread that took the request: the params become an
/// `http::Request` ([`request_from_params`]), the service is cloned (as hyper does per
/// connection), and one future is made of `poll_ready`, `call` and the writing of the
/// response. That future is polled once, right there, inside the runtime
/// ([`Handle::enter`]). A request answered at its first poll (no `.await` that waits: a
/// `/hello`, a JSON made from memory) is done then, on that thread, with no task spawned
/// and no thread crossed. A future that waits (a timer, a socket, a database) is spawned
/// onto the runtime and the pool thread goes back to the pool at once; the runtime's
/// workers poll it from then on, many per thread, and it writes its response from there.
///
/// **Concurrency**: requests in flight (running, or waiting on the runtime) are at most
/// [`max_in_flight`](Service::max_in_flight), [`DEFAULT_MAX_IN_FLIGHT`] by default, whatever
/// the pool's `max_threads`: 400 requests each asleep for 2 s hold no thread. When the limit
/// is reached, the next request's pool thread waits for one to finish; requests past the
/// pool's threads wait in fcgi-server's bounded queue and get `503` past its timeout, as for
/// any handler. So nothing queues without bound.
///
/// Code that blocks (a synchronous database driver, heavy CPU work) goes in
/// `tokio::task::spawn_blocking`, as on hyper: on a runtime worker it would stall the other
/// futures of that worker. Response writes wait while the web server's socket is full (see
/// the crate's `DESIGN.md`: nginx reads at once unless its buffering is off).
///
/// # The runtime
///
/// [`Service::new`] uses a runtime shared by every service of the process (a worker thread
/// per CPU), started at the first request; [`Service::with_runtime`] uses yours (the one
/// your database pool was made on). [`serve`](crate::serve) uses the multi-thread runtime
/// it is called in, if any, and refuses a current-thread one.
///
/// # Body and errors
///
/// fcgi-server starts the handler once the request body is all in (spooled to memory, then
/// to a temporary file); the service reads it a [`FRAME_SIZE`](crate::FRAME_SIZE) frame at a
/// time ([`Body`]), and a read never waits. The response body is written frame by frame as
/// the service yields it, flushed whenever the body has nothing more ready. A service error,
/// a response body error or a panic (at any poll, the first or a later one on the runtime)
/// ends the request as a failed handler: fcgi-server answers 500 if nothing went out yet,
/// and otherwise cuts the response short so that the web server does not pass it on as
/// complete; the access line says which. Params that make no `http::Request` (a
/// `REQUEST_METHOD` that is no method) are answered 400, with the reason on `FCGI_STDERR`
/// (nginx's error log).
///
/// A request the web server aborts (FCGI_ABORT_REQUEST, or its connection closed) ends at
/// once: the service's future and its response body are dropped, whatever they wait for (a
/// timer, a socket, the next frame), and the request ends as aborted (fcgi-server's
/// `Response` docs say how the web server is told). Tasks the service spawned go on: they
/// are the runtime's, not the request's.
///
/// # Under a prefork master
///
/// Build the `Service` in the worker (`Workload::run_worker`), as any handler: the shared
/// runtime starts at the first request, so in the worker, after the fork; a runtime started
/// in the master before it forks would have no threads in its workers.
///
/// ```no_run
/// use fcgi_server::{Config, ListenOptions, Listener, Role, Server};
///
/// let app = axum::Router::new().route("/", axum::routing::get(|| async { "Hello, world!" }));
/// let listener = Listener::bind(&"unix:/run/app.sock".parse()?, &ListenOptions::default())?;
/// Server::builder()
///     .listener(listener)
///     .config(Config { max_threads: 16, ..Config::default() })
///     .handler(Role::Responder, fcgi_http::Service::new(app).max_in_flight(4096))
///     .build()
///     .serve()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Service<S> {
    /// Cloned for each request; the lock is held for the clone only. (A `Mutex` so that a
    /// service that is `Send` but not `Sync` serves too.)
    service: Mutex<S>,
    runtime: Option<Handle>,
    in_flight: Arc<InFlight>,
}

impl<S> Service<S> {
    /// `service`, its futures run on a runtime shared by the whole process (a worker thread
    /// per CPU, started at the first request), at most [`DEFAULT_MAX_IN_FLIGHT`] at once.
    ///
    /// ```
    /// let app: axum::Router = axum::Router::new();
    /// let handler = fcgi_http::Service::new(app);
    /// ```
    pub fn new(service: S) -> Service<S> {
        Service {
            service: Mutex::new(service),
            runtime: None,
            in_flight: Arc::new(InFlight::new(DEFAULT_MAX_IN_FLIGHT)),
        }
    }

    /// `service`, its futures run on `runtime`: the one its database pool or its clients were
    /// made on (a pool made on one runtime fails when used from another), or one with more
    /// threads.
    ///
    /// A multi-thread runtime it should be. A current-thread runtime runs its tasks only
    /// while a thread sits in its `block_on`: it serves only if a thread of yours does that
    /// for as long as the server runs, and never when that thread is the one that serves
    /// (what [`serve`](crate::serve) refuses).
    ///
    /// ```no_run
    /// let runtime = tokio::runtime::Builder::new_multi_thread()
    ///     .worker_threads(8)
    ///     .enable_all()
    ///     .build()?;
    /// let app: axum::Router = axum::Router::new();
    /// let handler = fcgi_http::Service::with_runtime(app, runtime.handle().clone());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn with_runtime(service: S, runtime: Handle) -> Service<S> {
        Service { runtime: Some(runtime), ..Service::new(service) }
    }

    /// At most `limit` requests in flight at once (at least 1): running, or waiting on the
    /// runtime for a timer, a socket, a spawned task. At the limit, the pool thread of the
    /// next request waits for one to end, and what comes after waits in fcgi-server's queue
    /// (then gets `503`). Size it for what the app may hold at once (each request in flight
    /// keeps its future, its params and the memory part of its body), not for CPUs.
    ///
    /// ```
    /// let app: axum::Router = axum::Router::new();
    /// let handler = fcgi_http::Service::new(app).max_in_flight(10_000);
    /// ```
    pub fn max_in_flight(mut self, limit: usize) -> Service<S> {
        self.in_flight = Arc::new(InFlight::new(limit.max(1)));
        self
    }

    fn runtime(&self) -> &Handle {
        self.runtime.as_ref().unwrap_or_else(|| shared_runtime())
    }
}

impl<S> fmt::Debug for Service<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Service")
            .field("runtime", &self.runtime)
            .field("in_flight", &self.in_flight)
            .finish_non_exhaustive()
    }
}

/// What fcgi-http serves: a tower service from `http::Request<`[`Body`]`>` to
/// `http::Response<B>`, `B` any `http_body::Body`, that is `Clone` (a clone per request, as
/// hyper makes one per connection), and whose futures and bodies are `Send` (a request that
/// waits moves to a runtime worker), as `axum::serve` asks. An axum `Router` with its state
/// given, a `tower::ServiceBuilder` stack and a `service_fn` are; every such service is one,
/// with nothing to implement.
///
/// ```
/// fn servable<S: fcgi_http::HttpService>(_: &S) {}
/// servable(&axum::Router::new());
/// ```
pub trait HttpService:
    tower_service::Service<
        http::Request<Body>,
        Response = http::Response<Self::ResponseBody>,
        Future: Send + 'static,
        Error: Into<fcgi_server::Error>,
    > + Clone
    + Send
    + 'static
{
    /// The response's body.
    type ResponseBody: HttpBody<Error: Into<fcgi_server::Error>> + Send + 'static;
}

impl<S, B> HttpService for S
where
    S: tower_service::Service<http::Request<Body>, Response = http::Response<B>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: Into<fcgi_server::Error>,
    B: HttpBody + Send + 'static,
    B::Error: Into<fcgi_server::Error>,
{
    type ResponseBody = B;
}

impl<S: HttpService> fcgi_server::Handler for Service<S> {
    /// Not called by fcgi-server, which calls `handle_owned`: runs the request to its end on
    /// this thread, for a caller that has only a `Request` and a `Response`.
    fn handle(
        &self,
        request: &mut fcgi_server::Request,
        response: &mut fcgi_server::Response,
    ) -> Result<(), fcgi_server::Error> {
        let _permit = self.in_flight.acquire();
        let Some(http_request) = http_request(request, response)? else { return Ok(()) };
        let method = http_request.method().clone();
        let service = self.service.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let abort = request.abort_signal();
        let mut state = State::Ready { service, request: Some(http_request) };
        self.runtime().block_on(poll_fn(|cx| step(&mut state, &abort, &method, response, cx)))
    }

    fn handle_owned(&self, mut exchange: fcgi_server::Exchange) {
        let permit = self.in_flight.acquire();
        // Aborted while it waited for the permit: nobody reads an answer.
        if exchange.request().is_aborted() {
            exchange.finish(Ok(()));
            return;
        }
        let (request, response) = exchange.split();
        let http_request = match http_request(request, response) {
            Ok(Some(http_request)) => http_request,
            Ok(None) => return exchange.finish(Ok(())),
            Err(e) => return exchange.finish(Err(e)),
        };
        let mut run = Run {
            method: http_request.method().clone(),
            abort: request.abort_signal(),
            state: State::Ready {
                service: self.service.lock().unwrap_or_else(|p| p.into_inner()).clone(),
                request: Some(http_request),
            },
            exchange: Some(exchange),
            _permit: permit,
        };
        let runtime = self.runtime();
        let _entered = runtime.enter();
        // The first poll, here: a request answered at once costs no task. A waker that does
        // nothing is enough for it, since a future still pending is spawned, and the task's
        // first poll (which the spawn schedules) registers the task's own wakers.
        let mut cx = Context::from_waker(Waker::noop());
        if Pin::new(&mut run).poll(&mut cx).is_pending() {
            drop(runtime.spawn(run));
        }
    }
}

/// The request's params as an `http::Request`; `None` when they make none, answered 400 here
/// with the reason on `FCGI_STDERR`.
fn http_request(
    request: &mut fcgi_server::Request,
    response: &mut fcgi_server::Response,
) -> Result<Option<http::Request<Body>>, fcgi_server::Error> {
    let body = Body::new(request.body_reader(), request.content_length());
    match request_from_params(request.params(), body) {
        Ok(http_request) => Ok(Some(http_request)),
        Err(bad) => {
            response.fail(400);
            response.write_stderr(format!("{bad}\n").as_bytes())?;
            Ok(None)
        }
    }
}

/// Where a request's future is: the service not yet ready, its call running, its response
/// being written; then nothing.
// The request is large next to the boxes, but the state moves at most once (into its task),
// and a box for it would be one more allocation per request.
#[allow(clippy::large_enum_variant)]
enum State<S, F, B> {
    Ready { service: S, request: Option<http::Request<Body>> },
    Calling(Pin<Box<F>>),
    Writing { body: Pin<Box<B>>, unflushed: bool },
    Done,
}

/// Moves `state` on as far as it goes without waiting: `Ready` with the request's result once
/// the response is written (or failed), or once the request is aborted (its future and body
/// are then dropped by the caller). Polled first, so that a request answered at its first poll
/// never registers for the abort.
fn step<S, B>(
    state: &mut State<S, S::Future, B>,
    abort: &fcgi_server::AbortSignal,
    method: &Method,
    response: &mut fcgi_server::Response,
    cx: &mut Context<'_>,
) -> Poll<Result<(), fcgi_server::Error>>
where
    S: tower_service::Service<http::Request<Body>, Response = http::Response<B>>,
    S::Error: Into<fcgi_server::Error>,
    B: HttpBody,
    B::Error: Into<fcgi_server::Error>,
{
    loop {
        match state {
            State::Ready { service, request } => match service.poll_ready(cx) {
                Poll::Pending => break,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e.into())),
                Poll::Ready(Ok(())) => {
                    let request = request.take().expect("a request until it is called");
                    *state = State::Calling(Box::pin(service.call(request)));
                }
            },
            State::Calling(call) => match call.as_mut().poll(cx) {
                Poll::Pending => break,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e.into())),
                Poll::Ready(Ok(answer)) => {
                    let (head, body) = answer.into_parts();
                    let exact = body.size_hint().exact();
                    if let Err(e) = write_head(response, method, head.status, &head.headers, exact)
                    {
                        return Poll::Ready(Err(e));
                    }
                    let unflushed = !response.headers_sent();
                    *state = State::Writing { body: Box::pin(body), unflushed };
                }
            },
            State::Writing { body, unflushed } => {
                match poll_write_body(response, body.as_mut(), unflushed, cx) {
                    Poll::Pending => break,
                    Poll::Ready(result) => return Poll::Ready(result),
                }
            }
            State::Done => return Poll::Ready(Ok(())),
        }
    }
    abort.poll_aborted(cx).map(|()| {
        Err(io::Error::new(io::ErrorKind::ConnectionAborted, "the web server aborted the request")
            .into())
    })
}

/// A request's future with its exchange: polled once on the pool thread, then (if it waits)
/// as a task of the runtime. It ends the exchange itself, with the result, or with the panic
/// of any poll, after dropping the service's future and body.
struct Run<S: tower_service::Service<http::Request<Body>>, B> {
    method: Method,
    abort: fcgi_server::AbortSignal,
    state: State<S, S::Future, B>,
    /// `None` once ended. Dropped unended (the runtime shut down with the task pending), it
    /// ends the request as a failed handler.
    exchange: Option<fcgi_server::Exchange>,
    /// Given back after the exchange ends (declared last, dropped last).
    _permit: Permit,
}

// `Run` never pins what it holds in place: the service's future and the body are boxed, and
// the service is only used through `&mut`. So it may move between polls (from the pool
// thread's stack into a task).
impl<S: tower_service::Service<http::Request<Body>>, B> Unpin for Run<S, B> {}

impl<S, B> Future for Run<S, B>
where
    S: tower_service::Service<http::Request<Body>, Response = http::Response<B>>,
    S::Error: Into<fcgi_server::Error>,
    B: HttpBody,
    B::Error: Into<fcgi_server::Error>,
{
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        let Some(exchange) = this.exchange.as_mut() else { return Poll::Ready(()) };
        let response = exchange.response();
        let (state, abort, method) = (&mut this.state, &this.abort, &this.method);
        let stepped = catch_unwind(AssertUnwindSafe(|| step(state, abort, method, response, cx)));
        let outcome = match stepped {
            Ok(Poll::Pending) => return Poll::Pending,
            Ok(Poll::Ready(result)) => Ok(result),
            Err(panic) => Err(panic),
        };
        // The service's future and body go first (an abort must stop them before END_REQUEST
        // goes out); a panic in their drop is theirs, not the request's.
        let done = std::mem::replace(&mut this.state, State::Done);
        let _ = catch_unwind(AssertUnwindSafe(move || drop(done)));
        let exchange = this.exchange.take().expect("checked above");
        match outcome {
            Ok(result) => exchange.finish(result),
            Err(panic) => exchange.finish_panicked(panic),
        }
        Poll::Ready(())
    }
}
