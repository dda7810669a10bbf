//! Issue 7: reliability. Faults on the Telegram and the TrueConf side,
//! restarts (kill -9, torn and unwritable state), forged input of every shape
//! (property-style, with a fixed-seed PRNG), secrets in `Debug` output and in
//! `check`, and a bounded soak of the real binary. Everything runs on
//! loopback; every wait has a deadline.
//!
//! Covered elsewhere and not repeated here: one 502, 409 and 429 and a
//! truncated envelope on getUpdates, unknown update kinds (foundation.rs); a
//! press on an inaccessible message answered with a new message, a session
//! without conference id, a users list whose pages never end, a corrupt state
//! file, the log of a whole scenario at the most verbose level (features.rs,
//! foundation.rs).

use std::collections::HashSet;
use std::net::{Shutdown as NetShutdown, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::harness::*;
use crate::support::fake_telegram::{FakeTelegram, Msg, Reply, TOKEN};
use crate::support::fake_trueconf::{
    ApiReply, CLIENT_SECRET, Conf, FakeTrueConf, Req, session_id_for,
};
use crate::support::{TempDir, lock, wait_until};
use trueconf_bot::callback::{List, Press, conference_key};
use trueconf_bot::config::short_key;
use trueconf_bot::telegram::Telegram;
use trueconf_bot::trueconf::TrueConf;
use trueconf_bot::{Error, Locales, Shutdown, config};

const DENIED: &str = "⛔ Access denied.";
const OPERATORS_ONLY: &str = "Only operators may do this.";
const OUTDATED: &str = "This button is outdated. Send /start.";
const SERVER_GONE: &str = "This server is no longer configured. Send /start.";
const NO_LONGER_RUNNING: &str = "ℹ️ That conference is no longer running.";
const ERR_CREDENTIALS: &str = "The server rejected the bot's credentials. Check client_id and client_secret (or access_token) in the settings. \
     The server said: “invalid_client: The client credentials are invalid”.";
const ERR_BAD_ANSWER: &str = "The server's answer could not be understood.";
const ERR_TIMEOUT: &str = "The server did not answer in time. It may be overloaded; try again.";
/// A fixed access token (the server's secret key) used where a test needs one.
const STATIC_TOKEN: &str = "static-SEKRET-4c1d9e0b7a52f3e6";

// ---------------------------------------------------------------------------
// Helpers: chats on a fake Telegram (for the harness bot and the real binary)

fn token_requests(fake: &FakeTrueConf) -> usize {
    fake.requests()
        .iter()
        .filter(|r| r.path == "/oauth2/v1/token")
        .count()
}

fn api_calls(fake: &FakeTrueConf, suffix: &str) -> usize {
    fake.requests()
        .iter()
        .filter(|r| r.path.starts_with("/api/") && r.path.ends_with(suffix))
        .count()
}

fn is_stop_post(r: &Req) -> bool {
    r.method == "POST" && r.path.ends_with("/stop")
}

fn stop_posts(fake: &FakeTrueConf) -> usize {
    fake.requests().iter().filter(|r| is_stop_post(r)).count()
}

fn state_json(dir: &Path) -> Value {
    std::fs::read_to_string(dir.join("state/state.json"))
        .ok()
        .and_then(|s| serde_json::from_str(&s).ok())
        .unwrap_or(Value::Null)
}

/// Every secret the fakes know of: the bot token (and its secret half), the
/// client secret, the fixed token and every access token a fake issued.
fn secrets(fakes: &[&FakeTrueConf]) -> Vec<String> {
    let mut all = vec![
        TOKEN.to_string(),
        TOKEN.split(':').nth(1).unwrap().to_string(),
        CLIENT_SECRET.to_string(),
        STATIC_TOKEN.to_string(),
    ];
    for fake in fakes {
        all.extend(fake.requests().into_iter().filter_map(|r| r.token));
    }
    all.sort();
    all.dedup();
    all
}

#[track_caller]
fn assert_no_secret(text: &str, secrets: &[String]) {
    for secret in secrets {
        assert!(
            !text.contains(secret.as_str()),
            "a secret ({}…) is shown in:\n{text}",
            &secret[..4]
        );
    }
}

// ---------------------------------------------------------------------------
// Helpers: the real binary

/// `VmRSS` (KiB) and `Threads` of a process, from /proc/PID/status.
fn proc_status(pid: u32) -> (u64, u64) {
    let field = |name| crate::support::proc_field(pid, name);
    (field("VmRSS:"), field("Threads:"))
}

/// `run()` in this process on a settings file of its own; stopped on drop.
struct InProcess {
    shutdown: Shutdown,
    thread: Option<JoinHandle<Result<(), Error>>>,
}

impl InProcess {
    fn start(settings: &Path) -> InProcess {
        let settings = config::load(settings, None).unwrap().settings;
        let (locales, _) =
            Locales::load(settings.locales_dir.as_deref(), &settings.locale).unwrap();
        let shutdown = Shutdown::new();
        let thread = {
            let shutdown = shutdown.clone();
            std::thread::spawn(move || trueconf_bot::run(settings, locales, shutdown))
        };
        InProcess {
            shutdown,
            thread: Some(thread),
        }
    }
}

impl Drop for InProcess {
    fn drop(&mut self) {
        self.shutdown.trigger();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Paces a loop (fault injection, sampling): returns after `d`, or earlier
/// once `stop` is set. Never used to wait for the bot.
fn pace(stop: &AtomicBool, d: Duration) {
    wait_until(d, || stop.load(Ordering::Relaxed));
}

// ---------------------------------------------------------------------------
// Helpers: a TCP relay in front of the fake Telegram

/// Sits between the bot and the fake Telegram. It can cut the connections
/// under way (a long poll dropped mid-way) and reset every new connection as
/// soon as its request arrives (an outage of the network path).
struct Relay {
    addr: SocketAddr,
    inner: Arc<RelayInner>,
    acceptor: Option<JoinHandle<()>>,
}

#[derive(Default)]
struct RelayInner {
    resetting: AtomicBool,
    stopping: AtomicBool,
    /// Both ends of every relayed connection, to cut them.
    open: Mutex<Vec<TcpStream>>,
    /// When each reset connection came, and the API method it asked for.
    resets: Mutex<Vec<(Instant, String)>>,
    pipes: Mutex<Vec<JoinHandle<()>>>,
}

impl Relay {
    fn start(upstream: SocketAddr) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let inner = Arc::new(RelayInner::default());
        let acceptor = {
            let inner = inner.clone();
            std::thread::spawn(move || {
                for client in listener.incoming() {
                    if inner.stopping.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(client) = client else { continue };
                    if inner.resetting.load(Ordering::SeqCst) {
                        reset(&inner, client);
                    } else {
                        relay(&inner, client, upstream);
                    }
                }
            })
        };
        Relay {
            addr,
            inner,
            acceptor: Some(acceptor),
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn set_resetting(&self, on: bool) {
        self.inner.resetting.store(on, Ordering::SeqCst);
    }

    /// Closes every relayed connection (both ends) without an answer.
    fn cut(&self) {
        for s in lock(&self.inner.open).drain(..) {
            let _ = s.shutdown(NetShutdown::Both);
        }
    }

    fn resets(&self) -> Vec<(Instant, String)> {
        lock(&self.inner.resets).clone()
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.inner.stopping.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
        if let Some(t) = self.acceptor.take() {
            let _ = t.join();
        }
        self.cut();
        for p in lock(&self.inner.pipes).drain(..) {
            let _ = p.join();
        }
    }
}

/// Waits for the request, leaves it unread and closes: a socket closed with
/// unread data makes the kernel answer with a RST ("connection reset").
fn reset(inner: &RelayInner, client: TcpStream) {
    let _ = client.set_read_timeout(Some(Duration::from_secs(5)));
    let mut head = [0u8; 512];
    let n = client.peek(&mut head).unwrap_or(0);
    let head = String::from_utf8_lossy(&head[..n]).into_owned();
    let method = head
        .split_whitespace()
        .nth(1)
        .and_then(|path| path.rsplit('/').next())
        .unwrap_or("")
        .to_string();
    lock(&inner.resets).push((Instant::now(), method));
    drop(client);
}

fn relay(inner: &RelayInner, client: TcpStream, upstream: SocketAddr) {
    let Ok(server) = TcpStream::connect(upstream) else {
        return;
    };
    let (Ok(c2), Ok(s2), Ok(c3), Ok(s3)) = (
        client.try_clone(),
        server.try_clone(),
        client.try_clone(),
        server.try_clone(),
    ) else {
        return;
    };
    lock(&inner.open).extend([c3, s3]);
    let mut pipes = lock(&inner.pipes);
    pipes.push(std::thread::spawn(move || pipe(client, server)));
    pipes.push(std::thread::spawn(move || pipe(s2, c2)));
}

fn pipe(mut from: TcpStream, mut to: TcpStream) {
    let _ = std::io::copy(&mut from, &mut to);
    let _ = to.shutdown(NetShutdown::Both);
    let _ = from.shutdown(NetShutdown::Both);
}

// ---------------------------------------------------------------------------
// Helpers: a small deterministic PRNG (xorshift64*) and forged input

struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed | 1)
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }

    fn pick<T: Clone>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())].clone()
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }

    fn hex(&mut self, n: usize) -> String {
        (0..n)
            .map(|_| char::from(b"0123456789abcdef"[self.below(16)]))
            .collect()
    }
}

/// What forged callback data is made of: configured server keys, conference
/// keys, and the data of real buttons.
struct Keys {
    servers: Vec<String>,
    confs: Vec<String>,
    real: Vec<String>,
}

