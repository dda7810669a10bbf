//! The audit log (SPEC §8.3): every stop and monitoring switch appended to
//! `audit.jsonl` in the state dir, one JSON object a line. A line torn by a
//! crash is skipped on reading, never fatal.

use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::clock::{now_unix, rfc3339};
use crate::telegram::User;

pub const FILE_NAME: &str = "audit.jsonl";

/// One audited action.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// RFC 3339, UTC.
    pub time: String,
    /// The Telegram user, or `None` for the bot itself ("auto").
    pub user_id: Option<i64>,
    pub user: String,
    pub server: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conference: Option<String>,
    pub action: String,
    pub result: String,
}

impl Record {
    pub fn by_user(
        user: &User,
        server: &str,
        conference: Option<&str>,
        action: &str,
        result: &str,
    ) -> Record {
        Record {
            time: rfc3339(now_unix()),
            user_id: Some(user.id),
            user: user.name.clone(),
            server: server.to_string(),
            conference: conference.map(str::to_string),
            action: action.to_string(),
            result: result.to_string(),
        }
    }

    pub fn automatic(server: &str, conference: Option<&str>, action: &str, result: &str) -> Record {
        Record {
            time: rfc3339(now_unix()),
            user_id: None,
            user: "auto".into(),
            server: server.to_string(),
            conference: conference.map(str::to_string),
            action: action.to_string(),
            result: result.to_string(),
        }
    }
}

/// Appends a record as one line (a single write with O_APPEND). Failures are
/// logged: an audit problem must not stop the action it records.
pub fn append(dir: &Path, record: &Record) {
    let path = dir.join(FILE_NAME);
    let Ok(mut line) = serde_json::to_vec(record) else {
        return;
    };
    line.push(b'\n');
    let result = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .and_then(|mut f| {
            // A torn earlier line must not swallow this one: start on a fresh line.
            let len = f.metadata()?.len();
            if len > 0 && !ends_with_newline(&path)? {
                f.write_all(b"\n")?;
            }
            f.write_all(&line)
        });
    if let Err(e) = result {
        log::error!("audit log {}: cannot append ({e})", path.display());
    }
}

fn ends_with_newline(path: &Path) -> std::io::Result<bool> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(path)?;
    f.seek(SeekFrom::End(-1))?;
    let mut last = [0u8; 1];
    f.read_exact(&mut last)?;
    Ok(last[0] == b'\n')
}

/// How much of the end of the file `read_last` looks at.
const TAIL: u64 = 256 * 1024;

/// The last `n` readable records, newest last; torn or foreign lines (also
/// ones cut inside a multi-byte character) skipped. Reads only the file's
/// tail, however long the log has grown.
pub fn read_last(dir: &Path, n: usize) -> Vec<Record> {
    use std::io::{Read, Seek, SeekFrom};
    let Ok(mut file) = std::fs::File::open(dir.join(FILE_NAME)) else {
        return Vec::new();
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let start = len.saturating_sub(TAIL);
    let mut tail = Vec::new();
    if file.seek(SeekFrom::Start(start)).is_err() || file.read_to_end(&mut tail).is_err() {
        return Vec::new();
    }
    let mut records: Vec<Record> = tail
        .split(|b| *b == b'\n')
        .rev()
        .filter_map(|line| serde_json::from_slice(line).ok())
        .take(n)
        .collect();
    records.reverse();
    records
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn torn_lines_are_skipped_and_appends_go_on() {
        let dir = std::env::temp_dir().join(format!("tcb-audit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let _ = std::fs::remove_file(dir.join(FILE_NAME));
        let r = Record::automatic("Main", Some("42"), "stop", "stopped");
        append(&dir, &r);
        std::fs::OpenOptions::new()
            .append(true)
            .open(dir.join(FILE_NAME))
            .unwrap()
            .write_all(b"{\"time\":\"2026-")
            .unwrap();
        append(&dir, &r);
        // A line cut inside a multi-byte character is skipped as well.
        let mut cut = serde_json::to_vec(&Record::automatic("Сервер", None, "stop", "ok")).unwrap();
        let inside = cut.windows(2).position(|w| w == "С".as_bytes()).unwrap() + 1;
        cut.truncate(inside);
        std::fs::OpenOptions::new()
            .append(true)
            .open(dir.join(FILE_NAME))
            .unwrap()
            .write_all(&cut)
            .unwrap();
        append(&dir, &r);
        let got = read_last(&dir, 20);
        std::fs::remove_dir_all(&dir).ok();
        assert_eq!(got, vec![r.clone(), r.clone(), r]);
    }
}
