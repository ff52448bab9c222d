//! Request rate limits: per partner for the API, per client address for the public form.

use crate::error::ApiError;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Clone, Copy)]
pub struct LimitSettings {
    pub partner_requests_per_second: f64,
    pub partner_burst: u32,
    pub public_reports_per_hour: u32,
}

impl Default for LimitSettings {
    fn default() -> Self {
        Self {
            partner_requests_per_second: 50.0,
            partner_burst: 200,
            public_reports_per_hour: 20,
        }
    }
}

#[derive(Clone)]
pub struct Limits {
    partners: Arc<DefaultKeyedRateLimiter<String>>,
    public: Arc<DefaultKeyedRateLimiter<IpAddr>>,
}

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
        Self {
            partners: Arc::new(RateLimiter::keyed(partner_quota)),
            public: Arc::new(RateLimiter::keyed(public_quota)),
        }
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
