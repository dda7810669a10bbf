//! The TrueConf Server API (reference/trueconf-api.md, and the evidence of
//! reference/trueconf-api-evidence.md, R1–R12): token handling, the calls the
//! bot makes, their wire types, and how a real server's answers are read. The
//! only place that handles `access_token`. Knows nothing of Telegram.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::Value;

use crate::config::{Secret, Server};
use crate::html::encode_segment;
use crate::http::{Client, ClientSlot, Limits, NetError, Response};
use crate::timing::Timing;

/// Page size asked for on `/logs/calls`.
const CALLS_PAGE: usize = 200;
/// At most this many call-log pages are read (40,000 rows).
const MAX_CALL_PAGES: usize = 200;
/// Page size asked for on `/users` (a server that refuses it is asked without).
const USERS_PAGE: usize = 1000;
/// At most this many user pages are read (1,000,000 users at full pages).
pub const MAX_USER_PAGES: usize = 1000;
/// Sessions remembered as unknown to the server; more are rare enough to be
/// looked up again.
const MAX_GHOSTS: usize = 10_000;
/// A session found unknown to the server is asked about again after this
/// long, so that one odd answer cannot hide a real meeting for good.
const GHOST_RECHECK: Duration = Duration::from_secs(600);
/// At most this many such sessions are asked about again per list read.
const GHOST_RECHECKS_PER_READ: usize = 2;
/// The longest piece of a server's own words that is quoted to the admin.
pub const REASON_MAX: usize = 100;

/// Why a TrueConf request failed, as the admin must hear it (SPEC §6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// No connection (refused, unknown host, no route); the reason in a few words.
    Unreachable(String),
    /// A connection was open, then closed before any answer came (a request
    /// that is safe to repeat was tried twice). The address is right.
    Dropped,
    /// No answer in time.
    Timeout,
    /// The server's certificate is not trusted (setting: ssl_certificate).
    TlsUntrusted(String),
    /// The OAuth2 application's credentials (or the fixed token) were refused;
    /// the server's own short reason when it gave one (sanitized, ≤ 100
    /// characters, no secret).
    CredentialsRejected(Option<String>),
    /// Neither client_id/client_secret nor access_token are set: the server
    /// is monitored only.
    NoCredentials,
    /// The token lacks a permission; the API path that needs it.
    MissingPermission(String),
    /// Any other answer we did not expect: its HTTP status.
    Unexpected(u16),
    /// A refusal with the server's own words (sanitized): its HTTP status and reason.
    Refused(u16, String),
    /// A 2xx answer that is not the JSON we expect.
    BadAnswer,
}

impl Problem {
    /// For rejected credentials: the server says the OAuth2 application may
    /// not use the client-credentials grant, so the fix is in its settings
    /// on the server, not in ours.
    pub fn grant_not_allowed(&self) -> bool {
        match self {
            Problem::CredentialsRejected(Some(reason)) => {
                let reason = reason.to_ascii_lowercase();
                reason.contains("unauthorized_client") || reason.contains("unsupported_grant_type")
            }
            _ => false,
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Unreachable(why) => write!(f, "server unreachable ({why})"),
            Problem::Dropped => f.write_str("the server closed the connection without an answer"),
            Problem::Timeout => f.write_str("no answer in time"),
            Problem::TlsUntrusted(why) => write!(f, "TLS certificate not trusted ({why})"),
            Problem::CredentialsRejected(None) => f.write_str("OAuth2 credentials rejected"),
            Problem::CredentialsRejected(Some(why)) => {
                write!(f, "OAuth2 credentials rejected (the server says: {why})")
            }
            Problem::NoCredentials => f.write_str("no credentials set (monitoring only)"),
            Problem::MissingPermission(what) => write!(f, "token lacks the permission for {what}"),
            Problem::Unexpected(status) => write!(f, "unexpected answer (HTTP {status})"),
            Problem::Refused(status, why) => write!(f, "refused (HTTP {status}: {why})"),
            Problem::BadAnswer => f.write_str("unexpected answer (not the JSON expected)"),
        }
    }
}

impl From<NetError> for Problem {
    fn from(e: NetError) -> Problem {
        if e.is_dropped() {
            return Problem::Dropped;
        }
        match e {
            NetError::Unreachable(why) => Problem::Unreachable(why),
            NetError::Timeout => Problem::Timeout,
            NetError::Tls(why) => Problem::TlsUntrusted(why),
            NetError::Other(_) => Problem::BadAnswer,
        }
    }
}

/// A row of the call log (`GET /logs/calls`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Call {
    /// The session id (`…@server#vcs`).
    pub session_id: String,
    /// The conference id, `None` for sessions without a named conference.
    pub conference_id: Option<String>,
    pub topic: Option<String>,
    pub owner: Option<String>,
    pub participant_count: i64,
    /// Seconds so far.
    pub duration: u64,
    /// A group conference, not a point-to-point call.
    group: bool,
    running: bool,
}

/// Which field told a call-log row's kind (R5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KindFrom {
    Class,
    /// `class` is missing; `type` told it.
    Type,
    /// Neither: a row with a conference id counts as a group conference, so
    /// that a missing field never hides conferences.
    Guess,
}

impl Call {
    /// Running = no end time and a group conference (not point-to-point).
    pub fn is_running_conference(&self) -> bool {
        self.running && self.group
    }

    fn parse(v: &Value) -> Option<(Call, KindFrom)> {
        let text = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
        let int = |k: &str| {
            v.get(k).and_then(|x| {
                x.as_i64()
                    .or_else(|| x.as_f64().map(|f| f as i64))
                    .or_else(|| x.as_str().and_then(|s| s.trim().parse().ok()))
            })
        };
        let conference_id = text("named_conf_id").filter(|s| !s.is_empty());
        // class ≤ 1 is a point-to-point call (the vendor's own rule). Without
        // class, type tells it: 0 and 1 are private calls, 5 a group
        // (multistream) conference, the others group kinds too.
        let (group, from) = match (int("class"), int("type")) {
            (Some(class), _) => (class > 1, KindFrom::Class),
            (None, Some(kind)) => (kind > 1, KindFrom::Type),
            (None, None) => (conference_id.is_some(), KindFrom::Guess),
        };
        let call = Call {
            session_id: text("conference_id")?,
            conference_id,
            topic: text("topic").filter(|s| !s.trim().is_empty()),
            owner: text("owner").filter(|s| !s.is_empty()),
            participant_count: int("participant_count").unwrap_or(0),
            duration: int("duration").unwrap_or(0).max(0) as u64,
            group,
            running: v.get("end_time").is_none_or(Value::is_null),
        };
        Some((call, from))
    }
}

