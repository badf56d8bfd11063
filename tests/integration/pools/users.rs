//! Pools of two users under one master: each pool's processes run as its user, cannot read the
//! other user's files (mode 600), signal its processes or read their memory maps and
//! environment (ptrace access), and each pool's socket file is its user's, mode 0660 (PHP-FPM's
//! listen.owner, listen.group and listen.mode defaults); and a pool with `chroot` whose
//! program runs inside it, as root or as the pool's user (with no capability left).
//!
//! Needs root (as CI runs the tests): it creates the users `fcgirs-pool-a`, `fcgirs-pool-b` and
//! `fcgirs-jail` for the tests, and removes them after them.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use fcgi_tests::master::{children, fcgi_request};
use fcgi_tests::nginx::scratch;
use fcgi_tests::process::{fcgi_bin, wait_until, Guarded, START_TIMEOUT};
use fcgi_tests::settings::skip;

const USERS: [&str; 2] = ["fcgirs-pool-a", "fcgirs-pool-b"];
/// The chroot test's own user: the tests run at once, and each removes its users.
const JAIL_USER: &str = "fcgirs-jail";

/// The test's users, created for it and removed when dropped.
struct Users(Vec<(String, u32, u32)>);

impl Users {
    fn create(names: &[&str]) -> Users {
        let mut users = Users(Vec::new());
        for &name in names {
            // Left over from an interrupted run: made anew.
            let _ = Command::new("userdel").arg(name).output();
            let made = Command::new("useradd")
                .args(["--system", "--user-group", "--no-create-home", "--shell", "/bin/false"])
                .arg(name)
                .output()
                .expect("useradd runs");
            assert!(
                made.status.success(),
                "useradd {name}: {}",
                String::from_utf8_lossy(&made.stderr)
            );
            let id = |flag| {
                let out = Command::new("id").arg(flag).arg(name).output().expect("id runs");
                String::from_utf8_lossy(&out.stdout).trim().parse::<u32>().expect("an id")
            };
            users.0.push((name.to_owned(), id("-u"), id("-g")));
        }
        users
    }
}

impl Drop for Users {
    fn drop(&mut self) {
        for (name, _, _) in &self.0 {
            let _ = Command::new("userdel").arg(name).output();
        }
    }
}

/// The CGI program each pool runs: what its user can do to the other pool's file and worker
/// (named in `probe-UID.env`), and, as controls, to its own.
const PROBE: &str = r#"#!/bin/sh
. "$(dirname "$0")/probe-$(id -u).env"
printf 'Content-Type: text/plain\r\n\r\n'
echo "uid=$(id -u)"
can() { if "$@" >/dev/null 2>&1; then echo yes; else echo no; fi; }
echo "own_file=$(can cat "$OWN_FILE")"
echo "other_file=$(can cat "$OTHER_FILE")"
echo "own_signal=$(can kill -0 $$)"
echo "other_signal=$(can kill -0 "$OTHER_PID")"
echo "other_maps=$(can cat /proc/"$OTHER_PID"/maps)"
echo "other_environ=$(can cat /proc/"$OTHER_PID"/environ)"
"#;

