//! [`Program`]: the binary whose command line holds the serve options, and a run from that
//! command line to its exit status.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Command, FromArgMatches, Subcommand};

use crate::app::App;
use crate::checks::Problem;
use crate::config_file::{self, ConfigError};
use crate::generate::GenerateArgs;
use crate::options::ServeArgs;
use crate::validate::{self, Validated};
use crate::{master, pools, setup, single, Failure};

/// The binary that serves, as its users call it: its name (`myapp`, `fcgi`), and the words
/// before the serve options (none for an app binary, `serve` for `fcgi serve`).
///
/// ```no_run
/// // `fcgi serve`'s options after `mytool serve`, and a description for `--help`.
/// let program = fcgi_serve::Program::new("mytool")
///     .subcommand("serve")
///     .about("Serves the tool's pages over FastCGI.")
///     .version(env!("CARGO_PKG_VERSION"));
/// # let _ = program;
/// ```
#[derive(Clone, Debug)]
pub struct Program {
    name: String,
    words: Vec<String>,
    about: Option<String>,
    version: Option<String>,
}

/// The subcommands of an app binary, beside its serve options.
#[derive(Debug, Subcommand)]
enum AppCommand {
    /// Man pages and shell completions, for packaging: `generate man DIR`, `generate
    /// completions SHELL`.
    Generate(GenerateArgs),
}

impl Program {
    /// The program called `name`, its serve options right after its name.
    pub fn new(name: impl Into<String>) -> Program {
        Program { name: name.into(), words: Vec::new(), about: None, version: None }
    }

    /// The program this process runs, named by the file name of its first argument.
    pub fn from_env() -> Program {
        let argv0 = std::env::args_os().next().unwrap_or_default();
        let name = Path::new(&argv0)
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .filter(|name| !name.is_empty())
            .unwrap_or_else(|| "app".to_owned());
        Program::new(name)
    }

    /// The serve options follow `word` (`fcgi serve`): add one per level of subcommand.
    pub fn subcommand(mut self, word: impl Into<String>) -> Program {
        self.words.push(word.into());
        self
    }

    /// What `--help` says the program does.
    pub fn about(mut self, about: impl Into<String>) -> Program {
        self.about = Some(about.into());
        self
    }

    /// The version `--version` prints (none by default: `--version` is then no option).
    pub fn version(mut self, version: impl Into<String>) -> Program {
        self.version = Some(version.into());
        self
    }

    /// The clap command of the serve options with `A`'s, as the command line is read: for
    /// `--help`, for a binary that adds it to its own command (`fcgi` adds `serve`), and for
    /// man pages. An app binary's has a `generate` subcommand too.
    pub fn command<A: App>(&self) -> Command {
        let last = self.words.last().unwrap_or(&self.name).clone();
        let shown = std::iter::once(self.name.as_str())
            .chain(self.words.iter().map(String::as_str))
            .collect::<Vec<_>>()
            .join(" ");
        let command = Command::new(last).bin_name(shown).args_override_self(true);
        // After the options, whose doc comments clap would take for the command's own.
        let mut command = ServeArgs::<A::Options>::augment_args(command).long_about(None::<&str>);
        command = match &self.about {
            Some(about) => command.about(about.clone()),
            None => command.about(None::<&str>),
        };
        if let Some(version) = &self.version {
            command = command.version(version.clone());
        }
        if self.words.is_empty() {
            command =
                AppCommand::augment_subcommands(command).args_conflicts_with_subcommands(true);
        }
        command
    }

    /// Runs `app` with the serve options of this process's command line (see the crate docs),
    /// and returns the exit status: 0 after a stop by signal, 1 when serving failed, 2 for
    /// options that cannot work. Usage errors, `--help` and `--version` exit as clap does.
    pub fn run<A: App>(self, app: A) -> ExitCode {
        match self.run_with(app) {
            Ok(()) => ExitCode::SUCCESS,
            Err(failure) => {
                eprintln!("{}: {}", self.name, failure.message());
                match failure {
                    Failure::Usage(_) => ExitCode::from(2),
                    Failure::Runtime(_) => ExitCode::FAILURE,
                }
            }
        }
    }

