//! JSON as fcgi-rs writes it (the access log's `json` format, the status page's `?json`,
//! `fcgi bench --json`): serde_json's serializer, with a [`Formatter`] that escapes in strings
//! what [`crate::escape`] escapes in every text line.
//!
//! serde_json escapes only what JSON requires: `"`, `\` and U+0000 to U+001F. A log line or a
//! status page is read by more than JSON parsers, and a peer's URI may hold anything, so
//! [`LineSafe`] also writes as `\uXXXX` escapes (which a JSON parser reads back as the same
//! character, so the document says what it said):
//!
//! | character | why |
//! |---|---|
//! | DEL, U+007F | a control character; terminals act on it |
//! | C1 controls, U+0080 to U+009F | NEL ends lines for some readers; CSI (U+009B) starts terminal sequences |
//! | U+2028, U+2029 | line and paragraph separators: JSON allows them raw, but JavaScript before ES2019 (a line embedded in a script) takes them for line ends, as do editors and log viewers |
//!
//! and U+0000 to U+001F as `\u00xx` (`\u000a`, not `\n`): one form for every control
//! character, the form the access log and the status page have always written.

use std::io;

use serde::Serialize;
use serde_json::ser::{CharEscape, CompactFormatter, Formatter};

/// serde_json's compact output, with strings escaped as the [module](self) docs say.
#[derive(Clone, Copy, Debug, Default)]
pub struct LineSafe;

/// Whether `c` is written escaped though JSON allows it raw.
fn escaped_beyond_json(c: char) -> bool {
    matches!(c, '\x7f'..='\u{9f}' | '\u{2028}' | '\u{2029}')
}

impl Formatter for LineSafe {
    fn write_string_fragment<W>(&mut self, writer: &mut W, fragment: &str) -> io::Result<()>
    where
        W: ?Sized + io::Write,
    {
        // Each of these characters is DEL (7F) or starts with C2 or E2 in UTF-8: most
        // fragments hold none and are written in one piece.
        if !fragment.bytes().any(|b| matches!(b, 0x7f | 0xc2 | 0xe2)) {
            return writer.write_all(fragment.as_bytes());
        }
        let mut rest = fragment;
        while let Some((at, c)) = rest.char_indices().find(|&(_, c)| escaped_beyond_json(c)) {
            writer.write_all(&rest.as_bytes()[..at])?;
            write!(writer, "\\u{:04x}", u32::from(c))?;
            rest = &rest[at + c.len_utf8()..];
        }
        writer.write_all(rest.as_bytes())
    }

    fn write_char_escape<W>(&mut self, writer: &mut W, escape: CharEscape) -> io::Result<()>
    where
        W: ?Sized + io::Write,
    {
        let byte = match escape {
            CharEscape::Backspace => 0x08,
            CharEscape::Tab => 0x09,
            CharEscape::LineFeed => 0x0a,
            CharEscape::FormFeed => 0x0c,
            CharEscape::CarriageReturn => 0x0d,
            CharEscape::AsciiControl(byte) => byte,
            // `"`, `\` (and `/`, which serde_json never escapes) as JSON writes them.
            escape => return CompactFormatter.write_char_escape(writer, escape),
        };
        write!(writer, "\\u{byte:04x}")
    }
}

/// Writes `value` to `writer` as compact JSON with [`LineSafe`]'s escapes.
///
/// ```
/// let mut line = Vec::new();
/// fcgi_server::json::to_writer(&mut line, &("a\"b\n\u{2028}", 7)).unwrap();
/// assert_eq!(line, br#"["a\"b\u000a\u2028",7]"#);
/// ```
pub fn to_writer<W, T>(writer: W, value: &T) -> serde_json::Result<()>
where
    W: io::Write,
    T: ?Sized + Serialize,
{
    value.serialize(&mut serde_json::Serializer::with_formatter(writer, LineSafe))
}

/// Appends `value` to `out` as [`to_writer`] writes it: for the lines and pages built in a
/// `String`, written into it with no buffer between.
///
/// ```
/// let mut line = String::from("uri=");
/// fcgi_server::json::push(&mut line, "/a\u{85}b");
/// assert_eq!(line, r#"uri="/a\u0085b""#);
/// ```
pub fn push<T: ?Sized + Serialize>(out: &mut String, value: &T) {
    // Serializing to a String cannot fail: a value's own Serialize may, and then what it
    // wrote before stays (as a failing writer of a line leaves a partial line).
    let _ = to_writer(StringWriter(out), value);
}

/// `value` as [`to_writer`] writes it.
///
/// ```
/// assert_eq!(fcgi_server::json::to_string("\x1b[2J"), r#""\u001b[2J""#);
/// ```
pub fn to_string<T: ?Sized + Serialize>(value: &T) -> String {
    let mut out = String::new();
    push(&mut out, value);
    out
}

/// A `String` as an [`io::Write`]: serde_json writes whole UTF-8 pieces (a string's fragments
/// between escapes, ASCII punctuation, escapes and numbers), each checked as it is appended.
struct StringWriter<'a>(&'a mut String);

impl io::Write for StringWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let text =
            std::str::from_utf8(buf).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        self.0.push_str(text);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_match_serde_json_except_for_the_extra_escapes() {
        // Everything from U+0000 to U+30FF, escaped or not: what a parser reads back is the
        // text itself.
        let all: String = (0..0x3100u32).filter_map(char::from_u32).collect();
        let line = to_string(&all);
        assert_eq!(serde_json::from_str::<String>(&line).unwrap(), all);
        assert!(!line.chars().any(|c| c.is_control() || matches!(c, '\u{2028}' | '\u{2029}')));
        for (text, expected) in [
            ("\u{8}\t\n\u{c}\r", r#""\u0008\u0009\u000a\u000c\u000d""#),
            ("\u{7f}\u{80}\u{9f}\u{a0}", "\"\\u007f\\u0080\\u009f\u{a0}\""),
            ("é€\u{2027}\u{2028}\u{2029}\u{202a}", "\"é€\u{2027}\\u2028\\u2029\u{202a}\""),
            ("a\"b\\c/d", r#""a\"b\\c/d""#),
        ] {
            assert_eq!(to_string(text), expected, "{text:?}");
        }
    }
}
