//! The consumer role: taking lines from the queue and writing them, with exact accounting.
//!
//! One party at a time holds the role — the worker task, a caller that found the queue full, a
//! flush or a teardown — by locking [`Consumer`]. Everything a holder has taken from the queue
//! and not finished lives in the `Consumer` itself (per writer: the bytes, where each line ends,
//! and how far into the first line the destination got), never in a holder's locals across an
//! `await`: whoever takes the role next carries on exactly where the last holder stopped.
//!
//! Writes resume from the byte offset: bytes a destination accepted are never written to it
//! again. When a write fails, the rest of a line cut by a short write is tried once more; then
//! the unfinished lines go whole to the fallback writer and are counted there, and the rest of
//! the cut line is owed to the destination: it is written there first when the destination
//! takes writes again, so the destination never holds a torn line followed by other lines (a
//! destination that never recovers ends with the torn line).

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::sync::atomic::Ordering::Relaxed;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes, BytesMut};

use super::queue::{Entry, LineQueue, Pop};
use super::{Shared, Sink};
use crate::field::{Field, Value};
use crate::level::Level;
use crate::record::{Location, LogRecord};
use crate::write::BoxAsyncWrite;

/// Where the in-band "records dropped" line says it comes from.
static DROPPED_LOCATION: Location = Location::new("kakashi::pipeline", file!(), line!());

/// How far a writer's unfinished lines may grow while its async destination does not take
/// them (a stalled peer), in batches; lines beyond go to the fallback writer.
const BACKLOG_BATCHES: usize = 16;

/// The state of the consumer role; see the module docs.
pub(crate) struct Consumer {
    batches: Vec<Batch>,
    /// Each writer's async side, if it has one (sockets and other `AsyncWrite`s).
    outs: Vec<Option<BoxAsyncWrite>>,
    batch_bytes: usize,
    /// Dropped lines already reported in-band.
    drops_reported: u64,
}

/// A writer's unfinished lines.
#[derive(Default)]
struct Batch {
    /// Whole lines; the first one may be partly written (`front_written`).
    buf: BytesMut,
    marks: VecDeque<Mark>,
    /// Bytes of the first line the destination has already taken.
    front_written: usize,
    /// An async destination took bytes since its last flush: the position of the first line
    /// it took since then. The barrier waits for the flush too (a buffered `AsyncWrite` says
    /// `Ready(Ok)` before the bytes are out).
    flush_owed: Option<u64>,
    /// The rest of a line the destination cut and then failed on. The line itself went whole
    /// to the fallback (and is counted there); these bytes go to the destination before any
    /// later line, so that it never holds a torn line followed by others.
    owed_tail: BytesMut,
}

/// One line in a batch.
#[derive(Clone, Copy)]
struct Mark {
    len: usize,
    /// The queue position the line came from (a line that did not come through the queue gets
    /// the consumer's position when it was added): the flush barrier waits for it.
    position: u64,
    /// False for the in-band drop report, which is not an accepted line.
    counted: bool,
}

/// What a consumer run ended on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Step {
    /// The queue is empty and every line taken is finished; `taken` lines were taken.
    Idle { taken: u64 },
    /// The consumer's position reached where the run was told to stop (more may be queued).
    More,
    /// The next position is claimed by a producer that has not stored its line yet.
    InFlight,
    /// An async destination is not ready; the context's waker is registered with it.
    Pending,
}

/// How a run treats async destinations that are not ready.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Stalled {
    /// Keep their lines for later (the worker, a flush).
    Wait,
    /// Send their lines to the writer's synchronous side or the fallback (a closing pipeline
    /// whose deadline is near, or whose runtime is gone).
    Divert,
}

impl Consumer {
    pub(crate) fn new(outs: Vec<Option<BoxAsyncWrite>>, batch_bytes: usize) -> Self {
        Consumer {
            batches: outs.iter().map(|_| Batch::default()).collect(),
            outs,
            batch_bytes,
            drops_reported: 0,
        }
    }

    /// Lets go of the async destinations once the pipeline is closed and drained: each gets a
    /// `poll_shutdown` (a peer sees the end of the stream) and is dropped. Lines logged later
    /// go to the writers' synchronous sides.
    pub(crate) fn release_async_writers(&mut self, cx: &mut Context<'_>) {
        for (out, batch) in self.outs.iter_mut().zip(&self.batches) {
            if batch.buf.is_empty() {
                if let Some(mut w) = out.take() {
                    let _ = Pin::new(&mut *w).poll_shutdown(cx);
                }
            }
        }
    }

