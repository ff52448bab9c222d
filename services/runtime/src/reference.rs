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
    pub hash_lists: Vec<HashListEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrincipalEntry {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub keys: Vec<KeyEntry>,
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
    pub notice_endpoint: String,
    pub domains: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HashListEntry {
    pub name: String,
    pub source: String,
    #[serde(default)]
    pub entries: Vec<HashEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HashEntry {
    pub algorithm: String,
    pub value: String,
    pub class: String,
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
            sqlx::query("INSERT INTO partners (partner_id, name) VALUES ($1, $2) ON CONFLICT (partner_id) DO UPDATE SET name = EXCLUDED.name")
                .bind(&partner.id)
                .bind(&partner.name)
                .execute(&mut *tx)
                .await?;
        }
        for (kind, principals) in [("partner", &self.partners), ("regulator", &self.regulators)] {
            for principal in principals {
                for key in &principal.keys {
                    let digest = hex::decode(&key.sha256).ok().filter(|d| d.len() == 32).ok_or_else(|| {
                        ReferenceError::Invalid(format!("{kind} {}: sha256 is not 64 hex digits", principal.id))
                    })?;
                    sqlx::query(
                        "INSERT INTO api_keys (key_sha256, principal_kind, principal_id, scopes) VALUES ($1, $2, $3, $4) \
                         ON CONFLICT (key_sha256) DO UPDATE SET principal_kind = EXCLUDED.principal_kind, principal_id = EXCLUDED.principal_id, scopes = EXCLUDED.scopes",
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
        for platform in &self.platforms {
            sqlx::query(
                "INSERT INTO platforms (platform_id, name, country, notice_endpoint) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (platform_id) DO UPDATE SET name = EXCLUDED.name, country = EXCLUDED.country, notice_endpoint = EXCLUDED.notice_endpoint",
            )
            .bind(&platform.id)
            .bind(&platform.name)
            .bind(&platform.country)
            .bind(&platform.notice_endpoint)
            .execute(&mut *tx)
            .await?;
            for domain in &platform.domains {
                sqlx::query("INSERT INTO platform_domains (domain, platform_id) VALUES ($1, $2) ON CONFLICT (domain) DO UPDATE SET platform_id = EXCLUDED.platform_id")
                    .bind(domain.to_ascii_lowercase())
                    .bind(&platform.id)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        for list in &self.hash_lists {
            sqlx::query("INSERT INTO hash_lists (name, source) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET source = EXCLUDED.source")
                .bind(&list.name)
                .bind(&list.source)
                .execute(&mut *tx)
                .await?;
            let mut added = 0;
            for entry in &list.entries {
                added += sqlx::query(
                    "INSERT INTO hash_list_entries (list, algorithm, value, class, added_at) VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
                )
                .bind(&list.name)
                .bind(entry.algorithm.to_ascii_lowercase())
                .bind(entry.value.to_ascii_lowercase())
                .bind(&entry.class)
                .bind(now)
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
        tx.commit().await?;
        Ok(())
    }
}
