//! The worker task: from the queue to batches to `AsyncWrite`.

use std::fmt;
use std::future::poll_fn;
use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError};
use std::task::Poll;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::AsyncWriteExt;

use super::{Ack, Msg, Shared};
use crate::field::{Field, Value};
use crate::level::Level;
use crate::record::{Location, LogRecord};
use crate::write::{AsyncSide, BoxAsyncWrite};

/// How many messages one receive takes at most.
const RECV_LIMIT: usize = 1024;

/// The pipeline's worker: drains the queue into one `BytesMut` batch per writer and writes
/// whole batches through `AsyncWrite`.
///
/// [`AsyncPipeline::start`](super::AsyncPipeline::start) spawns it for you;
/// [`AsyncPipeline::with_worker`](super::AsyncPipeline::with_worker) hands it to you to run
/// with [`Worker::run`].
///
/// Dropping the worker (for example because the runtime shuts down) writes what it holds and
/// what is still queued synchronously, closes the queue, and makes later records go through
/// the synchronous writers: a `#[tokio::main]` that returns loses no line.
pub struct Worker {
    shared: Arc<Shared>,
    sinks: Vec<WorkerSink>,
    items: Vec<Msg>,
    acks: Vec<Ack>,
    batch_bytes: usize,
    tick: Duration,
    dropped_reported: u64,
    finished: bool,
}

struct WorkerSink {
    out: Option<BoxAsyncWrite>,
    batch: BytesMut,
    lines: u64,
    /// Set once the writer has taken the whole batch, until it is flushed: a batch handed off
    /// is the writer's to finish, and must not be written a second time on drop.
    handed_off: bool,
}

impl fmt::Debug for Worker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Worker")
            .field("writers", &self.sinks.len())
            .field("batch_bytes", &self.batch_bytes)
            .field("tick", &self.tick)
            .finish_non_exhaustive()
    }
}

/// Where the in-band "records dropped" line says it comes from.
static DROPPED_LOCATION: Location = Location::new("kakashi::pipeline", file!(), line!());

impl Worker {
    pub(crate) fn new(
        shared: Arc<Shared>,
        sides: Vec<AsyncSide>,
        batch_bytes: usize,
        tick: Duration,
    ) -> Self {
        let sinks = sides
            .into_iter()
            .map(|side| WorkerSink {
                out: match side {
                    AsyncSide::Async(w) => Some(w),
                    AsyncSide::UseSync | AsyncSide::None => None,
                },
                batch: BytesMut::with_capacity(batch_bytes + batch_bytes / 4),
                lines: 0,
                handed_off: false,
            })
            .collect();
        Worker {
            shared,
            sinks,
            items: Vec::with_capacity(RECV_LIMIT),
            acks: Vec::new(),
            batch_bytes,
            tick,
            dropped_reported: 0,
            finished: false,
        }
    }

