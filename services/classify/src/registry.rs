//! The platform registry in memory: who holds a location, by domain first, then by the IP
//! range of the address its host resolves to.
//!
//! Asking the database for every case cost two round trips per case (a query and the
//! pool's check on returning the connection) and a tenth of the classify stage's time. The
//! registry is small and changes rarely, so each process keeps it in memory and asks once
//! per batch whether it is still current: a trigger moves `platform_registry_version` on
//! every change, and a batch that sees another version reads the registry again, whole,
//! from one snapshot. A batch therefore resolves hosts against the registry as it was
//! when the batch began, as it did when it queried it case by case.

use crate::host::{domain_and_parents, host_of, Resolver};
use dijkwacht_domain::{HostMatch, HostResolved, HostingProvider, PlatformId};
use dijkwacht_runtime::{Process, Resource};
use sqlx::{PgPool, Row};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, RwLock};

/// A registry entry as a resolved host names it.
#[derive(Debug)]
struct Platform {
    platform_id: PlatformId,
    name: String,
    country: String,
    dsa_platform: bool,
    notice_endpoint: String,
}

impl Platform {
    fn resolved(&self, matched: HostMatch) -> HostResolved {
        HostResolved {
            platform_id: self.platform_id.clone(),
            platform_name: self.name.clone(),
            country: self.country.clone(),
            dsa_platform: self.dsa_platform,
            matched,
            notice_endpoint: self.notice_endpoint.clone(),
            hosting_provider: None,
        }
    }
}

/// An address range of the registry, as PostgreSQL writes it (`192.0.2.0/24`) and as
/// numbers to test addresses against.
#[derive(Debug)]
struct Range {
    text: String,
    network: IpAddr,
    prefix: u8,
    platform: Arc<Platform>,
}

impl Range {
    fn holds(&self, address: IpAddr) -> bool {
        match (self.network, address) {
            (IpAddr::V4(network), IpAddr::V4(address)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.prefix)).unwrap_or(0);
                u32::from(network) & mask == u32::from(address) & mask
            }
            (IpAddr::V6(network), IpAddr::V6(address)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(self.prefix)).unwrap_or(0);
                u128::from(network) & mask == u128::from(address) & mask
            }
            _ => false,
        }
    }
}

/// One version of the platform registry.
#[derive(Debug)]
pub struct Registry {
    version: i64,
    domains: HashMap<String, Arc<Platform>>,
    /// Longest prefix first: the first range that holds an address is the most specific.
    ranges: Vec<Range>,
}

async fn version<'c>(db: impl sqlx::PgExecutor<'c>) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT version FROM platform_registry_version")
        .fetch_one(db)
        .await
}

fn cidr(text: &str) -> Option<(IpAddr, u8)> {
    let (network, prefix) = text.split_once('/')?;
    Some((network.parse().ok()?, prefix.parse().ok()?))
}

impl Registry {
    /// The whole registry and its version, from one snapshot.
    pub async fn load(pool: &PgPool) -> Result<Self, sqlx::Error> {
        let mut tx = crate::snapshot(pool).await?;
        let version = version(&mut *tx).await?;
        let mut platforms = HashMap::new();
        for row in sqlx::query("SELECT platform_id, name, country, dsa_platform, notice_endpoint FROM platforms")
            .fetch_all(&mut *tx)
            .await?
        {
            let platform = Platform {
                platform_id: PlatformId(row.try_get("platform_id")?),
                name: row.try_get("name")?,
                country: row.try_get("country")?,
                dsa_platform: row.try_get("dsa_platform")?,
                notice_endpoint: row.try_get("notice_endpoint")?,
            };
            platforms.insert(platform.platform_id.0.clone(), Arc::new(platform));
        }
        let mut domains = HashMap::new();
        for row in sqlx::query("SELECT domain, platform_id FROM platform_domains")
            .fetch_all(&mut *tx)
            .await?
        {
            let platform: String = row.try_get("platform_id")?;
            if let Some(platform) = platforms.get(&platform) {
                domains.insert(row.try_get("domain")?, platform.clone());
            }
        }
        let mut ranges = Vec::new();
        for row in sqlx::query("SELECT range::text AS range, platform_id FROM platform_ranges")
            .fetch_all(&mut *tx)
            .await?
        {
            let (text, platform): (String, String) = (row.try_get("range")?, row.try_get("platform_id")?);
            if let (Some((network, prefix)), Some(platform)) = (cidr(&text), platforms.get(&platform)) {
                let platform = platform.clone();
                ranges.push(Range {
                    text,
                    network,
                    prefix,
                    platform,
                });
            }
        }
        ranges.sort_by_key(|range| std::cmp::Reverse(range.prefix));
        tx.commit().await?;
        Ok(Self {
            version,
            domains,
            ranges,
        })
    }