#[test]
fn pools_of_two_users_cannot_reach_each_other() {
    // SAFETY: geteuid cannot fail and touches no memory.
    if unsafe { libc::geteuid() } != 0 {
        return skip("creating users and switching to them needs root (CI runs the tests as root)");
    }
    let users = Users::create(&USERS);
    let dir = scratch();
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
    let cgi = dir.path().join("cgi");
    fs::create_dir(&cgi).expect("the CGI directory");
    let probe = cgi.join("probe");
    fs::write(&probe, PROBE).expect("the probe");
    fs::set_permissions(&probe, fs::Permissions::from_mode(0o755)).expect("chmod");
    let mut text = "log-format = json\n".to_owned();
    for (pool, (name, uid, gid)) in ["a", "b"].iter().zip(&users.0) {
        let secret = dir.path().join(format!("secret-{pool}"));
        fs::write(&secret, format!("secret of {pool}\n")).expect("a secret");
        fs::set_permissions(&secret, fs::Permissions::from_mode(0o600)).expect("chmod");
        std::os::unix::fs::chown(&secret, Some(*uid), Some(*gid)).expect("chown");
        text += &format!(
            "[{pool}]\napp = cgi\ncgi-root = {}\nuser = {name}\nworkers = 2\nlisten = unix:{}\n",
            cgi.display(),
            dir.path().join(format!("{pool}.sock")).display()
        );
    }
    let config = dir.path().join("pools.conf");
    fs::write(&config, text).expect("the config file");
    let mut command = Command::new(fcgi_bin());
    command.arg("serve").arg("--config").arg(&config);
    let log = dir.path().join("pools.out");
    let mut master = Guarded::spawn("pools", command, &log);
    let sockets = [dir.path().join("a.sock"), dir.path().join("b.sock")];
    let up = wait_until(START_TIMEOUT, || {
        !master.is_running() || sockets.iter().all(|s| fcgi_request(s, "/", 5).0.is_some())
    });
    assert!(up && master.is_running(), "the pools did not start:\n{}", read(&log));

    // Each pool's workers, by their user.
    let workers_of = |uid: u32| -> Vec<u32> {
        let mut found = Vec::new();
        wait_until(Duration::from_secs(10), || {
            found = children(master.pid())
                .into_iter()
                .flat_map(children)
                .filter(|&pid| uid_of(pid) == Some(uid))
                .collect();
            found.len() == 2
        });
        found
    };
    let (a, b) = (&users.0[0], &users.0[1]);
    let (workers_a, workers_b) = (workers_of(a.1), workers_of(b.1));
    assert!(workers_a.len() == 2 && workers_b.len() == 2, "{workers_a:?} {workers_b:?}");

    for (pool, own, other, other_workers, socket) in
        [("a", a, "b", &workers_b, &sockets[0]), ("b", b, "a", &workers_a, &sockets[1])]
    {
        let meta = fs::metadata(socket).expect("the socket file");
        assert_eq!((meta.uid(), meta.gid()), (own.1, own.2), "[{pool}]'s socket is its user's");
        assert_eq!(meta.mode() & 0o7777, 0o660, "[{pool}]'s socket mode");
        let env = format!(
            "OWN_FILE={}\nOTHER_FILE={}\nOTHER_PID={}\n",
            dir.path().join(format!("secret-{pool}")).display(),
            dir.path().join(format!("secret-{other}")).display(),
            other_workers[0]
        );
        fs::write(cgi.join(format!("probe-{}.env", own.1)), env).expect("the probe's targets");
        let (code, said) = fcgi_request(socket, probe.to_str().expect("utf-8"), 10);
        assert_eq!(code, Some(0), "[{pool}]: {said}");
        for (line, what) in [
            (format!("uid={}", own.1), "runs as its user"),
            ("own_file=yes".to_owned(), "reads its own file (the control)"),
            ("other_file=no".to_owned(), "cannot read the other user's file"),
            ("own_signal=yes".to_owned(), "signals itself (the control)"),
            ("other_signal=no".to_owned(), "cannot signal the other pool's worker"),
            ("other_maps=no".to_owned(), "cannot read the other worker's memory map"),
            ("other_environ=no".to_owned(), "cannot read the other worker's environment"),
        ] {
            assert!(said.lines().any(|l| l == line), "[{pool}] {what}: no `{line}` in\n{said}");
        }
    }
    master.signal(libc::SIGTERM);
    assert!(master.wait_exit(Duration::from_secs(20)).is_some(), "the master stops");
    drop(users);
}

fn uid_of(pid: u32) -> Option<u32> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|l| l.strip_prefix("Uid:"))?.split_whitespace().next()?.parse().ok()
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_default()
}

#[test]
fn a_pool_with_chroot_runs_its_program_inside_it() {
    // SAFETY: geteuid cannot fail and touches no memory.
    if unsafe { libc::geteuid() } != 0 {
        return skip("chroot needs root (CI runs the tests as root)");
    }
    let users = Users::create(&[JAIL_USER]);
    let (name, uid, _) = users.0[0].clone();
    for user in [None, Some((name.as_str(), uid))] {
        jailed(user);
    }
}

