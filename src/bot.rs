//! The Telegram side: start-up (getMe, deleteWebhook, setMyCommands), the
//! long-poll loop, access checks and dispatch of every update. Screens that
//! need a TrueConf server go to that server's worker; this thread never waits
//! on a TrueConf server.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::callback::Press;
use crate::config::{Role, Settings};
use crate::error::Error;
use crate::http::{Client, Limits};
use crate::locale::{Locales, SHIPPED};
use crate::monitor::{self, MonitorCmd};
use crate::notify::{self, Notice};
use crate::screen::{self, Screen, Tr};
use crate::shutdown::Shutdown;
use crate::state::Store;
use crate::telegram::{Incoming, Telegram, TgError, User, parse_update};
use crate::worker::{self, Job};

/// What every thread shares (read-only but for the store).
pub struct Ctx {
    pub settings: Settings,
    pub locales: Locales,
    pub tg: Telegram,
    pub store: Store,
    pub shutdown: Shutdown,
    /// Plain-HTTP client for `/vsstatus` probes made for the status screen.
    pub probe: Client,
    pub notices: Sender<Notice>,
    /// The latest press on each message (chat, message) → its number, so
    /// that a slow server's late screen does not overwrite a newer one.
    presses: Mutex<HashMap<(i64, i64), u64>>,
    press_count: AtomicU64,
}

impl Ctx {
    /// The language for a user: their Telegram language if we ship it.
    pub fn lang_of(&self, user: &User) -> String {
        self.locales.pick(user.language_code.as_deref()).to_string()
    }

    /// Numbers a press on a message; it is now the latest there.
    fn press_on(&self, chat_id: i64, message_id: Option<i64>) -> u64 {
        let n = self.press_count.fetch_add(1, Ordering::Relaxed) + 1;
        if let Some(message_id) = message_id {
            let mut presses = self.presses.lock().unwrap_or_else(|p| p.into_inner());
            if presses.len() > 4096 {
                // Old messages: their presses are long answered.
                presses.retain(|_, seen| *seen + 4096 > n);
            }
            presses.insert((chat_id, message_id), n);
        }
        n
    }

    /// Whether press `n` is still the latest on its message.
    pub fn is_latest(&self, chat_id: i64, message_id: Option<i64>, n: u64) -> bool {
        let Some(message_id) = message_id else {
            return true;
        };
        let presses = self.presses.lock().unwrap_or_else(|p| p.into_inner());
        presses
            .get(&(chat_id, message_id))
            .is_none_or(|latest| *latest == n)
    }

    pub fn tr<'a>(&'a self, lang: &'a str) -> Tr<'a> {
        Tr {
            locales: &self.locales,
            lang,
        }
    }
}

/// Puts a screen into a message: edits it, or sends a new one when there is
/// none or it can no longer be edited.
pub fn show(tg: &Telegram, chat_id: i64, message_id: Option<i64>, screen: &Screen) {
    let mut edit = message_id;
    // One more try after a transient failure (5xx, network, a short 429):
    // the admin is looking at the message right now.
    for attempt in 0..3 {
        let (method, result) = match edit {
            Some(message_id) => (
                "editMessageText",
                tg.edit_message(chat_id, message_id, &screen.text, Some(&screen.keyboard)),
            ),
            None => (
                "sendMessage",
                tg.send_message(chat_id, &screen.text, Some(&screen.keyboard))
                    .map(|_| ()),
            ),
        };
        match result {
            Ok(()) => return,
            Err(e) if edit.is_some() && e.cannot_edit() => {
                log::debug!("telegram {method}: {e}; sending a new message");
                edit = None;
            }
            Err(e) if e.is_transient() && attempt < 2 => {
                let wait = e.retry_after().unwrap_or(Duration::from_secs(1));
                if wait > Duration::from_secs(5) {
                    log::warn!("telegram {method}: {e}; the screen is not shown");
                    return;
                }
                log::warn!(
                    "telegram {method}: {e}; trying again in {} s",
                    wait.as_secs()
                );
                std::thread::sleep(wait);
            }
            Err(e) => {
                log::warn!("telegram {method}: {e}");
                return;
            }
        }
    }
}

