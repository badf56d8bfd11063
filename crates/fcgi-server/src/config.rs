//! Every limit, timeout and default of the server, in one place, each with its reason.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use fcgi_codec::ParamsLimits;

/// How the server behaves: limits, timeouts, pool sizes. `Config::default()` is what
/// `fcgi serve` uses unless told otherwise.
///
/// ```
/// use std::time::Duration;
/// use fcgi_server::Config;
///
/// let config = Config { max_threads: 64, idle_timeout: Duration::from_secs(10), ..Config::default() };
/// assert_eq!(config.max_conns, Config::default().max_conns);
/// ```
#[derive(Clone, Debug)]
pub struct Config {
    /// Idle threads the pool keeps ready (flup's `minSpare`).
    pub min_spare: usize,
    /// Idle threads above which the surplus retire (flup's `maxSpare`).
    pub max_spare: usize,
    /// Most requests running at once (flup's `maxThreads`).
    pub max_threads: usize,
    /// Requests that may wait for a thread when all `max_threads` are busy; one more is
    /// answered `503` with `FCGI_OVERLOADED` at once. Zero refuses at once whenever every
    /// thread is busy.
    pub queue: usize,
    /// How long a request may wait in the queue for a thread; then it is answered `503` with
    /// `Retry-After` and `FCGI_OVERLOADED`, so that a load balancer can try another host
    /// instead of waiting behind stuck handlers. `None`: as long as the web server waits.
    pub queue_timeout: Option<Duration>,
    /// Most requests open at once on one connection (params or body still arriving, queued,
    /// running); one more is answered `503` with `FCGI_OVERLOADED` and the connection lives
    /// on. Advertised as `FCGI_MAX_REQS`.
    pub max_conn_requests: usize,
    /// Bytes of memory that all unfinished requests together may hold: their params, and the
    /// parts of their bodies kept in memory. Past it, bodies go to the spool file and a new
    /// request (or one whose params still grow) is answered `503`: whatever the peers send,
    /// request state stays within this.
    pub memory_budget: usize,
    /// Most connections open at once; the requests of one more are answered `503` with
    /// `FCGI_OVERLOADED` and it is closed. Advertised as `FCGI_MAX_CONNS`. Idle connections
    /// cost no thread, only a little memory, so this can be large.
    pub max_conns: usize,
    /// Limits on each request's params stream (default 64 KiB, 1,024 pairs): over them the
    /// request gets `431`.
    pub params_limits: ParamsLimits,
    /// Largest request body; over it the request gets `413`. `None`: no limit (the body is
    /// spooled to disk past `spool_memory`, so memory stays bounded either way).
    pub max_body: Option<u64>,
    /// Bytes of each request body kept in memory before the rest goes to a temporary file.
    pub spool_memory: usize,
    /// Where request bodies spill to; `None` is the system's temporary directory.
    pub spool_dir: Option<PathBuf>,
    /// How long a kept connection with no request may stay idle before it is closed.
    pub idle_timeout: Duration,
    /// How long a request may go without a byte of its own input (params, body) while that
    /// input is incomplete, and how long a connection may sit on a partial record; then the
    /// request is answered `408` (the connection, for a partial record, is closed). Bytes of
    /// other requests on the same connection do not count.
    pub read_timeout: Duration,
    /// The slowest a request's input may arrive, in bytes per second, once `read_timeout` has
    /// passed since it began: each request has `read_timeout`, plus a second for every
    /// `min_input_rate` bytes it has received, to receive all of its input (as Apache's
    /// `mod_reqtimeout` `MinRate`). Zero: no rate, only `read_timeout` between bytes.
    pub min_input_rate: u64,
    /// How long a write may wait for the web server to read; then the connection is closed.
    pub write_timeout: Duration,
    /// How long the web server may wait for a request once it is handed to a handler, as
    /// PHP-FPM's `request_terminate_timeout`: then the server answers it itself, `504` if
    /// nothing of it was sent, cut short (as a failed handler's response is) otherwise; the
    /// handler's later output goes nowhere. The handler's thread is not stopped (no thread
    /// can be): fcgi-prefork retires the worker, which exits once its other requests are done.
    /// `None`: as long as the handler takes.
    pub request_timeout: Option<Duration>,
    /// Peers allowed to connect over TCP; `None` allows all. `FCGI_WEB_SERVER_ADDRS` adds to it.
    pub allow: Option<Vec<IpAddr>>,
    /// Seconds in the `Retry-After` header of a `503` for overload.
    pub retry_after: u32,
    /// Log one line per request, failed ones included, tagged [`ACCESS_TAG`](crate::ACCESS_TAG)
    /// (client address, method, URI, status, bytes, duration, request id, outcome), for
    /// `fcgi serve --access-log`.
    pub access_log: bool,
    /// SCRIPT_NAME of the status page the server answers itself, whatever the app
    /// (PHP-FPM's `pm.status_path`); `None`: no status page.
    pub status_path: Option<String>,
    /// SCRIPT_NAME of the ping the server answers itself (PHP-FPM's `ping.path`).
    pub ping_path: Option<String>,
    /// The ping's body (PHP-FPM's `ping.response`).
    pub ping_response: String,
    /// The pool's name on the status page (PHP-FPM's pool name).
    pub pool_name: String,
    /// How long a graceful stop lets running requests finish: the stop that SIGTERM asks of a
    /// server that handles its signals ([`ServerBuilder::handle_signals`]). A
    /// [`ShutdownHandle`] is given its own.
    ///
    /// [`ServerBuilder::handle_signals`]: crate::ServerBuilder::handle_signals
    /// [`ShutdownHandle`]: crate::ShutdownHandle
    pub graceful_timeout: Duration,
    /// A request still running after this long is logged once, while it runs, and counted in
    /// the status page's "slow requests" (PHP-FPM's `request_slowlog_timeout`).
    pub slow_request: Option<Duration>,
}

