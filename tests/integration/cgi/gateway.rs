//! End-to-end tests of the CGI gateway: `fcgi serve --app cgi` as a real process, a real nginx in
//! front of it (`nginx/fcgi-cgi.conf`, `nginx/fcgi-cgi-git.conf`), and real CGI programs (shell,
//! Python, git's http-backend) written into each test's own temporary directory.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use fcgi_codec::Role;
use fcgi_tests::addr::Transport;
use fcgi_tests::data::{assert_same_bytes, pattern};
use fcgi_tests::http::HttpStream;
use fcgi_tests::nginx::{scratch, Nginx, Site};
use fcgi_tests::process::{children_of, process_exists, wait_until, FcgiServe};
use fcgi_tests::raw::{frames, Client};
use fcgi_tests::settings::scaled;

const MIB: usize = 1024 * 1024;

/// The CGI programs every test gets in `www/cgi-bin`, by name.
const SCRIPTS: &[(&str, &str)] = &[
    (
        "hello.sh",
        "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\n'\n\
         echo \"sh $REQUEST_METHOD q=$QUERY_STRING pi=$PATH_INFO\"\n",
    ),
    ("echo.sh", "#!/bin/sh\nprintf 'Content-Type: application/octet-stream\\n\\n'\nexec cat\n"),
    (
        "hello.py",
        "#!/usr/bin/python3\nimport os, sys\n\
         n = int(os.environ.get('CONTENT_LENGTH') or 0)\n\
         body = sys.stdin.buffer.read(n) if n else b''\n\
         sys.stdout.write('Content-Type: text/plain\\r\\n\\r\\n')\n\
         sys.stdout.write('py %s q=%s len=%d body=%s' % (os.environ['REQUEST_METHOD'], \
         os.environ.get('QUERY_STRING', ''), len(body), body[:40].decode('latin-1')))\n",
    ),
    (
        "status.sh",
        "#!/bin/sh\nprintf 'Status: 404 Not Found\\nContent-Type: text/plain\\nX-Cgi: yes\\n\\nnot here'\n",
    ),
    ("client-redirect.sh", "#!/bin/sh\nprintf 'Location: https://example.com/elsewhere\\n\\n'\n"),
    ("local-redirect.sh", "#!/bin/sh\nprintf 'Location: /cgi-bin/hello.sh/info?from=redirect\\n\\n'\n"),
    ("loop.sh", "#!/bin/sh\nprintf 'Location: /cgi-bin/loop.sh\\n\\n'\n"),
    ("nph-status.sh", "#!/bin/sh\nprintf 'HTTP/1.1 201 Created\\r\\nContent-Type: text/plain\\r\\n\\r\\nmade'\n"),
    ("no-header.sh", "#!/bin/sh\necho 'no-header.sh failed early' >&2\nexit 3\n"),
    ("garbage.sh", "#!/bin/sh\nprintf 'this is not a header\\n\\nbody'\n"),
    (
        "stderr.sh",
        "#!/bin/sh\necho 'first complaint' >&2\nprintf 'Content-Type: text/plain\\n\\n'\n\
         echo body\necho 'second complaint' >&2\n",
    ),
    ("hang.sh", "#!/bin/sh\necho $$ > hang.pid\nexec sleep 30\n"),
    ("stubborn.sh", "#!/bin/sh\ntrap '' TERM\necho $$ > stubborn.pid\nsleep 30\nsleep 30\n"),
    (
        "late.sh",
        "#!/bin/sh\necho $$ > late.pid\nprintf 'Content-Type: text/plain\\n\\npartial\\n'\nexec sleep 30\n",
    ),
    (
        "stream.sh",
        "#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\nfirst\\n'\nsleep 1.5\necho second\n",
    ),
    ("sleep.sh", "#!/bin/sh\nsleep 0.1\nprintf 'Content-Type: text/plain\\n\\nslept\\n'\n"),
    (
        "big.sh",
        "#!/bin/sh\nprintf 'Content-Type: application/octet-stream\\n\\n'\nexec head -c 10485760 /dev/zero\n",
    ),
    ("env.sh", "#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\n'\nexec env\n"),
    ("argv.sh", "#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\n'\nprintf '[%s]' \"$@\"\n"),
    (
        "fds.py",
        "#!/usr/bin/python3\nimport os\nprint('Content-Type: text/plain\\n')\n\
         listing = os.open('/proc/self/fd', os.O_RDONLY | os.O_DIRECTORY)\n\
         for fd in sorted(int(n) for n in os.listdir(listing)):\n\
         \x20   if fd != listing:\n\
         \x20       print(fd, os.readlink('/proc/self/fd/%d' % fd))\n",
    ),
];

