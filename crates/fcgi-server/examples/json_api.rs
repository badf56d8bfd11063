//! A small JSON API, synchronous: `GET /items` lists, `POST /items` (`{"name": "..."}`) adds,
//! `GET /items/N` shows one, anything else is 404. State is shared by the pool's threads.
//!
//! `cargo run -p fcgi-server --example json_api -- unix:/tmp/items.sock`
use std::io::{Read, Write};
use std::sync::Mutex;

use fcgi_server::{Request, Response};

static ITEMS: Mutex<Vec<String>> = Mutex::new(Vec::new());

fn main() -> std::io::Result<()> {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "unix:/tmp/items.sock".into());
    fcgi_server::serve(&addr, items)
}

fn items(request: &mut Request, response: &mut Response) -> Result<(), fcgi_server::Error> {
    response.header("Content-Type", "application/json")?;
    let path = request.path().into_owned();
    match (request.method().unwrap_or("GET"), path.as_str()) {
        ("GET", "/items") => {
            let items = ITEMS.lock().unwrap_or_else(|p| p.into_inner());
            let list: Vec<String> = items.iter().map(|name| json_string(name)).collect();
            write!(response, "[{}]", list.join(","))?;
        }
        ("POST", "/items") => {
            let mut body = String::new();
            request.body().read_to_string(&mut body)?;
            let Some(name) = name_field(&body) else {
                response.set_status(400);
                write!(response, r#"{{"error":"expected {{\"name\": \"...\"}}"}}"#)?;
                return Ok(());
            };
            let mut items = ITEMS.lock().unwrap_or_else(|p| p.into_inner());
            items.push(name.clone());
            response.set_status(201);
            response.header("Location", format!("/items/{}", items.len()))?;
            write!(response, r#"{{"id":{},"name":{}}}"#, items.len(), json_string(&name))?;
        }
        ("GET", path) if path.starts_with("/items/") => {
            let items = ITEMS.lock().unwrap_or_else(|p| p.into_inner());
            let found = path["/items/".len()..]
                .parse::<usize>()
                .ok()
                .and_then(|id| Some((id, items.get(id.checked_sub(1)?)?)));
            match found {
                Some((id, name)) => {
                    write!(response, r#"{{"id":{id},"name":{}}}"#, json_string(name))?
                }
                None => {
                    response.set_status(404);
                    write!(response, r#"{{"error":"no such item"}}"#)?;
                }
            }
        }
        _ => {
            response.set_status(404);
            write!(response, r#"{{"error":"no such resource"}}"#)?;
        }
    }
    Ok(())
}

/// The string value of `"name"` in a flat JSON object (enough for this example; an app would
/// use serde_json).
fn name_field(body: &str) -> Option<String> {
    let rest = body.split_once("\"name\"")?.1.trim_start().strip_prefix(':')?.trim_start();
    let value = rest.strip_prefix('"')?;
    Some(value[..value.find('"')?].to_owned())
}

fn json_string(text: &str) -> String {
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}
