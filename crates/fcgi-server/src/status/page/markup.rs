//! The status page in PHP-FPM's `?html` and `?xml` formats: FPM's elements, names and order
//! (`fpm_status.c`), so that what reads FPM's (Zabbix templates, Nagios checks, dashboards that
//! scrape `<active-processes>`) reads each pool of fcgi-rs unchanged. fcgi-rs's own counters
//! follow FPM's, named `fcgi-rs ...` (HTML rows) and `fcgi-rs-...` (XML elements), as in the
//! text format. Every value from a peer (a URI, a script, a user) is escaped.

use std::fmt::Write as _;

use super::data::{clf_time, or_dash, own_fields, pool_fields, since, state, PageData, CLASSES};
use crate::escape::push_markup;

/// FPM's HTML page: a table of the pool's fields, and with `full` a table of its processes.
pub(super) fn html(data: &PageData, full: bool) -> String {
    let mut out = String::from(
        "<!DOCTYPE html PUBLIC \"-//W3C//DTD XHTML 1.0 Strict//EN\" \
         \"http://www.w3.org/TR/xhtml1/DTD/xhtml1-strict.dtd\">\n\
         <html xmlns=\"http://www.w3.org/1999/xhtml\" xml:lang=\"en\" lang=\"en\">\n\
         <head><title>PHP-FPM Status Page</title></head>\n<body>\n<table>\n",
    );
    let row = |out: &mut String, name: &str, value: &str| {
        out.push_str("<tr><th>");
        push_markup(out, name);
        out.push_str("</th><td>");
        push_markup(out, value);
        out.push_str("</td></tr>\n");
    };
    row(&mut out, "pool", &data.pool);
    row(&mut out, "process manager", &data.process_manager);
    row(&mut out, "start time", &clf_time(data.start_unix));
    for (name, value) in pool_fields(data) {
        row(&mut out, name, &value.to_string());
    }
    for (name, value) in own_fields(data) {
        row(&mut out, &format!("fcgi-rs {name}"), &value.to_string());
    }
    if let Some(down) = &data.down {
        row(&mut out, "fcgi-rs program down", down);
    }
    for (class, count) in CLASSES.iter().zip(data.metrics.status_classes) {
        row(&mut out, &format!("fcgi-rs responses {class}"), &count.to_string());
    }
    out.push_str("</table>\n");
    if full {
        out.push_str("<table border=\"1\">\n<tr>");
        for name in PROCESS_COLUMNS {
            let _ = write!(out, "<th>{name}</th>");
        }
        out.push_str("</tr>\n");
        for p in &data.processes {
            out.push_str("<tr>");
            for value in process_values(data, p) {
                out.push_str("<td>");
                push_markup(&mut out, &value);
                out.push_str("</td>");
            }
            out.push_str("</tr>\n");
        }
        out.push_str("</table>\n");
    }
    out.push_str("</body>\n</html>\n");
    out
}

/// FPM's XML document: an element per field (the start time in Unix seconds, as FPM writes
/// it), and with `full` a `<processes>` list.
pub(super) fn xml(data: &PageData, full: bool) -> String {
    let mut out = String::from("<?xml version=\"1.0\" ?>\n<status>\n");
    let element = |out: &mut String, name: &str, value: &str| {
        let _ = write!(out, "<{name}>");
        push_markup(out, value);
        let _ = writeln!(out, "</{name}>");
    };
    element(&mut out, "pool", &data.pool);
    element(&mut out, "process-manager", &data.process_manager);
    element(&mut out, "start-time", &data.start_unix.to_string());
    for (name, value) in pool_fields(data) {
        element(&mut out, &name.replace(' ', "-"), &value.to_string());
    }
    for (name, value) in own_fields(data) {
        element(&mut out, &format!("fcgi-rs-{}", name.replace(' ', "-")), &value.to_string());
    }
    if let Some(down) = &data.down {
        element(&mut out, "fcgi-rs-program-down", down);
    }
    for (class, count) in CLASSES.iter().zip(data.metrics.status_classes) {
        element(&mut out, &format!("fcgi-rs-responses-{class}"), &count.to_string());
    }
    if full {
        out.push_str("<processes>\n");
        for p in &data.processes {
            out.push_str("<process>");
            for (name, value) in PROCESS_COLUMNS.iter().zip(process_values(data, p)) {
                let name = name.replace(' ', "-");
                let _ = write!(out, "<{name}>");
                push_markup(&mut out, &value);
                let _ = write!(out, "</{name}>");
            }
            out.push_str("</process>\n");
        }
        out.push_str("</processes>\n");
    }
    out.push_str("</status>\n");
    out
}

