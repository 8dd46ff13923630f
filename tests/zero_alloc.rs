//! The async hot path allocates nothing per record, with every built-in enricher on: the line
//! is cut from a reclaimed per-thread chunk and goes into a preallocated ring. Counted by a
//! global allocator that tallies allocations made on the calling thread.
//!
//! A thread's line chunks (64 KiB each, four in rotation) are reclaimed once the worker has
//! taken their lines. When the machine is so loaded that the worker falls more than three
//! chunks behind, the thread takes a fresh chunk rather than wait: that is at most one
//! allocation per chunk of lines, never one per record, and it is counted apart (`CHUNKS`);
//! every other allocation on the calling thread fails the test.

// A global allocator cannot be written without `unsafe`; the library itself forbids it.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::time::{Duration, Instant};

use kakashi::{info, AsyncPipeline, Enricher, LogContext, PipelineConfig, Writer};

struct CountingAllocator;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
    static CHUNKS: Cell<u64> = const { Cell::new(0) };
}

/// The size of a thread's line chunk (`pipeline::line::CHUNK`).
const CHUNK_BYTES: usize = 64 * 1024;

fn count(size: usize) {
    let counter = if size >= CHUNK_BYTES {
        &CHUNKS
    } else {
        &ALLOCATIONS
    };
    let _ = counter.try_with(|c| c.set(c.get() + 1));
}

// SAFETY: every method forwards its arguments unchanged to the system allocator, which upholds
// the `GlobalAlloc` contract; the thread-local counter is a `const`-initialised `Cell` whose
// access never allocates.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        // SAFETY: the caller's `layout` contract is passed on to `System`.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by `System` with `layout` (we forward every allocation).
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(new_size);
        // SAFETY: as for `dealloc`; `new_size` is the caller's, passed on unchanged.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

/// Allocations on this thread other than line chunks.
fn allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

/// Line chunks allocated on this thread.
fn chunks() -> u64 {
    CHUNKS.with(Cell::get)
}

#[test]
fn the_caller_allocates_nothing_per_record_with_every_enricher_on() {
    let dir = std::env::temp_dir().join(format!("kakashi-zero-alloc-{}", std::process::id()));
    let path = dir.join("app.log");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let config = PipelineConfig::builder()
        .writer(Writer::file(&path))
        .enricher(Enricher::service_name("billing"))
        .enricher(Enricher::hostname())
        .enricher(Enricher::pid())
        .enricher(Enricher::thread())
        .build()
        .unwrap();
    let (pipeline, guard) = {
        let _enter = rt.enter();
        AsyncPipeline::start(config).unwrap()
    };
    let log = pipeline.logger("app");
    let _ctx = LogContext::new().with_request_id("req-1").enter();
    let user = "ann";
    let log_batch = |from: u64, count: u64| {
        for seq in from..from + count {
            info!(log, "user {} did {}", user, seq; seq = seq, ok = true, ratio = 0.5, path = "/a/b", trace = %format_args!("{seq:016x}"));
        }
    };
    // Warm up: thread-locals, the thread's chunks, the timestamp cache.
    log_batch(0, 20_000);
    assert!(pipeline.flush_blocking(Duration::from_secs(5)));

    // Steady state: 20,000 records at about 50,000 a second.
    let steady = 20_000;
    let chunks_before = chunks();
    let before = allocations();
    let start = Instant::now();
    for i in 0..steady {
        while start.elapsed() < Duration::from_micros(20 * i) {
            std::hint::spin_loop();
        }
        log_batch(20_000 + i, 1);
    }
    let steady_allocations = allocations() - before;
    assert!(pipeline.flush_blocking(Duration::from_secs(5)));

    // Bursts as fast as the thread can, each less than a chunk of lines (about 250 here), then
    // a pause: the worker is behind during each burst and nothing allocates.
    let rounds = 60;
    let per_round = 150;
    let mut burst_allocations = 0;
    for round in 0..rounds {
        let before = allocations();
        log_batch(40_000 + round * per_round, per_round);
        burst_allocations += allocations() - before;
        // Not counted: the flush's helper thread.
        assert!(pipeline.flush_blocking(Duration::from_secs(5)));
    }
    let burst = rounds * per_round;
    let fresh_chunks = chunks() - chunks_before;
    let stats = guard.close();
    let text = std::fs::read_to_string(&path).unwrap();
    let measured_bytes: usize = text.lines().skip(20_000).map(|l| l.len() + 1).sum();
    let lines = text.lines().count() as u64;
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(lines, 40_000 + burst);
    assert!(stats.is_settled(), "{stats:?}");
    assert_eq!(stats.written, 40_000 + burst);
    println!(
        "calling thread: {steady_allocations} allocations for {steady} paced records, \
         {burst_allocations} for {burst} records in bursts, {fresh_chunks} fresh line chunks"
    );
    assert_eq!(steady_allocations, 0, "for {steady} paced records");
    assert_eq!(burst_allocations, 0, "for {burst} records in bursts");
    // At most one fresh chunk per chunk's worth of lines (none at all unless the worker was
    // starved of CPU).
    let chunk_budget = (measured_bytes / CHUNK_BYTES) as u64 + 1;
    assert!(
        fresh_chunks <= chunk_budget,
        "{fresh_chunks} fresh chunks for {measured_bytes} bytes of lines"
    );
}
