//! What a handler sees of a request: its params, its body streams, whether it was aborted.

use std::io::{self, Read};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU8, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use fcgi_codec::{Params, Role};

use crate::conn::budget::Charge;
use crate::conn::spool::{Spool, SpoolError};

/// `RequestShared::run`: handed to the pool, not yet taken by a thread.
const QUEUED: u8 = 0;
/// A pool thread took it: its handler runs (or ran).
const TAKEN: u8 = 1;
/// The connection answered it for having waited too long: the thread that takes it drops it.
const EXPIRED: u8 = 2;

/// `RequestShared::output`: nothing of the response has gone to the web server.
const OUT_NONE: u8 = 0;
/// The handler's response has begun to go out.
const OUT_STARTED: u8 = 1;
/// The server answered the request itself, past the request timeout: the handler's output
/// goes nowhere.
const OUT_TAKEN: u8 = 2;

/// What the server found when it took a request's answer over (see
/// [`RequestShared::take_over`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TakenOver {
    /// Nothing had gone out: the server's own answer (`504`) is the response.
    Unanswered,
    /// The handler's response had begun: it can only be cut short.
    Started,
}

/// The state a request shares between the connection (which feeds it) and its handler.
#[derive(Debug)]
pub(crate) struct RequestShared {
    pub(crate) stdin: Arc<Spool>,
    pub(crate) data: Option<Arc<Spool>>,
    pub(crate) aborted: AtomicBool,
    /// Set once the handler has returned and all input is in: nothing more is routed to the
    /// request, and its id may be reused.
    pub(crate) finished: AtomicBool,
    /// Set once END_REQUEST is written (or cannot be): until then the connection is not idle.
    pub(crate) answered: AtomicBool,
    /// Who answers a request handed to the pool: the thread that takes it, or the connection
    /// once it waited past the queue timeout. Whoever moves it from `QUEUED` first.
    run: AtomicU8,
    /// Who writes the response: the handler, until the server takes it over (request timeout).
    output: AtomicU8,
    /// The program the handler runs for it ([`Request::note_child`]), 0 for none: for the
    /// access log.
    pub(crate) child: AtomicU32,
}

impl RequestShared {
    pub(crate) fn new(stdin: Arc<Spool>, data: Option<Arc<Spool>>) -> RequestShared {
        RequestShared {
            stdin,
            data,
            aborted: AtomicBool::new(false),
            finished: AtomicBool::new(false),
            answered: AtomicBool::new(false),
            run: AtomicU8::new(QUEUED),
            output: AtomicU8::new(OUT_NONE),
            child: AtomicU32::new(0),
        }
    }

    /// Every input stream has ended (or stopped).
    pub(crate) fn input_complete(&self) -> bool {
        self.stdin.is_done() && self.data.as_deref().is_none_or(Spool::is_done)
    }

    /// Why an input stream stopped before its end, if one did.
    pub(crate) fn input_error(&self) -> Option<SpoolError> {
        self.stdin.error().or_else(|| self.data.as_ref().and_then(|data| data.error()))
    }

    /// Stops every input stream with `error`: readers get it after what came before.
    pub(crate) fn fail_input(&self, error: SpoolError) {
        self.stdin.fail(error.clone());
        if let Some(data) = &self.data {
            data.fail(error);
        }
    }

    /// The web server gave up on the request (or the connection went): handlers waiting for
    /// input wake up and stop.
    pub(crate) fn abort(&self) {
        self.aborted.store(true, Ordering::Release);
        // Failing the body wakes a task waiting for the abort (see `poll_aborted`).
        self.fail_input(SpoolError::Aborted);
    }

