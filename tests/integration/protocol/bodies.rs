//! Large bodies, both ways: a 2 MiB request body in records of the largest size, spooled to
//! disk, reaches the handler intact; a response written in writes of every size around the
//! direct-send threshold and the record limit, stderr between them, arrives intact and in order.

use std::io::{Read, Write};

use fcgi_codec::{RecordType, Role, StreamKind};
use fcgi_server::{Config, Request, Response};
use fcgi_tests::data::{fnv1a, fnv1a_continue, pattern, FNV1A_OFFSET};
use fcgi_tests::inproc::{self, TestServer};
use fcgi_tests::raw::frames;

use super::common::HandlerResult;

#[test]
fn two_mebibyte_body_spooled_to_disk_is_read_intact() {
    let handler = |request: &mut Request, response: &mut Response| -> HandlerResult {
        let (mut len, mut hash) = (0usize, FNV1A_OFFSET);
        let mut buf = [0u8; 7000];
        loop {
            match request.body().read(&mut buf)? {
                0 => break,
                n => {
                    len += n;
                    hash = fnv1a_continue(hash, &buf[..n]);
                }
            }
        }
        write!(response, "len={len} fnv={hash:016x}")?;
        Ok(())
    };
    let spool = tempfile::tempdir().unwrap();
    let config = Config {
        spool_memory: 16 * 1024,
        spool_dir: Some(spool.path().to_path_buf()),
        ..inproc::config()
    };
    let server = TestServer::start(config, |b| b.responder(handler));
    let body = pattern(2 << 20, 7);
    let mut client = server.connect();
    client.send_begin(1, Role::Responder, true);
    client.send_params(1, &[("CONTENT_LENGTH", &body.len().to_string())]);
    // Records of 65,535 bytes, the largest there are.
    for chunk in body.chunks(65_535) {
        client.send_ok(&frames::record(RecordType::Stdin, 1, chunk));
    }
    client.send_ok(&frames::end(StreamKind::Stdin, 1));
    let reply = client.read_reply(1);
    reply.assert_complete(200);
    assert_eq!(reply.body_text(), format!("len={} fnv={:016x}", body.len(), fnv1a(&body)));
}

#[test]
fn large_writes_sent_from_the_handlers_buffer_arrive_intact_and_in_order() {
    // Writes of every size around the direct-send threshold (16 KiB) and the record limit,
    // interleaved with small ones that gather in the server's buffer, and stderr between them.
    const SIZES: [usize; 9] = [1, 16 * 1024 - 1, 16 * 1024, 65_528, 65_529, 100_000, 7, 200_003, 3];
    let server = TestServer::start(inproc::config(), |b| {
        b.responder(|_: &mut Request, response: &mut Response| -> Result<(), fcgi_server::Error> {
            response.header("Content-Type", "application/octet-stream")?;
            let body = pattern(SIZES.iter().sum::<usize>() * 8, 7);
            let mut at = 0;
            for round in 0..8 {
                for size in SIZES {
                    response.write_all(&body[at..at + size])?;
                    at += size;
                }
                response.write_stderr(format!("round {round}\n").as_bytes())?;
            }
            Ok(())
        })
    });
    let mut client = server.connect();
    client.send_ok(&frames::request(1, Role::Responder, false, &[], b""));
    let reply = client.read_reply(1);
    reply.assert_complete(200);
    let expected = pattern(SIZES.iter().sum::<usize>() * 8, 7);
    assert_eq!(reply.body.len(), expected.len());
    assert_eq!(fnv1a(&reply.body), fnv1a(&expected), "the body differs");
    let stderr = String::from_utf8_lossy(&reply.stderr).into_owned();
    assert_eq!(stderr.lines().count(), 8, "{stderr}");
}
