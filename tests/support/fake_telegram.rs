//! A fake Telegram Bot API server (plain HTTP on 127.0.0.1, our `http1` server:
//! each request is handled on its connection's thread, a held long poll included).
//!
//! Paths are `/bot<TOKEN>/<method>`; parameters come as a JSON body, a form
//! body or a query string. Answers use Telegram's envelope and its exact error
//! strings; the HTML of sendMessage/editMessageText is checked as strictly as
//! (or more strictly than) the real server does.
#![allow(dead_code)]

use super::http1;
use super::{lock, notify_changed, parse_form, wait_deadline};
use serde_json::{Map, Value, json};
use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A token of the real shape (not settings.example.toml's placeholder, which
/// the bot refuses).
pub const TOKEN: &str = "123456789:AAFakeTokenOfTheTestBotApi_0123-xyz";
/// The bot's own user id and name, as getMe reports them.
pub const BOT_ID: i64 = 42;
pub const BOT_USERNAME: &str = "trueconf_test_bot";

const NOT_MODIFIED: &str = "Bad Request: message is not modified: specified new message content and reply markup are exactly the same as a current content and reply markup of the message";
const QUERY_TOO_OLD: &str =
    "Bad Request: query is too old and response timeout expired or query ID is invalid";
const CONFLICT: &str = "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running";
const BLOCKED: &str = "Forbidden: bot was blocked by the user";

/// One request received, recorded before it was answered.
#[derive(Clone, Debug)]
pub struct Call {
    /// The method name, lowercased.
    pub method: String,
    /// The parameters (JSON object; form and query values are strings).
    pub params: Value,
    pub at: Instant,
    /// Where the request came from (the bot, or a proxy).
    pub peer: Option<std::net::SocketAddr>,
}

impl Call {
    /// `params[key]` as an integer (numbers and numeric strings).
    pub fn int(&self, key: &str) -> Option<i64> {
        int_param(&self.params, key)
    }

    /// `params[key]` as text (strings as they are, other values as JSON).
    pub fn str(&self, key: &str) -> Option<String> {
        match self.params.get(key)? {
            Value::String(s) => Some(s.clone()),
            Value::Null => None,
            v => Some(v.to_string()),
        }
    }
}

/// A one-shot answer for the next call of a method (see [`FakeTelegram::script`]).
#[derive(Clone, Debug)]
pub enum Reply {
    /// Telegram's error envelope, HTTP status = code; `retry_after` also sets
    /// the `Retry-After` header.
    Error {
        code: u16,
        description: String,
        retry_after: Option<u64>,
    },
    /// Anything else, e.g. an HTML 502 page from a proxy or broken JSON.
    Raw {
        status: u16,
        content_type: String,
        body: String,
    },
    /// Hold the request that long, then answer it normally.
    Hang(Duration),
}

impl Reply {
    pub fn error(code: u16, description: &str) -> Reply {
        Reply::Error {
            code,
            description: description.to_string(),
            retry_after: None,
        }
    }

    /// 429 "Too Many Requests: retry after N" with `parameters.retry_after`.
    pub fn too_many_requests(retry_after: u64) -> Reply {
        Reply::Error {
            code: 429,
            description: format!("Too Many Requests: retry after {retry_after}"),
            retry_after: Some(retry_after),
        }
    }

    /// The 409 a second poller gets.
    pub fn conflict() -> Reply {
        Reply::error(409, CONFLICT)
    }

    /// An HTML 502 page, as a reverse proxy sends it.
    pub fn bad_gateway_html() -> Reply {
        Reply::Raw {
            status: 502,
            content_type: "text/html".to_string(),
            body: "<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad Gateway</h1></center><hr><center>nginx</center></body></html>".to_string(),
        }
    }
}

/// The current state of one message the bot sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Msg {
    pub message_id: i64,
    /// The text as the bot sent it (HTML).
    pub text: String,
    /// The text as the user sees it (tags removed, entities decoded).
    pub plain: String,
    /// Inline keyboard: (label, callback_data or url) per button, by row.
    pub buttons: Vec<Vec<(String, String)>>,
    /// How many times it was edited (text or keyboard).
    pub edits: usize,
    /// The forum topic it is in (`message_thread_id`), if any.
    pub thread: Option<i64>,
    /// Sent without parse_mode (as plain text).
    pub plain_mode: bool,
}

impl Msg {
    /// The first button whose label contains `label_part`.
    pub fn button(&self, label_part: &str) -> Option<(String, String)> {
        self.buttons
            .iter()
            .flatten()
            .find(|(l, _)| l.contains(label_part))
            .cloned()
    }

