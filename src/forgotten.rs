//! Forgotten conferences (SPEC §7.6, §8.1): finding them (participant lists
//! read a few at a time), the scheduled scan's decision as a pure function
//! (`Plan::decide`), and the scan itself, run by the server's thread: push
//! each newly forgotten conference to the operators once, forget those that
//! recovered, stop those still forgotten `auto_stop_after` after their alert.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::audit;
use crate::clock::Now;
use crate::config::{ForgottenRule, Server};
use crate::fetch::{FetchJob, FetchPool};
use crate::html::{escape, shorten};
use crate::notify::{self, NotifyCmd};
use crate::screen::{self, Entry, Rule};
use crate::shared::Shared;
use crate::trueconf::{Call, Participant, Recording, Stopped, TrueConf};

/// More newly forgotten conferences than this in one scan are announced in
/// one summary with a button to the list, not one push each.
const FLOOD: usize = 3;
/// At most this many conference objects are read per search to tell
/// whether a forgotten conference is being recorded (item 12).
const RECORDING_READS: usize = 16;

/// Up to this many participant lists of a scheduled scan are read one after
/// another over the scan's own connection. Read in parallel, each would
/// open a connection of its own with a TLS handshake (most of a scan's CPU),
/// and nobody waits for a scheduled scan. After a read that fails, the rest
/// go to the fetchers.
const ONE_BY_ONE: usize = 4;

/// Whether someone waits for a search.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pace {
    /// A screen: every participant list at once, on the fetchers.
    Waited,
    /// A scheduled scan: a few one by one (`ONE_BY_ONE`) until one fails,
    /// more (or the rest) on the fetchers.
    Background,
}

/// A running conference that looks forgotten, or whose participants could
/// not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub call: Call,
    /// The rule it matched (SPEC §7.6); `None`: its participants could not
    /// be read, so it is shown as unknown and never stopped automatically.
    pub rule: Option<Rule>,
    /// Being recorded (read for forgotten ones with a conference id).
    pub recording: Option<Recording>,
}

impl Found {
    /// How a list or a push shows it.
    pub fn entry(&self) -> Entry<'_> {
        Entry {
            call: &self.call,
            unknown: self.rule.is_none(),
            rule: self.rule,
            recording: self.recording,
        }
    }

    /// Whether automatic stop may end it (`[forgotten] auto_stop_rules`).
    pub fn covered(&self, rules: &[ForgottenRule]) -> bool {
        self.rule.is_some_and(|r| rules.contains(&r.kind))
    }
}

/// The forgotten rule a conference's participants match (SPEC §7.6): nobody
/// left, only one participant left who is a leader, or participants but no
/// leader. People who left are not counted; a participant without a
/// readable role is not a leader. `None`: not forgotten.
pub fn judge(present: &[Participant]) -> Option<Rule> {
    let leaders = present.iter().filter(|p| p.is_leader()).count();
    let kind = match (present.len(), leaders) {
        (0, _) => ForgottenRule::Empty,
        (1, 1) => ForgottenRule::OwnerAlone,
        (_, 0) => ForgottenRule::NoLeader,
        _ => return None,
    };
    Some(Rule {
        kind,
        participants: present.len(),
    })
}