    /// Runs the worker until the pipeline shuts down.
    ///
    /// The runtime needs its time driver (as `#[tokio::main]` and `Builder::enable_all` give
    /// it): a busy worker waits one flush interval between drains.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future loses nothing: received lines are always either in a batch or still
    /// in the worker's buffer, and the drop writes both (a batch already handed to the writer
    /// is left to it: tokio finishes file and stdio writes even while it shuts down).
    pub async fn run(mut self) {
        let timer = timer_available();
        'idle: loop {
            if self.receive().await == 0 {
                break;
            }
            loop {
                // Move what was received into batches, writing each batch as it fills, until
                // the queue is empty.
                let mut shutdown = false;
                loop {
                    shutdown |= self.absorb();
                    self.write_batches(true).await;
                    if !self.items.is_empty() {
                        continue;
                    }
                    if shutdown || self.try_receive().await == 0 {
                        break;
                    }
                }
                self.report_drops();
                self.write_batches(false).await;
                if shutdown {
                    self.finish();
                    return;
                }
                self.answer_acks();
                // While lines keep coming, drain on a tick instead of being woken for each
                // line: producers then hand off without a wake-up syscall.
                if timer {
                    tokio::time::sleep(self.tick).await;
                } else {
                    tokio::task::yield_now().await;
                }
                if self.try_receive().await == 0 {
                    continue 'idle;
                }
            }
        }
        self.finish();
    }

    /// Waits for at least one message; 0 means the queue is closed and empty.
    async fn receive(&mut self) -> usize {
        let shared = &self.shared;
        let items = &mut self.items;
        let Some(queue) = shared.queue.as_ref() else {
            return 0;
        };
        poll_fn(|cx| {
            let mut rx = queue.rx.lock().unwrap_or_else(PoisonError::into_inner);
            rx.poll_recv_many(cx, items, RECV_LIMIT)
        })
        .await
    }

    /// Takes what is queued now, without waiting: 0 when nothing is ready (or the queue is
    /// closed). Polls rather than `try_recv`, which parks the thread while a producer is
    /// half-way through a send; this runs on a runtime thread.
    async fn try_receive(&mut self) -> usize {
        let shared = &self.shared;
        let items = &mut self.items;
        let Some(queue) = shared.queue.as_ref() else {
            return 0;
        };
        poll_fn(|cx| {
            let mut rx = queue.rx.lock().unwrap_or_else(PoisonError::into_inner);
            match rx.poll_recv_many(cx, items, RECV_LIMIT) {
                Poll::Ready(n) => Poll::Ready(n),
                // Registered our waker: a later send wakes us early at worst.
                Poll::Pending => Poll::Ready(0),
            }
        })
        .await
    }

    /// Copies received lines into their batches until one is full; what is not absorbed stays
    /// in `items`. Nothing here awaits, so a received line is never only in a local. Returns
    /// true on a shutdown request.
    fn absorb(&mut self) -> bool {
        let mut taken = 0;
        let mut lines = 0;
        for msg in &self.items {
            taken += 1;
            if let Msg::Line { sink, line } = msg {
                let target = &mut self.sinks[*sink as usize];
                target.batch.extend_from_slice(line);
                target.lines += 1;
                lines += 1;
                if target.batch.len() >= self.batch_bytes {
                    break;
                }
            }
        }
        let mut shutdown = false;
        for msg in self.items.drain(..taken) {
            match msg {
                Msg::Line { .. } => {}
                Msg::Flush(ack) => self.acks.push(ack),
                Msg::Shutdown(ack) => {
                    self.acks.push(ack);
                    shutdown = true;
                }
            }
        }
        self.shared
            .counters
            .received
            .fetch_add(lines, Ordering::Relaxed);
        shutdown
    }

    /// Writes the non-empty batches (with `only_full`, those that reached `batch_bytes`).
    async fn write_batches(&mut self, only_full: bool) {
        for index in 0..self.sinks.len() {
            let len = self.sinks[index].batch.len();
            if len > 0 && (!only_full || len >= self.batch_bytes) {
                self.write_batch(index).await;
            }
        }
    }

    /// Writes one batch; on failure its lines go to the fallback writer.
    async fn write_batch(&mut self, index: usize) {
        let target = &mut self.sinks[index];
        let sink = &self.shared.sinks[index];
        let result = match &mut target.out {
            Some(out) => match out.write_all(&target.batch).await {
                Ok(()) => {
                    target.handed_off = true;
                    out.flush().await
                }
                Err(e) => Err(e),
            },
            None => sink.sync.write_lines(&target.batch),
        };
        // The async side can fail where the destination itself is fine: tokio's blocking pool
        // refuses work while the runtime shuts down. Give the synchronous side of the same
        // destination a chance before the fallback.
        let result = match result {
            Err(_) if target.out.is_some() && !sink.sync_is_fallback => {
                sink.sync.write_lines(&target.batch)
            }
            other => other,
        };
        let lines = std::mem::take(&mut target.lines);
        match result {
            Ok(()) => {
                self.shared
                    .counters
                    .written
                    .fetch_add(lines, Ordering::Relaxed);
                sink.failing.store(false, Ordering::Relaxed);
            }
            Err(error) => self.shared.write_failed(sink, error, &target.batch, lines),
        }
        target.batch.clear();
        target.handed_off = false;
    }

    /// With the drop policy: adds a `"N records dropped"` line to each batch when records
    /// were dropped since the last report.
    fn report_drops(&mut self) {
        let counters = &self.shared.counters;
        let by_level: [u64; 6] =
            [0, 1, 2, 3, 4, 5].map(|i| counters.dropped[i].load(Ordering::Relaxed));
        let total: u64 = by_level.iter().sum();
        if total == self.dropped_reported {
            return;
        }
        let new = total - self.dropped_reported;
        self.dropped_reported = total;
        let fields = [
            Field::new("dropped", Value::U64(new)),
            Field::new("dropped_total", Value::U64(total)),
            Field::new("dropped_trace", Value::U64(by_level[0])),
            Field::new("dropped_debug", Value::U64(by_level[1])),
            Field::new("dropped_info", Value::U64(by_level[2])),
            Field::new("dropped_warn", Value::U64(by_level[3])),
            Field::new("dropped_error", Value::U64(by_level[4])),
            Field::new("dropped_critical", Value::U64(by_level[5])),
        ];
        let shared = &self.shared;
        let write = |args: std::fmt::Arguments<'_>, sinks: &mut [WorkerSink]| {
            let record = LogRecord::new(Level::Warn, "kakashi", args, &DROPPED_LOCATION)
                .with_fields(&fields);
            for (index, target) in sinks.iter_mut().enumerate() {
                shared.sinks[index]
                    .formatter
                    .format(&record, &mut target.batch);
            }
        };
        write(
            format_args!("{new} records dropped: the log queue was full"),
            &mut self.sinks,
        );
    }

    fn answer_acks(&mut self) {
        for ack in self.acks.drain(..) {
            ack.send();
        }
    }

    /// Writes what the worker holds, closes the queue and writes what is left in it; later
    /// records go through the synchronous writers. Runs on shutdown and on drop.
    fn finish(&mut self) {
        if self.finished {
            return;
        }
        self.finished = true;
        for target in &mut self.sinks {
            if target.handed_off {
                // The writer has these bytes and finishes writing them.
                let lines = std::mem::take(&mut target.lines);
                self.shared
                    .counters
                    .written
                    .fetch_add(lines, Ordering::Relaxed);
                target.batch.clear();
                target.handed_off = false;
            }
        }
        self.report_drops();
        for (index, target) in self.sinks.iter_mut().enumerate() {
            if !target.batch.is_empty() {
                let lines = std::mem::take(&mut target.lines);
                self.shared.write_lines_sync(index, &target.batch, lines);
                target.batch.clear();
            }
        }
        let mut items = std::mem::take(&mut self.items);
        for msg in items.drain(..) {
            match msg {
                Msg::Line { sink, line } => {
                    self.shared
                        .counters
                        .received
                        .fetch_add(1, Ordering::Relaxed);
                    self.shared.write_lines_sync(sink as usize, &line, 1);
                }
                Msg::Flush(ack) | Msg::Shutdown(ack) => self.acks.push(ack),
            }
        }
        self.shared.close_and_drain();
        self.shared.flush_writers();
        self.answer_acks();
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.finish();
    }
}

/// True if `tokio::time` works on the current runtime (the time driver is enabled).
fn timer_available() -> bool {
    std::panic::catch_unwind(|| drop(tokio::time::sleep(Duration::ZERO))).is_ok()
}
