//! Options that would do nothing in the chosen app or mode, or that contradict each other:
//! never silent.
//!
//! An option that cannot take effect is an **error** (exit status 2, and a HUP reload that
//! keeps the running workers): it is a mistake in the configuration, such as a CGI option left
//! in the file of a `hello` server, and ignoring it would hide that. It is a **warning** only
//! where the option may well be meant for a setup the server cannot see: a socket option when
//! the sockets are inherited (systemd's, or fd N), which the socket's owner configures.
//!
//! | option | does nothing when | verdict |
//! |---|---|---|
//! | `--workers 0` | always | error |
//! //! | `--max-requests-jitter` | `--max-requests` is 0 | error |
//! | `--min-spare-workers`, `--max-spare-workers`, `--max-workers` | `--process-model static` | error |
//! | `--process-model ondemand` | the app runs no programs of its own (all but `--app exec`) | error |
//! | `--workers`, `--min-spare-workers`, `--max-spare-workers` | `--process-model ondemand` | error |
//! | `--worker-idle-timeout` | any model but ondemand | error |
//! | `--worker-timeout` | no master (a single process) | error |
//! | `--socket-mode`, `--socket-owner` | every `--listen` is TCP | error |
//! | `--socket-mode`, `--socket-owner`, `--backlog` | no `--listen`: the sockets are inherited | warning |
//! | `--allow` | every `--listen` is a Unix socket | error |
//! | `--listen` | the same address twice (`fd:3` twice would be two owners of one descriptor) | error |
//!
//! An [`App`](crate::App) adds the verdicts on its own options (`fcgi serve`: any CGI option
//! when `--app` is not `cgi` is an error).

use std::collections::BTreeSet;

use clap::Args;
use fcgi_server::ListenAddr;

use crate::options::ServeArgs;
use crate::process_args::Model;

/// How bad a [`Problem`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    /// The server refuses to start (exit status 2), and a reload fails.
    Error,
    /// Said at start (logged, with the option in the field `option`) and by `--check`.
    Warning,
}

/// An option that does nothing where it is, or contradicts another.
///
/// ```
/// use fcgi_serve::{Problem, Severity};
///
/// let problem = Problem::error("greeting", "--greeting must not be empty");
/// assert_eq!(problem.severity, Severity::Error);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// The option's long name, without dashes.
    pub option: String,
    /// Whether it refuses the options or is only said.
    pub severity: Severity,
    /// What is wrong, naming the option as `--name` (so the config file's line can be found).
    pub message: String,
}

impl Problem {
    /// An error about `option` (its long name, without dashes).
    pub fn error(option: impl Into<String>, message: impl Into<String>) -> Problem {
        Problem { option: option.into(), severity: Severity::Error, message: message.into() }
    }

    /// A warning about `option` (its long name, without dashes).
    pub fn warning(option: impl Into<String>, message: impl Into<String>) -> Problem {
        Problem { option: option.into(), severity: Severity::Warning, message: message.into() }
    }
}

/// The options only the dynamic process model reads.
const DYNAMIC_ONLY: &[&str] = &["min-spare-workers", "max-spare-workers", "max-workers"];

/// Every option of `args` (and `given`, the long names given explicitly) that does nothing;
/// see the module docs for each verdict.
pub(crate) fn ineffective<O: Args>(
    args: &ServeArgs<O>,
    given: &BTreeSet<String>,
    programs: bool,
) -> Vec<Problem> {
    let mut problems = Vec::new();
    let mut add = |option: &str, severity, message: String| {
        problems.push(Problem { option: option.to_owned(), severity, message });
    };
    if args.process.workers == 0 {
        add("workers", Severity::Error, "--workers must be at least 1".into());
    }
    if given.contains("max-requests-jitter") && args.process.max_requests == 0 {
        add(
            "max-requests-jitter",
            Severity::Error,
            "--max-requests-jitter does nothing without --max-requests".into(),
        );
    }
    if args.process.process_model == Model::Static {
        for option in DYNAMIC_ONLY.iter().filter(|o| given.contains(**o)) {
            add(
                option,
                Severity::Error,
                format!("--{option} does nothing with --process-model static (the default)"),
            );
        }
    }
    if args.process.process_model == Model::Ondemand {
        if !programs {
            add(
                "process-model",
                Severity::Error,
                "--process-model ondemand is for programs an app runs (--app exec): \
                 fcgi-rs's own workers are static or dynamic"
                    .into(),
            );
        }
        for option in ["workers", "min-spare-workers", "max-spare-workers"] {
            if given.contains(option) {
                add(
                    option,
                    Severity::Error,
                    format!(
                        "--{option} does nothing with --process-model ondemand (it starts \
                         processes on demand, up to --max-workers)"
                    ),
                );
            }
        }
    } else if given.contains("worker-idle-timeout") {
        add(
            "worker-idle-timeout",
            Severity::Error,
            "--worker-idle-timeout does nothing without --process-model ondemand".into(),
        );
    }
    if given.contains("worker-timeout") && !args.process.wants_master() && !programs {
        add(
            "worker-timeout",
            Severity::Error,
            "--worker-timeout does nothing in a single process: it needs a master \
             (--master or --workers 2+)"
                .into(),
        );
    }
    let mut seen = BTreeSet::new();
    for addr in &args.listen {
        if !seen.insert(addr.to_string()) {
            add(
                "listen",
                Severity::Error,
                format!("--listen {addr} is given twice: each address is listened on once"),
            );
        }
    }
    let kinds = Kinds::of(&args.listen);
    for option in ["socket-mode", "socket-owner", "backlog"].iter().filter(|o| given.contains(**o))
    {
        if args.listen.is_empty() {
            add(
                option,
                Severity::Warning,
                format!(
                    "--{option} does nothing without --listen: inherited sockets keep what \
                     their owner set (under systemd: the .socket unit)"
                ),
            );
        } else if *option != "backlog" && !kinds.unix && !kinds.fd {
            add(
                option,
                Severity::Error,
                format!(
                    "--{option} does nothing: it is for Unix sockets, and every --listen is TCP"
                ),
            );
        }
    }
    if given.contains("allow") && !args.listen.is_empty() && !kinds.tcp && !kinds.fd {
        add(
            "allow",
            Severity::Error,
            "--allow does nothing: it filters TCP peers, and every --listen is a Unix socket"
                .into(),
        );
    }
    problems
}

