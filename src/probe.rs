//! One thread per server (`probe-N`) probing `GET http://host:status_port/vsstatus`
//! every `timeout` seconds while monitoring is on (SPEC §7.8, §8.2). DOWN only
//! after `failures_before_down` failures in a row, UP on the first success
//! after it, optional reminders (`Judge`, a pure function). The judgement
//! and its alerts go into state.json in one update (the outbox); then the
//! notifier is woken. Never waits on Telegram. While a server is silenced
//! it is judged as ever, but no alert goes out; the prober wakes when the
//! silence ends and ends it (`silence::end_in`). Each judgement keeps the
//! availability history in step (`track`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::clock::{Now, Zone, now_unix_ms};
use crate::config::Server;
use crate::fetch::FetchPool;
use crate::history::Kind;
use crate::http::{Client, ClientSlot, Limits, Trust};
use crate::locale::Tr;
use crate::notify::NotifyCmd;
use crate::screen;
use crate::shared::Shared;
use crate::silence;
use crate::state::{Health, ServerState};
use crate::trueconf::{self, TrueConf, probe_status};

/// A command for a prober.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeCmd {
    /// Only wakes it: look at the monitoring switch again (the switch is in state.json).
    Wake,
    Quit,
}

/// What a probe result changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Alert {
    /// Down since `since` (the first failure of the run).
    Down { reason: String, since: u64 },
    /// Up again at `at`, after `down_for` seconds.
    Up { down_for: u64, at: u64 },
    /// Still down since `since`, for `down_for` seconds now.
    Reminder { down_for: u64, since: u64 },
}

/// The debounce: consecutive failures in memory, the judgement in `state`
/// (wall seconds). The monotonic readings of the marks this process made
/// are kept beside it, so that a wall clock that jumps neither repeats
/// nor silences reminders nor shows "down for 0 s" (`Now::since`).
#[derive(Debug, Default, Clone)]
pub struct Judge {
    failures: u32,
    /// The first failure of the current run: wall seconds, monotonic ms.
    first_failure: Option<(u64, u64)>,
    /// Monotonic ms of `state.since` and `state.last_alert`, when set here.
    since_mono: Option<u64>,
    last_alert_mono: Option<u64>,
}

impl Judge {
    /// Applies one probe result at `now` to `state`.
    pub fn step(
        &mut self,
        state: &mut ServerState,
        result: &Result<(), String>,
        now: Now,
        failures_before_down: u32,
        remind_every: Option<Duration>,
    ) -> Option<Alert> {
        let wall = now.wall();
        let down_for = |since: Option<u64>, mono: Option<u64>| {
            let since = since.unwrap_or(wall);
            now.since(since * 1000, mono).measured().as_secs()
        };
        match result {
            Ok(()) => {
                self.failures = 0;
                self.first_failure = None;
                match state.health {
                    Some(Health::Up) => None,
                    Some(Health::Down) => {
                        let down_for = down_for(state.since, self.since_mono);
                        state.health = Some(Health::Up);
                        state.since = Some(wall);
                        state.last_alert = None;
                        self.since_mono = Some(now.mono_ms);
                        self.last_alert_mono = None;
                        Some(Alert::Up { down_for, at: wall })
                    }
                    None => {
                        state.health = Some(Health::Up);
                        state.since = Some(wall);
                        self.since_mono = Some(now.mono_ms);
                        None
                    }
                }
            }
            Err(reason) => {
                self.failures = self.failures.saturating_add(1);
                let (first, first_mono) = *self.first_failure.get_or_insert((wall, now.mono_ms));
                match state.health {
                    Some(Health::Down) => {
                        let remind = remind_every?;
                        let last = state.last_alert.unwrap_or(0);
                        let quiet = now.since(last * 1000, self.last_alert_mono).measured();
                        // At least `remind_every`, and at most one a second.
                        if quiet >= remind.max(Duration::from_secs(1)) {
                            state.last_alert = Some(wall);
                            self.last_alert_mono = Some(now.mono_ms);
                            let since = state.since.unwrap_or(wall);
                            let down_for = down_for(state.since, self.since_mono);
                            Some(Alert::Reminder { down_for, since })
                        } else {
                            None
                        }
                    }
                    _ if self.failures >= failures_before_down => {
                        state.health = Some(Health::Down);
                        state.since = Some(first);
                        state.last_alert = Some(wall);
                        self.since_mono = Some(first_mono);
                        self.last_alert_mono = Some(now.mono_ms);
                        Some(Alert::Down {
                            reason: reason.clone(),
                            since: first,
                        })
                    }
                    _ => None,
                }
            }
        }
    }
}

