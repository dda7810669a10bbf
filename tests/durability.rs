//! Issue 13: months on a router. state.json survives kill -9 at any moment
//! without repeating an alert, one bot per state dir, the audit log rotates
//! and `/audit` reads across the boundary, and a long run in compressed time
//! (probes every 10 ms, scans every 100 ms, presses, Telegram faults) keeps
//! memory, file descriptors, threads, state.json and the outbox flat. The bot
//! runs as a real process wherever /proc figures or kill -9 are involved.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::harness::*;
use crate::support::fake_telegram::{FakeTelegram, Reply};
use crate::support::fake_trueconf::Conf;
use crate::support::wait_until;
use trueconf_bot::audit::{self, Record};
use trueconf_bot::callback::Press;
use trueconf_bot::config::short_key;
use trueconf_bot::state::StateData;

// ---------------------------------------------------------------------------
// Helpers

/// state.json as the bot will load it; fails the test when it does not parse.
#[track_caller]
fn load_state(state_dir: &Path) -> StateData {
    match std::fs::read_to_string(state_dir.join("state.json")) {
        Ok(text) => serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("state.json does not load ({e}):\n{text}")),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => StateData::default(),
        Err(e) => panic!("state.json cannot be read: {e}"),
    }
}

/// Names in the state dir that are temp files of state.json.
fn temp_files(state_dir: &Path) -> Vec<String> {
    std::fs::read_dir(state_dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("state.json.tmp"))
                .collect()
        })
        .unwrap_or_default()
}

/// A small fixed-seed generator (xorshift64*), for kill points and faults.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
    }
}

/// Paces a load or fault loop: returns after `d`, or earlier once `stop` is
/// set. Never used to wait for the bot.
fn pace(stop: &AtomicBool, d: Duration) {
    wait_until(d, || stop.load(Ordering::Relaxed));
}

// ---------------------------------------------------------------------------
// Kill -9 during a burst of writes

/// Which alert a line of a pushed message is.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Down,
    Up,
}

/// An alert: (chat, server, kind). Each server goes down once and comes up
/// once, so each key is one alert.
type AlertKey = (i64, String, Kind);

/// The alert a text (a message's plain text, or an outbox entry's HTML) is
/// about: the server named `srv-NN` in it, and DOWN or UP.
fn alert_of(text: &str) -> Option<(String, Kind)> {
    let at = text.find("srv-")?;
    let name = text.get(at..at + 6)?.to_string();
    let kind = if text.contains(" is DOWN") {
        Kind::Down
    } else if text.contains(" is UP again") {
        Kind::Up
    } else {
        return None;
    };
    Some((name, kind))
}

/// The alerts in a message: merged ones are separated by a blank line.
fn alerts_in(chat: i64, text: &str) -> Vec<AlertKey> {
    text.split("\n\n")
        .filter_map(alert_of)
        .map(|(name, kind)| (chat, name, kind))
        .collect()
}

/// Every alert delivered so far, with how often.
fn delivered(tg: &FakeTelegram, chats: &[i64]) -> BTreeMap<AlertKey, usize> {
    let mut seen = BTreeMap::new();
    for &chat in chats {
        for m in tg.messages(chat) {
            for key in alerts_in(chat, &m.plain) {
                *seen.entry(key).or_default() += 1;
            }
        }
    }
    seen
}

/// The alerts of the last sendMessage that carried any: the only send that
/// can have been under way when the bot was killed.
fn last_alert_send(tg: &FakeTelegram) -> Vec<AlertKey> {
    tg.calls_to("sendmessage")
        .iter()
        .rev()
        .filter_map(|c| {
            let chat = c.int("chat_id")?;
            let found = alerts_in(chat, &c.str("text")?);
            (!found.is_empty()).then_some(found)
        })
        .next()
        .unwrap_or_default()
}

