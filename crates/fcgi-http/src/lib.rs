//! Serves any `http`/tower service over FastCGI with fcgi-rs: an axum `Router`, unchanged,
//! behind nginx (or Apache, lighttpd, Caddy, HAProxy).
//!
//! # An app binary with all of `fcgi serve`
//!
//! [`run`] makes the binary take every option of `fcgi serve` (less `--app`): `--listen`,
//! `--workers` and the process models, `--config` and `--check`, the limits, the status page,
//! the logs, `--user`, and the signals that reload and upgrade it. The function it is given
//! is called in each process that serves.
//!
//! ```no_run
//! fn app() -> axum::Router {
//!     axum::Router::new().route("/", axum::routing::get(|| async { "Hello, world!" }))
//! }
//!
//! fn main() -> std::process::ExitCode {
//!     fcgi_http::run(app)
//! }
//! ```
//!
//! # Serving an axum app on one address
//!
//! Write the app as for hyper; only `main` differs, with [`serve`] where `axum::serve` would
//! be. It needs no `#[tokio::main]`: fcgi-http starts the runtime it needs. Under
//! `#[tokio::main]` (to build a database pool in `main`, say), `serve` uses that runtime; it
//! refuses a current-thread one (`flavor = "current_thread"`), whose only thread would be
//! inside `serve` and never run the app's futures.
//!
//! ```no_run
//! use axum::routing::get;
//! use axum::Router;
//!
//! async fn hello() -> &'static str {
//!     "Hello, world!"
//! }
//!
//! fn main() -> std::io::Result<()> {
//!     let app = Router::new().route("/", get(hello));
//!     fcgi_http::serve("unix:/run/app.sock", app)
//! }
//! ```
//!
//! [`serve`] binds the address (`unix:PATH`, `tcp:HOST:PORT` or `HOST:PORT`), serves until
//! SIGTERM or SIGINT, lets running requests finish (up to
//! [`fcgi_server::DRAIN_GRACE`]) and removes its socket file, as [`fcgi_server::serve`] does.
//! Point nginx at it:
//!
//! ```text
//! location / {
//!     include fastcgi_params;
//!     fastcgi_pass unix:/run/app.sock;
//! }
//! ```
//!
//! [`serve_with`] takes [`ServeOptions`]: who may connect to the Unix socket (by default any
//! local user, so that nginx's worker, which runs as `www-data` or `nginx`, can; with
//! `socket_group`, that group only), how many requests may be in flight, and the status page
//! and ping that fcgi-server answers itself.
//!
//! ```no_run
//! use fcgi_http::ServeOptions;
//!
//! let app: axum::Router = axum::Router::new();
//! let options = ServeOptions { socket_group: Some("www-data".into()), ..ServeOptions::default() };
//! fcgi_http::serve_with("unix:/run/app/app.sock", options, app)?;
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! # Waiting holds no thread
//!
//! A request is polled first on the fcgi-server pool thread that took it: if it is answered
//! at once, that is all. If it waits (a timer, a database, another service), it moves to a
//! task on the runtime and its thread goes back to the pool, so a thousand requests may
//! wait at once on a few threads ([`Service::max_in_flight`] bounds them, 1,024 by default).
//! Blocking code goes in `tokio::task::spawn_blocking`, as on hyper.
//!
//! ```
//! use std::time::Duration;
//!
//! async fn slow_report() -> String {
//!     tokio::time::sleep(Duration::from_millis(1)).await; // holds no thread meanwhile
//!     let rows = tokio::task::spawn_blocking(|| 3 /* a synchronous driver's query */).await;
//!     format!("{} rows", rows.unwrap_or(0))
//! }
//! # let _ = axum::Router::<()>::new().route("/report", axum::routing::get(slow_report));
//! ```
//!
//! # What the app sees
//!
//! Each FastCGI request becomes an `http::Request<`[`Body`]`>` ([`request_from_params`]
//! says exactly how): the method, the URI the client sent (`REQUEST_URI`), the headers
//! (`HTTP_ACCEPT_LANGUAGE` as `accept-language`, values as bytes, plus `content-type` and
//! `content-length`), and in its extensions what HTTP has no place for: the client's address
//! ([`RemoteAddr`], and axum's `ConnectInfo<SocketAddr>` with the `axum` feature), whether
//! the client used TLS ([`Https`]), and every param ([`CgiParams`]).
//!
//! ```
//! use axum::extract::ConnectInfo;
//! use axum::Extension;
//! use std::net::SocketAddr;
//!
//! // With the `axum` feature, as behind hyper with `into_make_service_with_connect_info`.
//! async fn client(ConnectInfo(addr): ConnectInfo<SocketAddr>) -> String {
//!     format!("you are {}", addr.ip())
//! }
//!
//! // Without it, or for the other facts.
//! async fn scheme(Extension(https): Extension<fcgi_http::Https>) -> &'static str {
//!     if https.0 { "https" } else { "http" }
//! }
//! # let _ = axum::Router::<()>::new()
//! #     .route("/client", axum::routing::get(client))
//! #     .route("/scheme", axum::routing::get(scheme));
//! ```
//!
//! # Streaming, both ways
//!
//! The request body is read a frame ([`FRAME_SIZE`]) at a time as the app polls it, so an
//! upload read as a stream costs a frame of memory, not its size. fcgi-server has it spooled
//! before the app starts (memory, then a temporary file): nginx sends the whole body before
//! it reads any of the response anyway, and the app's thread is not held while a slow client
//! uploads.
//!
//! The response body is written as the app yields it, and flushed whenever the app has
//! nothing more ready: with `X-Accel-Buffering: no` (or `fastcgi_buffering off`), nginx
//! passes each piece on at once. Writes wait while the client reads slowly.
//!
//! ```
//! use std::convert::Infallible;
//! use std::time::Duration;
//!
//! use axum::body::Body;
//! use axum::response::IntoResponse;
//! use futures_util::stream;
//!
//! async fn ticks() -> impl IntoResponse {
//!     let lines = stream::unfold(0, |i| async move {
//!         if i == 5 {
//!             return None;
//!         }
//!         if i > 0 {
//!             tokio::time::sleep(Duration::from_millis(200)).await;
//!         }
//!         Some((Ok::<_, Infallible>(format!("tick {i}\n")), i + 1))
//!     });
//!     ([("X-Accel-Buffering", "no")], Body::from_stream(lines))
//! }
//! # let _ = axum::Router::<()>::new().route("/ticks", axum::routing::get(ticks));
//! ```
//!
//! # Failing after the response began
//!
//! A response body that fails (or panics) after its header went out cannot turn into an
//! error status any more; fcgi-server then cuts the response short, so that nginx sees an
//! upstream error and the client a truncated response, never a clean one (see
//! [`fcgi_server::Handler`]). Before anything went out, the answer is a plain 500.
//!
//! # More than one call
//!
//! [`Service`] is the same bridge as a [`fcgi_server::Handler`], for a server built with
//! [`fcgi_server::Server::builder`] (several listeners, a `Config` of your own, a logger, the
//! Authorizer role) or a prefork worker. Its docs say how requests run and how many at once.
//!
//! # Features
//!
//! - `axum`: also puts axum's `ConnectInfo<SocketAddr>` in each request's extensions.
//! - `tracing`: with no logger given ([`serve`], [`serve_with`]), the server's own log records
//!   (access lines, handler failures, its start and stop) are `tracing` events, for the app's
//!   subscriber (JSON, OpenTelemetry); without a subscriber they go to standard error.

#![forbid(unsafe_code)]

mod body;
mod in_flight;
mod request;
mod response;
mod run;
mod serve;
mod service;

pub use body::{Body, BodyError, FRAME_SIZE};
pub use request::{request_from_params, BadRequest, CgiParams, Https, RemoteAddr};
pub use run::{app, run};
pub use serve::{serve, serve_with, ServeOptions};
pub use service::{HttpService, Service, DEFAULT_MAX_IN_FLIGHT};
