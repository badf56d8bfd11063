//! Requests of an axum app that wait (`.await` on a timer, on `spawn_blocking`) behind a real
//! nginx, with fcgi-http's `Service` in the test process: they are bounded by the service's
//! requests in flight, not by the pool's threads; the bound holds; a panic after the first
//! poll is a 500 with its access line. And fcgi-server's side of it: an `Exchange` ended on
//! another thread, or dropped unfinished (a 500).

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::Duration;

use axum::extract::Query;
use axum::routing::get;
use axum::Router;
use fcgi_server::{Config, Role};
use fcgi_tests::addr::Transport;
use fcgi_tests::http;
use fcgi_tests::inproc::{self, TestServer};
use fcgi_tests::nginx::{scratch, Nginx, Site};
use fcgi_tests::process::wait_until;

/// Requests in flight at once in [`gauged_app`], now and at most.
#[derive(Clone, Default)]
struct Gauge {
    now: Arc<AtomicUsize>,
    most: Arc<AtomicUsize>,
}

/// Counts a request in [`Gauge`] while it lives.
struct Counted(Gauge);

impl Counted {
    fn new(gauge: &Gauge) -> Counted {
        let now = gauge.now.fetch_add(1, Ordering::SeqCst) + 1;
        gauge.most.fetch_max(now, Ordering::SeqCst);
        Counted(gauge.clone())
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.now.fetch_sub(1, Ordering::SeqCst);
    }
}

/// `/sleep?ms=N` awaits a timer; `/blocking?ms=N` sleeps on a thread of `spawn_blocking`;
/// `/panic-later` panics after a timer (so after its first poll, on the runtime). Each counts
/// itself in `gauge` while it runs.
fn gauged_app(gauge: Gauge) -> Router {
    fn ms(query: &HashMap<String, String>) -> u64 {
        query.get("ms").and_then(|ms| ms.parse().ok()).unwrap_or(100)
    }
    let (sleep_gauge, blocking_gauge) = (gauge.clone(), gauge);
    Router::new()
        .route(
            "/sleep",
            get(move |Query(query): Query<HashMap<String, String>>| async move {
                let _counted = Counted::new(&sleep_gauge);
                tokio::time::sleep(Duration::from_millis(ms(&query))).await;
                "slept"
            }),
        )
        .route(
            "/blocking",
            get(move |Query(query): Query<HashMap<String, String>>| async move {
                let _counted = Counted::new(&blocking_gauge);
                let ms = ms(&query);
                let done = tokio::task::spawn_blocking(move || {
                    std::thread::sleep(Duration::from_millis(ms));
                    format!("blocked {ms} ms on {}", std::thread::current().name().unwrap_or("?"))
                });
                done.await.expect("the blocking task ends")
            }),
        )
        .route(
            "/panic-later",
            get(|| async {
                tokio::time::sleep(Duration::from_millis(10)).await;
                if true {
                    panic!("the handler panics after it waited");
                }
                "never"
            }),
        )
}

/// `count` GETs of `path` through `nginx` at once, each on its connection; their statuses
/// (0 for a request that failed without one).
fn at_once(nginx: &Nginx, path: &str, count: usize) -> Vec<u16> {
    let port = nginx.port();
    let start = Arc::new(Barrier::new(count));
    let clients: Vec<_> = (0..count)
        .map(|_| {
            let (start, path) = (Arc::clone(&start), path.to_owned());
            std::thread::spawn(move || {
                start.wait();
                http::get(port, &path).map_or(0, |response| response.status)
            })
        })
        .collect();
    clients.into_iter().map(|client| client.join().expect("a client thread")).collect()
}

/// How many of `statuses` are `status`.
fn count(statuses: &[u16], status: u16) -> usize {
    statuses.iter().filter(|s| **s == status).count()
}

#[test]
fn four_hundred_requests_asleep_for_two_seconds_all_get_200_with_the_default_settings() {
    const REQUESTS: usize = 400;
    let dir = scratch();
    let gauge = Gauge::default();
    // The defaults: 64 pool threads at most, 1,024 requests in flight.
    let app = gauged_app(gauge.clone());
    let server = TestServer::start_on(Transport::Unix, Config::default(), |builder| {
        builder.handler(Role::Responder, fcgi_http::Service::new(app))
    });
    let nginx = Nginx::start(dir.path(), Site::Unix, &server.addr().site_vars());

    let statuses = at_once(&nginx, "/sleep?ms=2000", REQUESTS);
    assert_eq!(
        count(&statuses, 200),
        REQUESTS,
        "503s: {}, failures: {}; {}",
        count(&statuses, 503),
        count(&statuses, 0),
        nginx.error_log()
    );
    // More asleep at once than the pool has threads: they held none.
    let most = gauge.most.load(Ordering::SeqCst);
    assert!(most > Config::DEFAULT_MAX_THREADS, "at most {most} in flight");
}

