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
//! A file may hold several pools instead, each a `[NAME]` section, and each served on its
//! own with `--pool NAME`:
//!
//! ```text
//! log-format = json         # before the first section: what every pool shares
//! [www]
//! app = exec
//! exec = /usr/bin/php-cgi
//! listen = unix:/run/fcgi-www.sock
//! [git]
//! app = cgi
//! listen = unix:/run/fcgi-git.sock
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
//!   then the options are checked together (the file's line named where it set the option);
//! - in a file with pools, [`SHARED`]'s options are set before the first section and every
//!   other option in a section, a section's name is letters, digits, `-`, `_` and `.`, each
//!   section is named once and sets at least one option, and `--pool NAME` serves the options
//!   before the first section (less `pid-file`, the master's) and then NAME's, with
//!   `pool-name = NAME` unless NAME's section sets it.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};

use clap::parser::ValueSource;
use clap::{ArgMatches, Args, Command, FromArgMatches};

use crate::options::ServeArgs;

/// The options a config file may not set: they only make sense on the command line.
const COMMAND_LINE_ONLY: &[&str] = &["config", "check", "pool", "help", "version"];

/// The options of a file with pools that only the lines before its first section may set: the
/// master's and every pool's alike (how the processes log and stop, never what a pool serves),
/// as PHP-FPM's global section holds its log and its pid file. `pid-file` is the master's
/// alone: a pool served on its own with `--pool` does not take it.
pub(crate) const SHARED: &[&str] =
    &["log-file", "log-format", "log-level", "graceful-timeout", "pid-file"];

/// A `serve` option from the file: its line, long name, value (`None`: a flag set true), and
/// the pool whose section holds it (`None`: before the first section).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(crate) line: usize,
    pub(crate) name: String,
    pub(crate) value: Option<String>,
    pub(crate) pool: Option<String>,
}

