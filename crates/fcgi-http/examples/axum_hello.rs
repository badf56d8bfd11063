//! The smallest axum app over FastCGI, what `fcgi bench` measures fcgi-http with (DESIGN.md):
//! `GET /hello` answers `Hello, world!`; `GET /sleep` answers the same after a 1 ms
//! `tokio::time::sleep`, a request that waits on the runtime's timer.
//!
//! `cargo run --release -p fcgi-http --example axum_hello -- --listen unix:/tmp/hello.sock`
use std::time::Duration;

use axum::routing::get;
use axum::Router;

async fn sleep() -> &'static str {
    tokio::time::sleep(Duration::from_millis(1)).await;
    "Hello, world!"
}

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let listen = match (args.next().as_deref(), args.next()) {
        (Some("--listen"), Some(addr)) => addr,
        _ => {
            eprintln!("usage: axum_hello --listen unix:PATH|tcp:HOST:PORT");
            std::process::exit(2);
        }
    };
    let app = Router::new()
        .route("/hello", get(|| async { "Hello, world!" }))
        .route("/sleep", get(sleep));
    fcgi_http::serve(&listen, app)
}
