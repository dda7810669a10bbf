//! Issue 11: real TrueConf servers as they are. The fake answers the way
//! the evidence about real servers shows (reference/trueconf-api-evidence.md),
//! and each test asserts what the admin sees and what the server received.
//! Numbers in test names follow the list.

use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;

use crate::harness::*;
use crate::support::TempDir;
use crate::support::fake_telegram::{FakeTelegram, Msg, TOKEN};
use crate::support::fake_trueconf::{
    ApiReply, CLIENT_ID, CLIENT_SECRET, Conf, FakeTrueConf, PRODUCT, PageCap, Participant, Req,
    TokenRefusal, User, session_id_for,
};
use crate::support::wait_until;

const H: i64 = 3600;

/// Scans every 0.3 s; conferences older than a minute may be forgotten;
/// `more` adds to `[forgotten]`.
fn scanning(more: &str) -> Setup {
    Setup {
        tables: format!("[forgotten]\nafter_minutes = 1\nscan_every_minutes = 0.005\n{more}\n"),
        ..Setup::default()
    }
}

/// Every forgotten-conference push a chat received, as sent.
fn pushes(bot: &Bot, chat: i64) -> Vec<Msg> {
    bot.tg
        .history(chat)
        .into_iter()
        .filter(|m| m.edits == 0 && m.plain.contains("a conference looks forgotten"))
        .collect()
}

/// The push about conference `id`, once it came.
#[track_caller]
fn push_about(bot: &Bot, chat: i64, id: &str) -> Msg {
    let about = |m: &Msg| m.plain.contains(&format!("\n\n{id} — "));
    wait_until(WAIT, || pushes(bot, chat).iter().any(about));
    pushes(bot, chat)
        .into_iter()
        .find(about)
        .unwrap_or_else(|| panic!("no push about {id}:\n{}", bot.transcript(chat)))
}

/// Requests whose path ends with `suffix`.
fn requests_to(fake: &FakeTrueConf, suffix: &str) -> Vec<Req> {
    fake.requests()
        .into_iter()
        .filter(|r| r.path.ends_with(suffix))
        .collect()
}

/// A bot watching one server ("Main"), probed and web-checked every 50 ms.
fn web_checked_bot() -> Bot {
    Bot::start_with(
        vec![Srv::new("Main").monitored(0.05)],
        Setup {
            tables: "[monitoring]\napi_check_every_seconds = 0.05\n".into(),
            ..Setup::default()
        },
    )
}

/// The web/API checks a server was asked so far (`/users` without a token).
fn web_checks(fake: &FakeTrueConf) -> usize {
    requests_to(fake, "/api/v3.3/users")
        .iter()
        .filter(|r| r.token.is_none())
        .count()
}

/// Waits for `n` more call-log reads (one per scan when nobody looks).
#[track_caller]
fn wait_scans(fake: &FakeTrueConf, n: usize) {
    let want = requests_to(fake, "/logs/calls").len() + n;
    let seen = fake
        .wait_requests(WAIT, |r| r.path.ends_with("/logs/calls"), want)
        .len();
    assert!(seen >= want, "the scans stopped");
}

fn state_json(bot: &Bot) -> Value {
    let text = std::fs::read_to_string(bot.dir.join("state/state.json")).unwrap_or_default();
    serde_json::from_str(&text).unwrap_or_default()
}

