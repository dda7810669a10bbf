//! A forward proxy on 127.0.0.1 for the `tg-proxy` tests: HTTP CONNECT (with
//! Basic credentials required) or SOCKS5 (no authentication, or
//! username/password). It tunnels to loopback targets only and counts what
//! passes through, so a test can assert that every Telegram request took it.

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// HTTP CONNECT; the credentials must come as Proxy-Authorization: Basic.
    Connect,
    /// SOCKS5; with credentials, username/password authentication is required.
    Socks5,
}

#[derive(Default)]
struct Counts {
    /// Tunnels opened, by target "host:port".
    tunnels: Mutex<Vec<String>>,
    /// The local addresses of the tunnels' upstream connections (what the
    /// target sees as its peer).
    outbound: Mutex<Vec<SocketAddr>>,
    /// Connections refused for missing or wrong credentials.
    refused: AtomicUsize,
    stopping: AtomicBool,
}

pub struct Proxy {
    addr: SocketAddr,
    counts: Arc<Counts>,
    acceptor: Option<JoinHandle<()>>,
}

impl Proxy {
    /// Starts a proxy that wants `user`/`pass` (or nothing, for SOCKS5 with `None`).
    pub fn start(kind: Kind, credentials: Option<(&str, &str)>) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let counts = Arc::new(Counts::default());
        let credentials = credentials.map(|(u, p)| (u.to_string(), p.to_string()));
        let acceptor = {
            let counts = counts.clone();
            std::thread::spawn(move || {
                for client in listener.incoming() {
                    if counts.stopping.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(client) = client else { continue };
                    let (counts, credentials) = (counts.clone(), credentials.clone());
                    std::thread::spawn(move || {
                        let _ = client.set_read_timeout(Some(Duration::from_secs(60)));
                        let target = match kind {
                            Kind::Connect => connect_handshake(&client, credentials.as_ref()),
                            Kind::Socks5 => socks_handshake(&client, credentials.as_ref()),
                        };
                        match target {
                            Ok(Some((upstream, name))) => {
                                counts.tunnels.lock().unwrap().push(name);
                                if let Ok(local) = upstream.local_addr() {
                                    counts.outbound.lock().unwrap().push(local);
                                }
                                pipe_both(client, upstream);
                            }
                            Ok(None) => {
                                counts.refused.fetch_add(1, Ordering::SeqCst);
                            }
                            Err(_) => {}
                        }
                    });
                }
            })
        };
        Proxy {
            addr,
            counts,
            acceptor: Some(acceptor),
        }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The tunnels opened so far (their targets).
    pub fn tunnels(&self) -> Vec<String> {
        self.counts.tunnels.lock().unwrap().clone()
    }

    /// The addresses the proxy's tunnels come from, as their targets see them.
    pub fn outbound(&self) -> Vec<SocketAddr> {
        self.counts.outbound.lock().unwrap().clone()
    }

    /// Connections refused for their credentials.
    pub fn refused(&self) -> usize {
        self.counts.refused.load(Ordering::SeqCst)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.counts.stopping.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
        if let Some(a) = self.acceptor.take() {
            let _ = a.join();
        }
    }
}

