//! Each platform's channels, in its order of preference, from the platform registry
//! (`platforms.dispatch`, loaded from the reference file). Kept in memory and refreshed, so
//! a registry change reaches dispatch without a restart.

use crate::pace::PaceConfig;
use dijkwacht_domain::Channel;
use dijkwacht_runtime::secret::SecretRef;
use serde::Deserialize;
use sqlx::{PgPool, Row};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// One way to reach a platform, with what it takes to use it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum ChannelConfig {
    Api {
        endpoint: String,
        #[serde(default)]
        auth: ApiAuth,
    },
    Email {
        to: String,
    },
    Manual {
        #[serde(default)]
        form_url: Option<String>,
    },
}

impl ChannelConfig {
    /// The channel as events record it: its address, never its credentials.
    pub fn channel(&self) -> Channel {
        match self {
            Self::Api { endpoint, .. } => Channel::Http {
                endpoint: endpoint.clone(),
            },
            Self::Email { to } => Channel::Email { to: to.clone() },
            Self::Manual { form_url } => Channel::Manual {
                form_url: form_url.clone(),
            },
        }
    }
}

/// How dispatch proves itself to a platform's API.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum ApiAuth {
    #[default]
    None,
    Bearer {
        token: SecretRef,
    },
    /// OAuth 2.0 client credentials (RFC 6749 §4.4): a token fetched, cached until shortly
    /// before it expires, and fetched again.
    Oauth2 {
        token_url: String,
        client_id: String,
        client_secret: SecretRef,
        #[serde(default)]
        scope: Option<String>,
    },
    /// An HMAC-SHA256 signature over the timestamp and the body, in request headers.
    Hmac {
        secret: SecretRef,
        #[serde(default)]
        key_id: Option<String>,
    },
}

/// What dispatch needs to know of a platform.
#[derive(Debug, Clone, PartialEq)]
pub struct PlatformRoute {
    pub platform_id: String,
    pub name: String,
    /// ISO 639-1; notices are written in it where a wording exists, else in English.
    pub language: String,
    pub channels: Vec<ChannelConfig>,
    /// The platform's own templates, where it has them.
    pub templates_dir: Option<PathBuf>,
    pub pace: PaceConfig,
}

impl PlatformRoute {
    /// How to authenticate on an API channel an attempt was started on; none for a channel
    /// the registry no longer lists.
    pub fn api_auth(&self, channel: &Channel) -> ApiAuth {
        match self.channels.iter().find(|config| config.channel() == *channel) {
            Some(ChannelConfig::Api { auth, .. }) => auth.clone(),
            _ => ApiAuth::None,
        }
    }

    pub fn channel_list(&self) -> Vec<Channel> {
        self.channels.iter().map(ChannelConfig::channel).collect()
    }
}

/// How a partner hotline of the network takes cases forwarded to it.
#[derive(Debug, Clone, PartialEq)]
pub struct HotlineRoute {
    pub partner_id: String,
    pub name: String,
    pub channel: ChannelConfig,
    /// How long it has to confirm that it acts on a case it took.
    pub confirm_within: chrono::TimeDelta,
}

impl HotlineRoute {
    pub fn api_auth(&self) -> ApiAuth {
        match &self.channel {
            ChannelConfig::Api { auth, .. } => auth.clone(),
            _ => ApiAuth::None,
        }
    }
}

/// How the law-enforcement partner takes referrals: the police-first cases.
#[derive(Debug, Clone, PartialEq)]
pub struct PoliceRoute {
    pub partner_id: String,
    pub name: String,
    /// Its API or its e-mail address.
    pub channel: ChannelConfig,
    /// How long a referral holds the case back, from receipt, before an analyst asks.
    pub hold_for: chrono::TimeDelta,
}

/// `partners.police`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PoliceColumn {
    channel: ChannelConfig,
    #[serde(default, deserialize_with = "dijkwacht_runtime::span::optional")]
    hold_for: Option<chrono::TimeDelta>,
}

/// A week, where the police partner's entry names no hold of its own.
pub const DEFAULT_HOLD_FOR: chrono::TimeDelta = chrono::TimeDelta::days(7);

/// `partners.forwarding`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ForwardingColumn {
    channel: ChannelConfig,
    #[serde(default, deserialize_with = "dijkwacht_runtime::span::optional")]
    confirm_within: Option<chrono::TimeDelta>,
}

/// A week, where the partner's entry names no window of its own.
const DEFAULT_CONFIRM_WITHIN: chrono::TimeDelta = chrono::TimeDelta::days(7);

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct DispatchColumn {
    #[serde(default)]
    channels: Vec<ChannelConfig>,
    #[serde(default)]
    templates_dir: Option<PathBuf>,
    #[serde(default)]
    pace: PaceConfig,
}

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("platform {platform}: {message}")]
    Invalid { platform: String, message: String },
    #[error("partner {partner}: {column}: {message}")]
    InvalidPartnerColumn {
        partner: String,
        column: &'static str,
        message: String,
    },
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// Platform id → route, and partner id → forwarding route.
#[derive(Debug, Default)]
struct Routes {
    platforms: HashMap<String, Arc<PlatformRoute>>,
    hotlines: HashMap<String, Arc<HotlineRoute>>,
    police: HashMap<String, Arc<PoliceRoute>>,
}

/// Every platform's route, as last read from the registry. Readers take a snapshot; a
/// refresh swaps in a new one.
#[derive(Debug, Clone, Default)]
pub struct Directory {
    routes: Arc<RwLock<Arc<Routes>>>,
}