/// A test's site: the scripts above in `www/cgi-bin` (plus a non-executable file, a directory
/// and a symlink out of the root), `fcgi serve --app cgi --cgi-root www/cgi-bin` and nginx with
/// `fcgi-cgi.conf` in front.
struct CgiSite {
    dir: tempfile::TempDir,
    fcgi: FcgiServe,
    nginx: Nginx,
}

impl CgiSite {
    fn start(extra: &[&str], env: &[(&str, &str)]) -> CgiSite {
        let dir = scratch();
        let www = dir.path().join("www");
        let bin = www.join("cgi-bin");
        fs::create_dir_all(bin.join("subdir")).unwrap();
        for (name, text) in SCRIPTS {
            write_executable(&bin.join(name), text);
        }
        fs::write(bin.join("plain.sh"), "#!/bin/sh\necho nope\n").unwrap();
        fs::create_dir_all(dir.path().join("outside")).unwrap();
        write_executable(
            &dir.path().join("outside/evil.sh"),
            "#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\nescaped'\n",
        );
        symlink(dir.path().join("outside/evil.sh"), bin.join("link-out.sh")).unwrap();
        let bin_arg = bin.to_str().unwrap().to_owned();
        let mut args = vec!["--cgi-root", bin_arg.as_str()];
        args.extend_from_slice(extra);
        let fcgi = FcgiServe::start_with_env(dir.path(), "cgi", "cgi", Transport::Unix, &args, env);
        let socket = fcgi.addr().socket_path().unwrap().display().to_string();
        let root = www.display().to_string();
        let nginx = Nginx::start(
            dir.path(),
            Site::Cgi,
            &[("FCGI_SOCKET", socket.as_str()), ("DOCUMENT_ROOT", root.as_str())],
        );
        CgiSite { dir, fcgi, nginx }
    }

    fn bin(&self) -> PathBuf {
        self.dir.path().join("www/cgi-bin")
    }

    /// `SCRIPT_FILENAME` for a direct FastCGI request.
    fn params(&self, script: &str) -> Vec<(&'static str, String)> {
        vec![
            ("SCRIPT_FILENAME", script.to_owned()),
            ("REQUEST_METHOD", "GET".to_owned()),
            ("SCRIPT_NAME", "/direct".to_owned()),
        ]
    }

    fn raw_get(&self, script_filename: &str) -> fcgi_tests::raw::Reply {
        let params = self.params(script_filename);
        let pairs: Vec<(&str, &str)> = params.iter().map(|(n, v)| (*n, v.as_str())).collect();
        Client::connect(self.fcgi.addr()).simple_request(&pairs, b"")
    }

    /// Waits for the serve log to contain `text` (it is written by a thread of its own).
    fn log_shows(&self, text: &str) -> bool {
        wait_until(Duration::from_secs(5), || self.fcgi.log().contains(text))
    }

    /// Waits for `file` (a PID a script wrote) and returns the PID.
    fn pid_from(&self, file: &str) -> u32 {
        let path = self.bin().join(file);
        let mut pid = None;
        assert!(
            wait_until(Duration::from_secs(10), || {
                pid = fs::read_to_string(&path).ok().and_then(|t| t.trim().parse().ok());
                pid.is_some()
            }),
            "{file} never appeared"
        );
        pid.unwrap()
    }

