//! The abuse suite: each attack from one peer that sends only valid records, run for a few
//! seconds against the real `fcgi serve --app hello`, with a well-behaved client measured
//! alongside. Each asserts what the attacker must not win: the slowest good request under a
//! second, no good request failed, resident memory bounded, and descriptors and threads back
//! to their baseline once the attacker is gone.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use fcgi_codec::{Role, StreamKind};
use fcgi_tests::addr::{Addr, Transport};
use fcgi_tests::process::{wait_until, FcgiServe};
use fcgi_tests::raw::{frames, Client};
use fcgi_tests::settings::scaled;

/// The slowest a good request may be while an attack runs.
const GOOD_LATENCY: Duration = Duration::from_secs(1);
/// How long each attack runs beside the good client.
const ATTACK: Duration = Duration::from_secs(4);
/// Plain requests sent before the baseline is taken.
const WARM_UP_REQUESTS: usize = 50;
/// Memory the server may gain during an attack, in KiB: the default 64 MiB budget of
/// unfinished requests, and room for threads and buffers.
const RSS_GROWTH_KIB: u64 = 96 * 1024;

/// What the good client saw.
#[derive(Debug, Default)]
struct Seen {
    requests: u64,
    failures: Vec<String>,
    slowest: Duration,
}

/// A client that sends one plain request after another on a kept connection until stopped.
struct GoodClient {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<Seen>,
}

impl GoodClient {
    fn start(addr: &Addr) -> GoodClient {
        let stop = Arc::new(AtomicBool::new(false));
        let (addr, flag) = (addr.clone(), Arc::clone(&stop));
        let thread = thread::spawn(move || {
            let mut seen = Seen::default();
            let mut client = Client::connect(&addr);
            let deadline = Instant::now() + Duration::from_secs(60);
            while !flag.load(Ordering::Relaxed) && Instant::now() < deadline {
                let started = Instant::now();
                client.send_ok(&frames::request(1, Role::Responder, true, &[], b""));
                match client.try_read_reply(1) {
                    Ok(reply) if reply.status == 200 && reply.body == b"Hello, world!" => {}
                    Ok(reply) => seen.failures.push(format!("status {}", reply.status)),
                    Err(e) => {
                        seen.failures.push(e.to_string());
                        client = Client::connect(&addr);
                    }
                }
                seen.slowest = seen.slowest.max(started.elapsed());
                seen.requests += 1;
                thread::sleep(Duration::from_millis(5));
            }
            seen
        });
        GoodClient { stop, thread }
    }

    fn finish(self) -> Seen {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().expect("the good client does not panic")
    }
}

/// The server's footprint before an attack, to compare with during and after.
struct Baseline {
    rss_kib: u64,
    fds: usize,
    threads: u64,
}

/// Runs `attack` for [`ATTACK`] beside a good client, sampling the server's memory, then checks
/// everything the attacker must not win. `attack` gets the address and a stop flag, and returns
/// what it holds (connections), dropped after the checks of the attack's time.
fn under_attack<T: Send + 'static>(
    server: &mut FcgiServe,
    attack: impl FnOnce(Addr, Arc<AtomicBool>) -> T + Send + 'static,
) {
    // One attack at a time, and no other heavy load of the binary beside it: on two cores,
    // loads side by side would measure each other.
    let _turn = fcgi_tests::load::exclusive();
    // Warm up: the pool's spare threads exist, the first allocations are made.
    let mut warm = Client::connect(server.addr());
    for _ in 0..WARM_UP_REQUESTS {
        warm.simple_request(&[], b"").assert_complete(200);
    }
    drop(warm);
    let process = server.process();
    let base = Baseline {
        rss_kib: process.rss_kib(),
        fds: process.open_fds(),
        threads: process.threads(),
    };
    let good = GoodClient::start(server.addr());
    let stop = Arc::new(AtomicBool::new(false));
    let attacker = {
        let (addr, stop) = (server.addr().clone(), Arc::clone(&stop));
        thread::spawn(move || attack(addr, stop))
    };
    let started = Instant::now();
    let mut peak_kib = 0;
    while started.elapsed() < ATTACK {
        peak_kib = peak_kib.max(server.process().rss_kib());
        thread::sleep(Duration::from_millis(50));
    }
    let seen = good.finish();
    stop.store(true, Ordering::Relaxed);
    let held = attacker.join().expect("the attacker does not panic");
    println!(
        "good requests {}, slowest {:?}, rss {} KiB -> peak {} KiB",
        seen.requests, seen.slowest, base.rss_kib, peak_kib
    );
    assert!(seen.failures.is_empty(), "good requests failed: {:?}", seen.failures);
    assert!(seen.requests > 20, "the good client was starved: {seen:?}");
    assert!(
        seen.slowest < scaled(GOOD_LATENCY),
        "the slowest good request took {:?}",
        seen.slowest
    );
    let growth = peak_kib.saturating_sub(base.rss_kib);
    assert!(growth < RSS_GROWTH_KIB, "resident memory grew by {growth} KiB");

    drop(held);
    let process = server.process();
    let settled = wait_until(Duration::from_secs(15), || {
        process.open_fds() <= base.fds + 1 && process.threads() <= base.threads.max(16)
    });
    assert!(
        settled,
        "descriptors {} (were {}), threads {} (were {})",
        process.open_fds(),
        base.fds,
        process.threads(),
        base.threads
    );
}

