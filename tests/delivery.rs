//! Issue 12: Telegram delivery done completely — forum topics, alert chats
//! (moved groups, refusing chats), nothing lost silently, a poll thread that
//! never sleeps on Telegram, a bounded poll, start-up calls retried, /audit,
//! alerts in the user's language, floods, anonymous admins.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::harness::*;
use crate::support::fake_telegram::Reply;
use crate::support::fake_trueconf::Conf;
use crate::support::wait_until;
use trueconf_bot::callback::Press;
use trueconf_bot::config::short_key;

/// A forum supergroup whose General topic is closed: anything sent without
/// a topic is refused there.
const FORUM: i64 = -1_001_700;
const TOPIC: i64 = 7;

fn state(bot: &Bot) -> serde_json::Value {
    let text = std::fs::read_to_string(bot.dir.join("state/state.json")).unwrap_or_default();
    serde_json::from_str(&text).unwrap_or_default()
}

fn wait_health(bot: &Bot, health: &str) {
    let judged = wait_until(WAIT, || state(bot)["servers"]["Main"]["health"] == health);
    assert!(judged, "Main never judged {health}: {}", state(bot));
}

#[test]
fn a_command_in_a_forum_topic_is_answered_in_that_topic_and_so_is_a_replacement() {
    let bot = Bot::start(vec![Srv::new("Main")]);
    bot.tg.make_forum(FORUM, true);
    bot.tg.push_topic_message(OP, FORUM, TOPIC, "/start");
    let picker = bot.wait(FORUM, |m| m.plain.contains("Choose a server"));
    assert_eq!(picker.thread, Some(TOPIC), "{}", bot.transcript(FORUM));
    // A press edits in place (edits need no topic).
    let menu = bot.tap(OP, FORUM, &picker, "Main", "What would you like to see?");
    assert_eq!(menu.message_id, picker.message_id);
    // A message that can no longer be edited is replaced in the same topic.
    bot.tg.script(
        "editMessageText",
        Reply::error(400, "Bad Request: message can't be edited"),
    );
    bot.click(OP, FORUM, &menu, "📊 Status");
    let status = bot.wait(FORUM, |m| {
        m.message_id > menu.message_id && m.plain.contains("Monitoring is")
    });
    assert_eq!(status.thread, Some(TOPIC));
    // /help and /status go to the topic too.
    bot.tg.push_topic_message(OP, FORUM, TOPIC, "/help");
    let help = bot.wait(FORUM, |m| m.plain.contains("/help — this text"));
    assert_eq!(help.thread, Some(TOPIC));
    bot.tg.push_topic_message(OP, FORUM, TOPIC, "/status");
    let overview = bot.wait(FORUM, |m| m.plain.starts_with("All servers"));
    assert_eq!(overview.thread, Some(TOPIC));
    let refused = bot
        .tg
        .calls_to("sendMessage")
        .iter()
        .filter(|c| c.int("chat_id") == Some(FORUM) && c.int("message_thread_id").is_none())
        .count();
    assert_eq!(refused, 0, "something went to the closed General topic");
}

/// Alert chats: a group, and a topic of a forum.
fn with_alert_chats() -> Bot {
    let setup = Setup {
        top: format!("alert-chats = [{GROUP}, \"{FORUM}:{TOPIC}\"]"),
        ..Setup::default()
    };
    let bot = Bot::start_with(vec![Srv::new("Main").monitored(0.05)], setup);
    bot.tg.make_forum(FORUM, true);
    wait_health(&bot, "up");
    bot
}

#[test]
fn alert_chats_get_down_and_up_and_the_topic_is_kept() {
    let bot = with_alert_chats();
    bot.srv(0).set_up(false);
    for chat in [OP, OP2, VIEWER, GROUP, FORUM] {
        bot.wait(chat, |m| m.plain.starts_with("🔴 Main is DOWN"));
    }
    let in_forum = bot.wait(FORUM, |m| m.plain.starts_with("🔴 Main is DOWN"));
    assert_eq!(in_forum.thread, Some(TOPIC));
    bot.srv(0).set_up(true);
    for chat in [OP, GROUP, FORUM] {
        bot.wait(chat, |m| m.plain.starts_with("🟢 Main is UP again"));
    }
}

