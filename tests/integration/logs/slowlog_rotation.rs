//! `--slow-log FILE` after logrotate's rename: USR1 reopens it, in a single process and in
//! every prefork worker (also workers that dropped privileges, whose new file the master
//! makes), and the slow lines after the signal go to the new file, not the renamed one.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use fcgi_tests::addr::Transport;
use fcgi_tests::nginx::scratch;
use fcgi_tests::process::{children_of, wait_until, FcgiServe};
use fcgi_tests::raw::Client;
use fcgi_tests::settings::skip;

/// A CGI directory with `sleep.sh`, which runs past the slow-request limit.
fn cgi_root(dir: &Path) -> PathBuf {
    let root = dir.join("cgi-bin");
    fs::create_dir(&root).unwrap();
    fs::set_permissions(&root, fs::Permissions::from_mode(0o755)).unwrap();
    let script = root.join("sleep.sh");
    fs::write(
        &script,
        "#!/bin/sh\nsleep 0.6\nprintf 'Content-Type: text/plain\\r\\n\\r\\nslept\\n'\n",
    )
    .unwrap();
    fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
    root
}

/// Whether process `pid` has the file at `path` open.
fn holds_open(pid: u32, path: &Path) -> bool {
    let Ok(entries) = fs::read_dir(format!("/proc/{pid}/fd")) else { return false };
    entries.filter_map(Result::ok).any(|e| fs::read_link(e.path()).is_ok_and(|t| t == path))
}

/// Runs `count` slow requests at once, each tagged `?tag-N`.
fn slow_requests(serve: &FcgiServe, script: &Path, tag: &str, count: usize) {
    std::thread::scope(|scope| {
        for n in 0..count {
            let uri = format!("/sleep.sh?{tag}-{n}");
            let script = script.to_str().unwrap();
            scope.spawn(move || {
                let params = [
                    ("SCRIPT_FILENAME", script),
                    ("REQUEST_METHOD", "GET"),
                    ("REQUEST_URI", uri.as_str()),
                ];
                Client::connect(serve.addr()).simple_request(&params, b"").assert_complete(200);
            });
        }
    });
}

/// The slow lines of `path` (one JSON line per slow request).
fn slow_lines(path: &Path) -> Vec<String> {
    fs::read_to_string(path).unwrap_or_default().lines().map(str::to_owned).collect()
}

/// Slow lines, the rename, USR1, slow lines: the first in the renamed file, the rest in the
/// new one. `workers`: the serving processes' count under a master, 0 for a single process.
fn rotate(workers: usize, extra: &[&str]) {
    let dir = scratch();
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let root = cgi_root(dir.path());
    let script = root.join("sleep.sh");
    let path = dir.path().join("slow.log");
    let rotated = dir.path().join("slow.log.1");
    let workers_arg = workers.to_string();
    let mut args = vec![
        "--cgi-root",
        root.to_str().unwrap(),
        "--slow-request",
        "0.2",
        "--slow-log",
        path.to_str().unwrap(),
        "--log-format",
        "json",
    ];
    if workers > 0 {
        args.extend(["--workers", workers_arg.as_str()]);
    }
    args.extend_from_slice(extra);
    let mut serve = FcgiServe::start(dir.path(), "slowrot", "cgi", Transport::Unix, &args);
    let before = 2 * workers.max(1);
    slow_requests(&serve, &script, "before", before);
    assert!(
        wait_until(Duration::from_secs(10), || slow_lines(&path).len() == before),
        "{:?}\n{}",
        slow_lines(&path),
        serve.log()
    );

    fs::rename(&path, &rotated).expect("rename, as logrotate does");
    serve.process().signal(libc::SIGUSR1);
    let pid = serve.process().pid();
    let serving = || -> Vec<u32> {
        if workers == 0 {
            vec![pid]
        } else {
            children_of(pid).into_iter().map(|(child, _)| child).collect()
        }
    };
    // Every serving process has reopened once it holds the new file open (/proc/PID/fd names
    // the old one slow.log.1).
    let reopened = wait_until(Duration::from_secs(10), || {
        let serving = serving();
        serving.len() == workers.max(1) && serving.iter().all(|p| holds_open(*p, &path))
    });
    assert!(reopened, "every serving process reopened the slow log:\n{}", serve.log());

    let after = 2 * workers.max(1);
    slow_requests(&serve, &script, "after", after);
    assert!(
        wait_until(Duration::from_secs(10), || slow_lines(&path).len() == after),
        "new file: {:?}\nrenamed: {:?}",
        slow_lines(&path),
        slow_lines(&rotated)
    );
    let new = slow_lines(&path);
    assert!(new.iter().all(|l| l.contains("?after-")), "{new:?}");
    let old = slow_lines(&rotated);
    assert_eq!(old.len(), before, "{old:?}");
    assert!(old.iter().all(|l| l.contains("?before-")), "{old:?}");
}

#[test]
fn usr1_reopens_the_slow_log_of_a_single_process() {
    rotate(0, &[]);
}

#[test]
fn usr1_reopens_the_slow_log_in_every_worker() {
    rotate(2, &[]);
}

#[test]
fn usr1_reopens_the_slow_log_in_workers_that_dropped_privileges() {
    // SAFETY: geteuid cannot fail and touches no memory.
    if unsafe { libc::geteuid() } != 0 {
        return skip("--user needs root (CI runs the tests as root)");
    }
    // The directory stays root's (0755): the workers, as nobody, cannot create the new file;
    // the master does, and hands it to them.
    rotate(2, &["--user", "nobody", "--group", "nogroup"]);
}
