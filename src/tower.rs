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

use std::fmt;
use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::panic::{self, AssertUnwindSafe};
use std::pin::Pin;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Instant;

use http::header::{HeaderName, HeaderValue, CONTENT_LENGTH};
use http::{Extensions, HeaderMap, Request, Response};
use http_body::Body;
use tower_layer::Layer;
use tower_service::Service;

use crate::context::{self, LogContext, WithContext};
use crate::error::Error;
use crate::field::{Field, Value};
use crate::level::Level;
use crate::logger::{get_logger, Logger};
use crate::record::Location;

/// The longest request id taken from a request header, in bytes.
pub const MAX_REQUEST_ID_LEN: usize = 128;

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");
const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The address of a request's connection peer, as a request extension.
///
/// [`RequestLogLayer`] reads it (then a plain [`SocketAddr`] extension) unless configured with
/// [`RequestLogLayer::peer_addr`]. Insert it in whatever accepts connections, or use
/// [`RequestLogService::with_peer_addr`].
///
/// # Examples
///
/// ```
/// use kakashi::tower::PeerAddr;
///
/// let mut request = http::Request::new(());
/// request.extensions_mut().insert(PeerAddr("192.0.2.1:4711".parse().unwrap()));
/// assert_eq!(request.extensions().get::<PeerAddr>().unwrap().0.port(), 4711);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PeerAddr(pub SocketAddr);

/// A proxy (one address or a network) whose `X-Forwarded-For` and `X-Real-IP` headers are
/// believed.
///
/// IPv4-mapped IPv6 addresses (`::ffff:10.0.0.1`) are compared as the IPv4 addresses they are.
///
/// # Examples
///
/// ```
/// use kakashi::tower::TrustedProxy;
///
/// let net: TrustedProxy = "10.0.0.0/8".parse().unwrap();
/// assert!(net.contains("10.1.2.3".parse().unwrap()));
/// assert!(net.contains("::ffff:10.1.2.3".parse().unwrap()));
/// assert!(!net.contains("11.0.0.1".parse().unwrap()));
///
/// let one: TrustedProxy = "::1".parse().unwrap();
/// assert_eq!(one.to_string(), "::1/128");
/// assert!("10.0.0.0/33".parse::<TrustedProxy>().is_err());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TrustedProxy {
    network: IpAddr,
    prefix_len: u8,
}

impl TrustedProxy {
    /// One address.
    pub fn addr(ip: IpAddr) -> Self {
        let ip = ip.to_canonical();
        TrustedProxy {
            network: ip,
            prefix_len: max_prefix(ip),
        }
    }

    /// A network: the addresses whose first `prefix_len` bits are those of `ip`.
    ///
    /// # Errors
    ///
    /// [`Error`] when `prefix_len` is longer than the address (32 bits for IPv4, 128 for IPv6).
    pub fn network(ip: IpAddr, prefix_len: u8) -> Result<Self, Error> {
        // An IPv4-mapped network is the IPv4 network it maps.
        let (ip, prefix_len) = match ip {
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) if prefix_len >= 96 => (IpAddr::V4(v4), prefix_len - 96),
                _ => (ip, prefix_len),
            },
            IpAddr::V4(_) => (ip, prefix_len),
        };
        if prefix_len > max_prefix(ip) {
            return Err(Error::config(format!(
                "trusted proxy network {ip}/{prefix_len}: the prefix is longer than the address"
            )));
        }
        Ok(TrustedProxy {
            network: mask(ip, prefix_len),
            prefix_len,
        })
    }

    /// True if `ip` is this proxy or in this network.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        ip.is_ipv4() == self.network.is_ipv4() && mask(ip, self.prefix_len) == self.network
    }
}

fn max_prefix(ip: IpAddr) -> u8 {
    if ip.is_ipv4() {
        32
    } else {
        128
    }
}

fn mask(ip: IpAddr, prefix_len: u8) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => {
            let keep = u32::MAX
                .checked_shl(32 - u32::from(prefix_len.min(32)))
                .unwrap_or(0);
            IpAddr::V4(Ipv4Addr::from(u32::from(v4) & keep))
        }
        IpAddr::V6(v6) => {
            let keep = u128::MAX
                .checked_shl(128 - u32::from(prefix_len.min(128)))
                .unwrap_or(0);
            IpAddr::V6(Ipv6Addr::from(u128::from(v6) & keep))
        }
    }
}

