//! What the bot must remember across restarts (SPEC §3): `state.json` in the
//! state dir, written so that it survives a power cut (a temp file of its
//! own, fsync, rename, fsync of the dir), and the lock that keeps a second
//! bot off the same dir. A corrupt or missing file is reported and replaced,
//! never fatal; an unwritable dir is reported and the bot keeps serving from
//! memory. Never holds a secret. The availability history (issue 15) goes to
//! `history.json` beside it, written the same way but only when it changed,
//! so that the file written at every change stays small.

use std::collections::BTreeMap;
use std::hash::{BuildHasher, Hash, Hasher, RandomState};

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use crate::config::Server;
use crate::error::Error;
use crate::history::{History, Kind};
use crate::telegram::Keyboard;

/// Health of a server as the monitor last judged it.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    Up,
    Down,
}

/// Per-server memory, keyed by the server's name.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct ServerState {
    /// Monitoring switched on or off in the chat; `None` = as in the settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monitoring: Option<bool>,
    /// The last judged health and since when (unix seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<Health>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<u64>,
    /// When the last DOWN alert or reminder went out (unix seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_alert: Option<u64>,
    /// The same three for the web interface/API check (R9): judged only
    /// while /vsstatus answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub web_health: Option<Health>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub web_since: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub web_last_alert: Option<u64>,
    /// Forgotten conferences already pushed to operators: session id → unix milliseconds.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub forgotten_alerted: BTreeMap<String, u64>,
    /// A maintenance silence: no alerts for this server until it ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub silence: Option<Silence>,
    /// The health the chats were last told (by an alert or at the end of a
    /// silence); `None`: nothing since the server was watched (taken as up).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub announced: Option<Health>,
    /// Outages and the time that does not count (monitoring off, silences):
    /// kept in `history.json`; shared with copies of the entry (a probe's
    /// trial, a screen's read) until it is changed (`history_mut`).
    #[serde(skip)]
    pub history: Arc<History>,
}

/// Every field but the history, which a change compares apart by its
/// address (`Store::update` holds every history while it runs, so a changed
/// one is always a new allocation). The
/// destructuring makes a field added later a compile error here, not a
/// change that is never written.
impl Hash for ServerState {
    fn hash<H: Hasher>(&self, h: &mut H) {
        let ServerState {
            monitoring,
            health,
            since,
            last_alert,
            web_health,
            web_since,
            web_last_alert,
            forgotten_alerted,
            silence,
            announced,
            history: _,
        } = self;
        monitoring.hash(h);
        health.hash(h);
        since.hash(h);
        last_alert.hash(h);
        web_health.hash(h);
        web_since.hash(h);
        web_last_alert.hash(h);
        forgotten_alerted.hash(h);
        silence.hash(h);
        announced.hash(h);
    }
}

impl ServerState {
    /// Whether alerts about this server are held back at `now_ms` (unix
    /// milliseconds): the one check every kind of alert makes.
    pub fn silenced(&self, now_ms: u64) -> bool {
        self.silence.as_ref().is_some_and(|s| s.until_ms > now_ms)
    }

    /// The history, to change it (copied first if a snapshot shares it).
    pub fn history_mut(&mut self) -> &mut History {
        Arc::make_mut(&mut self.history)
    }

    /// Starts a span of `kind` at `at` unless one is going on.
    pub fn history_begin(&mut self, kind: Kind, at: u64, cause: Option<&str>) {
        if !self.history.is_open(kind) {
            self.history_mut().begin(kind, at, cause);
        }
    }

    /// Ends the span of `kind` going on, if any, at `at`.
    pub fn history_end(&mut self, kind: Kind, at: u64) {
        if self.history.is_open(kind) {
            self.history_mut().end(kind, at);
        }
    }

    /// Starts knowing the health at `at`, if not yet.
    pub fn history_know_from(&mut self, at: u64) {
        if self.history.known_from.is_none() {
            self.history_mut().know_from(at);
        }
    }

