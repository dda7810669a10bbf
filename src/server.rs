//! One thread per TrueConf server (`server-N`): it owns that server's API
//! client (and so its token) and serves every screen about the server, the
//! stops, its line of `/status`, and the scheduled forgotten scan. A slow or
//! dead server only ever delays its own thread, never the poller or another
//! server.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::audit;
use crate::callback::{List, Press, conference_key};
use crate::chat::{self, Patience};
use crate::clock::now_unix_ms;
use crate::config::{Role, Server};
use crate::fetch::FetchPool;
use crate::forgotten;
use crate::history::Kind;
use crate::html::{escape, shorten};
use crate::http::Client;
use crate::locale::Tr;
use crate::notify::NotifyCmd;
use crate::overview::Overview;
use crate::probe::ProbeCmd;
use crate::screen::{self, Entry, OverviewLine, Screen, SilenceNote, StatusView};
use crate::shared::Shared;
use crate::silence;
use crate::telegram::{Place, Telegram, User};
use crate::trueconf::{self, Call, Problem, Stopped, TrueConf};

/// Work for a server's thread.
pub enum ServerJob {
    /// A button press about this server, already checked and answered.
    Press {
        press: Press,
        place: Place,
        message_id: Option<i64>,
        /// Its number among presses (see `PressLog`).
        seq: u64,
        user: User,
        role: Role,
        lang: String,
    },
    /// Fill this server's line of a `/status` overview.
    Overview(Overview),
    Quit,
}

impl ServerJob {
    /// The message a view job will overwrite (a later job for it makes this one moot).
    fn view_target(&self) -> Option<(i64, i64)> {
        match self {
            ServerJob::Press {
                press,
                place,
                message_id: Some(message_id),
                ..
            } if !press.is_action() => Some((place.chat, *message_id)),
            _ => None,
        }
    }
}

/// The latest press on each message, shared by the poller (which numbers
/// presses) and the server threads (which drop a view that a newer press
/// on the same message outdated).
#[derive(Default)]
pub struct PressLog {
    latest: Mutex<HashMap<(i64, i64), u64>>,
    count: AtomicU64,
}

impl PressLog {
    /// Numbers a press on a message; it is now the latest there.
    pub fn record(&self, chat: i64, message_id: Option<i64>) -> u64 {
        let n = self.count.fetch_add(1, Ordering::Relaxed) + 1;
        if let Some(message_id) = message_id {
            let mut latest = self.latest.lock().unwrap_or_else(|p| p.into_inner());
            if latest.len() > 4096 {
                // Old messages: their presses are long answered.
                latest.retain(|_, seen| *seen + 4096 > n);
            }
            latest.insert((chat, message_id), n);
        }
        n
    }

    /// Whether press `n` is still the latest on its message.
    pub fn is_latest(&self, chat: i64, message_id: Option<i64>, n: u64) -> bool {
        let Some(message_id) = message_id else {
            return true;
        };
        let latest = self.latest.lock().unwrap_or_else(|p| p.into_inner());
        latest
            .get(&(chat, message_id))
            .is_none_or(|seen| *seen == n)
    }
}

/// What a server thread is handed at start.
pub struct ServerThread {
    pub shared: Arc<Shared>,
    pub tg: Telegram,
    pub index: usize,
    pub presses: Arc<PressLog>,
    /// Wakes this server's prober after a monitoring switch.
    pub probe: Sender<ProbeCmd>,
    /// Wakes the notifier after something was put into the outbox.
    pub notify: Sender<NotifyCmd>,
    /// Plain-HTTP client for the `/vsstatus` line of screens.
    pub status: Client,
    /// The shared participant-list fetchers.
    pub fetch: FetchPool,
    /// The server's API client.
    pub client: Arc<TrueConf>,
}

