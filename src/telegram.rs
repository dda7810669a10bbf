//! The Telegram Bot API (https://core.telegram.org/bots/api): the few wire
//! types we use and the calls. The only place that joins the bot token into a
//! URL. Decides nothing about what to send.

use std::fmt;
use std::time::Duration;

use serde_json::{Value, json};

use crate::config::Secret;
use crate::http::{Client, Limits, NetError, ProxyUrl, Trust};
use crate::timing::Timing;

/// The update kinds we handle (sent as `allowed_updates`).
pub const ALLOWED_UPDATES: &[&str] = &["message", "callback_query"];

/// A Bot API failure.
#[derive(Debug, Clone, PartialEq)]
pub enum TgError {
    /// Telegram answered `ok: false` (https://core.telegram.org/bots/api#making-requests).
    Api {
        code: u16,
        description: String,
        retry_after: Option<u64>,
        /// A group became a supergroup with this id (`parameters.migrate_to_chat_id`).
        migrate_to: Option<i64>,
    },
    /// The request did not get an answer.
    Net(NetError),
    /// The answer was not the JSON envelope (e.g. a proxy's HTML page).
    BadAnswer { status: u16 },
}

impl TgError {
    /// "message is not modified": the screen already shows this; success.
    pub fn is_not_modified(&self) -> bool {
        self.description_contains("message is not modified")
    }

    /// The message cannot be edited any more: send a new one instead.
    pub fn cannot_edit(&self) -> bool {
        matches!(self, TgError::Api { code: 400, .. })
            && (self.description_contains("message to edit not found")
                || self.description_contains("message can't be edited")
                || self.description_contains("message can't be found")
                || self.description_contains("MESSAGE_ID_INVALID"))
    }

    /// The request surely did not take effect: Telegram (or a proxy in
    /// front of it) answered with an error, or no connection was made.
    /// A timeout or a dropped connection may have delivered it.
    pub fn surely_failed(&self) -> bool {
        match self {
            TgError::Api { .. } | TgError::BadAnswer { .. } => true,
            TgError::Net(e) => e.before_request(),
        }
    }

    /// Telegram cannot parse the message's HTML (e.g. a broken translation).
    pub fn cannot_parse(&self) -> bool {
        matches!(self, TgError::Api { code: 400, .. })
            && self.description_contains("can't parse entities")
    }

    /// The chat will never take our messages (blocked, kicked, deleted).
    pub fn is_permanent_for_chat(&self) -> bool {
        match self {
            TgError::Api { code: 403, .. } => true,
            TgError::Api {
                code: 400,
                description,
                ..
            } => {
                let d = description.to_lowercase();
                d.contains("chat not found")
                    || d.contains("user not found")
                    || d.contains("group chat was deactivated")
                    || d.contains("peer_id_invalid")
            }
            _ => false,
        }
    }

    /// Worth trying again later: network trouble, 5xx, 429, a broken answer.
    pub fn is_transient(&self) -> bool {
        match self {
            TgError::Api { code, .. } => *code == 429 || *code >= 500,
            TgError::Net(_) | TgError::BadAnswer { .. } => true,
        }
    }

    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            // Bounded: a bogus value must neither overflow a deadline nor stall us for days.
            TgError::Api {
                retry_after: Some(s),
                ..
            } => Some(Duration::from_secs((*s).clamp(1, 3600))),
            _ => None,
        }
    }

    fn description_contains(&self, needle: &str) -> bool {
        matches!(self, TgError::Api { description, .. } if description.contains(needle))
    }
}

impl fmt::Display for TgError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TgError::Api {
                code, description, ..
            } => write!(f, "{code} {description}"),
            TgError::Net(e) => write!(f, "{e}"),
            TgError::BadAnswer { status } => write!(f, "not a Bot API answer (HTTP {status})"),
        }
    }
}

/// An inline keyboard button.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Button {
    pub text: String,
    pub action: Action,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Action {
    Callback(String),
    Url(String),
}

impl Button {
    pub fn callback(text: impl Into<String>, data: impl Into<String>) -> Button {
        Button {
            text: text.into(),
            action: Action::Callback(data.into()),
        }
    }
    pub fn url(text: impl Into<String>, url: impl Into<String>) -> Button {
        Button {
            text: text.into(),
            action: Action::Url(url.into()),
        }
    }
}

/// Rows of inline buttons.
pub type Keyboard = Vec<Vec<Button>>;