    /// Asserts that fcgi serve has no child left, zombie or not, within 5 s.
    fn assert_no_children(&mut self) {
        let serve = self.fcgi.process().pid();
        let clean = wait_until(Duration::from_secs(5), || children_of(serve).is_empty());
        assert!(clean, "children of fcgi serve left: {:?}", children_of(serve));
    }
}

fn write_executable(path: &Path, text: &str) {
    fs::write(path, text).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn shell_and_python_scripts_answer_get_and_post() {
    let site = CgiSite::start(&[], &[]);
    let r = site.nginx.get("/cgi-bin/hello.sh/extra/path?x=1").unwrap();
    assert_eq!(r.status, 200, "{}", r.body_text());
    assert_eq!(r.header("Content-Type"), Some("text/plain"));
    assert_eq!(r.body_text(), "sh GET q=x=1 pi=/extra/path\n");

    let r = site.nginx.post("/cgi-bin/echo.sh", "text/plain", b"posted to sh").unwrap();
    assert_eq!((r.status, r.body.as_slice()), (200, &b"posted to sh"[..]));

    let r = site.nginx.get("/cgi-bin/hello.py?y=2").unwrap();
    assert_eq!((r.status, r.body_text().as_str()), (200, "py GET q=y=2 len=0 body="));
    let r = site.nginx.post("/cgi-bin/hello.py?z=3", "text/plain", b"posted to python").unwrap();
    assert_eq!(r.body_text(), "py POST q=z=3 len=16 body=posted to python");
}

#[test]
fn large_bodies_stream_both_ways() {
    let mut site = CgiSite::start(&[], &[]);
    let r = site.nginx.get("/cgi-bin/big.sh").unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len(), 10 * MIB);
    assert!(r.body.iter().all(|&b| b == 0));

    let body = pattern(8 * MIB, 7);
    let r = site.nginx.post("/cgi-bin/echo.sh", "application/octet-stream", &body).unwrap();
    assert_eq!(r.status, 200);
    assert_same_bytes(&r.body, &body, "8 MiB through cat");
    let rss = site.fcgi.process().peak_rss_kib();
    assert!(rss < 64 * 1024, "fcgi serve peaked at {rss} KiB for 10 MiB out and 8 MiB in");
}

#[test]
fn status_headers_and_client_redirects_pass_through() {
    let site = CgiSite::start(&[], &[]);
    let r = site.nginx.get("/cgi-bin/status.sh").unwrap();
    assert_eq!((r.status, r.body_text().as_str()), (404, "not here"));
    assert_eq!(r.header("X-Cgi"), Some("yes"));
    assert_eq!(r.header("Status"), None, "Status is not passed on as a header");

    let r = site.nginx.get("/cgi-bin/client-redirect.sh").unwrap();
    assert_eq!(r.status, 302);
    assert_eq!(r.header("Location"), Some("https://example.com/elsewhere"));

    let r = site.nginx.get("/cgi-bin/nph-status.sh").unwrap();
    assert_eq!((r.status, r.body_text().as_str()), (201, "made"));
}

#[test]
fn local_redirects_are_followed_and_loops_stopped() {
    let site = CgiSite::start(&[], &[]);
    let r = site.nginx.post("/cgi-bin/local-redirect.sh", "text/plain", b"ignored").unwrap();
    assert_eq!(r.status, 200, "{}", r.body_text());
    assert_eq!(r.body_text(), "sh GET q=from=redirect pi=/info\n");

    let r = site.nginx.get("/cgi-bin/loop.sh").unwrap();
    assert_eq!(r.status, 500);
    assert!(site.log_shows("one too many"), "{}", site.fcgi.log());
}

