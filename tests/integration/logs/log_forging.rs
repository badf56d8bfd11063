//! Log forging: every value a peer controls (REQUEST_URI, SCRIPT_FILENAME, SCRIPT_NAME,
//! QUERY_STRING, REQUEST_METHOD, REMOTE_ADDR, REMOTE_USER, SERVER_PROTOCOL, HTTP_USER_AGENT,
//! HTTP_REFERER, REQUEST_ID, and a CGI program's standard error) carries every C0 control,
//! DEL, a C1 control, `\`, `"`, U+2028 and U+2029; each log, in each format, must still hold
//! exactly one well-formed line per event, with the value escaped (text formats) or intact
//! (JSON formats). The logs: the main log (`term` and `json`: request records, slow requests,
//! CGI warnings), the slow log's file (`term` and `json`), the access log's file (`combined`,
//! `json`, a template), and fcgi-server's fallback logger on standard error.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use fcgi_tests::addr::{Addr, Transport};
use fcgi_tests::nginx::scratch;
use fcgi_tests::process::{wait_until, FcgiServe, Guarded};
use fcgi_tests::raw::Client;
use serde_json::Value;

/// What a peer sends in every field: each C0 control, DEL, NEL (a C1 control), the escape
/// character, a quote, and the Unicode line and paragraph separators, around text that would
/// read as a line of its own.
fn forged() -> String {
    let mut text: String = (0u8..0x20).map(char::from).collect();
    text.push_str("\x7f\u{85}\\\"\u{2028}\u{2029}");
    text.push_str("\nMay 01 00:00:00.000 INFO forged, pid: 1\n");
    text
}

