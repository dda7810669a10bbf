//! The one home of time: the wall clock (unix seconds and milliseconds, for
//! what is persisted and shown), calendar formatting, and the time zone
//! every shown time is in (`Zone`: UTC, a fixed offset, or an IANA zone
//! read from the system's zoneinfo). Depends on nothing else in the crate.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// One reading of both clocks. The wall clock (unix ms) is what is
/// persisted and shown; it jumps (NTP after boot on a router without an
/// RTC, a VM restore, a manual fix). The monotonic clock (ms since the
/// process started) does not. In-process intervals use both (`since`).
/// A plain value, so that the decisions built on it are unit-testable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Now {
    pub wall_ms: u64,
    /// Monotonic milliseconds since the process started.
    pub mono_ms: u64,
    /// The wall clock when the process started (mono_ms = 0).
    pub start_wall_ms: u64,
}

/// How long ago a mark was, by each clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Elapsed {
    pub wall: Duration,
    pub mono: Duration,
}

impl Elapsed {
    /// For what must not happen early (auto-stop after its grace): the
    /// smaller of the two, so a wall clock jumping ahead cannot shorten it.
    pub fn at_least(&self) -> Duration {
        self.wall.min(self.mono)
    }

    /// For intervals that repeat or are shown (reminders, "down for"): the
    /// monotonic one, so a wall clock jumping back silences nothing.
    pub fn measured(&self) -> Duration {
        self.mono
    }
}

impl Now {
    /// Both clocks, now.
    pub fn read() -> Now {
        static START: OnceLock<(Instant, u64)> = OnceLock::new();
        let (start, start_wall_ms) = *START.get_or_init(|| (Instant::now(), now_unix_ms()));
        Now {
            wall_ms: now_unix_ms(),
            mono_ms: start.elapsed().as_millis() as u64,
            start_wall_ms,
        }
    }

    /// Unix seconds.
    pub fn wall(&self) -> u64 {
        self.wall_ms / 1000
    }

    /// Time since a mark made at `mark_wall_ms`, and at `mark_mono_ms` when
    /// this process made it. A mark from before the start (read from
    /// state.json) is dated by the wall clock at the start, then measured
    /// monotonically: a jump after the start changes nothing.
    pub fn since(&self, mark_wall_ms: u64, mark_mono_ms: Option<u64>) -> Elapsed {
        let mono = match mark_mono_ms {
            Some(mark) => self.mono_ms.saturating_sub(mark),
            None => self
                .start_wall_ms
                .saturating_sub(mark_wall_ms)
                .saturating_add(self.mono_ms),
        };
        Elapsed {
            wall: Duration::from_millis(self.wall_ms.saturating_sub(mark_wall_ms)),
            mono: Duration::from_millis(mono),
        }
    }
}

/// Unix time in milliseconds.
pub fn now_unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Unix time in seconds.
pub fn now_unix() -> u64 {
    now_unix_ms() / 1000
}

/// `2026-11-25 14:05 UTC` from unix seconds.
pub fn utc(unix: u64) -> String {
    let (year, month, day, hour, minute, _) = civil(unix);
    format!("{year:04}-{month:02}-{day:02} {hour:02}:{minute:02} UTC")
}

/// `2026-11-25T14:05:09Z`.
pub fn rfc3339(unix: u64) -> String {
    let (y, mo, d, h, mi, s) = civil(unix);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z")
}

