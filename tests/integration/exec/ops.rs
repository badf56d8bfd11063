//! `fcgi serve --app exec -- php-cgi` as an operator runs it: HUP reloads under POSTs through
//! nginx (plain and kept connections) and with an invalid config, a graceful TERM, SIGKILL of
//! the master or of its worker (no php-cgi outlives fcgi-rs), a killed program process
//! replaced, `--check`, `--rlimit-nofile`, and the programs' stderr in the JSON log.
//!
//! The program processes are read from the status page (`?full&json`) and from /proc; what
//! fcgi-rs did, from its `--log-format json` fields. The scale of the processes is
//! tests/integration/exec/scale.rs.

use std::fs;
use std::path::Path;
use std::process::Command;
use std::thread;
use std::time::Duration;

use fcgi_tests::master::{alive, signal};
use fcgi_tests::nginx::{scratch, Site};
use fcgi_tests::php_cgi::{
    self, is_php_cgi, md5_hex, number, Answer, PhpExec, PHP_CGI, SCRIPT_URI,
};
use fcgi_tests::process::{fcgi_bin, wait_until};
use fcgi_tests::wrk::Wrk;
use serde_json::Value;

/// How long program processes may take to start, stop or be replaced.
const SETTLE: Duration = Duration::from_secs(10);

/// A config file as an operator writes one for `--app exec`, with `workers`.
fn write_config(path: &Path, program: &str, workers: usize, extra: &str) {
    let text = format!(
        "# php-cgi run by fcgi-rs\napp = exec\nexec = {program} -n\nworkers = {workers}\n{extra}"
    );
    fs::write(path, text).expect("the config file written");
}

/// `fcgi serve --config DIR/serve.conf` (app = exec, php-cgi, `workers` processes).
fn start_with_config(dir: &Path, workers: usize) -> (PhpExec, std::path::PathBuf) {
    let config = dir.join("serve.conf");
    write_config(&config, PHP_CGI, workers, "");
    let config_arg = config.display().to_string();
    let exec = PhpExec::start(dir, "fcgi", &["--config", &config_arg], false);
    (exec, config)
}

/// Waits until `count` program processes run, none of `old` among them and none of `old`
/// alive any more: the new pids.
fn replaced(exec: &PhpExec, old: &[u32], count: usize) -> Option<Vec<u32>> {
    let mut now = Vec::new();
    let done = wait_until(SETTLE, || {
        now = exec.programs();
        now.len() == count
            && now.iter().all(|pid| !old.contains(pid))
            && old.iter().all(|&pid| !is_php_cgi(pid))
    });
    done.then_some(now)
}

/// The script `times` times, one request after another: each answer, or the first failure.
fn serve_in_turn(exec: &PhpExec, times: usize) -> Vec<Answer> {
    (0..times)
        .map(|i| {
            let answer = exec
                .request("", b"")
                .unwrap_or_else(|e| panic!("request {i} failed: {e}\n{}", exec.served.log_text()));
            assert_eq!(answer.status, 200, "request {i}: {answer:?}");
            answer
        })
        .collect()
}

/// Reloads three times under POSTs through nginx's `site`: no request fails, and each HUP
/// replaces the worker and every program process.
fn posts_through_reloads(site: Site) {
    let dir = scratch();
    let (exec, _config) = start_with_config(dir.path(), 3);
    let mut programs = exec.wait_programs(3, 3, SETTLE).expect("3 programs at start");
    let nginx = exec.nginx(dir.path(), site, "");
    let wrk = Wrk::post(nginx.port(), 16, 12, SCRIPT_URI, dir.path());
    let master = exec.served.pid();
    for round in 1..=3 {
        assert!(nginx.wait_requests(300, SETTLE), "no load through nginx: {}", nginx.error_log());
        let worker = exec.worker().expect("a worker");
        // php-cgi leaves by itself after 500 requests (PHP_FCGI_MAX_REQUESTS): the pids of now.
        let before = exec.programs();
        signal(master, libc::SIGHUP);
        let after = replaced(&exec, &before, 3).unwrap_or_else(|| {
            panic!("HUP {round}: {before:?} not replaced:\n{}", exec.served.log_text())
        });
        assert!(
            wait_until(SETTLE, || !alive(worker) && exec.worker() != Some(worker)),
            "HUP {round}: the old worker {worker} did not go:\n{}",
            exec.served.log_text()
        );
        assert!(programs.iter().all(|&pid| !is_php_cgi(pid)), "HUP {round}: {programs:?} live on");
        programs = after;
    }
    let wrk = wrk.join().expect("wrk thread");
    assert_eq!(wrk.failures(), 0, "{}\nnginx: {}", wrk.output, nginx.error_log());
    assert!(wrk.requests() >= 1_000, "too few requests:\n{}", wrk.output);

    // The new processes run the script whole.
    let body: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let response = nginx.post(SCRIPT_URI, "application/octet-stream", &body).expect("POST");
    let answer = Answer::of_http(&response).expect("the script's answer");
    assert_eq!((answer.status, answer.len), (200, body.len()), "{answer:?}");
    assert_eq!(answer.md5, md5_hex(&body));
    // Started by the worker of now (it may have exited since, at its 500th request).
    let worker = exec.worker().expect("a worker");
    let started = exec.events("program-started");
    let by = started.iter().find(|e| e["program_pid"] == answer.pid).map(|e| e["pid"].clone());
    assert_eq!(by, Some(worker.into()), "{answer:?} is not a program of worker {worker}");
    eprintln!("{site:?}: {} POSTs through 3 HUPs, 0 failures", wrk.requests());
}