/// The loop of server `index`.
pub fn run(parts: ServerThread, jobs: Receiver<ServerJob>) {
    let shared = parts.shared.clone();
    let server = &shared.settings.servers[parts.index];
    let here = Here {
        client: parts.client.clone(),
        server,
        parts: &parts,
    };
    let scan_every = shared.settings.forgotten.scan_every;
    // Scans are spread over their interval: server i of N first scans at
    // (i+1)·every/N, so N servers never scan at the same instant.
    let servers = shared.settings.servers.len().max(1) as u32;
    let first = |every: Duration| every * (parts.index as u32 + 1) / servers;
    let mut next_scan = scan_every.map(|every| Instant::now() + first(every));
    let mut queue: Vec<ServerJob> = Vec::new();
    let mut monos = forgotten::Monos::new();
    loop {
        if let (Some(due), Some(every)) = (next_scan, scan_every) {
            if Instant::now() >= due {
                // A silenced server is not scanned: no pushes, and no
                // automatic stop that nobody was told about.
                if shared.store.server(&server.name).silenced(now_unix_ms()) {
                    log::debug!("server '{}': silenced; scan skipped", server.name);
                } else {
                    let fetchers = (&parts.fetch, &here.client);
                    forgotten::scan(&shared, server, fetchers, &parts.notify, &mut monos);
                }
                next_scan = Some(Instant::now() + every);
            }
        }
        if queue.is_empty() {
            // Nothing to do: the kept connections go (a server asked once a
            // minute must not hold its TLS connections in between).
            here.client.release_connections();
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
            ServerJob::Quit => return,
            // Already answered (the deadline passed): nobody waits for it.
            ServerJob::Overview(overview) if overview.is_done() => {}
            ServerJob::Overview(overview) => overview.fill(parts.index, here.overview_line()),
            ServerJob::Press {
                press,
                seq,
                place,
                message_id,
                user,
                role,
                lang,
            } => {
                let tr = shared.tr(&lang);
                let screen = here.press(tr, &press, &user, role);
                // The user went elsewhere meanwhile (e.g. Back while the
                // server was slow): do not pull them back to a view. The
                // outcome of an action (a stop, a switch) is always shown.
                if press.is_action() || parts.presses.is_latest(place.chat, message_id, seq) {
                    let patience = Patience::Retry(shared.settings.timing.screen_retry_max);
                    chat::show(&parts.tg, place, message_id, &screen, patience);
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

/// A server thread at work: its server, its client, what it was handed.
struct Here<'a> {
    server: &'a Server,
    client: Arc<TrueConf>,
    parts: &'a ServerThread,
}

impl Here<'_> {
    fn shared(&self) -> &Shared {
        &self.parts.shared
    }

    fn press(&self, tr: Tr, press: &Press, user: &User, role: Role) -> Screen {
        let server = self.server;
        match press {
            Press::Status(_) => self.status(tr, role),
            Press::Monitor(_, on) => {
                self.switch_monitoring(*on, user);
                self.status(tr, role)
            }
            // Checked by role again: the poller denies it to viewers already.
            Press::Silence(_, hours) => {
                if role == Role::Operator {
                    let (_, told) =
                        silence::set(self.shared(), server, user, *hours, now_unix_ms());
                    if told {
                        let _ = self.parts.notify.send(NotifyCmd::Wake);
                    }
                }
                self.status(tr, role)
            }
            Press::EndSilence(_) => {
                if role == Role::Operator {
                    let ended = silence::end(self.shared(), server, user, now_unix_ms());
                    if ended.told {
                        let _ = self.parts.notify.send(NotifyCmd::Wake);
                    }
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

    fn switch_monitoring(&self, on: bool, user: &User) {
        let (shared, server) = (self.shared(), self.server);
        let was = shared.store.monitoring(server);
        let now = now_unix_ms() / 1000;
        shared.store.update_server(&server.name, |s| {
            s.monitoring = Some(on);
            if on {
                s.history_end(Kind::Off, now);
            } else {
                // Unwatched, its health is unknown: no stale UP alert later.
                s.health = None;
                s.since = None;
                s.last_alert = None;
                s.web_health = None;
                s.web_since = None;
                s.web_last_alert = None;
                s.announced = None;
                // An outage ends here; the time until switched on does not count.
                s.history_end(Kind::Down, now);
                if s.history.known_from.is_some() {
                    s.history_begin(Kind::Off, now, None);
                }
            }
        });
        if was == on {
            return;
        }
        let _ = self.parts.probe.send(ProbeCmd::Wake);
        log::info!(
            "server '{}': monitoring switched {} by user {}",
            server.name,
            if on { "on" } else { "off" },
            user.id
        );
        let action = if on {
            "monitoring_on"
        } else {
            "monitoring_off"
        };
        audit::append(
            &shared.settings.state_dir,
            &audit::Record::by_user(user, &server.name, None, action, "ok"),
        );
    }

    fn status(&self, tr: Tr, role: Role) -> Screen {
        let shared = self.shared();
        let answer = trueconf::vsstatus(&self.parts.status, self.server);
        // The web interface/API is asked too (R9): /vsstatus does not tell.
        let web = shared.settings.monitoring.api_check_every.map(|_| {
            self.client
                .api_check()
                .map(|_| ())
                .map_err(|p| p.to_string())
        });
        let state = shared.store.server(&self.server.name);
        let now_ms = now_unix_ms();
        let now = now_ms / 1000;
        let view = StatusView {
            live: answer.up,
            version: answer.version,
            web,
            monitoring: shared.store.monitoring(self.server),
            interval: self.server.probe_interval,
            health: state.health,
            since: state.since,
            now,
            zone: shared.settings.timezone.clone(),
            silence: SilenceNote::of(&state, now_ms),
            report: (!state.history.is_empty()).then(|| state.history.report(now, 3)),
        };
        screen::status(tr, self.server, &view, role)
    }

    fn threshold(&self, minutes: u32) -> Duration {
        if minutes == 0 {
            self.shared().settings.forgotten.after
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
                let none = Default::default();
                let pool = (&self.parts.fetch, forgotten::Pace::Waited);
                let found = forgotten::find(pool, &self.client, calls, threshold, &none);
                let entries: Vec<Entry> = found.iter().map(forgotten::Found::entry).collect();
                let list = screen::ForgottenList {
                    entries: &entries,
                    minutes,
                    threshold,
                };
                screen::forgotten(tr, self.server, &list, page, role, notice)
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
        let shown_id = escape(&shorten(&id, 128));
        let (notice, outcome) = match &result {
            Ok(Stopped::Stopped) => (
                tr.f("stop_done", &[("id", &shown_id)]),
                "stopped".to_string(),
            ),
            // It ended by itself before our stop: no failure (R1).
            Ok(Stopped::AlreadyEnded) => (
                tr.f("stop_already", &[("id", &shown_id)]),
                "already_ended".to_string(),
            ),
            Err(p) => (
                tr.f(
                    "stop_failed",
                    &[("id", &shown_id), ("reason", &screen::problem_text(tr, p))],
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
            &self.shared().settings.state_dir,
            &audit::Record::by_user(user, &self.server.name, Some(&id), "stop", &outcome),
        );
        self.list_with_notice(tr, list, role, &notice)
    }

    /// This server's line of `/status`.
    fn overview_line(&self) -> OverviewLine {
        let answer = trueconf::vsstatus(&self.parts.status, self.server);
        if let Err(why) = answer.up {
            return OverviewLine::Down(why);
        }
        let version = answer.version;
        if self.server.monitoring_only() {
            return OverviewLine::MonitoringOnly { version };
        }
        let running = self.client.running_conferences().map(|c| c.len());
        let online = self.client.online_users().map(|o| (o.online, o.complete));
        OverviewLine::Up {
            running,
            online,
            version,
        }
    }
}
