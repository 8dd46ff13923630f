//! Context scopes entered from inside a log call, and futures dropped inside their context.
//!
//! A `Display` impl of a logged field (or a writer) may enter a nested context scope, or poll a
//! future that carries a context, while the record is being formatted: that must neither panic
//! nor mix up the request ids. A future wrapped with `.with_log_context(ctx)` is dropped inside
//! `ctx`, whether it completed, was cancelled half-way or was never polled, so `Drop` impls that
//! log keep their request id.

mod common;

use std::cell::RefCell;
use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::FutureExt;
use kakashi::context::{self, LogContext, WithLogContext};
use kakashi::write::{MemoryWriter, SyncWrite};
use kakashi::{info, Level, Logger, PipelineConfig, SyncPipeline, Writer};

/// The written bytes as parsed logfmt lines; every line must be whole.
fn parsed_lines(memory: &MemoryWriter) -> Vec<Vec<(String, String)>> {
    let bytes = memory.contents();
    let text = String::from_utf8(bytes).expect("the lines are UTF-8");
    assert!(
        text.is_empty() || text.ends_with('\n'),
        "a half line at the end: {text:?}"
    );
    text.lines().map(common::parse_logfmt).collect()
}

fn value<'a>(line: &'a [(String, String)], key: &str) -> Option<&'a str> {
    common::get(line, key)
}

/// Enters a nested context with `sync_scope_shared` and logs inside it when displayed.
struct EntersSyncScope<'a>(&'a Logger);

impl fmt::Display for EntersSyncScope<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let nested = context::merge_with_current(LogContext::new().with_request_id("nested"));
        context::sync_scope_shared(nested, || info!(self.0, "from display"));
        f.write_str("shown")
    }
}

#[tokio::test]
async fn a_display_impl_may_enter_a_nested_sync_scope_and_log() {
    let (pipeline, _guard, memory) = common::memory_sync_pipeline(Level::Info);
    let log = pipeline.logger("app");
    let outer = LogContext::new()
        .with_request_id("outer")
        .with_service_name("billing");
    context::scope(outer, async {
        info!(log, "outer record"; probe = %EntersSyncScope(&log));
    })
    .await;

    let lines = parsed_lines(&memory);
    assert_eq!(lines.len(), 2, "{lines:?}");
    // The nested record is logged (and written) while the outer one is being formatted.
    assert_eq!(value(&lines[0], "msg"), Some("from display"));
    assert_eq!(value(&lines[0], "request_id"), Some("nested"));
    assert_eq!(value(&lines[0], "service_name"), Some("billing"));
    assert_eq!(value(&lines[1], "msg"), Some("outer record"));
    assert_eq!(value(&lines[1], "probe"), Some("shown"));
    assert_eq!(value(&lines[1], "request_id"), Some("outer"));
    assert_eq!(value(&lines[1], "service_name"), Some("billing"));
}

/// Polls a future that carries its own context (and logs) when displayed.
struct PollsWithContext<'a>(&'a Logger);

impl fmt::Display for PollsWithContext<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let log = self.0;
        let id = async move {
            info!(log, "from polled future");
            context::try_current().and_then(|c| c.request_id().map(str::to_owned))
        }
        .with_log_context(LogContext::new().with_request_id("polled"))
        .now_or_never()
        .expect("the future is ready at once");
        write!(f, "{}", id.as_deref().unwrap_or("none"))
    }
}

#[tokio::test]
async fn a_display_impl_may_poll_a_future_with_its_own_context() {
    let (pipeline, _guard, memory) = common::memory_sync_pipeline(Level::Info);
    let log = pipeline.logger("app");
    context::scope(LogContext::new().with_request_id("outer"), async {
        info!(log, "outer record"; seen = %PollsWithContext(&log));
        // The outer scope is intact afterwards.
        info!(log, "after");
    })
    .await;

    let lines = parsed_lines(&memory);
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert_eq!(value(&lines[0], "msg"), Some("from polled future"));
    assert_eq!(value(&lines[0], "request_id"), Some("polled"));
    assert_eq!(value(&lines[1], "msg"), Some("outer record"));
    assert_eq!(value(&lines[1], "seen"), Some("polled"));
    assert_eq!(value(&lines[1], "request_id"), Some("outer"));
    assert_eq!(value(&lines[2], "msg"), Some("after"));
    assert_eq!(value(&lines[2], "request_id"), Some("outer"));
}

