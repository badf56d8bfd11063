//! How many workers run, and when they are replaced: every knob of the master, with its reason.

use std::fmt;
use std::time::Duration;

/// How the number of workers is decided.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ProcessModel {
    /// Always [`Settings::workers`] workers (flup's prefork, PHP-FPM's `pm = static`).
    #[default]
    Static,
    /// Between the spare bounds and [`Settings::max_workers`], from how many are busy
    /// (PHP-FPM's `pm = dynamic`); [`Settings::workers`] is how many start.
    Dynamic,
}

/// The master's settings. [`Settings::default`] gives each knob its documented default.
///
/// ```
/// use fcgi_prefork::{ProcessModel, Settings};
///
/// let settings = Settings { workers: 4, model: ProcessModel::Static, ..Settings::default() };
/// assert!(settings.validate().is_ok());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    /// Workers to run (static), or to start with (dynamic).
    pub workers: usize,
    /// Static or dynamic.
    pub model: ProcessModel,
    /// Dynamic: idle workers below this many start more.
    pub min_spare: usize,
    /// Dynamic: idle workers above this many retire, one per second.
    pub max_spare: usize,
    /// Dynamic: the most workers at once.
    pub max_workers: usize,
    /// A worker retires after this many requests (0: never), to bound leaks in app code.
    pub max_requests: u64,
    /// Each worker adds a random 0..=this to `max_requests`, so that workers started together
    /// do not all retire together.
    pub max_requests_jitter: u64,
    /// A worker that has not reported for this long is hung: it gets TERM, then KILL after
    /// [`kill_grace`](Settings::kill_grace). Only silence counts: the report comes from a
    /// thread of the worker's own, so a long request does not stop it, and a request that runs
    /// longer than this is no sign of a hang (a CGI program may take minutes within its own
    /// timeout). Long and stuck requests are [`request_timeout`](Settings::request_timeout)'s.
    pub worker_timeout: Duration,
    /// How long the web server waits for a request, as PHP-FPM's `request_terminate_timeout`:
    /// at that moment the server answers it (`504` if nothing of it was sent, cut short so that
    /// the client sees it otherwise; [`fcgi_server::Config::request_timeout`]), whatever the
    /// graceful timeout, and the worker retires gracefully: it stops accepting and is replaced
    /// at once, hands its idle connections over, and exits once its other requests are done
    /// (the handler that ran too long, whose thread cannot be stopped, is given up at the
    /// [`graceful_timeout`](Settings::graceful_timeout)). `None`: no limit (the app's own, such
    /// as the CGI timeout, still apply).
    pub request_timeout: Option<Duration>,
    /// How long a worker retired gracefully (stop, reload, recycle) may take to finish its
    /// requests before it is killed.
    pub graceful_timeout: Duration,
    /// How long a hung worker has between TERM and KILL.
    pub kill_grace: Duration,
}

impl Settings {
    /// 30 s, as gunicorn's default `--timeout`: a worker silent that long (its heartbeat comes
    /// at most 250 ms apart) is stuck as a whole, not busy.
    pub const DEFAULT_WORKER_TIMEOUT: Duration = Duration::from_secs(30);
    /// 30 s, as gunicorn's `--graceful-timeout`.
    pub const DEFAULT_GRACEFUL_TIMEOUT: Duration = Duration::from_secs(30);
    /// 5 s: enough for a worker to log and flush after TERM, short enough that a hung worker's
    /// requests fail soon.
    pub const DEFAULT_KILL_GRACE: Duration = Duration::from_secs(5);
    /// 200 ms: the heartbeat comes every quarter of the timeout, and less than 50 ms between
    /// reports would cost more than it tells.
    pub const MIN_WORKER_TIMEOUT: Duration = Duration::from_millis(200);