/// Whether state.json shows the server judged `health` ("up"/"down").
fn judged(state_dir: &Path, server: &str, health: &str) -> bool {
    let Ok(text) = std::fs::read_to_string(state_dir.join("state.json")) else {
        return false;
    };
    let Ok(data) = serde_json::from_str::<serde_json::Value>(&text) else {
        return false;
    };
    data["servers"][server]["health"].as_str() == Some(health)
}

#[test]
fn killed_at_random_points_during_a_burst_of_writes_the_state_loads_and_no_alert_repeats() {
    const SERVERS: usize = 10;
    const KILLS: usize = 2 * SERVERS;
    let servers: Vec<Srv> = (0..SERVERS)
        .map(|i| Srv::new(&format!("srv-{i:02}")).monitored(0.01))
        .collect();
    let d = Deployed::new(servers);
    let (tg, state_dir) = (&d.tg, d.state_dir());
    let chats = [OP, OP2, VIEWER];
    let mut rng = Rng(0x13_0003);
    let mut allowed: BTreeSet<AlertKey> = BTreeSet::new();
    let mut kills_in_flight = 0;
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        // The burst: a press every few ms, so every poll batch writes the
        // last update id, besides the judgements and the outbox.
        s.spawn(|| {
            let nothing = Press::Nothing.encode();
            while !stop.load(Ordering::Relaxed) {
                tg.push_callback(OP2, OP2, 1, &nothing, None);
                pace(&stop, Duration::from_millis(5));
            }
        });
        for round in 0..KILLS {
            let mut bot = d.start();
            // Server n goes down in round n and comes back in round n + 10;
            // the round goes on once the judgement is in state.json.
            let (index, up) = (round % SERVERS, round >= SERVERS);
            let name = format!("srv-{index:02}");
            d.servers[index].fake.set_up(up);
            let health = if up { "up" } else { "down" };
            assert!(
                wait_until(WAIT, || judged(&state_dir, &name, health)),
                "{name} was not judged {health}:\n{}",
                d.log()
            );
            // Then a random number of further poll batches, and kill -9.
            let polls = tg.calls_to("getupdates").len() + 1 + rng.below(12) as usize;
            tg.wait_count(WAIT, "getupdates", polls);
            bot.kill9();

            let state = load_state(&state_dir);
            assert!(
                !state_dir.join("state.json.corrupt").exists(),
                "round {round}: state.json was set aside:\n{}",
                d.log()
            );
            let temps = temp_files(&state_dir);
            assert!(temps.len() <= 1, "round {round}: temp files {temps:?}");
            // What the restarted bot will send again: delivered alerts still
            // in the outbox. Only the send under way at the kill may be among
            // them (Telegram has no way to ask whether it arrived).
            let sent = delivered(tg, &chats);
            let again: BTreeSet<AlertKey> = state
                .outbox
                .iter()
                .flat_map(|o| alerts_in(o.chat_id, &o.text))
                .filter(|key| sent.contains_key(key))
                .collect();
            let in_flight: BTreeSet<AlertKey> = last_alert_send(tg).into_iter().collect();
            assert!(
                again.is_subset(&in_flight),
                "round {round}: delivered alerts {again:?} are still in the outbox, \
                 but only {in_flight:?} was under way"
            );
            if !again.is_empty() {
                kills_in_flight += 1;
            }
            allowed.extend(again);
        }
        stop.store(true, Ordering::Relaxed);
    });

    // A last start: it sends what is left, and every server is up.
    let _bot = d.start();
    assert!(temp_files(&state_dir).is_empty(), "temp files stayed");
    let all_up = (0..SERVERS).all(|i| judged(&state_dir, &format!("srv-{i:02}"), "up"));
    assert!(all_up, "{}", d.log());
    assert!(
        wait_until(WAIT, || load_state(&state_dir).outbox.is_empty()),
        "the outbox was not delivered:\n{}",
        d.log()
    );
    // Every alert is there once; one under way at a kill at most twice.
    let sent = delivered(tg, &chats);
    for &chat in &chats {
        for i in 0..SERVERS {
            for kind in [Kind::Down, Kind::Up] {
                let key = (chat, format!("srv-{i:02}"), kind);
                let most = if allowed.contains(&key) { 2 } else { 1 };
                let count = sent.get(&key).copied().unwrap_or(0);
                assert!(
                    (1..=most).contains(&count),
                    "{key:?} delivered {count} times; allowed at most {most}"
                );
            }
        }
    }
    assert!(!d.log().contains("internal error"), "{}", d.log());
    eprintln!(
        "{KILLS} kills; {kills_in_flight} while a send was under way ({} alerts sent again)",
        allowed.len()
    );
}

