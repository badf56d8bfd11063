//! `--access-log FILE`: one line per request in a file of its own, as operators read them
//! from nginx and PHP-FPM, reopened on USR1 like `--log-file`.
//!
//! The server hands each finished request (and each one that failed, was cut short or was
//! answered by its connection after a queue timeout) to its access log as a typed
//! [`AccessRecord`]. Without a file (`--access-log` alone) the server logs those to the main log
//! itself, as records tagged `ACCESS_TAG`; with one, [`attach`] makes the [`AccessLog`] that
//! formats each record into a line for the file.
//!
//! Writing never blocks a request and never fails it: the line is written on a thread of its
//! own ([`crate::logging::Queue`], lines past its queue dropped and counted), and
//! a line the file does not take (a full disk) is dropped and counted; the counts go to the
//! main log, at warning level, once a line is written again: `dropped` in all, `queue_full`
//! and `write_failed` by cause, each lost line counted once. The approach of
//! [`crate::logging::Lossy`], with the report in the main log so that the access log keeps
//! its format.
//!
//! What a peer sent is escaped in every format: [`fcgi_server::escape`] for the text formats,
//! serde_json for `json`, with [`fcgi_server::json`]'s escapes.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use fcgi_server::{escape, AccessLog, AccessRecord};
use serde::ser::{Serialize, SerializeMap, Serializer};
use slog::{info, o, warn, Drain, Logger, OwnedKVList, Record};
use time::format_description::BorrowedFormatItem;
use time::macros::format_description;
use time::OffsetDateTime;

use crate::logging::{LogTarget, Queue};

/// Lines the writing thread may have queued; past it they are dropped and counted (a disk that
/// cannot keep up must not hold requests back). As the main log's queue.
const QUEUE: usize = 4096;

/// How lines are written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum AccessFormat {
    /// nginx's `combined`, then the duration in seconds, the request id and the outcome:
    /// `127.0.0.1 - - [27/Nov/2026:09:50:00 +0000] "GET /x HTTP/1.1" 200 13 "-" "curl/8" 0.002 4711-1 ok`.
    Combined,
    /// One JSON object per line.
    Json,
    /// A PHP-FPM `access.format`-style template.
    Template(Vec<Piece>),
}

/// A part of a template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Piece {
    /// Text as it is.
    Text(String),
    /// A placeholder.
    Field(Placeholder),
}

/// The placeholders a template may hold (PHP-FPM's meaning unless said otherwise).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Placeholder {
    /// `%R`: the client's address (REMOTE_ADDR).
    Remote,
    /// `%u`: REMOTE_USER.
    User,
    /// `%m`: the method.
    Method,
    /// `%r`: the request URI (REQUEST_URI).
    Uri,
    /// `%q`: the query string.
    Query,
    /// `%Q`: `?` when there is a query string.
    QueryMark,
    /// `%f`: the script (SCRIPT_FILENAME).
    Script,
    /// `%s`: the status.
    Status,
    /// `%l`: the request's CONTENT_LENGTH.
    ContentLength,
    /// `%b`: bytes of the response body sent (fcgi-rs's, as Apache's `%B`; FPM has none).
    Bytes,
    /// `%d`, `%{seconds}d`: the duration in seconds, three decimals.
    Seconds,
    /// `%{mili}d`, `%{milli}d`, `%{miliseconds}d`, `%{milliseconds}d`: in milliseconds,
    /// three decimals.
    Millis,
    /// `%{micro}d`, `%{microseconds}d`: in microseconds.
    Micros,
    /// `%t`: when the request started, `27/Nov/2026:09:50:00 +0000` (UTC).
    Started,
    /// `%T`: when the line was written, likewise.
    Now,
    /// `%p`: this process's pid.
    Pid,
    /// `%P`: its parent's pid (the master's).
    ParentPid,
    /// `%L`: the request id (fcgi-rs's, as Apache's `%L`).
    RequestId,
    /// `%{NAME}e`: one of the params the record carries (see [`param_field`]).
    Param(Field),
    /// `%%`: a percent sign.
    Percent,
}