    /// Ready once the request is aborted; until then, `cx`'s task is woken by the abort.
    fn poll_aborted(&self, cx: &mut Context<'_>) -> Poll<()> {
        if self.aborted.load(Ordering::Acquire) {
            return Poll::Ready(());
        }
        // The body's spool keeps the waker: an abort fails it, which wakes the task. (There,
        // not here, so that a request costs no lock of its own for a rare event.)
        self.stdin.wake_on_failure(cx.waker());
        // An abort between the first look and the waker's storing took no waker: look again.
        if self.aborted.load(Ordering::Acquire) {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }

    /// A pool thread takes the request; false if the connection answered it already.
    pub(crate) fn take(&self) -> bool {
        self.run.compare_exchange(QUEUED, TAKEN, Ordering::AcqRel, Ordering::Acquire).is_ok()
    }

    /// The connection answers the request in place of a thread that never came; false if a
    /// thread took it first.
    pub(crate) fn expire(&self) -> bool {
        self.run.compare_exchange(QUEUED, EXPIRED, Ordering::AcqRel, Ordering::Acquire).is_ok()
    }

    /// Still waiting in the pool's queue.
    pub(crate) fn is_queued(&self) -> bool {
        self.run.load(Ordering::Acquire) == QUEUED
    }

    /// The handler's response is about to write to the web server; false if the server has
    /// taken the answer over, and nothing of the handler's may go out any more.
    pub(crate) fn start_output(&self) -> bool {
        match self.output.compare_exchange(
            OUT_NONE,
            OUT_STARTED,
            Ordering::AcqRel,
            Ordering::Acquire,
        ) {
            Ok(_) => true,
            Err(now) => now == OUT_STARTED,
        }
    }

    /// The server answers the request itself (it ran past the request timeout): from now on
    /// the handler's writes fail. Says whether the handler's response had begun; `None` if it
    /// was taken over already.
    pub(crate) fn take_over(&self) -> Option<TakenOver> {
        match self.output.swap(OUT_TAKEN, Ordering::AcqRel) {
            OUT_NONE => Some(TakenOver::Unanswered),
            OUT_STARTED => Some(TakenOver::Started),
            _ => None,
        }
    }

    /// Whether the server answered in the handler's place.
    pub(crate) fn is_taken_over(&self) -> bool {
        self.output.load(Ordering::Acquire) == OUT_TAKEN
    }
}

/// One request, as its handler sees it.
///
/// Params are byte strings, looked up by name; the CGI variables people use most have typed
/// helpers. The body is a stream ([`Request::body`]) that the server keeps filling while the
/// handler runs, so a handler may answer before the body has fully arrived.
///
/// ```
/// use fcgi_server::{Request, Response};
///
/// fn handle(request: &mut Request, response: &mut Response) -> Result<(), fcgi_server::Error> {
///     let name = request.query_string().unwrap_or("world");
///     response.header("Content-Type", "text/plain")?;
///     write!(response, "Hello, {name}! You sent a {} request.", request.method().unwrap_or("?"))?;
///     Ok(())
/// }
/// # use std::io::Write;
/// ```
///
/// # Which param carries what
///
/// The web server decides the params; FastCGI fixes none of them. What nginx 1.22 sends with
/// Debian's `fastcgi_params` (`include fastcgi_params;`, as `nginx/fcgi-unix.conf` does), for a
/// `location /` that passes everything to the app:
///
/// | request | `REQUEST_URI` | `DOCUMENT_URI` | `SCRIPT_NAME` | `PATH_INFO` | `QUERY_STRING` |
/// | --- | --- | --- | --- | --- | --- |
/// | `/items/7%20x?q=a+b` | `/items/7%20x?q=a+b` | `/items/7 x` | `/items/7 x` | not sent | `q=a+b` |
/// | `/a//b/../c?x=1` | `/a//b/../c?x=1` | `/a/c` | `/a/c` | not sent | `x=1` |
/// | `/old?z=3`, after `rewrite ^ /new/place last` | `/old?z=3` | `/new/place` | `/new/place` | not sent | `z=3` |
/// | `/dir/`, with `fastcgi_index index.php` | `/dir/` | `/dir/` | `/dir/index.php` | not sent | (empty) |
/// | `/split/app/more/path%2Fx?y=2`, with `fastcgi_split_path_info ^(/split/app)(/.*)$` and `fastcgi_param PATH_INFO $fastcgi_path_info` | `/split/app/more/path%2Fx?y=2` | `/split/app/more/path/x` | `/split/app` | `/more/path/x` | `y=2` |
///
/// - **`REQUEST_URI`** is the client's request line, untouched: still percent-encoded, with the
///   query, before any rewrite. It is what to route on and what to put in links back to the
///   same page. [`Request::path`] is its path.
/// - **`DOCUMENT_URI`** (nginx's `$document_uri`) is the path after nginx normalized it
///   (percent-escapes decoded, `//` merged, `..` resolved) and after internal rewrites. Do not
///   route on it: `%2F` became a `/` there.
/// - **`SCRIPT_NAME`** is the same normalized path, or its first part with
///   `fastcgi_split_path_info`, with `fastcgi_index` added to a path that ends in `/`.
///   **`PATH_INFO`** is sent only with `fastcgi_split_path_info` and a `fastcgi_param` line
///   for it; CGI programs and mounted apps (a prefix in `SCRIPT_NAME`, the rest in `PATH_INFO`)
///   need both.
/// - **`QUERY_STRING`** is the query, undecoded and empty when there is none; [`Request::query`]
///   decodes it.
/// - Other web servers name the same things the same way, from CGI (RFC 3875), and differ in
///   details: which of them are sent, and how a path is split. [`Request::path`] therefore
///   takes `REQUEST_URI` first and falls back on `DOCUMENT_URI`, then `SCRIPT_NAME` followed by
///   `PATH_INFO`. Request headers arrive as `HTTP_*` params ([`Request::header`]), the body's
///   type and length as `CONTENT_TYPE` and `CONTENT_LENGTH`, the client as `REMOTE_ADDR` and
///   `REMOTE_PORT`, TLS as `HTTPS=on`.
#[derive(Debug)]
pub struct Request {
    role: Role,
    id: u16,
    keep_conn: bool,
    params: Params,
    shared: Arc<RequestShared>,
    body: Body,
    data: Option<Body>,
    /// The request's params and fixed cost against the server's memory budget, given back
    /// when the handler is done (see [`Request::release`]).
    charge: Charge,
}

impl Request {
    pub(crate) fn new(
        role: Role,
        id: u16,
        keep_conn: bool,
        params: Params,
        shared: Arc<RequestShared>,
        charge: Charge,
    ) -> Request {
        let body = Body { spool: Arc::clone(&shared.stdin) };
        let data = shared.data.as_ref().map(|spool| Body { spool: Arc::clone(spool) });
        Request { role, id, keep_conn, params, shared, body, data, charge }
    }

