//! A blocking FastCGI client: what nginx does with `fastcgi_pass`, as a library.
//!
//! Connect to a FastCGI server (fcgi-rs, PHP-FPM, anything behind nginx) over TCP or a Unix
//! socket, send requests, and read the responses: the CGI head parsed, the body streamed,
//! stderr collected, and how each request ended. Records are written and read by
//! [`fcgi_codec`]; this crate adds the sockets, the timeouts, and the bookkeeping of requests.
//!
//! # One request
//!
//! ```no_run
//! use std::io::Read;
//! use fcgi_client::{Address, Connection, Request};
//!
//! let addr: Address = "unix:/run/php/php8.2-fpm.sock".parse()?;
//! let mut conn = Connection::connect(&addr)?;
//! let request = Request::new().params([
//!     ("SCRIPT_FILENAME", "/srv/www/index.php"),
//!     ("REQUEST_METHOD", "GET"),
//!     ("QUERY_STRING", "page=2"),
//! ]);
//! let mut response = conn.request(request)?;
//! println!("status {}", response.status());
//! let mut body = String::new();
//! response.read_to_string(&mut body)?; // the body, as it arrives
//! let finished = response.finish()?; // FCGI_END_REQUEST, and all of stderr
//! assert!(finished.is_complete());
//! // FCGI_KEEP_CONN was set: the same connection takes the next request.
//! assert!(conn.is_usable());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Several at once
//!
//! On a server that multiplexes (`FCGI_MPXS_CONNS=1`, as fcgi-rs does), several requests can
//! share one connection: each gets its own request id and the records that come back are
//! sorted by id.
//!
//! ```no_run
//! use fcgi_client::{management, Connection, Request};
//!
//! let mut conn = Connection::connect(&"tcp:127.0.0.1:9000".parse()?)?;
//! let values = conn.get_values([management::MPXS_CONNS])?;
//! if values.iter().any(|(name, value)| name == "FCGI_MPXS_CONNS" && value == "1") {
//!     let replies = conn.multiplex((0..3).map(|i| {
//!         Request::new().param("QUERY_STRING", format!("n={i}"))
//!     }))?;
//!     for reply in replies {
//!         println!("{}: {}", reply.request_id, reply.status());
//!     }
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Design
//!
//! Data flows the other way round from the server's: caller → [`Request`] → encoder → socket,
//! then socket → decoder → the request's slot → [`Response`] → caller.
//!
//! - A [`Connection`] owns the socket, one [`fcgi_codec::Decoder`], and a slot per request in
//!   flight. Reading is driven by whoever waits: a response that needs bytes reads the socket
//!   once and files every whole record into its request's slot (`FCGI_STDOUT`, `FCGI_STDERR`,
//!   `FCGI_END_REQUEST`) or the connection's (`FCGI_GET_VALUES_RESULT`). So one request can
//!   be streamed while the records of others are kept aside.
//! - With one request at a time, only what one read brought is ever buffered; a multiplexed
//!   request's output waits in memory until it is received.
//! - The body ends at the empty `FCGI_STDOUT` record or at `FCGI_END_REQUEST`, whichever
//!   comes first: PHP-FPM never sends the empty record.
//! - Timeouts are the socket's own ([`Timeouts`]); any failure of the connection leaves it
//!   unusable rather than in an unknown state ([`Connection::is_usable`]).

#![forbid(unsafe_code)]

mod connection;
mod error;
mod head;
mod link;
mod request;
mod response;

pub use connection::{Connection, Timeouts};
pub use error::{describe, Ending, Error};
/// Where a FastCGI server listens: the codec's, the grammar `fcgi serve --listen` reads too.
pub use fcgi_codec::{Address, ParseAddressError};
pub use head::{HeadError, ResponseHead, MAX_HEAD_LEN};
pub use request::Request;
pub use response::{Finished, Reply, Response};

/// The spec's management names (`FCGI_MAX_CONNS`, `FCGI_MAX_REQS`, `FCGI_MPXS_CONNS`), from
/// [`fcgi_codec`].
pub use fcgi_codec::management;
/// The codec's types that appear in this crate's API.
pub use fcgi_codec::{EndRequest, ProtocolStatus, Role};

/// The three names every FastCGI server should answer in `FCGI_GET_VALUES`, in the spec's
/// order.
///
/// ```no_run
/// let mut conn = fcgi_client::Connection::connect(&"unix:/run/fcgi.sock".parse()?)?;
/// let values = conn.get_values(fcgi_client::STANDARD_VALUES)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub const STANDARD_VALUES: [&[u8]; 3] =
    [management::MAX_CONNS, management::MAX_REQS, management::MPXS_CONNS];
