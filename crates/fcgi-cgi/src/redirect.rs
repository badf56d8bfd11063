//! Local redirects (RFC 3875 section 6.2.2): a program answered `Location: /path` without a
//! `Status`, so the gateway answers with what `/path` gives to a GET. This file maps the path to
//! a program and its meta-variables; the gateway runs it.

use std::ffi::OsStr;
use std::fmt;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::env::Vars;
use crate::uri::split_location;

/// The most local redirects one request may follow. Apache's default for internal redirects
/// (`LimitInternalRecursion`) is 10; a CGI program that needs more than a few is in a loop.
pub const MAX_LOCAL_REDIRECTS: usize = 5;

/// Why a local redirect cannot be followed. Each is answered 500: the program asked for
/// something the gateway cannot do, and the client can do nothing about it.
#[derive(Debug, PartialEq, Eq)]
pub enum RedirectError {
    /// More than [`MAX_LOCAL_REDIRECTS`] in one request: a loop, most likely.
    TooMany(String),
    /// There is no directory to map the path into: no `--cgi-root` and no `DOCUMENT_ROOT`.
    NoRoot(String),
    /// A `..` segment: a local redirect names a path on this site, and `..` would leave it.
    DotDot(String),
}

impl fmt::Display for RedirectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RedirectError::TooMany(to) => write!(
                f,
                "local redirect to {to:?} is one too many (at most {MAX_LOCAL_REDIRECTS}): a loop?"
            ),
            RedirectError::NoRoot(to) => write!(
                f,
                "cannot follow the local redirect to {to:?}: no --cgi-root and no DOCUMENT_ROOT"
            ),
            RedirectError::DotDot(to) => {
                write!(f, "local redirect to {to:?} has a `..` segment")
            }
        }
    }
}

impl std::error::Error for RedirectError {}

