//! `make install` and `make deb`: every file in place with its mode, and nothing else; the
//! binary runs, the man pages render without a troff warning and cover every option of
//! `fcgi serve --help`, the completions load in bash, the units start the installed binary.
//! The Debian package holds the same files.
//!
//! The tests install the debug build `make test` has just built (`BIN=...`): a release build
//! of its own would cost this test minutes. The package test needs cargo-deb, which takes
//! minutes to build: it runs when `cargo deb` is there, or when FCGI_TEST_DEB=1 (then `make deb`
//! installs cargo-deb first), and says it skipped otherwise.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use fcgi_tests::nginx::scratch;
use fcgi_tests::process::fcgi_bin;
use fcgi_tests::settings::skip;

/// The man pages `fcgi generate man` writes: the command's and one per visible subcommand.
const MAN_PAGES: [&str; 6] = [
    "fcgi-bench.1",
    "fcgi-import-fpm.1",
    "fcgi-request.1",
    "fcgi-serve.1",
    "fcgi-status.1",
    "fcgi.1",
];

/// Where Debian's zsh reads the completions of packages (`make deb` puts them there).
const DEBIAN_ZSH_DIR: &str = "/usr/share/zsh/vendor-completions";

/// The workspace's root, where the Makefile is.
fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ is in the workspace").to_owned()
}

