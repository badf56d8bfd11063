//! The logger a server uses when it is given none: warnings, errors and (with
//! [`Config::access_log`](crate::Config::access_log)) access lines on standard error, a line
//! each, so that a handler that fails is never silent. (`fcgi serve` gives its own: text or
//! JSON, to a file or standard error, written off the request path.)
//!
//! The message and every value are escaped ([`crate::escape::push_text`]): a peer's URI or a
//! handler's error text cannot start a line of its own or reach the terminal as a command.
//!
//! With the `tracing` feature, the records go to the `tracing` subscriber of the process
//! instead (see [`to_tracing`]), and to standard error only while there is none.

use std::io::Write as _;

use slog::{o, Drain, Level, Logger, OwnedKVList, Record, KV};

use crate::escape;

/// The tag of the per-request access records (written in `exchange.rs`), by which a logger
/// tells them from the rest: the fallback shows them whatever the level. A server given an
/// [`AccessLog`](crate::AccessLog) (as `fcgi serve --access-log FILE` is) hands the records
/// to it, typed, instead of logging them.
pub const ACCESS_TAG: &str = "access";

/// The logger of a server given none: [`to_tracing`]'s with the `tracing` feature, else the
/// lines on standard error.
pub(crate) fn default_logger() -> Logger {
    #[cfg(feature = "tracing")]
    let log = Logger::root(to_tracing::Tracing.ignore_res(), o!());
    #[cfg(not(feature = "tracing"))]
    let log = Logger::root(Stderr.ignore_res(), o!());
    log
}

/// Whether the fallback lines show `record`: warnings, errors, and access lines (which a
/// server logs only when its configuration asks for them).
fn shown(record: &Record<'_>) -> bool {
    record.tag() == ACCESS_TAG || record.level().is_at_least(Level::Warning)
}

/// `fcgi-server WARN: message; key=value, ...` on standard error, for the records
/// [`shown`] lets through.
struct Stderr;

impl Drain for Stderr {
    type Ok = ();
    type Err = slog::Never;

    fn log(&self, record: &Record<'_>, values: &OwnedKVList) -> Result<(), slog::Never> {
        if !shown(record) {
            return Ok(());
        }
        let line = line(record, values);
        // One write per line, so that lines of several threads do not mix; a standard error
        // that cannot be written to (closed, full) loses the line and nothing else.
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
        Ok(())
    }
}

/// The line for `record`, with its newline: `ACCESS` in place of the level for an access
/// line.
fn line(record: &Record<'_>, values: &OwnedKVList) -> String {
    let label = if record.tag() == ACCESS_TAG { "ACCESS" } else { record.level().as_short_str() };
    let mut line = format!("fcgi-server {label}: ");
    escape::push_text(&mut line, &record.msg().to_string());
    let mut fields = escape::Fields::new(&mut line, "; ", "=", true);
    let _ = record.kv().serialize(record, &mut fields);
    let _ = values.serialize(record, &mut fields);
    line.push('\n');
    line
}

