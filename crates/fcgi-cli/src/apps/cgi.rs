//! `cgi`: the CGI gateway (the fcgi-cgi crate), with its command-line options.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use fcgi_cgi::{CgiConfig, Gateway};
use slog::Logger;

/// The options of `--app cgi`.
#[derive(Debug, Args)]
#[command(next_help_heading = "CGI gateway (--app cgi)")]
pub(crate) struct CgiArgs {
    /// Run only programs that resolve (symlinks followed) to a path under DIR; others get 403.
    /// Also where SCRIPT_NAME is looked up when the web server sends neither SCRIPT_FILENAME
    /// nor DOCUMENT_ROOT. Without it, any executable the web server names may run: a warning
    /// at start, and a TCP listener without --allow is refused (`--cgi-root /` allows every
    /// program on purpose).
    #[arg(long, value_name = "DIR")]
    pub(crate) cgi_root: Option<PathBuf>,

    /// Seconds a program may run before it is stopped (SIGTERM, then SIGKILL); 504 if it had
    /// sent no header. The whole run counts, a request body still arriving included. 0: no
    /// limit.
    #[arg(long, value_name = "SECS", default_value_t = CgiConfig::DEFAULT_TIMEOUT.as_secs())]
    pub(crate) cgi_timeout: u64,

    /// Seconds between SIGTERM and SIGKILL when a program is stopped.
    #[arg(long, value_name = "SECS", default_value_t = CgiConfig::DEFAULT_KILL_GRACE.as_secs())]
    pub(crate) cgi_kill_grace: u64,

    /// Also give programs this variable of our own environment (PATH, GIT_PROJECT_ROOT, ...).
    /// Repeatable. Nothing else of our environment reaches them. Not screened as params from
    /// the web server are (LD_*, BASH_ENV, ... are dropped from those): the operator chose it.
    #[arg(long, value_name = "NAME")]
    pub(crate) pass_env: Vec<String>,

    /// Turn a query string without `=` into the program's arguments (RFC 3875 section 4.4).
    #[arg(long)]
    pub(crate) cgi_argv: bool,

    /// Kill a program when the server process dies (PR_SET_PDEATHSIG), for a single process
    /// killed with no master or service manager to clean up after it. Costs a fork per program
    /// instead of posix_spawn (a third to half fewer per second for a trivial script). Under a master, or a
    /// systemd unit (its cgroup), the programs of a dead process are killed without it.
    #[arg(long)]
    pub(crate) cgi_die_with_server: bool,
}

/// The gateway these options describe; an error says which option is wrong.
pub(crate) fn gateway(args: &CgiArgs, log: &Logger) -> Result<Gateway, String> {
    fcgi_cgi::child::die_with_server(args.cgi_die_with_server);
    let config = CgiConfig {
        root: args.cgi_root.clone(),
        timeout: Some(Duration::from_secs(args.cgi_timeout)).filter(|t| !t.is_zero()),
        kill_grace: Duration::from_secs(args.cgi_kill_grace),
        pass_env: args.pass_env.clone(),
        argv_from_query: args.cgi_argv,
        logger: log.new(slog::o!("app" => "cgi")),
    };
    Gateway::new(config).map_err(|e| format!("--cgi-root: {e}"))
}

/// Whether to warn at start that CGI programs would run as root: started as root (`euid`) with
/// no `--user`.
pub(crate) fn warns_as_root(euid: u32, user_given: bool) -> bool {
    euid == 0 && !user_given
}

/// How far the gateway is confined, decided at start from the options and the listeners.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Exposure {
    /// `--cgi-root` is given: only programs under it run.
    Confined,
    /// No root: any executable file a peer names runs (`SCRIPT_FILENAME=/bin/sh`, with the
    /// request body as its script). Only the peers the operator let in can be that peer (a Unix
    /// socket's mode, or an allow-list), so it starts, with a warning.
    Unconfined,
    /// No root and a TCP listener that any host reaching it may use: anyone could run any
    /// program as us. Refused.
    Open,
}

/// The [`Exposure`] of a CGI gateway: `has_root` (`--cgi-root`), `tcp` (any listener is TCP),
/// `allow_list` (`--allow` or `FCGI_WEB_SERVER_ADDRS` names peers).
pub(crate) fn exposure(has_root: bool, tcp: bool, allow_list: bool) -> Exposure {
    match (has_root, tcp, allow_list) {
        (true, _, _) => Exposure::Confined,
        (false, true, false) => Exposure::Open,
        (false, _, _) => Exposure::Unconfined,
    }
}

/// Why `fcgi serve` refuses an [`Exposure::Open`] gateway, and what to do.
pub(crate) const OPEN_REFUSED: &str = "--app cgi without --cgi-root runs any program a peer \
    names (SCRIPT_FILENAME=/bin/sh runs the request body), and a TCP listener without --allow \
    lets any host that reaches it be that peer: give --cgi-root DIR (--cgi-root / allows every \
    program on purpose), or --allow IP (or FCGI_WEB_SERVER_ADDRS), or listen on a Unix socket";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_root_warning_is_for_root_without_user() {
        assert!(warns_as_root(0, false));
        assert!(!warns_as_root(0, true));
        assert!(!warns_as_root(1000, false));
    }

    #[test]
    fn an_unconfined_gateway_on_open_tcp_is_refused() {
        use Exposure::*;
        let table = [
            // (root, tcp, allow-list) -> exposure
            ((true, true, false), Confined),
            ((true, false, false), Confined),
            ((true, true, true), Confined),
            ((false, true, false), Open),
            ((false, true, true), Unconfined),
            ((false, false, false), Unconfined),
            ((false, false, true), Unconfined),
        ];
        for ((root, tcp, allow), expected) in table {
            assert_eq!(
                exposure(root, tcp, allow),
                expected,
                "root {root}, tcp {tcp}, allow {allow}"
            );
        }
    }
}