/// Running conferences older than `threshold` that look forgotten, each with
/// the rule it matched, or unknown when its participants could not be read.
/// A session the server no longer knows is left out (R4). Forgotten ones
/// with a conference id are asked whether they are being recorded (at most
/// `RECORDING_READS` of them), except the sessions in `known` (a scan knows
/// the ones it pushed already: it needs no recording for them). The
/// requests run on the shared fetchers, or as `pace` says.
pub fn find(
    (pool, pace): (&FetchPool, Pace),
    client: &Arc<TrueConf>,
    calls: Vec<Call>,
    threshold: Duration,
    known: &BTreeMap<String, u64>,
) -> Vec<Found> {
    let old: Vec<Call> = calls
        .into_iter()
        .filter(|c| Duration::from_secs(c.duration) >= threshold)
        .collect();
    let verdicts: Arc<Mutex<Vec<Option<Verdict>>>> = Arc::new(Mutex::new(vec![None; old.len()]));
    let recording_reads = Arc::new(AtomicUsize::new(0));
    let jobs: Vec<FetchJob> = old
        .iter()
        .enumerate()
        .map(|(i, call)| {
            let (client, verdicts) = (client.clone(), verdicts.clone());
            let reads = recording_reads.clone();
            let session = call.session_id.clone();
            let conference = call
                .conference_id
                .clone()
                .filter(|_| !known.contains_key(&call.session_id));
            Box::new(move || {
                let verdict = match client.participants(&session) {
                    Ok(presence) => match presence.present() {
                        // The server does not know it: not running at all.
                        None => Verdict::Gone,
                        Some(present) => match judge(&present) {
                            None => Verdict::Alive,
                            Some(rule) => {
                                let recording = conference.as_deref().and_then(|id| {
                                    if reads.fetch_add(1, Ordering::Relaxed) >= RECORDING_READS {
                                        return None;
                                    }
                                    client.recording(id).ok().flatten()
                                });
                                Verdict::Forgotten(rule, recording)
                            }
                        },
                    },
                    Err(_) => Verdict::Unknown,
                };
                let mut all = verdicts.lock().unwrap_or_else(|p| p.into_inner());
                all[i] = Some(verdict);
            }) as FetchJob
        })
        .collect();
    let mut jobs = jobs.into_iter().enumerate();
    if pace == Pace::Background && old.len() <= ONE_BY_ONE {
        // Until one read fails: an API that hangs then holds the server
        // thread (and the screens waiting on it) for one timeout and the
        // rest in parallel, not for one timeout per conference.
        for (i, job) in jobs.by_ref() {
            job();
            let failed = matches!(
                verdicts.lock().unwrap_or_else(|p| p.into_inner())[i],
                Some(Verdict::Unknown)
            );
            if failed {
                break;
            }
        }
    }
    pool.run_all(jobs.map(|(_, job)| job).collect());
    let verdicts = verdicts.lock().unwrap_or_else(|p| p.into_inner()).clone();
    old.into_iter()
        .zip(verdicts)
        .filter_map(|(call, v)| {
            let (rule, recording) = match v {
                Some(Verdict::Forgotten(rule, recording)) => (Some(rule), recording),
                Some(Verdict::Unknown) | None => (None, None),
                Some(Verdict::Alive | Verdict::Gone) => return None,
            };
            Some(Found {
                call,
                rule,
                recording,
            })
        })
        .collect()
}

#[derive(Clone, Copy, Debug)]
enum Verdict {
    Forgotten(Rule, Option<Recording>),
    Alive,
    Unknown,
    Gone,
}

/// What one scheduled scan does, decided from the marks of earlier scans
/// (session id → when its alert went out, unix ms) and what it found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// The marks to keep (the stops in `due` add theirs by outcome).
    pub keep: BTreeMap<String, u64>,
    /// Newly forgotten: tell the operators (indexes into `found`).
    pub fresh: Vec<usize>,
    /// Forgotten for the whole grace since their alert: stop them now.
    pub due: Vec<usize>,
}

impl Plan {
    /// `found` as `find` returns it; `rules`: the kinds automatic stop may end.
    /// `monos` holds the monotonic reading of each mark this process made:
    /// a conference is due only when the grace has passed by both clocks
    /// (`Elapsed::at_least`), so a wall clock jumping ahead never stops
    /// one early.
    pub fn decide(
        alerted: &BTreeMap<String, u64>,
        monos: &HashMap<String, u64>,
        found: &[Found],
        now: Now,
        grace: Option<Duration>,
        rules: &[ForgottenRule],
    ) -> Plan {
        let now_ms = now.wall_ms;
        let mut plan = Plan::default();
        for (i, f) in found.iter().enumerate() {
            let (call, unknown) = (&f.call, f.rule.is_none());
            let id = &call.session_id;
            match (alerted.get(id), unknown) {
                // Unreadable ones keep their mark, and get none.
                (Some(&at), true) => {
                    plan.keep.insert(id.clone(), at);
                }
                (None, true) => {}
                (None, false) => {
                    plan.fresh.push(i);
                    plan.keep.insert(id.clone(), now_ms);
                }
                (Some(&at), false) => {
                    let waited = now.since(at, monos.get(id).copied()).at_least();
                    let due = grace.is_some_and(|grace| waited >= grace);
                    // One without an id cannot be stopped, and one that no
                    // rule of auto_stop_rules covers (people may be in a
                    // meeting) is not: it keeps its mark.
                    if due && call.conference_id.is_some() && f.covered(rules) {
                        plan.due.push(i);
                    } else {
                        plan.keep.insert(id.clone(), at);
                    }
                }
            }
        }
        // Recovered and ended ones are not in `found`: they lose their mark.
        plan
    }
}

