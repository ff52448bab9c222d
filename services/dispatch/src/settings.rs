//! The dispatch part's configuration section, `[dispatch]` in the configuration file
//! (`DIJKWACHT_DISPATCH__KEY` in the environment): how e-mail leaves.

use dijkwacht_runtime::config::{ConfigError, Settings};
use dijkwacht_runtime::secret::SecretRef;
use serde::Deserialize;
use std::path::PathBuf;

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum SmtpSecurity {
    /// Plain SMTP, for a relay on the same host only.
    None,
    /// STARTTLS, required: a relay that does not offer it is not used.
    #[default]
    Starttls,
    /// TLS from the first byte (SMTPS, port 465).
    Tls,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DispatchSettings {
    /// The SMTP relay; e-mail channels fail (and the next channel is tried) without one.
    pub smtp_host: Option<String>,
    pub smtp_port: u16,
    pub smtp_security: SmtpSecurity,
    pub smtp_username: Option<String>,
    pub smtp_password: Option<SecretRef>,
    /// An extra root certificate (PEM) to trust, for a relay with a private CA.
    pub smtp_ca_file: Option<PathBuf>,
    /// Connections kept open to the relay, and so messages sent to it at once.
    pub smtp_pool_size: u32,
    pub smtp_timeout_secs: u64,
    /// The sender of notices, and where platforms' answers go.
    pub mail_from: String,
    pub reply_to: Option<String>,
    /// How often the platform registry is read again.
    pub registry_refresh_secs: u64,
}

impl Default for DispatchSettings {
    fn default() -> Self {
        Self {
            smtp_host: None,
            smtp_port: 587,
            smtp_security: SmtpSecurity::Starttls,
            smtp_username: None,
            smtp_password: None,
            smtp_ca_file: None,
            smtp_pool_size: 4,
            smtp_timeout_secs: 30,
            mail_from: "notices@dijkwacht.invalid".into(),
            reply_to: None,
            registry_refresh_secs: 30,
        }
    }
}

pub const SECTION: &str = "dispatch";

impl DispatchSettings {
    /// The section as the configuration gives it, checked.
    pub fn from_settings(settings: &Settings) -> Result<Self, ConfigError> {
        settings.section(SECTION)
    }
}