/// A participant of a running session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Participant {
    /// `role` as the server gave it; `None` when the item has none or it is
    /// not a number (R3: such a participant counts as not a leader).
    pub role: Option<i64>,
    /// The item shows that the person has left (a `leave_time`, or
    /// `is_in_conf` false): not counted as present.
    pub left: bool,
}

impl Participant {
    /// Role 2: the owner, an operator or a moderator.
    pub fn is_leader(&self) -> bool {
        self.role == Some(2)
    }
}

/// What a participants call tells about a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Presence {
    /// Everyone the server lists, those who left included (see `Participant::left`).
    Listed(Vec<Participant>),
    /// The server does not know the session (404 …NotFound): the call log
    /// still shows it running, but it is not (R4, a session cut off by a crash).
    Gone,
}

impl Presence {
    /// The people still in the session (`None`: the session is gone).
    pub fn present(&self) -> Option<Vec<Participant>> {
        match self {
            Presence::Listed(all) => Some(all.iter().filter(|p| !p.left).copied().collect()),
            Presence::Gone => None,
        }
    }
}

/// Whether a conference is being recorded (`stream_recording_state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recording {
    Recording,
    Paused,
}

/// The online count and whether every page was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Online {
    pub online: u64,
    pub total: u64,
    /// False when the page limit or a page loop cut the count short.
    pub complete: bool,
}

/// The outcome of a stop request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    Stopped,
    /// The server refused the stop, and the conference no longer runs: it
    /// ended before (R1). No failure.
    AlreadyEnded,
}

/// The token in use, and whether the fixed one was refused.
#[derive(Default)]
struct TokenCache {
    current: Option<Token>,
    fixed_rejected: bool,
}

/// A cached OAuth2 token.
struct Token {
    value: Secret,
    renew_at: Instant,
    fixed: bool,
}

/// What a server has shown about itself, kept for the client's life.
#[derive(Default)]
struct Learned {
    /// Sessions the call log shows as running that the server does not
    /// know, and when it last said so.
    ghosts: HashMap<String, Instant>,
    /// `/users` answered 400 to `page_size`: ask without it (R7).
    users_without_page_size: bool,
    /// The one-time warnings already logged.
    warned: HashSet<Warning>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Warning {
    RoleMissing,
    ClassFromType,
    ClassGuessed,
    UsersPageSize,
}

/// A client for one server. Shared by reference between the threads of one
/// server's worker; the token cache and what the server taught are its state.
pub struct TrueConf {
    http: ClientSlot,
    /// The server's name, for log lines.
    name: String,
    base: String,
    api: String,
    client_id: String,
    client_secret: Secret,
    fixed: Option<Secret>,
    token: Mutex<TokenCache>,
    learned: Mutex<Learned>,
    /// When the web layer last gave an answer below 500 to an API or token
    /// request: what a web/API check would find out (see `answered_within`).
    answered: Mutex<Option<Instant>>,
}

impl fmt::Debug for TrueConf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TrueConf")
    }
}

/// How an API request is sent.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Method {
    Get,
    /// A POST with an empty body.
    Post,
}

/// The health probe: `GET http://host:status_port/vsstatus` over `client`
/// (plain HTTP, no token). `Ok` for a 2xx answer in time, else a short reason.
pub fn probe_status(client: &Client, server: &Server) -> Result<(), String> {
    vsstatus(client, server).up
}

/// A plain-HTTP client for `/vsstatus` probes made for screens and `check`.
pub fn status_client(timing: &Timing) -> Client {
    Client::new(
        &crate::http::Trust::BuiltIn,
        Limits::probe(timing.check_step, timing),
    )
}

impl TrueConf {
    pub fn new(server: &Server, timing: &Timing) -> TrueConf {
        TrueConf {
            http: ClientSlot::new(&server.trust, Limits::trueconf(timing)),
            name: server.name.clone(),
            base: format!("https://{}", server.host),
            api: format!("/api/{}", server.api_version),
            client_id: server.client_id.clone(),
            client_secret: server.client_secret.clone(),
            fixed: server.access_token.clone(),
            token: Mutex::new(TokenCache::default()),
            learned: Mutex::new(Learned::default()),
            answered: Mutex::new(None),
        }
    }

    /// Lets the kept connections go: a piece of work (a screen, a scan) is done.
    pub fn release_connections(&self) {
        self.http.release();
    }

    /// Whether the web layer answered an API or token request of this
    /// client (any status below 500) within `window`: a scan or a screen
    /// then proved what a web/API check (R9) would, and the prober's check
    /// can do without a connection and a TLS handshake of its own.
    pub fn answered_within(&self, window: Duration) -> bool {
        let answered = *self.answered.lock().unwrap_or_else(|p| p.into_inner());
        answered.is_some_and(|at| at.elapsed() < window)
    }

    /// Notes an answer of the web layer (see `answered_within`).
    fn note_answer(&self, response: &Response) {
        if response.status < 500 {
            *self.answered.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
        }
    }

    fn learned(&self) -> std::sync::MutexGuard<'_, Learned> {
        self.learned.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Logs a warning once for this server.
    fn warn_once(&self, what: Warning, text: impl FnOnce() -> String) {
        if self.learned().warned.insert(what) {
            log::warn!("server '{}': {}", self.name, text());
        }
    }

