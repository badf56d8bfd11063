//! `fcgi bench`: a load generator that speaks FastCGI itself, like wrk with no web server in
//! between.
//!
//! # Design
//!
//! One thread per connection (`-c`), each a loop over [`fcgi_client::Connection`]: connect
//! (again) unless `--keep-conn` holds a usable connection, send one request (or `--mpx N` of
//! them, then receive them in order), read each response to its end, record the latency in
//! the thread's own histogram. Nothing is shared on the request path but a claim on the
//! request budget (`-n`, one atomic subtraction per batch), a stop flag read once per batch,
//! and two progress counters in a cache line of the thread's own. The histograms and counts
//! are merged once, after every thread has stopped.
//!
//! Blocking threads are the simplest thing that keeps up: a request to a hello app costs the
//! bench a few system calls (connect, write, read, close) and no wake-up of another thread, so
//! one core of bench outruns one core of server. A few hundred connections are a few hundred
//! threads, which Linux handles without trouble; their stacks are small.
//!
//! Latency is measured from just before the request is sent (before connecting, when the
//! request needs a new connection, since the server pays for the accept too) to the end of
//! its response, and only for the requests that succeeded, in microseconds.

use std::fmt::Write as _;
use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use fcgi_client::{Address, Connection, Error, ProtocolStatus, Request, ResponseHead, Timeouts};
use hdrhistogram::Histogram;

use crate::args::{BenchArgs, RequestRole};
use crate::request::cgi_params;
use crate::Failure;

/// How long a run lasts when neither `-d` nor `-n` is given: wrk's default.
const DEFAULT_DURATION: Duration = Duration::from_secs(10);

/// The highest latency the histogram tells apart, in µs (an hour); longer ones are recorded
/// as this. A histogram's counts are allocated zeroed and only touched where latencies fall,
/// so even hundreds of them cost little resident memory.
const MAX_LATENCY_US: u64 = 3_600_000_000;

/// Significant figures the histogram keeps: latencies within 0.1 %.
const SIGNIFICANT_FIGURES: u8 = 3;

/// Stack of each connection's thread: it holds a 64 KiB read buffer on the heap and little
/// else, so a quarter of the default 2 MiB is plenty, and -c 1000 stays cheap.
const WORKER_STACK: usize = 512 * 1024;

/// Bytes read from a response body at once.
const READ_CHUNK: usize = 64 * 1024;

/// How often the coordinating thread looks at the clock and the workers.
const TICK: Duration = Duration::from_millis(20);

/// Why a request did not succeed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// No connection: refused, no such socket, ...
    Connect,
    /// The connection broke or closed early, bytes that are not FastCGI, a bad head, a refusal
    /// other than overloaded (FCGI_CANT_MPX_CONN, FCGI_UNKNOWN_ROLE), an empty answer.
    Protocol,
    /// A complete response with a status other than 200 and 503.
    Status,
    /// 503, or FCGI_END_REQUEST with FCGI_OVERLOADED.
    Overloaded,
    /// A read or a write took longer than --timeout.
    Timeout,
}

impl Kind {
    const ALL: [Kind; 5] =
        [Kind::Connect, Kind::Protocol, Kind::Status, Kind::Overloaded, Kind::Timeout];

    fn name(self) -> &'static str {
        match self {
            Kind::Connect => "connect",
            Kind::Protocol => "protocol",
            Kind::Status => "status",
            Kind::Overloaded => "overloaded",
            Kind::Timeout => "timeout",
        }
    }

    fn of(error: &Error) -> Kind {
        match error {
            Error::Connect { source, .. } if source.kind() == std::io::ErrorKind::TimedOut => {
                Kind::Timeout
            }
            Error::Connect { .. } => Kind::Connect,
            Error::Timeout { .. } => Kind::Timeout,
            Error::NoResponse { end, .. } => Kind::of_end(end.protocol_status),
            _ => Kind::Protocol,
        }
    }

    fn of_end(status: ProtocolStatus) -> Kind {
        match status {
            ProtocolStatus::Overloaded => Kind::Overloaded,
            _ => Kind::Protocol,
        }
    }
}

