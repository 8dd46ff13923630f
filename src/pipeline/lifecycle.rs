//! Starting and ending pipelines: flush barriers, shutdown, deadlines, guards.
//!
//! A flush takes the queue's `tail` when it starts and waits until the consumers' `completed`
//! barrier reaches it. Nothing is asked of the worker: a blocking flush, a panic hook or a
//! guard's drop drains the queue itself on a helper thread (the worker may be unable to run:
//! a `current_thread` runtime blocked in the caller), and waits for that thread at most until
//! its deadline — a write that blocks (a full pipe, a stalled disk) holds the helper, never the
//! caller. Past the deadline, what is not finished is reported once and handed back as
//! `pending` in the final [`Stats`].

use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::consumer::{Stalled, Step};
use super::{drain_to, line, sync, Pipeline, PipelineConfig, PipelineError, Shared};
use super::{Stats, Worker};
use crate::error::Error;

/// What a blocking wait is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Goal {
    /// Every line accepted before the call is finished.
    Flush,
    /// The queue is closed and every line in it is finished; later lines are written by their
    /// callers.
    Close,
}

impl Goal {
    fn what(self) -> &'static str {
        match self {
            Goal::Flush => "flush",
            Goal::Close => "closing the pipeline",
        }
    }
}

impl Shared {
    /// True once the goal is met for a flush that started at `target`.
    fn settled(&self, goal: Goal, target: u64) -> bool {
        let Some(queue) = &self.queue else {
            return true;
        };
        let target = match goal {
            Goal::Flush => target,
            Goal::Close => queue.ring.tail(),
        };
        queue.ring.completed() >= target && queue.ring.head() >= target
    }

