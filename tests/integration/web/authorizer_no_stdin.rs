//! An Authorizer request that sends no FCGI_STDIN at all, as Apache's `mod_authnz_fcgi` sends
//! it on purpose (BEGIN_REQUEST with the Authorizer role, the params, their empty end, and
//! nothing more: "the responder owns the request body, not the authorizer"), is answered at
//! once, not after the read timeout.
//!
//! Raw records first, exactly as Apache writes them; then a real Apache 2.4 (Debian's
//! `apache2`) with `mod_authnz_fcgi` in front of the `authorizer` example, in a temporary
//! directory on a loopback port. lighttpd's authorizer mode, which does send an empty STDIN,
//! is in `tests/integration/web/authorizer.rs`.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use fcgi_codec::{Role, StreamKind};
use fcgi_server::{Config, Request, Response};
use fcgi_tests::addr::{free_port, Addr};
use fcgi_tests::http::{self, HttpStream};
use fcgi_tests::inproc::{self, TestServer};
use fcgi_tests::nginx::scratch;
use fcgi_tests::process::{wait_until, Guarded};
use fcgi_tests::raw::{frames, Client, Reply};

/// The token the check lets in (the `authorizer` example's).
const TOKEN: &str = "Bearer let-me-in";
/// Far below the read timeout of the server under test: an answer that waited for a STDIN
/// that never comes would come after it, as a 408.
const PROMPT: Duration = Duration::from_secs(1);
/// The read timeout of the in-process servers: short, so that a server that waits for STDIN
/// fails the test in seconds, not in a minute.
const READ_TIMEOUT: Duration = Duration::from_secs(4);

/// The `authorizer` example's check, for the in-process server.
fn check(request: &mut Request, response: &mut Response) -> Result<(), fcgi_server::Error> {
    if request.header_str("Authorization") == Some(TOKEN) {
        response.variable("USER", "alice")?;
    } else {
        response.set_status(401);
        response.header("WWW-Authenticate", "Bearer")?;
    }
    Ok(())
}

fn server() -> TestServer {
    let config = Config { read_timeout: READ_TIMEOUT, ..inproc::config() };
    TestServer::start(config, |b| b.responder_and_authorizer(check))
}

/// Sends what Apache's `mod_authnz_fcgi` sends for one check (its `req_rsp`): BEGIN_REQUEST
/// (Authorizer), the params (the CGI variables of the request checked, `FCGI_ROLE`, and the
/// client's `Authorization` when `CGIPassAuth` is on), the empty PARAMS, and no STDIN.
fn send_check(client: &mut Client, id: u16, keep_conn: bool, authorization: Option<&str>) {
    let mut params = vec![
        ("FCGI_ROLE", "AUTHORIZER"),
        ("FCGI_APACHE_ROLE", "AUTHENTICATOR"),
        ("REQUEST_METHOD", "GET"),
        ("REQUEST_URI", "/private/file.txt"),
        ("SERVER_PROTOCOL", "HTTP/1.1"),
        ("REMOTE_ADDR", "127.0.0.1"),
        ("HTTP_HOST", "localhost"),
    ];
    if let Some(authorization) = authorization {
        params.push(("HTTP_AUTHORIZATION", authorization));
    }
    client.send_begin(id, Role::Authorizer, keep_conn);
    client.send_ok(&frames::params(id, &params));
}

/// Reads the answer to `id`, and how long it took from `asked`.
fn answer(client: &mut Client, id: u16, asked: Instant) -> (Reply, Duration) {
    let reply = client.read_reply(id);
    (reply, asked.elapsed())
}

#[test]
fn an_authorizer_request_without_stdin_is_answered_at_once() {
    let server = server();
    let mut client = server.connect();
    let asked = Instant::now();
    send_check(&mut client, 1, false, Some(TOKEN));
    let (reply, took) = answer(&mut client, 1, asked);
    assert!(took < PROMPT, "answered after {took:?}: {reply:?}");
    reply.assert_complete(200);
    assert_eq!(reply.header("Variable-USER"), Some("alice"));
    // Without FCGI_KEEP_CONN, the server closes the connection after END_REQUEST.
    let rest = client.read_until_closed().expect("the connection closed");
    assert!(rest.is_empty(), "records after END_REQUEST: {rest:?}");

    let mut refused = server.connect();
    let asked = Instant::now();
    send_check(&mut refused, 1, false, None);
    let (reply, took) = answer(&mut refused, 1, asked);
    assert!(took < PROMPT, "answered after {took:?}: {reply:?}");
    reply.assert_complete(401);
    assert_eq!(reply.header("WWW-Authenticate"), Some("Bearer"));
}

