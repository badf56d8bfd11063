//! End-to-end tests of the CGI gateway's defences: what a peer may not put in a program's
//! environment, when `fcgi serve --app cgi` refuses to start, the timeout while the request
//! body is still arriving, and a body that could not be stored whole. `fcgi serve` runs as a
//! real process, spoken to with raw FastCGI records (no web server in between, so that the
//! tests choose every param and every byte of timing).

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::time::{Duration, Instant};

use fcgi_codec::{Role, StreamKind};
use fcgi_tests::addr::{free_port, Transport};
use fcgi_tests::nginx::scratch;
use fcgi_tests::process::{children_of, fcgi_bin, wait_until, FcgiServe, Guarded};
use fcgi_tests::raw::{frames, Client, Reply};
use fcgi_tests::settings::{scaled, skip};

/// The programs of these tests, by name, in each test's `cgi-bin`. `DIR` is replaced by the
/// test's directory.
const SCRIPTS: &[(&str, &str)] = &[
    // bash, so that BASH_ENV would be read; `env` is a program of its own, so that LD_PRELOAD
    // would be loaded twice.
    ("env.sh", "#!/bin/bash\nprintf 'Content-Type: text/plain\\n\\n'\nexec env\n"),
    // Writes its header at once, then reads its stdin to the end.
    (
        "slow-reader.sh",
        "#!/bin/sh\necho $$ > DIR/slow-reader.pid\nprintf 'Content-Type: text/plain\\n\\nstarted\\n'\n\
         exec cat > /dev/null\n",
    ),
    // Writes its header and 100 KiB (more than the server holds back), then dies of a signal.
    (
        "dies.sh",
        "#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\n'\nhead -c 102400 /dev/zero\nkill -9 $$\n",
    ),
    // Counts its stdin, and answers with the count only once its stdin has ended.
    (
        "count.sh",
        "#!/bin/sh\nn=$(wc -c)\necho \"$n\" > DIR/count\nprintf 'Content-Type: text/plain\\n\\n%s' \"$n\"\n",
    ),
];

/// A test's directory: the scripts above in `cgi-bin`, and `outside`, a directory outside the
/// CGI root for what a peer would like a program to load.
struct Site {
    dir: tempfile::TempDir,
}

impl Site {
    fn new() -> Site {
        let dir = scratch();
        fs::create_dir_all(dir.path().join("cgi-bin")).unwrap();
        fs::create_dir_all(dir.path().join("outside")).unwrap();
        for (name, text) in SCRIPTS {
            let text = text.replace("DIR", &dir.path().display().to_string());
            write_executable(&dir.path().join("cgi-bin").join(name), &text);
        }
        Site { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn script(&self, name: &str) -> String {
        self.path("cgi-bin").join(name).display().to_string()
    }

    /// `fcgi serve --app cgi --cgi-root cgi-bin --log-format json EXTRA` on a Unix socket.
    fn serve(&self, extra: &[&str]) -> FcgiServe {
        let root = self.path("cgi-bin").display().to_string();
        let mut args = vec!["--cgi-root", root.as_str(), "--log-format", "json"];
        args.extend_from_slice(extra);
        FcgiServe::start(self.dir.path(), "cgi", "cgi", Transport::Unix, &args)
    }
}

fn write_executable(path: &Path, text: &str) {
    fs::write(path, text).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).unwrap();
}

/// The JSON log lines of `log` that have every one of `fields` (`"name":"value"` pairs, as
/// slog-json writes them).
fn log_lines_with<'a>(log: &'a str, fields: &[(&str, &str)]) -> Vec<&'a str> {
    log.lines()
        .filter(|line| line.starts_with('{'))
        .filter(|line| {
            fields.iter().all(|(name, value)| line.contains(&format!("\"{name}\":{value}")))
        })
        .collect()
}

