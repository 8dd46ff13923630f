//! A writer whose flush waits (a syslog writer waiting for acknowledgements) does not hold up
//! the runtime's thread during an async flush or at the worker's end. The slow flush is fault
//! injection: a `SyncWrite` that sleeps in `flush`.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use kakashi::write::{MemoryWriter, SyncWrite};
use kakashi::{info, AsyncPipeline, PipelineConfig, Writer};

/// Fault injection: every flush sleeps.
#[derive(Debug, Default)]
struct SlowFlush {
    lines: MemoryWriter,
    flushes: AtomicU64,
}

impl SyncWrite for SlowFlush {
    fn write_lines(&self, lines: &[u8]) -> io::Result<()> {
        self.lines.write_lines(lines)
    }

    fn flush(&self) -> io::Result<()> {
        std::thread::sleep(Duration::from_millis(300));
        self.flushes.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

/// Counts ticks of a task on the same `current_thread` runtime while `f` runs.
async fn ticks_during(f: impl std::future::Future<Output = ()>) -> u64 {
    let ticks = Arc::new(AtomicU64::new(0));
    let counter = Arc::clone(&ticks);
    let ticker = tokio::spawn(async move {
        loop {
            counter.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    });
    tokio::task::yield_now().await;
    let before = ticks.load(Ordering::Relaxed);
    f.await;
    let after = ticks.load(Ordering::Relaxed);
    ticker.abort();
    after - before
}

#[tokio::test(flavor = "current_thread")]
async fn slow_flush_fault_injection_async_flush_leaves_the_runtime_running() {
    let writer = Arc::new(SlowFlush::default());
    let config = PipelineConfig::builder()
        .writer(Writer::sync(writer.clone()))
        .build()
        .unwrap();
    let (pipeline, guard) = AsyncPipeline::start(config).unwrap();
    info!(pipeline.logger("t"), "one");
    let ticks = ticks_during(pipeline.flush()).await;
    assert!(
        ticks >= 10,
        "the runtime was blocked: {ticks} ticks in a 300 ms flush"
    );
    assert!(writer.flushes.load(Ordering::Relaxed) >= 1);
    assert_eq!(writer.lines.lines().len(), 1);
    let stats = guard.shutdown().await;
    assert_eq!(stats.written, 1);
}

#[tokio::test(flavor = "current_thread")]
async fn slow_flush_fault_injection_worker_end_leaves_the_runtime_running() {
    let writer = Arc::new(SlowFlush::default());
    let config = PipelineConfig::builder()
        .writer(Writer::sync(writer.clone()))
        .build()
        .unwrap();
    let (pipeline, guard, worker) = AsyncPipeline::with_worker(config).unwrap();
    let worker = tokio::spawn(worker.run());
    info!(pipeline.logger("t"), "one");
    let ticks = ticks_during(async {
        let _ = guard.shutdown().await;
        let _ = worker.await;
    })
    .await;
    // Shutdown flushes once on its helper thread, the worker's end once more: 600 ms.
    assert!(ticks >= 20, "the runtime was blocked: {ticks} ticks");
    assert_eq!(writer.lines.lines().len(), 1);
}

/// Fault injection: a flush that takes far longer than the pipeline's teardown deadline.
#[derive(Debug, Default)]
struct StuckFlush(MemoryWriter);

impl SyncWrite for StuckFlush {
    fn write_lines(&self, lines: &[u8]) -> io::Result<()> {
        self.0.write_lines(lines)
    }

    fn flush(&self) -> io::Result<()> {
        std::thread::sleep(Duration::from_secs(3));
        Ok(())
    }
}

fn stuck_config() -> PipelineConfig {
    PipelineConfig::builder()
        .writer(Writer::sync(Arc::new(StuckFlush::default())))
        .drop_timeout(Duration::from_millis(300))
        .build()
        .unwrap()
}

#[test]
fn stuck_flush_fault_injection_sync_teardown_keeps_its_deadline() {
    let (pipeline, guard) = kakashi::SyncPipeline::start(stuck_config()).unwrap();
    info!(pipeline.logger("t"), "one");
    let started = std::time::Instant::now();
    assert!(pipeline.flush_blocking(Duration::from_millis(300)));
    let stats = guard.close();
    let took = started.elapsed();
    assert!(took < Duration::from_millis(1500), "took {took:?}");
    assert_eq!(stats.written, 1);
}

#[test]
fn stuck_flush_fault_injection_async_teardown_keeps_its_deadline() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (pipeline, guard) = runtime
        .block_on(async { AsyncPipeline::start(stuck_config()) })
        .unwrap();
    info!(pipeline.logger("t"), "one");
    let started = std::time::Instant::now();
    assert!(pipeline.flush_blocking(Duration::from_millis(300)));
    drop(guard);
    let took = started.elapsed();
    assert!(took < Duration::from_millis(1500), "took {took:?}");
    assert_eq!(pipeline.stats().written, 1);
}