    /// Drains from this thread until `goal` is met or `deadline` passes.
    fn drain_until(&self, goal: Goal, target: u64, started: Instant, deadline: Instant) {
        let Some(queue) = &self.queue else {
            return;
        };
        let _consuming = line::ConsumingGuard::enter();
        let _runtime = queue.enter_runtime();
        let mut cx = std::task::Context::from_waker(futures::task::noop_waker_ref());
        loop {
            let now = Instant::now();
            // Closing: an async destination that still does not take its lines half-way to
            // the deadline gets them diverted (to its synchronous twin or the fallback).
            let halfway = started + (deadline - started) / 2;
            let stalled = if goal == Goal::Close && now >= halfway {
                Stalled::Divert
            } else {
                Stalled::Wait
            };
            let stop_at = match goal {
                Goal::Flush => target,
                Goal::Close => u64::MAX,
            };
            let step = {
                let mut consumer = sync::lock(&queue.consumer);
                drain_to(&mut consumer, self, queue, &mut cx, stalled, stop_at)
            };
            queue.wake_worker();
            if self.settled(goal, target) {
                break;
            }
            if Instant::now() >= deadline {
                break;
            }
            if step == Step::Pending {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        self.flush_writers();
    }

    /// Waits (at most `timeout`) until `goal` is met, draining on a helper thread; reports a
    /// missed deadline once. True if the goal was met.
    pub(crate) fn settle_blocking(self: &Arc<Self>, goal: Goal, timeout: Duration) -> bool {
        let started = Instant::now();
        let deadline = started + timeout;
        let Some(queue) = &self.queue else {
            self.flush_writers_until(deadline);
            return true;
        };
        if goal == Goal::Close {
            queue.ring.close();
        }
        let target = queue.ring.tail();
        if self.settled(goal, target) && sync::lock(&queue.consumer).is_clear() {
            self.flush_writers_until(deadline);
            self.release_if_closed();
            return true;
        }
        queue.wake_worker();
        if line::consuming() {
            // This thread holds the consumer role (a panic inside a writer, say): it cannot
            // drain, and waiting for itself would never end.
            return self.settled(goal, target);
        }
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        let shared = Arc::clone(self);
        let helper = std::thread::Builder::new()
            .name("kakashi-drain".into())
            .spawn(move || {
                shared.drain_until(goal, target, started, deadline);
                let _ = done_tx.send(());
            });
        match helper {
            Ok(_) => {
                let _ = done_rx.recv_timeout(deadline.saturating_duration_since(Instant::now()));
            }
            // No thread to be had: drain here; the deadline then holds only between writes.
            Err(_) => self.drain_until(goal, target, started, deadline),
        }
        let met = self.settled(goal, target);
        if met {
            self.release_if_closed();
        } else {
            let pending = self.stats().pending;
            (self.error_hook)(&PipelineError::Timeout {
                what: goal.what(),
                deadline: timeout,
                lines: pending,
            });
        }
        met
    }

    /// [`Shared::flush_writers`] on a helper thread, waited for until `deadline`: a writer's
    /// flush may wait (a syslog writer waits for its collector), and a teardown's deadline
    /// must hold all the same. Returns false if the deadline passed first.
    fn flush_writers_until(self: &Arc<Self>, deadline: Instant) -> bool {
        if line::consuming() || !self.flush_may_wait {
            // Called from inside a writer (no helper, no waiting on ourselves), or every
            // flush returns at once.
            self.flush_writers();
            return true;
        }
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        let shared = Arc::clone(self);
        let helper = std::thread::Builder::new()
            .name("kakashi-flush".into())
            .spawn(move || {
                shared.flush_writers();
                let _ = done_tx.send(());
            });
        match helper {
            Ok(_) => done_rx
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
                .is_ok(),
            Err(_) => {
                self.flush_writers();
                true
            }
        }
    }

    /// Once a closed queue is drained, lets go of the async destinations (a peer sees the end
    /// of its stream). Skipped while another party holds the consumer role: whoever ends the
    /// worker or the next close does it.
    pub(crate) fn release_if_closed(&self) {
        let Some(queue) = &self.queue else {
            return;
        };
        if !queue.ring.is_closing() || queue.ring.has_lines() {
            return;
        }
        if let Some(mut consumer) = sync::try_lock(&queue.consumer) {
            let _runtime = queue.enter_runtime();
            let mut cx = std::task::Context::from_waker(futures::task::noop_waker_ref());
            consumer.release_async_writers(&mut cx);
        }
    }

    /// Waits, without blocking the runtime, until every line accepted before the call is
    /// finished.
    async fn flush_async(self: &Arc<Self>) {
        let Some(queue) = &self.queue else {
            self.flush_writers_off_runtime().await;
            return;
        };
        let target = queue.ring.tail();
        if !self.settled(Goal::Flush, target) {
            // Counted before the wake-up: a worker between two flush-interval ticks sees a
            // waiting flush and drains at once.
            queue.flush_waiters.fetch_add(1, Ordering::AcqRel);
            let _waiting = WaiterCount(&queue.flush_waiters);
            queue.wake_worker();
            loop {
                let notified = queue.progress.notified();
                let mut notified = std::pin::pin!(notified);
                notified.as_mut().enable();
                if self.settled(Goal::Flush, target) {
                    break;
                }
                if !queue.worker_running.load(Ordering::Acquire) || queue.ring.is_closing() {
                    // Nobody else drains: the worker has not been started (or is gone).
                    let shared = Arc::clone(self);
                    let timeout = self.drop_timeout;
                    blocking(move || shared.settle_blocking(Goal::Flush, timeout)).await;
                    break;
                }
                notified.await;
            }
        }
        self.flush_writers_off_runtime().await;
    }

    /// [`Shared::flush_writers`] on a helper thread: a writer's flush may wait (a syslog
    /// writer waits for its collector's acknowledgements), and must not hold up the runtime's
    /// thread meanwhile.
    pub(crate) async fn flush_writers_off_runtime(self: &Arc<Self>) {
        if !self.flush_may_wait {
            self.flush_writers();
            return;
        }
        let shared = Arc::clone(self);
        if blocking(move || shared.flush_writers()).await.is_none() {
            // No thread to be had: flush here.
            self.flush_writers();
        }
    }

    /// Closes the queue and waits (at most `timeout`) until it is drained, without blocking
    /// the runtime; returns the final counters.
    async fn shutdown_async(self: &Arc<Self>, timeout: Duration) -> Stats {
        if let Some(queue) = &self.queue {
            queue.ring.close();
            queue.wake_worker();
        }
        let shared = Arc::clone(self);
        blocking(move || shared.settle_blocking(Goal::Close, timeout)).await;
        self.stats()
    }
}

/// Runs `f` on a new thread and waits for it without blocking the runtime (works on any
/// executor, and with no runtime driver).
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let spawned = std::thread::Builder::new()
        .name("kakashi-close".into())
        .spawn(move || {
            let _ = tx.send(f());
        });
    match spawned {
        Ok(_) => rx.await.ok(),
        Err(_) => None,
    }
}

/// Keeps the count of async flushes waiting, so that consumers notify only when one is.
struct WaiterCount<'a>(&'a std::sync::atomic::AtomicUsize);

