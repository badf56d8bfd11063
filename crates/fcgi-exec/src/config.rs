//! What an [`Exec`](crate::Exec) runs and how many: the program, its processes' sizing, their
//! limits, and the checks of all of it that need no process.

use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use slog::Logger;

/// How many program processes run (PHP-FPM's `pm`).
///
/// ```
/// use fcgi_exec::Scale;
///
/// assert_eq!(Scale::Static { processes: 4 }.max(), 4);
/// assert_eq!(Scale::OnDemand { max: 8, idle_timeout: std::time::Duration::from_secs(10) }.max(), 8);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scale {
    /// Always this many (`pm = static`).
    Static {
        /// The processes.
        processes: usize,
    },
    /// `start` at first, then between the spare bounds of idle ones, at most `max`
    /// (`pm = dynamic`).
    Dynamic {
        /// Processes started at first.
        start: usize,
        /// Idle processes below this many start more.
        min_spare: usize,
        /// Idle processes above this many stop, one per second.
        max_spare: usize,
        /// The most processes at once.
        max: usize,
    },
    /// None while idle; one starts for each request that finds none idle, up to `max`; one
    /// idle for `idle_timeout` stops (`pm = ondemand`).
    OnDemand {
        /// The most processes at once.
        max: usize,
        /// How long a process may stay idle.
        idle_timeout: Duration,
    },
}

impl Scale {
    /// The most processes this scale runs at once.
    pub fn max(&self) -> usize {
        match *self {
            Scale::Static { processes } => processes,
            Scale::Dynamic { max, .. } | Scale::OnDemand { max, .. } => max,
        }
    }

    /// The model's name, as on the status page (`static`, `dynamic`, `ondemand`).
    pub fn name(&self) -> &'static str {
        match self {
            Scale::Static { .. } => "static",
            Scale::Dynamic { .. } => "dynamic",
            Scale::OnDemand { .. } => "ondemand",
        }
    }

    /// Whether the sizes make sense (each error names the option that sets it).
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |message: String| Err(ConfigError::Scale(message));
        match *self {
            Scale::Static { processes: 0 } => bad("--workers must be at least 1".into()),
            Scale::Dynamic { max: 0, .. } | Scale::OnDemand { max: 0, .. } => {
                bad("--max-workers must be at least 1".into())
            }
            Scale::Dynamic { start, min_spare, max_spare, max } => {
                if min_spare > max_spare {
                    bad(format!(
                        "--min-spare-workers ({min_spare}) must not exceed --max-spare-workers \
                         ({max_spare})"
                    ))
                } else if max_spare > max {
                    bad(format!(
                        "--max-spare-workers ({max_spare}) must not exceed --max-workers ({max})"
                    ))
                } else if start > max {
                    bad(format!("--workers ({start}) must not exceed --max-workers ({max})"))
                } else {
                    Ok(())
                }
            }
            Scale::OnDemand { idle_timeout, .. } if idle_timeout.is_zero() => {
                bad("--worker-idle-timeout must be at least 1 second".into())
            }
            _ => Ok(()),
        }
    }
}

/// Everything an [`Exec`](crate::Exec) needs: the program, the scale, the limits.
#[derive(Clone, Debug)]
pub struct ExecConfig {
    /// The program: a path, or a name looked up in `PATH` (see [`resolve_program`]).
    pub program: PathBuf,
    /// Its arguments.
    pub args: Vec<OsString>,
    /// How many processes run.
    pub scale: Scale,
    /// A process is replaced after this many requests (0: never).
    pub max_requests: u64,
    /// Each process adds a random `0..=jitter` to `max_requests`.
    pub max_requests_jitter: u64,
    /// A request running longer has its process stopped (TERM, then KILL after `kill_grace`)
    /// and is answered `504`, or cut short once its answer has begun.
    pub request_timeout: Option<Duration>,
    /// Between TERM and KILL, whenever a process is stopped.
    pub kill_grace: Duration,
    /// How long a request waits for an idle process; then `503` with `Retry-After`.
    pub queue_timeout: Option<Duration>,
    /// Variables of our own environment the programs also get (`--pass-env`).
    pub pass_env: Vec<String>,
    /// The programs' `RLIMIT_NOFILE` (PHP-FPM's `rlimit_files`).
    pub rlimit_nofile: Option<u64>,
    /// The programs' `RLIMIT_CORE`, in bytes (PHP-FPM's `rlimit_core`).
    pub rlimit_core: Option<u64>,
    /// The directory the programs run chrooted in (PHP-FPM's `chroot`); the program's path
    /// is then inside it.
    pub chroot: Option<PathBuf>,
    /// Keep one connection open to each process for all its requests (`FCGI_KEEP_CONN`),
    /// rather than one per request.
    pub keep_conn: bool,
    /// Where the program processes' sockets go: a private directory is made in it.
    pub socket_dir: PathBuf,
    /// Where the log lines go.
    pub logger: Logger,
}

