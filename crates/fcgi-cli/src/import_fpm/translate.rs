//! From FPM's `[global]` and pools ([`Fpm`]) to the text of an fcgi-rs config file: pure, so
//! that each directive's translation is a row of a table in the tests.
//!
//! The output is a file with pools: `[global]`'s options first (they are all of the kind
//! fcgi-rs shares between the master and every pool), then a `[NAME]` section per pool with
//! `app = exec` and the `exec` line (php-cgi and a `-d` per `php_value`, `php_flag` and their
//! admin kinds), then the pool's other directives in FPM's order. A directive with no fcgi-rs
//! option, or with a value that cannot be one, is a comment that quotes its line and says why:
//! nothing is dropped without a word. Of a directive set twice, FPM takes the last; the earlier
//! ones are comments.

use std::collections::HashMap;
use std::net::IpAddr;

use super::load::{Entry, Fpm, Pool};

/// What the translation needs besides FPM's files.
#[derive(Clone, Debug)]
pub(crate) struct Options {
    /// The php-cgi every pool runs: the first word of its `exec` line.
    pub(crate) php_cgi: String,
    /// The prefix PHP-FPM ran with (its `--prefix`), against which it reads relative paths
    /// where a pool sets no `prefix` of its own.
    pub(crate) prefix: Option<String>,
}

/// One line of the output.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Out {
    /// `name = value`.
    Set(&'static str, String),
    /// `# text`.
    Note(String),
    /// `[NAME]`.
    Section(String),
}

/// FPM's `pm`, as a pool's other directives depend on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Pm {
    /// `pm = static`, and FPM's default.
    Static,
    /// `pm = dynamic`: the spare bounds apply.
    Dynamic,
    /// `pm = ondemand`: the idle timeout applies.
    OnDemand,
}

/// What a pool's directives need to know of the others (the last of each, as FPM reads them).
#[derive(Debug)]
struct Context<'a> {
    /// The process model the pool's `pm` names.
    pm: Pm,
    /// Some `listen` is TCP, so that `listen.allowed_clients` filters something.
    tcp: bool,
    /// `listen.owner` and `listen.group`, which make one `socket-owner`.
    owner: Option<&'a str>,
    group: Option<&'a str>,
    /// What relative paths are read from: the pool's `prefix` (itself against the global
    /// prefix when relative), else the global prefix, if known.
    prefix: Option<String>,
}

/// The config file for `fpm`: a comment naming its files, `[global]`'s options, the pools.
pub(crate) fn translate(fpm: &Fpm, options: &Options) -> String {
    let mut text = String::new();
    let files: Vec<String> = fpm.files.iter().map(|f| f.display().to_string()).collect();
    text +=
        &format!("# fcgi-rs config from PHP-FPM's, by `fcgi import-fpm`: {}\n", files.join(", "));
    text +=
        "# Check it with `fcgi serve --config FILE --check`; each comment below quotes an FPM\n";
    text += "# line that has no fcgi-rs option, and says why.\n";
    for include in &fpm.includes {
        let read: Vec<String> = include.matched.iter().map(|f| f.display().to_string()).collect();
        let what = if read.is_empty() {
            "matches no file (FPM warns and goes on)".to_owned()
        } else {
            format!("read {}", read.join(", "))
        };
        text +=
            &format!("# {} ({}:{}): {what}\n", include.raw, include.file.display(), include.line);
    }
    if !fpm.global.is_empty() {
        text += "\n# [global]\n";
        for (entry, later) in last_of_each(&fpm.global) {
            let lines = match later {
                Some(later) => vec![set_again(entry, later)],
                None => global_entry(entry),
            };
            render(&mut text, &lines);
        }
    }
    if fpm.pools.is_empty() {
        text += "\n# No pool: FPM starts none, and fcgi-rs needs a section per pool.\n";
    }
    for pool in &fpm.pools {
        text += "\n";
        render(&mut text, &pool_section(pool, options));
    }
    text
}

/// Appends `lines` to `text`, one line each whatever they hold: a value with a control
/// character (a line break from an environment variable) would start a line of its own, an
/// option FPM never set, so it is not written; notes and names show such characters escaped.
fn render(text: &mut String, lines: &[Out]) {
    let shown = |s: &str| {
        let mut out = String::with_capacity(s.len());
        for c in s.chars() {
            if c.is_control() {
                out.extend(c.escape_default());
            } else {
                out.push(c);
            }
        }
        out
    };
    for line in lines {
        match line {
            Out::Set(name, value) if value.chars().any(char::is_control) => {
                *text += &format!("# {name} = {} -- {}\n", shown(value), CONTROL_CHARACTER);
            }
            Out::Set(name, value) => *text += &format!("{name} = {value}\n"),
            Out::Note(note) => *text += &format!("# {}\n", shown(note)),
            Out::Section(name) => *text += &format!("[{}]\n", shown(name)),
        }
    }
}

/// Why a value with a control character is left out.
const CONTROL_CHARACTER: &str =
    "a control character (a line break) cannot be written in an fcgi-rs config file";

/// The entries in order, each with the later entry of the same directive if there is one:
/// FPM takes the last (a key ending in `[]` is a list: each counts).
fn last_of_each(entries: &[Entry]) -> Vec<(&Entry, Option<&Entry>)> {
    let key = |e: &Entry| e.key.to_ascii_lowercase().replace(char::is_whitespace, "");
    let mut last: HashMap<String, usize> = HashMap::new();
    for (index, entry) in entries.iter().enumerate() {
        last.insert(key(entry), index);
    }
    entries
        .iter()
        .enumerate()
        .map(|(index, entry)| {
            let key = key(entry);
            let later = last[&key];
            (entry, (later != index && !key.ends_with("[]")).then(|| &entries[later]))
        })
        .collect()
}

/// The comment of an entry that a later one replaces.
fn set_again(entry: &Entry, later: &Entry) -> Out {
    let at = if later.file == entry.file {
        format!("line {}", later.line)
    } else {
        format!("{}:{}", later.file.display(), later.line)
    };
    skip(entry, &format!("set again at {at}, and the last one counts"))
}

