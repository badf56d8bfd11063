//! The write half of a connection, shared by every request on it and by the thread reading it.
//!
//! Whole records are written under one lock, so the records of multiplexed requests interleave
//! safely. The socket is non-blocking (it is read from the shared event set).
//!
//! Handlers write with [`Wire::write_all`]: a write that would block waits for the socket to
//! drain, up to the write timeout, so a slow web server slows only its own requests and a
//! vanished one costs only its own connection.
//!
//! The reading thread (a worker, or the monitor standing in for them) must never wait on one
//! connection, so it writes with [`Wire::reply`]: the bytes join a pending queue, written at
//! once if the socket takes them, or later, either by the handler that holds the lock (before
//! it lets go of it) or by the reading thread when the socket turns writable.
//!
//! Backpressure: once the queue passes [`MAX_PENDING`] ([`Replied::Full`]), the connection
//! stops being read (its socket is watched for writability only) until the queue is down to
//! [`RESUME_AT`]; the web server's further requests wait in the socket, and its sends block,
//! as they would on any server that answers slower than it is asked. A web server that reads
//! none of its answers for the write timeout ([`Wire::stalled`]) has its connection closed.

use std::io;
use std::net::Shutdown;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, TryLockError};
use std::time::{Duration, Instant};

use fcgi_codec::RecordType;
use rustix::event::{PollFd, PollFlags, Timespec};

use crate::io::listener::Stream;

/// Most bytes of the reading thread's answers (GET_VALUES results, refusals) that may wait for
/// the web server before the connection stops being read: 64 KiB is hundreds of answers, and
/// what one connection can make the server hold. The queue passes it by one record's answer
/// at most, since reading stops at the record that passed it (and by the answers the sweep
/// gives, one per open request at most).
pub(crate) const MAX_PENDING: usize = 64 * 1024;

/// Bytes of queued answers at or below which a connection stopped for [`MAX_PENDING`] is read
/// again: half of it, so that a web server reading at about the rate it is answered does not
/// switch its connection off and on at every record.
pub(crate) const RESUME_AT: usize = MAX_PENDING / 2;

/// What became of an answer from the reading thread.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Replied {
    /// Written, with everything queued before it.
    Sent,
    /// Queued: the socket should be watched for writability.
    Queued,
    /// Queued, and the queue is past [`MAX_PENDING`]: stop reading the connection until it
    /// drains.
    Full,
}

/// Whole records (the first possibly begun already) that wait to be written.
#[derive(Debug, Default)]
struct Pending {
    bytes: Vec<u8>,
    /// Shut our side down once `bytes` are out: the last request is answered.
    finish: bool,
    /// The thread running the last request closes the connection itself right after it
    /// ([`Wire::defer_shutdown`]): `finish` then waits for it instead of shutting down.
    deferred: bool,
    /// While `bytes` wait: when they last moved (queued into an empty queue, or some of them
    /// written). A queue that has not moved for the write timeout is stalled.
    moved: Option<Instant>,
}

#[derive(Debug)]
pub(crate) struct Wire {
    stream: Stream,
    /// Held while writing; whoever holds it writes `pending` first.
    lock: Mutex<()>,
    /// Answers waiting to be written, and whether our side ends once they are.
    pending: Mutex<Pending>,
    write_timeout: Duration,
    /// Set once a write failed or the connection was closed: later writes fail at once.
    broken: AtomicBool,
    /// Set when the web server read nothing for the write timeout: a handler's write waited
    /// that long, or the queue stalled.
    timed_out: AtomicBool,
}

impl Wire {
    pub(crate) fn new(stream: Stream, write_timeout: Duration) -> Wire {
        Wire {
            stream,
            lock: Mutex::new(()),
            pending: Mutex::new(Pending::default()),
            write_timeout,
            broken: AtomicBool::new(false),
            timed_out: AtomicBool::new(false),
        }
    }

    pub(crate) fn stream(&self) -> &Stream {
        &self.stream
    }

