//! A server's availability history (issue 15): its outages and the time that
//! does not count (monitoring off, a maintenance silence), as spans of unix
//! seconds kept in state.json, bounded to 90 days or 500 spans. Availability
//! over a window, the 24-hour strip and the last outages are pure functions
//! of (history, now): no clock, no I/O, nothing else of the crate.

use serde::{Deserialize, Serialize};

/// Spans older than this are forgotten.
pub const KEEP_SECS: u64 = 90 * DAY;
/// At most this many spans are kept (the oldest give way).
pub const KEEP_SPANS: usize = 500;
/// A cause is kept to this many characters.
const CAUSE_CHARS: usize = 100;

pub const HOUR: u64 = 3600;
pub const DAY: u64 = 24 * HOUR;
/// The windows the Status screen shows: 24 h, 7 d, 30 d.
pub const WINDOWS: [u64; 3] = [DAY, 7 * DAY, 30 * DAY];

/// What a span records.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// The monitor judged the server DOWN (an outage).
    Down,
    /// Monitoring was off: nothing is known, nothing counts.
    Off,
    /// A maintenance silence: it does not count as downtime.
    Silenced,
}

/// One span `[from, to)` in unix seconds.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Span {
    pub kind: Kind,
    pub from: u64,
    /// `None`: still going on. A silence carries its planned end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<u64>,
    /// Why the server was down (the probe's reason).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<String>,
}

/// The history of one server.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct History {
    /// Since when the server's health is known (its first judgement, or the
    /// end of what was forgotten); before it, everything is unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub known_from: Option<u64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub spans: Vec<Span>,
}

/// What a moment was, as shown and counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    /// Before the first judgement, or forgotten.
    Unknown,
    Off,
    Silenced,
    Down,
    Up,
}

/// Seconds of each class in a window.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    pub up: u64,
    pub down: u64,
    pub silenced: u64,
    pub off: u64,
    pub unknown: u64,
}

impl Tally {
    /// The seconds that count: up or down.
    pub fn counted(&self) -> u64 {
        self.up + self.down
    }

    /// Up time over counted time, in hundredths of a percent, rounded down
    /// (so that any downtime shows below 100 %); `None` when nothing counted.
    pub fn availability(&self) -> Option<Percent> {
        let counted = self.counted();
        (counted > 0).then(|| Percent((u128::from(self.up) * 10_000 / u128::from(counted)) as u32))
    }

    /// How much of the window counted, in whole percent (rounded; at least
    /// 1 when anything counted).
    pub fn watched(&self) -> u32 {
        let all = self.counted() + self.silenced + self.off + self.unknown;
        if all == 0 || self.counted() == 0 {
            return 0;
        }
        let share = (u128::from(self.counted()) * 100 + u128::from(all) / 2) / u128::from(all);
        (share as u32).max(1)
    }
}

/// A share in hundredths of a percent (0..=10000).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Percent(pub u32);

impl Percent {
    pub fn whole(self) -> u32 {
        self.0 / 100
    }
    pub fn hundredths(self) -> u32 {
        self.0 % 100
    }
}

/// One outage as the Status screen lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outage {
    pub from: u64,
    /// `None`: still down.
    pub to: Option<u64>,
    pub cause: Option<String>,
    /// The seconds of it that counted (not silenced).
    pub counted: u64,
}

/// Everything the Status screen shows of the history at `now`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    /// Per window of `WINDOWS`.
    pub windows: [Tally; 3],
    /// The last 24 hours, one cell an hour, oldest first.
    pub strip: [Class; 24],
    /// The last outages, newest first.
    pub outages: Vec<Outage>,
}

impl History {
    pub fn is_empty(&self) -> bool {
        self.known_from.is_none() && self.spans.is_empty()
    }

    /// Whether a span of `kind` is going on.
    pub fn is_open(&self, kind: Kind) -> bool {
        self.spans.iter().any(|s| s.kind == kind && s.to.is_none())
    }

