//! [`Processes`]: the process options as an app that runs processes of its own reads them
//! (`fcgi serve --app exec`: the program's processes), instead of fcgi-serve's workers.

use std::time::Duration;

use crate::process_args::{Model, ProcessArgs};

/// How many processes run, as `--process-model` says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProcessModel {
    /// Always `--workers`.
    Static,
    /// Between the spare bounds and `--max-workers`.
    Dynamic,
    /// None while idle, up to `--max-workers` on demand.
    OnDemand,
}

/// The process options, for an app whose [`App::runs_programs`](crate::App::runs_programs)
/// is true: they size its own processes, and fcgi-serve runs one serving process (under a
/// master, for reloads).
///
/// ```
/// fn processes_wanted(p: &fcgi_serve::Processes) -> usize {
///     match p.model {
///         fcgi_serve::ProcessModel::Static => p.workers,
///         _ => p.max_workers,
///     }
/// }
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Processes {
    /// `--process-model`.
    pub model: ProcessModel,
    /// `--workers`: the static count, or the dynamic model's start.
    pub workers: usize,
    /// Whether `--workers` was given (an app may pick its own default otherwise).
    pub workers_given: bool,
    /// `--min-spare-workers`.
    pub min_spare: usize,
    /// `--max-spare-workers`.
    pub max_spare: usize,
    /// `--max-workers`.
    pub max_workers: usize,
    /// `--worker-idle-timeout`: the on-demand model's.
    pub idle_timeout: Duration,
    /// `--max-requests` (0: never).
    pub max_requests: u64,
    /// `--max-requests-jitter`.
    pub max_requests_jitter: u64,
    /// `--request-timeout`.
    pub request_timeout: Option<Duration>,
    /// `--queue-timeout` (`None`: no limit).
    pub queue_timeout: Option<Duration>,
    /// Whether `--status-path` is given (what a status page shows may cost to measure).
    pub status_page: bool,
}

impl Processes {
    pub(crate) fn of(
        process: &ProcessArgs,
        workers_given: bool,
        queue_timeout: Option<Duration>,
        status_page: bool,
    ) -> Processes {
        Processes {
            model: match process.process_model {
                Model::Static => ProcessModel::Static,
                Model::Dynamic => ProcessModel::Dynamic,
                Model::Ondemand => ProcessModel::OnDemand,
            },
            workers: process.workers,
            workers_given,
            min_spare: process.min_spare_workers,
            max_spare: process.max_spare_workers,
            max_workers: process.max_workers,
            idle_timeout: Duration::from_secs(process.worker_idle_timeout),
            max_requests: process.max_requests,
            max_requests_jitter: process.max_requests_jitter,
            request_timeout: process.request_timeout.map(Duration::from_secs),
            queue_timeout,
            status_page,
        }
    }

    /// The most processes these options run at once.
    pub fn max(&self) -> usize {
        match self.model {
            ProcessModel::Static => self.workers,
            ProcessModel::Dynamic | ProcessModel::OnDemand => self.max_workers,
        }
    }
}
