//! The status page and the ping, answered by the server itself whatever the app, in PHP-FPM's
//! formats (`pm.status_path`, `ping.path`), so that FPM's dashboards, exporters and checks read
//! fcgi-rs unchanged.
//!
//! The page is chosen by SCRIPT_NAME, as FPM does, compared exactly with the configured paths;
//! its format by the query string: plain text by default, `json`, `openmetrics`, `html` and
//! `xml` ([`markup`]), and `full` for an entry per process. Everything that decides or formats is a pure function of a
//! [`PageData`]; [`answer`] gathers one (counters, the kernel's listen queue) and writes it.
//!
//! How FPM's words map to fcgi-rs: a PHP-FPM *process* serves one request at a time, as a pool
//! *thread* does here, so in one process "idle/active/total processes" count the pool's
//! threads and `full` lists one entry per thread (its kernel thread id as "pid"). With prefork
//! workers, `full` lists the workers (their pids), and the counts are the sums over all the
//! workers' threads. What fcgi-rs knows beyond FPM goes under its own names: an `"fcgi-rs"`
//! object in JSON, `fcgi_rs_*` metrics, `fcgi-rs ...` lines in text.

mod data;
mod json;
pub(crate) mod layer;
mod markup;

use std::fmt::Write as _;
use std::io::Write as _;
use std::os::fd::RawFd;
use std::sync::atomic::Ordering;

use crate::work::context::Context;

use crate::escape;
use crate::status::metrics::{Metrics, DURATION_BUCKETS};
use crate::{Request, Response, Role};
use data::{clf_time, or_dash, own_fields, pool_fields, seconds, since, state, CLASSES};
pub(crate) use data::{ListenQueue, PageData, ProcessEntry};

/// A page the server answers itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Page {
    /// The status page (`--status-path`).
    Status,
    /// The ping (`--ping-path`).
    Ping,
}

/// Which page, if any, a request in `role` with this SCRIPT_NAME asks for: an exact match, as
/// FPM compares `pm.status_path` and `ping.path`, and only for the Responder role. An
/// Authorizer request for the same path is the app's to answer: the page's `200` would tell
/// the web server "authorized" for whatever its client asked (and a Filter's answer is the
/// filtered file, which a status page is not).
pub(crate) fn route(
    role: Role,
    script_name: Option<&str>,
    status_path: Option<&str>,
    ping_path: Option<&str>,
) -> Option<Page> {
    if role != Role::Responder {
        return None;
    }
    let script = script_name?;
    if status_path == Some(script) {
        Some(Page::Status)
    } else if ping_path == Some(script) {
        Some(Page::Ping)
    } else {
        None
    }
}

/// The status page's formats, as FPM names them in the query string.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Format {
    /// `name: value` lines (the default).
    Text,
    /// `?json`.
    Json,
    /// `?openmetrics`: the OpenMetrics text format, for Prometheus.
    OpenMetrics,
    /// `?html`: FPM's XHTML tables.
    Html,
    /// `?xml`: FPM's XML document.
    Xml,
}

/// The format and the `full` flag a query string asks for. As FPM, a key counts whatever its
/// value (`?json`, `?json=1`), unknown keys are ignored, and of several formats the first of
/// html, xml, json, openmetrics wins (the order FPM tests them in).
pub(crate) fn parse_query(query: &str) -> (Format, bool) {
    let keys: Vec<&str> =
        query.split('&').map(|pair| pair.split_once('=').map_or(pair, |(k, _)| k)).collect();
    let format = [
        ("html", Format::Html),
        ("xml", Format::Xml),
        ("json", Format::Json),
        ("openmetrics", Format::OpenMetrics),
    ]
    .into_iter()
    .find(|(key, _)| keys.contains(key))
    .map_or(Format::Text, |(_, format)| format);
    (format, keys.contains(&"full"))
}

/// The `Content-Type` of a format.
pub(crate) fn content_type(format: Format) -> &'static str {
    match format {
        Format::Text => "text/plain",
        Format::Json => "application/json",
        Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        Format::Html => "text/html",
        Format::Xml => "text/xml",
    }
}