/// fcgi-rs serving with 3 php-cgi processes, once all 3 run, and their pids (the directory
/// lives as long as the server must); `None` without php-cgi.
fn three_programs() -> Option<(tempfile::TempDir, PhpExec, Vec<u32>)> {
    if !php_cgi::installed() {
        return None;
    }
    let dir = scratch();
    let exec = PhpExec::start(dir.path(), "fcgi", &["--workers", "3"], true);
    let programs = exec.wait_programs(3, 3, SETTLE).expect("3 programs");
    Some((dir, exec, programs))
}

#[test]
fn hup_under_posts_through_nginx_fails_none_and_replaces_every_program() {
    if php_cgi::installed() {
        posts_through_reloads(Site::Cgi);
    }
}

#[test]
fn hup_under_posts_on_kept_nginx_connections_fails_none_and_replaces_every_program() {
    if php_cgi::installed() {
        posts_through_reloads(Site::Exec);
    }
}

/// Waits for the master's `n`th error line (`level` ERRO): its `error` field.
fn wait_reload_error(exec: &PhpExec, n: usize) -> String {
    let mut errors = Vec::new();
    let logged = wait_until(SETTLE, || {
        errors = exec
            .log_lines()
            .into_iter()
            .filter(|l| l["role"] == "master" && l["level"] == "ERRO")
            .filter_map(|l| l["error"].as_str().map(str::to_owned))
            .collect();
        errors.len() >= n
    });
    assert!(logged, "no error logged for the bad config:\n{}", exec.served.log_text());
    errors[n - 1].clone()
}

#[test]
fn an_invalid_config_on_hup_keeps_the_old_processes_serving() {
    if !php_cgi::installed() {
        return;
    }
    let dir = scratch();
    let (exec, config) = start_with_config(dir.path(), 2);
    let before = exec.wait_programs(2, 2, SETTLE).expect("2 programs at start");
    let worker = exec.worker();
    let master = exec.served.pid();

    // An unknown option, then a program that is not there: each reload is refused.
    let bad = [
        (format!("app = exec\nexec = {PHP_CGI} -n\nworkers = 3\nbogus-option = 1\n"), "bogus"),
        ("app = exec\nexec = /nonexistent/php-cgi\nworkers = 3\n".to_owned(), "/nonexistent"),
    ];
    for (n, (text, named)) in bad.iter().enumerate() {
        fs::write(&config, text).expect("config");
        signal(master, libc::SIGHUP);
        let error = wait_reload_error(&exec, n + 1);
        assert!(error.contains(named), "the error does not name {named:?}: {error}");
        assert_eq!(exec.worker(), worker, "the worker changed:\n{}", exec.served.log_text());
        assert_eq!(exec.programs(), before, "the programs changed:\n{}", exec.served.log_text());
        for answer in serve_in_turn(&exec, 5) {
            assert!(before.contains(&answer.pid), "{answer:?} is not one of {before:?}");
        }
    }

    // Fixed, the next HUP takes it: 3 new processes.
    write_config(&config, PHP_CGI, 3, "");
    signal(master, libc::SIGHUP);
    let after = replaced(&exec, &before, 3)
        .unwrap_or_else(|| panic!("not replaced after the fix:\n{}", exec.served.log_text()));
    for answer in serve_in_turn(&exec, 5) {
        assert!(after.contains(&answer.pid), "{answer:?} is not one of {after:?}");
    }
}

