//! The request body spool: the connection writes a stream into it as records arrive, and the
//! handler reads it at its own pace.
//!
//! Why it exists: nginx sends the whole request body before it reads any of the response. A
//! handler that answers while the body is still arriving would block on its writes, nginx on its
//! own, and nothing would move until a timeout. So the connection never waits for the handler:
//! the body goes to memory up to a threshold, then to an unlinked temporary file (as nginx's own
//! `client_body_temp` does), and a 1 GiB upload costs the threshold in memory.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::task::Waker;

use crate::conn::budget::{Budget, Charge};
use crate::status::StatusHandle;

/// Why a stream stopped before its end.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum SpoolError {
    /// The web server aborted the request, or the connection went away.
    Aborted,
    /// The stream passed the configured limit.
    TooLarge { limit: u64 },
    /// The temporary file could not be written.
    Io(String),
    /// The web server sent the stream too slowly (see `Config::read_timeout` and
    /// `Config::min_input_rate`).
    TimedOut,
    /// The handler ran out of time and gave up on the rest (see `AbortSignal::time_out`).
    HandlerTimedOut,
}

impl SpoolError {
    fn to_io(&self) -> io::Error {
        match self {
            SpoolError::Aborted => {
                io::Error::new(io::ErrorKind::ConnectionAborted, "the request was aborted")
            }
            SpoolError::TooLarge { limit } => io::Error::new(
                io::ErrorKind::InvalidData,
                format!("the request body is larger than the {limit}-byte limit"),
            ),
            SpoolError::Io(message) => io::Error::other(format!("request body spool: {message}")),
            SpoolError::TimedOut => io::Error::new(
                io::ErrorKind::TimedOut,
                "the web server sent the request body too slowly",
            ),
            SpoolError::HandlerTimedOut => io::Error::new(
                io::ErrorKind::TimedOut,
                "the handler ran out of time before the request body arrived",
            ),
        }
    }

    /// The status a request whose input stopped this way is answered with, before any of its
    /// output has gone out; `None` when nobody is left to answer (the web server aborted).
    pub(crate) fn status(&self) -> Option<u16> {
        match self {
            SpoolError::Aborted => None,
            SpoolError::TooLarge { .. } => Some(413),
            // A full or broken spool disk is this server's trouble, and passing: another host
            // (or this one later) can take the request.
            SpoolError::Io(_) => Some(503),
            SpoolError::TimedOut => Some(408),
            SpoolError::HandlerTimedOut => Some(504),
        }
    }
}

/// Where a spool keeps what does not fit in memory, and how much memory it may use.
#[derive(Clone, Debug)]
pub(crate) struct SpoolConfig {
    pub(crate) memory: usize,
    pub(crate) dir: Option<PathBuf>,
    pub(crate) limit: Option<u64>,
    /// What bodies in memory are charged against, with the params of unfinished requests.
    pub(crate) budget: Arc<Budget>,
    /// Where the bytes written to spool files are counted, for the status page.
    pub(crate) status: StatusHandle,
}

#[derive(Debug)]
struct State {
    /// Threads waiting on `changed`. Most requests are complete before their handler looks
    /// (nginx sends a GET's params and empty body in one write): counting waiters spares the
    /// monitor a futex call per request, which std's `notify_all` makes even when nobody waits.
    waiting: usize,
    memory: VecDeque<u8>,
    /// `memory`'s bytes, held against the server's budget.
    charge: Charge,
    file: Option<File>,
    /// Bytes written to the file, and bytes read back from it.
    file_len: u64,
    file_read: u64,
    /// Bytes the stream has carried in all.
    total: u64,
    ended: bool,
    failed: Option<SpoolError>,
    /// A task to wake when the stream is failed (an abort does: `RequestShared::poll_aborted`).
    waker: Option<Waker>,
}

/// One input stream of one request (its `FCGI_STDIN`, or its `FCGI_DATA`).
#[derive(Debug)]
pub(crate) struct Spool {
    config: SpoolConfig,
    state: Mutex<State>,
    changed: Condvar,
}

