//! Redaction: the values of fields named `password`, `authorization`, `cookie`, `set-cookie`
//! and `token` (or the configured names) are written `[redacted]` by every formatter, from
//! every source of fields: the call site, enrichers, the context (custom fields included), and
//! the `tracing` and `log` bridges. Every check reads the bytes a pipeline wrote and parses them.

mod common;

use std::sync::Arc;

use kakashi::format::{ColorMode, Console, Formatter, Json, Logfmt, Redaction};
use kakashi::write::MemoryWriter;
use kakashi::{
    context, info, Enricher, Level, LogContext, Pipeline, PipelineConfig, PipelineGuard,
    SyncPipeline, Writer,
};

/// Secrets logged in the tests: none may reach the output.
const SECRETS: [&str; 6] = [
    "hunter2",
    "Bearer abc.def",
    "sid=42",
    "sid=43; HttpOnly",
    "tok-123",
    "enriched-secret",
];

fn pipeline(formatter: Arc<dyn Formatter>) -> (Pipeline, PipelineGuard, MemoryWriter) {
    let memory = MemoryWriter::new();
    let config = PipelineConfig::builder()
        .min_level(Level::Trace)
        .formatter_arc(formatter)
        .enricher(Enricher::field("Token", "enriched-secret"))
        .writer(Writer::memory(&memory))
        .build()
        .unwrap();
    let (pipeline, guard) = SyncPipeline::start(config).unwrap();
    (pipeline, guard, memory)
}

fn assert_no_secret(memory: &MemoryWriter) {
    let text = String::from_utf8(memory.contents()).unwrap();
    for secret in SECRETS {
        assert!(!text.contains(secret), "{secret:?} in {text}");
    }
}

/// Logs the same record (call-site secrets, a context with a custom secret, an enriched
/// secret) through a pipeline with `formatter`; returns the line.
fn log_secrets(formatter: Arc<dyn Formatter>) -> String {
    let (pipeline, _guard, memory) = pipeline(formatter);
    let log = pipeline.logger("auth");
    let ctx = LogContext::new()
        .with_request_id("r-1")
        .with_field("cookie", "sid=42");
    context::sync_scope(ctx, || {
        info!(log, "login"; user = "ann", password = "hunter2", Authorization = "Bearer abc.def",
              set_cookie = "sid=43; HttpOnly", TOKEN = "tok-123", tokens = 3);
    });
    assert_no_secret(&memory);
    let lines = memory.lines();
    assert_eq!(lines.len(), 1, "{lines:?}");
    lines[0].clone()
}

#[test]
fn every_formatter_redacts_call_site_enriched_and_context_fields() {
    let line = log_secrets(Arc::new(Json::new()));
    let r: serde_json::Value = serde_json::from_str(&line).unwrap();
    for key in ["password", "Authorization", "set_cookie", "TOKEN", "cookie"] {
        assert_eq!(r[key], "[redacted]", "{key}: {line}");
    }
    // JSON keys are exact strings: the enriched `Token` and the call site's `TOKEN` are two
    // members, both redacted.
    assert_eq!(r["Token"], "[redacted]", "{line}");
    assert_eq!(r["user"], "ann");
    assert_eq!(r["tokens"], 3, "a longer name is not redacted");
    assert_eq!(r["request_id"], "r-1");

    let line = log_secrets(Arc::new(Logfmt::new()));
    let pairs = common::parse_logfmt(line.trim_end());
    for key in ["password", "Authorization", "set_cookie", "TOKEN", "cookie"] {
        assert_eq!(
            common::get(&pairs, key),
            Some("[redacted]"),
            "{key}: {line}"
        );
    }
    assert_eq!(common::get(&pairs, "user"), Some("ann"));
    assert_eq!(common::get(&pairs, "tokens"), Some("3"));

    let line = log_secrets(Arc::new(Console::new().colors(ColorMode::Never)));
    for pair in [
        " password=[redacted]",
        " Authorization=[redacted]",
        " set_cookie=[redacted]",
        " TOKEN=[redacted]",
        " cookie=[redacted]",
        " user=ann",
        " tokens=3",
    ] {
        assert!(line.contains(pair), "{pair:?} not in {line:?}");
    }
    let colored = log_secrets(Arc::new(Console::new().colors(ColorMode::Always)));
    assert!(
        colored.contains("password=\x1b[0m[redacted]"),
        "{colored:?}"
    );
}

