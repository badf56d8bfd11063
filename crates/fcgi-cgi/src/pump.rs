//! One run of a program, from its start to its reaping: its stdout parsed for the header block
//! and then streamed into the response, its stderr passed on line by line, the timeout and the
//! abort enforced with signals to its process group (through its [`Group`], which the
//! gateway's [`Watchdog`](crate::watchdog::Watchdog) also signals when the pump is blocked past
//! the deadline: see [`crate::watchdog`]).

use std::io::{self, Read, Write};
use std::os::fd::AsFd;
use std::process::{ChildStderr, ChildStdout, ExitStatus};
use std::time::{Duration, Instant};

use fcgi_server::Response;
use slog::{warn, Logger};

use crate::child::Child;
use crate::feed::{BodyError, BodyState, CHECK_EVERY};
use crate::headers::{Disposition, HeaderError, HeaderParser, Progress};
use crate::sys;
use crate::watchdog::Group;

/// Bytes read from the program's stdout at a time; with the response's own 64 KiB buffer, what
/// one request holds in memory, whatever the program writes.
const READ_CHUNK: usize = 64 * 1024;

/// The longest stderr line passed on whole; a longer one is passed on in pieces of this size.
const MAX_STDERR_LINE: usize = 4096;

/// Why a run ended early.
#[derive(Debug)]
pub(crate) enum Stop {
    /// The timeout passed.
    TimedOut,
    /// The web server aborted the request, or went away.
    Aborted,
    /// The header block is not valid.
    BadHeader(HeaderError),
    /// Writing the response failed: the web server is gone.
    ResponseFailed(io::Error),
    /// Reading the program's output failed.
    Io(io::Error),
    /// The request body could not be read whole (over the limit, or not stored): the program
    /// was killed rather than given a truncated body as if it were complete. An abort while
    /// the body arrives is [`Stop::Aborted`].
    BodyFailed(BodyError),
}

/// How far the response got.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Head {
    /// No valid header block (yet): nothing was given to the response.
    None,
    /// The header block was applied to the response, the body streamed after it.
    Sent,
    /// The program asked for a local redirect to this path; its output was discarded.
    LocalRedirect(String),
}

/// What happened in a run.
#[derive(Debug)]
pub(crate) struct Report {
    pub(crate) head: Head,
    pub(crate) stop: Option<Stop>,
    /// The exit status; `None` if waiting for it failed.
    pub(crate) status: Option<ExitStatus>,
}

/// The limits of a run.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    pub(crate) deadline: Option<Instant>,
    pub(crate) kill_grace: Duration,
}

/// Runs the pump until the program has exited and been reaped.
#[allow(clippy::too_many_arguments)]
pub(crate) fn pump(
    child: &mut Child,
    group: &Group,
    (stdout, stderr): (ChildStdout, ChildStderr),
    response: &mut Response,
    aborted: &dyn Fn() -> bool,
    body: Option<&BodyState>,
    limits: Limits,
    log: &Logger,
    script: &str,
) -> Report {
    // Should it fail, reads still wait for poll to say there is something to read.
    let _ = sys::set_nonblocking(&stdout);
    let _ = sys::set_nonblocking(&stderr);
    let mut run = Run {
        child,
        group,
        body,
        response,
        log,
        script,
        parser: Some(HeaderParser::new()),
        head: Head::None,
        stop: None,
        kill_at: None,
        give_up_at: None,
        grace: limits.kill_grace,
        discard: false,
        dirty: false,
        line: Vec::new(),
    };
    let status = run.run(Some(stdout), Some(stderr), aborted, limits);
    Report { head: run.head, stop: run.stop, status }
}

struct Run<'a> {
    child: &'a mut Child,
    group: &'a Group,
    /// The feeder's report on the request body, when the program gets one.
    body: Option<&'a BodyState>,
    response: &'a mut Response,
    log: &'a Logger,
    script: &'a str,
    /// Until the header block is complete.
    parser: Option<HeaderParser>,
    head: Head,
    stop: Option<Stop>,
    /// SIGTERM went out; SIGKILL follows at this time.
    kill_at: Option<Instant>,
    /// SIGKILL went out; if the pipes are still open at this time (a descendant that left the
    /// process group holds them), stop reading them.
    give_up_at: Option<Instant>,
    grace: Duration,
    /// Drop the program's stdout from now on (a local redirect, or after a failure).
    discard: bool,
    /// Body bytes are in the response's buffer and not yet flushed.
    dirty: bool,
    /// The stderr line being collected.
    line: Vec<u8>,
}

