//! A FastCGI application server: what sits between nginx (or Apache, lighttpd, Caddy, HAProxy)
//! and application code.
//!
//! # Serving
//!
//! Make listeners, give a handler per role, and serve:
//!
//! ```no_run
//! use std::io::Write;
//! use fcgi_server::{ListenOptions, Listener, Server};
//!
//! let server = Server::builder()
//!     .listener(Listener::bind(&"unix:/run/app.sock".parse()?, &ListenOptions::default())?)
//!     .responder(|request, response| {
//!         response.header("Content-Type", "text/plain")?;
//!         write!(response, "You asked for {}", request.request_uri().unwrap_or("/"))?;
//!         Ok(())
//!     })
//!     .build();
//! server.serve()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # How a request flows
//!
//! socket → decoder → connection → pool → handler → encoder → socket.
//!
//! - Sockets are non-blocking, in one epoll set that the pool's idle threads wait in (see
//!   `reactor.rs`, and DESIGN.md beside this crate's Cargo.toml). An idle keep-alive
//!   connection is only an entry there, and holds no thread.
//! - When a socket is readable, one idle thread takes it, counts itself busy, reads it and
//!   decodes records ([`fcgi_codec::Decoder`]), a bounded number of reads at a time so that
//!   one busy peer cannot keep a thread from the others. Management records are answered at
//!   once; params are collected per request; body records go to the request's **spool**
//!   (memory, then a temporary file). Each request's life on its connection (reading its
//!   params, spooling its body, running, answered) is one state machine, drawn in `slot.rs`.
//! - The thread that completed a request runs it: no hand-off to another thread. When no
//!   thread is idle, the **monitor** (the thread that calls [`Server::serve`]) reads instead,
//!   and hands what it reads to the pool, as below; it also keeps every timeout.
//! - Once a request's params are complete, and its body too (unless its handler
//!   [streams its body](Handler::streams_body)), its handler runs on the reading thread, or
//!   goes to the **pool** ([`fcgi_pool::Pool::execute`]) when that thread is the monitor or
//!   has one request to run already, or waits in the pool's bounded queue for at most the
//!   queue timeout. If that is full too, the request is answered `503` with `FCGI_OVERLOADED` right
//!   away: nothing queues without bound. A body that trickles in holds no thread.
//! - The **handler** reads the body from the spool, and writes its response, which is encoded
//!   into records and written under the connection's write lock, so multiplexed requests
//!   interleave safely. Nothing goes out before the request's input is all in (nginx sends
//!   the whole body before it reads the response), so a body that fails (too large, not
//!   storable, too slow) is answered with an error status, never as if it had been whole.
//!
//! # What a peer cannot take
//!
//! Every resource a peer can make the server hold is bounded, and a peer past a bound gets an
//! answer and leaves the others alone: requests per connection, the memory all unfinished
//! requests hold together (a [`Config::memory_budget`]; past it bodies go to disk and new
//! requests get `503`), each request's input time (a minimum rate, on its own bytes),
//! the wait for a thread, connections, params, bodies. A response that fails after part of it
//! went out is cut short so that the web server cannot pass it on as complete (see
//! [`Handler`]).
//!
//! Every limit and timeout is in [`Config`], with its reason.

#![deny(unsafe_code)]

mod config;
mod conn;
pub mod escape;
mod io;
pub mod json;
mod log;
mod serve;
mod status;
#[allow(unsafe_code)]
mod sys;
mod work;

pub use config::{web_server_addrs_from_env, Config};
/// Where the server listens: the codec's [`Address`](fcgi_codec::Address), the one grammar of
/// FastCGI addresses that `fcgi_client` connects by too.
pub use fcgi_codec::Address as ListenAddr;
/// Why a listening address could not be read: the codec's
/// [`ParseAddressError`](fcgi_codec::ParseAddressError).
pub use fcgi_codec::ParseAddressError as ParseAddrError;
pub use fcgi_codec::{Params, ParamsLimits, Role};
pub use io::handoff::Handoff;
pub use io::listener::{take_inherited, ListenError, ListenOptions, Listener};
pub use log::ACCESS_TAG;
pub use serve::monitor::ServeReport;
pub use serve::one_call::{serve, serve_handler, DRAIN_GRACE};
pub use serve::server::{Server, ServerBuilder};
pub use serve::shutdown::ShutdownHandle;
pub use status::metrics::{
    duration_bucket, Metrics, DURATION_BUCKETS, DURATION_SLOTS, METRICS_WORDS,
};
pub use status::{
    AppProcess, AppProcessSource, AppProcesses, PeerSource, RequestFacts, SlowRequest, SlowRunning,
    Status, StatusHandle, ThreadReport, FACT_MAX_BYTES,
};
pub use sys::{group_id, user_id};
pub use work::access::{AccessLog, AccessRecord, Outcome};
pub use work::error::Error;
pub use work::exchange::Exchange;
pub use work::handler::{streaming, Handler, Streaming};
pub use work::request::{AbortSignal, Body, Request};
pub use work::response::Response;
