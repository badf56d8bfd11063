//! A FastCGI request's params, as an `http::Request`: method, URI, version, headers, and what
//! HTTP has no place for (the client's address, HTTPS, the params themselves) as extensions.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use fcgi_codec::http::parse_content_length;
use fcgi_server::Params;
use http::header::{HeaderName, HeaderValue, CONTENT_LENGTH, CONTENT_TYPE};
use http::{Method, Uri, Version};

/// The client's address and port, from the `REMOTE_ADDR` and `REMOTE_PORT` params, in every
/// request's extensions when `REMOTE_ADDR` is an IP address (nginx, Apache, lighttpd, Caddy
/// and HAProxy all send it). The port is 0 when the web server sent none. A web server that
/// listens on a Unix socket has no client address to send (nginx sends `unix:`), and the
/// extension is missing.
///
/// With the `axum` feature, the same address is also there as axum's
/// `ConnectInfo<SocketAddr>`, so that an axum app reads it as it would behind hyper.
///
/// ```
/// use fcgi_http::RemoteAddr;
///
/// fn client(request: &http::Request<fcgi_http::Body>) -> String {
///     match request.extensions().get::<RemoteAddr>() {
///         Some(RemoteAddr(addr)) => addr.ip().to_string(),
///         None => "unknown".into(),
///     }
/// }
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RemoteAddr(pub SocketAddr);

/// Whether the client reached the web server over TLS: the `HTTPS` param, in every request's
/// extensions. CGI's convention (RFC 3875 section 4.1.18 leaves it to the server): `on` or any
/// other non-empty value but `off` means TLS; missing or empty means not. nginx's
/// `fastcgi_params` sends `HTTPS on` only on TLS connections (`$https if_not_empty`).
///
/// The request's URI stays in origin form (`/items?page=2`), as an HTTP/1.1 server would hand
/// it over: the scheme is here, the host in the `Host` header.
///
/// ```
/// use fcgi_http::Https;
///
/// fn scheme(request: &http::Request<fcgi_http::Body>) -> &'static str {
///     match request.extensions().get::<Https>() {
///         Some(Https(true)) => "https",
///         _ => "http",
///     }
/// }
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Https(pub bool);

/// Every param of the request, as the web server sent them, in every request's extensions:
/// for what has no HTTP equivalent (`SCRIPT_NAME`, `DOCUMENT_ROOT`, `SERVER_NAME`, variables
/// an nginx `fastcgi_param` or an authorizer added).
///
/// ```
/// use fcgi_http::CgiParams;
///
/// fn document_root(request: &http::Request<fcgi_http::Body>) -> Option<&[u8]> {
///     request.extensions().get::<CgiParams>()?.get("DOCUMENT_ROOT")
/// }
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CgiParams(pub Arc<Params>);

impl CgiParams {
    /// The value of param `name`, as bytes.
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.0.get(name.as_bytes())
    }

    /// The value of param `name`, if it is valid UTF-8.
    pub fn get_str(&self, name: &str) -> Option<&str> {
        self.get(name).and_then(|value| std::str::from_utf8(value).ok())
    }
}

/// Why a request's params make no `http::Request`: it is answered `400 Bad Request`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BadRequest {
    /// `REQUEST_METHOD` is not an HTTP method token.
    Method(Vec<u8>),
    /// The URI (`REQUEST_URI`, or the one made of `SCRIPT_NAME`, `PATH_INFO` and
    /// `QUERY_STRING`) is not one `http::Uri` takes, even with its odd bytes percent-encoded.
    Uri(Vec<u8>),
    /// `CONTENT_LENGTH` is not a plain decimal number of bytes (digits only, as CGI and HTTP
    /// define it: RFC 3875 section 4.1.2, RFC 9110 section 8.6), or one past `u64`: how long
    /// the body is, nobody can say, and a request whose framing is in doubt is refused, as an
    /// HTTP server refuses such a `Content-Length`.
    ContentLength(Vec<u8>),
}

impl fmt::Display for BadRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BadRequest::Method(method) => {
                write!(
                    f,
                    "REQUEST_METHOD {:?} is not an HTTP method",
                    String::from_utf8_lossy(method)
                )
            }
            BadRequest::Uri(uri) => {
                write!(f, "the request URI {:?} is not a valid URI", String::from_utf8_lossy(uri))
            }
            BadRequest::ContentLength(length) => write!(
                f,
                "CONTENT_LENGTH {:?} is not a decimal number of bytes",
                String::from_utf8_lossy(length)
            ),
        }
    }
}

