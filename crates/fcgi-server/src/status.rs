//! What a running server is doing, for a process manager: requests served, requests running,
//! how long the oldest has run, and which requests ran past a time limit.
//!
//! A prefork worker reports these to its master (busy or idle, alive or stuck); the slow-request
//! limit is how `--request-timeout` finds the requests after which a worker should be recycled.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

use crate::metrics::{duration_bucket, Metrics, DURATION_SLOTS};

/// A snapshot of a server's work, from [`StatusHandle::snapshot`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Status {
    /// Requests whose handler returned, in all.
    pub served: u64,
    /// Requests whose handler is running now.
    pub in_flight: usize,
    /// How long the longest-running handler has been running; `None` when none runs.
    pub oldest: Option<Duration>,
}

/// A request whose handler ran longer than the limit given to [`StatusHandle::set_slow_limit`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SlowRequest {
    /// REQUEST_METHOD, if the web server sent it.
    pub method: Option<String>,
    /// REQUEST_URI, if the web server sent it.
    pub uri: Option<String>,
    /// How long its handler ran.
    pub duration: Duration,
}

/// Reads a server's [`Status`] from any thread; from [`Server::status_handle`].
///
/// ```no_run
/// let server = fcgi_server::Server::builder().build();
/// let status = server.status_handle();
/// status.set_slow_limit(Some(std::time::Duration::from_secs(30)));
/// std::thread::spawn(move || loop {
///     std::thread::sleep(std::time::Duration::from_secs(1));
///     let now = status.snapshot();
///     println!("{} served, {} running", now.served, now.in_flight);
///     for slow in status.take_slow() {
///         println!("{:?} took {:?}", slow.uri, slow.duration);
///     }
/// });
/// server.serve()?;
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// [`Server::status_handle`]: crate::Server::status_handle
#[derive(Clone, Debug, Default)]
pub struct StatusHandle {
    state: Arc<StatusState>,
}

/// One pool thread as the status page's `full` lists it (the part of a PHP-FPM process it
/// plays), from [`StatusHandle::threads`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ThreadReport {
    /// The thread's kernel id (its entry in `/proc/PID/task`).
    pub tid: u64,
    /// The thread's name.
    pub name: String,
    /// When it ran its first request, in seconds since the Unix epoch.
    pub start_unix: u64,
    /// Requests it ran, the running one included.
    pub requests: u64,
    /// Whether a request runs on it now.
    pub running: bool,
    /// The running request's age, or the last one's duration.
    pub duration: Duration,
    /// The running (else last) request's facts.
    pub request: RequestFacts,
}

/// What the status page and the slow log say of one request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RequestFacts {
    /// REQUEST_METHOD.
    pub method: Option<String>,
    /// REQUEST_URI (it carries the query string).
    pub uri: Option<String>,
    /// REMOTE_ADDR.
    pub remote: Option<String>,
    /// CONTENT_LENGTH.
    pub content_length: u64,
    /// REMOTE_USER.
    pub user: Option<String>,
    /// SCRIPT_FILENAME, else SCRIPT_NAME.
    pub script: Option<String>,
    /// The program the handler runs for the request (a CGI program), once it said which
    /// ([`Request::note_child`](crate::Request::note_child)).
    pub child_pid: Option<u32>,
}

/// The most bytes of each string [`RequestFacts`] keeps (the URI, the script, the user, the
/// method): about what PHP-FPM's scoreboard keeps of a request. The status page's `full` lists
/// every thread's facts, and without a cut its size was the peers' to choose (64 threads with
/// 30 KB URIs made a 22 MB page); the slow log names a request by the same facts.
pub const FACT_MAX_BYTES: usize = 1024;

/// `text` cut to at most `max` bytes, at a character boundary.
fn cut(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

impl RequestFacts {
    /// The facts of a request whose params `param` looks up, each string cut to
    /// [`FACT_MAX_BYTES`].
    pub(crate) fn from_params<'a>(
        param: impl Fn(&str) -> Option<&'a str>,
        content_length: u64,
    ) -> RequestFacts {
        let owned = |name: &str| param(name).map(|v| cut(v, FACT_MAX_BYTES).to_owned());
        RequestFacts {
            method: owned("REQUEST_METHOD"),
            uri: owned("REQUEST_URI"),
            remote: owned("REMOTE_ADDR"),
            content_length,
            user: owned("REMOTE_USER"),
            script: owned("SCRIPT_FILENAME").or_else(|| owned("SCRIPT_NAME")),
            child_pid: None,
        }
    }
}

