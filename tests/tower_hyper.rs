//! The tower middleware in front of a plain hyper server (no axum): the peer address comes from
//! `with_peer_addr` or a `PeerAddr` extension, and a service error still gets an access record.
//!
//! hyper's `server` and hyper-util's `server`/`service` features are dev-dependencies.

#![cfg(feature = "tower")]

mod common;

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use http_body_util::{BodyExt, Empty, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use kakashi::tower::{PeerAddr, RequestLogLayer};
use kakashi::{info, Logger};
use tower_layer::Layer;
use tower_service::Service;

/// The application: answers `/fail` with an error, everything else with the context's ip. It
/// logs once in `call` itself, before its future exists, as tower middleware such as
/// tower-http's `TraceLayer` does (its `on_request`), and once inside the future.
#[derive(Clone)]
struct App {
    log: Logger,
}

#[derive(Debug)]
struct Failed;

impl std::fmt::Display for Failed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("failed on purpose")
    }
}

impl std::error::Error for Failed {}

impl Service<Request<Incoming>> for App {
    type Response = Response<Full<Bytes>>;
    type Error = Failed;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Failed>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Failed>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Incoming>) -> Self::Future {
        info!(self.log, "called"; path = req.uri().path());
        let log = self.log.clone();
        Box::pin(async move {
            tokio::task::yield_now().await;
            info!(log, "handling"; path = req.uri().path());
            if req.uri().path() == "/fail" {
                return Err(Failed);
            }
            let ip = kakashi::context::try_current()
                .and_then(|c| c.ip().map(str::to_owned))
                .unwrap_or_default();
            Ok(Response::new(Full::new(Bytes::from(ip))))
        })
    }
}

/// Wraps a service, inserting a `PeerAddr` extension (what a custom acceptor would do).
#[derive(Clone)]
struct InsertPeer<S> {
    inner: S,
    peer: SocketAddr,
}

impl<S, B> Service<Request<B>> for InsertPeer<S>
where
    S: Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> S::Future {
        req.extensions_mut().insert(PeerAddr(self.peer));
        self.inner.call(req)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_hyper_server() {
    let (memory, pipeline, guard) = common::json_memory_pipeline();
    let layer = RequestLogLayer::new().logger(pipeline.logger("access"));
    let app = App {
        log: pipeline.logger("app"),
    };

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let mut n = 0u32;
        loop {
            let (stream, peer) = listener.accept().await.unwrap();
            let io = TokioIo::new(stream);
            n += 1;
            // Alternate the two ways of giving the layer the peer address. The peer's port is
            // replaced in the second, to tell them apart in the log.
            if n % 2 == 1 {
                let service = layer.layer(app.clone()).with_peer_addr(peer);
                tokio::spawn(
                    hyper::server::conn::http1::Builder::new()
                        .serve_connection(io, TowerToHyperService::new(service)),
                );
            } else {
                let fake = SocketAddr::new("192.0.2.1".parse().unwrap(), peer.port());
                let service = InsertPeer {
                    inner: layer.layer(app.clone()),
                    peer: fake,
                };
                tokio::spawn(
                    hyper::server::conn::http1::Builder::new()
                        .serve_connection(io, TowerToHyperService::new(service)),
                );
            }
        }
    });

    // One connection per request, so that each alternates.
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(0)
        .build_http();
    let get = |path: &str, id: &str| {
        Request::get(format!("http://{addr}{path}"))
            .header("x-request-id", id)
            .body(Empty::new())
            .unwrap()
    };
    let first = client.request(get("/hello", "h-1")).await.unwrap();
    assert_eq!(first.headers()["x-request-id"], "h-1");
    let body = first.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], b"127.0.0.1");
    let second = client.request(get("/hello", "h-2")).await.unwrap();
    let body = second.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], b"192.0.2.1");
    // The service fails: hyper closes the connection without a response.
    assert!(client.request(get("/fail", "h-3")).await.is_err());

    // The failed request's record is logged before hyper sees the error, but give the
    // connection task a moment anyway.
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    server.abort();
    assert!(guard.shutdown().await.is_settled());

    let records: Vec<serde_json::Value> = memory
        .lines()
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let access = |id: &str| {
        records
            .iter()
            .find(|r| r["logger"] == "access" && r["request_id"] == id)
            .unwrap_or_else(|| panic!("no access record for {id}: {records:?}"))
            .clone()
    };
    assert_eq!(access("h-1")["ip"], "127.0.0.1");
    assert_eq!(access("h-1")["status"], 200);
    assert_eq!(access("h-1")["size"], 9);
    assert_eq!(access("h-2")["ip"], "192.0.2.1");
    let failed = access("h-3");
    assert_eq!(failed["status"], 500);
    assert_eq!(failed["message"], "request failed");
    assert_eq!(failed["level"], "error");
    assert_eq!(failed["ip"], "127.0.0.1");
    assert_eq!(records.len(), 9, "{records:?}");
    // Every record carries its request's context, also the one logged in the inner
    // service's `call`.
    for r in &records {
        assert!(r["request_id"].as_str().unwrap().starts_with("h-"), "{r}");
        assert!(r["access"].as_str().unwrap().starts_with("GET /"), "{r}");
    }
    let called = records.iter().filter(|r| r["message"] == "called").count();
    assert_eq!(called, 3, "{records:?}");
}