/// What every connection's thread sends, and how.
struct Plan {
    addr: Address,
    timeouts: Timeouts,
    keep_conn: bool,
    mpx: u64,
    params: Vec<(String, String)>,
    body: Option<Vec<u8>>,
}

impl Plan {
    fn request(&self) -> Request<'_> {
        let request = Request::new()
            .keep_conn(self.keep_conn)
            .params(self.params.iter().map(|(n, v)| (n.as_str(), v.as_str())));
        match &self.body {
            Some(body) => request.stdin(body.as_slice()),
            None => request,
        }
    }
}

/// What the threads share: when to stop.
struct Shared {
    /// Set by the coordinator when the duration is over.
    stop: AtomicBool,
    /// Requests not yet claimed, for -n (u64::MAX for a duration).
    budget: AtomicU64,
}

impl Shared {
    /// Claims up to `want` requests from the budget; 0 when it is spent.
    fn claim(&self, want: u64) -> u64 {
        let taken = self.budget.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| {
            (left > 0).then(|| left - left.min(want))
        });
        taken.map_or(0, |left| left.min(want))
    }
}

/// One thread's counters that the progress line reads while it runs, in a cache line of
/// their own so that the threads do not slow each other down.
#[derive(Default)]
#[repr(align(64))]
struct Progress {
    /// Requests that succeeded.
    ok: AtomicU64,
    /// Requests that failed.
    failed: AtomicU64,
}

/// One thread's results, merged at the end.
struct Tally {
    /// Latency of each successful request, in µs.
    latency: Histogram<u64>,
    ok: u64,
    errors: [u64; Kind::ALL.len()],
    /// The first error of each kind, in words.
    first_error: [Option<String>; Kind::ALL.len()],
    /// Bytes of the successful responses: CGI head (as reconstructed) and body.
    bytes: u64,
    /// Connections opened.
    connects: u64,
    /// When the thread stopped.
    ended: Option<Instant>,
}

impl Tally {
    fn new() -> Tally {
        let latency = Histogram::new_with_bounds(1, MAX_LATENCY_US, SIGNIFICANT_FIGURES)
            .expect("the histogram bounds are valid");
        Tally {
            latency,
            ok: 0,
            errors: [0; Kind::ALL.len()],
            first_error: Default::default(),
            bytes: 0,
            connects: 0,
            ended: None,
        }
    }

    fn success(&mut self, started: Instant, bytes: u64, progress: &Progress) {
        let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        self.latency.saturating_record(micros.max(1));
        self.ok += 1;
        self.bytes += bytes;
        progress.ok.fetch_add(1, Ordering::Relaxed);
    }

    fn failure(
        &mut self,
        kind: Kind,
        count: u64,
        why: impl FnOnce() -> String,
        progress: &Progress,
    ) {
        let index = kind as usize;
        self.errors[index] += count;
        self.first_error[index].get_or_insert_with(why);
        progress.failed.fetch_add(count, Ordering::Relaxed);
    }

    fn error(&mut self, error: &Error, count: u64, progress: &Progress) {
        self.failure(Kind::of(error), count, || error.to_string(), progress);
    }

    fn merge(&mut self, other: Tally) {
        self.latency.add(&other.latency).expect("histograms of the same bounds merge");
        self.ok += other.ok;
        self.bytes += other.bytes;
        self.connects += other.connects;
        self.ended = self.ended.max(other.ended);
        for (i, (count, first)) in other.errors.into_iter().zip(other.first_error).enumerate() {
            self.errors[i] += count;
            if self.first_error[i].is_none() {
                self.first_error[i] = first;
            }
        }
    }

    fn failed(&self) -> u64 {
        self.errors.iter().sum()
    }
}