impl Drop for WaiterCount<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Pipeline {
    /// Waits until every line logged before this call is written (or in its final bucket:
    /// fallback, dropped, failed) and flushes the writers.
    ///
    /// It waits on a counter, not on a message: every queued line has a position, and the
    /// consumers publish how far they have finished. On a synchronous pipeline (or after
    /// shutdown) it flushes the writers.
    ///
    /// # Cancel safety
    ///
    /// Cancelling the wait loses nothing: the lines are still written by the worker.
    pub async fn flush(&self) {
        self.shared.flush_async().await;
    }

    /// Flushes from synchronous code: waits at most `timeout` until every line logged before
    /// this call is finished; the queue is drained from a helper thread, so that this works
    /// when the worker cannot run (a `current_thread` runtime blocked right here) and returns
    /// by the deadline even when a write blocks. Returns false, after reporting through the
    /// error hook, when the deadline passed. For paths that end in `std::process::exit`,
    /// panic hooks and `Drop` impls.
    pub fn flush_blocking(&self, timeout: Duration) -> bool {
        self.shared.settle_blocking(Goal::Flush, timeout)
    }
}

/// Builds and starts an async pipeline: a tokio task takes the queued lines and writes them.
///
/// [`AsyncPipeline::start`] is the short way (the worker is spawned on the current runtime);
/// build one with [`AsyncPipeline::new`] to choose the runtime, or use
/// [`AsyncPipeline::with_worker`] to run the worker yourself.
///
/// # Examples
///
/// ```
/// use kakashi::{info, AsyncPipeline, PipelineConfig, Writer};
///
/// # let dir = std::env::temp_dir().join(format!("kakashi-doc-async-{}", std::process::id()));
/// # let path = dir.join("app.log");
/// #[tokio::main]
/// async fn run(path: &std::path::Path) {
///     let config = PipelineConfig::builder().writer(Writer::file(&path)).build().unwrap();
///     let (pipeline, guard) = AsyncPipeline::start(config).unwrap();
///     let log = pipeline.logger("app");
///     info!(log, "started"; workers = 4);
///     let stats = guard.shutdown().await; // or let it drop: the drop flushes too
///     assert_eq!(stats.written, 1);
/// #   assert!(std::fs::read_to_string(&path).unwrap().contains("msg=started workers=4"));
/// }
/// run(&path);
/// # let _ = std::fs::remove_dir_all(dir);
/// ```
///
/// Starting from outside a runtime, with the worker on a runtime of your choice:
///
/// ```
/// use kakashi::{AsyncPipeline, PipelineConfig, Writer};
///
/// let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).build().unwrap();
/// let config = PipelineConfig::builder().writer(Writer::stderr()).build().unwrap();
/// let (pipeline, guard) = AsyncPipeline::new(config).runtime(rt.handle().clone()).spawn().unwrap();
/// assert!(pipeline.is_async());
/// let stats = guard.close();
/// assert!(stats.is_settled());
/// ```
#[derive(Debug)]
#[must_use = "an AsyncPipeline does nothing until `spawn` is called"]
pub struct AsyncPipeline {
    config: PipelineConfig,
    runtime: Option<tokio::runtime::Handle>,
}

impl AsyncPipeline {
    /// An async pipeline for `config`, to be started with [`spawn`](Self::spawn).
    pub fn new(config: PipelineConfig) -> Self {
        AsyncPipeline {
            config,
            runtime: None,
        }
    }

    /// Runs the worker on this runtime (default: the runtime current when `spawn` is called).
    pub fn runtime(mut self, handle: tokio::runtime::Handle) -> Self {
        self.runtime = Some(handle);
        self
    }

    /// Starts the pipeline: the worker task is spawned on the chosen runtime, or the current
    /// one; without either (a plain `fn main`), a synchronous pipeline to the same writers is
    /// started instead.
    ///
    /// Any runtime will do: multi-thread or `current_thread`, with or without the time driver.
    ///
    /// # Errors
    ///
    /// [`Error`] when a writer cannot be opened (a file's path, for example).
    pub fn spawn(self) -> Result<(Pipeline, PipelineGuard), Error> {
        let runtime = self
            .runtime
            .or_else(|| tokio::runtime::Handle::try_current().ok());
        match runtime {
            Some(handle) => {
                let (pipeline, guard, worker) = AsyncPipeline::with_worker(self.config)?;
                if let Some(queue) = &pipeline.shared.queue {
                    let _ = queue.runtime.set(handle.clone());
                }
                handle.spawn(worker.run());
                Ok((pipeline, guard))
            }
            None => SyncPipeline::start(self.config),
        }
    }

