//! Issue 3: menus, the TrueConf client, isolation of slow servers, status and
//! monitoring, running / online / forgotten conferences, stopping, roles and
//! `callback_data` limits, end to end against the fakes.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::json;

use crate::harness::*;
use crate::support::fake_telegram::{Msg, Reply};
use crate::support::fake_trueconf::{
    ApiReply, CLIENT_ID, CLIENT_SECRET, Conf, FakeTrueConf, Participant, Req, Tls, session_id_for,
};
use crate::support::{refused_port, wait_until};
use trueconf_bot::callback::{List, Press, conference_key};
use trueconf_bot::config::short_key;

// ---------------------------------------------------------------------------
// Helpers

fn has_button(msg: &Msg, label: &str) -> bool {
    labels(msg).iter().any(|l| l == label)
}

/// The text of the answerCallbackQuery for a press, and whether it is an alert.
fn toast(bot: &Bot, callback_id: &str) -> (Option<String>, bool) {
    let answer = bot.answer(callback_id);
    let alert = answer
        .params
        .get("show_alert")
        .and_then(|v| v.as_bool())
        .unwrap_or(false);
    (answer.str("text"), alert)
}

fn token_requests(fake: &FakeTrueConf) -> Vec<Req> {
    fake.requests()
        .into_iter()
        .filter(|r| r.path == "/oauth2/v1/token")
        .collect()
}

/// API requests (token requests excluded) whose decoded path ends with `suffix`.
fn api_requests(fake: &FakeTrueConf, suffix: &str) -> Vec<Req> {
    fake.requests()
        .into_iter()
        .filter(|r| r.path.starts_with("/api/") && r.path.ends_with(suffix))
        .collect()
}

fn stop_posts(fake: &FakeTrueConf) -> Vec<Req> {
    fake.requests()
        .into_iter()
        .filter(|r| r.method == "POST" && r.path.ends_with("/stop"))
        .collect()
}

/// A running conference with everything the list shows chosen by the test.
fn conf(
    named: Option<&str>,
    seed: &str,
    topic: Option<&str>,
    owner: Option<&str>,
    secs: i64,
) -> Conf {
    Conf {
        conference_id: session_id_for(seed),
        named_conf_id: named.map(str::to_string),
        topic: topic.map(str::to_string),
        class: 10,
        owner: owner.map(str::to_string),
        participant_count: 3,
        duration: secs,
        running: true,
    }
}

/// The conference ids linked (`/c/ID`) on a list page, in order.
fn linked_ids(html: &str) -> Vec<String> {
    html.split("/c/")
        .skip(1)
        .map(|rest| rest.split('"').next().unwrap_or("").to_string())
        .collect()
}

/// "k/N" of a paginated list.
fn page_of(msg: &Msg) -> Option<(usize, usize)> {
    labels(msg).iter().find_map(|l| {
        let (k, n) = l.split_once('/')?;
        Some((k.parse().ok()?, n.parse().ok()?))
    })
}

/// A port on loopback where nothing listens.
fn state_json(bot: &Bot) -> serde_json::Value {
    std::fs::read_to_string(bot.dir.join("state/state.json"))
        .ok()
        .and_then(|s| serde_json::from_str(&s).ok())
        .unwrap_or(serde_json::Value::Null)
}

/// Every callback_data a chat ever showed.
fn all_callback_data(bot: &Bot, chat: i64) -> Vec<String> {
    bot.tg
        .history(chat)
        .iter()
        .flat_map(|m| m.all_buttons())
        .map(|(_, d)| d)
        .filter(|d| !d.starts_with("http"))
        .collect()
}

const ERR_CREDENTIALS: &str = "The server rejected the bot's credentials. Check client_id and client_secret (or access_token) in the settings. \
     The server said: “invalid_client: The client credentials are invalid”.";
const OUTDATED: &str = "This button is outdated. Send /start.";
const OPERATORS_ONLY: &str = "Only operators may do this.";
const DENIED: &str = "⛔ Access denied.";
const NO_LONGER_RUNNING: &str = "ℹ️ That conference is no longer running.";

// ---------------------------------------------------------------------------
// 1. Menus

#[test]
fn every_screen_has_back_to_the_menu_and_all_of_it_happens_in_one_message() {
    let srv = Srv::new("Main");
    srv.fake.set_conferences(vec![Conf::running("alpha", 4000)]);
    let bot = Bot::start(vec![srv]);
    let picker = bot.start_chat(OP);
    let mut menu = bot.tap(OP, OP, &picker, "Main", "What would you like to see?");
    assert_eq!(menu.plain, "🖥 Main\nWhat would you like to see?");
    for (entry, shows) in [
        ("📊 Status", "The server is up."),
        ("🎥 Running conferences", "Running conferences: 1"),
        ("👥 Users online", "Users online: 0 of 0."),
        (
            "🕸 Forgotten conferences",
            "Forgotten conferences (running longer than 1 h): 1",
        ),
    ] {
        let screen = bot.tap(OP, OP, &menu, entry, shows);
        assert!(
            has_button(&screen, "‹ Back"),
            "{entry}: {:?}",
            screen.buttons
        );
        menu = bot.tap(OP, OP, &screen, "‹ Back", "What would you like to see?");
        assert_eq!(menu.plain, "🖥 Main\nWhat would you like to see?");
    }
    let again = bot.tap(OP, OP, &menu, "‹ Back", "Choose a server");
    assert_eq!(labels(&again), ["Main"]);
    // Eleven versions, all of the picker message: nothing was sent anew.
    let ids: Vec<i64> = bot.tg.history(OP).iter().map(|m| m.message_id).collect();
    assert!(
        ids.iter().all(|&id| id == picker.message_id),
        "{ids:?}\n{}",
        bot.transcript(OP)
    );
    assert_eq!(bot.tg.calls_to("sendmessage").len(), 1);
    assert_eq!(again.edits, 10);
}

