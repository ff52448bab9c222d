//! The regulators' section, `[regulator]` (`DIJKWACHT_REGULATOR__KEY` in the environment):
//! how dossiers are signed and whom they name.

use dijkwacht_runtime::config::{ConfigError, Settings};
use dijkwacht_runtime::signing::SigningKey;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;

pub const SECTION: &str = "regulator";

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RegulatorSettings {
    /// The Ed25519 private key (PKCS#8 PEM) that signs dossiers;
    /// `dijkwacht signing-key generate FILE` makes one. Without it no dossier is made.
    pub signing_key: Option<PathBuf>,
    /// Country code → its Digital Services Coordinator, as a dossier names the provider's.
    pub coordinators: BTreeMap<String, String>,
    /// How often an API process looks for dossiers to build.
    pub dossier_poll_ms: u64,
    /// How often the projection takes a signed checkpoint of the whole event log (with a
    /// signing key only).
    pub checkpoint_every_secs: u64,
    /// The procedures that keep the trusted flagger independent, as the yearly report
    /// (DSA Art. 22(3)) states them.
    pub independence_procedures: String,
}

impl Default for RegulatorSettings {
    fn default() -> Self {
        Self {
            signing_key: None,
            coordinators: BTreeMap::new(),
            dossier_poll_ms: 1000,
            checkpoint_every_secs: 3600,
            independence_procedures: "Not stated: set [regulator] independence_procedures.".into(),
        }
    }
}

impl RegulatorSettings {
    pub fn from_settings(settings: &Settings) -> Result<Self, ConfigError> {
        settings.section(SECTION)
    }

    /// The signing key, read and checked; `None` when none is configured.
    pub fn key(&self) -> anyhow::Result<Option<SigningKey>> {
        Ok(match &self.signing_key {
            Some(path) => Some(SigningKey::load(path)?),
            None => None,
        })
    }

    /// The coordinator of `country`, by name where configured.
    pub fn coordinator(&self, country: &str) -> String {
        self.coordinators
            .get(country)
            .cloned()
            .unwrap_or_else(|| format!("the Digital Services Coordinator of {country}"))
    }
}
