//! The client's address: the connection's peer ([`PeerAddr`]), the proxies whose forwarding
//! headers are believed ([`TrustedProxy`], one address or a CIDR network) and the parsing of
//! `X-Forwarded-For` and `X-Real-IP`.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;

use http::header::HeaderName;
use http::HeaderMap;

use crate::error::Error;

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");

/// The address of a request's connection peer, as a request extension.
///
/// [`RequestLogLayer`](super::RequestLogLayer) reads it (then a plain [`SocketAddr`] extension)
/// unless configured with [`RequestLogLayer::peer_addr`](super::RequestLogLayer::peer_addr).
/// Insert it in whatever accepts connections, or use
/// [`RequestLogService::with_peer_addr`](super::RequestLogService::with_peer_addr).
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

fn is_trusted(trusted: &[TrustedProxy], ip: IpAddr) -> bool {
    trusted.iter().any(|proxy| proxy.contains(ip))
}

/// The client's address: the peer's, unless the peer is one of the `trusted` proxies and
/// says whom it forwards for.
///
/// `X-Forwarded-For` is read when present; `X-Real-IP` only when it is absent. A header that
/// is present but cannot be read — not ASCII, a hop that is not an address where the client
/// should be, several `X-Real-IP` lines — gives the peer's address: never another header,
/// which the proxy may have passed through from the client unchecked.
pub(super) fn client_ip(
    trusted: &[TrustedProxy],
    peer: Option<SocketAddr>,
    headers: &HeaderMap,
) -> Option<IpAddr> {
    let peer = peer?.ip().to_canonical();
    if !is_trusted(trusted, peer) {
        return Some(peer);
    }
    let forwarded = if headers.contains_key(X_FORWARDED_FOR) {
        forwarded_for(trusted, headers)
    } else {
        real_ip(headers)
    };
    Some(forwarded.unwrap_or(peer))
}

/// The right-most `X-Forwarded-For` hop that is not a trusted proxy (each proxy appends
/// the address it received from, so only the hops right of the first untrusted one are
/// vouched for). When every hop is trusted, the left-most one. `None` when a line is not
/// ASCII or a hop that would be read is not an address.
fn forwarded_for(trusted: &[TrustedProxy], headers: &HeaderMap) -> Option<IpAddr> {
    let mut farthest = None;
    // Several header lines form one list, in order.
    for line in headers.get_all(X_FORWARDED_FOR).iter().rev() {
        let line = line.to_str().ok()?;
        for hop in line.rsplit(',').map(str::trim).filter(|h| !h.is_empty()) {
            let ip = parse_forwarded_ip(hop)?;
            if !is_trusted(trusted, ip) {
                return Some(ip);
            }
            farthest = Some(ip);
        }
    }
    farthest
}

/// The address in the one `X-Real-IP` line; `None` when there is none, more than one, or it
/// is not an address.
fn real_ip(headers: &HeaderMap) -> Option<IpAddr> {
    let mut lines = headers.get_all(X_REAL_IP).iter();
    let line = lines.next()?;
    if lines.next().is_some() {
        return None;
    }
    parse_forwarded_ip(line.to_str().ok()?.trim())
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

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

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

    fn proxies(trusted: &[&str]) -> Vec<TrustedProxy> {
        trusted.iter().map(|s| s.parse().unwrap()).collect()
    }

    fn client(trusted: &[&str], peer: &str, pairs: &[(&str, &str)]) -> Option<String> {
        client_ip(
            &proxies(trusted),
            Some(peer.parse().unwrap()),
            &headers(pairs),
        )
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
        // Garbage where the client should be: the peer, not X-Real-IP (which the proxy may
        // have passed through from the client).
        let garbage = [
            ("x-forwarded-for", "1.1.1.1, unknown, 10.0.0.3"),
            ("x-real-ip", " 198.51.100.4 "),
        ];
        assert_eq!(client(&trusted, peer, &garbage).unwrap(), "10.0.0.1");
        // Garbage left of the client's hop is the client's word, never read.
        let left_garbage = [("x-forwarded-for", "unknown, 203.0.113.9, 10.0.0.3")];
        assert_eq!(
            client(&trusted, peer, &left_garbage).unwrap(),
            "203.0.113.9"
        );
        let real_ip = [("x-real-ip", " 198.51.100.4 ")];
        assert_eq!(client(&trusted, peer, &real_ip).unwrap(), "198.51.100.4");
        let two_real_ips = [("x-real-ip", "198.51.100.4"), ("x-real-ip", "198.51.100.5")];
        assert_eq!(client(&trusted, peer, &two_real_ips).unwrap(), "10.0.0.1");
        let neither = [("x-forwarded-for", "nonsense"), ("x-real-ip", "also")];
        assert_eq!(client(&trusted, peer, &neither).unwrap(), "10.0.0.1");
        assert_eq!(client(&trusted, peer, &[]).unwrap(), "10.0.0.1");
    }

    #[test]
    fn a_non_ascii_forwarded_for_gives_the_peer() {
        let trusted = proxies(&["10.0.0.0/8"]);
        let peer = Some("10.0.0.1:1".parse().unwrap());
        let mut h = HeaderMap::new();
        h.append(
            X_FORWARDED_FOR,
            HeaderValue::from_bytes(b"203.0.113.9\xff").unwrap(),
        );
        h.append(X_REAL_IP, HeaderValue::from_static("198.51.100.4"));
        assert_eq!(
            client_ip(&trusted, peer, &h),
            Some("10.0.0.1".parse().unwrap())
        );
    }

    #[test]
    fn no_peer_no_ip() {
        let h = headers(&[("x-forwarded-for", "1.2.3.4")]);
        assert_eq!(client_ip(&proxies(&["0.0.0.0/0"]), None, &h), None);
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
}
