//! Maintenance silence (issue 15): an operator holds back a server's alerts
//! until a target time. Pressing again extends it or does nothing. When it
//! ends (on time, which the prober notices, or by the button) one message
//! tells the chats the server's judged health, and only when it differs from
//! what they were last told: no replay of what happened meanwhile. The check
//! every alert makes is `ServerState::silenced`; the alerts themselves go to
//! the chats through `alert_everyone`.

use crate::audit;
use crate::clock::rfc3339;
use crate::config::{Role, Server};
use crate::history::Kind;
use crate::locale::Tr;
use crate::notify;
use crate::screen;
use crate::shared::Shared;
use crate::state::{Health, ServerState, Silence, StateData};
use crate::telegram::User;

/// What ending a silence did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ended {
    /// A silence was in force (not only one that had run out unnoticed).
    pub was_on: bool,
    /// A message went into the outbox: wake the notifier.
    pub told: bool,
}

/// Silences `server` for `hours` times `Timing::silence_hour` from `now_ms`
/// (unix ms), on behalf of `user`, and audits it. Returns the new end (unix
/// ms) when it changed, and whether a message went into the outbox (a
/// silence that had run out unnoticed ended first).
pub fn set(
    shared: &Shared,
    server: &Server,
    user: &User,
    hours: u32,
    now_ms: u64,
) -> (Option<u64>, bool) {
    let length = shared.settings.timing.silence_hour.saturating_mul(hours);
    let target = now_ms.saturating_add(length.as_millis() as u64);
    let (changed, told) = shared.store.update(|d| {
        let ran_out = d
            .servers
            .get(&server.name)
            .is_some_and(|s| s.silence.is_some() && !s.silenced(now_ms));
        let told = ran_out && end_in(shared, server, d, now_ms);
        let state = d.servers.entry(server.name.clone()).or_default();
        (extend(state, user, target, now_ms), told)
    });
    if changed {
        log::info!(
            "server '{}': silenced until {} by user {}",
            server.name,
            rfc3339(target / 1000),
            user.id
        );
        let result = format!("until {}", rfc3339(target / 1000));
        audit::append(
            &shared.settings.state_dir,
            &audit::Record::by_user(user, &server.name, None, "silence", &result),
        );
    }
    (changed.then_some(target), told)
}

/// Sets the silence of `state` to end at `target` (unix ms), or extends it
/// there; a silence that lasts longer already stays as it is. Returns
/// whether anything changed.
pub fn extend(state: &mut ServerState, user: &User, target: u64, now_ms: u64) -> bool {
    let since = match &state.silence {
        Some(s) if s.until_ms >= target => return false,
        Some(s) => s.since,
        None => now_ms / 1000,
    };
    state.silence = Some(Silence {
        since,
        until_ms: target,
        by_id: user.id,
        by: user.name.clone(),
    });
    state
        .history_mut()
        .plan(Kind::Silenced, since, target.div_ceil(1000));
    true
}

/// Ends the silence of `server` now, on behalf of `user` (the button), and
/// audits it.
pub fn end(shared: &Shared, server: &Server, user: &User, now_ms: u64) -> Ended {
    let ended = shared.store.update(|d| {
        let was_on = d
            .servers
            .get(&server.name)
            .is_some_and(|s| s.silenced(now_ms));
        let told = end_in(shared, server, d, now_ms);
        Ended { was_on, told }
    });
    if ended.was_on {
        log::info!(
            "server '{}': silence ended by user {}",
            server.name,
            user.id
        );
        audit::append(
            &shared.settings.state_dir,
            &audit::Record::by_user(user, &server.name, None, "silence_end", "ended"),
        );
    }
    ended
}

