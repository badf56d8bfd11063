//! The status line a response goes out with, and what the server does with a status or header
//! it cannot send.
//!
//! Every code from 100 to 599 carries a phrase: the registered one (`set_status(415)` goes out
//! as `Status: 415 Unsupported Media Type`, which nginx passes on to the browser as it is),
//! else the name of its class. `Response::header` applies the same rules as the CGI header parsers
//! (`fcgi_codec::http`). Servers run in this process (`support/inproc.rs`) with the raw client;
//! one test goes end to end, through nginx and the CGI gateway of the real `fcgi` binary, to the
//! HTTP status line itself.

use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use fcgi_server::{Request, Response};
use fcgi_tests::addr::Transport;
use fcgi_tests::inproc::{self, TestServer};
use fcgi_tests::nginx::{scratch, Nginx, Site};
use fcgi_tests::process::FcgiServe;

type HandlerResult = Result<(), fcgi_server::Error>;

/// How long the end-to-end test waits for nginx to answer.
const HTTP_TIMEOUT: Duration = Duration::from_secs(30);

/// Sets the status from the `CODE` param.
fn set_code(request: &mut Request, response: &mut Response) -> HandlerResult {
    let code = request.param_str("CODE").and_then(|code| code.parse().ok()).unwrap_or(200);
    response.set_status(code);
    Ok(())
}

#[test]
fn every_status_from_100_to_599_goes_out_with_a_phrase_never_unknown() {
    let server = TestServer::start(inproc::config(), |b| b.responder(set_code));
    let mut client = server.connect();
    let mut lines = Vec::new();
    for code in 100..=599u16 {
        let reply = client.simple_request(&[("CODE", &code.to_string())], b"");
        reply.assert_complete(code);
        if code == 200 {
            // CGI's default status goes out with no Status line at all.
            assert_eq!(reply.header("Status"), None);
            continue;
        }
        let line = reply.header("Status").expect("a Status header").to_owned();
        let phrase = line.strip_prefix(&format!("{code} ")).unwrap_or_else(|| panic!("{line:?}"));
        assert!(!phrase.is_empty() && !phrase.contains("Unknown"), "{line:?}");
        assert_eq!(Some(phrase), fcgi_codec::http::phrase(code), "{line:?}");
        lines.push(line);
    }
    // Spot checks against RFC 9110's wording, independent of the table.
    for expected in [
        "103 Early Hints",
        "226 IM Used",
        "308 Permanent Redirect",
        "413 Content Too Large",
        "415 Unsupported Media Type",
        "418 I'm a teapot",
        "422 Unprocessable Content",
        "451 Unavailable For Legal Reasons",
        "511 Network Authentication Required",
        // Unregistered: the class.
        "199 Informational",
        "299 Successful",
        "399 Redirection",
        "499 Client Error",
        "599 Server Error",
    ] {
        assert!(lines.iter().any(|line| line == expected), "{expected:?} was not sent");
    }
}

#[test]
fn a_status_outside_100_to_599_becomes_500_and_says_why_on_stderr() {
    let server = TestServer::start(inproc::config(), |b| b.responder(set_code));
    let mut client = server.connect();
    for code in ["0", "99", "600", "1000", "65535"] {
        let reply = client.simple_request(&[("CODE", code)], b"");
        reply.assert_complete(500);
        assert_eq!(reply.header("Status"), Some("500 Internal Server Error"));
        let stderr = String::from_utf8_lossy(&reply.stderr);
        assert!(stderr.contains(&format!("set_status({code})")), "{code}: {stderr:?}");
        assert!(reply.stderr_ended, "{code}: STDERR was not ended");
    }
}