/// Starts every thread and polls Telegram until shutdown.
pub fn run(settings: Settings, locales: Locales, shutdown: Shutdown) -> Result<(), Error> {
    if let Err(e) = std::fs::create_dir_all(&settings.state_dir) {
        // Serving matters more than remembering: go on from memory.
        log::error!(
            "state dir {} cannot be created ({e}); nothing will be remembered across restarts",
            settings.state_dir.display()
        );
    }
    let (store, warnings) = Store::open(&settings.state_dir);
    for w in warnings {
        log::warn!("{w}");
    }
    for server in &settings.servers {
        if server.trust == crate::config::Trust::Off {
            log::warn!(
                "server '{}': TLS verification is off (ssl_certificate = false); \
                 set it to true or to the server's certificate file",
                server.name
            );
        }
    }
    let tg = Telegram::new(&settings.api_url, &settings.token, settings.poll_timeout);
    let username = start_telegram(&tg, &shutdown)?;
    let Some(username) = username else {
        return Ok(()); // shut down while waiting for Telegram
    };
    log::info!(
        "started as @{username}: {} server(s), {} operator(s), {} viewer(s)",
        settings.servers.len(),
        settings.operators.len(),
        settings.viewers.len()
    );

    let (notice_tx, notice_rx) = mpsc::channel();
    let ctx = Arc::new(Ctx {
        probe: Client::new(
            &crate::config::Trust::BuiltIn,
            Limits::probe(Duration::from_secs(5)),
        ),
        settings,
        locales,
        tg,
        store,
        shutdown: shutdown.clone(),
        notices: notice_tx,
        presses: Mutex::new(HashMap::new()),
        press_count: AtomicU64::new(0),
    });

    let notifier = spawn("tg-notify", {
        let ctx = ctx.clone();
        move || notify::run(&ctx, notice_rx)
    });
    spawn("tg-commands", {
        let ctx = ctx.clone();
        move || set_commands(&ctx)
    });
    let mut workers = Vec::new();
    let mut monitors = Vec::new();
    for index in 0..ctx.settings.servers.len() {
        let (monitor_tx, monitor_rx) = mpsc::channel();
        let (job_tx, job_rx) = mpsc::channel();
        spawn(&format!("probe-{index}"), {
            let ctx = ctx.clone();
            move || monitor::run(&ctx, index, monitor_rx)
        });
        spawn(&format!("server-{index}"), {
            let ctx = ctx.clone();
            let monitor_tx = monitor_tx.clone();
            move || worker::run(&ctx, index, job_rx, monitor_tx)
        });
        workers.push(job_tx);
        monitors.push(monitor_tx);
    }

    let poller = spawn("tg-poll", {
        let ctx = ctx.clone();
        let workers = workers.clone();
        move || poll(ctx, &username, &workers)
    });
    shutdown.wait_forever();
    for w in &workers {
        let _ = w.send(Job::Quit);
    }
    for m in &monitors {
        let _ = m.send(MonitorCmd::Quit);
    }
    let _ = ctx.notices.send(Notice::Quit);
    // The poller ends at its next poll; wait for it so no update is half-handled,
    // and for the notifier so that what it holds is in state.json.
    let _ = poller.join();
    let _ = notifier.join();
    Ok(())
}

fn spawn(name: &str, f: impl FnOnce() + Send + 'static) -> std::thread::JoinHandle<()> {
    std::thread::Builder::new()
        .name(name.to_string())
        .stack_size(256 * 1024)
        .spawn(f)
        .unwrap_or_else(|e| {
            // Without threads the bot cannot work at all.
            log::error!("cannot start thread {name}: {e}");
            std::process::exit(1);
        })
}

/// getMe (401 → the token is wrong) and deleteWebhook, retried with backoff on
/// network trouble. `None` when shut down while waiting.
fn start_telegram(tg: &Telegram, shutdown: &Shutdown) -> Result<Option<String>, Error> {
    let mut backoff = Backoff::default();
    let username = loop {
        match tg.get_me() {
            Ok(name) => break name,
            Err(TgError::Api { code: 401, .. }) | Err(TgError::Api { code: 404, .. }) => {
                return Err(Error::TokenRejected);
            }
            Err(e) => {
                let wait = e.retry_after().unwrap_or_else(|| backoff.next_wait());
                log::warn!("telegram getMe: {e}; trying again in {} s", wait.as_secs());
                if shutdown.wait(wait) {
                    return Ok(None);
                }
            }
        }
    };
    if let Err(e) = tg.call("deleteWebhook", &json!({"drop_pending_updates": false})) {
        log::warn!("telegram deleteWebhook: {e}");
    }
    Ok(Some(username))
}

