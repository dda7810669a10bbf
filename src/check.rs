//! `trueconf-bot check` (SPEC §8.5): after the settings validated, checks
//! Telegram and every server step by step, printing one ✔/✘ line per check
//! with the reason and the fix. Servers are checked in parallel and the whole
//! run ends within 20 s whatever is down. Prints no secret.
//!
//! `check --report` instead describes every answer the bot relies on, server
//! by server, for a bug report: statuses, field names and JSON types, counts
//! and paging facts, never a value (no names, topics, ids, addresses, tokens
//! or secrets). It is read-only: it never stops anything.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::config::{Server, Settings};
use crate::error::Error;
use crate::html::encode_segment;
use crate::http::Trust;
use crate::telegram::{Telegram, TgError};
use crate::timing::Timing;
use crate::trueconf::{self, Inspected, Problem, TrueConf};

/// How many `/users` pages the report follows to find the last one.
const REPORT_USER_PAGES: usize = 50;
/// How long the report waits before reading running rows again (at most).
const DURATION_WAIT: Duration = Duration::from_millis(2100);

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
    // The web interface and its API answer (R9): /vsstatus does not tell.
    match client.api_check() {
        Ok(status) => lines.push(pass(format!(
            "{name}: the web interface/API answers (HTTP {status} without a token)"
        ))),
        Err(p) => lines.push(fail(format!(
            "{name}: the web interface/API does not answer: {p} — check the server's web service (its web interface, PHP and database)"
        ))),
    }
    lines.push(v4_line(&client, &name, &server.api_version));
    if server.monitoring_only() {
        lines.push(pass(format!(
            "{name}: no client_id/client_secret and no access_token: monitoring only — fill them in to see conferences and users"
        )));
        lines.push(status_line(server, &name, timing));
        return lines;
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

/// Whether the server also serves API v4 (R8), for the admin's information.
fn v4_line(client: &TrueConf, name: &str, api_version: &str) -> Line {
    match client.serves_v4() {
        Ok(true) => pass(format!(
            "{name}: the server also serves API v4 (TrueConf Server 5.5 or later); the bot uses {api_version}"
        )),
        Ok(false) => pass(format!(
            "{name}: the server does not serve API v4 (older than 5.5); the bot uses {api_version}"
        )),
        Err(p) => pass(format!(
            "{name}: whether the server serves API v4 is unknown ({p}); the bot uses {api_version}"
        )),
    }
}

fn status_line(server: &Server, name: &str, timing: &Timing) -> Line {
    let answer = trueconf::vsstatus(&trueconf::status_client(timing), server);
    match answer.up {
        Ok(()) => pass(format!(
            "{name}: /vsstatus on port {} answers: the server is up ({})",
            server.status_port,
            answer.version.as_deref().unwrap_or("it names no version")
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
        Problem::Dropped => {
            "the server (or a proxy in front of it) closed the connection; try again, and check its web service"
        }
        Problem::TlsUntrusted(_) => {
            "set ssl_certificate to the server's certificate file (or its CA)"
        }
        p if p.grant_not_allowed() => {
            "allow the client-credentials grant for the OAuth2 application in the server's web interface"
        }
        Problem::CredentialsRejected(_) => "check client_id and client_secret (or access_token)",
        Problem::NoCredentials => "fill in client_id and client_secret (or access_token)",
        Problem::MissingPermission(_) => {
            "grant the OAuth2 application this permission in the server's web interface (see README)"
        }
        Problem::Refused(..) => "see the server's reason",
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

// ---------------------------------------------------------------------------
// check --report

/// Prints the redacted report of every server; `Err(CheckFailed)` when a
/// server could not be described at all.
pub fn report(settings: &Settings) -> Result<(), Error> {
    let started = Instant::now();
    let timing = settings.timing;
    // The report asks more than the check, and waits a moment to see
    // durations grow: 45 s with the default timing.
    let deadline = timing.check.saturating_mul(5) / 2;
    println!(
        "trueconf-bot {} check --report: what each server answers to the requests the bot relies on.",
        env!("CARGO_PKG_VERSION")
    );
    println!(
        "It shows statuses, field names with their JSON types, counts and paging facts; no values \
         (no names, topics, ids, addresses, tokens or secrets). Nothing was stopped or changed."
    );
    let (tx, rx) = mpsc::channel::<(usize, Vec<String>)>();
    for (i, server) in settings.servers.iter().enumerate() {
        let tx = tx.clone();
        let server = server.clone();
        std::thread::spawn(move || {
            let _ = tx.send((i, describe_server(&server, &timing)));
        });
    }
    drop(tx);
    let mut results: Vec<Option<Vec<String>>> = vec![None; settings.servers.len()];
    while results.iter().any(Option::is_none) {
        let left = deadline.saturating_sub(started.elapsed());
        match rx.recv_timeout(left) {
            Ok((i, lines)) => results[i] = Some(lines),
            Err(_) => break,
        }
    }
    let count = settings.servers.len();
    let mut complete = true;
    for (i, (server, lines)) in settings.servers.iter().zip(results).enumerate() {
        println!();
        println!(
            "server {} of {count}: api_version {}, TLS {}{}",
            i + 1,
            server.api_version,
            match server.trust {
                Trust::BuiltIn => "verified with public CAs",
                Trust::Pinned { .. } => "verified with a certificate file",
                Trust::Off => "not verified",
            },
            if server.monitoring_only() {
                ", no credentials (monitoring only)"
            } else {
                ""
            }
        );
        match lines {
            Some(lines) => {
                for line in lines {
                    println!("  {line}");
                }
            }
            None => {
                complete = false;
                println!(
                    "  no complete description within {} s: the server hangs",
                    deadline.as_secs()
                );
            }
        }
    }
    if complete {
        Ok(())
    } else {
        Err(Error::CheckFailed)
    }
}

/// The report's lines for one server.
fn describe_server(server: &Server, timing: &Timing) -> Vec<String> {
    let mut out = Vec::new();
    let probe = trueconf::status_client(timing);
    out.push(describe_vsstatus(&trueconf::vsstatus(&probe, server)));
    let client = TrueConf::new(server, timing);
    out.push(match client.api_check() {
        Ok(status) => format!("web interface/API without a token: HTTP {status} (it answers)"),
        Err(p) => format!("web interface/API without a token: {}", redacted(&p)),
    });
    let v4 = client.inspect_v4_server();
    out.push(match &v4 {
        Ok(answer) => format!("/api/v4/server without a token: {}", shape_line(answer)),
        Err(p) => format!("/api/v4/server without a token: {}", redacted(p)),
    });
    let serves_v4 = v4.as_ref().is_ok_and(|a| (200..300).contains(&a.status));
    if server.monitoring_only() {
        out.push("API: not asked (no client_id/client_secret and no access_token)".into());
        return out;
    }
    if server.access_token.is_some() {
        out.push("token: the fixed access_token is used".into());
    }
    if !server.client_id.is_empty() {
        for (what, wrong) in [
            ("token (client_credentials)", false),
            ("token with a wrong client_secret", true),
        ] {
            out.push(match client.inspect_token(wrong) {
                Ok(answer) => format!("{what}: {}", shape_line(&answer)),
                Err(p) => format!("{what}: {}", redacted(&p)),
            });
        }
    }
    let prefix = client.api_prefix().to_string();
    out.push(match client.inspect_bad_token(&prefix, "/users") {
        Ok(answer) => format!("a made-up token on {prefix}/users: {}", shape_line(&answer)),
        Err(p) => format!("a made-up token on {prefix}/users: {}", redacted(&p)),
    });
    if serves_v4 {
        out.push(match client.inspect_bad_token("/api/v4", "/conferences") {
            Ok(answer) => format!(
                "a made-up token on /api/v4/conferences: {}",
                shape_line(&answer)
            ),
            Err(p) => format!("a made-up token on /api/v4/conferences: {}", redacted(&p)),
        });
    }
    let wait = timing.check_step.min(DURATION_WAIT);
    let sessions = describe_calls(&client, wait, &mut out);
    describe_users(&client, &mut out);
    describe_participants(&client, &sessions, &mut out);
    describe_conference(&client, &sessions, &mut out);
    out.push("stop: not tried (check --report never stops anything)".into());
    out
}

/// Sessions the call log showed, for the requests that need one. Kept in
/// memory only, never printed.
#[derive(Default)]
struct Sessions {
    running: Vec<String>,
    ended: Option<String>,
    /// A named conference of a running session.
    named: Option<String>,
}

fn describe_vsstatus(answer: &trueconf::VsStatus) -> String {
    let header = |name: &str| {
        answer
            .headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    };
    let mut text = match &answer.up {
        Ok(()) => "/vsstatus: up".to_string(),
        Err(why) => format!("/vsstatus: down ({why})"),
    };
    if !answer.headers.is_empty() {
        let names: BTreeSet<String> = answer.headers.iter().map(|(k, _)| plain_name(k)).collect();
        text.push_str(&format!(
            "; header names: {}",
            names.into_iter().collect::<Vec<_>>().join(", ")
        ));
        text.push_str(&format!(
            "; Connection: {}",
            match header("connection").map(str::to_ascii_lowercase).as_deref() {
                Some("close") => "close",
                Some("keep-alive") => "keep-alive",
                Some(_) => "other",
                None => "absent",
            }
        ));
        text.push_str(&format!(
            "; Content-Length: {}",
            if header("content-length").is_some() {
                "present"
            } else {
                "absent"
            }
        ));
        text.push_str(&format!(
            "; Server header: {}",
            match (header("server"), &answer.version) {
                (None, _) => "absent".to_string(),
                (Some(h), Some(_)) if trueconf::server_version(Some(h), "").is_some() =>
                    "a product and a version".to_string(),
                (Some(_), _) => "present, without a version".to_string(),
            }
        ));
    }
    text.push_str(match &answer.version {
        Some(v) if v.split('.').count() >= 2 => "; version: found (check prints it)",
        _ => "; version: not found",
    });
    text
}

/// `/logs/calls`: its shape, whether running rows come first, whether their
/// durations grow, how pages count, and whether a large page_size is cut.
fn describe_calls(client: &TrueConf, wait: Duration, out: &mut Vec<String>) -> Sessions {
    let mut sessions = Sessions::default();
    let sorted = [("sort_field", "end_time"), ("sort_order", "1")];
    let query = |extra: &[(&'static str, &'static str)]| {
        let mut q: Vec<(&str, &str)> = sorted.to_vec();
        q.extend_from_slice(extra);
        q
    };
    let first = match client.inspect("/logs/calls", &query(&[("page_size", "5")])) {
        Ok(a) => a,
        Err(p) => {
            out.push(format!("/logs/calls: {}", redacted(&p)));
            return sessions;
        }
    };
    out.push(format!(
        "/logs/calls (page_size=5, sorted by end_time, descending): {}",
        shape_line(&first)
    ));
    let rows = list_of(&first, "list");
    if let Some(rows) = rows {
        out.push(format!("/logs/calls rows: {}", items_shape(rows)));
        let running: Vec<&Value> = rows.iter().filter(|r| is_running(r)).collect();
        let first_finished = rows.iter().position(|r| !is_running(r));
        let last_running = rows.iter().rposition(is_running);
        let order = match (first_finished, last_running) {
            (_, None) => "no running row on the first page",
            (None, Some(_)) => "every row is running",
            (Some(f), Some(l)) if l < f => "running rows come first",
            _ => "running rows are NOT all first",
        };
        let has = |field: &str| running.iter().filter(|r| r.get(field).is_some()).count();
        out.push(format!(
            "/logs/calls running rows: {} of {}; {order}; of them with class: {}, with type: {}, with a number duration: {}",
            running.len(),
            rows.len(),
            has("class"),
            has("type"),
            running
                .iter()
                .filter(|r| r.get("duration").is_some_and(Value::is_number))
                .count()
        ));
        out.push(format!(
            "/logs/calls class values: {}; type values: {}",
            small_ints(rows, "class"),
            small_ints(rows, "type")
        ));
        for row in rows {
            let session = row.get("conference_id").and_then(Value::as_str);
            match (session, is_running(row)) {
                (Some(s), true) => {
                    sessions.running.push(s.to_string());
                    if sessions.named.is_none() {
                        sessions.named = row
                            .get("named_conf_id")
                            .and_then(Value::as_str)
                            .filter(|s| !s.is_empty())
                            .map(str::to_string);
                    }
                }
                (Some(s), false) if sessions.ended.is_none() => {
                    sessions.ended = Some(s.to_string())
                }
                _ => {}
            }
        }
        if !running.is_empty() {
            out.push(durations_line(
                client,
                &query(&[("page_size", "5")]),
                rows,
                wait,
            ));
        }
    }
    // Paging: the first page (no page_id) against page_id=0 and page_id=1.
    let ids = |extra: &[(&'static str, &'static str)]| -> Result<Vec<String>, String> {
        let answer = client
            .inspect("/logs/calls", &query(extra))
            .map_err(|p| redacted(&p))?;
        if !(200..300).contains(&answer.status) {
            return Err(format!("HTTP {}", answer.status));
        }
        Ok(list_of(&answer, "list")
            .unwrap_or(&[])
            .iter()
            .filter_map(|r| r.get("conference_id").and_then(Value::as_str))
            .map(str::to_string)
            .collect())
    };
    let base = ids(&[("page_size", "2")]);
    let zero = ids(&[("page_size", "2"), ("page_id", "0")]);
    let one = ids(&[("page_size", "2"), ("page_id", "1")]);
    let two = ids(&[("page_size", "2"), ("page_id", "2")]);
    let compare = |other: &Result<Vec<String>, String>| match (&base, other) {
        (Ok(b), Ok(o)) if o.is_empty() => format!("empty (first page: {} rows)", b.len()),
        (Ok(b), Ok(o)) if b == o => "the same rows as the first page".to_string(),
        (Ok(_), Ok(_)) => "other rows than the first page".to_string(),
        (_, Err(e)) | (Err(e), _) => e.clone(),
    };
    let verdict = match (&base, &zero, &one, &two) {
        (Ok(b), ..) if b.len() < 2 => "too few rows to tell",
        (Ok(b), Ok(z), Ok(o), _) if b == z && b != o => "pages count from 0",
        (Ok(b), Ok(z), Ok(o), _) if b == o && b != z => "pages count from 1",
        (Ok(b), Ok(z), Ok(o), Ok(t)) if b == z && b == o && b != t => {
            "pages count from 1 (page_id=0 is the first page too)"
        }
        (Ok(b), Ok(z), Ok(o), Ok(t)) if b == z && b == o && b == t => "page_id seems ignored",
        _ => "unclear",
    };
    out.push(format!(
        "/logs/calls paging (page_size=2): page_id=0 gives {}; page_id=1 gives {}; page_id=2 gives {}; so {verdict}",
        compare(&zero),
        compare(&one),
        compare(&two)
    ));
    for size in ["200", "500"] {
        out.push(
            match client.inspect("/logs/calls", &query(&[("page_size", size)])) {
                Ok(a) if (200..300).contains(&a.status) => {
                    let rows = list_of(&a, "list").map_or(0, <[Value]>::len);
                    let total = a
                        .json
                        .as_ref()
                        .and_then(|v| v.get("cnt"))
                        .and_then(Value::as_i64)
                        .map_or("no cnt".to_string(), |c| format!("cnt {c}"));
                    format!(
                        "/logs/calls page_size={size}: HTTP {}, {rows} rows ({total})",
                        a.status
                    )
                }
                Ok(a) => format!("/logs/calls page_size={size}: {}", shape_line(&a)),
                Err(p) => format!("/logs/calls page_size={size}: {}", redacted(&p)),
            },
        );
    }
    sessions
}

/// Reads the first page again a moment later: do running rows' durations grow?
fn durations_line(
    client: &TrueConf,
    query: &[(&str, &str)],
    before: &[Value],
    wait: Duration,
) -> String {
    let durations = |rows: &[Value]| -> BTreeMap<String, i64> {
        rows.iter()
            .filter(|r| is_running(r))
            .filter_map(|r| {
                Some((
                    r.get("conference_id")?.as_str()?.to_string(),
                    r.get("duration")?.as_i64()?,
                ))
            })
            .collect()
    };
    let then = durations(before);
    std::thread::sleep(wait);
    let now = match client.inspect("/logs/calls", query) {
        Ok(a) => durations(list_of(&a, "list").unwrap_or(&[])),
        Err(p) => return format!("/logs/calls durations a moment later: {}", redacted(&p)),
    };
    let (mut grew, mut same, mut shrank) = (0, 0, 0);
    for (session, d) in &then {
        match now.get(session) {
            Some(n) if n > d => grew += 1,
            Some(n) if n == d => same += 1,
            Some(_) => shrank += 1,
            None => {}
        }
    }
    format!(
        "/logs/calls durations of running rows {:.1} s later: grew {grew}, unchanged {same}, smaller {shrank}",
        wait.as_secs_f32()
    )
}

/// `/users`: page_size=1000 taken or refused, the fields, status values, and
/// how paging ends.
fn describe_users(client: &TrueConf, out: &mut Vec<String>) {
    let mut with_size = true;
    let first = match client.inspect("/users", &[("page_size", "1000")]) {
        Ok(a) if a.status == 400 => {
            out.push(format!("/users page_size=1000: {}", shape_line(&a)));
            with_size = false;
            client.inspect("/users", &[])
        }
        other => other,
    };
    let first = match first {
        Ok(a) => a,
        Err(p) => {
            out.push(format!("/users: {}", redacted(&p)));
            return;
        }
    };
    out.push(format!(
        "/users ({}): {}",
        if with_size {
            "page_size=1000"
        } else {
            "no page_size"
        },
        shape_line(&first)
    ));
    let Some(users) = list_of(&first, "users") else {
        return;
    };
    out.push(format!("/users items: {}", items_shape(users)));
    let mut statuses = BTreeSet::new();
    let mut count = users.len();
    let next_of = |a: &Inspected| {
        a.json
            .as_ref()
            .and_then(|v| v.get("next_page_id"))
            .map(|n| {
                n.as_i64()
                    .map_or(format!("{} (not a number)", type_name(n)), |n| {
                        n.to_string()
                    })
            })
    };
    collect_ints(users, "status", &mut statuses);
    let first_next = next_of(&first);
    let mut last_next = first_next.clone();
    let mut pages = 1;
    let mut page = first_next.as_deref().and_then(|n| n.parse::<i64>().ok());
    let mut seen = BTreeSet::new();
    while let Some(p) = page.filter(|p| *p > 0) {
        if pages >= REPORT_USER_PAGES || !seen.insert(p) {
            last_next = Some(format!("{p} (stopped after {pages} pages)"));
            break;
        }
        let p_text = p.to_string();
        let mut query = vec![("page_id", p_text.as_str())];
        if with_size {
            query.push(("page_size", "1000"));
        }
        let Ok(answer) = client.inspect("/users", &query) else {
            break;
        };
        pages += 1;
        let rows = list_of(&answer, "users").unwrap_or(&[]);
        count += rows.len();
        collect_ints(rows, "status", &mut statuses);
        last_next = next_of(&answer);
        page = last_next.as_deref().and_then(|n| n.parse::<i64>().ok());
    }
    out.push(format!(
        "/users paging: next_page_id on the first page: {}; pages read: {pages}; users: {count}; next_page_id on the last page: {}; status values: {}",
        first_next.as_deref().unwrap_or("absent"),
        last_next.as_deref().unwrap_or("absent"),
        join_ints(&statuses)
    ));
}

/// Participants of a running session, of an ended one and of a made-up one.
fn describe_participants(client: &TrueConf, sessions: &Sessions, out: &mut Vec<String>) {
    let path = |s: &str| format!("/conference-sessions/{}/participants", encode_segment(s));
    match sessions.running.first() {
        Some(session) => match client.inspect(&path(session), &[]) {
            Ok(a) => {
                out.push(format!(
                    "participants of a running session: {}",
                    shape_line(&a)
                ));
                let items = list_of(&a, "participants").or_else(|| list_of(&a, "list"));
                if let Some(items) = items {
                    let without_role = items
                        .iter()
                        .filter(|i| !i.get("role").is_some_and(Value::is_number))
                        .count();
                    let mut roles = BTreeSet::new();
                    collect_ints(items, "role", &mut roles);
                    let leave = items
                        .iter()
                        .filter(|i| i.get("leave_time").is_some())
                        .count();
                    let left = items
                        .iter()
                        .filter(|i| i.get("leave_time").is_some_and(|t| !t.is_null()))
                        .count();
                    out.push(format!(
                        "participants items: {}; without a number role: {without_role} of {}; role values: {}; with leave_time: {leave} (not null: {left})",
                        items_shape(items),
                        items.len(),
                        join_ints(&roles)
                    ));
                }
            }
            Err(p) => out.push(format!(
                "participants of a running session: {}",
                redacted(&p)
            )),
        },
        None => out.push("participants of a running session: not tried (none running)".into()),
    }
    match &sessions.ended {
        Some(session) => out.push(match client.inspect(&path(session), &[]) {
            Ok(a) => format!("participants of an ended session: {}", shape_line(&a)),
            Err(p) => format!("participants of an ended session: {}", redacted(&p)),
        }),
        None => {
            out.push("participants of an ended session: not tried (none in the first rows)".into())
        }
    }
    let made_up = "0000000000000000@report.invalid#vcs";
    out.push(match client.inspect(&path(made_up), &[]) {
        Ok(a) => format!("participants of a made-up session: {}", shape_line(&a)),
        Err(p) => format!("participants of a made-up session: {}", redacted(&p)),
    });
}

/// `GET /conferences/{id}` of a running named conference: recording fields.
fn describe_conference(client: &TrueConf, sessions: &Sessions, out: &mut Vec<String>) {
    let Some(id) = &sessions.named else {
        out.push("/conferences/{id}: not tried (no running named conference)".into());
        return;
    };
    match client.inspect(&format!("/conferences/{}", encode_segment(id)), &[]) {
        Ok(a) => {
            out.push(format!(
                "/conferences/{{id}} of a running conference: {}",
                shape_line(&a)
            ));
            let object = a
                .json
                .as_ref()
                .map(|v| v.get("conference").unwrap_or(v))
                .and_then(Value::as_object);
            if let Some(object) = object {
                out.push(format!(
                    "/conferences/{{id}} conference fields: {}",
                    fields(object)
                ));
                let recording: Vec<String> = object
                    .iter()
                    .filter(|(k, _)| k.contains("record"))
                    .map(|(k, v)| {
                        let value = match v.as_i64() {
                            Some(n) if (-9..=9).contains(&n) => format!(" = {n}"),
                            _ => String::new(),
                        };
                        format!("{} ({}){value}", plain_name(k), type_name(v))
                    })
                    .collect();
                out.push(format!(
                    "/conferences/{{id}} recording fields: {}",
                    if recording.is_empty() {
                        "none".to_string()
                    } else {
                        recording.join(", ")
                    }
                ));
            }
        }
        Err(p) => out.push(format!("/conferences/{{id}}: {}", redacted(&p))),
    }
}

/// A problem for the report: its kind, never the server's words (which may
/// quote an id).
fn redacted(p: &Problem) -> String {
    match p {
        Problem::Unreachable(why) => format!("no connection ({why})"),
        Problem::Dropped => "the connection closed without an answer".into(),
        Problem::Timeout => "no answer in time".into(),
        Problem::TlsUntrusted(why) => format!("TLS: {why}"),
        Problem::CredentialsRejected(_) => "credentials rejected".into(),
        Problem::NoCredentials => "no credentials".into(),
        Problem::MissingPermission(_) => "HTTP 403 (a permission is missing)".into(),
        Problem::Unexpected(status) | Problem::Refused(status, _) => format!("HTTP {status}"),
        Problem::BadAnswer => "not an HTTP answer".into(),
    }
}

/// "HTTP 200, JSON object: a (number), b (array of 3)", or the body's kind.
fn shape_line(answer: &Inspected) -> String {
    let mut text = format!("HTTP {}", answer.status);
    match &answer.json {
        Some(Value::Object(object)) => {
            text.push_str(&format!(", JSON object: {}", fields(object)));
            if let Some(code) = answer.reason_code() {
                text.push_str(&format!("; error reason: {code}"));
            }
        }
        Some(other) => text.push_str(&format!(", JSON {}", type_name(other))),
        None if answer.body_len == 0 => text.push_str(", empty body"),
        None => text.push_str(&format!(", not JSON ({} bytes)", answer.body_len)),
    }
    text
}

/// The fields of an object with their JSON types; a nested object's fields
/// in braces, an array's length.
fn fields(object: &serde_json::Map<String, Value>) -> String {
    if object.len() > 60 {
        return format!("{} keys (a map, not listed)", object.len());
    }
    let mut parts: Vec<String> = object
        .iter()
        .map(|(k, v)| {
            let kind = match v {
                Value::Array(items) => format!("array of {}", items.len()),
                Value::Object(inner) if inner.len() <= 12 => {
                    let names: Vec<String> = inner
                        .iter()
                        .map(|(k, v)| format!("{} {}", plain_name(k), type_name(v)))
                        .collect();
                    format!("object {{{}}}", names.join(", "))
                }
                Value::Object(inner) => format!("object with {} keys", inner.len()),
                other => type_name(other).to_string(),
            };
            format!("{} ({kind})", plain_name(k))
        })
        .collect();
    parts.sort();
    parts.join(", ")
}

/// The union of the items' fields, each with its JSON types, and in how
/// many items it appears when not in all.
fn items_shape(items: &[Value]) -> String {
    let mut union: BTreeMap<String, (BTreeSet<&'static str>, usize)> = BTreeMap::new();
    let mut objects = 0;
    for item in items {
        if let Value::Object(o) = item {
            objects += 1;
            for (k, v) in o.iter().take(60) {
                let entry = union.entry(plain_name(k)).or_default();
                entry.0.insert(type_name(v));
                entry.1 += 1;
            }
        }
    }
    if objects == 0 {
        return format!("{} items, none an object", items.len());
    }
    let parts: Vec<String> = union
        .into_iter()
        .map(|(k, (types, n))| {
            let types = types.into_iter().collect::<Vec<_>>().join("|");
            if n == objects {
                format!("{k} ({types})")
            } else {
                format!("{k} ({types}, in {n} of {objects})")
            }
        })
        .collect();
    format!("{} items: {}", items.len(), parts.join(", "))
}

/// A field name when it is a plain API word; anything else (a key that may
/// be an id or a name) is not shown.
fn plain_name(name: &str) -> String {
    let plain = !name.is_empty()
        && name.len() <= 40
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        && name.bytes().next().is_some_and(|b| b.is_ascii_alphabetic());
    if plain {
        name.to_string()
    } else {
        "(a key that is not a plain word)".to_string()
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn list_of<'a>(answer: &'a Inspected, key: &str) -> Option<&'a [Value]> {
    answer
        .json
        .as_ref()?
        .get(key)?
        .as_array()
        .map(Vec::as_slice)
}

fn is_running(row: &Value) -> bool {
    row.get("end_time").is_none_or(Value::is_null)
}

/// Small whole numbers of a field (enums such as role, status, class): the
/// kinds, not values about anyone. Larger numbers are not shown.
fn collect_ints(items: &[Value], key: &str, into: &mut BTreeSet<i64>) {
    for item in items {
        if let Some(n) = item.get(key).and_then(Value::as_i64) {
            if (-200..=200).contains(&n) {
                into.insert(n);
            }
        }
    }
}

fn small_ints(items: &[Value], key: &str) -> String {
    let mut set = BTreeSet::new();
    collect_ints(items, key, &mut set);
    join_ints(&set)
}

fn join_ints(set: &BTreeSet<i64>) -> String {
    if set.is_empty() {
        "none".to_string()
    } else {
        set.iter()
            .map(i64::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    }
}
