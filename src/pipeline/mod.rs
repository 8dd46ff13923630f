//! Pipelines: from a logging call to bytes at a destination.
//!
//! ```text
//! call site ─► level check ─► LogRecord (on the stack) ─► filters ─► enrichers + context
//!   ─► formatter writes the line into a thread-local BytesMut ─► split + freeze ─► Bytes
//!   ─► async: push into the ring (a position = a sequence number) ─► consumer role:
//!      take in position order ─► per-writer batch ─► write (resuming from the byte offset)
//!      │ ring full ─► overflow policy (take the role and write, or drop and count)
//!      │ closed / no runtime ─► take the role and write synchronously
//!   ─► sync: the writer's synchronous side, one write per line
//! ```
//!
//! The files: `queue` (the ring and the barrier counters), `consumer` (the consumer role,
//! batches and write accounting), `worker` (the tokio task that holds the role while it runs),
//! `lifecycle` (flush, shutdown, deadlines, guards), `line` (line building on the caller),
//! `stats`, `ticker` (a timer that needs no runtime driver), `config`.

mod config;
mod consumer;
mod lifecycle;
mod line;
mod queue;
mod stats;
mod sync;
mod ticker;
mod worker;

use std::fmt;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::task::AtomicWaker;

pub use config::{
    Enricher, ErrorHook, Filter, Overflow, PipelineConfig, PipelineConfigBuilder, PipelineError,
};
pub use lifecycle::{AsyncPipeline, PipelineGuard, SyncPipeline};
pub use stats::{Stats, WriterStats};
pub use worker::Worker;

pub(crate) use config::Enrichment;

use crate::context;
use crate::error::Error;
use crate::field::Field;
use crate::format::Formatter;
use crate::level::Level;
use crate::record::{Location, LogRecord};
use crate::write::{AsyncSide, SyncWrite};
use consumer::{Consumer, Stalled};
use line::{format_line, DepthGuard, MAX_DEPTH};
use queue::{Entry, LineQueue, Refused};
use stats::SinkCounters;

/// One writer as the pipeline uses it.
pub(crate) struct Sink {
    pub(crate) name: String,
    pub(crate) min_level: Level,
    pub(crate) formatter: Arc<dyn Formatter>,
    pub(crate) sync: Arc<dyn SyncWrite>,
    /// True when `sync` is the pipeline's fallback rather than the destination itself (an
    /// async writer without a synchronous twin).
    pub(crate) sync_is_fallback: bool,
    /// Set while the destination fails, so that a failure is reported once, not per line.
    pub(crate) failing: AtomicBool,
    pub(crate) counters: SinkCounters,
    /// Synchronous pipelines only: the rest of a line the destination cut and then failed on
    /// (see the consumer's `owed_tail`); `owes` says whether it is non-empty.
    pub(crate) owed_tail: std::sync::Mutex<Vec<u8>>,
    pub(crate) owes: AtomicBool,
}

/// The owed tail of a synchronous pipeline's writer (outside the queue protocol, so `std`'s
/// mutex even in loom builds).
fn lock_owed(sink: &Sink) -> std::sync::MutexGuard<'_, Vec<u8>> {
    sink.owed_tail
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Sink {
    fn new(
        name: String,
        min_level: Level,
        formatter: Arc<dyn Formatter>,
        sync: Arc<dyn SyncWrite>,
        sync_is_fallback: bool,
    ) -> Sink {
        Sink {
            name,
            min_level,
            formatter,
            sync,
            sync_is_fallback,
            failing: AtomicBool::new(false),
            counters: SinkCounters::default(),
            owed_tail: std::sync::Mutex::new(Vec::new()),
            owes: AtomicBool::new(false),
        }
    }

    /// Reports a failed write once per failing stretch.
    pub(crate) fn report_failure(&self, hook: &ErrorHook, error: io::Error, lines: u64) {
        self.counters.write_errors.fetch_add(1, Ordering::Relaxed);
        if !self.failing.swap(true, Ordering::Relaxed) {
            hook(&PipelineError::Write {
                writer: self.name.clone(),
                error,
                lines,
            });
        }
    }

    /// Writes all of `bytes` with the synchronous side, resuming after short writes; an error
    /// after some bytes were taken (a cut line) gets one more try. Returns how many bytes were
    /// taken and the error, if any.
    fn write_fully(&self, bytes: &[u8]) -> (usize, Option<io::Error>) {
        let mut offset = 0;
        let mut retried = false;
        while offset < bytes.len() {
            match self.sync.write(&bytes[offset..]) {
                Ok(n) if n > 0 => offset += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) | Ok(_) if !retried && offset > 0 => retried = true,
                result => {
                    let error = result.err().unwrap_or_else(|| {
                        io::Error::new(io::ErrorKind::WriteZero, "wrote 0 bytes")
                    });
                    return (offset, Some(error));
                }
            }
        }
        (offset, None)
    }
}