/// callback_data of every shape: random bytes, the decoder's alphabet, well
/// formed with foreign, stale or malformed parts, mutated real buttons, 64 and
/// 65 bytes of garbage, non-ASCII.
fn forged_data(rng: &mut Rng, keys: &Keys) -> String {
    match rng.below(8) {
        0 => {
            let n = rng.below(80);
            String::from_utf8_lossy(&rng.bytes(n)).into_owned()
        }
        1 => {
            let alphabet = b"pnamsuorfxy::0123456789abcdefABCDEF- .";
            let n = rng.below(70);
            (0..n)
                .map(|_| char::from(alphabet[rng.below(alphabet.len())]))
                .collect()
        }
        2..=4 => well_formed(rng, keys),
        5 if !keys.real.is_empty() => {
            let real = rng.pick(&keys.real);
            if rng.chance(50) {
                real
            } else {
                mutate(rng, &real)
            }
        }
        6 => {
            let n = 64 + rng.below(2);
            (0..n)
                .map(|_| char::from(b' ' + rng.below(95) as u8))
                .collect()
        }
        _ => {
            let pool = [
                "ж", "💥", "\u{0}", "\u{202e}", ":", "é", "東", "m", "y", "\n", "\"",
            ];
            let n = rng.below(24);
            (0..n).map(|_| rng.pick(&pool)).collect()
        }
    }
}

fn forged_server(rng: &mut Rng, keys: &Keys) -> String {
    match rng.below(6) {
        0..=2 => rng.pick(&keys.servers),
        3 => rng.hex(8),
        4 => {
            let n = 7 + 2 * rng.below(2);
            rng.hex(n)
        }
        _ => rng.hex(8).to_uppercase(),
    }
}

fn forged_conf(rng: &mut Rng, keys: &Keys) -> String {
    match rng.below(4) {
        0 | 1 => rng.pick(&keys.confs),
        2 => rng.hex(12),
        _ => {
            let n = 11 + 2 * rng.below(2);
            rng.hex(n)
        }
    }
}

fn well_formed(rng: &mut Rng, keys: &Keys) -> String {
    let nums = [
        "0", "1", "2", "999999", "1000000", "-1", "", "07", "1e3", " 1", "525600", "525601",
    ];
    let lists = ["r", "f0", "f60", "f525600", "f525601", "f", "x", "r1", ""];
    let s = forged_server(rng, keys);
    let data = match rng.below(11) {
        0 => "p".to_string(),
        1 => "n".to_string(),
        2 => format!("a:{}", rng.pick(&nums)),
        3 => format!("m:{s}"),
        4 => format!("s:{s}"),
        5 => format!("u:{s}"),
        6 => format!("o:{s}:{}", rng.pick(&["0", "1", "2", ""])),
        7 => format!("r:{s}:{}", rng.pick(&nums)),
        8 => format!("f:{s}:{}:{}", rng.pick(&nums), rng.pick(&nums)),
        9 => format!("x:{s}:{}:{}", forged_conf(rng, keys), rng.pick(&lists)),
        _ => format!("y:{s}:{}:{}", forged_conf(rng, keys), rng.pick(&lists)),
    };
    if rng.chance(10) {
        format!("{data}:{}", rng.pick(&nums))
    } else {
        data
    }
}

fn mutate(rng: &mut Rng, data: &str) -> String {
    let mut chars: Vec<char> = data.chars().collect();
    let at = rng.below(chars.len() + 1);
    match rng.below(6) {
        0 if at < chars.len() => chars[at] = char::from(b' ' + rng.below(95) as u8),
        1 if at < chars.len() => {
            chars.remove(at);
        }
        2 => chars.insert(at, ':'),
        3 => chars.truncate(at),
        4 => return format!("{data}{data}"),
        _ => return data.to_uppercase(),
    }
    chars.into_iter().collect()
}

/// The toast a press must get: strangers are denied, what does not decode
/// is outdated, viewers get no operator action, unknown servers are gone.
fn expected_toast(user: i64, press: Option<&Press>, configured: &[String]) -> Option<&'static str> {
    if user == STRANGER {
        return Some(DENIED);
    }
    let Some(press) = press else {
        return Some(OUTDATED);
    };
    if press.needs_operator() && user != OP {
        return Some(OPERATORS_ONLY);
    }
    match press.server() {
        Some(key) if !configured.iter().any(|k| k == key) => Some(SERVER_GONE),
        _ => None,
    }
}

// ---------------------------------------------------------------------------
// 1. Telegram faults

#[test]
fn a_run_of_poll_failures_backs_off_doubling_and_a_success_resets_it() {
    let setup = Setup {
        tables: timing(&[("backoff_first_ms", 200), ("backoff_max_ms", 5000)]),
        ..Setup::default()
    };
    let bot = Bot::start_with(vec![Srv::new("Main")], setup);
    let tg = &bot.tg;
    let before = tg.calls_to("getupdates").len();
    tg.script("getUpdates", Reply::error(502, "Bad Gateway"));
    tg.script(
        "getUpdates",
        Reply::Raw {
            status: 500,
            content_type: "text/html".into(),
            body: "<html><body>500 Internal Server Error</body></html>".into(),
        },
    );
    tg.script("getUpdates", Reply::conflict());
    // The fourth poll succeeds (and is held its 1 s); the next ones fail again.
    let fourth = tg.wait_count(Duration::from_secs(20), "getupdates", before + 4);
    assert_eq!(fourth.len(), before + 4, "the bot stopped polling");
    tg.script("getUpdates", Reply::too_many_requests(2));
    tg.script("getUpdates", Reply::bad_gateway_html());
    let polls = tg.wait_count(Duration::from_secs(20), "getupdates", before + 7);
    assert_eq!(polls.len(), before + 7, "the bot stopped polling");
    let gaps: Vec<Duration> = polls[before..before + 7]
        .windows(2)
        .map(|w| w[1].at.duration_since(w[0].at))
        .collect();
    let secs = |s: f64| Duration::from_secs_f64(s);
    // 502 → 200 ms, 500 → 400 ms, 409 → 800 ms: doubling, so a long outage
    // costs few polls.
    assert!(
        gaps[0] >= secs(0.19) && gaps[1] >= secs(0.39) && gaps[2] >= secs(0.79),
        "no doubling backoff: {gaps:?}"
    );
    // After the success: the 429's retry_after (2 s) is honoured although the
    // reset backoff would wait 200 ms…
    assert!(gaps[4] >= secs(1.99), "retry_after not honoured: {gaps:?}");
    // …and the 502 after it waits 200 ms again, not the 1.6 s the run had reached.
    assert!(
        gaps[5] >= secs(0.19) && gaps[5] < secs(1.2),
        "the backoff was not reset by the success: {gaps:?}"
    );
    bot.start_chat(OP);
    assert_eq!(tg.concurrent_polls(), 0);
}

#[test]
fn a_long_poll_cut_off_mid_way_and_an_outage_of_resets_are_retried_with_backoff() {
    let tg = FakeTelegram::start();
    let upstream: SocketAddr = tg
        .base_url()
        .strip_prefix("http://")
        .unwrap()
        .parse()
        .unwrap();
    let relay = Relay::start(upstream);
    let dir = TempDir::new();
    let settings = dir.join("settings.toml");
    let servers = [Srv::new("Main")];
    let text = settings_text(&tg, &dir, &servers, "", "")
        .replace(&tg.base_url(), &relay.url())
        // A long poll held 2 s: the cut surely comes in the middle of one.
        // The backoff outlasts it, so the fake never holds two polls at once.
        .replace("tg-poll-timeout = 1\n", "tg-poll-timeout = 2\n")
        .replace(
            FAST_TIMING,
            &timing(&[("backoff_first_ms", 500), ("backoff_max_ms", 5000)]),
        );
    std::fs::write(&settings, text).unwrap();
    let _bot = InProcess::start(&settings);
    assert!(!tg.wait_count(WAIT, "getupdates", 1).is_empty(), "no poll");
    // Start-up sends are done, so every later connection is the poller's.
    assert_eq!(tg.wait_count(WAIT, "setmycommands", 7).len(), 7);

    let polls = tg.calls_to("getupdates").len();
    relay.set_resetting(true);
    let cut_at = Instant::now();
    relay.cut();
    // The poller's tries; a setMyCommands whose answer the cut lost is
    // retried in the background (with its own backoff), nothing else.
    let poll_resets = || -> Vec<(Instant, String)> {
        let all = relay.resets();
        let others: Vec<_> = all.iter().filter(|(_, m)| m != "getUpdates").collect();
        assert!(others.iter().all(|(_, m)| m == "setMyCommands"), "{all:?}");
        all.into_iter().filter(|(_, m)| m == "getUpdates").collect()
    };
    assert!(
        wait_until(Duration::from_secs(15), || poll_resets().len() >= 2),
        "the bot did not try again: {:?}",
        relay.resets()
    );
    relay.set_resetting(false);
    let resets = poll_resets();
    let back = tg.wait_count(Duration::from_secs(15), "getupdates", polls + 1);
    assert!(
        back.len() > polls,
        "polling did not resume after the outage"
    );
    let (first, second) = (resets[0].0, resets[1].0);
    let resumed = back[polls].at;
    // The dropped poll, then each reset, is followed by a doubling wait:
    // 500 ms, 1 s, 2 s — no busy loop while the network is down.
    assert!(
        first.duration_since(cut_at) >= Duration::from_millis(490),
        "retried at once after the cut"
    );
    assert!(
        second.duration_since(first) >= Duration::from_millis(990),
        "no backoff after a reset"
    );
    assert!(
        resumed.duration_since(second) >= Duration::from_millis(1990),
        "no backoff after the second reset"
    );
    assert_eq!(poll_resets().len(), 2, "polled during the backoff");

    tg.start_chat(OP);
    assert_eq!(tg.concurrent_polls(), 0);
}

