//! A fake TrueConf Server: the REST API and the OAuth2 token endpoint on an
//! HTTPS port (our `http1` server speaking through rustls on each
//! connection), and `/vsstatus` on a separate plain-HTTP "status port" that
//! can be taken down (connections refused) and brought back on the same port.
//! Every request is handled on its connection's thread, so a delayed or hung
//! answer holds only that connection.
//!
//! It answers the way the evidence about real servers shows
//! (reference/trueconf-api-evidence.md): several API prefixes at once (v3.3
//! and v3.11, and v4 as on 5.5), a 401 for an invalid token on v4 paths, a
//! 404 `conferenceNotFound` only for an id that does not exist, a stop of a
//! stopped conference that is not a 404, and `/vsstatus` with a fixed
//! `200 Ok`, `Connection: close`, no Content-Length and a `Server` header.
//! Switches model what real servers may do and we cannot check: participants
//! without `role`, rows without `class`, "ghost" sessions, page_size caps
//! that clip silently or answer 400, other token error shapes, recording
//! fields, and stop requests whose connection drops before any answer.
#![allow(dead_code)]

use super::http1;
use super::{TempDir, lock, notify_changed, parse_form, percent_decode, wait_deadline};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet, VecDeque};
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub const CLIENT_ID: &str = "86add683ebc98123968a549f8976db0024abe288";
pub const CLIENT_SECRET: &str = "b7f3f5cb51b02634b1bb546eb7f1f905c93960ba";
/// The server's domain in ids (`user@tc.local`, `...@tc.local#vcs`).
pub const DOMAIN: &str = "tc.local";
/// What `/vsstatus` says, and its `Server` header.
pub const PRODUCT: &str = "TrueConf Server 5.5.2.10";
/// What `/api/v4/server` names as the server (MIG reads it as the e-mail domain).
pub const SERVER_DISPLAY_NAME: &str = "tc.local";
const SCOPE: &str = "conferences conferences:read conferences:write users users:read logs.calls:read logs.calls.participants:read conferences.sessions:read conferences.sessions.participants:read";

/// How the API port speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tls {
    /// A private CA and a leaf (CA:FALSE) for IP 127.0.0.1 and DNS localhost.
    CaSigned,
    /// One self-signed certificate with CA:TRUE (like `openssl req -x509`), SAN 127.0.0.1.
    SelfSigned,
    /// Plain HTTP on the API port.
    Plain,
}

/// A row of `/logs/calls`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conf {
    /// The session id, e.g. "000001bf1ef7e5e5@tc.local#vcs".
    pub conference_id: String,
    pub named_conf_id: Option<String>,
    pub topic: Option<String>,
    pub class: i64,
    pub owner: Option<String>,
    pub participant_count: i64,
    /// Seconds.
    pub duration: i64,
    pub running: bool,
}

impl Conf {
    /// A running group conference `named_id` (session id derived from it),
    /// topic "Topic <named_id>", owned by alice, 2 participants.
    pub fn running(named_id: &str, duration: i64) -> Conf {
        Conf {
            conference_id: session_id_for(named_id),
            named_conf_id: Some(named_id.to_string()),
            topic: Some(format!("Topic {named_id}")),
            class: 10,
            owner: Some(format!("alice@{DOMAIN}")),
            participant_count: 2,
            duration,
            running: true,
        }
    }

    /// The same, but ended.
    pub fn ended(named_id: &str, duration: i64) -> Conf {
        Conf {
            running: false,
            ..Conf::running(named_id, duration)
        }
    }

    /// A point-to-point call (class 1, no named conference), running or not.
    pub fn p2p(seed: &str, duration: i64, running: bool) -> Conf {
        Conf {
            conference_id: session_id_for(seed),
            named_conf_id: None,
            topic: None,
            class: 1,
            owner: Some(format!("bob@{DOMAIN}")),
            participant_count: 2,
            duration,
            running,
        }
    }
}

/// A stable session id for a name: 16 hex digits + "@tc.local#vcs".
pub fn session_id_for(seed: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in seed.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}@{DOMAIN}#vcs")
}

/// An item of `/conference-sessions/{id}/participants`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Participant {
    pub id: String,
    pub display_name: String,
    /// 2 = owner/moderator ("leader"), 1 = ordinary; `None`: the item has no
    /// `role` (a gateway or guest participant may not, R3).
    pub role: Option<i64>,
    /// Seconds ago the person left: the item carries a `leave_time` (people
    /// who left may still be listed, R3).
    pub left_secs_ago: Option<i64>,
}

impl Participant {
    /// `login@tc.local/abc123`, display name = login.
    pub fn new(login: &str, role: i64) -> Participant {
        Participant {
            id: format!("{login}@{DOMAIN}/{}", &session_id_for(login)[..6]),
            display_name: login.to_string(),
            role: Some(role),
            left_secs_ago: None,
        }
    }

    /// An item without `role` (a SIP/H.323 gateway, say).
    pub fn without_role(login: &str) -> Participant {
        Participant {
            role: None,
            ..Participant::new(login, 1)
        }
    }

    /// The same person, listed with a `leave_time` that long ago.
    pub fn left(mut self, secs_ago: i64) -> Participant {
        self.left_secs_ago = Some(secs_ago);
        self
    }
}

/// How `page_size` is limited on an endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PageCap {
    /// Larger values are cut to this, without a word.
    Clip(usize),
    /// Larger values are refused with 400.
    Reject(usize),
}

/// How the token endpoint refuses wrong credentials (R10: vendor code
/// expects three shapes; the status is not known).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TokenRefusal {
    /// RFC 6749 / bshaffer: `{"error": "invalid_client", "error_description": …}`.
    OAuth(u16),
    /// The vendor's bot reads a top-level `reason` (`InvalidCredentials`).
    Reason(u16),
    /// 5.5 style: `{"error": {"code", "message", "errors": [{"reason"}]}}`.
    Nested(u16),
    /// `unauthorized_client`: the application may not use this grant.
    GrantNotAllowed,
}

/// An item of `/users`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    pub id: String,
    /// -1 invalid, 0 offline, 1 available, 2 busy, 5 in a conference.
    pub status: i64,
}

/// One request to the API port (token requests included), as received.
#[derive(Clone, Debug)]
pub struct Req {
    pub method: String,
    /// The path, percent-decoded (without the query string).
    pub path: String,
    /// The path as received (without the query string), e.g. with `%40` and `%23`.
    pub raw_path: String,
    /// The query string, decoded.
    pub query: Vec<(String, String)>,
    /// From `?access_token=` or else `Authorization: Bearer`.
    pub token: Option<String>,
    pub body: String,
    pub headers: Vec<(String, String)>,
    pub at: Instant,
}

