//! The notifier thread (`notify`): delivers pushed messages (alerts,
//! forgotten conferences) to chats (SPEC §4).
//!
//! The outbox pattern: producers put messages into the outbox of state.json
//! in the same store update that records why they were sent (`enqueue`),
//! then send `NotifyCmd::Wake`; the notifier removes a message only once it
//! was delivered (or refused for good). So a crash or restart at any moment
//! repeats at most one send and never loses an alert. One pacing and backoff
//! state per chat: a chat that fails never holds up the others; transient
//! failures are retried with backoff, 429 is honoured, a burst to one chat
//! is merged into one message and paced. What a failure means comes from
//! `chat::next_step`, the table the screens use too.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::Instant;

use crate::chat::{Step, next_step};
use crate::html::{to_plain, units};
use crate::shared::Shared;
use crate::state::{Outgoing, StateData};
use crate::telegram::{Keyboard, Place, Telegram};
use crate::timing::Backoff;

/// Pending messages for one chat from which different buttons merge too.
const BACKLOG: usize = 4;
/// Merged texts stay below Telegram's 4096 characters.
const MERGE_BUDGET: usize = 4000;
/// Undelivered messages kept per chat; older ones give way (a long outage
/// must not grow state.json without bound).
const KEEP_PER_CHAT: usize = 50;

/// A command for the notifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotifyCmd {
    /// Only wakes it: the outbox in state.json changed.
    Wake,
    Quit,
}

/// Puts a message for `place` into the outbox (inside a store update).
pub fn enqueue(d: &mut StateData, place: Place, text: String, keyboard: Option<Keyboard>) {
    let id = d.outbox.iter().map(|o| o.id).max().unwrap_or(0) + 1;
    let chat_id = place.chat;
    d.outbox.push(Outgoing {
        id,
        chat_id,
        thread: place.thread,
        text,
        keyboard,
    });
    let queued = d.outbox.iter().filter(|o| o.chat_id == chat_id).count();
    if queued > KEEP_PER_CHAT {
        if let Some(oldest) = d.outbox.iter().position(|o| o.chat_id == chat_id) {
            d.outbox.remove(oldest);
            log::warn!(
                "chat {chat_id}: more than {KEEP_PER_CHAT} undelivered messages; the oldest is dropped"
            );
        }
    }
}

/// When each chat may be tried next.
struct ChatState {
    next_try: Option<Instant>,
    backoff: Backoff,
}

/// The notifier loop.
pub fn run(shared: Arc<Shared>, tg: Telegram, commands: Receiver<NotifyCmd>) {
    let timing = shared.settings.timing;
    let mut chats: BTreeMap<i64, ChatState> = BTreeMap::new();
    // Chats that refused the bot for good, logged once each.
    let mut refused: HashSet<i64> = HashSet::new();
    let waiting = shared.store.read(|d| d.outbox.len());
    if waiting > 0 {
        log::info!("{waiting} undelivered message(s) from before the restart");
    }
    loop {
        let outbox = shared.store.read(|d| d.outbox.clone());
        let now = Instant::now();
        let mut due: Option<Instant> = None;
        let mut pending_chats: Vec<i64> = outbox.iter().map(|o| o.chat_id).collect();
        pending_chats.sort_unstable();
        pending_chats.dedup();
        for chat in pending_chats {
            let state = chats.entry(chat).or_insert_with(|| ChatState {
                next_try: None,
                backoff: Backoff::new(&timing),
            });
            match state.next_try {
                Some(t) if t > now => due = Some(due.map_or(t, |d| d.min(t))),
                _ => {
                    let mine: Vec<&Outgoing> =
                        outbox.iter().filter(|o| o.chat_id == chat).collect();
                    deliver(&shared, &tg, chat, &mine, state, &mut refused);
                    // Something may be left for this chat: look again when it is due.
                    let t = state.next_try.unwrap_or(now);
                    due = Some(due.map_or(t, |d| d.min(t)));
                }
            }
        }
        chats.retain(|_, s| s.next_try.is_some_and(|t| t > Instant::now()));
        let received = match due {
            None => commands.recv().map_err(|_| RecvTimeoutError::Disconnected),
            Some(due) => commands.recv_timeout(due.saturating_duration_since(Instant::now())),
        };
        let mut quit = matches!(
            received,
            Ok(NotifyCmd::Quit) | Err(RecvTimeoutError::Disconnected)
        );
        // Whatever else arrived joins the same round, so bursts merge.
        quit |= commands.try_iter().any(|n| n == NotifyCmd::Quit);
        if quit {
            return;
        }
    }
}

