//! Where webhooks may go: never to a loopback, private, link-local or otherwise
//! non-public address (a tenant must not make the server call into its own network),
//! unless `FRONTDESK_WEBHOOK_ALLOW_PRIVATE=true`. Checked when an endpoint is saved (the
//! host is resolved) and again on every connection (the worker's HTTP client resolves
//! through `GuardedResolver`, so a name that later points inward is refused too).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// Whether an address is one webhooks must not reach.
pub fn is_forbidden(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => forbidden_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return forbidden_v4(v4);
            }
            let s = v6.segments();
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00 // unique local
                || (s[0] & 0xffc0) == 0xfe80 // link-local
                || (s[0] == 0x64 && s[1] == 0xff9b && forbidden_v4(embedded_v4(v6))) // NAT64
                || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
        }
    }
}

fn embedded_v4(v6: Ipv6Addr) -> Ipv4Addr {
    let o = v6.octets();
    Ipv4Addr::new(o[12], o[13], o[14], o[15])
}

fn forbidden_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0
        || (a == 100 && (64..128).contains(&b)) // carrier-grade NAT
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 198 && (18..20).contains(&b)) // benchmarking
        || a >= 240 // reserved
}

/// Why a URL may not be a webhook endpoint, if it may not: not http(s), no host,
/// credentials in it, a host that does not resolve, or (unless `allow_private`) one that
/// resolves to a forbidden address.
pub async fn check_url(url: &str, allow_private: bool) -> Result<reqwest::Url, String> {
    let parsed = reqwest::Url::parse(url).map_err(|_| "is not a valid URL".to_owned())?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err("must be an http or https URL".into());
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err("must not carry credentials (use the signature to authenticate)".into());
    }
    let Some(host) = parsed.host_str() else {
        return Err("has no host".into());
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let port = parsed.port_or_known_default().unwrap_or(443);
    let addrs: Vec<SocketAddr> = match host.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) => tokio::net::lookup_host((host, port))
            .await
            .map_err(|_| format!("host {host} does not resolve"))?
            .collect(),
    };
    if addrs.is_empty() {
        return Err(format!("host {host} does not resolve"));
    }
    if !allow_private && addrs.iter().any(|a| is_forbidden(a.ip())) {
        return Err(
            "reaches a loopback, private or link-local address, which webhooks may not".into(),
        );
    }
    Ok(parsed)
}

/// Whether a URL's host is an address literal that webhooks must not reach (the HTTP
/// client resolves names through `GuardedResolver`, but connects to literals directly).
pub fn literal_is_forbidden(url: &reqwest::Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => forbidden_v4(ip),
        Some(url::Host::Ipv6(ip)) => is_forbidden(IpAddr::V6(ip)),
        _ => false,
    }
}

/// A DNS resolver that drops forbidden addresses (and fails when none is left).
#[derive(Debug, Clone, Copy)]
pub struct GuardedResolver;

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|a| !is_forbidden(a.ip()))
                .collect();
            if addrs.is_empty() {
                return Err(
                    format!("{host} resolves only to addresses webhooks may not reach").into(),
                );
            }
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inward_addresses_are_forbidden_and_public_ones_are_not() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "64:ff9b::a00:1",
        ] {
            assert!(is_forbidden(ip.parse().unwrap()), "{ip}");
        }
        for ip in [
            "93.184.216.34",
            "8.8.8.8",
            "2606:4700::1111",
            "64:ff9b::808:808",
        ] {
            assert!(!is_forbidden(ip.parse().unwrap()), "{ip}");
        }
    }

    #[tokio::test]
    async fn urls_are_checked_for_scheme_credentials_and_address() {
        assert!(check_url("ftp://example.com/", true).await.is_err());
        assert!(
            check_url("https://user:pw@example.com/", true)
                .await
                .is_err()
        );
        assert!(check_url("http://127.0.0.1:9/hook", false).await.is_err());
        assert!(check_url("http://[::1]:9/hook", false).await.is_err());
        assert!(check_url("http://localhost:9/hook", false).await.is_err());
        assert!(check_url("http://127.0.0.1:9/hook", true).await.is_ok());
        assert!(check_url("http://93.184.216.34/hook", false).await.is_ok());
    }
}
