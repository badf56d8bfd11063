//! Real FastCGI programs under `fcgi serve --app exec -- PROGRAM`: php-cgi, a C program on
//! libfcgi, a Perl script on FCGI.pm and a Python WSGI app on flup, each from `tests/programs/`.
//!
//! Every program answers a request the same way, so that one parser ([`Answer`]) reads them
//! all: a `Content-Type: text/plain` body of lines
//!
//! ```text
//! hello from <program>
//! pid=<the process that answered>
//! method=<REQUEST_METHOD>
//! query=<QUERY_STRING>
//! length=<bytes of request body it read>
//! sha256=<hex SHA-256 of that body>
//! ```
//!
//! and a query with `sleep_ms=N` keeps it busy N ms first. [`Program::prepare`] finds what a
//! program needs on this machine (tests/deps.sh installs it), or says why not: then the test
//! skips, or fails under `FCGI_TEST_STRICT` ([`crate::settings::skip`]). [`ExecServe`] is
//! `fcgi serve --app exec` running one of them, and reads its structured log.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::addr::{Addr, Transport};
use crate::nginx::Site;
use crate::process::{wait_until, FcgiServe, START_TIMEOUT};

/// The directory of the programs' sources.
pub fn sources() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("programs")
}

/// The build directory the tests run from (`CARGO_TARGET_DIR`, `target/` by default): the test
/// executable is `TARGET/PROFILE/deps/NAME`.
pub fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable has a path");
    exe.ancestors().nth(3).expect("TARGET/PROFILE/deps/NAME").to_path_buf()
}

/// Where tests/deps.sh installs flup with pip: `TARGET/test-python`, for `PYTHONPATH`.
pub fn python_path() -> PathBuf {
    target_dir().join("test-python")
}

/// The flup release the Python program is written for; tests/deps.sh pins the same.
pub const FLUP: &str = "flup-1.0.3";

/// `name` in /usr/bin, where the Debian packages of tests/deps.sh put it, else in a directory
/// of the `PATH`. /usr/bin first: a `python3` earlier on a developer's `PATH` (a pyenv shim,
/// say) is not the interpreter pip installed flup for, and may not run at all with only `PATH`
/// in its environment, as programs have.
pub fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::iter::once(PathBuf::from("/usr/bin"))
        .chain(std::env::split_paths(&path))
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// Compiles `tests/programs/app.c` against libfcgi into `dir/app-c`: the path, or why not.
pub fn compile_libfcgi_program(dir: &Path) -> Result<PathBuf, String> {
    let cc = find_program("cc").ok_or("no C compiler (cc): run tests/deps.sh")?;
    if !Path::new("/usr/include/fcgiapp.h").exists() {
        return Err("libfcgi's fcgiapp.h is missing: run tests/deps.sh (Debian libfcgi-dev)".into());
    }
    let out = dir.join("app-c");
    let built = Command::new(cc)
        .args(["-O2", "-Wall", "-o"])
        .arg(&out)
        .arg(sources().join("app.c"))
        .arg("-lfcgi")
        .output()
        .map_err(|e| format!("cc did not run: {e}"))?;
    // A compiler that runs and fails is the program's fault, not the machine's: no skip.
    assert!(built.status.success(), "cc app.c -lfcgi:\n{}", String::from_utf8_lossy(&built.stderr));
    Ok(out)
}

/// The four programs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Program {
    /// `php-cgi -n` running `app.php` (nginx names it in SCRIPT_FILENAME).
    PhpCgi,
    /// `app.c`, compiled against libfcgi.
    Libfcgi,
    /// `perl app.pl`, on FCGI.pm.
    Perl,
    /// `python3 app.py`, a WSGI app on flup.
    Flup,
}

/// How to run a prepared program, and how nginx reaches it.
#[derive(Clone, Debug)]
pub struct Launch {
    /// PROGRAM and ARGS, after `--`.
    pub argv: Vec<String>,
    /// Variables to set in `fcgi serve`'s environment, each also passed on (`--pass-env`).
    pub env: Vec<(String, String)>,
    /// The nginx site that fronts it.
    pub site: Site,
    /// The path nginx serves it at.
    pub path: String,
    /// The site's document root (for [`Site::Cgi`]).
    pub document_root: PathBuf,
}

