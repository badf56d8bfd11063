//! Records in any order: a property test that sends arbitrary sequences of valid records (and
//! a few invalid ones) on a connection, under small limits, and checks the invariants of the
//! connection's request lifecycle (crates/fcgi-server/src/conn/slot.rs) from outside:
//!
//! - the server never panics or stops: a plain request on a new connection is answered;
//! - every END_REQUEST answers a request that was begun, and at most once per BEGIN_REQUEST;
//! - a stream's records never come after its end, nor after the request's END_REQUEST;
//! - the connection ends cleanly or with a protocol error, never with a half-written record.

use std::collections::HashMap;
use std::io::Read;
use std::sync::OnceLock;
use std::time::Duration;

use fcgi_codec::{RecordType, StreamKind};
use fcgi_server::{streaming, Config, Request, Response, Role};
use fcgi_tests::inproc::{self, TestServer};
use fcgi_tests::raw::{frames, FrameKind};
use fcgi_tests::settings::scaled;
use proptest::prelude::*;

/// What the test sends, one record (or stream end) at a time.
#[derive(Clone, Debug)]
enum Op {
    Begin { id: u16, role: u16, keep: bool },
    Params { id: u16, pairs: Vec<(String, String)> },
    ParamsEnd(u16),
    Stdin { id: u16, len: usize },
    StdinEnd(u16),
    Data { id: u16, len: usize },
    DataEnd(u16),
    Abort(u16),
    GetValues(usize),
    Unknown(u8),
}

impl Op {
    fn encode(&self) -> Vec<u8> {
        match self {
            Op::Begin { id, role, keep } => frames::begin_role(*id, *role, *keep),
            Op::Params { id, pairs } => {
                let pairs: Vec<(&str, &str)> =
                    pairs.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
                frames::stream(StreamKind::Params, *id, &frames::pairs(&pairs))
            }
            Op::ParamsEnd(id) => frames::end(StreamKind::Params, *id),
            Op::Stdin { id, len } => frames::stream(StreamKind::Stdin, *id, &vec![b's'; *len]),
            Op::StdinEnd(id) => frames::end(StreamKind::Stdin, *id),
            Op::Data { id, len } => frames::stream(StreamKind::Data, *id, &vec![b'd'; *len]),
            Op::DataEnd(id) => frames::end(StreamKind::Data, *id),
            Op::Abort(id) => frames::abort(*id),
            Op::GetValues(n) => frames::get_values(&vec!["FCGI_MAX_REQS"; *n]),
            Op::Unknown(kind) => frames::record(RecordType::from(*kind), 0, b"?"),
        }
    }
}

fn op() -> impl Strategy<Value = Op> {
    let id = 1u16..5;
    prop_oneof![
        3 => (id.clone(), 0u16..5, any::<bool>()).prop_map(|(id, role, keep)| Op::Begin { id, role, keep }),
        2 => (id.clone(), prop::collection::vec(("[A-Z_]{1,12}", "[ -~]{0,40}"), 0..4))
            .prop_map(|(id, pairs)| Op::Params { id, pairs }),
        3 => id.clone().prop_map(Op::ParamsEnd),
        2 => (id.clone(), 1usize..5000).prop_map(|(id, len)| Op::Stdin { id, len }),
        3 => id.clone().prop_map(Op::StdinEnd),
        1 => (id.clone(), 1usize..300).prop_map(|(id, len)| Op::Data { id, len }),
        1 => id.clone().prop_map(Op::DataEnd),
        1 => id.clone().prop_map(Op::Abort),
        1 => (0usize..40).prop_map(Op::GetValues),
        1 => (12u8..20).prop_map(Op::Unknown),
    ]
}

/// Reads the body, then answers with its length; streams it (so that it may start early).
fn count(request: &mut Request, response: &mut Response) -> Result<(), fcgi_server::Error> {
    let mut body = Vec::new();
    request.body().read_to_end(&mut body)?;
    if let Some(data) = request.data() {
        data.read_to_end(&mut body)?;
    }
    use std::io::Write;
    write!(response, "{}", body.len())?;
    Ok(())
}

fn server() -> &'static TestServer {
    static SERVER: OnceLock<TestServer> = OnceLock::new();
    SERVER.get_or_init(|| {
        let config = Config {
            max_conn_requests: 3,
            memory_budget: 64 * 1024 + 8 * 1024,
            spool_memory: 2048,
            max_body: Some(12_000),
            read_timeout: Duration::from_secs(2),
            ..inproc::config()
        };
        TestServer::start(config, |b| {
            b.handler(Role::Responder, streaming(count))
                .authorizer(count)
                .handler(Role::Filter, streaming(count))
        })
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn any_sequence_of_records_keeps_the_invariants(ops in prop::collection::vec(op(), 1..40)) {
        let server = server();
        let mut client = server.connect();
        let mut begun: HashMap<u16, usize> = HashMap::new();
        for op in &ops {
            if let Op::Begin { id, .. } = op {
                *begun.entry(*id).or_default() += 1;
            }
            if client.send(&op.encode()).is_err() {
                break; // closed for a protocol error: the reads below see how
            }
        }
        // First what the server answers while the connection stays open (until it has been
        // quiet for a moment), then what it does once our side is closed.
        client.set_timeout(Duration::from_millis(50));
        let mut closed_ours = false;
        let mut ended: HashMap<u16, usize> = HashMap::new();
        let mut stream_ended: HashMap<(u16, bool), bool> = HashMap::new();
        loop {
            match client.next_frame() {
                Ok(Some(frame)) => {
                    let id = frame.request_id;
                    match frame.kind {
                        FrameKind::EndRequest(_) => {
                            prop_assert!(begun.contains_key(&id), "END_REQUEST for {id}, never begun");
                            *ended.entry(id).or_default() += 1;
                            stream_ended.retain(|(sid, _), _| *sid != id);
                        }
                        FrameKind::Stdout(ref content) | FrameKind::Stderr(ref content) => {
                            prop_assert!(begun.contains_key(&id), "output for {id}, never begun");
                            let stderr = matches!(frame.kind, FrameKind::Stderr(_));
                            let done = stream_ended.entry((id, stderr)).or_default();
                            prop_assert!(!*done, "a record after the end of a stream of {id}");
                            *done = content.is_empty();
                        }
                        FrameKind::GetValuesResult(_) | FrameKind::UnknownType(_) => {
                            prop_assert_eq!(id, 0);
                        }
                        FrameKind::Other(kind, _) => prop_assert!(false, "sent a {kind:?} record"),
                    }
                }
                Ok(None) => break,
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut && !closed_ours => {
                    client.shutdown_write();
                    client.set_timeout(scaled(Duration::from_secs(10)));
                    closed_ours = true;
                }
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                    prop_assert!(false, "the connection neither answered nor closed: {ops:?}")
                }
                // A reset after a protocol error is a way to close.
                Err(e) if fcgi_tests::raw::is_closed(&e) => break,
                Err(e) => prop_assert!(false, "a broken record from the server: {e}"),
            }
        }
        for (id, ends) in &ended {
            prop_assert!(*ends <= begun[id], "{ends} END_REQUESTs for {} BEGIN_REQUESTs of {id}", begun[id]);
        }
        // The server lives on.
        let reply = server.connect().simple_request(&[], b"abc");
        reply.assert_complete(200);
        prop_assert_eq!(reply.body, b"3".to_vec());
    }
}
