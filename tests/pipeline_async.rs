//! The async pipeline: no-loss shutdown, runtime teardown, fallbacks, overflow policies and
//! worker failures. Every test reads the bytes written.

mod common;

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use common::TempDir;
use kakashi::format::Json;
use kakashi::write::MemoryWriter;
use kakashi::{info, warn, AsyncPipeline, Overflow, PipelineConfig, PipelineError, Writer};
use tokio::io::{AsyncReadExt, AsyncWrite};

fn file_config(path: &std::path::Path) -> kakashi::PipelineConfigBuilder {
    PipelineConfig::builder()
        .formatter(Json::new())
        .writer(Writer::file(path))
}

/// Parses every line as JSON and returns the `seq` field of each (panics on a bad line).
fn seqs(path: &std::path::Path) -> Vec<u64> {
    common::read_lines(path)
        .iter()
        .map(|l| {
            let v: serde_json::Value =
                serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:?}"));
            v["seq"].as_u64().unwrap()
        })
        .collect()
}

#[tokio::main]
async fn tokio_main_that_logs_and_returns(path: std::path::PathBuf, records: u64) {
    let config = file_config(&path).build().unwrap();
    let (pipeline, _guard) = AsyncPipeline::start(config).unwrap();
    assert!(pipeline.is_async());
    let log = pipeline.logger("app");
    for seq in 0..records {
        info!(log, "record"; seq = seq);
    }
    // Returning drops the guard: no explicit flush.
}

#[test]
fn tokio_main_returning_loses_nothing() {
    let dir = TempDir::new("tokio-main");
    let path = dir.file("app.log");
    tokio_main_that_logs_and_returns(path.clone(), 100_000);
    let mut seen = seqs(&path);
    assert_eq!(seen.len(), 100_000);
    seen.sort_unstable();
    assert!(seen.iter().enumerate().all(|(i, &s)| s == i as u64));
}

#[test]
fn runtime_dropped_with_the_guard_leaked_loses_nothing() {
    let dir = TempDir::new("leaked-guard");
    let path = dir.file("app.log");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let pipeline = rt.block_on(async {
        let (pipeline, guard) = AsyncPipeline::start(file_config(&path).build().unwrap()).unwrap();
        std::mem::forget(guard);
        let log = pipeline.logger("app");
        for seq in 0..50_000u64 {
            info!(log, "record"; seq = seq);
        }
        pipeline
    });
    drop(rt); // the worker task is dropped: its Drop drains the queue
    assert!(!pipeline.is_async());
    info!(pipeline.logger("app"), "after the runtime"; seq = 50_000u64);
    let mut seen = seqs(&path);
    let stats = pipeline.stats();
    seen.sort_unstable();
    assert_eq!(seen, (0..=50_000).collect::<Vec<u64>>(), "{stats:?}");
    assert_eq!(stats.accepted, 50_001);
    assert_eq!(stats.written, 50_001);
}

#[test]
fn runtime_dropped_while_tasks_log_keeps_every_returned_record_once() {
    let dir = TempDir::new("drop-runtime");
    let path = dir.file("app.log");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let returned: Arc<Vec<AtomicU64>> = Arc::new((0..8).map(|_| AtomicU64::new(0)).collect());
    let (pipeline, guard) = {
        let _enter = rt.enter();
        AsyncPipeline::start(file_config(&path).queue_capacity(4096).build().unwrap()).unwrap()
    };
    for task in 0..8u64 {
        let log = pipeline.logger("task");
        let returned = Arc::clone(&returned);
        rt.spawn(async move {
            for i in 1..u64::MAX {
                info!(log, "record"; task = task, seq = task * 1_000_000_000 + i);
                // Everything up to `i` has returned.
                returned[task as usize].store(i, Ordering::SeqCst);
                if i % 16 == 0 {
                    tokio::task::yield_now().await;
                }
            }
        });
    }
    std::thread::sleep(Duration::from_millis(300));
    drop(rt);
    drop(guard);
    let mut seen = seqs(&path);
    seen.sort_unstable();
    let before = seen.len();
    seen.dedup();
    assert_eq!(before, seen.len(), "a record was written twice");
    let mut total = 0;
    for task in 0..8u64 {
        let last = returned[task as usize].load(Ordering::SeqCst);
        assert!(last > 0, "task {task} never logged");
        total += last;
        for i in 1..=last {
            let seq = task * 1_000_000_000 + i;
            assert!(
                seen.binary_search(&seq).is_ok(),
                "task {task} record {i} of {last} lost"
            );
        }
    }
    // At most one call per task was in flight when the runtime stopped.
    assert!(seen.len() as u64 <= total + 8);
}

