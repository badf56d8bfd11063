//! Real FastCGI programs under `fcgi serve --app exec`, through a real nginx: php-cgi, a C
//! program on libfcgi, a Perl script on FCGI.pm and a Python WSGI app on flup (the programs in
//! `tests/programs/`, run as `tests/support/programs.rs` says).
//!
//! For each: a GET gets the program's own answer, a POST body of a few MiB reaches the program
//! whole (it prints the body's length and SHA-256), and requests in flight at once are answered
//! by both of its two processes (each answer names its pid, which must be one that fcgi-rs
//! logged as `program-started`). php-cgi also runs with `PHP_FCGI_MAX_REQUESTS`, so that it exits
//! by itself every few requests: fcgi-rs replaces it and no request fails.
//!
//! A program that this machine lacks (tests/deps.sh installs them all) skips its test with the
//! reason, or fails it under `FCGI_TEST_STRICT`.

use std::collections::BTreeMap;
use std::time::Duration;

use fcgi_tests::data::pattern;
use fcgi_tests::http::{self, HttpResponse};
use fcgi_tests::nginx::{scratch, Nginx};
use fcgi_tests::programs::{Answer, ExecServe, Launch, Program};
use fcgi_tests::settings::skip;

const MIB: usize = 1024 * 1024;

/// Program processes per test: enough to see requests spread, few enough for 2 cores.
const WORKERS: usize = 2;

/// How long a busy request keeps its program process (`sleep_ms`): long enough that the
/// requests sent together are all in flight at once.
const BUSY_MS: u64 = 400;

/// The program, prepared in `dir`, or `None` after saying why it cannot run here.
fn prepare(program: Program, dir: &std::path::Path) -> Option<Launch> {
    match program.prepare(dir) {
        Ok(launch) => Some(launch),
        Err(why) => {
            skip(&format!("{program:?}: {why}"));
            None
        }
    }
}

/// `program`'s answer in `response`, which must be a 200; panics otherwise, with `exec`'s log.
#[track_caller]
fn answer(program: Program, response: &HttpResponse, exec: &ExecServe) -> Answer {
    assert_eq!(
        response.status,
        200,
        "{program:?}: {}\nfcgi serve's log:\n{}",
        response.body_text(),
        exec.serve.log()
    );
    let answer = Answer::parse(&response.body_text());
    assert_eq!(answer.hello, program.hello(), "{response:?}");
    answer
}

/// A GET of each of `paths`, all sent together, each on its own connection: their responses.
fn get_together(port: u16, paths: Vec<String>) -> Vec<std::io::Result<HttpResponse>> {
    let threads: Vec<_> =
        paths.into_iter().map(|path| std::thread::spawn(move || http::get(port, &path))).collect();
    threads.into_iter().map(|t| t.join().expect("a request thread")).collect()
}

/// What every program must do behind nginx: answer a GET, take a POST of a few MiB whole, spread
/// requests in flight at once over both of its processes, and lose none of them on the way.
fn serves_through_nginx(program: Program) {
    let dir = scratch();
    let Some(launch) = prepare(program, dir.path()) else { return };
    let exec = ExecServe::start(dir.path(), "exec", &launch, WORKERS, &[], &[]);
    let nginx = Nginx::start(dir.path(), launch.site, &launch.nginx_vars(exec.addr()));
    let started = exec.started_pids();

    // A GET: the program's own answer, from one of the processes fcgi-rs started.
    let hello = answer(program, &nginx.get(&format!("{}?hello", launch.path)).unwrap(), &exec);
    assert_eq!((hello.method.as_str(), hello.query.as_str()), ("GET", "hello"), "{hello:?}");
    hello.assert_body(b"");
    assert!(started.contains(&hello.pid), "pid {} is no program of {started:?}", hello.pid);

    // A POST of a few MiB: fcgi-rs receives it whole before the program gets the request,
    // and the program reads every byte of it.
    let body = pattern(5 * MIB + 12_345, 7);
    let response = nginx.post(&launch.path, "application/octet-stream", &body).unwrap();
    let posted = answer(program, &response, &exec);
    assert_eq!(posted.method, "POST");
    posted.assert_body(&body);

    // Requests in flight at once reach both processes: fcgi-rs hands each to an idle one.
    let paths =
        (0..2 * WORKERS).map(|i| format!("{}?sleep_ms={BUSY_MS}&n={i}", launch.path)).collect();
    let mut answered = BTreeMap::<u32, usize>::new();
    for response in get_together(nginx.port(), paths) {
        let busy = answer(program, &response.expect("a busy request answered"), &exec);
        *answered.entry(busy.pid).or_default() += 1;
    }
    let started = exec.started_pids();
    assert!(answered.keys().all(|pid| started.contains(pid)), "{answered:?} vs {started:?}");
    assert_eq!(answered.len(), WORKERS, "requests per pid {answered:?}: one process did all");

    // Nothing went wrong on the way: no program exited, none was replaced.
    assert!(exec.events("program-exited").is_empty(), "{}", exec.serve.log());
    assert_eq!(started.len(), WORKERS, "{}", exec.serve.log());
}