    /// `AsyncPipeline::new(config).spawn()`: the worker on the current runtime, or a
    /// synchronous pipeline without one.
    ///
    /// # Errors
    ///
    /// [`Error`] when a writer cannot be opened (a file's path, for example).
    pub fn start(config: PipelineConfig) -> Result<(Pipeline, PipelineGuard), Error> {
        AsyncPipeline::new(config).spawn()
    }

    /// Builds a pipeline and hands its worker back instead of spawning it: run
    /// [`Worker::run`] on the executor of your choice. Until it runs, a full queue makes
    /// callers write the queued lines and their own ([`Overflow::WriteInline`]), and flushes
    /// drain the queue themselves; if it is dropped, what is queued is written synchronously
    /// and later records are too.
    ///
    /// [`Overflow::WriteInline`]: super::Overflow::WriteInline
    ///
    /// # Errors
    ///
    /// [`Error`] when a writer cannot be opened.
    pub fn with_worker(config: PipelineConfig) -> Result<(Pipeline, PipelineGuard, Worker), Error> {
        let pipeline = Pipeline::build(config, true)?;
        let worker = Worker::new(Arc::clone(&pipeline.shared));
        let guard = PipelineGuard::new(pipeline.clone());
        Ok((pipeline, guard, worker))
    }
}

/// Starts synchronous pipelines: each line is written by the caller, one `write` per line.
#[derive(Debug)]
pub struct SyncPipeline {
    _private: (),
}

impl SyncPipeline {
    /// Starts a synchronous pipeline.
    ///
    /// # Errors
    ///
    /// [`Error`] when a writer cannot be opened.
    pub fn start(config: PipelineConfig) -> Result<(Pipeline, PipelineGuard), Error> {
        let pipeline = Pipeline::build(config, false)?;
        let guard = PipelineGuard::new(pipeline.clone());
        Ok((pipeline, guard))
    }
}

/// Keeps a pipeline's worker writing; dropping it flushes and stops the pipeline.
///
/// Every way of ending the pipeline has a deadline, counted from the start of the call, that
/// holds even when a write blocks (a pipe nobody reads, a stalled disk):
///
/// | how | deadline | hands back |
/// |---|---|---|
/// | [`shutdown`](Self::shutdown)`.await` | 5 s | the final [`Stats`] |
/// | [`shutdown_within`](Self::shutdown_within)`.await` | yours | the final [`Stats`] |
/// | [`close`](Self::close) (blocking) | the config's `drop_timeout` (2 s) | the final [`Stats`] |
/// | dropping the guard | the config's `drop_timeout` (2 s) | — |
///
/// The queue is closed first: records logged afterwards are written synchronously by their
/// callers, so nothing is lost. Lines not finished by the deadline are reported once through
/// the error hook and left as `pending` in the final stats.
#[must_use = "dropping the guard flushes and stops the pipeline"]
#[derive(Debug)]
pub struct PipelineGuard {
    pipeline: Option<Pipeline>,
}

impl PipelineGuard {
    fn new(pipeline: Pipeline) -> Self {
        PipelineGuard {
            pipeline: Some(pipeline),
        }
    }

    /// The pipeline this guard stops.
    pub fn pipeline(&self) -> Option<&Pipeline> {
        self.pipeline.as_ref()
    }

    /// Writes everything queued, flushes, and stops the worker, waiting at most 5 seconds;
    /// returns the pipeline's final counters (`pending` is what the deadline cut off).
    pub async fn shutdown(self) -> Stats {
        self.shutdown_within(Duration::from_secs(5)).await
    }

    /// Like [`shutdown`](Self::shutdown) with a deadline of your choice.
    pub fn shutdown_within(mut self, deadline: Duration) -> impl Future<Output = Stats> + Send {
        let pipeline = self.pipeline.take();
        async move {
            match pipeline {
                Some(pipeline) => pipeline.shared.shutdown_async(deadline).await,
                None => Stats::default(),
            }
        }
    }

    /// Stops the pipeline from synchronous code, waiting at most the config's `drop_timeout`,
    /// and returns the final counters. Dropping the guard does the same.
    pub fn close(mut self) -> Stats {
        match self.pipeline.take() {
            Some(pipeline) => {
                let timeout = pipeline.shared.drop_timeout;
                pipeline.shared.settle_blocking(Goal::Close, timeout);
                pipeline.stats()
            }
            None => Stats::default(),
        }
    }
}

impl Drop for PipelineGuard {
    fn drop(&mut self) {
        if let Some(pipeline) = self.pipeline.take() {
            let timeout = pipeline.shared.drop_timeout;
            pipeline.shared.settle_blocking(Goal::Close, timeout);
        }
    }
}