impl std::error::Error for BadRequest {}

/// The request headers that `HTTP_*` params are not passed on as, by the header name the
/// param maps to (`HTTP_` cut off, `_` as `-`, lower case). Compared after that mapping, so
/// that every spelling of a name is caught: `HTTP_TRANSFER_ENCODING`, `HTTP_transfer_encoding`
/// and `HTTP_Transfer-Encoding` all become `transfer-encoding`, and a web server (or a client
/// whose header a web server passes on as it came) that spells one oddly gets it dropped all
/// the same.
/// - `content-type`, `content-length`: nginx sends the client's headers as `HTTP_*` params
///   besides `CONTENT_TYPE` and `CONTENT_LENGTH`; the CGI variables are the ones that describe
///   the body the application gets (nginx fills `CONTENT_LENGTH` in for a chunked body it
///   buffered), and one header each is what an HTTP server hands over.
/// - `connection`, `keep-alive`, `proxy-connection`, `te`, `transfer-encoding`, `upgrade`:
///   the hop-by-hop fields of the connection between the client and the web server (RFC 9110
///   section 7.6.1), which ends there: the body the application reads is plain bytes whatever
///   its framing was, and no connection can be upgraded through FastCGI.
/// - `proxy`: "httpoxy" (CVE-2016-5385): the nginx sites of fcgi-rs set it empty, and no
///   client has a business sending a `Proxy` header.
const SKIPPED: [&[u8]; 9] = [
    b"content-type",
    b"content-length",
    b"connection",
    b"keep-alive",
    b"proxy-connection",
    b"te",
    b"transfer-encoding",
    b"upgrade",
    b"proxy",
];

/// The header name an `HTTP_NAME_PARTS` param stands for (`name-parts`), or `None` for a
/// param that is no header or one of [`SKIPPED`].
fn header_name(param: &[u8]) -> Option<Vec<u8>> {
    let name = param.strip_prefix(b"HTTP_")?;
    let name: Vec<u8> =
        name.iter().map(|&b| if b == b'_' { b'-' } else { b.to_ascii_lowercase() }).collect();
    (!SKIPPED.contains(&name.as_slice())).then_some(name)
}

