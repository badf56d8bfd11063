//! JSON string literals, for the lines and reports fcgi-cli writes by hand (`fcgi bench --json`,
//! the access log's JSON format): [`fcgi_server::escape::push_json`]'s escapes (quotes,
//! backslashes, control characters, U+2028 and U+2029), everything else as it is (JSON text
//! is UTF-8).

/// Appends `text` to `out` as a JSON string literal.
pub(crate) fn push_string(out: &mut String, text: &str) {
    fcgi_server::escape::push_json(out, text);
}

/// `text` as a JSON string literal.
pub(crate) fn string(text: &str) -> String {
    let mut out = String::new();
    push_string(&mut out, text);
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn strings_are_escaped() {
        assert_eq!(super::string("a\"b\\c\n\u{1}é\u{2028}"), r#""a\"b\\c\u000a\u0001é\u2028""#);
    }
}
