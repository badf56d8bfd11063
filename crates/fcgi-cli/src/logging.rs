//! The root logger: human-readable or JSON lines on standard error or in `--log-file`, written
//! off the request path by slog-async; and a synchronous one for the prefork master, which
//! must not start a thread before it forks.
//!
//! Logging never takes the server down: both write through [`Lossy`], which drops (and counts)
//! a line that cannot be written (a full disk, a closed pipe on standard error) instead of
//! failing, and says how many it dropped once writing works again. slog's usual `Fuse` would panic there: it killed the master at its first line with
//! `2>&1 | head -c1`, and left a single process without its logging thread for good.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use slog::{b, o, record_static, Drain, Level, Logger, OwnedKVList, Record};

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

/// A drain that never fails and never panics: a line the inner drain cannot write (an I/O
/// error, or a panic in it) is dropped and counted; the first line written after that is
/// preceded by one line at warning level with the count in a field `dropped`. A logger is no
/// reason for a server to stop, and a disk that fills up usually empties again.
#[derive(Debug)]
pub(crate) struct Lossy<D> {
    drain: D,
    /// Lines dropped since the last one written.
    dropped: AtomicU64,
}

impl<D: Drain> Lossy<D> {
    /// Wraps `drain`.
    pub(crate) fn new(drain: D) -> Lossy<D> {
        Lossy { drain, dropped: AtomicU64::new(0) }
    }

    /// Whether `drain` wrote the record; a panic in it counts as a failure, not ours.
    fn try_log(&self, record: &Record<'_>, values: &OwnedKVList) -> bool {
        matches!(catch_unwind(AssertUnwindSafe(|| self.drain.log(record, values))), Ok(Ok(_)))
    }

    /// Reports `dropped` lines; whether the report was written.
    fn report(&self, dropped: u64, values: &OwnedKVList) -> bool {
        let rs = record_static!(Level::Warning, "");
        let message = format_args!("log lines dropped: the log could not be written");
        self.try_log(&Record::new(&rs, &message, b!("dropped" => dropped)), values)
    }
}

impl<D: Drain> Drain for Lossy<D> {
    type Ok = ();
    type Err = slog::Never;

    fn log(&self, record: &Record<'_>, values: &OwnedKVList) -> Result<(), slog::Never> {
        let dropped = self.dropped.load(Ordering::Relaxed);
        if dropped > 0 {
            if !self.report(dropped, values) {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                return Ok(());
            }
            // Subtracted, not reset: another thread may have dropped one meanwhile.
            self.dropped.fetch_sub(dropped, Ordering::Relaxed);
        }
        if !self.try_log(record, values) {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }
}

/// Collects what slog-json writes for one line (it writes each key and value on its own) and
/// hands the whole line to the target in one write when the newline comes: a line is written
/// whole or not at all, so a failed one leaves no half line for the next to be glued to, and
/// lines from several workers appending to one file do not interleave.
struct WholeLines<W: Write> {
    target: W,
    line: Vec<u8>,
}

impl<W: Write> WholeLines<W> {
    fn new(target: W) -> WholeLines<W> {
        WholeLines { target, line: Vec::with_capacity(256) }
    }
}

impl<W: Write> Write for WholeLines<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.line.extend_from_slice(buf);
        if buf.ends_with(b"\n") {
            let result = self.target.write_all(&self.line);
            self.line.clear();
            result?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.target.flush()
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
            let drain = Lossy::new(slog_term::FullFormat::new(decorator).build());
            async_drain(drain.filter_level(level).ignore_res())
        }
        LogFormat::Json => {
            let drain =
                slog_json::Json::new(WholeLines::new(target.clone())).add_default_keys().build();
            async_drain(Lossy::new(drain).filter_level(level).ignore_res())
        }
    };
    // The channel fails only if the logging thread is gone, which Lossy prevents; should it
    // happen all the same, requests go on without their lines.
    (Logger::root(drain.ignore_res(), o!("pid" => std::process::id())), guard)
}

