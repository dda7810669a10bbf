//! Issue 2: start-up, the poll loop, access, locales and the command line.

use std::time::Duration;

use crate::harness::*;
use crate::support::fake_telegram::{BOT_USERNAME, Reply, TOKEN};
use crate::support::wait_until;

#[test]
fn start_up_registers_commands_and_polls_only_what_it_handles() {
    let bot = Bot::start(vec![Srv::new("Main")]);
    let tg = &bot.tg;
    let order: Vec<String> = tg
        .calls()
        .iter()
        .map(|c| c.method.clone())
        .take(2)
        .collect();
    assert_eq!(order, ["getme", "deletewebhook"]);
    let all = tg.wait_count(WAIT, "setmycommands", 7);
    assert_eq!(all.len(), 7, "default + en, ru, de, es; then each operator");
    let (commands, scoped) = all.split_at(5);
    let langs: Vec<Option<String>> = commands.iter().map(|c| c.str("language_code")).collect();
    for lang in ["en", "ru", "de", "es"] {
        assert!(langs.contains(&Some(lang.to_string())), "{langs:?}");
    }
    let names: Vec<String> = commands[0].params["commands"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["command"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["start", "status", "help"]);
    // /audit is offered to operators only, in their private chats.
    for (call, op) in scoped.iter().zip([OP, OP2]) {
        assert_eq!(
            call.params["scope"],
            serde_json::json!({"type": "chat", "chat_id": op})
        );
        let names: Vec<&str> = call.params["commands"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["command"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["start", "status", "help", "audit"]);
    }
    let poll = &tg.calls_to("getupdates")[0];
    assert_eq!(
        poll.params["allowed_updates"],
        serde_json::json!(["message", "callback_query"])
    );
    assert_eq!(poll.int("timeout"), Some(1));
}

#[test]
fn start_shows_one_button_per_server_within_64_bytes() {
    let long = format!("Сервер «{}» \"quoted\" 東京", "ж".repeat(180));
    let bot = Bot::start(vec![Srv::new("Main office"), Srv::new(&long)]);
    let picker = bot.start_chat(OP);
    let buttons = picker.all_buttons();
    assert_eq!(buttons.len(), 2, "{buttons:?}");
    assert_eq!(buttons[0].0, "Main office");
    assert!(buttons[1].0.starts_with("Сервер «ж"));
    for (_, data) in &buttons {
        assert!(data.len() <= 64);
    }
    // The long name reaches its menu.
    bot.click(OP, OP, &picker, "Сервер");
    let menu = bot.wait_text(OP, picker.message_id, "What would you like to see?");
    // Titles show at most 100 characters of it, escaped.
    let shown: String = long.chars().take(100).collect();
    assert!(menu.plain.contains(&format!("{shown}…")), "{}", menu.plain);
    let labels: Vec<String> = menu.all_buttons().into_iter().map(|b| b.0).collect();
    assert_eq!(
        labels,
        [
            "📊 Status",
            "🎥 Running conferences",
            "👥 Users online",
            "🕸 Forgotten conferences",
            "‹ Back"
        ]
    );
}

#[test]
fn strangers_get_one_short_denial_and_nothing_else() {
    let bot = Bot::start(vec![Srv::new("Main")]);
    bot.say(STRANGER, STRANGER, "/start");
    let denial = bot.wait(STRANGER, |m| m.plain.contains("Access denied"));
    assert!(denial.plain.contains("3003"), "{}", denial.plain);
    assert!(denial.buttons.is_empty());
    // A second try within the minute gets no second message (rate limit),
    // while an operator's message right after it is answered.
    bot.say(STRANGER, STRANGER, "/start");
    bot.start_chat(OP);
    assert_eq!(
        bot.tg.history(STRANGER).len(),
        1,
        "{}",
        bot.transcript(STRANGER)
    );
    // A stranger's button press is answered with a denial and changes nothing.
    let picker = bot.tg.last_message(OP).unwrap();
    let (_, data) = picker.button("Main").unwrap();
    let id = bot.press(STRANGER, OP, picker.message_id, &data);
    let answer = bot.answer(&id);
    assert_eq!(answer.str("text").as_deref(), Some("⛔ Access denied."));
    assert_eq!(bot.tg.last_message(OP).unwrap(), picker);
}

#[test]
fn help_explains_the_bot_by_role() {
    let bot = Bot::start(vec![Srv::new("Main")]);
    bot.say(OP, OP, "/help");
    let help = bot.wait(OP, |m| m.plain.contains("/status"));
    assert!(help.plain.contains("operator"), "{}", help.plain);
    bot.say(VIEWER, VIEWER, "/help");
    let help = bot.wait(VIEWER, |m| m.plain.contains("/status"));
    assert!(help.plain.contains("viewer"), "{}", help.plain);
}

#[test]
fn users_get_their_telegram_language_with_english_fallback() {
    let bot = Bot::start(vec![Srv::new("Main")]);
    bot.tg.push_message(OP, OP, "/start", Some("ru"));
    bot.wait(OP, |m| m.plain.contains("Выберите сервер"));
    bot.tg.push_message(OP2, OP2, "/start", Some("de-AT"));
    bot.wait(OP2, |m| m.plain.contains("Server"));
    assert!(!bot.tg.last_message(OP2).unwrap().plain.contains("Choose"));
    bot.tg.push_message(VIEWER, VIEWER, "/start", Some("fr"));
    bot.wait(VIEWER, |m| m.plain.contains("Choose a server"));
}

#[test]
fn commands_for_another_bot_in_a_group_are_ignored() {
    let bot = Bot::start(vec![Srv::new("Main")]);
    bot.say(OP, GROUP, "/start@some_other_bot");
    bot.say(OP, GROUP, &format!("/start@{BOT_USERNAME}"));
    bot.wait(GROUP, |m| m.plain.contains("Choose a server"));
    assert_eq!(bot.tg.history(GROUP).len(), 1);
}

#[test]
fn unknown_updates_are_confirmed_and_the_next_is_handled() {
    let bot = Bot::start(vec![Srv::new("Main")]);
    bot.tg
        .push_update(serde_json::json!({"edited_message": {"message_id": 1}}));
    bot.tg
        .push_update(serde_json::json!({"guest_message": {"x": 1}}));
    bot.tg
        .push_update(serde_json::json!({"message": {"message_id": 9, "chat": {"id": OP}}}));
    bot.start_chat(OP);
    assert!(
        wait_until(WAIT, || bot.tg.pending_updates() == 0),
        "updates were not confirmed"
    );
}

#[test]
fn the_last_handled_update_survives_a_restart() {
    let mut bot = Bot::start(vec![Srv::new("Main")]);
    bot.start_chat(OP);
    let state = bot.dir.join("state/state.json");
    assert!(wait_until(WAIT, || std::fs::read_to_string(&state)
        .is_ok_and(|s| s.contains("last_update_id"))));
    bot.restart();
    let polls = bot.tg.calls_to("getupdates");
    let first_after_restart = polls
        .iter()
        .rev()
        .find(|c| c.int("offset").is_some())
        .unwrap();
    let saved: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&state).unwrap()).unwrap();
    assert_eq!(
        first_after_restart.int("offset"),
        Some(saved["last_update_id"].as_i64().unwrap() + 1)
    );
    assert_eq!(bot.tg.history(OP).len(), 1, "the /start was handled twice");
}

