//! `fcgi-fault-program`: a raw FastCGI program, of the kind `fcgi serve --app exec` runs (as
//! php-cgi or a libfcgi program is run), that fails in the way its arguments say. It accepts on
//! fd 0 (FCGI_LISTENSOCK_FILENO), serves one connection at a time and one request at a time,
//! keeps a connection only when FCGI_KEEP_CONN asks, reads PARAMS and STDIN whole, then answers.
//! `tests/integration/exec/faults.rs` runs it behind nginx and fcgi-rs.
//!
//! ```text
//! fcgi-fault-program [--mode MODE] [--after N] [--ms MS] [--unless-file PATH]
//! ```
//!
//! MODE (default `ok`), for every request of the process once `--after N` (default 0) requests
//! were answered ok; a request whose query string holds `mode=MODE` uses that mode instead:
//! - `ok`: `Status: 200`, `Content-Type: text/plain`, the body `pid=PID requests=K
//!   body_len=N\n` (K counts this process's requests, this one included), then the request
//!   body echoed byte for byte;
//! - `crash-before`: dies of SIGKILL before any output;
//! - `crash-during`: sends a 200 header and 1,000 bytes of body (a query's `bytes=N`: N),
//!   waits 100 ms (so that the web server has them), then `_exit(1)` with no END_REQUEST;
//! - `hang`: never answers;
//! - `exit-after`: answers the first N requests (`--after N`, at least 1) ok, then exits 0 right
//!   after the Nth END_REQUEST, as php-cgi does with PHP_FCGI_MAX_REQUESTS;
//! - `exit-at-start`: prints `fault-program: cannot start: config missing` on stderr and exits
//!   1 at once, unless the file `--unless-file PATH` exists (then it serves as `ok`);
//! - `garbage`: answers with an HTTP response, not FastCGI records, then closes;
//! - `stderr`: a line on fd 2 at start and per request, an FCGI_STDERR record per request,
//!   then the `ok` answer;
//! - `slow`: waits `--ms MS` (default 1000; a query's `ms=N` wins) then answers ok;
//! - `close-fd0`: closes fd 0 at start and sleeps: a program that cannot accept.
//! - `close-kept`: closes each connection after one request, even one asked to be kept.
//! - `close-on-abort`: waits `--ms` for an ABORT_REQUEST; one that comes closes the connection
//!   with no END_REQUEST (as php-cgi does when it meets one), and the process runs on.
//!
//! Bad arguments exit 2, a peer that breaks the protocol exits 3, each with a line on stderr.

use std::io::{self, Write};
use std::os::fd::FromRawFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::process::ExitCode;
use std::time::Duration;

use fcgi_codec::{
    BeginRequest, Body, Decoder, Encoder, EndRequest, Params, ParamsDecoder, ParamsLimits,
    ProtocolStatus, Role, StreamKind,
};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Ok,
    CrashBefore,
    CrashDuring,
    Hang,
    ExitAfter,
    ExitAtStart,
    Garbage,
    Stderr,
    Slow,
    CloseFd0,
    CloseKept,
    CloseOnAbort,
}

impl Mode {
    fn parse(name: &str) -> Option<Mode> {
        Some(match name {
            "ok" => Mode::Ok,
            "crash-before" => Mode::CrashBefore,
            "crash-during" => Mode::CrashDuring,
            "hang" => Mode::Hang,
            "exit-after" => Mode::ExitAfter,
            "exit-at-start" => Mode::ExitAtStart,
            "garbage" => Mode::Garbage,
            "stderr" => Mode::Stderr,
            "slow" => Mode::Slow,
            "close-fd0" => Mode::CloseFd0,
            "close-kept" => Mode::CloseKept,
            "close-on-abort" => Mode::CloseOnAbort,
            _ => return None,
        })
    }
}

/// What the arguments chose.
struct Options {
    mode: Mode,
    after: u64,
    ms: u64,
    unless_file: Option<String>,
}

/// One request, read whole.
struct Request {
    id: u16,
    keep_conn: bool,
    params: Params,
    stdin: Vec<u8>,
}

impl Request {
    /// The value of `name=` in the query string, if there is one.
    fn query(&self, name: &str) -> Option<String> {
        let query = self.params.get(b"QUERY_STRING").unwrap_or_default();
        let query = String::from_utf8_lossy(query);
        let value = query.split('&').find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='));
        value.map(str::to_owned)
    }
}

/// Leaves the process with `code` after a line on stderr: odd input never panics.
fn die(code: i32, message: &str) -> ! {
    eprintln!("fault-program: {message}");
    std::process::exit(code)
}

fn parse_args() -> Options {
    let mut options = Options { mode: Mode::Ok, after: 0, ms: 1000, unless_file: None };
    let mut args = std::env::args().skip(1);
    let usage = "usage: fcgi-fault-program [--mode MODE] [--after N] [--ms MS] [--unless-file P]";
    while let Some(arg) = args.next() {
        let value = args.next().unwrap_or_else(|| die(2, usage));
        let number = || value.parse::<u64>().unwrap_or_else(|_| die(2, &format!("{arg} {value}")));
        match arg.as_str() {
            "--mode" => {
                options.mode = Mode::parse(&value)
                    .unwrap_or_else(|| die(2, &format!("unknown mode {value}: {usage}")))
            }
            "--after" => options.after = number(),
            "--ms" => options.ms = number(),
            "--unless-file" => options.unless_file = Some(value),
            _ => die(2, usage),
        }
    }
    options
}

