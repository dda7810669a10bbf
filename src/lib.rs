//! trueconf-bot: a Telegram bot with which administrators watch and manage
//! TrueConf Server installations. `run` is the whole bot; `main.rs` is only the
//! process edge. See ARCHITECTURE.md for the threads and their invariants.

pub mod audit;
pub mod bot;
pub mod callback;
pub mod check;
pub mod config;
pub mod error;
pub mod html;
pub mod http;
pub mod locale;
pub mod monitor;
pub mod notify;
pub mod screen;
pub mod shutdown;
pub mod state;
pub mod telegram;
pub mod trueconf;
pub mod worker;

pub use config::Settings;
pub use error::Error;
pub use locale::Locales;
pub use shutdown::Shutdown;

/// Runs the bot until `shutdown` is triggered. Fails only at start: a rejected
/// bot token (exit 2) or a state dir that cannot be created.
pub fn run(settings: Settings, locales: Locales, shutdown: Shutdown) -> Result<(), Error> {
    bot::run(settings, locales, shutdown)
}