/// The comment of an entry with no fcgi-rs option.
fn skip(entry: &Entry, why: &str) -> Out {
    Out::Note(format!("{} -- {why}", entry.raw))
}

/// `name = value` for `entry`, or the comment that says why the value cannot be written in an
/// fcgi-rs config file.
fn set(entry: &Entry, name: &'static str, value: &str) -> Out {
    match unwritable(value) {
        Some(why) => skip(entry, why),
        None => Out::Set(name, value.to_owned()),
    }
}

/// Why `value` cannot be an option's value in an fcgi-rs config file, if it cannot.
fn unwritable(value: &str) -> Option<&'static str> {
    if value.is_empty() {
        return Some("empty: FPM's default applies");
    }
    if value.trim() != value {
        return Some("white space at its ends cannot be written in an fcgi-rs config file");
    }
    let hash_starts_comment = value
        .char_indices()
        .any(|(at, c)| c == '#' && value[..at].chars().next_back().is_none_or(char::is_whitespace));
    if hash_starts_comment {
        return Some("a `#` after white space starts a comment in an fcgi-rs config file");
    }
    if value == "true" || value == "false" {
        return Some("true and false are a flag's values in an fcgi-rs config file");
    }
    if value.chars().any(char::is_control) {
        return Some(CONTROL_CHARACTER);
    }
    None
}

/// A count: digits only, as FPM's integers.
fn count(value: &str) -> Option<u64> {
    value.bytes().all(|b| b.is_ascii_digit()).then(|| value.parse().ok()).flatten()
}

/// Seconds from FPM's time: digits with an optional unit, `s` (the default), `m`, `h`, `d`.
fn seconds(value: &str) -> Option<u64> {
    let (number, unit) = match value.char_indices().last() {
        Some((at, c)) if c.is_ascii_alphabetic() => (&value[..at], c),
        _ => (value, 's'),
    };
    let factor = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86_400,
        _ => return None,
    };
    count(number)?.checked_mul(factor)
}

/// A `[global]` directive.
fn global_entry(entry: &Entry) -> Vec<Out> {
    let value = entry.value.as_str();
    let out = match entry.key.to_ascii_lowercase().as_str() {
        "pid" => set(entry, "pid-file", value),
        "error_log" if value == "syslog" => skip(
            entry,
            "fcgi-rs does not log to syslog: standard error (the journal, under systemd), or \
             log-file = FILE",
        ),
        "error_log" => set(entry, "log-file", value),
        "log_level" => match value.to_ascii_lowercase().as_str() {
            // fcgi-rs has no level above error.
            "alert" | "error" => Out::Set("log-level", "error".into()),
            "warning" => Out::Set("log-level", "warning".into()),
            "notice" => Out::Set("log-level", "info".into()),
            "debug" => Out::Set("log-level", "debug".into()),
            _ => skip(entry, "not alert, error, warning, notice or debug: FPM refuses it"),
        },
        "process_control_timeout" => match seconds(value) {
            Some(0) => skip(
                entry,
                "FPM's 0 waits with no limit; fcgi-rs waits graceful-timeout (30 s unless set)",
            ),
            Some(secs) => Out::Set("graceful-timeout", secs.to_string()),
            None => skip(entry, "not a time (N, Ns, Nm, Nh, Nd): FPM refuses it"),
        },
        key => skip(entry, global_unmapped(key)),
    };
    vec![out]
}

/// Why a `[global]` directive has no fcgi-rs option.
fn global_unmapped(key: &str) -> &'static str {
    match key {
        "emergency_restart_threshold" | "emergency_restart_interval" => {
            "none: fcgi-rs restarts php-cgi with a back-off, and systemd restarts fcgi-rs"
        }
        "daemonize" => "none: fcgi-rs runs in the foreground (Type=notify under systemd)",
        "process.max" => "none across pools: each pool's max-workers (or workers) bounds its own",
        "process.priority" => "Nice= in the unit",
        "rlimit_files" | "rlimit_core" => {
            "the master's own limit: LimitNOFILE= or LimitCORE= in the unit (a pool's \
             rlimit_files and rlimit_core are rlimit-nofile and rlimit-core)"
        }
        "syslog.facility" | "syslog.ident" => {
            "none: fcgi-rs logs to standard error (the journal, under systemd) or log-file"
        }
        "log_limit" | "log_buffering" => "none: each log line is written whole, as it comes",
        "events.mechanism" => "none: fcgi-rs uses epoll",
        "systemd_interval" => "none: fcgi-rs tells systemd when it is ready, reloads and stops",
        key if is_pool_directive(key) => "a pool directive outside a pool: FPM refuses it",
        _ => "not a PHP-FPM [global] directive",
    }
}

/// Whether `key` is one of FPM's pool directives (with `[...]`, of the kinds that have one).
fn is_pool_directive(key: &str) -> bool {
    const POOL: &[&str] = &[
        "prefix",
        "user",
        "group",
        "listen",
        "listen.backlog",
        "listen.owner",
        "listen.group",
        "listen.mode",
        "listen.acl_users",
        "listen.acl_groups",
        "listen.allowed_clients",
        "listen.setfib",
        "process.priority",
        "process.dumpable",
        "pm",
        "pm.max_children",
        "pm.start_servers",
        "pm.min_spare_servers",
        "pm.max_spare_servers",
        "pm.max_spawn_rate",
        "pm.process_idle_timeout",
        "pm.max_requests",
        "pm.status_path",
        "pm.status_listen",
        "ping.path",
        "ping.response",
        "access.log",
        "access.format",
        "slowlog",
        "request_slowlog_timeout",
        "request_slowlog_trace_depth",
        "request_terminate_timeout",
        "request_terminate_timeout_track_finished",
        "rlimit_files",
        "rlimit_core",
        "chroot",
        "chdir",
        "catch_workers_output",
        "decorate_workers_output",
        "clear_env",
        "security.limit_extensions",
        "apparmor_hat",
    ];
    let kind = key.split('[').next().unwrap_or(key);
    POOL.contains(&key)
        || (key.contains('[')
            && [
                "env",
                "php_value",
                "php_flag",
                "php_admin_value",
                "php_admin_flag",
                "access.suppress_path",
            ]
            .contains(&kind))
}