#[test]
fn a_corrupt_state_file_is_replaced_and_the_bot_serves() {
    let mut bot = Bot::start(vec![Srv::new("Main")]);
    bot.stop().unwrap();
    std::fs::write(bot.dir.join("state/state.json"), "{\"last_update_id\": [").unwrap();
    bot.restart();
    bot.start_chat(OP);
    assert!(bot.dir.join("state/state.json.corrupt").exists());
    let state = bot.dir.join("state/state.json");
    assert!(wait_until(WAIT, || state.exists()));
    let text = std::fs::read_to_string(state).unwrap();
    assert!(
        serde_json::from_str::<serde_json::Value>(&text).is_ok(),
        "{text}"
    );
}

#[test]
fn telegram_errors_on_polling_are_survived_without_a_busy_loop() {
    let setup = Setup {
        tables: timing(&[("backoff_first_ms", 200), ("backoff_max_ms", 5000)]),
        ..Setup::default()
    };
    let bot = Bot::start_with(vec![Srv::new("Main")], setup);
    let tg = &bot.tg;
    let before = tg.calls_to("getupdates").len();
    tg.script("getUpdates", Reply::bad_gateway_html());
    tg.script("getUpdates", Reply::conflict());
    tg.script("getUpdates", Reply::too_many_requests(1));
    tg.script(
        "getUpdates",
        Reply::Raw {
            status: 200,
            content_type: "application/json".into(),
            body: "{\"ok\":tr".into(),
        },
    );
    // The held poll ends after its 1 s timeout; then the four failures, with
    // backoff 200 ms, 400 ms, retry_after 1 s, 800 ms; then a normal poll.
    let polls = tg.wait_count(Duration::from_secs(20), "getupdates", before + 5);
    assert_eq!(polls.len(), before + 5, "the bot stopped polling");
    bot.start_chat(OP);
    let failed = &polls[before..before + 5];
    let gaps: Vec<u128> = failed
        .windows(2)
        .map(|w| w[1].at.duration_since(w[0].at).as_millis())
        .collect();
    assert!(gaps[0] >= 190 && gaps[1] >= 390, "no backoff: {gaps:?} ms");
    assert!(
        gaps[2] >= 990 && gaps[2] < 1900,
        "retry_after not honoured: {gaps:?} ms"
    );
    assert!(
        gaps[3] >= 790,
        "no backoff after a broken answer: {gaps:?} ms"
    );
    assert_eq!(tg.concurrent_polls(), 0);
}

