//! Pipelines: from a logging call to bytes at a destination.
//!
//! ```text
//! call site ─► level check ─► LogRecord (on the stack) ─► filters ─► enrichers + context
//!   ─► formatter writes the line into a thread-local BytesMut ─► split + freeze ─► Bytes
//!   ─► async: mpsc::Sender::try_send ─► worker task: recv_many ─► BytesMut batch ─► AsyncWrite
//!      │ queue full ─► overflow policy (write inline, or drop and count)
//!      │ closed / no runtime ─► synchronous writer (same destination)
//!   ─► sync: the writer's synchronous side, one write per line
//! ```

mod config;
mod worker;

use std::cell::{Cell, RefCell};
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use tokio::sync::mpsc;

pub use config::{
    Enricher, ErrorHook, Filter, Overflow, PipelineConfig, PipelineConfigBuilder, PipelineError,
};
pub use worker::Worker;

pub(crate) use config::Enrichment;

use crate::context;
use crate::error::Error;
use crate::field::Field;
use crate::format::Formatter;
use crate::level::Level;
use crate::logger::Logger;
use crate::record::{Location, LogRecord};
use crate::write::{AsyncSide, SyncWrite};

/// One writer as the pipeline uses it.
pub(crate) struct Sink {
    pub(crate) name: String,
    pub(crate) min_level: Level,
    pub(crate) formatter: Arc<dyn Formatter>,
    pub(crate) sync: Arc<dyn SyncWrite>,
    pub(crate) sync_is_fallback: bool,
    /// Set while the destination fails, so that a failure is reported once, not per line.
    pub(crate) failing: AtomicBool,
}

/// What crosses the queue.
pub(crate) enum Msg {
    Line { sink: u32, line: Bytes },
    Flush(Ack),
    Shutdown(Ack),
}

impl Msg {
    /// Answers a flush or shutdown request (a line needs no answer).
    pub(crate) fn answer(self) {
        if let Msg::Flush(ack) | Msg::Shutdown(ack) = self {
            ack.send();
        }
    }
}

/// How the worker tells a waiter that everything before the request is written.
pub(crate) enum Ack {
    Async(tokio::sync::oneshot::Sender<()>),
    Blocking(std::sync::mpsc::SyncSender<()>),
}

impl Ack {
    pub(crate) fn send(self) {
        match self {
            Ack::Async(tx) => {
                let _ = tx.send(());
            }
            Ack::Blocking(tx) => {
                let _ = tx.try_send(());
            }
        }
    }
}

/// Lines taken from the queue, per sink, and the requests met among them.
struct Drained {
    batches: Vec<(BytesMut, u64)>,
    /// Flush and shutdown requests, in queue order.
    requests: Vec<Msg>,
}

/// The async part of a pipeline.
pub(crate) struct Queue {
    pub(crate) tx: mpsc::Sender<Msg>,
    /// Shared so that a flush or a teardown can drain what the worker has not taken.
    pub(crate) rx: Mutex<mpsc::Receiver<Msg>>,
    /// Set once the queue is closed for good: producers write synchronously.
    pub(crate) closed: AtomicBool,
    pub(crate) overflow: Overflow,
}

#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) received: AtomicU64,
    pub(crate) direct: AtomicU64,
    pub(crate) inline: AtomicU64,
    pub(crate) written: AtomicU64,
    pub(crate) fallback: AtomicU64,
    pub(crate) dropped: [AtomicU64; 6],
    pub(crate) write_errors: AtomicU64,
    pub(crate) lost: AtomicU64,
}

pub(crate) struct Shared {
    pub(crate) min_level: AtomicU8,
    pub(crate) filters: Vec<Filter>,
    pub(crate) enrichment: Enrichment,
    pub(crate) sinks: Vec<Sink>,
    pub(crate) fallback: Arc<dyn SyncWrite>,
    pub(crate) error_hook: ErrorHook,
    pub(crate) counters: Counters,
    pub(crate) queue: Option<Queue>,
    pub(crate) drop_timeout: Duration,
}