fn hello(dir: &std::path::Path, extra: &[&str]) -> FcgiServe {
    FcgiServe::start(dir, "hello", "hello", Transport::Tcp, extra)
}

/// Sends `bytes` on `client` in pieces until done or stopped; a closed connection ends it.
fn send_until_stopped(client: &mut Client, bytes: &[u8], stop: &AtomicBool) {
    for piece in bytes.chunks(64 * 1024) {
        if stop.load(Ordering::Relaxed) || client.send(piece).is_err() {
            return;
        }
    }
}

#[test]
fn every_request_id_on_four_connections() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = hello(dir.path(), &[]);
    // Made once, before the attack: what the attackers send, not how fast the test makes it.
    let mut out = Vec::new();
    let pairs = frames::pairs(&[("REQUEST_METHOD", "GET")]);
    for id in 1..=u16::MAX {
        out.extend(frames::begin(id, Role::Responder, true));
        out.extend(frames::stream(StreamKind::Params, id, &pairs));
    }
    let out = Arc::new(out);
    under_attack(&mut server, move |addr, stop| {
        let attackers: Vec<_> = (0..4)
            .map(|_| {
                let (addr, stop, out) = (addr.clone(), Arc::clone(&stop), Arc::clone(&out));
                thread::spawn(move || {
                    let mut client = Client::connect(&addr);
                    send_until_stopped(&mut client, &out, &stop);
                    client
                })
            })
            .collect();
        attackers.into_iter().map(|a| a.join().expect("attacker")).collect::<Vec<_>>()
    });
}

#[test]
fn a_thousand_unfinished_requests_with_large_bodies() {
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool");
    std::fs::create_dir(&spool).unwrap();
    let spool = spool.to_str().unwrap().to_owned();
    // Past the per-connection cap, so that the memory budget is what bounds it.
    let mut server = hello(dir.path(), &["--max-conn-requests", "2000", "--spool-dir", &spool]);
    under_attack(&mut server, |addr, stop| {
        let mut client = Client::connect(&addr);
        let body = vec![b'x'; 256 * 1024];
        for id in 1..=1000u16 {
            let mut out = frames::begin(id, Role::Responder, true);
            out.extend(frames::stream(StreamKind::Stdin, id, &body));
            send_until_stopped(&mut client, &out, &stop);
            if stop.load(Ordering::Relaxed) {
                break;
            }
        }
        client
    });
}

#[test]
fn sixty_four_bodies_trickling_a_byte_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = hello(dir.path(), &["--max-threads", "16"]);
    under_attack(&mut server, |addr, stop| {
        let mut client = Client::connect(&addr);
        for id in 1..=64 {
            client.send_begin(id, Role::Responder, true);
            client.send_params(id, &[("REQUEST_METHOD", "POST"), ("CONTENT_LENGTH", "1000")]);
        }
        while !stop.load(Ordering::Relaxed) {
            for id in 1..=64 {
                if client.send(&frames::stream(StreamKind::Stdin, id, b"x")).is_err() {
                    return client;
                }
            }
            thread::sleep(Duration::from_millis(500));
        }
        client
    });
}

#[test]
fn get_values_with_thousands_of_names() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = hello(dir.path(), &[]);
    under_attack(&mut server, |addr, stop| {
        let mut client = Client::connect(&addr);
        let names = vec!["FCGI_MAX_CONNS"; 3200];
        let mut answered = 0;
        while !stop.load(Ordering::Relaxed) && answered < 200 {
            client.send_get_values(&names);
            match client.next_frame() {
                Ok(Some(_)) => answered += 1,
                other => panic!("GET_VALUES went unanswered: {other:?}"),
            }
        }
        assert!(answered > 0);
        client
    });
}
