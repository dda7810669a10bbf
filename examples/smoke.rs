//! `make smoke`: a release binary run the way a deployer runs it, against the
//! test doubles on loopback. The bot may run under an emulator (qemu-user for
//! the ARM builds) while the fakes run natively. Three steps:
//! `--version`; `check` against a server that cannot be reached (the exit
//! code and lines of README's Self-test); and /start → server menu → Status →
//! a DOWN alert when the server's status port goes away.
//!
//! With `--footprint`, it measures resident memory and threads with 2 and 20
//! monitored servers instead (`make footprint`; for README's figures).
//!
//! Usage: cargo run --example smoke -- PATH/TO/trueconf-bot [RUNNER [ARGS…]]
//!        cargo run --example smoke -- PATH/TO/trueconf-bot --footprint
//! Exit code 0 when every step passed, 1 otherwise (each failure says why).

#[path = "../tests/support/mod.rs"]
mod support;

use std::cell::RefCell;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use support::TempDir;
use support::fake_telegram::{FakeTelegram, Msg};
use support::fake_trueconf::{CLIENT_ID, CLIENT_SECRET, Conf, FakeTrueConf, Tls};

const OP: i64 = 1001;
/// A token of the right shape that is not the example's (a first run with the
/// example's token is refused).
const SMOKE_TOKEN: &str = "700100200:AAE-smoke_test_token_0123456789abcdef";
/// Generous: an emulated binary starts and answers several times slower.
const WAIT: Duration = Duration::from_secs(60);

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(bin) = args.first().map(PathBuf::from) else {
        eprintln!("usage: smoke PATH/TO/trueconf-bot [RUNNER [ARGS…]] | --footprint");
        return ExitCode::from(2);
    };
    if !bin.is_file() {
        eprintln!(
            "smoke: no binary at {}: run `make static` first",
            bin.display()
        );
        return ExitCode::from(2);
    }
    let rest = &args[1..];
    if rest.first().map(String::as_str) == Some("--footprint") {
        return footprint(&bin);
    }
    let target = Target {
        bin,
        runner: rest.to_vec(),
    };
    println!("smoke: {}", target.describe());
    let steps: [(&str, Step); 3] = [
        ("--version", version),
        ("check, server unreachable", check_unreachable),
        ("/start → menu → status → DOWN alert", chat_and_alert),
    ];
    let mut failed = 0;
    for (name, step) in steps {
        let started = Instant::now();
        match step(&target) {
            Ok(detail) => println!(
                "ok    {name} ({:.1} s): {detail}",
                started.elapsed().as_secs_f64()
            ),
            Err(why) => {
                failed += 1;
                println!(
                    "FAIL  {name} ({:.1} s): {why}",
                    started.elapsed().as_secs_f64()
                );
            }
        }
    }
    if failed == 0 {
        println!("smoke: every step passed");
        ExitCode::SUCCESS
    } else {
        println!("smoke: {failed} step(s) FAILED");
        ExitCode::FAILURE
    }
}

/// One smoke step: what it saw, or why it failed.
type Step = fn(&Target) -> Result<String, String>;

/// The binary and how to start it.
struct Target {
    bin: PathBuf,
    /// Empty: run natively; else the emulator and its arguments.
    runner: Vec<String>,
}

impl Target {
    fn command(&self) -> Command {
        let mut cmd = match self.runner.split_first() {
            None => Command::new(&self.bin),
            Some((runner, args)) => {
                let mut cmd = Command::new(runner);
                cmd.args(args).arg(&self.bin);
                cmd
            }
        };
        // Nothing from the caller's environment may change what is tested.
        for var in support::FOREIGN_ENV {
            cmd.env_remove(var);
        }
        cmd.stdin(Stdio::null());
        cmd
    }

    fn describe(&self) -> String {
        match self.runner.is_empty() {
            true => format!("{} (native)", self.bin.display()),
            false => format!("{} under {}", self.bin.display(), self.runner.join(" ")),
        }
    }
}