    /// Brings the history in line with the judgement, which is written
    /// first: after a crash between the two files, an outage whose UP was
    /// saved ends when the server came up, and a silence saved without its
    /// span gets it.
    pub fn reconcile(&mut self) {
        if self.health != Some(Health::Down) {
            let open = self
                .history
                .spans
                .iter()
                .rev()
                .find(|s| s.kind == Kind::Down && s.to.is_none());
            if let Some(from) = open.map(|s| s.from) {
                self.history_end(Kind::Down, self.since.unwrap_or(from));
            }
        }
        if let Some(silence) = self.silence.clone() {
            let known = self
                .history
                .spans
                .iter()
                .any(|s| s.kind == Kind::Silenced && s.from == silence.since);
            if !known {
                let until = silence.until_ms.div_ceil(1000);
                self.history_mut()
                    .plan(Kind::Silenced, silence.since, until);
            }
        }
    }
}

/// A maintenance silence set by an operator.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash)]
pub struct Silence {
    /// When it began (unix seconds; also where its span in the history begins).
    pub since: u64,
    /// When it ends (unix milliseconds).
    pub until_ms: u64,
    /// Who set it last: the Telegram user's id and name.
    pub by_id: i64,
    pub by: String,
}

/// A pushed message waiting for delivery.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash)]
pub struct Outgoing {
    /// Unique within the outbox, growing.
    #[serde(default)]
    pub id: u64,
    pub chat_id: i64,
    /// The forum topic, for a topic of an alert chat.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thread: Option<i64>,
    pub text: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keyboard: Option<Keyboard>,
}

/// The whole file.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct StateData {
    /// The last Telegram update handled; polling resumes after it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_update_id: Option<i64>,
    #[serde(default)]
    pub servers: BTreeMap<String, ServerState>,
    /// Pushed messages not delivered yet (Telegram down, waiting for a retry):
    /// a restart sends them instead of losing them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outbox: Vec<Outgoing>,
    /// Telegram language of each user seen (for alerts).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub languages: BTreeMap<i64, String>,
    /// Alert chats that became supergroups: old id → new id (the settings
    /// still name the old one; it is never tried again).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub moved_chats: BTreeMap<i64, i64>,
}

/// The state file and its in-memory copy; shared by every thread.
///
/// A change is made under `data` and written under `writer`, so that readers
/// and other changers never wait for the disk. Whoever writes takes the newest
/// copy, and `written` says which change that covered: a change waits for
/// its own write or for a later one (several changes share a write), and an
/// older copy never replaces a newer one.
#[derive(Debug)]
pub struct Store {
    path: PathBuf,
    data: Mutex<Numbered>,
    writer: Mutex<Writer>,
    failing: AtomicBool,
    /// Where this process's fingerprints start (random).
    seed: [u64; 2],
}

/// The state, the number of the last change made to it, and of the last
/// change that changed a history.
#[derive(Debug)]
struct Numbered {
    data: StateData,
    change: u64,
    history_change: u64,
}

/// The writing side: the newest change on disk (of state.json and of
/// history.json), and the temp files made.
#[derive(Debug, Default)]
struct Writer {
    written: u64,
    history_written: u64,
    temps: u64,
    /// Writes so far (for `writes`).
    writes: u64,
}

/// Finds whether an update changed the state, without a copy of it. Every
/// word fed in goes through two lanes `h = (h <<< r ^ word) · M` (each M
/// odd), which are invertible in `h` and in `word`: two states that differ
/// in one word (a number or a flag changed: the usual change) always give
/// different fingerprints, and strings are fed with their length, so no two
/// differ only by padding. Other changes give the same fingerprint only by
/// chance (about 2^-128, from a random start per process). It allocates
/// nothing; the two lanes run side by side, a few ns a field.
struct Fingerprint([u64; 2]);

impl Fingerprint {
    const M: [u64; 2] = [0x9e37_79b9_7f4a_7c15, 0xf39c_c060_5ced_c835];

    fn word(&mut self, word: u64) {
        let [a, b] = &mut self.0;
        *a = (a.rotate_left(29) ^ word).wrapping_mul(Self::M[0]);
        *b = (b.rotate_left(37) ^ word).wrapping_mul(Self::M[1]);
    }
}