impl Req {
    pub fn query_value(&self, key: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A one-shot answer (see [`FakeTrueConf::script`]).
#[derive(Clone, Debug)]
pub enum ApiReply {
    Status {
        status: u16,
        content_type: String,
        body: String,
    },
    /// Hold the request that long, then answer it normally.
    Hang(Duration),
}

impl ApiReply {
    pub fn json(status: u16, body: Value) -> ApiReply {
        ApiReply::Status {
            status,
            content_type: "application/json".into(),
            body: body.to_string(),
        }
    }

    /// A proxy's HTML error page.
    pub fn html(status: u16) -> ApiReply {
        ApiReply::Status {
            status,
            content_type: "text/html".into(),
            body: format!("<html><body><h1>{status}</h1></body></html>"),
        }
    }
}

struct ConfEntry {
    conf: Conf,
    start: i64,
    end: Option<i64>,
}

struct State {
    confs: Vec<ConfEntry>,
    participants: HashMap<String, Vec<Participant>>,
    users: Vec<User>,
    token_ttl: u64,
    tokens: HashMap<String, Instant>,
    credentials_valid: bool,
    token_refusal: TokenRefusal,
    static_token: Option<String>,
    missing_scopes: Vec<String>,
    delay: Duration,
    scripts: VecDeque<(String, ApiReply)>,
    /// The v3 versions served ("v3.3", …); `/api/{v}` each.
    api_versions: Vec<String>,
    /// `/api/v4` is served too (TrueConf Server 5.5 and later).
    v4: bool,
    /// Sessions the call log shows running that the server no longer has.
    ghosts: HashSet<String>,
    /// Call-log rows carry `type` but no `class`.
    rows_without_class: bool,
    calls_cap: PageCap,
    users_cap: PageCap,
    /// `next_page_id` on the last page of `/users` (-1; 0 on some servers, R7).
    users_end: i64,
    /// The answer to a stop of a conference that exists but does not run.
    stop_of_stopped: ApiReply,
    /// For each coming stop request: its connection drops before any
    /// answer; `true` when the server stopped the conference first.
    stop_drops: VecDeque<bool>,
    /// `stream_recording_state` per conference id (0 none, 1 recording, 2 paused).
    recording: HashMap<String, i64>,
    /// Conference objects carry `stream_recording_state`.
    recording_field: bool,
    /// The `Server` header of /vsstatus (None: no header).
    status_server: Option<String>,
    /// The web layer (PHP) is down: every API-port request gets this status
    /// with an HTML page, while /vsstatus still answers (R9).
    web_down: Option<u16>,
    requests: Vec<Req>,
    /// TLS handshakes completed on the API port.
    handshakes: usize,
    stops: Vec<String>,
    probes: usize,
    status_reply: Option<u16>,
    status_hang: bool,
    /// Bumped when the status port goes down, to release held probes.
    status_epoch: u64,
    /// Probes being held by `set_status_hang(true)` right now.
    status_held: usize,
    shutdown: bool,
}

struct Shared {
    state: Mutex<State>,
    cv: Condvar,
}

impl Shared {
    fn changed(&self) {
        self.cv.notify_all();
        notify_changed();
    }
}

/// The fake server; dropping it stops every thread it started and removes its files.
pub struct FakeTrueConf {
    shared: Arc<Shared>,
    tls: Tls,
    api_addr: SocketAddr,
    api: http1::Server,
    status: Mutex<Option<http1::Server>>,
    status_port: u16,
    dir: TempDir,
}

impl FakeTrueConf {
    pub const CLIENT_ID: &'static str = CLIENT_ID;
    pub const CLIENT_SECRET: &'static str = CLIENT_SECRET;

    pub fn start(tls: Tls) -> FakeTrueConf {
        let dir = TempDir::new();
        let certs = Certs::generate();
        let write = |name: &str, pem: &str| {
            std::fs::write(dir.join(name), pem).expect("fake TrueConf: cannot write a PEM file")
        };
        write("ca.pem", &certs.ca_pem);
        write("leaf.pem", &certs.leaf_pem);
        write("self-signed.pem", &certs.self_pem);
        write("other.pem", &certs.other_pem);

        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                confs: Vec::new(),
                participants: HashMap::new(),
                users: Vec::new(),
                token_ttl: 3600,
                tokens: HashMap::new(),
                credentials_valid: true,
                token_refusal: TokenRefusal::OAuth(400),
                static_token: None,
                missing_scopes: Vec::new(),
                delay: Duration::ZERO,
                scripts: VecDeque::new(),
                api_versions: vec!["v3.3".into(), "v3.11".into()],
                v4: true,
                ghosts: HashSet::new(),
                rows_without_class: false,
                calls_cap: PageCap::Clip(500),
                users_cap: PageCap::Clip(1000),
                users_end: -1,
                stop_of_stopped: ApiReply::json(
                    400,
                    json!({"error": {"code": 400, "message": "Bad Request", "errors": [{
                        "reason": "conferenceIsNotRunning",
                        "message": "The conference is not running.",
                        "locationType": "path",
                        "location": "conference_id"
                    }]}}),
                ),
                stop_drops: VecDeque::new(),
                recording: HashMap::new(),
                recording_field: true,
                status_server: Some(PRODUCT.to_string()),
                web_down: None,
                requests: Vec::new(),
                handshakes: 0,
                stops: Vec::new(),
                probes: 0,
                status_reply: None,
                status_hang: false,
                status_epoch: 0,
                status_held: 0,
                shutdown: false,
            }),
            cv: Condvar::new(),
        });

        let api = {
            let sh = shared.clone();
            let handler: Arc<http1::Handler> =
                Arc::new(move |rq: http1::Request| api_request(&sh, rq));
            let listener =
                TcpListener::bind("127.0.0.1:0").expect("fake TrueConf: cannot bind 127.0.0.1:0");
            let wrap: Option<Arc<http1::Wrap>> = match tls {
                Tls::Plain => None,
                Tls::CaSigned => Some(tls_wrap(
                    &shared,
                    certs.leaf_der.clone(),
                    certs.leaf_key.clone_key(),
                )),
                Tls::SelfSigned => Some(tls_wrap(
                    &shared,
                    certs.self_der.clone(),
                    certs.self_key.clone_key(),
                )),
            };
            http1::Server::start(listener, "fake-trueconf-api", wrap, handler)
        };
        let api_addr = api.addr();

        let status_listener =
            TcpListener::bind("127.0.0.1:0").expect("fake TrueConf: cannot bind 127.0.0.1:0");
        let status = start_status(status_listener, &shared);
        let status_port = status.addr().port();

        FakeTrueConf {
            shared,
            tls,
            api_addr,
            api,
            status: Mutex::new(Some(status)),
            status_port,
            dir,
        }
    }

    /// "127.0.0.1:PORT" of the API port, what goes into the settings' `ip`.
    pub fn ip(&self) -> String {
        self.api_addr.to_string()
    }

    /// "https://127.0.0.1:PORT" (or http:// with `Tls::Plain`).
    pub fn base_url(&self) -> String {
        let scheme = if self.tls == Tls::Plain {
            "http"
        } else {
            "https"
        };
        format!("{scheme}://{}", self.api_addr)
    }

    pub fn status_port(&self) -> u16 {
        self.status_port
    }

    /// The certificate to trust: the CA (CaSigned) or the server's own (SelfSigned).
    pub fn ca_pem_path(&self) -> PathBuf {
        match self.tls {
            Tls::SelfSigned => self.dir.join("self-signed.pem"),
            _ => self.dir.join("ca.pem"),
        }
    }

    /// The certificate the server presents.
    pub fn cert_pem_path(&self) -> PathBuf {
        match self.tls {
            Tls::SelfSigned => self.dir.join("self-signed.pem"),
            _ => self.dir.join("leaf.pem"),
        }
    }

    /// A self-signed certificate unrelated to this server.
    pub fn other_self_signed_pem_path(&self) -> PathBuf {
        self.dir.join("other.pem")
    }

    /// The fake's own temp dir (removed on drop), e.g. for settings files.
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    pub fn set_conferences(&self, confs: Vec<Conf>) {
        let now = unix_now();
        let mut st = lock(&self.shared.state);
        st.confs = confs
            .into_iter()
            .map(|conf| {
                let start = now - conf.duration.max(0);
                let end = (!conf.running).then_some(start + conf.duration.max(0));
                ConfEntry { conf, start, end }
            })
            .collect();
        drop(st);
        self.shared.changed();
    }

    /// The conferences now (stopped ones have `running == false`).
    pub fn conferences(&self) -> Vec<Conf> {
        lock(&self.shared.state)
            .confs
            .iter()
            .map(|e| e.conf.clone())
            .collect()
    }

    /// Participants of a session. A running conference without a list set here
    /// has none; any other unknown session gets 404.
    pub fn set_participants(&self, session_id: &str, ps: Vec<Participant>) {
        lock(&self.shared.state)
            .participants
            .insert(session_id.to_string(), ps);
    }

    pub fn set_users(&self, users: Vec<User>) {
        lock(&self.shared.state).users = users;
    }

    /// `n` users "user00001"...; every `online_every`-th one (the k-th, 2k-th, ...)
    /// is online with statuses cycling 1, 2, 5, the others cycle 0, -1.
    /// Returns how many are online.
    pub fn generate_users(&self, n: usize, online_every: usize) -> usize {
        let (mut on, mut off) = (0usize, 0usize);
        let users = (0..n)
            .map(|i| {
                let status = if online_every > 0 && (i + 1) % online_every == 0 {
                    on += 1;
                    [1, 2, 5][(on - 1) % 3]
                } else {
                    off += 1;
                    [0, -1][(off - 1) % 2]
                };
                User {
                    id: format!("user{:05}", i + 1),
                    status,
                }
            })
            .collect();
        self.set_users(users);
        on
    }

    /// `expires_in` of tokens issued from now on; they really expire then.
    pub fn set_token_ttl(&self, secs: u64) {
        lock(&self.shared.state).token_ttl = secs;
    }

    /// Waits until every token issued so far has expired (at most `timeout`).
    pub fn wait_tokens_expired(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut st = lock(&self.shared.state);
        loop {
            let Some(last) = st.tokens.values().max().copied() else {
                return true;
            };
            if Instant::now() >= last {
                return true;
            }
            let (g, more) = wait_deadline(&self.shared.cv, st, last.min(deadline));
            st = g;
            if !more && Instant::now() >= deadline {
                return Instant::now() >= last;
            }
        }
    }

    /// Every token issued so far becomes invalid (403 accessTokenInvalid).
    pub fn expire_tokens(&self) {
        lock(&self.shared.state).tokens.clear();
    }

    /// false: the token endpoint answers 400 invalid_client.
    pub fn set_credentials_valid(&self, ok: bool) {
        lock(&self.shared.state).credentials_valid = ok;
    }

    /// A fixed token (the server's secret key) that is accepted too.
    pub fn set_static_token(&self, token: &str) {
        lock(&self.shared.state).static_token = Some(token.to_string());
    }

    /// API paths starting with `path_prefix` (after /api/v3.3, e.g. "/logs/calls")
    /// answer 403 reason "forbidden". Cumulative.
    pub fn set_missing_scope(&self, path_prefix: &str) {
        lock(&self.shared.state)
            .missing_scopes
            .push(path_prefix.to_string());
    }

    pub fn clear_missing_scopes(&self) {
        lock(&self.shared.state).missing_scopes.clear();
    }

    /// Every API answer (token endpoint included, /vsstatus not) waits that long.
    pub fn set_delay(&self, d: Duration) {
        lock(&self.shared.state).delay = d;
    }

    /// Serve only this API v3 version (default: "v3.3" and "v3.11").
    pub fn set_api_version(&self, version: &str) {
        lock(&self.shared.state).api_versions = vec![version.to_string()];
    }

    /// Serve this API v3 version too.
    pub fn add_api_version(&self, version: &str) {
        lock(&self.shared.state)
            .api_versions
            .push(version.to_string());
    }

    /// false: no `/api/v4` at all (a server older than 5.5).
    pub fn set_v4(&self, on: bool) {
        lock(&self.shared.state).v4 = on;
    }

    /// How the token endpoint refuses wrong credentials (default `OAuth(400)`).
    pub fn set_token_refusal(&self, refusal: TokenRefusal) {
        lock(&self.shared.state).token_refusal = refusal;
    }

    /// The call log keeps showing this session running, but the server no
    /// longer has it (cut off by a crash, R4): its participants call answers
    /// 404, stopping its conference is refused as not running.
    pub fn make_ghost(&self, session_id: &str) {
        lock(&self.shared.state)
            .ghosts
            .insert(session_id.to_string());
    }

    /// Call-log rows carry `type` but no `class` (R5).
    pub fn set_rows_without_class(&self, on: bool) {
        lock(&self.shared.state).rows_without_class = on;
    }

    /// page_size limit of `/logs/calls` (default: clipped to 500).
    pub fn set_calls_cap(&self, cap: PageCap) {
        lock(&self.shared.state).calls_cap = cap;
    }

    /// page_size limit of `/users` (default: clipped to 1000).
    pub fn set_users_cap(&self, cap: PageCap) {
        lock(&self.shared.state).users_cap = cap;
    }

    /// `next_page_id` of the last `/users` page (default -1).
    pub fn set_users_end(&self, marker: i64) {
        lock(&self.shared.state).users_end = marker;
    }

    /// The answer to a stop of a conference that exists but does not run
    /// (default: 400 `conferenceIsNotRunning`).
    pub fn set_stop_of_stopped(&self, reply: ApiReply) {
        lock(&self.shared.state).stop_of_stopped = reply;
    }

    /// The next stop request's connection closes before any answer; with
    /// `stopped_first`, the conference was stopped all the same.
    pub fn drop_next_stop(&self, stopped_first: bool) {
        lock(&self.shared.state).stop_drops.push_back(stopped_first);
    }

    /// `stream_recording_state` of a conference: 0 none, 1 recording, 2 paused.
    pub fn set_recording(&self, conference_id: &str, state: i64) {
        lock(&self.shared.state)
            .recording
            .insert(conference_id.to_string(), state);
    }

    /// false: conference objects have no `stream_recording_state` at all.
    pub fn set_recording_field(&self, on: bool) {
        lock(&self.shared.state).recording_field = on;
    }

    /// The web interface and API answer `status` (e.g. 502 from the web
    /// server while PHP is down) to every request, token endpoint included;
    /// None: they work again. /vsstatus is not affected.
    pub fn set_web_down(&self, status: Option<u16>) {
        lock(&self.shared.state).web_down = status;
    }

    /// The `Server` header of /vsstatus; None sends none (the body still
    /// names the product).
    pub fn set_status_server_header(&self, value: Option<&str>) {
        lock(&self.shared.state).status_server = value.map(str::to_string);
    }

    /// A one-shot answer for the next request whose decoded path starts with
    /// `path_prefix` (e.g. "/api/v3.3/logs/calls"); FIFO.
    pub fn script(&self, path_prefix: &str, reply: ApiReply) {
        lock(&self.shared.state)
            .scripts
            .push_back((path_prefix.to_string(), reply));
    }

    /// up: /vsstatus answers; down: the status port refuses connections (the
    /// listener is closed when this returns; up again re-binds the same port).
    pub fn set_up(&self, up: bool) {
        let mut status = lock(&self.status);
        match (up, status.is_some()) {
            (false, true) => {
                lock(&self.shared.state).status_epoch += 1;
                self.shared.changed();
                if let Some(mut server) = status.take() {
                    server.stop();
                }
            }
            (true, false) => {
                let addr = SocketAddr::from(([127, 0, 0, 1], self.status_port));
                let listener = TcpListener::bind(addr).unwrap_or_else(|e| {
                    panic!("fake TrueConf: cannot re-bind the status port {addr}: {e}")
                });
                *status = Some(start_status(listener, &self.shared));
            }
            _ => {}
        }
    }

    /// Answer /vsstatus with this HTTP status instead of 200 (e.g. 503).
    pub fn set_status_reply(&self, status: u16) {
        lock(&self.shared.state).status_reply = (status != 200).then_some(status);
    }

    /// true: /vsstatus connections are accepted but never answered (until false).
    pub fn set_status_hang(&self, hang: bool) {
        lock(&self.shared.state).status_hang = hang;
        self.shared.changed();
    }

    /// API and token requests, in order of arrival.
    pub fn requests(&self) -> Vec<Req> {
        lock(&self.shared.state).requests.clone()
    }

    /// How many TLS connections the API port has accepted (one handshake each).
    pub fn tls_handshakes(&self) -> usize {
        lock(&self.shared.state).handshakes
    }

    /// Decoded conference ids of every authenticated POST .../conferences/{id}/stop.
    pub fn stop_requests(&self) -> Vec<String> {
        lock(&self.shared.state).stops.clone()
    }

    /// Waits until at least `n` requests match `pred`; returns the matching ones
    /// (fewer on timeout).
    pub fn wait_requests(
        &self,
        timeout: Duration,
        pred: impl Fn(&Req) -> bool,
        n: usize,
    ) -> Vec<Req> {
        let deadline = Instant::now() + timeout;
        let mut st = lock(&self.shared.state);
        loop {
            let found: Vec<Req> = st.requests.iter().filter(|r| pred(r)).cloned().collect();
            if found.len() >= n {
                return found;
            }
            let (g, more) = wait_deadline(&self.shared.cv, st, deadline);
            st = g;
            if !more {
                return st.requests.iter().filter(|r| pred(r)).cloned().collect();
            }
        }
    }

    /// /vsstatus requests held unanswered by `set_status_hang(true)` right now.
    pub fn held_probes(&self) -> usize {
        lock(&self.shared.state).status_held
    }

    /// /vsstatus requests answered.
    pub fn probe_count(&self) -> usize {
        lock(&self.shared.state).probes
    }

    /// Waits until `probe_count() >= n`; returns the count.
    pub fn wait_probe_count(&self, timeout: Duration, n: usize) -> usize {
        let deadline = Instant::now() + timeout;
        let mut st = lock(&self.shared.state);
        while st.probes < n {
            let (g, more) = wait_deadline(&self.shared.cv, st, deadline);
            st = g;
            if !more {
                break;
            }
        }
        st.probes
    }
}

