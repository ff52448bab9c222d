//! The police-first rules, section `[police]` (`DIJKWACHT_POLICE__KEY` in the environment):
//! classification routes a case they match to an analyst, to consider a referral first.

use dijkwacht_domain::PoliceFirstRule;
use dijkwacht_runtime::config::{ConfigError, Settings};
use serde::Deserialize;

pub const SECTION: &str = "police";

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PoliceFirstSettings {
    /// Rules that send a case to an analyst to consider referring it to the police first,
    /// in order; e.g. `{ id = "new-csam", classes = ["csam"], new_material_only = true }`.
    pub rules: Vec<PoliceFirstRule>,
}

impl PoliceFirstSettings {
    pub fn from_settings(settings: &Settings) -> Result<Self, ConfigError> {
        let section: Self = settings.section(SECTION)?;
        let mut ids: Vec<&str> = section.rules.iter().map(|rule| rule.id.as_str()).collect();
        ids.sort_unstable();
        if let Some(pair) = ids.windows(2).find(|pair| pair[0] == pair[1]) {
            return Err(ConfigError::new(format!(
                "police.rules: the id {:?} is used twice",
                pair[0]
            )));
        }
        if let Some(rule) = section.rules.iter().find(|rule| rule.classes.is_empty()) {
            return Err(ConfigError::new(format!(
                "police.rules: rule {:?} names no class",
                rule.id
            )));
        }
        Ok(section)
    }
}
