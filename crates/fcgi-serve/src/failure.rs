//! [`Failure`]: how a run of `fcgi serve` fails, shared by every module that starts, checks
//! or runs it.

/// Why a run failed, which decides its exit status.
#[derive(Debug)]
pub(crate) enum Failure {
    /// The options ask for something impossible: exit status 2, as for a parse error.
    Usage(String),
    /// Something failed while running: exit status 1.
    Runtime(String),
}

impl Failure {
    /// The message, whichever kind.
    pub(crate) fn message(&self) -> &str {
        match self {
            Failure::Usage(message) | Failure::Runtime(message) => message,
        }
    }
}
