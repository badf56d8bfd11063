//! The heartbeat: a pipe per worker, on which the worker writes a small fixed-size report.
//!
//! Why a pipe rather than gunicorn's temporary file touched with `fchmod`: the master learns
//! more than "alive" (requests served and running, the oldest's age, whether the worker is
//! retiring on its own), which the dynamic model and the hung-request check need; it notices a
//! death at once (end of file) instead of at the next timeout; and the worker notices the
//! master's death too (`EPIPE`), so orphans stop themselves. Each report is 24 bytes, below
//! `PIPE_BUF`, so writes are atomic and reports never interleave.

use std::fs::File;
use std::io::{self, Read, Write};
use std::time::Duration;

/// The size of one report on the wire.
pub(crate) const BEAT_LEN: usize = 24;
/// Marks a report, so that a stray write on the pipe is noticed rather than misread.
const MAGIC: u32 = 0x6663_6762; // "fcgb"
/// The worker is retiring on its own (max requests, a slow request): replace it now.
pub(crate) const FLAG_RETIRING: u32 = 1;

/// One report from a worker.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Beat {
    pub(crate) served: u64,
    pub(crate) in_flight: u32,
    /// Age of the oldest running request in ms; `u32::MAX` when none runs.
    pub(crate) oldest_ms: u32,
    pub(crate) flags: u32,
}

impl Beat {
    pub(crate) fn oldest(&self) -> Option<Duration> {
        (self.oldest_ms != u32::MAX).then(|| Duration::from_millis(self.oldest_ms.into()))
    }

    pub(crate) fn retiring(&self) -> bool {
        self.flags & FLAG_RETIRING != 0
    }

    pub(crate) fn encode(&self) -> [u8; BEAT_LEN] {
        let mut out = [0; BEAT_LEN];
        out[0..4].copy_from_slice(&MAGIC.to_ne_bytes());
        out[4..12].copy_from_slice(&self.served.to_ne_bytes());
        out[12..16].copy_from_slice(&self.in_flight.to_ne_bytes());
        out[16..20].copy_from_slice(&self.oldest_ms.to_ne_bytes());
        out[20..24].copy_from_slice(&self.flags.to_ne_bytes());
        out
    }

    /// A report from its bytes; `None` when they are not one.
    pub(crate) fn decode(bytes: &[u8; BEAT_LEN]) -> Option<Beat> {
        let word = |at: usize| {
            u32::from_ne_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
        };
        if word(0) != MAGIC {
            return None;
        }
        let mut served = [0; 8];
        served.copy_from_slice(&bytes[4..12]);
        Some(Beat {
            served: u64::from_ne_bytes(served),
            in_flight: word(12),
            oldest_ms: word(16),
            flags: word(20),
        })
    }
}

/// A new pipe, both ends close-on-exec; the read end non-blocking (the master polls it).
pub(crate) fn pipe() -> io::Result<(File, File)> {
    let (read, write) = crate::sys::pipe()?;
    Ok((File::from(read), File::from(write)))
}

/// The master's side of one worker's pipe: collects whole reports from whatever bytes arrive.
#[derive(Debug)]
pub(crate) struct BeatReader {
    pipe: File,
    partial: Vec<u8>,
}

/// What reading a worker's pipe gave.
#[derive(Debug, Default)]
pub(crate) struct Received {
    pub(crate) beats: Vec<Beat>,
    /// The worker closed its end: it exited or is exiting.
    pub(crate) closed: bool,
    /// Bytes that were not a report (never written by our workers).
    pub(crate) garbled: bool,
}

impl BeatReader {
    pub(crate) fn new(pipe: File) -> BeatReader {
        BeatReader { pipe, partial: Vec::new() }
    }

    pub(crate) fn file(&self) -> &File {
        &self.pipe
    }

    /// Reads everything available without blocking.
    pub(crate) fn read_available(&mut self) -> Received {
        let mut received = Received::default();
        let mut buf = [0; BEAT_LEN * 16];
        loop {
            match self.pipe.read(&mut buf) {
                Ok(0) => {
                    received.closed = true;
                    break;
                }
                Ok(n) => self.partial.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            }
        }
        let whole = self.partial.len() - self.partial.len() % BEAT_LEN;
        for chunk in self.partial[..whole].chunks_exact(BEAT_LEN) {
            let mut bytes = [0; BEAT_LEN];
            bytes.copy_from_slice(chunk);
            match Beat::decode(&bytes) {
                Some(beat) => received.beats.push(beat),
                None => received.garbled = true,
            }
        }
        self.partial.drain(..whole);
        received
    }
}

/// The worker's side: writes one report, atomically.
pub(crate) fn send(pipe: &mut File, beat: &Beat) -> io::Result<()> {
    pipe.write_all(&beat.encode())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_round_trip_and_garbage_is_refused() {
        let beat = Beat { served: 1 << 40, in_flight: 3, oldest_ms: 1500, flags: FLAG_RETIRING };
        let decoded = Beat::decode(&beat.encode()).expect("a report");
        assert_eq!(decoded, beat);
        assert_eq!(decoded.oldest(), Some(Duration::from_millis(1500)));
        assert!(decoded.retiring());
        assert_eq!(Beat { oldest_ms: u32::MAX, ..beat }.oldest(), None);
        assert_eq!(Beat::decode(&[0; BEAT_LEN]), None);
    }

    #[test]
    fn the_reader_reassembles_reports_and_sees_the_end() {
        let (read, mut write) = pipe().expect("a pipe");
        let mut reader = BeatReader::new(read);
        let first = Beat { served: 1, ..Beat::default() };
        let second = Beat { served: 2, ..Beat::default() };
        let bytes = [first.encode(), second.encode()].concat();
        write.write_all(&bytes[..30]).expect("write");
        assert_eq!(reader.read_available().beats, vec![first]);
        write.write_all(&bytes[30..]).expect("write");
        drop(write);
        let received = reader.read_available();
        assert_eq!(received.beats, vec![second]);
        assert!(received.closed);
    }
}
