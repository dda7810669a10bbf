//! The `bot` thread: the long-poll loop (one `getUpdates` at a time, each
//! update handled on its own and confirmed) and the dispatcher (access
//! checks, roles, routing). Screens that need a TrueConf server go to that
//! server's thread; this thread never waits on a TrueConf server, and never
//! sleeps on Telegram either (`Patience::None`): a person can press again.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::mpsc::Sender;
use std::time::Instant;

use serde_json::json;

use crate::callback::Press;
use crate::chat::{self, Patience};
use crate::config::Role;
use crate::error::Error;
use crate::http::NetError;
use crate::locale::Tr;
use crate::overview::Overview;
use crate::screen;
use crate::server::{PressLog, ServerJob};
use crate::shared::Shared;
use crate::shutdown::Shutdown;
use crate::telegram::{Incoming, Place, Telegram, TgError, User, parse_update};
use crate::timing::Backoff;

/// getMe (401 → the token is wrong) and deleteWebhook, retried with backoff on
/// network trouble. `None` when shut down while waiting.
pub fn start(shared: &Shared, tg: &Telegram, shutdown: &Shutdown) -> Result<Option<String>, Error> {
    let mut backoff = Backoff::new(&shared.settings.timing);
    let mut failures = 0u32;
    let username = loop {
        match tg.get_me() {
            Ok(name) => break name,
            Err(TgError::Api { code: 401, .. }) | Err(TgError::Api { code: 404, .. }) => {
                return Err(Error::TokenRejected);
            }
            Err(e) => {
                let wait = e.retry_after().unwrap_or_else(|| backoff.next_wait());
                let via = match &shared.settings.tg_proxy {
                    Some(proxy) => format!(" through the proxy {}", proxy.shown()),
                    None => String::new(),
                };
                let host = shared.settings.telegram_host();
                failures += 1;
                if failures == 1 {
                    log::warn!(
                        "cannot reach Telegram at {host}{via}: {}; trying again in {:.1} s, and for \
                         as long as it takes (`trueconf-bot check` diagnoses it: {})",
                        why_unreachable(&e),
                        wait.as_secs_f64(),
                        check_hint(&shared.settings.path)
                    );
                } else {
                    log::warn!(
                        "still cannot reach Telegram at {host}{via} ({failures} tries): {}; \
                         trying again in {:.1} s",
                        why_unreachable(&e),
                        wait.as_secs_f64()
                    );
                }
                if shutdown.wait(wait) {
                    return Ok(None);
                }
            }
        }
    };
    // Not retried here: polling starts at once, and a webhook still set
    // shows as 409 there, which deletes it again.
    delete_webhook(tg);
    Ok(Some(username))
}

/// Why Telegram could not be reached, in the admin's terms (DNS, refused,
/// TLS, timeout, a proxy's page).
fn why_unreachable(e: &TgError) -> String {
    match e {
        TgError::Net(NetError::Unreachable(why)) if why.contains("host name not found") => {
            "the host name does not resolve (DNS)".into()
        }
        TgError::Net(NetError::Unreachable(why)) => format!("no connection ({why})"),
        TgError::Net(NetError::Timeout) => "no answer in time (timeout)".into(),
        TgError::Net(NetError::Tls(why)) => format!("the TLS handshake failed ({why})"),
        TgError::Net(NetError::Other(why)) => format!("the request failed ({why})"),
        TgError::Api {
            code, description, ..
        } => format!("Telegram answered {code} {description}"),
        TgError::BadAnswer { status } => format!(
            "the answer is not the Bot API's (HTTP {status}; a proxy or captive portal in between?)"
        ),
    }
}

/// The self-test command for these settings. Under systemd the bot reads a
/// private copy (LoadCredential=), which the admin cannot pass to `check`.
fn check_hint(path: &std::path::Path) -> String {
    let copy = std::env::var_os("CREDENTIALS_DIRECTORY").is_some_and(|dir| path.starts_with(dir));
    if copy {
        "trueconf-bot check --config FILE, FILE being the settings LoadCredential= names \
         (e.g. /etc/trueconf-bot/settings.toml)"
            .into()
    } else {
        format!("trueconf-bot check --config {}", path.display())
    }
}

