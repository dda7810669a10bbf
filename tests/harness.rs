//! Starting the bot against the fakes, and driving it like a person in a chat.
#![allow(dead_code)]

use std::fs::OpenOptions;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
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
    if !top.contains("timezone") {
        // Times in tests are UTC, whatever the machine's zone.
        text.insert_str(0, "timezone = \"UTC\"\n");
    }
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
    if !tables.contains("[timing]") {
        text.push_str(FAST_TIMING);
    }
    text
}

/// `FAST_TIMING` with some keys set otherwise (for tests that measure a wait).
pub fn timing(overrides: &[(&str, u64)]) -> String {
    let mut text = String::from("\n[timing]\n");
    for line in FAST_TIMING.lines().filter(|l| l.contains(" = ")) {
        let key = line.split(" = ").next().unwrap_or("");
        if !overrides.iter().any(|(k, _)| *k == key) {
            text.push_str(line);
            text.push('\n');
        }
    }
    for (key, ms) in overrides {
        text.push_str(&format!("{key} = {ms}\n"));
    }
    text
}

/// Waits in milliseconds instead of production's seconds (`Timing`), so that
/// no test waits out a production constant. A test that needs other values
/// gives its own `[timing]` table.
pub const FAST_TIMING: &str = "\n[timing]\nconnect_ms = 1000\nrequest_ms = 2000\nsend_ms = 3000\n\
    poll_grace_ms = 1000\noverview_ms = 1500\ncheck_ms = 3000\ncheck_step_ms = 1000\n\
    backoff_first_ms = 50\nbackoff_max_ms = 500\npace_ms = 50\n";

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
        Bot::start_on(FakeTelegram::start(), servers, setup)
    }

    /// Starts the bot on a fake Telegram prepared beforehand (scripted replies).
    pub fn start_on(tg: FakeTelegram, servers: Vec<Srv>, setup: Setup) -> Bot {
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
        self.tg.release_polls();
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
}

/// Driving a chat like a person: one set of helpers for every test file,
/// for the bot in this process (`Bot`) and the real binary (`FakeTelegram`).
/// Failures print the chat's transcript.
pub trait Drive {
    fn fake_tg(&self) -> &FakeTelegram;

    /// A user writes in a chat (private when chat == user).
    fn say(&self, user: i64, chat: i64, text: &str) {
        self.fake_tg().push_message(user, chat, text, None);
    }

    /// `/start` in the user's private chat; returns the new picker.
    #[track_caller]
    fn start_chat(&self, user: i64) -> Msg {
        self.start_in(user, user)
    }

    /// `/start` in `chat` (a group when it is not the user's); the new picker.
    #[track_caller]
    fn start_in(&self, user: i64, chat: i64) -> Msg {
        let last = self
            .fake_tg()
            .messages(chat)
            .iter()
            .map(|m| m.message_id)
            .max()
            .unwrap_or(0);
        self.say(user, chat, "/start");
        self.wait(chat, |m| {
            m.message_id > last && m.plain.contains("Choose a server")
        })
    }

    /// Waits until a message in `chat` satisfies `pred`; fails with the transcript.
    #[track_caller]
    fn wait(&self, chat: i64, pred: impl Fn(&Msg) -> bool) -> Msg {
        match self.fake_tg().wait_message(WAIT, chat, pred) {
            Some(m) => m,
            None => panic!(
                "expected message not seen in chat {chat}; transcript:\n{}",
                self.transcript(chat)
            ),
        }
    }

    /// Waits until the message with this id shows `needle` in its plain text.
    #[track_caller]
    fn wait_text(&self, chat: i64, message_id: i64, needle: &str) -> Msg {
        self.wait(chat, |m| {
            m.message_id == message_id && m.plain.contains(needle)
        })
    }

    /// The version of `msg` after its next edit(s) that shows `needle`.
    #[track_caller]
    fn edited(&self, chat: i64, msg: &Msg, needle: &str) -> Msg {
        let (id, edits) = (msg.message_id, msg.edits);
        self.wait(chat, |m| {
            m.message_id == id && m.edits > edits && m.plain.contains(needle)
        })
    }

    /// A raw button press; waits for its answerCallbackQuery; returns the callback id.
    #[track_caller]
    fn press(&self, user: i64, chat: i64, message_id: i64, data: &str) -> String {
        let tg = self.fake_tg();
        let id = tg.push_callback(user, chat, message_id, data, None);
        let answered = tg.wait_for(WAIT, |c| {
            c.method == "answercallbackquery" && c.str("callback_query_id").as_deref() == Some(&id)
        });
        assert!(answered.is_some(), "press {data:?} was not answered");
        id
    }

    /// Presses the button `label` (see `data`) on `msg` as `user`; returns the callback id.
    #[track_caller]
    fn click(&self, user: i64, chat: i64, msg: &Msg, label: &str) -> String {
        self.press(user, chat, msg.message_id, &data(msg, label))
    }