    /// The current token: the fixed one, a cached one, or a fresh one. The
    /// lock is held while a new one is fetched, so that threads of one server
    /// fetch one token, not one each.
    fn token(&self) -> Result<Secret, Problem> {
        let mut cache = self.token.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(token) = cache.current.as_ref() {
            if token.fixed || Instant::now() < token.renew_at {
                return Ok(token.value.clone());
            }
        }
        if let (Some(fixed), false) = (&self.fixed, cache.fixed_rejected) {
            cache.current = Some(Token {
                value: fixed.clone(),
                renew_at: Instant::now(),
                fixed: true,
            });
            return Ok(fixed.clone());
        }
        if self.client_id.is_empty() || self.client_secret.expose().is_empty() {
            return Err(if self.fixed.is_some() {
                Problem::CredentialsRejected(None)
            } else {
                Problem::NoCredentials
            });
        }
        let token = self.request_token()?;
        let value = token.value.clone();
        cache.current = Some(token);
        Ok(value)
    }

    /// Forgets `used`, so the next call fetches a new token.
    fn invalidate(&self, used: &Secret) {
        let mut cache = self.token.lock().unwrap_or_else(|p| p.into_inner());
        let Some(current) = cache.current.as_ref() else {
            return;
        };
        if &current.value == used {
            if current.fixed && !self.client_id.is_empty() {
                // The fixed token no longer works; the client credentials may.
                cache.fixed_rejected = true;
            }
            cache.current = None;
        }
    }

    /// `POST /oauth2/v1/token` with the client credentials, as sent.
    fn token_response(&self) -> Result<Response, Problem> {
        let url = format!("{}/oauth2/v1/token", self.base);
        let started = Instant::now();
        let response = self.http.client().post_form(
            &url,
            &[
                ("grant_type", "client_credentials"),
                ("client_id", &self.client_id),
                ("client_secret", self.client_secret.expose()),
            ],
        )?;
        log::debug!(
            "trueconf token: HTTP {} in {} ms",
            response.status,
            started.elapsed().as_millis()
        );
        self.note_answer(&response);
        Ok(response)
    }

    fn request_token(&self) -> Result<Token, Problem> {
        let response = self.token_response()?;
        if !response.is_success() {
            // The token lock is held here: only the configured secrets.
            return Err(token_refusal(
                response.status,
                &response.body,
                &self.configured_secrets(),
            ));
        }
        let body: Value = serde_json::from_str(&response.body).map_err(|_| Problem::BadAnswer)?;
        let value = body
            .get("access_token")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
            .ok_or(Problem::BadAnswer)?;
        let lifetime = body
            .get("expires_in")
            .and_then(|v| {
                v.as_u64()
                    .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
            })
            .unwrap_or(3600)
            // A bogus lifetime must not overflow the clock; a week is plenty.
            .min(7 * 86_400);
        // Renew a minute early, or at 90 % of a short lifetime, and at least
        // a second early: the lifetime ran from when the server issued it.
        let margin = (lifetime / 10).clamp(1, 60);
        Ok(Token {
            value: Secret::new(value),
            renew_at: Instant::now() + Duration::from_secs(lifetime.saturating_sub(margin)),
            fixed: false,
        })
    }

    /// The secrets from the settings: the client secret and the fixed token.
    fn configured_secrets(&self) -> Vec<String> {
        let mut secrets = vec![self.client_secret.expose().to_string()];
        if let Some(fixed) = &self.fixed {
            secrets.push(fixed.expose().to_string());
        }
        secrets.retain(|s| !s.is_empty());
        secrets
    }

    /// The values that must never be quoted back: the configured secrets and
    /// the token in use. Takes the token lock: never call it while holding it.
    fn secrets(&self) -> Vec<String> {
        let mut secrets = self.configured_secrets();
        if let Some(token) = self
            .token
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .current
            .as_ref()
        {
            secrets.push(token.value.expose().to_string());
        }
        secrets.retain(|s| !s.is_empty());
        secrets
    }

    /// One API request with the token in the query; renews the token and
    /// retries once when the server says it is invalid (v3: 403
    /// accessTokenInvalid; v4 style: 401). Any other answer is returned as it
    /// came, whatever its status.
    fn request(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        what: &str,
    ) -> Result<Response, Problem> {
        let url = format!("{}{}{}", self.base, self.api, path);
        for attempt in 0..2 {
            let token = self.token()?;
            let mut full: Vec<(&str, &str)> = query.to_vec();
            full.push(("access_token", token.expose()));
            let started = Instant::now();
            let response = match method {
                Method::Get => self.http.client().get(&url, &full, None)?,
                Method::Post => self.http.client().post_empty(&url, &full)?,
            };
            log::debug!(
                "trueconf {what}: HTTP {} in {} ms",
                response.status,
                started.elapsed().as_millis()
            );
            self.note_answer(&response);
            if !token_invalid(&response) {
                return Ok(response);
            }
            self.invalidate(&token);
            if attempt == 1 {
                break;
            }
        }
        Err(Problem::CredentialsRejected(None))
    }

    /// A GET whose answer must be a 2xx JSON document.
    fn get_json(&self, path: &str, query: &[(&str, &str)], what: &str) -> Result<Value, Problem> {
        let response = self.request(Method::Get, path, query, what)?;
        let response = refusal(response, what)?;
        serde_json::from_str(&response.body).map_err(|_| Problem::BadAnswer)
    }