/// Counters of a pipeline, all in lines (a record sent to two writers is two lines).
///
/// Once the pipeline is flushed, `accepted == written + fallback + lost`, and every line a
/// caller logged is in `accepted` or `dropped`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Lines taken by the pipeline: queued lines count once the worker takes them.
    pub accepted: u64,
    /// Lines written to their destination.
    pub written: u64,
    /// Lines written synchronously by the caller because the queue was full
    /// ([`Overflow::WriteInline`]); they are also counted in `written` or `fallback`.
    pub written_inline: u64,
    /// Lines dropped because the queue was full ([`Overflow::Drop`]).
    pub dropped: u64,
    /// Dropped lines per level, indexed by [`Level::index`].
    pub dropped_by_level: [u64; 6],
    /// Lines written to the fallback writer because their destination failed (or has no
    /// synchronous side).
    pub written_via_fallback: u64,
    /// Failed writes (a failed batch counts once).
    pub write_errors: u64,
    /// Lines that even the fallback writer could not take.
    pub lost: u64,
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

thread_local! {
    static LINE_BUFFER: RefCell<LineChunks> = RefCell::new(LineChunks::default());
    static DEPTH: Cell<u32> = const { Cell::new(0) };
}

/// The lines of one thread share chunks of this size.
const CHUNK: usize = 64 * 1024;
/// Below this much room, the next line starts a fresh chunk (or reclaims the old one).
const CHUNK_LOW_WATER: usize = 2 * 1024;
/// Records logged from inside a writer or a formatter deeper than this go to the fallback.
const MAX_DEPTH: u32 = 3;

/// A thread's two line chunks: lines are cut from `current`; when it runs low, the chunks
/// swap. By the time a chunk is used again, a whole chunk of lines has been logged since its
/// last line, so the worker has normally written (and released) all of them and `reserve`
/// reclaims the chunk in place instead of allocating a new one.
#[derive(Default)]
struct LineChunks {
    current: BytesMut,
    spare: BytesMut,
}

impl LineChunks {
    fn buffer(&mut self) -> &mut BytesMut {
        if self.current.capacity() < CHUNK_LOW_WATER {
            std::mem::swap(&mut self.current, &mut self.spare);
            self.current.reserve(CHUNK);
        }
        &mut self.current
    }
}

/// Formats `record` with `formatter` into the thread's chunk and returns the line.
///
/// In steady state this allocates nothing: the line is a slice of the thread's chunk, and
/// chunks are reclaimed once the worker has written their lines. A formatter that logs
/// (re-entrancy) gets a fresh buffer instead of a double borrow.
fn format_line(formatter: &dyn Formatter, record: &LogRecord<'_>) -> Bytes {
    let formatted = LINE_BUFFER.try_with(|cell| {
        let mut chunks = cell.try_borrow_mut().ok()?;
        let buf = chunks.buffer();
        // Empty unless a formatter (a `Display` impl) panicked half-way through a line last
        // time: that half must not become the start of this line.
        buf.clear();
        formatter.format(record, buf);
        Some(buf.split().freeze())
    });
    match formatted {
        Ok(Some(line)) => line,
        _ => {
            let mut buf = BytesMut::with_capacity(256);
            formatter.format(record, &mut buf);
            buf.freeze()
        }
    }
}

struct DepthGuard;

impl DepthGuard {
    fn enter() -> (DepthGuard, u32) {
        let depth = DEPTH
            .try_with(|d| {
                let v = d.get() + 1;
                d.set(v);
                v
            })
            .unwrap_or(1);
        (DepthGuard, depth)
    }
}

impl Drop for DepthGuard {
    fn drop(&mut self) {
        let _ = DEPTH.try_with(|d| d.set(d.get().saturating_sub(1)));
    }
}

