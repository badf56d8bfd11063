//! Every system call fcgi-exec makes that std does not, in one place: safe wrappers on rustix,
//! and the one `unsafe` block the crate has, which prepares a program process between fork and
//! exec.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::time::Duration;

use rustix::event::{PollFd, PollFlags, Timespec};
use rustix::process::{Pid, Rlimit};

pub(crate) use rustix::process::{Resource, Signal};

/// Sets the listen backlog of the listening socket `fd`.
pub(crate) fn listen(fd: impl AsFd, backlog: i32) -> io::Result<()> {
    Ok(rustix::net::listen(fd, backlog)?)
}

/// A pipe, both ends close-on-exec: the write end is a program's stdout and stderr.
pub(crate) fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    Ok(rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?)
}

/// A pipe whose ends are both close-on-exec and non-blocking: a waker.
pub(crate) fn wake_pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let flags = rustix::pipe::PipeFlags::CLOEXEC | rustix::pipe::PipeFlags::NONBLOCK;
    Ok(rustix::pipe::pipe_with(flags)?)
}

/// Makes `fd` non-blocking.
pub(crate) fn set_nonblocking(fd: impl AsFd) -> io::Result<()> {
    Ok(rustix::io::ioctl_fionbio(fd, true)?)
}

/// A descriptor readable once process `pid` has exited; `None` where the kernel has no pidfds.
pub(crate) fn pidfd_open(pid: u32) -> Option<OwnedFd> {
    let pid = Pid::from_raw(i32::try_from(pid).ok()?)?;
    rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty()).ok()
}

/// Sends `signal` to the process group `pid` leads; an error (the group is gone) is ignored.
pub(crate) fn signal_group(pid: u32, signal: Signal) {
    if let Some(pid) = i32::try_from(pid).ok().and_then(Pid::from_raw) {
        let _ = rustix::process::kill_process_group(pid, signal);
    }
}

/// The kernel's clock ticks per second, the unit of /proc's CPU times.
pub(crate) fn clock_ticks_per_second() -> u64 {
    rustix::param::clock_ticks_per_second().max(1)
}

/// The memory page size, the unit of /proc's RSS.
pub(crate) fn page_size() -> u64 {
    rustix::param::page_size().max(1) as u64
}

/// Whether this process may chroot the programs it starts: it is root, or it switched to a
/// user keeping CAP_SYS_CHROOT for them (fcgi-serve's privileges).
pub(crate) fn may_chroot() -> bool {
    rustix::process::geteuid().is_root()
        || rustix::thread::capabilities(None)
            .is_ok_and(|sets| sets.effective.contains(rustix::thread::CapabilitySet::SYS_CHROOT))
}

/// Whether a limit of `value` can be set by this process: at most its hard limit, unless it
/// may raise that (root). The hard limit when it cannot.
pub(crate) fn check_limit(resource: Resource, value: u64) -> Result<(), u64> {
    let hard = rustix::process::getrlimit(resource).maximum;
    match hard {
        Some(hard) if value > hard && !rustix::process::geteuid().is_root() => Err(hard),
        _ => Ok(()),
    }
}

/// Writes what `conn` takes now, never waiting (the connection itself blocks, for the reads),
/// and never raising SIGPIPE.
pub(crate) fn send_now(conn: &UnixStream, bytes: &[u8]) -> io::Result<usize> {
    let flags = rustix::net::SendFlags::DONTWAIT | rustix::net::SendFlags::NOSIGNAL;
    Ok(rustix::net::send(conn, bytes, flags)?)
}

/// What [`poll_one`] found.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Ready {
    /// Input, the end of the stream, or an error to read.
    pub(crate) readable: bool,
    /// Room to write, or an error to learn by writing.
    pub(crate) writable: bool,
}

fn timespec(timeout: Duration) -> Timespec {
    // Rounded up: a wait shorter than asked for would only come round again.
    let timeout = timeout + Duration::from_millis(1);
    Timespec { tv_sec: timeout.as_secs() as i64, tv_nsec: i64::from(timeout.subsec_nanos()) }
}

/// Waits at most `timeout` for `fd` to be readable (or writable, with `want_write`).
pub(crate) fn poll_one(fd: BorrowedFd<'_>, want_write: bool, timeout: Duration) -> Ready {
    let events = PollFlags::IN | if want_write { PollFlags::OUT } else { PollFlags::empty() };
    let mut fds = [PollFd::from_borrowed_fd(fd, events)];
    if !matches!(rustix::event::poll(&mut fds, Some(&timespec(timeout))), Ok(n) if n > 0) {
        return Ready::default();
    }
    let got = fds[0].revents();
    let trouble = PollFlags::ERR | PollFlags::HUP;
    Ready {
        readable: got.intersects(PollFlags::IN | trouble),
        writable: got.intersects(PollFlags::OUT | trouble),
    }
}

/// Waits at most `timeout` for any of `fds` to be readable.
pub(crate) fn poll_readable(fds: &[BorrowedFd<'_>], timeout: Duration) {
    let mut polled: Vec<PollFd<'_>> =
        fds.iter().map(|fd| PollFd::from_borrowed_fd(*fd, PollFlags::IN)).collect();
    let _ = rustix::event::poll(&mut polled, Some(&timespec(timeout)));
}

/// What a program process is given between fork and exec.
#[derive(Debug, Default)]
pub(crate) struct ChildSetup {
    /// Resource limits, soft and hard.
    pub(crate) limits: Vec<(Resource, u64)>,
    /// The directory it is chrooted in.
    pub(crate) chroot: Option<CString>,
}

/// Has `command`'s process, before it runs the program: a process group of its own (signals
/// for it reach whatever it forks), death with this process (SIGKILL when we go: nothing of
/// ours outlives fcgi-rs), then `setup`'s limits and chroot.
pub(crate) fn prepare_child(command: &mut Command, setup: ChildSetup) {
    let parent = rustix::process::getpid();
    let child = move || -> io::Result<()> {
        rustix::process::setpgid(None, None)?;
        fcgi_cgi::child::tie_to_parent(parent)?;
        for &(resource, value) in &setup.limits {
            let limit = Rlimit { current: Some(value), maximum: Some(value) };
            rustix::process::setrlimit(resource, limit)?;
        }
        if let Some(dir) = &setup.chroot {
            rustix::process::chroot(dir.as_c_str())?;
            rustix::process::chdir(c"/")?;
        }
        Ok(())
    };
    // SAFETY: between fork and exec the closure makes only system calls (rustix's, which
    // allocate nothing for a `CStr` path) on values prepared before the fork, and allocates
    // nothing itself: its errors are bare OS error numbers.
    #[allow(unsafe_code)]
    unsafe {
        command.pre_exec(child);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pipes_polls_and_limits_behave() {
        use std::io::Write;
        let (read, write) = wake_pipe().unwrap();
        assert!(!poll_one(read.as_fd(), false, Duration::ZERO).readable, "empty");
        std::fs::File::from(write).write_all(b"x").unwrap();
        assert!(poll_one(read.as_fd(), false, Duration::from_secs(1)).readable);
        let (a, _b) = UnixStream::pair().unwrap();
        assert!(poll_one(a.as_fd(), true, Duration::ZERO).writable, "room to write");
        assert_eq!(send_now(&a, b"hi").unwrap(), 2);
        assert!(check_limit(Resource::Nofile, 1).is_ok(), "under any hard limit");
        assert!(clock_ticks_per_second() >= 1 && page_size() >= 1);
        assert!(pidfd_open(std::process::id()).is_some(), "a pidfd of our own process");
    }
}
