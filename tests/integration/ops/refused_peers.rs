//! Peers refused by `--allow`: a peer that connects in a loop gets at most one log line per
//! address per 10 s, each with the number of refusals it stands for (`refused`), and every
//! refusal is counted in exactly one line. The peers connect from addresses of their own on
//! the loopback (127.0.0.3, 127.0.0.4), the server allows only 127.0.0.2, and the log is read
//! as JSON.

use std::io;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::{Duration, Instant};

use fcgi_tests::addr::{Addr, Transport};
use fcgi_tests::nginx::scratch;
use fcgi_tests::process::{wait_until, FcgiServe};
use serde_json::Value;

/// Connects to `to` from `from` (a loopback address of the test's choosing), then closes.
fn connect_from(from: Ipv4Addr, to: SocketAddrV4) -> io::Result<()> {
    let sockaddr = |addr: SocketAddrV4| libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: addr.port().to_be(),
        sin_addr: libc::in_addr { s_addr: u32::from(*addr.ip()).to_be() },
        sin_zero: [0; 8],
    };
    let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    // SAFETY: plain socket calls on a descriptor this function owns and closes; the addresses
    // are valid sockaddr_in values on the stack.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let source = sockaddr(SocketAddrV4::new(from, 0));
        let target = sockaddr(to);
        let result = if libc::bind(fd, std::ptr::addr_of!(source).cast(), len) != 0
            || libc::connect(fd, std::ptr::addr_of!(target).cast(), len) != 0
        {
            Err(io::Error::last_os_error())
        } else {
            Ok(())
        };
        libc::close(fd);
        result
    }
}

/// The refusal lines of `log` for `peer`: each one's `refused` count.
fn refusal_counts(log: &str, peer: &str) -> Vec<u64> {
    log.lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|line| {
            line["msg"] == "connection refused: peer not allowed" && line["peer"] == peer
        })
        .map(|line| line["refused"].as_u64().unwrap_or(0))
        .collect()
}

#[test]
fn a_peer_refused_in_a_loop_is_logged_once_per_window_with_its_count() {
    const FLOOD: u64 = 5_000;
    const FEW: u64 = 50;
    let dir = scratch();
    let serve = FcgiServe::start(
        dir.path(),
        "refusing",
        "hello",
        Transport::Tcp,
        &["--allow", "127.0.0.2", "--log-format", "json"],
    );
    let Addr::Tcp(std::net::SocketAddr::V4(to)) = *serve.addr() else {
        panic!("an IPv4 TCP address: {:?}", serve.addr())
    };
    let started = Instant::now();
    for n in 0..FLOOD {
        connect_from(Ipv4Addr::new(127, 0, 0, 3), to)
            .unwrap_or_else(|e| panic!("connect {n} from 127.0.0.3: {e}"));
    }
    for n in 0..FEW {
        connect_from(Ipv4Addr::new(127, 0, 0, 4), to)
            .unwrap_or_else(|e| panic!("connect {n} from 127.0.0.4: {e}"));
    }
    let flood_took = started.elapsed();
    // The refusals that had no line are counted in a line once the peer's window is over (at
    // most 10 s after its first line, and a sweep of a second).
    let counted = |peer: &str, n: u64| refusal_counts(&serve.log(), peer).iter().sum::<u64>() == n;
    let all_counted = wait_until(Duration::from_secs(20), || {
        counted("127.0.0.3", FLOOD) && counted("127.0.0.4", FEW)
    });
    let log = serve.log();
    let flood = refusal_counts(&log, "127.0.0.3");
    let few = refusal_counts(&log, "127.0.0.4");
    assert!(all_counted, "every refusal counted once: {flood:?} and {few:?}");
    eprintln!(
        "{FLOOD} + {FEW} refused connects in {flood_took:?}: lines {flood:?} and {few:?}, \
         {} log lines in all",
        log.lines().count()
    );
    // The first refusal's line at once, the rest of the window's in one line after it.
    assert_eq!(flood.first(), Some(&1), "{flood:?}");
    assert_eq!(few.first(), Some(&1), "{few:?}");
    // Two lines each unless the flood itself outlasted a window.
    let windows = 2 + flood_took.as_secs() / 10;
    assert!(flood.len() as u64 <= windows, "{flood:?}");
    assert!(few.len() as u64 <= windows, "{few:?}");
}
