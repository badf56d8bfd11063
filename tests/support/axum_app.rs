//! The axum app that `make bench` serves three ways behind the same nginx: on hyper
//! (`axum::serve`), on tokio-fastcgi, and on fcgi-rs (through fcgi-http). Written once, here,
//! so that the three servers differ in what carries the requests and in nothing else
//! (`tests/bin/axum_peers.rs` starts them).
//!
//! - `GET /hello`: `Hello, world!` as text/plain, the same 13 bytes as `fcgi serve --app hello`;
//! - `GET /items`: a small JSON array (three objects), as a JSON API answers;
//! - `GET /sleep`: `slept` after awaiting a timer for 1 s (`?ms=N`: N ms), as a handler that
//!   waits on a slow database or another service: what is measured there is how many such
//!   requests a server keeps in flight.

use std::collections::HashMap;
use std::time::Duration;

use axum::extract::Query;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

/// How long `/sleep` waits without `?ms=`.
pub const SLEEP_DEFAULT_MS: u64 = 1000;

/// The app: three routes, no state, no middleware.
pub fn router() -> Router {
    Router::new()
        .route("/hello", get(hello))
        .route("/items", get(items))
        .route("/sleep", get(sleep))
}

async fn hello() -> &'static str {
    "Hello, world!"
}

async fn items() -> Json<Value> {
    Json(json!([
        {"id": 1, "name": "apple", "price_cents": 120, "in_stock": true},
        {"id": 2, "name": "bread", "price_cents": 250, "in_stock": true},
        {"id": 3, "name": "cheese", "price_cents": 780, "in_stock": false},
    ]))
}

async fn sleep(Query(query): Query<HashMap<String, String>>) -> &'static str {
    let ms = query.get("ms").and_then(|ms| ms.parse().ok()).unwrap_or(SLEEP_DEFAULT_MS);
    tokio::time::sleep(Duration::from_millis(ms)).await;
    "slept"
}
