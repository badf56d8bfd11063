//! `fcgi`: the command operators run.

mod access_log;
mod apps;
mod args;
mod bench;
mod config_file;
mod generate;
mod limits;
mod logging;
mod prefork;
mod privileges;
mod process_args;
mod request;
mod serve;
mod title;

use std::process::ExitCode;

use clap::Parser;

use crate::args::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve::run(*args),
        Command::Request(args) => request::run(*args),
        Command::Bench(args) => bench::run(*args),
        Command::Generate(args) => generate::run(args),
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
