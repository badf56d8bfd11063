//! fcgi-rs behind a real Caddy (`reverse_proxy` with `transport fastcgi`, Debian's `caddy`):
//! plain GETs, a large echoed body, and clean headers (no CGI `Status` line passed on to the
//! client as a header of its own).

use std::fs;
use std::process::Command;
use std::time::Duration;

use fcgi_tests::addr::{free_port, Transport};
use fcgi_tests::data::pattern;
use fcgi_tests::http;
use fcgi_tests::nginx::scratch;
use fcgi_tests::process::{wait_until, FcgiServe, Guarded};

/// Caddy in front of `fcgi serve --app APP`, both in `dir`.
struct Site {
    _caddy: Guarded,
    port: u16,
    _fcgi: FcgiServe,
}

impl Site {
    fn start(dir: &std::path::Path, app: &str) -> Site {
        let fcgi = FcgiServe::start(dir, app, app, Transport::Unix, &[]);
        let socket = fcgi.addr().socket_path().expect("a Unix socket").display().to_string();
        let port = free_port();
        // No admin endpoint (tests run side by side), no certificates: plain HTTP on loopback, for
        // any Host.
        let caddyfile = format!(
            "{{\n\tadmin off\n\tauto_https off\n}}\n\
             http://:{port} {{\n\tbind 127.0.0.1\n\treverse_proxy unix/{socket} {{\n\t\ttransport fastcgi\n\t}}\n}}\n"
        );
        let config = dir.join("Caddyfile");
        fs::write(&config, caddyfile).unwrap();
        let mut command = Command::new("caddy");
        command.args(["run", "--adapter", "caddyfile", "--config"]).arg(&config);
        // Caddy keeps its state under $HOME and the XDG directories: the test's own.
        command.env("HOME", dir).env("XDG_DATA_HOME", dir).env("XDG_CONFIG_HOME", dir);
        let mut caddy = Guarded::spawn("caddy", command, &dir.join("caddy.log"));
        let up = wait_until(Duration::from_secs(20), || {
            !caddy.is_running() || http::get(port, "/").is_ok()
        });
        assert!(up && caddy.is_running(), "caddy did not start: {}", read(dir, "caddy.log"));
        Site { _caddy: caddy, port, _fcgi: fcgi }
    }
}

fn read(dir: &std::path::Path, name: &str) -> String {
    fs::read_to_string(dir.join(name)).unwrap_or_default()
}

#[test]
fn hello_behind_caddy_has_clean_headers() {
    let dir = scratch();
    let site = Site::start(dir.path(), "hello");
    let response = http::get(site.port, "/").expect("an answer from caddy");
    assert_eq!(response.status, 200);
    assert_eq!(response.body_text(), "Hello, world!");
    assert_eq!(response.header("Status"), None, "the CGI Status line reached the client");
    assert_eq!(response.header("Content-Type"), Some("text/plain"));
}

#[test]
fn a_large_body_is_echoed_whole_behind_caddy() {
    let dir = scratch();
    let site = Site::start(dir.path(), "echo");
    let body = pattern(3 * 1024 * 1024, 11);
    let response = http::post(site.port, "/echo", "application/octet-stream", &body)
        .expect("an answer from caddy");
    assert_eq!(response.status, 200);
    assert_eq!(response.header("Status"), None);
    assert!(response.body == body, "the body came back changed ({} bytes)", response.body.len());
}