    /// Running conferences from the call log (R5, R6), without the sessions
    /// the server has shown it no longer knows (R4).
    pub fn running_conferences(&self) -> Result<Vec<Call>, Problem> {
        let mut seen = HashSet::new();
        let mut running = Vec::new();
        let page_size = CALLS_PAGE.to_string();
        // The length of a page when more may follow: what the first page
        // brought, since a server may cut page_size without saying so.
        let mut full_page = 0;
        // Whether pages count from 0 or 1 is not known (it may differ between
        // versions): the first request names no page, as the vendor's bot
        // does, then pages 1, 2, … follow, and rows are counted once.
        for page in 0..MAX_CALL_PAGES {
            let page_id = page.to_string();
            let mut query = vec![
                ("page_size", page_size.as_str()),
                ("sort_field", "end_time"),
                ("sort_order", "1"),
            ];
            if page > 0 {
                query.push(("page_id", page_id.as_str()));
            }
            let body = self.get_json("/logs/calls", &query, "logs.calls:read (logs/calls)")?;
            let list = body
                .get("list")
                .and_then(Value::as_array)
                .ok_or(Problem::BadAnswer)?;
            let mut new_rows = 0;
            let mut finished_row = false;
            for item in list {
                let Some((call, from)) = Call::parse(item) else {
                    continue;
                };
                self.note_kind(from);
                finished_row |= !call.running;
                if seen.insert(call.session_id.clone()) {
                    new_rows += 1;
                    if call.is_running_conference() {
                        running.push(call);
                    }
                }
            }
            if page == 0 {
                full_page = list.len();
            }
            let total = body.get("cnt").and_then(as_int);
            // Rows come sorted by end_time, running ones (no end time) first:
            // the first finished row ends them. A short or empty page is the
            // last; so is a page that brings nothing new after page 1 (the
            // server ignores page_id; page 1 may repeat the first page when
            // pages count from 1).
            let last = finished_row
                || list.is_empty()
                || list.len() < full_page
                || total.is_some_and(|t| seen.len() as i64 >= t)
                || (page >= 2 && new_rows == 0);
            if last {
                break;
            }
        }
        // Sessions found unknown long ago are asked about once more (a few
        // per read): one that answers again is shown again.
        let due: Vec<String> = {
            let learned = self.learned();
            running
                .iter()
                .filter(|c| {
                    learned
                        .ghosts
                        .get(&c.session_id)
                        .is_some_and(|at| at.elapsed() >= GHOST_RECHECK)
                })
                .take(GHOST_RECHECKS_PER_READ)
                .map(|c| c.session_id.clone())
                .collect()
        };
        for session_id in due {
            let _ = self.participants(&session_id);
        }
        let learned = self.learned();
        running.retain(|c| !learned.ghosts.contains_key(&c.session_id));
        Ok(running)
    }

    /// Logs once which field told the kind of call-log rows when `class` is missing.
    fn note_kind(&self, from: KindFrom) {
        match from {
            KindFrom::Class => {}
            KindFrom::Type => self.warn_once(Warning::ClassFromType, || {
                "call-log rows carry no 'class'; their 'type' tells group conferences from calls"
                    .into()
            }),
            KindFrom::Guess => self.warn_once(Warning::ClassGuessed, || {
                "call-log rows carry neither 'class' nor 'type'; rows with a conference id are shown as conferences"
                    .into()
            }),
        }
    }

    /// Participants of a running session (R3, R4).
    pub fn participants(&self, session_id: &str) -> Result<Presence, Problem> {
        let path = format!(
            "/conference-sessions/{}/participants",
            encode_segment(session_id)
        );
        let what = "conferences.sessions.participants:read (conference-sessions/participants)";
        let response = self.request(Method::Get, &path, &[], what)?;
        if response.status == 404 && names_a_missing_thing(&response.body) {
            let fresh = {
                let mut learned = self.learned();
                let known = learned.ghosts.contains_key(session_id);
                if known || learned.ghosts.len() < MAX_GHOSTS {
                    learned
                        .ghosts
                        .insert(session_id.to_string(), Instant::now());
                }
                !known
            };
            if fresh {
                log::warn!(
                    "server '{}': a session the call log shows as running is unknown to the server \
                     (ended without an end time, e.g. by a crash); it is left out of every list",
                    self.name
                );
                log::debug!("server '{}': unknown session {session_id}", self.name);
            }
            return Ok(Presence::Gone);
        }
        let response = refusal(response, what)?;
        if self.learned().ghosts.remove(session_id).is_some() {
            log::info!(
                "server '{}': a session it did not know answers again; it is shown again",
                self.name
            );
        }
        let body: Value = serde_json::from_str(&response.body).map_err(|_| Problem::BadAnswer)?;
        // v3 lists `participants`; a v4-style answer lists `list`.
        let list = body
            .get("participants")
            .or_else(|| body.get("list"))
            .and_then(Value::as_array)
            .ok_or(Problem::BadAnswer)?;
        let mut participants = Vec::with_capacity(list.len());
        for item in list {
            let role = item.get("role").and_then(as_int);
            if role.is_none() {
                self.warn_once(Warning::RoleMissing, || {
                    "a participant without a readable 'role' is counted as not a leader".into()
                });
            }
            let left = item.get("leave_time").is_some_and(|t| match t {
                Value::Null => false,
                Value::String(s) => !s.trim().is_empty(),
                Value::Number(n) => n.as_f64().is_some_and(|n| n > 0.0),
                _ => true,
            }) || item.get("is_in_conf").and_then(Value::as_bool) == Some(false);
            participants.push(Participant { role, left });
        }
        Ok(Presence::Listed(participants))
    }

    /// Whether the server no longer knows this session (seen on a participants call).
    pub fn is_ghost(&self, session_id: &str) -> bool {
        self.learned().ghosts.contains_key(session_id)
    }

    /// Users online (status 1, 2 or 5) over every page of `/users` (R7).
    pub fn online_users(&self) -> Result<Online, Problem> {
        // A server that refused page_size=1000 is asked without it, from the
        // first page on, and from then on.
        loop {
            let with_size = !self.learned().users_without_page_size;
            match self.count_users(with_size) {
                Err(Problem::Unexpected(400)) if with_size => {
                    self.learned().users_without_page_size = true;
                    self.warn_once(Warning::UsersPageSize, || {
                        format!("/users refused page_size={USERS_PAGE}; asking for the server's own page size")
                    });
                }
                other => return other,
            }
        }
    }

    fn count_users(&self, with_size: bool) -> Result<Online, Problem> {
        let page_size = USERS_PAGE.to_string();
        let mut result = Online {
            online: 0,
            total: 0,
            complete: true,
        };
        let mut page: Option<i64> = None;
        let mut seen_pages = HashSet::new();
        for _ in 0..MAX_USER_PAGES {
            let page_id = page.map(|p| p.to_string());
            let mut query = Vec::new();
            if with_size {
                query.push(("page_size", page_size.as_str()));
            }
            if let Some(p) = &page_id {
                query.push(("page_id", p.as_str()));
            }
            let response = self.request(Method::Get, "/users", &query, "users:read (users)")?;
            let response = refusal(response, "users:read (users)")?;
            // Typed, so that the many fields of a user are skipped, not built.
            let body: UsersPage =
                serde_json::from_str(&response.body).map_err(|_| Problem::BadAnswer)?;
            let users = body.users.ok_or(Problem::BadAnswer)?;
            for user in &users {
                result.total += 1;
                if matches!(user.status.as_ref().and_then(as_int), Some(1 | 2 | 5)) {
                    result.online += 1;
                }
            }
            let next = body.next_page_id.as_ref().and_then(as_int).unwrap_or(-1);
            // -1 ends the list; 0 would be the first page again (R7).
            if next <= 0 || users.is_empty() {
                return Ok(result);
            }
            if !seen_pages.insert(next) {
                // The server sends us in a circle: what we have is partial.
                result.complete = false;
                return Ok(result);
            }
            page = Some(next);
        }
        result.complete = false;
        Ok(result)
    }