#[test]
fn a_poll_answer_that_never_comes_times_out_and_polling_resumes() {
    let bot = Bot::start(vec![Srv::new("Main")]);
    let tg = &bot.tg;
    let before = tg.calls_to("getupdates").len();
    // Accepted, then never answered while the test runs.
    tg.script("getUpdates", Reply::Hang(Duration::from_secs(300)));
    let hung = tg.wait_count(WAIT, "getupdates", before + 1);
    assert_eq!(hung.len(), before + 1, "the bot stopped polling");
    bot.say(OP, OP, "/start");
    // The bot gives up after poll timeout + poll_grace (1 s + 1 s in the
    // tests' timing), backs off, polls again.
    let polls = tg.wait_count(Duration::from_secs(30), "getupdates", before + 2);
    assert_eq!(polls.len(), before + 2, "polling did not resume");
    let waited = polls[before + 1].at.duration_since(hung[before].at);
    assert!(
        waited >= Duration::from_millis(1950),
        "a poll was given up before its timeout: {waited:?}"
    );
    bot.wait(OP, |m| m.plain.contains("Choose a server"));
    assert_eq!(tg.concurrent_polls(), 0);
}

#[test]
fn poll_answers_of_the_wrong_shape_are_survived_and_junk_in_a_batch_is_skipped() {
    let bot = Bot::start(vec![Srv::new("Main")]);
    let tg = &bot.tg;
    let raw = |body: String| Reply::Raw {
        status: 200,
        content_type: "application/json".into(),
        body,
    };
    tg.script(
        "getUpdates",
        raw(r#"{"ok":true,"result":{"update_id":1}}"#.into()),
    );
    tg.script("getUpdates", raw(String::new()));
    let id: i64 = 90_000;
    let from = json!({"id": OP, "is_bot": false, "first_name": "Op"});
    let chat = json!({"id": OP, "type": "private"});
    let batch = json!({"ok": true, "result": [
        1, "x", null, [], {},
        {"update_id": "7", "message": {"from": from, "chat": chat, "text": "/help"}},
        {"update_id": 89_990.5, "message": {"from": from, "chat": chat, "text": "/help"}},
        {"update_id": id - 3, "message": {"message_id": 1, "chat": chat, "text": "/help"}},
        {"update_id": id - 2, "message": {"message_id": 1, "from": from, "chat": chat, "text": 5}},
        {"update_id": id - 1, "callback_query": {"id": 5, "from": from, "data": "p"}},
        {"update_id": id, "message": {
            "message_id": 1, "from": from, "chat": chat, "date": 0, "text": "/start"}},
    ]});
    tg.script("getUpdates", raw(batch.to_string()));
    let picker = bot.wait(OP, |m| m.plain.contains("Choose a server"));
    // Later updates get ids after the batch's (the bot's offset is past them).
    tg.push_update(json!({"update_id": id, "poll": {}}));
    let again = bot.start_chat(OP);
    assert!(again.message_id > picker.message_id);
    let texts: Vec<String> = tg.messages(OP).into_iter().map(|m| m.plain).collect();
    assert_eq!(texts.len(), 2, "junk was answered: {texts:?}");
    assert!(wait_until(WAIT, || tg.pending_updates() == 0));
    assert_eq!(tg.concurrent_polls(), 0);
}

// ---------------------------------------------------------------------------
// 2. TrueConf faults

#[test]
fn a_token_endpoint_that_fails_or_never_answers_is_reported_and_nothing_else_waits() {
    let srv = Srv::new("Main");
    srv.fake.set_conferences(vec![Conf::running("alpha", 4000)]);
    srv.fake.script("/oauth2", ApiReply::html(502));
    let bot = Bot::start(vec![srv]);
    let (tg, fake) = (&bot.tg, bot.srv(0));
    let screen = tg.open(OP, OP, "Main", "Running conferences");
    assert_eq!(
        screen.plain,
        "🖥 Main\n⚠️ The server gave an unexpected answer (HTTP 502)."
    );

    // Now the endpoint takes the request and never answers.
    fake.script("/oauth2", ApiReply::Hang(Duration::from_secs(300)));
    tg.press(OP, OP, screen.message_id, &data(&screen, "Try again"));
    let hung = fake.wait_requests(WAIT, |r| r.path == "/oauth2/v1/token", 2);
    assert_eq!(hung.len(), 2, "no second token request");
    // Meanwhile the poller serves everyone else.
    tg.start_chat(OP2);
    let timed_out = tg.wait_message(Duration::from_secs(30), OP, |m| {
        m.message_id == screen.message_id && m.plain.contains(ERR_TIMEOUT)
    });
    let timed_out = timed_out.unwrap_or_else(|| panic!("{}", tg.transcript(OP)));
    assert_eq!(timed_out.plain, format!("🖥 Main\n⚠️ {ERR_TIMEOUT}"));
    let list = tg.tap(OP, OP, &timed_out, "Try again", "Running conferences: 1");
    assert!(list.plain.contains("alpha"));
}

#[test]
fn credentials_revoked_mid_session_are_reported_without_hammering_and_recover() {
    let srv = Srv::new("Main");
    srv.fake.set_conferences(vec![Conf::running("alpha", 4000)]);
    let bot = Bot::start(vec![srv]);
    let (tg, fake) = (&bot.tg, bot.srv(0));
    let list = tg.open(OP, OP, "Main", "Running conferences");
    assert!(
        list.plain.contains("Running conferences: 1"),
        "{}",
        list.plain
    );
    let (tokens, calls) = (token_requests(fake), api_calls(fake, "/logs/calls"));

    fake.set_credentials_valid(false);
    fake.expire_tokens();
    let refused = tg.tap(OP, OP, &list, "Refresh", "credentials");
    assert_eq!(refused.plain, format!("🖥 Main\n⚠️ {ERR_CREDENTIALS}"));
    // One refused call, one new token asked for, nothing more.
    assert_eq!(token_requests(fake), tokens + 1);
    assert_eq!(api_calls(fake, "/logs/calls"), calls + 1);

    // Trying again asks for a token once more, and makes no call without one.
    // (The screen is the same, so its edit is "not modified": wait for the call.)
    let edits = tg.calls_to("editmessagetext").len();
    tg.press(OP, OP, refused.message_id, &data(&refused, "Try again"));
    assert_eq!(
        tg.wait_count(WAIT, "editmessagetext", edits + 1).len(),
        edits + 1
    );
    assert_eq!(token_requests(fake), tokens + 2);
    assert_eq!(api_calls(fake, "/logs/calls"), calls + 1);
    // The credentials are back: the next try shows the list.
    fake.set_credentials_valid(true);
    let back = tg.tap(OP, OP, &refused, "Try again", "Running conferences: 1");
    assert!(back.plain.contains("alpha"));
    assert_eq!(api_calls(fake, "/logs/calls"), calls + 2);
}

#[test]
fn api_answers_that_are_not_the_expected_json_are_reported_as_such() {
    let srv = Srv::new("Main");
    srv.fake.set_conferences(vec![Conf::running("alpha", 4000)]);
    srv.fake.generate_users(10, 2);
    let bot = Bot::start(vec![srv]);
    let (tg, fake) = (&bot.tg, bot.srv(0));
    let status = |status: u16, content_type: &str, body: &str| ApiReply::Status {
        status,
        content_type: content_type.into(),
        body: body.into(),
    };
    let json = "application/json";
    let bad = [
        status(
            200,
            "text/html",
            "<html><body>Welcome to nginx!</body></html>",
        ),
        status(200, json, r#"{"cnt": 1, "list": [{"conference_id": "x"#),
        status(200, json, r#"{"cnt": 1}"#),
        status(200, json, r#"{"cnt": 1, "list": "none"}"#),
        status(200, json, "null"),
        status(204, json, ""),
    ];
    let mut screen = tg.open(OP, OP, "Main", "Running conferences");
    for reply in bad.clone() {
        fake.script("/api/v3.3/logs/calls", reply);
        let failed = tg.tap(OP, OP, &screen, "Refresh", "⚠️");
        assert_eq!(failed.plain, format!("🖥 Main\n⚠️ {ERR_BAD_ANSWER}"));
        screen = tg.tap(OP, OP, &failed, "Try again", "Running conferences: 1");
    }
    let menu = tg.tap(OP, OP, &screen, "Back", "What would you like");
    let mut screen = tg.tap(OP, OP, &menu, "Users online", "Users online: 5 of 10.");
    let users_bad = [
        bad[0].clone(),
        status(
            200,
            json,
            r#"{"next_page_id": -1, "users": [{"id": "a", "sta"#,
        ),
        status(200, json, r#"{"next_page_id": -1, "users": {"id": "a"}}"#),
    ];
    for reply in users_bad {
        fake.script("/api/v3.3/users", reply);
        let failed = tg.tap(OP, OP, &screen, "Refresh", "⚠️");
        assert_eq!(failed.plain, format!("🖥 Main\n⚠️ {ERR_BAD_ANSWER}"));
        screen = tg.tap(OP, OP, &failed, "Try again", "Users online: 5 of 10.");
    }
    assert_eq!(stop_posts(fake), 0);
}

#[test]
fn call_log_rows_with_missing_null_or_odd_fields_are_listed_with_placeholders() {
    let srv = Srv::new("Main");
    let bot = Bot::start(vec![srv]);
    let (tg, fake) = (&bot.tg, bot.srv(0));
    let sid = |seed: &str| session_id_for(seed);
    let rows = json!({"cnt": 12, "list": [
        // Only the session id and a group class: everything else is missing.
        {"conference_id": sid("bare"), "class": 10},
        {"conference_id": sid("nulls"), "named_conf_id": null, "topic": null, "owner": null,
         "class": 10, "participant_count": null, "duration": null, "end_time": null},
        {"conference_id": sid("blank"), "named_conf_id": "", "topic": "  ", "owner": "",
         "class": "10", "participant_count": "3", "duration": "125"},
        {"conference_id": sid("odd"), "named_conf_id": 4711, "topic": 12, "owner": ["x"],
         "class": 10.0, "participant_count": 1e300, "duration": -5},
        {"conference_id": sid("huge"), "named_conf_id": "huge", "topic": "Huge", "class": 10,
         "duration": 1e300},
        // Not listed: no session id, a session id that is no string, ended, p2p, junk.
        {"named_conf_id": "noid", "class": 10},
        {"conference_id": 17, "class": 10},
        {"conference_id": sid("ended"), "named_conf_id": "ended", "class": 10,
         "end_time": {"date": "2025-01-01 10:00:00.000000"}},
        {"conference_id": sid("p2p"), "class": 1},
        "garbage", 42, null,
    ]});
    let script = || fake.script("/api/v3.3/logs/calls", ApiReply::json(200, rows.clone()));
    script();
    let list = tg.open(OP, OP, "Main", "Running conferences");
    assert!(
        list.plain.contains("Running conferences: 5"),
        "{}",
        list.plain
    );
    for seed in ["bare", "nulls", "blank", "odd"] {
        let entry = format!("session {} (no conference id) — no topic", sid(seed));
        assert!(list.plain.contains(&entry), "{seed}:\n{}", list.plain);
    }
    assert!(list.plain.contains("5. huge — Huge"), "{}", list.plain);
    for seed in ["ended", "p2p"] {
        assert!(!list.plain.contains(&sid(seed)), "{seed}:\n{}", list.plain);
    }
    assert!(!list.plain.contains("noid") && !list.plain.contains('⚠'));
    assert_eq!(list.plain.matches("no topic").count(), 4, "{}", list.plain);
    assert_eq!(
        list.plain.matches("unknown owner").count(),
        5,
        "{}",
        list.plain
    );
    assert!(list.plain.contains("0:02:05"), "{}", list.plain);
    // Only the one with a conference id can be stopped.
    let stops: Vec<String> = list
        .all_buttons()
        .into_iter()
        .map(|(l, _)| l)
        .filter(|l| l.starts_with("⛔"))
        .collect();
    assert_eq!(stops, ["⛔ Stop huge"]);

    // A forged stop for the row with an empty conference id says it cannot be done.
    script();
    let key = conference_key(&sid("blank"));
    let forged = Press::Stop(short_key("Main"), key, List::Running).encode();
    tg.press(OP, OP, list.message_id, &forged);
    tg.wait(OP, |m| {
        m.message_id == list.message_id
            && m.edits > list.edits
            && m.plain
                .contains("has no conference id, so it cannot be stopped")
    });
    assert_eq!(stop_posts(fake), 0);
}

// ---------------------------------------------------------------------------
// 3. Restarts

/// A running conference list ready for a stop: the confirmation screen.
#[track_caller]
fn confirm_stop(d: &Deployed, name: &str) -> Msg {
    let list = d.tg.open(OP, OP, "Main", "Running conferences");
    d.tg.tap(
        OP,
        OP,
        &list,
        &format!("⛔ Stop {name}"),
        "Stop this conference?",
    )
}

fn two_running() -> Vec<Srv> {
    let srv = Srv::new("Main");
    srv.fake.set_conferences(vec![
        Conf::running("alpha", 4000),
        Conf::running("beta", 5000),
    ]);
    vec![srv]
}

#[test]
fn killed_while_its_stop_request_hangs_the_restarted_bot_stops_the_conference_once() {
    let d = Deployed::new(two_running());
    let (tg, fake) = (&d.tg, d.fake(0));
    let mut bot = d.start();
    let confirm = confirm_stop(&d, "alpha");
    let yes = data(&confirm, "Yes, stop");

    // The stop request reaches the server, which never answers it.
    fake.script(
        "/api/v3.3/conferences",
        ApiReply::Hang(Duration::from_secs(300)),
    );
    tg.press(OP, OP, confirm.message_id, &yes);
    assert_eq!(fake.wait_requests(WAIT, is_stop_post, 1).len(), 1);
    bot.kill9();
    assert!(
        fake.stop_requests().is_empty(),
        "the hung stop was carried out"
    );

    // If the press had not been confirmed before the kill, Telegram gives it
    // again after the restart. Wait until the restarted bot has dealt with
    // that: the worker's screen for another admin comes after it.
    let _bot = d.start();
    assert!(wait_until(WAIT, || tg.pending_updates() == 0));
    tg.open(OP2, OP2, "Main", "Status");
    // If it was not given again, the admin taps the button still on the
    // screen. Either way the conference is stopped once, and the admin sees it.
    if fake.stop_requests().is_empty() {
        tg.press(OP, OP, confirm.message_id, &yes);
    }
    let done = tg.wait(OP, |m| {
        m.message_id == confirm.message_id && m.plain.contains("alpha has been stopped")
    });
    assert!(
        done.plain.contains("Running conferences: 1"),
        "{}",
        done.plain
    );
    // The button is stale now: a further tap stops nothing.
    tg.press(OP, OP, confirm.message_id, &yes);
    tg.wait(OP, |m| {
        m.message_id == confirm.message_id
            && m.edits > done.edits
            && m.plain.starts_with(NO_LONGER_RUNNING)
    });
    assert_eq!(fake.stop_requests(), ["alpha"]);
    assert_eq!(
        stop_posts(fake),
        2,
        "the hung one and the one after the restart"
    );
    let running: Vec<bool> = fake.conferences().iter().map(|c| c.running).collect();
    assert_eq!(running, [false, true]);
    assert!(!d.log().contains("internal error"), "{}", d.log());
}

#[test]
fn killed_after_the_server_stopped_it_the_restarted_bot_says_it_is_gone() {
    let d = Deployed::new(two_running());
    let (tg, fake) = (&d.tg, d.fake(0));
    let mut bot = d.start();
    let confirm = confirm_stop(&d, "alpha");
    let yes = data(&confirm, "Yes, stop");

    // The server carries the stop out a moment later; the bot dies before the answer.
    fake.script(
        "/api/v3.3/conferences",
        ApiReply::Hang(Duration::from_secs(2)),
    );
    tg.press(OP, OP, confirm.message_id, &yes);
    assert_eq!(fake.wait_requests(WAIT, is_stop_post, 1).len(), 1);
    bot.kill9();
    assert!(
        wait_until(WAIT, || fake.stop_requests().len() == 1),
        "the server did not stop it"
    );

    let _bot = d.start();
    tg.press(OP, OP, confirm.message_id, &yes);
    let gone = tg.wait(OP, |m| {
        m.message_id == confirm.message_id && m.plain.starts_with(NO_LONGER_RUNNING)
    });
    assert!(
        gone.plain.contains("Running conferences: 1"),
        "{}",
        gone.plain
    );
    assert_eq!(fake.stop_requests(), ["alpha"]);
    assert_eq!(stop_posts(fake), 1, "a second stop was sent");
}

#[test]
fn a_torn_state_file_is_set_aside_and_a_torn_temp_file_is_ignored() {
    let mut bot = Bot::start(vec![Srv::new("Main")]);
    let status = bot.tg.open(OP, OP, "Main", "Status");
    bot.tg
        .tap(OP, OP, &status, "Turn monitoring on", "Monitoring is on");
    bot.stop().unwrap();
    let path = bot.dir.join("state/state.json");
    let tmp = bot.dir.join("state/state.json.tmp");
    let whole = std::fs::read_to_string(&path).unwrap();
    assert!(whole.contains("\"monitoring\": true"), "{whole}");

    // A crash in the middle of a write leaves a torn temp file beside the
    // whole state file: the state file counts, the temp file is overwritten.
    std::fs::write(&tmp, &whole[..whole.len() / 2]).unwrap();
    bot.restart();
    let status = bot.tg.open(OP, OP, "Main", "Status");
    assert!(
        status.plain.contains("Monitoring is on"),
        "{}",
        status.plain
    );
    assert!(!bot.dir.join("state/state.json.corrupt").exists());
    assert!(
        wait_until(WAIT, || !tmp.exists()),
        "the torn temp file stayed"
    );

    // A state file torn in the middle of a value (a power cut: no fsync).
    bot.stop().unwrap();
    let whole = std::fs::read_to_string(&path).unwrap();
    let at = whole.find("\"monitoring\": t").unwrap() + "\"monitoring\": t".len();
    let torn = &whole[..at];
    std::fs::write(&path, torn).unwrap();
    let before = bot.tg.messages(OP).len();
    bot.restart();
    let status = bot.tg.open(OP, OP, "Main", "Status");
    assert!(
        status.plain.contains("Monitoring is off"),
        "{}",
        status.plain
    );
    let aside = std::fs::read_to_string(bot.dir.join("state/state.json.corrupt")).unwrap();
    assert_eq!(aside, torn);
    assert!(wait_until(WAIT, || state_json(bot.dir.path())
        .get("last_update_id")
        .is_some()));
    // Nothing handled before was handled again: one new picker only.
    assert_eq!(
        bot.tg.messages(OP).len(),
        before + 1,
        "{}",
        bot.transcript(OP)
    );
}

/// How writes into a dir were made to fail.
enum Unwritable {
    /// Mode 0500 (not root).
    Mode,
    /// Root ignores modes: the state file's name is taken by a directory.
    StateIsDir,
}

fn make_unwritable(dir: &Path) -> Unwritable {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o500)).unwrap();
    let probe = dir.join("probe");
    if std::fs::write(&probe, b"x").is_err() {
        return Unwritable::Mode;
    }
    std::fs::remove_file(&probe).unwrap();
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::fs::create_dir(dir.join("state.json")).unwrap();
    Unwritable::StateIsDir
}

fn make_writable(dir: &Path, how: Unwritable) {
    use std::os::unix::fs::PermissionsExt;
    match how {
        Unwritable::Mode => {
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).unwrap()
        }
        Unwritable::StateIsDir => std::fs::remove_dir(dir.join("state.json")).unwrap(),
    }
}

#[test]
fn an_unwritable_state_dir_is_logged_once_and_the_bot_keeps_serving() {
    let d = Deployed::new(vec![Srv::new("Main")]);
    let tg = &d.tg;
    let state = d.dir.join("state");
    std::fs::create_dir_all(&state).unwrap();
    let how = make_unwritable(&state);
    let _bot = d.start();
    // Every handled batch changes the state (the last update id), so every
    // one of these tries to write it.
    for user in [OP, OP2, VIEWER, OP] {
        tg.start_chat(user);
    }
    let status = tg.open(OP, OP, "Main", "Status");
    assert!(
        status.plain.contains("The server is up."),
        "{}",
        status.plain
    );
    tg.tap(OP, OP, &status, "Back", "What would you like");
    let log = d.log();
    let errors: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("cannot be written"))
        .collect();
    assert_eq!(errors.len(), 1, "{log}");
    assert!(
        errors[0].contains("ERROR")
            && errors[0].contains("state.json")
            && errors[0].contains("going on from memory"),
        "{log}"
    );
    assert!(!state.join("state.json").is_file());

    // Writable again: the next change is written, and the log says so.
    make_writable(&state, how);
    tg.start_chat(OP2);
    assert!(
        wait_until(WAIT, || d.log().contains("is written again")),
        "{}",
        d.log()
    );
    // The file follows the bot again: its last update id is the one the
    // latest poll confirmed.
    assert!(wait_until(WAIT, || {
        let offset = tg
            .calls_to("getupdates")
            .last()
            .and_then(|c| c.int("offset"));
        let saved = state_json(d.dir.path())["last_update_id"].as_i64();
        saved.is_some() && saved.map(|id| id + 1) == offset
    }));
    assert_eq!(
        d.log().matches("cannot be written").count(),
        1,
        "{}",
        d.log()
    );
}

// ---------------------------------------------------------------------------
// 4. Bad input

#[test]
fn callback_data_of_every_shape_decodes_strictly_and_never_panics() {
    let alpha = conference_key(&session_id_for("alpha"));
    let main = short_key("Main");
    let keys = Keys {
        servers: vec![main.clone(), short_key("Other")],
        confs: vec![alpha.clone(), conference_key("gone")],
        real: vec![
            Press::Picker.encode(),
            Press::Menu(main.clone()).encode(),
            Press::Monitor(main.clone(), true).encode(),
            Press::Forgotten(main.clone(), 120, 3).encode(),
            Press::AskStop(main.clone(), alpha.clone(), List::Forgotten(60)).encode(),
            Press::Stop(main.clone(), alpha, List::Running).encode(),
            Press::Audit(2).encode(),
        ],
    };
    let mut rng = Rng::new(0x7ea1_c0de_5eed_0001);
    let mut decoded = 0;
    for _ in 0..20_000 {
        let data = forged_data(&mut rng, &keys);
        let Some(press) = Press::decode(&data) else {
            continue;
        };
        decoded += 1;
        assert!(data.len() <= 64 && data.is_ascii(), "{data:?}");
        let again = press.encode();
        assert!(again.len() <= 64, "{again:?}");
        assert_eq!(Press::decode(&again), Some(press.clone()), "{data:?}");
        if let Some(key) = press.server() {
            assert!(
                key.len() == 8
                    && key
                        .bytes()
                        .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()),
                "{data:?}"
            );
        }
    }
    // The generator reaches both sides of the decoder.
    assert!((2_000..18_000).contains(&decoded), "{decoded} decoded");
}

