//! Every wait of the bot that is not a user's setting, in one value: request
//! timeouts, backoff steps, pacing and deadlines. Production uses the
//! defaults (today's numbers); tests set milliseconds through an
//! undocumented `[timing]` table of the settings, so that no test waits out a
//! production constant. Depends on nothing else in the crate.

use std::time::Duration;

/// The bot's waits. `Default` is what production runs with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timing {
    /// Opening a connection (TCP + TLS), any peer.
    pub connect: Duration,
    /// A whole TrueConf API request (SPEC §6: at most 15 s).
    pub request: Duration,
    /// A whole Telegram send, edit or answer.
    pub send: Duration,
    /// How much longer than the poll timeout a `getUpdates` may take.
    pub poll_grace: Duration,
    /// How long `/status` waits for the servers before answering without the slow ones.
    pub overview: Duration,
    /// How long `trueconf-bot check` may take in all, and one of its steps.
    pub check: Duration,
    pub check_step: Duration,
    /// Backoff after a failure: the first wait, doubling up to `backoff_max`.
    pub backoff_first: Duration,
    pub backoff_max: Duration,
    /// The longest `retry_after` a worker waits before it retries a screen.
    pub screen_retry_max: Duration,
    /// Pushed messages to one chat are at least this far apart.
    pub pace: Duration,
    /// A stranger is answered at most once in this time.
    pub denial_every: Duration,
    /// Polls that come back empty are at least this far apart (against a
    /// Bot API server that does not hold the long poll).
    pub poll_floor: Duration,
    /// What "1 h" of a maintenance silence lasts (the buttons offer 1, 4 and 24).
    pub silence_hour: Duration,
}

impl Default for Timing {
    fn default() -> Timing {
        Timing {
            connect: Duration::from_secs(5),
            request: Duration::from_secs(15),
            send: Duration::from_secs(20),
            poll_grace: Duration::from_secs(15),
            overview: Duration::from_secs(8),
            check: Duration::from_secs(18),
            check_step: Duration::from_secs(5),
            backoff_first: Duration::from_secs(1),
            backoff_max: Duration::from_secs(60),
            screen_retry_max: Duration::from_secs(5),
            pace: Duration::from_secs(1),
            denial_every: Duration::from_secs(60),
            poll_floor: Duration::from_secs(1),
            silence_hour: Duration::from_secs(3600),
        }
    }
}

impl Timing {
    /// The settings keys of `[timing]` (milliseconds) and the field each sets.
    pub const KEYS: &[&str] = &[
        "connect_ms",
        "request_ms",
        "send_ms",
        "poll_grace_ms",
        "overview_ms",
        "check_ms",
        "check_step_ms",
        "backoff_first_ms",
        "backoff_max_ms",
        "screen_retry_max_ms",
        "pace_ms",
        "denial_every_ms",
        "poll_floor_ms",
        "silence_hour_ms",
    ];

    /// The field a `[timing]` key names.
    pub fn field(&mut self, key: &str) -> Option<&mut Duration> {
        Some(match key {
            "connect_ms" => &mut self.connect,
            "request_ms" => &mut self.request,
            "send_ms" => &mut self.send,
            "poll_grace_ms" => &mut self.poll_grace,
            "overview_ms" => &mut self.overview,
            "check_ms" => &mut self.check,
            "check_step_ms" => &mut self.check_step,
            "backoff_first_ms" => &mut self.backoff_first,
            "backoff_max_ms" => &mut self.backoff_max,
            "screen_retry_max_ms" => &mut self.screen_retry_max,
            "pace_ms" => &mut self.pace,
            "denial_every_ms" => &mut self.denial_every,
            "poll_floor_ms" => &mut self.poll_floor,
            "silence_hour_ms" => &mut self.silence_hour,
            _ => return None,
        })
    }
}

/// Exponential backoff: `first` doubling to `max`, reset on success (SPEC §4).
#[derive(Clone, Debug)]
pub struct Backoff {
    first: Duration,
    max: Duration,
    failures: u32,
}

impl Backoff {
    pub fn new(timing: &Timing) -> Backoff {
        Backoff {
            first: timing.backoff_first,
            max: timing.backoff_max.max(timing.backoff_first),
            failures: 0,
        }
    }

    pub fn next_wait(&mut self) -> Duration {
        let wait = self.first.saturating_mul(1 << self.failures.min(16));
        self.failures = self.failures.saturating_add(1);
        wait.min(self.max)
    }

    pub fn reset(&mut self) {
        self.failures = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_a_minute() {
        let mut b = Backoff::new(&Timing::default());
        let waits: Vec<u64> = (0..8).map(|_| b.next_wait().as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 60, 60]);
        b.reset();
        assert_eq!(b.next_wait().as_secs(), 1);
        for _ in 0..100 {
            b.next_wait(); // never overflows
        }
        assert_eq!(b.next_wait().as_secs(), 60);
    }

    #[test]
    fn every_key_names_a_field() {
        let mut t = Timing::default();
        for key in Timing::KEYS {
            assert!(t.field(key).is_some(), "{key}");
        }
        assert!(t.field("nope").is_none());
    }
}
