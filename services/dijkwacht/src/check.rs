//! Configuration read and checked whole before anything starts: every part's own section,
//! and what the runtime derives from the settings. `dijkwacht --check-config` stops here,
//! so a deployment can check each service's configuration without a database or a broker.

use anyhow::Context;
use chrono::TimeDelta;
use dijkwacht_classify::host::{Resolver, StaticResolver, SystemResolver};
use dijkwacht_dispatch::settings::DispatchSettings;
use dijkwacht_domain::{ContentClass, DispatchPolicy};
use dijkwacht_followup::settings::FollowupSettings;
use dijkwacht_hashcheck::settings::HashCheckSettings;
use dijkwacht_intake::review::ReviewPolicy;
use dijkwacht_police::settings::PoliceSettings;
use dijkwacht_runtime::config::Settings;
use dijkwacht_runtime::outbound::AddressPolicy;
use dijkwacht_runtime::reference::ReferenceData;
use dijkwacht_simulator::platform::Behaviour;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// The settings of every part, checked.
pub struct Checked {
    pub dispatch: DispatchSettings,
    pub followup: FollowupSettings,
    pub hash_check: HashCheckSettings,
    pub police: PoliceSettings,
    pub review: ReviewPolicy,
    pub resolver: Arc<dyn Resolver>,
    /// Where notices and removal checks may go.
    pub addresses: AddressPolicy,
    pub dispatch_policy: DispatchPolicy,
    pub request_timeout: Duration,
    /// How long an attempt may go without an outcome; longer than a request may take.
    pub in_flight_limit: TimeDelta,
    pub simulator_platforms: BTreeMap<String, Behaviour>,
    pub reference: Option<ReferenceData>,
}

/// Reads every section and file the settings name, and refuses what cannot work.
pub fn check(settings: &Settings) -> anyhow::Result<Checked> {
    let request_timeout = Duration::from_secs(settings.dispatch_timeout_secs);
    let in_flight_limit = TimeDelta::seconds(settings.dispatch_in_flight_secs);
    if in_flight_limit <= TimeDelta::from_std(request_timeout)? {
        anyhow::bail!(
            "dispatch_in_flight_secs must be longer than dispatch_timeout_secs, or live attempts are sent twice"
        );
    }
    let reference = match &settings.reference_file {
        Some(file) => Some(ReferenceData::from_file(file)?),
        None => None,
    };
    Ok(Checked {
        dispatch: DispatchSettings::from_section(&settings.dispatch)?,
        followup: FollowupSettings::from_section(&settings.followup)?,
        hash_check: HashCheckSettings::from_section(&settings.hash_check)?,
        police: PoliceSettings::from_section(&settings.police)?,
        review: ReviewPolicy {
            four_eyes: settings
                .four_eyes_classes
                .iter()
                .map(|name| {
                    ContentClass::parse(name).with_context(|| format!("four_eyes_classes: unknown class {name:?}"))
                })
                .collect::<anyhow::Result<_>>()?,
            claim_lease: TimeDelta::seconds(settings.review_claim_secs),
        },
        resolver: match settings.resolver.as_str() {
            "static" => Arc::new(StaticResolver {
                hosts: settings.static_hosts.clone(),
            }),
            "system" => Arc::new(SystemResolver),
            other => anyhow::bail!("resolver must be system or static, not {other:?}"),
        },
        addresses: AddressPolicy::allowing(&settings.outbound_allowed_ranges)
            .map_err(anyhow::Error::msg)?
            .with_hosts(settings.outbound_hosts.clone()),
        dispatch_policy: DispatchPolicy {
            max_attempts: settings.dispatch_max_attempts,
            first_backoff: TimeDelta::seconds(settings.dispatch_first_backoff_secs),
        },
        request_timeout,
        in_flight_limit,
        simulator_platforms: serde_json::from_value(settings.simulator_platforms.clone())
            .context("simulator_platforms")?,
        reference,
    })
}