/// Whether `serve` has a log line with all `fields`, waiting up to 5 s (the log is written by
/// a thread of its own).
fn log_has(serve: &FcgiServe, fields: &[(&str, &str)]) -> bool {
    wait_until(Duration::from_secs(5), || !log_lines_with(&serve.log(), fields).is_empty())
}

// ---------------------------------------------------------------------------------------------
// The environment

/// Builds `outside/preload.so`, a library that creates `outside/preloaded` when loaded; `None`
/// when there is no C compiler.
fn build_preload_library(site: &Site) -> Option<PathBuf> {
    let source = site.path("outside/preload.c");
    let library = site.path("outside/preload.so");
    let marker = site.path("outside/preloaded");
    fs::write(
        &source,
        format!(
            "#include <fcntl.h>\n#include <unistd.h>\n\
             __attribute__((constructor)) static void loaded(void) {{\n\
             int fd = open(\"{}\", O_WRONLY | O_CREAT, 0644);\n\
             if (fd >= 0) close(fd);\n}}\n",
            marker.display()
        ),
    )
    .unwrap();
    let built =
        Command::new("cc").args(["-shared", "-fPIC", "-o"]).arg(&library).arg(&source).status();
    match built {
        Ok(status) if status.success() => Some(library),
        Ok(status) => panic!("cc could not build the preload library: {status}"),
        Err(e) => {
            skip(&format!("no C compiler ({e}): checking only that LD_PRELOAD is not passed on"));
            None
        }
    }
}

#[test]
fn loader_and_shell_startup_params_never_reach_the_program() {
    let site = Site::new();
    let library = build_preload_library(&site);
    let hook = site.path("outside/hook.sh");
    fs::write(&hook, format!("touch '{}'\n", site.path("outside/hooked").display())).unwrap();
    let serve = site.serve(&["--log-level", "debug"]);

    let script = site.script("env.sh");
    let preload = library.as_ref().map_or_else(|| site.path("outside/none.so"), Clone::clone);
    let preload = preload.display().to_string();
    let hook = hook.display().to_string();
    let reply = Client::connect(serve.addr()).simple_request(
        &[
            ("SCRIPT_FILENAME", script.as_str()),
            ("REQUEST_METHOD", "GET"),
            ("LD_PRELOAD", preload.as_str()),
            ("BASH_ENV", hook.as_str()),
            ("PYTHONPATH", "/outside"),
            ("APP_ENV", "production"),
            ("GIT_PROJECT_ROOT", "/srv/git"),
            ("GIT_CONFIG_PARAMETERS", "'core.pager=id'"),
        ],
        b"",
    );
    reply.assert_complete(200);
    let env = reply.body_text();
    // The site's own variables arrive, git http-backend's setup among them.
    assert!(env.contains("APP_ENV=production\n"), "{env}");
    assert!(env.contains("GIT_PROJECT_ROOT=/srv/git\n"), "{env}");
    // What would run code of the peer's choosing does not.
    for name in ["LD_PRELOAD", "BASH_ENV", "PYTHONPATH", "GIT_CONFIG_PARAMETERS"] {
        assert!(!env.contains(&format!("{name}=")), "{name} reached the program:\n{env}");
    }
    assert!(!site.path("outside/hooked").exists(), "bash sourced BASH_ENV from the params");
    if library.is_some() {
        assert!(!site.path("outside/preloaded").exists(), "the program loaded LD_PRELOAD");
    }
    // Logged once, at debug, with the names and their count.
    assert!(log_has(&serve, &[("count", "4")]), "{}", serve.log());
    let log = serve.log();
    let lines = log_lines_with(&log, &[("count", "4")]);
    assert!(lines[0].contains("LD_PRELOAD (loader)") && lines[0].contains("BASH_ENV"), "{lines:?}");
}

// ---------------------------------------------------------------------------------------------
// A gateway without a root