/// Builds the `http::Request` that `params` describe, around `body`.
///
/// - Method: `REQUEST_METHOD` (`GET` if missing).
/// - URI: `REQUEST_URI`, as the client sent it (origin form: path and query). Without it,
///   `DOCUMENT_URI`, else `SCRIPT_NAME` + `PATH_INFO`, each followed by `?QUERY_STRING` if
///   there is one; `/` if none is there. Bytes `http::Uri` refuses (a space, non-ASCII bytes
///   that nginx passes on undecoded) are percent-encoded first.
/// - Version: `SERVER_PROTOCOL` (`HTTP/1.0`, `HTTP/1.1`, `HTTP/2.0`, `HTTP/3.0`; HTTP/1.1 if
///   missing or other).
/// - Headers: each `HTTP_NAME_PARTS` param as `name-parts`, values as bytes (not UTF-8 is
///   fine; a value with a control character, which no web server sends, is dropped), several
///   params of one name as several values, plus `content-type` and `content-length` from
///   `CONTENT_TYPE` and `CONTENT_LENGTH` when not empty. The client's own `Content-Type` and
///   `Content-Length`, the hop-by-hop fields (`Connection`, `Keep-Alive`, `Proxy-Connection`,
///   `TE`, `Transfer-Encoding`, `Upgrade`) and `Proxy` are left out, however the param
///   spells them (see the source for why each).
/// - A `CONTENT_LENGTH` that is not a plain decimal number is [`BadRequest::ContentLength`].
/// - Extensions: [`RemoteAddr`], [`Https`], [`CgiParams`] (and axum's `ConnectInfo` with the
///   `axum` feature).
///
/// [`Service`](crate::Service) calls it for every request; it is public for handlers of your
/// own and for tests.
///
/// ```
/// # fn params() -> fcgi_server::Params { Default::default() }
/// let params: fcgi_server::Params = params(); // REQUEST_METHOD=GET, REQUEST_URI=/items?page=2, ...
/// let request = fcgi_http::request_from_params(&params, ())?;
/// assert!(request.uri().path().starts_with('/'));
/// # Ok::<(), fcgi_http::BadRequest>(())
/// ```
pub fn request_from_params<B>(params: &Params, body: B) -> Result<http::Request<B>, BadRequest> {
    let param = |name: &str| params.get(name.as_bytes()).filter(|value| !value.is_empty());
    let method = match param("REQUEST_METHOD") {
        Some(method) => {
            Method::from_bytes(method).map_err(|_| BadRequest::Method(method.to_vec()))?
        }
        None => Method::GET,
    };
    let uri = request_uri(params)?;
    let version = match param("SERVER_PROTOCOL") {
        Some(b"HTTP/1.0") => Version::HTTP_10,
        Some(b"HTTP/2.0" | b"HTTP/2") => Version::HTTP_2,
        Some(b"HTTP/3.0" | b"HTTP/3") => Version::HTTP_3,
        Some(b"HTTP/0.9") => Version::HTTP_09,
        _ => Version::HTTP_11,
    };

    let mut request = http::Request::new(body);
    *request.method_mut() = method;
    *request.uri_mut() = uri;
    *request.version_mut() = version;
    let content_length = match param("CONTENT_LENGTH") {
        Some(raw) => {
            Some(parse_content_length(raw).ok_or_else(|| BadRequest::ContentLength(raw.to_vec()))?)
        }
        None => None,
    };
    let headers = request.headers_mut();
    for (name, value) in params {
        let Some(name) = header_name(name) else { continue };
        if let (Ok(name), Ok(value)) =
            (HeaderName::from_bytes(&name), HeaderValue::from_bytes(value))
        {
            headers.append(name, value);
        }
    }
    if let Some(Ok(value)) = param("CONTENT_TYPE").map(HeaderValue::from_bytes) {
        headers.insert(CONTENT_TYPE, value);
    }
    if let Some(length) = content_length {
        headers.insert(CONTENT_LENGTH, HeaderValue::from(length));
    }

    let extensions = request.extensions_mut();
    let remote_ip = param("REMOTE_ADDR")
        .and_then(|addr| std::str::from_utf8(addr).ok())
        .and_then(|addr| addr.parse::<IpAddr>().ok());
    if let Some(ip) = remote_ip {
        let port = param("REMOTE_PORT")
            .and_then(|port| std::str::from_utf8(port).ok())
            .and_then(|port| port.parse().ok())
            .unwrap_or(0);
        let addr = SocketAddr::new(ip, port);
        extensions.insert(RemoteAddr(addr));
        #[cfg(feature = "axum")]
        extensions.insert(axum::extract::ConnectInfo(addr));
    }
    let https = param("HTTPS").is_some_and(|value| !value.eq_ignore_ascii_case(b"off"));
    extensions.insert(Https(https));
    extensions.insert(CgiParams(Arc::new(params.clone())));
    Ok(request)
}

/// The request's URI: see [`request_from_params`].
fn request_uri(params: &Params) -> Result<Uri, BadRequest> {
    let param = |name: &str| params.get(name.as_bytes()).filter(|value| !value.is_empty());
    let raw: Vec<u8> = match param("REQUEST_URI") {
        Some(uri) => uri.to_vec(),
        None => {
            let mut uri = match param("DOCUMENT_URI") {
                Some(document) => document.to_vec(),
                None => {
                    let mut path = param("SCRIPT_NAME").unwrap_or_default().to_vec();
                    path.extend_from_slice(param("PATH_INFO").unwrap_or_default());
                    path
                }
            };
            if !uri.starts_with(b"/") {
                uri.insert(0, b'/');
            }
            if let Some(query) = param("QUERY_STRING") {
                uri.push(b'?');
                uri.extend_from_slice(query);
            }
            uri
        }
    };
    if let Ok(uri) = Uri::try_from(raw.as_slice()) {
        return Ok(uri);
    }
    Uri::try_from(percent_encode_odd(&raw)).map_err(|_| BadRequest::Uri(raw))
}

