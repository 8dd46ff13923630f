//! The `log` bridge: records with their key-values typed, levels, target, location, request
//! context; `enabled` and `log`'s maximum level; and, with the `tracing` and `tower` features,
//! a real axum app on loopback where tower-http's events, a handler's `tracing` event and a
//! helper's `log` record all come out of kakashi with the request's id. Every check parses the
//! JSON lines a pipeline wrote.
//!
//! `log` has one logger per process: this binary installs the bridge once (see `setup`), and
//! the tests that log through it or change its pipeline's level take `SERIAL`.

#![cfg(feature = "log")]

mod common;

use std::sync::OnceLock;

use kakashi::format::Json;
use kakashi::log::Bridge;
use kakashi::write::MemoryWriter;
use kakashi::{context, get_logger, Level, LogContext, Pipeline, PipelineConfig, Writer};
use log::{LevelFilter, Log};
use serde_json::Value as JsonValue;

type Record = serde_json::Map<String, JsonValue>;

struct Setup {
    /// The installed bridge's pipeline: synchronous, JSON to `memory`, at trace.
    pipeline: Pipeline,
    memory: MemoryWriter,
    /// What the global pipeline (synchronous, JSON, at info) wrote.
    global: MemoryWriter,
}

/// Serialises the tests that log through the installed bridge or change its level.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn config(memory: &MemoryWriter, level: Level) -> PipelineConfig {
    PipelineConfig::builder()
        .min_level(level)
        .formatter(Json::new().with_location(true))
        .writer(Writer::memory(memory))
        .build()
        .unwrap()
}

fn setup() -> &'static Setup {
    static SETUP: OnceLock<Setup> = OnceLock::new();
    SETUP.get_or_init(|| {
        // Off any runtime, so that both pipelines are synchronous: written as records are
        // logged, whichever test's runtime is gone.
        std::thread::spawn(|| {
            let global = MemoryWriter::new();
            std::mem::forget(kakashi::try_init(config(&global, Level::Info)).unwrap());

            let memory = MemoryWriter::new();
            let (pipeline, guard) =
                kakashi::SyncPipeline::start(config(&memory, Level::Trace)).unwrap();
            std::mem::forget(guard);
            Bridge::for_pipeline(&pipeline).install().unwrap();
            assert_eq!(log::max_level(), LevelFilter::Trace);

            #[cfg(feature = "tracing")]
            {
                use tracing_subscriber::layer::SubscriberExt;
                let subscriber =
                    tracing_subscriber::registry().with(kakashi::tracing::layer_for(&pipeline));
                tracing::subscriber::set_global_default(subscriber).unwrap();
            }
            Setup {
                pipeline,
                memory,
                global,
            }
        })
        .join()
        .unwrap()
    })
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

/// The records of logger `logger`.
fn of_logger(memory: &MemoryWriter, logger: &str) -> Vec<Record> {
    records(memory)
        .into_iter()
        .filter(|r| r["logger"] == logger)
        .collect()
}

#[test]
fn key_values_are_forwarded_typed_with_message_level_target_and_location() {
    let setup = setup();
    let _serial = SERIAL.blocking_lock();
    let line = line!() + 1;
    log::warn!(
        target: "lb::kv",
        n = 3,
        neg = -4,
        big = u64::MAX,
        ratio = 0.5,
        ok = true,
        c = 'x',
        name = "ann \"the\" admin",
        items:? = vec![1, 2],
        shown:% = "x y";
        "hello {}", "world"
    );
    let records = of_logger(&setup.memory, "lb::kv");
    assert_eq!(records.len(), 1, "{records:#?}");
    let r = &records[0];
    assert_eq!(r["level"], "warn");
    assert_eq!(r["message"], "hello world");
    assert!(r["n"].is_u64() || r["n"].is_i64());
    assert_eq!(r["n"], 3);
    assert!(r["neg"].is_i64() && r["neg"] == -4, "{r:?}");
    assert!(r["big"].is_u64() && r["big"] == u64::MAX, "{r:?}");
    assert!(r["ratio"].is_f64() && r["ratio"] == 0.5, "{r:?}");
    assert_eq!(r["ok"], true);
    assert_eq!(r["c"], "x");
    assert_eq!(r["name"], "ann \"the\" admin");
    assert_eq!(r["items"], "[1, 2]");
    assert_eq!(r["shown"], "x y");
    assert_eq!(r["file"], file!());
    assert_eq!(r["line"], line);
    assert_eq!(r["module"], module_path!());
}