/// The kinds of `--listen` addresses given.
#[derive(Debug, Default)]
struct Kinds {
    tcp: bool,
    unix: bool,
    fd: bool,
}

impl Kinds {
    fn of(listen: &[ListenAddr]) -> Kinds {
        let mut kinds = Kinds::default();
        for addr in listen {
            match addr {
                ListenAddr::Tcp(_) => kinds.tcp = true,
                ListenAddr::Unix(_) => kinds.unix = true,
                ListenAddr::Fd(_) => kinds.fd = true,
            }
        }
        kinds
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The problems of `fcgi serve ARGS`: (option, severity) pairs.
    fn problems(line: &str) -> Vec<(String, Severity)> {
        let (args, given) = crate::testing::parse(line);
        ineffective(&args, &given, false).into_iter().map(|p| (p.option, p.severity)).collect()
    }

    fn error(option: &str) -> Vec<(String, Severity)> {
        vec![(option.to_owned(), Severity::Error)]
    }

    fn warning(option: &str) -> Vec<(String, Severity)> {
        vec![(option.to_owned(), Severity::Warning)]
    }

    #[test]
    fn verdicts() {
        let unix = "--listen unix:/run/f.sock";
        let tcp = "--listen 127.0.0.1:9000";
        let cases: Vec<(String, Vec<(String, Severity)>)> = vec![
            ("--app hello".into(), vec![]),
            ("--app hello --workers 0".into(), error("workers")),
            ("--app hello --max-requests-jitter 10".into(), error("max-requests-jitter")),
            ("--app hello --max-requests 100 --max-requests-jitter 10".into(), vec![]),
            ("--app hello --workers 2 --max-workers 8".into(), error("max-workers")),
            ("--app hello --process-model dynamic --max-workers 8".into(), vec![]),
            ("--app hello --worker-timeout 10".into(), error("worker-timeout")),
            ("--app hello --master --worker-timeout 10".into(), vec![]),
            (format!("--app hello {tcp} --socket-mode 660"), error("socket-mode")),
            (format!("--app hello {tcp} {unix} --socket-mode 660"), vec![]),
            (format!("--app hello {unix} --socket-owner 0"), vec![]),
            ("--app hello --socket-mode 660".into(), warning("socket-mode")),
            ("--app hello --backlog 10".into(), warning("backlog")),
            (format!("--app hello {tcp} --backlog 10"), vec![]),
            (format!("--app hello {unix} --allow 127.0.0.1"), error("allow")),
            (format!("--app hello {tcp} --allow 127.0.0.1"), vec![]),
            ("--app hello --allow 127.0.0.1".into(), vec![]),
            ("--app hello --listen fd:3 --listen fd:3".into(), error("listen")),
            (format!("--app hello {unix} {unix}"), error("listen")),
            ("--app hello --listen fd:3 --listen fd:4".into(), vec![]),
            ("--app hello --process-model ondemand".into(), error("process-model")),
            ("--app hello --worker-idle-timeout 5".into(), error("worker-idle-timeout")),
        ];
        for (line, expected) in cases {
            assert_eq!(problems(&line), expected, "fcgi serve {line}");
        }
    }
}
