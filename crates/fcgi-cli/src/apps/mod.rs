//! The built-in apps. Other tests and benchmarks rely on exactly what they answer.

pub(crate) mod cgi;
mod echo;
mod hello;

use fcgi_server::{Role, ServerBuilder};
use slog::Logger;

use crate::args::{App, ServeArgs};

/// Installs the app `args` name as the responder of `builder`; apps that log use `log`. An error
/// says which option is wrong.
pub(crate) fn install(
    args: &ServeArgs,
    builder: ServerBuilder,
    log: &Logger,
) -> Result<ServerBuilder, String> {
    Ok(match args.app {
        App::Hello => builder.responder(hello::hello),
        App::Echo => builder.responder(echo::echo),
        App::Cgi => builder.handler(Role::Responder, cgi::gateway(&args.cgi, log)?),
    })
}