    fn run_with<A: App>(&self, app: A) -> Result<(), Failure> {
        // Checked by clap first (usage errors, --help and --version exit here); then read
        // again with the --config file, which may hold any option.
        let command = self.command::<A>();
        let run = setup::Run { name: self.name.clone(), command, skip: 1 + self.words.len(), app };
        let (command, argv) = (&run.command, &run.argv());
        let name = OsString::from(command.get_name());
        let matches = command.clone().get_matches_from(std::iter::once(&name).chain(argv));
        if self.words.is_empty() && matches.subcommand_name().is_some() {
            let AppCommand::Generate(args) =
                AppCommand::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
            return args.run(command).map_err(Failure::Runtime);
        }
        if let Some((path, pools)) = every_pool(&matches) {
            if matches.get_flag("check") {
                return self.check_pools(command, &run.app, argv, &path, &pools);
            }
            let pid_file = matches.get_one::<PathBuf>("pid_file").cloned();
            return pools::run(&self.name, command, &run.app, argv, &path, &pools, pid_file);
        }
        // Read once, before any thread, and hidden from what this process starts.
        let under_master = std::env::var_os(pools::ENV_MASTER).is_some();
        std::env::remove_var(pools::ENV_MASTER);
        let Validated { loaded, warnings } =
            validate::validated(command, &run.app, argv).map_err(|e| self.usage(e))?;
        let (mut args, given) = (loaded.args, loaded.given);
        let under_master = under_master && args.process.pool.is_some() && !args.check;
        if under_master {
            // A pool of a master of pools: its own master always (so that HUP reloads it),
            // and the pid file is that master's.
            args.process.master = true;
            args.process.pid_file = None;
        }
        if args.check {
            return self.check(&args, &warnings);
        }
        let config = args.config().map_err(Failure::Usage)?;
        if let Some(path) = &args.process.pid_file {
            setup::refuse_live_pid_file(path, &self.name)?;
        }
        if args.process.wants_master() || run.app.runs_programs(&args.app) {
            return master::run(run, args, &given, warnings, under_master);
        }
        single::run(&run, args, &given, config, warnings)
    }

    /// Every error on a line of its own, for exit status 2.
    fn usage(&self, errors: Vec<ConfigError>) -> Failure {
        let mut errors = errors;
        // In the order of the file's lines; errors that no line caused first.
        errors.sort_by_key(ConfigError::line);
        self.usage_lines(errors.iter().map(ToString::to_string).collect())
    }

    /// Error lines, each after the program's name, for exit status 2.
    fn usage_lines(&self, lines: Vec<String>) -> Failure {
        Failure::Usage(lines.join(&format!("\n{}: ", self.name)))
    }

    /// `--check` of a config file with pools, without `--pool`: every pool checked as the
    /// master of the pools would run it ([`pools::check`]).
    fn check_pools<A: App>(
        &self,
        command: &Command,
        app: &A,
        argv: &[OsString],
        path: &Path,
        pools: &[String],
    ) -> Result<(), Failure> {
        let checked = pools::check(command, app, argv, pools).map_err(|e| self.usage_lines(e))?;
        for warning in &checked.warnings {
            eprintln!("{}: warning: {warning}", self.name);
        }
        println!(
            "{}: configuration ok ({}: pools {})",
            self.name,
            path.display(),
            pools.join(", ")
        );
        Ok(())
    }

    /// `--check`: the options passed [`validate::validated`]; say so, with the warnings, and
    /// bind nothing.
    fn check<O: Args>(&self, args: &ServeArgs<O>, warnings: &[Problem]) -> Result<(), Failure> {
        for warning in warnings {
            eprintln!("{}: warning: {}", self.name, warning.message);
        }
        match (&args.process.config, &args.process.pool) {
            (Some(path), Some(pool)) => {
                println!("{}: configuration ok ({}: pool {pool})", self.name, path.display())
            }
            (Some(path), None) => println!("{}: configuration ok ({})", self.name, path.display()),
            (None, _) => println!("{}: configuration ok", self.name),
        }
        Ok(())
    }
}

/// The config file whose pools are all to be checked or served, and its pools: a file with
/// pools, without `--pool`.
fn every_pool(matches: &clap::ArgMatches) -> Option<(PathBuf, Vec<String>)> {
    let path = matches.get_one::<PathBuf>("config")?;
    if matches.get_one::<String>("pool").is_some() {
        return None;
    }
    // A file that cannot be read is reported by the check itself, as for a file without pools.
    let pools = config_file::pools(path).ok().filter(|pools| !pools.is_empty())?;
    Some((path.clone(), pools))
}
