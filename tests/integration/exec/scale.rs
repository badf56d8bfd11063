//! How many php-cgi processes `fcgi serve --app exec` runs, and what holds one: the static,
//! on-demand and dynamic models under concurrent requests, `--max-requests`, the status page's
//! PHP-FPM counters (listen queue, max children reached), and that neither nginx's idle kept
//! connections nor a slow upload pins a program process.
//!
//! Counts come from the status page (`?json`, `?full&json`) and /proc, polled while the requests
//! run. Reloads, signals and the rest of the operator's side are tests/integration/exec/ops.rs.

use std::collections::HashMap;
use std::fs;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use fcgi_tests::http::HttpStream;
use fcgi_tests::nginx::{scratch, Site};
use fcgi_tests::php_cgi::{self, md5_hex, number, Answer, PhpExec, SCRIPT_URI};
use fcgi_tests::process::wait_until;
use serde_json::Value;

/// How long program processes may take to start or stop.
const SETTLE: Duration = Duration::from_secs(10);

/// `n` requests for the script with `query` at once, each on its own connection, while
/// `probe` sees the status page (`?full&json`) every few milliseconds: their answers.
fn under_load(
    exec: &PhpExec,
    n: usize,
    query: &str,
    mut probe: impl FnMut(&Value),
) -> Vec<Result<Answer, String>> {
    let done = AtomicUsize::new(0);
    thread::scope(|s| {
        let requests: Vec<_> = (0..n)
            .map(|_| {
                s.spawn(|| {
                    let answer = exec.request(query, b"");
                    done.fetch_add(1, Ordering::SeqCst);
                    answer
                })
            })
            .collect();
        wait_until(Duration::from_secs(60), || {
            probe(&exec.status("full&json"));
            done.load(Ordering::SeqCst) == n
        });
        requests.into_iter().map(|r| r.join().expect("a request's thread")).collect()
    })
}

/// Each answer's pid, panicking at the first failure.
#[track_caller]
fn pids_of(answers: &[Result<Answer, String>], exec: &PhpExec) -> Vec<u32> {
    answers
        .iter()
        .enumerate()
        .map(|(i, a)| match a {
            Ok(a) if a.status == 200 => a.pid,
            other => panic!("request {i}: {other:?}\n{}", exec.served.log_text()),
        })
        .collect()
}

#[test]
fn static_workers_3_runs_exactly_3_program_processes_under_any_load() {
    if !php_cgi::installed() {
        return;
    }
    let dir = scratch();
    let exec = PhpExec::start(dir.path(), "fcgi", &["--workers", "3"], true);
    let programs = exec.wait_programs(3, 3, SETTLE).expect("3 idle programs");
    let status = exec.status("json");
    assert_eq!(status["process manager"], "static", "{status}");
    assert_eq!(
        [number(&status, "total processes"), number(&status, "active processes")],
        [3, 0],
        "{status}"
    );
    assert_eq!(exec.program_children(), programs, "the status page and /proc differ");

    let mut most = 0;
    let answers = under_load(&exec, 10, "sleep=300", |s| {
        most = most.max(number(s, "total processes"));
    });
    let served = pids_of(&answers, &exec);
    assert!(served.iter().all(|pid| programs.contains(pid)), "{served:?} vs {programs:?}");
    assert_eq!(most, 3, "total processes under 10 requests at once");
    assert_eq!(number(&exec.status("json"), "max active processes"), 3);
    assert_eq!(exec.program_children(), programs, "processes came or went");
}