/// The fields of a request record, by the key the server logs them under.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Field {
    /// `remote`: REMOTE_ADDR.
    Remote,
    /// `user`: REMOTE_USER.
    User,
    /// `method`: REQUEST_METHOD.
    Method,
    /// `uri`: REQUEST_URI.
    Uri,
    /// `query`: QUERY_STRING.
    Query,
    /// `script`: SCRIPT_FILENAME.
    Script,
    /// `protocol`: SERVER_PROTOCOL.
    Protocol,
    /// `referer`: HTTP_REFERER.
    Referer,
    /// `user_agent`: HTTP_USER_AGENT.
    UserAgent,
    /// `content_length`: CONTENT_LENGTH.
    ContentLength,
    /// `status`.
    Status,
    /// `bytes`: body bytes sent.
    Bytes,
    /// `duration_us`.
    DurationUs,
    /// `request_id`.
    RequestId,
    /// `outcome`: `ok`, or how it failed.
    Outcome,
    /// `program_pid`: the program process that served it (`--app exec`, `--app cgi`).
    ProgramPid,
}

/// Every field, in the order of the JSON format.
const FIELDS: [(Field, &str); 16] = [
    (Field::Remote, "remote"),
    (Field::User, "user"),
    (Field::Method, "method"),
    (Field::Uri, "uri"),
    (Field::Query, "query"),
    (Field::Script, "script"),
    (Field::Protocol, "protocol"),
    (Field::Referer, "referer"),
    (Field::UserAgent, "user_agent"),
    (Field::ContentLength, "content_length"),
    (Field::Status, "status"),
    (Field::Bytes, "bytes"),
    (Field::DurationUs, "duration_us"),
    (Field::RequestId, "request_id"),
    (Field::Outcome, "outcome"),
    (Field::ProgramPid, "program_pid"),
];

/// The field `%{NAME}e` stands for: the params the server puts in its record.
pub(crate) fn param_field(name: &str) -> Option<Field> {
    Some(match name {
        "REMOTE_ADDR" => Field::Remote,
        "REMOTE_USER" => Field::User,
        "REQUEST_METHOD" => Field::Method,
        "REQUEST_URI" => Field::Uri,
        "QUERY_STRING" => Field::Query,
        "SCRIPT_FILENAME" => Field::Script,
        "SERVER_PROTOCOL" => Field::Protocol,
        "HTTP_REFERER" => Field::Referer,
        "HTTP_USER_AGENT" => Field::UserAgent,
        "CONTENT_LENGTH" => Field::ContentLength,
        "REQUEST_ID" => Field::RequestId,
        _ => return None,
    })
}

impl AccessFormat {
    /// Whether a line shows the parent's pid (`%P`).
    fn shows_parent_pid(&self) -> bool {
        matches!(self, AccessFormat::Template(pieces)
            if pieces.contains(&Piece::Field(Placeholder::ParentPid)))
    }

    /// `combined`, `json`, or a template (anything with a `%`).
    pub(crate) fn parse(text: &str) -> Result<AccessFormat, String> {
        match text {
            "combined" => Ok(AccessFormat::Combined),
            "json" => Ok(AccessFormat::Json),
            template if template.contains('%') => {
                parse_template(template).map(AccessFormat::Template)
            }
            other => Err(format!(
                "{other:?} is not an access log format: combined, json, or a template with \
                 %-placeholders such as \"%R - %u %t \\\"%m %r\\\" %s\""
            )),
        }
    }
}

/// A template's pieces; an unknown or unsupported placeholder is an error (as in PHP-FPM,
/// which refuses to start).
pub(crate) fn parse_template(template: &str) -> Result<Vec<Piece>, String> {
    let mut pieces = Vec::new();
    let mut text = String::new();
    let mut chars = template.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            text.push(c);
            continue;
        }
        let mut modifier = None;
        let mut token = chars.next().ok_or("the template ends with a lone %")?;
        if token == '{' {
            let mut name = String::new();
            loop {
                match chars.next() {
                    Some('}') => break,
                    Some(c) => name.push(c),
                    None => return Err("a %{ without its }".into()),
                }
            }
            modifier = Some(name);
            token = chars.next().ok_or("a %{...} without its placeholder letter")?;
        }
        let field = placeholder(token, modifier.as_deref())?;
        if field == Placeholder::Percent {
            text.push('%');
            continue;
        }
        if !text.is_empty() {
            pieces.push(Piece::Text(std::mem::take(&mut text)));
        }
        pieces.push(Piece::Field(field));
    }
    if !text.is_empty() {
        pieces.push(Piece::Text(text));
    }
    Ok(pieces)
}