/// Runs `fcgi serve ARGS` expecting it to exit on its own (a refusal at start): its exit status
/// (`None` if it was still running after 10 s, and was then stopped) and what it printed.
fn serve_exit(dir: &Path, args: &[&str]) -> (Option<ExitStatus>, String) {
    let log = dir.join("refused.log");
    let mut command = Command::new(fcgi_bin());
    command.arg("serve").args(args).env_remove("FCGI_WEB_SERVER_ADDRS");
    let mut process = Guarded::spawn("fcgi serve", command, &log);
    let status = process.wait_exit(Duration::from_secs(10));
    drop(process);
    (status, fs::read_to_string(&log).unwrap_or_default())
}

#[test]
fn no_root_on_open_tcp_is_refused_at_start() {
    let dir = scratch();
    let listen = format!("127.0.0.1:{}", free_port());
    let (status, output) = serve_exit(dir.path(), &["--app", "cgi", "--listen", &listen]);
    assert_eq!(status.and_then(|s| s.code()), Some(2), "{output}");
    assert!(output.contains("--cgi-root") && output.contains("--allow"), "{output}");
}

#[test]
fn no_root_starts_with_a_warning_on_a_unix_socket_or_behind_an_allow_list() {
    let site = Site::new();
    let unconfined = [("level", "\"WARN\""), ("cgi_root", "\"none\"")];
    for (transport, extra) in [
        (Transport::Unix, &["--log-format", "json"][..]),
        (Transport::Tcp, &["--log-format", "json", "--allow", "127.0.0.1"][..]),
    ] {
        let name = format!("open-{transport:?}");
        let mut serve = FcgiServe::start(site.dir.path(), &name, "cgi", transport, extra);
        assert!(log_has(&serve, &unconfined), "{transport:?}: {}", serve.log());
        // And it serves: any program, as asked.
        let script = site.script("env.sh");
        let reply = Client::connect(serve.addr())
            .simple_request(&[("SCRIPT_FILENAME", &script), ("REQUEST_METHOD", "GET")], b"");
        reply.assert_complete(200);
        serve.process().signal(libc::SIGTERM);
        assert!(serve.process().wait_exit(Duration::from_secs(10)).is_some());
    }
}

#[test]
fn cgi_root_slash_starts_on_tcp_without_the_warning() {
    let site = Site::new();
    let serve = FcgiServe::start(
        site.dir.path(),
        "slash",
        "cgi",
        Transport::Tcp,
        &["--cgi-root", "/", "--log-format", "json"],
    );
    let script = site.script("env.sh");
    let reply = Client::connect(serve.addr())
        .simple_request(&[("SCRIPT_FILENAME", &script), ("REQUEST_METHOD", "GET")], b"");
    reply.assert_complete(200);
    assert!(
        log_lines_with(&serve.log(), &[("cgi_root", "\"none\"")]).is_empty(),
        "{}",
        serve.log()
    );
}

// ---------------------------------------------------------------------------------------------
// The timeout while the body arrives

/// Whether process `pid`, a child of `parent`, is alive: a zombie (killed, not yet reaped) is not.
fn alive_child(parent: u32, pid: u32) -> bool {
    children_of(parent).iter().any(|&(child, state)| child == pid && state != 'Z')
}

/// Waits for `path` to hold a PID, and returns it.
fn pid_from(path: &Path) -> u32 {
    let mut pid = None;
    let found = wait_until(Duration::from_secs(10), || {
        pid = fs::read_to_string(path).ok().and_then(|t| t.trim().parse().ok());
        pid.is_some()
    });
    assert!(found, "{} never appeared", path.display());
    pid.unwrap()
}