impl Hasher for Fingerprint {
    fn write(&mut self, bytes: &[u8]) {
        self.word(bytes.len() as u64);
        let mut words = bytes.chunks_exact(8);
        for word in &mut words {
            self.word(<[u8; 8]>::try_from(word).map_or(0, u64::from_le_bytes));
        }
        let rest = words.remainder();
        if !rest.is_empty() {
            let tail = rest
                .iter()
                .rev()
                .fold(0u64, |tail, &byte| tail << 8 | u64::from(byte));
            self.word(tail);
        }
    }

    fn write_u8(&mut self, n: u8) {
        self.word(u64::from(n));
    }

    fn write_u32(&mut self, n: u32) {
        self.word(u64::from(n));
    }

    fn write_u64(&mut self, n: u64) {
        self.word(n);
    }

    fn write_i64(&mut self, n: i64) {
        self.word(n as u64);
    }

    fn write_usize(&mut self, n: usize) {
        self.word(n as u64);
    }

    fn write_isize(&mut self, n: isize) {
        self.word(n as u64);
    }

    fn finish(&self) -> u64 {
        self.0[0] ^ self.0[1]
    }
}

pub const FILE_NAME: &str = "state.json";
/// The prefix of the temp files `state.json` is written through: the pid and
/// a counter follow, so no two writers ever share one.
const TEMP_PREFIX: &str = "state.json.tmp";
/// The availability history of every server, beside `state.json`.
pub const HISTORY_FILE: &str = "history.json";
const HISTORY_TEMP_PREFIX: &str = "history.json.tmp";
/// The lock file of the running instance, holding its pid.
pub const LOCK_NAME: &str = ".lock";

