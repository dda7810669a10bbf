//! The TrueConf Server API (reference/trueconf-api.md): token handling, the
//! calls the bot makes, and their wire types. The only place that handles
//! `access_token`. Knows nothing of Telegram.

use std::collections::HashSet;
use std::fmt;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::config::{Secret, Server};
use crate::html::encode_segment;
use crate::http::{Client, Limits, NetError, Response};
use crate::timing::Timing;

/// Page size for `/logs/calls`.
const CALLS_PAGE: usize = 200;
/// At most this many call-log pages are read (40,000 rows).
const MAX_CALL_PAGES: usize = 200;
/// Page size for `/users`.
const USERS_PAGE: usize = 1000;
/// At most this many user pages are read (1,000,000 users at full pages).
pub const MAX_USER_PAGES: usize = 1000;

/// Why a TrueConf request failed, as the admin must hear it (SPEC §6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// No connection (refused, unknown host, reset); the reason in a few words.
    Unreachable(String),
    /// No answer in time.
    Timeout,
    /// The server's certificate is not trusted (setting: ssl_certificate).
    TlsUntrusted(String),
    /// The OAuth2 application's credentials (or the fixed token) were refused.
    CredentialsRejected,
    /// The token lacks a permission; the API path that needs it.
    MissingPermission(String),
    /// Any other answer we did not expect: its HTTP status.
    Unexpected(u16),
    /// A 2xx answer that is not the JSON we expect.
    BadAnswer,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Unreachable(why) => write!(f, "server unreachable ({why})"),
            Problem::Timeout => f.write_str("no answer in time"),
            Problem::TlsUntrusted(why) => write!(f, "TLS certificate not trusted ({why})"),
            Problem::CredentialsRejected => f.write_str("OAuth2 credentials rejected"),
            Problem::MissingPermission(what) => write!(f, "token lacks the permission for {what}"),
            Problem::Unexpected(status) => write!(f, "unexpected answer (HTTP {status})"),
            Problem::BadAnswer => f.write_str("unexpected answer (not the JSON expected)"),
        }
    }
}

impl From<NetError> for Problem {
    fn from(e: NetError) -> Problem {
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
    class: i64,
    running: bool,
}

impl Call {
    /// Running = no end time and not a point-to-point call (class ≤ 1).
    pub fn is_running_conference(&self) -> bool {
        self.running && self.class > 1
    }

    fn parse(v: &Value) -> Option<Call> {
        let text = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
        let int = |k: &str| {
            v.get(k).and_then(|x| {
                x.as_i64()
                    .or_else(|| x.as_f64().map(|f| f as i64))
                    .or_else(|| x.as_str().and_then(|s| s.trim().parse().ok()))
            })
        };
        Some(Call {
            session_id: text("conference_id")?,
            conference_id: text("named_conf_id").filter(|s| !s.is_empty()),
            topic: text("topic").filter(|s| !s.trim().is_empty()),
            owner: text("owner").filter(|s| !s.is_empty()),
            participant_count: int("participant_count").unwrap_or(0),
            duration: int("duration").unwrap_or(0).max(0) as u64,
            class: int("class").unwrap_or(0),
            running: v.get("end_time").is_none_or(Value::is_null),
        })
    }
}

/// A participant of a running session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Participant {
    pub role: i64,
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
    /// The server knows no running conference by that id (ended already).
    NotFound,
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

/// A client for one server. Shared by reference between the threads of one
/// server's worker; the token cache is the only state.
pub struct TrueConf {
    http: Client,
    base: String,
    api: String,
    client_id: String,
    client_secret: Secret,
    fixed: Option<Secret>,
    token: Mutex<TokenCache>,
}

impl fmt::Debug for TrueConf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TrueConf")
    }
}

enum Auth {
    Ok(Response),
    /// 401, or 403 with reason accessTokenInvalid.
    TokenInvalid,
}