#[test]
fn programs_without_a_valid_header_get_502_and_their_stderr_is_logged() {
    let site = CgiSite::start(&[], &[]);
    let r = site.nginx.get("/cgi-bin/no-header.sh").unwrap();
    assert_eq!(r.status, 502);
    assert!(site.log_shows("no-header.sh failed early"), "{}", site.fcgi.log());
    assert!(site.log_shows("exited without a header"), "{}", site.fcgi.log());
    assert!(site.fcgi.log().contains("exit status: 3"), "{}", site.fcgi.log());

    let r = site.nginx.get("/cgi-bin/garbage.sh").unwrap();
    assert_eq!(r.status, 502);
    assert!(site.log_shows("invalid header block"), "{}", site.fcgi.log());
}

#[test]
fn stderr_goes_to_nginx_and_to_the_log_line_by_line() {
    let site = CgiSite::start(&[], &[]);
    let r = site.nginx.get("/cgi-bin/stderr.sh").unwrap();
    assert_eq!((r.status, r.body_text().as_str()), (200, "body\n"));
    for line in ["first complaint", "second complaint"] {
        assert!(site.log_shows(line), "{line} not in: {}", site.fcgi.log());
        let logged = site.fcgi.log();
        let entry = logged.lines().find(|l| l.contains(line)).unwrap();
        assert!(entry.contains("/cgi-bin/stderr.sh"), "no script name in {entry:?}");
        assert!(
            wait_until(Duration::from_secs(5), || site.nginx.error_log().contains(line)),
            "nginx's error log lacks {line}: {}",
            site.nginx.error_log()
        );
    }
}

#[test]
fn paths_outside_the_root_and_unrunnable_files_are_refused() {
    let site = CgiSite::start(&[], &[]);
    // Through nginx.
    for (path, status) in [
        ("/cgi-bin/link-out.sh", 403),
        ("/cgi-bin/subdir", 403),
        ("/cgi-bin/plain.sh", 403),
        ("/cgi-bin/missing.sh", 404),
    ] {
        let r = site.nginx.get(path).unwrap();
        assert_eq!(r.status, status, "{path}: {}", r.body_text());
        assert!(!r.body_text().contains("escaped"));
    }
    // nginx normalizes `..` away, so a web server that does not is played directly.
    let bin = site.bin();
    let dotdot = format!("{}/../../outside/evil.sh", bin.display());
    let reply = site.raw_get(&dotdot);
    reply.assert_complete(403);
    assert!(site.log_shows("outside the CGI root"), "{}", site.fcgi.log());
    let reply = site.raw_get(&format!("{}/plain.sh", bin.display()));
    reply.assert_complete(403);
    assert!(site.log_shows("is not executable"), "{}", site.fcgi.log());
    let reply = site.raw_get(&format!("{}/subdir", bin.display()));
    reply.assert_complete(403);
    assert!(site.log_shows("is not a regular file"), "{}", site.fcgi.log());
}

#[test]
fn the_environment_is_the_params_and_the_allow_list_only() {
    let site = CgiSite::start(
        &["--pass-env", "CGI_TEST_PASSED", "--pass-env", "PATH"],
        &[("CGI_TEST_PASSED", "passed-value"), ("CGI_TEST_SECRET", "secret-value")],
    );
    let r = site.nginx.get("/cgi-bin/env.sh?q=1").unwrap();
    let env = r.body_text();
    assert!(env.contains("CGI_TEST_PASSED=passed-value\n"), "{env}");
    assert!(env.contains("QUERY_STRING=q=1\n"), "{env}");
    assert!(env.contains("GATEWAY_INTERFACE=CGI/1.1\n"), "{env}");
    assert!(env.contains("HTTP_HOST=localhost\n"), "{env}");
    assert!(!env.contains("secret-value"), "our environment leaked: {env}");
    assert!(!env.contains("CARGO"), "our environment leaked: {env}");
}