#[test]
fn levels_map_and_the_max_level_follows_the_pipeline_when_synced() {
    let setup = setup();
    let _serial = SERIAL.blocking_lock();
    let pipeline = &setup.pipeline;
    assert_eq!(kakashi::log::sync_max_level(), LevelFilter::Trace);
    log::trace!(target: "lb::levels", "t");
    log::debug!(target: "lb::levels", "d");
    log::info!(target: "lb::levels", "i");
    log::warn!(target: "lb::levels", "w");
    log::error!(target: "lb::levels", "e");

    pipeline.set_min_level(Level::Warn);
    // `log`'s maximum level is what it was at install time until synced...
    assert_eq!(log::max_level(), LevelFilter::Trace);
    // ...but the bridge checks kakashi's level itself: `enabled` and `log` say no.
    let info = log::Metadata::builder()
        .level(log::Level::Info)
        .target("lb::levels")
        .build();
    assert!(!log::logger().enabled(&info));
    log::info!(target: "lb::levels", "dropped by the bridge");
    let warn = log::Metadata::builder()
        .level(log::Level::Warn)
        .target("lb::levels")
        .build();
    assert!(log::logger().enabled(&warn));

    assert_eq!(kakashi::log::sync_max_level(), LevelFilter::Warn);
    assert_eq!(log::max_level(), LevelFilter::Warn);
    assert!(!log::log_enabled!(target: "lb::levels", log::Level::Info));
    assert!(log::log_enabled!(target: "lb::levels", log::Level::Warn));

    pipeline.set_min_level(Level::Critical); // nothing `log` makes is critical
    assert_eq!(kakashi::log::sync_max_level(), LevelFilter::Off);
    log::error!(target: "lb::levels", "dropped: critical only");

    pipeline.set_min_level(Level::Trace);
    assert_eq!(kakashi::log::sync_max_level(), LevelFilter::Trace);

    let got: Vec<String> = of_logger(&setup.memory, "lb::levels")
        .iter()
        .map(|r| format!("{} {}", r["level"].as_str().unwrap(), r["message"]))
        .collect();
    assert_eq!(
        got,
        [
            "trace \"t\"",
            "debug \"d\"",
            "info \"i\"",
            "warn \"w\"",
            "error \"e\""
        ]
    );
}

#[test]
fn a_global_bridge_follows_the_levels_of_the_loggers_named_by_targets() {
    let setup = setup();
    let _serial = SERIAL.blocking_lock();
    let bridge = Bridge::new(); // to the global pipeline (at info); not installed
    get_logger("lb::loud").set_level(Some(Level::Trace));
    get_logger("lb::quiet").set_level(Some(Level::Error));
    let meta = |level, target| log::Metadata::builder().level(level).target(target).build();
    assert!(bridge.enabled(&meta(log::Level::Trace, "lb::loud")));
    assert!(!bridge.enabled(&meta(log::Level::Warn, "lb::quiet")));
    assert!(bridge.enabled(&meta(log::Level::Error, "lb::quiet")));
    assert!(!bridge.enabled(&meta(log::Level::Debug, "lb::other")));
    assert!(bridge.enabled(&meta(log::Level::Info, "lb::other")));
    assert_eq!(bridge.max_level(), LevelFilter::Info);

    let pairs = [("k", 1)];
    let dynamic_file = String::from("src/made_up_at_run_time.rs");
    let emit = |level, target: &str, message: &str| {
        bridge.log(
            &log::Record::builder()
                .args(format_args!("{message}"))
                .level(level)
                .target(target)
                .module_path_static(Some("lb::module"))
                .file(Some(&dynamic_file)) // not 'static: the location has no file
                .line(Some(7))
                .key_values(&pairs)
                .build(),
        );
    };
    emit(log::Level::Debug, "lb::loud", "loud debug");
    emit(log::Level::Warn, "lb::quiet", "quiet warn");
    emit(log::Level::Debug, "lb::other", "other debug");
    emit(log::Level::Info, "lb::other", "other info");

    let got: Vec<Record> = records(&setup.global)
        .into_iter()
        // Not `lb::dir::…`: the directives test logs those to the global pipeline too, before
        // or after this one.
        .filter(|r| {
            let logger = r["logger"].as_str().unwrap();
            logger.starts_with("lb::") && !logger.starts_with("lb::dir::")
        })
        .collect();
    let messages: Vec<&str> = got.iter().map(|r| r["message"].as_str().unwrap()).collect();
    assert_eq!(messages, ["loud debug", "other info"]);
    assert_eq!(got[0]["k"], 1);
    assert_eq!(got[0]["module"], "lb::module");
    assert_eq!(got[0]["file"], "");
    assert_eq!(got[0]["line"], 7);
    assert!(of_logger(&setup.memory, "lb::loud").is_empty());
}

