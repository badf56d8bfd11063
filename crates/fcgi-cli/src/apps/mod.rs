//! The built-in apps, served by `fcgi serve` as one fcgi-serve [`App`]: `--app` picks one, and
//! the CGI gateway's options come with it. Other tests and benchmarks rely on exactly what
//! they answer.

pub(crate) mod cgi;
mod echo;
mod exec;
mod hello;

use clap::{Args, ValueEnum};
use fcgi_serve::{App, Problem, Processes, Program, Serving};
use fcgi_server::{ListenAddr, Listener, Role, ServerBuilder};
use slog::{warn, Logger};

use self::cgi::{exposure, CgiArgs, Exposure, OPEN_REFUSED};
use self::exec::ExecArgs;

/// `fcgi serve`: fcgi-serve's options after `fcgi serve`.
pub(crate) fn program() -> Program {
    Program::new("fcgi")
        .subcommand("serve")
        .about("Serve a built-in app over FastCGI (behind nginx, Apache, lighttpd, Caddy, ...)")
        .version(env!("CARGO_PKG_VERSION"))
}

/// The built-in apps.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum AppKind {
    /// `Hello, world!` as text/plain.
    Hello,
    /// POST and PUT: the request body back, streamed; other methods: the params, one per line.
    Echo,
    /// A CGI/1.1 gateway, like fcgiwrap: runs the program SCRIPT_FILENAME names (see the CGI
    /// options below).
    Cgi,
    /// Any FastCGI program (php-cgi, FCGI.pm, flup, libfcgi), run, scaled and supervised:
    /// `--app exec -- PROGRAM [ARGS...]` (see the program options below).
    Exec,
}

impl AppKind {
    /// Its name as given on the command line (`hello`).
    fn name(self) -> &'static str {
        match self {
            AppKind::Hello => "hello",
            AppKind::Echo => "echo",
            AppKind::Cgi => "cgi",
            AppKind::Exec => "exec",
        }
    }
}

/// `fcgi serve`'s own options: the app, and the CGI gateway's.
#[derive(Debug, Args)]
pub(crate) struct BuiltinOptions {
    /// The app to serve (required, on the command line or in --config).
    #[arg(
        long,
        value_enum,
        required = false,
        required_unless_present = "config",
        display_order = 1
    )]
    pub(crate) app: AppKind,

    #[command(flatten)]
    pub(crate) cgi: CgiArgs,

    #[command(flatten)]
    pub(crate) exec: ExecArgs,
}

/// The built-in apps as one [`App`].
#[derive(Debug)]
pub(crate) struct Builtins;

impl App for Builtins {
    type Options = BuiltinOptions;

    fn name(&self, options: &BuiltinOptions) -> String {
        options.app.name().to_owned()
    }

    /// Any CGI option with another app is an error; so is a gateway open to anyone, as far as
    /// the addresses tell (inherited sockets are checked when adopted, in `started`).
    fn check(&self, options: &BuiltinOptions, serving: &Serving<'_>) -> Vec<Problem> {
        let mut problems = Vec::new();
        let app = options.app.name();
        if options.app != AppKind::Cgi {
            for option in cgi_options().iter().filter(|o| serving.given.contains(*o)) {
                // Programs get --pass-env variables too.
                if options.app == AppKind::Exec && option == "pass-env" {
                    continue;
                }
                problems.push(Problem::error(
                    option,
                    format!("--{option} does nothing with --app {app}: it is for --app cgi"),
                ));
            }
        }
        if options.app != AppKind::Exec {
            for option in exec_options().iter().filter(|o| serving.given.contains(*o)) {
                problems.push(Problem::error(
                    option,
                    format!("--{option} does nothing with --app {app}: it is for --app exec"),
                ));
            }
            if !options.exec.program.is_empty() {
                problems.push(Problem::error(
                    "app",
                    format!(
                        "a program after -- does nothing with --app {app}: it is for --app exec"
                    ),
                ));
            }
        } else {
            problems.extend(exec_problems(options, serving));
        }
        if options.app == AppKind::Cgi && !serving.listen.is_empty() {
            let tcp = serving.listen.iter().any(|a| matches!(a, ListenAddr::Tcp(_)));
            if exposure(options.cgi.cgi_root.is_some(), tcp, has_allow_list(serving))
                == Exposure::Open
            {
                problems.push(Problem::error("cgi-root", OPEN_REFUSED));
            }
        }
        problems
    }