/// `raw` with every byte that `http::Uri` refuses in a path or query percent-encoded: controls,
/// space, `"`, `<`, `>`, `\`, `^`, `` ` ``, `{`, `|`, `}` and non-ASCII (RFC 3986 section 2.1).
fn percent_encode_odd(raw: &[u8]) -> Vec<u8> {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = Vec::with_capacity(raw.len() + 16);
    for &byte in raw {
        let odd = byte <= b' '
            || byte >= 0x7f
            || matches!(byte, b'"' | b'<' | b'>' | b'\\' | b'^' | b'`' | b'{' | b'|' | b'}');
        if odd {
            out.extend_from_slice(&[
                b'%',
                HEX[usize::from(byte >> 4)],
                HEX[usize::from(byte & 15)],
            ]);
        } else {
            out.push(byte);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use fcgi_codec::{encode_pair, ParamsDecoder, ParamsLimits};

    /// A request's params, as a table test writes them.
    type Pairs<'a> = &'a [(&'a str, &'a [u8])];

    fn params(pairs: Pairs<'_>) -> Params {
        let mut stream = Vec::new();
        for (name, value) in pairs {
            encode_pair(&mut stream, name.as_bytes(), value).expect("a pair");
        }
        let mut decoder = ParamsDecoder::new(ParamsLimits::default());
        decoder.push(&stream).expect("params");
        decoder.finish().expect("params")
    }

    fn request(pairs: Pairs<'_>) -> http::Request<()> {
        request_from_params(&params(pairs), ()).expect("a request")
    }

    /// The params nginx's `fastcgi_params` sends for `POST /items?x=1` with a JSON body.
    const NGINX_POST: Pairs<'static> = &[
        ("QUERY_STRING", b"x=1"),
        ("REQUEST_METHOD", b"POST"),
        ("CONTENT_TYPE", b"application/json"),
        ("CONTENT_LENGTH", b"13"),
        ("SCRIPT_NAME", b"/items"),
        ("REQUEST_URI", b"/items?x=1"),
        ("DOCUMENT_URI", b"/items"),
        ("SERVER_PROTOCOL", b"HTTP/1.1"),
        ("REMOTE_ADDR", b"127.0.0.1"),
        ("REMOTE_PORT", b"51234"),
        ("HTTP_HOST", b"localhost:8080"),
        ("HTTP_CONTENT_TYPE", b"application/json"),
        ("HTTP_CONTENT_LENGTH", b"13"),
        ("HTTP_X_FORWARDED_FOR", b"192.0.2.1"),
        ("HTTP_PROXY", b""),
    ];

    #[test]
    fn nginx_params_make_the_request_the_client_sent() {
        let request = request(NGINX_POST);
        assert_eq!(request.method(), Method::POST);
        assert_eq!(request.uri(), "/items?x=1");
        assert_eq!(request.version(), Version::HTTP_11);
        let headers: Vec<(&str, &[u8])> =
            request.headers().iter().map(|(n, v)| (n.as_str(), v.as_bytes())).collect();
        assert_eq!(
            headers,
            [
                ("host", &b"localhost:8080"[..]),
                ("x-forwarded-for", b"192.0.2.1"),
                ("content-type", b"application/json"),
                ("content-length", b"13"),
            ]
        );
        let addr: SocketAddr = "127.0.0.1:51234".parse().expect("an address");
        assert_eq!(request.extensions().get(), Some(&RemoteAddr(addr)));
        assert_eq!(request.extensions().get(), Some(&Https(false)));
        let raw = request.extensions().get::<CgiParams>().expect("the params");
        assert_eq!(raw.get_str("DOCUMENT_URI"), Some("/items"));
        assert_eq!(raw.0.len(), NGINX_POST.len());
    }

    #[test]
    fn the_uri_comes_from_request_uri_else_from_its_parts() {
        let cases: &[(Pairs<'_>, &str)] = &[
            (&[("REQUEST_URI", b"/a/b?c=d")], "/a/b?c=d"),
            (&[("REQUEST_URI", b"/a"), ("SCRIPT_NAME", b"/x")], "/a"),
            // No REQUEST_URI: DOCUMENT_URI, then SCRIPT_NAME + PATH_INFO, with the query.
            (&[("DOCUMENT_URI", b"/doc"), ("QUERY_STRING", b"q=1")], "/doc?q=1"),
            (&[("SCRIPT_NAME", b"/app"), ("PATH_INFO", b"/x/y")], "/app/x/y"),
            (&[("SCRIPT_NAME", b"/app"), ("QUERY_STRING", b"")], "/app"),
            (&[("PATH_INFO", b"info")], "/info"),
            (&[("REQUEST_URI", b"")], "/"),
            (&[], "/"),
            // Bytes http::Uri refuses, as nginx passes them on undecoded.
            (&[("REQUEST_URI", b"/caf\xc3\xa9 menu?q=a b")], "/caf%C3%A9%20menu?q=a%20b"),
            (&[("REQUEST_URI", b"/a\"b<c>")], "/a%22b%3Cc%3E"),
            // What http::Uri takes stays as it is.
            (&[("REQUEST_URI", b"/{x}|^")], "/{x}|^"),
            (&[("REQUEST_URI", b"*"), ("REQUEST_METHOD", b"OPTIONS")], "*"),
        ];
        for (pairs, want) in cases {
            assert_eq!(request(pairs).uri(), *want, "{pairs:?}");
        }
    }

    #[test]
    fn headers_keep_their_bytes_and_every_value() {
        let request = request(&[
            ("HTTP_X_LATIN1", b"caf\xe9"),
            ("HTTP_ACCEPT", b"text/html"),
            ("HTTP_ACCEPT", b"application/json"),
            ("HTTP_X_BAD", b"line\nbreak"),
            ("HTTP_BAD NAME", b"x"),
            ("HTTP_TRANSFER_ENCODING", b"chunked"),
            ("HTTP_", b"empty name"),
            ("NOT_A_HEADER", b"x"),
        ]);
        let headers = request.headers();
        assert_eq!(headers["x-latin1"].as_bytes(), b"caf\xe9");
        let accept: Vec<_> = headers.get_all("accept").iter().collect();
        assert_eq!(accept, ["text/html", "application/json"]);
        assert_eq!(headers.len(), 3, "{headers:?}");
    }

    #[test]
    fn content_type_and_length_come_from_the_cgi_variables() {
        let cases: &[(Pairs<'_>, Option<&str>, Option<&str>)] = &[
            (
                &[("CONTENT_TYPE", b"text/plain"), ("CONTENT_LENGTH", b"5")],
                Some("text/plain"),
                Some("5"),
            ),
            // Empty is absent: nginx sends both empty for a GET.
            (&[("CONTENT_TYPE", b""), ("CONTENT_LENGTH", b"")], None, None),
            (&[("CONTENT_LENGTH", b"0")], None, Some("0")),
            // The CGI variable wins over the client's header (a chunked body nginx buffered).
            (&[("HTTP_CONTENT_LENGTH", b"9"), ("CONTENT_LENGTH", b"12")], None, Some("12")),
            (&[("HTTP_CONTENT_TYPE", b"a/b")], None, None),
        ];
        for (pairs, content_type, content_length) in cases {
            let request = request(pairs);
            let header = |name| request.headers().get(name).map(|v| v.to_str().expect("ASCII"));
            assert_eq!(header(CONTENT_TYPE), *content_type, "{pairs:?}");
            assert_eq!(header(CONTENT_LENGTH), *content_length, "{pairs:?}");
        }
    }

    #[test]
    fn dropped_headers_are_dropped_however_the_param_spells_them() {
        let request = request(&[
            ("HTTP_transfer_encoding", b"chunked"),
            ("HTTP_Transfer-Encoding", b"chunked"),
            ("HTTP_Proxy", b"http://evil.example:3128"),
            ("HTTP_PROXY", b"http://evil.example:3128"),
            ("HTTP_CONNECTION", b"keep-alive, Upgrade"),
            ("HTTP_Connection", b"close"),
            ("HTTP_keep_alive", b"timeout=5"),
            ("HTTP_PROXY_CONNECTION", b"keep-alive"),
            ("HTTP_te", b"trailers"),
            ("HTTP_Upgrade", b"websocket"),
            ("HTTP_content_length", b"99"),
            ("HTTP_Content_Type", b"text/evil"),
            ("HTTP_X_Kept", b"yes"),
            ("HTTP_TEA", b"earl grey"),
            ("HTTP_PROXY_AUTHORIZATION", b"Basic eA=="),
        ]);
        let headers: Vec<(&str, &[u8])> =
            request.headers().iter().map(|(n, v)| (n.as_str(), v.as_bytes())).collect();
        assert_eq!(
            headers,
            [
                ("x-kept", &b"yes"[..]),
                ("tea", b"earl grey"),
                ("proxy-authorization", b"Basic eA=="),
            ]
        );
    }

    #[test]
    fn content_length_is_a_decimal_number_or_a_bad_request() {
        // (CONTENT_LENGTH, the header it becomes, or None for a bad request)
        let cases: &[(&[u8], Option<Option<&str>>)] = &[
            (b"13", Some(Some("13"))),
            (b"0", Some(Some("0"))),
            (b"007", Some(Some("7"))),
            (b"18446744073709551615", Some(Some("18446744073709551615"))),
            // Empty is absent: nginx sends it empty for a GET.
            (b"", Some(None)),
            (b"+5", None),
            (b"-1", None),
            (b" 5", None),
            (b"5 ", None),
            (b"5, 5", None),
            (b"0x10", None),
            (b"1e3", None),
            (b"five", None),
            (b"\xd9\xa3", None),
            (b"18446744073709551616", None),
        ];
        for (value, want) in cases {
            let got = request_from_params(&params(&[("CONTENT_LENGTH", value)]), ());
            match want {
                Some(header) => {
                    let request = got.unwrap_or_else(|e| panic!("{value:?}: {e}"));
                    let length = request.headers().get(CONTENT_LENGTH).map(|v| v.to_str().ok());
                    assert_eq!(length, header.map(Some), "{value:?}");
                }
                None => assert_eq!(
                    got.map(drop),
                    Err(BadRequest::ContentLength(value.to_vec())),
                    "{value:?}"
                ),
            }
        }
    }

    #[test]
    fn https_on_and_off() {
        let cases: &[(Option<&[u8]>, bool)] = &[
            (Some(b"on"), true),
            (Some(b"ON"), true),
            (Some(b"1"), true),
            (Some(b"off"), false),
            (Some(b"Off"), false),
            (Some(b""), false),
            (None, false),
        ];
        for (value, want) in cases {
            let pairs: Vec<(&str, &[u8])> = value.map(|v| ("HTTPS", v)).into_iter().collect();
            assert_eq!(request(&pairs).extensions().get(), Some(&Https(*want)), "{value:?}");
        }
    }

    #[test]
    fn the_remote_address_is_there_when_it_is_an_ip() {
        let cases: &[(Pairs<'_>, Option<&str>)] = &[
            (&[("REMOTE_ADDR", b"192.0.2.7"), ("REMOTE_PORT", b"4242")], Some("192.0.2.7:4242")),
            (&[("REMOTE_ADDR", b"2001:db8::1"), ("REMOTE_PORT", b"80")], Some("[2001:db8::1]:80")),
            (&[("REMOTE_ADDR", b"192.0.2.7")], Some("192.0.2.7:0")),
            (&[("REMOTE_ADDR", b"192.0.2.7"), ("REMOTE_PORT", b"x")], Some("192.0.2.7:0")),
            (&[("REMOTE_ADDR", b"unix:")], None),
            (&[], None),
        ];
        for (pairs, want) in cases {
            let request = request(pairs);
            let got = request.extensions().get::<RemoteAddr>().map(|a| a.0.to_string());
            assert_eq!(got.as_deref(), *want, "{pairs:?}");
        }
    }

    #[test]
    fn method_and_version() {
        let cases: &[(Pairs<'_>, Method, Version)] = &[
            (&[], Method::GET, Version::HTTP_11),
            (
                &[("REQUEST_METHOD", b"DELETE"), ("SERVER_PROTOCOL", b"HTTP/1.0")],
                Method::DELETE,
                Version::HTTP_10,
            ),
            (
                &[("REQUEST_METHOD", b"PROPFIND"), ("SERVER_PROTOCOL", b"HTTP/2.0")],
                Method::from_bytes(b"PROPFIND").expect("a token"),
                Version::HTTP_2,
            ),
            (&[("SERVER_PROTOCOL", b"HTTP/3.0")], Method::GET, Version::HTTP_3),
        ];
        for (pairs, method, version) in cases {
            let request = request(pairs);
            assert_eq!((request.method(), request.version()), (method, *version), "{pairs:?}");
        }
    }

    #[test]
    fn a_method_that_is_no_token_is_a_bad_request() {
        let bad = request_from_params(&params(&[("REQUEST_METHOD", b"GE T")]), ());
        assert_eq!(bad.map(drop), Err(BadRequest::Method(b"GE T".to_vec())));
        let bad = request_from_params(&params(&[("REQUEST_URI", b"http://[::1")]), ());
        assert!(matches!(bad, Err(BadRequest::Uri(_))), "{bad:?}");
    }
}