    /// Every button, row by row.
    pub fn all_buttons(&self) -> Vec<(String, String)> {
        self.buttons.iter().flatten().cloned().collect()
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Entity {
    kind: &'static str,
    offset: usize,
    length: usize,
    extra: String,
}

struct StoredMsg {
    id: i64,
    html: String,
    plain: String,
    entities: Vec<Entity>,
    markup: Option<Value>,
    date: i64,
    edit_date: Option<i64>,
    edits: usize,
    deleted: bool,
    thread: Option<i64>,
    plain_mode: bool,
}

impl StoredMsg {
    fn view(&self) -> Msg {
        Msg {
            message_id: self.id,
            text: self.html.clone(),
            plain: self.plain.clone(),
            buttons: buttons_of(self.markup.as_ref()),
            edits: self.edits,
            thread: self.thread,
            plain_mode: self.plain_mode,
        }
    }
}

#[derive(Default)]
struct ChatState {
    group: bool,
    /// A supergroup with topics (`is_forum`).
    forum: bool,
    /// Its General topic is closed: sends without a thread are refused.
    general_closed: bool,
    /// Upgraded to a supergroup with this id: every call answers 400 + migrate_to_chat_id.
    migrated_to: Option<i64>,
    next_id: i64,
    msgs: Vec<StoredMsg>,
    /// Every version of every bot message, oldest first.
    history: Vec<Msg>,
}

impl ChatState {
    fn next_message_id(&mut self) -> i64 {
        self.next_id += 1;
        self.next_id
    }

    fn find(&mut self, id: i64) -> Option<&mut StoredMsg> {
        self.msgs.iter_mut().find(|m| m.id == id && !m.deleted)
    }
}

struct State {
    token: String,
    next_update_id: i64,
    updates: VecDeque<(i64, Value)>,
    calls: Vec<Call>,
    scripts: HashMap<String, VecDeque<Reply>>,
    chats: HashMap<i64, ChatState>,
    callbacks: HashSet<String>,
    next_callback: u64,
    held: Option<u64>,
    terminated: HashSet<u64>,
    next_poll: u64,
    concurrent_polls: usize,
    allowed_updates: Option<Value>,
    blocked: HashSet<i64>,
    shutdown: bool,
    /// Bumped by `release_polls`: polls held since before answer at once.
    release_epoch: u64,
    /// getUpdates answers at once instead of holding (some proxies and emulators).
    instant_polls: bool,
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

/// The fake server; dropping it stops every thread it started.
pub struct FakeTelegram {
    shared: Arc<Shared>,
    server: http1::Server,
    addr: SocketAddr,
}

enum Outcome {
    Answer(u16, Value),
    Hold {
        poll: u64,
        deadline: Instant,
        offset: i64,
        limit: usize,
        epoch: u64,
    },
}

impl FakeTelegram {
    pub fn start() -> FakeTelegram {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                token: TOKEN.to_string(),
                next_update_id: 1000,
                updates: VecDeque::new(),
                calls: Vec::new(),
                scripts: HashMap::new(),
                chats: HashMap::new(),
                callbacks: HashSet::new(),
                next_callback: 0,
                held: None,
                terminated: HashSet::new(),
                next_poll: 0,
                concurrent_polls: 0,
                allowed_updates: None,
                blocked: HashSet::new(),
                shutdown: false,
                release_epoch: 0,
                instant_polls: false,
            }),
            cv: Condvar::new(),
        });
        let server = {
            let shared = shared.clone();
            http1::Server::bind(
                "fake-telegram",
                Arc::new(move |rq: http1::Request| Some(handle(&shared, rq))),
            )
        };
        let addr = server.addr();
        FakeTelegram {
            shared,
            server,
            addr,
        }
    }

    /// Makes `chat` a forum supergroup (topics, `message_thread_id`).
    pub fn make_forum(&self, chat: i64, general_closed: bool) {
        let mut st = lock(&self.shared.state);
        let c = st.chats.entry(chat).or_default();
        c.group = true;
        c.forum = true;
        c.general_closed = general_closed;
    }

    /// `chat` became supergroup `to`: calls to `chat` answer 400 with
    /// `parameters.migrate_to_chat_id`.
    pub fn migrate_chat(&self, chat: i64, to: i64) {
        let mut st = lock(&self.shared.state);
        st.chats.entry(chat).or_default().migrated_to = Some(to);
        let c = st.chats.entry(to).or_default();
        c.group = true;
    }

    /// From now on getUpdates answers at once, never holding.
    pub fn set_instant_polls(&self, on: bool) {
        lock(&self.shared.state).instant_polls = on;
        self.shared.changed();
    }

    /// Queues a text message from `from` in forum topic `thread` of `chat`.
    pub fn push_topic_message(&self, from: i64, chat: i64, thread: i64, text: &str) -> i64 {
        let (message_id, chat_json) = {
            let mut st = lock(&self.shared.state);
            let c = st.chats.entry(chat).or_default();
            c.group = true;
            (c.next_message_id(), forum_chat_json(chat))
        };
        let mut msg = json!({
            "message_id": message_id,
            "message_thread_id": thread,
            "is_topic_message": true,
            "from": user_json(from, None),
            "chat": chat_json,
            "date": unix_now(),
            "text": text,
        });
        if text.starts_with('/') {
            let cmd = text.split(char::is_whitespace).next().unwrap_or("");
            msg["entities"] = json!([{
                "type": "bot_command", "offset": 0, "length": cmd.encode_utf16().count()
            }]);
        }
        self.push_update(json!({ "message": msg }))
    }

    /// Answers every held `getUpdates` at once with no updates (a bot being
    /// stopped then need not wait out its long poll).
    pub fn release_polls(&self) {
        lock(&self.shared.state).release_epoch += 1;
        self.shared.changed();
    }

    /// "http://127.0.0.1:PORT", what goes into `tg-api-url`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Queues an update; sets `update_id` (the next id, from 1000) when absent.
    pub fn push_update(&self, mut update: Value) -> i64 {
        let mut st = lock(&self.shared.state);
        let given = update.get("update_id").and_then(Value::as_i64);
        let id = given.unwrap_or(st.next_update_id);
        st.next_update_id = st.next_update_id.max(id + 1);
        if given.is_none() {
            if let Some(o) = update.as_object_mut() {
                o.insert("update_id".into(), json!(id));
            }
        }
        st.updates.push_back((id, update));
        drop(st);
        self.shared.changed();
        id
    }

    /// Queues a text message from user `from` in chat `chat` (a private chat when
    /// they are equal, else a group); a leading /command gets its entity.
    pub fn push_message(
        &self,
        from: i64,
        chat: i64,
        text: &str,
        language_code: Option<&str>,
    ) -> i64 {
        let (message_id, chat_json) = {
            let mut st = lock(&self.shared.state);
            let c = st.chats.entry(chat).or_default();
            c.group = from != chat;
            (c.next_message_id(), chat_json(chat, c.group))
        };
        let mut msg = json!({
            "message_id": message_id,
            "from": user_json(from, language_code),
            "chat": chat_json,
            "date": unix_now(),
            "text": text,
        });
        if text.starts_with('/') {
            let cmd = text.split(char::is_whitespace).next().unwrap_or("");
            msg["entities"] = json!([{
                "type": "bot_command", "offset": 0, "length": cmd.encode_utf16().count()
            }]);
        }
        self.push_update(json!({ "message": msg }))
    }

    /// Queues a press of a button with `data` on message `message_id`; returns
    /// the callback query id. The message is the full bot message when known,
    /// else an InaccessibleMessage (date 0).
    pub fn push_callback(
        &self,
        from: i64,
        chat: i64,
        message_id: i64,
        data: &str,
        language_code: Option<&str>,
    ) -> String {
        let (id, message) = {
            let mut st = lock(&self.shared.state);
            st.next_callback += 1;
            let id = format!("{}", 4_720_000_000_000_000_000u64 + st.next_callback);
            st.callbacks.insert(id.clone());
            let message = match st.chats.get_mut(&chat) {
                Some(c) => {
                    let group = c.group;
                    match c.find(message_id) {
                        Some(m) => message_json(chat, group, m),
                        None => inaccessible(chat, group, message_id),
                    }
                }
                None => inaccessible(chat, chat < 0, message_id),
            };
            (id, message)
        };
        self.push_update(json!({
            "callback_query": {
                "id": id,
                "from": user_json(from, language_code),
                "message": message,
                "chat_instance": format!("{}", chat.wrapping_mul(7919)),
                "data": data,
            }
        }));
        id
    }

    /// Queues a one-shot reply for the next call of `method` (FIFO per method).
    pub fn script(&self, method: &str, reply: Reply) {
        let mut st = lock(&self.shared.state);
        st.scripts
            .entry(method.to_ascii_lowercase())
            .or_default()
            .push_back(reply);
    }

    /// Every call so far, in order of arrival.
    pub fn calls(&self) -> Vec<Call> {
        lock(&self.shared.state).calls.clone()
    }

    pub fn calls_to(&self, method: &str) -> Vec<Call> {
        let m = method.to_ascii_lowercase();
        lock(&self.shared.state)
            .calls
            .iter()
            .filter(|c| c.method == m)
            .cloned()
            .collect()
    }

    /// The first call (past or future) matching `pred`; None on timeout.
    pub fn wait_for(&self, timeout: Duration, pred: impl Fn(&Call) -> bool) -> Option<Call> {
        let deadline = Instant::now() + timeout;
        let mut st = lock(&self.shared.state);
        loop {
            if let Some(c) = st.calls.iter().find(|c| pred(c)) {
                return Some(c.clone());
            }
            let (g, more) = wait_deadline(&self.shared.cv, st, deadline);
            st = g;
            if !more {
                return st.calls.iter().find(|c| pred(c)).cloned();
            }
        }
    }

    /// Waits until `method` was called at least `n` times; returns those calls
    /// (fewer on timeout).
    pub fn wait_count(&self, timeout: Duration, method: &str, n: usize) -> Vec<Call> {
        let m = method.to_ascii_lowercase();
        let deadline = Instant::now() + timeout;
        let mut st = lock(&self.shared.state);
        loop {
            let found: Vec<Call> = st.calls.iter().filter(|c| c.method == m).cloned().collect();
            if found.len() >= n {
                return found;
            }
            let (g, more) = wait_deadline(&self.shared.cv, st, deadline);
            st = g;
            if !more {
                return st.calls.iter().filter(|c| c.method == m).cloned().collect();
            }
        }
    }

    /// The bot's messages in `chat` (not deleted), in order of sending.
    pub fn messages(&self, chat: i64) -> Vec<Msg> {
        let st = lock(&self.shared.state);
        st.chats
            .get(&chat)
            .map(|c| {
                c.msgs
                    .iter()
                    .filter(|m| !m.deleted)
                    .map(StoredMsg::view)
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn last_message(&self, chat: i64) -> Option<Msg> {
        self.messages(chat).pop()
    }

    /// Every version (sent, then each edit) of the bot's messages in `chat`, oldest first.
    pub fn history(&self, chat: i64) -> Vec<Msg> {
        let st = lock(&self.shared.state);
        st.chats
            .get(&chat)
            .map(|c| c.history.clone())
            .unwrap_or_default()
    }

    /// Waits until some version of a bot message in `chat` (as sent or after an
    /// edit, earlier ones included) satisfies `pred`; returns the newest such version.
    pub fn wait_message(
        &self,
        timeout: Duration,
        chat: i64,
        pred: impl Fn(&Msg) -> bool,
    ) -> Option<Msg> {
        let deadline = Instant::now() + timeout;
        let mut st = lock(&self.shared.state);
        loop {
            let hit = st
                .chats
                .get(&chat)
                .and_then(|c| c.history.iter().rev().find(|m| pred(m)).cloned());
            if hit.is_some() {
                return hit;
            }
            let (g, more) = wait_deadline(&self.shared.cv, st, deadline);
            st = g;
            if !more {
                return st
                    .chats
                    .get(&chat)
                    .and_then(|c| c.history.iter().rev().find(|m| pred(m)).cloned());
            }
        }
    }

    /// How many getUpdates arrived while another one was still held.
    pub fn concurrent_polls(&self) -> usize {
        lock(&self.shared.state).concurrent_polls
    }

    /// The last `allowed_updates` a getUpdates carried.
    pub fn allowed_updates(&self) -> Option<Value> {
        lock(&self.shared.state).allowed_updates.clone()
    }

    /// Updates pushed and not yet confirmed by an offset.
    pub fn pending_updates(&self) -> usize {
        lock(&self.shared.state).updates.len()
    }

    /// From now on only `token` is accepted (others get 401 Unauthorized).
    pub fn set_token(&self, token: &str) {
        lock(&self.shared.state).token = token.to_string();
    }

    /// Sends to `chat` get 403 "Forbidden: bot was blocked by the user".
    pub fn block_chat(&self, chat: i64) {
        lock(&self.shared.state).blocked.insert(chat);
    }

    pub fn unblock_chat(&self, chat: i64) {
        lock(&self.shared.state).blocked.remove(&chat);
    }
}

impl Drop for FakeTelegram {
    fn drop(&mut self) {
        // Held requests answer first (they see the flag), then the server stops.
        lock(&self.shared.state).shutdown = true;
        self.shared.changed();
        self.server.stop();
    }
}

// ---------------------------------------------------------------------------
// Request handling

/// Answers one request; runs on the thread of the connection it came on.
fn handle(shared: &Shared, rq: http1::Request) -> http1::Response {
    let (path, query) = (rq.path(), rq.query());
    let Some((token, method)) = path
        .strip_prefix("/bot")
        .and_then(|rest| rest.split_once('/'))
    else {
        return respond(404, error_body(404, "Not Found", None), None);
    };
    let method = method.to_ascii_lowercase();
    let token = token.to_string();
    let content_type = rq
        .header("Content-Type")
        .map(str::to_ascii_lowercase)
        .unwrap_or_default();
    let body = rq.body_text();
    let (params, parse_error) = parse_params(query, &content_type, &body);

    let mut st = lock(&shared.state);
    st.calls.push(Call {
        method: method.clone(),
        params: params.clone(),
        at: Instant::now(),
        peer: rq.peer,
    });
    shared.changed();
    if token != st.token {
        return respond(401, error_body(401, "Unauthorized", None), None);
    }
    if let Some(e) = parse_error {
        return respond(400, error_body(400, &e, None), None);
    }
    let scripted = st.scripts.get_mut(&method).and_then(VecDeque::pop_front);
    match scripted {
        Some(Reply::Error {
            code,
            description,
            retry_after,
        }) => respond(
            code,
            error_body(code, &description, retry_after),
            retry_after,
        ),
        Some(Reply::Raw {
            status,
            content_type,
            body,
        }) => http1::Response::new(status, &content_type, body),
        Some(Reply::Hang(d)) => {
            let deadline = Instant::now() + d;
            while !st.shutdown {
                let (g, more) = wait_deadline(&shared.cv, st, deadline);
                st = g;
                if !more {
                    break;
                }
            }
            if st.shutdown {
                return respond(
                    500,
                    error_body(500, "Internal Server Error: restart", None),
                    None,
                );
            }
            let outcome = dispatch(shared, &mut st, &method, &params);
            drop(st);
            finish(shared, outcome)
        }
        None => {
            let outcome = dispatch(shared, &mut st, &method, &params);
            drop(st);
            finish(shared, outcome)
        }
    }
}

/// The answer to a request, holding a getUpdates until an update comes, its
/// timeout passes, another getUpdates terminates it, or the fake is dropped.
fn finish(shared: &Shared, outcome: Outcome) -> http1::Response {
    let (status, body) = match outcome {
        Outcome::Answer(status, body) => (status, body),
        Outcome::Hold {
            poll,
            deadline,
            offset,
            limit,
            epoch,
        } => {
            let mut st = lock(&shared.state);
            loop {
                if st.terminated.remove(&poll) {
                    break (409, error_body(409, CONFLICT, None));
                }
                let ready = available(&st, offset, limit);
                let timed_out = Instant::now() >= deadline || st.release_epoch > epoch;
                if !ready.is_empty() || timed_out || st.shutdown {
                    if st.held == Some(poll) {
                        st.held = None;
                    }
                    break (200, ok_body(Value::Array(ready)));
                }
                let (g, _) = wait_deadline(&shared.cv, st, deadline);
                st = g;
            }
        }
    };
    shared.changed();
    respond(status, body, None)
}

fn respond(status: u16, body: Value, retry_after: Option<u64>) -> http1::Response {
    let resp = http1::Response::new(status, "application/json", body.to_string());
    match retry_after {
        Some(s) => resp.with_header("Retry-After", &s.to_string()),
        None => resp,
    }
}

fn ok_body(result: Value) -> Value {
    json!({ "ok": true, "result": result })
}

fn error_body(code: u16, description: &str, retry_after: Option<u64>) -> Value {
    let mut v = json!({ "ok": false, "error_code": code, "description": description });
    if let Some(s) = retry_after {
        v["parameters"] = json!({ "retry_after": s });
    }
    v
}

/// Parameters from the query string, overridden by a JSON or form body.
/// The second value is the 400 description when the body cannot be read.
fn parse_params(query: &str, content_type: &str, body: &str) -> (Value, Option<String>) {
    let mut map = Map::new();
    for (k, v) in parse_form(query) {
        map.insert(k, Value::String(v));
    }
    let mut error = None;
    if content_type.contains("application/x-www-form-urlencoded") {
        for (k, v) in parse_form(body) {
            map.insert(k, Value::String(v));
        }
    } else if !body.trim().is_empty() {
        match serde_json::from_str::<Value>(body) {
            Ok(Value::Object(o)) => map.extend(o),
            Ok(_) | Err(_) => error = Some("Bad Request: can't parse JSON object".to_string()),
        }
    }
    (Value::Object(map), error)
}

fn int_param(p: &Value, key: &str) -> Option<i64> {
    match p.get(key)? {
        Value::Number(n) => n.as_i64().or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && f.abs() < 9e15)
                .map(|f| f as i64)
        }),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// A parameter that may hold JSON as text (form bodies).
fn json_param(p: &Value, key: &str) -> Result<Option<Value>, ()> {
    match p.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => serde_json::from_str(s).map(Some).map_err(|_| ()),
        Some(v) => Ok(Some(v.clone())),
    }
}

