//! [`serve`] and [`serve_with`]: a whole server for a tower service in one call.

use std::io;

use fcgi_server::{Config, ListenAddr, ListenOptions, Listener, Role, Server};
use tokio::runtime::Handle;

use crate::service::{unusable_runtime, HttpService, Service, DEFAULT_MAX_IN_FLIGHT};

/// What [`serve_with`] may be told beyond the address: who may connect to its Unix socket,
/// how many requests may be in flight, and the status page and ping. For anything else (other
/// roles, several listeners, the whole [`Config`], a logger), build the server with
/// [`fcgi_server::Server::builder`] and a [`Service`].
///
/// # Who can connect to the socket
///
/// Connecting to a Unix socket needs write permission on its file, and nginx connects as its
/// worker's user (`www-data` on Debian and Ubuntu, `nginx` on Fedora and RHEL), usually not
/// the app's. So by default the socket is made `0666`: any local user may connect, exactly
/// as any local user may connect to a loopback TCP port, and nginx's first request works
/// wherever it runs as (given it can enter the socket's directory). To let only nginx in, name
/// its group in [`socket_group`](ServeOptions::socket_group): the socket is then `0660`,
/// owned by that group (the app's user must be a member of it, or root).
///
/// ```no_run
/// use axum::routing::get;
/// use fcgi_http::ServeOptions;
///
/// let app = axum::Router::new().route("/", get(|| async { "Hello, world!" }));
/// let options = ServeOptions {
///     socket_group: Some("www-data".into()),
///     max_in_flight: 10_000,
///     status_path: Some("/fcgi-status".into()),
///     ping_path: Some("/fcgi-ping".into()),
///     ..ServeOptions::default()
/// };
/// fcgi_http::serve_with("unix:/run/app/app.sock", options, app)?;
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServeOptions {
    /// Permissions of the Unix socket file; `None`: `0660` when a group is given, else
    /// `0666` (see above). Not used for TCP.
    pub socket_mode: Option<u32>,
    /// The socket file's user, by name or number; `None` keeps the app's. Needs root.
    pub socket_user: Option<String>,
    /// The socket file's group, by name or number (nginx's worker's: `www-data`, `nginx`);
    /// `None` keeps the app's.
    pub socket_group: Option<String>,
    /// Requests in flight at once ([`Service::max_in_flight`]); [`DEFAULT_MAX_IN_FLIGHT`] by
    /// default.
    pub max_in_flight: usize,
    /// SCRIPT_NAME of the status page that fcgi-server answers itself, whatever the app
    /// (PHP-FPM's `pm.status_path`; `Config::status_path`); `None`: none.
    pub status_path: Option<String>,
    /// SCRIPT_NAME of the ping that fcgi-server answers `pong` (PHP-FPM's `ping.path`;
    /// `Config::ping_path`); `None`: none.
    pub ping_path: Option<String>,
}

impl ServeOptions {
    /// The mode of a socket that has a group given: the owner and the group may connect.
    pub const GROUP_SOCKET_MODE: u32 = 0o660;
    /// The mode of a socket without a group given: everyone may connect, as to a loopback
    /// port, so that nginx's worker can whoever it runs as.
    pub const OPEN_SOCKET_MODE: u32 = 0o666;
}

impl Default for ServeOptions {
    fn default() -> ServeOptions {
        ServeOptions {
            socket_mode: None,
            socket_user: None,
            socket_group: None,
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            status_path: None,
            ping_path: None,
        }
    }
}

/// Serves `service` for the Responder role on `addr` (`unix:/run/app.sock`,
/// `127.0.0.1:9000`, `tcp:HOST:PORT`) until SIGTERM or SIGINT, then lets running requests
/// finish (up to [`fcgi_server::DRAIN_GRACE`]; a second signal stops at once) and returns; a
/// Unix socket file is removed on the way out. Warnings and errors go to standard error. [`serve_with`] is the same with
/// [`ServeOptions`]; these are the defaults (a Unix socket any local user, nginx's worker
/// included, may connect to).
///
/// `service` is any [`HttpService`]: a tower service from `http::Request<`[`Body`](crate::Body)`>` to
/// `http::Response<B>`, `B` any `http_body::Body`, whose futures and bodies are `Send` (as
/// `axum::serve` asks):
/// an axum `Router` (with its state given), a `tower::ServiceBuilder` stack, a `service_fn`.
///
/// Called inside a multi-thread tokio runtime (`#[tokio::main]`), the service's futures run
/// on that runtime, so that what `main` made on it (a database pool) works in the handlers;
/// otherwise on a runtime of fcgi-http's, started at the first request. Called inside a
/// current-thread runtime, it returns an error at once: that runtime's thread would be here,
/// serving, and never run a request that waits.
///
/// ```no_run
/// use axum::routing::get;
///
/// let app = axum::Router::new().route("/", get(|| async { "Hello, world!" }));
/// fcgi_http::serve("tcp:127.0.0.1:9000", app)?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn serve<S: HttpService>(addr: &str, service: S) -> io::Result<()> {
    serve_with(addr, ServeOptions::default(), service)
}

/// [`serve`] with `options`: the socket's mode and owner, the requests in flight, the status
/// page and ping (see [`ServeOptions`]).
///
/// ```no_run
/// use fcgi_http::ServeOptions;
///
/// let app: axum::Router = axum::Router::new();
/// let options = ServeOptions { socket_group: Some("www-data".into()), ..ServeOptions::default() };
/// fcgi_http::serve_with("unix:/run/app/app.sock", options, app)?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn serve_with<S: HttpService>(addr: &str, options: ServeOptions, service: S) -> io::Result<()> {
    let runtime = Handle::try_current().ok();
    if let Some(refused) = runtime.as_ref().and_then(unusable_runtime) {
        return Err(refused);
    }
    let addr: ListenAddr = addr.parse()?;
    let listener = Listener::bind(&addr, &listen_options(&addr, &options)?)?;
    let service = match runtime {
        Some(runtime) => Service::with_runtime(service, runtime),
        None => Service::new(service),
    };
    let config = Config {
        status_path: options.status_path,
        ping_path: options.ping_path,
        ..Config::default()
    };
    // The server handles TERM and INT itself: the first drains, a second stops at once.
    Server::builder()
        .listener(listener)
        .config(config)
        .handler(Role::Responder, service.max_in_flight(options.max_in_flight))
        .build()
        .serve()
        .map(drop)
}

/// The listening options `options` ask for at `addr`: the socket's mode and owner, for a
/// Unix socket.
fn listen_options(addr: &ListenAddr, options: &ServeOptions) -> io::Result<ListenOptions> {
    if !matches!(addr, ListenAddr::Unix(_)) {
        return Ok(ListenOptions::default());
    }
    let user = options.socket_user.as_deref().map(fcgi_server::user_id).transpose()?;
    let group = options.socket_group.as_deref().map(fcgi_server::group_id).transpose()?;
    let mode = options.socket_mode.unwrap_or(if group.is_some() {
        ServeOptions::GROUP_SOCKET_MODE
    } else {
        ServeOptions::OPEN_SOCKET_MODE
    });
    Ok(ListenOptions {
        socket_mode: Some(mode),
        socket_owner: (user, group),
        ..ListenOptions::default()
    })
}
