//! All of `fcgi serve` for an app of your own: one call gives your binary every option of
//! `fcgi serve` (less `--app`), the `--config` file, `--check`, the prefork master and its
//! workers, reloads and upgrades by signal, the status page, access and slow logs, `--user`,
//! the pid file, systemd's notifications, process titles and a man page.
//!
//! # A handler app
//!
//! ```no_run
//! use std::io::Write;
//! use fcgi_server::{Handler, Request, Response};
//!
//! struct Hello;
//!
//! impl Handler for Hello {
//!     fn handle(&self, _: &mut Request, response: &mut Response) -> Result<(), fcgi_server::Error> {
//!         response.write_all(b"Hello, world!")?;
//!         Ok(())
//!     }
//! }
//!
//! fn main() -> std::process::ExitCode {
//!     // Called in each process that serves: after the fork, in every worker.
//!     fcgi_serve::run(|| Hello)
//! }
//! ```
//!
//! The binary then takes `fcgi serve`'s options:
//!
//! ```text
//! myapp --listen unix:/run/myapp.sock --workers 4 --status-path /status
//! myapp --config /etc/myapp.conf --check
//! myapp --help
//! myapp generate man /usr/share/man/man1
//! ```
//!
//! and behaves as `fcgi serve` does with them: SIGTERM drains, a second one (or SIGQUIT)
//! stops at once, SIGHUP re-reads the options and `--config` and replaces the workers, USR2
//! upgrades the binary with no socket closed, USR1 reopens the logs, TTIN and TTOU change the
//! worker count. Its exit status is `fcgi serve`'s: 0 after a stop by signal, 1 when serving
//! failed, 2 for options that cannot work (every error said, with its line in the file).
//!
//! For an `http`/tower service (an axum `Router`), `fcgi_http::run` is the same call.
//!
//! # Apps with options of their own
//!
//! An [`App`] adds its own options to the command line and the config file, checks them, and
//! installs its handlers on each process's server: `fcgi serve` itself is such an app (its
//! `--app` and the CGI gateway's options), run with [`Program::run`].
//!
//! # How a run goes
//!
//! command line and `--config` → [`config_file`](crate) → checks → either one process
//! (`single.rs`) or a master that forks workers (`master.rs`); both make their sockets, logs
//! and privileges with the same steps (`setup.rs`), and each process that serves builds the
//! app's handlers itself, after any fork.

// System calls through libc live in `sys.rs`; the process title's memory in `title.rs`.
#![deny(unsafe_code)]

mod app;
mod checks;
mod config_file;
mod failure;
mod generate;
mod limits;
mod logging;
mod master;
mod options;
mod pools;
mod privileges;
mod process_args;
mod processes;
mod program;
mod setup;
mod single;
#[allow(unsafe_code)]
mod sys;
#[cfg(test)]
mod testing;
#[allow(unsafe_code)]
mod title;
mod validate;

pub use app::{App, HandlerApp, NoOptions, Serving};
pub use checks::{Problem, Severity};
pub use generate::GenerateArgs;
pub use options::bytes as parse_bytes;
pub use processes::{ProcessModel, Processes};
pub use program::Program;

pub(crate) use failure::Failure;

use std::process::ExitCode;

/// Serves the handler `app` makes, with all of `fcgi serve`'s options read from this process's
/// command line (see the crate docs): the entry point of a binary whose app is a
/// [`fcgi_server::Handler`]. `app` is called in each process that serves (the single process,
/// or each worker after its fork), so that what it opens (files, connections, threads) belongs
/// to that process. Returns the exit status to end `main` with.
///
/// ```no_run
/// fn main() -> std::process::ExitCode {
///     fcgi_serve::run(|| {
///         |_: &mut fcgi_server::Request, response: &mut fcgi_server::Response| {
///             response.write_all(b"Hello, world!")?;
///             Ok::<(), fcgi_server::Error>(())
///         }
///     })
/// }
/// # use std::io::Write;
/// ```
pub fn run<F, H>(app: F) -> ExitCode
where
    F: Fn() -> H + Send + Sync + 'static,
    H: fcgi_server::Handler,
{
    Program::from_env().run(HandlerApp::new(app))
}

