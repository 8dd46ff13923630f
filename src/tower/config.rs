//! [`Config`]: the settings a [`RequestLogLayer`](super::RequestLogLayer) shares with the
//! services it makes, and what they decide for a request: its peer address, client IP and
//! the level of its access record.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
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

    /// The connection's peer address, from the request's extensions.
    pub(super) fn peer(&self, extensions: &Extensions) -> Option<SocketAddr> {
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
    pub(super) fn client_ip(
        &self,
        peer: Option<SocketAddr>,
        headers: &HeaderMap,
    ) -> Option<IpAddr> {
        client_ip::client_ip(&self.trusted, peer, headers)
    }
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
