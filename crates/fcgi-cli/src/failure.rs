//! [`Failure`]: how a command fails, shared by every command's module and `main`.

/// Why a command failed, which decides its exit status.
pub(crate) enum Failure {
    /// The command line asks for something impossible: exit status 2, as for a parse error.
    Usage(String),
    /// Something failed while running.
    Runtime(String),
}
