//! What an app author gives the master: the work of each worker, and how to reload.

use crate::settings::Settings;
use crate::worker::Worker;

/// What the master runs in each worker, and how it reloads: the app author's side.
///
/// ```no_run
/// use fcgi_prefork::{Master, Settings, Worker, Workload};
/// use fcgi_server::{ListenOptions, Listener, Server};
///
/// struct Hello { log: slog::Logger }
///
/// impl Workload for Hello {
///     fn run_worker(&mut self, mut worker: Worker) -> i32 {
///         // Runs in the forked child: build the app here, never before the fork.
///         let builder = worker.take_listeners().into_iter().fold(Server::builder(), |b, l| b.listener(l));
///         let server = builder
///             .responder(|_: &mut fcgi_server::Request, r: &mut fcgi_server::Response| {
///                 std::io::Write::write_all(r, b"Hello")?;
///                 Ok::<(), fcgi_server::Error>(())
///             })
///             .build();
///         match worker.serve(server, &self.log) {
///             Ok(_) => 0,
///             Err(_) => 1,
///         }
///     }
/// }
///
/// let log = slog::Logger::root(slog::Discard, slog::o!());
/// let listener = Listener::bind(&"unix:/run/app.sock".parse()?, &ListenOptions::default())?;
/// let settings = Settings { workers: 4, ..Settings::default() };
/// Master::new(settings, vec![listener], log.clone())?.run(&mut Hello { log })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub trait Workload {
    /// Runs in a forked worker: build the app, then [`Worker::serve`] it. The return value is
    /// the worker's exit status (0 when it stopped as asked).
    fn run_worker(&mut self, worker: Worker) -> i32;

    /// On SIGHUP, in the master: re-read the configuration and return the settings the new
    /// workers get (the next [`run_worker`](Workload::run_worker) calls see whatever else this
    /// changed). An error keeps the running workers and settings. The default keeps the
    /// settings and still replaces the workers, which rebuild their apps.
    fn reload(&mut self, current: &Settings) -> Result<Settings, String> {
        Ok(current.clone())
    }

    /// On SIGUSR1, in the master: reopen its log files (the workers get the signal too).
    fn reopen_logs(&mut self) {}
}
