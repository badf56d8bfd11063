//! The system calls of the shared event set, in one place: one epoll set that every waiting
//! thread waits in, and an eventfd to wake one of them.
//!
//! Connections and listeners are registered **one-shot**: an event disarms its socket until the
//! thread that took it re-arms it ([`Epoll::rearm`]), so exactly one thread at a time handles a
//! socket, with no lock held while it waits. Re-arming looks at the socket again: bytes that
//! arrived meanwhile (or were left unread on purpose, for fairness) are reported at once, to
//! whichever thread waits, behind the events already pending.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

/// What a socket is watched for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Interest {
    /// Bytes to read (or the peer's end).
    Read,
    /// Bytes to read, or room to write answers that are waiting.
    ReadWrite,
    /// Room to write answers that are waiting, and not the bytes to read: a connection whose
    /// web server is sent answers faster than it reads them is not read until they drain.
    /// (A hang-up or an error is reported all the same.)
    Write,
}

/// One event, as the set reported it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Event {
    pub(crate) token: u64,
    pub(crate) writable: bool,
    /// The peer hung up, or the socket failed: read to the end.
    pub(crate) closing: bool,
}

/// Bits of a token that carry an event's flags through [`fcgi_pool::Wait::Work`]: tokens are
/// counted from 0 and never come near them.
const WRITABLE_BIT: u64 = 1 << 62;
const CLOSING_BIT: u64 = 1 << 61;

impl Event {
    /// The event as one number.
    pub(crate) fn pack(self) -> u64 {
        self.token
            | if self.writable { WRITABLE_BIT } else { 0 }
            | if self.closing { CLOSING_BIT } else { 0 }
    }

    pub(crate) fn unpack(work: u64) -> Event {
        Event {
            token: work & !(WRITABLE_BIT | CLOSING_BIT),
            writable: work & WRITABLE_BIT != 0,
            closing: work & CLOSING_BIT != 0,
        }
    }
}

/// An epoll set.
#[derive(Debug)]
pub(crate) struct Epoll {
    fd: OwnedFd,
}

fn check(result: libc::c_int) -> io::Result<libc::c_int> {
    if result < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(result)
    }
}

fn one_shot(interest: Interest) -> u32 {
    let read = (libc::EPOLLIN | libc::EPOLLRDHUP | libc::EPOLLONESHOT) as u32;
    match interest {
        Interest::Read => read,
        Interest::ReadWrite => read | libc::EPOLLOUT as u32,
        Interest::Write => (libc::EPOLLOUT | libc::EPOLLONESHOT) as u32,
    }
}

impl Epoll {
    pub(crate) fn new() -> io::Result<Epoll> {
        // SAFETY: no pointers; the descriptor returned is ours.
        let fd = check(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })?;
        // SAFETY: `fd` was just opened and nothing else owns it.
        Ok(Epoll { fd: unsafe { OwnedFd::from_raw_fd(fd) } })
    }

    fn ctl(&self, op: libc::c_int, fd: RawFd, events: u32, token: u64) -> io::Result<()> {
        let mut event = libc::epoll_event { events, u64: token };
        // SAFETY: `event` lives for the call; the kernel copies it.
        check(unsafe { libc::epoll_ctl(self.fd.as_raw_fd(), op, fd, &mut event) }).map(drop)
    }

    /// Watches `fd` for one event.
    pub(crate) fn add(&self, fd: RawFd, token: u64, interest: Interest) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_ADD, fd, one_shot(interest), token)
    }

    /// Watches `fd` for its next event, after one was taken.
    pub(crate) fn rearm(&self, fd: RawFd, token: u64, interest: Interest) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_MOD, fd, one_shot(interest), token)
    }

    /// Watches `fd`, an eventfd, for every write to it (edge-triggered, never re-armed).
    pub(crate) fn add_waker(&self, fd: RawFd, token: u64) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_ADD, fd, (libc::EPOLLIN | libc::EPOLLET) as u32, token)
    }

    pub(crate) fn delete(&self, fd: RawFd) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_DEL, fd, 0, 0)
    }

    /// Waits for events, at most `timeout` (`None`: without a limit); fills `events` from the
    /// start and returns how many. Interrupted by a signal: none.
    pub(crate) fn wait(
        &self,
        events: &mut [libc::epoll_event],
        timeout: Option<Duration>,
    ) -> io::Result<usize> {
        let millis = match timeout {
            None => -1,
            // Rounded up: a wait of 0.3 ms must not be a busy poll.
            Some(t) => {
                libc::c_int::try_from(t.as_micros().div_ceil(1000)).unwrap_or(libc::c_int::MAX)
            }
        };
        let max = libc::c_int::try_from(events.len()).unwrap_or(libc::c_int::MAX);
        // SAFETY: `events` is valid for `max` entries, which the kernel fills.
        match check(unsafe {
            libc::epoll_wait(self.fd.as_raw_fd(), events.as_mut_ptr(), max, millis)
        }) {
            Ok(n) => Ok(usize::try_from(n).unwrap_or(0)),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(0),
            Err(e) => Err(e),
        }
    }
}

