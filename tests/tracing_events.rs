//! fcgi-server's `tracing` feature: a server given no slog logger sends its records to the
//! process's tracing subscriber, each with its level, its target and its key-values as typed
//! fields; access lines included (target `fcgi_server::access`).
//!
//! One test: the subscriber is the process's global default, set once.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::io::Write as _;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use fcgi_client::{Connection, Error, Request};
use fcgi_server::{Config, ListenAddr, ListenOptions, Listener, Server};
use fcgi_tests::inproc;
use fcgi_tests::process::wait_until;
use tracing_core::field::{Field, Visit};
use tracing_core::span::{Attributes, Id, Record};
use tracing_core::{Dispatch, Event, Level, Metadata, Subscriber};

/// A field's value as recorded: numbers as numbers, text as text.
#[derive(Clone, Debug, PartialEq)]
enum Recorded {
    Number(u64),
    Text(String),
    Other(String),
}

/// One event: level, target, fields by name.
#[derive(Clone, Debug)]
struct Seen {
    level: Level,
    target: String,
    fields: BTreeMap<String, Recorded>,
}

impl Seen {
    fn text(&self, name: &str) -> Option<&str> {
        match self.fields.get(name) {
            Some(Recorded::Text(text)) => Some(text),
            _ => None,
        }
    }
}

/// A subscriber, as an application's would be, that keeps every event at INFO and above.
#[derive(Clone, Default)]
struct Keep(Arc<Mutex<Vec<Seen>>>);

impl Keep {
    fn events(&self) -> Vec<Seen> {
        self.0.lock().unwrap().clone()
    }
}

struct Fields<'a>(&'a mut BTreeMap<String, Recorded>);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn Debug) {
        self.0.insert(field.name().to_owned(), Recorded::Other(format!("{value:?}")));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().to_owned(), Recorded::Number(value));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), Recorded::Text(value.to_owned()));
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
        let seen = Seen { level: *metadata.level(), target: metadata.target().to_owned(), fields };
        self.0.lock().unwrap().push(seen);
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

#[test]
fn a_server_without_a_logger_reports_to_the_tracing_subscriber() {
    let keep = Keep::default();
    tracing_core::dispatcher::set_global_default(Dispatch::new(keep.clone()))
        .expect("the only global subscriber of this test binary");

    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("app.sock");
    let listener =
        Listener::bind(&ListenAddr::Unix(socket.clone()), &ListenOptions::default()).unwrap();
    let server = Server::builder()
        .listener(listener)
        .config(Config { access_log: true, ..inproc::config() })
        .responder(|request, response| match request.path().as_ref() {
            "/missing" => Err("no such item".into()),
            _ => {
                response.write_all(b"ok")?;
                Ok(())
            }
        })
        .handle_signals(false)
        .build();
    let stop = server.shutdown_handle();
    let serving = thread::spawn(move || server.serve());

    let addr = format!("unix:{}", socket.display()).parse().unwrap();
    let mut conn = Connection::connect(&addr).unwrap();
    for uri in ["/ok?page=2", "/missing"] {
        let request = Request::new().params([("REQUEST_URI", uri), ("SCRIPT_NAME", uri)]);
        match conn.request(request).and_then(|response| response.into_reply()) {
            Ok(reply) => assert_eq!(reply.status(), if uri == "/missing" { 500 } else { 200 }),
            Err(Error::NoResponse { .. }) => panic!("{uri}: no response"),
            Err(e) => panic!("{uri}: {e}"),
        }
    }
    let access = |events: &[Seen], uri: &str| {
        events
            .iter()
            .find(|e| e.target == "fcgi_server::access" && e.text("uri") == Some(uri))
            .cloned()
    };
    let all_in = wait_until(Duration::from_secs(5), || {
        let events = keep.events();
        access(&events, "/ok?page=2").is_some() && access(&events, "/missing").is_some()
    });
    assert!(all_in, "{:#?}", keep.events());
    stop.shutdown(Duration::from_secs(5));
    serving.join().unwrap().unwrap();

    let events = keep.events();
    let ok = access(&events, "/ok?page=2").unwrap();
    assert_eq!(ok.level, Level::INFO);
    assert_eq!(ok.text("message"), Some("request"));
    assert_eq!(ok.fields.get("status"), Some(&Recorded::Number(200)));
    assert_eq!(ok.fields.get("bytes"), Some(&Recorded::Number(2)));
    assert_eq!(ok.text("outcome"), Some("ok"));
    let missing = access(&events, "/missing").unwrap();
    assert_eq!(missing.fields.get("status"), Some(&Recorded::Number(500)));
    assert_eq!(missing.text("outcome"), Some("handler_error"));

    let failed = events
        .iter()
        .find(|e| e.level == Level::ERROR && e.text("message") == Some("handler failed"))
        .unwrap_or_else(|| panic!("no handler failure among {events:#?}"));
    assert_eq!(failed.target, "fcgi_server");
    assert_eq!(failed.text("uri"), Some("/missing"));
    assert_eq!(failed.text("error"), Some("no such item"));
    // The server's own lines too: the stop, at INFO.
    assert!(events.iter().any(|e| e.level == Level::INFO && e.text("message") == Some("stopped")));
    // Nothing below the subscriber's level reached it.
    assert!(events.iter().all(|e| e.level <= Level::INFO), "{events:#?}");
}