/// Unix seconds from `2026-11-25T14:05:09Z` (what the audit log stores).
pub fn parse_rfc3339(text: &str) -> Option<u64> {
    let b = text.as_bytes();
    if b.len() != 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[19] != b'Z' {
        return None;
    }
    let num = |from: usize, to: usize| text.get(from..to)?.parse::<i64>().ok();
    let (y, mo, d) = (num(0, 4)?, num(5, 7)?, num(8, 10)?);
    let (h, mi, s) = (num(11, 13)?, num(14, 16)?, num(17, 19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || s > 60 {
        return None;
    }
    // Days from civil (the inverse of `civil`).
    let y = if mo <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    u64::try_from(days * 86_400 + h * 3600 + mi * 60 + s).ok()
}

/// The time zone of every time the bot shows (`timezone` in the settings).
#[derive(Clone)]
pub struct Zone {
    /// As configured ("UTC", "+03:00", "Europe/Berlin", "system").
    name: String,
    kind: ZoneKind,
}

#[derive(Clone)]
enum ZoneKind {
    Fixed(i32),
    Tz(Box<tz::TimeZone>),
}

impl fmt::Debug for Zone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Zone({})", self.name)
    }
}

impl PartialEq for Zone {
    fn eq(&self, other: &Zone) -> bool {
        self.name == other.name
    }
}

impl Zone {
    pub fn utc() -> Zone {
        Zone {
            name: "UTC".into(),
            kind: ZoneKind::Fixed(0),
        }
    }

    /// `UTC`, an offset (`+03:00`, `-0530`, `+3`), or an IANA name looked
    /// up in `zoneinfo` (normally /usr/share/zoneinfo, or `$TZDIR`).
    pub fn parse(value: &str, zoneinfo: &Path) -> Result<Zone, String> {
        let value = value.trim();
        if value.eq_ignore_ascii_case("utc") || value.eq_ignore_ascii_case("z") {
            return Ok(Zone::utc());
        }
        if let Some(offset) = parse_offset(value) {
            return Ok(Zone {
                name: format_offset(offset),
                kind: ZoneKind::Fixed(offset),
            });
        }
        let safe = !value.is_empty()
            && !value.starts_with('/')
            && !value.split('/').any(|part| part.is_empty() || part == "..")
            && value
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '_' | '-' | '+'));
        if !safe {
            return Err(format!(
                "'{value}' is neither UTC, an offset such as +03:00, nor a zone name such as Europe/Berlin"
            ));
        }
        let path = zoneinfo.join(value);
        let bytes = std::fs::read(&path).map_err(|_| {
            format!(
                "no time zone '{value}' in {} (is the tzdata package installed?); \
                 use UTC, an offset such as +03:00, or a name such as Europe/Berlin",
                zoneinfo.display()
            )
        })?;
        let zone = tz::TimeZone::from_tz_data(&bytes)
            .map_err(|_| format!("{} is not a time zone file", path.display()))?;
        Ok(Zone {
            name: value.to_string(),
            kind: ZoneKind::Tz(Box::new(zone)),
        })
    }

    /// The system's zone: `$TZ`, else /etc/localtime, else UTC.
    pub fn system() -> Zone {
        let from_env = std::env::var("TZ").ok().filter(|t| !t.trim().is_empty());
        let zone = match &from_env {
            Some(tz) => match Zone::parse(tz.trim_start_matches(':'), &zoneinfo_dir()) {
                Ok(zone) => return zone,
                Err(_) => tz::TimeZone::from_posix_tz(tz).ok(),
            },
            None => std::fs::read("/etc/localtime")
                .ok()
                .and_then(|bytes| tz::TimeZone::from_tz_data(&bytes).ok()),
        };
        match zone {
            Some(zone) => Zone {
                name: "system".into(),
                kind: ZoneKind::Tz(Box::new(zone)),
            },
            None => Zone::utc(),
        }
    }

    /// The offset from UTC at `unix` (seconds) and its short name ("CET", "+03:00").
    pub fn at(&self, unix: u64) -> (i32, String) {
        match &self.kind {
            ZoneKind::Fixed(0) => (0, "UTC".into()),
            ZoneKind::Fixed(offset) => (*offset, format_offset(*offset)),
            ZoneKind::Tz(zone) => match zone.find_local_time_type(unix as i64) {
                Ok(t) => {
                    let offset = t.ut_offset();
                    let name = match t.time_zone_designation() {
                        "" => format_offset(offset),
                        "UTC" | "GMT" if offset == 0 => "UTC".into(),
                        name => name.to_string(),
                    };
                    (offset, name)
                }
                Err(_) => (0, "UTC".into()),
            },
        }
    }

    /// `2026-11-25 17:05 MSK`.
    pub fn date_time(&self, unix: u64) -> String {
        let (offset, name) = self.at(unix);
        let (y, mo, d, h, mi, _) = civil(shift(unix, offset));
        format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02} {name}")
    }

    /// `14:02` when `unix` is on the same local day as `now`, else
    /// `2026-11-24 14:02` (no zone name: said once per message at most).
    pub fn when(&self, unix: u64, now: u64) -> String {
        let (offset, _) = self.at(unix);
        let (y, mo, d, h, mi, _) = civil(shift(unix, offset));
        let (offset_now, _) = self.at(now);
        let (ny, nmo, nd, ..) = civil(shift(now, offset_now));
        if (y, mo, d) == (ny, nmo, nd) {
            format!("{h:02}:{mi:02}")
        } else {
            format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}")
        }
    }
}