#[test]
fn a_rejected_token_at_start_exits_2() {
    let tg = crate::support::fake_telegram::FakeTelegram::start();
    tg.set_token("999:other");
    let dir = crate::support::TempDir::new();
    let path = dir.join("settings.toml");
    let servers = [Srv::new("Main")];
    std::fs::write(&path, settings_text(&tg, &dir, &servers, "", "")).unwrap();
    let out = bin().arg("--config").arg(&path).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("Telegram rejected the bot token (401 Unauthorized)"),
        "{stderr}"
    );
    assert!(!stderr.contains(TOKEN));
}

/// Runs the binary with `args`, returns (exit code, stdout, stderr).
fn run_bin(args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String, String) {
    let mut cmd = bin();
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn command_line_help_version_and_usage_errors() {
    let (code, out, _) = run_bin(&["--help"], &[]);
    assert_eq!(code, Some(0));
    assert!(out.contains("trueconf-bot check [--config PATH]"), "{out}");
    let (code, out, _) = run_bin(&["--version"], &[]);
    assert_eq!(
        (code, out.trim()),
        (Some(0), concat!("trueconf-bot ", env!("CARGO_PKG_VERSION")))
    );
    let (code, _, err) = run_bin(&["--bogus"], &[]);
    assert_eq!(code, Some(2));
    assert_eq!(
        err,
        "trueconf-bot: unknown argument '--bogus'\nTry 'trueconf-bot --help'.\n"
    );
    let (code, _, err) = run_bin(&["--config"], &[]);
    assert_eq!(
        (code, err.as_str()),
        (
            Some(2),
            "trueconf-bot: --config needs a file path\nTry 'trueconf-bot --help'.\n"
        )
    );
}

#[test]
fn settings_problems_exit_2_naming_file_key_and_reason() {
    let dir = crate::support::TempDir::new();
    let missing = dir.join("settings.toml");
    let (code, _, err) = run_bin(&["--config", missing.to_str().unwrap()], &[]);
    assert_eq!(code, Some(2));
    assert!(
        err.contains("settings.toml: the settings cannot be used:"),
        "{err}"
    );
    assert!(
        err.contains("copy settings.example.toml to settings.toml"),
        "{err}"
    );

    let bad = dir.join("bad.toml");
    std::fs::write(&bad, "tg-api-token = \"1:x\"\ntg-users-id = [1,\n").unwrap();
    let (code, _, err) = run_bin(&["--config", bad.to_str().unwrap()], &[]);
    assert_eq!(code, Some(2));
    assert!(
        err.contains("not valid TOML: TOML parse error at line"),
        "{err}"
    );

    let typed = dir.join("typed.toml");
    std::fs::write(&typed, "tg-api-token = 5\ntg-users-id = []\n[servers.a]\nip = \"h\"\napi_version = \"v4\"\nssl_certificate = \"nope.pem\"\n").unwrap();
    let (code, _, err) = run_bin(&["--config", typed.to_str().unwrap()], &[]);
    assert_eq!(code, Some(2));
    for expected in [
        "  - tg-api-token: must be a string in quotes, found the number 5",
        "  - tg-users-id: is empty; list at least one Telegram user id",
        "  - servers.a.api_version: v4 is not supported: this bot speaks API v3.x",
        "  - servers.a.ssl_certificate: certificate file",
    ] {
        assert!(err.contains(expected), "missing {expected:?} in:\n{err}");
    }
}

#[test]
fn warnings_for_unknown_keys_and_readable_settings_without_timestamps_under_journald() {
    use std::os::unix::fs::PermissionsExt;
    let tg = crate::support::fake_telegram::FakeTelegram::start();
    tg.set_token("1:revoked"); // exit right after the warnings
    let dir = crate::support::TempDir::new();
    let servers = [Srv::new("Main")];
    let path = dir.join("settings.toml");
    std::fs::write(
        &path,
        settings_text(&tg, &dir, &servers, "tg-user-id = [5]", ""),
    )
    .unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (code, _, err) = run_bin(
        &["--config", path.to_str().unwrap()],
        &[("JOURNAL_STREAM", "8:1234")],
    );
    assert_eq!(code, Some(2), "{err}");
    let warn_lines: Vec<&str> = err.lines().filter(|l| l.contains("WARN")).collect();
    assert!(
        warn_lines.iter().any(
            |l| l.contains("unknown key 'tg-user-id' is ignored (did you mean 'tg-users-id'?)")
        ),
        "{err}"
    );
    assert!(
        warn_lines
            .iter()
            .any(|l| l.contains("is readable by every user") && l.contains("chmod 600")),
        "{err}"
    );
    for line in warn_lines {
        assert!(
            line.starts_with("[WARN"),
            "journald adds its own timestamps: {line}"
        );
    }
}

#[test]
fn secrets_never_reach_the_log_at_the_most_verbose_level() {
    use crate::support::fake_trueconf::{CLIENT_SECRET, Conf};
    let tg = crate::support::fake_telegram::FakeTelegram::start();
    let dir = crate::support::TempDir::new();
    let servers = [
        Srv::new("Main").monitored(0.05),
        Srv::with_tls("Other", crate::support::fake_trueconf::Tls::SelfSigned),
    ];
    let main = &servers[0].fake;
    main.set_conferences(vec![Conf::running("4815162342", 4000)]);
    main.set_token_ttl(1);
    let path = dir.join("settings.toml");
    std::fs::write(&path, settings_text(&tg, &dir, &servers, "", "")).unwrap();
    let log = std::fs::File::create(dir.join("log.txt")).unwrap();
    let mut child = bin()
        .args(["--config", path.to_str().unwrap()])
        .env(
            "RUST_LOG",
            "trace,ureq=trace,ureq_proto=trace,rustls=trace,ureq::run=trace",
        )
        .stderr(log)
        .spawn()
        .unwrap();
    let chat = |text: &str| tg.push_message(OP, OP, text, None);
    let wait = |pred: &dyn Fn(&crate::support::fake_telegram::Msg) -> bool| {
        tg.wait_message(WAIT, OP, pred).expect("the bot answered")
    };
    chat("/start");
    let picker = wait(&|m| m.plain.contains("Choose a server"));
    let press = |msg: &crate::support::fake_telegram::Msg, label: &str| {
        let (_, data) = msg.button(label).expect("button");
        tg.push_callback(OP, OP, msg.message_id, &data, None);
    };
    press(&picker, "Main");
    let menu = wait(&|m| m.plain.contains("What would you like to see?"));
    press(&menu, "Running");
    let list = wait(&|m| m.plain.contains("Running conferences: 1"));
    // The token expires; the next request renews it.
    main.expire_tokens();
    press(&list, "Stop 4815162342");
    let confirm = wait(&|m| m.plain.contains("Stop this conference?"));
    press(&confirm, "Yes, stop");
    wait(&|m| m.plain.contains("has been stopped"));
    chat("/status");
    wait(&|m| m.plain.contains("All servers"));
    main.set_up(false);
    wait(&|m| m.plain.contains("is DOWN"));
    let _ = child.kill();
    let _ = child.wait();
    let log = std::fs::read_to_string(dir.join("log.txt")).unwrap();
    assert!(log.contains("DEBUG"), "the log was not verbose:\n{log}");
    let mut secrets = vec![TOKEN.to_string(), CLIENT_SECRET.to_string()];
    for fake in [&servers[0].fake, &servers[1].fake] {
        secrets.extend(fake.requests().into_iter().filter_map(|r| r.token));
    }
    assert!(secrets.len() > 3, "no access token was issued: {secrets:?}");
    for secret in &secrets {
        assert!(
            !log.contains(secret.as_str()),
            "a secret reached the log:\n{log}"
        );
    }
    let token_id = TOKEN.split(':').nth(1).unwrap();
    assert!(!log.contains(token_id));
    assert!(
        !log.contains("/bot"),
        "a Telegram URL reached the log:\n{log}"
    );
    assert!(
        !log.contains("access_token="),
        "a TrueConf URL reached the log:\n{log}"
    );
}

#[test]
fn relative_dirs_are_refused_when_the_settings_come_from_load_credential() {
    let tg = crate::support::fake_telegram::FakeTelegram::start();
    let dir = crate::support::TempDir::new();
    let creds = dir.join("credentials");
    std::fs::create_dir_all(&creds).unwrap();
    let path = creds.join("settings.toml");
    let servers = [Srv::new("Main")];
    let text = settings_text(&tg, &dir, &servers, "", "");
    let state = toml_str(&dir.join("state").display().to_string());
    let relative = text.replace(&format!("state-dir = {state}"), "state-dir = \"state\"");
    assert_ne!(relative, text);
    std::fs::write(&path, &relative).unwrap();
    let creds_env = creds.display().to_string();
    let config = path.display().to_string();
    let (code, _, err) = run_bin(
        &["--config", &config],
        &[("CREDENTIALS_DIRECTORY", &creds_env)],
    );
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("state-dir: a relative path would point into systemd's credentials directory"),
        "{err}"
    );
    assert!(tg.calls().is_empty(), "it started anyway");
    // Outside LoadCredential the same file is fine (the bot starts polling).
    let mut child = bin()
        .args(["--config", &config])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let polled = tg.wait_count(WAIT, "getupdates", 1).len();
    let _ = child.kill();
    let _ = child.wait();
    assert!(polled >= 1, "the bot did not start");
}