    pub(crate) fn shared(&self) -> Arc<RequestShared> {
        Arc::clone(&self.shared)
    }

    /// The program noted for it ([`Request::note_child`]), if any.
    pub(crate) fn child(&self) -> Option<u32> {
        Some(self.shared.child.load(Ordering::Relaxed)).filter(|&pid| pid != 0)
    }

    /// The handler is done: what the request holds against the memory budget goes back now,
    /// before END_REQUEST tells the web server it may send the next request. (A body left
    /// unread goes back with its spool.)
    pub(crate) fn release(&mut self) {
        self.charge.shrink(usize::MAX);
    }

    /// The role the web server asked for.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The FastCGI request id (unique among the requests open on its connection).
    pub fn request_id(&self) -> u16 {
        self.id
    }

    /// Whether the web server keeps the connection after this request.
    pub fn keep_conn(&self) -> bool {
        self.keep_conn
    }

    /// Every param, as the web server sent them.
    pub fn params(&self) -> &Params {
        &self.params
    }

    /// The value of param `name`, as bytes.
    pub fn param(&self, name: &str) -> Option<&[u8]> {
        self.params.get(name.as_bytes())
    }

    /// The value of param `name`, if it is valid UTF-8.
    pub fn param_str(&self, name: &str) -> Option<&str> {
        self.param(name).and_then(|value| std::str::from_utf8(value).ok())
    }

