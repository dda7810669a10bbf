//! Reads `settings.toml` (the original bot's format plus our additions, SPEC §3)
//! into validated `Settings`. Reports every problem at once; does no network I/O
//! and never prints a secret. The bot never writes this file.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::Value;

use crate::clock::{Zone, zoneinfo_dir};
use crate::error::Error;
use crate::http::{ProxyUrl, Trust};
use crate::timing::Timing;

/// A secret string (bot token, client secret, access token). `Debug` and
/// `Display` print `***`; the value is reachable only through `expose()`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }
    /// The raw value, for the one place that puts it on the wire.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// One TrueConf server, as configured under `[servers."NAME"]`.
#[derive(Clone, Debug)]
pub struct Server {
    /// What buttons show; any length, any characters.
    pub name: String,
    /// Short stable key for callback data (8 hex digits of a hash of the name).
    pub key: String,
    /// Host name or IP, optionally `:port` (the HTTPS web/API port).
    pub host: String,
    pub api_version: String,
    pub client_id: String,
    pub client_secret: Secret,
    /// A fixed token (e.g. the server's secret key), used first when present.
    pub access_token: Option<Secret>,
    pub trust: Trust,
    /// Monitoring on at first start (later the toggle in state.json wins).
    pub monitor_at_start: bool,
    /// Time between health probes (`server_status.timeout`).
    pub probe_interval: Duration,
    pub status_port: u16,
}

impl Server {
    /// Neither OAuth2 credentials nor a fixed token: only `/vsstatus` (and the
    /// web/API check) can be asked; every API screen says what to fill in.
    pub fn monitoring_only(&self) -> bool {
        self.access_token.is_none()
            && (self.client_id.is_empty() || self.client_secret.expose().is_empty())
    }

    /// The host without a port, and the HTTPS port (443 when none is given).
    pub fn host_and_port(&self) -> (&str, u16) {
        let host = self.host.as_str();
        if let Some(rest) = host.strip_prefix('[') {
            // [v6] or [v6]:port
            let (bare, tail) = rest.split_once(']').unwrap_or((rest, ""));
            let port = tail.strip_prefix(':').and_then(|p| p.parse().ok());
            return (bare, port.unwrap_or(443));
        }
        match host.rsplit_once(':') {
            Some((bare, port)) if !bare.contains(':') => match port.parse() {
                Ok(port) => (bare, port),
                Err(_) => (host, 443),
            },
            _ => (host, 443),
        }
    }

    /// The host without a port, for the `/vsstatus` probe.
    pub fn bare_host(&self) -> &str {
        self.host_and_port().0
    }

    /// `http://host:status_port/vsstatus` (IPv6 literals bracketed).
    pub fn status_url(&self) -> String {
        let bare = self.bare_host();
        if bare.contains(':') {
            format!("http://[{bare}]:{}/vsstatus", self.status_port)
        } else {
            format!("http://{bare}:{}/vsstatus", self.status_port)
        }
    }
}

/// A group, channel or forum topic that also gets alerts and scan pushes
/// (`alert-chats`): `-100123` or `"-100123:7"` (chat:topic).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AlertChat {
    pub chat: i64,
    pub thread: Option<i64>,
}

/// `[forgotten]`.
#[derive(Clone, Debug, PartialEq)]
pub struct Forgotten {
    pub after: Duration,
    pub scan_every: Option<Duration>,
    pub auto_stop_after: Option<Duration>,
    /// The kinds of forgotten conference that automatic stop may end
    /// (`auto_stop_rules`); the others are only shown and pushed.
    pub auto_stop_rules: Vec<ForgottenRule>,
}

/// Why a running conference looks forgotten (SPEC §7.6), as named in
/// `[forgotten] auto_stop_rules`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ForgottenRule {
    /// Nobody is left in it.
    Empty,
    /// One participant is left, and that one is a leader (role 2).
    OwnerAlone,
    /// People are in it, none of them a leader: possibly a meeting going on
    /// after its owner left, so never stopped automatically by default.
    NoLeader,
}

impl ForgottenRule {
    pub const ALL: [ForgottenRule; 3] = [
        ForgottenRule::Empty,
        ForgottenRule::OwnerAlone,
        ForgottenRule::NoLeader,
    ];
    /// What automatic stop covers unless the settings say otherwise.
    pub const DEFAULT_AUTO_STOP: [ForgottenRule; 2] =
        [ForgottenRule::Empty, ForgottenRule::OwnerAlone];