impl Drop for FakeTrueConf {
    fn drop(&mut self) {
        // Waiting answers give up first (they see the flag), then the servers stop.
        lock(&self.shared.state).shutdown = true;
        self.shared.changed();
        if let Some(mut server) = lock(&self.status).take() {
            server.stop();
        }
        self.api.stop();
    }
}

// ---------------------------------------------------------------------------
// Certificates

struct Certs {
    ca_pem: String,
    leaf_pem: String,
    leaf_der: CertificateDer<'static>,
    leaf_key: PrivateKeyDer<'static>,
    self_pem: String,
    self_der: CertificateDer<'static>,
    self_key: PrivateKeyDer<'static>,
    other_pem: String,
}

impl Certs {
    fn generate() -> Certs {
        use rcgen::{
            BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
            KeyPair, KeyUsagePurpose,
        };
        let fail = |e: rcgen::Error| -> ! { panic!("fake TrueConf: certificate generation: {e}") };
        let params = |cn: &str, sans: &[&str]| {
            let mut p =
                CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                    .unwrap_or_else(|e| fail(e));
            p.distinguished_name.push(DnType::CommonName, cn);
            p.not_before = rcgen::date_time_ymd(2020, 1, 1);
            p.not_after = rcgen::date_time_ymd(2099, 12, 31);
            p
        };
        let key = || KeyPair::generate().unwrap_or_else(|e| fail(e));
        let der_key =
            |k: &KeyPair| PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(k.serialize_der()));