#[test]
fn installing_again_fails_and_the_first_bridge_stays() {
    let setup = setup();
    let _serial = SERIAL.blocking_lock();
    assert!(kakashi::log::init().is_err());
    assert!(Bridge::new().install().is_err());
    log::info!(target: "lb::again", "still here");
    assert_eq!(of_logger(&setup.memory, "lb::again").len(), 1);
    assert!(of_logger(&setup.global, "lb::again").is_empty());
}

#[test]
fn directives_decide_for_bridged_records_and_the_max_level_follows_them() {
    let setup = setup();
    let _serial = SERIAL.blocking_lock();
    let handle = kakashi::directives::handle();
    /// Clears the directives even when an assertion fails, for the other tests.
    struct Clear;
    impl Drop for Clear {
        fn drop(&mut self) {
            kakashi::directives::handle().clear();
        }
    }
    let _clear = Clear;
    handle.set_directives("warn,lb::dir::loud=debug").unwrap();
    // The bridge's hook kept `log`'s maximum level in step.
    assert_eq!(log::max_level(), LevelFilter::Debug);
    log::trace!(target: "lb::dir::loud", "loud trace");
    log::debug!(target: "lb::dir::loud::db", "loud debug");
    log::info!(target: "lb::dir::other", "other info");
    log::warn!(target: "lb::dir::other", "other warn");

    // A logger's own level still wins (the global bridge asks `get_logger(target)`).
    get_logger("lb::dir::own").set_level(Some(Level::Trace));
    let meta = |level, target| log::Metadata::builder().level(level).target(target).build();
    assert!(Bridge::new().enabled(&meta(log::Level::Trace, "lb::dir::own")));
    assert!(!Bridge::new().enabled(&meta(log::Level::Info, "lb::dir::none")));

    #[cfg(feature = "tracing")]
    {
        use tracing_subscriber::layer::SubscriberExt;
        let for_pipeline =
            tracing_subscriber::registry().with(kakashi::tracing::layer_for(&setup.pipeline));
        tracing::subscriber::with_default(for_pipeline, || {
            tracing::debug!(target: "lb::dir::loud", "tracing loud debug");
            tracing::info!(target: "lb::dir::other", "tracing other info");
        });
        let global = tracing_subscriber::registry().with(kakashi::tracing::layer());
        tracing::subscriber::with_default(global, || {
            tracing::debug!(target: "lb::dir::loud", "global loud debug");
            tracing::info!(target: "lb::dir::other", "global other info");
            tracing::trace!(target: "lb::dir::own", "global own trace");
        });
    }

    handle.clear();
    assert_eq!(
        log::max_level(),
        LevelFilter::Trace,
        "back to the pipeline's"
    );
    log::info!(target: "lb::dir::other", "other info, cleared");

    let messages = |memory: &MemoryWriter| -> Vec<String> {
        records(memory)
            .iter()
            .filter(|r| r["logger"].as_str().unwrap().starts_with("lb::dir::"))
            .map(|r| r["message"].as_str().unwrap().to_owned())
            .collect()
    };
    let mut want = vec!["loud debug", "other warn"];
    if cfg!(feature = "tracing") {
        want.push("tracing loud debug");
    }
    want.push("other info, cleared");
    assert_eq!(messages(&setup.memory), want);
    if cfg!(feature = "tracing") {
        assert_eq!(
            messages(&setup.global),
            ["global loud debug", "global own trace"]
        );
    }
}

#[tokio::test]
async fn log_records_carry_the_request_context() {
    let setup = setup();
    let _serial = SERIAL.lock().await;
    let ctx = LogContext::new()
        .with_request_id("r-log")
        .with_user_id("u-1");
    context::scope(ctx, async {
        tokio::task::yield_now().await;
        log::info!(target: "lb::ctx", n = 1; "in scope");
    })
    .await;
    log::info!(target: "lb::ctx", n = 2; "outside");
    let records = of_logger(&setup.memory, "lb::ctx");
    assert_eq!(records.len(), 2, "{records:#?}");
    assert_eq!(records[0]["request_id"], "r-log");
    assert_eq!(records[0]["user_id"], "u-1");
    assert_eq!(records[0]["n"], 1);
    assert!(records[1].get("request_id").is_none());
}

#[cfg(feature = "tracing")]
#[test]
fn tracing_init_fails_when_a_global_subscriber_is_set() {
    setup();
    assert!(kakashi::tracing::init().is_err());
}

