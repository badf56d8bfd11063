//! The root logger: human-readable or JSON lines on standard error or in `--log-file`, written
//! off the request path by a logging thread; and a synchronous one for the prefork master,
//! which must not start a thread before it forks.
//!
//! Logging never takes the server down: both write through [`Lossy`], which drops (and counts)
//! a line that cannot be written (a full disk, a closed pipe on standard error) instead of
//! failing, and says how many it dropped once writing works again. slog's usual `Fuse` would
//! panic there: it killed the master at its first line with `2>&1 | head -c1`, and left a
//! single process without its logging thread for good. Lines past the logging thread's queue
//! are dropped too ([`Queue`]), never waited for, and counted apart.
//!
//! Both formats escape what a peer sent: the `term` lines with [`term`], the JSON lines
//! with JSON's escapes, and DEL, the C1 controls, U+2028 and U+2029 escaped too
//! ([`json`]).

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::panic::{catch_unwind, AssertUnwindSafe, RefUnwindSafe, UnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use slog::{b, o, record_static, Drain, Level, Logger, OwnedKVList, Record};

use clap::ValueEnum;

use self::json::JsonLines;
use self::term::TermLines;

pub(crate) mod access_log;
mod json;
mod term;

/// How log lines are written (`--log-format`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum LogFormat {
    /// Human-readable lines.
    Term,
    /// One JSON object per line.
    Json,
}

/// The least severe level logged (`--log-level`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum LogLevel {
    Error,
    Warning,
    Info,
    Debug,
}

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
/// error, or a panic in it) is dropped and counted, and so is a line the [`Queue`] in front of
/// it had no room for; the first line written after that is preceded by one line at warning
/// level with the counts: `dropped` in all, `queue_full` and `write_failed` by cause. A logger
/// is no reason for a server to stop, and a disk that fills up usually empties again.
#[derive(Debug)]
pub(crate) struct Lossy<D> {
    drain: D,
    /// Lines the drain failed to write since the last report.
    write_failed: AtomicU64,
    /// Lines the queue in front had no room for, since the last report (always 0 without a
    /// queue).
    queue_full: Arc<AtomicU64>,
}

impl<D: Drain> Lossy<D> {
    /// Wraps `drain`.
    pub(crate) fn new(drain: D) -> Lossy<D> {
        Lossy { drain, write_failed: AtomicU64::new(0), queue_full: Arc::default() }
    }

    /// Whether `drain` wrote the record; a panic in it counts as a failure, not ours.
    fn try_log(&self, record: &Record<'_>, values: &OwnedKVList) -> bool {
        matches!(catch_unwind(AssertUnwindSafe(|| self.drain.log(record, values))), Ok(Ok(_)))
    }

    /// Reports lines dropped; whether the report was written.
    fn report(&self, queue_full: u64, write_failed: u64, values: &OwnedKVList) -> bool {
        let rs = record_static!(Level::Warning, "");
        let message = format_args!("log lines dropped: the log could not be written");
        let dropped = queue_full + write_failed;
        let kv =
            b!("dropped" => dropped, "queue_full" => queue_full, "write_failed" => write_failed);
        self.try_log(&Record::new(&rs, &message, kv), values)
    }
}

impl<D: Drain> Drain for Lossy<D> {
    type Ok = ();
    type Err = slog::Never;