        // A private CA and a leaf it signs.
        let mut ca_params = params("TrueConf Test CA", &[]);
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_key = key();
        let ca_cert = ca_params.self_signed(&ca_key).unwrap_or_else(|e| fail(e));
        let issuer = Issuer::new(ca_params, ca_key);

        let mut leaf_params = params("localhost", &["127.0.0.1", "localhost"]);
        leaf_params.is_ca = IsCa::ExplicitNoCa;
        leaf_params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        leaf_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        leaf_params.use_authority_key_identifier_extension = true;
        let leaf_key = key();
        let leaf = leaf_params
            .signed_by(&leaf_key, &issuer)
            .unwrap_or_else(|e| fail(e));

        // Self-signed with CA:TRUE, the way `openssl req -x509` makes them.
        let self_signed = |cn: &str| {
            let mut p = params(cn, &["127.0.0.1"]);
            p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            let k = key();
            let c = p.self_signed(&k).unwrap_or_else(|e| fail(e));
            (c, k)
        };
        let (self_cert, self_key) = self_signed("127.0.0.1");
        let (other_cert, _) = self_signed("127.0.0.1");

        Certs {
            ca_pem: ca_cert.pem(),
            leaf_pem: leaf.pem(),
            leaf_der: leaf.der().clone(),
            leaf_key: der_key(&leaf_key),
            self_pem: self_cert.pem(),
            self_der: self_cert.der().clone(),
            self_key: der_key(&self_key),
            other_pem: other_cert.pem(),
        }
    }
}

