//! A timer that needs no runtime driver: one lazily started thread wakes sleeping futures.
//!
//! The worker sleeps a flush interval between drains while records keep coming, and a shutdown
//! waits with a deadline. `tokio::time` panics on a runtime built without `enable_time`, and
//! there is no way to ask a runtime whether it has its time driver; this timer works on every
//! runtime (and on none). It costs one parked thread per process, started on first use.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Condvar, Mutex, OnceLock, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

struct Timer {
    sleepers: Mutex<Vec<(Instant, Waker)>>,
    changed: Condvar,
}

fn timer() -> Option<&'static Timer> {
    static TIMER: OnceLock<Option<&'static Timer>> = OnceLock::new();
    *TIMER.get_or_init(|| {
        let timer: &'static Timer = Box::leak(Box::new(Timer {
            sleepers: Mutex::new(Vec::new()),
            changed: Condvar::new(),
        }));
        std::thread::Builder::new()
            .name("kakashi-timer".into())
            .spawn(move || timer.run())
            .ok()
            .map(|_| timer)
    })
}

impl Timer {
    fn run(&self) {
        let mut sleepers = self.sleepers.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            let now = Instant::now();
            let mut due = Vec::new();
            sleepers.retain(|(at, waker)| {
                if *at <= now {
                    due.push(waker.clone());
                    false
                } else {
                    true
                }
            });
            if !due.is_empty() {
                drop(sleepers);
                due.into_iter().for_each(Waker::wake);
                sleepers = self.sleepers.lock().unwrap_or_else(PoisonError::into_inner);
                continue;
            }
            sleepers = match sleepers.iter().map(|(at, _)| *at).min() {
                None => self
                    .changed
                    .wait(sleepers)
                    .unwrap_or_else(PoisonError::into_inner),
                Some(at) => {
                    self.changed
                        .wait_timeout(sleepers, at.saturating_duration_since(now))
                        .unwrap_or_else(PoisonError::into_inner)
                        .0
                }
            };
        }
    }

    fn register(&self, at: Instant, waker: &Waker) {
        let mut sleepers = self.sleepers.lock().unwrap_or_else(PoisonError::into_inner);
        let earliest = sleepers.iter().all(|(t, _)| at < *t);
        sleepers.push((at, waker.clone()));
        drop(sleepers);
        if earliest {
            self.changed.notify_one();
        }
    }
}

/// A future that completes at `at`.
#[derive(Debug)]
pub(crate) struct Sleep {
    at: Instant,
}

/// Completes after `duration` (at once if the timer thread could not be started).
pub(crate) fn sleep(duration: Duration) -> Sleep {
    Sleep {
        at: Instant::now() + duration,
    }
}

impl Future for Sleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if Instant::now() >= self.at {
            return Poll::Ready(());
        }
        let Some(timer) = timer() else {
            return Poll::Ready(());
        };
        // Each poll registers its waker; the timer wakes each registration once at `at`, and a
        // spurious wake only polls this again.
        timer.register(self.at, cx.waker());
        Poll::Pending
    }
}
