//! Issue 4: continuous monitoring (SPEC §7.8, §8.2) and the delivery of its
//! alerts (§4): probes, the debounce, DOWN/UP/reminders, blocked chats,
//! Telegram failures, restarts, and the Status screen.

use std::time::{Duration, Instant};

use crate::harness::*;
use crate::support::fake_telegram::Reply;
use crate::support::wait_until;

/// Every alert a chat received, one entry per alert (a merged message is
/// split again), shortened to its kind and server: "DOWN Main", "UP Main",
/// "STILL DOWN Main"; anything else as it is.
fn alerts(bot: &Bot, chat: i64) -> Vec<String> {
    alert_texts(bot, chat).iter().map(|t| kind(t)).collect()
}

/// The full texts of every alert a chat received: messages without buttons
/// (screens always have some) or with only silence buttons (a DOWN alert's,
/// also when an UP before it was merged into the same message).
fn alert_texts(bot: &Bot, chat: i64) -> Vec<String> {
    bot.tg
        .messages(chat)
        .iter()
        .filter(|m| {
            m.buttons
                .iter()
                .flatten()
                .all(|(_, data)| data.starts_with("z:"))
        })
        .flat_map(|m| {
            m.plain
                .split("\n\n")
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect()
}

fn kind(text: &str) -> String {
    if let Some(rest) = text.strip_prefix("🔴 ") {
        if let Some((name, _)) = rest.split_once(" is DOWN since ") {
            return format!("DOWN {name}");
        }
        if let Some((name, _)) = rest.split_once(" is still DOWN since ") {
            return format!("STILL DOWN {name}");
        }
    }
    if let Some(rest) = text.strip_prefix("🟢 ") {
        if let Some((name, _)) = rest.split_once(" is UP again since ") {
            return format!("UP {name}");
        }
    }
    text.to_string()
}

/// Waits until `chat` has received `expected.len()` alerts, then asserts that
/// they are exactly `expected`.
#[track_caller]
fn expect_alerts(bot: &Bot, chat: i64, expected: &[&str]) {
    wait_until(WAIT, || alerts(bot, chat).len() >= expected.len());
    assert_eq!(
        alerts(bot, chat),
        expected,
        "chat {chat}; transcript:\n{}",
        bot.transcript(chat)
    );
}

/// The same alerts for every operator and the viewer.
#[track_caller]
fn expect_alerts_everywhere(bot: &Bot, expected: &[&str]) {
    for chat in [OP, OP2, VIEWER] {
        expect_alerts(bot, chat, expected);
    }
}

/// A settings table for `[monitoring]`.
fn monitoring(keys: &str) -> Setup {
    Setup {
        tables: format!("[monitoring]\n{keys}\n"),
        ..Setup::default()
    }
}

/// One server's entry of state.json.
fn saved_state(bot: &Bot, server: &str) -> serde_json::Value {
    let text = std::fs::read_to_string(bot.dir.join("state/state.json")).unwrap_or_default();
    let all: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
    all["servers"][server].clone()
}

/// Waits until the monitor has judged `server` as `health` ("up"/"down").
#[track_caller]
fn wait_health(bot: &Bot, server: &str, health: &str) {
    let judged = wait_until(WAIT, || saved_state(bot, server)["health"] == health);
    assert!(
        judged,
        "'{server}' never judged {health}: {}",
        saved_state(bot, server)
    );
}

/// Asserts that one prober at `interval` probes server `server`: the next
/// `n` probes take at least `n - 2` intervals (two probers would take half).
#[track_caller]
fn one_prober(bot: &Bot, server: usize, n: usize, interval: f64) {
    let fake = bot.srv(server);
    let before = fake.probe_count();
    let started = Instant::now();
    assert!(
        fake.wait_probe_count(WAIT, before + n) >= before + n,
        "probing stopped"
    );
    let least = Duration::from_secs_f64(interval * (n - 2) as f64);
    assert!(
        started.elapsed() >= least,
        "{n} probes in {:?} at one every {interval} s: a second prober?",
        started.elapsed()
    );
}

#[test]
fn monitoring_on_probes_repeatedly_and_off_never_probes() {
    let bot = Bot::start(vec![Srv::new("Watched").monitored(0.05), Srv::new("Quiet")]);
    assert!(
        bot.srv(0).wait_probe_count(WAIT, 5) >= 5,
        "the monitored server is not probed repeatedly"
    );
    // A server whose monitoring is off is never probed: while the watched one
    // was probed ten more times, the quiet one was not once.
    let watched = bot.srv(0).probe_count();
    assert!(bot.srv(0).wait_probe_count(WAIT, watched + 10) >= watched + 10);
    assert_eq!(bot.srv(1).probe_count(), 0);
    // Nothing went wrong, so nobody was told anything.
    for chat in [OP, OP2, VIEWER] {
        assert!(bot.tg.messages(chat).is_empty(), "{}", bot.transcript(chat));
    }
}

#[test]
fn the_status_screen_switches_the_one_prober_on_and_off() {
    let interval = 0.1;
    let mut quiet = Srv::new("Quiet");
    quiet.interval = interval;
    // A second server, always probed, serves as the clock of the test.
    let bot = Bot::start(vec![quiet, Srv::new("Clock").monitored(0.05)]);
    let fake = bot.srv(0);

    let status = bot.open(OP, OP, "Quiet", "Status");
    assert!(
        status.plain.contains("Monitoring is off"),
        "{}",
        status.plain
    );
    let (_, switch_on) = status
        .button("Turn monitoring on")
        .expect("an operator may switch monitoring on");
    // The screen's own live probe is the only one so far.
    assert_eq!(fake.probe_count(), 1);

    let edits = bot.tg.calls_to("editMessageText").len();
    bot.click(OP, OP, &status, "Turn monitoring on");
    let on = bot.wait(OP, |m| {
        m.message_id == status.message_id && m.plain.contains("Monitoring is on")
    });
    assert!(on.plain.contains("checked every 100 ms"), "{}", on.plain);
    assert!(
        on.button("Turn monitoring off").is_some(),
        "{:?}",
        on.buttons
    );
    assert!(
        fake.wait_probe_count(WAIT, 5) >= 5,
        "switching on did not start probing"
    );
    bot.tg.wait_count(WAIT, "editMessageText", edits + 1);

    // Switching on again (a double tap, a re-delivered press) starts no second prober.
    let edits = bot.tg.calls_to("editMessageText").len();
    bot.press(OP, OP, status.message_id, &switch_on);
    assert!(bot.tg.wait_count(WAIT, "editMessageText", edits + 1).len() > edits);
    one_prober(&bot, 0, 10, interval);

    // Switching off stops it: at most a probe already under way finishes.
    let off_screen = bot.tg.last_message(OP).unwrap();
    bot.click(OP, OP, &off_screen, "Turn monitoring off");
    bot.wait(OP, |m| {
        m.message_id == status.message_id && m.plain.contains("Monitoring is off")
    });
    let after_off = fake.probe_count();
    let clock = bot.srv(1).probe_count();
    assert!(bot.srv(1).wait_probe_count(WAIT, clock + 10) >= clock + 10);
    assert!(
        fake.probe_count() <= after_off + 1,
        "probing goes on after switching off"
    );
}

#[test]
fn down_after_the_set_failures_reaches_every_admin_once_and_up_says_how_long() {
    let bot = Bot::start_with(
        vec![Srv::new("Main").monitored(0.05)],
        monitoring("failures_before_down = 3"),
    );
    wait_health(&bot, "Main", "up");
    bot.srv(0).set_up(false);
    expect_alerts_everywhere(&bot, &["DOWN Main"]);
    // Since the first failure of the run, as judged.
    let since = saved_state(&bot, "Main")["since"].as_u64().unwrap();
    for chat in [OP, OP2, VIEWER] {
        let text = &alert_texts(&bot, chat)[0];
        // The reason: the status port refuses connections.
        let head = format!("🔴 Main is DOWN since {}: unreachable (", hhmm(since));
        assert!(text.starts_with(&head), "{text}");
        assert!(text.to_lowercase().contains("refused"), "{text}");
    }
    assert_eq!(saved_state(&bot, "Main")["health"], "down");

    bot.srv(0).set_up(true);
    expect_alerts_everywhere(&bot, &["DOWN Main", "UP Main"]);
    for chat in [OP, OP2, VIEWER] {
        let text = &alert_texts(&bot, chat)[1];
        let (_, duration) = text.split_once("it was down for ").unwrap();
        let n: String = duration.chars().take_while(char::is_ascii_digit).collect();
        assert!(!n.is_empty() && duration.ends_with(" s)."), "{text}");
    }
    assert_eq!(saved_state(&bot, "Main")["health"], "up");
}

#[test]
fn a_503_from_the_status_port_is_a_failure() {
    let bot = Bot::start_with(
        vec![Srv::new("Main").monitored(0.05)],
        monitoring("failures_before_down = 3"),
    );
    wait_health(&bot, "Main", "up");
    let fake = bot.srv(0);
    let before = fake.probe_count();
    fake.set_status_reply(503);
    expect_alerts_everywhere(&bot, &["DOWN Main"]);
    let since = saved_state(&bot, "Main")["since"].as_u64().unwrap();
    assert_eq!(
        alert_texts(&bot, OP)[0],
        format!("🔴 Main is DOWN since {}: HTTP 503.", hhmm(since))
    );
    // Every 503 was answered (and counted) before the DOWN: three of them at least.
    assert!(
        fake.probe_count() >= before + 3,
        "DOWN before three failures"
    );
    fake.set_status_reply(200);
    expect_alerts_everywhere(&bot, &["DOWN Main", "UP Main"]);
}

#[test]
fn a_flapping_status_port_gives_no_alert() {
    let bot = Bot::start_with(
        vec![Srv::new("Main").monitored(0.1)],
        monitoring("failures_before_down = 3"),
    );
    wait_health(&bot, "Main", "up");
    let fake = bot.srv(0);
    for _ in 0..6 {
        // A probe is caught under way and the port goes down under it: one
        // certain failure (perhaps a second one), then the port is back and
        // one probe succeeds — fewer failures in a row than the threshold.
        fake.set_status_hang(true);
        assert!(
            wait_until(WAIT, || fake.held_probes() >= 1),
            "no probe arrived"
        );
        let answered = fake.probe_count();
        fake.set_up(false);
        fake.set_status_hang(false);
        fake.set_up(true);
        assert!(
            wait_until(WAIT, || fake.probe_count() > answered),
            "no probe after the port came back"
        );
    }
    assert_eq!(saved_state(&bot, "Main")["health"], "up");
    // Now it really goes down: that DOWN is the first and only alert anyone gets.
    fake.set_up(false);
    expect_alerts_everywhere(&bot, &["DOWN Main"]);
}

#[test]
fn reminders_repeat_while_down_and_end_with_the_up() {
    let setup = monitoring("failures_before_down = 1\nremind_every_minutes = 0.01");
    let bot = Bot::start_with(vec![Srv::new("Main").monitored(0.05)], setup);
    wait_health(&bot, "Main", "up");
    let fake = bot.srv(0);
    fake.set_up(false);
    let reminded = wait_until(WAIT, || {
        alerts(&bot, OP)
            .iter()
            .filter(|a| *a == "STILL DOWN Main")
            .count()
            >= 2
    });
    assert!(
        reminded,
        "no two reminders; transcript:\n{}",
        bot.transcript(OP)
    );
    fake.set_up(true);
    assert!(wait_until(WAIT, || alerts(&bot, OP).contains(&"UP Main".to_string())));
    // Down again: after the UP the next alert is a new DOWN, not an old reminder.
    fake.set_up(false);
    assert!(wait_until(WAIT, || alerts(&bot, OP)
        .iter()
        .filter(|a| *a == "DOWN Main")
        .count()
        == 2));
    for chat in [OP, OP2, VIEWER] {
        let got = alerts(&bot, chat);
        let up = got.iter().position(|a| a == "UP Main").expect("UP");
        assert_eq!(got[0], "DOWN Main", "{got:?}");
        assert!(up >= 3, "{got:?}");
        assert!(got[1..up].iter().all(|a| a == "STILL DOWN Main"), "{got:?}");
        assert!(
            got[up + 1..].iter().take(1).all(|a| a == "DOWN Main"),
            "{got:?}"
        );
    }
    let reminder = alert_texts(&bot, OP)
        .into_iter()
        .find(|t| t.contains("still DOWN"))
        .unwrap();
    assert!(
        reminder.starts_with("🔴 Main is still DOWN since ") && reminder.ends_with(" now)."),
        "{reminder}"
    );
}

#[test]
fn an_admin_who_blocked_the_bot_does_not_stop_the_others() {
    let bot = Bot::start(vec![Srv::new("Main").monitored(0.05)]);
    wait_health(&bot, "Main", "up");
    bot.tg.block_chat(OP);
    bot.srv(0).set_up(false);
    for chat in [OP2, VIEWER] {
        expect_alerts(&bot, chat, &["DOWN Main"]);
    }
    // The blocked chat was tried once and skipped, not retried: after it
    // unblocks the bot, it gets the next alert, not the old one.
    bot.tg.unblock_chat(OP);
    bot.srv(0).set_up(true);
    for chat in [OP2, VIEWER] {
        expect_alerts(&bot, chat, &["DOWN Main", "UP Main"]);
    }
    expect_alerts(&bot, OP, &["UP Main"]);
    assert_eq!(sends_to(&bot, OP), 2, "one try per alert");
}

#[test]
fn an_alert_due_while_telegram_answers_502_is_delivered_later() {
    let bot = Bot::start(vec![Srv::new("Main").monitored(0.05)]);
    wait_health(&bot, "Main", "up");
    bot.tg.script("sendMessage", Reply::bad_gateway_html());
    bot.tg.script("sendMessage", Reply::bad_gateway_html());
    bot.srv(0).set_up(false);
    expect_alerts_everywhere(&bot, &["DOWN Main"]);
    let sends = bot.tg.calls_to("sendMessage");
    assert_eq!(sends.len(), 5, "three alerts and two failed tries");
}

#[test]
fn an_alert_whose_html_telegram_cannot_parse_is_sent_as_plain_text() {
    let bot = Bot::start(vec![Srv::new("Main").monitored(0.05)]);
    wait_health(&bot, "Main", "up");
    // The first send (to OP, the lowest chat id) is refused as unparsable (a
    // broken translation would do this): the alert still goes out, as the
    // plain text, without parse_mode, and holds up nothing.
    bot.tg.script(
        "sendMessage",
        Reply::error(400, "Bad Request: can't parse entities: unexpected end tag"),
    );
    bot.srv(0).set_up(false);
    expect_alerts_everywhere(&bot, &["DOWN Main"]);
    let to_op: Vec<_> = bot
        .tg
        .calls_to("sendMessage")
        .into_iter()
        .filter(|c| c.int("chat_id") == Some(OP))
        .collect();
    assert_eq!(to_op.len(), 2, "refused once, then sent as plain text");
    assert_eq!(to_op[0].str("parse_mode").as_deref(), Some("HTML"));
    assert_eq!(to_op[1].str("parse_mode"), None);
    let plain = to_op[1].str("text").unwrap();
    assert!(plain.starts_with("🔴 Main is DOWN"), "{plain}");
    assert!(!plain.contains('<'), "tags left in {plain}");
    bot.srv(0).set_up(true);
    expect_alerts_everywhere(&bot, &["DOWN Main", "UP Main"]);
}

#[test]
fn a_429_from_telegram_is_waited_out_as_told() {
    let bot = Bot::start(vec![Srv::new("Main").monitored(0.05)]);
    wait_health(&bot, "Main", "up");
    bot.tg.script("sendMessage", Reply::too_many_requests(2));
    bot.srv(0).set_up(false);
    expect_alerts_everywhere(&bot, &["DOWN Main"]);
    let sends = bot.tg.calls_to("sendMessage");
    assert_eq!(sends.len(), 4, "three alerts and one refused try");
    let refused = &sends[0];
    let chat = refused.int("chat_id").unwrap();
    let again = sends[1..]
        .iter()
        .find(|c| c.int("chat_id") == Some(chat))
        .unwrap();
    // retry_after is 2 s; the backoff alone would have tried again after 1 s.
    let waited = again.at.duration_since(refused.at);
    assert!(
        waited >= Duration::from_millis(1900),
        "tried again after {waited:?}"
    );
}

#[test]
fn an_up_and_the_down_after_it_held_back_by_telegram_arrive_as_one_message() {
    let bot = Bot::start(vec![Srv::new("Main").monitored(0.05)]);
    wait_health(&bot, "Main", "up");
    let fake = bot.srv(0);
    fake.set_up(false);
    expect_alerts_everywhere(&bot, &["DOWN Main"]);
    // Every chat's UP is refused with a 429 for a second; the server is down
    // again before anyone may be tried: both alerts wait in the outbox.
    for _ in [OP, OP2, VIEWER] {
        bot.tg.script("sendMessage", Reply::too_many_requests(1));
    }
    fake.set_up(true);
    wait_health(&bot, "Main", "up");
    assert_eq!(bot.tg.wait_count(WAIT, "sendMessage", 6).len(), 6);
    fake.set_up(false);
    wait_health(&bot, "Main", "down");
    expect_alerts_everywhere(&bot, &["DOWN Main", "UP Main", "DOWN Main"]);
    for chat in [OP, OP2, VIEWER] {
        let merged = bot.tg.last_message(chat).unwrap();
        assert!(
            merged.plain.starts_with("🟢 Main is UP again")
                && merged.plain.contains("\n\n🔴 Main is DOWN"),
            "{}",
            merged.plain
        );
        // The DOWN's silence buttons come along, except in the viewer's chat.
        assert_eq!(merged.buttons.is_empty(), chat == VIEWER, "{merged:?}");
    }
}

#[test]
fn two_servers_down_at_once_both_reach_every_admin() {
    let bot = Bot::start(vec![
        Srv::new("Alpha").monitored(0.05),
        Srv::new("Beta").monitored(0.05),
    ]);
    wait_health(&bot, "Alpha", "up");
    wait_health(&bot, "Beta", "up");
    bot.srv(0).set_up(false);
    bot.srv(1).set_up(false);
    for chat in [OP, OP2, VIEWER] {
        wait_until(WAIT, || alerts(&bot, chat).len() >= 2);
        let mut got = alerts(&bot, chat);
        got.sort();
        assert_eq!(
            got,
            ["DOWN Alpha", "DOWN Beta"],
            "chat {chat}:\n{}",
            bot.transcript(chat)
        );
    }
}

#[test]
fn a_restart_while_down_neither_repeats_nor_loses_an_alert() {
    let mut bot = Bot::start(vec![Srv::new("Main").monitored(0.05)]);
    wait_health(&bot, "Main", "up");
    bot.srv(0).set_status_reply(503);
    expect_alerts_everywhere(&bot, &["DOWN Main"]);
    let before = saved_state(&bot, "Main");
    assert_eq!(before["health"], "down");
    assert!(before["since"].as_u64().is_some(), "{before}");

    bot.restart();
    // The new process probes (and fails) well past the threshold without a new DOWN.
    let probes = bot.srv(0).probe_count();
    assert!(bot.srv(0).wait_probe_count(WAIT, probes + 5) >= probes + 5);
    let after = saved_state(&bot, "Main");
    assert_eq!(
        (&after["health"], &after["since"]),
        (&before["health"], &before["since"])
    );

    bot.srv(0).set_status_reply(200);
    // The UP comes once, and nothing came between the DOWN and it.
    expect_alerts_everywhere(&bot, &["DOWN Main", "UP Main"]);
    wait_health(&bot, "Main", "up");
}

/// `2026-11-25 14:05 UTC` for unix seconds (the proleptic Gregorian calendar).
/// How many sendMessage calls went to `chat`, failed ones included.
fn sends_to(bot: &Bot, chat: i64) -> usize {
    bot.tg
        .calls_to("sendMessage")
        .iter()
        .filter(|c| c.int("chat_id") == Some(chat))
        .count()
}

/// `14:02` (UTC) of unix seconds: the time an alert names.
fn hhmm(unix: u64) -> String {
    let (_, _, _, hour, minute, _) = crate::support::civil(unix as i64);
    format!("{hour:02}:{minute:02}")
}

fn utc_minute(unix: u64) -> String {
    let (year, month, day, hour, minute, _) = crate::support::civil(unix as i64);
    format!("{year:04}-{month:02}-{day:02} {hour:02}:{minute:02} UTC")
}

#[test]
fn the_status_screen_shows_health_since_when_the_interval_and_monitoring() {
    let bot = Bot::start(vec![Srv::new("Main").monitored(0.05), Srv::new("Quiet")]);
    wait_health(&bot, "Main", "up");
    let since = saved_state(&bot, "Main")["since"].as_u64().unwrap();

    let status = bot.open(OP, OP, "Main", "Status");
    let lines: Vec<&str> = status.plain.lines().collect();
    assert_eq!(lines[0], "🖥 Main", "{}", status.plain);
    assert_eq!(lines[1], "✅ The server is up.");
    // Issue 11: the web interface/API and the version the server names.
    assert_eq!(lines[2], "✅ The web interface/API answers.");
    assert_eq!(lines[3], "ℹ️ TrueConf Server 5.5.2.10");
    assert_eq!(lines[4], "🔔 Monitoring is on: checked every 50 ms.");
    let up_since = format!("Up since {} (", utc_minute(since));
    assert!(
        lines[5].starts_with(&up_since) && lines[5].ends_with(" s)."),
        "{}",
        status.plain
    );
    let labels: Vec<String> = status.all_buttons().into_iter().map(|b| b.0).collect();
    assert_eq!(
        labels,
        [
            "🔕 Silence 1 h",
            "🔕 4 h",
            "🔕 24 h",
            "🔕 Turn monitoring off",
            "🔄 Refresh",
            "‹ Back"
        ]
    );

    // Down: the screen says so, with the reason and since when.
    bot.srv(0).set_up(false);
    expect_alerts(&bot, OP, &["DOWN Main"]);
    let since = saved_state(&bot, "Main")["since"].as_u64().unwrap();
    let edits = status.edits;
    let current = bot
        .tg
        .messages(OP)
        .into_iter()
        .find(|m| m.message_id == status.message_id)
        .unwrap();
    bot.click(OP, OP, &current, "Refresh");
    let down = bot.wait(OP, |m| m.message_id == status.message_id && m.edits > edits);
    let lines: Vec<&str> = down.plain.lines().collect();
    assert!(
        lines[1].starts_with("❌ The server does not answer: unreachable ("),
        "{}",
        down.plain
    );
    // The web interface answers while the core does not; no version then.
    assert_eq!(lines[2], "✅ The web interface/API answers.");
    assert_eq!(lines[3], "🔔 Monitoring is on: checked every 50 ms.");
    assert!(
        lines[4].starts_with(&format!("Down since {} (", utc_minute(since))),
        "{}",
        down.plain
    );

    // A viewer sees the same, without the switch; an unwatched server says it is not watched.
    let seen = bot.open(VIEWER, VIEWER, "Main", "Status");
    assert!(seen.plain.contains("Down since"), "{}", seen.plain);
    let labels: Vec<String> = seen.all_buttons().into_iter().map(|b| b.0).collect();
    assert_eq!(labels, ["🔄 Refresh", "‹ Back"]);
    let quiet = bot.open(OP2, OP2, "Quiet", "Status");
    let lines: Vec<&str> = quiet.plain.lines().collect();
    assert_eq!(
        lines[1..],
        [
            "✅ The server is up.",
            "✅ The web interface/API answers.",
            "ℹ️ TrueConf Server 5.5.2.10",
            "🔕 Monitoring is off: no alerts for this server."
        ]
    );
}

#[test]
fn a_probe_under_way_when_monitoring_is_switched_off_gives_no_alert() {
    let bot = Bot::start_with(
        vec![Srv::new("Main").monitored(0.05)],
        monitoring("failures_before_down = 1"),
    );
    wait_health(&bot, "Main", "up");
    let fake = bot.srv(0);
    let status = bot.open(OP, OP, "Main", "Status");
    // The prober's next probe is held; meanwhile an operator switches monitoring off.
    fake.set_status_hang(true);
    assert!(wait_until(WAIT, || fake.held_probes() >= 1));
    bot.click(OP, OP, &status, "Turn monitoring off");
    // The Status screen's own live probe is held too: the switch is stored by now.
    assert!(wait_until(WAIT, || fake.held_probes() >= 2));
    // Both probes fail, the one started before the switch included.
    fake.set_up(false);
    fake.set_status_hang(false);
    fake.set_up(true);
    bot.wait(OP, |m| {
        m.message_id == status.message_id && m.plain.contains("Monitoring is off")
    });
    assert_eq!(saved_state(&bot, "Main")["health"], serde_json::Value::Null);

    // Switched on again while the server is up, then down: that DOWN is the
    // only alert (a stale judgement would have given a DOWN and an UP before).
    let current = bot
        .tg
        .messages(OP)
        .into_iter()
        .find(|m| m.message_id == status.message_id)
        .unwrap();
    bot.click(OP, OP, &current, "Turn monitoring on");
    wait_health(&bot, "Main", "up");
    fake.set_up(false);
    expect_alerts_everywhere(&bot, &["DOWN Main"]);
}

#[test]
fn an_alert_held_by_a_telegram_outage_is_delivered_after_a_restart() {
    let mut bot = Bot::start(vec![Srv::new("Main").monitored(0.05)]);
    wait_health(&bot, "Main", "up");
    for _ in 0..3 {
        bot.tg.script("sendMessage", Reply::bad_gateway_html());
    }
    bot.srv(0).set_up(false);
    // All three first tries fail; the alerts wait for a retry in the outbox.
    assert!(wait_until(WAIT, || bot.tg.calls_to("sendMessage").len() >= 3));
    let state = bot.dir.join("state/state.json");
    assert!(wait_until(WAIT, || std::fs::read_to_string(&state)
        .is_ok_and(|s| s.contains("\"outbox\""))));
    bot.restart();
    expect_alerts_everywhere(&bot, &["DOWN Main"]);
    assert!(wait_until(WAIT, || !std::fs::read_to_string(&state)
        .unwrap_or_default()
        .contains("\"outbox\"")));
}

/// A server given by address is probed by the plain client, one given by
/// name through ureq (whose resolver bounds a hanging DNS lookup): both
/// judge alike, down and up again.
#[test]
fn a_server_given_by_host_name_is_probed_and_judged_like_one_given_by_address() {
    let named = Deployed::with(vec![Srv::new("Main").monitored(0.05)], |text| {
        let text = text.replace("ip = \"127.0.0.1:", "ip = \"localhost:");
        assert!(text.contains("ip = \"localhost:"), "{text}");
        text + "[monitoring]\nfailures_before_down = 1\n"
    });
    let _bot = named.start();
    let fake = named.fake(0);
    fake.wait_probe_count(WAIT, 2);
    fake.set_up(false);
    let down = wait_until(WAIT, || {
        named
            .tg
            .messages(OP)
            .iter()
            .any(|m| m.plain.contains("Main is DOWN") && m.plain.contains("refused"))
    });
    assert!(down, "no DOWN alert:\n{}", named.log());
    fake.set_up(true);
    let up = wait_until(WAIT, || {
        named
            .tg
            .messages(OP)
            .iter()
            .any(|m| m.plain.contains("Main is UP again"))
    });
    assert!(up, "no UP alert:\n{}", named.log());
}