    fn log(&self, record: &Record<'_>, values: &OwnedKVList) -> Result<(), slog::Never> {
        let write_failed = self.write_failed.load(Ordering::Relaxed);
        let queue_full = self.queue_full.load(Ordering::Relaxed);
        if write_failed + queue_full > 0 {
            if !self.report(queue_full, write_failed, values) {
                self.write_failed.fetch_add(1, Ordering::Relaxed);
                return Ok(());
            }
            // Subtracted, not reset: another thread may have dropped one meanwhile.
            self.write_failed.fetch_sub(write_failed, Ordering::Relaxed);
            self.queue_full.fetch_sub(queue_full, Ordering::Relaxed);
        }
        if !self.try_log(record, values) {
            self.write_failed.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }
}

/// Hands each record to a logging thread, through a bounded queue; a record the queue has no
/// room for is dropped (a request never waits for its log line) and counted, once, in
/// `full`, which the drain on the thread reports ([`Lossy`], the access log's writer).
///
/// slog-async's own `Async` with `DropAndReport` counted a line lost twice while the queue
/// stayed full (the line, and the report of the lines before it that found no room either),
/// and its report could not say which lines the queue lost and which the disk.
pub(crate) struct Queue {
    core: slog_async::AsyncCore,
    full: Arc<AtomicU64>,
}

impl Queue {
    /// A thread named `name` that runs `drain`, behind a queue of `size` records; the count of
    /// records dropped for want of room is `full`. Keep the guard until the process is about
    /// to exit: dropping it writes what is still queued.
    pub(crate) fn start<D>(
        drain: D,
        size: usize,
        name: &str,
        full: Arc<AtomicU64>,
    ) -> (Queue, slog_async::AsyncGuard)
    where
        D: Drain<Ok = (), Err = slog::Never> + Send + 'static,
    {
        let (core, guard) = slog_async::AsyncCore::custom(drain)
            .chan_size(size)
            .thread_name(name.to_owned())
            .build_with_guard();
        (Queue { core, full }, guard)
    }
}

impl Drain for Queue {
    type Ok = ();
    type Err = slog::Never;

    fn log(&self, record: &Record<'_>, values: &OwnedKVList) -> Result<(), slog::Never> {
        // Full, or (should it ever happen) the thread gone: the line is lost either way.
        if self.core.log(record, values).is_err() {
            self.full.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }
}

/// Collects what [`JsonLines`] writes for one line (serde_json writes each key and value on
/// its own) and hands the whole line to the target in one write when the newline comes: a line
/// is written whole or not at all, so a failed one leaves no half line for the next to be
/// glued to, and lines from several workers appending to one file do not interleave.
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
        // JSON text holds a line feed only as the line's end: in a string it is `\n`.
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

/// Lines the logging thread may have queued; past it they are dropped and counted, never
/// allowed to block a request.
const QUEUE: usize = 4096;

/// A drain of either format, as the loggers hold it.
type Lines = Box<dyn Drain<Ok = (), Err = slog::Never> + Send + Sync + RefUnwindSafe + UnwindSafe>;

/// The format's drain, writing to `target` on the calling thread, through [`Lossy`], which
/// reports `queue_full` too.
fn lines(format: LogFormat, target: &LogTarget, queue_full: Arc<AtomicU64>) -> Lines {
    match format {
        LogFormat::Term => {
            Box::new(Lossy { queue_full, ..Lossy::new(TermLines::new(target.clone())) })
        }
        LogFormat::Json => {
            let drain = JsonLines::new(WholeLines::new(target.clone()));
            Box::new(Lossy { queue_full, ..Lossy::new(Mutex::new(drain)) })
        }
    }
}

/// The root logger, and a guard that flushes every line still queued when it drops: keep it
/// until the process is about to exit.
pub(crate) fn logger(
    format: LogFormat,
    log_level: LogLevel,
    target: &LogTarget,
) -> (Logger, slog_async::AsyncGuard) {
    let full = Arc::new(AtomicU64::new(0));
    let (queue, guard) =
        Queue::start(lines(format, target, Arc::clone(&full)), QUEUE, "fcgi-log", full);
    // Filtered before the queue: a line below the level costs no trip to the thread.
    let drain = queue.filter_level(level(log_level)).ignore_res();
    (Logger::root(drain, o!("pid" => std::process::id())), guard)
}

/// A logger that writes on the calling thread and starts none, for a process whose few lines
/// are not on any request's path: the prefork master's (`role` `master`), which forks, and the
/// master of a file's pools (`role` `pools`).
pub(crate) fn sync_logger(
    format: LogFormat,
    log_level: LogLevel,
    target: &LogTarget,
    role: &'static str,
) -> Logger {
    let values = o!("pid" => std::process::id(), "role" => role);
    let drain = lines(format, target, Arc::default());
    Logger::root(drain.filter_level(level(log_level)).ignore_res(), values)
}

/// A drain that writes through whichever logger is current: a master's logger (the prefork
/// master's, which it holds for its whole life, and the master of pools'), follows a reload's
/// new format and level.
pub(crate) struct Switchable(pub(crate) Arc<Mutex<Logger>>);

impl Drain for Switchable {
    type Ok = ();
    type Err = slog::Never;