/// `text` as the text formats write it: `\xHH` for each byte of a control character, a line
/// separator, a backslash, and (in a quoted field) a quote.
fn escaped(text: &str, quoted: bool) -> String {
    let mut out = String::new();
    for c in text.chars() {
        let control = c.is_control() || matches!(c, '\u{2028}' | '\u{2029}' | '\\');
        if control || (quoted && c == '"') {
            let mut utf8 = [0; 4];
            for byte in c.encode_utf8(&mut utf8).bytes() {
                out.push_str(&format!("\\x{byte:02X}"));
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Whether `line` holds a character that ends a line or acts on a terminal.
fn holds_control(line: &str) -> bool {
    line.chars().any(|c| c.is_control() || matches!(c, '\u{2028}' | '\u{2029}'))
}

/// Whether `line` is a `term` line: `Nov 27 09:50:00.123 INFO ...`.
fn is_term_line(line: &str) -> bool {
    const MONTHS: [&str; 12] =
        ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    const LEVELS: [&str; 6] = ["TRCE", "DEBG", "INFO", "WARN", "ERRO", "CRIT"];
    let b = line.as_bytes();
    let digits = |range: std::ops::Range<usize>| b[range].iter().all(u8::is_ascii_digit);
    b.len() > 25
        && MONTHS.iter().any(|m| b[..3] == *m.as_bytes())
        && (b[3], b[6], b[9], b[12], b[15], b[19], b[24])
            == (b' ', b' ', b':', b':', b'.', b' ', b' ')
        && digits(4..6)
        && digits(7..9)
        && digits(10..12)
        && digits(13..15)
        && digits(16..19)
        && LEVELS.iter().any(|l| b[20..24] == *l.as_bytes())
}

/// The value each field carries: its name, then the forged text.
fn value(field: &str) -> String {
    format!("{field}={}", forged())
}

/// The CGI directory: `slow<forged>.sh`, which writes the forged text (without its line
/// feeds: one line of standard error) and sleeps past the slow-request limit. A file name can
/// hold every character but NUL and `/`.
fn cgi_root(dir: &Path) -> (PathBuf, PathBuf) {
    let root = dir.join("cgi-bin");
    fs::create_dir(&root).unwrap();
    let stderr = root.join("stderr.bin");
    fs::write(&stderr, stderr_line()).unwrap();
    let script = root.join(format!("slow{}.sh", forged().replace(['\0', '/'], "")));
    fs::write(
        &script,
        format!(
            "#!/bin/sh\ncat '{}' >&2\nsleep 0.8\nprintf 'Content-Type: text/plain\\r\\n\\r\\nslept\\n'\n",
            stderr.display()
        ),
    )
    .unwrap();
    fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
    (root, script)
}

/// The line the slow program writes on standard error.
fn stderr_line() -> String {
    format!("stderr {}", forged().replace('\n', ""))
}

/// The params of a request for `script_filename`, every peer-controlled one forged.
fn params(script_filename: &str) -> Vec<(String, String)> {
    let mut params: Vec<(String, String)> = [
        "REQUEST_METHOD",
        "REQUEST_URI",
        "SCRIPT_NAME",
        "QUERY_STRING",
        "REMOTE_ADDR",
        "REMOTE_USER",
        "SERVER_PROTOCOL",
        "HTTP_USER_AGENT",
        "HTTP_REFERER",
        "REQUEST_ID",
    ]
    .into_iter()
    .map(|name| (name.to_owned(), value(name)))
    .collect();
    params.push(("SCRIPT_FILENAME".into(), script_filename.to_owned()));
    params
}

/// Sends the two requests every scenario sends: the slow program, and a program that is not
/// there (a CGI warning: refused).
fn send_requests(addr: &Addr, script: &Path, root: &Path) {
    let missing = format!("{}/missing{}", root.display(), forged());
    for script_filename in [script.to_str().unwrap().to_owned(), missing] {
        let params = params(&script_filename);
        let pairs: Vec<(&str, &str)> =
            params.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
        let mut client = Client::connect(addr);
        let reply = client.simple_request(&pairs, b"");
        assert!(reply.end.protocol_status == fcgi_codec::ProtocolStatus::RequestComplete);
    }
}

/// The lines of `path` once `ready` holds for them (or after 15 s).
fn lines_when(path: &Path, ready: impl Fn(&[String]) -> bool) -> Vec<String> {
    let read = || -> Vec<String> {
        fs::read_to_string(path).unwrap_or_default().lines().map(str::to_owned).collect()
    };
    wait_until(Duration::from_secs(15), || ready(&read()));
    read()
}

/// The request record's fields and the params they come from.
const RECORD_FIELDS: [(&str, &str); 10] = [
    ("method", "REQUEST_METHOD"),
    ("uri", "REQUEST_URI"),
    ("query", "QUERY_STRING"),
    ("remote", "REMOTE_ADDR"),
    ("user", "REMOTE_USER"),
    ("protocol", "SERVER_PROTOCOL"),
    ("user_agent", "HTTP_USER_AGENT"),
    ("referer", "HTTP_REFERER"),
    ("request_id", "REQUEST_ID"),
    ("script", "SCRIPT_FILENAME"),
];

/// The slow line's fields.
const SLOW_FIELDS: [(&str, &str); 3] =
    [("method", "REQUEST_METHOD"), ("uri", "REQUEST_URI"), ("remote_addr", "REMOTE_ADDR")];

fn main_log_and_slow_log(format: &str) {
    let dir = scratch();
    let (root, script) = cgi_root(dir.path());
    let slow_log = dir.path().join("slow.log");
    let args = [
        "--cgi-root",
        root.to_str().unwrap(),
        "--access-log",
        "--slow-request",
        "0.2",
        "--slow-log",
        slow_log.to_str().unwrap(),
        "--log-format",
        format,
    ];
    let serve = FcgiServe::start(dir.path(), "forging", "cgi", Transport::Unix, &args);
    send_requests(serve.addr(), &script, &root);
    let main_log = dir.path().join("forging.log");
    let json = format == "json";
    // The events: two request records, the program's line of standard error, the refusal.
    let records = |lines: &[String]| {
        lines
            .iter()
            .filter(|l| {
                if json {
                    l.contains(r#""msg":"request""#)
                } else {
                    l.contains(" INFO request, ")
                }
            })
            .count()
    };
    let main = lines_when(&main_log, |lines| records(lines) >= 2);
    let slow = lines_when(&slow_log, |lines| !lines.is_empty());
    let mut stderr_lines = 0;
    let mut refusals = 0;
    for line in &main {
        assert!(!holds_control(line), "{format}: a control character in {line:?}");
        if json {
            let parsed: Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("json: not a JSON line ({e}): {line:?}"));
            let msg = parsed["msg"].as_str().unwrap_or_default();
            if msg == "request" {
                for (field, param) in RECORD_FIELDS {
                    if field == "script" {
                        continue;
                    }
                    assert_eq!(
                        parsed[field].as_str(),
                        Some(value(param).as_str()),
                        "{field}: {line}"
                    );
                }
            }
            if msg == stderr_line() {
                stderr_lines += 1;
            }
            if msg.starts_with("CGI request refused: ") {
                refusals += 1;
                assert_eq!(parsed["uri"].as_str(), Some(value("REQUEST_URI").as_str()), "{line}");
            }
        } else {
            assert!(is_term_line(line), "term: not a line of the log's own: {line:?}");
            if line.contains(" INFO request, ") {
                for (field, param) in RECORD_FIELDS {
                    if field == "script" {
                        continue;
                    }
                    let expected = format!(", {field}: {},", escaped(&value(param), false));
                    assert!(line.contains(&expected), "{expected} in {line}");
                }
            }
            if line.contains(&format!(" WARN {}, ", escaped(&stderr_line(), false))) {
                stderr_lines += 1;
            }
            if line.contains(" WARN CGI request refused: ") {
                refusals += 1;
                let uri = format!(", uri: {},", escaped(&value("REQUEST_URI"), false));
                assert!(line.contains(&uri), "{uri} in {line}");
            }
        }
    }
    assert_eq!(records(&main), 2, "{format}: one record per request:\n{}", main.join("\n"));
    assert_eq!(stderr_lines, 1, "{format}: one line of the program's stderr:\n{}", main.join("\n"));
    assert_eq!(refusals, 1, "{format}: one refusal:\n{}", main.join("\n"));

    assert_eq!(slow.len(), 1, "{format}: one slow line: {slow:?}");
    let line = &slow[0];
    assert!(!holds_control(line), "{format}: a control character in {line:?}");
    let script_name = script.to_str().unwrap();
    if json {
        let parsed: Value = serde_json::from_str(line).expect("a JSON line");
        for (field, param) in SLOW_FIELDS {
            assert_eq!(parsed[field].as_str(), Some(value(param).as_str()), "{field}: {line}");
        }
        assert_eq!(parsed["script"].as_str(), Some(script_name), "{line}");
    } else {
        assert!(is_term_line(line), "{line:?}");
        for (field, param) in SLOW_FIELDS {
            let expected = format!(", {field}: {},", escaped(&value(param), false));
            assert!(line.contains(&expected), "{expected} in {line}");
        }
        let expected = format!(", script: {},", escaped(script_name, false));
        assert!(line.contains(&expected), "{expected} in {line}");
    }
}

#[test]
fn the_term_main_log_and_slow_log_hold_one_escaped_line_per_event() {
    main_log_and_slow_log("term");
}

#[test]
fn the_json_main_log_and_slow_log_hold_one_intact_line_per_event() {
    main_log_and_slow_log("json");
}

fn access_log(format: &str, check: impl Fn(&str)) {
    let dir = scratch();
    let (root, script) = cgi_root(dir.path());
    let access = dir.path().join("access.log");
    let args = [
        "--cgi-root",
        root.to_str().unwrap(),
        "--access-log",
        access.to_str().unwrap(),
        "--access-log-format",
        format,
    ];
    let serve = FcgiServe::start(dir.path(), "formats", "cgi", Transport::Unix, &args);
    send_requests(serve.addr(), &script, &root);
    // Both requests' lines, and then a moment for any line that should not be there.
    let lines = lines_when(&access, |lines| lines.len() >= 2);
    assert_eq!(lines.len(), 2, "{format}: one line per request: {lines:?}");
    for line in &lines {
        assert!(!holds_control(line), "{format}: a control character in {line:?}");
        check(line);
    }
}

#[test]
fn access_log_lines_in_every_format_hold_one_line_per_request() {
    let q = |param: &str| escaped(&value(param), true);
    access_log("combined", |line| {
        let expected = format!("{} - {} [", q("REMOTE_ADDR"), q("REMOTE_USER"));
        assert!(line.starts_with(&expected), "{expected} in {line}");
        let request =
            format!("] \"{} {} {}\" ", q("REQUEST_METHOD"), q("REQUEST_URI"), q("SERVER_PROTOCOL"));
        assert!(line.contains(&request), "{request} in {line}");
        let tail = format!("\"{}\" \"{}\" ", q("HTTP_REFERER"), q("HTTP_USER_AGENT"));
        assert!(line.contains(&tail), "{tail} in {line}");
        assert!(line.contains(&format!(" {} ", q("REQUEST_ID"))), "{line}");
    });
    access_log("json", |line| {
        let parsed: Value = serde_json::from_str(line).expect("a JSON line");
        for (field, param) in RECORD_FIELDS {
            if field != "script" {
                assert_eq!(parsed[field].as_str(), Some(value(param).as_str()), "{field}: {line}");
            }
        }
    });
    let template = "%R %u %m %r %q %f %{HTTP_REFERER}e %{HTTP_USER_AGENT}e %{SERVER_PROTOCOL}e %L";
    access_log(template, |line| {
        let expected = format!(
            "{} {} {} {} {} ",
            q("REMOTE_ADDR"),
            q("REMOTE_USER"),
            q("REQUEST_METHOD"),
            q("REQUEST_URI"),
            q("QUERY_STRING")
        );
        assert!(line.starts_with(&expected), "{expected} in {line}");
        let tail = format!(
            " {} {} {} {}",
            q("HTTP_REFERER"),
            q("HTTP_USER_AGENT"),
            q("SERVER_PROTOCOL"),
            q("REQUEST_ID")
        );
        assert!(line.ends_with(&tail), "{tail} in {line}");
    });
}

#[test]
fn the_fallback_logger_holds_one_escaped_line_per_event() {
    let dir = scratch();
    let socket = dir.path().join("fallback.sock");
    let stderr = dir.path().join("fallback.log");
    let mut command = Command::new(env!("CARGO_BIN_EXE_fcgi-fallback-log"));
    command.arg(&socket);
    let _server = Guarded::spawn("fcgi-fallback-log", command, &stderr);
    let addr = Addr::Unix(socket);
    assert!(wait_until(Duration::from_secs(10), || addr.accepts()), "it listens");
    for script_name in ["/fail", "/slow"] {
        let mut params = params("/srv/app");
        for (name, value) in &mut params {
            if name == "SCRIPT_NAME" {
                *value = script_name.to_owned();
            }
        }
        let pairs: Vec<(&str, &str)> =
            params.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
        Client::connect(&addr).simple_request(&pairs, b"");
    }
    let uri = escaped(&value("REQUEST_URI"), false);
    let error = format!("; error=nothing at {uri};");
    let failed =
        |l: &String| l.starts_with("fcgi-server ERRO: handler failed; ") && l.contains(&error);
    let slow = |l: &String| l.starts_with("fcgi-server WARN: slow request: ");
    let lines = lines_when(&stderr, |lines| lines.iter().any(failed) && lines.iter().any(slow));
    for line in &lines {
        assert!(line.starts_with("fcgi-server "), "not a line of the logger's own: {line:?}");
        assert!(!holds_control(line), "a control character in {line:?}");
    }
    assert_eq!(lines.iter().filter(|l| failed(l)).count(), 1, "{lines:#?}");
    assert_eq!(lines.iter().filter(|l| slow(l)).count(), 1, "{lines:#?}");
    let slow_line = lines.iter().find(|l| slow(l)).unwrap();
    for (field, param) in SLOW_FIELDS {
        let expected = format!("; {field}={}", escaped(&value(param), false));
        let found = slow_line.ends_with(&expected) || slow_line.contains(&format!("{expected};"));
        assert!(found, "{expected} in {slow_line}");
    }
    assert_eq!(lines.len(), 2, "{lines:#?}");
}
