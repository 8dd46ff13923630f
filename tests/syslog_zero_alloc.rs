//! The syslog writer keeps the caller's hot path free of allocations: the caller formats the
//! RFC 5424 line (fields and context as structured data) into its per-thread chunk and pushes
//! it into the ring; the writer's backlog and transport live on other threads. Counted by a
//! global allocator that tallies allocations made on the calling thread.
#![cfg(feature = "syslog")]

#[path = "common/counting_alloc.rs"]
mod counting_alloc;

use std::time::{Duration, Instant};

use counting_alloc::allocations;
use kakashi::syslog::{SyslogWriter, Transport};
use kakashi::{info, AsyncPipeline, LogContext, PipelineConfig, Writer};

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