/// Serves `app` (an [`App`], with options of its own) as [`run`] serves a handler.
///
/// ```no_run
/// use fcgi_serve::{App, NoOptions};
///
/// struct Hello;
///
/// impl App for Hello {
///     type Options = NoOptions;
///
///     fn install(
///         &self,
///         _: &NoOptions,
///         builder: fcgi_server::ServerBuilder,
///         _: &slog::Logger,
///     ) -> Result<fcgi_server::ServerBuilder, String> {
///         Ok(builder.responder(|_, response| {
///             response.write_all(b"Hello, world!")?;
///             Ok(())
///         }))
///     }
/// }
///
/// fn main() -> std::process::ExitCode {
///     fcgi_serve::run_app(Hello)
/// }
/// # use std::io::Write;
/// ```
pub fn run_app<A: App>(app: A) -> ExitCode {
    Program::from_env().run(app)
}

/// The [`Program`] of the binary this is written in, with `--version` printing its package's
/// version (which a library cannot know): `fcgi_serve::program!().run(app)` where
/// [`run_app`]`(app)` gives no `--version`.
///
/// ```no_run
/// use std::io::Write;
///
/// fn main() -> std::process::ExitCode {
///     let app = fcgi_serve::HandlerApp::new(|| {
///         |_: &mut fcgi_server::Request, response: &mut fcgi_server::Response| {
///             response.write_all(b"Hello, world!")?;
///             Ok::<(), fcgi_server::Error>(())
///         }
///     });
///     fcgi_serve::program!().run(app) // `myapp --version` prints `myapp 1.2.3`
/// }
/// ```
#[macro_export]
macro_rules! program {
    () => {
        $crate::Program::from_env().version(env!("CARGO_PKG_VERSION"))
    };
}

/// A pool of a config file, as a client of its sockets sees it (`fcgi status --config FILE`):
/// its name, its `listen` addresses as the file spells them, and its status and ping paths.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfiguredPool {
    /// The section's name, or for a file without pools its `pool-name` (`www` by default).
    pub name: String,
    /// Its `listen` lines' values.
    pub listen: Vec<String>,
    /// Its `status-path`, if it has one.
    pub status_path: Option<String>,
    /// Its `ping-path`, if it has one.
    pub ping_path: Option<String>,
}

/// The pools of the config file at `path` (a file without `[NAME]` sections is one pool), and
/// the pid file its master writes; the file is read, not checked (`--check` does that).
///
/// ```no_run
/// let (pools, pid_file) = fcgi_serve::configured_pools("/etc/fcgi-rs/pools.conf".as_ref())?;
/// for pool in &pools {
///     println!("[{}] on {:?}, status at {:?}", pool.name, pool.listen, pool.status_path);
/// }
/// # let _ = pid_file;
/// # Ok::<(), String>(())
/// ```
pub fn configured_pools(
    path: &std::path::Path,
) -> Result<(Vec<ConfiguredPool>, Option<std::path::PathBuf>), String> {
    let (pools, pid_file) = config_file::every_pool(path)
        .map_err(|errors| errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))?;
    let pools = pools
        .into_iter()
        .map(|(name, options)| {
            let all = |key: &str| -> Vec<String> {
                options.iter().filter(|(n, _)| n == key).filter_map(|(_, v)| v.clone()).collect()
            };
            let last = |key: &str| all(key).pop();
            ConfiguredPool {
                name,
                listen: all("listen"),
                status_path: last("status-path"),
                ping_path: last("ping-path"),
            }
        })
        .collect();
    Ok((pools, pid_file))
}
