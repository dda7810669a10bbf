//! Every screen the bot shows: text (HTML, escaped) and buttons, as pure
//! functions of data. Never exceeds Telegram's 4096 characters: long lists are
//! cut into pages. No I/O here.

use std::time::Duration;

use crate::callback::{List, Press, SILENCE_HOURS, conference_key};
use crate::clock::{Zone, parse_rfc3339};
use crate::config::{ForgottenRule, Role, Server};
use crate::history::{Class, Percent, Report, Tally, WINDOWS};
use crate::html::{encode_segment, escape, shorten, units};
use crate::locale::Tr;
use crate::state::{Health, ServerState};
use crate::telegram::{Button, Keyboard};
use crate::trueconf::{Call, Online, Problem, Recording};

/// Text budget of one list page; below 4096 to leave room for a notice.
const PAGE_BUDGET: usize = 3600;
/// Conferences (or audit lines) per page (one stop button each).
const PAGE_ENTRIES: usize = 8;
/// How many audit records `/audit` shows.
pub const AUDIT_SHOWN: usize = 20;
/// The thresholds offered on the forgotten screen, in minutes.
pub const THRESHOLDS: [u32; 4] = [60, 120, 240, 480];

/// One screen: what to put into the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Screen {
    pub text: String,
    pub keyboard: Keyboard,
}

fn back_to_menu(tr: Tr, server: &Server) -> Button {
    Button::callback(tr.t("back"), Press::Menu(server.key.clone()).encode())
}

fn title(server: &Server) -> String {
    format!("🖥 <b>{}</b>", escape(&shorten(&server.name, 100)))
}

/// `/start`: one button per server.
pub fn picker(tr: Tr, servers: &[Server]) -> Screen {
    let keyboard = servers
        .iter()
        .map(|s| {
            vec![Button::callback(
                shorten(&s.name, 60),
                Press::Menu(s.key.clone()).encode(),
            )]
        })
        .collect();
    Screen {
        text: tr.t("picker_title").to_string(),
        keyboard,
    }
}

/// A server's menu.
pub fn menu(tr: Tr, server: &Server) -> Screen {
    let key = &server.key;
    let b = |label: &'static str, press: Press| vec![Button::callback(tr.t(label), press.encode())];
    Screen {
        text: format!("{}\n{}", title(server), tr.t("menu_prompt")),
        keyboard: vec![
            b("menu_status", Press::Status(key.clone())),
            b("menu_running", Press::Running(key.clone(), 0)),
            b("menu_online", Press::Online(key.clone())),
            b("menu_forgotten", Press::Forgotten(key.clone(), 0, 0)),
            b("back", Press::Picker),
        ],
    }
}

/// What the status screen shows.
#[derive(Debug, Clone)]
pub struct StatusView {
    /// The probe made for this screen: `Ok` = up, else the reason.
    pub live: Result<(), String>,
    pub monitoring: bool,
    pub interval: Duration,
    /// The monitor's judgement and since when (unix seconds).
    pub health: Option<Health>,
    pub since: Option<u64>,
    pub now: u64,
    /// The zone times are shown in.
    pub zone: Zone,
    /// The maintenance silence in force, if any.
    pub silence: Option<SilenceNote>,
    /// Availability, the 24-hour strip and the last outages at `now`;
    /// `None` for a server never watched.
    pub report: Option<Report>,
    /// The product and version `/vsstatus` named (item 9).
    pub version: Option<String>,
    /// The web interface/API check made for this screen (R9); `None` when
    /// `api_check_every_seconds` is 0.
    pub web: Option<Result<(), String>>,
}

/// A silence as shown: until when (unix seconds) and by whom (their name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SilenceNote {
    pub until: u64,
    pub by: String,
}

impl SilenceNote {
    /// The silence of a server in force at `now_ms`, if any.
    pub fn of(state: &ServerState, now_ms: u64) -> Option<SilenceNote> {
        let silence = state.silence.as_ref().filter(|_| state.silenced(now_ms))?;
        Some(SilenceNote {
            until: silence.until_ms / 1000,
            by: silence.by.clone(),
        })
    }
}

impl OverviewNote {
    /// A server's note for `/status` at `now_ms`.
    pub fn of(state: &ServerState, now_ms: u64) -> OverviewNote {
        let now = now_ms / 1000;
        OverviewNote {
            week: state
                .history
                .tally(now.saturating_sub(WINDOWS[1]), now)
                .availability(),
            silence: SilenceNote::of(state, now_ms),
        }
    }
}

