//! A response sent as it is written: `GET /stream?n=5&ms=500` sends `tick 0` to `tick 4`, one
//! every 500 ms, each flushed to the web server at once (`X-Accel-Buffering: no` asks nginx to
//! pass each on too, as `fastcgi_buffering off` would for the whole site).
//!
//! `cargo run -p fcgi-server --example streaming -- unix:/tmp/stream.sock`
use std::io::Write;
use std::time::Duration;

fn main() -> std::io::Result<()> {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "unix:/tmp/stream.sock".into());
    fcgi_server::serve(&addr, |request, response| {
        let number = |name: &str, default: u64| {
            request.query_value(name).and_then(|v| v.parse().ok()).unwrap_or(default).min(1000)
        };
        let (n, ms) = (number("n", 5), number("ms", 500));
        response.header("Content-Type", "text/plain")?;
        response.header("X-Accel-Buffering", "no")?;
        for i in 0..n {
            writeln!(response, "tick {i}")?;
            // Out now, not when 64 KiB have gathered; an error here (the client went away)
            // ends the handler.
            response.flush()?;
            std::thread::sleep(Duration::from_millis(ms));
        }
        Ok(())
    })
}