#[test]
fn a_group_upgraded_to_a_supergroup_is_followed_at_once_and_never_tried_again() {
    let bot = with_alert_chats();
    let upgraded = -1_009_000_500;
    bot.tg.migrate_chat(GROUP, upgraded);
    bot.srv(0).set_up(false);
    bot.wait(upgraded, |m| m.plain.starts_with("🔴 Main is DOWN"));
    assert_eq!(
        state(&bot)["moved_chats"][GROUP.to_string()],
        json!(upgraded)
    );
    bot.srv(0).set_up(true);
    bot.wait(upgraded, |m| m.plain.starts_with("🟢 Main is UP again"));
    let to_old = bot
        .tg
        .calls_to("sendMessage")
        .iter()
        .filter(|c| c.int("chat_id") == Some(GROUP))
        .count();
    assert_eq!(to_old, 1, "the old id was tried again");
    // Across a restart as well.
    let mut bot = bot;
    bot.restart();
    wait_health(&bot, "up");
    bot.srv(0).set_up(false);
    bot.wait(upgraded, |m| {
        m.plain.contains("is DOWN") && m.message_id > 2
    });
    let to_old = bot
        .tg
        .calls_to("sendMessage")
        .iter()
        .filter(|c| c.int("chat_id") == Some(GROUP))
        .count();
    assert_eq!(to_old, 1, "the old id was tried after a restart");
}

#[test]
fn a_chat_that_removed_the_bot_does_not_stop_the_others() {
    let bot = with_alert_chats();
    bot.tg.block_chat(GROUP);
    bot.srv(0).set_up(false);
    for chat in [OP, OP2, VIEWER, FORUM] {
        bot.wait(chat, |m| m.plain.starts_with("🔴 Main is DOWN"));
    }
    bot.srv(0).set_up(true);
    for chat in [OP, FORUM] {
        bot.wait(chat, |m| m.plain.starts_with("🟢 Main is UP again"));
    }
    assert!(bot.tg.messages(GROUP).is_empty());
}

#[test]
fn a_down_alert_comes_in_german_for_an_operator_whose_client_is_german() {
    let bot = Bot::start(vec![Srv::new("Main").monitored(0.05)]);
    wait_health(&bot, "up");
    // Learned from a message in a group: no private chat needed.
    bot.tg.push_message(OP2, GROUP, "/status", Some("de"));
    bot.wait(GROUP, |m| m.plain.contains("Main"));
    assert!(
        wait_until(WAIT, || state(&bot)["languages"][OP2.to_string()] == "de"),
        "{}",
        state(&bot)
    );
    bot.srv(0).set_up(false);
    let alert = bot.wait(OP2, |m| m.plain.contains("Main"));
    assert!(
        alert.plain.starts_with("🔴 Main ist seit "),
        "{}",
        alert.plain
    );
    assert!(alert.plain.contains(" AUSGEFALLEN: "), "{}", alert.plain);
    let english = bot.wait(OP, |m| m.plain.contains("Main"));
    assert!(
        english.plain.starts_with("🔴 Main is DOWN"),
        "{}",
        english.plain
    );
}

#[test]
fn the_poll_thread_does_not_wait_out_a_429_on_one_chat() {
    let bot = Bot::start(vec![Srv::new("Main")]);
    let picker = bot.start_chat(OP);
    let edits = bot.tg.calls_to("editMessageText").len();
    bot.tg
        .script("editMessageText", Reply::too_many_requests(2));
    // The menu is shown by the poll thread: refused, and not retried there.
    bot.click(OP, OP, &picker, "Main");
    bot.tg.wait_count(WAIT, "editMessageText", edits + 1);
    // Meanwhile another user is served at once.
    bot.start_chat(OP2);
    assert_eq!(
        bot.tg.calls_to("editMessageText").len(),
        edits + 1,
        "the poll thread retried the edit"
    );
    // The person can press again.
    bot.tap(OP, OP, &picker, "Main", "What would you like to see?");
}