/// The meta-variables for following `location` from a request that had `vars`: the method
/// becomes GET with no body; `SCRIPT_NAME` is the longest prefix of the path that is not a
/// directory under the base (`DOCUMENT_ROOT`, else `root`), `PATH_INFO` the rest;
/// `SCRIPT_FILENAME`, `QUERY_STRING`, `REQUEST_URI` and `DOCUMENT_URI` follow;
/// `CONTENT_LENGTH`, `CONTENT_TYPE` and `PATH_TRANSLATED` are removed. The program is then
/// resolved and checked like any other.
///
/// ```
/// use fcgi_cgi::env::Vars;
/// use fcgi_cgi::redirect::follow;
///
/// let vars = Vars::from_pairs(&[("DOCUMENT_ROOT", "/nonexistent/www"), ("REQUEST_METHOD", "POST")]);
/// let next = follow(&vars, "/status?brief", None).unwrap();
/// assert_eq!(next.get_str("REQUEST_METHOD"), Some("GET"));
/// assert_eq!(next.get_str("SCRIPT_FILENAME"), Some("/nonexistent/www/status"));
/// assert_eq!(next.get_str("QUERY_STRING"), Some("brief"));
/// ```
pub fn follow(vars: &Vars, location: &str, root: Option<&Path>) -> Result<Vars, RedirectError> {
    // The location is a URL path, so it maps into the site's document root, as the web server
    // would map it; the CGI root stands in only when the web server sent none.
    let base = match vars.get_nonempty("DOCUMENT_ROOT") {
        Some(doc_root) => PathBuf::from(OsStr::from_bytes(doc_root)),
        None => root.ok_or_else(|| RedirectError::NoRoot(location.to_owned()))?.to_path_buf(),
    };
    let (path, query) = split_location(location);
    let segments: Vec<&[u8]> =
        path.split(|&b| b == b'/').filter(|s| !s.is_empty() && *s != b".").collect();
    if segments.iter().any(|s| *s == b"..") {
        return Err(RedirectError::DotDot(location.to_owned()));
    }
    // The first prefix that is not a directory names the program; if every one is, the whole
    // path does (and is then refused as a directory).
    let mut file = base.clone();
    let mut script_len = segments.len();
    for (i, segment) in segments.iter().enumerate() {
        file.push(OsStr::from_bytes(segment));
        if !file.is_dir() {
            script_len = i + 1;
            break;
        }
    }
    let join = |parts: &[&[u8]]| -> Vec<u8> {
        let mut out = Vec::new();
        for part in parts {
            out.push(b'/');
            out.extend_from_slice(part);
        }
        out
    };
    let script_name = join(&segments[..script_len]);
    let path_info = join(&segments[script_len..]);
    let script_file = base.join(OsStr::from_bytes(script_name.strip_prefix(b"/").unwrap_or(b"")));

    let mut next = vars.clone();
    next.set(b"REQUEST_METHOD", b"GET");
    next.set(b"SCRIPT_NAME", &script_name);
    next.set(b"PATH_INFO", &path_info);
    next.set(b"SCRIPT_FILENAME", script_file.as_os_str().as_bytes());
    next.set(b"QUERY_STRING", query.as_bytes());
    next.set(b"REQUEST_URI", location.as_bytes());
    next.set(b"DOCUMENT_URI", &path);
    next.remove("CONTENT_LENGTH");
    next.remove("CONTENT_TYPE");
    next.remove("PATH_TRANSLATED");
    Ok(next)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn maps_script_and_path_info() {
        let dir = tempfile::tempdir().unwrap();
        let root = fs::canonicalize(dir.path()).unwrap();
        fs::create_dir_all(root.join("cgi")).unwrap();
        fs::write(root.join("cgi/list.sh"), "").unwrap();
        let vars = Vars::from_pairs(&[
            ("REQUEST_METHOD", "POST"),
            ("CONTENT_LENGTH", "12"),
            ("CONTENT_TYPE", "text/plain"),
            ("HTTP_HOST", "example.com"),
        ]);
        let next = follow(&vars, "/cgi/list.sh/a%20b/c?x=1", Some(&root)).unwrap();
        assert_eq!(next.get_str("REQUEST_METHOD"), Some("GET"));
        assert_eq!(next.get_str("SCRIPT_NAME"), Some("/cgi/list.sh"));
        assert_eq!(next.get_str("PATH_INFO"), Some("/a b/c"));
        assert_eq!(next.get_str("QUERY_STRING"), Some("x=1"));
        let file = root.join("cgi/list.sh");
        assert_eq!(next.get("SCRIPT_FILENAME"), Some(file.as_os_str().as_bytes()));
        assert_eq!(next.get("CONTENT_LENGTH"), None);
        assert_eq!(next.get("CONTENT_TYPE"), None);
        assert_eq!(next.get_str("HTTP_HOST"), Some("example.com"));

        // A missing file is still the script (resolution then answers 404).
        let next = follow(&vars, "/cgi/none.sh", Some(&root)).unwrap();
        assert_eq!(next.get_str("SCRIPT_NAME"), Some("/cgi/none.sh"));
        assert_eq!(next.get_str("PATH_INFO"), Some(""));
    }

    #[test]
    fn refusals() {
        let vars = Vars::default();
        assert!(matches!(follow(&vars, "/x", None), Err(RedirectError::NoRoot(_))));
        let root = Path::new("/");
        assert!(matches!(follow(&vars, "/a/../../etc", Some(root)), Err(RedirectError::DotDot(_))));
        let with_doc_root = Vars::from_pairs(&[("DOCUMENT_ROOT", "/srv/www")]);
        let next = follow(&with_doc_root, "/nothing/here", Some(Path::new("/srv/cgi"))).unwrap();
        assert_eq!(
            next.get_str("SCRIPT_FILENAME"),
            Some("/srv/www/nothing"),
            "DOCUMENT_ROOT first"
        );
    }
}
