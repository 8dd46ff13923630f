//! Per-record cost: a disabled call, and an enabled call (message, 5 fields, RFC 3339
//! timestamp) through each formatter into a no-op writer, synchronously and through the async
//! pipeline's hand-off; a record with non-ASCII text in its message and values; a record with
//! a `Display` field (`%format_args!("{i:016x}")`);
//! `get_logger` for a name seen before; a disabled call with 20 level directives loaded; with
//! `--features tracing`, `tracing` events through kakashi's layer (disabled, and enabled);
//! a flush of the async pipeline to a file, after one record and with nothing pending.
//!
//! Run with `cargo bench --bench record` (`--features tracing` for the `tracing` ones).

use std::hint::black_box;
use std::io;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion};
use kakashi::format::{ColorMode, Console, Formatter, Json, Logfmt};
use kakashi::write::SyncWrite;
use kakashi::{
    debug, get_logger, info, AsyncPipeline, Logger, PipelineConfig, SyncPipeline, Writer,
};

/// Takes lines and does nothing with them.
#[derive(Debug)]
struct NoopWriter;

impl SyncWrite for NoopWriter {
    fn write_lines(&self, lines: &[u8]) -> io::Result<()> {
        black_box(lines);
        Ok(())
    }
}

fn log_one(log: &Logger, i: u64) {
    info!(log, "request handled"; user_id = 42, path = "/api/v1/items", status = 200, latency_ms = 3.25, seq = i);
}

/// Non-ASCII text in the message and values (the escapes' exact, non-ASCII scan).
fn log_non_ascii(log: &Logger, i: u64) {
    info!(log, "Anfrage für Jürgen bearbeitet"; user = "Zoë Ångström", city = "Zürich — 東京", status = 200, note = "naïve café crème", seq = i);
}

/// The record of the per-record instruction counts: a `Display` field among the five.
fn log_display(log: &Logger, i: u64) {
    info!(log, "request handled"; user_id = i, path = "/api/v1/users", status = 200u16, latency_ms = 12.5, trace = %format_args!("{i:016x}"));
}

fn sync_logger(formatter: Arc<dyn Formatter>) -> (Logger, kakashi::PipelineGuard) {
    let config = PipelineConfig::builder()
        .formatter_arc(formatter)
        .writer(Writer::sync(Arc::new(NoopWriter)))
        .build()
        .unwrap();
    let (pipeline, guard) = SyncPipeline::start(config).unwrap();
    (pipeline.logger("bench"), guard)
}

fn benches(c: &mut Criterion) {
    let (log, _guard) = sync_logger(Arc::new(Logfmt::new()));
    c.bench_function("disabled call", |b| {
        b.iter(|| debug!(log, "never {}", black_box(1); user_id = black_box(42)))
    });
    // The same call site with 20 directives loaded (none matching `bench`): the decision is
    // cached per logger, so the directive list is not scanned per call.
    let twenty: Vec<String> = (0..20).map(|i| format!("crate{i}::module=debug")).collect();
    kakashi::directives::handle()
        .set_directives(&format!("info,{}", twenty.join(",")))
        .expect("valid directives");
    c.bench_function("disabled call, 20 directives", |b| {
        b.iter(|| debug!(log, "never {}", black_box(1); user_id = black_box(42)))
    });
    c.bench_function("disabled call, no logger, 20 directives", |b| {
        b.iter(|| debug!("never {}", black_box(1); user_id = black_box(42)))
    });
    kakashi::directives::handle().clear();

    let formatters: [(&str, Arc<dyn Formatter>); 3] = [
        ("logfmt", Arc::new(Logfmt::new())),
        ("json", Arc::new(Json::new())),
        ("console", Arc::new(Console::new().colors(ColorMode::Never))),
    ];
    for (name, formatter) in formatters {
        let (log, _guard) = sync_logger(formatter);
        let mut i = 0u64;
        c.bench_function(&format!("enabled, 5 fields, {name}, no-op writer"), |b| {
            b.iter(|| {
                i += 1;
                log_one(&log, i)
            })
        });
    }

    let formatters: [(&str, Arc<dyn Formatter>); 2] = [
        ("logfmt", Arc::new(Logfmt::new())),
        ("json", Arc::new(Json::new())),
    ];
    for (name, formatter) in formatters {
        let (log, _guard) = sync_logger(formatter);
        let mut i = 0u64;
        c.bench_function(
            &format!("enabled, 5 fields, non-ASCII text, {name}, no-op writer"),
            |b| {
                b.iter(|| {
                    i += 1;
                    log_non_ascii(&log, i)
                })
            },
        );
    }

    let (log, _guard) = sync_logger(Arc::new(Logfmt::new()));
    let mut i = 0u64;
    c.bench_function("enabled, 5 fields, %hex, logfmt, no-op writer", |b| {
        b.iter(|| {
            i += 1;
            log_display(&log, i)
        })
    });

    let _ = get_logger("app::handler");
    c.bench_function("get_logger, known name", |b| {
        b.iter(|| get_logger(black_box("app::handler")))
    });

    // The async hand-off: format on the caller, try_send to the worker, which writes to
    // a no-op writer on a 2-worker runtime.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let config = PipelineConfig::builder()
        .writer(Writer::sync(Arc::new(NoopWriter)))
        .build()
        .unwrap();
    let (pipeline, guard) = {
        let _enter = rt.enter();
        AsyncPipeline::start(config).unwrap()
    };
    let log = pipeline.logger("bench");
    let mut i = 0u64;
    c.bench_function("enabled, 5 fields, logfmt, async pipeline hand-off", |b| {
        b.iter(|| {
            i += 1;
            log_one(&log, i)
        })
    });
    drop(guard);
    let stats = pipeline.stats();
    assert_eq!(stats.failed, 0);
    eprintln!(
        "async hand-off: {} lines accepted, {} written inline because the queue was full",
        stats.accepted, stats.written_inline
    );
}

