//! `--user` and `--group`: the single process and every worker serve as the chosen user (read
//! from /proc/PID/status), CGI programs run as it (their `id -u`), the master stays root, and
//! the command line is refused (exit status 2) when the switch cannot be made.
//!
//! These need root (as CI runs them), and the user `nobody` and group `nogroup` of Debian; as
//! another user they are skipped with a message.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use fcgi_tests::addr::Transport;
use fcgi_tests::nginx::scratch;
use fcgi_tests::process::{children_of, fcgi_bin, wait_until, FcgiServe};
use fcgi_tests::settings::skip;

/// The user and group the tests switch to.
const USER: &str = "nobody";
const GROUP: &str = "nogroup";

/// Whether the tests can run: root, and the user and group exist.
fn can_switch() -> bool {
    // SAFETY: geteuid cannot fail and touches no memory.
    if unsafe { libc::geteuid() } != 0 {
        skip("switching users needs root (CI runs the tests as root)");
        return false;
    }
    if id_of(USER, false).is_none() || id_of(GROUP, true).is_none() {
        skip(&format!("no user {USER} or no group {GROUP} on this machine"));
        return false;
    }
    true
}

/// The id of a user or group, from the system's databases.
fn id_of(name: &str, group: bool) -> Option<u32> {
    let c_name = std::ffi::CString::new(name).ok()?;
    // SAFETY: the record is read at once; the test reads no other entry meanwhile on this thread.
    unsafe {
        if group {
            let entry = libc::getgrnam(c_name.as_ptr());
            (!entry.is_null()).then(|| (*entry).gr_gid)
        } else {
            let entry = libc::getpwnam(c_name.as_ptr());
            (!entry.is_null()).then(|| (*entry).pw_uid)
        }
    }
}

/// The four ids (real, effective, saved, filesystem) of a `Uid:` or `Gid:` line of
/// /proc/PID/status, and the `Groups:` line's.
fn proc_ids(pid: u32, field: &str) -> Vec<u32> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix(field))
        .map(|rest| rest.split_whitespace().filter_map(|n| n.parse().ok()).collect())
        .unwrap_or_default()
}

/// Asserts that process `pid` is the test user and group, wholly.
fn assert_switched(pid: u32, what: &str) {
    let (uid, gid) = (id_of(USER, false).unwrap(), id_of(GROUP, true).unwrap());
    assert_eq!(proc_ids(pid, "Uid:"), vec![uid; 4], "{what}: real, effective, saved, fs uid");
    assert_eq!(proc_ids(pid, "Gid:"), vec![gid; 4], "{what}: gids");
    assert_eq!(proc_ids(pid, "Groups:"), vec![gid], "{what}: only --group as supplementary group");
}

/// A scratch directory others can enter (a CGI program running as `nobody` is in it).
fn open_scratch() -> tempfile::TempDir {
    let dir = scratch();
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
    dir
}

/// The pids of the workers of master `pid`, once there are `n` of them and they switched (or
/// whatever there are after 10 s).
fn workers(master: u32, n: usize) -> Vec<u32> {
    let uid = id_of(USER, false).unwrap();
    let mut pids = Vec::new();
    wait_until(Duration::from_secs(10), || {
        pids = children_of(master).into_iter().map(|(pid, _)| pid).collect();
        pids.len() == n && pids.iter().all(|pid| proc_ids(*pid, "Uid:").first() == Some(&uid))
    });
    pids
}

#[test]
fn the_single_process_serves_as_the_user() {
    if !can_switch() {
        return;
    }
    let dir = open_scratch();
    let serve = FcgiServe::start(
        dir.path(),
        "single",
        "hello",
        Transport::Unix,
        &["--user", USER, "--group", GROUP],
    );
    let mut serve = serve;
    let pid = serve.process().pid();
    assert!(
        wait_until(Duration::from_secs(5), || proc_ids(pid, "Uid:").first() != Some(&0)),
        "the process switched"
    );
    assert_switched(pid, "the single process");
}

