//! One thread per TrueConf server: it owns that server's API client (and so
//! its token) and serves every screen about the server. A slow or dead server
//! only ever delays its own worker, never the poller or another server.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::audit;
use crate::bot::{Ctx, show};
use crate::callback::{List, Press, conference_key};
use crate::config::{Role, Server};
use crate::html::{escape, shorten};
use crate::monitor::{self, MonitorCmd};
use crate::notify::{self, Notice};
use crate::screen::{self, Entry, Screen, StatusView, Tr};
use crate::state::{now_unix, now_unix_ms};
use crate::telegram::User;
use crate::trueconf::{Call, Problem, Stopped, TrueConf};

/// Participant lists fetched at once during a forgotten search.
const PARALLEL_FETCHES: usize = 8;
/// How long `/status` waits for the servers before answering without the slow ones.
pub const OVERVIEW_DEADLINE: Duration = Duration::from_secs(8);

/// Work for a server's thread.
pub enum Job {
    /// A button press about this server, already checked and answered.
    Press {
        press: Press,
        chat_id: i64,
        message_id: Option<i64>,
        /// Its number among presses (see `Ctx::is_latest`).
        seq: u64,
        user: User,
        role: Role,
        lang: String,
    },
    /// Fill this server's line of a `/status` overview.
    Overview(Overview),
    Quit,
}

impl Job {
    /// The message a view job will overwrite (a later job for it makes this one moot).
    fn view_target(&self) -> Option<(i64, i64)> {
        match self {
            Job::Press {
                press,
                chat_id,
                message_id: Some(message_id),
                ..
            } if !matches!(press, Press::Stop(..) | Press::Monitor(..)) => {
                Some((*chat_id, *message_id))
            }
            _ => None,
        }
    }
}

/// The worker loop of server `index`.
pub fn run(ctx: &Ctx, index: usize, jobs: Receiver<Job>, monitor: Sender<MonitorCmd>) {
    let server = &ctx.settings.servers[index];
    let worker = Worker {
        ctx,
        server,
        client: TrueConf::new(server),
        monitor,
    };
    let scan_every = ctx.settings.forgotten.scan_every;
    let mut next_scan = scan_every.map(|every| Instant::now() + every);
    let mut queue: Vec<Job> = Vec::new();
    loop {
        if let (Some(due), Some(every)) = (next_scan, scan_every) {
            if Instant::now() >= due {
                worker.scan();
                next_scan = Some(Instant::now() + every);
            }
        }
        if queue.is_empty() {
            let received = match next_scan {
                None => jobs.recv().map_err(|_| RecvTimeoutError::Disconnected),
                Some(due) => jobs.recv_timeout(due.saturating_duration_since(Instant::now())),
            };
            match received {
                Ok(job) => queue.push(job),
                Err(RecvTimeoutError::Timeout) => continue,
                Err(RecvTimeoutError::Disconnected) => return,
            }
        }
        // Take what else is waiting, so that repeated presses on one message
        // while the server is slow are served once, with the latest.
        queue.extend(jobs.try_iter());
        let job = queue.remove(0);
        if let Some(target) = job.view_target() {
            if queue
                .iter()
                .any(|later| later.view_target() == Some(target))
            {
                continue;
            }
        }
        match job {
            Job::Quit => return,
            // Already answered (the deadline passed): nobody waits for it.
            Job::Overview(overview) if overview.is_done() => {}
            Job::Overview(overview) => overview.fill(index, worker.overview_line()),
            Job::Press {
                press,
                seq,
                chat_id,
                message_id,
                user,
                role,
                lang,
            } => {
                let tr = ctx.tr(&lang);
                let screen = worker.press(tr, &press, &user, role);
                // The user went elsewhere meanwhile (e.g. Back while the
                // server was slow): do not pull them back to a view. The
                // outcome of an action (a stop, a switch) is always shown.
                let action = matches!(press, Press::Stop(..) | Press::Monitor(..));
                if action || ctx.is_latest(chat_id, message_id, seq) {
                    show(&ctx.tg, chat_id, message_id, &screen);
                } else {
                    log::debug!(
                        "server '{}': a screen outdated by a newer press was dropped",
                        server.name
                    );
                }
            }
        }
    }
}

struct Worker<'a> {
    ctx: &'a Ctx,
    server: &'a Server,
    client: TrueConf,
    monitor: Sender<MonitorCmd>,
}

