//! Test doubles and helpers shared by the integration tests.
//!
//! `fake_telegram` is a fake Telegram Bot API, `fake_trueconf` a fake TrueConf
//! Server (HTTPS API port + plain-HTTP `/vsstatus` port). Both serve HTTP with
//! `http1`, our own small HTTP/1.1 server (a thread per connection). Both bind
//! 127.0.0.1 port 0, stop every thread they started when dropped, and never
//! panic on what a client sends them.
#![allow(dead_code)]

pub mod fake_telegram;
pub mod fake_trueconf;
pub mod http1;
pub mod proxy;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A fresh directory under the system temp dir, removed (with its content) on drop.
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    pub fn new() -> TempDir {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        loop {
            let n = COUNTER.fetch_add(1, Ordering::Relaxed);
            let name = format!("trueconf-bot-test-{}-{n}-{nanos:x}", std::process::id());
            let path = std::env::temp_dir().join(name);
            match std::fs::create_dir(&path) {
                Ok(()) => return TempDir { path },
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => panic!("cannot create a temp dir at {}: {e}", path.display()),
            }
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn join(&self, name: impl AsRef<Path>) -> PathBuf {
        self.path.join(name)
    }
}

impl Default for TempDir {
    fn default() -> Self {
        TempDir::new()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// Every fake calls this after any change of its state, so `wait_until` wakes up
/// at once instead of waiting for its next re-check.
static CHANGES: Mutex<u64> = Mutex::new(0);
static CHANGED: Condvar = Condvar::new();

pub(crate) fn notify_changed() {
    let mut n = lock(&CHANGES);
    *n = n.wrapping_add(1);
    CHANGED.notify_all();
}

/// Environment variables that would change what the bot does (log level,
/// systemd's directories, proxies): removed from every bot a test starts.
pub const FOREIGN_ENV: &[&str] = &[
    "RUST_LOG",
    "STATE_DIRECTORY",
    "CREDENTIALS_DIRECTORY",
    "JOURNAL_STREAM",
    "HTTPS_PROXY",
    "HTTP_PROXY",
    "ALL_PROXY",
    "https_proxy",
    "http_proxy",
    "all_proxy",
    "NO_PROXY",
    "no_proxy",
];

/// A number field of /proc/PID/status (e.g. "VmRSS:" in KiB, "Threads:").
pub fn proc_field(pid: u32, name: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(name))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in /proc/{pid}/status"))
}

/// The settings text of the benchmarks and smoke runs: `servers` (fakes with
/// CA-signed certificates), each monitored every `interval` seconds, one
/// operator, the state in `state_dir`.
pub fn lab_settings(
    tg: &fake_telegram::FakeTelegram,
    token: &str,
    operator: i64,
    servers: &[fake_trueconf::FakeTrueConf],
    state_dir: &Path,
    interval: f64,
) -> String {
    use fake_trueconf::{CLIENT_ID, CLIENT_SECRET};
    let mut text = format!(
        "tg-api-token = \"{token}\"\ntg-users-id = [{operator}]\ntg-api-url = \"{}\"\nstate-dir = \"{}\"\n",
        tg.base_url(),
        state_dir.display()
    );
    for (i, s) in servers.iter().enumerate() {
        text.push_str(&format!(
            "[servers.\"Server {i}\"]\nip = \"{}\"\nclient_id = \"{CLIENT_ID}\"\nclient_secret = \"{CLIENT_SECRET}\"\n\
             ssl_certificate = \"{}\"\nstatus_port = {}\n[servers.\"Server {i}\".server_status]\nstate = true\ntimeout = {interval}\n",
            s.ip(),
            s.ca_pem_path().display(),
            s.status_port()
        ));
    }
    text
}

/// A loopback port that refuses connections, and keeps refusing them while
/// other tests run in parallel: it lies below Linux's range of ports that
/// `bind(…:0)` hands out (32768–60999), so no fake can be given it, as a
/// port bound and released could be. Each call gives another port.
pub fn refused_port() -> u16 {
    static NEXT: Mutex<u32> = Mutex::new(0);
    let mut next = lock(&NEXT);
    loop {
        // 20000–31999, starting where this process's id points.
        let port = 20_000 + (std::process::id() % 1000 * 7 + *next) % 12_000;
        *next = next.wrapping_add(1);
        let port = port as u16;
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        let refused = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1))
            .is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionRefused);
        if refused {
            return port;
        }
    }
}

/// Calls `f` until it returns true or `deadline` (from now) has passed; returns
/// the last result. Between checks it waits on the fakes' change signal, and
/// re-checks at least every 20 ms for conditions outside the fakes (files the
/// bot writes, for instance).
pub fn wait_until(deadline: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + deadline;
    loop {
        let seen = *lock(&CHANGES);
        if f() {
            return true;
        }
        let now = Instant::now();
        if now >= end {
            return false;
        }
        let slice = (end - now).min(Duration::from_millis(20));
        let guard = lock(&CHANGES);
        if *guard == seen {
            let _ = CHANGED.wait_timeout(guard, slice);
        }
    }
}

/// Locks a mutex even if a panicking test thread poisoned it (the fakes must
/// keep answering, and their Drop must not panic).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Waits on `cv` until `deadline`; false when the deadline has passed.
pub(crate) fn wait_deadline<'a, T>(
    cv: &Condvar,
    guard: MutexGuard<'a, T>,
    deadline: Instant,
) -> (MutexGuard<'a, T>, bool) {
    let now = Instant::now();
    if now >= deadline {
        return (guard, false);
    }
    match cv.wait_timeout(guard, deadline - now) {
        Ok((g, _)) => (g, true),
        Err(e) => (e.into_inner().0, true),
    }
}

/// Decodes `%XX` escapes (invalid ones are kept as they are); with `plus`,
/// also `+` as a space (form encoding).
pub(crate) fn percent_decode(s: &str, plus: bool) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => match (hex_val(b[i + 1]), hex_val(b[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h * 16 + l);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' if plus => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Parses `a=1&b=x+y` (form or query string) into decoded pairs.
pub(crate) fn parse_form(s: &str) -> Vec<(String, String)> {
    s.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (percent_decode(k, true), percent_decode(v, true)),
            None => (percent_decode(p, true), String::new()),
        })
        .collect()
}

/// Joins every finished thread of `handles`, keeping the running ones.
pub(crate) fn reap(handles: &mut Vec<std::thread::JoinHandle<()>>) {
    let mut i = 0;
    while i < handles.len() {
        if handles[i].is_finished() {
            let _ = handles.swap_remove(i).join();
        } else {
            i += 1;
        }
    }
}

/// (year, month, day, hour, minute, second) in UTC from unix seconds: the
/// tests' own calendar, kept apart from the bot's so that it can check it
/// (proleptic Gregorian, days-from-civil inverted).
pub fn civil(unix: i64) -> (i64, i64, i64, i64, i64, i64) {
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day, secs / 3600, secs % 3600 / 60, secs % 60)
}