#[test]
fn every_worker_serves_as_the_user_and_the_master_stays_root() {
    if !can_switch() {
        return;
    }
    let dir = open_scratch();
    let mut serve = FcgiServe::start(
        dir.path(),
        "prefork",
        "hello",
        Transport::Unix,
        &["--workers", "3", "--user", USER, "--group", GROUP],
    );
    let master = serve.process().pid();
    let pids = workers(master, 3);
    assert_eq!(pids.len(), 3, "three workers: {pids:?}");
    for pid in pids {
        assert_switched(pid, &format!("worker {pid}"));
    }
    assert_eq!(proc_ids(master, "Uid:"), vec![0; 4], "the master stays root");
}

/// Writes an executable CGI script that prints its user id.
fn id_script(dir: &Path) -> String {
    let script = dir.join("id.sh");
    fs::write(&script, "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\n'\nid -u\nid -g\n")
        .expect("script");
    fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).expect("chmod");
    script.to_str().expect("utf-8 path").to_owned()
}

/// What `fcgi request` printed for `script` at `serve`.
fn request(serve: &FcgiServe, script: &str) -> String {
    let out = Command::new(fcgi_bin())
        .args(["request", "--timeout", "10", "--connect", &serve.addr().listen_arg(), script])
        .output()
        .expect("fcgi request runs");
    assert!(out.status.success(), "fcgi request: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("utf-8")
}

#[test]
fn cgi_programs_run_as_the_user_in_one_process_and_under_a_master() {
    if !can_switch() {
        return;
    }
    let expected = format!("{}\n{}\n", id_of(USER, false).unwrap(), id_of(GROUP, true).unwrap());
    for (name, extra) in [("cgi-single", &[][..]), ("cgi-prefork", &["--workers", "2"][..])] {
        let dir = open_scratch();
        let script = id_script(dir.path());
        let root = dir.path().to_str().unwrap();
        let mut args = vec!["--cgi-root", root, "--user", USER, "--group", GROUP];
        args.extend_from_slice(extra);
        let serve = FcgiServe::start(dir.path(), name, "cgi", Transport::Unix, &args);
        // Several requests, so that under a master more than one worker is likely to answer.
        for _ in 0..4 {
            assert_eq!(request(&serve, &script), expected, "{name}: the program's id -u, id -g");
        }
    }
}

#[test]
fn root_with_the_cgi_gateway_and_no_user_is_warned() {
    if !can_switch() {
        return;
    }
    let dir = open_scratch();
    let root = dir.path().to_str().unwrap().to_owned();
    let serve = FcgiServe::start(
        dir.path(),
        "cgi-root",
        "cgi",
        Transport::Unix,
        &["--cgi-root", &root, "--log-format", "json"],
    );
    let warned = wait_until(Duration::from_secs(5), || {
        serve
            .log()
            .lines()
            .any(|line| line.contains(r#""level":"WARN""#) && line.contains(r#""uid":0"#))
    });
    assert!(warned, "a warning with the uid: {}", serve.log());
    // With --user, none.
    let dir = open_scratch();
    let root = dir.path().to_str().unwrap().to_owned();
    let serve = FcgiServe::start(
        dir.path(),
        "cgi-user",
        "cgi",
        Transport::Unix,
        &["--cgi-root", &root, "--log-format", "json", "--user", USER],
    );
    assert!(!serve.log().contains(r#""uid":0"#), "{}", serve.log());
}

/// Runs `fcgi serve --app hello --listen unix:... EXTRA` to its end (it must not start);
/// its exit code and standard error.
fn refused(extra: &[&str], as_user: Option<u32>) -> (Option<i32>, String) {
    let dir = open_scratch();
    let socket = dir.path().join("refused.sock");
    let mut command = Command::new(fcgi_bin());
    command.args(["serve", "--app", "hello", "--listen"]);
    command.arg(format!("unix:{}", socket.display())).args(extra);
    if let Some(uid) = as_user {
        command.uid(uid);
    }
    let out = command.output().expect("fcgi serve runs");
    (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn impossible_switches_exit_2_with_a_reason() {
    if !can_switch() {
        return;
    }
    let (code, stderr) = refused(&["--user", "no-such-user-fcgi-rs"], None);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("no-such-user-fcgi-rs"), "{stderr}");
    let (code, stderr) = refused(&["--user", USER, "--group", "no-such-group-fcgi-rs"], None);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("no-such-group-fcgi-rs"), "{stderr}");
    // Not root, yet asked for root: refused before binding anything.
    let nobody = id_of(USER, false).unwrap();
    let (code, stderr) = refused(&["--user", "root"], Some(nobody));
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("root"), "{stderr}");
}