impl From<IpAddr> for TrustedProxy {
    fn from(ip: IpAddr) -> Self {
        TrustedProxy::addr(ip)
    }
}

impl From<Ipv4Addr> for TrustedProxy {
    fn from(ip: Ipv4Addr) -> Self {
        TrustedProxy::addr(IpAddr::V4(ip))
    }
}

impl From<Ipv6Addr> for TrustedProxy {
    fn from(ip: Ipv6Addr) -> Self {
        TrustedProxy::addr(IpAddr::V6(ip))
    }
}

impl FromStr for TrustedProxy {
    type Err = Error;

    /// Parses an address (`10.0.0.1`, `::1`) or a network in CIDR notation (`10.0.0.0/8`).
    fn from_str(s: &str) -> Result<Self, Error> {
        let bad = || Error::config(format!("{s:?} is not an IP address or CIDR network"));
        match s.trim().split_once('/') {
            Some((ip, len)) => {
                let ip = ip.parse::<IpAddr>().map_err(|_| bad())?;
                let len = len.parse::<u8>().map_err(|_| bad())?;
                TrustedProxy::network(ip, len)
            }
            None => s
                .trim()
                .parse::<IpAddr>()
                .map(TrustedProxy::addr)
                .map_err(|_| bad()),
        }
    }
}

impl fmt::Display for TrustedProxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix_len)
    }
}

type PeerFn = Arc<dyn Fn(&Extensions) -> Option<SocketAddr> + Send + Sync>;

#[derive(Clone)]
struct Config {
    logger: Logger,
    context: LogContext,
    trusted: Vec<TrustedProxy>,
    peer_addr: Option<PeerFn>,
    header: HeaderName,
    success: Level,
    client_error: Level,
    server_error: Level,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("logger", &self.logger.name())
            .field("context", &self.context)
            .field("trusted_proxies", &self.trusted)
            .field("custom_peer_addr", &self.peer_addr.is_some())
            .field("request_id_header", &self.header)
            .field("success_level", &self.success)
            .field("client_error_level", &self.client_error)
            .field("server_error_level", &self.server_error)
            .finish()
    }
}

impl Config {
    fn level_for(&self, status: u16) -> Level {
        match status {
            500.. => self.server_error,
            400..=499 => self.client_error,
            _ => self.success,
        }
    }

    fn is_trusted(&self, ip: IpAddr) -> bool {
        self.trusted.iter().any(|proxy| proxy.contains(ip))
    }

    fn peer(&self, extensions: &Extensions) -> Option<SocketAddr> {
        match &self.peer_addr {
            Some(extract) => extract(extensions),
            None => extensions
                .get::<PeerAddr>()
                .map(|p| p.0)
                .or_else(|| extensions.get::<SocketAddr>().copied()),
        }
    }

    /// The client's address: the peer's, unless the peer is a trusted proxy that says whom it
    /// forwards for.
    fn client_ip(&self, peer: Option<SocketAddr>, headers: &HeaderMap) -> Option<IpAddr> {
        let peer = peer?.ip().to_canonical();
        if !self.is_trusted(peer) {
            return Some(peer);
        }
        self.forwarded_for(headers)
            .or_else(|| {
                let value = headers.get(X_REAL_IP)?.to_str().ok()?;
                parse_forwarded_ip(value.trim())
            })
            .or(Some(peer))
    }

    /// The right-most `X-Forwarded-For` hop that is not a trusted proxy (each proxy appends
    /// the address it received from, so only the hops right of the first untrusted one are
    /// vouched for). When every hop is trusted, the left-most one. `None` when the header is
    /// missing or a hop that would be read is not an address.
    fn forwarded_for(&self, headers: &HeaderMap) -> Option<IpAddr> {
        let mut farthest = None;
        // Several header lines form one list, in order.
        for line in headers.get_all(X_FORWARDED_FOR).iter().rev() {
            let line = line.to_str().ok()?;
            for hop in line.rsplit(',').map(str::trim).filter(|h| !h.is_empty()) {
                let ip = parse_forwarded_ip(hop)?;
                if !self.is_trusted(ip) {
                    return Some(ip);
                }
                farthest = Some(ip);
            }
        }
        farthest
    }
}

