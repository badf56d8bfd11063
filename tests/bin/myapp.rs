//! `fcgi-myapp`: an axum app as its author ships it, with all of `fcgi serve` through
//! `fcgi_http::run`: the app of tests/support/axum_app.rs, plus `/pid` (which process
//! answered, to a GET or a POST: nginx retries no POST, so a test sees every failed one) and
//! `/sleep?ms=N` (an answer after N ms, awaited on a timer).

use std::process::ExitCode;
use std::time::Duration;

use axum::extract::Query;
use axum::routing::get;
use axum::Router;

#[derive(serde::Deserialize)]
struct Sleep {
    ms: u64,
}

async fn pid() -> String {
    std::process::id().to_string()
}

fn app() -> Router {
    fcgi_tests::axum_app::router().route("/pid", get(pid).post(pid)).route(
        "/sleep",
        get(|Query(sleep): Query<Sleep>| async move {
            tokio::time::sleep(Duration::from_millis(sleep.ms)).await;
            "slept"
        }),
    )
}

fn main() -> ExitCode {
    fcgi_http::run(app)
}