/// A config file's lines, parsed: its entries, its pools (each section's name and line), and
/// each bad line's error (line number, message).
#[derive(Debug, Default)]
pub(crate) struct Parsed {
    pub(crate) entries: Vec<Entry>,
    pub(crate) pools: Vec<(String, usize)>,
    pub(crate) errors: Vec<(usize, String)>,
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
    let Parsed { entries, pools, errors } = read(&path)?;
    let mut line_errors: Vec<ConfigError> = errors
        .into_iter()
        .map(|(line, message)| ConfigError::Line { path: path.clone(), line, message })
        .collect();
    let pool = matches.get_one::<String>("pool").map(String::as_str);
    let entries = select(entries, &pools, pool, &path).map_err(|message| {
        line_errors
            .drain(..)
            .chain([ConfigError::Options { at: None, message }])
            .collect::<Vec<_>>()
    })?;
    let mut good = Vec::with_capacity(entries.len());
    for entry in entries {
        match check_entry(command, &entry, &path, !pools.is_empty()) {
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

/// The config file at `path`, parsed.
fn read(path: &Path) -> Result<Parsed, Vec<ConfigError>> {
    std::fs::read_to_string(path)
        .map(|text| parse(&text))
        .map_err(|error| vec![ConfigError::Read { path: path.to_owned(), error }])
}

/// The names of the pools of the config file at `path`, in the file's order (none: a file of
/// one server's options).
pub(crate) fn pools(path: &Path) -> Result<Vec<String>, Vec<ConfigError>> {
    Ok(read(path)?.pools.into_iter().map(|(name, _)| name).collect())
}

/// A pool of a file, as the master of the file's pools compares it between reloads: its
/// name and the options `--pool NAME` serves it with (name and value, in the file's order;
/// without their lines, so that a pool whose lines only moved is unchanged).
pub(crate) type PoolOptions = (String, Vec<(String, Option<String>)>);

/// The pools of the file at `path`, each with its options, and the master's pid file (its
/// shared `pid-file` line), for the master of the file's pools. The file is expected to have
/// passed a check: bad lines are in no pool's options.
pub(crate) fn pool_options(
    path: &Path,
) -> Result<(Vec<PoolOptions>, Option<PathBuf>), Vec<ConfigError>> {
    options_of(read(path)?, path)
}

/// [`pool_options`] of the file at `path`, read as `parsed`.
fn options_of(
    parsed: Parsed,
    path: &Path,
) -> Result<(Vec<PoolOptions>, Option<PathBuf>), Vec<ConfigError>> {
    let Parsed { entries, pools, .. } = parsed;
    let pid_file = entries
        .iter()
        .rfind(|entry| entry.pool.is_none() && entry.name == "pid-file")
        .and_then(|entry| entry.value.as_ref().map(PathBuf::from));
    let mut options = Vec::with_capacity(pools.len());
    for (name, _) in &pools {
        let chosen = select(entries.clone(), &pools, Some(name), path)
            .map_err(|message| vec![ConfigError::Options { at: None, message }])?;
        let pairs = chosen.into_iter().map(|entry| (entry.name, entry.value)).collect();
        options.push((name.clone(), pairs));
    }
    Ok((options, pid_file))
}

/// What `fcgi status --config FILE` needs of the file at `path`: each pool (one, named by its
/// `pool-name` or `www`, for a file without pools) with its options, and the master's pid file.
pub(crate) fn every_pool(
    path: &Path,
) -> Result<(Vec<PoolOptions>, Option<PathBuf>), Vec<ConfigError>> {
    let parsed = read(path)?;
    if !parsed.pools.is_empty() {
        return options_of(parsed, path);
    }
    let entries = parsed.entries;
    let value = |name: &str| {
        entries.iter().rfind(|entry| entry.name == name).and_then(|entry| entry.value.clone())
    };
    let name = value("pool-name").unwrap_or_else(|| "www".to_owned());
    let pid_file = value("pid-file").map(PathBuf::from);
    let pairs = entries.into_iter().map(|entry| (entry.name, entry.value)).collect();
    Ok((vec![(name, pairs)], pid_file))
}

/// The entries that serve `pool` (`--pool`) of a file whose pools are `pools`: all of them in
/// a file without pools; the shared ones and `pool`'s section in one with pools, with
/// `pool-name = NAME` unless the section sets it. The shared part's lines for an option that
/// is not [`SHARED`] are left to [`check_entry`], which reports them.
fn select(
    entries: Vec<Entry>,
    pools: &[(String, usize)],
    pool: Option<&str>,
    path: &Path,
) -> Result<Vec<Entry>, String> {
    let path = path.display();
    let names = || pools.iter().map(|(name, _)| format!("[{name}]")).collect::<Vec<_>>().join(", ");
    match (pools.is_empty(), pool) {
        (true, None) => Ok(entries),
        (true, Some(pool)) => Err(format!("--pool {pool}: {path} has no pools ([NAME] sections)")),
        // `fcgi serve` serves every pool without --pool (the master of pools), and each of
        // them reads its options with its --pool.
        (false, None) => {
            Err(format!("{path} holds pools ({}): choose one with --pool NAME", names()))
        }
        (false, Some(pool)) => {
            let Some(&(_, header)) = pools.iter().find(|(name, _)| name == pool) else {
                return Err(format!(
                    "--pool {pool}: no such pool in {path} (its pools: {})",
                    names()
                ));
            };
            // The master's pid file is not the pool's: two pools would share one.
            let mut chosen: Vec<Entry> = entries
                .into_iter()
                .filter(|entry| match &entry.pool {
                    None => entry.name != "pid-file",
                    Some(section) => section == pool,
                })
                .collect();
            if !chosen.iter().any(|entry| entry.pool.is_some() && entry.name == "pool-name") {
                chosen.push(Entry {
                    line: header,
                    name: "pool-name".to_owned(),
                    value: Some(pool.to_owned()),
                    pool: Some(pool.to_owned()),
                });
            }
            Ok(chosen)
        }
    }
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
fn check_entry(command: &Command, entry: &Entry, path: &Path, pooled: bool) -> Result<(), String> {
    let name = entry.name.as_str();
    if COMMAND_LINE_ONLY.contains(&name) {
        return Err(format!("`{name}` may only be given on the command line"));
    }
    if pooled && entry.pool.is_some() && SHARED.contains(&name) {
        return Err(format!(
            "`{name}` is shared by the master and every pool: set it before the first pool \
             section"
        ));
    }
    if pooled && entry.pool.is_none() && !SHARED.contains(&name) {
        return Err(format!(
            "`{name}` before the first pool section would set it for every pool: set it in each \
             pool's section (only {} may be shared)",
            SHARED.join(", ")
        ));
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

/// The file's lines as entries and pools, and each line's error.
pub(crate) fn parse(text: &str) -> Parsed {
    let Parsed { mut entries, mut pools, mut errors } = Parsed::default();
    // The section the lines belong to, and whether it has set an option yet.
    let mut section: Option<(String, usize)> = None;
    let mut empty = false;
    for (number, raw) in text.lines().enumerate() {
        let line = number + 1;
        let content = strip_comment(raw).trim();
        if content.is_empty() {
            continue;
        }
        if let Some(inner) = content.strip_prefix('[') {
            end_section(section.as_ref(), empty, &mut errors);
            let name = inner.strip_suffix(']').map(str::trim).unwrap_or_default();
            let valid = !name.is_empty()
                && name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
            if !valid {
                errors.push((line, format!("not a pool section `[NAME]`: {content:?}")));
            } else if let Some((_, first)) = pools.iter().find(|(known, _)| known == name) {
                errors.push((line, format!("pool [{name}] is already defined at line {first}")));
            } else {
                pools.push((name.to_owned(), line));
            }
            // The lines of a bad or repeated section still belong to it, not to the one before.
            section = Some((name.to_owned(), line));
            empty = true;
            continue;
        }
        empty = false;
        let pool = section.as_ref().map(|(name, _)| name.clone());
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
            "true" => entries.push(Entry { line, name, value: None, pool }),
            "false" => {}
            _ => entries.push(Entry { line, name, value: Some(value.to_owned()), pool }),
        }
    }
    end_section(section.as_ref(), empty, &mut errors);
    Parsed { entries, pools, errors }
}

/// Reports the section that ends, if it set no option.
fn end_section(section: Option<&(String, usize)>, empty: bool, errors: &mut Vec<(usize, String)>) {
    if let (Some((name, line)), true) = (section, empty) {
        errors.push((*line, format!("pool [{name}] sets no option")));
    }
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

    /// Lines of config files: options (with `_`, flags, comments after them), sections good
    /// and bad, comments, and text that is no config at all.
    fn config_line() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        prop_oneof![
            ("[a-z][a-z_-]{0,12}", "[ -~]{0,20}").prop_map(|(n, v)| format!("{n} = {v}")),
            ("[a-z][a-z-]{0,12}", "[ -~]{0,12}").prop_map(|(n, v)| format!("  {n}={v} # {n}")),
            "[a-z]{1,8}".prop_map(|n| format!("{n} = true")),
            "\\[[ -~]{0,10}\\]",
            "#[ -~]{0,20}",
            "[^\n]{0,24}",
            Just(String::new()),
        ]
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]

        /// Any text: every line is an entry, a section, a comment or blank, or an error with
        /// its own line number; and the entries, written back as `name = value` lines in
        /// their sections, read back the same.
        #[test]
        fn any_text_reads_as_entries_and_located_errors(
            lines in proptest::collection::vec(config_line(), 0..30),
        ) {
            let text = lines.join("\n");
            let parsed = parse(&text);
            let count = text.lines().count();
            for (line, message) in &parsed.errors {
                proptest::prop_assert!((1..=count).contains(line), "{line} {message}");
            }
            for entry in &parsed.entries {
                let raw = text.lines().nth(entry.line - 1).unwrap_or_default();
                proptest::prop_assert!(raw.replace('_', "-").contains(&entry.name), "{entry:?} {raw:?}");
            }
            let mut again = String::new();
            let mut pool: Option<&str> = None;
            for entry in &parsed.entries {
                if entry.pool.as_deref() != pool {
                    pool = entry.pool.as_deref();
                    again += &format!("[{}]\n", pool.unwrap_or_default());
                }
                // With no space before the value: a value may begin with `#`, which a space
                // before it would make a comment.
                match &entry.value {
                    Some(value) => again += &format!("{}={value}\n", entry.name),
                    None => again += &format!("{} = true\n", entry.name),
                }
            }
            // Only the good sections' entries can be written back under a section.
            let good = |e: &&Entry| e.pool.as_ref().is_none_or(|p| parsed.pools.iter().any(|(n, _)| n == p));
            if parsed.entries.iter().all(|e| good(&e)) {
                let reread = parse(&again);
                let pairs = |p: &Parsed| p.entries.iter().map(|e| (e.name.clone(), e.value.clone(), e.pool.clone())).collect::<Vec<_>>();
                proptest::prop_assert_eq!(pairs(&reread), pairs(&parsed), "written back:\n{}", again);
            }
        }
    }

    fn entries(text: &str) -> Vec<(String, Option<String>)> {
        let parsed = parse(text);
        assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
        parsed.entries.into_iter().map(|e| (e.name, e.value)).collect()
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
        let parsed = parse("app = hello\nworkers 4\n\nBad Name = 1\n");
        let lines: Vec<usize> = parsed.errors.iter().map(|(line, _)| *line).collect();
        assert_eq!(lines, vec![2, 4]);
    }

    /// [`check_entry`] of `name = value` on line 1, in `pool`'s section, of a file with pools
    /// or without.
    fn checked(
        name: &str,
        value: Option<&str>,
        pool: Option<&str>,
        pooled: bool,
    ) -> Result<(), String> {
        let (name, value, pool) = (name.into(), value.map(Into::into), pool.map(Into::into));
        let entry = Entry { line: 1, name, value, pool };
        check_entry(&testing::command(), &entry, Path::new("serve.conf"), pooled)
    }

    #[test]
    fn each_entry_is_checked_on_its_own() {
        let check = |name: &str, value: Option<&str>| checked(name, value, None, false);
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

    #[test]
    fn sections_are_pools() {
        let parsed =
            parse("log-level = debug\n[www]\napp = hello\n\n[git.2] # a comment\napp = cgi\n");
        assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
        assert_eq!(parsed.pools, vec![("www".to_owned(), 2), ("git.2".to_owned(), 5)]);
        let owners: Vec<Option<&str>> = parsed.entries.iter().map(|e| e.pool.as_deref()).collect();
        assert_eq!(owners, vec![None, Some("www"), Some("git.2")]);
        // Each bad section, with its line.
        for (text, line, message) in [
            ("[]\napp = hello\n", 1, "not a pool section"),
            ("[a b]\napp = hello\n", 1, "not a pool section"),
            ("[www\napp = hello\n", 1, "not a pool section"),
            ("[www]\napp = hello\n[www]\napp = cgi\n", 3, "already defined at line 1"),
            ("[www]\n# nothing\n[git]\napp = cgi\n", 1, "[www] sets no option"),
            ("[www]\napp = cgi\n[git]\n", 3, "[git] sets no option"),
        ] {
            let errors = parse(text).errors;
            assert!(
                errors.len() == 1 && errors[0].0 == line && errors[0].1.contains(message),
                "{text:?}: {errors:?}"
            );
        }
    }

    /// The entries [`select`] picks of `text` for `pool`, as (line, name, value) each.
    fn chosen(text: &str, pool: Option<&str>) -> Result<Vec<(usize, String, String)>, String> {
        let Parsed { entries, pools, .. } = parse(text);
        let entries = select(entries, &pools, pool, Path::new("pools.conf"))?;
        Ok(entries.into_iter().map(|e| (e.line, e.name, e.value.unwrap_or_default())).collect())
    }

    #[test]
    fn a_pool_is_the_shared_part_and_its_section() {
        let pooled = "log-level = debug\n[www]\napp = hello\n[git]\napp = cgi\npool-name = g\n";
        for (pool, expected) in [
            ("www", [(1, "log-level", "debug"), (3, "app", "hello"), (2, "pool-name", "www")]),
            ("git", [(1, "log-level", "debug"), (5, "app", "cgi"), (6, "pool-name", "g")]),
        ] {
            let expected: Vec<_> = expected
                .iter()
                .map(|&(line, name, value)| (line, name.into(), value.into()))
                .collect();
            assert_eq!(chosen(pooled, Some(pool)), Ok(expected), "[{pool}]");
        }
        for (text, pool, message) in [
            (pooled, None, "choose one with --pool NAME"),
            (pooled, Some("svn"), "no such pool"),
            ("app = hello\n", Some("www"), "has no pools"),
        ] {
            let error = chosen(text, pool).expect_err("no pool to serve");
            assert!(error.contains(message), "{pool:?}: {error}");
            assert_eq!(error.contains("[www], [git]"), text == pooled, "{error}");
        }
        assert_eq!(chosen("app = hello\n", None).map(|e| e.len()), Ok(1));
    }

    #[test]
    fn the_shared_part_sets_only_what_every_pool_may_share() {
        let check = |name: &str, value: &str, pool| checked(name, Some(value), pool, true);
        assert!(check("log-level", "debug", None).is_ok());
        assert!(check("graceful-timeout", "5", None).is_ok());
        assert!(check("workers", "2", None).unwrap_err().contains("every pool"));
        assert!(check("workers", "2", Some("www")).is_ok());
        assert!(check("log-level", "debug", Some("www")).unwrap_err().contains("shared"));
        assert!(check("pid-file", "/run/fcgi.pid", Some("www")).unwrap_err().contains("shared"));
    }

    #[test]
    fn the_pid_file_is_the_masters_and_each_pool_has_its_options() {
        let dir = tempfile::tempdir().expect("a directory");
        let path = dir.path().join("pools.conf");
        let text =
            "pid-file = /run/fcgi.pid\nlog-level = debug\n[www]\napp = hello\n[git]\napp = cgi\n";
        std::fs::write(&path, text).expect("written");
        // A pool alone does not take the master's pid file.
        let names = |pool| -> Vec<String> {
            chosen(text, Some(pool)).expect("a pool").into_iter().map(|(_, name, _)| name).collect()
        };
        assert_eq!(names("www"), ["log-level", "app", "pool-name"]);
        let (pools, pid_file) = pool_options(&path).expect("read");
        assert_eq!(pid_file, Some(PathBuf::from("/run/fcgi.pid")));
        let some = |value: &str| Some(value.to_owned());
        let www: Vec<(String, Option<String>)> = vec![
            ("log-level".into(), some("debug")),
            ("app".into(), some("hello")),
            ("pool-name".into(), some("www")),
        ];
        assert_eq!(pools.len(), 2);
        assert_eq!(pools[0], ("www".to_owned(), www));
        assert_eq!(pools[1].0, "git");
    }

    #[test]
    fn pool_is_for_the_command_line() {
        let errors = load_with("[www]\napp = hello\npool = www\n", &["--pool", "www"])
            .expect_err("pool in the file");
        assert!(errors[0].to_string().contains("only be given on the command line"), "{errors:?}");
        let loaded = load_with("log-level = debug\n[www]\napp = hello\n", &["--pool", "www"])
            .expect("valid");
        assert_eq!(loaded.args.pool_name, "www");
        assert_eq!(loaded.file.as_ref().map(|(_, lines)| lines["app"]), Some(3));
    }
}