/// `name[inner]` (white space around `inner` dropped): `(name, inner)`.
fn indexed(key: &str) -> Option<(&str, &str)> {
    let (name, rest) = key.split_once('[')?;
    let inner = rest.strip_suffix(']')?;
    Some((name.trim(), inner.trim()))
}

/// The kinds of `php_*[NAME]` that become `-d NAME=VALUE`.
const PHP_INI: &[&str] = &["php_value", "php_flag", "php_admin_value", "php_admin_flag"];

/// A pool's section: its header, `app`, `exec`, then its directives.
fn pool_section(pool: &Pool, options: &Options) -> Vec<Out> {
    let entries = last_of_each(&pool.entries);
    let last = |name: &str| {
        entries
            .iter()
            .rev()
            .find(|(e, later)| later.is_none() && e.key.eq_ignore_ascii_case(name))
            .map(|(e, _)| e.value.as_str())
            .filter(|v| !v.is_empty())
    };
    let pm = match last("pm") {
        Some(v) if v.eq_ignore_ascii_case("dynamic") => Pm::Dynamic,
        Some(v) if v.eq_ignore_ascii_case("ondemand") => Pm::OnDemand,
        _ => Pm::Static,
    };
    let context = Context {
        pm,
        tcp: last("listen")
            .is_some_and(|v| listen_addr(v).is_ok_and(|(a, _)| a.starts_with("tcp:"))),
        owner: last("listen.owner"),
        group: last("listen.group"),
        prefix: match last("prefix") {
            Some(own) if own.starts_with('/') => Some(own.to_owned()),
            Some(own) => options.prefix.as_deref().map(|global| join(global, own)),
            None => options.prefix.clone(),
        },
    };

    let mut out =
        vec![Out::Note(format!("[{}]: {}, line {}", pool.name, pool.file.display(), pool.line))];
    let name = section_name(&pool.name);
    out.push(Out::Section(name.clone()));
    if name != pool.name {
        out.push(Out::Note(format!(
            "FPM's pool name {:?} is not letters, digits, `-`, `_` and `.`: renamed",
            pool.name
        )));
        out.push(match unwritable(&pool.name) {
            Some(why) => Out::Note(format!("pool-name: {why}")),
            None => Out::Set("pool-name", pool.name.clone()),
        });
    }
    out.push(Out::Set("app", "exec".into()));
    let mut exec = vec![quote_word(&options.php_cgi)];
    let mut admin = false;
    for (entry, later) in &entries {
        if later.is_some() {
            continue;
        }
        if let Some((kind, name)) = indexed(&entry.key) {
            if PHP_INI.contains(&kind.to_ascii_lowercase().as_str()) && !name.is_empty() {
                if let Some(arg) = define(name, &entry.value) {
                    exec.push("-d".into());
                    exec.push(quote_word(&arg));
                    admin |= kind.to_ascii_lowercase().starts_with("php_admin");
                }
            }
        }
    }
    out.push(Out::Set("exec", exec.join(" ")));
    if admin {
        out.push(Out::Note(
            "php_admin_value and php_admin_flag are -d too: a script may change them with \
             ini_set() where the directive allows it, which FPM forbids"
                .into(),
        ));
    }
    if last("listen").is_none() {
        out.push(Out::Note(
            "no listen: FPM refuses such a pool; fcgi-rs serves the sockets systemd passes \
             (or fd 0)"
                .into(),
        ));
    }
    let mut owner_done = false;
    for (entry, later) in &entries {
        match later {
            Some(later) => out.push(set_again(entry, later)),
            None => out.extend(pool_entry(entry, &context, &mut owner_done)),
        }
    }
    out
}

/// `name` as an fcgi-rs section name: letters, digits, `-`, `_` and `.`; others become `-`.
fn section_name(name: &str) -> String {
    name.chars()
        .map(|c| if c.is_ascii_alphanumeric() || "-_.".contains(c) { c } else { '-' })
        .collect()
}

/// `NAME=VALUE` for php-cgi's `-d`, or `None` if php-cgi would read it otherwise. php-cgi reads
/// `-d` as an ini line, so a `;` would start a comment there: such a value is quoted.
fn define(name: &str, value: &str) -> Option<String> {
    if !value.contains(';') {
        return Some(format!("{name}={value}"));
    }
    (!value.contains(['"', '\\'])).then(|| format!("{name}=\"{value}\""))
}

/// `word` as fcgi-rs splits the `exec` line back (`fcgi_exec::split_words`): bare if it is
/// plain, else in single quotes. A `'` is written `'\''` and a `#` `'\#'`, so that no `#` of
/// the line follows white space (the config file would end the line there).
fn quote_word(word: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "-_./=:,+@%^".contains(c);
    if !word.is_empty() && word.chars().all(plain) {
        return word.to_owned();
    }
    let mut quoted = String::from("'");
    for c in word.chars() {
        match c {
            '\'' => quoted += "'\\''",
            '#' => quoted += "'\\#'",
            c => quoted.push(c),
        }
    }
    quoted.push('\'');
    quoted
}

/// FPM's `listen` as fcgi-rs spells it, and whether it is FPM's "every address" (a bare port,
/// `*:PORT`), which fcgi-rs writes as IPv4's.
fn listen_addr(value: &str) -> Result<(String, bool), &'static str> {
    let bad_port = "not a port from 0 to 65535: FPM refuses it";
    // FPM's rule: a `:` makes it TCP, and so do digits alone; anything else is a socket's path.
    if let Some((host, port)) = value.rsplit_once(':') {
        port.parse::<u16>().map_err(|_| bad_port)?;
        return match host {
            "" | "*" => Ok((format!("tcp:0.0.0.0:{port}"), true)),
            _ => Ok((format!("tcp:{value}"), false)),
        };
    }
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        let port = value.parse::<u16>().map_err(|_| bad_port)?;
        return Ok((format!("tcp:0.0.0.0:{port}"), true));
    }
    Ok((format!("unix:{value}"), false))
}

