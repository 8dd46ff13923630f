//! The `tracing` layer: events become kakashi records with their fields typed, their level,
//! target and location, their spans' fields (innermost wins) and kakashi's request context;
//! levels are kakashi's, also when they change at run time; a warm event allocates nothing
//! (a global allocator counts per thread). Every check parses the JSON lines a pipeline wrote.
//!
//! Tests set their subscriber with `with_default` / `set_default` / `with_subscriber`, so they
//! do not fight over the global one; only `init_installs_the_global_default_subscriber` sets
//! it.

#![cfg(feature = "tracing")]

#[path = "common/counting_alloc.rs"]
mod counting_alloc;

use std::error::Error as StdError;
use std::fmt;
use std::io;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use kakashi::format::Json;
use kakashi::write::{MemoryWriter, SyncWrite};
use kakashi::{context, get_logger, Level, LogContext, Pipeline, PipelineConfig, Writer};
use serde_json::Value as JsonValue;
use tracing::instrument::WithSubscriber;
use tracing::Instrument;
use tracing_subscriber::layer::SubscriberExt;

type Record = serde_json::Map<String, JsonValue>;

fn config(memory: &MemoryWriter, level: Level) -> PipelineConfig {
    PipelineConfig::builder()
        .min_level(level)
        .formatter(Json::new().with_location(true))
        .writer(Writer::memory(memory))
        .build()
        .unwrap()
}

/// A synchronous pipeline at `level` writing JSON (with locations) to memory.
fn sync_pipeline(level: Level) -> (Pipeline, kakashi::PipelineGuard, MemoryWriter) {
    let memory = MemoryWriter::new();
    let (pipeline, guard) = kakashi::SyncPipeline::start(config(&memory, level)).unwrap();
    (pipeline, guard, memory)
}

/// Every line written so far, parsed; panics on a line that is not a JSON object.
fn records(memory: &MemoryWriter) -> Vec<Record> {
    memory
        .lines()
        .iter()
        .map(|line| match serde_json::from_str(line) {
            Ok(JsonValue::Object(record)) => record,
            other => panic!("not a JSON object {line:?}: {other:?}"),
        })
        .collect()
}

/// The records whose message is `message`; exactly one expected.
fn the_one(records: &[Record], message: &str) -> Record {
    let found: Vec<&Record> = records.iter().filter(|r| r["message"] == message).collect();
    assert_eq!(found.len(), 1, "{message:?} in {records:#?}");
    found[0].clone()
}

fn subscriber_for(pipeline: &Pipeline) -> impl tracing::Subscriber + Send + Sync {
    tracing_subscriber::registry().with(kakashi::tracing::layer_for(pipeline))
}

/// The global pipeline of this test binary (set once, synchronous, JSON to memory at info).
fn global_memory() -> &'static MemoryWriter {
    static MEMORY: OnceLock<MemoryWriter> = OnceLock::new();
    MEMORY.get_or_init(|| {
        let memory = MemoryWriter::new();
        let config = config(&memory, Level::Info);
        // Off any runtime: a synchronous pipeline, written as records are logged.
        let guard = std::thread::spawn(move || kakashi::try_init(config).unwrap())
            .join()
            .unwrap();
        std::mem::forget(guard);
        memory
    })
}

#[derive(Debug)]
struct Inner;

impl fmt::Display for Inner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("disk full")
    }
}

impl StdError for Inner {}

#[derive(Debug)]
struct Outer(Inner);

impl fmt::Display for Outer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("save failed")
    }
}

impl StdError for Outer {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        Some(&self.0)
    }
}

/// Counts how often it is formatted.
struct Counted(Arc<AtomicUsize>);

impl fmt::Debug for Counted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fetch_add(1, Ordering::SeqCst);
        f.write_str("counted")
    }
}