/// Parses `1.2.3.4`, `1.2.3.4:80`, `::1`, `[::1]` or `[::1]:80`.
fn parse_forwarded_ip(s: &str) -> Option<IpAddr> {
    let ip = s
        .parse::<IpAddr>()
        .ok()
        .or_else(|| s.parse::<SocketAddr>().ok().map(|a| a.ip()))
        .or_else(|| {
            s.strip_prefix('[')?
                .strip_suffix(']')?
                .parse::<Ipv6Addr>()
                .ok()
                .map(IpAddr::V6)
        })?;
    Some(ip.to_canonical())
}

/// The request id in `value`, if it is one we are willing to log and echo.
fn valid_request_id(value: &HeaderValue) -> bool {
    let bytes = value.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= MAX_REQUEST_ID_LEN
        && bytes
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}

/// A fresh request id: 16 hex digits that identify the process (random, drawn once) and 16
/// that are a bijective scramble of a counter, so ids never repeat within a process.
fn generate_request_id() -> String {
    static SEED: OnceLock<[u64; 2]> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);

    let seed = SEED.get_or_init(|| {
        // std seeds each RandomState's keys from the OS's randomness; the clock and pid only
        // add to it.
        let state = std::collections::hash_map::RandomState::new();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        [0u8, 1].map(|i| {
            let mut hasher = state.build_hasher();
            hasher.write_u8(i);
            hasher.write_u128(now);
            hasher.write_u32(std::process::id());
            hasher.finish()
        })
    });
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut out = [0u8; 32];
    write_hex(&mut out[..16], seed[0]);
    write_hex(&mut out[16..], scramble(n.wrapping_add(seed[1])));
    out.iter().map(|&b| char::from(b)).collect()
}

/// The splitmix64 finalizer: a bijection on `u64` that spreads every input bit.
fn scramble(mut x: u64) -> u64 {
    x ^= x >> 30;
    x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x ^= x >> 27;
    x = x.wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

fn write_hex(out: &mut [u8], v: u64) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for (i, slot) in out.iter_mut().take(16).enumerate() {
        *slot = DIGITS[((v >> (60 - 4 * i)) & 0xf) as usize];
    }
}

/// A tower [`Layer`] that gives each request a request id, a [`LogContext`] and an access
/// record. See the [module docs](self) for what it does and examples.
///
/// Setters take and return the layer by value. Defaults:
///
/// | setting | default |
/// |---|---|
/// | [`logger`](Self::logger) | [`get_logger("access")`](crate::get_logger) (the global pipeline) |
/// | [`context`](Self::context) | empty |
/// | [`trust_proxy`](Self::trust_proxy) | none: `X-Forwarded-For` and `X-Real-IP` are ignored |
/// | [`peer_addr`](Self::peer_addr) | a [`PeerAddr`], else a [`SocketAddr`] request extension |
/// | [`request_id_header`](Self::request_id_header) | `x-request-id` |
/// | [`success_level`](Self::success_level) | [`Level::Info`] (1xx, 2xx, 3xx) |
/// | [`client_error_level`](Self::client_error_level) | [`Level::Warn`] (4xx, and 499 for cancelled requests) |
/// | [`server_error_level`](Self::server_error_level) | [`Level::Error`] (5xx, failed and panicked requests) |
///
/// Cloning the layer is one reference-count increment.
///
/// # Examples
///
/// ```
/// use kakashi::tower::RequestLogLayer;
/// use kakashi::{Level, LogContext};
///
/// let layer = RequestLogLayer::new()
///     .context(LogContext::new().with_service_name("billing").with_version("1.4.2"))
///     .trust_proxy("10.0.0.0/8".parse().unwrap())
///     .client_error_level(Level::Info);
/// # let _ = layer;
/// ```
#[derive(Clone, Debug)]
#[must_use = "a layer does nothing until it wraps a service"]
pub struct RequestLogLayer {
    config: Arc<Config>,
}

