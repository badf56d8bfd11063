//! Peer text, made safe to write into a line of a log or of the status page.
//!
//! Much of what the server logs comes from its peer: REQUEST_URI, SCRIPT_FILENAME (nginx
//! decodes `%0a` in it), the User-Agent, REMOTE_USER, a CGI program's standard error. Written
//! raw, a line feed or carriage return in one starts a line the peer wrote, and ESC sends
//! escape sequences to the terminal of whoever reads the log. Every writer of a text line in
//! fcgi-rs (the `term` log, the slow log, the access log's text formats, the fallback standard
//! error logger, the status page's text formats) passes each value through [`push_text`]
//! (or [`push_quoted`] inside a quoted field), and the status page's HTML and XML through
//! [`push_markup`]. JSON is written by serde_json, whose strings escape the same characters
//! as JSON escapes ([`crate::json`]).
//!
//! The escapes are nginx's access-log escapes, `\xHH` per byte of the character's UTF-8 form,
//! for every character that can break a line or act on a terminal:
//!
//! | character | why | written |
//! |---|---|---|
//! | C0 controls, U+0000 to U+001F | LF and CR end lines, ESC starts terminal sequences, NUL cuts C strings | `\x0A` |
//! | DEL, U+007F | a control character | `\x7F` |
//! | C1 controls, U+0080 to U+009F | NEL ends lines for some readers; CSI (U+009B) starts terminal sequences | `\xC2\x85` |
//! | U+2028, U+2029 | line and paragraph separators: editors and log viewers break lines there | `\xE2\x80\xA8` |
//! | `\` | the escape character itself, so that an escaped line reads back unambiguously | `\x5C` |
//! | `"` ([`push_quoted`] only) | ends a quoted field | `\x22` |
//!
//! Everything else, other non-ASCII text included, is written as it is: a URI with `é` stays
//! readable.

use std::borrow::Cow;
use std::fmt::{self, Write as _};

use slog::{Key, Serializer};

/// Whether `c` is written escaped in a text line (`quote`: inside a quoted field).
fn needs_escape(c: char, quote: bool) -> bool {
    matches!(c, '\0'..='\x1f' | '\x7f'..='\u{9f}' | '\u{2028}' | '\u{2029}' | '\\')
        || (quote && c == '"')
}

fn push(out: &mut String, text: &str, quote: bool) {
    if !text.chars().any(|c| needs_escape(c, quote)) {
        out.push_str(text);
        return;
    }
    out.reserve(text.len() + 8);
    for c in text.chars() {
        if needs_escape(c, quote) {
            push_hex(out, c);
        } else {
            out.push(c);
        }
    }
}

/// `c` as `\xHH` per byte of its UTF-8 form.
fn push_hex(out: &mut String, c: char) {
    let mut utf8 = [0; 4];
    for byte in c.encode_utf8(&mut utf8).bytes() {
        let _ = write!(out, "\\x{byte:02X}");
    }
}

/// Appends `text` to `out` with control characters, line separators and backslashes escaped
/// (see the [module](self) docs): what a log line's value or a status page's text value is.
///
/// ```
/// let mut line = String::from("uri: ");
/// fcgi_server::escape::push_text(&mut line, "/a\nforged line\x1b[31m");
/// assert_eq!(line, "uri: /a\\x0Aforged line\\x1B[31m");
/// ```
pub fn push_text(out: &mut String, text: &str) {
    push(out, text, false);
}

/// As [`push_text`], with `"` escaped too: for a value inside a quoted field (the access log's
/// `combined` format).
///
/// ```
/// let mut field = String::new();
/// fcgi_server::escape::push_quoted(&mut field, "curl \"8\"");
/// assert_eq!(field, "curl \\x228\\x22");
/// ```
pub fn push_quoted(out: &mut String, text: &str) {
    push(out, text, true);
}

/// `text` escaped as [`push_text`] does; borrowed when there was nothing to escape.
///
/// ```
/// use fcgi_server::escape;
///
/// assert!(matches!(escape::text("/index.php"), std::borrow::Cow::Borrowed(_)));
/// assert_eq!(escape::text("a\u{2028}b"), "a\\xE2\\x80\\xA8b");
/// ```
pub fn text(text: &str) -> Cow<'_, str> {
    if text.chars().any(|c| needs_escape(c, false)) {
        let mut out = String::with_capacity(text.len() + 8);
        push(&mut out, text, false);
        Cow::Owned(out)
    } else {
        Cow::Borrowed(text)
    }
}