/// The placeholder for `%{modifier}token`.
fn placeholder(token: char, modifier: Option<&str>) -> Result<Placeholder, String> {
    let plain = |p: Placeholder| match modifier {
        None => Ok(p),
        Some(m) => Err(format!("%{token} takes no {{{m}}}")),
    };
    match token {
        '%' => plain(Placeholder::Percent),
        'R' => plain(Placeholder::Remote),
        'u' => plain(Placeholder::User),
        'm' => plain(Placeholder::Method),
        'r' => plain(Placeholder::Uri),
        'q' => plain(Placeholder::Query),
        'Q' => plain(Placeholder::QueryMark),
        'f' => plain(Placeholder::Script),
        's' => plain(Placeholder::Status),
        'l' => plain(Placeholder::ContentLength),
        'b' => plain(Placeholder::Bytes),
        'p' => plain(Placeholder::Pid),
        'P' => plain(Placeholder::ParentPid),
        'L' => plain(Placeholder::RequestId),
        't' => plain(Placeholder::Started)
            .map_err(|_| "%{FORMAT}t: only the default time format is supported".to_owned()),
        'T' => plain(Placeholder::Now)
            .map_err(|_| "%{FORMAT}T: only the default time format is supported".to_owned()),
        'd' => match modifier {
            None | Some("seconds") => Ok(Placeholder::Seconds),
            // PHP-FPM accepts both spellings (its own docs and www.conf use "milli").
            Some("mili" | "miliseconds" | "milli" | "milliseconds") => Ok(Placeholder::Millis),
            Some("micro" | "microseconds") => Ok(Placeholder::Micros),
            Some(other) => {
                Err(format!("%{{{other}}}d: the unit is seconds, mili(seconds) or micro(seconds)"))
            }
        },
        'e' => {
            let name = modifier.ok_or("%e needs a param's name: %{REMOTE_ADDR}e")?;
            param_field(name).map(Placeholder::Param).ok_or_else(|| {
                format!(
                    "%{{{name}}}e: the access log has REMOTE_ADDR, REMOTE_USER, \
                     REQUEST_METHOD, REQUEST_URI, QUERY_STRING, SCRIPT_FILENAME, \
                     SERVER_PROTOCOL, HTTP_REFERER, HTTP_USER_AGENT, CONTENT_LENGTH and \
                     REQUEST_ID"
                )
            })
        }
        'C' | 'M' | 'n' | 'o' => {
            Err(format!("%{token} (PHP-FPM's CPU, memory, pool or header) is not supported"))
        }
        other => Err(format!("%{other} is not a placeholder")),
    }
}

/// A request's fields, as the formats name them.
struct Fields<'r, 'a>(&'r AccessRecord<'a>);

impl Fields<'_, '_> {
    /// The field's text, `None` when the request has none.
    fn get(&self, field: Field) -> Option<Cow<'_, str>> {
        let r = self.0;
        let number = |n: u64| Some(Cow::Owned(n.to_string()));
        match field {
            Field::Remote => r.remote.map(Cow::Borrowed),
            Field::User => r.user.map(Cow::Borrowed),
            Field::Method => r.method.map(Cow::Borrowed),
            Field::Uri => r.uri.map(Cow::Borrowed),
            Field::Query => r.query.map(Cow::Borrowed),
            Field::Script => r.script.as_deref().map(Cow::Borrowed),
            Field::Protocol => r.protocol.map(Cow::Borrowed),
            Field::Referer => r.referer.map(Cow::Borrowed),
            Field::UserAgent => r.user_agent.map(Cow::Borrowed),
            Field::ContentLength => r.content_length.and_then(number),
            Field::Status => number(u64::from(r.status)),
            Field::Bytes => number(r.bytes),
            Field::DurationUs => number(u64::try_from(r.duration.as_micros()).unwrap_or(u64::MAX)),
            Field::RequestId => Some(Cow::Borrowed(r.request_id)),
            Field::Outcome => Some(Cow::Borrowed(r.outcome.as_str())),
            Field::ProgramPid => r.program_pid.map(|pid| Cow::Owned(pid.to_string())),
        }
    }
}