fn sleep_forever() -> ! {
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

fn main() -> ExitCode {
    let options = parse_args();
    let pid = std::process::id();
    match options.mode {
        Mode::ExitAtStart => {
            let fixed =
                options.unless_file.as_ref().is_some_and(|p| std::path::Path::new(p).exists());
            if !fixed {
                die(1, "cannot start: config missing");
            }
        }
        Mode::CloseFd0 => {
            // SAFETY: closing fd 0 touches no memory; nothing else in this process uses it.
            unsafe { libc::close(0) };
            sleep_forever();
        }
        Mode::Stderr => eprintln!("fault-program: started pid={pid}"),
        _ => {}
    }
    // SAFETY: fd 0 is the listening socket the parent handed over (FCGI_LISTENSOCK_FILENO),
    // and nothing else in this process owns it.
    let listener = unsafe { UnixListener::from_raw_fd(0) };
    let mut served = 0u64;
    loop {
        let conn = match listener.accept() {
            Ok((conn, _)) => conn,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => die(3, &format!("accept on fd 0: {e}")),
        };
        if let Err(e) = serve_connection(conn, &options, &mut served) {
            eprintln!("fault-program: connection: {e}");
        }
    }
}

/// Serves the requests of one connection until the peer closes it or a request without
/// FCGI_KEEP_CONN is answered.
fn serve_connection(mut conn: UnixStream, options: &Options, served: &mut u64) -> io::Result<()> {
    let mut decoder = Decoder::new();
    while let Some(request) = read_request(&mut conn, &mut decoder)? {
        *served += 1;
        let mut mode = if *served > options.after { options.mode } else { Mode::Ok };
        let mut exit = options.mode == Mode::ExitAfter && *served >= options.after.max(1);
        if let Some(name) = request.query("mode") {
            mode = Mode::parse(&name).unwrap_or(Mode::Ok);
            exit = mode == Mode::ExitAfter;
        }
        answer(&mut conn, &request, mode, options, *served)?;
        if exit {
            // The Nth END_REQUEST is out: leave now, as php-cgi does at its request limit.
            std::process::exit(0);
        }
        // close-kept: one request per connection whatever FCGI_KEEP_CONN says, as programs
        // built on libfcgi's FCGI_Accept or older FastCGI libraries do.
        if !request.keep_conn || matches!(mode, Mode::Garbage | Mode::CloseKept) {
            break;
        }
    }
    Ok(())
}

/// Reads records until one request is whole; `None` if the peer closed between requests.
/// Management records are answered on the way, and a second request id refused.
fn read_request(conn: &mut UnixStream, decoder: &mut Decoder) -> io::Result<Option<Request>> {
    let encoder = Encoder::new();
    let mut begun: Option<(u16, bool)> = None;
    let mut params = ParamsDecoder::new(ParamsLimits::default());
    let mut params_done: Option<Params> = None;
    let mut stdin = Vec::new();
    let mut stdin_done = false;
    loop {
        let mut out = Vec::new();
        loop {
            let record = match decoder.decode() {
                Ok(Some(record)) => record,
                Ok(None) => break,
                Err(e) => die(3, &format!("not FastCGI from the web server: {e}")),
            };
            let id = record.request_id;
            let current = begun.map(|(current, _)| current);
            match record.body {
                Body::GetValues(_) => encoder.get_values_result(
                    &mut out,
                    [("FCGI_MAX_CONNS", "1"), ("FCGI_MAX_REQS", "1"), ("FCGI_MPXS_CONNS", "0")],
                )?,
                Body::BeginRequest(_) if current.is_some() => {
                    encoder.end_request(&mut out, id, &refused(ProtocolStatus::CantMpxConn))?;
                }
                Body::BeginRequest(BeginRequest { role, flags }) if role != Role::Responder => {
                    encoder.end_request(&mut out, id, &refused(ProtocolStatus::UnknownRole))?;
                    if flags & BeginRequest::KEEP_CONN == 0 {
                        conn.write_all(&out)?;
                        return Ok(None);
                    }
                }
                Body::BeginRequest(begin) => begun = Some((id, begin.keep_conn())),
                _ if id == 0 => encoder.unknown_type(&mut out, record.body.record_type())?,
                _ if Some(id) != current => {} // a record of a request already ended
                Body::AbortRequest => {
                    // Given up before it was whole: ended, and forgotten.
                    encoder.end_request(&mut out, id, &EndRequest::complete(0))?;
                    let keep_conn = begun.take().is_some_and(|(_, keep)| keep);
                    (params, params_done) = (ParamsDecoder::new(ParamsLimits::default()), None);
                    (stdin, stdin_done) = (Vec::new(), false);
                    if !keep_conn {
                        conn.write_all(&out)?;
                        return Ok(None);
                    }
                }
                Body::Params(b"") => {
                    let whole =
                        std::mem::replace(&mut params, ParamsDecoder::new(ParamsLimits::default()));
                    params_done =
                        Some(whole.finish().unwrap_or_else(|e| die(3, &format!("params: {e}"))));
                }
                Body::Params(chunk) => {
                    params.push(chunk).unwrap_or_else(|e| die(3, &format!("params: {e}")));
                }
                Body::Stdin(b"") => stdin_done = true,
                Body::Stdin(chunk) => stdin.extend_from_slice(chunk),
                _ => {} // DATA, and what a web server does not send
            }
        }
        conn.write_all(&out)?;
        if let (Some((id, keep_conn)), true) = (begun, stdin_done) {
            if let Some(params) = params_done.take() {
                return Ok(Some(Request { id, keep_conn, params, stdin }));
            }
        }
        if decoder.read_from(conn)? == 0 {
            if begun.is_some() || !decoder.is_empty() {
                eprintln!("fault-program: the web server closed a connection mid-request");
            }
            return Ok(None);
        }
    }
}

/// An END_REQUEST that refuses a request with `status`.
fn refused(status: ProtocolStatus) -> EndRequest {
    EndRequest { app_status: 0, protocol_status: status }
}

/// The `ok` answer: head, the line that says who answered, the body echoed.
fn ok_response(request: &Request, served: u64) -> Vec<u8> {
    let pid = std::process::id();
    let mut text = b"Status: 200\r\nContent-Type: text/plain\r\n\r\n".to_vec();
    let line = format!("pid={pid} requests={served} body_len={}\n", request.stdin.len());
    text.extend_from_slice(line.as_bytes());
    text.extend_from_slice(&request.stdin);
    text
}

/// Whether an ABORT_REQUEST for `id` comes within `wait` (or the connection ends).
fn aborted_within(conn: &mut UnixStream, id: u16, wait: Duration) -> io::Result<bool> {
    let deadline = std::time::Instant::now() + wait;
    let mut decoder = Decoder::new();
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            conn.set_read_timeout(None)?;
            return Ok(false);
        }
        conn.set_read_timeout(Some(left))?;
        match decoder.read_from(conn) {
            Ok(0) => return Ok(true),
            Ok(_) => {}
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {}
            Err(e) => return Err(e),
        }
        while let Ok(Some(record)) = decoder.decode() {
            if record.request_id == id && matches!(record.body, Body::AbortRequest) {
                return Ok(true);
            }
        }
    }
}