impl Worker<'_> {
    fn press(&self, tr: Tr, press: &Press, user: &User, role: Role) -> Screen {
        let server = self.server;
        match press {
            Press::Status(_) => self.status(tr, role),
            Press::Monitor(_, on) => {
                let was = monitor::is_on(self.ctx, server);
                self.ctx.store.update_server(&server.name, |s| {
                    s.monitoring = Some(*on);
                    if !*on {
                        // Unwatched, its health is unknown: no stale UP alert later.
                        s.health = None;
                        s.since = None;
                        s.last_alert = None;
                    }
                });
                if was != *on {
                    let _ = self.monitor.send(MonitorCmd::Wake);
                    log::info!(
                        "server '{}': monitoring switched {} by user {}",
                        server.name,
                        if *on { "on" } else { "off" },
                        user.id
                    );
                    audit::append(
                        &self.ctx.settings.state_dir,
                        &audit::Record::by_user(
                            user,
                            &server.name,
                            None,
                            if *on {
                                "monitoring_on"
                            } else {
                                "monitoring_off"
                            },
                            "ok",
                        ),
                    );
                }
                self.status(tr, role)
            }
            Press::Running(_, page) => match self.client.running_conferences() {
                Ok(calls) => screen::running(tr, server, &calls, *page, role, None),
                Err(p) => screen::problem(tr, server, &p, press.clone()),
            },
            Press::Online(_) => match self.client.online_users() {
                Ok(online) => screen::online(tr, server, &online),
                Err(p) => screen::problem(tr, server, &p, press.clone()),
            },
            Press::Forgotten(_, minutes, page) => {
                self.forgotten(tr, *minutes, *page, role, None, press)
            }
            Press::AskStop(_, key, list) => self.ask_stop(tr, key, *list, role),
            Press::Stop(_, key, list) => self.stop(tr, key, *list, user, role),
            // Handled by the poller; never sent here.
            Press::Picker | Press::Menu(_) | Press::Nothing | Press::Audit(_) => {
                screen::menu(tr, server)
            }
        }
    }

    fn status(&self, tr: Tr, role: Role) -> Screen {
        let live = monitor::probe(&self.ctx.probe, self.server);
        let state = self.ctx.store.server(&self.server.name);
        let view = StatusView {
            live,
            monitoring: monitor::is_on(self.ctx, self.server),
            interval: self.server.probe_interval,
            health: state.health,
            since: state.since,
            now: now_unix(),
        };
        screen::status(tr, self.server, &view, role)
    }

    fn threshold(&self, minutes: u32) -> Duration {
        if minutes == 0 {
            self.ctx.settings.forgotten.after
        } else {
            Duration::from_secs(u64::from(minutes) * 60)
        }
    }

    fn forgotten(
        &self,
        tr: Tr,
        minutes: u32,
        page: u32,
        role: Role,
        notice: Option<&str>,
        retry: &Press,
    ) -> Screen {
        let threshold = self.threshold(minutes);
        match self.client.running_conferences() {
            Ok(calls) => {
                let found = find_forgotten(&self.client, calls, threshold);
                let entries: Vec<Entry> = found
                    .iter()
                    .map(|(call, unknown)| Entry {
                        call,
                        unknown: *unknown,
                    })
                    .collect();
                screen::forgotten(
                    tr,
                    self.server,
                    &entries,
                    minutes,
                    threshold,
                    page,
                    role,
                    notice,
                )
            }
            Err(p) => screen::problem(tr, self.server, &p, retry.clone()),
        }
    }

    /// The list a stop came from, with a notice on top.
    fn list_with_notice(&self, tr: Tr, list: List, role: Role, notice: &str) -> Screen {
        match list {
            List::Running => {
                let retry = Press::Running(self.server.key.clone(), 0);
                match self.client.running_conferences() {
                    Ok(calls) => screen::running(tr, self.server, &calls, 0, role, Some(notice)),
                    Err(p) => {
                        let mut s = screen::problem(tr, self.server, &p, retry);
                        s.text = format!("{notice}\n\n{}", s.text);
                        s
                    }
                }
            }
            List::Forgotten(m) => {
                let retry = Press::Forgotten(self.server.key.clone(), m, 0);
                self.forgotten(tr, m, 0, role, Some(notice), &retry)
            }
        }
    }

    /// The running conference a button means, fetched fresh.
    fn find(&self, key: &str) -> Result<Option<Call>, Problem> {
        let calls = self.client.running_conferences()?;
        Ok(calls
            .into_iter()
            .find(|c| conference_key(&c.session_id) == key))
    }

    fn ask_stop(&self, tr: Tr, key: &str, list: List, role: Role) -> Screen {
        match self.find(key) {
            Ok(Some(call)) if call.conference_id.is_some() => {
                screen::confirm_stop(tr, self.server, &call, list)
            }
            Ok(Some(_)) => self.list_with_notice(tr, list, role, tr.t("stop_no_id")),
            Ok(None) => self.list_with_notice(tr, list, role, tr.t("stop_gone")),
            Err(p) => screen::problem(tr, self.server, &p, screen::back_to_list(self.server, list)),
        }
    }

    fn stop(&self, tr: Tr, key: &str, list: List, user: &User, role: Role) -> Screen {
        let call = match self.find(key) {
            Ok(Some(call)) => call,
            Ok(None) => return self.list_with_notice(tr, list, role, tr.t("stop_gone")),
            Err(p) => {
                return screen::problem(
                    tr,
                    self.server,
                    &p,
                    screen::back_to_list(self.server, list),
                );
            }
        };
        let Some(id) = call.conference_id.clone() else {
            return self.list_with_notice(tr, list, role, tr.t("stop_no_id"));
        };
        let result = self.client.stop(&id);
        let (notice, outcome) = match &result {
            Ok(Stopped::Stopped) => (
                tr.f("stop_done", &[("id", &escape(&shorten(&id, 128)))]),
                "stopped".to_string(),
            ),
            Ok(Stopped::NotFound) => (
                tr.f("stop_already", &[("id", &escape(&shorten(&id, 128)))]),
                "already_ended".to_string(),
            ),
            Err(p) => (
                tr.f(
                    "stop_failed",
                    &[
                        ("id", &escape(&shorten(&id, 128))),
                        ("reason", &screen::problem_text(tr, p)),
                    ],
                ),
                format!("failed: {p}"),
            ),
        };
        log::info!(
            "server '{}': stop of a conference by user {}: {outcome}",
            self.server.name,
            user.id
        );
        audit::append(
            &self.ctx.settings.state_dir,
            &audit::Record::by_user(user, &self.server.name, Some(&id), "stop", &outcome),
        );
        self.list_with_notice(tr, list, role, &notice)
    }

    /// The scheduled forgotten scan (SPEC §8.1): pushes each newly forgotten
    /// conference to the operators once, forgets those that recovered, and
    /// stops those still forgotten `auto_stop_after` after their alert.
    fn scan(&self) {
        let (ctx, server) = (self.ctx, self.server);
        let calls = match self.client.running_conferences() {
            Ok(calls) => calls,
            Err(p) => {
                log::warn!("server '{}': forgotten scan failed: {p}", server.name);
                return;
            }
        };
        let found = find_forgotten(&self.client, calls, ctx.settings.forgotten.after);
        let now = now_unix_ms();
        let auto = ctx.settings.forgotten.auto_stop_after;
        let alerted = ctx.store.server(&server.name).forgotten_alerted;
        let unknown: Vec<&str> = found
            .iter()
            .filter(|(_, u)| *u)
            .map(|(c, _)| c.session_id.as_str())
            .collect();
        let forgotten: Vec<&Call> = found.iter().filter(|(_, u)| !*u).map(|(c, _)| c).collect();
        let mut keep = std::collections::BTreeMap::new();
        let mut fresh: Vec<&Call> = Vec::new();
        for call in &forgotten {
            match alerted.get(&call.session_id) {
                None => {
                    log::info!(
                        "server '{}': a conference became forgotten; telling the operators",
                        server.name
                    );
                    fresh.push(*call);
                    keep.insert(call.session_id.clone(), now);
                }
                Some(&at) => {
                    let due = auto
                        .is_some_and(|grace| now.saturating_sub(at) >= grace.as_millis() as u64);
                    if due && call.conference_id.is_some() {
                        if !self.auto_stop(call) {
                            // Try again after another grace time, not at every scan.
                            keep.insert(call.session_id.clone(), now);
                        }
                    } else {
                        keep.insert(call.session_id.clone(), at);
                    }
                }
            }
        }
        // Unreadable ones keep their mark; recovered and ended ones lose it.
        for id in unknown {
            if let Some(&at) = alerted.get(id) {
                keep.insert(id.to_string(), at);
            }
        }
        // The marks and the alerts in one update: a restart neither repeats
        // nor loses an alert.
        ctx.store.update(|d| {
            d.servers
                .entry(server.name.clone())
                .or_default()
                .forgotten_alerted = keep;
            for call in &fresh {
                for &chat_id in &ctx.settings.operators {
                    let lang = ctx
                        .locales
                        .pick(d.languages.get(&chat_id).map(String::as_str));
                    let screen = screen::scan_alert(ctx.tr(lang), server, call, auto);
                    notify::enqueue(d, chat_id, screen.text, Some(screen.keyboard));
                }
            }
        });
        if !fresh.is_empty() {
            let _ = ctx.notices.send(Notice::Wake);
        }
    }

    /// Stops a forgotten conference; false when the stop failed.
    fn auto_stop(&self, call: &Call) -> bool {
        let (ctx, server) = (self.ctx, self.server);
        let id = call.conference_id.clone().unwrap_or_default();
        let result = self.client.stop(&id);
        let outcome = match &result {
            Ok(Stopped::Stopped) => "stopped".to_string(),
            Ok(Stopped::NotFound) => "already_ended".to_string(),
            Err(p) => format!("failed: {p}"),
        };
        log::info!(
            "server '{}': automatic stop of a forgotten conference: {outcome}",
            server.name
        );
        audit::append(
            &ctx.settings.state_dir,
            &audit::Record::automatic(&server.name, Some(&id), "stop", &outcome),
        );
        ctx.store.update(|d| {
            for &chat_id in &ctx.settings.operators {
                let lang = ctx
                    .locales
                    .pick(d.languages.get(&chat_id).map(String::as_str));
                let tr = ctx.tr(lang);
                let (name, eid) = (
                    escape(&shorten(&server.name, 100)),
                    escape(&shorten(&id, 128)),
                );
                let text = match &result {
                    Ok(_) => tr.f("auto_stop_done", &[("name", &name), ("id", &eid)]),
                    Err(p) => tr.f(
                        "auto_stop_failed",
                        &[
                            ("name", &name),
                            ("id", &eid),
                            ("reason", &screen::problem_text(tr, p)),
                        ],
                    ),
                };
                notify::enqueue(d, chat_id, text, None);
            }
        });
        let _ = ctx.notices.send(Notice::Wake);
        result.is_ok()
    }

    /// This server's line of `/status`.
    fn overview_line(&self) -> OverviewLine {
        if let Err(why) = monitor::probe(&self.ctx.probe, self.server) {
            return OverviewLine::Down(why);
        }
        let running = self.client.running_conferences().map(|c| c.len());
        let online = self.client.online_users().map(|o| (o.online, o.complete));
        OverviewLine::Up { running, online }
    }
}