/// `27/Nov/2026:09:50:00 +0000` for `time` (UTC), as nginx's `$time_local` and PHP-FPM's `%t`.
pub(crate) fn clf_time(time: SystemTime) -> String {
    utc(time).format(CLF).unwrap_or_default()
}

/// `2026-11-27T09:50:00.123Z` for `time`.
pub(crate) fn iso_time(time: SystemTime) -> String {
    utc(time).format(ISO).unwrap_or_default()
}

const CLF: &[BorrowedFormatItem<'_>] =
    format_description!("[day]/[month repr:short]/[year]:[hour]:[minute]:[second] +0000");
const ISO: &[BorrowedFormatItem<'_>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");

/// `time` in UTC; a time before the epoch or past the year 9999 (a clock set wrong) as the
/// epoch.
fn utc(time: SystemTime) -> OffsetDateTime {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    time::Duration::try_from(since)
        .ok()
        .and_then(|since| OffsetDateTime::UNIX_EPOCH.checked_add(since))
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// `text` with what would break a line or a quoted field escaped as nginx does (`\xHH`), so
/// that a peer's values cannot forge lines.
fn escaped(text: &str, out: &mut String) {
    escape::push_quoted(out, text);
}

/// `text` escaped, or `-` when absent or empty.
fn or_dash(text: Option<&str>, out: &mut String) {
    match text {
        Some(t) if !t.is_empty() => escaped(t, out),
        _ => out.push('-'),
    }
}

/// The line for `fields`, written at `now` by process `pid` (parent `ppid`), with its newline.
pub(crate) fn format_line(
    format: &AccessFormat,
    record: &AccessRecord<'_>,
    now: SystemTime,
    pid: u32,
    ppid: u32,
) -> String {
    let mut out = String::with_capacity(256);
    let fields = Fields(record);
    let duration = record.duration;
    let started = now.checked_sub(duration).unwrap_or(now);
    match format {
        AccessFormat::Combined => {
            or_dash(fields.get(Field::Remote).as_deref(), &mut out);
            out.push_str(" - ");
            or_dash(fields.get(Field::User).as_deref(), &mut out);
            let _ = write!(out, " [{}] \"", clf_time(started));
            or_dash(fields.get(Field::Method).as_deref(), &mut out);
            out.push(' ');
            or_dash(fields.get(Field::Uri).as_deref(), &mut out);
            if let Some(protocol) = fields.get(Field::Protocol).as_deref().filter(|p| !p.is_empty())
            {
                out.push(' ');
                escaped(protocol, &mut out);
            }
            out.push_str("\" ");
            out.push_str(fields.get(Field::Status).as_deref().unwrap_or("-"));
            out.push(' ');
            out.push_str(fields.get(Field::Bytes).as_deref().unwrap_or("0"));
            out.push_str(" \"");
            or_dash(fields.get(Field::Referer).as_deref(), &mut out);
            out.push_str("\" \"");
            or_dash(fields.get(Field::UserAgent).as_deref(), &mut out);
            let _ = write!(out, "\" {:.3} ", duration.as_secs_f64());
            or_dash(fields.get(Field::RequestId).as_deref(), &mut out);
            out.push(' ');
            or_dash(fields.get(Field::Outcome).as_deref(), &mut out);
        }
        AccessFormat::Json => {
            fcgi_server::json::push(&mut out, &JsonLine { fields: &fields, started, pid });
        }
        AccessFormat::Template(pieces) => {
            for piece in pieces {
                match piece {
                    Piece::Text(text) => out.push_str(text),
                    Piece::Field(p) => {
                        placeholder_value(*p, &fields, started, now, pid, ppid, &mut out)
                    }
                }
            }
        }
    }
    out.push('\n');
    out
}

/// The `json` format's object: `time`, `pid`, then [`FIELDS`] in their order, each a string,
/// a number ([`is_number`]) or `null` when the request has none.
struct JsonLine<'f, 'r, 'a> {
    fields: &'f Fields<'r, 'a>,
    started: SystemTime,
    pid: u32,
}

impl Serialize for JsonLine<'_, '_, '_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(2 + FIELDS.len()))?;
        map.serialize_entry("time", &iso_time(self.started))?;
        map.serialize_entry("pid", &self.pid)?;
        for (field, key) in FIELDS {
            let value = self.fields.get(field);
            match value.as_deref() {
                Some(text) if is_number(field) => match text.parse::<u64>() {
                    Ok(number) => map.serialize_entry(key, &number)?,
                    Err(_) => map.serialize_entry(key, text)?,
                },
                value => map.serialize_entry(key, &value)?,
            }
        }
        map.end()
    }
}