/// deleteWebhook (pending updates kept): polling needs no webhook.
fn delete_webhook(tg: &Telegram) {
    if let Err(e) = tg.call("deleteWebhook", &json!({"drop_pending_updates": false})) {
        log::warn!("telegram deleteWebhook: {e}");
    }
}

/// What the `bot` thread is handed at start.
pub struct BotThread {
    pub shared: Arc<Shared>,
    pub tg: Telegram,
    pub username: String,
    /// Each server thread's queue, by server index.
    pub servers: Vec<Sender<ServerJob>>,
    pub presses: Arc<PressLog>,
    pub shutdown: Shutdown,
}

/// The long-poll loop: one `getUpdates` at a time, each update handled on its
/// own and confirmed, the last handled id kept in the state file.
pub fn run(parts: BotThread) {
    let shared = parts.shared.clone();
    let settings = &shared.settings;
    let mut offset = shared
        .store
        .read(|d| d.last_update_id)
        .map(|id| id.saturating_add(1));
    let mut backoff = Backoff::new(&settings.timing);
    let mut dispatcher = Dispatcher {
        username: parts.username.to_lowercase(),
        denied: HashMap::new(),
        parts: &parts,
    };
    let floor = settings.timing.poll_floor;
    while !parts.shutdown.is_set() {
        let asked = Instant::now();
        let updates = match parts.tg.get_updates(offset, settings.poll_timeout) {
            Ok(updates) => {
                backoff.reset();
                // A Bot API server that answers at once instead of holding
                // the poll (some proxies, emulators) is asked at most once
                // per `poll_floor`, not thousands of times a second.
                if updates.is_empty() && parts.shutdown.wait(floor.saturating_sub(asked.elapsed()))
                {
                    break;
                }
                updates
            }
            Err(e) => {
                let wait = match &e {
                    TgError::Api { code: 409, .. } => {
                        log::warn!(
                            "telegram getUpdates: 409 conflict: another instance is polling \
                             or a webhook is set; deleting the webhook again"
                        );
                        delete_webhook(&parts.tg);
                        backoff.next_wait()
                    }
                    TgError::Api { code: 401, .. } => {
                        log::error!("telegram getUpdates: 401: the bot token was revoked");
                        settings.timing.backoff_max
                    }
                    _ => {
                        let wait = e.retry_after().unwrap_or_else(|| backoff.next_wait());
                        log::warn!("telegram getUpdates: {e}; again in {} ms", wait.as_millis());
                        wait
                    }
                };
                if parts.shutdown.wait(wait) {
                    break;
                }
                continue;
            }
        };
        let mut last = None;
        for raw in &updates {
            let (id, incoming) = parse_update(raw);
            match id {
                // Telegram applied the offset already: whatever it sends is new,
                // even an id below ours (another Bot API server, ids restarted).
                Some(id) => {
                    dispatcher.handle(incoming);
                    offset = Some(id.saturating_add(1));
                    last = Some(id);
                }
                None => log::warn!("telegram update without update_id skipped"),
            }
        }
        if let Some(id) = last {
            shared.store.update(|d| d.last_update_id = Some(id));
        }
    }
}

/// Access checks and routing of one update.
struct Dispatcher<'a> {
    username: String,
    /// When each stranger was last answered (denials are rate-limited).
    denied: HashMap<i64, Instant>,
    parts: &'a BotThread,
}

/// The poll thread shows what it can without waiting.
const NOW: Patience = Patience::None;