    /// `REQUEST_METHOD`: `GET`, `POST`, ...
    pub fn method(&self) -> Option<&str> {
        self.param_str("REQUEST_METHOD")
    }

    /// `SCRIPT_NAME`: the path of the application within the site.
    pub fn script_name(&self) -> Option<&str> {
        self.param_str("SCRIPT_NAME")
    }

    /// `SCRIPT_FILENAME`: the file the web server mapped the request to.
    pub fn script_filename(&self) -> Option<&[u8]> {
        self.param("SCRIPT_FILENAME")
    }

    /// `PATH_INFO`: the path after the script name.
    pub fn path_info(&self) -> Option<&str> {
        self.param_str("PATH_INFO")
    }

    /// `QUERY_STRING`: what follows `?` in the URI, undecoded.
    pub fn query_string(&self) -> Option<&str> {
        self.param_str("QUERY_STRING").filter(|q| !q.is_empty())
    }

    /// The path the client asked for, without the query string and undecoded: the path of
    /// `REQUEST_URI` (`/items/7` for `/items/7?full=1`), else `DOCUMENT_URI`, else
    /// `SCRIPT_NAME` followed by `PATH_INFO`. nginx sends all of these with `fastcgi_params`.
    ///
    /// ```
    /// # fn f(request: &fcgi_server::Request) {
    /// match request.path().as_ref() {
    ///     "/" => { /* the home page */ }
    ///     path if path.starts_with("/items/") => { /* one item */ }
    ///     _ => { /* 404 */ }
    /// }
    /// # }
    /// ```
    pub fn path(&self) -> std::borrow::Cow<'_, str> {
        if let Some(uri) = self.request_uri() {
            return uri.split(['?', '#']).next().unwrap_or_default().into();
        }
        if let Some(uri) = self.param_str("DOCUMENT_URI") {
            return uri.into();
        }
        let script = self.script_name().unwrap_or_default();
        match self.path_info() {
            Some(info) => format!("{script}{info}").into(),
            None => script.into(),
        }
    }

    /// The query string's `name=value` pairs, decoded as an HTML form is (`+` is a space,
    /// `%XX` a byte; what is not UTF-8 after decoding is replaced with U+FFFD), in order.
    ///
    /// ```
    /// # fn f(request: &fcgi_server::Request) {
    /// // ?q=fast+cgi&page=2
    /// for (name, value) in request.query() {
    ///     println!("{name} = {value}"); // "q = fast cgi", "page = 2"
    /// }
    /// # }
    /// ```
    pub fn query(&self) -> Vec<(String, String)> {
        self.query_string().map(decode_form).unwrap_or_default()
    }

    /// The first value of query parameter `name`, decoded (see [`query`](Request::query)).
    pub fn query_value(&self, name: &str) -> Option<String> {
        self.query().into_iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }

    /// `REQUEST_URI`: the URI as the client sent it.
    pub fn request_uri(&self) -> Option<&str> {
        self.param_str("REQUEST_URI")
    }

    /// `CONTENT_TYPE` of the request body.
    pub fn content_type(&self) -> Option<&str> {
        self.param_str("CONTENT_TYPE").filter(|t| !t.is_empty())
    }

    /// `CONTENT_LENGTH` of the request body, when the web server sent a valid one: a plain
    /// decimal number, digits only (RFC 3875 section 4.1.2), so that `+5` or ` 5` is no
    /// length, as no HTTP server would take it for one.
    pub fn content_length(&self) -> Option<u64> {
        self.param("CONTENT_LENGTH").and_then(fcgi_codec::http::parse_content_length)
    }

