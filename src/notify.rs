//! Delivers pushed messages (alerts, forgotten conferences) to chats (SPEC §4):
//! one queue per chat, so a chat that fails never holds up the others;
//! transient failures are retried with backoff until delivered, 429 is
//! honoured, a burst to one chat is merged into one message and paced, never
//! dropped; a chat that refuses for good (blocked, not found) is skipped, and
//! so is a message Telegram refuses as such (400).

use std::collections::BTreeMap;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use crate::bot::{Backoff, Ctx};
use crate::html::units;
use crate::state::Outgoing;
use crate::telegram::Keyboard;

/// At most one message a second to a chat (Telegram's per-chat limit).
const PACE: Duration = Duration::from_secs(1);
/// Merged texts stay below Telegram's 4096 characters.
const MERGE_BUDGET: usize = 4000;

/// Work for the notifier.
pub enum Notice {
    /// Send this (already rendered in the chat's language).
    Send {
        chat_id: i64,
        text: String,
        keyboard: Option<Keyboard>,
    },
    Quit,
}

struct Pending {
    text: String,
    keyboard: Option<Keyboard>,
}

#[derive(Default)]
struct ChatQueue {
    pending: Vec<Pending>,
    next_try: Option<Instant>,
    backoff: Backoff,
}

/// The notifier loop. What is not delivered yet lives in state.json too
/// (the outbox), so that a restart delivers it instead of losing it.
pub fn run(ctx: &Ctx, notices: Receiver<Notice>) {
    let mut chats: BTreeMap<i64, ChatQueue> = BTreeMap::new();
    let mut saved = ctx.store.read(|d| d.outbox.clone());
    for o in &saved {
        chats.entry(o.chat_id).or_default().pending.push(Pending {
            text: o.text.clone(),
            keyboard: o.keyboard.clone(),
        });
    }
    if !saved.is_empty() {
        log::info!(
            "{} undelivered message(s) from before the restart",
            saved.len()
        );
    }
    loop {
        let now = Instant::now();
        let due = chats
            .values()
            .filter(|q| !q.pending.is_empty())
            .map(|q| q.next_try.unwrap_or(now))
            .min();
        let received = match due {
            None => notices.recv().map_err(|_| RecvTimeoutError::Disconnected),
            Some(due) => notices.recv_timeout(due.saturating_duration_since(now)),
        };
        let mut incoming = Vec::new();
        let mut quit = false;
        match received {
            Ok(n) => incoming.push(n),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => quit = true,
        }
        // Whatever else arrived joins the same round, so bursts merge.
        incoming.extend(notices.try_iter());
        for notice in incoming {
            match notice {
                Notice::Quit => quit = true,
                Notice::Send {
                    chat_id,
                    text,
                    keyboard,
                } => chats
                    .entry(chat_id)
                    .or_default()
                    .pending
                    .push(Pending { text, keyboard }),
            }
        }
        // Written before any attempt: a crash mid-send repeats, never loses.
        save(ctx, &chats, &mut saved);
        if quit {
            return;
        }
        let now = Instant::now();
        for (chat_id, queue) in chats.iter_mut() {
            if queue.pending.is_empty() || queue.next_try.is_some_and(|t| t > now) {
                continue;
            }
            deliver(ctx, *chat_id, queue);
        }
        save(ctx, &chats, &mut saved);
        chats
            .retain(|_, q| !q.pending.is_empty() || q.next_try.is_some_and(|t| t > Instant::now()));
    }
}

/// Writes the undelivered messages to state.json when they changed.
fn save(ctx: &Ctx, chats: &BTreeMap<i64, ChatQueue>, saved: &mut Vec<Outgoing>) {
    let now: Vec<Outgoing> = chats
        .iter()
        .flat_map(|(chat_id, q)| {
            q.pending.iter().map(move |p| Outgoing {
                chat_id: *chat_id,
                text: p.text.clone(),
                keyboard: p.keyboard.clone(),
            })
        })
        .collect();
    if now != *saved {
        ctx.store.update(|d| d.outbox = now.clone());
        *saved = now;
    }
}

/// Sends the head of a chat's queue (plain texts merged).
fn deliver(ctx: &Ctx, chat_id: i64, queue: &mut ChatQueue) {
    let (text, keyboard, count) = merge(&queue.pending);
    match ctx.tg.send_message(chat_id, &text, keyboard.as_ref()) {
        Ok(_) => {
            queue.pending.drain(..count);
            queue.backoff.reset();
            queue.next_try = Some(Instant::now() + PACE);
        }
        Err(e) if e.is_permanent_for_chat() => {
            log::warn!("chat {chat_id} does not take messages ({e}); {count} message(s) dropped");
            queue.pending.drain(..count);
            queue.next_try = None;
        }
        // A request Telegram refuses as such (400, 401) fails again however
        // often it is sent: retrying it would hold up every later message.
        Err(e) if !e.is_transient() => {
            log::error!(
                "telegram refused a message to chat {chat_id} ({e}); {count} message(s) dropped"
            );
            queue.pending.drain(..count);
            queue.backoff.reset();
            queue.next_try = None;
        }
        Err(e) => {
            let wait = e.retry_after().unwrap_or_else(|| queue.backoff.next_wait());
            log::warn!(
                "sending to chat {chat_id} failed ({e}); again in {} s",
                wait.as_secs()
            );
            queue.next_try = Some(Instant::now() + wait);
        }
    }
}

/// The first message, or as many plain texts as fit into one.
fn merge(pending: &[Pending]) -> (String, Option<Keyboard>, usize) {
    let first = &pending[0];
    if first.keyboard.is_some() {
        return (first.text.clone(), first.keyboard.clone(), 1);
    }
    let mut text = first.text.clone();
    let mut count = 1;
    for p in &pending[1..] {
        if p.keyboard.is_some() || units(&text) + units(&p.text) + 2 > MERGE_BUDGET {
            break;
        }
        text.push_str("\n\n");
        text.push_str(&p.text);
        count += 1;
    }
    (text, None, count)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telegram::Button;

    fn p(text: &str, kb: bool) -> Pending {
        Pending {
            text: text.into(),
            keyboard: kb.then(|| vec![vec![Button::callback("x", "n")]]),
        }
    }

    #[test]
    fn plain_texts_merge_until_a_keyboard_or_the_budget() {
        let (t, k, n) = merge(&[p("a", false), p("b", false), p("c", true)]);
        assert_eq!((t.as_str(), k.is_none(), n), ("a\n\nb", true, 2));
        let (_, k, n) = merge(&[p("c", true), p("a", false)]);
        assert_eq!((k.is_some(), n), (true, 1));
        let big = "x".repeat(3000);
        let (_, _, n) = merge(&[p(&big, false), p(&big, false)]);
        assert_eq!(n, 1);
    }
}
