//! A real nginx in front of fcgi-rs, for end-to-end tests.
//!
//! [`Nginx`] starts `nginx -p PREFIX -c CONF` in the foreground from the very files in `nginx/`
//! (the wrapper `nginx/wrapper.conf` around one site file), their placeholders filled in, on a
//! free loopback port, and stops it by PID when dropped. What it fronts is the real `fcgi serve`
//! ([`crate::process::FcgiServe`]) or a server with a test's own handler
//! ([`crate::inproc::TestServer`]); [`crate::http`] is the client.
//!
//! Everything lives in a directory the test owns (a [`tempfile::TempDir`]), so tests run in
//! parallel without sharing a file, a socket or a port.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::addr::{free_port, retry_on_port_clash, Addr};
use crate::http::{self, HttpResponse};
use crate::process::{wait_until, Guarded, START_TIMEOUT};

/// A scratch directory for one test: sockets, logs, and nginx's prefix.
pub fn scratch() -> tempfile::TempDir {
    tempfile::Builder::new().prefix("fcgi-e2e-").tempdir().expect("a temporary directory")
}

/// The repository's `nginx/` directory, where the configurations live.
pub fn config_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("nginx")
}

/// One of the site files in `nginx/`, each a documented example that users copy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Site {
    /// `fcgi-tcp.conf`: `fastcgi_pass HOST:PORT`; fill in `@FCGI_ADDR@`.
    Tcp,
    /// `fcgi-unix.conf`: `fastcgi_pass unix:PATH`; fill in `@FCGI_SOCKET@`.
    Unix,
    /// `fcgi-keepalive.conf`: kept connections; fill in `@FCGI_ADDR@` (either form).
    Keepalive,
    /// `fcgi-upstream.conf`: two instances; fill in `@FCGI_ADDR_1@` and `@FCGI_ADDR_2@`.
    Upstream,
    /// `fcgi-cgi.conf`: CGI programs under `/cgi-bin/`; fill in `@FCGI_SOCKET@` and
    /// `@DOCUMENT_ROOT@`.
    Cgi,
    /// `fcgi-cgi-git.conf`: git's http-backend under `/git/`; fill in `@FCGI_SOCKET@`.
    CgiGit,
    /// `fcgi-status.conf`: the status page and ping at `/status` and `/ping`, the app
    /// elsewhere; fill in `@FCGI_ADDR@`.
    Status,
    /// `fcgi-hosts.conf`: several hosts, retried on failure; fill in `@FCGI_ADDR_1@` and
    /// `@FCGI_ADDR_2@`.
    Hosts,
    /// `fcgi-auth-request.conf`: every request checked first with `auth_request`; fill in
    /// `@FCGI_ADDR@`.
    AuthRequest,
    /// `fcgi-exec.conf`: PHP scripts under `--app exec -- php-cgi`, kept connections, the
    /// status page; fill in `@FCGI_ADDR@` and `@DOCUMENT_ROOT@`.
    Exec,
}

impl Site {
    /// The file name in `nginx/`.
    pub fn file_name(self) -> &'static str {
        match self {
            Site::Tcp => "fcgi-tcp.conf",
            Site::Unix => "fcgi-unix.conf",
            Site::Keepalive => "fcgi-keepalive.conf",
            Site::Upstream => "fcgi-upstream.conf",
            Site::Cgi => "fcgi-cgi.conf",
            Site::CgiGit => "fcgi-cgi-git.conf",
            Site::Status => "fcgi-status.conf",
            Site::Hosts => "fcgi-hosts.conf",
            Site::AuthRequest => "fcgi-auth-request.conf",
            Site::Exec => "fcgi-exec.conf",
        }
    }
}

/// Replaces every `@NAME@` in `template` with its value, and insists that none is left over:
/// a placeholder that a configuration gained and the harness does not know fails loudly here,
/// instead of reaching nginx.
pub fn fill(template: &str, vars: &[(&str, &str)], what: &str) -> String {
    let mut text = template.to_owned();
    for (name, value) in vars {
        text = text.replace(&format!("@{name}@"), value);
    }
    if let Some(left) = find_placeholder(&text) {
        panic!("{what}: placeholder {left} has no value (the harness knows {vars:?})");
    }
    text
}

