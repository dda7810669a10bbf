//! A small HTTP/1.1 server for the fakes.
//!
//! One accept thread per listener and one thread per connection. A connection
//! thread reads a request (request line, headers, then a body of exactly
//! Content-Length bytes), calls the handler on that same thread, writes the
//! answer with a Content-Length and reads the next request. A handler that
//! waits or hangs therefore holds only its own connection, and an idle
//! keep-alive connection holds only its own blocked thread.
//!
//! Chunked (or otherwise transfer-coded) request bodies are refused with 411,
//! anything unparsable gets 400; either way the connection is closed. The
//! answer says `Connection: keep-alive` unless the client asked for close
//! (HTTP/1.0 without keep-alive counts as asking) or the handler wants to
//! close; a handler may also close without answering at all.
//!
//! Stopping ([`Server::stop`] or drop): a flag is set, the accept thread is
//! woken by a connection to its own port and exits, dropping the listener (the
//! port refuses connections from then on); then every open connection's
//! socket is shut down, so blocked reads and writes return, and every thread
//! is joined. A handler that is waiting is not woken by this: the fake
//! releases its waiting handlers (its own shutdown flag) before stopping.
#![allow(dead_code)]

use super::{lock, reap};
use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Longest request head (request line and headers) accepted.
const MAX_HEAD: usize = 64 * 1024;
/// Largest request body accepted.
const MAX_BODY: u64 = 16 << 20;
/// A safety net only: a connection silent that long while we read is closed.
const IDLE: Duration = Duration::from_secs(60);
/// How long a connection we close may take to hang up on its side.
const LINGER: Duration = Duration::from_secs(2);

/// A request as received.
#[derive(Clone, Debug)]
pub struct Request {
    /// As sent, e.g. "GET".
    pub method: String,
    /// The request target as sent, e.g. "/a%40b?x=1".
    pub target: String,
    /// Names and values as sent (values without surrounding blanks), in order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The client's address (who connected: the bot, or a proxy for it).
    pub peer: Option<SocketAddr>,
}

impl Request {
    /// The first value of a header (name case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The target up to the `?`.
    pub fn path(&self) -> &str {
        self.target
            .split_once('?')
            .map_or(self.target.as_str(), |(p, _)| p)
    }

    /// The target after the `?` (empty without one).
    pub fn query(&self) -> &str {
        self.target.split_once('?').map_or("", |(_, q)| q)
    }

    /// The body as text; bytes that are not UTF-8 become U+FFFD.
    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// An answer. Content-Length and Connection are written by the server (the
/// same names in `headers` are ignored).
#[derive(Clone, Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Close the connection after this answer.
    pub close: bool,
    /// Send no Content-Length: the body ends where the connection closes
    /// (implies `close`), as TrueConf's /vsstatus does.
    pub no_length: bool,
    /// A reason phrase other than the usual one (e.g. "Ok").
    pub reason: Option<String>,
}

impl Response {
    pub fn new(status: u16, content_type: &str, body: impl Into<Vec<u8>>) -> Response {
        Response {
            status,
            headers: vec![("Content-Type".to_string(), content_type.to_string())],
            body: body.into(),
            close: false,
            no_length: false,
            reason: None,
        }
    }

    pub fn with_header(mut self, name: &str, value: &str) -> Response {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    /// Answers with `Connection: close` and closes the connection afterwards.
    pub fn closing(mut self) -> Response {
        self.close = true;
        self
    }

    /// No Content-Length: the body runs until the connection closes.
    pub fn without_length(mut self) -> Response {
        self.no_length = true;
        self.close = true;
        self
    }

    /// Uses this reason phrase on the status line.
    pub fn with_reason(mut self, reason: &str) -> Response {
        self.reason = Some(reason.to_string());
        self
    }
}

/// Answers a request; None closes the connection without an answer.
pub type Handler = dyn Fn(Request) -> Option<Response> + Send + Sync + 'static;

/// The byte stream of a connection: the socket itself, or a layer over it (TLS).
pub trait Transport: Read + Write + Send {
    /// Sends what is pending and ends our direction (TLS: close_notify, then FIN).
    fn close_write(&mut self);
}

impl Transport for TcpStream {
    fn close_write(&mut self) {
        let _ = self.flush();
        let _ = self.shutdown(Shutdown::Write);
    }
}

/// Turns an accepted socket into the connection's transport (a TLS handshake,
/// say). It runs on the connection's thread; None closes the connection.
pub type Wrap = dyn Fn(TcpStream) -> Option<Box<dyn Transport>> + Send + Sync + 'static;

/// A listening server; dropping it stops it.
pub struct Server {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
}

struct Shared {
    stop: AtomicBool,
    conns: Mutex<Conns>,
}

#[derive(Default)]
struct Conns {
    next_id: u64,
    /// A second handle on each open connection's socket, to shut it down.
    open: HashMap<u64, TcpStream>,
    threads: Vec<JoinHandle<()>>,
}

impl Server {
    /// Serves plain HTTP on 127.0.0.1 with a free port.
    pub fn bind(name: &str, handler: Arc<Handler>) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0")
            .unwrap_or_else(|e| panic!("{name}: cannot bind 127.0.0.1:0: {e}"));
        Server::start(listener, name, None, handler)
    }