/// The columns of FPM's process list, in its order, then fcgi-rs's.
const PROCESS_COLUMNS: [&str; 14] = [
    "pid",
    "state",
    "start time",
    "start since",
    "requests",
    "request duration",
    "request method",
    "request uri",
    "content length",
    "user",
    "script",
    "last request cpu",
    "last request memory",
    "fcgi-rs thread",
];

/// A process's values, in [`PROCESS_COLUMNS`]' order.
fn process_values(data: &PageData, p: &super::ProcessEntry) -> [String; 14] {
    [
        p.pid.to_string(),
        state(p).to_owned(),
        p.start_unix.to_string(),
        since(data, p.start_unix).to_string(),
        p.requests.to_string(),
        p.duration_us.to_string(),
        or_dash(&p.method).to_owned(),
        or_dash(&p.uri).to_owned(),
        p.content_length.to_string(),
        or_dash(&p.user).to_owned(),
        or_dash(&p.script).to_owned(),
        format!("{:.2}", p.last_cpu_percent),
        p.last_memory.to_string(),
        or_dash(&p.thread).to_owned(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::page::tests::sample;

    /// Whether every element `text` opens is closed in order (tags only; no attributes with `>`).
    fn balanced(text: &str) -> bool {
        let mut open: Vec<&str> = Vec::new();
        for tag in text.split('<').skip(1).filter_map(|rest| rest.split_once('>').map(|(t, _)| t)) {
            if tag.starts_with('?') || tag.starts_with('!') || tag.ends_with('/') {
                continue;
            }
            let name = tag.split_whitespace().next().unwrap_or_default();
            match name.strip_prefix('/') {
                Some(closed) if open.pop() != Some(closed) => return false,
                Some(_) => {}
                None => open.push(name),
            }
        }
        open.is_empty()
    }

    #[test]
    fn xml_has_fpm_elements_in_fpm_order() {
        let page = xml(&sample(), true);
        assert!(
            page.starts_with(
                "<?xml version=\"1.0\" ?>\n<status>\n<pool>www &quot;one&quot;</pool>\n"
            ),
            "{page}"
        );
        let order = [
            "<process-manager>dynamic</process-manager>",
            "<start-time>1000000</start-time>",
            "<start-since>100</start-since>",
            "<accepted-conn>10</accepted-conn>",
            "<listen-queue>0</listen-queue>",
            "<max-listen-queue>2</max-listen-queue>",
            "<listen-queue-len>511</listen-queue-len>",
            "<idle-processes>3</idle-processes>",
            "<active-processes>1</active-processes>",
            "<total-processes>4</total-processes>",
            "<max-active-processes>0</max-active-processes>",
            "<max-children-reached>0</max-children-reached>",
            "<slow-requests>2</slow-requests>",
            "<fcgi-rs-threads>4</fcgi-rs-threads>",
            "<processes>\n<process><pid>42</pid><state>Running</state>",
            "<request-uri>/a?b=&quot;c&quot;</request-uri>",
        ];
        let mut at = 0;
        for element in order {
            let found =
                page[at..].find(element).unwrap_or_else(|| panic!("{element} after {at}:\n{page}"));
            at += found + element.len();
        }
        assert!(page.ends_with("</processes>\n</status>\n") && balanced(&page), "{page}");
        assert!(!xml(&sample(), false).contains("<processes>"));
    }

    #[test]
    fn html_has_fpm_tables() {
        let page = html(&sample(), true);
        assert!(page.contains("<title>PHP-FPM Status Page</title>"), "{page}");
        assert!(page.contains("<tr><th>pool</th><td>www &quot;one&quot;</td></tr>"), "{page}");
        assert!(page.contains("<tr><th>active processes</th><td>1</td></tr>"), "{page}");
        assert!(
            page.contains("<tr><th>start time</th><td>12/Jan/1970:13:46:40 +0000</td></tr>"),
            "{page}"
        );
        assert!(page.contains("<table border=\"1\">\n<tr><th>pid</th><th>state</th>"), "{page}");
        assert!(page.contains("<tr><td>42</td><td>Running</td>"), "{page}");
        assert!(balanced(&page), "{page}");
        assert!(!html(&sample(), false).contains("border"));
    }

    #[test]
    fn markup_escapes_what_a_peer_sent() {
        let mut data = sample();
        let forged = "/x</td></tr><script>alert(1)</script>\n<pid>7</pid>&amp;";
        data.processes[0].uri = Some(forged.into());
        data.processes[0].user = Some(forged.into());
        for page in [html(&data, true), xml(&data, true)] {
            assert!(!page.contains("<script>alert") && !page.contains("<pid>7"), "{page}");
            assert!(
                page.contains("&lt;script&gt;alert(1)&lt;/script&gt;\\x0A&lt;pid&gt;7"),
                "{page}"
            );
            assert!(page.contains("&amp;amp;"), "{page}");
            assert!(balanced(&page), "{page}");
        }
    }
}
