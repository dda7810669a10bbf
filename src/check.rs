//! `trueconf-bot check` (SPEC §8.5): after the settings validated, checks
//! Telegram and every server step by step, printing one ✔/✘ line per check
//! with the reason and the fix. Servers are checked in parallel and the whole
//! run ends within 20 s whatever is down. Prints no secret.

use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::config::{Server, Settings};
use crate::error::Error;
use crate::http::Trust;
use crate::telegram::{Telegram, TgError};
use crate::timing::Timing;
use crate::trueconf::{self, Problem, TrueConf};

/// One line of the report.
#[derive(Debug, Clone)]
struct Line {
    ok: bool,
    text: String,
}

fn pass(text: impl Into<String>) -> Line {
    Line {
        ok: true,
        text: text.into(),
    }
}

fn fail(text: impl Into<String>) -> Line {
    Line {
        ok: false,
        text: text.into(),
    }
}

/// Runs every check; `Err(CheckFailed)` when any failed.
pub fn run(settings: &Settings) -> Result<(), Error> {
    let started = Instant::now();
    let timing = settings.timing;
    // The whole self-test ends by then.
    let deadline = timing.check;
    println!(
        "✔ settings: {} is valid ({} server(s))",
        settings.path.display(),
        settings.servers.len()
    );
    let (tx, rx) = mpsc::channel::<(usize, Vec<Line>)>();
    {
        let tx = tx.clone();
        let (url, token) = (settings.api_url.clone(), settings.token.clone());
        let proxy = settings.tg_proxy.clone();
        std::thread::spawn(move || {
            let tg = Telegram::new(
                &url,
                &token,
                Duration::from_secs(1),
                &timing,
                proxy.as_ref(),
            );
            let _ = tx.send((0, vec![telegram(&tg)]));
        });
    }
    for (i, server) in settings.servers.iter().enumerate() {
        let tx = tx.clone();
        let server = server.clone();
        std::thread::spawn(move || {
            let _ = tx.send((i + 1, check_server(&server, &timing)));
        });
    }
    drop(tx);
    let mut results: Vec<Option<Vec<Line>>> = vec![None; settings.servers.len() + 1];
    while results.iter().any(Option::is_none) {
        let left = deadline.saturating_sub(started.elapsed());
        match rx.recv_timeout(left) {
            Ok((i, lines)) => results[i] = Some(lines),
            Err(_) => break,
        }
    }
    let mut all_ok = true;
    for (i, lines) in results.into_iter().enumerate() {
        let lines = lines.unwrap_or_else(|| {
            let what = match i {
                0 => "telegram".to_string(),
                _ => format!("server '{}'", settings.servers[i - 1].name),
            };
            vec![fail(format!(
                "{what}: no answer within {} s — it hangs; check the network path",
                deadline.as_secs_f64()
            ))]
        });
        for line in lines {
            all_ok &= line.ok;
            println!("{} {}", if line.ok { "✔" } else { "✘" }, line.text);
        }
    }
    if all_ok {
        Ok(())
    } else {
        Err(Error::CheckFailed)
    }
}

fn telegram(tg: &Telegram) -> Line {
    match tg.get_me() {
        Ok(name) => pass(format!("telegram: the token works, the bot is @{name}")),
        Err(TgError::Api {
            code: 401 | 404, ..
        }) => fail(
            "telegram: the bot token was rejected (401) — put the current token from @BotFather into tg-api-token",
        ),
        Err(e) => fail(format!(
            "telegram: {e} — check that this machine reaches the Bot API (tg-api-url, firewall, proxy)"
        )),
    }
}

