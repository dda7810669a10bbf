//! The one place that speaks HTTP (ureq): agents with explicit timeouts, no
//! proxy from the environment, TLS per server, error bodies read, and ureq
//! errors turned into `NetError`s that never carry a URL.

mod plain;
mod tls;

use std::fmt;
use std::io::ErrorKind;
use std::time::Duration;

use std::net::{IpAddr, SocketAddr};

use ureq::Agent;
use ureq::tls::TlsConfig;
use ureq::unversioned::resolver::{DefaultResolver, ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::{DefaultConnector, NextTimeout};

use std::path::PathBuf;

use crate::timing::Timing;

pub(crate) use tls::load_pem_certificates;

const CLOSED_EARLY: &str = "connection closed early";
const RESET: &str = "connection reset";
const USER_AGENT: &str = concat!("trueconf-bot/", env!("CARGO_PKG_VERSION"));

/// How a server's TLS certificate is checked (`ssl_certificate`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Trust {
    /// `true`: the built-in web PKI roots.
    BuiltIn,
    /// `false` or `""`: no verification (warned once at start).
    Off,
    /// A PEM file: its certificates are trusted as roots and as pinned leaves.
    Pinned { path: PathBuf, certs: Vec<Vec<u8>> },
}

/// A transport failure, classified for the admin. Holds no URL and no secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetError {
    /// Refused, reset, no route, unknown host: the reason in a few words.
    Unreachable(String),
    /// No (complete) answer in time.
    Timeout,
    /// The server's certificate is not trusted, or the TLS handshake failed.
    Tls(String),
    /// Anything else (a broken answer, a protocol error).
    Other(String),
}

impl NetError {
    /// The connection was open but closed (or reset) before a whole answer
    /// came: the address is right, the server just did not answer this time.
    pub fn is_dropped(&self) -> bool {
        matches!(self, NetError::Unreachable(why) if why == CLOSED_EARLY || why == RESET)
    }
}

impl fmt::Display for NetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NetError::Unreachable(why) => write!(f, "unreachable ({why})"),
            NetError::Timeout => f.write_str("timed out"),
            NetError::Tls(why) => write!(f, "TLS failed ({why})"),
            NetError::Other(why) => write!(f, "failed ({why})"),
        }
    }
}

impl NetError {
    /// The request surely never reached the peer (no connection, no TLS),
    /// so repeating it cannot do anything twice.
    pub fn before_request(&self) -> bool {
        match self {
            NetError::Unreachable(why) => why != CLOSED_EARLY && why != RESET,
            NetError::Tls(_) => true,
            NetError::Timeout | NetError::Other(_) => false,
        }
    }
}

/// An HTTP answer of any status, its body read.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub body: String,
    /// The answer's headers, names in lower case, in order.
    pub headers: Vec<(String, String)>,
}

impl Response {
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The first value of a header (name in any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A configured HTTP agent. Cloning shares the connection pool.
#[derive(Clone)]
pub struct Client {
    agent: Agent,
    limits: Limits,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Client")
    }
}

/// Timeouts and the largest answer of one agent.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub connect: Duration,
    pub whole: Duration,
    /// Larger answers fail: one server answering garbage must not take the
    /// memory of the whole bot.
    pub body: u64,
    /// How long an idle connection is kept for reuse, and how many per host
    /// (each holds about 50 KiB of buffers, more with TLS).
    pub idle: Duration,
    pub idle_per_host: usize,
    /// Input and output buffer of a connection (the input one holds the
    /// answer's head, so it bounds that too).
    pub buffers: (usize, usize),
}

impl Limits {
    /// TrueConf API calls (SPEC §6: connect ≤ 5 s, whole request ≤ 15 s).
    pub fn trueconf(t: &Timing) -> Limits {
        Limits {
            connect: t.connect,
            whole: t.request,
            body: 8 * 1024 * 1024,
            // Kept within one piece of work (pages, participant lists);
            // `ClientSlot::release` drops them when the work is done.
            idle: Duration::from_secs(30),
            idle_per_host: 4,
            buffers: (32 * 1024, 16 * 1024),
        }
    }