    /// The rule's name in the settings file.
    pub fn name(self) -> &'static str {
        match self {
            ForgottenRule::Empty => "empty",
            ForgottenRule::OwnerAlone => "owner_alone",
            ForgottenRule::NoLeader => "no_leader",
        }
    }

    pub fn from_name(name: &str) -> Option<ForgottenRule> {
        ForgottenRule::ALL.into_iter().find(|r| r.name() == name)
    }
}

/// `[monitoring]`.
#[derive(Clone, Debug, PartialEq)]
pub struct Monitoring {
    pub failures_before_down: u32,
    pub remind_every: Option<Duration>,
    /// How often the web interface/API is asked without a token (R9); `None` = off.
    pub api_check_every: Option<Duration>,
}

/// The validated settings. `Debug` shows no secret.
#[derive(Clone, Debug)]
pub struct Settings {
    pub path: PathBuf,
    pub token: Secret,
    pub operators: Vec<i64>,
    pub viewers: Vec<i64>,
    /// Groups, channels and topics that also get alerts and scan pushes.
    pub alert_chats: Vec<AlertChat>,
    pub locale: String,
    /// The zone of every time shown (`timezone`; default: the system's).
    pub timezone: Zone,
    pub api_url: String,
    /// A proxy for every Telegram request (`tg-proxy`); credentials secret.
    pub tg_proxy: Option<ProxyUrl>,
    pub poll_timeout: Duration,
    pub state_dir: PathBuf,
    pub locales_dir: Option<PathBuf>,
    pub servers: Vec<Server>,
    pub forgotten: Forgotten,
    pub monitoring: Monitoring,
    /// Timeouts, backoff and deadlines; not in README (tests set milliseconds).
    pub timing: Timing,
    /// The directory keys given as relative paths (`state-dir`, `locales-dir`).
    pub relative_dirs: Vec<&'static str>,
}

impl Settings {
    /// The Bot API host (with its port, if `tg-api-url` names one) for log
    /// lines: no scheme, path or credentials.
    pub fn telegram_host(&self) -> &str {
        let rest = self
            .api_url
            .split_once("://")
            .map_or(self.api_url.as_str(), |(_, rest)| rest);
        let authority = rest.split(['/', '?', '#']).next().unwrap_or(rest);
        authority
            .rsplit_once('@')
            .map_or(authority, |(_, host)| host)
    }

    /// The role of a Telegram user, or `None` for a stranger.
    pub fn role_of(&self, user_id: i64) -> Option<Role> {
        if self.operators.contains(&user_id) {
            Some(Role::Operator)
        } else if self.viewers.contains(&user_id) {
            Some(Role::Viewer)
        } else {
            None
        }
    }

    /// Everyone who gets alerts: operators, then viewers, without repeats.
    pub fn everyone(&self) -> Vec<i64> {
        let mut ids = self.operators.clone();
        for id in &self.viewers {
            if !ids.contains(id) {
                ids.push(*id);
            }
        }
        ids
    }

    pub fn server_by_key(&self, key: &str) -> Option<(usize, &Server)> {
        self.servers.iter().enumerate().find(|(_, s)| s.key == key)
    }
}

/// What a user may do (SPEC §5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Sees everything and may stop conferences and switch monitoring.
    Operator,
    /// Sees menus and lists, acts on nothing.
    Viewer,
}

/// Settings plus the warnings found while reading them.
pub struct Loaded {
    pub settings: Settings,
    pub warnings: Vec<String>,
}

/// Reads and validates the settings file. `state_directory` is the value of
/// `$STATE_DIRECTORY` (systemd), passed in so that tests need no environment.
pub fn load(path: &Path, state_directory: Option<&str>) -> Result<Loaded, Error> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        let hint = if e.kind() == std::io::ErrorKind::NotFound {
            " (copy settings.example.toml to settings.toml and fill it in, or pass --config PATH)"
        } else {
            ""
        };
        Error::Config {
            path: path.to_path_buf(),
            problems: vec![format!("cannot be read: {e}{hint}")],
        }
    })?;
    let mut loaded = parse(&text, path, state_directory)?;
    if let Some(warning) = permission_warning(path) {
        loaded.warnings.push(warning);
    }
    Ok(loaded)
}

#[cfg(unix)]
fn permission_warning(path: &Path) -> Option<String> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path).ok()?.permissions().mode();
    (mode & 0o004 != 0).then(|| {
        // main prefixes the file name to every warning.
        format!(
            "the file is readable by every user of this machine but holds secrets; run: chmod 600 {}",
            path.display()
        )
    })
}

#[cfg(not(unix))]
fn permission_warning(_: &Path) -> Option<String> {
    None
}

