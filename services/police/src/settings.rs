//! The police-first section, `[police]` (`DIJKWACHT_POLICE__KEY` in the environment).

use dijkwacht_domain::PoliceFirstRule;
use serde::Deserialize;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PoliceSettings {
    /// Rules that send a case to an analyst to consider referring it to the police first,
    /// in order; e.g. `{ id = "new-csam", classes = ["csam"], new_material_only = true }`.
    pub rules: Vec<PoliceFirstRule>,
}

impl PoliceSettings {
    pub fn from_section(section: &serde_json::Value) -> Result<Self, dijkwacht_runtime::config::ConfigError> {
        let settings: Self = dijkwacht_runtime::config::section("police", section)?;
        let mut ids: Vec<&str> = settings.rules.iter().map(|rule| rule.id.as_str()).collect();
        ids.sort_unstable();
        if let Some(pair) = ids.windows(2).find(|pair| pair[0] == pair[1]) {
            return Err(dijkwacht_runtime::config::ConfigError::new(format!(
                "police.rules: the id {:?} is used twice",
                pair[0]
            )));
        }
        if let Some(rule) = settings.rules.iter().find(|rule| rule.classes.is_empty()) {
            return Err(dijkwacht_runtime::config::ConfigError::new(format!(
                "police.rules: rule {:?} names no class",
                rule.id
            )));
        }
        Ok(settings)
    }
}