/// The health probe: `GET http://host:status_port/vsstatus` over `client`
/// (plain HTTP, no token). `Ok` for a 2xx answer in time, else a short reason.
pub fn probe_status(client: &Client, server: &Server) -> Result<(), String> {
    match client.get(&server.status_url(), &[], None) {
        Ok(r) if r.is_success() => Ok(()),
        Ok(r) => Err(format!("HTTP {}", r.status)),
        Err(e) => Err(e.to_string()),
    }
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
            http: Client::new(&server.trust, Limits::trueconf(timing)),
            base: format!("https://{}", server.host),
            api: format!("/api/{}", server.api_version),
            client_id: server.client_id.clone(),
            client_secret: server.client_secret.clone(),
            fixed: server.access_token.clone(),
            token: Mutex::new(TokenCache::default()),
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
            return Err(Problem::CredentialsRejected);
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

    fn request_token(&self) -> Result<Token, Problem> {
        let url = format!("{}/oauth2/v1/token", self.base);
        let started = Instant::now();
        let response = self.http.post_form(
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
        if !response.is_success() {
            return Err(match response.status {
                400 | 401 | 403 => Problem::CredentialsRejected,
                // A server without the OAuth2 endpoint at this address.
                status => Problem::Unexpected(status),
            });
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

    /// One API call with the token in the query; renews the token and retries
    /// once when the server says it is invalid.
    fn api<T: DeserializeOwned>(
        &self,
        post: bool,
        path: &str,
        query: &[(&str, &str)],
        what: &str,
    ) -> Result<T, Problem> {
        let response = self.api_raw(post, path, query, what)?;
        serde_json::from_str(&response.body).map_err(|_| Problem::BadAnswer)
    }

    /// The same without reading the body: a 2xx answer is all that counts.
    fn api_raw(
        &self,
        post: bool,
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
            let response = if post {
                self.http.post_empty(&url, &full)?
            } else {
                self.http.get(&url, &full, None)?
            };
            log::debug!(
                "trueconf {what}: HTTP {} in {} ms",
                response.status,
                started.elapsed().as_millis()
            );
            match check_auth(response) {
                Auth::Ok(response) => return self.decode(response, what),
                Auth::TokenInvalid => {
                    self.invalidate(&token);
                    if attempt == 1 {
                        return Err(Problem::CredentialsRejected);
                    }
                }
            }
        }
        Err(Problem::CredentialsRejected)
    }

    fn decode(&self, response: Response, what: &str) -> Result<Response, Problem> {
        if response.status == 403 {
            return Err(Problem::MissingPermission(what.to_string()));
        }
        if !response.is_success() {
            return Err(Problem::Unexpected(response.status));
        }
        Ok(response)
    }

    /// Running conferences from every page of the call log.
    pub fn running_conferences(&self) -> Result<Vec<Call>, Problem> {
        let mut seen = HashSet::new();
        let mut running = Vec::new();
        let page_size = CALLS_PAGE.to_string();
        // Whether pages count from 0 or 1 is not known (it may differ between
        // versions): the first request names no page, as the vendor's bot does,
        // then pages 1, 2, … follow. Page 1 may repeat the first page, so
        // rows are counted once; from page 2 on, a page that adds nothing new
        // means the server ignores page_id; a page without running rows ends
        // the running ones (they sort first).
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
            let body: Value =
                self.api(false, "/logs/calls", &query, "logs.calls:read (logs/calls)")?;
            let list = body
                .get("list")
                .and_then(Value::as_array)
                .ok_or(Problem::BadAnswer)?;
            let rows: Vec<Call> = list.iter().filter_map(Call::parse).collect();
            let any_running = rows.iter().any(|c| c.running);
            let mut new_rows = 0;
            for call in rows {
                if seen.insert(call.session_id.clone()) {
                    new_rows += 1;
                    if call.is_running_conference() {
                        running.push(call);
                    }
                }
            }
            if !any_running || list.len() < CALLS_PAGE || (page >= 2 && new_rows == 0) {
                break;
            }
        }
        Ok(running)
    }

    /// Participants of a running session.
    pub fn participants(&self, session_id: &str) -> Result<Vec<Participant>, Problem> {
        let path = format!(
            "/conference-sessions/{}/participants",
            encode_segment(session_id)
        );
        let body: Value = self.api(
            false,
            &path,
            &[],
            "conferences.sessions.participants:read (conference-sessions/participants)",
        )?;
        let list = body
            .get("participants")
            .and_then(Value::as_array)
            .ok_or(Problem::BadAnswer)?;
        // A participant without a readable role makes the whole list unusable
        // for the forgotten rules: better "unknown" than a wrong "forgotten".
        list.iter()
            .map(|p| {
                let role = p.get("role").and_then(as_int).ok_or(Problem::BadAnswer)?;
                Ok(Participant { role })
            })
            .collect()
    }

    /// Users online (status 1, 2 or 5) over every page of `/users`.
    pub fn online_users(&self) -> Result<Online, Problem> {
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
            let mut query = vec![("page_size", page_size.as_str())];
            if let Some(p) = &page_id {
                query.push(("page_id", p.as_str()));
            }
            // Typed, so that the many fields of a user are skipped, not built.
            let body: UsersPage = self.api(false, "/users", &query, "users:read (users)")?;
            let users = body.users.ok_or(Problem::BadAnswer)?;
            for user in &users {
                result.total += 1;
                if matches!(user.status.as_ref().and_then(as_int), Some(1 | 2 | 5)) {
                    result.online += 1;
                }
            }
            let next = body.next_page_id.as_ref().and_then(as_int).unwrap_or(-1);
            if next < 0 || users.is_empty() {
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

    /// `POST /conferences/{id}/stop`.
    pub fn stop(&self, conference_id: &str) -> Result<Stopped, Problem> {
        let path = format!("/conferences/{}/stop", encode_segment(conference_id));
        // Any 2xx is a stop, whatever its body (some versions send none).
        match self.api_raw(true, &path, &[], "conferences:write (conferences/stop)") {
            Ok(_) => Ok(Stopped::Stopped),
            Err(Problem::Unexpected(404)) => Ok(Stopped::NotFound),
            Err(e) => Err(e),
        }
    }
}

/// Single steps for `trueconf-bot check`.
impl TrueConf {
    /// An HTTPS request to the web root: any HTTP answer proves TLS works.
    pub fn check_tls(&self) -> Result<u16, Problem> {
        let response = self.http.get(&format!("{}/", self.base), &[], None)?;
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

    /// One small page of `/users`.
    pub fn check_users(&self) -> Result<(), Problem> {
        let body: Value = self.api(false, "/users", &[("page_size", "1")], "users:read (users)")?;
        body.get("users")
            .and_then(Value::as_array)
            .ok_or(Problem::BadAnswer)?;
        Ok(())
    }
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

fn check_auth(response: Response) -> Auth {
    match response.status {
        401 => Auth::TokenInvalid,
        403 if error_reason(&response.body).as_deref() == Some("accessTokenInvalid") => {
            Auth::TokenInvalid
        }
        _ => Auth::Ok(response),
    }
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

    #[test]
    fn calls_parse_defensively() {
        let row = json!({"conference_id": "s1@tc#vcs", "named_conf_id": null, "topic": null,
            "class": 10, "owner": null, "participant_count": "3", "end_time": null, "duration": 4000});
        let call = Call::parse(&row).unwrap();
        assert!(call.is_running_conference());
        assert_eq!(
            (call.conference_id, call.topic, call.participant_count),
            (None, None, 3)
        );
        let p2p = json!({"conference_id": "s2", "class": 1, "end_time": null});
        assert!(!Call::parse(&p2p).unwrap().is_running_conference());
        let ended = json!({"conference_id": "s3", "class": 10, "end_time": {"date": "x"}});
        assert!(!Call::parse(&ended).unwrap().is_running_conference());
        assert!(Call::parse(&json!({"topic": "no id"})).is_none());
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
    }
}
