//! `fcgi request`: one request to a FastCGI server, its response printed; a health check.

use std::fs::File;
use std::io::{self, Read, Write};
use std::time::Duration;

use fcgi_client::{Connection, Error, Request, Response, Role, Timeouts, STANDARD_VALUES};

use crate::args::{RequestArgs, RequestRole};
use crate::Failure;

pub(crate) fn run(args: RequestArgs) -> Result<(), Failure> {
    if args.stdin.is_some() && args.role == RequestRole::Authorizer {
        return Err(Failure::Usage("an authorizer request has no body: drop --stdin".into()));
    }
    let timeouts = Timeouts::all(Duration::from_secs(args.timeout));
    let addr = &args.connect;
    let connect = || Connection::connect_with(addr, timeouts).map_err(|e| fail(&args, e));
    if args.get_values {
        let values = connect()?.get_values(STANDARD_VALUES).map_err(|e| fail(&args, e))?;
        let mut out = io::stdout().lock();
        for (name, value) in values {
            ignore_broken_pipe(writeln!(out, "{name}={value}"))?;
        }
        ignore_broken_pipe(out.flush())?;
    }
    let Some(script_path) = args.script_path.as_deref() else { return Ok(()) };

    let body = open_body(&args)?;
    let content_length = body.as_ref().map(|body| body.len);
    let params =
        cgi_params(script_path, args.method.as_deref(), args.role, &args.params, content_length);
    let role = match args.role {
        RequestRole::Responder => Role::Responder,
        RequestRole::Authorizer => Role::Authorizer,
        RequestRole::Filter => Role::Filter,
    };
    let mut request = Request::new().role(role).params(params);
    if let Some(body) = body {
        request = request.stdin(body.reader);
    }
    let mut conn = connect()?;
    let response = match conn.request(request) {
        Ok(response) => response,
        Err(Error::NoResponse { request_id, end, stderr }) => {
            let _ = io::stderr().write_all(&stderr);
            return Err(fail(&args, Error::NoResponse { request_id, end, stderr: Vec::new() }));
        }
        Err(e) => return Err(fail(&args, e)),
    };
    let status = response.status();
    let (finished, write_error) = match print_response(response, args.include) {
        Ok(printed) => printed,
        Err(Error::CutShort { request_id, body_bytes, ending, stderr }) => {
            // The body that came is on stdout; what the application wrote to FCGI_STDERR goes
            // to stderr before the reason, as for a complete response.
            let _ = io::stderr().write_all(&stderr);
            let error = Error::CutShort { request_id, body_bytes, ending, stderr: Vec::new() };
            return Err(fail(&args, error));
        }
        Err(e) => return Err(fail(&args, e)),
    };
    let _ = io::stderr().write_all(&finished.stderr);
    ignore_broken_pipe(write_error.map_or(Ok(()), Err))?;
    if !finished.is_complete() {
        return Err(Failure::Runtime(format!(
            "{addr}: the request ended incomplete: {}",
            fcgi_client::describe(finished.end.protocol_status)
        )));
    }
    match args.expect_status {
        Some(expected) if expected != status => {
            Err(Failure::Runtime(format!("{addr}: expected status {expected}, got {status}")))
        }
        _ => Ok(()),
    }
}

/// A client error as a one-line failure that names the server.
fn fail(args: &RequestArgs, error: Error) -> Failure {
    match error {
        // It names the address already.
        Error::Connect { .. } => Failure::Runtime(error.to_string()),
        _ => Failure::Runtime(format!("{}: {error}", args.connect)),
    }
}

/// A reader closing our stdout (`| head`) is not a failure: stop writing, quietly.
fn ignore_broken_pipe(result: io::Result<()>) -> Result<(), Failure> {
    match result {
        Err(e) if e.kind() != io::ErrorKind::BrokenPipe => {
            Err(Failure::Runtime(format!("cannot write to stdout: {e}")))
        }
        _ => Ok(()),
    }
}

/// A request body and its length, for CONTENT_LENGTH.
struct Body {
    reader: Box<dyn Read>,
    len: u64,
}