impl Default for RequestLogLayer {
    fn default() -> Self {
        RequestLogLayer {
            config: Arc::new(Config {
                logger: get_logger("access"),
                context: LogContext::new(),
                trusted: Vec::new(),
                peer_addr: None,
                header: X_REQUEST_ID,
                success: Level::Info,
                client_error: Level::Warn,
                server_error: Level::Error,
            }),
        }
    }
}

impl RequestLogLayer {
    /// A layer with the defaults in the table above.
    pub fn new() -> Self {
        RequestLogLayer::default()
    }

    fn config_mut(&mut self) -> &mut Config {
        Arc::make_mut(&mut self.config)
    }

    /// The logger that writes the access records (for example
    /// [`pipeline.logger("access")`](crate::Pipeline::logger)).
    pub fn logger(mut self, logger: Logger) -> Self {
        self.config_mut().logger = logger;
        self
    }

    /// Fields every request's context starts from (service name, version, environment, …);
    /// the request's own `ip`, `access` and `request_id` win over the same fields here.
    pub fn context(mut self, context: LogContext) -> Self {
        self.config_mut().context = context;
        self
    }

    /// Believes `X-Forwarded-For` and `X-Real-IP` on connections from `proxy` (one address
    /// or a network). Trust only the proxies in front of your service: a client that can
    /// reach the service directly can write these headers.
    pub fn trust_proxy(mut self, proxy: TrustedProxy) -> Self {
        self.config_mut().trusted.push(proxy);
        self
    }

    /// Adds several trusted proxies; see [`trust_proxy`](Self::trust_proxy).
    pub fn trust_proxies(mut self, proxies: impl IntoIterator<Item = TrustedProxy>) -> Self {
        self.config_mut().trusted.extend(proxies);
        self
    }

    /// Where to find the connection's peer address in a request's extensions, replacing the
    /// default lookup of [`PeerAddr`] and [`SocketAddr`]. With axum:
    /// `.peer_addr(|ext| ext.get::<ConnectInfo<SocketAddr>>().map(|info| info.0))`.
    pub fn peer_addr(
        mut self,
        extract: impl Fn(&Extensions) -> Option<SocketAddr> + Send + Sync + 'static,
    ) -> Self {
        self.config_mut().peer_addr = Some(Arc::new(extract));
        self
    }

    /// The header that carries the request id, in requests and responses (default
    /// `x-request-id`).
    pub fn request_id_header(mut self, header: HeaderName) -> Self {
        self.config_mut().header = header;
        self
    }

    /// The level of access records with a 1xx, 2xx or 3xx status (default info).
    pub fn success_level(mut self, level: Level) -> Self {
        self.config_mut().success = level;
        self
    }

    /// The level of access records with a 4xx status, cancelled requests included (default
    /// warn).
    pub fn client_error_level(mut self, level: Level) -> Self {
        self.config_mut().client_error = level;
        self
    }

    /// The level of access records with a 5xx status, failed and panicked requests included
    /// (default error).
    pub fn server_error_level(mut self, level: Level) -> Self {
        self.config_mut().server_error = level;
        self
    }
}

impl<S> Layer<S> for RequestLogLayer {
    type Service = RequestLogService<S>;

    fn layer(&self, inner: S) -> RequestLogService<S> {
        RequestLogService {
            inner,
            config: Arc::clone(&self.config),
            peer: None,
        }
    }
}

/// The service made by [`RequestLogLayer`]: runs the inner service's future in the request's
/// [`LogContext`] and logs its access record.
#[derive(Clone, Debug)]
pub struct RequestLogService<S> {
    inner: S,
    config: Arc<Config>,
    peer: Option<SocketAddr>,
}

impl<S> RequestLogService<S> {
    /// Wraps `inner` with the settings of `layer` (the same as `layer.layer(inner)`).
    pub fn new(inner: S, layer: &RequestLogLayer) -> Self {
        layer.layer(inner)
    }

