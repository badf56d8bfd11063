//! FCGI_KEEP_CONN: a kept connection serves a thousand requests one after another, each with
//! request id 1 as nginx sends them; without the flag the server closes the connection after
//! END_REQUEST, itself, on the thread that answered, and input the web server sends after the
//! request costs nothing of the answer.

use std::sync::mpsc;
use std::sync::Mutex;
use std::time::Instant;

use fcgi_codec::Role;
use fcgi_server::{Request, Response};
use fcgi_tests::inproc::{self, TestServer};
use fcgi_tests::process::wait_until;
use fcgi_tests::raw::{frames, FrameKind};

use super::common::{assert_echo, echo, echo_server, SIGNAL};

#[test]
fn keep_conn_serves_1000_sequential_requests_on_one_connection() {
    let server = echo_server();
    let mut client = server.connect();
    let started = Instant::now();
    for i in 0..1000 {
        // Request id 1 every time, as nginx does.
        assert_echo(&mut client, &i.to_string(), b"");
    }
    eprintln!("1,000 kept-connection requests in {:?}", started.elapsed());
}

#[test]
fn without_keep_conn_the_server_closes_after_end_request() {
    let server = echo_server();
    let mut client = server.connect();
    client.send_ok(&frames::request(1, Role::Responder, false, &[("SAY", "once")], b"body"));
    let reply = client.read_reply(1);
    reply.assert_complete(200);
    assert_eq!(reply.body, b"once:body");
    // Nothing after END_REQUEST, and the end of the stream (not a timeout).
    assert_eq!(client.next_frame().unwrap(), None);
}

#[test]
fn without_keep_conn_the_thread_that_answered_closes_the_connection() {
    // The web server keeps its end open after END_REQUEST: the server closes the connection
    // itself, on the thread that ran the request, rather than when the web server's close
    // wakes a thread for it.
    let server = TestServer::start(inproc::config(), |b| b.responder(inproc::hello));
    let mut client = server.connect();
    client.send_ok(&frames::request(1, Role::Responder, false, &[], b""));
    client.read_reply(1).assert_complete(200);
    assert!(
        wait_until(SIGNAL, || server.logs().contains("why=answered its last request")),
        "the connection was not closed by the server: {:#?}",
        server.logs().lines()
    );
    drop(client);
}

#[test]
fn without_keep_conn_input_after_the_request_costs_nothing_of_the_answer() {
    // Over TCP, where a socket closed with unread input resets the connection and can take
    // the end of the answer with it: a record after the request is taken in (or the close
    // waits for it), and the answer arrives whole, then the end of the stream.
    let (sent, wait) = mpsc::channel::<()>();
    let wait = Mutex::new(wait);
    let server = TestServer::start(inproc::config(), move |b| {
        b.responder(move |request: &mut Request, response: &mut Response| {
            let _ = wait.lock().unwrap().recv_timeout(SIGNAL);
            echo(request, response)
        })
    });
    for round in 0..20 {
        let mut client = server.connect();
        let mut bytes = frames::request(1, Role::Responder, false, &[("SAY", "once")], b"body");
        // A management record, sent before the answer is read.
        bytes.extend_from_slice(&frames::get_values(&["FCGI_MPXS_CONNS"]));
        client.send_ok(&bytes);
        sent.send(()).unwrap();
        let frames = client
            .read_until_closed()
            .unwrap_or_else(|e| panic!("round {round}: the connection broke: {e}"));
        let stdout: Vec<u8> = frames
            .iter()
            .filter(|f| f.request_id == 1)
            .filter_map(|f| match &f.kind {
                FrameKind::Stdout(content) => Some(content.clone()),
                _ => None,
            })
            .flatten()
            .collect();
        let text = String::from_utf8_lossy(&stdout);
        assert!(text.ends_with("\r\n\r\nonce:body"), "round {round}: the answer: {text:?}");
        assert!(
            frames.iter().any(|f| matches!(f.kind, FrameKind::EndRequest(_))),
            "round {round}: no END_REQUEST: {frames:?}"
        );
    }
}
