//! The short-lived `commands` thread: registers the command list shown in
//! Telegram's menu (`setMyCommands`) in every shipped language, so that the
//! poller starts at once.

use serde_json::json;

use crate::locale::{Locales, SHIPPED};
use crate::telegram::Telegram;

/// setMyCommands in every shipped language (and the default list).
pub fn run(locales: &Locales, tg: &Telegram) {
    let mut langs: Vec<Option<&str>> = vec![None];
    langs.extend(SHIPPED.iter().map(|(code, _)| Some(*code)));
    for lang in langs {
        let tr = locales.tr(lang.unwrap_or(locales.default_lang()));
        let commands = json!([
            {"command": "start", "description": tr.t("cmd_start")},
            {"command": "status", "description": tr.t("cmd_status")},
            {"command": "help", "description": tr.t("cmd_help")},
        ]);
        let mut params = json!({ "commands": commands });
        if let Some(code) = lang {
            params["language_code"] = json!(code);
        }
        if let Err(e) = tg.call("setMyCommands", &params) {
            log::warn!("telegram setMyCommands: {e}");
        }
    }
}