#[test]
fn plain_main_without_a_runtime_writes_every_line_synchronously() {
    let dir = TempDir::new("no-runtime");
    let path = dir.file("app.log");
    let (pipeline, guard) = AsyncPipeline::start(file_config(&path).build().unwrap()).unwrap();
    assert!(!pipeline.is_async());
    let log = pipeline.logger("app");
    for seq in 0..10_000u64 {
        info!(log, "record"; seq = seq);
    }
    // Synchronous: on disk before the guard goes.
    assert_eq!(seqs(&path).len(), 10_000);
    drop(guard);
    assert_eq!(pipeline.stats().written, 10_000);
}

#[test]
fn a_full_queue_on_a_current_thread_runtime_neither_deadlocks_nor_loses() {
    let dir = TempDir::new("current-thread");
    let path = dir.file("app.log");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let stats = rt.block_on(async {
        let config = file_config(&path).queue_capacity(16).build().unwrap();
        let (pipeline, guard) = AsyncPipeline::start(config).unwrap();
        let log = pipeline.logger("app");
        // Never yields: the worker cannot run, the queue fills, callers write inline.
        for seq in 0..20_000u64 {
            info!(log, "record"; seq = seq);
        }
        assert!(guard.shutdown().await.is_settled());
        pipeline.stats()
    });
    let seen = seqs(&path);
    // Every line, once, and in order: a caller that finds the queue full writes the lines
    // queued before its own first (one batch), then its own.
    assert_eq!(seen, (0..20_000).collect::<Vec<u64>>());
    // Each full queue (16 lines) was emptied by the caller that found it full.
    assert!(stats.written_inline >= 20_000 / 17 - 1, "{stats:?}");
    assert_eq!(stats.written, 20_000);
}

#[test]
fn drop_policy_under_a_stalled_writer_counts_and_reports_in_band() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        // A real in-memory pipe with a 4 KiB buffer that nobody reads yet: the worker stalls.
        let (writer_end, mut reader_end) = tokio::io::duplex(4096);
        let fallback = MemoryWriter::new();
        let config = PipelineConfig::builder()
            .formatter(Json::new())
            .writer(Writer::async_writer("pipe", writer_end))
            .fallback(Arc::new(fallback.clone()))
            .queue_capacity(64)
            .overflow(Overflow::Drop)
            .build()
            .unwrap();
        let (pipeline, guard) = AsyncPipeline::start(config).unwrap();
        let log = pipeline.logger("app");
        const LOGGED: u64 = 10_000;
        for seq in 0..LOGGED {
            if seq % 2 == 0 {
                info!(log, "record"; seq = seq);
            } else {
                warn!(log, "record"; seq = seq);
            }
        }
        let reader = tokio::spawn(async move {
            let mut all = Vec::new();
            reader_end.read_to_end(&mut all).await.unwrap();
            all
        });
        assert!(guard.shutdown().await.is_settled());
        let bytes = reader.await.unwrap();
        let stats = pipeline.stats();
        let text = String::from_utf8(bytes).unwrap();
        let mut records = 0u64;
        let mut reported = 0u64;
        for line in text.lines() {
            let v: serde_json::Value =
                serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
            if v["logger"] == "kakashi" {
                assert_eq!(v["level"], "warn");
                assert!(v["message"].as_str().unwrap().contains("records dropped"));
                reported += v["dropped"].as_u64().unwrap();
            } else {
                records += 1;
            }
        }
        assert!(stats.dropped > 0, "{stats:?}");
        assert_eq!(reported, stats.dropped, "in-band lines report every drop");
        assert_eq!(
            stats.dropped_by_level[kakashi::Level::Info.index()]
                + stats.dropped_by_level[kakashi::Level::Warn.index()],
            stats.dropped
        );
        assert!(fallback.lines().is_empty(), "{:?}", fallback.lines());
        assert_eq!(records + stats.dropped, LOGGED, "{stats:?}");
        assert_eq!(stats.written, records);
    });
}

/// Fault injection: an `AsyncWrite` that fails every write.
struct FailingAsyncWriter {
    attempts: Arc<AtomicUsize>,
}