impl Directory {
    pub async fn load(pool: &PgPool) -> Result<Self, RegistryError> {
        let directory = Self::default();
        directory.refresh(pool).await?;
        Ok(directory)
    }

    /// A directory of the given routes, for tests and tools.
    pub fn of(routes: impl IntoIterator<Item = PlatformRoute>) -> Self {
        let routes = Routes {
            platforms: routes
                .into_iter()
                .map(|route| (route.platform_id.clone(), Arc::new(route)))
                .collect(),
            hotlines: HashMap::new(),
            police: HashMap::new(),
        };
        Self {
            routes: Arc::new(RwLock::new(Arc::new(routes))),
        }
    }

    pub fn get(&self, platform_id: &str) -> Option<Arc<PlatformRoute>> {
        self.snapshot().platforms.get(platform_id).cloned()
    }

    /// Every platform's route.
    pub fn all(&self) -> Vec<Arc<PlatformRoute>> {
        self.snapshot().platforms.values().cloned().collect()
    }

    /// How the partner hotline takes forwarded cases, if it takes them by a channel of ours.
    pub fn hotline(&self, partner_id: &str) -> Option<Arc<HotlineRoute>> {
        self.snapshot().hotlines.get(partner_id).cloned()
    }

    /// How the law-enforcement partner takes referrals, if it is one.
    pub fn police(&self, partner_id: &str) -> Option<Arc<PoliceRoute>> {
        self.snapshot().police.get(partner_id).cloned()
    }

    fn snapshot(&self) -> Arc<Routes> {
        self.routes
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Reads the registry again. A platform whose channels do not parse is an error naming
    /// it; the routes read before stay in use.
    pub async fn refresh(&self, pool: &PgPool) -> Result<(), RegistryError> {
        let rows = sqlx::query("SELECT platform_id, name, language, notice_endpoint, dispatch FROM platforms")
            .fetch_all(pool)
            .await?;
        let mut platforms = HashMap::with_capacity(rows.len());
        for row in rows {
            let platform_id: String = row.try_get("platform_id")?;
            let column: serde_json::Value = row.try_get("dispatch")?;
            let parsed: DispatchColumn = serde_json::from_value(column).map_err(|error| RegistryError::Invalid {
                platform: platform_id.clone(),
                message: format!("channels: {error}"),
            })?;
            let endpoint: String = row.try_get("notice_endpoint")?;
            // A registry entry with only a notice endpoint has one channel: its API, as
            // before channels were configurable.
            let channels = match parsed.channels {
                channels if channels.is_empty() && !endpoint.is_empty() => vec![ChannelConfig::Api {
                    endpoint,
                    auth: ApiAuth::None,
                }],
                channels => channels,
            };
            let route = PlatformRoute {
                platform_id: platform_id.clone(),
                name: row.try_get("name")?,
                language: row.try_get("language")?,
                channels,
                templates_dir: parsed.templates_dir,
                pace: parsed.pace,
            };
            platforms.insert(platform_id, Arc::new(route));
        }
        let hotlines = hotlines(pool).await?;
        let police = police(pool).await?;
        *self.routes.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::new(Routes {
            platforms,
            hotlines,
            police,
        });
        Ok(())
    }

    /// Refreshes every `period` until shutdown; a failed refresh keeps the last routes.
    pub async fn keep_fresh(self, pool: PgPool, period: Duration, shutdown: dijkwacht_runtime::Shutdown) {
        shutdown
            .refresh_every(period, "the platform registry", || self.refresh(&pool))
            .await
    }
}

async fn hotlines(pool: &PgPool) -> Result<HashMap<String, Arc<HotlineRoute>>, RegistryError> {
    partner_routes(pool, "forwarding", |partner_id, name, column: ForwardingColumn| {
        HotlineRoute {
            partner_id,
            name,
            channel: column.channel,
            confirm_within: column.confirm_within.unwrap_or(DEFAULT_CONFIRM_WITHIN),
        }
    })
    .await
}

async fn police(pool: &PgPool) -> Result<HashMap<String, Arc<PoliceRoute>>, RegistryError> {
    partner_routes(pool, "police", |partner_id, name, column: PoliceColumn| PoliceRoute {
        partner_id,
        name,
        channel: column.channel,
        hold_for: column.hold_for.unwrap_or(DEFAULT_HOLD_FOR),
    })
    .await
}

/// Partner id → route, for the partners whose `column` (a JSON entry of the reference data)
/// is set; an entry that does not parse is an error naming the partner and the column.
async fn partner_routes<C: serde::de::DeserializeOwned, R>(
    pool: &PgPool,
    column: &'static str,
    route: impl Fn(String, String, C) -> R,
) -> Result<HashMap<String, Arc<R>>, RegistryError> {
    // `column` is one of our own constant names, never input.
    let rows = sqlx::query(&format!(
        "SELECT partner_id, name, {column} AS entry FROM partners WHERE {column} IS NOT NULL"
    ))
    .fetch_all(pool)
    .await?;
    let mut routes = HashMap::with_capacity(rows.len());
    for row in rows {
        let partner_id: String = row.try_get("partner_id")?;
        let entry: C =
            serde_json::from_value(row.try_get("entry")?).map_err(|error| RegistryError::InvalidPartnerColumn {
                partner: partner_id.clone(),
                column,
                message: error.to_string(),
            })?;
        let name = row.try_get("name")?;
        routes.insert(partner_id.clone(), Arc::new(route(partner_id, name, entry)));
    }
    Ok(routes)
}
