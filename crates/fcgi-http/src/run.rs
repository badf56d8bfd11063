//! [`run`]: a tower service with all of `fcgi serve`'s options, through fcgi-serve.

use std::process::ExitCode;

use fcgi_serve::App;

use crate::service::{HttpService, Service};

/// Serves the service `app` makes with all of `fcgi serve`'s options, read from this process's
/// command line: `--listen`, `--workers` and the other process options, `--config`, `--check`,
/// the limits, the status page, access and slow logs, `--user`, `--pid-file`, and `generate
/// man` (see the `fcgi-serve` crate). It behaves as `fcgi serve` does with them (signals,
/// reloads, prefork, systemd) and returns `fcgi serve`'s exit status for `main` to end with.
///
/// `app` is called in each process that serves (the single process, or each worker after its
/// fork): what it builds (a database pool, a cache) belongs to that process, and the runtime
/// its futures run on starts after the fork. So `run` is called from a plain `fn main`, not
/// under `#[tokio::main]`: inside a runtime it refuses to start (exit status 2), saying so.
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
pub fn run<F, S>(app: F) -> ExitCode
where
    F: Fn() -> S + Send + Sync + 'static,
    S: HttpService,
{
    if tokio::runtime::Handle::try_current().is_ok() {
        // A master forks its workers, and a runtime's threads do not cross a fork; a
        // current-thread runtime would never run a future while this holds its only thread.
        eprintln!(
            "fcgi_http::run is called inside a tokio runtime (#[tokio::main]?): call it from a \
             plain `fn main`, and build what needs a runtime (a database pool) in the function \
             it is given, which runs in each process that serves, on fcgi-http's runtime"
        );
        return ExitCode::from(2);
    }
    fcgi_serve::run_app(self::app(app))
}

/// The fcgi-serve [`App`] that [`run`] serves: the service `make` makes, for the Responder
/// role, made in each process that serves. For a binary that names itself or gives its
/// version ([`fcgi_serve::Program`]), or puts the serve options in a subcommand.
///
/// ```no_run
/// let app = fcgi_http::app(|| {
///     axum::Router::new().route("/", axum::routing::get(|| async { "Hello, world!" }))
/// });
/// fcgi_serve::program!().subcommand("serve").run(app);
/// ```
pub fn app<F, S>(make: F) -> impl App
where
    F: Fn() -> S + Send + Sync + 'static,
    S: HttpService,
{
    fcgi_serve::HandlerApp::new(move || Service::new(make()))
}
