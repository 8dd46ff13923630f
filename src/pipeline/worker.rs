//! The worker task: holds the consumer role while there is work, parks when there is none.

use std::fmt;
use std::future::{poll_fn, Future as _};
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::Poll;

use super::consumer::{Stalled, Step};
use super::lifecycle::Goal;
use super::{line, sync, ticker, Shared};

/// How many queue positions one turn of the worker takes before it lets other tasks run.
const TURN: u64 = 16 * 1024;

/// The pipeline's worker: takes lines from the queue into one batch per writer and writes
/// them, through `AsyncWrite` for async destinations.
///
/// [`AsyncPipeline::start`](super::AsyncPipeline::start) spawns it for you;
/// [`AsyncPipeline::with_worker`](super::AsyncPipeline::with_worker) hands it to you to run
/// with [`Worker::run`].
///
/// While records keep coming, the worker drains the queue every flush interval instead of
/// being woken per record, so producers hand off without a wake-up; when the queue is empty it
/// parks, and the next record wakes it.
///
/// Dropping the worker (for example because the runtime shuts down) closes the queue and
/// writes what is left synchronously (within the config's `drop_timeout`); later records are
/// written by their callers: a `#[tokio::main]` that returns loses no line.
pub struct Worker {
    shared: Arc<Shared>,
    finished: bool,
}

impl fmt::Debug for Worker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Worker")
            .field("writers", &self.shared.sinks.len())
            .field("finished", &self.finished)
            .finish_non_exhaustive()
    }
}

impl Worker {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Worker {
            shared,
            finished: false,
        }
    }

    /// Runs the worker until the pipeline closes.
    ///
    /// Works on any tokio runtime, with or without the time driver (its flush-interval timer
    /// is the crate's own).
    ///
    /// # Cancel safety
    ///
    /// Dropping the future loses nothing: lines taken from the queue live in the pipeline's
    /// consumer state, not in the future, and the drop closes the queue and writes them.
    pub async fn run(mut self) {
        let shared = Arc::clone(&self.shared);
        let Some(queue) = shared.queue.as_ref() else {
            self.finished = true;
            return;
        };
        queue.worker_running.store(true, Ordering::Release);
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            let _ = queue.runtime.set(handle);
        }
        loop {
            let step = poll_fn(|cx| {
                let Some(mut consumer) = sync::try_lock(&queue.consumer) else {
                    // Another holder (a caller, a flush) writes now and wakes us when done.
                    queue.worker_waker.register(cx.waker());
                    return match sync::try_lock(&queue.consumer) {
                        Some(_) => {
                            cx.waker().wake_by_ref();
                            Poll::Pending
                        }
                        None => Poll::Pending,
                    };
                };
                let _consuming = line::ConsumingGuard::enter();
                let stop_at = queue.ring.head() + TURN;
                match consumer.run(&shared, &queue.ring, cx, Stalled::Wait, stop_at) {
                    Step::Pending => {
                        // An async destination holds us up; its waker wakes us. Producers
                        // may wake us too.
                        queue.worker_waker.register(cx.waker());
                        Poll::Pending
                    }
                    step => Poll::Ready(step),
                }
            })
            .await;
            match step {
                Step::More | Step::InFlight => yield_now().await,
                Step::Idle { taken } => {
                    if queue.ring.is_closing() && !queue.ring.has_lines() {
                        break;
                    }
                    if taken > 0 {
                        // Busy: come back after a flush interval rather than be woken per line
                        // (producers do not wake a worker that is not parked), or as soon as
                        // an async flush waits.
                        let mut tick = ticker::sleep(queue.tick);
                        poll_fn(|cx| {
                            if Pin::new(&mut tick).poll(cx).is_ready() {
                                return Poll::Ready(());
                            }
                            queue.worker_waker.register(cx.waker());
                            if queue.flush_waiters.load(Ordering::Acquire) > 0 {
                                Poll::Ready(())
                            } else {
                                Poll::Pending
                            }
                        })
                        .await;
                        continue;
                    }
                    poll_fn(|cx| {
                        queue.worker_waker.register(cx.waker());
                        if queue.ring.park_worker() {
                            Poll::Ready(())
                        } else {
                            Poll::Pending
                        }
                    })
                    .await;
                    queue.ring.unpark_worker();
                }
                Step::Pending => {}
            }
        }
        self.finished = true;
        queue.worker_running.store(false, Ordering::Release);
        shared.flush_writers_off_runtime().await;
        shared.release_if_closed();
        shared.progress_made();
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        let Some(queue) = self.shared.queue.as_ref() else {
            return;
        };
        queue.worker_running.store(false, Ordering::Release);
        // The runtime is going away (or the future was dropped): nobody will drain
        // asynchronously any more.
        let timeout = self.shared.drop_timeout;
        self.shared.settle_blocking(Goal::Close, timeout);
    }
}

/// Yields once to the executor (tokio's `yield_now` without needing its runtime context).
async fn yield_now() {
    let mut yielded = false;
    poll_fn(|cx| {
        if yielded {
            Poll::Ready(())
        } else {
            yielded = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    })
    .await;
}