#[test]
fn ondemand_starts_up_to_max_under_load_and_none_while_idle() {
    if !php_cgi::installed() {
        return;
    }
    let dir = scratch();
    let options =
        ["--process-model", "ondemand", "--max-workers", "3", "--worker-idle-timeout", "1"];
    let exec = PhpExec::start(dir.path(), "fcgi", &options, true);
    let status = exec.status("json");
    assert_eq!(status["process manager"], "ondemand", "{status}");
    let started = wait_until(Duration::from_millis(1_500), || {
        number(&exec.status("json"), "total processes") > 0 || !exec.program_children().is_empty()
    });
    assert!(!started, "a program started with no request: {}", exec.status("full&json"));

    let mut most = 0;
    let answers = under_load(&exec, 6, "sleep=1000", |s| {
        most = most.max(number(s, "total processes"));
    });
    let served = pids_of(&answers, &exec);
    let mut distinct = served.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert_eq!(most, 3, "6 requests at once, --max-workers 3: {served:?}");
    assert!(distinct.len() <= 3, "{distinct:?}");

    // Idle past --worker-idle-timeout: each stops.
    let emptied = wait_until(SETTLE, || {
        number(&exec.status("json"), "total processes") == 0 && exec.program_children().is_empty()
    });
    assert!(emptied, "programs left after idling: {}", exec.status("full&json"));
    let stopped = exec.events("program-stopped");
    for pid in &distinct {
        let event = stopped.iter().find(|e| e["program_pid"] == *pid);
        assert_eq!(event.map(|e| &e["reason"]), Some(&Value::from("idle")), "{pid}: {event:?}");
    }
    // The next request starts one again.
    let answer = exec.request("", b"").expect("a request after idling");
    assert_eq!(answer.status, 200, "{answer:?}");
    assert!(!distinct.contains(&answer.pid), "{answer:?}: an old process");
}

#[test]
fn dynamic_keeps_spare_processes_between_its_bounds() {
    if !php_cgi::installed() {
        return;
    }
    let dir = scratch();
    let options = [
        "--process-model",
        "dynamic",
        "--workers",
        "2",
        "--min-spare-workers",
        "1",
        "--max-spare-workers",
        "2",
        "--max-workers",
        "4",
    ];
    let exec = PhpExec::start(dir.path(), "fcgi", &options, true);
    exec.wait_programs(2, 2, SETTLE).expect("--workers 2 at start");
    assert_eq!(exec.status("json")["process manager"], "dynamic");

    // 3 busy: one more starts, to keep 1 spare; never past 4.
    let (mut most, mut spare_while_busy) = (0, false);
    let answers = under_load(&exec, 3, "sleep=1500", |s| {
        most = most.max(number(s, "total processes"));
        spare_while_busy |= number(s, "active processes") == 3 && number(s, "idle processes") >= 1;
    });
    pids_of(&answers, &exec);
    assert_eq!(most, 4, "3 busy and 1 spare");
    assert!(spare_while_busy, "no spare process while 3 were busy");

    // 4 idle, above --max-spare-workers 2: back to 2, one a second, and no fewer.
    assert!(exec.wait_programs(2, 2, SETTLE).is_some(), "{}", exec.status("full&json"));
    let changed = wait_until(Duration::from_millis(1_500), || {
        number(&exec.status("json"), "total processes") != 2
    });
    assert!(!changed, "below the spare bounds: {}", exec.status("full&json"));

    // 8 at once: at most --max-workers.
    let mut most = 0;
    let answers = under_load(&exec, 8, "sleep=500", |s| {
        most = most.max(number(s, "total processes"));
    });
    pids_of(&answers, &exec);
    assert_eq!(most, 4, "8 requests at once, --max-workers 4");
}

