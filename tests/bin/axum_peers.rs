//! `axum-peers`: the one axum app of [`fcgi_tests::axum_app`], served the ways `make bench`
//! compares behind the same nginx.
//!
//! ```text
//! axum-peers hyper --listen tcp:127.0.0.1:PORT          axum::serve on a tokio TcpListener
//! axum-peers tokio-fastcgi --listen unix:PATH           tokio-fastcgi 1.x, glued to the Router
//! axum-peers fcgi-rs --listen unix:PATH                 fcgi-rs, through fcgi_http::serve
//! ```
//!
//! hyper is what an axum user runs today (nginx `proxy_pass`). The tokio-fastcgi mode is the
//! glue an app author writes to put a Router behind FastCGI with that crate: CGI params to an
//! `http::Request` (method, `REQUEST_URI`, `HTTP_*` headers, `CONTENT_TYPE`,
//! `CONTENT_LENGTH`, the buffered stdin as the body), and the `http::Response` back as a CGI
//! head (`Status:` and the headers) and the body, in one STDOUT write. Both run on tokio's
//! default multi-threaded runtime (a worker per core).

use std::process::ExitCode;

use axum::body::Body;
use axum::http::{header, HeaderName, HeaderValue, Method, Request, Response};
use axum::Router;
use fcgi_tests::axum_app;
use tokio::net::{TcpListener, UnixListener, UnixStream};
use tokio_fastcgi::{RequestResult, Requests};
use tower::ServiceExt;

/// Most connections and requests per connection tokio-fastcgi announces to the web server
/// (FCGI_MAX_CONNS, FCGI_MAX_REQS; a u8 in that crate). nginx does not ask.
const TOKIO_FASTCGI_MAX: u8 = 255;

const USAGE: &str = "usage: axum-peers hyper --listen tcp:HOST:PORT\n       \
                     axum-peers tokio-fastcgi --listen unix:PATH\n       \
                     axum-peers fcgi-rs --listen unix:PATH";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let strs: Vec<&str> = args.iter().map(String::as_str).collect();
    match strs.as_slice() {
        [mode, "--listen", listen] => match run(mode, listen) {
            Ok(code) => code,
            Err(e) => {
                eprintln!("axum-peers: {e}");
                ExitCode::FAILURE
            }
        },
        _ => {
            eprintln!("{USAGE}");
            ExitCode::from(2)
        }
    }
}

fn run(mode: &str, listen: &str) -> Result<ExitCode, String> {
    if mode == "fcgi-rs" {
        return fcgi_rs::serve(listen);
    }
    let runtime = tokio::runtime::Runtime::new().map_err(|e| format!("no tokio runtime: {e}"))?;
    runtime.block_on(async {
        match (mode, listen.split_once(':')) {
            ("hyper", Some(("tcp", addr))) => {
                let listener = TcpListener::bind(addr)
                    .await
                    .map_err(|e| format!("cannot bind {addr}: {e}"))?;
                axum::serve(listener, axum_app::router())
                    .await
                    .map_err(|e| format!("axum::serve: {e}"))?;
            }
            ("tokio-fastcgi", Some(("unix", path))) => {
                let _ = std::fs::remove_file(path);
                let listener =
                    UnixListener::bind(path).map_err(|e| format!("cannot bind {path}: {e}"))?;
                serve_tokio_fastcgi(listener, axum_app::router()).await;
            }
            _ => return Err(format!("{mode} --listen {listen}: not a mode and address\n{USAGE}")),
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// tokio-fastcgi's accept loop, as its examples have it: a task per connection, its requests
/// taken in turn.
async fn serve_tokio_fastcgi(listener: UnixListener, app: Router) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                eprintln!("axum-peers: accept: {e}");
                continue;
            }
        };
        tokio::spawn(connection(stream, app.clone()));
    }
}

async fn connection(stream: UnixStream, app: Router) {
    let (read, write) = stream.into_split();
    let mut requests = Requests::new(read, write, TOKIO_FASTCGI_MAX, TOKIO_FASTCGI_MAX);
    while let Ok(Some(request)) = requests.next().await {
        let app = app.clone();
        let processed = request
            .process(|request| async move {
                let mut stdout = request.get_stdout();
                let http = match to_http(&request) {
                    Some(http) => http,
                    None => {
                        let _ = stdout.write(b"Status: 400 Bad Request\r\n\r\n").await;
                        return RequestResult::Complete(0);
                    }
                };
                let response = app.oneshot(http).await.unwrap_or_else(|never| match never {});
                let _ = stdout.write(&cgi_response(response).await).await;
                RequestResult::Complete(0)
            })
            .await;
        if let Err(e) = processed {
            eprintln!("axum-peers: tokio-fastcgi: {e}");
            break;
        }
    }
}

/// The CGI params and stdin of a FastCGI request as an `http::Request`; `None` when the params
/// do not make one (no method, an unparsable URI).
fn to_http<W: tokio::io::AsyncWrite + Unpin>(
    request: &tokio_fastcgi::Request<W>,
) -> Option<Request<Body>> {
    let param = |name| request.get_str_param(name);
    let method = Method::from_bytes(param("request_method")?.as_bytes()).ok()?;
    let uri = match param("request_uri") {
        Some(uri) => uri.to_owned(),
        None => {
            let path =
                param("script_name").unwrap_or("/").to_owned() + param("path_info").unwrap_or("");
            match param("query_string").filter(|q| !q.is_empty()) {
                Some(query) => format!("{path}?{query}"),
                None => path,
            }
        }
    };
    let mut builder = Request::builder().method(method).uri(uri);
    for (name, value) in request.str_params_iter()? {
        let (Some(value), Some(name)) = (value, header_name(name)) else { continue };
        if let Ok(value) = HeaderValue::from_str(value) {
            builder = builder.header(name, value);
        }
    }
    let mut body = Vec::new();
    std::io::Read::read_to_end(&mut *request.get_stdin(), &mut body).ok()?;
    builder.body(Body::from(body)).ok()
}

/// The HTTP header a CGI param carries: `HTTP_ACCEPT_LANGUAGE` is `accept-language`, and
/// `CONTENT_TYPE` and `CONTENT_LENGTH` are themselves. (tokio-fastcgi hands the names over in
/// lower case.)
fn header_name(param: &str) -> Option<HeaderName> {
    let lower = param.to_ascii_lowercase();
    match lower.as_str() {
        "content_type" => Some(header::CONTENT_TYPE),
        "content_length" => Some(header::CONTENT_LENGTH),
        _ => HeaderName::from_bytes(lower.strip_prefix("http_")?.replace('_', "-").as_bytes()).ok(),
    }
}

/// An `http::Response` as a CGI response: `Status:`, the headers, an empty line, the body.
async fn cgi_response(response: Response<Body>) -> Vec<u8> {
    let (head, body) = response.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX).await.unwrap_or_default();
    let mut out = Vec::with_capacity(128 + body.len());
    out.extend_from_slice(format!("Status: {}\r\n", head.status).as_bytes());
    for (name, value) in &head.headers {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(&body);
    out
}

/// The fcgi-rs mode: the Router through fcgi-http.
mod fcgi_rs {
    use std::process::ExitCode;

    pub(crate) fn serve(listen: &str) -> Result<ExitCode, String> {
        fcgi_http::serve(listen, fcgi_tests::axum_app::router())
            .map_err(|e| format!("fcgi_http::serve({listen}): {e}"))?;
        Ok(ExitCode::SUCCESS)
    }
}
