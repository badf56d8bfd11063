//! Process titles: what `ps`, `top` and `pgrep` show for the master, each worker and a single
//! process, as PostgreSQL, nginx, PHP-FPM and gunicorn do.
//!
//! Two places hold a process's name on Linux, and both are set:
//!
//! - the thread name (`/proc/PID/comm`, `ps -o comm`, `top`), at most 15 bytes, with
//!   `prctl(PR_SET_NAME)`: [`comm`] gives the short form (`fcgi worker 3`);
//! - the command line (`/proc/PID/cmdline`, `ps -o args`, `pgrep -f`), which the kernel reads
//!   from the memory where the argument strings were placed at exec: the title is written over
//!   them and the rest of that memory is filled with NULs.
//!
//! Only the existing argument strings' memory is used, never the environment's after it (which
//! PostgreSQL and nginx move away to make room): simpler, and `fcgi serve --app X --listen ...`
//! is long enough for every title. A longer title is cut to fit.
//!
//! Before `main`, the argument strings are copied elsewhere and `argv` is pointed at the
//! copies: Rust's `std::env::args` reads `argv` whenever it is called (the config file's reload
//! on HUP and the binary upgrade on USR2 read it), and so keeps seeing the real arguments after
//! the originals were overwritten.

use std::sync::Mutex;

/// Which process a title is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Role<'a> {
    /// The one process serving without a master.
    Serve {
        /// The app's name.
        app: &'a str,
    },
    /// The prefork master.
    Master {
        /// The app's name.
        app: &'a str,
        /// Its workers, as configured: `4 workers`, `2-8 workers`.
        workers: &'a str,
    },
    /// The master of a config file's pools.
    Pools {
        /// The pools' names, `www, git`.
        pools: &'a str,
    },
    /// A prefork worker.
    Worker {
        /// The worker's number (the `worker` field of its log lines).
        id: u64,
        /// The app's name.
        app: &'a str,
    },
}

/// The full title (`fcgi: worker 3 [hello]`) of `program`'s process; an app without a name
/// of its own has none in brackets (`myapp: worker 3`).
pub(crate) fn title(program: &str, role: Role<'_>) -> String {
    let named = |app: &str| if app.is_empty() { String::new() } else { format!(" [{app}]") };
    match role {
        Role::Serve { app } => format!("{program}: serve{}", named(app)),
        Role::Master { app: "", workers } => {
            format!("{program}: master [{workers}]")
        }
        Role::Master { app, workers } => format!("{program}: master [{app}, {workers}]"),
        Role::Pools { pools } => format!("{program}: pools [{pools}]"),
        Role::Worker { id, app } => format!("{program}: worker {id}{}", named(app)),
    }
}

/// The app's name as a title shows it: with its pool's first (`www: hello`) for a pool of a
/// config file, as PHP-FPM's titles name the pool.
pub(crate) fn app_in_pool(app: &str, pool: Option<&str>) -> String {
    match (pool, app) {
        (Some(pool), "") => pool.to_owned(),
        (Some(pool), app) => format!("{pool}: {app}"),
        (None, app) => app.to_owned(),
    }
}

/// Longest thread name the kernel keeps (`TASK_COMM_LEN` less the NUL).
pub(crate) const COMM_MAX: usize = 15;

/// The short name for `/proc/PID/comm` (`fcgi worker 3`), at most [`COMM_MAX`] bytes.
pub(crate) fn comm(program: &str, role: Role<'_>) -> String {
    let mut name = match role {
        Role::Serve { .. } => format!("{program} serve"),
        Role::Master { .. } => format!("{program} master"),
        Role::Pools { .. } => format!("{program} pools"),
        Role::Worker { id, .. } => format!("{program} worker {id}"),
    };
    let mut end = name.len().min(COMM_MAX);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    name.truncate(end);
    name
}

/// What to write over an argument area of `len` bytes: the title cut to leave one NUL, then
/// NULs to the end (so that the kernel shows the title and nothing of the old arguments).
pub(crate) fn area_bytes(title: &str, len: usize) -> Vec<u8> {
    let mut bytes = vec![0; len];
    let take = title.len().min(len.saturating_sub(1));
    bytes[..take].copy_from_slice(&title.as_bytes()[..take]);
    bytes
}

/// Sets this process's title and its main thread's name. Call it from the main thread (the
/// thread name is per thread; `comm` shows the main thread's).
pub(crate) fn set(program: &str, role: Role<'_>) {
    if let Ok(name) = std::ffi::CString::new(comm(program, role)) {
        // The kernel keeps 15 bytes, as comm() does.
        let _ = rustix::thread::set_name(&name);
    }
    argv::write(&title(program, role));
}

/// Serialises writers of the argument area.
static WRITING: Mutex<()> = Mutex::new(());