fn available(st: &State, offset: i64, limit: usize) -> Vec<Value> {
    st.updates
        .iter()
        .filter(|(id, _)| *id >= offset)
        .take(limit)
        .map(|(_, u)| u.clone())
        .collect()
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn user_json(id: i64, language_code: Option<&str>) -> Value {
    let mut u = json!({
        "id": id, "is_bot": false, "first_name": format!("User{id}"), "username": format!("user{id}")
    });
    if let Some(l) = language_code {
        u["language_code"] = json!(l);
    }
    u
}

fn bot_json() -> Value {
    json!({ "id": BOT_ID, "is_bot": true, "first_name": "TrueConf Bot", "username": BOT_USERNAME })
}

fn chat_json(chat: i64, group: bool) -> Value {
    if group {
        json!({ "id": chat, "type": "group", "title": format!("Group {chat}") })
    } else {
        json!({ "id": chat, "type": "private", "first_name": format!("User{chat}") })
    }
}

fn inaccessible(chat: i64, group: bool, message_id: i64) -> Value {
    json!({ "chat": chat_json(chat, group), "message_id": message_id, "date": 0 })
}

fn forum_chat_json(chat: i64) -> Value {
    json!({ "id": chat, "type": "supergroup", "title": format!("Forum {chat}"), "is_forum": true })
}

fn message_json(chat: i64, group: bool, m: &StoredMsg) -> Value {
    let chat_v = if m.thread.is_some() {
        forum_chat_json(chat)
    } else {
        chat_json(chat, group)
    };
    let mut v = json!({
        "message_id": m.id,
        "from": bot_json(),
        "chat": chat_v,
        "date": m.date,
        "text": m.plain,
    });
    if let Some(thread) = m.thread {
        v["message_thread_id"] = json!(thread);
        v["is_topic_message"] = json!(true);
    }
    if !m.entities.is_empty() {
        v["entities"] = Value::Array(m.entities.iter().map(entity_json).collect());
    }
    if let Some(mk) = &m.markup {
        v["reply_markup"] = mk.clone();
    }
    if let Some(d) = m.edit_date {
        v["edit_date"] = json!(d);
    }
    v
}

fn entity_json(e: &Entity) -> Value {
    let kind = match e.kind {
        "b" => "bold",
        "i" => "italic",
        "u" => "underline",
        "s" => "strikethrough",
        "tg-spoiler" => "spoiler",
        "a" => "text_link",
        "blockquote" if !e.extra.is_empty() => "expandable_blockquote",
        other => other,
    };
    let mut v = json!({ "type": kind, "offset": e.offset, "length": e.length });
    match e.kind {
        "a" => v["url"] = json!(e.extra),
        "pre" if !e.extra.is_empty() => v["language"] = json!(e.extra),
        _ => {}
    }
    v
}

fn buttons_of(markup: Option<&Value>) -> Vec<Vec<(String, String)>> {
    let Some(rows) = markup
        .and_then(|m| m.get("inline_keyboard"))
        .and_then(Value::as_array)
    else {
        return Vec::new();
    };
    rows.iter()
        .map(|row| {
            row.as_array()
                .map(|r| {
                    r.iter()
                        .map(|b| {
                            let label = b.get("text").and_then(Value::as_str).unwrap_or("");
                            let action = ["callback_data", "url"]
                                .iter()
                                .find_map(|k| b.get(*k).and_then(Value::as_str))
                                .unwrap_or("");
                            (label.to_string(), action.to_string())
                        })
                        .collect()
                })
                .unwrap_or_default()
        })
        .collect()
}

fn answer(result: Value) -> Outcome {
    Outcome::Answer(200, ok_body(result))
}

/// A group upgraded to a supergroup refuses calls, naming the new id.
fn migrated(st: &State, chat: i64) -> Option<Outcome> {
    let to = st.chats.get(&chat)?.migrated_to?;
    let mut body = error_body(
        400,
        "Bad Request: group chat was upgraded to a supergroup chat",
        None,
    );
    body["parameters"] = json!({ "migrate_to_chat_id": to });
    Some(Outcome::Answer(400, body))
}

fn fail(code: u16, description: &str) -> Outcome {
    Outcome::Answer(code, error_body(code, description, None))
}

fn dispatch(shared: &Shared, st: &mut State, method: &str, p: &Value) -> Outcome {
    let outcome = match method {
        "getme" => answer(bot_json()),
        "deletewebhook" | "deletemycommands" | "sendchataction" | "close" | "logout" => {
            answer(json!(true))
        }
        "getwebhookinfo" => answer(json!({
            "url": "", "has_custom_certificate": false, "pending_update_count": st.updates.len()
        })),
        "setmycommands" => set_my_commands(p),
        "getupdates" => get_updates(st, p),
        "sendmessage" => send_message(st, p),
        "editmessagetext" => edit_message(st, p, true),
        "editmessagereplymarkup" => edit_message(st, p, false),
        "deletemessage" => delete_message(st, p),
        "answercallbackquery" => answer_callback(st, p),
        _ => fail(404, "Not Found: method not found"),
    };
    shared.changed();
    outcome
}

fn set_my_commands(p: &Value) -> Outcome {
    let Ok(Some(Value::Array(cmds))) = json_param(p, "commands") else {
        return fail(400, "Bad Request: parameter \"commands\" is required");
    };
    if cmds.len() > 100 {
        return fail(400, "Bad Request: BOT_COMMAND_INVALID");
    }
    for c in &cmds {
        let name = c.get("command").and_then(Value::as_str).unwrap_or("");
        let desc = c.get("description").and_then(Value::as_str).unwrap_or("");
        let name_ok = (1..=32).contains(&name.len())
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        let desc_ok = (1..=256).contains(&desc.chars().count());
        if !name_ok || !desc_ok {
            return fail(400, "Bad Request: BOT_COMMAND_INVALID");
        }
    }
    answer(json!(true))
}

fn get_updates(st: &mut State, p: &Value) -> Outcome {
    let offset = int_param(p, "offset").unwrap_or(0);
    let limit = int_param(p, "limit").unwrap_or(100).clamp(1, 100) as usize;
    let timeout = int_param(p, "timeout").unwrap_or(0).clamp(0, 50) as u64;
    if let Ok(Some(a)) = json_param(p, "allowed_updates") {
        st.allowed_updates = Some(a);
    }
    // A second poller terminates the held one.
    if let Some(held) = st.held.take() {
        st.terminated.insert(held);
        st.concurrent_polls += 1;
    }
    if offset > 0 {
        st.updates.retain(|(id, _)| *id >= offset);
    } else if offset < 0 {
        let keep = offset.unsigned_abs() as usize;
        while st.updates.len() > keep {
            st.updates.pop_front();
        }
    }
    let ready = available(st, offset, limit);
    if !ready.is_empty() || timeout == 0 || st.instant_polls {
        return answer(Value::Array(ready));
    }
    st.next_poll += 1;
    let poll = st.next_poll;
    st.held = Some(poll);
    Outcome::Hold {
        poll,
        deadline: Instant::now() + Duration::from_secs(timeout),
        offset,
        limit,
        epoch: st.release_epoch,
    }
}

fn chat_param(p: &Value) -> Result<i64, Outcome> {
    match p.get("chat_id") {
        None | Some(Value::Null) => Err(fail(400, "Bad Request: chat_id is empty")),
        Some(Value::String(s)) if s.trim().is_empty() => {
            Err(fail(400, "Bad Request: chat_id is empty"))
        }
        _ => int_param(p, "chat_id").ok_or_else(|| fail(400, "Bad Request: chat not found")),
    }
}

/// Parses the text by parse_mode into (plain text, entities), checking its length.
fn parse_text(p: &Value) -> Result<(String, Vec<Entity>), Outcome> {
    let text = match p.get("text") {
        Some(Value::String(s)) => s.clone(),
        None | Some(Value::Null) => String::new(),
        Some(v) => v.to_string(),
    };
    let mode = p
        .get("parse_mode")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_ascii_lowercase();
    let (plain, entities) = match mode.as_str() {
        "html" => parse_html(&text)
            .map_err(|e| fail(400, &format!("Bad Request: can't parse entities: {e}")))?,
        // Only HTML is checked; the bot is meant to use HTML everywhere.
        "" | "markdown" | "markdownv2" => (text.clone(), Vec::new()),
        _ => return Err(fail(400, "Bad Request: unsupported parse_mode")),
    };
    if plain.trim().is_empty() {
        return Err(fail(400, "Bad Request: message text is empty"));
    }
    if plain.encode_utf16().count() > 4096 {
        return Err(fail(400, "Bad Request: message is too long"));
    }
    Ok((plain, entities))
}

/// Checks reply_markup; returns the markup to store (None = no keyboard).
fn parse_markup(p: &Value, inline_only: bool) -> Result<Option<Value>, Outcome> {
    let bad_json = || {
        fail(
            400,
            "Bad Request: can't parse reply keyboard markup JSON object",
        )
    };
    let Some(v) = json_param(p, "reply_markup").map_err(|_| bad_json())? else {
        return Ok(None);
    };
    let Some(obj) = v.as_object() else {
        return Err(bad_json());
    };
    let Some(kb) = obj.get("inline_keyboard") else {
        let other = ["keyboard", "remove_keyboard", "force_reply"]
            .iter()
            .any(|k| obj.contains_key(*k));
        return if other && !inline_only {
            Ok(Some(v))
        } else if other {
            Err(fail(400, "Bad Request: inline keyboard expected"))
        } else {
            Err(bad_json())
        };
    };
    let rows_error = || {
        fail(
            400,
            "Bad Request: field \"inline_keyboard\" of the InlineKeyboardMarkup must be an Array of Arrays",
        )
    };
    let rows = kb.as_array().ok_or_else(rows_error)?;
    let mut count = 0;
    for row in rows {
        for b in row.as_array().ok_or_else(rows_error)? {
            count += 1;
            check_button(b)?;
        }
    }
    if count > 100 {
        return Err(fail(400, "Bad Request: reply markup is too long"));
    }
    Ok(if count == 0 { None } else { Some(v) })
}

fn check_button(b: &Value) -> Result<(), Outcome> {
    let Some(o) = b.as_object() else {
        return Err(fail(
            400,
            "Bad Request: can't parse inline keyboard button: InlineKeyboardButton must be an Object",
        ));
    };
    match o.get("text") {
        Some(Value::String(t)) if !t.trim().is_empty() => {}
        Some(Value::String(_)) => return Err(fail(400, "Bad Request: BUTTON_TEXT_INVALID")),
        _ => {
            return Err(fail(
                400,
                "Bad Request: can't parse inline keyboard button: Field \"text\" must be of type String",
            ));
        }
    }
    const ACTIONS: [&str; 10] = [
        "callback_data",
        "url",
        "switch_inline_query",
        "switch_inline_query_current_chat",
        "switch_inline_query_chosen_chat",
        "copy_text",
        "web_app",
        "login_url",
        "callback_game",
        "pay",
    ];
    let n = ACTIONS.iter().filter(|k| o.contains_key(**k)).count();
    if n == 0 {
        return Err(fail(
            400,
            "Bad Request: can't parse inline keyboard button: Text buttons are unallowed in the inline keyboard",
        ));
    }
    if n > 1 {
        return Err(fail(
            400,
            "Bad Request: can't parse inline keyboard button: exactly one of the optional fields must be used",
        ));
    }
    if let Some(d) = o.get("callback_data") {
        match d.as_str() {
            Some(s) if (1..=64).contains(&s.len()) => {}
            _ => return Err(fail(400, "Bad Request: BUTTON_DATA_INVALID")),
        }
    }
    if let Some(u) = o.get("url") {
        match u.as_str() {
            Some(s) if !s.is_empty() && !s.chars().any(char::is_whitespace) => {}
            _ => return Err(fail(400, "Bad Request: BUTTON_URL_INVALID")),
        }
    }
    Ok(())
}

fn send_message(st: &mut State, p: &Value) -> Outcome {
    let chat = match chat_param(p) {
        Ok(c) => c,
        Err(o) => return o,
    };
    if st.blocked.contains(&chat) {
        return fail(403, BLOCKED);
    }
    if let Some(o) = migrated(st, chat) {
        return o;
    }
    let thread = int_param(p, "message_thread_id");
    let (forum, general_closed) = st
        .chats
        .get(&chat)
        .map_or((false, false), |c| (c.forum, c.general_closed));
    match thread {
        Some(_) if !forum => return fail(400, "Bad Request: message thread not found"),
        None if general_closed => return fail(400, "Bad Request: TOPIC_CLOSED"),
        _ => {}
    }
    let (plain, entities) = match parse_text(p) {
        Ok(t) => t,
        Err(o) => return o,
    };
    let markup = match parse_markup(p, false) {
        Ok(m) => m,
        Err(o) => return o,
    };
    let html = p
        .get("text")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let c = st.chats.entry(chat).or_insert_with(|| ChatState {
        group: chat < 0,
        ..ChatState::default()
    });
    let m = StoredMsg {
        id: c.next_message_id(),
        html,
        plain,
        entities,
        markup,
        date: unix_now(),
        edit_date: None,
        edits: 0,
        deleted: false,
        thread,
        plain_mode: p.get("parse_mode").is_none(),
    };
    let result = message_json(chat, c.group, &m);
    c.history.push(m.view());
    c.msgs.push(m);
    answer(result)
}

fn edit_message(st: &mut State, p: &Value, with_text: bool) -> Outcome {
    if p.get("inline_message_id").is_some() && p.get("chat_id").is_none() {
        return fail(400, "Bad Request: MESSAGE_ID_INVALID");
    }
    let chat = match chat_param(p) {
        Ok(c) => c,
        Err(o) => return o,
    };
    let Some(message_id) = int_param(p, "message_id") else {
        return fail(400, "Bad Request: message identifier is not specified");
    };
    if st.blocked.contains(&chat) {
        return fail(403, BLOCKED);
    }
    if let Some(o) = migrated(st, chat) {
        return o;
    }
    let text = if with_text {
        match parse_text(p) {
            Ok(t) => Some(t),
            Err(o) => return o,
        }
    } else {
        None
    };
    let markup = match parse_markup(p, true) {
        Ok(m) => m,
        Err(o) => return o,
    };
    let Some(c) = st.chats.get_mut(&chat) else {
        return fail(400, "Bad Request: message to edit not found");
    };
    let group = c.group;
    let Some(m) = c.find(message_id) else {
        return fail(400, "Bad Request: message to edit not found");
    };
    let same_text = text
        .as_ref()
        .is_none_or(|(plain, ents)| *plain == m.plain && *ents == m.entities);
    if same_text && markup == m.markup {
        return fail(400, NOT_MODIFIED);
    }
    if let Some((plain, entities)) = text {
        m.plain = plain;
        m.entities = entities;
        m.html = p
            .get("text")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
    }
    m.markup = markup;
    m.edits += 1;
    m.edit_date = Some(unix_now());
    let result = message_json(chat, group, m);
    let view = m.view();
    c.history.push(view);
    answer(result)
}

fn delete_message(st: &mut State, p: &Value) -> Outcome {
    let chat = match chat_param(p) {
        Ok(c) => c,
        Err(o) => return o,
    };
    let id = int_param(p, "message_id").unwrap_or(0);
    match st.chats.get_mut(&chat).and_then(|c| c.find(id)) {
        Some(m) => {
            m.deleted = true;
            answer(json!(true))
        }
        None => fail(400, "Bad Request: message to delete not found"),
    }
}

fn answer_callback(st: &mut State, p: &Value) -> Outcome {
    let id = match p.get("callback_query_id") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => {
            return fail(
                400,
                "Bad Request: parameter \"callback_query_id\" is required",
            );
        }
    };
    if let Some(t) = p.get("text").and_then(Value::as_str) {
        if t.encode_utf16().count() > 200 {
            return fail(400, "Bad Request: MESSAGE_TOO_LONG");
        }
    }
    // A query can be answered once.
    if st.callbacks.remove(&id) {
        answer(json!(true))
    } else {
        fail(400, QUERY_TOO_OLD)
    }
}

