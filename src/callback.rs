//! `callback_data` of every button: short ASCII keys, never names, so that a
//! button stays within Telegram's 64 bytes whatever the server name or the
//! conference id (SPEC §4). Every action carries its target, so a repeated
//! press is harmless (SPEC §5). Decoding is strict: anything else is `None`.

/// Which list a conference was chosen from (where to return after a stop).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum List {
    Running,
    /// Forgotten conferences at this threshold in minutes (0: as configured).
    Forgotten(u32),
}

/// What a button asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Press {
    /// The server picker.
    Picker,
    /// The menu of one server (its short key).
    Menu(String),
    Status(String),
    /// Switch monitoring to the given state (target state, not "toggle").
    Monitor(String, bool),
    /// A page of running conferences.
    Running(String, u32),
    Online(String),
    /// Forgotten conferences at a threshold (minutes, 0: as configured), a page.
    Forgotten(String, u32, u32),
    /// Ask to stop a conference (its key), coming from a list.
    AskStop(String, String, List),
    /// Stop it (confirmed).
    Stop(String, String, List),
    /// A page of the audit log (operators).
    Audit(u32),
    /// Silence a server's alerts for this many hours from now (one of
    /// `SILENCE_HOURS`): a target, so a repeat extends it or does nothing.
    Silence(String, u32),
    /// End a server's silence now.
    EndSilence(String),
    /// A button that only shows something (the page number).
    Nothing,
}

impl Press {
    pub fn encode(&self) -> String {
        match self {
            Press::Picker => "p".into(),
            Press::Menu(s) => format!("m:{s}"),
            Press::Status(s) => format!("s:{s}"),
            Press::Monitor(s, on) => format!("o:{s}:{}", u8::from(*on)),
            Press::Running(s, page) => format!("r:{s}:{page}"),
            Press::Online(s) => format!("u:{s}"),
            Press::Forgotten(s, minutes, page) => format!("f:{s}:{minutes}:{page}"),
            Press::AskStop(s, c, list) => format!("x:{s}:{c}:{}", encode_list(*list)),
            Press::Stop(s, c, list) => format!("y:{s}:{c}:{}", encode_list(*list)),
            Press::Audit(page) => format!("a:{page}"),
            Press::Silence(s, hours) => format!("z:{s}:{hours}"),
            Press::EndSilence(s) => format!("w:{s}"),
            Press::Nothing => "n".into(),
        }
    }

    pub fn decode(data: &str) -> Option<Press> {
        if data.len() > 64 {
            return None;
        }
        let parts: Vec<&str> = data.split(':').collect();
        let key = |i: usize| parts.get(i).filter(|k| is_key(k, 8)).map(|k| k.to_string());
        let num = |i: usize| parts.get(i).and_then(|n| parse_small(n));
        let press = match (parts[0], parts.len()) {
            ("p", 1) => Press::Picker,
            ("n", 1) => Press::Nothing,
            ("a", 2) => Press::Audit(num(1)?),
            ("m", 2) => Press::Menu(key(1)?),
            ("s", 2) => Press::Status(key(1)?),
            ("u", 2) => Press::Online(key(1)?),
            ("w", 2) => Press::EndSilence(key(1)?),
            ("z", 3) => Press::Silence(key(1)?, num(2).filter(|h| SILENCE_HOURS.contains(h))?),
            ("o", 3) => Press::Monitor(
                key(1)?,
                match parts[2] {
                    "1" => true,
                    "0" => false,
                    _ => return None,
                },
            ),
            ("r", 3) => Press::Running(key(1)?, num(2)?),
            ("f", 4) => Press::Forgotten(key(1)?, minutes(num(2)?)?, num(3)?),
            ("x", 4) | ("y", 4) => {
                let conf = parts.get(2).filter(|k| is_key(k, 12))?.to_string();
                let list = decode_list(parts[3])?;
                if parts[0] == "x" {
                    Press::AskStop(key(1)?, conf, list)
                } else {
                    Press::Stop(key(1)?, conf, list)
                }
            }
            _ => return None,
        };
        Some(press)
    }

