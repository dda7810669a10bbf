//! Issue 15: what admins of other monitors expect: a maintenance silence
//! (set, held back alerts, its end told once, across restarts, operators
//! only) and the availability history (outages, 24 h / 7 d / 30 d, the
//! 24-hour strip, the 7-day figure in /status; a restart is not an outage).

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use crate::harness::*;
use crate::support::fake_trueconf::{Conf, Participant, session_id_for};
use crate::support::wait_until;

/// The whole state.json (`Null` while there is none).
fn state(bot: &Bot) -> Value {
    std::fs::read_to_string(bot.dir.join("state/state.json"))
        .ok()
        .and_then(|s| serde_json::from_str(&s).ok())
        .unwrap_or(Value::Null)
}

fn server_state(bot: &Bot, name: &str) -> Value {
    state(bot)["servers"][name].clone()
}

/// A server's availability history, as kept in history.json (`Null` while none).
fn history(bot: &Bot, name: &str) -> Value {
    std::fs::read_to_string(bot.dir.join("state/history.json"))
        .ok()
        .and_then(|s| serde_json::from_str::<Value>(&s).ok())
        .map(|all| all[name].clone())
        .unwrap_or(Value::Null)
}

/// Waits until the monitor has judged `name` as `health` ("up"/"down").
#[track_caller]
fn wait_health(bot: &Bot, name: &str, health: &str) {
    assert!(
        wait_until(WAIT, || server_state(bot, name)["health"] == health),
        "'{name}' never judged {health}: {}",
        server_state(bot, name)
    );
}

