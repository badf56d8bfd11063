//! An axum 0.8 app, written as for hyper, served over FastCGI by one `fcgi_http::serve` call:
//!
//! - `GET /items`: every item, as a JSON array.
//! - `POST /items` with `{"name": "..."}`: `201 Created`, `Location: /items/{id}` and the new
//!   item. axum's own rejections pass through: `415` without a JSON content type, `400` for
//!   JSON that does not parse, `422` for JSON of the wrong shape.
//! - `GET /items/{id}`: one item, or `404` with `{"error": ...}`.
//! - `POST /upload`: reads the body as a stream, in bounded memory, and answers
//!   `{"bytes": N, "sha256": "<hex>"}`.
//! - `GET /stream?n=N&ms=M`: `N` lines `tick i`, `M` ms apart, each sent as it is made
//!   (`X-Accel-Buffering: no` asks nginx to pass each on at once).
//! - `GET /client`: `{"remote_addr": "..."}`, the client's address as axum's `ConnectInfo`.
//!
//! `cargo run --release -p fcgi-http --example axum_items -- --listen unix:/tmp/items.sock`
//! (or `--listen tcp:127.0.0.1:9000`), then point nginx's `fastcgi_pass` at it.
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use http_body_util::BodyExt;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

#[derive(Clone, Debug, Serialize)]
struct Item {
    id: u64,
    name: String,
}

#[derive(Debug, Deserialize)]
struct NewItem {
    name: String,
}

#[derive(Default)]
struct Store {
    next_id: u64,
    items: BTreeMap<u64, Item>,
}

type Items = Arc<Mutex<Store>>;

fn lock(items: &Items) -> std::sync::MutexGuard<'_, Store> {
    items.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

async fn list(State(items): State<Items>) -> Json<Vec<Item>> {
    Json(lock(&items).items.values().cloned().collect())
}

async fn create(State(items): State<Items>, Json(new): Json<NewItem>) -> impl IntoResponse {
    let mut store = lock(&items);
    store.next_id += 1;
    let item = Item { id: store.next_id, name: new.name };
    store.items.insert(item.id, item.clone());
    (StatusCode::CREATED, [(header::LOCATION, format!("/items/{}", item.id))], Json(item))
}

async fn show(State(items): State<Items>, Path(id): Path<u64>) -> Response {
    match lock(&items).items.get(&id) {
        Some(item) => Json(item.clone()).into_response(),
        None => {
            (StatusCode::NOT_FOUND, Json(serde_json::json!({ "error": format!("no item {id}") })))
                .into_response()
        }
    }
}

/// Hashes the body frame by frame as it is read: memory stays at a frame, whatever the size.
async fn upload(body: Body) -> Result<Json<serde_json::Value>, (StatusCode, String)> {
    let mut body = body;
    let (mut bytes, mut hasher) = (0u64, Sha256::new());
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| (StatusCode::BAD_REQUEST, e.to_string()))?;
        if let Ok(data) = frame.into_data() {
            bytes += data.len() as u64;
            hasher.update(&data);
        }
    }
    let sha256 = format!("{:x}", hasher.finalize());
    Ok(Json(serde_json::json!({ "bytes": bytes, "sha256": sha256 })))
}

#[derive(Debug, Deserialize)]
struct Ticks {
    #[serde(default = "five")]
    n: u32,
    #[serde(default)]
    ms: u64,
}

fn five() -> u32 {
    5
}

async fn stream(Query(ticks): Query<Ticks>) -> impl IntoResponse {
    let (n, pause) = (ticks.n.min(1000), Duration::from_millis(ticks.ms.min(10_000)));
    let lines = futures_util::stream::unfold(0, move |i| async move {
        if i == n {
            return None;
        }
        if i > 0 {
            tokio::time::sleep(pause).await;
        }
        Some((Ok::<_, Infallible>(format!("tick {i}\n")), i + 1))
    });
    (
        [
            (header::CONTENT_TYPE, "text/plain"),
            (header::HeaderName::from_static("x-accel-buffering"), "no"),
        ],
        Body::from_stream(lines),
    )
}

async fn client(ConnectInfo(addr): ConnectInfo<SocketAddr>) -> Json<serde_json::Value> {
    Json(serde_json::json!({ "remote_addr": addr.ip().to_string() }))
}

fn app() -> Router {
    Router::new()
        .route("/items", get(list).post(create))
        .route("/items/{id}", get(show))
        .route("/upload", post(upload))
        .route("/stream", get(stream))
        .route("/client", get(client))
        .with_state(Items::default())
}

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let listen = match (args.next().as_deref(), args.next()) {
        (Some("--listen"), Some(addr)) => addr,
        _ => {
            eprintln!("usage: axum_items --listen unix:PATH|tcp:HOST:PORT");
            std::process::exit(2);
        }
    };
    fcgi_http::serve(&listen, app())
}