/// The status screen (SPEC §7.3).
pub fn status(tr: Tr, server: &Server, view: &StatusView, role: Role) -> Screen {
    let mut text = title(server);
    text.push('\n');
    match &view.live {
        Ok(()) => text.push_str(tr.t("status_up")),
        Err(why) => text.push_str(&tr.f("status_down", &[("reason", &escape(why))])),
    }
    text.push('\n');
    match &view.web {
        Some(Ok(())) => {
            text.push_str(tr.t("status_web_up"));
            text.push('\n');
        }
        Some(Err(why)) => {
            text.push_str(&tr.f("status_web_down", &[("reason", &escape(why))]));
            text.push('\n');
        }
        None => {}
    }
    if let Some(version) = &view.version {
        text.push_str(&tr.f("status_version", &[("version", &escape(version))]));
        text.push('\n');
    }
    if view.monitoring {
        let interval = human_duration(tr, view.interval);
        text.push_str(&tr.f("status_monitoring_on", &[("interval", &interval)]));
        if let (Some(health), Some(since)) = (view.health, view.since) {
            let key = match health {
                Health::Up => "status_up_since",
                Health::Down => "status_down_since",
            };
            let ago = human_duration(tr, Duration::from_secs(view.now.saturating_sub(since)));
            text.push('\n');
            let time = view.zone.date_time(since);
            text.push_str(&tr.f(key, &[("time", &time), ("ago", &ago)]));
        }
    } else {
        text.push_str(tr.t("status_monitoring_off"));
    }
    if let Some(silence) = &view.silence {
        text.push('\n');
        let line = silenced_line(tr, &view.zone, "status_silenced", silence, view.now);
        text.push_str(&line);
    }
    if let Some(report) = &view.report {
        text.push_str("\n\n");
        text.push_str(&history_block(tr, &view.zone, report, view.now));
    }
    let mut keyboard = Vec::new();
    if role == Role::Operator {
        keyboard.push(silence_row(tr, server));
        if view.silence.is_some() {
            keyboard.push(vec![Button::callback(
                tr.t("silence_end_button"),
                Press::EndSilence(server.key.clone()).encode(),
            )]);
        }
        let (label, target) = if view.monitoring {
            ("status_turn_off", false)
        } else {
            ("status_turn_on", true)
        };
        keyboard.push(vec![Button::callback(
            tr.t(label),
            Press::Monitor(server.key.clone(), target).encode(),
        )]);
    }
    keyboard.push(vec![
        Button::callback(tr.t("refresh"), Press::Status(server.key.clone()).encode()),
        back_to_menu(tr, server),
    ]);
    Screen { text, keyboard }
}

/// "🔕 Silence 1 h", "🔕 4 h", "🔕 24 h": the buttons that silence a server.
pub fn silence_row(tr: Tr, server: &Server) -> Vec<Button> {
    SILENCE_HOURS
        .iter()
        .enumerate()
        .map(|(i, &hours)| {
            let duration = tr.f("unit_h", &[("n", &hours.to_string())]);
            let key = if i == 0 {
                "silence_button"
            } else {
                "silence_more"
            };
            Button::callback(
                tr.f(key, &[("duration", &duration)]),
                Press::Silence(server.key.clone(), hours).encode(),
            )
        })
        .collect()
}

/// The buttons of a DOWN alert for an operator: silence the server.
pub fn alert_keyboard(tr: Tr, server: &Server) -> Keyboard {
    vec![silence_row(tr, server)]
}

/// "🔕 Silenced until 15:00 CET by @ann" (`key` picks the wording).
pub fn silenced_line(tr: Tr, zone: &Zone, key: &str, silence: &SilenceNote, now: u64) -> String {
    tr.f(
        key,
        &[
            ("until", &clock_time(zone, silence.until, now)),
            ("by", &escape(&shorten(&short_name(&silence.by), 60))),
        ],
    )
}

/// "@ann" for "Ann Lee (@ann)", else the name as it is.
fn short_name(name: &str) -> String {
    match name.rfind("(@") {
        Some(i) if name.ends_with(')') => name[i + 1..name.len() - 1].to_string(),
        _ => name.to_string(),
    }
}

/// "15:00 CET" on the day of `now`, else "2026-11-26 15:00 CET".
fn clock_time(zone: &Zone, unix: u64, now: u64) -> String {
    format!("{} {}", zone.when(unix, now), zone.at(unix).1)
}

/// "99.95 %" (in the language's way of writing it); "100 %" for all of it.
pub fn percent(tr: Tr, p: Percent) -> String {
    if p.0 >= 10_000 {
        return tr.f("percent_whole", &[("whole", "100")]);
    }
    tr.f(
        "percent",
        &[
            ("whole", &p.whole().to_string()),
            ("hundredths", &format!("{:02}", p.hundredths())),
        ],
    )
}