#[test]
fn forged_presses_from_every_role_are_answered_and_change_nothing_they_may_not() {
    let main = Srv::new("Main");
    main.fake
        .set_conferences(vec![Conf::running("alpha", 4000), Conf::ended("gone", 100)]);
    let mut bot = Bot::start(vec![main, Srv::new("Other")]);
    let (main_key, other_key) = (short_key("Main"), short_key("Other"));
    let alpha = conference_key(&session_id_for("alpha"));
    let op_list = bot.tg.open(OP, OP, "Main", "Running conferences");
    let confirm = bot
        .tg
        .tap(OP, OP, &op_list, "⛔ Stop alpha", "Stop this conference?");
    let yes = data(&confirm, "Yes, stop");
    let viewer = bot.tg.start_chat(VIEWER);
    let picker_other = data(&viewer, "Other");
    let state_before = state_json(bot.dir.path())["servers"].clone();
    let mut real: Vec<String> = [OP, VIEWER]
        .iter()
        .flat_map(|&chat| bot.tg.history(chat))
        .flat_map(|m| m.all_buttons())
        .map(|(_, d)| d)
        .filter(|d| !d.starts_with("http"))
        .collect();
    real.extend([
        Press::Monitor(main_key.clone(), false).encode(),
        Press::Monitor(other_key.clone(), true).encode(),
        Press::Audit(0).encode(),
    ]);
    real.sort();
    real.dedup();
    let keys = Keys {
        servers: vec![main_key.clone(), other_key.clone()],
        confs: vec![alpha.clone(), conference_key(&session_id_for("gone"))],
        real,
    };
    let configured = [main_key.clone(), other_key.clone()];

    let mut rng = Rng::new(0xbad_da7a_0000_0007);
    let mut sent = Vec::new();
    while sent.len() < 300 {
        let user = rng.pick(&[OP, VIEWER, STRANGER]);
        let data = forged_data(&mut rng, &keys);
        let decoded = Press::decode(&data);
        // An operator may switch monitoring and stop alpha: not forged then.
        let allowed = matches!(&decoded,
            Some(Press::Monitor(s, _)) if configured.contains(s))
            || matches!(&decoded, Some(Press::Stop(s, c, _)) if *s == main_key && *c == alpha);
        if user == OP && allowed {
            continue;
        }
        let message_id = if rng.chance(50) {
            1 + rng.below(3) as i64
        } else {
            1 + rng.below(10_000) as i64
        };
        let chat = match user {
            STRANGER => rng.pick(&[STRANGER, GROUP, OP]),
            user => user,
        };
        let id = bot.tg.push_callback(user, chat, message_id, &data, None);
        sent.push((
            id,
            user,
            data.clone(),
            expected_toast(user, decoded.as_ref(), &configured),
        ));
    }
    // Every kind of answer is expected somewhere, and viewers and strangers
    // pressed the real stop and monitoring buttons, too.
    for kind in [
        Some(DENIED),
        Some(OPERATORS_ONLY),
        Some(OUTDATED),
        Some(SERVER_GONE),
        None,
    ] {
        assert!(
            sent.iter().any(|s| s.3 == kind),
            "no press expecting {kind:?}"
        );
    }
    let real_actions = sent
        .iter()
        .filter(|(_, user, data, _)| {
            *user != OP
                && (*data == yes
                    || matches!(Press::decode(data), Some(Press::Monitor(s, _)) if configured.contains(&s)))
        })
        .count();
    assert!(real_actions >= 3, "{real_actions} real actions forged");
    let all_answered = wait_until(Duration::from_secs(60), || {
        let answers: HashSet<String> = bot
            .tg
            .calls_to("answercallbackquery")
            .iter()
            .filter_map(|c| c.str("callback_query_id"))
            .collect();
        sent.iter().all(|(id, ..)| answers.contains(id))
    });
    assert!(all_answered, "a forged press was not answered");
    let answers = bot.tg.calls_to("answercallbackquery");
    for (id, user, data, expected) in &sent {
        let mine: Vec<_> = answers
            .iter()
            .filter(|c| c.str("callback_query_id").as_deref() == Some(id.as_str()))
            .collect();
        assert_eq!(mine.len(), 1, "answered {} times: {data:?}", mine.len());
        assert_eq!(
            mine[0].str("text").as_deref(),
            *expected,
            "user {user} pressed {data:?}"
        );
    }
    // Each worker has done all it was given once a later screen of it shows.
    let sync = bot.tg.start_chat(OP);
    let sync = bot.tg.tap(OP, OP, &sync, "Main", "What would you like");
    let sync = bot.tg.tap(OP, OP, &sync, "Status", "The server is up.");
    let back = bot.tg.tap(OP, OP, &sync, "Back", "What would you like");
    bot.tg.press(OP, OP, back.message_id, &picker_other);
    let other = bot.tg.wait(OP, |m| {
        m.message_id == back.message_id && m.plain.starts_with("🖥 Other")
    });
    bot.tg.tap(OP, OP, &other, "Status", "The server is up.");
    for i in 0..2 {
        assert_eq!(stop_posts(bot.srv(i)), 0, "server {i}");
    }
    assert!(!bot.dir.join("state/audit.jsonl").exists());
    assert_eq!(state_json(bot.dir.path())["servers"], state_before);

    // Stale buttons after a restart: alpha is stopped, Other is removed from
    // the settings; the old buttons are still on the screens.
    bot.tg
        .tap(OP, OP, &confirm, "Yes, stop", "alpha has been stopped");
    bot.stop().unwrap();
    let text = settings_text(&bot.tg, &bot.dir, &bot.servers[..1], "", "");
    std::fs::write(&bot.settings, text).unwrap();
    bot.restart();
    let tg = &bot.tg;
    let last = tg
        .messages(OP)
        .into_iter()
        .find(|m| m.message_id == confirm.message_id)
        .unwrap();
    tg.press(OP, OP, confirm.message_id, &yes);
    tg.wait(OP, |m| {
        m.message_id == confirm.message_id
            && m.edits > last.edits
            && m.plain.starts_with(NO_LONGER_RUNNING)
    });
    let id = tg.press(OP, OP, viewer.message_id, &picker_other);
    assert_eq!(tg.toast(&id).as_deref(), Some(SERVER_GONE));
    let id = tg.press(VIEWER, VIEWER, viewer.message_id, &yes);
    assert_eq!(tg.toast(&id).as_deref(), Some(OPERATORS_ONLY));
    let id = tg.press(STRANGER, GROUP, 1, &yes);
    assert_eq!(tg.toast(&id).as_deref(), Some(DENIED));
    tg.start_chat(OP);
    assert_eq!(bot.srv(0).stop_requests(), ["alpha"]);
    assert_eq!(stop_posts(bot.srv(0)), 1);
}

