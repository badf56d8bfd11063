//! The root logger: human-readable or JSON lines on standard error or in `--log-file`, written
//! off the request path by slog-async; and a synchronous one for the prefork master, which
//! must not start a thread before it forks.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use slog::{o, Drain, Level, Logger};

use crate::args::{LogFormat, LogLevel};

/// Where log lines go: standard error, or a file that [`LogTarget::reopen`] opens anew (after
/// logrotate moved it, on SIGUSR1).
#[derive(Clone, Debug)]
pub(crate) struct LogTarget {
    path: Option<PathBuf>,
    file: Arc<Mutex<Option<File>>>,
}

impl LogTarget {
    /// Standard error for `None`, else the file at `path`, opened for appending.
    pub(crate) fn open(path: Option<&Path>) -> io::Result<LogTarget> {
        let file = path.map(open_append).transpose()?;
        Ok(LogTarget { path: path.map(Path::to_path_buf), file: Arc::new(Mutex::new(file)) })
    }

    /// Opens the file again by its path; lines written meanwhile go to the old one.
    pub(crate) fn reopen(&self) -> io::Result<()> {
        let Some(path) = &self.path else { return Ok(()) };
        let file = open_append(path)?;
        *self.file.lock().unwrap_or_else(|p| p.into_inner()) = Some(file);
        Ok(())
    }
}

fn open_append(path: &Path) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

impl Write for LogTarget {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match &mut *self.file.lock().unwrap_or_else(|p| p.into_inner()) {
            Some(file) => file.write(buf),
            None => io::stderr().write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match &mut *self.file.lock().unwrap_or_else(|p| p.into_inner()) {
            Some(file) => file.flush(),
            None => io::stderr().flush(),
        }
    }
}

fn level(level: LogLevel) -> Level {
    match level {
        LogLevel::Error => Level::Error,
        LogLevel::Warning => Level::Warning,
        LogLevel::Info => Level::Info,
        LogLevel::Debug => Level::Debug,
    }
}

/// The root logger, and a guard that flushes every line still queued when it drops: keep it
/// until the process is about to exit.
pub(crate) fn logger(
    format: LogFormat,
    log_level: LogLevel,
    target: &LogTarget,
) -> (Logger, slog_async::AsyncGuard) {
    let level = level(log_level);
    let (drain, guard) = match format {
        LogFormat::Term => {
            let decorator = slog_term::PlainSyncDecorator::new(target.clone());
            let drain = slog_term::FullFormat::new(decorator).build().fuse();
            async_drain(drain.filter_level(level).fuse())
        }
        LogFormat::Json => {
            let drain = slog_json::Json::new(target.clone()).add_default_keys().build().fuse();
            async_drain(drain.filter_level(level).fuse())
        }
    };
    (Logger::root(drain.fuse(), o!("pid" => std::process::id())), guard)
}

/// A logger that writes on the calling thread and starts none: the prefork master's, which
/// forks, and whose few lines are not on any request's path.
pub(crate) fn sync_logger(format: LogFormat, log_level: LogLevel, target: &LogTarget) -> Logger {
    let level = level(log_level);
    let values = o!("pid" => std::process::id(), "role" => "master");
    match format {
        LogFormat::Term => {
            let decorator = slog_term::PlainSyncDecorator::new(target.clone());
            let drain = slog_term::FullFormat::new(decorator).build().fuse();
            Logger::root(drain.filter_level(level).fuse(), values)
        }
        LogFormat::Json => {
            let drain = slog_json::Json::new(target.clone()).add_default_keys().build();
            let drain = Mutex::new(drain).map(slog::Fuse);
            Logger::root(drain.filter_level(level).fuse(), values)
        }
    }
}

fn async_drain<D>(drain: D) -> (slog_async::Async, slog_async::AsyncGuard)
where
    D: Drain<Ok = (), Err = slog::Never> + Send + 'static,
{
    // Overflowing log lines are counted and reported, never allowed to block a request.
    slog_async::Async::new(drain)
        .chan_size(4096)
        .overflow_strategy(slog_async::OverflowStrategy::DropAndReport)
        .thread_name("fcgi-log".into())
        .build_with_guard()
}