#[test]
fn programs_inherit_no_descriptor_but_stdin_stdout_and_stderr() {
    // fcgi serve inherits a descriptor without close-on-exec, as from a careless supervisor:
    // the gateway must not hand it on.
    let stray = fs::File::open("/dev/null").unwrap();
    let fd = std::os::fd::AsRawFd::as_raw_fd(&stray);
    // SAFETY: fcntl on a descriptor this test owns; clearing FD_CLOEXEC only lets it be
    // inherited by the processes started while it is open.
    unsafe { libc::fcntl(fd, libc::F_SETFD, 0) };
    let site = CgiSite::start(&[], &[]);
    drop(stray);
    let r =
        site.nginx.post("/cgi-bin/fds.py", "text/plain", b"a body, so stdin is a pipe").unwrap();
    let listing = r.body_text();
    let fds: Vec<&str> = listing.lines().filter_map(|l| l.split(' ').next()).collect();
    assert_eq!(fds, ["0", "1", "2"], "descriptors of the program:\n{listing}");
}

#[test]
fn query_argv_only_when_asked() {
    let site = CgiSite::start(&[], &[]);
    assert_eq!(site.nginx.get("/cgi-bin/argv.sh?a+b%20c").unwrap().body_text(), "[]");
    let site = CgiSite::start(&["--cgi-argv"], &[]);
    assert_eq!(site.nginx.get("/cgi-bin/argv.sh?a+b%20c").unwrap().body_text(), "[a][b c]");
    assert_eq!(site.nginx.get("/cgi-bin/argv.sh?a=b").unwrap().body_text(), "[]");
}

#[test]
fn a_program_past_the_timeout_is_stopped_and_answered_504() {
    let mut site = CgiSite::start(&["--cgi-timeout", "1", "--cgi-kill-grace", "1"], &[]);
    let started = Instant::now();
    let r = site.nginx.get("/cgi-bin/hang.sh").unwrap();
    assert_eq!(r.status, 504, "{}", r.body_text());
    assert!(started.elapsed() < scaled(Duration::from_secs(10)), "took {:?}", started.elapsed());
    assert!(!process_exists(site.pid_from("hang.pid")), "hang.sh still runs");

    // One that ignores SIGTERM gets SIGKILL after the grace.
    let started = Instant::now();
    let r = site.nginx.get("/cgi-bin/stubborn.sh").unwrap();
    let took = started.elapsed();
    assert_eq!(r.status, 504, "{}", r.body_text());
    assert!(
        took >= Duration::from_millis(1900) && took < scaled(Duration::from_secs(10)),
        "{took:?}"
    );
    assert!(!process_exists(site.pid_from("stubborn.pid")), "stubborn.sh still runs");
    assert!(site.log_shows("ran past the timeout"), "{}", site.fcgi.log());

    // One that sent its header first: stopped all the same, and its response is cut short so
    // that nginx does not pass it on as complete (nginx had buffered it: the client gets no
    // response at all).
    let r = site.nginx.get("/cgi-bin/late.sh");
    assert!(r.as_ref().map_or(true, |r| r.status != 200), "passed on as whole: {r:?}");
    assert!(!process_exists(site.pid_from("late.pid")), "late.sh still runs");
    assert!(site.log_shows("failed after its response began"), "{}", site.fcgi.log());
    site.assert_no_children();
}

