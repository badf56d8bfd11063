//! The pid file: written whole or not at all, removed only by the process it names.
//!
//! [`Master::pid_file`](crate::Master::pid_file) uses these; a single-process server can too:
//!
//! ```no_run
//! use std::path::Path;
//!
//! let path = Path::new("/run/fcgi-rs/fcgi.pid");
//! fcgi_prefork::pidfile::write(path)?;
//! // ... serve ...
//! fcgi_prefork::pidfile::remove_if_ours(path);
//! # Ok::<(), std::io::Error>(())
//! ```

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Writes our pid to `path` through a temporary file and a rename, so a reader never sees it
/// empty or half-written.
pub fn write(path: &Path) -> io::Result<()> {
    let pid = std::process::id();
    let temp = sibling(path, &format!(".tmp.{pid}"));
    let result = (|| {
        let mut file = fs::File::create(&temp)?;
        writeln!(file, "{pid}")?;
        file.sync_all()?;
        fs::rename(&temp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&temp);
    }
    result
}

/// The pid in the file at `path`, if it holds one.
pub fn read(path: &Path) -> Option<u32> {
    fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Removes `path` if it still names this process (another master may have written it since).
pub fn remove_if_ours(path: &Path) {
    if read(path) == Some(std::process::id()) {
        let _ = fs::remove_file(path);
    }
}

/// `PIDFILE.oldbin`, where an upgrading master moves its pid file (as nginx does).
pub fn oldbin(path: &Path) -> PathBuf {
    sibling(path, ".oldbin")
}

fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_read_and_removed_only_when_ours() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = dir.path().join("fcgi.pid");
        write(&path).expect("pid file written");
        assert_eq!(read(&path), Some(std::process::id()));
        assert_eq!(fs::read_dir(dir.path()).expect("listing").count(), 1, "no temporary left");
        fs::write(&path, "1\n").expect("another pid");
        remove_if_ours(&path);
        assert!(path.exists(), "another process's pid file is left alone");
        write(&path).expect("pid file written");
        remove_if_ours(&path);
        assert!(!path.exists());
        assert_eq!(oldbin(&path), dir.path().join("fcgi.pid.oldbin"));
    }
}
