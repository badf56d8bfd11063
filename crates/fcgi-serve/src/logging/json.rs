//! The `json` log format: one object per record, `msg`, `level` and `ts` first, then the
//! logger's values and the record's, as slog-json lays them out (which this replaces), written
//! by serde_json.
//!
//! slog-json's serializer writes strings with JSON's escapes only, and has no place for
//! another formatter: DEL, the C1 controls (NEL ends lines for some readers, CSI starts
//! terminal sequences), U+2028 and U+2029 (JavaScript before ES2019 and log viewers take them
//! for line ends) came out raw, where [`fcgi_server::escape`] escapes them in every other line.
//! [`Escapes`] writes them as `\uXXXX`, as [`fcgi_server::json::LineSafe`] does, and the
//! controls JSON escapes as serde_json does (`\n`, `\u001b`): a JSON parser reads back the same
//! characters.

use std::cell::RefCell;
use std::fmt;
use std::io::{self, Write};

use fcgi_server::json::LineSafe;
use serde::ser::{Serialize, SerializeMap, Serializer as _};
use serde_json::ser::{Compound, Formatter};
use slog::{Drain, Key, OwnedKVList, Record, KV};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// serde_json's compact output, with [`LineSafe`]'s escapes beyond JSON's in strings.
struct Escapes;

impl Formatter for Escapes {
    fn write_string_fragment<W>(&mut self, writer: &mut W, fragment: &str) -> io::Result<()>
    where
        W: ?Sized + io::Write,
    {
        LineSafe.write_string_fragment(writer, fragment)
    }
}

/// A drain that writes each record to `target` as a JSON line, in as many writes as serde_json
/// makes (the target gathers them: [`super::WholeLines`]). Not `Sync`: behind a `Mutex`.
pub(super) struct JsonLines<W: Write> {
    target: RefCell<W>,
}

impl<W: Write> JsonLines<W> {
    /// Lines written to `target`.
    pub(super) fn new(target: W) -> JsonLines<W> {
        JsonLines { target: RefCell::new(target) }
    }
}

impl<W: Write> Drain for JsonLines<W> {
    type Ok = ();
    type Err = io::Error;

    fn log(&self, record: &Record<'_>, values: &OwnedKVList) -> io::Result<()> {
        let mut target = self.target.borrow_mut();
        let mut serializer = serde_json::Serializer::with_formatter(&mut *target, Escapes);
        let mut fields = Fields(serializer.serialize_map(None).map_err(io::Error::other)?);
        // slog-json's order (slog serializes its default keys' list backwards).
        fields.entry("msg", &Display(record.msg()))?;
        fields.entry("level", record.level().as_short_str())?;
        let ts = OffsetDateTime::now_utc().format(&Rfc3339).ok();
        fields.entry("ts", &ts)?;
        values.serialize(record, &mut fields)?;
        record.kv().serialize(record, &mut fields)?;
        fields.0.end().map_err(io::Error::other)?;
        serializer.into_inner().write_all(b"\n")
    }
}

/// A value serialized as the JSON string of its `Display` form, written piece by piece into
/// the line (no string in between).
struct Display<'a>(&'a fmt::Arguments<'a>);

impl Serialize for Display<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self.0)
    }
}

/// A record's fields, as members of the line's object: numbers, booleans and `null` as JSON
/// writes them, everything else as a string (slog-json's mapping).
struct Fields<'a, W: Write>(Compound<'a, W, Escapes>);

impl<W: Write> Fields<'_, W> {
    fn entry<V: ?Sized + Serialize>(&mut self, key: &str, value: &V) -> io::Result<()> {
        self.0.serialize_entry(key, value).map_err(io::Error::other)
    }
}

/// The `emit_*` of each type that serializes as itself.
macro_rules! emit {
    ($($method:ident: $type:ty),* $(,)?) => {
        $(
            fn $method(&mut self, key: Key, value: $type) -> slog::Result {
                Ok(self.entry(key.as_ref(), &value)?)
            }
        )*
    };
}

impl<W: Write> slog::Serializer for Fields<'_, W> {
    emit!(
        emit_bool: bool,
        emit_char: char,
        emit_u8: u8,
        emit_i8: i8,
        emit_u16: u16,
        emit_i16: i16,
        emit_u32: u32,
        emit_i32: i32,
        emit_u64: u64,
        emit_i64: i64,
        emit_u128: u128,
        emit_i128: i128,
        emit_usize: usize,
        emit_isize: isize,
        emit_f32: f32,
        emit_f64: f64,
        emit_str: &str,
    );

    fn emit_unit(&mut self, key: Key) -> slog::Result {
        Ok(self.entry(key.as_ref(), &())?)
    }

    fn emit_none(&mut self, key: Key) -> slog::Result {
        Ok(self.entry(key.as_ref(), &None::<()>)?)
    }

    fn emit_arguments(&mut self, key: Key, value: &fmt::Arguments<'_>) -> slog::Result {
        Ok(self.entry(key.as_ref(), &Display(value))?)
    }
}