fn keyboard_json(keyboard: &Keyboard) -> Value {
    let rows: Vec<Value> = keyboard
        .iter()
        .map(|row| {
            Value::Array(
                row.iter()
                    .map(|b| match &b.action {
                        Action::Callback(data) => json!({"text": b.text, "callback_data": data}),
                        Action::Url(url) => json!({"text": b.text, "url": url}),
                    })
                    .collect(),
            )
        })
        .collect();
    json!({ "inline_keyboard": rows })
}

/// Where a message goes: a chat, and in a forum group the topic
/// (`message_thread_id`). Taken from every update, so that answers stay in
/// the topic they were asked in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Place {
    pub chat: i64,
    pub thread: Option<i64>,
}

impl Place {
    /// A private chat (or any chat without topics).
    pub fn chat(chat: i64) -> Place {
        Place { chat, thread: None }
    }
}

impl From<&crate::config::AlertChat> for Place {
    fn from(a: &crate::config::AlertChat) -> Place {
        Place {
            chat: a.chat,
            thread: a.thread,
        }
    }
}

/// Who sent an update.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: i64,
    pub name: String,
    pub language_code: Option<String>,
    /// An anonymous group admin (or a channel) writing as the chat: `from`
    /// is Telegram's placeholder, not a person.
    pub anonymous: bool,
}

/// The user id Telegram puts into `from` for anonymous group admins.
pub const GROUP_ANONYMOUS_BOT: i64 = 1_087_968_824;

/// An update we handle, parsed on its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incoming {
    Message {
        from: User,
        place: Place,
        text: String,
    },
    Callback {
        id: String,
        from: User,
        /// The chat (and topic) and message the button sits on; `None` for inline messages.
        place: Option<Place>,
        message_id: Option<i64>,
        data: String,
    },
    /// Anything else (another kind, a message without text or sender).
    Ignored(String),
}

/// Parses one raw update. Returns its id (if it has one) and what it means.
pub fn parse_update(raw: &Value) -> (Option<i64>, Incoming) {
    let id = raw.get("update_id").and_then(Value::as_i64);
    let incoming = if let Some(message) = raw.get("message") {
        match (
            parse_user(message.get("from")),
            message.pointer("/chat/id").and_then(Value::as_i64),
        ) {
            (Some(mut from), Some(chat_id)) => match message.get("text").and_then(Value::as_str) {
                Some(text) => Incoming::Message {
                    from: {
                        from.anonymous |= message.get("sender_chat").is_some();
                        from
                    },
                    place: Place {
                        chat: chat_id,
                        thread: topic_of(message),
                    },
                    text: text.to_string(),
                },
                None => Incoming::Ignored("message without text".into()),
            },
            _ => Incoming::Ignored("message without sender or chat".into()),
        }
    } else if let Some(query) = raw.get("callback_query") {
        match (
            query.get("id").and_then(Value::as_str),
            parse_user(query.get("from")),
        ) {
            (Some(qid), Some(from)) => Incoming::Callback {
                id: qid.to_string(),
                from,
                place: query.get("message").and_then(|m| {
                    Some(Place {
                        chat: m.pointer("/chat/id").and_then(Value::as_i64)?,
                        thread: topic_of(m),
                    })
                }),
                message_id: query.pointer("/message/message_id").and_then(Value::as_i64),
                data: query
                    .get("data")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
            },
            _ => Incoming::Ignored("callback without id or sender".into()),
        }
    } else {
        let kind = raw
            .as_object()
            .and_then(|o| o.keys().find(|k| *k != "update_id").cloned())
            .unwrap_or_else(|| "empty".into());
        Incoming::Ignored(kind)
    };
    (id, incoming)
}

/// The forum topic a message is in. Only messages in topics carry
/// `is_topic_message`; a reply thread in a plain group is no topic.
fn topic_of(message: &Value) -> Option<i64> {
    let in_topic = message.get("is_topic_message").and_then(Value::as_bool) == Some(true);
    let forum = message.pointer("/chat/is_forum").and_then(Value::as_bool) == Some(true);
    match message.get("message_thread_id").and_then(Value::as_i64) {
        Some(thread) if in_topic || forum => Some(thread),
        _ => None,
    }
}

