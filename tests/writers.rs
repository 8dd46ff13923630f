//! Writers: routing per level and formatter, failures and the fallback, files.

mod common;

use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use common::TempDir;
use kakashi::format::{Json, Logfmt};
use kakashi::write::{MemoryWriter, SyncWrite};
use kakashi::{
    error, info, warn, ErrorKind, Level, PipelineConfig, PipelineError, SyncPipeline, Writer,
};

/// Fault injection: a writer that always fails.
#[derive(Debug, Default)]
struct FailingWriter {
    calls: AtomicUsize,
}

impl SyncWrite for FailingWriter {
    fn write_lines(&self, _: &[u8]) -> io::Result<()> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        Err(io::Error::new(
            io::ErrorKind::BrokenPipe,
            "injected failure",
        ))
    }
}

#[test]
fn per_writer_levels_and_formatters() {
    let errors = MemoryWriter::new();
    let everything = MemoryWriter::new();
    let config = PipelineConfig::builder()
        .min_level(Level::Debug)
        .formatter(Json::new())
        .writer(
            Writer::memory(&errors)
                .min_level(Level::Error)
                .formatter(Logfmt::new()),
        )
        .writer(Writer::memory(&everything))
        .build()
        .unwrap();
    let (pipeline, _guard) = SyncPipeline::start(config).unwrap();
    let log = pipeline.logger("app");
    kakashi::debug!(log, "d");
    info!(log, "i");
    error!(log, "e"; code = 7);
    let all = everything.lines();
    assert_eq!(all.len(), 3);
    for line in &all {
        serde_json::from_str::<serde_json::Value>(line).unwrap();
    }
    let errs = errors.lines();
    assert_eq!(errs.len(), 1);
    assert!(
        errs[0].ends_with("level=error logger=app msg=e code=7"),
        "{errs:?}"
    );
}

#[test]
fn a_failing_writer_sends_lines_to_the_fallback_and_reports_once() {
    let failing = Arc::new(FailingWriter::default());
    let fallback = MemoryWriter::new();
    let reports = Arc::new(Mutex::new(Vec::<String>::new()));
    let sink = Arc::clone(&reports);
    let config = PipelineConfig::builder()
        .writer(Writer::sync(failing.clone()))
        .fallback(Arc::new(fallback.clone()))
        .error_hook(move |e: &PipelineError| sink.lock().unwrap().push(e.to_string()))
        .build()
        .unwrap();
    let (pipeline, _guard) = SyncPipeline::start(config).unwrap();
    let log = pipeline.logger("app");
    for i in 0..5 {
        warn!(log, "record {}", i);
    }
    assert_eq!(failing.calls.load(Ordering::SeqCst), 5);
    let lines = fallback.lines();
    assert_eq!(lines.len(), 5);
    assert!(lines[4].ends_with("msg=\"record 4\""));
    let reports = reports.lock().unwrap();
    assert_eq!(reports.len(), 1, "{reports:?}");
    assert!(reports[0].contains("injected failure"), "{reports:?}");
    let stats = pipeline.stats();
    assert_eq!(stats.accepted, 5);
    assert_eq!(stats.written, 0);
    assert_eq!(stats.written_via_fallback, 5);
    assert_eq!(stats.write_errors, 5);
    assert_eq!(stats.failed, 0);
}

#[test]
fn when_the_fallback_fails_too_the_loss_is_counted_and_reported() {
    let reports = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&reports);
    let config = PipelineConfig::builder()
        .writer(Writer::sync(Arc::new(FailingWriter::default())))
        .fallback(Arc::new(FailingWriter::default()))
        .error_hook(move |_: &PipelineError| {
            seen.fetch_add(1, Ordering::SeqCst);
        })
        .build()
        .unwrap();
    let (pipeline, _guard) = SyncPipeline::start(config).unwrap();
    info!(pipeline.logger("app"), "doomed");
    let stats = pipeline.stats();
    assert_eq!(stats.failed, 1);
    assert_eq!(reports.load(Ordering::SeqCst), 2);
}

#[test]
fn unopenable_file_paths_give_a_clear_error() {
    let dir = TempDir::new("badpath");
    // A directory where the file should be.
    let config = PipelineConfig::builder()
        .writer(Writer::file(dir.path()))
        .build()
        .unwrap();
    let err = SyncPipeline::start(config).unwrap_err();
    assert!(matches!(err.kind(), ErrorKind::OpenFile { .. }));
    let text = err.to_string();
    assert!(text.contains("cannot open log file"), "{text}");
    assert!(text.contains(&dir.path().display().to_string()), "{text}");
    assert!(std::error::Error::source(&err).is_some());

    // A parent that is a file.
    let blocker = dir.file("blocker");
    std::fs::write(&blocker, b"x").unwrap();
    let config = PipelineConfig::builder()
        .writer(Writer::file(blocker.join("app.log")))
        .build()
        .unwrap();
    assert!(SyncPipeline::start(config).is_err());
}

#[test]
fn files_are_appended_and_parent_directories_created() {
    let dir = TempDir::new("append");
    let path = dir.file("nested/deeper/app.log");
    for round in 0..2 {
        let config = PipelineConfig::builder()
            .writer(Writer::file(&path))
            .build()
            .unwrap();
        let (pipeline, guard) = SyncPipeline::start(config).unwrap();
        info!(pipeline.logger("app"), "round {}", round);
        drop(guard);
    }
    let lines = common::read_lines(&path);
    assert_eq!(lines.len(), 2);
    assert!(lines[1].ends_with("msg=\"round 1\""));
}

