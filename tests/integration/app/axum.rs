//! An axum app over FastCGI with fcgi-http, behind a real nginx: the `axum_items` example of
//! fcgi-http run as a real process (every route, a 64 MiB upload in bounded memory, a
//! response streamed as it is written, axum's rejections with their reason phrases, draining
//! on TERM), and, in the test process, responses that fail after their header went out.

use std::convert::Infallible;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::routing::get;
use axum::Router;
use fcgi_codec::StreamKind;
use fcgi_server::Role;
use fcgi_tests::addr::{Addr, Transport};
use fcgi_tests::data::pattern;
use fcgi_tests::http::{self, HttpResponse};
use fcgi_tests::inproc::{self, TestServer};
use fcgi_tests::nginx::{scratch, Nginx, Site};
use fcgi_tests::process::{wait_until, Guarded, START_TIMEOUT};
use fcgi_tests::raw::{frames, Reply};
use sha2::{Digest, Sha256};

/// The `axum_items` example, which `make test` builds (`cargo build --workspace --examples`).
fn items_example() -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable has a path");
    let profile = exe.parent().and_then(Path::parent).expect("target/<profile>");
    let bin = profile.join("examples").join("axum_items");
    assert!(
        bin.exists(),
        "{} is missing: `cargo build -p fcgi-http --examples` (or `make test`)",
        bin.display()
    );
    bin
}

/// The example on a Unix socket in `dir`, nginx (`fcgi-unix.conf`) in front of it.
struct Items {
    app: Guarded,
    socket: PathBuf,
    log: PathBuf,
    nginx: Nginx,
}

impl Items {
    fn start(dir: &Path) -> Items {
        let socket = dir.join("items.sock");
        let log = dir.join("items.log");
        let mut command = Command::new(items_example());
        command.arg("--listen").arg(format!("unix:{}", socket.display()));
        let mut app = Guarded::spawn("axum_items", command, &log);
        let addr = Addr::Unix(socket.clone());
        let up = wait_until(START_TIMEOUT, || !app.is_running() || addr.accepts());
        assert!(up && app.is_running(), "{}", std::fs::read_to_string(&log).unwrap_or_default());
        let nginx = Nginx::start(dir, Site::Unix, &addr.site_vars());
        Items { app, socket, log, nginx }
    }

    fn get(&self, path: &str) -> HttpResponse {
        self.nginx.get(path).unwrap_or_else(|e| panic!("GET {path}: {e}"))
    }