/// setMyCommands in every shipped language (and the default list).
fn set_commands(ctx: &Ctx) {
    let mut langs: Vec<Option<&str>> = vec![None];
    langs.extend(SHIPPED.iter().map(|(code, _)| Some(*code)));
    for lang in langs {
        let tr = ctx.tr(lang.unwrap_or(ctx.locales.default_lang()));
        let commands = json!([
            {"command": "start", "description": tr.t("cmd_start")},
            {"command": "status", "description": tr.t("cmd_status")},
            {"command": "help", "description": tr.t("cmd_help")},
        ]);
        let mut params = json!({ "commands": commands });
        if let Some(code) = lang {
            params["language_code"] = json!(code);
        }
        if let Err(e) = ctx.tg.call("setMyCommands", &params) {
            log::warn!("telegram setMyCommands: {e}");
        }
    }
}

/// Exponential backoff: 1 s doubling to 60 s, reset on success (SPEC §4).
#[derive(Default)]
pub struct Backoff {
    failures: u32,
}

impl Backoff {
    pub fn next_wait(&mut self) -> Duration {
        let secs = 1u64 << self.failures.min(6);
        self.failures += 1;
        Duration::from_secs(secs.min(60))
    }
    pub fn reset(&mut self) {
        self.failures = 0;
    }
}

