//! The stdin feeder: a helper thread that streams the request body into the program's stdin as
//! it arrives.
//!
//! It must not be the thread that writes the response: `Request::body()` blocks until the web
//! server sends more, and the response's first flush blocks until the whole body has arrived,
//! so one thread doing both would wait on itself whenever the program answers before it has
//! read its whole input.
//!
//! # A body that cannot be read whole
//!
//! End of file on the program's stdin means "this is the whole body". When reading the body
//! fails instead (the spool could not store it: disk full, or over `--max-body`; or the request
//! was aborted), closing stdin would hand the program a truncated body as if it were complete,
//! and it would answer as if all were well (a 200 for half an upload). So the feeder never
//! closes stdin after a failed read: it records the failure in the [`BodyState`] the pump
//! watches, and keeps stdin open until the pump has killed and reaped the program.

use std::fmt;
use std::io::{self, Read, Write};
use std::os::fd::AsFd;
use std::process::ChildStdin;
use std::sync::mpsc::{Receiver, TryRecvError};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use crate::sys;

/// How often the feeder, waiting for room in the program's stdin, looks at whether it should
/// stop.
pub(crate) const CHECK_EVERY: Duration = Duration::from_millis(50);

/// Bytes moved per read of the body: the size of one FastCGI record's worth of spool reads and
/// of one pipe buffer, so each write to the program usually fits in its pipe at once.
const CHUNK: usize = 64 * 1024;

/// Why the request body could not be read whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum BodyError {
    /// The web server aborted the request, or went away.
    Aborted,
    /// The body is larger than the server's `--max-body`.
    TooLarge(String),
    /// The server could not store the body (its spool file: disk full, read-only directory),
    /// or another read error.
    Unreadable(String),
}

impl BodyError {
    /// What a failed read of `Request::body()` means: fcgi-server reports an abort as
    /// `ConnectionAborted` and a body over the limit as `InvalidData`; anything else is a body
    /// it could not keep.
    pub(crate) fn from_read(e: &io::Error) -> BodyError {
        match e.kind() {
            io::ErrorKind::ConnectionAborted => BodyError::Aborted,
            io::ErrorKind::InvalidData => BodyError::TooLarge(e.to_string()),
            _ => BodyError::Unreadable(e.to_string()),
        }
    }

    /// The status to answer, when no output has gone out yet: 413 for a body over the limit
    /// (what the server core answers too); 500 for a body the server could not store, as nginx
    /// answers when it cannot write its own `client_body_temp`; for an abort nobody reads the
    /// answer, and 499 (nginx's "client closed request") says so in the access log.
    pub(crate) fn status(&self) -> u16 {
        match self {
            BodyError::Aborted => 499,
            BodyError::TooLarge(_) => 413,
            BodyError::Unreadable(_) => 500,
        }
    }
}

impl fmt::Display for BodyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BodyError::Aborted => f.write_str("the request was aborted"),
            BodyError::TooLarge(e) | BodyError::Unreadable(e) => f.write_str(e),
        }
    }
}

/// What the feeder tells the pump: whether reading the body failed. Shared by reference between
/// the two threads of one run.
#[derive(Debug, Default)]
pub(crate) struct BodyState {
    failed: Mutex<Option<BodyError>>,
}

impl BodyState {
    /// The failure, once reading the body has failed.
    pub(crate) fn failed(&self) -> Option<BodyError> {
        self.failed.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    fn fail(&self, error: BodyError) {
        *self.failed.lock().unwrap_or_else(PoisonError::into_inner) = Some(error);
    }
}

/// Streams `body` into `stdin`, then closes it. Gives up on the body when the program stops
/// reading (its stdin is closed: the rest is not for it) or when `stop` hangs up.
///
/// When reading `body` fails, the program gets no end of file: the failure goes to `state`,
/// and `stdin` stays open until `stop` hangs up (the pump kills the program on seeing the
/// failure, and hangs up once it is reaped).
pub(crate) fn feed(body: &mut dyn Read, stdin: ChildStdin, state: &BodyState, stop: &Receiver<()>) {
    // Non-blocking, so that a program that never reads its stdin cannot hold this thread (and
    // with it the request) once the gateway is done with it.
    // Should it fail, writes block: a program that reads its stdin still gets its body.
    let _ = sys::set_nonblocking(&stdin);
    let mut buf = vec![0u8; CHUNK];
    'body: loop {
        let n = match body.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                state.fail(BodyError::from_read(&e));
                // Hold stdin open (no end of file) until the pump is done with the program;
                // `recv` returns when it hangs up.
                let _ = stop.recv();
                break;
            }
        };
        let mut chunk = &buf[..n];
        while !chunk.is_empty() {
            match (&stdin).write(chunk) {
                Ok(written) => chunk = &chunk[written..],
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if stopped(stop) {
                        break 'body;
                    }
                    sys::wait_writable(stdin.as_fd(), CHECK_EVERY);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // EPIPE: the program closed its stdin or exited.
                Err(_) => break 'body,
            }
        }
    }
}

