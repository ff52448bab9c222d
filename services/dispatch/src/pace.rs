//! Our pace towards each platform: a rate limit, so a burst of notices never floods a
//! platform (a flagger that does risks its status, DSA 22(6)), and a circuit breaker, so a
//! platform that keeps failing is left alone for a cool-down and then probed once.
//!
//! Both hold an attempt back by deferring it (`DispatchDeferred`), never by failing it:
//! pacing is our choice, not the platform's answer. The rate limit hands out time slots
//! rather than admitting or refusing (why it is not `governor`'s admit/deny): a deferred
//! notice is given its own slot, so a backlog drains at the rate instead of stampeding
//! back at once. Time is the domain clock's, so tests advance it. The state is per
//! process; with several dispatch processes, each keeps the rate (the platform sees their
//! sum), and the breaker state is written to `dispatch_pace` for operators to see.

use chrono::{DateTime, TimeDelta, Utc};
use dijkwacht_domain::Deferral;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use std::collections::HashMap;
use std::sync::Mutex;

/// A platform's pace, from the registry.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PaceConfig {
    /// Notices per second at most; unlimited when absent.
    pub per_second: Option<f64>,
    /// Consecutive failed attempts that open the breaker.
    pub breaker_failures: u32,
    /// How long an open breaker keeps the platform alone before one probe.
    pub breaker_cooldown_secs: i64,
    /// Notices to the platform within this many seconds go out as one message (0: each at
    /// once); the rate limit then applies to messages, not notices.
    pub grouping_window_secs: i64,
}

impl Default for PaceConfig {
    fn default() -> Self {
        Self {
            per_second: None,
            breaker_failures: 5,
            breaker_cooldown_secs: 300,
            grouping_window_secs: 0,
        }
    }
}

/// How long others wait while the half-open breaker's probe is out.
const PROBE_PATIENCE: TimeDelta = TimeDelta::seconds(30);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum BreakerState {
    Closed,
    Open,
    /// The cool-down is over and one probe is out; its outcome closes or reopens.
    HalfOpen,
}

impl BreakerState {
    fn as_str(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::Open => "open",
            Self::HalfOpen => "half_open",
        }
    }
}

#[derive(Debug, Clone)]
struct PlatformPace {
    next_slot: Option<DateTime<Utc>>,
    /// When the grouping window now open closes.
    window_closes: Option<DateTime<Utc>>,
    breaker: BreakerState,
    failures: u32,
    open_until: Option<DateTime<Utc>>,
}

impl Default for PlatformPace {
    fn default() -> Self {
        Self {
            next_slot: None,
            window_closes: None,
            breaker: BreakerState::Closed,
            failures: 0,
            open_until: None,
        }
    }
}

/// A breaker that changed, to be written for operators.
#[derive(Debug, Clone, PartialEq)]
pub struct BreakerChange {
    pub platform_id: String,
    pub state: BreakerState,
    pub failures: u32,
    pub open_until: Option<DateTime<Utc>>,
}

#[derive(Debug, Default)]
pub struct Pacer {
    platforms: Mutex<HashMap<String, PlatformPace>>,
}

impl Pacer {
    /// Whether an attempt to `platform_id` may start at `now`; if it may not, until when it
    /// waits. An admitted attempt takes its slot, unless it `holds_slot` already (it was
    /// deferred to this very time).
    pub fn admit(
        &self,
        platform_id: &str,
        config: &PaceConfig,
        now: DateTime<Utc>,
        holds_slot: bool,
    ) -> Option<Deferral> {
        let mut platforms = self.platforms.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let pace = platforms.entry(platform_id.to_owned()).or_default();
        match pace.breaker {
            BreakerState::Open => match pace.open_until {
                Some(until) if until > now => {
                    return Some(Deferral {
                        until,
                        reason: format!(
                            "the circuit breaker is open after {} failed attempts in a row",
                            pace.failures
                        ),
                    })
                }
                // The cool-down is over: this attempt is the probe.
                _ => pace.breaker = BreakerState::HalfOpen,
            },
            BreakerState::HalfOpen => {
                return Some(Deferral {
                    until: now + PROBE_PATIENCE,
                    reason: "the circuit breaker waits for its probe".into(),
                })
            }
            BreakerState::Closed => {}
        }
        if holds_slot {
            return None;
        }
        if config.grouping_window_secs > 0 {
            let closes = match pace.window_closes {
                Some(closes) if closes > now => closes,
                _ => now + TimeDelta::seconds(config.grouping_window_secs),
            };
            pace.window_closes = Some(closes);
            return Some(Deferral {
                until: closes,
                reason: format!(
                    "gathered with the platform's other notices into one message (grouping window {} s)",
                    config.grouping_window_secs
                ),
            });
        }
        let per_second = config.per_second.filter(|rate| *rate > 0.0)?;
        let interval = TimeDelta::microseconds((1_000_000.0 / per_second) as i64);
        let slot = pace.next_slot.map_or(now, |next| next.max(now));
        pace.next_slot = Some(slot + interval);
        (slot > now).then(|| Deferral {
            until: slot,
            reason: format!("our rate limit towards the platform ({per_second}/s)"),
        })
    }