#[test]
fn checks_without_stdin_follow_each_other_on_a_kept_connection() {
    let server = server();
    let mut client = server.connect();
    for (round, authorization) in
        [Some(TOKEN), None, Some("Bearer wrong"), Some(TOKEN)].into_iter().enumerate()
    {
        let asked = Instant::now();
        send_check(&mut client, 1, true, authorization);
        let (reply, took) = answer(&mut client, 1, asked);
        assert!(took < PROMPT, "round {round}: answered after {took:?}");
        let want = if authorization == Some(TOKEN) { 200 } else { 401 };
        reply.assert_complete(want);
        if round == 1 {
            // A client that does send STDIN after the params (lighttpd's empty one, even a
            // body) changes nothing: the check had no body to wait for, and the next request
            // is read as ever.
            client.send_ok(&frames::stream(StreamKind::Stdin, 1, b"a body nobody reads"));
            client.send_ok(&frames::end(StreamKind::Stdin, 1));
        }
    }
    // No request timed out meanwhile, and nothing was left open.
    assert!(!server.logs().contains("timed out"), "{:?}", server.logs().lines());
    let report = server.stop(Duration::from_secs(5));
    assert_eq!((report.requests, report.unfinished), (4, 0));
}

#[test]
fn a_responder_still_waits_for_its_body() {
    // Only the Authorizer has no body: a Responder request whose STDIN does not come is
    // answered 408 at the read timeout, as before.
    let server = server();
    let mut client = server.connect();
    let asked = Instant::now();
    client.send_begin(1, Role::Responder, true);
    client.send_params(1, &[("REQUEST_METHOD", "GET"), ("REQUEST_URI", "/")]);
    let (reply, took) = answer(&mut client, 1, asked);
    reply.assert_complete(408);
    assert!(took >= READ_TIMEOUT, "answered after {took:?}, before the read timeout");
}

/// The `authorizer` example, built with the tests (`cargo build --workspace --examples`).
fn authorizer_example() -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable has a path");
    let profile = exe.parent().and_then(Path::parent).expect("target/<profile>");
    let bin = profile.join("examples").join("authorizer");
    assert!(bin.exists(), "{} is missing: `cargo build -p fcgi-server --examples`", bin.display());
    bin
}

/// Apache's modules, as Debian's `apache2` installs them.
const APACHE_MODULES: &str = "/usr/lib/apache2/modules";