/// ARCHITECTURE.md's layering: no module of `src/` imports `bot`, and the
/// graph of `crate::` paths between modules has no cycle.
#[test]
fn the_module_graph_is_layered() {
    use std::collections::{BTreeMap, BTreeSet};
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut files = vec![src.clone()];
    while let Some(path) = files.pop() {
        if path.is_dir() {
            files.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
            continue;
        }
        let relative = path
            .strip_prefix(&src)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let module = relative.split(['/', '.']).next().unwrap().to_string();
        if module == "lib" || module == "main" {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let deps = graph.entry(module.clone()).or_default();
        for (i, _) in text.match_indices("crate::") {
            let name: String = text[i + 7..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() && name != module {
                deps.insert(name);
            }
        }
    }
    assert!(graph.len() > 20, "modules not found: {graph:?}");
    for (module, deps) in &graph {
        assert!(!deps.contains("bot"), "{module} imports bot");
    }
    // Kahn: a module whose dependencies are all placed is placed; what is
    // never placed lies on a cycle.
    let mut placed: BTreeSet<String> = BTreeSet::new();
    loop {
        let ready: Vec<String> = graph
            .iter()
            .filter(|(m, deps)| {
                !placed.contains(*m)
                    && deps
                        .iter()
                        .all(|d| placed.contains(d) || !graph.contains_key(d))
            })
            .map(|(m, _)| m.clone())
            .collect();
        if ready.is_empty() {
            break;
        }
        placed.extend(ready);
    }
    let cyclic: Vec<&String> = graph.keys().filter(|m| !placed.contains(*m)).collect();
    assert!(
        cyclic.is_empty(),
        "an import cycle (or modules above one): {cyclic:?}: {graph:?}"
    );
}
