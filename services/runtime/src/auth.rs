//! Who is calling: API keys looked up by their SHA-256 digest.

use sha2::{Digest, Sha256};
use sqlx::{PgPool, Row};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// `partner` or `regulator`.
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
    let row = sqlx::query("SELECT principal_kind, principal_id, scopes FROM api_keys WHERE key_sha256 = $1")
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