/// A running request that ran past the slow-request limit, from
/// [`StatusHandle::take_newly_slow`]: reported once, while it still runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SlowRunning {
    /// How long it has run.
    pub elapsed: Duration,
    /// The name of the thread that runs it.
    pub thread: String,
    /// That thread's kernel id.
    pub tid: u64,
    /// The request.
    pub request: RequestFacts,
}

/// One pool thread's entry, written by that thread only (its lock is uncontended but for the
/// status page and the slow-log check).
#[derive(Debug, Default)]
struct ThreadEntry {
    report: ThreadReport,
    /// When the running request started.
    since: Option<Instant>,
    /// The running request was already reported slow.
    slow_reported: bool,
}

#[derive(Debug, Default)]
pub(crate) struct StatusState {
    served: AtomicU64,
    accepted: AtomicU64,
    active: AtomicU64,
    max_active: AtomicU64,
    max_children_reached: AtomicU64,
    overloaded: AtomicU64,
    queue_timeouts: AtomicU64,
    spooled_bytes: AtomicU64,
    slow_running: AtomicU64,
    status_classes: [AtomicU64; 5],
    duration_buckets: [AtomicU64; DURATION_SLOTS],
    duration_sum_us: AtomicU64,
    /// Whether anyone asked for a handle: only then is each running request kept in its
    /// thread's entry (a few small copies per request that a server nobody watches skips).
    watched: AtomicBool,
    /// Every pool thread that ran a request while watched; a thread that exits drops its
    /// entry, and the dead weak references are pruned on the next registration.
    threads: Mutex<Vec<Weak<Mutex<ThreadEntry>>>>,
    /// In milliseconds; 0 when there is no limit.
    slow_limit_ms: AtomicU64,
    slow: Mutex<Vec<SlowRequest>>,
    /// When serving started, in seconds since the epoch (0 before).
    start_unix: AtomicU64,
    /// The pool's gauges, set by the server once it has a pool.
    pool: OnceLock<PoolGauges>,
    /// Other processes' counters (a prefork worker's siblings), for the status page.
    peers: OnceLock<Box<dyn PeerSource>>,
    /// The app's own processes, shown in place of the server's threads.
    app_processes: OnceLock<AppSource>,
}

/// An [`AppProcessSource`], which has no `Debug` of its own.
struct AppSource(AppProcessSource);

impl std::fmt::Debug for AppSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AppSource")
    }
}

/// What reads an app's own processes for the status page: see [`AppProcesses`].
pub type AppProcessSource = Box<dyn Fn() -> AppProcesses + Send + Sync>;

/// Processes an app runs of its own (`fcgi-exec`'s program processes), which the status page
/// shows with PHP-FPM's meaning in place of the server's threads: its idle, active and total
/// processes, max active processes, max children reached, the listen queue (requests
/// waiting for a process), and with `full` one entry per process.
///
/// ```
/// use fcgi_server::{AppProcess, AppProcesses};
///
/// let now = AppProcesses {
///     model: "static",
///     idle: 1,
///     processes: vec![AppProcess { pid: 4242, requests: 7, ..AppProcess::default() }],
///     ..AppProcesses::default()
/// };
/// assert_eq!(now.processes.len(), 1);
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AppProcesses {
    /// The process manager's name ("static", "dynamic", "ondemand").
    pub model: &'static str,
    /// Idle processes.
    pub idle: u64,
    /// Busy processes.
    pub active: u64,
    /// Processes being stopped (counted in the total).
    pub finishing: u64,
    /// The most busy at once.
    pub max_active: u64,
    /// Times a request found every process busy and none could start.
    pub max_children_reached: u64,
    /// Requests waiting for a process now.
    pub waiting: u64,
    /// The most that waited at once.
    pub max_waiting: u64,
    /// Why no process runs, while none can (the program's last exit and output line).
    pub down: Option<String>,
    /// Each process.
    pub processes: Vec<AppProcess>,
}