    /// Serves on `listener`; with `wrap`, over the transport it makes of each
    /// connection. Threads are named `name` and `name-conn`.
    pub fn start(
        listener: TcpListener,
        name: &str,
        wrap: Option<Arc<Wrap>>,
        handler: Arc<Handler>,
    ) -> Server {
        let addr = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("{name}: no local address: {e}"));
        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            conns: Mutex::new(Conns::default()),
        });
        let accept = {
            let shared = shared.clone();
            let conn_name = format!("{name}-conn");
            std::thread::Builder::new()
                .name(name.to_string())
                .spawn(move || accept_loop(&listener, &shared, &conn_name, wrap, handler))
                .unwrap_or_else(|e| panic!("{name}: cannot spawn: {e}"))
        };
        Server {
            addr,
            shared,
            accept: Some(accept),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting (the port refuses connections once this returns), ends
    /// every connection and joins every thread. Idempotent.
    pub fn stop(&mut self) {
        let Some(accept) = self.accept.take() else {
            return;
        };
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wake the accept thread; it checks the flag after each accept.
        for _ in 0..3 {
            if accept.is_finished()
                || TcpStream::connect_timeout(&self.addr, Duration::from_secs(2)).is_ok()
            {
                break;
            }
        }
        let _ = accept.join();
        // No connection is added from here on.
        let (open, threads) = {
            let mut conns = lock(&self.shared.conns);
            (
                std::mem::take(&mut conns.open),
                std::mem::take(&mut conns.threads),
            )
        };
        for s in open.values() {
            let _ = s.shutdown(Shutdown::Both);
        }
        drop(open);
        for t in threads {
            let _ = t.join();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

fn accept_loop(
    listener: &TcpListener,
    shared: &Arc<Shared>,
    conn_name: &str,
    wrap: Option<Arc<Wrap>>,
    handler: Arc<Handler>,
) {
    loop {
        let accepted = listener.accept();
        if shared.stop.load(Ordering::SeqCst) {
            return; // the listener is dropped with the thread
        }
        let stream = match accepted {
            Ok((s, _)) => s,
            Err(_) => {
                // Out of descriptors and the like: do not spin.
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        let Ok(second) = stream.try_clone() else {
            continue;
        };
        let mut conns = lock(&shared.conns);
        reap(&mut conns.threads);
        let id = conns.next_id;
        conns.next_id += 1;
        let (sh, wrap, handler) = (shared.clone(), wrap.clone(), handler.clone());
        // The lock is held until the socket is listed: the thread unlists it at its end.
        match std::thread::Builder::new()
            .name(conn_name.to_string())
            .spawn(move || connection(&sh, id, stream, wrap.as_deref(), &*handler))
        {
            Ok(h) => {
                conns.open.insert(id, second);
                conns.threads.push(h);
            }
            Err(e) => {
                eprintln!("{conn_name}: cannot spawn: {e}");
                let _ = second.shutdown(Shutdown::Both);
            }
        }
    }
}

fn connection(shared: &Shared, id: u64, stream: TcpStream, wrap: Option<&Wrap>, handler: &Handler) {
    if let Ok(raw) = stream.try_clone() {
        let _ = raw.set_write_timeout(Some(IDLE));
        let transport = match wrap {
            Some(w) => w(stream),
            None => Some(Box::new(stream) as Box<dyn Transport>),
        };
        if let Some(mut t) = transport {
            let _ = raw.set_read_timeout(Some(IDLE));
            if serve(&mut *t, handler, raw.peer_addr().ok()) == End::Close {
                t.close_write();
                linger(&raw);
            }
        }
        let _ = raw.shutdown(Shutdown::Both);
    }
    lock(&shared.conns).open.remove(&id);
}

/// After our FIN, reads (and drops) what the client still sends until it
/// hangs up, for at most [`LINGER`]: closing with unread input would make
/// the kernel send a reset, which can destroy the answer still in flight.
fn linger(raw: &TcpStream) {
    let end = Instant::now() + LINGER;
    let mut sink = [0u8; 4096];
    let mut r = raw;
    loop {
        let now = Instant::now();
        if now >= end || raw.set_read_timeout(Some(end - now)).is_err() {
            return;
        }
        match r.read(&mut sink) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
}

#[derive(PartialEq, Eq)]
enum End {
    /// The client left or the connection broke: nothing more to send.
    Gone,
    /// We close: end our side cleanly.
    Close,
}

/// Why no request could be read.
enum Bad {
    Gone,
    /// Answer with this status, then close.
    Status(u16),
}

fn serve(t: &mut dyn Transport, handler: &Handler, peer: Option<SocketAddr>) -> End {
    let mut input = Vec::new();
    loop {
        let (mut req, keep_alive) = match read_request(t, &mut input) {
            Ok(Some(r)) => r,
            Ok(None) | Err(Bad::Gone) => return End::Gone,
            Err(Bad::Status(code)) => {
                let resp = Response::new(code, "text/plain; charset=utf-8", reason(code));
                let _ = write_response(t, &resp, false, false);
                return End::Close;
            }
        };
        req.peer = peer;
        let head_only = req.method.eq_ignore_ascii_case("HEAD");
        let Some(resp) = handler(req) else {
            return End::Close;
        };
        let keep = keep_alive && !resp.close && !resp.no_length;
        if write_response(t, &resp, keep, head_only).is_err() {
            return End::Gone;
        }
        if !keep {
            return End::Close;
        }
    }
}

/// Appends what one read gives; 0 at the end of the stream.
fn fill(t: &mut dyn Transport, input: &mut Vec<u8>) -> io::Result<usize> {
    let mut chunk = [0u8; 16 * 1024];
    loop {
        match t.read(&mut chunk) {
            Ok(n) => {
                input.extend_from_slice(&chunk[..n]);
                return Ok(n);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// The length of the head at the start of `b` (through its blank line), once complete.
fn head_len(b: &[u8]) -> Option<usize> {
    let mut line_start = 0;
    for (i, &c) in b.iter().enumerate() {
        if c == b'\n' {
            let line = &b[line_start..i];
            if line.is_empty() || line == b"\r" {
                return Some(i + 1);
            }
            line_start = i + 1;
        }
    }
    None
}

fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Reads the next request from `t` (`input` keeps bytes read past it).
/// Ok(None): the client closed the connection between requests. The bool
/// says whether the client wants to keep the connection open.
fn read_request(
    t: &mut dyn Transport,
    input: &mut Vec<u8>,
) -> Result<Option<(Request, bool)>, Bad> {
    let head_end = loop {
        // Blank lines before a request line are tolerated.
        let blank = input
            .iter()
            .take_while(|&&b| b == b'\r' || b == b'\n')
            .count();
        input.drain(..blank);
        if let Some(n) = head_len(input) {
            break n;
        }
        if input.len() > MAX_HEAD {
            return Err(Bad::Status(431));
        }
        match fill(t, input) {
            Ok(0) if input.is_empty() => return Ok(None),
            Ok(0) => return Err(Bad::Status(400)), // a partial head, then the end
            Ok(_) => {}
            Err(_) => return Err(Bad::Gone),
        }
    };
    if head_end > MAX_HEAD {
        return Err(Bad::Status(431));
    }
    let head = String::from_utf8_lossy(&input[..head_end]).into_owned();
    let mut lines = head.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));

    let mut parts = lines.next().unwrap_or("").split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Bad::Status(400));
    };
    if !is_token(method) || target.is_empty() || !target.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(Bad::Status(400));
    }
    let http10 = match version {
        "HTTP/1.1" => false,
        "HTTP/1.0" => true,
        v if v.starts_with("HTTP/") && v.len() > 5 => return Err(Bad::Status(505)),
        _ => return Err(Bad::Status(400)),
    };

    let mut headers = Vec::new();
    for line in lines {
        if line.is_empty() {
            break;
        }
        if line.starts_with([' ', '\t']) {
            return Err(Bad::Status(400)); // obsolete line folding
        }
        let Some((name, value)) = line.split_once(':') else {
            return Err(Bad::Status(400));
        };
        if !is_token(name) {
            return Err(Bad::Status(400));
        }
        headers.push((
            name.to_string(),
            value.trim_matches([' ', '\t']).to_string(),
        ));
    }
    let values = |name: &str| {
        headers
            .iter()
            .filter(move |(k, _)| k.eq_ignore_ascii_case(name))
            .flat_map(|(_, v)| v.split(','))
            .map(|v| v.trim().to_ascii_lowercase())
            .filter(|v| !v.is_empty())
            .collect::<Vec<_>>()
    };

    // The body: Content-Length only.
    let codings = values("Transfer-Encoding");
    if !codings.is_empty() {
        let chunked = codings.iter().any(|c| c == "chunked");
        return Err(Bad::Status(if chunked { 411 } else { 501 }));
    }
    let mut length: Option<u64> = None;
    for v in values("Content-Length") {
        let n = match v.parse::<u64>() {
            Ok(n) if v.bytes().all(|b| b.is_ascii_digit()) => n,
            _ => return Err(Bad::Status(400)),
        };
        if length.is_some_and(|l| l != n) {
            return Err(Bad::Status(400));
        }
        length = Some(n);
    }
    let length = length.unwrap_or(0);
    if length > MAX_BODY {
        return Err(Bad::Status(413));
    }
    let length = length as usize;
    let connection = values("Connection");
    let keep_alive = if http10 {
        connection.iter().any(|c| c == "keep-alive")
    } else {
        !connection.iter().any(|c| c == "close")
    };
    let expects_continue = !http10 && values("Expect").iter().any(|e| e == "100-continue");

    input.drain(..head_end);
    if expects_continue && input.len() < length {
        let sent = t
            .write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
            .and_then(|()| t.flush());
        if sent.is_err() {
            return Err(Bad::Gone);
        }
    }
    while input.len() < length {
        match fill(t, input) {
            Ok(0) | Err(_) => return Err(Bad::Gone),
            Ok(_) => {}
        }
    }
    let body = input.drain(..length).collect();
    let req = Request {
        method: method.to_string(),
        target: target.to_string(),
        headers,
        body,
        peer: None,
    };
    Ok(Some((req, keep_alive)))
}

fn write_response(
    t: &mut dyn Transport,
    resp: &Response,
    keep: bool,
    head_only: bool,
) -> io::Result<()> {
    let status = resp.status;
    let no_body = status < 200 || status == 204 || status == 304;
    let mut out = Vec::with_capacity(256 + resp.body.len());
    let phrase = resp.reason.as_deref().unwrap_or(reason(status));
    write!(out, "HTTP/1.1 {status} {phrase}\r\n")?;
    for (name, value) in &resp.headers {
        let ours = ["content-length", "connection", "transfer-encoding"]
            .iter()
            .any(|n| name.eq_ignore_ascii_case(n));
        let broken = !is_token(name) || value.bytes().any(|b| b == b'\r' || b == b'\n');
        if !ours && !broken {
            write!(out, "{name}: {value}\r\n")?;
        }
    }
    if status >= 200 && status != 204 && !resp.no_length {
        write!(out, "Content-Length: {}\r\n", resp.body.len())?;
    }
    let connection = if keep { "keep-alive" } else { "close" };
    write!(out, "Connection: {connection}\r\n\r\n")?;
    if !head_only && !no_body {
        out.extend_from_slice(&resp.body);
    }
    t.write_all(&out)?;
    t.flush()
}

/// The reason phrase of a status code.
pub fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        301 => "Moved Permanently",
        302 => "Found",
        304 => "Not Modified",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        411 => "Length Required",
        413 => "Content Too Large",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        _ => "Status",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Condvar;

    fn echo() -> Server {
        Server::bind(
            "http1-test",
            Arc::new(|rq: Request| {
                let body = format!("{} {} {}", rq.method, rq.target, rq.body_text());
                let resp = Response::new(200, "text/plain", body);
                Some(if rq.path() == "/close" {
                    resp.closing()
                } else {
                    resp
                })
            }),
        )
    }

    /// Writes `input`, ends the sending side and reads until the server
    /// closes (or 2 s pass).
    fn exchange(addr: SocketAddr, input: &[u8]) -> String {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        // A server that answered and closed first may already have ended
        // the connection: what it sent is still read below.
        let _ = s.write_all(input);
        let _ = s.shutdown(Shutdown::Write);
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        String::from_utf8_lossy(&out).into_owned()
    }

    #[test]
    fn keep_alive_pipelining_head_and_close() {
        let srv = echo();
        let out = exchange(
            srv.addr(),
            b"\r\nPOST /a HTTP/1.1\r\nContent-Length: 3\r\n\r\nxyzGET /b?q HTTP/1.1\r\n\r\n\
              HEAD /c HTTP/1.1\r\n\r\nGET /close HTTP/1.1\r\n\r\nGET /never HTTP/1.1\r\n\r\n",
        );
        assert_eq!(out.matches("HTTP/1.1 200 OK").count(), 4, "{out}");
        assert!(out.contains("POST /a xyz"), "{out}");
        assert!(out.contains("GET /b?q "), "{out}");
        assert!(out.contains("Length: 8\r\nConnection: keep-alive\r\n\r\nHTTP/1.1 200"));
        assert!(!out.contains("HEAD /c"), "{out}");
        assert!(
            out.ends_with("Connection: close\r\n\r\nGET /close "),
            "{out}"
        );
        let out = exchange(srv.addr(), b"GET /x HTTP/1.0\r\n\r\n");
        assert!(out.contains("Connection: close"), "{out}");
    }

    #[test]
    fn bad_requests_get_an_answer_and_a_close() {
        let srv = echo();
        for (input, status) in [
            (&b"\x16\x03\x01\x00\xff garbage\r\n\r\n"[..], 400),
            (
                b"GET /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
                411,
            ),
            (b"GET /x HTTP/1.1\r\nContent-Length: 1, 2\r\n\r\nab", 400),
            (b"GET /x HTTP/1.1\r\n folded\r\n\r\n", 400),
            (b"GET /x HTTP/2.0\r\n\r\n", 505),
            (b"no head end", 400),
        ] {
            let out = exchange(srv.addr(), input);
            assert!(out.starts_with(&format!("HTTP/1.1 {status} ")), "{out}");
            assert!(out.contains("Connection: close"), "{out}");
        }
        let mut big = b"GET /x HTTP/1.1\r\nX: ".to_vec();
        big.resize(MAX_HEAD + 100, b'a');
        assert!(exchange(srv.addr(), &big).starts_with("HTTP/1.1 431 "));
        assert!(exchange(srv.addr(), b"GET / HTTP/1.1\r\n\r\n").contains("200 OK"));
    }

    #[test]
    fn a_held_handler_blocks_only_its_connection_and_stop_is_quick() {
        // (open, how many requests are held)
        let gate = Arc::new((Mutex::new((false, 0)), Condvar::new()));
        let g = gate.clone();
        let mut srv = Server::bind(
            "http1-test",
            Arc::new(move |rq: Request| {
                if rq.path() == "/hold" {
                    let mut state = lock(&g.0);
                    state.1 += 1;
                    g.1.notify_all();
                    while !state.0 {
                        state = g.1.wait(state).unwrap_or_else(|e| e.into_inner());
                    }
                }
                Some(Response::new(200, "text/plain", "ok"))
            }),
        );
        let addr = srv.addr();
        let held: Vec<_> = (0..12)
            .map(|_| std::thread::spawn(move || exchange(addr, b"GET /hold HTTP/1.1\r\n\r\n")))
            .collect();
        // All twelve are in the handler before anything else happens.
        {
            let deadline = Instant::now() + Duration::from_secs(10);
            let mut state = lock(&gate.0);
            while state.1 < 12 && Instant::now() < deadline {
                state = gate
                    .1
                    .wait_timeout(state, Duration::from_millis(100))
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
            }
            assert_eq!(state.1, 12, "not every request reached the handler");
        }
        // Idle and half-sent connections too.
        let idle: Vec<TcpStream> = (0..12).map(|_| TcpStream::connect(addr).unwrap()).collect();
        let mut partial = TcpStream::connect(addr).unwrap();
        partial.write_all(b"GET /x HTT").unwrap();
        for _ in 0..5 {
            let mut s = TcpStream::connect(addr).unwrap();
            s.write_all(b"GET /free HTTP/1.1\r\nConnection: close\r\n\r\n")
                .unwrap();
            let mut out = String::new();
            let _ = s.read_to_string(&mut out);
            assert!(out.starts_with("HTTP/1.1 200 OK"), "{out}");
        }
        lock(&gate.0).0 = true;
        gate.1.notify_all();
        let t0 = Instant::now();
        srv.stop();
        assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
        let err = TcpStream::connect(addr).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused);
        for h in held {
            let _ = h.join().unwrap();
        }
        drop(idle);
    }
}