fn server_config(
    cert: CertificateDer<'static>,
    key: PrivateKeyDer<'static>,
) -> Arc<rustls::ServerConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("fake TrueConf: TLS versions")
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .expect("fake TrueConf: TLS certificate");
    Arc::new(config)
}

// ---------------------------------------------------------------------------
// TLS: each API connection does its handshake on its own thread, then `http1`
// reads and writes through it.

/// Makes the TLS transport of each accepted API connection.
fn tls_wrap(
    shared: &Arc<Shared>,
    cert: CertificateDer<'static>,
    key: PrivateKeyDer<'static>,
) -> Arc<http1::Wrap> {
    let config = server_config(cert, key);
    let shared = shared.clone();
    Arc::new(move |tcp: TcpStream| {
        let mut conn = rustls::ServerConnection::new(config.clone()).ok()?;
        // The handshake is bounded in time; a client hanging up mid-way ends it.
        let _ = tcp.set_read_timeout(Some(Duration::from_secs(10)));
        while conn.is_handshaking() {
            match conn.complete_io(&mut &tcp) {
                Ok((0, 0)) | Err(_) => return None,
                Ok(_) => {}
            }
        }
        lock(&shared.state).handshakes += 1;
        Some(Box::new(TlsStream { conn, tcp }) as Box<dyn http1::Transport>)
    })
}

/// A server TLS session over its socket, read and written in blocking mode.
struct TlsStream {
    conn: rustls::ServerConnection,
    tcp: TcpStream,
}

impl TlsStream {
    /// Sends every TLS record rustls has queued.
    fn send_queued(&mut self) -> std::io::Result<()> {
        while self.conn.wants_write() {
            self.conn.write_tls(&mut &self.tcp)?;
        }
        Ok(())
    }
}

impl Read for TlsStream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            match self.conn.reader().read(buf) {
                Ok(n) => return Ok(n), // 0: close_notify
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
            let n = self.conn.read_tls(&mut &self.tcp)?;
            let processed = self.conn.process_new_packets();
            // Alerts, key updates and the like go out even when the input was bad.
            self.send_queued()?;
            if let Err(e) = processed {
                return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, e));
            }
            if n == 0 {
                // The socket ended without close_notify: what is left, then the end.
                return Ok(self.conn.reader().read(buf).unwrap_or(0));
            }
        }
    }
}

impl Write for TlsStream {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.conn.writer().write(buf)?;
        self.send_queued()?;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.conn.writer().flush()?;
        self.send_queued()
    }
}

impl http1::Transport for TlsStream {
    fn close_write(&mut self) {
        self.conn.send_close_notify();
        let _ = self.send_queued();
        let _ = self.tcp.shutdown(Shutdown::Write);
    }
}

// ---------------------------------------------------------------------------
// Status port (/vsstatus), plain HTTP with Connection: close.

/// The port's epoch is read here, once: a probe that the port accepted just
/// before `set_up(false)` stopped it must see the change too, or stopping the
/// port would wait for that probe forever.
fn start_status(listener: TcpListener, shared: &Arc<Shared>) -> http1::Server {
    let shared = shared.clone();
    let epoch = lock(&shared.state).status_epoch;
    http1::Server::start(
        listener,
        "fake-trueconf-status",
        None,
        Arc::new(move |rq: http1::Request| status_request(&shared, epoch, &rq)),
    )
}