    fn log(&self, record: &Record<'_>, values: &OwnedKVList) -> Result<(), slog::Never> {
        // The master has one thread, so the lock is never contended; a poisoned one still
        // holds a usable logger.
        let current = self.0.lock().unwrap_or_else(|p| p.into_inner()).clone();
        Drain::log(&current, record, values)
    }
}

/// `log` with the pool's name on every line (`pool`) when it serves a pool of a config file
/// (`--pool NAME`), as PHP-FPM's log names the pool.
///
/// ```ignore
/// let log = logging::in_pool(log, args.process.pool.as_deref());
/// ```
pub(crate) fn in_pool(log: Logger, pool: Option<&str>) -> Logger {
    match pool {
        Some(pool) => log.new(o!("pool" => pool.to_owned())),
        None => log,
    }
}

/// A logger of its own file that writes on the calling thread (the slow log: a few lines, on
/// no request's path).
pub(crate) fn file_logger(format: LogFormat, target: &LogTarget) -> Logger {
    Logger::root(lines(format, target, Arc::default()), o!("pid" => std::process::id()))
}

/// A named pipe whose reader the test controls: what a log target becomes when its disk stalls
/// (nothing read, writes block once the pipe is full) and recovers (read again).
#[cfg(test)]
pub(crate) mod stalled {
    use std::fs::File;
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    use std::path::{Path, PathBuf};
    use std::sync::{Arc, Mutex};
    use std::thread::JoinHandle;
    use std::time::{Duration, Instant};

    /// The pipe at `path`, its reader open (so that a writer may open it) and not reading.
    pub(crate) struct Stalled {
        pub(crate) path: PathBuf,
        reader: Option<File>,
        read: Arc<Mutex<Vec<u8>>>,
        thread: Option<JoinHandle<()>>,
    }

    impl Stalled {
        pub(crate) fn new(dir: &Path) -> Stalled {
            let path = dir.join("stalled.fifo");
            rustix::fs::mkfifoat(rustix::fs::CWD, &path, rustix::fs::Mode::from_raw_mode(0o600))
                .expect("mkfifo");
            let reader = std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
                .open(&path)
                .unwrap();
            Stalled { path, reader: Some(reader), read: Arc::default(), thread: None }
        }

        /// Starts reading everything, until every writer has closed the pipe.
        pub(crate) fn recover(&mut self) {
            let mut reader = self.reader.take().unwrap();
            rustix::io::ioctl_fionbio(&reader, false).expect("a blocking read end");
            let read = Arc::clone(&self.read);
            self.thread = Some(std::thread::spawn(move || {
                let mut buf = vec![0; 65536];
                while let Ok(n @ 1..) = reader.read(&mut buf) {
                    read.lock().unwrap().extend_from_slice(&buf[..n]);
                }
            }));
        }