pub(crate) fn run(args: BenchArgs) -> Result<(), Failure> {
    if args.connections == 0 {
        return Err(Failure::Usage("-c must be at least 1".into()));
    }
    if args.mpx == 0 || args.mpx > usize::from(u16::MAX) {
        return Err(Failure::Usage("--mpx must be from 1 to 65535".into()));
    }
    if args.mpx > 1 && !args.keep_conn {
        return Err(Failure::Usage(
            "--mpx needs --keep-conn: a connection that is not kept takes one request".into(),
        ));
    }
    if args.requests == Some(0) {
        return Err(Failure::Usage("-n must be at least 1".into()));
    }
    let body = args.body.map(|len| vec![b'x'; len]);
    let content_length = body.as_ref().map(|b| b.len() as u64);
    let params = cgi_params(
        &args.script_path,
        args.method.as_deref(),
        RequestRole::Responder,
        &args.params,
        content_length,
    );
    let plan = Arc::new(Plan {
        addr: args.connect.clone(),
        timeouts: Timeouts::all(Duration::from_secs(args.timeout)),
        keep_conn: args.keep_conn,
        mpx: args.mpx as u64,
        params,
        body,
    });
    let duration = match args.requests {
        Some(_) => None,
        None => Some(args.duration.unwrap_or(DEFAULT_DURATION)),
    };
    let shared = Arc::new(Shared {
        stop: AtomicBool::new(false),
        budget: AtomicU64::new(args.requests.unwrap_or(u64::MAX)),
    });
    let progress: Arc<Vec<Progress>> =
        Arc::new((0..args.connections).map(|_| Progress::default()).collect());

    let started = Instant::now();
    let mut workers = Vec::with_capacity(args.connections);
    for index in 0..args.connections {
        let (plan, mine, progress) = (plan.clone(), shared.clone(), progress.clone());
        let spawned = thread::Builder::new()
            .name(format!("bench-{index}"))
            .stack_size(WORKER_STACK)
            .spawn(move || drive(&plan, &mine, &progress[index]));
        match spawned {
            Ok(handle) => workers.push(handle),
            Err(e) => {
                shared.stop.store(true, Ordering::Relaxed);
                for worker in workers {
                    let _ = worker.join();
                }
                return Err(Failure::Runtime(format!("cannot start thread {index}: {e}")));
            }
        }
    }

    let show_progress = !args.quiet && std::io::stderr().is_terminal();
    let deadline = duration.map(|d| started + d);
    let mut next_report = started + Duration::from_secs(1);
    let mut last = (started, 0u64);
    while !workers.iter().all(thread::JoinHandle::is_finished) {
        thread::sleep(TICK);
        let now = Instant::now();
        if deadline.is_some_and(|deadline| now >= deadline) {
            shared.stop.store(true, Ordering::Relaxed);
        }
        if show_progress && now >= next_report {
            let ok: u64 = progress.iter().map(|p| p.ok.load(Ordering::Relaxed)).sum();
            let failed: u64 = progress.iter().map(|p| p.failed.load(Ordering::Relaxed)).sum();
            let rate = (ok - last.1) as f64 / now.duration_since(last.0).as_secs_f64();
            eprint!(
                "\r\x1b[K{:>5.1} s  {ok} completed  {failed} errors  {rate:.0} requests/s",
                now.duration_since(started).as_secs_f64()
            );
            last = (now, ok);
            next_report += Duration::from_secs(1);
        }
    }
    let mut total = Tally::new();
    for worker in workers {
        match worker.join() {
            Ok(tally) => total.merge(tally),
            Err(_) => return Err(Failure::Runtime("a connection's thread panicked".into())),
        }
    }
    // When the last thread stopped, not when this one noticed.
    let elapsed = total.ended.map_or_else(|| started.elapsed(), |end| end - started);
    if show_progress {
        eprint!("\r\x1b[K");
    }

    let report = Report { args: &args, tally: &total, elapsed, cpu: cpu_time() };
    let text = if args.json { report.json() } else { report.text() };
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            return Err(Failure::Runtime(format!("cannot write to stdout: {e}")));
        }
    }
    if total.ok == 0 {
        let why = total.first_error.iter().flatten().next().cloned();
        return Err(Failure::Runtime(format!(
            "no request succeeded{}",
            why.map(|w| format!(" (first error: {w})")).unwrap_or_default()
        )));
    }
    Ok(())
}