impl Pipeline {
    fn build(
        config: PipelineConfig,
        queue: Option<Queue>,
    ) -> Result<(Pipeline, Vec<AsyncSide>), Error> {
        let with_async = queue.is_some();
        let mut sinks = Vec::with_capacity(config.writers.len());
        let mut async_sides = Vec::with_capacity(config.writers.len());
        let mut min_sink_level = Level::Critical;
        for writer in &config.writers {
            let opened = writer.target.open(with_async, &config.fallback)?;
            let formatter = writer
                .formatter
                .clone()
                .unwrap_or_else(|| Arc::clone(&config.formatter));
            let formatter = formatter
                .for_destination(opened.is_terminal)
                .unwrap_or(formatter);
            let min_level = writer.min_level.unwrap_or(Level::Trace);
            min_sink_level = min_sink_level.min(min_level);
            sinks.push(Sink {
                name: opened.name,
                min_level,
                formatter,
                sync: opened.sync,
                sync_is_fallback: opened.sync_is_fallback,
                failing: AtomicBool::new(false),
            });
            async_sides.push(opened.async_writer);
        }
        if sinks.len() > u32::MAX as usize {
            return Err(Error::config("too many writers"));
        }
        let min_level = config.min_level.max(min_sink_level);
        let shared = Shared {
            min_level: AtomicU8::new(min_level as u8),
            filters: config.filters,
            enrichment: config.enrichment,
            sinks,
            fallback: config.fallback,
            error_hook: config.error_hook,
            counters: Counters::default(),
            queue,
            drop_timeout: config.drop_timeout,
        };
        Ok((
            Pipeline {
                shared: Arc::new(shared),
            },
            async_sides,
        ))
    }

    /// A synchronous logfmt pipeline to stderr, built without any fallible step.
    pub(crate) fn stderr(min_level: Level) -> Pipeline {
        let stderr: Arc<dyn SyncWrite> = Arc::new(crate::write::StderrWriter::default());
        let formatter: Arc<dyn Formatter> = Arc::new(crate::format::Logfmt::new());
        let sink = Sink {
            name: "stderr".to_owned(),
            min_level: Level::Trace,
            formatter,
            sync: Arc::clone(&stderr),
            sync_is_fallback: false,
            failing: AtomicBool::new(false),
        };
        Pipeline {
            shared: Arc::new(Shared {
                min_level: AtomicU8::new(min_level as u8),
                filters: Vec::new(),
                enrichment: Enrichment::default(),
                sinks: vec![sink],
                fallback: stderr,
                error_hook: config::default_error_hook(),
                counters: Counters::default(),
                queue: None,
                drop_timeout: Duration::from_secs(2),
            }),
        }
    }

    /// A logger named `name` that logs through this pipeline.
    ///
    /// # Examples
    ///
    /// ```
    /// use kakashi::write::MemoryWriter;
    /// use kakashi::{info, PipelineConfig, SyncPipeline, Writer};
    ///
    /// let memory = MemoryWriter::new();
    /// let config = PipelineConfig::builder().writer(Writer::memory(&memory)).build().unwrap();
    /// let (pipeline, _guard) = SyncPipeline::start(config).unwrap();
    /// let log = pipeline.logger("app");
    /// info!(log, "ready"; port = 8080);
    /// assert!(memory.lines()[0].ends_with("logger=app msg=ready port=8080"));
    /// ```
    pub fn logger(&self, name: &str) -> Logger {
        Logger::bound(name, self.clone())
    }

    /// The pipeline's minimum level (loggers without a level of their own use it).
    pub fn min_level(&self) -> Level {
        Level::from_index(self.shared.min_level.load(Ordering::Relaxed)).unwrap_or(Level::Critical)
    }