impl ExecConfig {
    /// 5 s between TERM and KILL: php-cgi and FCGI.pm finish a request in far less, and a
    /// reload should not wait long on a stuck one.
    pub const DEFAULT_KILL_GRACE: Duration = Duration::from_secs(5);
    /// 10 s idle before an on-demand process stops, as PHP-FPM's `pm.process_idle_timeout`.
    pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(10);

    /// A config for `program` with its defaults: 2 static processes, kept connections, no
    /// limits, sockets under the system's temporary directory.
    ///
    /// ```
    /// let config = fcgi_exec::ExecConfig::new("/usr/bin/php-cgi", slog::Logger::root(slog::Discard, slog::o!()));
    /// assert_eq!(config.scale, fcgi_exec::Scale::Static { processes: 2 });
    /// ```
    pub fn new(program: impl Into<PathBuf>, logger: Logger) -> ExecConfig {
        ExecConfig {
            program: program.into(),
            args: Vec::new(),
            scale: Scale::Static { processes: 2 },
            max_requests: 0,
            max_requests_jitter: 0,
            request_timeout: None,
            kill_grace: Self::DEFAULT_KILL_GRACE,
            queue_timeout: Some(Duration::from_secs(5)),
            pass_env: Vec::new(),
            rlimit_nofile: None,
            rlimit_core: None,
            chroot: None,
            keep_conn: true,
            socket_dir: std::env::temp_dir(),
            logger,
        }
    }
}

/// Why an [`Exec`](crate::Exec) cannot run as configured.
#[derive(Debug)]
pub enum ConfigError {
    /// The program is not found, or not an executable file.
    Program(String),
    /// The process sizes contradict each other.
    Scale(String),
    /// A limit cannot be applied (above the hard limit of a process that may not raise it).
    Limit(String),
    /// The chroot directory is unusable.
    Chroot(String),
    /// The private socket directory cannot be made.
    SocketDir(PathBuf, std::io::Error),
    /// The supervisor thread cannot start.
    Thread(std::io::Error),
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Program(message)
            | ConfigError::Scale(message)
            | ConfigError::Limit(message)
            | ConfigError::Chroot(message) => f.write_str(message),
            ConfigError::SocketDir(dir, e) => {
                write!(f, "cannot make the programs' socket directory in {}: {e}", dir.display())
            }
            ConfigError::Thread(e) => write!(f, "cannot start the programs' supervisor: {e}"),
        }
    }
}

impl std::error::Error for ConfigError {}

/// The program's file: `program` itself when it has a `/`, else the first match in `path`
/// (a `PATH` value); checked to be an executable regular file. Inside `chroot`, when given.
///
/// ```
/// let sh = fcgi_exec::resolve_program("sh".as_ref(), Some("/usr/bin:/bin".as_ref()), None).unwrap();
/// assert!(sh.ends_with("sh"));
/// assert!(fcgi_exec::resolve_program("/nonexistent/php-cgi".as_ref(), None, None).is_err());
/// ```
pub fn resolve_program(
    program: &Path,
    path: Option<&std::ffi::OsStr>,
    chroot: Option<&Path>,
) -> Result<PathBuf, ConfigError> {
    let inside = |p: &Path| match chroot {
        Some(root) => root.join(p.strip_prefix("/").unwrap_or(p)),
        None => p.to_path_buf(),
    };
    let shown = program.display();
    if program.as_os_str().is_empty() {
        return Err(ConfigError::Program(
            "--app exec needs a program: -- PROGRAM [ARGS...], \
            or exec = PROGRAM ARGS... in the config file"
                .into(),
        ));
    }
    if program.as_os_str().as_encoded_bytes().contains(&b'/') {
        let file = inside(program);
        return check_executable(&file)
            .map(|()| program.to_path_buf())
            .map_err(|why| ConfigError::Program(format!("the program {shown} {why}")));
    }
    let path = path.unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".as_ref());
    for dir in std::env::split_paths(path) {
        let candidate = dir.join(program);
        if check_executable(&inside(&candidate)).is_ok() {
            return Ok(candidate);
        }
    }
    Err(ConfigError::Program(format!(
        "the program {shown} is not found in PATH ({}); give its full path",
        path.to_string_lossy()
    )))
}

