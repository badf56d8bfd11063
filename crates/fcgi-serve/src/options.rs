//! The options every served app takes (`fcgi serve`'s, less `--app`): their definitions, for
//! clap and the config file, and the server configuration they describe.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use fcgi_server::{Config, ListenAddr, ListenOptions};

use crate::logging::{LogFormat, LogLevel};

/// `fcgi serve`'s options, less those of the app (`O`): where to listen, the limits, the logs,
/// the status page, privileges and the process model. Parsed from the command line and the
/// `--config` file alike (`config_file.rs`).
#[derive(Debug, Args)]
pub(crate) struct ServeArgs<O: Args> {
    /// Where to listen: unix:/path, tcp:HOST:PORT (or HOST:PORT), or fd:N. Repeat for several.
    /// Without it: the sockets systemd passed (LISTEN_FDS), else fd 0 when it is a listening
    /// socket (as spawn-fcgi and web servers hand it over).
    #[arg(long, value_name = "ADDR")]
    pub(crate) listen: Vec<ListenAddr>,

    /// Idle threads kept ready [default: 4, or --max-spare if lower].
    #[arg(long, value_name = "N")]
    pub(crate) min_spare: Option<usize>,

    /// Idle threads above which the surplus retire [default: 16, or --max-threads if lower].
    #[arg(long, value_name = "N")]
    pub(crate) max_spare: Option<usize>,

    /// Most requests handled at once [for an app that runs programs (exec): its most program
    /// processes].
    #[arg(long, value_name = "N", default_value_t = Config::DEFAULT_MAX_THREADS)]
    pub(crate) max_threads: usize,

    /// Requests that may wait for a thread; one more is answered 503 at once.
    #[arg(long, value_name = "N", default_value_t = Config::DEFAULT_QUEUE)]
    pub(crate) queue: usize,

    /// Seconds a request may wait in the queue; then: 503 with Retry-After and FCGI_OVERLOADED
    /// (0: no limit).
    #[arg(long, value_name = "SECS", default_value_t = Config::DEFAULT_QUEUE_TIMEOUT.as_secs())]
    pub(crate) queue_timeout: u64,

    /// Most requests open at once on one connection; one more is answered 503 (advertised as
    /// FCGI_MAX_REQS).
    #[arg(long, value_name = "N", default_value_t = Config::DEFAULT_MAX_CONN_REQUESTS)]
    pub(crate) max_conn_requests: usize,

    /// Bytes of memory all unfinished requests may hold together (params, bodies in memory);
    /// past it bodies go to disk and new requests get 503.
    #[arg(long, value_name = "BYTES", default_value_t = Config::DEFAULT_MEMORY_BUDGET, value_parser = bytes::<usize>)]
    pub(crate) memory_budget: usize,

    /// Most connections open at once; beyond, requests get 503 (FCGI_MAX_CONNS).
    #[arg(long, value_name = "N", default_value_t = Config::DEFAULT_MAX_CONNS)]
    pub(crate) max_conns: usize,

    /// Permissions of Unix socket files, in octal (default: from the umask).
    #[arg(long, value_name = "OCTAL", value_parser = parse_octal)]
    pub(crate) socket_mode: Option<u32>,

    /// Owner of Unix socket files: USER, USER:GROUP or :GROUP, by name or number.
    #[arg(long, value_name = "USER[:GROUP]", value_parser = parse_owner)]
    pub(crate) socket_owner: Option<(Option<u32>, Option<u32>)>,

    /// Listen backlog: connections the kernel queues before they are accepted.
    #[arg(long, value_name = "N", default_value_t = ListenOptions::DEFAULT_BACKLOG)]
    pub(crate) backlog: i32,

    /// Only these peers may connect over TCP (repeatable; FCGI_WEB_SERVER_ADDRS adds to it).
    #[arg(long, value_name = "IP")]
    pub(crate) allow: Vec<IpAddr>,

