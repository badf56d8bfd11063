//! The master's watchdog and the programs of dead processes: a request longer than the worker
//! timeout is not taken for a hang (only a silent heartbeat is), a hung request is left to the
//! request timeout, and a worker's death (or a single process's, with
//! `--cgi-die-with-server`) takes its CGI programs with it.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fcgi_tests::addr::Addr;
use fcgi_tests::nginx::scratch;
use fcgi_tests::process::{children_of, fcgi_bin, wait_until, Guarded, START_TIMEOUT};

/// How long the programs of a killed process may outlive it: the master notices a death at
/// once (the heartbeat pipe's end of file, SIGCHLD) and acts within its 50 ms tick.
const ORPHAN_DEADLINE: Duration = Duration::from_secs(5);

/// Whether `pid` is a live process (not gone, not a zombie).
fn alive(pid: u32) -> bool {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let state = stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().next());
    matches!(state, Some(s) if s != "Z" && s != "X")
}

/// The parent of `pid`, from /proc.
fn parent_of(pid: u32) -> Option<u32> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?.1.split_whitespace().nth(1)?.parse().ok()
}

/// The live children of `pid`.
fn live_children(pid: u32) -> Vec<u32> {
    children_of(pid).into_iter().filter(|&(_, state)| state != 'Z').map(|(p, _)| p).collect()
}

fn signal(pid: u32, signal: libc::c_int) {
    let pid = libc::pid_t::try_from(pid).expect("pid fits");
    // SAFETY: kill(2) has no memory effects.
    unsafe { libc::kill(pid, signal) };
}

/// A server under test, its socket and its log; stopped by PID when dropped.
struct Served {
    process: Guarded,
    socket: PathBuf,
    log: PathBuf,
}

impl Served {
    /// Starts `command` (which listens on `dir/NAME.sock`, logging to `dir/NAME.log`) and waits
    /// until `workers` children run (0: none expected) and the socket accepts.
    fn start(dir: &Path, name: &str, command: Command, workers: usize) -> Served {
        let log = dir.join(format!("{name}.log"));
        let socket = dir.join(format!("{name}.sock"));
        let mut process = Guarded::spawn(name, command, &log);
        let pid = process.pid();
        let up = wait_until(START_TIMEOUT, || {
            !process.is_running()
                || (live_children(pid).len() >= workers && Addr::Unix(socket.clone()).accepts())
        });
        let served = Served { process, socket, log };
        assert!(up && served.pid() != 0, "{name} did not start:\n{}", served.log_text());
        served
    }

    /// `fcgi-sleepy unix:DIR/NAME.sock SETTINGS...`.
    fn sleepy(dir: &Path, name: &str, settings: &[&str], workers: usize) -> Served {
        let mut command = Command::new(env!("CARGO_BIN_EXE_fcgi-sleepy"));
        command.arg(format!("unix:{}", dir.join(format!("{name}.sock")).display()));
        command.args(settings).env("NO_COLOR", "1");
        Served::start(dir, name, command, workers)
    }

    /// `fcgi serve --app cgi --cgi-root DIR --listen unix:DIR/NAME.sock EXTRA...`.
    fn cgi(dir: &Path, name: &str, extra: &[&str], workers: usize) -> Served {
        let mut command = Command::new(fcgi_bin());
        command.args(["serve", "--app", "cgi", "--log-format", "json", "--cgi-root"]);
        command.arg(dir).arg("--listen");
        command.arg(format!("unix:{}", dir.join(format!("{name}.sock")).display()));
        command.args(extra);
        Served::start(dir, name, command, workers)
    }

    fn pid(&self) -> u32 {
        self.process.pid()
    }

    fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `fcgi request` for `path` (with `params`), started and not waited for.
    fn request(&self, path: &str, params: &[String]) -> Child {
        let mut command = Command::new(fcgi_bin());
        command.args(["request", "--timeout", "30", "--connect"]);
        command.arg(format!("unix:{}", self.socket.display()));
        for param in params {
            command.arg("--param").arg(param);
        }
        command.arg(path).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        command.spawn().expect("fcgi request starts")
    }
}

/// The exit code and output of a request started by [`Served::request`].
fn finish(request: Child) -> (Option<i32>, String) {
    let output = request.wait_with_output().expect("fcgi request ends");
    let text = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    (output.status.code(), text)
}

#[test]
fn a_request_longer_than_the_worker_timeout_completes_and_its_worker_lives() {
    let dir = scratch();
    let settings = ["workers=2", "worker_timeout_ms=500", "kill_grace_ms=500"];
    let served = Served::sleepy(dir.path(), "sleepy", &settings, 2);
    let started = Instant::now();
    // Four times the worker timeout, and no request timeout: within its limits.
    let (code, body) = finish(served.request("/x?ms=2000", &[]));
    assert_eq!(code, Some(0), "the request failed: {body}\n{}", served.log_text());
    assert!(body.contains("slept 2000 ms in"), "{body}");
    assert!(started.elapsed() >= Duration::from_secs(2));
    let worker: u32 = body.rsplit(' ').next().and_then(|p| p.trim().parse().ok()).expect("pid");
    assert!(alive(worker), "the worker that answered was killed");
    let log = served.log_text();
    assert!(!log.contains("worker hung"), "a long request was taken for a hang:\n{log}");
}

