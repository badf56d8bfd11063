//! `fcgi-http-serve`: the app of [`fcgi_tests::axum_app`] through `fcgi_http::serve_with`, as
//! an app author's `main` calls it, for the tests of what `serve` itself decides
//! (tests/integration/app/axum_serve.rs): the runtime it runs on, the socket it makes.
//!
//! ```text
//! fcgi-http-serve --listen ADDR [--runtime none|multi|current] [--socket-mode OCTAL]
//!                 [--socket-group NAME] [--max-in-flight N]
//! ```
//!
//! `--runtime multi` calls `serve_with` inside a multi-thread runtime whose workers are named
//! `app-rt` (what `#[tokio::main]` makes, with a name to tell it by); `current` inside a
//! current-thread one (`#[tokio::main(flavor = "current_thread")]`); `none` (the default)
//! outside any. Besides the app's routes, `GET /thread` answers the name of the thread that
//! polls the handler after an `.await` has waited.

use std::process::ExitCode;
use std::time::Duration;

use axum::routing::get;
use fcgi_http::ServeOptions;

const USAGE: &str = "usage: fcgi-http-serve --listen ADDR [--runtime none|multi|current] \
                     [--socket-mode OCTAL] [--socket-group NAME] [--max-in-flight N]";

fn main() -> ExitCode {
    match run(std::env::args().skip(1).collect()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("fcgi-http-serve: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Vec<String>) -> Result<(), String> {
    let mut listen = None;
    let mut runtime = "none".to_owned();
    let mut options = ServeOptions::default();
    let mut args = args.into_iter();
    while let Some(flag) = args.next() {
        let value = args.next().ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))?;
        match flag.as_str() {
            "--listen" => listen = Some(value),
            "--runtime" => runtime = value,
            "--socket-mode" => {
                let mode = u32::from_str_radix(&value, 8).map_err(|e| format!("{value}: {e}"))?;
                options.socket_mode = Some(mode);
            }
            "--socket-group" => options.socket_group = Some(value),
            "--max-in-flight" => {
                options.max_in_flight = value.parse().map_err(|e| format!("{value}: {e}"))?;
            }
            _ => return Err(format!("{flag}: no such option\n{USAGE}")),
        }
    }
    let listen = listen.ok_or_else(|| format!("--listen is needed\n{USAGE}"))?;
    let app = fcgi_tests::axum_app::router().route("/thread", get(thread_name));
    let serve = move || {
        fcgi_http::serve_with(&listen, options, app).map_err(|e| format!("serve_with: {e}"))
    };
    match runtime.as_str() {
        "none" => serve(),
        "multi" => tokio::runtime::Builder::new_multi_thread()
            .thread_name("app-rt")
            .enable_all()
            .build()
            .map_err(|e| format!("no runtime: {e}"))?
            .block_on(async { serve() }),
        "current" => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("no runtime: {e}"))?
            .block_on(async { serve() }),
        other => Err(format!("--runtime {other}: none, multi or current\n{USAGE}")),
    }
}

/// The thread that polls the handler once a timer has made it wait: a worker of the runtime
/// its future was spawned onto.
async fn thread_name() -> String {
    tokio::time::sleep(Duration::from_millis(5)).await;
    std::thread::current().name().unwrap_or("unnamed").to_owned()
}
