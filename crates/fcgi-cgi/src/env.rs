//! The child's environment: the request's meta-variables (RFC 3875 section 4) as the web server
//! sent them, less those that would change how the program itself starts (see [`screen`]), plus
//! the `--pass-env` allow-list from our own environment, and nothing else of ours.
//!
//! # Why some params never reach the program
//!
//! Whoever can connect to the FastCGI socket chooses the params. Most become plain data for the
//! program (`QUERY_STRING`, `HTTP_*`, the site's own `fastcgi_param APP_ENV production`), but
//! some are read before the program's first line runs, by the dynamic loader, libc, or the
//! interpreter named on its `#!` line: `LD_PRELOAD=/tmp/x.so` loads a library from anywhere,
//! `BASH_ENV` sources a file, `PYTHONPATH` or `PERL5OPT` import code. With those, a peer could
//! run code of its choosing through any program under `--cgi-root`, and the root would confine
//! nothing. They are dropped, as glibc drops its own list from the environment of set-uid
//! programs (`sysdeps/generic/unsecvars.h`). The `--pass-env` values are not screened: the
//! operator chose them.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;

use fcgi_server::Params;

/// The meta-variables of one run of a program: names and values as bytes, in the order the web
/// server sent them. A local redirect changes some of them and runs again.
///
/// ```
/// use fcgi_cgi::env::Vars;
///
/// let vars = Vars::from_pairs(&[("REQUEST_METHOD", "GET"), ("HTTP_PROXY", "evil:3128")]);
/// assert_eq!(vars.get_str("REQUEST_METHOD"), Some("GET"));
/// assert_eq!(vars.get("HTTP_PROXY"), None); // httpoxy: never passed on
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Vars {
    vars: Vec<(Vec<u8>, Vec<u8>)>,
}

/// Why a param the web server sent is not handed to the program.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dropped {
    /// The name is empty or holds `=` or NUL, or the value holds NUL: `execve` cannot carry it.
    NotAVariable,
    /// `HTTP_PROXY`: the client's `Proxy:` header, which many HTTP libraries take for the proxy
    /// to use ("httpoxy", CVE-2016-5385); nginx's example configurations blank it, and so do
    /// we, always.
    Httpoxy,
    /// Read by the dynamic loader or libc before the program runs: glibc's list of variables
    /// it removes for set-uid programs (`sysdeps/generic/unsecvars.h`), every `LD_*` name, and
    /// `GLIBC_TUNABLES`.
    Loader,
    /// A start-up hook of a shell or an interpreter: it makes the program source a file, load a
    /// module or library, or run a command before its own code ([`STARTUP_HOOKS`]).
    StartupHook,
    /// A git variable that points git at other configuration, programs or object stores
    /// (`GIT_CONFIG_*`, `GIT_EXEC_PATH`, `GIT_SSH_COMMAND`, `GIT_TRACE`, ...). Only those that
    /// `git http-backend` documents for its own setup are kept ([`GIT_KEPT`]).
    Git,
}

impl Dropped {
    /// A short name for logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Dropped::NotAVariable => "not_a_variable",
            Dropped::Httpoxy => "httpoxy",
            Dropped::Loader => "loader",
            Dropped::StartupHook => "startup_hook",
            Dropped::Git => "git",
        }
    }
}

/// glibc's `UNSECURE_ENVVARS` (`sysdeps/generic/unsecvars.h`) without its `LD_*` names, which
/// are all dropped by prefix: variables the loader and libc read from the environment to find
/// code or files (`GCONV_PATH` loads conversion modules, `NLSPATH` message catalogs,
/// `HOSTALIASES` and `RES_OPTIONS` change name resolution, `TMPDIR` where temporary files go).
pub const LOADER_VARIABLES: &[&str] = &[
    "GCONV_PATH",
    "GETCONF_DIR",
    "GLIBC_TUNABLES",
    "HOSTALIASES",
    "LOCALDOMAIN",
    "LOCPATH",
    "MALLOC_TRACE",
    "NIS_PATH",
    "NLSPATH",
    "RESOLV_HOST_CONF",
    "RES_OPTIONS",
    "TMPDIR",
    "TZDIR",
];

