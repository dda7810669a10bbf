//! Issue 5: what the original never had (SPEC §8): the scheduled forgotten
//! scan with auto-stop, the audit log and `/audit`, the `/status` overview,
//! and `trueconf-bot check`.

use std::process::Stdio;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use crate::harness::*;
use crate::support::TempDir;
use crate::support::fake_telegram::{FakeTelegram, TOKEN};
use crate::support::fake_trueconf::{
    ApiReply, CLIENT_SECRET, Conf, FakeTrueConf, PRODUCT, Participant, session_id_for,
};
use crate::support::wait_until;

// ---------------------------------------------------------------------------
// The scheduled forgotten scan and auto-stop (§8.1)

/// Scans every 0.3 s; conferences older than a minute may be forgotten.
fn scanning(more: &str) -> Setup {
    Setup {
        tables: format!("[forgotten]\nafter_minutes = 1\nscan_every_minutes = 0.005\n{more}\n"),
        ..Setup::default()
    }
}

/// The conference ids of every forgotten-conference push a chat received (as
/// sent: a push may have become a confirmation screen since).
fn pushes(bot: &Bot, chat: i64) -> Vec<String> {
    bot.tg
        .history(chat)
        .iter()
        .filter(|m| m.edits == 0)
        .filter_map(|m| {
            m.plain
                .strip_prefix("🕸 Main: a conference looks forgotten.\n\n")
        })
        .map(|entry| entry.split(" — ").next().unwrap_or("").to_string())
        .collect()
}

/// Waits until `chat` has `expected.len()` pushes, then asserts they are exactly those.
#[track_caller]
fn expect_pushes(bot: &Bot, chat: i64, expected: &[&str]) {
    wait_until(WAIT, || pushes(bot, chat).len() >= expected.len());
    assert_eq!(
        pushes(bot, chat),
        expected,
        "chat {chat}; transcript:\n{}",
        bot.transcript(chat)
    );
}

/// How many call-log reads (one per scan, when nobody looks at a list) the server saw.
fn scans(fake: &FakeTrueConf) -> usize {
    fake.requests()
        .iter()
        .filter(|r| r.path.ends_with("/logs/calls"))
        .count()
}

/// Waits for `n` more scans.
#[track_caller]
fn wait_scans(fake: &FakeTrueConf, n: usize) {
    let want = scans(fake) + n;
    let seen = fake
        .wait_requests(WAIT, |r| r.path.ends_with("/logs/calls"), want)
        .len();
    assert!(seen >= want, "the scans stopped");
}

/// The session ids the bot remembers as already pushed.
fn remembered(bot: &Bot) -> Vec<String> {
    let text = std::fs::read_to_string(bot.dir.join("state/state.json")).unwrap_or_default();
    let all: Value = serde_json::from_str(&text).unwrap_or_default();
    match all["servers"]["Main"]["forgotten_alerted"].as_object() {
        Some(map) => map.keys().cloned().collect(),
        None => Vec::new(),
    }
}