    /// Counts an attempt's outcome: `failed` for a failure the platform may recover from.
    /// Returns the breaker's new state when it changed.
    pub fn record(
        &self,
        platform_id: &str,
        config: &PaceConfig,
        failed: bool,
        now: DateTime<Utc>,
    ) -> Option<BreakerChange> {
        let mut platforms = self.platforms.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let pace = platforms.entry(platform_id.to_owned()).or_default();
        let before = pace.breaker;
        if failed {
            pace.failures += 1;
            let trips = pace.breaker == BreakerState::HalfOpen || pace.failures >= config.breaker_failures.max(1);
            if trips {
                pace.breaker = BreakerState::Open;
                pace.open_until = Some(now + TimeDelta::seconds(config.breaker_cooldown_secs));
            }
        } else {
            pace.failures = 0;
            pace.breaker = BreakerState::Closed;
            pace.open_until = None;
        }
        (pace.breaker != before || (failed && pace.breaker == BreakerState::Open)).then(|| BreakerChange {
            platform_id: platform_id.to_owned(),
            state: pace.breaker,
            failures: pace.failures,
            open_until: pace.open_until,
        })
    }
}

/// Writes a breaker's state where operators can see it.
pub async fn save(pool: &PgPool, change: &BreakerChange, now: DateTime<Utc>) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO dispatch_pace (platform_id, breaker, failures, open_until, updated_at) VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (platform_id) DO UPDATE SET breaker = EXCLUDED.breaker, failures = EXCLUDED.failures, \
             open_until = EXCLUDED.open_until, updated_at = EXCLUDED.updated_at",
    )
    .bind(&change.platform_id)
    .bind(change.state.as_str())
    .bind(change.failures as i32)
    .bind(change.open_until)
    .bind(now)
    .execute(pool)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(seconds: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 2, 9, 0, 0).unwrap() + TimeDelta::seconds(seconds)
    }

    #[test]
    fn a_backlog_gets_one_slot_each_at_the_rate() {
        let pacer = Pacer::default();
        let config = PaceConfig {
            per_second: Some(2.0),
            ..PaceConfig::default()
        };
        let slots: Vec<_> = (0..5)
            .map(|_| pacer.admit("p", &config, t(0), false).map(|d| d.until))
            .collect();
        let half = TimeDelta::milliseconds(500);
        assert_eq!(
            slots,
            [None, Some(t(0) + half), Some(t(1)), Some(t(1) + half), Some(t(2))]
        );
        assert_eq!(pacer.admit("other", &config, t(0), false), None, "per platform");
        assert_eq!(
            pacer.admit("p", &config, t(1), true),
            None,
            "a deferred attempt keeps its slot"
        );
        assert_eq!(
            pacer.admit("p", &config, t(1), false).map(|d| d.until),
            Some(t(2) + half)
        );
    }

    #[test]
    fn the_breaker_opens_after_failures_probes_after_the_cool_down_and_closes_on_success() {
        let pacer = Pacer::default();
        let config = PaceConfig {
            breaker_failures: 3,
            breaker_cooldown_secs: 600,
            ..PaceConfig::default()
        };
        assert_eq!(pacer.record("p", &config, true, t(0)), None);
        assert_eq!(pacer.record("p", &config, true, t(1)), None);
        let opened = pacer.record("p", &config, true, t(2)).unwrap();
        assert_eq!((opened.state, opened.open_until), (BreakerState::Open, Some(t(602))));
        assert_eq!(pacer.admit("p", &config, t(100), false).map(|d| d.until), Some(t(602)));
        assert_eq!(pacer.admit("p", &config, t(602), false), None, "the probe");
        assert!(
            pacer.admit("p", &config, t(603), false).is_some(),
            "others wait for the probe"
        );
        let closed = pacer.record("p", &config, false, t(604)).unwrap();
        assert_eq!(closed.state, BreakerState::Closed);
        assert_eq!(pacer.admit("p", &config, t(605), false), None);
    }

    #[test]
    fn notices_within_a_grouping_window_wait_for_its_close_together() {
        let pacer = Pacer::default();
        let config = PaceConfig {
            grouping_window_secs: 900,
            ..PaceConfig::default()
        };
        let closes = [0, 300, 899].map(|at| pacer.admit("p", &config, t(at), false).map(|d| d.until));
        assert_eq!(closes, [Some(t(900)); 3]);
        assert_eq!(pacer.admit("p", &config, t(900), true), None, "at the close they go");
        assert_eq!(
            pacer.admit("p", &config, t(901), false).map(|d| d.until),
            Some(t(1801)),
            "a new window"
        );
    }

    #[test]
    fn a_failed_probe_opens_the_breaker_again() {
        let pacer = Pacer::default();
        let config = PaceConfig {
            breaker_failures: 1,
            breaker_cooldown_secs: 60,
            ..PaceConfig::default()
        };
        pacer.record("p", &config, true, t(0));
        assert_eq!(pacer.admit("p", &config, t(60), false), None);
        let reopened = pacer.record("p", &config, true, t(61)).unwrap();
        assert_eq!(
            (reopened.state, reopened.open_until),
            (BreakerState::Open, Some(t(121)))
        );
    }
}
