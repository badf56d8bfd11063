//! `fcgi import-fpm`: Debian's stock PHP-FPM configuration translated, checked and served
//! (php-cgi as www-data answers a request through the translated pool); a hand-written one with
//! two pools from an include glob, where every directive is an option or a comment and the
//! result passes `fcgi serve --check`; and the usage errors, each naming its file and line.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use fcgi_tests::master::fcgi_request;
use fcgi_tests::nginx::{is_root, scratch};
use fcgi_tests::php_cgi::{self, PHP_CGI};
use fcgi_tests::process::{fcgi_bin, wait_until, Guarded, START_TIMEOUT};
use fcgi_tests::settings::skip;

/// `fcgi import-fpm ARGS`.
fn import(args: &[&str]) -> Output {
    Command::new(fcgi_bin()).arg("import-fpm").args(args).output().expect("fcgi import-fpm runs")
}

/// `fcgi serve --config CONFIG --check`: its exit code and what it printed.
fn check(config: &Path) -> (Option<i32>, String) {
    let output = Command::new(fcgi_bin())
        .args(["serve", "--check", "--config"])
        .arg(config)
        .output()
        .expect("fcgi serve --check runs");
    let text = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    (output.status.code(), text)
}

/// The stdout of a successful `fcgi import-fpm ARGS`.
#[track_caller]
fn translated(args: &[&str]) -> String {
    let output = import(args);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "import-fpm {args:?} failed: {stderr}");
    String::from_utf8(output.stdout).expect("UTF-8")
}

/// Debian's php-fpm.conf (`/etc/php/*/fpm/php-fpm.conf`, of package php-fpm), or a skip.
fn stock_config() -> Option<PathBuf> {
    let mut found: Vec<PathBuf> = fs::read_dir("/etc/php")
        .into_iter()
        .flatten()
        .flatten()
        .map(|version| version.path().join("fpm/php-fpm.conf"))
        .filter(|conf| conf.is_file())
        .collect();
    found.sort();
    if found.is_empty() {
        skip("no /etc/php/*/fpm/php-fpm.conf: run tests/deps.sh (Debian package php-fpm)");
    }
    found.pop()
}

/// `text` with each line that starts with one of `replaced`'s names set to its value instead.
fn with_lines(text: &str, replaced: &[(&str, String)]) -> String {
    let mut out = String::new();
    for line in text.lines() {
        let new = replaced.iter().find(|(name, _)| line.starts_with(&format!("{name} = ")));
        match new {
            Some((name, value)) => out += &format!("{name} = {value}\n"),
            None => out += &format!("{line}\n"),
        }
    }
    out
}

#[test]
fn debians_stock_config_becomes_a_www_pool() {
    let Some(conf) = stock_config() else { return };
    let out = translated(&[conf.to_str().expect("UTF-8")]);
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("# ") && lines[0].contains(conf.to_str().unwrap()), "{out}");
    assert!(lines[0].contains("pool.d/www.conf"), "the included pool is named:\n{out}");
    for want in
        ["[www]", "app = exec", "user = www-data", "process-model = dynamic", "max-workers = 5"]
    {
        assert!(lines.contains(&want), "no {want:?} in:\n{out}");
    }
    assert!(lines.iter().any(|l| l.starts_with("listen = unix:/run/php/")), "{out}");
    assert!(lines.contains(&"workers = 2"), "pm.start_servers: {out}");
    // Each line is a comment, blank, a section, or an option.
    for line in &lines {
        let ok = line.is_empty()
            || line.starts_with("# ")
            || line.starts_with('[')
            || line.contains(" = ");
        assert!(ok, "{line:?} in:\n{out}");
    }
}

#[test]
fn debians_stock_config_translated_serves_php_as_www_data() {
    let Some(conf) = stock_config() else { return };
    if !php_cgi::installed() {
        return;
    }
    if !is_root() {
        return skip("the pool runs as www-data: switching users needs root");
    }
    let dir = scratch();
    // php-cgi runs as www-data: it must reach the script.
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
    let script = dir.path().join("hello.php");
    fs::write(&script, "<?php echo \"fpm-import ok\";").expect("the script written");
    let socket = dir.path().join("www.sock");
    let out = translated(&["--php-cgi", PHP_CGI, conf.to_str().expect("UTF-8")]);
    let config = dir.path().join("fcgi.conf");
    let moved = with_lines(
        &out,
        &[
            ("listen", format!("unix:{}", socket.display())),
            ("pid-file", dir.path().join("fcgi.pid").display().to_string()),
            ("log-file", dir.path().join("fcgi.log").display().to_string()),
        ],
    );
    fs::write(&config, &moved).expect("the config written");

    let (code, text) = check(&config);
    assert_eq!(code, Some(0), "--check of\n{moved}\nsaid: {text}");
    assert!(text.contains("configuration ok"), "{text}");

    let mut serve = Command::new(fcgi_bin());
    serve.args(["serve", "--config"]).arg(&config);
    let mut server = Guarded::spawn("fcgi serve", serve, &dir.path().join("serve.out"));
    let script = script.to_str().expect("UTF-8");
    let mut last = (None, String::new());
    let answered = wait_until(START_TIMEOUT, || {
        last = fcgi_request(&socket, script, 5);
        last == (Some(0), "fpm-import ok".to_owned())
    });
    let log = fs::read_to_string(dir.path().join("fcgi.log")).unwrap_or_default();
    assert!(answered, "the pool did not answer: {last:?}\nits log:\n{log}");

    server.signal(libc::SIGTERM);
    let status = server.wait_exit(Duration::from_secs(20));
    assert!(status.is_some_and(|s| s.success()), "TERM: {status:?}\n{log}");
    assert!(!socket.exists() && !dir.path().join("fcgi.pid").exists(), "left behind");
}