/// One window of the availability line: "24 h 99.95 %", with how much of
/// it was watched when not all of it was.
fn window(tr: Tr, label: &str, tally: &Tally) -> String {
    let label = tr.t(label);
    match tally.availability() {
        None => tr.f("availability_none", &[("window", label)]),
        Some(p) if tally.watched() < 100 => tr.f(
            "availability_partly",
            &[
                ("window", label),
                ("percent", &percent(tr, p)),
                ("watched", &tally.watched().to_string()),
            ],
        ),
        Some(p) => tr.f(
            "availability_window",
            &[("window", label), ("percent", &percent(tr, p))],
        ),
    }
}

/// The cell of the strip for one hour.
fn cell(class: Class) -> &'static str {
    match class {
        Class::Up => "🟩",
        Class::Down => "🟥",
        Class::Silenced => "🟦",
        Class::Off | Class::Unknown => "⬜",
    }
}

/// Availability over 24 h / 7 d / 30 d, the strip of the last 24 hours and
/// the last outages (issue 15).
fn history_block(tr: Tr, zone: &Zone, report: &Report, now: u64) -> String {
    let windows: Vec<String> = ["window_day", "window_week", "window_month"]
        .iter()
        .zip(&report.windows)
        .map(|(label, tally)| window(tr, label, tally))
        .collect();
    let mut text = if report.windows.iter().all(|t| t.counted() == 0) {
        tr.t("availability_unknown").to_string()
    } else {
        tr.f("availability", &[("windows", &windows.join(" · "))])
    };
    text.push('\n');
    text.extend(report.strip.iter().map(|c| cell(*c)));
    text.push('\n');
    text.push_str(tr.t("strip_legend"));
    text.push_str("\n\n");
    if report.outages.is_empty() {
        text.push_str(tr.t("outages_none"));
        return text;
    }
    text.push_str(tr.t("outages_title"));
    for outage in &report.outages {
        let end = outage.to.unwrap_or(now).max(outage.from);
        let length = Duration::from_secs(end - outage.from);
        let cause = match &outage.cause {
            Some(c) if !c.is_empty() => escape(c),
            _ => escape(tr.t("outage_no_cause")),
        };
        let key = if outage.to.is_some() {
            "outage_line"
        } else {
            "outage_line_ongoing"
        };
        text.push('\n');
        text.push_str(&tr.f(
            key,
            &[
                ("time", &zone.date_time(outage.from)),
                ("duration", &human_duration(tr, length)),
                ("cause", &cause),
            ],
        ));
        if outage.counted == 0 && !length.is_zero() {
            text.push_str(tr.t("outage_not_counted"));
        } else if outage.counted < length.as_secs() {
            let counted = human_duration(tr, Duration::from_secs(outage.counted));
            text.push_str(&tr.f("outage_partly", &[("duration", &counted)]));
        }
    }
    text
}

/// The one message at the end of a silence, when the server's state differs
/// from what the chats were last told: DOWN since when and why, or up.
pub fn silence_over(
    tr: Tr,
    zone: &Zone,
    server: &Server,
    health: Health,
    since: u64,
    now: u64,
    cause: Option<&str>,
) -> String {
    let name = escape(&shorten(&server.name, 100));
    match health {
        Health::Down => tr.f(
            "silence_over_down",
            &[
                ("name", &name),
                ("time", &zone.when(since, now)),
                (
                    "duration",
                    &human_duration(tr, Duration::from_secs(now.saturating_sub(since))),
                ),
                ("reason", &escape(cause.unwrap_or(tr.t("outage_no_cause")))),
            ],
        ),
        Health::Up => tr.f(
            "silence_over_up",
            &[("name", &name), ("time", &zone.when(since, now))],
        ),
    }
}

/// A conference in a list, and whether its participants could be read.
#[derive(Debug, Clone)]
pub struct Entry<'c> {
    pub call: &'c Call,
    /// For forgotten lists: the participants could not be read.
    pub unknown: bool,
    /// For forgotten lists: the rule it matched.
    pub rule: Option<Rule>,
    /// Being recorded right now (shown when known).
    pub recording: Option<Recording>,
}

impl<'c> Entry<'c> {
    /// A running conference as the running list shows it.
    pub fn plain(call: &'c Call) -> Entry<'c> {
        Entry {
            call,
            unknown: false,
            rule: None,
            recording: None,
        }
    }
}

/// The forgotten rule a conference matched (SPEC §7.6), and how many people
/// are in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    pub kind: ForgottenRule,
    pub participants: usize,
}

/// "nobody left", "only the owner left", "no moderator among 3 participants".
pub fn rule_label(tr: Tr, rule: Rule) -> String {
    match (rule.kind, rule.participants) {
        (ForgottenRule::Empty, _) => tr.t("forgotten_rule_empty").to_string(),
        (ForgottenRule::OwnerAlone, _) => tr.t("forgotten_rule_owner_alone").to_string(),
        (ForgottenRule::NoLeader, 1) => tr.t("forgotten_rule_no_leader_one").to_string(),
        (ForgottenRule::NoLeader, n) => {
            tr.f("forgotten_rule_no_leader", &[("count", &n.to_string())])
        }
    }
}

