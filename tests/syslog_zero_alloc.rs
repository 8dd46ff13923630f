//! The syslog writer keeps the caller's hot path free of allocations: the caller formats the
//! RFC 5424 line (fields and context as structured data) into its per-thread chunk and pushes
//! it into the ring; the writer's backlog and transport live on other threads. Counted by a
//! global allocator that tallies allocations made on the calling thread.
#![cfg(feature = "syslog")]
// A global allocator cannot be written without `unsafe`; the library itself forbids it.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::time::{Duration, Instant};

use kakashi::syslog::{SyslogWriter, Transport};
use kakashi::{info, AsyncPipeline, LogContext, PipelineConfig, Writer};

struct CountingAllocator;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: every method forwards its arguments unchanged to the system allocator, which upholds
// the `GlobalAlloc` contract; the thread-local counter is a `const`-initialised `Cell` whose
// access never allocates.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
        // SAFETY: the caller's `layout` contract is passed on to `System`.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by `System` with `layout` (we forward every allocation).
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
        // SAFETY: as for `dealloc`; `new_size` is the caller's, passed on unchanged.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

fn allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

#[test]
fn the_caller_allocates_nothing_per_record_with_the_syslog_writer() {
    // A real UDP socket that takes the datagrams (and never reads them: the kernel drops what
    // does not fit, which the writer cannot see — UDP).
    let sink = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let syslog = SyslogWriter::builder(Transport::udp(sink.local_addr().unwrap().to_string()))
        .app_name("zero-alloc")
        .build()
        .unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let config = PipelineConfig::builder()
        .writer(Writer::syslog(&syslog))
        .build()
        .unwrap();
    let (pipeline, guard) = {
        let _enter = rt.enter();
        AsyncPipeline::start(config).unwrap()
    };
    let log = pipeline.logger("app");
    let _ctx = LogContext::new().with_request_id("req-1").enter();
    let log_batch = |from: u64, count: u64| {
        for seq in from..from + count {
            info!(log, "user {} did {}", "ann", seq; seq = seq, ok = true, path = "/a]b\"c");
        }
    };
    log_batch(0, 20_000);
    assert!(pipeline.flush_blocking(Duration::from_secs(10)));
    let steady = 20_000;
    let before = allocations();
    let start = Instant::now();
    for i in 0..steady {
        while start.elapsed() < Duration::from_micros(20 * i) {
            std::hint::spin_loop();
        }
        log_batch(20_000 + i, 1);
    }
    let steady_allocations = allocations() - before;
    assert!(pipeline.flush_blocking(Duration::from_secs(10)));
    let stats = guard.close();
    assert_eq!(stats.written, 40_000, "{stats:?}");
    let syslog_stats = syslog.close();
    assert_eq!(syslog_stats.delivered, 40_000, "{syslog_stats:?}");
    assert_eq!(steady_allocations, 0, "for {steady} paced records");
}