    /// `REMOTE_ADDR`: the client's address.
    pub fn remote_addr(&self) -> Option<&str> {
        self.param_str("REMOTE_ADDR")
    }

    /// `SERVER_NAME`: the virtual host.
    pub fn server_name(&self) -> Option<&str> {
        self.param_str("SERVER_NAME")
    }

    /// The value of HTTP request header `name` (`HTTP_` + the name upper-cased, `-` as `_`).
    ///
    /// ```
    /// # fn f(request: &fcgi_server::Request) {
    /// let agent = request.header("User-Agent"); // looks up HTTP_USER_AGENT
    /// # }
    /// ```
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        let key: String = "HTTP_"
            .chars()
            .chain(name.chars().map(|c| if c == '-' { '_' } else { c.to_ascii_uppercase() }))
            .collect();
        self.param(&key)
    }

    /// [`header`](Request::header) as text, if it is valid UTF-8.
    ///
    /// ```
    /// # fn f(request: &fcgi_server::Request) {
    /// let wants_json = request.header_str("Accept").is_some_and(|a| a.contains("json"));
    /// # }
    /// ```
    pub fn header_str(&self, name: &str) -> Option<&str> {
        self.header(name).and_then(|value| std::str::from_utf8(value).ok())
    }

    /// The request body (`FCGI_STDIN`), as a stream. Reads wait for the web server; they fail
    /// once the request is aborted or the body passes the configured limit.
    ///
    /// An Authorizer request has no body (the spec gives that role the params only): its body
    /// is empty and complete once its params are in, whether the web server sends an
    /// FCGI_STDIN stream (lighttpd, an empty one) or none at all (Apache's `mod_authnz_fcgi`).
    pub fn body(&mut self) -> &mut Body {
        &mut self.body
    }

    /// The body stream as a value of its own, for a reader that must own it: another thread,
    /// or an async task (`fcgi-http` hands it to `http` services this way). It is the same
    /// stream as [`body`](Request::body), not a copy: what one reads, the other does not see
    /// again.
    ///
    /// ```
    /// use std::io::Read;
    /// use fcgi_server::{Request, Response};
    ///
    /// fn handler(request: &mut Request, _: &mut Response) -> Result<(), fcgi_server::Error> {
    ///     let mut body = request.body_reader();
    ///     let counted = std::thread::spawn(move || std::io::copy(&mut body, &mut std::io::sink()));
    ///     let _bytes = counted.join().expect("the reader thread")?;
    ///     Ok(())
    /// }
    /// ```
    pub fn body_reader(&self) -> Body {
        Body { spool: Arc::clone(&self.shared.stdin) }
    }

    /// Waits until the request's input has all arrived: the body, and the Filter role's data.
    /// True when it arrived whole; false when it stopped short (aborted, over `max_body`, too
    /// slow, or not stored), and then the server answers the request with the status that
    /// says so (413, 408, 503) whatever the handler writes. For a handler that passes the
    /// request on only once it is whole (`fcgi-exec` gives a program nothing before).
    ///
    /// ```
    /// use fcgi_server::{Request, Response};
    ///
    /// fn handler(request: &mut Request, response: &mut Response) -> Result<(), fcgi_server::Error> {
    ///     if !request.wait_for_input() {
    ///         return Ok(()); // answered by the server
    ///     }
    ///     response.write_all(b"the whole body is here")?;
    ///     Ok(())
    /// }
    /// # use std::io::Write;
    /// ```
    pub fn wait_for_input(&self) -> bool {
        self.shared.stdin.wait_complete();
        if let Some(data) = &self.shared.data {
            data.wait_complete();
        }
        self.shared.input_error().is_none() && !self.is_aborted()
    }

    /// The Filter role's second stream (`FCGI_DATA`): the file to filter. `None` for the other
    /// roles.
    pub fn data(&mut self) -> Option<&mut Body> {
        self.data.as_mut()
    }

    /// Whether the web server aborted the request (or went away). A long-running handler should
    /// check this and stop early: nobody will read its answer. Once it is aborted, the
    /// response's writes fail (`ConnectionAborted`), so a handler that streams stops at its
    /// next write, and the request ends with FCGI_END_REQUEST saying that it did not complete
    /// (FCGI_REQUEST_COMPLETE with `appStatus` 1, as a CGI program that gave up exits).
    pub fn is_aborted(&self) -> bool {
        self.shared.aborted.load(Ordering::Acquire)
    }

    /// Says which program the handler runs for this request (the CGI gateway's child, the
    /// program process `fcgi-exec` gives it to), so that the access log (`program_pid`), the
    /// slow log and the status page can name it. Call it on the handler's own thread.
    ///
    /// ```no_run
    /// # fn f(request: &fcgi_server::Request) -> std::io::Result<()> {
    /// let child = std::process::Command::new("/usr/lib/cgi-bin/report").spawn()?;
    /// request.note_child(child.id());
    /// # Ok(())
    /// # }
    /// ```
    pub fn note_child(&self, pid: u32) {
        self.shared.child.store(pid, Ordering::Relaxed);
        crate::status::note_child(pid);
    }

    /// [`is_aborted`](Request::is_aborted) for another thread: a handle that a helper can
    /// check while the handler lends the request out (to a thread feeding its body elsewhere,
    /// say).
    ///
    /// ```
    /// use fcgi_server::{Request, Response};
    ///
    /// fn handler(request: &mut Request, _: &mut Response) -> Result<(), fcgi_server::Error> {
    ///     let abort = request.abort_signal();
    ///     std::thread::scope(|scope| {
    ///         scope.spawn(|| std::io::copy(request.body(), &mut std::io::sink()));
    ///         while !abort.is_aborted() {
    ///             // ... work that stops when the web server gives up ...
    ///             break;
    ///         }
    ///     });
    ///     Ok(())
    /// }
    /// ```
    pub fn abort_signal(&self) -> AbortSignal {
        AbortSignal { shared: Arc::clone(&self.shared) }
    }
}