    /// Uses `peer` as the connection's peer address for requests whose extensions hold none.
    /// For servers that make one service per connection, such as a plain hyper server.
    ///
    /// # Examples
    ///
    /// ```
    /// use kakashi::tower::RequestLogLayer;
    /// use tower_layer::Layer;
    ///
    /// let peer = "192.0.2.7:50000".parse().unwrap();
    /// let service = RequestLogLayer::new().layer(()).with_peer_addr(peer);
    /// # let _ = service;
    /// ```
    #[must_use]
    pub fn with_peer_addr(mut self, peer: SocketAddr) -> Self {
        self.peer = Some(peer);
        self
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for RequestLogService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ResBody: Body,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        let start = Instant::now();
        let config = &*self.config;

        let peer = config.peer(req.extensions()).or(self.peer);
        let ip = config.client_ip(peer, req.headers());

        let given = req
            .headers()
            .get(&config.header)
            .filter(|v| valid_request_id(v))
            .and_then(|v| Some((Arc::<str>::from(v.to_str().ok()?), v.clone())));
        let (request_id, header_value) = match given {
            Some(given) => given,
            None => {
                let id = generate_request_id();
                let value = HeaderValue::from_str(&id).unwrap_or(HeaderValue::from_static("-"));
                // Downstream code that reads the header sees the id that is logged.
                req.headers_mut()
                    .insert(config.header.clone(), value.clone());
                (Arc::from(id), value)
            }
        };

        let method = req.method().as_str();
        let path = req.uri().path();
        let mut access = String::with_capacity(method.len() + 1 + path.len());
        access.push_str(method);
        access.push(' ');
        access.push_str(path);
        let method_len = method.len();
        let access: Arc<str> = Arc::from(access);

        let mut ctx = config
            .context
            .clone()
            .with_access(Arc::clone(&access))
            .with_request_id(request_id);
        if let Some(ip) = ip {
            ctx = ctx.with_ip(ip.to_string());
        }
        let ctx = context::merge_with_current(ctx);

        let pending = Pending {
            config: Arc::clone(&self.config),
            start,
            access,
            method_len,
            request_id: header_value,
            ctx: Arc::clone(&ctx),
        };
        let future = self.inner.call(req);
        ResponseFuture {
            inner: context::scope_shared(
                ctx,
                Access {
                    future,
                    pending: Some(pending),
                },
            ),
        }
    }
}

pin_project_lite::pin_project! {
    /// The future of [`RequestLogService`]: the inner service's future, run in the request's
    /// log context.
    ///
    /// # Cancel safety
    ///
    /// Dropping it before it finishes logs the access record with status 499 and
    /// `cancelled=true`.
    #[must_use = "futures do nothing unless polled"]
    pub struct ResponseFuture<F> {
        #[pin]
        inner: WithContext<Access<F>>,
    }
}

impl<F> fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
    B: Body,
{
    type Output = Result<Response<B>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.project().inner.poll(cx)
    }
}

pin_project_lite::pin_project! {
    /// Runs inside the request's scope, so that the access record carries its context.
    struct Access<F> {
        #[pin]
        future: F,
        // `Some` until the access record is logged.
        pending: Option<Pending>,
    }

    impl<F> PinnedDrop for Access<F> {
        fn drop(this: Pin<&mut Self>) {
            if let Some(pending) = this.project().pending.take() {
                pending.cancelled();
            }
        }
    }
}

impl<F, B, E> Future for Access<F>
where
    F: Future<Output = Result<Response<B>, E>>,
    B: Body,
{
    type Output = Result<Response<B>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let future = this.future;
        match panic::catch_unwind(AssertUnwindSafe(|| future.poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(Ok(mut response))) => {
                if let Some(pending) = this.pending.take() {
                    pending.responded(&mut response);
                }
                Poll::Ready(Ok(response))
            }
            Ok(Poll::Ready(Err(error))) => {
                if let Some(pending) = this.pending.take() {
                    pending.log(Outcome::Failed);
                }
                Poll::Ready(Err(error))
            }
            Err(payload) => {
                if let Some(pending) = this.pending.take() {
                    pending.log(Outcome::Panicked);
                }
                panic::resume_unwind(payload)
            }
        }
    }
}