/// One process of [`AppProcesses`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AppProcess {
    /// Its pid.
    pub pid: u64,
    /// "Idle", "Running" or "Finishing".
    pub state: &'static str,
    /// When it started, in seconds since the Unix epoch.
    pub start_unix: u64,
    /// Requests it was given.
    pub requests: u64,
    /// The running request's age, else the last one's duration.
    pub duration: std::time::Duration,
    /// The running (or last) request's method.
    pub method: Option<String>,
    /// The running (or last) request's URI.
    pub uri: Option<String>,
    /// CPU used by its last request, in percent of its duration.
    pub last_cpu_percent: f64,
    /// Its resident memory after its last request, in bytes.
    pub last_memory: u64,
}

/// The source of the other processes' counters that a status page adds to its own: a
/// prefork worker reads them from memory it shares with its siblings and its master.
pub trait PeerSource: Send + Sync + std::fmt::Debug {
    /// The other live processes' latest counters, and the totals of those that exited.
    fn peers(&self) -> (Vec<Metrics>, Metrics);
    /// The process manager's name for the status page ("static", "dynamic").
    fn process_manager(&self) -> &'static str;
}

/// Reads the pool's gauges, installed by [`Server::serve`](crate::Server::serve), with the
/// pool's thread cap and queue capacity.
pub(crate) struct PoolGauges {
    pub(crate) stats: Box<dyn Fn() -> fcgi_pool::Stats + Send + Sync>,
    pub(crate) max_threads: usize,
    pub(crate) queue: usize,
}

impl std::fmt::Debug for PoolGauges {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PoolGauges").field("max_threads", &self.max_threads).finish()
    }
}