fn find_placeholder(text: &str) -> Option<&str> {
    let bytes = text.as_bytes();
    let mut start = 0;
    while let Some(offset) = text[start..].find('@') {
        let open = start + offset;
        let name_len = bytes[open + 1..]
            .iter()
            .take_while(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || **b == b'_')
            .count();
        let close = open + 1 + name_len;
        if name_len > 0 && bytes.get(close) == Some(&b'@') {
            return Some(&text[open..=close]);
        }
        start = open + 1;
    }
    None
}

/// The nginx binary: `$NGINX`, else Debian's `/usr/sbin/nginx`, else `nginx` on the `PATH`.
pub fn nginx_bin() -> PathBuf {
    if let Some(path) = std::env::var_os("NGINX") {
        return PathBuf::from(path);
    }
    let debian = PathBuf::from("/usr/sbin/nginx");
    if debian.exists() {
        return debian;
    }
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .map(|dir| dir.join("nginx"))
        .find(|candidate| candidate.exists());
    on_path.unwrap_or_else(|| {
        panic!("nginx is not installed: run `make deps` (tests/deps.sh installs the nginx package)")
    })
}

/// The `fastcgi_params` file that nginx packages ship beside their nginx.conf; the site files
/// include it by its relative name, as users' configurations do.
fn system_fastcgi_params() -> PathBuf {
    ["/etc/nginx/fastcgi_params", "/usr/local/nginx/conf/fastcgi_params"]
        .iter()
        .map(PathBuf::from)
        .find(|path| path.exists())
        .expect("fastcgi_params, which the nginx package installs in /etc/nginx (make deps)")
}

/// Whether the tests run as root (who may start nginx with workers of another user).
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// A running nginx, stopped (by PID) when dropped.
#[derive(Debug)]
pub struct Nginx {
    prefix: PathBuf,
    port: u16,
    process: Guarded,
}

impl Nginx {
    /// Starts nginx with `site` on a free port: the prefix is `dir/nginx`, and `vars` fill in the
    /// site's placeholders (the harness fills `@LISTEN@` itself; [`Addr::site_vars`] has those
    /// of a single backend).
    ///
    /// [`Addr::site_vars`]: crate::addr::Addr::site_vars
    pub fn start(dir: &Path, site: Site, vars: &[(&str, impl AsRef<str>)]) -> Nginx {
        Nginx::start_with(dir, site, vars, "")
    }

    /// As [`start`](Nginx::start), with `http_extra` added to the wrapper's http block: for a
    /// test that needs nginx to behave in one particular way, and says why.
    pub fn start_with(
        dir: &Path,
        site: Site,
        vars: &[(&str, impl AsRef<str>)],
        http_extra: &str,
    ) -> Nginx {
        let user = if is_root() { "user root;" } else { "" };
        Nginx::start_inner(dir, site, vars, http_extra, user)
    }

    /// As [`start`](Nginx::start), its workers running as `user` and `group` (nginx's `user`
    /// directive), as a packaged nginx's do (`www-data` on Debian): for a test of what such a
    /// worker may connect to. Needs root; `dir` must be open to `user` for the sockets in it.
    pub fn start_as(
        dir: &Path,
        site: Site,
        vars: &[(&str, impl AsRef<str>)],
        user: &str,
        group: &str,
    ) -> Nginx {
        assert!(is_root(), "only root's nginx switches its workers to another user");
        Nginx::start_inner(dir, site, vars, "", &format!("user {user} {group};"))
    }

