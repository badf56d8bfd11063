//! The logger a server uses when it is given none: warnings and errors on standard error, a
//! line each, so that a handler that fails is never silent. (`fcgi serve` gives its own: text
//! or JSON, to a file or standard error, written off the request path.)

use std::fmt::{self, Write as _};
use std::io::Write as _;

use slog::{o, Drain, Key, Level, Logger, OwnedKVList, Record, Serializer, KV};

/// Warnings and errors, as `fcgi-server WARN message; key=value, ...` on standard error.
pub(crate) fn stderr_logger() -> Logger {
    Logger::root(Stderr.filter_level(Level::Warning).ignore_res(), o!())
}

struct Stderr;

impl Drain for Stderr {
    type Ok = ();
    type Err = slog::Never;

    fn log(&self, record: &Record<'_>, values: &OwnedKVList) -> Result<(), slog::Never> {
        let mut line = format!("fcgi-server {}: {}", record.level().as_short_str(), record.msg());
        let mut fields = Fields(&mut line);
        let _ = record.kv().serialize(record, &mut fields);
        let _ = values.serialize(record, &mut fields);
        line.push('\n');
        // One write per line, so that lines of several threads do not mix; a standard error
        // that cannot be written to (closed, full) loses the line and nothing else.
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
        Ok(())
    }
}

/// Appends `; key=value` for each field.
struct Fields<'a>(&'a mut String);

impl Serializer for Fields<'_> {
    fn emit_arguments(&mut self, key: Key, value: &fmt::Arguments<'_>) -> slog::Result {
        let _ = write!(self.0, "; {key}={value}");
        Ok(())
    }
}