#[test]
fn output_is_streamed_as_the_program_writes_it() {
    let site = CgiSite::start(&[], &[]);
    let script = site.bin().join("stream.sh").display().to_string();
    let mut client = Client::connect(site.fcgi.addr());
    let started = Instant::now();
    client.send_begin(1, Role::Responder, true);
    client.send_params(1, &[("SCRIPT_FILENAME", script.as_str()), ("REQUEST_METHOD", "GET")]);
    client.send_ok(&frames::end(fcgi_codec::StreamKind::Stdin, 1));
    let mut stdout = Vec::new();
    while !stdout.ends_with(b"first\n") {
        match client.expect_frame().kind {
            fcgi_tests::raw::FrameKind::Stdout(bytes) if !bytes.is_empty() => {
                stdout.extend_from_slice(&bytes)
            }
            other => panic!("before the first line: {other:?}"),
        }
    }
    let first = started.elapsed();
    let reply = client.read_reply(1);
    let all = started.elapsed();
    assert_eq!(reply.body_text(), "second\n", "the rest, after the first line");
    assert!(first < Duration::from_millis(1200), "the first line took {first:?}");
    assert!(all >= Duration::from_millis(1500), "the whole response took {all:?}");
}

#[test]
fn a_vanished_client_stops_the_program() {
    let mut site = CgiSite::start(&[], &[]);
    let mut stream = HttpStream::connect(site.nginx.port()).unwrap();
    stream.send_head("GET", "/cgi-bin/hang.sh", None, None).unwrap();
    let pid = site.pid_from("hang.pid");
    assert!(process_exists(pid));
    drop(stream);
    assert!(
        wait_until(Duration::from_secs(10), || !process_exists(pid)),
        "hang.sh ({pid}) still runs after its client went away"
    );
    assert!(site.log_shows("request aborted"), "{}", site.fcgi.log());
    site.assert_no_children();
}

#[test]
fn abort_request_stops_the_program() {
    let mut site = CgiSite::start(&[], &[]);
    let script = site.bin().join("hang.sh").display().to_string();
    let mut client = Client::connect(site.fcgi.addr());
    client.send_begin(1, Role::Responder, true);
    client.send_params(1, &[("SCRIPT_FILENAME", script.as_str()), ("REQUEST_METHOD", "GET")]);
    client.send_ok(&frames::end(fcgi_codec::StreamKind::Stdin, 1));
    let pid = site.pid_from("hang.pid");
    client.send_abort(1);
    let reply = client.read_reply(1);
    assert_eq!(reply.end.protocol_status, fcgi_codec::ProtocolStatus::RequestComplete);
    assert!(
        wait_until(Duration::from_secs(10), || !process_exists(pid)),
        "hang.sh ({pid}) still runs after FCGI_ABORT_REQUEST"
    );
    site.assert_no_children();
}

#[test]
fn two_hundred_parallel_requests_all_succeed_and_leave_no_child() {
    let mut site = CgiSite::start(&["--max-threads", "200"], &[]);
    let port = site.nginx.port();
    let started = Instant::now();
    let threads: Vec<_> = (0..200)
        .map(|i| {
            std::thread::spawn(move || {
                let r = fcgi_tests::http::get(port, &format!("/cgi-bin/sleep.sh?n={i}"))
                    .unwrap_or_else(|e| panic!("request {i}: {e}"));
                (r.status, r.body)
            })
        })
        .collect();
    for (i, thread) in threads.into_iter().enumerate() {
        let (status, body) = thread.join().unwrap();
        assert_eq!((status, body.as_slice()), (200, &b"slept\n"[..]), "request {i}");
    }
    let took = started.elapsed();
    eprintln!("200 parallel requests to a 100 ms script took {took:?}");
    assert!(took < scaled(Duration::from_secs(20)), "{took:?}");
    site.assert_no_children();
    let serve = site.fcgi.process().pid();
    let zombies: Vec<_> = children_of(serve).into_iter().filter(|(_, s)| *s == 'Z').collect();
    assert!(zombies.is_empty(), "zombies: {zombies:?}");
}

// --- git over HTTP --------------------------------------------------------------------------