/// Under systemd's `LoadCredential=` the settings file is a private,
/// read-only copy in `$CREDENTIALS_DIRECTORY`: a relative `state-dir` or
/// `locales-dir` would point into it (unwritable, and gone at the next
/// start). Such settings are refused with a clear message.
pub fn check_credentials_dir(
    settings: &Settings,
    credentials_directory: Option<&str>,
) -> Result<(), Error> {
    let Some(dir) = credentials_directory.filter(|d| !d.is_empty()) else {
        return Ok(());
    };
    if !settings.path.starts_with(dir) || settings.relative_dirs.is_empty() {
        return Ok(());
    }
    let problems = settings
        .relative_dirs
        .iter()
        .map(|key| {
            format!(
                "{key}: a relative path would point into systemd's credentials directory \
                 (LoadCredential=), which is read-only; give an absolute path, e.g. {}",
                if *key == "state-dir" {
                    "/var/lib/trueconf-bot (or leave state-dir out: StateDirectory= is used)"
                } else {
                    "/etc/trueconf-bot/locales"
                }
            )
        })
        .collect();
    Err(Error::Config {
        path: settings.path.clone(),
        problems,
    })
}

/// Parses settings text. `path` names the file in messages and anchors
/// relative paths (certificates, state dir).
pub fn parse(text: &str, path: &Path, state_directory: Option<&str>) -> Result<Loaded, Error> {
    let table: toml::Table = toml::from_str(text).map_err(|e| Error::Config {
        path: path.to_path_buf(),
        problems: vec![format!("not valid TOML: {}", toml_error(text, &e))],
    })?;
    let base_dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut r = Reader::default();
    let settings = r.settings(&table, path, &base_dir, state_directory);
    if r.problems.is_empty() {
        Ok(Loaded {
            settings: settings.expect("no problems means settings were built"),
            warnings: r.warnings,
        })
    } else {
        Err(Error::Config {
            path: path.to_path_buf(),
            problems: r.problems,
        })
    }
}

/// Where and why the TOML is broken, without the line itself: toml's own
/// message quotes it, and the line may hold a secret (a token without quotes).
fn toml_error(text: &str, e: &toml::de::Error) -> String {
    let message = e.message().trim_end();
    let Some(span) = e.span() else {
        return message.to_string();
    };
    let before = &text.as_bytes()[..span.start.min(text.len())];
    let line_start = before
        .iter()
        .rposition(|b| *b == b'\n')
        .map_or(0, |i| i + 1);
    let line = before.iter().filter(|b| **b == b'\n').count() + 1;
    let column = String::from_utf8_lossy(&before[line_start..])
        .chars()
        .count()
        + 1;
    format!("TOML parse error at line {line}, column {column}: {message}")
}

/// The keys each table of the settings may hold (others are warned about).
pub const TOP_KEYS: &[&str] = &[
    "tg-api-token",
    "tg-users-id",
    "tg-viewers-id",
    "alert-chats",
    "locale",
    "timezone",
    "tg-api-url",
    "tg-proxy",
    "tg-poll-timeout",
    "state-dir",
    "locales-dir",
    "servers",
    "forgotten",
    "monitoring",
    "timing",
];
pub const SERVER_KEYS: &[&str] = &[
    "ip",
    "client_id",
    "client_secret",
    "access_token",
    "ssl_certificate",
    "server_status",
    "status_port",
    "api_version",
];
pub const STATUS_KEYS: &[&str] = &["state", "timeout"];
pub const FORGOTTEN_KEYS: &[&str] = &[
    "after_minutes",
    "scan_every_minutes",
    "auto_stop_after_minutes",
    "auto_stop_rules",
];
pub const MONITORING_KEYS: &[&str] = &[
    "failures_before_down",
    "remind_every_minutes",
    "api_check_every_seconds",
];
/// Secrets that may be all digits, so that a missing pair of quotes makes
/// them a number, which must not be shown. (A bot token never is a bare
/// number: it has a ':'.)
const SECRET_KEYS: &[&str] = &["client_secret", "access_token"];

/// Collects problems (errors) and warnings while walking the TOML tree.
#[derive(Default)]
struct Reader {
    problems: Vec<String>,
    warnings: Vec<String>,
}

impl Reader {
    fn problem(&mut self, key: &str, what: impl fmt::Display) {
        self.problems.push(format!("{key}: {what}"));
    }

    fn unknown_keys(&mut self, table: &toml::Table, known: &[&str], prefix: &str) {
        for key in table.keys() {
            if !known.contains(&key.as_str()) {
                let hint = closest(key, known)
                    .map(|k| format!(" (did you mean '{k}'?)"))
                    .unwrap_or_default();
                self.warnings
                    .push(format!("unknown key '{prefix}{key}' is ignored{hint}"));
            }
        }
    }