/// A page of running conferences (SPEC §7.4).
pub fn running(
    tr: Tr,
    server: &Server,
    calls: &[Call],
    page: u32,
    role: Role,
    notice: Option<&str>,
) -> Screen {
    let entries: Vec<Entry> = calls.iter().map(Entry::plain).collect();
    let page = ListPage {
        entries: &entries,
        kind: ListKind::Running,
        page,
        role,
        notice,
        header: tr.f("running_title", &[("count", &calls.len().to_string())]),
        empty: tr.t("running_empty"),
        extra_row: Vec::new(),
    };
    list(tr, server, page)
}

/// The forgotten conferences older than `threshold`; `minutes` is what the
/// buttons carry (0: the configured threshold).
pub struct ForgottenList<'a> {
    pub entries: &'a [Entry<'a>],
    pub minutes: u32,
    pub threshold: Duration,
}

/// A page of forgotten conferences (SPEC §7.6).
pub fn forgotten(
    tr: Tr,
    server: &Server,
    found: &ForgottenList,
    page: u32,
    role: Role,
    notice: Option<&str>,
) -> Screen {
    let (minutes, threshold) = (found.minutes, found.threshold);
    let chosen = |m: u32| {
        m == minutes || (minutes == 0 && threshold == Duration::from_secs(u64::from(m) * 60))
    };
    let header = tr.f(
        "forgotten_title",
        &[
            ("count", &found.entries.len().to_string()),
            ("threshold", &human_duration(tr, threshold)),
        ],
    );
    let mut extra_row = Vec::new();
    for m in THRESHOLDS {
        let label = human_duration(tr, Duration::from_secs(u64::from(m) * 60));
        let label = if chosen(m) {
            format!("✓ {label}")
        } else {
            label
        };
        extra_row.push(Button::callback(
            label,
            Press::Forgotten(server.key.clone(), m, 0).encode(),
        ));
    }
    let page = ListPage {
        entries: found.entries,
        kind: ListKind::Forgotten(minutes),
        page,
        role,
        notice,
        header,
        empty: tr.t("forgotten_empty"),
        extra_row,
    };
    list(tr, server, page)
}

#[derive(Clone, Copy)]
enum ListKind {
    Running,
    Forgotten(u32),
}

impl ListKind {
    fn press(self, server: &Server, page: u32) -> Press {
        match self {
            ListKind::Running => Press::Running(server.key.clone(), page),
            ListKind::Forgotten(m) => Press::Forgotten(server.key.clone(), m, page),
        }
    }
    fn list(self) -> List {
        match self {
            ListKind::Running => List::Running,
            ListKind::Forgotten(m) => List::Forgotten(m),
        }
    }
}

/// What a list screen shows, before it is cut into pages.
struct ListPage<'a> {
    entries: &'a [Entry<'a>],
    kind: ListKind,
    page: u32,
    role: Role,
    notice: Option<&'a str>,
    header: String,
    empty: &'a str,
    extra_row: Vec<Button>,
}

fn list(tr: Tr, server: &Server, l: ListPage) -> Screen {
    let ListPage {
        entries,
        kind,
        page,
        role,
        notice,
        header,
        empty,
        extra_row,
    } = l;
    let rendered: Vec<String> = entries
        .iter()
        .enumerate()
        .map(|(i, e)| entry(tr, server, i + 1, e))
        .collect();
    let pages = paginate(&rendered);
    let page = (page as usize).min(pages.len().saturating_sub(1));
    let mut text = String::new();
    if let Some(notice) = notice {
        text.push_str(notice);
        text.push_str("\n\n");
    }
    text.push_str(&title(server));
    text.push('\n');
    text.push_str(&header);
    let mut keyboard = Vec::new();
    if entries.is_empty() {
        text.push_str("\n\n");
        text.push_str(empty);
    } else {
        let range = pages[page].clone();
        for i in range.clone() {
            text.push_str("\n\n");
            text.push_str(&rendered[i]);
        }
        if role == Role::Operator {
            for e in &entries[range] {
                if let Some(id) = &e.call.conference_id {
                    let label = tr.f("stop_button", &[("id", &shorten(id, 40))]);
                    let press = Press::AskStop(
                        server.key.clone(),
                        conference_key(&e.call.session_id),
                        kind.list(),
                    );
                    keyboard.push(vec![Button::callback(label, press.encode())]);
                }
            }
        }
        if let Some(nav) = nav_row(page, pages.len(), |p| kind.press(server, p)) {
            keyboard.push(nav);
        }
    }
    if !extra_row.is_empty() {
        keyboard.push(extra_row);
    }
    keyboard.push(vec![
        Button::callback(tr.t("refresh"), kind.press(server, page as u32).encode()),
        back_to_menu(tr, server),
    ]);
    Screen { text, keyboard }
}

