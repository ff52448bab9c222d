//! The hash check's configuration section, `[hash_check]` (`DIJKWACHT_HASH_CHECK__KEY` in
//! the environment).

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HashCheckSettings {
    /// Hashes in one request at most; a longer batch is refused whole (413).
    pub max_batch: u32,
    /// Hashes a provider may check per second unless its own entry says otherwise.
    pub checks_per_second: u32,
    /// How often the providers' entries are read again.
    pub providers_refresh_secs: u64,
}

impl Default for HashCheckSettings {
    fn default() -> Self {
        Self {
            max_batch: 10_000,
            checks_per_second: 100_000,
            providers_refresh_secs: 30,
        }
    }
}

pub const SECTION: &str = "hash_check";

impl HashCheckSettings {
    /// The section as the configuration gives it, checked.
    pub fn from_settings(
        settings: &dijkwacht_runtime::config::Settings,
    ) -> Result<Self, dijkwacht_runtime::config::ConfigError> {
        settings.section(SECTION)
    }
}