/// Variables that shells and interpreters read at start-up to run code before the program's
/// own: bash and POSIX sh (`BASH_ENV`, `ENV`, exported functions, options, `PS4` with its
/// command substitutions, `IFS` word splitting), Python, Perl, Ruby, Node.js, Java, PHP's
/// `php.ini` location (`auto_prepend_file` runs any file) and Lua's `LUA_INIT` (a chunk of
/// code). Exported bash functions (`BASH_FUNC_name%%`) are matched by shape, not listed.
pub const STARTUP_HOOKS: &[&str] = &[
    "BASH_ENV",
    "ENV",
    "SHELLOPTS",
    "BASHOPTS",
    "PS4",
    "IFS",
    "CDPATH",
    "GLOBIGNORE",
    "PYTHONPATH",
    "PYTHONSTARTUP",
    "PYTHONHOME",
    "PYTHONINSPECT",
    "PYTHONWARNINGS",
    "PERL5OPT",
    "PERL5LIB",
    "PERLLIB",
    "PERL5DB",
    "RUBYOPT",
    "RUBYLIB",
    "NODE_OPTIONS",
    "NODE_PATH",
    "JAVA_TOOL_OPTIONS",
    "_JAVA_OPTIONS",
    "JDK_JAVA_OPTIONS",
    "PHPRC",
    "PHP_INI_SCAN_DIR",
    "LUA_INIT",
    "LUA_PATH",
    "LUA_CPATH",
];

/// The `GIT_*` variables a program may get from the web server: what `git http-backend`
/// reads for its own setup (its manual's ENVIRONMENT section: which repositories to serve and
/// whether all of them, how much to buffer, whom to record as the committer of a push, which
/// namespace) and `GIT_PROTOCOL`, which it sets itself from the client's `Git-Protocol`
/// header. Every other `GIT_*` name is dropped: many of them make git read configuration from
/// a path (`GIT_CONFIG_GLOBAL`) or from the variables themselves (`GIT_CONFIG_COUNT`,
/// `GIT_CONFIG_KEY_0`, `GIT_CONFIG_PARAMETERS`, which git trusts as it trusts `git -c`, so
/// `uploadpack.packObjectsHook` would run a command), run programs (`GIT_EXEC_PATH`,
/// `GIT_SSH_COMMAND`, `GIT_ASKPASS`, `GIT_EXTERNAL_DIFF`), write files (`GIT_TRACE=/path`), or
/// read objects from elsewhere (`GIT_ALTERNATE_OBJECT_DIRECTORIES`). An operator who needs one
/// passes it from fcgi-rs's own environment with `--pass-env`.
pub const GIT_KEPT: &[&str] = &[
    "GIT_PROJECT_ROOT",
    "GIT_HTTP_EXPORT_ALL",
    "GIT_HTTP_MAX_REQUEST_BUFFER",
    "GIT_COMMITTER_NAME",
    "GIT_COMMITTER_EMAIL",
    "GIT_NAMESPACE",
    "GIT_PROTOCOL",
];