/// Apache on a loopback port with `/private/` checked by the FastCGI authorizer at
/// `backend`, in `mod_authnz_fcgi`'s `check_user_id` mode with the client's `Authorization`
/// passed on (`CGIPassAuth`), its files served from `dir/www` once allowed; the user the
/// check names (its `Variable-USER`) becomes the request's user.
fn apache(dir: &Path, backend: &Addr) -> (Guarded, u16) {
    let Addr::Tcp(backend) = backend else { panic!("mod_authnz_fcgi speaks TCP only") };
    let www = dir.join("www");
    fs::create_dir_all(www.join("private")).unwrap();
    fs::write(www.join("private/file.txt"), "the protected file\n").unwrap();
    // Started as root, Apache serves as `nobody`, who must reach the files.
    for path in [dir, &www, &www.join("private")] {
        fs::set_permissions(path, fs::Permissions::from_mode(0o755)).unwrap();
    }
    fs::set_permissions(www.join("private/file.txt"), fs::Permissions::from_mode(0o644)).unwrap();
    let port = free_port();
    let config = format!(
        "ServerRoot \"{dir}\"\n\
         ServerName localhost\n\
         Listen 127.0.0.1:{port}\n\
         PidFile \"{dir}/httpd.pid\"\n\
         DefaultRuntimeDir \"{dir}\"\n\
         ErrorLog \"{dir}/error.log\"\n\
         LogLevel warn authnz_fcgi:debug\n\
         User nobody\n\
         Group nogroup\n\
         LoadModule mpm_event_module {m}/mod_mpm_event.so\n\
         LoadModule authn_core_module {m}/mod_authn_core.so\n\
         LoadModule authz_core_module {m}/mod_authz_core.so\n\
         LoadModule authz_user_module {m}/mod_authz_user.so\n\
         LoadModule authnz_fcgi_module {m}/mod_authnz_fcgi.so\n\
         DocumentRoot \"{www}\"\n\
         <Directory \"{www}\">\n    Require all granted\n</Directory>\n\
         AuthnzFcgiDefineProvider authn Check fcgi://{backend}/\n\
         <Location \"/private/\">\n\
         \x20   AuthType Token\n\
         \x20   AuthName \"private\"\n\
         \x20   CGIPassAuth On\n\
         \x20   AuthnzFcgiCheckAuthnProvider Check Authoritative On RequireBasicAuth Off \
         UserExpr \"%{{reqenv:USER}}\"\n\
         \x20   Require valid-user\n\
         </Location>\n",
        dir = dir.display(),
        www = www.display(),
        m = APACHE_MODULES,
    );
    let path = dir.join("httpd.conf");
    fs::write(&path, config).unwrap();
    let mut command = Command::new("/usr/sbin/apache2");
    command.arg("-f").arg(&path).arg("-DFOREGROUND");
    let mut process = Guarded::spawn("apache2", command, &dir.join("apache2.log"));
    let up = wait_until(Duration::from_secs(10), || {
        !process.is_running() || HttpStream::connect(port).is_ok()
    });
    assert!(
        up && process.is_running(),
        "apache2 did not start: {}{}",
        fs::read_to_string(dir.join("apache2.log")).unwrap_or_default(),
        fs::read_to_string(dir.join("error.log")).unwrap_or_default()
    );
    (process, port)
}

/// `GET path` with an `Authorization` header, if any, and how long the answer took.
fn get(port: u16, path: &str, authorization: Option<&str>) -> (http::HttpResponse, Duration) {
    let asked = Instant::now();
    let mut stream = HttpStream::connect(port).expect("connect");
    let auth = authorization.map(|a| format!("Authorization: {a}\r\n")).unwrap_or_default();
    let head = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n{auth}Connection: close\r\n\r\n");
    stream.send(head.as_bytes()).expect("send");
    let response = stream.read_response().expect("a response");
    (response, asked.elapsed())
}

#[test]
fn apache_mod_authnz_fcgi_checks_through_the_authorizer_example() {
    let dir = scratch();
    let port = free_port();
    let backend = Addr::loopback(port);
    let mut command = Command::new(authorizer_example());
    command.arg(format!("127.0.0.1:{port}"));
    let mut example = Guarded::spawn("authorizer", command, &dir.path().join("authorizer.log"));
    let up = wait_until(Duration::from_secs(10), || !example.is_running() || backend.accepts());
    assert!(up && example.is_running(), "the authorizer example did not start");
    let (_apache, port) = apache(dir.path(), &backend);

    let (allowed, took) = get(port, "/private/file.txt", Some(TOKEN));
    assert_eq!((allowed.status, allowed.body_text().as_str()), (200, "the protected file\n"));
    assert!(took < PROMPT, "allowed after {took:?}");
    let (refused, took) = get(port, "/private/file.txt", None);
    assert_eq!(refused.status, 401, "{}", refused.body_text());
    assert_ne!(refused.body_text(), "the protected file\n");
    assert!(took < PROMPT, "refused after {took:?}");
    let (wrong, _) = get(port, "/private/file.txt", Some("Bearer wrong"));
    assert_eq!(wrong.status, 401, "{}", wrong.body_text());
    // Apache logged the checks' statuses as the authorizer gave them.
    let log = fs::read_to_string(dir.path().join("error.log")).unwrap_or_default();
    assert!(log.contains("Received HTTP status 200"), "{log}");
    assert!(log.contains("Received HTTP status 401"), "{log}");
}