// ---------------------------------------------------------------------------
// One bot per state dir

#[test]
fn a_second_bot_on_the_same_state_dir_exits_at_once_and_the_first_goes_on_serving() {
    let d = Deployed::new(vec![Srv::new("Main")]);
    let mut first = d.start();
    let get_me = d.tg.calls_to("getme").len();

    let mut second = bin()
        .arg("--config")
        .arg(&d.settings)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    assert!(
        wait_until(WAIT, || second.try_wait().unwrap().is_some()),
        "the second bot is still running"
    );
    let out = second.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let expected = format!(
        "another trueconf-bot (pid {}) uses {}",
        first.pid(),
        d.state_dir().display()
    );
    assert!(stderr.contains(&expected), "{stderr}");
    // It never reached Telegram, so it took no updates from the first one.
    assert_eq!(d.tg.calls_to("getme").len(), get_me);

    // The first one goes on serving.
    assert!(first.alive());
    d.tg.start_chat(OP);

    // A lock left by a bot killed with -9 does not keep the next one out.
    first.kill9();
    let _next = d.start();
    let lock = std::fs::read_to_string(d.state_dir().join(".lock")).unwrap();
    assert_eq!(lock.trim(), _next.pid().to_string());
}

// ---------------------------------------------------------------------------
// Audit log rotation

#[test]
fn the_audit_log_rotates_at_1_mib_and_audit_reads_across_the_boundary() {
    let bot = Bot::start(vec![Srv::new("Main")]);
    bot.srv(0)
        .set_conferences(vec![Conf::running("room1", 600)]);
    // Months of entries: the file is as full as these lines make it, with
    // less room left than a stop by an operator takes.
    let path = bot.dir.join("state").join(audit::FILE_NAME);
    let mut filler = Vec::new();
    let mut count = 0;
    loop {
        let record = Record::automatic("Main", Some(&format!("old{count:05}")), "stop", "stopped");
        let mut line = serde_json::to_vec(&record).unwrap();
        line.push(b'\n');
        if (filler.len() + line.len()) as u64 > audit::ROTATE_AT {
            break;
        }
        filler.extend(line);
        count += 1;
    }
    std::fs::write(&path, &filler).unwrap();

    let list = bot.open(OP, OP, "Main", "Running conferences");
    bot.click(OP, OP, &list, "Stop room1");
    let confirm = bot.wait(OP, |m| {
        m.message_id == list.message_id && m.plain.starts_with("Stop this conference?")
    });
    bot.click(OP, OP, &confirm, "Yes, stop");
    bot.wait(OP, |m| {
        m.message_id == list.message_id && m.plain.contains("room1 has been stopped")
    });

    // The stop started a new file; the old one was kept whole.
    let new = std::fs::read_to_string(&path).unwrap();
    assert_eq!(new.lines().count(), 1, "{new}");
    assert!(new.contains("room1"), "{new}");
    let old = std::fs::read(bot.dir.join("state").join(audit::OLD_FILE_NAME)).unwrap();
    assert_eq!(old, filler);

    // /audit: the stop first, then the newest entries of the old file.
    bot.say(OP, OP, "/audit");
    let shown = bot.wait(OP, |m| m.plain.starts_with("Audit log"));
    let entries: Vec<&str> = shown.plain.split("\n\n").skip(1).collect();
    assert!(entries.len() >= 3, "{}", shown.plain);
    assert!(entries[0].contains("stop room1"), "{}", shown.plain);
    for (i, entry) in entries[1..].iter().enumerate() {
        let id = format!("old{:05}", count - 1 - i);
        assert!(
            entry.contains(&id),
            "entry {i} is not {id}:\n{}",
            shown.plain
        );
    }
}