/// Whether a field is written as a JSON number.
fn is_number(field: Field) -> bool {
    matches!(field, Field::Status | Field::Bytes | Field::DurationUs | Field::ContentLength)
}

fn placeholder_value(
    placeholder: Placeholder,
    fields: &Fields<'_, '_>,
    started: SystemTime,
    now: SystemTime,
    pid: u32,
    ppid: u32,
    out: &mut String,
) {
    let duration = fields.0.duration;
    match placeholder {
        Placeholder::Remote => or_dash(fields.get(Field::Remote).as_deref(), out),
        Placeholder::User => or_dash(fields.get(Field::User).as_deref(), out),
        Placeholder::Method => or_dash(fields.get(Field::Method).as_deref(), out),
        Placeholder::Uri => or_dash(fields.get(Field::Uri).as_deref(), out),
        Placeholder::Query => escaped(fields.get(Field::Query).as_deref().unwrap_or(""), out),
        Placeholder::QueryMark => {
            if fields.get(Field::Query).as_deref().is_some_and(|q| !q.is_empty()) {
                out.push('?');
            }
        }
        Placeholder::Script => or_dash(fields.get(Field::Script).as_deref(), out),
        Placeholder::Status => out.push_str(fields.get(Field::Status).as_deref().unwrap_or("-")),
        Placeholder::ContentLength => {
            out.push_str(fields.get(Field::ContentLength).as_deref().unwrap_or("0"))
        }
        Placeholder::Bytes => out.push_str(fields.get(Field::Bytes).as_deref().unwrap_or("0")),
        Placeholder::Seconds => {
            let _ = write!(out, "{:.3}", duration.as_secs_f64());
        }
        Placeholder::Millis => {
            let _ = write!(out, "{:.3}", duration.as_secs_f64() * 1000.0);
        }
        Placeholder::Micros => {
            let _ = write!(out, "{}", duration.as_micros());
        }
        Placeholder::Started => out.push_str(&clf_time(started)),
        Placeholder::Now => out.push_str(&clf_time(now)),
        // PHP-FPM's %p is the process that served the request: the program's, if one did.
        Placeholder::Pid => match fields.get(Field::ProgramPid).as_deref() {
            Some(program) => out.push_str(program),
            None => {
                let _ = write!(out, "{pid}");
            }
        },
        Placeholder::ParentPid => {
            let _ = write!(out, "{ppid}");
        }
        Placeholder::RequestId => or_dash(fields.get(Field::RequestId).as_deref(), out),
        Placeholder::Param(field) => or_dash(fields.get(field).as_deref(), out),
        Placeholder::Percent => out.push('%'),
    }
}

/// The server's [`AccessLog`] for a file: formats each record into its line, and hands the line
/// to the writing thread's queue.
struct Lines {
    format: AccessFormat,
    /// The queue's logger: each record's message is a whole line.
    queue: Logger,
    /// This process's id, read once: a `Lines` is made in the process that serves (a prefork
    /// worker, after its fork), and a line is formatted on the request's thread, which should
    /// not pay a system call for it.
    pid: u32,
}