#[test]
fn bad_configuration_is_rejected_with_a_message() {
    let cases: Vec<(kakashi::PipelineConfigBuilder, &str)> = vec![
        (
            PipelineConfig::builder().queue_capacity(0),
            "queue_capacity",
        ),
        (PipelineConfig::builder().batch_bytes(10), "batch_bytes"),
        (
            PipelineConfig::builder().flush_interval(std::time::Duration::ZERO),
            "flush_interval",
        ),
    ];
    for (builder, needle) in cases {
        let err = builder.build().unwrap_err();
        assert!(err.to_string().contains(needle), "{err}");
    }
    let mut builder = PipelineConfig::builder();
    for i in 0..17 {
        builder = builder.enricher(kakashi::Enricher::field(&format!("k{i}"), i));
    }
    assert!(builder
        .build()
        .unwrap_err()
        .to_string()
        .contains("at most 16"));
}

/// 8 threads × 10,000 records to one file: exactly 80,000 whole lines, none interleaved.
fn many_threads_to_one_file(
    start: impl Fn(PipelineConfig) -> (kakashi::Pipeline, kakashi::PipelineGuard),
) {
    let dir = TempDir::new("threads");
    let path = dir.file("app.log");
    let config = PipelineConfig::builder()
        .formatter(Json::new())
        .writer(Writer::file(&path))
        .queue_capacity(1024)
        .build()
        .unwrap();
    let (pipeline, guard) = start(config);
    std::thread::scope(|scope| {
        for t in 0..8u32 {
            let log = pipeline.logger("worker");
            scope.spawn(move || {
                for i in 0..10_000u32 {
                    info!(log, "record {} of thread {}", i, t; thread = t, seq = i, pad = "x".repeat((i % 300) as usize));
                }
            });
        }
    });
    drop(guard);
    let lines = common::read_lines(&path);
    assert_eq!(lines.len(), 80_000);
    let mut seen = vec![vec![false; 10_000]; 8];
    for line in &lines {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line:?}"));
        let (t, i) = (
            v["thread"].as_u64().unwrap() as usize,
            v["seq"].as_u64().unwrap() as usize,
        );
        assert_eq!(v["message"], format!("record {i} of thread {t}"));
        assert!(!seen[t][i], "duplicate line {t}/{i}");
        seen[t][i] = true;
    }
    let stats = pipeline.stats();
    assert_eq!(stats.accepted, 80_000);
    assert_eq!(stats.written, 80_000);
}

#[test]
fn eight_threads_to_one_file_sync() {
    many_threads_to_one_file(|c| SyncPipeline::start(c).unwrap());
}

#[test]
fn eight_threads_to_one_file_async() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    many_threads_to_one_file(|c| {
        let _enter = rt.enter();
        let started = kakashi::AsyncPipeline::start(c).unwrap();
        assert!(started.0.is_async());
        started
    });
}

#[test]
fn filters_on_logger_prefix_level_and_field_value() {
    let memory = MemoryWriter::new();
    let config = PipelineConfig::builder()
        .min_level(Level::Trace)
        .filter(kakashi::Filter::deny_logger_prefix("noisy"))
        .filter(kakashi::Filter::min_level(Level::Debug))
        .filter(kakashi::Filter::new("no secrets", |r| {
            r.field("secret").is_none()
        }))
        .writer(Writer::memory(&memory))
        .build()
        .unwrap();
    let (pipeline, _guard) = SyncPipeline::start(config).unwrap();
    info!(pipeline.logger("noisy::sub"), "dropped by prefix");
    info!(pipeline.logger("noisy"), "dropped by prefix too");
    info!(pipeline.logger("noisyish"), "kept: not a child of noisy");
    kakashi::trace!(pipeline.logger("app"), "dropped by level");
    info!(pipeline.logger("app"), "dropped by field"; secret = "x");
    info!(pipeline.logger("app"), "kept"; status = 200u16);
    let lines = memory.lines();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(lines[0].contains("logger=noisyish"));

    let memory = MemoryWriter::new();
    let config = PipelineConfig::builder()
        .filter(kakashi::Filter::logger_prefix("app"))
        .filter(kakashi::Filter::field_equals("status", 200))
        .writer(Writer::memory(&memory))
        .build()
        .unwrap();
    let (pipeline, _guard) = SyncPipeline::start(config).unwrap();
    info!(pipeline.logger("app::http"), "kept"; status = 200u16);
    info!(pipeline.logger("app::http"), "other status"; status = 500u16);
    info!(pipeline.logger("app::http"), "a string is not a number"; status = "200");
    info!(pipeline.logger("db"), "other logger"; status = 200u16);
    let lines = memory.lines();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].contains("msg=kept"));
}

#[test]
fn enrichers_add_service_pid_and_thread() {
    let memory = MemoryWriter::new();
    let config = PipelineConfig::builder()
        .formatter(Json::new())
        .enricher(kakashi::Enricher::service_name("billing"))
        .enricher(kakashi::Enricher::pid())
        .enricher(kakashi::Enricher::thread())
        .enricher(kakashi::Enricher::hostname())
        .writer(Writer::memory(&memory))
        .build()
        .unwrap();
    let (pipeline, _guard) = SyncPipeline::start(config).unwrap();
    let log = pipeline.logger("app");
    std::thread::Builder::new()
        .name("worker-7".into())
        .spawn(move || info!(log, "hi"))
        .unwrap()
        .join()
        .unwrap();
    let v: serde_json::Value = serde_json::from_str(&memory.lines()[0]).unwrap();
    assert_eq!(v["service"], "billing");
    assert_eq!(v["pid"], std::process::id());
    assert_eq!(v["thread"], "worker-7");
    assert!(v["thread_id"].as_u64().unwrap() >= 1);
    assert!(!v["host"].as_str().unwrap().is_empty());
}
