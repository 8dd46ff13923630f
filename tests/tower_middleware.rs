//! The tower middleware behind a real axum server on loopback, driven by a real hyper client:
//! request ids, client addresses, context in handlers and spawned tasks, access records for
//! answered, panicked and abandoned requests. Every check reads the JSON lines the pipeline
//! wrote.

#![cfg(feature = "tower")]

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, HeaderValue, Request, StatusCode};
use axum::routing::get;
use axum::Router;
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use kakashi::tower::RequestLogLayer;
use kakashi::write::MemoryWriter;
use kakashi::{context, info, LogContext, Logger, Pipeline};
use serde_json::Value;

type HttpClient = Client<HttpConnector, Empty<Bytes>>;

struct TestServer {
    addr: SocketAddr,
    pipeline: Pipeline,
    memory: MemoryWriter,
    _guard: kakashi::PipelineGuard,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl TestServer {
    /// Starts the test app on 127.0.0.1:0 with its own pipeline (JSON lines in memory) and the
    /// layer `configure` returns.
    async fn start(configure: impl FnOnce(RequestLogLayer) -> RequestLogLayer) -> TestServer {
        let (memory, pipeline, guard) = common::json_memory_pipeline();
        let layer = configure(
            RequestLogLayer::new()
                .logger(pipeline.logger("access"))
                .context(LogContext::new().with_service_name("test-svc"))
                .peer_addr(|ext| ext.get::<ConnectInfo<SocketAddr>>().map(|info| info.0)),
        );
        let app = Router::new()
            .route("/work/{n}", get(work))
            .route("/echo-id", get(echo_id))
            .route("/nested", get(nested))
            .route("/panic", get(panics))
            .route("/slow", get(slow))
            .layer(layer)
            .with_state(pipeline.logger("app"));
        let (addr, server) = common::serve_on_loopback(app).await;
        TestServer {
            addr,
            pipeline,
            memory,
            _guard: guard,
            server,
        }
    }

    fn uri(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Every line written so far, parsed.
    async fn records(&self) -> Vec<Value> {
        self.pipeline.flush().await;
        self.memory
            .lines()
            .iter()
            .map(|line| {
                serde_json::from_str(line).unwrap_or_else(|e| panic!("bad JSON {line:?}: {e}"))
            })
            .collect()
    }

    /// Waits (at most 10 s) for an access record with this request id.
    async fn access_record(&self, request_id: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let found =
                self.records().await.into_iter().find(|r| {
                    r["logger"] == "access" && r["request_id"].as_str() == Some(request_id)
                });
            if let Some(record) = found {
                return record;
            }
            assert!(
                Instant::now() < deadline,
                "no access record for {request_id}: {:?}",
                self.memory.lines()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn current_request_id() -> String {
    context::try_current()
        .and_then(|c| c.request_id().map(str::to_owned))
        .unwrap_or_default()
}

/// Three records per request: before an await, from a spawned task, after.
async fn work(State(log): State<Logger>, Path(n): Path<u64>) -> String {
    let before = current_request_id();
    info!(log, "start"; n = n, step = "start");
    tokio::task::yield_now().await;
    let child = log.clone();
    let from_child = context::spawn(async move {
        tokio::time::sleep(Duration::from_millis(1)).await;
        info!(child, "child"; n = n, step = "child");
        current_request_id()
    })
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(1)).await;
    info!(log, "end"; n = n, step = "end");
    assert_eq!(before, current_request_id());
    assert_eq!(before, from_child);
    before
}

/// The request id as the handler sees it, in the header and in the context.
async fn echo_id(State(log): State<Logger>, headers: HeaderMap) -> String {
    info!(log, "echo");
    let header = headers
        .get("x-request-id")
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .unwrap_or_default();
    format!("{header} {}", current_request_id())
}

async fn nested(State(log): State<Logger>) -> &'static str {
    let inner = LogContext::new()
        .with_user_id("u-7")
        .with_service_name("inner-svc");
    context::scope(inner, async {
        tokio::task::yield_now().await;
        info!(log, "inner");
    })
    .await;
    info!(log, "outer");
    "ok"
}

async fn panics() -> &'static str {
    panic!("handler panicked on purpose")
}

async fn slow(State(log): State<Logger>) -> &'static str {
    info!(log, "slow handler started");
    tokio::time::sleep(Duration::from_secs(60)).await;
    "too late"
}

fn client() -> HttpClient {
    Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(128)
        .build_http()
}

fn request(uri: &str, headers: &[(&str, HeaderValue)]) -> Request<Empty<Bytes>> {
    let mut builder = Request::get(uri);
    for (name, value) in headers {
        builder = builder.header(*name, value.clone());
    }
    builder.body(Empty::new()).unwrap()
}

/// Sends a request; returns the status, the echoed request id and the body.
async fn send(
    client: &HttpClient,
    uri: &str,
    headers: &[(&str, HeaderValue)],
) -> (StatusCode, String, String) {
    let response = client.request(request(uri, headers)).await.unwrap();
    let status = response.status();
    let id = response
        .headers()
        .get("x-request-id")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, id, String::from_utf8(body.to_vec()).unwrap())
}

