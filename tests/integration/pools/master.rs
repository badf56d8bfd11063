//! The master of a file's pools (`fcgi serve --config FILE`, a file of `[NAME]` sections): each
//! pool served by a master of its own under it; a reload that touches only the pools that
//! changed, and refuses an invalid file whole; a pool master that dies started again while the
//! others serve on; a hung pool and a crash-looping one beside a pool that serves every
//! request; nothing left running when the master is killed; USR1 reopening every pool's access
//! log; and `fcgi status`, which asks each pool through its socket.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use fcgi_tests::master::{alive, children, fcgi_request, read_pid, signal};
use fcgi_tests::nginx::scratch;
use fcgi_tests::process::{fcgi_bin, wait_until, Guarded, START_TIMEOUT};
use serde_json::Value;

/// How long a reload, a restart or a stop may take.
const SETTLE: Duration = Duration::from_secs(20);

/// A pool of the file: its name, its app and further lines.
struct Pool<'a> {
    name: &'a str,
    lines: &'a str,
}

/// A master of pools under test, its log (JSON lines) in `dir/pools.out`.
struct Pools {
    dir: PathBuf,
    config: PathBuf,
    process: Guarded,
}

impl Pools {
    /// Writes the file of `pools` (each on `dir/NAME.sock`) and starts the master, then waits
    /// until it says every pool serves.
    fn start(dir: &Path, pools: &[Pool<'_>]) -> Pools {
        let config = dir.join("pools.conf");
        fs::write(&config, pools_text(dir, pools)).expect("the config file");
        let mut command = Command::new(fcgi_bin());
        command.arg("serve").arg("--config").arg(&config);
        let process = Guarded::spawn("pools", command, &dir.join("pools.out"));
        let pools = Pools { dir: dir.to_owned(), config, process };
        assert!(
            wait_until(START_TIMEOUT, || pools.events("every pool serves").len() == 1),
            "the pools did not all start:\n{}",
            pools.log()
        );
        pools
    }

    /// Rewrites the file with `pools`, sends HUP, and waits for the master to say every pool
    /// serves again (the `serves`-th time since it started).
    fn reload(&self, pools: &[Pool<'_>], serves: usize) {
        fs::write(&self.config, pools_text(&self.dir, pools)).expect("the config file");
        self.process.signal(libc::SIGHUP);
        assert!(
            wait_until(SETTLE, || self.events("every pool serves").len() == serves),
            "the pools did not all serve after the reload:\n{}",
            self.log()
        );
    }

    fn log(&self) -> String {
        fs::read_to_string(self.dir.join("pools.out")).unwrap_or_default()
    }

    /// The master's log lines (`role` `pools`) whose message is `msg`.
    fn events(&self, msg: &str) -> Vec<Value> {
        self.log()
            .lines()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .filter(|line| line["role"] == "pools" && line["msg"] == msg)
            .collect()
    }

    /// The pid of `pool`'s running master, from the process tree: the child of this master
    /// that `pool master started` named last.
    fn master_of(&self, pool: &str) -> u32 {
        let started = self.events("pool master started");
        let pid = started
            .iter()
            .rev()
            .find(|line| line["pool"] == pool)
            .and_then(|line| line["master"].as_u64())
            .unwrap_or_else(|| panic!("no master started for [{pool}]:\n{}", self.log()));
        let pid = u32::try_from(pid).expect("a pid");
        assert!(children(self.process.pid()).contains(&pid), "[{pool}]'s master {pid} runs");
        pid
    }

    fn socket(&self, pool: &str) -> PathBuf {
        self.dir.join(format!("{pool}.sock"))
    }

    /// Whether `pool`'s socket answers a request with 200.
    fn answers(&self, pool: &str) -> bool {
        let (code, text) = fcgi_request(&self.socket(pool), "/", 5);
        code == Some(0) && !text.is_empty()
    }
}

/// The text of a file of `pools`, each listening on `dir/NAME.sock`, with JSON logs.
fn pools_text(dir: &Path, pools: &[Pool<'_>]) -> String {
    let mut text = "log-format = json\ngraceful-timeout = 5\n".to_owned();
    text += &format!("pid-file = {}\n", dir.join("fcgi.pid").display());
    for pool in pools {
        text += &format!(
            "\n[{}]\nlisten = unix:{}\n{}\n",
            pool.name,
            dir.join(format!("{}.sock", pool.name)).display(),
            pool.lines
        );
    }
    text
}

/// `fcgi status --config FILE`: its exit status and what it printed.
fn fcgi_status(config: &Path) -> (Option<i32>, String) {
    let out = Command::new(fcgi_bin())
        .arg("status")
        .arg("--config")
        .arg(config)
        .output()
        .expect("fcgi status runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    (out.status.code(), text + &String::from_utf8_lossy(&out.stderr))
}

/// Every descendant of `pid`, from /proc.
fn descendants(pid: u32) -> BTreeSet<u32> {
    let mut found = BTreeSet::new();
    let mut todo = vec![pid];
    while let Some(parent) = todo.pop() {
        for child in children(parent) {
            if found.insert(child) {
                todo.push(child);
            }
        }
    }
    found
}

#[test]
fn one_master_serves_every_pool_and_stops_them_all() {
    let dir = scratch();
    let pools = Pools::start(
        dir.path(),
        &[
            Pool { name: "www", lines: "app = hello\nworkers = 2" },
            Pool { name: "git", lines: "app = hello\nstatus-path = /" },
        ],
    );
    assert!(pools.answers("www"), "[www] answers:\n{}", pools.log());
    let (_, status) = fcgi_request(&pools.socket("git"), "/", 5);
    assert!(status.lines().any(|l| l.starts_with("pool:") && l.ends_with(" git")), "{status}");
    assert_eq!(read_pid(&dir.path().join("fcgi.pid")), Some(pools.process.pid()), "pid file");
    let (www, git) = (pools.master_of("www"), pools.master_of("git"));
    assert_eq!(children(www).len(), 2, "[www]'s 2 workers under its own master");
    // Every line a pool's processes write names the pool.
    let lines: Vec<Value> =
        pools.log().lines().filter_map(|line| serde_json::from_str(line).ok()).collect();
    for line in lines.iter().filter(|line| line["role"] != "pools") {
        assert!(line["pool"] == "www" || line["pool"] == "git", "a line without its pool: {line}");
    }

    // `fcgi status`: every pool up, [git]'s page read, the master running.
    let (code, said) = fcgi_status(&pools.config);
    assert_eq!(code, Some(0), "{said}");
    let master_line = format!("master: pid {}, running", pools.process.pid());
    assert!(said.lines().any(|l| l.starts_with(&master_line)), "{said}");
    assert!(said.lines().any(|l| l.starts_with("[www] up: unix:")), "{said}");
    assert!(said.contains("[git] up: unix:") && said.contains("    accepted conn:"), "{said}");

    let all = descendants(pools.process.pid());
    let mut process = pools.process;
    process.signal(libc::SIGTERM);
    let status = process.wait_exit(SETTLE);
    assert_eq!(status.and_then(|s| s.code()), Some(0), "the master exits 0 after TERM");
    let (code, said) = fcgi_status(&pools.config);
    assert_eq!(code, Some(1), "pools down: {said}");
    assert!(said.contains("[www] down: ") && said.contains("[git] down: "), "{said}");
    assert!(
        wait_until(SETTLE, || all.iter().all(|&pid| !alive(pid))),
        "a process of a pool is left"
    );
    assert!(!alive(www) && !alive(git));
    for pool in ["www", "git"] {
        assert!(
            !dir.path().join(format!("{pool}.sock")).exists(),
            "[{pool}]'s socket file is left"
        );
    }
    assert!(!dir.path().join("fcgi.pid").exists(), "the pid file is left");
}

#[test]
fn a_reload_touches_only_the_pools_that_changed() {
    let dir = scratch();
    let git = Pool { name: "git", lines: "app = hello" };
    let pools = Pools::start(
        dir.path(),
        &[
            Pool { name: "www", lines: "app = hello\nworkers = 2" },
            Pool { name: "git", lines: git.lines },
            Pool { name: "old", lines: "app = hello" },
        ],
    );
    let (www, git_master, old) =
        (pools.master_of("www"), pools.master_of("git"), pools.master_of("old"));
    let (www_workers, git_workers) = (children(www), children(git_master));

    // Requests to the unchanged pool, all through the reload.
    let stop = Arc::new(AtomicBool::new(false));
    let (sent, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let load = {
        let (stop, sent, failed) = (Arc::clone(&stop), Arc::clone(&sent), Arc::clone(&failed));
        let socket = pools.socket("git");
        std::thread::spawn(move || {
            for _ in 0..10_000 {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let (code, _) = fcgi_request(&socket, "/", 5);
                sent.fetch_add(1, Ordering::Relaxed);
                if code != Some(0) {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
            }
        })
    };
    assert!(wait_until(SETTLE, || sent.load(Ordering::Relaxed) >= 5), "requests to [git] run");
    pools.reload(
        &[
            Pool { name: "www", lines: "app = hello\nworkers = 3" },
            Pool { name: "git", lines: git.lines },
            Pool { name: "new", lines: "app = hello" },
        ],
        2,
    );
    let before = sent.load(Ordering::Relaxed);
    assert!(wait_until(SETTLE, || sent.load(Ordering::Relaxed) >= before + 5), "[git] serves on");
    stop.store(true, Ordering::Relaxed);
    load.join().expect("the request thread");
    assert_eq!(failed.load(Ordering::Relaxed), 0, "requests to the unchanged pool failed");

    assert_eq!(pools.master_of("git"), git_master, "[git] unchanged: the same master");
    assert_eq!(children(git_master), git_workers, "[git] unchanged: the same workers");
    assert_eq!(pools.master_of("www"), www, "[www] changed: its master reloads");
    assert!(
        wait_until(SETTLE, || {
            let now = children(www);
            now.len() == 3 && now.iter().all(|pid| !www_workers.contains(pid))
        }),
        "[www] has 3 new workers: {:?} (were {www_workers:?})",
        children(www)
    );
    assert!(wait_until(SETTLE, || !alive(old)), "[old] removed: its master stops");
    assert!(!pools.socket("old").exists(), "[old]'s socket file is gone");
    assert!(pools.answers("new"), "[new] added: it serves");

    // An invalid file is refused whole: every pool runs on as it was.
    fs::write(&pools.config, "[www]\napp = hello\nbogus = 1\n").expect("a bad file");
    pools.process.signal(libc::SIGHUP);
    assert!(
        wait_until(SETTLE, || !pools
            .events(
                "reload refused: the config file is invalid; the \
            pools run as they were"
            )
            .is_empty()),
        "no refusal in the log:\n{}",
        pools.log()
    );
    let refusal =
        &pools.events("reload refused: the config file is invalid; the pools run as they were")[0];
    assert!(refusal["errors"].as_str().is_some_and(|e| e.contains("bogus")), "{refusal}");
    for pool in ["www", "git", "new"] {
        assert!(pools.answers(pool), "[{pool}] serves after the refused reload");
    }
    assert_eq!(pools.master_of("git"), git_master);
}

#[test]
fn a_pool_master_that_dies_is_started_again_while_the_others_serve() {
    let dir = scratch();
    let pools = Pools::start(
        dir.path(),
        &[Pool { name: "www", lines: "app = hello" }, Pool { name: "git", lines: "app = hello" }],
    );
    let (www, git) = (pools.master_of("www"), pools.master_of("git"));
    signal(www, libc::SIGKILL);
    // Its workers serve on until they see it gone; then a new master binds the socket.
    assert!(
        wait_until(SETTLE, || {
            pools.events("pool serving").iter().any(|e| e["pool"] == "www" && e["master"] != www)
        }),
        "[www] was not started again:\n{}",
        pools.log()
    );
    let exits = pools.events("pool master exited; starting it again");
    assert!(exits.iter().any(|e| e["pool"] == "www"), "the exit is logged:\n{}", pools.log());
    assert!(pools.answers("www"));
    assert_ne!(pools.master_of("www"), www, "a new master for [www]");
    assert_eq!(pools.master_of("git"), git, "[git] untouched");
    assert!(pools.answers("git"));
}

#[test]
fn killed_with_sigkill_the_master_leaves_no_pool_running() {
    let dir = scratch();
    let pools = Pools::start(
        dir.path(),
        &[
            Pool { name: "www", lines: "app = hello\nworkers = 2" },
            Pool { name: "git", lines: "app = hello" },
        ],
    );
    let all = descendants(pools.process.pid());
    assert!(all.len() >= 5, "two masters and three workers: {all:?}");
    let mut process = pools.process;
    process.signal(libc::SIGKILL);
    assert!(process.wait_exit(SETTLE).is_some());
    assert!(
        wait_until(SETTLE, || all.iter().all(|&pid| !alive(pid))),
        "left running: {:?}",
        all.iter().filter(|&&pid| alive(pid)).collect::<Vec<_>>()
    );
    for pool in ["www", "git"] {
        let socket = dir.path().join(format!("{pool}.sock"));
        assert!(wait_until(SETTLE, || !socket.exists()), "[{pool}]'s socket file is left");
    }
}

#[test]
fn a_hung_pool_and_a_crashing_one_leave_the_others_serving() {
    let dir = scratch();
    let cgi = dir.path().join("cgi");
    fs::create_dir(&cgi).expect("the CGI directory");
    let hang = cgi.join("hang");
    fs::write(&hang, "#!/bin/sh\nsleep 30\n").expect("the script");
    fs::set_permissions(&hang, std::os::unix::fs::PermissionsExt::from_mode(0o755)).expect("chmod");
    let hung = format!("app = cgi\ncgi-root = {}\nmax-threads = 2\nqueue = 2", cgi.display());
    let pools = Pools::start(
        dir.path(),
        &[
            Pool { name: "good", lines: "app = hello\nworkers = 2" },
            Pool { name: "hung", lines: &hung },
            // Its program exits at once, again and again: the pool's own back-off restarts it.
            Pool { name: "crash", lines: "app = exec\nexec = /bin/false" },
        ],
    );
    let good = pools.master_of("good");
    let stop = Arc::new(AtomicBool::new(false));
    let attackers: Vec<_> = (0..6)
        .map(|_| {
            let (stop, socket, hang) = (Arc::clone(&stop), pools.socket("hung"), hang.clone());
            std::thread::spawn(move || {
                for _ in 0..100 {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    fcgi_request(&socket, hang.to_str().expect("utf-8"), 2);
                }
            })
        })
        .collect();
    let crashing = pools.socket("crash");
    for i in 0..100 {
        let (code, said) = fcgi_request(&pools.socket("good"), "/", 5);
        assert!(code == Some(0) && said.contains("Hello"), "request {i} to [good]: {said}");
        if i % 10 == 0 {
            // The crashing pool answers too: 503, its program down.
            let (_, said) = fcgi_request(&crashing, "/", 5);
            assert!(said.contains("503"), "[crash]: {said}");
        }
    }
    stop.store(true, Ordering::Relaxed);
    for attacker in attackers {
        attacker.join().expect("an attacker");
    }
    assert_eq!(pools.master_of("good"), good, "[good]'s master is the same");
    assert!(pools.events("pool master exited; starting it again").is_empty(), "{}", pools.log());
}

#[test]
fn usr1_reopens_every_pools_access_log() {
    let dir = scratch();
    let log_of = |pool: &str| dir.path().join(format!("{pool}-access.log"));
    let (www, git) = (
        format!("app = hello\naccess-log = {}", log_of("www").display()),
        format!("app = hello\naccess-log = {}", log_of("git").display()),
    );
    let pools = Pools::start(
        dir.path(),
        &[Pool { name: "www", lines: &www }, Pool { name: "git", lines: &git }],
    );
    let lines = |path: &Path| fs::read_to_string(path).unwrap_or_default().lines().count();
    for pool in ["www", "git"] {
        assert!(pools.answers(pool));
        assert!(wait_until(SETTLE, || lines(&log_of(pool)) == 1), "[{pool}]'s access log");
        // As logrotate does: the file moved away, then USR1.
        fs::rename(log_of(pool), dir.path().join(format!("{pool}-access.log.1"))).expect("moved");
    }
    pools.process.signal(libc::SIGUSR1);
    assert!(
        wait_until(SETTLE, || ["www", "git"].iter().all(|pool| log_of(pool).exists())),
        "the access logs were not reopened:\n{}",
        pools.log()
    );
    for pool in ["www", "git"] {
        assert!(pools.answers(pool));
        assert!(wait_until(SETTLE, || lines(&log_of(pool)) == 1), "[{pool}] logs to the new file");
        assert_eq!(
            lines(&dir.path().join(format!("{pool}-access.log.1"))),
            1,
            "[{pool}]'s old file"
        );
    }
}