/// What an event from [`Epoll::wait`] says.
pub(crate) fn event_of(raw: &libc::epoll_event) -> Event {
    let flags = raw.events;
    let closing = (libc::EPOLLRDHUP | libc::EPOLLHUP | libc::EPOLLERR) as u32;
    Event {
        token: raw.u64,
        writable: flags & libc::EPOLLOUT as u32 != 0,
        closing: flags & closing != 0,
    }
}

/// Asks the scheduler not to let the calling thread preempt the running one when it wakes
/// (`SCHED_BATCH`, which needs no privilege; the nice value is kept). Best effort: a system
/// that refuses leaves the thread as it was.
///
/// Why: a worker wakes for each request the web server writes, on a machine where the web
/// server runs too. Allowed to preempt, it preempts the web server at each request (nginx's
/// single worker, measured: 0.4 to 1.2 involuntary switches a request, against 0.01 to 0.2
/// when threads that never sleep serve it), and nginx, the bottleneck, spends 20 to 40 % more
/// CPU a request. Without wake-up preemption the worker runs when nginx yields the CPU,
/// by which time nginx has written more requests (DESIGN.md has the numbers). Handlers run
/// under it too, and what they start (threads, a CGI program) inherits it.
pub(crate) fn no_wakeup_preemption() {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: `param` lives for the call; 0 is the calling thread.
    let _ = unsafe { libc::sched_setscheduler(0, libc::SCHED_BATCH, &param) };
}

/// An eventfd: writing it wakes one thread waiting in the set it is registered in.
#[derive(Debug)]
pub(crate) struct EventFd {
    fd: OwnedFd,
}

impl EventFd {
    pub(crate) fn new() -> io::Result<EventFd> {
        // SAFETY: no pointers; the descriptor returned is ours.
        let fd = check(unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) })?;
        // SAFETY: `fd` was just opened and nothing else owns it.
        Ok(EventFd { fd: unsafe { OwnedFd::from_raw_fd(fd) } })
    }

    pub(crate) fn raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Wakes a waiter. The counter is never read: the set is edge-triggered, every write is an
    /// edge, and a counter that would overflow (after 2^64 writes) is reset.
    pub(crate) fn wake(&self) {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a u64 we own.
        let written = unsafe { libc::write(self.fd.as_raw_fd(), (&one as *const u64).cast(), 8) };
        if written < 0 {
            let mut count: u64 = 0;
            // SAFETY: reads 8 bytes into a u64 we own. Resets the counter.
            let _ = unsafe { libc::read(self.fd.as_raw_fd(), (&mut count as *mut u64).cast(), 8) };
            // SAFETY: as above.
            let _ = unsafe { libc::write(self.fd.as_raw_fd(), (&one as *const u64).cast(), 8) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_travel_as_one_number() {
        for token in [0, 1, 7, 1 << 40] {
            for (writable, closing) in [(false, false), (true, false), (false, true), (true, true)]
            {
                let event = Event { token, writable, closing };
                assert_eq!(Event::unpack(event.pack()), event);
            }
        }
    }

    #[test]
    fn a_one_shot_socket_reports_once_until_rearmed() {
        let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        let epoll = Epoll::new().unwrap();
        epoll.add(b.as_raw_fd(), 9, Interest::Read).unwrap();
        let mut events = [libc::epoll_event { events: 0, u64: 0 }; 4];
        std::io::Write::write_all(&mut &a, b"x").unwrap();
        assert_eq!(epoll.wait(&mut events, Some(Duration::from_secs(5))).unwrap(), 1);
        assert_eq!(event_of(&events[0]).token, 9);
        // Still readable, but disarmed.
        assert_eq!(epoll.wait(&mut events, Some(Duration::ZERO)).unwrap(), 0);
        // Re-arming reports the byte left unread.
        epoll.rearm(b.as_raw_fd(), 9, Interest::Read).unwrap();
        assert_eq!(epoll.wait(&mut events, Some(Duration::ZERO)).unwrap(), 1);
    }

    #[test]
    fn every_wake_is_an_edge() {
        let epoll = Epoll::new().unwrap();
        let waker = EventFd::new().unwrap();
        epoll.add_waker(waker.raw_fd(), 0).unwrap();
        let mut events = [libc::epoll_event { events: 0, u64: 0 }; 4];
        for _ in 0..3 {
            waker.wake();
            assert_eq!(epoll.wait(&mut events, Some(Duration::from_secs(5))).unwrap(), 1);
            assert_eq!(epoll.wait(&mut events, Some(Duration::ZERO)).unwrap(), 0);
        }
    }
}
