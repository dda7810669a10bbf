//! Starting the bot against the fakes, and driving it like a person in a chat.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Command;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::support::TempDir;
use crate::support::fake_telegram::{Call, FakeTelegram, Msg, TOKEN};
use crate::support::fake_trueconf::{CLIENT_ID, CLIENT_SECRET, FakeTrueConf, Tls};
use trueconf_bot::{Error, Locales, Shutdown, config};

/// Operators, a viewer and a stranger.
pub const OP: i64 = 1001;
pub const OP2: i64 = 1002;
pub const VIEWER: i64 = 2002;
pub const STRANGER: i64 = 3003;
/// A group chat where operators and strangers meet.
pub const GROUP: i64 = -500;
/// How long any single expected thing may take.
pub const WAIT: Duration = Duration::from_secs(10);

/// One server of a test setup.
pub struct Srv {
    pub name: String,
    pub fake: FakeTrueConf,
    /// The `ssl_certificate` line's value (TOML).
    pub ssl: String,
    /// More keys for the server table.
    pub extra: String,
    /// Monitoring on at start, and the probe interval (seconds).
    pub monitor: bool,
    pub interval: f64,
}

impl Srv {
    /// A server with a CA-signed certificate, trusted through its CA file.
    pub fn new(name: &str) -> Srv {
        Srv::with_tls(name, Tls::CaSigned)
    }

    pub fn with_tls(name: &str, tls: Tls) -> Srv {
        let fake = FakeTrueConf::start(tls);
        let ssl = match tls {
            Tls::CaSigned => toml_str(&fake.ca_pem_path().display().to_string()),
            Tls::SelfSigned => toml_str(&fake.cert_pem_path().display().to_string()),
            Tls::Plain => "false".into(),
        };
        Srv {
            name: name.into(),
            fake,
            ssl,
            extra: String::new(),
            monitor: false,
            interval: 0.05,
        }
    }

    pub fn monitored(mut self, interval: f64) -> Srv {
        self.monitor = true;
        self.interval = interval;
        self
    }
}

/// A TOML basic string.
pub fn toml_str(s: &str) -> String {
    serde_json::to_string(s).unwrap()
}

/// The settings file for a setup: `top` goes before the first table, `tables` at the end.
pub fn settings_text(
    tg: &FakeTelegram,
    dir: &TempDir,
    servers: &[Srv],
    top: &str,
    tables: &str,
) -> String {
    let mut text = format!(
        "tg-api-token = \"{TOKEN}\"\ntg-users-id = [{OP}, {OP2}]\ntg-viewers-id = [{VIEWER}]\nlocale = \"en\"\n\
         tg-api-url = \"{}\"\ntg-poll-timeout = 1\nstate-dir = {}\n{top}\n",
        tg.base_url(),
        toml_str(&dir.join("state").display().to_string()),
    );
    for s in servers {
        let name = toml_str(&s.name);
        text.push_str(&format!(
            "[servers.{name}]\nip = \"{}\"\nclient_id = \"{CLIENT_ID}\"\nclient_secret = \"{CLIENT_SECRET}\"\n\
             access_token = \"\"\nssl_certificate = {}\nstatus_port = {}\n{}\n\
             [servers.{name}.server_status]\nstate = {}\ntimeout = {}\n\n",
            s.fake.ip(),
            s.ssl,
            s.fake.status_port(),
            s.extra,
            s.monitor,
            s.interval,
        ));
    }
    text.push_str(tables);
    text
}

/// The bot running in this process (through `run`), with its fakes.
pub struct Bot {
    pub tg: FakeTelegram,
    pub servers: Vec<Srv>,
    pub dir: TempDir,
    pub settings: PathBuf,
    shutdown: Shutdown,
    thread: Option<JoinHandle<Result<(), Error>>>,
}

/// What to start.
#[derive(Default)]
pub struct Setup {
    pub top: String,
    pub tables: String,
}

impl Bot {
    /// Starts the bot with these servers and default settings.
    pub fn start(servers: Vec<Srv>) -> Bot {
        Bot::start_with(servers, Setup::default())
    }

    pub fn start_with(servers: Vec<Srv>, setup: Setup) -> Bot {
        let tg = FakeTelegram::start();
        let dir = TempDir::new();
        let settings = dir.join("settings.toml");
        std::fs::write(
            &settings,
            settings_text(&tg, &dir, &servers, &setup.top, &setup.tables),
        )
        .unwrap();
        let mut bot = Bot {
            tg,
            servers,
            dir,
            settings,
            shutdown: Shutdown::new(),
            thread: None,
        };
        bot.launch();
        bot
    }