    /// `POST /conferences/{id}/stop` (R1). A stop is idempotent, so a POST
    /// whose connection dropped before any answer is sent once more. After
    /// any failure the running list is read again: a conference that no
    /// longer runs has ended, which is no failure.
    pub fn stop(&self, conference_id: &str) -> Result<Stopped, Problem> {
        let path = format!("/conferences/{}/stop", encode_segment(conference_id));
        let what = "conferences:write (conferences/stop)";
        let mut attempt = self.request(Method::Post, &path, &[], what);
        // No answer came, so the server may or may not have acted.
        let dropped = matches!(attempt, Err(Problem::Dropped));
        if dropped {
            log::info!(
                "server '{}': the stop's connection dropped before an answer; sending it once more",
                self.name
            );
            attempt = self.request(Method::Post, &path, &[], what);
        }
        // Any 2xx is a stop, whatever its body (some versions send none).
        let (problem, answered) = match attempt {
            Ok(r) if r.is_success() => return Ok(Stopped::Stopped),
            Ok(r) => (server_refusal(&r, what, &self.secrets()), true),
            Err(p) => (p, false),
        };
        let still_running = match self.running_conferences() {
            Ok(calls) => match calls
                .iter()
                .find(|c| c.conference_id.as_deref() == Some(conference_id))
            {
                None => false,
                // The log may keep a session the server no longer has (R4):
                // its participants call tells.
                Some(call) if answered => {
                    !matches!(self.participants(&call.session_id), Ok(Presence::Gone))
                }
                Some(_) => true,
            },
            // Nothing more is known: the stop's own problem is the news.
            Err(_) => return Err(problem),
        };
        match (still_running, answered && !dropped) {
            (true, _) => Err(problem),
            // The server refused, and no request of ours can have ended it:
            // it had ended by itself.
            (false, true) => Ok(Stopped::AlreadyEnded),
            // A request of ours may have gone through before its answer was
            // lost: it is gone, so it was stopped.
            (false, false) => Ok(Stopped::Stopped),
        }
    }

    /// Whether a named conference is being recorded (item 12): `GET
    /// /conferences/{id}`, field `stream_recording_state` (1 recording, 2
    /// paused) or `recording_state`. `None` when the field is absent or 0.
    pub fn recording(&self, conference_id: &str) -> Result<Option<Recording>, Problem> {
        let path = format!("/conferences/{}", encode_segment(conference_id));
        let body = self.get_json(&path, &[], "conferences:read (conferences)")?;
        let conference = body.get("conference").unwrap_or(&body);
        let state = ["stream_recording_state", "recording_state"]
            .iter()
            .find_map(|k| conference.get(*k).and_then(as_int));
        Ok(match state {
            Some(1) => Some(Recording::Recording),
            Some(2) => Some(Recording::Paused),
            _ => None,
        })
    }

    /// The web/API layer check (R9): an unauthenticated request to the API.
    /// Any HTTP answer below 500 means the web layer answers; a 5xx, a TLS
    /// failure, a timeout or a refused connection means it does not.
    pub fn api_check(&self) -> Result<u16, Problem> {
        web_answer(
            self.http
                .client()
                .get(&format!("{}{}/users", self.base, self.api), &[], None),
        )
    }

    /// Whether the server also serves API v4 (R8): `GET /api/v4/server`
    /// needs no token. `Ok(false)` for a 404 (or any other non-2xx below 500).
    pub fn serves_v4(&self) -> Result<bool, Problem> {
        let response = self.v4_server()?;
        if response.status >= 500 {
            return Err(Problem::Unexpected(response.status));
        }
        Ok(response.is_success()
            && serde_json::from_str::<Value>(&response.body).is_ok_and(|v| v.is_object()))
    }

    fn v4_server(&self) -> Result<Response, Problem> {
        Ok(self
            .http
            .client()
            .get(&format!("{}/api/v4/server", self.base), &[], None)?)
    }
}

/// Single steps for `trueconf-bot check`.
impl TrueConf {
    /// An HTTPS request to the web root: any HTTP answer proves TLS works.
    pub fn check_tls(&self) -> Result<u16, Problem> {
        let response = self
            .http
            .client()
            .get(&format!("{}/", self.base), &[], None)?;
        Ok(response.status)
    }

    /// Gets a token: `Ok(true)` from the grant, `Ok(false)` for a fixed token.
    pub fn check_token(&self) -> Result<bool, Problem> {
        if self.fixed.is_some() {
            self.token()?;
            return Ok(false);
        }
        self.token()?;
        Ok(true)
    }

    /// One small page of `/users` (without page_size when the server refuses it).
    pub fn check_users(&self) -> Result<(), Problem> {
        let what = "users:read (users)";
        let mut response = self.request(Method::Get, "/users", &[("page_size", "1")], what)?;
        if response.status == 400 {
            response = self.request(Method::Get, "/users", &[], what)?;
        }
        let response = refusal(response, what)?;
        let body: Value = serde_json::from_str(&response.body).map_err(|_| Problem::BadAnswer)?;
        body.get("users")
            .and_then(Value::as_array)
            .ok_or(Problem::BadAnswer)?;
        Ok(())
    }
}

/// Raw answers for `trueconf-bot check --report`, which describes their
/// shape and never prints a value. Read-only: nothing here stops anything.
impl TrueConf {
    /// An authenticated GET of an API path, any status, parsed when JSON.
    pub fn inspect(&self, path: &str, query: &[(&str, &str)]) -> Result<Inspected, Problem> {
        let response = self.request(Method::Get, path, query, "report")?;
        Ok(Inspected::of(&response))
    }

