//! POSTs through nginx's kept connections while workers retire: HUP reloads, TTOU and TTIN, a
//! USR2 upgrade, and `--max-requests` recycling with no signal at all. nginx retries a GET
//! that meets a kept connection closing under it on another connection, but never a POST, so
//! every connection a retiring worker closes while nginx writes a request into it is a 502
//! here. A run passes only when wrk reports neither a non-2xx answer nor a socket error.

use std::time::Duration;

use fcgi_codec::Role;
use fcgi_tests::master::{alive, assert_clean, signal, Served};
use fcgi_tests::nginx::scratch;
use fcgi_tests::process::wait_until;
use fcgi_tests::raw::{frames, Client};
use fcgi_tests::wrk::Wrk;

/// Waits until none of `before` is a worker of `served` any more and `wanted` workers run.
fn replaced(served: &Served, before: &[u32], wanted: usize) -> bool {
    wait_until(Duration::from_secs(10), || {
        let now = served.workers();
        now.len() == wanted && now.iter().all(|pid| !before.contains(pid))
    })
}

#[test]
fn posts_through_reloads_ttou_ttin_and_an_upgrade_all_succeed() {
    let dir = scratch();
    let mut served = Served::fcgi(dir.path(), "fcgi", &["--workers", "3"], 3);
    let nginx = served.nginx(dir.path());
    let wrk = Wrk::post(nginx.port(), 32, 20, "/", dir.path());
    let master = served.pid();

    // Each signal meets POSTs on kept connections.
    for round in 1..=3 {
        assert!(nginx.wait_requests(2_000, Duration::from_secs(10)), "no load through nginx");
        let before = served.workers();
        signal(master, libc::SIGHUP);
        assert!(replaced(&served, &before, 3), "HUP {round}:\n{}", served.log_text());
    }
    assert!(nginx.wait_requests(1_000, Duration::from_secs(10)), "no load through nginx");
    signal(master, libc::SIGTTOU);
    assert!(wait_until(Duration::from_secs(10), || served.workers().len() == 2));
    assert!(nginx.wait_requests(1_000, Duration::from_secs(10)), "no load through nginx");
    signal(master, libc::SIGTTIN);
    assert!(wait_until(Duration::from_secs(10), || served.workers().len() == 3));

    assert!(nginx.wait_requests(2_000, Duration::from_secs(10)), "no load through nginx");
    let new_guard = served.upgrade();
    let new_master = new_guard.0;

    let wrk = wrk.join().expect("wrk thread");
    assert_eq!(wrk.failures(), 0, "{}\nnginx: {}", wrk.output, nginx.error_log());
    assert_clean(&wrk, 5_000);
    eprintln!("POSTs through 3 HUPs, TTOU, TTIN and USR2: {} requests, 0 failures", wrk.requests());

    // The new master stops like any other.
    signal(new_master, libc::SIGTERM);
    assert!(wait_until(Duration::from_secs(10), || !alive(new_master)), "{}", served.log_text());
}

#[test]
fn posts_through_max_requests_recycling_all_succeed() {
    let dir = scratch();
    let served = Served::fcgi(dir.path(), "fcgi", &["--workers", "2", "--max-requests", "200"], 2);
    let nginx = served.nginx(dir.path());
    let wrk = Wrk::post(nginx.port(), 32, 10, "/", dir.path()).join().expect("wrk thread");
    let recycled = served.log_text().matches("request limit reached").count();
    assert_eq!(wrk.failures(), 0, "{}\nnginx: {}", wrk.output, nginx.error_log());
    assert_clean(&wrk, 2_000);
    assert!(recycled >= 10, "only {recycled} workers recycled:\n{}", wrk.output);
    eprintln!(
        "POSTs through --max-requests 200: {} requests, {recycled} workers recycled, 0 failures",
        wrk.requests()
    );
}

/// Connections `count` raw FastCGI clients, each having served one kept request.
fn kept_clients(served: &Served, count: usize) -> Vec<Client> {
    let mut clients: Vec<Client> = (0..count).map(|_| Client::connect(&served.addr())).collect();
    for client in &mut clients {
        client.set_timeout(Duration::from_secs(10));
        client.simple_request(&[], b"").assert_complete(200);
    }
    clients
}

/// Each client's next request on its connection is answered: none was closed.
fn all_serve_again(served: &Served, clients: &mut [Client]) {
    for (i, client) in clients.iter_mut().enumerate() {
        let request = frames::request(1, Role::Responder, true, &[], b"");
        let reply = client.send(&request).and_then(|()| client.try_read_reply(1));
        match reply {
            Ok(reply) => reply.assert_complete(200),
            Err(e) => panic!("connection {i} was closed: {e}\n{}", served.log_text()),
        }
    }
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, Iterator::count)
}

#[test]
fn every_kept_connection_outlives_a_reload_and_serves_the_next_request() {
    let dir = scratch();
    let served = Served::fcgi(dir.path(), "fcgi", &["--workers", "1", "--master"], 1);
    let mut clients = kept_clients(&served, 64);
    let old = served.workers();
    signal(served.pid(), libc::SIGHUP);
    assert!(replaced(&served, &old, 1), "{}", served.log_text());
    // The old worker handed every connection over, and so had nothing left to wait for.
    assert!(wait_until(Duration::from_secs(5), || !alive(old[0])), "{}", served.log_text());
    all_serve_again(&served, &mut clients);
}

#[test]
fn kept_connections_the_master_cannot_take_yet_stay_with_their_worker() {
    // The master stopped (SIGSTOP) reads nothing: a retiring worker's hand-off socket fills
    // (278 connections with Linux's default socket buffer); the rest stay with the worker,
    // which answers on them, and go when the master reads again.
    const CONNECTIONS: usize = 400;
    let dir = scratch();
    let served = Served::fcgi(dir.path(), "fcgi", &["--workers", "1", "--master"], 1);
    let mut clients = kept_clients(&served, CONNECTIONS);
    let worker = served.workers()[0];
    let before = open_fds(worker);
    signal(served.pid(), libc::SIGSTOP);
    // As --max-requests does: the worker retires on its own.
    signal(worker, libc::SIGTERM);
    let handed = wait_until(Duration::from_secs(5), || open_fds(worker) + 200 < before);
    signal(served.pid(), libc::SIGCONT);
    assert!(handed, "the worker handed nothing over: {} of {before} fds", open_fds(worker));
    all_serve_again(&served, &mut clients);
    assert!(wait_until(Duration::from_secs(5), || !alive(worker)), "{}", served.log_text());
}