/// What a prober's web/API check works with.
pub struct Helpers {
    /// The fetchers the check runs on.
    pub fetch: FetchPool,
    /// The server's API client: when its requests got answers lately, the
    /// check needs no request of its own.
    pub api: Arc<TrueConf>,
}

/// The prober of server `index`.
pub fn run(
    shared: Arc<Shared>,
    index: usize,
    notifier: Sender<NotifyCmd>,
    commands: Receiver<ProbeCmd>,
    helpers: Helpers,
) {
    let settings = &shared.settings;
    let server = &settings.servers[index];
    let limits = Limits::probe(server.probe_interval, &settings.timing);
    let client = Client::new(&Trust::BuiltIn, limits);
    let mut judge = Judge::default();
    // Probes are spread over the interval: prober i of N starts at
    // i·interval/N, so N servers are never probed at the same instant.
    let spread = server.probe_interval * index as u32 / settings.servers.len().max(1) as u32;
    match commands.recv_timeout(spread) {
        Ok(ProbeCmd::Quit) | Err(RecvTimeoutError::Disconnected) => return,
        Ok(ProbeCmd::Wake) | Err(RecvTimeoutError::Timeout) => {}
    }
    let web_every = settings.monitoring.api_check_every;
    let web = Arc::new(WebCheck {
        client: ClientSlot::new(&server.trust, limits),
        judge: Mutex::new(Judge::default()),
        busy: AtomicBool::new(false),
    });
    let mut next_web = Instant::now();
    loop {
        if !shared.store.monitoring(server) {
            judge = Judge::default();
            web.forget();
            unwatched(&shared, server);
            match commands.recv() {
                Ok(ProbeCmd::Wake) => continue,
                Ok(ProbeCmd::Quit) | Err(_) => return,
            }
        }
        let result = probe_status(&client, server);
        if let Err(why) = &result {
            log::debug!("server '{}': probe failed: {why}", server.name);
        }
        let monitoring = &settings.monitoring;
        let clock = Now::read();
        let now_ms = clock.wall_ms;
        let now = clock.wall();
        // The judgement of the server's entry, without telling anyone.
        let judged = |state: &mut ServerState, judge: &mut Judge| {
            state.history_end(Kind::Off, now);
            let alert = judge.step(
                state,
                &result,
                clock,
                monitoring.failures_before_down,
                monitoring.remind_every,
            );
            track(state, alert.as_ref(), now);
            alert
        };
        // Most probes change nothing (a server that is up stays up): tried
        // on a copy of the server's entry first, they need no update of the
        // whole state (which compares all of it: O(servers) per probe).
        let unchanged = shared.store.read(|d| {
            let state = d.servers.get(&server.name)?;
            let mut trial = judge.clone();
            if !state.monitoring.unwrap_or(server.monitor_at_start) {
                return Some(trial);
            }
            let mut copy = state.clone();
            let alert = judged(&mut copy, &mut trial);
            let ran_out = copy.silence.is_some() && !copy.silenced(now_ms);
            (alert.is_none() && !ran_out && copy == *state).then_some(trial)
        });
        // Else the judgement, its history and its alerts are written in one
        // store update, so that a restart can neither repeat the judgement
        // nor lose the alert.
        let (alert, told) = match unchanged {
            Some(trial) => {
                judge = trial;
                (None, false)
            }
            None => shared.store.update(|d| {
                let state = d.servers.entry(server.name.clone()).or_default();
                // Switched off while this probe was under way: the switch cleared
                // the judgement, and a late result must neither restore it nor alert.
                if !state.monitoring.unwrap_or(server.monitor_at_start) {
                    return (None, false);
                }
                let alert = judged(state, &mut judge);
                let quiet = state.silenced(now_ms);
                let ran_out = state.silence.is_some() && !quiet;
                let mut told = false;
                if let Some(alert) = alert.as_ref().filter(|_| !quiet) {
                    let down = !matches!(alert, Alert::Up { .. });
                    state.announced = Some(if down { Health::Down } else { Health::Up });
                    silence::alert_everyone(&shared, server, d, down, |tr| {
                        alert_text(tr, &settings.timezone, server, alert)
                    });
                    told = true;
                }
                // After the alert (if any): the end of the silence then finds
                // nothing new to tell, and says nothing twice.
                if ran_out {
                    told |= silence::end_in(&shared, server, d, now_ms);
                }
                (alert.map(|a| (a, quiet)), told)
            }),
        };
        if let Some((alert, quiet)) = alert {
            let held = if quiet { " (silenced: no alert)" } else { "" };
            match &alert {
                Alert::Down { reason, .. } => {
                    log::info!("server '{}' is DOWN: {reason}{held}", server.name)
                }
                Alert::Up { down_for, .. } => {
                    log::info!(
                        "server '{}' is UP again after {down_for} s{held}",
                        server.name
                    )
                }
                Alert::Reminder { .. } => {
                    log::info!("server '{}' is still DOWN{held}", server.name)
                }
            }
        }
        if told {
            let _ = notifier.send(NotifyCmd::Wake);
        }
        // Only while /vsstatus answers: when the core is down, DOWN says it all.
        if let (Some(every), Ok(())) = (web_every, &result) {
            if Instant::now() >= next_web {
                next_web = Instant::now() + every;
                web.start(&shared, index, (&helpers, every), &notifier);
            }
        }
        match commands.recv_timeout(next_wait(&shared, server)) {
            Ok(ProbeCmd::Wake) | Err(RecvTimeoutError::Timeout) => {}
            Ok(ProbeCmd::Quit) | Err(RecvTimeoutError::Disconnected) => return,
        }
    }
}

