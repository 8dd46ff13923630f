//! The same workload on every kind of executor: no runtime, `current_thread` (and
//! `#[tokio::test]`), multi-thread, and both runtimes built without the time driver. After each
//! flush the file holds every line logged before it; at the end every accepted line is in one
//! bucket, per writer, and each producer's lines are in order.

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use common::{parse_logfmt, read_lines, TempDir};
use kakashi::{info, AsyncPipeline, Pipeline, PipelineConfig, Stats, Writer};

const PRODUCERS: u64 = 4;
const PER_PRODUCER: u64 = 5_000;

fn config(path: &Path) -> PipelineConfig {
    PipelineConfig::builder()
        .writer(Writer::file(path))
        .queue_capacity(256)
        .build()
        .unwrap()
}

/// (producer, seq) of each line, in file order.
fn records(path: &Path) -> Vec<(u64, u64)> {
    read_lines(path)
        .iter()
        .map(|line| {
            let fields: HashMap<String, String> = parse_logfmt(line).into_iter().collect();
            (
                fields["producer"].parse().unwrap(),
                fields["seq"].parse().unwrap(),
            )
        })
        .collect()
}

fn check_file(path: &Path, expected: u64) {
    let seen = records(path);
    assert_eq!(seen.len() as u64, expected, "lines in the file");
    let mut next = HashMap::new();
    for (producer, seq) in seen {
        let want = next.entry(producer).or_insert(0u64);
        assert_eq!(
            seq, *want,
            "producer {producer}: out of order or duplicated"
        );
        *want += 1;
    }
}

fn check_stats(stats: &Stats, expected: u64) {
    assert!(stats.is_settled(), "{stats:?}");
    assert_eq!(stats.accepted, expected, "{stats:?}");
    assert_eq!(stats.written, expected, "{stats:?}");
    for writer in &stats.writers {
        assert_eq!(
            writer.accepted,
            writer.written + writer.written_via_fallback + writer.dropped + writer.failed,
            "{writer:?}"
        );
    }
}

fn log_from_threads(pipeline: &Pipeline) {
    std::thread::scope(|s| {
        for producer in 0..PRODUCERS {
            let log = pipeline.logger("app");
            s.spawn(move || {
                for seq in 0..PER_PRODUCER {
                    info!(log, "record"; producer = producer, seq = seq);
                }
            });
        }
    });
}

async fn log_from_tasks(pipeline: &Pipeline) {
    let tasks: Vec<_> = (0..PRODUCERS)
        .map(|producer| {
            let log = pipeline.logger("app");
            tokio::spawn(async move {
                for seq in 0..PER_PRODUCER {
                    info!(log, "record"; producer = producer, seq = seq);
                    if seq % 64 == 0 {
                        tokio::task::yield_now().await;
                    }
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
}

/// Logs from tasks, flushes (the file must hold every line at once), logs again from plain
/// threads (the runtime thread blocked meanwhile), flushes again, and shuts down.
fn run_on(rt: tokio::runtime::Runtime, tag: &str) {
    let dir = TempDir::new(tag);
    let path = dir.file("app.log");
    let total = 2 * PRODUCERS * PER_PRODUCER;
    let stats = rt.block_on(async {
        let (pipeline, guard) = AsyncPipeline::start(config(&path)).unwrap();
        assert!(pipeline.is_async());
        log_from_tasks(&pipeline).await;
        pipeline.flush().await;
        check_file(&path, PRODUCERS * PER_PRODUCER);
        // Producer numbers 0..4 again: the order check is per (producer, pass).
        let pipeline2 = pipeline.clone();
        std::thread::scope(|s| {
            for producer in PRODUCERS..2 * PRODUCERS {
                let log = pipeline2.logger("app");
                s.spawn(move || {
                    for seq in 0..PER_PRODUCER {
                        info!(log, "record"; producer = producer, seq = seq);
                    }
                });
            }
        });
        pipeline.flush().await;
        check_file(&path, total);
        guard.shutdown().await
    });
    check_stats(&stats, total);
    check_file(&path, total);
}

#[test]
fn no_runtime_writes_synchronously_and_settles() {
    let dir = TempDir::new("exec-none");
    let path = dir.file("app.log");
    let (pipeline, guard) = AsyncPipeline::start(config(&path)).unwrap();
    assert!(!pipeline.is_async());
    log_from_threads(&pipeline);
    check_file(&path, PRODUCERS * PER_PRODUCER);
    let stats = guard.close();
    check_stats(&stats, PRODUCERS * PER_PRODUCER);
}

#[test]
fn current_thread_runtime() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    run_on(rt, "exec-ct");
}

#[test]
fn current_thread_runtime_without_the_time_driver() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .unwrap();
    run_on(rt, "exec-ct-notime");
}

#[test]
fn multi_thread_runtime() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    run_on(rt, "exec-mt");
}

#[test]
fn multi_thread_runtime_without_any_driver() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    run_on(rt, "exec-mt-nodriver");
}

/// A blocking flush on the runtime's only thread, with producers on other threads: the
/// worker cannot run, the flush drains from a helper thread.
fn blocking_flush_with_thread_producers(rt: tokio::runtime::Runtime, tag: &str) {
    let dir = TempDir::new(tag);
    let path = dir.file("app.log");
    let (pipeline, guard) = {
        let _enter = rt.enter();
        AsyncPipeline::start(config(&path)).unwrap()
    };
    rt.block_on(async {
        log_from_threads(&pipeline);
        assert!(pipeline.flush_blocking(Duration::from_secs(10)));
        check_file(&path, PRODUCERS * PER_PRODUCER);
    });
    let stats = guard.close();
    check_stats(&stats, PRODUCERS * PER_PRODUCER);
    drop(rt);
    check_file(&path, PRODUCERS * PER_PRODUCER);
}

#[test]
fn blocking_flush_inside_a_current_thread_runtime() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    blocking_flush_with_thread_producers(rt, "exec-ct-blocking");
}

#[test]
fn blocking_flush_inside_a_multi_thread_runtime_without_time() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_io()
        .build()
        .unwrap();
    blocking_flush_with_thread_producers(rt, "exec-mt-blocking");
}

#[tokio::test]
async fn tokio_test_flush_then_shutdown() {
    let dir = TempDir::new("exec-tokio-test");
    let path = dir.file("app.log");
    let (pipeline, guard) = AsyncPipeline::start(config(&path)).unwrap();
    log_from_tasks(&pipeline).await;
    // A blocking flush inside #[tokio::test] (current_thread): must not wait for the worker.
    assert!(pipeline.flush_blocking(Duration::from_secs(10)));
    check_file(&path, PRODUCERS * PER_PRODUCER);
    let stats = guard.shutdown().await;
    check_stats(&stats, PRODUCERS * PER_PRODUCER);
}