#[test]
fn a_message_that_cannot_be_edited_is_replaced_by_a_new_one() {
    let bot = Bot::start(vec![Srv::new("Main")]);
    let picker = bot.start_chat(OP);
    let menu = bot.tap(OP, OP, &picker, "Main", "What would you like to see?");

    // A press on a message the chat no longer has (Telegram sends an
    // InaccessibleMessage): a worker screen, then a poller screen.
    bot.press(OP, OP, 9_999, &data(&menu, "📊 Status"));
    let status = bot.wait(OP, |m| {
        m.message_id > menu.message_id && m.plain.contains("The server is up.")
    });
    assert!(has_button(&status, "‹ Back"));
    assert!(
        bot.tg
            .calls_to("editmessagetext")
            .iter()
            .any(|c| c.int("message_id") == Some(9_999)),
        "the bot did not try the edit first"
    );
    bot.press(OP, OP, 9_998, &data(&picker, "Main"));
    let menu2 = bot.wait(OP, |m| {
        m.message_id > status.message_id && m.plain.contains("What would you like")
    });
    assert_eq!(menu2.edits, 0);

    // A known message that Telegram no longer lets us edit.
    bot.tg.script(
        "editMessageText",
        Reply::error(400, "Bad Request: message can't be edited"),
    );
    bot.press(
        OP,
        OP,
        menu2.message_id,
        &data(&menu2, "🎥 Running conferences"),
    );
    let list = bot.wait(OP, |m| {
        m.message_id > menu2.message_id && m.plain.contains("Running conferences: 0")
    });
    assert_eq!(list.edits, 0);
    let old = bot
        .tg
        .messages(OP)
        .into_iter()
        .find(|m| m.message_id == menu2.message_id)
        .unwrap();
    assert_eq!(old, menu2, "the old message changed");
    assert_eq!(bot.tg.messages(OP).len(), 4, "{}", bot.transcript(OP));

    // "message is not modified" (a refresh that changes nothing) is success:
    // nothing is sent anew. The status screen after it comes from the same
    // worker, so the refresh has been dealt with when it shows.
    let (sent, edits) = (
        bot.tg.calls_to("sendmessage").len(),
        bot.tg.calls_to("editmessagetext").len(),
    );
    bot.press(OP, OP, list.message_id, &data(&list, "🔄 Refresh"));
    // Served alone (a later press on the message would make it moot).
    bot.tg.wait_count(WAIT, "editmessagetext", edits + 1);
    bot.press(OP, OP, list.message_id, &data(&menu2, "📊 Status"));
    bot.edited(OP, &list, "The server is up.");
    assert_eq!(bot.tg.calls_to("editmessagetext").len(), edits + 2);
    assert_eq!(
        bot.tg.calls_to("sendmessage").len(),
        sent,
        "{}",
        bot.transcript(OP)
    );
}

// ---------------------------------------------------------------------------
// 2. The TrueConf client

#[test]
fn one_token_from_the_client_credentials_grant_serves_every_screen() {
    let srv = Srv::new("Main");
    srv.fake.set_conferences(vec![
        Conf::running("alpha", 4000),
        Conf::running("beta", 9000),
    ]);
    srv.fake.generate_users(30, 3);
    let bot = Bot::start(vec![srv]);
    let fake = bot.srv(0);
    let running = bot.open(OP, OP, "Main", "Running conferences");
    assert!(
        running.plain.contains("Running conferences: 2"),
        "{}",
        running.plain
    );
    let menu = bot.tap(OP, OP, &running, "‹ Back", "What would you like");
    let online = bot.tap(OP, OP, &menu, "👥 Users online", "Users online: 10 of 30.");
    let menu = bot.tap(OP, OP, &online, "‹ Back", "What would you like");
    let forgotten = bot.tap(
        OP,
        OP,
        &menu,
        "🕸 Forgotten conferences",
        "Forgotten conferences",
    );
    assert!(forgotten.plain.contains("): 2"), "{}", forgotten.plain);

    let tokens = token_requests(fake);
    assert_eq!(tokens.len(), 1, "{tokens:?}");
    let grant = &tokens[0];
    assert_eq!(grant.method, "POST");
    let form: BTreeMap<String, String> = grant
        .body
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    assert_eq!(
        form.get("grant_type").map(String::as_str),
        Some("client_credentials")
    );
    assert_eq!(form.get("client_id").map(String::as_str), Some(CLIENT_ID));
    assert_eq!(
        form.get("client_secret").map(String::as_str),
        Some(CLIENT_SECRET)
    );
    // Calls log, users, calls log again and two participant lists: one token.
    let api: Vec<Req> = fake
        .requests()
        .into_iter()
        .filter(|r| r.path.starts_with("/api/"))
        .collect();
    assert!(api.len() >= 5, "{api:?}");
    let used = api[0].token.clone().expect("a token");
    assert!(
        api.iter().all(|r| r.token.as_ref() == Some(&used)),
        "{api:?}"
    );
}

#[test]
fn an_expired_token_is_renewed_and_the_request_retried_once() {
    let srv = Srv::new("Main");
    srv.fake.set_conferences(vec![Conf::running("alpha", 4000)]);
    let bot = Bot::start(vec![srv]);
    let fake = bot.srv(0);
    let list = bot.open(OP, OP, "Main", "Running conferences");
    assert!(list.plain.contains("alpha"));
    let calls_before = api_requests(fake, "/logs/calls").len();
    let first_token = api_requests(fake, "/logs/calls")[0].token.clone();

    fake.expire_tokens();
    fake.set_conferences(vec![
        Conf::running("alpha", 4000),
        Conf::running("gamma", 60),
    ]);
    let refreshed = bot.tap(OP, OP, &list, "🔄 Refresh", "gamma");
    assert!(
        refreshed.plain.contains("Running conferences: 2"),
        "{}",
        refreshed.plain
    );
    assert!(!refreshed.plain.contains('⚠'), "{}", refreshed.plain);

    assert_eq!(token_requests(fake).len(), 2);
    let after: Vec<Req> = api_requests(fake, "/logs/calls").split_off(calls_before);
    assert_eq!(after.len(), 2, "one refused call and one retry: {after:?}");
    assert_eq!(after[0].token, first_token);
    assert_ne!(after[1].token, first_token);
}

#[test]
fn ids_in_api_paths_are_percent_encoded() {
    let srv = Srv::new("Main");
    srv.fake.set_conferences(vec![Conf::running("alpha", 4000)]);
    let bot = Bot::start(vec![srv]);
    let fake = bot.srv(0);
    let forgotten = bot.open(OP, OP, "Main", "Forgotten conferences");
    assert!(forgotten.plain.contains("): 1"), "{}", forgotten.plain);
    let session = session_id_for("alpha");
    let asked = api_requests(fake, "/participants");
    assert_eq!(asked.len(), 1, "{asked:?}");
    assert_eq!(
        asked[0].path,
        format!("/api/v3.3/conference-sessions/{session}/participants")
    );
    let raw = &asked[0].raw_path;
    assert!(raw.contains("%40") && raw.contains("%23"), "{raw}");
    assert!(!raw.contains('@') && !raw.contains('#'), "{raw}");
    // The management link is encoded the same way.
    let encoded = session.replace('@', "%40").replace('#', "%23");
    assert!(
        forgotten
            .text
            .contains(&format!("/tools/real-time/{encoded}?a=cookies")),
        "{}",
        forgotten.text
    );
}

#[test]
fn a_refused_connection_is_reported_as_unreachable() {
    let port = refused_port();
    let tables = format!(
        "[servers.\"Dead\"]\nip = \"127.0.0.1:{port}\"\nclient_id = \"{CLIENT_ID}\"\n\
         client_secret = \"{CLIENT_SECRET}\"\nssl_certificate = true\nstatus_port = {port}\n"
    );
    let bot = Bot::start_with(
        vec![Srv::new("Main")],
        Setup {
            tables,
            ..Setup::default()
        },
    );
    let screen = bot.open(OP, OP, "Dead", "Running conferences");
    assert_eq!(
        screen.plain,
        "🖥 Dead\n⚠️ The server cannot be reached (connection refused). Check that it runs and that \
         the address in the settings (ip) is right."
    );
    assert_eq!(labels(&screen), ["🔄 Try again", "‹ Back"]);
    let menu = bot.tap(OP, OP, &screen, "‹ Back", "What would you like");
    let online = bot.tap(OP, OP, &menu, "👥 Users online", "cannot be reached");
    assert!(!online.plain.contains("credentials"), "{}", online.plain);
    // The other server is untouched by all of this.
    assert!(bot.srv(0).requests().is_empty());
}

