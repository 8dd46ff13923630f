//! Where every accepted line ends: the counters and the [`Stats`] snapshot.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::level::Level;

/// One writer's counters. A line is *accepted* when the pipeline takes it (a queued line when
/// its position is claimed); it then ends in exactly one of written, fallback, dropped or failed.
#[derive(Debug, Default)]
pub(crate) struct SinkCounters {
    /// Lines taken from the queue for this writer.
    pub(crate) dequeued: AtomicU64,
    /// Lines accepted without going through the queue (synchronous pipeline, overflow, after
    /// close, re-entrant records).
    pub(crate) direct: AtomicU64,
    pub(crate) written: AtomicU64,
    pub(crate) fallback: AtomicU64,
    pub(crate) failed: AtomicU64,
    pub(crate) dropped: [AtomicU64; 6],
    /// Of `direct`, lines a caller wrote itself because the queue was full.
    pub(crate) inline: AtomicU64,
    pub(crate) write_errors: AtomicU64,
}

impl SinkCounters {
    pub(crate) fn drop_line(&self, level: Level) {
        self.dropped[level.index()].fetch_add(1, Relaxed);
    }

    fn snapshot(&self) -> WriterStats {
        let load = |a: &AtomicU64| a.load(Relaxed);
        let dropped_by_level = [0, 1, 2, 3, 4, 5].map(|i| load(&self.dropped[i]));
        let dropped = dropped_by_level.iter().sum::<u64>();
        let written = load(&self.written);
        let fallback = load(&self.fallback);
        let failed = load(&self.failed);
        let accepted = load(&self.dequeued) + load(&self.direct) + dropped;
        WriterStats {
            accepted,
            written,
            written_via_fallback: fallback,
            dropped,
            dropped_by_level,
            failed,
            pending: accepted.saturating_sub(written + fallback + dropped + failed),
            written_inline: load(&self.inline),
            write_errors: load(&self.write_errors),
        }
    }
}

/// One writer's share of [`Stats`], in lines.
///
/// `accepted == written + written_via_fallback + dropped + failed + pending`, and `pending` is
/// 0 whenever the pipeline is quiet (flushed, nothing being logged).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct WriterStats {
    /// Lines the pipeline took for this writer (queued lines count once the worker takes them
    /// from the queue; until then they are in [`Stats::queued`]).
    pub accepted: u64,
    /// Lines the destination took.
    pub written: u64,
    /// Lines written to the fallback writer instead, because the destination failed (or has
    /// no synchronous side where one was needed).
    pub written_via_fallback: u64,
    /// Lines dropped: the queue was full under [`Overflow::Drop`](crate::Overflow::Drop), or a
    /// record was logged from too deep inside the pipeline (a `Display` impl that logs, again
    /// and again).
    pub dropped: u64,
    /// `dropped` per level, indexed by [`Level::index`].
    pub dropped_by_level: [u64; 6],
    /// Lines neither the destination nor the fallback writer took: lost, and reported through
    /// the error hook.
    pub failed: u64,
    /// Lines accepted and not yet in any of the buckets above.
    pub pending: u64,
    /// Of the accepted lines, those a caller wrote itself because the queue was full
    /// ([`Overflow::WriteInline`](crate::Overflow::WriteInline)); they are also in `written`,
    /// `written_via_fallback` or `failed`.
    pub written_inline: u64,
    /// Failed write calls (one failure can affect many lines).
    pub write_errors: u64,
}

/// Counters of a pipeline, in lines (a record sent to two writers is two lines), from
/// [`Pipeline::stats`](crate::Pipeline::stats) or handed back by a shutdown.
///
/// Every accepted line ends in exactly one bucket:
/// `accepted == written + written_via_fallback + dropped + failed + pending`, where `pending`
/// counts lines not finished yet (still queued, or being written). When the pipeline is quiet
/// (flushed, nobody logging) `pending` is 0. In the `Stats` a shutdown hands back, `pending`
/// lines are those it could not write before its deadline: lost if the process exits.
///
/// # Examples
///
/// ```
/// use kakashi::write::MemoryWriter;
/// use kakashi::{info, PipelineConfig, SyncPipeline, Writer};
///
/// let memory = MemoryWriter::new();
/// let config = PipelineConfig::builder().writer(Writer::memory(&memory)).build().unwrap();
/// let (pipeline, guard) = SyncPipeline::start(config).unwrap();
/// info!(pipeline.logger("app"), "hello");
/// let stats = guard.close();
/// assert_eq!(stats.accepted, 1);
/// assert_eq!(stats.written, 1);
/// assert!(stats.is_settled());
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Lines the pipeline took, queued or not.
    pub accepted: u64,
    /// Lines the destinations took.
    pub written: u64,
    /// Lines written to the fallback writer instead.
    pub written_via_fallback: u64,
    /// Lines dropped (see [`WriterStats::dropped`]).
    pub dropped: u64,
    /// `dropped` per level, indexed by [`Level::index`].
    pub dropped_by_level: [u64; 6],
    /// Lines no writer took (see [`WriterStats::failed`]).
    pub failed: u64,
    /// Lines accepted and not finished yet.
    pub pending: u64,
    /// Of `pending`, lines still in the queue (not yet taken by the worker).
    pub queued: u64,
    /// Lines callers wrote themselves because the queue was full.
    pub written_inline: u64,
    /// Failed write calls.
    pub write_errors: u64,
    /// The same figures per writer, in the order the writers were configured.
    pub writers: Vec<WriterStats>,
}

impl Stats {
    pub(crate) fn collect<'a>(sinks: impl Iterator<Item = &'a SinkCounters>, queued: u64) -> Stats {
        let writers: Vec<WriterStats> = sinks.map(SinkCounters::snapshot).collect();
        let mut stats = Stats {
            queued,
            ..Stats::default()
        };
        for w in &writers {
            stats.accepted += w.accepted;
            stats.written += w.written;
            stats.written_via_fallback += w.written_via_fallback;
            stats.dropped += w.dropped;
            stats.failed += w.failed;
            stats.pending += w.pending;
            stats.written_inline += w.written_inline;
            stats.write_errors += w.write_errors;
            for (total, n) in stats.dropped_by_level.iter_mut().zip(w.dropped_by_level) {
                *total += n;
            }
        }
        stats.accepted += queued;
        stats.pending += queued;
        stats.writers = writers;
        stats
    }

    /// True when every accepted line is in a final bucket:
    /// `accepted == written + written_via_fallback + dropped + failed`.
    pub fn is_settled(&self) -> bool {
        self.pending == 0
            && self.accepted
                == self.written + self.written_via_fallback + self.dropped + self.failed
    }
}