#[test]
fn header_applies_the_rules_the_cgi_parsers_apply() {
    // Each header the handler tries, and whether `Response::header` accepts it.
    const TRIES: &[(&str, &str, bool)] = &[
        ("X-Ok", "plain", true),
        ("!#$%&'*+-.^_`|~", "token characters", true),
        ("X-Obs", "caf\u{e9} \u{1}\t!", true),
        ("X-Empty", "", true),
        ("", "no name", false),
        ("Bad Name", "x", false),
        ("X:Colon", "x", false),
        ("X(y)", "a separator", false),
        ("X\"q\"", "a quote", false),
        ("Caf\u{e9}", "not ASCII", false),
        ("X-Nul", "a\0b", false),
        ("X-Cr", "a\rb", false),
        ("X-Lf", "a\nSet-Cookie: evil=1", false),
        ("Status", "600", false),
        ("Status", "1000 Too Big", false),
        ("Status", "99", false),
        ("Status", "abc", false),
        ("Status", "404a", false),
        ("Status", "404 Whatever The Handler Says", true),
    ];
    let handler = |_: &mut Request, response: &mut Response| -> HandlerResult {
        let mut verdicts = String::new();
        for (name, value, _) in TRIES {
            verdicts.push(if response.header(name, value).is_ok() { 'y' } else { 'n' });
        }
        response.write_all(verdicts.as_bytes())?;
        Ok(())
    };
    let server = TestServer::start(inproc::config(), |b| b.responder(handler));
    let reply = server.connect().simple_request(&[], b"");
    // The last `Status` that was accepted sets the code; the phrase is the registered one.
    reply.assert_complete(404);
    assert_eq!(reply.header("Status"), Some("404 Not Found"));
    let verdicts = reply.body_text();
    for ((name, value, accepted), verdict) in TRIES.iter().zip(verdicts.chars()) {
        assert_eq!(verdict == 'y', *accepted, "header({name:?}, {value:?})");
    }
    assert_eq!(verdicts.len(), TRIES.len());
    assert_eq!(reply.header("X-Obs"), Some("caf\u{e9} \u{1}\t!"));
    assert_eq!(reply.header("X-Lf"), None);
}

/// `Status: 415` from a CGI program, through the gateway and nginx, to the HTTP status line.
#[test]
fn the_registered_phrase_reaches_the_http_status_line() {
    let dir = scratch();
    let bin = dir.path().join("www/cgi-bin");
    fs::create_dir_all(&bin).unwrap();
    for (name, status) in [("unsupported.sh", "415"), ("teapot.sh", "418 Short And Stout")] {
        let script = bin.join(name);
        let text =
            format!("#!/bin/sh\nprintf 'Status: {status}\\nContent-Type: text/plain\\n\\n'\n");
        fs::write(&script, text).unwrap();
        fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
    }
    let bin_arg = bin.to_str().unwrap();
    let fcgi =
        FcgiServe::start(dir.path(), "cgi", "cgi", Transport::Unix, &["--cgi-root", bin_arg]);
    let socket = fcgi.addr().socket_path().unwrap().display().to_string();
    let root = dir.path().join("www").display().to_string();
    let nginx = Nginx::start(
        dir.path(),
        Site::Cgi,
        &[("FCGI_SOCKET", socket.as_str()), ("DOCUMENT_ROOT", root.as_str())],
    );
    for (path, expected) in [
        ("/cgi-bin/unsupported.sh", "HTTP/1.1 415 Unsupported Media Type"),
        // The program's own phrase is not kept: the server sends the registered one.
        ("/cgi-bin/teapot.sh", "HTTP/1.1 418 I'm a teapot"),
    ] {
        let raw = http_get_raw(nginx.port(), path);
        let status_line = raw.lines().next().unwrap_or_default();
        assert_eq!(status_line, expected, "{raw}\n{}", nginx.error_log());
    }
}

/// The whole response to `GET path` as text: the status line is what is under test, and the
/// shared HTTP client keeps only its code.
fn http_get_raw(port: u16, path: &str) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.set_read_timeout(Some(HTTP_TIMEOUT)).unwrap();
    stream.set_write_timeout(Some(HTTP_TIMEOUT)).unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    String::from_utf8_lossy(&raw).into_owned()
}