impl Spool {
    pub(crate) fn new(config: SpoolConfig) -> Spool {
        let state = State {
            waiting: 0,
            memory: VecDeque::new(),
            charge: Charge::new(&config.budget),
            file: None,
            file_len: 0,
            file_read: 0,
            total: 0,
            ended: false,
            failed: None,
            waker: None,
        };
        Spool { config, state: Mutex::new(state), changed: Condvar::new() }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding this lock leaves plain data behind; carry on with it.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Appends a piece of the stream. Returns the error that stopped the stream, if it stopped
    /// (the first time only; later pieces are dropped quietly).
    pub(crate) fn push(&self, data: &[u8]) -> Option<SpoolError> {
        let mut state = self.lock();
        if state.failed.is_some() || state.ended {
            return None;
        }
        state.total += data.len() as u64;
        let error = if self.config.limit.is_some_and(|limit| state.total > limit) {
            Some(SpoolError::TooLarge { limit: self.config.limit.unwrap_or_default() })
        } else if state.file.is_none()
            && state.memory.len() + data.len() <= self.config.memory
            && state.charge.grow_body(data.len())
        {
            state.memory.extend(data);
            None
        } else {
            self.spill(&mut state, data).err()
        };
        if let Some(error) = &error {
            state.failed = Some(error.clone());
        }
        self.notify(state);
        error
    }

    fn spill(&self, state: &mut State, data: &[u8]) -> Result<(), SpoolError> {
        if state.file.is_none() {
            let dir = self.config.dir.clone().unwrap_or_else(std::env::temp_dir);
            let file = tempfile::tempfile_in(&dir).map_err(|e| {
                SpoolError::Io(format!("cannot create a temporary file in {}: {e}", dir.display()))
            })?;
            state.file = Some(file);
        }
        let offset = state.file_len;
        if let Some(file) = &state.file {
            file.write_all_at(data, offset)
                .map_err(|e| SpoolError::Io(format!("cannot write the temporary file: {e}")))?;
        }
        state.file_len += data.len() as u64;
        self.config.status.spooled(data.len() as u64);
        Ok(())
    }

    /// The stream's empty record arrived: readers see the end once they have read the rest.
    pub(crate) fn finish(&self) {
        let mut state = self.lock();
        state.ended = true;
        self.notify(state);
    }

    /// The stream will not go on: readers get `error` once they have read what came before.
    pub(crate) fn fail(&self, error: SpoolError) {
        let mut state = self.lock();
        if !state.ended && state.failed.is_none() {
            state.failed = Some(error);
        }
        let waker = state.waker.take();
        self.notify(state);
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// Has `waker` woken at the next [`fail`](Spool::fail), ended stream or not: what an async
    /// handler waiting for an abort needs, the abort failing every input stream.
    pub(crate) fn wake_on_failure(&self, waker: &Waker) {
        let mut state = self.lock();
        if !state.waker.as_ref().is_some_and(|w| w.will_wake(waker)) {
            state.waker = Some(waker.clone());
        }
    }

    /// Wakes the readers, if any wait, after releasing the lock.
    fn notify(&self, state: MutexGuard<'_, State>) {
        let anyone = state.waiting > 0;
        drop(state);
        if anyone {
            self.changed.notify_all();
        }
    }

    /// Waits for a change: the caller holds the lock and checked its condition under it.
    fn wait<'a>(&self, mut state: MutexGuard<'a, State>) -> MutexGuard<'a, State> {
        state.waiting += 1;
        let mut state = self.changed.wait(state).unwrap_or_else(|poisoned| poisoned.into_inner());
        state.waiting -= 1;
        state
    }

    /// Whether the stream will carry nothing more: it ended, or it stopped.
    pub(crate) fn is_done(&self) -> bool {
        let state = self.lock();
        state.ended || state.failed.is_some()
    }

    /// Waits until the stream has ended or stopped, whatever the reader has taken of it.
    pub(crate) fn wait_complete(&self) {
        let mut state = self.lock();
        while !state.ended && state.failed.is_none() {
            state = self.wait(state);
        }
    }

    /// The error the stream stopped with, if it stopped.
    pub(crate) fn error(&self) -> Option<SpoolError> {
        self.lock().failed.clone()
    }