#[test]
fn a_silent_worker_is_killed_after_the_worker_timeout_and_replaced() {
    let dir = scratch();
    let settings = ["workers=2", "worker_timeout_ms=500", "kill_grace_ms=500"];
    let served = Served::sleepy(dir.path(), "sleepy", &settings, 2);
    let before = live_children(served.pid());
    // Stopped, its heartbeat thread included: the silence of a hung process.
    let victim = before[0];
    signal(victim, libc::SIGSTOP);
    let replaced = wait_until(Duration::from_secs(10), || {
        let now = live_children(served.pid());
        !alive(victim) && now.len() == 2 && !now.contains(&victim)
    });
    assert!(replaced, "{before:?} -> {:?}\n{}", live_children(served.pid()), served.log_text());
    let log = served.log_text();
    assert!(log.contains("worker hung") && log.contains("no report for"), "{log}");
}

/// `orphan.sh`: writes its pid, starts a `sleep 600` that leaves its process group for a
/// session of its own (and writes that one's pid), then waits on a `sleep 600` of its group.
const ORPHAN_SH: &str = "#!/bin/sh\necho $$ > \"$0.pid\"\n\
    setsid sleep 600 &\necho $! > \"$0.escaped\"\nsleep 600\n";

/// Writes the script to `dir/orphan.sh`; its path.
fn orphan_script(dir: &Path) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join("orphan.sh");
    fs::write(&path, ORPHAN_SH).expect("script");
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).expect("chmod");
    path
}

/// Processes a test started indirectly (a script and its `sleep`s), killed by PID on drop if
/// they still run: a failing test must not leave them behind.
struct KillOnDrop(Vec<u32>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        for &pid in &self.0 {
            if alive(pid) {
                signal(pid, libc::SIGKILL);
            }
        }
    }
}

/// The processes of a running `orphan.sh`.
struct Orphan {
    /// The script, leader of its process group.
    program: u32,
    /// Its `sleep` in its group.
    sleeper: u32,
    /// Its `sleep` in a session of its own.
    escaped: u32,
}

/// Starts the script through `served`: the request and the script's processes, which are
/// killed when the guard drops.
fn start_orphan(served: &Served, script: &Path) -> (Child, Orphan, KillOnDrop) {
    let read_pid = |ext: &str| {
        let path = format!("{}.{ext}", script.display());
        fs::read_to_string(path).ok().and_then(|p| p.trim().parse::<u32>().ok()).unwrap_or(0)
    };
    let param = format!("SCRIPT_FILENAME={}", script.display());
    let request = served.request("/orphan.sh", &[param]);
    let mut orphan = Orphan { program: 0, sleeper: 0, escaped: 0 };
    let running = wait_until(Duration::from_secs(10), || {
        let (program, escaped) = (read_pid("pid"), read_pid("escaped"));
        let sleeper = live_children(program).into_iter().find(|&p| p != escaped && escaped != 0);
        orphan = Orphan { program, sleeper: sleeper.unwrap_or(0), escaped };
        program != 0 && escaped != 0 && orphan.sleeper != 0 && alive(escaped)
    });
    let cleanup = KillOnDrop(vec![orphan.program, orphan.sleeper, orphan.escaped]);
    assert!(running, "the script did not start:\n{}", served.log_text());
    (request, orphan, cleanup)
}

#[test]
fn a_killed_workers_cgi_programs_are_killed_with_it() {
    let dir = scratch();
    let script = orphan_script(dir.path());
    let served = Served::cgi(dir.path(), "cgi", &["--workers", "2"], 2);
    let (request, orphan, _cleanup) = start_orphan(&served, &script);
    let Orphan { program, sleeper, escaped } = orphan;
    let worker = parent_of(program).expect("the script's parent");
    assert!(live_children(served.pid()).contains(&worker), "run by a worker");
    signal(worker, libc::SIGKILL);
    let gone = wait_until(ORPHAN_DEADLINE, || !alive(program) && !alive(sleeper));
    assert!(gone, "the script ({program}) or its sleep ({sleeper}) outlived its worker");
    // The one that left the group comes to the master once the script is dead, and goes too.
    let gone = wait_until(ORPHAN_DEADLINE, || !alive(escaped));
    assert!(gone, "the sleep in a session of its own ({escaped}) outlived the script");
    let (code, _) = finish(request);
    assert_ne!(code, Some(0), "the request of a killed worker cannot succeed");
    // Reaped too: no zombie left under the master, and the master still serves with 2.
    let clean = wait_until(ORPHAN_DEADLINE, || {
        let all = children_of(served.pid());
        all.len() == 2 && all.iter().all(|&(_, state)| state != 'Z')
    });
    assert!(clean, "{:?}\n{}", children_of(served.pid()), served.log_text());
    // The master said what it killed (its JSON line has the field `targets`).
    let log = served.log_text();
    assert!(log.lines().any(|line| line.contains("\"targets\":")), "{log}");
}

#[test]
fn a_killed_single_process_takes_its_cgi_program_with_it_when_asked() {
    let dir = scratch();
    let script = orphan_script(dir.path());
    let mut served = Served::cgi(dir.path(), "single", &["--cgi-die-with-server"], 0);
    let (request, Orphan { program, .. }, _cleanup) = start_orphan(&served, &script);
    assert_eq!(parent_of(program), Some(served.pid()), "run by the single process");
    served.process.signal(libc::SIGKILL);
    assert!(served.process.wait_exit(Duration::from_secs(5)).is_some(), "it died");
    // The program itself; what it started outlives it (PR_SET_PDEATHSIG is not inherited).
    assert!(wait_until(ORPHAN_DEADLINE, || !alive(program)), "the script outlived its server");
    let _ = finish(request);
}