    /// Telegram long polling: the whole request outlives the poll timeout.
    pub fn telegram_poll(poll: Duration, t: &Timing) -> Limits {
        Limits {
            connect: t.connect,
            whole: poll + t.poll_grace,
            body: 8 * 1024 * 1024,
            idle: Duration::from_secs(50),
            idle_per_host: 1,
            buffers: (32 * 1024, 16 * 1024),
        }
    }

    /// Telegram sends (sendMessage, edits, answers).
    pub fn telegram_send(t: &Timing) -> Limits {
        Limits {
            connect: t.connect,
            whole: t.send,
            body: 1024 * 1024,
            idle: Duration::from_secs(50),
            idle_per_host: 4,
            buffers: (32 * 1024, 16 * 1024),
        }
    }

    /// The `/vsstatus` health probe: a healthy server answers at once, so
    /// the probe interval bounds it (between 1 and 10 s by default).
    pub fn probe(interval: Duration, t: &Timing) -> Limits {
        let low = t.request.min(Duration::from_secs(1));
        let high = t.request.min(Duration::from_secs(10)).max(low);
        let whole = interval.clamp(low, high);
        Limits {
            connect: whole.min(t.connect),
            whole,
            body: 64 * 1024,
            // One kept connection with small buffers (a /vsstatus answer
            // is a few hundred bytes): 100 servers hold under 1 MB, and a
            // probe costs no new connection (a real /vsstatus closes it).
            idle: Duration::from_secs(120),
            idle_per_host: 1,
            buffers: (8 * 1024, 2 * 1024),
        }
    }
}

/// A forward proxy for Telegram (`tg-proxy`): `http://[user:pass@]host:port`
/// (CONNECT), `https://…`, `socks4://`, `socks4a://`, `socks5://`, `socks5h://`.
/// `Debug` shows only the scheme, host and port: the credentials are secret.
#[derive(Clone)]
pub struct ProxyUrl {
    proxy: ureq::Proxy,
    shown: String,
}

impl fmt::Debug for ProxyUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ProxyUrl({})", self.shown)
    }
}

impl ProxyUrl {
    /// Checks the URL; the error names what is wrong, never the URL itself.
    pub fn parse(url: &str) -> Result<ProxyUrl, String> {
        let url = url.trim();
        let scheme = url.split_once("://").map(|(s, _)| s.to_ascii_lowercase());
        let known = ["http", "https", "socks4", "socks4a", "socks5", "socks5h"];
        match scheme.as_deref() {
            Some(s) if known.contains(&s) => {}
            _ => {
                return Err(
                    "must be http://[user:password@]host:port or socks5://host:port".into(),
                );
            }
        }
        let proxy = ureq::Proxy::new(url).map_err(|_| {
            "is not a proxy URL like http://[user:password@]host:port or socks5://host:port"
                .to_string()
        })?;
        if proxy.host().is_empty() {
            return Err("names no proxy host".into());
        }
        let shown = format!(
            "{}://{}:{}",
            scheme.unwrap_or_default(),
            proxy.host(),
            proxy.port()
        );
        Ok(ProxyUrl { proxy, shown })
    }

    /// `socks5://host:1080`, without credentials: for log lines.
    pub fn shown(&self) -> &str {
        &self.shown
    }
}

/// A client whose kept connections can be let go. ureq drops an idle
/// connection only when its agent is used again, so a server asked once a
/// minute would hold its TLS connections (about 170 KB) all the time: 100
/// servers, 17 MB. The owner calls `release` when a piece of work is done;
/// the next request starts a fresh agent (and a fresh handshake).
pub struct ClientSlot {
    trust: Trust,
    limits: Limits,
    current: std::sync::Mutex<Option<Client>>,
}

impl ClientSlot {
    pub fn new(trust: &Trust, limits: Limits) -> ClientSlot {
        ClientSlot {
            trust: trust.clone(),
            limits,
            current: std::sync::Mutex::new(None),
        }
    }

    /// The client to use now (clones share its connections).
    pub fn client(&self) -> Client {
        let mut current = self.current.lock().unwrap_or_else(|p| p.into_inner());
        current
            .get_or_insert_with(|| Client::new(&self.trust, self.limits))
            .clone()
    }

    /// Lets the kept connections go (once requests under way are done).
    pub fn release(&self) {
        *self.current.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }
}