fn parse_user(v: Option<&Value>) -> Option<User> {
    let v = v?;
    let id = v.get("id")?.as_i64()?;
    let mut name = v
        .get("first_name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    if let Some(last) = v.get("last_name").and_then(Value::as_str) {
        name.push(' ');
        name.push_str(last);
    }
    if let Some(user) = v.get("username").and_then(Value::as_str) {
        name = format!("{} (@{user})", name.trim());
    }
    Some(User {
        id,
        anonymous: id == GROUP_ANONYMOUS_BOT,
        name: name.trim().to_string(),
        language_code: v
            .get("language_code")
            .and_then(Value::as_str)
            .map(str::to_string),
    })
}

/// A Bot API client. `Debug` shows no token.
#[derive(Clone)]
pub struct Telegram {
    poll: Client,
    send: Client,
    base: String,
    token: Secret,
}

impl fmt::Debug for Telegram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Telegram")
    }
}

impl Telegram {
    /// A client for the Bot API at `base`, through `proxy` if one is set.
    pub fn new(
        base: &str,
        token: &Secret,
        poll_timeout: Duration,
        timing: &Timing,
        proxy: Option<&ProxyUrl>,
    ) -> Telegram {
        let poll = Limits::telegram_poll(poll_timeout, timing);
        let send = Limits::telegram_send(timing);
        Telegram {
            poll: Client::with_proxy(&Trust::BuiltIn, poll, proxy),
            send: Client::with_proxy(&Trust::BuiltIn, send, proxy),
            base: base.trim_end_matches('/').to_string(),
            token: token.clone(),
        }
    }

    fn call_with(&self, client: &Client, method: &str, params: &Value) -> Result<Value, TgError> {
        let url = format!("{}/bot{}/{method}", self.base, self.token.expose());
        let started = std::time::Instant::now();
        let response = client.post_json(&url, &[], params).map_err(TgError::Net)?;
        log::debug!(
            "telegram {method}: HTTP {} in {} ms",
            response.status,
            started.elapsed().as_millis()
        );
        let envelope: Value =
            serde_json::from_str(&response.body).map_err(|_| TgError::BadAnswer {
                status: response.status,
            })?;
        match envelope.get("ok").and_then(Value::as_bool) {
            Some(true) => Ok(envelope.get("result").cloned().unwrap_or(Value::Null)),
            Some(false) => Err(TgError::Api {
                code: envelope
                    .get("error_code")
                    .and_then(Value::as_u64)
                    .map(|c| c as u16)
                    .unwrap_or(response.status),
                description: envelope
                    .get("description")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
                retry_after: envelope
                    .pointer("/parameters/retry_after")
                    .and_then(Value::as_u64),
                migrate_to: envelope
                    .pointer("/parameters/migrate_to_chat_id")
                    .and_then(Value::as_i64),
            }),
            None => Err(TgError::BadAnswer {
                status: response.status,
            }),
        }
    }

    pub fn call(&self, method: &str, params: &Value) -> Result<Value, TgError> {
        self.call_with(&self.send, method, params)
    }

    /// `getMe`: the bot's username.
    pub fn get_me(&self) -> Result<String, TgError> {
        let me = self.call("getMe", &json!({}))?;
        Ok(me
            .get("username")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string())
    }

    /// `getUpdates` with long polling; returns raw updates.
    pub fn get_updates(
        &self,
        offset: Option<i64>,
        timeout: Duration,
    ) -> Result<Vec<Value>, TgError> {
        let mut params = json!({
            "timeout": timeout.as_secs(),
            "allowed_updates": ALLOWED_UPDATES,
        });
        if let Some(offset) = offset {
            params["offset"] = json!(offset);
        }
        match self.call_with(&self.poll, "getUpdates", &params)? {
            Value::Array(updates) => Ok(updates),
            _ => Err(TgError::BadAnswer { status: 200 }),
        }
    }

    /// `sendMessage` without link previews, in HTML mode unless `plain`;
    /// returns the message id.
    pub fn send_message(
        &self,
        place: Place,
        text: &str,
        keyboard: Option<&Keyboard>,
        plain: bool,
    ) -> Result<i64, TgError> {
        let mut params = json!({
            "chat_id": place.chat,
            "text": text,
            "link_preview_options": {"is_disabled": true},
        });
        if !plain {
            params["parse_mode"] = json!("HTML");
        }
        if let Some(thread) = place.thread {
            params["message_thread_id"] = json!(thread);
        }
        if let Some(k) = keyboard {
            params["reply_markup"] = keyboard_json(k);
        }
        let message = self.call("sendMessage", &params)?;
        Ok(message
            .get("message_id")
            .and_then(Value::as_i64)
            .unwrap_or(0))
    }