    fn settings(
        &mut self,
        t: &toml::Table,
        path: &Path,
        base_dir: &Path,
        state_directory: Option<&str>,
    ) -> Option<Settings> {
        self.unknown_keys(t, TOP_KEYS, "");
        let token = self.string(t, "tg-api-token", "tg-api-token", true);
        if let Some(token) = &token {
            if token.trim().is_empty() {
                self.problem(
                    "tg-api-token",
                    "is empty; put the token @BotFather gave you",
                );
            } else if token.trim() == EXAMPLE_TOKEN {
                self.problem(
                    "tg-api-token",
                    "is still the placeholder of settings.example.toml; put the token @BotFather gave you",
                );
            } else if !looks_like_bot_token(token.trim()) {
                // The value is not shown: it may be a real token, mistyped.
                self.problem(
                    "tg-api-token",
                    "does not look like a bot token (digits, ':', then about 35 letters, digits, '_' or '-'); \
                     copy it again from @BotFather",
                );
            }
        }
        let operators = self.ids(t, "tg-users-id", true);
        if operators.as_ref().is_some_and(|ids| ids.is_empty()) {
            self.problem(
                "tg-users-id",
                "is empty; list at least one Telegram user id, e.g. tg-users-id = [12345]",
            );
        }
        let viewers = self.ids(t, "tg-viewers-id", false).unwrap_or_default();
        let alert_chats = self.alert_chats(t);
        let locale = self
            .string(t, "locale", "locale", false)
            .map(|s| s.trim().to_lowercase())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "en".to_string());
        let timezone = match self.string(t, "timezone", "timezone", false) {
            None => Zone::system(),
            Some(name) => match Zone::parse(&name, &zoneinfo_dir()) {
                Ok(zone) => zone,
                Err(why) => {
                    self.problem("timezone", why);
                    Zone::utc()
                }
            },
        };
        let api_url = self
            .string(t, "tg-api-url", "tg-api-url", false)
            .unwrap_or_else(|| "https://api.telegram.org".into());
        let api_url = api_url.trim().trim_end_matches('/').to_string();
        if !(api_url.starts_with("https://") || api_url.starts_with("http://")) {
            self.problem("tg-api-url", "must start with https:// or http://");
        }
        let tg_proxy = match self.string(t, "tg-proxy", "tg-proxy", false) {
            Some(url) if url.trim().is_empty() => None,
            Some(url) => match ProxyUrl::parse(&url) {
                Ok(proxy) => Some(proxy),
                Err(why) => {
                    self.problem("tg-proxy", why);
                    None
                }
            },
            None => None,
        };
        let poll_timeout = self
            .number(t, "tg-poll-timeout", "tg-poll-timeout")
            .unwrap_or(30.0);
        if !(1.0..=50.0).contains(&poll_timeout) {
            self.problem("tg-poll-timeout", "must be between 1 and 50 seconds");
        } else if poll_timeout < 25.0 {
            self.warnings.push(format!(
                "tg-poll-timeout = {poll_timeout} polls Telegram often; 25 to 50 seconds is usual"
            ));
        }
        let mut relative_dirs = Vec::new();
        let state_dir = match self.string(t, "state-dir", "state-dir", false) {
            Some(dir) => {
                if Path::new(&dir).is_relative() {
                    relative_dirs.push("state-dir");
                }
                base_dir.join(dir)
            }
            None => match state_directory.and_then(|s| s.split(':').next()) {
                Some(dir) if !dir.is_empty() => PathBuf::from(dir),
                _ => base_dir.to_path_buf(),
            },
        };
        let locales_dir = self
            .string(t, "locales-dir", "locales-dir", false)
            .map(|d| {
                if Path::new(&d).is_relative() {
                    relative_dirs.push("locales-dir");
                }
                base_dir.join(d)
            });

        let forgotten = self.forgotten(t);
        let monitoring = self.monitoring(t);
        let timing = self.timing(t);
        let servers = self.servers(t, base_dir);

