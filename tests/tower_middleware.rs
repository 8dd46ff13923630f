//! The tower middleware behind a real axum server on loopback, driven by a real hyper client:
//! request ids, client addresses, context in handlers and spawned tasks, access records for
//! answered, panicked and abandoned requests; hostile forwarding and request-id headers; the
//! access record's route, optional fields, skip list and sampling. Every check reads the JSON
//! lines the pipeline wrote.

#![cfg(feature = "axum")]

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
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
    /// layer `configure` returns. The layer finds the peer address in axum's `ConnectInfo` by
    /// itself (feature `axum`).
    async fn start(configure: impl FnOnce(RequestLogLayer) -> RequestLogLayer) -> TestServer {
        let (memory, pipeline, guard) = common::json_memory_pipeline();
        let layer = configure(
            RequestLogLayer::new()
                .logger(pipeline.logger("access"))
                .context(LogContext::new().with_service_name("test-svc")),
        );
        let app = Router::new()
            .route("/work/{n}", get(work))
            .route("/echo-id", get(echo_id))
            .route("/nested", get(nested))
            .route("/panic", get(panics))
            .route("/slow", get(slow))
            .route("/ids", get(all_ids))
            .route("/health", get(|| async { "ok" }))
            .route("/status/{code}", get(status))
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

/// Every line of the request-id header the handler sees, and the id in its context.
async fn all_ids(State(log): State<Logger>, headers: HeaderMap) -> String {
    info!(log, "ids");
    let lines: Vec<String> = headers
        .get_all("x-request-id")
        .iter()
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .collect();
    format!("{} {}", lines.join(","), current_request_id())
}

/// Answers with the status in the path.
async fn status(Path(code): Path<u16>) -> StatusCode {
    StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_REQUEST)
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
        // The route template, not the path: `n` is in the app records' own field.
        assert_eq!(r["access"], "GET /work/{n}", "{r}");
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
                assert_eq!(r["message"], "request finished");
                assert_eq!(r["size"], id.len());
                assert!(r["latency_ms"].as_f64().unwrap() >= 0.0);
                // Said once: the method and path are in `access` only.
                for absent in [
                    "method",
                    "path",
                    "panic",
                    "cancelled",
                    "query",
                    "sampled",
                    "user_agent",
                    "referer",
                ] {
                    assert!(r.get(absent).is_none(), "{absent} in {r}");
                }
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
    assert_eq!(record["level"], "error");
    assert_eq!(record["ip"], "127.0.0.1");
    assert_eq!(record["access"], "GET /panic");
    assert_eq!(record["message"], "request panicked");

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
    assert_eq!(record["message"], "request cancelled");
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
    assert!(ok.get("query").is_none(), "{ok}");
    let missing = server.access_record("q-2").await;
    assert_eq!(missing["status"], 404);
    assert_eq!(missing["level"], "warn");
    let text = String::from_utf8_lossy(&server.memory.contents()).into_owned();
    assert!(!text.contains("hunter2"), "{text}");
}

