//! Management records, request id 0: GET_VALUES is answered with the configured values of the
//! names the server knows, the others left out, and at once, even between the records of a
//! request; a management record type the server does not know gets UNKNOWN_TYPE, and the
//! connection goes on. GET_VALUES with thousands of names is in limits.rs.

use fcgi_codec::{Role, StreamKind};
use fcgi_server::Config;
use fcgi_tests::inproc::{self, TestServer};
use fcgi_tests::raw::{frames, FrameKind};

use super::common::{assert_echo, barrier, echo, echo_server};

#[test]
fn get_values_answers_the_known_names_with_the_configured_values() {
    let config = Config {
        max_conns: 123,
        min_spare: 1,
        max_spare: 2,
        max_threads: 5,
        queue: 7,
        max_conn_requests: 12,
        ..inproc::config()
    };
    let server = TestServer::start(config, |b| b.responder(echo));
    let mut client = server.connect();
    client.send_get_values(&[
        "FCGI_MAX_CONNS",
        "FCGI_NOT_A_VARIABLE",
        "FCGI_MAX_REQS",
        "FCGI_MPXS_CONNS",
    ]);
    let frame = client.expect_frame();
    assert_eq!(frame.request_id, 0);
    let FrameKind::GetValuesResult(pairs) = frame.kind else {
        panic!("expected GET_VALUES_RESULT, got {frame:?}");
    };
    let pairs: Vec<(String, String)> = pairs
        .into_iter()
        .map(|(n, v)| (String::from_utf8(n).unwrap(), String::from_utf8(v).unwrap()))
        .collect();
    let expected = [("FCGI_MAX_CONNS", "123"), ("FCGI_MAX_REQS", "12"), ("FCGI_MPXS_CONNS", "1")];
    let expected: Vec<(String, String)> =
        expected.iter().map(|(n, v)| ((*n).to_owned(), (*v).to_owned())).collect();
    assert_eq!(pairs, expected, "FCGI_MAX_REQS is max_conn_requests; the unknown name is left out");

    // Asking for nothing known gets an empty answer, not silence.
    client.send_get_values(&["FCGI_NOT_A_VARIABLE"]);
    assert_eq!(client.expect_frame().kind, FrameKind::GetValuesResult(Vec::new()));
    assert_echo(&mut client, "after", b"");
}

#[test]
fn get_values_between_a_requests_records_is_answered_at_once() {
    let server = echo_server();
    let mut client = server.connect();
    let pairs = frames::pairs(&[("SAY", "straddling the management record")]);
    client.send_begin(1, Role::Responder, true);
    client.send_ok(&frames::stream(StreamKind::Params, 1, &pairs[..6]));
    // Mid-request, mid-pair: answered now, before the request is complete.
    barrier(&mut client);
    client.send_ok(&frames::stream(StreamKind::Params, 1, &pairs[6..]));
    client.send_ok(&frames::end(StreamKind::Params, 1));
    client.send_ok(&frames::stream(StreamKind::Stdin, 1, b"half"));
    barrier(&mut client);
    client.send_ok(&frames::stdin(1, b" and half"));
    let reply = client.read_reply(1);
    reply.assert_complete(200);
    assert_eq!(reply.body_text(), "straddling the management record:half and half");
}

#[test]
fn unknown_management_types_get_unknown_type_and_the_connection_goes_on() {
    let server = echo_server();
    let mut client = server.connect();
    client.check_unknown_management_types();
    assert_echo(&mut client, "still served", b"");
}
