//! Who the client is, for rate limits and the audit log.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};

use axum::http::HeaderMap;
use ipnet::IpNet;

/// The client's address: the TCP peer, unless the peer is a trusted proxy, in which case the
/// right-most `X-Forwarded-For` hop that is not itself a trusted proxy. The left-most hops are
/// whatever the client chose to send, so they are never believed.
pub fn client_address(
    peer: Option<SocketAddr>,
    headers: &HeaderMap,
    trusted: &[IpNet],
) -> Option<IpAddr> {
    let peer = peer?.ip().to_canonical();
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        if headers.contains_key(X_FORWARDED_FOR) {
            warn_unlisted_proxy(peer);
        }
        return Some(peer);
    }
    let hops = headers
        .get_all(X_FORWARDED_FOR)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .collect::<Vec<_>>();
    let mut client = peer;
    for hop in hops.iter().rev() {
        match hop.parse::<IpAddr>() {
            Ok(ip) => {
                client = ip.to_canonical();
                if !is_trusted(&client) {
                    break;
                }
            }
            // A hop a trusted proxy could not have written: stop at what we know.
            Err(_) => break,
        }
    }
    Some(client)
}

const X_FORWARDED_FOR: &str = "x-forwarded-for";

/// A peer outside `server.trusted_proxies` that sends `X-Forwarded-For` from a private
/// address is most likely a proxy nobody listed: every client behind it then shares its
/// address, in the audit log and in the failed-authentication budget, so a few bad tokens lock
/// them all out. Said once per process, at the first such token request. A peer on a public
/// address is not warned of: clients on the internet send the header too (a corporate proxy),
/// and one of them must not be able to use up the warning, nor be named as the proxy to list.
fn warn_unlisted_proxy(peer: IpAddr) {
    static WARNED: AtomicBool = AtomicBool::new(false);
    if is_private(peer) && !WARNED.load(Ordering::Relaxed) && !WARNED.swap(true, Ordering::Relaxed)
    {
        tracing::warn!(
            %peer,
            "a request came with X-Forwarded-For from a peer that is not in \
             server.trusted_proxies, so its clients are counted as the peer's address; \
             if the peer is a proxy of yours, list it there"
        );
    }
}

/// Loopback, private, link-local and shared (carrier-grade NAT) addresses: where the proxies
/// in front of a container sit.
fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || (a == 100 && b & 0xc0 == 64)
        }
        IpAddr::V6(v6) => v6.is_loopback() || v6.is_unique_local() || v6.is_unicast_link_local(),
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn headers(xff: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in xff {
            headers.append("x-forwarded-for", HeaderValue::from_str(value).unwrap());
        }
        headers
    }

    fn trusted() -> Vec<IpNet> {
        vec!["10.0.0.0/8".parse().unwrap()]
    }

    fn peer(ip: &str) -> Option<SocketAddr> {
        Some(SocketAddr::new(ip.parse().unwrap(), 1234))
    }

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_forwards() {
        let h = headers(&["1.2.3.4"]);
        assert_eq!(
            client_address(peer("203.0.113.9"), &h, &trusted()),
            ip("203.0.113.9")
        );
    }

    #[test]
    fn behind_trusted_proxies_the_right_most_untrusted_hop_is_the_client() {
        let h = headers(&["1.2.3.4, 198.51.100.7, 10.1.1.1"]);
        assert_eq!(
            client_address(peer("10.0.0.2"), &h, &trusted()),
            ip("198.51.100.7")
        );
        // split across several headers, the order still counts
        let h = headers(&["1.2.3.4", "198.51.100.7", "10.1.1.1"]);
        assert_eq!(
            client_address(peer("10.0.0.2"), &h, &trusted()),
            ip("198.51.100.7")
        );
    }

    #[test]
    fn garbage_or_missing_hops_fall_back_to_what_is_known() {
        let h = headers(&["1.2.3.4, not-an-ip"]);
        assert_eq!(
            client_address(peer("10.0.0.2"), &h, &trusted()),
            ip("10.0.0.2")
        );
        assert_eq!(
            client_address(peer("10.0.0.2"), &HeaderMap::new(), &trusted()),
            ip("10.0.0.2")
        );
        assert_eq!(client_address(None, &HeaderMap::new(), &trusted()), None);
    }

    #[test]
    fn only_private_peers_are_taken_for_an_unlisted_proxy() {
        for private in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.0.1",
            "100.64.0.1",
            "::1",
            "fd00::1",
            "fe80::1",
        ] {
            assert!(is_private(private.parse().unwrap()), "{private}");
        }
        for public in ["203.0.113.7", "100.128.0.1", "172.32.0.1", "2001:db8::1"] {
            assert!(!is_private(public.parse().unwrap()), "{public}");
        }
    }

    #[test]
    fn ipv4_mapped_peers_are_compared_as_ipv4() {
        let h = headers(&["198.51.100.7"]);
        assert_eq!(
            client_address(peer("::ffff:10.0.0.2"), &h, &trusted()),
            ip("198.51.100.7")
        );
    }
}