/// The async part of a pipeline: the ring, the consumer role, and how to reach the worker.
pub(crate) struct AsyncParts {
    pub(crate) ring: LineQueue,
    pub(crate) consumer: sync::Mutex<Consumer>,
    pub(crate) overflow: Overflow,
    /// The worker's waker: for a parked worker (see [`LineQueue::park_worker`]) and for a
    /// worker waiting for the consumer role.
    pub(crate) worker_waker: AtomicWaker,
    /// True while a worker task runs.
    pub(crate) worker_running: AtomicBool,
    /// Async flushes wait on this; consumers notify it when the barrier moves.
    pub(crate) progress: tokio::sync::Notify,
    pub(crate) flush_waiters: AtomicUsize,
    pub(crate) tick: Duration,
    /// The worker's runtime, for holders of the consumer role that are not on it: an
    /// `AsyncWrite` such as `tokio::fs::File` needs a runtime context to be polled.
    pub(crate) runtime: std::sync::OnceLock<tokio::runtime::Handle>,
    /// True when some writer has an async side.
    pub(crate) has_async_writers: bool,
}

impl AsyncParts {
    pub(crate) fn wake_worker(&self) {
        self.worker_waker.wake();
    }

    /// Enters the worker's runtime if this thread is on none and an async writer may be
    /// polled.
    pub(crate) fn enter_runtime(&self) -> Option<tokio::runtime::EnterGuard<'_>> {
        if !self.has_async_writers || tokio::runtime::Handle::try_current().is_ok() {
            return None;
        }
        self.runtime.get().map(tokio::runtime::Handle::enter)
    }
}

pub(crate) struct Shared {
    pub(crate) min_level: AtomicU8,
    pub(crate) filters: Vec<Filter>,
    pub(crate) enrichment: Enrichment,
    pub(crate) sinks: Vec<Sink>,
    pub(crate) fallback: Arc<dyn SyncWrite>,
    pub(crate) error_hook: ErrorHook,
    pub(crate) queue: Option<AsyncParts>,
    pub(crate) drop_timeout: Duration,
    /// Some writer's (or the fallback's) flush may wait ([`SyncWrite::flush_may_wait`]).
    pub(crate) flush_may_wait: bool,
}

/// A running pipeline; cheap to clone. Make one with [`AsyncPipeline`] or [`SyncPipeline`]
/// (or install one globally with [`init`](crate::init)).
#[derive(Clone)]
pub struct Pipeline {
    pub(crate) shared: Arc<Shared>,
}