#[test]
fn term_lets_a_running_slow_request_finish_then_no_program_remains() {
    if !php_cgi::installed() {
        return;
    }
    let dir = scratch();
    let mut exec = PhpExec::start(dir.path(), "fcgi", &["--workers", "2"], true);
    let programs = exec.wait_programs(2, 2, SETTLE).expect("2 programs");
    let worker = exec.worker().expect("a worker");
    let slow = thread::scope(|s| {
        let slow = s.spawn(|| exec.request("sleep=2000", b""));
        let running = wait_until(SETTLE, || number(&exec.status("json"), "active processes") == 1);
        assert!(running, "the slow request did not start:\n{}", exec.served.log_text());
        exec.served.process.signal(libc::SIGTERM);
        slow.join().expect("the slow request's thread")
    });
    let answer =
        slow.unwrap_or_else(|e| panic!("cut short by TERM: {e}\n{}", exec.served.log_text()));
    assert_eq!(answer.status, 200, "{answer:?}");
    assert!(programs.contains(&answer.pid), "{answer:?}");

    let status = exec.served.process.wait_exit(SETTLE);
    assert!(status.is_some_and(|s| s.success()), "{status:?}:\n{}", exec.served.log_text());
    assert!(!alive(worker), "the worker {worker} outlived the master");
    let left: Vec<u32> = programs.iter().copied().filter(|&pid| is_php_cgi(pid)).collect();
    assert!(left.is_empty(), "php-cgi {left:?} outlived fcgi-rs");
    // Each program's stop and end are logged.
    let exited: Vec<u64> =
        exec.events("program-exited").iter().filter_map(|e| e["program_pid"].as_u64()).collect();
    for &pid in &programs {
        assert!(exited.contains(&u64::from(pid)), "no program-exited for {pid}: {exited:?}");
    }
    assert_eq!(stop_reasons(&exec, &programs), vec![Some("stop".to_owned()); 2]);
}

/// The `reason` of each pid's `program-stopped` event, in the order of `pids`.
fn stop_reasons(exec: &PhpExec, pids: &[u32]) -> Vec<Option<String>> {
    let stopped = exec.events("program-stopped");
    pids.iter()
        .map(|&pid| {
            let event = stopped.iter().find(|e| e["program_pid"] == pid)?;
            event["reason"].as_str().map(str::to_owned)
        })
        .collect()
}

#[test]
fn each_program_a_hup_replaces_is_logged_stopped() {
    if !php_cgi::installed() {
        return;
    }
    let dir = scratch();
    let (exec, _config) = start_with_config(dir.path(), 2);
    let before = exec.wait_programs(2, 2, SETTLE).expect("2 programs at start");
    signal(exec.served.pid(), libc::SIGHUP);
    replaced(&exec, &before, 2).expect("replaced");
    let logged = wait_until(SETTLE, || stop_reasons(&exec, &before).iter().all(Option::is_some));
    assert!(logged, "no program-stopped for {before:?}:\n{}", exec.served.log_text());
    // A reload replaces the serving worker whole: the old one stops its programs as at any
    // stop of its own, after their requests.
    assert_eq!(stop_reasons(&exec, &before), vec![Some("stop".to_owned()); 2]);
}

#[test]
fn sigkill_of_the_master_leaves_no_program_running() {
    let Some((_dir, exec, programs)) = three_programs() else { return };
    assert_eq!(exec.program_children(), programs, "the status page and /proc differ");
    let worker = exec.worker().expect("a worker");
    exec.served.process.signal(libc::SIGKILL);
    let gone =
        wait_until(SETTLE, || !alive(worker) && programs.iter().all(|&pid| !is_php_cgi(pid)));
    let left: Vec<u32> = programs.iter().copied().filter(|&pid| is_php_cgi(pid)).collect();
    assert!(gone, "after SIGKILL of the master: worker alive {}, php-cgi {left:?}", alive(worker));
}

#[test]
fn sigkill_of_the_worker_leaves_none_of_its_programs_and_a_new_worker_serves() {
    let Some((_dir, exec, programs)) = three_programs() else { return };
    let worker = exec.worker().expect("a worker");
    signal(worker, libc::SIGKILL);
    let gone = wait_until(SETTLE, || programs.iter().all(|&pid| !is_php_cgi(pid)));
    let left: Vec<u32> = programs.iter().copied().filter(|&pid| is_php_cgi(pid)).collect();
    assert!(gone, "php-cgi {left:?} outlived their worker {worker}");
    let respawned = wait_until(SETTLE, || exec.worker().is_some_and(|w| w != worker));
    assert!(respawned, "no new worker:\n{}", exec.served.log_text());
    let after = replaced(&exec, &programs, 3).expect("3 new programs");
    for answer in serve_in_turn(&exec, 5) {
        assert!(after.contains(&answer.pid), "{answer:?} is not one of {after:?}");
    }
}