    /// Presses the button `label` on `msg`; returns the message once an edit shows `needle`.
    #[track_caller]
    fn tap(&self, user: i64, chat: i64, msg: &Msg, label: &str, needle: &str) -> Msg {
        self.click(user, chat, msg, label);
        self.edited(chat, msg, needle)
    }

    /// `/start` in `chat`, the server `server`, then the menu entry `entry`;
    /// returns the screen shown after it.
    #[track_caller]
    fn open(&self, user: i64, chat: i64, server: &str, entry: &str) -> Msg {
        let picker = self.start_in(user, chat);
        let menu = self.tap(user, chat, &picker, server, "What would you like to see?");
        self.tap(user, chat, &menu, entry, "")
    }

    /// The answerCallbackQuery for a press.
    #[track_caller]
    fn answer(&self, callback_id: &str) -> Call {
        self.fake_tg()
            .calls_to("answercallbackquery")
            .into_iter()
            .find(|c| c.str("callback_query_id").as_deref() == Some(callback_id))
            .expect("answered")
    }

    /// The toast of an answered press (`None`: answered silently).
    fn toast(&self, callback_id: &str) -> Option<String> {
        self.fake_tg()
            .calls_to("answercallbackquery")
            .into_iter()
            .find(|c| c.str("callback_query_id").as_deref() == Some(callback_id))
            .and_then(|c| c.str("text"))
    }

    /// Every message of a chat, for failure output.
    fn transcript(&self, chat: i64) -> String {
        self.fake_tg()
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
}

impl Drive for FakeTelegram {
    fn fake_tg(&self) -> &FakeTelegram {
        self
    }
}

impl Drive for Bot {
    fn fake_tg(&self) -> &FakeTelegram {
        &self.tg
    }
}

/// The callback_data of the button labelled `label` (exactly, else the
/// first whose label contains it).
#[track_caller]
pub fn data(msg: &Msg, label: &str) -> String {
    let buttons = msg.all_buttons();
    let exact = buttons.iter().find(|(l, _)| l == label);
    exact
        .or_else(|| buttons.iter().find(|(l, _)| l.contains(label)))
        .map(|(_, d)| d.clone())
        .unwrap_or_else(|| {
            panic!(
                "no button {label:?} on:\n{}\nbuttons: {:?}",
                msg.plain, msg.buttons
            )
        })
}

/// The labels of every button of a message.
pub fn labels(msg: &Msg) -> Vec<String> {
    msg.all_buttons().into_iter().map(|(l, _)| l).collect()
}

impl Drop for Bot {
    fn drop(&mut self) {
        self.shutdown.trigger();
        self.tg.release_polls();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The real binary, with an environment that cannot change its behaviour.
pub fn bin() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_trueconf-bot"));
    for var in crate::support::FOREIGN_ENV {
        cmd.env_remove(var);
    }
    cmd
}

// ---------------------------------------------------------------------------
// The real binary

/// A setup for the real binary: fakes, settings file, state dir, log file.
/// For tests that read the process (/proc figures) or kill it (-9).
pub struct Deployed {
    pub tg: FakeTelegram,
    pub servers: Vec<Srv>,
    pub dir: TempDir,
    pub settings: PathBuf,
    log: PathBuf,
}

impl Deployed {
    pub fn new(servers: Vec<Srv>) -> Deployed {
        Deployed::with(servers, |s| s)
    }

    /// `edit` changes the settings text before it is written.
    pub fn with(servers: Vec<Srv>, edit: impl Fn(String) -> String) -> Deployed {
        let tg = FakeTelegram::start();
        let dir = TempDir::new();
        let settings = dir.join("settings.toml");
        std::fs::write(&settings, edit(settings_text(&tg, &dir, &servers, "", ""))).unwrap();
        let log = dir.join("bot.log");
        Deployed {
            tg,
            servers,
            dir,
            settings,
            log,
        }
    }

    pub fn fake(&self, i: usize) -> &FakeTrueConf {
        &self.servers[i].fake
    }

    pub fn state_dir(&self) -> PathBuf {
        self.dir.join("state")
    }

    /// Starts the binary (stderr appended to the log file).
    pub fn spawn(&self) -> Child {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        bin()
            .arg("--config")
            .arg(&self.settings)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap()
    }

    /// Starts the binary and waits for its first poll.
    #[track_caller]
    pub fn start(&self) -> Proc {
        let polls = self.tg.calls_to("getupdates").len();
        let proc = Proc {
            child: self.spawn(),
        };
        let polled = self.tg.wait_count(WAIT, "getupdates", polls + 1).len() > polls;
        assert!(polled, "the binary did not start polling:\n{}", self.log());
        proc
    }

    /// What the binary logged so far (every start of it).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// A running binary; killed (SIGKILL) when dropped.
pub struct Proc {
    child: Child,
}

impl Proc {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// kill -9, and reap it.
    pub fn kill9(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    pub fn alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
