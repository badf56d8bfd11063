//! The threads and memory that 1,000 idle connections cost the real `fcgi` binary: they hold no
//! threads, and requests on another connection go on meanwhile.
//!
//! A binary of its own (not a module of tests/integration): for its 2,000 open files it may
//! raise this process's soft limit on open files (`setrlimit`), which every process that the
//! other tests start would then inherit.

use std::io;
use std::time::{Duration, Instant};

use fcgi_tests::addr::Transport;
use fcgi_tests::process::{wait_until, FcgiServe};
use fcgi_tests::raw::Client;
use fcgi_tests::settings::skip;

/// Raises the soft limit on open files to `needed`, if the hard limit allows.
fn raise_nofile(needed: u64) -> Result<(), String> {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes one rlimit into memory we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(format!("getrlimit: {}", io::Error::last_os_error()));
    }
    if limit.rlim_cur >= needed {
        return Ok(());
    }
    if limit.rlim_max < needed {
        return Err(format!("the hard limit on open files is {}, {needed} needed", limit.rlim_max));
    }
    limit.rlim_cur = needed;
    // SAFETY: setrlimit reads one rlimit from memory we own.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
        return Err(format!("setrlimit: {}", io::Error::last_os_error()));
    }
    Ok(())
}

#[test]
fn idle_connections_hold_no_threads_in_the_real_binary() {
    const IDLE: usize = 1000;
    const MAX_THREADS: u64 = 8;
    // Our 1,000 ends, the server's 1,000 (it inherits the limit), and room for other tests.
    if let Err(why) = raise_nofile(IDLE as u64 + 1024) {
        return skip(&format!("idle_connections_hold_no_threads_in_the_real_binary: {why}"));
    }
    let dir = tempfile::tempdir().unwrap();
    // --max-spare: its default (16) may not exceed --max-threads.
    let extra = ["--max-threads", "8", "--max-spare", "4"];
    let mut fcgi = FcgiServe::start(dir.path(), "fcgi", "hello", Transport::Unix, &extra);
    let addr = fcgi.addr().clone();
    let server = fcgi.process();
    let mut active = Client::connect(&addr);
    let hello = |client: &mut Client| {
        let reply = client.simple_request(&[], b"");
        reply.assert_complete(200);
        assert_eq!(reply.body, b"Hello, world!");
    };
    hello(&mut active);
    let (threads_before, rss_before, fds_before) =
        (server.threads(), server.rss_kib(), server.open_fds());

    let mut idle: Vec<Client> = (0..IDLE).map(|_| Client::connect(&addr)).collect();
    assert!(
        wait_until(Duration::from_secs(10), || server.open_fds() >= fds_before + IDLE),
        "the server accepted only {} of {IDLE} connections",
        server.open_fds().saturating_sub(fds_before)
    );
    let started = Instant::now();
    for _ in 0..100 {
        hello(&mut active);
    }
    let elapsed = started.elapsed();
    let (threads, rss) = (server.threads(), server.rss_kib());
    eprintln!(
        "{IDLE} idle connections: server threads {threads_before} -> {threads}, \
         VmRSS {rss_before} -> {rss} KiB ({} bytes per connection); \
         100 requests meanwhile in {elapsed:?}",
        (rss.saturating_sub(rss_before) * 1024) / IDLE as u64
    );
    assert!(threads > 0, "no thread count read from /proc");
    assert!(threads <= MAX_THREADS + 4, "{threads} threads for {IDLE} idle connections");
    // The idle connections were kept, not dropped: the first and the last still serve.
    hello(&mut idle[0]);
    hello(&mut idle[IDLE - 1]);
    assert!(server.is_running(), "fcgi serve exited:\n{}", fcgi.log());
}