/// The English sentence for an untrusted certificate on server `name`.
fn untrusted(name: &str) -> String {
    format!(
        "🖥 {name}\n⚠️ The server's TLS certificate is not trusted (certificate not trusted: unknown \
         issuer). Set ssl_certificate in the settings to the server's certificate file (or its CA)."
    )
}

#[test]
fn a_certificate_not_in_the_pinned_file_is_untrusted_naming_the_setting() {
    let mut srv = Srv::new("Foreign pin");
    srv.ssl = toml_str(&srv.fake.other_self_signed_pem_path().display().to_string());
    let bot = Bot::start(vec![srv]);
    let screen = bot.open(OP, OP, "Foreign pin", "Running conferences");
    assert_eq!(screen.plain, untrusted("Foreign pin"));
    // Not even the token request got past the handshake.
    assert!(
        bot.srv(0).requests().is_empty(),
        "{:?}",
        bot.srv(0).requests()
    );
}

#[test]
fn a_private_ca_is_untrusted_by_the_built_in_roots_naming_the_setting() {
    let mut srv = Srv::new("Public roots");
    srv.ssl = "true".into();
    let bot = Bot::start(vec![srv]);
    let screen = bot.open(OP, OP, "Public roots", "Running conferences");
    assert_eq!(screen.plain, untrusted("Public roots"));
    assert!(
        bot.srv(0).requests().is_empty(),
        "{:?}",
        bot.srv(0).requests()
    );
}

#[test]
fn rejected_client_credentials_are_reported_as_such() {
    let srv = Srv::new("Main");
    srv.fake.set_credentials_valid(false);
    let bot = Bot::start(vec![srv]);
    let screen = bot.open(OP, OP, "Main", "Running conferences");
    assert_eq!(screen.plain, format!("🖥 Main\n⚠️ {ERR_CREDENTIALS}"));
    let fake = bot.srv(0);
    assert_eq!(token_requests(fake).len(), 1);
    assert_eq!(fake.requests().len(), 1, "no API call without a token");
}

#[test]
fn a_missing_permission_is_named() {
    let srv = Srv::new("Main");
    srv.fake.set_missing_scope("/logs/calls");
    srv.fake.generate_users(10, 2);
    let bot = Bot::start(vec![srv]);
    let screen = bot.open(OP, OP, "Main", "Running conferences");
    assert_eq!(
        screen.plain,
        "🖥 Main\n⚠️ The bot's OAuth2 application lacks a permission for logs.calls:read (logs/calls). Grant it in the \
         server's web interface."
    );
    // The token itself is fine: it is neither renewed nor blamed.
    assert_eq!(token_requests(bot.srv(0)).len(), 1);
    assert_eq!(api_requests(bot.srv(0), "/logs/calls").len(), 1);
    let menu = bot.tap(OP, OP, &screen, "‹ Back", "What would you like");
    bot.tap(OP, OP, &menu, "👥 Users online", "Users online: 5 of 10.");
}

#[test]
fn an_html_error_page_is_an_unexpected_answer_with_its_status() {
    let srv = Srv::new("Main");
    srv.fake.set_conferences(vec![Conf::running("alpha", 4000)]);
    srv.fake.script("/api/v3.3/logs/calls", ApiReply::html(502));
    let bot = Bot::start(vec![srv]);
    let screen = bot.open(OP, OP, "Main", "Running conferences");
    assert_eq!(
        screen.plain,
        "🖥 Main\n⚠️ The server gave an unexpected answer (HTTP 502)."
    );
    // The proxy recovers: Try again shows the list.
    let list = bot.tap(OP, OP, &screen, "🔄 Try again", "Running conferences: 1");
    assert!(list.plain.contains("alpha"));
}

#[test]
fn a_pinned_self_signed_ca_certificate_is_trusted() {
    let srv = Srv::with_tls("Self-signed", Tls::SelfSigned);
    srv.fake.set_conferences(vec![Conf::running("alpha", 4000)]);
    let bot = Bot::start(vec![srv]);
    let list = bot.open(OP, OP, "Self-signed", "Running conferences");
    assert!(
        list.plain.contains("Running conferences: 1"),
        "{}",
        list.plain
    );
    assert!(list.plain.contains("alpha"));
    assert_eq!(token_requests(bot.srv(0)).len(), 1);
}

// ---------------------------------------------------------------------------
// 3. Isolation

#[test]
fn a_slow_server_delays_neither_other_servers_nor_the_poller() {
    let slow = Srv::new("Slow");
    slow.fake
        .set_conferences(vec![Conf::running("slow-one", 100)]);
    let quick = Srv::new("Quick");
    quick
        .fake
        .set_conferences(vec![Conf::running("quick-one", 100)]);
    let bot = Bot::start(vec![slow, quick]);
    let slow_list = bot.open(OP, OP, "Slow", "Running conferences");
    assert!(slow_list.plain.contains("slow-one"));

    // From now on the slow server takes 1.5 s for every answer (within the
    // tests' 2 s request timeout, far beyond anything else here).
    let fake = bot.srv(0);
    fake.set_conferences(vec![
        Conf::running("slow-one", 100),
        Conf::running("slow-two", 100),
    ]);
    fake.set_delay(Duration::from_millis(1500));
    let asked = api_requests(fake, "/logs/calls").len();
    bot.click(OP, OP, &slow_list, "🔄 Refresh");
    let pending = fake.wait_requests(WAIT, |r| r.path.ends_with("/logs/calls"), asked + 1);
    assert_eq!(pending.len(), asked + 1, "the slow request never left");

    // Meanwhile: the other server's screen, and /start in another chat.
    let quick_list = bot.open(OP, OP, "Quick", "Running conferences");
    assert!(
        quick_list.plain.contains("quick-one"),
        "{}",
        quick_list.plain
    );
    let viewer_picker = bot.start_chat(VIEWER);
    // A press about the busy server is still answered at once (its screen
    // will come when the server gets to it).
    let busy = Press::Status(short_key("Slow")).encode();
    bot.press(VIEWER, VIEWER, viewer_picker.message_id, &busy);
    let slow_now = bot
        .tg
        .messages(OP)
        .into_iter()
        .find(|m| m.message_id == slow_list.message_id)
        .unwrap();
    assert_eq!(slow_now, slow_list, "the slow screen came first");
    assert!(!bot.transcript(OP).contains("slow-two"));

    // And the slow answer still arrives, in its own message.
    let late = bot.tg.wait_message(Duration::from_secs(25), OP, |m| {
        m.message_id == slow_list.message_id && m.plain.contains("slow-two")
    });
    assert!(
        late.is_some(),
        "the slow screen never came:\n{}",
        bot.transcript(OP)
    );
}

// ---------------------------------------------------------------------------
// 4. Status and monitoring

