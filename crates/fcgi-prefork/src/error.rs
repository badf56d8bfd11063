//! Why the master could not start or run.

use std::fmt;
use std::io;
use std::path::PathBuf;

use crate::settings::SettingsError;

/// Why [`Master::new`](crate::Master::new) or [`Master::run`](crate::Master::run) failed.
#[derive(Debug)]
pub enum Error {
    /// The settings contradict each other.
    Settings(SettingsError),
    /// The path of the running binary (needed for upgrades) is unknown.
    Exe(io::Error),
    /// The signals could not be blocked or their descriptor opened.
    Signals(io::Error),
    /// The pid file could not be written.
    PidFile {
        /// The pid file's path.
        path: PathBuf,
        /// What the system said.
        source: io::Error,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Settings(e) => write!(f, "invalid process settings: {e}"),
            Error::Exe(e) => write!(f, "cannot find the running binary's path: {e}"),
            Error::Signals(e) => write!(f, "cannot set up signal handling: {e}"),
            Error::PidFile { path, source } => {
                write!(f, "cannot write the pid file {}: {source}", path.display())
            }
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Settings(e) => Some(e),
            Error::Exe(e) | Error::Signals(e) | Error::PidFile { source: e, .. } => Some(e),
        }
    }
}