    /// Checks that the numbers agree with each other.
    pub fn validate(&self) -> Result<(), SettingsError> {
        if self.workers == 0 {
            return Err(SettingsError::NoWorkers);
        }
        if self.worker_timeout < Self::MIN_WORKER_TIMEOUT {
            return Err(SettingsError::WorkerTimeoutTooShort(self.worker_timeout));
        }
        if self.model == ProcessModel::Dynamic {
            if self.min_spare == 0 {
                return Err(SettingsError::NoSpares);
            }
            if self.min_spare > self.max_spare {
                return Err(SettingsError::SparesInverted {
                    min_spare: self.min_spare,
                    max_spare: self.max_spare,
                });
            }
            if self.max_spare > self.max_workers || self.workers > self.max_workers {
                return Err(SettingsError::CapTooLow {
                    max_workers: self.max_workers,
                    workers: self.workers,
                    max_spare: self.max_spare,
                });
            }
        }
        Ok(())
    }

    /// How often a worker reports to the master: often enough that a hung worker is noticed
    /// well within the timeout, and that the dynamic model sees bursts quickly.
    pub(crate) fn heartbeat_interval(&self) -> Duration {
        (self.worker_timeout / 4).clamp(Duration::from_millis(50), Duration::from_millis(250))
    }
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            workers: 1,
            model: ProcessModel::Static,
            min_spare: 1,
            max_spare: 3,
            max_workers: 8,
            max_requests: 0,
            max_requests_jitter: 0,
            worker_timeout: Self::DEFAULT_WORKER_TIMEOUT,
            request_timeout: None,
            graceful_timeout: Self::DEFAULT_GRACEFUL_TIMEOUT,
            kill_grace: Self::DEFAULT_KILL_GRACE,
        }
    }
}

/// Settings that contradict each other.
///
/// ```
/// use fcgi_prefork::{Settings, SettingsError};
///
/// let settings = Settings { workers: 0, ..Settings::default() };
/// assert_eq!(settings.validate(), Err(SettingsError::NoWorkers));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SettingsError {
    /// `workers` is 0.
    NoWorkers,
    /// `worker_timeout` is below [`Settings::MIN_WORKER_TIMEOUT`].
    WorkerTimeoutTooShort(Duration),
    /// Dynamic, and `min_spare` is 0: nothing would be ready for the next request.
    NoSpares,
    /// Dynamic, and `min_spare` exceeds `max_spare`.
    SparesInverted {
        /// The lower bound given.
        min_spare: usize,
        /// The upper bound given.
        max_spare: usize,
    },
    /// Dynamic, and `max_workers` is below the starting `workers` or `max_spare`.
    CapTooLow {
        /// The cap given.
        max_workers: usize,
        /// The starting workers given.
        workers: usize,
        /// The upper spare bound given.
        max_spare: usize,
    },
}

impl fmt::Display for SettingsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SettingsError::NoWorkers => f.write_str("workers must be at least 1"),
            SettingsError::WorkerTimeoutTooShort(t) => write!(
                f,
                "the worker timeout ({} ms) must be at least {} ms",
                t.as_millis(),
                Settings::MIN_WORKER_TIMEOUT.as_millis()
            ),
            SettingsError::NoSpares => f.write_str("min spare workers must be at least 1"),
            SettingsError::SparesInverted { min_spare, max_spare } => write!(
                f,
                "min spare workers ({min_spare}) must not exceed max spare workers ({max_spare})"
            ),
            SettingsError::CapTooLow { max_workers, workers, max_spare } => write!(
                f,
                "max workers ({max_workers}) must be at least the starting workers ({workers}) \
                 and max spare workers ({max_spare})"
            ),
        }
    }
}

impl std::error::Error for SettingsError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_contradictions_are_refused() {
        assert!(Settings::default().validate().is_ok());
        assert!(Settings { workers: 0, ..Settings::default() }.validate().is_err());
        let dynamic = Settings { model: ProcessModel::Dynamic, ..Settings::default() };
        assert!(dynamic.validate().is_ok());
        assert!(Settings { min_spare: 4, ..dynamic.clone() }.validate().is_err());
        assert!(Settings { workers: 9, ..dynamic.clone() }.validate().is_err());
        assert!(Settings { max_workers: 2, ..dynamic }.validate().is_err());
    }
}
