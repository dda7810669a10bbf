//! A shutdown flag every thread can wait on (instead of sleeping), so that
//! tests stop the bot promptly and production stops on SIGTERM's default action.

use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// Cloneable; triggering it wakes every waiter.
#[derive(Clone, Default, Debug)]
pub struct Shutdown(Arc<(Mutex<bool>, Condvar)>);

impl Shutdown {
    pub fn new() -> Shutdown {
        Shutdown::default()
    }

    pub fn trigger(&self) {
        let (lock, cond) = &*self.0;
        *lock.lock().unwrap_or_else(|p| p.into_inner()) = true;
        cond.notify_all();
    }

    pub fn is_set(&self) -> bool {
        *self.0.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits `d` or until shutdown; true when shutting down.
    pub fn wait(&self, d: Duration) -> bool {
        // A huge wait (e.g. a bogus retry_after) must not overflow the clock.
        let d = d.min(Duration::from_secs(86_400));
        let deadline = Instant::now() + d;
        let (lock, cond) = &*self.0;
        let mut set = lock.lock().unwrap_or_else(|p| p.into_inner());
        while !*set {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            set = cond
                .wait_timeout(set, deadline - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        true
    }

    /// Blocks until shutdown.
    pub fn wait_forever(&self) {
        let (lock, cond) = &*self.0;
        let mut set = lock.lock().unwrap_or_else(|p| p.into_inner());
        while !*set {
            set = cond.wait(set).unwrap_or_else(|p| p.into_inner());
        }
    }
}
