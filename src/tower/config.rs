//! [`Config`]: the settings a [`RequestLogLayer`](super::RequestLogLayer) shares with the
//! services it makes, and what they decide for a request: its peer address, client IP, route,
//! the level of its access record and whether it is logged at all.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use http::header::HeaderName;
use http::{Extensions, HeaderMap};

use super::client_ip::{self, PeerAddr, TrustedProxy};
use super::request_id::X_REQUEST_ID;
use crate::context::LogContext;
use crate::level::Level;
use crate::logger::{get_logger, Logger};

pub(super) type PeerFn = Arc<dyn Fn(&Extensions) -> Option<SocketAddr> + Send + Sync>;

#[derive(Clone)]
pub(super) struct Config {
    pub(super) logger: Logger,
    pub(super) context: LogContext,
    pub(super) trusted: Vec<TrustedProxy>,
    pub(super) peer_addr: Option<PeerFn>,
    pub(super) header: HeaderName,
    pub(super) success: Level,
    pub(super) client_error: Level,
    pub(super) server_error: Level,
    /// Log axum's route template rather than the request's path.
    pub(super) route_template: bool,
    pub(super) query: bool,
    pub(super) user_agent: bool,
    pub(super) referer: bool,
    /// Paths (or route templates) whose successful requests are not logged.
    pub(super) skip: Vec<Box<str>>,
    /// Log one in this many successful requests (0: none).
    pub(super) sample_successes: u32,
    /// Successful requests seen for sampling, shared by the services of one layer.
    pub(super) successes: Arc<AtomicU64>,
    /// Set once the layer has said that a request came without a peer address.
    pub(super) warned_no_peer: Arc<AtomicBool>,
}

/// The defaults documented on [`RequestLogLayer`](super::RequestLogLayer).
impl Default for Config {
    fn default() -> Self {
        Config {
            logger: get_logger("access"),
            context: LogContext::new(),
            trusted: Vec::new(),
            peer_addr: None,
            header: X_REQUEST_ID,
            success: Level::Info,
            client_error: Level::Warn,
            server_error: Level::Error,
            route_template: true,
            query: false,
            user_agent: false,
            referer: false,
            skip: Vec::new(),
            sample_successes: 1,
            successes: Arc::new(AtomicU64::new(0)),
            warned_no_peer: Arc::new(AtomicBool::new(false)),
        }
    }
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
            .field("route_template", &self.route_template)
            .field("log_query", &self.query)
            .field("log_user_agent", &self.user_agent)
            .field("log_referer", &self.referer)
            .field("skip_paths", &self.skip)
            .field("sample_successes", &self.sample_successes)
            .finish()
    }
}

impl Config {
    pub(super) fn level_for(&self, status: u16) -> Level {
        match status {
            500.. => self.server_error,
            400..=499 => self.client_error,
            _ => self.success,
        }
    }

    /// The connection's peer address, from the request's extensions: the custom lookup, else
    /// a [`PeerAddr`], axum's `ConnectInfo<SocketAddr>` (feature `axum`) or a [`SocketAddr`].
    pub(super) fn peer(&self, extensions: &Extensions) -> Option<SocketAddr> {
        match &self.peer_addr {
            Some(extract) => extract(extensions),
            None => extensions
                .get::<PeerAddr>()
                .map(|p| p.0)
                .or_else(|| connect_info(extensions))
                .or_else(|| extensions.get::<SocketAddr>().copied()),
        }
    }

    /// The route template axum matched (`/users/{id}`), when configured to log it and known:
    /// axum sets it when it routes, so only a layer added inside the router (`Router::layer`,
    /// `Router::route_layer`) sees it.
    pub(super) fn route<'a>(&self, extensions: &'a Extensions) -> Option<&'a str> {
        if self.route_template {
            matched_path(extensions)
        } else {
            None
        }
    }

    /// Whether `path` (the request's) or `route` (the template it matched) is on the skip list.
    pub(super) fn skip_listed(&self, path: &str, route: Option<&str>) -> bool {
        self.skip
            .iter()
            .any(|skip| **skip == *path || Some(&**skip) == route)
    }

    /// Whether sampling leaves out the access record of one more successful request; counts
    /// it.
    pub(super) fn sampled_out(&self) -> bool {
        match self.sample_successes {
            0 => true,
            1 => false,
            n => self.successes.fetch_add(1, Ordering::Relaxed) % u64::from(n) != 0,
        }
    }

    /// True the first time it is called for this layer.
    pub(super) fn first_request_without_peer(&self) -> bool {
        !self.warned_no_peer.swap(true, Ordering::Relaxed)
    }

    /// The client's address: the peer's, unless the peer is a trusted proxy that says whom it
    /// forwards for.
    pub(super) fn client_ip(
        &self,
        peer: Option<SocketAddr>,
        headers: &HeaderMap,
    ) -> Option<IpAddr> {
        client_ip::client_ip(&self.trusted, peer, headers)
    }
}

#[cfg(feature = "axum")]
fn connect_info(extensions: &Extensions) -> Option<SocketAddr> {
    extensions
        .get::<axum::extract::ConnectInfo<SocketAddr>>()
        .map(|info| info.0)
}

#[cfg(not(feature = "axum"))]
fn connect_info(_: &Extensions) -> Option<SocketAddr> {
    None
}

#[cfg(feature = "axum")]
fn matched_path(extensions: &Extensions) -> Option<&str> {
    extensions
        .get::<axum::extract::MatchedPath>()
        .map(axum::extract::MatchedPath::as_str)
}

#[cfg(not(feature = "axum"))]
fn matched_path(_: &Extensions) -> Option<&str> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_by_status() {
        let config = Config::default();
        assert_eq!(config.level_for(101), Level::Info);
        assert_eq!(config.level_for(304), Level::Info);
        assert_eq!(config.level_for(404), Level::Warn);
        assert_eq!(config.level_for(499), Level::Warn);
        assert_eq!(config.level_for(503), Level::Error);
    }

    #[test]
    fn client_ip_uses_the_trusted_proxies() {
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", "203.0.113.9".parse().unwrap());
        let peer = Some("10.0.0.1:1".parse().unwrap());
        let mut config = Config::default();
        assert_eq!(
            config.client_ip(peer, &headers),
            Some("10.0.0.1".parse().unwrap())
        );
        config.trusted.push("10.0.0.0/8".parse().unwrap());
        assert_eq!(
            config.client_ip(peer, &headers),
            Some("203.0.113.9".parse().unwrap())
        );
    }

    #[test]
    fn peer_from_extensions() {
        let peer: SocketAddr = "192.0.2.1:4711".parse().unwrap();
        let other: SocketAddr = "192.0.2.2:4712".parse().unwrap();
        let mut ext = Extensions::new();
        assert_eq!(Config::default().peer(&ext), None);
        ext.insert(other);
        assert_eq!(Config::default().peer(&ext), Some(other));
        ext.insert(PeerAddr(peer));
        assert_eq!(Config::default().peer(&ext), Some(peer));
        let custom = Config {
            peer_addr: Some(Arc::new(|_: &Extensions| None)),
            ..Config::default()
        };
        assert_eq!(custom.peer(&ext), None);
    }
}