#[test]
fn event_fields_keep_their_types_with_message_target_level_and_location() {
    let (pipeline, _guard, memory) = sync_pipeline(Level::Trace);
    let error = Outer(Inner);
    let line = tracing::subscriber::with_default(subscriber_for(&pipeline), || {
        let line = line!() + 1;
        tracing::warn!(
            target: "shop::cart",
            count = -3i64,
            big = u64::MAX,
            ratio = 0.25,
            ok = true,
            name = "ann \"the\" admin",
            items = ?vec![1, 2],
            shown = %"x y",
            error = &error as &(dyn StdError + 'static),
            "checked out {} items",
            3
        );
        line
    });

    let records = records(&memory);
    assert_eq!(records.len(), 1, "{records:#?}");
    let r = &records[0];
    assert_eq!(r["level"], "warn");
    assert_eq!(r["logger"], "shop::cart");
    assert_eq!(r["message"], "checked out 3 items");
    assert!(r["count"].is_i64() && r["count"] == -3, "{r:?}");
    assert!(r["big"].is_u64() && r["big"] == u64::MAX, "{r:?}");
    assert!(r["ratio"].is_f64() && r["ratio"] == 0.25, "{r:?}");
    assert_eq!(r["ok"], true);
    assert_eq!(r["name"], "ann \"the\" admin");
    assert_eq!(r["items"], "[1, 2]");
    assert_eq!(r["shown"], "x y");
    assert_eq!(r["error"], "save failed: disk full");
    assert_eq!(r["file"], file!());
    assert_eq!(r["line"], line);
    assert_eq!(r["module"], module_path!());
    // The message is the message, not a field.
    assert!(!memory.lines()[0].contains("\"fields.message\""));
}

#[test]
fn levels_map_one_to_one_and_an_event_without_message_has_an_empty_one() {
    let (pipeline, _guard, memory) = sync_pipeline(Level::Trace);
    tracing::subscriber::with_default(subscriber_for(&pipeline), || {
        tracing::trace!(n = 1, "t");
        tracing::debug!(n = 2, "d");
        tracing::info!(n = 3, "i");
        tracing::warn!(n = 4, "w");
        tracing::error!(n = 5, "e");
        tracing::info!(n = 6);
    });
    let got: Vec<(String, String, i64)> = records(&memory)
        .iter()
        .map(|r| {
            (
                r["level"].as_str().unwrap().to_owned(),
                r["message"].as_str().unwrap().to_owned(),
                r["n"].as_i64().unwrap(),
            )
        })
        .collect();
    let want = [
        ("trace", "t", 1),
        ("debug", "d", 2),
        ("info", "i", 3),
        ("warn", "w", 4),
        ("error", "e", 5),
        ("info", "", 6),
    ];
    let want: Vec<(String, String, i64)> = want
        .iter()
        .map(|(l, m, n)| (l.to_string(), m.to_string(), *n))
        .collect();
    assert_eq!(got, want);
}

#[test]
fn disabled_levels_produce_nothing_and_evaluate_nothing_until_the_level_changes() {
    let (pipeline, _guard, memory) = sync_pipeline(Level::Info);
    let formatted = Arc::new(AtomicUsize::new(0));
    tracing::subscriber::with_default(subscriber_for(&pipeline), || {
        let emit = |tag: &str| {
            tracing::trace!(tag, c = ?Counted(formatted.clone()), "trace");
            tracing::debug!(tag, c = ?Counted(formatted.clone()), "debug");
            tracing::info!(tag, "info");
            tracing::warn!(tag, "warn");
        };
        assert!(!tracing::enabled!(tracing::Level::DEBUG));
        assert!(tracing::enabled!(tracing::Level::INFO));
        emit("first");
        assert_eq!(
            formatted.load(Ordering::SeqCst),
            0,
            "a disabled field was formatted"
        );

        // A span at a level that is not logged is not created: its fields are not carried.
        let quiet = tracing::debug_span!("quiet", hidden = 1);
        assert!(quiet.is_disabled());
        quiet.in_scope(|| tracing::info!("inside quiet"));

        // kakashi's levels change at run time; `tracing` must not have cached the answer.
        pipeline.set_min_level(Level::Debug);
        assert!(tracing::enabled!(tracing::Level::DEBUG));
        emit("second");
        pipeline.set_min_level(Level::Error);
        emit("third");
    });
    let got: Vec<String> = records(&memory)
        .iter()
        .map(|r| {
            let tag = r.get("tag").and_then(JsonValue::as_str).unwrap_or("-");
            format!("{tag} {}", r["message"])
        })
        .collect();
    assert_eq!(
        got,
        [
            "first \"info\"",
            "first \"warn\"",
            "- \"inside quiet\"",
            "second \"debug\"",
            "second \"info\"",
            "second \"warn\"",
        ]
    );
    assert!(!memory.lines()[2].contains("hidden"));
    assert_eq!(
        formatted.load(Ordering::SeqCst),
        1,
        "the enabled debug field"
    );
}

#[test]
fn span_fields_are_flattened_one_key_each_innermost_wins() {
    let (pipeline, _guard, memory) = sync_pipeline(Level::Trace);
    tracing::subscriber::with_default(subscriber_for(&pipeline), || {
        let outer = tracing::info_span!("outer", a = "outer", shared = "outer", n = 1u64);
        let _outer = outer.enter();
        let inner = tracing::info_span!(
            "inner",
            shared = "inner",
            b = true,
            late = tracing::field::Empty,
            opt = ?Some(1)
        );
        let _inner = inner.enter();
        inner.record("late", 5i64);
        outer.record("n", 2u64); // recorded into the parent after the child was made
        tracing::info!(own = 1, "nested");
        tracing::info!(a = "event", "event wins");
        tracing::info!(parent: &outer, "explicit parent");
        tracing::info!(parent: None, "no parent");
    });

    let lines = memory.lines();
    let records = records(&memory);
    let nested = the_one(&records, "nested");
    assert_eq!(nested["own"], 1);
    assert_eq!(nested["a"], "outer");
    assert_eq!(nested["shared"], "inner");
    assert_eq!(nested["b"], true);
    assert!(nested["late"].is_i64() && nested["late"] == 5);
    assert!(nested["n"].is_u64() && nested["n"] == 2);
    assert_eq!(nested["opt"], "Some(1)");
    // One key each: serde_json would keep the last of duplicates, so count in the bytes.
    assert_eq!(lines[0].matches("\"shared\":").count(), 1, "{}", lines[0]);
    // The event's fields first, then the innermost span's, then its parent's.
    let pos = |k: &str| lines[0].find(&format!("\"{k}\":")).unwrap();
    assert!(pos("own") < pos("shared") && pos("shared") < pos("b") && pos("b") < pos("a"));

    let event_wins = the_one(&records, "event wins");
    assert_eq!(event_wins["a"], "event");
    assert_eq!(lines[1].matches("\"a\":").count(), 1, "{}", lines[1]);

    let explicit = the_one(&records, "explicit parent");
    assert_eq!(explicit["shared"], "outer");
    assert!(explicit.get("b").is_none());

    let none = the_one(&records, "no parent");
    assert!(none.get("a").is_none() && none.get("shared").is_none());
}

#[test]
fn a_name_given_twice_writes_the_last_and_each_value_is_formatted_once_for_all_sinks() {
    let json = MemoryWriter::new();
    let logfmt = MemoryWriter::new();
    let config = PipelineConfig::builder()
        .min_level(Level::Trace)
        .formatter(Json::new())
        .writer(Writer::memory(&json))
        .writer(Writer::memory(&logfmt).formatter(kakashi::format::Logfmt::new()))
        .build()
        .unwrap();
    let (pipeline, _guard) = kakashi::SyncPipeline::start(config).unwrap();
    let formatted = Arc::new(AtomicUsize::new(0));
    tracing::subscriber::with_default(subscriber_for(&pipeline), || {
        let span = tracing::info_span!("request", a = "span", b = "span");
        let _entered = span.enter();
        tracing::info!(
            a = 1,
            c = ?Counted(formatted.clone()),
            a = 2,
            "twice {}",
            "said"
        );
    });

    assert_eq!(
        formatted.load(Ordering::SeqCst),
        1,
        "formatted once for two sinks"
    );
    let lines = json.lines();
    let records = records(&json);
    let r = the_one(&records, "twice said");
    // As for a native record, the last of a repeated name; the span's `a` is hidden.
    assert_eq!(r["a"], 2, "{}", lines[0]);
    assert_eq!(lines[0].matches("\"a\":").count(), 1, "{}", lines[0]);
    assert_eq!(r["b"], "span");
    assert_eq!(r["c"], "counted");
    let text = logfmt.lines();
    assert_eq!(text.len(), 1);
    assert!(
        text[0].contains(" msg=\"twice said\" ") && text[0].ends_with(" c=counted a=2 b=span"),
        "{}",
        text[0]
    );
}

/// The line without its timestamp: what follows the first `" "` (logfmt, console) or the
/// timestamp's value (JSON).
fn without_timestamp(line: &str) -> &str {
    match line.find("\",\"level\"") {
        Some(at) if line.starts_with("{\"timestamp\"") => &line[at..],
        _ => line.split_once(' ').map_or(line, |(_, rest)| rest),
    }
}

#[test]
fn a_bridged_message_is_written_byte_for_byte_as_a_native_one_in_every_formatter() {
    use kakashi::format::{ColorMode, Console, Logfmt};

    let writers = [
        MemoryWriter::new(),
        MemoryWriter::new(),
        MemoryWriter::new(),
    ];
    let config = PipelineConfig::builder()
        .min_level(Level::Trace)
        .writer(Writer::memory(&writers[0]).formatter(Logfmt::new()))
        .writer(Writer::memory(&writers[1]).formatter(Json::new()))
        .writer(Writer::memory(&writers[2]).formatter(Console::new().colors(ColorMode::Never)))
        .build()
        .unwrap();
    let (pipeline, _guard) = kakashi::SyncPipeline::start(config).unwrap();
    let native = pipeline.logger("same");
    let hostile = "x \"y\"\nts=0 level=error msg=forged\t\u{7}\u{202e}é";
    tracing::subscriber::with_default(subscriber_for(&pipeline), || {
        kakashi::info!(native, "a {} b", hostile);
        tracing::info!(target: "same", "a {} b", hostile);
        kakashi::info!(native, "plain text");
        tracing::info!(target: "same", "plain text");
        kakashi::info!(native, "");
        tracing::info!(target: "same", "");
    });
    for writer in &writers {
        let lines = writer.lines();
        assert_eq!(lines.len(), 6, "{lines:#?}");
        for pair in lines.chunks(2) {
            assert_eq!(
                without_timestamp(&pair[0]),
                without_timestamp(&pair[1]),
                "native, then bridged"
            );
        }
        assert!(
            !lines[1].contains('\n') && !lines[1].contains("\u{202e}"),
            "{}",
            lines[1]
        );
    }
}

#[test]
fn many_fields_spill_to_the_heap_and_are_all_written() {
    let (pipeline, _guard, memory) = sync_pipeline(Level::Trace);
    tracing::subscriber::with_default(subscriber_for(&pipeline), || {
        macro_rules! wide_span {
            ($name:literal, $p:ident) => {
                tracing::info_span!(
                    $name,
                    $p.f0 = 0,
                    $p.f1 = 1,
                    $p.f2 = 2,
                    $p.f3 = 3,
                    $p.f4 = 4,
                    $p.f5 = 5,
                    $p.f6 = 6,
                    $p.f7 = 7,
                    $p.f8 = 8,
                    $p.f9 = 9,
                    $p.f10 = 10,
                    $p.f11 = 11,
                    $p.f12 = 12,
                    $p.f13 = 13,
                    $p.f14 = 14,
                    $p.f15 = 15,
                    $p.f16 = 16,
                    $p.f17 = 17,
                    $p.f18 = 18,
                    $p.f19 = 19
                )
            };
        }
        let a = wide_span!("a", a);
        let _a = a.enter();
        let b = wide_span!("b", b);
        let _b = b.enter();
        let c = wide_span!("c", c);
        let _c = c.enter();
        tracing::info!(
            e.f0 = 0,
            e.f1 = 1,
            e.f2 = 2,
            e.f3 = 3,
            e.f4 = 4,
            e.f5 = 5,
            e.f6 = 6,
            e.f7 = 7,
            e.f8 = 8,
            e.f9 = 9,
            s = "a string",
            "wide"
        );
    });
    let records = records(&memory);
    let wide = the_one(&records, "wide");
    for prefix in ["a", "b", "c"] {
        for i in 0..20 {
            assert_eq!(wide[&format!("{prefix}.f{i}")], i, "{prefix}.f{i}");
        }
    }
    for i in 0..10 {
        assert_eq!(wide[&format!("e.f{i}")], i);
    }
    assert_eq!(wide["s"], "a string");
}

/// Logs from its `Debug` impl, while the outer record is being formatted.
struct Chatty;

impl fmt::Debug for Chatty {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        tracing::info!(inner_s = "inner string", "from inside Debug");
        f.write_str("chatty")
    }
}

