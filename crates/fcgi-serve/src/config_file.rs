//! `--config FILE`: `serve` options from a file, checked by the same clap definitions as the
//! command line.
//!
//! ```text
//! # /etc/fcgi-rs/serve.conf
//! app = hello
//! workers = 4             # a comment may end a line
//! max-requests = 10000
//! max-body = 10M          # bytes: K, M and G multiply by 1024
//! listen = unix:/run/fcgi.sock
//! listen = 127.0.0.1:9000 # repeatable options repeat their line
//! master = true           # a flag: true or false
//! access-log = true       # alone (to the main log), or a FILE
//! ```
//!
//! The rules, for the README and for [`load`]:
//!
//! - one `name = value` per line, `name` a long option of `fcgi serve --help` (`_` may stand
//!   for `-`); blank lines and lines starting with `#` are skipped, and ` #` (a `#` after white
//!   space) starts a comment that ends the line, so a value may hold a `#` that follows no space;
//! - the command line wins for every option: an option given there replaces all of the file's
//!   lines for it, repeatable ones (`listen`, `allow`, `pass-env`) included;
//! - every option may come from the file alone, `app` included;
//! - each line is checked on its own first, so that every bad line is reported with its number;
//!   then the options are checked together (the file's line named where it set the option).

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};

use clap::parser::ValueSource;
use clap::{ArgMatches, Args, Command, FromArgMatches};

use crate::options::ServeArgs;

/// The options a config file may not set: they only make sense on the command line.
const COMMAND_LINE_ONLY: &[&str] = &["config", "check", "help", "version"];

/// A `serve` option from the file: its line, long name, and value (`None`: a flag set true).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(crate) line: usize,
    pub(crate) name: String,
    pub(crate) value: Option<String>,
}

impl Entry {
    /// As a command-line argument.
    fn arg(&self) -> OsString {
        match &self.value {
            Some(value) => format!("--{}={value}", self.name).into(),
            None => format!("--{}", self.name).into(),
        }
    }
}

/// Why the `serve` options cannot be used.
#[derive(Debug)]
pub(crate) enum ConfigError {
    /// The config file cannot be read.
    Read { path: PathBuf, error: std::io::Error },
    /// One line of the config file is wrong: its syntax, its option name, or its value.
    Line { path: PathBuf, line: usize, message: String },
    /// The options together are wrong; `at` is where the file set the option named first in
    /// the message, if it did.
    Options { at: Option<(PathBuf, usize)>, message: String },
}

impl ConfigError {
    /// The config file's line the error is about, if any.
    pub(crate) fn line(&self) -> Option<usize> {
        match self {
            ConfigError::Line { line, .. } | ConfigError::Options { at: Some((_, line)), .. } => {
                Some(*line)
            }
            _ => None,
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Read { path, error } => {
                write!(f, "cannot read --config {}: {error}", path.display())
            }
            ConfigError::Line { path, line, message } => {
                write!(f, "{}:{line}: {message}", path.display())
            }
            ConfigError::Options { at: Some((path, line)), message } => {
                write!(f, "{}:{line}: {message}", path.display())
            }
            ConfigError::Options { at: None, message } => f.write_str(message),
        }
    }
}

/// The `serve` options, from the command line and the config file, with what is needed to
/// check them and to name where each came from.
#[derive(Debug)]
pub(crate) struct Loaded<O: Args> {
    pub(crate) args: ServeArgs<O>,
    /// Long names of the options given explicitly (on the command line or in the file), as
    /// opposed to left at their defaults.
    pub(crate) given: BTreeSet<String>,
    /// The config file, if any, and the line where it set each option it kept (the first
    /// line of a repeated one).
    pub(crate) file: Option<FileLines>,
    /// The file's bad lines, left out of `args`: the options cannot be used while there are
    /// any, but the others are still checked, so that every error is reported at once.
    pub(crate) line_errors: Vec<ConfigError>,
}