/// Where IANA zones are read from: `$TZDIR`, else /usr/share/zoneinfo.
pub fn zoneinfo_dir() -> PathBuf {
    std::env::var_os("TZDIR")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/share/zoneinfo"))
}

fn shift(unix: u64, offset: i32) -> u64 {
    (unix as i64 + i64::from(offset)).max(0) as u64
}

/// `+03:00`, `-0530`, `+3`, `UTC+3` → seconds east of UTC (at most ±14 h).
fn parse_offset(value: &str) -> Option<i32> {
    let value = value
        .strip_prefix("UTC")
        .or_else(|| value.strip_prefix("GMT"))
        .unwrap_or(value);
    let (sign, rest) = match value.as_bytes().first()? {
        b'+' => (1, &value[1..]),
        b'-' => (-1, &value[1..]),
        _ => return None,
    };
    let (h, m) = match rest.split_once(':') {
        Some((h, m)) => (h, m),
        None if rest.len() == 4 => rest.split_at(2),
        None => (rest, "0"),
    };
    if h.is_empty()
        || h.len() > 2
        || m.len() > 2
        || !(h.bytes().chain(m.bytes())).all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let (h, m): (i32, i32) = (h.parse().ok()?, m.parse().ok()?);
    (h <= 14 && m < 60 && h * 60 + m <= 14 * 60).then_some(sign * (h * 3600 + m * 60))
}

fn format_offset(offset: i32) -> String {
    let sign = if offset < 0 { '-' } else { '+' };
    let a = offset.unsigned_abs();
    format!("{sign}{:02}:{:02}", a / 3600, a / 60 % 60)
}

