//! What the bot must remember across restarts (SPEC §3): `state.json` in the
//! state dir, written atomically (temp file + rename). A corrupt or missing
//! file is reported and replaced, never fatal; an unwritable dir is reported
//! and the bot keeps serving from memory. Never holds a secret.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use serde::{Deserialize, Serialize};

use crate::config::Server;
use crate::telegram::Keyboard;

/// Health of a server as the monitor last judged it.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
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
    /// Forgotten conferences already pushed to operators: session id → unix milliseconds.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub forgotten_alerted: BTreeMap<String, u64>,
}

/// A pushed message waiting for delivery.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
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
#[derive(Debug)]
pub struct Store {
    path: PathBuf,
    data: Mutex<StateData>,
    failing: AtomicBool,
}

pub const FILE_NAME: &str = "state.json";

impl Store {
    /// Opens `state.json` in `dir`. Returns the store and warnings to log.
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
        let store = Store {
            path,
            data: Mutex::new(data),
            failing: AtomicBool::new(false),
        };
        (store, warnings)
    }

    /// Reads the state.
    pub fn read<R>(&self, f: impl FnOnce(&StateData) -> R) -> R {
        let guard = self.data.lock().unwrap_or_else(|p| p.into_inner());
        f(&guard)
    }

    /// Changes the state and writes it to disk if it changed.
    pub fn update<R>(&self, f: impl FnOnce(&mut StateData) -> R) -> R {
        let mut guard = self.data.lock().unwrap_or_else(|p| p.into_inner());
        let before = guard.clone();
        let result = f(&mut guard);
        if *guard != before {
            self.persist(&guard);
        }
        result
    }

    /// Changes one server's entry.
    pub fn update_server<R>(&self, name: &str, f: impl FnOnce(&mut ServerState) -> R) -> R {
        self.update(|d| f(d.servers.entry(name.to_string()).or_default()))
    }

    /// Whether monitoring is on for a server (the chat toggle wins over the settings).
    pub fn monitoring(&self, server: &Server) -> bool {
        self.server(&server.name)
            .monitoring
            .unwrap_or(server.monitor_at_start)
    }

    /// A copy of one server's entry.
    pub fn server(&self, name: &str) -> ServerState {
        self.read(|d| d.servers.get(name).cloned().unwrap_or_default())
    }

    fn persist(&self, data: &StateData) {
        match write_atomically(&self.path, data) {
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

fn write_atomically(path: &Path, data: &StateData) -> std::io::Result<()> {
    let text = serde_json::to_vec_pretty(data).map_err(std::io::Error::other)?;
    let tmp = path.with_extension("json.tmp");
    {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(&text)?;
        file.write_all(b"\n")?;
        // No fsync: the rename keeps the file whole across a crash of the
        // process, and a torn file after a power cut is reported and replaced.
    }
    std::fs::rename(&tmp, path)
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
}