fn stopped(stop: &Receiver<()>) -> bool {
    !matches!(stop.try_recv(), Err(TryRecvError::Empty))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::wait_until;
    use std::path::{Path, PathBuf};
    use std::process::{Child, Command, Stdio};
    use std::sync::mpsc;

    /// A body that yields `good` bytes, then fails as the server's spool does when its disk is
    /// full.
    struct FailingBody {
        good: usize,
    }

    impl Read for FailingBody {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.good == 0 {
                return Err(io::Error::other("request body spool: No space left on device"));
            }
            let n = buf.len().min(self.good);
            buf[..n].fill(b'x');
            self.good -= n;
            Ok(n)
        }
    }

    #[test]
    fn read_errors_map_to_statuses() {
        let aborted = io::Error::new(io::ErrorKind::ConnectionAborted, "aborted");
        let large = io::Error::new(io::ErrorKind::InvalidData, "over the 10-byte limit");
        let full = io::Error::other("request body spool: cannot write the temporary file");
        assert_eq!(BodyError::from_read(&aborted), BodyError::Aborted);
        assert_eq!(BodyError::from_read(&large).status(), 413);
        assert_eq!(BodyError::from_read(&full).status(), 500);
        assert_eq!(BodyError::Aborted.status(), 499);
    }

    /// A program that prints how many bytes it read once its stdin ends must never get to
    /// print it when the body could not be read whole: the feeder reports the failure and keeps
    /// the pipe open, and the program is killed (here by the test, as the pump does).
    /// A program that writes how many bytes it read to `dir/count` once its stdin ends.
    fn counting_program(dir: &Path) -> (Child, ChildStdin, PathBuf) {
        let count = dir.join("count");
        let script = format!("n=$(wc -c); echo \"$n\" > '{}'", count.display());
        let mut child = Command::new("/bin/sh")
            .args(["-c", &script])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        (child, stdin, count)
    }

    #[test]
    fn a_body_read_error_is_no_end_of_file() {
        let dir = tempfile::tempdir().unwrap();
        let (mut child, stdin, count) = counting_program(dir.path());
        let state = BodyState::default();
        let (stop_tx, stop_rx) = mpsc::channel::<()>();
        std::thread::scope(|scope| {
            let shared = &state;
            let feeder = scope.spawn(move || {
                feed(&mut FailingBody { good: 100_000 }, stdin, shared, &stop_rx);
            });
            assert!(
                wait_until(Duration::from_secs(10), || state.failed().is_some()),
                "the feeder did not report the failed read"
            );
            assert!(matches!(state.failed(), Some(BodyError::Unreadable(_))));
            // The program has all the body there was, but no end of file: it keeps waiting.
            let exited = wait_until(Duration::from_millis(300), || {
                child.try_wait().ok().flatten().is_some()
            });
            assert!(!exited, "the program saw its stdin end after a failed body read");
            assert!(!feeder.is_finished(), "the feeder let go of stdin before the pump hung up");
            // What the pump does: kill, reap, hang up.
            child.kill().unwrap();
            child.wait().unwrap();
            drop(stop_tx);
            feeder.join().unwrap();
        });
        assert!(!count.exists(), "the program answered a truncated body");
    }

    #[test]
    fn a_whole_body_ends_with_end_of_file() {
        let dir = tempfile::tempdir().unwrap();
        let (mut child, stdin, count) = counting_program(dir.path());
        let state = BodyState::default();
        let (_stop_tx, stop_rx) = mpsc::channel::<()>();
        feed(&mut io::repeat(b'x').take(100_000), stdin, &state, &stop_rx);
        child.wait().unwrap();
        assert_eq!(state.failed(), None);
        assert_eq!(std::fs::read_to_string(&count).unwrap().trim(), "100000");
    }
}