#[test]
fn an_event_logged_while_another_is_formatted_leaves_the_record_whole() {
    let (pipeline, _guard, memory) = sync_pipeline(Level::Trace);
    tracing::subscriber::with_default(subscriber_for(&pipeline), || {
        tracing::info!(before = "outer before", c = ?Chatty, after = "outer after", "outer");
        tracing::info!(s = "next", "next");
    });
    let records = records(&memory);
    let outer = the_one(&records, "outer");
    assert_eq!(outer["before"], "outer before");
    assert_eq!(outer["c"], "chatty");
    assert_eq!(outer["after"], "outer after");
    assert_eq!(the_one(&records, "next")["s"], "next");
    // `tracing` itself drops an event dispatched from inside a dispatch; should it ever
    // deliver it, it must be whole too.
    if let Some(inner) = records.iter().find(|r| r["message"] == "from inside Debug") {
        assert_eq!(inner["inner_s"], "inner string");
    }
}

/// `future` in `span`, with the current subscriber, ready to spawn. The span is entered and
/// dropped inside the task's poll, where `with_current_subscriber` has set the subscriber:
/// the registry closes a span's parent through the *current* subscriber, which on a worker
/// thread outside the poll would be the global one.
fn in_span<F>(future: F, span: tracing::Span) -> impl std::future::Future<Output = F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    async move { future.instrument(span).await }.with_current_subscriber()
}