    /// `GET /api/v4/server` without a token.
    pub fn inspect_v4_server(&self) -> Result<Inspected, Problem> {
        Ok(Inspected::of(&self.v4_server()?))
    }

    /// An API GET with a made-up token (how an invalid or expired token is
    /// answered), under `prefix` ("/api/v3.3" or "/api/v4").
    pub fn inspect_bad_token(&self, prefix: &str, path: &str) -> Result<Inspected, Problem> {
        let url = format!("{}{prefix}{path}", self.base);
        let made_up = "0000000000000000000000000000000000000000";
        Ok(Inspected::of(&self.http.client().get(
            &url,
            &[("access_token", made_up)],
            None,
        )?))
    }

    /// The token answer to the configured credentials, and to a wrong secret.
    /// The token itself never leaves this file: the body is reduced to its
    /// shape here.
    pub fn inspect_token(&self, wrong_secret: bool) -> Result<Inspected, Problem> {
        if self.client_id.is_empty() {
            return Err(Problem::NoCredentials);
        }
        let response = if wrong_secret {
            let url = format!("{}/oauth2/v1/token", self.base);
            self.http.client().post_form(
                &url,
                &[
                    ("grant_type", "client_credentials"),
                    ("client_id", &self.client_id),
                    ("client_secret", "not-the-secret"),
                ],
            )?
        } else {
            self.token_response()?
        };
        Ok(Inspected::of(&response))
    }

    /// The API prefix in use, e.g. "/api/v3.3".
    pub fn api_prefix(&self) -> &str {
        &self.api
    }
}

/// An answer for the report: status, header names, and the JSON body if any.
/// Holds no token (see `inspect_token`, whose body is only ever described).
pub struct Inspected {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub json: Option<Value>,
    /// The body's length in bytes (for non-JSON answers).
    pub body_len: usize,
}

impl Inspected {
    fn of(response: &Response) -> Inspected {
        Inspected {
            status: response.status,
            headers: response.headers.clone(),
            json: serde_json::from_str(&response.body).ok(),
            body_len: response.body.len(),
        }
    }

    /// `error.errors[0].reason` (or a top-level `reason`, or an OAuth2
    /// `error` code) when it is an API word (letters and `_` only).
    pub fn reason_code(&self) -> Option<String> {
        let v = self.json.as_ref()?;
        let code = v
            .pointer("/error/errors/0/reason")
            .or_else(|| v.get("reason"))
            .or_else(|| v.get("error").filter(|e| e.is_string()))
            .and_then(Value::as_str)?;
        let plain = !code.is_empty()
            && code.len() <= 40
            && code.bytes().all(|b| b.is_ascii_alphabetic() || b == b'_');
        plain.then(|| code.to_string())
    }
}

/// The web/API layer check (R9) over `http` (made with the server's TLS
/// trust), for the prober: an unauthenticated `GET /api/{version}/users`.
/// Any HTTP answer below 500 means the web layer answers.
pub fn web_check(http: &Client, server: &Server) -> Result<u16, Problem> {
    let url = format!("https://{}/api/{}/users", server.host, server.api_version);
    web_answer(http.get(&url, &[], None))
}

fn web_answer(answer: Result<Response, NetError>) -> Result<u16, Problem> {
    let response = answer?;
    if response.status >= 500 {
        return Err(Problem::Unexpected(response.status));
    }
    Ok(response.status)
}

/// What `/vsstatus` said: up (a 2xx in time) or why not, and the product
/// and version the server names (item 9).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VsStatus {
    pub up: Result<(), String>,
    pub version: Option<String>,
    /// The answer's header names and values, for `check --report`.
    pub headers: Vec<(String, String)>,
}

/// `GET http://host:status_port/vsstatus` (SPEC §6). The real answer is a
/// fixed `200 Ok` with `Connection: close`, no Content-Length and a
/// `Server: TrueConf Server 5.5.2.10` header; its body ends in `Status:OK`.
pub fn vsstatus(http: &Client, server: &Server) -> VsStatus {
    // An address as given (the usual case) needs no resolver: the plain
    // client keeps ureq off the prober's stack. A name goes through ureq.
    let answer = match server.bare_host().parse::<std::net::IpAddr>() {
        Ok(ip) => {
            let addr = std::net::SocketAddr::new(ip, server.status_port);
            http.get_plain(addr, &addr.to_string(), "/vsstatus")
        }
        Err(_) => http.get(&server.status_url(), &[], None),
    };
    match answer {
        Ok(r) => VsStatus {
            up: if r.is_success() {
                Ok(())
            } else {
                Err(format!("HTTP {}", r.status))
            },
            version: server_version(r.header("server"), &r.body),
            headers: r.headers,
        },
        Err(e) => VsStatus {
            up: Err(e.to_string()),
            version: None,
            headers: Vec::new(),
        },
    }
}

/// The product and version a `/vsstatus` answer names ("TrueConf Server
/// 5.5.2.10"): from its `Server` header, else from its body. Only text that
/// ends in a dotted version number is taken, at most 60 characters.
pub fn server_version(header: Option<&str>, body: &str) -> Option<String> {
    let from_header = header.and_then(product_and_version);
    from_header.or_else(|| {
        // The body is a tiny HTML page: "<product> <version><br/>Status:OK <br/>".
        let mut text = String::with_capacity(body.len().min(4096));
        let mut in_tag = false;
        for c in body.chars().take(4096) {
            match c {
                '<' => {
                    in_tag = true;
                    text.push(' ');
                }
                '>' => in_tag = false,
                c if !in_tag => text.push(c),
                _ => {}
            }
        }
        let before = text.split("Status").next().unwrap_or("");
        product_and_version(before)
    })
}

/// "Name Words 1.2.3" → itself, trimmed; anything else → None.
fn product_and_version(text: &str) -> Option<String> {
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let (product, version) = text.rsplit_once(' ')?;
    let version = version.trim_start_matches(['v', 'V']);
    let dotted = version.split('.').count() >= 2
        && version
            .split('.')
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    let named = product.chars().any(char::is_alphabetic)
        && product
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_' | '.' | '(' | ')'));
    (dotted && named && text.chars().count() <= 60).then_some(text)
}