#[test]
fn configured_names_replace_the_defaults_and_none_turns_redaction_off() {
    let only_ssn = Redaction::names(["ssn", "Api-Key"]);
    for formatter in [
        Arc::new(Json::new().redaction(only_ssn.clone())) as Arc<dyn Formatter>,
        Arc::new(Logfmt::new().redaction(only_ssn.clone())),
        Arc::new(
            Console::new()
                .colors(ColorMode::Never)
                .redaction(only_ssn.clone()),
        ),
    ] {
        let (pipeline, _guard, memory) = pipeline(formatter);
        let log = pipeline.logger("cfg");
        info!(log, "x"; ssn = "078-05-1120", api_key = "k-1", password = "pw-visible");
        let text = String::from_utf8(memory.contents()).unwrap();
        assert!(
            !text.contains("078-05-1120") && !text.contains("k-1"),
            "{text}"
        );
        assert!(text.contains("pw-visible"), "{text}");
        assert_eq!(text.matches("[redacted]").count(), 2, "{text}");
    }
    let (pipeline, _guard, memory) = pipeline(Arc::new(Json::new().redaction(Redaction::none())));
    info!(pipeline.logger("off"), "x"; password = "pw-visible");
    let r: serde_json::Value = serde_json::from_str(&memory.lines()[0]).unwrap();
    assert_eq!(r["password"], "pw-visible");
    assert_eq!(r["Token"], "enriched-secret");
}

#[cfg(feature = "tracing")]
#[test]
fn tracing_event_and_span_fields_are_redacted() {
    use tracing_subscriber::layer::SubscriberExt;

    for formatter in [
        Arc::new(Json::new()) as Arc<dyn Formatter>,
        Arc::new(Logfmt::new()),
    ] {
        let is_json = format!("{formatter:?}").starts_with("Json");
        let (pipeline, _guard, memory) = pipeline(formatter);
        let subscriber =
            tracing_subscriber::registry().with(kakashi::tracing::layer_for(&pipeline));
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("session", cookie = "sid=42", user = "ann");
            let _entered = span.enter();
            tracing::info!(
                password = "hunter2",
                authorization = %"Bearer abc.def",
                token = ?"tok-123",
                attempt = 2,
                "login"
            );
        });
        assert_no_secret(&memory);
        let lines = memory.lines();
        assert_eq!(lines.len(), 1, "{lines:?}");
        if is_json {
            let r: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
            for key in ["password", "authorization", "token", "cookie", "Token"] {
                assert_eq!(r[key], "[redacted]", "{key}: {r}");
            }
            assert_eq!(r["user"], "ann");
            assert_eq!(r["attempt"], 2);
            assert_eq!(r["message"], "login");
        } else {
            let pairs = common::parse_logfmt(lines[0].trim_end());
            for key in ["password", "authorization", "token", "cookie", "Token"] {
                assert_eq!(common::get(&pairs, key), Some("[redacted]"), "{key}");
            }
            assert_eq!(common::get(&pairs, "attempt"), Some("2"));
        }
    }
}

#[cfg(feature = "log")]
#[test]
fn log_record_key_values_are_redacted() {
    use log::Log;

    let (pipeline, _guard, memory) = pipeline(Arc::new(Json::new()));
    // The bridge is used directly rather than installed: `log` has one logger per process.
    let bridge = kakashi::log::Bridge::for_pipeline(&pipeline);
    let kvs: [(&str, &str); 4] = [
        ("password", "hunter2"),
        ("Set-Cookie", "sid=43; HttpOnly"),
        ("authorization", "Bearer abc.def"),
        ("user", "ann"),
    ];
    bridge.log(
        &log::Record::builder()
            .level(log::Level::Warn)
            .target("auth::log")
            .args(format_args!("login"))
            .key_values(&kvs)
            .build(),
    );
    assert_no_secret(&memory);
    let lines = memory.lines();
    assert_eq!(lines.len(), 1, "{lines:?}");
    let r: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
    for key in ["password", "Set-Cookie", "authorization", "Token"] {
        assert_eq!(r[key], "[redacted]", "{key}: {r}");
    }
    assert_eq!(r["user"], "ann");
    assert_eq!(r["logger"], "auth::log");
}

/// Through the async pipeline on the current runtime: redacted like the synchronous one.
async fn redacted_through_the_async_pipeline() {
    let (memory, pipeline, guard) = common::json_memory_pipeline();
    let log = pipeline.logger("async");
    let ctx = LogContext::new().with_field("Set-Cookie", "sid=43; HttpOnly");
    context::scope(ctx, async {
        info!(log, "login"; password = "hunter2", user = "ann");
    })
    .await;
    guard.shutdown().await;
    assert_no_secret(&memory);
    let r: serde_json::Value = serde_json::from_str(&memory.lines()[0]).unwrap();
    assert_eq!(r["password"], "[redacted]");
    assert_eq!(r["Set-Cookie"], "[redacted]");
    assert_eq!(r["user"], "ann");
}

#[tokio::test]
async fn redacted_on_a_current_thread_runtime() {
    redacted_through_the_async_pipeline().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redacted_on_a_multi_thread_runtime() {
    redacted_through_the_async_pipeline().await;
}

#[test]
fn redacted_on_a_runtime_without_the_time_driver() {
    tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .unwrap()
        .block_on(redacted_through_the_async_pipeline());
}
