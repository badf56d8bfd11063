//! The status page's `?json`: FPM's object, in FPM's order and names, then fcgi-rs's own
//! counters under `"fcgi-rs"`; serialized by serde_json ([`crate::json`]), field by field in
//! the order of these structs.

use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;
use serde_json::value::RawValue;

use super::data::{
    or_dash, own_fields, pool_fields, seconds, since, state, PageData, ProcessEntry, CLASSES,
};
use crate::status::metrics::DURATION_BUCKETS;

/// The page.
#[derive(Serialize)]
struct Page<'a> {
    pool: &'a str,
    #[serde(rename = "process manager")]
    process_manager: &'a str,
    #[serde(rename = "start time")]
    start_time: u64,
    /// FPM's counters ([`pool_fields`]), as members of the page itself.
    #[serde(flatten)]
    counters: Counters<'a>,
    #[serde(rename = "fcgi-rs")]
    own: Own<'a>,
    /// With `full` only.
    #[serde(skip_serializing_if = "Option::is_none")]
    processes: Option<Vec<Process<'a>>>,
}

/// fcgi-rs's own object.
#[derive(Serialize)]
struct Own<'a> {
    /// [`own_fields`].
    #[serde(flatten)]
    counters: Counters<'a>,
    #[serde(rename = "program down", skip_serializing_if = "Option::is_none")]
    down: Option<&'a str>,
    /// The responses by status class.
    responses: Counters<'a>,
    #[serde(rename = "request duration")]
    duration: Histogram,
}

/// Named integers, as one JSON object's members in their order.
struct Counters<'a>(&'a [(&'a str, u64)]);

impl Serialize for Counters<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (name, value) in self.0 {
            map.serialize_entry(name, value)?;
        }
        map.end()
    }
}

/// The request durations, as OpenMetrics' histogram: cumulative counts.
#[derive(Serialize)]
struct Histogram {
    buckets: Vec<Bucket>,
    /// Seconds with six decimals, as [`seconds`] writes them.
    sum: Box<RawValue>,
    count: u64,
}

#[derive(Serialize)]
struct Bucket {
    le: Bound,
    count: u64,
}

/// A bucket's upper bound in seconds: a number as Rust writes it (`1`, `0.005`), or `"+Inf"`.
enum Bound {
    Seconds(f64),
    Infinite,
}

impl Serialize for Bound {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match *self {
            // `1`, not serde_json's `1.0`: the page has always written whole bounds so.
            Bound::Seconds(bound) if bound.fract() == 0.0 => serializer.serialize_u64(bound as u64),
            Bound::Seconds(bound) => serializer.serialize_f64(bound),
            Bound::Infinite => serializer.serialize_str("+Inf"),
        }
    }
}

/// One entry of `full`.
#[derive(Serialize)]
struct Process<'a> {
    pid: u64,
    state: &'static str,
    #[serde(rename = "start time")]
    start_time: u64,
    #[serde(rename = "start since")]
    start_since: u64,
    requests: u64,
    #[serde(rename = "request duration")]
    request_duration: u64,
    #[serde(rename = "request method")]
    request_method: &'a str,
    #[serde(rename = "request uri")]
    request_uri: &'a str,
    #[serde(rename = "content length")]
    content_length: u64,
    user: &'a str,
    script: &'a str,
    /// Two decimals, as FPM writes it.
    #[serde(rename = "last request cpu")]
    last_request_cpu: Box<RawValue>,
    #[serde(rename = "last request memory")]
    last_request_memory: u64,
    #[serde(rename = "fcgi-rs thread")]
    thread: &'a str,
}

/// `text`, a number this module formatted, as JSON written as it is.
fn raw(text: String) -> Box<RawValue> {
    // Digits and a point are JSON; should a NaN ever come through, `null`.
    RawValue::from_string(text)
        .unwrap_or_else(|_| RawValue::from_string("null".to_owned()).expect("null is JSON"))
}

fn process<'a>(data: &PageData, p: &'a ProcessEntry) -> Process<'a> {
    Process {
        pid: p.pid,
        state: state(p),
        start_time: p.start_unix,
        start_since: since(data, p.start_unix),
        requests: p.requests,
        request_duration: p.duration_us,
        request_method: or_dash(&p.method),
        request_uri: or_dash(&p.uri),
        content_length: p.content_length,
        user: or_dash(&p.user),
        script: or_dash(&p.script),
        last_request_cpu: raw(format!("{:.2}", p.last_cpu_percent)),
        last_request_memory: p.last_memory,
        thread: or_dash(&p.thread),
    }
}

/// The page as JSON; with `full`, an entry per process.
pub(super) fn json(data: &PageData, full: bool) -> String {
    let pool = pool_fields(data);
    let own = own_fields(data);
    let classes: Vec<(&str, u64)> =
        CLASSES.iter().copied().zip(data.metrics.status_classes).collect();
    let mut cumulative = 0;
    let buckets = data
        .metrics
        .duration_buckets
        .iter()
        .enumerate()
        .map(|(i, count)| {
            cumulative += count;
            let le = DURATION_BUCKETS.get(i).map_or(Bound::Infinite, |&b| Bound::Seconds(b));
            Bucket { le, count: cumulative }
        })
        .collect();
    let page = Page {
        pool: &data.pool,
        process_manager: &data.process_manager,
        start_time: data.start_unix,
        counters: Counters(&pool),
        own: Own {
            counters: Counters(&own),
            down: data.down.as_deref(),
            responses: Counters(&classes),
            duration: Histogram {
                buckets,
                sum: raw(seconds(data.metrics.duration_sum_us)),
                count: cumulative,
            },
        },
        processes: full.then(|| data.processes.iter().map(|p| process(data, p)).collect()),
    };
    crate::json::to_string(&page)
}
