//! Two fcgi-rs hosts behind one nginx (`nginx/fcgi-hosts.conf`, the file docs/DEPLOYING.md
//! describes): under load, one host stopped gracefully costs no request, and one killed outright
//! costs at most the requests it held, after which the other host answers everything.
//!
//! Each host is `fcgi serve --app hello` in a network namespace of its own ([`Netns`]),
//! listening on its own address (`10.213.N.2:9000`), reached by nginx in the root namespace
//! over a veth pair: what nginx sees is what it sees of a machine on a LAN (a closed listener
//! refuses with RST, a killed process's connections are reset). Load is wrk through nginx; nginx
//! also writes a log of its own format (`status|upstream_addr|upstream_status`) that says
//! which host answered each request and which were tried before. The tests skip, with the
//! reason, when not root or when `ip netns` does not work.
//!
//! And on loopback: a master (`--workers 2`) that stops gracefully refuses new connections at
//! once, as a single process does, while its workers finish what they run.

use std::fs;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitStatus;
use std::time::Duration;

use fcgi_tests::addr::{Addr, Transport};
use fcgi_tests::netns::Netns;
use fcgi_tests::nginx::{scratch, Nginx, Site};
use fcgi_tests::process::{fcgi_bin, wait_until, FcgiServe, Guarded, START_TIMEOUT};
use fcgi_tests::settings::skip;
use fcgi_tests::wrk::Wrk;

/// wrk's connections, so requests in flight at once: the bound on what a killed host can lose.
const CONNS: u32 = 16;
/// How long each load runs: long enough to stop a host in the middle with load on both sides.
const LOAD_SECS: u32 = 6;
/// Requests logged by nginx under load before a host is stopped, so that both hosts are busy
/// then; or [`LOAD_WAIT`], whichever comes first (a slow machine), as long as
/// [`LOAD_AT_LEAST`] came.
const LOAD_BEFORE_STOP: usize = 2000;
/// The longest wait for [`LOAD_BEFORE_STOP`]: well inside [`LOAD_SECS`].
const LOAD_WAIT: Duration = Duration::from_secs(2);
/// Fewer requests than this before the stop: no load is going through nginx.
const LOAD_AT_LEAST: usize = 100;
/// The hosts' --graceful-timeout; a stop must end well within it.
const GRACEFUL_TIMEOUT_S: u64 = 10;
/// The port every host listens on, each on its own address.
const PORT: u16 = 9000;

/// A host: `fcgi serve` inside its namespace. The fields drop in order: the process is stopped
/// before its namespace goes.
struct Host {
    process: Guarded,
    log: PathBuf,
    addr: SocketAddr,
    _ns: Netns,
}

impl Host {
    /// Creates a namespace and starts `fcgi serve --app hello` in it, listening on
    /// `10.213.N.2:9000` and allowing only nginx's side of the pair; `Err` when namespaces are
    /// not available here.
    fn start(dir: &std::path::Path, name: &str) -> Result<Host, String> {
        let ns = Netns::create()?;
        let addr = SocketAddr::from((ns.ip(), PORT));
        let log = dir.join(format!("{name}.log"));
        let mut command = ns.command(&fcgi_bin());
        command.args(["serve", "--app", "hello", "--listen", &format!("tcp:{addr}")]);
        command.args(["--allow", &ns.root_ip().to_string(), "--log-format", "json"]);
        command.args(["--graceful-timeout", &GRACEFUL_TIMEOUT_S.to_string()]);
        let mut process = Guarded::spawn(name, command, &log);
        let up = wait_until(START_TIMEOUT, || !process.is_running() || Addr::Tcp(addr).accepts());
        let up = up && process.is_running();
        let host = Host { process, log, addr, _ns: ns };
        assert!(up, "{name} did not start listening on {addr}:\n{}", host.log());
        Ok(host)
    }

    fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends `signal` and waits for the exit; its status.
    fn stop(&mut self, signal: libc::c_int) -> ExitStatus {
        self.process.signal(signal);
        let timeout = Duration::from_secs(GRACEFUL_TIMEOUT_S + 5);
        let status = self.process.wait_exit(timeout);
        status.unwrap_or_else(|| panic!("{} did not exit after signal {signal}", self.addr))
    }
}