/// The body: a regular file is streamed, anything else (`-`, a pipe) is read whole first,
/// since CONTENT_LENGTH must be sent before it.
fn open_body(args: &RequestArgs) -> Result<Option<Body>, Failure> {
    let Some(path) = &args.stdin else { return Ok(None) };
    let cannot = |e: io::Error| Failure::Runtime(format!("cannot read {}: {e}", path.display()));
    let mut source: Box<dyn Read> = if path.as_os_str() == "-" {
        Box::new(io::stdin().lock())
    } else {
        let file = File::open(path).map_err(cannot)?;
        let meta = file.metadata().map_err(cannot)?;
        if meta.is_file() {
            return Ok(Some(Body { reader: Box::new(file), len: meta.len() }));
        }
        Box::new(file)
    };
    let mut spooled = Vec::new();
    source.read_to_end(&mut spooled).map_err(cannot)?;
    let len = u64::try_from(spooled.len()).unwrap_or(u64::MAX);
    Ok(Some(Body { reader: Box::new(io::Cursor::new(spooled)), len }))
}

/// The CGI params for SCRIPT_PATH (with `method`, else GET, or POST when there is a body),
/// then the `overrides` (--param) over them. `fcgi bench` sends the same.
pub(crate) fn cgi_params(
    script_path: &str,
    method: Option<&str>,
    role: RequestRole,
    overrides: &[(String, String)],
    content_length: Option<u64>,
) -> Vec<(String, String)> {
    let (path, query) = script_path.split_once('?').unwrap_or((script_path, ""));
    let method = method.unwrap_or(if content_length.is_some() { "POST" } else { "GET" }).to_owned();
    let authorizer = role == RequestRole::Authorizer;
    let mut params: Vec<(String, String)> = [
        ("GATEWAY_INTERFACE", "CGI/1.1"),
        ("SERVER_SOFTWARE", concat!("fcgi-rs/", env!("CARGO_PKG_VERSION"))),
        ("SERVER_PROTOCOL", "HTTP/1.1"),
        ("SERVER_NAME", "localhost"),
        ("SERVER_PORT", "80"),
        ("REMOTE_ADDR", "127.0.0.1"),
        ("REQUEST_METHOD", &method),
        ("SCRIPT_FILENAME", path),
        ("REQUEST_URI", script_path),
        ("QUERY_STRING", query),
    ]
    .into_iter()
    .map(|(name, value)| (name.to_owned(), value.to_owned()))
    .collect();
    // The spec sends an authorizer neither SCRIPT_NAME nor CONTENT_LENGTH.
    if !authorizer {
        params.push(("SCRIPT_NAME".into(), path.into()));
        if let Some(len) = content_length {
            params.push(("CONTENT_LENGTH".into(), len.to_string()));
        }
    }
    if role == RequestRole::Filter {
        params.push(("FCGI_DATA_LENGTH".into(), "0".into()));
        params.push(("FCGI_DATA_LAST_MOD".into(), "0".into()));
    }
    for (name, value) in overrides {
        match params.iter_mut().find(|(n, _)| n == name) {
            Some(param) => param.1.clone_from(value),
            None => params.push((name.clone(), value.clone())),
        }
    }
    params
}

/// Prints the head (with `-i`) and the body as it arrives, then reads to the end.
fn print_response(
    mut response: Response<'_>,
    include: bool,
) -> Result<(fcgi_client::Finished, Option<io::Error>), Error> {
    let mut out = io::stdout().lock();
    let mut write_error = None;
    let mut write = |out: &mut io::StdoutLock<'_>, bytes: &[u8]| {
        // After a failed write, the rest of the body is read and dropped.
        if write_error.is_none() {
            write_error = out.write_all(bytes).err();
        }
    };
    if include {
        let head = response.head();
        let reason = head.reason.as_deref().map(|r| format!(" {r}")).unwrap_or_default();
        let mut text = format!("Status: {}{reason}\n", head.status);
        for (name, value) in &head.headers {
            text.push_str(&format!("{name}: {value}\n"));
        }
        text.push('\n');
        write(&mut out, text.as_bytes());
    }
    let mut buf = vec![0; 64 * 1024];
    loop {
        let n = match response.read_body(&mut buf) {
            Ok(n) => n,
            Err(e) => {
                // What came before the failure is shown before the reason.
                let _ = out.flush();
                return Err(e);
            }
        };
        if n == 0 {
            break;
        }
        write(&mut out, &buf[..n]);
    }
    if write_error.is_none() {
        write_error = out.flush().err();
    }
    Ok((response.finish()?, write_error))
}
