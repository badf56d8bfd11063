//! What the client sends: a role, params, a body to stream, and whether to keep the connection.

use std::fmt;
use std::io::Read;

use fcgi_codec::Role;

/// A request to send: [`Role::Responder`] with `FCGI_KEEP_CONN` unless told otherwise, params
/// in the order given, and a request body (`FCGI_STDIN`) read from any [`Read`] as it is sent.
///
/// The client adds no params of its own: the caller sets the CGI variables the application
/// needs (`SCRIPT_FILENAME`, `REQUEST_METHOD`, `CONTENT_LENGTH` for a body, ...).
///
/// ```
/// use fcgi_client::{Request, Role};
///
/// let body: &[u8] = b"name=value"; // or a File, a socket, stdin: any `Read`
/// let request = Request::new()
///     .param("SCRIPT_FILENAME", "/srv/www/upload.php")
///     .param("REQUEST_METHOD", "POST")
///     .param("CONTENT_LENGTH", body.len().to_string())
///     .params([("CONTENT_TYPE", "application/x-www-form-urlencoded")])
///     .stdin(body);
/// assert_eq!(request.get_role(), Role::Responder);
/// assert_eq!(request.get_param("CONTENT_LENGTH"), Some(&b"10"[..]));
/// ```
pub struct Request<'a> {
    pub(crate) role: Role,
    pub(crate) keep_conn: bool,
    pub(crate) params: Vec<(Vec<u8>, Vec<u8>)>,
    pub(crate) stdin: Option<Box<dyn Read + 'a>>,
    pub(crate) data: Option<Box<dyn Read + 'a>>,
}

impl Default for Request<'_> {
    fn default() -> Self {
        Request::new()
    }
}

impl fmt::Debug for Request<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let params: Vec<_> = self
            .params
            .iter()
            .map(|(n, v)| (String::from_utf8_lossy(n), String::from_utf8_lossy(v)))
            .collect();
        f.debug_struct("Request")
            .field("role", &self.role)
            .field("keep_conn", &self.keep_conn)
            .field("params", &params)
            .field("stdin", &self.stdin.is_some())
            .field("data", &self.data.is_some())
            .finish()
    }
}

impl<'a> Request<'a> {
    /// A Responder request with `FCGI_KEEP_CONN`, no params and an empty body.
    ///
    /// ```
    /// let request = fcgi_client::Request::new();
    /// assert!(request.get_keep_conn());
    /// ```
    pub fn new() -> Request<'a> {
        Request {
            role: Role::Responder,
            keep_conn: true,
            params: Vec::new(),
            stdin: None,
            data: None,
        }
    }

    /// Sets the role (`FCGI_RESPONDER`, `FCGI_AUTHORIZER` or `FCGI_FILTER`).
    ///
    /// ```
    /// use fcgi_client::{Request, Role};
    ///
    /// assert_eq!(Request::new().role(Role::Authorizer).get_role(), Role::Authorizer);
    /// ```
    pub fn role(mut self, role: Role) -> Request<'a> {
        self.role = role;
        self
    }

    /// Sets `FCGI_KEEP_CONN`: with it (the default) the connection stays open for another
    /// request; without it the server closes it after this one.
    ///
    /// ```
    /// assert!(!fcgi_client::Request::new().keep_conn(false).get_keep_conn());
    /// ```
    pub fn keep_conn(mut self, keep_conn: bool) -> Request<'a> {
        self.keep_conn = keep_conn;
        self
    }

    /// Adds one param. A name given twice is sent twice; servers take the last value.
    ///
    /// ```
    /// let request = fcgi_client::Request::new().param("QUERY_STRING", "a=1");
    /// assert_eq!(request.get_param("QUERY_STRING"), Some(&b"a=1"[..]));
    /// ```
    pub fn param(mut self, name: impl AsRef<[u8]>, value: impl AsRef<[u8]>) -> Request<'a> {
        self.params.push((name.as_ref().to_vec(), value.as_ref().to_vec()));
        self
    }

    /// Adds params, in order.
    ///
    /// ```
    /// let request = fcgi_client::Request::new().params([("A", "1"), ("B", "2")]);
    /// assert_eq!(request.get_params().len(), 2);
    /// ```
    pub fn params<I, N, V>(self, pairs: I) -> Request<'a>
    where
        I: IntoIterator<Item = (N, V)>,
        N: AsRef<[u8]>,
        V: AsRef<[u8]>,
    {
        pairs.into_iter().fold(self, |request, (name, value)| request.param(name, value))
    }

    /// Sets the request body, `FCGI_STDIN`: read to its end while the request is sent, in
    /// records of up to 65,528 bytes, never held whole in memory. Set `CONTENT_LENGTH` to
    /// match.
    ///
    /// ```
    /// let request = fcgi_client::Request::new().stdin(&b"name=value"[..]);
    /// ```
    pub fn stdin(mut self, body: impl Read + 'a) -> Request<'a> {
        self.stdin = Some(Box::new(body));
        self
    }

    /// Sets the Filter role's second stream, `FCGI_DATA`, sent after the body. A Filter
    /// request without it sends an empty one. Set `FCGI_DATA_LENGTH` and
    /// `FCGI_DATA_LAST_MOD` to match.
    ///
    /// ```
    /// use fcgi_client::{Request, Role};
    ///
    /// let request = Request::new()
    ///     .role(Role::Filter)
    ///     .params([("FCGI_DATA_LENGTH", "5"), ("FCGI_DATA_LAST_MOD", "0")])
    ///     .data(&b"hello"[..]);
    /// ```
    pub fn data(mut self, data: impl Read + 'a) -> Request<'a> {
        self.data = Some(Box::new(data));
        self
    }

    /// The role.
    ///
    /// ```
    /// assert_eq!(fcgi_client::Request::new().get_role(), fcgi_client::Role::Responder);
    /// ```
    pub fn get_role(&self) -> Role {
        self.role
    }

    /// Whether `FCGI_KEEP_CONN` is set.
    ///
    /// ```
    /// assert!(fcgi_client::Request::new().get_keep_conn());
    /// ```
    pub fn get_keep_conn(&self) -> bool {
        self.keep_conn
    }

    /// The params, in order.
    ///
    /// ```
    /// let request = fcgi_client::Request::new().param("A", "1");
    /// assert_eq!(request.get_params(), [(b"A".to_vec(), b"1".to_vec())]);
    /// ```
    pub fn get_params(&self) -> &[(Vec<u8>, Vec<u8>)] {
        &self.params
    }

    /// The value of param `name` (the last, if it was given twice).
    ///
    /// ```
    /// let request = fcgi_client::Request::new().param("A", "1").param("A", "2");
    /// assert_eq!(request.get_param("A"), Some(&b"2"[..]));
    /// assert_eq!(request.get_param("B"), None);
    /// ```
    pub fn get_param(&self, name: impl AsRef<[u8]>) -> Option<&[u8]> {
        let name = name.as_ref();
        self.params.iter().rev().find(|(n, _)| n == name).map(|(_, v)| v.as_slice())
    }
}