/// Splits rendered entries into pages that fit the budget.
fn paginate(rendered: &[String]) -> Vec<std::ops::Range<usize>> {
    let mut pages = Vec::new();
    let mut start = 0;
    let mut used = 0;
    for (i, r) in rendered.iter().enumerate() {
        let len = units(r) + 2;
        if i > start && (i - start >= PAGE_ENTRIES || used + len > PAGE_BUDGET) {
            pages.push(start..i);
            start = i;
            used = 0;
        }
        used += len;
    }
    pages.push(start..rendered.len());
    pages
}

/// One conference: id (link), topic, owner, participants, duration, management link.
fn entry(tr: Tr, server: &Server, n: usize, e: &Entry) -> String {
    let call = e.call;
    let host = escape(&server.host);
    let mut s = format!("<b>{n}.</b> ");
    match &call.conference_id {
        Some(id) => s.push_str(&format!(
            "<a href=\"https://{host}/c/{}\">{}</a>",
            escape(&encode_segment(id)),
            escape(&shorten(id, 128))
        )),
        None => s.push_str(&tr.f(
            "entry_no_id",
            &[("session", &escape(&shorten(&call.session_id, 128)))],
        )),
    }
    let topic = match &call.topic {
        Some(t) => escape(&shorten(t, 150)),
        None => escape(tr.t("no_topic")),
    };
    s.push_str(&format!(" — <i>{topic}</i>\n"));
    let owner = call
        .owner
        .as_deref()
        .map(|o| escape(&shorten(o, 100)))
        .unwrap_or_else(|| escape(tr.t("no_owner")));
    s.push_str(&tr.f(
        "entry_details",
        &[
            ("owner", &owner),
            ("participants", &call.participant_count.to_string()),
            ("duration", &hms(call.duration)),
        ],
    ));
    s.push_str(&format!(
        " · <a href=\"https://{host}/tools/real-time/{}?a=cookies\">{}</a>",
        escape(&encode_segment(&call.session_id)),
        escape(tr.t("entry_manage"))
    ));
    if e.unknown {
        s.push('\n');
        s.push_str(tr.t("entry_participants_unknown"));
    }
    if let Some(rule) = e.rule {
        s.push('\n');
        s.push_str(&escape(&rule_label(tr, rule)));
    }
    if let Some(recording) = e.recording {
        s.push_str(if e.rule.is_some() { " · " } else { "\n" });
        s.push_str(tr.t(match recording {
            Recording::Recording => "entry_recording",
            Recording::Paused => "entry_recording_paused",
        }));
    }
    s
}

/// A conference the scheduled scan found forgotten (SPEC §8.1), pushed to
/// operators with a one-tap stop (confirmation as usual).
/// `auto_stop_in` only when a rule of `auto_stop_rules` covers it.
pub fn scan_alert(tr: Tr, server: &Server, e: &Entry, auto_stop_in: Option<Duration>) -> Screen {
    let call = e.call;
    let entry = entry(tr, server, 1, e);
    let entry = entry.strip_prefix("<b>1.</b> ").unwrap_or(&entry);
    let mut text = tr.f(
        "scan_alert",
        &[
            ("name", &escape(&shorten(&server.name, 100))),
            ("entry", entry),
        ],
    );
    if let Some(d) = auto_stop_in {
        text.push_str("\n\n");
        text.push_str(&tr.f("scan_alert_auto", &[("duration", &human_duration(tr, d))]));
    }
    let mut keyboard = Vec::new();
    if let Some(id) = &call.conference_id {
        let press = Press::AskStop(
            server.key.clone(),
            conference_key(&call.session_id),
            List::Forgotten(0),
        );
        keyboard.push(vec![Button::callback(
            tr.f("stop_button", &[("id", &shorten(id, 40))]),
            press.encode(),
        )]);
    }
    keyboard.push(vec![Button::callback(
        tr.t("menu_forgotten"),
        Press::Forgotten(server.key.clone(), 0, 0).encode(),
    )]);
    Screen { text, keyboard }
}

/// Many conferences found forgotten in one scan: one message with a button
/// to the list instead of a push each.
pub fn scan_flood(tr: Tr, server: &Server, count: usize, auto_stop_in: Option<Duration>) -> Screen {
    let mut text = tr.f(
        "scan_flood",
        &[
            ("name", &escape(&shorten(&server.name, 100))),
            ("count", &count.to_string()),
        ],
    );
    if let Some(d) = auto_stop_in {
        text.push_str("\n\n");
        text.push_str(&tr.f("scan_flood_auto", &[("duration", &human_duration(tr, d))]));
    }
    Screen {
        text,
        keyboard: vec![vec![Button::callback(
            tr.t("scan_flood_open"),
            Press::Forgotten(server.key.clone(), 0, 0).encode(),
        )]],
    }
}