/// Name resolution without a thread for what needs none: an address given
/// as an IP literal (the usual `ip = "10.0.0.5"` of a TrueConf server) is
/// used as it is; names go to ureq's resolver, which resolves in a thread
/// of its own so that a hanging DNS cannot outlast the connect timeout.
/// (ureq starts that thread for literals too: with 100 servers probed at
/// once that was a hundred threads.)
#[derive(Debug, Default)]
pub(crate) struct Resolve(DefaultResolver);

impl Resolver for Resolve {
    fn resolve(
        &self,
        uri: &ureq::http::Uri,
        config: &ureq::config::Config,
        timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let literal = uri.authority().and_then(|authority| {
            let host = authority
                .host()
                .trim_start_matches('[')
                .trim_end_matches(']');
            let ip: IpAddr = host.parse().ok()?;
            let port = authority.port_u16().or(match uri.scheme_str() {
                Some("https") => Some(443),
                Some("http") => Some(80),
                _ => None,
            })?;
            Some(SocketAddr::new(ip, port))
        });
        match literal {
            Some(addr) => {
                let mut found = self.empty();
                found.push(addr);
                Ok(found)
            }
            None => self.0.resolve(uri, config, timeout),
        }
    }
}

impl Client {
    /// An agent that verifies TLS as `trust` says.
    pub fn new(trust: &Trust, timeouts: Limits) -> Client {
        Client::with_proxy(trust, timeouts, None)
    }

    /// The same, through `proxy` (never one from the environment).
    pub fn with_proxy(trust: &Trust, timeouts: Limits, proxy: Option<&ProxyUrl>) -> Client {
        let builder = Agent::config_builder()
            .http_status_as_error(false)
            .proxy(proxy.map(|p| p.proxy.clone()))
            // Never follow a Location with a token in the query; a redirect
            // is an unexpected answer to report.
            .max_redirects(0)
            .max_redirects_will_error(false)
            .user_agent(USER_AGENT)
            .timeout_connect(Some(timeouts.connect))
            .timeout_global(Some(timeouts.whole))
            .max_idle_connections_per_host(timeouts.idle_per_host)
            .max_idle_connections(timeouts.idle_per_host * 16)
            // ureq's 128 KiB buffers per connection would be most of our
            // memory; answers are read in a loop anyway.
            .input_buffer_size(timeouts.buffers.0)
            .output_buffer_size(timeouts.buffers.1)
            .max_response_header_size(timeouts.buffers.0 / 2)
            .max_idle_age(timeouts.idle);
        let agent = match trust {
            Trust::BuiltIn => Agent::with_parts(
                builder.build(),
                DefaultConnector::default(),
                Resolve::default(),
            ),
            Trust::Off => Agent::with_parts(
                builder
                    .tls_config(TlsConfig::builder().disable_verification(true).build())
                    .build(),
                DefaultConnector::default(),
                Resolve::default(),
            ),
            Trust::Pinned { certs, .. } => {
                let certs = certs
                    .iter()
                    .map(|der| rustls::pki_types::CertificateDer::from(der.clone()))
                    .collect();
                tls::pinned_agent(builder.build(), certs, Resolve::default())
            }
        };
        Client {
            agent,
            limits: timeouts,
        }
    }

    /// `GET url?query`. The query is encoded by ureq, never by `format!`.
    /// A GET is tried twice when a kept-alive connection turns out to have
    /// been closed by the server (it is safe to repeat).
    pub fn get(
        &self,
        url: &str,
        query: &[(&str, &str)],
        bearer: Option<&str>,
    ) -> Result<Response, NetError> {
        let attempt = || {
            let mut request = self.agent.get(url);
            for (k, v) in query {
                request = request.query(*k, *v);
            }
            if let Some(token) = bearer {
                request = request.header("Authorization", &format!("Bearer {token}"));
            }
            finish(request.call(), self.limits.body)
        };
        match attempt() {
            Err(NetError::Unreachable(why)) if why == CLOSED_EARLY || why == RESET => attempt(),
            other => other,
        }
    }

    /// `GET path` over plain HTTP from an IP address, without ureq (see
    /// `plain`): for the `/vsstatus` probe. `host` is the `Host` header
    /// (address and port). Tried twice when the connection closes before
    /// an answer, as `get` is.
    pub fn get_plain(
        &self,
        addr: SocketAddr,
        host: &str,
        path: &str,
    ) -> Result<Response, NetError> {
        let attempt = || plain::get(addr, host, path, &self.limits);
        match attempt() {
            Err(e) if e.is_dropped() => attempt(),
            other => other,
        }
    }