/// Running conferences older than `threshold` that look forgotten (SPEC §7.6):
/// nobody left, only the owner/moderator left, or nobody with role 2. Each
/// with `true` when its participants could not be read (shown as unknown).
pub fn find_forgotten(
    client: &TrueConf,
    calls: Vec<Call>,
    threshold: Duration,
) -> Vec<(Call, bool)> {
    let old: Vec<Call> = calls
        .into_iter()
        .filter(|c| Duration::from_secs(c.duration) >= threshold)
        .collect();
    let verdicts: Vec<Mutex<Option<Verdict>>> = old.iter().map(|_| Mutex::new(None)).collect();
    let next = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..PARALLEL_FETCHES.min(old.len()) {
            let job = || {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(call) = old.get(i) else { break };
                    let verdict = match client.participants(&call.session_id) {
                        Ok(ps) => {
                            let leaders = ps.iter().filter(|p| p.role == 2).count();
                            let forgotten =
                                ps.is_empty() || leaders == 0 || (ps.len() == 1 && leaders == 1);
                            if forgotten {
                                Verdict::Forgotten
                            } else {
                                Verdict::Alive
                            }
                        }
                        Err(_) => Verdict::Unknown,
                    };
                    *verdicts[i].lock().unwrap_or_else(|p| p.into_inner()) = Some(verdict);
                }
            };
            let spawned = std::thread::Builder::new()
                .name("participants".into())
                .stack_size(128 * 1024)
                .spawn_scoped(scope, job);
            if spawned.is_err() {
                log::warn!("cannot start a participants thread; fewer run in parallel");
            }
        }
    });
    old.into_iter()
        .zip(verdicts)
        .filter_map(
            |(call, v)| match v.into_inner().unwrap_or_else(|p| p.into_inner()) {
                Some(Verdict::Forgotten) => Some((call, false)),
                Some(Verdict::Unknown) | None => Some((call, true)),
                Some(Verdict::Alive) => None,
            },
        )
        .collect()
}