/// A writer that enters a nested context scope on every write and notes what it saw there.
#[derive(Debug, Default)]
struct ScopingWriter {
    inner: MemoryWriter,
    seen: Mutex<Vec<Option<String>>>,
}

impl SyncWrite for ScopingWriter {
    fn write_lines(&self, lines: &[u8]) -> io::Result<()> {
        let ctx = Arc::new(LogContext::new().with_request_id("writer"));
        let seen = context::sync_scope_shared(ctx, || {
            context::try_current().and_then(|c| c.request_id().map(str::to_owned))
        });
        self.seen.lock().unwrap().push(seen);
        self.inner.write_lines(lines)
    }
}

#[tokio::test]
async fn a_writer_may_enter_a_nested_scope() {
    let writer = Arc::new(ScopingWriter::default());
    let config = PipelineConfig::builder()
        .writer(Writer::sync(writer.clone()))
        .build()
        .unwrap();
    let (pipeline, _guard) = SyncPipeline::start(config).unwrap();
    let log = pipeline.logger("app");
    context::scope(LogContext::new().with_request_id("outer"), async {
        info!(log, "one");
        info!(log, "two");
    })
    .await;

    let lines = parsed_lines(&writer.inner);
    assert_eq!(lines.len(), 2, "{lines:?}");
    for (line, msg) in lines.iter().zip(["one", "two"]) {
        assert_eq!(value(line, "msg"), Some(msg));
        assert_eq!(value(line, "request_id"), Some("outer"));
    }
    let seen = writer.seen.lock().unwrap().clone();
    assert!(!seen.is_empty());
    assert!(
        seen.iter().all(|s| s.as_deref() == Some("writer")),
        "{seen:?}"
    );
}

/// Logs `dropped` (with `what`) when dropped.
struct LogsOnDrop {
    log: Logger,
    what: &'static str,
}

impl Drop for LogsOnDrop {
    fn drop(&mut self) {
        info!(self.log, "dropped"; what = self.what);
    }
}

/// A future that never completes and holds a `LogsOnDrop`.
async fn pending_holding(guard: LogsOnDrop) {
    let _guard = guard;
    std::future::pending::<()>().await;
}

fn request_ctx(id: &str) -> LogContext {
    LogContext::new().with_request_id(id)
}

/// The `(what, request_id)` of every `dropped` line.
fn drops(memory: &MemoryWriter) -> Vec<(String, Option<String>)> {
    parsed_lines(memory)
        .iter()
        .filter(|l| value(l, "msg") == Some("dropped"))
        .map(|l| {
            (
                value(l, "what").unwrap_or_default().to_owned(),
                value(l, "request_id").map(str::to_owned),
            )
        })
        .collect()
}

#[test]
fn a_future_dropped_unpolled_is_dropped_inside_its_context() {
    let (pipeline, _guard, memory) = common::memory_sync_pipeline(Level::Info);
    let log = pipeline.logger("app");
    let guard = LogsOnDrop {
        log: log.clone(),
        what: "unpolled",
    };
    let fut = pending_holding(guard).with_log_context(request_ctx("r-unpolled"));
    drop(fut);
    info!(log, "outside");

    let lines = parsed_lines(&memory);
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert_eq!(
        drops(&memory),
        [("unpolled".to_owned(), Some("r-unpolled".to_owned()))]
    );
    // The context does not outlive the drop.
    assert_eq!(value(&lines[1], "msg"), Some("outside"));
    assert_eq!(value(&lines[1], "request_id"), None);
}

#[test]
fn a_future_dropped_half_polled_is_dropped_inside_its_context() {
    let (pipeline, _guard, memory) = common::memory_sync_pipeline(Level::Info);
    let log = pipeline.logger("app");
    let guard = LogsOnDrop {
        log: log.clone(),
        what: "half-polled",
    };
    let mut fut = Box::pin(pending_holding(guard).with_log_context(request_ctx("r-half")));
    let mut cx = Context::from_waker(futures::task::noop_waker_ref());
    assert!(fut.poll_unpin(&mut cx).is_pending());
    drop(fut);
    info!(log, "outside");

    assert_eq!(
        drops(&memory),
        [("half-polled".to_owned(), Some("r-half".to_owned()))]
    );
    let lines = parsed_lines(&memory);
    assert_eq!(value(&lines[1], "request_id"), None);
}

