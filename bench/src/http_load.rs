//! HTTP load: the same small axum service, logged two ways, under the same load.
//!
//! - **kakashi**: `kakashi::tower::RequestLogLayer` (request id, client ip, context, access
//!   record) and an `AsyncPipeline` writing JSON lines to a file;
//! - **tracing**: `tower_http::trace::TraceLayer` (a span per request, a response event) and
//!   `tracing-subscriber`'s JSON formatter on a `tracing-appender` non-blocking file writer,
//!   made lossless so that both sides write every line.
//!
//! In both, the handler logs one record and the middleware one more per request. Each server
//! runs in a child process of its own (tracing's subscriber is process-global), started as
//! `http_load --serve <kakashi|tracing> <log file>`; this process loads it over loopback with
//! a small hyper client: `--connections` keep-alive connections (default 32), each sending
//! requests back to back for `--seconds` (default 5) after a one-second warm-up, at most
//! `--max-requests` (default 2,000,000) in all. It prints requests/s, p50 and p99 latency for
//! both, their ratios, and the lines each server wrote.
//!
//! ```text
//! cargo run --release -p kakashi-bench --bin http_load [-- --seconds 5 --connections 32]
//! ```

use std::io::{BufRead, BufReader, Write as _};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Path as UrlPath, State};
use axum::routing::get;
use axum::Router;
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper::Request;
use hyper_util::rt::TokioIo;
use tokio::io::AsyncReadExt;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[derive(Clone, Copy, Debug)]
enum Kind {
    Kakashi,
    Tracing,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Kakashi => "kakashi",
            Kind::Tracing => "tracing",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Kind::Kakashi => "kakashi + RequestLogLayer + AsyncPipeline",
            Kind::Tracing => "tracing + TraceLayer + non_blocking",
        }
    }
}

struct Options {
    seconds: u64,
    connections: usize,
    max_requests: u64,
}