/// A PHP-FPM configuration in `dir`: php-fpm.conf including pool.d/*.conf, two pools, and a
/// file the glob does not match.
fn write_fpm(dir: &Path) -> PathBuf {
    let d = dir.display();
    let files = [
        (
            "php-fpm.conf",
            format!(
                "; hand-written\n[global]\npid = {d}/fpm.pid\nerror_log = {d}/fpm.log\n\
                 log_level = notice\nprocess_control_timeout = 1m\n\
                 emergency_restart_threshold = 10\ndaemonize = no\ninclude = pool.d/*.conf\n"
            ),
        ),
        (
            "pool.d/alpha.conf",
            format!(
                "[alpha]\nlisten = {d}/$pool.sock\nlisten.mode = 0660\npm = ondemand\n\
                 pm.max_children = 4\npm.process_idle_timeout = 20s\npm.start_servers = 2\n\
                 pm.max_requests = lots ; a bad value\nrequest_terminate_timeout = 2m\n\
                 php_admin_value[memory_limit] = 64M\n\
                 php_value[error_log] = \"{d}/php errors $pool.log\"\nenv[PATH] = $PATH\n\
                 env[TMP] = /tmp\nchdir = /\ncatch_workers_output = yes\n"
            ),
        ),
        (
            "pool.d/beta.conf",
            format!(
                "[beta]\nlisten = 127.0.0.1:19077\nlisten.allowed_clients = 127.0.0.1,::1\n\
                 pm = static\npm.max_children = 2\npm.min_spare_servers = 1\n\
                 rlimit_files = 1024\nrlimit_core = unlimited\n\
                 access.log = {d}/$pool.access.log\n\
                 access.format = \"%R - %u %t \\\"%m %r\\\" %s\"\nslowlog = {d}/$pool.slow.log\n\
                 request_slowlog_timeout = 5s\nping.path = /ping\npm.status_path = /status\n\
                 security.limit_extensions = .php\n"
            ),
        ),
        ("pool.d/gamma.conf.disabled", "[gamma]\nlisten = /never\n".to_owned()),
    ];
    for (name, text) in files {
        let path = dir.join(name);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    }
    dir.join("php-fpm.conf")
}