    /// Starts a span of `kind` at `at` unless one is going on.
    pub fn begin(&mut self, kind: Kind, at: u64, cause: Option<&str>) {
        if self.is_open(kind) {
            return;
        }
        self.spans.push(Span {
            kind,
            from: at,
            to: None,
            cause: cause.map(|c| c.chars().take(CAUSE_CHARS).collect()),
        });
        self.prune(at);
    }

    /// Ends the span of `kind` going on, at `at`.
    pub fn end(&mut self, kind: Kind, at: u64) {
        for s in self.spans.iter_mut() {
            if s.kind == kind && s.to.is_none() {
                s.to = Some(at.max(s.from));
            }
        }
    }

    /// Sets the end of the span of `kind` that began at `from` (a silence
    /// planned, extended or cut short), adding it if it is not there.
    pub fn plan(&mut self, kind: Kind, from: u64, to: u64) {
        let to = to.max(from);
        match self
            .spans
            .iter_mut()
            .rev()
            .find(|s| s.kind == kind && s.from == from)
        {
            Some(span) => span.to = Some(to),
            None => self.spans.push(Span {
                kind,
                from,
                to: Some(to),
                cause: None,
            }),
        }
        self.prune(from);
    }

    /// Starts knowing the server's health at `at`, if not yet.
    pub fn know_from(&mut self, at: u64) {
        if self.known_from.is_none() {
            self.known_from = Some(at);
        }
    }

    /// Forgets spans that ended more than 90 days before `now`, and the
    /// oldest ended ones beyond 500. What is forgotten becomes unknown.
    pub fn prune(&mut self, now: u64) {
        let horizon = now.saturating_sub(KEEP_SECS);
        let mut forgotten_until = None;
        self.spans.retain(|s| match s.to {
            Some(to) if to < horizon => {
                forgotten_until = forgotten_until.max(Some(to));
                false
            }
            _ => true,
        });
        while self.spans.len() > KEEP_SPANS {
            let Some(oldest) = self
                .spans
                .iter()
                .enumerate()
                .filter(|(_, s)| s.to.is_some())
                .min_by_key(|(_, s)| s.from)
                .map(|(i, _)| i)
            else {
                break;
            };
            let span = self.spans.remove(oldest);
            forgotten_until = forgotten_until.max(span.to);
        }
        if let Some(until) = forgotten_until {
            if self.known_from.is_some_and(|k| k < until) {
                self.known_from = Some(until);
            }
        }
    }

    /// `[from, to)` cut into pieces of one class each, in order.
    pub fn pieces(&self, from: u64, to: u64) -> Vec<(u64, u64, Class)> {
        // Edges of the spans within the window: (time, which counter, +1/-1).
        let mut edges: Vec<(u64, usize, i32)> = Vec::new();
        for s in &self.spans {
            let a = s.from.max(from);
            let b = s.to.unwrap_or(to).min(to);
            if a < b {
                let k = s.kind as usize;
                edges.push((a, k, 1));
                edges.push((b, k, -1));
            }
        }
        edges.sort_unstable_by_key(|e| e.0);
        let mut counts = [0i32; 3];
        let mut pieces: Vec<(u64, u64, Class)> = Vec::new();
        let (mut t, mut i) = (from, 0);
        while t < to {
            while i < edges.len() && edges[i].0 <= t {
                counts[edges[i].1] += edges[i].2;
                i += 1;
            }
            let mut next = edges.get(i).map_or(to, |e| e.0).min(to);
            if let Some(k) = self.known_from {
                if k > t && k < next {
                    next = k;
                }
            }
            let class = if self.known_from.is_none_or(|k| t < k) {
                Class::Unknown
            } else if counts[Kind::Off as usize] > 0 {
                Class::Off
            } else if counts[Kind::Silenced as usize] > 0 {
                Class::Silenced
            } else if counts[Kind::Down as usize] > 0 {
                Class::Down
            } else {
                Class::Up
            };
            match pieces.last_mut() {
                Some(last) if last.2 == class && last.1 == t => last.1 = next,
                _ => pieces.push((t, next, class)),
            }
            t = next;
        }
        pieces
    }