    fn pending(&self) -> MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Writes `bytes` whole (after anything pending), waiting for the socket as long as the
    /// write timeout allows. For handlers, on pool threads.
    pub(crate) fn write_all(&self, bytes: &[u8]) -> io::Result<()> {
        self.write_all_parts(&mut [bytes])
    }

    /// [`write_all`](Wire::write_all) of several pieces, in order, with as few system calls as
    /// the socket allows (the pieces are consumed as they go out).
    pub(crate) fn write_all_parts(&self, parts: &mut [&[u8]]) -> io::Result<()> {
        let guard = self.lock.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let deadline = Instant::now() + self.write_timeout;
        let result =
            self.drain_pending(deadline).and_then(|()| self.write_parts_blocking(parts, deadline));
        let result = result.and_then(|()| self.release(guard, deadline));
        if result.is_err() {
            self.close();
        }
        result
    }

    /// Writes what is pending, then lets go of the write lock while holding the pending lock,
    /// so that an answer (or a finish) queued meanwhile is either dealt with here or finds the
    /// lock free.
    fn release(&self, guard: MutexGuard<'_, ()>, deadline: Instant) -> io::Result<()> {
        loop {
            let mut pending = self.pending();
            if pending.bytes.is_empty() {
                if pending.finish && !pending.deferred {
                    let _ = self.stream.shutdown(Shutdown::Write);
                }
                drop(guard);
                return Ok(());
            }
            let bytes = std::mem::take(&mut pending.bytes);
            pending.moved = None;
            drop(pending);
            self.write_blocking(&bytes, deadline)?;
        }
    }

    fn drain_pending(&self, deadline: Instant) -> io::Result<()> {
        let bytes = {
            let mut pending = self.pending();
            pending.moved = None;
            std::mem::take(&mut pending.bytes)
        };
        self.write_blocking(&bytes, deadline)
    }

    /// Queues `bytes` (whole records) and writes what the socket takes now, never waiting. For
    /// the reading thread, which stops reading the connection on [`Replied::Full`].
    pub(crate) fn reply(&self, bytes: &[u8]) -> io::Result<Replied> {
        self.pending().bytes.extend_from_slice(bytes);
        self.flush_pending()
    }