#[test]
fn operators_switch_monitoring_to_the_state_the_button_names() {
    let bot = Bot::start(vec![Srv::new("Main")]);
    let status = bot.open(OP, OP, "Main", "📊 Status");
    assert_eq!(
        status.plain,
        "🖥 Main\n✅ The server is up.\n✅ The web interface/API answers.\nℹ️ TrueConf Server 5.5.2.10\n\
         🔕 Monitoring is off: no alerts for this server."
    );
    assert_eq!(
        labels(&status),
        [
            "🔕 Silence 1 h",
            "🔕 4 h",
            "🔕 24 h",
            "🔔 Turn monitoring on",
            "🔄 Refresh",
            "‹ Back"
        ]
    );
    let turn_on = data(&status, "🔔 Turn monitoring on");

    let on = bot.tap(OP, OP, &status, "🔔 Turn monitoring on", "Monitoring is on");
    assert!(
        on.plain
            .contains("🔔 Monitoring is on: checked every 50 ms."),
        "{}",
        on.plain
    );
    assert!(has_button(&on, "🔕 Turn monitoring off") && !has_button(&on, "🔔 Turn monitoring on"));
    assert!(wait_until(
        WAIT,
        || state_json(&bot)["servers"]["Main"]["monitoring"] == json!(true)
    ));

    // The same "on" button pressed again (a double tap) keeps it on. The
    // running list opened after it comes from the same worker, so the repeated
    // press has been handled when that list shows.
    bot.press(OP, OP, on.message_id, &turn_on);
    bot.open(OP, OP, "Main", "Running conferences");
    let latest = bot
        .tg
        .messages(OP)
        .into_iter()
        .find(|m| m.message_id == status.message_id)
        .unwrap();
    assert!(
        latest.plain.contains("Monitoring is on"),
        "{}",
        latest.plain
    );
    assert_eq!(
        state_json(&bot)["servers"]["Main"]["monitoring"],
        json!(true)
    );

    let off = bot.tap(
        OP,
        OP,
        &latest,
        "🔕 Turn monitoring off",
        "Monitoring is off",
    );
    // As before, and now with the history of the time it was watched.
    assert!(off.plain.starts_with(&status.plain), "{}", off.plain);
    assert!(has_button(&off, "🔔 Turn monitoring on"));
    assert!(wait_until(
        WAIT,
        || state_json(&bot)["servers"]["Main"]["monitoring"] == json!(false)
    ));
}

#[test]
fn viewers_see_no_toggle_and_a_forged_toggle_changes_nothing() {
    let bot = Bot::start(vec![Srv::new("Main")]);
    let op_status = bot.open(OP, OP, "Main", "📊 Status");
    let turn_on = data(&op_status, "🔔 Turn monitoring on");
    let status = bot.open(VIEWER, VIEWER, "Main", "📊 Status");
    assert!(
        status.plain.contains("Monitoring is off"),
        "{}",
        status.plain
    );
    assert_eq!(labels(&status), ["🔄 Refresh", "‹ Back"]);

    let id = bot.press(VIEWER, VIEWER, status.message_id, &turn_on);
    assert_eq!(toast(&bot, &id), (Some(OPERATORS_ONLY.to_string()), true));
    // The operator's next status screen (same worker, so after anything the
    // forged press could have started) still says off.
    let menu = bot.tap(OP, OP, &op_status, "‹ Back", "What would you like");
    let again = bot.tap(OP, OP, &menu, "📊 Status", "Monitoring is off");
    assert!(has_button(&again, "🔔 Turn monitoring on"));
    assert!(
        state_json(&bot)["servers"]["Main"]
            .get("monitoring")
            .is_none(),
        "{}",
        state_json(&bot)
    );
    let viewer_now = bot.tg.last_message(VIEWER).unwrap();
    assert_eq!(viewer_now, status);
}

// ---------------------------------------------------------------------------
// 5. Running conferences

#[test]
fn running_conferences_are_escaped_with_placeholders_links_and_no_p2p_or_ended() {
    let srv = Srv::new("Main");
    srv.fake.set_conferences(vec![
        conf(
            Some("amp"),
            "amp",
            Some("<b>&</b>"),
            Some("alice@tc.local"),
            4000,
        ),
        Conf::p2p("call", 300, true),
        conf(Some("anon"), "anon", None, None, 59),
        Conf::ended("over", 7200),
        Conf::p2p("old-call", 30, false),
    ]);
    let bot = Bot::start(vec![srv]);
    let ip = bot.srv(0).ip();
    let list = bot.open(OP, OP, "Main", "Running conferences");
    assert_eq!(
        list.plain,
        "🖥 Main\nRunning conferences: 2\n\n\
         1. amp — <b>&</b>\n👤 alice@tc.local · 👥 3 · ⏱ 1:06:40 · manage\n\n\
         2. anon — no topic\n👤 unknown owner · 👥 3 · ⏱ 0:00:59 · manage"
    );
    assert!(
        list.text.contains("&lt;b&gt;&amp;&lt;/b&gt;"),
        "{}",
        list.text
    );
    for (id, seed) in [("amp", "amp"), ("anon", "anon")] {
        let session = session_id_for(seed).replace('@', "%40").replace('#', "%23");
        assert!(
            list.text
                .contains(&format!("<a href=\"https://{ip}/c/{id}\">{id}</a>")),
            "{}",
            list.text
        );
        assert!(
            list.text.contains(&format!(
                "href=\"https://{ip}/tools/real-time/{session}?a=cookies\""
            )),
            "{}",
            list.text
        );
    }
    assert_eq!(
        labels(&list),
        ["⛔ Stop amp", "⛔ Stop anon", "🔄 Refresh", "‹ Back"]
    );
    for gone in [
        session_id_for("call"),
        session_id_for("old-call"),
        "Topic over".to_string(),
    ] {
        assert!(!list.text.contains(&gone), "{gone} listed:\n{}", list.text);
    }
}

#[test]
fn three_hundred_running_conferences_are_paged_and_each_is_reached_once() {
    let srv = Srv::new("Main");
    let topic = format!("Weekly <sync> & review {}", "of everything ".repeat(20));
    let mut confs: Vec<Conf> = (0..300)
        .map(|i| {
            let id = format!("room-{i:03}");
            conf(
                Some(&id),
                &id,
                Some(&topic),
                Some(&format!("{}@tc.local", "owner".repeat(12))),
                3600 + i,
            )
        })
        .collect();
    confs.extend((0..40).map(|i| Conf::ended(&format!("ended-{i}"), 100)));
    confs.extend((0..5).map(|i| Conf::p2p(&format!("p2p-{i}"), 100, true)));
    srv.fake.set_conferences(confs);
    let bot = Bot::start(vec![srv]);

    let mut page = bot.open(OP, OP, "Main", "Running conferences");
    assert!(
        page.plain.contains("Running conferences: 300"),
        "{}",
        page.plain
    );
    let (_, pages) = page_of(&page).expect("a page indicator");
    assert!(pages > 1);
    let mut seen: Vec<Vec<String>> = Vec::new();
    loop {
        let (k, n) = page_of(&page).unwrap();
        assert_eq!((k, n), (seen.len() + 1, pages));
        assert!(page.plain.encode_utf16().count() <= 4096);
        seen.push(linked_ids(&page.text));
        if !has_button(&page, "›") {
            break;
        }
        bot.press(OP, OP, page.message_id, &data(&page, "›"));
        let (id, edits) = (page.message_id, page.edits);
        page = bot.wait(OP, |m| {
            m.message_id == id && m.edits > edits && page_of(m) == Some((k + 1, pages))
        });
    }
    assert_eq!(seen.len(), pages);
    let mut got: Vec<String> = seen.concat();
    got.sort();
    let expected: Vec<String> = (0..300).map(|i| format!("room-{i:03}")).collect();
    assert_eq!(got, expected, "every conference exactly once");

    // ‹ goes back to the page before, with the same conferences.
    assert!(!has_button(&page, "›"));
    bot.press(OP, OP, page.message_id, &data(&page, "‹"));
    let (id, edits) = (page.message_id, page.edits);
    let back = bot.wait(OP, |m| {
        m.message_id == id && m.edits > edits && page_of(m) == Some((pages - 1, pages))
    });
    assert_eq!(linked_ids(&back.text), seen[pages - 2]);
    // The log was read past its first page of 200 rows.
    let asked = api_requests(bot.srv(0), "/logs/calls");
    assert!(asked.iter().any(|r| {
        r.query_value("page_id")
            .is_some_and(|p| p.parse::<u32>().unwrap_or(0) >= 2)
    }));
}