#[derive(Clone, Copy)]
enum Verdict {
    Forgotten,
    Alive,
    Unknown,
}

/// One server's line of the overview.
#[derive(Debug, Clone)]
pub enum OverviewLine {
    Down(String),
    Up {
        running: Result<usize, Problem>,
        online: Result<(u64, bool), Problem>,
    },
}

/// A `/status` overview being gathered from every worker at once.
#[derive(Clone)]
pub struct Overview(Arc<Gathering>);

/// The lines so far, a signal for each new one, and whether it was answered.
type Gathering = (Mutex<Vec<Option<OverviewLine>>>, Condvar, AtomicBool);

impl Overview {
    /// Starts gathering; a thread answers when every line is in or at the deadline.
    pub fn start(ctx: &Arc<Ctx>, chat_id: i64, lang: String) -> Overview {
        let overview = Overview(Arc::new((
            Mutex::new(vec![None; ctx.settings.servers.len()]),
            Condvar::new(),
            AtomicBool::new(false),
        )));
        let gather = overview.clone();
        let ctx = ctx.clone();
        let spawned = std::thread::Builder::new()
            .name("overview".into())
            .stack_size(256 * 1024)
            .spawn(move || {
                let lines = gather.wait(OVERVIEW_DEADLINE);
                gather.0.2.store(true, Ordering::Relaxed);
                let text = overview_text(ctx.tr(&lang), &ctx.settings.servers, &lines);
                if let Err(e) = ctx.tg.send_message(chat_id, &text, None) {
                    log::warn!("telegram sendMessage: {e}");
                }
            });
        if spawned.is_err() {
            log::warn!("cannot start the overview thread");
        }
        overview
    }

