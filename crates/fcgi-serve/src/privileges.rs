//! `--user` and `--group`: the identity requests are served under.
//!
//! Names are resolved once at start (and again on a master's HUP), while the process has one
//! thread, into a [`Privileges`]; [`Privileges::drop_now`] then switches to it in each process
//! that serves: the single process once its sockets are bound and its log, access log and pid
//! files are open; each prefork worker right after the fork, once it has opened its log files
//! and before it builds the app. The master itself stays root: it re-executes the binary on
//! USR2 (the new master must be able to do everything the old one did, binding included), sends
//! signals to workers and to what their CGI programs leave behind, and removes the pid file and
//! the socket files it created on exit. It serves no request and runs no app code.
//!
//! The switch is the one every privilege-separating daemon makes, in the order that works:
//! `setgroups` (the user's supplementary groups, or only `--group`), `setgid`, then `setuid`,
//! each checked; then checked again from the outside: the real and effective ids are the
//! target's, and `setuid(0)` fails. glibc applies each of these calls to every thread of the
//! process (its `setxid` broadcast), so the logging thread started earlier is switched too.

use std::ffi::CString;
use std::fmt;
use std::io;

use rustix::thread::{CapabilitySet, CapabilitySets};

use crate::sys::{self, Gid, Uid};

/// The identity to switch to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Privileges {
    /// Shown in messages: the user's name, or its number when it has none.
    pub(crate) user: String,
    /// The user id.
    pub(crate) uid: Uid,
    /// The primary group id.
    pub(crate) gid: Gid,
    /// The supplementary groups: the user's (from the group database), or only `--group`.
    pub(crate) groups: Vec<Gid>,
}

/// Why `--user` or `--group` cannot be used, or the switch failed.
#[derive(Debug)]
pub(crate) enum PrivilegeError {
    /// No such user in the password database, and not a number.
    NoSuchUser(String),
    /// No such group in the group database, and not a number.
    NoSuchGroup(String),
    /// A user id without a password entry has no primary group: `--group` must name one.
    NoGroupFor(String),
    /// The process is not root, and the options name another identity than its own.
    NotRoot {
        /// What was asked for.
        wanted: String,
        /// The effective user id the process has.
        euid: Uid,
    },
    /// A call of the switch failed.
    Call {
        /// Which call.
        call: &'static str,
        /// What the system said.
        source: io::Error,
    },
    /// The calls succeeded, yet the process is not where it should be.
    NotDropped(String),
}

impl fmt::Display for PrivilegeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PrivilegeError::NoSuchUser(name) => write!(f, "--user {name}: no such user"),
            PrivilegeError::NoSuchGroup(name) => write!(f, "--group {name}: no such group"),
            PrivilegeError::NoGroupFor(user) => {
                write!(f, "--user {user} has no password entry, so no group: give --group")
            }
            PrivilegeError::NotRoot { wanted, euid } => write!(
                f,
                "--user/--group {wanted}: only root can switch to another user or group \
                 (this process runs as uid {euid})"
            ),
            PrivilegeError::Call { call, source } => {
                write!(f, "cannot drop privileges: {call} failed: {source}")
            }
            PrivilegeError::NotDropped(what) => write!(f, "privileges not dropped: {what}"),
        }
    }
}

/// What to do with `--user`/`--group`, given who the process is: a pure decision.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Plan {
    /// Root, asked for an identity: switch.
    Switch,
    /// Already the identity asked for (a non-root process given its own user): nothing to do.
    AlreadyThere,
    /// Not root, asked for another identity: refuse at start.
    Refuse,
}

/// The plan for a process with effective ids `(euid, egid)` asked to become `(uid, gid)`.
pub(crate) fn plan(euid: Uid, egid: Gid, uid: Uid, gid: Gid) -> Plan {
    if euid == 0 {
        Plan::Switch
    } else if euid == uid && egid == gid {
        Plan::AlreadyThere
    } else {
        Plan::Refuse
    }
}