#[test]
fn a_forgotten_conference_is_pushed_to_operators_once_and_again_after_it_recovered() {
    let bot = Bot::start_with(vec![Srv::new("Main")], scanning(""));
    let fake = bot.srv(0);
    let mut alpha = Conf::running("alpha", 7200);
    fake.set_conferences(vec![alpha.clone(), Conf::running("fresh", 30)]);
    let alpha_session = session_id_for("alpha");

    for chat in [OP, OP2] {
        expect_pushes(&bot, chat, &["alpha"]);
        let push = bot.tg.messages(chat).pop().unwrap();
        assert!(push.plain.contains("Topic alpha"), "{}", push.plain);
        let labels: Vec<String> = push.all_buttons().into_iter().map(|b| b.0).collect();
        assert_eq!(labels, ["⛔ Stop alpha", "🕸 Forgotten conferences"]);
    }
    // Its stop button leads to the confirmation.
    let push = bot.tg.messages(OP).pop().unwrap();
    bot.click(OP, OP, &push, "Stop alpha");
    bot.wait(OP, |m| {
        m.message_id == push.message_id && m.plain.starts_with("Stop this conference?")
    });

    // Later scans do not push it again.
    assert!(
        wait_until(WAIT, || remembered(&bot) == [alpha_session.clone()]),
        "the push is not remembered"
    );
    wait_scans(fake, 3);
    // It recovers: the moderator is back with someone.
    fake.set_participants(
        &alpha_session,
        vec![Participant::new("alice", 2), Participant::new("bob", 1)],
    );
    assert!(
        wait_until(WAIT, || remembered(&bot).is_empty()),
        "the recovered conference is still marked"
    );
    // Forgotten again (only the moderator is left, and the topic changed meanwhile): pushed again.
    alpha.topic = Some("Back again".into());
    fake.set_conferences(vec![alpha.clone(), Conf::running("fresh", 30)]);
    fake.set_participants(&alpha_session, vec![Participant::new("alice", 2)]);
    for chat in [OP, OP2] {
        expect_pushes(&bot, chat, &["alpha", "alpha"]);
        assert!(
            bot.tg
                .messages(chat)
                .pop()
                .unwrap()
                .plain
                .contains("Back again")
        );
    }
    // A new one after more scans comes next: nothing was repeated in between.
    wait_scans(fake, 3);
    fake.set_conferences(vec![
        alpha,
        Conf::running("fresh", 30),
        Conf::running("beta", 4000),
    ]);
    for chat in [OP, OP2] {
        expect_pushes(&bot, chat, &["alpha", "alpha", "beta"]);
    }
    // Viewers are not pushed forgotten conferences (they could not stop them).
    assert!(
        bot.tg.messages(VIEWER).is_empty(),
        "{}",
        bot.transcript(VIEWER)
    );
}

/// A scanning bot without web/API checks (only the scans talk to the API
/// port) and a server running "alpha", "beta" and "gamma" for two hours;
/// `prepare` readies the fake before the conferences appear.
fn three_old_conferences(prepare: impl Fn(&FakeTrueConf)) -> Bot {
    let bot = Bot::start_with(
        vec![Srv::new("Main")],
        scanning("[monitoring]\napi_check_every_seconds = 0"),
    );
    let fake = bot.srv(0);
    prepare(fake);
    fake.set_conferences(
        ["alpha", "beta", "gamma"]
            .iter()
            .map(|c| Conf::running(c, 7200))
            .collect(),
    );
    bot
}

#[test]
fn a_scheduled_scan_reads_a_few_participant_lists_over_its_one_connection() {
    let bot = three_old_conferences(|_| {});
    let fake = bot.srv(0);
    wait_scans(fake, 4);
    // Read in this order, the handshakes may include the next scan's.
    let (done, handshakes) = (scans(fake), fake.tls_handshakes());
    let lists = fake
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/participants"))
        .count();
    assert!(
        lists >= 3 * (done - 1),
        "{lists} participant lists in {done} scans"
    );
    // Each scan: one handshake for its call log and its three lists (in
    // parallel, each list would need a connection of its own).
    assert!(
        handshakes <= done + 1,
        "{handshakes} TLS handshakes for {done} scans"
    );
    expect_pushes(&bot, OP, &["alpha", "beta", "gamma"]);
}

#[test]
fn a_scheduled_scan_whose_first_list_times_out_reads_the_rest_in_parallel() {
    // The three participant lists hang past the request timeout (2 s).
    let bot = three_old_conferences(|fake| {
        for _ in 0..3 {
            fake.script(
                "/api/v3.3/conference-sessions/",
                ApiReply::Hang(Duration::from_secs(3)),
            );
        }
    });
    let fake = bot.srv(0);
    // The first read of each list, in the order they came.
    let firsts = || {
        let mut seen: Vec<(String, std::time::Instant)> = Vec::new();
        for r in fake.requests() {
            if r.path.ends_with("/participants") && !seen.iter().any(|(p, _)| *p == r.path) {
                seen.push((r.path.clone(), r.at));
            }
        }
        seen
    };
    assert!(wait_until(WAIT, || firsts().len() == 3), "{:?}", firsts());
    let at: Vec<_> = firsts().into_iter().map(|(_, at)| at).collect();
    // One by one, the third list would be asked for only after the second
    // had timed out, two seconds later: after the first failed read, the
    // other two go to the fetchers together.
    let apart = at[2].duration_since(at[1]);
    assert!(
        apart < Duration::from_secs(1),
        "the last two lists were asked for {apart:?} apart"
    );
    // The round still ends, and the next one finds them all forgotten.
    expect_pushes(&bot, OP, &["alpha", "beta", "gamma"]);
}

