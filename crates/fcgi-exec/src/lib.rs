//! Any FastCGI program, managed: php-cgi, Perl's FCGI.pm, Python's flup, C libfcgi programs,
//! run in processes of their own behind an [`fcgi_server`], which owns the web server's
//! connections.
//!
//! [`Exec`] is an [`fcgi_server::Handler`]. It starts the program's processes as its
//! [`Scale`] says (static, dynamic or on demand), each listening on a socket of its own that
//! it inherits on fd 0 (FCGI_LISTENSOCK_FILENO, as spawn-fcgi and PHP-FPM hand it over), and
//! gives each request, once its body has arrived whole, to an idle one. So a slow client, a
//! kept web-server connection or an idle one never holds a program process: the server parks
//! those in epoll, and its bounded queue holds requests while every process is busy.
//!
//! ```no_run
//! use fcgi_exec::{Exec, ExecConfig, Scale};
//! use fcgi_server::{Role, Server};
//!
//! let log = slog::Logger::root(slog::Discard, slog::o!());
//! let mut config = ExecConfig::new("/usr/bin/php-cgi", log);
//! config.scale = Scale::OnDemand { max: 8, idle_timeout: ExecConfig::DEFAULT_IDLE_TIMEOUT };
//! config.max_requests = 500;
//! let exec = Exec::start(config)?;
//! Server::builder().handler(Role::Responder, exec).build().serve()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Design
//!
//! Data flows: web server → fcgi-server (params, body spooled) → [`Exec`] (waits for the
//! whole body) → the pool lends an idle process → the relay writes the request's records on
//! that process's connection while it reads the answer → the CGI header block parsed, the
//! body streamed into the response (backpressure: the relay reads the program only as fast
//! as the web server takes the answer) → the process goes back to the pool.
//!
//! - `pool.rs`: the processes and the supervisor thread (starts, reaps, logs their output,
//!   stops them); `process.rs`: one process and its states; `scale.rs`: how many to run, a
//!   pure decision; `spawn.rs`: starting one; `sys.rs`: every system call std lacks, on rustix
//!   (the crate's one `unsafe` block, between fork and exec); `relay.rs`: one request on one
//!   connection; `exec.rs`: the handler, and what each failure is answered with.
//! - Failures are the program's, never passed off as success: one that dies before any
//!   output is answered `502`; one that dies mid-answer, or writes what is not FastCGI, is
//!   cut short (the server ends the response as failed) and replaced; one that stops by
//!   itself without taking the request (php-cgi after `PHP_FCGI_MAX_REQUESTS`) sends it on
//!   to another process; one that cannot start is restarted with growing delays, capped at
//!   30 s, forever, while requests get `503` at once.

// System calls live in `sys.rs`, the one module allowed `unsafe`.
#![deny(unsafe_code)]

mod config;
mod exec;
mod lines;
mod pool;
mod process;
mod relay;
mod scale;
mod spawn;
#[allow(unsafe_code)]
mod sys;

pub use config::{resolve_program, split_words, ConfigError, ExecConfig, Scale};
pub use exec::{check, Exec};
pub use pool::{PoolStatus, ProcessInfo};