    /// Seconds of each class in `[from, to)`.
    pub fn tally(&self, from: u64, to: u64) -> Tally {
        tally_of(&self.pieces(from, to), from, to)
    }

    /// What the Status screen shows at `now`.
    pub fn report(&self, now: u64, last: usize) -> Report {
        let longest = WINDOWS[2];
        let pieces = self.pieces(now.saturating_sub(longest), now);
        let windows = WINDOWS.map(|w| tally_of(&pieces, now.saturating_sub(w), now));
        let mut strip = [Class::Unknown; 24];
        for (i, cell) in strip.iter_mut().enumerate() {
            let start = now.saturating_sub((24 - i as u64) * HOUR);
            let t = tally_of(&pieces, start, start + HOUR);
            // Downtime shows first, then planned quiet, then up time.
            *cell = if t.down > 0 {
                Class::Down
            } else if t.silenced > 0 {
                Class::Silenced
            } else if t.up > 0 {
                Class::Up
            } else if t.off > 0 {
                Class::Off
            } else {
                Class::Unknown
            };
        }
        let mut downs: Vec<&Span> = self.spans.iter().filter(|s| s.kind == Kind::Down).collect();
        downs.sort_by_key(|s| std::cmp::Reverse(s.from));
        let outages = downs
            .into_iter()
            .take(last)
            .map(|s| {
                let end = s.to.unwrap_or(now).min(now);
                Outage {
                    from: s.from,
                    to: s.to,
                    cause: s.cause.clone(),
                    counted: self.tally(s.from, end).down,
                }
            })
            .collect();
        Report {
            windows,
            strip,
            outages,
        }
    }
}