#[test]
fn a_bot_api_server_that_does_not_hold_the_poll_is_polled_at_most_once_per_floor() {
    let setup = Setup {
        tables: timing(&[("poll_floor_ms", 200)]),
        ..Setup::default()
    };
    let bot = Bot::start_with(vec![Srv::new("Main")], setup);
    bot.tg.set_instant_polls(true);
    let before = bot.tg.calls_to("getupdates").len();
    bot.tg.wait_count(WAIT, "getupdates", before + 1);
    let started = Instant::now();
    let polls = bot.tg.wait_count(WAIT, "getupdates", before + 7);
    assert!(polls.len() >= before + 7, "polling stopped");
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(5 * 190),
        "6 empty polls in {took:?}: not bounded"
    );
    // Updates are still handled at once.
    bot.start_chat(OP);
}

#[test]
fn a_webhook_left_over_is_deleted_again_on_409_and_failed_start_up_calls_are_retried() {
    let tg = crate::support::fake_telegram::FakeTelegram::start();
    tg.script("deleteWebhook", Reply::bad_gateway_html());
    tg.script("setMyCommands", Reply::bad_gateway_html());
    tg.script("getUpdates", Reply::conflict());
    tg.script("getUpdates", Reply::conflict());
    let bot = Bot::start_on(tg, vec![Srv::new("Main")], Setup::default());
    // Polling resumed: a person is served.
    bot.start_chat(OP);
    assert!(
        bot.tg.calls_to("deleteWebhook").len() >= 2,
        "409 did not delete the webhook again"
    );
    let commands = bot.tg.wait_count(WAIT, "setmycommands", 8);
    assert_eq!(
        commands.len(),
        8,
        "the failed setMyCommands was not tried again"
    );
    assert_eq!(commands[0].params, commands[1].params);
}

#[test]
fn an_anonymous_group_admin_is_told_to_write_as_themselves() {
    let bot = Bot::start(vec![Srv::new("Main")]);
    bot.tg.push_update(json!({"message": {
        "message_id": 50,
        "from": {"id": 1_087_968_824, "is_bot": true, "first_name": "Group", "username": "GroupAnonymousBot"},
        "sender_chat": {"id": GROUP, "type": "supergroup", "title": "Ops"},
        "chat": {"id": GROUP, "type": "supergroup", "title": "Ops"},
        "date": 1,
        "text": "/start",
        "entities": [{"type": "bot_command", "offset": 0, "length": 6}],
    }}));
    let denial = bot.wait(GROUP, |_| true);
    assert!(denial.plain.contains("anonymous admin"), "{}", denial.plain);
    assert!(
        denial.plain.contains("Write as yourself"),
        "{}",
        denial.plain
    );
    assert!(!denial.plain.contains("1087968824"), "{}", denial.plain);
}

#[test]
fn many_forgotten_conferences_in_one_scan_are_one_summary_with_a_button_to_the_list() {
    let main = Srv::new("Main");
    main.fake.set_conferences(
        (0..6)
            .map(|i| Conf::running(&format!("room{i}"), 7200))
            .collect(),
    );
    let setup = Setup {
        tables: "[forgotten]\nafter_minutes = 1\nscan_every_minutes = 0.005\n".into(),
        ..Setup::default()
    };
    let bot = Bot::start_with(vec![main], setup);
    let summary = bot.wait(OP, |m| m.plain.contains("conferences look forgotten"));
    assert_eq!(summary.plain, "🕸 Main: 6 conferences look forgotten.");
    // One message, not six, for each operator.
    assert_eq!(bot.tg.messages(OP).len(), 1, "{}", bot.transcript(OP));
    assert_eq!(
        data(&summary, "Show the list"),
        Press::Forgotten(short_key("Main"), 0, 0).encode()
    );
    let list = bot.tap(OP, OP, &summary, "Show the list", "room5");
    assert!(list.plain.contains("): 6"), "{}", list.plain);
}