#[tokio::test]
async fn a_future_cancelled_by_timeout_or_select_is_dropped_inside_its_context() {
    let (pipeline, _guard, memory) = common::memory_sync_pipeline(Level::Info);
    let log = pipeline.logger("app");

    // Outside any scope: `timeout` drops the future when it gives up.
    let fut = pending_holding(LogsOnDrop {
        log: log.clone(),
        what: "timeout",
    })
    .with_log_context(request_ctx("r-timeout"));
    assert!(tokio::time::timeout(Duration::from_millis(5), fut)
        .await
        .is_err());

    // Inside an outer scope: `select!` drops the losing branch, which must see its own
    // (merged) context, not the outer one.
    let outer = LogContext::new()
        .with_request_id("outer")
        .with_service_name("billing");
    context::scope(outer, async {
        let losing = pending_holding(LogsOnDrop {
            log: log.clone(),
            what: "select",
        })
        .with_log_context(request_ctx("r-select"));
        tokio::select! {
            () = losing => unreachable!("the losing branch never completes"),
            () = tokio::time::sleep(Duration::from_millis(5)) => {}
        }
        info!(log, "after select");
    })
    .await;

    assert_eq!(
        drops(&memory),
        [
            ("timeout".to_owned(), Some("r-timeout".to_owned())),
            ("select".to_owned(), Some("r-select".to_owned())),
        ]
    );
    let lines = parsed_lines(&memory);
    let select_drop = lines
        .iter()
        .find(|l| value(l, "what") == Some("select"))
        .unwrap();
    assert_eq!(value(select_drop, "service_name"), Some("billing"));
    let after = lines.last().unwrap();
    assert_eq!(value(after, "msg"), Some("after select"));
    assert_eq!(value(after, "request_id"), Some("outer"));
}

/// A hand-written future that is ready at once but keeps its `LogsOnDrop` until dropped.
struct ReadyHolding(#[allow(dead_code)] LogsOnDrop);

impl Future for ReadyHolding {
    type Output = ();

    fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<()> {
        Poll::Ready(())
    }
}

#[tokio::test]
async fn a_completed_future_is_dropped_at_once_inside_its_context() {
    let (pipeline, _guard, memory) = common::memory_sync_pipeline(Level::Info);
    let log = pipeline.logger("app");
    let fut = ReadyHolding(LogsOnDrop {
        log: log.clone(),
        what: "completed",
    })
    .with_log_context(request_ctx("r-done"));
    let mut fut = Box::pin(fut);
    fut.as_mut().await;
    // The wrapper is still alive here; its inner future is not.
    info!(log, "after completion");
    // Dropping the completed wrapper drops nothing more.
    drop(fut);

    let lines = parsed_lines(&memory);
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert_eq!(value(&lines[0], "msg"), Some("dropped"));
    assert_eq!(value(&lines[0], "request_id"), Some("r-done"));
    assert_eq!(value(&lines[1], "msg"), Some("after completion"));
    assert_eq!(value(&lines[1], "request_id"), None);
}

thread_local! {
    static HELD: RefCell<Option<Pin<Box<dyn Future<Output = ()>>>>> = const { RefCell::new(None) };
}

#[test]
fn a_future_dropped_while_thread_locals_are_destroyed_does_not_panic() {
    let (pipeline, _guard, memory) = common::memory_sync_pipeline(Level::Info);
    let log = pipeline.logger("app");
    let joined = std::thread::spawn(move || {
        let guard = LogsOnDrop {
            log,
            what: "thread exit",
        };
        // `HELD` is initialised first, so on most platforms it is destroyed after the
        // context's own thread-local, which the poll below initialises.
        HELD.with(|held| {
            let mut fut = Box::pin(pending_holding(guard).with_log_context(request_ctx("r-exit")));
            let mut cx = Context::from_waker(futures::task::noop_waker_ref());
            assert!(fut.as_mut().poll(&mut cx).is_pending());
            *held.borrow_mut() = Some(fut);
        });
    })
    .join();
    assert!(joined.is_ok(), "the thread panicked");
    // The line is written, with or without the request id (the context's thread-local may
    // already be gone).
    let drops = drops(&memory);
    assert_eq!(drops.len(), 1, "{drops:?}");
    assert_eq!(drops[0].0, "thread exit");
}
