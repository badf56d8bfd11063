//! Reading PHP-FPM's files: each through [`ini::parse`], its `include = GLOB` lines followed
//! where they stand, its lines gathered into FPM's `[global]` and its pools.
//!
//! As in FPM, the section a file ends in is still the current one when the file that included
//! it goes on (the state is FPM's, not the file's), a pool named twice is one pool, every
//! command-line file starts in `[global]`, and `$pool` in a pool's value is the pool's name. A
//! glob that matches no file is noted, not refused (FPM warns and goes on).

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use super::ini::{self, LineKind, SyntaxError};

/// One `key = value` of FPM's, where it was written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Entry {
    /// The file that holds it.
    pub(crate) file: PathBuf,
    /// Its line in that file.
    pub(crate) line: usize,
    /// The line's text, for the translation's comments.
    pub(crate) raw: String,
    /// The key as written.
    pub(crate) key: String,
    /// The value, unquoted, `${VAR}` and `$pool` replaced.
    pub(crate) value: String,
}

/// A pool: a section other than `[global]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Pool {
    /// Its name as FPM spells it.
    pub(crate) name: String,
    /// Where its section first starts.
    pub(crate) file: PathBuf,
    /// That line.
    pub(crate) line: usize,
    /// Its entries, in the order FPM reads them.
    pub(crate) entries: Vec<Entry>,
}

/// An `include` line and the files it named.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Include {
    /// Where it is.
    pub(crate) file: PathBuf,
    /// Its line.
    pub(crate) line: usize,
    /// The line's text.
    pub(crate) raw: String,
    /// The files it matched, in the order read (none: FPM warns and goes on).
    pub(crate) matched: Vec<PathBuf>,
}

/// All that FPM would read from the command line's files.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Fpm {
    /// Every file read, in order, each once.
    pub(crate) files: Vec<PathBuf>,
    /// The entries of `[global]` (and of lines before any section).
    pub(crate) global: Vec<Entry>,
    /// The pools, in the order they first appear.
    pub(crate) pools: Vec<Pool>,
    /// The include lines.
    pub(crate) includes: Vec<Include>,
}

/// Why FPM's files cannot be read; each names the file, and the line where there is one.
#[derive(Debug)]
pub(crate) enum LoadError {
    /// A file cannot be read; `from` is the include line that named it, if one did.
    Read { path: PathBuf, from: Option<(PathBuf, usize)>, error: io::Error },
    /// A line is not FPM's ini.
    Syntax { path: PathBuf, line: usize, error: SyntaxError },
    /// An include names a file that is being read already: FPM would never finish.
    IncludeLoop { path: PathBuf, line: usize, target: PathBuf },
    /// An include's pattern is one that is not read here.
    Pattern { path: PathBuf, line: usize, pattern: String, reason: &'static str },
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoadError::Read { path, from: None, error } => {
                write!(f, "{}: cannot read it: {error}", path.display())
            }
            LoadError::Read { path, from: Some((file, line)), error } => write!(
                f,
                "{}:{line}: cannot read {}, which it includes: {error}",
                file.display(),
                path.display()
            ),
            LoadError::Syntax { path, line, error } => {
                write!(f, "{}:{line}: {error}", path.display())
            }
            LoadError::IncludeLoop { path, line, target } => write!(
                f,
                "{}:{line}: includes {}, which is already being read (an include loop)",
                path.display(),
                target.display()
            ),
            LoadError::Pattern { path, line, pattern, reason } => {
                write!(f, "{}:{line}: include {pattern:?}: {reason}", path.display())
            }
        }
    }
}

/// The section lines belong to while FPM reads them.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Current {
    /// `[global]`, or no section yet.
    Global,
    /// The pool at this index of [`Fpm::pools`].
    Pool(usize),
}

/// What reading the files needs from the system: a file's text, and a directory's entries
/// (name, and whether it is a directory). Tests give a map of files instead.
pub(crate) trait Files {
    /// The text of `path`.
    fn read(&self, path: &Path) -> io::Result<String>;
    /// The entries of `dir`: each one's name and whether it is a directory.
    fn list(&self, dir: &Path) -> io::Result<Vec<(String, bool)>>;
    /// `path` made absolute and free of symlinks, to tell a loop: the same file by two names is
    /// one file.
    fn identity(&self, path: &Path) -> PathBuf;
}

/// The machine's own files.
pub(crate) struct System;

impl Files for System {
    fn read(&self, path: &Path) -> io::Result<String> {
        std::fs::read_to_string(path)
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<(String, bool)>> {
        let mut names = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            // A symlink to a directory is a directory, as glob(3)'s GLOB_MARK sees it.
            let is_dir = std::fs::metadata(entry.path()).is_ok_and(|m| m.is_dir());
            names.push((entry.file_name().to_string_lossy().into_owned(), is_dir));
        }
        Ok(names)
    }