/// Until the next probe: the interval, or less when a silence ends sooner
/// (its end is told on time).
fn next_wait(shared: &Shared, server: &Server) -> Duration {
    let now_ms = now_unix_ms();
    let left = shared.store.read(|d| {
        let silence = d.servers.get(&server.name)?.silence.as_ref()?;
        Some(Duration::from_millis(
            silence.until_ms.saturating_sub(now_ms),
        ))
    });
    match left {
        // At least a millisecond: never a busy loop.
        Some(left) => server
            .probe_interval
            .min(left.max(Duration::from_millis(1))),
        None => server.probe_interval,
    }
}

/// Monitoring is off: the history says so from now on (once it knows the server).
fn unwatched(shared: &Shared, server: &Server) {
    let now = now_unix_ms() / 1000;
    shared.store.update(|d| {
        if let Some(state) = d.servers.get_mut(&server.name) {
            if state.history.known_from.is_some() {
                state.history_end(Kind::Down, now);
                state.history_begin(Kind::Off, now, None);
            }
        }
    });
}

/// Keeps the history in step with a judgement made at `now`: the health is
/// known from its first judgement; an outage begins where the judgement
/// dates it (the first failure) and ends with the UP. A DOWN persisted
/// before a restart goes on as the same outage.
pub fn track(state: &mut ServerState, alert: Option<&Alert>, now: u64) {
    let since = state.since.unwrap_or(now).min(now);
    if state.health.is_some() {
        state.history_know_from(since);
    }
    match alert {
        Some(Alert::Up { .. }) => state.history_end(Kind::Down, now),
        _ if state.health == Some(Health::Down) => {
            let cause = match alert {
                Some(Alert::Down { reason, .. }) => Some(reason.as_str()),
                _ => None,
            };
            state.history_begin(Kind::Down, since, cause);
        }
        _ => {}
    }
}

/// The web interface/API check of one server (R9): HTTPS with the server's
/// TLS trust, judged like a probe. It runs on a fetcher, not on the prober:
/// ureq and a TLS handshake are the deepest stack a prober would touch, and
/// a thread keeps what it touched for its whole life (100 probers: about
/// 3 MB). Its connection is let go after each check (a minute apart): 100
/// servers would otherwise hold 10 MB of idle connections.
struct WebCheck {
    client: ClientSlot,
    judge: Mutex<Judge>,
    /// A check is under way; the next one is not started before it ends.
    busy: AtomicBool,
}