/// The monotonic readings of the forgotten marks this process made (the
/// marks themselves, in wall ms, are in state.json).
pub type Monos = HashMap<String, u64>;

/// The scheduled scan of one server.
pub fn scan(
    shared: &Shared,
    server: &Server,
    (pool, client): (&FetchPool, &Arc<TrueConf>),
    notifier: &Sender<NotifyCmd>,
    monos: &mut Monos,
) {
    let settings = &shared.settings;
    if server.monitoring_only() {
        // No credentials: nothing to scan (said once at start).
        return;
    }
    let calls = match client.running_conferences() {
        Ok(calls) => calls,
        Err(p) => {
            log::warn!("server '{}': forgotten scan failed: {p}", server.name);
            return;
        }
    };
    let alerted = shared.store.server(&server.name).forgotten_alerted;
    let found = find(
        (pool, Pace::Background),
        client,
        calls,
        settings.forgotten.after,
        &alerted,
    );
    let now = Now::read();
    let grace = settings.forgotten.auto_stop_after;
    let rules = &settings.forgotten.auto_stop_rules;
    let mut plan = Plan::decide(&alerted, monos, &found, now, grace, rules);
    for &i in &plan.due {
        let call = &found[i].call;
        if !auto_stop(shared, server, client, call) {
            // Try again after another grace time, not at every scan.
            plan.keep.insert(call.session_id.clone(), now.wall_ms);
            monos.insert(call.session_id.clone(), now.mono_ms);
        }
    }
    monos.retain(|id, _| plan.keep.contains_key(id));
    for &i in &plan.fresh {
        monos.insert(found[i].call.session_id.clone(), now.mono_ms);
    }
    if !plan.due.is_empty() {
        let _ = notifier.send(NotifyCmd::Wake);
    }
    if !plan.fresh.is_empty() {
        log::info!(
            "server '{}': {} conference(s) became forgotten; telling the operators",
            server.name,
            plan.fresh.len()
        );
    }
    // The marks and the alerts in one update: a restart neither repeats
    // nor loses an alert.
    shared.store.update(|d| {
        d.servers
            .entry(server.name.clone())
            .or_default()
            .forgotten_alerted = plan.keep;
        for place in shared.recipients(d, &settings.operators) {
            let tr = shared.tr_for(d, place.chat);
            if plan.fresh.len() > FLOOD {
                // The auto-stop warning only when a rule covers one of them.
                let covered = plan.fresh.iter().any(|&i| found[i].covered(rules));
                let grace = grace.filter(|_| covered);
                let screen = screen::scan_flood(tr, server, plan.fresh.len(), grace);
                notify::enqueue(d, place, screen.text, Some(screen.keyboard));
                continue;
            }
            for &i in &plan.fresh {
                // The auto-stop warning only for one a rule covers.
                let grace = grace.filter(|_| found[i].covered(rules));
                let screen = screen::scan_alert(tr, server, &found[i].entry(), grace);
                notify::enqueue(d, place, screen.text, Some(screen.keyboard));
            }
        }
    });
    if !plan.fresh.is_empty() {
        let _ = notifier.send(NotifyCmd::Wake);
    }
}