/// nginx and two hosts, in the order they are dropped: nginx first, the scratch directory last.
struct Cluster {
    nginx: Nginx,
    hosts: [Host; 2],
    upstream_log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Cluster {
    /// Starts both hosts and nginx; `None` (after saying why) when namespaces are not available.
    fn start(test: &str) -> Option<Cluster> {
        let dir = scratch();
        let started = Host::start(dir.path(), "host1")
            .and_then(|one| Host::start(dir.path(), "host2").map(|two| [one, two]));
        let hosts = match started {
            Ok(hosts) => hosts,
            Err(why) => {
                skip(&format!("{test}: {why}"));
                return None;
            }
        };
        let upstream_log = dir.path().join("upstreams.log");
        // Which host answered each request, and which were tried first; `|` since nginx
        // separates the hosts it tried with ", ". One line: the wrapper's header comment names
        // the placeholder too, and only its first line is commented out there.
        let http_extra = format!(
            "log_format upstreams '$status|$upstream_addr|$upstream_status'; \
             access_log {} upstreams;",
            upstream_log.display()
        );
        let vars = [
            ("FCGI_ADDR_1", hosts[0].addr.to_string()),
            ("FCGI_ADDR_2", hosts[1].addr.to_string()),
        ];
        let nginx = Nginx::start_with(dir.path(), Site::Hosts, &vars, &http_extra);
        Some(Cluster { nginx, hosts, upstream_log, _dir: dir })
    }

    /// nginx's log of the requests so far, one [`Logged`] per request. A line nginx is still
    /// writing (no newline yet) is not one of them.
    fn logged(&self) -> Vec<Logged> {
        let text = fs::read_to_string(&self.upstream_log).unwrap_or_default();
        let complete = text.rfind('\n').map_or("", |end| &text[..end]);
        complete
            .lines()
            .map(|line| Logged::parse(line).unwrap_or_else(|| panic!("{line:?}")))
            .collect()
    }

    /// Sends a few requests one by one, and checks that both hosts answer some.
    fn warm_up(&self) {
        for _ in 0..20 {
            let response = self.nginx.get("/").expect("a request through nginx");
            assert_eq!(response.status, 200, "{response:?}\n{}", self.nginx.error_log());
        }
        for host in &self.hosts {
            let answered = self.logged().iter().filter(|l| l.answered_by(host.addr)).count();
            assert!(answered > 0, "{} answered none of 20 requests", host.addr);
        }
    }

    /// Starts the load and waits until nginx has logged [`LOAD_BEFORE_STOP`] more requests
    /// (at most [`LOAD_WAIT`]).
    fn load(&self) -> std::thread::JoinHandle<Wrk> {
        let before = self.logged().len();
        let wrk = Wrk::start(self.nginx.port(), CONNS, LOAD_SECS, "/");
        wait_until(LOAD_WAIT, || self.logged().len() >= before + LOAD_BEFORE_STOP);
        let flowing = self.logged().len() - before;
        assert!(flowing >= LOAD_AT_LEAST, "no load through nginx:\n{}", self.nginx.error_log());
        wrk
    }
}

/// One line of nginx's `upstreams` log.
#[derive(Debug, PartialEq, Eq)]
struct Logged {
    /// What the client got.
    status: u16,
    /// The hosts nginx tried, in order: the last one answered.
    tried: Vec<String>,
    /// Each try's status (`502` for a connection that failed, `-` when none was made).
    statuses: Vec<String>,
}

impl Logged {
    /// Parses `200|10.213.1.2:9000, 10.213.2.2:9000|502, 200`.
    fn parse(line: &str) -> Option<Logged> {
        let mut fields = line.split('|');
        let status = fields.next()?.parse().ok()?;
        let list = |field: &str| field.split(", ").map(str::to_owned).collect::<Vec<_>>();
        let tried = list(fields.next()?);
        let statuses = list(fields.next()?);
        fields.next().is_none().then_some(Logged { status, tried, statuses })
    }

    fn answered_by(&self, host: SocketAddr) -> bool {
        self.status == 200 && self.tried.last().is_some_and(|h| *h == host.to_string())
    }

    fn retried(&self) -> bool {
        self.tried.len() > 1
    }
}

/// The value of field `name` in a JSON log line of fcgi-rs (flat, one object per line).
fn field<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    let key = format!("\"{name}\":");
    let rest = &line[line.find(&key)? + key.len()..];
    if let Some(quoted) = rest.strip_prefix('"') {
        return quoted.split('"').next();
    }
    Some(&rest[..rest.find([',', '}']).unwrap_or(rest.len())])
}

