//! Proof that the test doubles in `tests/support` behave like the real servers,
//! driven by a plain ureq client.

mod support;

use serde_json::{Value, json};
use std::io::Write;
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};
use support::fake_telegram::{self as tg, FakeTelegram, Reply};
use support::fake_trueconf::{
    self as tc, ApiReply, Conf, FakeTrueConf, PageCap, Participant, Tls, TokenRefusal, User,
    php_date, session_id_for,
};

const WAIT: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------
// A small HTTP client

struct Resp {
    status: u16,
    body: String,
    headers: Vec<(String, String)>,
}

impl Resp {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

fn config() -> ureq::config::ConfigBuilder<ureq::typestate::AgentScope> {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .proxy(None)
        .timeout_global(Some(Duration::from_secs(30)))
}

fn agent() -> ureq::Agent {
    config().build().into()
}

fn tls_agent(pem_path: &Path) -> ureq::Agent {
    let pem = std::fs::read(pem_path).expect("read PEM");
    let certs: Vec<ureq::tls::Certificate<'static>> = ureq::tls::parse_pem(&pem)
        .filter_map(|item| match item {
            Ok(ureq::tls::PemItem::Certificate(c)) => Some(c),
            _ => None,
        })
        .collect();
    assert!(
        !certs.is_empty(),
        "no certificate in {}",
        pem_path.display()
    );
    let tls = ureq::tls::TlsConfig::builder()
        .root_certs(ureq::tls::RootCerts::new_with_certs(&certs))
        .build();
    config().tls_config(tls).build().into()
}

fn send(
    agent: &ureq::Agent,
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> Result<Resp, ureq::Error> {
    let mut resp = if method == "GET" {
        let mut rq = agent.get(url);
        for (k, v) in headers {
            rq = rq.header(*k, *v);
        }
        rq.call()?
    } else {
        let mut rq = agent.post(url);
        for (k, v) in headers {
            rq = rq.header(*k, *v);
        }
        match body {
            Some(b) => rq.send(b)?,
            None => rq.send_empty()?,
        }
    };
    let status = resp.status().as_u16();
    let headers = resp
        .headers()
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
        .collect();
    let body = resp.body_mut().read_to_string()?;
    Ok(Resp {
        status,
        body,
        headers,
    })
}

/// Calls a Telegram method with a JSON body; returns (HTTP status, envelope).
fn tg_call(fake: &FakeTelegram, method: &str, params: Value) -> (u16, Value) {
    tg_call_token(fake, tg::TOKEN, method, params)
}

fn tg_call_token(fake: &FakeTelegram, token: &str, method: &str, params: Value) -> (u16, Value) {
    let url = format!("{}/bot{token}/{method}", fake.base_url());
    let r = send(
        &agent(),
        "POST",
        &url,
        &[("Content-Type", "application/json")],
        Some(&params.to_string()),
    )
    .expect("request to the fake Telegram");
    let v = r.json();
    assert_eq!(v["ok"].as_bool(), Some(r.status == 200), "{}", r.body);
    if r.status != 200 {
        assert_eq!(v["error_code"].as_u64(), Some(u64::from(r.status)));
    }
    (r.status, v)
}

fn description(v: &Value) -> &str {
    v["description"].as_str().unwrap_or("")
}

fn send_text(fake: &FakeTelegram, chat: i64, text: &str) -> (u16, Value) {
    tg_call(
        fake,
        "sendMessage",
        json!({ "chat_id": chat, "text": text, "parse_mode": "HTML" }),
    )
}

// ---------------------------------------------------------------------------
// Shared helpers

#[test]
fn temp_dir_is_unique_and_removed() {
    let a = support::TempDir::new();
    let b = support::TempDir::new();
    assert_ne!(a.path(), b.path());
    std::fs::write(a.join("x"), "1").unwrap();
    let p = a.path().to_path_buf();
    drop(a);
    assert!(!p.exists());
}

#[test]
fn wait_until_wakes_on_fake_changes_and_times_out() {
    let fake = FakeTelegram::start();
    let t0 = Instant::now();
    assert!(!support::wait_until(Duration::from_millis(100), || false));
    assert!(t0.elapsed() >= Duration::from_millis(100));
    std::thread::scope(|s| {
        s.spawn(|| fake.push_message(1, 1, "hi", None));
        assert!(support::wait_until(WAIT, || fake.pending_updates() == 1));
    });
}

#[test]
fn php_dates_are_utc_civil_time() {
    assert_eq!(php_date(0)["date"], "1970-01-01 00:00:00.000000");
    assert_eq!(
        php_date(1_735_725_600)["date"],
        "2025-01-01 10:00:00.000000"
    );
    assert_eq!(php_date(951_782_400)["date"], "2000-02-29 00:00:00.000000");
    assert_eq!(php_date(0)["timezone"], "UTC");
}

// ---------------------------------------------------------------------------
// Fake Telegram

#[test]
fn tg_get_me_webhook_and_unknown_method() {
    let fake = FakeTelegram::start();
    let (s, v) = tg_call(&fake, "getMe", json!({}));
    assert_eq!(s, 200);
    assert_eq!(v["result"]["username"], tg::BOT_USERNAME);
    assert_eq!(v["result"]["is_bot"], true);
    // Empty body, other case of the method name.
    let url = format!("{}/bot{}/DELETEWEBHOOK", fake.base_url(), tg::TOKEN);
    let r = send(&agent(), "POST", &url, &[], None).unwrap();
    assert_eq!((r.status, r.json()["result"].clone()), (200, json!(true)));
    let (s, v) = tg_call(&fake, "getChatFoo", json!({}));
    assert_eq!((s, description(&v)), (404, "Not Found: method not found"));
    // Every call was recorded, lowercased.
    let methods: Vec<String> = fake.calls().into_iter().map(|c| c.method).collect();
    assert_eq!(methods, ["getme", "deletewebhook", "getchatfoo"]);
}

#[test]
fn tg_wrong_or_revoked_token_is_401() {
    let fake = FakeTelegram::start();
    let (s, v) = tg_call_token(&fake, "1:wrong", "getMe", json!({}));
    assert_eq!((s, description(&v)), (401, "Unauthorized"));
    assert_eq!(tg_call(&fake, "getMe", json!({})).0, 200);
    fake.set_token("987:new");
    assert_eq!(tg_call(&fake, "getMe", json!({})).0, 401);
    assert_eq!(tg_call_token(&fake, "987:new", "getMe", json!({})).0, 200);
    assert_eq!(fake.calls_to("getme").len(), 4);
}

#[test]
fn tg_long_poll_returns_a_pushed_update_and_confirms_by_offset() {
    let fake = FakeTelegram::start();
    std::thread::scope(|s| {
        let poll = s.spawn(|| {
            let t0 = Instant::now();
            let r = tg_call(
                &fake,
                "getUpdates",
                json!({ "timeout": 20, "allowed_updates": ["message", "callback_query"] }),
            );
            (r, t0.elapsed())
        });
        // The poll is held once it is recorded (recording and holding are atomic).
        assert_eq!(fake.wait_count(WAIT, "getUpdates", 1).len(), 1);
        let id = fake.push_message(7, 7, "/start now", Some("de"));
        assert_eq!(id, 1000);
        let ((status, v), elapsed) = poll.join().unwrap();
        assert_eq!(status, 200);
        assert!(elapsed < Duration::from_secs(15), "{elapsed:?}");
        let u = &v["result"][0];
        assert_eq!(u["update_id"], 1000);
        assert_eq!(u["message"]["text"], "/start now");
        assert_eq!(u["message"]["chat"]["type"], "private");
        assert_eq!(u["message"]["from"]["language_code"], "de");
        assert_eq!(
            u["message"]["entities"][0],
            json!({ "type": "bot_command", "offset": 0, "length": 6 })
        );
    });
    assert_eq!(
        fake.allowed_updates(),
        Some(json!(["message", "callback_query"]))
    );
    // Not confirmed yet: delivered again; an offset above it confirms it.
    let (_, v) = tg_call(&fake, "getUpdates", json!({ "timeout": 0 }));
    assert_eq!(v["result"].as_array().unwrap().len(), 1);
    fake.push_message(8, -100, "hello group", None);
    let (_, v) = tg_call(&fake, "getUpdates", json!({ "offset": 1001, "timeout": 0 }));
    assert_eq!(v["result"][0]["update_id"], 1001);
    assert_eq!(v["result"][0]["message"]["chat"]["type"], "group");
    assert!(v["result"][0]["message"].get("entities").is_none());
    assert_eq!(fake.pending_updates(), 1);
    // A timeout with nothing to deliver answers [] after the timeout.
    let t0 = Instant::now();
    let (_, v) = tg_call(&fake, "getUpdates", json!({ "offset": 1002, "timeout": 1 }));
    assert_eq!(v["result"], json!([]));
    assert!(t0.elapsed() >= Duration::from_millis(900));
    assert_eq!(fake.pending_updates(), 0);
    assert_eq!(fake.concurrent_polls(), 0);
}

#[test]
fn tg_second_poll_terminates_the_held_one_with_409() {
    let fake = FakeTelegram::start();
    std::thread::scope(|s| {
        let first = s.spawn(|| tg_call(&fake, "getUpdates", json!({ "timeout": 30 })));
        fake.wait_count(WAIT, "getupdates", 1);
        let t0 = Instant::now();
        let (s2, v2) = tg_call(&fake, "getUpdates", json!({ "timeout": 0 }));
        assert_eq!((s2, v2["result"].clone()), (200, json!([])));
        let (s1, v1) = first.join().unwrap();
        assert!(t0.elapsed() < Duration::from_secs(10));
        assert_eq!(s1, 409);
        assert_eq!(
            description(&v1),
            "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running"
        );
    });
    assert_eq!(fake.concurrent_polls(), 1);
}

#[test]
fn tg_html_is_validated() {
    let fake = FakeTelegram::start();
    let chat = 5;
    for bad in [
        "<b>&</b>",
        "a < b",
        "a > b",
        "<div>x</div>",
        "<b>x",
        "x</b>",
        "<b><i>x</b></i>",
        "&nbsp;",
        "&apos;",
        "<span>x</span>",
        "<code><b>x</b></code>",
        "<a>x</a>",
        "<b",
    ] {
        let (s, v) = send_text(&fake, chat, bad);
        assert_eq!(s, 400, "{bad:?} accepted");
        assert!(
            description(&v).starts_with("Bad Request: can't parse entities: "),
            "{bad:?}: {v}"
        );
    }
    let good = "&lt;b&gt; <b>bold <i>it</i></b> &amp; &quot;q&quot; &#39; &#x41; \
                <a href=\"https://h/c/1?a=1&amp;b=2\">link</a> <pre><code class=\"language-rust\">x</code></pre> \
                <span class=\"tg-spoiler\">s</span> <blockquote expandable>q</blockquote> <STRONG>S</STRONG>";
    let (s, v) = send_text(&fake, chat, good);
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["result"]["text"], "<b> bold it & \"q\" ' A link x s q S");
    let types: Vec<&str> = v["result"]["entities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert!(
        types.contains(&"bold") && types.contains(&"text_link"),
        "{types:?}"
    );
    let m = fake.last_message(chat).unwrap();
    assert_eq!(m.text, good);
    assert_eq!(m.plain, "<b> bold it & \"q\" ' A link x s q S");
    // Without parse_mode the text is not parsed.
    let (s, _) = tg_call(
        &fake,
        "sendMessage",
        json!({ "chat_id": chat, "text": "a < b & c" }),
    );
    assert_eq!(s, 200);
}

#[test]
fn tg_text_length_is_counted_in_utf16_after_parsing() {
    let fake = FakeTelegram::start();
    let (s, v) = send_text(&fake, 1, &"a".repeat(4097));
    assert_eq!(
        (s, description(&v)),
        (400, "Bad Request: message is too long")
    );
    assert_eq!(send_text(&fake, 1, &"a".repeat(4096)).0, 200);
    // Tags do not count, entities count as one character.
    let text = format!("<b>{}</b>&amp;", "a".repeat(4095));
    assert_eq!(send_text(&fake, 1, &text).0, 200);
    // An emoji is two UTF-16 units.
    assert_eq!(send_text(&fake, 1, &"😀".repeat(2049)).0, 400);
    assert_eq!(send_text(&fake, 1, &"😀".repeat(2048)).0, 200);
    let (s, v) = send_text(&fake, 1, "<b> </b>");
    assert_eq!(
        (s, description(&v)),
        (400, "Bad Request: message text is empty")
    );
    assert_eq!(fake.messages(1).len(), 3);
}

fn keyboard(data: &str) -> Value {
    json!({ "inline_keyboard": [[{ "text": "Press", "callback_data": data }]] })
}

#[test]
fn tg_buttons_are_validated() {
    let fake = FakeTelegram::start();
    let send_kb = |markup: Value| {
        tg_call(
            &fake,
            "sendMessage",
            json!({ "chat_id": 3, "text": "menu", "parse_mode": "HTML", "reply_markup": markup }),
        )
    };
    let (s, v) = send_kb(keyboard(&"x".repeat(65)));
    assert_eq!(
        (s, description(&v)),
        (400, "Bad Request: BUTTON_DATA_INVALID")
    );
    // 33 Cyrillic letters are 66 bytes.
    assert_eq!(send_kb(keyboard(&"я".repeat(33))).0, 400);
    assert_eq!(send_kb(keyboard("")).0, 400);
    assert_eq!(send_kb(keyboard(&"x".repeat(64))).0, 200);
    assert_eq!(
        send_kb(json!({ "inline_keyboard": [[{ "text": "t" }]] })).0,
        400
    );
    assert_eq!(
        send_kb(json!({ "inline_keyboard": [[{ "text": "t", "url": "https://a", "callback_data": "x" }]] })).0,
        400
    );
    let many: Vec<Value> = (0..101)
        .map(|i| json!([{ "text": "b", "callback_data": i.to_string() }]))
        .collect();
    assert_eq!(send_kb(json!({ "inline_keyboard": many })).0, 400);
    // reply_markup as a JSON string (as in form bodies) works too.
    let (s, v) = send_kb(Value::String(
        json!({ "inline_keyboard": [[{ "text": "Open", "url": "https://x/c/1" }, { "text": "Go", "callback_data": "g" }]] })
            .to_string(),
    ));
    assert_eq!(s, 200, "{v}");
    let m = fake.last_message(3).unwrap();
    assert_eq!(
        m.buttons,
        vec![vec![
            ("Open".to_string(), "https://x/c/1".to_string()),
            ("Go".to_string(), "g".to_string())
        ]]
    );
    assert_eq!(m.button("G"), Some(("Go".to_string(), "g".to_string())));
}

#[test]
fn tg_edits_and_message_not_modified() {
    let fake = FakeTelegram::start();
    let chat = 11;
    let (_, v) = tg_call(
        &fake,
        "sendMessage",
        json!({ "chat_id": chat, "text": "<b>one</b>", "parse_mode": "HTML", "reply_markup": keyboard("a") }),
    );
    let id = v["result"]["message_id"].as_i64().unwrap();
    assert_eq!(id, 1);
    let edit = |text: &str, markup: Option<Value>| {
        let mut p =
            json!({ "chat_id": chat, "message_id": id, "text": text, "parse_mode": "HTML" });
        if let Some(m) = markup {
            p["reply_markup"] = m;
        }
        tg_call(&fake, "editMessageText", p)
    };
    let (s, v) = edit("<b>one</b>", Some(keyboard("a")));
    assert_eq!(s, 400);
    assert_eq!(
        description(&v),
        "Bad Request: message is not modified: specified new message content and reply markup are exactly the same as a current content and reply markup of the message"
    );
    // Same entities written differently: still not modified.
    assert_eq!(edit("<strong>one</strong>", Some(keyboard("a"))).0, 400);
    // Other markup, then other text, then no markup (removes the keyboard).
    assert_eq!(edit("<b>one</b>", Some(keyboard("b"))).0, 200);
    let (s, v) = edit("<i>two</i>", Some(keyboard("b")));
    assert_eq!(s, 200);
    assert_eq!(v["result"]["text"], "two");
    assert!(v["result"]["edit_date"].is_i64());
    assert_eq!(edit("<i>two</i>", None).0, 200);
    let m = fake.last_message(chat).unwrap();
    assert_eq!(
        (m.text.as_str(), m.edits, m.buttons.len()),
        ("<i>two</i>", 3, 0)
    );
    // editMessageReplyMarkup.
    let rm = |markup: Value| {
        tg_call(
            &fake,
            "editMessageReplyMarkup",
            json!({ "chat_id": chat, "message_id": id, "reply_markup": markup }),
        )
    };
    assert_eq!(rm(keyboard("c")).0, 200);
    assert_eq!(rm(keyboard("c")).0, 400);
    // Unknown message, deleted message.
    let (s, v) = tg_call(
        &fake,
        "editMessageText",
        json!({ "chat_id": chat, "message_id": 99, "text": "x" }),
    );
    assert_eq!(
        (s, description(&v)),
        (400, "Bad Request: message to edit not found")
    );
    assert_eq!(
        tg_call(
            &fake,
            "deleteMessage",
            json!({ "chat_id": chat, "message_id": id })
        )
        .0,
        200
    );
    assert_eq!(edit("three", None).0, 400);
    assert!(fake.messages(chat).is_empty());
    // History kept every version; wait_message finds the newest matching one,
    // even of a message that is gone.
    assert_eq!(fake.history(chat).len(), 5);
    let one = fake
        .wait_message(WAIT, chat, |m| m.text == "<b>one</b>")
        .unwrap();
    assert_eq!((one.edits, one.buttons[0][0].1.as_str()), (1, "b"));
}

#[test]
fn tg_callbacks_are_answered_once() {
    let fake = FakeTelegram::start();
    let chat = 21;
    let (_, v) = tg_call(
        &fake,
        "sendMessage",
        json!({ "chat_id": chat, "text": "menu", "reply_markup": keyboard("srv:1") }),
    );
    let id = v["result"]["message_id"].as_i64().unwrap();
    let q = fake.push_callback(chat, chat, id, "srv:1", Some("ru"));
    let q_old = fake.push_callback(chat, chat, 77, "old", None);
    let (_, v) = tg_call(&fake, "getUpdates", json!({ "timeout": 0 }));
    let cb = &v["result"][0]["callback_query"];
    assert_eq!(cb["id"], q.as_str());
    assert_eq!(cb["data"], "srv:1");
    assert_eq!(cb["from"]["language_code"], "ru");
    assert_eq!(cb["message"]["message_id"], id);
    assert_eq!(cb["message"]["reply_markup"], keyboard("srv:1"));
    let old = &v["result"][1]["callback_query"]["message"];
    assert_eq!(
        (old["date"].as_i64(), old["message_id"].as_i64()),
        (Some(0), Some(77))
    );
    assert!(old.get("text").is_none());

    let answer = |id: &str, text: &str| {
        tg_call(
            &fake,
            "answerCallbackQuery",
            json!({ "callback_query_id": id, "text": text }),
        )
    };
    assert_eq!(answer(&q, &"x".repeat(201)).0, 400);
    assert_eq!(
        answer(&q, "ok"),
        (200, json!({ "ok": true, "result": true }))
    );
    let (s, v) = answer(&q, "again");
    assert_eq!(
        (s, description(&v)),
        (
            400,
            "Bad Request: query is too old and response timeout expired or query ID is invalid"
        )
    );
    assert_eq!(answer("12345", "").0, 400);
    assert_eq!(answer(&q_old, "").0, 200);
}

#[test]
fn tg_set_my_commands_is_validated() {
    let fake = FakeTelegram::start();
    let set = |cmds: Value| tg_call(&fake, "setMyCommands", json!({ "commands": cmds })).0;
    assert_eq!(
        set(json!([{ "command": "start", "description": "Start" }])),
        200
    );
    for bad in [
        json!([{ "command": "Start", "description": "x" }]),
        json!([{ "command": "", "description": "x" }]),
        json!([{ "command": "a".repeat(33), "description": "x" }]),
        json!([{ "command": "start", "description": "" }]),
        json!([{ "command": "start", "description": "d".repeat(257) }]),
    ] {
        assert_eq!(set(bad.clone()), 400, "{bad}");
    }
    let many: Vec<Value> = (0..101)
        .map(|i| json!({ "command": format!("c{i}"), "description": "d" }))
        .collect();
    assert_eq!(set(Value::Array(many)), 400);
    let (_, v) = tg_call(
        &fake,
        "setMyCommands",
        json!({ "commands": [{ "command": "x-y", "description": "d" }] }),
    );
    assert_eq!(description(&v), "Bad Request: BOT_COMMAND_INVALID");
}

#[test]
fn tg_blocked_chat_is_403_for_that_chat_only() {
    let fake = FakeTelegram::start();
    fake.block_chat(50);
    let (s, v) = send_text(&fake, 50, "alert");
    assert_eq!(
        (s, description(&v)),
        (403, "Forbidden: bot was blocked by the user")
    );
    assert_eq!(send_text(&fake, 51, "alert").0, 200);
    fake.unblock_chat(50);
    assert_eq!(send_text(&fake, 50, "alert").0, 200);
}

#[test]
fn tg_scripted_replies() {
    let fake = FakeTelegram::start();
    fake.script("sendMessage", Reply::too_many_requests(3));
    fake.script("sendmessage", Reply::bad_gateway_html());
    fake.script("getUpdates", Reply::conflict());
    fake.script("getMe", Reply::Hang(Duration::from_millis(300)));
    fake.script(
        "getMe",
        Reply::Raw {
            status: 200,
            content_type: "application/json".into(),
            body: "{not json".into(),
        },
    );

    let url = format!("{}/bot{}/sendMessage", fake.base_url(), tg::TOKEN);
    let body = json!({ "chat_id": 1, "text": "x" }).to_string();
    let ct = [("Content-Type", "application/json")];
    let r = send(&agent(), "POST", &url, &ct, Some(&body)).unwrap();
    assert_eq!(r.status, 429);
    assert_eq!(r.header("Retry-After"), Some("3"));
    assert_eq!(
        r.json(),
        json!({ "ok": false, "error_code": 429, "description": "Too Many Requests: retry after 3", "parameters": { "retry_after": 3 } })
    );
    let r = send(&agent(), "POST", &url, &ct, Some(&body)).unwrap();
    assert_eq!(r.status, 502);
    assert!(r.header("Content-Type").unwrap().starts_with("text/html"));
    assert!(r.body.contains("Bad Gateway"));
    assert_eq!(
        send(&agent(), "POST", &url, &ct, Some(&body))
            .unwrap()
            .status,
        200
    );

    let (s, v) = tg_call(&fake, "getUpdates", json!({ "timeout": 0 }));
    assert_eq!(s, 409);
    assert!(description(&v).starts_with("Conflict: "));

    let t0 = Instant::now();
    assert_eq!(tg_call(&fake, "getMe", json!({})).0, 200);
    assert!(t0.elapsed() >= Duration::from_millis(300));
    let url = format!("{}/bot{}/getMe", fake.base_url(), tg::TOKEN);
    let r = send(&agent(), "POST", &url, &ct, Some("{}")).unwrap();
    assert_eq!((r.status, r.body.as_str()), (200, "{not json"));
    // All recorded, the failing ones too; only one message was stored.
    assert_eq!(fake.calls_to("sendmessage").len(), 3);
    assert_eq!(fake.messages(1).len(), 1);
    let c = fake
        .wait_for(WAIT, |c| {
            c.method == "sendmessage" && c.int("chat_id") == Some(1)
        })
        .unwrap();
    assert_eq!(c.str("text").as_deref(), Some("x"));
    assert!(
        fake.wait_for(Duration::from_millis(50), |c| c.method == "nope")
            .is_none()
    );
}

#[test]
fn tg_malformed_input_does_not_break_the_fake() {
    let fake = FakeTelegram::start();
    let url = format!("{}/bot{}/sendMessage", fake.base_url(), tg::TOKEN);
    let r = send(
        &agent(),
        "POST",
        &url,
        &[("Content-Type", "application/json")],
        Some("[1,"),
    )
    .unwrap();
    assert_eq!(r.status, 400);
    let r = send(
        &agent(),
        "GET",
        &format!("{}/nothing", fake.base_url()),
        &[],
        None,
    )
    .unwrap();
    assert_eq!(r.status, 404);
    // Query-string and form parameters.
    let r = send(
        &agent(),
        "GET",
        &format!("{url}?chat_id=4&text=a%26b"),
        &[],
        None,
    )
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    let r = send(
        &agent(),
        "POST",
        &url,
        &[("Content-Type", "application/x-www-form-urlencoded")],
        Some("chat_id=4&text=%3Cb%3Ehi%3C%2Fb%3E&parse_mode=HTML"),
    )
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(fake.last_message(4).unwrap().plain, "hi");
    for junk in [
        "<",
        "<<>>",
        "&#;",
        "&#x110000;",
        "<a href='x>y",
        "<b\u{fffd}>",
    ] {
        let (s, _) = send_text(&fake, 4, junk);
        assert_eq!(s, 400, "{junk:?}");
    }
    // Raw garbage on the socket.
    let mut s = TcpStream::connect(fake.base_url().trim_start_matches("http://")).unwrap();
    let _ = s.write_all(b"\x16\x03\x01\x00\xff garbage\r\n\r\n");
    drop(s);
    assert_eq!(tg_call(&fake, "getMe", json!({})).0, 200);
}

#[test]
fn tg_drop_releases_held_requests_quickly() {
    let fake = FakeTelegram::start();
    let base = fake.base_url();
    let poll = std::thread::spawn(move || {
        let url = format!("{base}/bot{}/getUpdates", tg::TOKEN);
        send(
            &agent(),
            "POST",
            &url,
            &[("Content-Type", "application/json")],
            Some(r#"{"timeout":50}"#),
        )
        .map(|r| r.status)
    });
    fake.wait_count(WAIT, "getupdates", 1);
    let t0 = Instant::now();
    drop(fake);
    assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
    let _ = poll.join().unwrap();
}

// ---------------------------------------------------------------------------
// Fake TrueConf

fn token(agent: &ureq::Agent, fake: &FakeTrueConf) -> String {
    let r = send(
        agent,
        "POST",
        &format!("{}/oauth2/v1/token", fake.base_url()),
        &[("Content-Type", "application/x-www-form-urlencoded")],
        Some(&format!(
            "grant_type=client_credentials&client_id={}&client_secret={}",
            tc::CLIENT_ID,
            tc::CLIENT_SECRET
        )),
    )
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    assert_eq!(v["token_type"], "Bearer");
    assert_eq!(v["expires_in"], 3600);
    let t = v["access_token"].as_str().unwrap().to_string();
    assert_eq!(t.len(), 40);
    assert!(t.bytes().all(|b| b.is_ascii_hexdigit()));
    t
}

fn api_get(agent: &ureq::Agent, fake: &FakeTrueConf, path_and_query: &str, tok: &str) -> Resp {
    let sep = if path_and_query.contains('?') {
        '&'
    } else {
        '?'
    };
    let url = format!(
        "{}/api/v3.3{path_and_query}{sep}access_token={tok}",
        fake.base_url()
    );
    send(agent, "GET", &url, &[], None).unwrap()
}

fn reason(r: &Resp) -> String {
    r.json()["error"]["errors"][0]["reason"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

#[test]
fn tc_https_with_private_ca_full_api() {
    let fake = FakeTrueConf::start(Tls::CaSigned);
    let a = tls_agent(&fake.ca_pem_path());
    let tok = token(&a, &fake);

    // Token in a JSON body works too, and tokens differ.
    let r = send(
        &a,
        "POST",
        &format!("{}/oauth2/v1/token", fake.base_url()),
        &[("Content-Type", "application/json")],
        Some(
            &json!({ "grant_type": "client_credentials", "client_id": tc::CLIENT_ID, "client_secret": tc::CLIENT_SECRET })
                .to_string(),
        ),
    )
    .unwrap();
    assert_eq!(r.status, 200);
    assert_ne!(r.json()["access_token"].as_str().unwrap(), tok);

    // logs/calls: running first, paginated.
    let mut confs = vec![Conf::ended("old", 600), Conf::p2p("p2p", 30, true)];
    confs.extend((0..5).map(|i| Conf::running(&format!("c{i}"), 4000 + i)));
    confs[2].topic = None;
    confs[2].named_conf_id = Some("c0".into());
    fake.set_conferences(confs);
    let r = api_get(
        &a,
        &fake,
        "/logs/calls?sort_field=end_time&sort_order=1&page_size=200",
        &tok,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    assert_eq!(v["cnt"], 7);
    let list = v["list"].as_array().unwrap();
    assert_eq!(list.len(), 7);
    assert!(list[..6].iter().all(|c| c["end_time"].is_null()));
    assert!(list[6]["end_time"]["date"].is_string());
    assert_eq!(list[6]["named_conf_id"], "old");
    assert_eq!(list[0]["class"], 1);
    assert_eq!(list[0]["type"], 0);
    assert!(list[0]["named_conf_id"].is_null());
    assert_eq!(list[1]["type"], 5);
    assert!(list[1]["topic"].is_null());
    assert_eq!(list[1]["duration"], 4000);
    assert_eq!(list[1]["start_time"]["timezone_type"], 3);
    assert!(
        list[1]["conference_id"]
            .as_str()
            .unwrap()
            .ends_with("@tc.local#vcs")
    );
    let page = |id: &str| {
        api_get(&a, &fake, &format!("/logs/calls?page_size=3{id}"), &tok).json()["list"]
            .as_array()
            .unwrap()
            .len()
    };
    assert_eq!(
        (page(""), page("&page_id=0"), page("&page_id=1")),
        (3, 3, 3)
    );
    assert_eq!((page("&page_id=3"), page("&page_id=4")), (1, 0));

    // Participants with a percent-encoded session id; a cut id is 404.
    let sid = session_id_for("c1");
    fake.set_participants(
        &sid,
        vec![Participant::new("alice", 2), Participant::new("bob", 1)],
    );
    let enc = sid.replace('@', "%40").replace('#', "%23");
    let r = api_get(
        &a,
        &fake,
        &format!("/conference-sessions/{enc}/participants"),
        &tok,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    assert_eq!(v["count"], 2);
    assert_eq!(v["participants"][0]["role"], 2);
    assert_eq!(v["participants"][1]["display_name"], "bob");
    let cut = sid.split('#').next().unwrap().replace('@', "%40");
    let r = api_get(
        &a,
        &fake,
        &format!("/conference-sessions/{cut}/participants"),
        &tok,
    );
    assert_eq!(
        (r.status, reason(&r).as_str()),
        (404, "conferenceSessionNotFound")
    );
    // A running conference without a list has nobody.
    let enc2 = session_id_for("c2").replace('@', "%40").replace('#', "%23");
    let r = api_get(
        &a,
        &fake,
        &format!("/conference-sessions/{enc2}/participants"),
        &tok,
    );
    assert_eq!(r.json(), json!({ "count": 0, "participants": [] }));
    let req = fake
        .requests()
        .into_iter()
        .find(|r| r.raw_path.contains(&enc))
        .unwrap();
    assert_eq!(
        req.path,
        format!("/api/v3.3/conference-sessions/{sid}/participants")
    );
    assert_eq!(req.token.as_deref(), Some(tok.as_str()));

    // Users: pages from 0, next_page_id until -1.
    assert_eq!(fake.generate_users(250, 10), 25);
    let mut page_id = 0;
    let mut online = 0;
    let mut pages = 0;
    loop {
        let r = api_get(
            &a,
            &fake,
            &format!("/users?page_id={page_id}&page_size=100"),
            &tok,
        );
        let v = r.json();
        for u in v["users"].as_array().unwrap() {
            assert_eq!(u["uid"], format!("{}@tc.local", u["id"].as_str().unwrap()));
            if [1, 2, 5].contains(&u["status"].as_i64().unwrap()) {
                online += 1;
            }
        }
        pages += 1;
        match v["next_page_id"].as_i64().unwrap() {
            -1 => break,
            n => page_id = n,
        }
    }
    assert_eq!((pages, online), (3, 25));
    let v = api_get(&a, &fake, "/users", &tok).json();
    assert_eq!(
        (
            v["users"].as_array().unwrap().len(),
            v["next_page_id"].as_i64()
        ),
        (100, Some(1))
    );
    fake.set_users(vec![User {
        id: "solo".into(),
        status: 5,
    }]);
    let v = api_get(&a, &fake, "/users?page_size=5000", &tok).json();
    assert_eq!(v["next_page_id"], -1);

    // Stop: by named id, with Bearer; the second time it is gone.
    let stop = |id: &str| {
        let url = format!("{}/api/v3.3/conferences/{id}/stop", fake.base_url());
        send(
            &a,
            "POST",
            &url,
            &[("Authorization", &format!("Bearer {tok}"))],
            None,
        )
        .unwrap()
    };
    let r = stop("c3");
    assert_eq!((r.status, r.json()), (200, json!({ "state": "stopped" })));
    // A conference that exists but no longer runs is no 404 (R1).
    let r = stop("c3");
    assert_eq!(
        (r.status, reason(&r).as_str()),
        (400, "conferenceIsNotRunning")
    );
    // 404 conferenceNotFound means: no such id.
    let r = stop("a%40b");
    assert_eq!(r.status, 404);
    assert_eq!(
        r.json(),
        json!({"error":{"code":404,"message":"Not Found","errors":[{"reason":"conferenceNotFound","message":"Conference 'a@b' is not found.","locationType":"path","location":"conference_id"}]}})
    );
    assert_eq!(fake.stop_requests(), ["c3", "c3", "a@b"]);
    assert!(
        !fake
            .conferences()
            .iter()
            .find(|c| c.named_conf_id.as_deref() == Some("c3"))
            .unwrap()
            .running
    );
    let v = api_get(&a, &fake, "/logs/calls", &tok).json();
    assert_eq!(
        v["list"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["end_time"].is_null())
            .count(),
        5
    );

    // Unknown paths.
    let r = api_get(&a, &fake, "/nothing", &tok);
    assert_eq!((r.status, reason(&r).as_str()), (404, "notFound"));
    let n = fake
        .wait_requests(WAIT, |r| r.path.starts_with("/api/v3.3/users"), 4)
        .len();
    assert_eq!(n, 5);
}

#[test]
fn tc_token_problems() {
    let fake = FakeTrueConf::start(Tls::Plain);
    let a = agent();
    assert!(fake.base_url().starts_with("http://"));
    let tok = token(&a, &fake);
    // Missing, unknown, both ways at once.
    let url = format!("{}/api/v3.3/users", fake.base_url());
    let r = send(&a, "GET", &url, &[], None).unwrap();
    assert_eq!(r.status, 403);
    assert_eq!(
        r.json(),
        json!({"error":{"code":403,"message":"Forbidden","errors":[{"reason":"accessTokenInvalid","message":"Access token is invalid"}]}})
    );
    assert_eq!(api_get(&a, &fake, "/users", "0000").status, 403);
    let r = send(
        &a,
        "GET",
        &format!("{url}?access_token={tok}"),
        &[("Authorization", &format!("Bearer {tok}"))],
        None,
    )
    .unwrap();
    assert_eq!(
        (r.status, r.json()["error"].as_str()),
        (400, Some("invalid_request"))
    );
    assert_eq!(api_get(&a, &fake, "/users", &tok).status, 200);
    // Expiry.
    fake.expire_tokens();
    assert_eq!(
        reason(&api_get(&a, &fake, "/users", &tok)),
        "accessTokenInvalid"
    );
    fake.set_token_ttl(0);
    let short = token_with_ttl(&a, &fake, 0);
    assert_eq!(api_get(&a, &fake, "/users", &short).status, 403);
    fake.set_token_ttl(3600);
    // Static token.
    fake.set_static_token("secret-key");
    assert_eq!(api_get(&a, &fake, "/users", "secret-key").status, 200);
    // Missing scope.
    fake.set_missing_scope("/logs/calls");
    let r = api_get(&a, &fake, "/logs/calls", "secret-key");
    assert_eq!((r.status, reason(&r).as_str()), (403, "forbidden"));
    fake.clear_missing_scopes();
    assert_eq!(api_get(&a, &fake, "/logs/calls", "secret-key").status, 200);
    // Bad credentials.
    let tok_url = format!("{}/oauth2/v1/token", fake.base_url());
    let form = [("Content-Type", "application/x-www-form-urlencoded")];
    let bad = format!(
        "grant_type=client_credentials&client_id={}&client_secret=nope",
        tc::CLIENT_ID
    );
    let r = send(&a, "POST", &tok_url, &form, Some(&bad)).unwrap();
    assert_eq!(r.status, 400);
    assert_eq!(
        r.json(),
        json!({"error":"invalid_client","error_description":"The client credentials are invalid"})
    );
    fake.set_credentials_valid(false);
    let good = format!(
        "grant_type=client_credentials&client_id={}&client_secret={}",
        tc::CLIENT_ID,
        tc::CLIENT_SECRET
    );
    assert_eq!(
        send(&a, "POST", &tok_url, &form, Some(&good))
            .unwrap()
            .status,
        400
    );
    fake.set_credentials_valid(true);
    assert_eq!(
        send(&a, "POST", &tok_url, &form, Some(&good))
            .unwrap()
            .status,
        200
    );
    let r = send(&a, "POST", &tok_url, &form, Some("grant_type=password")).unwrap();
    assert_eq!(r.json()["error"], "unsupported_grant_type");
}

fn token_with_ttl(a: &ureq::Agent, fake: &FakeTrueConf, ttl: u64) -> String {
    let r = send(
        a,
        "POST",
        &format!("{}/oauth2/v1/token", fake.base_url()),
        &[("Content-Type", "application/json")],
        Some(
            &json!({ "grant_type": "client_credentials", "client_id": tc::CLIENT_ID, "client_secret": tc::CLIENT_SECRET })
                .to_string(),
        ),
    )
    .unwrap();
    assert_eq!(r.json()["expires_in"], ttl);
    r.json()["access_token"].as_str().unwrap().to_string()
}

#[test]
fn tc_scripts_and_delay() {
    let fake = FakeTrueConf::start(Tls::Plain);
    let a = agent();
    fake.set_static_token("k");
    fake.script("/api/v3.3/logs/calls", ApiReply::html(502));
    fake.script(
        "/api/v3.3/logs/calls",
        ApiReply::json(500, json!({ "error": "boom" })),
    );
    fake.script(
        "/api/v3.3/users",
        ApiReply::Hang(Duration::from_millis(300)),
    );
    let r = api_get(&a, &fake, "/logs/calls", "k");
    assert_eq!(r.status, 502);
    assert!(r.header("Content-Type").unwrap().starts_with("text/html"));
    assert_eq!(api_get(&a, &fake, "/logs/calls", "k").status, 500);
    assert_eq!(api_get(&a, &fake, "/logs/calls", "k").status, 200);
    let t0 = Instant::now();
    assert_eq!(api_get(&a, &fake, "/users", "k").status, 200);
    assert!(t0.elapsed() >= Duration::from_millis(300));
    fake.set_delay(Duration::from_millis(200));
    let t0 = Instant::now();
    assert_eq!(api_get(&a, &fake, "/users", "k").status, 200);
    assert!(t0.elapsed() >= Duration::from_millis(200));
    // A held request does not hold the others.
    fake.set_delay(Duration::ZERO);
    fake.script("/api/v3.3/logs", ApiReply::Hang(Duration::from_secs(60)));
    let base = fake.base_url();
    let held = std::thread::spawn(move || {
        let url = format!("{base}/api/v3.3/logs/calls?access_token=k");
        send(&agent(), "GET", &url, &[], None).map(|r| r.status)
    });
    fake.wait_requests(WAIT, |r| r.path == "/api/v3.3/logs/calls", 4);
    let t0 = Instant::now();
    assert_eq!(api_get(&a, &fake, "/users", "k").status, 200);
    assert!(t0.elapsed() < Duration::from_secs(5));
    // Dropping the fake releases it at once.
    let t0 = Instant::now();
    drop(fake);
    assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
    let _ = held.join().unwrap();
}

#[test]
fn tc_tls_trust_variants() {
    // Private CA: trusting the CA works, trusting an unrelated cert does not.
    let ca = FakeTrueConf::start(Tls::CaSigned);
    assert!(ca.base_url().starts_with("https://127.0.0.1:"));
    let url = format!("{}/api/v3.3/users", ca.base_url());
    assert_eq!(
        send(&tls_agent(&ca.ca_pem_path()), "GET", &url, &[], None)
            .unwrap()
            .status,
        403
    );
    assert!(
        send(
            &tls_agent(&ca.other_self_signed_pem_path()),
            "GET",
            &url,
            &[],
            None
        )
        .is_err()
    );
    // The default roots do not know the private CA.
    assert!(send(&agent(), "GET", &url, &[], None).is_err());
    let leaf = std::fs::read_to_string(ca.cert_pem_path()).unwrap();
    assert!(leaf.starts_with("-----BEGIN CERTIFICATE-----"));
    assert_ne!(leaf, std::fs::read_to_string(ca.ca_pem_path()).unwrap());

    // Self-signed CA:TRUE: webpki refuses it as an end entity even when trusted
    // (reference/tls-notes.md) - the bot needs its pinning verifier for this.
    let ss = FakeTrueConf::start(Tls::SelfSigned);
    assert_eq!(ss.ca_pem_path(), ss.cert_pem_path());
    let url = format!("{}/api/v3.3/users", ss.base_url());
    let err = send(&tls_agent(&ss.ca_pem_path()), "GET", &url, &[], None)
        .err()
        .expect("webpki accepted a CA certificate as end entity");
    assert!(format!("{err}").contains("CaUsedAsEndEntity"), "{err}");
    // With verification off it answers.
    let insecure: ureq::Agent = config()
        .tls_config(
            ureq::tls::TlsConfig::builder()
                .disable_verification(true)
                .build(),
        )
        .build()
        .into();
    assert_eq!(send(&insecure, "GET", &url, &[], None).unwrap().status, 403);
}

#[test]
fn tc_tls_front_survives_bad_clients_and_keeps_connections_alive() {
    let fake = FakeTrueConf::start(Tls::CaSigned);
    fake.set_static_token("k");
    let addr = fake.ip();
    // Hang up before, during and after a partial ClientHello; plain HTTP on the TLS port.
    drop(TcpStream::connect(&addr).unwrap());
    let mut s = TcpStream::connect(&addr).unwrap();
    s.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01]).unwrap();
    drop(s);
    let mut s = TcpStream::connect(&addr).unwrap();
    s.write_all(b"GET /vsstatus HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    drop(s);
    // Many requests over one agent (pooled keep-alive connections), some large.
    let a = tls_agent(&fake.ca_pem_path());
    fake.generate_users(3000, 7);
    for i in 0..20 {
        let r = api_get(
            &a,
            &fake,
            &format!("/users?page_id={}&page_size=1000", i % 3),
            "k",
        );
        assert_eq!(r.status, 200);
        assert!(r.json()["users"].as_array().unwrap().len() == 1000);
    }
    // Several clients at once.
    std::thread::scope(|s| {
        let hs: Vec<_> = (0..8)
            .map(|_| {
                s.spawn(|| {
                    let a = tls_agent(&fake.ca_pem_path());
                    (0..5)
                        .map(|_| api_get(&a, &fake, "/users?page_size=10", "k").status)
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        for h in hs {
            assert!(h.join().unwrap().iter().all(|s| *s == 200));
        }
    });
}

#[test]
fn tc_status_port_up_down_and_status() {
    let fake = FakeTrueConf::start(Tls::Plain);
    let a = agent();
    let url = format!("http://127.0.0.1:{}/vsstatus", fake.status_port());
    let r = send(&a, "GET", &url, &[], None).unwrap();
    assert_eq!(r.status, 200);
    assert!(r.body.contains("Status:OK"), "{}", r.body);
    assert_eq!(r.header("Server"), Some(tc::PRODUCT));
    assert_eq!(tc::PRODUCT, "TrueConf Server 5.5.2.10");
    assert!(r.header("Content-Type").unwrap().starts_with("text/html"));
    assert_eq!(fake.probe_count(), 1);

    fake.set_up(false);
    let err = TcpStream::connect(("127.0.0.1", fake.status_port())).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused);
    assert!(send(&a, "GET", &url, &[], None).is_err());
    fake.set_up(false); // idempotent
    fake.set_up(true);
    assert_eq!(send(&a, "GET", &url, &[], None).unwrap().status, 200);
    fake.set_up(true); // idempotent

    fake.set_status_reply(503);
    assert_eq!(send(&a, "GET", &url, &[], None).unwrap().status, 503);
    fake.set_status_reply(200);
    assert_eq!(send(&a, "GET", &url, &[], None).unwrap().status, 200);
    let other = format!("http://127.0.0.1:{}/other", fake.status_port());
    assert_eq!(send(&a, "GET", &other, &[], None).unwrap().status, 404);
    assert_eq!(fake.wait_probe_count(WAIT, 4), 4);
    // The status port is not part of the API log.
    assert!(fake.requests().is_empty());

    // A hung status port: connection accepted, no answer until released.
    fake.set_status_hang(true);
    let hung: ureq::Agent = config()
        .timeout_global(Some(Duration::from_millis(300)))
        .build()
        .into();
    assert!(send(&hung, "GET", &url, &[], None).is_err());
    fake.set_status_hang(false);
    assert_eq!(send(&a, "GET", &url, &[], None).unwrap().status, 200);
    // Garbage does not hurt it.
    let mut s = TcpStream::connect(("127.0.0.1", fake.status_port())).unwrap();
    s.write_all(b"\x00\x01\x02\r\n\r\n").unwrap();
    drop(s);
    assert_eq!(send(&a, "GET", &url, &[], None).unwrap().status, 200);
    // Going down with a probe held does not block. (The probe held above
    // must have been let go first, or it would be the one counted below.)
    assert!(support::wait_until(WAIT, || fake.held_probes() == 0));
    fake.set_status_hang(true);
    let port = fake.status_port();
    let held = std::thread::spawn(move || {
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        let _ = s.write_all(b"GET /vsstatus HTTP/1.1\r\n\r\n");
        let mut buf = Vec::new();
        let _ = std::io::Read::read_to_end(&mut s, &mut buf);
        buf
    });
    assert!(support::wait_until(WAIT, || fake.held_probes() == 1));
    let t0 = Instant::now();
    fake.set_up(false);
    assert!(t0.elapsed() < Duration::from_secs(5));
    assert!(held.join().unwrap().is_empty());
    assert_eq!(fake.held_probes(), 0);
}

// ---------------------------------------------------------------------------
// Fake TrueConf: what real servers do (reference/trueconf-api-evidence.md)

/// Sends raw bytes and reads until the server closes (at most 5 s).
fn raw_exchange(addr: &str, request: &str) -> String {
    use std::io::Read;
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

fn tc_get(a: &ureq::Agent, fake: &FakeTrueConf, path: &str) -> Resp {
    send(a, "GET", &format!("{}{path}", fake.base_url()), &[], None).unwrap()
}

#[test]
fn tc_vsstatus_answers_like_the_real_handler() {
    let fake = FakeTrueConf::start(Tls::Plain);
    let addr = format!("127.0.0.1:{}", fake.status_port());
    let out = raw_exchange(&addr, "GET /vsstatus HTTP/1.1\r\nHost: x\r\n\r\n");
    let (head, body) = out.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200 Ok\r\n"), "{head}");
    assert!(
        head.contains("\r\nServer: TrueConf Server 5.5.2.10"),
        "{head}"
    );
    assert!(head.contains("\r\nConnection: close"), "{head}");
    assert!(
        !head.to_ascii_lowercase().contains("content-length"),
        "{head}"
    );
    assert_eq!(body, "TrueConf Server 5.5.2.10<br/>Status:OK <br/>");
    // A client reads the close-delimited body whole.
    let r = send(
        &agent(),
        "GET",
        &format!("http://{addr}/vsstatus"),
        &[],
        None,
    )
    .unwrap();
    assert_eq!((r.status, r.body.as_str()), (200, body));
    fake.set_status_server_header(None);
    let out = raw_exchange(&addr, "GET /vsstatus HTTP/1.1\r\n\r\n");
    assert!(!out.contains("Server:"), "{out}");
    assert!(
        out.ends_with("TrueConf Server 5.5.2.10<br/>Status:OK <br/>"),
        "{out}"
    );
}

#[test]
fn tc_several_api_prefixes_v4_and_its_401() {
    let fake = FakeTrueConf::start(Tls::Plain);
    let a = agent();
    let tok = token(&a, &fake);
    let get = |path: &str| tc_get(&a, &fake, path);
    // v3.3 and v3.11 at once; other prefixes are not served.
    assert_eq!(
        get(&format!("/api/v3.3/users?access_token={tok}")).status,
        200
    );
    assert_eq!(
        get(&format!("/api/v3.11/users?access_token={tok}")).status,
        200
    );
    let r = get(&format!("/api/v3.1/users?access_token={tok}"));
    assert_eq!((r.status, reason(&r).as_str()), (404, "notFound"));
    // v4: /server without a token; an invalid token is a 401, not a 403.
    let r = get("/api/v4/server");
    assert_eq!(
        (r.status, r.json()),
        (200, json!({"product": {"display_name": "tc.local"}}))
    );
    let r = get("/api/v4/conferences?access_token=0000");
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["error"]["code"], 401);
    fake.expire_tokens();
    assert_eq!(
        get(&format!("/api/v4/conferences?access_token={tok}")).status,
        401
    );
    assert_eq!(
        reason(&get(&format!("/api/v3.3/users?access_token={tok}"))),
        "accessTokenInvalid"
    );
    // An older server: no v4; one version only.
    fake.set_v4(false);
    assert_eq!(get("/api/v4/server").status, 404);
    fake.set_api_version("v3.1");
    let tok = token(&a, &fake);
    assert_eq!(
        get(&format!("/api/v3.1/users?access_token={tok}")).status,
        200
    );
    assert_eq!(
        get(&format!("/api/v3.3/users?access_token={tok}")).status,
        404
    );
    fake.add_api_version("v3.3");
    assert_eq!(
        get(&format!("/api/v3.3/users?access_token={tok}")).status,
        200
    );
}

#[test]
fn tc_participants_without_role_who_left_and_ghost_sessions() {
    let fake = FakeTrueConf::start(Tls::Plain);
    let a = agent();
    fake.set_static_token("k");
    fake.set_conferences(vec![
        Conf::running("room", 4000),
        Conf::running("crashed", 90_000),
    ]);
    let sid = session_id_for("room");
    fake.set_participants(
        &sid,
        vec![
            Participant::new("alice", 2).left(60),
            Participant::without_role("sip-gateway"),
            Participant::new("bob", 1),
        ],
    );
    let enc = |s: &str| s.replace('@', "%40").replace('#', "%23");
    let r = api_get(
        &a,
        &fake,
        &format!("/conference-sessions/{}/participants", enc(&sid)),
        "k",
    );
    let v = r.json();
    assert_eq!(v["count"], 3);
    let items = v["participants"].as_array().unwrap();
    assert_eq!(items[0]["role"], 2);
    assert!(items[0]["leave_time"]["date"].is_string());
    assert!(items[1].get("role").is_none(), "{}", items[1]);
    assert!(items[2].get("leave_time").is_none());
    // A ghost: the log shows it running, the server does not know it.
    let ghost = session_id_for("crashed");
    fake.make_ghost(&ghost);
    let rows = api_get(&a, &fake, "/logs/calls", "k").json();
    assert!(
        rows["list"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["end_time"].is_null())
    );
    let r = api_get(
        &a,
        &fake,
        &format!("/conference-sessions/{}/participants", enc(&ghost)),
        "k",
    );
    assert_eq!(
        (r.status, reason(&r).as_str()),
        (404, "conferenceSessionNotFound")
    );
    // Stopping its conference: it exists, it does not run; no 404.
    let url = format!(
        "{}/api/v3.3/conferences/crashed/stop?access_token=k",
        fake.base_url()
    );
    let r = send(&a, "POST", &url, &[], None).unwrap();
    assert_eq!(
        (r.status, reason(&r).as_str()),
        (400, "conferenceIsNotRunning")
    );
    // Another answer for stopped conferences can be chosen.
    fake.set_stop_of_stopped(ApiReply::json(200, json!({"state": "stopped"})));
    assert_eq!(send(&a, "POST", &url, &[], None).unwrap().status, 200);
    assert!(fake.conferences().iter().all(|c| c.running));
}

#[test]
fn tc_rows_without_class_and_page_size_caps() {
    let fake = FakeTrueConf::start(Tls::Plain);
    let a = agent();
    fake.set_static_token("k");
    let confs: Vec<Conf> = (0..120)
        .map(|i| Conf::running(&format!("r{i}"), 4000))
        .collect();
    fake.set_conferences(confs);
    fake.set_rows_without_class(true);
    let v = api_get(&a, &fake, "/logs/calls?page_size=5", "k").json();
    let row = &v["list"][0];
    assert!(row.get("class").is_none(), "{row}");
    assert_eq!(row["type"], 5);
    fake.set_rows_without_class(false);
    // A silent cap: 50 rows whatever is asked, cnt tells the truth.
    fake.set_calls_cap(PageCap::Clip(50));
    let v = api_get(&a, &fake, "/logs/calls?page_size=200", "k").json();
    assert_eq!(
        (v["list"].as_array().unwrap().len(), v["cnt"].as_i64()),
        (50, Some(120))
    );
    // A refusing cap on /users, and the server's own page size without one.
    fake.generate_users(250, 10);
    fake.set_users_cap(PageCap::Reject(500));
    let r = api_get(&a, &fake, "/users?page_size=1000", "k");
    assert_eq!((r.status, reason(&r).as_str()), (400, "invalidParameter"));
    assert_eq!(r.json()["error"]["errors"][0]["location"], "page_size");
    let v = api_get(&a, &fake, "/users", "k").json();
    assert_eq!(
        (
            v["users"].as_array().unwrap().len(),
            v["next_page_id"].as_i64()
        ),
        (100, Some(1))
    );
    assert_eq!(api_get(&a, &fake, "/users?page_size=500", "k").status, 200);
    // The web layer down: every API-port request gets the web server's page.
    fake.set_web_down(Some(502));
    let r = api_get(&a, &fake, "/users", "k");
    assert_eq!(r.status, 502);
    assert!(r.header("Content-Type").unwrap().starts_with("text/html"));
    let status = format!("http://127.0.0.1:{}/vsstatus", fake.status_port());
    assert_eq!(send(&a, "GET", &status, &[], None).unwrap().status, 200);
    fake.set_web_down(None);
    // The last page's marker may be 0 on some servers.
    fake.set_users_end(0);
    let v = api_get(&a, &fake, "/users?page_id=2", "k").json();
    assert_eq!(
        (
            v["users"].as_array().unwrap().len(),
            v["next_page_id"].as_i64()
        ),
        (50, Some(0))
    );
}

#[test]
fn tc_token_refusals_in_each_shape() {
    let fake = FakeTrueConf::start(Tls::Plain);
    let a = agent();
    let url = format!("{}/oauth2/v1/token", fake.base_url());
    let form = [("Content-Type", "application/x-www-form-urlencoded")];
    let bad = format!(
        "grant_type=client_credentials&client_id={}&client_secret=x",
        tc::CLIENT_ID
    );
    let post = || send(&a, "POST", &url, &form, Some(&bad)).unwrap();
    let r = post();
    assert_eq!(
        (r.status, r.json()["error"].as_str()),
        (400, Some("invalid_client"))
    );
    fake.set_token_refusal(TokenRefusal::Reason(401));
    let r = post();
    assert_eq!(
        (r.status, r.json()["reason"].as_str()),
        (401, Some("InvalidCredentials"))
    );
    fake.set_token_refusal(TokenRefusal::Nested(403));
    let r = post();
    assert_eq!(r.status, 403);
    assert_eq!(r.json()["error"]["message"], "Invalid client credentials");
    assert_eq!(reason(&r), "invalidCredentials");
    fake.set_token_refusal(TokenRefusal::GrantNotAllowed);
    let r = post();
    assert_eq!(
        (r.status, r.json()["error"].as_str()),
        (400, Some("unauthorized_client"))
    );
}

#[test]
fn tc_conference_objects_carry_recording_fields() {
    let fake = FakeTrueConf::start(Tls::Plain);
    let a = agent();
    fake.set_static_token("k");
    fake.set_conferences(vec![Conf::running("rec", 4000), Conf::ended("old", 60)]);
    fake.set_recording("rec", 1);
    let v = api_get(&a, &fake, "/conferences/rec", "k").json();
    let c = &v["conference"];
    assert_eq!(
        (c["id"].as_str(), c["state"].as_str()),
        (Some("rec"), Some("running"))
    );
    assert_eq!(
        (
            c["recording"].as_i64(),
            c["stream_recording_state"].as_i64()
        ),
        (Some(1), Some(1))
    );
    fake.set_recording("rec", 2);
    assert_eq!(
        api_get(&a, &fake, "/conferences/rec", "k").json()["conference"]["stream_recording_state"],
        2
    );
    let v = api_get(&a, &fake, "/conferences/old", "k").json();
    assert_eq!(
        (
            v["conference"]["state"].as_str(),
            v["conference"]["stream_recording_state"].as_i64()
        ),
        (Some("stopped"), Some(0))
    );
    fake.set_recording_field(false);
    let v = api_get(&a, &fake, "/conferences/rec", "k").json();
    assert!(
        v["conference"].get("stream_recording_state").is_none(),
        "{v}"
    );
    let r = api_get(&a, &fake, "/conferences/nope", "k");
    assert_eq!((r.status, reason(&r).as_str()), (404, "conferenceNotFound"));
}

#[test]
fn tc_a_stop_whose_connection_drops_before_any_answer() {
    let fake = FakeTrueConf::start(Tls::Plain);
    let a = agent();
    fake.set_static_token("k");
    fake.set_conferences(vec![Conf::running("one", 4000), Conf::running("two", 4000)]);
    let url = |id: &str| {
        format!(
            "{}/api/v3.3/conferences/{id}/stop?access_token=k",
            fake.base_url()
        )
    };
    let running = |id: &str| {
        fake.conferences()
            .iter()
            .any(|c| c.running && c.named_conf_id.as_deref() == Some(id))
    };
    // Dropped before the server acted: nothing happened.
    fake.drop_next_stop(false);
    assert!(send(&a, "POST", &url("one"), &[], None).is_err());
    assert!(running("one"));
    // Dropped after it stopped the conference: the answer is lost.
    fake.drop_next_stop(true);
    assert!(send(&a, "POST", &url("two"), &[], None).is_err());
    assert!(!running("two"));
    // Then answers come again.
    assert_eq!(
        send(&a, "POST", &url("one"), &[], None).unwrap().status,
        200
    );
    assert_eq!(fake.stop_requests(), ["one", "two", "one"]);
}
