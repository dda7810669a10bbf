//! End-to-end tests: the bot (`run()` or the real binary) against the fake
//! Telegram and fake TrueConf servers on loopback. One test binary.

mod harness;
mod support;

// Start-up, settings, the command line, the poll loop, access, locales, logs.
mod foundation;
