//! tower middleware for axum and hyper (feature `tower`; feature `axum` adds what only axum
//! knows: the route template and the client's address): request context and access records.
//!
//! [`RequestLogLayer`] wraps a service. For each request it:
//!
//! 1. takes the request id from the `x-request-id` header when it is well formed (1 to 128
//!    characters of `A-Z a-z 0-9 . _ : -`) and sent once, else generates one (32 hex digits,
//!    unique within the process and random across processes); a generated id replaces every
//!    line of the header on the request — a malformed one, or two of them, which different
//!    readers would pick differently — so the handler, the response header and the log all
//!    see the same id;
//! 2. finds the client IP: the connection's peer address, or — only when that peer is one of
//!    the [trusted proxies](RequestLogLayer::trust_proxy) — the right-most address of
//!    `X-Forwarded-For` that is not a trusted proxy, or `X-Real-IP` when `X-Forwarded-For` is
//!    absent. A forwarding header that is present but unreadable (not ASCII, not an address
//!    where the client should be, two `X-Real-IP` lines) gives the peer's address, never the
//!    other header. By default no proxy is trusted and both headers are ignored: anyone can
//!    send them;
//! 3. runs the service's future inside a [`LogContext`] scope holding `ip`, `access`
//!    (`"METHOD /route"`: axum's route template such as `/users/{id}` with the `axum` feature
//!    when the request matched a route, else the path; never the query string, which may hold
//!    secrets), `request_id` and whatever [base context](RequestLogLayer::context) you
//!    configure. Every record logged by the handler — and by tasks it starts with
//!    [`context::spawn`] — carries these fields;
//! 4. logs one access record per request on its [`Logger`] (default
//!    [`get_logger("access")`](crate::get_logger)), with the request context and the fields
//!    below, at info for 1xx–3xx, warn for 4xx and error for 5xx
//!    ([configurable](RequestLogLayer::success_level)).
//!
//! The access record says each thing once: its message is the outcome (`request finished`,
//! `request failed` when the service returned an error, `request panicked`, `request
//! cancelled`); the method and route are the context's `access`, and:
//!
//! | field | value |
//! |---|---|
//! | `status` | the response status; 500 when the service failed or panicked; 499 when the request was cancelled |
//! | `latency_ms` | from the call to the response head, in milliseconds (float, microsecond precision) |
//! | `size` | the response body's size, when known from `Content-Length` or an exact size hint |
//! | `sampled` | with [`sample_successes(n)`](RequestLogLayer::sample_successes), on successes: `n`, the requests this record stands for |
//! | `query` | with [`log_query`](RequestLogLayer::log_query): the query string |
//! | `user_agent`, `referer` | with [`log_user_agent`](RequestLogLayer::log_user_agent), [`log_referer`](RequestLogLayer::log_referer): those headers |
//!
//! `query`, `user_agent` and `referer` are capped at [`MAX_LOGGED_VALUE_LEN`] bytes and, like
//! every value, escaped by the formatter; header fields such as `authorization` or `cookie`
//! that you log yourself are [redacted](crate::format::Redaction) by default.
//! [`skip_path`](RequestLogLayer::skip_path) (health checks) and
//! [`sample_successes`](RequestLogLayer::sample_successes) leave out records of successful
//! requests only: failed, panicked and cancelled requests are always logged.
//!
//! The record is logged when the response head is ready, so a streamed body's transfer time is
//! not part of `latency_ms`; records logged while the body streams carry no request context.
//!
//! # Panics and cancellation
//!
//! A panicking service future is caught, its access record (status 500, `request panicked`)
//! is logged, and the panic is **resumed**: the layer changes nothing about how your server
//! handles panics. To turn panics into 500 responses, put
//! `tower_http::catch_panic::CatchPanicLayer` *outside* this layer (with axum's
//! `Router::layer`, add it after this one).
//!
//! A request whose future is dropped before it finishes — hyper drops it when the client
//! closes the connection, and a runtime drops it on shutdown — is logged with status 499 and
//! `request cancelled` when the future is dropped.
//!
//! # With axum
//!
//! Enable the `axum` feature (it depends on axum without its default features) and add the
//! layer with `Router::layer` (or `route_layer`). The layer then reads two of axum's request
//! extensions by type:
//!
//! - `MatchedPath`, the route template: axum sets it when it routes, so a layer added
//!   *inside* the router sees it; wrapped around the whole `Router` it does not, and the path
//!   is logged ([`route_template(false)`](RequestLogLayer::route_template) logs the path
//!   always);
//! - `ConnectInfo<SocketAddr>`, the peer address, present when the app is served with
//!   `into_make_service_with_connect_info::<SocketAddr>()`.
//!
//! # Client address
//!
//! The layer looks for the peer address in the request's extensions: a [`PeerAddr`], then
//! axum's `ConnectInfo<SocketAddr>` (feature `axum`), then a plain [`SocketAddr`]; or where
//! [`RequestLogLayer::peer_addr`] says. With a plain hyper server, which serves one connection
//! per service, use [`RequestLogService::with_peer_addr`]. When a request comes without one,
//! the layer logs a warning, once, saying so: access records then have no `ip`.
//!
//! # Examples
//!
//! With axum (feature `axum`):
//!
//! ```
//! use std::net::SocketAddr;
//!
//! use axum::extract::Path;
//! use axum::routing::get;
//! use axum::Router;
//! use kakashi::tower::RequestLogLayer;
//! use kakashi::write::MemoryWriter;
//! use kakashi::{info, AsyncPipeline, LogContext, PipelineConfig, Writer};
//! # use tokio::io::{AsyncReadExt, AsyncWriteExt};
//!
//! # #[cfg(feature = "axum")]
//! # #[tokio::main]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let memory = MemoryWriter::new();
//! let config = PipelineConfig::builder().writer(Writer::memory(&memory)).build()?;
//! let (pipeline, guard) = AsyncPipeline::start(config)?;
//!
//! let log = pipeline.logger("users");
//! let app = Router::new()
//!     .route(
//!         "/users/{id}",
//!         get(move |Path(id): Path<u64>| async move {
//!             info!(log, "looking up user"; user = id); // carries ip, access and request_id
//!             "ann"
//!         }),
//!     )
//!     .route("/health", get(|| async { "ok" }))
//!     .layer(
//!         RequestLogLayer::new()
//!             .logger(pipeline.logger("access"))
//!             .context(LogContext::new().with_service_name("users"))
//!             .skip_path("/health"),
//!     );
//!
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! # let addr = listener.local_addr()?;
//! let server = tokio::spawn(async move {
//!     axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>()).await
//! });
//! # for request in [
//! #     &b"GET /users/7?token=secret HTTP/1.1\r\nhost: x\r\nx-request-id: req-7\r\nconnection: close\r\n\r\n"[..],
//! #     &b"GET /health HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"[..],
//! # ] {
//! #     let mut stream = tokio::net::TcpStream::connect(addr).await?;
//! #     stream.write_all(request).await?;
//! #     let mut response = String::new();
//! #     stream.read_to_string(&mut response).await?;
//! #     assert!(response.starts_with("HTTP/1.1 200"), "{response}");
//! # }
//! # server.abort();
//! guard.shutdown().await;
//! # let lines = memory.lines();
//! # assert_eq!(lines.len(), 2, "{lines:?}");
//! # assert!(lines[0].contains("logger=users msg=\"looking up user\" user=7 ip=127.0.0.1 access=\"GET /users/{id}\" request_id=req-7"), "{lines:?}");
//! # assert!(lines[1].contains("logger=access msg=\"request finished\" status=200 latency_ms="), "{lines:?}");
//! # assert!(lines[1].ends_with("ip=127.0.0.1 access=\"GET /users/{id}\" request_id=req-7 service_name=users"), "{lines:?}");
//! # assert!(!lines[1].contains("secret"));
//! # Ok(())
//! # }
//! # #[cfg(not(feature = "axum"))]
//! # fn main() {}
//! ```
//!
//! With a plain hyper server (the `server` feature of hyper and the `service` feature of
//! hyper-util), one service per connection:
//!
//! ```no_run
//! use std::convert::Infallible;
//! use std::future::{ready, Ready};
//! use std::task::{Context, Poll};
//!
//! use http_body_util::Full;
//! use hyper::body::{Bytes, Incoming};
//! use hyper::{Request, Response};
//! use hyper_util::rt::TokioIo;
//! use hyper_util::service::TowerToHyperService;
//! use kakashi::tower::RequestLogLayer;
//! use tower_layer::Layer;
//!
//! /// The application: a tower service.
//! #[derive(Clone)]
//! struct Hello;
//!
//! impl tower_service::Service<Request<Incoming>> for Hello {
//!     type Response = Response<Full<Bytes>>;
//!     type Error = Infallible;
//!     type Future = Ready<Result<Self::Response, Infallible>>;
//!
//!     fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
//!         Poll::Ready(Ok(()))
//!     }
//!
//!     fn call(&mut self, _: Request<Incoming>) -> Self::Future {
//!         ready(Ok(Response::new(Full::new(Bytes::from_static(b"hello")))))
//!     }
//! }
//!
//! # async fn serve() -> std::io::Result<()> {
//! let layer = RequestLogLayer::new();
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
//! loop {
//!     let (stream, peer) = listener.accept().await?;
//!     let service = layer.layer(Hello).with_peer_addr(peer);
//!     tokio::spawn(
//!         hyper::server::conn::http1::Builder::new()
//!             .serve_connection(TokioIo::new(stream), TowerToHyperService::new(service)),
//!     );
//! }
//! # }
//! ```
//!
//! [`LogContext`]: crate::context::LogContext
//! [`context::spawn`]: crate::context::spawn
//! [`Logger`]: crate::logger::Logger
//! [`SocketAddr`]: std::net::SocketAddr

mod access_log;
mod client_ip;
mod config;
mod layer;
mod request_id;
mod service;

pub use access_log::MAX_LOGGED_VALUE_LEN;
pub use client_ip::{PeerAddr, TrustedProxy};
pub use layer::RequestLogLayer;
pub use request_id::MAX_REQUEST_ID_LEN;
pub use service::{RequestLogService, ResponseFuture};

/// `kakashi::tower`: the module path of the access records' location, whichever file logs them.
const MODULE_PATH: &str = module_path!();