// ---------------------------------------------------------------------------
// A long run in compressed time

/// One sample of the bot's own figures.
#[derive(Clone, Copy, Debug)]
struct Sample {
    at: Duration,
    rss_kib: u64,
    threads: u64,
    fds: u64,
    state_bytes: u64,
    outbox: u64,
}

fn sample(pid: u32, state_dir: &Path, at: Duration) -> Sample {
    let field = |name| crate::support::proc_field(pid, name);
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count() as u64;
    let text = std::fs::read_to_string(state_dir.join("state.json")).unwrap_or_default();
    let outbox = serde_json::from_str::<StateData>(&text)
        .map(|s| s.outbox.len() as u64)
        .unwrap_or(0);
    Sample {
        at,
        rss_kib: field("VmRSS:"),
        threads: field("Threads:"),
        fds,
        state_bytes: text.len() as u64,
        outbox,
    }
}

/// The soak's length: 15 s in `make test`, or `TRUECONF_BOT_SOAK_SECONDS` (`make soak`).
fn soak_length() -> Duration {
    let secs = std::env::var("TRUECONF_BOT_SOAK_SECONDS")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or(15);
    Duration::from_secs(secs.max(10))
}

/// The largest and the smallest value of one figure in a part of the run.
fn span(samples: &[Sample], figure: impl Fn(&Sample) -> u64) -> (u64, u64) {
    let values: Vec<u64> = samples.iter().map(figure).collect();
    (*values.iter().min().unwrap(), *values.iter().max().unwrap())
}