#[test]
fn a_pushed_forgotten_conference_is_not_pushed_again_after_a_restart() {
    let mut bot = Bot::start_with(vec![Srv::new("Main")], scanning(""));
    bot.srv(0)
        .set_conferences(vec![Conf::running("alpha", 7200)]);
    for chat in [OP, OP2] {
        expect_pushes(&bot, chat, &["alpha"]);
    }
    assert!(wait_until(WAIT, || remembered(&bot) == [session_id_for("alpha")]));
    bot.restart();
    wait_scans(bot.srv(0), 3);
    bot.srv(0).set_conferences(vec![
        Conf::running("alpha", 7200),
        Conf::running("beta", 4000),
    ]);
    for chat in [OP, OP2] {
        expect_pushes(&bot, chat, &["alpha", "beta"]);
    }
    assert!(
        bot.tg.messages(VIEWER).is_empty(),
        "{}",
        bot.transcript(VIEWER)
    );
}

#[test]
fn auto_stop_stops_exactly_the_forgotten_conference_and_tells_the_operators() {
    let bot = Bot::start_with(
        vec![Srv::new("Main")],
        scanning("auto_stop_after_minutes = 0.02"),
    );
    let fake = bot.srv(0);
    fake.set_participants(
        &session_id_for("busy"),
        vec![Participant::new("alice", 2), Participant::new("bob", 1)],
    );
    fake.set_conferences(vec![
        Conf::running("busy", 7200),
        Conf::running("old", 7200),
        Conf::running("young", 30),
    ]);
    assert!(
        wait_until(WAIT, || !fake.stop_requests().is_empty()),
        "nothing was stopped"
    );
    assert_eq!(fake.stop_requests(), ["old"]);
    for chat in [OP, OP2] {
        wait_until(WAIT, || bot.tg.messages(chat).len() >= 2);
        let texts: Vec<String> = bot.tg.messages(chat).into_iter().map(|m| m.plain).collect();
        assert_eq!(texts.len(), 2, "{texts:?}");
        assert!(
            texts[0].starts_with("🕸 Main: a conference looks forgotten.\n\nold — "),
            "{}",
            texts[0]
        );
        assert!(
            texts[0]
                .ends_with("\n\nIt will be stopped automatically in 1 s if it stays forgotten."),
            "{}",
            texts[0]
        );
        assert_eq!(
            texts[1],
            "🤖 Main: the forgotten conference old was stopped automatically."
        );
    }
    // Not before the grace time (1.2 s) after the push.
    let pushed = bot.tg.calls_to("sendMessage")[0].at;
    let stopped = fake
        .requests()
        .into_iter()
        .find(|r| r.method == "POST" && r.path.ends_with("/stop"))
        .unwrap()
        .at;
    let grace = stopped.duration_since(pushed);
    assert!(
        grace >= Duration::from_millis(1100),
        "stopped {grace:?} after the push"
    );
    // Later scans leave the others alone.
    wait_scans(fake, 3);
    assert_eq!(fake.stop_requests(), ["old"]);
    let running: Vec<String> = fake
        .conferences()
        .into_iter()
        .filter(|c| c.running)
        .filter_map(|c| c.named_conf_id)
        .collect();
    assert_eq!(running, ["busy", "young"]);
    assert!(
        bot.tg.messages(VIEWER).is_empty(),
        "{}",
        bot.transcript(VIEWER)
    );
    // The audit log names the bot itself.
    let records = audit_records(&bot);
    assert_eq!(records.len(), 1, "{records:?}");
    let r = &records[0];
    assert_eq!(
        (r["user"].as_str(), r["user_id"].is_null()),
        (Some("auto"), true),
        "{r}"
    );
    assert_eq!(
        (r["server"].as_str(), r["conference"].as_str()),
        (Some("Main"), Some("old")),
        "{r}"
    );
    assert_eq!(
        (r["action"].as_str(), r["result"].as_str()),
        (Some("stop"), Some("stopped")),
        "{r}"
    );
}

// ---------------------------------------------------------------------------
// The audit log (§8.3)

fn audit_path(bot: &Bot) -> std::path::PathBuf {
    bot.dir.join("state/audit.jsonl")
}