/// `path` under `dir`.
fn join(dir: &str, path: &str) -> String {
    format!("{}/{path}", dir.trim_end_matches('/'))
}

/// A path FPM reads: as written when absolute, else under the pool's prefix (FPM's rule); the
/// comment for `entry` when that prefix is not known.
fn fpm_path(entry: &Entry, path: &str, context: &Context<'_>) -> Result<String, Out> {
    if path.starts_with('/') || path.is_empty() {
        return Ok(path.to_owned());
    }
    match &context.prefix {
        Some(prefix) => Ok(join(prefix, path)),
        None => Err(skip(
            entry,
            "a relative path, which PHP-FPM reads under its prefix (php-fpm --prefix, or the \
             pool's prefix): give fcgi import-fpm --prefix DIR, or write the path whole",
        )),
    }
}

/// `option = PATH` for a path FPM reads ([`fpm_path`]).
fn set_path(entry: &Entry, option: &'static str, path: &str, context: &Context<'_>) -> Out {
    fpm_path(entry, path, context).map_or_else(|note| note, |path| set(entry, option, &path))
}

/// A pool directive (the last of its kind); `owner_done`: socket-owner is written already.
fn pool_entry(entry: &Entry, context: &Context<'_>, owner_done: &mut bool) -> Vec<Out> {
    let value = entry.value.as_str();
    let key = entry.key.to_ascii_lowercase();
    let pm = context.pm;
    let not_a = |what: &str| skip(entry, &format!("not {what}: FPM refuses it"));
    let number = |name: &'static str, positive: bool| match count(value) {
        Some(0) if positive => not_a("a number above 0"),
        Some(n) => Out::Set(name, n.to_string()),
        None => not_a("a whole number"),
    };
    let time = |name: &'static str, zero: &str| match seconds(value) {
        Some(0) => skip(entry, zero),
        Some(secs) => Out::Set(name, secs.to_string()),
        None => not_a("a time (N, Ns, Nm, Nh, Nd)"),
    };
    let only = |model: &str| skip(entry, &format!("FPM reads it with pm = {model} only"));
    let out = match key.as_str() {
        "user" => set(entry, "user", value),
        "group" => set(entry, "group", value),
        "listen" => match listen_addr(value) {
            Ok((addr, every)) => {
                let line = match addr.strip_prefix("unix:") {
                    Some(path) => match fpm_path(entry, path, context) {
                        Ok(path) => set(entry, "listen", &format!("unix:{path}")),
                        Err(note) => note,
                    },
                    None => set(entry, "listen", &addr),
                };
                let mut lines = vec![line];
                if every {
                    lines.push(Out::Note(format!(
                        "{}: every IPv4 address; FPM takes IPv6 ones too where it can (listen = \
                         tcp:[::]:PORT is both, on Linux)",
                        entry.raw
                    )));
                }
                return lines;
            }
            Err(why) => skip(entry, why),
        },
        "listen.owner" | "listen.group" => {
            if std::mem::replace(owner_done, true) {
                return Vec::new();
            }
            match (context.owner, context.group) {
                (Some(user), Some(group)) => set(entry, "socket-owner", &format!("{user}:{group}")),
                (Some(user), None) => set(entry, "socket-owner", user),
                (None, Some(group)) => set(entry, "socket-owner", &format!(":{group}")),
                (None, None) => skip(entry, "empty: FPM's default applies"),
            }
        }
        "listen.mode" => {
            let octal =
                (1..=4).contains(&value.len()) && value.bytes().all(|b| (b'0'..=b'7').contains(&b));
            if octal {
                Out::Set("socket-mode", value.into())
            } else {
                not_a("an octal mode")
            }
        }
        "listen.backlog" => match value {
            "-1" => skip(
                entry,
                "-1 (the system's most) has no spelling here: fcgi-rs's default is 1024",
            ),
            _ => number("backlog", true),
        },
        "listen.allowed_clients" if !context.tcp => {
            skip(entry, "FPM applies it to TCP only, and this pool listens on no TCP address")
        }
        "listen.allowed_clients" => {
            return value
                .split(',')
                .map(str::trim)
                .filter(|ip| !ip.is_empty())
                .map(|ip| match ip.parse::<IpAddr>() {
                    Ok(ip) => Out::Set("allow", ip.to_string()),
                    Err(_) => skip(entry, &format!("{ip:?} is not an IP address: FPM refuses it")),
                })
                .collect();
        }
        "pm" => match value.to_ascii_lowercase().as_str() {
            model @ ("static" | "dynamic" | "ondemand") => Out::Set("process-model", model.into()),
            _ => not_a("static, dynamic or ondemand"),
        },
        "pm.max_children" if pm == Pm::Static => number("workers", true),
        "pm.max_children" => number("max-workers", true),
        // fcgi-rs's dynamic model starts `workers` processes, as FPM starts pm.start_servers.
        "pm.start_servers" if pm == Pm::Dynamic => number("workers", true),
        "pm.start_servers" => only("dynamic"),
        "pm.min_spare_servers" if pm == Pm::Dynamic => number("min-spare-workers", false),
        "pm.max_spare_servers" if pm == Pm::Dynamic => number("max-spare-workers", true),
        "pm.min_spare_servers" | "pm.max_spare_servers" => only("dynamic"),
        "pm.process_idle_timeout" if pm == Pm::OnDemand => {
            time("worker-idle-timeout", "0: fcgi-rs needs at least 1 second (10 unless set)")
        }
        "pm.process_idle_timeout" => only("ondemand"),
        "pm.max_requests" => number("max-requests", false),
        "pm.status_path" => set(entry, "status-path", value),
        "ping.path" => set(entry, "ping-path", value),
        "ping.response" => set(entry, "ping-response", value),
        "access.log" => set_path(entry, "access-log", value, context),
        "slowlog" => set_path(entry, "slow-log", value, context),
        "request_slowlog_timeout" => time("slow-request", "0: off, as without slow-request"),
        "request_terminate_timeout" => {
            time("request-timeout", "0: no limit, as without request-timeout")
        }
        "rlimit_files" => number("rlimit-nofile", true),
        "rlimit_core" if value == "unlimited" => {
            skip(entry, "leave it out, and set LimitCORE=infinity in the unit")
        }
        "rlimit_core" => number("rlimit-core", false),
        "chroot" => set_path(entry, "chroot", value, context),
        _ => match indexed(&entry.key) {
            Some((kind, name)) if kind.eq_ignore_ascii_case("env") && !name.is_empty() => {
                if value.strip_prefix('$') == Some(name) {
                    set(entry, "pass-env", name)
                } else {
                    skip(
                        entry,
                        &format!(
                            "pass-env keeps a variable of fcgi-rs's own environment: set \
                             Environment={name}=... in the unit, and pass-env = {name}"
                        ),
                    )
                }
            }
            Some((kind, name)) if PHP_INI.contains(&kind.to_ascii_lowercase().as_str()) => {
                if name.is_empty() {
                    skip(entry, "no directive's name in the brackets: FPM refuses it")
                } else if define(name, value).is_none() {
                    skip(entry, "a value with `;` and a quote or `\\` cannot be passed as -d")
                } else {
                    // On the exec line.
                    return Vec::new();
                }
            }
            _ => skip(entry, pool_unmapped(&key, value)),
        },
    };
    vec![out]
}

