//! Names and numbers the spec gives for management and process start-up.

/// `FCGI_MAX_CONNS`: the most concurrent transport connections the application accepts.
pub const MAX_CONNS: &[u8] = b"FCGI_MAX_CONNS";

/// `FCGI_MAX_REQS`: the most concurrent requests the application accepts.
pub const MAX_REQS: &[u8] = b"FCGI_MAX_REQS";

/// `FCGI_MPXS_CONNS`: `"1"` if the application multiplexes connections, else `"0"`.
pub const MPXS_CONNS: &[u8] = b"FCGI_MPXS_CONNS";

/// `FCGI_LISTENSOCK_FILENO`: the descriptor on which an application started by a web server
/// (or `spawn-fcgi`) finds its listening socket.
pub const LISTENSOCK_FILENO: i32 = 0;

/// `FCGI_WEB_SERVER_ADDRS`: the environment variable listing the peer addresses allowed to
/// connect, separated by commas.
pub const WEB_SERVER_ADDRS: &str = "FCGI_WEB_SERVER_ADDRS";