/// (year, month, day, hour, minute, second) in UTC from unix seconds
/// (proleptic Gregorian calendar, days-from-civil inverted).
pub fn civil(unix: u64) -> (i64, u32, u32, u32, u32, u32) {
    let days = (unix / 86_400) as i64;
    let rem = unix % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (
        year,
        month,
        day,
        (rem / 3600) as u32,
        (rem / 60 % 60) as u32,
        (rem % 60) as u32,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calendar() {
        assert_eq!(utc(0), "1970-01-01 00:00 UTC");
        assert_eq!(utc(1_795_614_300), "2026-11-25 13:45 UTC");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00 UTC");
        assert_eq!(rfc3339(1_795_614_309), "2026-11-25T13:45:09Z");
        for t in [0, 951_782_400, 1_795_614_309, 4_102_444_800] {
            assert_eq!(parse_rfc3339(&rfc3339(t)), Some(t));
        }
        assert_eq!(parse_rfc3339("2026-13-01T00:00:00Z"), None);
        assert_eq!(parse_rfc3339("garbage"), None);
    }

    #[test]
    fn elapsed_time_survives_clock_jumps() {
        let start = 1_000_000_000_000;
        // Marked by this process at mono 10 s; now mono 70 s.
        let mark_wall = start + 10_000;
        let steady = Now {
            wall_ms: start + 70_000,
            mono_ms: 70_000,
            start_wall_ms: start,
        };
        let e = steady.since(mark_wall, Some(10_000));
        assert_eq!((e.at_least(), e.measured()), (secs(60), secs(60)));
        // The wall clock jumped a day ahead: nothing is a day old.
        let ahead = Now {
            wall_ms: steady.wall_ms + 86_400_000,
            ..steady
        };
        let e = ahead.since(mark_wall, Some(10_000));
        assert_eq!((e.at_least(), e.measured()), (secs(60), secs(60)));
        // An hour behind: what is measured goes on; what must not come
        // early waits for the wall clock too.
        let behind = Now {
            wall_ms: steady.wall_ms - 3_600_000,
            ..steady
        };
        let e = behind.since(mark_wall, Some(10_000));
        assert_eq!((e.at_least(), e.measured()), (secs(0), secs(60)));
        // A mark from before a restart: dated by the wall clock at start.
        let e = ahead.since(start - 5_000, None);
        assert_eq!(e.at_least(), secs(75));
    }

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn zones_fixed_and_by_name() {
        let nowhere = Path::new("/nonexistent");
        let t = 1_795_614_300; // 2026-11-25 13:45 UTC
        assert_eq!(Zone::utc().date_time(t), "2026-11-25 13:45 UTC");
        let msk = Zone::parse("+03:00", nowhere).unwrap();
        assert_eq!(msk.date_time(t), "2026-11-25 16:45 +03:00");
        assert_eq!(
            Zone::parse("-0530", nowhere).unwrap().date_time(t),
            "2026-11-25 08:15 -05:30"
        );
        assert_eq!(Zone::parse("UTC+3", nowhere).unwrap(), msk);
        for bad in [
            "+15:00",
            "+03:60",
            "Moon/Base",
            "../etc/passwd",
            "/etc/passwd",
            "+",
        ] {
            assert!(Zone::parse(bad, nowhere).is_err(), "{bad}");
        }
        // Same local day: the time alone; another day: with the date.
        assert_eq!(msk.when(t, t + 3600), "16:45");
        assert_eq!(msk.when(t, t + 86_400), "2026-11-25 16:45");
        // A TZif file with only a POSIX rule (as slim zoneinfo files end).
        let dir = std::env::temp_dir().join(format!("tcb-zone-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("Europe")).unwrap();
        std::fs::write(
            dir.join("Europe/Berlin"),
            tzif_with_rule("CET-1CEST,M3.5.0,M10.5.0/3"),
        )
        .unwrap();
        let berlin = Zone::parse("Europe/Berlin", &dir).unwrap();
        std::fs::remove_dir_all(&dir).ok();
        assert_eq!(berlin.date_time(t), "2026-11-25 14:45 CET");
        assert_eq!(berlin.date_time(1_782_000_000), "2026-06-21 02:00 CEST");
    }

    /// A minimal TZif v2 file: no transitions, one UTC type, and a footer rule.
    fn tzif_with_rule(rule: &str) -> Vec<u8> {
        let header = |v: u8| {
            let mut h = b"TZif".to_vec();
            h.push(v);
            h.extend([0u8; 15]);
            // isutcnt, isstdcnt, leapcnt, timecnt, typecnt, charcnt
            for n in [0u32, 0, 0, 0, 1, 4] {
                h.extend(n.to_be_bytes());
            }
            h
        };
        let block = |out: &mut Vec<u8>| {
            out.extend(0i32.to_be_bytes()); // utoff
            out.push(0); // isdst
            out.push(0); // desigidx
            out.extend(b"UTC\0");
        };
        let mut out = header(b'2');
        block(&mut out);
        out.extend(header(b'2'));
        block(&mut out);
        out.push(b'\n');
        out.extend(rule.as_bytes());
        out.push(b'\n');
        out
    }
}