    /// Changes the minimum level at runtime (an atomic store; no lock).
    pub fn set_min_level(&self, level: Level) {
        self.shared.min_level.store(level as u8, Ordering::Relaxed);
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
            .is_some_and(|q| !q.closed.load(Ordering::Relaxed))
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> Stats {
        let c = &self.shared.counters;
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let dropped_by_level = [0, 1, 2, 3, 4, 5].map(|i| load(&c.dropped[i]));
        Stats {
            accepted: load(&c.received) + load(&c.direct),
            written: load(&c.written),
            written_inline: load(&c.inline),
            dropped: dropped_by_level.iter().sum(),
            dropped_by_level,
            written_via_fallback: load(&c.fallback),
            write_errors: load(&c.write_errors),
            lost: load(&c.lost),
        }
    }

    /// Logs a record built elsewhere (the macros and [`Logger`] call this for you). The
    /// record's level is checked against each writer's level, not against the pipeline's
    /// minimum level: call [`Pipeline::enabled`] first.
    pub fn log_record(&self, record: &LogRecord<'_>) {
        let (_guard, depth) = DepthGuard::enter();
        let shared = &*self.shared;
        if depth > MAX_DEPTH {
            // A writer or a Display impl that logs, again and again: keep the line, but out
            // of the loop.
            let line = format_line(&*shared.sinks[0].formatter, record);
            shared.counters.direct.fetch_add(1, Ordering::Relaxed);
            shared.write_fallback(&line, 1);
            return;
        }
        if !shared.filters.iter().all(|f| f.allows(record)) {
            return;
        }
        let level = record.level();
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
        context::with_current(|ctx| {
            self.shared.enrichment.with_fields(|enriched| {
                let record = LogRecord {
                    timestamp: std::time::SystemTime::now(),
                    level,
                    logger,
                    message,
                    fields,
                    enriched,
                    context: ctx,
                    location,
                };
                self.log_record(&record);
            })
        });
    }

    /// Waits until every line logged before this call is written and flushed.
    ///
    /// On a synchronous pipeline (or after shutdown) this flushes the writers.
    ///
    /// # Cancel safety
    ///
    /// Cancelling the wait loses nothing: the lines are still written by the worker.
    pub async fn flush(&self) {
        let Some(queue) = self.shared.queue.as_ref() else {
            self.shared.flush_writers();
            return;
        };
        if queue.closed.load(Ordering::Acquire) {
            self.shared.flush_writers();
            return;
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        if queue.tx.send(Msg::Flush(Ack::Async(tx))).await.is_err() {
            self.shared.flush_writers();
            return;
        }
        if rx.await.is_err() {
            // The worker went away: its teardown drained the queue.
            self.shared.flush_writers();
        }
    }

    /// Flushes from synchronous code, waiting at most `timeout` for the worker; what it has
    /// not written by then is written from this thread. For paths that end in
    /// `std::process::exit`, panic hooks and `Drop` impls.
    pub fn flush_blocking(&self, timeout: Duration) {
        self.shared.wait_for_worker(timeout, false, true);
    }

    /// Closes the async part: waits (at most `timeout`) for the worker to write what is queued
    /// and stop; later records are written synchronously.
    pub(crate) fn close_blocking(&self, timeout: Duration) {
        self.shared.wait_for_worker(timeout, true, true);
    }

    /// A flush for panic hooks: never calls `block_in_place` (which can itself panic, and a
    /// panic inside a panic hook aborts), and waits at most 200 ms on a runtime thread.
    pub(crate) fn flush_in_panic_hook(&self, timeout: Duration) {
        self.shared.wait_for_worker(timeout, false, false);
    }

    pub(crate) async fn shutdown(&self, deadline: Duration) -> bool {
        let Some(queue) = self.shared.queue.as_ref() else {
            self.shared.flush_writers();
            return true;
        };
        if queue.closed.load(Ordering::Acquire) {
            self.shared.flush_writers();
            return true;
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        let done = tokio::time::timeout(deadline, async {
            if queue.tx.send(Msg::Shutdown(Ack::Async(tx))).await.is_ok() {
                let _ = rx.await;
            }
        })
        .await
        .is_ok();
        if !done {
            (self.shared.error_hook)(&PipelineError::Timeout { what: "shutdown" });
        }
        // Whatever the worker did not get to, write it here.
        self.shared.close_and_drain();
        self.shared.flush_writers();
        done
    }
}

impl Shared {
    /// Sends a line towards sink `index`: through the queue when there is one, else directly.
    #[inline]
    fn emit(&self, index: usize, level: Level, line: Bytes) {
        if let Some(queue) = &self.queue {
            if !queue.closed.load(Ordering::Relaxed) {
                let msg = Msg::Line {
                    sink: index as u32,
                    line,
                };
                let line = match queue.tx.try_send(msg) {
                    Ok(()) => return,
                    Err(mpsc::error::TrySendError::Full(msg)) => {
                        let Msg::Line { line, .. } = msg else {
                            return;
                        };
                        match queue.overflow {
                            Overflow::Drop => {
                                drop(line);
                                self.counters.dropped[level.index()]
                                    .fetch_add(1, Ordering::Relaxed);
                                return;
                            }
                            Overflow::WriteInline => {
                                self.counters.inline.fetch_add(1, Ordering::Relaxed);
                                self.help_drain(queue);
                                line
                            }
                        }
                    }
                    Err(mpsc::error::TrySendError::Closed(msg)) => match msg {
                        Msg::Line { line, .. } => line,
                        _ => return,
                    },
                };
                self.write_direct(index, &line);
                return;
            }
        }
        self.write_direct(index, &line);
    }

    /// Writes a line synchronously to its sink (or the fallback), counting it.
    pub(crate) fn write_direct(&self, index: usize, line: &[u8]) {
        self.counters.direct.fetch_add(1, Ordering::Relaxed);
        self.write_lines_sync(index, line, 1);
    }

    /// Writes whole lines to sink `index`'s synchronous side; on failure, to the fallback.
    pub(crate) fn write_lines_sync(&self, index: usize, lines: &[u8], count: u64) {
        let sink = &self.sinks[index];
        if sink.sync_is_fallback {
            self.write_fallback(lines, count);
            return;
        }
        match sink.sync.write_lines(lines) {
            Ok(()) => {
                self.counters.written.fetch_add(count, Ordering::Relaxed);
                if sink.failing.load(Ordering::Relaxed) {
                    sink.failing.store(false, Ordering::Relaxed);
                }
            }
            Err(error) => self.write_failed(sink, error, lines, count),
        }
    }

    pub(crate) fn write_failed(
        &self,
        sink: &Sink,
        error: std::io::Error,
        lines: &[u8],
        count: u64,
    ) {
        self.counters.write_errors.fetch_add(1, Ordering::Relaxed);
        if !sink.failing.swap(true, Ordering::Relaxed) {
            (self.error_hook)(&PipelineError::Write {
                writer: sink.name.clone(),
                error,
                lines: count,
            });
        }
        self.write_fallback(lines, count);
    }

    pub(crate) fn write_fallback(&self, lines: &[u8], count: u64) {
        match self.fallback.write_lines(lines) {
            Ok(()) => {
                self.counters.fallback.fetch_add(count, Ordering::Relaxed);
            }
            Err(error) => {
                self.counters.lost.fetch_add(count, Ordering::Relaxed);
                (self.error_hook)(&PipelineError::Fallback {
                    error,
                    lines: count,
                });
            }
        }
    }

    pub(crate) fn flush_writers(&self) {
        for sink in &self.sinks {
            let _ = sink.sync.flush();
        }
        let _ = self.fallback.flush();
    }

    /// Closes the queue and writes what is left in it from this thread. Producers write
    /// synchronously from now on.
    pub(crate) fn close_and_drain(&self) {
        let Some(queue) = &self.queue else { return };
        queue.closed.store(true, Ordering::Release);
        let drained = {
            let mut rx = queue.rx.lock().unwrap_or_else(PoisonError::into_inner);
            rx.close();
            self.take_queued(&mut rx, usize::MAX, true)
        };
        self.write_drained(drained)
            .into_iter()
            .for_each(Msg::answer);
    }

    /// Writes from this thread whatever is in the queue now (a flush whose worker did not
    /// answer in time).
    fn drain_now(&self, queue: &Queue) {
        let drained = {
            let mut rx = queue.rx.lock().unwrap_or_else(PoisonError::into_inner);
            self.take_queued(&mut rx, usize::MAX, false)
        };
        self.write_drained(drained)
            .into_iter()
            .for_each(Msg::answer);
    }

    /// With [`Overflow::WriteInline`], a caller that finds the queue full first writes (in one
    /// batch) the lines queued before its own, if no one else is taking from the queue at that
    /// moment: one write for many lines instead of one per line, and its own line lands after
    /// the older ones. Flush and shutdown requests it meets go back into the queue, since the
    /// worker may still hold older lines.
    fn help_drain(&self, queue: &Queue) {
        const HELP_LIMIT: usize = 4096;
        // A writer with no synchronous side (a socket) would see its queued lines diverted
        // to the fallback: leave them to the worker.
        if self.sinks.iter().any(|sink| sink.sync_is_fallback) {
            return;
        }
        let drained = match queue.rx.try_lock() {
            Ok(mut rx) => self.take_queued(&mut rx, HELP_LIMIT, false),
            Err(_) => return,
        };
        for msg in self.write_drained(drained) {
            // The queue has room now; if it is full again, dropping the request tells its
            // waiter that the worker did not answer, and the waiter writes the rest itself.
            let _ = queue.tx.try_send(msg);
        }
    }

    /// Takes up to `limit` messages from the queue. With `until_closed`, also waits (briefly)
    /// for senders that hold a permit of a closed queue.
    fn take_queued(
        &self,
        rx: &mut mpsc::Receiver<Msg>,
        limit: usize,
        until_closed: bool,
    ) -> Drained {
        let mut drained = Drained {
            batches: self.sinks.iter().map(|_| (BytesMut::new(), 0)).collect(),
            requests: Vec::new(),
        };
        let mut spins = 0u32;
        let mut taken = 0;
        while taken < limit {
            match rx.try_recv() {
                Ok(Msg::Line { sink, line }) => {
                    taken += 1;
                    let (batch, count) = &mut drained.batches[sink as usize];
                    batch.extend_from_slice(&line);
                    *count += 1;
                }
                Ok(request) => drained.requests.push(request),
                Err(mpsc::error::TryRecvError::Empty) if until_closed && spins < 1000 => {
                    spins += 1;
                    std::thread::yield_now();
                }
                Err(_) => break,
            }
        }
        self.counters
            .received
            .fetch_add(taken as u64, Ordering::Relaxed);
        drained
    }

    /// Writes drained lines per sink and hands back the requests met among them, to be
    /// answered (or re-queued) once the lines before them are written.
    fn write_drained(&self, drained: Drained) -> Vec<Msg> {
        for (index, (batch, count)) in drained.batches.iter().enumerate() {
            if *count > 0 {
                self.write_lines_sync(index, batch, *count);
            }
        }
        drained.requests
    }

    /// Asks the worker to flush (or shut down) and waits for its answer.
    fn request_and_wait(&self, queue: &Queue, timeout: Duration, close: bool) -> bool {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let mut msg = Some(if close {
            Msg::Shutdown(Ack::Blocking(tx))
        } else {
            Msg::Flush(Ack::Blocking(tx))
        });
        let started = Instant::now();
        let mut sent = false;
        while let Some(m) = msg.take() {
            match queue.tx.try_send(m) {
                Ok(()) => sent = true,
                Err(mpsc::error::TrySendError::Full(m)) if started.elapsed() < timeout => {
                    msg = Some(m);
                    std::thread::sleep(Duration::from_micros(200));
                }
                Err(_) => {}
            }
        }
        let acked = sent
            && rx
                .recv_timeout(timeout.saturating_sub(started.elapsed()))
                .is_ok();
        if sent && !acked {
            (self.error_hook)(&PipelineError::Timeout {
                what: if close {
                    "closing the pipeline"
                } else {
                    "flush"
                },
            });
        }
        acked
    }

    fn wait_for_worker(&self, timeout: Duration, close: bool, may_move_runtime: bool) {
        let Some(queue) = &self.queue else {
            self.flush_writers();
            return;
        };
        if queue.closed.load(Ordering::Acquire) {
            self.flush_writers();
            return;
        }
        // Blocking a current_thread runtime would stall the worker: write from here instead.
        // On a multi-thread runtime, `block_in_place` lets the other workers run the worker
        // task while this thread waits.
        let flavor = tokio::runtime::Handle::try_current()
            .ok()
            .map(|h| h.runtime_flavor());
        let acked = match flavor {
            None => self.request_and_wait(queue, timeout, close),
            Some(tokio::runtime::RuntimeFlavor::MultiThread) if may_move_runtime => {
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    tokio::task::block_in_place(|| self.request_and_wait(queue, timeout, close))
                }))
                .unwrap_or(false)
            }
            // Without moving the runtime off this thread, the worker task may be queued right
            // here: wait briefly, then write from here.
            Some(tokio::runtime::RuntimeFlavor::MultiThread) => {
                self.request_and_wait(queue, timeout.min(Duration::from_millis(200)), close)
            }
            Some(_) => false,
        };
        if close || !acked {
            if close {
                self.close_and_drain();
            } else {
                self.drain_now(queue);
            }
        }
        self.flush_writers();
    }
}