/// Keys the settings may hold, by table.
use trueconf_bot::config::{FORGOTTEN_KEYS, MONITORING_KEYS, SERVER_KEYS, STATUS_KEYS, TOP_KEYS};
const SECRET_KEYS: &[&str] = &["tg-api-token", "client_secret", "access_token"];
/// What secret keys hold in generated settings; never to be shown.
const SECRET_MARK: &str = "SEKRET";
const SECRET_NUMBER: i64 = 8_642_097_531_864_209;

/// A TOML basic string (control characters escaped).
fn toml_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn random_text(rng: &mut Rng) -> String {
    let pool = [
        "a",
        "Z",
        "0",
        "9",
        " ",
        ".",
        "-",
        "_",
        ":",
        "\"",
        "\\",
        "\t",
        "\n",
        "\u{1}",
        "\u{7f}",
        "ж",
        "東",
        "💥",
        "https://",
        "127.0.0.1",
        "v3.3",
        "en",
        "ru",
        "'",
    ];
    let n = rng.below(12);
    (0..n).map(|_| rng.pick(&pool)).collect()
}

/// Any TOML value: strings, integers, floats, booleans, dates, arrays, inline tables.
fn random_value(rng: &mut Rng, depth: usize) -> String {
    match rng.below(if depth < 2 { 10 } else { 7 }) {
        0 | 1 => toml_string(&random_text(rng)),
        2 => rng
            .pick(&[
                0,
                1,
                -1,
                2,
                50,
                51,
                4307,
                65535,
                65536,
                86400,
                86401,
                525600,
                525601,
                i64::MAX,
                i64::MIN,
            ])
            .to_string(),
        3 => (rng.next() as i64 >> rng.below(64)).to_string(),
        4 => rng
            .pick(&[
                "0.0",
                "-0.0",
                "0.5",
                "1e-300",
                "1e300",
                "nan",
                "+inf",
                "-inf",
                "-1.5",
                "50.0",
                "50.000001",
                "0.05",
                "86400.5",
            ])
            .to_string(),
        5 => rng.pick(&["true", "false"]).to_string(),
        6 => rng
            .pick(&[
                "1979-05-27",
                "1979-05-27T07:32:00Z",
                "07:32:00",
                "1979-05-27T00:32:00.999999-07:00",
                "1979-05-27 07:32:00",
            ])
            .to_string(),
        7 | 8 => {
            let n = rng.below(4);
            let items: Vec<String> = (0..n).map(|_| random_value(rng, depth + 1)).collect();
            format!("[{}]", items.join(", "))
        }
        _ => {
            let n = rng.below(4);
            let mut seen = HashSet::new();
            let mut items = Vec::new();
            for _ in 0..n {
                let key = random_key(rng);
                if seen.insert(key.clone()) {
                    items.push(format!(
                        "{} = {}",
                        toml_string(&key),
                        random_value(rng, depth + 1)
                    ));
                }
            }
            format!("{{{}}}", items.join(", "))
        }
    }
}