impl Launch {
    /// The serve options that pass [`env`](Launch::env) on: `--pass-env NAME` each.
    pub fn pass_env_args(&self) -> Vec<String> {
        self.env.iter().flat_map(|(name, _)| ["--pass-env".to_owned(), name.clone()]).collect()
    }

    /// The nginx placeholders for a site in front of `addr`.
    pub fn nginx_vars(&self, addr: &Addr) -> Vec<(&'static str, String)> {
        let mut vars = addr.site_vars().to_vec();
        vars.push(("DOCUMENT_ROOT", self.document_root.display().to_string()));
        vars
    }
}

impl Program {
    /// The first line of its answers.
    pub fn hello(self) -> &'static str {
        match self {
            Program::PhpCgi => "hello from php-cgi",
            Program::Libfcgi => "hello from libfcgi",
            Program::Perl => "hello from perl",
            Program::Flup => "hello from flup",
        }
    }

    /// Finds or builds what it needs, with its files in `dir`: how to run it, or why it
    /// cannot run on this machine.
    pub fn prepare(self, dir: &Path) -> Result<Launch, String> {
        let missing = |what: &str, package: &str| {
            format!("{what} is missing: run tests/deps.sh (Debian package {package})")
        };
        let source = |name: &str| sources().join(name).display().to_string();
        let path = |p: PathBuf| p.display().to_string();
        // Over a Unix socket with kept connections: nginx keeps idle connections to fcgi-rs,
        // which no program process is pinned by.
        let mut launch = Launch {
            argv: Vec::new(),
            env: Vec::new(),
            site: Site::Keepalive,
            path: "/app".into(),
            document_root: dir.to_path_buf(),
        };
        match self {
            Program::PhpCgi => {
                let php = find_program("php-cgi").ok_or_else(|| missing("php-cgi", "php-cgi"))?;
                // nginx's fastcgi_params has no SCRIPT_FILENAME, which php-cgi needs; the CGI
                // site sets it to DOCUMENT_ROOT/cgi-bin/NAME (and REDIRECT_STATUS comes from
                // fastcgi_params, for cgi.force_redirect).
                let bin = dir.join("www/cgi-bin");
                fs::create_dir_all(&bin).expect("the document root");
                fs::copy(sources().join("app.php"), bin.join("app.php")).expect("app.php copied");
                launch.site = Site::Cgi;
                launch.path = "/cgi-bin/app.php".into();
                launch.document_root = dir.join("www");
                // -n: no php.ini, so that the machine's settings cannot change the answers.
                launch.argv = vec![path(php), "-n".into(), "-d".into(), "post_max_size=64M".into()];
            }
            Program::Libfcgi => launch.argv = vec![path(compile_libfcgi_program(dir)?)],
            Program::Perl => {
                let perl = find_program("perl").ok_or_else(|| missing("perl", "perl"))?;
                let loads = Command::new(&perl).args(["-MFCGI", "-e", "1"]).output();
                if !loads.is_ok_and(|o| o.status.success()) {
                    return Err(missing("Perl's FCGI.pm", "libfcgi-perl"));
                }
                launch.argv = vec![path(perl), source("app.pl")];
            }
            Program::Flup => {
                let python =
                    find_program("python3").ok_or_else(|| missing("python3", "python3"))?;
                let site = python_path();
                if !site.join(format!("{FLUP}.dist-info")).is_dir() {
                    return Err(format!(
                        "{FLUP} is not in {}: run tests/deps.sh, which installs it there with pip",
                        site.display()
                    ));
                }
                launch.env = vec![("PYTHONPATH".into(), path(site))];
                launch.argv = vec![path(python), source("app.py")];
            }
        }
        Ok(launch)
    }
}

/// One answer of a program, its lines parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    /// The first line: `hello from <program>`.
    pub hello: String,
    /// The process that answered.
    pub pid: u32,
    /// REQUEST_METHOD as it saw it.
    pub method: String,
    /// QUERY_STRING as it saw it.
    pub query: String,
    /// Bytes of request body it read.
    pub length: usize,
    /// Hex SHA-256 of that body.
    pub sha256: String,
}

