//! The fetchers (`fetch-K` threads, `FetchJob`): one small pool shared by
//! every server's forgotten search, so that the thread count stays 2 per
//! server plus a constant however many servers scan at once. A search hands
//! one job per conference and waits for their answers. The probers hand
//! their web/API checks here too, without waiting (`submit`): an HTTPS call
//! is the deepest stack a prober would touch, kept for its whole life.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::mpsc::{self, Receiver, Sender};

/// Work for a fetcher: one participant list, its answer sent by the job.
pub type FetchJob = Box<dyn FnOnce() + Send>;

/// Fetchers started at run time.
pub const FETCHERS: usize = 8;

/// A pool of fetcher threads. Cloning shares it.
#[derive(Clone)]
pub struct FetchPool {
    jobs: Sender<FetchJob>,
    /// How many fetchers run (0: jobs run on the caller's thread).
    size: usize,
}

impl FetchPool {
    /// Starts `size` fetchers with `spawn` (which names them `fetch-K`);
    /// one that cannot start is an error in the log, and the pool goes on
    /// with fewer (with none, searches fetch one by one themselves).
    pub fn start(
        size: usize,
        spawn: impl Fn(String, Box<dyn FnOnce() + Send>) -> std::io::Result<()>,
    ) -> FetchPool {
        let (tx, rx) = mpsc::channel::<FetchJob>();
        let rx = Arc::new(Mutex::new(rx));
        let mut started = 0;
        for k in 0..size {
            let rx = rx.clone();
            match spawn(format!("fetch-{k}"), Box::new(move || work(&rx))) {
                Ok(()) => started += 1,
                Err(e) => {
                    log::error!("cannot start thread fetch-{k} ({e}); fewer fetch in parallel")
                }
            }
        }
        FetchPool {
            jobs: tx,
            size: started,
        }
    }

    /// Runs `jobs`, in parallel on the fetchers when there are some, and
    /// returns once every one has run.
    pub fn run_all(&self, jobs: Vec<FetchJob>) {
        let (done_tx, done_rx) = mpsc::channel::<()>();
        let mut waiting = 0;
        for job in jobs {
            if self.size == 0 {
                job();
                continue;
            }
            let done = done_tx.clone();
            let sent = self.jobs.send(Box::new(move || {
                job();
                let _ = done.send(());
            }));
            match sent {
                Ok(()) => waiting += 1,
                // The fetchers are gone (shutting down): do it here.
                Err(mpsc::SendError(job)) => job(),
            }
        }
        drop(done_tx);
        for _ in 0..waiting {
            if done_rx.recv().is_err() {
                break;
            }
        }
    }
}

impl FetchPool {
    /// Runs `job` on a fetcher without waiting for it (on the caller's
    /// thread when there are no fetchers).
    pub fn submit(&self, job: FetchJob) {
        if self.size == 0 {
            return job();
        }
        if let Err(mpsc::SendError(job)) = self.jobs.send(job) {
            job();
        }
    }
}

fn work(jobs: &Mutex<Receiver<FetchJob>>) {
    loop {
        let job = {
            let rx = jobs.lock().unwrap_or_else(|p| p.into_inner());
            rx.recv()
        };
        match job {
            Ok(job) => job(),
            Err(_) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn spawn_threads(name: String, f: Box<dyn FnOnce() + Send>) -> std::io::Result<()> {
        std::thread::Builder::new().name(name).spawn(f).map(|_| ())
    }

    #[test]
    fn every_job_runs_once_with_or_without_fetchers() {
        for size in [0, 1, 4] {
            let pool = FetchPool::start(size, spawn_threads);
            let count = Arc::new(AtomicUsize::new(0));
            let jobs: Vec<FetchJob> = (0..50)
                .map(|_| {
                    let count = count.clone();
                    Box::new(move || {
                        count.fetch_add(1, Ordering::SeqCst);
                    }) as FetchJob
                })
                .collect();
            pool.run_all(jobs);
            assert_eq!(count.load(Ordering::SeqCst), 50, "size {size}");
        }
    }

    #[test]
    fn a_submitted_job_runs_on_a_fetcher_and_the_caller_goes_on() {
        for size in [0, 2] {
            let pool = FetchPool::start(size, spawn_threads);
            let (tx, rx) = mpsc::channel();
            let caller = std::thread::current().id();
            pool.submit(Box::new(move || {
                let _ = tx.send(std::thread::current().id());
            }));
            let ran_on = rx.recv().unwrap();
            assert_eq!(ran_on == caller, size == 0, "size {size}");
        }
    }

    #[test]
    fn fetchers_that_cannot_start_leave_the_work_to_the_caller() {
        let pool = FetchPool::start(3, |_, _| Err(std::io::Error::other("no threads")));
        let count = Arc::new(AtomicUsize::new(0));
        let c = count.clone();
        pool.run_all(vec![Box::new(move || {
            c.fetch_add(1, Ordering::SeqCst);
        })]);
        assert_eq!(count.load(Ordering::SeqCst), 1);
    }
}