/// None (no answer, the connection is closed) when the fake or this status
/// port goes away while the probe is held.
fn status_request(shared: &Shared, epoch: u64, rq: &http1::Request) -> Option<http1::Response> {
    let (status, body) = if !rq.target.starts_with('/') {
        (400, "<html><body>Bad Request</body></html>".to_string())
    } else if rq.path() == "/vsstatus" {
        let mut st = lock(&shared.state);
        if st.status_hang {
            st.status_held += 1;
            shared.changed();
            while st.status_hang && !st.shutdown && st.status_epoch == epoch {
                st = match shared.cv.wait(st) {
                    Ok(g) => g,
                    Err(e) => e.into_inner(),
                };
            }
            st.status_held -= 1;
            shared.changed();
        }
        if st.shutdown || st.status_epoch != epoch {
            return None;
        }
        st.probes += 1;
        let reply = st.status_reply;
        let server = st.status_server.clone();
        drop(st);
        shared.changed();
        let answer = match reply {
            Some(code) => http1::Response::new(
                code,
                "text/html",
                format!("<html><body>{code}</body></html>"),
            )
            .closing(),
            // What the server's handler writes (SRC VisicronServiceStatus.h):
            // a fixed "200 Ok", Server, Connection: close, and no length.
            None => {
                http1::Response::new(200, "text/html", format!("{PRODUCT}<br/>Status:OK <br/>"))
                    .with_reason("Ok")
                    .without_length()
            }
        };
        return Some(match server {
            Some(value) => answer.with_header("Server", &value),
            None => answer,
        });
    } else {
        (404, "<html><body>Not Found</body></html>".to_string())
    };
    Some(
        http1::Response::new(status, "text/html", body)
            .with_header("Server", PRODUCT)
            .closing(),
    )
}

// ---------------------------------------------------------------------------
// API requests

/// Records an API request and answers it (on its connection's thread).
fn api_request(shared: &Shared, rq: http1::Request) -> Option<http1::Response> {
    let (raw_path, query_str) = (rq.path(), rq.query());
    let query = parse_form(query_str);
    let bearer = rq.header("Authorization").and_then(|v| {
        let (scheme, token) = v.trim().split_once(' ')?;
        scheme
            .eq_ignore_ascii_case("bearer")
            .then(|| token.trim().to_string())
    });
    let query_token = query
        .iter()
        .find(|(k, _)| k == "access_token")
        .map(|(_, v)| v.clone());
    let both_tokens = query_token.is_some() && bearer.is_some();
    let req = Req {
        method: rq.method.to_ascii_uppercase(),
        path: percent_decode(raw_path, false),
        raw_path: raw_path.to_string(),
        query,
        token: query_token.or(bearer),
        body: rq.body_text(),
        headers: rq.headers.clone(),
        at: Instant::now(),
    };
    lock(&shared.state).requests.push(req.clone());
    shared.changed();
    let answer = answer_request(shared, &req, both_tokens);
    if answer.drop_connection {
        // The connection closes before any answer.
        return None;
    }
    Some(http1::Response::new(
        answer.status,
        &answer.content_type,
        answer.body,
    ))
}

/// Waits `d` unless the fake is dropped first; false when it was dropped.
fn pause(shared: &Shared, d: Duration) -> bool {
    let deadline = Instant::now() + d;
    let mut st = lock(&shared.state);
    while !st.shutdown {
        let (g, more) = wait_deadline(&shared.cv, st, deadline);
        st = g;
        if !more {
            break;
        }
    }
    !st.shutdown
}

struct Answer {
    status: u16,
    content_type: String,
    body: String,
    /// Close the connection instead of answering.
    drop_connection: bool,
}

impl Answer {
    fn dropped() -> Answer {
        Answer {
            status: 0,
            content_type: String::new(),
            body: String::new(),
            drop_connection: true,
        }
    }

    fn from_reply(reply: &ApiReply) -> Answer {
        match reply {
            ApiReply::Status {
                status,
                content_type,
                body,
            } => Answer {
                status: *status,
                content_type: content_type.clone(),
                body: body.clone(),
                drop_connection: false,
            },
            ApiReply::Hang(_) => json_answer(500, json!({ "error": "hang is not an answer" })),
        }
    }
}

fn json_answer(status: u16, body: Value) -> Answer {
    Answer {
        status,
        content_type: "application/json; charset=UTF-8".into(),
        body: body.to_string(),
        drop_connection: false,
    }
}

fn nested_error(code: u16, reason: &str, message: &str, location: Option<(&str, &str)>) -> Answer {
    let mut e = json!({ "reason": reason, "message": message });
    if let Some((kind, name)) = location {
        e["locationType"] = json!(kind);
        e["location"] = json!(name);
    }
    json_answer(
        code,
        json!({ "error": { "code": code, "message": reason_phrase(code), "errors": [e] } }),
    )
}

fn reason_phrase(code: u16) -> &'static str {
    http1::reason(code)
}

fn not_found() -> Answer {
    nested_error(
        404,
        "notFound",
        "The requested URL was not found on this server.",
        None,
    )
}

fn answer_request(shared: &Shared, req: &Req, both_tokens: bool) -> Answer {
    let (scripted, delay) = {
        let mut st = lock(&shared.state);
        let i = st
            .scripts
            .iter()
            .position(|(p, _)| req.path.starts_with(p.as_str()));
        (
            i.and_then(|i| st.scripts.remove(i)).map(|(_, r)| r),
            st.delay,
        )
    };
    let mut alive = true;
    if let Some(ApiReply::Hang(d)) = &scripted {
        alive = pause(shared, *d);
    }
    if alive && !delay.is_zero() {
        alive = pause(shared, delay);
    }
    if !alive {
        json_answer(503, json!({ "error": "shutting down" }))
    } else if let Some(reply @ ApiReply::Status { .. }) = &scripted {
        Answer::from_reply(reply)
    } else {
        let mut st = lock(&shared.state);
        let a = route(&mut st, req, both_tokens);
        drop(st);
        shared.changed();
        a
    }
}

/// Which API a path is under.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Api {
    V3,
    V4,
}

/// The API and the rest of the path (raw, after the prefix), when served.
fn split_api<'p>(st: &State, raw_path: &'p str) -> Option<(Api, &'p str, String)> {
    let under = |prefix: &str| {
        raw_path
            .strip_prefix(prefix)
            .filter(|rest| rest.is_empty() || rest.starts_with('/'))
    };
    for version in &st.api_versions {
        let prefix = format!("/api/{version}");
        if let Some(rest) = under(&prefix) {
            return Some((Api::V3, rest, prefix));
        }
    }
    if st.v4 {
        if let Some(rest) = under("/api/v4") {
            return Some((Api::V4, rest, "/api/v4".to_string()));
        }
    }
    None
}

