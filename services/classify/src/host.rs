//! Who holds a location: the platform registry by domain first, then by the IP range of the
//! address the host resolves to.

use dijkwacht_domain::{HostMatch, HostResolved, HostingProvider, PlatformId};
use futures::future::BoxFuture;
use sqlx::{PgPool, Row};
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

fn host_of(url: &str) -> Option<(String, Option<IpAddr>)> {
    let url = url::Url::parse(url).ok()?;
    match url.host()? {
        url::Host::Domain(domain) => Some((domain.to_ascii_lowercase(), None)),
        url::Host::Ipv4(ip) => Some((ip.to_string(), Some(IpAddr::V4(ip)))),
        url::Host::Ipv6(ip) => Some((ip.to_string(), Some(IpAddr::V6(ip)))),
    }
}

const PLATFORM_COLUMNS: &str = "p.platform_id, p.name, p.country, p.dsa_platform, p.notice_endpoint";

fn resolved(row: &sqlx::postgres::PgRow, matched: HostMatch) -> Result<HostResolved, sqlx::Error> {
    Ok(HostResolved {
        platform_id: PlatformId(row.try_get("platform_id")?),
        platform_name: row.try_get("name")?,
        country: row.try_get("country")?,
        dsa_platform: row.try_get("dsa_platform")?,
        matched,
        notice_endpoint: row.try_get("notice_endpoint")?,
        hosting_provider: None,
    })
}

/// The platform of a URL (by domain, else by address range) and the hosting provider of its
/// address when that is a different registry entry.
pub async fn resolve_host(
    pool: &PgPool,
    resolver: &dyn Resolver,
    url: &str,
) -> Result<Option<HostResolved>, sqlx::Error> {
    let Some((host, literal)) = host_of(url) else {
        return Ok(None);
    };
    let by_domain = sqlx::query(&format!(
        "SELECT {PLATFORM_COLUMNS}, d.domain FROM platform_domains d JOIN platforms p USING (platform_id) \
         WHERE d.domain = ANY($1) ORDER BY length(d.domain) DESC LIMIT 1"
    ))
    .bind(domain_and_parents(&host))
    .fetch_optional(pool)
    .await?;
    let platform = match &by_domain {
        Some(row) => {
            let domain = row.try_get("domain")?;
            Some(resolved(row, HostMatch::Domain { domain })?)
        }
        None => None,
    };
    let addresses = match literal {
        Some(address) => vec![address],
        None => resolver.resolve(&host).await,
    };
    let provider = by_range(pool, &addresses).await?;
    Ok(match (platform, provider) {
        (Some(mut platform), Some(provider)) => {
            if provider.platform_id != platform.platform_id {
                platform.hosting_provider = Some(as_provider(provider));
            }
            Some(platform)
        }
        (Some(platform), None) => Some(platform),
        (None, provider) => provider,
    })
}

/// The registry entry whose range holds the first address that is in one.
async fn by_range(pool: &PgPool, addresses: &[IpAddr]) -> Result<Option<HostResolved>, sqlx::Error> {
    for address in addresses {
        let row = sqlx::query(&format!(
            "SELECT {PLATFORM_COLUMNS}, r.range::text AS range FROM platform_ranges r JOIN platforms p USING (platform_id) \
             WHERE r.range >>= $1::inet ORDER BY masklen(r.range) DESC LIMIT 1"
        ))
        .bind(address.to_string())
        .fetch_optional(pool)
        .await?;
        if let Some(row) = row {
            let range = row.try_get("range")?;
            let matched = HostMatch::IpRange {
                address: address.to_string(),
                range,
            };
            return resolved(&row, matched).map(Some);
        }
    }
    Ok(None)
}

fn as_provider(entry: HostResolved) -> HostingProvider {
    let (address, range) = match entry.matched {
        HostMatch::IpRange { address, range } => (address, range),
        HostMatch::Domain { domain } => (String::new(), domain),
    };
    HostingProvider {
        provider_id: entry.platform_id,
        name: entry.platform_name,
        country: entry.country,
        address,
        range,
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