#[test]
fn alerts_name_the_time_they_were_judged_in_the_configured_zone() {
    let setup = Setup {
        top: "timezone = \"+03:00\"".into(),
        ..Setup::default()
    };
    let bot = Bot::start_with(vec![Srv::new("Main").monitored(0.05)], setup);
    wait_health(&bot, "up");
    // Telegram is down when the server goes down: the alert comes late,
    // and still says when the server went down.
    for _ in 0..3 {
        bot.tg.script("sendMessage", Reply::bad_gateway_html());
    }
    bot.srv(0).set_up(false);
    let alert = bot.wait(OP, |m| m.plain.contains("is DOWN"));
    let since = state(&bot)["servers"]["Main"]["since"].as_u64().unwrap();
    let (_, _, _, h, m, _) = crate::support::civil(since as i64 + 3 * 3600);
    let head = format!("🔴 Main is DOWN since {h:02}:{m:02}: ");
    assert!(alert.plain.starts_with(&head), "{} vs {head}", alert.plain);
    // The status screen shows the zone too.
    let status = bot.open(OP, OP, "Main", "Status");
    assert!(status.plain.contains(" +03:00 ("), "{}", status.plain);
}

/// Every call the fake Telegram got came out of one of the proxy's tunnels.
#[track_caller]
fn all_through(bot: &Bot, proxy: &crate::support::proxy::Proxy) {
    let outbound = proxy.outbound();
    let calls = bot.tg.calls();
    assert!(!calls.is_empty());
    for call in &calls {
        assert!(
            call.peer.is_some_and(|p| outbound.contains(&p)),
            "{} came from {:?}, not through the proxy {outbound:?}",
            call.method,
            call.peer
        );
    }
}

#[test]
fn every_telegram_request_goes_through_an_http_proxy_with_credentials() {
    use crate::support::proxy::{Kind, Proxy};
    let proxy = Proxy::start(Kind::Connect, Some(("bot", "pr0xy-SEKRET")));
    let setup = Setup {
        top: format!(
            "tg-proxy = \"http://bot:pr0xy-SEKRET@127.0.0.1:{}\"",
            proxy.port()
        ),
        ..Setup::default()
    };
    let bot = Bot::start_with(vec![Srv::new("Main")], setup);
    let picker = bot.start_chat(OP);
    bot.tap(OP, OP, &picker, "Main", "What would you like to see?");
    all_through(&bot, &proxy);
    assert_eq!(proxy.refused(), 0);
    // TrueConf servers are reached directly.
    let telegram = bot.tg.base_url().trim_start_matches("http://").to_string();
    assert!(
        proxy.tunnels().iter().all(|t| *t == telegram),
        "{:?}",
        proxy.tunnels()
    );
}

#[test]
fn every_telegram_request_goes_through_a_socks5_proxy() {
    use crate::support::proxy::{Kind, Proxy};
    let proxy = Proxy::start(Kind::Socks5, None);
    let setup = Setup {
        top: format!("tg-proxy = \"socks5://127.0.0.1:{}\"", proxy.port()),
        ..Setup::default()
    };
    let bot = Bot::start_with(vec![Srv::new("Main").monitored(0.05)], setup);
    bot.start_chat(OP);
    bot.srv(0).set_up(false);
    bot.wait(OP, |m| m.plain.contains("is DOWN"));
    all_through(&bot, &proxy);
}

#[test]
fn a_proxy_that_refuses_the_credentials_is_reported_at_start_without_them() {
    use crate::support::proxy::{Kind, Proxy};
    let proxy = Proxy::start(Kind::Connect, Some(("bot", "right")));
    let tg = crate::support::fake_telegram::FakeTelegram::start();
    let dir = crate::support::TempDir::new();
    let path = dir.join("settings.toml");
    let top = format!(
        "tg-proxy = \"http://bot:wr0ng-SEKRET@127.0.0.1:{}\"",
        proxy.port()
    );
    let servers = [Srv::new("Main")];
    std::fs::write(&path, settings_text(&tg, &dir, &servers, &top, "")).unwrap();
    let mut child = bin()
        .arg("--config")
        .arg(&path)
        .env("RUST_LOG", "info")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // It keeps trying, with backoff.
    let retried = wait_until(WAIT, || proxy.refused() >= 3);
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(retried, "no retries: {log}");
    assert!(
        tg.calls().is_empty(),
        "Telegram was reached without the proxy"
    );
    assert!(
        log.contains("cannot reach Telegram at 127.0.0.1:")
            && log.contains("through the proxy http://127.0.0.1:")
            && log.contains("the proxy refused the connection")
            && log.contains("`trueconf-bot check` diagnoses it"),
        "{log}"
    );
    assert!(!log.contains("wr0ng-SEKRET"), "{log}");
}
