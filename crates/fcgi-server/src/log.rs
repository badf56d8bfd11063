//! The logger a server uses when it is given none: warnings and errors on standard error, a
//! line each, so that a handler that fails is never silent. (`fcgi serve` gives its own: text
//! or JSON, to a file or standard error, written off the request path.)
//!
//! The message and every value are escaped ([`crate::escape::push_text`]): a peer's URI or a
//! handler's error text cannot start a line of its own or reach the terminal as a command.

use std::io::Write as _;

use slog::{o, Drain, Level, Logger, OwnedKVList, Record, KV};

use crate::escape;

/// Warnings and errors, as `fcgi-server WARN: message; key=value, ...` on standard error.
pub(crate) fn stderr_logger() -> Logger {
    Logger::root(Stderr.filter_level(Level::Warning).ignore_res(), o!())
}

struct Stderr;

impl Drain for Stderr {
    type Ok = ();
    type Err = slog::Never;

    fn log(&self, record: &Record<'_>, values: &OwnedKVList) -> Result<(), slog::Never> {
        let line = line(record, values);
        // One write per line, so that lines of several threads do not mix; a standard error
        // that cannot be written to (closed, full) loses the line and nothing else.
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
        Ok(())
    }
}

/// The line for `record`, with its newline.
fn line(record: &Record<'_>, values: &OwnedKVList) -> String {
    let mut line = format!("fcgi-server {}: ", record.level().as_short_str());
    escape::push_text(&mut line, &record.msg().to_string());
    let mut fields = escape::Fields::new(&mut line, "; ", "=", true);
    let _ = record.kv().serialize(record, &mut fields);
    let _ = values.serialize(record, &mut fields);
    line.push('\n');
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// Keeps the lines [`line`] makes.
    struct Capture(Arc<Mutex<Vec<String>>>);

    impl Drain for Capture {
        type Ok = ();
        type Err = slog::Never;

        fn log(&self, record: &Record<'_>, values: &OwnedKVList) -> Result<(), slog::Never> {
            self.0.lock().unwrap().push(line(record, values));
            Ok(())
        }
    }

    #[test]
    fn message_and_values_are_escaped_on_one_line() {
        let lines = Arc::new(Mutex::new(Vec::new()));
        let log = Logger::root(Capture(Arc::clone(&lines)), o!("conn" => 7));
        let uri = "/x\nfcgi-server ERRO: forged\r\x1b[2J\u{2028}\\";
        slog::error!(log, "handler failed: {uri}"; "uri" => uri, "status" => 500);
        let escaped = "/x\\x0Afcgi-server ERRO: forged\\x0D\\x1B[2J\\xE2\\x80\\xA8\\x5C";
        assert_eq!(
            lines.lock().unwrap().as_slice(),
            [format!(
                "fcgi-server ERRO: handler failed: {escaped}; status=500; uri={escaped}; conn=7\n"
            )]
        );
    }
}