impl Lines {
    fn new(format: AccessFormat, queue: Logger) -> Lines {
        Lines { format, queue, pid: std::process::id() }
    }
}

impl AccessLog for Lines {
    fn log(&self, record: &AccessRecord<'_>) {
        // The parent's id can change (a master that dies leaves its workers to another), so it
        // is read for each line, and only by a format that shows it.
        let ppid =
            if self.format.shows_parent_pid() { std::os::unix::process::parent_id() } else { 0 };
        let line = format_line(&self.format, record, SystemTime::now(), self.pid, ppid);
        info!(self.queue, "{}", line);
    }
}

/// The drain that writes the lines, on the queue's thread, to `W` (the file's [`LogTarget`]).
struct Writer<W> {
    target: W,
    /// Where the counts of dropped lines are reported.
    report: Logger,
    /// Lines the file did not take since the last report (only this drain's thread counts).
    write_failed: AtomicU64,
    /// Lines the queue had no room for since the last report (counted by the [`Queue`]).
    queue_full: Arc<AtomicU64>,
}

impl<W: std::io::Write + Clone> Writer<W> {
    fn new(target: W, report: Logger) -> Writer<W> {
        Writer { target, report, write_failed: AtomicU64::new(0), queue_full: Arc::default() }
    }
}

impl<W: std::io::Write + Clone> Drain for Writer<W> {
    type Ok = ();
    type Err = slog::Never;

    fn log(&self, record: &Record<'_>, _values: &OwnedKVList) -> Result<(), slog::Never> {
        let written = catch_unwind(AssertUnwindSafe(|| {
            let line = record.msg().to_string();
            // One write of the whole line: lines of several workers appending to one file do
            // not interleave, and a failed one leaves nothing half written behind.
            self.target.clone().write_all(line.as_bytes()).is_ok()
        }));
        if written.unwrap_or(false) {
            let write_failed = self.write_failed.swap(0, Ordering::Relaxed);
            let queue_full = self.queue_full.swap(0, Ordering::Relaxed);
            if write_failed + queue_full > 0 {
                warn!(self.report, "access log lines dropped: the access log could not be written";
                    "dropped" => write_failed + queue_full, "queue_full" => queue_full,
                    "write_failed" => write_failed);
            }
        } else {
            self.write_failed.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }
}

/// The access log to serve with when it has a file: each request's line goes to `target`, in
/// `format`; counts of lost lines go to `log`. Keep the guard until the process is about to
/// exit: dropping it writes what is still queued.
pub(crate) fn attach(
    log: Logger,
    target: LogTarget,
    format: AccessFormat,
) -> (Arc<dyn AccessLog>, slog_async::AsyncGuard) {
    let writer = Writer::new(target, log);
    let full = Arc::clone(&writer.queue_full);
    let (queue, guard) = Queue::start(writer, QUEUE, "fcgi-access", full);
    let lines = Lines::new(format, Logger::root(queue, o!()));
    (Arc::new(lines), guard)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use slog::{Key, Serializer, KV};

    use super::*;

    fn request() -> AccessRecord<'static> {
        AccessRecord {
            remote: Some("192.0.2.7"),
            method: Some("GET"),
            uri: Some("/a b?x=1"),
            query: Some("x=1"),
            protocol: Some("HTTP/1.1"),
            user_agent: Some("curl/8 \"quoted\""),
            status: 200,
            bytes: 13,
            duration: Duration::from_micros(2500),
            request_id: "77-1",
            content_length: Some(5),
            script: Some("/srv/x.cgi".into()),
            ..AccessRecord::default()
        }
    }

