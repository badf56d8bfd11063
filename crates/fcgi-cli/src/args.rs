//! The command line, parsed and checked before anything runs.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use fcgi_client::Address;
use fcgi_server::{Config, ListenAddr, ListenOptions};

use crate::config_file::bytes;

/// fcgi-rs: a FastCGI application server.
#[derive(Debug, Parser)]
#[command(name = "fcgi", version, about, propagate_version = true)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Serve a built-in app over FastCGI (behind nginx, Apache, lighttpd, Caddy, ...).
    #[command(args_override_self = true)]
    Serve(Box<ServeArgs>),
    /// Send one request to a FastCGI server and print the response: a ready-made health check
    ///
    /// The request carries the usual CGI params, filled from SCRIPT_PATH (the script's path as
    /// the server sees it, with an optional ?QUERY): SCRIPT_FILENAME and SCRIPT_NAME (the path),
    /// REQUEST_URI (path and query), QUERY_STRING, REQUEST_METHOD (GET, or POST with --stdin),
    /// CONTENT_LENGTH (with --stdin), SERVER_PROTOCOL, GATEWAY_INTERFACE, SERVER_SOFTWARE,
    /// SERVER_NAME, SERVER_PORT and REMOTE_ADDR. --param adds others (CONTENT_TYPE, HTTP_HOST,
    /// ...) or replaces any of these.
    ///
    /// The body goes to stdout (with -i, the status and headers first), what the application
    /// wrote to FCGI_STDERR to stderr.
    ///
    /// Exit status: 0 when the server ran the request to completion (FCGI_REQUEST_COMPLETE)
    /// and, with --expect-status, answered with that status; 1 otherwise (cannot connect,
    /// timeout, overloaded, protocol error, other status), with a one-line reason on stderr;
    /// 2 for a bad command line.
    ///
    /// As a health check (Docker HEALTHCHECK, Kubernetes exec probe, monit, cron):
    ///
    ///     fcgi request --connect unix:/run/php/php8.2-fpm.sock --expect-status 200 /ping
    ///     fcgi request --connect 127.0.0.1:9000 --timeout 2 --expect-status 200 \
    ///         '/srv/www/health.php?deep=1' >/dev/null
    ///     fcgi request --connect unix:/run/fcgi.sock --get-values
    ///
    /// (PHP-FPM answers SCRIPT_NAME equal to its ping.path with "pong".)
    #[command(verbatim_doc_comment)]
    Request(Box<RequestArgs>),
    /// Load-test a FastCGI server directly, with no web server in between (like wrk)
    ///
    /// Opens CONNS connections, each driven by a thread of its own, and sends requests for
    /// SCRIPT_PATH as fast as the server answers them, for DURATION or until REQUESTS were
    /// sent. The requests carry the CGI params `fcgi request` sends; --param replaces or adds.
    ///
    /// Without --keep-conn every request opens a connection of its own (as nginx does without
    /// an upstream keepalive) and its latency includes connecting; with it, each connection is
    /// kept and reopened only when it breaks or the server closes it. --mpx N keeps N requests
    /// in flight on each kept connection (only for servers that multiplex: fcgi-rs does,
    /// PHP-FPM and libfcgi do not).
    ///
    /// A request succeeds when it ends complete with status 200. The others are errors, by
    /// kind: connect (cannot connect), protocol (the connection broke or closed early, bytes
    /// that are not FastCGI, a bad response head, a refusal other than overloaded), status
    /// (any status but 200 and 503), overloaded (503, or FCGI_OVERLOADED) and timeout.
    ///
    /// While it runs, a progress line on stderr each second (when stderr is a terminal and
    /// without --quiet); at the end, the report on stdout: counts, requests/s, transfer rate,
    /// latency percentiles (p50, p90, p99, p99.9) and errors by kind; with --json, one JSON
    /// object instead.
    ///
    /// Exit status: 0 when it ran and at least one request succeeded (errors or not), 1 when
    /// none did, 2 for a bad command line.
    ///
    ///     fcgi bench --connect unix:/run/fcgi.sock -c 32 -d 10 --keep-conn /hello
    ///     fcgi bench --connect unix:/run/php/php8.2-fpm.sock -n 10000 /srv/www/index.php
    ///     fcgi bench --connect 127.0.0.1:9000 -c 4 --keep-conn --mpx 8 --body 4096 /upload
    #[command(verbatim_doc_comment)]
    Bench(Box<BenchArgs>),
    /// Man pages and shell completions, for packaging (`make install`, `make deb`).
    #[command(hide = true)]
    Generate(crate::generate::GenerateArgs),
}

