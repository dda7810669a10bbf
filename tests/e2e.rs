//! End-to-end tests: the bot (`run()` or the real binary) against the fake
//! Telegram and fake TrueConf servers on loopback. One test binary.

mod harness;
mod support;

// Start-up, settings, the command line, the poll loop, access, locales, logs.
mod foundation;
// Issue 4: monitoring: probes, DOWN/UP alerts and their delivery, the Status screen.
mod monitoring;
// Issue 3: menus, the TrueConf client, isolation, status, lists, stopping, roles.
mod features;
// Issue 5: scheduled scan and auto-stop, audit log, the /status overview, `check`.
mod extras;
// Issue 7: faults on both sides, restarts, forged input, secrets, a bounded soak.
mod reliability;
// Issue 12: forum topics, alert chats, delivery rules, the bounded poll, start-up retries.
mod delivery;
// Issue 14: a first run that explains itself (first log line, token, unreachable Telegram).
mod first_run;
// Issue 13: kill -9 during writes, one bot per state dir, audit rotation, a long soak.
mod durability;
// Issue 15: maintenance silence and the availability history.
mod operations;
// Issue 11: real TrueConf servers as the evidence shows them.
mod real_servers;
