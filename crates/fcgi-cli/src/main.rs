//! `fcgi`: the command operators run. `fcgi serve` is fcgi-serve's, with the built-in apps
//! ([`apps::Builtins`]); `fcgi request` and `fcgi bench` are FastCGI clients; `fcgi status`
//! asks each pool of a config file through its sockets; `fcgi import-fpm` translates PHP-FPM's
//! configuration.

#![forbid(unsafe_code)]

mod apps;
mod args;
mod bench;
mod failure;
mod import_fpm;
mod json;
mod request;
mod status;

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches};

use crate::args::{Cli, Command};
pub(crate) use crate::failure::Failure;

/// The whole command line: `Cli`'s subcommands and fcgi-serve's `serve`.
fn command() -> clap::Command {
    Cli::command().subcommand(apps::serve_command())
}

fn main() -> ExitCode {
    // Checked by clap first (usage errors, --help, --version exit here); `serve` reads its
    // options again itself, with its --config file, which may hold any of them.
    let matches = command().get_matches();
    if matches.subcommand_name() == Some("serve") {
        return apps::program().run(apps::Builtins);
    }
    let result = match Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit()).command {
        Command::Request(args) => request::run(*args),
        Command::Bench(args) => bench::run(*args),
        Command::Status(args) => status::run(args),
        Command::ImportFpm(args) => import_fpm::run(args),
        Command::Generate(args) => args.run(&command()).map_err(Failure::Runtime),
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

#[cfg(test)]
mod tests {
    use super::*;

    /// `fcgi generate` run as `make install` runs it.
    fn generate(words: &[&str]) -> Result<(), String> {
        let argv = ["fcgi", "generate"].iter().chain(words);
        let matches = command().try_get_matches_from(argv).expect("parses");
        let Command::Generate(args) = Cli::from_arg_matches(&matches).expect("typed").command
        else {
            panic!("generate")
        };
        args.run(&command())
    }

    #[test]
    fn the_name_is_the_binarys() {
        assert_eq!(command().get_name(), "fcgi");
        assert_eq!(apps::serve_command().get_version(), command().get_version());
    }

    #[test]
    fn every_visible_command_has_a_page_and_generate_has_none() {
        let dir = std::env::temp_dir().join(format!("fcgi-man-test-{}", std::process::id()));
        generate(&["man", dir.to_str().expect("utf-8")]).expect("written");
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .expect("the pages")
            .map(|e| e.expect("an entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(
            names,
            [
                "fcgi-bench.1",
                "fcgi-import-fpm.1",
                "fcgi-request.1",
                "fcgi-serve.1",
                "fcgi-status.1",
                "fcgi.1"
            ]
        );
        let page = std::fs::read_to_string(dir.join("fcgi.1")).expect("fcgi.1");
        assert!(page.contains("fcgi\\-serve(1)"), "{page}");
        assert!(!page.contains("generate"), "{page}");
        let serve = std::fs::read_to_string(dir.join("fcgi-serve.1")).expect("fcgi-serve.1");
        assert!(serve.contains("\\-\\-cgi\\-root") && serve.contains("\\-\\-workers"), "{serve}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