impl Answer {
    /// Parses a program's body; panics, quoting it, if it is not an answer.
    #[track_caller]
    pub fn parse(body: &str) -> Answer {
        let mut lines = body.lines();
        let hello = lines.next().unwrap_or_default().to_owned();
        let fields: Vec<(&str, &str)> = lines.filter_map(|line| line.split_once('=')).collect();
        let field = |name: &str| {
            let found = fields.iter().find(|(n, _)| *n == name).map(|(_, v)| *v);
            found.unwrap_or_else(|| panic!("no {name}= line in the answer {body:?}"))
        };
        let number = |name: &str| {
            field(name).parse().unwrap_or_else(|_| panic!("{name} is no number in {body:?}"))
        };
        Answer {
            hello,
            pid: number("pid") as u32,
            method: field("method").to_owned(),
            query: field("query").to_owned(),
            length: number("length"),
            sha256: field("sha256").to_owned(),
        }
    }

    /// Panics unless the program read exactly `body`.
    #[track_caller]
    pub fn assert_body(&self, body: &[u8]) {
        assert_eq!(
            (self.length, self.sha256.as_str()),
            (body.len(), sha256_hex(body).as_str()),
            "the program did not read the body sent, whole ({self:?})"
        );
    }
}

/// Hex SHA-256 of `bytes`, as the programs print it.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// The JSON lines of a log whose `event` is `event` (lines that are not JSON are left out).
pub fn log_events(log: &str, event: &str) -> Vec<serde_json::Value> {
    log.lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|line| line["event"] == event)
        .collect()
}

/// The `program_pid` fields of `events`: the program processes they are about (their `pid`
/// is the fcgi-rs process that logged them).
pub fn pids(events: &[serde_json::Value]) -> Vec<u32> {
    events.iter().filter_map(|e| e["program_pid"].as_u64()).map(|pid| pid as u32).collect()
}

/// `fcgi serve --app exec --log-format json --workers N EXTRA... -- PROGRAM ARGS...` on a Unix
/// socket in a test's directory, stopped when dropped.
#[derive(Debug)]
pub struct ExecServe {
    /// The server; its log is the structured one.
    pub serve: FcgiServe,
}

impl ExecServe {
    /// Starts it named `name` in `dir`, with `env` added to its environment, and waits until it
    /// listens and has logged `program-started` for `workers` program processes.
    pub fn start(
        dir: &Path,
        name: &str,
        launch: &Launch,
        workers: usize,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> ExecServe {
        let workers_arg = workers.to_string();
        let pass_env = launch.pass_env_args();
        let mut args = vec!["--log-format", "json", "--workers", workers_arg.as_str()];
        args.extend(pass_env.iter().map(String::as_str));
        args.extend(extra);
        args.push("--");
        args.extend(launch.argv.iter().map(String::as_str));
        let mut all_env: Vec<(&str, &str)> =
            launch.env.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
        all_env.extend(env);
        let serve = FcgiServe::start_with_env(dir, name, "exec", Transport::Unix, &args, &all_env);
        let exec = ExecServe { serve };
        let started = wait_until(START_TIMEOUT, || exec.started_pids().len() >= workers);
        assert!(
            started,
            "fcgi serve --app exec {args:?} did not start {workers} programs:\n{}",
            exec.serve.log()
        );
        exec
    }

    /// Where it listens.
    pub fn addr(&self) -> &Addr {
        self.serve.addr()
    }

    /// The `event` lines of its log so far.
    pub fn events(&self, event: &str) -> Vec<serde_json::Value> {
        log_events(&self.serve.log(), event)
    }

    /// Every program process it has logged as started, in order.
    pub fn started_pids(&self) -> Vec<u32> {
        pids(&self.events("program-started"))
    }

    /// Waits up to `timeout` for `condition` on its log.
    pub fn wait_log(&self, timeout: Duration, mut condition: impl FnMut(&str) -> bool) -> bool {
        wait_until(timeout, || condition(&self.serve.log()))
    }
}