/// The confirmation before a stop (SPEC §7.7).
pub fn confirm_stop(tr: Tr, server: &Server, call: &Call, list: List) -> Screen {
    let id = call.conference_id.as_deref().unwrap_or("");
    let topic = call
        .topic
        .as_deref()
        .map(|t| escape(&shorten(t, 200)))
        .unwrap_or_else(|| escape(tr.t("no_topic")));
    let text = tr.f(
        "stop_confirm",
        &[
            ("id", &escape(&shorten(id, 128))),
            ("server", &escape(&shorten(&server.name, 100))),
            ("topic", &topic),
            ("duration", &hms(call.duration)),
        ],
    );
    let key = conference_key(&call.session_id);
    Screen {
        text,
        keyboard: vec![vec![
            Button::callback(
                tr.t("stop_yes"),
                Press::Stop(server.key.clone(), key, list).encode(),
            ),
            Button::callback(tr.t("stop_cancel"), back_to_list(server, list).encode()),
        ]],
    }
}

/// The list a stop started from, first page.
pub fn back_to_list(server: &Server, list: List) -> Press {
    match list {
        List::Running => Press::Running(server.key.clone(), 0),
        List::Forgotten(m) => Press::Forgotten(server.key.clone(), m, 0),
    }
}

/// Online users (SPEC §7.5).
pub fn online(tr: Tr, server: &Server, online: &Online) -> Screen {
    let mut text = format!(
        "{}\n{}",
        title(server),
        tr.f(
            "online_count",
            &[
                ("online", &online.online.to_string()),
                ("total", &online.total.to_string())
            ]
        )
    );
    if !online.complete {
        text.push('\n');
        text.push_str(tr.t("online_partial"));
    }
    Screen {
        text,
        keyboard: vec![vec![
            Button::callback(tr.t("refresh"), Press::Online(server.key.clone()).encode()),
            back_to_menu(tr, server),
        ]],
    }
}

/// The admin-facing sentence for a TrueConf problem (SPEC §6).
pub fn problem_text(tr: Tr, problem: &Problem) -> String {
    match problem {
        Problem::Unreachable(why) => tr.f("err_unreachable", &[("reason", &escape(why))]),
        Problem::Dropped => tr.t("err_dropped").to_string(),
        Problem::Timeout => tr.t("err_timeout").to_string(),
        Problem::TlsUntrusted(why) => tr.f("err_tls", &[("reason", &escape(why))]),
        Problem::CredentialsRejected(why) => {
            let advice = if problem.grant_not_allowed() {
                tr.t("err_credentials_grant")
            } else {
                tr.t("err_credentials")
            };
            match why {
                Some(why) => format!(
                    "{advice} {}",
                    tr.f("err_server_said", &[("reason", &escape(why))])
                ),
                None => advice.to_string(),
            }
        }
        Problem::NoCredentials => tr.t("err_no_credentials").to_string(),
        Problem::MissingPermission(what) => tr.f("err_permission", &[("what", &escape(what))]),
        Problem::Unexpected(status) => tr.f("err_unexpected", &[("status", &status.to_string())]),
        Problem::Refused(status, why) => tr.f(
            "err_refused",
            &[("status", &status.to_string()), ("reason", &escape(why))],
        ),
        Problem::BadAnswer => tr.t("err_bad_answer").to_string(),
    }
}

/// A request about a server failed: say why, offer to retry.
pub fn problem(tr: Tr, server: &Server, problem: &Problem, retry: Press) -> Screen {
    Screen {
        text: format!("{}\n⚠️ {}", title(server), problem_text(tr, problem)),
        keyboard: vec![vec![
            Button::callback(tr.t("retry"), retry.encode()),
            back_to_menu(tr, server),
        ]],
    }
}