/// Runs git with a clean configuration in `dir`; panics unless it succeeds; returns stdout.
fn git(dir: &Path, home: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("HOME", home)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_AUTHOR_NAME", "Test")
        .env("GIT_AUTHOR_EMAIL", "test@example.com")
        .env("GIT_COMMITTER_NAME", "Test")
        .env("GIT_COMMITTER_EMAIL", "test@example.com")
        .stdin(Stdio::null())
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// A bare repository with `commits` commits on main, made with `git fast-import`.
fn make_repo(repo: &Path, home: &Path, commits: usize) {
    git(
        repo.parent().unwrap(),
        home,
        &["init", "-q", "--bare", "-b", "main", repo.to_str().unwrap()],
    );
    let mut stream = Vec::new();
    for i in 1..=commits {
        let message = format!("commit {i}\n");
        let content = format!("line {i}\n{}", "x".repeat(i % 97));
        write!(stream, "commit refs/heads/main\nmark :{i}\n").unwrap();
        writeln!(stream, "committer Test <test@example.com> {} +0000", 1_700_000_000 + i).unwrap();
        write!(stream, "data {}\n{message}", message.len()).unwrap();
        if i > 1 {
            writeln!(stream, "from :{}", i - 1).unwrap();
        }
        write!(stream, "M 644 inline file-{}.txt\ndata {}\n{content}\n", i % 50, content.len())
            .unwrap();
    }
    let mut child = Command::new("git")
        .args(["fast-import", "--quiet"])
        .current_dir(repo)
        .env("HOME", home)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .stdin(Stdio::piped())
        .spawn()
        .expect("git fast-import");
    child.stdin.take().unwrap().write_all(&stream).unwrap();
    assert!(child.wait().unwrap().success(), "git fast-import failed");
    git(repo, home, &["config", "http.receivepack", "true"]);
}

#[test]
fn git_clone_and_push_over_http_through_git_http_backend() {
    let dir = scratch();
    let home = dir.path().join("home");
    let projects = dir.path().join("projects");
    fs::create_dir_all(&home).unwrap();
    fs::create_dir_all(&projects).unwrap();
    let repo = projects.join("repo.git");
    let started = Instant::now();
    make_repo(&repo, &home, 1000);
    eprintln!("1,000-commit repository made in {:?}", started.elapsed());

    let projects_str = projects.to_str().unwrap();
    let fcgi = FcgiServe::start_with_env(
        dir.path(),
        "git",
        "cgi",
        Transport::Unix,
        &["--cgi-root", "/usr/lib/git-core", "--pass-env", "GIT_PROJECT_ROOT"],
        &[("GIT_PROJECT_ROOT", projects_str)],
    );
    let socket = fcgi.addr().socket_path().unwrap().display().to_string();
    let nginx = Nginx::start(dir.path(), Site::CgiGit, &[("FCGI_SOCKET", socket.as_str())]);
    let url = format!("http://127.0.0.1:{}/git/repo.git", nginx.port());

    let clone = dir.path().join("clone");
    git(dir.path(), &home, &["clone", "-q", &url, clone.to_str().unwrap()]);
    git(&clone, &home, &["fsck", "--full", "--strict"]);
    let served_head = git(&repo, &home, &["rev-parse", "main"]);
    assert_eq!(git(&clone, &home, &["rev-parse", "HEAD"]), served_head);
    assert_eq!(git(&clone, &home, &["rev-list", "--count", "HEAD"]), "1000");

    // Push a commit with a file large enough for a multi-record, chunked upload.
    fs::write(clone.join("pushed.bin"), pattern(3 * MIB, 99)).unwrap();
    git(&clone, &home, &["add", "pushed.bin"]);
    git(&clone, &home, &["commit", "-q", "-m", "pushed over HTTP"]);
    git(&clone, &home, &["push", "-q", "origin", "main"]);
    let pushed = git(&clone, &home, &["rev-parse", "HEAD"]);
    assert_eq!(git(&repo, &home, &["rev-parse", "main"]), pushed);
    git(&repo, &home, &["fsck", "--full", "--strict"]);
    assert_eq!(git(&repo, &home, &["rev-list", "--count", "main"]), "1001");
    assert!(!fcgi.log().contains("answered 50"), "{}", fcgi.log());
}