/// Every message pushed to a chat (not a screen), one entry per alert (a
/// merged message is split again), as first sent.
fn pushed(bot: &Bot, chat: i64) -> Vec<String> {
    bot.tg
        .history(chat)
        .iter()
        .filter(|m| m.edits == 0)
        .filter(|m| {
            !["🖥 ", "Choose a server", "All servers"]
                .iter()
                .any(|screen| m.plain.starts_with(screen))
        })
        .flat_map(|m| {
            m.plain
                .split("\n\n")
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect()
}

/// What each push is about, shortened: "DOWN", "UP", "STILL DOWN",
/// "SILENCE OVER: DOWN", "SILENCE OVER: UP"; anything else as it is.
fn kinds(bot: &Bot, chat: i64) -> Vec<String> {
    pushed(bot, chat)
        .iter()
        .map(|t| {
            if t.starts_with("🔴 Main is DOWN since ") {
                "DOWN".into()
            } else if t.starts_with("🔴 Main is still DOWN since ") {
                "STILL DOWN".into()
            } else if t.starts_with("🟢 Main is UP again since ") {
                "UP".into()
            } else if t.starts_with("🔔 The silence for Main is over. It is DOWN since ") {
                "SILENCE OVER: DOWN".into()
            } else if t.starts_with("🔔 The silence for Main is over. It is up (since ") {
                "SILENCE OVER: UP".into()
            } else {
                t.clone()
            }
        })
        .collect()
}

/// Waits until `chat` got `expected.len()` pushes, then asserts they are exactly those.
#[track_caller]
fn expect_kinds(bot: &Bot, chat: i64, expected: &[&str]) {
    wait_until(WAIT, || kinds(bot, chat).len() >= expected.len());
    assert_eq!(
        kinds(bot, chat),
        expected,
        "chat {chat}; transcript:\n{}",
        bot.transcript(chat)
    );
}

/// A server monitored every 50 ms; "1 h" of silence lasts `hour_ms`.
fn setup(hour_ms: u64) -> Setup {
    Setup {
        tables: format!(
            "[monitoring]\nfailures_before_down = 2\n{}",
            timing(&[("silence_hour_ms", hour_ms)])
        ),
        ..Setup::default()
    }
}

/// Opens the Status screen of Main for `user` in their private chat.
#[track_caller]
fn status(bot: &Bot, user: i64) -> Msg {
    bot.open(user, user, "Main", "📊 Status")
}

/// The current version of a message.
fn current(bot: &Bot, chat: i64, message_id: i64) -> Msg {
    bot.tg
        .messages(chat)
        .into_iter()
        .find(|m| m.message_id == message_id)
        .expect("the message exists")
}

/// Every audit record (as JSON) with this action.
fn audited(bot: &Bot, action: &str) -> Vec<Value> {
    std::fs::read_to_string(bot.dir.join("state/audit.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|r| r["action"] == action)
        .collect()
}

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

use crate::support::fake_telegram::Msg;

// ---------------------------------------------------------------------------
// Maintenance silence

#[test]
fn a_silenced_server_going_down_alerts_nobody_and_its_end_is_told_once() {
    let bot = Bot::start_with(vec![Srv::new("Main").monitored(0.05)], setup(3000));
    wait_health(&bot, "Main", "up");
    let screen = status(&bot, OP);
    let silenced = bot.tap(OP, OP, &screen, "🔕 Silence 1 h", "🔕 Silenced until ");
    assert!(
        silenced
            .plain
            .contains(" UTC by @user1001: no alerts for this server."),
        "{}",
        silenced.plain
    );
    assert!(
        silenced.button("🔔 End silence").is_some(),
        "{:?}",
        silenced.buttons
    );
    let silence = server_state(&bot, "Main")["silence"].clone();
    assert_eq!(silence["by_id"], OP, "{silence}");
    // The audit log says who silenced which server until when.
    let record = &audited(&bot, "silence")[0];
    assert_eq!(
        (record["user_id"].clone(), record["server"].clone()),
        (json!(OP), json!("Main"))
    );
    assert!(
        record["result"].as_str().unwrap().starts_with("until 20"),
        "{record}"
    );

    // The server goes down while silenced: it is judged, nobody is told.
    bot.srv(0).set_up(false);
    wait_health(&bot, "Main", "down");
    assert!(
        server_state(&bot, "Main")["silence"]["until_ms"]
            .as_u64()
            .unwrap()
            > now_unix() * 1000,
        "the silence ran out before the server was judged down: give it a longer hour"
    );
    assert_eq!(state(&bot)["outbox"], Value::Null, "an alert was queued");
    // The status screen and /status show the silence.
    let again = status(&bot, VIEWER);
    assert!(
        again.plain.contains("🔕 Silenced until "),
        "{}",
        again.plain
    );
    bot.say(OP, OP, "/status");
    let overview = bot.wait(OP, |m| m.plain.starts_with("All servers"));
    assert!(
        overview.plain.contains("🔕 silenced until ") && overview.plain.contains(" by @user1001"),
        "{}",
        overview.plain
    );

    // The silence runs out: one message tells how the server is now.
    for chat in [OP, OP2, VIEWER] {
        expect_kinds(&bot, chat, &["SILENCE OVER: DOWN"]);
    }
    let over = pushed(&bot, OP).pop().unwrap();
    assert!(over.contains(": unreachable ("), "{over}");
    // Operators may silence it again from that message; viewers get no buttons.
    let last = bot.tg.last_message(OP).unwrap();
    assert!(
        last.button("🔕 Silence 1 h").is_some(),
        "{:?}",
        last.buttons
    );
    assert!(bot.tg.last_message(VIEWER).unwrap().buttons.is_empty());
    assert!(server_state(&bot, "Main")["silence"].is_null());

    // Back up: told as ever, since the chats were told it is down.
    bot.srv(0).set_up(true);
    for chat in [OP, OP2, VIEWER] {
        expect_kinds(&bot, chat, &["SILENCE OVER: DOWN", "UP"]);
    }
}

#[test]
fn ending_a_silence_by_the_button_tells_the_state_once_without_a_replay() {
    let bot = Bot::start_with(vec![Srv::new("Main").monitored(0.05)], setup(600_000));
    wait_health(&bot, "Main", "up");
    let screen = status(&bot, OP);
    let silenced = bot.tap(OP, OP, &screen, "🔕 4 h", "🔕 Silenced until ");

    // Down, up and down again while silenced: nothing is told.
    let fake = bot.srv(0);
    fake.set_up(false);
    wait_health(&bot, "Main", "down");
    fake.set_up(true);
    wait_health(&bot, "Main", "up");
    fake.set_status_reply(503);
    wait_health(&bot, "Main", "down");
    assert!(pushed(&bot, OP).is_empty(), "{}", bot.transcript(OP));

    // The button ends it: one message, the state now, no replay.
    let ended = bot.tap(OP, OP, &silenced, "🔔 End silence", "");
    assert!(!ended.plain.contains("Silenced until"), "{}", ended.plain);
    assert!(ended.button("🔔 End silence").is_none());
    for chat in [OP, OP2, VIEWER] {
        expect_kinds(&bot, chat, &["SILENCE OVER: DOWN"]);
    }
    assert!(
        pushed(&bot, OP)[0].ends_with(": HTTP 503."),
        "{:?}",
        pushed(&bot, OP)
    );
    assert_eq!(audited(&bot, "silence_end").len(), 1);

    // Silenced again, and ended while the state is what the chats were
    // told: nothing to say. The UP after it is the next message.
    let again = bot.tap(OP, OP, &ended, "🔕 Silence 1 h", "🔕 Silenced until ");
    let over = bot.tap(OP, OP, &again, "🔔 End silence", "");
    assert!(!over.plain.contains("Silenced until"), "{}", over.plain);
    fake.set_status_reply(200);
    for chat in [OP, OP2, VIEWER] {
        expect_kinds(&bot, chat, &["SILENCE OVER: DOWN", "UP"]);
    }
}

#[test]
fn a_repeated_silence_press_extends_it_or_does_nothing() {
    let bot = Bot::start_with(vec![Srv::new("Main").monitored(0.05)], setup(600_000));
    let screen = status(&bot, OP);
    let four = data(&screen, "🔕 4 h");
    let one = data(&screen, "🔕 Silence 1 h");
    bot.press(OP, OP, screen.message_id, &four);
    assert!(wait_until(WAIT, || !server_state(&bot, "Main")["silence"].is_null()));
    let until = || {
        server_state(&bot, "Main")["silence"]["until_ms"]
            .as_u64()
            .unwrap()
    };
    let first = until();
    // A shorter one, and the same press re-delivered: nothing changes.
    let edits = bot.tg.calls_to("editMessageText").len();
    bot.press(OP2, OP, screen.message_id, &one);
    bot.press(OP, OP, screen.message_id, &one);
    // The Status screen after them comes from the same server thread, so
    // both presses have been handled when it shows.
    bot.tg.wait_count(WAIT, "editMessageText", edits + 2);
    status(&bot, OP);
    assert_eq!(until(), first);
    assert_eq!(server_state(&bot, "Main")["silence"]["by_id"], OP);
    assert_eq!(audited(&bot, "silence").len(), 1);
    // A longer one extends it, and names who did.
    let twenty_four = data(&screen, "🔕 24 h");
    bot.press(OP2, OP, screen.message_id, &twenty_four);
    assert!(wait_until(WAIT, || audited(&bot, "silence").len() == 2));
    assert!(until() > first);
    assert_eq!(server_state(&bot, "Main")["silence"]["by_id"], OP2);
}

#[test]
fn a_silence_survives_a_restart_and_ends_on_time_after_it() {
    let mut bot = Bot::start_with(vec![Srv::new("Main").monitored(0.05)], setup(4000));
    wait_health(&bot, "Main", "up");
    let screen = status(&bot, OP);
    bot.tap(OP, OP, &screen, "🔕 Silence 1 h", "🔕 Silenced until ");
    bot.restart();

    let after = status(&bot, OP2);
    assert!(
        after.plain.contains("🔕 Silenced until ") && after.plain.contains(" by @user1001"),
        "{}",
        after.plain
    );
    bot.srv(0).set_up(false);
    wait_health(&bot, "Main", "down");
    assert!(
        server_state(&bot, "Main")["silence"]["until_ms"]
            .as_u64()
            .unwrap()
            > now_unix() * 1000,
        "the silence ran out before the server was judged down: give it a longer hour"
    );
    // Told once, when the silence runs out, and never the DOWN itself.
    for chat in [OP, OP2, VIEWER] {
        expect_kinds(&bot, chat, &["SILENCE OVER: DOWN"]);
    }
}

#[test]
fn a_viewer_or_a_stranger_cannot_silence_or_end_a_silence() {
    let bot = Bot::start_with(vec![Srv::new("Main").monitored(0.05)], setup(600_000));
    let op_screen = status(&bot, OP);
    let silence = data(&op_screen, "🔕 Silence 1 h");
    let key = silence.split(':').nth(1).unwrap().to_string();

    // The viewer's screen has no such buttons; forged presses change nothing.
    let viewer_screen = status(&bot, VIEWER);
    let labels = labels(&viewer_screen);
    assert!(
        !labels
            .iter()
            .any(|l| l.contains("Silence") || l.contains("silence")),
        "{labels:?}"
    );
    let id = bot.press(VIEWER, VIEWER, viewer_screen.message_id, &silence);
    assert_eq!(
        bot.toast(&id).as_deref(),
        Some("Only operators may do this.")
    );
    let id = bot.press(STRANGER, STRANGER, 1, &format!("z:{key}:24"));
    assert_eq!(bot.toast(&id).as_deref(), Some("⛔ Access denied."));
    // Handled in order: once the operator's own press shows, the forged ones were seen.
    let silenced = bot.tap(OP, OP, &op_screen, "🔕 Silence 1 h", "🔕 Silenced until ");
    let silence_state = server_state(&bot, "Main")["silence"].clone();
    assert_eq!(silence_state["by_id"], OP, "{silence_state}");
    assert_eq!(audited(&bot, "silence").len(), 1);

    // Nor can they end it.
    let id = bot.press(
        VIEWER,
        VIEWER,
        viewer_screen.message_id,
        &format!("w:{key}"),
    );
    assert_eq!(
        bot.toast(&id).as_deref(),
        Some("Only operators may do this.")
    );
    let id = bot.press(STRANGER, STRANGER, 1, &format!("w:{key}"));
    assert_eq!(bot.toast(&id).as_deref(), Some("⛔ Access denied."));
    // Viewers see it, without the button that ends it.
    let seen = status(&bot, VIEWER);
    assert!(seen.plain.contains("🔕 Silenced until "), "{}", seen.plain);
    assert!(seen.button("End silence").is_none());
    assert_eq!(server_state(&bot, "Main")["silence"], silence_state);
    assert!(audited(&bot, "silence_end").is_empty());
    // The operator's screen still offers to end it.
    assert!(
        current(&bot, OP, silenced.message_id)
            .button("🔔 End silence")
            .is_some()
    );
}

#[test]
fn a_down_alert_offers_operators_the_silence_and_viewers_nothing() {
    let bot = Bot::start_with(vec![Srv::new("Main").monitored(0.05)], setup(600_000));
    wait_health(&bot, "Main", "up");
    bot.srv(0).set_up(false);
    for chat in [OP, OP2, VIEWER] {
        expect_kinds(&bot, chat, &["DOWN"]);
    }
    let alert = bot.tg.last_message(OP).unwrap();
    assert_eq!(labels(&alert), ["🔕 Silence 1 h", "🔕 4 h", "🔕 24 h"]);
    assert!(bot.tg.last_message(VIEWER).unwrap().buttons.is_empty());
    // Pressed on the alert: silenced, and the alert shows the Status screen.
    let screen = bot.tap(OP, OP, &alert, "🔕 Silence 1 h", "🔕 Silenced until ");
    assert!(screen.plain.starts_with("🖥 Main\n"), "{}", screen.plain);
    // The UP while silenced is not told; ending the silence tells it once.
    bot.srv(0).set_up(true);
    wait_health(&bot, "Main", "up");
    bot.tap(OP, OP, &screen, "🔔 End silence", "");
    for chat in [OP, OP2, VIEWER] {
        expect_kinds(&bot, chat, &["DOWN", "SILENCE OVER: UP"]);
    }
}

/// What a new user would try: silence a server, take it down, bring it
/// back, read the status.
#[test]
fn an_outage_during_a_silence_is_shown_as_silenced_and_not_counted() {
    let bot = Bot::start_with(vec![Srv::new("Main").monitored(0.05)], setup(600_000));
    wait_health(&bot, "Main", "up");
    // Seconds are what is kept: let some time up be counted first.
    assert!(wait_until(WAIT, || history(&bot, "Main")["known_from"].is_u64()));
    let known = history(&bot, "Main")["known_from"].as_u64().unwrap();
    assert!(wait_until(WAIT, || now_unix() >= known + 2));
    let screen = status(&bot, OP);
    let silenced = bot.tap(OP, OP, &screen, "🔕 Silence 1 h", "🔕 Silenced until ");
    bot.srv(0).set_up(false);
    wait_health(&bot, "Main", "down");
    // Seconds are what is kept: let the outage last at least one.
    let since = server_state(&bot, "Main")["since"].as_u64().unwrap();
    assert!(wait_until(WAIT, || now_unix() >= since + 2));
    bot.srv(0).set_up(true);
    wait_health(&bot, "Main", "up");

    let read = bot.tap(OP, OP, &silenced, "🔄 Refresh", "Last outages");
    let text = &read.plain;
    assert!(text.contains("📈 Availability: 24 h 100 % ("), "{text}");
    let strip = text.lines().find(|l| l.starts_with('⬜')).unwrap_or("");
    assert!(strip.ends_with('🟦'), "the last hour was silenced: {text}");
    let outage = text.lines().find(|l| l.starts_with("• ")).unwrap_or("");
    assert!(
        outage.contains(" · unreachable (") && outage.ends_with(" (silenced: not counted)"),
        "{text}"
    );
    assert!(pushed(&bot, OP).is_empty(), "{}", bot.transcript(OP));
    // Ended while up, as the chats last knew it: nothing to tell.
    let ended = bot.tap(OP, OP, &read, "🔔 End silence", "");
    assert!(!ended.plain.contains("Silenced until"), "{}", ended.plain);
    assert_eq!(state(&bot)["outbox"], Value::Null);
    assert!(pushed(&bot, OP).is_empty(), "{}", bot.transcript(OP));
}

#[test]
fn a_silenced_server_gets_no_scan_pushes_until_the_silence_ends() {
    let setup = Setup {
        tables: format!(
            "[forgotten]\nafter_minutes = 1\nscan_every_minutes = 0.005\n{}",
            timing(&[("silence_hour_ms", 600_000)])
        ),
        ..Setup::default()
    };
    let bot = Bot::start_with(vec![Srv::new("Main"), Srv::new("Other")], setup);
    let screen = status(&bot, OP);
    let silenced = bot.tap(OP, OP, &screen, "🔕 Silence 1 h", "🔕 Silenced until ");
    for i in 0..2 {
        bot.srv(i)
            .set_conferences(vec![Conf::running("alpha", 7200)]);
        bot.srv(i)
            .set_participants(&session_id_for("alpha"), vec![Participant::new("alice", 2)]);
    }
    // The other server's push shows that scans ran; the silenced one was not scanned.
    let other = |m: &Msg| {
        m.plain
            .starts_with("🕸 Other: a conference looks forgotten.")
    };
    bot.wait(OP, other);
    let calls = |i: usize| {
        bot.srv(i)
            .requests()
            .iter()
            .filter(|r| r.path.ends_with("/logs/calls"))
            .count()
    };
    let (main, other) = (calls(0), calls(1));
    assert!(
        wait_until(WAIT, || calls(1) >= other + 3),
        "the scans stopped"
    );
    assert_eq!(calls(0), main, "a silenced server was scanned");
    assert!(
        !pushed(&bot, OP).iter().any(|t| t.starts_with("🕸 Main")),
        "{}",
        bot.transcript(OP)
    );
    // Ended: the next scan tells what is forgotten now.
    bot.tap(OP, OP, &silenced, "🔔 End silence", "");
    bot.wait(OP, |m| {
        m.plain.starts_with("🕸 Main: a conference looks forgotten.")
    });
}

// ---------------------------------------------------------------------------
// Availability history

/// A state.json entry for a server watched and up since an outage of
/// `length` seconds that began `ago` seconds before `now`.
fn watched_since_outage(now: u64, ago: u64, length: u64) -> Value {
    json!({ "monitoring": true, "health": "up", "since": now - ago + length })
}

/// Its history.json entry: watched for 40 days, with that one outage.
fn history_with_outage(now: u64, ago: u64, length: u64) -> Value {
    json!({
        "known_from": now - 40 * 86_400,
        "spans": [{
            "kind": "down",
            "from": now - ago,
            "to": now - ago + length,
            "cause": "unreachable (connection refused)"
        }]
    })
}

#[test]
fn availability_after_a_scripted_outage_is_right_to_the_second() {
    // The clock seam is the persisted history: outages of known lengths,
    // written before the bot starts. 864 s is exactly 1 % of a day.
    let mut bot = Bot::start(vec![Srv::new("Exact"), Srv::new("OneMore")]);
    bot.stop().unwrap();
    let now = now_unix();
    // Ten minutes into the hour three hours ago, so that the few seconds
    // between writing and reading cannot move it into another cell.
    let ago = 3 * 3600 - 600;
    let state = json!({
        "servers": {
            "Exact": watched_since_outage(now, ago, 864),
            "OneMore": watched_since_outage(now, ago, 865),
        }
    });
    let history = json!({
        "Exact": history_with_outage(now, ago, 864),
        "OneMore": history_with_outage(now, ago, 865),
    });
    std::fs::create_dir_all(bot.dir.join("state")).unwrap();
    std::fs::write(bot.dir.join("state/state.json"), state.to_string()).unwrap();
    std::fs::write(bot.dir.join("state/history.json"), history.to_string()).unwrap();
    bot.restart();

    let exact = bot.open(OP, OP, "Exact", "📊 Status");
    let line = |m: &Msg, prefix: &str| -> String {
        m.plain
            .lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no line {prefix:?} in:\n{}", m.plain))
            .to_string()
    };
    // 1 - 864/86400 = 99 %; 1 - 864/604800 = 99.857 %; 1 - 864/2592000 = 99.966 %.
    assert_eq!(
        line(&exact, "📈"),
        "📈 Availability: 24 h 99.00 % · 7 d 99.85 % · 30 d 99.96 %"
    );
    let one_more = bot.open(OP, OP, "OneMore", "📊 Status");
    assert_eq!(
        line(&one_more, "📈"),
        "📈 Availability: 24 h 98.99 % · 7 d 99.85 % · 30 d 99.96 %"
    );
    // The strip: the hour three hours ago was down, all else up.
    let strip = format!("{}🟥🟩🟩", "🟩".repeat(21));
    assert_eq!(line(&exact, "🟩"), strip, "{}", exact.plain);
    assert!(exact.plain.contains(
        "\nLast 24 h, one square an hour: 🟩 up · 🟥 down · 🟦 silenced · ⬜ monitoring off or unknown"
    ));
    let start = crate::support::civil((now - ago) as i64);
    let outage = format!(
        "• {:04}-{:02}-{:02} {:02}:{:02} UTC · 14 min 24 s · unreachable (connection refused)",
        start.0, start.1, start.2, start.3, start.4
    );
    assert!(
        exact.plain.contains(&format!("Last outages:\n{outage}")),
        "{}",
        exact.plain
    );
    // /status gives each server's 7-day figure.
    bot.say(OP, OP, "/status");
    let overview = bot.wait(OP, |m| m.plain.starts_with("All servers"));
    assert!(
        overview.plain.contains(" user(s) online · 7 d: 99.85 %"),
        "{}",
        overview.plain
    );
}

#[test]
fn an_outage_shows_on_the_status_screen_and_a_restart_is_not_one() {
    let mut bot = Bot::start_with(vec![Srv::new("Main").monitored(0.05)], setup(600_000));
    wait_health(&bot, "Main", "up");
    // Restarts while up: no alert, no outage.
    for _ in 0..2 {
        bot.restart();
        let probes = bot.srv(0).probe_count();
        assert!(bot.srv(0).wait_probe_count(WAIT, probes + 3) >= probes + 3);
    }
    // Seconds are what is kept: let a whole one be watched.
    let known = history(&bot, "Main")["known_from"].as_u64().unwrap();
    assert!(wait_until(WAIT, || now_unix() >= known + 2));
    let screen = status(&bot, OP);
    assert!(
        screen.plain.contains("📈 Availability: 24 h 100 % ("),
        "{}",
        screen.plain
    );
    assert!(
        screen.plain.contains("\nNo outages recorded."),
        "{}",
        screen.plain
    );
    assert!(history(&bot, "Main")["spans"].is_null());
    assert!(pushed(&bot, OP).is_empty(), "{}", bot.transcript(OP));

    // A real outage, over a restart: counted from the persisted judgement.
    bot.srv(0).set_status_reply(503);
    expect_kinds(&bot, OP, &["DOWN"]);
    let since = server_state(&bot, "Main")["since"].as_u64().unwrap();
    bot.restart();
    // Seconds are what is kept: let the outage last at least one.
    assert!(wait_until(WAIT, || now_unix() >= since + 2));
    bot.srv(0).set_status_reply(200);
    expect_kinds(&bot, OP, &["DOWN", "UP"]);
    let spans = history(&bot, "Main")["spans"].clone();
    assert_eq!(spans.as_array().map(Vec::len), Some(1), "{spans}");
    assert_eq!(spans[0]["from"], since, "{spans}");
    assert_eq!(spans[0]["cause"], "HTTP 503", "{spans}");

    let screen = status(&bot, OP);
    assert!(
        screen.plain.contains("📈 Availability: 24 h "),
        "{}",
        screen.plain
    );
    assert!(!screen.plain.contains("24 h 100 %"), "{}", screen.plain);
    let strip = screen
        .plain
        .lines()
        .find(|l| l.starts_with("⬜"))
        .unwrap_or("");
    assert!(
        strip.ends_with('🟥'),
        "the last hour had an outage: {}",
        screen.plain
    );
    assert!(
        screen.plain.contains("Last outages:\n• "),
        "{}",
        screen.plain
    );
    assert!(screen.plain.contains(" · HTTP 503"), "{}", screen.plain);
}

#[test]
fn time_with_monitoring_off_is_not_downtime() {
    let bot = Bot::start_with(vec![Srv::new("Main").monitored(0.05)], setup(600_000));
    wait_health(&bot, "Main", "up");
    bot.srv(0).set_up(false);
    expect_kinds(&bot, OP, &["DOWN"]);
    // Switched off while down: the outage ends, and what follows is not counted.
    let screen = status(&bot, OP);
    let off = bot.tap(
        OP,
        OP,
        &screen,
        "🔕 Turn monitoring off",
        "Monitoring is off",
    );
    let spans = history(&bot, "Main")["spans"].clone();
    assert_eq!(spans[0]["kind"], "down", "{spans}");
    assert!(spans[0]["to"].is_u64(), "the outage did not end: {spans}");
    assert_eq!(spans[1]["kind"], "off", "{spans}");
    assert!(spans[1]["to"].is_null(), "{spans}");
    assert!(off.plain.contains("📈 Availability"), "{}", off.plain);
    // Back on, and up: the time off ends, and no UP is owed (nobody knows
    // what happened while it was off).
    bot.srv(0).set_up(true);
    bot.tap(OP, OP, &off, "🔔 Turn monitoring on", "Monitoring is on");
    wait_health(&bot, "Main", "up");
    let spans = history(&bot, "Main")["spans"].clone();
    assert!(spans[1]["to"].is_u64(), "{spans}");
    assert_eq!(spans.as_array().map(Vec::len), Some(2), "{spans}");
    let screen = status(&bot, OP);
    assert!(!screen.plain.contains("Silenced"), "{}", screen.plain);
    assert_eq!(kinds(&bot, OP), ["DOWN"]);
}
