//! Line building on the caller: thread-local chunks, and the thread's place in the pipeline
//! (how deep a record is nested, whether this thread holds the consumer role).

use std::cell::{Cell, RefCell};

use bytes::{Bytes, BytesMut};

use crate::format::Formatter;
use crate::record::LogRecord;

thread_local! {
    static LINE_BUFFER: RefCell<LineChunks> = RefCell::new(LineChunks::default());
    static DEPTH: Cell<u32> = const { Cell::new(0) };
    static CONSUMING: Cell<bool> = const { Cell::new(false) };
}

/// The lines of one thread share chunks of this size.
const CHUNK: usize = 64 * 1024;
/// Below this much room, the next line starts a fresh chunk (or reclaims the old one).
const CHUNK_LOW_WATER: usize = 2 * 1024;
/// A record logged while this many records of the same thread are being formatted or written
/// (a `Display` impl or a writer that logs, again and again) is dropped and counted, not
/// formatted: its own formatting would log again.
pub(crate) const MAX_DEPTH: u32 = 3;

/// How many chunks a thread rotates through.
const CHUNKS: usize = 4;

/// A thread's line chunks: lines are cut from the current one; when it runs low, the next one
/// in the rotation becomes current. By the time a chunk is used again, three chunks of lines
/// have been logged since its last line, so the consumer has normally written (and released)
/// all of them and `reserve` reclaims the chunk in place instead of allocating a new one; a
/// consumer that lags further than that costs one fresh chunk, never a lost line.
#[derive(Default)]
struct LineChunks {
    chunks: [BytesMut; CHUNKS],
    current: usize,
}

impl LineChunks {
    fn buffer(&mut self) -> &mut BytesMut {
        if self.chunks[self.current].capacity() < CHUNK_LOW_WATER {
            self.current = (self.current + 1) % CHUNKS;
            self.chunks[self.current].reserve(CHUNK);
        }
        &mut self.chunks[self.current]
    }
}

/// Formats `record` with `formatter` into the thread's chunk and returns the line.
///
/// In steady state this allocates nothing: the line is a slice of the thread's chunk, and
/// chunks are reclaimed once their lines are written. A formatter that logs (re-entrancy) gets
/// a fresh buffer instead of a double borrow.
pub(crate) fn format_line(formatter: &dyn Formatter, record: &LogRecord<'_>) -> Bytes {
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

/// Counts how deep the current thread is inside the pipeline's logging path.
pub(crate) struct DepthGuard;

impl DepthGuard {
    /// Enters one level; returns the guard and the new depth (1 for a record logged from
    /// outside the pipeline).
    pub(crate) fn enter() -> (DepthGuard, u32) {
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

/// Marks the current thread as the consumer-role holder while it lives: a record logged from
/// inside a writer or the error hook then never tries to take the role again (which would
/// deadlock).
pub(crate) struct ConsumingGuard {
    was: bool,
}

impl ConsumingGuard {
    pub(crate) fn enter() -> ConsumingGuard {
        let was = CONSUMING.try_with(|c| c.replace(true)).unwrap_or(false);
        ConsumingGuard { was }
    }
}

impl Drop for ConsumingGuard {
    fn drop(&mut self) {
        let was = self.was;
        let _ = CONSUMING.try_with(|c| c.set(was));
    }
}

/// True if this thread holds the consumer role right now (or its locals are gone, where
/// taking the role is not worth the risk either).
pub(crate) fn consuming() -> bool {
    CONSUMING.try_with(Cell::get).unwrap_or(true)
}