    fn launch(&mut self) {
        let loaded = config::load(&self.settings, None).unwrap_or_else(|e| panic!("settings: {e}"));
        let settings = loaded.settings;
        let (locales, _) =
            Locales::load(settings.locales_dir.as_deref(), &settings.locale).unwrap();
        let shutdown = Shutdown::new();
        self.shutdown = shutdown.clone();
        let polls = self.tg.calls_to("getupdates").len();
        self.thread = Some(std::thread::spawn(move || {
            trueconf_bot::run(settings, locales, shutdown)
        }));
        assert!(
            self.tg.wait_count(WAIT, "getupdates", polls + 1).len() > polls,
            "the bot did not start polling"
        );
    }

    /// Stops the bot and waits for it.
    pub fn stop(&mut self) -> Result<(), Error> {
        self.shutdown.trigger();
        match self.thread.take() {
            Some(t) => t.join().expect("run() panicked"),
            None => Ok(()),
        }
    }

    /// Stops and starts again with the same settings, state and fakes.
    pub fn restart(&mut self) {
        self.stop().unwrap();
        self.launch();
    }

    pub fn srv(&self, i: usize) -> &FakeTrueConf {
        &self.servers[i].fake
    }

    /// A user writes in a chat (private when chat == user).
    pub fn say(&self, user: i64, chat: i64, text: &str) {
        self.tg.push_message(user, chat, text, None);
    }

    /// `/start` in the user's private chat; returns the picker message.
    pub fn start_chat(&self, user: i64) -> Msg {
        let before = self.tg.history(user).len();
        self.say(user, user, "/start");
        self.wait(user, |m| {
            m.message_id > before as i64 && m.plain.contains("Choose a server")
        })
    }

    /// Waits until a message in `chat` satisfies `pred`; fails with the transcript.
    #[track_caller]
    pub fn wait(&self, chat: i64, pred: impl Fn(&Msg) -> bool) -> Msg {
        match self.tg.wait_message(WAIT, chat, pred) {
            Some(m) => m,
            None => panic!(
                "expected message not seen in chat {chat}; transcript:\n{}",
                self.transcript(chat)
            ),
        }
    }

    /// Waits until the message with this id shows `needle` in its plain text.
    #[track_caller]
    pub fn wait_text(&self, chat: i64, message_id: i64, needle: &str) -> Msg {
        self.wait(chat, |m| {
            m.message_id == message_id && m.plain.contains(needle)
        })
    }

    /// Presses the first button whose label contains `label` on message `msg`,
    /// as `user`; waits for the press to be answered; returns the callback id.
    #[track_caller]
    pub fn click(&self, user: i64, chat: i64, msg: &Msg, label: &str) -> String {
        let (_, data) = msg.button(label).unwrap_or_else(|| {
            panic!(
                "no button '{label}' on message:\n{}\nbuttons: {:?}",
                msg.plain, msg.buttons
            )
        });
        self.press(user, chat, msg.message_id, &data)
    }

    /// A raw button press; waits for its answerCallbackQuery.
    #[track_caller]
    pub fn press(&self, user: i64, chat: i64, message_id: i64, data: &str) -> String {
        let id = self.tg.push_callback(user, chat, message_id, data, None);
        let answered = self.tg.wait_for(WAIT, |c| {
            c.method == "answercallbackquery" && c.str("callback_query_id").as_deref() == Some(&id)
        });
        assert!(answered.is_some(), "press {data:?} was not answered");
        id
    }

    /// The answerCallbackQuery for a press.
    pub fn answer(&self, callback_id: &str) -> Call {
        self.tg
            .calls_to("answercallbackquery")
            .into_iter()
            .find(|c| c.str("callback_query_id").as_deref() == Some(callback_id))
            .expect("answered")
    }

    /// Every message of a chat, for failure output.
    pub fn transcript(&self, chat: i64) -> String {
        self.tg
            .history(chat)
            .iter()
            .map(|m| {
                format!(
                    "--- #{} (edits {})\n{}\n{:?}",
                    m.message_id, m.edits, m.plain, m.buttons
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Picker → server menu → a menu entry; returns the screen after it.
    #[track_caller]
    pub fn open(&self, user: i64, server: &str, entry: &str) -> Msg {
        let picker = self.start_chat(user);
        self.click(user, user, &picker, server);
        let menu = self.wait_text(user, picker.message_id, "What would you like to see?");
        let edits = menu.edits;
        self.click(user, user, &menu, entry);
        self.wait(user, |m| {
            m.message_id == picker.message_id && m.edits > edits
        })
    }
}

impl Drop for Bot {
    fn drop(&mut self) {
        self.shutdown.trigger();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The real binary, with an environment that cannot change its behaviour.
pub fn bin() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_trueconf-bot"));
    for var in [
        "RUST_LOG",
        "STATE_DIRECTORY",
        "JOURNAL_STREAM",
        "HTTPS_PROXY",
        "HTTP_PROXY",
        "ALL_PROXY",
        "https_proxy",
        "http_proxy",
        "all_proxy",
        "NO_PROXY",
        "no_proxy",
    ] {
        cmd.env_remove(var);
    }
    cmd
}