    /// True when no taken line is unfinished.
    pub(crate) fn is_clear(&self) -> bool {
        self.batches
            .iter()
            .all(|b| b.buf.is_empty() && b.flush_owed.is_none())
    }

    /// Takes queued lines and writes them until the queue is empty, the consumer's position
    /// reaches `stop_at`, or an async destination is not ready.
    pub(crate) fn run(
        &mut self,
        shared: &Shared,
        queue: &LineQueue,
        cx: &mut Context<'_>,
        stalled: Stalled,
        stop_at: u64,
    ) -> Step {
        let mut taken_total = 0;
        loop {
            let (taken, pop) = self.take(shared, queue, stop_at);
            taken_total += taken;
            self.report_drops(shared, queue);
            let clear = self.write_all(shared, cx, stalled);
            self.publish(shared, queue);
            if !clear {
                return Step::Pending;
            }
            match pop {
                TakeEnd::Empty => return Step::Idle { taken: taken_total },
                TakeEnd::InFlight => return Step::InFlight,
                TakeEnd::StopReached => return Step::More,
                TakeEnd::BatchFull => {}
            }
        }
    }

    /// Adds a line that did not come through the queue (a caller writing itself), after
    /// everything already taken, and counts it as accepted.
    pub(crate) fn push_direct(&mut self, sink: &Sink, index: usize, position: u64, line: &[u8]) {
        sink.counters.direct.fetch_add(1, Relaxed);
        self.batches[index].push(line, position, true);
    }

    /// Takes lines from the queue into the batches until the queue is empty or a batch is
    /// full.
    fn take(&mut self, shared: &Shared, queue: &LineQueue, stop_at: u64) -> (u64, TakeEnd) {
        let mut taken = 0;
        let end = loop {
            if self.batches.iter().any(|b| b.buf.len() >= self.batch_bytes) {
                break TakeEnd::BatchFull;
            }
            let position = queue.head();
            if position >= stop_at {
                break TakeEnd::StopReached;
            }
            match queue.pop() {
                Pop::Entry(Entry { sink, line }) => {
                    taken += 1;
                    self.absorb(shared, sink as usize, position, line);
                }
                Pop::Empty => break TakeEnd::Empty,
                Pop::InFlight => break TakeEnd::InFlight,
            }
        };
        (taken, end)
    }

    fn absorb(&mut self, shared: &Shared, index: usize, position: u64, line: Bytes) {
        let Some(sink) = shared.sinks.get(index) else {
            return;
        };
        sink.counters.dequeued.fetch_add(1, Relaxed);
        let batch = &mut self.batches[index];
        if self.outs[index].is_some() && batch.buf.len() >= self.batch_bytes * BACKLOG_BATCHES {
            // The async destination has not taken a backlog's worth: keep memory bounded.
            shared.write_fallback(sink, &line, 1);
            return;
        }
        batch.push(&line, position, true);
    }

    /// Writes every batch. Returns true when all are finished.
    fn write_all(&mut self, shared: &Shared, cx: &mut Context<'_>, stalled: Stalled) -> bool {
        // An `AsyncWrite` may need a runtime context to be polled (`tokio::fs::File` does);
        // a holder on no runtime leaves its lines to the worker (or diverts them when closing).
        let can_poll =
            self.outs.iter().all(Option::is_none) || tokio::runtime::Handle::try_current().is_ok();
        let mut clear = true;
        for index in 0..self.batches.len() {
            clear &= self.write_batch(shared, index, cx, stalled, can_poll);
        }
        clear
    }