#[test]
fn weeks_in_compressed_time_keep_memory_fds_threads_and_state_flat() {
    const NAMES: [&str; 4] = ["Main", "Branch", "Lab", "Edge"];
    let run = soak_length();
    let servers: Vec<Srv> = NAMES
        .iter()
        .map(|name| {
            let srv = Srv::new(name).monitored(0.01);
            srv.fake.set_conferences(vec![Conf::running("steady", 10)]);
            srv.fake.generate_users(200, 3);
            srv
        })
        .collect();
    // Scans every 100 ms; a conference is forgotten after a minute, and
    // stopped 0.6 s after its alert.
    let tables = "[forgotten]\nafter_minutes = 1\nscan_every_minutes = 0.0017\n\
                  auto_stop_after_minutes = 0.01\n";
    let d = Deployed::with(servers, |text| text + tables);
    let mut bot = d.start();
    let (tg, pid, state_dir) = (&d.tg, bot.pid(), d.state_dir());
    let admins = [OP, OP2, VIEWER];
    let screens: Vec<i64> = admins
        .iter()
        .map(|&user| tg.start_chat(user).message_id)
        .collect();
    let mut presses = vec![Press::Picker.encode()];
    for name in NAMES {
        let key = short_key(name);
        presses.extend([
            Press::Menu(key.clone()).encode(),
            Press::Status(key.clone()).encode(),
            Press::Running(key.clone(), 0).encode(),
            Press::Online(key).encode(),
        ]);
    }

    let stop = AtomicBool::new(false);
    let mut samples: Vec<Sample> = Vec::new();
    let mut started = Instant::now();
    let pressed: usize = std::thread::scope(|s| {
        // Every server flaps, each at its own pace.
        for (i, srv) in d.servers.iter().enumerate() {
            let stop = &stop;
            s.spawn(move || {
                let mut rng = Rng(0x50ac + i as u64);
                let mut up = true;
                while !stop.load(Ordering::Relaxed) {
                    up = !up;
                    srv.fake.set_up(up);
                    pace(stop, Duration::from_millis(150 + rng.below(450)));
                }
                srv.fake.set_up(true);
            });
        }
        // A new long conference somewhere every 3 s: it is found, pushed to
        // the operators with its buttons, and stopped automatically.
        s.spawn(|| {
            let mut generation = 0;
            while !stop.load(Ordering::Relaxed) {
                let srv = &d.servers[generation % NAMES.len()];
                srv.fake.set_conferences(vec![
                    Conf::running("steady", 10),
                    Conf::running(&format!("room{generation}"), 4000),
                ]);
                generation += 1;
                pace(&stop, Duration::from_secs(3));
            }
        });
        // Telegram faults: a 502 page, a 429, a refused edit, a failed poll.
        s.spawn(|| {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                match n % 4 {
                    0 => tg.script("sendMessage", Reply::bad_gateway_html()),
                    1 => tg.script("sendMessage", Reply::too_many_requests(1)),
                    2 => tg.script("editMessageText", Reply::bad_gateway_html()),
                    _ => tg.script("getUpdates", Reply::bad_gateway_html()),
                }
                n += 1;
                pace(&stop, Duration::from_millis(1500));
            }
        });
        let admins: Vec<_> = admins
            .iter()
            .zip(&screens)
            .map(|(&user, &message_id)| {
                let (stop, presses) = (&stop, &presses);
                s.spawn(move || {
                    let mut count = 0;
                    while !stop.load(Ordering::Relaxed) {
                        let data = &presses[count % presses.len()];
                        tg.push_callback(user, user, message_id, data, None);
                        count += 1;
                        pace(stop, Duration::from_millis(60));
                    }
                    count
                })
            })
            .collect();

        // Warm-up: every kind of work has been done once before the clock starts.
        let warm = wait_until(WAIT, || {
            let texts: Vec<String> = tg.messages(OP).into_iter().map(|m| m.plain).collect();
            [
                "is DOWN",
                "is UP again",
                "looks forgotten",
                "stopped automatically",
            ]
            .iter()
            .all(|needle| texts.iter().any(|t| t.contains(needle)))
        });
        assert!(warm, "not every kind of work was seen:\n{}", d.log());
        started = Instant::now();
        while started.elapsed() < run {
            samples.push(sample(pid, &state_dir, started.elapsed()));
            pace(&stop, Duration::from_millis(250));
        }
        stop.store(true, Ordering::Relaxed);
        admins.into_iter().map(|h| h.join().unwrap()).sum()
    });
    let elapsed = started.elapsed();
    assert!(bot.alive(), "the bot died:\n{}", d.log());

    // The work really went on to the end.
    let probes: usize = d.servers.iter().map(|s| s.fake.probe_count()).sum();
    let scans: usize = d
        .servers
        .iter()
        .map(|s| {
            s.fake
                .requests()
                .iter()
                .filter(|r| r.path.ends_with("/logs/calls"))
                .count()
        })
        .sum();
    let stops: usize = d.servers.iter().map(|s| s.fake.stop_requests().len()).sum();
    let alerts = tg
        .messages(OP)
        .iter()
        .map(|m| m.plain.matches(" is DOWN").count() + m.plain.matches(" is UP again").count())
        .sum::<usize>();
    let last_second = run - Duration::from_secs(2);
    let late_calls = tg
        .calls()
        .iter()
        .filter(|c| c.method == "sendmessage" && c.at >= started + last_second)
        .count();
    assert!(late_calls > 0, "nothing was sent at the end of the run");

    // Flat: the last tenth of the run against the first tenth.
    let tenth = run / 10;
    let first: Vec<Sample> = samples.iter().filter(|s| s.at < tenth).copied().collect();
    let last: Vec<Sample> = samples
        .iter()
        .filter(|s| s.at >= run - tenth)
        .copied()
        .collect();
    assert!(first.len() >= 3 && last.len() >= 3, "{samples:?}");
    let report = format!(
        "soak of {:.0} s after warm-up: {probes} probes, {scans} scans, {stops} automatic stops, \
         {pressed} presses, {alerts} alerts to one admin\n\
         first tenth (min..max): rss {:?} KiB, threads {:?}, fds {:?}, state.json {:?} B, outbox {:?}\n\
         last tenth  (min..max): rss {:?} KiB, threads {:?}, fds {:?}, state.json {:?} B, outbox {:?}",
        elapsed.as_secs_f64(),
        span(&first, |s| s.rss_kib),
        span(&first, |s| s.threads),
        span(&first, |s| s.fds),
        span(&first, |s| s.state_bytes),
        span(&first, |s| s.outbox),
        span(&last, |s| s.rss_kib),
        span(&last, |s| s.threads),
        span(&last, |s| s.fds),
        span(&last, |s| s.state_bytes),
        span(&last, |s| s.outbox),
    );
    eprintln!("{report}");
    // The course of the run, for `make soak`: ten rows.
    for s in samples.iter().step_by((samples.len() / 10).max(1)) {
        eprintln!(
            "{:>6.1} s: rss {} KiB, threads {}, fds {}, state.json {} B, outbox {}",
            s.at.as_secs_f64(),
            s.rss_kib,
            s.threads,
            s.fds,
            s.state_bytes,
            s.outbox
        );
    }
    let (_, rss_first) = span(&first, |s| s.rss_kib);
    let (_, rss_last) = span(&last, |s| s.rss_kib);
    // Memory: the allocator keeps freed pages and thread arenas around, so
    // the peak may move a little; a leak of 100 bytes a probe would be more
    // than 1 MiB here.
    assert!(
        rss_last <= rss_first + (rss_first / 10).max(1024),
        "memory grew: {report}"
    );
    // Threads: the long-lived ones never grow; scans add short-lived
    // participant fetchers, so the peak may differ by a scan's worth.
    let (threads_first_low, threads_first_high) = span(&first, |s| s.threads);
    let (threads_last_low, threads_last_high) = span(&last, |s| s.threads);
    assert!(
        threads_last_low <= threads_first_low && threads_last_high <= threads_first_high + 8,
        "threads grew: {report}"
    );
    // File descriptors: one per open connection (pooled ones come and go
    // with the flapping) and the fixed files; a leak would add one per
    // probe or per press, thousands.
    let (_, fds_first) = span(&first, |s| s.fds);
    let (_, fds_last) = span(&last, |s| s.fds);
    assert!(fds_last <= fds_first + 8, "file descriptors grew: {report}");
    // The outbox holds what the pacing (1 message a second a chat) and the
    // backoffs after faults have not sent yet, so during the run it swings
    // with the flapping and with how busy the machine is. What must hold:
    // once the flapping and the faults stop, it drains; a message that is
    // never removed would stay (and hold its chat's later ones behind it).
    let drained = wait_until(Duration::from_secs(30), || {
        sample(pid, &state_dir, elapsed).outbox == 0
    });
    let after = sample(pid, &state_dir, elapsed);
    assert!(
        drained,
        "the outbox did not drain after the run ({} left): {report}\n{}",
        after.outbox,
        d.log()
    );
    // state.json is mostly the outbox; without it, it is the servers'
    // entries and the marks of running conferences: a few lines, whatever
    // the length of the run. One mark or moved chat per scan or per press
    // would add tens of kilobytes.
    let (state_low, _) = span(&first, |s| s.state_bytes);
    assert!(
        after.state_bytes <= state_low + 4096,
        "state.json grew ({state_low} B at the start, {} B after the run, its outbox empty): {report}",
        after.state_bytes
    );
    assert!(!d.log().contains("internal error"), "{}", d.log());
}