/// Ends the silence of `server` inside a store update at `now_ms`: its span
/// in the history ends now (or at its planned end, if that came first), and
/// when the judged health differs from what the chats were last told, one
/// message tells them. Returns whether a message went into the outbox.
pub fn end_in(shared: &Shared, server: &Server, d: &mut StateData, now_ms: u64) -> bool {
    let Some(state) = d.servers.get_mut(&server.name) else {
        return false;
    };
    let Some(silence) = state.silence.take() else {
        return false;
    };
    let now = now_ms / 1000;
    let end = silence.until_ms.min(now_ms).div_ceil(1000);
    state.history_mut().plan(Kind::Silenced, silence.since, end);
    let Some(health) = after(state.health, state.announced) else {
        return false;
    };
    state.announced = Some(health);
    let since = state.since.unwrap_or(now);
    let cause = state
        .history
        .spans
        .iter()
        .rev()
        .find(|s| s.kind == Kind::Down && s.to.is_none())
        .and_then(|s| s.cause.clone());
    let down = health == Health::Down;
    log::info!(
        "server '{}': silence over; telling that it is {}",
        server.name,
        if down { "DOWN" } else { "up" }
    );
    alert_everyone(shared, server, d, down, |tr| {
        let zone = &shared.settings.timezone;
        screen::silence_over(tr, zone, server, health, since, now, cause.as_deref())
    });
    true
}

/// What the end of a silence must say: the judged health, when it differs
/// from what the chats were last told (nothing told yet counts as up); an
/// unjudged server (monitoring off) says nothing.
pub fn after(health: Option<Health>, announced: Option<Health>) -> Option<Health> {
    let health = health?;
    (health != announced.unwrap_or(Health::Up)).then_some(health)
}

/// Puts an alert about `server` into the outbox for every admin and alert
/// chat, each in its language; a DOWN alert carries the silence buttons,
/// except in a viewer's private chat.
pub fn alert_everyone(
    shared: &Shared,
    server: &Server,
    d: &mut StateData,
    down: bool,
    text: impl Fn(Tr) -> String,
) {
    let settings = &shared.settings;
    for place in shared.recipients(d, &settings.everyone()) {
        let tr = shared.tr_for(d, place.chat);
        // Not in a viewer's own chat: there nobody could press them. In an
        // alert chat whoever presses is checked by role.
        let viewer_only = settings.role_of(place.chat) == Some(Role::Viewer);
        let keyboard = (down && !viewer_only).then(|| screen::alert_keyboard(tr, server));
        notify::enqueue(d, place, text(tr), keyboard);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Health::{Down, Up};

    #[test]
    fn the_end_of_a_silence_says_only_what_changed() {
        // (judged now, last told) → what to say.
        let cases = [
            (None, None, None),
            (None, Some(Down), None),
            (Some(Up), None, None),
            (Some(Up), Some(Up), None),
            (Some(Up), Some(Down), Some(Up)),
            (Some(Down), None, Some(Down)),
            (Some(Down), Some(Up), Some(Down)),
            (Some(Down), Some(Down), None),
        ];
        for (health, announced, said) in cases {
            assert_eq!(after(health, announced), said, "{health:?} {announced:?}");
        }
    }

    #[test]
    fn a_silence_is_a_target_that_only_grows() {
        let user = |id| User {
            id,
            name: format!("U{id}"),
            language_code: None,
            anonymous: false,
        };
        let mut state = ServerState::default();
        assert!(extend(&mut state, &user(1), 3_600_000, 0));
        assert!(state.silenced(3_599_999) && !state.silenced(3_600_000));
        // The same press again, a shorter one: nothing changes.
        assert!(!extend(&mut state, &user(2), 3_600_000, 5_000));
        assert!(!extend(&mut state, &user(2), 1_000_000, 5_000));
        assert_eq!(state.silence.as_ref().unwrap().by_id, 1);
        // A longer one extends it, from the same start, and names who did.
        assert!(extend(&mut state, &user(2), 14_400_000, 60_000));
        let silence = state.silence.clone().unwrap();
        assert_eq!((silence.since, silence.by_id), (0, 2));
        assert_eq!(state.history.spans.len(), 1);
        assert_eq!(state.history.spans[0].to, Some(14_400));
    }
}