/// The access records written so far.
async fn access_records(server: &TestServer) -> Vec<Value> {
    server
        .records()
        .await
        .into_iter()
        .filter(|r| r["logger"] == "access")
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_forwarded_for_gives_the_peer_never_another_header() {
    unreadable_forwarded_for().await;
}

#[tokio::test]
async fn an_unreadable_forwarded_for_gives_the_peer_never_another_header_on_a_current_thread_runtime(
) {
    unreadable_forwarded_for().await;
}

/// Trusted proxy, unreadable forwarding headers: the peer's address, never another header.
async fn unreadable_forwarded_for() {
    let server = TestServer::start(|layer| layer.trust_proxy("127.0.0.1".parse().unwrap())).await;
    let client = client();
    let real_ip = ("x-real-ip", HeaderValue::from_static("198.51.100.1"));
    let cases: Vec<(&str, Vec<(&str, HeaderValue)>)> = vec![
        (
            // One non-ASCII byte: the header cannot be read as text.
            "xff-1",
            vec![
                (
                    "x-forwarded-for",
                    HeaderValue::from_bytes(b"203.0.113.7\xff").unwrap(),
                ),
                real_ip.clone(),
            ],
        ),
        (
            "xff-2",
            vec![
                ("x-forwarded-for", HeaderValue::from_static("unknown")),
                real_ip.clone(),
            ],
        ),
        (
            "xff-3",
            vec![
                (
                    "x-forwarded-for",
                    HeaderValue::from_static("203.0.113.7, 203.0.113.8:x"),
                ),
                real_ip.clone(),
            ],
        ),
        (
            // Two X-Real-IP lines: which one is the proxy's?
            "xff-4",
            vec![
                real_ip.clone(),
                ("x-real-ip", HeaderValue::from_static("198.51.100.2")),
            ],
        ),
        (
            "xff-5",
            vec![(
                "x-real-ip",
                HeaderValue::from_bytes("198.51.100.1\u{2028}".as_bytes()).unwrap(),
            )],
        ),
    ];
    for (id, mut headers) in cases {
        headers.push(id_header(id));
        let (status, echoed, _) = send(&client, &server.uri("/echo-id"), &headers).await;
        assert_eq!((status, echoed.as_str()), (StatusCode::OK, id));
        let records = server.records().await;
        let mine: Vec<_> = records.iter().filter(|r| r["request_id"] == id).collect();
        assert_eq!(mine.len(), 2, "{records:?}");
        for r in mine {
            assert_eq!(r["ip"], "127.0.0.1", "{id}: {r}");
        }
    }
    // A readable header is still believed.
    send(
        &client,
        &server.uri("/echo-id"),
        &[
            ("x-forwarded-for", HeaderValue::from_static("203.0.113.9")),
            id_header("xff-ok"),
        ],
    )
    .await;
    assert_eq!(server.access_record("xff-ok").await["ip"], "203.0.113.9");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_request_ids_are_replaced_and_handler_response_and_log_agree() {
    duplicate_request_ids().await;
}

#[tokio::test]
async fn duplicate_request_ids_are_replaced_on_a_current_thread_runtime() {
    duplicate_request_ids().await;
}

#[test]
fn duplicate_request_ids_are_replaced_on_a_runtime_without_the_time_driver() {
    tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .unwrap()
        .block_on(duplicate_request_ids());
}

/// Two `x-request-id` lines, different or equal: a fresh id that the handler (header and
/// context), the response and the log share; neither sent value is logged.
async fn duplicate_request_ids() {
    let server = TestServer::start(|layer| layer).await;
    let client = client();
    for pair in [["first-id", "attacker-id"], ["same-id", "same-id"]] {
        let headers = pair.map(id_header);
        let (status, echoed, body) = send(&client, &server.uri("/ids"), &headers).await;
        assert_eq!(status, StatusCode::OK);
        assert!(is_generated_id(&echoed), "{pair:?} gave {echoed:?}");
        // The handler saw one header line, the new id, and the same id in its context.
        assert_eq!(body, format!("{echoed} {echoed}"));
        let records = server.records().await;
        let mine: Vec<_> = records
            .iter()
            .filter(|r| r["request_id"] == echoed.as_str())
            .collect();
        assert_eq!(mine.len(), 2, "handler and access records: {records:?}");
    }
    let text = String::from_utf8_lossy(&server.memory.contents()).into_owned();
    for given in ["first-id", "attacker-id", "same-id"] {
        assert!(!text.contains(given), "{given} was logged: {text}");
    }
    assert_eq!(server.records().await.len(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_records_name_the_route_and_hold_query_user_agent_and_referer_when_asked() {
    let server =
        TestServer::start(|layer| layer.log_query(true).log_user_agent(true).log_referer(true))
            .await;
    let client = client();
    let long_agent = format!("agent \u{202e}reversed\u{2028}{}", "a".repeat(400));
    let headers = [
        id_header("opt-1"),
        (
            "user-agent",
            HeaderValue::from_bytes(long_agent.as_bytes()).unwrap(),
        ),
        (
            "referer",
            HeaderValue::from_bytes(b"https://example.com/\xff").unwrap(),
        ),
    ];
    let (status, _, _) = send(&client, &server.uri("/work/5?token=abc&x=1"), &headers).await;
    assert_eq!(status, StatusCode::OK);
    let r = server.access_record("opt-1").await;
    assert_eq!(r["access"], "GET /work/{n}", "{r}");
    assert_eq!(r["query"], "token=abc&x=1");
    let agent = r["user_agent"].as_str().unwrap();
    assert!(agent.len() <= kakashi::tower::MAX_LOGGED_VALUE_LEN + '…'.len_utf8());
    assert!(agent.ends_with('…'), "{agent:?}");
    assert!(long_agent.starts_with(agent.trim_end_matches('…')));
    assert_eq!(r["referer"], "https://example.com/\u{fffd}");
    // Escaped on the way out: the raw bidi override and line separator never reach the file.
    let text = String::from_utf8(server.memory.contents()).unwrap();
    assert!(
        !text.contains('\u{202e}') && !text.contains('\u{2028}'),
        "{text}"
    );
    assert!(text.contains("\\u202e"), "{text}");
    // Each thing once: the path is in `access` alone, the handler's records carry it too.
    for key in ["method", "path"] {
        assert!(r.get(key).is_none(), "{key} in {r}");
    }

    // A request that matched no route has its path logged.
    send(&client, &server.uri("/no/such/7"), &[id_header("opt-2")]).await;
    let r = server.access_record("opt-2").await;
    assert_eq!(r["access"], "GET /no/such/7");
    assert_eq!(r["status"], 404);
    assert!(r.get("query").is_none() && r.get("user_agent").is_none());

    // The path instead of the template, when asked.
    let raw = TestServer::start(|layer| layer.route_template(false)).await;
    send(&client, &raw.uri("/work/6?q=1"), &[id_header("raw-1")]).await;
    let r = raw.access_record("raw-1").await;
    assert_eq!(r["access"], "GET /work/6");
    assert!(r.get("query").is_none(), "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skip_list_and_sampling_leave_out_successes_only() {
    skip_list_and_sampling().await;
}

#[tokio::test]
async fn skip_list_and_sampling_leave_out_successes_only_on_a_current_thread_runtime() {
    skip_list_and_sampling().await;
}

/// `/health` and `/status/{code}` skipped, one in three successes sampled.
async fn skip_list_and_sampling() {
    let server = TestServer::start(|layer| {
        layer
            .skip_path("/health")
            .skip_path("/status/{code}")
            .sample_successes(3)
    })
    .await;
    let client = client();
    let mut n = 0;
    let mut get = |path: &'static str| {
        n += 1;
        let id = format!("s-{n}");
        let client = client.clone();
        let uri = server.uri(path);
        async move { send(&client, &uri, &[id_header(&id)]).await.0 }
    };
    // Skipped: the raw path, and a route template.
    for _ in 0..3 {
        assert_eq!(get("/health").await, StatusCode::OK);
        assert_eq!(get("/status/204").await, StatusCode::NO_CONTENT);
    }
    // Failures of a skipped route are logged.
    assert_eq!(get("/status/503").await, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(get("/status/404").await, StatusCode::NOT_FOUND);
    // Sampled: the 1st, 4th and 7th of seven successes.
    for _ in 0..7 {
        assert_eq!(get("/echo-id").await, StatusCode::OK);
    }
    // Errors are never sampled out.
    for _ in 0..2 {
        assert_eq!(get("/no-such-route").await, StatusCode::NOT_FOUND);
    }
    let access = access_records(&server).await;
    let ids: Vec<&str> = access
        .iter()
        .map(|r| r["request_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        ["s-7", "s-8", "s-9", "s-12", "s-15", "s-16", "s-17"],
        "{access:?}"
    );
    for r in &access {
        let sampled = r["status"] == 200;
        assert_eq!(r.get("sampled").is_some(), sampled, "{r}");
        if sampled {
            assert_eq!(r["sampled"], 3);
        }
    }
    // The handlers' records of sampled-out requests still carry the request context.
    let echo: Vec<Value> = server
        .records()
        .await
        .into_iter()
        .filter(|r| r["message"] == "echo")
        .collect();
    assert_eq!(echo.len(), 7);
    assert!(echo.iter().all(|r| r["access"] == "GET /echo-id"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_connect_info_the_layer_says_once_that_it_has_no_client_address() {
    let (memory, pipeline, _guard) = common::json_memory_pipeline();
    let app = Router::new()
        .route("/", get(|| async { "ok" }))
        .layer(RequestLogLayer::new().logger(pipeline.logger("access")));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    // `into_make_service`, not `into_make_service_with_connect_info`: no peer address.
    let server = tokio::spawn(async move {
        axum::serve(listener, app.into_make_service())
            .await
            .unwrap();
    });
    let client = client();
    for i in 0..3 {
        let id = format!("np-{i}");
        let (status, _, _) = send(&client, &format!("http://{addr}/"), &[id_header(&id)]).await;
        assert_eq!(status, StatusCode::OK);
    }
    server.abort();
    pipeline.flush().await;
    let records: Vec<Value> = memory
        .lines()
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records.len(), 4, "{records:?}");
    let warnings: Vec<_> = records.iter().filter(|r| r["level"] == "warn").collect();
    assert_eq!(warnings.len(), 1, "{records:?}");
    let message = warnings[0]["message"].as_str().unwrap();
    assert!(message.contains("without a peer address"), "{message}");
    assert!(
        message.contains("into_make_service_with_connect_info"),
        "{message}"
    );
    for r in records.iter().filter(|r| r["level"] == "info") {
        assert_eq!(r["message"], "request finished");
        assert!(r.get("ip").is_none(), "{r}");
    }
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
