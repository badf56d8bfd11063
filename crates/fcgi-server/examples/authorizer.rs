//! An access check for every web server: lighttpd's authorizer mode and Apache send the
//! Authorizer role, nginx's `auth_request` a Responder request to the check's location (see
//! `nginx/fcgi-auth-request.conf`); one handler answers both. `200` allows (its `Variable-USER`
//! reaches the protected request), any other status is the client's answer.
//!
//! `cargo run -p fcgi-server --example authorizer -- 127.0.0.1:9001`
use fcgi_server::{ListenOptions, Listener, Request, Response, Server};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:9001".into());
    let listener = Listener::bind(&addr.parse()?, &ListenOptions::default())?;
    Server::builder().listener(listener).responder_and_authorizer(check).build().serve()?;
    Ok(())
}

fn check(request: &mut Request, response: &mut Response) -> Result<(), fcgi_server::Error> {
    match request.header_str("Authorization") {
        Some("Bearer let-me-in") => response.variable("USER", "alice")?,
        _ => {
            response.set_status(401);
            response.header("WWW-Authenticate", "Bearer")?;
        }
    }
    Ok(())
}