    /// 2026-11-27 09:50:00.250 UTC.
    fn now() -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(1_795_773_000_250)
    }

    #[test]
    fn times_in_utc() {
        assert_eq!(clf_time(now()), "27/Nov/2026:09:50:00 +0000");
        assert_eq!(iso_time(now()), "2026-11-27T09:50:00.250Z");
        assert_eq!(iso_time(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(clf_time(leap), "29/Feb/2000:00:00:00 +0000");
    }

    #[test]
    fn the_combined_line() {
        let line = format_line(&AccessFormat::Combined, &request(), now(), 10, 1);
        assert_eq!(
            line,
            "192.0.2.7 - - [27/Nov/2026:09:50:00 +0000] \"GET /a b?x=1 HTTP/1.1\" 200 13 \"-\" \
             \"curl/8 \\x22quoted\\x22\" 0.003 77-1 ok\n"
        );
        let empty = format_line(&AccessFormat::Combined, &AccessRecord::default(), now(), 10, 1);
        assert_eq!(
            empty,
            "- - - [27/Nov/2026:09:50:00 +0000] \"- -\" 0 0 \"-\" \"-\" 0.000 - ok\n"
        );
    }

    #[test]
    fn the_json_line() {
        let line = format_line(&AccessFormat::Json, &request(), now(), 10, 1);
        assert!(
            line.starts_with("{\"time\":\"2026-11-27T09:50:00.2") && line.ends_with("}\n"),
            "{line}"
        );
        assert!(line.contains("\"remote\":\"192.0.2.7\""), "{line}");
        assert!(line.contains("\"status\":200,\"bytes\":13,\"duration_us\":2500"), "{line}");
        assert!(line.contains("\"user\":null"), "{line}");
        assert!(line.contains("\"user_agent\":\"curl/8 \\\"quoted\\\"\""), "{line}");
    }

    #[test]
    fn templates() {
        let table = [
            (
                "%R - %u %t \"%m %r\" %s",
                "192.0.2.7 - - 27/Nov/2026:09:50:00 +0000 \"GET /a b?x=1\" 200",
            ),
            ("%d %{mili}d %{microseconds}d", "0.003 2.500 2500"),
            ("%{milli}d %{milliseconds}d", "2.500 2.500"),
            ("%f %l %b %L %p %P 100%%", "/srv/x.cgi 5 13 77-1 10 1 100%"),
            ("%{REMOTE_ADDR}e %Q%q", "192.0.2.7 ?x=1"),
        ];
        for (template, expected) in table {
            let format = AccessFormat::parse(template).expect(template);
            let line = format_line(&format, &request(), now(), 10, 1);
            assert_eq!(line, format!("{expected}\n"), "{template}");
        }
    }

    #[test]
    fn only_a_format_with_the_parents_pid_reads_it() {
        let table =
            [("%P", true), ("%p %P %s", true), ("%p", false), ("%%P", false), ("combined", false)];
        for (format, shows) in table {
            let format = AccessFormat::parse(format).expect(format);
            assert_eq!(format.shows_parent_pid(), shows, "{format:?}");
        }
    }

    #[test]
    fn bad_templates_are_refused() {
        for bad in
            ["%", "%x", "%{NOPE}e", "%e", "%{hours}d", "%{x", "%{%H}t", "%C", "%{y}R", "plain"]
        {
            assert!(AccessFormat::parse(bad).is_err(), "{bad}");
        }
    }

    /// A file that fails its first `failures` writes (a full disk), then keeps what it gets.
    #[derive(Clone)]
    struct Flaky {
        failures: std::sync::Arc<std::sync::Mutex<usize>>,
        written: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
    }

    impl std::io::Write for Flaky {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            let mut failures = self.failures.lock().unwrap();
            if *failures > 0 {
                *failures -= 1;
                return Err(std::io::Error::from(rustix::io::Errno::NOSPC));
            }
            self.written.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// The main log: each report's counts, `(dropped, queue_full, write_failed)`.
    #[derive(Clone, Default)]
    struct Reports(std::sync::Arc<std::sync::Mutex<Vec<(u64, u64, u64)>>>);

    impl Drain for Reports {
        type Ok = ();
        type Err = slog::Never;

        fn log(&self, record: &Record<'_>, _: &OwnedKVList) -> Result<(), slog::Never> {
            #[derive(Default)]
            struct Counts(u64, u64, u64);
            impl Serializer for Counts {
                fn emit_arguments(
                    &mut self,
                    key: Key,
                    val: &std::fmt::Arguments<'_>,
                ) -> slog::Result {
                    let n = val.to_string().parse().unwrap_or(0);
                    match key {
                        "dropped" => self.0 = n,
                        "queue_full" => self.1 = n,
                        "write_failed" => self.2 = n,
                        _ => {}
                    }
                    Ok(())
                }
            }
            let mut counts = Counts::default();
            let _ = record.kv().serialize(record, &mut counts);
            self.0.lock().unwrap().push((counts.0, counts.1, counts.2));
            Ok(())
        }
    }

    #[test]
    fn lines_a_full_disk_refuses_are_dropped_counted_and_reported_in_the_main_log() {
        let file = Flaky {
            failures: std::sync::Arc::new(std::sync::Mutex::new(2)),
            written: std::sync::Arc::new(std::sync::Mutex::new(Vec::new())),
        };
        let reports = Reports::default();
        let writer = Writer::new(file.clone(), Logger::root(reports.clone(), o!()));
        let queue_full = Arc::clone(&writer.queue_full);
        // The writer on this thread, without a queue in between.
        let lines = Lines::new(AccessFormat::parse("%s %L").unwrap(), Logger::root(writer, o!()));
        for id in ["a", "b", "c", "d"] {
            lines.log(&AccessRecord { status: 200, request_id: id, ..AccessRecord::default() });
        }
        // As the queue counts five lines it had no room for.
        queue_full.fetch_add(5, Ordering::Relaxed);
        lines.log(&AccessRecord { status: 500, request_id: "e", ..AccessRecord::default() });
        let written = String::from_utf8(file.written.lock().unwrap().clone()).unwrap();
        assert_eq!(written, "200 c\n200 d\n500 e\n", "a and b dropped");
        assert_eq!(*reports.0.lock().unwrap(), vec![(2, 0, 2), (5, 5, 0)], "each reported once");
    }

    #[test]
    fn lines_past_the_queue_are_counted_once_each_and_said_to_be_the_queues() {
        const TOTAL: u64 = 10_000;
        let dir = tempfile::tempdir().unwrap();
        let mut pipe = crate::logging::stalled::Stalled::new(dir.path());
        let target = LogTarget::open(Some(&pipe.path)).unwrap();
        let reports = Reports::default();
        let main = Logger::root(reports.clone(), o!());
        let (access, guard) = attach(main, target, AccessFormat::parse("%L %r").unwrap());
        // A kilobyte a line: the pipe is full after some 64, the queue after 4,096 more.
        let uri = format!("/{}", "x".repeat(1024));
        for n in 0..TOTAL {
            let id = n.to_string();
            access.log(&AccessRecord {
                request_id: &id,
                uri: Some(&uri),
                ..AccessRecord::default()
            });
        }
        pipe.recover();
        // Until a line gets through the queue again (each one lost meanwhile counts too).
        let mut sent = TOTAL;
        for k in 0..500 {
            sent += 1;
            let id = format!("final-{k}");
            access.log(&AccessRecord { request_id: &id, ..AccessRecord::default() });
            if pipe.shows(&format!("final-{k} "), Duration::from_millis(50)) {
                break;
            }
        }
        drop(access);
        drop(guard);
        let written = pipe.finish().lines().count() as u64;
        let reports = reports.0.lock().unwrap().clone();
        let dropped: u64 = reports.iter().map(|r| r.0).sum();
        assert!(reports.iter().all(|&(d, q, w)| d == q && w == 0), "{reports:?}");
        assert!(dropped > 0, "the queue overflowed: {written} lines written of {sent}");
        assert_eq!(written + dropped, sent, "every line written or counted, once: {reports:?}");
    }

    #[test]
    fn a_peers_newline_cannot_forge_a_line() {
        let forged = AccessRecord {
            uri: Some("/x\n127.0.0.1 - - fake"),
            status: 200,
            ..AccessRecord::default()
        };
        let line = format_line(&AccessFormat::Combined, &forged, now(), 1, 1);
        assert_eq!(line.matches('\n').count(), 1, "{line}");
        assert!(line.contains("/x\\x0A127.0.0.1"), "{line}");
    }
}
