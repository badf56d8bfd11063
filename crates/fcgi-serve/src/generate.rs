//! `generate`: the man pages and shell completions of a binary, written by the binary itself
//! from its own command line, so that what is installed always matches the binary it came
//! with (an option added to `fcgi serve` is in its man page and its completions at the next
//! build, with nothing to keep in step by hand). `fcgi generate` is hidden, being for
//! packaging; an app binary's `generate` is shown, its author being its packager.

use std::fmt;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use clap::{Args, Command, Subcommand};
use clap_complete::Shell;

/// The section of the manual the pages go in: user commands, as for `nginx(8)`'s peers that
/// users start themselves (`php-fpm(8)` is in section 8, but `fcgi` is also a client, `fcgi
/// request` and `fcgi bench`, which belong in section 1).
const MAN_SECTION: &str = "1";

/// The arguments of `generate` (`generate man DIR`, `generate completions SHELL`), for a
/// binary's clap command; [`GenerateArgs::run`] writes what they ask for.
///
/// ```
/// use clap::{CommandFactory, Parser};
///
/// #[derive(Parser)]
/// #[command(name = "tool")]
/// enum Tool {
///     /// Man pages and completions.
///     Generate(fcgi_serve::GenerateArgs),
/// }
///
/// let Tool::Generate(args) = Tool::parse_from(["tool", "generate", "completions", "bash"]);
/// # let _ = (args, Tool::command());
/// ```
#[derive(Debug, Args)]
pub struct GenerateArgs {
    #[command(subcommand)]
    what: What,
}

/// What `generate` writes.
#[derive(Debug, Subcommand)]
enum What {
    /// Man pages in troff: NAME.1 and one per subcommand (fcgi.1, fcgi-serve.1, ...), written
    /// into DIR (created if missing); their paths on stdout, one per line.
    Man {
        /// The directory to write the pages into.
        dir: PathBuf,
    },
    /// The completion script for SHELL, on stdout.
    Completions {
        /// The shell the script is for.
        #[arg(value_enum)]
        shell: Shell,
    },
}

/// Why `generate` failed.
#[derive(Debug)]
enum GenerateError {
    /// The man page directory could not be created.
    CreateDir {
        /// The directory.
        dir: PathBuf,
        /// What the system said.
        source: io::Error,
    },
    /// A man page could not be written.
    WritePage {
        /// The page's path.
        path: PathBuf,
        /// What the system said.
        source: io::Error,
    },
    /// Standard output could not be written.
    Stdout(io::Error),
}

impl fmt::Display for GenerateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GenerateError::CreateDir { dir, source } => {
                write!(f, "cannot create {}: {source}", dir.display())
            }
            GenerateError::WritePage { path, source } => {
                write!(f, "cannot write {}: {source}", path.display())
            }
            GenerateError::Stdout(source) => write!(f, "cannot write to stdout: {source}"),
        }
    }
}

impl GenerateArgs {
    /// Writes what the arguments ask for, from `command`: the binary's whole command line
    /// (its hidden subcommands are left out of the pages and scripts). The error is a
    /// sentence.
    pub fn run(self, command: &Command) -> Result<(), String> {
        let command = visible(command);
        let result = match self.what {
            What::Man { dir } => write_man_pages(&command, &dir),
            What::Completions { shell } => write_completions(&command, shell),
        };
        result.map_err(|e| e.to_string())
    }
}

/// The command line as users see it, what every page and script is made from: the whole of it
/// but the hidden subcommands. Those are left out here rather than filtered by each
/// generator, because clap_complete's bash and fish scripts offer hidden subcommands too.
fn visible(full: &Command) -> Command {
    // clap can add subcommands but not remove them: a new command with the same settings.
    let mut command = Command::new(full.get_name().to_owned())
        .about(full.get_about().cloned().unwrap_or_default())
        .propagate_version(full.is_propagate_version_set())
        .subcommand_required(full.is_subcommand_required_set())
        .arg_required_else_help(full.is_arg_required_else_help_set())
        .args(full.get_arguments().cloned())
        .subcommands(full.get_subcommands().filter(|sub| !sub.is_hide_set()).cloned());
    if let Some(version) = full.get_version() {
        command = command.version(version.to_owned());
    }
    if let Some(long_about) = full.get_long_about() {
        command = command.long_about(long_about.clone());
    }
    // Subcommand pages are named after the full path (`fcgi-serve`), which clap fills in here.
    command.build();
    command
}

/// The man pages of `command` and of each of its visible subcommands, at any depth: each
/// page's file name (`fcgi-serve.1`) and the command it documents. Hidden subcommands (`fcgi
/// generate`) get none, as they get no line in `--help`.
fn man_pages(command: &Command) -> Vec<(String, Command)> {
    let mut pages = Vec::new();
    let mut pending = vec![command.clone()];
    while let Some(command) = pending.pop() {
        let name = command.get_display_name().unwrap_or_else(|| command.get_name()).to_owned();
        pending.extend(
            command
                .get_subcommands()
                .filter(|sub| !sub.is_hide_set() && sub.get_name() != "help")
                .cloned(),
        );
        pages.push((format!("{name}.{MAN_SECTION}"), command));
    }
    pages.sort_by(|a, b| a.0.cmp(&b.0));
    pages
}

/// Writes every page of [`man_pages`] into `dir`, and their paths to stdout.
fn write_man_pages(command: &Command, dir: &Path) -> Result<(), GenerateError> {
    fs::create_dir_all(dir)
        .map_err(|source| GenerateError::CreateDir { dir: dir.to_owned(), source })?;
    let mut stdout = io::stdout().lock();
    for (file_name, command) in man_pages(command) {
        let path = dir.join(file_name);
        let mut page = Vec::new();
        clap_mangen::Man::new(command)
            .section(MAN_SECTION)
            .manual("fcgi-rs")
            .render(&mut page)
            .and_then(|()| fs::write(&path, &page))
            .map_err(|source| GenerateError::WritePage { path: path.clone(), source })?;
        writeln!(stdout, "{}", path.display()).map_err(GenerateError::Stdout)?;
    }
    Ok(())
}

/// Writes the completion script for `shell` to stdout.
fn write_completions(command: &Command, shell: Shell) -> Result<(), GenerateError> {
    let mut script = Vec::new();
    let mut command = command.clone();
    let name = command.get_name().to_owned();
    clap_complete::generate(shell, &mut command, name, &mut script);
    io::stdout().lock().write_all(&script).map_err(GenerateError::Stdout)
}