/// What a finished command printed.
struct Output {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

impl Output {
    fn show(&self) -> String {
        format!(
            "{}\n--- stdout ---\n{}--- stderr ---\n{}",
            self.status, self.stdout, self.stderr
        )
    }
}

/// Runs `cmd` to its end, killing it when `deadline` passes first.
fn run(mut cmd: Command, deadline: Duration) -> Result<Output, String> {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start {cmd:?}: {e}"))?;
    let (tx, rx) = mpsc::channel();
    let pipes: [(usize, Option<Box<dyn Read + Send>>); 2] = [
        (0, child.stdout.take().map(|p| Box::new(p) as _)),
        (1, child.stderr.take().map(|p| Box::new(p) as _)),
    ];
    for (i, pipe) in pipes {
        let tx = tx.clone();
        std::thread::spawn(move || {
            let mut text = String::new();
            if let Some(mut pipe) = pipe {
                let mut bytes = Vec::new();
                let _ = pipe.read_to_end(&mut bytes);
                text = String::from_utf8_lossy(&bytes).into_owned();
            }
            let _ = tx.send((i, text));
        });
    }
    drop(tx);
    // Both pipes close when the process ends.
    let end = Instant::now() + deadline;
    let mut texts = [None, None];
    while texts.iter().any(Option::is_none) {
        match rx.recv_timeout(end.saturating_duration_since(Instant::now())) {
            Ok((i, text)) => texts[i] = Some(text),
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "did not end within {} s (killed)",
                    deadline.as_secs()
                ));
            }
        }
    }
    let status = child.wait().map_err(|e| format!("wait: {e}"))?;
    let [stdout, stderr] = texts.map(Option::unwrap_or_default);
    Ok(Output {
        status,
        stdout,
        stderr,
    })
}

fn version(target: &Target) -> Result<String, String> {
    let mut cmd = target.command();
    cmd.arg("--version");
    let out = run(cmd, WAIT)?;
    let expected = format!("trueconf-bot {}", env!("CARGO_PKG_VERSION"));
    if out.status.success() && out.stdout.trim() == expected {
        Ok(expected)
    } else {
        Err(format!(
            "expected '{expected}' and exit 0, got {}",
            out.show()
        ))
    }
}

/// README, Self-test: one ✔/✘ line per check, with the fix; exit code 0
/// only when every check passes (1 otherwise, SPEC §2); ends within 20 s.
fn check_unreachable(target: &Target) -> Result<String, String> {
    let tg = FakeTelegram::start();
    tg.set_token(SMOKE_TOKEN);
    let dir = TempDir::new();
    let (api_port, status_port) = (support::refused_port(), support::refused_port());
    let settings = dir.join("settings.toml");
    std::fs::write(
        &settings,
        format!(
            "tg-api-token = \"{SMOKE_TOKEN}\"\ntg-users-id = [{OP}]\ntg-api-url = \"{}\"\n\
             [servers.\"Lab\"]\nip = \"127.0.0.1:{api_port}\"\nclient_id = \"{CLIENT_ID}\"\n\
             client_secret = \"{CLIENT_SECRET}\"\nstatus_port = {status_port}\n",
            tg.base_url()
        ),
    )
    .map_err(|e| format!("cannot write {}: {e}", settings.display()))?;
    let mut cmd = target.command();
    cmd.arg("check").arg("--config").arg(&settings);
    let out = run(cmd, Duration::from_secs(40))?;
    let expected_lines = [
        format!("✔ settings: {} is valid (1 server(s))", settings.display()),
        "✔ telegram: the token works, the bot is @".to_string(),
        "✔ server 'Lab': 127.0.0.1 resolves to 127.0.0.1".to_string(),
        format!(
            "✘ server 'Lab': no TCP connection to port {api_port} — check that the server runs"
        ),
        format!("✘ server 'Lab': /vsstatus on port {status_port}: "),
    ];
    let missing: Vec<&String> = expected_lines
        .iter()
        .filter(|want| !out.stdout.lines().any(|l| l.starts_with(want.as_str())))
        .collect();
    if out.status.code() != Some(1) {
        return Err(format!("expected exit code 1, got {}", out.show()));
    }
    if !missing.is_empty() {
        return Err(format!("lines missing: {missing:?}\n{}", out.show()));
    }
    if !out
        .stderr
        .contains("trueconf-bot: self-test: at least one check failed")
    {
        return Err(format!("no summary on stderr\n{}", out.show()));
    }
    Ok(format!(
        "exit code 1, {} lines as documented",
        expected_lines.len()
    ))
}

