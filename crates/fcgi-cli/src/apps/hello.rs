//! `hello`: `Content-Type: text/plain` and the 13 bytes `Hello, world!`.

use std::io::Write;

use fcgi_server::{Error, Request, Response};

pub(crate) fn hello(_: &mut Request, response: &mut Response) -> Result<(), Error> {
    response.header("Content-Type", "text/plain")?;
    response.write_all(b"Hello, world!")?;
    Ok(())
}
