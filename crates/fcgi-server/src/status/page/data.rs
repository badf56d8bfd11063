//! What the status page shows, gathered once ([`PageData`]), and the fields every format
//! writes from it, in FPM's order and names: the renderers' shared ground.

use crate::status::metrics::Metrics;

/// The listen queue, as FPM reports it: connections waiting to be accepted now, the most seen,
/// and the queue's size.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct ListenQueue {
    pub(crate) now: u64,
    pub(crate) max: u64,
    pub(crate) len: u64,
}

/// One process of FPM's `full` list: a pool thread, or a prefork worker.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct ProcessEntry {
    pub(crate) pid: u64,
    /// "Idle" or "Running", FPM's words.
    pub(crate) running: bool,
    pub(crate) start_unix: u64,
    pub(crate) requests: u64,
    /// The running request's age, or the last one's duration, in microseconds.
    pub(crate) duration_us: u64,
    pub(crate) method: Option<String>,
    pub(crate) uri: Option<String>,
    pub(crate) content_length: u64,
    pub(crate) user: Option<String>,
    pub(crate) script: Option<String>,
    /// The thread's name (fcgi-rs's own field).
    pub(crate) thread: Option<String>,
    /// "Finishing": a process being stopped.
    pub(crate) finishing: bool,
    /// The last request's CPU, in percent of its duration, and the memory after it.
    pub(crate) last_cpu_percent: f64,
    pub(crate) last_memory: u64,
}

/// Everything the status page shows, gathered at once.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct PageData {
    pub(crate) pool: String,
    pub(crate) process_manager: String,
    pub(crate) now_unix: u64,
    /// The sum over every process (one, or every prefork worker).
    pub(crate) metrics: Metrics,
    /// The earliest start among them.
    pub(crate) start_unix: u64,
    pub(crate) listen: ListenQueue,
    /// Prefork workers counted (1 in one process).
    pub(crate) workers: u64,
    /// Why the app's processes cannot run, while they cannot ([`crate::AppProcesses`]).
    pub(crate) down: Option<String>,
    pub(crate) processes: Vec<ProcessEntry>,
}

/// Seconds from `start` to the page's time.
pub(crate) fn since(data: &PageData, start: u64) -> u64 {
    data.now_unix.saturating_sub(start)
}

/// FPM's fields, in FPM's order, as (name, value) pairs of integers.
pub(crate) fn pool_fields(data: &PageData) -> [(&'static str, u64); 11] {
    let m = &data.metrics;
    [
        ("start since", since(data, data.start_unix)),
        ("accepted conn", m.accepted),
        ("listen queue", data.listen.now),
        ("max listen queue", data.listen.max),
        ("listen queue len", data.listen.len),
        ("idle processes", m.idle),
        ("active processes", m.active),
        ("total processes", m.idle + m.active),
        ("max active processes", m.max_active),
        ("max children reached", m.max_children_reached),
        ("slow requests", m.slow),
    ]
}

/// fcgi-rs's own counters, as (name, value) pairs.
pub(crate) fn own_fields(data: &PageData) -> [(&'static str, u64); 8] {
    let m = &data.metrics;
    [
        ("workers", data.workers),
        ("threads", m.threads),
        ("max threads", m.max_threads),
        ("queued", m.queued),
        ("queue capacity", m.queue_capacity),
        ("overloaded", m.overloaded),
        ("queue timeouts", m.queue_timeouts),
        ("spooled bytes", m.spooled_bytes),
    ]
}

/// Microseconds as seconds, exactly enough for a sum.
pub(crate) fn seconds(us: u64) -> String {
    format!("{}.{:06}", us / 1_000_000, us % 1_000_000)
}

/// The status classes the responses are counted by.
pub(crate) const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// A process's state in FPM's words.
pub(crate) fn state(p: &ProcessEntry) -> &'static str {
    if p.finishing {
        "Finishing"
    } else if p.running {
        "Running"
    } else {
        "Idle"
    }
}

/// A text field, or FPM's `-` when there is none.
pub(crate) fn or_dash(value: &Option<String>) -> &str {
    value.as_deref().unwrap_or("-")
}

/// Unix seconds in FPM's text format (`%d/%b/%Y:%H:%M:%S %z`), in UTC.
pub(crate) fn clf_time(unix: u64) -> String {
    let time = i64::try_from(unix)
        .ok()
        .and_then(|unix| time::OffsetDateTime::from_unix_timestamp(unix).ok())
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    time.format(CLF).unwrap_or_default()
}

/// nginx's `$time_local` and FPM's `%t`, in UTC.
const CLF: &[time::format_description::BorrowedFormatItem<'_>] = time::macros::format_description!(
    "[day]/[month repr:short]/[year]:[hour]:[minute]:[second] +0000"
);
