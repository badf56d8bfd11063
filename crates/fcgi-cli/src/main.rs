//! `fcgi`: the command operators run.

mod access_log;
mod apps;
mod args;
mod bench;
mod checks;
mod config_file;
mod generate;
mod json;
mod limits;
mod logging;
mod prefork;
mod privileges;
mod process_args;
mod request;
mod serve;
mod term;
mod title;

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches};

use crate::args::{Cli, Command};

fn main() -> ExitCode {
    // Checked by clap first (usage errors, --help, --version exit here); `serve` then reads
    // its options again with its --config file, which may hold any of them, --app included.
    let matches = Cli::command().get_matches();
    let result = if matches.subcommand_name() == Some("serve") {
        serve::run()
    } else {
        match Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit()).command {
            Command::Request(args) => request::run(*args),
            Command::Bench(args) => bench::run(*args),
            Command::Generate(args) => generate::run(args),
            Command::Serve(_) => unreachable!("handled above"),
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Usage(message)) => {
            eprintln!("fcgi: {message}");
            ExitCode::from(2)
        }
        Err(Failure::Runtime(message)) => {
            eprintln!("fcgi: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Why a command failed, which decides its exit status.
pub(crate) enum Failure {
    /// The command line asks for something impossible: exit status 2, as for a parse error.
    Usage(String),
    /// Something failed while running.
    Runtime(String),
}