    /// The platform of a URL (by domain, else by address range) and the hosting provider of
    /// its address when that is a different registry entry.
    pub async fn resolve(&self, resolver: &dyn Resolver, url: &str) -> Option<HostResolved> {
        let (host, literal) = host_of(url)?;
        let platform = domain_and_parents(&host).into_iter().find_map(|domain| {
            let platform = self.domains.get(&domain)?;
            Some(platform.resolved(HostMatch::Domain { domain }))
        });
        let addresses = match literal {
            Some(address) => vec![address],
            None => resolver.resolve(&host).await,
        };
        let provider = addresses.into_iter().find_map(|address| {
            let range = self.ranges.iter().find(|range| range.holds(address))?;
            Some(range.platform.resolved(HostMatch::IpRange {
                address: address.to_string(),
                range: range.text.clone(),
            }))
        });
        match (platform, provider) {
            (Some(mut platform), Some(provider)) => {
                if provider.platform_id != platform.platform_id {
                    platform.hosting_provider = Some(as_provider(provider));
                }
                Some(platform)
            }
            (Some(platform), None) => Some(platform),
            (None, provider) => provider,
        }
    }
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

/// The registry a process's parts share, read again when it changed.
#[derive(Clone)]
pub struct SharedRegistry {
    current: Arc<RwLock<Arc<Registry>>>,
}

impl SharedRegistry {
    pub async fn load(pool: &PgPool) -> Result<Self, sqlx::Error> {
        Ok(Self {
            current: Arc::new(RwLock::new(Arc::new(Registry::load(pool).await?))),
        })
    }

    /// The registry as it is now: one read of its version, and the whole registry again
    /// only if that moved.
    pub async fn fresh(&self, pool: &PgPool) -> Result<Arc<Registry>, sqlx::Error> {
        let held = self.current();
        if version(pool).await? == held.version {
            return Ok(held);
        }
        let registry = Arc::new(Registry::load(pool).await?);
        tracing::debug!(version = registry.version, "platform registry read again");
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = registry.clone();
        Ok(registry)
    }

    /// The registry as of the last [`SharedRegistry::fresh`].
    pub fn current(&self) -> Arc<Registry> {
        self.current.read().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl Resource for SharedRegistry {
    async fn start(process: &mut Process) -> anyhow::Result<Self> {
        Ok(Self::load(process.pool()).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(text: &str) -> Range {
        let (network, prefix) = cidr(text).unwrap();
        let platform = Arc::new(Platform {
            platform_id: PlatformId("p".into()),
            name: String::new(),
            country: String::new(),
            dsa_platform: true,
            notice_endpoint: String::new(),
        });
        Range {
            text: text.into(),
            network,
            prefix,
            platform,
        }
    }

    #[test]
    fn a_range_holds_the_addresses_of_its_prefix_and_no_others() {
        let v4 = range("192.0.2.0/24");
        assert!(v4.holds("192.0.2.0".parse().unwrap()));
        assert!(v4.holds("192.0.2.255".parse().unwrap()));
        assert!(!v4.holds("192.0.3.1".parse().unwrap()));
        assert!(!v4.holds("2001:db8::1".parse().unwrap()), "another family");
        assert!(range("0.0.0.0/0").holds("203.0.113.9".parse().unwrap()));
        assert!(range("203.0.113.9/32").holds("203.0.113.9".parse().unwrap()));
        assert!(!range("203.0.113.9/32").holds("203.0.113.8".parse().unwrap()));
        let v6 = range("2001:db8::/32");
        assert!(v6.holds("2001:db8:ffff::1".parse().unwrap()));
        assert!(!v6.holds("2001:db9::1".parse().unwrap()));
    }
}