fn answer(
    conn: &mut UnixStream,
    request: &Request,
    mode: Mode,
    options: &Options,
    served: u64,
) -> io::Result<()> {
    let encoder = Encoder::new();
    let id = request.id;
    let mut out = Vec::new();
    match mode {
        Mode::CrashBefore => {
            // SAFETY: raise(3) has no memory effects; SIGKILL cannot be caught.
            unsafe { libc::raise(libc::SIGKILL) };
            die(3, "still alive after SIGKILL");
        }
        Mode::CrashDuring => {
            let head = b"Status: 200\r\nContent-Type: text/plain\r\n\r\n";
            encoder.stream(&mut out, StreamKind::Stdout, id, head)?;
            let len = request.query("bytes").and_then(|n| n.parse().ok()).unwrap_or(1000);
            encoder.stream(&mut out, StreamKind::Stdout, id, &vec![b'x'; len])?;
            conn.write_all(&out)?;
            std::thread::sleep(Duration::from_millis(100));
            // SAFETY: _exit(2) ends the process at once, as a crash would: no END_REQUEST.
            unsafe { libc::_exit(1) };
        }
        Mode::Hang => sleep_forever(),
        Mode::Garbage => {
            conn.write_all(
                b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello",
            )?;
            return Ok(());
        }
        Mode::Slow => {
            let ms = request.query("ms").and_then(|ms| ms.parse().ok()).unwrap_or(options.ms);
            std::thread::sleep(Duration::from_millis(ms));
        }
        Mode::CloseOnAbort => {
            let ms = request.query("ms").and_then(|ms| ms.parse().ok()).unwrap_or(options.ms);
            eprintln!("fault-program: waiting for an abort");
            if aborted_within(conn, id, Duration::from_millis(ms))? {
                return Err(io::Error::other("aborted: connection closed unanswered"));
            }
        }
        Mode::Stderr => {
            eprintln!("fault-program: request {served} pid={}", std::process::id());
            let line = format!("fcgi-stderr: request {served}\n");
            encoder.stream(&mut out, StreamKind::Stderr, id, line.as_bytes())?;
            encoder.end_stream(&mut out, StreamKind::Stderr, id)?;
        }
        Mode::Ok | Mode::ExitAfter | Mode::ExitAtStart | Mode::CloseFd0 | Mode::CloseKept => {}
    }
    encoder.stream(&mut out, StreamKind::Stdout, id, &ok_response(request, served))?;
    encoder.end_stream(&mut out, StreamKind::Stdout, id)?;
    encoder.end_request(&mut out, id, &EndRequest::complete(0))?;
    conn.write_all(&out)
}
