//! Who is calling: API keys looked up by their SHA-256 digest.

use sha2::{Digest, Sha256};
use sqlx::{PgPool, Row};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// `partner`, `regulator`, `analyst`, `operator` or `hosting_provider`.
    pub kind: String,
    pub id: String,
    pub scopes: Vec<String>,
}

impl Principal {
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope)
    }
}

pub fn key_digest(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

/// The principal an API key belongs to, if any.
pub async fn authenticate(pool: &PgPool, key: &str) -> Result<Option<Principal>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT principal_kind, principal_id, scopes FROM api_keys WHERE key_sha256 = $1 AND revoked_at IS NULL",
    )
    .bind(key_digest(key).as_slice())
    .fetch_optional(pool)
    .await?;
    row.map(|row| {
        Ok(Principal {
            kind: row.try_get("principal_kind")?,
            id: row.try_get("principal_id")?,
            scopes: row.try_get("scopes")?,
        })
    })
    .transpose()
}

/// A newly issued key: shown once, stored only as its digest.
#[derive(Debug)]
pub struct IssuedKey {
    /// Public identifier, safe to log and to name the key by when revoking it.
    pub key_id: String,
    pub key: String,
}

/// Issues a key for a principal. Issuing a second key before revoking the first is how keys
/// are rotated without downtime.
pub async fn issue_key(
    pool: &PgPool,
    kind: &str,
    principal_id: &str,
    scopes: &[String],
    label: Option<&str>,
) -> Result<IssuedKey, sqlx::Error> {
    let key_id = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();
    // Two v4 UUIDs: 244 random bits from the operating system.
    let secret = format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple());
    let key = format!("dkw_{key_id}_{secret}");
    sqlx::query(
        "INSERT INTO api_keys (key_sha256, principal_kind, principal_id, scopes, key_id, label) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(key_digest(&key).as_slice())
    .bind(kind)
    .bind(principal_id)
    .bind(scopes)
    .bind(&key_id)
    .bind(label)
    .execute(pool)
    .await?;
    Ok(IssuedKey { key_id, key })
}

/// Revokes a key by its public id; returns whether an active key was revoked.
pub async fn revoke_key(pool: &PgPool, key_id: &str) -> Result<bool, sqlx::Error> {
    let revoked = sqlx::query("UPDATE api_keys SET revoked_at = now() WHERE key_id = $1 AND revoked_at IS NULL")
        .bind(key_id)
        .execute(pool)
        .await?;
    Ok(revoked.rows_affected() > 0)
}