/// Reads `CONNECT host:port HTTP/1.1` and its headers; answers 407 without
/// the right credentials, 403 for a target off loopback, else opens the tunnel.
fn connect_handshake(
    mut client: &TcpStream,
    credentials: Option<&(String, String)>,
) -> io::Result<Option<(TcpStream, String)>> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if client.read(&mut byte)? == 0 || head.len() > 16 * 1024 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let mut lines = head.lines();
    let request = lines.next().unwrap_or("");
    let mut parts = request.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    if method != "CONNECT" {
        client.write_all(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")?;
        return Ok(None);
    }
    if let Some((user, pass)) = credentials {
        let wanted = format!("basic {}", base64(format!("{user}:{pass}").as_bytes()));
        let given = lines
            .filter_map(|l| l.split_once(':'))
            .find(|(k, _)| k.trim().eq_ignore_ascii_case("proxy-authorization"))
            .map(|(_, v)| v.trim().to_string());
        if given.map(|g| g.to_ascii_lowercase()) != Some(wanted.to_ascii_lowercase()) {
            client.write_all(
                b"HTTP/1.1 407 Proxy Authentication Required\r\n\
                  Proxy-Authenticate: Basic realm=\"test\"\r\nContent-Length: 0\r\n\r\n",
            )?;
            return Ok(None);
        }
    }
    let Some(upstream) = loopback(target) else {
        client.write_all(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")?;
        return Ok(None);
    };
    client.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")?;
    Ok(Some((upstream, target.to_string())))
}

/// RFC 1928 (and RFC 1929 for username/password), CONNECT only.
fn socks_handshake(
    mut client: &TcpStream,
    credentials: Option<&(String, String)>,
) -> io::Result<Option<(TcpStream, String)>> {
    let mut greeting = [0u8; 2];
    client.read_exact(&mut greeting)?;
    let mut methods = vec![0u8; greeting[1] as usize];
    client.read_exact(&mut methods)?;
    let wanted = if credentials.is_some() { 2 } else { 0 };
    if greeting[0] != 5 || !methods.contains(&wanted) {
        client.write_all(&[5, 0xff])?;
        return Ok(None);
    }
    client.write_all(&[5, wanted])?;
    if let Some((user, pass)) = credentials {
        let mut version = [0u8; 2];
        client.read_exact(&mut version)?;
        let mut name = vec![0u8; version[1] as usize];
        client.read_exact(&mut name)?;
        let mut len = [0u8; 1];
        client.read_exact(&mut len)?;
        let mut password = vec![0u8; len[0] as usize];
        client.read_exact(&mut password)?;
        if name != user.as_bytes() || password != pass.as_bytes() {
            client.write_all(&[1, 1])?;
            return Ok(None);
        }
        client.write_all(&[1, 0])?;
    }
    let mut request = [0u8; 4];
    client.read_exact(&mut request)?;
    let host = match request[3] {
        1 => {
            let mut ip = [0u8; 4];
            client.read_exact(&mut ip)?;
            Ipv4Addr::from(ip).to_string()
        }
        3 => {
            let mut len = [0u8; 1];
            client.read_exact(&mut len)?;
            let mut name = vec![0u8; len[0] as usize];
            client.read_exact(&mut name)?;
            String::from_utf8_lossy(&name).into_owned()
        }
        _ => {
            client.write_all(&[5, 8, 0, 1, 0, 0, 0, 0, 0, 0])?;
            return Ok(None);
        }
    };
    let mut port = [0u8; 2];
    client.read_exact(&mut port)?;
    let target = format!("{host}:{}", u16::from_be_bytes(port));
    let Some(upstream) = loopback(&target) else {
        client.write_all(&[5, 2, 0, 1, 0, 0, 0, 0, 0, 0])?;
        return Ok(None);
    };
    client.write_all(&[5, 0, 0, 1, 127, 0, 0, 1, 0, 0])?;
    Ok(Some((upstream, target)))
}

/// A connection to `host:port`, only on 127.0.0.0/8 (or "localhost").
fn loopback(target: &str) -> Option<TcpStream> {
    let (host, port) = target.rsplit_once(':')?;
    let port: u16 = port.parse().ok()?;
    let ip: Ipv4Addr = if host == "localhost" {
        Ipv4Addr::LOCALHOST
    } else {
        host.parse().ok()?
    };
    if !ip.is_loopback() {
        return None;
    }
    TcpStream::connect((ip, port)).ok()
}

fn pipe_both(client: TcpStream, upstream: TcpStream) {
    let (Ok(c2), Ok(u2)) = (client.try_clone(), upstream.try_clone()) else {
        return;
    };
    let up = std::thread::spawn(move || copy(client, upstream));
    copy(u2, c2);
    let _ = up.join();
}

fn copy(mut from: TcpStream, mut to: TcpStream) {
    let _ = io::copy(&mut from, &mut to);
    let _ = to.shutdown(std::net::Shutdown::Write);
}

fn base64(bytes: &[u8]) -> String {
    const ABC: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ABC[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}