impl fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pipeline")
            .field("min_level", &self.min_level())
            .field("async", &self.is_async())
            .field(
                "writers",
                &self
                    .shared
                    .sinks
                    .iter()
                    .map(|s| &s.name)
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl Pipeline {
    /// Opens the writers and builds the shared state; `async_queue` is the ring's capacity, or
    /// `None` for a synchronous pipeline.
    fn build(config: PipelineConfig, async_queue: bool) -> Result<Pipeline, Error> {
        let mut sinks = Vec::with_capacity(config.writers.len());
        let mut outs = Vec::with_capacity(config.writers.len());
        let mut min_sink_level = Level::Critical;
        for writer in &config.writers {
            let opened = writer.target.open(async_queue, &config.fallback)?;
            let formatter = writer
                .formatter
                .clone()
                .unwrap_or_else(|| Arc::clone(&config.formatter));
            let formatter = formatter
                .for_destination(opened.is_terminal)
                .unwrap_or(formatter);
            let min_level = writer.min_level.unwrap_or(Level::Trace);
            min_sink_level = min_sink_level.min(min_level);
            sinks.push(Sink::new(
                opened.name,
                min_level,
                formatter,
                opened.sync,
                opened.sync_is_fallback,
            ));
            outs.push(match opened.async_writer {
                AsyncSide::Async(w) => Some(w),
                AsyncSide::UseSync | AsyncSide::None => None,
            });
        }
        if sinks.len() > u32::MAX as usize {
            return Err(Error::config("too many writers"));
        }
        let has_async_writers = outs.iter().any(Option::is_some);
        let queue = async_queue.then(|| AsyncParts {
            ring: LineQueue::new(config.queue_capacity),
            consumer: sync::Mutex::new(Consumer::new(outs, config.batch_bytes)),
            overflow: config.overflow,
            worker_waker: AtomicWaker::new(),
            worker_running: AtomicBool::new(false),
            progress: tokio::sync::Notify::new(),
            flush_waiters: AtomicUsize::new(0),
            tick: config.flush_interval,
            runtime: std::sync::OnceLock::new(),
            has_async_writers,
        });
        let min_level = config.min_level.max(min_sink_level);
        let flush_may_wait =
            config.fallback.flush_may_wait() || sinks.iter().any(|sink| sink.sync.flush_may_wait());
        let shared = Shared {
            min_level: AtomicU8::new(min_level as u8),
            filters: config.filters,
            enrichment: config.enrichment,
            sinks,
            fallback: config.fallback,
            error_hook: config.error_hook,
            queue,
            drop_timeout: config.drop_timeout,
            flush_may_wait,
        };
        Ok(Pipeline {
            shared: Arc::new(shared),
        })
    }

    /// A synchronous logfmt pipeline to stderr, built without any fallible step.
    pub(crate) fn stderr(min_level: Level) -> Pipeline {
        let stderr: Arc<dyn SyncWrite> = Arc::new(crate::write::StderrWriter::default());
        let formatter: Arc<dyn Formatter> = Arc::new(crate::format::Logfmt::new());
        let sink = Sink::new(
            "stderr".to_owned(),
            Level::Trace,
            formatter,
            Arc::clone(&stderr),
            false,
        );
        Pipeline {
            shared: Arc::new(Shared {
                min_level: AtomicU8::new(min_level as u8),
                filters: Vec::new(),
                enrichment: Enrichment::default(),
                sinks: vec![sink],
                fallback: stderr,
                error_hook: config::default_error_hook(),
                queue: None,
                drop_timeout: Duration::from_secs(2),
                flush_may_wait: true,
            }),
        }
    }

    /// The pipeline's minimum level (loggers without a level of their own use it).
    pub fn min_level(&self) -> Level {
        Level::from_index(self.shared.min_level.load(Ordering::Relaxed)).unwrap_or(Level::Critical)
    }

    /// Changes the minimum level at runtime (an atomic store; no lock on the logging path).
    pub fn set_min_level(&self, level: Level) {
        self.shared.min_level.store(level as u8, Ordering::Relaxed);
        // Loggers cache their decision: make them decide again.
        crate::directives::bump_generation();
    }

    /// True if records at `level` pass the pipeline's minimum level.
    #[inline]
    pub fn enabled(&self, level: Level) -> bool {
        level as u8 >= self.shared.min_level.load(Ordering::Relaxed)
    }

    /// True while lines go through the async worker (false for a synchronous pipeline, and
    /// after shutdown).
    pub fn is_async(&self) -> bool {
        self.shared
            .queue
            .as_ref()
            .is_some_and(|q| !q.ring.is_closing())
    }

    /// A snapshot of the counters; see [`Stats`] for what they add up to.
    pub fn stats(&self) -> Stats {
        self.shared.stats()
    }

    /// Logs a record built elsewhere (the macros and [`Logger`](crate::Logger) call this for you). The
    /// record's level is checked against each writer's level, not against the pipeline's
    /// minimum level: call [`Pipeline::enabled`] first.
    pub fn log_record(&self, record: &LogRecord<'_>) {
        let (_guard, depth) = DepthGuard::enter();
        let shared = &*self.shared;
        let level = record.level();
        if depth > MAX_DEPTH {
            // A `Display` impl or a writer that logs, again and again: formatting this record
            // would log once more. Count it instead.
            for sink in shared.sinks.iter().filter(|s| level >= s.min_level) {
                sink.counters.drop_line(level);
            }
            return;
        }
        if !shared.filters.iter().all(|f| f.allows(record)) {
            return;
        }
        let last = shared.sinks.len().saturating_sub(1);
        let mut previous: Option<(&Arc<dyn Formatter>, Bytes)> = None;
        for (index, sink) in shared.sinks.iter().enumerate() {
            if level < sink.min_level {
                continue;
            }
            let line = match &previous {
                Some((formatter, line)) if Arc::ptr_eq(formatter, &sink.formatter) => line.clone(),
                _ => format_line(&*sink.formatter, record),
            };
            if index < last {
                previous = Some((&sink.formatter, line.clone()));
            }
            shared.emit(index, level, line);
        }
    }

    /// Builds a record with the current context and the enrichers' fields, and logs it.
    pub(crate) fn log(
        &self,
        level: Level,
        logger: &str,
        message: fmt::Arguments<'_>,
        fields: &[Field<'_>],
        location: &Location,
    ) {
        self.log_message(level, logger, message, None, fields, location);
    }

    /// [`log`](Self::log) for a message that is one string (a bridged record's, copied out
    /// of it): the formatters write it as a string, not through `fmt`.
    #[cfg(feature = "tracing")]
    pub(crate) fn log_text(
        &self,
        level: Level,
        logger: &str,
        message: &str,
        fields: &[Field<'_>],
        location: &Location,
    ) {
        self.log_message(
            level,
            logger,
            format_args!("{message}"),
            Some(message),
            fields,
            location,
        );
    }

    #[inline(always)]
    fn log_message(
        &self,
        level: Level,
        logger: &str,
        message: fmt::Arguments<'_>,
        message_text: Option<&str>,
        fields: &[Field<'_>],
        location: &Location,
    ) {
        context::with_current(|ctx| {
            self.shared.enrichment.with_fields(|enriched| {
                let record = LogRecord {
                    timestamp: std::time::SystemTime::now(),
                    level,
                    logger,
                    message,
                    message_text,
                    fields,
                    enriched,
                    context: ctx,
                    location,
                };
                self.log_record(&record);
            })
        });
    }
}

impl Shared {
    /// Sends a line towards sink `index`: into the ring when there is one and it has room,
    /// else as the overflow policy or the closed queue says.
    #[inline]
    fn emit(&self, index: usize, level: Level, line: Bytes) {
        let Some(queue) = &self.queue else {
            self.write_unqueued(index, &line);
            return;
        };
        let entry = Entry {
            sink: index as u32,
            line,
        };
        match queue.ring.push(entry) {
            Ok(false) => {}
            Ok(true) => queue.wake_worker(),
            Err(Refused::Full(entry)) => match queue.overflow {
                Overflow::Drop => self.sinks[index].counters.drop_line(level),
                Overflow::WriteInline => {
                    self.sinks[index]
                        .counters
                        .inline
                        .fetch_add(1, Ordering::Relaxed);
                    self.write_through_consumer(queue, index, &entry.line);
                }
            },
            Err(Refused::Closed(entry)) => self.write_through_consumer(queue, index, &entry.line),
        }
    }

    /// Takes the consumer role (waiting for it), writes everything queued before this line,
    /// then the line: a caller's line never overtakes its own earlier lines.
    fn write_through_consumer(&self, queue: &AsyncParts, index: usize, line: &[u8]) {
        let sink = &self.sinks[index];
        if line::consuming() {
            // Logged from inside a writer or the error hook while this thread writes: taking
            // the role again would deadlock. Write it flat to the fallback.
            sink.counters.direct.fetch_add(1, Ordering::Relaxed);
            self.write_fallback(sink, line, 1);
            return;
        }
        let _consuming = line::ConsumingGuard::enter();
        let _runtime = queue.enter_runtime();
        {
            let mut consumer = sync::lock(&queue.consumer);
            let mut cx = std::task::Context::from_waker(futures::task::noop_waker_ref());
            // Everything queued before this call, the caller's own earlier lines among them.
            let before = queue.ring.tail();
            // Once the queue is closed no worker finishes what an async destination leaves.
            let stalled = if queue.ring.is_closing() {
                Stalled::Divert
            } else {
                Stalled::Wait
            };
            drain_to(&mut consumer, self, queue, &mut cx, stalled, before);
            let position = queue.ring.head();
            consumer.push_direct(sink, index, position, line);
            consumer.run(self, &queue.ring, &mut cx, stalled, position);
        }
        // The worker may be waiting for the role, or have lines an async destination did not
        // take yet.
        queue.wake_worker();
    }

    /// Writes one line with the writer's synchronous side, without a queue (synchronous
    /// pipelines): resumes after a short write; on failure the line goes to the fallback, and
    /// the rest of a line the destination had begun is owed to it (written before the next
    /// line once it takes writes again).
    fn write_unqueued(&self, index: usize, line: &[u8]) {
        let sink = &self.sinks[index];
        sink.counters.direct.fetch_add(1, Ordering::Relaxed);
        if sink.sync_is_fallback {
            self.write_fallback(sink, line, 1);
            return;
        }
        if sink.owes.load(Ordering::Acquire) {
            let mut owed = lock_owed(sink);
            let (taken, error) = sink.write_fully(&owed);
            owed.drain(..taken);
            sink.owes.store(!owed.is_empty(), Ordering::Release);
            if let Some(error) = error {
                drop(owed);
                sink.report_failure(&self.error_hook, error, 1);
                self.write_fallback(sink, line, 1);
                return;
            }
        }
        match sink.write_fully(line) {
            (_, None) => {
                sink.counters.written.fetch_add(1, Ordering::Relaxed);
                if sink.failing.load(Ordering::Relaxed) {
                    sink.failing.store(false, Ordering::Relaxed);
                }
            }
            (taken, Some(error)) => {
                if taken > 0 {
                    lock_owed(sink).extend_from_slice(&line[taken..]);
                    sink.owes.store(true, Ordering::Release);
                }
                sink.report_failure(&self.error_hook, error, 1);
                self.write_fallback(sink, line, 1);
            }
        }
    }

    /// Writes `count` whole lines to the fallback writer on behalf of `sink`.
    pub(crate) fn write_fallback(&self, sink: &Sink, lines: &[u8], count: u64) {
        match self.fallback.write_lines(lines) {
            Ok(()) => {
                sink.counters.fallback.fetch_add(count, Ordering::Relaxed);
            }
            Err(error) => {
                sink.counters.failed.fetch_add(count, Ordering::Relaxed);
                (self.error_hook)(&PipelineError::Fallback {
                    error,
                    lines: count,
                });
            }
        }
    }

    /// Writes `count` whole lines with the writer's synchronous side (its twin), falling back
    /// to the fallback writer.
    pub(crate) fn write_sync_side(&self, sink: &Sink, lines: &[u8], count: u64) {
        match sink.sync.write_lines(lines) {
            Ok(()) => {
                sink.counters.written.fetch_add(count, Ordering::Relaxed);
            }
            Err(error) => {
                sink.report_failure(&self.error_hook, error, count);
                self.write_fallback(sink, lines, count);
            }
        }
    }

    /// Tells async flushes that the barrier moved.
    pub(crate) fn progress_made(&self) {
        if let Some(queue) = &self.queue {
            if queue.flush_waiters.load(Ordering::Acquire) > 0 {
                queue.progress.notify_waiters();
            }
        }
    }

    pub(crate) fn flush_writers(&self) {
        for sink in &self.sinks {
            if sink.owes.load(Ordering::Acquire) {
                // A flush is a good moment to finish a cut line at a recovered destination.
                let mut owed = lock_owed(sink);
                let (taken, _) = sink.write_fully(&owed);
                owed.drain(..taken);
                sink.owes.store(!owed.is_empty(), Ordering::Release);
            }
            let _ = sink.sync.flush();
        }
        let _ = self.fallback.flush();
    }

    pub(crate) fn stats(&self) -> Stats {
        let queued = self
            .queue
            .as_ref()
            .map_or(0, |q| q.ring.tail().saturating_sub(q.ring.head()));
        Stats::collect(self.sinks.iter().map(|s| &s.counters), queued)
    }
}

/// Runs the consumer until its position reaches `target` or the queue is empty, waiting out
/// producers that are mid-push.
fn drain_to(
    consumer: &mut Consumer,
    shared: &Shared,
    queue: &AsyncParts,
    cx: &mut std::task::Context<'_>,
    stalled: Stalled,
    target: u64,
) -> consumer::Step {
    loop {
        match consumer.run(shared, &queue.ring, cx, stalled, target) {
            consumer::Step::InFlight => std::thread::yield_now(),
            consumer::Step::More if queue.ring.head() < target => {}
            step => return step,
        }
    }
}
