//! The one module that puts things in front of a person: screens (edited in
//! place or sent anew), plain replies, answers to presses — and the one table
//! (`next_step`) that says what a Telegram failure means, which the notifier
//! uses too. `telegram.rs` stays wire-only; nothing else calls `sendMessage`
//! or `editMessageText`.
//!
//! Interactive screens are shown with `Patience::None` on the poll thread
//! (it never sleeps on Telegram: the person can press again) and with
//! `Patience::Retry` on the server threads, which retry what is safe to
//! repeat: an edit, or a send that never reached Telegram.

use std::time::Duration;

use crate::html::to_plain;
use crate::screen::Screen;
use crate::telegram::{Place, Telegram, TgError};

/// What to do after a Telegram failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Nothing more: it is shown ("message is not modified").
    Done,
    /// A transient failure: try again after this long (`None`: by backoff).
    Retry(Option<Duration>),
    /// The message can no longer be edited: send the screen as a new one.
    SendNew,
    /// The chat refuses the bot for good (blocked, kicked, deleted).
    DropChat,
    /// The group became a supergroup with this id: send there.
    Moved(i64),
    /// Telegram cannot parse the HTML: send the text without tags and without `parse_mode`.
    AsPlainText,
    /// Refused as such (a bad request); sending it again fails again.
    Drop,
}

/// The one table from a Telegram error to the next step.
pub fn next_step(e: &TgError) -> Step {
    if e.is_not_modified() {
        return Step::Done;
    }
    if let TgError::Api {
        migrate_to: Some(chat),
        ..
    } = e
    {
        return Step::Moved(*chat);
    }
    if e.cannot_edit() {
        return Step::SendNew;
    }
    if e.is_permanent_for_chat() {
        return Step::DropChat;
    }
    if e.cannot_parse() {
        return Step::AsPlainText;
    }
    if e.is_transient() {
        return Step::Retry(e.retry_after());
    }
    Step::Drop
}

/// How long a screen may wait for Telegram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Patience {
    /// Never wait (the poll thread): one try, and the fallbacks that need no wait.
    None,
    /// Up to two retries, each after at most this long (the server threads).
    Retry(Duration),
}

/// Puts a screen into a message: edits `message_id`, or sends a new message
/// to `place` when there is none or it can no longer be edited. Returns the
/// message id it ended up in, when it is shown.
pub fn show(
    tg: &Telegram,
    place: Place,
    message_id: Option<i64>,
    screen: &Screen,
    patience: Patience,
) -> Option<i64> {
    deliver(tg, place, message_id, &screen.text, Some(screen), patience)
}

/// Sends a text without buttons to `place`; returns its message id when sent.
pub fn say(tg: &Telegram, place: Place, text: &str, patience: Patience) -> Option<i64> {
    deliver(tg, place, None, text, None, patience)
}

/// Answers a press (a toast or an alert box). Never retried: a press
/// expires within seconds.
pub fn answer(tg: &Telegram, callback_id: &str, text: Option<&str>, alert: bool) {
    if let Err(e) = tg.answer_callback(callback_id, text, alert) {
        log::warn!("telegram answerCallbackQuery: {e}");
    }
}

fn deliver(
    tg: &Telegram,
    mut place: Place,
    mut edit: Option<i64>,
    text: &str,
    screen: Option<&Screen>,
    patience: Patience,
) -> Option<i64> {
    let keyboard = screen.map(|s| &s.keyboard);
    let mut plain = false;
    let mut body = text.to_string();
    let mut retries = 0;
    // Each fallback is taken at most once, so this ends.
    for _ in 0..6 {
        let (method, result) = match edit {
            Some(id) => (
                "editMessageText",
                tg.edit_message(place.chat, id, &body, keyboard, plain)
                    .map(|()| id),
            ),
            None => (
                "sendMessage",
                tg.send_message(place, &body, keyboard, plain),
            ),
        };
        let e = match result {
            Ok(id) => return Some(id),
            Err(e) => e,
        };
        match next_step(&e) {
            Step::Done => return edit,
            Step::SendNew if edit.is_some() => {
                log::debug!("telegram {method}: {e}; sending a new message");
                edit = None;
            }
            Step::Moved(chat) if chat != place.chat => {
                log::info!(
                    "chat {} became supergroup {chat}; the screen goes there",
                    place.chat
                );
                place = Place { chat, thread: None };
                edit = None;
            }
            Step::AsPlainText if !plain => {
                log::warn!("telegram {method}: {e}; sending it as plain text");
                body = to_plain(text);
                plain = true;
            }
            Step::Retry(after) => {
                let Patience::Retry(max) = patience else {
                    log::warn!("telegram {method}: {e}; the screen is not shown");
                    return None;
                };
                // A send that may have reached Telegram is not repeated: it
                // could show the screen twice.
                let safe = edit.is_some() || e.surely_failed();
                let wait = after.unwrap_or(Duration::from_secs(1).min(max));
                if !safe || retries >= 2 || wait > max {
                    log::warn!("telegram {method}: {e}; the screen is not shown");
                    return None;
                }
                retries += 1;
                log::warn!(
                    "telegram {method}: {e}; trying again in {} ms",
                    wait.as_millis()
                );
                std::thread::sleep(wait);
            }
            _ => {
                log::warn!("telegram {method}: {e}");
                return None;
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::NetError;

    fn api(code: u16, description: &str) -> TgError {
        TgError::Api {
            code,
            description: description.into(),
            retry_after: None,
            migrate_to: None,
        }
    }

    #[test]
    fn the_table() {
        let cases = [
            (
                api(400, "Bad Request: message is not modified: x"),
                Step::Done,
            ),
            (
                api(400, "Bad Request: message to edit not found"),
                Step::SendNew,
            ),
            (
                api(400, "Bad Request: message can't be edited"),
                Step::SendNew,
            ),
            (
                api(403, "Forbidden: bot was blocked by the user"),
                Step::DropChat,
            ),
            (
                api(403, "Forbidden: bot was kicked from the group chat"),
                Step::DropChat,
            ),
            (api(400, "Bad Request: chat not found"), Step::DropChat),
            (
                api(
                    400,
                    "Bad Request: can't parse entities: Unsupported start tag \"x\"",
                ),
                Step::AsPlainText,
            ),
            (api(502, "Bad Gateway"), Step::Retry(None)),
            (
                TgError::Api {
                    code: 429,
                    description: "Too Many Requests: retry after 7".into(),
                    retry_after: Some(7),
                    migrate_to: None,
                },
                Step::Retry(Some(Duration::from_secs(7))),
            ),
            (TgError::Net(NetError::Timeout), Step::Retry(None)),
            (TgError::BadAnswer { status: 502 }, Step::Retry(None)),
            (
                TgError::Api {
                    code: 400,
                    description: "Bad Request: group chat was upgraded to a supergroup chat".into(),
                    retry_after: None,
                    migrate_to: Some(-1001),
                },
                Step::Moved(-1001),
            ),
            (api(400, "Bad Request: message text is empty"), Step::Drop),
            (api(401, "Unauthorized"), Step::Drop),
        ];
        for (error, step) in cases {
            assert_eq!(next_step(&error), step, "{error}");
        }
    }
}
