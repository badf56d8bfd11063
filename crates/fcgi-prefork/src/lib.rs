//! A prefork process manager for [`fcgi_server`]: one master process that owns the listening
//! sockets, forks workers that each build their own app and serve the shared sockets, keeps
//! them alive, and reloads or upgrades them without failing a request. It is gunicorn's
//! master/worker model, with PHP-FPM's static and dynamic process managers.
//!
//! # Using it
//!
//! Make the listeners first ([`inherited_listeners`] after an upgrade), then give a
//! [`Master`] a [`Workload`]: its [`run_worker`](Workload::run_worker) runs in each forked
//! worker, builds the app and a [`fcgi_server::Server`], and hands it to [`Worker::serve`].
//! The master must be created before the process starts any thread (a logger's included): a
//! forked child has only the thread that forked, so a lock another thread held would stay
//! locked in it forever.
//!
//! ```no_run
//! use std::io::Write;
//! use fcgi_prefork::{Master, Settings, Worker, Workload};
//! use fcgi_server::{ListenOptions, Listener, Server};
//! use slog::{o, Drain, Logger};
//!
//! struct App {
//!     log: Logger,
//! }
//!
//! impl Workload for App {
//!     // In each worker, after the fork: build the app and serve.
//!     fn run_worker(&mut self, mut worker: Worker) -> i32 {
//!         let server = Server::builder()
//!             .listeners(worker.take_listeners())
//!             .responder(|_request, response| {
//!                 write!(response, "Hello from worker {}", std::process::id())?;
//!                 Ok(())
//!             })
//!             .build();
//!         match worker.serve(server, &self.log) {
//!             Ok(_) => 0,
//!             Err(_) => 1,
//!         }
//!     }
//!
//!     // On HUP: the settings the new workers get (re-read a config file here).
//!     fn reload(&mut self, current: &Settings) -> Result<Settings, String> {
//!         Ok(current.clone())
//!     }
//! }
//!
//! // A synchronous logger: the master must start no thread before it forks.
//! let log = Logger::root(std::sync::Mutex::new(slog_json::Json::default(std::io::stderr())).fuse(), o!());
//! let listeners = match fcgi_prefork::inherited_listeners()? {
//!     Some(inherited) => inherited, // after a USR2 upgrade
//!     None => vec![Listener::bind(&"unix:/run/app.sock".parse()?, &ListenOptions::default())?],
//! };
//! let master = Master::new(Settings { workers: 4, ..Settings::default() }, listeners, log.clone())?;
//! master.run(&mut App { log })?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # The master and its workers
//!
//! A worker goes through these phases, as the master sees it:
//!
//! - **Starting**: forked, no report yet. Counts as a spare for the dynamic model.
//! - **Serving**: has reported. Busy when it has requests running or served some since its
//!   last report, idle otherwise.
//! - **Retiring**: was sent TERM (stop, reload, fewer workers wanted, hung) or said it is
//!   retiring on its own (request limit, a request past the request timeout). It no longer
//!   counts: its replacement starts at once. It is sent KILL if it has not exited by the
//!   graceful timeout (plus the kill grace), or by the kill grace when it was hung.
//!
//! A worker that exits without having been asked is replaced at once the first time, then
//! with a doubling delay (100 ms up to 30 s) while the workers of its place in the pool keep
//! dying within 10 s of their start; the log says how it ended (exit status, or signal). The
//! delay is per place, not the pool's: a request that kills whichever worker serves it delays
//! only the places it hit, and when no worker at all is left, one whose last worker died while
//! serving is replaced at once, so such a request never leaves the pool empty for longer than
//! one respawn. Workers that die before they serve (a build or a configuration that cannot
//! start) get the whole delay.
//!
//! # Kept connections
//!
//! A connection a web server keeps between requests (nginx's `keepalive` with
//! `fastcgi_keep_conn on`) is never closed by a reload, a recycle or a scale-down: closing it
//! while idle would race the web server writing its next request into it, and nginx does not
//! retry a POST that meets such a close (it answers 502). A retiring worker answers what
//! arrives on its connections, and passes each one to the master as soon as it is idle
//! (`SCM_RIGHTS`, [`fcgi_server::Handoff`]); the master gives it to a worker of the current
//! generation that serves, or holds it (up to the graceful timeout) until one does, or, after a
//! USR2 handover, to the new master. Only a stop of the whole server closes them.
//!
//! # The heartbeat
//!
//! Each worker writes a 24-byte report on a pipe of its own every quarter of the worker
//! timeout (at most every 250 ms): requests served, requests running, the age of the oldest,
//! and whether it is retiring. Compared with gunicorn's temporary file that the worker
//! `fchmod`s, the pipe tells the master *what* the worker does as well as that it lives, so
//! the dynamic model knows who is busy. Its end of file tells the master of a death at once,
//! and a failed write tells a worker that its master died, so it stops instead of lingering as
//! an orphan.
//!
//! # Hung workers and long requests
//!
//! The worker timeout and the request timeout do not overlap. A worker is hung when its
//! heartbeat stops for the worker timeout (the whole process is stuck: stopped, deadlocked in
//! the allocator, swapping): TERM, then KILL after the kill grace. A request that runs long is
//! not a hung worker, whatever its length: the heartbeat goes on meanwhile, and only the
//! request timeout acts on it: at the timeout the server answers the request (`504`, or the
//! response cut short if it had begun), and the worker retires gracefully (its other requests
//! get the graceful timeout). With no request timeout, long requests are bounded by the app alone (the CGI
//! gateway's timeout, say). fcgi-server's status gives no sign of its monitor thread's progress,
//! so a worker whose monitor alone is stuck, its heartbeat thread alive, is not noticed.
//!
//! # Programs of dead workers
//!
//! The master is the subreaper (`PR_SET_CHILD_SUBREAPER`) of everything its workers start:
//! when a worker dies or is killed, its CGI programs come to the master instead of init, and
//! after each worker exit the master kills the process group of every child of its own that is
//! not a worker (nor a new master), and reaps them. A daemon that a program leaves running on
//! purpose is such an orphan too, and is killed at the next worker exit.
//!
//! # Signals
//!
//! The master blocks its signals and reads them from a `signalfd` in its poll loop: no signal
//! handler, no thread, nothing that breaks across `fork`; each child restores the signal mask
//! before it runs anything. [`Worker::serve`] then handles the worker's own signals with
//! signal-hook on a thread (threads are fine in a worker: it never forks).
//!
//! | Signal | Master | Worker |
//! |---|---|---|
//! | TERM, INT | graceful stop: workers drain (up to the graceful timeout), then exit 0; a second one acts as QUIT | drain and exit |
//! | QUIT | fast stop: workers stop at once | stop at once |
//! | HUP | reload: [`Workload::reload`], new workers, then the old ones retire gracefully | ignored |
//! | USR1 | [`Workload::reopen_logs`], and forwarded to the workers | the [`Worker::on_reopen_logs`] hook |
//! | USR2 | binary upgrade (below) | ignored |
//! | TTIN, TTOU | one worker more, one fewer (dynamic: the cap `max_workers`) | ignored |
//!
//! # systemd
//!
//! Under a `Type=notify` unit (`$NOTIFY_SOCKET` set) the master tells systemd `READY=1` once
//! its first workers serve, `RELOADING=1` then `READY=1` around a HUP reload, and `STOPPING=1`
//! on TERM, INT or QUIT, each with a one-line `STATUS=` (see [`notify`]).
//!
//! # The upgrade (USR2)
//!
//! As nginx and gunicorn do it: the old master moves its pid file to `PIDFILE.oldbin`, then
//! forks and executes its binary again (from the path it was started with, so a new build
//! installed there is what runs) with the same arguments. The listening descriptors cross the
//! `exec` (their close-on-exec flag is cleared in the child only), their numbers in
//! [`ENV_FDS`](upgrade::ENV_FDS); the new master adopts them with [`inherited_listeners`], so
//! a Unix socket file is never unlinked nor re-created and the path answers throughout. The
//! new master writes the pid file, starts its workers, and once they serve writes a byte on a
//! pipe ([`ENV_READY`](upgrade::ENV_READY)). The old master then keeps the socket files (now the
//! new master's to remove), retires its workers gracefully and exits 0. If the new master dies
//! or closes the pipe first, the old one moves its pid file back, logs why, and goes on
//! serving.

// Every system call that needs `unsafe` lives in `sys.rs`.
#![deny(unsafe_code)]

pub mod backoff;
mod error;
mod heartbeat;
mod master;
pub mod notify;
pub mod pidfile;
pub mod policy;
mod scoreboard;
mod settings;
mod signals;
#[allow(unsafe_code)]
mod sys;
pub mod upgrade;
mod worker;
mod workload;

pub use error::Error;
pub use master::Master;
pub use settings::{ProcessModel, Settings, SettingsError};
pub use signals::{name as signal_name, send as send_signal};
pub use upgrade::inherited_listeners;
pub use worker::Worker;
pub use workload::Workload;