    /// Reads what is there, waiting for more while the stream goes on.
    pub(crate) fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let mut state = self.lock();
        loop {
            if !state.memory.is_empty() {
                let n = state.memory.read(buf)?;
                state.charge.shrink(n);
                return Ok(n);
            }
            if state.file_read < state.file_len {
                let offset = state.file_read;
                let want =
                    buf.len().min(usize::try_from(state.file_len - offset).unwrap_or(usize::MAX));
                let n = match &state.file {
                    Some(file) => file.read_at(&mut buf[..want], offset)?,
                    None => 0,
                };
                state.file_read += n as u64;
                return Ok(n);
            }
            if let Some(error) = &state.failed {
                return Err(error.to_io());
            }
            if state.ended {
                return Ok(0);
            }
            state = self.wait(state);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn spool(memory: usize, limit: Option<u64>) -> Spool {
        let status = StatusHandle::default();
        Spool::new(SpoolConfig {
            memory,
            dir: None,
            limit,
            budget: Budget::new(usize::MAX),
            status,
        })
    }

    fn read_all(spool: &Spool) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        let mut buf = [0u8; 1000];
        loop {
            match spool.read(&mut buf)? {
                0 => return Ok(out),
                n => out.extend_from_slice(&buf[..n]),
            }
        }
    }

    #[test]
    fn spills_to_a_file_past_the_memory_threshold_and_keeps_order() {
        let spool = spool(100, None);
        let data: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        for chunk in data.chunks(37) {
            assert_eq!(spool.push(chunk), None);
        }
        spool.finish();
        assert!(spool.lock().memory.len() <= 100);
        assert!(spool.lock().file.is_some());
        assert_eq!(read_all(&spool).unwrap(), data);
    }

    #[test]
    fn limit_stops_the_stream_with_an_error_for_the_reader() {
        let spool = spool(1024, Some(10));
        assert_eq!(spool.push(b"12345"), None);
        assert_eq!(spool.push(b"678901"), Some(SpoolError::TooLarge { limit: 10 }));
        let mut buf = [0u8; 16];
        assert_eq!(spool.read(&mut buf).unwrap(), 5);
        assert_eq!(spool.read(&mut buf).unwrap_err().kind(), io::ErrorKind::InvalidData);
    }

    #[test]
    fn past_the_budget_bodies_go_to_the_file_and_the_budget_comes_back() {
        let budget = Budget::new(1000);
        let status = StatusHandle::default();
        let config =
            SpoolConfig { memory: 800, dir: None, limit: None, budget: budget.clone(), status };
        let (a, b) = (Spool::new(config.clone()), Spool::new(config));
        assert_eq!(a.push(&[1; 700]), None);
        assert_eq!(b.push(&[2; 700]), None, "over the budget: to the file, not refused");
        assert!(b.lock().memory.is_empty() && b.lock().file.is_some());
        assert_eq!(budget.used(), 700);
        a.finish();
        assert_eq!(read_all(&a).unwrap(), vec![1; 700]);
        assert_eq!(budget.used(), 0, "read bytes are given back");
        assert_eq!(b.push(&[3; 10]), None);
        drop(b);
        assert_eq!(budget.used(), 0);
    }

    #[test]
    fn a_file_that_cannot_be_made_fails_the_stream() {
        let config = SpoolConfig {
            memory: 0,
            dir: Some("/nonexistent/spool".into()),
            limit: None,
            budget: Budget::new(usize::MAX),
            status: StatusHandle::default(),
        };
        let spool = Spool::new(config);
        assert!(matches!(spool.push(b"x"), Some(SpoolError::Io(_))));
        spool.finish();
        let err = read_all(&spool).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::Other);
        assert_eq!(spool.error().and_then(|e| e.status()), Some(503));
    }

    #[test]
    fn reader_waits_for_data_and_sees_an_abort() {
        let spool = Arc::new(spool(1024, None));
        let reader = {
            let spool = Arc::clone(&spool);
            std::thread::spawn(move || read_all(&spool))
        };
        spool.push(b"partial");
        spool.fail(SpoolError::Aborted);
        let err = reader.join().unwrap().unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::ConnectionAborted);
    }
}
