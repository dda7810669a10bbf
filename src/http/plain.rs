//! `/vsstatus` over plain TCP: one `GET` with `Connection: close`, read to
//! its end, in std's `TcpStream` alone. ureq touches about 24 KB of stack in
//! every thread that calls it, and each server has a prober that calls only
//! this: 100 probers hold 2.4 MB less. Used for IP literals only (a name
//! goes through ureq, whose resolver bounds a hanging DNS lookup).

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use super::{CLOSED_EARLY, Limits, NetError, Response, USER_AGENT, io_error};

/// `GET path` from `addr`, naming `host` (with its port) in `Host`. The
/// whole exchange is bounded by `limits.whole`, the connect by
/// `limits.connect`, the head by half the input buffer and the body by
/// `limits.body`.
pub(crate) fn get(
    addr: SocketAddr,
    host: &str,
    path: &str,
    limits: &Limits,
) -> Result<Response, NetError> {
    let deadline = Instant::now() + limits.whole;
    let connect = limits.connect.min(limits.whole);
    let mut stream = TcpStream::connect_timeout(&addr, connect).map_err(|e| io_error(&e))?;
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: {USER_AGENT}\r\n\
         Accept: */*\r\nConnection: close\r\n\r\n"
    );
    stream
        .set_write_timeout(Some(left(deadline)?))
        .and_then(|()| stream.write_all(request.as_bytes()))
        .map_err(|e| io_error(&e))?;
    let answer = read_answer(&mut stream, deadline, limits)?;
    Ok(answer)
}

/// Time left until `deadline`; a timeout when none is.
fn left(deadline: Instant) -> Result<Duration, NetError> {
    deadline
        .checked_duration_since(Instant::now())
        .filter(|d| !d.is_zero())
        .ok_or(NetError::Timeout)
}

/// Reads until the answer is whole: its head, then a body of
/// `Content-Length`, a chunked one, or one that ends with the connection.
fn read_answer(
    stream: &mut impl ReadTimeout,
    deadline: Instant,
    limits: &Limits,
) -> Result<Response, NetError> {
    let head_limit = (limits.buffers.0 / 2).max(1024);
    let mut data: Vec<u8> = Vec::with_capacity(1024);
    let mut chunk = [0u8; 2048];
    let mut closed = false;
    let mut parsed: Option<(Head, usize)> = None;
    loop {
        if parsed.is_none() {
            if let Some(end) = find(&data, b"\r\n\r\n") {
                let head = parse_head(&data[..end])?;
                parsed = Some((head, end + 4));
            } else if data.len() > head_limit {
                return Err(NetError::Other("not an HTTP answer".into()));
            } else if closed {
                return Err(if data.is_empty() {
                    NetError::Unreachable(CLOSED_EARLY.into())
                } else {
                    NetError::Other("not an HTTP answer".into())
                });
            }
        }
        if let Some((head, start)) = &parsed {
            let body = &data[*start..];
            if body.len() as u64 > limits.body.saturating_add(64) {
                return Err(NetError::Other("answer too large".into()));
            }
            match body_end(head, body, closed)? {
                Some(body) => {
                    return Ok(Response {
                        status: head.status,
                        body: String::from_utf8_lossy(&body).into_owned(),
                        headers: head.headers.clone(),
                    });
                }
                None if closed => return Err(NetError::Unreachable(CLOSED_EARLY.into())),
                None => {}
            }
        }
        let read = stream.read_until(deadline, &mut chunk)?;
        if read == 0 {
            closed = true;
        } else {
            data.extend_from_slice(&chunk[..read]);
        }
    }
}

/// A socket read bounded by a deadline (a trait so that tests can feed bytes).
trait ReadTimeout {
    fn read_until(&mut self, deadline: Instant, buf: &mut [u8]) -> Result<usize, NetError>;
}

impl ReadTimeout for TcpStream {
    fn read_until(&mut self, deadline: Instant, buf: &mut [u8]) -> Result<usize, NetError> {
        self.set_read_timeout(Some(left(deadline)?))
            .map_err(|e| io_error(&e))?;
        loop {
            match self.read(buf) {
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(io_error(&e)),
                Ok(n) => return Ok(n),
            }
        }
    }
}

/// The status and the headers of an answer (names in lower case).
#[derive(Debug)]
struct Head {
    status: u16,
    headers: Vec<(String, String)>,
}

impl Head {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

fn parse_head(bytes: &[u8]) -> Result<Head, NetError> {
    let bad = || NetError::Other("not an HTTP answer".into());
    // A header value in another encoding is kept, not refused.
    let text = String::from_utf8_lossy(bytes);
    let mut lines = text.split("\r\n");
    let status_line = lines.next().ok_or_else(bad)?;
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().ok_or_else(bad)?;
    if !version.starts_with("HTTP/1.") {
        return Err(bad());
    }
    let status: u16 = parts
        .next()
        .filter(|s| s.len() == 3)
        .and_then(|s| s.parse().ok())
        .filter(|s| (100..600).contains(s))
        .ok_or_else(bad)?;
    let mut headers = Vec::new();
    for line in lines {
        let (name, value) = line.split_once(':').ok_or_else(bad)?;
        if name.is_empty() || name.contains(' ') {
            return Err(bad());
        }
        headers.push((name.to_ascii_lowercase(), value.trim().to_string()));
    }
    Ok(Head { status, headers })
}

/// The body when `body` holds all of it; None while more is to come.
fn body_end(head: &Head, body: &[u8], closed: bool) -> Result<Option<Vec<u8>>, NetError> {
    let chunked = head
        .header("transfer-encoding")
        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    if chunked {
        return dechunk(body);
    }
    if let Some(length) = head.header("content-length") {
        let length: usize = length
            .parse()
            .map_err(|_| NetError::Other("not an HTTP answer".into()))?;
        return Ok((body.len() >= length).then(|| body[..length].to_vec()));
    }
    // No body by definition, or one that ends with the connection.
    if head.status == 204 || head.status == 304 || head.status < 200 {
        return Ok(Some(Vec::new()));
    }
    Ok(closed.then(|| body.to_vec()))
}

/// A chunked body, once its last chunk has come (trailers skipped).
fn dechunk(mut rest: &[u8]) -> Result<Option<Vec<u8>>, NetError> {
    let bad = || NetError::Other("not an HTTP answer".into());
    let mut body = Vec::new();
    loop {
        let Some(line_end) = find(rest, b"\r\n") else {
            return Ok(None);
        };
        let size_text = std::str::from_utf8(&rest[..line_end]).map_err(|_| bad())?;
        let size_text = size_text.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_text, 16).map_err(|_| bad())?;
        rest = &rest[line_end + 2..];
        if size == 0 {
            // The trailers end with an empty line.
            return Ok(
                (rest.starts_with(b"\r\n") || find(rest, b"\r\n\r\n").is_some()).then_some(body),
            );
        }
        if rest.len() < size + 2 {
            return Ok(None);
        }
        body.extend_from_slice(&rest[..size]);
        rest = &rest[size + 2..];
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bytes handed out in the given pieces, then the end of the connection.
    struct Pieces(Vec<Vec<u8>>);

    impl ReadTimeout for Pieces {
        fn read_until(&mut self, _: Instant, buf: &mut [u8]) -> Result<usize, NetError> {
            if self.0.is_empty() {
                return Ok(0);
            }
            let piece = &mut self.0[0];
            let n = piece.len().min(buf.len());
            buf[..n].copy_from_slice(&piece[..n]);
            piece.drain(..n);
            if piece.is_empty() {
                self.0.remove(0);
            }
            Ok(n)
        }
    }

    fn limits() -> Limits {
        Limits::probe(Duration::from_secs(5), &crate::timing::Timing::default())
    }

    fn read_bytes(bytes: &[u8]) -> Result<Response, NetError> {
        let mut source = Pieces(vec![bytes.to_vec()]);
        read_answer(
            &mut source,
            Instant::now() + Duration::from_secs(5),
            &limits(),
        )
    }

    fn read(pieces: &[&str]) -> Result<Response, NetError> {
        let mut source = Pieces(pieces.iter().map(|p| p.as_bytes().to_vec()).collect());
        read_answer(
            &mut source,
            Instant::now() + Duration::from_secs(5),
            &limits(),
        )
    }

    #[test]
    fn answers_of_every_framing_are_read_whole() {
        let closed = read(&[
            "HTTP/1.1 200 OK\r\nServer: TrueConf Server 5.5.2.10\r\nConnection: close\r\n\r\n",
            "TrueConf Server 5.5.2.10<br/>",
            "Status:OK <br/>",
        ])
        .unwrap();
        assert_eq!(closed.status, 200);
        assert_eq!(closed.body, "TrueConf Server 5.5.2.10<br/>Status:OK <br/>");
        assert_eq!(closed.header("Server"), Some("TrueConf Server 5.5.2.10"));
        assert_eq!(
            closed
                .headers
                .iter()
                .map(|(k, _)| k.as_str())
                .collect::<Vec<_>>(),
            ["server", "connection"]
        );

        // A value in another encoding is kept (as ureq keeps it); no reason phrase.
        let latin = read_bytes(b"HTTP/1.1 200\r\nServer: Caf\xe9 1.0\r\nContent-Length: 0\r\n\r\n");
        assert_eq!(latin.unwrap().header("server"), Some("Caf\u{fffd} 1.0"));

        // Content-Length: what follows it is not read as body.
        let sized =
            read(&["HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\n\r\ndownEXTRA"])
                .unwrap();
        assert_eq!((sized.status, sized.body.as_str()), (503, "down"));

        // Chunked, split in awkward places, with a chunk extension.
        let chunked = read(&[
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;x=1\r\nHel",
            "lo\r\n6\r\n world\r\n0\r\n",
            "\r\n",
        ])
        .unwrap();
        assert_eq!(chunked.body, "Hello world");

        let empty = read(&["HTTP/1.0 204 No Content\r\n\r\n"]).unwrap();
        assert_eq!((empty.status, empty.body.as_str()), (204, ""));
    }

    #[test]
    fn broken_and_cut_answers_are_told_apart() {
        let nothing = read(&[]).unwrap_err();
        assert!(nothing.is_dropped(), "{nothing:?}");
        // Cut in the body of a known length: dropped too.
        let cut = read(&["HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc"]).unwrap_err();
        assert!(cut.is_dropped(), "{cut:?}");
        let cut_chunks =
            read(&["HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab"]).unwrap_err();
        assert!(cut_chunks.is_dropped(), "{cut_chunks:?}");
        for junk in [
            "SSH-2.0-OpenSSH_9.2\r\n\r\n",
            "HTTP/1.1 abc OK\r\n\r\n",
            "HTTP/1.1 200 OK\r\nno colon here\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: lots\r\n\r\n",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            "garbage without an end",
        ] {
            let e = read(&[junk]).unwrap_err();
            assert_eq!(e, NetError::Other("not an HTTP answer".into()), "{junk:?}");
        }
    }

    #[test]
    fn heads_and_bodies_beyond_their_limits_are_refused() {
        let long_head = format!("HTTP/1.1 200 OK\r\nX: {}\r\n\r\n", "a".repeat(8000));
        assert_eq!(
            read(&[&long_head]).unwrap_err(),
            NetError::Other("not an HTTP answer".into())
        );
        let big = format!("HTTP/1.1 200 OK\r\n\r\n{}", "b".repeat(70 * 1024));
        let pieces: Vec<&str> = vec![&big];
        assert_eq!(
            read(&pieces).unwrap_err(),
            NetError::Other("answer too large".into())
        );
    }

    #[test]
    fn a_silent_server_times_out_and_a_closed_port_is_refused() {
        use std::net::TcpListener;
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let mut limits = limits();
        limits.whole = Duration::from_millis(200);
        let e = get(addr, "127.0.0.1", "/vsstatus", &limits).unwrap_err();
        assert_eq!(e, NetError::Timeout);
        drop(listener);
        let e = get(addr, "127.0.0.1", "/vsstatus", &limits).unwrap_err();
        assert_eq!(e, NetError::Unreachable("connection refused".into()));
    }
}