/// What the access record needs once the request is over.
struct Pending {
    config: Arc<Config>,
    start: Instant,
    /// `"METHOD /path"`.
    access: Arc<str>,
    method_len: usize,
    request_id: HeaderValue,
    /// For the record of a cancelled request, logged outside the request's scope.
    ctx: Arc<LogContext>,
}

#[derive(Clone, Copy)]
enum Outcome {
    Responded { status: u16, size: Option<u64> },
    Failed,
    Panicked,
    Cancelled,
}

impl Outcome {
    fn status(self) -> u16 {
        match self {
            Outcome::Responded { status, .. } => status,
            Outcome::Failed | Outcome::Panicked => 500,
            Outcome::Cancelled => 499,
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Responded { status, .. } => write!(f, "{status}"),
            Outcome::Failed => f.write_str("500 (service error)"),
            Outcome::Panicked => f.write_str("500 (panicked)"),
            Outcome::Cancelled => f.write_str("499 (cancelled)"),
        }
    }
}

static ACCESS: Location = Location::new(module_path!(), file!(), line!());

impl Pending {
    fn responded<B: Body>(self, response: &mut Response<B>) {
        response
            .headers_mut()
            .insert(self.config.header.clone(), self.request_id.clone());
        let size = response
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .or_else(|| response.body().size_hint().exact());
        self.log(Outcome::Responded {
            status: response.status().as_u16(),
            size,
        });
    }

    fn cancelled(self) {
        // Dropped outside the request's scope (maybe inside another task's): log in the
        // request's context all the same. Entering a task-local fails only while the thread is
        // being torn down; a drop must not panic then.
        let ctx = Arc::clone(&self.ctx);
        let _ = panic::catch_unwind(AssertUnwindSafe(|| {
            context::sync_scope_shared(ctx, || self.log(Outcome::Cancelled))
        }));
    }