/// The seconds of each class that `pieces` has within `[from, to)`.
fn tally_of(pieces: &[(u64, u64, Class)], from: u64, to: u64) -> Tally {
    let mut t = Tally::default();
    let mut covered = 0;
    for &(a, b, class) in pieces {
        let (a, b) = (a.max(from), b.min(to));
        if a >= b {
            continue;
        }
        let secs = b - a;
        covered += secs;
        match class {
            Class::Up => t.up += secs,
            Class::Down => t.down += secs,
            Class::Silenced => t.silenced += secs,
            Class::Off => t.off += secs,
            Class::Unknown => t.unknown += secs,
        }
    }
    // Whatever the pieces do not cover (before the first of them) is unknown.
    t.unknown += (to.saturating_sub(from)).saturating_sub(covered);
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fixed "now": 2026-11-25 13:45 UTC.
    const NOW: u64 = 1_795_614_300;

    fn span(kind: Kind, from: u64, to: Option<u64>) -> Span {
        Span {
            kind,
            from,
            to,
            cause: None,
        }
    }

    fn history(known_from: Option<u64>, spans: Vec<Span>) -> History {
        History { known_from, spans }
    }

    fn shown(p: Option<Percent>) -> String {
        match p {
            Some(p) => format!("{}.{:02}", p.whole(), p.hundredths()),
            None => "-".into(),
        }
    }

    /// (what happened, [24 h, 7 d, 30 d] availability, 24 h watched %),
    /// each figure exact to the second.
    #[test]
    fn availability_as_a_table() {
        let month = Some(NOW - 40 * DAY);
        let down = |from, to| span(Kind::Down, from, Some(to));
        type Case = (&'static str, History, [&'static str; 3], u32);
        let cases: Vec<Case> = vec![
            (
                "nothing happened",
                history(month, vec![]),
                ["100.00", "100.00", "100.00"],
                100,
            ),
            (
                "never judged: nothing is known",
                history(None, vec![]),
                ["-", "-", "-"],
                0,
            ),
            (
                "864 s down in the last day is exactly 1 % of it",
                history(month, vec![down(NOW - 2000, NOW - 1136)]),
                // 7 d: 1 - 864/604800 = 99.857 %; 30 d: 1 - 864/2592000 = 99.966 %.
                ["99.00", "99.85", "99.96"],
                100,
            ),
            (
                "one second more shows",
                history(month, vec![down(NOW - 2000, NOW - 1135)]),
                ["98.99", "99.85", "99.96"],
                100,
            ),
            (
                "one second of downtime is never 100 %",
                history(month, vec![down(NOW - 10, NOW - 9)]),
                ["99.99", "99.99", "99.99"],
                100,
            ),
            (
                "an outage still going on counts until now",
                history(month, vec![span(Kind::Down, NOW - 864, None)]),
                ["99.00", "99.85", "99.96"],
                100,
            ),
            (
                "an outage before the window does not count in it",
                history(month, vec![down(NOW - 2 * DAY, NOW - 2 * DAY + 6048)]),
                ["100.00", "99.00", "99.76"],
                100,
            ),
            (
                "a silenced outage is not downtime, and not counted time either",
                history(
                    month,
                    vec![
                        down(NOW - 3600, NOW - 1800),
                        span(Kind::Silenced, NOW - 4000, Some(NOW - 1000)),
                    ],
                ),
                ["100.00", "100.00", "100.00"],
                // 3000 s of 86400 not counted.
                97,
            ),
            (
                "an outage that outlasts its silence counts after it",
                history(
                    month,
                    vec![
                        down(NOW - 3600, NOW - 2736),
                        span(Kind::Silenced, NOW - 7200, Some(NOW - 3600 + 432)),
                    ],
                ),
                // 432 s down of 86400 - 3600 - 432 counted: 1 - 432/82368.
                ["99.47", "99.92", "99.98"],
                95,
            ),
            (
                "monitoring off is neither up nor down",
                history(month, vec![span(Kind::Off, NOW - 12 * HOUR, None)]),
                ["100.00", "100.00", "100.00"],
                50,
            ),
            (
                "known only for the last 12 h: the share is of what is known",
                history(Some(NOW - 12 * HOUR), vec![down(NOW - 1000, NOW - 568)]),
                ["99.00", "99.00", "99.00"],
                50,
            ),
            (
                "overlapping records of one outage count once",
                history(
                    month,
                    vec![down(NOW - 2000, NOW - 1136), down(NOW - 1500, NOW - 1200)],
                ),
                ["99.00", "99.85", "99.96"],
                100,
            ),
            (
                "a silence planned beyond now counts until now",
                history(
                    month,
                    vec![span(Kind::Silenced, NOW - 3600, Some(NOW + 3 * HOUR))],
                ),
                ["100.00", "100.00", "100.00"],
                96,
            ),
        ];
        for (name, h, expected, watched) in cases {
            let report = h.report(NOW, 3);
            let got = report.windows.map(|t| shown(t.availability()));
            assert_eq!(got, expected.map(String::from), "{name}");
            assert_eq!(report.windows[0].watched(), watched, "{name}: watched");
            // Every second of the window is accounted for exactly once.
            for (tally, window) in report.windows.iter().zip(WINDOWS) {
                let t = tally;
                assert_eq!(
                    t.up + t.down + t.silenced + t.off + t.unknown,
                    window,
                    "{name}"
                );
            }
        }
    }

    #[test]
    fn the_strip_has_one_cell_an_hour_oldest_first() {
        let h = history(
            Some(NOW - 20 * HOUR),
            vec![
                span(Kind::Down, NOW - 90 * 60, Some(NOW - 80 * 60)),
                span(Kind::Silenced, NOW - 5 * HOUR, Some(NOW - 3 * HOUR)),
                // An hour mostly up with a short silence in it is shown silenced.
                span(Kind::Silenced, NOW - 30 * 60, Some(NOW - 20 * 60)),
                span(Kind::Off, NOW - 10 * HOUR, Some(NOW - 8 * HOUR - 1)),
            ],
        );
        let strip = h.report(NOW, 3).strip;
        use Class::*;
        let mut expected = [Up; 24];
        for cell in expected.iter_mut().take(4) {
            *cell = Unknown;
        }
        // NOW-10h..NOW-8h is off; the hour that ends NOW-8h has a second up.
        expected[14] = Off;
        expected[19] = Silenced;
        expected[20] = Silenced;
        expected[22] = Down;
        expected[23] = Silenced;
        assert_eq!(strip, expected);
    }

    #[test]
    fn last_outages_newest_first_with_what_counted() {
        let mut h = history(Some(NOW - DAY), vec![]);
        h.begin(Kind::Down, NOW - 5000, Some("refused"));
        h.end(Kind::Down, NOW - 4000);
        h.plan(Kind::Silenced, NOW - 3000, NOW - 2000);
        h.begin(Kind::Down, NOW - 2500, Some("HTTP 503"));
        h.end(Kind::Down, NOW - 1500);
        h.begin(Kind::Down, NOW - 100, Some("timeout"));
        let outages = h.report(NOW, 2).outages;
        assert_eq!(
            outages,
            vec![
                Outage {
                    from: NOW - 100,
                    to: None,
                    cause: Some("timeout".into()),
                    counted: 100
                },
                Outage {
                    from: NOW - 2500,
                    to: Some(NOW - 1500),
                    cause: Some("HTTP 503".into()),
                    counted: 500
                },
            ]
        );
    }

    #[test]
    fn spans_begin_once_and_end_once() {
        let mut h = History::default();
        h.begin(Kind::Down, 10, Some("a"));
        h.begin(Kind::Down, 12, Some("b")); // already open: nothing
        h.end(Kind::Down, 20);
        h.begin(Kind::Down, 20, Some("c")); // the next one, with its own cause
        h.end(Kind::Down, 30);
        h.end(Kind::Down, 40); // none open: nothing
        let down = |from, to, cause: &str| Span {
            kind: Kind::Down,
            from,
            to: Some(to),
            cause: Some(cause.into()),
        };
        assert_eq!(h.spans, vec![down(10, 20, "a"), down(20, 30, "c")]);
        h.plan(Kind::Silenced, 50, 100);
        h.plan(Kind::Silenced, 50, 150); // extended
        h.plan(Kind::Silenced, 50, 70); // cut short
        assert_eq!(h.spans[2], span(Kind::Silenced, 50, Some(70)));
        h.begin(Kind::Down, 80, Some(&"x".repeat(500)));
        assert_eq!(h.spans[3].cause.as_ref().unwrap().len(), CAUSE_CHARS);
    }

    #[test]
    fn history_is_bounded_and_what_is_forgotten_is_unknown() {
        let mut h = history(Some(0), vec![]);
        for i in 0..(KEEP_SPANS as u64 + 100) {
            h.begin(Kind::Down, NOW - 100_000 + i * 10, None);
            h.end(Kind::Down, NOW - 100_000 + i * 10 + 5);
        }
        assert_eq!(h.spans.len(), KEEP_SPANS);
        // The 100 oldest outages are gone, and so is what is known of their time.
        assert_eq!(h.known_from, Some(NOW - 100_000 + 99 * 10 + 5));
        assert_eq!(h.spans[0].from, NOW - 100_000 + 1000);

        let mut old = history(Some(0), vec![span(Kind::Down, 100, Some(200))]);
        old.begin(Kind::Off, NOW, None);
        assert_eq!(old.spans, vec![span(Kind::Off, NOW, None)]);
        assert_eq!(old.known_from, Some(200));
        // An outage still going on is never forgotten, however old.
        let mut open = history(Some(0), vec![span(Kind::Down, 100, None)]);
        open.prune(NOW);
        assert_eq!(open.spans.len(), 1);
    }
}