/// Runs `make ARGS` in the workspace and insists that it succeeds. The settings of an enclosing
/// `make test` (its jobserver) are not passed on: this make is not one of its jobs.
fn make(args: &[&str]) -> Output {
    let output = Command::new("make")
        .arg("--no-print-directory")
        .args(args)
        .current_dir(workspace())
        .env_remove("MAKEFLAGS")
        .env_remove("MFLAGS")
        .env_remove("MAKELEVEL")
        .stdin(Stdio::null())
        .output()
        .expect("make runs");
    assert!(
        output.status.success(),
        "make {args:?}: {}\n{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// The systemd units in dist/systemd, which `make install` installs: their file names.
fn shipped_units() -> Vec<String> {
    let mut units: Vec<String> = fs::read_dir(workspace().join("dist/systemd"))
        .expect("dist/systemd")
        .map(|entry| entry.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".service") || name.ends_with(".socket"))
        .collect();
    units.sort();
    assert!(units.iter().any(|unit| unit == "fcgi.service"), "{units:?}");
    units
}

/// Every file `make install` installs for `prefix`, with zsh's completion in `zsh_dir`: its
/// path and mode.
fn expected_files(prefix: &str, zsh_dir: &str) -> BTreeMap<String, u32> {
    let mut files = BTreeMap::new();
    files.insert(format!("{prefix}/bin/fcgi"), 0o755);
    for unit in shipped_units() {
        files.insert(format!("{prefix}/lib/systemd/system/{unit}"), 0o644);
    }
    for page in MAN_PAGES {
        files.insert(format!("{prefix}/share/man/man1/{page}"), 0o644);
    }
    files.insert(format!("{prefix}/share/bash-completion/completions/fcgi"), 0o644);
    files.insert(format!("{zsh_dir}/_fcgi"), 0o644);
    files.insert(format!("{prefix}/share/fish/vendor_completions.d/fcgi.fish"), 0o644);
    files.insert(format!("{prefix}/share/doc/fcgi-rs/serve.conf.example"), 0o644);
    files
}

/// Every file under `root` (directories left out): its path below `root` and its mode.
fn files_under(root: &Path) -> BTreeMap<String, u32> {
    let mut files = BTreeMap::new();
    let mut pending = vec![root.to_owned()];
    while let Some(dir) = pending.pop() {
        for entry in fs::read_dir(&dir).expect("readable directory") {
            let path = entry.expect("entry").path();
            let meta = fs::symlink_metadata(&path).expect("metadata");
            if meta.is_dir() {
                pending.push(path);
            } else {
                let relative = path.strip_prefix(root).expect("below root");
                files
                    .insert(format!("/{}", relative.display()), meta.permissions().mode() & 0o7777);
            }
        }
    }
    files
}

/// `man`, when installed (tests/deps.sh installs man-db).
fn man_bin() -> Option<PathBuf> {
    ["/usr/bin/man"].iter().map(PathBuf::from).find(|path| path.exists())
}

/// The page at `path` as `man` renders it (when man is installed; else its troff source with
/// the escaped dashes unescaped), after checking it is troff with a title line and, with man,
/// that troff warned of nothing.
fn rendered_man_page(path: &Path) -> String {
    let bytes = fs::read(path).expect("man page");
    let source = if bytes.starts_with(&[0x1f, 0x8b]) {
        let output = Command::new("gzip").arg("-dc").arg(path).output().expect("gzip runs");
        assert!(output.status.success(), "{}: not gzip", path.display());
        String::from_utf8(output.stdout).expect("UTF-8")
    } else {
        String::from_utf8(bytes).expect("UTF-8")
    };
    assert!(
        source.lines().any(|line| line.starts_with(".TH ")),
        "{}: no .TH title line:\n{source}",
        path.display()
    );
    let Some(man) = man_bin() else {
        return source.replace("\\-", "-");
    };
    // On stdin: man, run as root, reads a named page as its own unprivileged user, who may not
    // enter the test's private temporary directory.
    let mut child = Command::new(man)
        .args(["--warnings", "-l", "-"])
        .env("MANWIDTH", "100")
        // No hyphenation, which would cut options at line ends (`--max-re-` / `quests`).
        .env("MANROFFOPT", "-rHY=0")
        .env("MANPAGER", "cat")
        .env("PAGER", "cat")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("man runs");
    child.stdin.take().expect("stdin").write_all(source.as_bytes()).expect("man reads the page");
    let output = child.wait_with_output().expect("man runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "man -l {}: {stderr}", path.display());
    assert!(stderr.trim().is_empty(), "man -l {}: troff warned: {stderr}", path.display());
    let text = String::from_utf8(output.stdout).expect("UTF-8");
    for heading in ["NAME", "SYNOPSIS", "DESCRIPTION"] {
        assert!(text.contains(heading), "{}: no {heading}:\n{text}", path.display());
    }
    text
}

/// The long options `fcgi serve --help` lists.
fn serve_options() -> Vec<String> {
    let output = Command::new(fcgi_bin()).args(["serve", "--help"]).output().expect("fcgi runs");
    assert!(output.status.success());
    let help = String::from_utf8(output.stdout).expect("UTF-8");
    let options: Vec<String> = help
        .split(|c: char| c.is_whitespace() || c == ',' || c == '=')
        .filter(|word| word.starts_with("--") && word.len() > 2)
        .map(|word| word.trim_end_matches(|c: char| !c.is_ascii_alphanumeric()).to_owned())
        .collect();
    assert!(options.iter().any(|option| option == "--listen"), "{help}");
    options
}

/// What the binary at `bin` prints for `--version`.
fn version_of(bin: &Path) -> String {
    let output = Command::new(bin).arg("--version").output().expect("the installed binary runs");
    assert!(output.status.success(), "{} --version: {}", bin.display(), output.status);
    String::from_utf8(output.stdout).expect("UTF-8").trim().to_owned()
}

/// Checks the installed tree at `root` (`prefix` below it), whose man pages carry
/// `man_suffix` (`.gz` in the package).
fn check_installed(root: &Path, prefix: &str, zsh_dir: &str, man_suffix: &str) {
    let path = |p: &str| root.join(p.trim_start_matches('/'));

    let version = version_of(&path(&format!("{prefix}/bin/fcgi")));
    assert_eq!(version, format!("fcgi {}", env!("CARGO_PKG_VERSION")));

    for page in MAN_PAGES {
        rendered_man_page(&path(&format!("{prefix}/share/man/man1/{page}{man_suffix}")));
    }
    // The pages are the binary's own: every option of `fcgi serve --help` is in fcgi-serve(1).
    let serve_page =
        rendered_man_page(&path(&format!("{prefix}/share/man/man1/fcgi-serve.1{man_suffix}")));
    for option in serve_options() {
        assert!(serve_page.contains(&option), "fcgi-serve(1) lacks {option}:\n{serve_page}");
    }
    let main_page =
        rendered_man_page(&path(&format!("{prefix}/share/man/man1/fcgi.1{man_suffix}")));
    assert!(main_page.contains("fcgi-serve(1)"), "{main_page}");
    assert!(!main_page.contains("generate"), "the hidden subcommand is documented:\n{main_page}");

    let bash = path(&format!("{prefix}/share/bash-completion/completions/fcgi"));
    let zsh = path(&format!("{zsh_dir}/_fcgi"));
    let fish = path(&format!("{prefix}/share/fish/vendor_completions.d/fcgi.fish"));
    for script in [&bash, &zsh, &fish] {
        let text = fs::read_to_string(script).expect("completion script");
        assert!(text.contains("serve") && text.contains("listen"), "{}", script.display());
        assert!(!text.contains("generate"), "{} offers the hidden subcommand", script.display());
    }
    // bash loads its script and then completes `fcgi` with it.
    let output = Command::new("bash")
        .arg("-c")
        .arg(format!("source '{}' && complete -p fcgi", bash.display()))
        .output()
        .expect("bash runs");
    let registered = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "bash: {}", String::from_utf8_lossy(&output.stderr));
    assert!(
        registered.contains("_fcgi") && registered.trim_end().ends_with(" fcgi"),
        "{registered}"
    );

    // The units are the shipped ones, but their commands name the installed binary.
    for unit in shipped_units() {
        let shipped = fs::read_to_string(workspace().join("dist/systemd").join(&unit)).unwrap();
        let installed = fs::read_to_string(path(&format!("{prefix}/lib/systemd/system/{unit}")))
            .expect("installed unit");
        assert_eq!(shipped.lines().count(), installed.lines().count(), "{unit}");
        for (before, after) in shipped.lines().zip(installed.lines()) {
            let names_fcgi = before.starts_with("Exec") && before.contains("/fcgi ");
            if names_fcgi {
                assert!(after.contains(&format!("={prefix}/bin/fcgi ")), "{unit}: {after}");
            } else {
                assert_eq!(before, after, "{unit}");
            }
        }
    }
    let service = fs::read_to_string(path(&format!("{prefix}/lib/systemd/system/fcgi.service")))
        .expect("fcgi.service");
    assert!(service.contains(&format!("\nExecStart={prefix}/bin/fcgi serve ")), "{service}");

    let example = fs::read(path(&format!("{prefix}/share/doc/fcgi-rs/serve.conf.example")));
    assert_eq!(
        example.expect("example config"),
        fs::read(workspace().join("dist/systemd/serve.conf")).unwrap()
    );
}

#[test]
fn make_install_puts_every_file_in_place_and_nothing_else() {
    let dir = scratch();
    let bin = fcgi_bin();
    let destdir = dir.path().join("root");
    make(&[
        "install",
        &format!("DESTDIR={}", destdir.display()),
        "PREFIX=/usr",
        &format!("BIN={}", bin.display()),
    ]);
    assert_eq!(files_under(&destdir), expected_files("/usr", "/usr/share/zsh/site-functions"));
    check_installed(&destdir, "/usr", "/usr/share/zsh/site-functions", "");
}

#[test]
fn make_uninstall_removes_what_make_install_put() {
    let dir = scratch();
    let destdir = dir.path().join("root");
    let vars = [format!("DESTDIR={}", destdir.display()), format!("BIN={}", fcgi_bin().display())];
    let vars: Vec<&str> = vars.iter().map(String::as_str).collect();
    make(&[&["install"], &vars[..]].concat());
    // The default PREFIX.
    assert_eq!(
        files_under(&destdir),
        expected_files("/usr/local", "/usr/local/share/zsh/site-functions")
    );
    make(&[&["uninstall"], &vars[..]].concat());
    assert_eq!(files_under(&destdir), BTreeMap::new());
}

/// Whether `cargo deb` runs here.
fn cargo_deb_available() -> bool {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    Command::new(cargo)
        .args(["deb", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

/// The files `dpkg-deb -c` lists in the package at `deb`, with their modes.
fn package_files(deb: &Path) -> BTreeMap<String, u32> {
    let output = Command::new("dpkg-deb").arg("-c").arg(deb).output().expect("dpkg-deb runs");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout)
        .expect("UTF-8")
        .lines()
        // -rw-r--r-- 0/0    1704 2026-11-27 00:00 ./usr/share/man/man1/fcgi-bench.1.gz
        .filter(|line| line.starts_with('-'))
        .map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let mode = fields[0][1..].chars().fold(0, |mode, c| mode << 1 | u32::from(c != '-'));
            let path = fields.last().expect("path").trim_start_matches('.').to_owned();
            (path, mode)
        })
        .collect()
}

#[test]
fn make_deb_packages_the_same_files() {
    if !cargo_deb_available() && std::env::var_os("FCGI_TEST_DEB").is_none_or(|v| v != "1") {
        return skip("cargo-deb is not installed (FCGI_TEST_DEB=1 installs it, for minutes)");
    }
    let dir = scratch();
    make(&[
        "deb",
        &format!("BIN={}", fcgi_bin().display()),
        &format!("DEB_OUT={}", dir.path().display()),
        "DEB_FLAGS=--fast",
    ]);
    let debs: Vec<PathBuf> = fs::read_dir(dir.path())
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "deb"))
        .collect();
    assert_eq!(debs.len(), 1, "{debs:?}");
    let deb = &debs[0];

    let field = Command::new("dpkg-deb").arg("-f").arg(deb).arg("Package").output().unwrap();
    assert_eq!(String::from_utf8_lossy(&field.stdout).trim(), "fcgi-rs");

    // What `make install PREFIX=/usr` installs, the man pages gzipped as Debian policy wants,
    // and the copyright file cargo-deb writes.
    let mut expected: BTreeMap<String, u32> = expected_files("/usr", DEBIAN_ZSH_DIR)
        .into_iter()
        .map(
            |(path, mode)| {
                if path.ends_with(".1") {
                    (format!("{path}.gz"), mode)
                } else {
                    (path, mode)
                }
            },
        )
        .collect();
    expected.insert("/usr/share/doc/fcgi-rs/copyright".to_owned(), 0o644);
    assert_eq!(package_files(deb), expected);

    let root = dir.path().join("extracted");
    let status = Command::new("dpkg-deb").arg("-x").arg(deb).arg(&root).status().unwrap();
    assert!(status.success());
    check_installed(&root, "/usr", DEBIAN_ZSH_DIR, ".gz");
}
