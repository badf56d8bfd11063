//! Which program a request runs: the path from its meta-variables, resolved (symlinks followed)
//! and checked (under the root, a regular file, executable). Every refusal is an error that
//! says why, and maps to 403 or 404.

use std::ffi::OsStr;
use std::fmt;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::env::Vars;

/// A program that may run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Script {
    /// The resolved path: absolute, no symlink, no `..`. This is what is executed, so that what
    /// was checked is what runs (short of the file being replaced in between).
    pub path: PathBuf,
    /// The directory the program runs in: the one that holds it (RFC 3875 section 9.2 suggests
    /// it, and fcgiwrap does the same).
    pub dir: PathBuf,
    /// The name logs give it: `SCRIPT_NAME` when the web server sent one, else the path.
    pub name: String,
}

/// Why a request's program cannot run.
#[derive(Debug)]
pub enum ResolveError {
    /// Neither `SCRIPT_FILENAME` nor `SCRIPT_NAME` (with `DOCUMENT_ROOT` or a root) was sent:
    /// the web server's configuration is incomplete. 404.
    NoScript,
    /// The path is relative: there is no directory it could be relative to. 404.
    Relative(PathBuf),
    /// Nothing is there (or a component of the path is not a directory). 404.
    NotFound(PathBuf, io::Error),
    /// The path, or a directory on the way to it, may not be read. 403.
    Denied(PathBuf, io::Error),
    /// The resolved path lies outside the root. 403.
    OutsideRoot {
        /// The path asked for.
        asked: PathBuf,
        /// Where it led, symlinks followed.
        resolved: PathBuf,
    },
    /// Not a regular file (a directory, a device, a socket, ...). 403.
    NotAFile(PathBuf),
    /// A regular file without any execute permission. 403.
    NotExecutable(PathBuf),
}

impl ResolveError {
    /// The HTTP status the request gets.
    pub fn status(&self) -> u16 {
        match self {
            ResolveError::NoScript | ResolveError::Relative(_) | ResolveError::NotFound(..) => 404,
            ResolveError::Denied(..)
            | ResolveError::OutsideRoot { .. }
            | ResolveError::NotAFile(_)
            | ResolveError::NotExecutable(_) => 403,
        }
    }
}

impl fmt::Display for ResolveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ResolveError::NoScript => f.write_str(
                "no script: the web server sent neither SCRIPT_FILENAME nor SCRIPT_NAME with \
                 DOCUMENT_ROOT (nginx: fastcgi_param SCRIPT_FILENAME ...)",
            ),
            ResolveError::Relative(path) => {
                write!(f, "script path {} is relative", path.display())
            }
            ResolveError::NotFound(path, e) => write!(f, "no script at {}: {e}", path.display()),
            ResolveError::Denied(path, e) => write!(f, "script {}: {e}", path.display()),
            ResolveError::OutsideRoot { asked, resolved } => write!(
                f,
                "script {} resolves to {}, outside the CGI root",
                asked.display(),
                resolved.display()
            ),
            ResolveError::NotAFile(path) => {
                write!(f, "script {} is not a regular file", path.display())
            }
            ResolveError::NotExecutable(path) => {
                write!(f, "script {} is not executable", path.display())
            }
        }
    }
}

impl std::error::Error for ResolveError {}

/// The path a request asks for, before any check: `SCRIPT_FILENAME`; else `SCRIPT_NAME` under
/// `DOCUMENT_ROOT`, or under `root` when there is no `DOCUMENT_ROOT`.
pub fn requested_path(vars: &Vars, root: Option<&Path>) -> Result<PathBuf, ResolveError> {
    if let Some(file) = vars.get_nonempty("SCRIPT_FILENAME") {
        return Ok(PathBuf::from(OsStr::from_bytes(file)));
    }
    let name = vars.get_nonempty("SCRIPT_NAME").ok_or(ResolveError::NoScript)?;
    let base = match vars.get_nonempty("DOCUMENT_ROOT") {
        Some(doc_root) => PathBuf::from(OsStr::from_bytes(doc_root)),
        None => root.ok_or(ResolveError::NoScript)?.to_path_buf(),
    };
    let relative = name.strip_prefix(b"/").unwrap_or(name);
    Ok(base.join(OsStr::from_bytes(relative)))
}

/// Resolves and checks the program `vars` ask for. `root`, when given, must already be
/// canonical (the gateway canonicalizes it once at start).
///
/// ```
/// use std::path::Path;
/// use fcgi_cgi::env::Vars;
/// use fcgi_cgi::resolve::{resolve, ResolveError};
///
/// let vars = Vars::from_pairs(&[("SCRIPT_FILENAME", "/usr/lib/cgi-bin/../../../bin/sh")]);
/// let refused = resolve(&vars, Some(Path::new("/usr/lib/cgi-bin"))).unwrap_err();
/// assert!(matches!(refused, ResolveError::OutsideRoot { .. } | ResolveError::NotFound(..)));
/// assert!(matches!(refused.status(), 403 | 404));
/// ```
pub fn resolve(vars: &Vars, root: Option<&Path>) -> Result<Script, ResolveError> {
    let asked = requested_path(vars, root)?;
    if asked.is_relative() {
        return Err(ResolveError::Relative(asked));
    }
    let path = std::fs::canonicalize(&asked).map_err(|e| io_error(&asked, e))?;
    if let Some(root) = root {
        // Component-wise: /srv/cgi-bin-other is not under /srv/cgi-bin.
        if !path.starts_with(root) {
            return Err(ResolveError::OutsideRoot { asked, resolved: path });
        }
    }
    let meta = std::fs::metadata(&path).map_err(|e| io_error(&path, e))?;
    if !meta.is_file() {
        return Err(ResolveError::NotAFile(path));
    }
    // Any execute bit: whether it is ours to execute is the kernel's call at exec time (EACCES
    // then is a 403 too), exactly as for a shell.
    if meta.permissions().mode() & 0o111 == 0 {
        return Err(ResolveError::NotExecutable(path));
    }
    let dir = path.parent().unwrap_or(Path::new("/")).to_path_buf();
    let name = vars
        .get_str("SCRIPT_NAME")
        .filter(|n| !n.is_empty())
        .map_or_else(|| path.display().to_string(), str::to_owned);
    Ok(Script { path, dir, name })
}