/// The identity `--user` and `--group` name, `None` when neither is given or the process
/// already is it. Errors: unknown names, and a non-root process asked to become another.
pub(crate) fn resolve(
    user: Option<&str>,
    group: Option<&str>,
) -> Result<Option<Privileges>, PrivilegeError> {
    if user.is_none() && group.is_none() {
        return Ok(None);
    }
    let group_id = group.map(lookup_group).transpose()?;
    let target = match user {
        Some(user) => {
            let entry = lookup_user(user)?;
            let (uid, name, primary) = match entry {
                Some(entry) => entry,
                None => {
                    // A bare number without a password entry.
                    let uid = user.parse().map_err(|_| PrivilegeError::NoSuchUser(user.into()))?;
                    (uid, user.to_owned(), None)
                }
            };
            let gid =
                group_id.or(primary).ok_or_else(|| PrivilegeError::NoGroupFor(user.to_owned()))?;
            let groups = match (group_id, primary) {
                (Some(gid), _) => vec![gid],
                (None, Some(primary)) => group_list(&name, primary),
                (None, None) => vec![gid],
            };
            Privileges { user: name, uid, gid, groups }
        }
        None => {
            // --group alone: the same user, another group.
            let uid = rustix::process::getuid().as_raw();
            let gid = group_id.expect("a group when no user");
            Privileges { user: uid.to_string(), uid, gid, groups: vec![gid] }
        }
    };
    let (euid, egid) = (rustix::process::geteuid().as_raw(), rustix::process::getegid().as_raw());
    match plan(euid, egid, target.uid, target.gid) {
        Plan::Switch => Ok(Some(target)),
        Plan::AlreadyThere => Ok(None),
        Plan::Refuse => {
            Err(PrivilegeError::NotRoot { wanted: format!("{}:{}", target.user, target.gid), euid })
        }
    }
}

impl Privileges {
    /// Switches the whole process to this identity, for good, and checks that it did.
    ///
    /// With `keep_chroot` (an app that starts its programs in `--chroot`), the calling thread,
    /// and so every thread it starts from then on, keeps one capability: CAP_SYS_CHROOT, which
    /// only lets it chroot the programs it starts. A program, run as this user, loses it at
    /// its exec (no file capabilities, no ambient set), and no other capability is kept:
    /// `setuid(0)` still fails. PHP-FPM keeps its master root for the same chroot.
    pub(crate) fn drop_now(&self, keep_chroot: bool) -> Result<(), PrivilegeError> {
        let keep_chroot = keep_chroot && self.uid != 0;
        let call = |(call, source): sys::CallError| PrivilegeError::Call { call, source };
        sys::set_groups(&self.groups, self.gid).map_err(call)?;
        if keep_chroot {
            // This thread's permitted set survives the setuid below (its effective set does
            // not); the other threads lose both.
            keep_capabilities(true)?;
        }
        // After this the process cannot come back.
        sys::set_user(self.uid).map_err(call)?;
        if keep_chroot {
            let chroot = CapabilitySet::SYS_CHROOT;
            let sets = CapabilitySets {
                effective: chroot,
                permitted: chroot,
                inheritable: CapabilitySet::empty(),
            };
            rustix::thread::set_capabilities(None, sets)
                .map_err(|e| PrivilegeError::Call { call: "capset", source: e.into() })?;
            keep_capabilities(false)?;
        }
        self.check(keep_chroot)
    }

    /// Whether the process now is this identity and cannot become root again, with no
    /// capability but CAP_SYS_CHROOT when it was kept.
    fn check(&self, kept_chroot: bool) -> Result<(), PrivilegeError> {
        use rustix::process::{getegid, geteuid, getgid, getuid};
        let (uid, euid) = (getuid().as_raw(), geteuid().as_raw());
        let (gid, egid) = (getgid().as_raw(), getegid().as_raw());
        if (uid, euid) != (self.uid, self.uid) || (gid, egid) != (self.gid, self.gid) {
            return Err(PrivilegeError::NotDropped(format!(
                "uid {uid}/{euid} and gid {gid}/{egid}, not {}/{}",
                self.uid, self.gid
            )));
        }
        if self.uid != 0 && sys::may_become_root() {
            return Err(PrivilegeError::NotDropped("setuid(0) still succeeds".into()));
        }
        if self.uid != 0 {
            let want = if kept_chroot { CapabilitySet::SYS_CHROOT } else { CapabilitySet::empty() };
            let sets = rustix::thread::capabilities(None)
                .map_err(|e| PrivilegeError::Call { call: "capget", source: e.into() })?;
            if sets.effective != want || sets.permitted != want {
                return Err(PrivilegeError::NotDropped(format!(
                    "capabilities {:?} (effective) and {:?} (permitted) left, not {want:?}",
                    sets.effective, sets.permitted
                )));
            }
        }
        Ok(())
    }
}

