//! What `fcgi_http::serve` decides by itself, in a real process (`fcgi-http-serve`,
//! tests/bin/http_serve.rs) behind a real nginx: the runtime the app's futures run on (the one
//! `main` is in, if it is a multi-thread one; a current-thread one is refused at once), and a
//! Unix socket that the worker of a packaged nginx, which runs as another user, can connect to.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use fcgi_tests::addr::Addr;
use fcgi_tests::nginx::{is_root, scratch, Nginx, Site};
use fcgi_tests::process::{wait_until, Guarded, START_TIMEOUT};
use fcgi_tests::settings;

/// The `fcgi-http-serve` binary, built with the workspace's binaries.
fn serve_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable has a path");
    let bin =
        exe.parent().and_then(Path::parent).expect("target/<profile>").join("fcgi-http-serve");
    assert!(bin.exists(), "{} is missing: `cargo build --workspace --bins`", bin.display());
    bin
}

/// `fcgi-http-serve` on the socket `dir/NAME.sock` with `args`, started and listening.
struct App {
    /// Stopped when dropped.
    _process: Guarded,
    socket: PathBuf,
    log: PathBuf,
}

impl App {
    fn start(dir: &Path, name: &str, args: &[&str]) -> App {
        let socket = dir.join(format!("{name}.sock"));
        let log = dir.join(format!("{name}.log"));
        let mut command = Command::new(serve_bin());
        command.arg("--listen").arg(format!("unix:{}", socket.display())).args(args);
        let mut process = Guarded::spawn(name, command, &log);
        let up = wait_until(START_TIMEOUT, || !process.is_running() || socket.exists());
        let output = std::fs::read_to_string(&log).unwrap_or_default();
        assert!(up && process.is_running(), "{name} did not start: {output}");
        App { _process: process, socket, log }
    }

    fn nginx(&self, dir: &Path) -> Nginx {
        Nginx::start(dir, Site::Unix, &Addr::Unix(self.socket.clone()).site_vars())
    }
}

#[test]
fn inside_a_multi_thread_runtime_the_futures_run_on_it_and_otherwise_on_fcgi_https() {
    for (runtime, thread) in [("multi", "app-rt"), ("none", "fcgi-http-rt")] {
        let dir = scratch();
        let app = App::start(dir.path(), runtime, &["--runtime", runtime]);
        let nginx = app.nginx(dir.path());
        let answer = nginx.get("/thread").expect("a response");
        assert_eq!(
            (answer.status, answer.body_text().as_str()),
            (200, thread),
            "--runtime {runtime}"
        );
        // The app's own routes, on the same runtime.
        assert_eq!(nginx.get("/sleep?ms=10").expect("a response").body_text(), "slept");
    }
}

#[test]
fn inside_a_current_thread_runtime_serve_refuses_at_once_and_says_why() {
    let dir = scratch();
    let socket = dir.path().join("current.sock");
    let output = Command::new(serve_bin())
        .args(["--runtime", "current", "--listen"])
        .arg(format!("unix:{}", socket.display()))
        .output()
        .expect("fcgi-http-serve runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "it served: {stderr}");
    // The error says what is wrong and what to do instead.
    assert!(stderr.contains("current-thread tokio runtime"), "{stderr}");
    assert!(stderr.contains("#[tokio::main]"), "{stderr}");
    assert!(!socket.exists(), "it bound its socket before refusing");
}

/// Who a packaged nginx's workers run as on Debian when given no user: `nobody`, with the
/// group `nogroup`, neither of them root nor the app's.
const WORKER: (&str, &str) = ("nobody", "nogroup");

#[test]
fn the_socket_serve_makes_takes_the_first_request_of_a_worker_of_another_user() {
    if !is_root() {
        return settings::skip("starting nginx's workers as another user needs root");
    }
    let (user, group) = WORKER;
    // (mode and group asked for, the socket's mode, whether its group is the worker's, the
    // status nginx answers)
    let cases = [
        (&[][..], 0o666, false, 200),
        (&["--socket-group", group][..], 0o660, true, 200),
        // The control: a socket only its owner may use is refused to the worker, which shows
        // that the worker really is another user (root would pass any mode).
        (&["--socket-mode", "700"][..], 0o700, false, 502),
    ];
    for (args, mode, group_is_workers, status) in cases {
        let dir = scratch();
        // The worker must enter the directory to reach the socket, but need not list it.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o711))
            .expect("chmod the scratch directory");
        let app = App::start(dir.path(), "app", args);
        let meta = std::fs::metadata(&app.socket).expect("the socket file");
        assert_eq!(meta.mode() & 0o777, mode, "{args:?}");
        let workers_gid = fcgi_server::group_id(group).expect("the worker's group exists");
        assert_eq!(meta.gid() == workers_gid, group_is_workers, "{args:?}");

        let nginx = Nginx::start_as(
            dir.path(),
            Site::Unix,
            &Addr::Unix(app.socket.clone()).site_vars(),
            user,
            group,
        );
        let answer = nginx.get("/hello").expect("a response");
        let app_log = std::fs::read_to_string(&app.log).unwrap_or_default();
        assert_eq!(answer.status, status, "{args:?}: {}\n{app_log}", nginx.error_log());
        if status == 200 {
            assert_eq!(answer.body_text(), "Hello, world!");
        } else {
            let refused = wait_until(Duration::from_secs(5), || {
                nginx.error_log().contains("(13: Permission denied) while connecting to upstream")
            });
            assert!(refused, "{}", nginx.error_log());
        }
    }
}
