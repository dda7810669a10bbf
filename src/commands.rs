//! The short-lived `commands` thread: registers the command lists shown in
//! Telegram's menu (`setMyCommands`): /start, /status and /help for
//! everyone in every shipped language, and /audit besides for each
//! operator's private chat (`BotCommandScopeChat`). Each call is retried
//! with backoff in the background, so the poller starts at once.

use serde_json::{Value, json};

use crate::locale::{SHIPPED, Tr};
use crate::shared::Shared;
use crate::shutdown::Shutdown;
use crate::telegram::Telegram;
use crate::timing::Backoff;

/// Tries per call before giving up (with backoff: a few minutes in all).
const TRIES: u32 = 10;

pub fn run(shared: &Shared, tg: &Telegram, shutdown: &Shutdown) {
    let locales = &shared.locales;
    let mut langs: Vec<Option<&str>> = vec![None];
    langs.extend(SHIPPED.iter().map(|(code, _)| Some(*code)));
    for lang in langs {
        let tr = locales.tr(lang.unwrap_or(locales.default_lang()));
        let mut params = json!({ "commands": commands(tr, false) });
        if let Some(code) = lang {
            params["language_code"] = json!(code);
        }
        if !call(shared, tg, shutdown, &params) {
            return;
        }
    }
    for &operator in &shared.settings.operators {
        let tr = shared.store.read(|d| shared.tr_for(d, operator));
        let params = json!({
            "commands": commands(tr, true),
            "scope": {"type": "chat", "chat_id": operator},
        });
        if !call(shared, tg, shutdown, &params) {
            return;
        }
    }
}

fn commands(tr: Tr, operator: bool) -> Value {
    let mut list = vec![
        json!({"command": "start", "description": tr.t("cmd_start")}),
        json!({"command": "status", "description": tr.t("cmd_status")}),
        json!({"command": "help", "description": tr.t("cmd_help")}),
    ];
    if operator {
        list.push(json!({"command": "audit", "description": tr.t("cmd_audit")}));
    }
    Value::Array(list)
}

/// One setMyCommands, retried on failure; false when shutting down.
fn call(shared: &Shared, tg: &Telegram, shutdown: &Shutdown, params: &Value) -> bool {
    let mut backoff = Backoff::new(&shared.settings.timing);
    for attempt in 1..=TRIES {
        match tg.call("setMyCommands", params) {
            Ok(_) => return true,
            Err(e) if attempt == TRIES || !e.is_transient() => {
                log::warn!("telegram setMyCommands: {e}; the command menu may be incomplete");
                return true;
            }
            Err(e) => {
                let wait = e.retry_after().unwrap_or_else(|| backoff.next_wait());
                log::warn!(
                    "telegram setMyCommands: {e}; trying again in {} ms",
                    wait.as_millis()
                );
                if shutdown.wait(wait) {
                    return false;
                }
            }
        }
    }
    true
}
