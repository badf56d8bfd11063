//! A CGI/1.1 gateway (RFC 3875) for fcgi-server: what fcgiwrap does, on a thread pool instead
//! of a process per request, with streaming both ways, timeouts, and confinement.
//!
//! [`Gateway`] is an [`fcgi_server::Handler`]. Mount it as the responder of a server (this is
//! what `fcgi serve --app cgi` does), and each request runs the program the web server names in
//! `SCRIPT_FILENAME` (or `DOCUMENT_ROOT` + `SCRIPT_NAME`), on a pool thread:
//!
//! ```no_run
//! use std::time::Duration;
//! use fcgi_cgi::{CgiConfig, Gateway};
//! use fcgi_server::{ListenOptions, Listener, Role, Server};
//!
//! let gateway = Gateway::new(CgiConfig {
//!     root: Some("/usr/lib/cgi-bin".into()),
//!     timeout: Some(Duration::from_secs(30)),
//!     pass_env: vec!["PATH".into()],
//!     ..CgiConfig::default()
//! })?;
//! let listener = Listener::bind(&"unix:/run/cgi.sock".parse()?, &ListenOptions::default())?;
//! Server::builder().listener(listener).handler(Role::Responder, gateway).build().serve()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # How a request flows
//!
//! params → [`resolve`] (which file; may it run?) → [`env`](mod@env) (its environment) → [`child`]
//! (spawned, no shell) → three streams at once:
//!
//! - **stdin**: a helper thread copies the request body from `Request::body()` into the
//!   program's stdin as the web server sends it, 64 KiB at a time, then closes it. (It cannot be
//!   the thread that writes the response: the response's first flush waits for the whole body.)
//!   When the body cannot be read whole (the server could not spool it: disk full, or over
//!   `--max-body`), the program is killed, never handed an end of file: it must not take a
//!   truncated body for the whole one (`feed.rs`).
//! - **stdout**: the pool thread polls the program's stdout and stderr. Stdout goes through the
//!   incremental [`headers`] parser until the empty line; the header block then sets the
//!   response's status and headers, and everything after it is streamed into the `Response`
//!   (flushed whenever the program pauses, so slow output reaches the client as it comes).
//! - **stderr**: each line goes to the web server (FCGI_STDERR: nginx's error log) and to our
//!   log, with the script's name.
//!
//! Memory per request is bounded: a 64 KiB read buffer, the response's 64 KiB, the header
//! block (at most [`headers::MAX_HEADER_BYTES`]), one stderr line (4 KiB), and the body
//! feeder's 64 KiB. Nothing is read whole.
//!
//! # What the program's answer means (RFC 3875 section 6)
//!
//! - A header block without `Status`: 200. `Status: NNN reason`: that status; it is not passed
//!   on as a header. Other headers (`Content-Type` among them) are passed on as they are.
//! - `Location` with a URL (`https://...`, or `//host/...`): a client redirect, 302 unless a
//!   `Status` says otherwise, the body passed on.
//! - `Location: /path` without `Status`: a local redirect. The program's output is dropped and
//!   the gateway answers with what `/path` gives to a GET (see [`redirect`]): the path is mapped
//!   under `DOCUMENT_ROOT` (or the root, without one), the longest prefix that is not a directory being
//!   the program and the rest `PATH_INFO`, and that program is resolved and checked like the
//!   first. At most [`redirect::MAX_LOCAL_REDIRECTS`] hops; more is a loop: 500 and a log line.
//! - An NPH program (`nph-` name, RFC 3875 section 5) gets no special treatment: its
//!   `HTTP/1.1 NNN reason` first line is read as its `Status`, and its output is streamed like
//!   any other (the gateway never holds output back, which is what NPH was for).
//! - No valid header block before the program exits: 502, with its stderr in the log. Before
//!   the timeout: 504.
//!
//! # Safety rules
//!
//! - The resolved path (symlinks followed, `..` gone) must lie under the root when one is given,
//!   be a regular file and have an execute bit: else 403 (404 when nothing is there), with a
//!   log line that says which rule refused it. The resolved path is what runs.
//! - No shell: the program is executed directly (`posix_spawn`), its arguments never parsed.
//!   Arguments come from the query string only with `argv_from_query` (RFC 3875 section 4.4).
//! - The environment is the request's params (see [`env::Vars::from_params`]) less those that
//!   the loader, libc or an interpreter read before the program's own code runs (`LD_PRELOAD`,
//!   `BASH_ENV`, `PYTHONPATH`, ...: [`env::screen`]), plus the `pass_env` allow-list, which is
//!   not screened (the operator chose it); nothing else of ours. No descriptor of ours is
//!   inherited: the program has its 0, 1 and 2 only.
//! - The program leads its own process group. On the timeout, an abort (`FCGI_ABORT_REQUEST`),
//!   or a web server that went away, the group gets SIGTERM, then SIGKILL after the grace. The
//!   timeout covers the whole run, waits for the request body included (the gateway's watchdog
//!   thread signals the group while the pump is blocked: `watchdog.rs`). Every
//!   program is reaped on every path (the [`child::Child`] guard kills and waits when dropped):
//!   no zombie is ever left.

#![deny(unsafe_code)]

pub mod child;
mod config;
pub mod env;
mod feed;
mod gateway;
pub mod headers;
mod pump;
pub mod redirect;
pub mod resolve;
#[allow(unsafe_code)]
mod sys;
pub mod uri;
mod watchdog;

#[cfg(test)]
mod test_support;

pub use config::{CgiConfig, ConfigError};
pub use gateway::Gateway;