// ---------------------------------------------------------------------------
// 6. Online users

#[test]
fn online_users_are_counted_over_every_page() {
    let srv = Srv::new("Main");
    let online = srv.fake.generate_users(20_000, 7);
    let bot = Bot::start(vec![srv]);
    let screen = bot.open(OP, OP, "Main", "Users online");
    assert_eq!(
        screen.plain,
        format!("🖥 Main\nUsers online: {online} of 20000.")
    );
    let pages = api_requests(bot.srv(0), "/users");
    assert_eq!(pages.len(), 20, "page_size 1000 and next_page_id followed");
    let ids: Vec<Option<&str>> = pages.iter().map(|r| r.query_value("page_id")).collect();
    assert_eq!(ids[0], None);
    for (i, id) in ids.iter().enumerate().skip(1) {
        assert_eq!(*id, Some(i.to_string().as_str()));
    }
}

#[test]
fn a_user_list_without_end_is_counted_as_partial() {
    let srv = Srv::new("Main");
    let page = |next: i64| {
        ApiReply::json(
            200,
            json!({"next_page_id": next, "users": [{"id": "a", "status": 1}, {"id": "b", "status": 0}]}),
        )
    };
    // A server that sends us in a circle…
    srv.fake.script("/api/v3.3/users", page(1));
    srv.fake.script("/api/v3.3/users", page(1));
    let bot = Bot::start(vec![srv]);
    let screen = bot.open(OP, OP, "Main", "Users online");
    assert_eq!(
        screen.plain,
        "🖥 Main\nUsers online: 2 of 4.\n⚠️ The server kept sending more pages; the count stopped early \
         and may be too low."
    );

    // …and one whose next_page_id never ends.
    let fake = bot.srv(0);
    let limit = trueconf_bot::trueconf::MAX_USER_PAGES;
    for i in 0..limit + 5 {
        fake.script("/api/v3.3/users", page(i as i64 + 1));
    }
    let before = api_requests(fake, "/users").len();
    let endless = bot.tap(
        OP,
        OP,
        &screen,
        "🔄 Refresh",
        &format!("Users online: {limit} of"),
    );
    assert!(
        endless.plain.contains("the count stopped early"),
        "{}",
        endless.plain
    );
    assert_eq!(api_requests(fake, "/users").len() - before, limit);
}

// ---------------------------------------------------------------------------
// 7. Forgotten conferences

const H: i64 = 3600;

#[test]
fn forgotten_conferences_follow_the_three_rules_and_the_chosen_threshold() {
    let srv = Srv::new("Main");
    let fake = &srv.fake;
    fake.set_conferences(vec![
        Conf::running("empty-room", 9 * H),
        Conf::running("owner-alone", 3 * H),
        Conf::running("no-leader", 5 * H),
        Conf::running("lively", 10 * H),
        Conf::running("two-leaders", 6 * H),
        Conf::running("fresh", 30 * 60),
        Conf::running("unreadable", 90 * 60),
        Conf::running("vanished", 100 * 60),
    ]);
    fake.set_participants(
        &session_id_for("owner-alone"),
        vec![Participant::new("alice", 2)],
    );
    fake.set_participants(
        &session_id_for("no-leader"),
        vec![Participant::new("bob", 1), Participant::new("carol", 1)],
    );
    fake.set_participants(
        &session_id_for("lively"),
        vec![Participant::new("alice", 2), Participant::new("bob", 1)],
    );
    fake.set_participants(
        &session_id_for("two-leaders"),
        vec![Participant::new("alice", 2), Participant::new("dave", 2)],
    );
    // Participants that cannot be read (a server error), and a session the
    // server no longer knows (a ghost of the log, not shown at all).
    let prefix = |seed: &str| format!("/api/v3.3/conference-sessions/{}", session_id_for(seed));
    fake.script(
        &prefix("unreadable"),
        ApiReply::json(500, json!({"error": "internal"})),
    );
    let missing =
        json!({"error": {"code": 404, "errors": [{"reason": "conferenceSessionNotFound"}]}});
    fake.script(&prefix("vanished"), ApiReply::json(404, missing));
    // The configured threshold (8 h) is the one the menu opens with. Going
    // down from there also keeps each burst of parallel participant requests
    // within what the fake's HTTP server takes on fresh connections at once.
    let tables = "[forgotten]\nafter_minutes = 480\n".to_string();
    let bot = Bot::start_with(
        vec![srv],
        Setup {
            tables,
            ..Setup::default()
        },
    );
    let fake = bot.srv(0);

    let eight = bot.open(OP, OP, "Main", "Forgotten conferences");
    assert!(
        eight
            .plain
            .contains("Forgotten conferences (running longer than 8 h): 1"),
        "{}",
        eight.plain
    );
    assert_eq!(linked_ids(&eight.text), ["empty-room"]);
    assert_eq!(
        labels(&eight),
        [
            "⛔ Stop empty-room",
            "1 h",
            "2 h",
            "4 h",
            "✓ 8 h",
            "🔄 Refresh",
            "‹ Back"
        ]
    );
    // Too young to matter: their participants are not even asked for.
    let asked =
        |seed: &str| api_requests(fake, &format!("{}/participants", session_id_for(seed))).len();
    assert_eq!((asked("no-leader"), asked("fresh")), (0, 0));

    let four = bot.tap(OP, OP, &eight, "4 h", "running longer than 4 h");
    assert_eq!(linked_ids(&four.text), ["empty-room", "no-leader"]);
    assert!(has_button(&four, "✓ 4 h") && has_button(&four, "8 h") && !has_button(&four, "✓ 8 h"));
    let two = bot.tap(OP, OP, &four, "2 h", "running longer than 2 h");
    assert!(two.plain.contains("): 3"), "{}", two.plain);
    assert_eq!(
        linked_ids(&two.text),
        ["empty-room", "owner-alone", "no-leader"]
    );
    assert!(has_button(&two, "✓ 2 h"));

    let one = bot.tap(OP, OP, &two, "1 h", "running longer than 1 h");
    assert!(
        one.plain
            .contains("Forgotten conferences (running longer than 1 h): 4"),
        "{}",
        one.plain
    );
    assert_eq!(
        linked_ids(&one.text),
        ["empty-room", "owner-alone", "no-leader", "unreadable"]
    );
    let note = "❔ Participants could not be read: check it yourself.";
    for entry in one.plain.split("\n\n").skip(1) {
        let unknown = entry.contains("unreadable");
        assert_eq!(entry.contains(note), unknown, "{entry}");
    }
    assert_eq!(
        labels(&one)[4..],
        ["✓ 1 h", "2 h", "4 h", "8 h", "🔄 Refresh", "‹ Back"]
    );
    assert!(
        !labels(&one)
            .iter()
            .any(|l| l.contains("lively") || l.contains("two-leaders"))
    );
    assert_eq!(asked("fresh"), 0);
    // Readable again: judged by its (empty) participant list. The session the
    // server did not know stays out, without being asked about again.
    let vanished_asked = asked("vanished");
    let again = bot.tap(OP, OP, &one, "🔄 Refresh", "Forgotten conferences");
    assert!(
        !again.plain.contains("could not be read"),
        "{}",
        again.plain
    );
    assert_eq!(linked_ids(&again.text).len(), 4);
    assert_eq!(asked("vanished"), vanished_asked);
}