#[test]
fn max_requests_5_lets_no_program_process_serve_more_than_5() {
    if !php_cgi::installed() {
        return;
    }
    let dir = scratch();
    let exec = PhpExec::start(dir.path(), "fcgi", &["--workers", "2", "--max-requests", "5"], true);
    exec.wait_programs(2, 2, SETTLE).expect("2 programs");
    let nginx = exec.nginx(dir.path(), Site::Exec, "");
    // 20 requests through nginx's kept connections, 4 at a time.
    let answers: Vec<Answer> = thread::scope(|s| {
        let threads: Vec<_> = (0..4)
            .map(|_| {
                s.spawn(|| {
                    (0..5)
                        .map(|_| {
                            let response = nginx.get(SCRIPT_URI).expect("GET through nginx");
                            Answer::of_http(&response).expect("the script's answer")
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        threads.into_iter().flat_map(|t| t.join().expect("a client thread")).collect()
    });
    let mut per_pid: HashMap<u32, usize> = HashMap::new();
    for answer in &answers {
        assert_eq!(answer.status, 200, "{answer:?}\nnginx: {}", nginx.error_log());
        *per_pid.entry(answer.pid).or_default() += 1;
    }
    assert_eq!(answers.len(), 20);
    assert!(per_pid.values().all(|&n| n <= 5), "more than 5 requests for a pid: {per_pid:?}");
    assert!(per_pid.len() >= 4, "20 requests at 5 a process: {per_pid:?}");
    let recycled =
        exec.events("program-stopped").iter().filter(|e| e["reason"] == "max-requests").count();
    assert!(recycled >= 3, "{recycled} program-stopped for max-requests; {per_pid:?}");
    let status = exec.status("full&json");
    let counts = status["processes"].as_array().expect("processes").iter();
    assert!(counts.map(|p| number(p, "requests")).all(|n| n <= 5), "{status}");
}

/// The sockets `pid` has open (from /proc): nginx's kept connections among them.
fn open_sockets(pid: u32) -> usize {
    let Ok(entries) = fs::read_dir(format!("/proc/{pid}/fd")) else { return 0 };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| fs::read_link(e.path()).ok())
        .filter(|target| target.to_string_lossy().starts_with("socket:"))
        .count()
}

#[test]
fn idle_kept_nginx_connections_pin_no_program_process() {
    if !php_cgi::installed() {
        return;
    }
    let dir = scratch();
    let exec = PhpExec::start(dir.path(), "fcgi", &["--workers", "2"], true);
    exec.wait_programs(2, 2, SETTLE).expect("2 programs");
    let worker = exec.worker().expect("a worker");
    let nginx = exec.nginx(dir.path(), Site::Exec, "");
    let before = open_sockets(worker);
    // 32 clients at once, each with a few requests that all finish (wrk's end would abort
    // those in flight, and nginx closes the connection of an aborted request): nginx then
    // keeps up to 32 idle connections to fcgi-rs.
    std::thread::scope(|scope| {
        for _ in 0..32 {
            scope.spawn(|| {
                for _ in 0..3 {
                    let response = nginx.get(SCRIPT_URI).expect("nginx answers");
                    assert_eq!(response.status, 200, "{}", nginx.error_log());
                }
            });
        }
    });
    let kept = open_sockets(worker);
    assert!(kept >= before + 8, "nginx kept no connections: {before} then {kept} sockets");

    // With as many idle kept connections as php-cgi has processes many times over, every
    // process is idle, and new requests, kept or not, are answered at once.
    // (Once the requests wrk left in flight are done.)
    let idle = wait_until(SETTLE, || number(&exec.status("json"), "idle processes") == 2);
    assert!(idle, "processes stay busy: {}", exec.status("full&json"));
    // php-cgi leaves by itself after 500 requests (PHP_FCGI_MAX_REQUESTS): the pids of now.
    let programs = exec.programs();
    assert_eq!(programs.len(), 2, "{programs:?}");
    for i in 0..5 {
        let started = Instant::now();
        let through_nginx = nginx.get(SCRIPT_URI).map(|r| Answer::of_http(&r));
        let straight = exec.request("", b"");
        let took = started.elapsed();
        for answer in [through_nginx.expect("nginx answers"), straight] {
            let answer = answer.unwrap_or_else(|e| panic!("request {i}: {e}"));
            assert_eq!(answer.status, 200, "{answer:?}");
            assert!(programs.contains(&answer.pid), "{answer:?} not one of {programs:?}");
        }
        assert!(took < Duration::from_secs(2), "two requests took {took:?}");
    }
    // nginx's kept connections are all still there; only fcgi-rs's own connection to a
    // php-cgi may have gone, when it left at its PHP_FCGI_MAX_REQUESTS.
    let after = open_sockets(worker);
    assert!(
        after + programs.len() >= kept,
        "the kept connections went meanwhile: {kept} then {after}"
    );
}

#[test]
fn a_slow_upload_through_nginx_holds_no_program_process() {
    if !php_cgi::installed() {
        return;
    }
    const BODY: usize = 512 * 1024;
    let dir = scratch();
    let exec = PhpExec::start(dir.path(), "fcgi", &["--workers", "1"], true);
    let program = exec.wait_programs(1, 1, SETTLE).expect("1 program")[0];
    // nginx passes the body on as it comes, rather than whole once it came: fcgi-rs sees
    // the client's pace.
    let nginx = exec.nginx(dir.path(), Site::Exec, "fastcgi_request_buffering off;");
    let body: Vec<u8> = (0..BODY).map(|i| (i % 253) as u8).collect();
    let mut upload = HttpStream::connect(nginx.port()).expect("connect to nginx");
    upload.send_head("POST", SCRIPT_URI, Some("application/octet-stream"), Some(BODY)).unwrap();
    upload.send(&body[..300 * 1024]).expect("the first part of the body");
    // fcgi-rs spools a body past 256 KiB: it has the first part (unless a program took it).
    let arrived = wait_until(SETTLE, || {
        let status = exec.status("json");
        status["fcgi-rs"]["spooled bytes"].as_u64().is_some_and(|n| n > 0)
            || number(&status, "active processes") > 0
    });
    let status = exec.status("json");
    assert_eq!(number(&status, "active processes"), 0, "the upload holds a program: {status}");
    assert!(arrived, "the body did not reach fcgi-rs: {status}");

    // The upload is in flight; the one program process serves others meanwhile.
    for i in 0..3 {
        let started = Instant::now();
        let response = nginx.get(&format!("{SCRIPT_URI}?during={i}")).expect("GET");
        let answer = Answer::of_http(&response).expect("the script's answer");
        assert_eq!((answer.status, answer.pid), (200, program), "{answer:?}");
        assert!(started.elapsed() < Duration::from_secs(2), "GET {i}: {:?}", started.elapsed());
        let status = exec.status("json");
        assert_eq!(number(&status, "active processes"), 0, "the upload holds it: {status}");
    }
    // The rest, slowly: 16 KiB every 20 ms.
    for piece in body[300 * 1024..].chunks(16 * 1024) {
        upload.send(piece).expect("the rest of the body");
        thread::sleep(Duration::from_millis(20));
    }
    let response = upload.read_response().expect("the upload's answer");
    let answer = Answer::of_http(&response).expect("the script's answer");
    assert_eq!((answer.status, answer.pid, answer.len), (200, program, BODY), "{answer:?}");
    assert_eq!(answer.md5, md5_hex(&body));
}

#[test]
fn the_status_page_counts_requests_waiting_for_a_process_and_max_children_reached() {
    if !php_cgi::installed() {
        return;
    }
    let dir = scratch();
    let options = ["--workers", "1", "--queue-timeout", "30"];
    let exec = PhpExec::start(dir.path(), "fcgi", &options, true);
    let program = exec.wait_programs(1, 1, SETTLE).expect("1 program")[0];
    let before = number(&exec.status("json"), "max children reached");
    let (mut queue, mut running_uri) = (0, false);
    let answers = under_load(&exec, 4, "sleep=800", |s| {
        queue = queue.max(number(s, "listen queue"));
        running_uri |= s["processes"][0]["state"] == "Running"
            && s["processes"][0]["request uri"].as_str().is_some_and(|u| u.contains("sleep=800"));
    });
    assert!(pids_of(&answers, &exec).iter().all(|&pid| pid == program));
    // 4 requests for 1 process: 3 wait while one runs; all 4 when a status request that came
    // first holds the one thread (a page runs aside only once every thread is busy).
    assert!((3..=4).contains(&queue), "the most seen waiting: {queue}");
    assert!(running_uri, "the busy process never showed its request");
    let status = exec.status("full&json");
    assert_eq!(number(&status, "listen queue"), 0, "{status}");
    assert!(number(&status, "max listen queue") >= 3, "{status}");
    let reached = number(&status, "max children reached");
    assert!(reached >= before + 3, "max children reached: {before} then {reached}");
    assert_eq!([number(&status, "total processes"), number(&status, "idle processes")], [1, 1]);
    assert_eq!(number(&status["processes"][0], "requests"), 4, "{status}");
}