/// Whether the param `name` = `value` may reach the program, and if not, why. A pure decision
/// on the name (and the value's NUL bytes), so that it is tested as a table.
///
/// ```
/// use fcgi_cgi::env::{screen, Dropped};
///
/// assert_eq!(screen(b"APP_ENV", b"production"), None);
/// assert_eq!(screen(b"LD_PRELOAD", b"/tmp/x.so"), Some(Dropped::Loader));
/// assert_eq!(screen(b"BASH_FUNC_ls%%", b"() { id; }"), Some(Dropped::StartupHook));
/// assert_eq!(screen(b"GIT_PROJECT_ROOT", b"/srv/git"), None);
/// assert_eq!(screen(b"GIT_CONFIG_PARAMETERS", b"'core.pager=id'"), Some(Dropped::Git));
/// ```
pub fn screen(name: &[u8], value: &[u8]) -> Option<Dropped> {
    if !is_env_name(name) || value.contains(&0) {
        return Some(Dropped::NotAVariable);
    }
    let listed = |list: &[&str]| list.iter().any(|n| n.as_bytes() == name);
    if name == b"HTTP_PROXY" {
        Some(Dropped::Httpoxy)
    } else if name.starts_with(b"LD_") || listed(LOADER_VARIABLES) {
        Some(Dropped::Loader)
    } else if listed(STARTUP_HOOKS)
        || name.starts_with(b"LUA_INIT_")
        || contains(name, b"BASH_FUNC_")
        || name.ends_with(b"%%")
    {
        Some(Dropped::StartupHook)
    } else if name.starts_with(b"GIT_") && !listed(GIT_KEPT) {
        Some(Dropped::Git)
    } else {
        None
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

impl Vars {
    /// The request's params that may become environment variables: every param the web server
    /// sent (the CGI meta-variables, the `HTTP_*` request headers, and whatever the site's
    /// configuration adds with `fastcgi_param`, as RFC 3875 section 4.1 lets a server do),
    /// except those [`screen`] drops. The names dropped come back too, for the log.
    pub fn from_params(params: &Params) -> (Vars, Vec<(String, Dropped)>) {
        Vars::collect(params.iter())
    }

    /// Meta-variables from pairs, filtered as [`Vars::from_params`] filters params (for tests,
    /// and for embedders that build requests themselves).
    pub fn from_pairs<N: AsRef<[u8]>, V: AsRef<[u8]>>(pairs: &[(N, V)]) -> Vars {
        Vars::collect(pairs.iter().map(|(n, v)| (n.as_ref(), v.as_ref()))).0
    }

    fn collect<'a>(
        pairs: impl Iterator<Item = (&'a [u8], &'a [u8])>,
    ) -> (Vars, Vec<(String, Dropped)>) {
        let mut vars = Vec::new();
        let mut dropped: Vec<(String, Dropped)> = Vec::new();
        for (name, value) in pairs {
            match screen(name, value) {
                None => vars.push((name.to_vec(), value.to_vec())),
                Some(why) => {
                    let name = String::from_utf8_lossy(name).into_owned();
                    // Once per name, however often the web server repeats it.
                    if !dropped.iter().any(|(n, _)| *n == name) {
                        dropped.push((name, why));
                    }
                }
            }
        }
        (Vars { vars }, dropped)
    }

    /// The value of `name`.
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        let name = name.as_bytes();
        self.vars.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_slice())
    }

    /// The value of `name`, when it is present and not empty.
    pub fn get_nonempty(&self, name: &str) -> Option<&[u8]> {
        self.get(name).filter(|v| !v.is_empty())
    }

    /// The value of `name` as UTF-8 text, when it is.
    pub fn get_str(&self, name: &str) -> Option<&str> {
        self.get(name).and_then(|v| std::str::from_utf8(v).ok())
    }

    /// Sets `name` (replacing it, or adding it at the end). Ignored for a name or value that
    /// cannot be an environment variable. Not screened: the gateway sets only meta-variables
    /// of its own (a local redirect's `REQUEST_URI`, ...).
    pub fn set(&mut self, name: &[u8], value: &[u8]) {
        if !is_env_name(name) || value.contains(&0) {
            return;
        }
        match self.vars.iter_mut().find(|(n, _)| n == name) {
            Some((_, v)) => *v = value.to_vec(),
            None => self.vars.push((name.to_vec(), value.to_vec())),
        }
    }

    /// Removes `name`.
    pub fn remove(&mut self, name: &str) {
        self.vars.retain(|(n, _)| n != name.as_bytes());
    }

    /// The pairs, as `std::process::Command::envs` takes them.
    pub fn iter(&self) -> impl Iterator<Item = (&OsStr, &OsStr)> {
        self.vars.iter().map(|(n, v)| (OsStr::from_bytes(n), OsStr::from_bytes(v)))
    }
}