/// The built-in apps.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum App {
    /// `Hello, world!` as text/plain.
    Hello,
    /// POST and PUT: the request body back, streamed; other methods: the params, one per line.
    Echo,
    /// A CGI/1.1 gateway, like fcgiwrap: runs the program SCRIPT_FILENAME names (see the CGI
    /// options below).
    Cgi,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum LogFormat {
    /// Human-readable lines.
    Term,
    /// One JSON object per line.
    Json,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum LogLevel {
    Error,
    Warning,
    Info,
    Debug,
}

#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// Where to listen: unix:/path, tcp:HOST:PORT (or HOST:PORT), or fd:N. Repeat for several.
    /// Without it: the sockets systemd passed (LISTEN_FDS), else fd 0 when it is a listening
    /// socket (as spawn-fcgi and web servers hand it over).
    #[arg(long, value_name = "ADDR")]
    pub(crate) listen: Vec<ListenAddr>,

    /// The app to serve (required, on the command line or in --config).
    #[arg(long, value_enum, required = false, required_unless_present = "config")]
    pub(crate) app: App,

    /// Idle threads kept ready [default: 4, or --max-spare if lower].
    #[arg(long, value_name = "N")]
    pub(crate) min_spare: Option<usize>,

    /// Idle threads above which the surplus retire [default: 16, or --max-threads if lower].
    #[arg(long, value_name = "N")]
    pub(crate) max_spare: Option<usize>,

    /// Most requests handled at once.
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
        value_parser = crate::access_log::AccessFormat::parse)]
    pub(crate) access_log_format: crate::access_log::AccessFormat,

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
    pub(crate) cgi: crate::apps::cgi::CgiArgs,

    #[command(flatten)]
    pub(crate) process: crate::process_args::ProcessArgs,
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

/// A user or group id from its number or name (read from the system's databases).
fn lookup_id(name: &str, group: bool) -> Option<u32> {
    if let Ok(id) = name.parse() {
        return Some(id);
    }
    let c_name = std::ffi::CString::new(name).ok()?;
    // SAFETY: the returned record points into static storage that we read at once, on the one
    // thread that exists while arguments are parsed.
    unsafe {
        if group {
            let entry = libc::getgrnam(c_name.as_ptr());
            (!entry.is_null()).then(|| (*entry).gr_gid)
        } else {
            let entry = libc::getpwnam(c_name.as_ptr());
            (!entry.is_null()).then(|| (*entry).pw_uid)
        }
    }
}

impl ServeArgs {
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

    pub(crate) fn listen_options(&self) -> ListenOptions {
        ListenOptions {
            backlog: self.backlog,
            socket_mode: self.socket_mode,
            socket_owner: self.socket_owner.unwrap_or((None, None)),
        }
    }
}

/// The roles `fcgi request` can ask for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum RequestRole {
    /// FCGI_RESPONDER: an ordinary request.
    Responder,
    /// FCGI_AUTHORIZER: may the request go on? No body, no SCRIPT_NAME or CONTENT_LENGTH.
    Authorizer,
    /// FCGI_FILTER: a responder with an FCGI_DATA stream (sent empty).
    Filter,
}

#[derive(Debug, Args)]
pub(crate) struct RequestArgs {
    /// The server: unix:/path, tcp:HOST:PORT or HOST:PORT.
    #[arg(long, value_name = "ADDR")]
    pub(crate) connect: Address,

    /// REQUEST_METHOD [default: GET, or POST with --stdin].
    #[arg(long, value_name = "METHOD")]
    pub(crate) method: Option<String>,

    /// A param to send, replacing the one derived from SCRIPT_PATH if any. Repeatable.
    #[arg(long = "param", value_name = "NAME=VALUE", value_parser = parse_param)]
    pub(crate) params: Vec<(String, String)>,

    /// The request body: a file, or - for standard input (read whole first, to count
    /// CONTENT_LENGTH).
    #[arg(long, value_name = "FILE|-")]
    pub(crate) stdin: Option<PathBuf>,