/// `PR_SET_KEEPCAPS` for the calling thread: whether its permitted capabilities survive a
/// switch away from root.
fn keep_capabilities(keep: bool) -> Result<(), PrivilegeError> {
    rustix::thread::set_keep_capabilities(keep)
        .map_err(|e| PrivilegeError::Call { call: "prctl(PR_SET_KEEPCAPS)", source: e.into() })
}

/// Whether the names `--user` and `--group` give exist, as far as can be told without
/// switching: for `--check` and a reload, which would otherwise pass a file whose start fails.
pub(crate) fn check_names(user: Option<&str>, group: Option<&str>) -> Result<(), PrivilegeError> {
    let group_id = group.map(lookup_group).transpose()?;
    if let Some(user) = user {
        if lookup_user(user)?.is_none() && group_id.is_none() {
            return Err(PrivilegeError::NoGroupFor(user.to_owned()));
        }
    }
    Ok(())
}

/// A user by name, or by number when it has a password entry: its id, name and primary group.
fn lookup_user(user: &str) -> Result<Option<(Uid, String, Option<Gid>)>, PrivilegeError> {
    let c_name = CString::new(user).map_err(|_| PrivilegeError::NoSuchUser(user.into()))?;
    let entry = match sys::user_by_name(&c_name) {
        Some(entry) => Some(entry),
        None => match user.parse::<Uid>() {
            Ok(uid) => sys::user_by_id(uid),
            Err(_) => return Err(PrivilegeError::NoSuchUser(user.into())),
        },
    };
    Ok(entry.map(|e| (e.uid, e.name, Some(e.gid))))
}

/// A group by name or number.
fn lookup_group(group: &str) -> Result<Gid, PrivilegeError> {
    let c_name = CString::new(group).map_err(|_| PrivilegeError::NoSuchGroup(group.into()))?;
    if let Some(gid) = sys::group_by_name(&c_name) {
        return Ok(gid);
    }
    group.parse().map_err(|_| PrivilegeError::NoSuchGroup(group.into()))
}

/// The user's groups as initgroups(3) would set them: `primary` and every group listing the
/// user. Falls back to `primary` alone should the database not answer.
fn group_list(user: &str, primary: Gid) -> Vec<Gid> {
    CString::new(user)
        .ok()
        .and_then(|name| sys::group_list(&name, primary))
        .unwrap_or_else(|| vec![primary])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked_without_switching() {
        assert!(check_names(Some("root"), None).is_ok());
        assert!(check_names(Some("0"), Some("0")).is_ok());
        assert!(check_names(None, None).is_ok());
        let no_user = check_names(Some("no-such-user-here"), None).unwrap_err().to_string();
        assert!(no_user.contains("--user no-such-user-here"), "{no_user}");
        let no_group = check_names(None, Some("no-such-group-here")).unwrap_err().to_string();
        assert!(no_group.contains("--group no-such-group-here"), "{no_group}");
        assert!(check_names(Some("4000000"), None).is_err(), "a bare number needs --group");
    }

    #[test]
    fn the_plan_for_each_identity() {
        let table = [
            // (euid, egid, uid, gid) → plan
            ((0, 0, 65534, 65534), Plan::Switch),
            ((0, 0, 0, 0), Plan::Switch),
            ((1000, 1000, 1000, 1000), Plan::AlreadyThere),
            ((1000, 1000, 65534, 65534), Plan::Refuse),
            ((1000, 1000, 1000, 65534), Plan::Refuse),
        ];
        for ((euid, egid, uid, gid), expected) in table {
            assert_eq!(plan(euid, egid, uid, gid), expected, "{euid}:{egid} → {uid}:{gid}");
        }
    }

    #[test]
    fn unknown_names_are_errors() {
        assert!(matches!(
            resolve(Some("no-such-user-fcgi-rs"), None),
            Err(PrivilegeError::NoSuchUser(_))
        ));
        assert!(matches!(
            resolve(None, Some("no-such-group-fcgi-rs")),
            Err(PrivilegeError::NoSuchGroup(_))
        ));
        assert_eq!(resolve(None, None).ok(), Some(None));
    }

    #[test]
    fn root_resolves_to_root_by_name_and_number() {
        let by_name = lookup_user("root").expect("root exists").expect("an entry");
        assert_eq!(by_name.0, 0);
        let by_number = lookup_user("0").expect("uid 0").expect("an entry");
        assert_eq!(by_number.1, "root");
    }
}
