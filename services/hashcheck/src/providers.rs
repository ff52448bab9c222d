//! The hosting providers that may check hashes: what each may check (part of what its key
//! grants), how many checks a second, and whether its hits open cases. Read from the
//! reference data (`hosting_providers`), kept in memory and refreshed, so a check costs no
//! query to find them.

use dijkwacht_domain::ContentClass;
use dijkwacht_http::ApiError;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use serde::Deserialize;
use sqlx::PgPool;
use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// A provider's `hash_check` entry in the reference data.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderSettings {
    /// The classes its checks see; a hash listed only as another class answers `no_match`.
    pub classes: Vec<ContentClass>,
    /// Hashes it may check per second, in bursts of up to a second's worth or one full
    /// batch; the part's `checks_per_second` when absent.
    #[serde(default)]
    pub checks_per_second: Option<u32>,
    /// Whether a hit on material found online (a hash sent with its `url`) opens a case,
    /// noticed like any report. Hits on uploads are recorded either way.
    #[serde(default)]
    pub open_cases: bool,
}

/// A provider as a check meets it.
pub struct Provider {
    pub id: String,
    pub settings: ProviderSettings,
    pace: DefaultDirectRateLimiter,
    burst: u32,
}

impl std::fmt::Debug for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Provider")
            .field("id", &self.id)
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Provider {
    /// Takes `checks` from the provider's allowance, or says when to come back.
    pub fn pace(&self, checks: usize) -> Result<(), ApiError> {
        let Some(checks) = NonZeroU32::new(checks.min(u32::MAX as usize) as u32) else {
            return Ok(());
        };
        match self.pace.check_n(checks) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(not_until)) => Err(ApiError::RateLimited {
                retry_after_secs: not_until.wait_time_from(DefaultClock::default().now()).as_secs() + 1,
            }),
            // More than a burst holds: not for a batch within the limit, which always fits.
            Err(_) => Err(ApiError::TooLarge(format!("at most {} hashes at once", self.burst))),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ProvidersError {
    #[error("hosting provider {provider}: hash_check: {message}")]
    Invalid { provider: String, message: String },
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

type ById = HashMap<String, Arc<Provider>>;

/// Every provider by id, swapped whole on refresh.
#[derive(Clone)]
pub struct Providers {
    current: Arc<RwLock<Arc<ById>>>,
    /// For a provider without its own rate.
    checks_per_second: u32,
    /// A burst holds at least this many checks: one full batch.
    max_batch: u32,
}

impl Providers {
    pub async fn load(pool: &PgPool, checks_per_second: u32, max_batch: u32) -> Result<Self, ProvidersError> {
        let providers = Self {
            current: Arc::default(),
            checks_per_second,
            max_batch,
        };
        providers.refresh(pool).await?;
        Ok(providers)
    }

    pub fn get(&self, id: &str) -> Option<Arc<Provider>> {
        self.current.read().unwrap_or_else(|p| p.into_inner()).get(id).cloned()
    }

    /// Reads every provider again; one whose settings did not change keeps its allowance.
    pub async fn refresh(&self, pool: &PgPool) -> Result<(), ProvidersError> {
        let rows: Vec<(String, serde_json::Value)> =
            sqlx::query_as("SELECT provider_id, settings FROM hash_check_providers")
                .fetch_all(pool)
                .await?;
        let before = self.current.read().unwrap_or_else(|p| p.into_inner()).clone();
        let mut next = HashMap::with_capacity(rows.len());
        for (id, settings) in rows {
            let settings: ProviderSettings = serde_json::from_value(settings).map_err(|e| ProvidersError::Invalid {
                provider: id.clone(),
                message: e.to_string(),
            })?;
            let provider = match before.get(&id) {
                Some(known) if known.settings == settings => known.clone(),
                _ => Arc::new(self.provider(id.clone(), settings)),
            };
            next.insert(id, provider);
        }
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(next);
        Ok(())
    }

    fn provider(&self, id: String, settings: ProviderSettings) -> Provider {
        let rate = settings.checks_per_second.unwrap_or(self.checks_per_second).max(1);
        let burst = NonZeroU32::new(rate.max(self.max_batch).max(1)).expect("at least 1");
        let quota = Quota::with_period(Duration::from_secs_f64(1.0 / f64::from(rate)))
            .expect("the period is positive")
            .allow_burst(burst);
        Provider {
            id,
            pace: RateLimiter::direct(quota),
            burst: burst.get(),
            settings,
        }
    }

    /// Keeps the providers fresh until shutdown.
    pub async fn keep_fresh(self, pool: PgPool, every: Duration, shutdown: dijkwacht_runtime::Shutdown) {
        shutdown
            .refresh_every(every, "the hash-check providers", || self.refresh(&pool))
            .await
    }
}
