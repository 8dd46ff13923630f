//! tower middleware for axum and hyper (feature `tower`): request context and access records.
//!
//! [`RequestLogLayer`] wraps a service. For each request it:
//!
//! 1. takes the request id from the `x-request-id` header when it is well formed (1 to 128
//!    characters of `A-Z a-z 0-9 . _ : -`), else generates one (32 hex digits, unique within
//!    the process and random across processes); the id replaces a malformed header on the
//!    request and is echoed on the response;
//! 2. finds the client IP: the connection's peer address, or — only when that peer is one of
//!    the [trusted proxies](RequestLogLayer::trust_proxy) — the right-most address of
//!    `X-Forwarded-For` that is not a trusted proxy, then `X-Real-IP`. By default no proxy is
//!    trusted and both headers are ignored: anyone can send them;
//! 3. runs the service's future inside a [`LogContext`] scope holding `ip`, `access`
//!    (`"METHOD /path"`, the path without its query string, which may hold secrets),
//!    `request_id` and whatever [base context](RequestLogLayer::context) you configure. Every
//!    record logged by the handler — and by tasks it starts with
//!    [`context::spawn`] — carries these fields;
//! 4. logs one access record per request on its [`Logger`] (default
//!    [`get_logger("access")`](crate::get_logger)), with the request context and the fields
//!    below, at info for 1xx–3xx, warn for 4xx and error for 5xx
//!    ([configurable](RequestLogLayer::success_level)).
//!
//! | field | value |
//! |---|---|
//! | `method` | the request method |
//! | `path` | the request path, without the query string |
//! | `status` | the response status; 500 when the service failed or panicked; 499 when the request was cancelled |
//! | `latency_ms` | from the call to the response head, in milliseconds (float, microsecond precision) |
//! | `size` | the response body's size, when known from `Content-Length` or an exact size hint |
//! | `panic` | `true` when the service's future panicked |
//! | `cancelled` | `true` when the future was dropped before it finished (the client went away) |
//! | `error` | `true` when the service returned an error instead of a response |
//!
//! The record is logged when the response head is ready, so a streamed body's transfer time is
//! not part of `latency_ms`; records logged while the body streams carry no request context.
//!
//! # Panics and cancellation
//!
//! A panicking service future is caught, its access record (status 500, `panic=true`) is
//! logged, and the panic is **resumed**: the layer changes nothing about how your server
//! handles panics. To turn panics into 500 responses, put
//! `tower_http::catch_panic::CatchPanicLayer` *outside* this layer (with axum's
//! `Router::layer`, add it after this one).
//!
//! A request whose future is dropped before it finishes — hyper drops it when the client
//! closes the connection, and a runtime drops it on shutdown — is logged with status 499 and
//! `cancelled=true` when the future is dropped.
//!
//! # Client address
//!
//! The layer looks for the peer address in the request's extensions: a [`PeerAddr`], else a
//! plain [`SocketAddr`]. axum puts it in `axum::extract::ConnectInfo` instead (when served with
//! `into_make_service_with_connect_info::<SocketAddr>()`); tell the layer where to look with
//! [`RequestLogLayer::peer_addr`], as below. With a plain hyper server, which serves one
//! connection per service, use [`RequestLogService::with_peer_addr`].
//!
//! # Examples
//!
//! With axum:
//!
//! ```
//! use std::net::SocketAddr;
//!
//! use axum::extract::{ConnectInfo, Path};
//! use axum::routing::get;
//! use axum::Router;
//! use kakashi::tower::RequestLogLayer;
//! use kakashi::write::MemoryWriter;
//! use kakashi::{info, AsyncPipeline, LogContext, PipelineConfig, Writer};
//! # use tokio::io::{AsyncReadExt, AsyncWriteExt};
//!
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
//!     .layer(
//!         RequestLogLayer::new()
//!             .logger(pipeline.logger("access"))
//!             .context(LogContext::new().with_service_name("users"))
//!             .peer_addr(|ext| ext.get::<ConnectInfo<SocketAddr>>().map(|info| info.0)),
//!     );
//!
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! # let addr = listener.local_addr()?;
//! let server = tokio::spawn(async move {
//!     axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>()).await
//! });
//! # let mut stream = tokio::net::TcpStream::connect(addr).await?;
//! # stream
//! #     .write_all(b"GET /users/7?token=secret HTTP/1.1\r\nhost: x\r\nx-request-id: req-7\r\nconnection: close\r\n\r\n")
//! #     .await?;
//! # let mut response = String::new();
//! # stream.read_to_string(&mut response).await?;
//! # assert!(response.contains("x-request-id: req-7"), "{response}");
//! # server.abort();
//! guard.shutdown().await;
//! # let lines = memory.lines();
//! # assert!(lines[0].contains("logger=users msg=\"looking up user\" user=7 ip=127.0.0.1 access=\"GET /users/7\" request_id=req-7"), "{lines:?}");
//! # assert!(lines[1].contains("logger=access msg=\"GET /users/7 200\" method=GET path=/users/7 status=200"), "{lines:?}");
//! # assert!(!lines[1].contains("secret"));
//! # Ok(())
//! # }
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

pub use client_ip::{PeerAddr, TrustedProxy};
pub use layer::RequestLogLayer;
pub use request_id::MAX_REQUEST_ID_LEN;
pub use service::{RequestLogService, ResponseFuture};

/// `kakashi::tower`: the module path of the access records' location, whichever file logs them.
const MODULE_PATH: &str = module_path!();
