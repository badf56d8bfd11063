//! `--config FILE`: `serve` options from a file, parsed by the same clap definitions as the
//! command line, which wins over it.
//!
//! ```text
//! # /etc/fcgi-rs/serve.conf
//! app = hello
//! workers = 4
//! max-requests = 10000
//! access-log = true
//! ```

use std::ffi::OsString;
use std::path::Path;

use clap::Parser;

use crate::args::{Cli, Command, ServeArgs};

/// The `serve` arguments from the process's command line, with the options of its `--config`
/// file (if any) read now: at start, and again on each SIGHUP.
pub(crate) fn serve_args() -> Result<ServeArgs, String> {
    let argv: Vec<OsString> = std::env::args_os().collect();
    let cli = Cli::try_parse_from(&argv).map_err(|e| e.to_string())?;
    let Command::Serve(args) = cli.command else {
        return Err("not a serve command line".into());
    };
    let Some(path) = args.process.config.clone() else { return Ok(*args) };
    let from_file = file_args(&path)?;
    // The file's options go first: a later occurrence overrides an earlier one, so the
    // command line wins.
    let position = argv.iter().position(|a| a == "serve").map_or(argv.len(), |p| p + 1);
    let mut merged = argv[..position].to_vec();
    merged.extend(from_file.into_iter().map(OsString::from));
    merged.extend_from_slice(&argv[position..]);
    let cli = Cli::try_parse_from(&merged)
        .map_err(|e| format!("{} (with the options of {})", e.render(), path.display()))?;
    match cli.command {
        Command::Serve(args) => Ok(*args),
        _ => Err("not a serve command line".into()),
    }
}

/// The options in the file at `path`, as command-line arguments.
pub(crate) fn file_args(path: &Path) -> Result<Vec<String>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read --config {}: {e}", path.display()))?;
    parse(&text).map_err(|e| format!("{}: {e}", path.display()))
}

fn parse(text: &str) -> Result<Vec<String>, String> {
    let mut args = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let at = number + 1;
        let Some((name, value)) = line.split_once('=') else {
            return Err(format!("line {at}: not `name = value`: {line:?}"));
        };
        let name = name.trim().replace('_', "-");
        let value = value.trim();
        if name.is_empty()
            || !name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        {
            return Err(format!("line {at}: {name:?} is not an option name"));
        }
        if name == "config" {
            return Err(format!("line {at}: a config file cannot name another"));
        }
        match value {
            "true" => args.push(format!("--{name}")),
            "false" => {}
            _ => args.push(format!("--{name}={value}")),
        }
    }
    Ok(args)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_become_long_options() {
        let text =
            "# comment\n\napp = echo\nmax_requests = 100\naccess-log = true\nmaster = false\n";
        assert_eq!(
            parse(text).expect("valid"),
            vec!["--app=echo", "--max-requests=100", "--access-log"]
        );
        assert!(parse("workers 4").is_err());
        assert!(parse("config = other.conf").is_err());
        assert!(parse("Bad Name = 1").is_err());
    }

    #[test]
    fn the_command_line_wins_over_the_file() {
        let file = parse("workers = 4\napp = echo\nlisten = unix:/tmp/a.sock").expect("valid");
        let mut argv: Vec<String> = vec!["fcgi".into(), "serve".into()];
        argv.extend(file);
        argv.extend(["--workers".into(), "2".into()]);
        let cli = Cli::try_parse_from(&argv).expect("parses");
        let Command::Serve(args) = cli.command else { panic!("serve") };
        assert_eq!(args.process.workers, 2);
        assert_eq!(args.listen.len(), 1);
    }
}
