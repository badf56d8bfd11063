//! The status page and the ping (`--status-path`, `--ping-path`) through a real nginx
//! (`nginx/fcgi-status.conf`), in one process and with `--workers 2`: PHP-FPM's JSON fields,
//! read with Python's `json`; the OpenMetrics text, read with the Prometheus client's own
//! parser (`prometheus_client.openmetrics.parser`, Debian's python3-prometheus-client); FPM's
//! `?xml` and `?html` read with Python's XML parser; `full` naming real threads, or every
//! worker's pid.

use std::collections::BTreeSet;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use fcgi_tests::addr::Transport;
use fcgi_tests::nginx::{scratch, Nginx, Site};
use fcgi_tests::process::{children_of, wait_until, FcgiServe};

/// How long a test waits for counts to settle (a worker's counters reach the others within
/// its heartbeat thread's 20 ms).
const SETTLE: Duration = Duration::from_secs(10);

/// Debian's Python, where python3-prometheus-client installs: not whatever `python3` comes
/// first in PATH (a pyenv or a virtualenv would not see the Debian package).
const PYTHON: &str = "/usr/bin/python3";

/// Runs `script` with Python, `input` on its stdin; its stdout, or a panic with its stderr.
fn python(script: &str, input: &[u8]) -> String {
    let mut child = Command::new(PYTHON)
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 (tests/deps.sh installs it)");
    child.stdin.take().expect("stdin").write_all(input).expect("write to python3");
    let out = child.wait_with_output().expect("python3 ran");
    assert!(
        out.status.success(),
        "python3 failed on:\n{}\n{}",
        String::from_utf8_lossy(input),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8")
}

/// FPM's pool fields, in FPM's order, with the JSON type each has in FPM.
const POOL_FIELDS: [(&str, &str); 14] = [
    ("pool", "str"),
    ("process manager", "str"),
    ("start time", "int"),
    ("start since", "int"),
    ("accepted conn", "int"),
    ("listen queue", "int"),
    ("max listen queue", "int"),
    ("listen queue len", "int"),
    ("idle processes", "int"),
    ("active processes", "int"),
    ("total processes", "int"),
    ("max active processes", "int"),
    ("max children reached", "int"),
    ("slow requests", "int"),
];

/// FPM's per-process fields, in order, with their JSON types.
const PROCESS_FIELDS: [(&str, &str); 13] = [
    ("pid", "int"),
    ("state", "str"),
    ("start time", "int"),
    ("start since", "int"),
    ("requests", "int"),
    ("request duration", "int"),
    ("request method", "str"),
    ("request uri", "str"),
    ("content length", "int"),
    ("user", "str"),
    ("script", "str"),
    ("last request cpu", "float"),
    ("last request memory", "int"),
];

/// The status page's JSON, parsed: checks FPM's fields (names, order, types) and prints
/// `name=value` lines for the pool and the fcgi-rs object, and `pid=N` per process.
const READ_JSON: &str = r#"
import json, sys
page = json.load(sys.stdin)
pool = [tuple(f.split(':')) for f in sys.argv[1].split(',')]
proc_fields = [tuple(f.split(':')) for f in sys.argv[2].split(',')]
keys = list(page.keys())
assert keys[:len(pool)] == [n for n, _ in pool], keys
for name, kind in pool:
    assert type(page[name]).__name__ == kind, (name, page[name])
    print(f"{name}={page[name]}")
own = page["fcgi-rs"]
for name in ("workers", "threads", "overloaded", "queue timeouts", "spooled bytes"):
    print(f"fcgi-rs {name}={own[name]}")
print(f"fcgi-rs 2xx={own['responses']['2xx']}")
print(f"fcgi-rs duration count={own['request duration']['count']}")
for p in page.get("processes", []):
    assert list(p.keys())[:len(proc_fields)] == [n for n, _ in proc_fields], p
    for name, kind in proc_fields:
        assert type(p[name]).__name__ == kind, (name, p[name])
    print(f"pid={p['pid']}")
"#;

/// The OpenMetrics text, parsed by the Prometheus client's parser (which insists on `# EOF`,
/// counters' `_total`, histograms' buckets, `_count` and `_sum`): prints `sample value` lines.
const READ_OPENMETRICS: &str = r#"
import sys
from prometheus_client.openmetrics.parser import text_string_to_metric_families
for family in text_string_to_metric_families(sys.stdin.read()):
    for s in family.samples:
        le = s.labels.get("le")
        name = s.name + (f"[{le}]" if le else "") + (f"[{s.labels['class']}]" if "class" in s.labels else "")
        print(f"{family.type} {name} {s.value}")
"#;

fn fields_arg(fields: &[(&str, &str)]) -> String {
    fields.iter().map(|(n, k)| format!("{n}:{k}")).collect::<Vec<_>>().join(",")
}

/// The page's `name=value` lines, as pairs.
struct Page(Vec<(String, String)>);

impl Page {
    fn get(&self, name: &str) -> &str {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or_else(|| panic!("no {name} in {:?}", self.0))
    }

    fn num(&self, name: &str) -> u64 {
        self.get(name).parse().unwrap_or_else(|_| panic!("{name} is not a number"))
    }

    fn pids(&self) -> BTreeSet<u32> {
        self.0.iter().filter(|(n, _)| n == "pid").map(|(_, v)| v.parse().expect("a pid")).collect()
    }
}

fn json_page(nginx: &Nginx, query: &str) -> Page {
    let response = nginx.get(&format!("/status?{query}")).expect("GET /status");
    assert_eq!(response.status, 200, "{}", response.body_text());
    assert_eq!(response.header("Content-Type"), Some("application/json"));
    let out = python(
        &format!(
            "import sys; sys.argv = ['', {:?}, {:?}]\n{READ_JSON}",
            fields_arg(&POOL_FIELDS),
            fields_arg(&PROCESS_FIELDS)
        ),
        &response.body,
    );
    Page(
        out.lines()
            .filter_map(|l| l.split_once('='))
            .map(|(n, v)| (n.to_owned(), v.to_owned()))
            .collect(),
    )
}

fn openmetrics(nginx: &Nginx) -> Vec<(String, String, f64)> {
    let response = nginx.get("/status?openmetrics").expect("GET /status?openmetrics");
    assert_eq!(response.status, 200, "{}", response.body_text());
    assert!(response
        .header("Content-Type")
        .unwrap_or("")
        .starts_with("application/openmetrics-text"));
    assert!(response.body_text().ends_with("# EOF\n"));
    python(READ_OPENMETRICS, &response.body)
        .lines()
        .map(|line| {
            let mut parts = line.split(' ');
            let kind = parts.next().expect("type").to_owned();
            let name = parts.next().expect("name").to_owned();
            (kind, name, parts.next().expect("value").parse().expect("a number"))
        })
        .collect()
}

fn sample(metrics: &[(String, String, f64)], name: &str) -> f64 {
    metrics
        .iter()
        .find(|(_, n, _)| n == name)
        .map(|(_, _, v)| *v)
        .unwrap_or_else(|| panic!("no sample {name} in {metrics:?}"))
}

fn start(dir: &std::path::Path, extra: &[&str]) -> (FcgiServe, Nginx) {
    let mut args = vec!["--status-path", "/status", "--ping-path", "/ping", "--log-format", "json"];
    args.extend_from_slice(extra);
    // TCP: its accept queue is what the kernel reports ("listen queue", "listen queue len").
    let fcgi = FcgiServe::start(dir, "fcgi", "hello", Transport::Tcp, &args);
    let nginx = Nginx::start(dir, Site::Status, &fcgi.addr().site_vars());
    (fcgi, nginx)
}

#[test]
fn one_process_answers_ping_and_status_in_fpm_formats() {
    let dir = scratch();
    // A small in-memory threshold: the one POST below spills to a spool file.
    let (mut fcgi, nginx) = start(dir.path(), &["--spool-memory", "1024"]);
    const HELLOS: u64 = 5;
    for _ in 0..HELLOS - 1 {
        let hello = nginx.get("/index").expect("GET /index");
        assert_eq!(hello.status, 200, "the app still answers elsewhere");
    }
    let post = nginx.post("/index", "application/octet-stream", &[7; 10_000]).expect("POST");
    assert_eq!(post.status, 200);
    let ping = nginx.get("/ping").expect("GET /ping");
    assert_eq!((ping.status, ping.body_text().as_str()), (200, "pong"));
    assert!(ping.header("Cache-Control").unwrap_or("").contains("no-store"));

    let page = json_page(&nginx, "json");
    assert_eq!(page.get("pool"), "www");
    assert_eq!(page.get("process manager"), "dynamic");
    // The hellos, the ping, and this page, which is running.
    assert_eq!(page.num("accepted conn"), HELLOS + 2);
    assert_eq!(page.num("active processes"), 1);
    assert_eq!(page.num("total processes"), page.num("idle processes") + 1);
    assert_eq!(page.num("fcgi-rs workers"), 1);
    assert_eq!(page.num("fcgi-rs 2xx"), HELLOS + 1);
    assert!(page.num("fcgi-rs spooled bytes") >= 10_000 - 1024, "the POST's spilled body");
    assert!(page.num("listen queue len") > 0, "the backlog, from the kernel");

    let text = nginx.get("/status").expect("GET /status");
    assert_eq!(text.header("Content-Type"), Some("text/plain"));
    assert!(text.body_text().starts_with("pool:                 www\n"), "{}", text.body_text());

    // `full`: an entry per thread that served, each a real thread of the server.
    let full = json_page(&nginx, "json&full");
    let pid = fcgi.process().pid();
    assert!(!full.pids().is_empty());
    for tid in full.pids() {
        assert!(
            std::path::Path::new(&format!("/proc/{pid}/task/{tid}")).exists(),
            "{tid} is not a thread of {pid}"
        );
    }

    let metrics = openmetrics(&nginx);
    // Everything before this page: the hellos, the ping, three pages.
    let before = (HELLOS + 4) as f64;
    assert_eq!(sample(&metrics, "phpfpm_accepted_connections_total"), before + 1.0);
    assert_eq!(sample(&metrics, "fcgi_rs_request_duration_seconds_count"), before);
    assert_eq!(sample(&metrics, "fcgi_rs_request_duration_seconds_bucket[+Inf]"), before);
    assert!(sample(&metrics, "fcgi_rs_request_duration_seconds_sum") > 0.0);
    assert_eq!(sample(&metrics, "fcgi_rs_responses_total[2xx]"), before);
    assert!(metrics.iter().any(|(kind, name, _)| kind == "histogram"
        && name == "fcgi_rs_request_duration_seconds_bucket[0.005]"));
}

#[test]
fn with_two_workers_every_worker_is_counted_whichever_answers() {
    let dir = scratch();
    let (mut fcgi, nginx) = start(dir.path(), &["--workers", "2"]);
    let master = fcgi.process().pid();
    let workers = || -> BTreeSet<u32> { children_of(master).into_iter().map(|(p, _)| p).collect() };
    assert!(wait_until(SETTLE, || workers().len() == 2), "two workers: {:?}", workers());
    const HELLOS: u64 = 40;
    for _ in 0..HELLOS {
        assert_eq!(nginx.get("/index").expect("GET /index").status, 200);
    }
    // Each worker answers some pages: every one of them must count all the hellos, whichever
    // served them, and list both workers.
    let settled = wait_until(SETTLE, || {
        let page = json_page(&nginx, "json&full");
        let complete = page.num("fcgi-rs 2xx") >= HELLOS
            && page.num("fcgi-rs workers") == 2
            && page.pids() == workers();
        assert_eq!(page.get("process manager"), "static");
        complete
    });
    assert!(settled, "the page never counted both workers:\n{}", fcgi.log());
    for _ in 0..6 {
        let page = json_page(&nginx, "json&full");
        assert!(page.num("fcgi-rs 2xx") >= HELLOS, "a page missed hellos");
        assert_eq!(page.pids(), workers());
    }
    let metrics = openmetrics(&nginx);
    assert!(sample(&metrics, "fcgi_rs_request_duration_seconds_count") >= HELLOS as f64);
    assert_eq!(sample(&metrics, "fcgi_rs_workers"), 2.0);
    drop(nginx);
}

/// The `?xml` and `?html` pages, parsed by Python's XML parser (FPM's HTML is XHTML, well-formed
/// XML): prints the pool's fields as `name=value` in document order (XML element names with
/// `-`, HTML rows with their header's words), then `pid=N` per process.
const READ_MARKUP: &str = r#"
import sys
import xml.etree.ElementTree as ET
root = ET.fromstring(sys.stdin.buffer.read())
if root.tag == "status":
    for e in root:
        if e.tag == "processes":
            for p in e:
                print(f"pid={p.find('pid').text}")
        else:
            print(f"{e.tag.replace('-', ' ')}={e.text}")
else:
    ns = {"h": "http://www.w3.org/1999/xhtml"}
    tables = root.findall(".//h:table", ns)
    for tr in tables[0].findall("h:tr", ns):
        print(f"{tr.find('h:th', ns).text}={tr.find('h:td', ns).text}")
    for tr in tables[1].findall("h:tr", ns)[1:] if len(tables) > 1 else []:
        print(f"pid={tr.find('h:td', ns).text}")
"#;

fn markup_page(nginx: &Nginx, query: &str, content_type: &str) -> Page {
    let response = nginx.get(&format!("/status?{query}")).expect("GET /status");
    assert_eq!(response.status, 200, "{}", response.body_text());
    assert_eq!(response.header("Content-Type"), Some(content_type));
    let out = python(READ_MARKUP, &response.body);
    Page(
        out.lines()
            .filter_map(|l| l.split_once('='))
            .map(|(n, v)| (n.to_owned(), v.to_owned()))
            .collect(),
    )
}

#[test]
fn xml_and_html_are_fpms_whichever_worker_answers() {
    let dir = scratch();
    let (mut fcgi, nginx) = start(dir.path(), &["--workers", "2"]);
    let master = fcgi.process().pid();
    let workers = || -> BTreeSet<u32> { children_of(master).into_iter().map(|(p, _)| p).collect() };
    assert!(wait_until(SETTLE, || workers().len() == 2), "two workers: {:?}", workers());
    for _ in 0..10 {
        assert_eq!(nginx.get("/index").expect("GET /index").status, 200);
    }
    for (query, content_type) in [("xml&full", "text/xml"), ("html&full", "text/html")] {
        let settled =
            wait_until(SETTLE, || markup_page(&nginx, query, content_type).pids() == workers());
        assert!(settled, "?{query} never listed both workers");
        let page = markup_page(&nginx, query, content_type);
        // FPM's fields first, in FPM's order, then fcgi-rs's.
        let names: Vec<&str> =
            page.0.iter().map(|(n, _)| n.as_str()).take(POOL_FIELDS.len()).collect();
        let fpm: Vec<&str> = POOL_FIELDS.iter().map(|(n, _)| *n).collect();
        assert_eq!(names, fpm, "?{query}");
        assert_eq!(page.get("pool"), "www");
        assert_eq!(page.get("process manager"), "static");
        assert!(page.num("accepted conn") >= 10, "?{query}");
        assert_eq!(
            page.num("total processes"),
            page.num("idle processes") + page.num("active processes")
        );
        let workers_field =
            if query.starts_with("xml") { "fcgi rs workers" } else { "fcgi-rs workers" };
        assert_eq!(page.num(workers_field), 2, "?{query}");
    }
    // The start time: Unix seconds in XML, FPM's time format in HTML.
    let xml = markup_page(&nginx, "xml", "text/xml");
    assert!(xml.num("start time") > 1_600_000_000);
    let html = markup_page(&nginx, "html", "text/html");
    assert!(html.get("start time").ends_with(" +0000"), "{}", html.get("start time"));
}
