//! The system calls fcgi-serve makes through libc, in one place, each with its SAFETY note:
//! what rustix offers no safe form of. The process-wide identity switch (glibc's `setgroups`,
//! `setgid` and `setuid` apply to every thread; a raw system call would switch one), the
//! name service look-ups (NSS: files, LDAP, systemd's), and a pool master's setup between fork
//! and exec. The process title's memory is `title.rs`'s own, for the same reason.

use std::ffi::CStr;
use std::io;
use std::os::fd::RawFd;
use std::os::unix::process::CommandExt;
use std::process::Command;

/// A user id, as the kernel and NSS give it.
pub(crate) type Uid = libc::uid_t;
/// A group id, as the kernel and NSS give it.
pub(crate) type Gid = libc::gid_t;

/// A user's password entry: what `--user` needs of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct UserEntry {
    pub(crate) uid: libc::uid_t,
    pub(crate) name: String,
    pub(crate) gid: libc::gid_t,
}

/// Reads the record `getpwnam` or `getpwuid` returned.
///
/// # Safety
///
/// `entry` is null or a record those calls just returned, not yet overwritten.
unsafe fn user_entry(entry: *const libc::passwd) -> Option<UserEntry> {
    if entry.is_null() {
        return None;
    }
    // SAFETY: a record from the calls above, read at once (see the caller's note).
    let name = unsafe { CStr::from_ptr((*entry).pw_name) }.to_string_lossy().into_owned();
    // SAFETY: as above.
    Some(unsafe { UserEntry { uid: (*entry).pw_uid, name, gid: (*entry).pw_gid } })
}

/// The user named `name`, from the system's databases.
pub(crate) fn user_by_name(name: &CStr) -> Option<UserEntry> {
    // SAFETY: getpwnam returns a record in static storage, read at once, while the process has
    // one thread (at start, or in the single-threaded master on HUP).
    unsafe { user_entry(libc::getpwnam(name.as_ptr())) }
}

/// The user with id `uid`, if it has a password entry.
pub(crate) fn user_by_id(uid: libc::uid_t) -> Option<UserEntry> {
    // SAFETY: as in user_by_name.
    unsafe { user_entry(libc::getpwuid(uid)) }
}

/// The id of the group named `name`.
pub(crate) fn group_by_name(name: &CStr) -> Option<libc::gid_t> {
    // SAFETY: as in user_by_name; a non-null record is read at once.
    unsafe {
        let entry = libc::getgrnam(name.as_ptr());
        (!entry.is_null()).then(|| (*entry).gr_gid)
    }
}

/// Most supplementary groups asked for at first; getgrouplist says when more are needed.
const GROUPS_FIRST_TRY: usize = 64;

/// The user's groups as initgroups(3) would set them: `primary` and every group listing the
/// user; `None` should the database not answer.
pub(crate) fn group_list(user: &CStr, primary: libc::gid_t) -> Option<Vec<libc::gid_t>> {
    let mut groups = vec![0; GROUPS_FIRST_TRY];
    for _ in 0..2 {
        let mut count = libc::c_int::try_from(groups.len()).unwrap_or(libc::c_int::MAX);
        // SAFETY: `groups` has room for `count` ids; getgrouplist writes at most that many and
        // stores the number it needs in `count` when they do not fit.
        let rc =
            unsafe { libc::getgrouplist(user.as_ptr(), primary, groups.as_mut_ptr(), &mut count) };
        let count = usize::try_from(count).unwrap_or(0);
        if rc >= 0 {
            groups.truncate(count);
            return Some(groups);
        }
        groups.resize(count.max(groups.len() * 2), 0);
    }
    None
}

/// Which identity call failed, and why.
pub(crate) type CallError = (&'static str, io::Error);

fn checked(call: &'static str, rc: libc::c_int) -> Result<(), CallError> {
    if rc == 0 {
        Ok(())
    } else {
        Err((call, io::Error::last_os_error()))
    }
}

/// Sets the supplementary groups and the group of the whole process (every thread).
pub(crate) fn set_groups(groups: &[libc::gid_t], gid: libc::gid_t) -> Result<(), CallError> {
    // SAFETY: the pointer and length describe `groups`, alive for the call.
    checked("setgroups", unsafe { libc::setgroups(groups.len(), groups.as_ptr()) })?;
    // SAFETY: a plain system call on an id; glibc applies it to every thread.
    checked("setgid", unsafe { libc::setgid(gid) })
}

/// Sets the user of the whole process (every thread): for good, from root.
pub(crate) fn set_user(uid: libc::uid_t) -> Result<(), CallError> {
    // SAFETY: as in set_groups.
    checked("setuid", unsafe { libc::setuid(uid) })
}

/// Whether the process can make itself root again: `setuid(0)` succeeds (it then is).
pub(crate) fn may_become_root() -> bool {
    // SAFETY: as in set_groups; after a switch away from root it fails with EPERM.
    unsafe { libc::setuid(0) == 0 }
}

/// Has the pool master `command` starts keep `inherited` open across its exec (close-on-exec
/// cleared in the child alone: its siblings do not get them), get `SIGTERM` when this process
/// dies, and not start at all if this process is gone already.
pub(crate) fn prepare_pool_master(command: &mut Command, inherited: Vec<RawFd>) {
    let master = rustix::process::getpid();
    let child = move || -> io::Result<()> {
        for &fd in &inherited {
            // SAFETY: F_SETFD on a descriptor number; one that is not open fails (EBADF).
            if unsafe { libc::fcntl(fd, libc::F_SETFD, 0) } != 0 {
                return Err(io::Error::last_os_error());
            }
        }
        let term = rustix::process::Signal::TERM;
        rustix::process::set_parent_process_death_signal(Some(term))?;
        // The master may have died before the call above: then nothing would ever stop this.
        if rustix::process::getppid() != Some(master) {
            return Err(rustix::io::Errno::SRCH.into());
        }
        Ok(())
    };
    // SAFETY: between fork and exec the closure makes only system calls (fcntl, prctl,
    // getppid) on memory allocated before the fork, and allocates nothing itself: its errors
    // are bare OS error numbers.
    unsafe {
        command.pre_exec(child);
    }
}
