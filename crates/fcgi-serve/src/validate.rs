//! The serve options, loaded and checked as far as can be without binding: at start, by
//! `--check`, and on each reload.

use std::ffi::OsString;
use std::path::Path;
use std::time::Duration;

use clap::{Args, Command};
use fcgi_server::ListenAddr;

use crate::app::{App, Serving};
use crate::checks::{self, Problem, Severity};
use crate::config_file::{self, ConfigError, Loaded};
use crate::options::ServeArgs;
use crate::privileges;

/// The serve options with their warnings.
pub(crate) struct Validated<O: Args> {
    pub(crate) loaded: Loaded<O>,
    pub(crate) warnings: Vec<Problem>,
}

/// Loads and checks the serve options of `argv` (the words after the serve command's name) as
/// `command` defines them: every error found (each bad line of the config file; else options
/// that do nothing, contradictory limits, an unusable spool directory, the app's own
/// verdicts), or the options and their warnings.
pub(crate) fn validated<A: App>(
    command: &Command,
    app: &A,
    argv: &[OsString],
) -> Result<Validated<A::Options>, Vec<ConfigError>> {
    let mut loaded = config_file::load::<A::Options>(command, argv)?;
    let mut errors = std::mem::take(&mut loaded.line_errors);
    let args = &loaded.args;
    let mut warnings = Vec::new();
    let app_problems = app.check(&args.app, &serving(args, &loaded.given));
    let programs = app.runs_programs(&args.app);
    for mut problem in
        checks::ineffective(args, &loaded.given, programs).into_iter().chain(app_problems)
    {
        match problem.severity {
            Severity::Error => errors.push(loaded.error(problem.message)),
            Severity::Warning => {
                problem.message = loaded.error(problem.message).to_string();
                warnings.push(problem);
            }
        }
    }
    if let Err(e) = args.config() {
        errors.push(loaded.error(e));
    }
    if !programs && args.process.wants_master() && args.process.workers > 0 {
        if let Err(e) = args.process.settings(args.graceful_timeout, false) {
            errors.push(loaded.error(e));
        }
    }
    if let Err(e) = privileges::check_names(args.user.as_deref(), args.group.as_deref()) {
        errors.push(loaded.error(e.to_string()));
    }
    for addr in &args.listen {
        if let Err(e) = check_socket_dir(addr) {
            errors.push(loaded.error(e));
        }
    }
    if let Some(dir) = &args.spool_dir {
        if let Err(e) = check_spool_dir(dir) {
            errors.push(loaded.error(e));
        }
    }
    if errors.is_empty() {
        Ok(Validated { loaded, warnings })
    } else {
        Err(errors)
    }
}

/// What the app may know of `args`.
pub(crate) fn serving<'a, O: Args>(
    args: &'a ServeArgs<O>,
    given: &'a std::collections::BTreeSet<String>,
) -> Serving<'a> {
    Serving {
        listen: &args.listen,
        allow: &args.allow,
        user: args.user.as_deref(),
        given,
        processes: processes(args, given),
    }
}

/// The process options of `args`, as an app that runs programs reads them.
pub(crate) fn processes<O: Args>(
    args: &ServeArgs<O>,
    given: &std::collections::BTreeSet<String>,
) -> crate::Processes {
    let queue_timeout = (args.queue_timeout > 0).then(|| Duration::from_secs(args.queue_timeout));
    crate::Processes::of(
        &args.process,
        given.contains("workers"),
        queue_timeout,
        args.status_path.is_some(),
    )
}

/// Whether the directory a Unix socket's file goes in exists: its absence fails the bind, after
/// a `--check` that said nothing.
fn check_socket_dir(addr: &ListenAddr) -> Result<(), String> {
    let ListenAddr::Unix(path) = addr else { return Ok(()) };
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => return Ok(()),
    };
    match std::fs::metadata(dir) {
        Ok(meta) if meta.is_dir() => Ok(()),
        Ok(_) => Err(format!("--listen {addr}: {} is not a directory", dir.display())),
        Err(e) => Err(format!("--listen {addr}: cannot use the directory {}: {e}", dir.display())),
    }
}

/// Whether `--spool-dir` can hold request bodies: it exists, is a directory, and a file can be
/// created in it (and removed). Checked at start, because the spool only needs it for the first
/// body past `--spool-memory`, and then every such request would fail.
fn check_spool_dir(dir: &Path) -> Result<(), String> {
    let shown = dir.display();
    let meta = std::fs::metadata(dir).map_err(|e| format!("--spool-dir {shown}: {e}"))?;
    if !meta.is_dir() {
        return Err(format!("--spool-dir {shown}: not a directory"));
    }
    let probe = dir.join(format!(".fcgi-spool-check-{}", std::process::id()));
    std::fs::OpenOptions::new().write(true).create_new(true).open(&probe).map_err(|e| {
        format!("--spool-dir {shown}: not writable (cannot create a file in it: {e})")
    })?;
    std::fs::remove_file(&probe)
        .map_err(|e| format!("--spool-dir {shown}: cannot remove a file created in it: {e}"))
}
