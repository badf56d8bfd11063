//! What a reload (HUP) does to each pool: the pools as they run and as the file now has them,
//! compared option by option. Pure, and tested as a table.

use crate::config_file::PoolOptions;

/// The options a pool's master takes only when it starts: its listening sockets. A pool whose
/// sockets change is replaced by a new master; any other change is a reload of the running
/// one, which re-reads its section itself (its workers, limits, user, logs, app).
const AT_START: &[&str] = &["listen", "backlog", "socket-mode", "socket-owner"];

/// What a reload does to one pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Change {
    /// Its options are as they were: it keeps running, untouched (the same processes).
    Keep,
    /// Options changed that its master re-reads: it is sent HUP, and replaces its workers
    /// gracefully.
    Reload,
    /// Its sockets changed: a new master starts and, once it serves, the old one drains and
    /// stops. When the two share an address (a socket's mode changed, not its path), the new
    /// one can bind only after the old one has let go of it, so the old one stops first
    /// (`after_old`), and that socket refuses connections until the new one listens.
    Replace {
        /// The new master starts only once the old one has exited.
        after_old: bool,
    },
    /// New in the file: it starts.
    Start,
    /// Gone from the file: it drains and stops, and its socket files go with it.
    Stop,
}

/// What to do to each pool, for the pools `running` and those the file now holds (`wanted`):
/// the wanted pools in the file's order, then the removed ones in the order they ran.
pub(crate) fn plan(running: &[PoolOptions], wanted: &[PoolOptions]) -> Vec<(String, Change)> {
    let mut changes = Vec::with_capacity(running.len() + wanted.len());
    for (name, options) in wanted {
        let change = match running.iter().find(|(known, _)| known == name) {
            None => Change::Start,
            Some((_, old)) if old == options => Change::Keep,
            Some((_, old)) if at_start(old) != at_start(options) => {
                let listens = |all: &[(String, Option<String>)]| -> Vec<Option<String>> {
                    all.iter().filter(|(n, _)| n == "listen").map(|(_, v)| v.clone()).collect()
                };
                let (before, after) = (listens(old), listens(options));
                Change::Replace { after_old: after.iter().any(|addr| before.contains(addr)) }
            }
            Some(_) => Change::Reload,
        };
        changes.push((name.clone(), change));
    }
    for (name, _) in running {
        if !wanted.iter().any(|(known, _)| known == name) {
            changes.push((name.clone(), Change::Stop));
        }
    }
    changes
}

/// The options among `options` that only a new master takes.
fn at_start(options: &[(String, Option<String>)]) -> Vec<&(String, Option<String>)> {
    options.iter().filter(|(name, _)| AT_START.contains(&name.as_str())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A pool from `name = value` pairs.
    fn pool(name: &str, options: &[(&str, &str)]) -> PoolOptions {
        let options = options.iter().map(|(n, v)| (n.to_string(), Some(v.to_string()))).collect();
        (name.to_owned(), options)
    }

    #[test]
    fn each_pool_gets_the_change_its_options_call_for() {
        let www = pool("www", &[("app", "hello"), ("listen", "unix:/run/www.sock")]);
        let git = pool("git", &[("app", "cgi"), ("listen", "unix:/run/git.sock")]);
        let www_4 =
            pool("www", &[("app", "hello"), ("listen", "unix:/run/www.sock"), ("workers", "4")]);
        let www_moved = pool("www", &[("app", "hello"), ("listen", "unix:/run/www2.sock")]);
        let www_mode = pool(
            "www",
            &[("app", "hello"), ("listen", "unix:/run/www.sock"), ("socket-mode", "0600")],
        );
        let www_two = pool(
            "www",
            &[("app", "hello"), ("listen", "unix:/run/www.sock"), ("listen", "127.0.0.1:9000")],
        );
        use Change::*;
        let (moved, rebound) = (Replace { after_old: false }, Replace { after_old: true });
        // Each row: the case, the pools running, the file's pools, what the reload does.
        fn row(
            case: &str,
            running: &[&PoolOptions],
            wanted: &[&PoolOptions],
            expected: &[(&str, Change)],
        ) {
            let running: Vec<PoolOptions> = running.iter().map(|&p| p.clone()).collect();
            let wanted: Vec<PoolOptions> = wanted.iter().map(|&p| p.clone()).collect();
            let expected: Vec<(String, Change)> =
                expected.iter().map(|&(name, change)| (name.to_owned(), change)).collect();
            assert_eq!(plan(&running, &wanted), expected, "{case}");
        }
        let (w, g) = (&www, &git);
        row("nothing changed", &[w, g], &[w, g], &[("www", Keep), ("git", Keep)]);
        row("a pool's workers", &[w, g], &[&www_4, g], &[("www", Reload), ("git", Keep)]);
        row("a new socket path", &[w], &[&www_moved], &[("www", moved)]);
        row("the same socket's mode", &[w], &[&www_mode], &[("www", rebound)]);
        row("a socket more", &[w], &[&www_two], &[("www", rebound)]);
        row("a pool added", &[w], &[g, w], &[("git", Start), ("www", Keep)]);
        row("a pool removed", &[w, g], &[g], &[("git", Keep), ("www", Stop)]);
        row("every pool new", &[], &[w, g], &[("www", Start), ("git", Start)]);
        row("pools reordered", &[w, g], &[g, w], &[("git", Keep), ("www", Keep)]);
    }
}