/// The server's records as `tracing` events, for an application whose subscriber (JSON,
/// OpenTelemetry, ...) should see them with its own.
///
/// Each record becomes an event of the mapped level (critical and error: `ERROR`; warning:
/// `WARN`; info, debug, trace alike), target `fcgi_server` (`fcgi_server::access` for access
/// lines), with the message in `message` and every key-value, the record's and its logger's,
/// as a field of its own, typed (numbers stay numbers). tracing wants field names known
/// before an event is made, in a callsite that lives for the whole process; slog's keys are
/// static strings, and each log statement of the server has a fixed set of them, so one
/// callsite is made (and kept) for each set of keys at each level: a few dozen in all. That
/// keeps every field structured, where a fixed list of common keys would have put the others
/// in one string.
///
/// While the process has no subscriber, the records go to standard error as without the
/// feature: a server that fails is never silent.
#[cfg(feature = "tracing")]
pub(crate) mod to_tracing {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock, PoisonError};

    use slog::{Drain, Key, OwnedKVList, Record, Serializer, KV};
    use tracing_core::callsite::{Callsite, Identifier};
    use tracing_core::field::{Field, FieldSet, Value};
    use tracing_core::metadata::Kind;
    use tracing_core::subscriber::{Interest, NoSubscriber};
    use tracing_core::{dispatcher, Event, Level, LevelFilter, Metadata};

    /// Most fields an event carries, the message included; a record with more loses the
    /// rest (the server's have at most 18).
    const MAX_FIELDS: usize = 32;

    /// The drain: see the module.
    pub(crate) struct Tracing;

    impl Drain for Tracing {
        type Ok = ();
        type Err = slog::Never;

        fn log(&self, record: &Record<'_>, values: &OwnedKVList) -> Result<(), slog::Never> {
            if dispatcher::get_default(|current| current.is::<NoSubscriber>()) {
                return super::Stderr.log(record, values);
            }
            dispatch(record, values);
            Ok(())
        }
    }

    /// One value of a record, as tracing records it.
    enum Typed {
        I64(i64),
        U64(u64),
        F64(f64),
        Bool(bool),
        Text(String),
    }

    impl Typed {
        fn value(&self) -> &dyn Value {
            match self {
                Typed::I64(v) => v,
                Typed::U64(v) => v,
                Typed::F64(v) => v,
                Typed::Bool(v) => v,
                Typed::Text(v) => v,
            }
        }
    }

    /// The key-values of a record, each key once (the record's own before its logger's).
    #[derive(Default)]
    struct Collect {
        pairs: Vec<(Key, Typed)>,
    }

    impl Collect {
        fn push(&mut self, key: Key, value: Typed) -> slog::Result {
            if self.pairs.len() < MAX_FIELDS - 1 && self.pairs.iter().all(|(k, _)| *k != key) {
                self.pairs.push((key, value));
            }
            Ok(())
        }
    }

    impl Serializer for Collect {
        fn emit_arguments(&mut self, key: Key, value: &std::fmt::Arguments<'_>) -> slog::Result {
            self.push(key, Typed::Text(value.to_string()))
        }
        fn emit_str(&mut self, key: Key, value: &str) -> slog::Result {
            self.push(key, Typed::Text(value.to_owned()))
        }
        fn emit_bool(&mut self, key: Key, value: bool) -> slog::Result {
            self.push(key, Typed::Bool(value))
        }
        fn emit_i64(&mut self, key: Key, value: i64) -> slog::Result {
            self.push(key, Typed::I64(value))
        }
        fn emit_u64(&mut self, key: Key, value: u64) -> slog::Result {
            self.push(key, Typed::U64(value))
        }
        fn emit_f64(&mut self, key: Key, value: f64) -> slog::Result {
            self.push(key, Typed::F64(value))
        }
        fn emit_usize(&mut self, key: Key, value: usize) -> slog::Result {
            self.push(key, Typed::U64(value as u64))
        }
        fn emit_isize(&mut self, key: Key, value: isize) -> slog::Result {
            self.push(key, Typed::I64(value as i64))
        }
        fn emit_u32(&mut self, key: Key, value: u32) -> slog::Result {
            self.push(key, Typed::U64(value.into()))
        }
        fn emit_i32(&mut self, key: Key, value: i32) -> slog::Result {
            self.push(key, Typed::I64(value.into()))
        }
        fn emit_u16(&mut self, key: Key, value: u16) -> slog::Result {
            self.push(key, Typed::U64(value.into()))
        }
        fn emit_u8(&mut self, key: Key, value: u8) -> slog::Result {
            self.push(key, Typed::U64(value.into()))
        }
        fn emit_none(&mut self, _key: Key) -> slog::Result {
            // An absent value (`None`): no field, as tracing records a `None`.
            Ok(())
        }
    }

    /// A callsite made at run time for one level, target and set of field names; kept for
    /// the life of the process, as tracing's own callsites are.
    struct Site {
        metadata: OnceLock<Metadata<'static>>,
    }

    impl Callsite for Site {
        fn set_interest(&self, _interest: Interest) {
            // Each event asks the subscriber (`Event::dispatch`): nothing cached here.
        }

        fn metadata(&self) -> &Metadata<'_> {
            self.metadata.get().expect("a site's metadata is set before it is registered")
        }
    }

    type SiteKey = (Level, &'static str, Vec<Key>);

    /// The callsites made so far.
    static SITES: Mutex<Option<HashMap<SiteKey, &'static Site>>> = Mutex::new(None);

    /// The callsite for `level`, `target` and the field `names` (`message` first).
    fn site(level: Level, target: &'static str, names: Vec<Key>) -> &'static Site {
        let mut sites = SITES.lock().unwrap_or_else(PoisonError::into_inner);
        let sites = sites.get_or_insert_with(HashMap::new);
        if let Some(site) = sites.get(&(level, target, names.clone())) {
            return site;
        }
        let leaked: &'static [Key] = Box::leak(names.clone().into_boxed_slice());
        let site: &'static Site = Box::leak(Box::new(Site { metadata: OnceLock::new() }));
        let fields = FieldSet::new(leaked, Identifier(site));
        let metadata = Metadata::new(
            "fcgi-server log",
            target,
            level,
            Some(file!()),
            Some(line!()),
            Some(module_path!()),
            fields,
            Kind::EVENT,
        );
        let _ = site.metadata.set(metadata);
        tracing_core::callsite::register(site);
        sites.insert((level, target, names), site);
        site
    }

    fn level(record: &Record<'_>) -> Level {
        match record.level() {
            slog::Level::Critical | slog::Level::Error => Level::ERROR,
            slog::Level::Warning => Level::WARN,
            slog::Level::Info => Level::INFO,
            slog::Level::Debug => Level::DEBUG,
            slog::Level::Trace => Level::TRACE,
        }
    }

    /// Makes `record` an event of its callsite and hands it to the current subscriber.
    fn dispatch(record: &Record<'_>, values: &OwnedKVList) {
        let level = level(record);
        if level > LevelFilter::current() {
            // No subscriber wants this level: skip the work.
            return;
        }
        let mut collect = Collect::default();
        let _ = record.kv().serialize(record, &mut collect);
        let _ = values.serialize(record, &mut collect);
        let target =
            if record.tag() == super::ACCESS_TAG { "fcgi_server::access" } else { "fcgi_server" };
        let mut names = vec!["message"];
        names.extend(collect.pairs.iter().map(|(key, _)| *key));
        let site = site(level, target, names);
        let metadata: &'static Metadata<'static> =
            site.metadata.get().expect("set when the site was made");
        let message = record.msg().to_string();
        let fields: Vec<Field> = metadata.fields().iter().collect();
        let mut pairs: [(&Field, Option<&dyn Value>); MAX_FIELDS] =
            [(&fields[0], None); MAX_FIELDS];
        pairs[0].1 = Some(&message);
        for (i, (_, typed)) in collect.pairs.iter().enumerate() {
            pairs[i + 1] = (&fields[i + 1], Some(typed.value()));
        }
        // The slots past the record's fields repeat `message` with no value: tracing records
        // only the values given.
        let values = metadata.fields().value_set(&pairs);
        dispatcher::get_default(|current| {
            if current.enabled(metadata) {
                current.event(&Event::new(metadata, &values));
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// Keeps the lines [`line`] makes.
    struct Capture(Arc<Mutex<Vec<String>>>);

    impl Drain for Capture {
        type Ok = ();
        type Err = slog::Never;

        fn log(&self, record: &Record<'_>, values: &OwnedKVList) -> Result<(), slog::Never> {
            self.0.lock().unwrap().push(line(record, values));
            Ok(())
        }
    }

    #[test]
    fn message_and_values_are_escaped_on_one_line() {
        let lines = Arc::new(Mutex::new(Vec::new()));
        let log = Logger::root(Capture(Arc::clone(&lines)), o!("conn" => 7));
        let uri = "/x\nfcgi-server ERRO: forged\r\x1b[2J\u{2028}\\";
        slog::error!(log, "handler failed: {uri}"; "uri" => uri, "status" => 500);
        let escaped = "/x\\x0Afcgi-server ERRO: forged\\x0D\\x1B[2J\\xE2\\x80\\xA8\\x5C";
        assert_eq!(
            lines.lock().unwrap().as_slice(),
            [format!(
                "fcgi-server ERRO: handler failed: {escaped}; status=500; uri={escaped}; conn=7\n"
            )]
        );
    }

    #[test]
    fn the_fallback_shows_warnings_errors_and_access_lines() {
        let lines = Arc::new(Mutex::new(Vec::new()));
        let capture = Capture(Arc::clone(&lines)).filter(shown).ignore_res();
        let log = Logger::root(capture, o!());
        slog::info!(log, "serving");
        slog::debug!(log, "read");
        slog::info!(log, #ACCESS_TAG, "request"; "status" => 200);
        slog::warn!(log, "refused");
        assert_eq!(
            lines.lock().unwrap().as_slice(),
            ["fcgi-server ACCESS: request; status=200\n", "fcgi-server WARN: refused\n"]
        );
    }

    #[cfg(feature = "tracing")]
    mod tracing {
        use std::collections::BTreeMap;
        use std::fmt::Debug;
        use std::sync::{Arc, Mutex};

        use slog::{o, Drain, Logger};
        use tracing_core::field::{Field, Visit};
        use tracing_core::span::{Attributes, Id, Record};
        use tracing_core::{Dispatch, Event, Level, Metadata, Subscriber};

        use crate::log::to_tracing::Tracing;
        use crate::ACCESS_TAG;

        /// An event as the test sees it: level, target, and each field as `Debug` text
        /// (numbers recorded as numbers show without quotes).
        type Seen = (Level, String, BTreeMap<String, String>);

        /// A subscriber that keeps every event.
        struct Keep(Arc<Mutex<Vec<Seen>>>);

        struct Fields<'a>(&'a mut BTreeMap<String, String>);

        impl Visit for Fields<'_> {
            fn record_debug(&mut self, field: &Field, value: &dyn Debug) {
                self.0.insert(field.name().to_owned(), format!("{value:?}"));
            }
            fn record_u64(&mut self, field: &Field, value: u64) {
                self.0.insert(field.name().to_owned(), format!("u64:{value}"));
            }
            fn record_str(&mut self, field: &Field, value: &str) {
                self.0.insert(field.name().to_owned(), value.to_owned());
            }
        }

        impl Subscriber for Keep {
            fn enabled(&self, metadata: &Metadata<'_>) -> bool {
                *metadata.level() <= Level::INFO
            }
            fn new_span(&self, _: &Attributes<'_>) -> Id {
                Id::from_u64(1)
            }
            fn record(&self, _: &Id, _: &Record<'_>) {}
            fn record_follows_from(&self, _: &Id, _: &Id) {}
            fn event(&self, event: &Event<'_>) {
                let mut fields = BTreeMap::new();
                event.record(&mut Fields(&mut fields));
                let metadata = event.metadata();
                self.0.lock().unwrap().push((
                    *metadata.level(),
                    metadata.target().to_owned(),
                    fields,
                ));
            }
            fn enter(&self, _: &Id) {}
            fn exit(&self, _: &Id) {}
        }

        #[test]
        fn records_become_events_with_their_level_and_typed_fields() {
            let seen = Arc::new(Mutex::new(Vec::new()));
            let dispatch = Dispatch::new(Keep(Arc::clone(&seen)));
            let log = Logger::root(Tracing.ignore_res(), o!("conn" => 7u64));
            tracing_core::dispatcher::with_default(&dispatch, || {
                for _ in 0..2 {
                    slog::error!(log, "handler failed"; "uri" => "/x", "status" => 500u16, "conn" => 8u64);
                }
                slog::info!(log, #ACCESS_TAG, "request"; "status" => 200u16, "user" => None::<&str>);
                slog::debug!(log, "below the subscriber's level");
                slog::warn!(log, "refused"; "why" => %"too big");
            });
            let fields = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
                pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
            };
            let failed = fields(&[
                ("message", "handler failed"),
                ("uri", "/x"),
                ("status", "u64:500"),
                // The record's own value wins over its logger's.
                ("conn", "u64:8"),
            ]);
            let access =
                fields(&[("message", "request"), ("status", "u64:200"), ("conn", "u64:7")]);
            let refused = fields(&[("message", "refused"), ("why", "too big"), ("conn", "u64:7")]);
            assert_eq!(
                *seen.lock().unwrap(),
                [
                    (Level::ERROR, "fcgi_server".to_owned(), failed.clone()),
                    (Level::ERROR, "fcgi_server".to_owned(), failed),
                    (Level::INFO, "fcgi_server::access".to_owned(), access),
                    (Level::WARN, "fcgi_server".to_owned(), refused),
                ]
            );
        }
    }
}