/// A config file's path, and the line where it set each option.
pub(crate) type FileLines = (PathBuf, BTreeMap<String, usize>);

impl<O: Args> Loaded<O> {
    /// The error for `message` about the options together, located at the file's line for
    /// the first option the message names (`--name`) when the file set it.
    pub(crate) fn error(&self, message: impl Into<String>) -> ConfigError {
        let message = message.into();
        ConfigError::Options { at: locate(self.file.as_ref(), &message), message }
    }
}

/// Where `file` set the first option `message` names (`--name`), if it did.
fn locate(file: Option<&FileLines>, message: &str) -> Option<(PathBuf, usize)> {
    let (path, lines) = file?;
    message
        .split("--")
        .skip(1)
        .map(|rest| {
            rest.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-')).next().unwrap_or("")
        })
        .find_map(|name| lines.get(name).map(|&line| (path.clone(), line)))
}

/// Reads the serve options from `argv` (the words after those that name the serve command:
/// after `fcgi serve`, or after an app binary's name), as `command` defines them, and the
/// `--config` file they name, if any: at start, and again on each SIGHUP. The file's bad lines
/// are in [`Loaded::line_errors`]; an error here means no options could be made at all.
pub(crate) fn load<O: Args + FromArgMatches>(
    command: &Command,
    argv: &[OsString],
) -> Result<Loaded<O>, Vec<ConfigError>> {
    let matches = parse_with(command, argv)
        .map_err(|e| vec![ConfigError::Options { at: None, message: clap_message(&e) }])?;
    let Some(path) = matches.get_one::<PathBuf>("config").cloned() else {
        let args = typed(&matches, None)?;
        let given = given(command, &matches);
        return Ok(Loaded { args, given, file: None, line_errors: Vec::new() });
    };
    let text = std::fs::read_to_string(&path)
        .map_err(|error| vec![ConfigError::Read { path: path.clone(), error }])?;
    let (entries, errors) = parse(&text);
    let mut line_errors: Vec<ConfigError> = errors
        .into_iter()
        .map(|(line, message)| ConfigError::Line { path: path.clone(), line, message })
        .collect();
    let mut good = Vec::with_capacity(entries.len());
    for entry in entries {
        match check_entry(command, &entry, &path) {
            Ok(()) => good.push(entry),
            Err(message) => line_errors.push(ConfigError::Line {
                path: path.clone(),
                line: entry.line,
                message,
            }),
        }
    }
    // The command line wins: the file's lines for an option it gives are left out, so that a
    // repeatable option is replaced rather than added to. Bad lines are left out too, so that
    // the options of the good ones can still be checked together.
    let on_command_line = given(command, &matches);
    let kept: Vec<&Entry> =
        good.iter().filter(|entry| !on_command_line.contains(&entry.name)).collect();
    let mut lines = BTreeMap::new();
    for entry in &kept {
        lines.entry(entry.name.clone()).or_insert(entry.line);
    }
    let mut merged: Vec<OsString> = kept.iter().map(|entry| entry.arg()).collect();
    merged.extend_from_slice(argv);
    let file = Some((path, lines));
    let matches = parse_with(command, &merged).map_err(|e| {
        let message = clap_message(&e);
        let mut errors = std::mem::take(&mut line_errors);
        errors.push(ConfigError::Options { at: locate(file.as_ref(), &message), message });
        errors
    })?;
    let given = given(command, &matches);
    let args = typed(&matches, file.as_ref().map(|(p, _)| p.as_path()))
        .map_err(|errors| line_errors.drain(..).chain(errors).collect::<Vec<_>>())?;
    Ok(Loaded { args, given, file, line_errors })
}

/// `command`'s matches of `argv` (the words after the command's name).
fn parse_with(command: &Command, argv: &[OsString]) -> Result<ArgMatches, clap::Error> {
    let name = OsString::from(command.get_name());
    command.clone().try_get_matches_from(std::iter::once(&name).chain(argv))
}