    /// Writes what is pending without waiting, if no handler is writing. For the reading
    /// thread, when the socket turns writable.
    pub(crate) fn flush_pending(&self) -> io::Result<Replied> {
        let guard = match self.lock.try_lock() {
            Ok(guard) => guard,
            Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
            // The holder writes the queue before it lets go.
            Err(TryLockError::WouldBlock) => {
                let mut pending = self.pending();
                if pending.bytes.is_empty() {
                    return Ok(Replied::Sent);
                }
                pending.moved.get_or_insert_with(Instant::now);
                return Ok(queued(pending.bytes.len()));
            }
        };
        let mut pending = self.pending();
        let mut written = 0;
        let result = loop {
            if written == pending.bytes.len() {
                if pending.finish && !pending.deferred {
                    let _ = self.stream.shutdown(Shutdown::Write);
                }
                break Ok(Replied::Sent);
            }
            match self.stream.send(&pending.bytes[written..]) {
                Ok(0) => break Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => written += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    break Ok(queued(pending.bytes.len() - written))
                }
                Err(e) => break Err(e),
            }
        };
        pending.bytes.drain(..written);
        if pending.bytes.is_empty() {
            pending.moved = None;
        } else if written > 0 || pending.moved.is_none() {
            pending.moved = Some(Instant::now());
        }
        drop(pending);
        drop(guard);
        if result.is_err() {
            self.close();
        }
        result
    }

    /// Lets go of the queue's memory if nothing waits in it.
    pub(crate) fn shrink(&self) {
        let mut pending = self.pending();
        if pending.bytes.is_empty() {
            pending.bytes = Vec::new();
        }
    }

    /// Whether the last request was the connection's last (FCGI_KEEP_CONN clear, or refused):
    /// once it is answered, our side is shut down and the connection is done.
    pub(crate) fn is_finishing(&self) -> bool {
        self.pending().finish
    }

    /// Marks the connection broken without shutting it down, for one that is closed with no
    /// request open: no writer to stop, and its descriptor's close ends it for the peer.
    pub(crate) fn mark_broken(&self) {
        self.broken.store(true, Ordering::Release);
    }

    /// Whether answers wait for the socket to turn writable.
    pub(crate) fn has_pending(&self) -> bool {
        !self.pending().bytes.is_empty()
    }

    /// Whether a connection stopped for its queue of answers may be read again: the queue is
    /// down to [`RESUME_AT`].
    pub(crate) fn may_resume(&self) -> bool {
        self.pending().bytes.len() <= RESUME_AT
    }

    /// Whether the queued answers have waited `write_timeout` without a byte of them taken
    /// by the web server: it does not read them. While a handler writes, its own writes have
    /// that deadline (and it writes the queue before it lets go), so the queue is not judged.
    pub(crate) fn stalled(&self, now: Instant) -> bool {
        let _guard = match self.lock.try_lock() {
            Ok(guard) => guard,
            Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
            Err(TryLockError::WouldBlock) => return false,
        };
        let pending = self.pending();
        let stalled = !pending.bytes.is_empty()
            && pending
                .moved
                .is_some_and(|moved| now.saturating_duration_since(moved) >= self.write_timeout);
        if stalled {
            self.timed_out.store(true, Ordering::Release);
        }
        stalled
    }

    /// Bytes of answers waiting in the queue.
    pub(crate) fn pending_len(&self) -> usize {
        self.pending().bytes.len()
    }

    /// Whether the web server read nothing for the write timeout, while a handler's write or
    /// the queue waited for it: the connection is closed for that.
    pub(crate) fn timed_out(&self) -> bool {
        self.timed_out.load(Ordering::Acquire)
    }

    fn write_blocking(&self, bytes: &[u8], deadline: Instant) -> io::Result<()> {
        self.write_parts_blocking(&mut [bytes], deadline)
    }

    /// Writes `parts` whole, in order, consuming them as they go out: one `send` for one part,
    /// one `sendmsg` for several.
    fn write_parts_blocking(&self, parts: &mut [&[u8]], deadline: Instant) -> io::Result<()> {
        /// More parts than this go out over several calls; the response's largest write has 4.
        const MAX_PARTS: usize = 8;
        let mut first = 0;
        loop {
            while parts.get(first).is_some_and(|part| part.is_empty()) {
                first += 1;
            }
            let rest = &mut parts[first..];
            if rest.is_empty() {
                return Ok(());
            }
            if self.broken.load(Ordering::Acquire) {
                return Err(io::Error::new(io::ErrorKind::BrokenPipe, "the connection is closed"));
            }
            let sent = if let [one] = rest {
                self.stream.send(one)
            } else {
                let mut slices = [io::IoSlice::new(&[]); MAX_PARTS];
                let count = rest.len().min(MAX_PARTS);
                for (slice, part) in slices.iter_mut().zip(rest.iter()) {
                    *slice = io::IoSlice::new(part);
                }
                self.stream.send_vectored(&slices[..count])
            };
            match sent {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(mut n) => {
                    for part in rest.iter_mut() {
                        let taken = n.min(part.len());
                        *part = &part[taken..];
                        n -= taken;
                        if n == 0 {
                            break;
                        }
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.wait_writable(deadline)?,
                Err(e) => return Err(e),
            }
        }
    }

    fn wait_writable(&self, deadline: Instant) -> io::Result<()> {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                self.timed_out.store(true, Ordering::Release);
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("the web server read nothing for {:?}", self.write_timeout),
                ));
            }
            let millis = i64::try_from(left.as_millis().max(1)).unwrap_or(i64::MAX);
            let millis = millis.min(i64::from(i32::MAX));
            let timeout = Timespec { tv_sec: millis / 1000, tv_nsec: millis % 1000 * 1_000_000 };
            let mut fds = [PollFd::new(&self.stream, PollFlags::OUT)];
            match rustix::event::poll(&mut fds, Some(&timeout)) {
                Ok(n) if n > 0 => return Ok(()),
                Ok(_) | Err(rustix::io::Errno::INTR) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Ends our side of the connection once the last request is answered: the web server sees
    /// the end of the stream, and the connection is read on until it closes its side, so that
    /// nothing it sent is answered with a reset.
    ///
    /// Never waits: if a writer holds the lock or answers are queued, whoever writes the last
    /// of them shuts our side down.
    pub(crate) fn finish_writes(&self) {
        self.pending().finish = true;
        let _ = self.flush_pending();
    }

    /// For the thread about to run a connection's last request, which closes the connection
    /// itself once the request ends if nothing more came in: the end of the answer then goes
    /// out without our side shut down first. A shutdown sent with it makes the web server
    /// close its end at once, and that close, arriving before ours, wakes a second thread to
    /// read the end of the stream and close (measured: an `epoll_wait`, a `recvfrom` and a
    /// contended lock more per connection). [`Wire::end_deferred`] undoes it when the thread
    /// does not close.
    pub(crate) fn defer_shutdown(&self) {
        self.pending().deferred = true;
    }

    /// Ends a [`defer_shutdown`](Wire::defer_shutdown): our side is shut down now if the last
    /// answer is out, or by whoever writes the last of it.
    pub(crate) fn end_deferred(&self) {
        let mut pending = self.pending();
        pending.deferred = false;
        if pending.finish && pending.bytes.is_empty() {
            drop(pending);
            // A writer that holds the lock shuts down as it lets go (`release`).
            if let Ok(_guard) = self.lock.try_lock() {
                let _ = self.stream.shutdown(Shutdown::Write);
            }
        }
    }

    /// Breaks the connection off so that the web server takes what it received of request
    /// `id`'s response as failed, not as complete: whatever is queued, then an empty FCGI_STDERR
    /// record header with version 0, then both directions closed, and no END_REQUEST.
    ///
    /// Why this, measured (docs/FAILURES.md): nginx, Apache, lighttpd and HAProxy all ignore
    /// END_REQUEST's appStatus and protocolStatus. A close without END_REQUEST is a normal end
    /// for nginx in its default mode (`fastcgi_keep_conn off`), and a TCP reset cannot be sent
    /// on a Unix socket. nginx and Apache reject a record of version 0; lighttpd and HAProxy
    /// do not check the version, so the record must not read as an end either: an empty
    /// STDOUT would end the response cleanly for HAProxy, an empty STDERR does not, and the
    /// close that follows without END_REQUEST is then a failure for every one of them (for
    /// lighttpd only with `server.stream-response-body`; by default it buffers the whole
    /// response and hides any backend failure from its client). Any other request on the same
    /// connection (multiplexed) fails with it.
    pub(crate) fn break_off(&self, id: u16) {
        let [id_high, id_low] = id.to_be_bytes();
        let invalid: [u8; 8] = [0, RecordType::Stderr.into(), id_high, id_low, 0, 0, 0, 0];
        let guard = self.lock.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let deadline = Instant::now() + self.write_timeout;
        let _ = self.drain_pending(deadline).and_then(|()| self.write_blocking(&invalid, deadline));
        drop(guard);
        self.close();
    }

    /// Closes both directions at once: writers fail, the reading thread sees the end.
    pub(crate) fn close(&self) {
        self.broken.store(true, Ordering::Release);
        let _ = self.stream.shutdown(Shutdown::Both);
    }

    pub(crate) fn is_broken(&self) -> bool {
        self.broken.load(Ordering::Acquire)
    }
}

/// What a flush that left `left` bytes in the queue tells the reading thread.
fn queued(left: usize) -> Replied {
    if left > MAX_PENDING {
        Replied::Full
    } else {
        Replied::Queued
    }
}