    /// The gateway's exposure from the sockets themselves (refused when open to anyone), and
    /// the start-up warnings: no `--cgi-root`, or CGI programs that would run as root.
    fn started(
        &self,
        options: &BuiltinOptions,
        serving: &Serving<'_>,
        listeners: &[Listener],
        log: &Logger,
    ) -> Result<(), String> {
        if options.app != AppKind::Cgi {
            return Ok(());
        }
        let tcp = listeners.iter().any(Listener::is_tcp);
        match exposure(options.cgi.cgi_root.is_some(), tcp, has_allow_list(serving)) {
            Exposure::Open => return Err(OPEN_REFUSED.to_owned()),
            Exposure::Unconfined => {
                warn!(log, "the CGI gateway has no --cgi-root: any executable file a peer names \
                    may run (give --cgi-root DIR, or --cgi-root / to say so on purpose)";
                    "cgi_root" => "none", "confinement" => "none");
            }
            Exposure::Confined => {}
        }
        let euid = rustix::process::geteuid().as_raw();
        if cgi::warns_as_root(euid, serving.user.is_some()) {
            warn!(log, "running as root with the CGI gateway and no --user: every CGI program \
                will run as root (give --user, e.g. --user www-data)"; "uid" => euid);
        }
        Ok(())
    }

    fn install(
        &self,
        options: &BuiltinOptions,
        builder: ServerBuilder,
        log: &Logger,
    ) -> Result<ServerBuilder, String> {
        Ok(match options.app {
            AppKind::Hello => builder.responder(hello::hello),
            AppKind::Echo => builder.responder(echo::echo),
            AppKind::Cgi => builder.handler(Role::Responder, cgi::gateway(&options.cgi, log)?),
            AppKind::Exec => return Err("--app exec runs its own processes".into()),
        })
    }

    /// `exec` sizes its program processes with the process options.
    fn runs_programs(&self, options: &BuiltinOptions) -> bool {
        options.app == AppKind::Exec
    }

    fn chroots_programs(&self, options: &BuiltinOptions) -> bool {
        options.app == AppKind::Exec && options.exec.chroot.is_some()
    }

    fn install_programs(
        &self,
        options: &BuiltinOptions,
        processes: &Processes,
        builder: ServerBuilder,
        log: &Logger,
    ) -> Result<ServerBuilder, String> {
        exec::install(&options.exec, processes, &options.cgi.pass_env, builder, log)
    }
}

/// What is wrong with `--app exec`'s options: no program (or two), one that cannot run, sizes
/// or limits that cannot work.
fn exec_problems(options: &BuiltinOptions, serving: &Serving<'_>) -> Vec<Problem> {
    let discard = Logger::root(slog::Discard, slog::o!());
    let config = match options.exec.config(&serving.processes, &options.cgi.pass_env, &discard) {
        Ok(config) => config,
        Err(e) => return vec![Problem::error("exec", e)],
    };
    match fcgi_exec::check(&config) {
        Ok(_) => Vec::new(),
        Err(e) => {
            let option = match e {
                fcgi_exec::ConfigError::Scale(_) => "workers",
                fcgi_exec::ConfigError::Limit(_) => "rlimit-nofile",
                fcgi_exec::ConfigError::Chroot(_) => "chroot",
                _ => "exec",
            };
            vec![Problem::error(option, e.to_string())]
        }
    }
}

/// Whether `--allow` or `FCGI_WEB_SERVER_ADDRS` names the peers that may connect over TCP.
fn has_allow_list(serving: &Serving<'_>) -> bool {
    !serving.allow.is_empty()
        || fcgi_server::web_server_addrs_from_env().is_some_and(|(addrs, _)| !addrs.is_empty())
}

/// The long names of the CGI gateway's options, from their definitions (so a new one is
/// covered without a list to keep).
fn cgi_options() -> Vec<String> {
    CgiArgs::augment_args(clap::Command::new("cgi"))
        .get_arguments()
        .filter_map(|arg| arg.get_long().map(str::to_owned))
        .collect()
}

/// The long names of `--app exec`'s options.
fn exec_options() -> Vec<String> {
    ExecArgs::augment_args(clap::Command::new("exec"))
        .get_arguments()
        .filter_map(|arg| arg.get_long().map(str::to_owned))
        .collect()
}

/// `fcgi serve`'s command line, for `fcgi --help`, the man pages and the completions.
pub(crate) fn serve_command() -> clap::Command {
    program().command::<Builtins>()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_cgi_option_is_known() {
        let options = cgi_options();
        for option in ["cgi-root", "cgi-timeout", "cgi-kill-grace", "pass-env", "cgi-argv"] {
            assert!(options.iter().any(|o| o == option), "{option} in {options:?}");
        }
    }
}
