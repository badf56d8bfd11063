//! Process titles: `ps` tells the single process, the master and each worker apart, from both
//! /proc/PID/cmdline (`ps -o args`) and /proc/PID/comm (`ps -o comm`, `top`).

use std::fs;
use std::time::Duration;

use fcgi_tests::addr::Transport;
use fcgi_tests::nginx::scratch;
use fcgi_tests::process::{children_of, wait_until, FcgiServe};

/// The command line as `ps` shows it: the NULs between (and after) the strings as spaces,
/// trailing ones dropped.
fn cmdline(pid: u32) -> String {
    let raw = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    String::from_utf8_lossy(&raw).replace('\0', " ").trim_end().to_owned()
}

/// The thread name of the process's main thread.
fn comm(pid: u32) -> String {
    fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default().trim_end().to_owned()
}

/// Waits until `pid`'s command line is `title`; what it is then.
fn wait_for_title(pid: u32, title: &str) -> String {
    wait_until(Duration::from_secs(5), || cmdline(pid) == title);
    cmdline(pid)
}

#[test]
fn the_single_process_is_titled_serve() {
    let dir = scratch();
    let mut serve = FcgiServe::start(dir.path(), "single", "hello", Transport::Unix, &[]);
    let pid = serve.process().pid();
    assert_eq!(wait_for_title(pid, "fcgi: serve [hello]"), "fcgi: serve [hello]");
    assert_eq!(comm(pid), "fcgi serve");
}

#[test]
fn the_master_and_each_worker_are_told_apart() {
    let dir = scratch();
    let mut serve =
        FcgiServe::start(dir.path(), "prefork", "echo", Transport::Unix, &["--workers", "3"]);
    let master = serve.process().pid();
    assert_eq!(
        wait_for_title(master, "fcgi: master [echo, 3 workers]"),
        "fcgi: master [echo, 3 workers]"
    );
    assert_eq!(comm(master), "fcgi master");

    // Each worker: `fcgi: worker N [echo]`, its number in both names, every number different.
    let mut titles = Vec::new();
    let all = wait_until(Duration::from_secs(10), || {
        let workers: Vec<u32> = children_of(master).into_iter().map(|(pid, _)| pid).collect();
        titles = workers.iter().map(|pid| (cmdline(*pid), comm(*pid))).collect();
        titles.len() == 3 && titles.iter().all(|(title, _)| title.ends_with(" [echo]"))
    });
    assert!(all, "three titled workers: {titles:?}");
    let mut numbers: Vec<u64> = titles
        .iter()
        .map(|(title, comm)| {
            let number = title
                .strip_prefix("fcgi: worker ")
                .and_then(|rest| rest.strip_suffix(" [echo]"))
                .unwrap_or_else(|| panic!("a worker's title: {title:?}"));
            assert_eq!(comm, &format!("fcgi worker {number}"), "its thread name");
            number.parse().unwrap_or_else(|_| panic!("a number in {title:?}"))
        })
        .collect();
    numbers.sort_unstable();
    numbers.dedup();
    assert_eq!(numbers.len(), 3, "each worker's own number: {titles:?}");
}

#[test]
fn a_reload_keeps_the_titles_and_the_arguments() {
    // HUP re-reads the command line: the title written over it must not change what is read.
    let dir = scratch();
    let mut serve =
        FcgiServe::start(dir.path(), "reload", "hello", Transport::Unix, &["--workers", "2"]);
    let master = serve.process().pid();
    wait_for_title(master, "fcgi: master [hello, 2 workers]");
    let before: Vec<u32> = children_of(master).into_iter().map(|(pid, _)| pid).collect();
    serve.process().signal(libc::SIGHUP);
    // New workers, titled, and the old ones gone: the reload parsed the arguments.
    let replaced = wait_until(Duration::from_secs(10), || {
        let now: Vec<u32> = children_of(master).into_iter().map(|(pid, _)| pid).collect();
        now.len() == 2
            && now
                .iter()
                .all(|pid| !before.contains(pid) && cmdline(*pid).starts_with("fcgi: worker "))
    });
    assert!(replaced, "workers replaced after HUP:\n{}", serve.log());
    assert_eq!(cmdline(master), "fcgi: master [hello, 2 workers]");
    assert!(serve.process().is_running());
}