#[tracing::instrument(fields(order = 7))]
async fn handle(user: u64, log_spawned: bool) {
    tracing::info!("before await");
    tokio::task::yield_now().await;
    tokio::time::sleep(Duration::from_millis(1)).await;
    tracing::info!(step = "after", "after await");
    let job = tracing::info_span!("job", job = "j-1");
    // `context::spawn` carries kakashi's context into the task; `instrument` the span.
    let spawned = async {
        tokio::time::sleep(Duration::from_millis(1)).await;
        tracing::info!("in spawned task");
    };
    context::spawn(in_span(spawned, job)).await.unwrap();
    if log_spawned {
        let bare = tracing::info_span!("bare", bare = true);
        let task = in_span(async { tracing::info!("spawned without context") }, bare);
        tokio::spawn(task).await.unwrap();
    }
}

/// The async scenario: an instrumented fn in a request context; returns the records.
async fn async_scenario(pipeline: &Pipeline, memory: &MemoryWriter) -> Vec<Record> {
    let ctx = LogContext::new().with_request_id("r-1");
    context::scope(ctx, handle(42, true)).await;
    tracing::info!("outside the scope");
    pipeline.flush().await;
    records(memory)
}

fn check_async_scenario(records: &[Record]) {
    for message in ["before await", "after await", "in spawned task"] {
        let r = the_one(records, message);
        assert_eq!(r["request_id"], "r-1", "{message}: {r:?}");
        assert_eq!(r["user"], 42, "{message}: {r:?}");
        assert_eq!(r["order"], 7, "{message}: {r:?}");
        assert_eq!(r["log_spawned"], true, "{message}: {r:?}");
    }
    assert_eq!(the_one(records, "after await")["step"], "after");
    assert_eq!(the_one(records, "in spawned task")["job"], "j-1");
    assert!(the_one(records, "before await").get("job").is_none());

    // A plain `tokio::spawn` carries the span (instrumented) but not kakashi's context.
    let bare = the_one(records, "spawned without context");
    assert_eq!(bare["bare"], true);
    assert_eq!(bare["user"], 42);
    assert!(bare.get("request_id").is_none(), "{bare:?}");

    let outside = the_one(records, "outside the scope");
    assert!(outside.get("request_id").is_none() && outside.get("user").is_none());
}

