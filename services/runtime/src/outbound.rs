//! HTTP to the outside world — notices to platforms, removal checks of reported locations —
//! never reaches inside: loopback, private, link-local (cloud metadata among them) and other
//! non-public addresses are refused after DNS resolution, for address literals in URLs and
//! on every redirect hop, unless the operator allows a range explicitly (the demo allows its
//! simulator on loopback). A reported URL is chosen by whoever reports it.

use ipnet::IpNet;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

#[derive(Debug, Clone, Default)]
pub struct AddressPolicy {
    /// Ranges reachable although they are not public.
    allowed: Arc<Vec<IpNet>>,
    /// Names resolved from this table instead of DNS (the demo's made-up platform hosts);
    /// their addresses are checked like any other.
    hosts: Arc<BTreeMap<String, Vec<IpAddr>>>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{host} is refused: {reason} address {address} (allow its range in outbound_allowed_ranges if it is really meant)"
)]
pub struct Refused {
    pub host: String,
    pub address: IpAddr,
    pub reason: &'static str,
}

impl AddressPolicy {
    pub fn allowing(ranges: &[String]) -> Result<Self, String> {
        let allowed = ranges
            .iter()
            .map(|range| {
                range
                    .parse::<IpNet>()
                    .or_else(|_| range.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| format!("outbound_allowed_ranges: {range:?} is not an address or CIDR range"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            allowed: Arc::new(allowed),
            hosts: Arc::default(),
        })
    }

    /// The policy the settings describe (`outbound_allowed_ranges`, `outbound_hosts`).
    pub fn from_settings(settings: &crate::config::Settings) -> Result<Self, String> {
        Ok(Self::allowing(&settings.outbound_allowed_ranges)?.with_hosts(settings.outbound_hosts.clone()))
    }

    /// Resolves these names from the table instead of DNS.
    pub fn with_hosts(mut self, hosts: BTreeMap<String, Vec<IpAddr>>) -> Self {
        self.hosts = Arc::new(hosts);
        self
    }

    /// Why `address` may not be contacted, if it may not.
    pub fn check(&self, host: &str, address: IpAddr) -> Result<(), Refused> {
        let address = match address {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(address, IpAddr::V4),
            v4 => v4,
        };
        let Some(reason) = internal(address) else { return Ok(()) };
        if self.allowed.iter().any(|range| range.contains(&address)) {
            return Ok(());
        }
        Err(Refused {
            host: host.to_owned(),
            address,
            reason,
        })
    }

    /// Checks a URL whose host is an address literal (DNS names are checked on resolution).
    pub fn check_url(&self, url: &reqwest::Url) -> Result<(), Refused> {
        let literal = match url.host() {
            Some(url::Host::Ipv4(v4)) => IpAddr::V4(v4),
            Some(url::Host::Ipv6(v6)) => IpAddr::V6(v6),
            _ => return Ok(()),
        };
        self.check(url.host_str().unwrap_or_default(), literal)
    }

    /// A client builder that resolves names through this policy and refuses redirects to
    /// refused address literals (`max_redirects` 0: no redirects are followed at all).
    pub fn client_builder(&self, max_redirects: usize) -> reqwest::ClientBuilder {
        let policy = self.clone();
        let redirects = reqwest::redirect::Policy::custom(move |attempt| {
            if attempt.previous().len() > max_redirects {
                return attempt.stop();
            }
            match policy.check_url(attempt.url()) {
                Ok(()) => attempt.follow(),
                Err(refused) => attempt.error(refused),
            }
        });
        reqwest::Client::builder()
            .dns_resolver(Arc::new(self.clone()))
            .redirect(redirects)
    }
}

/// The refusal behind a failed request, if the policy refused it.
pub fn refusal<'a>(error: &'a (dyn std::error::Error + 'static)) -> Option<&'a Refused> {
    let mut cause = Some(error);
    while let Some(error) = cause {
        if let Some(refused) = error.downcast_ref::<Refused>() {
            return Some(refused);
        }
        cause = error.source();
    }
    None
}

impl Resolve for AddressPolicy {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.clone();
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let resolved: Vec<SocketAddr> = match policy.hosts.get(&host) {
                Some(addresses) => addresses.iter().map(|ip| SocketAddr::new(*ip, 0)).collect(),
                None => tokio::net::lookup_host((host.as_str(), 0)).await?.collect(),
            };
            let mut refused = None;
            let allowed: Vec<SocketAddr> = resolved
                .into_iter()
                .filter(|addr| match policy.check(&host, addr.ip()) {
                    Ok(()) => true,
                    Err(why) => {
                        refused = Some(why);
                        false
                    }
                })
                .collect();
            match (allowed.is_empty(), refused) {
                (true, Some(refused)) => Err(Box::new(refused) as Box<dyn std::error::Error + Send + Sync>),
                _ => Ok(Box::new(allowed.into_iter()) as Addrs),
            }
        })
    }
}

/// The kind of non-public address this is, if it is one.
fn internal(address: IpAddr) -> Option<&'static str> {
    match address {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            if v4.is_loopback() {
                Some("a loopback")
            } else if v4.is_private() {
                Some("a private")
            } else if v4.is_link_local() {
                Some("a link-local (cloud metadata)")
            } else if v4.is_unspecified() || v4.is_broadcast() || v4.is_multicast() || a == 0 {
                Some("a non-routable")
            } else if a == 100 && (64..128).contains(&b) {
                Some("a carrier-grade NAT")
            } else {
                None
            }
        }
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            if v6.is_loopback() {
                Some("a loopback")
            } else if v6.is_unspecified() || v6.is_multicast() {
                Some("a non-routable")
            } else if first & 0xfe00 == 0xfc00 {
                Some("a private (unique local)")
            } else if first & 0xffc0 == 0xfe80 {
                Some("a link-local")
            } else {
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_addresses_are_refused_unless_their_range_is_allowed() {
        let strict = AddressPolicy::default();
        for refused in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "::1",
            "fd00:ec2::254",
            "fe80::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(strict.check("h", refused.parse().unwrap()).is_err(), "{refused}");
        }
        for public in ["198.51.100.7", "93.184.216.34", "2001:db8::1"] {
            assert!(strict.check("h", public.parse().unwrap()).is_ok(), "{public}");
        }
        let demo = AddressPolicy::allowing(&["127.0.0.1".into(), "10.0.0.0/8".into()]).unwrap();
        assert!(demo.check("h", "127.0.0.1".parse().unwrap()).is_ok());
        assert!(demo.check("h", "127.0.0.2".parse().unwrap()).is_err());
        assert!(demo.check("h", "10.9.9.9".parse().unwrap()).is_ok());
        assert!(AddressPolicy::allowing(&["nonsense".into()]).is_err());
    }

    #[test]
    fn address_literals_in_urls_are_checked() {
        let strict = AddressPolicy::default();
        let url = |s: &str| reqwest::Url::parse(s).unwrap();
        assert!(strict
            .check_url(&url("http://169.254.169.254/latest/meta-data"))
            .is_err());
        assert!(strict.check_url(&url("http://[::1]:8080/")).is_err());
        assert!(strict.check_url(&url("https://platform.example/notices")).is_ok());
    }
}