/// The page in `format`; with `full`, an entry per process (OpenMetrics has none, as in FPM).
pub(crate) fn render(data: &PageData, format: Format, full: bool) -> String {
    match format {
        Format::Text => text(data, full),
        Format::Json => json::json(data, full),
        Format::OpenMetrics => openmetrics(data),
        Format::Html => markup::html(data, full),
        Format::Xml => markup::xml(data, full),
    }
}

fn text(data: &PageData, full: bool) -> String {
    let mut out = String::new();
    // FPM's layout: the value at column 23, and a space at least after a longer name. Each
    // value escaped: a peer's URI must not start a line (or a process entry) of its own.
    let line = |out: &mut String, name: &str, value: &dyn std::fmt::Display| {
        let _ = write!(out, "{:<21} ", format!("{name}:"));
        escape::push_text(out, &value.to_string());
        out.push('\n');
    };
    line(&mut out, "pool", &data.pool);
    line(&mut out, "process manager", &data.process_manager);
    line(&mut out, "start time", &clf_time(data.start_unix));
    for (name, value) in pool_fields(data) {
        line(&mut out, name, &value);
    }
    for (name, value) in own_fields(data) {
        line(&mut out, &format!("fcgi-rs {name}"), &value);
    }
    if let Some(down) = &data.down {
        line(&mut out, "fcgi-rs program down", down);
    }
    for (class, count) in CLASSES.iter().zip(data.metrics.status_classes) {
        line(&mut out, &format!("fcgi-rs responses {class}"), &count);
    }
    if full {
        for p in &data.processes {
            out.push_str("\n************************\n");
            line(&mut out, "pid", &p.pid);
            line(&mut out, "state", &state(p));
            line(&mut out, "start time", &clf_time(p.start_unix));
            line(&mut out, "start since", &since(data, p.start_unix));
            line(&mut out, "requests", &p.requests);
            line(&mut out, "request duration", &p.duration_us);
            line(&mut out, "request method", &or_dash(&p.method));
            line(&mut out, "request URI", &or_dash(&p.uri));
            line(&mut out, "content length", &p.content_length);
            line(&mut out, "user", &or_dash(&p.user));
            line(&mut out, "script", &or_dash(&p.script));
            line(&mut out, "last request cpu", &format!("{:.2}", p.last_cpu_percent));
            line(&mut out, "last request memory", &p.last_memory);
            line(&mut out, "fcgi-rs thread", &or_dash(&p.thread));
        }
    }
    out
}