/// Flushes of the async pipeline writing a file: `flush().await` right after one record (the
/// worker may be between two flush-interval ticks), and `flush_blocking` with nothing pending.
fn flush_benches(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = std::env::temp_dir().join(format!("kakashi-bench-flush-{}", std::process::id()));
    let config = PipelineConfig::builder()
        .writer(Writer::file(dir.join("flush.log")))
        .build()
        .unwrap();
    let (pipeline, guard) = {
        let _enter = rt.enter();
        AsyncPipeline::start(config).unwrap()
    };
    let log = pipeline.logger("bench");
    let mut i = 0u64;
    c.bench_function(
        "one record, then flush().await, async pipeline, file",
        |b| {
            b.iter(|| {
                i += 1;
                log_one(&log, i);
                rt.block_on(pipeline.flush());
            })
        },
    );
    c.bench_function(
        "flush_blocking, nothing pending, async pipeline, file",
        |b| b.iter(|| pipeline.flush_blocking(std::time::Duration::from_secs(5))),
    );
    let stats = guard.close();
    assert!(stats.is_settled(), "{stats:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// `tracing` events through kakashi's layer (`--features tracing`): a disabled one, and one
/// with the five fields into a no-op writer.
#[cfg(feature = "tracing")]
fn tracing_benches(c: &mut Criterion) {
    use tracing_subscriber::layer::SubscriberExt as _;

    let config = PipelineConfig::builder()
        .writer(Writer::sync(Arc::new(NoopWriter)))
        .build()
        .unwrap();
    let (pipeline, _guard) = SyncPipeline::start(config).unwrap();
    let subscriber = tracing_subscriber::registry().with(kakashi::tracing::layer_for(&pipeline));
    tracing::subscriber::set_global_default(subscriber).unwrap();
    c.bench_function("tracing, disabled event, kakashi layer", |b| {
        b.iter(|| tracing::debug!(user_id = black_box(42), "never {}", black_box(1)))
    });
    let mut i = 0u64;
    c.bench_function(
        "tracing, enabled, 5 fields, %hex, kakashi layer, no-op writer",
        |b| {
            b.iter(|| {
                i += 1;
                tracing::info!(user_id = i, path = "/api/v1/users", status = 200u16,
                latency_ms = 12.5, trace = %format_args!("{i:016x}"), "request handled");
            })
        },
    );
}

#[cfg(not(feature = "tracing"))]
fn tracing_benches(_: &mut Criterion) {}

criterion_group!(record, benches, flush_benches, tracing_benches);
criterion_main!(record);
