//! `serve`: a whole FastCGI server in one call, for an application's first hour.

use std::io;
use std::time::Duration;

use crate::{
    Config, Error, Handler, ListenAddr, ListenOptions, Listener, Request, Response, Role, Server,
};

/// How long a TERM or INT leaves running requests to finish: [`Config::graceful_timeout`]'s
/// default, as `fcgi serve`'s `--graceful-timeout`.
pub const DRAIN_GRACE: Duration = Config::DEFAULT_GRACEFUL_TIMEOUT;

/// Serves `handler` for the Responder role on `addr` (`unix:/run/app.sock`, `127.0.0.1:9000`,
/// `tcp:HOST:PORT`) until SIGTERM or SIGINT, then lets running requests finish (up to
/// [`DRAIN_GRACE`]; a second signal stops at once) and returns; a Unix socket file is removed
/// on the way out. Warnings and errors go to standard error. For more (other roles, several
/// listeners, a configuration, a logger of your own), use [`Server::builder`], which handles
/// the signals the same way ([`ServerBuilder::handle_signals`](crate::ServerBuilder::handle_signals)).
///
/// The handler is a closure, whose argument types need no annotation; a type that implements
/// [`Handler`] goes to [`serve_handler`] instead.
///
/// ```no_run
/// use std::io::Write;
///
/// fn main() -> std::io::Result<()> {
///     fcgi_server::serve("unix:/tmp/hello.sock", |request, response| {
///         let name = request.query_value("name").unwrap_or_else(|| "world".into());
///         write!(response, "Hello, {name}!")?;
///         Ok(())
///     })
/// }
/// ```
pub fn serve<F>(addr: &str, handler: F) -> io::Result<()>
where
    F: Fn(&mut Request, &mut Response) -> Result<(), Error> + Send + Sync + 'static,
{
    serve_handler(addr, handler)
}

/// [`serve`] for any type that implements [`Handler`]: a struct of your own, a
/// [`streaming`](crate::streaming) closure, or a bridge such as `fcgi-http`'s for `http`
/// services.
///
/// ```no_run
/// use std::io::Write;
/// use fcgi_server::{Handler, Request, Response};
///
/// struct Hello;
///
/// impl Handler for Hello {
///     fn handle(&self, _: &mut Request, response: &mut Response) -> Result<(), fcgi_server::Error> {
///         response.write_all(b"Hello, world!")?;
///         Ok(())
///     }
/// }
///
/// fcgi_server::serve_handler("unix:/tmp/hello.sock", Hello)?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn serve_handler(addr: &str, handler: impl Handler) -> io::Result<()> {
    let addr: ListenAddr = addr.parse()?;
    let listener = Listener::bind(&addr, &ListenOptions::default())?;
    Server::builder().listener(listener).handler(Role::Responder, handler).build().serve().map(drop)
}