// ---------------------------------------------------------------------------
// HTML parse mode

struct Open {
    name: String,
    kind: &'static str,
    start: usize,
    extra: String,
}

/// Parses Telegram HTML into (plain text, entities), or the detail of the
/// "can't parse entities" error.
fn parse_html(s: &str) -> Result<(String, Vec<Entity>), String> {
    let b = s.as_bytes();
    let mut plain = String::new();
    let mut units = 0usize; // UTF-16 length of `plain`
    let mut stack: Vec<Open> = Vec::new();
    let mut entities = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'<' => {
                let start = i;
                let end = tag_end(b, i + 1)
                    .ok_or_else(|| format!("Unclosed start tag at byte offset {start}"))?;
                let inner = s.get(i + 1..end).unwrap_or("");
                i = end + 1;
                if let Some(name) = inner.strip_prefix('/') {
                    let name = name.trim().to_ascii_lowercase();
                    match stack.pop() {
                        Some(open) if open.name == name => {
                            if units > open.start {
                                entities.push(Entity {
                                    kind: open.kind,
                                    offset: open.start,
                                    length: units - open.start,
                                    extra: open.extra,
                                });
                            }
                        }
                        Some(open) => {
                            return Err(format!(
                                "Unmatched end tag at byte offset {start}, expected \"</{}>\", found \"</{name}>\"",
                                open.name
                            ));
                        }
                        None => return Err(format!("Unexpected end tag at byte offset {start}")),
                    }
                } else {
                    let (name, attrs) = split_tag(inner)
                        .ok_or_else(|| format!("Can't parse start tag at byte offset {start}"))?;
                    let (kind, extra) = tag_kind(&name, &attrs, start)?;
                    check_nesting(&stack, kind, start)?;
                    stack.push(Open {
                        name,
                        kind,
                        start: units,
                        extra,
                    });
                }
            }
            b'>' => {
                return Err(format!(
                    "Character '>' at byte offset {i} must be escaped as &gt;"
                ));
            }
            b'&' => {
                let (ch, len) = decode_entity(&b[i..]).ok_or_else(|| {
                    format!("Character '&' at byte offset {i} must be escaped as &amp;")
                })?;
                plain.push(ch);
                units += ch.len_utf16();
                i += len;
            }
            _ => {
                let ch = s
                    .get(i..)
                    .and_then(|r| r.chars().next())
                    .unwrap_or('\u{fffd}');
                plain.push(ch);
                units += ch.len_utf16();
                i += ch.len_utf8().max(1);
            }
        }
    }
    if let Some(open) = stack.pop() {
        return Err(format!(
            "Can't find end tag corresponding to start tag \"{}\"",
            open.name
        ));
    }
    entities.sort_by_key(|e| (e.offset, std::cmp::Reverse(e.length)));
    Ok((plain, entities))
}