/// A real axum app on loopback behind `RequestLogLayer` and tower-http's `TraceLayer`, with
/// the tracing layer and the log bridge installed.
#[cfg(all(feature = "tracing", feature = "tower"))]
mod axum_app {
    use std::net::SocketAddr;
    use std::time::{Duration, Instant};

    use axum::extract::{ConnectInfo, Path};
    use axum::http::Request;
    use axum::routing::get;
    use axum::Router;
    use http_body_util::{BodyExt, Empty};
    use hyper::body::Bytes;
    use hyper_util::client::legacy::Client;
    use hyper_util::rt::TokioExecutor;
    use kakashi::tower::RequestLogLayer;
    use tower_http::trace::TraceLayer;

    use super::*;

    /// Logs with `log`, as a library would.
    fn helper(order: u64) {
        log::info!(target: "lb::helper", order; "helper saw order {order}");
    }

    async fn order(Path(id): Path<u64>) -> String {
        tracing::info!(order = id, "handling order");
        tokio::task::yield_now().await;
        helper(id);
        format!("order {id}")
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn tower_http_events_handler_events_and_log_records_carry_the_request_id() {
        let setup = setup();
        let _serial = SERIAL.lock().await;
        let app = Router::new()
            .route("/orders/{id}", get(order))
            .layer(TraceLayer::new_for_http())
            .layer(
                RequestLogLayer::new()
                    .logger(setup.pipeline.logger("access"))
                    .peer_addr(|ext| ext.get::<ConnectInfo<SocketAddr>>().map(|info| info.0)),
            );
        let (addr, server) = crate::common::serve_on_loopback(app).await;

        let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
        for (id, request_id) in [(7, "e2e-7"), (8, "e2e-8")] {
            let request = Request::get(format!("http://{addr}/orders/{id}"))
                .header("x-request-id", request_id)
                .body(Empty::new())
                .unwrap();
            let response = client.request(request).await.unwrap();
            assert_eq!(response.status(), 200);
            let body = response.into_body().collect().await.unwrap().to_bytes();
            assert_eq!(&body[..], format!("order {id}").as_bytes());
        }

        // The access record is logged before the response head goes out; wait for it anyway.
        let deadline = Instant::now() + Duration::from_secs(10);
        while of_logger(&setup.memory, "access").len() < 2 {
            assert!(Instant::now() < deadline, "{:?}", setup.memory.lines());
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        server.abort();

        let all = records(&setup.memory);
        for (id, request_id) in [(7u64, "e2e-7"), (8, "e2e-8")] {
            let uri = format!("/orders/{id}");
            let of_request: Vec<&Record> = all
                .iter()
                .filter(|r| r.get("request_id").and_then(JsonValue::as_str) == Some(request_id))
                .collect();
            let find = |logger: &str| -> &Record {
                let found: Vec<&&Record> = of_request
                    .iter()
                    .filter(|r| r["logger"] == logger)
                    .collect();
                assert_eq!(found.len(), 1, "{logger} for {request_id}: {all:#?}");
                found[0]
            };

            // tower-http's events, inside its request span. (axum calls a route's service
            // when the request's future is polled, so the request event is in the context.)
            let started = find("tower_http::trace::on_request");
            assert_eq!(started["message"], "started processing request");
            assert_eq!(started["level"], "debug");
            assert_eq!(started["method"], "GET");
            assert_eq!(started["uri"], uri);
            assert_eq!(started["version"], "HTTP/1.1");

            let response = find("tower_http::trace::on_response");
            assert_eq!(response["message"], "finished processing request");
            assert_eq!(response["level"], "debug");
            assert_eq!(response["status"], 200);
            assert_eq!(response["method"], "GET");
            assert_eq!(response["uri"], uri);

            // The handler's tracing event: its fields, the span's, the request context's.
            let handler = find("log_bridge::axum_app");
            assert_eq!(handler["message"], "handling order");
            assert_eq!(handler["order"], id);
            assert_eq!(handler["method"], "GET");
            assert_eq!(handler["uri"], uri);
            // The route template, with the `axum` feature.
            assert_eq!(handler["access"], "GET /orders/{id}");
            assert_eq!(handler["ip"], "127.0.0.1");

            // The helper's log record.
            let helper = find("lb::helper");
            assert_eq!(helper["message"], format!("helper saw order {id}"));
            assert_eq!(helper["order"], id);

            let access = find("access");
            assert_eq!(access["status"], 200);
        }
    }
}
