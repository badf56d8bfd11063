//! A PHP-FPM of a test's own, in a temporary directory, for the tests that talk to a real one
//! (`fcgi request`, `fcgi bench`). Without php-fpm installed, [`PhpFpm::start`] says so and
//! returns `None`, and the test passes.

use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::process::Command;

use crate::addr::Addr;
use crate::process::{wait_until, Guarded, START_TIMEOUT};

/// The PHP-FPM binary: `php-fpm` or `php-fpm8.2` (any version) in /usr/sbin or on the PATH.
pub fn php_fpm_binary() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut dirs: Vec<PathBuf> = std::env::split_paths(&path).collect();
    dirs.extend(["/usr/sbin".into(), "/usr/local/sbin".into()]);
    let mut found: Vec<PathBuf> = dirs
        .iter()
        .filter_map(|dir| std::fs::read_dir(dir).ok())
        .flat_map(|entries| entries.filter_map(Result::ok))
        .filter(|entry| entry.file_name().to_string_lossy().starts_with("php-fpm"))
        .map(|entry| entry.path())
        .filter(|path| path.metadata().is_ok_and(|m| m.is_file() && m.mode() & 0o111 != 0))
        .collect();
    found.sort();
    found.into_iter().next()
}

/// A PHP-FPM of the test's own: its config, socket, log and scripts in a temporary directory;
/// `pm = static` with 2 children; `ping.path = /ping`. Stopped (TERM) when dropped.
pub struct PhpFpm {
    dir: tempfile::TempDir,
    socket: PathBuf,
    _process: Guarded,
}

/// The script the PHP-FPM tests ask for: a header, a line to stderr, the method and the body.
pub const SCRIPT: &str = r#"<?php
header("X-Test: yes");
error_log("hello from php on stderr");
echo "php says hello; method=", $_SERVER["REQUEST_METHOD"], "; body=", file_get_contents("php://input"), "\n";
"#;

impl PhpFpm {
    /// Starts it, or says why not and returns `None` when php-fpm is not installed.
    pub fn start() -> Option<PhpFpm> {
        let Some(binary) = php_fpm_binary() else {
            crate::settings::skip(
                "php-fpm not found in /usr/sbin or on the PATH; run tests/deps.sh \
                 (Debian package php-fpm) to run the PHP-FPM tests",
            );
            return None;
        };
        let dir = tempfile::tempdir().expect("a temporary directory for PHP-FPM");
        let socket = dir.path().join("php.sock");
        let config = dir.path().join("php-fpm.conf");
        let d = dir.path().display();
        std::fs::write(
            &config,
            format!(
                "[global]\nerror_log = {d}/php-fpm.log\npid = {d}/php-fpm.pid\ndaemonize = no\n\
                 [test]\nlisten = {}\npm = static\npm.max_children = 2\nping.path = /ping\n",
                socket.display()
            ),
        )
        .expect("the PHP-FPM configuration written");
        std::fs::write(dir.path().join("index.php"), SCRIPT).expect("the PHP script written");
        let mut command = Command::new(&binary);
        // -n: no php.ini, so the machine's settings cannot change what the tests see.
        command.arg("-n").arg("-y").arg(&config).arg("-F");
        // The master may run as root only when told so (it then keeps its children as root).
        if std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0) {
            command.arg("-R");
        }
        let log = dir.path().join("php-fpm.out");
        let mut process = Guarded::spawn("php-fpm", command, &log);
        let addr = Addr::Unix(socket.clone());
        let up = wait_until(START_TIMEOUT, || !process.is_running() || addr.accepts());
        assert!(
            up && process.is_running(),
            "{} did not start listening:\n{}\n{}",
            binary.display(),
            std::fs::read_to_string(&log).unwrap_or_default(),
            std::fs::read_to_string(dir.path().join("php-fpm.log")).unwrap_or_default()
        );
        Some(PhpFpm { dir, socket, _process: process })
    }

    /// Its address, as `--connect` takes it.
    pub fn connect_arg(&self) -> String {
        format!("unix:{}", self.socket.display())
    }

    /// The path of the test script, as PHP-FPM takes SCRIPT_FILENAME.
    pub fn script(&self) -> String {
        self.dir.path().join("index.php").display().to_string()
    }

    /// A file in its directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}