/// Whether a request was aborted, readable from any thread: see [`Request::abort_signal`].
#[derive(Clone, Debug)]
pub struct AbortSignal {
    shared: Arc<RequestShared>,
}

impl AbortSignal {
    /// Whether the web server aborted the request (or went away).
    pub fn is_aborted(&self) -> bool {
        self.shared.aborted.load(Ordering::Acquire)
    }

    /// For async code: `Ready` once the request is aborted (or its connection went away),
    /// `Pending` until then, and the task of `cx` is woken by the abort. What `fcgi-http`
    /// races a service's future against, so that an aborted request's future is dropped at
    /// once, even while it waits on a timer or a socket.
    ///
    /// ```
    /// use std::future::{poll_fn, Future};
    ///
    /// /// `work`, unless the request is aborted first (`None`: then `work` is dropped).
    /// async fn unless_aborted<F: Future>(signal: fcgi_server::AbortSignal, work: F) -> Option<F::Output> {
    ///     let mut work = std::pin::pin!(work);
    ///     poll_fn(|cx| {
    ///         if let std::task::Poll::Ready(out) = work.as_mut().poll(cx) {
    ///             return std::task::Poll::Ready(Some(out));
    ///         }
    ///         signal.poll_aborted(cx).map(|()| None)
    ///     })
    ///     .await
    /// }
    /// ```
    pub fn poll_aborted(&self, cx: &mut Context<'_>) -> Poll<()> {
        self.shared.poll_aborted(cx)
    }

