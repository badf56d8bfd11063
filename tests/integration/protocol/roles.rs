//! Roles and request ids: an Authorizer's variables become `Variable-` headers, a Filter reads
//! FCGI_DATA after its body; a role that is unknown, or has no handler on the server, gets
//! UNKNOWN_ROLE (and a 500 for web servers that ignore it), and records for a request id with no
//! request are ignored.

use std::io::{Read, Write};

use fcgi_codec::{ProtocolStatus, Role};
use fcgi_server::{Request, Response};
use fcgi_tests::inproc::{self, TestServer};
use fcgi_tests::raw::frames;

use super::common::{assert_echo, barrier, echo_server, HandlerResult};

#[test]
fn unknown_role_and_a_role_without_handler_get_unknown_role() {
    let server = echo_server();
    let mut client = server.connect();
    // Role 9 is no role at all; Filter and Authorizer have no handler on this server.
    for (id, role) in [(1, 9), (2, 3), (3, 2)] {
        client.send_ok(&frames::begin_role(id, role, true));
        // The web server may send the rest before it sees the refusal: it is ignored.
        client.send_params(id, &[("SAY", "ignored")]);
        client.send_stdin(id, b"ignored");
        let reply = client.read_reply(id);
        assert_eq!(reply.end.protocol_status, ProtocolStatus::UnknownRole, "role {role}");
        // And a 500 before it, for web servers that ignore the protocol status.
        assert_eq!(reply.status, 500, "role {role}: {reply:?}");
    }
    barrier(&mut client);
    assert_echo(&mut client, "responder", b"still served");

    // Without FCGI_KEEP_CONN the refusal also ends the connection.
    let mut once = server.connect();
    once.send_ok(&frames::begin_role(1, 9, false));
    assert_eq!(once.read_reply(1).end.protocol_status, ProtocolStatus::UnknownRole);
    assert_eq!(once.read_until_closed().unwrap(), Vec::new());
}

#[test]
fn records_for_inactive_request_ids_are_ignored() {
    let server = echo_server();
    let mut client = server.connect();
    client.send_ok(&frames::for_no_request(77));
    // Nothing was answered for any of it...
    barrier(&mut client);
    // ...and request 77, begun for real now, starts clean.
    client.send_ok(&frames::request(77, Role::Responder, true, &[], b"real"));
    let reply = client.read_reply(77);
    reply.assert_complete(200);
    assert_eq!(reply.body, b":real");
}

#[test]
fn authorizer_variables_become_variable_headers() {
    let handler = |request: &mut Request, response: &mut Response| -> HandlerResult {
        if request.param("HTTP_AUTHORIZATION") == Some(b"Bearer good") {
            response.variable("USER", "bob")?;
        } else {
            response.set_status(403);
        }
        Ok(())
    };
    let server = TestServer::start(inproc::config(), |b| b.authorizer(handler));
    let mut client = server.connect();
    let params = [("HTTP_AUTHORIZATION", "Bearer good"), ("REQUEST_URI", "/private")];
    client.send_ok(&frames::request(1, Role::Authorizer, true, &params, b""));
    let reply = client.read_reply(1);
    reply.assert_complete(200);
    assert_eq!(reply.header("Variable-USER"), Some("bob"));

    client.send_ok(&frames::request(1, Role::Authorizer, true, &[("REQUEST_URI", "/x")], b""));
    let reply = client.read_reply(1);
    reply.assert_complete(403);
    assert_eq!(reply.header("Variable-USER"), None);
}

#[test]
fn filter_reads_data_after_stdin() {
    let handler = |request: &mut Request, response: &mut Response| -> HandlerResult {
        let mut stdin = String::new();
        request.body().read_to_string(&mut stdin)?;
        let mut data = String::new();
        request.data().ok_or("a Filter request has FCGI_DATA")?.read_to_string(&mut data)?;
        let length = request.param_str("FCGI_DATA_LENGTH").unwrap_or("?").to_owned();
        write!(response, "stdin={stdin};data={data};length={length}")?;
        Ok(())
    };
    let server = TestServer::start(inproc::config(), |b| b.filter(handler));
    let mut client = server.connect();
    let file = "the file to filter";
    let length = file.len().to_string();
    let params = [("FCGI_DATA_LENGTH", length.as_str()), ("FCGI_DATA_LAST_MOD", "0")];
    let mut wire = frames::request(1, Role::Filter, true, &params, b"the body");
    wire.extend(frames::data(1, file.as_bytes()));
    client.send_ok(&wire);
    let reply = client.read_reply(1);
    reply.assert_complete(200);
    assert_eq!(reply.body_text(), format!("stdin=the body;data={file};length={}", file.len()));
}