fn route(st: &mut State, req: &Req, both_tokens: bool) -> Answer {
    if let Some(status) = st.web_down {
        return Answer::from_reply(&ApiReply::html(status));
    }
    if req.raw_path.contains('#') {
        return not_found();
    }
    if req.path == "/oauth2/v1/token" {
        return token_endpoint(st, req);
    }
    let Some((api, raw_rest, prefix)) = split_api(st, &req.raw_path) else {
        return not_found();
    };
    let segs: Vec<&str> = raw_rest.trim_start_matches('/').split('/').collect();
    // The one call without a token (5.5+): what MIG and the MCP health check read.
    if api == Api::V4 && req.method == "GET" && segs == ["server"] {
        return json_answer(
            200,
            json!({ "product": { "display_name": SERVER_DISPLAY_NAME } }),
        );
    }
    // Authentication.
    if both_tokens {
        return json_answer(
            400,
            json!({
                "error": "invalid_request",
                "error_description": "Only one method may be used to authenticate at a time (Auth header, GET or POST)"
            }),
        );
    }
    let now = Instant::now();
    let valid = match &req.token {
        Some(t) => {
            st.static_token.as_deref() == Some(t.as_str())
                || st.tokens.get(t).is_some_and(|exp| *exp > now)
        }
        None => false,
    };
    if !valid {
        return match api {
            // v3: 403 with reason accessTokenInvalid (the vendor's bots test it).
            Api::V3 => nested_error(403, "accessTokenInvalid", "Access token is invalid", None),
            // v4: a 401 (the vendor's MCP server and eraser renew on it).
            Api::V4 => json_answer(
                401,
                json!({ "error": { "code": 401, "message": "Unauthorized" } }),
            ),
        };
    }
    let rest = req.path.strip_prefix(prefix.as_str()).unwrap_or("");
    if st
        .missing_scopes
        .iter()
        .any(|s| rest.starts_with(s.as_str()))
    {
        return nested_error(
            403,
            "forbidden",
            "The access token does not have the scope required for this request",
            None,
        );
    }
    if api == Api::V4 {
        // v4 has other paths (conferences, sessions); the bot uses none of them.
        return not_found();
    }
    match (req.method.as_str(), segs.as_slice()) {
        ("GET", ["logs", "calls"]) => logs_calls(st, req),
        ("GET", ["conference-sessions", id, "participants"]) => {
            participants(st, &percent_decode(id, false))
        }
        ("GET", ["users"]) => users(st, req),
        ("GET", ["conferences", id]) => conference(st, &percent_decode(id, false)),
        ("POST", ["conferences", id, "stop"]) => stop(st, &percent_decode(id, false)),
        (_, ["conferences", _, "stop"]) => nested_error(
            405,
            "methodNotAllowed",
            "The request method is not supported for this resource.",
            None,
        ),
        _ => not_found(),
    }
}

fn token_endpoint(st: &mut State, req: &Req) -> Answer {
    let oauth_error = |code: u16, error: &str, description: &str| {
        json_answer(
            code,
            json!({ "error": error, "error_description": description }),
        )
    };
    if req.method != "POST" {
        return oauth_error(
            405,
            "invalid_request",
            "The request method must be POST when requesting an access token",
        );
    }
    let is_json = req
        .header("Content-Type")
        .is_some_and(|c| c.to_ascii_lowercase().contains("json"))
        || req.body.trim_start().starts_with('{');
    let params: HashMap<String, String> = if is_json {
        match serde_json::from_str::<Value>(&req.body) {
            Ok(Value::Object(o)) => o
                .into_iter()
                .map(|(k, v)| {
                    let v = match v {
                        Value::String(s) => s,
                        other => other.to_string(),
                    };
                    (k, v)
                })
                .collect(),
            _ => HashMap::new(),
        }
    } else {
        parse_form(&req.body).into_iter().collect()
    };
    let get = |k: &str| params.get(k).map(String::as_str);
    match get("grant_type") {
        None | Some("") => {
            return oauth_error(
                400,
                "invalid_request",
                "The grant type was not specified in the request",
            );
        }
        Some("client_credentials") => {}
        Some(other) => {
            return oauth_error(
                400,
                "unsupported_grant_type",
                &format!("Grant type \"{other}\" not supported"),
            );
        }
    }
    if get("client_id").is_none() {
        return oauth_error(
            400,
            "invalid_client",
            "Client credentials were not found in the headers or body",
        );
    }
    if !st.credentials_valid
        || get("client_id") != Some(CLIENT_ID)
        || get("client_secret") != Some(CLIENT_SECRET)
    {
        return match st.token_refusal.clone() {
            TokenRefusal::OAuth(status) => oauth_error(
                status,
                "invalid_client",
                "The client credentials are invalid",
            ),
            TokenRefusal::Reason(status) => json_answer(
                status,
                json!({ "reason": "InvalidCredentials", "message": "Invalid client credentials" }),
            ),
            TokenRefusal::Nested(status) => json_answer(
                status,
                json!({ "error": {
                    "code": status,
                    "message": "Invalid client credentials",
                    "errors": [{ "reason": "invalidCredentials", "message": "Invalid client credentials" }]
                } }),
            ),
            TokenRefusal::GrantNotAllowed => oauth_error(
                400,
                "unauthorized_client",
                "The grant type is unauthorized for this client_id",
            ),
        };
    }
    let token = random_hex(40);
    let ttl = st.token_ttl;
    st.tokens
        .insert(token.clone(), Instant::now() + Duration::from_secs(ttl));
    json_answer(
        200,
        json!({ "access_token": token, "expires_in": ttl, "token_type": "Bearer", "scope": SCOPE }),
    )
}

fn query_int(req: &Req, key: &str) -> Option<i64> {
    req.query_value(key).and_then(|v| v.trim().parse().ok())
}

/// The page size a request gets under `cap`, or a 400 for a refused one.
fn page_size(req: &Req, default: usize, cap: PageCap) -> Result<usize, Answer> {
    match query_int(req, "page_size") {
        Some(n) if n > 0 => match cap {
            PageCap::Clip(max) => Ok((n as usize).min(max)),
            PageCap::Reject(max) if n as usize > max => Err(nested_error(
                400,
                "invalidParameter",
                "Invalid value of parameter page_size",
                Some(("parameter", "page_size")),
            )),
            PageCap::Reject(_) => Ok(n as usize),
        },
        _ => Ok(default),
    }
}