/// Reads the `--pass-env` names from our own environment, once: a name that is not set there is
/// left out (the program sees it unset, as without the option).
pub fn pass_env_values(names: &[String]) -> Vec<(OsString, OsString)> {
    names
        .iter()
        .filter(|name| is_env_name(name.as_bytes()))
        .filter_map(|name| std::env::var_os(name).map(|value| (OsString::from(name), value)))
        .collect()
}

/// A name that `execve` can carry: not empty, without `=` or NUL.
fn is_env_name(name: &[u8]) -> bool {
    !name.is_empty() && !name.contains(&b'=') && !name.contains(&0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_names_and_values_and_httpoxy_are_left_out() {
        let vars = Vars::from_pairs(&[
            (&b"REQUEST_METHOD"[..], &b"GET"[..]),
            (b"", b"empty name"),
            (b"A=B", b"equals in the name"),
            (b"NUL", b"a\0b"),
            (b"HTTP_HOST", b"example.com"),
            (b"HTTP_PROXY", b"evil:3128"),
        ]);
        let names: Vec<_> = vars.iter().map(|(n, _)| n.to_owned()).collect();
        assert_eq!(names, ["REQUEST_METHOD", "HTTP_HOST"]);
        let mut vars = vars;
        vars.set(b"HTTP_PROXY", b"evil:3128");
        // `set` is the gateway's own; the drop list applies to what the web server sends.
        assert_eq!(vars.get("HTTP_PROXY"), Some(&b"evil:3128"[..]));
        vars.remove("HTTP_PROXY");
        assert_eq!(vars.get("HTTP_PROXY"), None);
    }

    #[test]
    fn loader_and_startup_variables_are_screened_and_the_app_s_own_pass() {
        use Dropped::*;
        let table: &[(&str, Option<Dropped>)] = &[
            // The application's own, and the CGI meta-variables.
            ("APP_ENV", None),
            ("REQUEST_METHOD", None),
            ("HTTP_HOST", None),
            ("PATH_INFO", None),
            ("LANG", None),
            ("PATH", None),
            ("HTTP_PROXY", Some(Httpoxy)),
            ("HTTP_LD_PRELOAD", None), // a request header: plain data
            ("", Some(NotAVariable)),
            ("A=B", Some(NotAVariable)),
            // The loader: every LD_ name, and glibc's unsecvars.h list.
            ("LD_PRELOAD", Some(Loader)),
            ("LD_LIBRARY_PATH", Some(Loader)),
            ("LD_AUDIT", Some(Loader)),
            ("LD_SOMETHING_NEW", Some(Loader)),
            ("GCONV_PATH", Some(Loader)),
            ("GETCONF_DIR", Some(Loader)),
            ("GLIBC_TUNABLES", Some(Loader)),
            ("HOSTALIASES", Some(Loader)),
            ("LOCALDOMAIN", Some(Loader)),
            ("LOCPATH", Some(Loader)),
            ("MALLOC_TRACE", Some(Loader)),
            ("NIS_PATH", Some(Loader)),
            ("NLSPATH", Some(Loader)),
            ("RESOLV_HOST_CONF", Some(Loader)),
            ("RES_OPTIONS", Some(Loader)),
            ("TMPDIR", Some(Loader)),
            ("TZDIR", Some(Loader)),
            ("TZ", None),
            ("OLD_PRELOAD", None),
            // Shells and interpreters.
            ("BASH_ENV", Some(StartupHook)),
            ("ENV", Some(StartupHook)),
            ("ENVIRONMENT", None),
            ("BASH_FUNC_ls%%", Some(StartupHook)),
            ("BASH_FUNC_ls()", Some(StartupHook)),
            ("X_BASH_FUNC_ls", Some(StartupHook)),
            ("ls%%", Some(StartupHook)),
            ("SHELLOPTS", Some(StartupHook)),
            ("BASHOPTS", Some(StartupHook)),
            ("PS4", Some(StartupHook)),
            ("IFS", Some(StartupHook)),
            ("CDPATH", Some(StartupHook)),
            ("GLOBIGNORE", Some(StartupHook)),
            ("PYTHONPATH", Some(StartupHook)),
            ("PYTHONSTARTUP", Some(StartupHook)),
            ("PYTHONHOME", Some(StartupHook)),
            ("PYTHONINSPECT", Some(StartupHook)),
            ("PYTHONIOENCODING", None),
            ("PERL5OPT", Some(StartupHook)),
            ("PERL5LIB", Some(StartupHook)),
            ("PERLLIB", Some(StartupHook)),
            ("PERL5DB", Some(StartupHook)),
            ("RUBYOPT", Some(StartupHook)),
            ("RUBYLIB", Some(StartupHook)),
            ("NODE_OPTIONS", Some(StartupHook)),
            ("NODE_PATH", Some(StartupHook)),
            ("NODE_ENV", None),
            ("JAVA_TOOL_OPTIONS", Some(StartupHook)),
            ("_JAVA_OPTIONS", Some(StartupHook)),
            ("PHPRC", Some(StartupHook)),
            ("LUA_INIT_5_4", Some(StartupHook)),
            // git: http-backend's own setup passes; what redirects git elsewhere does not.
            ("GIT_PROJECT_ROOT", None),
            ("GIT_HTTP_EXPORT_ALL", None),
            ("GIT_HTTP_MAX_REQUEST_BUFFER", None),
            ("GIT_COMMITTER_NAME", None),
            ("GIT_NAMESPACE", None),
            ("GIT_CONFIG_PARAMETERS", Some(Git)),
            ("GIT_CONFIG_COUNT", Some(Git)),
            ("GIT_CONFIG_KEY_0", Some(Git)),
            ("GIT_CONFIG_GLOBAL", Some(Git)),
            ("GIT_EXEC_PATH", Some(Git)),
            ("GIT_SSH_COMMAND", Some(Git)),
            ("GIT_TRACE", Some(Git)),
            ("GIT_DIR", Some(Git)),
            ("CGIT_CONFIG", None),
        ];
        for (name, expected) in table {
            assert_eq!(screen(name.as_bytes(), b"value"), *expected, "{name}");
        }
        assert_eq!(screen(b"APP_ENV", b"a\0b"), Some(NotAVariable));
    }

    #[test]
    fn dropped_names_are_reported_once() {
        let (vars, dropped) = Vars::collect(
            [
                (&b"APP_ENV"[..], &b"production"[..]),
                (b"LD_PRELOAD", b"/tmp/a.so"),
                (b"BASH_ENV", b"/tmp/x"),
                (b"LD_PRELOAD", b"/tmp/b.so"),
            ]
            .into_iter(),
        );
        assert_eq!(vars.get_str("APP_ENV"), Some("production"));
        assert_eq!(vars.iter().count(), 1);
        assert_eq!(
            dropped,
            [
                ("LD_PRELOAD".to_owned(), Dropped::Loader),
                ("BASH_ENV".to_owned(), Dropped::StartupHook)
            ]
        );
    }

    #[test]
    fn set_replaces_in_place() {
        let mut vars = Vars::from_pairs(&[("A", "1"), ("B", "2")]);
        vars.set(b"A", b"3");
        assert_eq!(vars.get_str("A"), Some("3"));
        assert_eq!(vars.iter().count(), 2);
        assert_eq!(vars.get_nonempty("C"), None);
        vars.set(b"C", b"");
        assert_eq!(vars.get_nonempty("C"), None);
        assert_eq!(vars.get("C"), Some(&b""[..]));
    }

    #[test]
    fn pass_env_reads_only_set_names() {
        let path = std::env::var_os("PATH");
        let passed = pass_env_values(&["PATH".into(), "FCGI_CGI_SURELY_UNSET_NAME".into()]);
        match path {
            Some(value) => assert_eq!(passed, [(OsString::from("PATH"), value)]),
            None => assert!(passed.is_empty()),
        }
    }
}