impl WebCheck {
    /// Starts a check of server `index` on a fetcher, unless one is under
    /// way; the prober does not wait for it. When the server's API answered
    /// a scan or a screen within the last `every`, that answer is the check.
    fn start(
        self: &Arc<Self>,
        shared: &Arc<Shared>,
        index: usize,
        (helpers, every): (&Helpers, Duration),
        notifier: &Sender<NotifyCmd>,
    ) {
        if self.busy.swap(true, Ordering::AcqRel) {
            return;
        }
        let (check, shared, notifier) = (self.clone(), shared.clone(), notifier.clone());
        let api = helpers.api.clone();
        helpers.fetch.submit(Box::new(move || {
            let server = &shared.settings.servers[index];
            let result = if api.answered_within(every) {
                log::debug!(
                    "server '{}': web/API check: the API answered lately",
                    server.name
                );
                Ok(())
            } else {
                trueconf::web_check(&check.client.client(), server)
                    .map(|_| ())
                    .map_err(|p| p.to_string())
            };
            check.client.release();
            let told = {
                let mut judge = check.judge.lock().unwrap_or_else(|p| p.into_inner());
                step_web(&shared, server, &mut judge, &result)
            };
            check.busy.store(false, Ordering::Release);
            if told {
                let _ = notifier.send(NotifyCmd::Wake);
            }
        }));
    }

    /// Monitoring was switched off: the next judgement starts afresh.
    fn forget(&self) {
        *self.judge.lock().unwrap_or_else(|p| p.into_inner()) = Judge::default();
    }
}

/// Judges one web/API check result like a probe (the same debounce and
/// persistence, no reminders) and queues its alert; true when one went out.
fn step_web(shared: &Shared, server: &Server, judge: &mut Judge, web: &Result<(), String>) -> bool {
    let settings = &shared.settings;
    let alert = shared.store.update(|d| {
        let state = d.servers.entry(server.name.clone()).or_default();
        if !state.monitoring.unwrap_or(server.monitor_at_start) {
            return None;
        }
        // Never judged and answering: nothing to remember (and no write of
        // state.json for it).
        if state.web_health.is_none() && web.is_ok() {
            return None;
        }
        let mut judged = ServerState {
            health: state.web_health,
            since: state.web_since,
            last_alert: state.web_last_alert,
            ..ServerState::default()
        };
        let alert = judge.step(
            &mut judged,
            web,
            Now::read(),
            settings.monitoring.failures_before_down,
            None,
        );
        state.web_health = judged.health;
        state.web_since = judged.since;
        state.web_last_alert = judged.last_alert;
        let alert = alert?;
        // A maintenance silence holds this alert back too.
        if state.silenced(now_unix_ms()) {
            return None;
        }
        let down = !matches!(alert, Alert::Up { .. });
        silence::alert_everyone(shared, server, d, down, |tr| {
            web_alert_text(tr, &settings.timezone, server, &alert)
        });
        Some(alert)
    });
    match &alert {
        Some(Alert::Down { reason, .. }) => log::info!(
            "server '{}': the web interface/API does not answer: {reason}",
            server.name
        ),
        Some(_) => log::info!(
            "server '{}': the web interface/API answers again",
            server.name
        ),
        None => {}
    }
    alert.is_some()
}

/// The web/API alert in one language (R9).
pub fn web_alert_text(tr: Tr, zone: &Zone, server: &Server, alert: &Alert) -> String {
    let secs = Duration::from_secs;
    match alert {
        Alert::Down { reason, since } => {
            screen::alert_web_down(tr, server, &zone.when(*since, *since), reason)
        }
        Alert::Up { down_for, at }
        | Alert::Reminder {
            down_for,
            since: at,
        } => {
            let time = zone.when(*at, *at);
            screen::alert_duration(tr, "alert_web_up", server, &time, secs(*down_for))
        }
    }
}