    /// The server this press is about, if any.
    pub fn server(&self) -> Option<&str> {
        match self {
            Press::Picker | Press::Nothing | Press::Audit(_) => None,
            Press::Menu(s)
            | Press::Status(s)
            | Press::Monitor(s, _)
            | Press::Running(s, _)
            | Press::Online(s)
            | Press::Forgotten(s, _, _)
            | Press::AskStop(s, _, _)
            | Press::Stop(s, _, _)
            | Press::Silence(s, _)
            | Press::EndSilence(s) => Some(s),
        }
    }

    /// A press that changes something (its outcome is always shown).
    pub fn is_action(&self) -> bool {
        matches!(
            self,
            Press::Stop(..) | Press::Monitor(..) | Press::Silence(..) | Press::EndSilence(_)
        )
    }

    /// Whether only operators may press it.
    pub fn needs_operator(&self) -> bool {
        matches!(
            self,
            Press::Monitor(..)
                | Press::AskStop(..)
                | Press::Stop(..)
                | Press::Audit(_)
                | Press::Silence(..)
                | Press::EndSilence(_)
        )
    }
}

/// The lengths of a silence the buttons offer, in hours.
pub const SILENCE_HOURS: [u32; 3] = [1, 4, 24];

fn encode_list(list: List) -> String {
    match list {
        List::Running => "r".into(),
        List::Forgotten(m) => format!("f{m}"),
    }
}

fn decode_list(s: &str) -> Option<List> {
    match s {
        "r" => Some(List::Running),
        _ => Some(List::Forgotten(minutes(parse_small(
            s.strip_prefix('f')?,
        )?)?)),
    }
}

/// A threshold in minutes, at most a year; 0 means "as configured".
fn minutes(m: u32) -> Option<u32> {
    (m <= 525_600).then_some(m)
}

fn is_key(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn parse_small(s: &str) -> Option<u32> {
    if s.is_empty() || s.len() > 6 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// 12 hex digits of FNV-1a (64 bit) over a conference's session id: stable
/// across restarts, so a button still means the same conference later.
pub fn conference_key(session_id: &str) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in session_id.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{:012x}", hash >> 16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_press_round_trips_within_64_bytes() {
        let s = crate::config::short_key(&"Сервер ".repeat(40));
        let c = conference_key(&"x".repeat(128));
        let all = [
            Press::Picker,
            Press::Nothing,
            Press::Audit(999_999),
            Press::Menu(s.clone()),
            Press::Status(s.clone()),
            Press::Monitor(s.clone(), true),
            Press::Monitor(s.clone(), false),
            Press::Running(s.clone(), 999_999),
            Press::Online(s.clone()),
            Press::Forgotten(s.clone(), 525_600, 999_999),
            Press::AskStop(s.clone(), c.clone(), List::Forgotten(525_600)),
            Press::Stop(s.clone(), c.clone(), List::Running),
            Press::Silence(s.clone(), 1),
            Press::Silence(s.clone(), 4),
            Press::Silence(s.clone(), 24),
            Press::EndSilence(s.clone()),
        ];
        for press in all {
            let data = press.encode();
            assert!(data.len() <= 64, "{data}");
            assert_eq!(Press::decode(&data), Some(press), "{data}");
        }
    }

    #[test]
    fn garbage_is_rejected() {
        for data in [
            "",
            ":",
            "m",
            "m:",
            "m:XYZ",
            "m:0123456",
            "m:0123456789",
            "o:01234567:2",
            "r:01234567:-1",
            "r:01234567:1e3",
            "f:01234567:525601:0",
            "x:01234567:abc:r",
            "y:01234567:0123456789ab:z",
            "y:01234567:0123456789ab:f",
            "p:extra",
            "z:01234567:2",
            "z:01234567:0",
            "z:01234567:240",
            "z:01234567",
            "w:01234567:1",
            "w:",
            "m:01234567:extra",
            "\u{0}\u{1}",
            &"m:".repeat(40),
        ] {
            assert_eq!(Press::decode(data), None, "{data:?}");
        }
    }
}