/// Starts async pipelines: a tokio task drains the queue into batches and writes them with
/// `AsyncWrite`.
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
///     guard.shutdown().await; // or let it drop: the drop flushes too
/// #   assert!(std::fs::read_to_string(&path).unwrap().contains("msg=started workers=4"));
/// }
/// run(&path);
/// # let _ = std::fs::remove_dir_all(dir);
/// ```
#[derive(Debug)]
pub struct AsyncPipeline {
    _private: (),
}

impl AsyncPipeline {
    /// Starts a pipeline: on a tokio runtime, the worker task is spawned on it; without one
    /// (a plain `fn main`), a synchronous pipeline to the same writers is started instead.
    ///
    /// # Errors
    ///
    /// [`Error`] when a writer cannot be opened (a file's path, for example).
    pub fn start(config: PipelineConfig) -> Result<(Pipeline, PipelineGuard), Error> {
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                let (pipeline, guard, worker) = AsyncPipeline::with_worker(config)?;
                handle.spawn(worker.run());
                Ok((pipeline, guard))
            }
            Err(_) => SyncPipeline::start(config),
        }
    }

    /// Builds a pipeline and hands its worker back instead of spawning it: run
    /// [`Worker::run`] on the executor of your choice. Until it runs, a full queue makes
    /// callers write their own lines ([`Overflow::WriteInline`]); if it is dropped without
    /// running, what is queued is written synchronously and later records are too.
    ///
    /// # Errors
    ///
    /// [`Error`] when a writer cannot be opened.
    pub fn with_worker(config: PipelineConfig) -> Result<(Pipeline, PipelineGuard, Worker), Error> {
        let (tx, rx) = mpsc::channel(config.queue_capacity);
        let queue = Queue {
            tx,
            rx: Mutex::new(rx),
            closed: AtomicBool::new(false),
            overflow: config.overflow,
        };
        let batch_bytes = config.batch_bytes;
        let tick = config.flush_interval;
        let (pipeline, sides) = Pipeline::build(config, Some(queue))?;
        let worker = Worker::new(Arc::clone(&pipeline.shared), sides, batch_bytes, tick);
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
        let (pipeline, _) = Pipeline::build(config, None)?;
        let guard = PipelineGuard::new(pipeline.clone());
        Ok((pipeline, guard))
    }
}

/// Keeps a pipeline's worker writing; dropping it flushes and stops the pipeline.
///
/// Dropping the guard waits (at most the config's `drop_timeout`, 2 s by default) for the worker
/// to write what is queued, then writes anything left from the dropping thread; records logged
/// afterwards are written synchronously, so nothing is lost. In async code, prefer
/// [`PipelineGuard::shutdown`].
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
    /// returns false if that deadline passed (the rest is then written from this task).
    pub async fn shutdown(self) -> bool {
        self.shutdown_within(Duration::from_secs(5)).await
    }

    /// Like [`shutdown`](Self::shutdown) with a deadline of your choice.
    pub async fn shutdown_within(mut self, deadline: Duration) -> bool {
        match self.pipeline.take() {
            Some(pipeline) => pipeline.shutdown(deadline).await,
            None => true,
        }
    }
}

impl Drop for PipelineGuard {
    fn drop(&mut self) {
        if let Some(pipeline) = self.pipeline.take() {
            let timeout = pipeline.shared.drop_timeout;
            pipeline.close_blocking(timeout);
        }
    }
}