fn id_header(id: &str) -> (&'static str, HeaderValue) {
    ("x-request-id", HeaderValue::from_str(id).unwrap())
}

fn is_generated_id(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_thousand_concurrent_requests_keep_their_own_context() {
    const REQUESTS: u64 = 1_000;
    const CONCURRENCY: u64 = 100;

    let server = Arc::new(TestServer::start(|layer| layer).await);
    let client = client();
    let mut workers = Vec::new();
    for w in 0..CONCURRENCY {
        let client = client.clone();
        let server = Arc::clone(&server);
        workers.push(tokio::spawn(async move {
            let mut n = w;
            while n < REQUESTS {
                let id = format!("load-{n}");
                let (status, echoed, body) = send(
                    &client,
                    &server.uri(&format!("/work/{n}")),
                    &[id_header(&id)],
                )
                .await;
                assert_eq!(status, StatusCode::OK);
                assert_eq!(echoed, id);
                assert_eq!(body, id, "the handler's context");
                n += CONCURRENCY;
            }
        }));
    }
    for worker in workers {
        worker.await.unwrap();
    }

    let records = server.records().await;
    assert_eq!(
        records.len() as u64,
        REQUESTS * 4,
        "3 app records + 1 access record each"
    );
    let mut steps: HashMap<u64, Vec<String>> = HashMap::new();
    let mut access = 0;
    for r in &records {
        assert_eq!(r["ip"], "127.0.0.1", "{r}");
        assert_eq!(r["service_name"], "test-svc", "{r}");
        let id = r["request_id"].as_str().unwrap();
        let n: u64 = id.strip_prefix("load-").unwrap().parse().unwrap();
        assert_eq!(r["access"], format!("GET /work/{n}"), "{r}");
        match r["logger"].as_str().unwrap() {
            "app" => {
                assert_eq!(r["n"], n, "a record carries another request's id: {r}");
                steps
                    .entry(n)
                    .or_default()
                    .push(r["step"].as_str().unwrap().to_owned());
            }
            "access" => {
                access += 1;
                assert_eq!(r["level"], "info");
                assert_eq!(r["status"], 200);
                assert_eq!(r["method"], "GET");
                assert_eq!(r["path"], format!("/work/{n}"));
                assert_eq!(r["size"], id.len());
                assert!(r["latency_ms"].as_f64().unwrap() >= 0.0);
                assert!(r.get("panic").is_none() && r.get("cancelled").is_none());
                // Once per request: the app records of this request came first.
                assert_eq!(steps.get(&n).map(Vec::len), Some(3), "{r}");
            }
            other => panic!("unexpected logger {other}"),
        }
    }
    assert_eq!(access, REQUESTS);
    assert_eq!(steps.len() as u64, REQUESTS);
    for (n, mut seen) in steps {
        seen.sort();
        assert_eq!(seen, ["child", "end", "start"], "request {n}");
    }
    let stats = server.pipeline.stats();
    assert_eq!(stats.dropped, 0);
    assert_eq!(stats.written, REQUESTS * 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_headers_are_ignored_unless_the_proxy_is_trusted() {
    let client = client();
    let spoof = [
        ("x-forwarded-for", HeaderValue::from_static("203.0.113.7")),
        ("x-real-ip", HeaderValue::from_static("198.51.100.1")),
        id_header("spoof-1"),
    ];

    let untrusting = TestServer::start(|layer| layer).await;
    send(&client, &untrusting.uri("/echo-id"), &spoof).await;
    let records = untrusting.records().await;
    assert_eq!(records.len(), 2);
    for r in &records {
        assert_eq!(r["ip"], "127.0.0.1", "spoofed header believed: {r}");
    }

    let trusting = TestServer::start(|layer| layer.trust_proxy("127.0.0.1".parse().unwrap())).await;
    let cases: [(&[(&str, &str)], &str); 5] = [
        (&[("x-forwarded-for", "203.0.113.7")], "203.0.113.7"),
        (
            // The right-most hop that is not a trusted proxy: the left ones are the client's
            // word.
            &[("x-forwarded-for", "192.0.2.66, 203.0.113.8, 127.0.0.1")],
            "203.0.113.8",
        ),
        (&[("x-real-ip", "198.51.100.9")], "198.51.100.9"),
        (&[("x-forwarded-for", "not-an-ip")], "127.0.0.1"),
        (&[], "127.0.0.1"),
    ];
    for (i, (headers, expected)) in cases.iter().enumerate() {
        let id = format!("fwd-{i}");
        let mut all = vec![id_header(&id)];
        all.extend(
            headers
                .iter()
                .map(|(k, v)| (*k, HeaderValue::from_str(v).unwrap())),
        );
        send(&client, &trusting.uri("/echo-id"), &all).await;
        let records = trusting.records().await;
        let mine: Vec<_> = records
            .iter()
            .filter(|r| r["request_id"] == id.as_str())
            .collect();
        assert_eq!(mine.len(), 2, "{records:?}");
        for r in mine {
            assert_eq!(r["ip"], *expected, "case {i}: {r}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_request_ids_are_replaced() {
    let server = TestServer::start(|layer| layer).await;
    let client = client();
    let too_long = "a".repeat(129);
    let bad: Vec<HeaderValue> = vec![
        HeaderValue::from_static("has space"),
        HeaderValue::from_static("tab\there"),
        HeaderValue::from_static("quote\"d"),
        HeaderValue::from_static("semi;colon"),
        HeaderValue::from_str(&too_long).unwrap(),
        // U+2028 LINE SEPARATOR and U+0085 NEXT LINE, as raw UTF-8 bytes.
        HeaderValue::from_bytes("line\u{2028}break".as_bytes()).unwrap(),
        HeaderValue::from_bytes("next\u{85}line".as_bytes()).unwrap(),
        HeaderValue::from_bytes(b"bytes\xff\xfe").unwrap(),
        HeaderValue::from_static(""),
    ];
    let mut generated = Vec::new();
    for value in &bad {
        let (status, echoed, body) = send(
            &client,
            &server.uri("/echo-id"),
            &[("x-request-id", value.clone())],
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert!(is_generated_id(&echoed), "{value:?} gave {echoed:?}");
        // The handler saw the new id in the header and in its context.
        assert_eq!(body, format!("{echoed} {echoed}"));
        let record = server.access_record(&echoed).await;
        assert_eq!(record["status"], 200);
        generated.push(echoed);
    }
    // No header at all: generated too.
    let (_, echoed, _) = send(&client, &server.uri("/echo-id"), &[]).await;
    assert!(is_generated_id(&echoed));
    generated.push(echoed);
    let mut unique = generated.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), generated.len(), "generated ids repeat");

    // Well-formed ids are kept, up to the length limit.
    let longest = "Ab0._:-".repeat(19)[..128].to_owned();
    let (_, echoed, body) = send(&client, &server.uri("/echo-id"), &[id_header(&longest)]).await;
    assert_eq!(echoed, longest);
    assert_eq!(body, format!("{longest} {longest}"));

    // Nothing of the rejected values reached the log.
    let text = String::from_utf8_lossy(&server.memory.contents()).into_owned();
    for needle in [
        "has space",
        "tab",
        "quote",
        "semi",
        "line",
        "next",
        "bytes",
        &too_long,
    ] {
        assert!(!text.contains(needle), "{needle:?} was logged");
    }
    assert_eq!(server.records().await.len(), (bad.len() + 2) * 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nested_scopes_in_a_handler_merge_and_the_inner_one_wins() {
    let server = TestServer::start(|layer| layer).await;
    send(&client(), &server.uri("/nested"), &[id_header("nest-1")]).await;
    let records = server.records().await;
    let by_message = |m: &str| {
        records
            .iter()
            .find(|r| r["message"] == m)
            .unwrap_or_else(|| panic!("no {m:?} in {records:?}"))
            .clone()
    };
    let inner = by_message("inner");
    assert_eq!(inner["service_name"], "inner-svc");
    assert_eq!(inner["user_id"], "u-7");
    assert_eq!(inner["request_id"], "nest-1");
    assert_eq!(inner["ip"], "127.0.0.1");
    assert_eq!(inner["access"], "GET /nested");
    let outer = by_message("outer");
    assert_eq!(outer["service_name"], "test-svc");
    assert!(outer.get("user_id").is_none(), "{outer}");
    assert_eq!(outer["request_id"], "nest-1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_handler_still_gets_an_access_record() {
    let server = TestServer::start(|layer| layer).await;
    let client = client();
    // The layer resumes the panic: the connection dies without a response.
    let result = client
        .request(request(&server.uri("/panic"), &[id_header("panic-1")]))
        .await;
    assert!(result.is_err(), "{result:?}");

    let record = server.access_record("panic-1").await;
    assert_eq!(record["status"], 500);
    assert_eq!(record["panic"], true);
    assert_eq!(record["level"], "error");
    assert_eq!(record["ip"], "127.0.0.1");
    assert_eq!(record["access"], "GET /panic");
    assert_eq!(record["message"], "GET /panic 500 (panicked)");

    // The server still serves.
    let (status, echoed, _) = send(&client, &server.uri("/echo-id"), &[id_header("after")]).await;
    assert_eq!((status, echoed.as_str()), (StatusCode::OK, "after"));
    let records = server.records().await;
    let access: Vec<_> = records.iter().filter(|r| r["logger"] == "access").collect();
    assert_eq!(access.len(), 2, "{records:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_goes_away_still_gets_an_access_record() {
    let server = TestServer::start(|layer| layer).await;
    let client = client();
    let started = Instant::now();
    let result = tokio::time::timeout(
        Duration::from_millis(300),
        client.request(request(&server.uri("/slow"), &[id_header("gone-1")])),
    )
    .await;
    assert!(result.is_err(), "the client was meant to give up");
    drop(client);

    let record = server.access_record("gone-1").await;
    assert!(started.elapsed() < Duration::from_secs(30));
    assert_eq!(record["status"], 499);
    assert_eq!(record["cancelled"], true);
    assert_eq!(record["level"], "warn");
    assert_eq!(record["ip"], "127.0.0.1");
    assert_eq!(record["access"], "GET /slow");
    assert_eq!(record["service_name"], "test-svc");
    assert!(record["latency_ms"].as_f64().unwrap() >= 250.0, "{record}");
    let records = server.records().await;
    assert!(records
        .iter()
        .any(|r| r["message"] == "slow handler started" && r["request_id"] == "gone-1"));
    assert_eq!(records.len(), 2, "{records:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_strings_stay_out_of_the_log_and_levels_follow_the_status() {
    let server = TestServer::start(|layer| layer).await;
    let client = client();
    let (status, _, _) = send(
        &client,
        &server.uri("/echo-id?token=hunter2"),
        &[id_header("q-1")],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, _) = send(&client, &server.uri("/missing"), &[id_header("q-2")]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let ok = server.access_record("q-1").await;
    assert_eq!(ok["access"], "GET /echo-id");
    assert_eq!(ok["path"], "/echo-id");
    let missing = server.access_record("q-2").await;
    assert_eq!(missing["status"], 404);
    assert_eq!(missing["level"], "warn");
    let text = String::from_utf8_lossy(&server.memory.contents()).into_owned();
    assert!(!text.contains("hunter2"), "{text}");
}

#[test]
fn layer_service_and_future_are_send_and_sync() {
    type Ready = std::future::Ready<Result<axum::response::Response, std::convert::Infallible>>;
    fn send_sync<T: Send + Sync + 'static>() {}
    send_sync::<RequestLogLayer>();
    send_sync::<kakashi::tower::RequestLogService<Router>>();
    fn send<T: Send + 'static>() {}
    // Sync as much as the inner future: axum's response body is not.
    send::<kakashi::tower::ResponseFuture<Ready>>();
    send_sync::<kakashi::tower::TrustedProxy>();
    send_sync::<kakashi::tower::PeerAddr>();
}