/// The alert message in one language; it says when it was judged, so that
/// one delivered late (Telegram was down) does not mislead.
pub fn alert_text(tr: Tr, zone: &Zone, server: &Server, alert: &Alert) -> String {
    let secs = Duration::from_secs;
    match alert {
        Alert::Down { reason, since } => {
            screen::alert_down(tr, server, &zone.when(*since, *since), reason)
        }
        Alert::Up { down_for, at } => {
            let time = zone.when(*at, *at);
            screen::alert_duration(tr, "alert_up", server, &time, secs(*down_for))
        }
        Alert::Reminder { down_for, since } => {
            let time = zone.when(*since, since + down_for);
            screen::alert_duration(tr, "alert_reminder", server, &time, secs(*down_for))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Both clocks at `t` seconds (the process started at wall 0).
    fn at(t: u64) -> Now {
        Now {
            wall_ms: t * 1000,
            mono_ms: t * 1000,
            start_wall_ms: 0,
        }
    }

    /// `at(t)` with the wall clock moved by `jump` seconds.
    fn jumped(t: u64, jump: i64) -> Now {
        Now {
            wall_ms: (t as i64 + jump).max(0) as u64 * 1000,
            ..at(t)
        }
    }

    #[test]
    fn a_wall_clock_jumping_ahead_gives_no_burst_of_reminders_and_true_durations() {
        let (mut state, mut judge) = (ServerState::default(), Judge::default());
        let every = Some(Duration::from_secs(25));
        let mut alerts = Vec::new();
        for t in (0..=100u64).step_by(10) {
            // At t = 40 NTP moves the wall clock a day ahead.
            let now = if t >= 40 { jumped(t, 86_400) } else { at(t) };
            let r = if t < 90 { Err("x".to_string()) } else { Ok(()) };
            if let Some(a) = judge.step(&mut state, &r, now, 1, every) {
                alerts.push((t, a));
            }
        }
        let kinds: Vec<(u64, Option<u64>)> = alerts
            .iter()
            .map(|(t, a)| match a {
                Alert::Down { .. } => (*t, None),
                Alert::Reminder { down_for, .. } | Alert::Up { down_for, .. } => {
                    (*t, Some(*down_for))
                }
            })
            .collect();
        // Reminders stay 30 s apart; the UP says 90 s, not a day.
        assert_eq!(
            kinds,
            [(0, None), (30, Some(30)), (60, Some(60)), (90, Some(90))]
        );
    }

    #[test]
    fn a_wall_clock_jumping_back_silences_no_reminder_and_shows_no_zero_duration() {
        let (mut state, mut judge) = (ServerState::default(), Judge::default());
        let every = Some(Duration::from_secs(25));
        let mut alerts = Vec::new();
        for t in (0..=100u64).step_by(10) {
            // At t = 40 the wall clock is set an hour back.
            let now = if t >= 40 {
                jumped(t + 10_000, -3_600)
            } else {
                at(t + 10_000)
            };
            let r = if t < 90 { Err("x".to_string()) } else { Ok(()) };
            if let Some(a) = judge.step(&mut state, &r, now, 1, every) {
                alerts.push((t, a));
            }
        }
        let durations: Vec<(u64, u64)> = alerts
            .iter()
            .filter_map(|(t, a)| match a {
                Alert::Reminder { down_for, .. } | Alert::Up { down_for, .. } => {
                    Some((*t, *down_for))
                }
                Alert::Down { .. } => None,
            })
            .collect();
        assert_eq!(durations, [(30, 30), (60, 60), (90, 90)]);
    }

    fn run_probes(
        results: &[bool],
        n: u32,
        state: &mut ServerState,
        judge: &mut Judge,
    ) -> Vec<(u64, Alert)> {
        let mut alerts = Vec::new();
        for (t, ok) in results.iter().enumerate() {
            let r = if *ok {
                Ok(())
            } else {
                Err("refused".to_string())
            };
            if let Some(a) = judge.step(state, &r, at(t as u64 * 10), n, None) {
                alerts.push((t as u64 * 10, a));
            }
        }
        alerts
    }

    #[test]
    fn down_after_n_failures_up_on_first_success() {
        let (mut state, mut judge) = (ServerState::default(), Judge::default());
        let alerts = run_probes(
            &[true, false, false, false, true, true],
            2,
            &mut state,
            &mut judge,
        );
        assert_eq!(
            alerts,
            vec![
                (
                    20,
                    Alert::Down {
                        reason: "refused".into(),
                        since: 10
                    }
                ),
                (
                    40,
                    Alert::Up {
                        down_for: 30,
                        at: 40
                    }
                ),
            ]
        );
    }

    #[test]
    fn flapping_below_the_threshold_is_silent() {
        let (mut state, mut judge) = (ServerState::default(), Judge::default());
        let flaps: Vec<bool> = (0..50).map(|i| i % 2 == 0).collect();
        assert!(run_probes(&flaps, 2, &mut state, &mut judge).is_empty());
    }

    #[test]
    fn a_restart_while_down_gives_one_up_and_no_second_down() {
        let mut state = ServerState {
            health: Some(Health::Down),
            since: Some(0),
            ..Default::default()
        };
        let mut judge = Judge::default(); // new process: no memory of failures
        let alerts = run_probes(
            &[false, false, false, true, false],
            2,
            &mut state,
            &mut judge,
        );
        assert_eq!(
            alerts,
            vec![(
                30,
                Alert::Up {
                    down_for: 30,
                    at: 30
                }
            )]
        );
    }

    #[test]
    fn a_fractional_reminder_interval_is_never_shortened() {
        let (mut state, mut judge) = (ServerState::default(), Judge::default());
        let every = Some(Duration::from_millis(1500));
        let mut reminders = Vec::new();
        for t in 0..6u64 {
            if let Some(Alert::Reminder { .. }) =
                judge.step(&mut state, &Err("x".into()), at(t), 1, every)
            {
                reminders.push(t);
            }
        }
        assert_eq!(reminders, vec![2, 4]);
    }

    /// The judgements of `results` (one a second from `start`) with the
    /// history kept in step, as `track` does in the prober.
    fn judged(state: &mut ServerState, results: &[bool], start: u64) {
        let mut judge = Judge::default(); // a fresh process
        for (i, ok) in results.iter().enumerate() {
            let now = start + i as u64;
            let r = if *ok { Ok(()) } else { Err("refused".into()) };
            let alert = judge.step(state, &r, at(now), 2, None);
            track(state, alert.as_ref(), now);
        }
    }

    #[test]
    fn the_history_follows_the_judgement_and_a_restart_is_not_an_outage() {
        use crate::history::{Kind, Span};
        let mut state = ServerState::default();
        judged(&mut state, &[true, true, false, false, false, true], 100);
        let outage = Span {
            kind: Kind::Down,
            from: 102,
            to: Some(105),
            cause: Some("refused".into()),
        };
        assert_eq!(state.history.known_from, Some(100));
        assert_eq!(state.history.spans, vec![outage.clone()]);
        // A restart (a new Judge) while up: nothing new in the history.
        judged(&mut state, &[true, true], 200);
        assert_eq!(state.history.spans, vec![outage.clone()]);
        // Down before a restart, up after it: one outage from the first failure.
        judged(&mut state, &[false, false], 300);
        judged(&mut state, &[false, true], 400);
        assert_eq!(state.history.spans.len(), 2);
        assert_eq!(
            (state.history.spans[1].from, state.history.spans[1].to),
            (300, Some(401))
        );
        // From 100 to 401: 3 s and 101 s down, the rest up; before, unknown.
        let t = state.history.tally(0, 401);
        assert_eq!((t.up, t.down, t.unknown), (197, 104, 100));
    }

    #[test]
    fn reminders_repeat_while_down() {
        let (mut state, mut judge) = (ServerState::default(), Judge::default());
        let every = Some(Duration::from_secs(25));
        let mut alerts = Vec::new();
        for t in 0..8u64 {
            if let Some(a) = judge.step(&mut state, &Err("x".into()), at(t * 10), 1, every) {
                alerts.push((t * 10, a));
            }
        }
        assert_eq!(
            alerts,
            vec![
                (
                    0,
                    Alert::Down {
                        reason: "x".into(),
                        since: 0
                    }
                ),
                (
                    30,
                    Alert::Reminder {
                        down_for: 30,
                        since: 0
                    }
                ),
                (
                    60,
                    Alert::Reminder {
                        down_for: 60,
                        since: 0
                    }
                ),
            ]
        );
    }
}