    /// Largest params stream per request, in bytes; over it: 431.
    #[arg(long, value_name = "BYTES", default_value_t = fcgi_server::ParamsLimits::DEFAULT_MAX_LEN,
          value_parser = bytes::<usize>)]
    pub(crate) max_params: usize,

    /// Largest request body, in bytes; over it: 413 (default: no limit).
    #[arg(long, value_name = "BYTES", value_parser = bytes::<u64>)]
    pub(crate) max_body: Option<u64>,

    /// Bytes of each request body kept in memory before the rest spills to a temporary file.
    #[arg(long, value_name = "BYTES", default_value_t = Config::DEFAULT_SPOOL_MEMORY, value_parser = bytes::<usize>)]
    pub(crate) spool_memory: usize,

    /// Directory for request bodies that spill to disk (default: the system temporary directory).
    #[arg(long, value_name = "DIR")]
    pub(crate) spool_dir: Option<PathBuf>,

    /// Seconds a kept connection may stay idle.
    #[arg(long, value_name = "SECS", default_value_t = Config::DEFAULT_IDLE_TIMEOUT.as_secs())]
    pub(crate) idle_timeout: u64,

    /// Seconds a request may go without a byte of its own input (params, body); then: 408.
    #[arg(long, value_name = "SECS", default_value_t = Config::DEFAULT_READ_TIMEOUT.as_secs())]
    pub(crate) read_timeout: u64,

    /// Slowest input a request may have, in bytes per second: it gets --read-timeout plus a
    /// second per this many bytes to receive all of its input; then: 408 (0: no rate).
    #[arg(long, value_name = "BYTES", default_value_t = Config::DEFAULT_MIN_INPUT_RATE, value_parser = bytes::<u64>)]
    pub(crate) min_input_rate: u64,

    /// Seconds a write may wait for the web server to read.
    #[arg(long, value_name = "SECS", default_value_t = Config::DEFAULT_WRITE_TIMEOUT.as_secs())]
    pub(crate) write_timeout: u64,

    /// Seconds SIGTERM or SIGINT leaves running requests to finish.
    #[arg(long, value_name = "SECS", default_value_t = 30)]
    pub(crate) graceful_timeout: u64,

    /// Log format.
    #[arg(long, value_enum, default_value_t = LogFormat::Term)]
    pub(crate) log_format: LogFormat,

    /// Least severe log level shown.
    #[arg(long, value_enum, default_value_t = LogLevel::Info)]
    pub(crate) log_level: LogLevel,

    /// One line per request (client address, method, URI, status, bytes, duration, request
    /// id), failed ones included: alone, in the main log (its fields, in --log-format); with
    /// FILE, in that file (--access-log-format), reopened on USR1.
    #[arg(long, value_name = "FILE", num_args = 0..=1)]
    pub(crate) access_log: Option<Option<PathBuf>>,

    // Operating: privileges and the access log's file format.
    /// Serve as this user (name or number) once the sockets are bound and the log and pid files
    /// open: the single process, or each worker (the master stays root). Needs root.
    #[arg(long, value_name = "USER")]
    pub(crate) user: Option<String>,

    /// Serve with this group (name or number) as the only group [default: --user's groups].
    #[arg(long, value_name = "GROUP")]
    pub(crate) group: Option<String>,

    /// Format of --access-log FILE: combined (nginx's, then duration, request id, outcome),
    /// json, or a PHP-FPM access.format template (%R %u %t %m %r %q %Q %f %s %l %b %d %T %p %P
    /// %L %{NAME}e %%).
    #[arg(long, value_name = "FORMAT", default_value = "combined",
        value_parser = crate::logging::access_log::AccessFormat::parse)]
    pub(crate) access_log_format: crate::logging::access_log::AccessFormat,

    // Status page, ping and slow log (PHP-FPM's pm.status_path, ping.path and slowlog).
    /// Answer this SCRIPT_NAME with the status page, whatever the app, in PHP-FPM's formats
    /// (?json, ?openmetrics, ?full); e.g. /status.
    #[arg(long, value_name = "PATH")]
    pub(crate) status_path: Option<String>,

    /// Answer this SCRIPT_NAME with --ping-response, whatever the app; e.g. /ping.
    #[arg(long, value_name = "PATH")]
    pub(crate) ping_path: Option<String>,

    /// The ping's body.
    #[arg(long, value_name = "TEXT", default_value = Config::DEFAULT_PING_RESPONSE)]
    pub(crate) ping_response: String,

    /// The pool's name on the status page.
    #[arg(long, value_name = "NAME", default_value = Config::DEFAULT_POOL_NAME)]
    pub(crate) pool_name: String,

    /// Log a request once it has run this many seconds (fractions allowed), while it still
    /// runs, and count it in the status page's "slow requests".
    #[arg(long, value_name = "SECS", value_parser = parse_secs)]
    pub(crate) slow_request: Option<Duration>,

    /// Write slow-request lines to this file instead of the log.
    #[arg(long, value_name = "FILE")]
    pub(crate) slow_log: Option<PathBuf>,

    // Operations: checking the configuration.
    /// Check the command line and the --config file, bind nothing, and exit: 0 with
    /// "configuration ok", or 2 with each error (and its line in the file).
    #[arg(long)]
    pub(crate) check: bool,

    #[command(flatten)]
    pub(crate) process: crate::process_args::ProcessArgs,

    /// The app's own options (`--app` and the CGI gateway's, for `fcgi serve`), last: a help
    /// heading of theirs holds for what follows.
    #[command(flatten)]
    pub(crate) app: O,
}