/// Index of the '>' closing a tag that starts before `from`, honouring quotes.
fn tag_end(b: &[u8], from: usize) -> Option<usize> {
    let mut quote = None;
    for (j, &c) in b.iter().enumerate().skip(from) {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, b'"') | (None, b'\'') => quote = Some(c),
            (None, b'>') => return Some(j),
            (None, b'<') => return None,
            _ => {}
        }
    }
    None
}

/// Splits `name attr="v" flag` into the lowercased name and decoded attributes.
fn split_tag(inner: &str) -> Option<(String, Vec<(String, String)>)> {
    let b = inner.as_bytes();
    let is_name = |c: u8| c.is_ascii_alphanumeric() || c == b'-' || c == b'_';
    let mut i = 0;
    while i < b.len() && is_name(b[i]) {
        i += 1;
    }
    if i == 0 {
        return None;
    }
    let name = inner[..i].to_ascii_lowercase();
    let mut attrs = Vec::new();
    loop {
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        if i >= b.len() {
            break;
        }
        let a = i;
        while i < b.len() && is_name(b[i]) {
            i += 1;
        }
        if i == a {
            return None; // e.g. a trailing '/' or garbage
        }
        let key = inner[a..i].to_ascii_lowercase();
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        let mut value = String::new();
        if i < b.len() && b[i] == b'=' {
            i += 1;
            while i < b.len() && b[i].is_ascii_whitespace() {
                i += 1;
            }
            let raw = if i < b.len() && (b[i] == b'"' || b[i] == b'\'') {
                let q = b[i];
                let v0 = i + 1;
                let v1 = v0 + b[v0..].iter().position(|&c| c == q)?;
                i = v1 + 1;
                &b[v0..v1]
            } else {
                let v0 = i;
                while i < b.len() && !b[i].is_ascii_whitespace() {
                    i += 1;
                }
                &b[v0..i]
            };
            value = decode_attr(raw)?;
        }
        attrs.push((key, value));
    }
    Some((name, attrs))
}