#[test]
fn a_stop_from_the_forgotten_list_returns_to_it_at_its_threshold() {
    let srv = Srv::new("Main");
    srv.fake.set_conferences(vec![
        Conf::running("old", 5 * H),
        Conf::running("older", 9 * H),
    ]);
    let bot = Bot::start(vec![srv]);
    let list = bot.open(OP, OP, "Main", "Forgotten conferences");
    let four = bot.tap(OP, OP, &list, "4 h", "running longer than 4 h");
    let confirm = bot.tap(OP, OP, &four, "⛔ Stop old", "Stop this conference?");
    let done = bot.tap(OP, OP, &confirm, "⛔ Yes, stop", "has been stopped");
    assert!(
        done.plain
            .starts_with("✅ Conference old has been stopped."),
        "{}",
        done.plain
    );
    assert!(
        done.plain
            .contains("Forgotten conferences (running longer than 4 h): 1"),
        "{}",
        done.plain
    );
    assert_eq!(linked_ids(&done.text), ["older"]);
    assert!(has_button(&done, "✓ 4 h"));
    assert_eq!(bot.srv(0).stop_requests(), ["old"]);
}

// ---------------------------------------------------------------------------
// 8. Stopping a conference

fn two_conferences() -> Bot {
    let srv = Srv::new("Main");
    srv.fake.set_conferences(vec![
        Conf::running("alpha", 4000),
        Conf::running("beta", 5000),
    ]);
    Bot::start(vec![srv])
}

#[test]
fn a_stop_is_confirmed_then_sent_once_and_the_list_refreshed() {
    let bot = two_conferences();
    let list = bot.open(OP, OP, "Main", "Running conferences");
    let confirm = bot.tap(OP, OP, &list, "⛔ Stop alpha", "Stop this conference?");
    assert_eq!(
        confirm.plain,
        "Stop this conference?\n\nConference: alpha\nServer: Main\nTopic: Topic alpha\nRunning for: 1:06:40\n\n\
         Everyone in it will be disconnected."
    );
    assert_eq!(labels(&confirm), ["⛔ Yes, stop", "Cancel"]);
    assert!(stop_posts(bot.srv(0)).is_empty(), "asking stopped it");

    let done = bot.tap(OP, OP, &confirm, "⛔ Yes, stop", "has been stopped");
    assert!(
        done.plain
            .starts_with("✅ Conference alpha has been stopped.\n\n🖥 Main\nRunning conferences: 1"),
        "{}",
        done.plain
    );
    assert_eq!(linked_ids(&done.text), ["beta"]);
    assert_eq!(labels(&done), ["⛔ Stop beta", "🔄 Refresh", "‹ Back"]);
    let posts = stop_posts(bot.srv(0));
    assert_eq!(posts.len(), 1);
    assert_eq!(posts[0].raw_path, "/api/v3.3/conferences/alpha/stop");
    assert_eq!(bot.srv(0).stop_requests(), ["alpha"]);
    assert!(!bot.srv(0).conferences()[0].running);
}

#[test]
fn cancel_returns_to_the_list_without_a_stop() {
    let bot = two_conferences();
    let list = bot.open(OP, OP, "Main", "Running conferences");
    let confirm = bot.tap(OP, OP, &list, "⛔ Stop beta", "Stop this conference?");
    let back = bot.tap(OP, OP, &confirm, "Cancel", "Running conferences: 2");
    assert_eq!(linked_ids(&back.text), ["alpha", "beta"]);
    assert_eq!(back.plain, list.plain);
    assert!(stop_posts(bot.srv(0)).is_empty());
}

#[test]
fn a_double_tap_on_yes_stops_once_and_the_second_tap_says_it_is_gone() {
    let bot = two_conferences();
    let list = bot.open(OP, OP, "Main", "Running conferences");
    let confirm = bot.tap(OP, OP, &list, "⛔ Stop alpha", "Stop this conference?");
    let yes = data(&confirm, "⛔ Yes, stop");
    let first = bot.tg.push_callback(OP, OP, confirm.message_id, &yes, None);
    let second = bot.tg.push_callback(OP, OP, confirm.message_id, &yes, None);
    let answered = |id: &str| {
        bot.tg
            .wait_for(WAIT, |c| {
                c.method == "answercallbackquery"
                    && c.str("callback_query_id").as_deref() == Some(id)
            })
            .is_some()
    };
    assert!(answered(&first) && answered(&second));
    let last = bot.edited(OP, &confirm, NO_LONGER_RUNNING);
    assert!(
        last.plain.contains("Running conferences: 1"),
        "{}",
        last.plain
    );
    let versions: Vec<String> = bot.tg.history(OP).into_iter().map(|m| m.plain).collect();
    let stopped = versions
        .iter()
        .position(|p| p.contains("alpha has been stopped"))
        .expect("stopped");
    let gone = versions
        .iter()
        .position(|p| p.starts_with(NO_LONGER_RUNNING))
        .unwrap();
    assert!(stopped < gone, "{versions:?}");
    assert_eq!(bot.srv(0).stop_requests(), ["alpha"]);
    assert_eq!(stop_posts(bot.srv(0)).len(), 1);
}

#[test]
fn stopping_a_conference_that_ended_meanwhile_says_so() {
    let bot = two_conferences();
    let fake = bot.srv(0);
    let list = bot.open(OP, OP, "Main", "Running conferences");

    // Gone from the log before the confirmation: nothing is sent.
    let confirm = bot.tap(OP, OP, &list, "⛔ Stop alpha", "Stop this conference?");
    fake.set_conferences(vec![
        Conf::ended("alpha", 4000),
        Conf::running("beta", 5000),
    ]);
    let gone = bot.tap(OP, OP, &confirm, "⛔ Yes, stop", NO_LONGER_RUNNING);
    assert!(
        gone.plain.contains("Running conferences: 1"),
        "{}",
        gone.plain
    );
    assert!(stop_posts(fake).is_empty());

    // Still in the log, but the server no longer has the session: it refuses
    // the stop (not running), and its participants call says "not found".
    let confirm = bot.tap(OP, OP, &gone, "⛔ Stop beta", "Stop this conference?");
    fake.make_ghost(&session_id_for("beta"));
    let ended = bot.tap(OP, OP, &confirm, "⛔ Yes, stop", "had already ended");
    assert!(
        ended
            .plain
            .starts_with("ℹ️ Conference beta had already ended.\n\n🖥 Main\nRunning conferences: 0"),
        "{}",
        ended.plain
    );
    assert_eq!(stop_posts(fake).len(), 1);
}