#[test]
fn a_hand_written_config_maps_every_directive_and_passes_check() {
    let dir = scratch();
    let fpm = write_fpm(dir.path());
    let d = dir.path().display();
    let exec =
        format!("exec = /bin/true -d memory_limit=64M -d 'error_log={d}/php errors alpha.log'");
    // Each directive of the files, and its translation: an option, or None for a comment that
    // quotes the line.
    let table: Vec<(String, Option<String>)> = [
        (format!("pid = {d}/fpm.pid"), Some(format!("pid-file = {d}/fpm.pid"))),
        (format!("error_log = {d}/fpm.log"), Some(format!("log-file = {d}/fpm.log"))),
        ("log_level = notice".into(), Some("log-level = info".into())),
        ("process_control_timeout = 1m".into(), Some("graceful-timeout = 60".into())),
        ("emergency_restart_threshold = 10".into(), None),
        ("daemonize = no".into(), None),
        (format!("listen = {d}/$pool.sock"), Some(format!("listen = unix:{d}/alpha.sock"))),
        ("listen.mode = 0660".into(), Some("socket-mode = 0660".into())),
        ("pm = ondemand".into(), Some("process-model = ondemand".into())),
        ("pm.max_children = 4".into(), Some("max-workers = 4".into())),
        ("pm.process_idle_timeout = 20s".into(), Some("worker-idle-timeout = 20".into())),
        ("pm.start_servers = 2".into(), None),
        ("pm.max_requests = lots ; a bad value".into(), None),
        ("request_terminate_timeout = 2m".into(), Some("request-timeout = 120".into())),
        ("php_admin_value[memory_limit] = 64M".into(), Some(exec.clone())),
        (format!("php_value[error_log] = \"{d}/php errors $pool.log\""), Some(exec)),
        ("env[PATH] = $PATH".into(), Some("pass-env = PATH".into())),
        ("env[TMP] = /tmp".into(), None),
        ("chdir = /".into(), None),
        ("catch_workers_output = yes".into(), None),
        ("listen = 127.0.0.1:19077".into(), Some("listen = tcp:127.0.0.1:19077".into())),
        ("listen.allowed_clients = 127.0.0.1,::1".into(), Some("allow = ::1".into())),
        ("pm = static".into(), Some("process-model = static".into())),
        ("pm.max_children = 2".into(), Some("workers = 2".into())),
        ("pm.min_spare_servers = 1".into(), None),
        ("rlimit_files = 1024".into(), Some("rlimit-nofile = 1024".into())),
        ("rlimit_core = unlimited".into(), None),
        (
            format!("access.log = {d}/$pool.access.log"),
            Some(format!("access-log = {d}/beta.access.log")),
        ),
        ("access.format = \"%R - %u %t \\\"%m %r\\\" %s\"".into(), None),
        (format!("slowlog = {d}/$pool.slow.log"), Some(format!("slow-log = {d}/beta.slow.log"))),
        ("request_slowlog_timeout = 5s".into(), Some("slow-request = 5".into())),
        ("ping.path = /ping".into(), Some("ping-path = /ping".into())),
        ("pm.status_path = /status".into(), Some("status-path = /status".into())),
        ("security.limit_extensions = .php".into(), None),
    ]
    .into_iter()
    .collect();

    // The table is every directive of the files the glob matches.
    let mut directives: Vec<String> = ["php-fpm.conf", "pool.d/alpha.conf", "pool.d/beta.conf"]
        .iter()
        .flat_map(|f| {
            fs::read_to_string(dir.path().join(f))
                .unwrap()
                .lines()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .filter(|l| l.contains('=') && !l.starts_with(';') && !l.starts_with("include"))
        .collect();
    let mut listed: Vec<String> = table.iter().map(|(fpm, _)| fpm.clone()).collect();
    directives.sort();
    listed.sort();
    assert_eq!(directives, listed, "the table lists every directive");

    // --php-cgi: the check is of the translation, not of PHP; it needs only an executable.
    let out = translated(&["--php-cgi", "/bin/true", fpm.to_str().unwrap()]);
    let lines: Vec<&str> = out.lines().collect();
    for (directive, translation) in &table {
        match translation {
            Some(option) => {
                assert!(lines.contains(&option.as_str()), "{directive:?}: no {option:?} in:\n{out}")
            }
            None => {
                let comment = format!("# {directive} -- ");
                assert!(
                    lines.iter().any(|l| l.starts_with(&comment)),
                    "{directive:?}: no comment in:\n{out}"
                );
            }
        }
    }
    assert!(lines.contains(&"allow = 127.0.0.1"), "{out}");
    let sections: Vec<&str> = lines.iter().copied().filter(|l| l.starts_with('[')).collect();
    assert_eq!(sections, ["[alpha]", "[beta]"], "{out}");
    assert!(lines[0].contains("pool.d/alpha.conf") && !out.contains("gamma"), "{out}");

    let config = dir.path().join("fcgi.conf");
    fs::write(&config, &out).unwrap();
    let (code, text) = check(&config);
    assert_eq!(code, Some(0), "--check of\n{out}\nsaid: {text}");
    assert!(
        text.contains("configuration ok") && text.contains("alpha") && text.contains("beta"),
        "{text}"
    );
}

#[test]
fn files_that_cannot_be_read_exit_2_naming_the_file_and_line() {
    let dir = scratch();
    let at = |name: &str| dir.path().join(name).display().to_string();
    fs::write(dir.path().join("a.conf"), "[www]\nuser = a\ninclude = b.conf\n").unwrap();
    fs::write(dir.path().join("b.conf"), "; b\ninclude = a.conf\n").unwrap();
    fs::write(dir.path().join("bad.conf"), "[www]\nuser = a\nlisten\n").unwrap();
    fs::write(dir.path().join("quote.conf"), "[www]\nuser = \"a\n").unwrap();
    let table = [
        (at("missing.conf"), format!("{}: cannot read it", at("missing.conf"))),
        (
            at("a.conf"),
            format!("{}:2: includes {}, which is already being read", at("b.conf"), at("a.conf")),
        ),
        (at("bad.conf"), format!("{}:3: not `key = value`", at("bad.conf"))),
        (at("quote.conf"), format!("{}:2: a quote that is not closed", at("quote.conf"))),
    ];
    for (file, want) in table {
        let output = import(&[&file]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{file}: {stderr}");
        assert!(stderr.contains(&want), "{file}: {stderr:?} lacks {want:?}");
        assert!(output.stdout.is_empty(), "{file}: a config was written on a failure");
    }
    let output = import(&[]);
    assert_eq!(output.status.code(), Some(2), "no file: {output:?}");
}