/// The bot process, killed when dropped; its stderr goes to a file.
struct Bot {
    child: RefCell<Child>,
    log: PathBuf,
}

impl Bot {
    fn spawn(target: &Target, settings: &Path, log: PathBuf) -> Result<Bot, String> {
        let file = File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
        let mut cmd = target.command();
        cmd.arg("--config")
            .arg(settings)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::from(file));
        let child = cmd
            .spawn()
            .map_err(|e| format!("cannot start {cmd:?}: {e}"))?;
        Ok(Bot {
            child: RefCell::new(child),
            log,
        })
    }

    /// `why`, followed by what the bot logged so far.
    fn failed(&self, why: impl std::fmt::Display) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let ended = match self.child.borrow_mut().try_wait() {
            Ok(Some(status)) => format!(" (the bot had ended: {status})"),
            _ => String::new(),
        };
        format!("{why}{ended}\n--- the bot's log ---\n{log}")
    }

    fn id(&self) -> u32 {
        self.child.borrow().id()
    }
}

impl Drop for Bot {
    fn drop(&mut self) {
        let child = self.child.get_mut();
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// The fakes and a settings file monitoring each fake server every `interval` s.
struct Lab {
    tg: FakeTelegram,
    servers: Vec<FakeTrueConf>,
    dir: TempDir,
}

impl Lab {
    fn new(n: usize, interval: f64) -> Lab {
        let tg = FakeTelegram::start();
        tg.set_token(SMOKE_TOKEN);
        let dir = TempDir::new();
        let servers: Vec<FakeTrueConf> =
            (0..n).map(|_| FakeTrueConf::start(Tls::CaSigned)).collect();
        let text = support::lab_settings(&tg, SMOKE_TOKEN, OP, &servers, dir.path(), interval);
        std::fs::write(dir.join("settings.toml"), text).expect("write settings.toml");
        Lab { tg, servers, dir }
    }

    fn spawn(&self, target: &Target) -> Result<Bot, String> {
        Bot::spawn(
            target,
            &self.dir.join("settings.toml"),
            self.dir.join("bot.log"),
        )
    }

    /// Presses the button labelled `label` on `on` and waits for the message
    /// to show `expect`.
    fn press(&self, bot: &Bot, on: &Msg, label: &str, expect: &str) -> Result<Msg, String> {
        let (_, data) = on
            .button(label)
            .ok_or_else(|| bot.failed(format!("no button '{label}' on: {}", on.plain)))?;
        let before = on.edits;
        self.tg.push_callback(OP, OP, on.message_id, &data, None);
        self.tg
            .wait_message(WAIT, OP, |m| {
                m.message_id == on.message_id && m.edits > before && m.plain.contains(expect)
            })
            .ok_or_else(|| {
                bot.failed(format!(
                    "pressing '{label}' did not show '{expect}' within {} s; last message: {:?}",
                    WAIT.as_secs(),
                    self.tg.last_message(OP).map(|m| m.plain)
                ))
            })
    }
}

fn chat_and_alert(target: &Target) -> Result<String, String> {
    let lab = Lab::new(1, 1.0);
    let server = &lab.servers[0];
    server.set_conferences(vec![Conf::running("smoke", 600)]);
    let bot = lab.spawn(target)?;
    if lab.tg.wait_count(WAIT, "getupdates", 1).is_empty() {
        return Err(bot.failed("the bot never polled Telegram"));
    }
    lab.tg.push_message(OP, OP, "/start", None);
    let picker = lab
        .tg
        .wait_message(WAIT, OP, |m| m.plain.contains("Choose a server"))
        .ok_or_else(|| bot.failed("no server picker after /start"))?;
    let menu = lab.press(&bot, &picker, "Server 0", "What would you like to see?")?;
    let status = lab.press(&bot, &menu, "Status", "The server is up")?;
    if !status.plain.contains("Monitoring is on") {
        return Err(bot.failed(format!(
            "status screen without monitoring: {}",
            status.plain
        )));
    }
    // The monitor must have seen the server up before it can see it go down.
    if server.wait_probe_count(WAIT, 1) < 1 {
        return Err(bot.failed("the server was never probed"));
    }
    server.set_up(false);
    let alert = lab
        .tg
        .wait_message(WAIT, OP, |m| m.plain.contains("Server 0 is DOWN"))
        .ok_or_else(|| bot.failed("no DOWN alert after the status port closed"))?;
    Ok(format!(
        "picker, menu, status ('The server is up'), alert '{}'",
        alert.plain
    ))
}

/// Resident memory and threads of the bot, natively, with 2 and 20 servers:
/// just started, and after a warm-up like the bench's (menus, a running list,
/// users online over 20,000 users).
fn footprint(bin: &Path) -> ExitCode {
    let target = Target {
        bin: bin.to_path_buf(),
        runner: Vec::new(),
    };
    println!(
        "{:<8} {:<10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>8}",
        "servers", "when", "VmRSS", "VmHWM", "RssAnon", "RssFile", "VmSize", "threads"
    );
    for n in [2, 20] {
        match measure(&target, n) {
            Ok(Footprint { rows, state_bytes }) => {
                for (when, m) in rows {
                    println!(
                        "{n:<8} {when:<10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>8}",
                        kib(m.rss),
                        kib(m.hwm),
                        kib(m.anon),
                        kib(m.file),
                        kib(m.size),
                        m.threads
                    );
                }
                println!("{n:<8} state.json after the warm-up: {state_bytes} bytes");
            }
            Err(why) => {
                println!("footprint with {n} servers FAILED: {why}");
                return ExitCode::FAILURE;
            }
        }
    }
    ExitCode::SUCCESS
}

/// What one footprint run saw.
struct Footprint {
    /// (when, memory): just after start, after the warm-up.
    rows: Vec<(&'static str, Memory)>,
    /// The size of state.json after the warm-up.
    state_bytes: u64,
}

fn measure(target: &Target, n: usize) -> Result<Footprint, String> {
    let lab = Lab::new(n, 15.0);
    lab.servers[0].generate_users(20_000, 7);
    lab.servers[0].set_conferences(
        (0..5)
            .map(|i| Conf::running(&format!("c{i}"), 100 + i))
            .collect(),
    );
    let bot = lab.spawn(target)?;
    if lab.tg.wait_count(WAIT, "getupdates", 1).is_empty() {
        return Err(bot.failed("the bot never polled Telegram"));
    }
    for s in &lab.servers {
        if s.wait_probe_count(WAIT, 1) < 1 {
            return Err(bot.failed("a server was never probed"));
        }
    }
    let started = memory(bot.id());
    lab.tg.push_message(OP, OP, "/start", None);
    let picker = lab
        .tg
        .wait_message(WAIT, OP, |m| m.plain.contains("Choose a server"))
        .ok_or_else(|| bot.failed("no server picker after /start"))?;
    let mut screen = picker;
    for _ in 0..3 {
        screen = lab.press(&bot, &screen, "Server 0", "What would you like to see?")?;
        screen = lab.press(&bot, &screen, "Running", "Running conferences")?;
        screen = lab.press(&bot, &screen, "Back", "What would you like to see?")?;
        screen = lab.press(&bot, &screen, "Users online", "2857")?;
        screen = lab.press(&bot, &screen, "Back", "What would you like to see?")?;
        screen = lab.press(&bot, &screen, "Back", "Choose a server")?;
    }
    let warm = memory(bot.id());
    let state_bytes = std::fs::metadata(lab.dir.join("state.json")).map_or(0, |m| m.len());
    Ok(Footprint {
        rows: vec![("started", started), ("warmed up", warm)],
        state_bytes,
    })
}

/// From /proc/PID/status, in KiB (threads: a count).
struct Memory {
    rss: u64,
    hwm: u64,
    anon: u64,
    file: u64,
    size: u64,
    threads: u64,
}

fn memory(pid: u32) -> Memory {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    Memory {
        rss: field("VmRSS:"),
        hwm: field("VmHWM:"),
        anon: field("RssAnon:"),
        file: field("RssFile:"),
        size: field("VmSize:"),
        threads: field("Threads:"),
    }
}

fn kib(k: u64) -> String {
    format!("{:.2} MB", k as f64 * 1024.0 / 1_000_000.0)
}
