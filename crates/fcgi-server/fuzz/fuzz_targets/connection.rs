//! Arbitrary record sequences on one connection to a running server: its demultiplexing
//! (`src/demux.rs` and `src/connection.rs`) with the real spools, params decoder, memory
//! budget and pool behind it, under limits small enough to be reached.
//!
//! The input is read as a list of records to send (a BEGIN_REQUEST of any role and flags,
//! params that are pairs or noise, bodies, ends of streams, aborts, management records, other
//! types, and now and then raw bytes), on request ids 0 to 3.
//!
//! Asserts: no panic in any of the server's threads (the panic hook aborts); the server ends
//! the connection within 10 s of the peer's end; what it sends is whole, well-formed records;
//! no record for an id the peer never began, besides management answers on id 0; no more
//! END_REQUESTs for an id than BEGIN_REQUESTs sent for it; and the server still accepts.
#![no_main]

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use fcgi_codec::{encode_pair, Body, Decoder, ParamsLimits, Record};
use fcgi_server::{Config, ListenAddr, ListenOptions, Listener, Server};
use libfuzzer_sys::fuzz_target;

/// The socket of the server the whole run shares.
fn server() -> &'static PathBuf {
    static SOCKET: OnceLock<PathBuf> = OnceLock::new();
    SOCKET.get_or_init(|| {
        std::panic::set_hook(Box::new(|info| {
            eprintln!("{info}");
            std::process::abort();
        }));
        let dir = std::env::temp_dir().join(format!("fcgi-fuzz-connection-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("s.sock");
        let listener =
            Listener::bind(&ListenAddr::Unix(path.clone()), &ListenOptions::default()).unwrap();
        let config = Config {
            min_spare: 1,
            max_spare: 2,
            max_threads: 2,
            queue: 2,
            max_conn_requests: 3,
            memory_budget: 64 * 1024,
            params_limits: ParamsLimits { max_len: 512, max_pairs: 8 },
            max_body: Some(2048),
            spool_memory: 256,
            spool_dir: Some(dir.clone()),
            ..Config::default()
        };
        let echo = |request: &mut fcgi_server::Request, response: &mut fcgi_server::Response| {
            let mut body = Vec::new();
            request.body().read_to_end(&mut body)?;
            let mut data = Vec::new();
            if let Some(stream) = request.data() {
                stream.read_to_end(&mut data)?;
            }
            write!(response, "{} {}", body.len(), data.len())?;
            Ok(())
        };
        let server = Server::builder()
            .listener(listener)
            .config(config)
            .logger(slog::Logger::root(slog::Discard, slog::o!()))
            .handle_signals(false)
            .responder(echo)
            .filter(echo)
            .build();
        std::thread::spawn(move || {
            let ended = server.serve();
            eprintln!("the server stopped: {ended:?}");
            std::process::abort();
        });
        path
    })
}

const NAMES: [&[u8]; 4] = [b"SCRIPT_NAME", b"CONTENT_LENGTH", b"QUERY_STRING", b"X"];

/// Writes one record's header and content (padding to 8, as web servers send it).
fn record(out: &mut Vec<u8>, kind: u8, id: u16, content: &[u8]) {
    let len = content.len().min(usize::from(u16::MAX));
    let padding = (8 - len % 8) % 8;
    let [id_hi, id_lo] = id.to_be_bytes();
    let [len_hi, len_lo] = (len as u16).to_be_bytes();
    out.extend_from_slice(&[1, kind, id_hi, id_lo, len_hi, len_lo, padding as u8, 0]);
    out.extend_from_slice(&content[..len]);
    out.extend(std::iter::repeat_n(0, padding));
}

/// The bytes to send, and how many BEGIN_REQUESTs each id got.
fn script(input: &[u8]) -> (Vec<u8>, [usize; 4]) {
    let mut out = Vec::new();
    let mut begins = [0; 4];
    let mut bytes = input.iter().copied();
    while let Some(op) = bytes.next() {
        let id = u16::from(op / 16 % 4);
        let arg = bytes.next().unwrap_or(0);
        match op % 16 {
            0 | 1 => {
                begins[usize::from(id)] += 1;
                // Roles 1 to 3 and one unknown; FCGI_KEEP_CONN from the low bit.
                let role = u16::from(arg % 4 + 1);
                let [hi, lo] = role.to_be_bytes();
                record(&mut out, 1, id, &[hi, lo, op & 1, 0, 0, 0, 0, 0]);
            }
            2 | 3 => {
                let mut pair = Vec::new();
                let value: Vec<u8> = bytes.by_ref().take(usize::from(arg % 32)).collect();
                let _ = encode_pair(&mut pair, NAMES[usize::from(arg) % NAMES.len()], &value);
                record(&mut out, 4, id, &pair);
            }
            4 => {
                let noise: Vec<u8> = bytes.by_ref().take(usize::from(arg % 16)).collect();
                record(&mut out, 4, id, &noise);
            }
            5 | 6 => record(&mut out, 4, id, &[]),
            7 | 8 => record(&mut out, 5, id, &vec![b'b'; usize::from(arg) * 8]),
            9 | 10 => record(&mut out, 5, id, &[]),
            11 => record(&mut out, 8, id, &vec![b'd'; usize::from(arg)]),
            12 => record(&mut out, 8, id, &[]),
            13 => record(&mut out, 2, id, &[]),
            14 => {
                // Management: GET_VALUES with a name or two, or a type no server knows.
                let mut names = Vec::new();
                let _ = encode_pair(&mut names, b"FCGI_MPXS_CONNS", b"");
                let _ = encode_pair(&mut names, b"FCGI_MAX_REQS", b"");
                match arg % 3 {
                    0 => record(&mut out, 9, 0, &names),
                    1 => record(&mut out, 200, 0, &[arg]),
                    _ => record(&mut out, 6 + arg % 2, id, &[arg]),
                }
            }
            _ => {
                if arg == 0xff {
                    out.extend(bytes.by_ref().take(8));
                }
            }
        }
    }
    (out, begins)
}

/// One record from the server, against the requests begun (`begins`) and those it ended so far.
fn check(record: &Record<'_>, begins: &[usize; 4], ends: &mut [usize; 4]) {
    let id = usize::from(record.request_id);
    if id == 0 {
        assert!(
            matches!(record.body, Body::GetValuesResult(_) | Body::UnknownType(_)),
            "id 0 carries management answers only: {:?}",
            record.body
        );
        return;
    }
    assert!(id < 4 && begins[id] > 0, "a record for request {id}, never begun");
    if let Body::EndRequest(_) = record.body {
        ends[id] += 1;
        assert!(
            ends[id] <= begins[id],
            "request {id} ended {} times, begun {}",
            ends[id],
            begins[id]
        );
    }
}

fuzz_target!(|input: &[u8]| {
    let path = server();
    let (sent, begins) = script(input);
    let mut stream = UnixStream::connect(path).expect("the server accepts");
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    // The server may stop reading until its answers are read: write on a thread of its own.
    let mut writer = stream.try_clone().unwrap();
    let writing = std::thread::spawn(move || {
        let _ = writer.write_all(&sent);
        let _ = writer.shutdown(std::net::Shutdown::Write);
    });
    let mut got = Vec::new();
    if let Err(error) = stream.read_to_end(&mut got) {
        // A reset after the peer's end is the server's right; silence past 10 s is not.
        assert_ne!(error.kind(), std::io::ErrorKind::WouldBlock, "the server never closed");
    }
    writing.join().unwrap();

    let mut decoder = Decoder::new();
    let mut ends = [0; 4];
    let mut rest = &got[..];
    loop {
        let fed = decoder.feed(rest);
        rest = &rest[fed..];
        let mut decoded = false;
        while let Some(record) = decoder.decode().expect("the server's records are well formed") {
            decoded = true;
            check(&record, &begins, &mut ends);
        }
        if rest.is_empty() {
            break;
        }
        assert!(fed > 0 || decoded, "a record longer than the decoder takes");
    }
    assert!(decoder.is_empty(), "the server's last record is cut short");
});