/// A page of the audit log, newest first (SPEC §8.3).
pub fn audit(tr: Tr, zone: &Zone, records: &[crate::audit::Record], page: u32) -> Screen {
    let lines: Vec<String> = records
        .iter()
        .rev()
        .map(|r| {
            let action_key = format!("audit_action_{}", r.action);
            let action = match tr.t(&action_key) {
                text if text == action_key => r.action.clone(),
                text => text.to_string(),
            };
            tr.f(
                "audit_line",
                &[
                    (
                        "time",
                        &escape(&match parse_rfc3339(&r.time) {
                            Some(unix) => zone.date_time(unix),
                            None => r.time.clone(),
                        }),
                    ),
                    ("user", &escape(&shorten(&r.user, 40))),
                    ("server", &escape(&shorten(&r.server, 60))),
                    ("action", &escape(&action)),
                    (
                        "conference",
                        &escape(&shorten(r.conference.as_deref().unwrap_or(""), 60)),
                    ),
                    ("result", &escape(&shorten(&r.result, 80))),
                ],
            )
            // Without a conference "{action} {conference}" leaves two spaces.
            .replace("  ", " ")
        })
        .collect();
    let mut text = tr.t("audit_title").to_string();
    let mut keyboard = Vec::new();
    if lines.is_empty() {
        text.push_str("\n\n");
        text.push_str(tr.t("audit_empty"));
        return Screen { text, keyboard };
    }
    let pages = paginate(&lines);
    let page = (page as usize).min(pages.len() - 1);
    for line in &lines[pages[page].clone()] {
        text.push_str("\n\n");
        text.push_str(line);
    }
    if let Some(nav) = nav_row(page, pages.len(), Press::Audit) {
        keyboard.push(nav);
    }
    Screen { text, keyboard }
}

/// One server's line of the `/status` overview.
#[derive(Debug, Clone)]
pub enum OverviewLine {
    Down(String),
    Up {
        running: Result<usize, Problem>,
        online: Result<(u64, bool), Problem>,
        /// The product and version `/vsstatus` named.
        version: Option<String>,
    },
    /// Up, and without credentials: nothing more to ask.
    MonitoringOnly {
        version: Option<String>,
    },
}

/// What `/status` adds to a server's line from the bot's own memory (so
/// also for a server that did not answer): its 7-day availability and its
/// silence.
#[derive(Debug, Clone, Default)]
pub struct OverviewNote {
    pub week: Option<Percent>,
    pub silence: Option<SilenceNote>,
}