fn logs_calls(st: &State, req: &Req) -> Answer {
    let size = match page_size(req, 200, st.calls_cap) {
        Ok(size) => size,
        Err(refused) => return refused,
    };
    let page = query_int(req, "page_id").unwrap_or(1).max(1) as usize;
    let ordered: Vec<&ConfEntry> = st
        .confs
        .iter()
        .filter(|e| e.conf.running)
        .chain(st.confs.iter().filter(|e| !e.conf.running))
        .collect();
    let list: Vec<Value> = ordered
        .iter()
        .skip((page - 1).saturating_mul(size))
        .take(size)
        .map(|e| {
            let c = &e.conf;
            let mut row = json!({
                "conference_id": c.conference_id,
                "named_conf_id": c.named_conf_id,
                "topic": c.topic,
                "class": c.class,
                "type": if c.class > 1 { 5 } else { 0 },
                "subtype": 0,
                "owner": c.owner,
                "participant_count": c.participant_count,
                "start_time": php_date(e.start),
                "end_time": if c.running { Value::Null } else { php_date(e.end.unwrap_or(e.start + c.duration)) },
                "duration": c.duration,
            });
            if st.rows_without_class {
                if let Some(o) = row.as_object_mut() {
                    o.remove("class");
                }
            }
            row
        })
        .collect();
    json_answer(200, json!({ "cnt": ordered.len(), "list": list }))
}

fn participants(st: &State, session_id: &str) -> Answer {
    let missing = || {
        nested_error(
            404,
            "conferenceSessionNotFound",
            &format!("Conference session '{session_id}' is not found."),
            Some(("path", "session_id")),
        )
    };
    if st.ghosts.contains(session_id) {
        return missing();
    }
    let list = match st.participants.get(session_id) {
        Some(ps) => ps.clone(),
        None if st
            .confs
            .iter()
            .any(|e| e.conf.running && e.conf.conference_id == session_id) =>
        {
            Vec::new()
        }
        None => return missing(),
    };
    let now = unix_now();
    let items: Vec<Value> = list
        .iter()
        .map(|p| {
            let mut item = json!({ "id": p.id, "display_name": p.display_name });
            if let Some(role) = p.role {
                item["role"] = json!(role);
            }
            if let Some(ago) = p.left_secs_ago {
                item["leave_time"] = php_date(now - ago);
            }
            item
        })
        .collect();
    json_answer(200, json!({ "count": items.len(), "participants": items }))
}

fn users(st: &State, req: &Req) -> Answer {
    let size = match page_size(req, 100, st.users_cap) {
        Ok(size) => size,
        Err(refused) => return refused,
    };
    let page = query_int(req, "page_id").unwrap_or(0).max(0) as usize;
    let start = page.saturating_mul(size);
    let items: Vec<Value> = st
        .users
        .iter()
        .skip(start)
        .take(size)
        .map(|u| {
            json!({
                "id": u.id,
                "uid": format!("{}@{DOMAIN}", u.id),
                "display_name": u.id,
                "is_active": 1,
                "status": u.status,
            })
        })
        .collect();
    let next = if start.saturating_add(size) < st.users.len() {
        page as i64 + 1
    } else {
        st.users_end
    };
    json_answer(200, json!({ "next_page_id": next, "users": items }))
}

/// The named conference `id` as the log knows it: whether it exists and
/// whether a session of it runs (a ghost does not).
fn conference_state<'s>(st: &'s State, id: &str) -> Option<(bool, &'s ConfEntry)> {
    let mut found = None;
    for e in st
        .confs
        .iter()
        .filter(|e| e.conf.named_conf_id.as_deref() == Some(id))
    {
        let runs = e.conf.running && !st.ghosts.contains(&e.conf.conference_id);
        if runs {
            return Some((true, e));
        }
        found.get_or_insert((false, e));
    }
    found
}

fn conference(st: &State, id: &str) -> Answer {
    let Some((running, entry)) = conference_state(st, id) else {
        return nested_error(
            404,
            "conferenceNotFound",
            &format!("Conference '{id}' is not found."),
            Some(("path", "conference_id")),
        );
    };
    let c = &entry.conf;
    let recording = st.recording.get(id).copied().unwrap_or(0);
    let mut object = json!({
        "id": id,
        "topic": c.topic,
        "description": "",
        "owner": c.owner,
        "type": 0,
        "max_podiums": 36,
        "max_participants": 36,
        "schedule": { "type": -1 },
        "url": format!("https://{DOMAIN}/c/{id}"),
        "webclient_url": format!("https://{DOMAIN}/webrtc/{id}"),
        "allow_guests": false,
        "state": if running { "running" } else { "stopped" },
        "recording": i64::from(recording != 0),
        "created_at": entry.start - 86_400,
    });
    if st.recording_field {
        object["stream_recording_state"] = json!(if running { recording } else { 0 });
    }
    json_answer(200, json!({ "conference": object }))
}

fn stop(st: &mut State, id: &str) -> Answer {
    st.stops.push(id.to_string());
    let drop = st.stop_drops.pop_front();
    if drop == Some(false) {
        return Answer::dropped();
    }
    let now = unix_now();
    match conference_state(st, id).map(|(running, _)| running) {
        Some(true) => {
            if let Some(e) = st
                .confs
                .iter_mut()
                .find(|e| e.conf.running && e.conf.named_conf_id.as_deref() == Some(id))
            {
                e.conf.running = false;
                e.end = Some(now);
            }
            if drop == Some(true) {
                return Answer::dropped();
            }
            json_answer(200, json!({ "state": "stopped" }))
        }
        // It exists but does not run (ended, or a ghost in the log).
        Some(false) => Answer::from_reply(&st.stop_of_stopped),
        None => nested_error(
            404,
            "conferenceNotFound",
            &format!("Conference '{id}' is not found."),
            Some(("path", "conference_id")),
        ),
    }
}

// ---------------------------------------------------------------------------
// Small helpers

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// A PHP DateTime as JSON: {"date":"2025-01-01 10:00:00.000000","timezone_type":3,"timezone":"UTC"}.
pub fn php_date(unix: i64) -> Value {
    let (year, month, day, h, m, sec) = super::civil(unix);
    json!({
        "date": format!("{year:04}-{month:02}-{day:02} {h:02}:{m:02}:{sec:02}.000000"),
        "timezone_type": 3,
        "timezone": "UTC",
    })
}

fn random_hex(len: usize) -> String {
    use std::hash::{BuildHasher, Hasher};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut out = String::with_capacity(len + 16);
    while out.len() < len {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
        h.write_u128(
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0),
        );
        out.push_str(&format!("{:016x}", h.finish()));
    }
    out.truncate(len);
    out
}
