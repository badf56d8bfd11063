//! A server as an application writes one with `Server::builder()` and nothing more (the
//! `fcgi-builder-app` binary, a real process): SIGTERM drains it and a second signal stops it
//! at once, an idle one stops promptly, access lines reach standard error with no logger
//! given, a bind error is printed by `main` as a sentence, and a response its handler fails
//! after sending its header reaches `fcgi request` and fcgi-client as that.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use fcgi_client::{Connection, Ending, Error, Request};
use fcgi_tests::addr::Addr;
use fcgi_tests::nginx::scratch;
use fcgi_tests::process::{fcgi_bin, wait_until, Guarded};

/// The app on a socket in `dir`, listening, its output going to `dir/app.log`.
struct App {
    process: Guarded,
    socket: PathBuf,
    log: PathBuf,
}

impl App {
    fn start(dir: &Path, extra: &[&str]) -> App {
        App::start_with(dir, extra, Command::new(env!("CARGO_BIN_EXE_fcgi-builder-app")))
    }

    fn start_with(dir: &Path, extra: &[&str], mut command: Command) -> App {
        let socket = dir.join("app.sock");
        let log = dir.join("app.log");
        command.arg(&socket).args(extra);
        let process = Guarded::spawn("fcgi-builder-app", command, &log);
        let addr = Addr::Unix(socket.clone());
        assert!(wait_until(Duration::from_secs(10), || addr.accepts()), "it never listened");
        App { process, socket, log }
    }

    fn client_addr(&self) -> fcgi_client::Address {
        format!("unix:{}", self.socket.display()).parse().expect("a client address")
    }