/// Seconds, fractions allowed, above zero.
fn parse_secs(text: &str) -> Result<Duration, String> {
    text.parse::<f64>()
        .ok()
        .filter(|secs| secs.is_finite() && *secs > 0.0)
        .map(Duration::from_secs_f64)
        .ok_or_else(|| format!("{text:?} is not a number of seconds above zero"))
}

fn parse_octal(text: &str) -> Result<u32, String> {
    u32::from_str_radix(text.trim_start_matches("0o"), 8)
        .ok()
        .filter(|mode| *mode <= 0o7777)
        .ok_or_else(|| format!("{text:?} is not an octal file mode such as 660"))
}

fn parse_owner(text: &str) -> Result<(Option<u32>, Option<u32>), String> {
    let (user, group) = text.split_once(':').unwrap_or((text, ""));
    let uid = match user {
        "" => None,
        name => Some(lookup_id(name, false).ok_or_else(|| format!("no such user: {name}"))?),
    };
    let gid = match group {
        "" => None,
        name => Some(lookup_id(name, true).ok_or_else(|| format!("no such group: {name}"))?),
    };
    Ok((uid, gid))
}

/// A user or group id from its number or name (fcgi-server's look-up for socket owners).
fn lookup_id(name: &str, group: bool) -> Option<u32> {
    if group {
        fcgi_server::group_id(name).ok()
    } else {
        fcgi_server::user_id(name).ok()
    }
}

