//! `fcgi-myapp`: an axum app as its author ships it, with all of `fcgi serve` through
//! `fcgi_http::run`: the app of tests/support/axum_app.rs (`/sleep?ms=N` among its routes),
//! plus `/pid` (which process answered, to a GET or a POST: nginx retries no POST, so a test
//! sees every failed one).

use std::process::ExitCode;

use axum::routing::get;
use axum::Router;

async fn pid() -> String {
    std::process::id().to_string()
}

fn app() -> Router {
    fcgi_tests::axum_app::router().route("/pid", get(pid).post(pid))
}

fn main() -> ExitCode {
    // The mistake an axum user makes first: `run` under `#[tokio::main]`.
    if std::env::var_os("FCGI_MYAPP_IN_RUNTIME").is_some() {
        let runtime = tokio::runtime::Builder::new_current_thread().build().expect("a runtime");
        return runtime.block_on(async { fcgi_http::run(app) });
    }
    fcgi_http::run(app)
}