    /// `editMessageText` without link previews, in HTML mode unless `plain`;
    /// "not modified" counts as success.
    pub fn edit_message(
        &self,
        chat: i64,
        message_id: i64,
        text: &str,
        keyboard: Option<&Keyboard>,
        plain: bool,
    ) -> Result<(), TgError> {
        let mut params = json!({
            "chat_id": chat,
            "message_id": message_id,
            "text": text,
            "link_preview_options": {"is_disabled": true},
        });
        if !plain {
            params["parse_mode"] = json!("HTML");
        }
        if let Some(k) = keyboard {
            params["reply_markup"] = keyboard_json(k);
        }
        match self.call("editMessageText", &params) {
            Ok(_) => Ok(()),
            Err(e) if e.is_not_modified() => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// `answerCallbackQuery`.
    pub fn answer_callback(
        &self,
        id: &str,
        text: Option<&str>,
        alert: bool,
    ) -> Result<(), TgError> {
        let mut params = json!({"callback_query_id": id});
        if let Some(text) = text {
            params["text"] = json!(crate::html::shorten(text, 199));
            params["show_alert"] = json!(alert);
        }
        self.call("answerCallbackQuery", &params).map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn updates_parse_one_by_one() {
        let raw = json!({"update_id": 5, "message": {"message_id": 1, "from": {"id": 7, "first_name": "Ann", "language_code": "de"}, "chat": {"id": 7, "type": "private"}, "text": "/start"}});
        let (id, inc) = parse_update(&raw);
        assert_eq!(id, Some(5));
        assert!(
            matches!(inc, Incoming::Message { place: Place { chat: 7, thread: None }, ref text, .. } if text == "/start")
        );
        let (_, inc) = parse_update(
            &json!({"update_id": 9, "message": {"message_id": 2, "message_thread_id": 7, "is_topic_message": true, "from": {"id": 7, "first_name": "Ann"}, "chat": {"id": -100, "type": "supergroup", "is_forum": true}, "text": "/start"}}),
        );
        assert!(matches!(
            inc,
            Incoming::Message {
                place: Place {
                    chat: -100,
                    thread: Some(7)
                },
                ..
            }
        ));
        let (_, inc) = parse_update(
            &json!({"update_id": 10, "message": {"message_id": 3, "message_thread_id": 2, "from": {"id": 7, "first_name": "Ann"}, "chat": {"id": -5, "type": "group"}, "text": "hi"}}),
        );
        assert!(
            matches!(
                inc,
                Incoming::Message {
                    place: Place { thread: None, .. },
                    ..
                }
            ),
            "a reply thread in a plain group is no topic"
        );
        let (id, inc) = parse_update(&json!({"update_id": 6, "edited_message": {}}));
        assert_eq!(
            (id, inc),
            (Some(6), Incoming::Ignored("edited_message".into()))
        );
        let (id, inc) = parse_update(
            &json!({"update_id": 8, "callback_query": {"id": "q", "from": {"id": 1, "first_name": "B"}, "message": {"chat": {"id": 1}, "message_id": 3, "date": 0}, "data": "m:1"}}),
        );
        assert_eq!(id, Some(8));
        assert!(matches!(
            inc,
            Incoming::Callback {
                message_id: Some(3),
                ..
            }
        ));
        let (id, inc) = parse_update(&json!("garbage"));
        assert_eq!(id, None);
        assert!(matches!(inc, Incoming::Ignored(_)));
    }

    #[test]
    fn error_kinds() {
        let api = |code, d: &str| TgError::Api {
            code,
            description: d.into(),
            retry_after: None,
            migrate_to: None,
        };
        assert!(
            api(
                400,
                "Bad Request: message is not modified: specified new message content"
            )
            .is_not_modified()
        );
        assert!(api(403, "Forbidden: bot was blocked by the user").is_permanent_for_chat());
        assert!(api(400, "Bad Request: chat not found").is_permanent_for_chat());
        assert!(api(502, "Bad Gateway").is_transient());
        assert!(!api(400, "Bad Request: chat not found").is_transient());
        assert!(api(400, "Bad Request: message to edit not found").cannot_edit());
    }
}
