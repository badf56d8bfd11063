//! Pieces of URIs the gateway takes apart itself: percent-decoding, the query string's command
//! line (RFC 3875 section 4.4), and a local redirect's path and query.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;

/// Decodes `%XX` escapes; with `plus_is_space`, also `+` as a space (the query string's form
/// encoding). A `%` not followed by two hex digits is kept as it is.
pub fn percent_decode(text: &[u8], plus_is_space: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    let mut i = 0;
    while i < text.len() {
        match text[i] {
            b'%' => match (text.get(i + 1).and_then(hex), text.get(i + 2).and_then(hex)) {
                (Some(hi), Some(lo)) => {
                    out.push(hi << 4 | lo);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' if plus_is_space => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    out
}

fn hex(b: &u8) -> Option<u8> {
    (*b as char).to_digit(16).and_then(|d| u8::try_from(d).ok())
}

/// The command-line arguments RFC 3875 section 4.4 derives from a query string: none if it
/// contains an `=` (a form, not a search), else its `+`-separated words, each percent-decoded.
/// The gateway uses them only when asked (`--cgi-argv`): they let a client put anything on a
/// program's command line, which old programs were written for and new ones rarely expect.
///
/// ```
/// use fcgi_cgi::uri::query_argv;
///
/// assert_eq!(query_argv(b"hello+big%20world"), ["hello", "big world"]);
/// assert!(query_argv(b"name=value").is_empty());
/// ```
pub fn query_argv(query: &[u8]) -> Vec<OsString> {
    if query.is_empty() || query.contains(&b'=') {
        return Vec::new();
    }
    query
        .split(|&b| b == b'+')
        .map(|word| OsString::from_vec(percent_decode(word, false)))
        .collect()
}

/// Splits a local redirect's location into its path (percent-decoded, as web servers decode
/// `SCRIPT_NAME` and `PATH_INFO`) and its query string (kept encoded, as `QUERY_STRING` is).
pub fn split_location(location: &str) -> (Vec<u8>, String) {
    let without_fragment = location.split('#').next().unwrap_or_default();
    let (path, query) = without_fragment.split_once('?').unwrap_or((without_fragment, ""));
    (percent_decode(path.as_bytes(), false), query.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoding() {
        assert_eq!(percent_decode(b"a%20b%2fc", false), b"a b/c");
        assert_eq!(percent_decode(b"a+b", true), b"a b");
        assert_eq!(percent_decode(b"a+b", false), b"a+b");
        assert_eq!(percent_decode(b"100%", false), b"100%");
        assert_eq!(percent_decode(b"%zz%4", false), b"%zz%4");
    }

    #[test]
    fn argv_follows_the_rfc() {
        assert_eq!(query_argv(b"a+b"), ["a", "b"]);
        assert_eq!(query_argv(b"one%2Btwo"), ["one+two"]);
        assert!(query_argv(b"").is_empty());
        assert!(query_argv(b"a=1&b").is_empty());
    }

    #[test]
    fn locations() {
        assert_eq!(
            split_location("/cgi/x.sh/more%20info?q=1#top"),
            (b"/cgi/x.sh/more info".to_vec(), "q=1".into())
        );
        assert_eq!(split_location("/plain"), (b"/plain".to_vec(), String::new()));
    }
}
