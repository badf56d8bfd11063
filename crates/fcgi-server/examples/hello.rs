//! The smallest fcgi-rs application. Run it, point nginx's `fastcgi_pass` at the socket:
//! `cargo run -p fcgi-server --example hello -- unix:/tmp/hello.sock`
use std::io::Write;

fn main() -> std::io::Result<()> {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "unix:/tmp/hello.sock".into());
    fcgi_server::serve(&addr, |request, response| {
        let name = request.query_value("name").unwrap_or_else(|| "world".into());
        response.header("Content-Type", "text/plain")?;
        write!(response, "Hello, {name}!")?;
        Ok(())
    })
}
