//! The gateway's settings, each with its default and the reason for it.

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::time::Duration;

use slog::Logger;

/// How a [`Gateway`](crate::Gateway) runs programs.
///
/// ```
/// use std::time::Duration;
/// use fcgi_cgi::{CgiConfig, Gateway};
///
/// let config = CgiConfig {
///     root: Some("/usr/lib/cgi-bin".into()),
///     timeout: Some(Duration::from_secs(30)),
///     pass_env: vec!["PATH".into()],
///     ..CgiConfig::default()
/// };
/// # let config = CgiConfig { root: Some(std::env::temp_dir()), ..config };
/// let gateway = Gateway::new(config)?;
/// # Ok::<(), fcgi_cgi::ConfigError>(())
/// ```
#[derive(Clone, Debug)]
pub struct CgiConfig {
    /// Programs must resolve (symlinks followed) to a path under this directory; others get
    /// 403. Also where `SCRIPT_NAME` is looked up when the web server sends neither
    /// `SCRIPT_FILENAME` nor `DOCUMENT_ROOT`. `None`: any executable file the web server names
    /// may run, as with fcgiwrap (`fcgi serve` warns at start, and refuses a TCP listener
    /// without an allow-list).
    pub root: Option<PathBuf>,
    /// How long a program may run, counted from the request's start and covering every wait of
    /// the run (the request body arriving included); then it gets SIGTERM (its process group
    /// does), and SIGKILL [`kill_grace`](CgiConfig::kill_grace) later. `None`: no limit.
    pub timeout: Option<Duration>,
    /// How long a program has between SIGTERM and SIGKILL, to clean up (git, for one, removes
    /// its lock files on SIGTERM).
    pub kill_grace: Duration,
    /// Names of our own environment variables that programs also get (`PATH`,
    /// `GIT_PROJECT_ROOT`, ...); the values are read once, when the gateway is made. Nothing
    /// else of our environment reaches a program. Unlike the request's params, these are not
    /// screened ([`crate::env::screen`]): the operator chose them, so `LD_LIBRARY_PATH` or
    /// `TMPDIR` can be given to programs on purpose this way.
    pub pass_env: Vec<String>,
    /// Whether a query string without `=` becomes the program's arguments (RFC 3875 section
    /// 4.4). Off by default: it puts client input on command lines.
    pub argv_from_query: bool,
    /// Where the gateway logs: refusals, programs' stderr lines (with the script's name),
    /// timeouts, programs that answered nothing valid.
    pub logger: Logger,
}

impl CgiConfig {
    /// The default [`timeout`](CgiConfig::timeout): as long as nginx waits for a response
    /// (`fastcgi_read_timeout`, 60 s by default); past it nobody is reading anyway.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
    /// The default [`kill_grace`](CgiConfig::kill_grace): what systemd gives a service between
    /// SIGTERM and SIGKILL is 90 s; a request cannot wait that long, 5 s is enough to remove a
    /// lock file.
    pub const DEFAULT_KILL_GRACE: Duration = Duration::from_secs(5);
}

impl Default for CgiConfig {
    fn default() -> CgiConfig {
        CgiConfig {
            root: None,
            timeout: Some(CgiConfig::DEFAULT_TIMEOUT),
            kill_grace: CgiConfig::DEFAULT_KILL_GRACE,
            pass_env: Vec::new(),
            argv_from_query: false,
            logger: Logger::root(slog::Discard, slog::o!()),
        }
    }
}

/// Why a [`CgiConfig`] cannot make a gateway.
#[derive(Debug)]
pub enum ConfigError {
    /// The root cannot be resolved (it does not exist, or may not be read).
    Root(PathBuf, io::Error),
    /// The root is not a directory.
    RootNotDirectory(PathBuf),
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Root(root, e) => write!(f, "CGI root {}: {e}", root.display()),
            ConfigError::RootNotDirectory(root) => {
                write!(f, "CGI root {} is not a directory", root.display())
            }
        }
    }
}

impl std::error::Error for ConfigError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ConfigError::Root(_, e) => Some(e),
            ConfigError::RootNotDirectory(_) => None,
        }
    }
}
