//! `echo`: for POST and PUT, the request body verbatim, streamed as it arrives; for any other
//! method, the request params as `NAME=VALUE` lines sorted by name, as raw bytes.

use std::io::{self, Write};

use fcgi_server::{Error, Request, Response};

pub(crate) fn echo(request: &mut Request, response: &mut Response) -> Result<(), Error> {
    match request.method() {
        Some("POST" | "PUT") => {
            let content_type =
                request.content_type().unwrap_or("application/octet-stream").to_owned();
            response.header("Content-Type", content_type)?;
            io::copy(request.body(), response)?;
        }
        _ => {
            response.header("Content-Type", "text/plain")?;
            let mut params: Vec<(&[u8], &[u8])> = request.params().iter().collect();
            params.sort();
            for (name, value) in params {
                response.write_all(name)?;
                response.write_all(b"=")?;
                response.write_all(value)?;
                response.write_all(b"\n")?;
            }
        }
    }
    Ok(())
}
