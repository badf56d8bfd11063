//! The child's environment: the request's meta-variables (RFC 3875 section 4) as the web server
//! sent them, plus the `--pass-env` allow-list from our own environment, and nothing else of
//! ours.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;

use fcgi_server::Params;

/// The meta-variables of one run of a program: names and values as bytes, in the order the web
/// server sent them. A local redirect changes some of them and runs again.
///
/// ```
/// use fcgi_cgi::env::Vars;
///
/// let vars = Vars::from_pairs(&[("REQUEST_METHOD", "GET"), ("HTTP_PROXY", "evil:3128")]);
/// assert_eq!(vars.get_str("REQUEST_METHOD"), Some("GET"));
/// assert_eq!(vars.get("HTTP_PROXY"), None); // httpoxy: never passed on
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Vars {
    vars: Vec<(Vec<u8>, Vec<u8>)>,
}

/// Params never handed to a program although the web server sent them. `HTTP_PROXY` is the
/// client's `Proxy:` header, which many HTTP libraries take for the proxy to use ("httpoxy",
/// CVE-2016-5385); nginx's example configurations blank it, and so do we, always.
const DROPPED: &[&[u8]] = &[b"HTTP_PROXY"];

impl Vars {
    /// The request's params that may become environment variables: every param the web server
    /// sent (the CGI meta-variables, the `HTTP_*` request headers, and whatever the site's
    /// configuration adds with `fastcgi_param`, as RFC 3875 section 4.1 lets a server do),
    /// except those whose name is empty or holds `=` or NUL, whose value holds NUL, or that are
    /// in the drop list (`HTTP_PROXY`).
    pub fn from_params(params: &Params) -> Vars {
        Vars::collect(params.iter())
    }

    /// Meta-variables from pairs, filtered as [`Vars::from_params`] filters params (for tests,
    /// and for embedders that build requests themselves).
    pub fn from_pairs<N: AsRef<[u8]>, V: AsRef<[u8]>>(pairs: &[(N, V)]) -> Vars {
        Vars::collect(pairs.iter().map(|(n, v)| (n.as_ref(), v.as_ref())))
    }

    fn collect<'a>(pairs: impl Iterator<Item = (&'a [u8], &'a [u8])>) -> Vars {
        let vars = pairs
            .filter(|(name, value)| is_env_name(name) && !value.contains(&0))
            .filter(|(name, _)| !DROPPED.contains(name))
            .map(|(name, value)| (name.to_vec(), value.to_vec()))
            .collect();
        Vars { vars }
    }

    /// The value of `name`.
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        let name = name.as_bytes();
        self.vars.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_slice())
    }

    /// The value of `name`, when it is present and not empty.
    pub fn get_nonempty(&self, name: &str) -> Option<&[u8]> {
        self.get(name).filter(|v| !v.is_empty())
    }

    /// The value of `name` as UTF-8 text, when it is.
    pub fn get_str(&self, name: &str) -> Option<&str> {
        self.get(name).and_then(|v| std::str::from_utf8(v).ok())
    }

    /// Sets `name` (replacing it, or adding it at the end). Ignored for a name or value that
    /// cannot be an environment variable.
    pub fn set(&mut self, name: &[u8], value: &[u8]) {
        if !is_env_name(name) || value.contains(&0) {
            return;
        }
        match self.vars.iter_mut().find(|(n, _)| n == name) {
            Some((_, v)) => *v = value.to_vec(),
            None => self.vars.push((name.to_vec(), value.to_vec())),
        }
    }

    /// Removes `name`.
    pub fn remove(&mut self, name: &str) {
        self.vars.retain(|(n, _)| n != name.as_bytes());
    }

    /// The pairs, as `std::process::Command::envs` takes them.
    pub fn iter(&self) -> impl Iterator<Item = (&OsStr, &OsStr)> {
        self.vars.iter().map(|(n, v)| (OsStr::from_bytes(n), OsStr::from_bytes(v)))
    }
}

/// Reads the `--pass-env` names from our own environment, once: a name that is not set there is
/// left out (the program sees it unset, as without the option).
pub fn pass_env_values(names: &[String]) -> Vec<(OsString, OsString)> {
    names
        .iter()
        .filter(|name| is_env_name(name.as_bytes()))
        .filter_map(|name| std::env::var_os(name).map(|value| (OsString::from(name), value)))
        .collect()
}

/// A name that `execve` can carry: not empty, without `=` or NUL.
fn is_env_name(name: &[u8]) -> bool {
    !name.is_empty() && !name.contains(&b'=') && !name.contains(&0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_names_and_values_and_httpoxy_are_left_out() {
        let vars = Vars::from_pairs(&[
            (&b"REQUEST_METHOD"[..], &b"GET"[..]),
            (b"", b"empty name"),
            (b"A=B", b"equals in the name"),
            (b"NUL", b"a\0b"),
            (b"HTTP_HOST", b"example.com"),
            (b"HTTP_PROXY", b"evil:3128"),
        ]);
        let names: Vec<_> = vars.iter().map(|(n, _)| n.to_owned()).collect();
        assert_eq!(names, ["REQUEST_METHOD", "HTTP_HOST"]);
        let mut vars = vars;
        vars.set(b"HTTP_PROXY", b"evil:3128");
        // `set` is the gateway's own; the drop list applies to what the web server sends.
        assert_eq!(vars.get("HTTP_PROXY"), Some(&b"evil:3128"[..]));
        vars.remove("HTTP_PROXY");
        assert_eq!(vars.get("HTTP_PROXY"), None);
    }

    #[test]
    fn set_replaces_in_place() {
        let mut vars = Vars::from_pairs(&[("A", "1"), ("B", "2")]);
        vars.set(b"A", b"3");
        assert_eq!(vars.get_str("A"), Some("3"));
        assert_eq!(vars.iter().count(), 2);
        assert_eq!(vars.get_nonempty("C"), None);
        vars.set(b"C", b"");
        assert_eq!(vars.get_nonempty("C"), None);
        assert_eq!(vars.get("C"), Some(&b""[..]));
    }

    #[test]
    fn pass_env_reads_only_set_names() {
        let path = std::env::var_os("PATH");
        let passed = pass_env_values(&["PATH".into(), "FCGI_CGI_SURELY_UNSET_NAME".into()]);
        match path {
            Some(value) => assert_eq!(passed, [(OsString::from("PATH"), value)]),
            None => assert!(passed.is_empty()),
        }
    }
}