/// One connection's loop: until the duration is over or the budget spent.
fn drive(plan: &Plan, shared: &Shared, progress: &Progress) -> Tally {
    let mut tally = Tally::new();
    let mut buf = vec![0; READ_CHUNK];
    let mut kept: Option<Connection> = None;
    while !shared.stop.load(Ordering::Relaxed) {
        let batch = shared.claim(plan.mpx);
        if batch == 0 {
            break;
        }
        let started = Instant::now();
        let mut conn = match kept.take().filter(Connection::is_usable) {
            Some(conn) => conn,
            None => match Connection::connect_with(&plan.addr, plan.timeouts) {
                Ok(conn) => {
                    tally.connects += 1;
                    conn
                }
                Err(e) => {
                    tally.error(&e, batch, progress);
                    continue;
                }
            },
        };
        if batch == 1 {
            match one(&mut conn, plan, &mut buf) {
                Ok(bytes) => tally.success(started, bytes, progress),
                Err(Outcome::Error(e)) => tally.error(&e, 1, progress),
                Err(Outcome::Answer(kind, why)) => tally.failure(kind, 1, || why, progress),
            }
        } else {
            several(&mut conn, plan, batch, &mut tally, progress);
        }
        if plan.keep_conn {
            kept = Some(conn);
        }
    }
    tally.ended = Some(Instant::now());
    tally
}

/// Why a request that got through did not succeed.
enum Outcome {
    /// The client failed.
    Error(Error),
    /// The server answered, but not with a complete 200.
    Answer(Kind, String),
}

/// One request, its body read in chunks and dropped; the bytes of a successful response.
fn one(conn: &mut Connection, plan: &Plan, buf: &mut [u8]) -> Result<u64, Outcome> {
    let mut response = conn.request(plan.request()).map_err(Outcome::Error)?;
    let mut bytes = head_len(response.head());
    let status = response.status();
    loop {
        match response.read_body(buf).map_err(Outcome::Error)? {
            0 => break,
            n => bytes += n as u64,
        }
    }
    let finished = response.finish().map_err(Outcome::Error)?;
    if !finished.is_complete() {
        let status = finished.end.protocol_status;
        return Err(Outcome::Answer(Kind::of_end(status), fcgi_client::describe(status)));
    }
    check_status(status).map(|()| bytes)
}

/// `batch` requests sent on `conn` before any is received, each timed from its own send.
fn several(conn: &mut Connection, plan: &Plan, batch: u64, tally: &mut Tally, progress: &Progress) {
    let mut sent = Vec::with_capacity(batch as usize);
    for i in 0..batch {
        let started = Instant::now();
        match conn.send(plan.request()) {
            Ok(id) => sent.push((id, started)),
            Err(e) => {
                // The connection is unusable now: the rest of the batch goes nowhere either.
                tally.error(&e, batch - i, progress);
                break;
            }
        }
    }
    for (id, started) in sent {
        match conn.receive(id) {
            Ok(reply) if !reply.is_complete() => {
                let status = reply.end.protocol_status;
                let why = || fcgi_client::describe(status);
                tally.failure(Kind::of_end(status), 1, why, progress);
            }
            Ok(reply) => match check_status(reply.status()) {
                Ok(()) => {
                    let bytes = head_len(&reply.head) + reply.body.len() as u64;
                    tally.success(started, bytes, progress);
                }
                Err(Outcome::Answer(kind, why)) => tally.failure(kind, 1, || why, progress),
                Err(Outcome::Error(e)) => tally.error(&e, 1, progress),
            },
            Err(e) => tally.error(&e, 1, progress),
        }
    }
}

fn check_status(status: u16) -> Result<(), Outcome> {
    match status {
        200 => Ok(()),
        503 => Err(Outcome::Answer(Kind::Overloaded, "status 503".into())),
        other => Err(Outcome::Answer(Kind::Status, format!("status {other}"))),
    }
}