thread_local! {
    /// This thread's entries, by the address of the status they belong to (a thread serves
    /// one server; tests run several servers in one process).
    static ENTRY: std::cell::RefCell<Vec<(usize, Arc<Mutex<ThreadEntry>>)>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// Records `pid` as the program that the request running on this thread runs, for the slow
/// log and the status page. Costs nothing where nobody watches (no entry).
pub(crate) fn note_child(pid: u32) {
    ENTRY.with(|entries| {
        for (_, entry) in entries.borrow().iter() {
            let mut entry = lock(entry);
            if entry.report.running {
                entry.report.request.child_pid = Some(pid);
            }
        }
    });
}

/// The calling thread's kernel id.
fn gettid() -> u64 {
    u64::try_from(rustix::thread::gettid().as_raw_nonzero().get()).unwrap_or(0)
}

/// Now, in seconds since the Unix epoch.
pub(crate) fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

impl StatusHandle {
    /// What the server is doing now.
    pub fn snapshot(&self) -> Status {
        let mut oldest: Option<Duration> = None;
        for entry in self.entries() {
            if let Some(since) = lock(&entry).since {
                let age = since.elapsed();
                oldest = Some(oldest.map_or(age, |o| o.max(age)));
            }
        }
        Status {
            served: self.state.served.load(Ordering::Relaxed),
            in_flight: usize::try_from(self.state.active.load(Ordering::Relaxed))
                .unwrap_or(usize::MAX),
            oldest,
        }
    }

    /// This process's counters now.
    pub fn metrics(&self) -> Metrics {
        let s = &*self.state;
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let pool = s.pool.get().map(|gauges| (gauges.stats)()).unwrap_or_default();
        let (max_threads, queue) = s.pool.get().map_or((0, 0), |g| (g.max_threads, g.queue));
        Metrics {
            pid: u64::from(std::process::id()),
            start_unix: load(&s.start_unix),
            accepted: load(&s.accepted),
            served: load(&s.served),
            slow: load(&s.slow_running),
            max_active: load(&s.max_active),
            max_children_reached: load(&s.max_children_reached),
            overloaded: load(&s.overloaded),
            queue_timeouts: load(&s.queue_timeouts),
            spooled_bytes: load(&s.spooled_bytes),
            status_classes: std::array::from_fn(|i| load(&s.status_classes[i])),
            duration_buckets: std::array::from_fn(|i| load(&s.duration_buckets[i])),
            duration_sum_us: load(&s.duration_sum_us),
            active: load(&s.active),
            idle: pool.idle as u64,
            threads: pool.threads as u64,
            max_threads: max_threads as u64,
            queued: pool.queued as u64,
            queue_capacity: queue as u64,
        }
    }

    /// Every pool thread that has run a request and still lives, with its running (else
    /// last) request.
    pub fn threads(&self) -> Vec<ThreadReport> {
        let mut out: Vec<ThreadReport> = self
            .entries()
            .iter()
            .map(|entry| {
                let entry = lock(entry);
                let mut report = entry.report.clone();
                if let Some(since) = entry.since {
                    report.duration = since.elapsed();
                }
                report
            })
            .collect();
        out.sort_by_key(|t| t.tid);
        out
    }

    /// The running requests that have run past `limit` and were not reported yet: each is
    /// reported once, and counted in [`Metrics::slow`].
    pub fn take_newly_slow(&self, limit: Duration) -> Vec<SlowRunning> {
        let mut out = Vec::new();
        for entry in self.entries() {
            let mut entry = lock(&entry);
            let Some(since) = entry.since else { continue };
            let elapsed = since.elapsed();
            if entry.slow_reported || elapsed < limit {
                continue;
            }
            entry.slow_reported = true;
            self.state.slow_running.fetch_add(1, Ordering::Relaxed);
            out.push(SlowRunning {
                elapsed,
                thread: entry.report.name.clone(),
                tid: entry.report.tid,
                request: entry.report.request.clone(),
            });
        }
        out
    }

    /// Records every request whose handler runs longer than `limit` (none with `None`), for
    /// [`take_slow`](StatusHandle::take_slow).
    pub fn set_slow_limit(&self, limit: Option<Duration>) {
        let ms = limit.map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1));
        self.state.slow_limit_ms.store(ms, Ordering::Relaxed);
    }

    /// The slow requests finished since the last call.
    pub fn take_slow(&self) -> Vec<SlowRequest> {
        std::mem::take(&mut *lock(&self.state.slow))
    }

    /// Adds the counters of other processes (a prefork worker's siblings) to the status page.
    /// Only the first call counts.
    pub fn set_peers(&self, source: Box<dyn PeerSource>) {
        let _ = self.state.peers.set(source);
    }

    /// Shows the app's own processes on the status page (see [`AppProcesses`]). Only the
    /// first call counts.
    pub fn set_app_processes(&self, source: AppProcessSource) {
        let _ = self.state.app_processes.set(AppSource(source));
    }

    /// The app's processes now, if [`set_app_processes`](StatusHandle::set_app_processes)
    /// was called.
    pub(crate) fn app_processes(&self) -> Option<AppProcesses> {
        self.state.app_processes.get().map(|source| (source.0)())
    }

    /// The other processes' counters, if [`set_peers`](StatusHandle::set_peers) was called.
    pub(crate) fn peers(&self) -> Option<&dyn PeerSource> {
        self.state.peers.get().map(|b| &**b)
    }

    /// Installs the pool's gauges and the start time; called once serving starts.
    pub(crate) fn serving(&self, gauges: PoolGauges) {
        let _ = self.state.pool.set(gauges);
        self.state.start_unix.store(unix_now(), Ordering::Relaxed);
    }

    /// Counts a request answered `503` by the server itself.
    pub(crate) fn overloaded(&self, queue_timeout: bool) {
        self.state.overloaded.fetch_add(1, Ordering::Relaxed);
        if queue_timeout {
            self.state.queue_timeouts.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Counts body bytes written to a spool file.
    pub(crate) fn spooled(&self, bytes: u64) {
        self.state.spooled_bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Counts a request that found every thread busy.
    pub(crate) fn all_busy(&self) {
        self.state.max_children_reached.fetch_add(1, Ordering::Relaxed);
    }

    fn entries(&self) -> Vec<Arc<Mutex<ThreadEntry>>> {
        lock(&self.state.threads).iter().filter_map(Weak::upgrade).collect()
    }

    /// This thread's entry, registered on its first request.
    fn entry(&self) -> Arc<Mutex<ThreadEntry>> {
        let key = Arc::as_ptr(&self.state) as usize;
        ENTRY.with(|entries| {
            let mut entries = entries.borrow_mut();
            if let Some((_, entry)) = entries.iter().find(|(k, _)| *k == key) {
                return Arc::clone(entry);
            }
            let current = std::thread::current();
            let entry = Arc::new(Mutex::new(ThreadEntry {
                report: ThreadReport {
                    tid: gettid(),
                    name: current.name().unwrap_or("-").to_owned(),
                    start_unix: unix_now(),
                    ..ThreadReport::default()
                },
                ..ThreadEntry::default()
            }));
            {
                let mut threads = lock(&self.state.threads);
                threads.retain(|weak| weak.strong_count() > 0);
                threads.push(Arc::downgrade(&entry));
            }
            entries.push((key, Arc::clone(&entry)));
            entry
        })
    }

    /// Marks a handler as running on this thread until the returned guard ends; `facts` are
    /// kept for the status page and the slow log when someone watches.
    pub(crate) fn begin(&self, facts: impl FnOnce() -> RequestFacts) -> Running {
        let started = Instant::now();
        let s = &*self.state;
        // Unwatched (no status page, no process manager), a request costs one counter: the
        // others are shared atomics that every thread bumps, worth it only when read.
        let entry = s.watched.load(Ordering::Relaxed).then(|| {
            s.accepted.fetch_add(1, Ordering::Relaxed);
            let active = s.active.fetch_add(1, Ordering::Relaxed) + 1;
            s.max_active.fetch_max(active, Ordering::Relaxed);
            let entry = self.entry();
            {
                let mut e = lock(&entry);
                e.since = Some(started);
                e.slow_reported = false;
                e.report.requests += 1;
                e.report.running = true;
                e.report.request = facts();
            }
            entry
        });
        Running { state: Arc::clone(&self.state), entry, started, ended: false }
    }

    /// Marks the status as read by someone: running requests are tracked from now on.
    pub(crate) fn watch(&self) {
        self.state.watched.store(true, Ordering::Relaxed);
    }
}

/// A running handler; dropping it (even in a panic) counts it as served.
pub(crate) struct Running {
    state: Arc<StatusState>,
    /// Its thread's entry, when running requests are tracked.
    entry: Option<Arc<Mutex<ThreadEntry>>>,
    started: Instant,
    ended: bool,
}

impl Running {
    /// Ends the handler's run with the response's `status`, recording it when it was slow.
    pub(crate) fn end(mut self, method: Option<&str>, uri: Option<&str>, status: u16) {
        let duration = self.started.elapsed();
        let s = &*self.state;
        // Unwatched, nobody reads the classes and the histogram.
        if self.entry.is_some() {
            if let Some(class) = usize::from(status / 100).checked_sub(1).filter(|c| *c < 5) {
                s.status_classes[class].fetch_add(1, Ordering::Relaxed);
            }
            s.duration_buckets[duration_bucket(duration)].fetch_add(1, Ordering::Relaxed);
            s.duration_sum_us.fetch_add(
                u64::try_from(duration.as_micros()).unwrap_or(u64::MAX),
                Ordering::Relaxed,
            );
        }
        let limit = s.slow_limit_ms.load(Ordering::Relaxed);
        if limit > 0 && duration >= Duration::from_millis(limit) {
            lock(&s.slow).push(SlowRequest {
                method: method.map(str::to_owned),
                uri: uri.map(str::to_owned),
                duration,
            });
        }
        self.finish(duration);
    }

    fn finish(&mut self, duration: Duration) {
        if self.ended {
            return;
        }
        self.ended = true;
        if let Some(entry) = &self.entry {
            let mut e = lock(entry);
            // Its thread may have let go of it (an owned handler went on elsewhere) and run
            // others since: the entry is this request's only while it says so.
            if e.since == Some(self.started) {
                e.since = None;
                e.report.running = false;
                e.report.duration = duration;
            }
            drop(e);
            self.state.active.fetch_sub(1, Ordering::Relaxed);
        }
        self.state.served.fetch_add(1, Ordering::Relaxed);
    }
}

impl Running {
    /// What this request marks in its thread's entry, for the thread to clear when it lets
    /// go of the request before it ends (see [`ThreadMark::release`]).
    pub(crate) fn thread_mark(&self) -> ThreadMark {
        ThreadMark { entry: self.entry.clone(), started: self.started }
    }
}

/// A request's mark on the entry of the thread that began it. A handler that takes its
/// request along ([`Handler::handle_owned`](crate::Handler::handle_owned)) frees the thread
/// before the request ends: the thread is then shown idle, and the request is counted as
/// running (the status page's totals) until it ends, on its thread or another.
pub(crate) struct ThreadMark {
    entry: Option<Arc<Mutex<ThreadEntry>>>,
    started: Instant,
}

impl ThreadMark {
    /// The thread is done with the request: if the entry still shows it, it shows the thread
    /// idle now.
    pub(crate) fn release(self) {
        if let Some(entry) = &self.entry {
            let mut e = lock(entry);
            if e.since == Some(self.started) {
                e.since = None;
                e.report.running = false;
                e.report.duration = self.started.elapsed();
            }
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let duration = self.started.elapsed();
        self.finish(duration);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_running_and_served_and_keeps_slow_requests() {
        let status = StatusHandle::default();
        status.watch();
        status.set_slow_limit(Some(Duration::from_millis(20)));
        let fact = |uri: &str| RequestFacts { uri: Some(uri.into()), ..RequestFacts::default() };
        let fast = status.begin(|| fact("/fast"));
        let (started, finish) = (std::sync::mpsc::channel(), std::sync::mpsc::channel::<()>());
        let other = status.clone();
        let slow_thread = std::thread::spawn(move || {
            let slow = other.begin(|| fact("/slow"));
            started.0.send(()).expect("send");
            finish.1.recv().expect("recv");
            slow.end(Some("GET"), Some("/slow"), 200);
        });
        started.1.recv().expect("started");
        let now = status.snapshot();
        assert_eq!((now.served, now.in_flight), (0, 2));
        assert!(now.oldest.is_some());
        fast.end(Some("GET"), Some("/fast"), 404);
        std::thread::sleep(Duration::from_millis(30));
        let newly = status.take_newly_slow(Duration::from_millis(20));
        assert_eq!(newly.len(), 1, "only the running one, once");
        assert_eq!(newly[0].request.uri.as_deref(), Some("/slow"));
        assert!(status.take_newly_slow(Duration::from_millis(20)).is_empty());
        finish.0.send(()).expect("send");
        slow_thread.join().expect("join");
        let now = status.snapshot();
        assert_eq!((now.served, now.in_flight, now.oldest), (2, 0, None));
        let slow = status.take_slow();
        assert_eq!(slow.len(), 1);
        assert_eq!(slow[0].uri.as_deref(), Some("/slow"));
        assert!(status.take_slow().is_empty());
        let metrics = status.metrics();
        assert_eq!(
            (metrics.accepted, metrics.served, metrics.slow, metrics.max_active),
            (2, 2, 1, 2)
        );
        assert_eq!(metrics.status_classes, [0, 1, 0, 1, 0]);
        assert_eq!(metrics.duration_buckets.iter().sum::<u64>(), 2);
        // The slow thread exited: its entry went with it.
        assert_eq!(status.threads().len(), 1);
    }

    #[test]
    fn facts_are_cut_at_a_character_boundary() {
        let table = [
            ("", 4, ""),
            ("abcd", 4, "abcd"),
            ("abcde", 4, "abcd"),
            ("abé", 3, "ab"),
            ("abé", 4, "abé"),
            ("日本", 5, "日"),
            ("日本", 2, ""),
        ];
        for (text, max, expected) in table {
            assert_eq!(cut(text, max), expected, "{text:?} to {max}");
        }
        let long = "x".repeat(30_000);
        assert_eq!(cut(&long, FACT_MAX_BYTES).len(), 1024);
    }
}