impl Config {
    /// 4 spare threads ready: a small burst starts at once, without spawning.
    pub const DEFAULT_MIN_SPARE: usize = 4;
    /// 16 idle threads kept at most: enough for the usual concurrency behind one nginx worker.
    pub const DEFAULT_MAX_SPARE: usize = 16;
    /// 64 requests at once: twice what `keepalive 32` in nginx can send, and a thread's stack is
    /// only reserved, not committed, until it is used.
    pub const DEFAULT_MAX_THREADS: usize = 64;
    /// 1,024 waiting requests: a burst from 256 kept nginx connections waits a few
    /// milliseconds instead of failing, and a stuck application still answers `503` quickly.
    pub const DEFAULT_QUEUE: usize = 1024;
    /// 5 s in the queue: far more than a burst costs, far less than nginx's 60 s
    /// `fastcgi_read_timeout`, so that a 503 reaches the balancer while a retry still helps.
    pub const DEFAULT_QUEUE_TIMEOUT: Duration = Duration::from_secs(5);
    /// 128 requests per connection: nginx, Apache and lighttpd send one at a time, and HAProxy
    /// multiplexing over a few connections needs a few dozen; the spec's ids allow 65,535.
    pub const DEFAULT_MAX_CONN_REQUESTS: usize = 128;
    /// 64 MiB for all unfinished requests: 256 bodies at the full in-memory threshold, or
    /// 1,000 requests with 64 KiB of params each; the rest of a body goes to the spool file.
    pub const DEFAULT_MEMORY_BUDGET: usize = 64 * 1024 * 1024;
    /// 500 bytes per second, Apache `mod_reqtimeout`'s default `MinRate` for bodies: a
    /// real upload on a bad link is far faster, a trickle that only holds a request is not.
    pub const DEFAULT_MIN_INPUT_RATE: u64 = 500;
    /// 10,000 connections: far past what one nginx opens, bounded to protect descriptors.
    pub const DEFAULT_MAX_CONNS: usize = 10_000;
    /// 256 KiB in memory per body: most form posts fit; uploads go to disk.
    pub const DEFAULT_SPOOL_MEMORY: usize = 256 * 1024;
    /// 60 s: nginx's own `keepalive_timeout` for upstream connections is 60 s.
    pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
    /// 60 s: nginx's `fastcgi_send_timeout` and `fastcgi_read_timeout` are 60 s.
    pub const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(60);
    /// 60 s, as nginx's `fastcgi_read_timeout`.
    pub const DEFAULT_WRITE_TIMEOUT: Duration = Duration::from_secs(60);
    /// 30 s, as `fcgi serve --graceful-timeout`: most requests finish in far less, and a
    /// supervisor's own stop timeout (systemd's `TimeoutStopSec`, 90 s) is longer.
    pub const DEFAULT_GRACEFUL_TIMEOUT: Duration = Duration::from_secs(30);
    /// "pong", PHP-FPM's default `ping.response`, which FPM health checks expect.
    pub const DEFAULT_PING_RESPONSE: &'static str = "pong";
    /// "www", PHP-FPM's default pool name, which FPM dashboards often filter on.
    pub const DEFAULT_POOL_NAME: &'static str = "www";
}

impl Default for Config {
    fn default() -> Self {
        Config {
            min_spare: Self::DEFAULT_MIN_SPARE,
            max_spare: Self::DEFAULT_MAX_SPARE,
            max_threads: Self::DEFAULT_MAX_THREADS,
            queue: Self::DEFAULT_QUEUE,
            queue_timeout: Some(Self::DEFAULT_QUEUE_TIMEOUT),
            max_conn_requests: Self::DEFAULT_MAX_CONN_REQUESTS,
            memory_budget: Self::DEFAULT_MEMORY_BUDGET,
            max_conns: Self::DEFAULT_MAX_CONNS,
            params_limits: ParamsLimits::default(),
            max_body: None,
            spool_memory: Self::DEFAULT_SPOOL_MEMORY,
            spool_dir: None,
            idle_timeout: Self::DEFAULT_IDLE_TIMEOUT,
            read_timeout: Self::DEFAULT_READ_TIMEOUT,
            min_input_rate: Self::DEFAULT_MIN_INPUT_RATE,
            write_timeout: Self::DEFAULT_WRITE_TIMEOUT,
            request_timeout: None,
            allow: None,
            retry_after: 1,
            access_log: false,
            status_path: None,
            ping_path: None,
            ping_response: Self::DEFAULT_PING_RESPONSE.to_owned(),
            pool_name: Self::DEFAULT_POOL_NAME.to_owned(),
            slow_request: None,
            graceful_timeout: Self::DEFAULT_GRACEFUL_TIMEOUT,
        }
    }
}

/// The peers `FCGI_WEB_SERVER_ADDRS` allows (comma-separated addresses), if it is set.
/// Entries that are not addresses are returned apart, for the caller to report.
pub fn web_server_addrs_from_env() -> Option<(Vec<IpAddr>, Vec<String>)> {
    let value = std::env::var(fcgi_codec::management::WEB_SERVER_ADDRS).ok()?;
    let mut addrs = Vec::new();
    let mut bad = Vec::new();
    for entry in value.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        match entry.parse() {
            Ok(addr) => addrs.push(addr),
            Err(_) => bad.push(entry.to_owned()),
        }
    }
    Some((addrs, bad))
}