    fn identity(&self, path: &Path) -> PathBuf {
        std::fs::canonicalize(path).unwrap_or_else(|_| path.to_owned())
    }
}

/// Reads `paths` (the command line's files) and what they include, as FPM would.
pub(crate) fn load(
    paths: &[PathBuf],
    files: &dyn Files,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Fpm, LoadError> {
    let mut reader = Reader { files, env, fpm: Fpm::default(), reading: Vec::new() };
    for path in paths {
        let mut current = Current::Global;
        reader.file(path, None, &mut current)?;
    }
    Ok(reader.fpm)
}

/// The state of one [`load`].
struct Reader<'a> {
    files: &'a dyn Files,
    env: &'a dyn Fn(&str) -> Option<String>,
    fpm: Fpm,
    /// The files being read, includer first: an include of one of them is a loop.
    reading: Vec<PathBuf>,
}

impl Reader<'_> {
    /// Reads `path` (named by the include line `from`, if any) into `self.fpm`, its lines in
    /// section `current`, which it leaves as its last section left it.
    fn file(
        &mut self,
        path: &Path,
        from: Option<(PathBuf, usize)>,
        current: &mut Current,
    ) -> Result<(), LoadError> {
        let text = self.files.read(path).map_err(|error| LoadError::Read {
            path: path.to_owned(),
            from: from.clone(),
            error,
        })?;
        let lines = ini::parse(&text, self.env).map_err(|(line, error)| LoadError::Syntax {
            path: path.to_owned(),
            line,
            error,
        })?;
        if !self.fpm.files.iter().any(|known| known == path) {
            self.fpm.files.push(path.to_owned());
        }
        self.reading.push(self.files.identity(path));
        for line in lines {
            match line.kind {
                LineKind::Section(name) => *current = self.section(name, path, line.number),
                LineKind::Entry { key, value } if key.eq_ignore_ascii_case("include") => {
                    let matched = self.include(path, line.number, &value, current)?;
                    let (file, raw) = (path.to_owned(), line.raw);
                    self.fpm.includes.push(Include { file, line: line.number, raw, matched });
                }
                LineKind::Entry { key, value } => {
                    let mut entry = Entry {
                        file: path.to_owned(),
                        line: line.number,
                        raw: line.raw,
                        key,
                        value,
                    };
                    match current {
                        Current::Global => self.fpm.global.push(entry),
                        Current::Pool(index) => {
                            let pool = &mut self.fpm.pools[*index];
                            entry.value = expand_pool(&entry.value, &pool.name);
                            pool.entries.push(entry);
                        }
                    }
                }
            }
        }
        self.reading.pop();
        Ok(())
    }

    /// The section `[name]` starts at `path:line`: `[global]` (in any case, as FPM reads it),
    /// a pool seen before, or a new pool.
    fn section(&mut self, name: String, path: &Path, line: usize) -> Current {
        if name.eq_ignore_ascii_case("global") {
            return Current::Global;
        }
        if let Some(index) = self.fpm.pools.iter().position(|pool| pool.name == name) {
            return Current::Pool(index);
        }
        let file = path.to_owned();
        self.fpm.pools.push(Pool { name, file, line, entries: Vec::new() });
        Current::Pool(self.fpm.pools.len() - 1)
    }

    /// `include = pattern` at `path:line`: reads each file it matches; returns them.
    fn include(
        &mut self,
        path: &Path,
        line: usize,
        pattern: &str,
        current: &mut Current,
    ) -> Result<Vec<PathBuf>, LoadError> {
        let refuse = |reason| LoadError::Pattern {
            path: path.to_owned(),
            line,
            pattern: pattern.to_owned(),
            reason,
        };
        let full = path.parent().unwrap_or(Path::new("")).join(pattern);
        let (dir, last) = match (full.parent(), full.file_name().and_then(|n| n.to_str())) {
            (Some(dir), Some(last)) if !pattern.ends_with('/') => (dir, last),
            _ => return Err(refuse("it names no file")),
        };
        if dir.to_string_lossy().contains(['*', '?', '[']) {
            return Err(refuse("only its last component may hold `*` and `?`"));
        }
        if last.contains('[') {
            return Err(refuse("`[...]` classes are not read here: use `*` and `?`"));
        }
        let names = match self.files.list(dir) {
            Ok(names) => names,
            // As glob(3): a directory that is not there matches nothing.
            Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(error) => {
                return Err(LoadError::Read {
                    path: dir.to_owned(),
                    from: Some((path.to_owned(), line)),
                    error,
                })
            }
        };
        let mut matched: Vec<PathBuf> = names
            .into_iter()
            .filter(|(name, is_dir)| !is_dir && glob_match(last, name))
            .map(|(name, _)| dir.join(name))
            .collect();
        // glob(3)'s order.
        matched.sort();
        for target in &matched {
            if self.reading.contains(&self.files.identity(target)) {
                return Err(LoadError::IncludeLoop {
                    path: path.to_owned(),
                    line,
                    target: target.clone(),
                });
            }
            self.file(target, Some((path.to_owned(), line)), current)?;
        }
        Ok(matched)
    }
}

