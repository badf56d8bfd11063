//! While every worker runs a long request, the server waits for them without spinning: the
//! thread that stands in for the workers (it reads new requests and queues them) sleeps in
//! epoll like they do. (It once passed a pool wake-up that no worker needed back to itself,
//! and burnt a core for as long as the requests ran.)

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use fcgi_codec::Role;
use fcgi_tests::addr::Transport;
use fcgi_tests::nginx::scratch;
use fcgi_tests::process::{children_of, wait_until, FcgiServe};
use fcgi_tests::raw::{frames, Client};

/// A CGI program that answers once a line can be read from `fifo`: the test decides when.
fn blocking_script(path: &Path, fifo: &Path) {
    let text = format!(
        "#!/bin/sh\nread line < '{}'\nprintf 'Content-Type: text/plain\\n\\n%s' \"$line\"\n",
        fifo.display()
    );
    fs::write(path, text).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).unwrap();
}

fn mkfifo(path: &Path) {
    let c_path = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
    // SAFETY: a valid, NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0, "mkfifo {}", path.display());
}

#[test]
fn a_server_whose_workers_are_all_busy_waits_without_spinning() {
    let dir = scratch();
    let bin = dir.path().join("cgi-bin");
    fs::create_dir(&bin).unwrap();
    let fifos: Vec<_> = (0..2).map(|i| dir.path().join(format!("release-{i}"))).collect();
    for (i, fifo) in fifos.iter().enumerate() {
        mkfifo(fifo);
        blocking_script(&bin.join(format!("block-{i}.sh")), fifo);
    }
    let root = bin.to_str().unwrap();
    // Two threads at most, one spare: both busy, the third request queues (for long enough).
    let args = [
        "--cgi-root",
        root,
        "--max-threads",
        "2",
        "--min-spare",
        "1",
        "--max-spare",
        "2",
        "--queue-timeout",
        "60",
    ];
    let mut fcgi = FcgiServe::start(dir.path(), "fcgi", "cgi", Transport::Unix, &args);
    let pid = fcgi.process().pid();

    let request = |script: &str| {
        let filename = bin.join(script).display().to_string();
        let params = [("SCRIPT_FILENAME", filename.as_str()), ("REQUEST_METHOD", "GET")];
        let mut client = Client::connect(fcgi.addr());
        client.send_ok(&frames::request(1, Role::Responder, false, &params, b""));
        client
    };
    let mut running = [request("block-0.sh"), request("block-1.sh")];
    assert!(
        wait_until(Duration::from_secs(10), || children_of(pid).len() == 2),
        "both programs run"
    );
    let mut queued = request("block-0.sh");

    // The measurement: CPU used over a second in which nothing happens but waiting.
    let before = fcgi.process().cpu_seconds();
    std::thread::sleep(Duration::from_secs(1));
    let used = fcgi.process().cpu_seconds() - before;
    assert!(used < 0.3, "the server used {used:.2} s of CPU in 1 s of waiting");

    // Let the programs answer, the queued one too: nothing was lost meanwhile.
    for (i, fifo) in fifos.iter().enumerate() {
        writeln!(fs::OpenOptions::new().write(true).open(fifo).unwrap(), "done-{i}").unwrap();
    }
    for (i, client) in running.iter_mut().enumerate() {
        let reply = client.read_reply(1);
        reply.assert_complete(200);
        assert_eq!(reply.body_text(), format!("done-{i}"));
    }
    writeln!(fs::OpenOptions::new().write(true).open(&fifos[0]).unwrap(), "queued").unwrap();
    let reply = queued.read_reply(1);
    reply.assert_complete(200);
    assert_eq!(reply.body_text(), "queued");
}