fn io_error(path: &Path, e: io::Error) -> ResolveError {
    match e.kind() {
        io::ErrorKind::PermissionDenied => ResolveError::Denied(path.to_path_buf(), e),
        _ => ResolveError::NotFound(path.to_path_buf(), e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::symlink;

    struct Tree {
        _dir: tempfile::TempDir,
        root: PathBuf,
        outside: PathBuf,
    }

    /// root/ok.sh (0755), root/plain.txt (0644), root/sub/, root/link-out -> outside/evil.sh,
    /// root/link-in -> ok.sh, outside/evil.sh (0755).
    fn tree() -> Tree {
        let dir = tempfile::tempdir().unwrap();
        let base = fs::canonicalize(dir.path()).unwrap();
        let root = base.join("root");
        let outside = base.join("outside");
        fs::create_dir_all(root.join("sub")).unwrap();
        fs::create_dir_all(&outside).unwrap();
        for (path, mode) in [
            (root.join("ok.sh"), 0o755),
            (root.join("plain.txt"), 0o644),
            (outside.join("evil.sh"), 0o755),
        ] {
            fs::write(&path, "#!/bin/sh\n").unwrap();
            fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
        }
        symlink(outside.join("evil.sh"), root.join("link-out")).unwrap();
        symlink("ok.sh", root.join("link-in")).unwrap();
        Tree { _dir: dir, root, outside }
    }

    fn by_filename(path: &Path) -> Vars {
        Vars::from_pairs(&[("SCRIPT_FILENAME", path.as_os_str().as_bytes())])
    }

    #[test]
    fn a_script_under_the_root_resolves() {
        let t = tree();
        let script = resolve(&by_filename(&t.root.join("ok.sh")), Some(&t.root)).unwrap();
        assert_eq!(script.path, t.root.join("ok.sh"));
        assert_eq!(script.dir, t.root);
        let script = resolve(&by_filename(&t.root.join("link-in")), Some(&t.root)).unwrap();
        assert_eq!(script.path, t.root.join("ok.sh"), "a symlink inside the root is followed");
    }

    #[test]
    fn confinement() {
        let t = tree();
        let dotdot = t.root.join("../outside/evil.sh");
        let err = resolve(&by_filename(&dotdot), Some(&t.root)).unwrap_err();
        assert!(matches!(err, ResolveError::OutsideRoot { .. }), "{err}");
        assert_eq!(err.status(), 403);
        let err = resolve(&by_filename(&t.root.join("link-out")), Some(&t.root)).unwrap_err();
        assert!(
            matches!(&err, ResolveError::OutsideRoot { resolved, .. }
            if *resolved == t.outside.join("evil.sh")),
            "{err}"
        );
        // Without a root, the same paths may run.
        assert!(resolve(&by_filename(&dotdot), None).is_ok());
    }

    #[test]
    fn directories_plain_files_and_missing_files_are_refused() {
        let t = tree();
        let err = resolve(&by_filename(&t.root.join("sub")), Some(&t.root)).unwrap_err();
        assert!(matches!(err, ResolveError::NotAFile(_)) && err.status() == 403, "{err}");
        let err = resolve(&by_filename(&t.root.join("plain.txt")), Some(&t.root)).unwrap_err();
        assert!(matches!(err, ResolveError::NotExecutable(_)) && err.status() == 403, "{err}");
        let err = resolve(&by_filename(&t.root.join("nope.sh")), Some(&t.root)).unwrap_err();
        assert!(matches!(err, ResolveError::NotFound(..)) && err.status() == 404, "{err}");
        let err = resolve(&by_filename(&t.root.join("ok.sh/x")), Some(&t.root)).unwrap_err();
        assert_eq!(err.status(), 404, "{err}");
        let err = resolve(&by_filename(Path::new("ok.sh")), Some(&t.root)).unwrap_err();
        assert!(matches!(err, ResolveError::Relative(_)), "{err}");
    }

    #[test]
    fn script_name_under_document_root_or_the_root() {
        let t = tree();
        let root = t.root.as_os_str().as_bytes();
        let vars = Vars::from_pairs(&[("DOCUMENT_ROOT", root), ("SCRIPT_NAME", b"/ok.sh")]);
        let script = resolve(&vars, Some(&t.root)).unwrap();
        assert_eq!((script.path, script.name.as_str()), (t.root.join("ok.sh"), "/ok.sh"));
        let vars = Vars::from_pairs(&[("SCRIPT_NAME", "/ok.sh")]);
        assert_eq!(resolve(&vars, Some(&t.root)).unwrap().path, t.root.join("ok.sh"));
        let err = resolve(&vars, None).unwrap_err();
        assert!(matches!(err, ResolveError::NoScript), "{err}");
        let err = resolve(&Vars::default(), Some(&t.root)).unwrap_err();
        assert!(matches!(err, ResolveError::NoScript) && err.status() == 404, "{err}");
        let vars = Vars::from_pairs(&[("SCRIPT_NAME", "/../outside/evil.sh")]);
        let err = resolve(&vars, Some(&t.root)).unwrap_err();
        assert!(matches!(err, ResolveError::OutsideRoot { .. }), "{err}");
    }
}
