//! The async hot path allocates nothing per record, with every built-in enricher on: the line
//! is cut from a reclaimed per-thread chunk and goes into a preallocated ring. Counted by a
//! global allocator that tallies allocations made on the calling thread.
//!
//! A fresh line chunk taken when a starved worker falls behind is counted apart (see
//! `common/counting_alloc.rs`); every other allocation on the calling thread fails the test.

#[path = "common/counting_alloc.rs"]
mod counting_alloc;

use std::time::{Duration, Instant};

use counting_alloc::{allocations, chunks, CHUNK_BYTES};
use kakashi::{info, AsyncPipeline, Enricher, LogContext, PipelineConfig, Writer};

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