#[test]
fn a_failed_stop_says_why_and_keeps_the_conference_listed() {
    let bot = two_conferences();
    let fake = bot.srv(0);
    let list = bot.open(OP, OP, "Main", "Running conferences");
    let confirm = bot.tap(OP, OP, &list, "⛔ Stop alpha", "Stop this conference?");
    fake.set_missing_scope("/conferences");
    let failed = bot.tap(OP, OP, &confirm, "⛔ Yes, stop", "could not be stopped");
    assert!(
        failed.plain.starts_with(
            "⚠️ Conference alpha could not be stopped: The bot's OAuth2 application lacks a \
             permission for conferences:write (conferences/stop). Grant it in the server's web interface.\n\n🖥 Main\n\
             Running conferences: 2"
        ),
        "{}",
        failed.plain
    );
    assert_eq!(linked_ids(&failed.text), ["alpha", "beta"]);
    fake.clear_missing_scopes();

    let confirm = bot.tap(OP, OP, &failed, "⛔ Stop beta", "Stop this conference?");
    fake.script("/api/v3.3/conferences/beta/stop", ApiReply::html(502));
    let failed = bot.tap(OP, OP, &confirm, "⛔ Yes, stop", "could not be stopped");
    assert!(
        failed.plain.starts_with(
            "⚠️ Conference beta could not be stopped: The server gave an unexpected answer (HTTP 502)."
        ),
        "{}",
        failed.plain
    );
    assert_eq!(linked_ids(&failed.text), ["alpha", "beta"]);
    assert_eq!(stop_posts(fake).len(), 2);
    assert!(fake.conferences().iter().all(|c| c.running));
}

#[test]
fn a_session_without_conference_id_has_no_stop_and_a_forged_stop_is_refused() {
    let srv = Srv::new("Main");
    srv.fake.set_conferences(vec![
        conf(
            None,
            "adhoc",
            Some("Ad hoc call"),
            Some("bob@tc.local"),
            4000,
        ),
        Conf::running("alpha", 4000),
    ]);
    let bot = Bot::start(vec![srv]);
    let list = bot.open(OP, OP, "Main", "Running conferences");
    let session = session_id_for("adhoc");
    assert!(
        list.plain.contains(&format!(
            "1. session {session} (no conference id) — Ad hoc call"
        )),
        "{}",
        list.plain
    );
    assert_eq!(labels(&list), ["⛔ Stop alpha", "🔄 Refresh", "‹ Back"]);

    let server = short_key("Main");
    let key = conference_key(&session);
    let ask = Press::AskStop(server.clone(), key.clone(), List::Running).encode();
    let refused = "ℹ️ That session has no conference id, so it cannot be stopped from here.";
    bot.press(OP, OP, list.message_id, &ask);
    let after_ask = bot.edited(OP, &list, refused);
    assert!(after_ask.plain.contains("Running conferences: 2"));
    // The confirmed form, too (a back-dated or crafted button).
    let menu = bot.tap(OP, OP, &after_ask, "‹ Back", "What would you like");
    let list = bot.tap(
        OP,
        OP,
        &menu,
        "🎥 Running conferences",
        "Running conferences: 2",
    );
    bot.press(
        OP,
        OP,
        list.message_id,
        &Press::Stop(server, key, List::Running).encode(),
    );
    bot.edited(OP, &list, refused);
    assert!(stop_posts(bot.srv(0)).is_empty());
}

// ---------------------------------------------------------------------------
// 9. Roles

#[test]
fn a_stranger_in_a_group_cannot_use_copied_stop_buttons() {
    let bot = two_conferences();
    bot.say(OP, GROUP, "/start");
    let picker = bot.wait(GROUP, |m| m.plain.contains("Choose a server"));
    let menu = bot.tap(OP, GROUP, &picker, "Main", "What would you like");
    let list = bot.tap(
        OP,
        GROUP,
        &menu,
        "🎥 Running conferences",
        "Running conferences: 2",
    );

    let ask = bot.press(
        STRANGER,
        GROUP,
        list.message_id,
        &data(&list, "⛔ Stop alpha"),
    );
    assert_eq!(toast(&bot, &ask), (Some(DENIED.to_string()), true));
    let confirm = bot.tap(OP, GROUP, &list, "⛔ Stop alpha", "Stop this conference?");
    let yes = data(&confirm, "⛔ Yes, stop");
    let denied = bot.press(STRANGER, GROUP, confirm.message_id, &yes);
    assert_eq!(toast(&bot, &denied).0.as_deref(), Some(DENIED));
    assert!(bot.srv(0).stop_requests().is_empty());

    // The operator cancels: the same worker has now done everything queued
    // before, and still nothing was stopped.
    let back = bot.tap(OP, GROUP, &confirm, "Cancel", "Running conferences: 2");
    assert!(bot.srv(0).stop_requests().is_empty());
    assert!(stop_posts(bot.srv(0)).is_empty());
    assert_eq!(bot.tg.messages(GROUP).len(), 1, "{}", bot.transcript(GROUP));
    assert_eq!(
        back.edits,
        confirm.edits + 1,
        "the stranger's presses changed the message"
    );
}

#[test]
fn a_viewers_forged_stop_is_denied() {
    let bot = two_conferences();
    let op_list = bot.open(OP, OP, "Main", "Running conferences");
    let ask = data(&op_list, "⛔ Stop alpha");
    let confirm = bot.tap(OP, OP, &op_list, "⛔ Stop alpha", "Stop this conference?");
    let yes = data(&confirm, "⛔ Yes, stop");

    let list = bot.open(VIEWER, VIEWER, "Main", "Running conferences");
    assert_eq!(linked_ids(&list.text), ["alpha", "beta"]);
    assert_eq!(
        labels(&list),
        ["🔄 Refresh", "‹ Back"],
        "no stop buttons for viewers"
    );
    for forged in [&ask, &yes] {
        let id = bot.press(VIEWER, VIEWER, list.message_id, forged);
        assert_eq!(toast(&bot, &id), (Some(OPERATORS_ONLY.to_string()), true));
    }
    // Everything queued on the worker before this is done when it shows.
    bot.tap(OP, OP, &confirm, "Cancel", "Running conferences: 2");
    assert!(bot.srv(0).stop_requests().is_empty());
    assert!(stop_posts(bot.srv(0)).is_empty());
    assert_eq!(bot.tg.last_message(VIEWER).unwrap(), list);
}