/// Every readable record of audit.jsonl, oldest first.
fn audit_records(bot: &Bot) -> Vec<Value> {
    let text = std::fs::read_to_string(audit_path(bot)).unwrap_or_default();
    text.lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Unix seconds of an RFC 3339 UTC time "2026-11-25T14:05:09Z"; None when it is not that form.
fn rfc3339_utc(time: &str) -> Option<i64> {
    let b = time.as_bytes();
    let shape = "dddd-dd-ddTdd:dd:ddZ";
    if b.len() != shape.len() {
        return None;
    }
    for (c, s) in b.iter().zip(shape.bytes()) {
        let ok = if s == b'd' {
            c.is_ascii_digit()
        } else {
            *c == s
        };
        if !ok {
            return None;
        }
    }
    let n = |r: std::ops::Range<usize>| time[r].parse::<i64>().unwrap();
    let (y, m, d) = (n(0..4), n(5..7), n(8..10));
    // Days from the civil date (H. Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + n(11..13) * 3600 + n(14..16) * 60 + n(17..19))
}

/// Asserts one record: its time is now-ish RFC 3339 UTC, the rest as given.
#[track_caller]
fn assert_record(
    record: &Value,
    user_id: Option<i64>,
    conference: Option<&str>,
    action: &str,
    result: &str,
) {
    let time = record["time"].as_str().unwrap_or("");
    let at = rfc3339_utc(time).unwrap_or_else(|| panic!("time {time:?} is not RFC 3339 UTC"));
    assert!((now_unix() - at).abs() <= 120, "time {time} is not now");
    assert_eq!(record["user_id"].as_i64(), user_id, "{record}");
    let name = user_id.map(|id| format!("User{id} (@user{id})"));
    assert_eq!(record["user"].as_str(), name.as_deref(), "{record}");
    assert_eq!(record["server"].as_str(), Some("Main"), "{record}");
    assert_eq!(record["conference"].as_str(), conference, "{record}");
    assert_eq!(record["action"].as_str(), Some(action), "{record}");
    assert_eq!(record["result"].as_str(), Some(result), "{record}");
}

/// An operator switches monitoring of "Main" on or off from its Status screen
/// (the one already open in the chat, else a new one).
fn switch_monitoring(bot: &Bot, user: i64, on: bool) {
    let open = bot
        .tg
        .messages(user)
        .into_iter()
        .rev()
        .find(|m| m.plain.contains("Monitoring is"));
    let status = open.unwrap_or_else(|| bot.open(user, user, "Main", "Status"));
    let (label, after) = if on {
        ("Turn monitoring on", "Monitoring is on")
    } else {
        ("Turn monitoring off", "Monitoring is off")
    };
    bot.click(user, user, &status, label);
    bot.wait(user, |m| {
        m.message_id == status.message_id && m.edits > status.edits && m.plain.contains(after)
    });
}

#[test]
fn stops_and_monitoring_switches_are_audited() {
    let bot = Bot::start(vec![Srv::new("Main")]);
    let fake = bot.srv(0);
    fake.set_conferences(vec![
        Conf::running("room1", 600),
        Conf::running("room2", 600),
    ]);
    let list = bot.open(OP, OP, "Main", "Running conferences");
    bot.click(OP, OP, &list, "Stop room1");
    let confirm = bot.wait(OP, |m| {
        m.message_id == list.message_id && m.plain.starts_with("Stop this conference?")
    });
    bot.click(OP, OP, &confirm, "Yes, stop");
    bot.wait(OP, |m| {
        m.message_id == list.message_id && m.plain.contains("room1 has been stopped")
    });
    assert_eq!(fake.stop_requests(), ["room1"]);
    switch_monitoring(&bot, OP2, true);

    let records = audit_records(&bot);
    assert_eq!(records.len(), 2, "{records:?}");
    assert_record(&records[0], Some(OP), Some("room1"), "stop", "stopped");
    assert_record(&records[1], Some(OP2), None, "monitoring_on", "ok");
    // Every line of the file is one record.
    let text = std::fs::read_to_string(audit_path(&bot)).unwrap();
    assert!(text.ends_with('\n') && text.lines().count() == 2, "{text}");
}

#[test]
fn a_torn_audit_line_is_skipped_and_later_appends_stay_readable() {
    let bot = Bot::start(vec![Srv::new("Main")]);
    switch_monitoring(&bot, OP, true);
    assert_eq!(audit_records(&bot).len(), 1);
    // A crash in the middle of a write leaves half a line without its newline.
    let mut text = std::fs::read_to_string(audit_path(&bot)).unwrap();
    text.push_str("{\"time\":\"2026-11-25T1");
    std::fs::write(audit_path(&bot), &text).unwrap();
    switch_monitoring(&bot, OP, false);

    let text = std::fs::read_to_string(audit_path(&bot)).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert_eq!(lines[1], "{\"time\":\"2026-11-25T1");
    let records = audit_records(&bot);
    assert_eq!(records.len(), 2, "{text}");
    assert_record(&records[0], Some(OP), None, "monitoring_on", "ok");
    assert_record(&records[1], Some(OP), None, "monitoring_off", "ok");
}

#[test]
fn audit_shows_the_entries_newest_first_to_operators_only() {
    let bot = Bot::start(vec![Srv::new("Main")]);
    bot.srv(0)
        .set_conferences(vec![Conf::running("room1", 600)]);
    let list = bot.open(OP2, OP2, "Main", "Running conferences");
    bot.click(OP2, OP2, &list, "Stop room1");
    let confirm = bot.wait(OP2, |m| {
        m.message_id == list.message_id && m.plain.starts_with("Stop this conference?")
    });
    bot.click(OP2, OP2, &confirm, "Yes, stop");
    bot.wait(OP2, |m| {
        m.message_id == list.message_id && m.plain.contains("has been stopped")
    });
    switch_monitoring(&bot, OP, true);
    switch_monitoring(&bot, OP, false);

    bot.say(OP, OP, "/audit");
    let shown = bot.wait(OP, |m| m.plain.starts_with("Audit log"));
    let entries: Vec<&str> = shown.plain.split("\n\n").collect();
    assert_eq!(entries.len(), 4, "{}", shown.plain);
    assert_eq!(entries[0], "Audit log (newest first)");
    // Each entry after its time, spaces collapsed (no conference leaves a gap).
    let rest: Vec<String> = entries[1..]
        .iter()
        .map(|e| {
            e.split_once(" UTC · ")
                .unwrap()
                .1
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect();
    assert_eq!(
        rest,
        [
            "User1001 (@user1001) · Main · monitoring off → ok",
            "User1001 (@user1001) · Main · monitoring on → ok",
            "User1002 (@user1002) · Main · stop room1 → stopped",
        ]
    );

    // A viewer's /audit is told it is for operators, and shows none of it.
    bot.say(VIEWER, VIEWER, "/audit");
    let answer = bot.wait(VIEWER, |_| true);
    assert_eq!(answer.plain, "Only operators may do this.");
    assert_eq!(bot.tg.messages(VIEWER).len(), 1);

    // In a group it goes to the operator's private chat, with a note in the group.
    let before = bot.tg.messages(OP).len();
    bot.say(OP, GROUP, "/audit");
    let note = bot.wait(GROUP, |m| m.plain.contains("private chat"));
    assert_eq!(
        note.plain,
        "🔒 The audit log goes to your private chat with me."
    );
    let private = bot.wait(OP, |m| m.plain.starts_with("Audit log"));
    assert!(bot.tg.messages(OP).len() > before, "{}", private.plain);
    assert!(
        bot.tg
            .messages(GROUP)
            .iter()
            .all(|m| !m.plain.contains("User100")),
        "{}",
        bot.transcript(GROUP)
    );

    // /help names /audit for operators, not for viewers.
    bot.say(OP, OP, "/help");
    let help = bot.wait(OP, |m| m.plain.contains("/help — this text"));
    assert!(
        help.plain.contains("/audit — the last 20 stops"),
        "{}",
        help.plain
    );
    bot.say(VIEWER, VIEWER, "/help");
    let help = bot.wait(VIEWER, |m| m.plain.contains("/help — this text"));
    assert!(!help.plain.contains("/audit"), "{}", help.plain);
}

// ---------------------------------------------------------------------------
// The /status overview (§8.4)

#[test]
fn status_overview_lists_every_server_in_one_message() {
    let bot = Bot::start(vec![Srv::new("Main"), Srv::new("Branch"), Srv::new("Lab")]);
    let main = bot.srv(0);
    main.set_conferences(vec![
        Conf::running("a", 60),
        Conf::running("b", 6000),
        Conf::ended("c", 60),
        Conf::p2p("call", 60, true),
    ]);
    let online = main.generate_users(30, 3);
    bot.srv(1).set_up(false);

    for chat in [OP, VIEWER] {
        bot.say(chat, chat, "/status");
        let overview = bot.wait(chat, |m| m.plain.starts_with("All servers"));
        let lines: Vec<&str> = overview.plain.split("\n\n").collect();
        assert_eq!(lines.len(), 4, "{}", overview.plain);
        assert_eq!(
            lines[1],
            format!("✅ Main: 2 conference(s) running, {online} user(s) online · {PRODUCT}")
        );
        assert!(
            lines[2].starts_with("❌ Branch: down (unreachable ("),
            "{}",
            overview.plain
        );
        assert_eq!(
            lines[3],
            format!("✅ Lab: 0 conference(s) running, 0 user(s) online · {PRODUCT}")
        );
        assert_eq!(bot.tg.messages(chat).len(), 1);
    }
}

#[test]
fn status_overview_answers_in_time_without_a_hanging_server() {
    let bot = Bot::start(vec![Srv::new("Main"), Srv::new("Slow")]);
    bot.srv(0).set_conferences(vec![Conf::running("a", 60)]);
    bot.srv(1).set_delay(Duration::from_secs(20));
    bot.say(OP, OP, "/status");
    // The answer waits for the slow one up to 8 s, then comes without it.
    let overview = bot.tg.wait_message(Duration::from_secs(16), OP, |m| {
        m.plain.starts_with("All servers")
    });
    let overview =
        overview.unwrap_or_else(|| panic!("no overview; transcript:\n{}", bot.transcript(OP)));
    let lines: Vec<&str> = overview.plain.split("\n\n").collect();
    assert_eq!(
        lines[1..],
        [
            format!("✅ Main: 1 conference(s) running, 0 user(s) online · {PRODUCT}").as_str(),
            "⏳ Slow: no answer in time"
        ]
    );
}

// ---------------------------------------------------------------------------
// trueconf-bot check (§8.5)

/// A setup for the self-test: a fake Telegram, the servers, the settings file.
struct CheckSetup {
    tg: FakeTelegram,
    servers: Vec<Srv>,
    dir: TempDir,
}

impl CheckSetup {
    fn new(servers: Vec<Srv>) -> CheckSetup {
        CheckSetup {
            tg: FakeTelegram::start(),
            servers,
            dir: TempDir::new(),
        }
    }

    fn fake(&self) -> &FakeTrueConf {
        &self.servers[0].fake
    }

    /// Runs `trueconf-bot check --config PATH` on the settings (changed by
    /// `edit`); returns the exit code and the report lines.
    #[track_caller]
    fn run(&self, edit: impl Fn(String) -> String) -> (Option<i32>, Vec<String>) {
        let path = self.dir.join("settings.toml");
        std::fs::write(
            &path,
            edit(settings_text(&self.tg, &self.dir, &self.servers, "", "")),
        )
        .unwrap();
        let mut child = bin()
            .arg("check")
            .arg("--config")
            .arg(&path)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut status = None;
        let finished = wait_until(Duration::from_secs(40), || {
            status = child.try_wait().unwrap();
            status.is_some()
        });
        if !finished {
            let _ = child.kill();
            let _ = child.wait();
            panic!("check did not finish");
        }
        let out = child.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr);
        for secret in [TOKEN, CLIENT_SECRET] {
            assert!(
                !stdout.contains(secret) && !stderr.contains(secret),
                "a secret was printed:\n{stdout}{stderr}"
            );
        }
        (
            status.and_then(|s| s.code()),
            stdout.lines().map(str::to_string).collect(),
        )
    }

    /// Runs the check and asserts it fails with exactly one ✘ line, starting with `expected`.
    #[track_caller]
    fn expect_failure(&self, edit: impl Fn(String) -> String, expected: &str) {
        let (code, lines) = self.run(edit);
        let report = lines.join("\n");
        assert_eq!(code, Some(1), "{report}");
        let failed: Vec<&String> = lines.iter().filter(|l| l.starts_with('✘')).collect();
        assert_eq!(failed.len(), 1, "{report}");
        assert!(
            failed[0].starts_with(expected),
            "expected a line starting with {expected:?}:\n{report}"
        );
        assert!(
            lines
                .iter()
                .all(|l| l.starts_with('✘') || l.starts_with('✔')),
            "{report}"
        );
    }
}

#[test]
fn check_passes_on_a_healthy_setup() {
    let setup = CheckSetup::new(vec![Srv::new("Main"), Srv::new("Branch")]);
    setup
        .fake()
        .set_conferences(vec![Conf::running("room1", 60)]);
    let (code, lines) = setup.run(|s| s);
    let report = lines.join("\n");
    assert_eq!(code, Some(0), "{report}");
    assert!(lines.iter().all(|l| l.starts_with('✔')), "{report}");
    for needle in [
        "✔ settings: ",
        "✔ telegram: the token works",
        "✔ server 'Main': TCP connection",
        "✔ server 'Main': TLS certificate trusted",
        "✔ server 'Main': OAuth2 token received",
        "✔ server 'Main': API logs/calls works (1 conference(s) running)",
        "✔ server 'Main': API users works",
        "✔ server 'Main': API conference-sessions/participants works",
        "✔ server 'Main': /vsstatus on port",
        "✔ server 'Branch': /vsstatus on port",
    ] {
        assert!(
            lines.iter().any(|l| l.starts_with(needle)),
            "no line {needle:?}:\n{report}"
        );
    }
}

#[test]
fn check_reports_a_rejected_telegram_token() {
    let setup = CheckSetup::new(vec![Srv::new("Main")]);
    setup.tg.set_token("999:other");
    setup.expect_failure(|s| s, "✘ telegram: the bot token was rejected (401)");
}

#[test]
fn check_reports_a_server_refusing_connections() {
    let setup = CheckSetup::new(vec![Srv::new("Main")]);
    // A port nothing listens on.
    let closed = std::net::SocketAddr::from(([127, 0, 0, 1], crate::support::refused_port()));
    let ip = setup.fake().ip();
    setup.expect_failure(
        |s| s.replace(&format!("ip = \"{ip}\""), &format!("ip = \"{closed}\"")),
        &format!(
            "✘ server 'Main': no TCP connection to port {}",
            closed.port()
        ),
    );
}

#[test]
fn check_reports_an_untrusted_certificate() {
    let mut srv = Srv::new("Main");
    srv.ssl = "true".into(); // public roots: the fake's private CA is not among them
    let setup = CheckSetup::new(vec![srv]);
    setup.expect_failure(|s| s, "✘ server 'Main': TLS: certificate not trusted");
}

#[test]
fn check_reports_rejected_credentials() {
    let setup = CheckSetup::new(vec![Srv::new("Main")]);
    setup.fake().set_credentials_valid(false);
    setup.expect_failure(
        |s| s,
        "✘ server 'Main': token: OAuth2 credentials rejected (the server says: invalid_client: \
         The client credentials are invalid) — check client_id and client_secret",
    );
}

#[test]
fn check_reports_a_missing_permission_for_the_call_log() {
    let setup = CheckSetup::new(vec![Srv::new("Main")]);
    setup.fake().set_missing_scope("/logs/calls");
    setup.expect_failure(
        |s| s,
        "✘ server 'Main': API logs/calls: token lacks the permission for logs.calls:read (logs/calls) — grant",
    );
}

#[test]
fn check_reports_a_status_port_that_is_down() {
    let setup = CheckSetup::new(vec![Srv::new("Main")]);
    setup.fake().set_up(false);
    let port = setup.fake().status_port();
    setup.expect_failure(
        |s| s,
        &format!("✘ server 'Main': /vsstatus on port {port}: "),
    );
}

#[test]
fn check_finishes_even_with_a_hanging_server() {
    let setup = CheckSetup::new(vec![Srv::new("Main"), Srv::new("Hanging")]);
    let hanging = &setup.servers[1].fake;
    hanging.set_delay(Duration::from_secs(60));
    hanging.set_status_hang(true);
    let (code, lines) = setup.run(|s| s);
    let report = lines.join("\n");
    assert_eq!(code, Some(1), "{report}");
    assert!(
        lines.iter().any(|l| l.starts_with("✘ server 'Hanging': ")),
        "{report}"
    );
    assert!(
        !lines.iter().any(|l| l.starts_with("✘ server 'Main'")),
        "{report}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("✔ server 'Main': /vsstatus")),
        "{report}"
    );
}