    fn log(&self, outcome: Outcome) {
        let status = outcome.status();
        let level = self.config.level_for(status);
        let logger = &self.config.logger;
        if !logger.enabled(level) {
            return;
        }
        let latency_ms = self.start.elapsed().as_micros() as f64 / 1000.0;
        let (method, path) = self
            .access
            .split_at_checked(self.method_len)
            .map_or(("", &*self.access), |(m, p)| (m, p.get(1..).unwrap_or("")));
        let mut fields = [Field::new("", Value::Null); 6];
        fields[0] = Field::new("method", Value::Str(method));
        fields[1] = Field::new("path", Value::Str(path));
        fields[2] = Field::new("status", Value::U64(u64::from(status)));
        fields[3] = Field::new("latency_ms", Value::F64(latency_ms));
        let mut n = 4;
        let flag = match outcome {
            Outcome::Responded { size, .. } => {
                if let Some(size) = size {
                    fields[n] = Field::new("size", Value::U64(size));
                    n += 1;
                }
                None
            }
            Outcome::Failed => Some("error"),
            Outcome::Panicked => Some("panic"),
            Outcome::Cancelled => Some("cancelled"),
        };
        if let Some(flag) = flag {
            fields[n] = Field::new(flag, Value::Bool(true));
            n += 1;
        }
        logger.log_at(
            level,
            format_args!("{} {}", self.access, outcome),
            &fields[..n],
            &ACCESS,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(trusted: &[&str]) -> RequestLogLayer {
        RequestLogLayer::new().trust_proxies(trusted.iter().map(|s| s.parse().unwrap()))
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        map
    }

    fn client(trusted: &[&str], peer: &str, pairs: &[(&str, &str)]) -> Option<String> {
        let config = layer(trusted).config;
        config
            .client_ip(Some(peer.parse().unwrap()), &headers(pairs))
            .map(|ip| ip.to_string())
    }

    #[test]
    fn forwarded_headers_need_a_trusted_peer() {
        let xff = [("x-forwarded-for", "203.0.113.9")];
        assert_eq!(client(&[], "10.0.0.1:1", &xff).unwrap(), "10.0.0.1");
        assert_eq!(
            client(&["10.0.0.2"], "10.0.0.1:1", &xff).unwrap(),
            "10.0.0.1"
        );
        assert_eq!(
            client(&["10.0.0.0/8"], "10.0.0.1:1", &xff).unwrap(),
            "203.0.113.9"
        );
        assert_eq!(
            client(&["10.0.0.0/8"], "[::ffff:10.0.0.1]:1", &xff).unwrap(),
            "203.0.113.9"
        );
    }

    #[test]
    fn right_most_untrusted_hop_wins() {
        let trusted = ["10.0.0.0/8"];
        let peer = "10.0.0.1:1";
        let spoofed = [(
            "x-forwarded-for",
            "1.1.1.1, 203.0.113.9, 10.0.0.3, [2001:db8::1]:80, 10.0.0.2",
        )];
        assert_eq!(client(&trusted, peer, &spoofed).unwrap(), "2001:db8::1");
        let two_lines = [
            ("x-forwarded-for", "1.1.1.1, 203.0.113.9"),
            ("x-forwarded-for", "10.0.0.3:443"),
        ];
        assert_eq!(client(&trusted, peer, &two_lines).unwrap(), "203.0.113.9");
        let all_trusted = [("x-forwarded-for", "10.9.9.9, 10.0.0.3")];
        assert_eq!(client(&trusted, peer, &all_trusted).unwrap(), "10.9.9.9");
        // Garbage where the client should be: no answer from the header; X-Real-IP next.
        let garbage = [
            ("x-forwarded-for", "1.1.1.1, unknown, 10.0.0.3"),
            ("x-real-ip", " 198.51.100.4 "),
        ];
        assert_eq!(client(&trusted, peer, &garbage).unwrap(), "198.51.100.4");
        let neither = [("x-forwarded-for", "nonsense"), ("x-real-ip", "also")];
        assert_eq!(client(&trusted, peer, &neither).unwrap(), "10.0.0.1");
        assert_eq!(client(&trusted, peer, &[]).unwrap(), "10.0.0.1");
    }

    #[test]
    fn no_peer_no_ip() {
        let config = layer(&["0.0.0.0/0"]).config;
        let h = headers(&[("x-forwarded-for", "1.2.3.4")]);
        assert_eq!(config.client_ip(None, &h), None);
    }

    #[test]
    fn trusted_proxy_parsing() {
        for bad in [
            "",
            "10.0.0.0/",
            "10.0.0.0/33",
            "::/129",
            "/8",
            "10.0.0.0/8/8",
            "x",
        ] {
            assert!(bad.parse::<TrustedProxy>().is_err(), "{bad}");
        }
        let all: TrustedProxy = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains("255.1.2.3".parse().unwrap()));
        assert!(!all.contains("::2".parse().unwrap()));
        let mapped: TrustedProxy = "::ffff:10.0.0.0/104".parse().unwrap();
        assert_eq!(mapped.to_string(), "10.0.0.0/8");
        let v6: TrustedProxy = "2001:db8::/32".parse().unwrap();
        assert!(v6.contains("2001:db8:ffff::1".parse().unwrap()));
        assert!(!v6.contains("2001:db9::1".parse().unwrap()));
    }

    #[test]
    fn request_ids() {
        let ok = |s: &str| valid_request_id(&HeaderValue::from_str(s).unwrap());
        assert!(ok("abc-DEF_1.2:3"));
        assert!(ok(&"a".repeat(MAX_REQUEST_ID_LEN)));
        assert!(!ok(&"a".repeat(MAX_REQUEST_ID_LEN + 1)));
        assert!(!ok(""));
        assert!(!ok("a b"));
        assert!(!ok("a\tb"));
        assert!(!ok("a\"b"));
        assert!(!valid_request_id(
            &HeaderValue::from_bytes(b"caf\xc3\xa9").unwrap()
        ));

        let a = generate_request_id();
        let b = generate_request_id();
        assert_eq!(a.len(), 32);
        assert_ne!(a, b);
        assert_eq!(a[..16], b[..16]);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
    }

    #[test]
    fn levels_by_status() {
        let config = RequestLogLayer::new().config;
        assert_eq!(config.level_for(101), Level::Info);
        assert_eq!(config.level_for(304), Level::Info);
        assert_eq!(config.level_for(404), Level::Warn);
        assert_eq!(config.level_for(499), Level::Warn);
        assert_eq!(config.level_for(503), Level::Error);
    }
}
