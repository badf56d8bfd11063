//! After a burst that queues requests, every pool thread of `fcgi serve` waits in the epoll
//! set again, where the connections' events reach it. A thread left blocked on the pool's
//! channel for a message another thread took would still be counted idle: the server's own
//! thread, trusting the count, would then stop reading for it, and requests would wait
//! unread (the tail of `--app exec` at 256 kept connections, and seconds-long stalls after).
//!
//! Each thread's blocking system call is read from /proc (`/proc/PID/task/TID/syscall`).

use std::fs;
use std::process::Command;
use std::time::Duration;

use fcgi_tests::addr::Transport;
use fcgi_tests::nginx::scratch;
use fcgi_tests::process::{fcgi_bin, wait_until, FcgiServe};

/// The system calls a thread waiting in the epoll set is blocked in.
const EPOLL_WAITS: &[libc::c_long] = &[
    #[cfg(target_arch = "x86_64")]
    libc::SYS_epoll_wait,
    libc::SYS_epoll_pwait,
    441, // epoll_pwait2, on every architecture
];

/// Each `fcgi-worker-N` thread of `pid`: its name, and the system call it is blocked in
/// (`None` while it runs).
fn workers(pid: u32) -> Vec<(String, Option<libc::c_long>)> {
    let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else { return Vec::new() };
    let mut found = Vec::new();
    for task in tasks.flatten() {
        let path = task.path();
        let name = fs::read_to_string(path.join("comm")).unwrap_or_default().trim().to_owned();
        if !name.starts_with("fcgi-worker-") || name == "fcgi-worker-sig" {
            continue;
        }
        let syscall = fs::read_to_string(path.join("syscall")).unwrap_or_default();
        let number = syscall.split_whitespace().next().and_then(|n| n.parse().ok());
        found.push((name, number));
    }
    found.sort();
    found
}

#[test]
fn after_bursts_every_pool_thread_waits_in_the_epoll_set() {
    let dir = scratch();
    let threads = ["--max-threads", "4", "--min-spare", "4", "--max-spare", "4"];
    let mut serve = FcgiServe::start(dir.path(), "burst", "hello", Transport::Unix, &threads);
    let pid = serve.process().pid();
    for round in 1..=3 {
        // 256 kept connections against 4 threads: most requests wait in the queue.
        let bench = Command::new(fcgi_bin())
            .args(["bench", "-q", "-c", "256", "-d", "2s", "--keep-conn", "--connect"])
            .arg(serve.addr().listen_arg())
            .arg("/hello")
            .output()
            .expect("run fcgi bench");
        assert!(bench.status.success(), "{}", String::from_utf8_lossy(&bench.stderr));
        let settled = wait_until(Duration::from_secs(10), || {
            let now = workers(pid);
            now.len() == 4
                && now.iter().all(|(_, call)| call.is_some_and(|c| EPOLL_WAITS.contains(&c)))
        });
        assert!(settled, "round {round}: {:?}\n{}", workers(pid), serve.log());
    }
}