/// Why `file` cannot be run, if it cannot.
fn check_executable(file: &Path) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(file).map_err(|e| format!("cannot be used: {e}"))?;
    if !meta.is_file() {
        return Err("is not a regular file".into());
    }
    if meta.permissions().mode() & 0o111 == 0 {
        return Err("is not executable (chmod +x it)".into());
    }
    Ok(())
}

/// Splits a command line as a shell would, without running one: words apart at blanks,
/// `'...'` kept literally, `"..."` with `\"`, `\\`, `\$` and `` \` `` escapes, `\` outside
/// quotes escaping the next character. No expansion of variables, globs or `~`. For the
/// config file's `exec = PROGRAM ARGS...`.
///
/// ```
/// assert_eq!(
///     fcgi_exec::split_words(r#"php-cgi -d "memory_limit = 64M" -c '/etc/php x.ini'"#).unwrap(),
///     ["php-cgi", "-d", "memory_limit = 64M", "-c", "/etc/php x.ini"]
/// );
/// assert!(fcgi_exec::split_words("perl 'unterminated").is_err());
/// ```
pub fn split_words(line: &str) -> Result<Vec<String>, String> {
    #[derive(PartialEq)]
    enum Quote {
        None,
        Single,
        Double,
    }
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut quote = Quote::None;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match (&quote, c) {
            (Quote::None, c) if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            (Quote::None, '\'') => (quote, in_word) = (Quote::Single, true),
            (Quote::None, '"') => (quote, in_word) = (Quote::Double, true),
            (Quote::None, '\\') => {
                in_word = true;
                match chars.next() {
                    Some(next) => word.push(next),
                    None => return Err("a \\ ends the line with nothing to escape".into()),
                }
            }
            (Quote::Single, '\'') | (Quote::Double, '"') => quote = Quote::None,
            (Quote::Double, '\\') => match chars.next() {
                Some(next @ ('"' | '\\' | '$' | '`')) => word.push(next),
                Some(next) => {
                    word.push('\\');
                    word.push(next);
                }
                None => return Err("a \\ ends the line inside \"...\"".into()),
            },
            (_, c) => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if quote != Quote::None {
        return Err("a quote is not closed".into());
    }
    if in_word {
        words.push(word);
    }
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_as_a_shell_splits_them() {
        let table: [(&str, Result<&[&str], ()>); 9] = [
            ("", Ok(&[])),
            ("  php-cgi  ", Ok(&["php-cgi"])),
            ("a b\tc", Ok(&["a", "b", "c"])),
            ("a 'b c' d", Ok(&["a", "b c", "d"])),
            (r#"a "b \"c\" \$d \x""#, Ok(&["a", r#"b "c" $d \x"#])),
            (r"a\ b", Ok(&["a b"])),
            ("''", Ok(&[""])),
            ("a 'b", Err(())),
            ("a\\", Err(())),
        ];
        for (line, want) in table {
            let got = split_words(line).map_err(|_| ());
            let want = want.map(|w| w.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>());
            assert_eq!(got, want, "{line:?}");
        }
    }

    #[test]
    fn scales_that_contradict_themselves_are_refused() {
        let secs = Duration::from_secs;
        let dynamic =
            |start, min_spare, max_spare, max| Scale::Dynamic { start, min_spare, max_spare, max };
        let table = [
            (Scale::Static { processes: 0 }, false),
            (Scale::Static { processes: 4 }, true),
            (dynamic(2, 1, 3, 8), true),
            (dynamic(2, 4, 3, 8), false),
            (dynamic(2, 1, 9, 8), false),
            (dynamic(9, 1, 3, 8), false),
            (dynamic(0, 0, 0, 0), false),
            (Scale::OnDemand { max: 4, idle_timeout: secs(10) }, true),
            (Scale::OnDemand { max: 0, idle_timeout: secs(10) }, false),
            (Scale::OnDemand { max: 4, idle_timeout: secs(0) }, false),
        ];
        for (scale, ok) in table {
            assert_eq!(scale.validate().is_ok(), ok, "{scale:?}");
        }
    }

    #[test]
    fn a_program_that_cannot_run_is_named_with_why() {
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("plain");
        std::fs::write(&plain, "#!/bin/sh\n").unwrap();
        let err = resolve_program(&plain, None, None).unwrap_err().to_string();
        assert!(err.contains("not executable"), "{err}");
        let err = resolve_program(dir.path(), None, None).unwrap_err().to_string();
        assert!(err.contains("not a regular file"), "{err}");
        let err = resolve_program("no-such-program-here".as_ref(), Some("/bin".as_ref()), None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("not found in PATH"), "{err}");
    }
}
