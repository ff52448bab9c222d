//! Request rate limits: per partner for the API, per client address for the public form.

use crate::error::ApiError;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy)]
pub struct LimitSettings {
    pub partner_requests_per_second: f64,
    pub partner_burst: u32,
    pub public_reports_per_hour: u32,
    pub bulk_max_bytes: u64,
    pub bulk_max_lines: u64,
}

impl Default for LimitSettings {
    fn default() -> Self {
        Self {
            partner_requests_per_second: 500.0,
            partner_burst: 5_000,
            public_reports_per_hour: 20,
            bulk_max_bytes: 1 << 30,
            bulk_max_lines: 1_000_000,
        }
    }
}

#[derive(Clone)]
pub struct Limits {
    pub settings: LimitSettings,
    partners: Arc<DefaultKeyedRateLimiter<String>>,
    public: Arc<DefaultKeyedRateLimiter<IpAddr>>,
    /// Requests with an unknown key, per client address: someone guessing keys.
    unknown_keys: Arc<DefaultKeyedRateLimiter<IpAddr>>,
    /// Addresses over that limit, and until when every request of theirs is refused before
    /// its key is looked up.
    guessing: Arc<Mutex<HashMap<IpAddr, Instant>>>,
}

/// Unknown keys an address may present per minute (and at once) before it is refused.
const UNKNOWN_KEYS_PER_MINUTE: u32 = 10;
/// Addresses remembered as guessing at most; beyond it the expired ones are forgotten.
const GUESSING_REMEMBERED: usize = 10_000;

fn non_zero(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n.max(1)).expect("at least 1")
}

impl Limits {
    pub fn new(settings: LimitSettings) -> Self {
        // A period rather than a count per second, so rates below one per second work too.
        let rate = settings.partner_requests_per_second.max(f64::MIN_POSITIVE);
        let period = Duration::from_secs_f64((1.0 / rate).min(86_400.0));
        let partner_quota = Quota::with_period(period)
            .expect("the period is positive")
            .allow_burst(non_zero(settings.partner_burst));
        let public_quota = Quota::per_hour(non_zero(settings.public_reports_per_hour))
            .allow_burst(non_zero(settings.public_reports_per_hour));
        let unknown_quota = Quota::per_minute(non_zero(UNKNOWN_KEYS_PER_MINUTE));
        Self {
            settings,
            partners: Arc::new(RateLimiter::keyed(partner_quota)),
            public: Arc::new(RateLimiter::keyed(public_quota)),
            unknown_keys: Arc::new(RateLimiter::keyed(unknown_quota)),
            guessing: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// Refuses an address that presented too many unknown keys, before any lookup.
    pub fn check_not_guessing(&self, address: IpAddr) -> Result<(), ApiError> {
        let guessing = self.guessing.lock().unwrap_or_else(|p| p.into_inner());
        match guessing.get(&address) {
            Some(until) if *until > Instant::now() => Err(rate_limited(*until - Instant::now())),
            _ => Ok(()),
        }
    }

    /// Counts an unknown key against its address: 401 while under the limit, 429 after.
    pub fn unknown_key(&self, address: IpAddr) -> ApiError {
        let Err(not_until) = self.unknown_keys.check_key(&address) else {
            return ApiError::Unauthorized;
        };
        let wait = not_until.wait_time_from(DefaultClock::default().now());
        let mut guessing = self.guessing.lock().unwrap_or_else(|p| p.into_inner());
        if guessing.len() >= GUESSING_REMEMBERED {
            let now = Instant::now();
            guessing.retain(|_, until| *until > now);
        }
        guessing.insert(address, Instant::now() + wait);
        rate_limited(wait)
    }

    pub fn check_partner(&self, partner_id: &str) -> Result<(), ApiError> {
        self.partners
            .check_key(&partner_id.to_owned())
            .map_err(|not_until| rate_limited(not_until.wait_time_from(DefaultClock::default().now())))
    }

    pub fn check_public(&self, address: IpAddr) -> Result<(), ApiError> {
        self.public
            .check_key(&address)
            .map_err(|not_until| rate_limited(not_until.wait_time_from(DefaultClock::default().now())))
    }
}

fn rate_limited(wait: Duration) -> ApiError {
    ApiError::RateLimited {
        retry_after_secs: wait.as_secs() + u64::from(wait.subsec_nanos() > 0),
    }
}
