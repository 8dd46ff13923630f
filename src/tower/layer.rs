//! [`RequestLogLayer`]: the layer and its settings, and how it makes a [`RequestLogService`].

use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use http::header::HeaderName;
use http::Extensions;
use tower_layer::Layer;

use super::client_ip::TrustedProxy;
use super::config::Config;
use super::service::RequestLogService;
use crate::context::LogContext;
use crate::level::Level;
use crate::logger::Logger;

/// A tower [`Layer`] that gives each request a request id, a [`LogContext`] and an access
/// record. See the [module docs](crate::tower) for what it does and examples.
///
/// Setters take and return the layer by value. Defaults:
///
/// | setting | default |
/// |---|---|
/// | [`logger`](Self::logger) | [`get_logger("access")`](crate::get_logger) (the global pipeline) |
/// | [`context`](Self::context) | empty |
/// | [`trust_proxy`](Self::trust_proxy) | none: `X-Forwarded-For` and `X-Real-IP` are ignored |
/// | [`peer_addr`](Self::peer_addr) | a [`PeerAddr`](super::PeerAddr), else axum's `ConnectInfo<SocketAddr>` (feature `axum`), else a [`SocketAddr`] request extension |
/// | [`request_id_header`](Self::request_id_header) | `x-request-id` |
/// | [`success_level`](Self::success_level) | [`Level::Info`] (1xx, 2xx, 3xx) |
/// | [`client_error_level`](Self::client_error_level) | [`Level::Warn`] (4xx, and 499 for cancelled requests) |
/// | [`server_error_level`](Self::server_error_level) | [`Level::Error`] (5xx, failed and panicked requests) |
/// | [`route_template`](Self::route_template) | on: axum's route template (`/users/{id}`) when it matched one (feature `axum`), else the path |
/// | [`log_query`](Self::log_query) | off: the query string is not logged |
/// | [`log_user_agent`](Self::log_user_agent), [`log_referer`](Self::log_referer) | off |
/// | [`skip_path`](Self::skip_path) | none: every request is logged |
/// | [`sample_successes`](Self::sample_successes) | 1: every successful request is logged |
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
            config: Arc::new(Config::default()),
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
    /// default lookup of [`PeerAddr`](super::PeerAddr), axum's `ConnectInfo<SocketAddr>`
    /// (with the `axum` feature) and [`SocketAddr`]. For example, axum's `ConnectInfo` without
    /// the `axum` feature:
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

    /// Whether `access` holds axum's route template (`GET /users/{id}`, the default) rather
    /// than the request's path (`GET /users/7`). The template keeps ids and other values out of
    /// the log and groups requests by endpoint.
    ///
    /// axum sets the template when it routes a request, so the layer sees it only when added
    /// inside the router: with `Router::layer` or `Router::route_layer`, not around the
    /// `Router`. A request that matched no route (a 404) has its path logged. Needs the `axum`
    /// feature; without it, the path is always logged.
    #[cfg(feature = "axum")]
    pub fn route_template(mut self, yes: bool) -> Self {
        self.config_mut().route_template = yes;
        self
    }

    /// Adds the query string to access records as `query` (default off: it may hold tokens
    /// and personal data). Capped at [`MAX_LOGGED_VALUE_LEN`](super::MAX_LOGGED_VALUE_LEN)
    /// bytes; escaped by the formatter like any value.
    pub fn log_query(mut self, yes: bool) -> Self {
        self.config_mut().query = yes;
        self
    }

    /// Adds the `User-Agent` header to access records as `user_agent` (default off). Capped
    /// at [`MAX_LOGGED_VALUE_LEN`](super::MAX_LOGGED_VALUE_LEN) bytes; escaped by the
    /// formatter like any value.
    pub fn log_user_agent(mut self, yes: bool) -> Self {
        self.config_mut().user_agent = yes;
        self
    }

    /// Adds the `Referer` header to access records as `referer` (default off). Capped at
    /// [`MAX_LOGGED_VALUE_LEN`](super::MAX_LOGGED_VALUE_LEN) bytes; escaped by the formatter
    /// like any value.
    pub fn log_referer(mut self, yes: bool) -> Self {
        self.config_mut().referer = yes;
        self
    }

    /// Logs no access record for successful (1xx–3xx) requests to `path`: health checks,
    /// metrics scrapes. `path` is compared with the request's path and with its route
    /// template, exactly. Failed, panicked and cancelled requests to it are still logged, and
    /// its handlers' records still carry the request context.
    ///
    /// # Examples
    ///
    /// ```
    /// use kakashi::tower::RequestLogLayer;
    ///
    /// let layer = RequestLogLayer::new().skip_path("/health").skip_path("/metrics");
    /// # let _ = layer;
    /// ```
    pub fn skip_path(mut self, path: impl Into<String>) -> Self {
        self.config_mut().skip.push(path.into().into_boxed_str());
        self
    }

    /// Logs the access record of one in `every` successful (1xx–3xx) requests: the first,
    /// the `every + 1`-th, and so on, counted over all the services this layer makes (no
    /// randomness). Each of those records has a field `sampled` = `every`, the number of
    /// requests it stands for. `1` (the default) logs every request; `0` logs no successful
    /// request. Failed, panicked and cancelled requests are always logged.
    ///
    /// # Examples
    ///
    /// ```
    /// use kakashi::tower::RequestLogLayer;
    ///
    /// // Every error, and one in a hundred successes.
    /// let layer = RequestLogLayer::new().sample_successes(100);
    /// # let _ = layer;
    /// ```
    pub fn sample_successes(mut self, every: u32) -> Self {
        let config = self.config_mut();
        config.sample_successes = every;
        // Its own count, not one shared with the layer this one was cloned from.
        config.successes = Arc::new(AtomicU64::new(0));
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

// Here rather than in `service.rs`, which does not know the layer.
impl<S> RequestLogService<S> {
    /// Wraps `inner` with the settings of `layer` (the same as `layer.layer(inner)`).
    pub fn new(inner: S, layer: &RequestLogLayer) -> Self {
        layer.layer(inner)
    }
}