impl Dispatcher<'_> {
    fn shared(&self) -> &Shared {
        &self.parts.shared
    }

    fn handle(&mut self, incoming: Incoming) {
        match incoming {
            Incoming::Message { from, place, text } => self.message(&from, place, &text),
            Incoming::Callback {
                id,
                from,
                place,
                message_id,
                data,
            } => self.callback(&id, &from, place, message_id, &data),
            Incoming::Ignored(kind) => log::debug!("telegram update ignored: {kind}"),
        }
    }

    /// Whether to answer a stranger now (once a minute at most), logging the denial.
    fn deny(&mut self, user_id: i64) -> bool {
        let now = Instant::now();
        let every = self.shared().settings.timing.denial_every;
        if self.denied.len() > 10_000 {
            self.denied.retain(|_, t| now.duration_since(*t) < every);
        }
        match self.denied.get(&user_id) {
            Some(t) if now.duration_since(*t) < every => false,
            _ => {
                log::info!("access denied to Telegram user {user_id}");
                self.denied.insert(user_id, now);
                true
            }
        }
    }

    /// Keeps the user's Telegram language for the alerts pushed to them
    /// (from any update: a private chat, a group, a press).
    fn remember_language(&self, user: &User) {
        let store = &self.shared().store;
        if user.anonymous {
            return;
        }
        if let Some(code) = &user.language_code {
            let known = store.read(|d| d.languages.get(&user.id) == Some(code));
            if !known {
                store.update(|d| d.languages.insert(user.id, code.clone()));
            }
        }
    }

    fn message(&mut self, from: &User, place: Place, text: &str) {
        let parts = self.parts;
        let shared = &*parts.shared;
        let tg = &parts.tg;
        let lang = shared.lang_of(from);
        let tr = shared.tr(&lang);
        let command = parse_command(text, &self.username);
        let private = from.id == place.chat;
        let Some(role) = shared.settings.role_of(from.id) else {
            // In groups, only commands addressed to us earn a denial.
            if (private || command.is_some()) && self.deny(from.id) {
                let text = if from.anonymous {
                    // Not a person: their id would mislead.
                    tr.t("anonymous_admin").to_string()
                } else {
                    tr.f("denied", &[("id", &from.id.to_string())])
                };
                chat::say(tg, place, &text, NOW);
            }
            return;
        };
        self.remember_language(from);
        match command {
            Some("start") => {
                let picker = screen::picker(tr, &shared.settings.servers);
                chat::show(tg, place, None, &picker, NOW);
            }
            Some("help") => {
                chat::say(tg, place, &help_text(tr, role), NOW);
            }
            Some("audit") if role != Role::Operator => {
                chat::say(tg, place, tr.t("operators_only"), NOW);
            }
            Some("audit") => {
                // Who stopped what is for operators: in a group it goes to
                // the operator's private chat, with a note in the group.
                let records =
                    crate::audit::read_last(&shared.settings.state_dir, screen::AUDIT_SHOWN);
                let audit = screen::audit(tr, &shared.settings.timezone, &records, 0);
                chat::show(tg, Place::chat(from.id), None, &audit, NOW);
                if !private {
                    chat::say(tg, place, tr.t("audit_in_private"), NOW);
                }
            }
            Some("status") => {
                let job = Overview::start(&parts.shared, tg, place, lang.clone());
                for server in &parts.servers {
                    let _ = server.send(ServerJob::Overview(job.clone()));
                }
            }
            Some(_) | None => {
                if private {
                    chat::say(tg, place, tr.t("unknown_command"), NOW);
                }
            }
        }
    }

    fn callback(
        &mut self,
        id: &str,
        from: &User,
        place: Option<Place>,
        message_id: Option<i64>,
        data: &str,
    ) {
        let parts = self.parts;
        let shared = &*parts.shared;
        let tg = &parts.tg;
        let lang = shared.lang_of(from);
        let tr = shared.tr(&lang);
        let Some(role) = shared.settings.role_of(from.id) else {
            self.deny(from.id);
            chat::answer(tg, id, Some(tr.t("denied_toast")), true);
            return;
        };
        self.remember_language(from);
        let Some(press) = Press::decode(data) else {
            log::info!("button with unknown data pressed by user {}", from.id);
            chat::answer(tg, id, Some(tr.t("outdated_button")), false);
            return;
        };
        if press.needs_operator() && role != Role::Operator {
            log::info!("viewer {} pressed an operator button; denied", from.id);
            chat::answer(tg, id, Some(tr.t("operators_only")), true);
            return;
        }
        let server = match press.server() {
            Some(key) => match shared.settings.server_by_key(key) {
                Some((index, _)) => Some(index),
                None => {
                    chat::answer(tg, id, Some(tr.t("server_gone")), false);
                    return;
                }
            },
            None => None,
        };
        chat::answer(tg, id, None, false);
        let Some(place) = place else {
            return; // an inline message: nothing we show there
        };
        let seq = parts.presses.record(place.chat, message_id);
        let servers = &shared.settings.servers;
        match (press, server) {
            (Press::Nothing, _) => {}
            (Press::Audit(page), _) => {
                let records =
                    crate::audit::read_last(&shared.settings.state_dir, screen::AUDIT_SHOWN);
                let audit = screen::audit(tr, &shared.settings.timezone, &records, page);
                chat::show(tg, place, message_id, &audit, NOW);
            }
            (Press::Picker, _) => {
                let picker = screen::picker(tr, servers);
                chat::show(tg, place, message_id, &picker, NOW);
            }
            (Press::Menu(_), Some(index)) => {
                let menu = screen::menu(tr, &servers[index]);
                chat::show(tg, place, message_id, &menu, NOW);
            }
            (press, Some(index)) => {
                let job = ServerJob::Press {
                    press,
                    seq,
                    place,
                    message_id,
                    user: from.clone(),
                    role,
                    lang,
                };
                if parts.servers[index].send(job).is_err() {
                    log::error!("the thread of server '{}' is gone", servers[index].name);
                }
            }
            (_, None) => {}
        }
    }
}