    /// Writes one writer's batch as far as its destination takes it. True when finished.
    fn write_batch(
        &mut self,
        shared: &Shared,
        index: usize,
        cx: &mut Context<'_>,
        stalled: Stalled,
        can_poll: bool,
    ) -> bool {
        let sink = &shared.sinks[index];
        let batch = &mut self.batches[index];
        let out = &mut self.outs[index];
        if out.is_some() && !can_poll && (!batch.buf.is_empty() || batch.flush_owed.is_some()) {
            return match stalled {
                Stalled::Wait => false,
                Stalled::Divert => {
                    batch.divert(shared, sink, true);
                    batch.flush_owed = None;
                    true
                }
            };
        }
        let mut retried_cut = false;
        if let Some(done) = pay_owed_tail(shared, sink, batch, out, cx, stalled) {
            return done;
        }
        loop {
            if batch.buf.is_empty() {
                return match out {
                    Some(w) if batch.flush_owed.is_some() => {
                        match guarded_poll(|| Pin::new(&mut **w).poll_flush(cx)) {
                            Poll::Pending if stalled == Stalled::Wait => false,
                            // The lines are the destination's already; a flush error shows in
                            // the next write.
                            _ => {
                                batch.flush_owed = None;
                                true
                            }
                        }
                    }
                    _ => true,
                };
            }
            let result = match out {
                Some(w) => guarded_poll(|| Pin::new(&mut **w).poll_write(cx, batch.unwritten())),
                None if sink.sync_is_fallback => {
                    // No synchronous side: these lines were added by a caller; the fallback
                    // takes them.
                    batch.divert(shared, sink, false);
                    return true;
                }
                None => Poll::Ready(guarded(|| sink.sync.write(batch.unwritten()))),
            };
            match result {
                Poll::Ready(Ok(0)) => {
                    let error = io::Error::new(io::ErrorKind::WriteZero, "wrote 0 bytes");
                    batch.fail(shared, sink, error, &mut retried_cut);
                }
                Poll::Ready(Ok(n)) => {
                    if out.is_some() && batch.flush_owed.is_none() {
                        batch.flush_owed = batch.marks.front().map(|m| m.position);
                    }
                    let written = batch.accept(n);
                    if batch.front_written == 0 {
                        retried_cut = false;
                    }
                    sink.counters.written.fetch_add(written, Relaxed);
                    if sink.failing.load(Relaxed) {
                        sink.failing.store(false, Relaxed);
                    }
                }
                Poll::Ready(Err(e)) if e.kind() == io::ErrorKind::Interrupted => {}
                Poll::Ready(Err(error)) => {
                    if batch.fail(shared, sink, error, &mut retried_cut) {
                        // The cut line's tail may go through at once (a passing error).
                        let _ = pay_owed_tail(shared, sink, batch, out, cx, stalled);
                        return true;
                    }
                }
                Poll::Pending => match stalled {
                    Stalled::Wait => return false,
                    Stalled::Divert => {
                        batch.divert(shared, sink, true);
                        return true;
                    }
                },
            }
        }
    }

    /// With [`Overflow::Drop`](super::Overflow::Drop): adds a `"N records dropped"` line to
    /// each batch when lines were dropped since the last report.
    fn report_drops(&mut self, shared: &Shared, queue: &LineQueue) {
        let mut by_level = [0u64; 6];
        for sink in &shared.sinks {
            for (total, d) in by_level.iter_mut().zip(&sink.counters.dropped) {
                *total += d.load(Relaxed);
            }
        }
        let total: u64 = by_level.iter().sum();
        if total <= self.drops_reported {
            return;
        }
        let new = total - self.drops_reported;
        self.drops_reported = total;
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
        let position = queue.head();
        let write = |args: std::fmt::Arguments<'_>, batches: &mut [Batch]| {
            let record = LogRecord::new(Level::Warn, "kakashi", args, &DROPPED_LOCATION)
                .with_fields(&fields);
            for (sink, batch) in shared.sinks.iter().zip(batches) {
                let mut line = BytesMut::new();
                sink.formatter.format(&record, &mut line);
                batch.push(&line, position, false);
            }
        };
        write(
            format_args!("{new} records dropped: the log queue was full"),
            &mut self.batches,
        );
    }

    /// Publishes the flush barrier: every position below the first unfinished (or unflushed)
    /// line's is done.
    fn publish(&self, shared: &Shared, queue: &LineQueue) {
        let first_unfinished = self
            .batches
            .iter()
            .flat_map(|b| [b.marks.front().map(|m| m.position), b.flush_owed])
            .flatten()
            .min()
            .unwrap_or_else(|| queue.head());
        if first_unfinished > queue.completed() {
            queue.set_completed(first_unfinished);
            shared.progress_made();
        }
    }
}

/// Writes a batch's owed tail (see [`Batch::owed_tail`]) before anything else, with one retry.
/// `None` when it is paid (the batch may be written); else what `write_batch` returns.
fn pay_owed_tail(
    shared: &Shared,
    sink: &Sink,
    batch: &mut Batch,
    out: &mut Option<BoxAsyncWrite>,
    cx: &mut Context<'_>,
    stalled: Stalled,
) -> Option<bool> {
    let mut failures = 0;
    while !batch.owed_tail.is_empty() {
        let result = match out {
            Some(w) => guarded_poll(|| Pin::new(&mut **w).poll_write(cx, &batch.owed_tail)),
            None if sink.sync_is_fallback => Poll::Ready(Ok(batch.owed_tail.len())),
            None => Poll::Ready(guarded(|| sink.sync.write(&batch.owed_tail))),
        };
        match result {
            Poll::Ready(Ok(n)) if n > 0 => batch.owed_tail.advance(n),
            Poll::Ready(Err(e)) if e.kind() == io::ErrorKind::Interrupted => {}
            Poll::Pending if stalled == Stalled::Wait => return Some(false),
            Poll::Ready(_) if failures == 0 => failures += 1,
            Poll::Ready(_) | Poll::Pending => {
                // Still broken: this round's lines go to the fallback.
                sink.counters.write_errors.fetch_add(1, Relaxed);
                batch.divert(shared, sink, false);
                return Some(true);
            }
        }
    }
    None
}

