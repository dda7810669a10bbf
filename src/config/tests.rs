//! Validation of settings files: the original's format, our additions, and
//! every error path with its exact message.

use super::*;

const ORIGINAL: &str = r#"
tg-api-token = "5032177032:AAGahjzZ6zbWSEsVFj13Ki-YMPhPEPzQjxE"
tg-users-id = [12345, 123456]
locale = "de"

[servers]

[servers."video.example.com"]
ip = "video.example.com"
client_id = "86add683ebc98123968a549f8976db0024abe288"
client_secret = "b7f3f5cb51b02634b1bb546eb7f1f905c93960ba"
access_token = "a5bace995fd9d65315f36518fd7b3b4f68a69557"
ssl_certificate = ""

[servers."video.example.com".server_status]
state = true
timeout = 15

[servers."video.example.net"]
ip = "video.example.net"
client_id = "1ebb5498ddd6668d7885c1597f9a1330fc0caddd"
client_secret = "067171487c59f063287a44c40671d6247d647e42"
access_token = ""
ssl_certificate = true

[servers."video.example.net".server_status]
state = 0
timeout = 15
"#;

fn ok(text: &str) -> Loaded {
    match parse(text, Path::new("/etc/tcb/settings.toml"), None) {
        Ok(l) => l,
        Err(e) => panic!("expected valid settings, got:\n{e}"),
    }
}

#[track_caller]
fn problems(text: &str) -> Vec<String> {
    match parse(text, Path::new("settings.toml"), None) {
        Ok(_) => panic!("expected problems"),
        Err(Error::Config { problems, .. }) => problems,
        Err(e) => panic!("unexpected error {e}"),
    }
}

#[test]
fn the_original_example_loads_unchanged() {
    let l = ok(ORIGINAL);
    assert!(l.warnings.is_empty(), "{:?}", l.warnings);
    let s = l.settings;
    assert_eq!(s.operators, vec![12345, 123456]);
    assert_eq!(s.locale, "de");
    assert_eq!(s.api_url, "https://api.telegram.org");
    assert_eq!(s.state_dir, PathBuf::from("/etc/tcb"));
    assert_eq!(s.servers.len(), 2);
    let (a, b) = (&s.servers[0], &s.servers[1]);
    assert_eq!(a.name, "video.example.com");
    assert_eq!(a.trust, Trust::Off);
    assert!(a.monitor_at_start);
    assert_eq!(
        a.access_token.as_ref().map(Secret::expose),
        Some("a5bace995fd9d65315f36518fd7b3b4f68a69557")
    );
    assert_eq!(b.trust, Trust::BuiltIn);
    assert!(!b.monitor_at_start);
    assert!(b.access_token.is_none());
    assert_eq!(b.probe_interval, Duration::from_secs(15));
    assert_eq!((b.status_port, b.api_version.as_str()), (4307, "v3.3"));
    assert_eq!(s.forgotten.after, Duration::from_secs(3600));
    assert_eq!(s.monitoring.failures_before_down, 2);
}

#[test]
fn the_shipped_example_loads_once_its_token_is_replaced() {
    let text = include_str!("../../settings.example.toml");
    assert_eq!(
        problems(text),
        [
            "tg-api-token: is still the placeholder of settings.example.toml; put the token @BotFather gave you"
        ]
    );
    let l = ok(&text.replace(
        EXAMPLE_TOKEN,
        "5032177032:AAGahjzZ6zbWSEsVFj13Ki-YMPhPEPzQjxE",
    ));
    assert!(l.warnings.is_empty(), "{:?}", l.warnings);
}

#[test]
fn a_token_of_the_wrong_shape_is_refused_without_showing_it() {
    for token in [
        "AAGahjzZ6zbWSEsVFj13Ki-YMPhPEPzQjxE",
        "5032177032:AAGahjz",
        "bot5032177032:AAGahjzZ6zbWSEsVFj13Ki-YMPhPEPzQjxE",
        "5032177032:AAGahjzZ6zbWSEsVFj13Ki YMPhPEPzQjxE",
    ] {
        let rest = ORIGINAL.replace(
            "tg-api-token = \"5032177032:AAGahjzZ6zbWSEsVFj13Ki-YMPhPEPzQjxE\"\n",
            "",
        );
        let got = problems(&format!("tg-api-token = \"{token}\"\n{rest}"));
        assert_eq!(got.len(), 1, "{token}: {got:?}");
        assert!(
            got[0].starts_with("tg-api-token: does not look like a bot token"),
            "{got:?}"
        );
        assert!(!got[0].contains("AAGahjz"), "the value is shown: {got:?}");
    }
}