    fn post(&self, path: &str, content_type: &str, body: &[u8]) -> HttpResponse {
        self.nginx.post(path, content_type, body).unwrap_or_else(|e| panic!("POST {path}: {e}"))
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

fn json(response: &HttpResponse) -> serde_json::Value {
    serde_json::from_slice(&response.body)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", response.body_text()))
}

/// One request to 127.0.0.1:`port` as raw bytes; the whole raw response (status line and
/// all), read until nginx closes.
fn raw_exchange(port: u16, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("nginx accepts");
    stream.set_read_timeout(Some(Duration::from_secs(30))).expect("a timeout");
    stream.write_all(request).expect("the request goes out");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).expect("the response");
    String::from_utf8_lossy(&raw).into_owned()
}

#[test]
fn every_route_answers_through_nginx_and_the_app_drains_on_term() {
    let dir = scratch();
    let mut items = Items::start(dir.path());

    let empty = items.get("/items");
    assert_eq!((empty.status, empty.header("Content-Type")), (200, Some("application/json")));
    assert_eq!(json(&empty), serde_json::json!([]));

    let created = items.post("/items", "application/json", br#"{"name": "teapot"}"#);
    assert_eq!(created.status, 201, "{}", created.body_text());
    assert_eq!(created.header("Location"), Some("/items/1"));
    assert_eq!(json(&created), serde_json::json!({"id": 1, "name": "teapot"}));
    items.post("/items", "application/json", br#"{"name": "kettle"}"#);

    let all = items.get("/items");
    assert_eq!(
        json(&all),
        serde_json::json!([{"id": 1, "name": "teapot"}, {"id": 2, "name": "kettle"}])
    );
    let one = items.get("/items/2");
    assert_eq!((one.status, json(&one)), (200, serde_json::json!({"id": 2, "name": "kettle"})));
    let missing = items.get("/items/99");
    assert_eq!(missing.status, 404);
    assert_eq!(missing.header("Content-Type"), Some("application/json"));
    assert_eq!(json(&missing), serde_json::json!({"error": "no item 99"}));

    // REMOTE_ADDR, as axum's ConnectInfo: the test connects to nginx from loopback.
    let client = items.get("/client");
    assert_eq!(json(&client), serde_json::json!({"remote_addr": "127.0.0.1"}));

    // No route: axum's own 404, passed on.
    assert_eq!(items.get("/nowhere").status, 404);

    items.app.signal(libc::SIGTERM);
    let status = items.app.wait_exit(Duration::from_secs(10)).expect("it stopped on TERM");
    assert!(status.success(), "{status:?}: {}", items.log());
    assert!(!items.socket.exists(), "its socket file is removed");
}

#[test]
fn axum_rejections_pass_through_with_their_reason_phrases() {
    let dir = scratch();
    let items = Items::start(dir.path());
    let port = items.nginx.port();

    let bad_json = b"{\"name\": ";
    let request = format!(
        "POST /items HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        bad_json.len()
    );
    let raw = raw_exchange(port, &[request.as_bytes(), bad_json].concat());
    assert!(raw.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{raw}");
    // axum's own message, not a canned one.
    assert!(raw.contains("Failed to parse the request body as JSON"), "{raw}");

    let body = br#"{"name": "no type"}"#;
    let request = format!(
        "POST /items HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\
         Content-Length: {}\r\n\r\n",
        body.len()
    );
    let raw = raw_exchange(port, &[request.as_bytes(), body].concat());
    assert!(raw.starts_with("HTTP/1.1 415 Unsupported Media Type\r\n"), "{raw}");
    assert!(raw.contains("Expected request with `Content-Type: application/json`"), "{raw}");

    // JSON of the wrong shape: 422, as axum answers it.
    let wrong = items.post("/items", "application/json", br#"{"title": "x"}"#);
    assert_eq!(wrong.status, 422, "{}", wrong.body_text());
    // Nothing was created by any of them.
    assert_eq!(json(&items.get("/items")), serde_json::json!([]));
}

#[test]
fn a_64_mib_upload_is_hashed_in_bounded_memory() {
    const SIZE: usize = 64 * 1024 * 1024;
    /// How far the app's peak RSS may rise over its RSS before the upload: the body is 64 MiB,
    /// so a body held whole would pass it.
    const MAX_GROWTH_KIB: u64 = 48 * 1024;

    let dir = scratch();
    let items = Items::start(dir.path());
    // Warm up (the runtime and the pool's threads start at the first requests).
    for _ in 0..8 {
        assert_eq!(items.get("/items").status, 200);
    }
    let baseline = items.app.rss_kib();
    assert!(baseline > 0, "RSS from /proc");

    let body = pattern(SIZE, 64);
    let want = format!("{:x}", Sha256::digest(&body));
    let response = items.post("/upload", "application/octet-stream", &body);
    assert_eq!(response.status, 200, "{}", response.body_text());
    assert_eq!(json(&response), serde_json::json!({"bytes": SIZE, "sha256": want}));

    let peak = items.app.peak_rss_kib();
    assert!(
        peak < baseline + MAX_GROWTH_KIB,
        "peak RSS {peak} KiB, {} KiB over the {baseline} KiB before the upload",
        peak - baseline
    );
}

#[test]
fn a_stream_reaches_the_client_as_it_is_written() {
    let dir = scratch();
    let items = Items::start(dir.path());
    let mut stream = TcpStream::connect(("127.0.0.1", items.nginx.port())).expect("nginx accepts");
    stream.set_read_timeout(Some(Duration::from_secs(30))).expect("a timeout");
    let started = Instant::now();
    stream
        .write_all(
            b"GET /stream?n=5&ms=200 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
        )
        .expect("the request goes out");

    // When each `tick i` line arrived, as the bytes come in.
    let mut raw = Vec::new();
    let mut arrived = Vec::new();
    let mut piece = [0u8; 4096];
    loop {
        let n = stream.read(&mut piece).expect("the response");
        if n == 0 {
            break;
        }
        raw.extend_from_slice(&piece[..n]);
        let text = String::from_utf8_lossy(&raw);
        while text.contains(&format!("tick {}\n", arrived.len())) {
            arrived.push(started.elapsed());
        }
    }
    let response = http::parse_response(&raw).expect("a whole response");
    assert_eq!(response.status, 200);
    assert_eq!(response.body_text(), "tick 0\ntick 1\ntick 2\ntick 3\ntick 4\n");
    assert_eq!(arrived.len(), 5, "{arrived:?}");
    // The app waits 200 ms between lines: 800 ms from the first to the last. Buffered
    // anywhere on the way, they would arrive together.
    let spread = arrived[4] - arrived[0];
    assert!(spread >= Duration::from_millis(600), "all within {spread:?}: {arrived:?}");
    for pair in arrived.windows(2) {
        assert!(pair[1] - pair[0] >= Duration::from_millis(100), "{arrived:?}");
    }
}

/// `n` lines, then what `end` does: a clean end, an error, or a panic.
fn lines_then(n: usize, end: &'static str) -> Body {
    let lines = futures_util::stream::unfold(0, move |i| async move {
        if i < n {
            if i > 0 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            return Some((Ok::<_, std::io::Error>(Bytes::from(format!("line {i}\n"))), i + 1));
        }
        match end {
            "error" => Some((Err(std::io::Error::other("the data source went away")), i + 1)),
            "panic" => panic!("the body panics after {n} lines"),
            _ => None,
        }
    });
    Body::from_stream(lines)
}

/// An axum app whose responses fail in every way, in the test process, behind nginx.
fn failing_app() -> Router {
    let streamed = |body: Body| ([("X-Accel-Buffering", "no")], body);
    Router::new()
        .route("/whole", get(move || async move { streamed(lines_then(3, "end")) }))
        .route("/error-after-header", get(move || async move { streamed(lines_then(3, "error")) }))
        .route("/panic-after-header", get(move || async move { streamed(lines_then(3, "panic")) }))
        .route(
            "/panic-before-header",
            get(|| async {
                if true {
                    panic!("the handler panics before answering");
                }
                Ok::<_, Infallible>("never")
            }),
        )
}

#[test]
fn a_response_that_fails_after_its_header_reaches_the_client_as_a_failure() {
    let dir = scratch();
    let server = TestServer::start_on(Transport::Unix, inproc::config(), |builder| {
        builder.handler(Role::Responder, fcgi_http::Service::new(failing_app()))
    });
    let nginx = Nginx::start(dir.path(), Site::Unix, &server.addr().site_vars());

    // The same stream, ended cleanly: whole.
    let whole = nginx.get("/whole").expect("a whole response");
    assert_eq!((whole.status, whole.body_text().as_str()), (200, "line 0\nline 1\nline 2\n"));

    for path in ["/error-after-header", "/panic-after-header"] {
        // The header and the first lines went out: nginx passes on a 200 it cannot finish,
        // and its client sees the chunked body end without its last chunk.
        let failed = nginx.get(path);
        let error = failed.expect_err(&format!("{path} was passed on as a whole response"));
        assert!(error.to_string().contains("cut short"), "{path}: {error}");
        let logged = server.logs().lines().into_iter().any(|line| {
            line.contains(&format!("; uri={path};")) && line.contains("; cut_short=true")
        });
        assert!(logged, "{path}: no cut_short=true in {:?}", server.logs().lines());
    }

    // Before anything went out, a panic is a plain 500.
    let early = nginx.get("/panic-before-header").expect("a response");
    assert_eq!(early.status, 500, "{}", early.body_text());
    // And the server serves on.
    assert_eq!(nginx.get("/whole").expect("a response").status, 200);
}

/// Sends one request with `params` (values as bytes, as a web server may send them) and no
/// body on a new connection to `server`; its reply.
fn fcgi_request(server: &TestServer, params: &[(&str, &[u8])]) -> Reply {
    let mut stream = Vec::new();
    for (name, value) in params {
        fcgi_codec::encode_pair(&mut stream, name.as_bytes(), value).expect("a pair");
    }
    let mut client = server.connect();
    client.send_begin(1, Role::Responder, false);
    client.send_ok(&frames::stream(StreamKind::Params, 1, &stream));
    client.send_ok(&frames::end(StreamKind::Params, 1));
    client.send_ok(&frames::end(StreamKind::Stdin, 1));
    client.read_reply(1)
}

/// An app that answers with what it saw, and with headers that need care on the way out.
fn headers_app() -> Router {
    async fn echo(request: axum::http::Request<Body>) -> impl axum::response::IntoResponse {
        let mut headers = axum::http::HeaderMap::new();
        if let Some(latin1) = request.headers().get("x-latin1") {
            headers.insert("x-echo", latin1.clone());
        }
        headers.append("set-cookie", "a=1".parse().expect("a value"));
        headers.append("set-cookie", "b=2".parse().expect("a value"));
        // One hop's framing: not passed on.
        headers.insert("transfer-encoding", "chunked".parse().expect("a value"));
        headers.insert("connection", "keep-alive".parse().expect("a value"));
        let https = request.extensions().get::<fcgi_http::Https>().is_some_and(|h| h.0);
        let body = format!("{} {} https={https}", request.method(), request.uri());
        (axum::http::StatusCode::CREATED, headers, body)
    }
    Router::new()
        .route("/echo", get(echo))
        .route("/nothing", get(|| async { axum::http::StatusCode::NO_CONTENT }))
        .route("/ok", get(|| async { "fine" }))
}

#[test]
fn headers_go_both_ways_as_bytes_and_the_cgi_head_is_clean() {
    let server = TestServer::start(inproc::config(), |builder| {
        builder.handler(Role::Responder, fcgi_http::Service::new(headers_app()))
    });
    let reply = fcgi_request(
        &server,
        &[
            ("REQUEST_METHOD", b"GET"),
            ("REQUEST_URI", b"/echo?x=1"),
            ("HTTP_X_LATIN1", b"caf\xe9"),
            ("HTTPS", b"on"),
        ],
    );
    reply.assert_complete(201);
    let head = &reply.stdout[..reply.stdout.len() - reply.body.len()];
    let head_text = String::from_utf8_lossy(head);
    assert!(head.starts_with(b"Status: 201 Created\r\n"), "{head_text}");
    // The Latin-1 byte went in and came back out as it was.
    assert!(head.windows(14).any(|w| w == b"x-echo: caf\xe9\r\n"), "{head_text}");
    let cookies: Vec<_> =
        reply.headers.iter().filter(|(n, _)| n == "set-cookie").map(|(_, v)| v.as_str()).collect();
    assert_eq!(cookies, ["a=1", "b=2"]);
    assert_eq!(reply.header("transfer-encoding"), None, "{head_text}");
    assert_eq!(reply.header("connection"), None, "{head_text}");
    assert_eq!(reply.body_text(), "GET /echo?x=1 https=true");
    // The body's exact size becomes its length, so the web server need not chunk it.
    assert_eq!(reply.header("content-length"), Some("24"));

    // A HEAD: axum answers it with the GET route, and the length of the body it would have
    // (22 bytes, "HEAD /echo https=false"), not the 0 of the empty body that goes out.
    let head = fcgi_request(&server, &[("REQUEST_METHOD", b"HEAD"), ("REQUEST_URI", b"/echo")]);
    head.assert_complete(201);
    assert_eq!((head.header("content-length"), head.body.len()), (Some("22"), 0), "{head:?}");
    // A 204 gets no length.
    let nothing = fcgi_request(&server, &[("REQUEST_URI", b"/nothing")]);
    nothing.assert_complete(204);
    assert_eq!(nothing.header("content-length"), None, "{nothing:?}");

    // A 200 has no Status line (CGI's default); other statuses have theirs.
    let ok = fcgi_request(&server, &[("REQUEST_URI", b"/ok")]);
    ok.assert_complete(200);
    assert_eq!(ok.header("Status"), None, "{ok:?}");
    let missing = fcgi_request(&server, &[("REQUEST_URI", b"/nowhere")]);
    assert_eq!(missing.header("Status"), Some("404 Not Found"));

    // Params that make no HTTP request: 400, and the reason on FCGI_STDERR.
    let bad = fcgi_request(&server, &[("REQUEST_METHOD", b"GE T"), ("REQUEST_URI", b"/echo")]);
    bad.assert_complete(400);
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(stderr.contains("REQUEST_METHOD \"GE T\" is not an HTTP method"), "{stderr}");
}