#[test]
fn nginx_lines_are_parsed() {
    let cases = [
        ("200|10.213.1.2:9000|200", Some((200, 1, false))),
        ("200|10.213.1.2:9000, 10.213.2.2:9000|502, 200", Some((200, 2, true))),
        ("502|10.213.1.2:9000, 10.213.2.2:9000|502, 502", Some((502, 2, true))),
        ("200|10.213.1.2:9000", None),
        ("x|a|b", None),
    ];
    for (line, want) in cases {
        let got = Logged::parse(line).map(|l| (l.status, l.tried.len(), l.retried()));
        assert_eq!(got, want, "{line}");
    }
    let answered = Logged::parse("200|10.213.1.2:9000, 10.213.2.2:9000|502, 200").expect("parsed");
    assert!(answered.answered_by("10.213.2.2:9000".parse().expect("an address")));
    assert!(!answered.answered_by("10.213.1.2:9000".parse().expect("an address")));
}

#[test]
fn a_host_stopped_gracefully_under_load_loses_no_request() {
    // One load at a time (`fcgi_tests::load`): two wrk runs, two nginx and four hosts on a
    // 2-core machine would starve each other, and the timings above would stop meaning anything.
    let _one = fcgi_tests::load::exclusive();
    let Some(mut cluster) = Cluster::start("a_host_stopped_gracefully_under_load_loses_no_request")
    else {
        return;
    };
    cluster.warm_up();
    let wrk = cluster.load();

    let status = cluster.hosts[0].stop(libc::SIGTERM);
    assert!(status.success(), "host1 exited with {status}:\n{}", cluster.hosts[0].log());
    let stopped_at = cluster.logged().len();

    let wrk = wrk.join().expect("the wrk thread");
    eprintln!("{}", wrk.output);
    assert_eq!(wrk.non_2xx(), 0, "answers other than 200:\n{}", wrk.output);
    assert_eq!(wrk.socket_errors(), 0, "socket errors:\n{}", wrk.output);
    assert!(wrk.requests() >= 1000, "too little load:\n{}", wrk.output);

    // The host finished everything it had taken (its "stopped" line: nothing unfinished), and
    // every request it finished reached a client: nginx logged exactly that many as its.
    let host1 = &cluster.hosts[0];
    let log = host1.log();
    let stopped = log.lines().find(|l| field(l, "msg") == Some("stopped"));
    let stopped = stopped.unwrap_or_else(|| panic!("host1 logged no \"stopped\" line:\n{log}"));
    assert_eq!(field(stopped, "unfinished"), Some("0"), "{stopped}");
    let logged = cluster.logged();
    // 499: wrk closed connections with a request in flight when its time was up.
    let others: Vec<&Logged> = logged.iter().filter(|l| l.status != 200).collect();
    let cut_by_wrk = others.iter().all(|l| l.status == 499) && others.len() <= CONNS as usize;
    assert!(cut_by_wrk, "nginx answered other than 200: {others:?}");
    let by_host1 = logged.iter().filter(|l| l.answered_by(host1.addr)).count();
    assert_eq!(field(stopped, "requests"), Some(by_host1.to_string().as_str()), "{stopped}");

    // After the stop, the other host answered; the requests that met host1 stopping were
    // retried there. The first CONNS lines after the exit are left out: nginx may log a request
    // host1 answered just before it exited a moment later, and at most CONNS are in flight.
    let after = &logged[(stopped_at + CONNS as usize).min(logged.len())..];
    assert!(after.len() > 100, "little load after the stop: {}", after.len());
    let host2 = cluster.hosts[1].addr;
    let answered = after.iter().filter(|l| l.status != 499);
    assert!(answered.clone().all(|l| l.answered_by(host2)), "host1 answered after it exited");
    let retried = logged.iter().filter(|l| l.retried()).count();
    eprintln!(
        "graceful stop: {} requests, host1 answered {by_host1} before it stopped, {retried} \
         retried on host2, 0 failed",
        wrk.requests()
    );
}

