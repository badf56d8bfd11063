//! The Authorizer role behind real web servers: lighttpd's FastCGI authorizer mode (which sends
//! the Authorizer role) and nginx's `auth_request` (which sends its check as a Responder
//! request), both answered by one handler (`ServerBuilder::responder_and_authorizer`); and an
//! app without an Authorizer, which must not let lighttpd serve what it protects.

use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use fcgi_server::{Request, Response, Role};
use fcgi_tests::addr::{free_port, Addr, Transport};
use fcgi_tests::http::{self, HttpStream};
use fcgi_tests::inproc::{self, TestServer};
use fcgi_tests::nginx::{scratch, Nginx, Site};
use fcgi_tests::process::{wait_until, FcgiServe, Guarded};

/// The token the check lets in.
const TOKEN: &str = "Bearer let-me-in";

/// One handler for both roles: the check (the Authorizer role, or nginx's `/auth`), and the
/// app, which greets the user the check named.
fn check_and_app(request: &mut Request, response: &mut Response) -> Result<(), fcgi_server::Error> {
    use std::io::Write;
    if request.role() == Role::Authorizer || request.script_name() == Some("/auth") {
        if request.header_str("Authorization") == Some(TOKEN) {
            response.variable("USER", "alice")?;
        } else {
            response.set_status(401);
            response.header("WWW-Authenticate", "Bearer")?;
        }
        return Ok(());
    }
    write!(response, "hello {}", request.param_str("AUTH_USER").unwrap_or("nobody"))?;
    Ok(())
}

/// `GET path` with an `Authorization` header, if any.
fn get(port: u16, path: &str, authorization: Option<&str>) -> http::HttpResponse {
    let mut stream = HttpStream::connect(port).expect("connect");
    let auth = authorization.map(|a| format!("Authorization: {a}\r\n")).unwrap_or_default();
    let head = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n{auth}Connection: close\r\n\r\n");
    stream.send(head.as_bytes()).expect("send");
    stream.read_response().expect("a response")
}

/// lighttpd with `/private/` checked by the FastCGI authorizer at `backend` (TCP), its files
/// served from `dir/www` once allowed.
fn lighttpd(dir: &Path, backend: &Addr) -> (Guarded, u16) {
    let Addr::Tcp(backend) = backend else { panic!("lighttpd is given a TCP backend here") };
    let www = dir.join("www");
    fs::create_dir_all(www.join("private")).unwrap();
    fs::write(www.join("private/file.txt"), "the protected file\n").unwrap();
    let port = free_port();
    let config = format!(
        "server.modules = (\"mod_fastcgi\")\n\
         server.document-root = \"{www}\"\n\
         server.bind = \"127.0.0.1\"\n\
         server.port = {port}\n\
         server.errorlog = \"{dir}/lighttpd.error.log\"\n\
         fastcgi.server = ( \"/private/\" => (( \"host\" => \"{host}\", \"port\" => {bport},\n\
             \"check-local\" => \"disable\", \"mode\" => \"authorizer\", \"docroot\" => \"{www}\" )) )\n",
        www = www.display(),
        dir = dir.display(),
        host = backend.ip(),
        bport = backend.port(),
    );
    let path = dir.join("lighttpd.conf");
    fs::write(&path, config).unwrap();
    let mut command = Command::new("lighttpd");
    command.arg("-D").arg("-f").arg(&path);
    let mut process = Guarded::spawn("lighttpd", command, &dir.join("lighttpd.log"));
    let up = wait_until(Duration::from_secs(10), || {
        !process.is_running() || HttpStream::connect(port).is_ok()
    });
    assert!(
        up && process.is_running(),
        "lighttpd did not start: {}",
        fs::read_to_string(dir.join("lighttpd.log")).unwrap_or_default()
    );
    (process, port)
}

#[test]
fn lighttpd_authorizer_mode_allows_and_refuses() {
    let dir = scratch();
    let server = TestServer::start(inproc::config(), |b| b.responder_and_authorizer(check_and_app));
    let (_lighttpd, port) = lighttpd(dir.path(), server.addr());
    let allowed = get(port, "/private/file.txt", Some(TOKEN));
    assert_eq!((allowed.status, allowed.body_text().as_str()), (200, "the protected file\n"));
    let refused = get(port, "/private/file.txt", None);
    assert_eq!(refused.status, 401, "{}", refused.body_text());
    assert_ne!(refused.body_text(), "the protected file\n");
}

#[test]
fn an_app_without_an_authorizer_does_not_open_the_door() {
    let dir = scratch();
    // `--app hello` serves the Responder role only: the Authorizer request is refused.
    let hello = FcgiServe::start(dir.path(), "hello", "hello", Transport::Tcp, &[]);
    let (_lighttpd, port) = lighttpd(dir.path(), hello.addr());
    let response = get(port, "/private/file.txt", Some(TOKEN));
    assert_ne!(response.body_text(), "the protected file\n", "served without a check");
    assert_eq!(response.status, 500);
}

#[test]
fn nginx_auth_request_uses_the_same_handler() {
    let dir = scratch();
    let server = TestServer::start(inproc::config(), |b| b.responder_and_authorizer(check_and_app));
    let nginx = Nginx::start(dir.path(), Site::AuthRequest, &server.addr().site_vars());
    let allowed = get(nginx.port(), "/anything", Some(TOKEN));
    assert_eq!((allowed.status, allowed.body_text().as_str()), (200, "hello alice"));
    let refused = get(nginx.port(), "/anything", Some("Bearer wrong"));
    assert_eq!(refused.status, 401);
    assert_eq!(refused.header("WWW-Authenticate"), Some("Bearer"));
}
