//! JSON for the reports fcgi-cli writes (`fcgi bench --json`): serde_json's, with
//! [`fcgi_server::json`]'s escapes in strings (those of the access log's JSON format),
//! everything else as it is (JSON text is UTF-8), on one line with a space after each `:` and
//! `,`, as the report has always been laid out.

use std::io;

use fcgi_server::json::LineSafe;
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::ser::{CharEscape, Formatter};

/// `"a": 1, "b": 2`: [`LineSafe`] with a space after each separator.
struct Spaced;

impl Formatter for Spaced {
    fn begin_array_value<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> io::Result<()> {
        if first {
            Ok(())
        } else {
            w.write_all(b", ")
        }
    }

    fn begin_object_key<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> io::Result<()> {
        self.begin_array_value(w, first)
    }

    fn begin_object_value<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        w.write_all(b": ")
    }

    fn write_string_fragment<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        text: &str,
    ) -> io::Result<()> {
        LineSafe.write_string_fragment(w, text)
    }

    fn write_char_escape<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        escape: CharEscape,
    ) -> io::Result<()> {
        LineSafe.write_char_escape(w, escape)
    }
}

/// `value` as one line of spaced JSON.
pub(crate) fn to_string<T: ?Sized + Serialize>(value: &T) -> String {
    let mut out = Vec::new();
    // Writing to a Vec cannot fail, and the report's values serialize without errors.
    let _ = value.serialize(&mut serde_json::Serializer::with_formatter(&mut out, Spaced));
    String::from_utf8(out).unwrap_or_default()
}

/// Named values, as one JSON object's members in their order.
pub(crate) struct Members<'a, V>(pub(crate) &'a [(&'a str, V)]);

impl<V: Serialize> Serialize for Members<'_, V> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (name, value) in self.0 {
            map.serialize_entry(name, value)?;
        }
        map.end()
    }
}

/// `value` rounded to `decimals` places (what the report shows), as the nearest `f64`: JSON
/// writes it with those digits at most.
pub(crate) fn rounded(value: f64, decimals: i32) -> f64 {
    let scale = 10f64.powi(decimals);
    (value * scale).round() / scale
}

/// `text` as a JSON string literal.
#[cfg(test)]
pub(crate) fn string(text: &str) -> String {
    to_string(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_escaped() {
        assert_eq!(super::string("a\"b\\c\n\u{1}é\u{2028}"), r#""a\"b\\c\u000a\u0001é\u2028""#);
    }

    #[test]
    fn members_in_order_spaced() {
        let members = Members(&[("z", 1.5), ("a", rounded(2.0 / 3.0, 3))]);
        assert_eq!(
            to_string(&(members, ["x"], [1, 2])),
            r#"[{"z": 1.5, "a": 0.667}, ["x"], [1, 2]]"#
        );
    }
}
