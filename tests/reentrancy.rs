//! Logging from inside logging: a `Display` impl or a writer that logs must neither panic nor
//! deadlock, and no line is lost.

mod common;

use std::fmt;
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use kakashi::write::{MemoryWriter, SyncWrite};
use kakashi::{info, AsyncPipeline, Level, Logger, PipelineConfig, SyncPipeline, Writer};

/// Logs through `logger` every time it is displayed.
struct Chatty<'a>(&'a Logger, u32);

impl fmt::Display for Chatty<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        info!(self.0, "inner {}", self.1);
        write!(f, "outer-{}", self.1)
    }
}

#[test]
fn a_display_impl_that_logs_on_a_sync_pipeline() {
    let (pipeline, _guard, memory) = common::memory_sync_pipeline(Level::Info);
    let log = pipeline.logger("app");
    for i in 0..3 {
        info!(log, "message {}", Chatty(&log, i); field = %Chatty(&log, i + 10));
    }
    let lines = memory.lines();
    // Each outer record logs two inner ones first (while it is being formatted).
    assert_eq!(lines.len(), 9, "{lines:?}");
    assert!(
        lines[2].ends_with("msg=\"message outer-0\" field=outer-10"),
        "{lines:?}"
    );
    assert!(lines[0].ends_with("msg=\"inner 0\""));
    assert!(lines[1].ends_with("msg=\"inner 10\""));
}

#[test]
fn a_display_impl_that_logs_on_the_async_pipeline() {
    let memory = MemoryWriter::new();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let config = PipelineConfig::builder()
            .writer(Writer::memory(&memory))
            .build()
            .unwrap();
        let (pipeline, guard) = AsyncPipeline::start(config).unwrap();
        let log = pipeline.logger("app");
        for i in 0..100 {
            info!(log, "message {}", Chatty(&log, i));
        }
        assert!(guard.shutdown().await.is_settled());
    });
    let lines = memory.lines();
    assert_eq!(lines.len(), 200);
    assert_eq!(
        lines.iter().filter(|l| l.contains("msg=\"inner ")).count(),
        100
    );
}

/// A writer that logs through its own pipeline on every write.
#[derive(Debug)]
struct LoggingWriter {
    inner: MemoryWriter,
    logger: OnceLock<Logger>,
    writes: AtomicUsize,
}

impl SyncWrite for LoggingWriter {
    fn write_lines(&self, lines: &[u8]) -> io::Result<()> {
        self.writes.fetch_add(1, Ordering::SeqCst);
        if let Some(log) = self.logger.get() {
            info!(log, "writer saw {} bytes", lines.len());
        }
        self.inner.write_lines(lines)
    }
}

#[test]
fn a_writer_that_logs_does_not_recurse_forever() {
    let writer = Arc::new(LoggingWriter {
        inner: MemoryWriter::new(),
        logger: OnceLock::new(),
        writes: AtomicUsize::new(0),
    });
    let fallback = MemoryWriter::new();
    let config = PipelineConfig::builder()
        .writer(Writer::sync(writer.clone()))
        .fallback(Arc::new(fallback.clone()))
        .build()
        .unwrap();
    let (pipeline, _guard) = SyncPipeline::start(config).unwrap();
    let log = pipeline.logger("app");
    writer.logger.set(log.clone()).unwrap();
    info!(log, "top");
    // The chain stops at a bounded depth: the deepest record is dropped and counted instead
    // of being formatted (its formatting would log once more).
    let written = writer.inner.lines();
    assert!(
        written.iter().any(|l| l.ends_with("msg=top")),
        "{written:?}"
    );
    assert!(fallback.lines().is_empty(), "{:?}", fallback.lines());
    let writes = writer.writes.load(Ordering::SeqCst);
    assert!(writes <= 4, "{writes} writes");
    let stats = pipeline.stats();
    assert!(stats.is_settled(), "{stats:?}");
    assert_eq!(stats.failed, 0);
    assert_eq!(stats.dropped, 1, "{stats:?}");
    assert_eq!(stats.written as usize, written.len());
    assert_eq!(stats.accepted, stats.written + stats.dropped);
    assert_eq!(written.len(), writes);
}

#[test]
fn a_display_impl_that_panics_leaves_no_half_line_behind() {
    struct Boom;
    impl fmt::Display for Boom {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("half a line")?;
            panic!("display failed");
        }
    }
    let (pipeline, _guard, memory) = common::memory_sync_pipeline(Level::Info);
    let log = pipeline.logger("app");
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        info!(log, "before {}", Boom);
    }));
    assert!(caught.is_err());
    info!(log, "next");
    let lines = memory.lines();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].ends_with("level=info logger=app msg=next"),
        "{lines:?}"
    );
    assert!(!lines[0].contains("half"));
}