        /// Whether what was read so far holds `needle`, within `timeout`.
        pub(crate) fn shows(&self, needle: &str, timeout: Duration) -> bool {
            let deadline = Instant::now() + timeout;
            loop {
                if String::from_utf8_lossy(&self.read.lock().unwrap()).contains(needle) {
                    return true;
                }
                if Instant::now() >= deadline {
                    return false;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        }

        /// Everything read, once every writer closed the pipe.
        pub(crate) fn finish(mut self) -> String {
            self.thread.take().unwrap().join().unwrap();
            String::from_utf8(self.read.lock().unwrap().clone()).unwrap()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

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
                return Err(io::Error::from(rustix::io::Errno::NOSPC));
            }
            self.written.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    /// The number in field `name` of a JSON line, as [`JsonLines`] writes it (`"name":123`).
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
        let json = JsonLines::new(WholeLines::new(flaky));
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
        assert_eq!(lossy.write_failed.load(Ordering::Relaxed), 2);
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

    #[test]
    fn lines_past_the_queue_are_counted_once_each_and_said_to_be_the_queues() {
        const TOTAL: u64 = 10_000;
        let dir = tempfile::tempdir().unwrap();
        let mut pipe = stalled::Stalled::new(dir.path());
        let target = LogTarget::open(Some(&pipe.path)).unwrap();
        let (log, guard) = logger(LogFormat::Json, LogLevel::Info, &target);
        drop(target);
        // A kilobyte a line: the pipe is full after some 64, the queue after 4,096 more.
        let pad = "x".repeat(1024);
        for n in 0..TOTAL {
            slog::info!(log, "line"; "n" => n, "pad" => &pad);
        }
        pipe.recover();
        // Until a line gets through the queue again (each one lost meanwhile counts too).
        let mut sent = TOTAL;
        for k in 0..500 {
            sent += 1;
            slog::info!(log, "final"; "k" => k);
            if pipe.shows(&format!("\"k\":{k}"), Duration::from_millis(50)) {
                break;
            }
        }
        drop(log);
        drop(guard);
        let text = pipe.finish();
        let (mut written, mut dropped) = (0, 0);
        for line in text.lines() {
            match number_field(line, "dropped") {
                Some(n) => {
                    assert_eq!(number_field(line, "queue_full"), Some(n), "{line}");
                    assert_eq!(number_field(line, "write_failed"), Some(0), "{line}");
                    dropped += n;
                }
                None => written += 1,
            }
        }
        assert!(dropped > 0, "the queue overflowed: {written} lines written of {sent}");
        assert_eq!(written + dropped, sent, "every line written or counted, once");
    }

    /// Counts the records it is given.
    struct Counting(Arc<AtomicU64>);

    impl Drain for Counting {
        type Ok = ();
        type Err = slog::Never;

        fn log(&self, _: &Record<'_>, _: &OwnedKVList) -> Result<(), slog::Never> {
            self.0.fetch_add(1, Ordering::Relaxed);
            Ok(())
        }
    }

    #[test]
    fn debug_lines_are_compiled_in_whatever_the_build() {
        // slog leaves out, at compile time, every line below its static maximum level: info
        // in a release build unless a feature raises it. `--log-level debug` must work in the
        // binary that ships, which is a release build.
        assert!(
            slog::__slog_static_max_level().as_usize() >= slog::FilterLevel::Debug.as_usize(),
            "slog's static maximum level is {:?}",
            slog::__slog_static_max_level()
        );
        let count = Arc::new(AtomicU64::new(0));
        let log = Logger::root(Counting(Arc::clone(&count)), o!());
        slog::debug!(log, "a debug line");
        assert_eq!(count.load(Ordering::Relaxed), 1, "the debug line reached the drain");
    }

    #[test]
    fn json_lines_escape_what_json_allows_raw() {
        let flaky = Flaky { failures: Arc::new(Mutex::new(0)), written: Arc::default() };
        let written = Arc::clone(&flaky.written);
        let json = JsonLines::new(WholeLines::new(flaky));
        let log = Logger::root(Mutex::new(json).ignore_res(), o!());
        slog::info!(log, "m"; "uri" => "/a\x7f\u{85}\u{9b}\u{2028}\u{2029}\n\u{a0}é€\u{2030}");
        let text = String::from_utf8(written.lock().unwrap().clone()).unwrap();
        // NBSP, é, € and U+2030 are no controls: as they are.
        let expected = "\"uri\":\"/a\\u007f\\u0085\\u009b\\u2028\\u2029\\n\u{a0}é€\u{2030}\"";
        assert!(text.contains(expected), "{text:?}");
        assert_eq!(text.lines().count(), 1, "{text:?}");
    }
}