#[test]
fn a_handler_that_blocks_in_spawn_blocking_is_answered() {
    let dir = scratch();
    let app = gauged_app(Gauge::default());
    let server = TestServer::start_on(Transport::Unix, inproc::config(), |builder| {
        builder.handler(Role::Responder, fcgi_http::Service::new(app))
    });
    let nginx = Nginx::start(dir.path(), Site::Unix, &server.addr().site_vars());

    // More than the pool's 8 threads, each blocking for 300 ms on tokio's blocking pool.
    let statuses = at_once(&nginx, "/blocking?ms=300", 16);
    assert_eq!(count(&statuses, 200), 16, "{statuses:?}");
    let one = nginx.get("/blocking?ms=10").expect("a response");
    assert_eq!(one.status, 200);
    // On a thread of the runtime's blocking pool, not on the one that polls futures.
    assert_eq!(one.body_text(), "blocked 10 ms on fcgi-http-rt");
}

#[test]
fn requests_past_the_bound_in_flight_wait_in_the_queue_then_get_503() {
    const LIMIT: usize = 2;
    let dir = scratch();
    let gauge = Gauge::default();
    let app = gauged_app(gauge.clone());
    // 2 in flight, 2 pool threads (which wait for a place), 2 requests queued for half a
    // second; the rest are refused at once.
    let config = Config {
        min_spare: 1,
        max_spare: 2,
        max_threads: 2,
        queue: 2,
        queue_timeout: Some(Duration::from_millis(500)),
        ..inproc::config()
    };
    let server = TestServer::start_on(Transport::Unix, config, |builder| {
        builder.handler(Role::Responder, fcgi_http::Service::new(app).max_in_flight(LIMIT))
    });
    let nginx = Nginx::start(dir.path(), Site::Unix, &server.addr().site_vars());

    let statuses = at_once(&nginx, "/sleep?ms=1000", 12);
    let (ok, refused) = (count(&statuses, 200), count(&statuses, 503));
    assert_eq!(
        ok + refused,
        statuses.len(),
        "only 200s and 503s: {statuses:?}\n{}",
        nginx.error_log()
    );
    assert_eq!(gauge.most.load(Ordering::SeqCst), LIMIT, "{statuses:?}");
    // Those in flight and those whose thread waited for a place were answered; those that
    // found the queue full, or waited in it past its timeout, were refused.
    assert!(ok >= LIMIT && refused >= 1, "{statuses:?}");
    // And the service serves on.
    assert_eq!(nginx.get("/sleep?ms=1").expect("a response").status, 200);
}

#[test]
fn a_panic_after_the_first_poll_is_a_500_with_its_access_line() {
    let dir = scratch();
    let app = gauged_app(Gauge::default());
    let config = Config { access_log: true, ..inproc::config() };
    let server = TestServer::start_on(Transport::Unix, config, |builder| {
        builder.handler(Role::Responder, fcgi_http::Service::new(app))
    });
    let nginx = Nginx::start(dir.path(), Site::Unix, &server.addr().site_vars());

    let response = nginx.get("/panic-later").expect("a response");
    assert_eq!(response.status, 500, "{}", response.body_text());
    // The access line follows END_REQUEST, so it may come after nginx's answer.
    let logged = |needles: &[&str]| {
        wait_until(Duration::from_secs(5), || {
            server.logs().lines().iter().any(|line| needles.iter().all(|n| line.contains(n)))
        })
    };
    let panicked = logged(&["handler panicked", "; panic=the handler panics after it waited"]);
    assert!(panicked, "{:?}", server.logs().lines());
    let access = logged(&["; uri=/panic-later;", "; status=500;", "; outcome=panic"]);
    assert!(access, "no access line: {:?}", server.logs().lines());
    // The server serves on, on the same threads.
    assert_eq!(nginx.get("/sleep?ms=1").expect("a response").status, 200);
}

/// A handler that takes its exchange to a thread of its own, which drops it (`"drop"`) or
/// answers and finishes it (`"finish"`), as the request's `X_ENDING` param says.
struct Elsewhere;

impl fcgi_server::Handler for Elsewhere {
    fn handle(
        &self,
        _: &mut fcgi_server::Request,
        _: &mut fcgi_server::Response,
    ) -> Result<(), fcgi_server::Error> {
        unreachable!("the server calls handle_owned")
    }

    fn handle_owned(&self, mut exchange: fcgi_server::Exchange) {
        std::thread::spawn(move || {
            if exchange.request().param_str("X_ENDING") == Some("finish") {
                let written = std::io::Write::write_all(exchange.response(), b"later");
                exchange.finish(written.map_err(Into::into));
            }
        });
    }
}

#[test]
fn an_exchange_ends_on_another_thread_and_one_dropped_unfinished_is_a_500() {
    let config = Config { access_log: true, ..inproc::config() };
    let server = TestServer::start(config, |builder| builder.handler(Role::Responder, Elsewhere));

    let finished = server.connect().simple_request(&[("X_ENDING", "finish")], b"");
    finished.assert_complete(200);
    assert_eq!(finished.body, b"later");
    // Dropped without a word: a failure, never an empty success.
    let dropped = server.connect().simple_request(&[("X_ENDING", "drop")], b"");
    dropped.assert_complete(500);
    let logged = wait_until(Duration::from_secs(5), || {
        server.logs().contains("the handler dropped the request without finishing it")
            && server.logs().contains("; outcome=handler_error")
    });
    assert!(logged, "{:?}", server.logs().lines());
}