#[cfg(all(target_os = "linux", target_env = "gnu"))]
mod argv {
    use std::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};

    use libc::{c_char, c_int};

    /// Start of the argument strings' memory, once they were moved (null before, or if they
    /// could not be).
    static AREA: AtomicPtr<c_char> = AtomicPtr::new(std::ptr::null_mut());
    /// Its length in bytes.
    static AREA_LEN: AtomicUsize = AtomicUsize::new(0);

    /// glibc calls the functions of an executable's `.init_array` with `main`'s arguments,
    /// before `main` (std captures `argv` the same way).
    #[used]
    #[link_section = ".init_array"]
    static MOVE_ARGS: extern "C" fn(c_int, *mut *mut c_char, *mut *mut c_char) = move_args;

    /// Copies each argument string to the heap and points `argv` at the copy, leaving the
    /// original contiguous memory free for the title.
    extern "C" fn move_args(argc: c_int, argv: *mut *mut c_char, _env: *mut *mut c_char) {
        let Ok(argc) = usize::try_from(argc) else { return };
        if argv.is_null() || argc == 0 {
            return;
        }
        // SAFETY: glibc passes the process's argv: `argc` valid pointers to NUL-terminated
        // strings, in writable memory; nothing else runs yet (before main, one thread). A copy
        // is leaked on purpose: argv must stay valid for the whole process.
        unsafe {
            let start = *argv;
            let mut end = start;
            for i in 0..argc {
                let arg = *argv.add(i);
                // The area is where the kernel put the strings, back to back; stop at the
                // first that is elsewhere (someone moved it already).
                if arg != end {
                    break;
                }
                let copy = libc::strdup(arg);
                if copy.is_null() {
                    break;
                }
                end = arg.add(libc::strlen(arg) + 1);
                *argv.add(i) = copy;
            }
            let len = usize::try_from(end.offset_from(start)).unwrap_or(0);
            AREA_LEN.store(len, Ordering::Release);
            AREA.store(start, Ordering::Release);
        }
    }

    /// Writes `title` over the area.
    pub(super) fn write(title: &str) {
        let _writing = super::WRITING.lock().unwrap_or_else(|p| p.into_inner());
        let start = AREA.load(Ordering::Acquire);
        let len = AREA_LEN.load(Ordering::Acquire);
        if start.is_null() || len == 0 {
            return;
        }
        let bytes = super::area_bytes(title, len);
        // SAFETY: [start, start + len) is the original argument memory, writable, which
        // nothing reads any more (argv points at the copies), and the lock keeps writers apart.
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), start.cast::<u8>(), len) };
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
mod argv {
    /// Elsewhere only the thread name is set.
    pub(super) fn write(_title: &str) {
        let _writing = super::WRITING.lock();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn titles_and_names_by_role() {
        let table = [
            (Role::Serve { app: "hello" }, "fcgi: serve [hello]", "fcgi serve"),
            (
                Role::Master { app: "cgi", workers: "4 workers" },
                "fcgi: master [cgi, 4 workers]",
                "fcgi master",
            ),
            (Role::Worker { id: 3, app: "echo" }, "fcgi: worker 3 [echo]", "fcgi worker 3"),
            (Role::Pools { pools: "www, git" }, "fcgi: pools [www, git]", "fcgi pools"),
            (
                Role::Worker { id: 123_456, app: "echo" },
                "fcgi: worker 123456 [echo]",
                "fcgi worker 123",
            ),
        ];
        for (role, full, short) in table {
            assert_eq!(title("fcgi", role), full);
            assert_eq!(comm("fcgi", role), short);
            assert!(comm("fcgi", role).len() <= COMM_MAX);
        }
        let unnamed = [
            (Role::Serve { app: "" }, "myapp: serve", "myapp serve"),
            (
                Role::Master { app: "", workers: "4 workers" },
                "myapp: master [4 workers]",
                "myapp master",
            ),
            (Role::Worker { id: 2, app: "" }, "myapp: worker 2", "myapp worker 2"),
            (Role::Worker { id: 2, app: "" }, "a-long-app-name: worker 2", "a-long-app-name"),
        ];
        for (i, (role, full, short)) in unnamed.into_iter().enumerate() {
            let program = if i == 3 { "a-long-app-name" } else { "myapp" };
            assert_eq!(title(program, role), full);
            assert_eq!(comm(program, role), short);
        }
    }

    #[test]
    fn the_area_holds_the_title_then_nuls() {
        assert_eq!(area_bytes("abc", 6), b"abc\0\0\0");
        assert_eq!(area_bytes("abcdef", 4), b"abc\0", "cut, one NUL kept");
        assert_eq!(area_bytes("abc", 0), b"");
    }

    #[test]
    fn std_still_sees_the_arguments_after_a_title() {
        let before: Vec<_> = std::env::args_os().collect();
        argv::write("fcgi: test title");
        assert_eq!(std::env::args_os().collect::<Vec<_>>(), before);
    }
}