fn random_key(rng: &mut Rng) -> String {
    let all: Vec<&str> = [
        TOP_KEYS,
        SERVER_KEYS,
        STATUS_KEYS,
        FORGOTTEN_KEYS,
        MONITORING_KEYS,
    ]
    .concat();
    if rng.chance(80) {
        rng.pick(&all).to_string()
    } else {
        random_text(rng)
    }
}

/// A value that `key` accepts, often; any value otherwise. Secret keys hold
/// marked values (strings or numbers) that no output may show.
fn value_for(rng: &mut Rng, key: &str) -> String {
    if SECRET_KEYS.contains(&key) {
        // A bot token is never a bare number (it has a ':'); a number there
        // may be shown.
        let number = key != "tg-api-token";
        return match rng.below(5) {
            0 if number => SECRET_NUMBER.to_string(),
            1 if number => format!("{SECRET_NUMBER}.5"),
            2 => format!("[{}]", toml_string(&format!("{SECRET_MARK}-list"))),
            _ => toml_string(&format!("123456789:{SECRET_MARK}{}", rng.hex(30))),
        };
    }
    if rng.chance(40) {
        return random_value(rng, 0);
    }
    let plausible: &[&str] = match key {
        "tg-users-id" | "tg-viewers-id" => &["[1, 2]", "[]", "7", "[\"12\", 3]", "[1.5]"],
        "locale" => &["\"en\"", "\"de\"", "\"xx\"", "\"\""],
        "tg-api-url" => &["\"https://api.telegram.org\"", "\"ftp://x\"", "\"\""],
        "tg-poll-timeout" => &["1", "30", "50", "51", "-1", "0.5"],
        "state-dir" | "locales-dir" => &["\"state\"", "\"\"", "\"a b\""],
        "ip" => &[
            "\"127.0.0.1:1\"",
            "\"https://tc.example/\"",
            "\"\"",
            "\"[::1]:8443\"",
        ],
        "client_id" => &["\"id\"", "\"\"", "\" \""],
        "ssl_certificate" => &["true", "false", "\"\"", "\"missing.pem\"", "1"],
        "status_port" => &["4307", "0", "65536", "\"4307\""],
        "api_version" => &["\"v3.3\"", "\"3.3\"", "\"v3/x\"", "\"/v4/\""],
        "state" => &["true", "false", "1", "0", "2", "\"on\""],
        "timeout" => &["15", "0", "0.05", "86401", "-3"],
        "failures_before_down" => &["2", "0", "1001", "1.5"],
        _ => &["0", "60", "0.5", "-1", "525601"],
    };
    rng.pick(plausible).to_string()
}

/// A settings file of random shape and values, always valid TOML.
fn random_settings(rng: &mut Rng) -> String {
    let mut top = String::new();
    let mut tables = String::new();
    for &key in TOP_KEYS {
        let wanted = matches!(key, "tg-api-token" | "tg-users-id" | "servers");
        if !rng.chance(if wanted { 90 } else { 40 }) {
            continue;
        }
        let as_table = matches!(key, "servers" | "forgotten" | "monitoring") && rng.chance(85);
        if !as_table {
            top.push_str(&format!("{} = {}\n", toml_string(key), value_for(rng, key)));
            continue;
        }
        if key != "servers" {
            let keys = if key == "forgotten" {
                FORGOTTEN_KEYS
            } else {
                MONITORING_KEYS
            };
            tables.push_str(&format!("[{key}]\n"));
            table_body(rng, keys, &mut tables);
            continue;
        }
        let mut names = HashSet::new();
        for _ in 0..rng.below(4) {
            let name = match rng.below(4) {
                0 => random_text(rng),
                _ => rng
                    .pick(&["Main", "", " ", "a.b", "Сервер", "x\"y", "💥"])
                    .to_string(),
            };
            if !names.insert(name.clone()) {
                continue;
            }
            let header = format!("servers.{}", toml_string(&name));
            if rng.chance(10) {
                tables.push_str(&format!(
                    "[servers]\n{} = {}\n",
                    toml_string(&name),
                    random_value(rng, 1)
                ));
                break;
            }
            tables.push_str(&format!("[{header}]\n"));
            let written = table_body(rng, SERVER_KEYS, &mut tables);
            if !written.contains(&"server_status") && rng.chance(50) {
                tables.push_str(&format!("[{header}.server_status]\n"));
                table_body(rng, STATUS_KEYS, &mut tables);
            }
        }
    }
    top.push_str(&tables);
    top
}

/// A valid settings file with a few values changed, dropped or added.
fn near_valid_settings(rng: &mut Rng) -> String {
    let secret = || {
        toml_string(&format!(
            "123456789:{SECRET_MARK}0123456789abcdef0123456789"
        ))
    };
    let mut text = String::new();
    let entry = |rng: &mut Rng, out: &mut String, key: &str, valid: String| {
        if rng.chance(4) {
            return;
        }
        let value = if rng.chance(8) {
            value_for(rng, key)
        } else {
            valid
        };
        out.push_str(&format!("{} = {value}\n", toml_string(key)));
    };
    entry(rng, &mut text, "tg-api-token", secret());
    entry(rng, &mut text, "tg-users-id", "[1, 2]".into());
    entry(rng, &mut text, "tg-viewers-id", "[3]".into());
    entry(rng, &mut text, "locale", "\"de\"".into());
    entry(rng, &mut text, "tg-poll-timeout", "30".into());
    if rng.chance(10) {
        text.push_str("\"tg-user-id\" = [4]\n");
    }
    text.push_str("[forgotten]\n");
    entry(rng, &mut text, "after_minutes", "60".into());
    entry(rng, &mut text, "scan_every_minutes", "0".into());
    entry(rng, &mut text, "auto_stop_after_minutes", "0.5".into());
    text.push_str("[monitoring]\n");
    entry(rng, &mut text, "failures_before_down", "2".into());
    entry(rng, &mut text, "remind_every_minutes", "10".into());
    for name in ["Main", "Сервер «2»"].iter().take(1 + rng.below(2)) {
        let header = format!("servers.{}", toml_string(name));
        text.push_str(&format!("[{header}]\n"));
        entry(rng, &mut text, "ip", "\"127.0.0.1:8443\"".into());
        entry(rng, &mut text, "client_id", "\"id\"".into());
        entry(rng, &mut text, "client_secret", secret());
        entry(rng, &mut text, "access_token", "\"\"".into());
        entry(rng, &mut text, "ssl_certificate", "false".into());
        entry(rng, &mut text, "status_port", "4307".into());
        entry(rng, &mut text, "api_version", "\"v3.3\"".into());
        text.push_str(&format!("[{header}.server_status]\n"));
        entry(rng, &mut text, "state", "1".into());
        entry(rng, &mut text, "timeout", "15".into());
    }
    text
}