/// The length of the CGI head as the server most likely wrote it: `Name: value\r\n` per
/// header, the status line if it was not the default, and the empty line. (The client hands
/// out the parsed head, not its bytes.)
fn head_len(head: &ResponseHead) -> u64 {
    let headers: usize = head.headers.iter().map(|(n, v)| n.len() + v.len() + 4).sum();
    let status = if head.status == 200 { 0 } else { "Status: 200\r\n".len() };
    (headers + status + 2) as u64
}

/// The final report, as text or JSON.
struct Report<'a> {
    args: &'a BenchArgs,
    tally: &'a Tally,
    elapsed: Duration,
    /// CPU time this process used (user and system), when the system said.
    cpu: Option<Duration>,
}

/// CPU time used by this process so far, user and system: to tell whether the bench itself is
/// what limits the rate (near 100 % per core it may be).
fn cpu_time() -> Option<Duration> {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ProcessCPUTime);
    Some(Duration::new(t.tv_sec.try_into().ok()?, t.tv_nsec.try_into().ok()?))
}

impl Report<'_> {
    fn rate(&self) -> f64 {
        self.tally.ok as f64 / self.elapsed.as_secs_f64()
    }

    fn bytes_per_second(&self) -> f64 {
        self.tally.bytes as f64 / self.elapsed.as_secs_f64()
    }

    /// A latency percentile, in ms.
    fn percentile(&self, p: f64) -> f64 {
        self.tally.latency.value_at_quantile(p / 100.0) as f64 / 1000.0
    }

    /// Requests in flight on average, by Little's law: completions per second times the mean
    /// time each took. Below the connections × --mpx asked for, some of them waited on
    /// something other than the server's answer (or were not served at all).
    fn in_flight(&self) -> f64 {
        self.rate() * self.tally.latency.mean() / 1e6
    }

    /// CPU time used over wall time, in percent of one core.
    fn cpu_percent(&self) -> f64 {
        self.cpu.map_or(f64::NAN, |cpu| 100.0 * cpu.as_secs_f64() / self.elapsed.as_secs_f64())
    }

    fn mode(&self) -> String {
        let args = self.args;
        if !args.keep_conn {
            return "a new connection per request".into();
        }
        match args.mpx {
            1 => "kept, 1 request in flight on each".into(),
            n => format!("kept, {n} requests in flight on each"),
        }
    }

    fn text(&self) -> String {
        let (args, tally) = (self.args, self.tally);
        let ms = |us: f64| us / 1000.0;
        let mut out = String::new();
        let _ = writeln!(out, "fcgi bench {} {}", args.connect, args.script_path);
        let _ = writeln!(out, "connections: {} ({})", args.connections, self.mode());
        let _ = writeln!(
            out,
            "requests:    {} completed, {} errors, in {:.3} s",
            tally.ok,
            tally.failed(),
            self.elapsed.as_secs_f64()
        );
        let _ = writeln!(out, "rate:        {:.1} requests/s", self.rate());
        let _ = writeln!(
            out,
            "transfer:    {:.3} MiB/s (responses: CGI head and body)",
            self.bytes_per_second() / (1024.0 * 1024.0)
        );
        let _ = writeln!(
            out,
            "latency:     mean {:.3} ms, stdev {:.3} ms, max {:.3} ms",
            ms(tally.latency.mean()),
            ms(tally.latency.stdev()),
            ms(tally.latency.max() as f64)
        );
        for (name, p) in PERCENTILES {
            let _ = writeln!(out, "  {:<11}{:.3} ms", format!("{name}:"), self.percentile(p));
        }
        let _ = writeln!(
            out,
            "in flight:   {:.1} on average (requests/s × mean latency, Little's law)",
            self.in_flight()
        );
        let _ = writeln!(out, "opened:      {} connections", tally.connects);
        let _ = writeln!(
            out,
            "cpu:         {:.0} % of one core (fcgi bench itself)",
            self.cpu_percent()
        );
        let kinds: Vec<String> = Kind::ALL
            .iter()
            .map(|k| format!("{} {}", k.name(), tally.errors[*k as usize]))
            .collect();
        let _ = writeln!(out, "errors:      {}", kinds.join(", "));
        for kind in Kind::ALL {
            if let Some(first) = &tally.first_error[kind as usize] {
                let _ = writeln!(out, "  first {} error: {first}", kind.name());
            }
        }
        out
    }

    fn json(&self) -> String {
        use crate::json::{rounded, Members};
        let (args, tally) = (self.args, self.tally);
        let errors: Vec<(&str, u64)> =
            Kind::ALL.iter().map(|k| (k.name(), tally.errors[*k as usize])).collect();
        let percentiles: Vec<(&str, f64)> =
            PERCENTILES.iter().map(|(name, p)| (*name, rounded(self.percentile(*p), 3))).collect();
        let report = JsonReport {
            connect: args.connect.to_string(),
            script_path: &args.script_path,
            connections: args.connections,
            keep_conn: args.keep_conn,
            mpx: args.mpx,
            body: args.body.unwrap_or(0),
            seconds: rounded(self.elapsed.as_secs_f64(), 3),
            completed: tally.ok,
            errors: tally.failed(),
            errors_by_kind: Members(&errors),
            requests_per_s: rounded(self.rate(), 1),
            bytes: tally.bytes,
            bytes_per_s: rounded(self.bytes_per_second(), 1),
            latency_ms: Latency {
                mean: rounded(tally.latency.mean() / 1000.0, 3),
                stdev: rounded(tally.latency.stdev() / 1000.0, 3),
                max: rounded(tally.latency.max() as f64 / 1000.0, 3),
                percentiles: Members(&percentiles),
            },
            in_flight: rounded(self.in_flight(), 2),
            connections_opened: tally.connects,
            cpu_percent: rounded(self.cpu_percent(), 0),
        };
        let mut line = crate::json::to_string(&report);
        line.push('\n');
        line
    }
}