impl Store {
    /// Opens `state.json` in `dir`, and removes the temp files a crash left
    /// behind. Returns the store and warnings to log.
    pub fn open(dir: &Path) -> (Store, Vec<String>) {
        let path = dir.join(FILE_NAME);
        let mut warnings = Vec::new();
        let data = match std::fs::read_to_string(&path) {
            Ok(text) => match serde_json::from_str::<StateData>(&text) {
                Ok(data) => data,
                Err(e) => {
                    let aside = dir.join(format!("{FILE_NAME}.corrupt"));
                    let kept = std::fs::rename(&path, &aside).is_ok();
                    warnings.push(format!(
                        "state file {} is corrupt ({e}); starting with a fresh state{}",
                        path.display(),
                        if kept {
                            format!(", the old file is kept as {}", aside.display())
                        } else {
                            String::new()
                        }
                    ));
                    StateData::default()
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => StateData::default(),
            Err(e) => {
                warnings.push(format!(
                    "state file {} cannot be read ({e}); starting with a fresh state",
                    path.display()
                ));
                StateData::default()
            }
        };
        let mut data = data;
        read_histories(dir, &mut data, &mut warnings);
        remove_temp_files(dir);
        let store = Store {
            path,
            data: Mutex::new(Numbered {
                data,
                change: 0,
                history_change: 0,
            }),
            writer: Mutex::new(Writer::default()),
            failing: AtomicBool::new(false),
            seed: {
                let keys = RandomState::new();
                [keys.hash_one(1u8), keys.hash_one(2u8)]
            },
        };
        (store, warnings)
    }

    /// Reads the state.
    pub fn read<R>(&self, f: impl FnOnce(&StateData) -> R) -> R {
        let guard = self.data.lock().unwrap_or_else(|p| p.into_inner());
        f(&guard.data)
    }

    /// Changes the state; when it changed, returns once it is on disk (or
    /// could not be written). Only the change itself holds the state's lock.
    pub fn update<R>(&self, f: impl FnOnce(&mut StateData) -> R) -> R {
        let (result, change) = {
            let mut guard = self.data.lock().unwrap_or_else(|p| p.into_inner());
            // Held so that no history changed by `f` can be freed and another
            // allocated at its address: an unchanged address is then an
            // unchanged history (`history_mut` copies a shared one first).
            let held: Vec<Arc<History>> = histories(&guard.data)
                .map(|(_, history)| history.clone())
                .collect();
            let before = self.fingerprints(&guard.data);
            let result = f(&mut guard.data);
            let after = self.fingerprints(&guard.data);
            drop(held);
            if after == before {
                return result;
            }
            let histories_changed = after.1 != before.1;
            guard.change += 1;
            if histories_changed {
                guard.history_change = guard.change;
            }
            (result, guard.change)
        };
        self.write_through(change);
        result
    }

    /// What a change is found by, instead of a copy of the whole state to
    /// compare (a copy per probe was most of a probe's own CPU at 100
    /// servers): a 128-bit `Fingerprint` of every field but the histories,
    /// and one of which servers have a history and which copy of it each
    /// has. One pass over the state, no allocation.
    fn fingerprints(&self, data: &StateData) -> ([u64; 2], [u64; 2]) {
        let StateData {
            last_update_id,
            servers,
            outbox,
            languages,
            moved_chats,
        } = data;
        let (mut state, mut histories) = (Fingerprint(self.seed), Fingerprint(self.seed));
        last_update_id.hash(&mut state);
        servers.len().hash(&mut state);
        for (name, server) in servers {
            name.hash(&mut state);
            server.hash(&mut state);
            if !server.history.is_empty() {
                name.hash(&mut histories);
                histories.word(Arc::as_ptr(&server.history) as usize as u64);
            }
        }
        outbox.hash(&mut state);
        languages.hash(&mut state);
        moved_chats.hash(&mut state);
        (state.0, histories.0)
    }

    /// Changes one server's entry.
    pub fn update_server<R>(&self, name: &str, f: impl FnOnce(&mut ServerState) -> R) -> R {
        self.update(|d| f(d.servers.entry(name.to_string()).or_default()))
    }

    /// Whether monitoring is on for a server (the chat toggle wins over the settings).
    pub fn monitoring(&self, server: &Server) -> bool {
        self.read(|d| d.servers.get(&server.name).and_then(|s| s.monitoring))
            .unwrap_or(server.monitor_at_start)
    }

    /// A copy of one server's entry.
    pub fn server(&self, name: &str) -> ServerState {
        self.read(|d| d.servers.get(name).cloned().unwrap_or_default())
    }

    /// How many times `state.json` was written (or tried) since the start.
    pub fn writes(&self) -> u64 {
        self.writer.lock().unwrap_or_else(|p| p.into_inner()).writes
    }

    /// Makes sure that change number `change` is on disk: writes the newest
    /// state unless a write since covered it.
    fn write_through(&self, change: u64) {
        let mut writer = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        if writer.written >= change {
            return;
        }
        let (text, newest, history) = {
            let guard = self.data.lock().unwrap_or_else(|p| p.into_inner());
            let history = (guard.history_change > writer.history_written).then(|| {
                let text = history_text(&guard.data);
                (text, guard.history_change)
            });
            (
                serde_json::to_vec_pretty(&guard.data),
                guard.change,
                history,
            )
        };
        writer.temps += 1;
        writer.writes += 1;
        let temp = self.path.with_file_name(format!(
            "{TEMP_PREFIX}.{}.{}",
            std::process::id(),
            writer.temps
        ));
        let mut result = text
            .map_err(std::io::Error::other)
            .and_then(|text| write_durably(&self.path, &temp, &text));
        // After state.json: a crash between the two leaves a judgement
        // whose history `reconcile` completes.
        if let Some((text, change)) = history {
            writer.temps += 1;
            let path = self.path.with_file_name(HISTORY_FILE);
            let temp = self.path.with_file_name(format!(
                "{HISTORY_TEMP_PREFIX}.{}.{}",
                std::process::id(),
                writer.temps
            ));
            let written = text
                .map_err(std::io::Error::other)
                .and_then(|text| write_durably(&path, &temp, &text))
                .map_err(|e| std::io::Error::other(format!("{HISTORY_FILE}: {e}")));
            result = result.and(written);
            writer.history_written = change;
        }
        // A failed write is not tried again for the same changes: the next
        // change tries again (and the error is logged once, not per change).
        writer.written = newest;
        drop(writer);
        match result {
            Ok(()) => {
                if self.failing.swap(false, Ordering::Relaxed) {
                    log::info!("state file {} is written again", self.path.display());
                }
            }
            Err(e) => {
                if !self.failing.swap(true, Ordering::Relaxed) {
                    log::error!(
                        "state file {} cannot be written ({e}); going on from memory, \
                         so a restart will forget recent changes",
                        self.path.display()
                    );
                }
            }
        }
    }
}

/// Writes `text` to `temp`, flushes it to the disk, renames it over `path`
/// and flushes the directory, so that after a power cut `path` is either the
/// old file or the new one, whole. A temp file that failed is removed.
fn write_durably(path: &Path, temp: &Path, text: &[u8]) -> std::io::Result<()> {
    let written = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(temp)
        .and_then(|mut file| {
            file.write_all(text)?;
            file.write_all(b"\n")?;
            file.sync_all()
        })
        .and_then(|()| std::fs::rename(temp, path));
    if let Err(e) = written {
        let _ = std::fs::remove_file(temp);
        return Err(e);
    }
    // The rename is in the directory: flush it too. Some file systems cannot
    // flush a directory (EINVAL); the rename is as safe as they make it then.
    let dir = path.parent().unwrap_or(Path::new("."));
    match File::open(dir).and_then(|d| d.sync_all()) {
        Err(e) if e.kind() != std::io::ErrorKind::InvalidInput => Err(e),
        _ => Ok(()),
    }
}

/// The histories that are not empty, by server name, in order (what
/// `history.json` holds). Compared as `Arc`s: an unchanged one is the same
/// allocation, so comparing costs nothing per span.
fn histories(data: &StateData) -> impl Iterator<Item = (&str, &Arc<History>)> {
    data.servers
        .iter()
        .filter(|(_, s)| !s.history.is_empty())
        .map(|(name, s)| (name.as_str(), &s.history))
}

/// `history.json`'s text.
fn history_text(data: &StateData) -> serde_json::Result<Vec<u8>> {
    let plain: BTreeMap<&str, &History> = histories(data)
        .map(|(name, history)| (name, &**history))
        .collect();
    serde_json::to_vec(&plain)
}

/// Reads `history.json` into the servers' entries, then brings each history
/// in line with its judgement. A corrupt file is set aside and reported.
fn read_histories(dir: &Path, data: &mut StateData, warnings: &mut Vec<String>) {
    let path = dir.join(HISTORY_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => match serde_json::from_str::<BTreeMap<String, History>>(&text) {
            Ok(all) => {
                for (name, history) in all {
                    data.servers.entry(name).or_default().history = Arc::new(history);
                }
            }
            Err(e) => {
                let aside = dir.join(format!("{HISTORY_FILE}.corrupt"));
                let kept = std::fs::rename(&path, &aside).is_ok();
                warnings.push(format!(
                    "history file {} is corrupt ({e}); availability starts afresh{}",
                    path.display(),
                    if kept {
                        format!(", the old file is kept as {}", aside.display())
                    } else {
                        String::new()
                    }
                ));
            }
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => warnings.push(format!(
            "history file {} cannot be read ({e}); availability starts afresh",
            path.display()
        )),
    }
    for state in data.servers.values_mut() {
        state.reconcile();
    }
}

/// Removes what writes cut short by a crash left: `state.json.tmp` (from older
/// versions), `state.json.tmp.PID.N` and `history.json.tmp.PID.N`.
fn remove_temp_files(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else {
            continue;
        };
        let is_temp = name == TEMP_PREFIX
            || [TEMP_PREFIX, HISTORY_TEMP_PREFIX].iter().any(|prefix| {
                name.strip_prefix(prefix)
                    .is_some_and(|rest| rest.starts_with('.'))
            });
        if is_temp && entry.file_type().is_ok_and(|t| t.is_file()) {
            match std::fs::remove_file(entry.path()) {
                Ok(()) => log::debug!("removed {name}, left by a write cut short"),
                Err(e) => log::warn!("cannot remove {}: {e}", entry.path().display()),
            }
        }
    }
}

/// The running bot's claim on its state dir: `.lock` in it, locked (flock)
/// for as long as this value lives and holding the pid. The kernel drops the
/// lock when the process ends however it ends, so a stale file never keeps
/// a bot from starting.
#[derive(Debug)]
pub struct InstanceLock {
    _file: Option<File>,
}

impl InstanceLock {
    /// Takes the lock of `dir`. Another process (or another `run` in this
    /// one) holding it is an error; a dir where the lock file cannot be made
    /// is logged and not enforced, as the bot then serves from memory anyway.
    pub fn acquire(dir: &Path) -> Result<InstanceLock, Error> {
        let path = dir.join(LOCK_NAME);
        let not_enforced = |e: &dyn std::fmt::Display| {
            log::warn!(
                "lock file {} cannot be used ({e}); a second bot on this state dir \
                 would not be noticed",
                path.display()
            );
            Ok(InstanceLock { _file: None })
        };
        // Not truncated on open: the holder's pid must stay readable.
        let mut file = match OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
        {
            Ok(file) => file,
            Err(e) => return not_enforced(&e),
        };
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut text = String::new();
                let _ = file.read_to_string(&mut text);
                return Err(Error::AlreadyRunning {
                    pid: text.trim().parse().ok(),
                    dir: dir.to_path_buf(),
                });
            }
            Err(TryLockError::Error(e)) => return not_enforced(&e),
        }
        let pid = format!("{}\n", std::process::id());
        if let Err(e) = file
            .set_len(0)
            .and_then(|()| file.write_all(pid.as_bytes()))
        {
            log::warn!("lock file {}: cannot write the pid ({e})", path.display());
        }
        Ok(InstanceLock { _file: Some(file) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("tcb-state-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn the_history_has_its_own_file_written_when_it_changes() {
        let dir = temp_dir("history");
        let (store, _) = Store::open(&dir);
        store.update_server("Main", |s| {
            s.history_know_from(100);
            s.history_begin(Kind::Down, 150, Some("refused"));
        });
        let text = std::fs::read_to_string(dir.join(HISTORY_FILE)).unwrap();
        assert!(text.contains("refused"), "{text}");
        // A change elsewhere leaves history.json alone, and state.json has none of it.
        std::fs::write(dir.join(HISTORY_FILE), "untouched").unwrap();
        store.update(|d| d.last_update_id = Some(7));
        let after = std::fs::read_to_string(dir.join(HISTORY_FILE)).unwrap();
        assert_eq!(after, "untouched");
        let state = std::fs::read_to_string(dir.join(FILE_NAME)).unwrap();
        assert!(
            !state.contains("refused") && !state.contains("known_from"),
            "{state}"
        );
        // Both come back; the judgement (written first) wins over the history:
        // the UP reached state.json, the crash came before history.json.
        store.update_server("Main", |s| {
            s.health = Some(Health::Up);
            s.since = Some(200);
        });
        std::fs::write(dir.join(HISTORY_FILE), &text).unwrap();
        let (again, warnings) = Store::open(&dir);
        assert!(warnings.is_empty(), "{warnings:?}");
        let history = again.server("Main").history;
        assert_eq!(history.known_from, Some(100));
        assert_eq!(
            (history.spans[0].from, history.spans[0].to),
            (150, Some(200))
        );
        // A corrupt history is set aside; the state stays.
        std::fs::write(dir.join(HISTORY_FILE), "{\"Main\": [").unwrap();
        let (fresh, warnings) = Store::open(&dir);
        assert!(warnings[0].contains("history file"), "{warnings:?}");
        assert!(fresh.server("Main").history.is_empty());
        assert_eq!(fresh.read(|d| d.last_update_id), Some(7));
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn every_change_is_written_and_an_update_that_changes_nothing_is_not() {
        let dir = temp_dir("changes");
        let (store, _) = Store::open(&dir);
        type Change = Box<dyn Fn(&mut StateData)>;
        let server = |f: fn(&mut ServerState)| -> Change {
            Box::new(move |d: &mut StateData| f(d.servers.entry("Main".into()).or_default()))
        };
        let changes: Vec<(&str, Change)> = vec![
            ("a server entry", server(|_| {})),
            ("monitoring", server(|s| s.monitoring = Some(false))),
            ("health", server(|s| s.health = Some(Health::Down))),
            ("since", server(|s| s.since = Some(1))),
            ("since by one", server(|s| s.since = Some(2))),
            ("last_alert", server(|s| s.last_alert = Some(3))),
            ("web_health", server(|s| s.web_health = Some(Health::Up))),
            ("web_since", server(|s| s.web_since = Some(4))),
            ("web_last_alert", server(|s| s.web_last_alert = Some(5))),
            (
                "forgotten",
                server(|s| {
                    s.forgotten_alerted.insert("c".into(), 6);
                }),
            ),
            (
                "forgotten time",
                server(|s| {
                    s.forgotten_alerted.insert("c".into(), 7);
                }),
            ),
            (
                "forgotten key",
                server(|s| {
                    s.forgotten_alerted.remove("c");
                    s.forgotten_alerted.insert("d".into(), 7);
                }),
            ),
            ("announced", server(|s| s.announced = Some(Health::Down))),
            (
                "silence",
                server(|s| {
                    s.silence = Some(Silence {
                        since: 8,
                        until_ms: 9,
                        by_id: 10,
                        by: "Ann".into(),
                    })
                }),
            ),
            (
                "silence by",
                server(|s| s.silence.as_mut().unwrap().by = "Anna".into()),
            ),
            ("history", server(|s| s.history_know_from(11))),
            // A history that is not empty changes in place (the store holds
            // its only reference): found by its address all the same.
            (
                "history span",
                server(|s| s.history_begin(Kind::Off, 12, None)),
            ),
            ("history span end", server(|s| s.history_end(Kind::Off, 13))),
            ("last_update_id", Box::new(|d| d.last_update_id = Some(12))),
            (
                "languages",
                Box::new(|d| drop(d.languages.insert(13, "de".into()))),
            ),
            (
                "language",
                Box::new(|d| drop(d.languages.insert(13, "ru".into()))),
            ),
            (
                "moved_chats",
                Box::new(|d| {
                    d.moved_chats.insert(-14, -15);
                }),
            ),
            (
                "outbox",
                Box::new(|d| {
                    d.outbox.truncate(0);
                    d.outbox.push(Outgoing {
                        id: 1,
                        chat_id: 16,
                        thread: None,
                        text: "x".into(),
                        keyboard: None,
                    })
                }),
            ),
            ("outbox text", Box::new(|d| d.outbox[0].text = "xy".into())),
            ("outbox thread", Box::new(|d| d.outbox[0].thread = Some(17))),
            ("outbox sent", Box::new(|d| drop(d.outbox.pop()))),
        ];
        for (what, change) in &changes {
            let writes = store.writes();
            store.update(|d| change(d));
            assert_eq!(store.writes(), writes + 1, "{what} was not written");
            let on_disk: StateData =
                serde_json::from_str(&std::fs::read_to_string(dir.join(FILE_NAME)).unwrap())
                    .unwrap();
            let in_memory = store.read(|d| {
                let mut d = d.clone();
                d.servers
                    .values_mut()
                    .for_each(|s| s.history = Arc::default());
                d
            });
            assert_eq!(on_disk, in_memory, "{what}");
            let histories =
                std::fs::read_to_string(dir.join(HISTORY_FILE)).unwrap_or_else(|_| "{}".into());
            let on_disk: serde_json::Value = serde_json::from_str(&histories).unwrap();
            let in_memory: serde_json::Value =
                serde_json::from_slice(&store.read(|d| history_text(d).unwrap())).unwrap();
            assert_eq!(on_disk, in_memory, "{what}: history.json");
            // The same change again changes nothing: nothing is written.
            store.update(|d| change(d));
            // Nor is a change undone within the same update.
            store.update_server("Main", |s| {
                let since = s.since.take();
                s.since = since;
            });
            assert_eq!(store.writes(), writes + 1, "{what} written twice");
        }
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn fingerprints_differ_for_one_changed_word_and_for_padding() {
        let of = |feed: &dyn Fn(&mut Fingerprint)| {
            let mut h = Fingerprint([3, 5]);
            feed(&mut h);
            h.0
        };
        assert_ne!(of(&|h| "ab".hash(h)), of(&|h| "ab\0".hash(h)));
        assert_ne!(
            of(&|h| h.write(b"abcdefgh")),
            of(&|h| h.write(b"abcdefgh\0"))
        );
        assert_ne!(of(&|h| h.write(b"")), of(&|h| h.write(b"\0")));
        let words = [0u64, 7, u64::MAX, 1 << 63];
        for at in 0..words.len() {
            for other in [1u64, 8, u64::MAX - 1, 1 << 62] {
                let mut changed = words;
                changed[at] = other;
                assert_ne!(
                    of(&|h| words.iter().for_each(|w| h.write_u64(*w))),
                    of(&|h| changed.iter().for_each(|w| h.write_u64(*w))),
                    "word {at} changed to {other}"
                );
            }
        }
    }

    #[test]
    fn round_trip_and_corrupt_file_is_replaced() {
        let dir = temp_dir("rt");
        let (store, warnings) = Store::open(&dir);
        assert!(warnings.is_empty());
        store.update(|d| d.last_update_id = Some(41));
        store.update_server("Main", |s| s.monitoring = Some(false));
        let (again, _) = Store::open(&dir);
        assert_eq!(again.read(|d| d.last_update_id), Some(41));
        assert_eq!(again.server("Main").monitoring, Some(false));

        std::fs::write(dir.join(FILE_NAME), "{\"last_update_id\": 4").unwrap();
        let (fresh, warnings) = Store::open(&dir);
        assert_eq!(fresh.read(|d| d.clone()), StateData::default());
        assert!(warnings[0].contains("is corrupt"), "{warnings:?}");
        assert!(dir.join("state.json.corrupt").exists());
        std::fs::remove_dir_all(&dir).ok();
    }

    fn temp_files(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(TEMP_PREFIX))
            .collect();
        names.sort();
        names
    }

    #[test]
    fn temp_files_left_by_a_crash_are_removed_and_writes_leave_none() {
        let dir = temp_dir("temps");
        std::fs::write(dir.join("state.json.tmp"), "{\"last_upd").unwrap();
        std::fs::write(dir.join("state.json.tmp.77.3"), "{").unwrap();
        std::fs::write(dir.join("state.json.tmpfile"), "not ours").unwrap();
        let (store, warnings) = Store::open(&dir);
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(temp_files(&dir), ["state.json.tmpfile"]);
        for id in 0..5 {
            store.update(|d| d.last_update_id = Some(id));
        }
        assert_eq!(temp_files(&dir), ["state.json.tmpfile"]);
        assert_eq!(store.writes(), 5);
        // No change, no write.
        store.update(|d| d.last_update_id = Some(4));
        assert_eq!(store.writes(), 5);
        let (again, _) = Store::open(&dir);
        assert_eq!(again.read(|d| d.last_update_id), Some(4));
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn concurrent_changes_all_reach_the_file_and_none_is_undone() {
        let dir = temp_dir("concurrent");
        let (store, _) = Store::open(&dir);
        const THREADS: u64 = 8;
        const CHANGES: u64 = 50;
        std::thread::scope(|s| {
            for t in 0..THREADS {
                let (store, dir) = (&store, &dir);
                s.spawn(move || {
                    for i in 0..CHANGES {
                        store.update_server(&format!("s{t}"), |st| st.since = Some(i));
                        // Every change is on disk when `update` returns.
                        let on_disk: StateData = serde_json::from_str(
                            &std::fs::read_to_string(dir.join(FILE_NAME)).unwrap(),
                        )
                        .unwrap();
                        let since = on_disk.servers.get(&format!("s{t}")).and_then(|s| s.since);
                        assert!(since >= Some(i), "thread {t}: {since:?} < {i}");
                    }
                });
            }
        });
        let (again, _) = Store::open(&dir);
        for t in 0..THREADS {
            assert_eq!(again.server(&format!("s{t}")).since, Some(CHANGES - 1));
        }
        assert!(temp_files(&dir).is_empty());
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn a_second_lock_on_the_same_dir_is_refused_with_the_holders_pid() {
        let dir = temp_dir("lock");
        let first = InstanceLock::acquire(&dir).unwrap();
        let pid = std::fs::read_to_string(dir.join(LOCK_NAME)).unwrap();
        assert_eq!(pid, format!("{}\n", std::process::id()));
        match InstanceLock::acquire(&dir) {
            Err(Error::AlreadyRunning { pid, dir: named }) => {
                assert_eq!(pid, Some(std::process::id()));
                assert_eq!(named, dir);
            }
            other => panic!("the second lock was not refused: {other:?}"),
        }
        drop(first);
        let again = InstanceLock::acquire(&dir);
        assert!(again.is_ok(), "{again:?}");
        // A dir where no lock file can be made is not enforced.
        assert!(InstanceLock::acquire(&dir.join("missing")).is_ok());
        std::fs::remove_dir_all(&dir).ok();
    }
}