/// A logger that writes on the calling thread and starts none: the prefork master's, which
/// forks, and whose few lines are not on any request's path.
pub(crate) fn sync_logger(format: LogFormat, log_level: LogLevel, target: &LogTarget) -> Logger {
    let level = level(log_level);
    let values = o!("pid" => std::process::id(), "role" => "master");
    match format {
        LogFormat::Term => {
            let decorator = slog_term::PlainSyncDecorator::new(target.clone());
            let drain = Lossy::new(slog_term::FullFormat::new(decorator).build());
            Logger::root(drain.filter_level(level).ignore_res(), values)
        }
        LogFormat::Json => {
            let drain =
                slog_json::Json::new(WholeLines::new(target.clone())).add_default_keys().build();
            let drain = Lossy::new(Mutex::new(drain));
            Logger::root(drain.filter_level(level).ignore_res(), values)
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

/// A logger of its own file that writes on the calling thread (the slow log: a few lines, on
/// no request's path).
pub(crate) fn file_logger(format: LogFormat, target: &LogTarget) -> Logger {
    let values = o!("pid" => std::process::id());
    match format {
        LogFormat::Term => {
            let decorator = slog_term::PlainSyncDecorator::new(target.clone());
            let drain = Lossy::new(slog_term::FullFormat::new(decorator).build());
            Logger::root(drain.ignore_res(), values)
        }
        LogFormat::Json => {
            let drain =
                slog_json::Json::new(WholeLines::new(target.clone())).add_default_keys().build();
            Logger::root(Lossy::new(Mutex::new(drain)).ignore_res(), values)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer that fails its first `failures` writes (as a full disk does), then keeps what
    /// it is given.
    #[derive(Clone)]
    struct Flaky {
        failures: Arc<Mutex<usize>>,
        written: Arc<Mutex<Vec<u8>>>,
    }

    impl Write for Flaky {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let mut failures = self.failures.lock().unwrap();
            if *failures > 0 {
                *failures -= 1;
                return Err(io::Error::from_raw_os_error(libc::ENOSPC));
            }
            self.written.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    /// The number in field `name` of a JSON line, as slog-json writes it (`"name":123`).
    fn number_field(line: &str, name: &str) -> Option<u64> {
        let rest = &line[line.find(&format!("\"{name}\":"))? + name.len() + 3..];
        rest[..rest.find(|c: char| !c.is_ascii_digit())?].parse().ok()
    }

    /// The string in field `name` of a JSON line (`"name":"text"`, no escapes).
    fn text_field<'a>(line: &'a str, name: &str) -> Option<&'a str> {
        let rest = &line[line.find(&format!("\"{name}\":\""))? + name.len() + 4..];
        Some(&rest[..rest.find('"')?])
    }

    fn flaky_logger(failures: usize) -> (Logger, Arc<Mutex<Vec<u8>>>) {
        let flaky = Flaky {
            failures: Arc::new(Mutex::new(failures)),
            written: Arc::new(Mutex::new(Vec::new())),
        };
        let written = Arc::clone(&flaky.written);
        let json = slog_json::Json::new(WholeLines::new(flaky)).add_default_keys().build();
        let log = Logger::root(Lossy::new(Mutex::new(json)).ignore_res(), o!("pid" => 7));
        (log, written)
    }

    #[test]
    fn lines_that_cannot_be_written_are_dropped_counted_and_reported_once_writing_works() {
        let (log, written) = flaky_logger(3);
        for n in 0..3 {
            slog::info!(log, "lost"; "n" => n);
        }
        assert!(written.lock().unwrap().is_empty(), "nothing written while the writer fails");
        slog::info!(log, "kept"; "n" => 3);
        slog::info!(log, "kept"; "n" => 4);
        let text = String::from_utf8(written.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert_eq!(number_field(lines[0], "dropped"), Some(3), "{text}");
        assert_eq!(text_field(lines[0], "level"), Some("WARN"), "{text}");
        assert_eq!(number_field(lines[0], "pid"), Some(7), "the logger's values: {text}");
        assert_eq!(number_field(lines[1], "n"), Some(3), "{text}");
        assert_eq!(number_field(lines[1], "dropped"), None, "reported once: {text}");
        assert_eq!(number_field(lines[2], "n"), Some(4), "{text}");
    }

    #[test]
    fn a_failed_report_counts_the_line_after_it_too() {
        // The first line fails; the report before the second fails too, so the second is
        // dropped as well; the third gets the report of two.
        let (log, written) = flaky_logger(2);
        slog::info!(log, "lost"; "n" => 0);
        slog::info!(log, "lost"; "n" => 1);
        slog::info!(log, "kept"; "n" => 2);
        let text = String::from_utf8(written.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert_eq!(number_field(lines[0], "dropped"), Some(2), "{text}");
        assert_eq!(number_field(lines[1], "n"), Some(2), "{text}");
    }

    /// A drain that panics, as a formatting bug would: contained, counted, not propagated.
    struct Panicky;

    impl Drain for Panicky {
        type Ok = ();
        type Err = slog::Never;

        fn log(&self, _: &Record<'_>, _: &OwnedKVList) -> Result<(), slog::Never> {
            panic!("a drain that panics");
        }
    }

    #[test]
    fn a_panicking_drain_neither_panics_the_caller_nor_stops_counting() {
        let lossy = Arc::new(Lossy::new(Panicky));
        let log = Logger::root(Arc::clone(&lossy).ignore_res(), o!());
        slog::info!(log, "first");
        slog::info!(log, "second");
        // The second line's report panicked too: both counted, neither written.
        assert_eq!(lossy.dropped.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn a_line_is_handed_on_whole_or_not_at_all() {
        let flaky =
            Flaky { failures: Arc::new(Mutex::new(1)), written: Arc::new(Mutex::new(Vec::new())) };
        let mut lines = WholeLines::new(flaky.clone());
        lines.write_all(b"{\"a\":").unwrap();
        lines.write_all(b"1}").unwrap();
        assert!(lines.write_all(b"\n").is_err(), "the failed write is reported");
        lines.write_all(b"{\"b\":2}").unwrap();
        lines.write_all(b"\n").unwrap();
        assert_eq!(&*flaky.written.lock().unwrap(), b"{\"b\":2}\n");
    }
}