    /// Whether the overview was sent already.
    fn is_done(&self) -> bool {
        self.0.2.load(Ordering::Relaxed)
    }

    fn fill(&self, index: usize, line: OverviewLine) {
        let (lock, cond, _) = &*self.0;
        let mut lines = lock.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(slot) = lines.get_mut(index) {
            *slot = Some(line);
        }
        cond.notify_all();
    }

    fn wait(&self, deadline: Duration) -> Vec<Option<OverviewLine>> {
        let until = Instant::now() + deadline;
        let (lock, cond, _) = &*self.0;
        let mut lines = lock.lock().unwrap_or_else(|p| p.into_inner());
        while lines.iter().any(Option::is_none) {
            let now = Instant::now();
            if now >= until {
                break;
            }
            lines = cond
                .wait_timeout(lines, until - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        lines.clone()
    }
}

fn overview_text(tr: Tr, servers: &[Server], lines: &[Option<OverviewLine>]) -> String {
    let mut text = tr.t("overview_title").to_string();
    for (server, line) in servers.iter().zip(lines) {
        let name = escape(&crate::html::shorten(&server.name, 80));
        text.push_str("\n\n");
        let line = match line {
            None => tr.f("overview_slow", &[("name", &name)]),
            Some(OverviewLine::Down(why)) => tr.f(
                "overview_down",
                &[("name", &name), ("reason", &escape(why))],
            ),
            Some(OverviewLine::Up { running, online }) => {
                let running = match running {
                    Ok(n) => n.to_string(),
                    Err(_) => "?".into(),
                };
                let online = match online {
                    Ok((n, true)) => n.to_string(),
                    Ok((n, false)) => format!("≥{n}"),
                    Err(_) => "?".into(),
                };
                tr.f(
                    "overview_up",
                    &[("name", &name), ("running", &running), ("online", &online)],
                )
            }
        };
        text.push_str(&line);
        if crate::html::units(&text) > 3900 {
            text.push_str("\n…");
            break;
        }
    }
    text
}
