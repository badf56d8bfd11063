//! The programs a dead worker leaves behind: the master is their subreaper, so they come to it
//! rather than to init, and it finds them in /proc and kills their process groups.
//!
//! A CGI program leads a process group of its own, and what it starts stays in that group; the
//! worker kills the group when the request ends, but a worker killed as hung (or crashed, or
//! stopped past its graceful timeout) can no longer do so. With `PR_SET_CHILD_SUBREAPER` the
//! kernel re-parents a dead process's children to the nearest subreaper ancestor, here the
//! master, instead of to init: after each worker exit the master takes every child of its own
//! that is not a worker (nor a new master it started) for such an orphan.

/// A child process, from its /proc entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct ChildProc {
    pub(super) pid: i32,
    /// Its process group.
    pub(super) pgid: i32,
}

/// The parent and the process group in the text of `/proc/PID/stat`, `None` if it is not one.
/// The command name (field 2) is in parentheses and may hold spaces or parentheses itself, so
/// the fields are counted from the last `)`: state, ppid, pgrp.
fn parse_stat(stat: &str) -> Option<(i32, i32)> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let _state = fields.next()?;
    let ppid = fields.next()?.parse().ok()?;
    let pgrp = fields.next()?.parse().ok()?;
    Some((ppid, pgrp))
}

/// The children of `parent`, zombies included (they are reaped anyway), from /proc.
pub(super) fn children_of(parent: u32) -> Vec<ChildProc> {
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    let parent = i32::try_from(parent).unwrap_or(-1);
    entries
        .filter_map(Result::ok)
        .filter_map(|entry| entry.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            let (ppid, pgid) = parse_stat(&stat)?;
            (ppid == parent).then_some(ChildProc { pid, pgid })
        })
        .collect()
}

/// What to send SIGKILL to, for `kill(2)`: each orphan's process group (a negative id), or the
/// orphan alone when it is in `own_group` (the master's, which also holds the workers), never
/// a process in `spared` (the workers, new masters) nor a group one of them leads.
pub(super) fn targets(children: &[ChildProc], spared: &[i32], own_group: i32) -> Vec<i32> {
    let mut targets: Vec<i32> = children
        .iter()
        .filter(|c| !spared.contains(&c.pid))
        .map(|c| {
            if c.pgid == own_group || c.pgid <= 1 || spared.contains(&c.pgid) {
                c.pid
            } else {
                -c.pgid
            }
        })
        .collect();
    targets.sort_unstable();
    targets.dedup();
    targets
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_lines_are_read_past_the_command_name() {
        let cases: &[(&str, Option<(i32, i32)>)] = &[
            ("1234 (sh) S 100 1234 1234 0 -1 4194304", Some((100, 1234))),
            ("77 (a b) c)) R 5 9 9 0", Some((5, 9))),
            ("88 (zombie) Z 100 88 1 0", Some((100, 88))),
            ("99 (cut", None),
            ("99 (x) S", None),
            ("", None),
        ];
        for (stat, expected) in cases {
            assert_eq!(parse_stat(stat), *expected, "{stat:?}");
        }
    }

    #[test]
    fn orphans_lose_their_group_workers_and_the_master_group_are_spared() {
        let own = 100;
        let child = |pid, pgid| ChildProc { pid, pgid };
        let cases: &[(&[ChildProc], &[i32], &[i32])] = &[
            // No orphan: only workers, in the master's group.
            (&[child(101, own), child(102, own)], &[101, 102], &[]),
            // A CGI program leading its group: the group.
            (&[child(101, own), child(200, 200)], &[101], &[-200]),
            // Two members of one group re-parented: the group once.
            (&[child(200, 200), child(201, 200)], &[], &[-200]),
            // An orphan in the master's group: itself only.
            (&[child(300, own)], &[], &[300]),
            // A new master (spared), and an orphan in a group a spared process leads.
            (&[child(400, 400), child(401, 400)], &[400], &[401]),
        ];
        for (children, spared, expected) in cases {
            assert_eq!(targets(children, spared, own), *expected, "{children:?} {spared:?}");
        }
    }

    #[test]
    fn this_process_can_list_its_children() {
        let mut sleeper = std::process::Command::new("sleep").arg("5").spawn().expect("sleep");
        let pid = i32::try_from(sleeper.id()).expect("pid");
        let found = children_of(std::process::id());
        let _ = sleeper.kill();
        let _ = sleeper.wait();
        assert!(found.iter().any(|c| c.pid == pid), "{found:?}");
    }
}