/// A page of `/users`: only what the online count needs.
#[derive(Deserialize)]
struct UsersPage {
    #[serde(default)]
    next_page_id: Option<Value>,
    #[serde(default)]
    users: Option<Vec<UserStatus>>,
}

#[derive(Deserialize)]
struct UserStatus {
    #[serde(default)]
    status: Option<Value>,
}

/// A number, or a string holding one.
fn as_int(v: &Value) -> Option<i64> {
    v.as_i64()
        .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
}

/// 401 (v4 style), or 403 with reason accessTokenInvalid (v3): the token
/// expired or was revoked.
fn token_invalid(response: &Response) -> bool {
    match response.status {
        401 => true,
        403 => error_reason(&response.body).as_deref() == Some("accessTokenInvalid"),
        _ => false,
    }
}

/// A non-2xx API answer as a problem: 403 = a missing permission, else its status.
fn refusal(response: Response, what: &str) -> Result<Response, Problem> {
    if response.status == 403 {
        return Err(Problem::MissingPermission(what.to_string()));
    }
    if !response.is_success() {
        return Err(Problem::Unexpected(response.status));
    }
    Ok(response)
}

/// A refused request with the server's own words when it gave some.
fn server_refusal(response: &Response, what: &str, secrets: &[String]) -> Problem {
    if response.status == 403 {
        return Problem::MissingPermission(what.to_string());
    }
    let Ok(v) = serde_json::from_str::<Value>(&response.body) else {
        return Problem::Unexpected(response.status);
    };
    let words = v
        .pointer("/error/errors/0/message")
        .or_else(|| v.pointer("/error/message"))
        .or_else(|| v.get("message"))
        .or_else(|| v.pointer("/error/errors/0/reason"))
        .or_else(|| v.get("error").filter(|e| e.is_string()))
        .and_then(Value::as_str)
        .and_then(|s| sanitize_reason(s, secrets));
    match words {
        Some(words) => Problem::Refused(response.status, words),
        None => Problem::Unexpected(response.status),
    }
}

/// A 404 whose error names a missing thing (`conferenceSessionNotFound`,
/// `sessionNotFound`, …), not the generic `notFound` of a path the server
/// does not have (a wrong api_version).
fn names_a_missing_thing(body: &str) -> bool {
    error_reason(body).is_some_and(|r| {
        let lower = r.to_ascii_lowercase();
        lower.ends_with("notfound") && lower != "notfound"
    })
}

/// The token endpoint refused (R10). Any 4xx that carries an OAuth2 error
/// (an `error` string, a top-level `reason`, or a nested `error.message`)
/// means the credentials were rejected, and the server's short reason is
/// quoted; a bare 400/401/403 means the same without words. Anything else
/// (a 404 from a server without the endpoint, a 5xx) is unexpected.
fn token_refusal(status: u16, body: &str, secrets: &[String]) -> Problem {
    if !(400..500).contains(&status) {
        return Problem::Unexpected(status);
    }
    let v: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    let text = |p: &str| v.pointer(p).and_then(Value::as_str).map(str::trim);
    let words = if let Some(code) = text("/error") {
        // RFC 6749: {"error": "invalid_client", "error_description": "…"}.
        Some(match text("/error_description") {
            Some(d) if !d.is_empty() => format!("{code}: {d}"),
            _ => code.to_string(),
        })
    } else if let Some(reason) = text("/reason") {
        // The vendor's bot: {"reason": "InvalidCredentials", …}.
        Some(match text("/message") {
            Some(m) if !m.is_empty() => format!("{reason}: {m}"),
            _ => reason.to_string(),
        })
    } else {
        // 5.5: {"error": {"message": "…", "errors": [{"reason": …}]}}.
        text("/error/message")
            .or_else(|| text("/error/errors/0/reason"))
            .map(str::to_string)
    };
    match words {
        Some(words) => Problem::CredentialsRejected(sanitize_reason(&words, secrets)),
        None if matches!(status, 400 | 401 | 403) => Problem::CredentialsRejected(None),
        None => Problem::Unexpected(status),
    }
}

/// A server's own words made safe to show: one line of printable text, any
/// secret replaced by `***` (and any long run of letters and digits, which
/// may be a token), at most [`REASON_MAX`] characters. `None` when nothing is left.
pub fn sanitize_reason(text: &str, secrets: &[String]) -> Option<String> {
    let mut clean = text.to_string();
    for secret in secrets.iter().filter(|s| s.len() >= 4) {
        clean = clean.replace(secret.as_str(), "***");
    }
    let words: Vec<String> = clean
        .split(|c: char| c.is_whitespace() || c.is_control())
        .filter(|w| !w.is_empty())
        .map(|w| {
            let run = w
                .chars()
                .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
                .count();
            if run >= 24 && run * 10 >= w.chars().count() * 9 {
                "***".to_string()
            } else {
                w.chars().filter(|c| !c.is_control()).collect()
            }
        })
        .collect();
    let line = words.join(" ");
    let line = line.trim();
    if line.is_empty() {
        return None;
    }
    Some(match line.char_indices().nth(REASON_MAX - 1) {
        Some((i, _)) if line.chars().count() > REASON_MAX => format!("{}…", &line[..i]),
        _ => line.to_string(),
    })
}

