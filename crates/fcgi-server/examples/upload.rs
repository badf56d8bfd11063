//! An upload read as it arrives, in bounded memory: `POST /upload` answers the body's size and
//! its FNV-1a hash. A handler that reads its body as it arrives says so
//! ([`fcgi_server::streaming`]); others start once the body is spooled whole.
//!
//! `cargo run -p fcgi-server --example upload -- unix:/tmp/upload.sock`
use std::io::{Read, Write};

use fcgi_server::{streaming, Request, Response};

fn main() -> std::io::Result<()> {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "unix:/tmp/upload.sock".into());
    fcgi_server::serve_handler(&addr, streaming(upload))
}

fn upload(request: &mut Request, response: &mut Response) -> Result<(), fcgi_server::Error> {
    let (mut bytes, mut hash) = (0u64, 0xcbf2_9ce4_8422_2325u64);
    let mut piece = [0u8; 64 * 1024];
    loop {
        let n = request.body().read(&mut piece)?;
        if n == 0 {
            break;
        }
        bytes += n as u64;
        for byte in &piece[..n] {
            hash = (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3);
        }
    }
    response.header("Content-Type", "application/json")?;
    write!(response, r#"{{"bytes":{bytes},"fnv1a":"{hash:016x}"}}"#)?;
    Ok(())
}