#[test]
fn a_killed_program_process_is_replaced_and_requests_keep_succeeding() {
    let Some((_dir, exec, programs)) = three_programs() else { return };
    let victim = programs[0];
    signal(victim, libc::SIGKILL);
    let now = replaced(&exec, &[victim], 3)
        .unwrap_or_else(|| panic!("{victim} not replaced:\n{}", exec.served.log_text()));
    assert_eq!(now.iter().filter(|pid| programs.contains(pid)).count(), 2, "{now:?}");
    // The log is written as the worker goes; the replacement may show first.
    let logged = || exec.events("program-exited").into_iter().find(|e| e["program_pid"] == victim);
    assert!(wait_until(SETTLE, || logged().is_some()), "its exit never logged");
    let exit = logged().expect("its exit logged");
    assert_eq!(exit["exit"], "signal 9", "{exit}");
    for answer in serve_in_turn(&exec, 20) {
        assert!(now.contains(&answer.pid), "{answer:?} is not one of {now:?}");
    }
}

#[test]
fn killing_every_long_running_program_process_at_once_fails_no_request() {
    // As the OOM killer or `pkill -9 php-cgi` does, to processes that ran for a while: they
    // did not fail to start, so they are replaced at once, with no restart back-off.
    let Some((_dir, exec, programs)) = three_programs() else { return };
    serve_in_turn(&exec, 3);
    // Past fcgi-prefork's STABLE_AFTER (10 s): what a back-off calls a stable process.
    let old = wait_until(Duration::from_secs(20), || {
        let status = exec.status("full&json");
        let ages = status["processes"].as_array().map_or(vec![], |all| {
            all.iter().filter_map(|p| p["start since"].as_u64()).collect::<Vec<_>>()
        });
        ages.len() == 3 && ages.iter().all(|&age| age >= 11)
    });
    assert!(old, "the programs did not grow 11 s old: {}", exec.status("full&json"));
    for &pid in &programs {
        signal(pid, libc::SIGKILL);
    }
    // Dead (zombies at most): their sockets refuse, so no request can reach them.
    assert!(wait_until(SETTLE, || programs.iter().all(|&pid| !is_php_cgi(pid))));
    let answers: Vec<Result<Answer, String>> = (0..10).map(|_| exec.request("", b"")).collect();
    let after = replaced(&exec, &programs, 3).expect("all 3 replaced");
    let delayed = exec.events("program-restart-delayed");
    let failed: Vec<String> = answers
        .iter()
        .enumerate()
        .filter_map(|(i, a)| match a {
            Ok(a) if a.status == 200 && after.contains(&a.pid) => None,
            Ok(a) => Some(format!("request {i}: {a:?}")),
            Err(e) => Some(format!("request {i}: {e}")),
        })
        .collect();
    assert!(
        delayed.is_empty() && failed.is_empty(),
        "after killing {programs:?}: failed {failed:?}; restarts delayed: {delayed:?}"
    );
}

/// `fcgi serve --check ARGS`: its exit code and standard error.
fn check(dir: &Path, args: &[&str]) -> (Option<i32>, String) {
    let socket = format!("unix:{}", dir.join("check.sock").display());
    let output = Command::new(fcgi_bin())
        .args(["serve", "--check", "--listen", &socket])
        .args(args)
        .output()
        .expect("fcgi runs");
    assert!(!dir.join("check.sock").exists(), "--check bound its socket: {args:?}");
    (output.status.code(), String::from_utf8_lossy(&output.stderr).into_owned())
}