fn check_server(server: &Server, timing: &Timing) -> Vec<Line> {
    let name = format!("server '{}'", server.name);
    let mut lines = Vec::new();
    let (host, port) = server.host_and_port();

    // Name resolution, in a thread: the system resolver has no timeout.
    let step = timing.check_step;
    let addrs = match resolve(host, port, step) {
        Ok(addrs) => {
            let first = addrs
                .first()
                .map(|a| a.ip().to_string())
                .unwrap_or_default();
            lines.push(pass(format!("{name}: {host} resolves to {first}")));
            addrs
        }
        Err(why) => {
            lines.push(fail(format!(
                "{name}: {host} cannot be resolved ({why}) — check ip in the settings"
            )));
            return lines;
        }
    };
    match addrs
        .iter()
        .find_map(|a| TcpStream::connect_timeout(a, step).ok())
    {
        Some(_) => lines.push(pass(format!("{name}: TCP connection to port {port} works"))),
        None => {
            lines.push(fail(format!(
                "{name}: no TCP connection to port {port} — check that the server runs and that a firewall lets this machine through"
            )));
            lines.push(status_line(server, &name, timing));
            return lines;
        }
    }
    let client = TrueConf::new(server, timing);
    match client.check_tls() {
        Ok(_) => lines.push(pass(format!(
            "{name}: TLS {}",
            match &server.trust {
                Trust::BuiltIn => "certificate trusted (public CAs)".to_string(),
                Trust::Pinned { path, .. } => format!("certificate trusted ({})", path.display()),
                Trust::Off =>
                    "works, but verification is OFF (ssl_certificate = false)".to_string(),
            }
        ))),
        Err(Problem::TlsUntrusted(why)) => {
            lines.push(fail(format!(
                "{name}: TLS: certificate not trusted ({why}) — set ssl_certificate to the server's certificate file (or its CA)"
            )));
            lines.push(status_line(server, &name, timing));
            return lines;
        }
        Err(p) => {
            lines.push(fail(format!(
                "{name}: HTTPS: {p} — check ip (and its :port) in the settings"
            )));
            lines.push(status_line(server, &name, timing));
            return lines;
        }
    }
    match client.check_token() {
        Ok(true) => lines.push(pass(format!(
            "{name}: OAuth2 token received for client_id {}",
            server.client_id
        ))),
        Ok(false) => lines.push(pass(format!("{name}: using the fixed access_token"))),
        Err(p) => {
            lines.push(fail(format!("{name}: token: {p} — {}", fix(&p))));
            lines.push(status_line(server, &name, timing));
            return lines;
        }
    }
    let running = client.running_conferences();
    match &running {
        Ok(calls) => lines.push(pass(format!(
            "{name}: API logs/calls works ({} conference(s) running)",
            calls.len()
        ))),
        Err(p) => lines.push(fail(format!("{name}: API logs/calls: {p} — {}", fix(p)))),
    }
    match client.check_users() {
        Ok(()) => lines.push(pass(format!("{name}: API users works"))),
        Err(p) => lines.push(fail(format!("{name}: API users: {p} — {}", fix(&p)))),
    }
    match running.as_ref().ok().and_then(|c| c.first()) {
        Some(call) => match client.participants(&call.session_id) {
            Ok(_) => lines.push(pass(format!(
                "{name}: API conference-sessions/participants works"
            ))),
            Err(p) => lines.push(fail(format!(
                "{name}: API conference-sessions/participants: {p} — {}",
                fix(&p)
            ))),
        },
        None => lines.push(pass(format!(
            "{name}: API conference-sessions/participants not tried (no conference running)"
        ))),
    }
    lines.push(status_line(server, &name, timing));
    lines
}

fn status_line(server: &Server, name: &str, timing: &Timing) -> Line {
    match trueconf::probe_status(&trueconf::status_client(timing), server) {
        Ok(()) => pass(format!(
            "{name}: /vsstatus on port {} answers: the server is up",
            server.status_port
        )),
        Err(why) => fail(format!(
            "{name}: /vsstatus on port {}: {why} — check status_port and that this machine may reach it",
            server.status_port
        )),
    }
}

fn fix(p: &Problem) -> &'static str {
    match p {
        Problem::Unreachable(_) | Problem::Timeout => "check that the server runs and is reachable",
        Problem::TlsUntrusted(_) => {
            "set ssl_certificate to the server's certificate file (or its CA)"
        }
        Problem::CredentialsRejected => "check client_id and client_secret (or access_token)",
        Problem::MissingPermission(_) => {
            "grant the OAuth2 application this permission in the server's web interface (see README)"
        }
        Problem::Unexpected(_) | Problem::BadAnswer => "check ip and api_version in the settings",
    }
}

fn resolve(host: &str, port: u16, step: Duration) -> Result<Vec<SocketAddr>, String> {
    let (tx, rx) = mpsc::channel();
    let target = (host.to_string(), port);
    std::thread::spawn(move || {
        let result = target
            .to_socket_addrs()
            .map(|a| a.collect::<Vec<_>>())
            .map_err(|e| e.to_string());
        let _ = tx.send(result);
    });
    match rx.recv_timeout(step) {
        Ok(Ok(addrs)) if !addrs.is_empty() => Ok(addrs),
        Ok(Ok(_)) => Err("no address".into()),
        Ok(Err(e)) => Err(e),
        Err(_) => Err("no answer from the resolver in time".into()),
    }
}