/// A pool with `chroot` (and `user`, if given): its program's root is the jail, it runs as the
/// pool's user, and it holds no capability; its worker holds CAP_SYS_CHROOT alone.
fn jailed(user: Option<(&str, u32)>) {
    let dir = scratch();
    let program = match fcgi_tests::programs::compile_libfcgi_program(dir.path()) {
        Ok(program) => program,
        Err(why) => return skip(&why),
    };
    // The jail: the program, and the libraries and loader it links (from ldd), at their paths.
    let jail = dir.path().join("jail");
    fs::create_dir(&jail).expect("the jail");
    // The pool's user chroots into the jail: it must be able to reach it.
    for path in [dir.path(), jail.as_path()] {
        fs::set_permissions(path, fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    fs::copy(&program, jail.join("app")).expect("the program");
    let ldd = Command::new("ldd").arg(&program).output().expect("ldd runs");
    for lib in
        String::from_utf8_lossy(&ldd.stdout).split_whitespace().filter(|w| w.starts_with('/'))
    {
        let inside = jail.join(lib.trim_start_matches('/'));
        fs::create_dir_all(inside.parent().expect("a directory")).expect("the library's directory");
        fs::copy(lib, &inside).expect("the library");
    }
    let socket = dir.path().join("jailed.sock");
    let config = dir.path().join("pools.conf");
    let mut text = format!(
        "log-format = json\n[jailed]\napp = exec\nexec = /app\nchroot = {}\nlisten = unix:{}\n",
        jail.display(),
        socket.display()
    );
    if let Some((name, _)) = user {
        text += &format!("user = {name}\n");
    }
    fs::write(&config, text).expect("the config file");
    let mut command = Command::new(fcgi_bin());
    command.arg("serve").arg("--config").arg(&config);
    let log = dir.path().join("pools.out");
    let mut master = Guarded::spawn("pools", command, &log);
    let up = wait_until(START_TIMEOUT, || {
        !master.is_running() || fcgi_request(&socket, "/", 5).0 == Some(0)
    });
    assert!(up && master.is_running(), "the pool did not serve:\n{}", read(&log));
    let (_, said) = fcgi_request(&socket, "/x", 5);
    assert!(said.starts_with("hello from libfcgi"), "{said}");
    let pid: u32 = said
        .lines()
        .find_map(|l| l.strip_prefix("pid="))
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no pid in {said}"));
    let root = fs::read_link(format!("/proc/{pid}/root")).expect("the program's root");
    assert_eq!(root, jail.canonicalize().expect("the jail's path"), "the program runs in the jail");
    let status = read(Path::new(&format!("/proc/{pid}/status")));
    let field = |text: &str, name: &str| {
        text.lines().find_map(|l| l.strip_prefix(name)).map(|v| v.trim().to_owned())
    };
    assert_eq!(uid_of(pid), Some(user.map_or(0, |(_, uid)| uid)), "the program's user");
    if user.is_some() {
        for caps in ["CapEff:", "CapPrm:"] {
            assert_eq!(
                field(&status, caps).as_deref(),
                Some("0000000000000000"),
                "{caps} {status}"
            );
        }
        let worker = fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|s| {
                s.rsplit_once(") ").and_then(|(_, r)| r.split(' ').nth(1)?.parse::<u32>().ok())
            })
            .expect("the program's parent");
        let status = read(Path::new(&format!("/proc/{worker}/status")));
        // CAP_SYS_CHROOT is bit 18.
        for caps in ["CapEff:", "CapPrm:"] {
            assert_eq!(
                field(&status, caps).as_deref(),
                Some("0000000000040000"),
                "{caps} {status}"
            );
        }
    }
    master.signal(libc::SIGTERM);
    assert!(master.wait_exit(Duration::from_secs(20)).is_some(), "the master stops");
}