#[test]
fn garbage_callback_data_is_outdated_and_does_nothing_else() {
    let bot = two_conferences();
    let list = bot.open(OP, OP, "Main", "Running conferences");
    let requests = bot.srv(0).requests().len();
    let sent = bot.tg.calls_to("sendmessage").len();
    let edits = bot.tg.calls_to("editmessagetext").len();
    let server = short_key("Main");
    for garbage in [
        "zz".to_string(),
        "y:not-a-key:alpha:r".to_string(),
        format!("y:{server}:{}:r", "x".repeat(12)),
        format!("r:{server}"),
        "💥".repeat(16),
        String::new(),
    ] {
        let id = bot.press(OP, OP, list.message_id, &garbage);
        assert_eq!(toast(&bot, &id).0.as_deref(), Some(OUTDATED), "{garbage:?}");
    }
    // Well formed, but for a server that is not (or no longer) configured.
    let id = bot.press(
        OP,
        OP,
        list.message_id,
        &Press::Status("0badc0de".into()).encode(),
    );
    assert_eq!(
        toast(&bot, &id).0.as_deref(),
        Some("This server is no longer configured. Send /start.")
    );
    // A real press afterwards is served; the garbage left no trace.
    let menu = bot.tap(OP, OP, &list, "‹ Back", "What would you like");
    bot.tap(OP, OP, &menu, "📊 Status", "The server is up.");
    assert_eq!(bot.tg.calls_to("sendmessage").len(), sent);
    assert_eq!(bot.tg.calls_to("editmessagetext").len(), edits + 2);
    // The Status screen asks the web interface without a token (issue 11);
    // nothing else reached the API.
    let api_after: Vec<Req> = bot.srv(0).requests().split_off(requests);
    assert!(
        api_after
            .iter()
            .all(|r| r.token.is_none() && r.path == "/api/v3.3/users"),
        "{api_after:?}"
    );
    assert!(bot.srv(0).stop_requests().is_empty());
}

// ---------------------------------------------------------------------------
// 10. Long names and ids

#[test]
fn long_names_and_ids_keep_callback_data_within_64_bytes_through_a_whole_stop() {
    let name = format!("Zentrale <Büro> & \"RZ\" {}", "Ш".repeat(200));
    let name: String = name.chars().take(200).collect();
    let id: String = format!("{}@room#1", "k".repeat(121));
    assert_eq!((name.chars().count(), id.chars().count()), (200, 128));
    let srv = Srv::new(&name);
    srv.fake.set_conferences(vec![conf(
        Some(&id),
        "long",
        Some("Board"),
        Some("alice@tc.local"),
        2 * H,
    )]);
    let bot = Bot::start(vec![srv]);
    let presses_before = bot.tg.calls_to("answercallbackquery").len();

    let list = bot.open(OP, OP, "Zentrale <Büro>", "Running conferences");
    // Titles show the first 100 characters of a long name.
    let shown: String = name.chars().take(100).collect();
    assert!(list.plain.contains(&format!("{shown}…")), "{}", list.plain);
    assert!(list.plain.contains(&id));
    let stop_label = labels(&list)
        .into_iter()
        .find(|l| l.starts_with("⛔ Stop kkkk"))
        .expect("a stop button");
    let confirm = bot.tap(OP, OP, &list, &stop_label, "Stop this conference?");
    assert!(
        confirm
            .plain
            .contains(&format!("Conference: {id}\nServer: {shown}…\n")),
        "{}",
        confirm.plain
    );
    let done = bot.tap(OP, OP, &confirm, "⛔ Yes, stop", "has been stopped");
    assert!(
        done.plain
            .starts_with(&format!("✅ Conference {id} has been stopped.")),
        "{}",
        done.plain
    );
    assert!(done.plain.contains("Running conferences: 0"));
    assert_eq!(bot.srv(0).stop_requests(), [id.as_str()]);
    let raw = &stop_posts(bot.srv(0))[0].raw_path;
    assert!(
        raw.ends_with(&format!("{}%40room%231/stop", "k".repeat(121))),
        "{raw}"
    );

    // Every button the chat ever showed fits, and every press was answered once.
    let all = all_callback_data(&bot, OP);
    assert!(all.len() > 10);
    for d in &all {
        assert!(!d.is_empty() && d.len() <= 64, "{d:?} is {} bytes", d.len());
    }
    let answers = bot.tg.calls_to("answercallbackquery");
    assert_eq!(
        answers.len() - presses_before,
        4,
        "server, running, stop, yes"
    );
    let mut ids: Vec<String> = answers
        .iter()
        .filter_map(|c| c.str("callback_query_id"))
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), answers.len(), "a press answered twice");
}

#[test]
fn a_slow_screen_does_not_overwrite_where_the_user_went_meanwhile() {
    let bot = two_conferences();
    let menu = bot.open(OP, OP, "Main", "Status");
    let menu = bot.tap(OP, OP, &menu, "‹ Back", "What would you like to see?");
    // Slow, but within the tests' 2 s request timeout (token, then list).
    bot.srv(0).set_delay(Duration::from_secs(1));
    // Running conferences (slow), then Back at once, then Users online: the
    // worker serves them in order, so when Users online is shown the running
    // list was ready too — and must not have been shown.
    bot.press(
        OP,
        OP,
        menu.message_id,
        &data(&menu, "🎥 Running conferences"),
    );
    assert_eq!(
        bot.srv(0)
            .wait_requests(WAIT, |r| r.path.ends_with("/logs/calls"), 1)
            .len(),
        1
    );
    let back_to_picker = bot.tap(OP, OP, &menu, "‹ Back", "Choose a server");
    bot.click(OP, OP, &back_to_picker, "Main");
    let menu = bot.edited(OP, &back_to_picker, "What would you like to see?");
    bot.srv(0).set_delay(Duration::ZERO);
    bot.tap(OP, OP, &menu, "👥 Users online", "Users online:");
    let versions = bot.tg.history(OP);
    assert!(
        !versions
            .iter()
            .any(|m| m.plain.contains("Running conferences: 2")),
        "the late list overwrote the user's screen:\n{}",
        bot.transcript(OP)
    );
}

#[test]
fn a_token_is_renewed_before_it_expires_without_a_refused_call() {
    let srv = Srv::new("Main");
    srv.fake.set_conferences(vec![Conf::running("alpha", 4000)]);
    srv.fake.set_token_ttl(2);
    let bot = Bot::start(vec![srv]);
    let fake = bot.srv(0);
    let list = bot.open(OP, OP, "Main", "Running conferences");
    let calls_before = api_requests(fake, "/logs/calls").len();
    // The token's lifetime runs out (the fake says when).
    assert!(fake.wait_tokens_expired(WAIT), "the token never expired");
    fake.set_conferences(vec![
        Conf::running("alpha", 4000),
        Conf::running("gamma", 60),
    ]);
    bot.tap(OP, OP, &list, "🔄 Refresh", "gamma");
    assert_eq!(token_requests(fake).len(), 2, "no new token");
    let after = api_requests(fake, "/logs/calls").split_off(calls_before);
    assert_eq!(after.len(), 1, "the old token was tried first: {after:?}");
}

#[test]
fn a_screen_that_telegram_refuses_for_a_moment_is_shown_on_the_next_try() {
    let bot = two_conferences();
    let menu = bot.open(OP, OP, "Main", "Status");
    let menu = bot.tap(OP, OP, &menu, "‹ Back", "What would you like to see?");
    bot.tg.script("editMessageText", Reply::bad_gateway_html());
    let list = bot.tap(
        OP,
        OP,
        &menu,
        "🎥 Running conferences",
        "Running conferences: 2",
    );
    assert_eq!(list.message_id, menu.message_id);
    let edits = bot.tg.calls_to("editMessageText");
    assert!(edits.len() >= 2, "no second try");
}