    /// `POST url?query` with a JSON body.
    pub fn post_json(
        &self,
        url: &str,
        query: &[(&str, &str)],
        body: &serde_json::Value,
    ) -> Result<Response, NetError> {
        let mut request = self.agent.post(url);
        for (k, v) in query {
            request = request.query(*k, *v);
        }
        let bytes = serde_json::to_vec(body).unwrap_or_default();
        finish(
            request
                .header("Content-Type", "application/json")
                .send(&bytes[..]),
            self.limits.body,
        )
    }

    /// `POST url` with an `application/x-www-form-urlencoded` body.
    pub fn post_form(&self, url: &str, form: &[(&str, &str)]) -> Result<Response, NetError> {
        finish(
            self.agent.post(url).send_form(form.iter().copied()),
            self.limits.body,
        )
    }

    /// `POST url?query` with no body.
    pub fn post_empty(&self, url: &str, query: &[(&str, &str)]) -> Result<Response, NetError> {
        let mut request = self.agent.post(url);
        for (k, v) in query {
            request = request.query(*k, *v);
        }
        finish(request.send_empty(), self.limits.body)
    }
}

fn finish(
    result: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    body_limit: u64,
) -> Result<Response, NetError> {
    let mut response = result.map_err(classify)?;
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .map(|(k, v)| {
            let value = String::from_utf8_lossy(v.as_bytes()).into_owned();
            (k.as_str().to_ascii_lowercase(), value)
        })
        .collect();
    let body = response
        .body_mut()
        .with_config()
        .limit(body_limit)
        .lossy_utf8(true)
        .read_to_string()
        .map_err(classify)?;
    Ok(Response {
        status,
        body,
        headers,
    })
}

/// Maps a ureq error to what it means for the admin. Never uses ureq's
/// Display, which can contain the URL (and so a token).
fn classify(err: ureq::Error) -> NetError {
    let kind = kind_of(&err);
    match &err {
        // These name no URL: which timeout fired, the OS error.
        ureq::Error::Timeout(which) => log::debug!("http: request failed: timeout ({which:?})"),
        ureq::Error::Io(e) => log::debug!("http: request failed: {kind} ({:?})", e.kind()),
        _ => log::debug!("http: request failed: {kind}"),
    }
    kind
}

fn kind_of(err: &ureq::Error) -> NetError {
    match err {
        ureq::Error::Timeout(_) => NetError::Timeout,
        ureq::Error::HostNotFound => NetError::Unreachable("host name not found".into()),
        ureq::Error::ConnectionFailed => NetError::Unreachable("connection failed".into()),
        // rustls reports a refused certificate inside an io::Error.
        ureq::Error::Io(e) if e.get_ref().is_some_and(|i| i.is::<rustls::Error>()) => {
            match e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
                Some(tls) => NetError::Tls(tls_reason(tls)),
                None => NetError::Tls("handshake failed".into()),
            }
        }
        ureq::Error::Io(e) => io_kind(e),
        ureq::Error::Rustls(e) => NetError::Tls(tls_reason(e)),
        ureq::Error::Tls(why) => NetError::Tls((*why).to_string()),
        ureq::Error::Pem(_) => NetError::Tls("bad certificate file".into()),
        ureq::Error::BodyExceedsLimit(_) => NetError::Other("answer too large".into()),
        ureq::Error::Protocol(_) | ureq::Error::LargeResponseHeader(..) => {
            NetError::Other("not an HTTP answer".into())
        }
        ureq::Error::BadUri(_) => NetError::Other("invalid address".into()),
        // The proxy's own words may echo the request: not passed on.
        ureq::Error::ConnectProxyFailed(_) => {
            NetError::Unreachable("the proxy refused the connection".into())
        }
        ureq::Error::InvalidProxyUrl => NetError::Other("invalid proxy address".into()),
        _ => NetError::Other("request failed".into()),
    }
}

