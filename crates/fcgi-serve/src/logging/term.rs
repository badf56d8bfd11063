//! The `term` log format: `Nov 27 09:50:00.123 WARN message, key: value, key: value`, slog-term's
//! look (its timestamp, its level names, its order of fields), with the message and every value
//! escaped ([`fcgi_server::escape::push_text`]) and each line handed on in one write.
//!
//! slog-term's own `FullFormat` writes values as they are: a peer's REQUEST_URI or User-Agent
//! with a line feed started a line the peer wrote, and an ESC in it reached the terminal of
//! whoever read the log. It also wrote a line in many small writes, which lines of workers
//! appending to one file could interleave with.

use std::io::{self, Write};
use std::sync::Mutex;

use fcgi_server::escape;
use slog::{Drain, OwnedKVList, Record, KV};

/// Writes the timestamp a line starts with.
pub(crate) type Timestamp = fn(&mut dyn io::Write) -> io::Result<()>;

/// A drain that writes `term` lines to `W`; a line that cannot be written is an error (for
/// [`crate::logging::Lossy`] to count).
pub(crate) struct TermLines<W> {
    target: Mutex<W>,
    timestamp: Timestamp,
}

impl<W: Write> TermLines<W> {
    /// Lines to `target`, stamped with the local time as slog-term stamps them.
    pub(crate) fn new(target: W) -> TermLines<W> {
        TermLines::with_timestamp(target, slog_term::timestamp_local)
    }

    /// Lines to `target`, stamped by `timestamp`.
    pub(crate) fn with_timestamp(target: W, timestamp: Timestamp) -> TermLines<W> {
        TermLines { target: Mutex::new(target), timestamp }
    }
}

/// The line for `record`, with its newline.
pub(crate) fn line(
    record: &Record<'_>,
    values: &OwnedKVList,
    timestamp: Timestamp,
) -> io::Result<String> {
    let mut stamp = Vec::with_capacity(32);
    timestamp(&mut stamp)?;
    let mut line = String::with_capacity(128);
    escape::push_text(&mut line, &String::from_utf8_lossy(&stamp));
    line.push(' ');
    line.push_str(record.level().as_short_str());
    line.push(' ');
    let message = record.msg().to_string();
    escape::push_text(&mut line, &message);
    let mut pairs = escape::Fields::new(&mut line, ", ", ": ", !message.is_empty());
    record.kv().serialize(record, &mut pairs).map_err(io::Error::other)?;
    values.serialize(record, &mut pairs).map_err(io::Error::other)?;
    line.push('\n');
    Ok(line)
}

impl<W: Write> Drain for TermLines<W> {
    type Ok = ();
    type Err = io::Error;

    fn log(&self, record: &Record<'_>, values: &OwnedKVList) -> io::Result<()> {
        let line = line(record, values, self.timestamp)?;
        // One write of the whole line: a failed one leaves no half line behind, and lines of
        // several processes appending to one file do not interleave.
        let mut target = self.target.lock().unwrap_or_else(|p| p.into_inner());
        target.write_all(line.as_bytes())?;
        target.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use slog::{o, Logger};
    use std::sync::Arc;

    fn fixed(io: &mut dyn io::Write) -> io::Result<()> {
        write!(io, "Nov 27 09:50:00.123")
    }

    /// A writer whose bytes a test reads.
    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Shared {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    /// The same records through slog-term's FullFormat and through [`TermLines`].
    fn both(log: impl Fn(&Logger)) -> (String, String) {
        let theirs = Shared::default();
        let decorator = slog_term::PlainSyncDecorator::new(theirs.clone());
        let full = slog_term::FullFormat::new(decorator).use_custom_timestamp(fixed).build();
        log(&Logger::root(full.ignore_res(), o!("pid" => 7)));
        let ours = Shared::default();
        log(&Logger::root(
            TermLines::with_timestamp(ours.clone(), fixed).ignore_res(),
            o!("pid" => 7),
        ));
        (theirs.text(), ours.text())
    }

    #[test]
    fn plain_lines_look_as_slog_terms() {
        let (theirs, ours) = both(|log| {
            slog::info!(log, "serving"; "listen" => "unix:/run/fcgi.sock", "threads" => 4);
            slog::warn!(log, "signal ignored"; "signal" => 1, "detail" => %"a b", "list" => ?[1, 2]);
            slog::error!(log, ""; "empty" => "message");
            slog::debug!(log, "no fields");
        });
        assert_eq!(ours, theirs);
        assert!(ours.starts_with("Nov 27 09:50:00.123 INFO serving, "), "{ours}");
    }

    #[test]
    fn what_a_peer_sent_stays_on_its_line() {
        let forged = "/x\nNov 27 09:50:00.123 INFO forged, pid: 1\r\x1b]0;owned\x07\0\u{2028}\\";
        let (theirs, ours) = both(|log| {
            slog::warn!(log, "CGI program wrote: {forged}"; "uri" => forged);
        });
        assert_eq!(theirs.lines().count(), 3, "slog-term splits the line: {theirs:?}");
        assert_eq!(ours.lines().count(), 1, "{ours:?}");
        let escaped = "/x\\x0ANov 27 09:50:00.123 INFO forged, pid: 1\\x0D\\x1B]0;owned\\x07\\x00\
                       \\xE2\\x80\\xA8\\x5C";
        assert_eq!(
            ours,
            format!(
                "Nov 27 09:50:00.123 WARN CGI program wrote: {escaped}, uri: {escaped}, pid: 7\n"
            )
        );
    }
}
