//! trueconf-bot: a Telegram bot with which administrators watch and manage
//! TrueConf Server installations. `run` is the whole bot: it builds the
//! channels and starts the named threads; `main.rs` is only the process
//! edge. See ARCHITECTURE.md for the threads, the layering and the invariants.

pub mod audit;
pub mod bot;
pub mod callback;
pub mod chat;
pub mod check;
pub mod clock;
pub mod commands;
pub mod config;
pub mod error;
pub mod fetch;
pub mod forgotten;
pub mod history;
pub mod html;
pub mod http;
pub mod locale;
pub mod notify;
pub mod overview;
pub mod probe;
pub mod screen;
pub mod server;
pub mod shared;
pub mod shutdown;
pub mod silence;
pub mod state;
pub mod telegram;
pub mod timing;
pub mod trueconf;

use std::sync::Arc;
use std::sync::mpsc;
use std::thread::JoinHandle;

pub use config::Settings;
pub use error::Error;
pub use locale::Locales;
pub use shutdown::Shutdown;

use crate::fetch::FetchPool;
use crate::http::Trust;
use crate::notify::NotifyCmd;
use crate::probe::ProbeCmd;
use crate::server::{PressLog, ServerJob, ServerThread};
use crate::shared::Shared;
use crate::state::Store;
use crate::telegram::Telegram;
use crate::trueconf::TrueConf;

/// Runs the bot until `shutdown` is triggered. Fails only at start, when
/// another bot uses the same state dir (exit 1) or Telegram rejects the bot
/// token (exit 2). A state dir that cannot be created or written is logged,
/// and the bot serves from memory.
pub fn run(settings: Settings, locales: Locales, shutdown: Shutdown) -> Result<(), Error> {
    if let Err(e) = std::fs::create_dir_all(&settings.state_dir) {
        // Serving matters more than remembering: go on from memory.
        log::error!(
            "state dir {} cannot be created ({e}); nothing will be remembered across restarts",
            settings.state_dir.display()
        );
    }
    let _lock = state::InstanceLock::acquire(&settings.state_dir)?;
    let (store, warnings) = Store::open(&settings.state_dir);
    for w in warnings {
        log::warn!("{w}");
    }
    for server in &settings.servers {
        if server.trust == Trust::Off {
            log::warn!(
                "server '{}': TLS verification is off (ssl_certificate = false); \
                 set it to true or to the server's certificate file",
                server.name
            );
        }
    }
    let timing = settings.timing;
    let tg = Telegram::new(
        &settings.api_url,
        &settings.token,
        settings.poll_timeout,
        &timing,
        settings.tg_proxy.as_ref(),
    );
    if let Some(proxy) = &settings.tg_proxy {
        log::info!("Telegram is reached through the proxy {}", proxy.shown());
    }
    let shared = Arc::new(Shared {
        settings,
        locales,
        store,
    });
    let Some(username) = bot::start(&shared, &tg, &shutdown)? else {
        return Ok(()); // shut down while waiting for Telegram
    };
    let settings = &shared.settings;
    log::info!(
        "started as @{username}: {} server(s), {} operator(s), {} viewer(s)",
        settings.servers.len(),
        settings.operators.len(),
        settings.viewers.len()
    );

    let (notify_tx, notify_rx) = mpsc::channel();
    let notifier = spawn("notify", {
        let (shared, tg) = (shared.clone(), tg.clone());
        move || notify::run(shared, tg, notify_rx)
    });
    spawn("commands", {
        let (shared, tg, shutdown) = (shared.clone(), tg.clone(), shutdown.clone());
        move || commands::run(&shared, &tg, &shutdown)
    });
    let presses = Arc::new(PressLog::default());
    let fetch = FetchPool::start(fetch::FETCHERS, |name, work| {
        std::thread::Builder::new()
            .name(name)
            // A participant list is small; serde_json's deepest parse fits.
            .stack_size(128 * 1024)
            .spawn(work)
            .map(|_| ())
    });
    let status = trueconf::status_client(&timing);
    let mut servers = Vec::new();
    let mut probes = Vec::new();
    for index in 0..settings.servers.len() {
        let (probe_tx, probe_rx) = mpsc::channel();
        let (server_tx, server_rx) = mpsc::channel();
        // The server's API client (its token, its connections), shared by
        // its server thread and its prober (whose web/API check counts what
        // the client's requests showed).
        let client = Arc::new(TrueConf::new(&settings.servers[index], &timing));
        spawn(&format!("probe-{index}"), {
            let (shared, notify_tx) = (shared.clone(), notify_tx.clone());
            let work = probe::Helpers {
                fetch: fetch.clone(),
                api: client.clone(),
            };
            move || probe::run(shared, index, notify_tx, probe_rx, work)
        });
        let parts = ServerThread {
            shared: shared.clone(),
            tg: tg.clone(),
            index,
            presses: presses.clone(),
            probe: probe_tx.clone(),
            notify: notify_tx.clone(),
            status: status.clone(),
            fetch: fetch.clone(),
            client,
        };
        spawn(&format!("server-{index}"), move || {
            server::run(parts, server_rx)
        });
        servers.push(server_tx);
        probes.push(probe_tx);
    }

    let poller = spawn("bot", {
        let parts = bot::BotThread {
            shared: shared.clone(),
            tg,
            username,
            servers: servers.clone(),
            presses,
            shutdown: shutdown.clone(),
        };
        move || bot::run(parts)
    });
    shutdown.wait_forever();
    for s in &servers {
        let _ = s.send(ServerJob::Quit);
    }
    for p in &probes {
        let _ = p.send(ProbeCmd::Quit);
    }
    let _ = notify_tx.send(NotifyCmd::Quit);
    // The poller ends at its next poll; wait for it so no update is half-handled,
    // and for the notifier so that what it holds is in state.json.
    let _ = poller.join();
    let _ = notifier.join();
    Ok(())
}

/// Starts a named thread with a small stack. Without its threads the bot
/// cannot work at all, so a failure ends the process (systemd restarts it).
fn spawn(name: &str, f: impl FnOnce() + Send + 'static) -> JoinHandle<()> {
    std::thread::Builder::new()
        .name(name.to_string())
        .stack_size(256 * 1024)
        .spawn(f)
        .unwrap_or_else(|e| {
            log::error!("cannot start thread {name}: {e}");
            std::process::exit(1);
        })
}