        Some(Settings {
            path: path.to_path_buf(),
            token: Secret::new(token?.trim()),
            operators: operators?,
            viewers,
            alert_chats,
            locale,
            timezone,
            api_url,
            tg_proxy,
            poll_timeout: Duration::from_secs_f64(poll_timeout.clamp(1.0, 50.0)),
            state_dir,
            locales_dir,
            servers,
            forgotten,
            monitoring,
            timing,
            relative_dirs,
        })
    }

    /// `alert-chats = [-1001234567890, "-1009876543210:7"]`.
    fn alert_chats(&mut self, t: &toml::Table) -> Vec<AlertChat> {
        const KEY: &str = "alert-chats";
        let example = "must be a list of chat ids or \"CHAT:TOPIC\" strings, \
                       e.g. alert-chats = [-1001234567890, \"-1009876543210:7\"]";
        let items = match t.get(KEY) {
            None => return Vec::new(),
            Some(Value::Array(items)) => items.clone(),
            Some(single @ (Value::Integer(_) | Value::String(_))) => vec![single.clone()],
            Some(other) => {
                self.problem(KEY, format!("{example}; found {}", describe(other)));
                return Vec::new();
            }
        };
        let mut chats = Vec::new();
        for item in &items {
            let parsed = match item {
                Value::Integer(chat) => Some(AlertChat {
                    chat: *chat,
                    thread: None,
                }),
                Value::String(s) => {
                    let s = s.trim();
                    match s.split_once(':') {
                        None => s.parse().ok().map(|chat| AlertChat { chat, thread: None }),
                        Some((chat, thread)) => {
                            match (chat.trim().parse(), thread.trim().parse()) {
                                (Ok(chat), Ok(thread)) if thread > 0 => Some(AlertChat {
                                    chat,
                                    thread: Some(thread),
                                }),
                                _ => None,
                            }
                        }
                    }
                }
                _ => None,
            };
            match parsed {
                Some(chat) if chat.chat != 0 => {
                    if !chats.contains(&chat) {
                        chats.push(chat);
                    }
                }
                _ => {
                    self.problem(KEY, format!("{example}; found {}", describe(item)));
                    return Vec::new();
                }
            }
        }
        chats
    }

    /// `[timing]`: milliseconds, each between 1 ms and an hour.
    fn timing(&mut self, t: &toml::Table) -> Timing {
        let mut timing = Timing::default();
        let Some(table) = self.table(t, "timing", "timing") else {
            return timing;
        };
        self.unknown_keys(table, Timing::KEYS, "timing.");
        for (key, field) in Timing::KEYS
            .iter()
            .filter_map(|k| Some((*k, table.get(*k)?)))
        {
            let full = format!("timing.{key}");
            match field {
                Value::Integer(ms) if (1..=3_600_000).contains(ms) => {
                    if let Some(slot) = timing.field(key) {
                        *slot = Duration::from_millis(*ms as u64);
                    }
                }
                Value::Integer(_) => self.problem(&full, "must be between 1 and 3600000 (ms)"),
                other => self.problem(&full, wrong_type("a whole number of milliseconds", other)),
            }
        }
        timing
    }

    fn forgotten(&mut self, t: &toml::Table) -> Forgotten {
        let mut f = Forgotten {
            after: Duration::from_secs(3600),
            scan_every: None,
            auto_stop_after: None,
            auto_stop_rules: ForgottenRule::DEFAULT_AUTO_STOP.to_vec(),
        };
        let Some(table) = self.table(t, "forgotten", "forgotten") else {
            return f;
        };
        self.unknown_keys(table, FORGOTTEN_KEYS, "forgotten.");
        if let Some(m) = self.minutes(table, "after_minutes", "forgotten.after_minutes", false) {
            f.after = m;
        }
        f.scan_every = self.minutes(
            table,
            "scan_every_minutes",
            "forgotten.scan_every_minutes",
            true,
        );
        f.auto_stop_after = self.minutes(
            table,
            "auto_stop_after_minutes",
            "forgotten.auto_stop_after_minutes",
            true,
        );
        f.scan_every = f.scan_every.filter(|d| !d.is_zero());
        if let Some(every) = f.scan_every {
            if every < Duration::from_millis(60) {
                self.problem(
                    "forgotten.scan_every_minutes",
                    "must be 0 (off) or at least 0.001 minutes",
                );
            } else if every < Duration::from_secs(60) {
                self.warnings.push(
                    "forgotten.scan_every_minutes is below a minute: every scan reads the whole call log"
                        .into(),
                );
            }
        }
        f.auto_stop_after = f.auto_stop_after.filter(|d| !d.is_zero());
        if let Some(rules) = self.rules(table) {
            f.auto_stop_rules = rules;
        }
        f
    }

    /// `[forgotten] auto_stop_rules`: a list of rule names, each known.
    fn rules(&mut self, table: &toml::Table) -> Option<Vec<ForgottenRule>> {
        let key = "forgotten.auto_stop_rules";
        let known = ForgottenRule::ALL
            .iter()
            .map(|r| format!("\"{}\"", r.name()))
            .collect::<Vec<_>>()
            .join(", ");
        let items = match table.get("auto_stop_rules")? {
            Value::Array(items) => items,
            other => {
                self.problem(
                    key,
                    format!(
                        "{}, e.g. auto_stop_rules = [\"empty\", \"owner_alone\"]",
                        wrong_type(&format!("a list out of {known}"), other)
                    ),
                );
                return None;
            }
        };
        let mut rules = Vec::new();
        let mut bad = false;
        for item in items {
            match item {
                Value::String(name) => match ForgottenRule::from_name(name.trim()) {
                    Some(rule) if !rules.contains(&rule) => rules.push(rule),
                    Some(_) => {}
                    None => {
                        // The name is the admin's own typo, not a secret.
                        let shown = crate::html::shorten(name, 40);
                        self.problem(
                            key,
                            format!("unknown rule {shown:?}; the rules are {known}"),
                        );
                        bad = true;
                    }
                },
                other => {
                    self.problem(
                        key,
                        format!(
                            "must list rule names in quotes ({known}), found {}",
                            describe(other)
                        ),
                    );
                    bad = true;
                }
            }
        }
        (!bad).then_some(rules)
    }

    fn monitoring(&mut self, t: &toml::Table) -> Monitoring {
        let mut m = Monitoring {
            failures_before_down: 2,
            remind_every: None,
            api_check_every: Some(Duration::from_secs(60)),
        };
        let Some(table) = self.table(t, "monitoring", "monitoring") else {
            return m;
        };
        self.unknown_keys(table, MONITORING_KEYS, "monitoring.");
        let key = "monitoring.failures_before_down";
        match table.get("failures_before_down") {
            None => {}
            Some(Value::Integer(n)) if (1..=1000).contains(n) => m.failures_before_down = *n as u32,
            Some(Value::Integer(_)) => self.problem(key, "must be between 1 and 1000"),
            Some(other) => self.problem(key, wrong_type("a whole number", other)),
        }
        m.remind_every = self
            .minutes(
                table,
                "remind_every_minutes",
                "monitoring.remind_every_minutes",
                true,
            )
            .filter(|d| !d.is_zero());
        let key = "monitoring.api_check_every_seconds";
        if let Some(secs) = self.number(table, "api_check_every_seconds", key) {
            if secs == 0.0 {
                m.api_check_every = None;
            } else if (0.01..=86_400.0).contains(&secs) {
                m.api_check_every = Some(Duration::from_secs_f64(secs));
            } else {
                self.problem(
                    key,
                    "must be 0 (off), or at least 0.01 and at most 86400 seconds",
                );
            }
        }
        m
    }

    fn servers(&mut self, t: &toml::Table, base_dir: &Path) -> Vec<Server> {
        let Some(table) = self.table(t, "servers", "servers") else {
            if !t.contains_key("servers") {
                self.problem(
                    "servers",
                    "no server configured; add a [servers.\"NAME\"] table with ip and credentials",
                );
            }
            return Vec::new();
        };
        if table.is_empty() {
            self.problem(
                "servers",
                "no server configured; add a [servers.\"NAME\"] table with ip and credentials",
            );
        }
        let mut servers: Vec<Server> = Vec::new();
        for (name, value) in table {
            let prefix = format!("servers.{}", quote_key(name));
            let Value::Table(s) = value else {
                self.problem(&prefix, wrong_type("a table", value));
                continue;
            };
            if name.trim().is_empty() {
                self.problem(&prefix, "a server name must not be empty");
                continue;
            }
            if let Some(server) = self.server(name, s, &prefix, base_dir) {
                if let Some(other) = servers.iter().find(|o| o.key == server.key) {
                    let other = other.name.clone();
                    self.problem(
                        &prefix,
                        format!("its short key collides with server '{other}'; rename one of them"),
                    );
                }
                servers.push(server);
            }
        }
        servers
    }

    fn server(
        &mut self,
        name: &str,
        s: &toml::Table,
        prefix: &str,
        base_dir: &Path,
    ) -> Option<Server> {
        self.unknown_keys(s, SERVER_KEYS, &format!("{prefix}."));
        let before = self.problems.len();
        let key = |k: &str| format!("{prefix}.{k}");
        let host = self
            .string(s, "ip", &key("ip"), true)
            .map(|ip| clean_host(&ip));
        if host.as_deref() == Some("") {
            self.problem(
                &key("ip"),
                "is empty; put the server's host name or IP address",
            );
        }
        let client_id = self
            .string(s, "client_id", &key("client_id"), false)
            .unwrap_or_default();
        let client_secret = self
            .string(s, "client_secret", &key("client_secret"), false)
            .unwrap_or_default();
        let access_token = self
            .string(s, "access_token", &key("access_token"), false)
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty());
        let has_creds = !client_id.trim().is_empty() && !client_secret.trim().is_empty();
        if access_token.is_none() && !has_creds {
            // The vendor's own example ships with empty credentials, and every
            // file the original accepted must load: such a server is watched
            // through /vsstatus only.
            self.warnings.push(format!(
                "{prefix}: no client_id and client_secret (an OAuth2 application of the server) and no access_token: \
                 this server is monitored only (Status works; conferences and users need them)"
            ));
        }
        let trust = match s.get("ssl_certificate") {
            None | Some(Value::Boolean(true)) => Trust::BuiltIn,
            Some(Value::Boolean(false)) => Trust::Off,
            Some(Value::String(p)) if p.trim().is_empty() => Trust::Off,
            Some(Value::String(p)) => {
                let path = base_dir.join(p.trim());
                match crate::http::load_pem_certificates(&path) {
                    Ok(certs) => Trust::Pinned {
                        path,
                        certs: certs.iter().map(|c| c.to_vec()).collect(),
                    },
                    Err(reason) => {
                        self.problem(
                            &key("ssl_certificate"),
                            format!("certificate file {} {reason}", path.display()),
                        );
                        Trust::Off
                    }
                }
            }
            Some(other) => {
                self.problem(
                    &key("ssl_certificate"),
                    wrong_type("true, false or the path of a PEM file", other),
                );
                Trust::Off
            }
        };
        let status_port = match s.get("status_port") {
            None => 4307,
            Some(Value::Integer(p)) if (1..=65535).contains(p) => *p as u16,
            Some(Value::Integer(_)) => {
                self.problem(&key("status_port"), "must be a port number from 1 to 65535");
                4307
            }
            Some(other) => {
                self.problem(&key("status_port"), wrong_type("a port number", other));
                4307
            }
        };
        let api_version = self
            .string(s, "api_version", &key("api_version"), false)
            .map(|v| v.trim().trim_matches('/').to_string())
            .unwrap_or_else(|| "v3.3".into());
        if !is_v3(&api_version) {
            let why = if api_version.starts_with("v4") || api_version.starts_with("V4") {
                "v4 is not supported: this bot speaks API v3.x (e.g. v3.3), which TrueConf Server 5.5 still serves"
            } else {
                "must be v3.N, e.g. v3.3 (this bot speaks API v3.x)"
            };
            self.problem(&key("api_version"), why);
        }
        let (mut monitor_at_start, mut probe_interval) = (false, Duration::from_secs(15));
        if let Some(st) = self.table(s, "server_status", &key("server_status")) {
            self.unknown_keys(st, STATUS_KEYS, &format!("{prefix}.server_status."));
            let state_key = key("server_status.state");
            match st.get("state") {
                None => {}
                Some(Value::Boolean(b)) => monitor_at_start = *b,
                Some(Value::Integer(0)) => monitor_at_start = false,
                Some(Value::Integer(1)) => monitor_at_start = true,
                Some(other) => self.problem(&state_key, wrong_type("true, false, 1 or 0", other)),
            }
            let timeout_key = key("server_status.timeout");
            if let Some(secs) = self.number(st, "timeout", &timeout_key) {
                if (0.01..=86_400.0).contains(&secs) {
                    probe_interval = Duration::from_secs_f64(secs);
                    if secs < 1.0 {
                        self.warnings.push(format!(
                            "{timeout_key} = {secs} probes the server more than once a second"
                        ));
                    }
                } else {
                    self.problem(
                        &timeout_key,
                        "must be at least 0.01 and at most 86400 seconds",
                    );
                }
            }
        }
        if self.problems.len() > before {
            return None;
        }
        Some(Server {
            name: name.to_string(),
            key: short_key(name),
            host: host?,
            api_version,
            client_id: client_id.trim().to_string(),
            client_secret: Secret::new(client_secret.trim()),
            access_token: access_token.map(Secret::new),
            trust,
            monitor_at_start,
            probe_interval,
            status_port,
        })
    }

    fn table<'t>(&mut self, t: &'t toml::Table, name: &str, key: &str) -> Option<&'t toml::Table> {
        match t.get(name) {
            None => None,
            Some(Value::Table(table)) => Some(table),
            Some(other) => {
                self.problem(key, wrong_type("a table", other));
                None
            }
        }
    }

    fn string(&mut self, t: &toml::Table, name: &str, key: &str, required: bool) -> Option<String> {
        match t.get(name) {
            None => {
                if required {
                    self.problem(key, "is missing");
                }
                None
            }
            Some(Value::String(s)) => Some(s.clone()),
            // A secret written without quotes is not repeated in the message.
            Some(Value::Integer(_) | Value::Float(_)) if SECRET_KEYS.contains(&name) => {
                self.problem(key, "must be a string in quotes, found a number");
                None
            }
            Some(other) => {
                self.problem(key, wrong_type("a string in quotes", other));
                None
            }
        }
    }

    fn number(&mut self, t: &toml::Table, name: &str, key: &str) -> Option<f64> {
        match t.get(name) {
            None => None,
            Some(Value::Integer(n)) => Some(*n as f64),
            Some(Value::Float(f)) if f.is_finite() => Some(*f),
            Some(other) => {
                self.problem(key, wrong_type("a number", other));
                None
            }
        }
    }

    /// A duration in minutes (fractions allowed). `zero_ok` allows 0 = off.
    fn minutes(
        &mut self,
        t: &toml::Table,
        name: &str,
        key: &str,
        zero_ok: bool,
    ) -> Option<Duration> {
        let minutes = self.number(t, name, key)?;
        let ok = if zero_ok {
            minutes >= 0.0
        } else {
            minutes > 0.0
        };
        if !ok || minutes > 525_600.0 {
            let low = if zero_ok { "0 (off)" } else { "more than 0" };
            self.problem(key, format!("must be {low} and at most 525600 minutes"));
            return None;
        }
        Some(Duration::from_secs_f64(minutes * 60.0))
    }

    fn ids(&mut self, t: &toml::Table, name: &str, required: bool) -> Option<Vec<i64>> {
        let example =
            format!("must be a list of numeric Telegram user ids, e.g. {name} = [12345, 67890]");
        match t.get(name) {
            None => {
                if required {
                    self.problem(name, format!("is missing; it {example}"));
                }
                None
            }
            Some(Value::Integer(id)) => Some(vec![*id]),
            Some(Value::Array(items)) => {
                let mut ids = Vec::new();
                for item in items {
                    match item {
                        Value::Integer(id) => ids.push(*id),
                        Value::String(s) if s.trim().parse::<i64>().is_ok() => {
                            ids.push(s.trim().parse().unwrap_or_default())
                        }
                        other => {
                            self.problem(name, format!("{example}; found {}", describe(other)));
                            return None;
                        }
                    }
                }
                Some(ids)
            }
            Some(other) => {
                self.problem(name, format!("{example}; found {}", describe(other)));
                None
            }
        }
    }
}

