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
    /// answered `503` with `FCGI_OVERLOADED` at once. `max_threads + queue` is advertised as
    /// `FCGI_MAX_REQS`. Zero refuses at once whenever every thread is busy.
    pub queue: usize,
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
    /// How long a request may go without a byte from the web server while its input is
    /// incomplete; then it is aborted and its connection closed.
    pub read_timeout: Duration,
    /// How long a write may wait for the web server to read; then the connection is closed.
    pub write_timeout: Duration,
    /// Peers allowed to connect over TCP; `None` allows all. `FCGI_WEB_SERVER_ADDRS` adds to it.
    pub allow: Option<Vec<IpAddr>>,
    /// Seconds in the `Retry-After` header of a `503` for overload.
    pub retry_after: u32,
    /// Log one line per request (method, URI, status, bytes, duration).
    pub access_log: bool,
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
}

impl Default for Config {
    fn default() -> Self {
        Config {
            min_spare: Self::DEFAULT_MIN_SPARE,
            max_spare: Self::DEFAULT_MAX_SPARE,
            max_threads: Self::DEFAULT_MAX_THREADS,
            queue: Self::DEFAULT_QUEUE,
            max_conns: Self::DEFAULT_MAX_CONNS,
            params_limits: ParamsLimits::default(),
            max_body: None,
            spool_memory: Self::DEFAULT_SPOOL_MEMORY,
            spool_dir: None,
            idle_timeout: Self::DEFAULT_IDLE_TIMEOUT,
            read_timeout: Self::DEFAULT_READ_TIMEOUT,
            write_timeout: Self::DEFAULT_WRITE_TIMEOUT,
            allow: None,
            retry_after: 1,
            access_log: false,
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
