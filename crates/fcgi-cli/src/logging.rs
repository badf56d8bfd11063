//! The root logger: human-readable or JSON lines on standard error, written off the request
//! path by slog-async.

use slog::{o, Drain, Level, Logger};

use crate::args::{LogFormat, LogLevel};

/// The root logger, and a guard that flushes every line still queued when it drops: keep it
/// until the process is about to exit.
pub(crate) fn logger(format: LogFormat, level: LogLevel) -> (Logger, slog_async::AsyncGuard) {
    let level = match level {
        LogLevel::Error => Level::Error,
        LogLevel::Warning => Level::Warning,
        LogLevel::Info => Level::Info,
        LogLevel::Debug => Level::Debug,
    };
    let (drain, guard) = match format {
        LogFormat::Term => {
            let decorator = slog_term::PlainSyncDecorator::new(std::io::stderr());
            let drain = slog_term::FullFormat::new(decorator).build().fuse();
            async_drain(drain.filter_level(level).fuse())
        }
        LogFormat::Json => {
            let drain = slog_json::Json::new(std::io::stderr()).add_default_keys().build().fuse();
            async_drain(drain.filter_level(level).fuse())
        }
    };
    (Logger::root(drain.fuse(), o!("pid" => std::process::id())), guard)
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