fn wrong_type(expected: &str, found: &Value) -> String {
    format!("must be {expected}, found {}", describe(found))
}

fn describe(v: &Value) -> String {
    match v {
        Value::String(_) => "a string".into(),
        Value::Integer(n) => format!("the number {n}"),
        Value::Float(f) => format!("the number {f}"),
        Value::Boolean(b) => format!("{b}"),
        Value::Datetime(_) => "a date".into(),
        Value::Array(_) => "a list".into(),
        Value::Table(_) => "a table".into(),
    }
}

fn quote_key(name: &str) -> String {
    let bare = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if bare {
        name.to_string()
    } else {
        format!("{name:?}")
    }
}

/// `https://host:port/` → `host:port`: admins paste URLs.
fn clean_host(ip: &str) -> String {
    let ip = ip.trim();
    let ip = ip
        .strip_prefix("https://")
        .or_else(|| ip.strip_prefix("http://"))
        .unwrap_or(ip);
    ip.trim_end_matches('/').to_string()
}

/// The token of settings.example.toml: a placeholder that cannot work.
pub const EXAMPLE_TOKEN: &str = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw";

/// `v3.N` (N a number): the API versions this bot speaks.
fn is_v3(version: &str) -> bool {
    version
        .strip_prefix("v3.")
        .is_some_and(|n| !n.is_empty() && n.len() <= 4 && n.bytes().all(|b| b.is_ascii_digit()))
}

fn looks_like_bot_token(token: &str) -> bool {
    match token.split_once(':') {
        Some((id, rest)) => {
            !id.is_empty()
                && id.bytes().all(|b| b.is_ascii_digit())
                && rest.len() >= 30
                && rest
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        }
        None => false,
    }
}

/// 8 hex digits of FNV-1a over the name: stable across restarts and reordering.
pub fn short_key(name: &str) -> String {
    let mut hash: u32 = 0x811c_9dc5;
    for byte in name.bytes() {
        hash ^= u32::from(byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    format!("{hash:08x}")
}

/// The known key closest to a typo, if it is close enough to be a typo.
fn closest<'k>(key: &str, known: &[&'k str]) -> Option<&'k str> {
    known
        .iter()
        .map(|k| (edit_distance(key, k), *k))
        .filter(|(d, _)| *d <= 3)
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests;