/// Some of `keys` (and sometimes an unknown one) with values; returns the
/// keys written.
fn table_body<'k>(rng: &mut Rng, keys: &[&'k str], out: &mut String) -> Vec<&'k str> {
    let mut written = Vec::new();
    for &key in keys {
        if key == "server_status" && rng.chance(85) {
            continue; // mostly written as a table
        }
        if rng.chance(60) {
            out.push_str(&format!("{} = {}\n", toml_string(key), value_for(rng, key)));
            written.push(key);
        }
    }
    if rng.chance(15) {
        let key = format!("unknown-{}", rng.hex(4));
        out.push_str(&format!(
            "{} = {}\n",
            toml_string(&key),
            random_value(rng, 0)
        ));
    }
    written
}

/// Whether a problem starts with the key it is about.
fn names_a_key(problem: &str) -> bool {
    TOP_KEYS
        .iter()
        .any(|k| problem.starts_with(&format!("{k}:")) || problem.starts_with(&format!("{k}.")))
}

/// Parses `text`; asserts no panic (by getting here), only configuration
/// errors naming their keys, and no secret anywhere in what is shown.
/// Returns whether the settings were accepted.
#[track_caller]
fn parse_checked(text: &str, path: &Path, toml_may_fail: bool, secrets: &[&str]) -> bool {
    let result = config::parse(text, path, None);
    let shown = match &result {
        Ok(loaded) => format!(
            "{:?}\n{:#?}\n{:?}",
            loaded.settings, loaded.settings, loaded.warnings
        ),
        Err(e) => format!("{e}\n{e:?}"),
    };
    for secret in secrets {
        assert!(
            !shown.contains(secret),
            "a secret is shown:\n{shown}\nfor the settings:\n{text}"
        );
    }
    match result {
        Ok(_) => true,
        Err(Error::Config { problems, .. }) => {
            assert!(!problems.is_empty(), "no problem named for:\n{text}");
            for problem in &problems {
                let toml = toml_may_fail && problem.starts_with("not valid TOML: ");
                assert!(
                    toml || names_a_key(problem),
                    "{problem:?} names no key; settings:\n{text}"
                );
            }
            false
        }
        Err(other) => panic!("not a configuration error: {other:?}\nfor:\n{text}"),
    }
}

#[test]
fn random_settings_never_panic_and_every_problem_names_its_key() {
    let dir = TempDir::new();
    let path = dir.join("settings.toml");
    let secret_number = SECRET_NUMBER.to_string();
    let marks = [SECRET_MARK, secret_number.as_str()];
    let mut rng = Rng::new(0x5e77_1e55_0000_0003);
    let mut accepted = 0;
    for i in 0..3_000 {
        let text = if i % 2 == 0 {
            random_settings(&mut rng)
        } else {
            near_valid_settings(&mut rng)
        };
        accepted += usize::from(parse_checked(&text, &path, false, &marks));
    }
    assert!(
        (30..2_900).contains(&accepted),
        "{accepted} of 3000 accepted"
    );

    // A valid file, torn anywhere or with bytes flipped, and random bytes.
    let secret = "SEKRETsekretSEKRETsekretSEKRETsek";
    let valid = format!(
        "tg-api-token = \"4242424242:{secret}\"\ntg-users-id = [1]\n\
         [servers.\"Main\"]\nip = \"127.0.0.1:1\"\nclient_id = \"id\"\n\
         client_secret = \"{secret}\"\naccess_token = \"{secret}\"\n\
         [servers.\"Main\".server_status]\nstate = true\ntimeout = 15\n"
    );
    assert!(parse_checked(&valid, &path, false, &[secret]));
    let windows: Vec<&str> = (0..secret.len() - 8).map(|i| &secret[i..i + 8]).collect();
    for _ in 0..2_000 {
        let text = match rng.below(3) {
            0 => {
                let n = rng.below(300);
                String::from_utf8_lossy(&rng.bytes(n)).into_owned()
            }
            1 => {
                let mut at = rng.below(valid.len());
                while !valid.is_char_boundary(at) {
                    at -= 1;
                }
                valid[..at].to_string()
            }
            _ => {
                let mut bytes = valid.clone().into_bytes();
                for _ in 0..1 + rng.below(3) {
                    let i = rng.below(bytes.len());
                    bytes[i] = rng.pick(b"\"=[]\n \\#.'{}x0");
                }
                String::from_utf8_lossy(&bytes).into_owned()
            }
        };
        parse_checked(&text, &path, true, &windows);
    }
}

// ---------------------------------------------------------------------------
// 5. Secrets

#[test]
fn debug_output_of_settings_and_of_every_error_holds_no_secret() {
    let srv = Srv::new("Main");
    srv.fake.set_conferences(vec![Conf::running("alpha", 4000)]);
    let d = Deployed::with(vec![srv], |s| {
        s.replace(
            "access_token = \"\"",
            &format!("access_token = \"{STATIC_TOKEN}\""),
        )
    });
    let (tg, fake) = (&d.tg, d.fake(0));
    let loaded = config::load(&d.settings, None).unwrap();
    let settings = &loaded.settings;
    let mut shown = vec![
        format!("{settings:?}"),
        format!("{settings:#?}"),
        format!("{:?}", loaded.warnings),
    ];

    // Telegram: a rejected token, a 429, an HTML page, a closed port.
    let telegram = Telegram::new(
        &settings.api_url,
        &settings.token,
        Duration::from_secs(1),
        &settings.timing,
        None,
    );
    shown.push(format!("{telegram:?}"));
    tg.set_token("1:other");
    let e = telegram.get_me().unwrap_err();
    shown.push(format!("{e:?} {e}"));
    tg.set_token(TOKEN);
    tg.script("getMe", Reply::too_many_requests(7));
    tg.script("getMe", Reply::bad_gateway_html());
    for _ in 0..2 {
        let e = telegram.get_me().unwrap_err();
        shown.push(format!("{e:?} {e}"));
    }
    let closed = SocketAddr::from(([127, 0, 0, 1], crate::support::refused_port()));
    let nowhere = Telegram::new(
        &format!("http://{closed}"),
        &settings.token,
        Duration::from_secs(1),
        &settings.timing,
        None,
    );
    let e = nowhere
        .get_updates(Some(5), Duration::from_secs(1))
        .unwrap_err();
    shown.push(format!("{e:?} {e}"));

    // TrueConf: the fixed token refused, then the credentials, a 502, a
    // missing permission, an answer of the wrong shape, a dead server.
    let client = TrueConf::new(&settings.servers[0], &settings.timing);
    shown.push(format!("{client:?}"));
    fake.set_credentials_valid(false);
    let e = client.running_conferences().unwrap_err();
    shown.push(format!("{e:?} {e}"));
    fake.set_credentials_valid(true);
    fake.script("/api/v3.3/logs/calls", ApiReply::html(502));
    fake.set_missing_scope("/users");
    fake.script(
        "/api/v3.3/conference-sessions",
        ApiReply::json(200, json!("cut")),
    );
    let results = [
        client.running_conferences().map(|_| ()),
        client.online_users().map(|_| ()),
        client.participants(&session_id_for("alpha")).map(|_| ()),
    ];
    for r in results {
        let e = r.unwrap_err();
        shown.push(format!("{e:?} {e}"));
    }
    let text = std::fs::read_to_string(&d.settings).unwrap();
    let dead = text.replace(&fake.ip(), &closed.to_string());
    let dead = config::parse(&dead, &d.settings, None).unwrap().settings;
    let e = TrueConf::new(&dead.servers[0], &dead.timing)
        .stop("alpha")
        .unwrap_err();
    shown.push(format!("{e:?} {e}"));

    // Settings errors: secrets without their quotes.
    let unquoted = [
        text.replace(&format!("\"{TOKEN}\""), TOKEN),
        text.replace(&format!("\"{CLIENT_SECRET}\""), CLIENT_SECRET),
        text.replace(&format!("\"{STATIC_TOKEN}\""), STATIC_TOKEN),
        text.replace(&format!("\"{CLIENT_SECRET}\""), "8642097531864209"),
    ];
    for bad in unquoted {
        let e = config::parse(&bad, &d.settings, None)
            .err()
            .expect("rejected");
        shown.push(format!("{e:?} {e}"));
    }
    let e = config::parse("x = 1", &d.settings, None).err().unwrap();
    shown.push(format!("{e:?} {e}"));
    // A rejected token at start.
    tg.set_token("1:other");
    let (locales, _) = Locales::load(None, "en").unwrap();
    let e = trueconf_bot::run(loaded.settings.clone(), locales, Shutdown::new()).unwrap_err();
    assert!(matches!(e, Error::TokenRejected), "{e:?}");
    shown.push(format!("{e:?} {e}"));

    let mut secrets = secrets(&[fake]);
    secrets.push("8642097531864209".into());
    assert!(secrets.len() > 5, "no access token was issued");
    for text in &shown {
        assert_no_secret(text, &secrets);
    }
}

#[test]
fn check_prints_no_token_and_no_secret_whether_it_passes_or_fails() {
    let fixed = Srv::new("Fixed");
    fixed.fake.set_static_token(STATIC_TOKEN);
    let d = Deployed::with(vec![fixed, Srv::new("Grant")], |s| {
        s.replacen(
            "access_token = \"\"",
            &format!("access_token = \"{STATIC_TOKEN}\""),
            1,
        )
    });
    let check = || {
        let out = bin()
            .args(["check", "--config"])
            .arg(&d.settings)
            .env("RUST_LOG", "debug")
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.code(), text)
    };
    let (code, passed) = check();
    assert_eq!(code, Some(0), "{passed}");
    assert!(passed.contains("DEBUG"), "not verbose:\n{passed}");
    // Everything refused: the bot token, the fixed token, the credentials.
    d.tg.set_token("1:other");
    d.fake(0).set_static_token("another");
    d.fake(0).set_credentials_valid(false);
    d.fake(1).set_credentials_valid(false);
    let (code, failed) = check();
    assert_eq!(code, Some(1), "{failed}");
    assert!(failed.contains("✘ telegram"), "{failed}");
    // Settings it cannot use: the token and the client secret without quotes.
    let text = std::fs::read_to_string(&d.settings).unwrap();
    std::fs::write(
        &d.settings,
        text.replace(&format!("\"{TOKEN}\""), TOKEN)
            .replace(&format!("\"{CLIENT_SECRET}\""), CLIENT_SECRET),
    )
    .unwrap();
    let (code, unusable) = check();
    assert_eq!(code, Some(2), "{unusable}");
    assert!(
        unusable.contains("not valid TOML: TOML parse error at line"),
        "{unusable}"
    );
    let secrets = secrets(&[d.fake(0), d.fake(1)]);
    // The four fixed ones and at least the token issued to 'Grant'.
    assert!(
        secrets.len() >= 5,
        "no access token was issued:\n{passed}\n{failed}"
    );
    for text in [passed, failed, unusable] {
        assert_no_secret(&text, &secrets);
    }
}