/// The typed arguments of validated matches.
fn typed<O: Args + FromArgMatches>(
    matches: &ArgMatches,
    file: Option<&Path>,
) -> Result<ServeArgs<O>, Vec<ConfigError>> {
    ServeArgs::<O>::from_arg_matches(matches).map_err(|e| {
        // An option required unless --config is given (`fcgi serve`'s `--app`) may come
        // from the file: its absence shows only now, and clap's message names the field, not
        // the option.
        let message = match (e.kind(), file) {
            (clap::error::ErrorKind::MissingRequiredArgument, Some(path)) => {
                let text = clap_message(&e);
                let field = text.rsplit(' ').next().unwrap_or_default();
                let option =
                    field.trim_matches(|c: char| !c.is_ascii_alphanumeric()).replace('_', "-");
                format!(
                    "--{option} is required: give it on the command line or as `{option} = ...` \
                     in {}",
                    path.display()
                )
            }
            _ => clap_message(&e),
        };
        vec![ConfigError::Options { at: None, message }]
    })
}

/// Long names of the options given explicitly in `matches`.
fn given(command: &Command, matches: &ArgMatches) -> BTreeSet<String> {
    command
        .get_arguments()
        .filter(|arg| matches.value_source(arg.get_id().as_str()) == Some(ValueSource::CommandLine))
        .filter_map(|arg| arg.get_long().map(str::to_owned))
        .collect()
}

/// Checks one line on its own: a known option, a flag set to true or false, a value the
/// option's parser accepts.
fn check_entry(command: &Command, entry: &Entry, path: &Path) -> Result<(), String> {
    let name = entry.name.as_str();
    if COMMAND_LINE_ONLY.contains(&name) {
        return Err(format!("`{name}` may only be given on the command line"));
    }
    let Some(arg) = command.get_arguments().find(|arg| arg.get_long() == Some(name)) else {
        return Err(format!("unknown option `{name}` (see `{} --help`)", command.get_name()));
    };
    let flag = !arg.get_action().takes_values();
    // `access-log` alone (to the main log) or with a FILE.
    let value_optional = arg.get_num_args().is_some_and(|range| range.min_values() == 0);
    match (&entry.value, flag) {
        (Some(value), true) => {
            return Err(format!("`{name}` is a flag: true or false, not {value:?}"));
        }
        (None, false) if !value_optional => {
            return Err(format!("`{name}` needs a value, not true"));
        }
        _ => {}
    }
    // The value through the option's own parser: a command line of this option alone (with
    // --config, which lifts the need for --app).
    let argv = [format!("--config={}", path.display()).into(), entry.arg()];
    parse_with(command, &argv).map(drop).map_err(|e| clap_message(&e))
}

/// clap's message on one line, without its `error: ` prefix and usage hints.
fn clap_message(error: &clap::Error) -> String {
    let text = error.render().to_string();
    let first = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("invalid options");
    first.trim_start_matches("error: ").trim().to_owned()
}

/// The file's lines as entries, and each line's error (line number, message).
pub(crate) fn parse(text: &str) -> (Vec<Entry>, Vec<(usize, String)>) {
    let mut entries = Vec::new();
    let mut errors = Vec::new();
    for (number, raw) in text.lines().enumerate() {
        let line = number + 1;
        let content = strip_comment(raw).trim();
        if content.is_empty() {
            continue;
        }
        let Some((name, value)) = content.split_once('=') else {
            errors.push((line, format!("not `name = value`: {content:?}")));
            continue;
        };
        let name = name.trim().replace('_', "-");
        let value = value.trim();
        if name.is_empty()
            || !name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        {
            errors.push((line, format!("{name:?} is not an option name")));
            continue;
        }
        match value {
            "true" => entries.push(Entry { line, name, value: None }),
            "false" => {}
            _ => entries.push(Entry { line, name, value: Some(value.to_owned()) }),
        }
    }
    (entries, errors)
}

