//! A small axum service that logs through kakashi, with the tower middleware.
//!
//! ```text
//! cargo run --example service --features axum                 # serves until Ctrl-C
//! cargo run --example service --features axum -- --self-test  # checks itself, exits 0
//! ```
//!
//! It listens on 127.0.0.1:`$PORT` (default 3000; in self-test mode an ephemeral port unless
//! `$PORT` is set). Every request gets a request id (yours, from `x-request-id`, or a new one),
//! and every record logged while it is handled — by the handler or by the tasks it spawns with
//! `kakashi::context::spawn` — carries that id, the client's ip and the `access` line (the
//! method and axum's route template, `GET /users/{id}`). One access record per request closes
//! it. The `axum` feature lets the layer read the route template and the client's address
//! (`ConnectInfo`) from axum's request extensions.
//!
//! ```text
//! curl -i localhost:3000/users/42 -H 'x-request-id: demo-1'
//! curl -i localhost:3000/orders -d '2 x widget'
//! ```
//!
//! The self-test starts the server, sends it a handful of requests over loopback, checks the
//! responses and the records (it also logs to memory, as JSON, to read them back), shuts down
//! gracefully and exits 0, or 1 with the reason on stderr.

use std::error::Error;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use axum::extract::Path;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use kakashi::format::{Console, Json};
use kakashi::tower::RequestLogLayer;
use kakashi::write::MemoryWriter;
use kakashi::{context, get_logger, info, warn, LogContext, PipelineConfig, Writer};

type BoxError = Box<dyn Error + Send + Sync>;

#[tokio::main]
async fn main() -> ExitCode {
    let self_test = std::env::args().skip(1).any(|arg| arg == "--self-test");
    match run(self_test).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("service: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(self_test: bool) -> Result<(), BoxError> {
    // Console lines on stdout; in self-test mode, JSON lines in memory too, to check them.
    let memory = MemoryWriter::new();
    let mut config = PipelineConfig::builder()
        .formatter(Console::new())
        .writer(Writer::stdout());
    if self_test {
        config = config.writer(Writer::memory(&memory).formatter(Json::new()));
    }
    let guard = kakashi::try_init(config.build()?)?;

    let port = match std::env::var("PORT") {
        Ok(port) => port
            .parse::<u16>()
            .map_err(|e| format!("PORT={port:?}: {e}"))?,
        Err(_) if self_test => 0,
        Err(_) => 3000,
    };
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    let addr = listener.local_addr()?;
    info!(get_logger("service"), "listening on http://{}", addr; self_test = self_test);

    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        axum::serve(
            listener,
            app().into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async move {
            if self_test {
                let _ = stop_rx.await;
            } else {
                let _ = tokio::signal::ctrl_c().await;
            }
        })
        .await
    });

    let checked = if self_test {
        let result = check(addr).await;
        let _ = stop_tx.send(());
        result
    } else {
        drop(stop_tx);
        Ok(())
    };
    server.await??;
    info!(get_logger("service"), "stopped");
    // Graceful: every record logged so far is written before we go on.
    guard.shutdown().await;
    checked?;

    if self_test {
        let records = check_records(&memory)?;
        println!("self-test passed: 6 requests, {records} records checked");
    }
    Ok(())
}

fn app() -> Router {
    let layer = RequestLogLayer::new()
        .context(
            LogContext::new()
                .with_service_name("example")
                .with_version(env!("CARGO_PKG_VERSION")),
        )
        // Load balancers poll it: its successes leave no access record.
        .skip_path("/health");
    Router::new()
        .route("/", get(index))
        .route("/health", get(|| async { "ok" }))
        .route("/users/{id}", get(user))
        .route("/orders", post(order))
        .layer(layer)
}

async fn index() -> &'static str {
    info!(get_logger("service"), "index");
    "kakashi example service\n"
}

async fn user(Path(id): Path<String>) -> (StatusCode, String) {
    let log = get_logger("service");
    let Ok(id) = id.parse::<u64>() else {
        warn!(log, "not a user id"; id = %id);
        return (StatusCode::BAD_REQUEST, "user ids are numbers\n".to_owned());
    };
    // The spawned task carries the request's context.
    let name = context::spawn(async move {
        tokio::time::sleep(Duration::from_millis(2)).await;
        let name = if id % 2 == 0 { "ann" } else { "bob" };
        info!(get_logger("service.db"), "profile loaded"; user_id = id, name = name);
        name
    })
    .await
    .unwrap_or("?");
    info!(log, "user served"; user_id = id);
    (StatusCode::OK, format!("user {id}: {name}\n"))
}