#[test]
fn the_timeout_holds_while_the_body_trickles_in() {
    let site = Site::new();
    let (timeout, grace) = (Duration::from_secs(2), Duration::from_secs(1));
    // What a loaded machine may add to the deadline and the grace.
    let margin = Duration::from_secs(3);
    let mut serve = site.serve(&["--cgi-timeout", "2", "--cgi-kill-grace", "1"]);
    let serve_pid = serve.process().pid();
    let script = site.script("slow-reader.sh");
    let mut client = Client::connect(serve.addr());
    client.set_timeout(scaled(Duration::from_secs(30)));
    let started = Instant::now();
    client.send_begin(1, Role::Responder, true);
    client.send_params(
        1,
        &[
            ("SCRIPT_FILENAME", script.as_str()),
            ("REQUEST_METHOD", "POST"),
            ("CONTENT_LENGTH", "1000"),
        ],
    );
    let pid = pid_from(&site.path("slow-reader.pid"));

    // A few bytes at a time, well past the timeout, for as long as the program lives.
    let mut sent = 0;
    while alive_child(serve_pid, pid) && started.elapsed() < timeout + grace + margin {
        client.send_ok(&frames::stream(StreamKind::Stdin, 1, b"abcd"));
        sent += 4;
        wait_until(Duration::from_millis(250), || !alive_child(serve_pid, pid));
    }
    let killed_after = started.elapsed();
    assert!(
        !alive_child(serve_pid, pid),
        "the program still ran {killed_after:?} after its start, under --cgi-timeout 2, while its \
         body arrived ({sent} bytes so far)"
    );
    assert!(killed_after >= timeout, "stopped before the timeout: {killed_after:?}");

    // The rest of the body: the request, waiting only for its input, ends at once.
    let body_done = Instant::now();
    client.send_ok(&frames::stream(StreamKind::Stdin, 1, &vec![b'z'; 1000 - sent]));
    client.send_ok(&frames::end(StreamKind::Stdin, 1));
    let reply: Reply = client.read_reply(1);
    assert!(
        body_done.elapsed() < margin,
        "the request ended {:?} after its body",
        body_done.elapsed()
    );
    assert!(reply.stdout_ended, "{reply:?}");
    // The log is written by a thread of its own: its line may follow the reply.
    let logged =
        wait_until(Duration::from_secs(5), || log_has(&serve, &[("stopped_by", "\"watchdog\"")]));
    assert!(logged, "{}", serve.log());
    assert!(
        wait_until(Duration::from_secs(5), || children_of(serve_pid).is_empty()),
        "children left: {:?}",
        children_of(serve_pid)
    );
}

// ---------------------------------------------------------------------------------------------
// A body that cannot be stored whole

#[test]
fn a_body_over_max_body_kills_the_program_instead_of_ending_its_stdin() {
    let site = Site::new();
    let mut serve = site.serve(&["--max-body", "100000"]);
    let script = site.script("count.sh");
    let body = vec![b'b'; 1_000_000];
    let reply = Client::connect(serve.addr()).simple_request(
        &[
            ("SCRIPT_FILENAME", script.as_str()),
            ("REQUEST_METHOD", "POST"),
            ("CONTENT_LENGTH", "1000000"),
        ],
        &body,
    );
    reply.assert_complete(413);
    assert!(!site.path("count").exists(), "the program took a truncated body for whole");
    let serve_pid = serve.process().pid();
    assert!(wait_until(Duration::from_secs(5), || children_of(serve_pid).is_empty()));
}

/// A small tmpfs mounted with `options` for a test (`ro` for a directory nobody may write to,
/// root included, who ignores permission bits; `size=...` for a disk that fills up), when the
/// test runs as root and may mount. Without root, a read-only directory is one without write
/// permission, and a small disk cannot be had. Unmounted (or made writable) when dropped.
struct TestMount {
    path: PathBuf,
    mounted: bool,
}

impl TestMount {
    fn new(path: PathBuf, options: &str) -> Option<TestMount> {
        fs::create_dir_all(&path).unwrap();
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            if options.contains("ro") {
                fs::set_permissions(&path, fs::Permissions::from_mode(0o555)).unwrap();
                return Some(TestMount { path, mounted: false });
            }
            return None;
        }
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", options, "tmpfs"])
            .arg(&path)
            .status()
            .is_ok_and(|s| s.success());
        mounted.then_some(TestMount { path, mounted })
    }
}