impl AsyncWrite for FailingAsyncWriter {
    fn poll_write(self: Pin<&mut Self>, _: &mut Context<'_>, _: &[u8]) -> Poll<io::Result<usize>> {
        self.attempts.fetch_add(1, Ordering::SeqCst);
        Poll::Ready(Err(io::Error::new(
            io::ErrorKind::ConnectionReset,
            "injected reset",
        )))
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[test]
fn a_failing_worker_writer_sends_lines_to_the_fallback() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let attempts = Arc::new(AtomicUsize::new(0));
        let fallback = MemoryWriter::new();
        let reports = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&reports);
        let config = PipelineConfig::builder()
            .writer(Writer::async_writer(
                "flaky socket",
                FailingAsyncWriter {
                    attempts: Arc::clone(&attempts),
                },
            ))
            .fallback(Arc::new(fallback.clone()))
            .error_hook(move |e: &PipelineError| sink.lock().unwrap().push(e.to_string()))
            .build()
            .unwrap();
        let (pipeline, guard) = AsyncPipeline::start(config).unwrap();
        let log = pipeline.logger("app");
        for seq in 0..1_000u64 {
            info!(log, "record"; seq = seq);
            if seq % 100 == 0 {
                pipeline.flush().await;
            }
        }
        assert!(guard.shutdown().await.is_settled());
        let lines = fallback.lines();
        assert_eq!(lines.len(), 1_000);
        let mut seqs: Vec<u64> = lines
            .iter()
            .map(|l| {
                common::get(&common::parse_logfmt(l), "seq")
                    .unwrap()
                    .parse()
                    .unwrap()
            })
            .collect();
        seqs.sort_unstable();
        assert!(seqs.iter().enumerate().all(|(i, &s)| s == i as u64));
        let stats = pipeline.stats();
        assert!(attempts.load(Ordering::SeqCst) > 1);
        assert!(stats.write_errors >= 1);
        assert_eq!(stats.written, 0);
        assert_eq!(stats.written_via_fallback, 1_000);
        assert_eq!(stats.accepted, 1_000);
        let reports = reports.lock().unwrap();
        assert_eq!(reports.len(), 1, "reported once while failing: {reports:?}");
        assert!(reports[0].contains("flaky socket") && reports[0].contains("injected reset"));
    });
}

#[test]
fn the_worker_handed_back_can_be_driven_by_the_caller() {
    let memory = MemoryWriter::new();
    let config = PipelineConfig::builder()
        .writer(Writer::memory(&memory))
        .build()
        .unwrap();
    let (pipeline, guard, worker) = AsyncPipeline::with_worker(config).unwrap();
    let log = pipeline.logger("app");
    for seq in 0..100u64 {
        info!(log, "queued"; seq = seq);
    }
    // Nothing runs the worker yet: nothing is written.
    assert!(memory.lines().is_empty());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let task = tokio::spawn(worker.run());
        pipeline.flush().await;
        assert_eq!(memory.lines().len(), 100);
        assert!(guard.shutdown().await.is_settled());
        task.await.unwrap();
    });
    assert!(!pipeline.is_async());
    info!(log, "after shutdown"; seq = 100u64);
    assert_eq!(memory.lines().len(), 101);
}

#[test]
fn a_worker_dropped_without_running_writes_what_was_queued() {
    let memory = MemoryWriter::new();
    let config = PipelineConfig::builder()
        .writer(Writer::memory(&memory))
        .build()
        .unwrap();
    let (pipeline, guard, worker) = AsyncPipeline::with_worker(config).unwrap();
    let log = pipeline.logger("app");
    info!(log, "one");
    info!(log, "two");
    drop(worker);
    assert_eq!(memory.lines().len(), 2);
    info!(log, "three");
    assert_eq!(memory.lines().len(), 3);
    drop(guard);
}

#[test]
fn flush_blocking_from_a_plain_thread_waits_for_the_worker() {
    let dir = TempDir::new("flush-blocking");
    let path = dir.file("app.log");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (pipeline, guard) = {
        let _enter = rt.enter();
        AsyncPipeline::start(file_config(&path).build().unwrap()).unwrap()
    };
    let log = pipeline.logger("app");
    for seq in 0..5_000u64 {
        info!(log, "record"; seq = seq);
    }
    pipeline.flush_blocking(Duration::from_secs(5));
    assert_eq!(seqs(&path).len(), 5_000);
    assert!(pipeline.is_async(), "a flush does not stop the worker");
    drop(guard);
}