async fn order(body: String) -> (StatusCode, String) {
    let log = get_logger("service");
    let item = body.trim().to_owned();
    if item.is_empty() {
        warn!(log, "empty order");
        return (StatusCode::UNPROCESSABLE_ENTITY, "empty order\n".to_owned());
    }
    info!(log, "order received"; bytes = body.len());
    let reserved = context::spawn(async move {
        tokio::task::yield_now().await;
        info!(get_logger("service.stock"), "stock reserved"; item = %item);
        true
    })
    .await
    .unwrap_or(false);
    if !reserved {
        return (StatusCode::INTERNAL_SERVER_ERROR, "try again\n".to_owned());
    }
    (StatusCode::CREATED, "order created\n".to_owned())
}

/// One self-test request and what its response must be.
struct Case(
    &'static str,
    &'static str,
    Option<&'static str>,
    &'static str,
    u16,
    &'static str,
);

/// Sends the self-test requests and checks the responses.
async fn check(addr: SocketAddr) -> Result<(), BoxError> {
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    // (method, path, request id sent, body, status wanted, text wanted in the body)
    let cases = [
        Case("GET", "/", Some("self-test-index"), "", 200, "kakashi"),
        Case(
            "GET",
            "/users/42",
            Some("self-test-user"),
            "",
            200,
            "user 42: ann",
        ),
        Case("GET", "/users/abc", None, "", 400, "numbers"),
        Case(
            "POST",
            "/orders",
            Some("self-test-order"),
            "2 x widget",
            201,
            "created",
        ),
        Case("GET", "/missing", Some("self-test-404"), "", 404, ""),
        Case("GET", "/health", Some("self-test-health"), "", 200, "ok"),
    ];
    for Case(method, path, id, body, status, needle) in cases {
        let mut request = hyper::Request::builder()
            .method(method)
            .uri(format!("http://{addr}{path}"));
        if let Some(id) = id {
            request = request.header("x-request-id", id);
        }
        let request = request.body(Full::new(Bytes::from(body.to_owned())))?;
        let response = tokio::time::timeout(Duration::from_secs(10), client.request(request))
            .await
            .map_err(|_| format!("{method} {path}: no answer in 10 s"))??;
        let got = response.status().as_u16();
        let echoed = response
            .headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let text = response.into_body().collect().await?.to_bytes();
        let text = String::from_utf8_lossy(&text);
        if got != status || !text.contains(needle) {
            return Err(
                format!("{method} {path}: got {got} {text:?}, wanted {status} {needle:?}").into(),
            );
        }
        let id_ok = match id {
            Some(id) => echoed == id,
            None => echoed.len() == 32 && echoed.bytes().all(|b| b.is_ascii_hexdigit()),
        };
        if !id_ok {
            return Err(format!("{method} {path}: echoed request id {echoed:?}").into());
        }
    }
    Ok(())
}

/// Checks the JSON records in memory; returns how many there were.
fn check_records(memory: &MemoryWriter) -> Result<usize, BoxError> {
    let records = memory
        .lines()
        .iter()
        .map(|line| serde_json::from_str::<serde_json::Value>(line))
        .collect::<Result<Vec<_>, _>>()?;
    let access: Vec<_> = records.iter().filter(|r| r["logger"] == "access").collect();
    // Five: the health check leaves none.
    if access.len() != 5 {
        return Err(format!("{} access records, wanted 5", access.len()).into());
    }
    for r in &access {
        if r["ip"] != "127.0.0.1" || r["service_name"] != "example" || !r["status"].is_u64() {
            return Err(format!("access record without its context: {r}").into());
        }
    }
    // The subtask's record carries the request that spawned it.
    let profile = records
        .iter()
        .find(|r| r["message"] == "profile loaded")
        .ok_or("no record from the spawned task")?;
    if profile["request_id"] != "self-test-user" || profile["access"] != "GET /users/{id}" {
        return Err(format!("the spawned task's record lost its context: {profile}").into());
    }
    let stock = records
        .iter()
        .find(|r| r["message"] == "stock reserved")
        .ok_or("no record from the order's task")?;
    if stock["request_id"] != "self-test-order" {
        return Err(format!("the order task's record lost its context: {stock}").into());
    }
    Ok(records.len())
}
