//! `exec`: any FastCGI program (the fcgi-exec crate), run, scaled and supervised, with its
//! command-line options.

use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;
use fcgi_exec::{Exec, ExecConfig, Scale};
use fcgi_serve::{ProcessModel, Processes};
use fcgi_server::{Role, ServerBuilder};
use slog::Logger;

/// The options of `--app exec`.
#[derive(Debug, Args)]
#[command(next_help_heading = "FastCGI programs (--app exec)")]
pub(crate) struct ExecArgs {
    /// The program and its arguments as one line, split as a shell would (no shell runs):
    /// for the config file's `exec = PROGRAM ARGS...`. On the command line, give them after
    /// `--` instead. The process options (--workers, --process-model, --max-workers,
    /// --max-requests, --request-timeout) size and recycle its processes.
    #[arg(long, value_name = "COMMAND")]
    pub(crate) exec: Option<String>,

    /// The programs' descriptor limit, RLIMIT_NOFILE (PHP-FPM's rlimit_files).
    #[arg(long, value_name = "N")]
    pub(crate) rlimit_nofile: Option<u64>,

    /// The programs' core file size limit in bytes, RLIMIT_CORE (PHP-FPM's rlimit_core); 0:
    /// no core files.
    #[arg(long, value_name = "BYTES", value_parser = fcgi_serve::parse_bytes::<u64>)]
    pub(crate) rlimit_core: Option<u64>,

    /// Run the programs chrooted in DIR (PHP-FPM's chroot); the program's path is then
    /// inside DIR. Needs fcgi-rs started as root; with --user, the serving worker keeps
    /// CAP_SYS_CHROOT (alone) to chroot them, and each program runs as that user with none.
    #[arg(long, value_name = "DIR")]
    pub(crate) chroot: Option<PathBuf>,

    /// How fcgi-rs talks to each program process: one connection kept for all its requests
    /// (FCGI_KEEP_CONN), or a new connection per request (for a program that mishandles kept
    /// connections).
    #[arg(long, value_enum, default_value_t = Connection::Kept)]
    pub(crate) program_connection: Connection,

    /// The program and its arguments (after `--`).
    #[arg(last = true, value_name = "PROGRAM")]
    pub(crate) program: Vec<OsString>,
}

/// `--program-connection`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Connection {
    /// One connection per process, kept (FCGI_KEEP_CONN).
    Kept,
    /// A connection per request.
    PerRequest,
}

impl ExecArgs {
    /// The program and its arguments, from `--` or `--exec`.
    pub(crate) fn command(&self) -> Result<Vec<OsString>, String> {
        match (&self.exec, self.program.is_empty()) {
            (Some(_), false) => Err("the program is given twice: after -- and as --exec; \
                keep one"
                .into()),
            (Some(line), true) => {
                let words = fcgi_exec::split_words(line).map_err(|e| format!("--exec: {e}"))?;
                Ok(words.into_iter().map(OsString::from).collect())
            }
            (None, false) => Ok(self.program.clone()),
            (None, true) => Err("--app exec needs a program: fcgi serve --app exec [OPTIONS] -- \
                PROGRAM [ARGS...], or exec = PROGRAM ARGS... in the --config file"
                .into()),
        }
    }

    /// The fcgi-exec config of these options and the process options.
    pub(crate) fn config(
        &self,
        processes: &Processes,
        pass_env: &[String],
        log: &Logger,
    ) -> Result<ExecConfig, String> {
        let mut words = self.command()?.into_iter();
        let program = words.next().unwrap_or_default();
        let mut config = ExecConfig::new(program, log.new(slog::o!("app" => "exec")));
        config.args = words.collect();
        config.scale = scale(processes);
        config.max_requests = processes.max_requests;
        config.max_requests_jitter = processes.max_requests_jitter;
        config.request_timeout = processes.request_timeout;
        config.queue_timeout = processes.queue_timeout;
        config.pass_env = pass_env.to_vec();
        config.rlimit_nofile = self.rlimit_nofile;
        config.rlimit_core = self.rlimit_core;
        config.chroot = self.chroot.clone();
        config.keep_conn = self.program_connection == Connection::Kept;
        Ok(config)
    }
}

/// The scale the process options describe; static without `--workers` runs one process per
/// CPU, at least 2 (one program process serves one request at a time).
pub(crate) fn scale(processes: &Processes) -> Scale {
    match processes.model {
        ProcessModel::Static => {
            let processes = if processes.workers_given {
                processes.workers
            } else {
                std::thread::available_parallelism().map_or(2, |n| n.get()).max(2)
            };
            Scale::Static { processes }
        }
        ProcessModel::Dynamic => Scale::Dynamic {
            start: processes.workers,
            min_spare: processes.min_spare,
            max_spare: processes.max_spare,
            max: processes.max_workers,
        },
        ProcessModel::OnDemand => {
            Scale::OnDemand { max: processes.max_workers, idle_timeout: processes.idle_timeout }
        }
    }
}

/// Installs the program's handler for every role: what the web server asks of it is the
/// program's to answer.
pub(crate) fn install(
    args: &ExecArgs,
    processes: &Processes,
    pass_env: &[String],
    builder: ServerBuilder,
    log: &Logger,
) -> Result<ServerBuilder, String> {
    let config = args.config(processes, pass_env, log)?;
    let exec =
        Arc::new(Exec::start_measured(config, processes.status_page).map_err(|e| e.to_string())?);
    let source = Arc::clone(&exec);
    Ok(builder
        .handler(Role::Responder, Arc::clone(&exec))
        .handler(Role::Authorizer, Arc::clone(&exec))
        .handler(Role::Filter, exec)
        .processes(Box::new(move || source.status().into())))
}