/// Whether `name` matches `pattern`, a file name with `*` (any run of characters) and `?`
/// (one character). As glob(3), a name starting with `.` matches only a pattern that does.
pub(crate) fn glob_match(pattern: &str, name: &str) -> bool {
    if name.starts_with('.') && !pattern.starts_with('.') {
        return false;
    }
    let (pattern, name): (Vec<char>, Vec<char>) =
        (pattern.chars().collect(), name.chars().collect());
    // The classic two-pointer match: on a mismatch, the last `*` takes one more character.
    let (mut p, mut n) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        match pattern.get(p) {
            Some('*') => {
                star = Some((p, n));
                p += 1;
            }
            Some(&c) if c == '?' || c == name[n] => {
                p += 1;
                n += 1;
            }
            _ => match star {
                Some((star_p, star_n)) => {
                    p = star_p + 1;
                    n = star_n + 1;
                    star = Some((star_p, star_n + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == '*')
}

/// `value` with FPM's `$pool` replaced by the pool's name (in every pool directive, as
/// Debian's www.conf says).
pub(crate) fn expand_pool(value: &str, pool: &str) -> String {
    value.replace("$pool", pool)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    /// Files in memory: path → text; a directory is any path that is a prefix of a file's.
    struct Memory(BTreeMap<PathBuf, String>);

    impl Files for Memory {
        fn read(&self, path: &Path) -> io::Result<String> {
            self.0.get(path).cloned().ok_or_else(|| io::ErrorKind::NotFound.into())
        }

        fn list(&self, dir: &Path) -> io::Result<Vec<(String, bool)>> {
            let mut names: Vec<(String, bool)> = Vec::new();
            for path in self.0.keys() {
                if let Ok(rest) = path.strip_prefix(dir) {
                    let mut parts = rest.components();
                    let first = parts.next().expect("a file below dir");
                    let entry =
                        (first.as_os_str().to_string_lossy().into_owned(), parts.next().is_some());
                    if !names.contains(&entry) {
                        names.push(entry);
                    }
                }
            }
            if names.is_empty() {
                return Err(io::ErrorKind::NotFound.into());
            }
            Ok(names)
        }

        fn identity(&self, path: &Path) -> PathBuf {
            path.to_owned()
        }
    }

    fn memory(files: &[(&str, &str)]) -> Memory {
        Memory(files.iter().map(|(p, t)| (PathBuf::from(p), (*t).to_owned())).collect())
    }

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn load_from(files: &Memory, paths: &[&str]) -> Result<Fpm, LoadError> {
        let paths: Vec<PathBuf> = paths.iter().map(PathBuf::from).collect();
        load(&paths, files, &no_env)
    }

    #[test]
    fn globs_match_as_glob_does() {
        let table = [
            ("*.conf", "www.conf", true),
            ("*.conf", "www.conf.dpkg-old", false),
            ("*.conf", ".hidden.conf", false),
            (".*.conf", ".hidden.conf", true),
            ("*", "anything", true),
            ("w?w.conf", "www.conf", true),
            ("w?w.conf", "ww.conf", false),
            ("*w*.conf", "a-www-b.conf", true),
            ("a*b*c", "abxbc", true),
            ("a*b*c", "abxbd", false),
            ("www.conf", "www.conf", true),
            ("www.conf", "www.con", false),
            ("", "", true),
            ("**", "x", true),
        ];
        for (pattern, name, want) in table {
            assert_eq!(glob_match(pattern, name), want, "{pattern:?} {name:?}");
        }
    }

    #[test]
    fn includes_are_read_where_they_stand_in_the_includers_section() {
        let files = memory(&[
            ("/etc/fpm/php-fpm.conf", "[global]\npid = /run/fpm.pid\ninclude = pool.d/*.conf\nerror_log = /var/log/fpm.log\n"),
            ("/etc/fpm/pool.d/a.conf", "[a]\nlisten = /run/$pool.sock\n"),
            ("/etc/fpm/pool.d/b.conf", "[b]\nuser = b\n[a]\nuser = a\n"),
            ("/etc/fpm/pool.d/c.conf.off", "[c]\nuser = c\n"),
            ("/etc/fpm/pool.d/sub/d.conf", "[d]\nuser = d\n"),
        ]);
        let fpm = load_from(&files, &["/etc/fpm/php-fpm.conf"]).unwrap();
        let names: Vec<&str> = fpm.pools.iter().map(|p| &*p.name).collect();
        assert_eq!(names, ["a", "b"]);
        let values = |entries: &[Entry]| -> Vec<(String, String)> {
            entries.iter().map(|e| (e.key.clone(), e.value.clone())).collect()
        };
        let pair = |k: &str, v: &str| (k.to_owned(), v.to_owned());
        // error_log follows the include in php-fpm.conf, and b.conf ends in [a]: FPM puts it
        // in [a] (its current pool is its own state, not the file's).
        assert_eq!(
            values(&fpm.pools[0].entries),
            [
                pair("listen", "/run/a.sock"),
                pair("user", "a"),
                pair("error_log", "/var/log/fpm.log")
            ]
        );
        assert_eq!(values(&fpm.global), [pair("pid", "/run/fpm.pid")]);
        assert_eq!(fpm.pools[1].entries.len(), 1);
        assert_eq!(fpm.includes.len(), 1);
        assert_eq!(
            fpm.includes[0].matched,
            [PathBuf::from("/etc/fpm/pool.d/a.conf"), PathBuf::from("/etc/fpm/pool.d/b.conf")]
        );
        let files: Vec<&Path> = fpm.files.iter().map(PathBuf::as_path).collect();
        assert_eq!(
            files,
            ["/etc/fpm/php-fpm.conf", "/etc/fpm/pool.d/a.conf", "/etc/fpm/pool.d/b.conf"]
                .map(Path::new)
        );
    }

    #[test]
    fn a_line_after_an_include_stays_in_the_section_the_include_ended_in() {
        let files = memory(&[
            ("/f/main.conf", "include = p.conf\nerror_log = /x\n"),
            ("/f/p.conf", "[p]\nuser = p\n"),
        ]);
        let fpm = load_from(&files, &["/f/main.conf"]).unwrap();
        assert!(fpm.global.is_empty());
        let keys: Vec<&str> = fpm.pools[0].entries.iter().map(|e| &*e.key).collect();
        assert_eq!(keys, ["user", "error_log"]);
    }

    #[test]
    fn each_command_line_file_starts_in_global_and_pools_of_one_name_are_one() {
        let files = memory(&[
            ("/a.conf", "[www]\nuser = a\n"),
            ("/b.conf", "pid = /p\n[www]\ngroup = b\n"),
        ]);
        let fpm = load_from(&files, &["/a.conf", "/b.conf"]).unwrap();
        assert_eq!(fpm.global.len(), 1);
        assert_eq!(fpm.pools.len(), 1);
        assert_eq!(fpm.pools[0].entries.len(), 2);
        assert_eq!(
            (fpm.pools[0].entries[1].file.as_path(), fpm.pools[0].entries[1].line),
            (Path::new("/b.conf"), 3)
        );
    }

    #[test]
    fn a_glob_that_matches_nothing_is_kept_not_refused() {
        let files =
            memory(&[("/f/main.conf", "include = /nowhere/*.conf\ninclude = none-*.conf\n")]);
        let fpm = load_from(&files, &["/f/main.conf"]).unwrap();
        assert_eq!(fpm.includes.len(), 2);
        assert!(fpm.includes.iter().all(|i| i.matched.is_empty()));
    }

    #[test]
    fn errors_name_the_file_and_the_line() {
        let table: [(&[(&str, &str)], &str); 6] = [
            (&[], "/f/main.conf: cannot read it"),
            (&[("/f/main.conf", "[www]\nuser\n")], "/f/main.conf:2: not `key = value`"),
            (
                &[("/f/main.conf", "x = 1\ninclude = main.conf\n")],
                "/f/main.conf:2: includes /f/main.conf, which is already being read",
            ),
            (
                &[
                    ("/f/main.conf", "include = a.conf\n"),
                    ("/f/a.conf", "\n\ninclude = main.conf\n"),
                ],
                "/f/a.conf:3: includes /f/main.conf, which is already being read",
            ),
            (
                &[("/f/main.conf", "include = */x.conf\n")],
                "/f/main.conf:1: include \"*/x.conf\": only its last component",
            ),
            (
                &[("/f/main.conf", "include = [ab].conf\n")],
                "/f/main.conf:1: include \"[ab].conf\": `[...]` classes",
            ),
        ];
        for (files, want) in table {
            let err = load_from(&memory(files), &["/f/main.conf"]).unwrap_err().to_string();
            assert!(err.starts_with(want), "{err:?} does not start with {want:?}");
        }
    }
}