/// A label value for OpenMetrics: backslash, quote and newline escaped.
fn label(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

fn openmetrics(data: &PageData) -> String {
    let m = &data.metrics;
    let pool = format!("pool=\"{}\"", label(&data.pool));
    let mut out = String::new();
    let mut family = |name: &str, kind: &str, help: &str, value: u64| {
        let sample = if kind == "counter" { format!("{name}_total") } else { name.to_owned() };
        let _ =
            write!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{sample}{{{pool}}} {value}\n");
    };
    // FPM's metric names (its `?openmetrics`), in its order.
    family("phpfpm_up", "gauge", "Whether the pool answers.", 1);
    family(
        "phpfpm_start_since",
        "gauge",
        "Seconds since the pool started.",
        since(data, data.start_unix),
    );
    family("phpfpm_accepted_connections", "counter", "Requests accepted.", m.accepted);
    family("phpfpm_listen_queue", "gauge", "Connections waiting to be accepted.", data.listen.now);
    family(
        "phpfpm_max_listen_queue",
        "gauge",
        "Most connections seen waiting to be accepted.",
        data.listen.max,
    );
    family("phpfpm_listen_queue_length", "gauge", "Size of the listen queue.", data.listen.len);
    family("phpfpm_idle_processes", "gauge", "Idle threads.", m.idle);
    family("phpfpm_active_processes", "gauge", "Requests running.", m.active);
    family(
        "phpfpm_total_processes",
        "gauge",
        "Idle threads plus running requests.",
        m.idle + m.active,
    );
    family("phpfpm_max_active_processes", "gauge", "Most requests running at once.", m.max_active);
    family(
        "phpfpm_max_children_reached",
        "counter",
        "Requests that found every thread busy.",
        m.max_children_reached,
    );
    family(
        "phpfpm_slow_requests",
        "counter",
        "Requests that ran past the slow-request limit.",
        m.slow,
    );
    // fcgi-rs's own.
    family(
        "fcgi_rs_workers",
        "gauge",
        "Prefork workers counted (1 without a master).",
        data.workers,
    );
    family("fcgi_rs_threads", "gauge", "Pool threads alive.", m.threads);
    family("fcgi_rs_max_threads", "gauge", "The cap on pool threads.", m.max_threads);
    family("fcgi_rs_queued", "gauge", "Requests waiting for a thread.", m.queued);
    family(
        "fcgi_rs_queue_capacity",
        "gauge",
        "Requests that may wait for a thread.",
        m.queue_capacity,
    );
    family(
        "fcgi_rs_overloaded",
        "counter",
        "Requests answered 503 by the server itself.",
        m.overloaded,
    );
    family(
        "fcgi_rs_queue_timeouts",
        "counter",
        "Requests answered 503 after waiting past the queue timeout.",
        m.queue_timeouts,
    );
    family(
        "fcgi_rs_spooled_bytes",
        "counter",
        "Bytes of request bodies written to spool files.",
        m.spooled_bytes,
    );
    let _ = write!(
        out,
        "# HELP fcgi_rs_responses Responses by status class.\n# TYPE fcgi_rs_responses counter\n"
    );
    for (class, count) in CLASSES.iter().zip(m.status_classes) {
        let _ = writeln!(out, "fcgi_rs_responses_total{{{pool},class=\"{class}\"}} {count}");
    }
    let name = "fcgi_rs_request_duration_seconds";
    let _ = write!(
        out,
        "# HELP {name} How long handlers ran.\n# TYPE {name} histogram\n# UNIT {name} seconds\n"
    );
    let mut cumulative = 0;
    for (i, count) in m.duration_buckets.iter().enumerate() {
        cumulative += count;
        let le = DURATION_BUCKETS.get(i).map_or_else(|| "+Inf".to_owned(), |b| format!("{b:?}"));
        let _ = writeln!(out, "{name}_bucket{{{pool},le=\"{le}\"}} {cumulative}");
    }
    let _ = writeln!(out, "{name}_count{{{pool}}} {cumulative}");
    let _ = writeln!(out, "{name}_sum{{{pool}}} {}", seconds(m.duration_sum_us));
    out.push_str("# EOF\n");
    out
}

/// The listen queue of TCP listening sockets, from the kernel: for a socket in LISTEN state,
/// Linux's `TCP_INFO` gives the connections waiting to be accepted in `tcpi_unacked` and the
/// backlog in `tcpi_sacked` (what FPM reads too). Unix sockets have no such counter outside
/// netlink's sock_diag, so they count as zero.
pub(crate) fn listen_queue(tcp_fds: &[RawFd]) -> (u64, u64) {
    let mut now = 0;
    let mut len = 0;
    for &fd in tcp_fds {
        if let Some((unacked, sacked)) = crate::sys::tcp_listen_queue(fd) {
            now += u64::from(unacked);
            len += u64::from(sacked);
        }
    }
    (now, len)
}

/// Answers `page` for `request`, from what `ctx` knows.
pub(crate) fn answer(
    page: Page,
    ctx: &Context,
    request: &Request,
    response: &mut Response,
) -> Result<(), crate::Error> {
    // One Content-Type (a web server passes every one it is given on to the client): the
    // ping's is plain text, the page's its format's.
    let (format, full) = match page {
        Page::Ping => (Format::Text, false),
        Page::Status => parse_query(request.query_string().unwrap_or("")),
    };
    response.header("Content-Type", content_type(format))?;
    // FPM's headers: monitoring must never see a cached answer.
    response.header("Expires", "Thu, 01 Jan 1970 00:00:00 GMT")?;
    response.header("Cache-Control", "no-cache, no-store, must-revalidate, max-age=0")?;
    if page == Page::Ping {
        response.write_all(ctx.config.ping_response.as_bytes())?;
        return Ok(());
    }
    let data = gather(ctx, full);
    response.write_all(render(&data, format, full).as_bytes())?;
    Ok(())
}

/// The page's data, now.
fn gather(ctx: &Context, full: bool) -> PageData {
    let mine = ctx.status.metrics();
    let (now, len) = listen_queue(&ctx.tcp_listen_fds);
    let max = ctx.max_listen_queue.fetch_max(now, Ordering::Relaxed).max(now);
    let mut data = PageData {
        pool: ctx.config.pool_name.clone(),
        process_manager: "dynamic".into(),
        now_unix: crate::status::unix_now(),
        metrics: mine,
        start_unix: mine.start_unix,
        listen: ListenQueue { now, max, len },
        workers: 1,
        down: None,
        processes: Vec::new(),
    };
    match ctx.status.peers() {
        None => {
            if full {
                data.processes = ctx
                    .status
                    .threads()
                    .into_iter()
                    .map(|t| ProcessEntry {
                        pid: t.tid,
                        running: t.running,
                        start_unix: t.start_unix,
                        requests: t.requests,
                        duration_us: u64::try_from(t.duration.as_micros()).unwrap_or(u64::MAX),
                        method: t.request.method,
                        uri: t.request.uri,
                        content_length: t.request.content_length,
                        user: t.request.user,
                        script: t.request.script,
                        thread: Some(t.name),
                        ..ProcessEntry::default()
                    })
                    .collect();
            }
        }
        Some(source) => {
            data.process_manager = source.process_manager().into();
            let (peers, retired) = source.peers();
            let mut total = mine;
            let mut processes = vec![worker_entry(&mine)];
            for peer in peers.iter().filter(|p| p.pid != mine.pid) {
                total.add(peer);
                data.start_unix = data.start_unix.min(peer.start_unix);
                processes.push(worker_entry(peer));
            }
            total.add(&retired);
            data.workers = processes.len() as u64;
            data.metrics = total;
            if full {
                processes.sort_by_key(|p| p.pid);
                data.processes = processes;
            }
        }
    }
    if let Some(app) = ctx.status.app_processes() {
        with_app_processes(&mut data, app, full);
        // The most seen, as the kernel's queue is: sampled at each page.
        let seen = ctx.max_listen_queue.fetch_max(data.listen.now, Ordering::Relaxed);
        data.listen.max = data.listen.max.max(seen);
    }
    data
}

/// The app's own processes in place of the threads (or workers): they are what PHP-FPM would
/// count and list. Requests waiting for one are in the listen queue: those that wait for a
/// process, and those that wait for a thread (the app's threads are sized to its processes,
/// so a request that finds them all busy finds the processes busy too; it counts as the cap
/// reached as well).
fn with_app_processes(data: &mut PageData, app: crate::AppProcesses, full: bool) {
    data.process_manager = app.model.into();
    data.down = app.down;
    let m = &mut data.metrics;
    m.idle = app.idle;
    // FPM's total is idle + active; a process being stopped is busy finishing.
    m.active = app.active + app.finishing;
    m.max_active = app.max_active;
    m.max_children_reached += app.max_children_reached;
    data.listen.now += app.waiting + m.queued;
    data.listen.max = data.listen.max.max(app.max_waiting).max(data.listen.now);
    if full {
        data.processes = app
            .processes
            .into_iter()
            .map(|p| ProcessEntry {
                pid: p.pid,
                running: p.state == "Running",
                finishing: p.state == "Finishing",
                start_unix: p.start_unix,
                requests: p.requests,
                duration_us: u64::try_from(p.duration.as_micros()).unwrap_or(u64::MAX),
                method: p.method,
                uri: p.uri,
                last_cpu_percent: p.last_cpu_percent,
                last_memory: p.last_memory,
                ..ProcessEntry::default()
            })
            .collect();
    }
}

/// A prefork worker as an entry of `full`: the process FPM would list.
fn worker_entry(m: &Metrics) -> ProcessEntry {
    ProcessEntry {
        pid: m.pid,
        running: m.active > 0,
        start_unix: m.start_unix,
        requests: m.accepted,
        ..ProcessEntry::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_by_exact_script_name() {
        let table = [
            (Some("/status"), Some(Page::Status)),
            (Some("/ping"), Some(Page::Ping)),
            (Some("/status/"), None),
            (Some("/statusx"), None),
            (Some("/index.php"), None),
            (None, None),
        ];
        for (script, page) in table {
            assert_eq!(
                route(Role::Responder, script, Some("/status"), Some("/ping")),
                page,
                "{script:?}"
            );
        }
        assert_eq!(route(Role::Responder, Some("/status"), None, None), None);
    }

    #[test]
    fn only_the_responder_role_gets_the_pages() {
        for role in [Role::Authorizer, Role::Filter, Role::Unknown(9)] {
            for script in ["/status", "/ping"] {
                let page = route(role, Some(script), Some("/status"), Some("/ping"));
                assert_eq!(page, None, "{role:?} {script}");
            }
        }
    }

    #[test]
    fn parses_fpm_query_strings() {
        let table = [
            ("", (Format::Text, false)),
            ("json", (Format::Json, false)),
            ("json&full", (Format::Json, true)),
            ("full&json=1", (Format::Json, true)),
            ("openmetrics", (Format::OpenMetrics, false)),
            ("full", (Format::Text, true)),
            ("other=json", (Format::Text, false)),
            ("html", (Format::Html, false)),
            ("xml&full", (Format::Xml, true)),
            ("json&html", (Format::Html, false)),
            ("openmetrics&xml", (Format::Xml, false)),
            ("openmetrics&json", (Format::Json, false)),
        ];
        for (query, expected) in table {
            assert_eq!(parse_query(query), expected, "{query:?}");
        }
    }

    pub(super) fn sample() -> PageData {
        let mut metrics = Metrics {
            accepted: 10,
            served: 9,
            active: 1,
            idle: 3,
            threads: 4,
            slow: 2,
            ..Metrics::default()
        };
        metrics.duration_buckets[0] = 8;
        metrics.duration_buckets[DURATION_BUCKETS.len()] = 1;
        metrics.duration_sum_us = 61_500_000;
        metrics.status_classes[1] = 9;
        PageData {
            pool: "www \"one\"".into(),
            process_manager: "dynamic".into(),
            now_unix: 1_000_100,
            metrics,
            start_unix: 1_000_000,
            listen: ListenQueue { now: 0, max: 2, len: 511 },
            workers: 1,
            down: None,
            processes: vec![ProcessEntry {
                pid: 42,
                running: true,
                uri: Some("/a?b=\"c\"".into()),
                ..ProcessEntry::default()
            }],
        }
    }

    #[test]
    fn an_apps_own_processes_replace_the_threads() {
        let mut data = sample();
        // Two requests wait for a thread, and one found the threads all busy: they wait for
        // a process too.
        data.metrics.queued = 2;
        data.metrics.max_children_reached = 1;
        let app = crate::AppProcesses {
            model: "ondemand",
            idle: 1,
            active: 2,
            finishing: 1,
            max_active: 3,
            max_children_reached: 7,
            waiting: 4,
            max_waiting: 5,
            down: Some("the program exited with status 1".into()),
            processes: vec![crate::AppProcess {
                pid: 77,
                state: "Finishing",
                requests: 9,
                last_cpu_percent: 12.5,
                last_memory: 4096,
                ..crate::AppProcess::default()
            }],
        };
        with_app_processes(&mut data, app, true);
        let page = render(&data, Format::Json, true);
        for part in [
            "\"process manager\":\"ondemand\"",
            "\"listen queue\":6",
            "\"max listen queue\":6",
            "\"idle processes\":1",
            "\"active processes\":3",
            "\"total processes\":4",
            "\"max active processes\":3",
            "\"max children reached\":8",
            "\"program down\":\"the program exited with status 1\"",
            "{\"pid\":77,\"state\":\"Finishing\"",
            "\"requests\":9",
            "\"last request cpu\":12.50,\"last request memory\":4096",
        ] {
            assert!(page.contains(part), "{part} in {page}");
        }
        let text = render(&data, Format::Text, true);
        assert!(text.contains("fcgi-rs program down: the program exited with status 1"), "{text}");
    }

    #[test]
    fn json_has_fpm_fields_in_fpm_order() {
        let page = render(&sample(), Format::Json, true);
        let names = [
            "\"pool\":\"www \\\"one\\\"\"",
            "\"process manager\":\"dynamic\"",
            "\"start time\":1000000",
            "\"start since\":100",
            "\"accepted conn\":10",
            "\"listen queue\":0",
            "\"max listen queue\":2",
            "\"listen queue len\":511",
            "\"idle processes\":3",
            "\"active processes\":1",
            "\"total processes\":4",
            "\"max active processes\":0",
            "\"max children reached\":0",
            "\"slow requests\":2",
            "\"processes\":[{\"pid\":42,\"state\":\"Running\"",
            "\"request uri\":\"/a?b=\\\"c\\\"\"",
        ];
        let mut at = 0;
        for name in names {
            let found =
                page[at..].find(name).unwrap_or_else(|| panic!("{name} after {at} in {page}"));
            at += found;
        }
        assert!(page.ends_with("}]}"), "{page}");
    }

    #[test]
    fn text_aligns_values_as_fpm() {
        let page = render(&sample(), Format::Text, false);
        assert!(page.starts_with("pool:                 www \"one\"\n"), "{page}");
        assert!(page.contains("\nstart time:           12/Jan/1970:13:46:40 +0000\n"), "{page}");
        assert!(page.contains("\nslow requests:        2\n"), "{page}");
        assert!(!page.contains("pid:"));
    }

    #[test]
    fn text_escapes_what_a_peer_sent_and_keeps_a_line_per_field() {
        let forged = "/a\n\n************************\npid: 1\r\x1b[2J\u{2028}\\";
        let mut data = sample();
        data.processes[0].uri = Some(forged.into());
        data.processes[0].user = Some(forged.into());
        data.processes[0].script = Some(forged.into());
        let plain = render(&sample(), Format::Text, true);
        let page = render(&data, Format::Text, true);
        assert_eq!(page.lines().count(), plain.lines().count(), "{page}");
        let escaped =
            "/a\\x0A\\x0A************************\\x0Apid: 1\\x0D\\x1B[2J\\xE2\\x80\\xA8\\x5C";
        assert!(page.contains(&format!("\nrequest URI:          {escaped}\n")), "{page}");
        assert!(page.contains(&format!("\nuser:                 {escaped}\n")), "{page}");
        assert!(page.contains(&format!("\nscript:               {escaped}\n")), "{page}");
        assert!(!page.chars().any(|c| c.is_control() && c != '\n'), "{page:?}");
        let json = render(&data, Format::Json, true);
        assert!(!json.chars().any(|c| c.is_control() || c == '\u{2028}'), "{json:?}");
        assert!(json.contains(r#""request uri":"/a\u000a\u000a*"#), "{json}");
    }

    #[test]
    fn openmetrics_has_the_histogram_and_ends_with_eof() {
        let page = render(&sample(), Format::OpenMetrics, false);
        assert!(page.contains("phpfpm_accepted_connections_total{pool=\"www \\\"one\\\"\"} 10\n"));
        assert!(page.contains(
            "fcgi_rs_request_duration_seconds_bucket{pool=\"www \\\"one\\\"\",le=\"0.005\"} 8\n"
        ));
        assert!(page.contains("le=\"60.0\"} 8\n"));
        assert!(page.contains("le=\"+Inf\"} 9\n"));
        assert!(page.contains(
            "fcgi_rs_request_duration_seconds_sum{pool=\"www \\\"one\\\"\"} 61.500000\n"
        ));
        assert!(page.ends_with("\n# EOF\n"));
    }

    #[test]
    fn clf_time_is_utc_civil_time() {
        let table = [
            (0, "01/Jan/1970:00:00:00 +0000"),
            (951_782_400, "29/Feb/2000:00:00:00 +0000"),
            (1_798_761_599, "31/Dec/2026:23:59:59 +0000"),
        ];
        for (unix, text) in table {
            assert_eq!(clf_time(unix), text);
        }
    }
}
