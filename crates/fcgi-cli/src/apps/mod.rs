//! The built-in apps. Other tests and benchmarks rely on exactly what they answer.

mod echo;
mod hello;

use fcgi_server::ServerBuilder;

use crate::args::App;

/// Installs `app` as the responder of `builder`.
pub(crate) fn install(app: App, builder: ServerBuilder) -> ServerBuilder {
    match app {
        App::Hello => builder.responder(hello::hello),
        App::Echo => builder.responder(echo::echo),
    }
}
