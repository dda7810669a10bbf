//! The audit log (SPEC §8.3): every stop and monitoring switch appended to
//! `audit.jsonl` in the state dir, one JSON object a line. At 1 MiB the file
//! becomes `audit.jsonl.1` (one old file kept) and a new one is started. A
//! line torn by a crash is skipped on reading, never fatal.

use std::io::Write;
use std::path::Path;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::clock::{now_unix, rfc3339};
use crate::telegram::User;

pub const FILE_NAME: &str = "audit.jsonl";
/// The previous file, kept at rotation.
pub const OLD_FILE_NAME: &str = "audit.jsonl.1";
/// The size at which `audit.jsonl` is rotated.
pub const ROTATE_AT: u64 = 1024 * 1024;

/// Appends (with their rotation) and reads of the two files, one at a time:
/// two workers rotating at once would throw away a whole old file.
static FILES: Mutex<()> = Mutex::new(());

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

/// Appends a record as one line (a single write with O_APPEND), rotating the
/// file at `ROTATE_AT`. Failures are logged: an audit problem must not stop
/// the action it records.
pub fn append(dir: &Path, record: &Record) {
    append_rotating(dir, record, ROTATE_AT);
}

/// `append` with the rotation size given: when the line would take the file
/// past `limit`, the file becomes `audit.jsonl.1` (replacing the one there)
/// and the line starts a new one.
pub fn append_rotating(dir: &Path, record: &Record, limit: u64) {
    let path = dir.join(FILE_NAME);
    let Ok(mut line) = serde_json::to_vec(record) else {
        return;
    };
    line.push(b'\n');
    let _one_at_a_time = FILES.lock().unwrap_or_else(|p| p.into_inner());
    let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    if size > 0 && size + line.len() as u64 > limit {
        let old = dir.join(OLD_FILE_NAME);
        match std::fs::rename(&path, &old) {
            Ok(()) => log::info!(
                "audit log {} reached {} KiB; the older entries are in {}",
                path.display(),
                size / 1024,
                old.display()
            ),
            // Appending goes on; the file grows until a rotation works.
            Err(e) => log::error!("audit log {}: cannot rotate ({e})", path.display()),
        }
    }
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

/// The last `n` readable records, newest last, from `audit.jsonl` and, when
/// it holds fewer, from `audit.jsonl.1` before it; torn or foreign lines
/// (also ones cut inside a multi-byte character) skipped. Reads only the
/// files' tails, however long they have grown.
pub fn read_last(dir: &Path, n: usize) -> Vec<Record> {
    let _one_at_a_time = FILES.lock().unwrap_or_else(|p| p.into_inner());
    let mut records = read_tail(&dir.join(FILE_NAME), n);
    if records.len() < n {
        let mut older = read_tail(&dir.join(OLD_FILE_NAME), n - records.len());
        older.append(&mut records);
        records = older;
    }
    records
}

/// The last `n` readable records of one file, newest last.
fn read_tail(path: &Path, n: usize) -> Vec<Record> {
    use std::io::{Read, Seek, SeekFrom};
    let Ok(mut file) = std::fs::File::open(path) else {
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

    fn numbered(i: usize) -> Record {
        Record::automatic("Main", Some(&format!("c{i:02}")), "stop", "stopped")
    }

    fn conferences(records: &[Record]) -> Vec<String> {
        records
            .iter()
            .map(|r| r.conference.clone().unwrap_or_default())
            .collect()
    }

    #[test]
    fn the_log_rotates_at_its_limit_keeping_one_old_file_and_reads_across() {
        let dir = std::env::temp_dir().join(format!("tcb-audit-rot-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let line = serde_json::to_vec(&numbered(0)).unwrap().len() as u64 + 1;
        // Room for four lines a file.
        let limit = 4 * line + line / 2;
        let size = |name: &str| std::fs::metadata(dir.join(name)).map(|m| m.len()).ok();
        for i in 0..4 {
            append_rotating(&dir, &numbered(i), limit);
        }
        assert_eq!(size(FILE_NAME), Some(4 * line));
        assert_eq!(size(OLD_FILE_NAME), None);
        append_rotating(&dir, &numbered(4), limit);
        assert_eq!(size(FILE_NAME), Some(line));
        assert_eq!(size(OLD_FILE_NAME), Some(4 * line));
        // The newest entries come from both files, in order.
        assert_eq!(conferences(&read_last(&dir, 3)), ["c02", "c03", "c04"]);
        assert_eq!(
            conferences(&read_last(&dir, 20)),
            ["c00", "c01", "c02", "c03", "c04"]
        );
        assert_eq!(conferences(&read_last(&dir, 1)), ["c04"]);
        // Only one old file is kept: the next rotation replaces it.
        for i in 5..9 {
            append_rotating(&dir, &numbered(i), limit);
        }
        assert_eq!(size(FILE_NAME), Some(line));
        assert_eq!(size(OLD_FILE_NAME), Some(4 * line));
        assert_eq!(
            conferences(&read_last(&dir, 20)),
            ["c04", "c05", "c06", "c07", "c08"]
        );
        let names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
        // Only the old file left (the new one lost): it is still read.
        std::fs::remove_file(dir.join(FILE_NAME)).unwrap();
        assert_eq!(conferences(&read_last(&dir, 2)), ["c06", "c07"]);
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn appends_from_many_threads_across_rotations_keep_two_whole_files() {
        let dir = std::env::temp_dir().join(format!("tcb-audit-threads-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let line = serde_json::to_vec(&numbered(0)).unwrap().len() as u64 + 1;
        // Ten lines a file; 60 appends rotate five times.
        let limit = 10 * line;
        std::thread::scope(|s| {
            for t in 0..4 {
                let dir = &dir;
                s.spawn(move || {
                    for i in 0..15 {
                        append_rotating(dir, &numbered(t * 15 + i), limit);
                    }
                });
            }
        });
        // Whatever the interleaving: two full files of whole lines, the last
        // 20 appended, each once.
        let size = |name: &str| std::fs::metadata(dir.join(name)).unwrap().len();
        assert_eq!((size(FILE_NAME), size(OLD_FILE_NAME)), (limit, limit));
        let mut seen = conferences(&read_last(&dir, 100));
        assert_eq!(seen.len(), 20);
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), 20);
        std::fs::remove_dir_all(&dir).ok();
    }
}