    fn start_inner(
        dir: &Path,
        site: Site,
        vars: &[(&str, impl AsRef<str>)],
        http_extra: &str,
        user_directive: &str,
    ) -> Nginx {
        let prefix = dir.join("nginx");
        let conf_dir = prefix.join("conf");
        fs::create_dir_all(&conf_dir).expect("nginx's prefix directory");
        fs::copy(system_fastcgi_params(), conf_dir.join("fastcgi_params"))
            .expect("copy fastcgi_params beside the configuration");
        let template = |name: &str| {
            let path = config_dir().join(name);
            fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        };
        let site_template = template(site.file_name());
        let wrapper_template = template("wrapper.conf");

        let started = retry_on_port_clash(
            || {
                let port = free_port();
                let addr = Addr::loopback(port);
                let listen = addr.nginx();
                let mut site_vars = vec![("LISTEN", listen.as_str())];
                site_vars.extend(vars.iter().map(|(name, value)| (*name, value.as_ref())));
                let site_path = conf_dir.join("site.conf");
                fs::write(&site_path, fill(&site_template, &site_vars, site.file_name()))
                    .expect("write the site configuration");
                let prefix_str = prefix.to_str().expect("a UTF-8 temporary path");
                let site_str = site_path.to_str().expect("a UTF-8 temporary path");
                let wrapper = fill(
                    &wrapper_template,
                    &[
                        ("PREFIX", prefix_str),
                        ("USER_DIRECTIVE", user_directive),
                        ("HTTP_EXTRA", http_extra),
                        ("SITE", site_str),
                    ],
                    "wrapper.conf",
                );
                let conf = conf_dir.join("nginx.conf");
                fs::write(&conf, wrapper).expect("write nginx.conf");
                let _ = fs::remove_file(prefix.join("nginx.pid"));

                let mut command = Command::new(nginx_bin());
                command.arg("-p").arg(&prefix).arg("-c").arg(&conf);
                command.arg("-e").arg(prefix.join("error.log"));
                let mut process = Guarded::spawn("nginx", command, &prefix.join("nginx.out"));
                // The pid file appears once the master has bound its sockets; then it accepts.
                let pid_file = prefix.join("nginx.pid");
                let up = wait_until(START_TIMEOUT, || {
                    !process.is_running() || (pid_file.exists() && addr.accepts())
                });
                if up && process.is_running() {
                    return Ok(Nginx { prefix: prefix.clone(), port, process });
                }
                let mut log = fs::read_to_string(prefix.join("error.log")).unwrap_or_default();
                log += &fs::read_to_string(prefix.join("nginx.out")).unwrap_or_default();
                Err(log)
            },
            |log| log.contains("Address already in use"),
        );
        started
            .unwrap_or_else(|log| panic!("nginx did not start with {}:\n{log}", site.file_name()))
    }

    /// The loopback port nginx listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// nginx's prefix directory (configuration, logs, temporary files).
    pub fn prefix(&self) -> &Path {
        &self.prefix
    }

    /// Waits until nginx has logged `more` requests past those it had logged when called (its
    /// access log gained as many lines): load is flowing. Whether it did within `timeout`.
    pub fn wait_requests(&self, more: usize, timeout: std::time::Duration) -> bool {
        use std::io::{Read, Seek, SeekFrom};
        let path = self.prefix.join("access.log");
        let mut offset = fs::metadata(&path).map_or(0, |m| m.len());
        let mut seen = 0;
        let mut chunk = Vec::new();
        wait_until(timeout, || {
            if let Ok(mut file) = fs::File::open(&path) {
                chunk.clear();
                if file.seek(SeekFrom::Start(offset)).is_ok()
                    && file.read_to_end(&mut chunk).is_ok()
                {
                    offset += chunk.len() as u64;
                    seen += chunk.iter().filter(|&&b| b == b'\n').count();
                }
            }
            seen >= more
        })
    }

    /// nginx's error log so far.
    pub fn error_log(&self) -> String {
        fs::read_to_string(self.prefix.join("error.log")).unwrap_or_default()
    }

    /// The master process.
    pub fn process(&mut self) -> &mut Guarded {
        &mut self.process
    }

    /// `GET path`.
    pub fn get(&self, path: &str) -> io::Result<HttpResponse> {
        http::get(self.port, path)
    }

    /// `POST path` with `body`.
    pub fn post(&self, path: &str, content_type: &str, body: &[u8]) -> io::Result<HttpResponse> {
        http::post(self.port, path, content_type, body)
    }
}