/// `/start`, `/start@ourbot` → `start`; a command for another bot → `None`.
fn parse_command<'t>(text: &'t str, username: &str) -> Option<&'t str> {
    let word = text.split_whitespace().next()?.strip_prefix('/')?;
    let (command, target) = match word.split_once('@') {
        Some((c, t)) => (c, Some(t)),
        None => (word, None),
    };
    if target.is_some_and(|t| !t.eq_ignore_ascii_case(username)) {
        return None;
    }
    Some(command)
}

fn help_text(tr: Tr, role: Role) -> String {
    let mut text = tr.t("help").to_string();
    if role == Role::Operator {
        text.push('\n');
        text.push_str(tr.t("help_operator_audit"));
    }
    text.push_str("\n\n");
    text.push_str(match role {
        Role::Operator => tr.t("help_operator"),
        Role::Viewer => tr.t("help_viewer"),
    });
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_addressed_to_others_are_ignored() {
        assert_eq!(parse_command("/start", "bot"), Some("start"));
        assert_eq!(parse_command("/start@Bot extra", "bot"), Some("start"));
        assert_eq!(parse_command("/start@other_bot", "bot"), None);
        assert_eq!(parse_command("hello", "bot"), None);
    }

    #[test]
    fn why_telegram_is_unreachable_in_the_admins_terms() {
        let net = |e| why_unreachable(&TgError::Net(e));
        assert_eq!(
            net(NetError::Unreachable("host name not found".into())),
            "the host name does not resolve (DNS)"
        );
        assert_eq!(
            net(NetError::Unreachable("connection refused".into())),
            "no connection (connection refused)"
        );
        assert_eq!(net(NetError::Timeout), "no answer in time (timeout)");
        assert_eq!(
            net(NetError::Tls("certificate not trusted".into())),
            "the TLS handshake failed (certificate not trusted)"
        );
        assert!(why_unreachable(&TgError::BadAnswer { status: 502 }).contains("proxy"));
    }
}