/// The long-poll loop: one `getUpdates` at a time, each update handled on its
/// own and confirmed, the last handled id kept in the state file.
fn poll(ctx: Arc<Ctx>, username: &str, workers: &[Sender<Job>]) {
    let mut offset = ctx
        .store
        .read(|d| d.last_update_id)
        .map(|id| id.saturating_add(1));
    let mut backoff = Backoff::default();
    let mut dispatcher = Dispatcher {
        ctx: ctx.clone(),
        username: username.to_lowercase(),
        workers,
        denied: HashMap::new(),
    };
    while !ctx.shutdown.is_set() {
        let updates = match ctx.tg.get_updates(offset, ctx.settings.poll_timeout) {
            Ok(updates) => {
                backoff.reset();
                updates
            }
            Err(e) => {
                let wait = match &e {
                    TgError::Api { code: 409, .. } => {
                        log::warn!(
                            "telegram getUpdates: 409 conflict: another instance is polling \
                             or a webhook is set"
                        );
                        backoff.next_wait()
                    }
                    TgError::Api { code: 401, .. } => {
                        log::error!("telegram getUpdates: 401: the bot token was revoked");
                        Duration::from_secs(60)
                    }
                    _ => {
                        let wait = e.retry_after().unwrap_or_else(|| backoff.next_wait());
                        log::warn!("telegram getUpdates: {e}; again in {} s", wait.as_secs());
                        wait
                    }
                };
                if ctx.shutdown.wait(wait) {
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
            ctx.store.update(|d| d.last_update_id = Some(id));
        }
    }
}

/// Access checks and routing of one update.
struct Dispatcher<'a> {
    ctx: Arc<Ctx>,
    username: String,
    workers: &'a [Sender<Job>],
    /// When each stranger was last answered (denials are rate-limited).
    denied: HashMap<i64, Instant>,
}

const DENIAL_EVERY: Duration = Duration::from_secs(60);

impl Dispatcher<'_> {
    fn handle(&mut self, incoming: Incoming) {
        match incoming {
            Incoming::Message {
                from,
                chat_id,
                text,
            } => self.message(&from, chat_id, &text),
            Incoming::Callback {
                id,
                from,
                chat_id,
                message_id,
                data,
            } => self.callback(&id, &from, chat_id, message_id, &data),
            Incoming::Ignored(kind) => log::debug!("telegram update ignored: {kind}"),
        }
    }

    /// Whether to answer a stranger now (once a minute at most), logging the denial.
    fn deny(&mut self, user_id: i64) -> bool {
        let now = Instant::now();
        if self.denied.len() > 10_000 {
            self.denied
                .retain(|_, t| now.duration_since(*t) < DENIAL_EVERY);
        }
        match self.denied.get(&user_id) {
            Some(t) if now.duration_since(*t) < DENIAL_EVERY => false,
            _ => {
                log::info!("access denied to Telegram user {user_id}");
                self.denied.insert(user_id, now);
                true
            }
        }
    }

    fn remember_language(&self, user: &User, chat_id: i64) {
        let ctx = &self.ctx;
        if user.id != chat_id {
            return; // a group: alerts go to users' private chats
        }
        if let Some(code) = &user.language_code {
            let known = ctx.store.read(|d| d.languages.get(&user.id) == Some(code));
            if !known {
                ctx.store
                    .update(|d| d.languages.insert(user.id, code.clone()));
            }
        }
    }

    fn message(&mut self, from: &User, chat_id: i64, text: &str) {
        let shared = self.ctx.clone();
        let ctx = &*shared;
        let lang = ctx.lang_of(from);
        let tr = ctx.tr(&lang);
        let command = parse_command(text, &self.username);
        let Some(role) = ctx.settings.role_of(from.id) else {
            // In groups, only commands addressed to us earn a denial.
            if (from.id == chat_id || command.is_some()) && self.deny(from.id) {
                let text = tr.f("denied", &[("id", &from.id.to_string())]);
                if let Err(e) = ctx.tg.send_message(chat_id, &text, None) {
                    log::warn!("telegram sendMessage: {e}");
                }
            }
            return;
        };
        self.remember_language(from, chat_id);
        match command {
            Some("start") => show(
                &ctx.tg,
                chat_id,
                None,
                &screen::picker(tr, &ctx.settings.servers),
            ),
            Some("help") => {
                let text = help_text(tr, role);
                if let Err(e) = ctx.tg.send_message(chat_id, &text, None) {
                    log::warn!("telegram sendMessage: {e}");
                }
            }
            Some("audit") if role == Role::Operator => {
                let records = crate::audit::read_last(&ctx.settings.state_dir, screen::AUDIT_SHOWN);
                show(&ctx.tg, chat_id, None, &screen::audit(tr, &records, 0));
            }
            Some("status") => {
                let job = worker::Overview::start(&self.ctx, chat_id, lang.clone());
                for w in self.workers {
                    let _ = w.send(Job::Overview(job.clone()));
                }
            }
            Some(_) | None => {
                if from.id == chat_id {
                    if let Err(e) = ctx.tg.send_message(chat_id, tr.t("unknown_command"), None) {
                        log::warn!("telegram sendMessage: {e}");
                    }
                }
            }
        }
    }

    fn callback(
        &mut self,
        id: &str,
        from: &User,
        chat_id: Option<i64>,
        message_id: Option<i64>,
        data: &str,
    ) {
        let shared = self.ctx.clone();
        let ctx = &*shared;
        let lang = ctx.lang_of(from);
        let tr = ctx.tr(&lang);
        let Some(role) = ctx.settings.role_of(from.id) else {
            self.deny(from.id);
            ctx.tg.answer_callback(id, Some(tr.t("denied_toast")), true);
            return;
        };
        let Some(press) = Press::decode(data) else {
            log::info!("button with unknown data pressed by user {}", from.id);
            ctx.tg
                .answer_callback(id, Some(tr.t("outdated_button")), false);
            return;
        };
        if press.needs_operator() && role != Role::Operator {
            log::info!("viewer {} pressed an operator button; denied", from.id);
            ctx.tg
                .answer_callback(id, Some(tr.t("operators_only")), true);
            return;
        }
        let server = match press.server() {
            Some(key) => match ctx.settings.server_by_key(key) {
                Some((index, _)) => Some(index),
                None => {
                    ctx.tg.answer_callback(id, Some(tr.t("server_gone")), false);
                    return;
                }
            },
            None => None,
        };
        ctx.tg.answer_callback(id, None, false);
        let Some(chat_id) = chat_id else {
            return; // an inline message: nothing we show there
        };
        let seq = ctx.press_on(chat_id, message_id);
        match (press, server) {
            (Press::Nothing, _) => {}
            (Press::Audit(page), _) => {
                let records = crate::audit::read_last(&ctx.settings.state_dir, screen::AUDIT_SHOWN);
                show(
                    &ctx.tg,
                    chat_id,
                    message_id,
                    &screen::audit(tr, &records, page),
                );
            }
            (Press::Picker, _) => show(
                &ctx.tg,
                chat_id,
                message_id,
                &screen::picker(tr, &ctx.settings.servers),
            ),
            (Press::Menu(_), Some(index)) => show(
                &ctx.tg,
                chat_id,
                message_id,
                &screen::menu(tr, &ctx.settings.servers[index]),
            ),
            (press, Some(index)) => {
                let job = Job::Press {
                    press,
                    seq,
                    chat_id,
                    message_id,
                    user: from.clone(),
                    role,
                    lang,
                };
                if self.workers[index].send(job).is_err() {
                    log::error!(
                        "worker of server '{}' is gone",
                        ctx.settings.servers[index].name
                    );
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
    fn backoff_doubles_to_a_minute() {
        let mut b = Backoff::default();
        let waits: Vec<u64> = (0..8).map(|_| b.next_wait().as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 60, 60]);
        b.reset();
        assert_eq!(b.next_wait().as_secs(), 1);
    }
}