fn decode_attr(raw: &[u8]) -> Option<String> {
    let mut out = String::new();
    let mut i = 0;
    while i < raw.len() {
        if raw[i] == b'&' {
            let (ch, len) = decode_entity(&raw[i..])?;
            out.push(ch);
            i += len;
        } else {
            let end = raw[i..]
                .iter()
                .position(|&c| c == b'&')
                .map_or(raw.len(), |p| i + p);
            out.push_str(&String::from_utf8_lossy(&raw[i..end]));
            i = end;
        }
    }
    Some(out)
}

/// Decodes the entity at the start of `b` (which starts with '&'): the named
/// `&lt; &gt; &amp; &quot;` and numeric ones. Returns the char and the byte length.
fn decode_entity(b: &[u8]) -> Option<(char, usize)> {
    let semi = b.iter().take(12).position(|&c| c == b';')?;
    let name = std::str::from_utf8(&b[1..semi]).ok()?;
    let ch = match name {
        "lt" => '<',
        "gt" => '>',
        "amp" => '&',
        "quot" => '"',
        _ => {
            let num = name.strip_prefix('#')?;
            let code = match num.strip_prefix(['x', 'X']) {
                Some(hex) if !hex.is_empty() && hex.bytes().all(|c| c.is_ascii_hexdigit()) => {
                    u32::from_str_radix(hex, 16).ok()?
                }
                Some(_) => return None,
                None if !num.is_empty() && num.bytes().all(|c| c.is_ascii_digit()) => {
                    num.parse().ok()?
                }
                None => return None,
            };
            char::from_u32(code).filter(|&c| c != '\0')?
        }
    };
    Some((ch, semi + 1))
}