    fn output(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `SOCKET` with `suffix`: the `/hold` handler's files.
    fn sibling(&self, suffix: &str) -> PathBuf {
        let mut path = self.socket.as_os_str().to_owned();
        path.push(suffix);
        PathBuf::from(path)
    }

    /// Sends `/hold` from another thread and waits until its handler runs; the thread gives
    /// back how the request ended.
    fn hold(&self) -> std::thread::JoinHandle<Result<(u16, Vec<u8>), Error>> {
        let addr = self.client_addr();
        let held = std::thread::spawn(move || {
            let mut conn = Connection::connect(&addr)?;
            let reply = conn.request(Request::new().param("SCRIPT_NAME", "/hold"))?;
            let reply = reply.into_reply()?;
            Ok((reply.status(), reply.body))
        });
        let running = self.sibling(".running");
        assert!(wait_until(Duration::from_secs(10), || running.exists()), "/hold never ran");
        held
    }
}

#[test]
fn term_lets_a_running_request_finish_then_exits_and_removes_the_socket() {
    let dir = scratch();
    let mut app = App::start(dir.path(), &[]);
    let held = app.hold();
    app.process.signal(libc::SIGTERM);
    // Draining: the socket file goes at once, the request keeps running.
    assert!(wait_until(Duration::from_secs(5), || !app.socket.exists()), "{}", app.output());
    assert!(app.process.is_running(), "it waits for the running request: {}", app.output());
    fs::write(app.sibling(".release"), "").unwrap();
    let (status, body) = held.join().unwrap().expect("the running request completes");
    assert_eq!((status, body.as_slice()), (200, b"released".as_slice()));
    let exit = app.process.wait_exit(Duration::from_secs(10)).expect("it exits once drained");
    assert!(exit.success(), "{exit:?}: {}", app.output());
    assert!(app.output().contains("served 1 requests, 0 unfinished"), "{}", app.output());
}

#[test]
fn a_signal_after_term_stops_at_once() {
    for second in [libc::SIGTERM, libc::SIGINT] {
        let dir = scratch();
        let mut app = App::start(dir.path(), &[]);
        let held = app.hold();
        app.process.signal(libc::SIGTERM);
        assert!(wait_until(Duration::from_secs(5), || !app.socket.exists()), "{}", app.output());
        app.process.signal(second);
        // `/hold` waits 10 s for a release that never comes; the stop does not.
        let exit = app.process.wait_exit(Duration::from_secs(5)).expect("it stops at once");
        assert!(exit.success(), "{exit:?}: {}", app.output());
        assert!(app.output().contains("served 0 requests, 1 unfinished"), "{}", app.output());
        let cut = held.join().unwrap();
        assert!(cut.is_err(), "signal {second}: the held request is not answered: {cut:?}");
        // The fallback logger warns of the fast stop.
        assert!(app.output().contains("fcgi-server WARN: stopping at once"), "{}", app.output());
    }
}

#[test]
fn a_signal_ignored_when_the_server_starts_stays_ignored() {
    use std::os::unix::process::CommandExt as _;

    let dir = scratch();
    let mut command = Command::new(env!("CARGO_BIN_EXE_fcgi-builder-app"));
    // As a shell starts a background job: INT ignored.
    // SAFETY: signal(2) is async-signal-safe, and the child runs nothing else before exec.
    unsafe {
        command.pre_exec(|| {
            libc::signal(libc::SIGINT, libc::SIG_IGN);
            Ok(())
        });
    }
    let mut app = App::start_with(dir.path(), &[], command);
    let held = app.hold();
    // INT is pending before TERM, and delivered first: if it counted, TERM would be the
    // second signal and cut the held request short.
    app.process.signal(libc::SIGINT);
    app.process.signal(libc::SIGTERM);
    assert!(wait_until(Duration::from_secs(5), || !app.socket.exists()), "{}", app.output());
    fs::write(app.sibling(".release"), "").unwrap();
    let (status, body) = held.join().unwrap().expect("TERM drained: the request completes");
    assert_eq!((status, body.as_slice()), (200, b"released".as_slice()));
    let exit = app.process.wait_exit(Duration::from_secs(10)).expect("it exits once drained");
    assert!(exit.success(), "{exit:?}: {}", app.output());
}

#[test]
fn an_idle_server_stops_promptly_on_term() {
    let dir = scratch();
    let mut app = App::start(dir.path(), &[]);
    let signalled = Instant::now();
    app.process.signal(libc::SIGTERM);
    let exit = app.process.wait_exit(Duration::from_secs(10)).expect("it stops");
    let took = signalled.elapsed();
    assert!(exit.success(), "{exit:?}: {}", app.output());
    assert!(!app.socket.exists(), "its socket file is removed");
    // Milliseconds of work; the bound leaves room for a loaded machine.
    assert!(took < Duration::from_millis(500), "took {took:?}");
}

#[test]
fn access_lines_reach_standard_error_when_no_logger_is_given() {
    let dir = scratch();
    let app = App::start(dir.path(), &["--access-log"]);
    let mut conn = Connection::connect(&app.client_addr()).unwrap();
    let request = Request::new().params([("SCRIPT_NAME", "/x"), ("REQUEST_URI", "/x?y=1")]);
    let reply = conn.request(request).unwrap().into_reply().unwrap();
    assert_eq!((reply.status(), reply.body.as_slice()), (200, b"ok".as_slice()));
    let logged = wait_until(Duration::from_secs(5), || {
        app.output().lines().any(|line| {
            line.starts_with("fcgi-server ACCESS: request; ")
                && line.contains("; uri=/x?y=1;")
                && line.contains("; status=200;")
        })
    });
    assert!(logged, "{}", app.output());
}

#[test]
fn a_bind_error_is_printed_by_main_as_a_sentence() {
    let dir = scratch();
    let app = App::start(dir.path(), &[]);
    let second = Command::new(env!("CARGO_BIN_EXE_fcgi-builder-app"))
        .arg(&app.socket)
        .output()
        .expect("a second instance runs");
    assert_eq!(second.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&second.stderr);
    let expected = format!(
        "Error: Custom {{ kind: AddrInUse, error: {} is a socket another process is listening \
         on; stop it or choose another path }}\n",
        app.socket.display()
    );
    assert_eq!(stderr, expected);
}

#[test]
fn fcgi_request_reports_a_response_cut_short_after_its_header() {
    let dir = scratch();
    let app = App::start(dir.path(), &[]);
    let connect = format!("unix:{}", app.socket.display());
    let run = Command::new(fcgi_bin())
        .args(["request", "--timeout", "10", "--connect", &connect, "/fail-after-header"])
        .output()
        .expect("fcgi request runs");
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(1), "{stderr}");
    let printed = run.stdout == [b'x'; 1000];
    assert!(printed, "the body that came is printed: {} bytes", run.stdout.len());
    let reason = format!(
        "fcgi: {connect}: the application failed after sending its header: request 1 was cut \
         short after 1000 body bytes; the server broke the response off with a record of \
         FastCGI version 0 and closed the connection, as fcgi-rs does"
    );
    assert_eq!(
        stderr.lines().collect::<Vec<_>>().first().copied(),
        Some("the database went away"),
        "the application's stderr first: {stderr}"
    );
    assert_eq!(stderr.lines().nth(1), Some(reason.as_str()), "{stderr}");

    // The same through the library, read as a stream.
    let mut conn = Connection::connect(&app.client_addr()).unwrap();
    let mut response =
        conn.request(Request::new().param("SCRIPT_NAME", "/fail-after-header")).unwrap();
    let mut body = Vec::new();
    let error = std::io::Read::read_to_end(&mut response, &mut body).unwrap_err();
    assert_eq!(body.len(), 1000, "every byte that came is read before the error");
    match Error::from_io(error) {
        Error::CutShort { request_id: 1, body_bytes: 1000, ending, stderr } => {
            assert!(matches!(ending, Ending::InvalidRecord(_)), "{ending:?}");
            assert_eq!(stderr, b"the database went away\n");
        }
        other => panic!("{other:?}"),
    }
    drop(response);
    assert!(!conn.is_usable());
}