#[tokio::test]
async fn current_thread_instrumented_fn_carries_span_fields_and_request_context() {
    let memory = MemoryWriter::new();
    let (pipeline, guard) = kakashi::AsyncPipeline::start(config(&memory, Level::Info)).unwrap();
    assert!(pipeline.is_async());
    let _default = tracing::subscriber::set_default(subscriber_for(&pipeline));
    let records = async_scenario(&pipeline, &memory).await;
    check_async_scenario(&records);
    guard.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_thread_instrumented_fn_carries_span_fields_and_request_context() {
    let memory = MemoryWriter::new();
    let (pipeline, guard) = kakashi::AsyncPipeline::start(config(&memory, Level::Info)).unwrap();
    let dispatch = tracing::Dispatch::new(subscriber_for(&pipeline));
    // Run on a worker thread, where only `with_subscriber` sets the subscriber.
    let task = {
        let (pipeline, memory) = (pipeline.clone(), memory.clone());
        tokio::spawn(
            async move { async_scenario(&pipeline, &memory).await }.with_subscriber(dispatch),
        )
    };
    let records = task.await.unwrap();
    check_async_scenario(&records);
    guard.shutdown().await;
}

#[test]
fn composes_with_an_env_filter() {
    let (pipeline, _guard, memory) = sync_pipeline(Level::Debug);
    let subscriber = tracing_subscriber::registry()
        .with(tracing_subscriber::EnvFilter::new("warn,app=trace"))
        .with(kakashi::tracing::layer_for(&pipeline));
    tracing::subscriber::with_default(subscriber, || {
        tracing::trace!(target: "app", "app trace"); // the filter lets it by, kakashi not
        tracing::debug!(target: "app", "app debug");
        tracing::info!(target: "other", "other info"); // the filter stops it
        tracing::warn!(target: "other", "other warn");
    });
    let got: Vec<String> = records(&memory)
        .iter()
        .map(|r| r["message"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(got, ["app debug", "other warn"]);
}

#[test]
fn the_global_layer_follows_the_levels_of_the_loggers_named_by_targets() {
    let memory = global_memory();
    get_logger("tl::loud").set_level(Some(Level::Trace));
    get_logger("tl::quiet").set_level(Some(Level::Error));
    let subscriber = tracing_subscriber::registry().with(kakashi::tracing::layer());
    tracing::subscriber::with_default(subscriber, || {
        tracing::debug!(target: "tl::loud", "loud debug");
        tracing::warn!(target: "tl::quiet", "quiet warn");
        tracing::error!(target: "tl::quiet", "quiet error");
        tracing::debug!(target: "tl::other", "other debug"); // the pipeline's level: info
        tracing::info!(target: "tl::other", "other info");
        assert!(tracing::enabled!(target: "tl::loud", tracing::Level::TRACE));
        assert!(!tracing::enabled!(target: "tl::quiet", tracing::Level::WARN));
    });
    let got: Vec<String> = records(memory)
        .iter()
        .filter(|r| r["logger"].as_str().unwrap().starts_with("tl::"))
        .map(|r| format!("{} {}", r["logger"].as_str().unwrap(), r["message"]))
        .collect();
    assert_eq!(
        got,
        [
            "tl::loud \"loud debug\"",
            "tl::quiet \"quiet error\"",
            "tl::other \"other info\"",
        ]
    );
}

#[test]
fn init_installs_the_global_default_subscriber() {
    let memory = global_memory();
    kakashi::tracing::init().expect("no global subscriber yet");
    // A new thread has no scoped subscriber: the global one.
    std::thread::spawn(|| tracing::info!(target: "init::test", n = 1, "via the global"))
        .join()
        .unwrap();
    let records = records(memory);
    let r = the_one(&records, "via the global");
    assert_eq!(r["logger"], "init::test");
    assert_eq!(r["n"], 1);
    assert!(
        kakashi::tracing::init().is_err(),
        "a second global subscriber"
    );
}

/// Counts the lines written to it and keeps none.
#[derive(Debug, Default)]
struct CountingSink(AtomicU64);

impl SyncWrite for CountingSink {
    fn write_lines(&self, lines: &[u8]) -> io::Result<()> {
        let count = lines.iter().filter(|&&b| b == b'\n').count();
        self.0.fetch_add(count as u64, Ordering::Relaxed);
        Ok(())
    }
}

#[test]
fn an_event_in_spans_with_context_allocates_nothing_once_warm() {
    let sink = Arc::new(CountingSink::default());
    let config = PipelineConfig::builder()
        .formatter(Json::new().with_location(true))
        .writer(Writer::sync(sink.clone()))
        .build()
        .unwrap();
    let (pipeline, _guard) = kakashi::SyncPipeline::start(config).unwrap();
    let _ctx = LogContext::new().with_request_id("req-1").enter();
    tracing::subscriber::with_default(subscriber_for(&pipeline), || {
        let outer = tracing::info_span!("outer", user = "ann", tenant = 7u64);
        let _outer = outer.enter();
        let inner = tracing::info_span!("inner", step = "pay", debug = ?Some(1));
        let _inner = inner.enter();
        let user = "ann";
        let log_batch = |from: u64, count: u64| {
            for seq in from..from + count {
                tracing::info!(
                    seq,
                    ok = true,
                    ratio = 0.5,
                    path = "/a/b",
                    hex = %format_args!("{seq:016x}"),
                    dbg = ?(seq, "x"),
                    "user {} did {}",
                    user,
                    seq
                );
            }
        };
        // Warm up: thread-locals, the text buffer, the thread's chunks, the timestamp cache.
        log_batch(0, 2_000);
        let before = counting_alloc::allocations();
        log_batch(2_000, 10_000);
        let allocated = counting_alloc::allocations() - before;
        assert_eq!(allocated, 0, "allocations in 10,000 events");
    });
    assert_eq!(sink.0.load(Ordering::Relaxed), 12_000);
}