/// `fcgi bench --json`'s report, in this order; the numbers rounded as the text report shows
/// them.
#[derive(serde::Serialize)]
struct JsonReport<'a> {
    connect: String,
    script_path: &'a str,
    connections: usize,
    keep_conn: bool,
    mpx: usize,
    body: usize,
    seconds: f64,
    completed: u64,
    errors: u64,
    errors_by_kind: crate::json::Members<'a, u64>,
    requests_per_s: f64,
    bytes: u64,
    bytes_per_s: f64,
    latency_ms: Latency<'a>,
    in_flight: f64,
    connections_opened: u64,
    cpu_percent: f64,
}

/// Latencies in ms: mean, deviation, max, then the [`PERCENTILES`].
#[derive(serde::Serialize)]
struct Latency<'a> {
    mean: f64,
    stdev: f64,
    max: f64,
    #[serde(flatten)]
    percentiles: crate::json::Members<'a, f64>,
}

/// The percentiles reported, with their names.
const PERCENTILES: [(&str, f64); 4] =
    [("p50", 50.0), ("p90", 90.0), ("p99", 99.0), ("p99.9", 99.9)];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_is_claimed_in_batches_and_never_overdrawn() {
        let shared = Shared { stop: AtomicBool::new(false), budget: AtomicU64::new(10) };
        assert_eq!(shared.claim(4), 4);
        assert_eq!(shared.claim(4), 4);
        assert_eq!(shared.claim(4), 2);
        assert_eq!(shared.claim(4), 0);
        assert_eq!(shared.claim(1), 0);
    }

    #[test]
    fn json_strings_are_escaped() {
        assert_eq!(crate::json::string("a\"b\\c\n"), r#""a\"b\\c\u000a""#);
    }

    #[test]
    fn head_length_is_reconstructed() {
        let (head, len) =
            ResponseHead::parse(b"Content-Type: text/plain\r\n\r\n").unwrap().unwrap();
        assert_eq!(head_len(&head), len as u64);
    }
}