/// Stops a forgotten conference and tells the operators; false when the stop failed.
fn auto_stop(shared: &Shared, server: &Server, client: &TrueConf, call: &Call) -> bool {
    let id = call.conference_id.clone().unwrap_or_default();
    let result = client.stop(&id);
    let outcome = match &result {
        Ok(Stopped::Stopped) => "stopped".to_string(),
        // It ended by itself meanwhile: no failure (R1).
        Ok(Stopped::AlreadyEnded) => "already_ended".to_string(),
        Err(p) => format!("failed: {p}"),
    };
    log::info!(
        "server '{}': automatic stop of a forgotten conference: {outcome}",
        server.name
    );
    audit::append(
        &shared.settings.state_dir,
        &audit::Record::automatic(&server.name, Some(&id), "stop", &outcome),
    );
    let (name, eid) = (
        escape(&shorten(&server.name, 100)),
        escape(&shorten(&id, 128)),
    );
    shared.store.update(|d| {
        for place in shared.recipients(d, &shared.settings.operators) {
            let tr = shared.tr_for(d, place.chat);
            let text = match &result {
                Ok(Stopped::Stopped) => tr.f("auto_stop_done", &[("name", &name), ("id", &eid)]),
                Ok(Stopped::AlreadyEnded) => {
                    tr.f("auto_stop_already", &[("name", &name), ("id", &eid)])
                }
                Err(p) => tr.f(
                    "auto_stop_failed",
                    &[
                        ("name", &name),
                        ("id", &eid),
                        ("reason", &screen::problem_text(tr, p)),
                    ],
                ),
            };
            notify::enqueue(d, place, text, None);
        }
    });
    result.is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(session: &str, with_id: bool) -> Call {
        let mut call = Call::default();
        call.session_id = session.into();
        call.conference_id = with_id.then(|| format!("c-{session}"));
        call
    }

    /// A found conference: forgotten by `rule`, or unknown (`None`).
    fn found(call: Call, rule: Option<ForgottenRule>) -> Found {
        Found {
            call,
            rule: rule.map(|kind| Rule {
                kind,
                participants: 0,
            }),
            recording: None,
        }
    }

    /// Forgotten as empty (`unknown` false), or unknown.
    fn f(call: Call, unknown: bool) -> Found {
        found(call, (!unknown).then_some(ForgottenRule::Empty))
    }

    const RULES: [ForgottenRule; 2] = ForgottenRule::DEFAULT_AUTO_STOP;

    const MIN: u64 = 60_000;

    /// (marks before, found, now, grace) → (fresh, due, marks kept).
    #[test]
    fn the_scan_decides_as_a_table() {
        let marks = |pairs: &[(&str, u64)]| -> BTreeMap<String, u64> {
            pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
        };
        let grace = Some(Duration::from_millis(10 * MIN));
        let now = 100 * MIN;
        type Case<'a> = (
            &'a str,
            BTreeMap<String, u64>,
            Vec<Found>,
            Option<Duration>,
            (Vec<usize>, Vec<usize>, BTreeMap<String, u64>),
        );
        let cases: Vec<Case> = vec![
            (
                "new ones are fresh and marked now",
                marks(&[]),
                vec![f(call("a", true), false)],
                grace,
                (vec![0], vec![], marks(&[("a", now)])),
            ),
            (
                "within the grace: kept with the old mark",
                marks(&[("a", now - 9 * MIN)]),
                vec![f(call("a", true), false)],
                grace,
                (vec![], vec![], marks(&[("a", now - 9 * MIN)])),
            ),
            (
                "after the grace: due, and no mark until the stop says",
                marks(&[("a", now - 10 * MIN)]),
                vec![f(call("a", true), false)],
                grace,
                (vec![], vec![0], marks(&[])),
            ),
            (
                "no auto-stop: never due",
                marks(&[("a", 0)]),
                vec![f(call("a", true), false)],
                None,
                (vec![], vec![], marks(&[("a", 0)])),
            ),
            (
                "no conference id: cannot be stopped, keeps its mark",
                marks(&[("a", 0)]),
                vec![f(call("a", false), false)],
                grace,
                (vec![], vec![], marks(&[("a", 0)])),
            ),
            (
                "unknown participants keep a mark and get none",
                marks(&[("a", 5)]),
                vec![f(call("a", true), true), f(call("b", true), true)],
                grace,
                (vec![], vec![], marks(&[("a", 5)])),
            ),
            (
                "recovered or ended ones lose their mark",
                marks(&[("gone", 5)]),
                vec![],
                grace,
                (vec![], vec![], marks(&[])),
            ),
            (
                "a mark from the future (clock set back) is not due",
                marks(&[("a", now + 60 * MIN)]),
                vec![f(call("a", true), false)],
                grace,
                (vec![], vec![], marks(&[("a", now + 60 * MIN)])),
            ),
            (
                "no leader is pushed but not stopped by the default rules",
                marks(&[("a", 0)]),
                vec![found(call("a", true), Some(ForgottenRule::NoLeader))],
                grace,
                (vec![], vec![], marks(&[("a", 0)])),
            ),
            (
                "only the owner left is stopped by the default rules",
                marks(&[("a", 0)]),
                vec![found(call("a", true), Some(ForgottenRule::OwnerAlone))],
                grace,
                (vec![], vec![0], marks(&[])),
            ),
        ];
        // The process started long before; every mark here is from before it.
        let clock = Now {
            wall_ms: now,
            mono_ms: now,
            start_wall_ms: 0,
        };
        for (name, alerted, found, grace, (fresh, due, keep)) in cases {
            let plan = Plan::decide(&alerted, &Monos::new(), &found, clock, grace, &RULES);
            assert_eq!(plan, Plan { keep, fresh, due }, "{name}");
        }
    }

    #[test]
    fn a_wall_clock_jump_never_makes_auto_stop_act_before_its_grace() {
        let grace = Some(Duration::from_millis(10 * MIN));
        let found = vec![f(call("a", true), false)];
        let start = 1_000 * MIN;
        // Marked by this process 1 s ago (monotonic) …
        let monos: Monos = [("a".to_string(), 100 * MIN - 1000)].into();
        let marked = |wall: u64| -> BTreeMap<String, u64> { [("a".to_string(), wall)].into() };
        let at = |wall_ms: u64| Now {
            wall_ms,
            mono_ms: 100 * MIN,
            start_wall_ms: start,
        };
        let mark_wall = start + 100 * MIN - 1000;
        // … while the wall clock says a day has passed: not due.
        let plan = Plan::decide(
            &marked(mark_wall),
            &monos,
            &found,
            at(mark_wall + 1440 * MIN),
            grace,
            &RULES,
        );
        assert!(plan.due.is_empty(), "{plan:?}");
        // The wall clock an hour behind: not due either (it waits).
        let plan = Plan::decide(
            &marked(mark_wall),
            &monos,
            &found,
            at(mark_wall - 60 * MIN),
            grace,
            &RULES,
        );
        assert!(plan.due.is_empty(), "{plan:?}");
        // The grace passed by both clocks: due.
        let later = Now {
            wall_ms: mark_wall + 10 * MIN + 1000,
            mono_ms: 100 * MIN + 10 * MIN,
            start_wall_ms: start,
        };
        let plan = Plan::decide(&marked(mark_wall), &monos, &found, later, grace, &RULES);
        assert_eq!(plan.due, [0]);
        // A mark from before a restart on a router whose clock was set by
        // NTP a day ahead after the start: measured from the start, not due.
        let after_boot = Now {
            wall_ms: start + 1440 * MIN,
            mono_ms: 60_000,
            start_wall_ms: start,
        };
        let plan = Plan::decide(
            &marked(start - 1000),
            &Monos::new(),
            &found,
            after_boot,
            grace,
            &RULES,
        );
        assert!(plan.due.is_empty(), "{plan:?}");
    }

    #[test]
    fn the_rules_of_a_forgotten_conference() {
        let p = |role: Option<i64>| Participant { role, left: false };
        let rule = |present: &[Participant]| judge(present).map(|r| (r.kind, r.participants));
        type Case = (
            &'static str,
            Vec<Participant>,
            Option<(ForgottenRule, usize)>,
        );
        let cases: Vec<Case> = vec![
            ("nobody", vec![], Some((ForgottenRule::Empty, 0))),
            (
                "the owner alone",
                vec![p(Some(2))],
                Some((ForgottenRule::OwnerAlone, 1)),
            ),
            (
                "one ordinary participant",
                vec![p(Some(1))],
                Some((ForgottenRule::NoLeader, 1)),
            ),
            (
                "three without a leader",
                vec![p(Some(1)), p(Some(0)), p(None)],
                Some((ForgottenRule::NoLeader, 3)),
            ),
            ("a leader with others", vec![p(Some(2)), p(Some(1))], None),
            ("two leaders", vec![p(Some(2)), p(Some(2))], None),
            (
                "no readable role is no leader",
                vec![p(None), p(None)],
                Some((ForgottenRule::NoLeader, 2)),
            ),
        ];
        for (name, present, expected) in cases {
            assert_eq!(rule(&present), expected, "{name}");
        }
    }
}