// ---------------------------------------------------------------------------
// 6. Soak

#[test]
fn soak_three_admins_pressing_while_a_status_port_flaps_leaks_neither_memory_nor_threads() {
    const RUN: Duration = Duration::from_secs(12);
    const WINDOW: Duration = Duration::from_secs(4);
    let main = Srv::new("Main").monitored(0.05);
    main.fake.set_conferences(vec![
        Conf::running("alpha", 4000),
        Conf::running("beta", 60),
    ]);
    main.fake.generate_users(500, 3);
    let d = Deployed::new(vec![main, Srv::new("Branch")]);
    let mut bot = d.start();
    let pid = bot.pid();
    let tg = &d.tg;
    let admins = [OP, OP2, VIEWER];
    let screens: Vec<i64> = admins
        .iter()
        .map(|&u| tg.start_chat(u).message_id)
        .collect();
    let mut presses = Vec::new();
    for key in [short_key("Main"), short_key("Branch")] {
        presses.extend([
            Press::Menu(key.clone()),
            Press::Status(key.clone()),
            Press::Running(key.clone(), 0),
            Press::Online(key),
        ]);
    }
    presses.push(Press::Picker);
    let presses: Vec<String> = presses.iter().map(Press::encode).collect();

    let stop = AtomicBool::new(false);
    let started = Instant::now();
    let mut samples: Vec<(Duration, u64, u64)> = Vec::new();
    let pressed: Vec<Vec<String>> = std::thread::scope(|s| {
        s.spawn(|| {
            let fake = d.fake(0);
            let mut up = true;
            while !stop.load(Ordering::Relaxed) {
                up = !up;
                fake.set_up(up);
                pace(&stop, Duration::from_millis(300));
            }
            fake.set_up(true);
        });
        let admins: Vec<_> = admins
            .iter()
            .zip(&screens)
            .map(|(&user, &message_id)| {
                let (stop, presses) = (&stop, &presses);
                s.spawn(move || {
                    let mut ids = Vec::new();
                    while !stop.load(Ordering::Relaxed) {
                        let data = &presses[ids.len() % presses.len()];
                        ids.push(tg.push_callback(user, user, message_id, data, None));
                        pace(stop, Duration::from_millis(40));
                    }
                    ids
                })
            })
            .collect();
        while started.elapsed() < RUN {
            let (rss, threads) = proc_status(pid);
            samples.push((started.elapsed(), rss, threads));
            pace(&stop, Duration::from_millis(250));
        }
        stop.store(true, Ordering::Relaxed);
        admins.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(bot.alive(), "the bot died:\n{}", d.log());
    // The flapping reached the admins as alerts meanwhile.
    for needle in ["is DOWN", "is UP again"] {
        assert!(
            tg.messages(OP).iter().any(|m| m.plain.contains(needle)),
            "no {needle:?} alert:\n{}",
            tg.transcript(OP)
        );
    }

    // Every press was answered, once.
    let all: Vec<&String> = pressed.iter().flatten().collect();
    for ids in &pressed {
        assert!(ids.len() >= 10, "an admin pressed only {} times", ids.len());
    }
    let answered_all = wait_until(Duration::from_secs(30), || {
        let answers: HashSet<String> = tg
            .calls_to("answercallbackquery")
            .iter()
            .filter_map(|c| c.str("callback_query_id"))
            .collect();
        all.iter().all(|id| answers.contains(id.as_str()))
    });
    assert!(answered_all, "a press was not answered");
    assert_eq!(
        tg.calls_to("answercallbackquery").len(),
        all.len(),
        "a press was answered twice"
    );
    // The screens still come: a last press shows the status of Main. (Its
    // edit is looked for among the calls, so that a screen identical to the
    // one shown, "message is not modified", counts as well.)
    for (&user, &message_id) in admins.iter().zip(&screens) {
        let pressed_at = Instant::now();
        tg.press(user, user, message_id, &presses[1]);
        let shown = tg.wait_for(WAIT, |c| {
            c.method == "editmessagetext"
                && c.at >= pressed_at
                && c.int("chat_id") == Some(user)
                && c.int("message_id") == Some(message_id)
                && c.str("text")
                    .is_some_and(|t| t.contains("Monitoring is on"))
        });
        assert!(
            shown.is_some(),
            "no status screen:\n{}",
            tg.transcript(user)
        );
    }

    // Memory and threads: the last 4 s against the first 4 s.
    let first: Vec<_> = samples.iter().filter(|s| s.0 < WINDOW).collect();
    let last: Vec<_> = samples.iter().filter(|s| s.0 >= RUN - WINDOW).collect();
    assert!(first.len() >= 5 && last.len() >= 5, "{samples:?}");
    let rss_first = first.iter().map(|s| s.1).max().unwrap();
    let rss_last = last.iter().map(|s| s.1).max().unwrap();
    let allowed = (rss_first / 10).max(512);
    assert!(
        rss_last <= rss_first + allowed,
        "resident memory grew from {rss_first} KiB to {rss_last} KiB: {samples:?}"
    );
    let warm: Vec<u64> = samples
        .iter()
        .filter(|s| s.0 >= WINDOW / 2 && s.0 < WINDOW)
        .map(|s| s.2)
        .collect();
    let threads_warm = *warm.iter().max().unwrap();
    let threads_end = last.iter().map(|s| s.2).max().unwrap();
    assert!(
        threads_end <= threads_warm + 2,
        "threads grew from {threads_warm} to {threads_end}: {samples:?}"
    );
    assert!(!d.log().contains("internal error"), "{}", d.log());
}

/// Issue 13: scans of many servers share a few fetchers and are spread over
/// their interval, so threads stay at 2 per server plus a constant.
#[test]
fn twenty_servers_scanning_at_once_stay_within_the_thread_budget() {
    const N: u64 = 20;
    let servers: Vec<Srv> = (0..N)
        .map(|i| {
            let srv = Srv::new(&format!("S{i}"));
            srv.fake.set_conferences(
                (0..10)
                    .map(|c| Conf::running(&format!("s{i}-room{c}"), 7200))
                    .collect(),
            );
            srv
        })
        .collect();
    let d = Deployed::with(servers, |text| {
        text + "\n[forgotten]\nafter_minutes = 1\nscan_every_minutes = 0.005\n"
    });
    for i in 0..N as usize {
        // Slow enough that participant fetches overlap.
        d.fake(i).set_delay(Duration::from_millis(30));
    }
    let bot = d.start();
    let pid = bot.pid();
    let stop = AtomicBool::new(false);
    let peak = std::thread::scope(|s| {
        let sampler = s.spawn(|| {
            let mut peak = 0;
            while !stop.load(Ordering::Relaxed) {
                peak = peak.max(proc_status(pid).1);
                pace(&stop, Duration::from_millis(10));
            }
            peak
        });
        // Every server scanned twice, participants and all.
        for i in 0..N as usize {
            let seen = d
                .fake(i)
                .wait_requests(WAIT, |r| r.path.ends_with("/participants"), 20)
                .len();
            assert!(seen >= 20, "server {i} was not scanned:\n{}", d.log());
        }
        stop.store(true, Ordering::Relaxed);
        sampler.join().unwrap()
    });
    assert!(
        peak <= 2 * N + 20,
        "{peak} threads at peak for {N} servers (budget {})",
        2 * N + 20
    );
    // The scans were not silently "unknown": the operators heard of them.
    let summaries =
        d.tg.messages(OP)
            .iter()
            .filter(|m| m.plain.contains("conferences look forgotten"))
            .count();
    assert_eq!(summaries, N as usize, "{}", d.tg.transcript(OP));
}

/// ARCHITECTURE.md's thread table is what `ps -T` shows.
#[test]
fn the_threads_are_the_ones_architecture_names() {
    let d = Deployed::new(vec![Srv::new("Main"), Srv::new("Branch")]);
    let bot = d.start();
    let names = || -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(format!("/proc/{}/task", bot.pid()))
            .unwrap()
            .flatten()
            .filter_map(|t| std::fs::read_to_string(t.path().join("comm")).ok())
            .map(|n| n.trim().to_string())
            .collect();
        names.sort();
        names
    };
    let mut expected: Vec<String> = ["trueconf-bot", "bot", "notify"]
        .iter()
        .map(|s| s.to_string())
        .chain((0..2).flat_map(|i| [format!("probe-{i}"), format!("server-{i}")]))
        .chain((0..8).map(|k| format!("fetch-{k}")))
        .collect();
    expected.sort();
    // `commands` lives until the command menus are registered.
    assert!(
        wait_until(WAIT, || names() == expected),
        "{:?} vs {expected:?}",
        names()
    );
    // /status starts a short-lived `overview`; it ends once answered.
    d.tg.push_message(OP, OP, "/status", None);
    d.tg.wait(OP, |m| m.plain.starts_with("All servers"));
    assert!(wait_until(WAIT, || names() == expected), "{:?}", names());
}
