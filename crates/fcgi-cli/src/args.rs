//! The command line, parsed and checked before anything runs.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use fcgi_client::Address;
use fcgi_serve::parse_bytes as bytes;

/// fcgi-rs: a FastCGI application server.
#[derive(Debug, Parser)]
#[command(name = "fcgi", version, about, propagate_version = true)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// `fcgi status`'s arguments.
#[derive(Debug, Args)]
pub(crate) struct StatusArgs {
    /// The config file of the pools (as given to `fcgi serve --config`).
    #[arg(long, value_name = "FILE")]
    pub(crate) config: PathBuf,

    /// Only this pool.
    #[arg(value_name = "POOL")]
    pub(crate) pool: Option<String>,

    /// Seconds to wait for each pool to connect and answer.
    #[arg(long, value_name = "SECS", default_value_t = 2)]
    pub(crate) timeout: u64,
}

/// The subcommands but `serve`, whose command comes from fcgi-serve ([`crate::apps::program`]).
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
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
    /// Show each pool of a config file as its sockets answer it
    ///
    /// For each pool of FILE (each [NAME] section, or the file's one pool), in the file's
    /// order or only POOL: whether it is up, asked through its first --listen address, and
    /// with a status-path its status page's counters (PHP-FPM's fields); and whether the
    /// master its pid-file names is running.
    ///
    /// Exit status: 0 when every pool asked is up, 1 when one is down, 2 for a bad command
    /// line or an unreadable FILE.
    ///
    ///     fcgi status --config /etc/fcgi-rs/pools.conf
    ///     fcgi status --config /etc/fcgi-rs/pools.conf www
    #[command(verbatim_doc_comment)]
    Status(StatusArgs),
    /// Translate PHP-FPM's configuration into an fcgi-rs config file, written on stdout
    ///
    /// Reads FILE (php-fpm.conf, or pool files such as pool.d/www.conf) as PHP-FPM reads it,
    /// the files its `include = GLOB` lines name included, and writes a config file with a
    /// section per pool: `app = exec`, `exec = PHP_CGI -d ...` (php_value, php_flag and their
    /// admin kinds), and each directive's fcgi-rs option. [global]'s pid, error_log, log_level
    /// and process_control_timeout come first, shared by every pool. A directive with no
    /// fcgi-rs option, or a value that cannot be one, is a comment that quotes its line and
    /// says why.
    ///
    /// Exit status: 0 with the config on stdout; 2 when a file cannot be read, a line is not
    /// PHP-FPM's ini, or the includes loop (the message names the file and the line).
    ///
    ///     fcgi import-fpm /etc/php/8.2/fpm/php-fpm.conf > /etc/fcgi-rs/pools.conf
    ///     fcgi serve --config /etc/fcgi-rs/pools.conf --check
    #[command(verbatim_doc_comment)]
    ImportFpm(ImportFpmArgs),
    /// Man pages and shell completions, for packaging (`make install`, `make deb`).
    #[command(hide = true)]
    Generate(fcgi_serve::GenerateArgs),
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

/// `fcgi import-fpm`'s command line.
#[derive(Debug, Args)]
pub(crate) struct ImportFpmArgs {
    /// The php-cgi each pool runs (the first word of its `exec` line).
    #[arg(long, value_name = "PATH", default_value = "/usr/bin/php-cgi")]
    pub(crate) php_cgi: String,

    /// The prefix PHP-FPM ran with (php-fpm --prefix): relative paths of a pool without a
    /// `prefix` of its own are written under it; without it, such a path becomes a comment.
    #[arg(long, value_name = "DIR")]
    pub(crate) prefix: Option<String>,

    /// PHP-FPM's files, read in order: php-fpm.conf, or pool files.
    #[arg(value_name = "FILE", required = true)]
    pub(crate) files: Vec<PathBuf>,
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