/// A slog [`Serializer`] that appends each field of a record to a text line as
/// `SEPARATOR key ASSIGN value`, key and value escaped as [`push_text`] escapes them: how the
/// `term` log and the fallback logger write their fields.
///
/// ```
/// use slog::{o, Drain, Logger, OwnedKVList, Record, KV};
///
/// struct Line(std::sync::Mutex<String>);
/// impl Drain for Line {
///     type Ok = ();
///     type Err = slog::Never;
///     fn log(&self, record: &Record<'_>, _: &OwnedKVList) -> Result<(), slog::Never> {
///         let mut line = self.0.lock().unwrap();
///         line.push_str(&record.msg().to_string());
///         let mut fields = fcgi_server::escape::Fields::new(&mut line, ", ", ": ", true);
///         let _ = record.kv().serialize(record, &mut fields);
///         Ok(())
///     }
/// }
///
/// let drain = std::sync::Arc::new(Line(Default::default()));
/// let log = Logger::root(std::sync::Arc::clone(&drain), o!());
/// slog::info!(log, "served"; "uri" => "/a\nb");
/// assert_eq!(*drain.0.lock().unwrap(), "served, uri: /a\\x0Ab");
/// ```
pub struct Fields<'a> {
    line: &'a mut String,
    separator: &'static str,
    assign: &'static str,
    /// Whether the next field is preceded by the separator.
    separate: bool,
    /// The value being escaped (kept to reuse its buffer).
    value: String,
}

impl<'a> Fields<'a> {
    /// Fields appended to `line`, each after `separator` (the first too, if `separate_first`),
    /// its key and value joined by `assign`.
    pub fn new(
        line: &'a mut String,
        separator: &'static str,
        assign: &'static str,
        separate_first: bool,
    ) -> Fields<'a> {
        Fields { line, separator, assign, separate: separate_first, value: String::new() }
    }
}

impl Serializer for Fields<'_> {
    fn emit_arguments(&mut self, key: Key, value: &fmt::Arguments<'_>) -> slog::Result {
        if self.separate {
            self.line.push_str(self.separator);
        }
        self.separate = true;
        push_text(self.line, key);
        self.line.push_str(self.assign);
        self.value.clear();
        let _ = write!(self.value, "{value}");
        push_text(self.line, &self.value);
        Ok(())
    }
}

/// Appends `text` to `out` for an element or attribute of HTML or XML (the status page's
/// `?html` and `?xml`): `&`, `<`, `>`, `"` and `'` as entities, and what [`push_text`]
/// escapes as it does (XML 1.0 has no way to write most control characters at all).
///
/// ```
/// let mut out = String::new();
/// fcgi_server::escape::push_markup(&mut out, "/a?b=<script>&c='1'\n");
/// assert_eq!(out, "/a?b=&lt;script&gt;&amp;c=&#39;1&#39;\\x0A");
/// ```
pub fn push_markup(out: &mut String, text: &str) {
    out.reserve(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if needs_escape(c, false) => push_hex(out, c),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quoted(text: &str) -> String {
        let mut out = String::new();
        push_quoted(&mut out, text);
        out
    }

    fn json(text: &str) -> String {
        crate::json::to_string(text)
    }

    #[test]
    fn each_character_class_as_text_quoted_and_json() {
        let table = [
            ("plain /a?b=c", "plain /a?b=c", "plain /a?b=c", r#""plain /a?b=c""#),
            ("\0", "\\x00", "\\x00", r#""\u0000""#),
            ("\n", "\\x0A", "\\x0A", r#""\u000a""#),
            ("\r", "\\x0D", "\\x0D", r#""\u000d""#),
            ("\x1b[2J", "\\x1B[2J", "\\x1B[2J", r#""\u001b[2J""#),
            ("\x1f", "\\x1F", "\\x1F", r#""\u001f""#),
            ("\x7f", "\\x7F", "\\x7F", r#""\u007f""#),
            ("\u{85}", "\\xC2\\x85", "\\xC2\\x85", r#""\u0085""#),
            ("\u{9b}", "\\xC2\\x9B", "\\xC2\\x9B", r#""\u009b""#),
            ("\u{2028}", "\\xE2\\x80\\xA8", "\\xE2\\x80\\xA8", r#""\u2028""#),
            ("\u{2029}", "\\xE2\\x80\\xA9", "\\xE2\\x80\\xA9", r#""\u2029""#),
            ("\\", "\\x5C", "\\x5C", r#""\\""#),
            ("\"", "\"", "\\x22", r#""\"""#),
            ("é ü 日本 \u{a0}", "é ü 日本 \u{a0}", "é ü 日本 \u{a0}", "\"é ü 日本 \u{a0}\""),
        ];
        for (input, as_text, as_quoted, as_json) in table {
            assert_eq!(text(input), as_text, "{input:?}");
            assert_eq!(quoted(input), as_quoted, "{input:?}");
            assert_eq!(json(input), as_json, "{input:?}");
        }
    }

    #[test]
    fn no_escaped_output_holds_a_character_that_breaks_a_line() {
        // Every character from U+0000 to U+30FF, in one string: what comes out holds nothing
        // a reader could take for a line end or a terminal command.
        let all: String = (0..0x3100u32).filter_map(char::from_u32).collect();
        for out in [text(&all).into_owned(), quoted(&all), json(&all)] {
            assert!(
                !out.chars().any(|c| c.is_control() || matches!(c, '\u{2028}' | '\u{2029}')),
                "{out:?}"
            );
        }
        assert!(!quoted(&all).contains('"'));
    }
}
