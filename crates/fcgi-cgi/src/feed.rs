//! The stdin feeder: a helper thread that streams the request body into the program's stdin as
//! it arrives.
//!
//! It must not be the thread that writes the response: `Request::body()` blocks until the web
//! server sends more, and the response's first flush blocks until the whole body has arrived,
//! so one thread doing both would wait on itself whenever the program answers before it has
//! read its whole input.

use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::process::ChildStdin;
use std::sync::mpsc::{Receiver, TryRecvError};
use std::time::Duration;

use fcgi_server::Request;

/// How often the feeder, waiting for room in the program's stdin, looks at whether it should
/// stop.
pub(crate) const CHECK_EVERY: Duration = Duration::from_millis(50);

/// Bytes moved per read of the body: the size of one FastCGI record's worth of spool reads and
/// of one pipe buffer, so each write to the program usually fits in its pipe at once.
const CHUNK: usize = 64 * 1024;

/// Streams the body of `request` into `stdin`, then closes it. Gives up on the body when the
/// program stops reading (its stdin is closed: the rest is not for it) or when `stop` hangs up.
pub(crate) fn feed(request: &mut Request, stdin: ChildStdin, stop: &Receiver<()>) {
    // Non-blocking, so that a program that never reads its stdin cannot hold this thread (and
    // with it the request) once the gateway is done with it.
    set_nonblocking(&stdin);
    let mut buf = vec![0u8; CHUNK];
    'body: loop {
        let n = match request.body().read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            // Aborted, over the limit, or timed out: the server answers for the request; the
            // program gets what came so far and then end of file.
            Err(_) => break,
        };
        let mut chunk = &buf[..n];
        while !chunk.is_empty() {
            match (&stdin).write(chunk) {
                Ok(written) => chunk = &chunk[written..],
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if stopped(stop) {
                        break 'body;
                    }
                    wait_writable(&stdin);
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

fn set_nonblocking(stdin: &ChildStdin) {
    let fd = stdin.as_raw_fd();
    // SAFETY: fcntl on a descriptor we own.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        if flags >= 0 {
            libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK);
        }
    }
}

/// Waits until the pipe has room, or [`CHECK_EVERY`] passes.
fn wait_writable(stdin: &ChildStdin) {
    let mut fd = libc::pollfd { fd: stdin.as_raw_fd(), events: libc::POLLOUT, revents: 0 };
    let ms = libc::c_int::try_from(CHECK_EVERY.as_millis()).unwrap_or(50);
    // SAFETY: one valid pollfd; errors (EINTR) just mean another round.
    unsafe { libc::poll(&mut fd, 1, ms) };
}