fn main() -> Result<(), BoxError> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--serve") {
        let kind = match args.get(1).map(String::as_str) {
            Some("kakashi") => Kind::Kakashi,
            Some("tracing") => Kind::Tracing,
            other => return Err(format!("--serve kakashi|tracing, not {other:?}").into()),
        };
        let path = PathBuf::from(args.get(2).ok_or("--serve <kind> <log file>")?);
        return tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?
            .block_on(serve(kind, &path));
    }

    let mut options = Options {
        seconds: 5,
        connections: 32,
        max_requests: 2_000_000,
    };
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = || -> Result<u64, BoxError> {
            Ok(it.next().ok_or(format!("{arg} needs a value"))?.parse()?)
        };
        match arg.as_str() {
            "--seconds" => options.seconds = value()?.clamp(1, 60),
            "--connections" => options.connections = value()?.clamp(1, 1024) as usize,
            "--max-requests" => options.max_requests = value()?.max(1),
            other => return Err(format!("unknown argument {other:?}").into()),
        }
    }

    let dir = std::env::temp_dir().join(format!("kakashi-http-load-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "http_load: {} connections, {} s per run after 1 s of warm-up, at most {} requests, \
         {cores} cores (server and load generator share them)",
        options.connections, options.seconds, options.max_requests
    );

    let mut results = Vec::new();
    for kind in [Kind::Kakashi, Kind::Tracing] {
        let log = dir.join(format!("{}.log", kind.name()));
        let result = run_one(kind, &log, &options)?;
        println!(
            "{:<44} {:>8.0} req/s   p50 {:>6} µs   p99 {:>6} µs   ({} measured requests)",
            kind.label(),
            result.rps,
            result.p50,
            result.p99,
            result.requests,
        );
        let per_request = result.lines as f64 / result.sent.max(1) as f64;
        println!(
            "{:<44} {} log lines, {} MB, for {} requests with warm-up: {per_request:.2} lines per request{}",
            "",
            result.lines,
            result.bytes / 1_000_000,
            result.sent,
            if result.lines as u64 == 2 * result.sent { "" } else { " (expected 2: lines lost?)" }
        );
        results.push(result);
    }
    let (k, t) = (&results[0], &results[1]);
    println!(
        "ratio kakashi/tracing: throughput {:.2}x, p50 {:.2}x, p99 {:.2}x (latency: lower is better)",
        k.rps / t.rps,
        k.p50 as f64 / t.p50.max(1) as f64,
        k.p99 as f64 / t.p99.max(1) as f64
    );
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

struct RunResult {
    rps: f64,
    p50: u64,
    p99: u64,
    requests: u64,
    /// Warm-up included.
    sent: u64,
    lines: usize,
    bytes: u64,
}

/// Starts the server in a child process, loads it, stops it and counts its log lines.
fn run_one(kind: Kind, log: &Path, options: &Options) -> Result<RunResult, BoxError> {
    let mut child = Command::new(std::env::current_exe()?)
        .arg("--serve")
        .arg(kind.name())
        .arg(log)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    let mut stdout = BufReader::new(child.stdout.take().ok_or("no child stdout")?);
    let mut line = String::new();
    stdout.read_line(&mut line)?;
    let addr: SocketAddr = line
        .trim()
        .strip_prefix("LISTENING ")
        .ok_or_else(|| format!("unexpected first line from the server: {line:?}"))?
        .parse()?;

    let loaded = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(load(addr, options));

    // Closing its stdin asks the server to stop and flush.
    drop(child.stdin.take());
    let status = child.wait()?;
    let (latencies, elapsed, sent) = loaded?;
    if !status.success() {
        return Err(format!("{} server exited with {status}", kind.name()).into());
    }

    let text = std::fs::read(log)?;
    let lines = text.iter().filter(|&&b| b == b'\n').count();
    let mut latencies = latencies;
    latencies.sort_unstable();
    let pct = |p: f64| -> u64 {
        if latencies.is_empty() {
            return 0;
        }
        let i = ((latencies.len() as f64 * p).ceil() as usize).clamp(1, latencies.len()) - 1;
        u64::from(latencies[i])
    };
    Ok(RunResult {
        rps: latencies.len() as f64 / elapsed.as_secs_f64(),
        p50: pct(0.50),
        p99: pct(0.99),
        requests: latencies.len() as u64,
        sent,
        lines,
        bytes: text.len() as u64,
    })
}

/// Drives `connections` keep-alive connections for the warm-up and then the measured time;
/// returns the measured requests' latencies (µs), the measured time and how many requests
/// were answered in all (warm-up included).
async fn load(addr: SocketAddr, options: &Options) -> Result<(Vec<u32>, Duration, u64), BoxError> {
    let warm_until = Instant::now() + Duration::from_secs(1);
    let measure_until = warm_until + Duration::from_secs(options.seconds);
    let budget = Arc::new(AtomicU64::new(options.max_requests));
    let sent = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for c in 0..options.connections {
        let budget = Arc::clone(&budget);
        let sent = Arc::clone(&sent);
        tasks.push(tokio::spawn(async move {
            let stream = tokio::net::TcpStream::connect(addr).await?;
            stream.set_nodelay(true)?;
            let (mut sender, conn) =
                hyper::client::conn::http1::handshake::<_, Empty<Bytes>>(TokioIo::new(stream))
                    .await?;
            tokio::spawn(conn);
            let mut latencies = Vec::with_capacity(64 * 1024);
            let mut n = c as u64;
            loop {
                let now = Instant::now();
                if now >= measure_until {
                    break;
                }
                let measured = now >= warm_until;
                if measured
                    && budget
                        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| b.checked_sub(1))
                        .is_err()
                {
                    break;
                }
                sender.ready().await?;
                let request = Request::get(format!("/users/{}", n % 10_000))
                    .header("host", "127.0.0.1")
                    .body(Empty::new())?;
                let started = Instant::now();
                let response = sender.send_request(request).await?;
                if !response.status().is_success() {
                    return Err(format!("status {}", response.status()).into());
                }
                response.into_body().collect().await?;
                sent.fetch_add(1, Ordering::Relaxed);
                if measured {
                    let micros = started.elapsed().as_micros();
                    latencies.push(u32::try_from(micros).unwrap_or(u32::MAX));
                }
                n += 1;
            }
            Ok::<_, BoxError>(latencies)
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await??);
    }
    let measured = Instant::now().min(measure_until) - warm_until;
    Ok((all, measured, sent.load(Ordering::Relaxed)))
}

async fn user_kakashi(State(log): State<kakashi::Logger>, UrlPath(id): UrlPath<u64>) -> String {
    kakashi::info!(log, "user served"; user_id = id);
    format!("user {id}")
}

async fn user_tracing(UrlPath(id): UrlPath<u64>) -> String {
    tracing::info!(user_id = id, "user served");
    format!("user {id}")
}

/// The server side: serves until stdin closes, then shuts down gracefully and flushes.
async fn serve(kind: Kind, log: &Path) -> Result<(), BoxError> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let stop = async {
        let mut stdin = tokio::io::stdin();
        let mut buf = [0u8; 64];
        while matches!(stdin.read(&mut buf).await, Ok(n) if n > 0) {}
    };
    let announce = || -> std::io::Result<()> {
        let mut out = std::io::stdout().lock();
        writeln!(out, "LISTENING {addr}")?;
        out.flush()
    };
    match kind {
        Kind::Kakashi => {
            let config = kakashi::PipelineConfig::builder()
                .formatter(kakashi::format::Json::new())
                .writer(kakashi::Writer::file(log))
                .build()?;
            let (pipeline, guard) = kakashi::AsyncPipeline::start(config)?;
            let layer = kakashi::tower::RequestLogLayer::new()
                .logger(pipeline.logger("access"))
                .peer_addr(|ext| {
                    ext.get::<axum::extract::ConnectInfo<SocketAddr>>()
                        .map(|info| info.0)
                });
            let app = Router::new()
                .route("/users/{id}", get(user_kakashi))
                .layer(layer)
                .with_state(pipeline.logger("app"));
            announce()?;
            axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .with_graceful_shutdown(stop)
            .await?;
            guard.shutdown().await;
            let stats = pipeline.stats();
            if stats.dropped + stats.failed + stats.pending > 0 {
                return Err(format!("kakashi lost lines: {stats:?}").into());
            }
        }
        Kind::Tracing => {
            use tower_http::trace::{DefaultMakeSpan, DefaultOnResponse, TraceLayer};
            use tracing::Level;

            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(log)?;
            let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
                .lossy(false)
                .finish(file);
            tracing_subscriber::fmt()
                .json()
                .with_max_level(Level::INFO)
                .with_writer(writer)
                .try_init()?;
            let trace = TraceLayer::new_for_http()
                .make_span_with(DefaultMakeSpan::new().level(Level::INFO))
                .on_request(())
                .on_response(
                    DefaultOnResponse::new()
                        .level(Level::INFO)
                        .latency_unit(tower_http::LatencyUnit::Micros),
                );
            let app = Router::new()
                .route("/users/{id}", get(user_tracing))
                .layer(trace);
            announce()?;
            axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .with_graceful_shutdown(stop)
            .await?;
            // Dropping the guard writes what the worker thread still holds.
            drop(guard);
        }
    }
    Ok(())
}
