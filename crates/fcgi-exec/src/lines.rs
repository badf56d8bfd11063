//! A program's output cut into log lines: the supervisor's for what it writes on its own fd 1
//! and 2, the relay's for its FCGI_STDERR. Pure: no I/O.

/// The longest line logged whole; a longer one is logged in pieces of this size.
pub(crate) const MAX_LINE: usize = 4096;

/// The line being collected.
#[derive(Debug, Default)]
pub(crate) struct Lines {
    line: Vec<u8>,
}

impl Lines {
    /// Takes `bytes` in, and gives `each` every line they complete (without its LF, a CR
    /// before it dropped too; lossily UTF-8).
    pub(crate) fn push(&mut self, bytes: &[u8], mut each: impl FnMut(String)) {
        for &byte in bytes {
            if byte == b'\n' || self.line.len() >= MAX_LINE {
                self.flush(&mut each);
                if byte == b'\n' {
                    continue;
                }
            }
            self.line.push(byte);
        }
    }

    /// Gives `each` what is collected, if anything: the stream ended mid-line.
    pub(crate) fn flush(&mut self, mut each: impl FnMut(String)) {
        if self.line.is_empty() {
            return;
        }
        let line = String::from_utf8_lossy(&self.line).trim_end_matches('\r').to_owned();
        self.line.clear();
        each(line);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_as_a_table() {
        let long = "x".repeat(MAX_LINE + 3);
        let table: [(&[&[u8]], &[&str]); 5] = [
            (&[b"one\ntwo\n"], &["one", "two"]),
            (&[b"spl", b"it\r\n"], &["split"]),
            (&[b"no end"], &["no end"]),
            (&[b"\n\n"], &[]),
            (&[long.as_bytes()], &[&long[..MAX_LINE], "xxx"]),
        ];
        for (chunks, want) in table {
            let mut lines = Lines::default();
            let mut got = Vec::new();
            for chunk in chunks {
                lines.push(chunk, |l| got.push(l));
            }
            lines.flush(|l| got.push(l));
            assert_eq!(got, want, "{chunks:?}");
        }
    }
}