impl<O: Args> ServeArgs<O> {
    /// The server configuration these arguments describe.
    pub(crate) fn config(&self) -> Result<Config, String> {
        // Unset spare counts follow a small --max-threads down, so that `--max-threads 2` alone
        // is a valid command.
        let max_spare = self.max_spare.unwrap_or(Config::DEFAULT_MAX_SPARE.min(self.max_threads));
        let min_spare = self.min_spare.unwrap_or(Config::DEFAULT_MIN_SPARE.min(max_spare));
        let config = Config {
            min_spare,
            max_spare,
            max_threads: self.max_threads,
            queue: self.queue,
            queue_timeout: (self.queue_timeout > 0)
                .then(|| Duration::from_secs(self.queue_timeout)),
            max_conn_requests: self.max_conn_requests,
            memory_budget: self.memory_budget,
            max_conns: self.max_conns,
            params_limits: fcgi_server::ParamsLimits {
                max_len: self.max_params,
                ..fcgi_server::ParamsLimits::default()
            },
            max_body: self.max_body,
            spool_memory: self.spool_memory,
            spool_dir: self.spool_dir.clone(),
            idle_timeout: Duration::from_secs(self.idle_timeout),
            read_timeout: Duration::from_secs(self.read_timeout),
            min_input_rate: self.min_input_rate,
            write_timeout: Duration::from_secs(self.write_timeout),
            allow: (!self.allow.is_empty()).then(|| self.allow.clone()),
            status_path: self.status_path.clone(),
            ping_path: self.ping_path.clone(),
            ping_response: self.ping_response.clone(),
            pool_name: self.pool_name.clone(),
            slow_request: self.slow_request,
            access_log: self.access_log.is_some(),
            ..Config::default()
        };
        if config.max_threads == 0 {
            return Err("--max-threads must be at least 1".into());
        }
        if config.max_conn_requests == 0 {
            return Err("--max-conn-requests must be at least 1".into());
        }
        if config.memory_budget < config.params_limits.max_len {
            return Err(format!(
                "--memory-budget ({}) must hold at least one request's params (--max-params, {})",
                config.memory_budget, config.params_limits.max_len
            ));
        }
        if config.min_spare > config.max_spare {
            return Err(format!(
                "--min-spare ({}) must not exceed --max-spare ({})",
                config.min_spare, config.max_spare
            ));
        }
        if config.max_spare > config.max_threads {
            return Err(format!(
                "--max-spare ({}) must not exceed --max-threads ({})",
                config.max_spare, config.max_threads
            ));
        }
        Ok(config)
    }

    /// How the listening sockets are made, by a server that switches to the user and group
    /// `user` (uid, gid), if any. Such a server's Unix socket files are that user's and
    /// group's unless `--socket-owner` names others, with mode 0660 unless `--socket-mode`
    /// gives one, as PHP-FPM's `listen.owner`, `listen.group` and `listen.mode` default: a
    /// socket left root's would refuse the web server, and one of mode 0666 would admit every
    /// local user.
    pub(crate) fn listen_options(&self, user: Option<(u32, u32)>) -> ListenOptions {
        let owner = self.socket_owner.or(user.map(|(uid, gid)| (Some(uid), Some(gid))));
        ListenOptions {
            backlog: self.backlog,
            socket_mode: self.socket_mode.or(user.map(|_| 0o660)),
            socket_owner: owner.unwrap_or((None, None)),
        }
    }
}

/// A byte count, with an optional suffix K, M or G (or k, m, g): 1024, 1024² and 1024³ times,
/// as nginx and PHP read sizes. For every BYTES option, on the command line and in the file,
/// and an app's own (`#[arg(value_parser = fcgi_serve::parse_bytes::<usize>)]`).
///
/// ```
/// assert_eq!(fcgi_serve::parse_bytes::<u64>("64K"), Ok(65536));
/// assert!(fcgi_serve::parse_bytes::<u32>("4G").is_err());
/// ```
pub fn bytes<T: TryFrom<u64>>(text: &str) -> Result<T, String> {
    let bad = || format!("{text:?} is not a byte count such as 65536, 64K, 10M or 1G");
    let (digits, unit) = match text.char_indices().last() {
        Some((at, c)) if c.is_ascii_alphabetic() => (&text[..at], c.to_ascii_uppercase()),
        _ => (text, 'B'),
    };
    let shift = match unit {
        'B' => 0,
        'K' => 10,
        'M' => 20,
        'G' => 30,
        _ => return Err(bad()),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let number: u64 = digits.parse().map_err(|_| bad())?;
    let total = number.checked_mul(1 << shift).ok_or_else(|| format!("{text:?} is too large"))?;
    T::try_from(total).map_err(|_| format!("{text:?} is too large"))
}
