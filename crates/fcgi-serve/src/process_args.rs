//! `fcgi serve`'s process options: the prefork master, its workers, signals and files.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};
use fcgi_prefork::{ProcessModel, Settings};

/// How the number of worker processes is decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum Model {
    /// Always --workers workers.
    Static,
    /// Between the spare bounds and --max-workers, from how many are busy (PHP-FPM's
    /// pm = dynamic); --workers start.
    Dynamic,
    /// For an app that runs programs of its own (fcgi serve's exec): no program runs while
    /// idle, up to --max-workers start on demand, and one idle for --worker-idle-timeout stops
    /// (PHP-FPM's pm = ondemand).
    Ondemand,
}

#[derive(Clone, Debug, Args)]
pub(crate) struct ProcessArgs {
    /// Worker processes. 1 (with static and no --master): a single process with no master.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub(crate) workers: usize,

    /// Run a master even with one worker (for HUP reloads, USR2 upgrades, --max-requests);
    /// implied by --workers 2+, dynamic, --max-requests and --request-timeout.
    #[arg(long)]
    pub(crate) master: bool,

    /// How many workers run.
    #[arg(long, value_enum, default_value_t = Model::Static)]
    pub(crate) process_model: Model,

    /// Dynamic: idle workers below this many start more.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub(crate) min_spare_workers: usize,

    /// Dynamic: idle workers above this many retire, one per second.
    #[arg(long, value_name = "N", default_value_t = 3)]
    pub(crate) max_spare_workers: usize,

    /// Dynamic: the most workers at once.
    #[arg(long, value_name = "N", default_value_t = 8)]
    pub(crate) max_workers: usize,

    /// Ondemand: seconds a program process may stay idle before it stops.
    #[arg(long, value_name = "SECS", default_value_t = 10)]
    pub(crate) worker_idle_timeout: u64,

    /// A worker retires gracefully after this many requests and is replaced (0: never).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub(crate) max_requests: u64,

    /// Each worker adds a random 0..=J to --max-requests, so workers do not retire together.
    #[arg(long, value_name = "J", default_value_t = 0)]
    pub(crate) max_requests_jitter: u64,

    /// Seconds a worker may go silent (its heartbeat comes at most 250 ms apart, from a
    /// thread of its own) before it is deemed hung: TERM, then KILL 5 s later, and a
    /// replacement. A long request is not a hang and never trips it: bound requests with
    /// --request-timeout (and the app's own limits, such as --cgi-timeout).
    #[arg(long, value_name = "SECS", default_value_t = Settings::DEFAULT_WORKER_TIMEOUT.as_secs())]
    pub(crate) worker_timeout: u64,

    /// Seconds the web server waits for a request (PHP-FPM's request_terminate_timeout): then
    /// it is answered 504, or cut short if its response had begun, whatever
    /// --graceful-timeout, and its worker retires gracefully and is replaced at once; each
    /// request past it is logged (default: no limit).
    #[arg(long, value_name = "SECS")]
    pub(crate) request_timeout: Option<u64>,

    /// Write the master's (or the single process's) pid here; removed on exit.
    #[arg(long, value_name = "PATH")]
    pub(crate) pid_file: Option<PathBuf>,

    /// Log to this file instead of standard error; SIGUSR1 reopens it (after rotation).
    #[arg(long, value_name = "PATH")]
    pub(crate) log_file: Option<PathBuf>,

    /// Read `serve` options from FILE, one `name = value` per line (long option names, `#`
    /// comments, also after a value, `name = true` for a flag); an option on the command line
    /// replaces all of the file's lines for it. SIGHUP re-reads it; --check checks it.
    #[arg(long, value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,

    /// Serve the pool NAME of the --config file, one whose pools are `[NAME]` sections: the
    /// options before the first section (log-file, log-format, log-level, graceful-timeout),
    /// then the section's, with pool-name = NAME unless it sets one. Each pool runs as a
    /// process of its own (`fcgi-pool@NAME.service`, docs/DEPLOYING.md).
    #[arg(long, value_name = "NAME", requires = "config")]
    pub(crate) pool: Option<String>,
}

impl ProcessArgs {
    /// Whether a master and workers run, rather than one process.
    pub(crate) fn wants_master(&self) -> bool {
        self.master
            || self.workers > 1
            || self.process_model != Model::Static
            || self.max_requests > 0
            || self.request_timeout.is_some()
    }

    /// The master's settings; `graceful_timeout` comes from the server options. For an app
    /// that runs programs of its own (`programs`), the options size those: the master runs
    /// one serving worker, which it replaces on a reload.
    pub(crate) fn settings(
        &self,
        graceful_timeout: u64,
        programs: bool,
    ) -> Result<Settings, String> {
        if programs {
            let settings = Settings {
                workers: 1,
                model: ProcessModel::Static,
                max_requests: 0,
                max_requests_jitter: 0,
                request_timeout: None,
                graceful_timeout: Duration::from_secs(graceful_timeout),
                worker_timeout: Duration::from_secs(self.worker_timeout),
                ..Settings::default()
            };
            settings.validate().map_err(|e| e.to_string())?;
            return Ok(settings);
        }
        let settings = Settings {
            workers: self.workers,
            model: match self.process_model {
                Model::Static => ProcessModel::Static,
                // Refused by the checks for anything but programs (checks.rs).
                Model::Dynamic | Model::Ondemand => ProcessModel::Dynamic,
            },
            min_spare: self.min_spare_workers,
            max_spare: self.max_spare_workers,
            max_workers: self.max_workers,
            max_requests: self.max_requests,
            max_requests_jitter: self.max_requests_jitter,
            worker_timeout: Duration::from_secs(self.worker_timeout),
            request_timeout: self.request_timeout.map(Duration::from_secs),
            graceful_timeout: Duration::from_secs(graceful_timeout),
            kill_grace: Settings::DEFAULT_KILL_GRACE,
        };
        settings.validate().map_err(|e| e.to_string())?;
        Ok(settings)
    }
}