/// Calls a writer, turning a panic into an error: a writer's bug must not take the logging
/// caller (or the consumer role's state) down with it.
fn guarded<T>(write: impl FnOnce() -> io::Result<T>) -> io::Result<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(write))
        .unwrap_or_else(|_| Err(io::Error::other("the writer panicked")))
}

/// [`guarded`] for a poll.
fn guarded_poll<T>(poll: impl FnOnce() -> Poll<io::Result<T>>) -> Poll<io::Result<T>> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(poll))
        .unwrap_or_else(|_| Poll::Ready(Err(io::Error::other("the writer panicked"))))
}

enum TakeEnd {
    Empty,
    InFlight,
    BatchFull,
    StopReached,
}

impl Batch {
    fn push(&mut self, line: &[u8], position: u64, counted: bool) {
        if line.is_empty() {
            return;
        }
        self.buf.extend_from_slice(line);
        let mut len = line.len();
        if line.last() != Some(&b'\n') {
            // A custom formatter that forgot the newline: a line is a line.
            self.buf.extend_from_slice(b"\n");
            len += 1;
        }
        self.marks.push_back(Mark {
            len,
            position,
            counted,
        });
    }

    /// What the destination has not taken yet.
    fn unwritten(&self) -> &[u8] {
        &self.buf[self.front_written..]
    }

    /// The destination took `n` more bytes: finishes the lines they complete. Returns how many
    /// counted lines were finished.
    fn accept(&mut self, n: usize) -> u64 {
        let mut done = self.front_written + n;
        let mut lines = 0;
        let mut consumed = 0;
        while let Some(mark) = self.marks.front() {
            if done < mark.len {
                break;
            }
            done -= mark.len;
            consumed += mark.len;
            lines += u64::from(mark.counted);
            self.marks.pop_front();
        }
        self.buf.advance(consumed);
        self.front_written = done;
        if self.marks.is_empty() {
            self.buf.clear();
            self.front_written = 0;
        }
        lines
    }

    /// Handles a failed write. The first time, a line cut by an earlier short write gets one
    /// more try (returns false: the caller writes again); then every unfinished line goes to
    /// the fallback writer (returns true).
    fn fail(
        &mut self,
        shared: &Shared,
        sink: &Sink,
        error: io::Error,
        retried_cut: &mut bool,
    ) -> bool {
        let lines = self.marks.iter().filter(|m| m.counted).count() as u64;
        sink.report_failure(&shared.error_hook, error, lines);
        if self.front_written > 0 && !*retried_cut {
            *retried_cut = true;
            return false;
        }
        self.divert(shared, sink, false);
        true
    }

    /// Sends every unfinished line elsewhere: to the writer's synchronous side when
    /// `to_sync_side` and it has one (a closing pipeline whose async destination is stalled),
    /// else to the fallback writer. A line the destination has begun goes whole to the
    /// fallback, and the rest of it is owed to the destination (see `owed_tail`).
    fn divert(&mut self, shared: &Shared, sink: &Sink, to_sync_side: bool) {
        if self.marks.is_empty() {
            return;
        }
        if self.front_written > 0 {
            let Some(front) = self.marks.pop_front() else {
                return;
            };
            let line = self.buf.split_to(front.len);
            self.owed_tail
                .extend_from_slice(&line[self.front_written..]);
            if front.counted {
                shared.write_fallback(sink, &line, 1);
            }
            self.front_written = 0;
        }
        let counted = self.marks.iter().filter(|m| m.counted).count() as u64;
        if counted > 0 {
            if to_sync_side && !sink.sync_is_fallback {
                shared.write_sync_side(sink, &self.buf, counted);
            } else {
                shared.write_fallback(sink, &self.buf, counted);
            }
        }
        self.buf.clear();
        self.marks.clear();
        self.flush_owed = None;
    }
}

impl std::fmt::Debug for Consumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Consumer")
            .field("writers", &self.batches.len())
            .field("clear", &self.is_clear())
            .finish_non_exhaustive()
    }
}