#[test]
fn the_telegram_host_is_named_without_scheme_path_or_credentials() {
    let mut s = ok(ORIGINAL).settings;
    assert_eq!(s.telegram_host(), "api.telegram.org");
    s.api_url = "http://user:pw@127.0.0.1:8081/prefix?x=1".into();
    assert_eq!(s.telegram_host(), "127.0.0.1:8081");
}

#[test]
fn debug_output_shows_no_secret() {
    let s = ok(ORIGINAL).settings;
    let debug = format!("{s:?}");
    for secret in [
        "5032177032:AAGahjzZ6zbWSEsVFj13Ki-YMPhPEPzQjxE",
        "b7f3f5cb51b02634b1bb546eb7f1f905c93960ba",
        "a5bace995fd9d65315f36518fd7b3b4f68a69557",
        "067171487c59f063287a44c40671d6247d647e42",
    ] {
        assert!(!debug.contains(secret), "Debug shows a secret");
    }
    assert!(debug.contains("***"));
}

#[test]
fn names_of_any_shape_are_kept_and_keys_stay_short() {
    let long = format!("Сервер \\\"{}\\\" 東京", "x".repeat(190));
    let text = format!(
        "tg-api-token = \"1:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"\ntg-users-id = [1]\n[servers.\"{long}\"]\nip = \"10.0.0.1:8443\"\naccess_token = \"t\"\n"
    );
    let s = ok(&text).settings;
    assert!(s.servers[0].name.starts_with("Сервер \"x"));
    assert_eq!(s.servers[0].key.len(), 8);
    assert_eq!(s.servers[0].host, "10.0.0.1:8443");
    assert_eq!(s.servers[0].bare_host(), "10.0.0.1");
    assert_eq!(s.servers[0].status_url(), "http://10.0.0.1:4307/vsstatus");
    let mut server = s.servers[0].clone();
    for (host, expected) in [
        ("tc.local", ("tc.local", 443)),
        ("127.0.0.1:8443", ("127.0.0.1", 8443)),
        ("[::1]:9", ("::1", 9)),
        ("[::1]", ("::1", 443)),
    ] {
        server.host = host.to_string();
        assert_eq!(server.host_and_port(), expected);
    }
    server.host = "[::1]:9".into();
    assert_eq!(server.status_url(), "http://[::1]:4307/vsstatus");
}

#[test]
fn every_problem_is_reported_at_once() {
    let got = problems(
        r#"
tg-users-id = []
locale = 5
[servers.a]
ip = 1
ssl_certificate = "/nonexistent/ca.pem"
status_port = 70000
[servers.a.server_status]
state = "yes"
timeout = -1
[monitoring]
failures_before_down = 0
"#,
    );
    let expected = [
        "tg-api-token: is missing",
        "tg-users-id: is empty; list at least one Telegram user id, e.g. tg-users-id = [12345]",
        "locale: must be a string in quotes, found the number 5",
        "monitoring.failures_before_down: must be between 1 and 1000",
        "servers.a.ip: must be a string in quotes, found the number 1",
        "servers.a.ssl_certificate: certificate file /nonexistent/ca.pem cannot be read: No such file or directory (os error 2)",
        "servers.a.status_port: must be a port number from 1 to 65535",
        "servers.a.server_status.state: must be true, false, 1 or 0, found a string",
        "servers.a.server_status.timeout: must be at least 0.01 and at most 86400 seconds",
    ];
    assert_eq!(got, expected);
}

#[test]
fn bad_toml_names_the_place() {
    let got = problems("tg-api-token = \"x\ntg-users-id = [1]\n");
    assert_eq!(got.len(), 1);
    assert!(
        got[0].starts_with("not valid TOML: TOML parse error at line 1"),
        "{got:?}"
    );
}

#[test]
fn missing_servers_and_wrong_id_types() {
    let got = problems("tg-api-token = \"1:a\"\ntg-users-id = [\"bob\"]\n");
    assert_eq!(
        got,
        [
            "tg-api-token: does not look like a bot token (digits, ':', then about 35 letters, digits, '_' or '-'); copy it again from @BotFather",
            "tg-users-id: must be a list of numeric Telegram user ids, e.g. tg-users-id = [12345, 67890]; found a string",
            "servers: no server configured; add a [servers.\"NAME\"] table with ip and credentials",
        ]
    );
}

#[test]
fn unknown_keys_are_warned_with_a_hint() {
    let text = format!(
        "{ORIGINAL}\n[forgotten]\nafter_minute = 5\n[monitoring]\nremind_every_minutes = 30\n"
    );
    let l = ok(&text.replace("locale = \"de\"", "locale = \"de\"\ntg-user-id = [1]"));
    assert_eq!(
        l.warnings,
        [
            "unknown key 'tg-user-id' is ignored (did you mean 'tg-users-id'?)",
            "unknown key 'forgotten.after_minute' is ignored (did you mean 'after_minutes'?)",
        ]
    );
    assert_eq!(
        l.settings.monitoring.remind_every,
        Some(Duration::from_secs(1800))
    );
}

#[test]
fn additions_and_their_defaults() {
    let text = format!(
        "tg-api-url = \"http://127.0.0.1:8081/\"\ntg-viewers-id = [7]\nstate-dir = \"state\"\ntg-poll-timeout = 1\n{}\n[forgotten]\nafter_minutes = 0.5\nscan_every_minutes = 10\nauto_stop_after_minutes = 0\n",
        ORIGINAL.replace("[servers]", "")
    );
    let s = ok(&text).settings;
    assert_eq!(s.api_url, "http://127.0.0.1:8081");
    assert_eq!(s.viewers, vec![7]);
    assert_eq!(s.state_dir, PathBuf::from("/etc/tcb/state"));
    assert_eq!(s.poll_timeout, Duration::from_secs(1));
    assert_eq!(s.forgotten.after, Duration::from_secs(30));
    assert_eq!(s.forgotten.scan_every, Some(Duration::from_secs(600)));
    assert_eq!(s.forgotten.auto_stop_after, None);
    assert_eq!(s.role_of(12345), Some(Role::Operator));
    assert_eq!(s.role_of(7), Some(Role::Viewer));
    assert_eq!(s.role_of(8), None);
    assert_eq!(s.everyone(), vec![12345, 123456, 7]);
}

#[test]
fn state_dir_comes_from_systemd_when_not_set() {
    let l = parse(
        ORIGINAL,
        Path::new("settings.toml"),
        Some("/var/lib/trueconf-bot"),
    )
    .unwrap();
    assert_eq!(l.settings.state_dir, PathBuf::from("/var/lib/trueconf-bot"));
    let l = parse(ORIGINAL, Path::new("settings.toml"), None).unwrap();
    assert_eq!(l.settings.state_dir, PathBuf::from("."));
}

#[test]
fn a_certificate_file_without_certificates_is_an_error() {
    let dir = std::env::temp_dir().join(format!("tcb-cfg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("empty.pem"), "").unwrap();
    let text = ORIGINAL.replace("ssl_certificate = \"\"", "ssl_certificate = \"empty.pem\"");
    let got = match parse(&text, &dir.join("settings.toml"), None) {
        Err(Error::Config { problems, .. }) => problems,
        _ => panic!("expected a problem"),
    };
    std::fs::remove_dir_all(&dir).ok();
    assert_eq!(got.len(), 1);
    assert!(
        got[0].starts_with("servers.\"video.example.com\".ssl_certificate: certificate file "),
        "{got:?}"
    );
    assert!(
        got[0].ends_with("empty.pem holds no PEM certificate"),
        "{got:?}"
    );
}

#[test]
fn intervals_that_would_spin_are_refused_and_short_ones_warned() {
    // 0.0009 min is 54 ms: below the documented 0.001 min (60 ms).
    let text = format!("{ORIGINAL}\n[forgotten]\nscan_every_minutes = 0.0009\n");
    assert_eq!(
        problems(&text),
        ["forgotten.scan_every_minutes: must be 0 (off) or at least 0.001 minutes"]
    );
    let text = format!("{ORIGINAL}\n[forgotten]\nscan_every_minutes = 0.001\n");
    assert!(ok(&text).settings.forgotten.scan_every.is_some());
    let text = format!(
        "tg-poll-timeout = 0\n{}\n[forgotten]\nscan_every_minutes = 0.0001\n",
        ORIGINAL.replace(
            "timeout = 15\n\n[servers.\"video.example.net\"]",
            "timeout = 0.001\n\n[servers.\"video.example.net\"]"
        )
    );
    assert_eq!(
        problems(&text),
        [
            "tg-poll-timeout: must be between 1 and 50 seconds",
            "forgotten.scan_every_minutes: must be 0 (off) or at least 0.001 minutes",
            "servers.\"video.example.com\".server_status.timeout: must be at least 0.01 and at most 86400 seconds",
        ]
    );
    let text = format!(
        "tg-poll-timeout = 5\n{}\n[forgotten]\nscan_every_minutes = 0.5\n",
        ORIGINAL.replace(
            "timeout = 15\n\n[servers.\"video.example.net\"]",
            "timeout = 0.5\n\n[servers.\"video.example.net\"]"
        )
    );
    let l = ok(&text);
    assert_eq!(l.warnings.len(), 3, "{:?}", l.warnings);
    assert_eq!(l.settings.poll_timeout, Duration::from_secs(5));
}

#[test]
fn relative_dirs_under_load_credential_are_refused_with_the_fix() {
    let creds = Path::new("/run/credentials/trueconf-bot.service");
    let text = ORIGINAL.replacen(
        "locale = \"de\"",
        "locale = \"de\"\nstate-dir = \"state\"\nlocales-dir = \"texts\"",
        1,
    );
    let loaded = parse(&text, &creds.join("settings.toml"), None).unwrap();
    assert_eq!(loaded.settings.relative_dirs, ["state-dir", "locales-dir"]);
    let err = check_credentials_dir(&loaded.settings, creds.to_str()).unwrap_err();
    let shown = err.to_string();
    assert!(
        shown.contains(
            "state-dir: a relative path would point into systemd's credentials directory"
        ),
        "{shown}"
    );
    assert!(shown.contains("locales-dir: a relative path"), "{shown}");
    // The same file elsewhere, or absolute paths, are fine.
    assert!(check_credentials_dir(&loaded.settings, None).is_ok());
    assert!(check_credentials_dir(&loaded.settings, Some("/elsewhere")).is_ok());
    let absolute = text
        .replace("\"state\"", "\"/var/lib/tcb\"")
        .replace("\"texts\"", "\"/etc/tcb\"");
    let loaded = parse(&absolute, &creds.join("settings.toml"), None).unwrap();
    assert!(check_credentials_dir(&loaded.settings, creds.to_str()).is_ok());
}

#[test]
fn timezone_utc_an_offset_or_a_name_else_a_problem_that_says_what_is_accepted() {
    let with = |tz: &str| {
        ORIGINAL.replacen(
            "locale = \"de\"",
            &format!("locale = \"de\"\ntimezone = \"{tz}\""),
            1,
        )
    };
    assert_eq!(
        ok(&with("UTC")).settings.timezone,
        crate::clock::Zone::utc()
    );
    let moscow = ok(&with("+03:00")).settings.timezone;
    assert_eq!(moscow.date_time(0), "1970-01-01 03:00 +03:00");
    let problems = problems(&with("Mars/Olympus"));
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].starts_with("timezone: no time zone 'Mars/Olympus' in "),
        "{problems:?}"
    );
    assert!(
        problems[0].contains("use UTC, an offset such as +03:00"),
        "{problems:?}"
    );
}

#[test]
fn a_proxy_is_checked_and_its_credentials_never_shown() {
    let with = |url: &str| {
        ORIGINAL.replacen(
            "locale = \"de\"",
            &format!("locale = \"de\"\ntg-proxy = \"{url}\""),
            1,
        )
    };
    let loaded = ok(&with("http://bot:pr0xy-SEKRET@proxy.lan:3128"));
    let proxy = loaded.settings.tg_proxy.as_ref().unwrap();
    assert_eq!(proxy.shown(), "http://proxy.lan:3128");
    let debug = format!("{:?}", loaded.settings);
    assert!(!debug.contains("pr0xy-SEKRET"), "{debug}");
    assert!(
        ok(&with("socks5://127.0.0.1:1080"))
            .settings
            .tg_proxy
            .is_some()
    );
    assert!(ok(&with("")).settings.tg_proxy.is_none());
    for bad in ["ftp://x:1", "proxy.lan:3128", "http://"] {
        let problems = problems(&with(bad));
        assert!(problems[0].starts_with("tg-proxy: "), "{problems:?}");
    }
}

#[test]
fn a_server_without_credentials_loads_for_monitoring_only() {
    // The vendor's own example file ships with empty credentials (SPEC §3:
    // every file the original accepted loads).
    let text = ORIGINAL.replace(
        "client_id = \"1ebb5498ddd6668d7885c1597f9a1330fc0caddd\"\nclient_secret = \"067171487c59f063287a44c40671d6247d647e42\"",
        "client_id = \"\"\nclient_secret = \"\"",
    );
    let l = ok(&text);
    assert_eq!(
        l.warnings,
        [
            "servers.\"video.example.net\": no client_id and client_secret (an OAuth2 application of the server) \
          and no access_token: this server is monitored only (Status works; conferences and users need them)"
        ]
    );
    let (a, b) = (&l.settings.servers[0], &l.settings.servers[1]);
    assert!(!a.monitoring_only());
    assert!(b.monitoring_only());
    // A fixed token alone is enough to use the API.
    let fixed = text.replace(
        "access_token = \"\"",
        "access_token = \"a5bace995fd9d65315f36518fd7b3b4f68a69557\"",
    );
    let l = ok(&fixed);
    assert!(l.warnings.is_empty(), "{:?}", l.warnings);
    assert!(!l.settings.servers[1].monitoring_only());
}

#[test]
fn only_api_v3_is_accepted() {
    for good in ["v3.3", "v3.11", "/v3.1/"] {
        let text = ORIGINAL.replace(
            "ip = \"video.example.net\"",
            &format!("ip = \"video.example.net\"\napi_version = \"{good}\""),
        );
        assert!(ok(&text).settings.servers[1].api_version.starts_with("v3."));
    }
    for (bad, why) in [
        (
            "v4",
            "v4 is not supported: this bot speaks API v3.x (e.g. v3.3), which TrueConf Server 5.5 still serves",
        ),
        (
            "v4.1",
            "v4 is not supported: this bot speaks API v3.x (e.g. v3.3), which TrueConf Server 5.5 still serves",
        ),
        ("v3", "must be v3.N, e.g. v3.3 (this bot speaks API v3.x)"),
        ("3.3", "must be v3.N, e.g. v3.3 (this bot speaks API v3.x)"),
        (
            "v3.3/x",
            "must be v3.N, e.g. v3.3 (this bot speaks API v3.x)",
        ),
    ] {
        let text = ORIGINAL.replace(
            "ip = \"video.example.net\"",
            &format!("ip = \"video.example.net\"\napi_version = \"{bad}\""),
        );
        assert_eq!(
            problems(&text),
            [format!("servers.\"video.example.net\".api_version: {why}")],
            "{bad}"
        );
    }
}

#[test]
fn auto_stop_rules_default_to_the_safe_two_and_unknown_ones_are_errors() {
    let s = ok(ORIGINAL).settings;
    assert_eq!(
        s.forgotten.auto_stop_rules,
        [ForgottenRule::Empty, ForgottenRule::OwnerAlone]
    );
    let with = |rules: &str| format!("{ORIGINAL}\n[forgotten]\nauto_stop_rules = {rules}\n");
    let s = ok(&with(r#"["no_leader", "empty", "no_leader"]"#)).settings;
    assert_eq!(
        s.forgotten.auto_stop_rules,
        [ForgottenRule::NoLeader, ForgottenRule::Empty]
    );
    assert!(
        ok(&with("[]"))
            .settings
            .forgotten
            .auto_stop_rules
            .is_empty()
    );
    assert_eq!(
        problems(&with(r#"["empty", "nobody"]"#)),
        [
            "forgotten.auto_stop_rules: unknown rule \"nobody\"; the rules are \"empty\", \"owner_alone\", \"no_leader\""
        ]
    );
    assert_eq!(
        problems(&with(r#""empty""#)),
        [
            "forgotten.auto_stop_rules: must be a list out of \"empty\", \"owner_alone\", \"no_leader\", found a string, e.g. auto_stop_rules = [\"empty\", \"owner_alone\"]"
        ]
    );
    assert_eq!(
        problems(&with("[1]")),
        [
            "forgotten.auto_stop_rules: must list rule names in quotes (\"empty\", \"owner_alone\", \"no_leader\"), found the number 1"
        ]
    );
}

#[test]
fn the_api_check_runs_every_minute_unless_set() {
    let s = ok(ORIGINAL).settings;
    assert_eq!(s.monitoring.api_check_every, Some(Duration::from_secs(60)));
    let with = |v: &str| format!("{ORIGINAL}\n[monitoring]\napi_check_every_seconds = {v}\n");
    assert_eq!(ok(&with("0")).settings.monitoring.api_check_every, None);
    assert_eq!(
        ok(&with("0.5")).settings.monitoring.api_check_every,
        Some(Duration::from_millis(500))
    );
    assert_eq!(
        problems(&with("-1")),
        [
            "monitoring.api_check_every_seconds: must be 0 (off), or at least 0.01 and at most 86400 seconds"
        ]
    );
    assert_eq!(
        problems(&with("\"often\"")),
        ["monitoring.api_check_every_seconds: must be a number, found a string"]
    );
}