/// `error.errors[0].reason` of a v3 error body, or a top-level `reason`.
fn error_reason(body: &str) -> Option<String> {
    let v: Value = serde_json::from_str(body).ok()?;
    v.pointer("/error/errors/0/reason")
        .or_else(|| v.get("reason"))
        .and_then(Value::as_str)
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: Value) -> Option<(Call, KindFrom)> {
        Call::parse(&v)
    }

    #[test]
    fn calls_parse_defensively() {
        let row = json!({"conference_id": "s1@tc#vcs", "named_conf_id": null, "topic": null,
            "class": 10, "owner": null, "participant_count": "3", "end_time": null, "duration": 4000});
        let (call, from) = parse(row).unwrap();
        assert!(call.is_running_conference());
        assert_eq!(from, KindFrom::Class);
        assert_eq!(
            (call.conference_id, call.topic, call.participant_count),
            (None, None, 3)
        );
        let p2p = json!({"conference_id": "s2", "class": 1, "end_time": null});
        assert!(!parse(p2p).unwrap().0.is_running_conference());
        let ended = json!({"conference_id": "s3", "class": 10, "end_time": {"date": "x"}});
        assert!(!parse(ended).unwrap().0.is_running_conference());
        assert!(parse(json!({"topic": "no id"})).is_none());
    }

    #[test]
    fn a_row_without_class_is_told_by_its_type_and_never_hidden() {
        // R5: type 5 is a group conference, 0 and 1 private calls.
        let group = json!({"conference_id": "s1", "type": 5, "end_time": null});
        let (call, from) = parse(group).unwrap();
        assert!(call.is_running_conference());
        assert_eq!(from, KindFrom::Type);
        let p2p = json!({"conference_id": "s2", "type": "0", "end_time": null});
        assert!(!parse(p2p).unwrap().0.is_running_conference());
        // Neither field: a named conference is shown, an unnamed call is not.
        let named = json!({"conference_id": "s3", "named_conf_id": "room"});
        let (call, from) = parse(named).unwrap();
        assert!(call.is_running_conference());
        assert_eq!(from, KindFrom::Guess);
        let unnamed = json!({"conference_id": "s4"});
        assert!(!parse(unnamed).unwrap().0.is_running_conference());
    }

    #[test]
    fn error_reasons() {
        let nested = r#"{"error":{"code":403,"errors":[{"reason":"accessTokenInvalid"}]}}"#;
        assert_eq!(error_reason(nested).as_deref(), Some("accessTokenInvalid"));
        assert_eq!(
            error_reason(r#"{"reason":"InvalidCredentials"}"#).as_deref(),
            Some("InvalidCredentials")
        );
        assert_eq!(error_reason("<html>"), None);
        let session = r#"{"error":{"code":404,"errors":[{"reason":"conferenceSessionNotFound"}]}}"#;
        assert!(names_a_missing_thing(session));
        let path = r#"{"error":{"code":404,"errors":[{"reason":"notFound"}]}}"#;
        assert!(!names_a_missing_thing(path));
        assert!(!names_a_missing_thing("<html>404</html>"));
    }

    #[track_caller]
    fn refused(status: u16, body: &str) -> Problem {
        token_refusal(status, body, &["s3cr3t-value".to_string()])
    }

    #[test]
    fn token_refusals_quote_the_server_without_secrets() {
        // The three shapes vendor code expects (R10), at any 4xx.
        assert_eq!(
            refused(
                400,
                r#"{"error":"invalid_client","error_description":"The client credentials are invalid"}"#
            ),
            Problem::CredentialsRejected(Some(
                "invalid_client: The client credentials are invalid".into()
            ))
        );
        assert_eq!(
            refused(
                422,
                r#"{"reason":"InvalidCredentials","message":"Bad secret s3cr3t-value"}"#
            ),
            Problem::CredentialsRejected(Some("InvalidCredentials: Bad secret ***".into()))
        );
        assert_eq!(
            refused(
                409,
                r#"{"error":{"code":409,"message":"Client is disabled","errors":[{"reason":"x"}]}}"#
            ),
            Problem::CredentialsRejected(Some("Client is disabled".into()))
        );
        // Bare refusals; an endpoint the server lacks; a server error.
        assert_eq!(refused(401, ""), Problem::CredentialsRejected(None));
        assert_eq!(
            refused(404, "<html>Not Found</html>"),
            Problem::Unexpected(404)
        );
        assert_eq!(
            refused(500, r#"{"error":"server_error"}"#),
            Problem::Unexpected(500)
        );
        // Grant problems get their own advice.
        assert!(refused(400, r#"{"error":"unauthorized_client"}"#).grant_not_allowed());
        assert!(!refused(400, r#"{"error":"invalid_client"}"#).grant_not_allowed());
    }

    #[test]
    fn reasons_are_one_short_line_without_tokens() {
        let long = "x ".repeat(200);
        let cut = sanitize_reason(&long, &[]).unwrap();
        assert_eq!(cut.chars().count(), REASON_MAX);
        assert!(cut.ends_with('…'));
        assert_eq!(
            sanitize_reason("line\none\ttab\u{7}bell", &[]).as_deref(),
            Some("line one tab bell")
        );
        // A run that looks like a token is hidden even when we do not know it.
        assert_eq!(
            sanitize_reason("token 5f2b8c0e9d1a4b7c6e3f2a1b0c9d8e7f is bad", &[]).as_deref(),
            Some("token *** is bad")
        );
        assert_eq!(sanitize_reason(" \n ", &[]), None);
    }

    #[test]
    fn the_version_comes_from_the_server_header_or_the_body() {
        assert_eq!(
            server_version(Some("TrueConf Server 5.5.2.10"), "").as_deref(),
            Some("TrueConf Server 5.5.2.10")
        );
        let body = "<html><body>TrueConf Server 5.0.3.412<br/>Status:OK <br/></body></html>";
        assert_eq!(
            server_version(None, body).as_deref(),
            Some("TrueConf Server 5.0.3.412")
        );
        assert_eq!(
            server_version(Some("nginx"), "TrueConf Server 4.7.1<br/>Status:OK").as_deref(),
            Some("TrueConf Server 4.7.1")
        );
        assert_eq!(server_version(Some("x"), "Status:OK"), None);
        assert_eq!(server_version(None, "<b>5.5</b>"), None);
        let long = format!("{} 1.2", "A".repeat(70));
        assert_eq!(server_version(Some(&long), ""), None);
    }

    #[test]
    fn who_has_left_and_who_leads() {
        let listed = Presence::Listed(vec![
            Participant {
                role: Some(2),
                left: true,
            },
            Participant {
                role: None,
                left: false,
            },
        ]);
        let present = listed.present().unwrap();
        assert_eq!(present.len(), 1);
        assert!(!present[0].is_leader());
        assert_eq!(Presence::Gone.present(), None);
    }
}