fn audit_records(bot: &Bot) -> Vec<Value> {
    let text = std::fs::read_to_string(bot.dir.join("state/audit.jsonl")).unwrap_or_default();
    text.lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// The conference ids linked (`/c/ID`) on a list page, in order.
fn linked_ids(html: &str) -> Vec<String> {
    html.split("/c/")
        .skip(1)
        .map(|rest| rest.split('"').next().unwrap_or("").to_string())
        .collect()
}

fn running(fake: &FakeTrueConf, id: &str) -> bool {
    fake.conferences()
        .iter()
        .any(|c| c.running && c.named_conf_id.as_deref() == Some(id))
}

// ---------------------------------------------------------------------------
// 1. Automatic stop never ends a meeting that people are in (R2)

/// Three forgotten conferences, one per rule: nobody left, only the owner
/// left, and a meeting going on after its owner left.
fn three_kinds(fake: &FakeTrueConf) {
    fake.set_conferences(vec![
        Conf::running("empty-room", 3 * H),
        Conf::running("owner-alone", 3 * H),
        Conf::running("meeting", 3 * H),
        Conf::running("lively", 3 * H),
    ]);
    fake.set_participants(
        &session_id_for("owner-alone"),
        vec![Participant::new("alice", 2)],
    );
    fake.set_participants(
        &session_id_for("meeting"),
        vec![
            Participant::new("alice", 2).left(600),
            Participant::new("bob", 1),
            Participant::new("carol", 1),
            Participant::new("dave", 1),
        ],
    );
    fake.set_participants(
        &session_id_for("lively"),
        vec![Participant::new("erin", 2), Participant::new("frank", 1)],
    );
}

#[test]
fn item_1_automatic_stop_ends_nobody_left_and_owner_alone_never_a_meeting() {
    let srv = Srv::new("Main");
    three_kinds(&srv.fake);
    let bot = Bot::start_with(vec![srv], scanning("auto_stop_after_minutes = 0.005"));
    let fake = bot.srv(0);

    // Every kind is pushed, labelled with its rule; only the covered ones warn.
    let auto = "It will be stopped automatically in";
    for (id, label, warned) in [
        ("empty-room", "🕸 nobody left", true),
        ("owner-alone", "🕸 only the owner left", true),
        ("meeting", "🕸 no moderator among 3 participants", false),
    ] {
        let push = push_about(&bot, OP, id);
        assert!(push.plain.contains(label), "{id}: {}", push.plain);
        assert_eq!(push.plain.contains(auto), warned, "{id}: {}", push.plain);
    }
    // The covered two are stopped; the meeting is not, scan after scan.
    assert!(wait_until(WAIT, || fake.stop_requests().len() >= 2));
    wait_scans(fake, 4);
    let mut stopped = fake.stop_requests();
    stopped.sort();
    assert_eq!(stopped, ["empty-room", "owner-alone"]);
    assert!(running(fake, "meeting") && running(fake, "lively"));
    assert!(
        pushes(&bot, OP)
            .iter()
            .all(|p| !p.plain.contains("\n\nlively — "))
    );

    // The list still shows the meeting, labelled, for a human to decide.
    let list = bot.open(OP, OP, "Main", "Forgotten conferences");
    assert_eq!(linked_ids(&list.text), ["meeting"]);
    assert!(
        list.plain.contains("🕸 no moderator among 3 participants"),
        "{}",
        list.plain
    );
    let auto_stops: Vec<Value> = audit_records(&bot)
        .into_iter()
        .filter(|r| r["user"] == "auto")
        .collect();
    assert_eq!(auto_stops.len(), 2, "{auto_stops:?}");
}

#[test]
fn item_1_auto_stop_rules_may_name_no_leader_too() {
    let srv = Srv::new("Main");
    three_kinds(&srv.fake);
    let bot = Bot::start_with(
        vec![srv],
        scanning("auto_stop_after_minutes = 0.005\nauto_stop_rules = [\"no_leader\"]"),
    );
    let fake = bot.srv(0);
    let push = push_about(&bot, OP, "meeting");
    assert!(
        push.plain.contains("It will be stopped automatically in"),
        "{}",
        push.plain
    );
    let push = push_about(&bot, OP, "empty-room");
    assert!(
        !push.plain.contains("stopped automatically"),
        "{}",
        push.plain
    );
    assert!(wait_until(WAIT, || !fake.stop_requests().is_empty()));
    wait_scans(fake, 4);
    assert_eq!(fake.stop_requests(), ["meeting"]);
}

// ---------------------------------------------------------------------------
// 2. Stop reports what really happened (R1, a dropped connection)

fn two_running() -> Bot {
    let srv = Srv::new("Main");
    srv.fake.set_conferences(vec![
        Conf::running("alpha", 4000),
        Conf::running("beta", 5000),
    ]);
    Bot::start(vec![srv])
}

/// Opens the running list, presses stop on `id` and confirms; returns the
/// screen once it shows `needle`.
#[track_caller]
fn stop_via_chat(bot: &Bot, id: &str, needle: &str) -> Msg {
    let list = bot.open(OP, OP, "Main", "Running conferences");
    let confirm = bot.tap(
        OP,
        OP,
        &list,
        &format!("⛔ Stop {id}"),
        "Stop this conference?",
    );
    bot.tap(OP, OP, &confirm, "⛔ Yes, stop", needle)
}

#[test]
fn item_2_no_such_id_while_it_still_runs_gives_the_servers_reason() {
    let bot = two_running();
    let fake = bot.srv(0);
    let not_found = serde_json::json!({"error": {"code": 404, "message": "Not Found", "errors": [{
        "reason": "conferenceNotFound", "message": "Conference 'beta' is not found."}]}});
    fake.script(
        "/api/v3.3/conferences/beta/stop",
        ApiReply::json(404, not_found),
    );
    let logs_before = requests_to(fake, "/logs/calls").len();
    let screen = stop_via_chat(&bot, "beta", "could not be stopped");
    assert!(
        screen.plain.starts_with(
            "⚠️ Conference beta could not be stopped: The server refused (HTTP 404): \
             “Conference 'beta' is not found.”."
        ),
        "{}",
        screen.plain
    );
    assert_eq!(linked_ids(&screen.text), ["alpha", "beta"]);
    // The server got one stop, then the list was read again and the
    // session's participants asked (it still runs).
    assert_eq!(requests_to(fake, "/conferences/beta/stop").len(), 1);
    assert!(requests_to(fake, "/logs/calls").len() >= logs_before + 3);
    assert_eq!(
        requests_to(fake, &format!("{}/participants", session_id_for("beta"))).len(),
        1
    );
    let record = audit_records(&bot).pop().unwrap();
    assert!(
        record["result"].as_str().unwrap().starts_with("failed: "),
        "{record}"
    );
}

#[test]
fn item_2_a_conference_that_ended_by_itself_had_already_ended_and_is_audited_so() {
    let bot = two_running();
    let fake = bot.srv(0);
    // The server no longer has the session; stopping its conference is
    // refused as "not running" (not a 404).
    fake.make_ghost(&session_id_for("beta"));
    let screen = stop_via_chat(&bot, "beta", "had already ended");
    assert!(
        screen
            .plain
            .starts_with("ℹ️ Conference beta had already ended.\n\n🖥 Main\nRunning conferences: 1"),
        "{}",
        screen.plain
    );
    assert_eq!(fake.stop_requests(), ["beta"]);
    let record = audit_records(&bot).pop().unwrap();
    assert_eq!(
        (record["conference"].as_str(), record["result"].as_str()),
        (Some("beta"), Some("already_ended"))
    );
}

#[test]
fn item_2_a_stop_whose_connection_dropped_is_sent_once_more() {
    let bot = two_running();
    let fake = bot.srv(0);
    // Dropped before the server acted: the second POST stops it.
    fake.drop_next_stop(false);
    let screen = stop_via_chat(&bot, "alpha", "has been stopped");
    assert!(
        screen
            .plain
            .starts_with("✅ Conference alpha has been stopped."),
        "{}",
        screen.plain
    );
    assert_eq!(fake.stop_requests(), ["alpha", "alpha"]);
    assert!(!running(fake, "alpha"));

    // Dropped after the server stopped it: the second POST is refused (not
    // running), the list no longer has it: it was stopped.
    fake.drop_next_stop(true);
    let screen = stop_via_chat(&bot, "beta", "has been stopped");
    assert!(
        screen
            .plain
            .starts_with("✅ Conference beta has been stopped."),
        "{}",
        screen.plain
    );
    assert_eq!(fake.stop_requests(), ["alpha", "alpha", "beta", "beta"]);
}

#[test]
fn item_2_a_connection_that_drops_twice_never_gets_the_check_the_address_advice() {
    let bot = two_running();
    let fake = bot.srv(0);
    fake.drop_next_stop(false);
    fake.drop_next_stop(false);
    let screen = stop_via_chat(&bot, "alpha", "could not be stopped");
    assert!(
        screen.plain.starts_with(
            "⚠️ Conference alpha could not be stopped: The server closed the connection \
             without answering. Try again in a moment."
        ),
        "{}",
        screen.plain
    );
    assert!(!screen.plain.contains("(ip)"), "{}", screen.plain);
    assert_eq!(fake.stop_requests(), ["alpha", "alpha"]);
    assert!(running(fake, "alpha"));
}

// ---------------------------------------------------------------------------
// 3. Participants without role, people who left (R3)

#[test]
fn item_3_a_missing_role_is_no_leader_and_people_who_left_do_not_count() {
    let srv = Srv::new("Main");
    let fake = &srv.fake;
    fake.set_conferences(vec![
        Conf::running("gateway", 3 * H),
        Conf::running("owner-left", 3 * H),
        Conf::running("led", 3 * H),
        Conf::running("gone-all", 3 * H),
    ]);
    // The owner left; a SIP gateway without a role is all that is in it.
    fake.set_participants(
        &session_id_for("gateway"),
        vec![
            Participant::new("alice", 2).left(300),
            Participant::without_role("sip"),
        ],
    );
    fake.set_participants(
        &session_id_for("owner-left"),
        vec![
            Participant::new("alice", 2).left(300),
            Participant::new("bob", 1),
            Participant::without_role("h323"),
        ],
    );
    // A leader is in it: not forgotten, whatever the others lack.
    fake.set_participants(
        &session_id_for("led"),
        vec![
            Participant::new("carol", 2),
            Participant::without_role("sip"),
        ],
    );
    // Everyone listed has left: nobody is in it.
    fake.set_participants(
        &session_id_for("gone-all"),
        vec![
            Participant::new("dave", 2).left(60),
            Participant::new("erin", 1).left(30),
        ],
    );
    let bot = Bot::start(vec![srv]);
    let list = bot.open(OP, OP, "Main", "Forgotten conferences");
    assert_eq!(
        linked_ids(&list.text),
        ["gateway", "owner-left", "gone-all"]
    );
    let entries: Vec<&str> = list.plain.split("\n\n").skip(1).collect();
    assert!(
        entries[0].contains("🕸 one participant left, not a moderator"),
        "{}",
        list.plain
    );
    assert!(
        entries[1].contains("🕸 no moderator among 2 participants"),
        "{}",
        list.plain
    );
    assert!(entries[2].contains("🕸 nobody left"), "{}", list.plain);
    // None of them is "unknown": their lists were read.
    assert!(!list.plain.contains("could not be read"), "{}", list.plain);
    assert_eq!(requests_to(bot.srv(0), "/participants").len(), 4);
}

// ---------------------------------------------------------------------------
// 4. Sessions the server no longer has (R4)

#[test]
fn item_4_a_session_the_server_no_longer_has_leaves_every_list_and_count() {
    let srv = Srv::new("Main");
    srv.fake.set_conferences(vec![
        Conf::running("alpha", 2 * H),
        Conf::running("crashed", 50 * H),
    ]);
    srv.fake.make_ghost(&session_id_for("crashed"));
    let bot = Bot::start(vec![srv]);
    let fake = bot.srv(0);
    let ghost = format!("{}/participants", session_id_for("crashed"));

    // The forgotten search asks its participants: "not found". It is not shown.
    let forgotten = bot.open(OP, OP, "Main", "Forgotten conferences");
    assert_eq!(linked_ids(&forgotten.text), ["alpha"]);
    assert_eq!(requests_to(fake, &ghost).len(), 1);
    // From then on it is in no list and no count, and not asked about again.
    let running = bot.open(OP, OP, "Main", "Running conferences");
    assert!(
        running.plain.contains("Running conferences: 1"),
        "{}",
        running.plain
    );
    assert_eq!(linked_ids(&running.text), ["alpha"]);
    bot.say(OP, OP, "/status");
    let overview = bot.wait(OP, |m| m.plain.starts_with("All servers"));
    assert!(
        overview.plain.contains("✅ Main: 1 conference(s) running"),
        "{}",
        overview.plain
    );
    let again = bot.open(OP, OP, "Main", "Forgotten conferences");
    assert_eq!(linked_ids(&again.text), ["alpha"]);
    assert_eq!(requests_to(fake, &ghost).len(), 1);
    // The call log still shows it running (end_time null): the fake did not lie.
    assert!(running_in_log(fake, "crashed"));
}

fn running_in_log(fake: &FakeTrueConf, id: &str) -> bool {
    fake.conferences()
        .iter()
        .any(|c| c.running && c.named_conf_id.as_deref() == Some(id))
}

// ---------------------------------------------------------------------------
// 5. Call-log rows (R5, R6)

#[test]
fn item_5_rows_without_class_fall_back_to_type_and_are_never_hidden() {
    let srv = Srv::new("Main");
    srv.fake.set_conferences(vec![
        Conf::running("alpha", 4000),
        Conf::p2p("call", 600, true),
        Conf::running("beta", 300),
    ]);
    srv.fake.set_rows_without_class(true);
    let bot = Bot::start(vec![srv]);
    let list = bot.open(OP, OP, "Main", "Running conferences");
    assert!(
        list.plain.contains("Running conferences: 2"),
        "{}",
        list.plain
    );
    assert_eq!(linked_ids(&list.text), ["alpha", "beta"]);
    let rows = requests_to(bot.srv(0), "/logs/calls");
    assert_eq!(rows.len(), 1);
}

#[test]
fn item_5_paging_stops_at_the_first_finished_row_or_a_short_page() {
    let srv = Srv::new("Main");
    // A busy log: 5 running, 400 finished. One request is enough.
    let mut confs: Vec<Conf> = (0..5)
        .map(|i| Conf::running(&format!("run{i}"), 4000))
        .collect();
    confs.extend((0..400).map(|i| Conf::ended(&format!("old{i}"), 60)));
    srv.fake.set_conferences(confs);
    let bot = Bot::start(vec![srv]);
    let fake = bot.srv(0);
    let list = bot.open(OP, OP, "Main", "Running conferences");
    assert!(
        list.plain.contains("Running conferences: 5"),
        "{}",
        list.plain
    );
    assert_eq!(requests_to(fake, "/logs/calls").len(), 1);

    // A server that cuts page_size to 50 without a word, 120 running: every
    // running one is read, page after page, until the first finished row.
    let mut confs: Vec<Conf> = (0..120)
        .map(|i| Conf::running(&format!("r{i:03}"), 4000))
        .collect();
    confs.extend((0..300).map(|i| Conf::ended(&format!("o{i}"), 60)));
    fake.set_conferences(confs);
    fake.set_calls_cap(PageCap::Clip(50));
    let before = requests_to(fake, "/logs/calls").len();
    let list = bot.tap(OP, OP, &list, "🔄 Refresh", "Running conferences: 120");
    assert!(list.plain.contains("Running conferences: 120"));
    let pages: Vec<Option<String>> = requests_to(fake, "/logs/calls")[before..]
        .iter()
        .map(|r| r.query_value("page_id").map(str::to_string))
        .collect();
    // No page_id, then 1 (which repeats the first: pages count from 1
    // here), 2 and 3, which brings the first finished row.
    assert_eq!(
        pages,
        [None, Some("1".into()), Some("2".into()), Some("3".into())]
    );
}

// ---------------------------------------------------------------------------
// 6. User paging (R7)

#[test]
fn item_6_next_page_id_zero_ends_and_a_refused_page_size_is_dropped_for_good() {
    let srv = Srv::new("Main");
    let online = srv.fake.generate_users(250, 5);
    srv.fake.set_users_cap(PageCap::Reject(500));
    srv.fake.set_users_end(0);
    let bot = Bot::start(vec![srv]);
    let fake = bot.srv(0);
    let screen = bot.open(OP, OP, "Main", "Users online");
    assert!(
        screen
            .plain
            .contains(&format!("Users online: {online} of 250.")),
        "{}",
        screen.plain
    );
    let asked: Vec<(Option<String>, Option<String>)> = requests_to(fake, "/users")
        .iter()
        .filter(|r| r.token.is_some())
        .map(|r| {
            (
                r.query_value("page_size").map(str::to_string),
                r.query_value("page_id").map(str::to_string),
            )
        })
        .collect();
    // 1000 refused; then the server's own pages of 100: 0, 1, 2 (next 0 ends).
    assert_eq!(
        asked,
        [
            (Some("1000".into()), None),
            (None, None),
            (None, Some("1".into())),
            (None, Some("2".into())),
        ]
    );
    // Remembered: the next count asks without page_size from the start (the
    // same screen comes, so its edit is "not modified": wait for the requests).
    let counted = |fake: &FakeTrueConf| -> Vec<Req> {
        requests_to(fake, "/users")
            .into_iter()
            .filter(|r| r.token.is_some())
            .collect()
    };
    bot.click(OP, OP, &screen, "🔄 Refresh");
    assert!(wait_until(WAIT, || counted(fake).len() >= 7));
    let again = counted(fake).split_off(4);
    assert_eq!(again.len(), 3, "{again:?}");
    assert!(
        again.iter().all(|r| r.query_value("page_size").is_none()),
        "{again:?}"
    );
}

// ---------------------------------------------------------------------------
// The real binary: `check`, and settings it refuses

/// Settings for the binary with these servers (FAST_TIMING included).
fn write_settings(tg: &FakeTelegram, dir: &TempDir, servers: &[Srv], tables: &str) -> String {
    let path = dir.join("settings.toml");
    std::fs::write(&path, settings_text(tg, dir, servers, "", tables)).unwrap();
    path.display().to_string()
}

/// Runs the binary to its end; (exit code, stdout, stderr).
fn run_bin(args: &[&str]) -> (Option<i32>, String, String) {
    let mut child = bin()
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut status = None;
    let finished = wait_until(Duration::from_secs(60), || {
        status = child.try_wait().unwrap();
        status.is_some()
    });
    if !finished {
        let _ = child.kill();
        let _ = child.wait();
        panic!("the binary did not finish: {args:?}");
    }
    let out = child.wait_with_output().unwrap();
    (
        status.and_then(|s| s.code()),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

// ---------------------------------------------------------------------------
// 7. API versions (R8)

#[test]
fn item_7_api_v4_is_a_settings_error_and_check_tells_whether_v4_is_served() {
    let tg = FakeTelegram::start();
    let dir = TempDir::new();
    let mut srv = Srv::new("Main");
    srv.extra = "api_version = \"v4\"".into();
    let path = write_settings(&tg, &dir, std::slice::from_ref(&srv), "");
    let (code, _, err) = run_bin(&["--config", &path]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains(
            "servers.Main.api_version: v4 is not supported: this bot speaks API v3.x (e.g. v3.3), \
             which TrueConf Server 5.5 still serves"
        ),
        "{err}"
    );

    // v3.11 works too (several prefixes at once); check says v4 is there.
    srv.extra = "api_version = \"v3.11\"".into();
    let path = write_settings(&tg, &dir, std::slice::from_ref(&srv), "");
    let (code, out, err) = run_bin(&["check", "--config", &path]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(
        out.contains(
            "✔ server 'Main': the server also serves API v4 (TrueConf Server 5.5 or later); the bot uses v3.11"
        ),
        "{out}"
    );
    assert!(
        srv.fake
            .requests()
            .iter()
            .any(|r| r.path == "/api/v4/server" && r.token.is_none())
    );
    srv.fake.set_v4(false);
    let (_, out, _) = run_bin(&["check", "--config", &path]);
    assert!(
        out.contains("✔ server 'Main': the server does not serve API v4 (older than 5.5)"),
        "{out}"
    );
}

// ---------------------------------------------------------------------------
// 8. The web/API layer is monitored, not only the core (R9)

#[test]
fn item_8_the_web_interface_gets_its_own_alert_and_recovery_while_vsstatus_is_up() {
    let bot = Bot::start_with(
        vec![Srv::new("Main").monitored(0.05)],
        Setup {
            tables: "[monitoring]\napi_check_every_seconds = 0.05\nfailures_before_down = 2\n"
                .into(),
            ..Setup::default()
        },
    );
    let fake = bot.srv(0);
    assert!(wait_until(WAIT, || web_checks(fake) >= 2));
    // PHP is down: the web server answers 502; /vsstatus still says OK.
    fake.set_web_down(Some(502));
    let down = "⚠️ The web interface/API of Main does not answer since ";
    for chat in [OP, OP2, VIEWER] {
        let alert = bot.wait(chat, |m| m.plain.starts_with(down));
        assert!(
            alert.plain.ends_with(": unexpected answer (HTTP 502)."),
            "{}",
            alert.plain
        );
    }
    assert!(wait_until(WAIT, || {
        state_json(&bot)["servers"]["Main"]["web_health"] == "down"
    }));
    // The Status screen shows both lines.
    let status = bot.open(OP, OP, "Main", "📊 Status");
    let lines: Vec<&str> = status.plain.lines().collect();
    assert_eq!(lines[1], "✅ The server is up.", "{}", status.plain);
    assert_eq!(
        lines[2], "⚠️ The web interface/API does not answer: unexpected answer (HTTP 502).",
        "{}",
        status.plain
    );
    fake.set_web_down(None);
    let up = bot.wait(OP, |m| {
        m.plain
            .starts_with("🟢 The web interface/API of Main answers again since ")
    });
    assert!(up.plain.contains("(it was out for "), "{}", up.plain);
    // One alert and one recovery each; the core never went DOWN.
    let history: Vec<String> = bot
        .tg
        .history(OP)
        .iter()
        .filter(|m| m.edits == 0)
        .map(|m| m.plain.clone())
        .collect();
    assert_eq!(history.iter().filter(|m| m.starts_with(down)).count(), 1);
    assert!(
        !history.iter().any(|m| m.contains("is DOWN")),
        "{history:?}"
    );
}

/// The web/API check runs on a fetcher, so a slow web layer never holds the
/// prober: probes keep their pace while checks wait for their answers (and
/// only one check of a server is under way at a time).
#[test]
fn item_8_a_slow_web_layer_does_not_hold_the_probes() {
    let bot = web_checked_bot();
    let fake = bot.srv(0);
    assert!(wait_until(WAIT, || web_checks(fake) >= 1));
    // Every API answer now takes far longer than a check may wait.
    fake.set_delay(Duration::from_secs(30));
    let (probes, checks) = (fake.probe_count(), web_checks(fake));
    assert!(fake.wait_probe_count(WAIT, probes + 20) >= probes + 20);
    // A prober that made the checks itself would have made one after each
    // probe, each waiting out its timeout.
    let more = web_checks(fake) - checks;
    assert!(more <= 5, "{more} web checks during 20 probes");
    fake.set_delay(Duration::ZERO);
}

#[test]
fn item_8_no_web_alert_while_the_core_is_down_only_after_it_is_up_again() {
    let bot = web_checked_bot();
    let fake = bot.srv(0);
    // The core answers 503: DOWN. Then the web layer fails too.
    fake.set_status_reply(503);
    bot.wait(OP, |m| m.plain.contains("Main is DOWN"));
    fake.set_web_down(Some(502));
    let probes = fake.probe_count();
    assert!(fake.wait_probe_count(WAIT, probes + 10) >= probes + 10);
    let web_alert = |bot: &Bot| {
        bot.tg.history(OP).iter().any(|m| {
            m.plain
                .contains("web interface/API of Main does not answer")
        })
    };
    assert!(!web_alert(&bot), "{}", bot.transcript(OP));
    // The core is back, the web layer is not: now its own alert comes.
    fake.set_status_reply(200);
    bot.wait(OP, |m| m.plain.contains("Main is UP again"));
    assert!(
        wait_until(WAIT, || web_alert(&bot)),
        "{}",
        bot.transcript(OP)
    );
}

/// A scan (or a screen) whose API requests got answers proved what a
/// web/API check would: the check makes no request of its own then. A scan
/// the web layer fails proves nothing, and the checks find it out.
#[test]
fn item_8_answers_to_scans_count_as_web_checks_and_failed_ones_do_not() {
    let bot = Bot::start_with(
        vec![Srv::new("Main").monitored(0.05)],
        Setup {
            // Scans every 0.3 s, checks every 1.2 s: a scan would have to
            // be 0.9 s late for a check to make its own request.
            tables: "[monitoring]\napi_check_every_seconds = 1.2\n\
                     [forgotten]\nafter_minutes = 1\nscan_every_minutes = 0.005\n"
                .into(),
            ..Setup::default()
        },
    );
    let fake = bot.srv(0);
    wait_scans(fake, 8);
    // The check at the start comes before the first scan; after it, none.
    assert!(web_checks(fake) <= 1, "{} web checks", web_checks(fake));
    fake.set_web_down(Some(502));
    let alert = bot.wait(OP, |m| {
        m.plain
            .starts_with("⚠️ The web interface/API of Main does not answer since ")
    });
    assert!(alert.plain.ends_with("(HTTP 502)."), "{}", alert.plain);
    assert!(web_checks(fake) >= 2, "{} web checks", web_checks(fake));
    fake.set_web_down(None);
    bot.wait(OP, |m| {
        m.plain
            .starts_with("🟢 The web interface/API of Main answers again since ")
    });
}

#[test]
fn item_8_api_check_every_seconds_0_switches_the_web_check_off() {
    let bot = Bot::start_with(
        vec![Srv::new("Main").monitored(0.05)],
        Setup {
            tables: "[monitoring]\napi_check_every_seconds = 0\n".into(),
            ..Setup::default()
        },
    );
    let fake = bot.srv(0);
    assert!(fake.wait_probe_count(WAIT, 10) >= 10);
    let status = bot.open(OP, OP, "Main", "📊 Status");
    assert!(!status.plain.contains("web interface"), "{}", status.plain);
    assert!(fake.requests().is_empty(), "{:?}", fake.requests());
}

// ---------------------------------------------------------------------------
// 9. The server's version

#[test]
fn item_9_the_version_shows_on_status_and_in_status_overview_from_header_or_body() {
    let bot = Bot::start(vec![Srv::new("Main")]);
    let status = bot.open(OP, OP, "Main", "📊 Status");
    assert!(
        status.plain.contains(&format!("ℹ️ {PRODUCT}")),
        "{}",
        status.plain
    );
    // Without a Server header the body names it.
    bot.srv(0).set_status_server_header(None);
    bot.say(OP, OP, "/status");
    let overview = bot.wait(OP, |m| m.plain.starts_with("All servers"));
    assert!(
        overview
            .plain
            .ends_with(&format!("user(s) online · {PRODUCT}")),
        "{}",
        overview.plain
    );
}

// ---------------------------------------------------------------------------
// 10. Token errors (R10)

#[test]
fn item_10_any_4xx_with_an_oauth2_error_is_rejected_credentials_with_the_servers_words() {
    let srv = Srv::new("Main");
    srv.fake.set_credentials_valid(false);
    srv.fake.set_token_refusal(TokenRefusal::Reason(422));
    let bot = Bot::start(vec![srv]);
    let fake = bot.srv(0);
    let screen = bot.open(OP, OP, "Main", "Running conferences");
    assert_eq!(
        screen.plain,
        "🖥 Main\n⚠️ The server rejected the bot's credentials. Check client_id and client_secret \
         (or access_token) in the settings. The server said: “InvalidCredentials: Invalid client credentials”."
    );
    fake.set_token_refusal(TokenRefusal::Nested(403));
    let screen = bot.tap(OP, OP, &screen, "Try again", "“Invalid client credentials”");
    assert!(screen.plain.contains("rejected the bot's credentials"));
    // An application that may not use the grant gets the advice that fits.
    fake.set_token_refusal(TokenRefusal::GrantNotAllowed);
    let screen = bot.tap(OP, OP, &screen, "Try again", "client-credentials grant");
    assert_eq!(
        screen.plain,
        "🖥 Main\n⚠️ The server rejected the bot's credentials: its OAuth2 application may not use \
         the client-credentials grant. Allow that grant for the application in the server's web interface. \
         The server said: “unauthorized_client: The grant type is unauthorized for this client_id”."
    );
    // Only token requests reached the server, each with the form it expects.
    assert!(
        fake.requests().iter().all(|r| r.path == "/oauth2/v1/token"),
        "{:?}",
        fake.requests()
    );
    assert!(!bot.transcript(OP).contains(CLIENT_SECRET));
}

// ---------------------------------------------------------------------------
// 11. Servers without credentials

#[test]
fn item_11_a_server_without_credentials_is_monitored_only() {
    let srv = Srv::new("Main").monitored(0.05);
    let tg = FakeTelegram::start();
    let dir = TempDir::new();
    let text = settings_text(&tg, &dir, std::slice::from_ref(&srv), "", "").replace(
        &format!("client_id = \"{CLIENT_ID}\"\nclient_secret = \"{CLIENT_SECRET}\""),
        "client_id = \"\"\nclient_secret = \"\"",
    );
    let loaded = trueconf_bot::config::parse(&text, &dir.join("settings.toml"), None)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        loaded
            .warnings
            .iter()
            .any(|w| w.contains("this server is monitored only")),
        "{:?}",
        loaded.warnings
    );
    // The harness writes settings with credentials: start, then restart on
    // the same settings without them (nothing was asked in between).
    let mut bot = Bot::start_on(tg, vec![srv], Setup::default());
    std::fs::write(&bot.settings, &text).unwrap();
    bot.restart();
    let status = bot.open(OP, OP, "Main", "📊 Status");
    assert!(
        status.plain.contains("✅ The server is up."),
        "{}",
        status.plain
    );
    let picker = bot.start_chat(OP);
    let menu = bot.tap(OP, OP, &picker, "Main", "What would you like to see?");
    let running = bot.tap(OP, OP, &menu, "Running conferences", "monitoring only");
    assert!(
        running.plain.contains(
            "This server is set up for monitoring only. To see its conferences and users, \
             fill in client_id and client_secret"
        ),
        "{}",
        running.plain
    );
    bot.say(OP, OP, "/status");
    let overview = bot.wait(OP, |m| m.plain.starts_with("All servers"));
    assert!(
        overview
            .plain
            .contains("✅ Main: up (monitoring only, no credentials)"),
        "{}",
        overview.plain
    );
    // No token was asked for and no API call made; only the unauthenticated web check.
    assert!(
        bot.srv(0)
            .requests()
            .iter()
            .all(|r| r.token.is_none() && r.path == "/api/v3.3/users"),
        "{:?}",
        bot.srv(0).requests()
    );
}

// ---------------------------------------------------------------------------
// 12. Recording

/// rec (recording), paused, quiet (not recording) and lively (not forgotten),
/// all 5 h old.
fn recordings(fake: &FakeTrueConf) {
    fake.set_conferences(vec![
        Conf::running("rec", 5 * H),
        Conf::running("paused", 5 * H),
        Conf::running("quiet", 5 * H),
        Conf::running("lively", 5 * H),
    ]);
    fake.set_recording("rec", 1);
    fake.set_recording("paused", 2);
    fake.set_participants(
        &session_id_for("lively"),
        vec![Participant::new("alice", 2), Participant::new("bob", 1)],
    );
}

/// GET /conferences/{id} requests so far.
fn conference_reads(fake: &FakeTrueConf) -> Vec<String> {
    fake.requests()
        .iter()
        .filter(|r| r.method == "GET")
        .filter_map(|r| r.path.strip_prefix("/api/v3.3/conferences/"))
        .map(str::to_string)
        .collect()
}

#[test]
fn item_12_pushes_show_recording() {
    let srv = Srv::new("Main");
    recordings(&srv.fake);
    let bot = Bot::start_with(vec![srv], scanning(""));
    let push = push_about(&bot, OP, "rec");
    assert!(
        push.plain.contains("🕸 nobody left · ⏺ recording"),
        "{}",
        push.plain
    );
    let push = push_about(&bot, OP, "paused");
    assert!(
        push.plain.contains("⏺ recording (paused)"),
        "{}",
        push.plain
    );
    let push = push_about(&bot, OP, "quiet");
    assert!(!push.plain.contains("⏺"), "{}", push.plain);
    assert!(!conference_reads(bot.srv(0)).contains(&"lively".to_string()));
}

#[test]
fn item_12_forgotten_entries_show_recording_and_the_reads_are_bounded() {
    let srv = Srv::new("Main");
    recordings(&srv.fake);
    let bot = Bot::start_with(
        vec![srv],
        Setup {
            tables: "[forgotten]\nafter_minutes = 240\n".into(),
            ..Setup::default()
        },
    );
    let fake = bot.srv(0);
    let list = bot.open(OP, OP, "Main", "Forgotten conferences");
    assert_eq!(linked_ids(&list.text), ["rec", "paused", "quiet"]);
    let entries: Vec<&str> = list.plain.split("\n\n").skip(1).collect();
    assert!(
        entries[0].ends_with("🕸 nobody left · ⏺ recording"),
        "{}",
        list.plain
    );
    assert!(
        entries[1].ends_with("🕸 nobody left · ⏺ recording (paused)"),
        "{}",
        list.plain
    );
    assert!(entries[2].ends_with("🕸 nobody left"), "{}", list.plain);
    // Only forgotten ones are asked, once each.
    let mut reads = conference_reads(fake);
    reads.sort();
    assert_eq!(reads, ["paused", "quiet", "rec"]);

    // A server without the field: nothing shown.
    fake.set_recording_field(false);
    let list = bot.tap(OP, OP, &list, "🔄 Refresh", "Forgotten conferences");
    assert!(!list.plain.contains("⏺"), "{}", list.plain);

    // Twenty more forgotten: at most 16 conference reads for one search.
    let mut confs: Vec<Conf> = (0..20)
        .map(|i| Conf::running(&format!("many{i:02}"), 2 * H))
        .collect();
    confs.push(Conf::running("rec", 5 * H));
    fake.set_conferences(confs);
    let before = conference_reads(fake).len();
    let one = bot.tap(OP, OP, &list, "1 h", "running longer than 1 h");
    assert!(one.plain.contains("): 21"), "{}", one.plain);
    assert_eq!(conference_reads(fake).len() - before, 16);
}

// ---------------------------------------------------------------------------
// 13. check --report: every answer described, no value printed

#[test]
fn item_13_check_report_describes_every_answer_and_prints_no_value() {
    let tg = FakeTelegram::start();
    let dir = TempDir::new();
    let srv = Srv::new("Zentrale Nord-Ost");
    let fake = &srv.fake;
    let mut confs = vec![
        Conf::running("room-4815162342", 4000),
        Conf::running("board-meeting-q3", 9000),
        Conf::ended("retro-xyzzy", 600),
    ];
    confs[0].topic = Some("Quarterly figures Plugh".into());
    confs[0].owner = Some("wilhelmina@tc.local".into());
    fake.set_conferences(confs);
    fake.set_participants(
        &session_id_for("room-4815162342"),
        vec![
            Participant::new("wilhelmina", 2),
            Participant::without_role("sipgateway").left(60),
        ],
    );
    fake.set_recording("room-4815162342", 1);
    fake.set_users(vec![
        User {
            id: "bartholomew".into(),
            status: 1,
        },
        User {
            id: "cordelia".into(),
            status: 0,
        },
    ]);
    fake.set_users_cap(PageCap::Reject(500));
    let path = write_settings(&tg, &dir, std::slice::from_ref(&srv), "");
    let (code, out, err) = run_bin(&["check", "--report", "--config", &path]);
    println!("{out}");
    assert_eq!(code, Some(0), "{out}{err}");

    // Read-only: nothing was stopped.
    assert!(fake.stop_requests().is_empty());
    assert!(requests_to(fake, "/stop").is_empty());
    // Nothing else is printed (settings warnings stay out of a report).
    assert_eq!(err, "");
    // No value from the fake: names, topics, ids, secrets, tokens, addresses.
    let tokens: Vec<String> = fake
        .requests()
        .iter()
        .filter_map(|r| r.token.clone())
        .collect();
    assert!(!tokens.is_empty());
    let mut values: Vec<String> = vec![
        "Zentrale",
        "room-4815162342",
        "4815162342",
        "board-meeting",
        "retro-xyzzy",
        "Plugh",
        "Quarterly",
        "wilhelmina",
        "sipgateway",
        "bartholomew",
        "cordelia",
        "alice",
        "tc.local",
        "127.0.0.1",
        "#vcs",
        CLIENT_ID,
        CLIENT_SECRET,
        TOKEN,
        "5.5.2.10",
    ]
    .into_iter()
    .map(str::to_string)
    .collect();
    values.push(fake.ip());
    values.push(fake.status_port().to_string());
    values.push(dir.path().display().to_string());
    values.extend(tokens);
    values.extend(["room", "board", "retro"].map(|s| format!("{s}-")));
    for value in &values {
        assert!(!out.contains(value.as_str()), "{value:?} printed:\n{out}");
        assert!(!err.contains(value.as_str()), "{value:?} printed:\n{err}");
    }
    // It answers the questions of the evidence's §7.
    for needle in [
        "server 1 of 1: api_version v3.3",
        "/vsstatus: up; header names: connection, content-type, server; Connection: close; \
         Content-Length: absent; Server header: a product and a version; version: found",
        "/api/v4/server without a token: HTTP 200, JSON object: product (object {display_name string})",
        "token (client_credentials): HTTP 200, JSON object: access_token (string), expires_in (number), \
         scope (string), token_type (string)",
        "token with a wrong client_secret: HTTP 400, JSON object: error (string), error_description (string); \
         error reason: invalid_client",
        "a made-up token on /api/v3.3/users: HTTP 403",
        "error reason: accessTokenInvalid",
        "a made-up token on /api/v4/conferences: HTTP 401",
        "/logs/calls running rows: 2 of 3; running rows come first; of them with class: 2, with type: 2, \
         with a number duration: 2",
        "/logs/calls paging (page_size=2): page_id=0 gives the same rows as the first page; \
         page_id=1 gives the same rows as the first page; page_id=2 gives other rows than the first page; \
         so pages count from 1 (page_id=0 is the first page too)",
        "/users page_size=1000: HTTP 400",
        "/users paging: next_page_id on the first page: -1; pages read: 1; users: 2; \
         next_page_id on the last page: -1; status values: 0, 1",
        "without a number role: 1 of 2; role values: 2; with leave_time: 1 (not null: 1)",
        "participants of an ended session: HTTP 404",
        "participants of a made-up session: HTTP 404",
        "error reason: conferenceSessionNotFound",
        "/conferences/{id} recording fields: recording (number) = 1, stream_recording_state (number) = 1",
        "stop: not tried (check --report never stops anything)",
    ] {
        assert!(out.contains(needle), "no {needle:?} in:\n{out}");
    }
}
