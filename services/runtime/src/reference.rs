//! Reference data from a TOML file: partners and their API keys, regulators, platforms and
//! their domains, hash lists. Loading is an upsert, so it is safe to repeat at every start.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use sqlx::PgPool;
use std::path::Path;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReferenceData {
    #[serde(default)]
    pub partners: Vec<PrincipalEntry>,
    #[serde(default)]
    pub regulators: Vec<PrincipalEntry>,
    #[serde(default)]
    pub platforms: Vec<PlatformEntry>,
    #[serde(default)]
    pub analysts: Vec<PrincipalEntry>,
    /// Who runs the system: the operator queue, quarantined outbox rows.
    #[serde(default)]
    pub operators: Vec<PrincipalEntry>,
    /// Hosting providers that check uploads against the hash lists (`hash_check`).
    #[serde(default)]
    pub hosting_providers: Vec<PrincipalEntry>,
    #[serde(default)]
    pub hash_lists: Vec<HashListEntry>,
    #[serde(default)]
    pub url_rules: Vec<UrlRuleEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UrlRuleEntry {
    pub id: String,
    /// `exact`, `domain` or `prefix`.
    pub kind: String,
    pub pattern: String,
    pub class: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrincipalEntry {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub keys: Vec<KeyEntry>,
    /// Partners only: classes whose claimed category is accepted without review.
    #[serde(default)]
    pub trusted_classes: Vec<String>,
    /// Partner hotlines only: how they take cases forwarded to them, as the dispatch part
    /// reads it (`services/dispatch/src/registry.rs`): `channel` (an `api` channel with its
    /// `auth`) and `confirm_within` (a span, `"7d"` when absent).
    #[serde(default)]
    pub forwarding: Option<serde_json::Value>,
    /// Law-enforcement partners only: how they take referrals of police-first cases, as
    /// the dispatch part reads it: `channel` (`api` with its `auth`, or `email`) and
    /// `hold_for` (a span, `"7d"` when absent).
    #[serde(default)]
    pub police: Option<serde_json::Value>,
    /// Hosting providers only: what they may check and how fast, as the hash-check part
    /// reads it (`services/hashcheck/src/providers.rs`): `classes`, `checks_per_second`,
    /// `open_cases`.
    #[serde(default)]
    pub hash_check: Option<serde_json::Value>,
    /// Regulators only: what they may see. A regulator without a remit sees nothing.
    #[serde(default)]
    pub remit: Option<RemitEntry>,
}

/// A regulator's remit: platforms by id or by the country they are established in, and
/// classes of content; a list left out does not limit its dimension. The CSAM authority
/// names classes only (every host); a Digital Services Coordinator its country.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemitEntry {
    pub platforms: Option<Vec<String>>,
    pub countries: Option<Vec<String>>,
    pub classes: Option<Vec<String>>,
}

/// An API key by its SHA-256 digest (hex); the key itself is never written down.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyEntry {
    pub sha256: String,
    pub scopes: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlatformEntry {
    pub id: String,
    pub name: String,
    pub country: String,
    /// Shorthand for one API channel without authentication, when `channels` is empty.
    #[serde(default)]
    pub notice_endpoint: String,
    /// Its channels in order of preference, as the dispatch part reads them
    /// (`services/dispatch/src/registry.rs`): `api` (with `auth`), `email`, `manual`.
    #[serde(default)]
    pub channels: Vec<serde_json::Value>,
    /// A directory of the platform's own message templates.
    #[serde(default)]
    pub templates_dir: Option<String>,
    /// Our pace towards it: `per_second`, `breaker_failures`, `breaker_cooldown_secs`.
    #[serde(default)]
    pub pace: Option<serde_json::Value>,
    #[serde(default)]
    pub domains: Vec<String>,
    /// CIDR ranges the platform hosts from.
    #[serde(default)]
    pub ranges: Vec<String>,
    /// Subject to the DSA (established or offering services in the EU).
    #[serde(default = "yes")]
    pub dsa_platform: bool,
    #[serde(default = "english")]
    pub language: String,
    /// The secrets (`env:NAME`, `file:PATH`) the platform signs its answers to us with,
    /// as the follow-up part reads them; two while one is being rotated out.
    #[serde(default)]
    pub answer_secrets: Vec<String>,
}

fn yes() -> bool {
    true
}

fn english() -> String {
    "en".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HashListEntry {
    pub name: String,
    pub source: String,
    #[serde(default = "default_pdq_distance")]
    pub pdq_max_distance: i32,
    #[serde(default)]
    pub entries: Vec<HashEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HashEntry {
    pub algorithm: String,
    pub value: String,
    pub class: String,
    #[serde(default)]
    pub quality: Option<i16>,
}

fn default_pdq_distance() -> i32 {
    31
}

#[derive(Debug, thiserror::Error)]
pub enum ReferenceError {
    #[error("reading {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("{path}: {source}")]
    Parse { path: String, source: toml::de::Error },
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// Adds a partner, or renames one.
pub async fn save_partner(db: &mut sqlx::PgConnection, id: &str, name: &str) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO partners (partner_id, name) VALUES ($1, $2) ON CONFLICT (partner_id) DO UPDATE SET name = EXCLUDED.name")
        .bind(id)
        .bind(name)
        .execute(db)
        .await?;
    Ok(())
}

impl ReferenceData {
    pub fn from_file(path: &Path) -> Result<Self, ReferenceError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ReferenceError::Read {
            path: shown.clone(),
            source,
        })?;
        toml::from_str(&text).map_err(|source| ReferenceError::Parse { path: shown, source })
    }

    pub async fn load_into(&self, pool: &PgPool, now: DateTime<Utc>) -> Result<(), ReferenceError> {
        let mut tx = pool.begin().await?;
        for partner in &self.partners {
            save_partner(&mut tx, &partner.id, &partner.name).await?;
            sqlx::query("UPDATE partners SET forwarding = $2, police = $3 WHERE partner_id = $1")
                .bind(&partner.id)
                .bind(&partner.forwarding)
                .bind(&partner.police)
                .execute(&mut *tx)
                .await?;
        }
        for partner in &self.partners {
            for class in &partner.trusted_classes {
                sqlx::query("INSERT INTO partner_trust (partner_id, class) VALUES ($1, $2) ON CONFLICT DO NOTHING")
                    .bind(&partner.id)
                    .bind(class)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        let mut listed: Vec<Vec<u8>> = Vec::new();
        for (kind, principals) in [
            ("partner", &self.partners),
            ("regulator", &self.regulators),
            ("analyst", &self.analysts),
            ("operator", &self.operators),
            ("hosting_provider", &self.hosting_providers),
        ] {
            for principal in principals {
                for key in &principal.keys {
                    let digest = hex::decode(&key.sha256).ok().filter(|d| d.len() == 32).ok_or_else(|| {
                        ReferenceError::Invalid(format!("{kind} {}: sha256 is not 64 hex digits", principal.id))
                    })?;
                    listed.push(digest.clone());
                    sqlx::query(
                        "INSERT INTO api_keys (key_sha256, principal_kind, principal_id, scopes) VALUES ($1, $2, $3, $4) \
                         ON CONFLICT (key_sha256) DO UPDATE SET principal_kind = EXCLUDED.principal_kind, principal_id = EXCLUDED.principal_id, \
                             scopes = EXCLUDED.scopes, revoked_at = NULL",
                    )
                    .bind(digest)
                    .bind(kind)
                    .bind(&principal.id)
                    .bind(&key.scopes)
                    .execute(&mut *tx)
                    .await?;
                }
            }
        }
        // A key the file no longer lists is revoked; keys issued by `dijkwacht key issue`
        // (they have a key id) are revoked by `dijkwacht key revoke` only.
        sqlx::query(
            "UPDATE api_keys SET revoked_at = $2 WHERE key_id IS NULL AND revoked_at IS NULL AND NOT (key_sha256 = ANY($1))",
        )
        .bind(&listed)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        for regulator in &self.regulators {
            let remit = regulator.remit.clone().unwrap_or_default();
            if let Some(class) = remit
                .classes
                .iter()
                .flatten()
                .find(|class| dijkwacht_domain::ContentClass::parse(class).is_none())
            {
                return Err(ReferenceError::Invalid(format!(
                    "regulator {}: remit.classes: {class:?} is not a class of content",
                    regulator.id
                )));
            }
            sqlx::query(
                "INSERT INTO regulators (regulator_id, name, platforms, countries, classes) VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (regulator_id) DO UPDATE SET name = EXCLUDED.name, platforms = EXCLUDED.platforms, \
                     countries = EXCLUDED.countries, classes = EXCLUDED.classes",
            )
            .bind(&regulator.id)
            .bind(&regulator.name)
            .bind(&remit.platforms)
            .bind(&remit.countries)
            .bind(&remit.classes)
            .execute(&mut *tx)
            .await?;
        }
        for provider in &self.hosting_providers {
            sqlx::query(
                "INSERT INTO hash_check_providers (provider_id, name, settings) VALUES ($1, $2, $3) \
                 ON CONFLICT (provider_id) DO UPDATE SET name = EXCLUDED.name, settings = EXCLUDED.settings",
            )
            .bind(&provider.id)
            .bind(&provider.name)
            .bind(provider.hash_check.clone().unwrap_or_else(|| serde_json::json!({})))
            .execute(&mut *tx)
            .await?;
        }
        for platform in &self.platforms {
            sqlx::query(
                "INSERT INTO platforms (platform_id, name, country, notice_endpoint, dsa_platform, language, dispatch, answer_secrets) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
                 ON CONFLICT (platform_id) DO UPDATE SET name = EXCLUDED.name, country = EXCLUDED.country, \
                 notice_endpoint = EXCLUDED.notice_endpoint, dsa_platform = EXCLUDED.dsa_platform, language = EXCLUDED.language, \
                 dispatch = EXCLUDED.dispatch, answer_secrets = EXCLUDED.answer_secrets",
            )
            .bind(&platform.id)
            .bind(&platform.name)
            .bind(&platform.country)
            .bind(&platform.notice_endpoint)
            .bind(platform.dsa_platform)
            .bind(&platform.language)
            .bind(serde_json::json!({
                "channels": platform.channels,
                "templates_dir": platform.templates_dir,
                "pace": platform.pace.clone().unwrap_or_else(|| serde_json::json!({})),
            }))
            .bind(serde_json::json!(platform.answer_secrets))
            .execute(&mut *tx)
            .await?;
            for range in &platform.ranges {
                sqlx::query("INSERT INTO platform_ranges (range, platform_id) VALUES ($1::cidr, $2) ON CONFLICT (range) DO UPDATE SET platform_id = EXCLUDED.platform_id")
                    .bind(range)
                    .bind(&platform.id)
                    .execute(&mut *tx)
                    .await?;
            }
            for domain in &platform.domains {
                sqlx::query("INSERT INTO platform_domains (domain, platform_id) VALUES ($1, $2) ON CONFLICT (domain) DO UPDATE SET platform_id = EXCLUDED.platform_id")
                    .bind(domain.to_ascii_lowercase())
                    .bind(&platform.id)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        for list in &self.hash_lists {
            sqlx::query(
                "INSERT INTO hash_lists (name, source, pdq_max_distance) VALUES ($1, $2, $3) \
                 ON CONFLICT (name) DO UPDATE SET source = EXCLUDED.source, pdq_max_distance = EXCLUDED.pdq_max_distance",
            )
            .bind(&list.name)
            .bind(&list.source)
            .bind(list.pdq_max_distance)
            .execute(&mut *tx)
            .await?;
            let mut added = 0;
            for entry in &list.entries {
                added += sqlx::query(
                    "INSERT INTO hash_list_entries (list, algorithm, value, class, added_at, quality) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
                )
                .bind(&list.name)
                .bind(entry.algorithm.to_ascii_lowercase())
                .bind(entry.value.to_ascii_lowercase())
                .bind(&entry.class)
                .bind(now)
                .bind(entry.quality)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            }
            if added > 0 {
                sqlx::query("UPDATE hash_lists SET version = version + 1 WHERE name = $1")
                    .bind(&list.name)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        for rule in &self.url_rules {
            sqlx::query(
                "INSERT INTO url_rules (rule_id, kind, pattern, class) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (rule_id) DO UPDATE SET kind = EXCLUDED.kind, pattern = EXCLUDED.pattern, class = EXCLUDED.class",
            )
            .bind(&rule.id)
            .bind(&rule.kind)
            .bind(&rule.pattern)
            .bind(&rule.class)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}