    /// For a handler out of time (a CGI program past its timeout): gives up on the rest of
    /// the request's input, if it is still arriving. Body reads stop waiting and fail with
    /// `TimedOut`, and so does the wait of the response's first flush, which then answers
    /// `504 Gateway Timeout` in place of whatever was written, since nothing has gone out. A
    /// request whose input is all in is not affected.
    ///
    /// ```
    /// # fn f(request: &fcgi_server::Request) {
    /// let signal = request.abort_signal();
    /// std::thread::spawn(move || {
    ///     std::thread::sleep(std::time::Duration::from_secs(30));
    ///     signal.time_out();
    /// });
    /// # }
    /// ```
    pub fn time_out(&self) {
        self.shared.fail_input(SpoolError::HandlerTimedOut);
    }
}

/// A request input stream: the body (`FCGI_STDIN`) or the Filter role's data (`FCGI_DATA`).
///
/// ```
/// # use std::io::Read;
/// # fn f(request: &mut fcgi_server::Request) -> std::io::Result<()> {
/// let mut body = Vec::new();
/// request.body().read_to_end(&mut body)?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Body {
    spool: Arc<Spool>,
}

impl Read for Body {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.spool.read(buf)
    }
}

/// `application/x-www-form-urlencoded` pairs: split at `&`, then at the first `=`, each side
/// with `+` as a space and `%XX` as a byte. Empty pieces (`a&&b`) are skipped.
fn decode_form(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|piece| !piece.is_empty())
        .map(|piece| {
            let (name, value) = piece.split_once('=').unwrap_or((piece, ""));
            (decode_component(name), decode_component(value))
        })
        .collect()
}

/// One form component: `+` is a space, `%XX` a byte (a `%` not followed by two hex digits is
/// kept as it is), then UTF-8, lossily.
fn decode_component(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |at: usize| bytes.get(at).and_then(|b| (*b as char).to_digit(16));
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                if let (Some(high), Some(low)) = (hex(i + 1), hex(i + 2)) {
                    out.push((high * 16 + low) as u8);
                    i += 3;
                    continue;
                }
                out.push(b'%');
            }
            byte => out.push(byte),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shared() -> RequestShared {
        let config = crate::conn::spool::SpoolConfig {
            memory: 1024,
            dir: None,
            limit: None,
            budget: crate::conn::budget::Budget::new(1 << 20),
            status: crate::status::StatusHandle::default(),
        };
        RequestShared::new(Arc::new(Spool::new(config)), None)
    }

    #[test]
    fn whoever_comes_first_answers_the_handler_or_the_request_timeout() {
        // Nothing sent: the timeout's 504 is the answer, and the handler writes no more.
        let unanswered = shared();
        assert_eq!(unanswered.take_over(), Some(TakenOver::Unanswered));
        assert!(!unanswered.start_output());
        assert!(unanswered.is_taken_over());
        assert_eq!(unanswered.take_over(), None, "taken over once");
        // The handler began first: the timeout can only cut it short.
        let started = shared();
        assert!(started.start_output());
        assert!(started.start_output(), "and goes on writing until then");
        assert_eq!(started.take_over(), Some(TakenOver::Started));
        assert!(!started.start_output());
    }

    #[test]
    fn form_decoding_as_a_table() {
        let table: [(&str, &[(&str, &str)]); 8] = [
            ("", &[]),
            ("a=1&b=2", &[("a", "1"), ("b", "2")]),
            ("q=fast+cgi", &[("q", "fast cgi")]),
            ("q=%C3%A9t%C3%A9", &[("q", "été")]),
            ("flag&&x=", &[("flag", ""), ("x", "")]),
            ("a=b=c", &[("a", "b=c")]),
            ("bad=%zz%4", &[("bad", "%zz%4")]),
            ("%FF=1", &[("\u{FFFD}", "1")]),
        ];
        for (query, want) in table {
            let got = decode_form(query);
            let want: Vec<(String, String)> =
                want.iter().map(|(n, v)| ((*n).to_owned(), (*v).to_owned())).collect();
            assert_eq!(got, want, "{query:?}");
        }
    }
}
