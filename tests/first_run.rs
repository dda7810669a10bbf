//! Issue 14: a first run that explains itself, through the real binary: the
//! first log line, a placeholder or mistyped token, Telegram unreachable at
//! start, and timestamps unless journald stamps the lines.

use std::path::Path;
use std::process::{Child, Stdio};

use crate::harness::*;
use crate::support::fake_telegram::{FakeTelegram, TOKEN};
use crate::support::{TempDir, wait_until};

/// The placeholder token of settings.example.toml.
const EXAMPLE_TOKEN: &str = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw";

/// The bot running with `settings`, its stderr going to `log`; killed on drop.
struct Running(Child);

impl Running {
    fn start(settings: &Path, log: &Path, env: &[(&str, &str)]) -> Running {
        let mut cmd = bin();
        cmd.arg("--config")
            .arg(settings)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log).unwrap());
        for (k, v) in env {
            cmd.env(k, v);
        }
        Running(cmd.spawn().unwrap())
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// `[2026-12-03T06:00:37Z ` at the start of a line.
fn stamped(line: &str) -> bool {
    let b = line.as_bytes();
    b.len() > 21
        && b[0] == b'['
        && b[20] == b'Z'
        && b[21] == b' '
        && line[1..20].bytes().enumerate().all(|(i, c)| match i {
            4 | 7 => c == b'-',
            10 => c == b'T',
            13 | 16 => c == b':',
            _ => c.is_ascii_digit(),
        })
}

#[test]
fn the_first_log_line_names_version_settings_and_telegram_host_each_line_stamped() {
    let tg = FakeTelegram::start();
    let dir = TempDir::new();
    let servers = [Srv::new("Main")];
    let settings = dir.join("settings.toml");
    std::fs::write(&settings, settings_text(&tg, &dir, &servers, "", "")).unwrap();
    let host = tg.base_url().trim_start_matches("http://").to_string();
    let expected = format!(
        "trueconf-bot {} starting with the settings {}; Telegram Bot API at {host}",
        env!("CARGO_PKG_VERSION"),
        settings.display()
    );
    for journald in [false, true] {
        let log = dir.join(format!("log-{journald}.txt"));
        let env: &[(&str, &str)] = if journald {
            &[("JOURNAL_STREAM", "8:1234")]
        } else {
            &[]
        };
        let polls = tg.calls_to("getupdates").len();
        let bot = Running::start(&settings, &log, env);
        assert!(
            !tg.wait_count(WAIT, "getupdates", polls + 1).is_empty(),
            "the bot never polled: {}",
            read(&log)
        );
        drop(bot);
        let text = read(&log);
        let first = text.lines().next().unwrap_or_default();
        assert!(first.contains(&expected), "first line: {first}\n{text}");
        assert!(first.contains("INFO "), "{first}");
        for line in text.lines() {
            if journald {
                assert!(
                    line.starts_with("[INFO") || line.starts_with("[WARN"),
                    "{line}"
                );
            } else {
                assert!(stamped(line), "no timestamp: {line}");
            }
        }
    }
}

#[test]
fn the_example_token_and_a_mistyped_one_are_settings_errors_that_do_not_show_it() {
    let tg = FakeTelegram::start();
    let dir = TempDir::new();
    let servers = [Srv::new("Main")];
    let text = settings_text(&tg, &dir, &servers, "", "");
    let settings = dir.join("settings.toml");
    let cases = [
        (
            EXAMPLE_TOKEN,
            "tg-api-token: is still the placeholder of settings.example.toml; put the token @BotFather gave you",
        ),
        (
            "123456789:SEKRETmistyped",
            "tg-api-token: does not look like a bot token (digits, ':', then about 35 letters, digits, '_' or '-'); copy it again from @BotFather",
        ),
    ];
    for (token, message) in cases {
        std::fs::write(&settings, text.replace(TOKEN, token)).unwrap();
        for check in [false, true] {
            let mut cmd = bin();
            if check {
                cmd.arg("check");
            }
            let out = cmd.arg("--config").arg(&settings).output().unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{stderr}");
            assert!(
                stderr.contains(&format!(
                    "{}: the settings cannot be used:\n  - {message}",
                    settings.display()
                )),
                "{stderr}"
            );
            let token_part = token.split(':').nth(1).unwrap();
            assert!(!stderr.contains(token_part), "the token is shown: {stderr}");
            assert!(
                !String::from_utf8_lossy(&out.stdout).contains(token_part),
                "the token is shown"
            );
        }
    }
    assert!(
        tg.calls().is_empty(),
        "Telegram was asked with a bad token: {:?}",
        tg.calls()
    );
}

#[test]
fn telegram_unreachable_at_start_says_where_why_that_it_retries_and_what_to_run() {
    let tg = FakeTelegram::start();
    let dir = TempDir::new();
    let servers = [Srv::new("Main")];
    let text = settings_text(&tg, &dir, &servers, "", "");
    let refused = crate::support::refused_port();
    // Answers the first two connections in plain HTTP at once: TLS fails.
    let plain_http = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let plain = plain_http.local_addr().unwrap().to_string();
    let answering = std::thread::spawn(move || {
        for _ in 0..2 {
            if let Ok((mut conn, _)) = plain_http.accept() {
                use std::io::Write;
                let _ = conn.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
            }
        }
    });
    // The fake Telegram waits for an HTTP request that a TLS hello never completes.
    let silent = tg.base_url().trim_start_matches("http://").to_string();
    let cases = [
        (
            format!("http://127.0.0.1:{refused}"),
            format!("127.0.0.1:{refused}"),
            "no connection (connection refused)",
        ),
        (
            format!("https://{plain}"),
            plain.clone(),
            "the TLS handshake failed (",
        ),
        (
            format!("https://{silent}"),
            silent.clone(),
            "no answer in time (timeout)",
        ),
    ];
    for (i, (url, host, why)) in cases.iter().enumerate() {
        let settings = dir.join(format!("settings-{i}.toml"));
        std::fs::write(&settings, text.replace(&tg.base_url(), url)).unwrap();
        let log = dir.join(format!("log-{i}.txt"));
        let _bot = Running::start(&settings, &log, &[]);
        let first = format!("cannot reach Telegram at {host}: {why}");
        let told = wait_until(WAIT, || {
            let text = read(&log);
            text.contains(&first) && text.contains("still cannot reach Telegram")
        });
        let text = read(&log);
        assert!(told, "{text}");
        let line = text.lines().find(|l| l.contains(&first)).unwrap();
        assert!(line.contains(" WARN "), "{line}");
        assert!(line.contains("for as long as it takes"), "{line}");
        assert!(
            line.contains(&format!(
                "(`trueconf-bot check` diagnoses it: trueconf-bot check --config {})",
                settings.display()
            )),
            "{line}"
        );
        assert!(!text.contains(TOKEN.split(':').nth(1).unwrap()));
    }
    answering.join().unwrap();
    assert!(tg.calls().is_empty(), "{:?}", tg.calls());
}