/// What a socket error means for the admin.
fn io_kind(e: &std::io::Error) -> NetError {
    match e.kind() {
        ErrorKind::TimedOut | ErrorKind::WouldBlock => NetError::Timeout,
        ErrorKind::ConnectionRefused => NetError::Unreachable("connection refused".into()),
        ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted | ErrorKind::BrokenPipe => {
            NetError::Unreachable(RESET.into())
        }
        ErrorKind::UnexpectedEof => NetError::Unreachable(CLOSED_EARLY.into()),
        ErrorKind::NotFound => NetError::Unreachable("host name not found".into()),
        _ => NetError::Unreachable(io_reason(e)),
    }
}

/// A socket error of the plain client, logged as ureq's are.
fn io_error(e: &std::io::Error) -> NetError {
    let kind = io_kind(e);
    log::debug!("http: request failed: {kind} ({:?})", e.kind());
    kind
}

/// The io error's own text, which names no URL (only the OS reason).
fn io_reason(e: &std::io::Error) -> String {
    // The OS's own words name no URL; other io errors are described by kind.
    let text = e.to_string();
    if text.contains("lookup address") {
        return "host name not found".into();
    }
    if e.raw_os_error().is_some() {
        return text;
    }
    match e.kind() {
        ErrorKind::NetworkUnreachable => "network unreachable".into(),
        ErrorKind::HostUnreachable => "host unreachable".into(),
        ErrorKind::AddrNotAvailable => "address not available".into(),
        ErrorKind::PermissionDenied => "not permitted".into(),
        _ => "network error".into(),
    }
}

fn tls_reason(e: &rustls::Error) -> String {
    use rustls::CertificateError as C;
    match e {
        rustls::Error::InvalidCertificate(why) => match why {
            C::UnknownIssuer => "certificate not trusted: unknown issuer".into(),
            C::NotValidForName | C::NotValidForNameContext { .. } => {
                "certificate not trusted: issued for another name".into()
            }
            C::Expired | C::ExpiredContext { .. } => "certificate expired".into(),
            C::BadSignature => "certificate not trusted: bad signature".into(),
            _ => "certificate not trusted".into(),
        },
        rustls::Error::AlertReceived(alert) => format!("server sent alert {alert:?}"),
        _ => "handshake failed".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_errors_are_told_in_words_without_addresses() {
        let dns =
            std::io::Error::other("failed to lookup address information: Name does not resolve");
        assert_eq!(io_reason(&dns), "host name not found");
        let os = std::io::Error::from_raw_os_error(113);
        assert_eq!(io_reason(&os), os.to_string());
        let custom = std::io::Error::other("https://secret.example/path");
        assert_eq!(io_reason(&custom), "network error");
    }

    /// Serves one canned answer on a loopback port.
    fn one_answer(answer: &'static str) -> u16 {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            if let Ok((mut stream, _)) = listener.accept() {
                let mut buf = [0u8; 4096];
                let _ = stream.read(&mut buf);
                let _ = stream.write_all(answer.as_bytes());
            }
        });
        port
    }

    #[test]
    fn redirects_are_not_followed_but_reported() {
        let port = one_answer(
            "HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:9/x\r\nContent-Length: 0\r\n\r\n",
        );
        let client = Client::new(&Trust::BuiltIn, Limits::trueconf(&Timing::default()));
        let r = client
            .get(&format!("http://127.0.0.1:{port}/"), &[], None)
            .unwrap();
        assert_eq!(r.status, 302);
    }

    #[test]
    fn answers_beyond_the_limit_fail() {
        let body = "x".repeat(70_000);
        let answer = format!("HTTP/1.1 200 OK\r\nContent-Length: 70000\r\n\r\n{body}");
        let port = one_answer(Box::leak(answer.into_boxed_str()));
        let client = Client::new(
            &Trust::BuiltIn,
            Limits::probe(Duration::from_secs(1), &Timing::default()),
        );
        let err = client
            .get(&format!("http://127.0.0.1:{port}/"), &[], None)
            .unwrap_err();
        assert_eq!(err, NetError::Other("answer too large".into()));
    }

    #[test]
    fn a_refused_connection_is_unreachable() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let client = Client::new(&Trust::BuiltIn, Limits::trueconf(&Timing::default()));
        let err = client
            .get(&format!("http://127.0.0.1:{port}/x"), &[], None)
            .unwrap_err();
        assert_eq!(err, NetError::Unreachable("connection refused".into()));
    }
}
