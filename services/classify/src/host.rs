//! Host names of locations and how they resolve to addresses; the registry
//! ([`crate::registry`]) says whose they are.

use futures::future::BoxFuture;
use std::collections::BTreeMap;
use std::net::IpAddr;

/// DNS, as a trait: a static table in tests and the demo, the system resolver in production.
pub trait Resolver: Send + Sync {
    fn resolve<'a>(&'a self, host: &'a str) -> BoxFuture<'a, Vec<IpAddr>>;
}

#[derive(Debug, Default, Clone)]
pub struct StaticResolver {
    pub hosts: BTreeMap<String, Vec<IpAddr>>,
}

impl Resolver for StaticResolver {
    fn resolve<'a>(&'a self, host: &'a str) -> BoxFuture<'a, Vec<IpAddr>> {
        Box::pin(async move { self.hosts.get(host).cloned().unwrap_or_default() })
    }
}

#[derive(Debug, Default, Clone, Copy)]
pub struct SystemResolver;

impl Resolver for SystemResolver {
    fn resolve<'a>(&'a self, host: &'a str) -> BoxFuture<'a, Vec<IpAddr>> {
        Box::pin(async move {
            match tokio::net::lookup_host((host, 0)).await {
                Ok(addresses) => addresses.map(|a| a.ip()).collect(),
                Err(error) => {
                    tracing::info!(%host, %error, "host does not resolve");
                    vec![]
                }
            }
        })
    }
}

/// `a.b.example` → `[a.b.example, b.example, example]`.
pub fn domain_and_parents(host: &str) -> Vec<String> {
    let mut domains = vec![host.to_owned()];
    let mut rest = host;
    while let Some((_, parent)) = rest.split_once('.') {
        domains.push(parent.to_owned());
        rest = parent;
    }
    domains
}

pub(crate) fn host_of(url: &str) -> Option<(String, Option<IpAddr>)> {
    let url = url::Url::parse(url).ok()?;
    match url.host()? {
        url::Host::Domain(domain) => Some((domain.to_ascii_lowercase(), None)),
        url::Host::Ipv4(ip) => Some((ip.to_string(), Some(IpAddr::V4(ip)))),
        url::Host::Ipv6(ip) => Some((ip.to_string(), Some(IpAddr::V6(ip)))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_host_matches_itself_and_every_parent_domain() {
        assert_eq!(
            domain_and_parents("cdn.videos.example"),
            vec!["cdn.videos.example", "videos.example", "example"]
        );
    }

    #[test]
    fn ip_literals_are_recognised() {
        assert_eq!(
            host_of("http://127.0.0.1:8090/x"),
            Some(("127.0.0.1".to_owned(), Some("127.0.0.1".parse().unwrap())))
        );
        assert_eq!(
            host_of("https://Video.Example/x"),
            Some(("video.example".to_owned(), None))
        );
    }
}