/// `/status`: one line per server; `None` for a server that did not answer in time.
pub fn overview(
    tr: Tr,
    servers: &[Server],
    lines: &[Option<OverviewLine>],
    notes: &[OverviewNote],
    zone: &Zone,
    now: u64,
) -> String {
    let mut text = tr.t("overview_title").to_string();
    for (i, (server, line)) in servers.iter().zip(lines).enumerate() {
        let name = escape(&shorten(&server.name, 80));
        text.push_str("\n\n");
        let mut version = None;
        let line = match line {
            None => tr.f("overview_slow", &[("name", &name)]),
            Some(OverviewLine::Down(why)) => tr.f(
                "overview_down",
                &[("name", &name), ("reason", &escape(why))],
            ),
            Some(OverviewLine::Up {
                running,
                online,
                version: named,
            }) => {
                version = named.as_deref();
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
            Some(OverviewLine::MonitoringOnly { version: named }) => {
                version = named.as_deref();
                tr.f("overview_monitoring_only", &[("name", &name)])
            }
        };
        text.push_str(&line);
        let note = notes.get(i);
        if let Some(week) = note.and_then(|n| n.week) {
            text.push_str(" · ");
            text.push_str(&tr.f("overview_week", &[("percent", &percent(tr, week))]));
        }
        // The version the server names (item 9), last on its line.
        if let Some(version) = version {
            text.push_str(" · ");
            text.push_str(&escape(version));
        }
        if let Some(note) = note {
            if let Some(silence) = &note.silence {
                text.push('\n');
                text.push_str(&silenced_line(tr, zone, "overview_silenced", silence, now));
            }
        }
        if units(&text) > 3900 {
            text.push_str("\n…");
            break;
        }
    }
    text
}

/// A DOWN alert (SPEC §8.2), down since `time`.
pub fn alert_down(tr: Tr, server: &Server, time: &str, reason: &str) -> String {
    let name = escape(&shorten(&server.name, 100));
    tr.f(
        "alert_down",
        &[("name", &name), ("time", time), ("reason", &escape(reason))],
    )
}

/// The web interface/API of a server does not answer while /vsstatus does (R9).
pub fn alert_web_down(tr: Tr, server: &Server, time: &str, reason: &str) -> String {
    let name = escape(&shorten(&server.name, 100));
    tr.f(
        "alert_web_down",
        &[("name", &name), ("time", time), ("reason", &escape(reason))],
    )
}

/// An UP alert (up since `time`, after `down_for`), or a reminder (down
/// since `time`, for `down_for`).
pub fn alert_duration(
    tr: Tr,
    key: &str,
    server: &Server,
    time: &str,
    down_for: Duration,
) -> String {
    let name = escape(&shorten(&server.name, 100));
    tr.f(
        key,
        &[
            ("name", &name),
            ("time", time),
            ("duration", &human_duration(tr, down_for)),
        ],
    )
}

/// ‹ n/m › for a list of more than one page; `press` makes the press for a page.
fn nav_row(page: usize, pages: usize, press: impl Fn(u32) -> Press) -> Option<Vec<Button>> {
    if pages < 2 {
        return None;
    }
    let mut nav = Vec::new();
    if page > 0 {
        nav.push(Button::callback("‹", press(page as u32 - 1).encode()));
    }
    nav.push(Button::callback(
        format!("{}/{}", page + 1, pages),
        Press::Nothing.encode(),
    ));
    if page + 1 < pages {
        nav.push(Button::callback("›", press(page as u32 + 1).encode()));
    }
    Some(nav)
}

/// `h:mm:ss`.
pub fn hms(secs: u64) -> String {
    format!("{}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60)
}

/// "2 h 5 min", "45 s" in the user's language.
pub fn human_duration(tr: Tr, d: Duration) -> String {
    let secs = d.as_secs();
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    let unit = |key: &str, n: u64| tr.f(key, &[("n", &n.to_string())]);
    match (h, m, s) {
        (0, 0, s) => {
            if d < Duration::from_secs(1) && !d.is_zero() {
                unit("unit_ms", d.as_millis() as u64)
            } else {
                unit("unit_s", s)
            }
        }
        (0, m, 0) => unit("unit_min", m),
        (0, m, s) => format!("{} {}", unit("unit_min", m), unit("unit_s", s)),
        (h, 0, _) => unit("unit_h", h),
        (h, m, _) => format!("{} {}", unit("unit_h", h), unit("unit_min", m)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A Status screen with everything issue 15 adds, in every shipped
    /// language: every placeholder filled, within Telegram's limit.
    #[test]
    fn the_status_screen_with_silence_and_history_in_every_language() {
        use crate::history::{History, Kind, Span};
        let now = 1_795_614_300;
        let server = Server {
            name: "Main <1>".into(),
            key: "0123abcd".into(),
            host: "tc.example".into(),
            api_version: "v3.2".into(),
            client_id: "id".into(),
            client_secret: crate::config::Secret::new("s"),
            access_token: None,
            trust: crate::http::Trust::BuiltIn,
            monitor_at_start: true,
            probe_interval: Duration::from_secs(10),
            status_port: 4307,
        };
        let mut history = History {
            known_from: Some(now - 3 * 86_400),
            spans: vec![Span {
                kind: Kind::Silenced,
                from: now - 7200,
                to: Some(now + 3600),
                cause: None,
            }],
        };
        for (i, cause) in ["refused", "HTTP 503", "a <b> & c"].iter().enumerate() {
            let from = now - 20_000 + i as u64 * 3000;
            history.begin(Kind::Down, from, Some(cause));
            history.end(Kind::Down, from + 100 + i as u64 * 5000);
        }
        let view = StatusView {
            version: None,
            web: None,
            live: Err("unreachable (refused)".into()),
            monitoring: true,
            interval: Duration::from_secs(10),
            health: Some(Health::Down),
            since: Some(now - 100),
            now,
            zone: Zone::utc(),
            silence: Some(SilenceNote {
                until: now + 3600,
                by: "Ann Lee (@ann)".into(),
            }),
            report: Some(history.report(now, 3)),
        };
        let (locales, _) = crate::locale::Locales::load(None, "en").unwrap();
        for lang in ["en", "ru", "de", "es"] {
            let tr = locales.tr(lang);
            let screen = status(tr, &server, &view, Role::Operator);
            let text = &screen.text;
            assert!(!text.contains('{') && units(text) < 4096, "{lang}:\n{text}");
            assert!(
                text.contains("14:45 UTC") && text.contains("@ann"),
                "{lang}:\n{text}"
            );
            assert_eq!(screen.keyboard[0].len(), 3, "{lang}");
            let over = silence_over(
                tr,
                &Zone::utc(),
                &server,
                Health::Down,
                now - 100,
                now,
                None,
            );
            assert!(!over.contains('{'), "{lang}: {over}");
            if std::env::var_os("SHOW_SCREENS").is_some() {
                println!("--- {lang}\n{text}\n{:?}\n{over}\n", screen.keyboard);
            }
        }
    }

    #[test]
    fn hms_pads() {
        assert_eq!(hms(4000), "1:06:40");
        assert_eq!(hms(0), "0:00:00");
    }

    #[test]
    fn pages_respect_count_and_budget() {
        let small: Vec<String> = (0..20).map(|_| "x".repeat(10)).collect();
        assert_eq!(paginate(&small), vec![0..8, 8..16, 16..20]);
        let big: Vec<String> = (0..3).map(|_| "x".repeat(2000)).collect();
        assert_eq!(paginate(&big), vec![0..1, 1..2, 2..3]);
        assert_eq!(paginate(&[]), vec![0..0]);
    }
}