#[test]
fn php_cgi_serves_through_nginx() {
    serves_through_nginx(Program::PhpCgi);
}

#[test]
fn a_libfcgi_c_program_serves_through_nginx() {
    serves_through_nginx(Program::Libfcgi);
}

#[test]
fn a_perl_fcgi_pm_script_serves_through_nginx() {
    serves_through_nginx(Program::Perl);
}

#[test]
fn a_python_flup_app_serves_through_nginx() {
    serves_through_nginx(Program::Flup);
}

/// php-cgi exits by itself after `PHP_FCGI_MAX_REQUESTS` requests (Debian's default is 500),
/// as a manager that does not replace it finds out when the site goes down.
const PHP_MAX_REQUESTS: usize = 4;

/// Requests sent in all: three times what each php-cgi serves, from two clients at once.
const PHP_REQUESTS: usize = 3 * PHP_MAX_REQUESTS * WORKERS;

#[test]
fn php_cgi_that_exits_after_its_max_requests_is_replaced_and_no_request_fails() {
    let dir = scratch();
    let Some(launch) = prepare(Program::PhpCgi, dir.path()) else { return };
    let max = PHP_MAX_REQUESTS.to_string();
    let run_log = dir.path().join("runs.log");
    let exec = ExecServe::start(
        dir.path(),
        "exec",
        &launch,
        WORKERS,
        &["--pass-env", "PHP_FCGI_MAX_REQUESTS", "--pass-env", "APP_RUN_LOG"],
        &[("PHP_FCGI_MAX_REQUESTS", max.as_str()), ("APP_RUN_LOG", run_log.to_str().unwrap())],
    );
    let nginx = Nginx::start(dir.path(), launch.site, &launch.nginx_vars(exec.addr()));

    // Two clients, each with its requests one after another: a php-cgi may exit while the
    // other's request is in flight, and right after answering its last one.
    let port = nginx.port();
    let clients: Vec<_> = (0..2)
        .map(|client| {
            let path = launch.path.clone();
            std::thread::spawn(move || {
                (0..PHP_REQUESTS / 2)
                    .map(|i| http::get(port, &format!("{path}?client={client}&i={i}")))
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut answered = BTreeMap::<u32, usize>::new();
    let mut failed = Vec::new();
    for client in clients {
        for response in client.join().expect("a client thread") {
            match response {
                Ok(r) if r.status == 200 => {
                    *answered.entry(Answer::parse(&r.body_text()).pid).or_default() += 1
                }
                other => failed.push(other),
            }
        }
    }
    assert!(
        failed.is_empty(),
        "{} of {PHP_REQUESTS} failed: {failed:?}\n{}",
        failed.len(),
        exec.serve.log()
    );

    // Each request ran once: one a php-cgi ran as its last is not sent to another as well.
    let runs = std::fs::read_to_string(&run_log).unwrap_or_default();
    let mut runs_of = BTreeMap::<&str, Vec<&str>>::new();
    for (pid, query) in runs.lines().filter_map(|line| line.split_once(' ')) {
        runs_of.entry(query).or_default().push(pid);
    }
    let twice: Vec<_> = runs_of.iter().filter(|(_, pids)| pids.len() > 1).collect();
    assert!(
        twice.is_empty() && runs_of.len() == PHP_REQUESTS,
        "{} runs of {} requests; run more than once (query: pids): {twice:?}",
        runs.lines().count(),
        runs_of.len()
    );

    // Each php-cgi served at most its maximum, so there were at least three generations of
    // them: every one fcgi-rs started, and none other.
    assert!(answered.values().all(|&n| n <= PHP_MAX_REQUESTS), "requests per pid: {answered:?}");
    assert!(answered.len() >= PHP_REQUESTS / PHP_MAX_REQUESTS, "requests per pid: {answered:?}");
    let started = exec.started_pids();
    assert!(answered.keys().all(|pid| started.contains(pid)), "{answered:?} vs {started:?}");

    // Each that is gone exited by itself, with status 0, after its maximum.
    let exited = exec.events("program-exited");
    assert!(exited.len() >= answered.len() - WORKERS, "{}", exec.serve.log());
    for event in &exited {
        assert_eq!(event["exit"], "status 0", "{event}");
        // The program's own requests: one it never got (handed to it as it exited, then
        // served by another) is not one of them.
        assert!(
            event["requests"].as_u64().is_some_and(|n| n as usize <= PHP_MAX_REQUESTS),
            "a php-cgi that serves at most {PHP_MAX_REQUESTS} requests is logged with more \
             (requests per pid, from the answers: {answered:?}): {event}"
        );
    }
    // fcgi-rs keeps the pool full: WORKERS run again once the last exit is replaced.
    assert!(
        exec.wait_log(Duration::from_secs(10), |log| {
            let started = fcgi_tests::programs::log_events(log, "program-started").len();
            let exited = fcgi_tests::programs::log_events(log, "program-exited").len();
            started == exited + WORKERS
        }),
        "{}",
        exec.serve.log()
    );
}
