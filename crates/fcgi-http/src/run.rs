//! [`run`]: a tower service with all of `fcgi serve`'s options, through fcgi-serve.

use std::fmt;
use std::process::ExitCode;

use fcgi_serve::{App, NoOptions};
use fcgi_server::{Role, ServerBuilder};
use http_body::Body as HttpBody;
use slog::Logger;

use crate::body::Body;
use crate::service::Service;

/// Serves the service `app` makes with all of `fcgi serve`'s options, read from this process's
/// command line: `--listen`, `--workers` and the other process options, `--config`, `--check`,
/// the limits, the status page, access and slow logs, `--user`, `--pid-file`, and `generate
/// man` (see the `fcgi-serve` crate). It behaves as `fcgi serve` does with them (signals,
/// reloads, prefork, systemd) and returns `fcgi serve`'s exit status for `main` to end with.
///
/// `app` is called in each process that serves (the single process, or each worker after its
/// fork): what it builds (a database pool, a cache) belongs to that process, and the runtime
/// its futures run on starts after the fork.
///
/// ```no_run
/// use axum::routing::get;
/// use axum::Router;
///
/// fn app() -> Router {
///     Router::new().route("/", get(|| async { "Hello, world!" }))
/// }
///
/// fn main() -> std::process::ExitCode {
///     fcgi_http::run(app)
/// }
/// ```
///
/// Then, for example: `myapp --listen unix:/run/myapp.sock --workers 4 --status-path /status`,
/// `myapp --config /etc/myapp.conf --check`, `myapp --help`.
pub fn run<F, S, B>(app: F) -> ExitCode
where
    F: Fn() -> S + Send + Sync + 'static,
    S: tower_service::Service<http::Request<Body>, Response = http::Response<B>>
        + Clone
        + Send
        + 'static,
    S::Error: Into<fcgi_server::Error>,
    B: HttpBody,
    B::Error: Into<fcgi_server::Error>,
{
    fcgi_serve::run_app(HttpApp::new(app))
}

/// The fcgi-serve [`App`] that [`run`] serves: a function that makes a tower service, for the
/// Responder role. For a binary that names itself ([`fcgi_serve::Program`]) or puts the serve
/// options in a subcommand.
///
/// ```no_run
/// let app = fcgi_http::HttpApp::new(|| {
///     axum::Router::new().route("/", axum::routing::get(|| async { "Hello, world!" }))
/// });
/// fcgi_serve::Program::new("myapp").subcommand("serve").run(app);
/// ```
pub struct HttpApp<F> {
    make: F,
}

impl<F> HttpApp<F> {
    /// The app whose service `make` makes.
    pub fn new(make: F) -> HttpApp<F> {
        HttpApp { make }
    }
}

impl<F> fmt::Debug for HttpApp<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpApp").finish_non_exhaustive()
    }
}

impl<F, S, B> App for HttpApp<F>
where
    F: Fn() -> S + Send + Sync + 'static,
    S: tower_service::Service<http::Request<Body>, Response = http::Response<B>>
        + Clone
        + Send
        + 'static,
    S::Error: Into<fcgi_server::Error>,
    B: HttpBody,
    B::Error: Into<fcgi_server::Error>,
{
    type Options = NoOptions;

    fn install(
        &self,
        _: &NoOptions,
        builder: ServerBuilder,
        _: &Logger,
    ) -> Result<ServerBuilder, String> {
        Ok(builder.handler(Role::Responder, Service::new((self.make)())))
    }
}