#[test]
fn check_names_what_cannot_run_and_passes_a_good_program() {
    if !php_cgi::installed() {
        return;
    }
    let dir = scratch();
    let plain = dir.path().join("plain.php");
    fs::write(&plain, "<?php\n").expect("a file");
    let plain = plain.display().to_string();
    let good_conf = dir.path().join("good.conf");
    write_config(&good_conf, PHP_CGI, 2, "");
    let bad_conf = dir.path().join("bad.conf");
    write_config(&bad_conf, "/nonexistent/php-cgi", 2, "");
    let (good_conf, bad_conf) = (good_conf.display().to_string(), bad_conf.display().to_string());
    // (arguments, exit code, what its message must name)
    let table: [(&[&str], i32, &str); 10] = [
        (&["--app", "exec", "--", "/nonexistent/php-cgi"], 2, "/nonexistent/php-cgi"),
        (&["--app", "exec", "--", &plain], 2, &plain),
        (&["--app", "exec"], 2, "program"),
        (&["--app", "hello", "--", PHP_CGI], 2, "--app exec"),
        (&["--app", "hello", "--process-model", "ondemand"], 2, "ondemand"),
        (
            &["--app", "exec", "--worker-idle-timeout", "3", "--", PHP_CGI],
            2,
            "--worker-idle-timeout",
        ),
        (&["--config", &bad_conf], 2, "/nonexistent/php-cgi"),
        (&["--app", "exec", "--", PHP_CGI, "-n"], 0, ""),
        (
            &["--app", "exec", "--process-model", "ondemand", "--max-workers", "3", "--", PHP_CGI],
            0,
            "",
        ),
        (&["--config", &good_conf], 0, ""),
    ];
    for (args, code, named) in table {
        let (got, stderr) = check(dir.path(), args);
        assert_eq!(got, Some(code), "fcgi serve --check {args:?}: {stderr}");
        assert!(
            stderr.contains(named),
            "fcgi serve --check {args:?} does not name {named:?}: {stderr}"
        );
    }
}

/// The `Max open files` soft and hard limits in /proc/PID/limits.
fn nofile_limits(pid: u32) -> Option<(String, String)> {
    let limits = fs::read_to_string(format!("/proc/{pid}/limits")).ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    let mut fields = line["Max open files".len()..].split_whitespace();
    Some((fields.next()?.to_owned(), fields.next()?.to_owned()))
}

#[test]
fn rlimit_nofile_reaches_every_program_process_and_not_fcgi_rs() {
    if !php_cgi::installed() {
        return;
    }
    let dir = scratch();
    let exec =
        PhpExec::start(dir.path(), "fcgi", &["--workers", "2", "--rlimit-nofile", "123"], true);
    let programs = exec.wait_programs(2, 2, SETTLE).expect("2 programs");
    for pid in programs {
        let limits = nofile_limits(pid);
        assert_eq!(limits, Some(("123".into(), "123".into())), "php-cgi {pid}");
    }
    let worker = exec.worker().expect("a worker");
    assert_ne!(nofile_limits(worker).map(|l| l.0), Some("123".into()), "fcgi-rs itself got it");
    serve_in_turn(&exec, 3);
}

#[test]
fn program_stderr_reaches_the_json_log_with_its_program_pid() {
    if !php_cgi::installed() {
        return;
    }
    let dir = scratch();
    let exec = PhpExec::start(dir.path(), "fcgi", &["--workers", "1"], true);
    exec.wait_programs(1, 1, SETTLE).expect("1 program");
    let answer = exec.request("err=tok-4711", b"").expect("the script's answer");
    assert_eq!(answer.status, 200, "{answer:?}");
    // error_log() goes out as FCGI_STDERR; php://stderr is the process's own fd 2.
    let wanted = ["fcgi-stderr tok-4711", "fd2 tok-4711"];
    let mut lines: Vec<Value> = Vec::new();
    let logged = wait_until(SETTLE, || {
        lines = exec.events("program-stderr");
        wanted
            .iter()
            .all(|w| lines.iter().any(|l| l["line"].as_str().is_some_and(|t| t.contains(w))))
    });
    assert!(logged, "not both of {wanted:?} logged:\n{}", exec.served.log_text());
    for line in lines.iter().filter(|l| l["line"].as_str().is_some_and(|t| t.contains("tok-4711")))
    {
        assert_eq!(line["program_pid"], answer.pid, "{line}");
        assert_ne!(line["pid"], answer.pid, "`pid` is fcgi-rs's own: {line}");
    }
}

#[test]
fn sigkill_of_the_master_and_its_worker_at_once_leaves_no_program_running() {
    // As `kill -9` of fcgi-rs's process group does (the programs have groups of their own):
    // no fcgi-rs process is left to stop them, and they die with their parent all the same.
    let Some((_dir, exec, programs)) = three_programs() else { return };
    let worker = exec.worker().expect("a worker");
    signal(worker, libc::SIGSTOP);
    exec.served.process.signal(libc::SIGKILL);
    signal(worker, libc::SIGKILL);
    let gone =
        wait_until(SETTLE, || !alive(worker) && programs.iter().all(|&pid| !is_php_cgi(pid)));
    let left: Vec<u32> = programs.iter().copied().filter(|&pid| is_php_cgi(pid)).collect();
    assert!(gone, "after SIGKILL of master and worker: php-cgi {left:?} live on");
}