/// Sends the head of a chat's messages (plain texts merged) and removes from
/// the outbox what needs no more tries.
fn deliver(
    shared: &Shared,
    tg: &Telegram,
    chat: i64,
    mine: &[&Outgoing],
    state: &mut ChatState,
    refused: &mut HashSet<i64>,
) {
    if mine.is_empty() {
        return;
    }
    let timing = &shared.settings.timing;
    let (text, keyboard, count) = merge(mine);
    let done: Vec<u64> = mine[..count].iter().map(|o| o.id).collect();
    let remove = || {
        shared
            .store
            .update(|d| d.outbox.retain(|o| !done.contains(&o.id)))
    };
    let place = Place {
        chat,
        thread: mine[0].thread,
    };
    let mut result = tg.send_message(place, &text, keyboard.as_ref(), false);
    if let Err(e) = &result {
        // Telegram cannot take the HTML (say, a broken translation): the
        // alert still goes out, as plain text.
        if matches!(next_step(e), Step::AsPlainText | Step::Drop) {
            log::warn!("telegram refused a message to chat {chat} ({e}); sending it as plain text");
            result = tg.send_message(place, &to_plain(&text), keyboard.as_ref(), true);
        }
    }
    let e = match result {
        Ok(_) => {
            remove();
            refused.remove(&chat);
            state.backoff.reset();
            state.next_try = Some(Instant::now() + timing.pace);
            return;
        }
        Err(e) => e,
    };
    match next_step(&e) {
        Step::Retry(after) => {
            let wait = after.unwrap_or_else(|| state.backoff.next_wait());
            log::warn!(
                "sending to chat {chat} failed ({e}); again in {} ms",
                wait.as_millis()
            );
            state.next_try = Some(Instant::now() + wait);
        }
        Step::Moved(to) => {
            log::warn!(
                "chat {chat} became supergroup {to}; alerts go there from now on; \
                 put {to} into alert-chats in the settings"
            );
            // Remembered, so that the old id is never tried again.
            shared.store.update(|d| {
                d.moved_chats.insert(chat, to);
                for o in d.outbox.iter_mut().filter(|o| o.chat_id == chat) {
                    o.chat_id = to;
                }
            });
            state.next_try = None;
        }
        Step::DropChat => {
            if refused.insert(chat) {
                log::warn!("chat {chat} does not take messages ({e}); its messages are dropped");
            }
            log::debug!("chat {chat}: {count} message(s) dropped");
            remove();
            state.next_try = None;
        }
        Step::Done | Step::SendNew | Step::AsPlainText | Step::Drop => {
            log::error!(
                "telegram refused a message to chat {chat} even as plain text ({e}); \
                 {count} message(s) dropped"
            );
            remove();
            state.backoff.reset();
            state.next_try = None;
        }
    }
}

/// The first message, or as many plain texts as fit into one.
fn merge(pending: &[&Outgoing]) -> (String, Option<Keyboard>, usize) {
    let first = pending[0];
    let mut text = first.text.clone();
    let mut keyboard = first.keyboard.clone();
    let mut count = 1;
    for p in &pending[1..] {
        let elsewhere = p.thread != first.thread;
        // One message carries one set of buttons: alerts of a flapping
        // server (DOWN with its silence buttons, UP without) still merge,
        // a push with other buttons waits for its own message — unless a
        // backlog built up (a flood, Telegram was away): then the texts go
        // together and the later buttons give way (every server's screens
        // still have them), so the backlog drains instead of growing.
        let backlog = pending.len() >= BACKLOG;
        let other_buttons =
            p.keyboard.is_some() && keyboard.is_some() && p.keyboard != keyboard && !backlog;
        if elsewhere || other_buttons || units(&text) + units(&p.text) + 2 > MERGE_BUDGET {
            break;
        }
        text.push_str("\n\n");
        text.push_str(&p.text);
        if keyboard.is_none() {
            keyboard = p.keyboard.clone();
        }
        count += 1;
    }
    (text, keyboard, count)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telegram::Button;

    fn p(id: u64, text: &str, kb: bool) -> Outgoing {
        Outgoing {
            id,
            chat_id: 1,
            thread: None,
            text: text.into(),
            keyboard: kb.then(|| vec![vec![Button::callback("x", "n")]]),
        }
    }

    #[test]
    fn texts_merge_with_at_most_one_set_of_buttons_within_the_budget() {
        let (a, b, c) = (p(1, "a", false), p(2, "b", false), p(3, "c", true));
        let (t, k, n) = merge(&[&a, &b, &c]);
        assert_eq!((t.as_str(), k.is_some(), n), ("a\n\nb\n\nc", true, 3));
        let (t, k, n) = merge(&[&c, &a]);
        assert_eq!((t.as_str(), k.is_some(), n), ("c\n\na", true, 2));
        // Other buttons: not in the same message.
        let mut d = p(6, "d", true);
        d.keyboard = Some(vec![vec![Button::callback("other", "x")]]);
        let (t, _, n) = merge(&[&c, &a, &d]);
        assert_eq!((t.as_str(), n), ("c\n\na", 2));
        let (_, _, n) = merge(&[&c, &c]);
        assert_eq!(n, 2, "the same buttons merge");
        // A backlog: everything merges; the first buttons stay.
        let (t, k, n) = merge(&[&c, &d, &a, &b]);
        assert_eq!((t.as_str(), n), ("c\n\nd\n\na\n\nb", 4));
        assert_eq!(k, c.keyboard);
        let big = "x".repeat(3000);
        let (x, y) = (p(4, &big, false), p(5, &big, false));
        let (_, _, n) = merge(&[&x, &y]);
        assert_eq!(n, 1);
    }

    #[test]
    fn the_outbox_keeps_ids_unique_and_each_chat_bounded() {
        let mut d = StateData::default();
        for i in 0..(KEEP_PER_CHAT + 5) {
            enqueue(&mut d, Place::chat(7), format!("m{i}"), None);
        }
        enqueue(&mut d, Place::chat(8), "other".into(), None);
        assert_eq!(
            d.outbox.iter().filter(|o| o.chat_id == 7).count(),
            KEEP_PER_CHAT
        );
        assert_eq!(d.outbox[0].text, "m5", "the oldest gave way");
        let mut ids: Vec<u64> = d.outbox.iter().map(|o| o.id).collect();
        ids.dedup();
        assert_eq!(ids.len(), d.outbox.len());
    }
}