    /// The role to ask the application to play.
    #[arg(long, value_enum, default_value_t = RequestRole::Responder)]
    pub(crate) role: RequestRole,

    /// Ask FCGI_GET_VALUES first and print the answer as NAME=VALUE lines (FCGI_MAX_CONNS,
    /// FCGI_MAX_REQS, FCGI_MPXS_CONNS); SCRIPT_PATH is then optional.
    #[arg(long)]
    pub(crate) get_values: bool,

    /// Fail (exit 1) unless the response has this HTTP status.
    #[arg(long, value_name = "CODE")]
    pub(crate) expect_status: Option<u16>,

    /// Print the status and the headers before the body, as CGI lines (`Status: 200 OK`).
    #[arg(short = 'i', long = "include")]
    pub(crate) include: bool,

    /// Seconds that connecting, and then each read and each write, may take; 0: no limit.
    #[arg(long, value_name = "SECS", default_value_t = 30)]
    pub(crate) timeout: u64,

    /// The script as the server sees it (PHP-FPM: its file path), optionally with ?QUERY.
    #[arg(value_name = "SCRIPT_PATH", required_unless_present = "get_values")]
    pub(crate) script_path: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct BenchArgs {
    /// The server: unix:/path, tcp:HOST:PORT or HOST:PORT.
    #[arg(long, value_name = "ADDR")]
    pub(crate) connect: Address,

    /// Connections open at once, each driven by a thread of its own.
    #[arg(short = 'c', long, value_name = "CONNS", default_value_t = 10)]
    pub(crate) connections: usize,

    /// How long to run: SECS, or a number with ms, s or m (500ms, 10s, 2m) [default: 10s
    /// unless --requests is given].
    #[arg(short = 'd', long, value_name = "DURATION", value_parser = parse_duration,
          conflicts_with = "requests")]
    pub(crate) duration: Option<Duration>,

    /// Stop after this many requests (errors included) instead of after a duration.
    #[arg(short = 'n', long, value_name = "REQUESTS")]
    pub(crate) requests: Option<u64>,

    /// Keep each connection for the next requests (FCGI_KEEP_CONN); without it, a connection
    /// per request.
    #[arg(long)]
    pub(crate) keep_conn: bool,

    /// Requests in flight at once on each connection (needs --keep-conn, and a server that
    /// multiplexes).
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub(crate) mpx: usize,

    /// Send a request body of this many bytes (a POST unless --method says otherwise).
    #[arg(long, value_name = "BYTES", value_parser = bytes::<usize>)]
    pub(crate) body: Option<usize>,

    /// REQUEST_METHOD [default: GET, or POST with --body].
    #[arg(long, value_name = "METHOD")]
    pub(crate) method: Option<String>,

    /// A param to send, replacing the one derived from SCRIPT_PATH if any. Repeatable.
    #[arg(long = "param", value_name = "NAME=VALUE", value_parser = parse_param)]
    pub(crate) params: Vec<(String, String)>,

    /// Seconds that connecting, and then each read and each write, may take; 0: no limit.
    #[arg(long, value_name = "SECS", default_value_t = 30)]
    pub(crate) timeout: u64,

    /// No progress line on stderr.
    #[arg(short = 'q', long)]
    pub(crate) quiet: bool,

    /// Print the report as one JSON object.
    #[arg(long)]
    pub(crate) json: bool,

    /// The script as the server sees it (PHP-FPM: its file path), optionally with ?QUERY.
    #[arg(value_name = "SCRIPT_PATH")]
    pub(crate) script_path: String,
}

/// `10`, `10s`, `500ms`, `2m`.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let bad = || format!("{text:?} is not a duration such as 10, 10s, 500ms or 2m");
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit() && c != '.') {
        Some(at) => text.split_at(at),
        None => (text, "s"),
    };
    let number: f64 = number.parse().map_err(|_| bad())?;
    let seconds = match unit {
        "ms" => number / 1000.0,
        "s" => number,
        "m" => number * 60.0,
        _ => return Err(bad()),
    };
    Duration::try_from_secs_f64(seconds).ok().filter(|d| !d.is_zero()).ok_or_else(bad)
}

fn parse_param(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((name, value)) if !name.is_empty() => Ok((name.to_owned(), value.to_owned())),
        _ => Err(format!("{text:?} is not NAME=VALUE")),
    }
}
