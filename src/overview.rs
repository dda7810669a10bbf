//! `/status`: one overview gathered from every server thread at once. The
//! poller starts it (`Overview::start`) and hands a copy to each server
//! thread; a short-lived `overview` thread answers when every line is in or
//! when the deadline (`Timing::overview`) passes, so a hanging server costs
//! `/status` at most that long.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::chat::{self, Patience};
use crate::clock::now_unix_ms;
use crate::screen::{self, OverviewLine, OverviewNote};
use crate::shared::Shared;
use crate::telegram::{Place, Telegram};

/// A `/status` overview being gathered. Clones share it.
#[derive(Clone)]
pub struct Overview(Arc<Gathering>);

/// The lines so far, a signal for each new one, and whether it was answered.
struct Gathering {
    lines: Mutex<Vec<Option<OverviewLine>>>,
    filled: Condvar,
    done: AtomicBool,
}

impl Overview {
    /// Starts gathering; a thread answers in `place` when every line is in
    /// or at the deadline.
    pub fn start(shared: &Arc<Shared>, tg: &Telegram, place: Place, lang: String) -> Overview {
        let overview = Overview(Arc::new(Gathering {
            lines: Mutex::new(vec![None; shared.settings.servers.len()]),
            filled: Condvar::new(),
            done: AtomicBool::new(false),
        }));
        let gather = overview.clone();
        let (shared, tg) = (shared.clone(), tg.clone());
        let spawned = std::thread::Builder::new()
            .name("overview".into())
            .stack_size(256 * 1024)
            .spawn(move || {
                let timing = &shared.settings.timing;
                let lines = gather.wait(timing.overview);
                gather.0.done.store(true, Ordering::Relaxed);
                let now_ms = now_unix_ms();
                let notes: Vec<OverviewNote> = shared.store.read(|d| {
                    let servers = &shared.settings.servers;
                    servers
                        .iter()
                        .map(|s| match d.servers.get(&s.name) {
                            Some(state) => OverviewNote::of(state, now_ms),
                            None => OverviewNote::default(),
                        })
                        .collect()
                });
                let servers = &shared.settings.servers;
                let tr = shared.tr(&lang);
                let zone = &shared.settings.timezone;
                let text = screen::overview(tr, servers, &lines, &notes, zone, now_ms / 1000);
                chat::say(&tg, place, &text, Patience::Retry(timing.screen_retry_max));
            });
        if let Err(e) = spawned {
            log::error!("cannot start the overview thread ({e}); /status is not answered");
        }
        overview
    }

    /// Whether the overview was sent already.
    pub fn is_done(&self) -> bool {
        self.0.done.load(Ordering::Relaxed)
    }

    /// Puts in the line of server `index`.
    pub fn fill(&self, index: usize, line: OverviewLine) {
        let mut lines = self.0.lines.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(slot) = lines.get_mut(index) {
            *slot = Some(line);
        }
        self.0.filled.notify_all();
    }

    fn wait(&self, deadline: Duration) -> Vec<Option<OverviewLine>> {
        let until = Instant::now() + deadline;
        let mut lines = self.0.lines.lock().unwrap_or_else(|p| p.into_inner());
        while lines.iter().any(Option::is_none) {
            let now = Instant::now();
            if now >= until {
                break;
            }
            lines = self
                .0
                .filled
                .wait_timeout(lines, until - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        lines.clone()
    }
}