fn tag_kind(
    name: &str,
    attrs: &[(String, String)],
    at: usize,
) -> Result<(&'static str, String), String> {
    let attr = |k: &str| attrs.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    Ok(match name {
        "b" | "strong" => ("b", String::new()),
        "i" | "em" => ("i", String::new()),
        "u" | "ins" => ("u", String::new()),
        "s" | "strike" | "del" => ("s", String::new()),
        "tg-spoiler" => ("tg-spoiler", String::new()),
        "span" => match attr("class") {
            Some("tg-spoiler") => ("tg-spoiler", String::new()),
            _ => {
                return Err(format!(
                    "Tag \"span\" must have class \"tg-spoiler\" at byte offset {at}"
                ));
            }
        },
        "code" => {
            let lang = attr("class")
                .and_then(|c| c.strip_prefix("language-"))
                .unwrap_or("");
            ("code", lang.to_string())
        }
        "pre" => ("pre", String::new()),
        "a" => match attr("href") {
            Some(h) if !h.trim().is_empty() => ("a", h.to_string()),
            _ => {
                return Err(format!(
                    "Tag \"a\" at byte offset {at} must have a non-empty href"
                ));
            }
        },
        "blockquote" => (
            "blockquote",
            if attr("expandable").is_some() {
                "expandable".to_string()
            } else {
                String::new()
            },
        ),
        other => {
            return Err(format!(
                "Unsupported start tag \"{other}\" at byte offset {at}"
            ));
        }
    })
}

fn check_nesting(stack: &[Open], kind: &str, at: usize) -> Result<(), String> {
    if let Some(top) = stack.last() {
        let ok = match top.kind {
            "code" => false,
            "pre" => kind == "code",
            _ => true,
        };
        if !ok {
            return Err(format!(
                "Entities can't be nested inside \"{}\" (tag at byte offset {at})",
                top.name
            ));
        }
    }
    if (kind == "blockquote" || kind == "a") && stack.iter().any(|o| o.kind == kind) {
        return Err(format!(
            "Tag \"{kind}\" at byte offset {at} can't be nested in itself"
        ));
    }
    Ok(())
}