impl Run<'_> {
    fn run(
        &mut self,
        mut stdout: Option<ChildStdout>,
        mut stderr: Option<ChildStderr>,
        aborted: &dyn Fn() -> bool,
        limits: Limits,
    ) -> Option<ExitStatus> {
        let mut buf = vec![0u8; READ_CHUNK];
        let mut backoff = Duration::from_micros(50);
        loop {
            let now = Instant::now();
            if self.stop.is_none() {
                let body_failed = self.body.and_then(BodyState::failed);
                if let Some(BodyError::Aborted) = body_failed {
                    // Nobody waits for the answer: the usual stop, with its grace (git removes
                    // its lock files on SIGTERM). The program still sees no end of its input.
                    self.terminate(Stop::Aborted, now, limits.kill_grace);
                } else if let Some(error) = body_failed {
                    // Before anything else: the program must not answer a truncated body.
                    self.fail(Stop::BodyFailed(error));
                } else if aborted() {
                    self.terminate(Stop::Aborted, now, limits.kill_grace);
                } else if limits.deadline.is_some_and(|deadline| now >= deadline) {
                    self.terminate(Stop::TimedOut, now, limits.kill_grace);
                }
            }
            if self.kill_at.is_some_and(|at| now >= at) {
                self.kill_now(now);
            }
            if self.give_up_at.is_some_and(|at| now >= at) && (stdout.is_some() || stderr.is_some())
            {
                warn!(self.log, "a descendant of the killed program holds its output open; \
                    no longer reading it"; "script" => self.script);
                self.end_stderr();
                (stdout, stderr) = (None, None);
            }

            if stdout.is_none() && stderr.is_none() {
                // Both pipes are closed: the program has exited, or is about to (its
                // descriptors close before it becomes a zombie), or closed them itself.
                match self.try_reap() {
                    Ok(Some(status)) => return Some(status),
                    Ok(None) => {}
                    Err(_) => return self.kill_and_reap(),
                }
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(Duration::from_millis(10));
                continue;
            }

            let pipes = [stdout.as_ref().map(AsFd::as_fd), stderr.as_ref().map(AsFd::as_fd)];
            let mut ready = sys::poll_readable(pipes, Duration::ZERO);
            if matches!(ready, Ok([false, false])) {
                // Nothing more right now: what the program wrote goes to the web server, so
                // that a program that writes slowly is streamed, not held back.
                if self.dirty {
                    self.dirty = false;
                    if let Err(e) = self.response.flush() {
                        self.fail(Stop::ResponseFailed(e));
                    }
                }
                ready = sys::poll_readable(pipes, self.wait_time(now, limits.deadline));
            }
            let ready = match ready {
                Ok(ready) => ready,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    self.fail(Stop::Io(e));
                    return self.kill_and_reap();
                }
            };
            if ready[0] {
                if let Some(pipe) = stdout.as_mut() {
                    match read(pipe, &mut buf) {
                        Ok(Some(0)) => stdout = None,
                        Ok(Some(n)) => self.on_stdout(&buf[..n]),
                        Ok(None) => {}
                        Err(e) => {
                            self.fail(Stop::Io(e));
                            stdout = None;
                        }
                    }
                }
            }
            if ready[1] {
                if let Some(pipe) = stderr.as_mut() {
                    match read(pipe, &mut buf) {
                        Ok(Some(0)) | Err(_) => {
                            self.end_stderr();
                            stderr = None;
                        }
                        Ok(Some(n)) => self.on_stderr(&buf[..n]),
                        Ok(None) => {}
                    }
                }
            }
        }
    }

    /// How long to wait for output: until the next check of the abort flag, the deadline, or
    /// the SIGKILL, whichever comes first.
    fn wait_time(&self, now: Instant, deadline: Option<Instant>) -> Duration {
        let mut wait = CHECK_EVERY;
        if self.stop.is_none() {
            if let Some(deadline) = deadline {
                wait = wait.min(deadline.saturating_duration_since(now));
            }
        }
        for at in [self.kill_at, self.give_up_at].into_iter().flatten() {
            wait = wait.min(at.saturating_duration_since(now));
        }
        wait
    }

    /// Asks the program to stop: SIGTERM to its group now, SIGKILL after the grace.
    fn terminate(&mut self, why: Stop, now: Instant, grace: Duration) {
        self.stop = Some(why);
        self.group.terminate();
        self.kill_at = Some(now + grace);
    }

    /// Reaps the program if it has exited.
    fn try_reap(&mut self) -> io::Result<Option<ExitStatus>> {
        let child = &mut *self.child;
        self.group.reaping(|| {
            let result = child.try_wait();
            let reaped = matches!(result, Ok(Some(_)));
            (result, reaped)
        })
    }

    /// Kills the program's group and reaps it.
    fn kill_and_reap(&mut self) -> Option<ExitStatus> {
        let child = &mut *self.child;
        self.group.reaping(|| {
            let result = child.kill_and_reap().ok();
            let reaped = result.is_some();
            (result, reaped)
        })
    }

    /// Something failed that makes the rest of the program's output useless: kill it now.
    fn fail(&mut self, why: Stop) {
        if self.stop.is_none() {
            self.stop = Some(why);
        }
        self.discard = true;
        self.kill_now(Instant::now());
    }

    fn kill_now(&mut self, now: Instant) {
        self.group.kill();
        self.kill_at = None;
        self.give_up_at.get_or_insert(now + self.grace);
    }

    fn on_stdout(&mut self, bytes: &[u8]) {
        if self.discard {
            return;
        }
        let Some(parser) = self.parser.as_mut() else {
            self.write_body(bytes);
            return;
        };
        match parser.push(bytes) {
            Ok(Progress::Partial) => {}
            Ok(Progress::Complete { head, body }) => {
                self.parser = None;
                match head.disposition() {
                    Disposition::LocalRedirect { path } => {
                        self.head = Head::LocalRedirect(path);
                        self.discard = true;
                    }
                    Disposition::Document { status } => {
                        self.response.set_status(status);
                        // `Location` among them, in its place.
                        for (name, value) in &head.headers {
                            // The parser only lets through what `header` accepts: the same
                            // rules (`fcgi_codec::http`).
                            if let Err(e) = self.response.header(name, value) {
                                self.fail(Stop::ResponseFailed(e));
                                return;
                            }
                        }
                        self.head = Head::Sent;
                        self.write_body(&body);
                    }
                }
            }
            Err(e) => {
                self.parser = None;
                self.fail(Stop::BadHeader(e));
            }
        }
    }

    fn write_body(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        match self.response.write_all(bytes) {
            Ok(()) => self.dirty = true,
            Err(e) => self.fail(Stop::ResponseFailed(e)),
        }
    }

    fn on_stderr(&mut self, mut bytes: &[u8]) {
        while let Some(at) = bytes.iter().position(|&b| b == b'\n') {
            self.line.extend_from_slice(&bytes[..at]);
            self.emit_line();
            bytes = &bytes[at + 1..];
        }
        self.line.extend_from_slice(bytes);
        while self.line.len() >= MAX_STDERR_LINE {
            let rest = self.line.split_off(MAX_STDERR_LINE);
            self.emit_line();
            self.line = rest;
        }
    }

    fn end_stderr(&mut self) {
        if !self.line.is_empty() {
            self.emit_line();
        }
    }

    /// Passes the collected stderr line to the web server (FCGI_STDERR: nginx's error log) and
    /// to our log, with the script's name; then clears it.
    fn emit_line(&mut self) {
        let line = self.line.strip_suffix(b"\r").unwrap_or(&self.line);
        warn!(self.log, "{}", String::from_utf8_lossy(line); "script" => self.script, "stream" => "stderr");
        let mut record = Vec::with_capacity(line.len() + 1);
        record.extend_from_slice(line);
        record.push(b'\n');
        self.line.clear();
        if let Err(e) = self.response.write_stderr(&record) {
            self.fail(Stop::ResponseFailed(e));
        }
    }
}

/// One read: `Ok(None)` when there is nothing to read right now.
fn read(pipe: &mut impl Read, buf: &mut [u8]) -> io::Result<Option<usize>> {
    match pipe.read(buf) {
        Ok(n) => Ok(Some(n)),
        Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted) => {
            Ok(None)
        }
        Err(e) => Err(e),
    }
}