impl Drop for TestMount {
    fn drop(&mut self) {
        if self.mounted {
            let _ = Command::new("umount").arg(&self.path).status();
        } else {
            let _ = fs::set_permissions(&self.path, fs::Permissions::from_mode(0o755));
        }
    }
}

#[test]
fn a_spool_dir_that_cannot_hold_bodies_is_refused_at_start() {
    let dir = scratch();
    let sock = format!("unix:{}", dir.path().join("s.sock").display());
    let serve = |spool: &Path| {
        let spool = spool.display().to_string();
        let args = ["--app", "hello", "--listen", &sock, "--spool-dir", &spool];
        serve_exit(dir.path(), &args)
    };
    let (status, output) = serve(&dir.path().join("missing"));
    assert_eq!(status.and_then(|s| s.code()), Some(2), "{output}");
    assert!(output.contains("--spool-dir"), "{output}");

    let file = dir.path().join("a-file");
    fs::write(&file, "").unwrap();
    let (status, output) = serve(&file);
    assert_eq!(status.and_then(|s| s.code()), Some(2), "{output}");
    assert!(output.contains("--spool-dir") && output.contains("not a directory"), "{output}");

    let Some(read_only) = TestMount::new(dir.path().join("ro"), "ro,size=64k") else {
        return skip("the read-only case: cannot mount a read-only tmpfs (not root)");
    };
    let (status, output) = serve(&read_only.path);
    assert_eq!(status.and_then(|s| s.code()), Some(2), "{output}");
    assert!(output.contains("--spool-dir") && output.contains("not writable"), "{output}");
}

#[test]
fn a_full_spool_disk_kills_the_program_and_answers_an_error() {
    let site = Site::new();
    let Some(small) = TestMount::new(site.path("spool"), "size=256k") else {
        return skip("a full disk needs a tiny tmpfs, and mounting one needs root");
    };
    let spool = small.path.display().to_string();
    let mut serve = site.serve(&["--spool-dir", &spool, "--spool-memory", "65536"]);
    let script = site.script("count.sh");
    let body = vec![b'b'; 2_000_000];
    let reply = Client::connect(serve.addr()).simple_request(
        &[
            ("SCRIPT_FILENAME", script.as_str()),
            ("REQUEST_METHOD", "POST"),
            ("CONTENT_LENGTH", "2000000"),
        ],
        &body,
    );
    assert!(!site.path("count").exists(), "the program took a truncated body for whole");
    assert!(reply.status >= 500, "a body the server could not store was answered {}", reply.status);
    let serve_pid = serve.process().pid();
    assert!(wait_until(Duration::from_secs(5), || children_of(serve_pid).is_empty()));
}

// ---------------------------------------------------------------------------------------------
// A failure after the header

#[test]
fn a_program_that_dies_mid_output_cuts_the_response_short() {
    let site = Site::new();
    let serve = site.serve(&[]);
    let mut client = Client::connect(serve.addr());
    let script = site.script("dies.sh");
    let params = [("SCRIPT_FILENAME", script.as_str()), ("REQUEST_URI", "/cgi-bin/dies.sh")];
    client.send_ok(&frames::request(1, Role::Responder, true, &params, b""));
    // 100 KiB of body went out, then no END_REQUEST: a record no client accepts, and the end.
    let error = client.try_read_reply(1).expect_err("a response cut short is not complete");
    assert_eq!(error.kind(), std::io::ErrorKind::InvalidData, "{error}");
    assert!(
        log_has(&serve, &[("msg", "\"handler failed\""), ("cut_short", "true")]),
        "{}",
        serve.log()
    );
    // Others are served as before.
    let script = site.script("count.sh");
    let mut client = Client::connect(serve.addr());
    let reply = client.simple_request(&[("SCRIPT_FILENAME", script.as_str())], b"abc");
    reply.assert_complete(200);
}
