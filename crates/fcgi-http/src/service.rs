//! [`Service`]: a tower service as an fcgi-server `Handler`, and the runtime its futures use.

use std::fmt;
use std::future::{poll_fn, Future};
use std::io;
use std::pin::pin;
use std::sync::{Mutex, OnceLock};
use std::task::Poll;

use http_body::Body as HttpBody;
use tokio::runtime::{Handle, Runtime};

use crate::body::Body;
use crate::request::request_from_params;
use crate::response::{write_body, write_head};

/// Worker threads of the runtime that [`Service::new`] shares between all services of a
/// process. They run no request: each request's future runs on the pool thread that took the
/// request. They drive timers and sockets (`tokio::time::sleep`, a database client's
/// connection) and run the tasks a service spawns, which is light work for two threads; a
/// service that spawns heavy tasks gives a runtime of its own ([`Service::with_runtime`]).
pub const RUNTIME_THREADS: usize = 2;

/// The shared runtime, started at the first request (not before: a prefork master that
/// builds its handler before it forks must not own threads its workers lack).
fn shared_runtime() -> &'static Handle {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(RUNTIME_THREADS)
                .thread_name("fcgi-http-rt")
                .enable_all()
                .build()
                .expect("the tokio runtime of fcgi-http starts")
        })
        .handle()
}

/// A tower service (an axum `Router`, or anything that takes `http::Request<Body>` and gives
/// an `http::Response`) as an fcgi-server [`Handler`](fcgi_server::Handler): for
/// [`ServerBuilder::handler`](fcgi_server::ServerBuilder::handler), a prefork worker, or
/// [`fcgi_server::serve_handler`]. [`serve`](crate::serve) is this plus a listener.
///
/// # How a request runs
///
/// For each request, on the fcgi-server pool thread that took it: the params become an
/// `http::Request` ([`request_from_params`]), the service is cloned (as hyper does per
/// connection) and called, and the future it returns runs right there, with
/// [`Handle::block_on`] on a tokio runtime, until the response and its body are written. So
/// a request's reads of its body and writes of its response, which may wait for the web
/// server, hold only its own thread; the runtime's threads stay free for timers, sockets and
/// spawned tasks.
///
/// **Concurrency**: requests in flight are at most the pool's `Config::max_threads` (64 by
/// default), one thread each, and those past it wait in fcgi-server's queue (then get 503) as
/// for any handler. An `.await` on a timer or a socket parks the thread, as a blocking call
/// would: size `max_threads` for the requests that wait at once, not for the CPUs. What this
/// does not give is thousands of concurrent long-polls on a few threads; FastCGI, where the
/// web server holds the client connections, rarely needs that. The measurements behind the
/// choice are in the crate's `DESIGN.md`.
///
/// # Body and errors
///
/// fcgi-server starts the handler once the request body is all in (spooled to memory, then
/// to a temporary file); the service reads it a [`FRAME_SIZE`](crate::FRAME_SIZE) frame at a
/// time ([`Body`]). The response body is written frame by frame as the service yields it,
/// flushed whenever the body has nothing more ready. A service error, a response body error
/// or a panic is returned to fcgi-server, which answers 500 if nothing went out yet, and
/// otherwise cuts the response short so that the web server does not pass it on as complete.
/// Params that make no `http::Request` (a `REQUEST_METHOD` that is no method) are answered
/// 400, with the reason on `FCGI_STDERR` (nginx's error log).
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
///     .config(Config { max_threads: 128, ..Config::default() })
///     .handler(Role::Responder, fcgi_http::Service::new(app))
///     .build()
///     .serve()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Service<S> {
    /// Cloned for each request; the lock is held for the clone only. (A `Mutex` so that a
    /// service that is `Send` but not `Sync` serves too.)
    service: Mutex<S>,
    runtime: Option<Handle>,
}

impl<S> Service<S> {
    /// `service`, its futures run on a small runtime shared by the whole process
    /// ([`RUNTIME_THREADS`] threads, started at the first request).
    pub fn new(service: S) -> Service<S> {
        Service { service: Mutex::new(service), runtime: None }
    }

    /// `service`, its futures run with `runtime`: for a service that needs a runtime of its
    /// own (more threads for its spawned tasks, or the one its database pool was made on).
    /// Its timers and sockets must be driven by threads of its own, so a multi-thread runtime
    /// it must be: on a current-thread runtime, only that runtime's own `block_on` drives them.
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
        Service { service: Mutex::new(service), runtime: Some(runtime) }
    }
}

impl<S> fmt::Debug for Service<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Service").field("runtime", &self.runtime).finish_non_exhaustive()
    }
}

impl<S, B> fcgi_server::Handler for Service<S>
where
    S: tower_service::Service<http::Request<Body>, Response = http::Response<B>>
        + Clone
        + Send
        + 'static,
    S::Error: Into<fcgi_server::Error>,
    B: HttpBody,
    B::Error: Into<fcgi_server::Error>,
{
    fn handle(
        &self,
        request: &mut fcgi_server::Request,
        response: &mut fcgi_server::Response,
    ) -> Result<(), fcgi_server::Error> {
        let body = Body::new(request.body_reader(), request.content_length());
        let http_request = match request_from_params(request.params(), body) {
            Ok(http_request) => http_request,
            Err(bad) => {
                response.fail(400);
                response.write_stderr(format!("{bad}\n").as_bytes())?;
                return Ok(());
            }
        };
        let method = http_request.method().clone();
        let mut service = self.service.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let abort = request.abort_signal();
        let run = unless_aborted(abort, async move {
            poll_fn(|cx| service.poll_ready(cx)).await.map_err(Into::into)?;
            let (head, body) = service.call(http_request).await.map_err(Into::into)?.into_parts();
            write_head(response, &method, head.status, &head.headers, body.size_hint().exact())?;
            write_body(response, body).await
        });
        match &self.runtime {
            Some(runtime) => runtime.block_on(run),
            None => shared_runtime().block_on(run),
        }
    }
}

/// Runs `work` until it ends or the request is aborted, whichever comes first; on an abort,
/// `work` (the service's future, the response body it holds) is dropped before this returns,
/// and the result is a `ConnectionAborted` error. `work` is polled first, so a request that
/// is answered at its first poll never registers for the abort.
async fn unless_aborted<F>(
    abort: fcgi_server::AbortSignal,
    work: F,
) -> Result<(), fcgi_server::Error>
where
    F: Future<Output = Result<(), fcgi_server::Error>>,
{
    let mut work = pin!(work);
    poll_fn(|cx| {
        if let Poll::Ready(result) = work.as_mut().poll(cx) {
            return Poll::Ready(result);
        }
        abort.poll_aborted(cx).map(|()| {
            Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "the web server aborted the request",
            )
            .into())
        })
    })
    .await
}
