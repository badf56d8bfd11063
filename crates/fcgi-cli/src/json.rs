//! JSON string literals, for the lines and reports fcgi-cli writes by hand (`fcgi bench --json`,
//! the access log's JSON format): quotes and backslashes escaped, control characters as
//! `\u00XX`, everything else as it is (JSON text is UTF-8).

use std::fmt::Write as _;

/// Appends `text` to `out` as a JSON string literal.
pub(crate) fn push_string(out: &mut String, text: &str) {
    out.reserve(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
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
        assert_eq!(super::string("a\"b\\c\n\u{1}é"), r#""a\"b\\c\u000a\u0001é""#);
    }
}