/// Why a pool directive has no fcgi-rs option.
fn pool_unmapped(key: &str, value: &str) -> &'static str {
    let off = ["", "0", "no", "off", "false"].contains(&value.to_ascii_lowercase().as_str());
    match key {
        "access.format" => {
            "access-log-format takes FPM's templates, less %C, %M, %n, %o and %{...}t, and its %r \
             holds the query (so no %Q%q): write it by hand"
        }
        "access.suppress_path[]" => "none: every request is logged",
        "listen.acl_users" | "listen.acl_groups" => {
            "none: no ACLs on the socket; socket-owner and socket-mode give it a group"
        }
        "listen.setfib" => "none (FreeBSD's routing tables)",
        "pm.max_spawn_rate" => "none: fcgi-rs starts at once what the process model calls for",
        "pm.status_listen" => {
            "none: the status page is answered on the pool's socket (keep it to operators in \
             nginx)"
        }
        "request_slowlog_trace_depth" => {
            "none: no PHP backtrace; the slow log names the php-cgi process (child_pid)"
        }
        "request_terminate_timeout_track_finished" => {
            "none: php-cgi has no fastcgi_finish_request(), so a request ends with its answer"
        }
        "chdir" => "WorkingDirectory= in the unit: php-cgi starts in fcgi-rs's directory",
        "catch_workers_output" => "always: php-cgi's output lines are program-stderr log events",
        "decorate_workers_output" => "none: the line is a field of its own, with program_pid",
        "clear_env" if off => {
            "none: the environment is always cleared; pass-env = NAME keeps a variable"
        }
        "clear_env" => "always: fcgi-rs clears the environment (pass-env = NAME keeps one)",
        "security.limit_extensions" => {
            "none: php-cgi runs any file it is given; let nginx pass only PHP files that exist \
             (try_files $fastcgi_script_name =404)"
        }
        "process.priority" => "Nice= in the unit",
        "process.dumpable" => "none",
        "apparmor_hat" => "AppArmorProfile= in the unit, for the whole service",
        "prefix" => "applied: the pool's relative paths are written under it",
        "pid"
        | "error_log"
        | "log_level"
        | "process_control_timeout"
        | "daemonize"
        | "emergency_restart_threshold"
        | "emergency_restart_interval"
        | "process.max"
        | "syslog.facility"
        | "syslog.ident"
        | "log_limit"
        | "log_buffering"
        | "events.mechanism"
        | "systemd_interval" => "a [global] directive in a pool: FPM refuses it",
        _ => "not a PHP-FPM pool directive",
    }
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::path::{Path, PathBuf};

    use super::super::load::{self, Files};
    use super::*;

    /// One file, `/etc/fpm.conf`.
    struct OneFile(String);

    impl Files for OneFile {
        fn read(&self, _: &Path) -> io::Result<String> {
            Ok(self.0.clone())
        }

        fn list(&self, _: &Path) -> io::Result<Vec<(String, bool)>> {
            Err(io::ErrorKind::NotFound.into())
        }

        fn identity(&self, path: &Path) -> PathBuf {
            path.to_owned()
        }
    }

    fn options() -> Options {
        Options { php_cgi: "/usr/bin/php-cgi".into(), prefix: None }
    }

    fn fpm(text: &str) -> Fpm {
        let env = |name: &str| (name == "PHP_DIR").then(|| "/srv/php".to_owned());
        load::load(&[PathBuf::from("/etc/fpm.conf")], &OneFile(text.to_owned()), &env).unwrap()
    }

    /// The lines of pool `[www]` (holding `text`) after `[www]`, `app` and `exec`.
    fn pool_lines(text: &str) -> Vec<String> {
        let out = translate(&fpm(&format!("[www]\n{text}\n")), &options());
        let lines: Vec<&str> = out.lines().collect();
        let at = lines.iter().position(|l| l.starts_with("exec = ")).expect("an exec line");
        lines[at + 1..]
            .iter()
            .filter(|l| !l.starts_with("# no listen"))
            .map(|l| (*l).to_owned())
            .collect()
    }

    /// Each expected line equals the output's, or, for a comment, is its start (its reason
    /// is its own business).
    #[track_caller]
    fn assert_lines(input: &str, got: &[String], want: &[&str]) {
        let same = got.len() == want.len()
            && got.iter().zip(want).all(|(g, w)| {
                if w.starts_with("# ") {
                    g.starts_with(w)
                } else {
                    g == w
                }
            });
        assert!(same, "{input:?}\n got: {got:#?}\nwant: {want:#?}");
    }

    /// Pieces of FPM files: sections, directives fcgi-rs maps and ones it does not, values
    /// quoted, unquoted and taken from the environment, and text that is not FPM's at all.
    fn fpm_piece() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        let keys = prop::sample::select(vec![
            "listen",
            "user",
            "group",
            "pm",
            "pm.max_children",
            "pm.start_servers",
            "pm.min_spare_servers",
            "pm.max_spare_servers",
            "pm.process_idle_timeout",
            "pm.max_requests",
            "pm.status_path",
            "ping.path",
            "listen.owner",
            "listen.group",
            "listen.mode",
            "listen.backlog",
            "listen.allowed_clients",
            "chroot",
            "chdir",
            "request_terminate_timeout",
            "request_slowlog_timeout",
            "slowlog",
            "access.log",
            "rlimit_files",
            "rlimit_core",
            "env[PATH]",
            "php_value[memory_limit]",
            "php_admin_flag[log_errors]",
            "clear_env",
            "include",
            "error_log",
            "log_level",
            "process_control_timeout",
            "prefix",
            "unknown.directive",
        ]);
        let values = prop_oneof![
            "[ -~]{0,24}",
            "\"[ -~]{0,16}\"",
            "'[ -~]{0,16}'",
            Just("${NEWLINE}".to_owned()),
            Just("${UNSET}x".to_owned()),
            Just("/run/$pool.sock".to_owned()),
            Just("127.0.0.1:9000".to_owned()),
            "[0-9]{1,12}[smhdkKmMgG]?",
        ];
        prop_oneof![
            "\\[[ -~]{0,12}\\]( ;[ -~]{0,8})?",
            (keys, values).prop_map(|(k, v)| format!("{k} = {v}")),
            "[^\n]{0,30}",
            Just(String::new()),
        ]
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]

        /// Whatever an FPM file holds, it is refused with a line number or translated, and a
        /// translation is lines of a config: blank, `# comment`, `[NAME]` or `name = value`,
        /// with no value that breaks its line (an environment variable holding a newline).
        #[test]
        fn any_fpm_text_gives_a_config_or_an_error(pieces in proptest::collection::vec(fpm_piece(), 0..24)) {
            let text = pieces.join("\n");
            let env = |name: &str| match name {
                "NEWLINE" => Some("a\n!not a line of a config".to_owned()),
                _ => None,
            };
            let Ok(fpm) = load::load(&[PathBuf::from("/etc/fpm.conf")], &OneFile(text.clone()), &env)
            else {
                return Ok(());
            };
            let out = translate(&fpm, &options());
            for line in out.lines() {
                let ok = line.is_empty()
                    || line.starts_with('#')
                    || (line.starts_with('[') && line.ends_with(']'))
                    || line.split_once(" = ").is_some_and(|(name, _)| {
                        !name.is_empty() && name.bytes().all(|b| b.is_ascii_lowercase() || b == b'-')
                    });
                proptest::prop_assert!(ok, "line {line:?} of\n{out}\nfrom\n{text}");
            }
        }
    }

    #[test]
    fn relative_paths_go_under_the_prefix_fpm_ran_with() {
        let options = Options { prefix: Some("/opt/php/".into()), ..options() };
        let cases = [
            ("slowlog = log/slow.log", "slow-log = /opt/php/log/slow.log"),
            ("prefix = pools/www\nslowlog = slow.log", "slow-log = /opt/php/pools/www/slow.log"),
            ("prefix = /srv\nslowlog = slow.log", "slow-log = /srv/slow.log"),
        ];
        for (text, want) in cases {
            let out = translate(&fpm(&format!("[www]\n{text}\n")), &options);
            assert!(out.lines().any(|l| l == want), "{text:?}: no {want:?} in\n{out}");
        }
    }

    #[test]
    fn pool_directives_become_options_or_comments() {
        let table: &[(&str, &[&str])] = &[
            ("user = www-data\ngroup = www-data", &["user = www-data", "group = www-data"]),
            ("listen = /run/php/php8.2-fpm.sock", &["listen = unix:/run/php/php8.2-fpm.sock"]),
            ("listen = 127.0.0.1:9000", &["listen = tcp:127.0.0.1:9000"]),
            ("listen = [::1]:9000", &["listen = tcp:[::1]:9000"]),
            ("listen = 9000", &["listen = tcp:0.0.0.0:9000", "# listen = 9000: every IPv4"]),
            ("listen = *:9000", &["listen = tcp:0.0.0.0:9000", "# listen = *:9000: every IPv4"]),
            ("listen = 127.0.0.1:99999", &["# listen = 127.0.0.1:99999 --"]),
            ("listen = /run/$pool.sock", &["listen = unix:/run/www.sock"]),
            ("listen = ${PHP_DIR}/$pool.sock", &["listen = unix:/srv/php/www.sock"]),
            ("listen.owner = www-data\nlisten.group = web", &["socket-owner = www-data:web"]),
            ("listen.group = web\nlisten.owner = www-data", &["socket-owner = www-data:web"]),
            ("listen.owner = www-data", &["socket-owner = www-data"]),
            ("listen.group = web", &["socket-owner = :web"]),
            ("listen.mode = 0660", &["socket-mode = 0660"]),
            ("listen.mode = 0990", &["# listen.mode = 0990 --"]),
            ("listen.backlog = 511", &["backlog = 511"]),
            ("listen.backlog = -1", &["# listen.backlog = -1 --"]),
            ("listen.backlog = lots", &["# listen.backlog = lots --"]),
            (
                "listen = 127.0.0.1:9000\nlisten.allowed_clients = 127.0.0.1, ::1,bad",
                &["listen = tcp:127.0.0.1:9000", "allow = 127.0.0.1", "allow = ::1", "# listen.allowed_clients = 127.0.0.1, ::1,bad --"],
            ),
            ("listen = /s\nlisten.allowed_clients = 127.0.0.1", &["listen = unix:/s", "# listen.allowed_clients = 127.0.0.1 --"]),
            ("listen.acl_users = a", &["# listen.acl_users = a --"]),
            ("pm = static\npm.max_children = 5", &["process-model = static", "workers = 5"]),
            ("pm.max_children = 5", &["workers = 5"]),
            (
                "pm = dynamic\npm.max_children = 5\npm.start_servers = 2\npm.min_spare_servers = 1\npm.max_spare_servers = 3",
                &["process-model = dynamic", "max-workers = 5", "workers = 2", "min-spare-workers = 1", "max-spare-workers = 3"],
            ),
            (
                "pm.max_children = 5\npm = ondemand\npm.process_idle_timeout = 1m",
                &["max-workers = 5", "process-model = ondemand", "worker-idle-timeout = 60"],
            ),
            ("pm = static\npm.min_spare_servers = 1\npm.process_idle_timeout = 10s", &["process-model = static", "# pm.min_spare_servers = 1 --", "# pm.process_idle_timeout = 10s --"]),
            ("pm = ondemand\npm.process_idle_timeout = 0", &["process-model = ondemand", "# pm.process_idle_timeout = 0 --"]),
            ("pm = lazy", &["# pm = lazy --"]),
            ("pm.max_children = 0", &["# pm.max_children = 0 --"]),
            ("pm.max_children = 5x", &["# pm.max_children = 5x --"]),
            ("pm.max_requests = 500", &["max-requests = 500"]),
            ("pm.max_requests = 0", &["max-requests = 0"]),
            ("pm.max_requests = -5", &["# pm.max_requests = -5 --"]),
            ("pm.max_spawn_rate = 32", &["# pm.max_spawn_rate = 32 --"]),
            ("pm.status_path = /status\nping.path = /ping\nping.response = pong", &["status-path = /status", "ping-path = /ping", "ping-response = pong"]),
            ("pm.status_listen = 127.0.0.1:9001", &["# pm.status_listen = 127.0.0.1:9001 --"]),
            ("request_terminate_timeout = 60s", &["request-timeout = 60"]),
            ("request_terminate_timeout = 2m", &["request-timeout = 120"]),
            ("request_terminate_timeout = 1h", &["request-timeout = 3600"]),
            ("request_terminate_timeout = 1d", &["request-timeout = 86400"]),
            ("request_terminate_timeout = 30", &["request-timeout = 30"]),
            ("request_terminate_timeout = 0", &["# request_terminate_timeout = 0 --"]),
            ("request_terminate_timeout = 5ms", &["# request_terminate_timeout = 5ms --"]),
            ("request_terminate_timeout = s", &["# request_terminate_timeout = s --"]),
            ("request_slowlog_timeout = 5s\nslowlog = /var/log/$pool.slow", &["slow-request = 5", "slow-log = /var/log/www.slow"]),
            ("request_slowlog_timeout = 0", &["# request_slowlog_timeout = 0 --"]),
            ("access.log = /var/log/$pool.access.log", &["access-log = /var/log/www.access.log"]),
            ("access.format = \"%R - %u %t\"", &["# access.format = \"%R - %u %t\" --"]),
            ("rlimit_files = 1024\nrlimit_core = 0", &["rlimit-nofile = 1024", "rlimit-core = 0"]),
            ("rlimit_core = unlimited", &["# rlimit_core = unlimited --"]),
            ("chroot = /srv/jail", &["chroot = /srv/jail"]),
            // Relative paths: under the pool's prefix (FPM's rule); without one, a comment.
            ("prefix = /srv/app\nslowlog = log/slow.log", &["# prefix = /srv/app --", "slow-log = /srv/app/log/slow.log"]),
            ("prefix = /srv/app/\nlisten = run/php.sock", &["# prefix = /srv/app/ --", "listen = unix:/srv/app/run/php.sock"]),
            ("prefix = /srv/app\naccess.log = /var/log/a.log", &["# prefix = /srv/app --", "access-log = /var/log/a.log"]),
            ("slowlog = log/slow.log", &["# slowlog = log/slow.log -- a relative path"]),
            ("listen = php.sock", &["# listen = php.sock -- a relative path"]),
            ("user = www-data\nchroot = /srv/jail", &["user = www-data", "chroot = /srv/jail"]),
            ("chdir = /", &["# chdir = / --"]),
            ("env[PATH] = $PATH\nenv[TMP] = /tmp\nenv[HOME] = $USER_HOME", &["pass-env = PATH", "# env[TMP] = /tmp --", "# env[HOME] = $USER_HOME --"]),
            ("catch_workers_output = yes\nclear_env = no\nsecurity.limit_extensions = .php", &["# catch_workers_output = yes --", "# clear_env = no --", "# security.limit_extensions = .php --"]),
            ("php_value[memory_limit] = 64M\nphp_flag[display_errors] = off", &[]),
            ("php_value = 1\nphp_value[] = 2", &["# php_value = 1 --", "# php_value[] = 2 --"]),
            ("pm.max_children = 4\npm.max_children = 6", &["# pm.max_children = 4 -- set again at line 3", "workers = 6"]),
            ("access.suppress_path[] = /ping\naccess.suppress_path[] = /health", &["# access.suppress_path[] = /ping --", "# access.suppress_path[] = /health --"]),
            ("pid = /run/x.pid", &["# pid = /run/x.pid -- a [global] directive in a pool"]),
            ("no.such.thing = 1", &["# no.such.thing = 1 -- not a PHP-FPM pool directive"]),
            ("ping.response = \"a #b\"", &["# ping.response = \"a #b\" --"]),
            ("ping.response = \" pong\"", &["# ping.response = \" pong\" --"]),
            ("ping.response = true", &["# ping.response = true --"]),
            ("ping.path =", &["# ping.path = --"]),
        ];
        for (input, want) in table {
            assert_lines(input, &pool_lines(input), want);
        }
    }

    #[test]
    fn global_directives_become_shared_options_or_comments() {
        let table: &[(&str, &[&str])] = &[
            ("pid = /run/php/php8.2-fpm.pid", &["pid-file = /run/php/php8.2-fpm.pid"]),
            ("error_log = /var/log/php8.2-fpm.log", &["log-file = /var/log/php8.2-fpm.log"]),
            ("error_log = syslog", &["# error_log = syslog --"]),
            ("log_level = alert", &["log-level = error"]),
            ("log_level = error", &["log-level = error"]),
            ("log_level = warning", &["log-level = warning"]),
            ("log_level = notice", &["log-level = info"]),
            ("log_level = debug", &["log-level = debug"]),
            ("log_level = loud", &["# log_level = loud --"]),
            ("process_control_timeout = 10s", &["graceful-timeout = 10"]),
            ("process_control_timeout = 2m", &["graceful-timeout = 120"]),
            ("process_control_timeout = 0", &["# process_control_timeout = 0 --"]),
            ("process_control_timeout = soon", &["# process_control_timeout = soon --"]),
            ("emergency_restart_threshold = 10", &["# emergency_restart_threshold = 10 --"]),
            ("daemonize = no", &["# daemonize = no --"]),
            ("rlimit_files = 1024", &["# rlimit_files = 1024 --"]),
            ("user = www-data", &["# user = www-data -- a pool directive outside a pool"]),
            ("php_value[x] = 1", &["# php_value[x] = 1 -- a pool directive outside a pool"]),
            ("what = 1", &["# what = 1 -- not a PHP-FPM [global] directive"]),
            ("pid = /a\npid = /b", &["# pid = /a -- set again at line 3", "pid-file = /b"]),
        ];
        for (input, want) in table {
            let out = translate(&fpm(&format!("[global]\n{input}\n")), &options());
            let lines: Vec<String> = out
                .lines()
                .skip_while(|l| *l != "# [global]")
                .skip(1)
                .take_while(|l| !l.is_empty() && !l.starts_with("# No pool"))
                .map(str::to_owned)
                .collect();
            assert_lines(input, &lines, want);
        }
    }

    #[test]
    fn php_values_become_d_arguments_that_split_back() {
        let text = "[www]\nphp_value[memory_limit] = 64M\nphp_admin_value[error_log] = \"/var/log/fpm php.log\"\n\
                    php_flag[display_errors] = off\nphp_admin_flag[log_errors] = on\n\
                    php_value[include_path] = \".:/usr/share/php\"\nphp_value[x] = \"it's #1; ok\"\n\
                    php_value[memory_limit] = 128M\n";
        let out =
            translate(&fpm(text), &Options { php_cgi: "/opt/php 8/php-cgi".into(), prefix: None });
        let exec = out.lines().find_map(|l| l.strip_prefix("exec = ")).expect("an exec line");
        let words = fcgi_exec::split_words(exec).unwrap();
        assert_eq!(
            words,
            [
                "/opt/php 8/php-cgi",
                "-d",
                "error_log=/var/log/fpm php.log",
                "-d",
                "display_errors=off",
                "-d",
                "log_errors=on",
                "-d",
                "include_path=.:/usr/share/php",
                "-d",
                "x=\"it's #1; ok\"",
                "-d",
                "memory_limit=128M",
            ]
        );
        // The config file would end the line at a `#` after white space.
        let cut = exec
            .char_indices()
            .any(|(at, c)| c == '#' && exec[..at].ends_with(char::is_whitespace));
        assert!(!cut, "{exec}");
        assert!(out.contains("# php_value[memory_limit] = 64M -- set again at line 8"), "{out}");
        assert!(out.contains("# php_admin_value and php_admin_flag are -d too"), "{out}");
    }

    #[test]
    fn words_are_quoted_so_that_they_split_back() {
        let table = [
            "plain",
            "a b",
            "it's",
            "#x",
            "a #b",
            "$HOME",
            "back\\slash",
            "\"q\"",
            "",
            "tab\there",
        ];
        for word in table {
            let line = format!("php-cgi {}", quote_word(word));
            assert_eq!(fcgi_exec::split_words(&line).unwrap(), ["php-cgi", word], "{line}");
        }
        assert_eq!(quote_word("memory_limit=64M"), "memory_limit=64M");
    }

    #[test]
    fn the_output_names_its_files_and_puts_shared_options_before_pools() {
        let text =
            "[www]\nlisten = /run/www.sock\n[global]\npid = /run/fpm.pid\n[api]\nlisten = 9001\n";
        let out = translate(&fpm(text), &options());
        let lines: Vec<&str> = out.lines().collect();
        assert!(lines[0].starts_with("# ") && lines[0].ends_with("/etc/fpm.conf"), "{out}");
        let at = |want: &str| {
            lines.iter().position(|l| *l == want).unwrap_or_else(|| panic!("no {want:?} in\n{out}"))
        };
        assert!(at("pid-file = /run/fpm.pid") < at("[www]"));
        assert!(at("[www]") < at("[api]"));
        assert_eq!(
            lines[at("[www]") + 1..at("[www]") + 3],
            ["app = exec", "exec = /usr/bin/php-cgi"]
        );
        // Every line is a comment, blank, a section, or `name = value`.
        for line in &lines {
            let ok = line.is_empty()
                || line.starts_with("# ")
                || line.starts_with('[')
                || line.contains(" = ");
            assert!(ok, "{line:?} in\n{out}");
        }
    }

    #[test]
    fn a_pool_named_as_fcgi_rs_cannot_is_renamed_and_keeps_its_name_on_the_status_page() {
        let out = translate(&fpm("[my pool]\nlisten = /s\n"), &options());
        assert!(out.contains("\n[my-pool]\n"), "{out}");
        assert!(out.contains("\npool-name = my pool\n"), "{out}");
        let out = translate(&fpm("pid = /p\n"), &options());
        assert!(out.contains("# No pool"), "{out}");
    }
}