/// The line without its comment: from a `#` that starts the line or follows white space.
fn strip_comment(line: &str) -> &str {
    let mut previous_space = true;
    for (at, c) in line.char_indices() {
        if c == '#' && previous_space {
            return &line[..at];
        }
        previous_space = c.is_whitespace();
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::options::bytes;
    use crate::testing::{self, TestOptions};

    fn entries(text: &str) -> Vec<(String, Option<String>)> {
        let (entries, errors) = parse(text);
        assert!(errors.is_empty(), "{errors:?}");
        entries.into_iter().map(|e| (e.name, e.value)).collect()
    }

    fn pair(name: &str, value: Option<&str>) -> (String, Option<String>) {
        (name.to_owned(), value.map(str::to_owned))
    }

    #[test]
    fn lines_become_entries() {
        let text =
            "# comment\n\napp = echo\nmax_requests = 100\naccess-log = true\nmaster = false\n";
        assert_eq!(
            entries(text),
            vec![
                pair("app", Some("echo")),
                pair("max-requests", Some("100")),
                pair("access-log", None)
            ]
        );
    }

    #[test]
    fn byte_sizes() {
        let cases: [(&str, Option<u64>); 10] = [
            ("0", Some(0)),
            ("65536", Some(65536)),
            ("64K", Some(65536)),
            ("64k", Some(65536)),
            ("10M", Some(10 << 20)),
            ("1G", Some(1 << 30)),
            ("1.5M", None),
            ("M", None),
            ("10X", None),
            ("-1", None),
        ];
        for (text, expected) in cases {
            assert_eq!(bytes::<u64>(text).ok(), expected, "{text}");
        }
        assert!(bytes::<u64>("99999999999999999999G").is_err());
        assert!(bytes::<u32>("4G").unwrap_err().contains("too large"));
    }

    /// Every option whose value is BYTES takes the suffixes (a new one needs `value_parser =
    /// bytes::<T>`).
    #[test]
    fn every_bytes_option_takes_suffixes() {
        let command = testing::command();
        let mut checked = 0;
        for arg in command.get_arguments() {
            let bytes =
                arg.get_value_names().is_some_and(|names| names.iter().any(|n| n == "BYTES"));
            let Some(long) = arg.get_long().filter(|_| bytes) else { continue };
            let argv = [OsString::from("--app=x"), format!("--{long}=64K").into()];
            let parsed = parse_with(&command, &argv);
            assert!(
                parsed.is_ok(),
                "{argv:?}: {}",
                parsed.err().map(|e| e.to_string()).unwrap_or_default()
            );
            checked += 1;
        }
        assert!(checked >= 5, "the BYTES options were found: {checked}");
    }

    #[test]
    fn comments() {
        let cases = [
            ("workers = 4 # four", Some("4")),
            ("workers = 4\t# tab", Some("4")),
            ("pid-file = /run/a#b.pid", Some("/run/a#b.pid")),
            ("pid-file = /run/a#b.pid  # and a comment", Some("/run/a#b.pid")),
            ("   # indented comment", None),
        ];
        for (line, value) in cases {
            let got = entries(line).into_iter().next().and_then(|(_, v)| v);
            assert_eq!(got.as_deref(), value, "{line}");
        }
    }

    #[test]
    fn syntax_errors_carry_their_line() {
        let (_, errors) = parse("app = hello\nworkers 4\n\nBad Name = 1\n");
        let lines: Vec<usize> = errors.iter().map(|(line, _)| *line).collect();
        assert_eq!(lines, vec![2, 4]);
    }

    #[test]
    fn each_entry_is_checked_on_its_own() {
        let path = Path::new("serve.conf");
        let check = |name: &str, value: Option<&str>| {
            let entry = Entry { line: 1, name: name.into(), value: value.map(Into::into) };
            check_entry(&testing::command(), &entry, path)
        };
        assert!(check("workers", Some("4")).is_ok());
        assert!(check("max-body", Some("10M")).is_ok());
        assert!(check("access-log", None).is_ok());
        assert!(check("workers", Some("four")).unwrap_err().contains("--workers"));
        assert!(check("wrokers", Some("4")).unwrap_err().contains("unknown option `wrokers`"));
        assert!(check("access-log", Some("/var/log/fcgi-access.log")).is_ok());
        assert!(check("master", Some("yes")).unwrap_err().contains("flag"));
        assert!(check("workers", None).unwrap_err().contains("needs a value"));
        assert!(check("config", Some("x.conf")).unwrap_err().contains("command line"));
        assert!(check("check", None).unwrap_err().contains("command line"));
    }

    /// Loads `fcgi serve --config FILE COMMAND_LINE` with `file` written to a file of its own
    /// (named serve.conf, in a directory of this test's own, removed after).
    fn load_with(
        file: &str,
        command_line: &[&str],
    ) -> Result<Loaded<TestOptions>, Vec<ConfigError>> {
        load_any(file, command_line).and_then(|loaded| match loaded.line_errors.is_empty() {
            true => Ok(loaded),
            false => Err(loaded.line_errors),
        })
    }

    fn load_any(
        file: &str,
        command_line: &[&str],
    ) -> Result<Loaded<TestOptions>, Vec<ConfigError>> {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("fcgi-config-test-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a temporary directory");
        let path = dir.join("serve.conf");
        std::fs::write(&path, file).expect("written");
        let mut argv: Vec<OsString> = vec![format!("--config={}", path.display()).into()];
        argv.extend(command_line.iter().map(OsString::from));
        let loaded = load(&testing::command(), &argv);
        let _ = std::fs::remove_dir_all(&dir);
        loaded
    }

    #[test]
    fn the_command_line_wins_repeatable_options_included() {
        let file =
            "app = echo\nworkers = 4\nlisten = unix:/tmp/a.sock\nlisten = unix:/tmp/b.sock\n";
        let loaded =
            load_with(file, &["--workers", "2", "--listen", "unix:/tmp/c.sock"]).expect("valid");
        assert_eq!(loaded.args.process.workers, 2);
        let listen: Vec<String> = loaded.args.listen.iter().map(ToString::to_string).collect();
        assert_eq!(listen, vec!["unix:/tmp/c.sock"]);
        let loaded = load_with(file, &[]).expect("valid");
        assert_eq!(loaded.args.listen.len(), 2, "the file's list, when the command line has none");
        assert_eq!(loaded.file.as_ref().map(|(_, lines)| lines["listen"]), Some(3));
        assert!(loaded.given.contains("workers") && !loaded.given.contains("max-threads"));
    }

    #[test]
    fn every_option_may_come_from_the_file() {
        let loaded = load_with("app = cgi\nmax-body = 1M\n", &[]).expect("valid");
        assert_eq!(loaded.args.app.app, "cgi");
        let errors = load_with("workers = 2\n", &[]).expect_err("no app");
        let text = errors[0].to_string();
        assert!(text.contains("--app") && text.contains("serve.conf"), "{text}");
    }

    #[test]
    fn every_bad_line_is_reported_with_its_number() {
        let errors = load_with("app = hello\nworkers = x\nnope = 1\nmax-body = 10Q\n", &[])
            .expect_err("three bad lines");
        let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(text.len(), 3, "{text:?}");
        assert!(text[0].contains("serve.conf:2:"), "{text:?}");
        assert!(text[1].contains("serve.conf:3:"), "{text:?}");
        assert!(text[2].contains("serve.conf:4:"), "{text:?}");
    }

    #[test]
    fn errors_of_the_whole_name_the_line_that_set_the_option() {
        let loaded = load_with("app = hello\n\nmax-threads = 2\n", &[]).expect("valid");
        let error = loaded.error("--min-spare (4) must not exceed --max-threads (2)");
        assert!(error
            .to_string()
            .ends_with("serve.conf:3: --min-spare (4) must not exceed --max-threads (2)"));
    }
}