#[test]
fn a_host_killed_under_load_loses_at_most_its_requests_in_flight() {
    // One load at a time (`fcgi_tests::load`): two wrk runs, two nginx and four hosts on a
    // 2-core machine would starve each other, and the timings above would stop meaning anything.
    let _one = fcgi_tests::load::exclusive();
    let test = "a_host_killed_under_load_loses_at_most_its_requests_in_flight";
    let Some(mut cluster) = Cluster::start(test) else { return };
    cluster.warm_up();
    let load = cluster.load();

    let status = cluster.hosts[0].stop(libc::SIGKILL);
    assert!(!status.success(), "host1 survived SIGKILL: {status}");

    let wrk = load.join().expect("the wrk thread");
    eprintln!("{}", wrk.output);
    // Each connection of wrk has at most one request in flight, so a host can hold at most
    // CONNS of them when it dies; nginx retries those it can (no response header yet).
    let lost = wrk.failures();
    assert!(lost <= u64::from(CONNS), "{lost} requests lost, more than in flight:\n{}", wrk.output);
    assert!(wrk.requests() >= 1000, "too little load:\n{}", wrk.output);
    let total = wrk.requests();

    // nginx has marked host1 failed (max_fails=1): from now on every request succeeds, on
    // host2, even when nginx tries host1 again after fail_timeout.
    let before = cluster.logged().len();
    let wrk = Wrk::start(cluster.nginx.port(), CONNS, 2, "/").join().expect("the wrk thread");
    assert_eq!(wrk.failures(), 0, "failures after the kill:\n{}", wrk.output);
    assert!(cluster.logged().len() >= before + 500, "too little load after the kill");
    let logged = cluster.logged();
    let host2 = cluster.hosts[1].addr;
    let after = &logged[before..];
    let not_host2: Vec<&Logged> =
        after.iter().filter(|l| l.status != 499 && !l.answered_by(host2)).collect();
    assert!(not_host2.is_empty(), "not answered by host2: {not_host2:?}");
    eprintln!(
        "kill -9: {lost} of {total} requests lost (at most {CONNS} in flight), then all {} on host2",
        after.len()
    );
}

/// How long the held CGI program waits for its release file before it answers anyway, so that
/// a failing test never leaves it running.
const HELD_MAX_S: u32 = 20;

/// A stopping host must refuse new connections at once, so that the balancer sends the
/// request elsewhere: with a master too (`--workers 2`), whose workers drain a request that
/// is still running. Loopback only: this needs no namespace.
#[test]
fn a_master_stopping_gracefully_refuses_new_connections_at_once() {
    let dir = scratch();
    let root = dir.path().join("cgi-bin");
    fs::create_dir(&root).expect("the CGI directory");
    let (started, release) = (dir.path().join("started"), dir.path().join("release"));
    let program = root.join("held");
    // Runs until the test creates `release` (at most HELD_MAX_S), then answers.
    let script = format!(
        "#!/bin/sh\n: > '{started}'\ni=0\n\
         while [ ! -e '{release}' ] && [ $i -lt {ticks} ]; do sleep 0.1; i=$((i + 1)); done\n\
         printf 'Content-Type: text/plain\\r\\n\\r\\nheld\\n'\n",
        started = started.display(),
        release = release.display(),
        ticks = HELD_MAX_S * 10,
    );
    fs::write(&program, script).expect("the CGI program");
    fs::set_permissions(&program, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod");
    let root_arg = root.display().to_string();
    let extra = ["--cgi-root", &root_arg, "--workers", "2", "--log-format", "json"];
    let mut serve = FcgiServe::start(dir.path(), "master", "cgi", Transport::Tcp, &extra);
    let addr = serve.addr().clone();

    let request = {
        let mut command = std::process::Command::new(fcgi_bin());
        command.args(["request", "--timeout", "30", "--connect", &addr.listen_arg()]);
        command.arg("--param").arg(format!("SCRIPT_FILENAME={}", program.display()));
        std::thread::spawn(move || command.arg("/held").output().expect("fcgi request runs"))
    };
    assert!(wait_until(START_TIMEOUT, || started.exists()), "the program did not start");

    serve.process().signal(libc::SIGTERM);
    let refused = wait_until(Duration::from_secs(2), || !addr.accepts());
    // Let the held request finish either way, so that the server can stop.
    fs::write(&release, "").expect("the release file");
    assert!(refused, "{addr:?} still takes connections while the master drains");

    let output = request.join().expect("the request thread");
    let body = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success() && body == "held\n", "the running request: {output:?}");
    let status = serve.process().wait_exit(Duration::from_secs(GRACEFUL_TIMEOUT_S));
    assert!(status.is_some_and(|s| s.success()), "the master: {status:?}\n{}", serve.log());
}
